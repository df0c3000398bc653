//! Deleting threads, projects and accounts. A thread or project is hidden
//! as soon as the request returns (202) and removed by a background job
//! whose progress `GET /deletions/{id}` shows; an account is erased at once.
//! The routes sit beside their resources' other methods (`threads`,
//! `projects`, `accounts`, `admin`); the handlers are here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_core::lifecycle::SoleOwned;
use cairn_core::{DeletionId, ProjectId, ThreadId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::accounts::UserResponse;
use crate::wire::lifecycle::{AccountDeletedResponse, DeleteAccountRequest, DeletionResponse, SoleOwnedChoice};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(get_deletion)))
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
