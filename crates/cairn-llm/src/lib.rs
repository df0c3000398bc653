//! Cairn's LLM providers behind one trait, [`ChatModel`]: OpenAI Chat
//! Completions, Anthropic Messages, and any OpenAI-compatible server by base
//! URL (Ollama, vLLM, llama.cpp's server, OpenRouter). Replies stream as
//! token deltas; calls time out (to connect, to the first token, between
//! tokens); failures before the first token are retried with backoff and
//! jitter, honouring `Retry-After`; usage and cost come with every reply.
//!
//! Architecture invariant: provider wire formats live only in this crate;
//! the agent sees [`ChatRequest`], [`Delta`]s and [`Completion`]s.

mod anthropic;
pub mod discover;
mod embeddings;
mod family;
mod models;
mod openai;
mod responses;
mod retry;
mod sse;

pub use embeddings::Embedder;
pub use family::{Api, Capabilities, TokenLimit};
// `Image` is defined below, beside `Message`.
pub use models::{ModelInfo, Models, official_base_url};
pub use retry::RetryPolicy;

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// An image in a message, as providers take it: base64 of a PNG, JPEG, GIF
/// or WebP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub media_type: String,
    /// The bytes, base64 (standard alphabet, padded).
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// Images that go with the text, for models that see (others are told
    /// in words that they are there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Message {
        Message { role: Role::User, content: content.into(), images: Vec::new() }
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message { role: Role::Assistant, content: content.into(), images: Vec::new() }
    }

    /// A user message with images.
    pub fn user_with_images(content: impl Into<String>, images: Vec<Image>) -> Message {
        Message { role: Role::User, content: content.into(), images }
    }
}

/// One call to a model. The model's [`Capabilities`] decide how it is sent
/// (the registry fills `token_limit` and `reasoning_effort`, and leaves out
/// a temperature the model refuses).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The provider's model name (without the `provider/` prefix).
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    /// Text at which the model stops (not included in the reply).
    pub stop: Vec<String>,
    /// Which parameter carries `max_tokens`.
    pub token_limit: TokenLimit,
    /// OpenAI's `reasoning_effort`, for models that reason.
    pub reasoning_effort: Option<String>,
    /// Whether the model reasons, so a summary of it may be asked for
    /// (OpenAI's Responses API; set by the registry from the capabilities).
    pub reasoning: bool,
    /// Anthropic's extended thinking budget in tokens (0: off; at least
    /// 1024 when on); the reply's `max_tokens` comes on top.
    pub thinking_tokens: u32,
}

impl Default for ChatRequest {
    fn default() -> Self {
        ChatRequest {
            model: String::new(),
            system: None,
            messages: Vec::new(),
            max_tokens: 1024,
            temperature: None,
            stop: Vec::new(),
            token_limit: TokenLimit::MaxTokens,
            reasoning_effort: None,
            reasoning: false,
            thinking_tokens: 0,
        }
    }
}

/// Tokens a call used. The prompt's tokens are split three ways, each
/// priced at its own rate: read from the provider's prompt cache, written to
/// it (Anthropic charges a premium), and neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to a cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens read from the cache (Anthropic's
    /// `cache_read_input_tokens`, OpenAI's `cached_tokens`).
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the cache (Anthropic's `cache_creation_input_tokens`).
    #[serde(default)]
    pub cache_write_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
    }

    /// What was used since `earlier` (a snapshot of the same counters).
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_sub(earlier.input_tokens),
            output_tokens: self.output_tokens.saturating_sub(earlier.output_tokens),
            cache_read_tokens: self.cache_read_tokens.saturating_sub(earlier.cache_read_tokens),
            cache_write_tokens: self.cache_write_tokens.saturating_sub(earlier.cache_write_tokens),
        }
    }

    /// Every token of the prompt, cached or not.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
    }
}

/// A piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    /// The model's reasoning, where it shows it (Anthropic's extended
    /// thinking; `reasoning_content` / `reasoning` of compatible servers):
    /// never part of the answer.
    Reasoning(String),
    /// The end: what the call used and why the model stopped.
    Done {
        usage: Usage,
        stop_reason: String,
    },
}

/// A whole reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
    pub stop_reason: String,
}

/// What a model call can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// 429: too many requests (or tokens); retried after the hinted time.
    #[error("the provider is rate limiting (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx or an overloaded provider; retried.
    #[error("the provider failed ({status}): {message}")]
    Server { status: u16, message: String },
    /// No connection, or it dropped; retried before the first token.
    #[error("cannot reach the provider: {0}")]
    Connection(String),
    /// No first token, or a pause between tokens, within the time allowed.
    #[error("the provider did not answer in time ({0})")]
    Timeout(String),
    /// 401/403: the key is wrong or lacks access. Not retried.
    #[error("the provider refused the key: {0}")]
    Auth(String),
    /// 400/422: the request itself is wrong (a parameter the model does not
    /// take, a prompt too long). Not retried.
    #[error("the model refused the request: {0}")]
    InvalidRequest(String),
    /// 404 or the provider's "model not found": no such model there. Not retried.
    #[error("the provider has no model `{model}`: {message}")]
    NoSuchModel { model: String, message: String },
    /// An answer that does not follow the protocol.
    #[error("the provider's answer was not understood: {0}")]
    Protocol(String),
    /// No such model is configured.
    #[error("no model `{0}` is configured")]
    UnknownModel(String),
}

impl LlmError {
    /// Whether trying again may help.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. } | LlmError::Server { .. } | LlmError::Connection(_) | LlmError::Timeout(_)
        )
    }

    /// The error for an HTTP status and body, in words: the provider's own
    /// message when its body has one (OpenAI's and Anthropic's
    /// `{"error": {"message": …}}`), else the start of the body.
    pub(crate) fn from_status(status: u16, retry_after: Option<Duration>, body: &str, model: &str) -> LlmError {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let error = parsed.as_ref().map(|v| if v["error"].is_object() { &v["error"] } else { v });
        let provided = error.and_then(|e| e["message"].as_str()).map(str::to_owned);
        let code = error.and_then(|e| e["code"].as_str().or(e["type"].as_str())).unwrap_or_default();
        let message: String = provided.unwrap_or_else(|| body.trim().to_owned()).chars().take(500).collect();
        let message = if message.is_empty() { format!("HTTP {status}") } else { message };
        match status {
            429 => LlmError::RateLimited { retry_after },
            401 | 403 => LlmError::Auth(message),
            404 => LlmError::NoSuchModel { model: model.to_owned(), message },
            400 | 422 if matches!(code, "model_not_found" | "not_found_error" | "DeploymentNotFound") => {
                LlmError::NoSuchModel { model: model.to_owned(), message }
            }
            400 | 413 | 422 => LlmError::InvalidRequest(message),
            // Anthropic's "overloaded" is 529.
            _ => LlmError::Server { status, message },
        }
    }
}

pub type DeltaStream = BoxStream<'static, Result<Delta, LlmError>>;

/// A chat model.
#[async_trait]
pub trait ChatModel: Send + Sync + std::fmt::Debug {
    /// Starts a reply; the stream yields text deltas then one `Done`.
    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError>;

    /// The whole reply.
    async fn complete(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        use futures::StreamExt;
        let mut stream = self.stream(request).await?;
        let mut text = String::new();
        while let Some(delta) = stream.next().await {
            match delta? {
                Delta::Text(piece) => text.push_str(&piece),
                Delta::Reasoning(_) => {}
                Delta::Done { usage, stop_reason } => return Ok(Completion { text, usage, stop_reason }),
            }
        }
        Err(LlmError::Protocol("the reply ended without its final event".into()))
    }
}

/// How long a call may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the first token.
    pub first_token: Duration,
    /// Between two pieces of the stream.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(120),
            idle: Duration::from_secs(60),
        }
    }
}

/// What a provider's stream has told so far.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub usage: Usage,
    pub stop_reason: Option<String>,
    pub finished: bool,
}

/// What one event of a provider's stream means for the reply.
pub(crate) enum Step {
    /// A piece of the reply.
    Emit(Delta),
    /// The last item: `Done`, or what went wrong.
    Finish(Result<Delta, LlmError>),
    /// Nothing to pass on (pings, bookkeeping).
    Skip,
}

/// A provider's deltas: `read` tells what each SSE event means (`None`:
/// the stream ended); a broken or stalled stream ends it with its error.
pub(crate) fn deltas(
    events: BoxStream<'static, Result<sse::Event, LlmError>>,
    read: fn(Option<&sse::Event>, &mut Progress) -> Step,
) -> DeltaStream {
    use futures::StreamExt;
    futures::stream::unfold((events, Progress::default()), move |(mut events, mut progress)| async move {
        if progress.finished {
            return None;
        }
        loop {
            let step = match events.next().await {
                Some(Err(error)) => Step::Finish(Err(error)),
                event => read(event.as_ref().and_then(|e| e.as_ref().ok()), &mut progress),
            };
            match step {
                Step::Emit(delta) => return Some((Ok(delta), (events, progress))),
                Step::Finish(end) => {
                    progress.finished = true;
                    return Some((end, (events, progress)));
                }
                Step::Skip => {}
            }
        }
    })
    .boxed()
}

/// The `Retry-After` header in seconds (the HTTP-date form is ignored).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

/// Sends a request for `model` and checks its status: a failure becomes the
/// matching error (with the body's message), within the first-token timeout.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    timeouts: &Timeouts,
    model: &str,
) -> Result<reqwest::Response, LlmError> {
    let response = tokio::time::timeout(timeouts.first_token, request.send())
        .await
        .map_err(|_| LlmError::Timeout(format!("no answer within {} s", timeouts.first_token.as_secs())))?
        .map_err(|e| LlmError::Connection(e.to_string()))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let retry = retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    Err(LlmError::from_status(status, retry, &body, model))
}

/// The events of an SSE response, with the idle timeout between pieces.
pub(crate) fn events(response: reqwest::Response, idle: Duration) -> BoxStream<'static, Result<sse::Event, LlmError>> {
    use futures::StreamExt;
    let body = response.bytes_stream();
    let state = (body, sse::Parser::default(), false);
    futures::stream::unfold(state, move |(mut body, mut parser, ended)| async move {
        if ended {
            return None;
        }
        loop {
            if let Some(event) = parser.next_event() {
                return Some((Ok(event), (body, parser, false)));
            }
            match tokio::time::timeout(idle, body.next()).await {
                Err(_) => {
                    let error = LlmError::Timeout(format!("the stream paused for more than {} s", idle.as_secs()));
                    return Some((Err(error), (body, parser, true)));
                }
                Ok(None) => return None,
                Ok(Some(Err(error))) => {
                    return Some((
                        Err(LlmError::Connection(format!("the stream broke: {error}"))),
                        (body, parser, true),
                    ));
                }
                Ok(Some(Ok(bytes))) => parser.push(&bytes),
            }
        }
    })
    .boxed()
}
