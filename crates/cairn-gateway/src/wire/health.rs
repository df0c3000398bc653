//! The wire types of health and readiness probes.

use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthResponse {
    /// Always `ok`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub ok: bool,
    /// Which implementation is in use (`sqlite`, `postgres`, `in-process`, `redis`).
    pub backend: &'static str,
    /// Why the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    pub database: Check,
    pub bus: Check,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadyResponse {
    /// Always `ready`.
    pub status: &'static str,
    pub checks: Checks,
}
