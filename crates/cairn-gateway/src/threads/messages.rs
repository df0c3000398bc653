//! A thread's messages: listing them, and posting one, which (by default)
//! starts the agent run that answers it. A post with an `Idempotency-Key`
//! is answered from the cache when retried.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cairn_auth::Access;
use cairn_core::model::RunStatus;
use cairn_core::{ProjectId, ThreadId, UserId};

use super::runs::agent_unavailable;
use super::{check_model, thread_for};
use crate::authn::{Authenticated, ClientAddr};
use crate::wire::threads::{MessageResponse, PostMessageRequest, PostMessageResponse, RunResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

/// The most files one message may attach.
const MAX_ATTACHMENTS: usize = 8;
/// The longest message, in characters.
pub(super) const MAX_MESSAGE_CHARS: usize = 100_000;

/// The attachments' paths, normalised, each naming a file in the project's
/// library; `attachment_not_found` names the first that does not.
async fn check_attachments(state: &AppState, project: ProjectId, paths: &[String]) -> Result<Vec<String>, ApiError> {
    if paths.len() > MAX_ATTACHMENTS {
        return Err(ApiError::Invalid {
            code: "invalid_input",
            detail: format!("a message attaches at most {MAX_ATTACHMENTS} files"),
        });
    }
    let mut checked = Vec::with_capacity(paths.len());
    for path in paths {
        // Not the file service's `invalid_path`: the problem is in this
        // message's list, and the detail says which entry.
        let normal = cairn_files::paths::check(path, false)
            .map_err(|e| ApiError::Invalid { code: "invalid_input", detail: format!("attachment `{path}`: {e}") })?;
        if state.store.file_versions(project, &normal).await?.is_empty() {
            return Err(ApiError::Invalid {
                code: "attachment_not_found",
                detail: format!("no file `{normal}` in the project's library: upload it first"),
            });
        }
        if !checked.contains(&normal) {
            checked.push(normal);
        }
    }
    Ok(checked)
}

/// A post's `Idempotency-Key`, scoped to the caller and the thread: a retry
/// within a day gets the first answer back instead of posting twice.
struct Idempotency(String);

impl Idempotency {
    const KEPT: Duration = Duration::from_secs(24 * 3600);

    fn from_headers(headers: &HeaderMap, user: UserId, thread: ThreadId) -> Option<Idempotency> {
        let key = headers.get("idempotency-key")?.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 200)?;
        Some(Idempotency(format!("idempotency:{user}:{thread}:{key}")))
    }

    /// The first post's answer, when this one is a retry.
    async fn replay(&self, state: &AppState) -> Result<Option<Response>, ApiError> {
        let Some(earlier) = state.bus.cache.get(&self.0).await? else { return Ok(None) };
        let headers = [("content-type", "application/json"), ("idempotent-replay", "true")];
        Ok(Some((StatusCode::ACCEPTED, headers, earlier).into_response()))
    }

    async fn remember(&self, state: &AppState, answer: Bytes) -> Result<(), ApiError> {
        Ok(state.bus.cache.set(&self.0, answer, Self::KEPT).await?)
    }
}

/// The thread's messages, oldest first.
#[utoipa::path(get, path = "/threads/{thread_id}/messages", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses((status = 200, description = "The messages", body = Vec<MessageResponse>))
)]
pub(super) async fn list_messages(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<ApiJson<Vec<MessageResponse>>, ApiError> {
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    Ok(ApiJson(state.store.messages(thread_id).await?.into_iter().map(MessageResponse::from).collect()))
}

/// Posts a message to a thread and (by default) starts an agent run that
/// answers it: 202 with the run, whose events stream at
/// `/threads/{id}/events`. With `wait`, answers when the run has ended. An
/// `Idempotency-Key` header makes a retried post return the first answer
/// instead of posting twice.
#[utoipa::path(post, path = "/threads/{thread_id}/messages", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Any unique string; a repeat within 24 h returns the first response")),
    request_body = PostMessageRequest,
    responses(
        (status = 202, description = "Posted; the run is queued", body = PostMessageResponse),
        (status = 200, description = "Posted and, with `wait`, the run ended", body = PostMessageResponse),
        (status = 503, description = "`agent_unavailable`: no sandboxes or no model here", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub(super) async fn post_message(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PostMessageRequest>,
) -> Result<Response, ApiError> {
    let thread = thread_for(&state, &principal, thread_id, Access::Write).await?;
    let content = request.content.trim().to_owned();
    if content.is_empty() || content.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::Invalid {
            code: "invalid_input",
            detail: format!("a message has 1 to {MAX_MESSAGE_CHARS} characters"),
        });
    }
    let idempotency = Idempotency::from_headers(&headers, principal.user.id, thread_id);
    if let Some(key) = &idempotency
        && let Some(earlier) = key.replay(&state).await?
    {
        return Ok(earlier);
    }
    let Some(runs) = state.runs.as_ref().filter(|_| !request.run || state.models.default_id().is_some()) else {
        return Err(agent_unavailable(&state, &principal));
    };
    check_model(&state, request.model.as_deref())?;
    let attachments = check_attachments(&state, thread.project_id, &request.attachments).await?;
    super::check_agent(runs, request.agent.as_deref())?;
    let options = cairn_agent::RunOptions {
        model: request.model,
        plan: request.plan,
        attachments,
        agent: request.agent,
        forked_from: None,
        origin: None,
    };
    let (message, run) = runs.post_run(thread_id, principal.user.id, content, request.run, options).await?;
    if let Some(run) = &run {
        let detail = serde_json::json!({ "run": run.id, "thread": thread_id });
        crate::audit::record(&state, &principal, Some(thread.project_id), "run.started", detail, &addr).await;
    }
    let (mut status, mut answer) = (StatusCode::ACCEPTED, None);
    let run = match (request.wait, run) {
        (true, Some(run)) => {
            let settled = runs.settle(run.id, Duration::from_secs(request.wait_secs.min(3600))).await?;
            if settled.status == RunStatus::Succeeded {
                // This run's answer, not the thread's last (another run of
                // the thread may have answered since).
                answer = state.store.run_answer(run.id).await?;
            }
            if settled.status.is_terminal() {
                status = StatusCode::OK;
            }
            Some(settled)
        }
        (_, run) => run,
    };
    let body = PostMessageResponse { message: message.into(), run: run.map(RunResponse::from), answer };
    let json = Bytes::from(serde_json::to_vec(&body).map_err(|_| ApiError::Internal)?);
    if let Some(key) = idempotency {
        key.remember(&state, json.clone()).await?;
    }
    Ok((status, [("content-type", "application/json")], json).into_response())
}
