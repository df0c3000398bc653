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

use crate::graph::{Control, Edge, Graph, Step, StepContext};

/// Where events of a run go (the thread's event log and the bus).
#[async_trait]
pub trait Events: Send + Sync + std::fmt::Debug {
    async fn emit(&self, kind: &str, payload: Value);
}

/// Limits of one run; reaching one ends the run cleanly with a message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub max_steps: u32,
    pub max_tokens: u64,
    pub max_cost_usd: f64,
    pub max_wall_secs: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_steps: 30, max_tokens: 2_000_000, max_cost_usd: 10.0, max_wall_secs: 3600 }
    }
}

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
    /// Tool calls a member approved (tool and arguments, as JSON).
    #[serde(default)]
    pub approved: Vec<String>,
    /// The call waiting for a member's approval.
    #[serde(default)]
    pub awaiting_approval: Option<String>,
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
        let (think_agent, think_run, think_events) = (self.clone(), run.clone(), events.clone());
        let (act_agent, act_run, act_events) = (self.clone(), run, events);
        Graph::new("think")
            .node("think", move |state, ctx| {
                let (agent, run, events) = (think_agent.clone(), think_run.clone(), think_events.clone());
                async move { agent.think(state, &run, events.as_ref(), ctx).await }
            })
            .node("act", move |state, ctx| {
                let (agent, run, events) = (act_agent.clone(), act_run.clone(), act_events.clone());
                async move { agent.act(state, &run, events.as_ref(), ctx).await }
            })
            .edge(
                "think",
                Edge::Branch(Arc::new(|state: &AgentState| {
                    if state.failure.is_some() || state.final_answer.is_some() {
                        None
                    } else if state.pending_code.is_some() {
                        Some("act".to_owned())
                    } else {
                        Some("think".to_owned())
                    }
                })),
            )
            .edge("act", Edge::To("think".to_owned()))
            .max_steps(1000)
    }

    /// Stops the run when a budget is spent.
    fn over_budget(state: &AgentState, budget: &Budget) -> Option<String> {
        if state.turns >= budget.max_steps {
            return Some(format!("the step budget of {} was reached", budget.max_steps));
        }
        if state.usage.input_tokens + state.usage.output_tokens >= budget.max_tokens {
            return Some(format!("the token budget of {} was reached", budget.max_tokens));
        }
        if state.cost_usd >= budget.max_cost_usd {
            return Some(format!("the cost budget of ${:.2} was reached", budget.max_cost_usd));
        }
        if state.elapsed_ms / 1000 >= budget.max_wall_secs {
            return Some(format!("the time budget of {} s was reached", budget.max_wall_secs));
        }
        None
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
        let thread_messages = self.store.messages(run.thread).await.map_err(|e| e.to_string())?;
        for message in thread_messages.iter().skip(state.seen_messages) {
            if message.role == cairn_core::model::MessageRole::User {
                // The first answer to an approval question decides it.
                if let Some(call) = state.awaiting_approval.take() {
                    let yes = message.content.trim().to_lowercase();
                    if yes.starts_with("yes") || yes.starts_with("approve") || yes == "y" || yes == "ok" {
                        state.approved.push(call);
                    }
                }
                state.messages.push(Message::user(message.content.clone()));
            }
        }
        state.seen_messages = thread_messages.len();
        // The project's budget first: the owner set it on purpose.
        let mut over = None;
        if let Some(limit) = run.project_budget_usd
            && self.store.project_cost(run.project).await.map_err(|e| e.to_string())? >= limit
        {
            over = Some(format!("the project's budget of ${limit:.2} is spent"));
        }
        if let Some(why) = over.or_else(|| Self::over_budget(&state, &run.budget)) {
            events.emit("run.budget", json!({ "reason": why })).await;
            state.failure = Some(why);
            return Ok(Step { state, control: Control::End });
        }
        let chosen = state.model.as_deref().or(run.model.as_deref());
        let (model, info) = self.models.get(chosen).map_err(|e| e.to_string())?;
        let request = ChatRequest {
            model: info.model.clone(),
            system: Some(self.system_prompt_with(&self.project_context(run).await)),
            messages: state.messages.clone(),
            max_tokens: 4096,
            temperature: None,
            stop: Vec::new(),
        };
        let mut stream = model.stream(&request).await.map_err(|e| format!("the model failed: {e}"))?;
        let mut reply = String::new();
        let mut pending = String::new();
        let mut last_flush = Instant::now();
        let mut usage = Usage::default();
        let unchanged = state.clone();
        loop {
            // A cancel stops the model call at once, not at the end of its reply.
            let delta = tokio::select! {
                delta = stream.next() => delta,
                () = async {
                    while !ctx.cancelled() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                } => return Ok(Step::next(unchanged)),
            };
            let Some(delta) = delta else { break };
            match delta.map_err(|e| format!("the model's reply broke off: {e}"))? {
                Delta::Text(text) => {
                    reply.push_str(&text);
                    pending.push_str(&text);
                    // Token deltas go out in small batches, not one write each.
                    if last_flush.elapsed() >= Duration::from_millis(50) {
                        events.emit("token", json!({ "text": std::mem::take(&mut pending) })).await;
                        last_flush = Instant::now();
                    }
                }
                Delta::Done { usage: used, .. } => usage = used,
            }
        }
        if !pending.is_empty() {
            events.emit("token", json!({ "text": pending })).await;
        }
        state.turns += 1;
        state.usage.add(usage);
        let cost = info.cost(usage);
        state.cost_usd += cost;
        if let Err(error) = self.store.add_run_cost(run.run, cost).await {
            tracing::warn!(%error, "the cost of a model call could not be recorded");
        }
        events
            .emit(
                "usage",
                json!({ "model": info.id, "user": run.user, "input_tokens": usage.input_tokens,
                                    "output_tokens": usage.output_tokens, "cost_usd": cost }),
            )
            .await;
        state.messages.push(Message::assistant(reply.clone()));
        match code_block(&reply) {
            Some(code) => {
                state.malformed = 0;
                events.emit("code", json!({ "code": code })).await;
                state.pending_code = Some(code);
            }
            None => {
                state.malformed += 1;
                if state.malformed >= MAX_MALFORMED {
                    state.failure = Some(format!("the model replied {MAX_MALFORMED} times without a code block"));
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
        let mut bridge = AgentBridge {
            agent: self,
            tools,
            outputs: outputs_tx,
            answer: None,
            question: None,
            require_approval: &run.require_approval,
            approved: &state.approved,
            needs_approval: None,
        };
        let execution = self.services.sandboxes.execute(run.sandbox, Execution::Python { code }, &mut bridge);
        let outcome = {
            tokio::pin!(execution);
            loop {
                tokio::select! {
                    outcome = &mut execution => break outcome,
                    Some(output) = outputs_rx.recv() => {
                        events.emit("output", serde_json::to_value(&output).unwrap_or_default()).await;
                    }
                }
            }
        };
        while let Ok(output) = outputs_rx.try_recv() {
            events.emit("output", serde_json::to_value(&output).unwrap_or_default()).await;
        }
        let (answer, mut question) = (bridge.answer.take(), bridge.question.take());
        if let Some((call, description)) = bridge.needs_approval.take() {
            question = Some(format!("May the agent run {description}? Answer yes or no."));
            state.awaiting_approval = Some(call);
        }
        let observation = match outcome {
            Ok(outcome) => self.observe(&outcome, run, &ctx, events).await,
            Err(error) => format!("The sandbox failed: {}. The kernel will be fresh on the next turn.", error.detail()),
        };
        events.emit("observation", json!({ "text": observation })).await;
        state.messages.push(Message::user(format!("Observation:\n{observation}")));
        state.elapsed_ms += started.elapsed().as_millis() as u64;
        if let Some(answer) = answer {
            state.final_answer = Some(answer);
            return Ok(Step { state, control: Control::End });
        }
        if let Some(question) = question {
            events.emit("interrupt", json!({ "question": question })).await;
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
    async fn observe(&self, outcome: &ExecOutcome, run: &RunContext, ctx: &StepContext, events: &dyn Events) -> String {
        let mut parts = Vec::new();
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
                            if let Ok(file) = &saved {
                                events.emit("artifact", file.clone()).await;
                            }
                            parts.push(format!("[a figure, saved as {path}]"));
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
        shorten(&parts.join("\n"), MAX_OBSERVATION_CHARS)
    }
}

/// Connects an execution to the tools, and takes `final_answer` and
/// `ask_user` for the run.
struct AgentBridge<'a> {
    agent: &'a Agent,
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
