//! `LifecycleRepo`: deleting threads, projects and accounts, and what
//! members spent (deleted threads' spending carried, so budgets count it).

use std::collections::HashMap;

use cairn_core::lifecycle::{Deletion, DeletionKind, DeletionStatus};
use cairn_core::{DeletionId, ProjectId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::parse;

pub(super) const DELETION_COLUMNS: &str = "id, kind, target, project_id, requested_by, status, steps_done, \
                                           steps_total, attempts, last_error, created_at, finished_at";

#[derive(sqlx::FromRow)]
pub(super) struct DeletionRow {
    id: Uuid,
    kind: String,
    target: Uuid,
    project_id: Uuid,
    requested_by: Uuid,
    status: String,
    steps_done: i64,
    steps_total: i64,
    attempts: i64,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    finished_at: Option<OffsetDateTime>,
}

impl DeletionRow {
    pub(super) fn into_domain(self) -> cairn_core::Result<Deletion> {
        Ok(Deletion {
            id: DeletionId(self.id),
            kind: parse::<DeletionKind>(&self.kind)?,
            target: self.target,
            project_id: ProjectId(self.project_id),
            requested_by: UserId(self.requested_by),
            status: parse::<DeletionStatus>(&self.status)?,
            steps_done: self.steps_done,
            steps_total: self.steps_total,
            attempts: self.attempts,
            last_error: self.last_error,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}

use cairn_core::lifecycle::{MemberBudget, month_start};

#[derive(sqlx::FromRow)]
pub(super) struct BudgetRow {
    project_id: Option<Uuid>,
    user_id: Uuid,
    monthly_usd: f64,
    set_by: Uuid,
    updated_at: OffsetDateTime,
}

impl From<BudgetRow> for MemberBudget {
    fn from(r: BudgetRow) -> Self {
        MemberBudget {
            project_id: r.project_id.map(ProjectId),
            user_id: UserId(r.user_id),
            monthly_usd: r.monthly_usd,
            set_by: UserId(r.set_by),
            updated_at: r.updated_at,
        }
    }
}

pub(super) const BUDGET_COLUMNS: &str = "project_id, user_id, monthly_usd, set_by, updated_at";

/// Runs' spending (member, when, dollars) added up by member and month.
pub(super) fn by_member_month(runs: Vec<(Uuid, OffsetDateTime, f64)>) -> HashMap<(Uuid, OffsetDateTime), f64> {
    let mut carried = HashMap::new();
    for (user, at, cost) in runs {
        *carried.entry((user, month_start(at))).or_insert(0.0) += cost;
    }
    carried
}

/// What an erased account's e-mail becomes: unique, and no address anyone
/// can sign up with (`.invalid` is reserved).
pub(super) fn erased_email(user: Uuid) -> String {
    format!("deleted-{}@deleted.invalid", user.simple())
}

/// `LifecycleRepo` for one backend's store: `sql_store!` expands it in
/// `mod.rs`, whose imports and column macros it uses.
macro_rules! lifecycle_repo {
    ($store:ty) => {
        impl $store {
            /// Inside a transaction: adds what the runs chosen by `filter`
            /// (`$1` binds `id`) spent to the carried spending of `project`.
            async fn carry_spending<'c>(
                tx: &mut sqlx::Transaction<'c, <$store as StoreDb>::Db>,
                project: Uuid,
                filter: &'static str,
                id: Uuid,
            ) -> cairn_core::Result<()> {
                let sql = format!("SELECT r.created_by, r.created_at, r.cost_usd FROM runs r {filter} AND r.cost_usd > 0");
                let runs: Vec<(Uuid, OffsetDateTime, f64)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_all(&mut **tx).await.db()?;
                for ((user, month), cost) in lifecycle::by_member_month(runs) {
                    sqlx::query(
                        "INSERT INTO spend_carried (project_id, user_id, month_start, cost_usd) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (project_id, user_id, month_start) \
                         DO UPDATE SET cost_usd = spend_carried.cost_usd + excluded.cost_usd",
                    )
                    .bind(project)
                    .bind(user)
                    .bind(month)
                    .bind(cost)
                    .execute(&mut **tx)
                    .await
                    .db()?;
                }
                Ok(())
            }

            /// Inside a transaction: erases an account (see
            /// `LifecycleRepo::delete_account`); `None` if there is none to erase.
            async fn erase_account<'c>(
                tx: &mut sqlx::Transaction<'c, <$store as StoreDb>::Db>,
                user: Uuid,
            ) -> cairn_core::Result<Option<User>> {
                let sql = concat!(
                    "UPDATE users SET email = $2, display_name = 'Deleted user', password_hash = '', is_admin = FALSE, \
                     disabled = TRUE, token_version = token_version + 1, deleted_at = $3 \
                     WHERE id = $1 AND deleted_at IS NULL RETURNING ",
                    user_columns!()
                );
                let row: Option<UserRow> = sqlx::query_as(sql)
                    .bind(user)
                    .bind(lifecycle::erased_email(user))
                    .bind(now())
                    .fetch_optional(&mut **tx)
                    .await
                    .db()?;
                if row.is_none() {
                    return Ok(None);
                }
                for sql in [
                    "DELETE FROM memberships WHERE user_id = $1",
                    "DELETE FROM api_keys WHERE owner_id = $1",
                    "DELETE FROM refresh_tokens WHERE user_id = $1",
                    "DELETE FROM password_resets WHERE user_id = $1",
                ] {
                    sqlx::query(sql).bind(user).execute(&mut **tx).await.db()?;
                }
                Ok(row.map(User::from))
            }
        }

        #[async_trait]
        impl LifecycleRepo for $store {
            async fn request_deletion(
                &self,
                kind: DeletionKind,
                target: Uuid,
                requested_by: UserId,
            ) -> cairn_core::Result<Deletion> {
                let at = now();
                let mut tx = self.pool.begin().await.db()?;
                let hide = match kind {
                    DeletionKind::Thread => {
                        "UPDATE threads SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING project_id"
                    }
                    DeletionKind::Project => {
                        "UPDATE projects SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING id"
                    }
                };
                let project: Option<Uuid> =
                    sqlx::query_scalar(hide).bind(target).bind(at).fetch_optional(&mut *tx).await.db()?;
                let Some(project) = project else {
                    return Err(cairn_core::Error::NotFound { entity: kind.as_str() });
                };
                let sql = format!(
                    "INSERT INTO deletions ({}, due_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, 0, 0, NULL, $6, NULL, $6) \
                     RETURNING {}",
                    lifecycle::DELETION_COLUMNS,
                    lifecycle::DELETION_COLUMNS
                );
                let row: lifecycle::DeletionRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(DeletionId::new().0)
                    .bind(kind.as_str())
                    .bind(target)
                    .bind(project)
                    .bind(requested_by.0)
                    .bind(at)
                    .fetch_one(&mut *tx)
                    .await
                    .db_entity("deletion")?;
                tx.commit().await.db()?;
                row.into_domain()
            }

            async fn deletion(&self, id: DeletionId) -> cairn_core::Result<Deletion> {
                let sql = format!("SELECT {} FROM deletions WHERE id = $1", lifecycle::DELETION_COLUMNS);
                let row: lifecycle::DeletionRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("deletion")?;
                row.into_domain()
            }

            async fn claim_deletion(&self, lease: std::time::Duration) -> cairn_core::Result<Option<Deletion>> {
                // Re-checked under the row's lock: of two workers that picked
                // the same job, the second finds it leased and updates nothing.
                let open = "status <> 'done' AND due_at <= $1 AND (leased_until IS NULL OR leased_until < $1)";
                let sql = format!(
                    "UPDATE deletions SET status = 'running', leased_until = $2, attempts = attempts + 1 \
                     WHERE id = (SELECT id FROM deletions WHERE {open} ORDER BY due_at, id LIMIT 1) AND {open} \
                     RETURNING {}",
                    lifecycle::DELETION_COLUMNS
                );
                let at = now();
                let row: Option<lifecycle::DeletionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(at)
                    .bind(at + lease)
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                row.map(lifecycle::DeletionRow::into_domain).transpose()
            }

            async fn deletion_progress(
                &self,
                id: DeletionId,
                done: i64,
                total: i64,
                lease: std::time::Duration,
            ) -> cairn_core::Result<()> {
                sqlx::query("UPDATE deletions SET steps_done = $2, steps_total = $3, leased_until = $4 WHERE id = $1")
                    .bind(id.0)
                    .bind(done)
                    .bind(total)
                    .bind(now() + lease)
                    .execute(&self.pool)
                    .await
                    .db()?;
                Ok(())
            }

            async fn deletion_failed(
                &self,
                id: DeletionId,
                error: String,
                retry_in: std::time::Duration,
            ) -> cairn_core::Result<()> {
                sqlx::query("UPDATE deletions SET last_error = $2, leased_until = NULL, due_at = $3 WHERE id = $1")
                    .bind(id.0)
                    .bind(error)
                    .bind(now() + retry_in)
                    .execute(&self.pool)
                    .await
                    .db()?;
                Ok(())
            }

            async fn finish_deletion(&self, id: DeletionId) -> cairn_core::Result<Deletion> {
                let sql = format!(
                    "UPDATE deletions SET status = 'done', steps_done = steps_total, leased_until = NULL, \
                     finished_at = $2 WHERE id = $1 RETURNING {}",
                    lifecycle::DELETION_COLUMNS
                );
                let row: lifecycle::DeletionRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(now())
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("deletion")?;
                row.into_domain()
            }

            async fn project_thread_ids(&self, project: ProjectId) -> cairn_core::Result<Vec<ThreadId>> {
                let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM threads WHERE project_id = $1 ORDER BY id")
                    .bind(project.0)
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                Ok(ids.into_iter().map(ThreadId).collect())
            }

            async fn purge_thread(&self, thread: ThreadId) -> cairn_core::Result<()> {
                let project: Option<Uuid> = sqlx::query_scalar("SELECT project_id FROM threads WHERE id = $1")
                    .bind(thread.0)
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                let Some(project) = project else { return Ok(()) };
                // What its runs kept in memory first: a crash between the two
                // leaves the thread, and the next attempt forgets again.
                self.forget_memory(ProjectId(project), &format!("thread:{thread}")).await?;
                let mut tx = self.begin_write().await?;
                Self::carry_spending(&mut tx, project, "WHERE r.thread_id = $1", thread.0).await?;
                // Messages, events, runs, checkpoints, lanes and schedules go
                // with the row (foreign keys cascade); files keep no run.
                sqlx::query("DELETE FROM threads WHERE id = $1").bind(thread.0).execute(&mut *tx).await.db()?;
                tx.commit().await.db()?;
                Ok(())
            }

            async fn purge_project(&self, project: ProjectId) -> cairn_core::Result<()> {
                let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM projects WHERE id = $1")
                    .bind(project.0)
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                if exists.is_none() {
                    return Ok(());
                }
                self.forget_project_memory(project).await?;
                let mut tx = self.begin_write().await?;
                let filter = "JOIN threads t ON t.id = r.thread_id WHERE t.project_id = $1";
                Self::carry_spending(&mut tx, project.0, filter, project.0).await?;
                let accounts: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM service_accounts WHERE project_id = $1")
                    .bind(project.0)
                    .fetch_all(&mut *tx)
                    .await
                    .db()?;
                for account in accounts {
                    Self::erase_account(&mut tx, account).await?;
                }
                // Members, threads (and all under them), files, keys, webhooks
                // and their deliveries, schedules, MCP servers and service
                // accounts' records go with the row.
                sqlx::query("DELETE FROM projects WHERE id = $1").bind(project.0).execute(&mut *tx).await.db()?;
                tx.commit().await.db()?;
                Ok(())
            }

            async fn delete_account(&self, user: UserId) -> cairn_core::Result<User> {
                let mut tx = self.pool.begin().await.db()?;
                let erased = Self::erase_account(&mut tx, user.0).await?;
                let erased = erased.ok_or(cairn_core::Error::NotFound { entity: "user" })?;
                tx.commit().await.db()?;
                Ok(erased)
            }

            async fn spent_by_member(
                &self,
                project: Option<ProjectId>,
                user: UserId,
                since: OffsetDateTime,
            ) -> cairn_core::Result<f64> {
                let spent: Option<f64> = sqlx::query_scalar(
                    "SELECT CAST(COALESCE((SELECT SUM(r.cost_usd) FROM runs r JOIN threads t ON t.id = r.thread_id \
                     WHERE r.created_by = $1 AND ($2 IS NULL OR t.project_id = $2) AND r.created_at >= $3), 0) \
                     + COALESCE((SELECT SUM(cost_usd) FROM spend_carried WHERE user_id = $1 \
                     AND ($2 IS NULL OR project_id = $2) AND month_start >= $4), 0) AS DOUBLE PRECISION)",
                )
                .bind(user.0)
                .bind(project.map(|p| p.0))
                .bind(since)
                .bind(cairn_core::lifecycle::month_start(since))
                .fetch_one(&self.pool)
                .await
                .db()?;
                Ok(spent.unwrap_or(0.0))
            }

            async fn retention_settings(&self) -> cairn_core::Result<Vec<(ProjectId, Option<i32>)>> {
                let rows: Vec<(Uuid, Option<i32>)> =
                    sqlx::query_as("SELECT id, retention_days FROM projects WHERE deleted_at IS NULL ORDER BY id")
                        .fetch_all(&self.pool)
                        .await
                        .db()?;
                Ok(rows.into_iter().map(|(id, days)| (ProjectId(id), days)).collect())
            }

            async fn prune_run_details(
                &self,
                project: ProjectId,
                before: OffsetDateTime,
                limit: i64,
            ) -> cairn_core::Result<cairn_core::lifecycle::Pruned> {
                let mut tx = self.begin_write().await?;
                let runs: Vec<(Uuid, Uuid)> = sqlx::query_as(
                    "UPDATE runs SET details_removed_at = $3 WHERE id IN (SELECT r.id FROM runs r \
                     JOIN threads t ON t.id = r.thread_id WHERE t.project_id = $1 \
                     AND r.status IN ('succeeded', 'failed', 'cancelled') AND r.updated_at < $2 \
                     AND r.details_removed_at IS NULL ORDER BY r.id LIMIT $4) RETURNING id, thread_id",
                )
                .bind(project.0)
                .bind(before)
                .bind(now())
                .bind(limit.max(0))
                .fetch_all(&mut *tx)
                .await
                .db()?;
                // The kinds kept are constants of ours: nothing of a caller's reaches the SQL text.
                let kept: Vec<String> =
                    cairn_core::lifecycle::KEPT_EVENT_KINDS.iter().map(|k| format!("'{k}'")).collect();
                let events_sql = format!("DELETE FROM events WHERE run_id = $1 AND kind NOT IN ({})", kept.join(", "));
                let mut pruned = cairn_core::lifecycle::Pruned { runs: runs.len() as u64, ..Default::default() };
                for (run, thread) in runs {
                    pruned.pruned.push((ThreadId(thread), RunId(run)));
                    pruned.events += sqlx::query(sqlx::AssertSqlSafe(events_sql.as_str()))
                        .bind(run)
                        .execute(&mut *tx)
                        .await
                        .db()?
                        .rows_affected();
                    pruned.checkpoints += sqlx::query("DELETE FROM checkpoints WHERE run_id = $1")
                        .bind(run)
                        .execute(&mut *tx)
                        .await
                        .db()?
                        .rows_affected();
                    sqlx::query("DELETE FROM run_lanes WHERE run_id = $1").bind(run).execute(&mut *tx).await.db()?;
                }
                tx.commit().await.db()?;
                Ok(pruned)
            }

            async fn prune_audit(&self, before: OffsetDateTime) -> cairn_core::Result<u64> {
                let done = sqlx::query("DELETE FROM audit_log WHERE created_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .db()?;
                Ok(done.rows_affected())
            }

            async fn set_member_budget(
                &self,
                project: Option<ProjectId>,
                user: UserId,
                monthly_usd: Option<f64>,
                set_by: UserId,
            ) -> cairn_core::Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "DELETE FROM member_budgets WHERE user_id = $1 \
                     AND (project_id = $2 OR ($2 IS NULL AND project_id IS NULL))",
                )
                .bind(user.0)
                .bind(project.map(|p| p.0))
                .execute(&mut *tx)
                .await
                .db()?;
                if let Some(monthly_usd) = monthly_usd {
                    sqlx::query(
                        "INSERT INTO member_budgets (id, project_id, user_id, monthly_usd, set_by, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(uuid::Uuid::now_v7())
                    .bind(project.map(|p| p.0))
                    .bind(user.0)
                    .bind(monthly_usd)
                    .bind(set_by.0)
                    .bind(now())
                    .execute(&mut *tx)
                    .await
                    .db_entity("member budget")?;
                }
                tx.commit().await.db()?;
                Ok(())
            }

            async fn member_budgets(&self, user: UserId) -> cairn_core::Result<Vec<MemberBudget>> {
                let sql = format!("SELECT {} FROM member_budgets WHERE user_id = $1 ORDER BY id", lifecycle::BUDGET_COLUMNS);
                let rows: Vec<lifecycle::BudgetRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user.0).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(MemberBudget::from).collect())
            }

            async fn project_member_budgets(&self, project: ProjectId) -> cairn_core::Result<Vec<MemberBudget>> {
                let sql = format!("SELECT {} FROM member_budgets WHERE project_id = $1 ORDER BY id", lifecycle::BUDGET_COLUMNS);
                let rows: Vec<lifecycle::BudgetRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project.0).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(MemberBudget::from).collect())
            }

            async fn project_spending(
                &self,
                project: ProjectId,
                since: OffsetDateTime,
            ) -> cairn_core::Result<Vec<(UserId, OffsetDateTime, f64)>> {
                let runs: Vec<(Uuid, OffsetDateTime, f64)> = sqlx::query_as(
                    "SELECT r.created_by, r.created_at, r.cost_usd FROM runs r JOIN threads t ON t.id = r.thread_id \
                     WHERE t.project_id = $1 AND r.created_at >= $2 AND r.cost_usd > 0",
                )
                .bind(project.0)
                .bind(since)
                .fetch_all(&self.pool)
                .await
                .db()?;
                let carried: Vec<(Uuid, OffsetDateTime, f64)> = sqlx::query_as(
                    "SELECT user_id, month_start, cost_usd FROM spend_carried WHERE project_id = $1 AND month_start >= $2",
                )
                .bind(project.0)
                .bind(cairn_core::lifecycle::month_start(since))
                .fetch_all(&self.pool)
                .await
                .db()?;
                let mut months: Vec<_> = lifecycle::by_member_month(runs.into_iter().chain(carried).collect())
                    .into_iter()
                    .map(|((user, month), cost)| (UserId(user), month, cost))
                    .collect();
                months.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
                Ok(months)
            }
        }
    };
}

pub(super) use lifecycle_repo;
