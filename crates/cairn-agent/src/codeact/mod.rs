//! The CodeAct agent, as a graph: `think` asks the model for its next step
//! (a Python block), `act` runs the block in the thread's sandbox — where
//! the tools are plain functions — and turns what came out into the next
//! observation. `final_answer(...)` ends the run; `ask_user(...)` suspends it
//! until a person answers. A run that plans first adds `plan`, `dispatch`,
//! `check` and `synthesize`, which hand tasks to sub-agents and supervise
//! them.
//!
//! - `state`: what the agent carries from step to step (checkpointed);
//! - `prompts`: the system prompts and the project's context;
//! - `model`: model calls, token estimates and fitting the context window;
//! - `turn`: `think` and `act` — messages, budgets, code, observations and
//!   the bridge between the sandbox and the tools;
//! - `supervise`: planning, dispatching tasks to sub-agents, checking their
//!   results and writing the answer.

pub mod mcp;
mod model;
mod prompts;
mod state;
mod supervise;
mod turn;

pub use model::{context_budget, estimate_tokens, prompt_tokens};
pub use state::AgentState;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use cairn_core::sandbox::{ExecHandler, ExecOutcome, Execution, Output};
use cairn_core::{ProjectId, RunId, SandboxId, ThreadId, UserId};
use cairn_llm::{ChatRequest, Delta, Message, Models, Usage};
use cairn_tools::{Registry, Services, ToolContext};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::budget::{Budget, Spent};
use crate::events::{
    BudgetReached, CodeBlock, ContextSummarized, Events, Interrupted, OutputProduced, PlanChanged, RunEvent, Text,
    UsageRecorded,
};
use crate::graph::{Control, Edge, Graph, NodeError, Step, StepContext};
use crate::plan::{Plan, TaskStatus, parse_plan, parse_verdict, planner_prompt};
use cairn_config::AgentSpec;

/// One run's surroundings.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run: RunId,
    pub thread: ThreadId,
    pub project: ProjectId,
    pub user: UserId,
    pub sandbox: SandboxId,
    /// `provider/model`; `None`: the default.
    pub model: Option<String>,
    pub budget: Budget,
    /// The most the project's runs may spend in all (US dollars), if limited.
    pub project_budget_usd: Option<f64>,
    /// The package installs the project grants its sandboxes.
    pub packages: Option<cairn_core::sandbox::PackagePolicy>,
    /// Tools whose calls a member must approve first (`agent.require_approval`).
    pub require_approval: Vec<String>,
    /// The run starts with a plan (`plan` when posted).
    pub planning: bool,
    /// The sub-agents plans may use.
    pub agents: Arc<Vec<AgentSpec>>,
    /// When a plan waits for approval (`agent.plan_approval`).
    pub plan_approval: cairn_config::PlanApproval,
    /// The thread's messages, cached.
    pub working: cairn_memory::ThreadCache,
    /// The worker's claim on the run (a lane's: the claim its supervisor
    /// queued it under): its library writes carry it (`None`: no worker).
    pub fence: Option<cairn_core::model::Fence>,
    /// Where the lanes of a batch of tasks beyond the first are worked
    /// (queued for any worker); `None`: all here, side by side.
    pub lanes: Option<Arc<dyn Lanes>>,
}

/// One lane of a batch of independent tasks, for another worker to work:
/// the sub-agent's state as it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneJob {
    pub run: RunId,
    /// The supervisor's step the batch belongs to.
    pub step: i64,
    pub lane: usize,
    pub state: AgentState,
    /// The supervisor's claim on the run when it queued the lane: the lane's
    /// events, library writes and result are made under it, so a lane of a
    /// run another worker has taken over since writes nothing (that
    /// worker's supervisor queues the lane again). `None` in jobs queued
    /// before lanes carried it, and where no worker holds the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<cairn_core::model::Fence>,
}

/// Works lanes of a batch elsewhere (the run service queues them).
#[async_trait]
pub trait Lanes: Send + Sync + std::fmt::Debug {
    /// The lane's state once its sub-agent finished or gave up.
    async fn work(&self, job: LaneJob, ctx: &StepContext) -> Result<AgentState, AgentError>;
}

impl RunContext {
    fn plan_needs_approval(&self, tasks: usize) -> bool {
        self.plan_approval.needs_approval(tasks)
    }

    fn agent_spec(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| a.name == name)
    }
}

/// Everything the agent uses, shared by all runs.
#[derive(Debug, Clone)]
pub struct Agent {
    pub models: Arc<Models>,
    pub registry: Arc<Registry>,
    pub services: Services,
    pub store: Arc<dyn cairn_core::store::Store>,
    /// Opens the secrets stored sealed (MCP servers' credentials); without
    /// it, servers get none.
    pub keys: Option<Arc<cairn_auth::KeyRing>>,
}

/// How much of an observation the model sees.
const MAX_OBSERVATION_CHARS: usize = 8000;
/// Replies without code, in a row, before the run gives up.
const MAX_MALFORMED: u32 = 3;
/// Plans a run may make (the first and re-plans after failed tasks).
const MAX_PLANS: u32 = 3;
/// Times a task is tried before it counts as failed.
const MAX_TASK_ATTEMPTS: u32 = 2;

/// Whether an answer to a yes/no question says yes.
fn says_yes(answer: &str) -> bool {
    let yes = answer.trim().to_lowercase();
    yes.starts_with("yes") || yes.starts_with("approve") || yes == "y" || yes == "ok"
}

/// An event payload tagged with the task a sub-agent works on.
fn task_of(state: &AgentState) -> Option<String> {
    state.task.and_then(|i| state.plan.as_ref()?.tasks.get(i)).map(|task| task.id.clone())
}

/// Text of the current step, with its plan task.
fn step_text(text: String, state: &AgentState) -> Text {
    Text { text, task: task_of(state) }
}

/// The Python block of a reply: the first fenced block whose language is
/// `python`, `py` or not given.
pub fn code_block(reply: &str) -> Option<String> {
    let start = reply.find("```")?;
    let after = &reply[start + 3..];
    let newline = after.find('\n')?;
    let language = after[..newline].trim();
    if !matches!(language, "python" | "py" | "") {
        return None;
    }
    let body = &after[newline + 1..];
    let end = body.find("```").unwrap_or(body.len());
    let code = body[..end].trim_end().to_owned();
    (!code.trim().is_empty()).then_some(code)
}

/// Text cut to `limit` characters, keeping the start and the end.
fn shorten(text: &str, limit: usize) -> String {
    let count = text.chars().count();
    if count <= limit {
        return text.to_owned();
    }
    let head: String = text.chars().take(limit * 2 / 3).collect();
    let tail: String = text.chars().skip(count - limit / 3).collect();
    format!("{head}\n[… {} characters cut …]\n{tail}", count - head.chars().count() - tail.chars().count())
}

/// What stops an agent's step: a model call that failed for good, the
/// store, or a failure said in words (a plan that cannot be made, a context
/// that cannot fit). The graph records it as the step's error; the run
/// fails with its text.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Model(#[from] cairn_llm::LlmError),
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
    #[error("{0}")]
    Failed(String),
}

impl From<String> for AgentError {
    fn from(why: String) -> AgentError {
        AgentError::Failed(why)
    }
}

/// The nodes of the agent's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// Ask the model for the next step.
    Think,
    /// Run the step's code block.
    Act,
    /// Make (or remake) the plan.
    Plan,
    /// Start the next ready tasks, or re-plan, or go to `Synthesize`.
    Dispatch,
    /// The supervisor's verdict on a task's result.
    Check,
    /// The answer from the tasks' results.
    Synthesize,
}

impl Node {
    pub const ALL: [Node; 6] = [Node::Think, Node::Act, Node::Plan, Node::Dispatch, Node::Check, Node::Synthesize];

    /// Its name in the graph and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Node::Think => "think",
            Node::Act => "act",
            Node::Plan => "plan",
            Node::Dispatch => "dispatch",
            Node::Check => "check",
            Node::Synthesize => "synthesize",
        }
    }
}

impl From<Node> for String {
    fn from(node: Node) -> String {
        node.name().to_owned()
    }
}

impl Agent {
    /// The agent's graph for one run.
    pub fn graph(self: &Arc<Self>, run: RunContext, events: Arc<dyn Events>) -> Graph<AgentState> {
        let mut graph = Graph::new(if run.planning { Node::Plan } else { Node::Think }.name());
        for node in Node::ALL {
            let (agent, run, events) = (self.clone(), run.clone(), events.clone());
            graph = graph.node(node.name(), move |state, ctx| {
                let (agent, run, events) = (agent.clone(), run.clone(), events.clone());
                async move {
                    let (run, events) = (&run, events.as_ref());
                    let step = match node {
                        Node::Think => agent.think(state, run, events, ctx).await,
                        Node::Act => agent.act(state, run, events, ctx).await,
                        Node::Plan => agent.plan(state, run, events, ctx).await,
                        Node::Dispatch => agent.dispatch(state, run, events, ctx).await,
                        Node::Check => agent.check(state, run, events, ctx).await,
                        Node::Synthesize => agent.synthesize(state, run, events, ctx).await,
                    };
                    // Kept typed: the graph's error holds the node's own.
                    step.map_err(NodeError::from)
                }
            });
        }
        // After a sub-agent's step: its answer (or its giving up) goes to the supervisor.
        let task_over =
            |state: &AgentState| state.task.is_some() && (state.task_answer.is_some() || state.task_failure.is_some());
        graph
            .edge(
                Node::Think.name(),
                Edge::Branch(Arc::new(move |state: &AgentState| {
                    if state.failure.is_some() || state.final_answer.is_some() {
                        None
                    } else if task_over(state) {
                        Some(Node::Check.into())
                    } else if state.pending_code.is_some() {
                        Some(Node::Act.into())
                    } else {
                        Some(Node::Think.into())
                    }
                })),
            )
            .edge(
                Node::Act.name(),
                Edge::Branch(Arc::new(move |state: &AgentState| {
                    if state.failure.is_some() || state.final_answer.is_some() {
                        None
                    } else if task_over(state) {
                        Some(Node::Check.into())
                    } else {
                        Some(Node::Think.into())
                    }
                })),
            )
            .edge(
                Node::Plan.name(),
                Edge::Branch(Arc::new(|state: &AgentState| match (&state.failure, &state.plan) {
                    (Some(_), _) => None,
                    (None, Some(_)) if state.replan_reason.is_none() && state.planner_feedback.is_empty() => {
                        Some(Node::Dispatch.into())
                    }
                    _ => Some(Node::Plan.into()),
                })),
            )
            .edge(
                Node::Dispatch.name(),
                Edge::Branch(Arc::new(|state: &AgentState| {
                    if state.failure.is_some() {
                        None
                    } else if state.replan_reason.is_some() {
                        Some(Node::Plan.into())
                    } else if state.task.is_some() {
                        Some(Node::Think.into())
                    } else if state.plan.as_ref().is_some_and(Plan::finished) {
                        Some(Node::Synthesize.into())
                    } else {
                        // A batch of tasks ran within the step: the next ones.
                        Some(Node::Dispatch.into())
                    }
                })),
            )
            .edge(Node::Check.name(), Edge::To(Node::Dispatch.into()))
            .edge(Node::Synthesize.name(), Edge::End)
            .max_steps(1000)
    }
}
