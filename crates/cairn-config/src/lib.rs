//! Cairn's configuration: one typed struct, filled from compiled defaults, then
//! an optional TOML file, then `CAIRN__SECTION__KEY` environment variables,
//! and validated before anything starts.
//!
//! Architecture invariant: loading configuration has no side effects. It
//! reads the file and the environment it is given and nothing else; it opens
//! no connection and creates no directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that override configuration; `__`
/// separates the section from the key (`CAIRN__SERVER__BIND`).
pub const ENV_PREFIX: &str = "CAIRN__";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded backends keep their files (SQLite database, local
    /// objects, sandbox workspaces).
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub queue: QueueConfig,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    pub rate_limit: RateLimitConfig,
    pub files: FilesConfig,
    pub sandbox: SandboxConfig,
    pub tools: ToolsConfig,
    pub llm: LlmConfig,
    pub agent: AgentConfig,
    pub log: LogConfig,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Largest request body accepted, in bytes (uploads have their own limit).
    pub body_limit_bytes: usize,
    /// Origins allowed to call the API from a browser; empty allows only the
    /// same origin, `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// How long shutdown waits for requests in flight, in seconds.
    pub shutdown_grace_secs: u64,
    /// A second listener for operators (`/metrics`, `/healthz`, `/readyz`,
    /// no credentials): an address reachable only inside the deployment.
    /// Empty: no admin listener.
    pub admin_bind: String,
    /// Bearer token that unlocks `/metrics` on the public listener (at
    /// least 32 characters). Empty: `/metrics` there is refused.
    pub metrics_token: String,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("cors_origins", &self.cors_origins)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("admin_bind", &self.admin_bind)
            .field("metrics_token", &if self.metrics_token.is_empty() { "" } else { "<redacted>" })
            .finish()
    }
}

impl ServerConfig {
    /// The admin listener's address, when one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_bind.parse().ok()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://…` for PostgreSQL, `sqlite://PATH` for SQLite; empty for a
    /// SQLite file `cairn.db` in the data dir.
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a connection before it fails with 503, in seconds.
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://…` or `rediss://…`; empty for the in-process bus.
    pub url: String,
    /// Prefix of every key Cairn writes, so several deployments can share a server.
    pub prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Seconds a worker may hold a job without a heartbeat before another takes it.
    pub lease_secs: u64,
    /// Deliveries after which a failing job is set aside as a dead letter.
    pub max_deliveries: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `iss` of the access tokens this deployment issues and accepts.
    pub issuer: String,
    /// `aud` of the access tokens.
    pub audience: String,
    /// Lifetime of an access token, in seconds (at most 900).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds; each use issues a fresh one.
    pub refresh_token_ttl_secs: u64,
    /// Lifetime of a password-recovery link, in seconds (at most 900).
    pub reset_token_ttl_secs: u64,
    /// Lifetime of a WebSocket ticket (single use), in seconds.
    pub ticket_ttl_secs: u64,
    /// HMAC keys for access tokens; the first signs, all verify (rotation).
    /// Empty: a key is generated on first start and kept in the data dir.
    pub signing_keys: Vec<SigningKey>,
    /// The address people reach the web app at, for links in e-mails.
    pub public_url: String,
}

/// One access-token signing key.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    /// Key id, sent in each token's `kid` header.
    pub kid: String,
    /// At least 32 bytes, base64url-encoded (no padding).
    pub secret: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("secret", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `smtps://user:pass@host:465` or `smtp://host:587` (STARTTLS); empty
    /// writes each message as an .eml file into `outbox` in the data dir.
    pub smtp_url: String,
    /// The sender of every message.
    pub from: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// API requests per minute for one signed-in user.
    pub per_user_per_minute: u64,
    /// API requests per minute for one API key.
    pub per_api_key_per_minute: u64,
    /// API requests per minute from one client address.
    pub per_address_per_minute: u64,
    /// Failed sign-ins per account before it is throttled.
    pub sign_in_failures_per_account: u64,
    /// Failed sign-ins from one client address before it is throttled.
    pub sign_in_failures_per_address: u64,
    /// The window of the failed sign-in limits, in seconds.
    pub sign_in_window_secs: u64,
    /// Take the client address from this header (set by a trusted reverse
    /// proxy, e.g. `x-forwarded-for`) instead of the connection.
    pub client_address_header: String,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Where file contents live: empty for a folder `objects` in the data dir,
    /// `file:///path`, `s3://bucket[/prefix]`, `gs://bucket`, `az://container`.
    /// Cloud credentials come from the usual `AWS_*`, `GOOGLE_*`, `AZURE_*`
    /// environment variables or the keys below.
    pub store_url: String,
    /// S3-compatible endpoint (MinIO and the like), e.g. `http://127.0.0.1:9000`.
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    /// `true` for path-style requests (most S3-compatible servers).
    pub s3_path_style: bool,
    /// Allow plain-HTTP endpoints (a local MinIO); never for the internet.
    pub allow_http: bool,
    /// Largest single upload, in bytes.
    pub max_upload_bytes: u64,
    /// Bytes a project may store, every version counted.
    pub project_quota_bytes: u64,
    /// Default lifetime of a download link, in seconds (at most `link_max_ttl_secs`).
    pub link_ttl_secs: u64,
    /// Longest lifetime a download link may ask for (at most 3600).
    pub link_max_ttl_secs: u64,
    /// HMAC key (base64url, ≥32 bytes) for links to locally stored files;
    /// empty: generated on first start and kept in the data dir.
    pub link_signing_key: String,
}

impl std::fmt::Debug for FilesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesConfig")
            .field("store_url", &self.store_url)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_path_style", &self.s3_path_style)
            .field("allow_http", &self.allow_http)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("project_quota_bytes", &self.project_quota_bytes)
            .field("link_ttl_secs", &self.link_ttl_secs)
            .field("link_max_ttl_secs", &self.link_max_ttl_secs)
            .finish_non_exhaustive()
    }
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            store_url: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            s3_path_style: false,
            allow_http: false,
            max_upload_bytes: 10 * 1024 * 1024 * 1024,
            project_quota_bytes: 100 * 1024 * 1024 * 1024,
            link_ttl_secs: 300,
            link_max_ttl_secs: 3600,
            link_signing_key: String::new(),
        }
    }
}

/// Where sandboxes run and what they may use.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Empty: sandboxes run on this machine. `http://host:port`: they run on
    /// a `cairn serve --role sandbox-host` there.
    pub host_url: String,
    /// The service credential between Cairn and a sandbox host (at least 32
    /// characters): required by the `sandbox-host` role and by `host_url`.
    pub host_token: String,
    /// The sandboxes' Python (a venv's `bin/python` with the data stack);
    /// empty: the `python3` on the PATH.
    pub python: String,
    /// Sandboxes kept started ahead of need.
    pub pool_size: usize,
    /// Default and largest memory of one sandbox, in MiB.
    pub memory_mb: u64,
    pub max_memory_mb: u64,
    /// Default and largest number of processes of one sandbox.
    pub processes: u32,
    pub max_processes: u32,
    /// Default and longest wall time of one execution, in seconds.
    pub wall_time_secs: u64,
    pub max_wall_time_secs: u64,
    /// Default and largest workspace size, in MiB.
    pub disk_mb: u64,
    pub max_disk_mb: u64,
    /// Output kept per execution, in KiB.
    pub output_kb: u64,
    /// A running sandbox idle this long is paused (processes stopped, files kept).
    pub idle_pause_secs: u64,
    /// A paused sandbox idle this long is deleted with its workspace.
    pub idle_reclaim_secs: u64,
    /// Running sandboxes per user and on this host.
    pub max_running_per_user: usize,
    pub max_running: usize,
    /// Whether a sandbox's policy may ask for network (HTTP and HTTPS through
    /// the egress proxy, which never reaches loopback or private addresses).
    pub allow_network: bool,
    /// Ports the egress proxy connects to.
    pub egress_ports: Vec<u16>,
    /// Exact `address:port` pairs the egress proxy may reach even though
    /// they are private (an internal package mirror).
    pub egress_allow: Vec<SocketAddr>,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("host_url", &self.host_url)
            .field("python", &self.python)
            .field("pool_size", &self.pool_size)
            .field("memory_mb", &self.memory_mb)
            .field("allow_network", &self.allow_network)
            .finish_non_exhaustive()
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            host_url: String::new(),
            host_token: String::new(),
            python: String::new(),
            pool_size: 2,
            memory_mb: 1024,
            max_memory_mb: 4096,
            processes: 256,
            max_processes: 1024,
            wall_time_secs: 120,
            max_wall_time_secs: 1800,
            disk_mb: 2048,
            max_disk_mb: 10240,
            output_kb: 1024,
            idle_pause_secs: 900,
            idle_reclaim_secs: 7 * 24 * 3600,
            max_running_per_user: 4,
            max_running: 32,
            allow_network: true,
            egress_ports: vec![80, 443],
            egress_allow: Vec::new(),
        }
    }
}

/// The agent's tools: web access, search, the browser.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// How long one web request may take, in seconds.
    pub fetch_timeout_secs: u64,
    /// The largest page or file a web tool reads, in MiB.
    pub fetch_max_mb: u64,
    /// Exact `address:port` pairs the web tools and the browser may reach
    /// although they are private (an intranet site); everything else private,
    /// loopback, link-local or metadata is refused.
    pub allow_private: Vec<SocketAddr>,
    /// `""` (no web search), `brave` (the Brave Search API) or `searxng`.
    pub search_provider: String,
    /// SearXNG's base URL; for `brave`, another endpoint (empty: Brave's own).
    pub search_url: String,
    /// The Brave Search API subscription token.
    pub search_api_key: String,
    /// The Chromium executable; empty: `chromium` (or `chromium-browser`,
    /// `google-chrome`) on the PATH.
    pub browser_path: String,
    /// A browser context unused this long is closed, in seconds.
    pub browser_idle_secs: u64,
}

impl std::fmt::Debug for ToolsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolsConfig")
            .field("fetch_timeout_secs", &self.fetch_timeout_secs)
            .field("fetch_max_mb", &self.fetch_max_mb)
            .field("allow_private", &self.allow_private)
            .field("search_provider", &self.search_provider)
            .field("search_url", &self.search_url)
            .field("browser_path", &self.browser_path)
            .finish_non_exhaustive()
    }
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            fetch_timeout_secs: 30,
            fetch_max_mb: 20,
            allow_private: Vec::new(),
            search_provider: String::new(),
            search_url: String::new(),
            search_api_key: String::new(),
            browser_path: String::new(),
            browser_idle_secs: 600,
        }
    }
}

/// The language models Cairn may use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// The providers and their models (`[[llm.providers]]` in TOML).
    pub providers: Vec<LlmProvider>,
    /// `provider/model` used when a project or thread names none; empty:
    /// the first configured.
    pub default_model: String,
    /// Retries of a call that fails before its first token (429, 5xx, a
    /// dropped connection).
    pub max_retries: u32,
    /// How long a call may wait for its first token, in seconds.
    pub first_token_timeout_secs: u64,
    /// How long a stream may pause between tokens, in seconds.
    pub idle_timeout_secs: u64,
    /// The embedding model of project memory, `provider/model` of an
    /// `openai` or `openai-compatible` provider (its `/embeddings`); empty:
    /// memory is off.
    pub embedding_model: String,
    /// With no providers configured, connect what the environment offers:
    /// `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` (and their `*_BASE_URL`) and a
    /// local Ollama on 127.0.0.1:11434.
    pub discover: bool,
    /// Keys that seal the provider keys administrators enter in the app:
    /// `[{kid = "2026-11", secret = "<base64url, ≥32 bytes>"}]`; the first
    /// seals, all open (rotate by adding a new key first). Empty: a key is
    /// generated on first start into `<data_dir>/llm/secret-keys.json`.
    pub secret_keys: Vec<SigningKey>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            providers: Vec::new(),
            default_model: String::new(),
            max_retries: 3,
            first_token_timeout_secs: 120,
            idle_timeout_secs: 60,
            embedding_model: String::new(),
            discover: true,
            secret_keys: Vec::new(),
        }
    }
}

/// The agent's workers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Runs one process works on at once.
    pub workers: usize,
    /// A run's budget: model calls, tokens, cost (US dollars) and time
    /// (seconds spent in steps); reaching one ends the run with a message.
    pub max_steps: u32,
    pub max_tokens: u64,
    pub max_cost_usd: f64,
    pub max_wall_secs: u64,
    /// Tools whose calls wait for a member's approval (the run pauses and
    /// asks), e.g. `["shell", "save_artifact"]`.
    pub require_approval: Vec<String>,
    /// When a planned run waits for a member to approve (or edit) its plan:
    /// `never`, `always`, or a number N — plans of more than N tasks.
    pub plan_approval: String,
    /// The sub-agents a plan's tasks are given to. Empty: the built-in
    /// analyst, researcher and writer.
    pub agents: Vec<AgentSpec>,
}

/// A sub-agent, defined as data: a deployment adds specialists without code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// How plans name it (`analyst`).
    pub name: String,
    /// Added to its system prompt: what it is good at, how it works.
    pub role: String,
    /// The tools it may call; empty: all of them.
    #[serde(default)]
    pub tools: Vec<String>,
    /// `provider/model`; empty: the run's model.
    #[serde(default)]
    pub model: String,
    /// Model calls one task may take.
    #[serde(default = "default_task_steps")]
    pub max_steps: u32,
}

fn default_task_steps() -> u32 {
    12
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            workers: 4,
            max_steps: 30,
            max_tokens: 2_000_000,
            max_cost_usd: 10.0,
            max_wall_secs: 3600,
            require_approval: Vec::new(),
            plan_approval: "never".to_owned(),
            agents: Vec::new(),
        }
    }
}

/// Whether a plan of `tasks` tasks waits for a member's approval under the
/// `agent.plan_approval` setting.
pub fn plan_needs_approval(setting: &str, tasks: usize) -> bool {
    match setting {
        "never" => false,
        "always" => true,
        over => over.parse::<usize>().is_ok_and(|n| tasks > n),
    }
}

/// One LLM provider.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmProvider {
    /// The first part of model ids (`openai` in `openai/gpt-4o-mini`).
    pub name: String,
    /// `openai`, `anthropic`, `openai-compatible` or `azure-openai`.
    pub kind: String,
    /// Empty for the provider's own API (or `OPENAI_BASE_URL` /
    /// `ANTHROPIC_BASE_URL` when set, as the providers' SDKs do); else e.g.
    /// `http://127.0.0.1:11434/v1`; for Azure, `https://RESOURCE.openai.azure.com`.
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub api_key: String,
    /// Azure OpenAI's `api-version`; empty: a current GA version.
    #[serde(default)]
    pub api_version: String,
    /// For Azure, each model's name is its deployment's name.
    pub models: Vec<LlmModel>,
}

impl std::fmt::Debug for LlmProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("models", &self.models)
            .finish_non_exhaustive()
    }
}

/// One model of a provider. Everything but the name comes from built-in
/// defaults by model family (see `cairn_llm::Capabilities`); what is set
/// here overrides them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmModel {
    pub name: String,
    /// US dollars per million input tokens (for cost accounting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_usd_per_mtok: Option<f64>,
    /// US dollars per million output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_usd_per_mtok: Option<f64>,
    /// US dollars per million prompt tokens read from the provider's cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_usd_per_mtok: Option<f64>,
    /// US dollars per million prompt tokens written to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_usd_per_mtok: Option<f64>,
    /// The model's context window in tokens: a prompt never exceeds it
    /// (older turns are summarised first). 0: the family's.
    #[serde(default)]
    pub context_tokens: u32,
    /// OpenAI's API to call it through: `chat_completions` or `responses`;
    /// empty: `responses` for OpenAI's own reasoning models (their
    /// reasoning summaries need it), `chat_completions` otherwise.
    #[serde(default)]
    pub api: String,
    /// The parameter that caps a reply: `max_tokens` or
    /// `max_completion_tokens`; empty: the family's.
    #[serde(default)]
    pub token_limit: String,
    /// Whether the model accepts a temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<bool>,
    /// Whether the model accepts images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<bool>,
    /// Whether the model reasons before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<bool>,
    /// `reasoning_effort` for OpenAI reasoning models: `minimal`, `low`,
    /// `medium` or `high`; empty: the provider's default.
    #[serde(default)]
    pub reasoning_effort: String,
    /// Anthropic extended thinking budget in tokens (at least 1024; 0 or
    /// absent: off). The thinking streams apart from the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_tokens: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `cairn_gateway=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            queue: QueueConfig::default(),
            auth: AuthConfig::default(),
            mail: MailConfig::default(),
            rate_limit: RateLimitConfig::default(),
            files: FilesConfig::default(),
            sandbox: SandboxConfig::default(),
            tools: ToolsConfig::default(),
            llm: LlmConfig::default(),
            agent: AgentConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 2 * 1024 * 1024,
            cors_origins: Vec::new(),
            shutdown_grace_secs: 30,
            admin_bind: String::new(),
            metrics_token: String::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: String::new(), max_connections: 10, acquire_timeout_secs: 5 }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig { url: String::new(), prefix: "cairn".to_owned() }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { lease_secs: 30, max_deliveries: 5 }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "cairn".to_owned(),
            audience: "cairn-api".to_owned(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            reset_token_ttl_secs: 900,
            ticket_ttl_secs: 30,
            signing_keys: Vec::new(),
            public_url: "http://127.0.0.1:8080".to_owned(),
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig { smtp_url: String::new(), from: "Cairn <cairn@localhost>".to_owned() }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_user_per_minute: 1200,
            per_api_key_per_minute: 1200,
            per_address_per_minute: 2400,
            sign_in_failures_per_account: 5,
            sign_in_failures_per_address: 20,
            sign_in_window_secs: 900,
            client_address_header: String::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".to_owned(), format: LogFormat::Json }
    }
}

/// Which database a configuration selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite { url: String },
    Postgres { url: String },
}

/// Why configuration could not be loaded. Start-up stops and prints it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file named with `--config` cannot be read.
    #[error("cannot read the configuration file {path}: {cause}")]
    Unreadable { path: PathBuf, cause: std::io::Error },
    /// A value has the wrong type or shape, a key is unknown, or the file is
    /// not valid TOML. The message names the key and where it came from.
    #[error("{0}")]
    Parse(String),
    /// A value parsed but is not acceptable.
    #[error("configuration key `{key}` is invalid: expected {expected}, got `{got}`")]
    Invalid { key: &'static str, expected: &'static str, got: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Config {
    /// Defaults, then the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        Self::load_from(file, Env::prefixed(ENV_PREFIX).split("__"))
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            // Read it ourselves: figment treats a missing file as empty.
            let text =
                std::fs::read_to_string(path).map_err(|cause| Error::Unreadable { path: path.to_owned(), cause })?;
            figment = figment.merge(Toml::string(&text));
        }
        let config: Config = figment.merge(env).extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<()> {
        self.database_kind()?;
        let redis = &self.redis.url;
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(Error::Invalid {
                key: "redis.url",
                expected: "empty (in-process bus) or a redis:// or rediss:// URL",
                got: redis.clone(),
            });
        }
        let limits = &self.rate_limit;
        let checks: [(&'static str, u64, &'static str); 15] = [
            ("auth.access_token_ttl_secs", self.auth.access_token_ttl_secs, "at least 1 second"),
            ("auth.refresh_token_ttl_secs", self.auth.refresh_token_ttl_secs, "at least 1 second"),
            ("auth.reset_token_ttl_secs", self.auth.reset_token_ttl_secs, "at least 1 second"),
            ("auth.ticket_ttl_secs", self.auth.ticket_ttl_secs, "at least 1 second"),
            ("rate_limit.per_user_per_minute", limits.per_user_per_minute, "at least 1"),
            ("rate_limit.per_api_key_per_minute", limits.per_api_key_per_minute, "at least 1"),
            ("rate_limit.per_address_per_minute", limits.per_address_per_minute, "at least 1"),
            ("rate_limit.sign_in_failures_per_account", limits.sign_in_failures_per_account, "at least 1"),
            ("rate_limit.sign_in_failures_per_address", limits.sign_in_failures_per_address, "at least 1"),
            ("rate_limit.sign_in_window_secs", limits.sign_in_window_secs, "at least 1 second"),
            ("server.body_limit_bytes", self.server.body_limit_bytes as u64, "a size in bytes of at least 1"),
            ("database.max_connections", self.database.max_connections.into(), "at least 1"),
            ("database.acquire_timeout_secs", self.database.acquire_timeout_secs, "at least 1 second"),
            ("queue.lease_secs", self.queue.lease_secs, "at least 1 second"),
            ("queue.max_deliveries", self.queue.max_deliveries.into(), "at least 1"),
        ];
        for (key, value, expected) in checks {
            if value == 0 {
                return Err(Error::Invalid { key, expected, got: value.to_string() });
            }
        }
        for (key, value) in [
            ("auth.access_token_ttl_secs", self.auth.access_token_ttl_secs),
            ("auth.reset_token_ttl_secs", self.auth.reset_token_ttl_secs),
            ("auth.ticket_ttl_secs", self.auth.ticket_ttl_secs),
        ] {
            if value > 900 {
                return Err(Error::Invalid {
                    key,
                    expected: "at most 900 seconds (15 minutes)",
                    got: value.to_string(),
                });
            }
        }
        for signing_key in &self.auth.signing_keys {
            let bytes = signing_key.secret.len() * 3 / 4;
            if signing_key.kid.is_empty() || bytes < 32 {
                return Err(Error::Invalid {
                    key: "auth.signing_keys",
                    expected: "keys with a non-empty `kid` and a base64url `secret` of at least 32 bytes",
                    got: format!("kid `{}` with a {bytes}-byte secret", signing_key.kid),
                });
            }
        }
        let files = &self.files;
        let store_ok = ["", "file://", "s3://", "gs://", "az://", "azure://", "abfs://"].iter().any(|scheme| {
            if scheme.is_empty() { files.store_url.is_empty() } else { files.store_url.starts_with(scheme) }
        });
        if !store_ok {
            return Err(Error::Invalid {
                key: "files.store_url",
                expected: "empty (a folder in the data dir), file://, s3://, gs:// or az:// URL",
                got: files.store_url.clone(),
            });
        }
        if files.link_max_ttl_secs == 0 || files.link_max_ttl_secs > 3600 {
            return Err(Error::Invalid {
                key: "files.link_max_ttl_secs",
                expected: "1 to 3600 seconds",
                got: files.link_max_ttl_secs.to_string(),
            });
        }
        if files.link_ttl_secs == 0 || files.link_ttl_secs > files.link_max_ttl_secs {
            return Err(Error::Invalid {
                key: "files.link_ttl_secs",
                expected: "at least 1 second and at most files.link_max_ttl_secs",
                got: files.link_ttl_secs.to_string(),
            });
        }
        if files.max_upload_bytes == 0 || files.project_quota_bytes == 0 {
            return Err(Error::Invalid {
                key: "files.max_upload_bytes",
                expected: "upload and quota limits of at least 1 byte",
                got: format!("{} / {}", files.max_upload_bytes, files.project_quota_bytes),
            });
        }
        let sandbox = &self.sandbox;
        for (key, default, max) in [
            ("sandbox.memory_mb", sandbox.memory_mb, sandbox.max_memory_mb),
            ("sandbox.processes", sandbox.processes.into(), sandbox.max_processes.into()),
            ("sandbox.wall_time_secs", sandbox.wall_time_secs, sandbox.max_wall_time_secs),
            ("sandbox.disk_mb", sandbox.disk_mb, sandbox.max_disk_mb),
        ] {
            if default == 0 || default > max {
                return Err(Error::Invalid {
                    key,
                    expected: "at least 1 and at most its max_ counterpart",
                    got: format!("{default} (max {max})"),
                });
            }
        }
        for (key, value) in [
            ("sandbox.output_kb", sandbox.output_kb),
            ("sandbox.idle_pause_secs", sandbox.idle_pause_secs),
            ("sandbox.idle_reclaim_secs", sandbox.idle_reclaim_secs),
            ("sandbox.max_running_per_user", sandbox.max_running_per_user as u64),
            ("sandbox.max_running", sandbox.max_running as u64),
        ] {
            if value == 0 {
                return Err(Error::Invalid { key, expected: "at least 1", got: value.to_string() });
            }
        }
        if !(sandbox.host_url.is_empty()
            || sandbox.host_url.starts_with("http://")
            || sandbox.host_url.starts_with("https://"))
        {
            return Err(Error::Invalid {
                key: "sandbox.host_url",
                expected: "empty (sandboxes on this machine) or an http:// or https:// URL",
                got: sandbox.host_url.clone(),
            });
        }
        if !sandbox.host_url.is_empty() && sandbox.host_token.len() < 32 {
            return Err(Error::Invalid {
                key: "sandbox.host_token",
                expected: "the sandbox host's service credential (at least 32 characters) when sandbox.host_url is set",
                got: format!("{} characters", sandbox.host_token.len()),
            });
        }
        let tools = &self.tools;
        for (key, value) in [
            ("tools.fetch_timeout_secs", tools.fetch_timeout_secs),
            ("tools.fetch_max_mb", tools.fetch_max_mb),
            ("tools.browser_idle_secs", tools.browser_idle_secs),
        ] {
            if value == 0 {
                return Err(Error::Invalid { key, expected: "at least 1", got: value.to_string() });
            }
        }
        match tools.search_provider.as_str() {
            "" => {}
            "brave" if !tools.search_api_key.is_empty() => {}
            "searxng" if tools.search_url.starts_with("http://") || tools.search_url.starts_with("https://") => {}
            other => {
                return Err(Error::Invalid {
                    key: "tools.search_provider",
                    expected: "empty, `brave` (with tools.search_api_key) or `searxng` (with an http(s) tools.search_url)",
                    got: other.to_owned(),
                });
            }
        }
        let llm = &self.llm;
        for provider in &llm.providers {
            // A compatible server may leave its models out: they are read from its `/models`.
            let models_ok = !provider.models.is_empty() || provider.kind == "openai-compatible";
            if !matches!(provider.kind.as_str(), "openai" | "anthropic" | "openai-compatible" | "azure-openai")
                || provider.name.is_empty()
                || provider.name.contains('/')
                || !models_ok
            {
                return Err(Error::Invalid {
                    key: "llm.providers",
                    expected: "providers with a name (no `/`), a kind of openai, anthropic, openai-compatible \
                               or azure-openai, and at least one model (an openai-compatible server's are \
                               read from its /models when none are listed)",
                    got: format!("{provider:?}"),
                });
            }
            if matches!(provider.kind.as_str(), "openai-compatible" | "azure-openai") && provider.base_url.is_empty() {
                return Err(Error::Invalid {
                    key: "llm.providers",
                    expected: "a base_url for an openai-compatible or azure-openai provider \
                               (Azure: https://RESOURCE.openai.azure.com)",
                    got: provider.name.clone(),
                });
            }
            for model in &provider.models {
                let limit_ok = matches!(model.token_limit.as_str(), "" | "max_tokens" | "max_completion_tokens");
                let api_ok = matches!(model.api.as_str(), "" | "chat_completions" | "responses");
                let effort_ok = matches!(model.reasoning_effort.as_str(), "" | "minimal" | "low" | "medium" | "high");
                let thinking_ok = model.thinking_tokens.is_none_or(|t| t == 0 || (1024..=128_000).contains(&t));
                if model.name.is_empty() || !limit_ok || !api_ok || !effort_ok || !thinking_ok {
                    return Err(Error::Invalid {
                        key: "llm.providers",
                        expected: "models with a name, an api of chat_completions or responses (or none), a \
                                   token_limit of max_tokens or max_completion_tokens (or none), a reasoning_effort of minimal, low, medium or high (or none), and \
                                   thinking_tokens of 0 or 1024 to 128000",
                        got: format!("{}/{}", provider.name, model.name),
                    });
                }
            }
        }
        if !llm.default_model.is_empty()
            && !llm
                .providers
                .iter()
                .any(|p| p.models.iter().any(|m| format!("{}/{}", p.name, m.name) == llm.default_model))
        {
            return Err(Error::Invalid {
                key: "llm.default_model",
                expected: "a configured `provider/model`",
                got: llm.default_model.clone(),
            });
        }
        if llm.first_token_timeout_secs == 0 || llm.idle_timeout_secs == 0 {
            return Err(Error::Invalid {
                key: "llm.first_token_timeout_secs",
                expected: "timeouts of at least 1 second",
                got: format!("{} / {}", llm.first_token_timeout_secs, llm.idle_timeout_secs),
            });
        }
        if !llm.embedding_model.is_empty() {
            let provider = llm.embedding_model.split_once('/').map(|(p, _)| p).unwrap_or_default();
            let usable = llm.providers.iter().any(|p| p.name == provider && p.kind != "anthropic");
            if !usable {
                return Err(Error::Invalid {
                    key: "llm.embedding_model",
                    expected: "provider/model of a configured openai or openai-compatible provider",
                    got: llm.embedding_model.clone(),
                });
            }
        }
        let agent = &self.agent;
        if agent.workers == 0
            || agent.max_steps == 0
            || agent.max_tokens == 0
            || agent.max_wall_secs == 0
            || agent.max_cost_usd <= 0.0
        {
            return Err(Error::Invalid {
                key: "agent",
                expected: "at least one worker and positive budgets (max_steps, max_tokens, max_cost_usd, max_wall_secs)",
                got: format!("{agent:?}"),
            });
        }
        if !matches!(agent.plan_approval.as_str(), "never" | "always") && agent.plan_approval.parse::<usize>().is_err()
        {
            return Err(Error::Invalid {
                key: "agent.plan_approval",
                expected: "never, always, or a number of tasks",
                got: agent.plan_approval.clone(),
            });
        }
        if let Some(bad) = agent.agents.iter().find(|a| {
            a.name.is_empty()
                || !a.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                || a.max_steps == 0
        }) {
            return Err(Error::Invalid {
                key: "agent.agents",
                expected: "agents named with letters, digits, - and _, each with max_steps of at least 1",
                got: format!("{bad:?}"),
            });
        }
        let smtp = &self.mail.smtp_url;
        if !(smtp.is_empty() || smtp.starts_with("smtp://") || smtp.starts_with("smtps://")) {
            return Err(Error::Invalid {
                key: "mail.smtp_url",
                expected: "empty (write messages to the outbox folder) or an smtp:// or smtps:// URL",
                got: smtp.clone(),
            });
        }
        if self.redis.prefix.is_empty() || self.redis.prefix.contains(char::is_whitespace) {
            return Err(Error::Invalid {
                key: "redis.prefix",
                expected: "a non-empty prefix without spaces",
                got: self.redis.prefix.clone(),
            });
        }
        let admin = &self.server.admin_bind;
        if !admin.is_empty() && admin.parse::<SocketAddr>().is_err() {
            return Err(Error::Invalid {
                key: "server.admin_bind",
                expected: "empty (no admin listener) or an address such as 127.0.0.1:9090",
                got: admin.clone(),
            });
        }
        let metrics_token = &self.server.metrics_token;
        if !metrics_token.is_empty() && metrics_token.len() < 32 {
            return Err(Error::Invalid {
                key: "server.metrics_token",
                expected: "empty (metrics only on the admin listener) or at least 32 characters",
                got: format!("{} characters", metrics_token.len()),
            });
        }
        for origin in &self.server.cors_origins {
            let ok = origin == "*" || origin.starts_with("http://") || origin.starts_with("https://");
            if !ok {
                return Err(Error::Invalid {
                    key: "server.cors_origins",
                    expected: "`*` or origins like https://app.example.com",
                    got: origin.clone(),
                });
            }
        }
        Ok(())
    }

    /// The database this configuration selects; an empty URL means the SQLite
    /// file in the data dir.
    pub fn database_kind(&self) -> Result<DatabaseKind> {
        let url = &self.database.url;
        if url.is_empty() {
            let path = self.data_dir.join("cairn.db");
            return Ok(DatabaseKind::Sqlite { url: format!("sqlite://{}", path.display()) });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseKind::Postgres { url: url.clone() });
        }
        if url.starts_with("sqlite:") {
            return Ok(DatabaseKind::Sqlite { url: url.clone() });
        }
        Err(Error::Invalid {
            key: "database.url",
            expected: "empty (SQLite in the data dir), a sqlite:// URL or a postgres:// URL",
            got: url.clone(),
        })
    }
}

/// Turns figment's errors into one message per problem that names the key in
/// its `section.key` form, the environment variable or file it came from, and
/// what was expected.
fn describe(errors: figment::Error) -> Error {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|error| {
            let key = error.path.join(".");
            let origin = match &error.metadata {
                Some(meta) => match &meta.source {
                    Some(figment::Source::Custom(s)) if meta.name.contains("environment") => {
                        format!(" (from environment variable {ENV_PREFIX}{})", s.to_uppercase())
                    }
                    _ if meta.name.contains("environment") => {
                        let var = error.path.iter().map(|p| p.to_uppercase()).collect::<Vec<_>>();
                        format!(" (from environment variable {ENV_PREFIX}{})", var.join("__"))
                    }
                    _ if meta.name.contains("TOML") => " (from the configuration file)".to_owned(),
                    _ => String::new(),
                },
                None => String::new(),
            };
            let hint = match key.as_str() {
                "server.bind" => "; expected an address such as 127.0.0.1:8080",
                "log.format" => "; expected `json` or `pretty`",
                "server.cors_origins" => "; expected a list of origins such as [\"https://app.example.com\"]",
                _ => "",
            };
            if key.is_empty() {
                format!("configuration{origin}: {}", error.kind)
            } else {
                format!("configuration key `{key}`{origin}: {}{hint}", error.kind)
            }
        })
        .collect();
    Error::Parse(lines.join("; "))
}

#[cfg(test)]
// figment's Jail API returns its (large) error type by value.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in_jail(file: Option<&str>) -> Result<Config> {
        let path = file.map(|_| PathBuf::from("cairn.toml"));
        Config::load(path.as_deref())
    }

    #[test]
    fn defaults_describe_the_all_in_one_shape() {
        let config = Config::load_from(None, Env::prefixed("CAIRN_TEST_NOTHING__")).unwrap();
        assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.database_kind().unwrap(),
            DatabaseKind::Sqlite { url: "sqlite://./data/cairn.db".to_owned() }
        );
        assert!(config.redis.url.is_empty());
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "cairn.toml",
                "data_dir = \"/srv/cairn\"\n[server]\nbind = \"0.0.0.0:7000\"\nbody_limit_bytes = 1000\n",
            )?;
            jail.set_env("CAIRN__SERVER__BIND", "127.0.0.1:9000");
            jail.set_env("CAIRN__DATABASE__URL", "postgres://db.internal/cairn");
            jail.set_env("CAIRN__REDIS__URL", "redis://127.0.0.1:6379");
            let config = load_in_jail(Some("cairn.toml")).map_err(|e| e.to_string())?;
            assert_eq!(config.server.bind.to_string(), "127.0.0.1:9000");
            assert_eq!(config.server.body_limit_bytes, 1000);
            assert_eq!(config.data_dir, PathBuf::from("/srv/cairn"));
            assert_eq!(
                config.database_kind().unwrap(),
                DatabaseKind::Postgres { url: "postgres://db.internal/cairn".to_owned() }
            );
            Ok(())
        });
    }

    #[test]
    fn data_dir_comes_from_the_top_level_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("CAIRN__DATA_DIR", "/var/lib/cairn");
            let config = load_in_jail(None).map_err(|e| e.to_string())?;
            assert_eq!(config.data_dir, PathBuf::from("/var/lib/cairn"));
            Ok(())
        });
    }

    fn error_in_jail(setup: impl FnOnce(&mut Jail) -> figment::error::Result<Option<&'static str>>) -> String {
        let mut message = String::new();
        Jail::expect_with(|jail| {
            let file = setup(jail)?;
            message = load_in_jail(file).expect_err("configuration should be refused").to_string();
            Ok(())
        });
        message
    }

    #[test]
    fn a_bad_environment_value_names_the_key_and_the_variable() {
        let message = error_in_jail(|jail| {
            jail.set_env("CAIRN__SERVER__BIND", "not-an-address");
            Ok(None)
        });
        assert!(message.contains("`server.bind`"), "{message}");
        assert!(message.contains("CAIRN__SERVER__BIND"), "{message}");
        assert!(message.contains("expected an address such as 127.0.0.1:8080"), "{message}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let message = error_in_jail(|jail| {
            jail.create_file("cairn.toml", "[server]\nbnid = \"127.0.0.1:1\"\n")?;
            Ok(Some("cairn.toml"))
        });
        assert!(message.contains("unknown field: found `bnid`"), "{message}");
        assert!(message.contains("configuration file"), "{message}");
    }

    #[test]
    fn a_file_that_does_not_parse_is_refused() {
        let message = error_in_jail(|jail| {
            jail.create_file("cairn.toml", "[server\nbind = 1\n")?;
            Ok(Some("cairn.toml"))
        });
        assert!(message.starts_with("configuration"), "{message}");
    }

    #[test]
    fn a_missing_file_is_an_error_not_an_empty_config() {
        let err = Config::load(Some(Path::new("/nonexistent/cairn.toml"))).unwrap_err();
        assert!(matches!(err, Error::Unreadable { .. }), "{err}");
    }

    #[test]
    fn llm_providers_come_from_the_file_and_are_checked() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "cairn.toml",
                r#"
                [llm]
                default_model = "local/qwen3"
                [[llm.providers]]
                name = "local"
                kind = "openai-compatible"
                base_url = "http://127.0.0.1:11434/v1"
                models = [{ name = "qwen3" }]
                "#,
            )?;
            let config = load_in_jail(Some("cairn.toml")).unwrap();
            assert_eq!(config.llm.providers[0].models[0].name, "qwen3");
            jail.create_file(
                "cairn.toml",
                "[[llm.providers]]\nname = \"x\"\nkind = \"openai-compatible\"\nmodels = [{ name = \"m\" }]\n",
            )?;
            let message = load_in_jail(Some("cairn.toml")).unwrap_err().to_string();
            assert!(message.contains("`llm.providers`") && message.contains("base_url"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn values_that_parse_but_make_no_sense_are_refused() {
        let cases = [
            ("CAIRN__DATABASE__URL", "mysql://x", "database.url"),
            ("CAIRN__REDIS__URL", "http://x", "redis.url"),
            ("CAIRN__QUEUE__LEASE_SECS", "0", "queue.lease_secs"),
            ("CAIRN__SERVER__BODY_LIMIT_BYTES", "0", "server.body_limit_bytes"),
            ("CAIRN__SANDBOX__MEMORY_MB", "99999", "sandbox.memory_mb"),
            ("CAIRN__SANDBOX__HOST_URL", "ftp://x", "sandbox.host_url"),
            ("CAIRN__SANDBOX__HOST_URL", "http://sandboxes:8081", "sandbox.host_token"),
            ("CAIRN__TOOLS__SEARCH_PROVIDER", "brave", "tools.search_provider"),
            ("CAIRN__TOOLS__FETCH_MAX_MB", "0", "tools.fetch_max_mb"),
            ("CAIRN__LLM__DEFAULT_MODEL", "openai/gpt-none", "llm.default_model"),
            ("CAIRN__AGENT__MAX_STEPS", "0", "agent"),
        ];
        for (var, value, key) in cases {
            let message = error_in_jail(|jail| {
                jail.set_env(var, value);
                Ok(None)
            });
            assert!(message.contains(&format!("`{key}`")), "{var}={value}: {message}");
        }
    }
}
