//! The docs stay true to the tree: every file or folder ARCHITECTURE.md
//! names exists. A name is resolved from the repository's root, or, inside
//! a crate's section (`### \`crates/…\``), within that crate (its own
//! relative paths such as `codeact/model.rs` included); README.md stays a
//! front page that links the references.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Names ARCHITECTURE.md gives to files and folders made at run time, not
/// in the tree (paths with `<placeholders>` are skipped too).
const RUNTIME_FILES: [&str; 2] = [
    // A sandbox's record of itself and its workspace, in its folder.
    "sandbox.json",
    "workspace/",
];

const EXTENSIONS: [&str; 13] =
    [".rs", ".md", ".toml", ".sql", ".ts", ".tsx", ".mjs", ".py", ".sh", ".json", ".txt", ".yaml", ".yml"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Whether a code span looks like a path: no spaces, and a file extension
/// or a trailing slash (a folder).
fn is_path(span: &str) -> bool {
    !span.is_empty()
        && span != "/"
        && !span.contains(char::is_whitespace)
        && !span.contains("://")
        && !span.contains('<')
        && (span.ends_with('/') || EXTENSIONS.iter().any(|e| span.ends_with(e)))
}

/// Whether some file or folder under `dir` ends with `suffix`.
fn found_under(dir: &Path, suffix: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if matches!(name.to_str(), Some("node_modules" | "target" | ".git" | "dist")) {
            continue;
        }
        let text = path.to_string_lossy();
        if text.ends_with(suffix.trim_end_matches('/')) && (!suffix.ends_with('/') || path.is_dir()) {
            return true;
        }
        if path.is_dir() && found_under(&path, suffix) {
            return true;
        }
    }
    false
}

#[test]
fn every_path_architecture_names_exists() {
    let root = root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut section: Option<PathBuf> = None;
    let mut missing = Vec::new();
    let mut checked = 0;
    for (number, line) in text.lines().enumerate() {
        if let Some(heading) = line.strip_prefix("### `").and_then(|h| h.strip_suffix('`')) {
            section = Some(root.join(heading));
            continue;
        }
        if line.starts_with("## ") {
            section = None;
        }
        // Code spans are the odd pieces between backticks.
        for span in line.split('`').skip(1).step_by(2).filter(|s| is_path(s)) {
            if RUNTIME_FILES.contains(&span) {
                continue;
            }
            checked += 1;
            let relative = span.trim_start_matches("./");
            let exists = root.join(relative).exists()
                || section.as_ref().is_some_and(|crate_dir| {
                    crate_dir.join(relative).exists()
                        || crate_dir.join("src").join(relative).exists()
                        || found_under(crate_dir, &format!("/{relative}"))
                });
            if !exists {
                missing.push(format!("line {}: `{span}`", number + 1));
            }
        }
    }
    assert!(checked > 50, "the check found only {checked} paths: is ARCHITECTURE.md still where it was?");
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist:\n{}", missing.join("\n"));
}

/// README.md is a front page (what Cairn is, the two commands, the shapes,
/// using it, links); references live in docs/. Past this it has become a
/// reference again.
#[test]
fn the_readme_stays_a_front_page() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let chars = readme.chars().count();
    assert!(chars <= 15_000, "README.md has {chars} characters, over 15,000: move reference material into docs/");
    for link in ["docs/deploy.md", "docs/configuration.md", "docs/events.md", "ARCHITECTURE.md", "BENCHMARKS.md"] {
        assert!(readme.contains(link), "README.md no longer links {link}");
        assert!(root().join(link).exists(), "README.md links {link}, which does not exist");
    }
}
