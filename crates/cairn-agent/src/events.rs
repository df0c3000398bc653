//! The run's event protocol: every kind of event a thread's log holds, one
//! variant each with typed fields, defined once. The log stores an event as
//! its kind and payload (the serde tags of [`RunEvent`]) with
//! [`SCHEMA_VERSION`]; events written before the protocol was typed
//! (version 1) are read through [`RunEvent::decode`], which fills what they
//! left out.

use cairn_core::model::{MessageRole, RunStatus};
use cairn_core::sandbox::Output;
use cairn_core::{FileId, MessageId, RunId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::plan::Plan;

/// Where events of a run go (the thread's event log and the bus).
#[async_trait::async_trait]
pub trait Events: Send + Sync + std::fmt::Debug {
    async fn emit(&self, event: RunEvent);
}

/// The version of the payloads written now. Version 1: the same kinds and
/// fields, written as loose JSON (usage events before prompt caching lack
/// the cache fields; statuses may carry `null` for absent fields).
pub const SCHEMA_VERSION: i32 = 2;

/// One event of a run (or of a thread, for messages), as stored, streamed
/// and sent: `{"kind": "...", "payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "payload")]
pub enum RunEvent {
    /// The run changed status (`queued`, `running`, `waiting`, `succeeded`,
    /// `failed`, `cancelled`).
    #[serde(rename = "run.status")]
    Status(StatusChanged),
    /// A message was added to the thread (a member's or the agent's answer).
    #[serde(rename = "message.created")]
    MessageCreated(MessageCreated),
    /// A piece of the model's reply, as it streams.
    #[serde(rename = "token")]
    Token(Text),
    /// A piece of the model's reasoning, where it shows it; never the answer.
    #[serde(rename = "reasoning")]
    Reasoning(Text),
    /// The Python block the agent runs next.
    #[serde(rename = "code")]
    Code(CodeBlock),
    /// One output of the running block, as the kernel produced it.
    #[serde(rename = "output")]
    Output(OutputProduced),
    /// What the agent sees of an execution (cut to length).
    #[serde(rename = "observation")]
    Observation(Text),
    /// A file the run saved into the library.
    #[serde(rename = "artifact")]
    Artifact(ArtifactSaved),
    /// The run asks a person and waits.
    #[serde(rename = "interrupt")]
    Interrupt(Interrupted),
    /// One model call's tokens and cost.
    #[serde(rename = "usage")]
    Usage(UsageRecorded),
    /// A budget ended the run.
    #[serde(rename = "run.budget")]
    Budget(BudgetReached),
    /// The run's plan was made or changed.
    #[serde(rename = "plan")]
    Plan(PlanChanged),
    /// Older turns were summarised to fit the model's context.
    #[serde(rename = "context.summarized")]
    ContextSummarized(ContextSummarized),
    /// A tool the code called, and what came of it (both cut short).
    #[serde(rename = "tool")]
    Tool(ToolCalled),
    /// What an execution changed in the thread's workspace.
    #[serde(rename = "workspace")]
    Workspace(WorkspaceChanged),
    /// The page as the browser tool saw it after an action.
    #[serde(rename = "browser")]
    Browser(BrowserSeen),
}

/// Text that belongs to a step, and to a plan's task when a sub-agent
/// wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Text {
    pub text: String,
    /// The plan task's id, for a sub-agent's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CodeBlock {
    /// Python.
    pub code: String,
    /// The plan task's id, for a sub-agent's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputProduced {
    #[serde(flatten)]
    pub output: Output,
    /// The plan task's id, for a sub-agent's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusChanged {
    /// The new status.
    pub status: RunStatus,
    /// Why the run failed, in words.
    #[serde(default)]
    pub error: Option<String>,
    /// `queued`: the model the run was asked to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `queued`: whether it plans first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<bool>,
    /// `queued`, for a fork: the run and the step it goes on from (step 0:
    /// a branch from the run's start, its message asked again or edited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<ForkedFrom>,
    /// `queued`, for a retry: the failed or cancelled run it does again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<RunId>,
    /// `waiting`: the question asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// `succeeded`: the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// `succeeded` and `failed`: the tokens the run used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<cairn_llm::Usage>,
    /// `succeeded`: what the run cost, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// `succeeded`: its model calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
}

impl StatusChanged {
    pub fn new(status: RunStatus, error: Option<String>) -> StatusChanged {
        StatusChanged {
            status,
            error,
            model: None,
            plan: None,
            forked_from: None,
            retry_of: None,
            question: None,
            answer: None,
            usage: None,
            cost_usd: None,
            steps: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ForkedFrom {
    pub run: RunId,
    pub step: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageCreated {
    pub id: MessageId,
    /// `user` or `assistant`.
    pub role: MessageRole,
    /// The member who wrote it; absent for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<UserId>,
    /// The text (Markdown).
    pub content: String,
    /// Library files attached to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactSaved {
    pub file_id: FileId,
    /// Its path in the project's library.
    pub path: String,
    /// Its version there (1 for a new path).
    pub version: i32,
    /// Bytes.
    pub size: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Interrupted {
    /// What the run asks; a member answers with `POST /runs/{id}/resume`.
    pub question: String,
    /// Whether it asks to approve a plan.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plan: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageRecorded {
    /// `provider/model`.
    pub model: String,
    /// Whose run it was.
    pub user: UserId,
    /// Its tokens (the cache fields are absent from version 1's events).
    #[serde(flatten)]
    pub tokens: cairn_llm::Usage,
    pub cost_usd: f64,
    /// What prompt caching saved on this call (US dollars).
    #[serde(default)]
    pub saved_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetReached {
    /// Which limit, in words.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanChanged {
    /// The plan as it now stands: its tasks with their statuses and results.
    pub plan: Plan,
    /// The member who edited it; absent when the planner made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_by: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContextSummarized {
    /// Turns folded into the summary.
    pub turns: usize,
    /// Messages cut to fit after that.
    pub shortened: usize,
    /// The prompt's estimated tokens before and after.
    pub tokens_before: usize,
    pub tokens_after: usize,
    /// The plan task's id, for a sub-agent's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// Characters of a tool's arguments or result an event keeps.
pub const TOOL_TEXT_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolCalled {
    /// The tool (`web_fetch`, `browser_open`, `mcp:<server>/<tool>`…).
    pub name: String,
    /// Its arguments, as JSON, cut short.
    pub args: String,
    /// What it returned (or why it failed), cut short.
    pub result: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The plan task's id, for a sub-agent's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// How a workspace path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Modified,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PathChanged {
    /// Relative to the workspace root, `/`-separated.
    pub path: String,
    pub change: Change,
    /// Its size now, in bytes (0 once removed).
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkspaceChanged {
    /// The files added, modified or removed, by path.
    pub changes: Vec<PathChanged>,
    /// More changed than the list holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The plan task's id, for a sub-agent's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BrowserSeen {
    /// The browser tool that acted (`browser_open`, `browser_click`…).
    pub action: String,
    /// The page's address after it.
    pub url: String,
    /// The page's title.
    #[serde(default)]
    pub title: String,
    /// The screenshot's name among the thread's pictures
    /// (`GET /threads/{id}/pictures/{name}`); absent when none could be taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
    /// The plan task's id, for a sub-agent's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

impl RunEvent {
    /// The stored kind of the events that tell of a thread's messages, for
    /// reads of the log that pick them out without decoding every event.
    pub const MESSAGE_CREATED: &'static str = "message.created";

    /// The event as the log stores it: its kind and its payload.
    pub fn into_parts(self) -> (String, Value) {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => {
                let kind = map.remove("kind").and_then(|k| k.as_str().map(str::to_owned)).unwrap_or_default();
                (kind, map.remove("payload").unwrap_or(Value::Null))
            }
            // Every variant serialises to an object with a kind.
            _ => (String::new(), Value::Null),
        }
    }

    /// An event read back from the log, written at `version`.
    pub fn decode(kind: &str, mut payload: Value, version: i32) -> Result<RunEvent, serde_json::Error> {
        if version < 2
            && let Some(map) = payload.as_object_mut()
        {
            // Version 1 wrote absent options as null, which the typed fields
            // read as absent too, except where a value is required.
            map.retain(|_, value| !value.is_null());
            if kind == "run.status" {
                map.entry("error").or_insert(Value::Null);
            }
        }
        serde_json::from_value(json!({ "kind": kind, "payload": payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `kind` names a variant (an empty payload is refused for a
    /// missing field, not for an unknown kind).
    fn is_a_kind(kind: &str) -> bool {
        match RunEvent::decode(kind, json!({}), SCHEMA_VERSION) {
            Ok(_) => true,
            Err(error) => !error.to_string().contains("unknown variant"),
        }
    }

    #[test]
    fn the_named_kinds_are_the_variants_kinds() {
        let created = RunEvent::MessageCreated(MessageCreated {
            id: cairn_core::MessageId::new(),
            role: cairn_core::model::MessageRole::User,
            author: None,
            content: "hi".into(),
            attachments: Vec::new(),
        });
        assert_eq!(created.into_parts().0, RunEvent::MESSAGE_CREATED);
    }

    #[test]
    fn the_kinds_retention_keeps_are_kinds_of_events() {
        assert!(!is_a_kind("no.such.kind"));
        for kind in cairn_core::lifecycle::KEPT_EVENT_KINDS {
            assert!(is_a_kind(kind), "{kind} is in KEPT_EVENT_KINDS but no RunEvent kind");
        }
    }

    #[test]
    fn events_keep_the_wire_shape_of_the_loose_json_they_replace() {
        let event = RunEvent::Token(Text { text: "Hel".into(), task: None });
        assert_eq!(serde_json::to_value(&event).unwrap(), json!({ "kind": "token", "payload": { "text": "Hel" } }));
        let (kind, payload) = event.clone().into_parts();
        assert_eq!((kind.as_str(), &payload), ("token", &json!({ "text": "Hel" })));
        assert_eq!(RunEvent::decode(&kind, payload, SCHEMA_VERSION).unwrap(), event);
        let output = RunEvent::Output(OutputProduced {
            output: Output::Stream { name: "stdout".into(), text: "42\n".into() },
            task: Some("t1".into()),
        });
        assert_eq!(output.into_parts().1, json!({ "type": "stream", "name": "stdout", "text": "42\n", "task": "t1" }));
    }

    #[test]
    fn version_1_payloads_read_with_their_nulls_and_missing_fields() {
        let queued = RunEvent::decode("run.status", json!({ "status": "queued", "model": null, "plan": false }), 1);
        let RunEvent::Status(status) = queued.unwrap() else { panic!() };
        assert_eq!(
            (status.status, status.model, status.plan, status.error),
            (RunStatus::Queued, None, Some(false), None)
        );
        let user = UserId::new();
        let usage = json!({ "model": "p/m", "user": user, "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.5 });
        let RunEvent::Usage(usage) = RunEvent::decode("usage", usage, 1).unwrap() else { panic!() };
        assert_eq!((usage.tokens.cache_read_tokens, usage.saved_usd, usage.user), (0, 0.0, user));
        assert!(RunEvent::decode("no.such.kind", json!({}), 1).is_err());
    }
}
