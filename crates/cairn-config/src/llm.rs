//! `[llm]`: the model providers, their models, and how calls are made.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Secret, SigningKey};

/// The language models Cairn may use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// The providers and their models (`[[llm.providers]]` in TOML).
    pub providers: Vec<LlmProvider>,
    /// `provider/model` used when a project or thread names none; empty:
    /// the first configured.
    pub default_model: String,
    /// Retries of a call that fails before its first token (429, 5xx, a
    /// dropped connection).
    pub max_retries: u32,
    /// How long a call may wait for its first token, in seconds.
    pub first_token_timeout_secs: u64,
    /// How long a stream may pause between tokens, in seconds.
    pub idle_timeout_secs: u64,
    /// The embedding model of project memory, `provider/model` of an
    /// `openai` or `openai-compatible` provider (its `/embeddings`); empty:
    /// memory is off.
    pub embedding_model: String,
    /// With no providers configured, connect what the environment offers:
    /// `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` (and their `*_BASE_URL`) and a
    /// local Ollama on 127.0.0.1:11434.
    pub discover: bool,
    /// Keys that seal the provider keys administrators enter in the app:
    /// `[{kid = "2026-11", secret = "<base64url, ≥32 bytes>"}]`; the first
    /// seals, all open (rotate by adding a new key first). Empty: a key is
    /// generated on first start into `<data_dir>/llm/secret-keys.json`.
    pub secret_keys: Vec<SigningKey>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            providers: Vec::new(),
            default_model: String::new(),
            max_retries: 3,
            first_token_timeout_secs: 120,
            idle_timeout_secs: 60,
            embedding_model: String::new(),
            discover: true,
            secret_keys: Vec::new(),
        }
    }
}
/// One LLM provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmProvider {
    /// The first part of model ids (`openai` in `openai/gpt-4o-mini`).
    pub name: String,
    /// `openai`, `anthropic`, `openai-compatible` or `azure-openai`.
    pub kind: String,
    /// Empty for the provider's own API (or `OPENAI_BASE_URL` /
    /// `ANTHROPIC_BASE_URL` when set, as the providers' SDKs do); else e.g.
    /// `http://127.0.0.1:11434/v1`; for Azure, `https://RESOURCE.openai.azure.com`.
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub api_key: Secret,
    /// Azure OpenAI's `api-version`; empty: a current GA version.
    #[serde(default)]
    pub api_version: String,
    /// For Azure, each model's name is its deployment's name.
    pub models: Vec<LlmModel>,
}

/// One model of a provider. Everything but the name comes from built-in
/// defaults by model family (see `cairn_llm::Capabilities`); what is set
/// here overrides them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmModel {
    pub name: String,
    /// US dollars per million input tokens (for cost accounting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_usd_per_mtok: Option<f64>,
    /// US dollars per million output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_usd_per_mtok: Option<f64>,
    /// US dollars per million prompt tokens read from the provider's cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_usd_per_mtok: Option<f64>,
    /// US dollars per million prompt tokens written to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_usd_per_mtok: Option<f64>,
    /// The model's context window in tokens: a prompt never exceeds it
    /// (older turns are summarised first). 0: the family's.
    #[serde(default)]
    pub context_tokens: u32,
    /// OpenAI's API to call it through: `chat_completions` or `responses`;
    /// empty: `responses` for OpenAI's own reasoning models (their
    /// reasoning summaries need it), `chat_completions` otherwise.
    #[serde(default)]
    pub api: String,
    /// The parameter that caps a reply: `max_tokens` or
    /// `max_completion_tokens`; empty: the family's.
    #[serde(default)]
    pub token_limit: String,
    /// Whether the model accepts a temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<bool>,
    /// Whether the model accepts images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<bool>,
    /// Whether the model reasons before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<bool>,
    /// `reasoning_effort` for OpenAI reasoning models: `minimal`, `low`,
    /// `medium` or `high`; empty: the provider's default.
    #[serde(default)]
    pub reasoning_effort: String,
    /// Anthropic extended thinking budget in tokens (at least 1024; 0 or
    /// absent: off). The thinking streams apart from the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_tokens: Option<u32>,
}

impl LlmConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        for provider in &self.providers {
            // A compatible server may leave its models out: they are read from its `/models`.
            let models_ok = !provider.models.is_empty() || provider.kind == "openai-compatible";
            if !matches!(provider.kind.as_str(), "openai" | "anthropic" | "openai-compatible" | "azure-openai")
                || provider.name.is_empty()
                || provider.name.contains('/')
                || !models_ok
            {
                return Err(Error::Invalid {
                    key: "llm.providers",
                    expected: "providers with a name (no `/`), a kind of openai, anthropic, openai-compatible \
                           or azure-openai, and at least one model (an openai-compatible server's are \
                           read from its /models when none are listed)",
                    got: format!("{provider:?}"),
                });
            }
            if matches!(provider.kind.as_str(), "openai-compatible" | "azure-openai") && provider.base_url.is_empty() {
                return Err(Error::Invalid {
                    key: "llm.providers",
                    expected: "a base_url for an openai-compatible or azure-openai provider \
                           (Azure: https://RESOURCE.openai.azure.com)",
                    got: provider.name.clone(),
                });
            }
            for model in &provider.models {
                let limit_ok = matches!(model.token_limit.as_str(), "" | "max_tokens" | "max_completion_tokens");
                let api_ok = matches!(model.api.as_str(), "" | "chat_completions" | "responses");
                let effort_ok = matches!(model.reasoning_effort.as_str(), "" | "minimal" | "low" | "medium" | "high");
                let thinking_ok = model.thinking_tokens.is_none_or(|t| t == 0 || (1024..=128_000).contains(&t));
                if model.name.is_empty() || !limit_ok || !api_ok || !effort_ok || !thinking_ok {
                    return Err(Error::Invalid {
                        key: "llm.providers",
                        expected: "models with a name, an api of chat_completions or responses (or none), a \
                               token_limit of max_tokens or max_completion_tokens (or none), a reasoning_effort of minimal, low, medium or high (or none), and \
                               thinking_tokens of 0 or 1024 to 128000",
                        got: format!("{}/{}", provider.name, model.name),
                    });
                }
            }
        }
        if !self.default_model.is_empty()
            && !self
                .providers
                .iter()
                .any(|p| p.models.iter().any(|m| format!("{}/{}", p.name, m.name) == self.default_model))
        {
            return Err(Error::Invalid {
                key: "llm.default_model",
                expected: "a configured `provider/model`",
                got: self.default_model.clone(),
            });
        }
        if self.first_token_timeout_secs == 0 || self.idle_timeout_secs == 0 {
            return Err(Error::Invalid {
                key: "llm.first_token_timeout_secs",
                expected: "timeouts of at least 1 second",
                got: format!("{} / {}", self.first_token_timeout_secs, self.idle_timeout_secs),
            });
        }
        if !self.embedding_model.is_empty() {
            let provider = self.embedding_model.split_once('/').map(|(p, _)| p).unwrap_or_default();
            let usable = self.providers.iter().any(|p| p.name == provider && p.kind != "anthropic");
            if !usable {
                return Err(Error::Invalid {
                    key: "llm.embedding_model",
                    expected: "provider/model of a configured openai or openai-compatible provider",
                    got: self.embedding_model.clone(),
                });
            }
        }
        Ok(())
    }
}
