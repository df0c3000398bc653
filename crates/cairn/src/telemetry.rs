//! Logs to standard error and, when `log.otlp_endpoint` names a collector,
//! spans to it over OTLP/HTTP. Both see what `log.level` lets through.

use std::time::Duration;

use cairn_config::{Config, LogFormat};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The span exporter of a process; [`Traces::shutdown`] sends what is left.
#[derive(Debug)]
pub struct Traces(SdkTracerProvider);

impl Traces {
    /// Exports the spans still buffered (the batch processor's thread
    /// blocks, so off the runtime's threads).
    pub async fn shutdown(self) {
        let provider = self.0;
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = done {
            tracing::warn!(%error, "the last spans could not be sent to the collector");
        }
    }
}

fn filter(config: &Config) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(&config.log.level).map_err(|e| {
        anyhow::anyhow!(
            "configuration key `log.level` is invalid: expected a filter such as `info` or `cairn_gateway=debug,info` ({e})"
        )
    })
}

/// Installs the subscriber. `service` names the process in traces
/// (`cairn-gateway`, `cairn-worker`, …); `None` exports no spans (commands
/// other than `serve`).
pub fn init(config: &Config, service: Option<&str>) -> anyhow::Result<Option<Traces>> {
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match config.log.format {
        LogFormat::Json => Box::new(logs.json().flatten_event(true)),
        LogFormat::Pretty => Box::new(logs),
    };
    let logs = logs.with_filter(filter(config)?);
    let (spans, traces) = match (config.log.traces_url(), service) {
        (Some(url), Some(service)) => {
            let provider = provider(config, &url, service)?;
            let tracer = provider.tracer("cairn");
            let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(filter(config)?);
            (Some(layer), Some(Traces(provider)))
        }
        _ => (None, None),
    };
    // A second initialisation (tests in one process) keeps the first.
    let _ = tracing_subscriber::registry().with(logs).with(spans).try_init();
    Ok(traces)
}

fn provider(config: &Config, url: &str, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| anyhow::anyhow!("configuration key `log.otlp_endpoint`: cannot export spans to {url}: {e}"))?;
    // OTEL_SERVICE_NAME, when set, names the process instead.
    let service = std::env::var("OTEL_SERVICE_NAME").ok().filter(|s| !s.is_empty()).unwrap_or(service.to_owned());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.version", cairn_core::VERSION))
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.log.trace_sample_ratio)));
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).with_sampler(sampler).build())
}
