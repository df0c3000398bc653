//! A project's service accounts and their keys (owners): accounts that
//! belong to the project rather than a person, for integrations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_core::model::Role;
use cairn_core::{ApiKeyId, ProjectId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::error::NotFoundAs;
use crate::wire::{ApiKeyResponse, CreatedApiKeyResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(create_account, list_accounts)))
        .routes(crate::v1(routes!(delete_account)))
        .routes(crate::v1(routes!(create_account_key)))
        .routes(crate::v1(routes!(revoke_account_key)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccountRequest {
    /// What it is for, e.g. `CI pipeline` (1 to 100 characters).
    pub name: String,
    /// `editor` or `viewer`.
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceAccountResponse {
    /// Its user id: the actor of what its keys do, in the audit log.
    pub id: UserId,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Its keys, newest first, revoked ones included (without secrets).
    pub keys: Vec<ApiKeyResponse>,
}

impl From<cairn_auth::ServiceAccount> for ServiceAccountResponse {
    fn from(account: cairn_auth::ServiceAccount) -> Self {
        ServiceAccountResponse {
            id: account.user.id,
            name: account.user.display_name,
            role: account.role,
            created_at: account.user.created_at,
            keys: account.keys.into_iter().map(ApiKeyResponse::from).collect(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceKeyRequest {
    /// What the key is for (1 to 100 characters).
    pub name: String,
    /// When the key stops working (RFC 3339); never if absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

/// Makes a service account of the project (owners).
#[utoipa::path(post, path = "/projects/{project_id}/service-accounts", tag = "api keys", security(("oauth2" = [])),
    params(("project_id" = ProjectId, Path)), request_body = CreateServiceAccountRequest,
    responses(
        (status = 201, description = "The service account (no keys yet)", body = ServiceAccountResponse),
        (status = 403, description = "Not an owner, or an API key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a name out of bounds, or the owner role", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn create_account(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project): Path<ProjectId>,
    ApiJson(body): ApiJson<CreateServiceAccountRequest>,
) -> Result<(StatusCode, ApiJson<ServiceAccountResponse>), ApiError> {
    let account = state.auth.create_service_account(&principal, project, &body.name, body.role, &addr).await?;
    Ok((StatusCode::CREATED, ApiJson(account.into())))
}

/// The project's service accounts with their keys (owners).
#[utoipa::path(get, path = "/projects/{project_id}/service-accounts", tag = "api keys", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses((status = 200, description = "The service accounts, oldest first", body = [ServiceAccountResponse]))
)]
async fn list_accounts(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project): Path<ProjectId>,
) -> Result<ApiJson<Vec<ServiceAccountResponse>>, ApiError> {
    let accounts = state.auth.service_accounts(&principal, project).await?;
    Ok(ApiJson(accounts.into_iter().map(ServiceAccountResponse::from).collect()))
}

/// Deletes a service account (owners): it leaves the project and its keys
/// stop working at once; the audit log keeps its name.
#[utoipa::path(delete, path = "/projects/{project_id}/service-accounts/{account_id}", tag = "api keys", security(("oauth2" = [])),
    params(("project_id" = ProjectId, Path), ("account_id" = UserId, Path)),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such service account in the project", body = Problem,
         content_type = "application/problem+json"))
)]
async fn delete_account(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, account)): Path<(ProjectId, UserId)>,
) -> Result<StatusCode, ApiError> {
    state.auth.delete_service_account(&principal, project, account, &addr).await.not_found_as("service account")?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a key for a service account, with the account's role (owners). The
/// answer holds the key itself, shown only this once.
#[utoipa::path(post, path = "/projects/{project_id}/service-accounts/{account_id}/keys", tag = "api keys", security(("oauth2" = [])),
    params(("project_id" = ProjectId, Path), ("account_id" = UserId, Path)), request_body = CreateServiceKeyRequest,
    responses(
        (status = 201, description = "The key, with its secret", body = CreatedApiKeyResponse),
        (status = 404, description = "No such service account in the project", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn create_account_key(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, account)): Path<(ProjectId, UserId)>,
    ApiJson(body): ApiJson<CreateServiceKeyRequest>,
) -> Result<(StatusCode, ApiJson<CreatedApiKeyResponse>), ApiError> {
    let issued = state
        .auth
        .create_service_key(&principal, project, account, &body.name, body.expires_at, &addr)
        .await
        .not_found_as("service account")?;
    Ok((StatusCode::CREATED, ApiJson(CreatedApiKeyResponse { key: issued.key.into(), token: issued.token })))
}

/// Revokes a service account's key (owners); it stops working at once.
#[utoipa::path(delete, path = "/projects/{project_id}/service-accounts/{account_id}/keys/{key_id}", tag = "api keys",
    security(("oauth2" = [])),
    params(("project_id" = ProjectId, Path), ("account_id" = UserId, Path), ("key_id" = ApiKeyId, Path)),
    responses((status = 200, description = "The revoked key", body = ApiKeyResponse),
        (status = 404, description = "No such service account or key", body = Problem,
         content_type = "application/problem+json"))
)]
async fn revoke_account_key(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, account, key)): Path<(ProjectId, UserId, ApiKeyId)>,
) -> Result<ApiJson<ApiKeyResponse>, ApiError> {
    let revoked = state.auth.revoke_service_key(&principal, project, account, key, &addr).await?;
    Ok(ApiJson(revoked.into()))
}
