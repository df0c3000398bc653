//! Model connections made in the app, the same SQL on both backends.

use async_trait::async_trait;
use cairn_core::model::{ModelConnection, ModelConnectionUpdate, NewModelConnection};
use cairn_core::store::ConnectionRepo;
use cairn_core::{ConnectionId, UserId};
use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DbResult;
use crate::repo::{PostgresStore, SqliteStore};
use crate::rows::now;

const COLUMNS: &str = "id, name, kind, base_url, api_version, key_ciphertext, key_hint, models, enabled, created_by, \
                       created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ConnectionRow {
    id: Uuid,
    name: String,
    kind: String,
    base_url: String,
    api_version: String,
    key_ciphertext: Option<Vec<u8>>,
    key_hint: Option<String>,
    models: Json<Value>,
    enabled: bool,
    created_by: Option<Uuid>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<ConnectionRow> for ModelConnection {
    fn from(r: ConnectionRow) -> Self {
        ModelConnection {
            id: ConnectionId(r.id),
            name: r.name,
            kind: r.kind,
            base_url: r.base_url,
            api_version: r.api_version,
            key_ciphertext: r.key_ciphertext,
            key_hint: r.key_hint,
            models: r.models.0,
            enabled: r.enabled,
            created_by: r.created_by.map(UserId),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

macro_rules! connection_repo {
    ($store:ty) => {
        #[async_trait]
        impl ConnectionRepo for $store {
            async fn create_connection(&self, new: NewModelConnection) -> cairn_core::Result<ModelConnection> {
                let sql = format!(
                    "INSERT INTO model_connections ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {COLUMNS}"
                );
                let row: ConnectionRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(ConnectionId::new().0)
                    .bind(new.name)
                    .bind(new.kind)
                    .bind(new.base_url)
                    .bind(new.api_version)
                    .bind(new.key_ciphertext)
                    .bind(new.key_hint)
                    .bind(Json(new.models))
                    .bind(new.enabled)
                    .bind(new.created_by.0)
                    .bind(now())
                    .fetch_one(self.pool())
                    .await
                    .db_entity("model connection")?;
                Ok(row.into())
            }

            async fn connections(&self) -> cairn_core::Result<Vec<ModelConnection>> {
                let sql = format!("SELECT {COLUMNS} FROM model_connections ORDER BY name");
                let rows: Vec<ConnectionRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await.db()?;
                Ok(rows.into_iter().map(ModelConnection::from).collect())
            }

            async fn connection(&self, id: ConnectionId) -> cairn_core::Result<ModelConnection> {
                let sql = format!("SELECT {COLUMNS} FROM model_connections WHERE id = $1");
                let row: ConnectionRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_one(self.pool())
                    .await
                    .db_entity("model connection")?;
                Ok(row.into())
            }

            async fn update_connection(
                &self,
                id: ConnectionId,
                update: ModelConnectionUpdate,
            ) -> cairn_core::Result<ModelConnection> {
                let current = self.connection(id).await?;
                let (key_ciphertext, key_hint) = match update.key {
                    Some(Some((ciphertext, hint))) => (Some(ciphertext), Some(hint)),
                    Some(None) => (None, None),
                    None => (current.key_ciphertext, current.key_hint),
                };
                let sql = format!(
                    "UPDATE model_connections SET base_url = $2, api_version = $3, key_ciphertext = $4, \
                     key_hint = $5, models = $6, enabled = $7, updated_at = $8 WHERE id = $1 RETURNING {COLUMNS}"
                );
                let row: ConnectionRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(update.base_url.unwrap_or(current.base_url))
                    .bind(update.api_version.unwrap_or(current.api_version))
                    .bind(key_ciphertext)
                    .bind(key_hint)
                    .bind(Json(update.models.unwrap_or(current.models)))
                    .bind(update.enabled.unwrap_or(current.enabled))
                    .bind(now())
                    .fetch_one(self.pool())
                    .await
                    .db_entity("model connection")?;
                Ok(row.into())
            }

            async fn delete_connection(&self, id: ConnectionId) -> cairn_core::Result<()> {
                let done =
                    sqlx::query("DELETE FROM model_connections WHERE id = $1").bind(id.0).execute(self.pool()).await.db()?;
                if done.rows_affected() == 0 {
                    return Err(cairn_core::Error::NotFound { entity: "model connection" });
                }
                Ok(())
            }

            async fn reseal_connection_key(&self, id: ConnectionId, ciphertext: Vec<u8>) -> cairn_core::Result<()> {
                sqlx::query("UPDATE model_connections SET key_ciphertext = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(ciphertext)
                    .execute(self.pool())
                    .await
                    .db()?;
                Ok(())
            }
        }
    };
}

connection_repo!(SqliteStore);
connection_repo!(PostgresStore);
