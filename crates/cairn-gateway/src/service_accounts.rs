//! A project's service accounts and their keys (owners): accounts that
//! belong to the project rather than a person, for integrations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_core::{ApiKeyId, ProjectId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::error::NotFoundAs;
use crate::wire::keys::{ApiKeyResponse, CreatedApiKeyResponse};
use crate::wire::service_accounts::{CreateServiceAccountRequest, CreateServiceKeyRequest, ServiceAccountResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(create_account, list_accounts)))
        .routes(crate::v1(routes!(delete_account)))
        .routes(crate::v1(routes!(create_account_key)))
        .routes(crate::v1(routes!(revoke_account_key)))
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
