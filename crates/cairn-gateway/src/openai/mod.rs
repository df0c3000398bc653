//! The OpenAI-compatible API at `/v1`: chat clients and OpenAI's SDKs talk
//! to Cairn's agents as if they were models. A "model" names an agent
//! (`cairn`, or `cairn-plan`, which plans first and gives the tasks to
//! sub-agents; either with `:provider/model` to choose the language model;
//! or `agent:<name>`, a configured sub-agent for the whole run);
//! a request is a message posted to a thread (a new one, or the one named by
//! `X-Cairn-Thread-Id`) and its reply is the run's answer. Streamed, the
//! reply comes as `chat.completion.chunk`s, the agent's steps as
//! `reasoning_content` when the request sets `reasoning_effort`. Callers
//! authenticate with a project's API key, which names the project.

mod wire;

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use cairn_auth::Access;
use cairn_core::{RunId, ThreadId};
use futures::StreamExt;
use futures::stream::BoxStream;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::{
    AssistantMessage, CairnRef, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, Choice,
    ChunkChoice, CompletionUsage, Delta, ModelList, ModelObject,
};
pub(crate) use wire::{OpenAiErrorResponse, is_openai_path, openai_errors};

use crate::authn::{Authenticated, ClientAddr};
use crate::threads::follow::{Progress, run_progress};
use crate::threads::{start_run, thread_for};
use crate::{ApiError, ApiJson, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_models)).routes(routes!(get_model)).routes(routes!(chat_completions))
}

const THREAD_HEADER: &str = "x-cairn-thread-id";
const RUN_HEADER: &str = "x-cairn-run-id";

/// The longest task a request may post (a message's limit in the REST API).
const MAX_TASK_CHARS: usize = 100_000;

/// What a model id asks for.
struct AgentChoice {
    plan: bool,
    model: Option<String>,
    /// A sub-agent the run is throughout.
    agent: Option<String>,
}

/// The sub-agents of this deployment, as `GET /agents` lists them.
fn sub_agents(state: &AppState) -> Vec<String> {
    match &state.runs {
        Some(runs) => runs.agents().iter().map(|a| a.name.clone()).collect(),
        None => Vec::new(),
    }
}

fn agent_for(state: &AppState, id: &str) -> Result<AgentChoice, ApiError> {
    let missing = || ApiError::Missing {
        code: "model_not_found",
        detail: format!("no model `{id}` here: GET /v1/models lists Cairn's agents"),
    };
    if let Some(name) = id.strip_prefix("agent:") {
        if !sub_agents(state).iter().any(|a| a == name) {
            return Err(missing());
        }
        return Ok(AgentChoice { plan: false, model: None, agent: Some(name.to_owned()) });
    }
    let (agent, model) = match id.split_once(':') {
        Some((agent, model)) => (agent, Some(model)),
        None => (id, None),
    };
    let plan = match agent {
        "cairn" => false,
        "cairn-plan" => true,
        _ => return Err(missing()),
    };
    if let Some(model) = model
        && state.models.get(Some(model)).is_err()
    {
        return Err(missing());
    }
    Ok(AgentChoice { plan, model: model.map(str::to_owned), agent: None })
}

fn model_object(id: String, created: i64) -> ModelObject {
    ModelObject { id, object: "model", created, owned_by: "cairn" }
}

/// The agents, as models: `cairn`, `cairn-plan`, `cairn:<model>` for every
/// configured language model, and `agent:<name>` for every sub-agent.
#[utoipa::path(get, path = "/v1/models", tag = "openai", operation_id = "openai_list_models", security(("api_key" = [])),
    responses((status = 200, description = "The agents", body = ModelList))
)]
async fn list_models(State(state): State<AppState>, Authenticated(_principal): Authenticated) -> ApiJson<ModelList> {
    let created = OffsetDateTime::now_utc().unix_timestamp();
    let agents = ["cairn".to_owned(), "cairn-plan".to_owned()].into_iter();
    let models = state.models.list().into_iter().map(|m| format!("cairn:{}", m.id));
    let sub_agents = sub_agents(&state).into_iter().map(|name| format!("agent:{name}"));
    let data = agents.chain(models).chain(sub_agents).map(|id| model_object(id, created)).collect();
    ApiJson(ModelList { object: "list", data })
}

/// One agent.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "openai", operation_id = "openai_retrieve_model", security(("api_key" = [])),
    params(("model" = String, Path, description = "An id from `GET /v1/models`, its `/` percent-encoded")),
    responses((status = 200, description = "The agent", body = ModelObject),
        (status = 404, description = "`model_not_found`", body = OpenAiErrorResponse))
)]
async fn get_model(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
    Path(model): Path<String>,
) -> Result<ApiJson<ModelObject>, ApiError> {
    agent_for(&state, &model)?;
    Ok(ApiJson(model_object(model, OffsetDateTime::now_utc().unix_timestamp())))
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid { code: "invalid_request", detail: detail.into() }
}

/// The text posted to the thread. A thread that goes on gets the last user
/// message only (it holds the rest); a new one gets the conversation the
/// client sent, earlier turns quoted before the task.
fn task_text(messages: &[ChatMessage], continuing: bool) -> Result<String, ApiError> {
    let Some((last, earlier)) = messages.split_last() else {
        return Err(invalid("`messages` is empty: send at least the user's message"));
    };
    if last.role != "user" {
        return Err(invalid("the last message must be the user's (role `user`): it is the agent's task"));
    }
    let task = last.text().map_err(invalid)?;
    if task.trim().is_empty() {
        return Err(invalid("the user's message is empty"));
    }
    let mut text = String::new();
    let mut instructions = Vec::new();
    let mut transcript = Vec::new();
    for message in earlier {
        let said = message.text().map_err(invalid)?;
        match message.role.as_str() {
            "system" | "developer" => instructions.push(said),
            "user" if !continuing => transcript.push(format!("User: {said}")),
            "assistant" if !continuing => transcript.push(format!("Assistant: {said}")),
            "user" | "assistant" | "tool" => {}
            other => return Err(invalid(format!("unknown message role `{other}`"))),
        }
    }
    if !instructions.is_empty() {
        text.push_str("Instructions from the client:\n");
        text.push_str(&instructions.join("\n"));
        text.push_str("\n\n");
    }
    if !transcript.is_empty() {
        text.push_str("Earlier in this conversation:\n");
        text.push_str(&transcript.join("\n"));
        text.push_str("\n\nNow:\n");
    }
    text.push_str(task.trim());
    if text.chars().count() > MAX_TASK_CHARS {
        return Err(invalid(format!(
            "the conversation is longer than {MAX_TASK_CHARS} characters: send fewer earlier messages, or go on \
             in the thread with X-Cairn-Thread-Id"
        )));
    }
    Ok(text)
}

/// Sends the agent's answer to a conversation, as an OpenAI chat
/// completion (JSON, or server-sent chunks with `stream`). The run goes on
/// if the client goes away; its thread keeps it.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", operation_id = "openai_create_chat_completion", security(("api_key" = [])),
    params(("X-Cairn-Thread-Id" = Option<ThreadId>, Header,
        description = "Go on in this thread of the key's project (the last user message is posted); a new thread otherwise")),
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The answer; with `stream`, `chat.completion.chunk`s ending with `data: [DONE]`",
         headers(("X-Cairn-Thread-Id" = String, description = "The thread"), ("X-Cairn-Run-Id" = String, description = "The run")),
         content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
        (status = 403, description = "A viewer's key, or a person's token", body = OpenAiErrorResponse),
        (status = 404, description = "`model_not_found`, or no such thread", body = OpenAiErrorResponse),
        (status = 422, description = "`invalid_request`: the conversation cannot be a task", body = OpenAiErrorResponse),
        (status = 500, description = "`run_failed`: the run ended without an answer (not worth retrying as is)",
         body = OpenAiErrorResponse),
        (status = 503, description = "`agent_unavailable`, `server_stopping`", body = OpenAiErrorResponse),
    )
)]
async fn chat_completions(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let project = crate::authn::key_project(&principal, "the OpenAI-compatible API")?;
    state.auth.authorize(&principal, project, Access::Write).await?;
    let choice = agent_for(&state, &request.model)?;
    if request.n.is_some_and(|n| n != 1) {
        return Err(invalid("`n` must be 1: an agent gives one answer"));
    }
    if request.tools.as_ref().is_some_and(|tools| tools.as_array().is_none_or(|list| !list.is_empty())) {
        return Err(invalid("`tools` are not offered: Cairn's agents call their own tools"));
    }
    let continued = match headers.get(THREAD_HEADER) {
        Some(value) => {
            let id = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<ThreadId>().ok())
                .ok_or_else(|| invalid("X-Cairn-Thread-Id is not a thread id"))?;
            Some(thread_for(&state, &principal, id, Access::Write).await?)
        }
        None => None,
    };
    let task = task_text(&request.messages, continued.is_some())?;
    let options = cairn_agent::RunOptions {
        model: choice.model,
        plan: choice.plan,
        agent: choice.agent,
        ..cairn_agent::RunOptions::default()
    };
    // A new thread is titled by the user's message, not the quoted conversation.
    let last = request.messages.last().and_then(|m| m.text().ok()).unwrap_or_default();
    let (thread, run) =
        start_run(&state, &principal, project, continued, &last, task, options, &addr, "openai").await?;
    let steps = request.reasoning_effort.is_some();
    let progress = run_progress(&state, thread.id, thread.last_event_seq, run.id, steps).await?;
    let reply = Reply {
        id: format!("chatcmpl-{}", run.id),
        created: OffsetDateTime::now_utc().unix_timestamp(),
        model: request.model,
        thread: thread.id,
        run: run.id,
    };
    let mut response = if request.stream == Some(true) {
        let usage = request.stream_options.is_some_and(|o| o.include_usage);
        reply.stream(progress, usage).into_response()
    } else {
        // A run that ended without an answer still names its thread and run.
        match reply.whole(progress, steps).await {
            Ok(completion) => completion.into_response(),
            Err(error) => error.into_response(),
        }
    };
    for (name, value) in [(THREAD_HEADER, thread.id.to_string()), (RUN_HEADER, run.id.to_string())] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// What every answer to one request carries.
struct Reply {
    id: String,
    created: i64,
    model: String,
    thread: ThreadId,
    run: RunId,
}

impl Reply {
    async fn whole(
        &self,
        mut progress: BoxStream<'static, Progress>,
        steps: bool,
    ) -> Result<ApiJson<ChatCompletion>, ApiError> {
        let mut reasoning = String::new();
        while let Some(next) = progress.next().await {
            let (content, usage, status) = match next {
                Progress::Step(text) => {
                    reasoning.push_str(&text);
                    continue;
                }
                Progress::Answer { text, usage } => (text, usage.into(), "succeeded"),
                Progress::Waiting(question) => (question, CompletionUsage::default(), "waiting"),
                Progress::Ended { code, message } => return Err(ApiError::RunEnded { code, detail: message }),
            };
            let message =
                AssistantMessage { role: "assistant", content, reasoning_content: steps.then(|| reasoning.clone()) };
            return Ok(ApiJson(ChatCompletion {
                id: self.id.clone(),
                object: "chat.completion",
                created: self.created,
                model: self.model.clone(),
                choices: vec![Choice { index: 0, message, finish_reason: "stop" }],
                usage,
                cairn: CairnRef { thread_id: self.thread, run_id: self.run, status },
            }));
        }
        Err(ApiError::Internal)
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<&'static str>) -> SseEvent {
        self.frame(vec![ChunkChoice { index: 0, delta, finish_reason }], None)
    }

    /// One `chat.completion.chunk` event.
    fn frame(&self, choices: Vec<ChunkChoice>, usage: Option<CompletionUsage>) -> SseEvent {
        let chunk = ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        };
        SseEvent::default().data(serde_json::to_string(&chunk).unwrap_or_default())
    }

    /// The chunks of the answer: a first naming the role, the steps (when
    /// asked), the answer, one with the finish reason, the usage (when
    /// asked), `[DONE]`; an error object instead when the run ends without
    /// an answer, as OpenAI's streams report errors.
    fn stream(self, progress: BoxStream<'static, Progress>, include_usage: bool) -> impl IntoResponse {
        let first =
            self.chunk(Delta { role: Some("assistant"), content: Some(String::new()), ..Delta::default() }, None);
        let rest = progress.flat_map(move |next| {
            let events = match next {
                Progress::Step(text) => {
                    vec![self.chunk(Delta { reasoning_content: Some(text), ..Delta::default() }, None)]
                }
                Progress::Answer { text, usage } => self.ending(text, include_usage.then(|| usage.into())),
                Progress::Waiting(question) => self.ending(question, None),
                Progress::Ended { code, message } => {
                    let status = if code == "run_failed" { 500 } else { 503 };
                    let error = wire::OpenAiError::new(status, code, message);
                    let body = serde_json::to_string(&OpenAiErrorResponse { error }).unwrap_or_default();
                    vec![SseEvent::default().data(body)]
                }
            };
            futures::stream::iter(events)
        });
        let events = futures::stream::once(async move { first }).chain(rest).map(Ok::<_, Infallible>);
        Sse::new(events).keep_alive(KeepAlive::default())
    }

    fn ending(&self, content: String, usage: Option<CompletionUsage>) -> Vec<SseEvent> {
        let mut events = vec![
            self.chunk(Delta { content: Some(content), ..Delta::default() }, None),
            self.chunk(Delta::default(), Some("stop")),
        ];
        if let Some(usage) = usage {
            events.push(self.frame(Vec::new(), Some(usage)));
        }
        events.push(SseEvent::default().data("[DONE]"));
        events
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(role: &str, content: serde_json::Value) -> ChatMessage {
        serde_json::from_value(json!({ "role": role, "content": content })).unwrap()
    }

    #[test]
    fn a_new_thread_gets_the_conversation_and_a_continued_one_the_last_message() {
        let messages = vec![
            message("system", json!("Answer in French.")),
            message("user", json!("What is 6 times 7?")),
            message("assistant", json!("42")),
            message("user", json!([{ "type": "text", "text": "And" }, { "type": "text", "text": "times 2?" }])),
        ];
        let new = task_text(&messages, false).unwrap();
        assert_eq!(
            new,
            "Instructions from the client:\nAnswer in French.\n\nEarlier in this conversation:\nUser: What is 6 \
             times 7?\nAssistant: 42\n\nNow:\nAnd\ntimes 2?"
        );
        assert_eq!(
            task_text(&messages, true).unwrap(),
            "Instructions from the client:\nAnswer in French.\n\nAnd\ntimes 2?"
        );
    }

    #[test]
    fn conversations_that_are_no_task_are_refused_in_words() {
        let refused = |messages: Vec<ChatMessage>| match task_text(&messages, false) {
            Err(ApiError::Invalid { code: "invalid_request", detail }) => detail,
            other => panic!("{other:?}"),
        };
        assert!(refused(Vec::new()).contains("empty"));
        assert!(refused(vec![message("assistant", json!("hi"))]).contains("last message must be the user's"));
        let image = json!([{ "type": "image_url", "image_url": { "url": "data:," } }]);
        assert!(refused(vec![message("user", image)]).contains("`image_url` is not accepted"));
        assert!(refused(vec![message("robot", json!("x")), message("user", json!("y"))]).contains("`robot`"));
        assert!(refused(vec![message("user", json!("x".repeat(MAX_TASK_CHARS + 1)))]).contains("longer than"));
    }

    #[test]
    fn titles_are_the_tasks_first_line_cut_short() {
        use crate::threads::title_of;
        assert_eq!(title_of("\n  Plot sales  \nby month"), "Plot sales");
        assert_eq!(title_of(&"a".repeat(90)).chars().count(), 81);
    }
}
