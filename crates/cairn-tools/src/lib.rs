//! Cairn's tool execution service: the registry of tools the agent calls as
//! plain Python functions from code in its sandbox (through the sandbox's
//! tool bridge), and the tools themselves — workspace files and shell, web
//! fetch, web search, a headless browser, and saving artifacts into the
//! project library.
//!
//! A tool is one implementation of [`Tool`]: its [`ToolSpec`] (name,
//! description, typed parameters) is the single source of its JSON schema,
//! its Python signature and docstring, the listing at `GET /api/v1/tools`,
//! and the agent's prompt. Adding a tool is implementing the trait and adding
//! it to [`Registry::builtin`].
//!
//! Architecture invariant: a tool never crashes the kernel or the host. Every
//! failure, timeout and oversized result comes back to the calling code as an
//! error message it can read; host-side network access only ever reaches
//! public addresses (or ones the operator allowlisted).

mod agent;
mod artifact;
mod browser;
mod fetch;
mod files;
pub mod mcp;
mod net;
mod registry;
mod remember;
mod search;

pub use browser::{ACTIONS as BROWSER_ACTIONS, Browsers, Glimpse};
pub use net::SafeHttp;
pub use registry::{MAX_RESULT_BYTES, Registry, ToolBridge, ToolInfo};
pub use search::SearchProvider;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::sandbox::Sandboxes;
use cairn_core::{ProjectId, RunId, SandboxId, ThreadId, UserId};
use serde_json::{Map, Value};

/// The type of one parameter, in both JSON schema and Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    /// A list of strings.
    StrList,
}

impl Kind {
    fn python(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Int => "int",
            Kind::Bool => "bool",
            Kind::StrList => "list[str]",
        }
    }

    fn schema(self) -> Value {
        match self {
            Kind::Str => serde_json::json!({ "type": "string" }),
            Kind::Int => serde_json::json!({ "type": "integer" }),
            Kind::Bool => serde_json::json!({ "type": "boolean" }),
            Kind::StrList => serde_json::json!({ "type": "array", "items": { "type": "string" } }),
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::Str => value.is_string(),
            Kind::Int => value.is_i64() || value.is_u64(),
            Kind::Bool => value.is_boolean(),
            Kind::StrList => value.as_array().is_some_and(|items| items.iter().all(Value::is_string)),
        }
    }
}

/// One parameter of a tool.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
    /// `None`: required. `Some(value)`: optional, with this default (JSON;
    /// `null` becomes Python's `None`).
    pub default: Option<Value>,
}

impl Param {
    pub fn required(name: &'static str, kind: Kind, description: &'static str) -> Param {
        Param { name, kind, description, default: None }
    }

    pub fn optional(name: &'static str, kind: Kind, description: &'static str, default: Value) -> Param {
        Param { name, kind, description, default: Some(default) }
    }
}

/// What a tool is, for the registry, the API and the agent's prompt.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// A Python identifier (`web_fetch`).
    pub name: &'static str,
    /// What it does, first line a summary (becomes the docstring).
    pub description: &'static str,
    pub params: Vec<Param>,
    /// What it returns, as a Python annotation (`str`, `dict`, `list[dict]`).
    pub returns: &'static str,
    /// How long one call may take.
    pub timeout: Duration,
    /// A body for the tool's Python function that runs inside the sandbox
    /// itself instead of calling the host (the shell: the kernel is busy
    /// running the caller's code, so the host cannot run a command in it).
    /// Calls through the API still run [`Tool::run`].
    pub python_body: Option<&'static str>,
}

/// The arguments of a call, bound to names and checked against the spec.
#[derive(Debug, Clone, Default)]
pub struct Args(Map<String, Value>);

impl Args {
    pub fn new(map: Map<String, Value>) -> Args {
        Args(map)
    }

    pub fn str(&self, name: &str) -> Result<&str, ToolError> {
        self.0.get(name).and_then(Value::as_str).ok_or_else(|| ToolError::Invalid(format!("`{name}` is required")))
    }

    pub fn opt_str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.0.get(name).and_then(Value::as_i64).unwrap_or(default)
    }

    pub fn bool(&self, name: &str, default: bool) -> bool {
        self.0.get(name).and_then(Value::as_bool).unwrap_or(default)
    }

    pub fn str_list(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

/// How a tool call fails; the calling code sees the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not fit the tool.
    #[error("{0}")]
    Invalid(String),
    /// The tool ran and could not do what was asked (a page that does not
    /// answer, a file that does not exist, an ambiguous edit).
    #[error("{0}")]
    Failed(String),
    /// The tool needs something this deployment does not have (no search
    /// provider configured, no browser installed).
    #[error("{0}")]
    Unavailable(String),
    /// The destination is not allowed (a private address, a refused port).
    #[error("{0}")]
    Refused(String),
    /// No tool has that name.
    #[error("{0}")]
    NoSuchTool(String),
}

impl From<cairn_core::sandbox::SandboxError> for ToolError {
    fn from(error: cairn_core::sandbox::SandboxError) -> Self {
        ToolError::Failed(error.detail())
    }
}

/// Shared services the tools use: the sandbox, the guarded HTTP client, the
/// search provider, the browsers, the library.
#[derive(Debug, Clone)]
pub struct Services {
    pub sandboxes: Arc<dyn Sandboxes>,
    pub http: SafeHttp,
    pub search: Option<SearchProvider>,
    pub browsers: Browsers,
    /// The project library, for `save_artifact` (absent where no library is
    /// reachable, e.g. on a bare sandbox host).
    pub files: Option<cairn_files::Files>,
    /// Project memory, for `remember` and `recall` (absent: memory is off).
    pub memory: Option<cairn_memory::Memory>,
}

impl Services {
    /// The tools' services as configured (`tools.*`): starts the proxy the
    /// browser's traffic goes through, which refuses private addresses like
    /// the web tools do.
    pub async fn from_config(
        config: &cairn_config::ToolsConfig,
        sandboxes: Arc<dyn Sandboxes>,
        files: Option<cairn_files::Files>,
    ) -> Result<Services, ToolError> {
        let http = SafeHttp::new(
            Duration::from_secs(config.fetch_timeout_secs),
            usize::try_from(config.fetch_max_mb << 20).unwrap_or(usize::MAX),
            config.allow_private.clone(),
        )?;
        let rules = cairn_sandbox::EgressRules { allow: config.allow_private.clone(), ..Default::default() };
        let proxy = cairn_sandbox::Egress::start_tcp(rules)
            .await
            .map_err(|e| ToolError::Unavailable(format!("cannot start the browser's proxy: {e}")))?;
        let browsers = Browsers::new(&config.browser_path, proxy, Duration::from_secs(config.browser_idle_secs));
        Ok(Services { sandboxes, http, search: SearchProvider::from_config(config)?, browsers, files, memory: None })
    }
}

/// Who a tool call works for, and where.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub services: Services,
    /// The thread's sandbox, where file and shell tools work.
    pub sandbox: SandboxId,
    pub user: UserId,
    pub project: Option<ProjectId>,
    pub thread: Option<ThreadId>,
    /// The run and step making the call, for the lineage of artifacts.
    pub run: Option<(RunId, i64)>,
    /// The claim of the worker making the call: what it saves into the
    /// library is refused once another worker took the run over.
    pub fence: Option<cairn_core::model::Fence>,
}

/// Tools for callers outside an agent run (the HTTP API): each user gets a
/// scratch sandbox per project, made on first use and made again if it was
/// reclaimed.
#[derive(Debug, Clone)]
pub struct ToolRunner {
    pub registry: Arc<Registry>,
    pub services: Services,
    scratch: Arc<tokio::sync::Mutex<std::collections::HashMap<(UserId, ProjectId), SandboxId>>>,
}

impl ToolRunner {
    pub fn new(registry: Arc<Registry>, services: Services) -> ToolRunner {
        ToolRunner { registry, services, scratch: Default::default() }
    }

    /// The user's scratch sandbox in the project.
    async fn sandbox_for(&self, user: UserId, project: ProjectId) -> Result<SandboxId, ToolError> {
        let mut scratch = self.scratch.lock().await;
        if let Some(id) = scratch.get(&(user, project))
            && self.services.sandboxes.inspect(*id).await.is_ok()
        {
            return Ok(*id);
        }
        let request = cairn_core::sandbox::NewSandbox {
            owner: user,
            project: Some(project),
            thread: None,
            policy: Default::default(),
            id: None,
            restore: false,
        };
        let created = self.services.sandboxes.create(request).await.map_err(|e| match e {
            cairn_core::sandbox::SandboxError::CapReached(why)
            | cairn_core::sandbox::SandboxError::Unavailable(why) => ToolError::Unavailable(why),
            other => ToolError::Failed(other.detail()),
        })?;
        scratch.insert((user, project), created.id);
        Ok(created.id)
    }

    /// Runs a tool for a user in a project with named arguments.
    pub async fn call(
        &self,
        user: UserId,
        project: ProjectId,
        name: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        let sandbox = self.sandbox_for(user, project).await?;
        let ctx = ToolContext {
            services: self.services.clone(),
            sandbox,
            user,
            project: Some(project),
            thread: None,
            run: None,
            fence: None,
        };
        self.registry.call_checked(&ctx, name, Value::Array(Vec::new()), arguments).await
    }
}

/// A tool. Implement it and add it to [`Registry::builtin`].
#[async_trait]
pub trait Tool: Send + Sync + std::fmt::Debug {
    fn spec(&self) -> ToolSpec;

    /// Runs the tool with arguments already checked against the spec.
    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError>;
}
