//! `ProjectRepo`: projects, their settings, spending and memberships.

/// `ProjectRepo` for one backend's store: `sql_store!` expands it in `mod.rs`,
/// whose imports and column macros it uses.
macro_rules! project_repo {
    ($store:ty) => {
        #[async_trait]
        impl ProjectRepo for $store {
            async fn create_project(&self, new: NewProject) -> cairn_core::Result<Project> {
                let (id, at) = (ProjectId::new(), now());
                let mut tx = self.pool.begin().await.db()?;
                let row: ProjectRow = sqlx::query_as(
                    "INSERT INTO projects (id, name, created_by, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, name, created_by, created_at, model, budget_usd, retention_days, packages, requirements",
                )
                .bind(id.0)
                .bind(new.name)
                .bind(new.owner.0)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .db_entity("project")?;
                sqlx::query("INSERT INTO memberships (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(id.0)
                    .bind(new.owner.0)
                    .bind(Role::Owner.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .db_entity("membership")?;
                tx.commit().await.db()?;
                Ok(row.into())
            }

            async fn project(&self, id: ProjectId) -> cairn_core::Result<Project> {
                let sql = concat!("SELECT ", project_columns!(), " FROM projects p WHERE p.id = $1 AND p.deleted_at IS NULL");
                let row: ProjectRow =
                    sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("project")?;
                Ok(row.into())
            }

            async fn update_project(&self, id: ProjectId, update: ProjectUpdate) -> cairn_core::Result<Project> {
                let current = self.project(id).await?;
                let row: ProjectRow = sqlx::query_as(
                    "UPDATE projects SET name = $2, model = $3, budget_usd = $4, retention_days = $5, packages = $6, \
                     requirements = $7 WHERE id = $1 \
                     RETURNING id, name, created_by, created_at, model, budget_usd, retention_days, packages, requirements",
                )
                .bind(id.0)
                .bind(update.name.unwrap_or(current.name))
                .bind(update.model.unwrap_or(current.model))
                .bind(update.budget_usd.unwrap_or(current.budget_usd))
                .bind(update.retention_days.unwrap_or(current.retention_days))
                .bind(update.packages.unwrap_or(current.packages))
                .bind(update.requirements.unwrap_or(current.requirements))
                .fetch_one(&self.pool)
                .await
                .db_entity("project")?;
                Ok(row.into())
            }

            async fn project_cost(&self, id: ProjectId) -> cairn_core::Result<f64> {
                let spent: Option<f64> = sqlx::query_scalar(
                    "SELECT CAST(COALESCE((SELECT SUM(r.cost_usd) FROM runs r JOIN threads t ON t.id = r.thread_id \
                     WHERE t.project_id = $1), 0) + COALESCE((SELECT SUM(cost_usd) FROM spend_carried \
                     WHERE project_id = $1), 0) AS DOUBLE PRECISION)",
                )
                .bind(id.0)
                .fetch_one(&self.pool)
                .await
                .db()?;
                Ok(spent.unwrap_or(0.0))
            }

            async fn projects_for_user(&self, user: UserId) -> cairn_core::Result<Vec<(Project, Role)>> {
                let sql = concat!(
                    "SELECT ",
                    project_columns!(),
                    ", m.role FROM projects p JOIN memberships m ON m.project_id = p.id \
                     WHERE m.user_id = $1 AND p.deleted_at IS NULL ORDER BY p.id"
                );
                let rows: Vec<ProjectRoleRow> = sqlx::query_as(sql).bind(user.0).fetch_all(&self.pool).await.db()?;
                rows.into_iter().map(ProjectRoleRow::into_domain).collect()
            }

            async fn set_member_noticed(
                &self,
                project: ProjectId,
                user: UserId,
                role: Role,
                notice: Option<cairn_core::hooks::Notice>,
            ) -> cairn_core::Result<Membership> {
                let mut tx = self.pool.begin().await.db()?;
                let row: MembershipRow = sqlx::query_as(
                    "INSERT INTO memberships (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role \
                     RETURNING project_id, user_id, role, created_at",
                )
                .bind(project.0)
                .bind(user.0)
                .bind(role.as_str())
                .bind(now())
                .fetch_one(&mut *tx)
                .await
                .db_entity("membership")?;
                if let Some(notice) = &notice {
                    queue_notice!(tx, project, notice);
                }
                tx.commit().await.db()?;
                row.into_domain()
            }

            async fn remove_member(&self, project: ProjectId, user: UserId) -> cairn_core::Result<()> {
                let done = sqlx::query("DELETE FROM memberships WHERE project_id = $1 AND user_id = $2")
                    .bind(project.0)
                    .bind(user.0)
                    .execute(&self.pool)
                    .await
                    .db()?;
                if done.rows_affected() == 0 {
                    return Err(cairn_core::Error::NotFound { entity: "membership" });
                }
                Ok(())
            }

            async fn member_role(&self, project: ProjectId, user: UserId) -> cairn_core::Result<Option<Role>> {
                let role: Option<String> =
                    sqlx::query_scalar(
                        "SELECT m.role FROM memberships m JOIN projects p ON p.id = m.project_id \
                         WHERE m.project_id = $1 AND m.user_id = $2 AND p.deleted_at IS NULL",
                    )
                        .bind(project.0)
                        .bind(user.0)
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                role.as_deref().map(parse).transpose()
            }

            async fn members(&self, project: ProjectId) -> cairn_core::Result<Vec<Membership>> {
                let rows: Vec<MembershipRow> = sqlx::query_as(
                    "SELECT project_id, user_id, role, created_at FROM memberships \
                     WHERE project_id = $1 ORDER BY created_at, user_id",
                )
                .bind(project.0)
                .fetch_all(&self.pool)
                .await
                .db()?;
                rows.into_iter().map(MembershipRow::into_domain).collect()
            }

            async fn create_service_account(
                &self,
                project: ProjectId,
                name: String,
                role: Role,
                created_by: UserId,
            ) -> cairn_core::Result<User> {
                let (id, at) = (UserId::new(), now());
                let mut tx = self.pool.begin().await.db()?;
                let sql = concat!(
                    "INSERT INTO users (",
                    user_columns!(),
                    ") VALUES ($1, $2, $3, '', FALSE, FALSE, 0, $4) RETURNING ",
                    user_columns!()
                );
                let row: UserRow = sqlx::query_as(sql)
                    .bind(id.0)
                    .bind(format!("service-{}@service.invalid", id.0.simple()))
                    .bind(name)
                    .bind(at)
                    .fetch_one(&mut *tx)
                    .await
                    .db_entity("user")?;
                sqlx::query("INSERT INTO memberships (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(project.0)
                    .bind(id.0)
                    .bind(role.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .db_entity("project")?;
                sqlx::query(
                    "INSERT INTO service_accounts (user_id, project_id, created_by, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id.0)
                .bind(project.0)
                .bind(created_by.0)
                .bind(at)
                .execute(&mut *tx)
                .await
                .db_entity("service account")?;
                tx.commit().await.db()?;
                Ok(row.into())
            }

            async fn service_accounts(&self, project: ProjectId) -> cairn_core::Result<Vec<UserId>> {
                let ids: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT user_id FROM service_accounts WHERE project_id = $1 ORDER BY created_at, user_id",
                )
                .bind(project.0)
                .fetch_all(&self.pool)
                .await
                .db()?;
                Ok(ids.into_iter().map(UserId).collect())
            }
        }
    };
}

pub(super) use project_repo;
