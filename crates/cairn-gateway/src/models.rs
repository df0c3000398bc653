//! The language models this deployment is configured with.

use axum::extract::State;
use cairn_llm::ModelInfo;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::Authenticated;
use crate::{ApiJson, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_models))
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
    ApiJson(ModelsResponse { default: state.models.default_id().map(str::to_owned), models: state.models.list() })
}
