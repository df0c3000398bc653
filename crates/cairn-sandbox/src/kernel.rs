//! A Python kernel running under bubblewrap, or in a container.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use cairn_core::sandbox::{ExecHandler, ExecOutcome, Output};
use serde_json::{Value, json};
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::container::{self, ContainerEngine};
use crate::egress::{self, Egress};
use crate::limits::{self, Cgroup, CgroupSupport, Limits};
use crate::packages::{self, ProjectEnv};
use crate::{Error, Result, protocol, seccomp, workspace};

/// The driver, shipped inside the binary and written next to the workspaces.
const DRIVER: &str = include_str!("../kernel/driver.py");

/// Where a kernel runs and with what.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// The Python interpreter (inside its installation or venv).
    pub python: PathBuf,
    /// Folders the interpreter needs, mounted read-only at the same place
    /// (its installation, and a venv's base installation).
    pub python_roots: Vec<PathBuf>,
    /// The sandbox's private, writable workspace (mounted at `/workspace`).
    pub workspace: PathBuf,
    /// Folders with installed packages, put on the kernel's `sys.path` (the
    /// interpreter runs without `site` to start fast).
    pub site_packages: Vec<PathBuf>,
    /// Where the host keeps the driver (mounted read-only at `/opt/cairn`).
    pub runtime_dir: PathBuf,
    pub limits: Limits,
    /// How memory and process limits are enforced on this host.
    pub cgroups: CgroupSupport,
    /// Network through the host's egress proxy; `None`: no network at all.
    pub egress: Option<Egress>,
    /// Python run in every new kernel before anything else (the tools'
    /// functions), so it is there again after a restart.
    pub prelude: Option<Arc<str>>,
    /// What keeps the kernel from the host.
    pub isolation: Isolation,
    /// The interpreter's `major.minor`.
    pub python_version: String,
    /// The project's package environment, for a sandbox granted package
    /// installs: its interpreter runs the kernel, its packages come first.
    pub project_env: Option<ProjectEnv>,
}

/// What isolates a kernel from the host.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// bubblewrap's namespaces, Cairn's seccomp filter and cgroup, on this
    /// machine (the default).
    #[default]
    Bubblewrap,
    /// A container of this engine, from its image; `KernelOptions::python`
    /// is then the image's interpreter and `python_roots` are not mounted.
    Container(Arc<ContainerEngine>),
}

impl KernelOptions {
    /// Options for the `python3` on the PATH.
    pub fn with_host_python(workspace: PathBuf, runtime_dir: PathBuf) -> Result<KernelOptions> {
        Self::with_python(Path::new("python3"), workspace, runtime_dir)
    }

    /// Options for a given interpreter (e.g. the sandbox venv's `bin/python`):
    /// its installation (and a venv's base) is mounted, its package folders
    /// are put on the path.
    pub fn with_python(python: &Path, workspace: PathBuf, runtime_dir: PathBuf) -> Result<KernelOptions> {
        let probe = std::process::Command::new(python)
            .args([
                "-c",
                "import sys, site; print(sys.executable); print(sys.prefix); print(sys.base_prefix); \
                 print(':'.join(site.getsitepackages())); print('%d.%d' % sys.version_info[:2])",
            ])
            .output()
            .map_err(|e| Error::Unavailable(format!("{} cannot run: {e}", python.display())))?;
        let text = String::from_utf8_lossy(&probe.stdout);
        let lines: Vec<&str> = text.lines().collect();
        let [executable, prefix, base, sites, version] = lines.as_slice() else {
            return Err(Error::Unavailable("python3 did not describe itself".into()));
        };
        let mut roots = vec![PathBuf::from(prefix)];
        if base != prefix {
            roots.push(PathBuf::from(base));
        }
        // A venv's interpreter is a link into its base installation.
        if let Ok(real) = std::fs::canonicalize(executable)
            && let Some(install) = real.parent().and_then(Path::parent)
            && !roots.iter().any(|r| install.starts_with(r))
        {
            roots.push(install.to_owned());
        }
        Ok(KernelOptions {
            python: PathBuf::from(executable),
            python_roots: roots,
            site_packages: sites.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect(),
            workspace,
            runtime_dir,
            limits: Limits::default(),
            cgroups: CgroupSupport::detect(),
            egress: None,
            prelude: None,
            isolation: Isolation::Bubblewrap,
            python_version: (*version).to_owned(),
            project_env: None,
        })
    }

    /// Options for kernels in containers of `engine`: its image's
    /// interpreter, with the site-packages of these options (a host venv's,
    /// mounted read-only) still on the path.
    pub fn in_container(mut self, engine: Arc<ContainerEngine>) -> KernelOptions {
        self.python = engine.python().to_owned();
        self.python_roots = Vec::new();
        self.isolation = Isolation::Container(engine);
        self
    }

    /// The base interpreter and its package folders as a kernel sees them
    /// (a container mounts the host's folders at paths of its own).
    pub(crate) fn base_inside(&self) -> (PathBuf, Vec<String>) {
        let (python, sites) = self.base_launch();
        match &self.isolation {
            // A venv's interpreter is a link: the environment links the real one.
            Isolation::Bubblewrap => (std::fs::canonicalize(&python).unwrap_or(python), sites),
            Isolation::Container(_) => (python, sites),
        }
    }

    /// The base interpreter a kernel is started with, and its package
    /// folders, as the kernel sees them.
    fn base_launch(&self) -> (PathBuf, Vec<String>) {
        match &self.isolation {
            Isolation::Bubblewrap => {
                (self.python.clone(), self.site_packages.iter().map(|s| s.display().to_string()).collect())
            }
            Isolation::Container(engine) => {
                (engine.python().to_owned(), container::sites_inside(self.site_packages.len()))
            }
        }
    }

    /// What the kernel runs: the interpreter, its package folders (the
    /// project's first), and the variables of a project environment.
    pub(crate) fn launch_view(&self) -> (PathBuf, Vec<String>, Vec<(String, String)>) {
        let (base_python, mut sites) = self.base_launch();
        match &self.project_env {
            None => (base_python, sites, Vec::new()),
            Some(env) => {
                sites.insert(0, env.site.clone());
                (env.python(), sites, env.variables.clone())
            }
        }
    }
}

/// A handle that reaches a kernel while an execution holds it: to
/// interrupt the running code, or to stop the sandbox for good. It follows
/// the kernel through restarts.
#[derive(Debug, Clone)]
pub struct KernelHandle {
    input: Arc<Mutex<Input>>,
    /// The host process id of the sandbox's launcher (bwrap).
    pid: Arc<AtomicU32>,
    stopped: Arc<AtomicBool>,
    /// The cgroup's process list, when limits are enforced by one.
    procs: Arc<std::sync::Mutex<Option<PathBuf>>>,
}

/// The kernel's stdin: a pipe to bubblewrap, or a container's attachment.
struct Input(Pin<Box<dyn AsyncWrite + Send>>);

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Input")
    }
}

impl KernelHandle {
    /// Asks the running code to stop (a KeyboardInterrupt in the kernel; a
    /// shell command is killed).
    pub async fn interrupt(&self) -> Result<()> {
        protocol::write(&mut self.input.lock().await.0, &json!({ "type": "interrupt" })).await
    }

    /// Resident memory of every process in the sandbox, in bytes, and how
    /// many there are (`None` without cgroups).
    pub fn usage(&self) -> (Option<u64>, Option<u32>) {
        let procs = self.procs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let Some(procs) = procs else { return (None, None) };
        let pids: Vec<String> =
            std::fs::read_to_string(procs).unwrap_or_default().lines().map(|l| l.trim().to_owned()).collect();
        let pages: u64 = pids
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/statm")).ok())
            .filter_map(|statm| statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
            .sum();
        (Some(pages * 4096), u32::try_from(pids.len()).ok())
    }

    /// Kills the sandbox's processes now; an execution in progress ends with
    /// a message saying so, and the kernel is not restarted.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // bwrap's sandbox dies with it (--die-with-parent, PID namespace);
        // a container with its init process.
        kill_now(self.pid.load(Ordering::SeqCst));
    }
}

/// The process a kernel runs in.
#[derive(Debug)]
enum Process {
    /// bubblewrap, started by this process.
    Local(Child),
    /// A container of an engine (`pid`: its init process on the host); its
    /// stderr kept for messages.
    Container { engine: Arc<ContainerEngine>, id: String, pid: u32, stderr: Arc<std::sync::Mutex<Vec<u8>>> },
}

impl Process {
    async fn kill(&mut self) {
        match self {
            Process::Local(child) => {
                let _ = child.kill().await;
            }
            Process::Container { engine, id, .. } => engine.remove(id).await,
        }
    }

    /// How it ended, for a message.
    async fn ended(&mut self) -> String {
        match self {
            Process::Local(child) => {
                child.try_wait().ok().flatten().map(|s| s.to_string()).unwrap_or_else(|| "closed".into())
            }
            Process::Container { engine, id, .. } => match engine.exit_code(id).await {
                Some(code) => format!("exit status: {code}"),
                None => "closed".into(),
            },
        }
    }

    /// Whether a container's memory limit ended it: the engine's cgroup
    /// killed it (SIGKILL, exit code 137; an engine's own flag for it is not
    /// reliable across engines).
    async fn killed_by_memory_limit(&mut self) -> bool {
        match self {
            Process::Local(_) => false,
            Process::Container { engine, id, .. } => engine.exit_code(id).await == Some(137),
        }
    }

    async fn stderr(&mut self) -> String {
        match self {
            Process::Local(child) => {
                let mut text = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut text).await;
                }
                text
            }
            Process::Container { stderr, .. } => {
                String::from_utf8_lossy(&stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
            }
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Process::Local(child) => child.id().unwrap_or(0),
            Process::Container { .. } => 0,
        }
    }
}

impl Drop for Process {
    /// A container's processes die at once (as bubblewrap's do when its
    /// child handle goes); the container is removed in the background.
    fn drop(&mut self) {
        if let Process::Container { engine, id, pid, .. } = self {
            kill_now(*pid);
            engine.remove_later(std::mem::take(id));
        }
    }
}

fn kill_now(pid: u32) {
    if pid != 0 {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A sandbox just started, before its kernel said it is ready.
struct Launch {
    process: Process,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output: Pin<Box<dyn AsyncRead + Send>>,
    /// Cairn's own cgroup (bubblewrap); a container's is the engine's.
    cgroup: Option<Cgroup>,
    /// The host PID that takes the whole sandbox down when killed.
    pid: u32,
    /// The cgroup's process list, for memory use.
    procs: Option<PathBuf>,
}

/// A running kernel. Dropping it kills the sandbox.
#[derive(Debug)]
pub struct Kernel {
    options: KernelOptions,
    process: Process,
    handle: KernelHandle,
    /// Frames from the kernel, read by a task of their own so that waiting
    /// for them can be abandoned safely (on a limit) without losing one half-read.
    frames: mpsc::Receiver<Value>,
    cgroup: Option<Cgroup>,
    executions: u64,
    /// Workspace bytes at the last disk check: the disk limit stops growth,
    /// so a workspace already over it can still be cleaned up.
    disk_checked: u64,
}

/// How often a running execution's workspace size is checked.
const DISK_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// How long interrupted code has to stop before the kernel is restarted.
const INTERRUPT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn text_of(frame: &Value, key: &str) -> String {
    frame.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

pub(crate) fn limit_error(message: &str) -> Output {
    Output::Error { ename: "SandboxLimitExceeded".to_owned(), evalue: message.to_owned(), traceback: Vec::new() }
}

/// Writes a runtime file unless it already holds exactly `bytes` (every
/// kernel start needs them; they change only with the binary).
fn install(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

fn bind_args(command: &mut Command, flag: &str, path: &Path) {
    command.arg(flag).arg(path).arg(path);
}

impl Kernel {
    /// Starts a kernel in a new sandbox and waits until it is ready.
    pub async fn start(options: &KernelOptions) -> Result<Kernel> {
        std::fs::create_dir_all(&options.workspace)?;
        std::fs::create_dir_all(&options.runtime_dir)?;
        install(&options.runtime_dir.join("driver.py"), DRIVER.as_bytes())?;
        let launched = match &options.isolation {
            Isolation::Bubblewrap => Self::launch_bubblewrap(options)?,
            Isolation::Container(engine) => {
                let container = engine.launch(options).await?;
                Launch {
                    procs: container::procs_file(container.pid),
                    pid: container.pid,
                    process: Process::Container {
                        engine: engine.clone(),
                        id: container.id,
                        pid: container.pid,
                        stderr: container.stderr,
                    },
                    input: container.input,
                    output: container.output,
                    cgroup: None,
                }
            }
        };
        let Launch { process, input, output, cgroup, pid, procs } = launched;
        let mut output = BufReader::new(output);
        let (sender, frames) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Ok(Some(frame)) = protocol::read(&mut output).await {
                if sender.send(frame).await.is_err() {
                    return;
                }
            }
        });
        let handle = KernelHandle {
            input: Arc::new(Mutex::new(Input(input))),
            pid: Arc::new(AtomicU32::new(pid)),
            stopped: Arc::new(AtomicBool::new(false)),
            procs: Arc::new(std::sync::Mutex::new(procs)),
        };
        let disk_checked = workspace::usage_of(&options.workspace).await;
        let mut kernel =
            Kernel { options: options.clone(), process, handle, frames, cgroup, executions: 0, disk_checked };
        match kernel.frames.recv().await {
            Some(frame) if frame["type"] == "ready" => {
                if let Some(prelude) = options.prelude.clone() {
                    kernel.run_prelude(&prelude).await?;
                }
                Ok(kernel)
            }
            other => {
                let stderr = kernel.process.stderr().await;
                kernel.process.kill().await;
                Err(Error::Unavailable(format!("the kernel did not start ({other:?}): {}", stderr.trim())))
            }
        }
    }

    /// Starts the driver under bubblewrap, in a cgroup of its own.
    fn launch_bubblewrap(options: &KernelOptions) -> Result<Launch> {
        let (refusals, clone3) = seccomp::programs()?;
        let (refusals_path, clone3_path) =
            (options.runtime_dir.join("seccomp-refusals.bpf"), options.runtime_dir.join("seccomp-clone3.bpf"));
        install(&refusals_path, refusals)?;
        install(&clone3_path, clone3)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let cgroup = Cgroup::create(&options.cgroups, &id, &options.limits)?;
        let (python, sites, variables) = options.launch_view();
        // A small launcher joins the cgroup first and then becomes bwrap, so
        // no process of the sandbox ever runs outside the limits.
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(concat!(
                r#"IFS=:; for d in $1; do echo $$ > "$d/cgroup.procs" || exit 97; done; "#,
                r#"f1=$2; f2=$3; shift 3; exec "$@" 8<"$f1" 9<"$f2""#
            ))
            .arg("cairn-sandbox")
            .arg(cgroup.as_ref().map(Cgroup::joined_dirs).unwrap_or_default())
            .arg(&refusals_path)
            .arg(&clone3_path)
            .arg("bwrap")
            .args(["--add-seccomp-fd", "8", "--add-seccomp-fd", "9"])
            .args(["--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL"])
            .args(["--die-with-parent", "--new-session", "--hostname", "sandbox"])
            .args(["--clearenv", "--setenv", "PATH"])
            .arg(format!(
                "{}:/usr/local/bin:/usr/bin:/bin",
                python.parent().map(|p| p.display().to_string()).unwrap_or_default()
            ))
            .args(["--setenv", "HOME", "/workspace", "--setenv", "LANG", "C.UTF-8"])
            .args(["--setenv", "MPLBACKEND", "Agg", "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]);
        for system in ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/alternatives", "/etc/ssl", "/etc/fonts"] {
            let path = Path::new(system);
            if path.is_symlink() {
                let target = std::fs::read_link(path)?;
                command.arg("--symlink").arg(target).arg(path);
            } else if path.exists() {
                bind_args(&mut command, "--ro-bind", path);
            }
        }
        // The private /tmp first, so that folders bound below come on top of it.
        command.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
        for root in &options.python_roots {
            bind_args(&mut command, "--ro-bind", root);
        }
        if let Some(egress) = &options.egress {
            let proxy = "http://127.0.0.1:3128";
            command.arg("--ro-bind").arg(egress.dir()).arg("/run/cairn");
            command.args(["--setenv", "CAIRN_EGRESS", &format!("/run/cairn/{}", egress::SOCKET)]);
            for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                command.args(["--setenv", name, proxy]);
            }
        }
        if let Some(env) = &options.project_env {
            command.arg("--bind").arg(&env.env).arg(packages::ENV_INSIDE);
            command.arg("--bind").arg(&env.cache).arg(packages::CACHE_INSIDE);
            for (name, value) in &variables {
                command.args(["--setenv", name, value]);
            }
        }
        command
            .arg("--ro-bind")
            .arg(&options.runtime_dir)
            .arg("/opt/cairn")
            .arg("--bind")
            .arg(&options.workspace)
            .arg("/workspace")
            .args(["--chdir", "/workspace", "--"])
            .arg("prlimit")
            .arg(format!("--nofile={0}:{0}", options.limits.open_files))
            .arg(format!("--fsize={0}:{0}", options.limits.file_bytes))
            .arg("--core=0:0")
            .arg(&python)
            .args(["-I", "-S", "-u", "/opt/cairn/driver.py"])
            .args(&sites)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| Error::Unavailable(format!("cannot run bwrap: {e}")))?;
        let input = child.stdin.take().ok_or_else(|| Error::Unavailable("no stdin".into()))?;
        let output = child.stdout.take().ok_or_else(|| Error::Unavailable("no stdout".into()))?;
        let process = Process::Local(child);
        Ok(Launch {
            pid: process.pid(),
            procs: cgroup.as_ref().map(Cgroup::procs_file),
            process,
            input: Box::pin(input),
            output: Box::pin(output),
            cgroup,
        })
    }

    /// Runs the prelude in a fresh kernel: any error is an installation
    /// problem, not the user's.
    async fn run_prelude(&mut self, code: &str) -> Result<()> {
        self.send(&json!({ "type": "execute", "id": "prelude", "code": code })).await?;
        let mut failure = None;
        loop {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(30), self.frames.recv())
                .await
                .map_err(|_| Error::Unavailable("the kernel's prelude did not finish".into()))?
                .ok_or_else(|| Error::Unavailable("the kernel stopped while running its prelude".into()))?;
            match frame.get("type").and_then(Value::as_str) {
                Some("error") => failure = Some(format!("{}: {}", text_of(&frame, "ename"), text_of(&frame, "evalue"))),
                Some("done") => break,
                _ => {}
            }
        }
        match failure {
            Some(why) => Err(Error::Unavailable(format!("the kernel's prelude failed: {why}"))),
            None => Ok(()),
        }
    }

    /// Runs code; state persists between calls. `on_output` sees each output
    /// as it arrives. A limit reached is reported in the outcome, never as a
    /// hang: past the wall time the code is interrupted, and if it does not
    /// stop (or the kernel died of a limit) the kernel is restarted — the
    /// workspace stays, the variables are lost, and the outcome says so.
    pub async fn execute(&mut self, code: &str, mut on_output: impl FnMut(&Output) + Send) -> Result<ExecOutcome> {
        self.run(json!({ "type": "execute", "code": code }), &mut on_output).await
    }

    /// Runs a `/bin/sh` command inside the sandbox, under the same limits;
    /// its output streams like Python's and the outcome carries the exit code.
    pub async fn shell(&mut self, command: &str, mut on_output: impl FnMut(&Output) + Send) -> Result<ExecOutcome> {
        self.run(json!({ "type": "shell", "command": command }), &mut on_output).await
    }

    /// Runs an execution with a handler that also answers the code's calls
    /// to host tools.
    pub async fn run_with(
        &mut self,
        execution: &cairn_core::sandbox::Execution,
        handler: &mut dyn ExecHandler,
    ) -> Result<ExecOutcome> {
        use cairn_core::sandbox::Execution;
        let request = match execution {
            Execution::Python { code } => json!({ "type": "execute", "code": code }),
            Execution::Shell { command } => json!({ "type": "shell", "command": command }),
        };
        self.run(request, handler).await
    }

    async fn send(&self, message: &Value) -> Result<()> {
        protocol::write(&mut self.handle.input.lock().await.0, message).await
    }

    async fn run(&mut self, mut request: Value, handler: &mut dyn ExecHandler) -> Result<ExecOutcome> {
        self.executions += 1;
        let id = self.executions.to_string();
        request["id"] = json!(id);
        let limits = self.options.limits;
        let oom_before = self.cgroup.as_ref().map_or(0, Cgroup::oom_kills);
        self.send(&request).await?;
        let mut outputs = Vec::new();
        let mut limit: Option<String> = None;
        let mut output_bytes = 0usize;
        let mut deadline = Instant::now() + limits.wall_time;
        let mut grace: Option<Instant> = None;
        let mut disk_check = tokio::time::interval_at(Instant::now() + DISK_CHECK, DISK_CHECK);
        loop {
            let frame = tokio::select! {
                frame = self.frames.recv() => frame,
                () = tokio::time::sleep_until(deadline), if grace.is_none() => {
                    limit = Some(format!("wall time limit of {} s exceeded; the execution was interrupted", limits.wall_time.as_secs()));
                    self.handle.interrupt().await?;
                    grace = Some(Instant::now() + INTERRUPT_GRACE);
                    continue;
                }
                () = async { tokio::time::sleep_until(grace.unwrap_or_else(Instant::now)).await }, if grace.is_some() => {
                    let what = limit.take().unwrap_or_default().replace("the execution was interrupted", "the code did not stop");
                    return self.restarted(outputs, format!("{what}; the kernel was restarted")).await;
                }
                _ = disk_check.tick() => {
                    if let Some(full) = self.disk_grew_past_limit().await {
                        return self.restarted(outputs, format!("{full}; the execution was stopped and the kernel restarted")).await;
                    }
                    continue;
                }
            };
            let Some(frame) = frame else {
                if self.handle.stopped.load(Ordering::SeqCst) {
                    let why = "the sandbox was stopped while the code ran".to_owned();
                    outputs.push(limit_error(&why));
                    return Ok(ExecOutcome { ok: false, exit_code: None, outputs, limit: Some(why), notice: None });
                }
                let oom = self.cgroup.as_ref().map_or(0, Cgroup::oom_kills) > oom_before
                    || self.process.killed_by_memory_limit().await;
                let why = if oom {
                    format!("memory limit of {} exceeded; the kernel was restarted", limits::size(limits.memory_bytes))
                } else {
                    let status = self.process.ended().await;
                    format!("the kernel stopped ({status}); it was restarted")
                };
                return self.restarted(outputs, why).await;
            };
            let text = |key: &str| frame.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
            let output = match frame.get("type").and_then(Value::as_str).unwrap_or_default() {
                "stream" => {
                    let text = text("text");
                    output_bytes += text.len();
                    if output_bytes > limits.output_bytes {
                        if limit.is_none() {
                            limit = Some(format!(
                                "output limit of {} exceeded; the rest was dropped and the execution was interrupted",
                                limits::size(limits.output_bytes as u64)
                            ));
                            self.handle.interrupt().await?;
                            grace = Some(Instant::now() + INTERRUPT_GRACE);
                        }
                        continue;
                    }
                    Output::Stream { name: text_of(&frame, "name"), text }
                }
                "display" => Output::Display { data: frame["data"].clone() },
                "result" => Output::Result { data: frame["data"].clone() },
                "error" => Output::Error {
                    ename: text("ename"),
                    evalue: text("evalue"),
                    traceback: frame["traceback"]
                        .as_array()
                        .map(|lines| lines.iter().filter_map(|l| l.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                },
                "tool_call" => {
                    // Time spent in host tools does not count against the
                    // code's wall time (the tools have limits of their own).
                    let began = Instant::now();
                    let name = text("name");
                    let result = handler.tool_call(&name, frame["args"].clone(), frame["kwargs"].clone()).await;
                    deadline += began.elapsed();
                    let reply = match result {
                        Ok(value) => {
                            json!({ "type": "tool_result", "call": frame["call"], "ok": true, "value": value })
                        }
                        Err(error) => {
                            json!({ "type": "tool_result", "call": frame["call"], "ok": false, "error": error })
                        }
                    };
                    self.send(&reply).await?;
                    continue;
                }
                "done" => {
                    let mut ok = frame["ok"] == true && limit.is_none();
                    if limit.is_none()
                        && let Some(full) = self.disk_grew_past_limit().await
                    {
                        limit = Some(format!("{full}; delete files to free space"));
                        ok = false;
                    }
                    if let Some(message) = &limit {
                        let error = limit_error(message);
                        handler.output(&error);
                        outputs.push(error);
                    }
                    let exit_code = frame.get("exit_code").and_then(Value::as_i64).and_then(|c| i32::try_from(c).ok());
                    return Ok(ExecOutcome { ok, exit_code, outputs, limit, notice: None });
                }
                other => return Err(Error::Protocol(format!("unknown frame type `{other}`"))),
            };
            handler.output(&output);
            outputs.push(output);
        }
    }

    /// Measures the workspace; says so when it grew past its limit since the
    /// last check.
    async fn disk_grew_past_limit(&mut self) -> Option<String> {
        let used = workspace::usage_of(&self.options.workspace).await;
        let grew = used > self.disk_checked;
        self.disk_checked = used;
        (grew && used > self.options.limits.disk_bytes).then(|| {
            format!(
                "workspace disk limit of {} exceeded ({} used)",
                limits::size(self.options.limits.disk_bytes),
                limits::size(used)
            )
        })
    }

    /// A handle to interrupt or stop this kernel from elsewhere.
    pub fn handle(&self) -> KernelHandle {
        self.handle.clone()
    }

    /// Asks the running code to stop (a KeyboardInterrupt in the kernel).
    pub async fn interrupt(&self) -> Result<()> {
        self.handle.interrupt().await
    }

    /// Replaces a kernel that hit a limit with a fresh one on the same
    /// workspace, and reports why.
    async fn restarted(&mut self, mut outputs: Vec<Output>, why: String) -> Result<ExecOutcome> {
        self.process.kill().await;
        if self.handle.stopped.load(Ordering::SeqCst) {
            let why = "the sandbox was stopped while the code ran".to_owned();
            outputs.push(limit_error(&why));
            return Ok(ExecOutcome { ok: false, exit_code: None, outputs, limit: Some(why), notice: None });
        }
        self.cgroup = None;
        let fresh = Kernel::start(&self.options).await?;
        // The handle others hold must reach the new kernel.
        let Kernel { process, handle, frames, cgroup, disk_checked, .. } = fresh;
        let procs = handle.procs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        self.handle.pid.store(handle.pid.load(Ordering::SeqCst), Ordering::SeqCst);
        let input = Arc::try_unwrap(handle.input)
            .map_err(|_| Error::Protocol("a fresh kernel's input is shared".into()))?
            .into_inner();
        *self.handle.input.lock().await = input;
        *self.handle.procs.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = procs;
        (self.process, self.frames, self.cgroup, self.disk_checked) = (process, frames, cgroup, disk_checked);
        outputs.push(limit_error(&why));
        Ok(ExecOutcome { ok: false, exit_code: None, outputs, limit: Some(why), notice: None })
    }

    /// The workspace folder on the host.
    pub fn workspace(&self) -> &Path {
        &self.options.workspace
    }

    /// Records that the workspace folder was renamed (by the pool).
    pub(crate) fn moved_to(&mut self, workspace: PathBuf) {
        self.options.workspace = workspace;
    }

    /// Resident memory of every process in the sandbox, in bytes (`None`
    /// without cgroups).
    pub fn resident_bytes(&self) -> Option<u64> {
        self.handle.usage().0
    }

    /// Stops the kernel and its sandbox.
    pub async fn shutdown(mut self) {
        self.process.kill().await;
    }
}
