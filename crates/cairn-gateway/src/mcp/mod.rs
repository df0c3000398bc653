//! Cairn as an MCP server: the Model Context Protocol's streamable HTTP
//! transport at `/mcp`, so other agents and MCP hosts use a project through
//! tools — start a run and wait for its answer, read a run, list, read and
//! upload library files, search the project's memory.
//!
//! Stateless: each POST carries one JSON-RPC message and gets its answer as
//! JSON (no session id, no server-sent stream); the handshake era of the
//! protocol (`initialize`, revisions 2025-03-26 to 2025-11-25). Callers
//! authenticate with a project's API key, which names the project.

mod tools;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::{ApiError, AppState};

/// The revisions this server speaks, newest first.
const VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_mcp, get_mcp))
}

/// A JSON-RPC error: its code and message.
pub(crate) struct RpcError(i64, String);

impl RpcError {
    pub(crate) fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError(-32602, message.into())
    }
}

fn reply(id: &Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(RpcError(code, message)) => {
            json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One JSON-RPC message to the MCP server: a request gets its response as
/// JSON; a notification or a response gets 202 and no body. Tools:
/// `run_task`, `get_run`, `list_files`, `read_file`, `upload_file`,
/// `search_memory` (see `tools/list`). Protocol errors are JSON-RPC errors;
/// a tool that fails answers a result with `isError`.
#[utoipa::path(post, path = "/mcp", tag = "mcp", security(("api_key" = [])),
    request_body(content = Object, description = "A JSON-RPC 2.0 message", content_type = "application/json"),
    responses(
        (status = 200, description = "The JSON-RPC response; for a `tools/call` with a `progressToken` and `Accept: text/event-stream`, server-sent progress notifications, then the response",
         content((Object = "application/json"), (String = "text/event-stream"))),
        (status = 202, description = "A notification or response, accepted"),
        (status = 400, description = "Not JSON-RPC, or an unsupported `MCP-Protocol-Version`", body = Object,
         content_type = "application/json"),
        (status = 403, description = "A person's token (the MCP server takes a project's API key)", body = crate::Problem,
         content_type = "application/problem+json"),
    )
)]
async fn post_mcp(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let project = crate::authn::key_project(&principal, "the MCP server")?;
    if let Some(version) = headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok())
        && !VERSIONS.contains(&version)
    {
        let error = reply(&Value::Null, Err(RpcError(-32600, format!("unsupported MCP-Protocol-Version {version}"))));
        return Ok(json_response(StatusCode::BAD_REQUEST, &error));
    }
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(error) => {
            let error = reply(&Value::Null, Err(RpcError(-32700, format!("not JSON: {error}"))));
            return Ok(json_response(StatusCode::BAD_REQUEST, &error));
        }
    };
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // A response to a request of ours (we send none), or not JSON-RPC.
        if message.get("jsonrpc") == Some(&json!("2.0")) && message.get("id").is_some() {
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        let error = reply(&Value::Null, Err(RpcError(-32600, "not a JSON-RPC 2.0 message".into())));
        return Ok(json_response(StatusCode::BAD_REQUEST, &error));
    };
    let Some(id) = message.get("id").cloned() else {
        // Notifications (`notifications/initialized`, cancellations) need no answer.
        return Ok(StatusCode::ACCEPTED.into_response());
    };
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let token = params.pointer("/_meta/progressToken").cloned();
    let streams =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if method == "tools/call"
        && let (Some(token), true) = (token, streams)
    {
        return Ok(progress_stream(state, principal, project, addr, params, token, id));
    }
    let caller = tools::Caller { state: &state, principal: &principal, project, addr: &addr };
    let result = match method {
        "initialize" => Ok(initialize(&params)),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": tools::list() })),
        "tools/call" => caller.call(&params, None).await,
        other => Err(RpcError(-32601, format!("method not found: {other}"))),
    };
    Ok(json_response(StatusCode::OK, &reply(&id, result)))
}

/// A tool call whose client asked for progress and takes a stream: the
/// answer is server-sent events, progress notifications (a run's steps as
/// they happen) and then the response.
fn progress_stream(
    state: AppState,
    principal: cairn_auth::Principal,
    project: cairn_core::ProjectId,
    addr: String,
    params: Value,
    token: Value,
    id: Value,
) -> Response {
    let (sink, messages) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let caller = tools::Caller { state: &state, principal: &principal, project, addr: &addr };
        let result = caller.call(&params, Some((token, sink.clone()))).await;
        let _ = sink.send(reply(&id, result));
    });
    let events = futures::stream::unfold(messages, |mut messages| async move {
        let message = messages.recv().await?;
        let event = axum::response::sse::Event::default().data(message.to_string());
        Some((Ok::<_, std::convert::Infallible>(event), messages))
    });
    axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default()).into_response()
}

/// The handshake's answer: the client's revision if this server speaks it,
/// else its newest.
fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or_default();
    let version = VERSIONS.iter().find(|v| **v == asked).copied().unwrap_or(VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "cairn", "title": "Cairn", "version": cairn_core::VERSION },
        "instructions": "Tools of one Cairn project (the API key's): run_task gives the project's agent a task and \
                         returns its answer; get_run reads a run; list_files, read_file and upload_file use the \
                         project's library; search_memory searches its memory by meaning.",
    })
}

/// No server-sent stream is offered: every answer comes with its POST.
#[utoipa::path(get, path = "/mcp", tag = "mcp", security(("api_key" = [])),
    responses((status = 405, description = "This server opens no stream; POST each message"))
)]
async fn get_mcp(Authenticated(_principal): Authenticated) -> Response {
    let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}
