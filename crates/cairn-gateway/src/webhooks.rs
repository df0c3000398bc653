//! A project's webhooks (owners): endpoints subscribed to project events,
//! their secrets, and the log of their deliveries.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use cairn_auth::{Access, Principal};
use cairn_core::hooks::{Delivery, DeliveryStatus, Webhook, WebhookUpdate};
use cairn_core::{DeliveryId, ProjectId, WebhookId};
use cairn_webhooks::WebhookError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(create_webhook, list_webhooks)))
        .routes(crate::v1(routes!(update_webhook, delete_webhook)))
        .routes(crate::v1(routes!(rotate_secret)))
        .routes(crate::v1(routes!(list_deliveries)))
        .routes(crate::v1(routes!(redeliver)))
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Invalid(detail) => ApiError::Invalid { code: "invalid_webhook", detail },
            WebhookError::Refused(detail) => ApiError::Invalid { code: "destination_refused", detail },
            WebhookError::Store(error) => error.into(),
            WebhookError::Secret(detail) => {
                tracing::error!(%detail, "webhook secrets");
                ApiError::Internal
            }
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookResponse {
    pub id: WebhookId,
    pub project_id: ProjectId,
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    pub enabled: bool,
    /// Until when the secret it replaced still signs (after a rotation).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<Webhook> for WebhookResponse {
    fn from(w: Webhook) -> Self {
        WebhookResponse {
            id: w.id,
            project_id: w.project_id,
            url: w.url,
            events: w.events,
            enabled: w.enabled,
            previous_secret_until: w.previous_until,
            created_at: w.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookResponse,
    /// The signing secret (`whsec_…`): shown only now. Verify deliveries
    /// with it as Standard Webhooks says (`webhook-signature`).
    pub secret: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where deliveries are POSTed (http or https; no private address
    /// unless `tools.allow_private` names it).
    pub url: String,
    /// `run.succeeded`, `run.failed`, `run.waiting`, `artifact.saved`, `member.added`.
    pub events: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryResponse {
    /// Also the `webhook-id` header of every attempt.
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_type: String,
    /// The body sent: `type`, `timestamp` and `data`.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// The last attempt's HTTP status, if the endpoint answered.
    pub response_code: Option<i32>,
    /// The last attempt's time, in milliseconds.
    pub duration_ms: Option<i64>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Delivery> for DeliveryResponse {
    fn from(d: Delivery) -> Self {
        DeliveryResponse {
            id: d.id,
            webhook_id: d.webhook_id,
            event_type: d.event_type,
            payload: d.payload,
            status: d.status,
            attempts: d.attempts,
            response_code: d.response_code,
            duration_ms: d.duration_ms,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveriesQuery {
    /// At most this many, newest first (1 to 500; 100 by default).
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// The project's endpoint `id`, for an owner of it.
async fn webhook_for(
    state: &AppState,
    principal: &Principal,
    project: ProjectId,
    id: WebhookId,
) -> Result<Webhook, ApiError> {
    state.auth.authorize(principal, project, Access::Manage).await?;
    let webhook = state.store.webhook(id).await?;
    if webhook.project_id != project {
        return Err(ApiError::NotFound { entity: "webhook" });
    }
    Ok(webhook)
}

/// Subscribes an endpoint to the project's events (owners). The answer
/// holds its signing secret, shown only this once.
#[utoipa::path(post, path = "/projects/{project_id}/webhooks", tag = "webhooks", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)), request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "The endpoint, with its secret", body = WebhookWithSecret),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_webhook` (a bad URL, unknown events), `destination_refused` (a private address)",
         body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_webhook(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project): Path<ProjectId>,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> Result<(StatusCode, ApiJson<WebhookWithSecret>), ApiError> {
    state.auth.authorize(&principal, project, Access::Manage).await?;
    let (webhook, secret) = state.webhooks.create(project, body.url.trim(), body.events, principal.user.id).await?;
    let detail = json!({ "webhook": webhook.id, "url": webhook.url, "events": webhook.events });
    crate::audit::record(&state, &principal, Some(project), "webhook.created", detail, &addr).await;
    Ok((StatusCode::CREATED, ApiJson(WebhookWithSecret { webhook: webhook.into(), secret })))
}

/// The project's endpoints (owners), without secrets. The event types
/// there are: see `CreateWebhookRequest.events`.
#[utoipa::path(get, path = "/projects/{project_id}/webhooks", tag = "webhooks", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses((status = 200, description = "The endpoints, oldest first", body = [WebhookResponse]))
)]
async fn list_webhooks(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project): Path<ProjectId>,
) -> Result<ApiJson<Vec<WebhookResponse>>, ApiError> {
    state.auth.authorize(&principal, project, Access::Manage).await?;
    Ok(ApiJson(state.store.webhooks(project).await?.into_iter().map(WebhookResponse::from).collect()))
}

/// Changes an endpoint's URL, events, or whether it is enabled (owners).
#[utoipa::path(patch, path = "/projects/{project_id}/webhooks/{webhook_id}", tag = "webhooks", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("webhook_id" = WebhookId, Path)), request_body = UpdateWebhookRequest,
    responses((status = 200, description = "The endpoint", body = WebhookResponse),
        (status = 422, description = "`invalid_webhook`, `destination_refused`", body = Problem,
         content_type = "application/problem+json"))
)]
async fn update_webhook(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, id)): Path<(ProjectId, WebhookId)>,
    ApiJson(body): ApiJson<UpdateWebhookRequest>,
) -> Result<ApiJson<WebhookResponse>, ApiError> {
    webhook_for(&state, &principal, project, id).await?;
    let update =
        WebhookUpdate { url: body.url.map(|u| u.trim().to_owned()), events: body.events, enabled: body.enabled };
    let webhook = state.webhooks.update(id, update).await?;
    let detail = json!({ "webhook": id, "url": webhook.url, "events": webhook.events, "enabled": webhook.enabled });
    crate::audit::record(&state, &principal, Some(project), "webhook.updated", detail, &addr).await;
    Ok(ApiJson(webhook.into()))
}

/// Deletes an endpoint and its delivery log (owners).
#[utoipa::path(delete, path = "/projects/{project_id}/webhooks/{webhook_id}", tag = "webhooks", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("webhook_id" = WebhookId, Path)),
    responses((status = 204, description = "Deleted"))
)]
async fn delete_webhook(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, id)): Path<(ProjectId, WebhookId)>,
) -> Result<StatusCode, ApiError> {
    let webhook = webhook_for(&state, &principal, project, id).await?;
    state.store.delete_webhook(id).await?;
    crate::audit::record(
        &state,
        &principal,
        Some(project),
        "webhook.deleted",
        json!({ "webhook": id, "url": webhook.url }),
        &addr,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives an endpoint a new secret, shown only this once (owners). The old
/// one still signs beside it until `previous_secret_until`, so receivers
/// can switch without missing a delivery.
#[utoipa::path(post, path = "/projects/{project_id}/webhooks/{webhook_id}/secret", tag = "webhooks",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("webhook_id" = WebhookId, Path)),
    responses((status = 200, description = "The endpoint, with its new secret", body = WebhookWithSecret))
)]
async fn rotate_secret(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, id)): Path<(ProjectId, WebhookId)>,
) -> Result<ApiJson<WebhookWithSecret>, ApiError> {
    webhook_for(&state, &principal, project, id).await?;
    let (webhook, secret) = state.webhooks.rotate(id).await?;
    crate::audit::record(&state, &principal, Some(project), "webhook.secret_rotated", json!({ "webhook": id }), &addr)
        .await;
    Ok(ApiJson(WebhookWithSecret { webhook: webhook.into(), secret }))
}

/// An endpoint's deliveries, newest first (owners): each message, its
/// status, attempts, last response code, time and error.
#[utoipa::path(get, path = "/projects/{project_id}/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("webhook_id" = WebhookId, Path), DeliveriesQuery),
    responses((status = 200, description = "The deliveries", body = [DeliveryResponse]))
)]
async fn list_deliveries(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((project, id)): Path<(ProjectId, WebhookId)>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<ApiJson<Vec<DeliveryResponse>>, ApiError> {
    webhook_for(&state, &principal, project, id).await?;
    let deliveries = state.store.deliveries(id, query.limit.clamp(1, 500)).await?;
    Ok(ApiJson(deliveries.into_iter().map(DeliveryResponse::from).collect()))
}

/// Sends a delivery again, now (owners): its `webhook-id` stays, so a
/// receiver that has it already can tell.
#[utoipa::path(post, path = "/projects/{project_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    tag = "webhooks", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("webhook_id" = WebhookId, Path), ("delivery_id" = DeliveryId, Path)),
    responses((status = 202, description = "Queued again", body = DeliveryResponse))
)]
async fn redeliver(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, id, delivery)): Path<(ProjectId, WebhookId, DeliveryId)>,
) -> Result<(StatusCode, ApiJson<DeliveryResponse>), ApiError> {
    webhook_for(&state, &principal, project, id).await?;
    if state.store.delivery(delivery).await?.webhook_id != id {
        return Err(ApiError::NotFound { entity: "delivery" });
    }
    let queued = state.webhooks.redeliver(delivery).await?;
    let detail = json!({ "webhook": id, "delivery": delivery });
    crate::audit::record(&state, &principal, Some(project), "webhook.redelivered", detail, &addr).await;
    Ok((StatusCode::ACCEPTED, ApiJson(queued.into())))
}
