//! The agent's runs: reading them, and controlling one (cancel, answer its
//! question, edit its plan, fork it after a step). Control goes through the
//! run service, `cairn_agent::Runs`, whose errors become problems by `From`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_auth::{Access, Principal};
use cairn_core::model::Run;
use cairn_core::{ProjectId, RunId, ThreadId};

use super::thread_for;
use crate::authn::{Authenticated, ClientAddr};
use crate::error::NotFoundAs;
use crate::wire::threads::{ForkRequest, ForkResponse, PlanBody, ResumeRequest, RetryRequest, RunResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

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
