//! A Python kernel running under bubblewrap.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::{Error, Result, protocol};

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
    /// Where the host keeps the driver (mounted read-only at `/opt/cairn`).
    pub runtime_dir: PathBuf,
}

impl KernelOptions {
    /// Options for the `python3` on the PATH.
    pub fn with_host_python(workspace: PathBuf, runtime_dir: PathBuf) -> Result<KernelOptions> {
        let probe = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable); print(sys.prefix); print(sys.base_prefix)"])
            .output()
            .map_err(|e| Error::Unavailable(format!("python3 not found: {e}")))?;
        let text = String::from_utf8_lossy(&probe.stdout);
        let lines: Vec<&str> = text.lines().collect();
        let [executable, prefix, base] = lines.as_slice() else {
            return Err(Error::Unavailable("python3 did not describe itself".into()));
        };
        let mut roots = vec![PathBuf::from(prefix)];
        if base != prefix {
            roots.push(PathBuf::from(base));
        }
        Ok(KernelOptions { python: PathBuf::from(executable), python_roots: roots, workspace, runtime_dir })
    }
}

/// One output of an execution, in the order the kernel produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Stream {
        name: String,
        text: String,
    },
    /// A rich output (`display(...)`, a matplotlib figure): MIME type → content.
    Display {
        data: Value,
    },
    /// The value of the last expression.
    Result {
        data: Value,
    },
    Error {
        ename: String,
        evalue: String,
        traceback: Vec<String>,
    },
}

/// Everything one execution produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOutcome {
    pub ok: bool,
    pub outputs: Vec<Output>,
}

impl ExecOutcome {
    /// Everything written to one stream, joined.
    pub fn stream(&self, which: &str) -> String {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Stream { name, text } if name == which => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The plain-text value of the last expression, if there was one.
    pub fn result_text(&self) -> Option<&str> {
        self.outputs.iter().find_map(|o| match o {
            Output::Result { data } => data.get("text/plain").and_then(Value::as_str),
            _ => None,
        })
    }

    pub fn error(&self) -> Option<(&str, &str)> {
        self.outputs.iter().find_map(|o| match o {
            Output::Error { ename, evalue, .. } => Some((ename.as_str(), evalue.as_str())),
            _ => None,
        })
    }
}

/// A running kernel. Dropping it kills the sandbox.
#[derive(Debug)]
pub struct Kernel {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    executions: u64,
}

fn bind_args(command: &mut Command, flag: &str, path: &Path) {
    command.arg(flag).arg(path).arg(path);
}

impl Kernel {
    /// Starts a kernel in a new sandbox and waits until it is ready.
    pub async fn start(options: &KernelOptions) -> Result<Kernel> {
        std::fs::create_dir_all(&options.workspace)?;
        std::fs::create_dir_all(&options.runtime_dir)?;
        let driver = options.runtime_dir.join("driver.py");
        if std::fs::read_to_string(&driver).ok().as_deref() != Some(DRIVER) {
            std::fs::write(&driver, DRIVER)?;
        }
        let mut command = Command::new("bwrap");
        command
            .args(["--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox"])
            .args(["--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin"])
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
        for root in &options.python_roots {
            bind_args(&mut command, "--ro-bind", root);
        }
        command
            .arg("--ro-bind")
            .arg(&options.runtime_dir)
            .arg("/opt/cairn")
            .arg("--bind")
            .arg(&options.workspace)
            .arg("/workspace")
            .args(["--chdir", "/workspace", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--"])
            .arg(&options.python)
            .args(["-I", "-u", "/opt/cairn/driver.py"])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| Error::Unavailable(format!("cannot run bwrap: {e}")))?;
        let input = child.stdin.take().ok_or_else(|| Error::Unavailable("no stdin".into()))?;
        let output = BufReader::new(child.stdout.take().ok_or_else(|| Error::Unavailable("no stdout".into()))?);
        let mut kernel = Kernel { child, input, output, executions: 0 };
        match protocol::read(&mut kernel.output).await? {
            Some(frame) if frame["type"] == "ready" => Ok(kernel),
            other => {
                let mut stderr = String::new();
                if let Some(mut err) = kernel.child.stderr.take() {
                    let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr).await;
                }
                Err(Error::Unavailable(format!("the kernel did not start ({other:?}): {}", stderr.trim())))
            }
        }
    }

    /// Runs code; state persists between calls. `on_output` sees each output
    /// as it arrives.
    pub async fn execute(&mut self, code: &str, mut on_output: impl FnMut(&Output)) -> Result<ExecOutcome> {
        self.executions += 1;
        let id = self.executions.to_string();
        protocol::write(&mut self.input, &json!({ "type": "execute", "id": id, "code": code })).await?;
        let mut outputs = Vec::new();
        loop {
            let Some(frame) = protocol::read(&mut self.output).await? else {
                let status = self.child.try_wait()?.map(|s| s.to_string()).unwrap_or_else(|| "closed".into());
                return Err(Error::KernelDied(status));
            };
            let text = |key: &str| frame.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
            let output = match frame.get("type").and_then(Value::as_str).unwrap_or_default() {
                "stream" => Output::Stream { name: text("name"), text: text("text") },
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
                    let reply = json!({ "type": "tool_result", "call": frame["call"], "ok": false,
                                        "error": "no tools are available in this sandbox" });
                    protocol::write(&mut self.input, &reply).await?;
                    continue;
                }
                "done" => return Ok(ExecOutcome { ok: frame["ok"] == true, outputs }),
                other => return Err(Error::Protocol(format!("unknown frame type `{other}`"))),
            };
            on_output(&output);
            outputs.push(output);
        }
    }

    /// Stops the kernel and its sandbox.
    pub async fn shutdown(mut self) {
        let _ = self.child.kill().await;
    }
}
