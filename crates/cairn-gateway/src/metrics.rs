//! Prometheus metrics at `/metrics`: on the public listener only with the
//! bearer token `server.metrics_token`, and without credentials on the
//! admin listener (`server.admin_bind`), which a deployment keeps private.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{ApiError, AppState};

/// Latency buckets in seconds, from a fast cached read to a slow upload
/// (and an event's way from the worker to its viewer, 1 ms … 10 s).
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Workspace snapshots: a few files take milliseconds, gigabytes minutes.
const SNAPSHOT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// The process-wide recorder: the `metrics` macros report to one recorder
/// per process, so it is installed once, on first use.
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // A full name wins over a suffix.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full("cairn_sandbox_snapshot_seconds".to_owned()), SNAPSHOT_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            metrics::gauge!("cairn_build_info", "version" => cairn_core::VERSION).set(1.0);
            Some(handle)
        })
        .as_ref()
}

/// Installs the recorder now (if no other did), so the first requests are
/// counted.
pub(crate) fn install() {
    let _ = handle();
}

pub(crate) fn routes() -> Router<AppState> {
    install();
    Router::new().route("/metrics", get(guarded))
}

/// The admin listener's routes: metrics and the probes, no credentials.
pub(crate) fn admin_routes() -> Router<AppState> {
    install();
    Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(crate::health::readyz))
}

/// Compares in constant time, so the token cannot be guessed byte by byte.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn guarded(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let expected = state.config.server.metrics_token.expose().as_bytes();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().as_bytes());
    match given {
        _ if expected.is_empty() => Err(ApiError::Forbidden {
            detail: "metrics are served on the admin listener (server.admin_bind), or here with server.metrics_token"
                .to_owned(),
        }),
        Some(token) if same_secret(token, expected) => render(State(state)).await,
        Some(_) => {
            Err(ApiError::Unauthenticated { code: "invalid_token", detail: "the metrics token is wrong".to_owned() })
        }
        None => Err(ApiError::Unauthenticated {
            code: "unauthenticated",
            detail: "send `Authorization: Bearer <server.metrics_token>`".to_owned(),
        }),
    }
}

async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    tokio::join!(queue_gauges(&state), run_gauges(&state));
    exposition()
}

/// Everything recorded in this process, in Prometheus' text format.
pub(crate) fn exposition() -> Result<Response, ApiError> {
    let Some(handle) = handle() else {
        tracing::error!("the metrics recorder could not be installed");
        return Err(ApiError::Internal);
    };
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}

/// The run queue and the queue of planned runs' tasks as they stand now,
/// read when metrics are asked for (the queues are shared: every process
/// reports the same figures). A queue that does not answer within a second
/// leaves the last figures in place.
async fn queue_gauges(state: &AppState) {
    for queue in [cairn_agent::QUEUE, cairn_agent::runs::LANE_QUEUE] {
        let stats = tokio::time::timeout(std::time::Duration::from_secs(1), state.bus.queue.stats(queue)).await;
        let Ok(Ok(stats)) = stats else {
            tracing::debug!(queue, "the queue's figures could not be read for the metrics");
            continue;
        };
        for (kind, count) in [("ready", stats.ready), ("taken", stats.taken), ("dead", stats.dead)] {
            metrics::gauge!("cairn_queue_jobs", "queue" => queue, "state" => kind).set(count as f64);
        }
        metrics::gauge!("cairn_queue_oldest_ready_seconds", "queue" => queue).set(stats.oldest_ready_secs);
    }
}

/// Runs by status across the deployment, read when metrics are asked for.
async fn run_gauges(state: &AppState) {
    let counts = tokio::time::timeout(std::time::Duration::from_secs(1), state.store.run_counts()).await;
    let Ok(Ok(counts)) = counts else {
        tracing::debug!("the runs could not be counted for the metrics");
        return;
    };
    for status in cairn_core::model::RunStatus::ALL {
        let count = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
        metrics::gauge!("cairn_runs", "status" => status.as_str()).set(count as f64);
    }
}
