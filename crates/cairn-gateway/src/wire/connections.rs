//! The wire types of model connections (a provider, its key and models).

use cairn_config::{LlmModel, LlmProvider};
use cairn_core::ConnectionId;
use cairn_core::model::ModelConnection;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One model of a connection.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionModel {
    /// The provider's name for it (for Azure, the deployment's).
    pub name: String,
    /// US dollars per million input and output tokens; absent: the family's list price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_usd_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_usd_per_mtok: Option<f64>,
}

impl From<&LlmModel> for ConnectionModel {
    fn from(m: &LlmModel) -> Self {
        ConnectionModel {
            name: m.name.clone(),
            input_usd_per_mtok: m.input_usd_per_mtok,
            output_usd_per_mtok: m.output_usd_per_mtok,
        }
    }
}

/// Where a connection was made.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionSource {
    /// By an administrator, here; editable.
    App,
    /// In the configuration file (or found in the environment at start); read-only.
    Configuration,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionResponse {
    /// `null` for a provider of the configuration.
    pub id: Option<ConnectionId>,
    /// The first part of its model ids (`openai` in `openai/gpt-5-mini`).
    pub name: String,
    /// `openai`, `anthropic`, `azure-openai` or `openai-compatible`.
    pub kind: String,
    /// Empty: the provider's own API.
    pub base_url: String,
    pub api_version: String,
    /// The key's last four characters (`…a1b2`); `null`: no key. The key
    /// itself is never shown again.
    pub key_hint: Option<String>,
    pub models: Vec<ConnectionModel>,
    pub enabled: bool,
    pub source: ConnectionSource,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
}

impl From<&ModelConnection> for ConnectionResponse {
    fn from(c: &ModelConnection) -> Self {
        let models: Vec<LlmModel> = serde_json::from_value(c.models.clone()).unwrap_or_default();
        ConnectionResponse {
            id: Some(c.id),
            name: c.name.clone(),
            kind: c.kind.clone(),
            base_url: c.base_url.clone(),
            api_version: c.api_version.clone(),
            key_hint: c.key_hint.clone(),
            models: models.iter().map(ConnectionModel::from).collect(),
            enabled: c.enabled,
            source: ConnectionSource::App,
            created_at: Some(c.created_at),
            updated_at: Some(c.updated_at),
        }
    }
}

impl From<&LlmProvider> for ConnectionResponse {
    fn from(p: &LlmProvider) -> Self {
        ConnectionResponse {
            id: None,
            name: p.name.clone(),
            kind: p.kind.clone(),
            base_url: p.base_url.clone(),
            api_version: p.api_version.clone(),
            key_hint: (!p.api_key.is_empty()).then(|| key_hint(p.api_key.expose())),
            models: p.models.iter().map(ConnectionModel::from).collect(),
            enabled: true,
            source: ConnectionSource::Configuration,
            created_at: None,
            updated_at: None,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRequest {
    /// Lowercase letters, digits, `-` and `_` (1 to 40): the prefix of its model ids.
    pub name: String,
    /// `openai`, `anthropic`, `azure-openai` or `openai-compatible`.
    pub kind: String,
    /// Empty: the provider's own API (required for Azure and compatible servers).
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub api_key: String,
    /// Azure's `api-version`; empty: a current GA version.
    #[serde(default)]
    pub api_version: String,
    pub models: Vec<ConnectionModel>,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionUpdate {
    pub base_url: Option<String>,
    /// A new key; `""` removes it; absent keeps it.
    pub api_key: Option<String>,
    pub api_version: Option<String>,
    pub models: Option<Vec<ConnectionModel>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionTestResponse {
    pub ok: bool,
    /// What happened, in words: "The model answered in 412 ms." or the
    /// provider's refusal ("the provider refused the key: …").
    pub detail: String,
    /// The model tried (`provider/model`).
    pub model: String,
    pub latency_ms: u64,
}

/// What people see of a key: its last four characters (`…a1b2`).
pub fn key_hint(key: &str) -> String {
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}
