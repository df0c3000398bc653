//! The CodeAct agent, as a graph of two nodes: `think` asks the model for
//! its next step (a Python block), `act` runs the block in the thread's
//! sandbox — where the tools are plain functions — and turns what came out
//! into the next observation. `final_answer(...)` ends the run; `ask_user(...)`
//! suspends it until a person answers.

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

use crate::budget::{Budget, Spent};
use crate::events::{
    BudgetReached, CodeBlock, ContextSummarized, Events, Interrupted, OutputProduced, PlanChanged, RunEvent, Text,
    UsageRecorded,
};
use crate::graph::{Control, Edge, Graph, Step, StepContext};
use crate::plan::{Plan, TaskStatus, parse_plan, parse_verdict, planner_prompt};
use cairn_config::AgentSpec;

/// What the agent carries from step to step (checkpointed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// The conversation with the model.
    pub messages: Vec<Message>,
    /// Model calls so far.
    pub turns: u32,
    pub usage: Usage,
    pub cost_usd: f64,
    /// Milliseconds spent in steps so far (the wall-time budget).
    pub elapsed_ms: u64,
    /// Replies in a row without a code block.
    pub malformed: u32,
    pub pending_code: Option<String>,
    pub final_answer: Option<String>,
    /// A question waiting for a person.
    pub question: Option<String>,
    /// Why the run ended without an answer (a budget, repeated bad replies).
    pub failure: Option<String>,
    /// Thread messages already given to the model.
    pub seen_messages: usize,
    /// The model the run was started with (`provider/model`); `None`: the default.
    #[serde(default)]
    pub model: Option<String>,
    /// The project's context in the system prompt, fixed at the run's first
    /// step (see `pinned_context`).
    #[serde(default)]
    pub project_context: Option<String>,
    /// Tool calls a member approved (tool and arguments, as JSON).
    #[serde(default)]
    pub approved: Vec<String>,
    /// The call waiting for a member's approval.
    #[serde(default)]
    pub awaiting_approval: Option<String>,
    /// The run plans first and gives the tasks to sub-agents.
    #[serde(default)]
    pub planning: bool,
    #[serde(default)]
    pub plan: Option<Plan>,
    /// Plans made so far (the first, then re-plans).
    #[serde(default)]
    pub plans_made: u32,
    /// The plan waits for a member's approval (or edit).
    #[serde(default)]
    pub awaiting_plan: bool,
    /// Why the plan must change: a member's request, a failed task.
    #[serde(default)]
    pub replan_reason: Option<String>,
    /// What the planner was told about its unusable replies.
    #[serde(default)]
    pub planner_feedback: Vec<Message>,
    /// The task a sub-agent works on (its index in the plan); meanwhile
    /// `messages` are the sub-agent's and the supervisor's wait here.
    #[serde(default)]
    pub task: Option<usize>,
    #[serde(default)]
    pub task_turns: u32,
    #[serde(default)]
    pub supervisor_messages: Vec<Message>,
    /// The sub-agent's answer, or why it gave up, for the supervisor to check.
    #[serde(default)]
    pub task_answer: Option<String>,
    #[serde(default)]
    pub task_failure: Option<String>,
}

impl AgentState {
    /// What the run has used, for its budget.
    pub fn spent(&self) -> Spent {
        Spent {
            steps: self.turns,
            tokens: self.usage.prompt_tokens() + self.usage.output_tokens,
            cost_usd: self.cost_usd,
            elapsed_ms: self.elapsed_ms,
        }
    }
}

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
    /// Tools whose calls a member must approve first (`agent.require_approval`).
    pub require_approval: Vec<String>,
    /// The run starts with a plan (`plan` when posted).
    pub planning: bool,
    /// The sub-agents plans may use.
    pub agents: Arc<Vec<AgentSpec>>,
    /// When a plan waits for approval (`agent.plan_approval`).
    pub plan_approval: String,
    /// The thread's messages, cached.
    pub working: crate::memory::WorkingMemory,
}

impl RunContext {
    fn plan_needs_approval(&self, tasks: usize) -> bool {
        cairn_config::plan_needs_approval(&self.plan_approval, tasks)
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
}

/// How much of an observation the model sees.
const MAX_OBSERVATION_CHARS: usize = 8000;
/// Replies without code, in a row, before the run gives up.
const MAX_MALFORMED: u32 = 3;
/// Plans a run may make (the first and re-plans after failed tasks).
const MAX_PLANS: u32 = 3;
/// Times a task is tried before it counts as failed.
const MAX_TASK_ATTEMPTS: u32 = 2;

/// Recent messages a summary leaves as they are.
const KEEP_RECENT: usize = 6;
/// Characters of earlier turns a summary request carries at most.
const SUMMARY_INPUT_CHARS: usize = 60_000;
/// Tokens kept free for the reply.
const REPLY_TOKENS: usize = 4096;

/// OpenAI's reasoning models think in hidden tokens counted against the same
/// `max_completion_tokens` as the reply: without room for them, a reply can
/// come back empty.
const REASONING_TOKENS: u32 = 16_384;

fn reasoning_room(info: &cairn_llm::ModelInfo) -> u32 {
    let caps = &info.capabilities;
    if caps.reasoning && caps.token_limit == cairn_llm::TokenLimit::MaxCompletionTokens { REASONING_TOKENS } else { 0 }
}

/// A conservative token count for text: about four characters a token.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4) + 4
}

/// The estimated size of a prompt: the instructions and the messages.
pub fn prompt_tokens(system: &str, messages: &[Message]) -> usize {
    estimate_tokens(system)
        + messages.iter().map(|m| estimate_tokens(&m.content) + m.images.len() * IMAGE_TOKENS).sum::<usize>()
}

/// What an image costs in a prompt, about (providers bill a chart-sized
/// image at roughly a thousand tokens).
const IMAGE_TOKENS: usize = 1_000;
/// Figures of one execution the model sees, at most.
const MAX_OBSERVED_IMAGES: usize = 4;
/// A figure larger than this (base64) is only described in words.
const MAX_OBSERVED_IMAGE_BASE64: usize = 1 << 20;
/// Observations whose figures the model still sees; older ones keep their
/// words (`[a figure, saved as …]`) without the image.
const MESSAGES_WITH_IMAGES: usize = 3;

/// Drops the images of all but the latest few messages that have them, so
/// the conversation (and its checkpoints) do not grow by a figure a step.
fn keep_recent_images(messages: &mut [Message]) {
    let mut kept = 0;
    for message in messages.iter_mut().rev().filter(|m| !m.images.is_empty()) {
        if kept < MESSAGES_WITH_IMAGES {
            kept += 1;
        } else {
            message.images.clear();
        }
    }
}

/// The tokens a prompt may take in a context window: the window less the
/// reply's room and a margin for the estimate's error.
pub fn context_budget(context_tokens: u32) -> usize {
    let window = context_tokens as usize;
    window.saturating_sub(REPLY_TOKENS.min(window / 4)).saturating_sub(window / 10)
}

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

impl Agent {
    /// The system prompt: how to work, and the tools (from the registry).
    pub fn system_prompt(&self) -> String {
        self.system_prompt_with("")
    }

    /// The system prompt with the project's context appended.
    fn system_prompt_with(&self, context: &str) -> String {
        let prompt = format!(
            "You are Cairn, an agent that completes tasks by writing Python.\n\n\
             Each turn, think briefly, then write exactly one ```python block. It runs in a persistent Jupyter-like \
             kernel in your sandbox (working directory /workspace; variables persist between turns; numpy, pandas, \
             matplotlib, scipy, requests, beautifulsoup4, openpyxl and pillow are installed). You then see its \
             output. The sandbox has no direct network: use the tools below, which are plain Python functions \
             already defined in the kernel.\n\n\
             Tools:\n{}\n\n\
             Save files the user should get with save_artifact. When the task is done, call \
             final_answer(\"...\") in your block. If you cannot go on without the user, call ask_user(\"...\").",
            self.registry.prompt()
        );
        if context.is_empty() { prompt } else { format!("{prompt}\n\n{context}") }
    }

    /// A sub-agent's system prompt: its role, then the usual instructions,
    /// with the tools it may call.
    fn sub_agent_prompt(&self, spec: &AgentSpec, context: &str) -> String {
        let tools = if spec.tools.is_empty() {
            "You may call every tool.".to_owned()
        } else {
            format!("Of the tools, you may call only: {}.", spec.tools.join(", "))
        };
        format!(
            "{}\n\nYou work on one task of a larger plan; a supervisor checks your result. When the task is done, \
             call final_answer(...) with its result (numbers, findings, the files you saved). {tools}\n\n{}",
            spec.role,
            self.system_prompt_with(context)
        )
    }

    /// What the model should know of the project: its name and the files in
    /// its library (the newest 50).
    async fn project_context(&self, run: &RunContext) -> String {
        let Ok(project) = self.store.project(run.project).await else { return String::new() };
        let files = self.store.files(run.project, "").await.unwrap_or_default();
        let mut context = format!("Project: {}.", project.name);
        if !files.is_empty() {
            let listed: Vec<String> =
                files.iter().take(50).map(|f| format!("- {} ({} bytes)", f.path, f.size)).collect();
            context.push_str(&format!(
                "\nFiles in the project's library (the user's documents; not in your workspace — ask for their content \
                 only if needed):\n{}",
                listed.join("\n")
            ));
        }
        context
    }

    /// The project's context as the run's first step saw it: the system
    /// prompt stays the same from step to step (a file saved mid-run does not
    /// change it), so providers can serve the conversation from their cache.
    async fn pinned_context(&self, state: &mut AgentState, run: &RunContext) -> String {
        if let Some(context) = &state.project_context {
            return context.clone();
        }
        let context = self.project_context(run).await;
        state.project_context = Some(context.clone());
        context
    }

    /// What a tool called in this step of the run works with (its
    /// artifacts carry the run and the step).
    fn tool_context(&self, run: &RunContext, step: i64) -> ToolContext {
        ToolContext {
            services: self.services.clone(),
            sandbox: run.sandbox,
            user: run.user,
            project: Some(run.project),
            thread: Some(run.thread),
            run: Some((run.run, step)),
        }
    }

    /// The agent's graph for one run.
    pub fn graph(self: &Arc<Self>, run: RunContext, events: Arc<dyn Events>) -> Graph<AgentState> {
        let mut graph = Graph::new(if run.planning { "plan" } else { "think" });
        for name in ["think", "act", "plan", "dispatch", "check", "synthesize"] {
            let (agent, run, events) = (self.clone(), run.clone(), events.clone());
            graph = graph.node(name, move |state, ctx| {
                let (agent, run, events) = (agent.clone(), run.clone(), events.clone());
                async move {
                    let (run, events) = (&run, events.as_ref());
                    match name {
                        "think" => agent.think(state, run, events, ctx).await,
                        "act" => agent.act(state, run, events, ctx).await,
                        "plan" => agent.plan(state, run, events, ctx).await,
                        "dispatch" => agent.dispatch(state, run, events, ctx).await,
                        "check" => agent.check(state, run, events, ctx).await,
                        _ => agent.synthesize(state, run, events, ctx).await,
                    }
                }
            });
        }
        // After a sub-agent's step: its answer (or its giving up) goes to the supervisor.
        let task_over =
            |state: &AgentState| state.task.is_some() && (state.task_answer.is_some() || state.task_failure.is_some());
        graph
            .edge(
                "think",
                Edge::Branch(Arc::new(move |state: &AgentState| {
                    if state.failure.is_some() || state.final_answer.is_some() {
                        None
                    } else if task_over(state) {
                        Some("check".to_owned())
                    } else if state.pending_code.is_some() {
                        Some("act".to_owned())
                    } else {
                        Some("think".to_owned())
                    }
                })),
            )
            .edge(
                "act",
                Edge::Branch(Arc::new(move |state: &AgentState| {
                    if state.failure.is_some() || state.final_answer.is_some() {
                        None
                    } else if task_over(state) {
                        Some("check".to_owned())
                    } else {
                        Some("think".to_owned())
                    }
                })),
            )
            .edge(
                "plan",
                Edge::Branch(Arc::new(|state: &AgentState| match (&state.failure, &state.plan) {
                    (Some(_), _) => None,
                    (None, Some(_)) if state.replan_reason.is_none() && state.planner_feedback.is_empty() => {
                        Some("dispatch".to_owned())
                    }
                    _ => Some("plan".to_owned()),
                })),
            )
            .edge(
                "dispatch",
                Edge::Branch(Arc::new(|state: &AgentState| {
                    if state.failure.is_some() {
                        None
                    } else if state.replan_reason.is_some() {
                        Some("plan".to_owned())
                    } else if state.task.is_some() {
                        Some("think".to_owned())
                    } else if state.plan.as_ref().is_some_and(Plan::finished) {
                        Some("synthesize".to_owned())
                    } else {
                        // A batch of tasks ran within the step: the next ones.
                        Some("dispatch".to_owned())
                    }
                })),
            )
            .edge("check", Edge::To("dispatch".to_owned()))
            .edge("synthesize", Edge::End)
            .max_steps(1000)
    }

    /// Emits the plan as it stands.
    async fn publish_plan(state: &AgentState, events: &dyn Events) {
        if let Some(plan) = &state.plan {
            events.emit(RunEvent::Plan(PlanChanged { plan: plan.clone(), edited_by: None })).await;
        }
    }

    /// The planner: the conversation so far becomes a plan of tasks for the
    /// sub-agents (a new one, keeping finished tasks, when it must change).
    async fn plan(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, String> {
        self.absorb_messages(&mut state, run).await?;
        if let Some(why) = self.stop_reason(&state, run).await? {
            return Self::stop(state, why, events).await;
        }
        if state.plans_made >= MAX_PLANS && state.replan_reason.is_some() {
            let why = state.replan_reason.take().unwrap_or_default();
            state.failure = Some(format!("the plan could not be carried out after {MAX_PLANS} plans: {why}"));
            return Ok(Step { state, control: Control::End });
        }
        let system = format!("{}\n\n{}", planner_prompt(&run.agents), self.project_context(run).await);
        self.fit_context(&mut state, run, events, &ctx, None, &system).await?;
        let mut messages = state.messages.clone();
        if let (Some(reason), Some(plan)) = (&state.replan_reason, &state.plan) {
            messages.push(Message::user(format!(
                "The plan must change: {reason}\nThe plan so far, with each task's status and result:\n{}\n\
                 Reply with a new plan for the work that is left; finished tasks are kept (their ids may be \
                 dependencies).",
                serde_json::to_string_pretty(plan).unwrap_or_default()
            )));
        }
        messages.extend(state.planner_feedback.iter().cloned());
        let Some(reply) = self.call_model(&mut state, run, events, &ctx, None, system, messages).await? else {
            return Ok(Step::next(state));
        };
        let kept: Vec<_> = state
            .plan
            .as_ref()
            .map(|p| p.tasks.iter().filter(|t| t.status == TaskStatus::Done).cloned().collect())
            .unwrap_or_default();
        let planned = parse_plan(&reply).and_then(|plan| {
            let mut plan = plan.fresh(state.plans_made + 1);
            plan.tasks.retain(|t| !kept.iter().any(|k| k.id == t.id));
            plan.tasks.splice(0..0, kept);
            plan.validate(&run.agents).map(|()| plan)
        });
        match planned {
            Ok(plan) => {
                state.plans_made += 1;
                state.planner_feedback.clear();
                state.replan_reason = None;
                state.malformed = 0;
                let tasks = plan.tasks.len();
                state.plan = Some(plan);
                Self::publish_plan(&state, events).await;
                if run.plan_needs_approval(tasks) {
                    let count = if tasks == 1 { "1 task".to_owned() } else { format!("{tasks} tasks") };
                    let question = format!(
                        "May the agent follow this plan of {count}? Answer yes to start, or say what to change \
                         (members with edit rights can also edit the plan)."
                    );
                    events.emit(RunEvent::Interrupt(Interrupted { question: question.clone(), plan: true })).await;
                    state.question = Some(question.clone());
                    state.awaiting_plan = true;
                    return Ok(Step {
                        state,
                        control: Control::Interrupt { question: json!(question), resume_at: "dispatch".into() },
                    });
                }
            }
            Err(why) => {
                state.malformed += 1;
                if state.malformed >= MAX_MALFORMED {
                    state.failure =
                        Some(format!("the planner replied {MAX_MALFORMED} times without a usable plan: {why}"));
                } else {
                    state.planner_feedback.push(Message::assistant(reply));
                    state.planner_feedback.push(Message::user(format!(
                        "That plan cannot be used: {why}. Reply with only the JSON plan."
                    )));
                }
            }
        }
        Ok(Step::next(state))
    }

    /// The supervisor's next move: after an approval question, read the
    /// answer; then start the next ready task as a sub-agent, or re-plan
    /// when nothing can go on, or write the answer when all is done.
    async fn dispatch(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, String> {
        if state.awaiting_plan {
            let answer = self.absorb_messages(&mut state, run).await?.unwrap_or_default();
            state.awaiting_plan = false;
            state.question = None;
            if !says_yes(&answer) {
                state.replan_reason = Some(format!("a member asked for changes: {answer}"));
                return Ok(Step::next(state));
            }
        }
        let Some(plan) = state.plan.as_mut() else {
            state.replan_reason = Some("there is no plan yet".into());
            return Ok(Step::next(state));
        };
        if plan.finished() {
            return Ok(Step::next(state));
        }
        let Some(&index) = plan.ready().first() else {
            let failed: Vec<String> = plan
                .tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Failed)
                .map(|t| format!("task {} ({}) failed: {}", t.id, t.title, t.result.as_deref().unwrap_or("no result")))
                .collect();
            state.replan_reason =
                Some(if failed.is_empty() { "no task can start".to_owned() } else { failed.join("; ") });
            return Ok(Step::next(state));
        };
        let ready = plan.ready();
        if ready.len() > 1 {
            return self.run_batch(state, run, events, ctx, ready).await;
        }
        let prompt = Self::start_task(&mut state, index);
        state.supervisor_messages = std::mem::replace(&mut state.messages, vec![Message::user(prompt)]);
        state.task = Some(index);
        state.task_turns = 0;
        state.malformed = 0;
        Self::publish_plan(&state, events).await;
        Ok(Step::next(state))
    }

    /// Marks a task running and writes its sub-agent's first message: the
    /// task, the results it builds on, and why an earlier attempt fell short.
    fn start_task(state: &mut AgentState, index: usize) -> String {
        let Some(plan) = state.plan.as_mut() else { return String::new() };
        let done: Vec<(String, String)> = plan
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Done)
            .map(|t| (t.id.clone(), t.result.clone().unwrap_or_default()))
            .collect();
        let Some(task) = plan.tasks.get_mut(index) else { return String::new() };
        let earlier = task.result.take().filter(|_| task.attempts > 0);
        task.status = TaskStatus::Running;
        task.attempts += 1;
        let mut prompt = format!("Your task: {}\nGoal: {}\nIt is done when: {}", task.title, task.goal, task.done_when);
        for (id, result) in done.iter().filter(|(id, _)| task.depends_on.contains(id)) {
            prompt.push_str(&format!("\n\nResult of task {id}, which yours builds on:\n{result}"));
        }
        if let Some(earlier) = earlier {
            prompt.push_str(&format!("\n\nAn earlier attempt fell short: {earlier}"));
        }
        prompt
    }

    /// Independent tasks at once: each sub-agent in a kernel of its own (the
    /// first in the thread's sandbox, the others in sandboxes made for the
    /// batch and removed after it), all within this one step; then the
    /// supervisor checks each result. A batch cut short by a crash runs
    /// again as a whole.
    async fn run_batch(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
        ready: Vec<usize>,
    ) -> Result<Step<AgentState>, String> {
        let lanes: Vec<(usize, String)> = ready.iter().map(|&i| (i, Self::start_task(&mut state, i))).collect();
        Self::publish_plan(&state, events).await;
        let base = state.clone();
        let work = lanes.iter().enumerate().map(|(n, (index, prompt))| {
            let mut lane = base.clone();
            lane.messages = vec![Message::user(prompt.clone())];
            lane.task = Some(*index);
            lane.task_turns = 0;
            lane.malformed = 0;
            lane.pending_code = None;
            let ctx = ctx.clone();
            async move {
                let mut lane_run = run.clone();
                let own = if n == 0 {
                    None
                } else {
                    let request = cairn_core::sandbox::NewSandbox {
                        owner: run.user,
                        project: Some(run.project),
                        thread: None,
                        policy: Default::default(),
                    };
                    match self.services.sandboxes.create(request).await {
                        Ok(info) => Some(info.id),
                        Err(error) => {
                            lane.task_failure = Some(format!("no sandbox for the task: {}", error.detail()));
                            return Ok(lane);
                        }
                    }
                };
                if let Some(id) = own {
                    lane_run.sandbox = id;
                }
                let done = self.sub_agent(lane, &lane_run, events, ctx).await;
                if let Some(id) = own
                    && let Err(error) = self.services.sandboxes.destroy(id).await
                {
                    tracing::warn!(error = %error.detail(), "a task's sandbox could not be removed");
                }
                done
            }
        });
        let finished = futures::future::join_all(work).await;
        let mut longest = 0;
        let mut outcomes = Vec::new();
        for lane in finished {
            let lane = lane?;
            // What each sub-agent spent counts for the run.
            state.turns += lane.turns - base.turns;
            state.usage.add(lane.usage.since(&base.usage));
            state.cost_usd += lane.cost_usd - base.cost_usd;
            longest = longest.max(lane.elapsed_ms - base.elapsed_ms);
            state.seen_messages = state.seen_messages.max(lane.seen_messages);
            if lane.failure.is_some() {
                state.failure = lane.failure.clone();
            }
            outcomes.push((lane.task, lane.task_answer, lane.task_failure));
        }
        state.elapsed_ms += longest;
        if state.failure.is_some() {
            return Ok(Step { state, control: Control::End });
        }
        for (index, answer, failure) in outcomes {
            if let Some(index) = index {
                self.judge(&mut state, run, events, &ctx, index, answer, failure).await?;
            }
        }
        Self::publish_plan(&state, events).await;
        Ok(Step::next(state))
    }

    /// A sub-agent's whole loop, within one step (for a batch).
    async fn sub_agent(
        &self,
        mut lane: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<AgentState, String> {
        loop {
            if ctx.cancelled() {
                lane.task_failure.get_or_insert_with(|| "the run was cancelled".into());
                return Ok(lane);
            }
            lane = self.think(lane, run, events, ctx.clone()).await?.state;
            if lane.failure.is_some() || lane.task_answer.is_some() || lane.task_failure.is_some() {
                return Ok(lane);
            }
            if lane.pending_code.is_some() {
                let step = self.act(lane, run, events, ctx.clone()).await?;
                lane = step.state;
                if matches!(step.control, Control::Interrupt { .. }) {
                    lane.task_failure =
                        Some("the sub-agent asked a question, which tasks running side by side cannot wait for".into());
                }
                if lane.task_answer.is_some() || lane.task_failure.is_some() {
                    return Ok(lane);
                }
            }
        }
    }

    /// The supervisor checks a sub-agent's result against the task's done
    /// criterion; a task that fell short is tried again, then counts as
    /// failed (and the plan changes).
    async fn check(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, String> {
        let Some(index) = state.task.take() else { return Ok(Step::next(state)) };
        state.messages = std::mem::take(&mut state.supervisor_messages);
        let (answer, failure) = (state.task_answer.take(), state.task_failure.take());
        self.judge(&mut state, run, events, &ctx, index, answer, failure).await?;
        Self::publish_plan(&state, events).await;
        Ok(Step::next(state))
    }

    /// The supervisor's verdict on a task's result: done, pending again (an
    /// attempt is left), or failed.
    #[allow(clippy::too_many_arguments)]
    async fn judge(
        &self,
        state: &mut AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: &StepContext,
        index: usize,
        answer: Option<String>,
        failure: Option<String>,
    ) -> Result<(), String> {
        let Some(task) = state.plan.as_ref().and_then(|p| p.tasks.get(index)).cloned() else { return Ok(()) };
        let verdict = match (answer, failure) {
            (Some(answer), _) => {
                let system = "You are Cairn's supervisor. Decide whether a task's result meets its done criterion. \
                              Reply with only a JSON object: {\"done\": true or false, \"why\": \"…\"}."
                    .to_owned();
                let question = Message::user(format!(
                    "Task: {}\nGoal: {}\nDone when: {}\nResult:\n{answer}",
                    task.title, task.goal, task.done_when
                ));
                match self.call_model(state, run, events, ctx, None, system, vec![question]).await? {
                    Some(reply) => {
                        let verdict = parse_verdict(&reply);
                        (verdict.done, if verdict.done { answer } else { verdict.why })
                    }
                    None => (true, answer),
                }
            }
            (None, failure) => (false, failure.unwrap_or_else(|| "the sub-agent gave no result".into())),
        };
        if let Some(task) = state.plan.as_mut().and_then(|p| p.tasks.get_mut(index)) {
            task.result = Some(verdict.1);
            task.status = match (verdict.0, task.attempts < MAX_TASK_ATTEMPTS) {
                (true, _) => TaskStatus::Done,
                (false, true) => TaskStatus::Pending,
                (false, false) => TaskStatus::Failed,
            };
        }
        Ok(())
    }

    /// The final answer, from the tasks' results.
    async fn synthesize(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, String> {
        let results: Vec<String> = state
            .plan
            .iter()
            .flat_map(|p| p.tasks.iter())
            .map(|t| format!("## {} ({})\n{}", t.title, t.id, t.result.as_deref().unwrap_or("(no result)")))
            .collect();
        let system = "You are Cairn. Write the answer to the user's request from the results of the work done for \
                      it. Do not write code."
            .to_owned();
        self.fit_context(&mut state, run, events, &ctx, None, &system).await?;
        let mut messages = state.messages.clone();
        messages.push(Message::user(format!(
            "The sub-agents finished the plan. Their results:\n\n{}\n\nWrite the final answer for the user, in \
             Markdown, from these results; name the files they saved.",
            results.join("\n\n")
        )));
        let Some(reply) = self.call_model(&mut state, run, events, &ctx, None, system, messages).await? else {
            return Ok(Step::next(state));
        };
        state.final_answer = Some(reply);
        Ok(Step { state, control: Control::End })
    }

    /// Adds the thread's messages posted since the last look to the
    /// conversation; the first answer to an approval question decides it.
    async fn absorb_messages(&self, state: &mut AgentState, run: &RunContext) -> Result<Option<String>, String> {
        let thread_messages = run.working.messages(run.thread).await.map_err(|e| e.to_string())?;
        let mut last = None;
        for message in thread_messages.iter().skip(state.seen_messages) {
            if message.role == cairn_core::model::MessageRole::User {
                if let Some(call) = state.awaiting_approval.take()
                    && says_yes(&message.content)
                {
                    state.approved.push(call);
                }
                if message.attachments.is_empty() {
                    state.messages.push(Message::user(message.content.clone()));
                } else {
                    let files = self.services.files.as_ref();
                    let (note, images) = crate::figures::attachments(files, run.project, &message.attachments).await;
                    state.messages.push(Message::user_with_images(format!("{}{note}", message.content), images));
                }
                last = Some(message.content.clone());
            }
        }
        state.seen_messages = thread_messages.len();
        Ok(last)
    }

    /// Why the run must stop now, if it must: the project's budget first
    /// (the owner set it on purpose), then the run's own.
    async fn stop_reason(&self, state: &AgentState, run: &RunContext) -> Result<Option<String>, String> {
        if let Some(limit) = run.project_budget_usd
            && let Some(why) =
                crate::budget::budget_spent(&*self.store, run.project, limit).await.map_err(|e| e.to_string())?
        {
            return Ok(Some(why));
        }
        Ok(run.budget.reached(state.spent()))
    }

    /// Ends the run for `why` (a budget) with a `run.budget` event.
    async fn stop(mut state: AgentState, why: String, events: &dyn Events) -> Result<Step<AgentState>, String> {
        events.emit(RunEvent::Budget(BudgetReached { reason: why.clone() })).await;
        state.failure = Some(why);
        Ok(Step { state, control: Control::End })
    }

    /// One model call: the reply streams out as `token` events, and its
    /// usage and cost are counted (in the state, the run's cost and a
    /// `usage` event). `None` when the run was cancelled meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn call_model(
        &self,
        state: &mut AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: &StepContext,
        model_id: Option<&str>,
        system: String,
        messages: Vec<Message>,
    ) -> Result<Option<String>, String> {
        self.model_call(state, run, events, ctx, model_id, system, messages, true).await
    }

    /// [`Agent::call_model`]; without `stream_tokens`, the reply is not
    /// sent out as it comes (an internal call, such as a summary).
    #[allow(clippy::too_many_arguments)]
    async fn model_call(
        &self,
        state: &mut AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: &StepContext,
        model_id: Option<&str>,
        system: String,
        messages: Vec<Message>,
        stream_tokens: bool,
    ) -> Result<Option<String>, String> {
        let chosen = model_id.or(state.model.as_deref()).or(run.model.as_deref());
        let (model, info) = self.models.get(chosen).map_err(|e| e.to_string())?;
        let request = ChatRequest {
            model: info.model.clone(),
            system: Some(system),
            messages,
            max_tokens: (info.context_tokens / 4).clamp(256, REPLY_TOKENS as u32) + reasoning_room(&info),
            temperature: None,
            stop: Vec::new(),
            ..ChatRequest::default()
        };
        // The provider's own words: "the model refused the request: …",
        // "the provider refused the key: …", "the provider has no model …".
        let mut stream = model.stream(&request).await.map_err(|e| e.to_string())?;
        let mut reply = String::new();
        let mut pending = String::new();
        // The model's reasoning, streamed apart and never part of the reply.
        let mut thinking = String::new();
        let mut last_flush = Instant::now();
        let mut usage = Usage::default();
        loop {
            // A cancel stops the model call at once, not at the end of its reply.
            let delta = tokio::select! {
                delta = stream.next() => delta,
                () = async {
                    while !ctx.cancelled() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                } => return Ok(None),
            };
            let Some(delta) = delta else { break };
            match delta.map_err(|e| format!("the model's reply broke off: {e}"))? {
                Delta::Text(text) => {
                    reply.push_str(&text);
                    pending.push_str(&text);
                    // Token deltas go out in small batches, not one write each.
                    if stream_tokens && last_flush.elapsed() >= Duration::from_millis(50) {
                        events.emit(RunEvent::Token(step_text(std::mem::take(&mut pending), state))).await;
                        last_flush = Instant::now();
                    }
                }
                Delta::Reasoning(text) => {
                    thinking.push_str(&text);
                    if last_flush.elapsed() >= Duration::from_millis(50) {
                        events.emit(RunEvent::Reasoning(step_text(std::mem::take(&mut thinking), state))).await;
                        last_flush = Instant::now();
                    }
                }
                Delta::Done { usage: used, .. } => usage = used,
            }
        }
        if !thinking.is_empty() {
            events.emit(RunEvent::Reasoning(step_text(thinking, state))).await;
        }
        if stream_tokens && !pending.is_empty() {
            events.emit(RunEvent::Token(step_text(pending, state))).await;
        }
        state.turns += 1;
        state.usage.add(usage);
        let cost = info.cost(usage);
        state.cost_usd += cost;
        if let Err(error) = self.store.add_run_cost(run.run, cost).await {
            tracing::warn!(%error, "the cost of a model call could not be recorded");
        }
        events
            .emit(RunEvent::Usage(UsageRecorded {
                model: info.id.clone(),
                user: run.user,
                tokens: usage,
                cost_usd: cost,
                saved_usd: info.saved_by_cache(usage),
            }))
            .await;
        Ok(Some(reply))
    }

    /// Keeps the prompt within the model's context window: when the
    /// conversation is too long, the turns between the first message (the
    /// task) and the last few are summarised by the model into the first
    /// message — a checkpointed summary, never a silent cut. What still does
    /// not fit is shortened visibly (marked where it was cut).
    async fn fit_context(
        &self,
        state: &mut AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: &StepContext,
        model_id: Option<&str>,
        system: &str,
    ) -> Result<(), String> {
        let chosen = model_id.or(state.model.as_deref()).or(run.model.as_deref());
        let (_, info) = self.models.get(chosen).map_err(|e| e.to_string())?;
        let limit = context_budget(info.context_tokens);
        let before = prompt_tokens(system, &state.messages);
        if before <= limit {
            return Ok(());
        }
        if estimate_tokens(system) >= limit {
            return Err(format!(
                "the instructions alone do not fit the context of {} ({} tokens)",
                info.id, info.context_tokens
            ));
        }
        let mut summarised = 0;
        for keep in [KEEP_RECENT, 2] {
            if state.messages.len() <= keep + 1 || prompt_tokens(system, &state.messages) <= limit {
                continue;
            }
            let older: Vec<Message> = state.messages[1..state.messages.len() - keep].to_vec();
            let transcript: Vec<String> = older
                .iter()
                .map(|m| format!("{:?}: {}", m.role, shorten(&m.content, SUMMARY_INPUT_CHARS / older.len().max(1))))
                .collect();
            let request = vec![Message::user(format!(
                "Summarise these earlier turns of an agent's work for the agent itself. Keep every fact, number, \
                 variable and file name, decision and open question; drop the rest.\n\n{}",
                transcript.join("\n\n")
            ))];
            let system = "You write short, exact summaries of an agent's earlier work.".to_owned();
            let Some(summary) = self.model_call(state, run, events, ctx, model_id, system, request, false).await?
            else {
                return Ok(());
            };
            let first = state.messages.first().map(|m| m.content.clone()).unwrap_or_default();
            let recent = state.messages.split_off(state.messages.len() - keep);
            state.messages = vec![Message::user(format!(
                "{first}\n\n[A summary of {} earlier turns, made to fit the model's context:]\n{summary}",
                older.len()
            ))];
            state.messages.extend(recent);
            summarised += older.len();
        }
        // What still does not fit is cut, visibly, longest message first.
        let mut cut = 0;
        while prompt_tokens(system, &state.messages) > limit {
            let over = (prompt_tokens(system, &state.messages) - limit) * 4 + 64;
            let Some(longest) = state.messages.iter_mut().max_by_key(|m| m.content.chars().count()) else { break };
            let count = longest.content.chars().count();
            if count <= 200 {
                return Err(format!("the conversation does not fit the context of {}", info.id));
            }
            longest.content = shorten(&longest.content, count.saturating_sub(over).max(200));
            cut += 1;
        }
        let after = prompt_tokens(system, &state.messages);
        events
            .emit(RunEvent::ContextSummarized(ContextSummarized {
                turns: summarised,
                shortened: cut,
                tokens_before: before,
                tokens_after: after,
                task: task_of(state),
            }))
            .await;
        Ok(())
    }

    async fn think(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, String> {
        let started = Instant::now();
        state.pending_code = None;
        // Messages members posted meanwhile reach the model now.
        self.absorb_messages(&mut state, run).await?;
        if let Some(why) = self.stop_reason(&state, run).await? {
            return Self::stop(state, why, events).await;
        }
        let task = state.task.and_then(|i| state.plan.as_ref()?.tasks.get(i).cloned());
        let spec: Option<AgentSpec> = task.as_ref().and_then(|t| run.agent_spec(&t.agent)).cloned();
        if let Some(spec) = &spec
            && state.task_turns >= spec.max_steps
        {
            state.task_failure = Some(format!("the task's step budget of {} was reached", spec.max_steps));
            return Ok(Step::next(state));
        }
        let context = self.pinned_context(&mut state, run).await;
        let system = match &spec {
            Some(spec) => self.sub_agent_prompt(spec, &context),
            None => self.system_prompt_with(&context),
        };
        let model_id = spec.as_ref().map(|s| s.model.as_str()).filter(|m| !m.is_empty());
        self.fit_context(&mut state, run, events, &ctx, model_id, &system).await?;
        let messages = state.messages.clone();
        let Some(reply) = self.call_model(&mut state, run, events, &ctx, model_id, system, messages).await? else {
            return Ok(Step::next(state));
        };
        if task.is_some() {
            state.task_turns += 1;
        }
        state.messages.push(Message::assistant(reply.clone()));
        match code_block(&reply) {
            Some(code) => {
                state.malformed = 0;
                events.emit(RunEvent::Code(CodeBlock { code: code.clone(), task: task_of(&state) })).await;
                state.pending_code = Some(code);
            }
            None => {
                state.malformed += 1;
                if state.malformed >= MAX_MALFORMED {
                    let why = format!("the model replied {MAX_MALFORMED} times without a code block");
                    match task {
                        Some(_) => state.task_failure = Some(why),
                        None => state.failure = Some(why),
                    }
                } else {
                    state.messages.push(Message::user(
                        "Your reply had no ```python block. Write one; call final_answer(...) in it when the task \
                         is done.",
                    ));
                }
            }
        }
        state.elapsed_ms += started.elapsed().as_millis() as u64;
        Ok(Step::next(state))
    }

    async fn act(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, String> {
        let started = Instant::now();
        let Some(code) = state.pending_code.take() else {
            return Ok(Step::next(state));
        };
        let tools = self.tool_context(run, ctx.step);
        let (outputs_tx, mut outputs_rx) = tokio::sync::mpsc::unbounded_channel::<Output>();
        let allowed = state
            .task
            .and_then(|i| state.plan.as_ref()?.tasks.get(i))
            .and_then(|t| run.agent_spec(&t.agent))
            .filter(|spec| !spec.tools.is_empty())
            .map(|spec| (spec.name.clone(), spec.tools.clone()));
        let mut bridge = AgentBridge {
            agent: self,
            allowed,
            tools,
            outputs: outputs_tx,
            answer: None,
            question: None,
            require_approval: &run.require_approval,
            approved: &state.approved,
            needs_approval: None,
        };
        if state.planning {
            // The kernel's tools check the sub-agent's list too (they may run
            // in the kernel, out of the bridge's sight).
            let setting = match &bridge.allowed {
                Some((agent, tools)) => format!("_cairn_tools_allowed = {tools:?}\n_cairn_agent_name = {agent:?}"),
                None => "_cairn_tools_allowed = None".to_owned(),
            };
            let quiet = &mut |_: &Output| {};
            if let Err(error) =
                self.services.sandboxes.execute(run.sandbox, Execution::Python { code: setting }, quiet).await
            {
                tracing::warn!(error = %error.detail(), "the sub-agent's tools could not be set");
            }
        }
        let execution = self.services.sandboxes.execute(run.sandbox, Execution::Python { code }, &mut bridge);
        let outcome = {
            tokio::pin!(execution);
            loop {
                tokio::select! {
                    outcome = &mut execution => break outcome,
                    Some(output) = outputs_rx.recv() => {
                        events.emit(RunEvent::Output(OutputProduced { output, task: task_of(&state) })).await;
                    }
                }
            }
        };
        while let Ok(output) = outputs_rx.try_recv() {
            events.emit(RunEvent::Output(OutputProduced { output, task: task_of(&state) })).await;
        }
        let (answer, mut question) = (bridge.answer.take(), bridge.question.take());
        if let Some((call, description)) = bridge.needs_approval.take() {
            question = Some(format!("May the agent run {description}? Answer yes or no."));
            state.awaiting_approval = Some(call);
        }
        let (observation, images) = match outcome {
            Ok(outcome) => self.observe(&outcome, run, &ctx, events).await,
            Err(error) => (
                format!("The sandbox failed: {}. The kernel will be fresh on the next turn.", error.detail()),
                Vec::new(),
            ),
        };
        events.emit(RunEvent::Observation(step_text(observation.clone(), &state))).await;
        state.messages.push(Message::user_with_images(format!("Observation:\n{observation}"), images));
        keep_recent_images(&mut state.messages);
        state.elapsed_ms += started.elapsed().as_millis() as u64;
        if let Some(answer) = answer {
            // A sub-agent's answer is its task's result, for the supervisor.
            if state.task.is_some() {
                state.task_answer = Some(answer);
                return Ok(Step::next(state));
            }
            state.final_answer = Some(answer);
            return Ok(Step { state, control: Control::End });
        }
        if let Some(question) = question {
            events.emit(RunEvent::Interrupt(Interrupted { question: question.clone(), plan: false })).await;
            state.question = Some(question.clone());
            return Ok(Step {
                state,
                control: Control::Interrupt { question: json!(question), resume_at: "think".into() },
            });
        }
        Ok(Step::next(state))
    }

    /// What the model is told about an execution: output, value, error,
    /// limits — and figures, which are saved (into the workspace, and into
    /// the library as artifacts).
    async fn observe(
        &self,
        outcome: &ExecOutcome,
        run: &RunContext,
        ctx: &StepContext,
        events: &dyn Events,
    ) -> (String, Vec<cairn_llm::Image>) {
        let mut parts = Vec::new();
        let mut images = Vec::new();
        let stdout = outcome.stream("stdout");
        if !stdout.is_empty() {
            parts.push(format!("stdout:\n{stdout}"));
        }
        let stderr = outcome.stream("stderr");
        if !stderr.is_empty() {
            parts.push(format!("stderr:\n{stderr}"));
        }
        let mut figures = 0;
        for output in &outcome.outputs {
            match output {
                Output::Display { data } | Output::Result { data } => {
                    if let Some(png) = data.get("image/png").and_then(Value::as_str) {
                        figures += 1;
                        let path = format!("figures/step-{}-{figures}.png", ctx.step);
                        let bytes = base64::engine::general_purpose::STANDARD.decode(png).unwrap_or_default();
                        if self.services.sandboxes.write_file(run.sandbox, &path, bytes).await.is_ok() {
                            let saved = self
                                .registry
                                .call(&self.tool_context(run, ctx.step), "save_artifact", json!([path]), json!({}))
                                .await;
                            if let Some(file) = saved.ok().and_then(|file| serde_json::from_value(file).ok()) {
                                events.emit(RunEvent::Artifact(file)).await;
                            }
                            parts.push(format!("[a figure, saved as {path}]"));
                        }
                        // The figure itself, for a model that sees: a few, scaled
                        // down when large, none too heavy.
                        let fitted = base64::engine::general_purpose::STANDARD
                            .decode(png)
                            .ok()
                            .and_then(|bytes| crate::figures::fit_png(&bytes, crate::figures::MAX_SIDE))
                            .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes));
                        if let Some(data) = fitted.filter(|d| d.len() <= MAX_OBSERVED_IMAGE_BASE64)
                            && images.len() < MAX_OBSERVED_IMAGES
                        {
                            images.push(cairn_llm::Image { media_type: "image/png".into(), data });
                        }
                    } else if let (Output::Result { .. }, Some(text)) =
                        (output, data.get("text/plain").and_then(Value::as_str))
                    {
                        parts.push(format!("value:\n{text}"));
                    }
                }
                Output::Error { ename, evalue, traceback } if ename != "SandboxLimitExceeded" => {
                    let trace: Vec<&str> = traceback.iter().map(String::as_str).collect();
                    parts.push(format!("error: {ename}: {evalue}\n{}", shorten(&trace.join(""), 2000)));
                }
                _ => {}
            }
        }
        if let Some(limit) = &outcome.limit {
            parts.push(format!("limit: {limit}"));
        }
        if parts.is_empty() {
            parts.push("(the code ran and printed nothing)".to_owned());
        }
        (shorten(&parts.join("\n"), MAX_OBSERVATION_CHARS), images)
    }
}

/// Connects an execution to the tools, and takes `final_answer` and
/// `ask_user` for the run.
struct AgentBridge<'a> {
    agent: &'a Agent,
    /// A sub-agent's name and the only tools it may call.
    allowed: Option<(String, Vec<String>)>,
    tools: ToolContext,
    outputs: tokio::sync::mpsc::UnboundedSender<Output>,
    answer: Option<String>,
    question: Option<String>,
    require_approval: &'a [String],
    approved: &'a [String],
    /// A call that needs approval first: its key and a description.
    needs_approval: Option<(String, String)>,
}

#[async_trait]
impl ExecHandler for AgentBridge<'_> {
    fn output(&mut self, output: &Output) {
        let _ = self.outputs.send(output.clone());
    }

    async fn tool_call(&mut self, name: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        let text = |key: &str| {
            kwargs.get(key).and_then(Value::as_str).or(args.get(0).and_then(Value::as_str)).map(str::to_owned)
        };
        match name {
            "final_answer" => {
                let answer = text("answer").ok_or("final_answer needs the answer as text")?;
                self.answer = Some(answer);
                Ok(json!("the answer was recorded; the task ends after this block"))
            }
            "ask_user" => {
                let question = text("question").ok_or("ask_user needs the question as text")?;
                self.question = Some(question);
                Ok(json!("the question was sent; the answer will be your next observation"))
            }
            _ if self.allowed.as_ref().is_some_and(|(_, tools)| !tools.iter().any(|t| t == name)) => {
                let (agent, tools) = self.allowed.as_ref().map(|(a, t)| (a.as_str(), t.join(", "))).unwrap_or_default();
                Err(format!("{name} is not one of the {agent} agent's tools; it may call {tools}"))
            }
            _ if self.require_approval.iter().any(|t| t == name) => {
                let key = json!({ "tool": name, "args": args, "kwargs": kwargs }).to_string();
                if self.approved.contains(&key) {
                    return self.agent.registry.call(&self.tools, name, args, kwargs).await;
                }
                let described = format!("{name}({}{})", args, kwargs);
                self.needs_approval = Some((key, described));
                Err(format!(
                    "{name} needs a member's approval; the run pauses until someone answers. If they approve, call it \
                     again with the same arguments."
                ))
            }
            _ => self.agent.registry.call(&self.tools, name, args, kwargs).await,
        }
    }
}
