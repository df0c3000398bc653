//! What the sandbox test suites share: the two backends each test runs on.

#![allow(dead_code, clippy::expect_used)]

/// What isolates the kernels of a test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Bubblewrap,
    Container,
}

pub const BUBBLEWRAP: Backend = Backend::Bubblewrap;
pub const CONTAINER: Backend = Backend::Container;

/// The interpreter inside the test image.
pub const IMAGE_PYTHON: &str = "/usr/bin/python3";

/// The sandbox venv's interpreter (its packages are mounted into containers).
pub fn sandbox_python() -> std::path::PathBuf {
    std::env::var("CAIRN_SANDBOX_PYTHON")
        .expect(
            "CAIRN_SANDBOX_PYTHON must name the sandbox venv's python (the test command builds it: ./scripts/test.sh)",
        )
        .into()
}
