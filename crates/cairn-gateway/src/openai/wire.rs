//! The OpenAI chat completions wire shapes Cairn speaks (the subset its
//! agents can honour), and OpenAI's error shape for everything that fails
//! under `/v1`.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use cairn_core::{RunId, ThreadId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A chat completion request. Fields OpenAI defines that do not apply to an
/// agent (sampling, penalties, logit bias, …) are accepted and ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    /// An agent, from `GET /v1/models`: `cairn`, `cairn-plan`, either with
    /// `:provider/model` to choose the language model, or `agent:<name>`
    /// for a configured sub-agent.
    #[schema(example = "cairn")]
    pub model: String,
    /// The conversation; the last one is the user's task.
    #[schema(example = json!([{ "role": "user", "content": "What is 6 times 7?" }]))]
    pub messages: Vec<ChatMessage>,
    /// Send the reply as server-sent events of `chat.completion.chunk`s.
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Any value asks for the agent's steps (its thinking, code and
    /// outputs) as `reasoning_content`, streamed or at the end.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// Only 1.
    #[serde(default)]
    pub n: Option<u32>,
    /// Not offered: the agent calls its own tools.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    /// End the stream with a chunk holding the run's token usage.
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or a list of parts of which the `text` ones are read.
    #[serde(default)]
    #[schema(value_type = Option<MessageContent>)]
    pub content: Option<Value>,
}

/// A message's content as OpenAI defines it: text, or a list of parts, of
/// which only `text` parts are accepted.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a message: `text` parts are read; others are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl ChatMessage {
    /// Its text: the string, or the text parts joined; an image or other
    /// part is refused by name.
    pub fn text(&self) -> Result<String, String> {
        match &self.content {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(text)) => Ok(text.clone()),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(piece)) => {
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(piece);
                        }
                        (kind, _) => {
                            return Err(format!(
                                "a message part of type `{}` is not accepted here: send text, and upload files \
                                 to the project's library (the agent reads them there)",
                                kind.unwrap_or("?")
                            ));
                        }
                    }
                }
                Ok(text)
            }
            Some(_) => Err("a message's content is a string or a list of parts".to_owned()),
        }
    }
}

/// A finished chat completion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-` and the run's id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: i64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: CompletionUsage,
    /// Where the conversation lives in Cairn.
    pub cairn: CairnRef,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    /// `stop`.
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The agent's answer (or, when the run waits for a person, its question).
    pub content: String,
    /// With `reasoning_effort`: the agent's steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct CompletionUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl From<cairn_llm::Usage> for CompletionUsage {
    fn from(usage: cairn_llm::Usage) -> Self {
        let prompt_tokens = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens;
        CompletionUsage {
            prompt_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: prompt_tokens + usage.output_tokens,
        }
    }
}

/// The thread and run behind a completion (also sent as the
/// `X-Cairn-Thread-Id` and `X-Cairn-Run-Id` headers).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CairnRef {
    pub thread_id: ThreadId,
    pub run_id: RunId,
    /// `succeeded`, or `waiting` when the run asks a person.
    pub status: &'static str,
}

/// One server-sent chunk of a streamed completion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Only in the last chunk, with `stream_options.include_usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    /// `stop` in the last chunk of the answer, else `null`.
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

/// An agent, as OpenAI's clients list models.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelObject {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds (the server's start).
    pub created: i64,
    /// Always `cairn`.
    pub owned_by: &'static str,
}

/// OpenAI's error body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpenAiErrorResponse {
    pub error: OpenAiError,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpenAiError {
    /// What went wrong, in words a person can act on.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`,
    /// `permission_error`, `not_found_error`, `rate_limit_error` or
    /// `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// Cairn's stable code (as in its problem documents).
    pub code: Option<String>,
}

impl OpenAiError {
    pub fn new(status: u16, code: &str, message: String) -> OpenAiError {
        let kind = match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        };
        OpenAiError { message, kind: kind.to_owned(), param: None, code: Some(code.to_owned()) }
    }
}

/// Whether a path is under the OpenAI-compatible API.
pub(crate) fn is_openai_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// Rewrites every problem document answered under `/v1` (by a handler, the
/// authentication and rate limits, the body limit or routing) into
/// OpenAI's error shape, status and headers kept, so OpenAI's clients
/// raise their usual errors with Cairn's message and code.
pub(crate) async fn openai_errors(request: Request, next: Next) -> Response {
    if !is_openai_path(request.uri().path()) {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let problem =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/problem"));
    if !problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let problem: Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |key: &str| problem.get(key).and_then(Value::as_str);
    let message = text("detail").or_else(|| text("title")).unwrap_or("the request failed").to_owned();
    let error = OpenAiError::new(parts.status.as_u16(), text("code").unwrap_or("error"), message);
    let body = serde_json::to_vec(&OpenAiErrorResponse { error }).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
