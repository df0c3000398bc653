//! A project's MCP servers (owners): streamable-HTTP MCP servers whose tools
//! the project's agent calls, as Python functions in its kernel.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_auth::Access;
use cairn_core::hooks::McpServer;
use cairn_core::{McpServerId, ProjectId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add_server, list_servers)).routes(routes!(remove_server))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMcpServerRequest {
    /// A short name (`[a-z][a-z0-9_]*`, up to 32): its tools are
    /// `mcp_<name>_<tool>` in the kernel.
    pub name: String,
    /// Its streamable-HTTP endpoint (no private address unless `tools.allow_private` names it).
    pub url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpToolResponse {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpServerResponse {
    pub id: McpServerId,
    pub name: String,
    pub url: String,
    /// The tools it offered when it was added (runs list them afresh).
    pub tools: Vec<McpToolResponse>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

fn response(server: McpServer, tools: Vec<McpToolResponse>) -> McpServerResponse {
    McpServerResponse { id: server.id, name: server.name, url: server.url, tools, created_at: server.created_at }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid { code: "invalid_mcp_server", detail: detail.into() }
}

/// Adds an MCP server to the project (owners): it is connected to and its
/// tools listed first, so a server that does not answer is refused now.
#[utoipa::path(post, path = "/projects/{project_id}/mcp-servers", tag = "mcp", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)), request_body = AddMcpServerRequest,
    responses(
        (status = 201, description = "The server, with its tools", body = McpServerResponse),
        (status = 409, description = "The project has a server of that name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_mcp_server` (a bad name or URL, or a server that cannot be listed), \
                                      `destination_refused` (a private address)", body = Problem,
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
    let url = body.url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2_000 {
        return Err(invalid("`url` is an http or https URL of at most 2000 characters"));
    }
    let timeout = Duration::from_secs(state.config.tools.fetch_timeout_secs);
    let http = cairn_tools::SafeHttp::new(timeout, 4 << 20, state.config.tools.allow_private.clone())
        .map_err(|_| ApiError::Internal)?;
    let tools = cairn_tools::mcp::list_tools(&http, url).await.map_err(|error| match error {
        cairn_tools::ToolError::Refused(detail) => ApiError::Invalid { code: "destination_refused", detail },
        other => invalid(format!("the MCP server could not be listed: {other}")),
    })?;
    let server = state.store.add_mcp_server(project, name, url, principal.user.id).await?;
    let detail = json!({ "server": server.id, "name": name, "url": url, "tools": tools.len() });
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
