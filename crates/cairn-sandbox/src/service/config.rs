//! How the local backend is configured: limits, idle timers and caps, the
//! egress proxy and the snapshots, from `sandbox.*`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::sandbox::{SandboxError, SandboxResult, Sandboxes};

use super::LocalSandboxes;
use crate::egress::Egress;
use crate::limits::Limits;
use crate::packages::PackageIndex;

/// How the local backend runs sandboxes.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where workspaces, the warm pool and the runtime files live.
    pub root: PathBuf,
    /// The sandbox's Python (a venv's `bin/python`); `None` for the host's `python3`.
    pub python: Option<PathBuf>,
    /// Limits of a sandbox whose policy names none.
    pub defaults: Limits,
    /// The most a policy may ask for.
    pub maximum: Limits,
    /// Kernels kept started ahead of need (0: none).
    pub pool_size: usize,
    /// A running sandbox unused this long is paused.
    pub idle_pause: Duration,
    /// A paused sandbox unused this long is destroyed.
    pub idle_reclaim: Duration,
    /// Running sandboxes one owner may have.
    pub max_running_per_user: usize,
    /// Running sandboxes on this host.
    pub max_running: usize,
    /// The egress proxy for policies that allow network; `None`: no sandbox
    /// on this host may have network.
    pub egress: Option<Egress>,
    /// Python every kernel runs first (the tools' functions).
    pub prelude: Option<String>,
    /// Where workspaces are snapshotted (a sandbox host of the distributed
    /// shape); `None`: nowhere.
    pub snapshots: Option<crate::Snapshots>,
    /// A container engine to run each kernel in; `None`: bubblewrap.
    pub container: Option<ContainerConfig>,
    /// The package index projects' sandboxes may install from; `None`: no
    /// sandbox here installs packages.
    pub packages: Option<PackageIndex>,
}

/// The container backend: the engine's socket, the image and its Python.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    pub engine: String,
    pub image: String,
    pub python: PathBuf,
}

impl LocalConfig {
    /// Defaults for a root folder: the host's Python, default limits, a warm
    /// pool of 2, pause after 15 minutes idle, reclaim after 7 days.
    pub fn new(root: PathBuf) -> LocalConfig {
        LocalConfig {
            root,
            python: None,
            defaults: Limits::default(),
            maximum: Limits::default(),
            pool_size: 2,
            idle_pause: Duration::from_secs(15 * 60),
            idle_reclaim: Duration::from_secs(7 * 24 * 3600),
            max_running_per_user: 4,
            max_running: 32,
            egress: None,
            prelude: None,
            snapshots: None,
            container: None,
            packages: None,
        }
    }
}

impl LocalConfig {
    /// The local backend as configured (`sandbox.*`), with its files under
    /// `<data_dir>/sandboxes`. With `sandbox.allow_network`, this starts the
    /// egress proxy (so it must run inside the async runtime).
    pub fn from_config(config: &cairn_config::SandboxConfig, data_dir: &Path) -> SandboxResult<LocalConfig> {
        let root = data_dir.join("sandboxes");
        let mb = |v: u64| v << 20;
        let defaults = Limits {
            memory_bytes: mb(config.memory_mb),
            processes: config.processes,
            wall_time: Duration::from_secs(config.wall_time_secs),
            output_bytes: usize::try_from(config.output_kb << 10).unwrap_or(usize::MAX),
            disk_bytes: mb(config.disk_mb),
            ..Limits::default()
        };
        let maximum = Limits {
            memory_bytes: mb(config.max_memory_mb),
            processes: config.max_processes,
            wall_time: Duration::from_secs(config.max_wall_time_secs),
            disk_bytes: mb(config.max_disk_mb),
            ..defaults
        };
        let packages = if config.package_index.is_empty() {
            None
        } else {
            let index = PackageIndex::start(
                &root.join("egress-packages"),
                config.package_index.expose(),
                &config.package_file_hosts,
                config.egress_allow.clone(),
            )
            .map_err(|e| SandboxError::Unavailable(format!("cannot start the package index proxy: {e}")))?;
            Some(PackageIndex {
                install_time: Duration::from_secs(config.package_install_secs),
                max_bytes: config.package_env_mb << 20,
                ..index
            })
        };
        let egress = if config.allow_network {
            let rules = crate::EgressRules {
                ports: config.egress_ports.clone(),
                allow: config.egress_allow.clone(),
                ..crate::EgressRules::default()
            };
            Some(
                Egress::start(&root.join("egress"), rules)
                    .map_err(|e| SandboxError::Unavailable(format!("cannot start the egress proxy: {e}")))?,
            )
        } else {
            None
        };
        Ok(LocalConfig {
            python: (!config.python.is_empty()).then(|| PathBuf::from(&config.python)),
            defaults,
            maximum,
            pool_size: config.pool_size,
            idle_pause: Duration::from_secs(config.idle_pause_secs),
            idle_reclaim: Duration::from_secs(config.idle_reclaim_secs),
            max_running_per_user: config.max_running_per_user,
            max_running: config.max_running,
            egress,
            prelude: None,
            snapshots: None,
            packages,
            container: (config.backend == cairn_config::SandboxBackend::Container).then(|| ContainerConfig {
                engine: config.container_engine.clone(),
                image: config.container_image.clone(),
                python: PathBuf::from(&config.container_python),
            }),
            root,
        })
    }
}

/// The configured sandboxes: a sandbox host's when `sandbox.host_url` is
/// set, else this machine's.
pub async fn from_config(config: &cairn_config::SandboxConfig, data_dir: &Path) -> SandboxResult<Arc<dyn Sandboxes>> {
    if config.backend == cairn_config::SandboxBackend::E2b {
        let limits = cairn_core::sandbox::EffectiveLimits {
            network: false,
            memory_bytes: config.memory_mb << 20,
            processes: config.processes,
            wall_time_secs: config.wall_time_secs,
            disk_bytes: config.disk_mb << 20,
            output_bytes: config.output_kb << 10,
            open_files: Limits::default().open_files,
        };
        return Ok(Arc::new(crate::E2bSandboxes::new(crate::E2bConfig {
            api_url: config.e2b_api_url.clone(),
            sandbox_url: config.e2b_sandbox_url.clone(),
            domain: config.e2b_domain.clone(),
            api_key: config.e2b_api_key.expose().to_owned(),
            template: config.e2b_template.clone(),
            timeout_secs: config.e2b_timeout_secs,
            limits,
        })?));
    }
    if config.host_url.is_empty() {
        Ok(Arc::new(LocalSandboxes::start(LocalConfig::from_config(config, data_dir)?).await?))
    } else {
        Ok(Arc::new(crate::RemoteSandboxes::new(&config.host_url, config.host_token.expose())?))
    }
}
