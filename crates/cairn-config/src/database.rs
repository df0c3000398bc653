//! `[database]`: SQLite or PostgreSQL.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, refuse_zero};

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

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: String::new(), max_connections: 10, acquire_timeout_secs: 5 }
    }
}

/// Which database a configuration selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite { url: String },
    Postgres { url: String },
}

impl DatabaseConfig {
    /// The database `url` selects; empty means the SQLite file in `data_dir`.
    pub(crate) fn kind(&self, data_dir: &Path) -> Result<DatabaseKind> {
        let url = &self.url;
        if url.is_empty() {
            let path = data_dir.join("cairn.db");
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

    pub(crate) fn validate(&self) -> Result<()> {
        // Only the URL's scheme is checked here; the data dir does not matter.
        self.kind(Path::new(""))?;
        refuse_zero([
            ("database.max_connections", self.max_connections.into(), "at least 1"),
            ("database.acquire_timeout_secs", self.acquire_timeout_secs, "at least 1 second"),
        ])
    }
}
