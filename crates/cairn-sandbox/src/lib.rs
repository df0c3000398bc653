//! Cairn's secure sandbox: a private workspace folder and a persistent
//! Python kernel per thread, isolated from the host.
//!
//! The kernel is a small driver speaking a framed JSON protocol
//! (`kernel/driver.py`), started under bubblewrap with its own mount, PID,
//! IPC, UTS and network namespaces, a read-only view of the Python
//! installation, a writable workspace and a private `/tmp`, a seccomp
//! filter, cgroup and rlimit limits, and a scrubbed environment.
//! [`LocalSandboxes`] is the local backend of the
//! [`Sandboxes`](cairn_core::sandbox::Sandboxes) interface: lifecycle, warm
//! pool, idle timers, caps, workspace files and policy-granted egress.
//!
//! Architecture invariant: untrusted code never runs in the server process
//! and never sees the host's environment, files or network; the host only
//! talks to it through the protocol.

mod cluster;
mod container;
mod e2b;
mod egress;
mod kernel;
mod limits;
mod packages;
mod pool;
mod protocol;
mod remote;
mod seccomp;
mod service;
mod snapshot;
mod workspace;

pub use cairn_core::sandbox::{ExecOutcome, Output};
pub use cluster::{ClusterSandboxes, Heartbeat};
pub use container::ContainerEngine;
pub use e2b::{E2bConfig, E2bSandboxes};
pub use egress::{Egress, EgressRules};
pub use kernel::{Isolation, Kernel, KernelHandle, KernelOptions};
pub use limits::{CgroupSupport, Limits};
pub use packages::{PackageIndex, ProjectEnv};
pub use pool::KernelPool;
pub use remote::RemoteSandboxes;
pub use service::{ContainerConfig, LocalConfig, LocalSandboxes, from_config, workspace_dir};
pub use snapshot::{SnapshotStats, Snapshots, fingerprint as snapshot_fingerprint};

/// What a sandbox call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// bubblewrap or Python is missing or unusable: an installation problem.
    #[error("the sandbox cannot start: {0}")]
    Unavailable(String),
    /// The kernel process ended (crashed, killed by a limit, or exited).
    #[error("the kernel stopped: {0}")]
    KernelDied(String),
    /// The kernel broke the protocol.
    #[error("the kernel sent something unexpected: {0}")]
    Protocol(String),
    #[error("I/O error talking to the kernel: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
