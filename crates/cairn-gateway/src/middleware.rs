//! The layers every request passes through, outermost first: request id,
//! tracing, security headers, CORS, metrics, problem+json for bare errors,
//! body limit.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use cairn_config::Config;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::error::{PROBLEM_JSON, Problem, problem_response};

/// The request body limit in force, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub usize);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(crate) fn wrap<S: Clone + Send + Sync + 'static>(router: Router<S>, config: &Config) -> Router<S> {
    let limit = config.server.body_limit_bytes;
    let inner = router
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn(move |mut request: Request, next: Next| {
            request.extensions_mut().insert(BodyLimit(limit));
            problems_for_bare_errors(request, next)
        }))
        .layer(from_fn(record_metrics));
    let inner = match cors(&config.server.cors_origins) {
        Some(cors) => inner.layer(cors),
        None => inner,
    };
    inner.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, RequestIds))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(axum::middleware::from_fn_with_state(
                crate::security::SecurityHeaders::new(config),
                crate::security::headers,
            )),
    )
}

/// Request ids: UUIDs (version 4 in form), unique within the process by a
/// counter and across processes by 128 random bits drawn once. A random
/// UUID per request asked the operating system for randomness every time, a
/// system call on every request.
#[derive(Debug, Clone, Copy)]
struct RequestIds;

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        static SEED: std::sync::LazyLock<(u64, u64)> = std::sync::LazyLock::new(|| {
            let mut bytes = [0u8; 16];
            // Without the OS's randomness, ids stay unique in this process.
            if let Err(error) = getrandom::fill(&mut bytes) {
                tracing::warn!(%error, "no random seed for request ids");
            }
            let (high, low) = bytes.split_at(8);
            (
                u64::from_le_bytes(high.try_into().unwrap_or_default()),
                u64::from_le_bytes(low.try_into().unwrap_or_default()),
            )
        });
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let (high, low) = *SEED;
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_le_bytes());
        bytes[8..].copy_from_slice(&spread(n ^ low).to_le_bytes());
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)).ok().map(RequestId::new)
    }
}

/// SplitMix64's finaliser: one to one, so distinct counts stay distinct,
/// and consecutive ones look unrelated.
fn spread(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A request's span, continuing the caller's trace when it sends a
/// `traceparent`: named by its method (the route is not known yet), with
/// the route as `http.route` once routing found it, as OpenTelemetry's HTTP
/// conventions have it. Probes and metrics scrapes are at debug level, out
/// of the log and the traces.
fn request_span(request: &Request) -> tracing::Span {
    let id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("");
    let (method, uri) = (request.method(), request.uri());
    let span = if matches!(uri.path(), "/healthz" | "/readyz" | "/metrics") {
        tracing::debug_span!("request", otel.name = %method, otel.kind = "server", http.route = tracing::field::Empty, method = %method, uri = %uri, request_id = id)
    } else {
        tracing::info_span!("request", otel.name = %method, otel.kind = "server", http.route = tracing::field::Empty, method = %method, uri = %uri, request_id = id)
    };
    let parent = request.headers().get(cairn_core::trace::TRACEPARENT).and_then(|value| value.to_str().ok());
    cairn_core::trace::continue_from(&span, parent);
    span
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
        .expose_headers([REQUEST_ID])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(Any));
    }
    // Validated at start-up; an origin that is not a valid header is skipped.
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(layer.allow_origin(AllowOrigin::list(list)).allow_credentials(true))
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    tracing::Span::current().record("http.route", route.as_str());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Error responses that the framework made (413 from a body limit, 415, …)
/// carry plain text; give them a problem body like every other error.
async fn problems_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with(PROBLEM_JSON) || content_type.starts_with("application/json") {
        return response;
    }
    let (code, title) = match status.as_u16() {
        400 => ("bad_request", "Bad request"),
        404 => ("not_found", "Not found"),
        405 => ("method_not_allowed", "Method not allowed"),
        408 => ("request_timeout", "Request timeout"),
        413 => ("payload_too_large", "Payload too large"),
        415 => ("unsupported_media_type", "Unsupported media type"),
        429 => ("rate_limited", "Too many requests"),
        500 => ("internal_error", "Internal error"),
        503 => ("service_unavailable", "Service unavailable"),
        _ => ("http_error", "HTTP error"),
    };
    let detail = status.canonical_reason().map(str::to_owned);
    let problem =
        Problem { kind: "about:blank", title, status: status.as_u16(), detail, code, extensions: Default::default() };
    let mut replaced = problem_response(&problem);
    // Keep headers such as Allow and Retry-After.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replaced.headers_mut().insert(name.clone(), value.clone());
        }
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let request = axum::http::Request::new(());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = RequestIds.make_request_id(&request).map(|id| id.header_value().to_str().map(str::to_owned));
            let Some(Ok(id)) = id else { panic!("an id as text") };
            let parsed = uuid::Uuid::parse_str(&id).unwrap_or_default();
            assert_eq!(parsed.get_version_num(), 4, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert!(seen.insert(id), "ids repeat");
        }
    }
}
