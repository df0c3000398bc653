//! Sandbox hosts and the placement of sandboxes on them, the same SQL on
//! both backends.

use async_trait::async_trait;
use cairn_core::sandbox::{HostReport, Placement, SandboxHost};
use cairn_core::store::PlacementRepo;
use cairn_core::{SandboxId, ThreadId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DbResult;
use crate::repo::{PostgresStore, SqliteStore};
use crate::rows::now;

#[derive(sqlx::FromRow)]
struct HostRow {
    url: String,
    capacity: i64,
    running: i64,
    draining: bool,
    heartbeat_at: OffsetDateTime,
    placed: i64,
}

impl From<HostRow> for SandboxHost {
    fn from(r: HostRow) -> Self {
        let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
        SandboxHost {
            url: r.url,
            capacity: count(r.capacity),
            running: count(r.running),
            draining: r.draining,
            heartbeat_at: r.heartbeat_at,
            placed: count(r.placed),
        }
    }
}

#[derive(sqlx::FromRow)]
struct PlacementRow {
    sandbox_id: Uuid,
    host_url: String,
    owner_id: Uuid,
    thread_id: Option<Uuid>,
    created_at: OffsetDateTime,
    running: bool,
    busy: bool,
    active_at: OffsetDateTime,
}

impl From<PlacementRow> for Placement {
    fn from(r: PlacementRow) -> Self {
        Placement {
            sandbox: SandboxId(r.sandbox_id),
            host: r.host_url,
            owner: UserId(r.owner_id),
            thread: r.thread_id.map(ThreadId),
            created_at: r.created_at,
            running: r.running,
            busy: r.busy,
            active_at: r.active_at,
        }
    }
}

const PLACEMENT_COLUMNS: &str = "sandbox_id, host_url, owner_id, thread_id, created_at, running, busy, COALESCE(active_at, created_at) AS active_at";

/// A placement younger than this is kept though its host did not report
/// it: the host's list may have been taken before it was placed.
const PLACEMENT_GRACE: time::Duration = time::Duration::minutes(1);
/// A sandbox a host holds without a placement is its to delete once it is
/// this old (younger, its placement may still be on the way).
const ORPHAN_AGE: time::Duration = time::Duration::minutes(10);

macro_rules! placement_repo {
    ($store:ty) => {
        #[async_trait]
        impl PlacementRepo for $store {
            async fn heartbeat_sandbox_host(&self, host: HostReport) -> cairn_core::Result<Vec<SandboxId>> {
                let url = host.url.clone();
                sqlx::query(
                    "INSERT INTO sandbox_hosts (url, capacity, running, draining, heartbeat_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (url) DO UPDATE SET capacity = excluded.capacity, \
                     running = excluded.running, draining = excluded.draining, heartbeat_at = excluded.heartbeat_at",
                )
                .bind(host.url)
                .bind(i64::from(host.capacity))
                .bind(i64::from(host.running))
                .bind(host.draining)
                .bind(now())
                .execute(self.pool())
                .await
                .db()?;
                let Some(hosted) = host.sandboxes else { return Ok(Vec::new()) };
                // The sandboxes placed on this host, with the state last known.
                let placed: Vec<(Uuid, OffsetDateTime, bool, bool, OffsetDateTime)> = sqlx::query_as(
                    "SELECT sandbox_id, created_at, running, busy, COALESCE(active_at, created_at) \
                     FROM sandbox_placements WHERE host_url = $1",
                )
                .bind(&url)
                .fetch_all(self.pool())
                .await
                .db()?;
                let reported: std::collections::HashSet<Uuid> = hosted.iter().map(|s| s.id.0).collect();
                let at = now();
                for (sandbox, placed_at, ..) in &placed {
                    if !reported.contains(sandbox) && at - *placed_at > PLACEMENT_GRACE {
                        sqlx::query(
                            "DELETE FROM sandbox_placements WHERE sandbox_id = $1 AND host_url = $2 AND created_at < $3",
                        )
                        .bind(sandbox)
                        .bind(&url)
                        .bind(at - PLACEMENT_GRACE)
                        .execute(self.pool())
                        .await
                        .db()?;
                    }
                }
                let here: std::collections::HashMap<Uuid, (bool, bool, OffsetDateTime)> =
                    placed.iter().map(|&(id, _, running, busy, active_at)| (id, (running, busy, active_at))).collect();
                let mut not_its_own = Vec::new();
                for sandbox in hosted {
                    if let Some(&(running, busy, active_at)) = here.get(&sandbox.id.0) {
                        // Written only when it changed (the database keeps
                        // microseconds, the host nanoseconds).
                        let moved = (sandbox.last_active_at - active_at).abs() >= time::Duration::milliseconds(1);
                        if (running, busy) == (sandbox.running, sandbox.busy) && !moved {
                            continue;
                        }
                        sqlx::query(
                            "UPDATE sandbox_placements SET running = $3, busy = $4, active_at = $5 \
                             WHERE sandbox_id = $1 AND host_url = $2",
                        )
                        .bind(sandbox.id.0)
                        .bind(&url)
                        .bind(sandbox.running)
                        .bind(sandbox.busy)
                        .bind(sandbox.last_active_at)
                        .execute(self.pool())
                        .await
                        .db()?;
                        continue;
                    }
                    let elsewhere: Option<(String,)> =
                        sqlx::query_as("SELECT host_url FROM sandbox_placements WHERE sandbox_id = $1")
                            .bind(sandbox.id.0)
                            .fetch_optional(self.pool())
                            .await
                            .db()?;
                    if elsewhere.is_some() || at - sandbox.created_at > ORPHAN_AGE {
                        not_its_own.push(sandbox.id);
                    }
                }
                Ok(not_its_own)
            }

            async fn sandbox_hosts(&self) -> cairn_core::Result<Vec<SandboxHost>> {
                let rows: Vec<HostRow> = sqlx::query_as(
                    "SELECT h.url, h.capacity, h.running, h.draining, h.heartbeat_at, \
                     (SELECT COUNT(*) FROM sandbox_placements p WHERE p.host_url = h.url) AS placed \
                     FROM sandbox_hosts h ORDER BY h.url",
                )
                .fetch_all(self.pool())
                .await
                .db()?;
                Ok(rows.into_iter().map(SandboxHost::from).collect())
            }

            async fn forget_sandbox_host(&self, url: &str) -> cairn_core::Result<()> {
                sqlx::query("DELETE FROM sandbox_hosts WHERE url = $1").bind(url).execute(self.pool()).await.db()?;
                Ok(())
            }

            async fn place_sandbox(&self, placement: Placement) -> cairn_core::Result<()> {
                sqlx::query(
                    "INSERT INTO sandbox_placements \
                     (sandbox_id, host_url, owner_id, thread_id, created_at, running, busy, active_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(placement.sandbox.0)
                .bind(placement.host)
                .bind(placement.owner.0)
                .bind(placement.thread.map(|t| t.0))
                .bind(placement.created_at)
                .bind(placement.running)
                .bind(placement.busy)
                .bind(placement.active_at)
                .execute(self.pool())
                .await
                .db_entity("sandbox placement")?;
                Ok(())
            }

            async fn placement(&self, sandbox: SandboxId) -> cairn_core::Result<Option<Placement>> {
                let sql = format!("SELECT {PLACEMENT_COLUMNS} FROM sandbox_placements WHERE sandbox_id = $1");
                let row: Option<PlacementRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(sandbox.0)
                    .fetch_optional(self.pool())
                    .await
                    .db()?;
                Ok(row.map(Placement::from))
            }

            async fn placements(&self, owner: Option<UserId>) -> cairn_core::Result<Vec<Placement>> {
                let sql = format!(
                    "SELECT {PLACEMENT_COLUMNS} FROM sandbox_placements \
                     WHERE $1 IS NULL OR owner_id = $1 ORDER BY created_at, sandbox_id"
                );
                let rows: Vec<PlacementRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(owner.map(|o| o.0))
                    .fetch_all(self.pool())
                    .await
                    .db()?;
                Ok(rows.into_iter().map(Placement::from).collect())
            }

            async fn move_sandbox(&self, sandbox: SandboxId, from: &str, to: &str) -> cairn_core::Result<bool> {
                let moved =
                    sqlx::query(
                        "UPDATE sandbox_placements SET host_url = $3, created_at = $4, running = TRUE, busy = FALSE \
                         WHERE sandbox_id = $1 AND host_url = $2",
                    )
                        .bind(sandbox.0)
                        .bind(from)
                        .bind(to)
                        .bind(now())
                        .execute(self.pool())
                        .await
                        .db()?
                        .rows_affected();
                Ok(moved == 1)
            }

            async fn mark_placement(&self, sandbox: SandboxId, running: bool) -> cairn_core::Result<()> {
                sqlx::query("UPDATE sandbox_placements SET running = $2, active_at = $3 WHERE sandbox_id = $1")
                    .bind(sandbox.0)
                    .bind(running)
                    .bind(now())
                    .execute(self.pool())
                    .await
                    .db()?;
                Ok(())
            }

            async fn remove_placement(&self, sandbox: SandboxId) -> cairn_core::Result<()> {
                sqlx::query("DELETE FROM sandbox_placements WHERE sandbox_id = $1")
                    .bind(sandbox.0)
                    .execute(self.pool())
                    .await
                    .db()?;
                Ok(())
            }
        }
    };
}

placement_repo!(SqliteStore);
placement_repo!(PostgresStore);
