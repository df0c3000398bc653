//! One turn of the loop: `think` (new messages, budgets, the model's next
//! block) and `act` (the block in the sandbox, its outputs, the observation),
//! with the bridge that connects an execution to the tools.

use super::*;
use crate::events::{ArtifactSaved, BrowserSeen, Change, PathChanged, TOOL_TEXT_CHARS, ToolCalled, WorkspaceChanged};

/// Workspace entries compared before and after an execution, at most; a
/// bigger workspace is told as far as this goes.
const MAX_WATCHED_FILES: usize = 5000;
/// Changed paths one `workspace` event lists, at most.
const MAX_TOLD_CHANGES: usize = 200;

/// Figures of one execution the model sees, at most.
pub(super) const MAX_OBSERVED_IMAGES: usize = 4;
/// A figure larger than this (base64) is only described in words.
pub(super) const MAX_OBSERVED_IMAGE_BASE64: usize = 1 << 20;
/// Observations whose figures the model still sees; older ones keep their
/// words (`[a figure, saved as …]`) without the image.
pub(super) const MESSAGES_WITH_IMAGES: usize = 3;

/// Drops the images of all but the latest few messages that have them, so
/// the conversation (and its checkpoints) do not grow by a figure a step.
pub(super) fn keep_recent_images(messages: &mut [Message]) {
    let mut kept = 0;
    for message in messages.iter_mut().rev().filter(|m| !m.images.is_empty()) {
        if kept < MESSAGES_WITH_IMAGES {
            kept += 1;
        } else {
            message.images.clear();
        }
    }
}

impl Agent {
    /// Adds the thread's messages posted since the last look to the
    /// conversation; the first answer to an approval question decides it.
    pub(super) async fn absorb_messages(
        &self,
        state: &mut AgentState,
        run: &RunContext,
    ) -> Result<Option<String>, AgentError> {
        let thread_messages = run.working.messages(run.thread).await?;
        let mut last = None;
        for message in thread_messages.iter().skip(state.seen_messages) {
            if message.role == cairn_core::model::MessageRole::User {
                if let Some(call) = state.awaiting_approval.take() {
                    let approved = says_yes(&message.content);
                    let tool =
                        serde_json::from_str::<Value>(&call).ok().and_then(|c| c["tool"].as_str().map(str::to_owned));
                    let action = if approved { "tool.approved" } else { "tool.denied" };
                    let detail = json!({ "run": run.run, "tool": tool, "answer": message.content.chars().take(200).collect::<String>() });
                    audit(&*self.store, message.author, run.project, action, detail).await;
                    if approved {
                        state.approved.push(call);
                    }
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
    pub(super) async fn stop_reason(&self, state: &AgentState, run: &RunContext) -> Result<Option<String>, AgentError> {
        if let Some(limit) = run.project_budget_usd
            && let Some(why) = crate::budget::budget_spent(&*self.store, run.project, limit).await?
        {
            return Ok(Some(why));
        }
        if let Some(why) = crate::budget::member_budget_spent(&*self.store, run.project, run.user).await? {
            return Ok(Some(why));
        }
        Ok(run.budget.reached(state.spent()))
    }

    /// Ends the run for `why` (a budget) with a `run.budget` event.
    pub(super) async fn stop(
        mut state: AgentState,
        why: String,
        events: &dyn Events,
    ) -> Result<Step<AgentState>, AgentError> {
        events.emit(RunEvent::Budget(BudgetReached { reason: why.clone() })).await;
        state.failure = Some(why);
        Ok(Step { state, control: Control::End })
    }

    pub(super) async fn think(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, AgentError> {
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
        // A run that is a sub-agent throughout: its role, tools and model.
        let whole = if task.is_none() { state.agent.as_deref().and_then(|a| run.agent_spec(a)).cloned() } else { None };
        let system = match (&spec, &whole) {
            (Some(spec), _) => self.sub_agent_prompt(spec, &context),
            (None, Some(agent)) => self.agent_prompt(agent, &context),
            (None, None) => self.system_prompt_with(&context),
        };
        let model_id = spec.as_ref().or(whole.as_ref()).map(|s| s.model.as_str()).filter(|m| !m.is_empty());
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

    pub(super) async fn act(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, AgentError> {
        let started = Instant::now();
        let Some(code) = state.pending_code.take() else {
            return Ok(Step::next(state));
        };
        let tools = self.tool_context(run, ctx.step);
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel::<RunEvent>();
        let before = self.workspace_files(run.sandbox).await;
        let working_as = match state.task {
            Some(i) => state.plan.as_ref().and_then(|p| p.tasks.get(i)).map(|t| t.agent.clone()),
            None => state.agent.clone(),
        };
        let allowed = working_as
            .and_then(|name| run.agent_spec(&name))
            .filter(|spec| !spec.tools.is_empty())
            .map(|spec| (spec.name.clone(), spec.tools.clone()));
        let mcp_secrets = self.mcp_secrets_for(run.project, &state.mcp_tools).await;
        let mut bridge = AgentBridge {
            agent: self,
            allowed,
            tools,
            events: events_tx,
            task: task_of(&state),
            screenshots: 0,
            answer: None,
            question: None,
            require_approval: &run.require_approval,
            approved: &state.approved,
            needs_approval: None,
            saved: Vec::new(),
            mcp: &state.mcp_tools,
            mcp_secrets: &mcp_secrets,
            stdio_call: None,
        };
        if state.planning || state.agent.is_some() {
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
        if !state.mcp_tools.is_empty() {
            // Defined before every block: a kernel that restarted has lost them.
            let code = super::mcp::definitions(&state.mcp_tools, &mcp_secrets);
            let quiet = &mut |_: &Output| {};
            if let Err(error) = self.services.sandboxes.execute(run.sandbox, Execution::Python { code }, quiet).await {
                tracing::warn!(error = %error.detail(), "the project's MCP tools could not be defined");
            }
        }
        let span = tracing::info_span!("sandbox.execute", otel.name = "execute code", cairn.sandbox = %run.sandbox);
        let execution =
            self.services.sandboxes.execute(run.sandbox, Execution::Python { code }, &mut bridge).instrument(span);
        let outcome = {
            tokio::pin!(execution);
            loop {
                tokio::select! {
                    outcome = &mut execution => break outcome,
                    Some(event) = events_rx.recv() => events.emit(event).await,
                }
            }
        };
        while let Ok(event) = events_rx.try_recv() {
            events.emit(event).await;
        }
        for file in std::mem::take(&mut bridge.saved) {
            events.emit(RunEvent::Artifact(file)).await;
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
        if let (Some(before), Some(after)) = (before, self.workspace_files(run.sandbox).await) {
            let (changes, truncated) = workspace_changes(&before, &after);
            if !changes.is_empty() {
                events.emit(RunEvent::Workspace(WorkspaceChanged { changes, truncated, task: task_of(&state) })).await;
            }
        }
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
                control: Control::Interrupt { question: json!(question), resume_at: Node::Think.into() },
            });
        }
        Ok(Step::next(state))
    }

    /// What the model is told about an execution: output, value, error,
    /// limits — and figures, which are saved (into the workspace, and into
    /// the library as artifacts).
    pub(super) async fn observe(
        &self,
        outcome: &ExecOutcome,
        run: &RunContext,
        ctx: &StepContext,
        events: &dyn Events,
    ) -> (String, Vec<cairn_llm::Image>) {
        let mut parts = Vec::new();
        // First, so the model reads it before it relies on a variable.
        if let Some(notice) = &outcome.notice {
            parts.push(format!("note: {notice}"));
        }
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

    /// The workspace's files (path → size and time), to tell what an
    /// execution changed; `None` when it cannot be listed.
    async fn workspace_files(&self, sandbox: cairn_core::SandboxId) -> Option<Files> {
        let listed = self.services.sandboxes.list_files(sandbox, "", true).await.ok()?;
        Some(
            listed
                .into_iter()
                .filter(|e| e.kind == cairn_core::sandbox::EntryKind::File)
                .take(MAX_WATCHED_FILES)
                .map(|e| (e.path, (e.size, e.modified)))
                .collect(),
        )
    }

    /// What a tool called in this step of the run works with (its
    /// artifacts carry the run and the step).
    pub(super) fn tool_context(&self, run: &RunContext, step: i64) -> ToolContext {
        ToolContext {
            services: self.services.clone(),
            sandbox: run.sandbox,
            user: run.user,
            project: Some(run.project),
            thread: Some(run.thread),
            run: Some((run.run, step)),
            fence: run.fence,
        }
    }
}

/// A workspace's files: path → size and modification time.
type Files = std::collections::BTreeMap<String, (u64, Option<time::OffsetDateTime>)>;

/// What changed between two listings of a workspace, by path (at most
/// [`MAX_TOLD_CHANGES`]), and whether more did.
fn workspace_changes(before: &Files, after: &Files) -> (Vec<PathChanged>, bool) {
    let changed = after
        .iter()
        .filter_map(|(path, now)| match before.get(path) {
            None => Some(PathChanged { path: path.clone(), change: Change::Added, size: now.0 }),
            Some(then) if then != now => {
                Some(PathChanged { path: path.clone(), change: Change::Modified, size: now.0 })
            }
            Some(_) => None,
        })
        .chain(before.keys().filter(|path| !after.contains_key(*path)).map(|path| PathChanged {
            path: path.clone(),
            change: Change::Removed,
            size: 0,
        }));
    let mut changes: Vec<PathChanged> = changed.take(MAX_TOLD_CHANGES + 1).collect();
    let truncated = changes.len() > MAX_TOLD_CHANGES;
    changes.truncate(MAX_TOLD_CHANGES);
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    (changes, truncated)
}

/// A tool call's arguments as its `tool` event tells them: the positional
/// ones, the keyword ones, or both, as JSON cut short — made before the
/// call, so the arguments (a file's contents…) are never copied whole.
fn told_arguments(args: &Value, kwargs: &Value) -> String {
    let arguments = match (args.as_array().is_some_and(|a| !a.is_empty()), kwargs.as_object()) {
        (false, Some(map)) if !map.is_empty() => kwargs.to_string(),
        (true, Some(map)) if !map.is_empty() => format!("{args} {kwargs}"),
        _ => args.to_string(),
    };
    shorten(&arguments, TOOL_TEXT_CHARS)
}

/// Connects an execution to the tools, and takes `final_answer` and
/// `ask_user` for the run. What happens meanwhile (outputs, tool calls,
/// what the browser saw) goes to `events` as it happens.
struct AgentBridge<'a> {
    agent: &'a Agent,
    /// A sub-agent's name and the only tools it may call.
    allowed: Option<(String, Vec<String>)>,
    tools: ToolContext,
    events: tokio::sync::mpsc::UnboundedSender<RunEvent>,
    /// The plan task's id, for a sub-agent's events.
    task: Option<String>,
    /// Screenshots taken in this execution (they are numbered in it).
    screenshots: u32,
    answer: Option<String>,
    question: Option<String>,
    require_approval: &'a [String],
    approved: &'a [String],
    /// A call that needs approval first: its key and a description.
    needs_approval: Option<(String, String)>,
    /// Files the code saved into the library (`save_artifact`), told as
    /// `artifact` events once the execution is over.
    saved: Vec<ArtifactSaved>,
    /// The project's MCP tools (`mcp:<server>/<tool>`).
    mcp: &'a [super::mcp::McpTool],
    /// Their servers' secrets.
    mcp_secrets: &'a super::mcp::McpSecrets,
    /// A stdio tool's call the bridge allowed, which the kernel is making:
    /// its key, its arguments as told, and when it began.
    stdio_call: Option<(String, String, Instant)>,
}

impl AgentBridge<'_> {
    /// Records a tool call the policy refused in the audit log, as done by
    /// the member whose run made it.
    async fn refused(&self, tool: &str, reason: &str) {
        let Some(project) = self.tools.project else { return };
        let detail = json!({ "run": self.tools.run.map(|(run, _)| run), "tool": tool, "reason": reason });
        audit(&*self.agent.store, Some(self.tools.user), project, "tool.refused", detail).await;
    }

    /// Tells the run's watchers of a tool call (its arguments as
    /// [`told_arguments`] gives them) and what came of it.
    fn told(&self, name: &str, arguments: String, result: &Result<Value, String>, started: Instant) {
        let (text, ok) = match result {
            Ok(Value::String(text)) => (text.clone(), true),
            Ok(value) => (value.to_string(), true),
            Err(reason) => (reason.clone(), false),
        };
        let event = ToolCalled {
            name: name.to_owned(),
            args: arguments,
            result: shorten(&text, TOOL_TEXT_CHARS),
            ok,
            duration_ms: started.elapsed().as_millis() as u64,
            task: self.task.clone(),
        };
        let _ = self.events.send(RunEvent::Tool(event));
    }

    /// After a browser action, what the page shows now: a screenshot kept
    /// with the thread's pictures, and its address.
    async fn glimpse(&mut self, action: &str) {
        let Some(glimpse) = self.agent.services.browsers.glimpse(self.tools.sandbox).await else { return };
        let mut screenshot = None;
        if let (Some(jpeg), Some(files), Some(project), Some(thread), Some((run, step))) =
            (glimpse.jpeg, &self.agent.services.files, self.tools.project, self.tools.thread, self.tools.run)
        {
            self.screenshots += 1;
            let name = format!("{run}-{step}-{}.jpg", self.screenshots);
            match files.put_media(project, thread, &name, jpeg.into()).await {
                Ok(()) => screenshot = Some(name),
                Err(error) => tracing::warn!(%error, "a browser screenshot could not be kept"),
            }
        }
        let seen = BrowserSeen {
            action: action.to_owned(),
            url: glimpse.url,
            title: glimpse.title,
            screenshot,
            task: self.task.clone(),
        };
        let _ = self.events.send(RunEvent::Browser(seen));
    }

    /// Calls a tool and tells of it; a file it saved into the library is
    /// noted, and after a browser action the page is looked at.
    async fn call(&mut self, name: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        let started = Instant::now();
        let arguments = told_arguments(&args, &kwargs);
        if self.mcp.iter().any(|t| t.is_stdio() && t.key() == name) {
            // The kernel calls the server now, and brings back the outcome
            // (`stdio_outcome`), which is told then.
            self.stdio_call = Some((name.to_owned(), arguments, started));
            return Ok(json!(true));
        }
        let result = self.call_quietly(name, args, kwargs).await;
        self.told(name, arguments, &result, started);
        if result.is_ok() && cairn_tools::BROWSER_ACTIONS.contains(&name) {
            self.glimpse(name).await;
        }
        result
    }

    /// A stdio tool's outcome, from the kernel that called its server: read
    /// as an HTTP server's result is, and told. Only the call the bridge
    /// allowed last is taken.
    fn stdio_outcome(&mut self, name: &str, outcome: &Value) -> Result<Value, String> {
        let Some(tool) = self.mcp.iter().find(|t| t.is_stdio() && t.key() == name) else {
            return Err(format!("{name} is not a stdio MCP tool"));
        };
        let Some((_, arguments, started)) = self.stdio_call.take_if(|(key, _, _)| key == name) else {
            return Err(format!("{name} was not called"));
        };
        let result = match outcome.get("error").and_then(Value::as_str) {
            Some(error) => Err(error.to_owned()),
            None => {
                let result = outcome.get("result").cloned().unwrap_or(Value::Null);
                cairn_tools::mcp::tool_result(&tool.tool, &result).map_err(|e| e.to_string())
            }
        };
        self.told(name, arguments, &result, started);
        result
    }

    async fn call_quietly(&mut self, name: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        if let Some(tool) = self.mcp.iter().find(|t| t.key() == name) {
            if args.as_array().is_some_and(|a| !a.is_empty()) {
                return Err(format!("{} takes keyword arguments only", tool.function));
            }
            let headers = self.mcp_secrets.of(&tool.server);
            let called =
                cairn_tools::mcp::call_tool(&self.agent.services.http, &tool.url, headers, &tool.tool, kwargs).await;
            return called.map_err(|e| e.to_string());
        }
        let result = match self.agent.registry.call_checked(&self.tools, name, args, kwargs).await {
            Err(cairn_tools::ToolError::Refused(reason)) => {
                // A destination the network policy refuses (a private address…).
                self.refused(name, &reason).await;
                Err(reason)
            }
            other => other.map_err(|e| e.to_string()),
        };
        if name == "save_artifact"
            && let Some(saved) = result.as_ref().ok().and_then(|v| serde_json::from_value(v.clone()).ok())
        {
            self.saved.push(saved);
        }
        result
    }
}

#[async_trait]
impl ExecHandler for AgentBridge<'_> {
    fn output(&mut self, output: &Output) {
        let produced = OutputProduced { output: output.clone(), task: self.task.clone() };
        let _ = self.events.send(RunEvent::Output(produced));
    }

    async fn tool_call(&mut self, name: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        let text = |key: &str| {
            kwargs.get(key).and_then(Value::as_str).or(args.get(0).and_then(Value::as_str)).map(str::to_owned)
        };
        // A stdio MCP tool's outcome comes back under the tool's name, as
        // the only keyword argument.
        if let Some(outcome) = kwargs.as_object().filter(|k| k.len() == 1).and_then(|k| k.get(super::mcp::STDIO_RESULT))
        {
            return self.stdio_outcome(name, outcome);
        }
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
                let reason = format!("{name} is not one of the {agent} agent's tools; it may call {tools}");
                self.refused(name, &reason).await;
                let refused = Err(reason);
                self.told(name, told_arguments(&args, &kwargs), &refused, Instant::now());
                refused
            }
            _ if self.require_approval.iter().any(|t| t == name || (t == "mcp:*" && name.starts_with("mcp:"))) => {
                let key = json!({ "tool": name, "args": args, "kwargs": kwargs }).to_string();
                if self.approved.contains(&key) {
                    return self.call(name, args, kwargs).await;
                }
                let described = format!("{name}({}{})", args, kwargs);
                self.needs_approval = Some((key, described));
                let waiting = Err(format!(
                    "{name} needs a member's approval; the run pauses until someone answers. If they approve, call it \
                     again with the same arguments."
                ));
                self.told(name, told_arguments(&args, &kwargs), &waiting, Instant::now());
                waiting
            }
            _ => self.call(name, args, kwargs).await,
        }
    }
}

/// Writes an audit entry for something the agent did or was told; a failure
/// to write is logged, never the run's.
async fn audit(
    store: &dyn cairn_core::store::Store,
    actor: Option<cairn_core::UserId>,
    project: cairn_core::ProjectId,
    action: &str,
    detail: Value,
) {
    let entry = cairn_core::model::NewAuditEntry::new(actor, Some(project), action, detail, None);
    if let Err(error) = store.record_audit(entry).await {
        tracing::error!(%error, action, "cannot write the audit log");
    }
}
