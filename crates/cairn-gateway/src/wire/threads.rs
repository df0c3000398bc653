//! The wire types of threads and what hangs off them, in one place: what
//! each resource's handlers take (request bodies, query parameters) and
//! answer, converted explicitly from the domain types. The OpenAPI document
//! and the web app's generated types are made from these.

use cairn_agent::RunEvent;
use cairn_agent::plan::{Plan, Task};
use cairn_core::model::{Event, Message, ModelUsage, Run, RunShare, Thread};
use cairn_core::{MessageId, ProjectId, RunId, ShareId, ThreadId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

// ---- Threads ----

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThreadResponse {
    pub id: ThreadId,
    pub project_id: ProjectId,
    pub title: String,
    pub created_by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The newest event's sequence number (0: none yet).
    pub last_event_seq: i64,
    /// The model its runs use (`provider/model`); `null`: the deployment's default.
    pub model: Option<String>,
}

impl From<Thread> for ThreadResponse {
    fn from(t: Thread) -> Self {
        ThreadResponse {
            id: t.id,
            project_id: t.project_id,
            title: t.title,
            created_by: t.created_by,
            created_at: t.created_at,
            last_event_seq: t.last_event_seq,
            model: t.model,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewThreadRequest {
    #[serde(default)]
    pub title: String,
    /// The model the thread's runs use (`provider/model`, see `GET /models`).
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameThreadRequest {
    /// 1 to 200 characters.
    pub title: String,
}

// ---- Messages ----

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageResponse {
    pub id: MessageId,
    pub thread_id: ThreadId,
    /// `user`, `assistant` or `system`.
    pub role: String,
    pub author: Option<UserId>,
    pub content: String,
    /// Library files attached to it (paths in the thread's project).
    pub attachments: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<Message> for MessageResponse {
    fn from(m: Message) -> Self {
        MessageResponse {
            id: m.id,
            thread_id: m.thread_id,
            role: m.role.as_str().to_owned(),
            author: m.author,
            content: m.content,
            attachments: m.attachments,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessageRequest {
    pub content: String,
    /// Start an agent run that answers it (default `true`). Without, the
    /// message reaches a run already going at its next step.
    #[serde(default = "yes")]
    pub run: bool,
    /// Answer only when the run has ended (or waits for a person), up to
    /// `wait_secs` seconds.
    #[serde(default)]
    pub wait: bool,
    #[serde(default = "default_wait")]
    pub wait_secs: u64,
    /// The model for the run (`provider/model`, see `GET /models`); the
    /// deployment's default when left out.
    #[serde(default)]
    pub model: Option<String>,
    /// Plan first: the run breaks the task into a plan whose tasks
    /// sub-agents do (see `GET /agents`), then answers from their results.
    #[serde(default)]
    pub plan: bool,
    /// Files in the project's library to attach (at most 8 paths, e.g. an
    /// upload's `uploads/chart.png`): the agent is told of each, and a
    /// model that sees is shown the images among them.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Run as this sub-agent (see `GET /agents`): its role, tools and model
    /// for the whole run.
    #[serde(default)]
    pub agent: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_wait() -> u64 {
    300
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostMessageResponse {
    /// The member's message, as posted.
    pub message: MessageResponse,
    /// The run it started (absent with `run: false`); with `wait`, as it
    /// stood when the wait ended.
    pub run: Option<RunResponse>,
    /// With `wait`: the run's answer, when it succeeded.
    pub answer: Option<String>,
}

// ---- Runs and their plans ----

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunResponse {
    pub id: RunId,
    pub thread_id: ThreadId,
    /// `queued`, `running`, `waiting` (for an answer), `succeeded`, `failed`, `cancelled`.
    pub status: String,
    pub created_by: UserId,
    /// Why the run failed, in words a person can act on.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When retention removed its step details (code, outputs); its answer,
    /// messages and files stay. `null`: they are all there.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub details_removed_at: Option<OffsetDateTime>,
}

impl From<Run> for RunResponse {
    fn from(r: Run) -> Self {
        RunResponse {
            id: r.id,
            thread_id: r.thread_id,
            status: r.status.as_str().to_owned(),
            created_by: r.created_by,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            details_removed_at: r.details_removed_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// The answer to the question the run asked.
    pub answer: String,
}

/// A task of a plan.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanTask {
    /// Short and unique in the plan (`t1`).
    pub id: String,
    pub title: String,
    pub goal: String,
    /// How the supervisor tells it is done.
    pub done_when: String,
    /// Ids of the tasks whose results it needs.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The sub-agent that does it (see `GET /agents`).
    pub agent: String,
    /// `pending`, `running`, `done` or `failed` (ignored in an edit).
    #[serde(default)]
    pub status: Option<String>,
    /// The result, or why it failed (ignored in an edit).
    #[serde(default)]
    pub result: Option<String>,
}

/// A run's plan.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanBody {
    pub tasks: Vec<PlanTask>,
}

/// An edited plan: what the tasks are, never how far they got.
impl From<PlanBody> for Plan {
    fn from(body: PlanBody) -> Self {
        let tasks = body
            .tasks
            .into_iter()
            .map(|t| Task {
                id: t.id,
                title: t.title,
                goal: t.goal,
                done_when: t.done_when,
                depends_on: t.depends_on,
                agent: t.agent,
                status: Default::default(),
                result: None,
                attempts: 0,
            })
            .collect();
        Plan { tasks, version: 0 }
    }
}

impl From<Plan> for PlanBody {
    fn from(plan: Plan) -> Self {
        let tasks = plan
            .tasks
            .into_iter()
            .map(|t| PlanTask {
                status: serde_json::to_value(t.status).ok().and_then(|v| v.as_str().map(str::to_owned)),
                id: t.id,
                title: t.title,
                goal: t.goal,
                done_when: t.done_when,
                depends_on: t.depends_on,
                agent: t.agent,
                result: t.result,
            })
            .collect();
        PlanBody { tasks }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkRequest {
    /// The step (its checkpoint) to go on from; steps count from 1. 0: from
    /// the run's start — its message is asked again (or `content` in its
    /// place) in the new thread.
    #[serde(default)]
    pub step: i64,
    /// With step 0: the member's edit of the message that started the run.
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// The model to try with (`provider/model`); the thread's when absent.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ForkResponse {
    pub thread: ThreadResponse,
    pub run: RunResponse,
}

// ---- Events ----

/// One event of a thread's log: its number, its run, and the event itself
/// (`kind` and a `payload` whose fields each kind defines, see `RunEvent`).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventResponse {
    /// Consecutive per thread: resume with `after` (or `Last-Event-ID`) set to the last one seen.
    pub seq: i64,
    pub run_id: Option<RunId>,
    #[serde(flatten)]
    pub event: RunEvent,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl EventResponse {
    /// The stored event, typed; `None` (logged) for one this version cannot
    /// read, which is left out rather than sent half-understood.
    pub(crate) fn read(e: Event) -> Option<EventResponse> {
        match RunEvent::decode(&e.kind, e.payload, e.schema_version) {
            Ok(event) => Some(EventResponse { seq: e.seq, run_id: e.run_id, event, created_at: e.created_at }),
            Err(error) => {
                tracing::warn!(%error, thread = %e.thread_id, seq = e.seq, kind = %e.kind, "an event could not be read");
                None
            }
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Events after this sequence number (0: from the start). `Last-Event-ID` wins when sent.
    #[serde(default)]
    pub(crate) after: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SocketQuery {
    /// Events after this sequence number (0: from the start).
    #[serde(default)]
    pub(crate) after: i64,
    /// A ticket from `POST /threads/{thread_id}/events/ticket`, for browsers
    /// (which cannot send `Authorization` on a WebSocket). Other clients may
    /// send their bearer credential instead.
    pub(crate) ticket: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketResponse {
    /// Send it as `?ticket=` when opening the thread's event WebSocket.
    pub ticket: String,
    /// Seconds it stays usable; it works once.
    pub expires_in: u64,
}

// ---- Usage ----

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserUsage {
    pub user: UserId,
    #[serde(flatten)]
    pub totals: ModelUsage,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectUsage {
    pub project_id: ProjectId,
    pub total: ModelUsage,
    /// By the user whose runs made the calls.
    pub by_user: Vec<UserUsage>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyUsage {
    pub user: UserId,
    pub total: ModelUsage,
    /// By project, for the projects the caller is a member of.
    pub by_project: Vec<ProjectTotals>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectTotals {
    pub project_id: ProjectId,
    #[serde(flatten)]
    pub totals: ModelUsage,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DailyUsage {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub user: UserId,
    /// `provider/model`.
    pub model: String,
    #[serde(flatten)]
    pub totals: ModelUsage,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DaysQuery {
    /// How many days back, today included (1 to 366, default 30).
    pub(crate) days: Option<i64>,
}

// ---- Search ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// The text to find (1 to 200 characters; case-insensitive, taken literally).
    pub(crate) q: String,
    /// Only this project's threads.
    pub(crate) project_id: Option<ProjectId>,
    /// At most this many (1 to 50, default 20).
    pub(crate) limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThreadMatchResponse {
    pub thread: ThreadResponse,
    pub project_name: String,
    /// Where a message holds the text (cut around it); `null` when only the
    /// title matched.
    pub snippet: Option<String>,
}

// ---- Share links ----

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRunRequest {
    /// Hours until the link stops working: 1 to 2160 (90 days); 168 (a week) when absent.
    #[serde(default)]
    pub expires_in_hours: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShareResponse {
    pub id: ShareId,
    pub run_id: RunId,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    /// Whether the link opens its run now.
    pub open: bool,
}

impl From<RunShare> for ShareResponse {
    fn from(s: RunShare) -> Self {
        ShareResponse {
            open: s.is_open(OffsetDateTime::now_utc()),
            id: s.id,
            run_id: s.run_id,
            created_at: s.created_at,
            expires_at: s.expires_at,
            revoked_at: s.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedShareResponse {
    #[serde(flatten)]
    pub share: ShareResponse,
    /// The link's secret: shown this once, never stored.
    pub token: String,
    /// The web app's page for it, relative to the server (`/#/shared/<token>`).
    pub path: String,
}

/// The shared run itself: what it is and how it ended, without who ran it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedRun {
    pub id: RunId,
    /// `queued`, `running`, `waiting`, `succeeded`, `failed`, `cancelled`.
    pub status: String,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// What a link shows: one run, with the messages around it. Nothing names
/// the project's members: messages carry no author, usage no user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedRunResponse {
    pub thread_id: ThreadId,
    pub thread_title: String,
    pub run: SharedRun,
    /// The run's events, and the thread's messages from the one that started
    /// it to its end, in the log's order.
    pub events: Vec<EventResponse>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

// ---- The workspace ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PathQuery {
    /// A path relative to the workspace's root (`/`-separated).
    pub(crate) path: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveWorkspaceFileRequest {
    /// The workspace file.
    pub path: String,
    /// Its path in the library; the same path when absent.
    #[serde(default)]
    pub to: Option<String>,
}
