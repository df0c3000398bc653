//! Facts about the running server.

use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiJson, AppState, ServerRole};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(version)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionResponse {
    /// Always `cairn`.
    pub name: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// The role this process serves.
    pub role: ServerRole,
}

/// The server's name, version and role.
#[utoipa::path(get, path = "/version", tag = "system", responses((status = 200, description = "Name, version and role", body = VersionResponse)))]
async fn version(State(state): State<AppState>) -> ApiJson<VersionResponse> {
    ApiJson(VersionResponse { name: "cairn", version: cairn_core::VERSION, role: state.role })
}
