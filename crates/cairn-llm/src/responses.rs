//! OpenAI's Responses API (`POST {base}/responses`, streamed), used for
//! OpenAI's own reasoning models (o-series, GPT-5): only this API returns
//! their reasoning summaries, which Cairn streams apart from the answer.
//! Requests are stateless (`store: false`): the whole conversation is sent
//! each time, as with Chat Completions, so nothing stays at OpenAI and the
//! prompt stays an append-only prefix that OpenAI's cache can match.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{ChatModel, ChatRequest, Delta, DeltaStream, LlmError, Progress, Role, Step, Timeouts, Usage};

#[derive(Debug, Clone)]
pub(crate) struct Responses {
    pub http: reqwest::Client,
    /// e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: String,
    pub timeouts: Timeouts,
}

pub(crate) fn body(request: &ChatRequest) -> Value {
    let input: Vec<Value> = request
        .messages
        .iter()
        .map(|message| {
            if message.role == Role::Assistant {
                return json!({ "role": "assistant", "content": message.content });
            }
            let mut parts = vec![json!({ "type": "input_text", "text": message.content })];
            parts.extend(message.images.iter().map(|image| {
                json!({ "type": "input_image", "image_url": format!("data:{};base64,{}", image.media_type, image.data) })
            }));
            json!({ "role": "user", "content": parts })
        })
        .collect();
    let mut body = json!({
        "model": request.model,
        "input": input,
        "stream": true,
        "store": false,
        "max_output_tokens": request.max_tokens,
    });
    if let Some(system) = &request.system {
        body["instructions"] = json!(system);
    }
    // A summary of the reasoning is asked for whenever the model reasons
    // (models that do not refuse the `reasoning` parameter).
    if request.reasoning {
        let mut reasoning = json!({ "summary": "auto" });
        if let Some(effort) = &request.reasoning_effort {
            reasoning["effort"] = json!(effort);
        }
        body["reasoning"] = reasoning;
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    body
}

/// Usage from a response object: `input_tokens` counts the cached ones too.
fn usage(response: &Value) -> Usage {
    let usage = &response["usage"];
    let input = usage["input_tokens"].as_u64().unwrap_or(0);
    let cached = usage["input_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0).min(input);
    Usage {
        input_tokens: input - cached,
        output_tokens: usage["output_tokens"].as_u64().unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
    }
}

/// What one event means: text and summary deltas, the end with its usage.
fn read(event: Option<&crate::sse::Event>, progress: &mut Progress) -> Step {
    let Some(event) = event else {
        return Step::Finish(Err(LlmError::Connection("the stream ended before the reply did".into())));
    };
    match serde_json::from_str::<Value>(&event.data) {
        Ok(event) => step(&event, progress),
        Err(error) => Step::Finish(Err(LlmError::Protocol(format!("an event is not JSON: {error}")))),
    }
}

fn step(event: &Value, progress: &mut Progress) -> Step {
    let text = |field: &str| event[field].as_str().filter(|t| !t.is_empty()).map(str::to_owned);
    match event["type"].as_str().unwrap_or_default() {
        "response.output_text.delta" => text("delta").map_or(Step::Skip, |t| Step::Emit(Delta::Text(t))),
        "response.reasoning_summary_text.delta" => {
            text("delta").map_or(Step::Skip, |t| Step::Emit(Delta::Reasoning(t)))
        }
        // Summaries come in parts; a blank line keeps them apart.
        "response.reasoning_summary_part.added" if event["summary_index"].as_u64().unwrap_or(0) > 0 => {
            Step::Emit(Delta::Reasoning("\n\n".to_owned()))
        }
        "response.completed" => {
            progress.usage = usage(&event["response"]);
            Step::Finish(Ok(Delta::Done { usage: progress.usage, stop_reason: "stop".to_owned() }))
        }
        "response.incomplete" => {
            let response = &event["response"];
            progress.usage = usage(response);
            let reason = response["incomplete_details"]["reason"].as_str().unwrap_or("incomplete");
            // As Chat Completions says it: `length` when the reply hit its cap.
            let stop_reason = if reason == "max_output_tokens" { "length" } else { reason };
            Step::Finish(Ok(Delta::Done { usage: progress.usage, stop_reason: stop_reason.to_owned() }))
        }
        "response.failed" => {
            let error = &event["response"]["error"];
            let message = error["message"].as_str().unwrap_or("the response failed").to_owned();
            Step::Finish(Err(LlmError::Server { status: 500, message }))
        }
        "error" => {
            let message = event["message"].as_str().unwrap_or("error").to_owned();
            Step::Finish(Err(LlmError::Server { status: 500, message }))
        }
        _ => Step::Skip,
    }
}

#[async_trait]
impl ChatModel for Responses {
    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        if !request.stop.is_empty() {
            // The Responses API has no stop sequences.
            return Err(LlmError::InvalidRequest("stop sequences need the Chat Completions API".into()));
        }
        let url = format!("{}/responses", self.base_url.trim_end_matches('/'));
        let mut call = self.http.post(url).json(&body(request));
        if !self.api_key.is_empty() {
            call = call.bearer_auth(&self.api_key);
        }
        let response = crate::send(call, &self.timeouts, &request.model).await?;
        Ok(crate::deltas(crate::events(response, self.timeouts.idle), read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Image, Message};

    #[test]
    fn the_request_is_stateless_with_instructions_images_and_a_summary() {
        let request = ChatRequest {
            model: "gpt-5".into(),
            system: Some("Be brief.".into()),
            messages: vec![
                Message::user_with_images(
                    "what is drawn?",
                    vec![Image { media_type: "image/png".into(), data: "AA==".into() }],
                ),
                Message::assistant("a line"),
            ],
            max_tokens: 300,
            reasoning_effort: Some("low".into()),
            reasoning: true,
            ..ChatRequest::default()
        };
        let body = body(&request);
        assert_eq!(body["instructions"], "Be brief.");
        assert_eq!((body["store"].as_bool(), body["max_output_tokens"].as_u64()), (Some(false), Some(300)));
        assert_eq!(body["reasoning"], json!({ "summary": "auto", "effort": "low" }));
        assert_eq!(
            body["input"][0]["content"][1],
            json!({ "type": "input_image", "image_url": "data:image/png;base64,AA==" })
        );
        assert_eq!(body["input"][1], json!({ "role": "assistant", "content": "a line" }));
        assert!(body.get("temperature").is_none() && body.get("max_tokens").is_none());
        let plain = super::body(&ChatRequest { model: "gpt-4.1".into(), ..ChatRequest::default() });
        assert!(plain.get("reasoning").is_none(), "a model that does not reason is not asked to: {plain}");
    }

    #[test]
    fn cached_input_is_counted_apart_and_a_capped_reply_says_length() {
        let mut progress = Progress::default();
        let event = json!({ "type": "response.incomplete", "response": {
            "incomplete_details": { "reason": "max_output_tokens" },
            "usage": { "input_tokens": 2000, "input_tokens_details": { "cached_tokens": 1536 }, "output_tokens": 40 } } });
        let Step::Finish(Ok(Delta::Done { usage, stop_reason })) = step(&event, &mut progress) else { panic!() };
        assert_eq!(stop_reason, "length");
        assert_eq!((usage.input_tokens, usage.cache_read_tokens, usage.output_tokens), (464, 1536, 40));
    }
}
