//! Plans and sub-agents: the planner, dispatching ready tasks (one at a
//! time, or a batch at once in sandboxes of their own), the supervisor's
//! checks and retries, re-planning, and the answer from the results.

use super::*;

impl Agent {
    /// Emits the plan as it stands.
    pub(super) async fn publish_plan(state: &AgentState, events: &dyn Events) {
        if let Some(plan) = &state.plan {
            events.emit(RunEvent::Plan(PlanChanged { plan: plan.clone(), edited_by: None })).await;
        }
    }

    /// The planner: the conversation so far becomes a plan of tasks for the
    /// sub-agents (a new one, keeping finished tasks, when it must change).
    pub(super) async fn plan(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, AgentError> {
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
                        control: Control::Interrupt { question: json!(question), resume_at: Node::Dispatch.into() },
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
    pub(super) async fn dispatch(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, AgentError> {
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
    pub(super) fn start_task(state: &mut AgentState, index: usize) -> String {
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
    /// supervisor checks each result. With `run.lanes`, the lanes beyond the
    /// first go to the queue and any worker works them (their results are
    /// kept, so a batch run again after a crash reuses those it has);
    /// without, they run here. A batch cut short by a crash runs again as a
    /// whole.
    pub(super) async fn run_batch(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
        ready: Vec<usize>,
    ) -> Result<Step<AgentState>, AgentError> {
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
                // Beyond the first, a lane may go to another worker.
                if n > 0
                    && let Some(lanes) = &run.lanes
                {
                    let job = LaneJob { run: run.run, step: ctx.step, lane: n, state: lane, fence: run.fence };
                    return lanes.work(job, &ctx).await;
                }
                let mut lane_run = run.clone();
                let own = if n == 0 {
                    None
                } else {
                    let request = cairn_core::sandbox::NewSandbox {
                        owner: run.user,
                        project: Some(run.project),
                        thread: None,
                        policy: cairn_core::sandbox::SandboxPolicy {
                            packages: run.packages.clone(),
                            ..Default::default()
                        },
                        id: None,
                        restore: false,
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

    /// A lane of a batch that another worker queued: its sub-agent's whole
    /// loop, in `run`'s sandbox (one made for the lane).
    pub async fn work_lane(
        &self,
        lane: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<AgentState, AgentError> {
        self.sub_agent(lane, run, events, ctx).await
    }

    /// A sub-agent's whole loop, within one step (for a batch).
    pub(super) async fn sub_agent(
        &self,
        mut lane: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<AgentState, AgentError> {
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
    pub(super) async fn check(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, AgentError> {
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
    pub(super) async fn judge(
        &self,
        state: &mut AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: &StepContext,
        index: usize,
        answer: Option<String>,
        failure: Option<String>,
    ) -> Result<(), AgentError> {
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
    pub(super) async fn synthesize(
        &self,
        mut state: AgentState,
        run: &RunContext,
        events: &dyn Events,
        ctx: StepContext,
    ) -> Result<Step<AgentState>, AgentError> {
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
}
