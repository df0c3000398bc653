//! The sandbox interface: where the agent's code runs. One sandbox belongs to
//! one thread and is a private workspace folder plus a persistent Python
//! kernel. The local backend (`cairn-sandbox`) runs them on this machine; the
//! HTTP client in the same crate reaches a `sandbox-host` elsewhere. Both
//! implement [`Sandboxes`], and callers never know which one they hold.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{ProjectId, SandboxId, ThreadId, UserId};

/// A stream of file bytes into or out of a workspace.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// What a sandbox may do, asked for at creation. Every limit left out takes
/// the host's default; a limit above the host's maximum is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxPolicy {
    /// Let code reach the internet over HTTP(S) (through the host's egress
    /// proxy, which never connects to loopback or private addresses).
    #[serde(default)]
    pub network: bool,
    /// Memory of all the sandbox's processes together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Processes and threads at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u32>,
    /// Wall time of one execution, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_secs: Option<u64>,
    /// Size of everything in the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Let code install Python packages from the host's package index (and
    /// reach nothing else), into its project's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<PackagePolicy>,
}

/// Package installs granted to a sandbox: `pip install` reaches the host's
/// configured index (through the egress proxy, which lets nothing else
/// through) and installs into an environment of the sandbox's project,
/// layered on the base stack and kept for the project's next sandboxes. The
/// environment starts from `requirements` (one per item, as in a
/// `requirements.txt`); each list of requirements is an environment of its
/// own, built once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackagePolicy {
    #[serde(default)]
    pub requirements: Vec<String>,
}

/// [`Sandboxes::set_packages`]'s request: the sandbox's project and the
/// package installs it is granted now (`None`: none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackagesChange {
    pub project: ProjectId,
    #[serde(default)]
    pub packages: Option<PackagePolicy>,
}

/// Most requirements a project's environment starts from.
pub const MAX_REQUIREMENTS: usize = 200;
/// Longest requirement.
const MAX_REQUIREMENT_LEN: usize = 200;

impl PackagePolicy {
    /// Reads a `requirements.txt`: one requirement per line, blank lines
    /// and `#` comments left out. Only names with extras, version
    /// specifiers and markers are accepted — no options (`-r`, `--index-url`,
    /// `-e`) and no URLs or paths — so packages come from the configured
    /// index and nowhere else.
    pub fn parse(text: &str) -> Result<PackagePolicy, String> {
        let mut requirements = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split_once('#').map_or(line, |(before, _)| before).trim();
            if line.is_empty() {
                continue;
            }
            check_requirement(line).map_err(|why| format!("line {}: {why}", number + 1))?;
            requirements.push(line.to_owned());
        }
        if requirements.len() > MAX_REQUIREMENTS {
            return Err(format!("at most {MAX_REQUIREMENTS} requirements"));
        }
        Ok(PackagePolicy { requirements })
    }

    /// Checks requirements given as a list (as [`PackagePolicy::parse`]).
    pub fn check(&self) -> Result<(), String> {
        if self.requirements.len() > MAX_REQUIREMENTS {
            return Err(format!("at most {MAX_REQUIREMENTS} requirements"));
        }
        self.requirements.iter().try_for_each(|r| check_requirement(r).map_err(|why| format!("{r:?}: {why}")))
    }
}

fn check_requirement(line: &str) -> Result<(), String> {
    if line.len() > MAX_REQUIREMENT_LEN {
        return Err(format!("a requirement is at most {MAX_REQUIREMENT_LEN} characters"));
    }
    if line.starts_with('-') {
        return Err(
            "options (such as -r, -e or --index-url) are not accepted; packages come from the configured index".into(),
        );
    }
    if !line.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("a requirement starts with a package name".into());
    }
    if line.contains("://") || line.contains('@') || line.contains('/') || line.contains('\\') {
        return Err("URLs and paths are not accepted; packages come from the configured index".into());
    }
    match line.chars().find(|c| !(c.is_ascii_alphanumeric() || " ._-[],<>=!~;'\"*()".contains(*c))) {
        Some(c) => Err(format!("{c:?} has no place in a requirement")),
        None => Ok(()),
    }
}

/// A request for a new sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSandbox {
    /// The user the sandbox works for (caps are counted per owner).
    pub owner: UserId,
    #[serde(default)]
    pub project: Option<ProjectId>,
    /// The thread the sandbox belongs to.
    #[serde(default)]
    pub thread: Option<ThreadId>,
    #[serde(default)]
    pub policy: SandboxPolicy,
    /// The id to give the sandbox (placing one again on another host keeps
    /// its id); `None`: a new one. Asking again for an id that exists
    /// answers the sandbox made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<SandboxId>,
    /// Fill the workspace from the snapshot of the sandbox of this id (it
    /// moves here from a host that stopped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore: bool,
}

impl NewSandbox {
    /// A new sandbox for `owner` under the host's default policy, in no
    /// project or thread.
    pub fn for_owner(owner: UserId) -> NewSandbox {
        NewSandbox { owner, project: None, thread: None, policy: SandboxPolicy::default(), id: None, restore: false }
    }
}

/// What a sandbox host reports with each heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReport {
    /// Where workers and gateways reach the host (`http://host:port`); also
    /// its name.
    pub url: String,
    /// Sandboxes it runs at most at once (`sandbox.max_running`).
    pub capacity: u32,
    /// Sandboxes running now.
    pub running: u32,
    /// Stopping: place nothing new here.
    pub draining: bool,
    /// Every sandbox the host holds, running or paused; `None` leaves the
    /// placements as they are (a report on the way out).
    pub sandboxes: Option<Vec<HostedSandbox>>,
}

/// One sandbox in a host's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedSandbox {
    pub id: SandboxId,
    pub running: bool,
    pub busy: bool,
    pub created_at: OffsetDateTime,
    pub last_active_at: OffsetDateTime,
}

/// A registered sandbox host as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxHost {
    pub url: String,
    pub capacity: u32,
    pub running: u32,
    pub draining: bool,
    pub heartbeat_at: OffsetDateTime,
    /// Sandboxes placed on it (running or paused).
    pub placed: u32,
}

/// Which host a sandbox lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub sandbox: SandboxId,
    pub host: String,
    pub owner: UserId,
    pub thread: Option<ThreadId>,
    /// When it was placed on this host (created, or moved here).
    pub created_at: OffsetDateTime,
    /// Running (not paused), as its host last reported or a caller last
    /// made it.
    pub running: bool,
    /// An execution was running at the host's last report.
    pub busy: bool,
    /// Its last execution or file operation, as last known.
    pub active_at: OffsetDateTime,
}

/// Whether the sandbox's processes exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    /// The kernel is running (idle or executing).
    Running,
    /// The processes are stopped and the workspace kept; the next execution
    /// starts a fresh kernel (variables are gone, files stay).
    Paused,
}

/// The limits a sandbox runs under, once the policy met the host's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EffectiveLimits {
    pub network: bool,
    pub memory_bytes: u64,
    pub processes: u32,
    pub wall_time_secs: u64,
    pub disk_bytes: u64,
    pub output_bytes: u64,
    pub open_files: u32,
}

/// What a sandbox is and what it uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxInfo {
    pub id: SandboxId,
    pub owner: UserId,
    pub project: Option<ProjectId>,
    pub thread: Option<ThreadId>,
    pub state: SandboxState,
    /// An execution is running now.
    pub busy: bool,
    pub limits: EffectiveLimits,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The last execution or file operation; idle timers count from here.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_active_at: OffsetDateTime,
    /// Executions and shell commands run so far.
    pub executions: u64,
    /// Resident memory of the sandbox's processes (when running and measurable).
    pub memory_bytes: Option<u64>,
    /// Processes in the sandbox now (when running and measurable).
    pub processes: Option<u32>,
    /// Bytes the workspace holds.
    pub disk_bytes: u64,
}

/// How many sandboxes there are, by state, and how many execute now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxCounts {
    pub running: usize,
    pub paused: usize,
    /// Running sandboxes with an execution in progress.
    pub busy: usize,
}

impl SandboxCounts {
    pub fn of(sandboxes: &[SandboxInfo]) -> SandboxCounts {
        let mut counts = SandboxCounts::default();
        for sandbox in sandboxes {
            counts.add(sandbox.state, sandbox.busy);
        }
        counts
    }

    /// Counts one more sandbox.
    pub fn add(&mut self, state: SandboxState, busy: bool) {
        match state {
            SandboxState::Running => self.running += 1,
            SandboxState::Paused => self.paused += 1,
        }
        self.busy += usize::from(busy);
    }
}

/// Content by MIME type (`text/plain`, `text/html`, `image/png` with binary
/// content base64-encoded …), as a rich output carries it: named in the API's
/// documentation, so every output's `data` has one shape there.
#[derive(Debug)]
pub struct MimeBundle;

impl utoipa::PartialSchema for MimeBundle {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .description(Some("Content by MIME type (binary content base64-encoded)."))
            .into()
    }
}

impl utoipa::ToSchema for MimeBundle {}

/// One output of an execution, in the order the kernel produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// Text written to `stdout` or `stderr`.
    Stream { name: String, text: String },
    /// A rich output (`display(...)`, a matplotlib figure): MIME type →
    /// content (binary content base64-encoded).
    Display {
        #[schema(value_type = MimeBundle)]
        data: Value,
    },
    /// The value of the last expression, by MIME type.
    Result {
        #[schema(value_type = MimeBundle)]
        data: Value,
    },
    /// An exception, or a limit the execution hit (`SandboxLimitExceeded`).
    Error { ename: String, evalue: String, traceback: Vec<String> },
}

/// Everything one execution produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecOutcome {
    pub ok: bool,
    /// The exit code, for shell commands.
    pub exit_code: Option<i32>,
    pub outputs: Vec<Output>,
    /// Set when the execution hit a limit, in words the agent can act on
    /// (e.g. "memory limit of 1 GiB exceeded; the kernel was restarted").
    pub limit: Option<String>,
    /// Set when the sandbox's kernel is a new one since the last execution
    /// (the sandbox was paused, or moved to another host), in words the
    /// agent can act on: variables and imports are gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
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

    /// The first error's name and message.
    pub fn error(&self) -> Option<(&str, &str)> {
        self.outputs.iter().find_map(|o| match o {
            Output::Error { ename, evalue, .. } => Some((ename.as_str(), evalue.as_str())),
            _ => None,
        })
    }
}

/// What runs in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Execution {
    /// Python in the sandbox's kernel; state persists between executions.
    Python { code: String },
    /// A `/bin/sh` command in the sandbox, under the same limits.
    Shell { command: String },
}

/// The caller's side of an execution: it sees each output as it arrives and
/// answers the code's calls to host tools (the tool bridge).
///
/// Any `FnMut(&Output)` closure is a handler that offers no tools.
#[async_trait]
pub trait ExecHandler: Send {
    fn output(&mut self, output: &Output);

    /// Runs the host tool `name` for the sandboxed code and returns its
    /// JSON result, or an error message the code receives as an exception.
    async fn tool_call(&mut self, name: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        let _ = (args, kwargs);
        Err(format!("no tool `{name}` is available in this sandbox"))
    }
}

impl<F: FnMut(&Output) + Send> ExecHandler for F {
    fn output(&mut self, output: &Output) {
        self(output)
    }
}

/// An entry of a workspace folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceEntry {
    /// Relative to the workspace root, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Size in bytes (files only).
    pub size: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub modified: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Directory,
    /// Listed, never followed.
    Symlink,
    Other,
}

/// What a sandbox operation can fail with; each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("no such sandbox")]
    NotFound,
    #[error("no such file or folder in the workspace: {0}")]
    NoSuchPath(String),
    /// A path that is absolute outside `/workspace`, climbs out with `..`,
    /// or passes through a symbolic link.
    #[error("invalid workspace path: {0}")]
    InvalidPath(String),
    #[error("invalid sandbox policy: {0}")]
    InvalidPolicy(String),
    /// A cap on running sandboxes (per user or per host) is reached and none
    /// could be paused to make room.
    #[error("{0}")]
    CapReached(String),
    /// A file is larger than the caller accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The workspace's disk limit would be exceeded.
    #[error("{0}")]
    WorkspaceFull(String),
    /// The sandbox cannot run here (bubblewrap or Python missing, the host
    /// unreachable).
    #[error("the sandbox is unavailable: {0}")]
    Unavailable(String),
    #[error("sandbox error: {0}")]
    Internal(String),
}

impl SandboxError {
    /// The stable code of this error (the HTTP API's `code`).
    pub fn code(&self) -> &'static str {
        match self {
            SandboxError::NotFound => "sandbox_not_found",
            SandboxError::NoSuchPath(_) => "path_not_found",
            SandboxError::InvalidPath(_) => "invalid_path",
            SandboxError::InvalidPolicy(_) => "invalid_policy",
            SandboxError::CapReached(_) => "sandbox_cap_reached",
            SandboxError::TooLarge(_) => "file_too_large",
            SandboxError::WorkspaceFull(_) => "workspace_full",
            SandboxError::Unavailable(_) => "sandbox_unavailable",
            SandboxError::Internal(_) => "internal",
        }
    }
}

impl SandboxError {
    /// The error a stable code names (how a client rebuilds an error it
    /// received over HTTP); unknown codes are internal errors.
    pub fn from_code(code: &str, detail: String) -> SandboxError {
        match code {
            "sandbox_not_found" => SandboxError::NotFound,
            "path_not_found" => SandboxError::NoSuchPath(detail),
            "invalid_path" => SandboxError::InvalidPath(detail),
            "invalid_policy" => SandboxError::InvalidPolicy(detail),
            "sandbox_cap_reached" => SandboxError::CapReached(detail),
            "file_too_large" => SandboxError::TooLarge(detail),
            "workspace_full" => SandboxError::WorkspaceFull(detail),
            "sandbox_unavailable" => SandboxError::Unavailable(detail),
            _ => SandboxError::Internal(format!("{code}: {detail}")),
        }
    }

    /// The message without the prefix `Display` adds (what the variant holds).
    pub fn detail(&self) -> String {
        match self {
            SandboxError::NotFound => "no such sandbox".to_owned(),
            SandboxError::NoSuchPath(d)
            | SandboxError::InvalidPath(d)
            | SandboxError::InvalidPolicy(d)
            | SandboxError::CapReached(d)
            | SandboxError::TooLarge(d)
            | SandboxError::WorkspaceFull(d)
            | SandboxError::Unavailable(d)
            | SandboxError::Internal(d) => d.clone(),
        }
    }
}

pub type SandboxResult<T> = std::result::Result<T, SandboxError>;

/// One line of an execution's event stream over HTTP (newline-delimited
/// JSON): outputs as they come, tool calls the caller must answer, and
/// finally the outcome or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExecEvent {
    Output {
        output: Output,
    },
    /// Sandboxed code called a host tool: run it and post a [`ToolResult`]
    /// with this `call`.
    ToolCall {
        call: String,
        name: String,
        #[schema(value_type = Object)]
        args: Value,
        #[schema(value_type = Object)]
        kwargs: Value,
    },
    Done {
        outcome: ExecOutcome,
    },
    Failed {
        code: String,
        detail: String,
    },
}

/// The caller's answer to a [`ExecEvent::ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolResult {
    pub call: String,
    pub ok: bool,
    /// The tool's JSON result, when `ok`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub value: Value,
    /// Why the tool failed, when not `ok` (the code sees it as an exception).
    #[serde(default)]
    pub error: Option<String>,
}

/// Sandboxes, wherever they run.
#[async_trait]
pub trait Sandboxes: Send + Sync + std::fmt::Debug {
    /// A new sandbox with a running kernel, ready for code.
    async fn create(&self, request: NewSandbox) -> SandboxResult<SandboxInfo>;

    /// Runs code or a command. A paused sandbox is resumed first. Executions
    /// of one sandbox run one at a time, in the order they arrive.
    async fn execute(
        &self,
        id: SandboxId,
        execution: Execution,
        handler: &mut dyn ExecHandler,
    ) -> SandboxResult<ExecOutcome>;

    /// Asks the running execution to stop (a `KeyboardInterrupt`, or the
    /// shell command killed). Does nothing when the sandbox is idle.
    async fn interrupt(&self, id: SandboxId) -> SandboxResult<()>;

    /// Stops the sandbox's processes and keeps its workspace.
    async fn pause(&self, id: SandboxId) -> SandboxResult<SandboxInfo>;

    /// [`Sandboxes::pause`], unless an execution runs in it: `None`, left
    /// running. An execution that begins meanwhile waits for the pause and
    /// then wakes the sandbox, so none is ever cut short.
    async fn pause_if_idle(&self, id: SandboxId) -> SandboxResult<Option<SandboxInfo>>;

    /// Starts a fresh kernel on a paused sandbox's workspace.
    async fn resume(&self, id: SandboxId) -> SandboxResult<SandboxInfo>;

    /// Changes the package installs granted to a sandbox (its project's
    /// setting changed). A running kernel that used other packages is
    /// stopped: the next execution starts one with the new environment, and
    /// its outcome says the kernel restarted. The default: a backend whose
    /// sandboxes install packages their own way (E2B's have their own
    /// network) accepts the grant and does nothing. A sandbox that lost its
    /// project (moved to another host) is given `project` back.
    async fn set_packages(&self, id: SandboxId, change: PackagesChange) -> SandboxResult<()> {
        let _ = (id, change);
        Ok(())
    }

    /// Stops the processes and deletes the workspace.
    async fn destroy(&self, id: SandboxId) -> SandboxResult<()>;

    async fn inspect(&self, id: SandboxId) -> SandboxResult<SandboxInfo>;

    /// Every sandbox, or the owner's.
    async fn list(&self, owner: Option<UserId>) -> SandboxResult<Vec<SandboxInfo>>;

    /// How many sandboxes there are by state (for metrics). The default
    /// lists them; a backend that knows without measuring each says so.
    async fn counts(&self) -> SandboxResult<SandboxCounts> {
        Ok(SandboxCounts::of(&self.list(None).await?))
    }

    /// The entries of a workspace folder (`""` is the root), every level
    /// below it when `recursive`.
    async fn list_files(&self, id: SandboxId, dir: &str, recursive: bool) -> SandboxResult<Vec<WorkspaceEntry>>;

    /// Writes a file (creating its folders), replacing it whole once every
    /// byte arrived: an upload that fails leaves the old file or nothing.
    async fn upload(&self, id: SandboxId, path: &str, body: ByteStream) -> SandboxResult<WorkspaceEntry>;

    /// The bytes of a workspace file.
    async fn download(&self, id: SandboxId, path: &str) -> SandboxResult<ByteStream>;

    /// Deletes a file, or a folder with everything in it.
    async fn delete_path(&self, id: SandboxId, path: &str) -> SandboxResult<()>;

    /// Reads a whole (small) file.
    async fn read_file(&self, id: SandboxId, path: &str, max_bytes: usize) -> SandboxResult<Vec<u8>> {
        use futures::StreamExt;
        let mut stream = self.download(id, path).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| SandboxError::Internal(e.to_string()))?;
            if bytes.len() + chunk.len() > max_bytes {
                return Err(SandboxError::TooLarge(format!("{path} is larger than {max_bytes} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Writes a whole (small) file.
    async fn write_file(&self, id: SandboxId, path: &str, bytes: Vec<u8>) -> SandboxResult<WorkspaceEntry> {
        let body = futures::stream::once(async move { Ok(Bytes::from(bytes)) });
        self.upload(id, path, Box::pin(body)).await
    }
}

#[cfg(test)]
mod tests {
    use super::PackagePolicy;

    #[test]
    fn requirements_are_read_like_a_requirements_file() {
        let text = "# data\nnumpy>=2\n\n  polars[plot] ~= 1.2 ; python_version >= \"3.10\"  # fast\ncairn-demo==1.0\n";
        let policy = PackagePolicy::parse(text).unwrap();
        assert_eq!(
            policy.requirements,
            ["numpy>=2", "polars[plot] ~= 1.2 ; python_version >= \"3.10\"", "cairn-demo==1.0"]
        );
        assert!(policy.check().is_ok());
        assert_eq!(PackagePolicy::parse("\n# nothing\n").unwrap().requirements, Vec::<String>::new());
    }

    #[test]
    fn requirements_cannot_point_anywhere_but_the_index() {
        for (text, says) in [
            ("--index-url http://evil.example/simple", "options"),
            ("-r other.txt", "options"),
            ("-e .", "options"),
            ("pkg @ https://evil.example/pkg.whl", "URLs"),
            ("git+https://evil.example/repo", "URLs"),
            ("./local/dir", "package name"),
            ("pkg$(reboot)", "no place"),
            ("pkg\u{0}", "no place"),
        ] {
            let error = PackagePolicy::parse(&format!("ok\n{text}")).unwrap_err();
            assert!(error.starts_with("line 2: ") && error.contains(says), "{text}: {error}");
        }
        assert!(PackagePolicy::parse(&"x\n".repeat(201)).unwrap_err().contains("at most 200"));
        assert!(PackagePolicy::parse(&"x".repeat(201)).unwrap_err().contains("at most 200 characters"));
        let listed = PackagePolicy { requirements: vec!["ok".into(), "--pre".into()] };
        assert!(listed.check().unwrap_err().contains("options"));
    }
}
