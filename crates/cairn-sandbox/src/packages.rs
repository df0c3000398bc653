//! Packages a project's sandboxes install: its own Python environment,
//! layered on the base stack, reached through an egress proxy that lets
//! nothing through but the package index.
//!
//! Each project keeps, under `<root>/packages/<project>/`, one environment
//! per list of requirements (`env-<key>/`, the key a hash of the
//! requirements, the interpreter and the index) and pip's download cache
//! (`cache/`). An environment is a virtual environment written by the host
//! (no code of its runs there): `pyvenv.cfg` names the base interpreter, and
//! a `.pth` file puts the base stack's packages after its own, so what the
//! project installs comes first and everything else is shared. A sandbox
//! granted packages runs its kernel with the environment's interpreter,
//! mounted read-write at `/opt/project-env`; `pip install` (from Python or a
//! shell command) installs there and the project's next sandbox has it. The
//! requirements are installed once, by a kernel of their own under the same
//! isolation (installing runs the packages' build code), before the first
//! sandbox that needs them starts; a failed install leaves nothing behind
//! and says why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cairn_core::ProjectId;
use cairn_core::sandbox::{PackagePolicy, SandboxError, SandboxResult};

use crate::container;
use crate::egress::{Egress, EgressRules};
use crate::kernel::{Isolation, Kernel, KernelOptions};
use crate::{limits, workspace};

/// Where a project's environment is mounted in its sandboxes.
pub(crate) const ENV_INSIDE: &str = "/opt/project-env";
/// Where pip's cache of the project is mounted.
pub(crate) const CACHE_INSIDE: &str = "/opt/project-cache";
/// Environments kept per project (the newest; others are removed).
const KEPT: usize = 3;
/// Output of a failed install quoted in its error.
const QUOTED: usize = 3000;

/// The package index of this host and the proxy that reaches only it.
#[derive(Debug, Clone)]
pub struct PackageIndex {
    /// Its simple API (pip's `--index-url`).
    pub url: String,
    pub(crate) egress: Egress,
    /// Wall time of installing a project's requirements.
    pub install_time: Duration,
    /// Size of one project's environments together.
    pub max_bytes: u64,
}

impl PackageIndex {
    /// Starts the proxy for `url` (and the file hosts it sends packages
    /// from) on a socket in `dir`. `allow` names private `address:port`
    /// pairs it may reach (a mirror on the local network).
    pub fn start(
        dir: &Path,
        url: &str,
        file_hosts: &[String],
        allow: Vec<std::net::SocketAddr>,
    ) -> std::io::Result<PackageIndex> {
        let (host, port) = host_of(url)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no host in {url}")))?;
        let mut hosts = vec![host];
        hosts.extend(file_hosts.iter().cloned());
        let mut ports = vec![port, 443];
        ports.dedup();
        let egress = Egress::start(dir, EgressRules { ports, allow, hosts })?;
        Ok(PackageIndex { url: url.to_owned(), egress, install_time: Duration::from_secs(900), max_bytes: 4 << 30 })
    }

    /// Environment variables of a kernel using `env`.
    fn variables(&self) -> Vec<(String, String)> {
        let mut variables = vec![
            ("PIP_INDEX_URL".to_owned(), self.url.clone()),
            ("PIP_CACHE_DIR".to_owned(), CACHE_INSIDE.to_owned()),
            ("PIP_DISABLE_PIP_VERSION_CHECK".to_owned(), "1".to_owned()),
            ("PIP_NO_INPUT".to_owned(), "1".to_owned()),
            ("PIP_PROGRESS_BAR".to_owned(), "off".to_owned()),
            ("VIRTUAL_ENV".to_owned(), ENV_INSIDE.to_owned()),
        ];
        // pip trusts plain HTTP only on loopback; a mirror the operator
        // configured over HTTP is trusted by name.
        if self.url.starts_with("http://")
            && let Some((host, _)) = host_of(&self.url)
        {
            variables.push(("PIP_TRUSTED_HOST".to_owned(), host));
        }
        variables
    }
}

/// The host and port of an `http(s)://` URL.
fn host_of(url: &str) -> Option<(String, u16)> {
    let (rest, default) = match url.split_once("://")? {
        ("http", rest) => (rest, 80),
        ("https", rest) => (rest, 443),
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
        _ => (authority, default),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// What a kernel of a sandbox granted packages mounts and runs.
#[derive(Debug, Clone)]
pub struct ProjectEnv {
    /// The environment (mounted read-write at [`ENV_INSIDE`]).
    pub(crate) env: PathBuf,
    /// pip's cache (mounted read-write at [`CACHE_INSIDE`]).
    pub(crate) cache: PathBuf,
    /// The environment's packages folder, inside the sandbox.
    pub(crate) site: String,
    pub(crate) variables: Vec<(String, String)>,
}

impl ProjectEnv {
    /// The environment's interpreter, inside the sandbox.
    pub(crate) fn python(&self) -> PathBuf {
        Path::new(ENV_INSIDE).join("bin/python")
    }
}

/// The project environments of one host, built one at a time per
/// environment.
#[derive(Debug)]
pub(crate) struct Environments {
    root: PathBuf,
    index: PackageIndex,
    building: tokio::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl Environments {
    pub(crate) fn new(root: PathBuf, index: PackageIndex) -> Environments {
        Environments { root, index, building: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// The egress proxy that reaches the index only.
    pub(crate) fn egress(&self) -> &Egress {
        &self.index.egress
    }

    /// The project's environment for `policy`, built first if there is none
    /// (its requirements installed by a kernel like `template`'s).
    pub(crate) async fn prepare(
        &self,
        project: ProjectId,
        policy: &PackagePolicy,
        template: &KernelOptions,
    ) -> SandboxResult<ProjectEnv> {
        let (python, sites) = template.base_inside();
        let version = &template.python_version;
        let mut description = format!("{}\n{version}\n{}\n{}\n", python.display(), sites.join(":"), self.index.url);
        for requirement in &policy.requirements {
            description.push_str(requirement);
            description.push('\n');
        }
        let project_dir = self.root.join(project.to_string());
        let env = project_dir.join(format!("env-{:016x}", cairn_core::hash::fnv1a(description.as_bytes())));
        let cache = project_dir.join("cache");
        let project_env = ProjectEnv {
            env: env.clone(),
            cache: cache.clone(),
            site: format!("{ENV_INSIDE}/lib/python{version}/site-packages"),
            variables: self.index.variables(),
        };
        let lock = self.building.lock().await.entry(env.clone()).or_default().clone();
        let _building = lock.lock().await;
        let io = |what: &'static str| move |e: std::io::Error| SandboxError::Internal(format!("{what}: {e}"));
        let complete = env.join(".complete");
        if complete.exists() {
            if workspace::usage_of(&project_dir).await <= self.index.max_bytes {
                // The newest used is kept the longest.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&complete)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                return Ok(project_env);
            }
            tracing::warn!(env = %env.display(), "a project's packages outgrew their limit; rebuilding from its requirements");
            remove_dir(&cache);
        }
        remove_dir(&env);
        let new_cache = !cache.exists();
        std::fs::create_dir_all(&cache).map_err(io("cannot make the package cache"))?;
        write_skeleton(&env, &python, version, &sites).map_err(io("cannot make the project environment"))?;
        let requirements = policy.requirements.iter().map(|r| format!("{r}\n")).collect::<String>();
        std::fs::write(env.join("requirements.txt"), requirements).map_err(io("cannot write the requirements"))?;
        // A container's user must write there. Only now, while no sandbox
        // uses them: walking folders a sandbox changes could be led astray.
        if let Isolation::Container(_) = template.isolation {
            let adopt = |dir: &Path| container::adopt(dir).map_err(|e| SandboxError::Internal(e.to_string()));
            adopt(&env)?;
            if new_cache {
                adopt(&cache)?;
            }
        }
        if !policy.requirements.is_empty()
            && let Err(error) = self.install(&project_dir, &project_env, template).await
        {
            remove_dir(&env);
            return Err(error);
        }
        let used = workspace::usage_of(&env).await;
        if used > self.index.max_bytes {
            remove_dir(&env);
            return Err(SandboxError::InvalidPolicy(format!(
                "the project's requirements take {}, more than the {} this host allows (sandbox.package_env_mb)",
                limits::size(used),
                limits::size(self.index.max_bytes)
            )));
        }
        std::fs::write(&complete, b"").map_err(io("cannot mark the environment built"))?;
        prune(&project_dir, &env);
        Ok(project_env)
    }

    /// Installs the requirements in a kernel of their own.
    async fn install(&self, project_dir: &Path, env: &ProjectEnv, template: &KernelOptions) -> SandboxResult<()> {
        let workspace = project_dir.join("install");
        remove_dir(&workspace);
        std::fs::create_dir_all(&workspace).map_err(|e| SandboxError::Internal(e.to_string()))?;
        let mut options = KernelOptions {
            workspace: workspace.clone(),
            egress: Some(self.index.egress.clone()),
            project_env: Some(env.clone()),
            prelude: None,
            ..template.clone()
        };
        options.limits.wall_time = self.index.install_time;
        options.limits.output_bytes = options.limits.output_bytes.max(1 << 20);
        tracing::info!(env = %env.env.display(), "installing a project's requirements");
        let started = std::time::Instant::now();
        let mut kernel = Kernel::start(&options).await.map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        let command = format!("python -m pip install -r {ENV_INSIDE}/requirements.txt 2>&1");
        let outcome = kernel.shell(&command, |_| {}).await;
        kernel.shutdown().await;
        remove_dir(&workspace);
        let outcome = outcome.map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        if outcome.exit_code == Some(0) && outcome.limit.is_none() {
            tracing::info!(env = %env.env.display(), secs = started.elapsed().as_secs_f64(), "requirements installed");
            return Ok(());
        }
        let text = outcome.stream("stdout") + &outcome.stream("stderr");
        let tail: String = {
            let chars: Vec<char> = text.trim_end().chars().collect();
            chars[chars.len().saturating_sub(QUOTED)..].iter().collect()
        };
        let why = outcome.limit.unwrap_or_else(|| format!("pip ended with {:?}", outcome.exit_code));
        Err(SandboxError::InvalidPolicy(format!("the project's requirements could not be installed ({why}):\n{tail}")))
    }
}

/// Writes an empty virtual environment for `python` (as seen inside the
/// sandbox) at `env`, with the base stack's package folders after its own.
fn write_skeleton(env: &Path, python: &Path, version: &str, base_sites: &[String]) -> std::io::Result<()> {
    let bin = env.join("bin");
    let site = env.join(format!("lib/python{version}/site-packages"));
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&site)?;
    let home = python.parent().map(|p| p.display().to_string()).unwrap_or_default();
    std::fs::write(
        env.join("pyvenv.cfg"),
        format!("home = {home}\ninclude-system-site-packages = false\nversion = {version}\n"),
    )?;
    std::os::unix::fs::symlink(python, bin.join("python"))?;
    std::os::unix::fs::symlink("python", bin.join("python3"))?;
    let script =
        format!("#!{ENV_INSIDE}/bin/python\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n");
    for name in ["pip", "pip3"] {
        std::fs::write(bin.join(name), &script)?;
        std::fs::set_permissions(bin.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let lines: String = base_sites.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(site.join("_cairn_base.pth"), lines)
}

/// Removes the project's environments but the `KEPT` newest (and `current`).
fn prune(project_dir: &Path, current: &Path) {
    let Ok(entries) = std::fs::read_dir(project_dir) else { return };
    let mut envs: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("env-") && e.path() != current)
        .map(|e| {
            let used = std::fs::metadata(e.path().join(".complete")).and_then(|m| m.modified());
            (used.unwrap_or(SystemTime::UNIX_EPOCH), e.path())
        })
        .collect();
    envs.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, old) in envs.into_iter().skip(KEPT - 1) {
        tracing::info!(env = %old.display(), "removing an old project environment");
        remove_dir(&old);
    }
}

fn remove_dir(dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), %error, "cannot remove a folder");
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn index_hosts_are_read_from_urls() {
        assert_eq!(host_of("https://pypi.org/simple"), Some(("pypi.org".into(), 443)));
        assert_eq!(host_of("http://127.0.0.1:8081/simple/"), Some(("127.0.0.1".into(), 8081)));
        assert_eq!(host_of("https://user:pw@Mirror.example:8443"), Some(("mirror.example".into(), 8443)));
        assert_eq!(host_of("http://[::1]:9000/x"), Some(("::1".into(), 9000)));
        assert_eq!(host_of("ftp://example.org"), None);
        assert_eq!(host_of("https:///simple"), None);
    }
}
