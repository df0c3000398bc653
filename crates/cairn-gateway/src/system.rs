//! Facts about the running server.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::wire::system::VersionResponse;
use crate::{ApiJson, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(version)))
}

/// The server's name, version and role.
#[utoipa::path(get, path = "/version", tag = "system", responses((status = 200, description = "Name, version and role", body = VersionResponse)))]
async fn version(State(state): State<AppState>) -> ApiJson<VersionResponse> {
    ApiJson(VersionResponse { name: "cairn", version: cairn_core::VERSION, role: state.role })
}
