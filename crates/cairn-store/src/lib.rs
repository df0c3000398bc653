//! Cairn's store: the repositories of `cairn_core::store` on SQLite (the
//! all-in-one default) and PostgreSQL, their migrations, and the embedded
//! durable work queue.
//!
//! Architecture invariant: both backends run the same repository code (one
//! macro body instantiated twice) against equivalent schemas, so a behaviour
//! the contract tests prove on one holds on the other. Nothing above this
//! crate sees SQL or sqlx.

mod connections;
mod error;
mod mcp_servers;
mod placements;
mod queue;
mod repo;
mod rows;
mod schedules;
mod shares;
mod usage;
mod vectors;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::bus::{QueueOptions, WorkQueue};
use cairn_core::store::Store;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use error::{Error, Result};
pub use queue::{PostgresQueue, SqliteQueue};
pub use repo::{PostgresStore, SqliteStore};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Makes sqlite-vec (its `vec0` tables and `vec_*` functions)
/// part of every SQLite connection opened from now on, once per process.
#[allow(unsafe_code)]
fn register_sqlite_vec() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_vec_init` is sqlite-vec's extension entry point,
        // with the signature `sqlite3_auto_extension` expects (it is
        // declared without arguments on the Rust side, hence the cast);
        // registering it is safe before or while connections are open.
        unsafe {
            let init: unsafe extern "C" fn(
                *mut libsqlite3_sys::sqlite3,
                *mut *mut std::os::raw::c_char,
                *const libsqlite3_sys::sqlite3_api_routines,
            ) -> std::os::raw::c_int = std::mem::transmute(sqlite_vec::sqlite3_vec_init as *const ());
            libsqlite3_sys::sqlite3_auto_extension(Some(init));
        }
    });
}

/// A PostgreSQL connection idle this long is pinged before it is used again.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// How to open the database.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub max_connections: u32,
    /// How long a caller waits for a connection (and a new connection for its
    /// server) before the call fails as unavailable.
    pub acquire_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

/// An open database, either backend.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Database {
    /// Opens a `sqlite:` or `postgres://` URL and checks that it answers. A
    /// SQLite file (and its folder) is created if missing.
    pub async fn open(url: &str, options: &OpenOptions) -> Result<Database> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url).map_err(|cause| Error::Url { cause })?;
            // One direct attempt first: the pool would only report that it
            // timed out, not why (refused, unknown host, bad password).
            let probe = tokio::time::timeout(options.acquire_timeout, PgConnection::connect_with(&connect)).await;
            let connect_error = |cause: String| Error::Connect { backend: "PostgreSQL", cause };
            match probe {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                }
                Ok(Err(e)) => return Err(connect_error(e.to_string())),
                Err(_) => {
                    let waited = options.acquire_timeout.as_secs();
                    return Err(connect_error(format!("no answer within {waited} s")));
                }
            }
            // A connection is tested before use only when it sat idle for a
            // while (the server may have dropped it) or through a loss of the
            // database (it was likely cut): testing every one, the pool's
            // default, costs each query a second round trip.
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= IDLE_BEFORE_PING || error::LAST_LOSS.within(meta.idle_for) {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .connect_lazy_with(connect);
            return Ok(Database::Postgres(pool));
        }
        register_sqlite_vec();
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|cause| Error::Url { cause })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(parent) = connect.get_filename().parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir(parent)?;
        }
        // A SQLite connection is a file in this process: nothing to test
        // before use (the pool's default test costs a round trip through the
        // connection's thread on every query).
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .map_err(|e| Error::Connect { backend: "SQLite", cause: e.to_string() })?;
        Ok(Database::Sqlite(pool))
    }

    /// Applies the migrations not yet applied; each runs in its own transaction.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Database::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Database::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// The repositories over this database.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Database::Sqlite(pool) => Arc::new(SqliteStore::new(pool.clone())),
            Database::Postgres(pool) => Arc::new(PostgresStore::new(pool.clone())),
        }
    }

    /// The durable work queue kept in this database.
    pub fn queue(&self, options: QueueOptions) -> Arc<dyn WorkQueue> {
        match self {
            Database::Sqlite(pool) => Arc::new(SqliteQueue::new(pool.clone(), options)),
            Database::Postgres(pool) => Arc::new(PostgresQueue::new(pool.clone(), options)),
        }
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|cause| Error::DataDir { path: path.to_owned(), cause })
}
