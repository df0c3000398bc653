//! Project-scoped API keys for integrating products.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_core::ApiKeyId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::keys::CreateApiKeyRequest;
use crate::wire::keys::{ApiKeyResponse, CreatedApiKeyResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(create_key, list_keys))).routes(crate::v1(routes!(revoke_key)))
}

/// Create an API key. The answer holds the key itself, shown only this once.
#[utoipa::path(post, path = "/api-keys", tag = "api keys", security(("oauth2" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "The key, with its secret", body = CreatedApiKeyResponse),
        (status = 403, description = "A role stronger than the caller's", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "No such project, or not a member", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn create_key(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, ApiJson<CreatedApiKeyResponse>), ApiError> {
    let issued =
        state.auth.create_api_key(&principal, body.project_id, body.role, &body.name, body.expires_at, &addr).await?;
    Ok((StatusCode::CREATED, ApiJson(CreatedApiKeyResponse { key: issued.key.into(), token: issued.token })))
}

/// The keys the caller made, newest first, revoked ones included.
#[utoipa::path(get, path = "/api-keys", tag = "api keys", security(("oauth2" = [])),
    responses((status = 200, description = "The caller's keys (without secrets)", body = [ApiKeyResponse]))
)]
async fn list_keys(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<ApiJson<Vec<ApiKeyResponse>>, ApiError> {
    let keys = state.auth.api_keys(&principal).await?;
    Ok(ApiJson(keys.into_iter().map(ApiKeyResponse::from).collect()))
}

/// Revoke one of the caller's keys; it stops working at once.
#[utoipa::path(delete, path = "/api-keys/{key_id}", tag = "api keys", security(("oauth2" = [])),
    params(("key_id" = ApiKeyId, Path)),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyResponse),
        (status = 404, description = "No such key of the caller's", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn revoke_key(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(key_id): Path<ApiKeyId>,
) -> Result<ApiJson<ApiKeyResponse>, ApiError> {
    Ok(ApiJson(state.auth.revoke_api_key(&principal, key_id, &addr).await?.into()))
}
