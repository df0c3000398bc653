use std::path::PathBuf;

use cairn_core::Dependency;

/// Why the database could not be opened or migrated (start-up errors).
/// Repository calls report `cairn_core::Error` instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse: a configuration error.
    #[error("the database URL is not valid: {cause}")]
    Url { cause: sqlx::Error },
    /// The server did not answer or refused us. Check that it runs and the URL.
    #[error("cannot connect to {backend}: {cause}")]
    Connect { backend: &'static str, cause: String },
    /// The folder for the SQLite file cannot be created.
    #[error("cannot create the data folder {path}: {cause}")]
    DataDir { path: PathBuf, cause: std::io::Error },
    /// A migration failed (it was rolled back) or the database holds a newer
    /// schema than this binary knows.
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(error)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Converts sqlx results into the core's error, naming the entity a missing
/// or duplicate row is about.
pub(crate) trait DbResult<T> {
    fn db(self) -> cairn_core::Result<T>;
    fn db_entity(self, entity: &'static str) -> cairn_core::Result<T>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> cairn_core::Result<T> {
        self.map_err(|e| convert(e, "row"))
    }

    fn db_entity(self, entity: &'static str) -> cairn_core::Result<T> {
        self.map_err(|e| convert(e, entity))
    }
}

fn convert(error: sqlx::Error, entity: &'static str) -> cairn_core::Error {
    use sqlx::error::ErrorKind;
    let internal = |detail: String| cairn_core::Error::Internal { dependency: Dependency::Database, detail };
    match error {
        sqlx::Error::RowNotFound => cairn_core::Error::NotFound { entity },
        sqlx::Error::Database(db) if is_connection_loss(db.code().as_deref()) => unavailable(db.to_string()),
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => cairn_core::Error::Conflict { entity },
            ErrorKind::ForeignKeyViolation => cairn_core::Error::NotFound { entity: "referenced entity" },
            _ => internal(db.to_string()),
        },
        other if is_loss(&other) => unavailable(other.to_string()),
        other => internal(other.to_string()),
    }
}

/// Whether an error means the connection (or the server) is gone, rather
/// than that the query was refused.
pub(crate) fn is_loss(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => is_connection_loss(db.code().as_deref()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

/// PostgreSQL codes of class 08 (connection exception) and 57P0x (the server
/// is shutting down or restarting) mean the server went away, not that the
/// query was wrong.
fn is_connection_loss(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || c.starts_with("57P0"))
}

pub(crate) fn unavailable(reason: String) -> cairn_core::Error {
    LAST_LOSS.mark();
    cairn_core::Error::Unavailable { dependency: Dependency::Database, reason }
}

/// When this process last lost the database: connections that sat idle in a
/// pool since then may be dead (the server or the network dropped them) and
/// are tested before their next use.
pub(crate) static LAST_LOSS: Moment = Moment::new();

/// An instant stored in an atomic (milliseconds since the first use).
#[derive(Debug)]
pub(crate) struct Moment {
    since_start_ms: std::sync::atomic::AtomicU64,
}

static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

impl Moment {
    const fn new() -> Moment {
        Moment { since_start_ms: std::sync::atomic::AtomicU64::new(0) }
    }

    fn now_ms() -> u64 {
        START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 1
    }

    pub(crate) fn mark(&self) {
        self.since_start_ms.store(Self::now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the moment falls within the last `window` (never marked: no).
    pub(crate) fn within(&self, window: std::time::Duration) -> bool {
        let at = self.since_start_ms.load(std::sync::atomic::Ordering::Relaxed);
        at != 0 && Self::now_ms().saturating_sub(at) <= window.as_millis() as u64
    }
}
