//! Threads, their messages and the agent's runs, and the thread's live
//! event stream (server-sent events that resume after the last event id).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cairn_agent::RunEvent;
use cairn_agent::events::UsageRecorded;
use cairn_auth::{Access, Principal};
use cairn_core::model::{Event, Message, NewThread, Run, Thread};
use cairn_core::{MessageId, ProjectId, RunId, ThreadId, UserId};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::Authenticated;
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_thread, list_threads))
        .routes(routes!(get_thread, rename_thread))
        .routes(routes!(crate::presence::typing))
        .routes(routes!(post_message, list_messages))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
        .routes(routes!(resume_run))
        .routes(routes!(edit_plan))
        .routes(routes!(events))
        .routes(routes!(events_socket))
        .routes(routes!(events_ticket))
        .routes(routes!(thread_runs))
        .routes(routes!(fork_run))
        .routes(routes!(project_usage))
        .routes(routes!(my_usage))
}

/// Events of a thread read at once, at most (for the summaries below).
const SUMMARY_EVENTS: i64 = 1_000_000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThreadResponse {
    pub id: ThreadId,
    pub project_id: ProjectId,
    pub title: String,
    pub created_by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The newest event's sequence number (0: none yet).
    pub last_event_seq: i64,
    /// The model its runs use (`provider/model`); `null`: the deployment's default.
    pub model: Option<String>,
}

impl From<Thread> for ThreadResponse {
    fn from(t: Thread) -> Self {
        ThreadResponse {
            id: t.id,
            project_id: t.project_id,
            title: t.title,
            created_by: t.created_by,
            created_at: t.created_at,
            last_event_seq: t.last_event_seq,
            model: t.model,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageResponse {
    pub id: MessageId,
    pub thread_id: ThreadId,
    /// `user`, `assistant` or `system`.
    pub role: String,
    pub author: Option<UserId>,
    pub content: String,
    /// Library files attached to it (paths in the thread's project).
    pub attachments: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<Message> for MessageResponse {
    fn from(m: Message) -> Self {
        MessageResponse {
            id: m.id,
            thread_id: m.thread_id,
            role: m.role.as_str().to_owned(),
            author: m.author,
            content: m.content,
            attachments: m.attachments,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunResponse {
    pub id: RunId,
    pub thread_id: ThreadId,
    /// `queued`, `running`, `waiting` (for an answer), `succeeded`, `failed`, `cancelled`.
    pub status: String,
    pub created_by: UserId,
    /// Why the run failed, in words a person can act on.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Run> for RunResponse {
    fn from(r: Run) -> Self {
        RunResponse {
            id: r.id,
            thread_id: r.thread_id,
            status: r.status.as_str().to_owned(),
            created_by: r.created_by,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One event of a thread's log: its number, its run, and the event itself
/// (`kind` and a `payload` whose fields each kind defines, see `RunEvent`).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventResponse {
    /// Consecutive per thread: resume with `after` (or `Last-Event-ID`) set to the last one seen.
    pub seq: i64,
    pub run_id: Option<RunId>,
    #[serde(flatten)]
    pub event: RunEvent,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl EventResponse {
    /// The stored event, typed; `None` (logged) for one this version cannot
    /// read, which is left out rather than sent half-understood.
    pub(crate) fn read(e: Event) -> Option<EventResponse> {
        match RunEvent::decode(&e.kind, e.payload, e.schema_version) {
            Ok(event) => Some(EventResponse { seq: e.seq, run_id: e.run_id, event, created_at: e.created_at }),
            Err(error) => {
                tracing::warn!(%error, thread = %e.thread_id, seq = e.seq, kind = %e.kind, "an event could not be read");
                None
            }
        }
    }
}

/// The usage events among `events`.
fn usage_of(events: Vec<Event>) -> impl Iterator<Item = UsageRecorded> {
    events.into_iter().filter(|e| e.kind == "usage").filter_map(|e| match EventResponse::read(e)?.event {
        RunEvent::Usage(usage) => Some(usage),
        _ => None,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewThreadRequest {
    #[serde(default)]
    pub title: String,
    /// The model the thread's runs use (`provider/model`, see `GET /models`).
    #[serde(default)]
    pub model: Option<String>,
}

/// Starts a thread in a project (editors and owners).
#[utoipa::path(post, path = "/projects/{project_id}/threads", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)), request_body = NewThreadRequest,
    responses((status = 201, description = "The thread", body = ThreadResponse))
)]
async fn create_thread(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    ApiJson(request): ApiJson<NewThreadRequest>,
) -> Result<(StatusCode, ApiJson<ThreadResponse>), ApiError> {
    state.auth.authorize(&principal, project_id, Access::Write).await?;
    let title = request.title.trim();
    if title.chars().count() > 200 {
        return Err(ApiError::Invalid {
            code: "invalid_input",
            detail: "the title is longer than 200 characters".into(),
        });
    }
    let title = if title.is_empty() { "New thread".to_owned() } else { title.to_owned() };
    check_model(&state, request.model.as_deref())?;
    let thread = state
        .store
        .create_thread(NewThread { project_id, title, created_by: principal.user.id, model: request.model })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(thread.into())))
}

/// The project's threads.
#[utoipa::path(get, path = "/projects/{project_id}/threads", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses((status = 200, description = "The threads", body = Vec<ThreadResponse>))
)]
async fn list_threads(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
) -> Result<ApiJson<Vec<ThreadResponse>>, ApiError> {
    state.auth.authorize(&principal, project_id, Access::Read).await?;
    Ok(ApiJson(state.store.threads(project_id).await?.into_iter().map(ThreadResponse::from).collect()))
}

/// The thread, if the caller may see its project.
pub(crate) async fn thread_for(
    state: &AppState,
    principal: &Principal,
    id: ThreadId,
    access: Access,
) -> Result<Thread, ApiError> {
    let thread = state.store.thread(id).await?;
    state.auth.authorize(principal, thread.project_id, access).await.map_err(|error| match error {
        // A thread of a project the caller is not in does not exist for them.
        cairn_auth::Error::Backend(cairn_core::Error::NotFound { .. }) => ApiError::NotFound { entity: "thread" },
        other => other.into(),
    })?;
    Ok(thread)
}

#[utoipa::path(get, path = "/threads/{thread_id}", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses((status = 200, description = "The thread", body = ThreadResponse),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"))
)]
async fn get_thread(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<ApiJson<ThreadResponse>, ApiError> {
    Ok(ApiJson(thread_for(&state, &principal, thread_id, Access::Read).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameThreadRequest {
    /// 1 to 200 characters.
    pub title: String,
}

/// Renames the thread (editors and owners).
#[utoipa::path(patch, path = "/threads/{thread_id}", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)), request_body = RenameThreadRequest,
    responses((status = 200, description = "The thread", body = ThreadResponse),
        (status = 403, description = "A viewer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`", body = Problem, content_type = "application/problem+json"))
)]
async fn rename_thread(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
    ApiJson(request): ApiJson<RenameThreadRequest>,
) -> Result<ApiJson<ThreadResponse>, ApiError> {
    thread_for(&state, &principal, thread_id, Access::Write).await?;
    let title = request.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::Invalid { code: "invalid_input", detail: "a title has 1 to 200 characters".into() });
    }
    Ok(ApiJson(state.store.rename_thread(thread_id, title.to_owned()).await?.into()))
}

/// The thread's messages, oldest first.
#[utoipa::path(get, path = "/threads/{thread_id}/messages", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses((status = 200, description = "The messages", body = Vec<MessageResponse>))
)]
async fn list_messages(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<ApiJson<Vec<MessageResponse>>, ApiError> {
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    Ok(ApiJson(state.store.messages(thread_id).await?.into_iter().map(MessageResponse::from).collect()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessageRequest {
    pub content: String,
    /// Start an agent run that answers it (default `true`). Without, the
    /// message reaches a run already going at its next step.
    #[serde(default = "yes")]
    pub run: bool,
    /// Answer only when the run has ended (or waits for a person), up to
    /// `wait_secs` seconds.
    #[serde(default)]
    pub wait: bool,
    #[serde(default = "default_wait")]
    pub wait_secs: u64,
    /// The model for the run (`provider/model`, see `GET /models`); the
    /// deployment's default when left out.
    #[serde(default)]
    pub model: Option<String>,
    /// Plan first: the run breaks the task into a plan whose tasks
    /// sub-agents do (see `GET /agents`), then answers from their results.
    #[serde(default)]
    pub plan: bool,
    /// Files in the project's library to attach (at most 8 paths, e.g. an
    /// upload's `uploads/chart.png`): the agent is told of each, and a
    /// model that sees is shown the images among them.
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// The most files one message may attach.
const MAX_ATTACHMENTS: usize = 8;

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

fn yes() -> bool {
    true
}

fn default_wait() -> u64 {
    300
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostMessageResponse {
    #[schema(value_type = Object)]
    pub message: Value,
    #[schema(value_type = Option<Object>)]
    pub run: Option<Value>,
    /// With `wait`: the agent's answer, when the run succeeded.
    pub answer: Option<String>,
}

/// Refuses a model that is not configured.
pub(crate) fn check_model(state: &AppState, model: Option<&str>) -> Result<(), ApiError> {
    match model {
        Some(model) if state.models.get(Some(model)).is_err() => Err(ApiError::Invalid {
            code: "unknown_model",
            detail: format!("no model `{model}` is configured; GET /api/v1/models lists them"),
        }),
        _ => Ok(()),
    }
}

/// Why no run can start, in words for who asked: an administrator learns
/// how to connect a model, a member whom to ask.
fn agent_unavailable(state: &AppState, principal: &Principal) -> ApiError {
    let detail = match (state.models.default_id().is_some(), principal.user.is_admin) {
        (false, true) => {
            "no language model is connected yet: start Cairn with OPENAI_API_KEY or ANTHROPIC_API_KEY \
                          set, run Ollama on this machine, or add providers to llm.providers (docs/models.md)"
        }
        (false, false) => "no language model is connected yet: ask an administrator to connect a model",
        (true, _) => {
            "the agent cannot run on this server: its sandboxes are not available (bubblewrap is missing \
                      or could not start); ask an administrator"
        }
    };
    ApiError::AgentUnavailable { detail: detail.into() }
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
async fn post_message(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PostMessageRequest>,
) -> Result<Response, ApiError> {
    let thread = thread_for(&state, &principal, thread_id, Access::Write).await?;
    let content = request.content.trim().to_owned();
    if content.is_empty() || content.chars().count() > 100_000 {
        return Err(ApiError::Invalid { code: "invalid_input", detail: "a message has 1 to 100000 characters".into() });
    }
    let idempotency = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .map(|k| format!("idempotency:{}:{thread_id}:{k}", principal.user.id));
    if let Some(key) = &idempotency
        && let Some(earlier) = state.bus.cache.get(key).await?
    {
        let mut response = (StatusCode::ACCEPTED, earlier).into_response();
        response.headers_mut().insert("content-type", "application/json".parse().map_err(|_| ApiError::Internal)?);
        response.headers_mut().insert("idempotent-replay", "true".parse().map_err(|_| ApiError::Internal)?);
        return Ok(response);
    }
    let Some(runs) = state.runs.as_ref().filter(|_| !request.run || state.models.default_id().is_some()) else {
        return Err(agent_unavailable(&state, &principal));
    };
    check_model(&state, request.model.as_deref())?;
    let attachments = check_attachments(&state, thread.project_id, &request.attachments).await?;
    let options = cairn_agent::RunOptions { model: request.model, plan: request.plan, attachments };
    let (message, run) =
        runs.post_run(thread_id, principal.user.id, content, request.run, options).await.map_err(run_error)?;
    let mut body = PostMessageResponse {
        message: serde_json::to_value(MessageResponse::from(message)).unwrap_or_default(),
        run: run.clone().map(|r| serde_json::to_value(RunResponse::from(r)).unwrap_or_default()),
        answer: None,
    };
    let mut status = StatusCode::ACCEPTED;
    if let (true, Some(run)) = (request.wait, &run) {
        let settled = runs.settle(run.id, Duration::from_secs(request.wait_secs.min(3600))).await.map_err(run_error)?;
        if settled.status == cairn_core::model::RunStatus::Succeeded {
            let messages = state.store.messages(thread_id).await?;
            body.answer = messages
                .into_iter()
                .rev()
                .find(|m| m.role == cairn_core::model::MessageRole::Assistant)
                .map(|m| m.content);
        }
        if settled.status.is_terminal() {
            status = StatusCode::OK;
        }
        body.run = Some(serde_json::to_value(RunResponse::from(settled)).unwrap_or_default());
    }
    let json = serde_json::to_vec(&body).map_err(|_| ApiError::Internal)?;
    if let Some(key) = idempotency {
        state.bus.cache.set(&key, Bytes::from(json.clone()), Duration::from_secs(24 * 3600)).await?;
    }
    let mut response = (status, json).into_response();
    response.headers_mut().insert("content-type", "application/json".parse().map_err(|_| ApiError::Internal)?);
    Ok(response)
}

fn run_error(error: cairn_agent::RunError) -> ApiError {
    match error {
        cairn_agent::RunError::Store(error) => error.into(),
        cairn_agent::RunError::Conflict(detail) => ApiError::Invalid { code: "run_state", detail },
        cairn_agent::RunError::BudgetSpent(detail) => ApiError::Invalid { code: "budget_spent", detail },
    }
}

/// The run service, for a caller who may act on the run (editors and owners).
async fn runs_for_write<'a>(
    state: &'a AppState,
    principal: &Principal,
    id: RunId,
) -> Result<&'a cairn_agent::Runs, ApiError> {
    run_for(state, principal, id, Access::Write).await?;
    state.runs.as_ref().ok_or_else(|| agent_unavailable(state, principal))
}

async fn run_for(state: &AppState, principal: &Principal, id: RunId, access: Access) -> Result<Run, ApiError> {
    let run = state.store.run(id).await?;
    thread_for(state, principal, run.thread_id, access).await.map_err(|error| match error {
        ApiError::NotFound { .. } => ApiError::NotFound { entity: "run" },
        other => other,
    })?;
    Ok(run)
}

#[utoipa::path(get, path = "/runs/{run_id}", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)),
    responses((status = 200, description = "The run", body = RunResponse))
)]
async fn get_run(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
) -> Result<ApiJson<RunResponse>, ApiError> {
    Ok(ApiJson(run_for(&state, &principal, run_id, Access::Read).await?.into()))
}

/// Cancels a run: at once when queued or waiting, between two steps when running.
#[utoipa::path(post, path = "/runs/{run_id}/cancel", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)),
    responses((status = 200, description = "The run", body = RunResponse),
        (status = 422, description = "`run_state`: the run already ended", body = Problem, content_type = "application/problem+json"))
)]
async fn cancel_run(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
) -> Result<ApiJson<RunResponse>, ApiError> {
    let runs = runs_for_write(&state, &principal, run_id).await?;
    Ok(ApiJson(runs.cancel(run_id).await.map_err(run_error)?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// The answer to the question the run asked.
    pub answer: String,
}

/// Answers the question a waiting run asked; the run goes on.
#[utoipa::path(post, path = "/runs/{run_id}/resume", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)), request_body = ResumeRequest,
    responses((status = 200, description = "The run, queued again", body = RunResponse),
        (status = 422, description = "`run_state`: the run is not waiting", body = Problem, content_type = "application/problem+json"))
)]
async fn resume_run(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
    ApiJson(request): ApiJson<ResumeRequest>,
) -> Result<ApiJson<RunResponse>, ApiError> {
    let runs = runs_for_write(&state, &principal, run_id).await?;
    Ok(ApiJson(runs.resume(run_id, principal.user.id, request.answer).await.map_err(run_error)?.into()))
}

/// A task of a plan.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanTask {
    /// Short and unique in the plan (`t1`).
    pub id: String,
    pub title: String,
    pub goal: String,
    /// How the supervisor tells it is done.
    pub done_when: String,
    /// Ids of the tasks whose results it needs.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The sub-agent that does it (see `GET /agents`).
    pub agent: String,
    /// `pending`, `running`, `done` or `failed` (ignored in an edit).
    #[serde(default)]
    pub status: Option<String>,
    /// The result, or why it failed (ignored in an edit).
    #[serde(default)]
    pub result: Option<String>,
}

/// A run's plan.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanBody {
    pub tasks: Vec<PlanTask>,
}

impl PlanBody {
    fn into_plan(self) -> cairn_agent::plan::Plan {
        use cairn_agent::plan::{Plan, Task};
        let tasks = self
            .tasks
            .into_iter()
            .map(|t| Task {
                id: t.id,
                title: t.title,
                goal: t.goal,
                done_when: t.done_when,
                depends_on: t.depends_on,
                agent: t.agent,
                status: Default::default(),
                result: None,
                attempts: 0,
            })
            .collect();
        Plan { tasks, version: 0 }
    }

    fn from_plan(plan: cairn_agent::plan::Plan) -> PlanBody {
        let tasks = plan
            .tasks
            .into_iter()
            .map(|t| PlanTask {
                status: serde_json::to_value(t.status).ok().and_then(|v| v.as_str().map(str::to_owned)),
                id: t.id,
                title: t.title,
                goal: t.goal,
                done_when: t.done_when,
                depends_on: t.depends_on,
                agent: t.agent,
                result: t.result,
            })
            .collect();
        PlanBody { tasks }
    }
}

/// Replaces the plan of a run that waits for its plan's approval (editors
/// and owners); then answer the run (`/resume`, "yes") to start it.
#[utoipa::path(put, path = "/runs/{run_id}/plan", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)), request_body = PlanBody,
    responses((status = 200, description = "The plan as it now stands", body = PlanBody),
        (status = 422, description = "`run_state`: the run does not wait for a plan's approval, or the plan is not \
         valid (unknown agent, unknown dependency, a cycle, 1 to 12 tasks)", body = Problem,
         content_type = "application/problem+json"))
)]
async fn edit_plan(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
    ApiJson(request): ApiJson<PlanBody>,
) -> Result<ApiJson<PlanBody>, ApiError> {
    let runs = runs_for_write(&state, &principal, run_id).await?;
    let plan = runs.edit_plan(run_id, request.into_plan(), principal.user.id).await.map_err(run_error)?;
    Ok(ApiJson(PlanBody::from_plan(plan)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Events after this sequence number (0: from the start). `Last-Event-ID` wins when sent.
    #[serde(default)]
    after: i64,
}

/// The thread's events after `last`, then live ones, each exactly once and
/// in the log's order: subscribed before the backlog is read, and for every
/// live event newer than what was sent, the log is read again from there.
async fn live_events(
    state: &AppState,
    thread_id: ThreadId,
    last: i64,
) -> Result<futures::stream::BoxStream<'static, EventResponse>, ApiError> {
    let live = state.bus.pubsub.subscribe(&cairn_agent::runs::topic(thread_id)).await?;
    let store = state.store.clone();
    let stream = futures::stream::unfold(
        (live, last, std::collections::VecDeque::new()),
        move |(mut live, mut last, mut queue)| {
            let store = store.clone();
            async move {
                loop {
                    if let Some(event) = queue.pop_front() {
                        let event: Event = event;
                        last = event.seq;
                        match EventResponse::read(event) {
                            Some(event) => return Some((event, (live, last, queue))),
                            None => continue,
                        }
                    }
                    if let Ok(missed) = store.events_after(thread_id, last, 500).await
                        && !missed.is_empty()
                    {
                        queue.extend(missed);
                        continue;
                    }
                    let published = live.next().await?;
                    let seq = serde_json::from_slice::<Value>(&published).ok().and_then(|v| v["seq"].as_i64());
                    if seq.is_some_and(|s| s <= last) {
                        continue; // seen already
                    }
                }
            }
        },
    );
    Ok(stream.boxed())
}

fn sse_event(event: &EventResponse) -> SseEvent {
    SseEvent::default()
        .id(event.seq.to_string())
        .event(event.event.kind())
        .data(serde_json::to_string(event).unwrap_or_default())
}

/// The thread's events after `after`: as a JSON list, or — with `Accept:
/// text/event-stream` — as server-sent events that keep coming live. A
/// client that reconnects with `Last-Event-ID` gets exactly the events it
/// missed, once, in order. The stream also carries `presence` events (a
/// `PresenceSignal`, without an id): who has the thread open, who left, who
/// is typing; holding the stream open makes the caller present.
#[utoipa::path(get, path = "/threads/{thread_id}/events", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path), EventsQuery),
    responses((status = 200, description = "The events (JSON, or `text/event-stream`)", body = Vec<EventResponse>))
)]
async fn events(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(query.after);
    let wants_stream =
        headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if !wants_stream {
        let events = state.store.events_after(thread_id, last_seen, 1000).await?;
        return Ok(ApiJson(events.into_iter().filter_map(EventResponse::read).collect::<Vec<_>>()).into_response());
    }
    let events = live_events(&state, thread_id, last_seen).await?.map(|event| sse_event(&event));
    let presence = crate::presence::signals(&state.bus, thread_id, &principal.user)
        .await?
        .map(|signal| SseEvent::default().event("presence").data(serde_json::to_string(&signal).unwrap_or_default()));
    let stream = futures::stream::select(events, presence).map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SocketQuery {
    /// Events after this sequence number (0: from the start).
    #[serde(default)]
    after: i64,
    /// A ticket from `POST /threads/{thread_id}/events/ticket`, for browsers
    /// (which cannot send `Authorization` on a WebSocket). Other clients may
    /// send their bearer credential instead.
    ticket: Option<String>,
}

/// What a ticket for a thread's event socket is good for.
fn socket_scope(thread_id: ThreadId) -> String {
    format!("thread:{thread_id}:events")
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketResponse {
    /// Send it as `?ticket=` when opening the thread's event WebSocket.
    pub ticket: String,
    /// Seconds it stays usable; it works once.
    pub expires_in: u64,
}

/// A single-use ticket, valid for a few seconds, that opens this thread's
/// event WebSocket (`/threads/{thread_id}/events/ws?ticket=…`) as the
/// caller. Browsers cannot put a credential on a WebSocket; the ticket keeps
/// the access token out of the URL.
#[utoipa::path(post, path = "/threads/{thread_id}/events/ticket", tag = "threads",
    security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses(
        (status = 200, description = "The ticket", body = TicketResponse),
        (status = 404, description = "No such thread (or not the caller's)", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn events_ticket(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<ApiJson<TicketResponse>, ApiError> {
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    let ticket = state.auth.issue_ticket(&principal, &socket_scope(thread_id)).await?;
    Ok(ApiJson(TicketResponse { ticket, expires_in: state.auth.ticket_ttl().as_secs() }))
}

/// The thread's events over a WebSocket: one JSON `EventResponse` per text
/// message, the backlog after `after` first, then live, each exactly once.
/// The client may close at any time and reconnect with the last `seq`.
/// Browsers authenticate with `?ticket=` and must open it from the web
/// app's own origin (or one of `server.cors_origins`); other clients may
/// send `Authorization: Bearer`.
#[utoipa::path(get, path = "/threads/{thread_id}/events/ws", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path), SocketQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "`unauthenticated`, or `invalid_token`: the ticket is unknown, expired or used",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: opened from a page of another origin", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn events_socket(
    State(state): State<AppState>,
    caller: Option<Authenticated>,
    Path(thread_id): Path<ThreadId>,
    Query(query): Query<SocketQuery>,
    headers: HeaderMap,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<Response, ApiError> {
    use axum::extract::ws::Message as WsMessage;
    // A page of another site must not ride on a member's credentials.
    if headers.contains_key(axum::http::header::ORIGIN) {
        crate::security::require_same_origin(&state.config, &headers)?;
    }
    let principal = match (caller, query.ticket) {
        (_, Some(ticket)) => state.auth.redeem_ticket(&ticket, &socket_scope(thread_id)).await?,
        (Some(Authenticated(principal)), None) => principal,
        (None, None) => {
            return Err(ApiError::Unauthenticated {
                code: "unauthenticated",
                detail: "open the socket with `?ticket=` (POST /threads/{id}/events/ticket) or a bearer credential"
                    .to_owned(),
            });
        }
    };
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    let mut events = live_events(&state, thread_id, query.after).await?;
    Ok(upgrade.on_upgrade(move |mut socket| async move {
        loop {
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else { return };
                    let text = serde_json::to_string(&event).unwrap_or_default();
                    if socket.send(WsMessage::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                incoming = socket.recv() => match incoming {
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                    _ => {} // pings are answered by the library; other messages are ignored
                }
            }
        }
    }))
}

/// The thread's runs, oldest first.
#[utoipa::path(get, path = "/threads/{thread_id}/runs", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses((status = 200, description = "The runs", body = Vec<RunResponse>))
)]
async fn thread_runs(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<ApiJson<Vec<RunResponse>>, ApiError> {
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    let mut ids: Vec<RunId> = Vec::new();
    for event in state.store.events_after(thread_id, 0, SUMMARY_EVENTS).await? {
        if let Some(id) = event.run_id.filter(|id| !ids.contains(id)) {
            ids.push(id);
        }
    }
    let mut runs = Vec::with_capacity(ids.len());
    for id in ids {
        runs.push(state.store.run(id).await?.into());
    }
    Ok(ApiJson(runs))
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct UsageTotals {
    pub model_calls: u64,
    /// Prompt tokens neither read from nor written to a provider's cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens read from a provider's cache (at its lower price).
    pub cache_read_tokens: u64,
    /// Prompt tokens written to a provider's cache.
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
    /// What the same calls would have cost without prompt caching, less
    /// what they cost.
    pub saved_usd: f64,
}

impl UsageTotals {
    fn add(&mut self, usage: &UsageRecorded) {
        self.model_calls += 1;
        self.input_tokens += usage.tokens.input_tokens;
        self.output_tokens += usage.tokens.output_tokens;
        self.cache_read_tokens += usage.tokens.cache_read_tokens;
        self.cache_write_tokens += usage.tokens.cache_write_tokens;
        self.cost_usd += usage.cost_usd;
        self.saved_usd += usage.saved_usd;
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserUsage {
    pub user: UserId,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectUsage {
    pub project_id: ProjectId,
    pub total: UsageTotals,
    /// By the user whose runs made the calls.
    pub by_user: Vec<UserUsage>,
}

/// What the project's agent runs used: model calls, tokens and cost, in
/// total and per user.
#[utoipa::path(get, path = "/projects/{project_id}/usage", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses((status = 200, description = "The project's usage", body = ProjectUsage))
)]
async fn project_usage(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
) -> Result<ApiJson<ProjectUsage>, ApiError> {
    state.auth.authorize(&principal, project_id, Access::Read).await?;
    let mut total = UsageTotals::default();
    let mut by_user: Vec<UserUsage> = Vec::new();
    for thread in state.store.threads(project_id).await? {
        for usage in usage_of(state.store.events_after(thread.id, 0, SUMMARY_EVENTS).await?) {
            total.add(&usage);
            match by_user.iter_mut().find(|u| u.user == usage.user) {
                Some(entry) => entry.totals.add(&usage),
                None => {
                    let mut totals = UsageTotals::default();
                    totals.add(&usage);
                    by_user.push(UserUsage { user: usage.user, totals });
                }
            }
        }
    }
    Ok(ApiJson(ProjectUsage { project_id, total, by_user }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkRequest {
    /// The step (its checkpoint) to go on from; steps count from 1.
    pub step: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ForkResponse {
    pub thread: ThreadResponse,
    pub run: RunResponse,
}

/// Forks a run after one of its steps into a new thread of the same
/// project: the messages until then are copied and a new run goes on from
/// that step's checkpoint, on its own.
#[utoipa::path(post, path = "/runs/{run_id}/fork", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)), request_body = ForkRequest,
    responses((status = 201, description = "The new thread and its run", body = ForkResponse),
        (status = 422, description = "`run_state`: no checkpoint after that step", body = Problem, content_type = "application/problem+json"))
)]
async fn fork_run(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
    ApiJson(request): ApiJson<ForkRequest>,
) -> Result<(StatusCode, ApiJson<ForkResponse>), ApiError> {
    let runs = runs_for_write(&state, &principal, run_id).await?;
    let (thread, run) = runs.fork(run_id, request.step, principal.user.id).await.map_err(run_error)?;
    Ok((StatusCode::CREATED, ApiJson(ForkResponse { thread: thread.into(), run: run.into() })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyUsage {
    pub user: UserId,
    pub total: UsageTotals,
    /// By project, for the projects the caller is a member of.
    pub by_project: Vec<ProjectTotals>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectTotals {
    pub project_id: ProjectId,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// What the caller's agent runs used, in total and per project.
#[utoipa::path(get, path = "/me/usage", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    responses((status = 200, description = "The caller's usage", body = MyUsage))
)]
async fn my_usage(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<ApiJson<MyUsage>, ApiError> {
    let me = principal.user.id;
    let mut total = UsageTotals::default();
    let mut by_project = Vec::new();
    for (project, _) in state.store.projects_for_user(me).await? {
        let mut totals = UsageTotals::default();
        for thread in state.store.threads(project.id).await? {
            for usage in usage_of(state.store.events_after(thread.id, 0, SUMMARY_EVENTS).await?) {
                if usage.user == me {
                    totals.add(&usage);
                    total.add(&usage);
                }
            }
        }
        if totals.model_calls > 0 {
            by_project.push(ProjectTotals { project_id: project.id, totals });
        }
    }
    Ok(ApiJson(MyUsage { user: me, total, by_project }))
}
