//! The language models this deployment is configured with.

use axum::extract::State;
use cairn_llm::ModelInfo;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::Authenticated;
use crate::{ApiJson, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(list_models))).routes(crate::v1(routes!(list_agents)))
}

/// A sub-agent plans give tasks to (`agent.agents`, or the built-in ones).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentResponse {
    pub name: String,
    /// What it is good at (part of its system prompt).
    pub role: String,
    /// The tools it may call; empty: all.
    pub tools: Vec<String>,
    /// `provider/model`; `null`: the run's model.
    pub model: Option<String>,
    /// Model calls one task may take.
    pub max_steps: u32,
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelsResponse {
    /// The model used when a project or thread names none.
    pub default: Option<String>,
    pub models: Vec<ModelInfo>,
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
