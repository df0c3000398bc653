//! A first run that works: when the configuration names no provider, the
//! models people already have become providers — `OPENAI_API_KEY` (with
//! `OPENAI_BASE_URL`), `ANTHROPIC_API_KEY` (with `ANTHROPIC_BASE_URL`) and a
//! local Ollama — each with a sensible default model. Servers that list
//! their models (`GET {base}/models`, as OpenAI-compatible servers do) are
//! asked which they have.

use std::time::Duration;

use cairn_config::{LlmModel, LlmProvider};
use serde_json::Value;

/// Where Ollama listens unless told otherwise.
pub const OLLAMA_URL: &str = "http://127.0.0.1:11434/v1";

/// OpenAI models offered when the official API is used (its own `/models`
/// also lists embedding, image and audio models); the first is the default.
const OPENAI_MODELS: &[&str] = &["gpt-5-mini", "gpt-5", "gpt-4.1-mini"];
/// The same for Anthropic.
const ANTHROPIC_MODELS: &[&str] = &["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"];
/// The most models taken from a server's list.
const MAX_LISTED: usize = 50;

/// Providers found in the environment, and what to use by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovered {
    pub providers: Vec<LlmProvider>,
    /// `provider/model`, when anything was found.
    pub default_model: Option<String>,
    /// `provider/model` of an embedding model, for project memory.
    pub embedding_model: Option<String>,
    /// Where each provider came from, for the start-up log.
    pub sources: Vec<String>,
}

/// The model ids a server lists at `GET {base_url}/models`, or `None` when
/// it does not answer in time or not in the OpenAI list shape.
pub async fn list_models(http: &reqwest::Client, base_url: &str, api_key: &str) -> Option<Vec<String>> {
    let url = format!("{}/models", base_url.trim_end_matches('/'));
    let mut request = http.get(url).timeout(Duration::from_secs(2));
    if !api_key.is_empty() {
        request = request.bearer_auth(api_key);
    }
    let response = request.send().await.ok().filter(|r| r.status().is_success())?;
    let body: Value = response.json().await.ok()?;
    let ids: Vec<String> = body["data"]
        .as_array()?
        .iter()
        .filter_map(|model| model["id"].as_str().map(str::to_owned))
        .take(MAX_LISTED)
        .collect();
    (!ids.is_empty()).then_some(ids)
}

/// [`list_models`] with a client of its own, for callers without one.
pub async fn server_models(base_url: &str, api_key: &str) -> Option<Vec<String>> {
    list_models(&reqwest::Client::new(), base_url, api_key).await
}

fn models(names: impl IntoIterator<Item = String>) -> Vec<LlmModel> {
    names.into_iter().map(|name| LlmModel { name, ..Default::default() }).collect()
}

/// Looks for models in `env` (and at `ollama_url`).
pub async fn from_environment(env: &dyn Fn(&str) -> Option<String>, ollama_url: &str) -> Discovered {
    let http = &reqwest::Client::new();
    let set = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let mut found = Discovered::default();
    if let Some(key) = set("OPENAI_API_KEY") {
        // A base URL of someone else's (a proxy, a compatible server) says
        // which models it has; OpenAI's own gets the current defaults.
        let base_url = set("OPENAI_BASE_URL").unwrap_or_default();
        let listed = if base_url.is_empty() { None } else { list_models(http, &base_url, &key).await };
        let official = listed.is_none();
        let names = listed.unwrap_or_else(|| OPENAI_MODELS.iter().map(|m| (*m).to_owned()).collect());
        found.default_model.get_or_insert_with(|| format!("openai/{}", names[0]));
        if official {
            found.embedding_model = Some("openai/text-embedding-3-small".to_owned());
        }
        found.providers.push(LlmProvider {
            name: "openai".into(),
            kind: "openai".into(),
            base_url,
            api_key: key.into(),
            models: models(names),
            ..Default::default()
        });
        found.sources.push("OPENAI_API_KEY".into());
    }
    if let Some(key) = set("ANTHROPIC_API_KEY") {
        let names: Vec<String> = ANTHROPIC_MODELS.iter().map(|m| (*m).to_owned()).collect();
        found.default_model.get_or_insert_with(|| format!("anthropic/{}", names[0]));
        found.providers.push(LlmProvider {
            name: "anthropic".into(),
            kind: "anthropic".into(),
            base_url: set("ANTHROPIC_BASE_URL").unwrap_or_default(),
            api_key: key.into(),
            models: models(names),
            ..Default::default()
        });
        found.sources.push("ANTHROPIC_API_KEY".into());
    }
    if let Some(names) = list_models(http, ollama_url, "").await {
        found.default_model.get_or_insert_with(|| format!("ollama/{}", names[0]));
        found.providers.push(LlmProvider {
            name: "ollama".into(),
            kind: "openai-compatible".into(),
            base_url: ollama_url.to_owned(),
            models: models(names),
            ..Default::default()
        });
        found.sources.push(format!("Ollama at {ollama_url}"));
    }
    found
}
