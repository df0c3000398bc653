//! Administration: users (the audit log is in `audit.rs`). Admins only, signed in as themselves.

use axum::extract::{Path, Query, State};
use cairn_core::UserId;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::{GlobalRole, UserResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_users)).routes(routes!(update_user, crate::lifecycle::delete_user))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UsersQuery {
    /// Continue after this user (the last id of the previous page).
    pub after: Option<UserId>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// Every account, in order of creation.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("oauth2" = [])), params(UsersQuery),
    responses(
        (status = 200, description = "A page of accounts", body = [UserResponse]),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_users(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<UsersQuery>,
) -> Result<ApiJson<Vec<UserResponse>>, ApiError> {
    let users = state.auth.users(&principal, query.after, query.limit.unwrap_or(100)).await?;
    Ok(ApiJson(users.iter().map(UserResponse::from).collect()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateUserRequest {
    /// Disable (tokens and keys stop working at once) or enable the account.
    pub disabled: Option<bool>,
    /// The global role.
    pub role: Option<GlobalRole>,
}

/// Disable or enable an account, or change its global role.
#[utoipa::path(patch, path = "/admin/users/{user_id}", tag = "admin", security(("oauth2" = [])),
    params(("user_id" = UserId, Path)),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The account", body = UserResponse),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_user(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(user_id): Path<UserId>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> Result<ApiJson<UserResponse>, ApiError> {
    principal.require_admin().map_err(ApiError::from)?;
    let mut user = None;
    if let Some(disabled) = body.disabled {
        user = Some(state.auth.set_disabled(&principal, user_id, disabled, &addr).await?);
    }
    if let Some(role) = body.role {
        user = Some(state.auth.set_admin(&principal, user_id, role == GlobalRole::Admin, &addr).await?);
    }
    let user = match user {
        Some(user) => user,
        None => state.auth.user(&principal, user_id).await?,
    };
    Ok(ApiJson(UserResponse::from(&user)))
}
