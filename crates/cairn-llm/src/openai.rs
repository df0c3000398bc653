//! OpenAI Chat Completions (`POST {base}/chat/completions`, streamed), which
//! OpenAI-compatible servers (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter,
//! Gemini's OpenAI endpoint) speak too, and Azure OpenAI's deployments
//! (`{resource}/openai/deployments/{deployment}/chat/completions?api-version=…`
//! with an `api-key` header).

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{ChatModel, ChatRequest, Delta, DeltaStream, LlmError, Progress, Role, Step, Timeouts, TokenLimit, Usage};

/// Azure OpenAI's `api-version` when the configuration names none (GA).
pub(crate) const AZURE_API_VERSION: &str = "2024-10-21";

/// Where requests go and how they are authenticated.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// `{base}/chat/completions` with a bearer key (OpenAI and compatible servers).
    Standard,
    /// An Azure OpenAI resource: the model is the deployment's name.
    Azure { api_version: String },
}

#[derive(Debug, Clone)]
pub(crate) struct OpenAi {
    pub http: reqwest::Client,
    /// e.g. `https://api.openai.com/v1`, or an Azure resource's URL.
    pub base_url: String,
    pub api_key: String,
    pub timeouts: Timeouts,
    pub endpoint: Endpoint,
}

impl OpenAi {
    fn url(&self, model: &str) -> String {
        let base = self.base_url.trim_end_matches('/');
        match &self.endpoint {
            Endpoint::Standard => format!("{base}/chat/completions"),
            Endpoint::Azure { api_version } => {
                let base = base.strip_suffix("/openai").unwrap_or(base);
                // Deployment names are letters, digits, `-` and `_`; anything
                // else is escaped rather than trusted into the path.
                let deployment: String = model
                    .bytes()
                    .map(|b| match b {
                        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                format!("{base}/openai/deployments/{deployment}/chat/completions?api-version={api_version}")
            }
        }
    }
}

pub(crate) fn body(request: &ChatRequest) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({ "role": "system", "content": system }));
    }
    for message in &request.messages {
        let role = if message.role == Role::User { "user" } else { "assistant" };
        if message.images.is_empty() {
            messages.push(json!({ "role": role, "content": message.content }));
            continue;
        }
        // Text, then each image as a data URL part.
        let mut parts = vec![json!({ "type": "text", "text": message.content })];
        parts.extend(message.images.iter().map(|image| {
            json!({ "type": "image_url", "image_url": { "url": format!("data:{};base64,{}", image.media_type, image.data) } })
        }));
        messages.push(json!({ "role": role, "content": parts }));
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    let limit = match request.token_limit {
        TokenLimit::MaxTokens => "max_tokens",
        TokenLimit::MaxCompletionTokens => "max_completion_tokens",
    };
    body[limit] = json!(request.max_tokens);
    if let Some(effort) = &request.reasoning_effort {
        body["reasoning_effort"] = json!(effort);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if !request.stop.is_empty() {
        body["stop"] = json!(request.stop);
    }
    body
}

#[async_trait]
impl ChatModel for OpenAi {
    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let mut call = self.http.post(self.url(&request.model)).json(&body(request));
        if !self.api_key.is_empty() {
            call = match self.endpoint {
                Endpoint::Standard => call.bearer_auth(&self.api_key),
                Endpoint::Azure { .. } => call.header("api-key", &self.api_key),
            };
        }
        let response = crate::send(call, &self.timeouts, &request.model).await?;
        Ok(crate::deltas(crate::events(response, self.timeouts.idle), read))
    }
}

/// What one chunk of a Chat Completions stream means: text, reasoning
/// where a server shows it, usage, the finish reason, the end.
fn read(event: Option<&crate::sse::Event>, progress: &mut Progress) -> Step {
    let Some(event) = event else {
        // Some compatible servers end without `[DONE]` after the finish reason.
        return Step::Finish(match progress.stop_reason.take() {
            Some(stop_reason) => Ok(Delta::Done { usage: progress.usage, stop_reason }),
            None => Err(LlmError::Connection("the stream ended before the reply did".into())),
        });
    };
    if event.data.trim() == "[DONE]" {
        let stop_reason = progress.stop_reason.take().unwrap_or_else(|| "stop".to_owned());
        return Step::Finish(Ok(Delta::Done { usage: progress.usage, stop_reason }));
    }
    let chunk: Value = match serde_json::from_str(&event.data) {
        Ok(chunk) => chunk,
        Err(error) => return Step::Finish(Err(LlmError::Protocol(format!("a chunk is not JSON: {error}")))),
    };
    if let Some(error) = chunk.get("error") {
        let message = error["message"].as_str().unwrap_or("error").to_owned();
        return Step::Finish(Err(LlmError::Server { status: 500, message }));
    }
    if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
        // OpenAI caches long prompts by itself and counts the tokens it
        // read within prompt_tokens.
        let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
        let cached = usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0).min(prompt);
        progress.usage = Usage {
            input_tokens: prompt - cached,
            output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
        };
    }
    let choice = &chunk["choices"][0];
    if let Some(reason) = choice["finish_reason"].as_str() {
        progress.stop_reason = Some(reason.to_owned());
    }
    let delta = &choice["delta"];
    if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
        return Step::Emit(Delta::Text(text.to_owned()));
    }
    // Servers that show reasoning: `reasoning_content` (DeepSeek, vLLM,
    // llama.cpp) or `reasoning` (OpenRouter, Ollama).
    match delta["reasoning_content"].as_str().or(delta["reasoning"].as_str()).filter(|t| !t.is_empty()) {
        Some(thinking) => Step::Emit(Delta::Reasoning(thinking.to_owned())),
        None => Step::Skip,
    }
}
