//! `[log]`: what is logged and how.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `cairn_gateway=debug,info`
    /// (checked where the subscriber is built).
    pub level: String,
    pub format: LogFormat,
    /// Where traces go, as OTLP over HTTP (protobuf): a collector's base URL
    /// such as `http://otel-collector:4318` (`/v1/traces` is added) or a full
    /// `…/v1/traces` URL; empty: no traces.
    pub otlp_endpoint: String,
    /// The share of new traces kept (0 to 1); a trace that arrives from
    /// another process keeps that process's choice.
    pub trace_sample_ratio: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Json,
            otlp_endpoint: String::new(),
            trace_sample_ratio: 1.0,
        }
    }
}

impl LogConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let endpoint = &self.otlp_endpoint;
        if !(endpoint.is_empty() || endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::Invalid {
                key: "log.otlp_endpoint",
                expected: "empty (no traces) or an http:// or https:// URL of an OTLP collector",
                got: endpoint.clone(),
            });
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            return Err(Error::Invalid {
                key: "log.trace_sample_ratio",
                expected: "a number from 0 to 1",
                got: self.trace_sample_ratio.to_string(),
            });
        }
        Ok(())
    }

    /// Where spans are sent: the OTLP/HTTP traces URL, if traces are on.
    pub fn traces_url(&self) -> Option<String> {
        match self.otlp_endpoint.trim_end_matches('/') {
            "" => None,
            full if full.ends_with("/v1/traces") => Some(full.to_owned()),
            base => Some(format!("{base}/v1/traces")),
        }
    }
}
