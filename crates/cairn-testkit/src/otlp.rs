//! An OpenTelemetry collector for tests: it takes OTLP/HTTP protobuf trace
//! exports on 127.0.0.1, as a real collector does, and keeps the spans.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// One span as exported, with the `service.name` of the process that sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedSpan {
    pub service: String,
    pub name: String,
    /// Lowercase hex, as in a `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP's numbering: 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    /// Attributes as text (numbers and booleans written out).
    pub attributes: BTreeMap<String, String>,
    /// An error status was set.
    pub error: bool,
}

/// The collector; stopped when the test ends.
#[derive(Debug, Clone)]
pub struct OtlpCollector {
    /// The base URL, as `log.otlp_endpoint` takes it.
    pub url: String,
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
}

impl OtlpCollector {
    pub async fn start() -> OtlpCollector {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let router = axum::Router::new().route("/v1/traces", axum::routing::post(export)).with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the collector");
        let url = format!("http://{}", listener.local_addr().expect("collector address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        OtlpCollector { url, spans }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::DoubleValue(n)) => n.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

async fn export(State(spans): State<Arc<Mutex<Vec<CollectedSpan>>>>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut received = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            let attributes = span
                .attributes
                .iter()
                .map(|a| (a.key.clone(), text(a.value.as_ref().and_then(|v| v.value.as_ref()))))
                .collect();
            received.push(CollectedSpan {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                kind: span.kind,
                attributes,
                error: span.status.is_some_and(|s| s.code == 2),
            });
        }
    }
    spans.lock().unwrap_or_else(PoisonError::into_inner).extend(received);
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    ([(header::CONTENT_TYPE, "application/x-protobuf")], answer).into_response()
}
