//! The language models this deployment is configured with.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::Authenticated;
use crate::wire::models::{AgentResponse, ModelsResponse};
use crate::{ApiJson, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(list_models))).routes(crate::v1(routes!(list_agents)))
}

/// The sub-agents of this deployment.
#[utoipa::path(get, path = "/agents", tag = "models", security(("oauth2" = []), ("api_key" = [])),
    responses((status = 200, description = "The sub-agents", body = [AgentResponse]))
)]
async fn list_agents(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
) -> ApiJson<Vec<AgentResponse>> {
    let specs = match &state.runs {
        Some(runs) => runs.agents().to_vec(),
        None if state.config.agent.agents.is_empty() => cairn_agent::plan::builtin_agents(),
        None => state.config.agent.agents.clone(),
    };
    ApiJson(
        specs
            .into_iter()
            .map(|a| AgentResponse {
                name: a.name,
                role: a.role,
                tools: a.tools,
                model: Some(a.model).filter(|m| !m.is_empty()),
                max_steps: a.max_steps,
            })
            .collect(),
    )
}

/// The configured models (`provider/model`), with their prices.
#[utoipa::path(get, path = "/models", tag = "models", security(("oauth2" = []), ("api_key" = [])),
    responses((status = 200, description = "The configured models", body = ModelsResponse))
)]
async fn list_models(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
) -> ApiJson<ModelsResponse> {
    ApiJson(ModelsResponse { default: state.models.default_id(), models: state.models.list() })
}
