//! The configured models (`llm.providers`), by id `provider/model`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use async_trait::async_trait;

use crate::anthropic::Anthropic;
use crate::openai::{AZURE_API_VERSION, Endpoint, OpenAi};
use crate::responses::Responses;
use crate::retry::{RetryPolicy, Retrying};
use crate::{Api, Capabilities, ChatModel, ChatRequest, DeltaStream, LlmError, Timeouts, Usage};

/// A configured model, as `GET /api/v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// `provider/model`, what projects and threads choose.
    pub id: String,
    pub provider: String,
    /// The provider's own name for it.
    pub model: String,
    /// `openai`, `anthropic`, `openai-compatible` or `azure-openai`.
    pub kind: String,
    /// US dollars per million input and output tokens (0 when not priced).
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    /// The context window in tokens.
    pub context_tokens: u32,
    /// What the model accepts (by family, overridden by configuration).
    pub capabilities: Capabilities,
}

impl ModelInfo {
    /// What `usage` costs on this model, in US dollars: each kind of token
    /// at its own rate.
    pub fn cost(&self, usage: Usage) -> f64 {
        let caps = &self.capabilities;
        (usage.input_tokens as f64 * self.input_usd_per_mtok
            + usage.cache_read_tokens as f64 * caps.cache_read_usd_per_mtok
            + usage.cache_write_tokens as f64 * caps.cache_write_usd_per_mtok
            + usage.output_tokens as f64 * self.output_usd_per_mtok)
            / 1_000_000.0
    }

    /// What `usage` would have cost with no prompt cache (every prompt
    /// token at the input price), less what it cost: what caching saved
    /// (negative when cache writes cost more than reads saved).
    pub fn saved_by_cache(&self, usage: Usage) -> f64 {
        let uncached =
            Usage { input_tokens: usage.prompt_tokens(), output_tokens: usage.output_tokens, ..Usage::default() };
        self.cost(uncached) - self.cost(usage)
    }
}

/// A model as its capabilities ask it to be called: through the right API,
/// with the right token-limit parameter, no temperature where the model
/// refuses one, its reasoning effort.
#[derive(Debug)]
struct Tuned {
    inner: Arc<dyn ChatModel>,
    /// The Responses API client, for a model whose capabilities choose it
    /// (OpenAI's own reasoning models); requests with stop sequences, which
    /// it does not take, go to `inner`.
    responses: Option<Arc<dyn ChatModel>>,
    capabilities: Capabilities,
}

#[async_trait]
impl ChatModel for Tuned {
    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let mut request = request.clone();
        request.token_limit = self.capabilities.token_limit;
        if !self.capabilities.temperature {
            request.temperature = None;
        }
        if request.reasoning_effort.is_none() {
            request.reasoning_effort.clone_from(&self.capabilities.reasoning_effort);
        }
        request.reasoning = self.capabilities.reasoning;
        if self.capabilities.reasoning && request.thinking_tokens == 0 {
            request.thinking_tokens = self.capabilities.thinking_tokens;
        }
        if !self.capabilities.images {
            // A model that cannot see is told, in words, what is there.
            for message in request.messages.iter_mut().filter(|m| !m.images.is_empty()) {
                let count = message.images.len();
                let kinds: Vec<&str> = message.images.iter().map(|i| i.media_type.as_str()).collect();
                message.content.push_str(&format!(
                    "\n[{count} image{} here ({}) that this model cannot see]",
                    if count == 1 { "" } else { "s" },
                    kinds.join(", ")
                ));
                message.images.clear();
            }
        }
        match &self.responses {
            Some(responses) if request.stop.is_empty() => responses.stream(&request).await,
            _ => self.inner.stream(&request).await,
        }
    }
}

/// The base URL the providers' own SDKs would use for a kind when the
/// configuration gives none: `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL` if
/// set (read through `env`), else the official endpoint.
pub fn official_base_url(kind: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let (variable, official) = match kind {
        "anthropic" => ("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
        _ => ("OPENAI_BASE_URL", "https://api.openai.com/v1"),
    };
    env(variable).filter(|url| !url.trim().is_empty()).unwrap_or_else(|| official.to_owned())
}

/// The models at one moment.
#[derive(Debug, Default)]
struct Registry {
    models: BTreeMap<String, (Arc<dyn ChatModel>, ModelInfo)>,
    default: Option<String>,
}

/// Every connected model. Shared by the gateway and the agent; replaced as
/// a whole when an administrator changes a connection (calls in flight keep
/// the model they started with).
#[derive(Debug, Default)]
pub struct Models {
    current: std::sync::RwLock<Arc<Registry>>,
}

impl Models {
    /// The models of `config`, with `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL`
    /// from the process environment for official providers without a base URL.
    pub fn from_config(config: &cairn_config::LlmConfig) -> Result<Models, LlmError> {
        Models::from_config_with_env(config, &|name| std::env::var(name).ok())
    }

    /// [`Models::from_config`] with the environment given.
    pub fn from_config_with_env(
        config: &cairn_config::LlmConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Models, LlmError> {
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
            let base_url = if provider.base_url.is_empty() {
                official_base_url(&provider.kind, env)
            } else {
                provider.base_url.clone()
            };
            let api_key = provider.api_key.expose().to_owned();
            // OpenAI's own API also speaks Responses, for the models that choose it.
            let responses: Option<Arc<dyn ChatModel>> = (provider.kind == "openai").then(|| {
                let client =
                    Responses { http: http.clone(), base_url: base_url.clone(), api_key: api_key.clone(), timeouts };
                Arc::new(Retrying { inner: Arc::new(client), policy }) as Arc<dyn ChatModel>
            });
            let client: Arc<dyn ChatModel> = match provider.kind.as_str() {
                "openai" | "openai-compatible" => {
                    Arc::new(OpenAi { http: http.clone(), base_url, api_key, timeouts, endpoint: Endpoint::Standard })
                }
                "azure-openai" => {
                    let api_version = if provider.api_version.is_empty() {
                        AZURE_API_VERSION.to_owned()
                    } else {
                        provider.api_version.clone()
                    };
                    let endpoint = Endpoint::Azure { api_version };
                    Arc::new(OpenAi { http: http.clone(), base_url, api_key, timeouts, endpoint })
                }
                "anthropic" => Arc::new(Anthropic { http: http.clone(), base_url, api_key, timeouts }),
                other => return Err(LlmError::InvalidRequest(format!("unknown provider kind `{other}`"))),
            };
            let client: Arc<dyn ChatModel> = Arc::new(Retrying { inner: client, policy });
            for model in &provider.models {
                let capabilities = Capabilities::configured(&provider.kind, model);
                let info = ModelInfo {
                    id: format!("{}/{}", provider.name, model.name),
                    provider: provider.name.clone(),
                    model: model.name.clone(),
                    kind: provider.kind.clone(),
                    input_usd_per_mtok: capabilities.input_usd_per_mtok,
                    output_usd_per_mtok: capabilities.output_usd_per_mtok,
                    context_tokens: capabilities.context_tokens,
                    capabilities: capabilities.clone(),
                };
                let responses = responses.clone().filter(|_| capabilities.api == Api::Responses);
                let tuned: Arc<dyn ChatModel> = Arc::new(Tuned { inner: client.clone(), responses, capabilities });
                models.insert(info.id.clone(), (tuned, info));
            }
        }
        let default = if config.default_model.is_empty() {
            models.keys().next().cloned()
        } else {
            Some(config.default_model.clone())
        };
        Ok(Models { current: std::sync::RwLock::new(Arc::new(Registry { models, default })) })
    }

    fn registry(&self) -> Arc<Registry> {
        // A poisoned lock still holds a whole registry (it is only ever swapped).
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Takes `other`'s models in place of these, at once.
    pub fn replace(&self, other: Models) {
        let next = other.registry();
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = next;
    }

    /// Every model, by id.
    pub fn list(&self) -> Vec<ModelInfo> {
        self.registry().models.values().map(|(_, info)| info.clone()).collect()
    }

    /// The model used when a project or thread names none.
    pub fn default_id(&self) -> Option<String> {
        self.registry().default.clone()
    }

    /// A model by id (`provider/model`), or the default for `None`.
    pub fn get(&self, id: Option<&str>) -> Result<(Arc<dyn ChatModel>, ModelInfo), LlmError> {
        let registry = self.registry();
        let id =
            id.or(registry.default.as_deref()).ok_or_else(|| LlmError::UnknownModel("(none configured)".into()))?;
        registry.models.get(id).cloned().ok_or_else(|| LlmError::UnknownModel(id.to_owned()))
    }
}
