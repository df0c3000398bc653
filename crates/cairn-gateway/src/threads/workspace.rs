//! The agent's computer, as a thread's members see it: the files in the
//! thread's workspace (listed, read, saved into the library) and the
//! pictures its runs showed (browser screenshots), also through a run's
//! share link.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_auth::{Access, Principal};
use std::sync::Arc;

use cairn_core::sandbox::{Sandboxes, WorkspaceEntry};
use cairn_core::{ProjectId, SandboxId, ThreadId};
use serde_json::json;

use super::shares::open_share;
use super::thread_for;
use crate::authn::{Authenticated, ClientAddr};
use crate::wire::files::FileResponse;
use crate::wire::threads::{PathQuery, SaveWorkspaceFileRequest};
use crate::{ApiError, ApiJson, AppState, Problem};

/// The most of a workspace file one read returns.
const MAX_READ_BYTES: usize = 10 * 1024 * 1024;
/// The most entries a listing returns.
const MAX_ENTRIES: usize = 5000;

/// A thread's workspace: the sandboxes it is in, the thread's sandbox, and
/// the thread's project.
struct Workspace<'a> {
    sandboxes: &'a Arc<dyn Sandboxes>,
    sandbox: SandboxId,
    project: ProjectId,
}

/// The thread's workspace (the caller's own sandbox first, where members
/// have one each).
async fn workspace_of<'a>(
    state: &'a AppState,
    principal: &Principal,
    thread: ThreadId,
    access: Access,
) -> Result<Workspace<'a>, ApiError> {
    let found = thread_for(state, principal, thread, access).await?;
    let tools = state.tools.as_ref().ok_or_else(|| ApiError::Missing {
        code: "no_workspace",
        detail: "this server runs no sandboxes, so it has no workspaces to show".into(),
    })?;
    let mut listed: Vec<_> =
        tools.services.sandboxes.list(None).await?.into_iter().filter(|s| s.thread == Some(thread)).collect();
    listed.sort_by_key(|s| (s.owner != principal.user.id, std::cmp::Reverse(s.last_active_at)));
    let sandbox = listed.first().ok_or_else(|| ApiError::Missing {
        code: "no_workspace",
        detail: "this thread has no workspace yet: one is made when the agent first runs code".into(),
    })?;
    Ok(Workspace { sandboxes: &tools.services.sandboxes, sandbox: sandbox.id, project: found.project_id })
}

/// The files and folders of the thread's workspace, everything below its root.
#[utoipa::path(get, path = "/threads/{thread_id}/workspace", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses(
        (status = 200, description = "The entries, by path (at most 5000)", body = Vec<WorkspaceEntry>),
        (status = 404, description = "`no_workspace` (the agent has not run code here yet), or no such thread",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn list_workspace(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<ApiJson<Vec<WorkspaceEntry>>, ApiError> {
    let workspace = workspace_of(&state, &principal, thread_id, Access::Read).await?;
    let mut entries = workspace.sandboxes.list_files(workspace.sandbox, "", true).await?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.truncate(MAX_ENTRIES);
    Ok(ApiJson(entries))
}

/// A workspace file's bytes (up to 10 MiB), always as a download: what
/// the agent wrote is never rendered by the browser as a page.
#[utoipa::path(get, path = "/threads/{thread_id}/workspace/content", tag = "threads",
    security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path), PathQuery),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "`no_workspace`, or no such file", body = Problem,
         content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large` (over 10 MiB: save it to the library to download it)",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn read_workspace_file(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
    Query(query): Query<PathQuery>,
) -> Result<Response, ApiError> {
    let workspace = workspace_of(&state, &principal, thread_id, Access::Read).await?;
    let bytes = match workspace.sandboxes.read_file(workspace.sandbox, &query.path, MAX_READ_BYTES).await {
        Err(cairn_core::sandbox::SandboxError::TooLarge(_)) => {
            return Err(ApiError::PayloadTooLarge { limit: MAX_READ_BYTES });
        }
        other => other?,
    };
    let name = query.path.rsplit('/').next().unwrap_or("file");
    // `nosniff`, as on every answer, comes from the security headers' layer.
    Ok(crate::files::attachment(Body::from(bytes), "application/octet-stream", name))
}

/// Saves a workspace file into the project's library (editors and owners);
/// a path that exists there gets a new version.
#[utoipa::path(post, path = "/threads/{thread_id}/workspace/save", tag = "threads",
    security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)), request_body = SaveWorkspaceFileRequest,
    responses(
        (status = 201, description = "The file, in the library", body = FileResponse),
        (status = 403, description = "A viewer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`no_workspace`, or no such file", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn save_workspace_file(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
    ApiJson(request): ApiJson<SaveWorkspaceFileRequest>,
) -> Result<(StatusCode, ApiJson<FileResponse>), ApiError> {
    let Workspace { sandboxes, sandbox, project } = workspace_of(&state, &principal, thread_id, Access::Write).await?;
    let to = request.to.as_deref().unwrap_or(&request.path).trim_start_matches('/').to_owned();
    let body = sandboxes.download(sandbox, &request.path).await?;
    let record = state.files.upload(&principal, project, &to, body).await?;
    state.memory.index_in_background(state.files.clone(), record.clone());
    let detail = json!({ "thread": thread_id, "from": request.path, "path": record.path, "version": record.version });
    crate::audit::record(&state, &principal, Some(project), "file.saved_from_workspace", detail, &addr).await;
    Ok((StatusCode::CREATED, ApiJson(record.into())))
}

/// A picture a run of the thread showed (a browser screenshot).
#[utoipa::path(get, path = "/threads/{thread_id}/pictures/{name}", tag = "threads",
    security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path), ("name" = String, Path, description = "As a `browser` event names it")),
    responses(
        (status = 200, description = "The JPEG", content_type = "image/jpeg", body = Vec<u8>),
        (status = 404, description = "No such picture or thread", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn thread_picture(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((thread_id, name)): Path<(ThreadId, String)>,
) -> Result<Response, ApiError> {
    let thread = thread_for(&state, &principal, thread_id, Access::Read).await?;
    picture(&state, thread.project_id, thread_id, &name).await
}

/// A picture the shared run showed, without signing in.
#[utoipa::path(get, path = "/shared/{token}/pictures/{name}", tag = "threads",
    params(("token" = String, Path, description = "The link's secret"),
           ("name" = String, Path, description = "As one of the run's `browser` events names it")),
    responses(
        (status = 200, description = "The JPEG", content_type = "image/jpeg", body = Vec<u8>),
        (status = 404, description = "`share_not_found`, `share_closed`, or no such picture of this run",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn shared_picture(
    State(state): State<AppState>,
    Path((token, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let share = open_share(&state, &token).await?;
    // Only the shared run's own pictures: their names begin with its id.
    if !name.starts_with(&format!("{}-", share.run_id)) {
        return Err(ApiError::NotFound { entity: "picture" });
    }
    let run = state.store.run(share.run_id).await?;
    let thread = state.store.thread(run.thread_id).await?;
    picture(&state, thread.project_id, thread.id, &name).await
}

async fn picture(state: &AppState, project: ProjectId, thread: ThreadId, name: &str) -> Result<Response, ApiError> {
    let bytes = match state.files.read_media(project, thread, name).await {
        Err(cairn_files::Error::InvalidPath { .. }) => return Err(ApiError::NotFound { entity: "picture" }),
        other => other?,
    };
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    Ok(response)
}
