//! The agent's runs: reading them, and controlling one (cancel, answer its
//! question, edit its plan, fork it after a step). Control goes through the
//! run service, `cairn_agent::Runs`, whose errors become problems by `From`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_agent::plan::{Plan, Task};
use cairn_auth::{Access, Principal};
use cairn_core::model::Run;
use cairn_core::{ProjectId, RunId, ThreadId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{ThreadResponse, thread_for};
use crate::authn::{Authenticated, ClientAddr};
use crate::error::NotFoundAs;
use crate::{ApiError, ApiJson, AppState, Problem};

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
    /// When retention removed its step details (code, outputs); its answer,
    /// messages and files stay. `null`: they are all there.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub details_removed_at: Option<OffsetDateTime>,
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
            details_removed_at: r.details_removed_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// The answer to the question the run asked.
    pub answer: String,
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

/// An edited plan: what the tasks are, never how far they got.
impl From<PlanBody> for Plan {
    fn from(body: PlanBody) -> Self {
        let tasks = body
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
}

impl From<Plan> for PlanBody {
    fn from(plan: Plan) -> Self {
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkRequest {
    /// The step (its checkpoint) to go on from; steps count from 1. 0: from
    /// the run's start — its message is asked again (or `content` in its
    /// place) in the new thread.
    #[serde(default)]
    pub step: i64,
    /// With step 0: the member's edit of the message that started the run.
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// The model to try with (`provider/model`); the thread's when absent.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ForkResponse {
    pub thread: ThreadResponse,
    pub run: RunResponse,
}

/// Why no run can start, in words for who asked: an administrator learns
/// how to connect a model, a member whom to ask.
pub(crate) fn agent_unavailable(state: &AppState, principal: &Principal) -> ApiError {
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

/// The run, if the caller may see its thread.
/// The run and its project, if the caller may `access` the project.
pub(super) async fn run_for(
    state: &AppState,
    principal: &Principal,
    id: RunId,
    access: Access,
) -> Result<(Run, ProjectId), ApiError> {
    let run = state.store.run(id).await?;
    let thread = thread_for(state, principal, run.thread_id, access).await.not_found_as("run")?;
    Ok((run, thread.project_id))
}

/// The run service, for a caller who may act on the run (editors and owners).
async fn runs_for_write<'a>(
    state: &'a AppState,
    principal: &Principal,
    id: RunId,
) -> Result<&'a cairn_agent::Runs, ApiError> {
    Ok(runs_and_project(state, principal, id).await?.0)
}

/// [`runs_for_write`], and the run's project.
async fn runs_and_project<'a>(
    state: &'a AppState,
    principal: &Principal,
    id: RunId,
) -> Result<(&'a cairn_agent::Runs, ProjectId), ApiError> {
    let run = state.store.run(id).await?;
    let thread = thread_for(state, principal, run.thread_id, Access::Write).await.not_found_as("run")?;
    let runs = state.runs.as_ref().ok_or_else(|| agent_unavailable(state, principal))?;
    Ok((runs, thread.project_id))
}

#[utoipa::path(get, path = "/runs/{run_id}", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)),
    responses((status = 200, description = "The run", body = RunResponse))
)]
pub(super) async fn get_run(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
) -> Result<ApiJson<RunResponse>, ApiError> {
    Ok(ApiJson(run_for(&state, &principal, run_id, Access::Read).await?.0.into()))
}

/// The thread's runs, oldest first.
#[utoipa::path(get, path = "/threads/{thread_id}/runs", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses((status = 200, description = "The runs", body = Vec<RunResponse>))
)]
pub(super) async fn thread_runs(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<ApiJson<Vec<RunResponse>>, ApiError> {
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    Ok(ApiJson(state.store.runs(thread_id).await?.into_iter().map(RunResponse::from).collect()))
}

/// Cancels a run: at once when queued or waiting, between two steps when running.
#[utoipa::path(post, path = "/runs/{run_id}/cancel", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)),
    responses((status = 200, description = "The run", body = RunResponse),
        (status = 422, description = "`run_state`: the run already ended", body = Problem, content_type = "application/problem+json"))
)]
pub(super) async fn cancel_run(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
) -> Result<ApiJson<RunResponse>, ApiError> {
    let (runs, project) = runs_and_project(&state, &principal, run_id).await?;
    let cancelled = runs.cancel(run_id).await?;
    let detail = serde_json::json!({ "run": run_id, "thread": cancelled.thread_id });
    crate::audit::record(&state, &principal, Some(project), "run.cancelled", detail, &addr).await;
    Ok(ApiJson(cancelled.into()))
}

/// Answers the question a waiting run asked; the run goes on.
#[utoipa::path(post, path = "/runs/{run_id}/resume", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)), request_body = ResumeRequest,
    responses((status = 200, description = "The run, queued again", body = RunResponse),
        (status = 422, description = "`run_state`: the run is not waiting", body = Problem, content_type = "application/problem+json"))
)]
pub(super) async fn resume_run(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
    ApiJson(request): ApiJson<ResumeRequest>,
) -> Result<ApiJson<RunResponse>, ApiError> {
    let (runs, project) = runs_and_project(&state, &principal, run_id).await?;
    // The answer to a question or to an approval (a plan's, a tool call's).
    let answer: String = request.answer.chars().take(200).collect();
    let resumed = runs.resume(run_id, principal.user.id, request.answer).await?;
    let detail = serde_json::json!({ "run": run_id, "thread": resumed.thread_id, "answer": answer });
    crate::audit::record(&state, &principal, Some(project), "run.answered", detail, &addr).await;
    Ok(ApiJson(resumed.into()))
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
pub(super) async fn edit_plan(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
    ApiJson(request): ApiJson<PlanBody>,
) -> Result<ApiJson<PlanBody>, ApiError> {
    let (runs, project) = runs_and_project(&state, &principal, run_id).await?;
    let plan = runs.edit_plan(run_id, request.into(), principal.user.id).await?;
    let detail = serde_json::json!({ "run": run_id, "tasks": plan.tasks.len() });
    crate::audit::record(&state, &principal, Some(project), "plan.edited", detail, &addr).await;
    Ok(ApiJson(plan.into()))
}

/// Forks a run after one of its steps into a new thread of the same
/// project: the messages until then are copied and a new run goes on from
/// that step's checkpoint, on its own.
#[utoipa::path(post, path = "/runs/{run_id}/fork", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)), request_body = ForkRequest,
    responses((status = 201, description = "The new thread and its run", body = ForkResponse),
        (status = 422, description = "`run_state`: no checkpoint after that step", body = Problem, content_type = "application/problem+json"))
)]
pub(super) async fn fork_run(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
    ApiJson(request): ApiJson<ForkRequest>,
) -> Result<(StatusCode, ApiJson<ForkResponse>), ApiError> {
    let runs = runs_for_write(&state, &principal, run_id).await?;
    let (thread, run) = match (request.step, request.content) {
        (0, content) => {
            if let Some(text) = &content
                && (text.trim().is_empty() || text.chars().count() > super::messages::MAX_MESSAGE_CHARS)
            {
                return Err(ApiError::Invalid {
                    code: "invalid_input",
                    detail: format!("a message has 1 to {} characters", super::messages::MAX_MESSAGE_CHARS),
                });
            }
            runs.branch(run_id, content.map(|c| c.trim().to_owned()), principal.user.id).await?
        }
        (step, None) => runs.fork(run_id, step, principal.user.id).await?,
        (_, Some(_)) => {
            return Err(ApiError::Invalid {
                code: "invalid_input",
                detail: "an edited message goes with step 0 (a branch from the run's start)".into(),
            });
        }
    };
    Ok((StatusCode::CREATED, ApiJson(ForkResponse { thread: thread.into(), run: run.into() })))
}

/// Runs a failed or cancelled run's work again, in its thread: a new run
/// answers the same messages (nothing is posted again).
#[utoipa::path(post, path = "/runs/{run_id}/retry", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("run_id" = RunId, Path)), request_body = RetryRequest,
    responses((status = 201, description = "The new run", body = RunResponse),
        (status = 403, description = "A viewer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`run_state` (the run did not fail, or another run is going), `unknown_model`, \
                                      `budget_spent`, `member_budget_spent`", body = Problem,
         content_type = "application/problem+json"))
)]
pub(super) async fn retry_run(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(run_id): Path<RunId>,
    ApiJson(request): ApiJson<RetryRequest>,
) -> Result<(StatusCode, ApiJson<RunResponse>), ApiError> {
    super::check_model(&state, request.model.as_deref())?;
    let runs = runs_for_write(&state, &principal, run_id).await?;
    let run = runs.retry(run_id, principal.user.id, request.model).await?;
    Ok((StatusCode::CREATED, ApiJson(run.into())))
}
