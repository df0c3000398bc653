//! Anthropic Messages (`POST {base}/v1/messages`, streamed).

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{ChatModel, ChatRequest, Delta, DeltaStream, LlmError, Progress, Role, Step, Timeouts};

/// The API version Cairn speaks.
const VERSION: &str = "2023-06-01";

#[derive(Debug, Clone)]
pub(crate) struct Anthropic {
    pub http: reqwest::Client,
    /// e.g. `https://api.anthropic.com`
    pub base_url: String,
    pub api_key: String,
    pub timeouts: Timeouts,
}

/// Marks a block as the end of a prefix Anthropic may cache (five minutes,
/// renewed by every hit).
fn cached(mut block: Value) -> Value {
    block["cache_control"] = json!({ "type": "ephemeral" });
    block
}

/// The request body, with two cache breakpoints: the system prompt (the
/// same for the whole run) and the last message, so the next step reads
/// the whole conversation so far from the cache and pays full price only
/// for what is new.
pub(crate) fn body(request: &ChatRequest) -> Value {
    let last = request.messages.len().saturating_sub(1);
    let messages: Vec<Value> = request
        .messages
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let role = if m.role == Role::User { "user" } else { "assistant" };
            if index != last && m.images.is_empty() {
                return json!({ "role": role, "content": m.content });
            }
            // Images first (Anthropic's advice), then the text; the last
            // message's last block is the cache breakpoint.
            let mut blocks: Vec<Value> = m
                .images
                .iter()
                .map(|image| {
                    json!({ "type": "image",
                            "source": { "type": "base64", "media_type": image.media_type, "data": image.data } })
                })
                .collect();
            blocks.push(json!({ "type": "text", "text": m.content }));
            if index == last
                && let Some(end) = blocks.pop()
            {
                blocks.push(cached(end));
            }
            json!({ "role": role, "content": blocks })
        })
        .collect();
    let mut body =
        json!({ "model": request.model, "messages": messages, "max_tokens": request.max_tokens, "stream": true });
    if let Some(system) = &request.system {
        body["system"] = json!([cached(json!({ "type": "text", "text": system }))]);
    }
    if request.thinking_tokens >= 1024 {
        // Thinking counts against max_tokens, so the reply keeps its own
        // room; Anthropic refuses a temperature with thinking on.
        body["thinking"] = json!({ "type": "enabled", "budget_tokens": request.thinking_tokens });
        body["max_tokens"] = json!(request.max_tokens + request.thinking_tokens);
    } else if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if !request.stop.is_empty() {
        body["stop_sequences"] = json!(request.stop);
    }
    body
}

fn stream_error(error: &Value) -> LlmError {
    let message = error["message"].as_str().unwrap_or("error").to_owned();
    match error["type"].as_str().unwrap_or_default() {
        "rate_limit_error" => LlmError::RateLimited { retry_after: None },
        "overloaded_error" => LlmError::Server { status: 529, message },
        "authentication_error" | "permission_error" => LlmError::Auth(message),
        "invalid_request_error" | "not_found_error" => LlmError::InvalidRequest(message),
        _ => LlmError::Server { status: 500, message },
    }
}

#[async_trait]
impl ChatModel for Anthropic {
    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let url = format!("{}/v1/messages", self.base_url.trim_end_matches('/'));
        let call = self
            .http
            .post(url)
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", VERSION)
            .json(&body(request));
        let response = crate::send(call, &self.timeouts, &request.model).await?;
        Ok(crate::deltas(crate::events(response, self.timeouts.idle), read))
    }
}

/// What one event of Anthropic's stream means: usage at the start, text
/// and thinking deltas, the stop reason, the end.
fn read(event: Option<&crate::sse::Event>, progress: &mut Progress) -> Step {
    let Some(event) = event else {
        return Step::Finish(Err(LlmError::Connection("the stream ended before the reply did".into())));
    };
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    match event.name.as_deref().or(data["type"].as_str()).unwrap_or_default() {
        "message_start" => {
            let usage = &data["message"]["usage"];
            let count = |field: &str| usage[field].as_u64().unwrap_or(0);
            // Anthropic's input_tokens already leaves out what the cache read or wrote.
            progress.usage.input_tokens = count("input_tokens");
            progress.usage.cache_read_tokens = count("cache_read_input_tokens");
            progress.usage.cache_write_tokens = count("cache_creation_input_tokens");
            Step::Skip
        }
        "content_block_delta" => {
            let delta = &data["delta"];
            if let Some(text) = delta["text"].as_str().filter(|t| !t.is_empty()) {
                return Step::Emit(Delta::Text(text.to_owned()));
            }
            match delta["thinking"].as_str().filter(|t| !t.is_empty()) {
                Some(thinking) => Step::Emit(Delta::Reasoning(thinking.to_owned())),
                None => Step::Skip,
            }
        }
        "message_delta" => {
            if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                progress.stop_reason = Some(reason.to_owned());
            }
            if let Some(output) = data["usage"]["output_tokens"].as_u64() {
                progress.usage.output_tokens = output;
            }
            Step::Skip
        }
        "message_stop" => {
            let stop_reason = progress.stop_reason.take().unwrap_or_else(|| "end_turn".to_owned());
            Step::Finish(Ok(Delta::Done { usage: progress.usage, stop_reason }))
        }
        "error" => Step::Finish(Err(stream_error(&data["error"]))),
        _ => Step::Skip, // ping, content_block_start/stop
    }
}
