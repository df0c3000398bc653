//! `CredentialRepo`: refresh tokens, password resets and API keys.

/// `CredentialRepo` for one backend's store: `sql_store!` expands it in `mod.rs`,
/// whose imports and column macros it uses.
macro_rules! credential_repo {
    ($store:ty) => {
        #[async_trait]
        impl CredentialRepo for $store {
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
    };
}

pub(super) use credential_repo;
