//! OpenAI's Responses API (`POST /v1/responses`), streamed as OpenAI streams
//! it: typed events, a reasoning summary when the request asks for one, and
//! the usage in `response.completed`. It refuses what OpenAI refuses, in
//! OpenAI's words: Chat Completions' parameters (`messages`, `max_tokens`),
//! content parts of the wrong type, a temperature for reasoning models, and
//! a `reasoning` parameter for models that do not reason.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    Received, Script, next, openai_blocks, openai_cached, openai_error, openai_reasoning_model, pieces, split_thinking,
    sse, tokens,
};

/// The part types OpenAI lists for input content.
const PART_TYPES: [&str; 7] =
    ["input_text", "input_image", "output_text", "refusal", "input_file", "computer_screenshot", "summary_text"];

fn invalid(message: &str, param: Option<&str>, code: &str) -> Response {
    openai_error(StatusCode::BAD_REQUEST, message, "invalid_request_error", param, code)
}

/// What OpenAI refuses before it answers.
fn refusal(body: &Value) -> Option<Response> {
    for unknown in ["messages", "max_tokens", "max_completion_tokens", "stop"] {
        if body.get(unknown).is_some() {
            return Some(invalid(&format!("Unknown parameter: '{unknown}'."), Some(unknown), "unknown_parameter"));
        }
    }
    let Some(input) = body["input"].as_array() else {
        return Some(invalid("Missing required parameter: 'input'.", Some("input"), "missing_required_parameter"));
    };
    for (i, item) in input.iter().enumerate() {
        for (p, part) in item["content"].as_array().into_iter().flatten().enumerate() {
            let kind = part["type"].as_str().unwrap_or_default();
            if !PART_TYPES.contains(&kind) {
                let message = format!(
                    "Invalid value: '{kind}'. Supported values are: 'input_text', 'input_image', 'output_text', \
                     'refusal', 'input_file', 'computer_screenshot', and 'summary_text'."
                );
                return Some(invalid(&message, Some(&format!("input[{i}].content[{p}].type")), "invalid_value"));
            }
            let url = part["image_url"].as_str().unwrap_or_default();
            if kind == "input_image" && !(url.starts_with("data:image/") || url.starts_with("https://")) {
                let param = format!("input[{i}].content[{p}].image_url");
                return Some(invalid(
                    "Invalid 'image_url': expected a URL or a data URL.",
                    Some(&param),
                    "invalid_value",
                ));
            }
        }
    }
    let model = body["model"].as_str().unwrap_or_default();
    if model.starts_with("no-such-") {
        let message = format!("The model `{model}` does not exist or you do not have access to it.");
        return Some(openai_error(StatusCode::NOT_FOUND, &message, "invalid_request_error", None, "model_not_found"));
    }
    let reasons = openai_reasoning_model(model);
    if reasons && body.get("temperature").is_some_and(|t| t.as_f64() != Some(1.0)) {
        let message = "Unsupported parameter: 'temperature' is not supported with this model.";
        return Some(invalid(message, Some("temperature"), "unsupported_parameter"));
    }
    if !reasons && body.get("reasoning").is_some() {
        let message = "Unsupported parameter: 'reasoning.effort' is not supported with this model.";
        return Some(invalid(message, Some("reasoning.effort"), "unsupported_parameter"));
    }
    None
}

pub(super) async fn responses(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Some(refused) = refusal(&body) {
        script.lock().unwrap().received.push(Received { protocol: "responses", headers, body });
        return refused;
    }
    let reply = next(&script, Received { protocol: "responses", headers, body: body.clone() });
    let input = tokens(&openai_blocks(&body));
    let cached = openai_cached(&script, &body);
    let (text, delay, broken) = match reply.played("openai").await {
        Ok(played) => played,
        Err(status) => return *status,
    };
    let (thinking, text) = split_thinking(&text);
    let thought = thinking.as_deref().map(pieces).unwrap_or_default();
    let words = pieces(&text);
    let output = (thought.len() + words.len()) as u64;
    let usage = json!({
        "input_tokens": input, "input_tokens_details": { "cached_tokens": cached },
        "output_tokens": output, "output_tokens_details": { "reasoning_tokens": thought.len() },
        "total_tokens": input + output,
    });
    let message = json!({ "id": "msg_scripted", "type": "message", "status": "completed", "role": "assistant",
                          "content": [{ "type": "output_text", "text": text, "annotations": [] }] });
    let response = |status: &str, output: Value, usage: Value| {
        json!({ "id": "resp_scripted", "object": "response", "status": status, "model": body["model"],
                "output": output, "usage": usage })
    };
    if body["stream"] != true {
        return axum::Json(response("completed", json!([message]), usage)).into_response();
    }
    let mut sequence = 0u64;
    let mut event = |mut data: Value| {
        data["sequence_number"] = json!(sequence);
        sequence += 1;
        format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap_or_default())
    };
    let mut events = vec![
        event(json!({ "type": "response.created", "response": response("in_progress", json!([]), Value::Null) })),
        event(json!({ "type": "response.in_progress", "response": response("in_progress", json!([]), Value::Null) })),
    ];
    // The reasoning item comes first; its summary only when asked for.
    let summarised = body["reasoning"]["summary"].is_string() && !thought.is_empty();
    let reasoning_item = json!({ "id": "rs_scripted", "type": "reasoning", "summary": [] });
    let mut output_index = 0;
    if thinking.is_some() {
        events.push(event(json!({ "type": "response.output_item.added", "output_index": 0, "item": reasoning_item })));
        if summarised {
            let ids = json!({ "item_id": "rs_scripted", "output_index": 0, "summary_index": 0 });
            let with = |kind: &str, extra: Value| {
                let mut data = ids.clone();
                data["type"] = json!(kind);
                data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
                data
            };
            events.push(event(with(
                "response.reasoning_summary_part.added",
                json!({ "part": { "type": "summary_text", "text": "" } }),
            )));
            for piece in &thought {
                events.push(event(with("response.reasoning_summary_text.delta", json!({ "delta": piece }))));
            }
            let whole = thinking.clone().unwrap_or_default();
            events.push(event(with("response.reasoning_summary_text.done", json!({ "text": whole }))));
        }
        events.push(event(json!({ "type": "response.output_item.done", "output_index": 0, "item": reasoning_item })));
        output_index = 1;
    }
    let ids = json!({ "item_id": "msg_scripted", "output_index": output_index, "content_index": 0 });
    events.push(event(json!({ "type": "response.output_item.added", "output_index": output_index,
        "item": { "id": "msg_scripted", "type": "message", "status": "in_progress", "role": "assistant", "content": [] } })));
    let mut part = ids.clone();
    part["type"] = json!("response.content_part.added");
    part["part"] = json!({ "type": "output_text", "text": "", "annotations": [] });
    events.push(event(part));
    for piece in &words {
        let mut delta = ids.clone();
        delta["type"] = json!("response.output_text.delta");
        delta["delta"] = json!(piece);
        events.push(event(delta));
    }
    if !broken {
        let mut done = ids.clone();
        done["type"] = json!("response.output_text.done");
        done["text"] = json!(text);
        events.push(event(done));
        events
            .push(event(json!({ "type": "response.output_item.done", "output_index": output_index, "item": message })));
        events.push(event(
            json!({ "type": "response.completed", "response": response("completed", json!([message]), usage) }),
        ));
    }
    sse(events, delay, broken)
}
