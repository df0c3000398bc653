//! The scripted LLM server: stands in for paid model providers in tests
//! and benchmarks. It speaks OpenAI Chat Completions
//! (`POST /v1/chat/completions`), OpenAI's Responses API
//! (`POST /v1/responses`, reasoning summaries included) and Anthropic
//! Messages (`POST /v1/messages`),
//! streamed (server-sent events in each provider's own event shapes) and not,
//! and Azure OpenAI's deployment paths (which need `api-version` and an
//! `api-key` header), and plays a script of replies in order: text, an
//! error status (with `Retry-After`), a slow stream, or a stream that drops
//! mid-reply. Like OpenAI it refuses, with OpenAI's error bodies, models
//! named `no-such-…`, and `max_tokens` or a non-default temperature for its
//! reasoning models (o-series, GPT-5). A reply that starts with
//! `<think>…</think>` streams that part as reasoning: Anthropic thinking
//! blocks (when the request turns thinking on, whose shape it checks),
//! reasoning summary events (when a Responses request asks for a summary)
//! and OpenAI-compatible `reasoning_content` deltas.

mod responses;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A reply, streamed word by word.
    Text(String),
    /// An error status, with `Retry-After: secs` when given.
    Status { status: u16, retry_after: Option<u64> },
    /// A reply whose pieces come `delay` apart (the first one too).
    Slow { text: String, delay: Duration },
    /// The first words of a reply, then the connection breaks.
    Drop { partial: String },
    /// A reply that starts after `after` (a model's time to first token),
    /// then streams at once.
    Late { text: String, after: Duration },
}

impl Reply {
    /// What to stream: the text, the pause between pieces, and whether the
    /// connection breaks after it; an error status is answered at once, in
    /// `protocol`'s error shape.
    async fn played(self, protocol: &str) -> Result<(String, Duration, bool), Box<Response>> {
        match self {
            Reply::Status { status, retry_after } => Err(Box::new(status_response(status, retry_after, protocol))),
            Reply::Text(text) => Ok((text, Duration::ZERO, false)),
            Reply::Slow { text, delay } => Ok((text, delay, false)),
            Reply::Drop { partial } => Ok((partial, Duration::ZERO, true)),
            Reply::Late { text, after } => {
                tokio::time::sleep(after).await;
                Ok((text, Duration::ZERO, false))
            }
        }
    }
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// `openai`, `responses`, `azure` or `anthropic`.
    pub protocol: &'static str,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Debug, Default)]
struct Script {
    replies: VecDeque<Reply>,
    /// Played when the script has run out.
    default: Option<Reply>,
    received: Vec<Received>,
    /// Texts embedded so far.
    embedded: Vec<String>,
    /// The prefixes Anthropic's cache holds (blocks up to a breakpoint).
    anthropic_cache: Vec<Vec<Block>>,
    /// Prompts OpenAI has seen (its cache matches any earlier prefix).
    openai_prompts: Vec<Vec<Block>>,
}

/// One block of a prompt, as the caches compare them: who said it and what.
#[derive(Debug, Clone, PartialEq)]
struct Block {
    role: String,
    text: String,
}

impl Block {
    fn tokens(&self) -> u64 {
        self.text.split_whitespace().count() as u64
    }
}

fn tokens(blocks: &[Block]) -> u64 {
    blocks.iter().map(Block::tokens).sum()
}

/// Below this many tokens a prompt is not cached (Anthropic's minimum for
/// Sonnet and Opus; OpenAI's minimum too).
const MIN_CACHED_TOKENS: u64 = 1024;

/// The text blocks of a message's content (a string, or an array of blocks)
/// with the `cache_control` of each.
fn content_blocks(role: &str, content: &Value) -> Vec<(Block, Option<Value>)> {
    match content {
        Value::String(text) => vec![(Block { role: role.into(), text: text.clone() }, None)],
        Value::Array(parts) => parts
            .iter()
            .map(|part| {
                let text = part["text"].as_str().unwrap_or_default().to_owned();
                (Block { role: role.into(), text }, part.get("cache_control").cloned())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Every block of an Anthropic request (system first), with its cache_control.
fn anthropic_blocks(body: &Value) -> Vec<(Block, Option<Value>)> {
    let mut blocks = content_blocks("system", &body["system"]);
    for message in body["messages"].as_array().into_iter().flatten() {
        blocks.extend(content_blocks(message["role"].as_str().unwrap_or_default(), &message["content"]));
    }
    blocks
}

/// Anthropic's checks of `cache_control`: `{"type": "ephemeral"}` with an
/// optional `ttl` of `5m` or `1h`, on at most four blocks.
fn cache_control_error(blocks: &[(Block, Option<Value>)]) -> Option<String> {
    let marked: Vec<&Value> = blocks.iter().filter_map(|(_, control)| control.as_ref()).collect();
    if marked.len() > 4 {
        return Some(format!("A maximum of 4 blocks with cache_control may be provided. Found {}.", marked.len()));
    }
    for control in marked {
        let known = control.as_object().is_some_and(|o| o.keys().all(|k| k == "type" || k == "ttl"));
        if !known || control["type"] != "ephemeral" {
            return Some(format!("cache_control: expected {{\"type\": \"ephemeral\"}}, got {control}"));
        }
        if let Some(ttl) = control.get("ttl")
            && ttl != "5m"
            && ttl != "1h"
        {
            return Some(format!("cache_control.ttl: Input should be '5m' or '1h', got {ttl}"));
        }
    }
    None
}

/// Caches are short-lived: the server keeps the latest few entries, so a
/// long benchmark does not slow it down.
const CACHE_ENTRIES: usize = 8;

fn remember(entries: &mut Vec<Vec<Block>>, entry: Vec<Block>) {
    if entries.len() == CACHE_ENTRIES {
        entries.remove(0);
    }
    entries.push(entry);
}

/// What Anthropic's cache does with a request: the prefix up to the last
/// breakpoint is looked up among the prefixes cached before (read), the
/// rest of it is written; returns (read, written, uncached) tokens.
fn anthropic_cache(script: &Mutex<Script>, blocks: &[(Block, Option<Value>)]) -> (u64, u64, u64) {
    let all: Vec<Block> = blocks.iter().map(|(b, _)| b.clone()).collect();
    let total = tokens(&all);
    let Some(end) = blocks.iter().rposition(|(_, control)| control.is_some()) else { return (0, 0, total) };
    let prefix = &all[..=end];
    if tokens(prefix) < MIN_CACHED_TOKENS {
        return (0, 0, total);
    }
    let mut script = script.lock().unwrap();
    let read = script
        .anthropic_cache
        .iter()
        .filter(|cached| cached.len() <= prefix.len() && prefix.starts_with(cached))
        .map(|cached| tokens(cached))
        .max()
        .unwrap_or(0);
    let written = tokens(prefix) - read;
    remember(&mut script.anthropic_cache, prefix.to_vec());
    (read, written, total - read - written)
}

/// The blocks of an OpenAI prompt: Chat Completions' `messages`, or the
/// Responses API's `instructions` and `input`.
fn openai_blocks(body: &Value) -> Vec<Block> {
    let mut blocks: Vec<Block> = content_blocks("system", &body["instructions"]).into_iter().map(|(b, _)| b).collect();
    let items = body["messages"].as_array().or(body["input"].as_array());
    for message in items.into_iter().flatten() {
        let role = message["role"].as_str().unwrap_or_default();
        blocks.extend(content_blocks(role, &message["content"]).into_iter().map(|(b, _)| b));
    }
    blocks
}

/// What OpenAI's automatic cache reads for a prompt: the longest prefix it
/// shares with an earlier prompt, in steps of 128 tokens from 1024 on.
fn openai_cached(script: &Mutex<Script>, body: &Value) -> u64 {
    let blocks = openai_blocks(body);
    let mut script = script.lock().unwrap();
    let shared = script
        .openai_prompts
        .iter()
        .map(|earlier| blocks.iter().zip(earlier).take_while(|(a, b)| a == b).map(|(a, _)| a.tokens()).sum::<u64>())
        .max()
        .unwrap_or(0);
    remember(&mut script.openai_prompts, blocks);
    if shared < MIN_CACHED_TOKENS { 0 } else { shared / 128 * 128 }
}

/// A running scripted LLM server on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct ScriptedLlm {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub address: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl ScriptedLlm {
    pub async fn start(replies: Vec<Reply>) -> ScriptedLlm {
        let script = Arc::new(Mutex::new(Script { replies: replies.into(), ..Script::default() }));
        let router = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/openai/deployments/{deployment}/chat/completions", post(azure))
            .route("/v1/responses", post(responses::responses))
            .route("/v1/messages", post(anthropic))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", axum::routing::get(list_models))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        ScriptedLlm { url: format!("http://{address}"), address, script }
    }

    /// Adds replies at the end of the script.
    pub fn push(&self, reply: Reply) {
        self.script.lock().unwrap().replies.push_back(reply);
    }

    /// What to answer once the script has run out (else a 500 saying so).
    pub fn set_default(&self, reply: Reply) {
        self.script.lock().unwrap().default = Some(reply);
    }

    /// Every text embedded so far (`/v1/embeddings`), in order.
    pub fn embedded(&self) -> Vec<String> {
        self.script.lock().unwrap().embedded.clone()
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }
}

fn next(script: &Mutex<Script>, received: Received) -> Reply {
    let mut script = script.lock().unwrap();
    script.received.push(received);
    let default = script.default.clone();
    script.replies.pop_front().or(default).unwrap_or(Reply::Status { status: 500, retry_after: None })
}

/// A scripted reply's reasoning and answer: a reply that starts with
/// `<think>…</think>` shows that part as the model's reasoning (streamed
/// apart, where the protocol and the request ask for it).
fn split_thinking(text: &str) -> (Option<String>, String) {
    if let Some(rest) = text.strip_prefix("<think>")
        && let Some((thinking, answer)) = rest.split_once("</think>")
    {
        return (Some(thinking.to_owned()), answer.trim_start().to_owned());
    }
    (None, text.to_owned())
}

/// Anthropic's checks of `thinking`: `{"type": "enabled", "budget_tokens": n}`
/// with n from 1024 and below `max_tokens`, and no temperature beside it.
fn thinking_error(body: &Value) -> Option<String> {
    let thinking = body.get("thinking")?;
    let budget = thinking["budget_tokens"].as_u64().unwrap_or(0);
    if thinking["type"] != "enabled" || budget < 1024 {
        return Some(format!("thinking: expected type enabled and budget_tokens >= 1024, got {thinking}"));
    }
    if budget >= body["max_tokens"].as_u64().unwrap_or(0) {
        return Some("max_tokens must be greater than thinking.budget_tokens".to_owned());
    }
    if body.get("temperature").is_some_and(|t| t.as_f64() != Some(1.0)) {
        return Some("temperature may only be set to 1 when thinking is enabled".to_owned());
    }
    None
}

/// Words of `text`, each with the space before it, so they join back exactly.
fn pieces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.trim().is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn input_tokens(body: &Value) -> u64 {
    let count = |text: &str| text.split_whitespace().count() as u64;
    let words = |content: &Value| match content {
        Value::String(text) => count(text),
        Value::Array(parts) => parts.iter().map(|p| p["text"].as_str().map_or(0, count)).sum(),
        _ => 0,
    };
    let messages = body["messages"].as_array().map_or(0, |m| m.iter().map(|m| words(&m["content"])).sum());
    messages + words(&body["system"])
}

fn status_response(status: u16, retry_after: Option<u64>, protocol: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if protocol == "anthropic" {
        let kind = if status == 429 { "rate_limit_error" } else { "api_error" };
        json!({ "type": "error", "error": { "type": kind, "message": format!("scripted {status}") } })
    } else {
        json!({ "error": { "message": format!("scripted {status}"), "type": "server_error" } })
    };
    let mut response = (code, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// An SSE stream of `events` (already formatted), each `delay` apart; with
/// `broken`, the body fails after the events instead of ending.
fn sse(events: Vec<String>, delay: Duration, broken: bool) -> Response {
    let stream = futures::stream::unfold((events.into_iter(), broken), move |(mut events, broken)| async move {
        match events.next() {
            Some(event) => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(event)), (events, broken)))
            }
            None if broken => {
                // Let what was sent reach the client before the connection breaks.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Err(std::io::Error::other("scripted drop")), (events, false)))
            }
            None => None,
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
    response
}

/// Dimensions of the scripted embeddings.
pub const EMBEDDING_DIMS: usize = 64;

/// The scripted server's embedding of a text: its words (lowercased,
/// letters and digits) counted into hashed buckets and normalised, so texts
/// that share words are similar and others are not.
pub fn scripted_embedding(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; EMBEDDING_DIMS];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2) {
        // Stable across runs and platforms.
        let hash = cairn_core::hash::fnv1a(word.to_lowercase().as_bytes());
        vector[(hash % EMBEDDING_DIMS as u64) as usize] += 1.0;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        vector[0] = 1.0;
    } else {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// OpenAI's embeddings endpoint, with [`scripted_embedding`].
async fn embeddings(State(script): State<Arc<Mutex<Script>>>, axum::Json(body): axum::Json<Value>) -> Response {
    let texts: Vec<String> = match &body["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
        _ => return (StatusCode::BAD_REQUEST, "`input` must be a string or a list of strings").into_response(),
    };
    script.lock().unwrap().embedded.extend(texts.iter().cloned());
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| json!({ "object": "embedding", "index": index, "embedding": scripted_embedding(text) }))
        .collect();
    let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    axum::Json(json!({ "object": "list", "data": data, "model": body["model"],
                       "usage": { "prompt_tokens": tokens, "total_tokens": tokens } }))
    .into_response()
}

/// The models it serves, in OpenAI's list shape (any name is answered).
async fn list_models() -> Response {
    let data: Vec<Value> = ["scripted-model", "scripted-embedder"]
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "cairn" }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

/// An OpenAI error answer, in OpenAI's documented shape.
fn openai_error(status: StatusCode, message: &str, kind: &str, param: Option<&str>, code: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": kind, "param": param, "code": code } });
    (status, axum::Json(body)).into_response()
}

const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The shape of OpenAI's content parts: `text`, or `image_url` with a data
/// URL of an image type (or an http(s) URL).
fn openai_content_error(body: &Value) -> Option<String> {
    for (m, message) in body["messages"].as_array().into_iter().flatten().enumerate() {
        let Some(parts) = message["content"].as_array() else { continue };
        for (p, part) in parts.iter().enumerate() {
            match part["type"].as_str() {
                Some("text") if part["text"].is_string() => {}
                Some("image_url") => {
                    let url = part["image_url"]["url"].as_str().unwrap_or_default();
                    let data_url = IMAGE_TYPES.iter().any(|t| url.starts_with(&format!("data:{t};base64,")));
                    if !(data_url || url.starts_with("https://") || url.starts_with("http://")) {
                        return Some(format!(
                            "Invalid image_url in messages[{m}].content[{p}]: expected a data URL or an http(s) URL"
                        ));
                    }
                }
                other => {
                    return Some(format!(
                        "Invalid value for messages[{m}].content[{p}].type: {other:?}. Supported values are: 'text' and 'image_url'."
                    ));
                }
            }
        }
    }
    None
}

/// The shape of Anthropic's image blocks: a base64 source of an image type.
fn anthropic_image_error(body: &Value) -> Option<String> {
    for (m, message) in body["messages"].as_array().into_iter().flatten().enumerate() {
        for (b, block) in message["content"].as_array().into_iter().flatten().enumerate() {
            if block["type"] != "image" {
                continue;
            }
            let source = &block["source"];
            let media_type = source["media_type"].as_str().unwrap_or_default();
            if source["type"] != "base64"
                || !IMAGE_TYPES.contains(&media_type)
                || source["data"].as_str().is_none_or(str::is_empty)
            {
                return Some(format!(
                    "messages.{m}.content.{b}.image.source: expected type base64, a media_type of 'image/jpeg', \
                     'image/png', 'image/gif' or 'image/webp', and data"
                ));
            }
        }
    }
    None
}

/// OpenAI's reasoning families (o-series, GPT-5).
fn openai_reasoning_model(model: &str) -> bool {
    model.starts_with("gpt-5") || ["o1", "o3", "o4"].iter().any(|f| model == *f || model.starts_with(&format!("{f}-")))
}

/// What OpenAI's API refuses before it answers, as it refuses it: a model
/// that does not exist, and, for its reasoning models (o-series, GPT-5),
/// `max_tokens` and any temperature but the default.
fn openai_refusal(body: &Value) -> Option<Response> {
    if let Some(message) = openai_content_error(body) {
        return Some(openai_error(StatusCode::BAD_REQUEST, &message, "invalid_request_error", None, "invalid_value"));
    }
    let model = body["model"].as_str().unwrap_or_default();
    if model.starts_with("no-such-") {
        let message = format!("The model `{model}` does not exist or you do not have access to it.");
        return Some(openai_error(StatusCode::NOT_FOUND, &message, "invalid_request_error", None, "model_not_found"));
    }
    if !openai_reasoning_model(model) {
        return None;
    }
    if body.get("max_tokens").is_some() {
        let message = "Unsupported parameter: 'max_tokens' is not supported with this model. \
                       Use 'max_completion_tokens' instead.";
        return Some(openai_error(
            StatusCode::BAD_REQUEST,
            message,
            "invalid_request_error",
            Some("max_tokens"),
            "unsupported_parameter",
        ));
    }
    if body.get("temperature").is_some_and(|t| t.as_f64() != Some(1.0)) {
        let message = "Unsupported value: 'temperature' does not support 0.0 with this model. \
                       Only the default (1) value is supported.";
        return Some(openai_error(
            StatusCode::BAD_REQUEST,
            message,
            "invalid_request_error",
            Some("temperature"),
            "unsupported_value",
        ));
    }
    None
}

/// Azure OpenAI: a deployment's chat completions, which need `api-version`
/// and the `api-key` header (a bearer token is not Azure's key).
async fn azure(
    State(script): State<Arc<Mutex<Script>>>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    axum::Json(mut body): axum::Json<Value>,
) -> Response {
    let versioned =
        query.unwrap_or_default().split('&').any(|pair| pair.starts_with("api-version=") && pair.len() > 12);
    if !versioned {
        let message = "The api-version query parameter (?api-version=) is required for all requests.";
        let error = json!({ "error": { "code": "MissingApiVersionParameter", "message": message } });
        return (StatusCode::NOT_FOUND, axum::Json(error)).into_response();
    }
    if headers.get("api-key").is_none_or(|key| key.is_empty()) {
        let message = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide \
                       a valid key for an active subscription and use a correct regional API endpoint for your resource.";
        let error = json!({ "error": { "code": "401", "message": message } });
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    // The deployment names the model.
    body["model"] = json!(deployment);
    openai_reply(&script, "azure", headers, body).await
}

async fn openai(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    openai_reply(&script, "openai", headers, body).await
}

async fn openai_reply(script: &Mutex<Script>, protocol: &'static str, headers: HeaderMap, body: Value) -> Response {
    if let Some(refused) = openai_refusal(&body) {
        script.lock().unwrap().received.push(Received { protocol, headers, body });
        return refused;
    }
    let reply = next(script, Received { protocol, headers, body: body.clone() });
    let input = input_tokens(&body);
    let cached = openai_cached(script, &body);
    let (text, delay, broken) = match reply.played("openai").await {
        Ok(played) => played,
        Err(status) => return *status,
    };
    let (thinking, text) = split_thinking(&text);
    let words = pieces(&text);
    let usage = json!({ "prompt_tokens": input, "completion_tokens": words.len(),
                        "total_tokens": input + words.len() as u64,
                        "prompt_tokens_details": { "cached_tokens": cached } });
    if body["stream"] != true {
        return axum::Json(json!({
            "id": "chatcmpl-scripted", "object": "chat.completion", "model": body["model"],
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
            "usage": usage,
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        let data = json!({ "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": body["model"],
                           "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
        format!("data: {data}\n\n")
    };
    let mut events = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
    // As vLLM and DeepSeek show reasoning: `reasoning_content` deltas first.
    // OpenAI's own reasoning models (and Azure's deployments of them) keep
    // it hidden in Chat Completions.
    let hidden = protocol == "azure" || openai_reasoning_model(body["model"].as_str().unwrap_or_default());
    let reasoning = thinking.as_deref().filter(|_| !hidden).map(pieces).unwrap_or_default();
    events.extend(reasoning.iter().map(|w| chunk(json!({ "reasoning_content": w }), Value::Null)));
    events.extend(words.iter().map(|w| chunk(json!({ "content": w }), Value::Null)));
    if !broken {
        events.push(chunk(json!({}), json!("stop")));
        events.push(format!(
            "data: {}\n\n",
            json!({ "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "choices": [], "usage": usage })
        ));
        events.push("data: [DONE]\n\n".to_owned());
    }
    sse(events, delay, broken)
}

async fn anthropic(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let blocks = anthropic_blocks(&body);
    if let Some(message) = cache_control_error(&blocks) {
        script.lock().unwrap().received.push(Received { protocol: "anthropic", headers, body });
        let error = json!({ "type": "error", "error": { "type": "invalid_request_error", "message": message } });
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    if let Some(message) = thinking_error(&body).or_else(|| anthropic_image_error(&body)) {
        script.lock().unwrap().received.push(Received { protocol: "anthropic", headers, body });
        let error = json!({ "type": "error", "error": { "type": "invalid_request_error", "message": message } });
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    let reply = next(&script, Received { protocol: "anthropic", headers, body: body.clone() });
    let (read, written, input) = anthropic_cache(&script, &blocks);
    let (text, delay, broken) = match reply.played("anthropic").await {
        Ok(played) => played,
        Err(status) => return *status,
    };
    let (thinking, text) = split_thinking(&text);
    // Claude thinks only when the request turns thinking on.
    let thinking = thinking.filter(|_| body.get("thinking").is_some());
    let words = pieces(&text);
    if body["stream"] != true {
        return axum::Json(json!({
            "id": "msg_scripted", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{ "type": "text", "text": text }], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": { "input_tokens": input, "output_tokens": words.len(),
                       "cache_read_input_tokens": read, "cache_creation_input_tokens": written },
        }))
        .into_response();
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![
        event(
            "message_start",
            json!({ "type": "message_start", "message": { "id": "msg_scripted", "type": "message",
              "role": "assistant", "model": body["model"], "content": [], "stop_reason": null,
              "usage": { "input_tokens": input, "output_tokens": 1,
                         "cache_read_input_tokens": read, "cache_creation_input_tokens": written } } }),
        ),
        event("ping", json!({ "type": "ping" })),
    ];
    // A thinking block first (index 0) when there is one, then the text.
    let text_index = usize::from(thinking.is_some());
    if let Some(thinking) = &thinking {
        events.push(event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0,
                    "content_block": { "type": "thinking", "thinking": "", "signature": "" } }),
        ));
        events.extend(pieces(thinking).iter().map(|w| {
            event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0,
                        "delta": { "type": "thinking_delta", "thinking": w } }),
            )
        }));
        events.push(event(
            "content_block_delta",
            json!({ "type": "content_block_delta", "index": 0,
                    "delta": { "type": "signature_delta", "signature": "c2NyaXB0ZWQ=" } }),
        ));
        events.push(event("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })));
    }
    events.push(event(
        "content_block_start",
        json!({ "type": "content_block_start", "index": text_index, "content_block": { "type": "text", "text": "" } }),
    ));
    events.extend(words.iter().map(|w| {
        event(
            "content_block_delta",
            json!({ "type": "content_block_delta", "index": text_index, "delta": { "type": "text_delta", "text": w } }),
        )
    }));
    if !broken {
        events.push(event("content_block_stop", json!({ "type": "content_block_stop", "index": text_index })));
        events.push(event(
            "message_delta",
            json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                                                   "usage": { "output_tokens": words.len() } }),
        ));
        events.push(event("message_stop", json!({ "type": "message_stop" })));
    }
    sse(events, delay, broken)
}
