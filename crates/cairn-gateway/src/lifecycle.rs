//! Deleting threads, projects and accounts. A thread or project is hidden
//! as soon as the request returns (202) and removed by a background job
//! whose progress `GET /deletions/{id}` shows; an account is erased at once.
//! The routes sit beside their resources' other methods (`threads`,
//! `projects`, `accounts`, `admin`); the handlers are here.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_core::lifecycle::{Deletion, DeletionKind, DeletionStatus, SoleOwned};
use cairn_core::{DeletionId, ProjectId, ThreadId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::UserResponse;
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(get_deletion)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletionResponse {
    pub id: DeletionId,
    pub kind: DeletionKind,
    /// The thread's or the project's id.
    #[schema(value_type = String, format = Uuid)]
    pub target: uuid::Uuid,
    pub project_id: ProjectId,
    pub status: DeletionStatus,
    /// Steps done of `steps_total` (a project counts one per thread, then
    /// its sandboxes, its files and its records); 0 of 0 until a worker
    /// took the job up.
    pub steps_done: i64,
    pub steps_total: i64,
    /// How many times a worker took the job up (more than one after a
    /// restart or a failure).
    pub attempts: i64,
    /// Why the last attempt failed; it is tried again.
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<Deletion> for DeletionResponse {
    fn from(d: Deletion) -> Self {
        DeletionResponse {
            id: d.id,
            kind: d.kind,
            target: d.target,
            project_id: d.project_id,
            status: d.status,
            steps_done: d.steps_done,
            steps_total: d.steps_total,
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: d.created_at,
            finished_at: d.finished_at,
        }
    }
}

/// Deletes a thread (project owners): its messages, events, runs,
/// checkpoints, sandboxes and workspace, and what its runs remembered. It
/// is gone from every listing and link at once; the rest is removed in the
/// background. Files its runs saved stay in the library.
#[utoipa::path(delete, path = "/threads/{thread_id}", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses(
        (status = 202, description = "The deletion, under way", body = DeletionResponse),
        (status = 403, description = "Not an owner of the project", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "No such thread", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_thread(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<(StatusCode, ApiJson<DeletionResponse>), ApiError> {
    let deletion = state.auth.delete_thread(&principal, thread_id, &addr).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(deletion.into())))
}

/// Deletes a project (owners, signed in): its threads as a thread's
/// deletion does, its library (every version), memory, API keys, webhooks,
/// schedules, MCP servers and service accounts. Gone for every member at
/// once; removed in the background.
#[utoipa::path(delete, path = "/projects/{project_id}", tag = "projects", security(("oauth2" = [])),
    params(("project_id" = ProjectId, Path)),
    responses(
        (status = 202, description = "The deletion, under way", body = DeletionResponse),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_project(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
) -> Result<(StatusCode, ApiJson<DeletionResponse>), ApiError> {
    let deletion = state.auth.delete_project(&principal, project_id, &addr).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(deletion.into())))
}

/// How far a deletion got (whoever asked for it, or an administrator).
#[utoipa::path(get, path = "/deletions/{deletion_id}", tag = "projects", security(("oauth2" = []), ("api_key" = [])),
    params(("deletion_id" = DeletionId, Path)),
    responses(
        (status = 200, description = "The deletion", body = DeletionResponse),
        (status = 404, description = "No such deletion of the caller's", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn get_deletion(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(deletion_id): Path<DeletionId>,
) -> Result<ApiJson<DeletionResponse>, ApiError> {
    Ok(ApiJson(state.auth.deletion(&principal, deletion_id).await?.into()))
}

/// What becomes of a project the account owns alone.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SoleOwnedChoice {
    /// Delete it with everything in it.
    Delete,
    /// Make this member its owner.
    HandOverTo(UserId),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's password (deleting one's own account).
    #[serde(default)]
    pub password: Option<String>,
    /// For each project the account owns alone: `"delete"`, or
    /// `{"hand_over_to": "<member's id>"}`. Every such project must be named.
    #[serde(default)]
    pub projects: HashMap<ProjectId, SoleOwnedChoice>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountDeletedResponse {
    /// The account as it now is: erased and disabled.
    pub user: UserResponse,
    /// The deletions of the projects that were to go.
    pub deletions: Vec<DeletionResponse>,
    /// Projects handed over: project id to new owner.
    pub handed_over: HashMap<ProjectId, UserId>,
}

async fn delete_account(
    state: &AppState,
    principal: &cairn_auth::Principal,
    target: UserId,
    request: DeleteAccountRequest,
    addr: &str,
) -> Result<ApiJson<AccountDeletedResponse>, ApiError> {
    let choices = request
        .projects
        .into_iter()
        .map(|(project, choice)| {
            let choice = match choice {
                SoleOwnedChoice::Delete => SoleOwned::Delete,
                SoleOwnedChoice::HandOverTo(user) => SoleOwned::HandOver(user),
            };
            (project, choice)
        })
        .collect();
    let done = state.auth.delete_account(principal, target, request.password.as_deref(), &choices, addr).await?;
    Ok(ApiJson(AccountDeletedResponse {
        user: UserResponse::from(&done.user),
        deletions: done.deletions.into_iter().map(DeletionResponse::from).collect(),
        handed_over: done.handed_over.into_iter().collect(),
    }))
}

/// Deletes the caller's account, with their password: e-mail, name and
/// password erased, memberships, sessions and keys ended. What they wrote in
/// projects stays, by "Deleted user". Each project they own alone is
/// deleted or handed over, as `projects` says.
#[utoipa::path(delete, path = "/me", tag = "account", security(("oauth2" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 200, description = "The account is deleted", body = AccountDeletedResponse),
        (status = 403, description = "Wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`sole_owner`: projects owned alone were not named", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "The only administrator, or a hand-over to a non-member", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_me(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    ApiJson(request): ApiJson<DeleteAccountRequest>,
) -> Result<ApiJson<AccountDeletedResponse>, ApiError> {
    let me = principal.user.id;
    delete_account(&state, &principal, me, request, &addr).await
}

/// Deletes an account (administrators), as `DELETE /me` does; no password.
#[utoipa::path(delete, path = "/admin/users/{user_id}", tag = "admin", security(("oauth2" = [])),
    params(("user_id" = UserId, Path)),
    request_body = DeleteAccountRequest,
    responses(
        (status = 200, description = "The account is deleted", body = AccountDeletedResponse),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`sole_owner`: projects owned alone were not named", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(user_id): Path<UserId>,
    ApiJson(request): ApiJson<DeleteAccountRequest>,
) -> Result<ApiJson<AccountDeletedResponse>, ApiError> {
    delete_account(&state, &principal, user_id, request, &addr).await
}
