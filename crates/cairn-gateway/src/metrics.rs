//! Prometheus metrics at `/metrics`.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{ApiError, AppState};

/// Latency buckets in seconds, from a fast cached read to a slow upload.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder: the `metrics` macros report to one recorder
/// per process, so it is installed once, on first use.
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            metrics::gauge!("cairn_build_info", "version" => cairn_core::VERSION).set(1.0);
            Some(handle)
        })
        .as_ref()
}

pub(crate) fn routes() -> Router<AppState> {
    // Install the recorder now, so the first requests are counted.
    let _ = handle();
    Router::new().route("/metrics", get(render))
}

async fn render() -> Result<Response, ApiError> {
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
