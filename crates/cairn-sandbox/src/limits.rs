//! Resource limits of one sandbox: memory and process count through a
//! cgroup (v1 or v2, whichever the host has), open files and file size
//! through rlimits, wall time and output size watched by the host.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The limits a sandbox runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Memory of all the sandbox's processes together.
    pub memory_bytes: u64,
    /// Processes and threads at once.
    pub processes: u32,
    /// Wall time of one execution; then it is interrupted (and the kernel
    /// restarted if it does not stop).
    pub wall_time: Duration,
    /// Output (stdout and stderr) kept per execution; the rest is dropped.
    pub output_bytes: usize,
    /// Open files per process.
    pub open_files: u32,
    /// Largest file a process may write.
    pub file_bytes: u64,
    /// Everything in the workspace together: growth past it stops the
    /// execution.
    pub disk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 1 << 30,
            processes: 256,
            wall_time: Duration::from_secs(120),
            output_bytes: 1 << 20,
            open_files: 1024,
            file_bytes: 1 << 30,
            disk_bytes: 2 << 30,
        }
    }
}

/// Human-readable sizes for limit messages.
pub(crate) fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Which cgroup hierarchy enforces memory and process limits here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupSupport {
    /// cgroup v2: one folder with `memory.max` and `pids.max`.
    V2(PathBuf),
    /// cgroup v1: the `memory` and `pids` hierarchies.
    V1 { memory: PathBuf, pids: PathBuf },
    /// Neither is writable: memory and process limits are not enforced.
    None(String),
}

impl CgroupSupport {
    /// Looks at the host (once per process: later calls get the same answer,
    /// so concurrent starts never see a probe of each other's).
    pub fn detect() -> CgroupSupport {
        static DETECTED: std::sync::OnceLock<CgroupSupport> = std::sync::OnceLock::new();
        DETECTED.get_or_init(Self::probe).clone()
    }

    fn probe() -> CgroupSupport {
        let root = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if controllers.contains("memory") && controllers.contains("pids") && writable(root) {
            return CgroupSupport::V2(root.join("cairn"));
        }
        let (memory, pids) = (root.join("memory"), root.join("pids"));
        if writable(&memory) && writable(&pids) {
            return CgroupSupport::V1 { memory: memory.join("cairn"), pids: pids.join("cairn") };
        }
        CgroupSupport::None("no writable cgroup v1 or v2 hierarchy with the memory and pids controllers".into())
    }
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!("cairn-probe-{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()));
    let ok = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    ok
}

/// The cgroup folders of one sandbox; removed (after killing what is left in
/// them) on drop.
#[derive(Debug)]
pub(crate) struct Cgroup {
    memory_dir: PathBuf,
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl Cgroup {
    pub(crate) fn create(support: &CgroupSupport, id: &str, limits: &Limits) -> std::io::Result<Option<Cgroup>> {
        let write = |dir: &Path, file: &str, value: String| std::fs::write(dir.join(file), value);
        match support {
            CgroupSupport::V2(base) => {
                std::fs::create_dir_all(base)?;
                let _ = std::fs::write(base.join("cgroup.subtree_control"), "+memory +pids");
                let dir = base.join(id);
                std::fs::create_dir_all(&dir)?;
                write(&dir, "memory.max", limits.memory_bytes.to_string())?;
                let _ = write(&dir, "memory.swap.max", "0".into());
                write(&dir, "pids.max", limits.processes.to_string())?;
                Ok(Some(Cgroup { memory_dir: dir.clone(), dirs: vec![dir], v2: true }))
            }
            CgroupSupport::V1 { memory, pids } => {
                let (memory, pids) = (memory.join(id), pids.join(id));
                std::fs::create_dir_all(&memory)?;
                std::fs::create_dir_all(&pids)?;
                write(&memory, "memory.limit_in_bytes", limits.memory_bytes.to_string())?;
                let _ = write(&memory, "memory.memsw.limit_in_bytes", limits.memory_bytes.to_string());
                write(&pids, "pids.max", limits.processes.to_string())?;
                Ok(Some(Cgroup { memory_dir: memory.clone(), dirs: vec![memory, pids], v2: false }))
            }
            CgroupSupport::None(_) => Ok(None),
        }
    }

    /// The folders a process joins to come under the limits, `:`-separated
    /// (the sandbox's launcher joins them before it starts anything).
    pub(crate) fn joined_dirs(&self) -> String {
        self.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
    }

    /// How many times the kernel's OOM killer struck in this sandbox.
    pub(crate) fn oom_kills(&self) -> u64 {
        let file = if self.v2 { "memory.events" } else { "memory.oom_control" };
        std::fs::read_to_string(self.memory_dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok()))
            .unwrap_or(0)
    }

    /// The file listing the sandbox's processes.
    pub(crate) fn procs_file(&self) -> PathBuf {
        self.dirs.last().unwrap_or(&self.memory_dir).join("cgroup.procs")
    }

    /// Processes currently in the sandbox.
    pub(crate) fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.procs_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        for dir in &self.dirs {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
