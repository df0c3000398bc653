//! Webhook endpoints and their deliveries, the same SQL on both backends.

use async_trait::async_trait;
use cairn_core::hooks::{Attempt, Delivery, DeliveryStatus, NewWebhook, Webhook, WebhookUpdate};
use cairn_core::store::WebhookRepo;
use cairn_core::{DeliveryId, ProjectId, UserId, WebhookId};
use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DbResult;
use crate::repo::{PostgresStore, SqliteStore};
use crate::rows::{now, parse};

const WEBHOOK_COLUMNS: &str =
    "id, project_id, url, events, secret_sealed, previous_sealed, previous_until, enabled, created_by, created_at";
const DELIVERY_COLUMNS: &str = "id, webhook_id, event_type, payload, status, attempts, response_code, duration_ms, \
                                last_error, next_attempt_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: Uuid,
    project_id: Uuid,
    url: String,
    events: Json<Vec<String>>,
    secret_sealed: Vec<u8>,
    previous_sealed: Option<Vec<u8>>,
    previous_until: Option<OffsetDateTime>,
    enabled: bool,
    created_by: Uuid,
    created_at: OffsetDateTime,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: WebhookId(r.id),
            project_id: ProjectId(r.project_id),
            url: r.url,
            events: r.events.0,
            secret_sealed: r.secret_sealed,
            previous_sealed: r.previous_sealed,
            previous_until: r.previous_until,
            enabled: r.enabled,
            created_by: UserId(r.created_by),
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    webhook_id: Uuid,
    event_type: String,
    payload: Json<Value>,
    status: String,
    attempts: i32,
    response_code: Option<i32>,
    duration_ms: Option<i64>,
    last_error: Option<String>,
    next_attempt_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl DeliveryRow {
    fn into_domain(self) -> cairn_core::Result<Delivery> {
        Ok(Delivery {
            id: DeliveryId(self.id),
            webhook_id: WebhookId(self.webhook_id),
            event_type: self.event_type,
            payload: self.payload.0,
            status: parse::<DeliveryStatus>(&self.status)?,
            attempts: self.attempts,
            response_code: self.response_code,
            duration_ms: self.duration_ms,
            last_error: self.last_error,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

macro_rules! webhook_repo {
    ($store:ty) => {
        #[async_trait]
        impl WebhookRepo for $store {
            async fn create_webhook(&self, new: NewWebhook) -> cairn_core::Result<Webhook> {
                let sql = format!(
                    "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL, NULL, TRUE, $6, $7) \
                     RETURNING {WEBHOOK_COLUMNS}"
                );
                let row: WebhookRow = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(WebhookId::new().0)
                    .bind(new.project_id.0)
                    .bind(new.url)
                    .bind(Json(new.events))
                    .bind(new.secret_sealed)
                    .bind(new.created_by.0)
                    .bind(now())
                    .fetch_one(self.pool())
                    .await
                    .db_entity("webhook")?;
                Ok(row.into())
            }

            async fn webhook(&self, id: WebhookId) -> cairn_core::Result<Webhook> {
                let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1");
                let row: WebhookRow =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id.0).fetch_one(self.pool()).await.db_entity("webhook")?;
                Ok(row.into())
            }

            async fn webhooks(&self, project: ProjectId) -> cairn_core::Result<Vec<Webhook>> {
                let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE project_id = $1 ORDER BY created_at, id");
                let rows: Vec<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(project.0).fetch_all(self.pool()).await.db()?;
                Ok(rows.into_iter().map(Webhook::from).collect())
            }

            async fn update_webhook(&self, id: WebhookId, update: WebhookUpdate) -> cairn_core::Result<Webhook> {
                let current = self.webhook(id).await?;
                let sql = format!(
                    "UPDATE webhooks SET url = $2, events = $3, enabled = $4 WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
                );
                let row: WebhookRow = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(id.0)
                    .bind(update.url.unwrap_or(current.url))
                    .bind(Json(update.events.unwrap_or(current.events)))
                    .bind(update.enabled.unwrap_or(current.enabled))
                    .fetch_one(self.pool())
                    .await
                    .db_entity("webhook")?;
                Ok(row.into())
            }

            async fn rotate_webhook_secret(
                &self,
                id: WebhookId,
                secret_sealed: Vec<u8>,
                previous_until: OffsetDateTime,
            ) -> cairn_core::Result<Webhook> {
                let sql = format!(
                    "UPDATE webhooks SET previous_sealed = secret_sealed, previous_until = $3, secret_sealed = $2 \
                     WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
                );
                let row: WebhookRow = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(id.0)
                    .bind(secret_sealed)
                    .bind(previous_until)
                    .fetch_one(self.pool())
                    .await
                    .db_entity("webhook")?;
                Ok(row.into())
            }

            async fn delete_webhook(&self, id: WebhookId) -> cairn_core::Result<()> {
                let deleted =
                    sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id.0).execute(self.pool()).await.db()?;
                match deleted.rows_affected() {
                    0 => Err(cairn_core::Error::NotFound { entity: "webhook" }),
                    _ => Ok(()),
                }
            }

            async fn queue_deliveries(
                &self,
                project: ProjectId,
                event_type: &str,
                payload: Value,
            ) -> cairn_core::Result<Vec<Delivery>> {
                let subscribed: Vec<Webhook> = self
                    .webhooks(project)
                    .await?
                    .into_iter()
                    .filter(|w| w.enabled && w.events.iter().any(|e| e == event_type))
                    .collect();
                let sql = format!(
                    "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}, leased_until) \
                     VALUES ($1, $2, $3, $4, 'pending', 0, NULL, NULL, NULL, $5, $5, $5, NULL) RETURNING {DELIVERY_COLUMNS}"
                );
                let mut queued = Vec::with_capacity(subscribed.len());
                let mut tx = self.pool().begin().await.db()?;
                let at = now();
                for webhook in subscribed {
                    let row: DeliveryRow = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(DeliveryId::new().0)
                        .bind(webhook.id.0)
                        .bind(event_type)
                        .bind(Json(&payload))
                        .bind(at)
                        .fetch_one(&mut *tx)
                        .await
                        .db_entity("webhook delivery")?;
                    queued.push(row.into_domain()?);
                }
                tx.commit().await.db()?;
                Ok(queued)
            }

            async fn claim_delivery(&self, lease: std::time::Duration) -> cairn_core::Result<Option<Delivery>> {
                // The row is re-checked under its lock: of two dispatchers
                // that picked the same delivery, the second finds it leased
                // and updates nothing.
                let sql = format!(
                    "UPDATE webhook_deliveries SET leased_until = $2, attempts = attempts + 1, updated_at = $1 \
                     WHERE id = (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
                                 AND (leased_until IS NULL OR leased_until < $1) ORDER BY next_attempt_at LIMIT 1) \
                     AND status = 'pending' AND (leased_until IS NULL OR leased_until < $1) \
                     RETURNING {DELIVERY_COLUMNS}"
                );
                let at = now();
                let until = at + lease;
                let row: Option<DeliveryRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(at).bind(until).fetch_optional(self.pool()).await.db()?;
                row.map(DeliveryRow::into_domain).transpose()
            }

            async fn finish_attempt(&self, id: DeliveryId, attempt: Attempt) -> cairn_core::Result<Delivery> {
                let status = attempt.status();
                let next = if status == DeliveryStatus::Pending { attempt.retry_at } else { None };
                let sql = format!(
                    "UPDATE webhook_deliveries SET status = $2, response_code = $3, duration_ms = $4, last_error = $5, \
                     next_attempt_at = $6, leased_until = NULL, updated_at = $7 WHERE id = $1 RETURNING {DELIVERY_COLUMNS}"
                );
                let row: DeliveryRow = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(id.0)
                    .bind(status.as_str())
                    .bind(attempt.response_code)
                    .bind(attempt.duration_ms)
                    .bind(attempt.error)
                    .bind(next)
                    .bind(now())
                    .fetch_one(self.pool())
                    .await
                    .db_entity("webhook delivery")?;
                row.into_domain()
            }

            async fn deliveries(&self, webhook: WebhookId, limit: i64) -> cairn_core::Result<Vec<Delivery>> {
                let sql = format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                );
                let rows: Vec<DeliveryRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(webhook.0).bind(limit.max(0)).fetch_all(self.pool()).await.db()?;
                rows.into_iter().map(DeliveryRow::into_domain).collect()
            }

            async fn delivery(&self, id: DeliveryId) -> cairn_core::Result<Delivery> {
                let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
                let row: DeliveryRow =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id.0).fetch_one(self.pool()).await.db_entity("webhook delivery")?;
                row.into_domain()
            }

            async fn redeliver(&self, id: DeliveryId) -> cairn_core::Result<Delivery> {
                let sql = format!(
                    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, leased_until = NULL, \
                     updated_at = $2 WHERE id = $1 RETURNING {DELIVERY_COLUMNS}"
                );
                let row: DeliveryRow = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(id.0)
                    .bind(now())
                    .fetch_one(self.pool())
                    .await
                    .db_entity("webhook delivery")?;
                row.into_domain()
            }
        }
    };
}

webhook_repo!(SqliteStore);
webhook_repo!(PostgresStore);
