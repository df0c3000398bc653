//! The repositories. One body of code, instantiated for SQLite and for
//! PostgreSQL by `sql_store!`: the SQL is written in the dialect both accept
//! (`$n` parameters, `RETURNING`, `ON CONFLICT`), and the schemas differ only
//! in column types, which sqlx maps to the same Rust types.
//!
//! Each repository's impl is a macro of its own file (`users.rs`,
//! `credentials.rs`, `files.rs`, `projects.rs`, `threads.rs`, `runs.rs`,
//! `audit.rs`, `lifecycle.rs`), and `sql_store!` expands them all here, once a backend: the
//! names their bodies use are therefore imported here, and the column lists
//! their SQL splices in are the macros below.

mod audit;
mod credentials;
mod files;
mod lifecycle;
mod projects;
mod runs;
mod threads;
mod users;

use async_trait::async_trait;
use cairn_core::lifecycle::{Deletion, DeletionKind, MemberBudget};
use cairn_core::model::{
    ApiKey, AuditEntry, AuditFilter, Checkpoint, Event, Fence, FileRecord, Membership, Message, NewApiKey,
    NewAuditEntry, NewCheckpoint, NewEvent, NewFile, NewMessage, NewProject, NewRefreshToken, NewRun, NewThread,
    NewUser, Project, ProjectUpdate, RefreshOutcome, Role, Run, RunStatus, Thread, ThreadMatch, User,
};
use cairn_core::store::{
    AuditRepo, CredentialRepo, FileRepo, LifecycleRepo, MemoryRepo, ProjectRepo, RunRepo, Store, ThreadRepo, UserRepo,
};
use cairn_core::{ApiKeyId, AuditId, DeletionId, FileId, MessageId, ProjectId, RunId, SessionId, ThreadId, UserId};
use sqlx::types::Json;
use sqlx::{PgPool, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DbResult;
use crate::rows::{
    ApiKeyRow, AuditRow, CheckpointRow, EventRow, FileRow, MembershipRow, MessageRow, ProjectRoleRow, ProjectRow,
    RunRow, ThreadMatchRow, ThreadRow, UserRow, now, parse,
};

macro_rules! user_columns {
    () => {
        "id, email, display_name, password_hash, is_admin, disabled, token_version, created_at"
    };
}
macro_rules! project_columns {
    () => {
        "p.id, p.name, p.created_by, p.created_at, p.model, p.budget_usd, p.retention_days, p.packages, p.requirements"
    };
}
macro_rules! thread_columns {
    () => {
        "id, project_id, title, created_by, created_at, last_event_seq, model"
    };
}
/// When a thread (the table or its alias) was last active: its newest
/// message, or its creation.
macro_rules! last_active {
    ($t:literal) => {
        concat!(
            "COALESCE((SELECT MAX(lm.created_at) FROM messages lm WHERE lm.thread_id = ",
            $t,
            ".id), ",
            $t,
            ".created_at)"
        )
    };
}

macro_rules! run_columns {
    () => {
        "id, thread_id, status, created_by, error, created_at, updated_at, trace_parent, details_removed_at"
    };
}
macro_rules! api_key_columns {
    () => {
        "id, owner_id, project_id, role, name, secret_hash, created_at, expires_at, revoked_at"
    };
}
macro_rules! file_columns {
    () => {
        "id, project_id, path, version, size, content_type, sha256, object_key, created_by, run_id, step, created_at"
    };
}
macro_rules! event_columns {
    () => {
        "thread_id, seq, run_id, kind, payload, schema_version, created_at"
    };
}

/// Inside a transaction: stores one event at `seq` of the thread's log
/// (numbers reserved by the caller); the stored event.
macro_rules! insert_event {
    ($tx:expr, $thread:expr, $seq:expr, $event:expr, $at:expr) => {{
        let event: NewEvent = $event;
        let sql = concat!(
            "INSERT INTO events (",
            event_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            event_columns!()
        );
        let row: EventRow = sqlx::query_as(sql)
            .bind($thread.0)
            .bind($seq)
            .bind(event.run_id.map(|r| r.0))
            .bind(event.kind)
            .bind(Json(event.payload))
            .bind(event.schema_version)
            .bind($at)
            .fetch_one(&mut *$tx)
            .await
            .db_entity("event")?;
        Event::from(row)
    }};
}

/// Inside a transaction: appends one event to the end of the thread's log
/// (taking the thread's row lock to number it, as `append_events` does).
macro_rules! append_one {
    ($tx:expr, $thread:expr, $event:expr) => {{
        let seq: i64 = sqlx::query_scalar(
            "UPDATE threads SET last_event_seq = last_event_seq + 1 WHERE id = $1 RETURNING last_event_seq",
        )
        .bind($thread.0)
        .fetch_one(&mut *$tx)
        .await
        .db_entity("thread")?;
        insert_event!($tx, $thread, seq, $event, now())
    }};
}

/// Inside a write's transaction: queues a delivery of the notice to each
/// enabled webhook of the project (a `ProjectId`, or `thread: ThreadId` for
/// the thread's project) that subscribes to its kind.
macro_rules! queue_notice {
    ($tx:expr, thread: $thread:expr, $notice:expr) => {{
        let project: uuid::Uuid = sqlx::query_scalar("SELECT project_id FROM threads WHERE id = $1")
            .bind($thread.0)
            .fetch_one(&mut *$tx)
            .await
            .db_entity("thread")?;
        queue_notice!($tx, cairn_core::ProjectId(project), $notice)
    }};
    ($tx:expr, $project:expr, $notice:expr) => {{
        let notice: &cairn_core::hooks::Notice = $notice;
        let hooks: Vec<(uuid::Uuid, sqlx::types::Json<Vec<String>>)> =
            sqlx::query_as("SELECT id, events FROM webhooks WHERE project_id = $1 AND enabled ORDER BY created_at, id")
                .bind($project.0)
                .fetch_all(&mut *$tx)
                .await
                .db()?;
        let (payload, at) = (notice.payload(), now());
        for (webhook, _) in hooks.into_iter().filter(|(_, events)| events.0.iter().any(|e| e == notice.kind)) {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_type, payload, status, attempts, \
                 next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5)",
            )
            .bind(cairn_core::DeliveryId::new().0)
            .bind(webhook)
            .bind(notice.kind)
            .bind(sqlx::types::Json(&payload))
            .bind(at)
            .execute(&mut *$tx)
            .await
            .db_entity("webhook delivery")?;
        }
    }};
}

/// Inside a write's transaction: refuses the write (`LeaseLost`) when the
/// fence's run was claimed since the fence was made, and holds the run's row
/// until the transaction ends, so a claim cannot slip in between the check
/// and the write.
macro_rules! check_fence {
    ($tx:expr, $fence:expr) => {
        if let Some(fence) = $fence {
            let generation: Option<i64> =
                sqlx::query_scalar(Self::FENCE_SQL).bind(fence.run.0).fetch_optional(&mut *$tx).await.db()?;
            match generation {
                None => return Err(cairn_core::Error::NotFound { entity: "run" }),
                Some(generation) if generation != fence.generation => return Err(fenced(fence)),
                Some(_) => {}
            }
        }
    };
}

/// The error a write under a superseded fence gets.
fn fenced(fence: Fence) -> cairn_core::Error {
    cairn_core::Error::LeaseLost { job: format!("run {} (lease generation {})", fence.run, fence.generation) }
}

/// A connection taken out of the pool for the writes every agent step makes
/// (its checkpoint). The pool pings each connection handed back to it — a
/// second round trip after every query (through SQLite's connection thread,
/// or to the PostgreSQL server) — which a connection kept aside does not
/// pay. It is made on first use, detached from the pool (which may open a
/// replacement: a process holds one connection more than
/// `database.max_connections` once it ran a step), and dropped when the
/// connection is lost.
#[derive(Debug)]
pub(crate) struct StepWriter<DB: sqlx::Database>(std::sync::Arc<tokio::sync::Mutex<Option<DB::Connection>>>);

impl<DB: sqlx::Database> Clone for StepWriter<DB> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<DB: sqlx::Database> Default for StepWriter<DB> {
    fn default() -> Self {
        Self(Default::default())
    }
}

/// Executes a query (an expression, evaluated again for a second attempt) on
/// the store's step writer; through the pool when another write holds the
/// writer or the writer's connection was lost (the query is tried once more
/// there: step writes are upserts). When no connection can be had for the
/// writer, that error is the write's.
macro_rules! step_write {
    ($store:expr, $query:expr) => {{
        let mut outcome = None;
        if let Ok(mut slot) = $store.step_writer.0.try_lock() {
            if slot.is_none() {
                // A pool that cannot give a connection now would not give
                // one for the second attempt either: its error is the answer.
                match $store.pool.acquire().await {
                    Ok(conn) => *slot = Some(conn.detach()),
                    Err(error) => outcome = Some(Err(error)),
                }
            }
            if let Some(conn) = slot.as_mut() {
                match $query.execute(&mut *conn).await {
                    Err(error) if crate::error::is_loss(&error) => {
                        crate::error::LAST_LOSS.mark();
                        *slot = None;
                    }
                    done => outcome = Some(done),
                }
            }
        }
        match outcome {
            Some(done) => done,
            None => $query.execute(&$store.pool).await,
        }
    }};
}

macro_rules! sql_store {
    ($(#[$meta:meta])* $name:ident, $pool:ty, $backend:literal, $fence_sql:literal, $row_lock:literal, $begin_write:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
            /// The connection the writes of every agent step go through
            /// (`step_write!`), kept out of the pool.
            step_writer: StepWriter<<$name as StoreDb>::Db>,
        }

        impl $name {
            /// Reads a run's lease generation and holds its row against a
            /// concurrent claim until the transaction ends.
            const FENCE_SQL: &'static str = $fence_sql;
            /// Saves a checkpoint only while the run's lease generation is
            /// `$5`, in one statement (a checkpoint is written every step).
            const FENCED_CHECKPOINT_SQL: &'static str = concat!(
                "WITH held AS (SELECT id FROM runs WHERE id = $1 AND lease_generation = $5",
                $row_lock,
                ") INSERT INTO checkpoints (run_id, step, state, created_at) SELECT $1, $2, $3, $4 FROM held WHERE true \
                 ON CONFLICT (run_id, step) DO UPDATE SET state = excluded.state, created_at = excluded.created_at"
            );

            /// A checkpoint, only while the run waits for a member.
            const WAITING_CHECKPOINT_SQL: &'static str = concat!(
                "WITH held AS (SELECT id FROM runs WHERE id = $1 AND status = 'waiting'",
                $row_lock,
                ") INSERT INTO checkpoints (run_id, step, state, created_at) SELECT $1, $2, $3, $4 FROM held WHERE true \
                 ON CONFLICT (run_id, step) DO UPDATE SET state = excluded.state, created_at = excluded.created_at"
            );

            /// A lane's result, only while the run's lease generation is `$6`.
            const FENCED_LANE_SQL: &'static str = concat!(
                "WITH held AS (SELECT id FROM runs WHERE id = $1 AND lease_generation = $6",
                $row_lock,
                ") INSERT INTO run_lanes (run_id, step, lane, state, created_at) SELECT $1, $2, $3, $4, $5 FROM held \
                 WHERE true ON CONFLICT (run_id, step, lane) DO NOTHING"
            );

            /// A new version of a file saved by a run's worker, only while
            /// the run's lease generation is `$13` (of run `$12`).
            const FENCED_FILE_SQL: &'static str = concat!(
                "WITH held AS (SELECT id FROM runs WHERE id = $12 AND lease_generation = $13",
                $row_lock,
                ") INSERT INTO files (",
                file_columns!(),
                ") SELECT $1, $2, $3, COALESCE(MAX(version), 0) + 1, $4, $5, $6, $7, $8, $9, $10, $11 \
                 FROM files WHERE project_id = $2 AND path = $3 HAVING EXISTS (SELECT 1 FROM held) RETURNING ",
                file_columns!()
            );

            pub fn new(pool: $pool) -> Self {
                Self { pool, step_writer: StepWriter::default() }
            }

            pub(crate) fn pool(&self) -> &$pool {
                &self.pool
            }

            /// A transaction that reads before it writes. On SQLite it takes
            /// the write lock at once: a deferred one that read and then
            /// finds another connection wrote meanwhile fails at its first
            /// write (SQLITE_BUSY_SNAPSHOT) instead of waiting its turn.
            async fn begin_write(&self) -> cairn_core::Result<sqlx::Transaction<'static, <$name as StoreDb>::Db>> {
                self.pool.begin_with($begin_write).await.db()
            }
        }

        #[async_trait]
        impl Store for $name {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> cairn_core::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
                Ok(())
            }
        }

        users::user_repo!($name);
        credentials::credential_repo!($name);
        files::file_repo!($name);
        projects::project_repo!($name);
        threads::thread_repo!($name);
        runs::run_repo!($name);
        audit::audit_repo!($name);
        lifecycle::lifecycle_repo!($name);
    };
}

sql_store!(
    /// The repositories on SQLite: the all-in-one default.
    SqliteStore, SqlitePool, "sqlite",
    // SQLite has no row locks: a no-op write takes the database's write lock.
    "UPDATE runs SET lease_generation = lease_generation WHERE id = $1 RETURNING lease_generation",
    // One statement is atomic under SQLite's write lock.
    "",
    "BEGIN IMMEDIATE"
);
sql_store!(
    /// The repositories on PostgreSQL: the distributed shape.
    PostgresStore, PgPool, "postgres",
    // Held against a concurrent claim; a claim that committed first is seen.
    // Not FOR SHARE: share locks of overlapping writes could keep a claim
    // waiting for ever, while these exclusive ones queue with it in turn.
    "SELECT lease_generation FROM runs WHERE id = $1 FOR NO KEY UPDATE",
    " FOR NO KEY UPDATE",
    "BEGIN"
);

/// The database of each store, to name its transactions.
pub(crate) trait StoreDb {
    type Db: sqlx::Database;
}

impl StoreDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

impl StoreDb for PostgresStore {
    type Db = sqlx::Postgres;
}
