//! Runs: a user's message starts one; it goes through the bus's durable
//! queue to a worker, which runs the agent's graph in the thread's sandbox
//! with a checkpoint after every step, and writes every event to the
//! thread's log and onto the bus. A worker that dies leaves its job's lease
//! to expire; the job is delivered again and the run goes on from its last
//! checkpoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_core::bus::Bus;
use cairn_core::hooks::{Hooks, Notice};
use cairn_core::model::{Fence, Message, MessageRole, NewEvent, NewMessage, NewRun, Run, RunStatus};
use cairn_core::store::Store;
use cairn_core::{RunId, ThreadId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::budget::{Budget, budget_spent};
use crate::codeact::{Agent, AgentState};
use crate::events::{Events, ForkedFrom, MessageCreated, PlanChanged, RunEvent, SCHEMA_VERSION, StatusChanged};
use crate::plan::{Plan, builtin_agents};
use cairn_config::{AgentConfig, AgentSpec};

/// The queue runs travel on.
pub const QUEUE: &str = "runs";

/// How many times (2 s apart) a worker tries a run again in place while the
/// database or the sandbox hosts are out of reach, before handing it back.
const TRANSIENT_RETRIES: u32 = 30;

/// The bus topic on which a cancel reaches the process working the run.
const CANCEL_TOPIC: &str = "runs.cancel";

mod lanes;
mod worker;

pub use lanes::LANE_QUEUE;

/// The bus topic a thread's events are published on.
pub fn topic(thread: ThreadId) -> String {
    format!("thread.{thread}.events")
}

/// What a run call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
    #[error("{0}")]
    Conflict(String),
    /// The project's budget is spent: no new run starts.
    #[error("{0}")]
    BudgetSpent(String),
    /// The member's monthly budget is spent: no new run of theirs starts.
    #[error("{0}")]
    MemberBudgetSpent(String),
    /// No sandbox can be had now (no sandbox host answers): the run waits in
    /// the queue and is tried again.
    #[error("{0}")]
    SandboxUnavailable(String),
}

/// Events of one run: into the thread's log, then onto the bus.
#[derive(Debug, Clone)]
pub struct StoreEvents {
    pub store: Arc<dyn Store>,
    pub bus: Bus,
    pub thread: ThreadId,
    pub run: Option<RunId>,
    /// A worker's claim on the run: its events are refused once another
    /// worker has taken the run over, and then `stop` is raised.
    pub fence: Option<Fence>,
    pub stop: Option<Arc<AtomicBool>>,
    /// Told of the artifacts saved (webhooks).
    pub hooks: Option<Arc<dyn Hooks>>,
}

#[async_trait]
impl Events for StoreEvents {
    async fn emit(&self, event: RunEvent) {
        // A saved file is a project event: its webhook deliveries are queued
        // with the event that tells of it.
        let notice = match &event {
            RunEvent::Artifact(saved) => Some(Notice {
                kind: "artifact.saved",
                data: json!({
                    "run": self.run,
                    "thread": self.thread,
                    "file_id": saved.file_id,
                    "path": saved.path,
                    "version": saved.version,
                    "size": saved.size,
                }),
            }),
            _ => None,
        };
        let noticed = notice.is_some();
        let (kind, payload) = event.into_parts();
        let event = NewEvent { run_id: self.run, kind: kind.clone(), payload, schema_version: SCHEMA_VERSION };
        match self.store.append_events_noticed(self.thread, vec![event], self.fence, notice).await {
            Ok(stored) => {
                for event in stored {
                    publish(&self.bus, event).await;
                }
                if let (true, Some(hooks)) = (noticed, &self.hooks) {
                    hooks.queued();
                }
            }
            Err(cairn_core::Error::LeaseLost { .. }) => {
                tracing::info!(%kind, "another worker took the run over; this one's event was refused and it stops");
                if let Some(stop) = &self.stop {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            Err(error) => tracing::warn!(%error, %kind, "an event could not be recorded"),
        }
    }
}

/// Tells the thread's live streams of a stored event (lost, not queued,
/// while the bus is away: streams read the log again then).
async fn publish(bus: &Bus, event: cairn_core::model::Event) {
    let thread = event.thread_id;
    let wire = serde_json::to_vec(&cairn_core::model::Published::of(event)).unwrap_or_default();
    let _ = bus.pubsub.publish(&topic(thread), Bytes::from(wire)).await;
}

/// A run waiting in the queue for a worker. Version 1 was the same object
/// without `version`; a job this version cannot read is dropped (logged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunJob {
    #[serde(default = "RunJob::first_version")]
    pub version: u32,
    pub run: RunId,
    /// `provider/model` the run was asked to use.
    #[serde(default)]
    pub model: Option<String>,
    /// Plan first.
    #[serde(default)]
    pub plan: bool,
    /// The W3C `traceparent` the worker's span continues from (traces on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The sub-agent the run is, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl RunJob {
    pub const VERSION: u32 = 2;

    fn first_version() -> u32 {
        1
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A job written by this version or an earlier one.
    pub fn decode(bytes: &[u8]) -> Option<RunJob> {
        serde_json::from_slice::<RunJob>(bytes).ok().filter(|job| job.version <= RunJob::VERSION)
    }
}

/// How a posted message's run works.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `provider/model`; `None`: the thread's, the project's or the default.
    pub model: Option<String>,
    /// Plan first and give the tasks to sub-agents.
    pub plan: bool,
    /// Library files attached to the message (paths in the thread's
    /// project, checked by the caller): images reach models that see.
    pub attachments: Vec<String>,
    /// Run as this sub-agent (`GET /agents`, checked by the caller): its
    /// role, tools and model, for the whole run.
    pub agent: Option<String>,
    /// The run this one branches from (a member edited its message, or
    /// asked for it again, in a new thread).
    pub forked_from: Option<ForkedFrom>,
    /// What posts the message, when it must be posted once (a schedule's
    /// tick): a second post of the same origin is refused (`Conflict`).
    pub origin: Option<String>,
}

/// The run service.
#[derive(Debug, Clone)]
pub struct Runs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    bus: Bus,
    /// The agent that works runs; `None` in a process that only queues them
    /// (the gateway role).
    agent: Option<Arc<Agent>>,
    budget: Budget,
    require_approval: Vec<String>,
    /// The sub-agents plans may use, and when plans wait for approval.
    agents: Arc<Vec<AgentSpec>>,
    plan_approval: cairn_config::PlanApproval,
    lease: Duration,
    /// Deliveries after which a job is set aside (`queue.max_deliveries`):
    /// a run failing on its last one is marked failed.
    max_deliveries: u32,
    /// Cancel flags of the runs this process is working on.
    running: Mutex<HashMap<RunId, Arc<AtomicBool>>>,
    /// Draining: `Take` until the process stops, then `Release`.
    drain: tokio::sync::watch::Sender<Drain>,
    /// Jobs in hand, until acknowledged or given back.
    working: std::sync::atomic::AtomicUsize,
    /// Where project events go (webhooks): runs that ended or wait, and
    /// artifacts saved.
    hooks: Option<Arc<dyn Hooks>>,
}

/// Where a process's workers stand as it shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Taking and working runs.
    Take,
    /// Finishing the runs in hand; taking no more.
    Finish,
    /// Giving the runs still in hand back to the queue, at once, for another
    /// process to go on with from their last checkpoint.
    Release,
}

impl Runs {
    /// Runs that this process can also work on (`start_workers`).
    pub fn new(store: Arc<dyn Store>, bus: Bus, agent: Arc<Agent>, budget: Budget, lease: Duration) -> Runs {
        Runs::with_agent(store, bus, Some(agent), budget, lease)
    }

    /// Runs that this process only queues, controls and reads; processes
    /// with an agent take them from the queue.
    pub fn queue_only(store: Arc<dyn Store>, bus: Bus, budget: Budget, lease: Duration) -> Runs {
        Runs::with_agent(store, bus, None, budget, lease)
    }

    fn with_agent(store: Arc<dyn Store>, bus: Bus, agent: Option<Arc<Agent>>, budget: Budget, lease: Duration) -> Runs {
        let inner = Inner {
            store,
            bus,
            agent,
            budget,
            require_approval: Vec::new(),
            agents: Arc::new(builtin_agents()),
            plan_approval: cairn_config::PlanApproval::Never,
            lease,
            max_deliveries: cairn_core::bus::QueueOptions::default().max_deliveries,
            running: Mutex::new(HashMap::new()),
            drain: tokio::sync::watch::Sender::new(Drain::Take),
            working: std::sync::atomic::AtomicUsize::new(0),
            hooks: None,
        };
        Runs { inner: Arc::new(inner) }
    }

    /// Jobs set aside after this many deliveries (the queue's
    /// `max_deliveries`): a run that fails its last is marked failed.
    pub fn with_max_deliveries(mut self, max_deliveries: u32) -> Runs {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_deliveries = max_deliveries;
        }
        self
    }

    /// Runs that tell `hooks` (webhooks) when they end or wait, and of the
    /// artifacts they save.
    pub fn with_hooks(mut self, hooks: Arc<dyn Hooks>) -> Runs {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.hooks = Some(hooks);
        }
        self
    }

    /// Runs whose calls of these tools wait for a member's approval.
    pub fn with_approval_for(mut self, tools: Vec<String>) -> Runs {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.require_approval = tools;
        }
        self
    }

    /// Runs as the configuration says: budgets, approvals, sub-agents and
    /// plan approval (`agent.*`).
    pub fn configured(mut self, config: &AgentConfig) -> Runs {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.budget = Budget {
                max_steps: config.max_steps,
                max_tokens: config.max_tokens,
                max_cost_usd: config.max_cost_usd,
                max_wall_secs: config.max_wall_secs,
            };
            inner.require_approval = config.require_approval.clone();
            if !config.agents.is_empty() {
                inner.agents = Arc::new(config.agents.clone());
            }
            inner.plan_approval = config.plan_approval;
        }
        self
    }

    /// The sub-agents plans may give tasks to.
    pub fn agents(&self) -> &[AgentSpec] {
        &self.inner.agents
    }

    /// Replaces the plan of a run that waits for its plan's approval (a
    /// member's edit): checked like a planner's, kept in the run's latest
    /// checkpoint, and sent out as a `plan` event.
    pub async fn edit_plan(&self, id: RunId, plan: Plan, user: UserId) -> Result<Plan, RunError> {
        let run = self.inner.store.run(id).await?;
        let conflict = || RunError::Conflict("the run is not waiting for its plan's approval".into());
        if run.status != RunStatus::Waiting {
            return Err(conflict());
        }
        let checkpoint = self.inner.store.latest_checkpoint(id).await?.ok_or_else(conflict)?;
        let mut saved = checkpoint.state;
        let mut state: AgentState = serde_json::from_value(saved["state"].clone()).map_err(|_| conflict())?;
        if !state.awaiting_plan {
            return Err(conflict());
        }
        let plan = plan.fresh(state.plans_made);
        plan.validate(&self.inner.agents).map_err(RunError::Conflict)?;
        state.plan = Some(plan.clone());
        saved["state"] = serde_json::to_value(&state).map_err(|e| RunError::Conflict(e.to_string()))?;
        let edited = cairn_core::model::NewCheckpoint { run_id: id, step: checkpoint.step, state: saved };
        // Saved only while the run still waits: approved (or cancelled)
        // since it was read, it goes on with the plan it had.
        if !self.inner.store.put_checkpoint_while_waiting(edited).await? {
            return Err(RunError::Conflict(
                "the run went on before the edit was saved; the plan was not changed".into(),
            ));
        }
        let changed = PlanChanged { plan: plan.clone(), edited_by: Some(user) };
        self.events(run.thread_id, Some(id)).emit(RunEvent::Plan(changed)).await;
        Ok(plan)
    }

    fn working(&self) -> cairn_memory::ThreadCache {
        cairn_memory::ThreadCache::new(self.inner.store.clone(), self.inner.bus.cache.clone())
    }

    fn events(&self, thread: ThreadId, run: Option<RunId>) -> StoreEvents {
        StoreEvents {
            store: self.inner.store.clone(),
            bus: self.inner.bus.clone(),
            thread,
            run,
            fence: None,
            stop: None,
            hooks: self.inner.hooks.clone(),
        }
    }

    async fn set_status(&self, run: &Run, change: StatusChanged) -> Result<Run, RunError> {
        self.set_status_under(run, change, None).await
    }

    /// Moves the run on, as the worker holding `fence` (refused, with
    /// `LeaseLost`, once another worker has taken it over).
    async fn set_status_under(&self, run: &Run, change: StatusChanged, fence: Option<Fence>) -> Result<Run, RunError> {
        // The status and its event are written together: a worker killed
        // or a database lost between two writes would leave a finished run
        // whose log never says so.
        let (status, error) = (change.status, change.error.clone());
        let notice = match status {
            RunStatus::Succeeded => Some((
                "run.succeeded",
                json!({ "answer": change.answer, "usage": change.usage, "cost_usd": change.cost_usd }),
            )),
            RunStatus::Failed => Some(("run.failed", json!({ "error": change.error }))),
            RunStatus::Waiting => Some(("run.waiting", json!({ "question": change.question }))),
            _ => None,
        }
        .map(|(kind, mut data)| {
            if let Some(map) = data.as_object_mut() {
                map.insert("run".into(), json!(run.id));
                map.insert("thread".into(), json!(run.thread_id));
            }
            Notice { kind, data }
        });
        let noticed = notice.is_some();
        let (kind, payload) = RunEvent::Status(change).into_parts();
        let event = NewEvent { run_id: Some(run.id), kind, payload, schema_version: SCHEMA_VERSION };
        // The status, its event and its webhook deliveries are one write.
        let (updated, logged) =
            self.inner.store.set_run_status_logged(run.id, status, error, fence, Some(event), notice).await?;
        if let Some(event) = logged {
            publish(&self.inner.bus, event).await;
        }
        if let (true, Some(hooks)) = (noticed, &self.inner.hooks) {
            hooks.queued();
        }
        Ok(updated)
    }

    /// Posts a person's message to a thread; with `start`, queues a run that
    /// answers it. A message posted while a run is going reaches the agent
    /// at its next step.
    pub async fn post(
        &self,
        thread: ThreadId,
        user: UserId,
        content: String,
        start: bool,
    ) -> Result<(Message, Option<Run>), RunError> {
        self.post_with_model(thread, user, content, start, None).await
    }

    /// [`Runs::post`], with the run on a given model (`provider/model`).
    pub async fn post_with_model(
        &self,
        thread: ThreadId,
        user: UserId,
        content: String,
        start: bool,
        model: Option<String>,
    ) -> Result<(Message, Option<Run>), RunError> {
        self.post_run(thread, user, content, start, RunOptions { model, ..RunOptions::default() }).await
    }

    /// [`Runs::post`], with the run's options.
    pub async fn post_run(
        &self,
        thread: ThreadId,
        user: UserId,
        content: String,
        start: bool,
        options: RunOptions,
    ) -> Result<(Message, Option<Run>), RunError> {
        let RunOptions { model, plan, attachments, agent, forked_from, origin } = options;
        if start {
            // Refused before anything is stored: the message is not lost, only not posted.
            self.check_budgets(thread, user).await?;
        }
        let new =
            NewMessage { thread_id: thread, role: MessageRole::User, author: Some(user), content, attachments, origin };
        let message = match self.inner.store.append_message(new, None).await {
            Err(cairn_core::Error::Conflict { .. }) => {
                return Err(RunError::Conflict("a message of this origin was posted already".into()));
            }
            other => other?,
        };
        self.working().changed(thread).await;
        let created = MessageCreated {
            id: message.id,
            role: MessageRole::User,
            author: Some(user),
            content: message.content.clone(),
            attachments: message.attachments.clone(),
        };
        self.events(thread, None).emit(RunEvent::MessageCreated(created)).await;
        if !start {
            return Ok((message, None));
        }
        let run = self.start(thread, user, model, plan, agent, forked_from).await?;
        Ok((message, Some(run)))
    }

    /// Starts a run that answers the thread's messages as they are (nothing
    /// is posted): queued, told, and its job enqueued.
    async fn start(
        &self,
        thread: ThreadId,
        user: UserId,
        model: Option<String>,
        plan: bool,
        agent: Option<String>,
        forked_from: Option<ForkedFrom>,
    ) -> Result<Run, RunError> {
        let (run, span) = self.create_run(NewRun { thread_id: thread, created_by: user, trace_parent: None }).await?;
        let queued = StatusChanged {
            model: model.clone(),
            plan: Some(plan),
            forked_from,
            ..StatusChanged::new(RunStatus::Queued, None)
        };
        self.events(thread, Some(run.id)).emit(RunEvent::Status(queued)).await;
        self.enqueue_job(&run, model, plan, agent).instrument(span).await?;
        Ok(run)
    }

    /// Starts a run answering a message that was posted without one (a
    /// schedule's tick whose process died in between), as its author.
    pub async fn answer(&self, thread: ThreadId, user: UserId) -> Result<Run, RunError> {
        self.check_budgets(thread, user).await?;
        self.start(thread, user, None, false, None, None).await
    }

    /// Refuses a run the project's budget or the member's has no room for.
    async fn check_budgets(&self, thread: ThreadId, user: UserId) -> Result<(), RunError> {
        let project = self.inner.store.thread(thread).await?.project_id;
        if let Some(limit) = self.inner.store.project(project).await?.budget_usd
            && let Some(why) = budget_spent(&*self.inner.store, project, limit).await?
        {
            return Err(RunError::BudgetSpent(format!("{why}; an owner can raise it in the project's settings")));
        }
        if let Some(why) = crate::budget::member_budget_spent(&*self.inner.store, project, user).await? {
            return Err(RunError::MemberBudgetSpent(why));
        }
        Ok(())
    }

    /// Runs a failed or cancelled run's work again, in its thread: a new run
    /// answers the same messages (nothing is posted again).
    pub async fn retry(&self, id: RunId, user: UserId, model: Option<String>) -> Result<Run, RunError> {
        let run = self.inner.store.run(id).await?;
        if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(RunError::Conflict(format!(
                "only a failed or cancelled run is tried again; this one is {}",
                run.status.as_str()
            )));
        }
        if self.inner.store.runs(run.thread_id).await?.iter().any(|r| !r.status.is_terminal()) {
            return Err(RunError::Conflict("a run is going in this thread; stop it or wait for it first".into()));
        }
        self.check_budgets(run.thread_id, user).await?;
        let (again, span) =
            self.create_run(NewRun { thread_id: run.thread_id, created_by: user, trace_parent: None }).await?;
        let queued =
            StatusChanged { model: model.clone(), retry_of: Some(id), ..StatusChanged::new(RunStatus::Queued, None) };
        self.events(run.thread_id, Some(again.id)).emit(RunEvent::Status(queued)).await;
        self.enqueue_job(&again, model, false, None).instrument(span).await?;
        Ok(again)
    }

    /// A new thread of `thread`'s project, titled after it with `why`, holding
    /// copies of `messages`.
    async fn new_thread_with(
        &self,
        thread: &cairn_core::model::Thread,
        why: &str,
        user: UserId,
        messages: &[Message],
    ) -> Result<cairn_core::model::Thread, RunError> {
        let new = cairn_core::model::NewThread {
            project_id: thread.project_id,
            title: format!("{} ({why})", thread.title),
            created_by: user,
            model: thread.model.clone(),
        };
        let created = self.inner.store.create_thread(new).await?;
        for message in messages {
            let copy = NewMessage {
                thread_id: created.id,
                role: message.role,
                author: message.author,
                content: message.content.clone(),
                attachments: message.attachments.clone(),
                origin: None,
            };
            self.inner.store.append_message(copy, None).await?;
        }
        Ok(created)
    }

    /// Branches a run from its start into a new thread of the same project:
    /// the messages before the one that started it are copied, then that
    /// message — or `content` in its place, a member's edit — is posted
    /// again and a new run answers it. The original thread is untouched.
    pub async fn branch(
        &self,
        id: RunId,
        content: Option<String>,
        user: UserId,
    ) -> Result<(cairn_core::model::Thread, Run), RunError> {
        let run = self.inner.store.run(id).await?;
        let thread = self.inner.store.thread(run.thread_id).await?;
        let messages = self.inner.store.messages(thread.id).await?;
        // The member's message the run answered: the last one before it began.
        let started = messages
            .iter()
            .rposition(|m| m.role == MessageRole::User && m.created_at <= run.created_at)
            .ok_or_else(|| RunError::Conflict("the run answered no member's message".into()))?;
        let original = &messages[started];
        let suffix = if content.is_some() { "edited" } else { "again" };
        let branched = self.new_thread_with(&thread, suffix, user, &messages[..started]).await?;
        let options = RunOptions {
            attachments: original.attachments.clone(),
            forked_from: Some(ForkedFrom { run: id, step: 0 }),
            ..RunOptions::default()
        };
        let text = content.unwrap_or_else(|| original.content.clone());
        let (_, new_run) = self.post_run(branched.id, user, text, true, options).await?;
        let new_run = new_run.ok_or_else(|| RunError::Conflict("the branch's run did not start".into()))?;
        Ok((branched, new_run))
    }

    /// A new run, and the span its trace begins with: the run keeps that
    /// span's `traceparent`, so every worker that takes it up, now or after
    /// an answer, continues the same trace.
    async fn create_run(&self, new: NewRun) -> Result<(Run, tracing::Span), RunError> {
        let span = tracing::info_span!(
            "run.queue",
            otel.name = "queue run",
            otel.kind = "producer",
            messaging.destination.name = QUEUE,
            cairn.run.id = tracing::field::Empty,
        );
        let new = NewRun { trace_parent: cairn_core::trace::traceparent(&span), ..new };
        let run = self.inner.store.create_run(new).instrument(span.clone()).await?;
        span.record("cairn.run.id", tracing::field::display(run.id));
        Ok((run, span))
    }

    async fn enqueue(&self, run: &Run, model: Option<String>) -> Result<(), RunError> {
        self.enqueue_job(run, model, false, None).await
    }

    async fn enqueue_job(
        &self,
        run: &Run,
        model: Option<String>,
        plan: bool,
        agent: Option<String>,
    ) -> Result<(), RunError> {
        let job = RunJob { version: RunJob::VERSION, run: run.id, model, plan, trace: run.trace_parent.clone(), agent };
        self.inner.bus.queue.enqueue(QUEUE, Bytes::from(job.encode())).await?;
        Ok(())
    }

    /// Cancels a run: at once if it waits, between two steps if it runs.
    pub async fn cancel(&self, id: RunId) -> Result<Run, RunError> {
        let run = self.inner.store.run(id).await?;
        if run.status.is_terminal() {
            return Err(RunError::Conflict(format!("the run already ended ({})", run.status.as_str())));
        }
        if self.stop_here(id) {
            return Ok(run);
        }
        // Queued or waiting: it ends now. Running in another process: it ends
        // now too, and that process stops at its next step (told through the
        // bus, and in any case by the run's status, which it checks while it
        // keeps the job's lease).
        let cancelled = self.set_status(&run, StatusChanged::new(RunStatus::Cancelled, None)).await?;
        if run.status == RunStatus::Running {
            let payload = Bytes::from(id.to_string());
            if let Err(error) = self.inner.bus.pubsub.publish(CANCEL_TOPIC, payload).await {
                tracing::warn!(run = %id, %error, "cannot tell the other processes of a cancel; the worker sees it at its next lease check");
            }
        }
        Ok(cancelled)
    }

    /// Raises the cancel flag of a run this process is working on; whether it was.
    fn stop_here(&self, id: RunId) -> bool {
        let flag = self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).get(&id).cloned();
        flag.inspect(|flag| flag.store(true, Ordering::SeqCst)).is_some()
    }

    /// Stops runs of this process that were cancelled through another one.
    fn listen_for_cancels(&self) {
        let runs = self.clone();
        tokio::spawn(async move {
            let mut cancels = match runs.inner.bus.pubsub.subscribe(CANCEL_TOPIC).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for cancels from other processes; runs stop at their next lease check");
                    return;
                }
            };
            while let Some(payload) = futures::StreamExt::next(&mut cancels).await {
                if let Some(id) = std::str::from_utf8(&payload).ok().and_then(|id| id.parse::<RunId>().ok()) {
                    runs.stop_here(id);
                }
            }
        });
    }

    /// Answers the question a waiting run asked, and queues it to go on.
    pub async fn resume(&self, id: RunId, user: UserId, answer: String) -> Result<Run, RunError> {
        let run = self.inner.store.run(id).await?;
        if run.status != RunStatus::Waiting {
            return Err(RunError::Conflict(format!("the run is {}, not waiting for an answer", run.status.as_str())));
        }
        self.post(run.thread_id, user, answer, false).await?;
        let run = self.set_status(&run, StatusChanged::new(RunStatus::Queued, None)).await?;
        // The model stays the one in the run's checkpointed state.
        self.enqueue(&run, None).await?;
        Ok(run)
    }

    /// Forks a run after `step` into a new thread of the same project: the
    /// thread gets copies of the messages posted until then, a new run starts from the
    /// checkpoint of that step (with a fresh sandbox) and goes its own way.
    pub async fn fork(&self, id: RunId, step: i64, user: UserId) -> Result<(cairn_core::model::Thread, Run), RunError> {
        let run = self.inner.store.run(id).await?;
        let thread = self.inner.store.thread(run.thread_id).await?;
        let checkpoint = self
            .inner
            .store
            .checkpoints(id)
            .await?
            .into_iter()
            .find(|c| c.step == step)
            .ok_or_else(|| RunError::Conflict(format!("the run has no checkpoint after step {step}")))?;
        // The messages the run had seen by then.
        let messages: Vec<Message> = self
            .inner
            .store
            .messages(thread.id)
            .await?
            .into_iter()
            .filter(|m| m.created_at <= checkpoint.created_at)
            .collect();
        let forked = self.new_thread_with(&thread, &format!("fork at step {step}"), user, &messages).await?;
        self.working().changed(forked.id).await;
        let (new_run, span) =
            self.create_run(NewRun { thread_id: forked.id, created_by: user, trace_parent: None }).await?;
        let mut state = checkpoint.state;
        // The copies count as seen; a pending approval does not carry over.
        state["state"]["seen_messages"] = json!(messages.len());
        state["state"]["awaiting_approval"] = Value::Null;
        self.inner
            .store
            .put_checkpoint(cairn_core::model::NewCheckpoint { run_id: new_run.id, step, state }, None)
            .await?;
        let queued = StatusChanged {
            forked_from: Some(ForkedFrom { run: id, step }),
            ..StatusChanged::new(RunStatus::Queued, None)
        };
        self.events(forked.id, Some(new_run.id)).emit(RunEvent::Status(queued)).await;
        self.enqueue(&new_run, None).instrument(span).await?;
        Ok((forked, new_run))
    }

    /// Waits until the run ends or waits for a person (or `timeout` passes).
    pub async fn settle(&self, id: RunId, timeout: Duration) -> Result<Run, RunError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let run = self.inner.store.run(id).await?;
            if run.status.is_terminal() || run.status == RunStatus::Waiting || tokio::time::Instant::now() >= deadline {
                return Ok(run);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops this process's workers for a shutdown: they take no more runs,
    /// the runs in hand have `grace` to finish, and those still going then
    /// go back to the queue at once (not after their lease runs out), so
    /// another process goes on from their last checkpoint.
    pub async fn drain(&self, grace: Duration) {
        self.inner.drain.send_replace(Drain::Finish);
        let deadline = tokio::time::Instant::now() + grace;
        while !self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.inner.drain.send_replace(Drain::Release);
        // The workers give their jobs back; a moment for the queue to hear it.
        let released = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.inner.working.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < released {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_jobs_of_this_and_the_first_version_read_and_newer_ones_do_not() {
        let run = RunId::new();
        let trace = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned());
        let job = RunJob { version: RunJob::VERSION, run, model: Some("p/m".into()), plan: true, trace, agent: None };
        assert_eq!(RunJob::decode(&job.encode()), Some(job));
        // Version 1 wrote the same fields without a version; a job of
        // version 2 queued before traces has no trace.
        let first = json!({ "run": run, "model": null, "plan": false }).to_string();
        let read = RunJob::decode(first.as_bytes());
        assert_eq!(read, Some(RunJob { version: 1, run, model: None, plan: false, trace: None, agent: None }));
        let untraced = RunJob { version: RunJob::VERSION, run, model: None, plan: false, trace: None, agent: None };
        assert!(!String::from_utf8(untraced.encode()).unwrap().contains("trace"));
        let newer = json!({ "version": RunJob::VERSION + 1, "run": run }).to_string();
        assert_eq!(RunJob::decode(newer.as_bytes()), None);
        assert_eq!(RunJob::decode(b"{\"run\": \"not an id\"}"), None);
    }
}
