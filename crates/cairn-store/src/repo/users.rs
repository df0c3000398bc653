//! `UserRepo`: accounts, their passwords and their admin and disabled flags.

/// `UserRepo` for one backend's store: `sql_store!` expands it in `mod.rs`,
/// whose imports and column macros it uses.
macro_rules! user_repo {
    ($store:ty) => {
        #[async_trait]
        impl UserRepo for $store {
            async fn create_user(&self, new: NewUser) -> cairn_core::Result<User> {
                let sql = concat!(
                    "INSERT INTO users (",
                    user_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, FALSE, 0, $6) RETURNING ",
                    user_columns!()
                );
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
                let sql = concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
                );
                let rows: Vec<UserRow> =
                    sqlx::query_as(sql).bind(after.map(|u| u.0)).bind(limit.max(0)).fetch_all(&self.pool).await.db()?;
                Ok(rows.into_iter().map(User::from).collect())
            }

            async fn set_password(&self, user: UserId, password_hash: String) -> cairn_core::Result<()> {
                let done =
                    sqlx::query("UPDATE users SET password_hash = $2, token_version = token_version + 1 WHERE id = $1")
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
                let sql = concat!(
                    "UPDATE users SET disabled = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING ",
                    user_columns!()
                );
                self.update_user(sql, user, disabled).await
            }

            async fn set_admin(&self, user: UserId, is_admin: bool) -> cairn_core::Result<User> {
                let sql = concat!(
                    "UPDATE users SET is_admin = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING ",
                    user_columns!()
                );
                self.update_user(sql, user, is_admin).await
            }

            async fn user_by_email(&self, email: &str) -> cairn_core::Result<User> {
                let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
                let row: UserRow =
                    sqlx::query_as(sql).bind(email.to_lowercase()).fetch_one(&self.pool).await.db_entity("user")?;
                Ok(row.into())
            }
        }

        impl $store {
            async fn update_user(&self, sql: &'static str, user: UserId, flag: bool) -> cairn_core::Result<User> {
                let row: UserRow =
                    sqlx::query_as(sql).bind(user.0).bind(flag).fetch_one(&self.pool).await.db_entity("user")?;
                Ok(row.into())
            }
        }
    };
}

pub(super) use user_repo;
