//! Kernels in containers, through the Docker Engine API: Docker itself, or
//! Podman's compatible socket (`podman system service`).
//!
//! A container runs the same driver under the same limits as a bubblewrap
//! kernel and talks the same framed protocol over its attached stdin and
//! stdout. It has no network (`none`; the egress proxy's socket is mounted
//! in when a policy grants it), no capabilities, no new privileges, a
//! read-only root file system, a private `/tmp`, Cairn's own system-call
//! filter (the bubblewrap backend's, written as an OCI seccomp profile),
//! memory and process limits in the engine's cgroup, rlimits for open files
//! and file size, an init process reaping orphans, and the sandbox's
//! workspace as its only writable mount.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::kernel::KernelOptions;
use crate::{Error, Result, egress, packages, seccomp};

/// The label every sandbox container carries: the engine's containers of
/// one Cairn host are found (and leftovers removed) by it.
const LABEL: &str = "io.cairn.sandbox";

/// Docker's detach sequence would end an attachment when the framed input
/// happened to hold it; this one cannot occur there (a frame's 4-byte length
/// is followed by JSON, which never holds a raw control character).
const DETACH_KEYS: &str = "ctrl-a,ctrl-a,ctrl-a,ctrl-a,ctrl-a";

/// Stderr kept from a container, for the message when it fails to start.
const STDERR_KEPT: usize = 16 * 1024;

/// A container engine and the image kernels run in.
#[derive(Debug)]
pub struct ContainerEngine {
    docker: Docker,
    image: String,
    /// The interpreter inside the image.
    python: PathBuf,
    /// Podman reads a seccomp profile from a path, Docker takes its text.
    seccomp: String,
    /// This host's value of [`LABEL`].
    owner: String,
}

/// A started container: its id, the host PID of its first process, and the
/// protocol's two directions.
pub(crate) struct Launched {
    pub id: String,
    pub pid: u32,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    pub output: Pin<Box<dyn AsyncRead + Send>>,
    pub stderr: Arc<std::sync::Mutex<Vec<u8>>>,
}

fn unavailable(what: &str) -> impl Fn(bollard::errors::Error) -> Error + '_ {
    move |error| Error::Unavailable(format!("{what}: {error}"))
}

impl ContainerEngine {
    /// Connects to the engine at `socket` (a Unix socket path or
    /// `unix://` URL), checks that `image` is there, writes the seccomp
    /// profile into `runtime_dir` and removes containers an earlier run of
    /// this host left behind.
    pub async fn connect(socket: &str, image: &str, python: &Path, runtime_dir: &Path) -> Result<ContainerEngine> {
        let docker = Docker::connect_with_socket(socket, 120, bollard::API_DEFAULT_VERSION)
            .map_err(unavailable("cannot reach the container engine"))?;
        let version = docker.version().await.map_err(unavailable(&format!("the container engine at {socket}")))?;
        let podman = version
            .components
            .unwrap_or_default()
            .iter()
            .any(|component| component.name.to_ascii_lowercase().contains("podman"));
        docker.inspect_image(image).await.map_err(|e| {
            Error::Unavailable(format!("the sandbox image {image} is not in the container engine: {e}"))
        })?;
        std::fs::create_dir_all(runtime_dir)?;
        let profile = seccomp::oci_profile()?;
        let seccomp = if podman {
            let path = runtime_dir.join("seccomp.json");
            std::fs::write(&path, &profile)?;
            path.display().to_string()
        } else {
            profile
        };
        let owner = runtime_dir.display().to_string();
        let engine = ContainerEngine { docker, image: image.to_owned(), python: python.to_owned(), seccomp, owner };
        engine.remove_leftovers().await;
        Ok(engine)
    }

    /// The interpreter inside the image.
    pub fn python(&self) -> &Path {
        &self.python
    }

    async fn remove_leftovers(&self) {
        let filters = std::collections::HashMap::from([("label", vec![format!("{LABEL}={}", self.owner)])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let Ok(containers) = self.docker.list_containers(Some(options)).await else { return };
        for container in containers {
            if let Some(id) = container.id {
                tracing::info!(container = %id, "removing a sandbox container left by an earlier run");
                self.remove(&id).await;
            }
        }
    }

    /// Creates and starts a container for a kernel with these options,
    /// attached before it starts so that nothing it prints is missed.
    pub(crate) async fn launch(&self, options: &KernelOptions) -> Result<Launched> {
        let limits = &options.limits;
        let mut binds = vec![
            format!("{}:/workspace:rw", options.workspace.display()),
            format!("{}:/opt/cairn:ro", options.runtime_dir.display()),
        ];
        // Package folders at paths of their own (the host's may lie under
        // a home the sandbox user cannot enter).
        for (site, inside) in options.site_packages.iter().zip(sites_inside(options.site_packages.len())) {
            binds.push(format!("{}:{inside}:ro", site.display()));
        }
        let (python, sites, variables) = options.launch_view();
        let (uid, gid) = sandbox_user();
        adopt_workspace(&options.workspace, uid, gid)?;
        let mut env = vec![
            format!(
                "PATH={}/usr/local/bin:/usr/bin:/bin",
                if options.project_env.is_some() { format!("{}/bin:", packages::ENV_INSIDE) } else { String::new() }
            ),
            "HOME=/workspace".to_owned(),
            "LANG=C.UTF-8".to_owned(),
            "MPLBACKEND=Agg".to_owned(),
            "PYTHONDONTWRITEBYTECODE=1".to_owned(),
        ];
        if !sites.is_empty() {
            // The packages for the `python` a shell command starts too.
            env.push(format!("PYTHONPATH={}", sites.join(":")));
        }
        if let Some(egress) = &options.egress {
            binds.push(format!("{}:/run/cairn:ro", egress.dir().display()));
            env.push(format!("CAIRN_EGRESS=/run/cairn/{}", egress::SOCKET));
            for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                env.push(format!("{name}=http://127.0.0.1:3128"));
            }
        }
        if let Some(project) = &options.project_env {
            // Given to the sandbox user when made (`adopt`), never here: other
            // sandboxes of the project may be changing them now.
            for (dir, inside) in [(&project.env, packages::ENV_INSIDE), (&project.cache, packages::CACHE_INSIDE)] {
                binds.push(format!("{}:{inside}:rw", dir.display()));
            }
            env.extend(variables.iter().map(|(name, value)| format!("{name}={value}")));
        }
        let mut command = vec![
            "prlimit".to_owned(),
            format!("--nofile={0}:{0}", limits.open_files),
            format!("--fsize={0}:{0}", limits.file_bytes),
            "--core=0:0".to_owned(),
            python.display().to_string(),
            "-I".to_owned(),
            "-S".to_owned(),
            "-u".to_owned(),
            "/opt/cairn/driver.py".to_owned(),
        ];
        command.extend(sites.iter().cloned());
        let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
        let host = HostConfig {
            binds: Some(binds),
            network_mode: Some("none".to_owned()),
            memory: Some(memory),
            memory_swap: Some(memory),
            pids_limit: Some(i64::from(limits.processes)),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned(), format!("seccomp={}", self.seccomp)]),
            tmpfs: Some(std::collections::HashMap::from([(
                "/tmp".to_owned(),
                format!("rw,nosuid,nodev,size={}", limits.memory_bytes),
            )])),
            init: Some(true),
            ..HostConfig::default()
        };
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(command),
            env: Some(env),
            working_dir: Some("/workspace".to_owned()),
            hostname: Some("sandbox".to_owned()),
            user: Some(format!("{uid}:{gid}")),
            labels: Some(std::collections::HashMap::from([(LABEL.to_owned(), self.owner.clone())])),
            open_stdin: Some(true),
            stdin_once: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            network_disabled: Some(true),
            host_config: Some(host),
            ..ContainerCreateBody::default()
        };
        let name = format!("cairn-sandbox-{}", uuid::Uuid::now_v7().simple());
        let create = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(create), body)
            .await
            .map_err(unavailable("cannot create the sandbox's container"))?;
        let id = created.id;
        match self.attach_and_start(&id).await {
            Ok(launched) => Ok(launched),
            Err(error) => {
                self.remove(&id).await;
                Err(error)
            }
        }
    }

    async fn attach_and_start(&self, id: &str) -> Result<Launched> {
        let attach = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .detach_keys(DETACH_KEYS)
            .build();
        let attached = self
            .docker
            .attach_container(id, Some(attach))
            .await
            .map_err(unavailable("cannot attach to the sandbox"))?;
        self.docker.start_container(id, None).await.map_err(unavailable("cannot start the sandbox's container"))?;
        let inspected =
            self.docker.inspect_container(id, None).await.map_err(unavailable("cannot inspect the sandbox"))?;
        let pid = inspected.state.and_then(|s| s.pid).and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
        let stderr = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = stderr.clone();
        let stdout = attached.output.filter_map(move |item| {
            let kept = kept.clone();
            async move {
                match item {
                    Ok(LogOutput::StdOut { message }) => Some(Ok(message)),
                    Ok(LogOutput::StdErr { message }) => {
                        let mut kept = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        let room = STDERR_KEPT.saturating_sub(kept.len());
                        kept.extend_from_slice(&message[..message.len().min(room)]);
                        None
                    }
                    Ok(_) => None,
                    Err(error) => Some(Err(std::io::Error::other(error))),
                }
            }
        });
        Ok(Launched {
            id: id.to_owned(),
            pid,
            input: attached.input,
            output: Box::pin(tokio_util::io::StreamReader::new(Box::pin(stdout))),
            stderr,
        })
    }

    /// The exit code of a container whose kernel ended, once its init
    /// process has followed (within two seconds; `None` if it has not).
    pub(crate) async fn exit_code(&self, id: &str) -> Option<i64> {
        let mut waiting = self.docker.wait_container(id, None);
        match tokio::time::timeout(std::time::Duration::from_secs(2), waiting.next()).await {
            Ok(Some(Ok(done))) => Some(done.status_code),
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => Some(code),
            _ => {
                let state = self.docker.inspect_container(id, None).await.ok()?.state?;
                if state.running == Some(true) { None } else { state.exit_code }
            }
        }
    }

    /// Kills and removes a container (a few tries: an engine may refuse to
    /// remove one that is still exiting).
    pub(crate) async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        for attempt in 0..5u64 {
            match self.docker.remove_container(id, Some(options.clone())).await {
                Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return,
                Err(error) => {
                    if attempt == 4 {
                        tracing::warn!(container = %id, %error, "cannot remove a sandbox container");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100 * (attempt + 1))).await;
                }
            }
        }
    }

    /// Removes a container from a destructor: in the background when a
    /// runtime is there.
    pub(crate) fn remove_later(self: &Arc<Self>, id: String) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let engine = self.clone();
            runtime.spawn(async move { engine.remove(&id).await });
        }
    }
}

/// The user a container runs as: the one Cairn runs as, so that workspace
/// files belong to the same owner whichever side wrote them — or, when
/// Cairn runs as root, user 1000 (never root in a container), to whom the
/// workspace is then handed.
fn sandbox_user() -> (u32, u32) {
    let (uid, gid) = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    if uid == 0 { (SANDBOX_UID, SANDBOX_UID) } else { (uid, gid) }
}

/// Gives a folder Cairn just made, with what it holds, to the user its
/// containers run as (when that is not Cairn's own).
pub(crate) fn adopt(dir: &Path) -> Result<()> {
    let (uid, gid) = sandbox_user();
    adopt_workspace(dir, uid, gid)
}

/// The user of a container when Cairn runs as root (as under bubblewrap).
pub(crate) const SANDBOX_UID: u32 = 1000;

/// Gives the workspace, and everything in it, to the sandbox's user (only
/// when that is not Cairn's own, i.e. Cairn runs as root). Links are
/// changed themselves, never followed.
fn adopt_workspace(root: &Path, uid: u32, gid: u32) -> Result<()> {
    if uid == rustix::process::getuid().as_raw() {
        return Ok(());
    }
    let (uid, gid) = (Some(uid), Some(gid));
    std::os::unix::fs::lchown(root, uid, gid)?;
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            std::os::unix::fs::lchown(entry.path(), uid, gid)?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Where a container sees the first `count` package folders of the host.
pub(crate) fn sites_inside(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("/opt/site-packages/{i}")).collect()
}

/// The cgroup process list of the container whose first process is `pid`
/// (the memory controller's on cgroup v1, the unified one on v2).
pub(crate) fn procs_file(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return Some(PathBuf::from(format!("/sys/fs/cgroup/memory{path}/cgroup.procs")));
        }
        if controllers.is_empty() {
            unified = Some(PathBuf::from(format!("/sys/fs/cgroup{path}/cgroup.procs")));
        }
    }
    unified
}
