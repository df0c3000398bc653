//! The configured models (`llm.providers`), by id `provider/model`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::anthropic::Anthropic;
use crate::openai::OpenAi;
use crate::retry::{RetryPolicy, Retrying};
use crate::{ChatModel, LlmError, Timeouts, Usage};

/// A configured model, as `GET /api/v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// `provider/model`, what projects and threads choose.
    pub id: String,
    pub provider: String,
    /// The provider's own name for it.
    pub model: String,
    /// `openai`, `anthropic` or `openai-compatible`.
    pub kind: String,
    /// US dollars per million input and output tokens (0 when not priced).
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    /// The context window in tokens.
    pub context_tokens: u32,
}

impl ModelInfo {
    /// What `usage` costs on this model, in US dollars.
    pub fn cost(&self, usage: Usage) -> f64 {
        (usage.input_tokens as f64 * self.input_usd_per_mtok + usage.output_tokens as f64 * self.output_usd_per_mtok)
            / 1_000_000.0
    }
}

/// Every configured model.
#[derive(Debug, Clone, Default)]
pub struct Models {
    models: BTreeMap<String, (Arc<dyn ChatModel>, ModelInfo)>,
    default: Option<String>,
}

impl Models {
    pub fn from_config(config: &cairn_config::LlmConfig) -> Result<Models, LlmError> {
        let timeouts = Timeouts {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(config.first_token_timeout_secs),
            idle: Duration::from_secs(config.idle_timeout_secs),
        };
        let policy = RetryPolicy { max_retries: config.max_retries, ..RetryPolicy::default() };
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .build()
            .map_err(|e| LlmError::Connection(e.to_string()))?;
        let mut models = BTreeMap::new();
        for provider in &config.providers {
            let base = |official: &str| {
                if provider.base_url.is_empty() { official.to_owned() } else { provider.base_url.clone() }
            };
            let client: Arc<dyn ChatModel> = match provider.kind.as_str() {
                "openai" | "openai-compatible" => Arc::new(OpenAi {
                    http: http.clone(),
                    base_url: base("https://api.openai.com/v1"),
                    api_key: provider.api_key.clone(),
                    timeouts,
                }),
                "anthropic" => Arc::new(Anthropic {
                    http: http.clone(),
                    base_url: base("https://api.anthropic.com"),
                    api_key: provider.api_key.clone(),
                    timeouts,
                }),
                other => return Err(LlmError::InvalidRequest(format!("unknown provider kind `{other}`"))),
            };
            let client: Arc<dyn ChatModel> = Arc::new(Retrying { inner: client, policy });
            for model in &provider.models {
                let info = ModelInfo {
                    id: format!("{}/{}", provider.name, model.name),
                    provider: provider.name.clone(),
                    model: model.name.clone(),
                    kind: provider.kind.clone(),
                    input_usd_per_mtok: model.input_usd_per_mtok,
                    output_usd_per_mtok: model.output_usd_per_mtok,
                    context_tokens: model.context_tokens,
                };
                models.insert(info.id.clone(), (client.clone(), info));
            }
        }
        let default = if config.default_model.is_empty() {
            models.keys().next().cloned()
        } else {
            Some(config.default_model.clone())
        };
        Ok(Models { models, default })
    }

    /// Every model, by id.
    pub fn list(&self) -> Vec<ModelInfo> {
        self.models.values().map(|(_, info)| info.clone()).collect()
    }

    /// The model used when a project or thread names none.
    pub fn default_id(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// A model by id (`provider/model`), or the default for `None`.
    pub fn get(&self, id: Option<&str>) -> Result<(Arc<dyn ChatModel>, ModelInfo), LlmError> {
        let id = id.or(self.default.as_deref()).ok_or_else(|| LlmError::UnknownModel("(none configured)".into()))?;
        self.models.get(id).cloned().ok_or_else(|| LlmError::UnknownModel(id.to_owned()))
    }
}
