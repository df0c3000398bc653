//! Read-only links to runs, the same SQL on both backends.

use async_trait::async_trait;
use cairn_core::model::RunShare;
use cairn_core::store::ShareRepo;
use cairn_core::{RunId, ShareId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DbResult;
use crate::repo::{PostgresStore, SqliteStore};
use crate::rows::now;

const COLUMNS: &str = "id, run_id, created_by, created_at, expires_at, revoked_at";

#[derive(sqlx::FromRow)]
struct ShareRow {
    id: Uuid,
    run_id: Uuid,
    created_by: Uuid,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl From<ShareRow> for RunShare {
    fn from(r: ShareRow) -> Self {
        RunShare {
            id: ShareId(r.id),
            run_id: RunId(r.run_id),
            created_by: UserId(r.created_by),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

macro_rules! share_repo {
    ($store:ty) => {
        #[async_trait]
        impl ShareRepo for $store {
            async fn create_share(
                &self,
                run: RunId,
                created_by: UserId,
                token_hash: Vec<u8>,
                expires_at: OffsetDateTime,
            ) -> cairn_core::Result<RunShare> {
                let sql = format!(
                    "INSERT INTO run_shares (id, run_id, token_hash, created_by, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
                );
                let row: ShareRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(ShareId::new().0)
                    .bind(run.0)
                    .bind(token_hash)
                    .bind(created_by.0)
                    .bind(now())
                    .bind(expires_at)
                    .fetch_one(self.pool())
                    .await
                    .db_entity("share")?;
                Ok(row.into())
            }

            async fn shares(&self, run: RunId) -> cairn_core::Result<Vec<RunShare>> {
                let sql = format!("SELECT {COLUMNS} FROM run_shares WHERE run_id = $1 ORDER BY id DESC");
                let rows: Vec<ShareRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(run.0).fetch_all(self.pool()).await.db()?;
                Ok(rows.into_iter().map(RunShare::from).collect())
            }

            async fn revoke_share(&self, run: RunId, id: ShareId) -> cairn_core::Result<RunShare> {
                // A second revocation keeps the first time.
                let sql = format!(
                    "UPDATE run_shares SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND run_id = $2 \
                     RETURNING {COLUMNS}"
                );
                let row: ShareRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(run.0)
                    .bind(now())
                    .fetch_one(self.pool())
                    .await
                    .db_entity("share")?;
                Ok(row.into())
            }

            async fn share_by_token(&self, token_hash: &[u8]) -> cairn_core::Result<RunShare> {
                let sql = format!("SELECT {COLUMNS} FROM run_shares WHERE token_hash = $1");
                let row: ShareRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(token_hash)
                    .fetch_one(self.pool())
                    .await
                    .db_entity("share")?;
                Ok(row.into())
            }
        }
    };
}

share_repo!(SqliteStore);
share_repo!(PostgresStore);
