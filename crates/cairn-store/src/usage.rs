//! Usage totals, added up in SQL from the `usage` events of the threads'
//! logs, the same SQL on both backends: `payload ->> 'field'` reads a JSON
//! field on SQLite (3.38 and later) and on PostgreSQL's `jsonb` alike, and
//! the partial index `events_usage` (migration 0010) finds those events
//! without reading the rest of each log.

use async_trait::async_trait;
use cairn_core::model::ModelUsage;
use cairn_core::store::UsageRepo;
use cairn_core::{ProjectId, UserId};
use uuid::Uuid;

use crate::error::DbResult;
use crate::repo::{PostgresStore, SqliteStore};

/// The sums of a group of `usage` events `e`. SQLite's `SUM` of integers is
/// an integer, PostgreSQL's a `numeric`: the casts give both the same
/// types. A field a payload lacks is NULL, which `SUM` skips.
macro_rules! usage_sums {
    () => {
        "COUNT(*) AS model_calls, \
         CAST(COALESCE(SUM(CAST(e.payload ->> 'input_tokens' AS BIGINT)), 0) AS BIGINT) AS input_tokens, \
         CAST(COALESCE(SUM(CAST(e.payload ->> 'output_tokens' AS BIGINT)), 0) AS BIGINT) AS output_tokens, \
         CAST(COALESCE(SUM(CAST(e.payload ->> 'cache_read_tokens' AS BIGINT)), 0) AS BIGINT) AS cache_read_tokens, \
         CAST(COALESCE(SUM(CAST(e.payload ->> 'cache_write_tokens' AS BIGINT)), 0) AS BIGINT) AS cache_write_tokens, \
         CAST(COALESCE(SUM(CAST(e.payload ->> 'cost_usd' AS DOUBLE PRECISION)), 0) AS DOUBLE PRECISION) AS cost_usd, \
         CAST(COALESCE(SUM(CAST(e.payload ->> 'saved_usd' AS DOUBLE PRECISION)), 0) AS DOUBLE PRECISION) AS saved_usd"
    };
}

#[derive(sqlx::FromRow)]
struct UsageRow {
    model_calls: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    cost_usd: f64,
    saved_usd: f64,
}

impl From<UsageRow> for ModelUsage {
    fn from(r: UsageRow) -> Self {
        // Counts are never negative; a corrupt payload must not wrap around.
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        ModelUsage {
            model_calls: count(r.model_calls),
            input_tokens: count(r.input_tokens),
            output_tokens: count(r.output_tokens),
            cache_read_tokens: count(r.cache_read_tokens),
            cache_write_tokens: count(r.cache_write_tokens),
            cost_usd: r.cost_usd,
            saved_usd: r.saved_usd,
        }
    }
}

#[derive(sqlx::FromRow)]
struct UserUsageRow {
    /// As the payload spells it: a UUID's text.
    user_id: String,
    #[sqlx(flatten)]
    usage: UsageRow,
}

#[derive(sqlx::FromRow)]
struct DailyUsageRow {
    day: String,
    user_id: String,
    model: String,
    #[sqlx(flatten)]
    usage: UsageRow,
}

#[derive(sqlx::FromRow)]
struct ProjectUsageRow {
    project_id: Uuid,
    #[sqlx(flatten)]
    usage: UsageRow,
}

/// `usage_repo!(Store, day)`: `day` is the backend's expression of an
/// event's UTC day as `YYYY-MM-DD` (stored times are UTC on both).
macro_rules! usage_repo {
    ($store:ty, $day:literal) => {
        #[async_trait]
        impl UsageRepo for $store {
            async fn usage_by_user(&self, project: ProjectId) -> cairn_core::Result<Vec<(UserId, ModelUsage)>> {
                let sql = concat!(
                    "SELECT e.payload ->> 'user' AS user_id, ",
                    usage_sums!(),
                    " FROM events e JOIN threads t ON t.id = e.thread_id \
                     WHERE t.project_id = $1 AND e.kind = 'usage' \
                     GROUP BY e.payload ->> 'user' ORDER BY user_id"
                );
                let rows: Vec<UserUsageRow> = sqlx::query_as(sql).bind(project.0).fetch_all(self.pool()).await.db()?;
                // A payload whose user is not an id is corrupt; the event
                // stream leaves such an event out, and so do the totals.
                Ok(rows
                    .into_iter()
                    .filter_map(|row| match row.user_id.parse::<Uuid>() {
                        Ok(user) => Some((UserId(user), row.usage.into())),
                        Err(error) => {
                            tracing::warn!(%error, user = %row.user_id, %project, "usage events name no user");
                            None
                        }
                    })
                    .collect())
            }

            async fn usage_by_project(&self, user: UserId) -> cairn_core::Result<Vec<(ProjectId, ModelUsage)>> {
                let sql = concat!(
                    "SELECT t.project_id, ",
                    usage_sums!(),
                    " FROM events e JOIN threads t ON t.id = e.thread_id \
                     JOIN memberships m ON m.project_id = t.project_id AND m.user_id = $1 \
                     WHERE e.kind = 'usage' AND e.payload ->> 'user' = $2 \
                     GROUP BY t.project_id ORDER BY t.project_id"
                );
                let rows: Vec<ProjectUsageRow> =
                    sqlx::query_as(sql).bind(user.0).bind(user.to_string()).fetch_all(self.pool()).await.db()?;
                Ok(rows.into_iter().map(|row| (ProjectId(row.project_id), row.usage.into())).collect())
            }

            async fn usage_by_day(
                &self,
                project: ProjectId,
                since: time::OffsetDateTime,
            ) -> cairn_core::Result<Vec<(String, UserId, String, ModelUsage)>> {
                let sql = concat!(
                    "SELECT ",
                    $day,
                    " AS day, e.payload ->> 'user' AS user_id, COALESCE(e.payload ->> 'model', '') AS model, ",
                    usage_sums!(),
                    " FROM events e JOIN threads t ON t.id = e.thread_id \
                     WHERE t.project_id = $1 AND e.kind = 'usage' AND e.created_at >= $2 \
                     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
                );
                let rows: Vec<DailyUsageRow> =
                    sqlx::query_as(sql).bind(project.0).bind(since).fetch_all(self.pool()).await.db()?;
                Ok(rows
                    .into_iter()
                    .filter_map(|row| {
                        let user = row.user_id.parse::<Uuid>().ok()?;
                        Some((row.day, UserId(user), row.model, row.usage.into()))
                    })
                    .collect())
            }
        }
    };
}

usage_repo!(SqliteStore, "substr(e.created_at, 1, 10)");
usage_repo!(PostgresStore, "to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')");
