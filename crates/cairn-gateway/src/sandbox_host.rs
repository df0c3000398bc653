//! The sandbox host's HTTP API (`cairn serve --role sandbox-host`): the
//! [`Sandboxes`] interface over HTTP, so that sandboxes can run on other
//! machines than the gateway and the workers. Callers are Cairn's own
//! services, authenticated by the shared service credential
//! (`sandbox.host_token`); end users never reach this API.
//!
//! An execution answers with a stream of newline-delimited JSON events
//! ([`ExecEvent`]): outputs as they come, tool calls the caller runs and
//! answers at `…/tool-results`, then the outcome. A caller that goes away
//! mid-stream interrupts its execution.
//!
//! `/metrics` (Prometheus) tells of this host: its sandboxes by state, its
//! capacity and its workspace snapshots, besides the HTTP metrics. It needs
//! the service credential like the API, or is served without credentials on
//! the admin listener (`server.admin_bind`), with the probes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use cairn_config::Config;
use cairn_core::sandbox::{
    ExecEvent, ExecHandler, Execution, NewSandbox, Output, PackagesChange, SandboxInfo, Sandboxes, ToolResult,
    WorkspaceEntry,
};
use cairn_core::{SandboxId, UserId};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use crate::{ApiError, ApiJson, Problem};

/// How long a tool call may take before the sandboxed code gets an error.
const TOOL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, String>>>>>;

#[derive(Debug, Clone)]
struct HostState {
    sandboxes: Arc<dyn Sandboxes>,
    token: Arc<str>,
    /// Sandboxes this host runs at most at once (`sandbox.max_running`).
    capacity: usize,
    /// Tool calls waiting for the caller's answer, by call id.
    pending: Pending,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn sandbox host API",
        description = "Sandboxes on this machine, for Cairn's gateway and workers (`cairn serve --role \
                       sandbox-host`). Every call needs the service credential as a bearer token. Errors are \
                       RFC 9457 problem documents with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "sandboxes", description = "Create, run code in, pause, resume, inspect and destroy sandboxes"),
        (name = "workspace", description = "Files in a sandbox's workspace"),
        (name = "probes", description = "Liveness"),
    ),
    components(schemas(Problem, ExecEvent)),
    modifiers(&ServiceToken),
    security(("service_token" = []))
)]
struct HostDoc;

struct ServiceToken;

impl Modify for ServiceToken {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The service credential `sandbox.host_token`, as `Authorization: Bearer <token>`"))
            .build();
        components.add_security_scheme("service_token", SecurityScheme::Http(bearer));
    }
}

fn api() -> OpenApiRouter<HostState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(inspect, destroy))
        .routes(routes!(pause))
        .routes(routes!(pause_if_idle))
        .routes(routes!(resume))
        .routes(routes!(set_packages))
        .routes(routes!(interrupt))
        .routes(routes!(execute))
        .routes(routes!(tool_result))
        .routes(routes!(list_files, delete_path))
        .routes(routes!(download, upload).layer(DefaultBodyLimit::disable()));
    OpenApiRouter::with_openapi(HostDoc::openapi())
        .routes(routes!(crate::health::healthz))
        .routes(routes!(readyz))
        .nest("/sandbox/v1", v1)
}

/// The sandbox host's OpenAPI document (committed as
/// `docs/sandbox-host.openapi.json`).
pub fn sandbox_host_openapi_document() -> Document {
    api().into_openapi()
}

fn host_state(config: &Config, sandboxes: Arc<dyn Sandboxes>) -> HostState {
    crate::metrics::install();
    HostState {
        sandboxes,
        token: Arc::from(config.sandbox.host_token.expose()),
        capacity: config.sandbox.max_running,
        pending: Arc::new(Mutex::new(HashMap::new())),
    }
}

/// The sandbox host's application: its API and metrics behind the service
/// credential, its OpenAPI document and Swagger UI, and the usual middleware.
pub fn sandbox_host_app(config: &Config, sandboxes: Arc<dyn Sandboxes>) -> Router {
    let state = host_state(config, sandboxes);
    let (api, document) = api().split_for_parts();
    let router = api
        .route("/metrics", get(metrics))
        .layer(from_fn_with_state(state.clone(), require_token))
        .merge(crate::openapi::docs(document))
        .fallback(|request: Request| async move { ApiError::RouteNotFound { path: request.uri().path().to_owned() } })
        .method_not_allowed_fallback(crate::error::method_not_allowed);
    crate::middleware::wrap(router, config).with_state(state)
}

/// The sandbox host's admin listener (`server.admin_bind`): `/metrics`,
/// `/healthz` and `/readyz` without credentials, for the deployment's own
/// monitoring.
pub fn sandbox_host_admin_app(config: &Config, sandboxes: Arc<dyn Sandboxes>) -> Router {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(readyz))
        .fallback(crate::error::route_not_found);
    crate::middleware::wrap(router, config).with_state(host_state(config, sandboxes))
}

/// Prometheus metrics: the sandboxes by state, read when asked for (a
/// backend that does not answer leaves the last figures in place), and
/// whatever else this process recorded (requests, workspace snapshots).
async fn metrics(State(state): State<HostState>) -> Result<Response, ApiError> {
    match state.sandboxes.counts().await {
        Ok(counts) => {
            for (kind, count) in [("running", counts.running), ("paused", counts.paused)] {
                metrics::gauge!("cairn_sandboxes", "state" => kind).set(count as f64);
            }
            metrics::gauge!("cairn_sandboxes_busy").set(counts.busy as f64);
        }
        Err(error) => tracing::debug!(%error, "the sandboxes could not be counted for the metrics"),
    }
    metrics::gauge!("cairn_sandbox_capacity").set(state.capacity as f64);
    crate::metrics::exposition()
}

/// Compares without leaking where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

async fn require_token(State(state): State<HostState>, request: Request, next: Next) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if state.token.len() < 32 || !same(presented.as_bytes(), state.token.as_bytes()) {
        let detail =
            if presented.is_empty() { "the service credential is missing" } else { "wrong service credential" };
        return ApiError::Unauthenticated { code: "invalid_token", detail: detail.to_owned() }.into_response();
    }
    next.run(request).await
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct HostReady {
    /// Always `ready`.
    status: &'static str,
    /// Sandboxes on this host.
    sandboxes: usize,
}

/// The host can manage sandboxes.
#[utoipa::path(get, path = "/readyz", tag = "probes", security(()),
    responses(
        (status = 200, description = "Ready", body = HostReady),
        (status = 503, description = "`sandbox_unavailable`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn readyz(State(state): State<HostState>) -> Result<ApiJson<HostReady>, ApiError> {
    let sandboxes = state.sandboxes.list(None).await?.len();
    Ok(ApiJson(HostReady { status: "ready", sandboxes }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct OwnerQuery {
    /// Only this user's sandboxes.
    owner: Option<UserId>,
}

/// Creates a sandbox with a running kernel.
#[utoipa::path(post, path = "/sandboxes", tag = "sandboxes", request_body = NewSandbox,
    responses(
        (status = 201, description = "The sandbox, running", body = SandboxInfo),
        (status = 422, description = "`invalid_policy`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`sandbox_cap_reached`: every running sandbox in scope is busy", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "`sandbox_unavailable`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<HostState>,
    ApiJson(request): ApiJson<NewSandbox>,
) -> Result<(StatusCode, ApiJson<SandboxInfo>), ApiError> {
    Ok((StatusCode::CREATED, ApiJson(state.sandboxes.create(request).await?)))
}

/// Every sandbox on this host, or one owner's.
#[utoipa::path(get, path = "/sandboxes", tag = "sandboxes", params(OwnerQuery),
    responses((status = 200, description = "The sandboxes", body = Vec<SandboxInfo>))
)]
async fn list(
    State(state): State<HostState>,
    Query(query): Query<OwnerQuery>,
) -> Result<ApiJson<Vec<SandboxInfo>>, ApiError> {
    Ok(ApiJson(state.sandboxes.list(query.owner).await?))
}

/// A sandbox: state, limits, age, owner and what it uses now.
#[utoipa::path(get, path = "/sandboxes/{id}", tag = "sandboxes", params(("id" = SandboxId, Path)),
    responses(
        (status = 200, description = "The sandbox", body = SandboxInfo),
        (status = 404, description = "`sandbox_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn inspect(State(state): State<HostState>, Path(id): Path<SandboxId>) -> Result<ApiJson<SandboxInfo>, ApiError> {
    Ok(ApiJson(state.sandboxes.inspect(id).await?))
}

/// Stops the sandbox's processes and deletes its workspace.
#[utoipa::path(delete, path = "/sandboxes/{id}", tag = "sandboxes", params(("id" = SandboxId, Path)),
    responses((status = 204, description = "Destroyed"),
        (status = 404, description = "`sandbox_not_found`", body = Problem, content_type = "application/problem+json"))
)]
async fn destroy(State(state): State<HostState>, Path(id): Path<SandboxId>) -> Result<StatusCode, ApiError> {
    state.sandboxes.destroy(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops the sandbox's processes and keeps its workspace.
#[utoipa::path(post, path = "/sandboxes/{id}/pause", tag = "sandboxes", params(("id" = SandboxId, Path)),
    responses((status = 200, description = "The sandbox, paused", body = SandboxInfo))
)]
async fn pause(State(state): State<HostState>, Path(id): Path<SandboxId>) -> Result<ApiJson<SandboxInfo>, ApiError> {
    Ok(ApiJson(state.sandboxes.pause(id).await?))
}

/// Pauses the sandbox unless an execution runs in it (then 204, left
/// running): what a worker does to make room for a member's next sandbox.
#[utoipa::path(post, path = "/sandboxes/{id}/pause-if-idle", tag = "sandboxes", params(("id" = SandboxId, Path)),
    responses((status = 200, description = "The sandbox, paused", body = SandboxInfo),
        (status = 204, description = "An execution runs in it: left running"))
)]
async fn pause_if_idle(State(state): State<HostState>, Path(id): Path<SandboxId>) -> Result<Response, ApiError> {
    Ok(match state.sandboxes.pause_if_idle(id).await? {
        Some(info) => ApiJson(info).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Changes the package installs granted to the sandbox (its project's
/// setting changed); a running kernel restarts with the new environment.
#[utoipa::path(put, path = "/sandboxes/{id}/packages", tag = "sandboxes", params(("id" = SandboxId, Path)),
    request_body = PackagesChange,
    responses((status = 204, description = "Granted; the next execution uses it"),
        (status = 422, description = "`invalid_policy`: this host has no package index, or the requirements are refused",
         body = Problem, content_type = "application/problem+json"))
)]
async fn set_packages(
    State(state): State<HostState>,
    Path(id): Path<SandboxId>,
    ApiJson(change): ApiJson<PackagesChange>,
) -> Result<StatusCode, ApiError> {
    state.sandboxes.set_packages(id, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a fresh kernel on a paused sandbox's workspace.
#[utoipa::path(post, path = "/sandboxes/{id}/resume", tag = "sandboxes", params(("id" = SandboxId, Path)),
    responses((status = 200, description = "The sandbox, running", body = SandboxInfo))
)]
async fn resume(State(state): State<HostState>, Path(id): Path<SandboxId>) -> Result<ApiJson<SandboxInfo>, ApiError> {
    Ok(ApiJson(state.sandboxes.resume(id).await?))
}

/// Interrupts the running execution, if any.
#[utoipa::path(post, path = "/sandboxes/{id}/interrupt", tag = "sandboxes", params(("id" = SandboxId, Path)),
    responses((status = 204, description = "Interrupted (or nothing was running)"))
)]
async fn interrupt(State(state): State<HostState>, Path(id): Path<SandboxId>) -> Result<StatusCode, ApiError> {
    state.sandboxes.interrupt(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forwards an execution's events to the HTTP response and waits for the
/// caller's answers to tool calls.
struct Bridge {
    events: mpsc::UnboundedSender<ExecEvent>,
    pending: Pending,
    sandboxes: Arc<dyn Sandboxes>,
    id: SandboxId,
    caller_gone: bool,
}

impl Bridge {
    fn send(&mut self, event: ExecEvent) -> bool {
        if self.events.send(event).is_err() && !self.caller_gone {
            // Nobody reads the outcome any more: stop the work.
            self.caller_gone = true;
            let (sandboxes, id) = (self.sandboxes.clone(), self.id);
            tokio::spawn(async move { sandboxes.interrupt(id).await });
        }
        !self.caller_gone
    }
}

#[async_trait]
impl ExecHandler for Bridge {
    fn output(&mut self, output: &Output) {
        self.send(ExecEvent::Output { output: output.clone() });
    }

    async fn tool_call(&mut self, name: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        let call = uuid::Uuid::now_v7().simple().to_string();
        let (answer, answered) = oneshot::channel();
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(call.clone(), answer);
        let sent = self.send(ExecEvent::ToolCall { call: call.clone(), name: name.to_owned(), args, kwargs });
        let result = if sent {
            match tokio::time::timeout(TOOL_TIMEOUT, answered).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err("the tool call was abandoned".to_owned()),
                Err(_) => Err(format!("the tool {name} did not answer within {} s", TOOL_TIMEOUT.as_secs())),
            }
        } else {
            Err("the caller went away".to_owned())
        };
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&call);
        result
    }
}

/// Runs Python or a shell command. A paused sandbox is resumed first. The
/// answer streams newline-delimited `ExecEvent`s and ends with `done` (or
/// `failed`); the HTTP status is 200 once the stream started.
#[utoipa::path(post, path = "/sandboxes/{id}/executions", tag = "sandboxes", params(("id" = SandboxId, Path)),
    request_body = Execution,
    responses(
        (status = 200, description = "Newline-delimited JSON, one `ExecEvent` per line", body = ExecEvent,
         content_type = "application/x-ndjson"),
        (status = 404, description = "`sandbox_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn execute(
    State(state): State<HostState>,
    Path(id): Path<SandboxId>,
    ApiJson(execution): ApiJson<Execution>,
) -> Result<Response, ApiError> {
    state.sandboxes.inspect(id).await?;
    let (events, mut received) = mpsc::unbounded_channel();
    let mut bridge =
        Bridge { events, pending: state.pending.clone(), sandboxes: state.sandboxes.clone(), id, caller_gone: false };
    tokio::spawn(async move {
        let last = match state.sandboxes.execute(id, execution, &mut bridge).await {
            Ok(outcome) => ExecEvent::Done { outcome },
            Err(error) => ExecEvent::Failed { code: error.code().to_owned(), detail: error.detail() },
        };
        bridge.send(last);
    });
    let lines = futures::stream::poll_fn(move |cx| received.poll_recv(cx)).map(|event| {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    let mut response = Body::from_stream(lines).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}

/// The caller's answer to a `tool_call` event of a running execution.
#[utoipa::path(post, path = "/sandboxes/{id}/tool-results", tag = "sandboxes", params(("id" = SandboxId, Path)),
    request_body = ToolResult,
    responses(
        (status = 204, description = "Delivered to the waiting code"),
        (status = 404, description = "`not_found`: no such call is waiting", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn tool_result(
    State(state): State<HostState>,
    Path(_id): Path<SandboxId>,
    ApiJson(result): ApiJson<ToolResult>,
) -> Result<StatusCode, ApiError> {
    let waiting = state.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&result.call);
    let Some(waiting) = waiting else {
        return Err(ApiError::NotFound { entity: "tool call" });
    };
    let answer = if result.ok { Ok(result.value) } else { Err(result.error.unwrap_or_else(|| "failed".to_owned())) };
    let _ = waiting.send(answer);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FilesQuery {
    /// A folder of the workspace (`/workspace/...` or relative); the root when left out.
    #[serde(default)]
    path: String,
    /// Every level below the folder too.
    #[serde(default)]
    recursive: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PathQuery {
    /// A file of the workspace (`/workspace/...` or relative).
    path: String,
}

/// The entries of a workspace folder. Links are listed, never followed.
#[utoipa::path(get, path = "/sandboxes/{id}/files", tag = "workspace", params(("id" = SandboxId, Path), FilesQuery),
    responses(
        (status = 200, description = "The entries, sorted by path", body = Vec<WorkspaceEntry>),
        (status = 422, description = "`invalid_path`: outside the workspace or through a link", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn list_files(
    State(state): State<HostState>,
    Path(id): Path<SandboxId>,
    Query(query): Query<FilesQuery>,
) -> Result<ApiJson<Vec<WorkspaceEntry>>, ApiError> {
    Ok(ApiJson(state.sandboxes.list_files(id, &query.path, query.recursive).await?))
}

/// Deletes a file, or a folder with everything in it.
#[utoipa::path(delete, path = "/sandboxes/{id}/files", tag = "workspace", params(("id" = SandboxId, Path), PathQuery),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "`path_not_found`", body = Problem, content_type = "application/problem+json"))
)]
async fn delete_path(
    State(state): State<HostState>,
    Path(id): Path<SandboxId>,
    Query(query): Query<PathQuery>,
) -> Result<StatusCode, ApiError> {
    state.sandboxes.delete_path(id, &query.path).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The bytes of a workspace file.
#[utoipa::path(get, path = "/sandboxes/{id}/files/content", tag = "workspace",
    params(("id" = SandboxId, Path), PathQuery),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream"),
        (status = 404, description = "`path_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn download(
    State(state): State<HostState>,
    Path(id): Path<SandboxId>,
    Query(query): Query<PathQuery>,
) -> Result<Response, ApiError> {
    let stream = state.sandboxes.download(id, &query.path).await?;
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(response)
}

/// Writes a workspace file from the request body, creating its folders. The
/// file is replaced only once the whole body arrived.
#[utoipa::path(put, path = "/sandboxes/{id}/files/content", tag = "workspace",
    params(("id" = SandboxId, Path), PathQuery),
    request_body(content_type = "application/octet-stream", description = "The file's bytes"),
    responses(
        (status = 201, description = "The file as written", body = WorkspaceEntry),
        (status = 413, description = "`workspace_full`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn upload(
    State(state): State<HostState>,
    Path(id): Path<SandboxId>,
    Query(query): Query<PathQuery>,
    body: Body,
) -> Result<(StatusCode, ApiJson<WorkspaceEntry>), ApiError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let entry = state.sandboxes.upload(id, &query.path, Box::pin(stream)).await?;
    Ok((StatusCode::CREATED, ApiJson(entry)))
}
