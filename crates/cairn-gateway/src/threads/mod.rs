//! Threads and what hangs off them, one module per resource: the thread
//! itself (here), its messages (`messages.rs`), the agent's runs and their
//! plans (`runs.rs`), its event log, served live over SSE and WebSocket
//! (`events.rs`), what the runs used (`usage.rs`), finding threads
//! (`search.rs`), read-only links to runs (`shares.rs`), and the agent's
//! computer: the workspace's files and the runs' pictures (`workspace.rs`).
//! Their wire types are in `crate::wire::threads`; the routes are listed here.

mod events;
pub(crate) mod follow;
mod messages;
mod runs;
mod search;
mod shares;
mod usage;
mod workspace;

pub(crate) use events::live_events;
pub(crate) use runs::agent_unavailable;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_auth::{Access, Principal};
use cairn_core::model::{NewThread, Thread};
use cairn_core::{ProjectId, ThreadId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::Authenticated;
use crate::error::NotFoundAs;
use crate::wire::threads::{NewThreadRequest, RenameThreadRequest, ThreadResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(create_thread, list_threads)))
        .routes(crate::v1(routes!(get_thread, rename_thread, crate::lifecycle::delete_thread)))
        .routes(crate::v1(routes!(crate::presence::typing)))
        .routes(crate::v1(routes!(messages::post_message, messages::list_messages)))
        .routes(crate::v1(routes!(runs::get_run)))
        .routes(crate::v1(routes!(runs::cancel_run)))
        .routes(crate::v1(routes!(runs::resume_run)))
        .routes(crate::v1(routes!(runs::edit_plan)))
        .routes(crate::v1(routes!(events::events)))
        .routes(crate::v1(routes!(events::events_socket)))
        .routes(crate::v1(routes!(events::events_ticket)))
        .routes(crate::v1(routes!(runs::thread_runs)))
        .routes(crate::v1(routes!(runs::fork_run)))
        .routes(crate::v1(routes!(runs::retry_run)))
        .routes(crate::v1(routes!(usage::project_usage)))
        .routes(crate::v1(routes!(usage::daily_usage)))
        .routes(crate::v1(routes!(usage::my_usage)))
        .routes(crate::v1(routes!(search::search_threads)))
        .routes(crate::v1(routes!(shares::share_run, shares::list_shares)))
        .routes(crate::v1(routes!(shares::revoke_share)))
        .routes(crate::v1(routes!(shares::shared_run)))
        .routes(crate::v1(routes!(workspace::list_workspace)))
        .routes(crate::v1(routes!(workspace::read_workspace_file)))
        .routes(crate::v1(routes!(workspace::save_workspace_file)))
        .routes(crate::v1(routes!(workspace::thread_picture)))
        .routes(crate::v1(routes!(workspace::shared_picture)))
}

/// The thread, if the caller may see its project.
pub(crate) async fn thread_for(
    state: &AppState,
    principal: &Principal,
    id: ThreadId,
    access: Access,
) -> Result<Thread, ApiError> {
    let thread = state.store.thread(id).await?;
    // A thread of a project the caller is not in does not exist for them.
    state.auth.authorize(principal, thread.project_id, access).await.not_found_as("thread")?;
    Ok(thread)
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

/// A thread's title from its task's first line that has text, cut at 80
/// characters.
pub(crate) fn title_of(task: &str) -> String {
    let line = task.lines().find(|l| !l.trim().is_empty()).unwrap_or("Chat").trim();
    let mut title: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        title.push('…');
    }
    title
}

/// Starts a run for an integration (the OpenAI-compatible API, the MCP
/// server): the task posted in `thread`, or in a new thread of the project
/// titled from `title` (see [`title_of`]), and `run.started` in the audit
/// log with `via`.
/// Refused (503) where no run can be started.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start_run(
    state: &AppState,
    principal: &Principal,
    project: ProjectId,
    thread: Option<Thread>,
    title: &str,
    task: String,
    options: cairn_agent::RunOptions,
    addr: &str,
    via: &str,
) -> Result<(Thread, cairn_core::model::Run), ApiError> {
    let Some(runs) = state.runs.as_ref().filter(|_| state.models.default_id().is_some()) else {
        return Err(agent_unavailable(state, principal));
    };
    let thread = match thread {
        Some(thread) => thread,
        None => {
            let new =
                NewThread { project_id: project, title: title_of(title), created_by: principal.user.id, model: None };
            state.store.create_thread(new).await?
        }
    };
    let (_, run) = runs.post_run(thread.id, principal.user.id, task, true, options).await?;
    let run = run.ok_or(ApiError::Internal)?;
    let detail = serde_json::json!({ "run": run.id, "thread": thread.id, "via": via });
    crate::audit::record(state, principal, Some(project), "run.started", detail, addr).await;
    Ok((thread, run))
}

/// Refuses a sub-agent that is not configured.
pub(crate) fn check_agent(runs: &cairn_agent::Runs, agent: Option<&str>) -> Result<(), ApiError> {
    match agent {
        Some(name) if !runs.agents().iter().any(|a| a.name == name) => Err(ApiError::Invalid {
            code: "unknown_agent",
            detail: format!("no sub-agent `{name}`; GET /api/v1/agents lists them"),
        }),
        _ => Ok(()),
    }
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
