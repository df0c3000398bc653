//! Liveness and readiness probes.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::wire::health::{Check, Checks, HealthResponse, ReadyResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

/// A dependency that does not answer within this time counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// The process is up (it answers); says nothing of its dependencies.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, description = "The process is up", body = HealthResponse)))]
pub(crate) async fn healthz() -> ApiJson<HealthResponse> {
    ApiJson(HealthResponse { status: "ok" })
}

async fn check(backend: &'static str, ping: impl Future<Output = cairn_core::Result<()>>) -> Check {
    let error = match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    Check { ok: error.is_none(), backend, error }
}

/// The database and the bus answer. 503 naming the failing dependency otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses(
        (status = 200, description = "Every dependency answers", body = ReadyResponse),
        (status = 503, body = Problem, content_type = "application/problem+json",
         description = "A dependency does not answer; `checks` says which"),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, ApiJson<ReadyResponse>), ApiError> {
    let (database, bus) = tokio::join!(
        check(state.store.backend(), state.store.ping()),
        check(state.bus.health.backend(), state.bus.health.ping()),
    );
    let checks = Checks { database, bus };
    let failing: Vec<&str> = [("database", &checks.database), ("bus", &checks.bus)]
        .into_iter()
        .filter(|(_, check)| !check.ok)
        .map(|(name, _)| name)
        .collect();
    if failing.is_empty() {
        return Ok((StatusCode::OK, ApiJson(ReadyResponse { status: "ready", checks })));
    }
    let detail = format!("{} unreachable", failing.join(" and "));
    Err(ApiError::NotReady { detail, checks: json!(checks) })
}
