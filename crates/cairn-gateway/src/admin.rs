//! Administration: users (the audit log is in `audit.rs`). Admins only, signed in as themselves.

use axum::extract::{Path, Query, State};
use cairn_core::UserId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::accounts::{GlobalRole, UserResponse};
use crate::wire::admin::{SandboxHostResponse, SandboxSummary, UpdateUserRequest, UsersQuery};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(list_users)))
        .routes(crate::v1(routes!(update_user, crate::lifecycle::delete_user)))
        .routes(crate::v1(routes!(list_sandboxes)))
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

/// The sandbox hosts and the sandboxes on each (administrators): the
/// registered hosts of a cluster with their heartbeats, or, in one process,
/// its own sandboxes.
#[utoipa::path(get, path = "/admin/sandboxes", tag = "admin", security(("oauth2" = [])),
    responses(
        (status = 200, description = "The hosts, each with its sandboxes", body = [SandboxHostResponse]),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_sandboxes(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<ApiJson<Vec<SandboxHostResponse>>, ApiError> {
    principal.require_admin().map_err(ApiError::from)?;
    let now = time::OffsetDateTime::now_utc();
    // A host is taken for dead after three missed heartbeats, as placement judges it.
    let stale = time::Duration::seconds(i64::try_from(state.config.sandbox.heartbeat_secs * 3).unwrap_or(i64::MAX));
    let placements = state.store.placements(None).await?;
    let mut hosts: Vec<SandboxHostResponse> = state
        .store
        .sandbox_hosts()
        .await?
        .into_iter()
        .map(|host| SandboxHostResponse {
            live: now - host.heartbeat_at < stale,
            sandboxes: placements
                .iter()
                .filter(|p| p.host == host.url)
                .map(|p| SandboxSummary {
                    id: p.sandbox,
                    owner: p.owner,
                    thread: p.thread,
                    running: p.running,
                    busy: p.busy,
                    active_at: p.active_at,
                })
                .collect(),
            host: host.url,
            capacity: Some(host.capacity),
            draining: host.draining,
            heartbeat_at: Some(host.heartbeat_at),
        })
        .collect();
    // In one process (no registered hosts), this process's own sandboxes.
    if hosts.is_empty()
        && let Some(tools) = &state.tools
    {
        let local = tools.services.sandboxes.list(None).await?;
        hosts.push(SandboxHostResponse {
            host: "local".into(),
            capacity: None,
            live: true,
            draining: false,
            heartbeat_at: None,
            sandboxes: local
                .into_iter()
                .map(|s| SandboxSummary {
                    id: s.id,
                    owner: s.owner,
                    thread: s.thread,
                    running: s.state == cairn_core::sandbox::SandboxState::Running,
                    busy: s.busy,
                    active_at: s.last_active_at,
                })
                .collect(),
        });
    }
    Ok(ApiJson(hosts))
}
