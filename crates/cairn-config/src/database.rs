//! `[database]`: SQLite or PostgreSQL.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, SecretUrl, refuse_zero};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://…` for PostgreSQL, `sqlite://PATH` for SQLite; empty for a
    /// SQLite file `cairn.db` in the data dir.
    pub url: SecretUrl,
    pub max_connections: u32,
    /// How long a request waits for a connection before it fails with 503, in seconds.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: SecretUrl::default(), max_connections: 10, acquire_timeout_secs: 5 }
    }
}

/// Which database a configuration selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite { url: SecretUrl },
    Postgres { url: SecretUrl },
}

impl DatabaseConfig {
    /// The database `url` selects; empty means the SQLite file in `data_dir`.
    pub(crate) fn kind(&self, data_dir: &Path) -> Result<DatabaseKind> {
        let url = self.url.expose();
        if url.is_empty() {
            let path = data_dir.join("cairn.db");
            return Ok(DatabaseKind::Sqlite { url: format!("sqlite://{}", path.display()).into() });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseKind::Postgres { url: self.url.clone() });
        }
        if url.starts_with("sqlite:") {
            return Ok(DatabaseKind::Sqlite { url: self.url.clone() });
        }
        Err(Error::Invalid {
            key: "database.url",
            expected: "empty (SQLite in the data dir), a sqlite:// URL or a postgres:// URL",
            got: self.url.redacted(),
        })
    }

    pub(crate) fn validate(&self) -> Result<()> {
        // Only the URL's scheme is checked here; the data dir does not matter.
        self.kind(Path::new(""))?;
        refuse_zero([
            ("database.max_connections", self.max_connections.into(), "at least 1"),
            ("database.acquire_timeout_secs", self.acquire_timeout_secs, "at least 1 second"),
        ])
    }
}
