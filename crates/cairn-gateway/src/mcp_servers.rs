//! A project's MCP servers (owners): streamable-HTTP endpoints, or stdio
//! servers the thread's sandbox starts, whose tools the project's agent
//! calls as Python functions in its kernel; with their credentials (HTTP
//! headers, or a stdio server's environment), sealed.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_auth::Access;
use cairn_core::hooks::{McpServer, McpTransport, NewMcpServer};
use cairn_core::{McpServerId, ProjectId};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::mcp_servers::{AddMcpServerRequest, McpServerResponse, McpToolResponse, McpTransportKind};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(add_server, list_servers))).routes(crate::v1(routes!(remove_server)))
}

fn response(server: McpServer, tools: Vec<McpToolResponse>) -> McpServerResponse {
    let (transport, url, command) = match server.transport {
        McpTransport::Http { url } => (McpTransportKind::Http, Some(url), None),
        McpTransport::Stdio { command } => (McpTransportKind::Stdio, None, Some(command)),
    };
    McpServerResponse {
        id: server.id,
        name: server.name,
        transport,
        url,
        command,
        secrets: server.secret_names,
        tools,
        created_at: server.created_at,
    }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid { code: "invalid_mcp_server", detail: detail.into() }
}

/// Headers a server's secrets may not set: the client's own.
const RESERVED_HEADERS: [&str; 8] = [
    "accept",
    "connection",
    "content-length",
    "content-type",
    "host",
    "mcp-protocol-version",
    "mcp-session-id",
    "transfer-encoding",
];

/// The transport a request names, checked.
fn transport_of(body: &AddMcpServerRequest) -> Result<McpTransport, ApiError> {
    match (&body.url, &body.command) {
        (Some(url), None) => {
            let url = url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2_000 {
                return Err(invalid("`url` is an http or https URL of at most 2000 characters"));
            }
            Ok(McpTransport::Http { url: url.to_owned() })
        }
        (None, Some(command)) => {
            let well_formed = !command.is_empty()
                && command.len() <= 32
                && !command[0].trim().is_empty()
                && command.iter().all(|part| part.len() <= 1_000 && !part.contains('\0'));
            if !well_formed {
                return Err(invalid(
                    "`command` is a program and its arguments: 1 to 32 parts of at most 1000 characters, the first not empty",
                ));
            }
            Ok(McpTransport::Stdio { command: command.clone() })
        }
        _ => Err(invalid("give either `url` (a streamable-HTTP server) or `command` (a stdio server)")),
    }
}

/// The secrets' names, checked for the transport: header names for an HTTP
/// server, environment variable names for a stdio one.
fn secret_names(transport: &McpTransport, secrets: &BTreeMap<String, String>) -> Result<Vec<String>, ApiError> {
    if secrets.len() > 16 {
        return Err(invalid("at most 16 secrets"));
    }
    for (name, value) in secrets {
        if value.len() > 8_192 || value.contains(['\0', '\r', '\n']) {
            return Err(invalid(format!("the secret `{name}` is over 8192 bytes or holds a line break")));
        }
        let well_formed = match transport {
            McpTransport::Http { .. } => {
                !name.is_empty()
                    && name.len() <= 64
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
            }
            McpTransport::Stdio { .. } => {
                name.len() <= 64
                    && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
        };
        if !well_formed {
            let kind = match transport {
                McpTransport::Http { .. } => "an HTTP header name (letters, digits, `-`; not one the client sets)",
                McpTransport::Stdio { .. } => "an environment variable name (letters, digits, `_`)",
            };
            return Err(invalid(format!("the secret `{name}` is not {kind}")));
        }
    }
    Ok(secrets.keys().cloned().collect())
}

/// Adds an MCP server to the project (owners). An HTTP server is connected
/// to and its tools listed first, so one that does not answer is refused
/// now; a stdio server is started by each run in its sandbox.
#[utoipa::path(post, path = "/projects/{project_id}/mcp-servers", tag = "mcp", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)), request_body = AddMcpServerRequest,
    responses(
        (status = 201, description = "The server, with its tools", body = McpServerResponse),
        (status = 409, description = "The project has a server of that name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_mcp_server` (a bad name, URL, command or secret, or a server that cannot be \
                                      listed), `destination_refused` (a private address)", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn add_server(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project): Path<ProjectId>,
    ApiJson(body): ApiJson<AddMcpServerRequest>,
) -> Result<(StatusCode, ApiJson<McpServerResponse>), ApiError> {
    state.auth.authorize(&principal, project, Access::Manage).await?;
    let name = body.name.trim();
    let well_formed = name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(invalid("`name` is a-z, 0-9 and _, starting with a letter, up to 32 characters"));
    }
    let transport = transport_of(&body)?;
    let names = secret_names(&transport, &body.secrets)?;
    let mut tools = Vec::new();
    if let McpTransport::Http { url } = &transport {
        let timeout = Duration::from_secs(state.config.tools.fetch_timeout_secs);
        let http = cairn_tools::SafeHttp::new(timeout, 4 << 20, state.config.tools.allow_private.clone())
            .map_err(|_| ApiError::Internal)?;
        let headers: Vec<(String, String)> = body.secrets.clone().into_iter().collect();
        tools = cairn_tools::mcp::list_tools(&http, url, &headers).await.map_err(|error| match error {
            cairn_tools::ToolError::Refused(detail) => ApiError::Invalid { code: "destination_refused", detail },
            other => invalid(format!("the MCP server could not be listed: {other}")),
        })?;
    }
    let sealed = match body.secrets.is_empty() {
        true => None,
        false => Some(state.connections.seal_secret(&json!(body.secrets).to_string())?),
    };
    let new = NewMcpServer {
        project,
        name: name.to_owned(),
        transport,
        secret_names: names.clone(),
        secrets_sealed: sealed,
        created_by: principal.user.id,
    };
    let server = state.store.add_mcp_server(new).await?;
    let (url, command) = match &server.transport {
        McpTransport::Http { url } => (Some(url.clone()), None),
        McpTransport::Stdio { command } => (None, Some(command.clone())),
    };
    let detail = json!({
        "server": server.id, "name": name, "url": url, "command": command, "secrets": names, "tools": tools.len(),
    });
    crate::audit::record(&state, &principal, Some(project), "mcp_server.added", detail, &addr).await;
    let tools = tools.into_iter().map(|t| McpToolResponse { name: t.name, description: t.description }).collect();
    Ok((StatusCode::CREATED, ApiJson(response(server, tools))))
}

/// The project's MCP servers (owners).
#[utoipa::path(get, path = "/projects/{project_id}/mcp-servers", tag = "mcp", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses((status = 200, description = "The servers, oldest first (their tools are listed by each run)", body = [McpServerResponse]))
)]
async fn list_servers(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project): Path<ProjectId>,
) -> Result<ApiJson<Vec<McpServerResponse>>, ApiError> {
    state.auth.authorize(&principal, project, Access::Manage).await?;
    let servers = state.store.mcp_servers(project).await?;
    Ok(ApiJson(servers.into_iter().map(|s| response(s, Vec::new())).collect()))
}

/// Removes an MCP server from the project (owners); runs that begin after
/// it no longer see its tools.
#[utoipa::path(delete, path = "/projects/{project_id}/mcp-servers/{server_id}", tag = "mcp",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("server_id" = McpServerId, Path)),
    responses((status = 204, description = "Removed"))
)]
async fn remove_server(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, id)): Path<(ProjectId, McpServerId)>,
) -> Result<StatusCode, ApiError> {
    state.auth.authorize(&principal, project, Access::Manage).await?;
    state.store.remove_mcp_server(project, id).await?;
    crate::audit::record(&state, &principal, Some(project), "mcp_server.removed", json!({ "server": id }), &addr).await;
    Ok(StatusCode::NO_CONTENT)
}
