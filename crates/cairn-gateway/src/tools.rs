//! The tool registry over HTTP: what tools exist, and calling one in the
//! caller's scratch sandbox of a project (the agent calls them from Python
//! in its thread's sandbox instead).

use axum::extract::{Path, State};
use cairn_auth::Access;
use cairn_core::ProjectId;
use cairn_tools::{ToolError, ToolInfo};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::Authenticated;
use crate::wire::tools::{ToolCallRequest, ToolCallResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(list))).routes(crate::v1(routes!(call)))
}

/// Every tool the agent can call, with its JSON schema and Python signature.
#[utoipa::path(get, path = "/tools", tag = "tools", operation_id = "list_tools", security(("oauth2" = []), ("api_key" = [])),
    responses((status = 200, description = "The tools, by name", body = Vec<ToolInfo>))
)]
async fn list(State(state): State<AppState>, Authenticated(_principal): Authenticated) -> ApiJson<Vec<ToolInfo>> {
    ApiJson(state.registry.list())
}

impl From<ToolError> for ApiError {
    fn from(error: ToolError) -> Self {
        let detail = error.to_string();
        match error {
            ToolError::NoSuchTool(_) => ApiError::NotFound { entity: "tool" },
            ToolError::Invalid(_) => ApiError::Invalid { code: "invalid_arguments", detail },
            ToolError::Failed(_) => ApiError::Invalid { code: "tool_failed", detail },
            ToolError::Refused(_) => ApiError::Invalid { code: "destination_refused", detail },
            ToolError::Unavailable(_) => ApiError::ToolUnavailable { detail },
        }
    }
}

/// Runs a tool in the caller's scratch sandbox of the project (made on first
/// use; file tools see its workspace, `save_artifact` saves into the
/// project's library). Needs write access to the project.
#[utoipa::path(post, path = "/projects/{project_id}/tools/{name}", tag = "tools", operation_id = "call_tool",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("name" = String, Path, description = "The tool's name")),
    request_body = ToolCallRequest,
    responses(
        (status = 200, description = "The tool's result", body = ToolCallResponse),
        (status = 404, description = "`not_found`: no such project or tool", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "`invalid_arguments`, `tool_failed` or `destination_refused` (a private \
         address)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`tool_unavailable`: sandboxes, the browser or search are not set up here",
         body = Problem, content_type = "application/problem+json"),
    )
)]
async fn call(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((project_id, name)): Path<(ProjectId, String)>,
    ApiJson(request): ApiJson<ToolCallRequest>,
) -> Result<ApiJson<ToolCallResponse>, ApiError> {
    state.auth.authorize(&principal, project_id, Access::Write).await?;
    let Some(runner) = &state.tools else {
        return Err(ApiError::ToolUnavailable {
            detail: "tools need sandboxes, which are not available on this server (see its start-up log)".into(),
        });
    };
    let result = runner.call(principal.user.id, project_id, &name, Value::Object(request.arguments)).await?;
    Ok(ApiJson(ToolCallResponse { tool: name, result }))
}
