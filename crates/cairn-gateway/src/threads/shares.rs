//! Read-only links to one run. An owner makes one (expiring, revocable);
//! whoever holds its token sees that run — the message that started it, its
//! steps, its answer — and nothing else of the project, without signing in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_agent::RunEvent;
use cairn_auth::Access;
use cairn_core::model::RunShare;
use cairn_core::{RunId, ShareId, ThreadId};
use serde_json::json;
use time::OffsetDateTime;

use super::runs::run_for;
use crate::authn::{Authenticated, ClientAddr};
use crate::wire::threads::{
    CreatedShareResponse, EventResponse, ShareResponse, ShareRunRequest, SharedRun, SharedRunResponse,
};
use crate::{ApiError, ApiJson, AppState, Problem};

/// How long a link lasts unless asked otherwise: a week.
const DEFAULT_HOURS: u32 = 24 * 7;
/// The longest a link may last: 90 days.
const MAX_HOURS: u32 = 24 * 90;
/// Events a shared run may show (a longer run shows its first ones).
const MAX_EVENTS: usize = 20_000;

/// Makes a read-only link to the run (owners).
#[utoipa::path(post, path = "/runs/{run_id}/shares", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)), request_body = ShareRunRequest,
    responses(
        (status = 201, description = "The link, with its token (shown once)", body = CreatedShareResponse),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input` (an expiry out of range)", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub(super) async fn share_run(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
    ApiJson(request): ApiJson<ShareRunRequest>,
) -> Result<(StatusCode, ApiJson<CreatedShareResponse>), ApiError> {
    let (run, project) = run_for(&state, &principal, run_id, Access::Manage).await?;
    let hours = request.expires_in_hours.unwrap_or(DEFAULT_HOURS);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(ApiError::Invalid {
            code: "invalid_input",
            detail: format!("a link lasts 1 to {MAX_HOURS} hours"),
        });
    }
    let (token, digest) = cairn_auth::link_secret();
    let expires_at = OffsetDateTime::now_utc() + time::Duration::hours(i64::from(hours));
    let share = state.store.create_share(run.id, principal.user.id, digest, expires_at).await?;
    let detail = json!({ "run": run.id, "share": share.id, "expires_at": expires_at.unix_timestamp() });
    crate::audit::record(&state, &principal, Some(project), "run.shared", detail, &addr).await;
    let path = format!("/#/shared/{token}");
    Ok((StatusCode::CREATED, ApiJson(CreatedShareResponse { share: share.into(), token, path })))
}

/// The run's links, newest first, revoked and expired ones too (owners).
#[utoipa::path(get, path = "/runs/{run_id}/shares", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)),
    responses(
        (status = 200, description = "The links (without their tokens)", body = Vec<ShareResponse>),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn list_shares(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
) -> Result<ApiJson<Vec<ShareResponse>>, ApiError> {
    run_for(&state, &principal, run_id, Access::Manage).await?;
    Ok(ApiJson(state.store.shares(run_id).await?.into_iter().map(ShareResponse::from).collect()))
}

/// Revokes a link: from now on it opens nothing (owners).
#[utoipa::path(delete, path = "/runs/{run_id}/shares/{share_id}", tag = "threads",
    security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path), ("share_id" = ShareId, Path)),
    responses(
        (status = 200, description = "The link, revoked", body = ShareResponse),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such link on this run", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn revoke_share(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((run_id, share_id)): Path<(RunId, ShareId)>,
) -> Result<ApiJson<ShareResponse>, ApiError> {
    let (_, project) = run_for(&state, &principal, run_id, Access::Manage).await?;
    let share = state.store.revoke_share(run_id, share_id).await?;
    let detail = json!({ "run": run_id, "share": share_id });
    crate::audit::record(&state, &principal, Some(project), "run.share_revoked", detail, &addr).await;
    Ok(ApiJson(share.into()))
}

/// The run a link shows, without signing in.
#[utoipa::path(get, path = "/shared/{token}", tag = "threads",
    params(("token" = String, Path, description = "The link's secret")),
    responses(
        (status = 200, description = "The run", body = SharedRunResponse),
        (status = 404, description = "`share_not_found` (no such link), `share_closed` (revoked or expired)",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn shared_run(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<ApiJson<SharedRunResponse>, ApiError> {
    let share = open_share(&state, &token).await?;
    let run = state.store.run(share.run_id).await?;
    let thread = state.store.thread(run.thread_id).await?;
    let events = run_events(&state, thread.id, run.id).await?;
    Ok(ApiJson(SharedRunResponse {
        thread_id: thread.id,
        thread_title: thread.title,
        run: SharedRun {
            id: run.id,
            status: run.status.as_str().to_owned(),
            error: run.error,
            created_at: run.created_at,
        },
        events,
        expires_at: share.expires_at,
    }))
}

/// The event without the member it names (a message's author, a model
/// call's user): a link shows the work, not who is in the project.
fn anonymous(mut response: EventResponse) -> EventResponse {
    match &mut response.event {
        RunEvent::MessageCreated(message) => message.author = None,
        RunEvent::Usage(usage) => usage.user = cairn_core::UserId(uuid::Uuid::nil()),
        _ => {}
    }
    response
}

/// The open link a token names.
pub(crate) async fn open_share(state: &AppState, token: &str) -> Result<RunShare, ApiError> {
    let missing = || ApiError::Missing { code: "share_not_found", detail: "no run is shared at this link".into() };
    if token.len() > 128 {
        return Err(missing());
    }
    let share = match state.store.share_by_token(&cairn_auth::link_digest(token)).await {
        Err(cairn_core::Error::NotFound { .. }) => return Err(missing()),
        other => other?,
    };
    if !share.is_open(OffsetDateTime::now_utc()) {
        return Err(ApiError::Missing {
            code: "share_closed",
            detail: "this link was revoked or has expired; ask whoever shared it for a new one".into(),
        });
    }
    Ok(share)
}

/// The run's events, with the messages from the one that started it to its
/// last event: the log is read in pages, from the start.
async fn run_events(state: &AppState, thread: ThreadId, run: RunId) -> Result<Vec<EventResponse>, ApiError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = state.store.events_after(thread, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        all.extend(page);
    }
    let Some(first) = all.iter().position(|e| e.run_id == Some(run)) else { return Ok(Vec::new()) };
    let last = all.iter().rposition(|e| e.run_id == Some(run)).unwrap_or(first);
    // The member's message that started it comes just before its first event.
    let message = |e: &cairn_core::model::Event| e.kind == RunEvent::MESSAGE_CREATED;
    let start = all[..first].iter().rposition(message).unwrap_or(first);
    let chosen = all
        .into_iter()
        .enumerate()
        .filter(|(i, e)| (start..=last).contains(i) && (e.run_id == Some(run) || message(e)))
        .filter_map(|(_, e)| EventResponse::read(e))
        .map(anonymous)
        .take(MAX_EVENTS)
        .collect();
    Ok(chosen)
}
