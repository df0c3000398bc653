//! The repositories. One body of code, instantiated for SQLite and for
//! PostgreSQL by `sql_store!`: the SQL is written in the dialect both accept
//! (`$n` parameters, `RETURNING`, `ON CONFLICT`), and the schemas differ only
//! in column types, which sqlx maps to the same Rust types.

use async_trait::async_trait;
use cairn_core::model::{
    ApiKey, AuditEntry, Checkpoint, Event, FileRecord, Membership, Message, NewApiKey, NewAuditEntry, NewCheckpoint,
    NewEvent, NewFile, NewMessage, NewProject, NewRefreshToken, NewRun, NewThread, NewUser, Project, ProjectUpdate,
    RefreshOutcome, Role, Run, RunStatus, Thread, User,
};
use cairn_core::store::{AuditRepo, CredentialRepo, FileRepo, ProjectRepo, RunRepo, Store, ThreadRepo, UserRepo};
use cairn_core::{ApiKeyId, AuditId, FileId, MessageId, ProjectId, RunId, SessionId, ThreadId, UserId};
use sqlx::types::Json;
use sqlx::{PgPool, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DbResult;
use crate::rows::{
    ApiKeyRow, AuditRow, CheckpointRow, EventRow, FileRow, MembershipRow, MessageRow, ProjectRoleRow, ProjectRow,
    RunRow, ThreadRow, UserRow, now, parse,
};

macro_rules! user_columns {
    () => {
        "id, email, display_name, password_hash, is_admin, disabled, token_version, created_at"
    };
}
macro_rules! project_columns {
    () => {
        "p.id, p.name, p.created_by, p.created_at, p.model, p.budget_usd"
    };
}
macro_rules! thread_columns {
    () => {
        "id, project_id, title, created_by, created_at, last_event_seq, model"
    };
}
macro_rules! run_columns {
    () => {
        "id, thread_id, status, created_by, error, created_at, updated_at"
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

macro_rules! sql_store {
    ($(#[$meta:meta])* $name:ident, $pool:ty, $backend:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
        }

        impl $name {
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }

            pub(crate) fn pool(&self) -> &$pool {
                &self.pool
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

        #[async_trait]
        impl UserRepo for $name {
            async fn create_user(&self, new: NewUser) -> cairn_core::Result<User> {
                let sql = concat!("INSERT INTO users (", user_columns!(), ") VALUES ($1, $2, $3, $4, $5, FALSE, 0, $6) RETURNING ", user_columns!());
                let row: UserRow = sqlx::query_as(sql)
                    .bind(UserId::new().0)
                    .bind(new.email.to_lowercase())
                    .bind(new.display_name)
                    .bind(new.password_hash)
                    .bind(new.is_admin)
                    .bind(now())
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("user")?;
                Ok(row.into())
            }

            async fn user(&self, id: UserId) -> cairn_core::Result<User> {
                let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
                let row: UserRow = sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("user")?;
                Ok(row.into())
            }

            async fn create_first_user_admin(&self, new: NewUser) -> cairn_core::Result<User> {
                let sql = concat!(
                    "INSERT INTO users (",
                    user_columns!(),
                    ") SELECT $1, $2, $3, $4, NOT EXISTS (SELECT 1 FROM users), FALSE, 0, $5 RETURNING ",
                    user_columns!()
                );
                let row: UserRow = sqlx::query_as(sql)
                    .bind(UserId::new().0)
                    .bind(new.email.to_lowercase())
                    .bind(new.display_name)
                    .bind(new.password_hash)
                    .bind(now())
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("user")?;
                Ok(row.into())
            }

            async fn users(&self, after: Option<UserId>, limit: i64) -> cairn_core::Result<Vec<User>> {
                let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2");
                let rows: Vec<UserRow> =
                    sqlx::query_as(sql).bind(after.map(|u| u.0)).bind(limit.max(0)).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(User::from).collect())
            }

            async fn set_password(&self, user: UserId, password_hash: String) -> cairn_core::Result<()> {
                let done = sqlx::query(
                    "UPDATE users SET password_hash = $2, token_version = token_version + 1 WHERE id = $1",
                )
                .bind(user.0)
                .bind(password_hash)
                .execute(&self.pool)
                .await
                .db()?;
                if done.rows_affected() == 0 {
                    return Err(cairn_core::Error::NotFound { entity: "user" });
                }
                Ok(())
            }

            async fn set_disabled(&self, user: UserId, disabled: bool) -> cairn_core::Result<User> {
                let sql = concat!("UPDATE users SET disabled = $2 WHERE id = $1 RETURNING ", user_columns!());
                self.update_user(sql, user, disabled).await
            }

            async fn set_admin(&self, user: UserId, is_admin: bool) -> cairn_core::Result<User> {
                let sql = concat!("UPDATE users SET is_admin = $2 WHERE id = $1 RETURNING ", user_columns!());
                self.update_user(sql, user, is_admin).await
            }

            async fn user_by_email(&self, email: &str) -> cairn_core::Result<User> {
                let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
                let row: UserRow = sqlx::query_as(sql)
                    .bind(email.to_lowercase())
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("user")?;
                Ok(row.into())
            }
        }

        impl $name {
            async fn update_user(&self, sql: &'static str, user: UserId, flag: bool) -> cairn_core::Result<User> {
                let row: UserRow = sqlx::query_as(sql).bind(user.0).bind(flag).fetch_one(&self.pool).await.db_entity("user")?;
                Ok(row.into())
            }
        }

        #[async_trait]
        impl CredentialRepo for $name {
            async fn insert_refresh_token(&self, token: NewRefreshToken) -> cairn_core::Result<()> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, user_id, session_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token.token_hash)
                .bind(token.user_id.0)
                .bind(token.session.0)
                .bind(now())
                .bind(token.expires_at)
                .execute(&self.pool)
                .await
                .db_entity("refresh token")?;
                Ok(())
            }

            async fn use_refresh_token(&self, token_hash: &[u8], at: OffsetDateTime) -> cairn_core::Result<RefreshOutcome> {
                // Spending is one conditional UPDATE, so two concurrent uses of
                // one token cannot both succeed.
                let spent: Option<(Uuid, Uuid)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET used_at = $2 \
                     WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
                     RETURNING user_id, session_id",
                )
                .bind(token_hash)
                .bind(at)
                .fetch_optional(&self.pool)
                .await
                .db()?;
                if let Some((user, session)) = spent {
                    return Ok(RefreshOutcome::Rotated { user_id: UserId(user), session: SessionId(session) });
                }
                let known: Option<(Uuid, Uuid, Option<OffsetDateTime>)> = sqlx::query_as(
                    "SELECT user_id, session_id, used_at FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .db()?;
                match known {
                    Some((user, session, Some(_))) => {
                        let session = SessionId(session);
                        self.revoke_session(session).await?;
                        Ok(RefreshOutcome::Reused { user_id: UserId(user), session })
                    }
                    Some((_, _, None)) | None => Ok(RefreshOutcome::Invalid),
                }
            }

            async fn revoke_session(&self, session: SessionId) -> cairn_core::Result<()> {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL")
                    .bind(session.0)
                    .bind(now())
                    .execute(&self.pool)
                    .await
                    .db()?;
                Ok(())
            }

            async fn revoke_sessions_of(&self, user: UserId) -> cairn_core::Result<()> {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user.0)
                    .bind(now())
                    .execute(&self.pool)
                    .await
                    .db()?;
                Ok(())
            }

            async fn insert_password_reset(
                &self,
                user: UserId,
                token_hash: Vec<u8>,
                expires_at: OffsetDateTime,
            ) -> cairn_core::Result<()> {
                sqlx::query(
                    "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(token_hash)
                .bind(user.0)
                .bind(now())
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .db_entity("password reset")?;
                Ok(())
            }

            async fn use_password_reset(&self, token_hash: &[u8], at: OffsetDateTime) -> cairn_core::Result<Option<UserId>> {
                let user: Option<Uuid> = sqlx::query_scalar(
                    "UPDATE password_resets SET used_at = $2 \
                     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
                )
                .bind(token_hash)
                .bind(at)
                .fetch_optional(&self.pool)
                .await
                .db()?;
                Ok(user.map(UserId))
            }

            async fn create_api_key(&self, key: NewApiKey) -> cairn_core::Result<ApiKey> {
                let sql = concat!(
                    "INSERT INTO api_keys (",
                    api_key_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL) RETURNING ",
                    api_key_columns!()
                );
                let row: ApiKeyRow = sqlx::query_as(sql)
                    .bind(ApiKeyId::new().0)
                    .bind(key.owner.0)
                    .bind(key.project_id.0)
                    .bind(key.role.as_str())
                    .bind(key.name)
                    .bind(key.secret_hash)
                    .bind(now())
                    .bind(key.expires_at)
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("API key")?;
                row.into_domain()
            }

            async fn api_key(&self, id: ApiKeyId) -> cairn_core::Result<(ApiKey, Vec<u8>)> {
                let sql = concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE id = $1");
                let mut row: ApiKeyRow = sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("API key")?;
                let hash = std::mem::take(&mut row.secret_hash);
                Ok((row.into_domain()?, hash))
            }

            async fn api_keys_of(&self, owner: UserId) -> cairn_core::Result<Vec<ApiKey>> {
                let sql = concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE owner_id = $1 ORDER BY id DESC");
                let rows: Vec<ApiKeyRow> = sqlx::query_as(sql).bind(owner.0).fetch_all(&self.pool).await.db()?;
                rows.into_iter().map(ApiKeyRow::into_domain).collect()
            }

            async fn revoke_api_key(&self, id: ApiKeyId, owner: UserId) -> cairn_core::Result<ApiKey> {
                let sql = concat!(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND owner_id = $2 RETURNING ",
                    api_key_columns!()
                );
                let row: ApiKeyRow =
                    sqlx::query_as(sql).bind(id.0).bind(owner.0).bind(now()).fetch_one(&self.pool).await.db_entity("API key")?;
                row.into_domain()
            }
        }

        #[async_trait]
        impl FileRepo for $name {
            async fn insert_file(&self, new: NewFile) -> cairn_core::Result<FileRecord> {
                let sql = concat!(
                    "INSERT INTO files (",
                    file_columns!(),
                    ") SELECT $1, $2, $3, COALESCE(MAX(version), 0) + 1, $4, $5, $6, $7, $8, $9, $10, $11 \
                     FROM files WHERE project_id = $2 AND path = $3 RETURNING ",
                    file_columns!()
                );
                // Two uploads to one path at once may pick the same version;
                // the unique index refuses the second, which then tries again.
                let mut attempts = 0;
                loop {
                    let inserted: Result<FileRow, _> = sqlx::query_as(sql)
                        .bind(new.id.0)
                        .bind(new.project_id.0)
                        .bind(&new.path)
                        .bind(new.size)
                        .bind(&new.content_type)
                        .bind(&new.sha256)
                        .bind(&new.object_key)
                        .bind(new.created_by.map(|u| u.0))
                        .bind(new.run_id.map(|r| r.0))
                        .bind(new.step)
                        .bind(now())
                        .fetch_one(&self.pool)
                        .await;
                    match inserted.db_entity("file") {
                        Err(cairn_core::Error::Conflict { .. }) if attempts < 5 => attempts += 1,
                        other => return other.map(FileRecord::from),
                    }
                }
            }

            async fn file(&self, id: FileId) -> cairn_core::Result<FileRecord> {
                let sql = concat!("SELECT ", file_columns!(), " FROM files WHERE id = $1");
                let row: FileRow = sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("file")?;
                Ok(row.into())
            }

            async fn files(&self, project: ProjectId, prefix: &str) -> cairn_core::Result<Vec<FileRecord>> {
                let sql = concat!(
                    "SELECT ",
                    file_columns!(),
                    " FROM files f WHERE project_id = $1 AND substr(path, 1, length($2)) = $2 \
                     AND version = (SELECT MAX(version) FROM files g WHERE g.project_id = f.project_id AND g.path = f.path) \
                     ORDER BY path"
                );
                let rows: Vec<FileRow> = sqlx::query_as(sql).bind(project.0).bind(prefix).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(FileRecord::from).collect())
            }

            async fn file_versions(&self, project: ProjectId, path: &str) -> cairn_core::Result<Vec<FileRecord>> {
                let sql = concat!("SELECT ", file_columns!(), " FROM files WHERE project_id = $1 AND path = $2 ORDER BY version DESC");
                let rows: Vec<FileRow> = sqlx::query_as(sql).bind(project.0).bind(path).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(FileRecord::from).collect())
            }

            async fn move_files(&self, project: ProjectId, from: &str, to: &str, folder: bool) -> cairn_core::Result<u64> {
                let mut tx = self.pool.begin().await.db()?;
                let taken: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM files WHERE project_id = $1 \
                     AND (path = $2 OR substr(path, 1, length($2) + 1) = $2 || '/') LIMIT 1",
                )
                .bind(project.0)
                .bind(to)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
                if taken.is_some() {
                    return Err(cairn_core::Error::Conflict { entity: "file" });
                }
                let moved = if folder {
                    sqlx::query(
                        "UPDATE files SET path = $3 || substr(path, length($2) + 1) \
                         WHERE project_id = $1 AND substr(path, 1, length($2) + 1) = $2 || '/'",
                    )
                } else {
                    sqlx::query("UPDATE files SET path = $3 WHERE project_id = $1 AND path = $2")
                }
                .bind(project.0)
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await
                .db_entity("file")?
                .rows_affected();
                if moved == 0 {
                    return Err(cairn_core::Error::NotFound { entity: "file" });
                }
                tx.commit().await.db()?;
                Ok(moved)
            }

            async fn delete_files(&self, project: ProjectId, path: &str, folder: bool) -> cairn_core::Result<Vec<FileRecord>> {
                let rows: Vec<FileRow> = if folder {
                    let sql = concat!(
                        "DELETE FROM files WHERE project_id = $1 AND substr(path, 1, length($2) + 1) = $2 || '/' RETURNING ",
                        file_columns!()
                    );
                    sqlx::query_as(sql).bind(project.0).bind(path).fetch_all(&self.pool).await.db()?
                } else {
                    let sql = concat!("DELETE FROM files WHERE project_id = $1 AND path = $2 RETURNING ", file_columns!());
                    sqlx::query_as(sql).bind(project.0).bind(path).fetch_all(&self.pool).await.db()?
                };
                if rows.is_empty() {
                    return Err(cairn_core::Error::NotFound { entity: "file" });
                }
                Ok(rows.into_iter().map(FileRecord::from).collect())
            }

            async fn project_usage(&self, project: ProjectId) -> cairn_core::Result<i64> {
                let used: Option<i64> = sqlx::query_scalar("SELECT CAST(SUM(size) AS BIGINT) FROM files WHERE project_id = $1")
                    .bind(project.0)
                    .fetch_one(&self.pool)
                    .await
                    .db()?;
                Ok(used.unwrap_or(0))
            }
        }

        #[async_trait]
        impl ProjectRepo for $name {
            async fn create_project(&self, new: NewProject) -> cairn_core::Result<Project> {
                let (id, at) = (ProjectId::new(), now());
                let mut tx = self.pool.begin().await.db()?;
                let row: ProjectRow = sqlx::query_as(
                    "INSERT INTO projects (id, name, created_by, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, name, created_by, created_at, model, budget_usd",
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
                let sql = concat!("SELECT ", project_columns!(), " FROM projects p WHERE p.id = $1");
                let row: ProjectRow = sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("project")?;
                Ok(row.into())
            }

            async fn update_project(&self, id: ProjectId, update: ProjectUpdate) -> cairn_core::Result<Project> {
                let current = self.project(id).await?;
                let row: ProjectRow = sqlx::query_as(
                    "UPDATE projects SET name = $2, model = $3, budget_usd = $4 WHERE id = $1 \
                     RETURNING id, name, created_by, created_at, model, budget_usd",
                )
                .bind(id.0)
                .bind(update.name.unwrap_or(current.name))
                .bind(update.model.unwrap_or(current.model))
                .bind(update.budget_usd.unwrap_or(current.budget_usd))
                .fetch_one(&self.pool)
                .await
                .db_entity("project")?;
                Ok(row.into())
            }

            async fn project_cost(&self, id: ProjectId) -> cairn_core::Result<f64> {
                let spent: Option<f64> = sqlx::query_scalar(
                    "SELECT CAST(SUM(r.cost_usd) AS DOUBLE PRECISION) FROM runs r \
                     JOIN threads t ON t.id = r.thread_id WHERE t.project_id = $1",
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
                     WHERE m.user_id = $1 ORDER BY p.id"
                );
                let rows: Vec<ProjectRoleRow> = sqlx::query_as(sql).bind(user.0).fetch_all(&self.pool).await.db()?;
                rows.into_iter().map(ProjectRoleRow::into_domain).collect()
            }

            async fn set_member(&self, project: ProjectId, user: UserId, role: Role) -> cairn_core::Result<Membership> {
                let row: MembershipRow = sqlx::query_as(
                    "INSERT INTO memberships (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role \
                     RETURNING project_id, user_id, role, created_at",
                )
                .bind(project.0)
                .bind(user.0)
                .bind(role.as_str())
                .bind(now())
                .fetch_one(&self.pool)
                .await
                .db_entity("membership")?;
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
                    sqlx::query_scalar("SELECT role FROM memberships WHERE project_id = $1 AND user_id = $2")
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
        }

        #[async_trait]
        impl ThreadRepo for $name {
            async fn create_thread(&self, new: NewThread) -> cairn_core::Result<Thread> {
                let sql = concat!("INSERT INTO threads (", thread_columns!(), ") VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING ", thread_columns!());
                let row: ThreadRow = sqlx::query_as(sql)
                    .bind(ThreadId::new().0)
                    .bind(new.project_id.0)
                    .bind(new.title)
                    .bind(new.created_by.0)
                    .bind(now())
                    .bind(new.model)
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("thread")?;
                Ok(row.into())
            }

            async fn thread(&self, id: ThreadId) -> cairn_core::Result<Thread> {
                let sql = concat!("SELECT ", thread_columns!(), " FROM threads WHERE id = $1");
                let row: ThreadRow = sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("thread")?;
                Ok(row.into())
            }

            async fn rename_thread(&self, id: ThreadId, title: String) -> cairn_core::Result<Thread> {
                let sql = concat!("UPDATE threads SET title = $2 WHERE id = $1 RETURNING ", thread_columns!());
                let row: ThreadRow =
                    sqlx::query_as(sql).bind(id.0).bind(title).fetch_one(&self.pool).await.db_entity("thread")?;
                Ok(row.into())
            }

            async fn threads(&self, project: ProjectId) -> cairn_core::Result<Vec<Thread>> {
                let sql = concat!("SELECT ", thread_columns!(), " FROM threads WHERE project_id = $1 ORDER BY id DESC");
                let rows: Vec<ThreadRow> = sqlx::query_as(sql).bind(project.0).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(Thread::from).collect())
            }

            async fn append_message(&self, new: NewMessage) -> cairn_core::Result<Message> {
                let row: MessageRow = sqlx::query_as(
                    "INSERT INTO messages (id, thread_id, role, author_id, content, attachments, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING id, thread_id, role, author_id, content, attachments, created_at",
                )
                .bind(MessageId::new().0)
                .bind(new.thread_id.0)
                .bind(new.role.as_str())
                .bind(new.author.map(|u| u.0))
                .bind(new.content)
                .bind(serde_json::to_string(&new.attachments).unwrap_or_else(|_| "[]".to_owned()))
                .bind(now())
                .fetch_one(&self.pool)
                .await
                .db_entity("message")?;
                row.into_domain()
            }

            async fn messages(&self, thread: ThreadId) -> cairn_core::Result<Vec<Message>> {
                let rows: Vec<MessageRow> = sqlx::query_as(
                    "SELECT id, thread_id, role, author_id, content, attachments, created_at FROM messages \
                     WHERE thread_id = $1 ORDER BY id",
                )
                .bind(thread.0)
                .fetch_all(&self.pool)
                .await
                .db()?;
                rows.into_iter().map(MessageRow::into_domain).collect()
            }

            async fn append_events(&self, thread: ThreadId, events: Vec<NewEvent>) -> cairn_core::Result<Vec<Event>> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
                let at = now();
                let mut tx = self.pool.begin().await.db()?;
                // Reserving the numbers by bumping the thread's counter first takes
                // the row's write lock, so concurrent appenders queue here and each
                // gets its own consecutive block.
                let last: i64 = sqlx::query_scalar(
                    "UPDATE threads SET last_event_seq = last_event_seq + $2 WHERE id = $1 RETURNING last_event_seq",
                )
                .bind(thread.0)
                .bind(count)
                .fetch_one(&mut *tx)
                .await
                .db_entity("thread")?;
                let mut stored = Vec::with_capacity(events.len());
                for (seq, event) in (last - count + 1..).zip(events) {
                    let sql = concat!("INSERT INTO events (", event_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ", event_columns!());
                    let row: EventRow = sqlx::query_as(sql)
                        .bind(thread.0)
                        .bind(seq)
                        .bind(event.run_id.map(|r| r.0))
                        .bind(event.kind)
                        .bind(Json(event.payload))
                        .bind(event.schema_version)
                        .bind(at)
                        .fetch_one(&mut *tx)
                        .await
                        .db_entity("event")?;
                    stored.push(Event::from(row));
                }
                tx.commit().await.db()?;
                Ok(stored)
            }

            async fn events_after(&self, thread: ThreadId, after: i64, limit: i64) -> cairn_core::Result<Vec<Event>> {
                let sql = concat!("SELECT ", event_columns!(), " FROM events WHERE thread_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
                let rows: Vec<EventRow> = sqlx::query_as(sql)
                    .bind(thread.0)
                    .bind(after)
                    .bind(limit.max(0))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                Ok(rows.into_iter().map(Event::from).collect())
            }
        }

        #[async_trait]
        impl RunRepo for $name {
            async fn create_run(&self, new: NewRun) -> cairn_core::Result<Run> {
                let at = now();
                let sql = concat!("INSERT INTO runs (", run_columns!(), ") VALUES ($1, $2, $3, $4, NULL, $5, $5) RETURNING ", run_columns!());
                let row: RunRow = sqlx::query_as(sql)
                    .bind(RunId::new().0)
                    .bind(new.thread_id.0)
                    .bind(RunStatus::Queued.as_str())
                    .bind(new.created_by.0)
                    .bind(at)
                    .fetch_one(&self.pool)
                    .await
                    .db_entity("run")?;
                row.into_domain()
            }

            async fn run(&self, id: RunId) -> cairn_core::Result<Run> {
                let sql = concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1");
                let row: RunRow = sqlx::query_as(sql).bind(id.0).fetch_one(&self.pool).await.db_entity("run")?;
                row.into_domain()
            }

            async fn runs(&self, thread: ThreadId) -> cairn_core::Result<Vec<Run>> {
                let sql = concat!("SELECT ", run_columns!(), " FROM runs WHERE thread_id = $1 ORDER BY id");
                let rows: Vec<RunRow> = sqlx::query_as(sql).bind(thread.0).fetch_all(&self.pool).await.db()?;
                rows.into_iter().map(RunRow::into_domain).collect()
            }

            async fn add_run_cost(&self, id: RunId, cost_usd: f64) -> cairn_core::Result<()> {
                let updated = sqlx::query("UPDATE runs SET cost_usd = cost_usd + $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(cost_usd)
                    .execute(&self.pool)
                    .await
                    .db()?
                    .rows_affected();
                match updated {
                    0 => Err(cairn_core::Error::NotFound { entity: "run" }),
                    _ => Ok(()),
                }
            }

            async fn set_run_status(
                &self,
                id: RunId,
                status: RunStatus,
                error: Option<String>,
            ) -> cairn_core::Result<Run> {
                // The guard in the WHERE clause makes "finished runs stay finished"
                // hold even when two workers race.
                let sql = concat!(
                    "UPDATE runs SET status = $2, error = $3, updated_at = $4 \
                     WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled') RETURNING ",
                    run_columns!()
                );
                let row: Option<RunRow> = sqlx::query_as(sql)
                    .bind(id.0)
                    .bind(status.as_str())
                    .bind(error)
                    .bind(now())
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                match row {
                    Some(row) => row.into_domain(),
                    // Either there is no such run, or it already finished.
                    None => match self.run(id).await?.status.is_terminal() {
                        true => Err(cairn_core::Error::Conflict { entity: "finished run" }),
                        false => Err(cairn_core::Error::NotFound { entity: "run" }),
                    },
                }
            }

            async fn put_checkpoint(&self, checkpoint: NewCheckpoint) -> cairn_core::Result<Checkpoint> {
                let row: CheckpointRow = sqlx::query_as(
                    "INSERT INTO checkpoints (run_id, step, state, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (run_id, step) DO UPDATE SET state = excluded.state, created_at = excluded.created_at \
                     RETURNING run_id, step, state, created_at",
                )
                .bind(checkpoint.run_id.0)
                .bind(checkpoint.step)
                .bind(Json(checkpoint.state))
                .bind(now())
                .fetch_one(&self.pool)
                .await
                .db_entity("checkpoint")?;
                Ok(row.into())
            }

            async fn latest_checkpoint(&self, run: RunId) -> cairn_core::Result<Option<Checkpoint>> {
                let row: Option<CheckpointRow> = sqlx::query_as(
                    "SELECT run_id, step, state, created_at FROM checkpoints WHERE run_id = $1 ORDER BY step DESC LIMIT 1",
                )
                .bind(run.0)
                .fetch_optional(&self.pool)
                .await
                .db()?;
                Ok(row.map(Checkpoint::from))
            }

            async fn checkpoints(&self, run: RunId) -> cairn_core::Result<Vec<Checkpoint>> {
                let rows: Vec<CheckpointRow> = sqlx::query_as(
                    "SELECT run_id, step, state, created_at FROM checkpoints WHERE run_id = $1 ORDER BY step",
                )
                .bind(run.0)
                .fetch_all(&self.pool)
                .await
                .db()?;
                Ok(rows.into_iter().map(Checkpoint::from).collect())
            }
        }

        #[async_trait]
        impl AuditRepo for $name {
            async fn record_audit(&self, entry: NewAuditEntry) -> cairn_core::Result<AuditEntry> {
                let row: AuditRow = sqlx::query_as(
                    "INSERT INTO audit_log (id, actor_id, project_id, action, detail, client_addr, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING id, actor_id, project_id, action, detail, client_addr, created_at",
                )
                .bind(AuditId::new().0)
                .bind(entry.actor.map(|u| u.0))
                .bind(entry.project_id.map(|p| p.0))
                .bind(entry.action)
                .bind(Json(entry.detail))
                .bind(entry.client_addr)
                .bind(now())
                .fetch_one(&self.pool)
                .await
                .db_entity("audit entry")?;
                Ok(row.into())
            }

            async fn audit_log(&self, before: Option<AuditId>, limit: i64) -> cairn_core::Result<Vec<AuditEntry>> {
                // UUID v7 ids grow with time, so paging by id pages by time.
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT id, actor_id, project_id, action, detail, client_addr, created_at FROM audit_log \
                     WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                )
                .bind(before.map(|b| b.0))
                .bind(limit.max(0))
                .fetch_all(&self.pool)
                .await
                .db()?;
                Ok(rows.into_iter().map(AuditEntry::from).collect())
            }
        }
    };
}

sql_store!(
    /// The repositories on SQLite: the all-in-one default.
    SqliteStore, SqlitePool, "sqlite"
);
sql_store!(
    /// The repositories on PostgreSQL: the distributed shape.
    PostgresStore, PgPool, "postgres"
);
