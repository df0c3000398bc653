//! A project's webhooks (owners): endpoints subscribed to project events,
//! their secrets, and the log of their deliveries.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use cairn_auth::{Access, Principal};
use cairn_core::hooks::{Webhook, WebhookUpdate};
use cairn_core::{DeliveryId, ProjectId, WebhookId};
use cairn_webhooks::WebhookError;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::webhooks::{
    CreateWebhookRequest, DeliveriesQuery, DeliveryResponse, UpdateWebhookRequest, WebhookResponse, WebhookWithSecret,
};
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
