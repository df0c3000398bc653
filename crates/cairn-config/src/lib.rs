//! Cairn's configuration: one typed struct, filled from compiled defaults, then
//! an optional TOML file, then `CAIRN__SECTION__KEY` environment variables,
//! and validated before anything starts.
//!
//! Each section (`[server]`, `[database]`, …) is a module with its struct, its
//! defaults and the `validate` for what its types cannot say. Secrets are
//! [`Secret`]s; [`reference`] renders the key reference of
//! `docs/configuration.md` from the defaults and its per-key descriptions.
//!
//! Architecture invariant: loading configuration has no side effects. It
//! reads the file and the environment it is given and nothing else; it opens
//! no connection and creates no directory.

mod agent;
mod auth;
mod database;
mod error;
mod files;
mod llm;
mod log;
mod mail;
mod queue;
mod rate_limit;
mod redis;
pub mod reference;
mod retention;
mod sandbox;
mod secret;
mod server;
mod tools;
mod webhooks;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use agent::{AgentConfig, AgentSpec, PlanApproval};
pub use auth::{AuthConfig, SigningKey};
pub use database::{DatabaseConfig, DatabaseKind};
pub use error::{Error, Result};
pub use files::{FilesConfig, LinkMode};
pub use llm::{LlmConfig, LlmModel, LlmProvider};
pub use log::{LogConfig, LogFormat};
pub use mail::MailConfig;
pub use queue::QueueConfig;
pub use rate_limit::RateLimitConfig;
pub use redis::RedisConfig;
pub use retention::RetentionConfig;
pub use sandbox::{SandboxBackend, SandboxConfig};
pub use secret::{REDACTED, Secret, SecretUrl};
pub use server::ServerConfig;
pub use tools::ToolsConfig;
pub use webhooks::WebhooksConfig;

use error::{describe, refuse_zero};

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
    pub webhooks: WebhooksConfig,
    pub retention: RetentionConfig,
    pub log: LogConfig,
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
            webhooks: WebhooksConfig::default(),
            retention: RetentionConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        Self::load_from(file, Env::prefixed(ENV_PREFIX).split("__"))
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Config> {
        // The defaults hold no secret (every `Secret` is empty), so
        // serializing them loses nothing.
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

    /// Checks what types alone cannot, section by section; the first problem
    /// found is the error.
    pub fn validate(&self) -> Result<()> {
        self.server.validate()?;
        self.database.validate()?;
        self.redis.validate()?;
        self.queue.validate()?;
        self.webhooks.validate()?;
        self.retention.validate()?;
        self.auth.validate()?;
        self.mail.validate()?;
        self.rate_limit.validate()?;
        self.files.validate()?;
        self.sandbox.validate()?;
        self.tools.validate()?;
        self.llm.validate()?;
        self.agent.validate()?;
        self.log.validate()
    }

    /// The database this configuration selects; an empty URL means the SQLite
    /// file in the data dir.
    pub fn database_kind(&self) -> Result<DatabaseKind> {
        self.database.kind(&self.data_dir)
    }
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
        assert_eq!(config.database_kind().unwrap(), DatabaseKind::Sqlite { url: "sqlite://./data/cairn.db".into() });
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
                DatabaseKind::Postgres { url: "postgres://db.internal/cairn".into() }
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
    fn traces_go_to_an_otlp_collector_when_one_is_named() {
        let mut config = Config::default();
        assert_eq!(config.log.traces_url(), None, "off by default");
        config.log.otlp_endpoint = "http://collector:4318/".into();
        assert_eq!(config.log.traces_url().as_deref(), Some("http://collector:4318/v1/traces"));
        config.log.otlp_endpoint = "https://collector/v1/traces".into();
        assert_eq!(config.log.traces_url().as_deref(), Some("https://collector/v1/traces"));
        let message = error_in_jail(|jail| {
            jail.set_env("CAIRN__LOG__OTLP_ENDPOINT", "collector:4317");
            Ok(None)
        });
        assert!(message.contains("`log.otlp_endpoint`") && message.contains("OTLP collector"), "{message}");
        let message = error_in_jail(|jail| {
            jail.set_env("CAIRN__LOG__TRACE_SAMPLE_RATIO", "1.5");
            Ok(None)
        });
        assert!(message.contains("`log.trace_sample_ratio`"), "{message}");
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
    fn debug_output_never_shows_a_secret() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "cairn.toml",
                r#"
                [auth]
                signing_keys = [{ kid = "k1", secret = "SIGNING-KEY-SECRET-0123456789abcdefghijklmnopq" }]
                [llm]
                secret_keys = [{ kid = "s1", secret = "SEALING-KEY-SECRET-0123456789abcdefghijklmnopq" }]
                [[llm.providers]]
                name = "openai"
                kind = "openai"
                api_key = "PROVIDER-API-KEY-SECRET"
                models = [{ name = "gpt-4o" }]
                "#,
            )?;
            jail.set_env("CAIRN__SERVER__METRICS_TOKEN", "METRICS-TOKEN-SECRET-0123456789abcdef");
            jail.set_env("CAIRN__SANDBOX__HOST_TOKEN", "HOST-TOKEN-SECRET-0123456789abcdefghij");
            jail.set_env("CAIRN__FILES__S3_ACCESS_KEY_ID", "S3-KEY-ID-SECRET");
            jail.set_env("CAIRN__FILES__S3_SECRET_ACCESS_KEY", "S3-ACCESS-KEY-SECRET");
            jail.set_env("CAIRN__FILES__LINK_SIGNING_KEY", "LINK-KEY-SECRET");
            jail.set_env("CAIRN__TOOLS__SEARCH_API_KEY", "SEARCH-KEY-SECRET");
            // Passwords inside URLs are secrets too; the hosts stay visible.
            jail.set_env("CAIRN__DATABASE__URL", "postgres://cairn:DB-PASSWORD-SECRET@db.internal/cairn");
            jail.set_env("CAIRN__REDIS__URL", "redis://:REDIS-PASSWORD-SECRET@cache.internal:6379");
            jail.set_env("CAIRN__MAIL__SMTP_URL", "smtps://mailer:SMTP-PASSWORD-SECRET@smtp.internal:465");
            jail.set_env("CAIRN__SANDBOX__PACKAGE_INDEX", "https://INDEX-TOKEN-SECRET@pypi.internal/simple");
            let config = load_in_jail(Some("cairn.toml")).map_err(|e| e.to_string())?;
            assert_eq!(config.llm.providers[0].api_key.expose(), "PROVIDER-API-KEY-SECRET");
            assert_eq!(config.database.url.expose(), "postgres://cairn:DB-PASSWORD-SECRET@db.internal/cairn");
            let kind = config.database_kind().map_err(|e| e.to_string())?;
            assert!(!format!("{kind:?}").contains("SECRET"), "{kind:?}");
            let shown = format!("{config:?} {config:#?}");
            let serialized = format!("{:?}", figment::value::Value::serialize(&config).unwrap());
            for text in [shown, serialized] {
                assert!(!text.contains("SECRET"), "{text}");
                assert!(text.contains(REDACTED), "{text}");
                for host in ["db.internal", "cache.internal", "smtp.internal", "pypi.internal"] {
                    assert!(text.contains(host), "{host}: {text}");
                }
            }
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
            // A refused URL is named without its password.
            ("CAIRN__DATABASE__URL", "mysql://cairn:DB-SECRET@db.internal/cairn", "database.url"),
            ("CAIRN__REDIS__URL", "http://:REDIS-SECRET@cache.internal", "redis.url"),
            ("CAIRN__MAIL__SMTP_URL", "imap://u:SMTP-SECRET@mail.internal", "mail.smtp_url"),
            ("CAIRN__SANDBOX__PACKAGE_INDEX", "ftp://u:INDEX-SECRET@pypi.internal", "sandbox.package_index"),
        ];
        for (var, value, key) in cases {
            let message = error_in_jail(|jail| {
                jail.set_env(var, value);
                Ok(None)
            });
            assert!(message.contains(&format!("`{key}`")), "{var}={value}: {message}");
            assert!(!message.contains("SECRET"), "{var}: {message}");
            if value.contains('@') {
                assert!(message.contains(".internal"), "the host is still named: {message}");
            }
        }
    }
}
