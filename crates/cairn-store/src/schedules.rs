//! Scheduled runs, the same SQL on both backends.

use async_trait::async_trait;
use cairn_core::schedule::{MissedTicks, NewSchedule, Schedule, ScheduleUpdate};
use cairn_core::store::ScheduleRepo;
use cairn_core::{ProjectId, RunId, ScheduleId, ThreadId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DbResult;
use crate::repo::{PostgresStore, SqliteStore};
use crate::rows::{now, parse};

/// Schedule times are whole seconds (cron ticks are), and so is the time
/// they are compared with: SQLite compares the stored text, in which a
/// time without a fraction sorts after the same second with one.
fn whole(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

const COLUMNS: &str = "id, project_id, name, cron, timezone, message, thread_id, run_as, missed, paused, next_run_at, \
                       last_run_at, last_run_id, last_error, created_by, created_at, pending_tick, pending_since";

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: Uuid,
    project_id: Uuid,
    name: String,
    cron: String,
    timezone: String,
    message: String,
    thread_id: Option<Uuid>,
    run_as: Uuid,
    missed: String,
    paused: bool,
    next_run_at: OffsetDateTime,
    last_run_at: Option<OffsetDateTime>,
    last_run_id: Option<Uuid>,
    last_error: Option<String>,
    created_by: Uuid,
    created_at: OffsetDateTime,
    pending_tick: Option<OffsetDateTime>,
    pending_since: Option<OffsetDateTime>,
}

impl ScheduleRow {
    fn into_domain(self) -> cairn_core::Result<Schedule> {
        Ok(Schedule {
            id: ScheduleId(self.id),
            project_id: ProjectId(self.project_id),
            name: self.name,
            cron: self.cron,
            timezone: self.timezone,
            message: self.message,
            thread_id: self.thread_id.map(ThreadId),
            run_as: UserId(self.run_as),
            missed: parse::<MissedTicks>(&self.missed)?,
            paused: self.paused,
            next_run_at: self.next_run_at,
            last_run_at: self.last_run_at,
            last_run_id: self.last_run_id.map(RunId),
            last_error: self.last_error,
            pending_tick: self.pending_tick,
            pending_since: self.pending_since,
            created_by: UserId(self.created_by),
            created_at: self.created_at,
        })
    }
}

macro_rules! schedule_repo {
    ($store:ty) => {
        #[async_trait]
        impl ScheduleRepo for $store {
            async fn create_schedule(&self, new: NewSchedule) -> cairn_core::Result<Schedule> {
                let sql = format!(
                    "INSERT INTO schedules ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, FALSE, $10, NULL, \
                     NULL, NULL, $11, $12, NULL, NULL) RETURNING {COLUMNS}"
                );
                let row: ScheduleRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(ScheduleId::new().0)
                    .bind(new.project_id.0)
                    .bind(new.name)
                    .bind(new.cron)
                    .bind(new.timezone)
                    .bind(new.message)
                    .bind(new.thread_id.map(|t| t.0))
                    .bind(new.run_as.0)
                    .bind(new.missed.as_str())
                    .bind(whole(new.next_run_at))
                    .bind(new.created_by.0)
                    .bind(now())
                    .fetch_one(self.pool())
                    .await
                    .db_entity("schedule")?;
                row.into_domain()
            }

            async fn schedule(&self, id: ScheduleId) -> cairn_core::Result<Schedule> {
                let sql = format!("SELECT {COLUMNS} FROM schedules WHERE id = $1");
                let row: ScheduleRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_one(self.pool())
                    .await
                    .db_entity("schedule")?;
                row.into_domain()
            }

            async fn schedules(&self, project: ProjectId) -> cairn_core::Result<Vec<Schedule>> {
                let sql = format!("SELECT {COLUMNS} FROM schedules WHERE project_id = $1 ORDER BY created_at, id");
                let rows: Vec<ScheduleRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project.0).fetch_all(self.pool()).await.db()?;
                rows.into_iter().map(ScheduleRow::into_domain).collect()
            }

            async fn update_schedule(&self, id: ScheduleId, update: ScheduleUpdate) -> cairn_core::Result<Schedule> {
                let current = self.schedule(id).await?;
                let sql = format!(
                    "UPDATE schedules SET name = $2, cron = $3, timezone = $4, message = $5, missed = $6, paused = $7, \
                     next_run_at = $8 WHERE id = $1 RETURNING {COLUMNS}"
                );
                let row: ScheduleRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(update.name.unwrap_or(current.name))
                    .bind(update.cron.unwrap_or(current.cron))
                    .bind(update.timezone.unwrap_or(current.timezone))
                    .bind(update.message.unwrap_or(current.message))
                    .bind(update.missed.unwrap_or(current.missed).as_str())
                    .bind(update.paused.unwrap_or(current.paused))
                    .bind(whole(update.next_run_at.unwrap_or(current.next_run_at)))
                    .fetch_one(self.pool())
                    .await
                    .db_entity("schedule")?;
                row.into_domain()
            }

            async fn delete_schedule(&self, id: ScheduleId) -> cairn_core::Result<()> {
                let deleted =
                    sqlx::query("DELETE FROM schedules WHERE id = $1").bind(id.0).execute(self.pool()).await.db()?;
                match deleted.rows_affected() {
                    0 => Err(cairn_core::Error::NotFound { entity: "schedule" }),
                    _ => Ok(()),
                }
            }

            async fn due_schedules(&self, at: OffsetDateTime, limit: i64) -> cairn_core::Result<Vec<Schedule>> {
                let sql = format!(
                    "SELECT {COLUMNS} FROM schedules WHERE NOT paused AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2"
                );
                let rows: Vec<ScheduleRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(whole(at))
                    .bind(limit.max(0))
                    .fetch_all(self.pool())
                    .await
                    .db()?;
                rows.into_iter().map(ScheduleRow::into_domain).collect()
            }

            async fn take_tick(
                &self,
                id: ScheduleId,
                due: OffsetDateTime,
                next: OffsetDateTime,
            ) -> cairn_core::Result<bool> {
                let taken = sqlx::query(
                    "UPDATE schedules SET next_run_at = $3, last_run_at = $4, pending_tick = $2, pending_since = $5 \
                     WHERE id = $1 AND next_run_at = $2 AND NOT paused",
                )
                .bind(id.0)
                .bind(due)
                .bind(whole(next))
                .bind(now())
                .bind(whole(now()))
                .execute(self.pool())
                .await
                .db()?;
                Ok(taken.rows_affected() == 1)
            }

            async fn record_tick(
                &self,
                id: ScheduleId,
                run: Option<RunId>,
                error: Option<String>,
            ) -> cairn_core::Result<()> {
                sqlx::query(
                    "UPDATE schedules SET last_run_id = $2, last_error = $3, pending_tick = NULL, pending_since = NULL \
                     WHERE id = $1",
                )
                    .bind(id.0)
                    .bind(run.map(|r| r.0))
                    .bind(error)
                    .execute(self.pool())
                    .await
                    .db()?;
                Ok(())
            }

            async fn stale_ticks(&self, before: OffsetDateTime, limit: i64) -> cairn_core::Result<Vec<Schedule>> {
                let before = whole(before);
                let sql = format!(
                    "SELECT {COLUMNS} FROM schedules WHERE pending_tick IS NOT NULL AND pending_since < $1 \
                     ORDER BY pending_since LIMIT $2"
                );
                let rows: Vec<ScheduleRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(before)
                    .bind(limit.max(0))
                    .fetch_all(self.pool())
                    .await
                    .db()?;
                rows.into_iter().map(ScheduleRow::into_domain).collect()
            }

            async fn retake_tick(&self, id: ScheduleId, since: OffsetDateTime) -> cairn_core::Result<bool> {
                let taken = sqlx::query(
                    "UPDATE schedules SET pending_since = $3 WHERE id = $1 AND pending_since = $2 \
                     AND pending_tick IS NOT NULL",
                )
                // Whole seconds, and later than before: each take-over
                // changes it, so of two that read the same value one wins.
                .bind(id.0)
                .bind(since)
                .bind(whole(now()).max(since + time::Duration::SECOND))
                .execute(self.pool())
                .await
                .db()?;
                Ok(taken.rows_affected() == 1)
            }
        }
    };
}

schedule_repo!(SqliteStore);
schedule_repo!(PostgresStore);
