//! The worker's side of runs: taking jobs from the queue, keeping their
//! lease, working each run's graph under its fence in the thread's sandbox,
//! and handing the job back (or setting it aside) when the run cannot go on.

use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_core::bus::Delivery;
use cairn_core::model::{MessageRole, NewMessage, Run, RunStatus};
use cairn_core::sandbox::{NewSandbox, SandboxResult};
use cairn_core::{RunId, SandboxId, ThreadId};
use serde_json::json;
use tracing::Instrument;

use super::{Drain, QUEUE, RunError, RunJob, Runs, StoreEvents, TRANSIENT_RETRIES};
use crate::codeact::{Agent, AgentState, RunContext};
use crate::events::{Events, MessageCreated, RunEvent, StatusChanged};
use crate::graph::{CheckpointError, GraphError, Outcome, StoreCheckpointer};

impl Runs {
    /// Starts `count` workers taking runs from the queue, as `consumer`
    /// (none where this process has no agent: it only queues runs).
    pub fn start_workers(&self, consumer: &str, count: usize) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(agent) = self.inner.agent.clone() else {
            tracing::error!("this process has no agent to work runs with; no worker started");
            return Vec::new();
        };
        self.listen_for_cancels();
        (0..count)
            .map(|n| {
                let (runs, agent, consumer) = (self.clone(), agent.clone(), format!("{consumer}-{n}"));
                tokio::spawn(async move { runs.work(&agent, &consumer).await })
            })
            .chain((0..count).map(|n| {
                // As many taking lanes of planned runs' batches.
                let (runs, agent, consumer) = (self.clone(), agent.clone(), format!("{consumer}-lane-{n}"));
                tokio::spawn(async move { runs.work_lanes(&agent, &consumer).await })
            }))
            .collect()
    }

    /// The next job of `queue` for `consumer`; `None` once the process
    /// stops taking work.
    pub(super) async fn next_job(
        &self,
        queue: &str,
        consumer: &str,
        drain: &mut tokio::sync::watch::Receiver<Drain>,
    ) -> Option<Delivery> {
        loop {
            let taken = tokio::select! {
                taken = self.inner.bus.queue.take(queue, consumer, Duration::from_secs(5)) => taken,
                () = async { let _ = drain.wait_for(|d| *d != Drain::Take).await; } => return None,
            };
            match taken {
                Ok(Some(delivery)) => return Some(delivery),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, queue, "cannot take work from the queue; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Keeps a job's lease while it is worked (every third of the lease)
    /// and calls `stop` once another worker has the job (its writes are
    /// refused in any case) or the run's status is one `moot` says ends the
    /// work, cancelled elsewhere and the bus's word of it lost. A bus away
    /// for a moment is tried again at the next beat (should the lease run
    /// out meanwhile, the fence keeps the two workers apart).
    pub(super) fn keep_lease(
        &self,
        delivery: &Delivery,
        run: RunId,
        moot: fn(RunStatus) -> bool,
        stop: impl Fn() + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let (runs, delivery, every) = (self.clone(), delivery.clone(), self.inner.lease / 3);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match runs.inner.bus.queue.extend(&delivery).await {
                    Ok(()) => {}
                    Err(cairn_core::Error::LeaseLost { .. }) => {
                        stop();
                        return;
                    }
                    Err(_) => continue,
                }
                if runs.inner.store.run(run).await.is_ok_and(|found| moot(found.status)) {
                    stop();
                }
            }
        })
    }

    async fn work(&self, agent: &Arc<Agent>, consumer: &str) {
        let mut drain = self.inner.drain.subscribe();
        loop {
            let Some(delivery) = self.next_job(QUEUE, consumer, &mut drain).await else { return };
            let Some(RunJob { run: id, model, plan, trace, agent: as_agent, .. }) = RunJob::decode(&delivery.payload)
            else {
                tracing::warn!(job = %String::from_utf8_lossy(&delivery.payload), "a queued job could not be read; dropped");
                let _ = self.inner.bus.queue.ack(&delivery).await;
                continue;
            };
            if delivery.exhausted {
                self.give_up(id, &delivery, &drain).await;
                continue;
            }
            // Keep the lease while the run works, and stop the run if it was
            // cancelled elsewhere and the bus's word of it was lost.
            let heartbeat = {
                let runs = self.clone();
                self.keep_lease(
                    &delivery,
                    id,
                    |status| status == RunStatus::Cancelled,
                    move || {
                        runs.stop_here(id);
                    },
                )
            };
            self.inner.working.fetch_add(1, Ordering::SeqCst);
            // The run's trace goes on here, from where it was queued.
            let span = tracing::info_span!(
                "run.process",
                otel.name = "process run",
                otel.kind = "consumer",
                messaging.destination.name = QUEUE,
                cairn.run.id = %id,
                cairn.delivery = delivery.attempt,
                cairn.worker = consumer,
            );
            cairn_core::trace::continue_from(&span, trace.as_deref());
            // A passing outage (the database, the sandbox hosts) is waited
            // out here, holding the job, rather than spending its deliveries.
            let mut waited = 0;
            let result = loop {
                let result = tokio::select! {
                    result = self.process(agent, id, model.clone(), plan, as_agent.clone()).instrument(span.clone()) => Some(result),
                    () = async { let _ = drain.wait_for(|d| *d == Drain::Release).await; } => None,
                };
                let passing = matches!(
                    result,
                    Some(Err(RunError::Store(cairn_core::Error::Unavailable { .. }) | RunError::SandboxUnavailable(_)))
                );
                if !passing || waited >= TRANSIENT_RETRIES || *drain.borrow() != Drain::Take {
                    break result;
                }
                waited += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            };
            heartbeat.abort();
            match result {
                // Shutting down: the run goes back to the queue now, and the
                // next worker goes on from its last checkpoint.
                None => {
                    self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                    let why = "the worker shut down; the run goes on elsewhere from its last checkpoint";
                    let _ = self.inner.bus.queue.nack(&delivery, Duration::ZERO, why).await;
                }
                Some(Ok(())) => {
                    let _ = self.inner.bus.queue.ack(&delivery).await;
                }
                // Taken over by another worker after this one's lease ran
                // out: the job is the other's now, nothing to hand back.
                Some(Err(RunError::Store(cairn_core::Error::LeaseLost { .. }))) => {
                    self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                    tracing::info!(run = %id, "another worker took the run over; this one let it go");
                }
                // The last delivery: the run ends failed rather than waiting
                // in the dead letters with a status that says it runs.
                Some(Err(error)) if delivery.attempt >= self.inner.max_deliveries => {
                    tracing::warn!(run = %id, %error, attempt = delivery.attempt, "a run failed on its last delivery");
                    let why = format!("the run could not go on after {} attempts: {error}", delivery.attempt);
                    if let Ok(run) = self.inner.store.run(id).await {
                        let _ = self.set_status(&run, StatusChanged::new(RunStatus::Failed, Some(why))).await;
                    }
                    let _ = self.inner.bus.queue.nack(&delivery, Duration::ZERO, &error.to_string()).await;
                }
                Some(Err(error)) => {
                    tracing::warn!(run = %id, %error, "a run could not be processed; it will be tried again");
                    let _ = self.inner.bus.queue.nack(&delivery, Duration::from_secs(2), &error.to_string()).await;
                }
            }
            self.inner.working.fetch_sub(1, Ordering::SeqCst);
            if *drain.borrow() != Drain::Take {
                return;
            }
        }
    }

    /// Hands back a job that came back exhausted, once `record` wrote that
    /// its work could not be done (`true`) or found it need not (`false`:
    /// done or moot already; the job is then acknowledged, else set aside
    /// with `why`). A passing outage of the database is waited out first
    /// (2 s apart, the lease kept, at most [`TRANSIENT_RETRIES`] times, not
    /// past a shutdown). What `record` came to.
    pub(super) async fn set_aside<F>(
        &self,
        delivery: &Delivery,
        drain: &tokio::sync::watch::Receiver<Drain>,
        why: &str,
        mut record: impl FnMut() -> F,
    ) -> Result<bool, RunError>
    where
        F: std::future::Future<Output = Result<bool, RunError>>,
    {
        let mut waited = 0;
        let recorded = loop {
            match record().await {
                Err(RunError::Store(cairn_core::Error::Unavailable { .. }))
                    if waited < TRANSIENT_RETRIES && *drain.borrow() == Drain::Take =>
                {
                    waited += 1;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let _ = self.inner.bus.queue.extend(delivery).await;
                }
                other => break other,
            }
        };
        let _ = match recorded {
            Ok(false) => self.inner.bus.queue.ack(delivery).await,
            _ => self.inner.bus.queue.nack(delivery, Duration::ZERO, why).await,
        };
        recorded
    }

    /// A run whose job came back exhausted: the workers holding it died or
    /// stopped answering on every delivery the queue allows. The run ends
    /// failed, saying so, rather than staying "running" for good with its
    /// job among the dead letters; it is claimed first, so a holder still
    /// alive somewhere writes nothing more. A run that had ended (or waits
    /// for a member) meanwhile is left as it is.
    async fn give_up(&self, id: RunId, delivery: &Delivery, drain: &tokio::sync::watch::Receiver<Drain>) {
        let why = format!(
            "the run was stopped: the worker holding it stopped answering on each of its {} deliveries",
            delivery.attempt.saturating_sub(1)
        );
        let reason = &why;
        let failed = self
            .set_aside(delivery, drain, &why, || async move {
                let run = self.inner.store.run(id).await?;
                if run.status.is_terminal() || run.status == RunStatus::Waiting {
                    return Ok(false);
                }
                let fence = self.inner.store.claim_run(id).await?;
                let change = StatusChanged::new(RunStatus::Failed, Some(reason.clone()));
                self.set_status_under(&run, change, Some(fence)).await?;
                Ok(true)
            })
            .await;
        match failed {
            Ok(true) => {
                tracing::warn!(run = %id, attempts = delivery.attempt - 1, "a run whose workers kept dying ended failed")
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(run = %id, %error, "a run whose workers kept dying could not be marked failed")
            }
        }
    }

    /// The thread's sandbox: the one made for it before (granted the
    /// project's package installs as they are now), or a new one.
    async fn sandbox_for(
        &self,
        agent: &Agent,
        run: &Run,
        project: &cairn_core::model::Project,
    ) -> SandboxResult<SandboxId> {
        let sandboxes = &agent.services.sandboxes;
        let existing = sandboxes.list(Some(run.created_by)).await?;
        if let Some(found) = existing.iter().find(|s| s.thread == Some(run.thread_id)) {
            let change =
                cairn_core::sandbox::PackagesChange { project: project.id, packages: project.package_policy() };
            sandboxes.set_packages(found.id, change).await?;
            return Ok(found.id);
        }
        let request = NewSandbox {
            owner: run.created_by,
            project: Some(project.id),
            thread: Some(run.thread_id),
            policy: cairn_core::sandbox::SandboxPolicy { packages: project.package_policy(), ..Default::default() },
            id: None,
            restore: false,
        };
        Ok(sandboxes.create(request).await?.id)
    }

    /// Whether the thread's log tells of the message (its answer was posted
    /// by a worker that may have died before saying so).
    async fn announced(&self, thread: ThreadId, message: cairn_core::MessageId) -> Result<bool, RunError> {
        let (mut after, id) = (0, json!(message));
        loop {
            let page = self.inner.store.events_after(thread, after, 1000).await?;
            if page.iter().any(|e| e.kind == RunEvent::MESSAGE_CREATED && e.payload["id"] == id) {
                return Ok(true);
            }
            match page.last() {
                Some(last) => after = last.seq,
                None => return Ok(false),
            }
        }
    }

    /// What the agent needs to know of a run it works, in `sandbox`.
    pub(super) fn run_context(
        &self,
        run: &Run,
        project: &cairn_core::model::Project,
        sandbox: SandboxId,
        plan: bool,
    ) -> RunContext {
        RunContext {
            run: run.id,
            thread: run.thread_id,
            project: project.id,
            user: run.created_by,
            sandbox,
            model: None,
            budget: self.inner.budget,
            project_budget_usd: project.budget_usd,
            packages: project.package_policy(),
            require_approval: self.inner.require_approval.clone(),
            planning: plan,
            agents: self.inner.agents.clone(),
            plan_approval: self.inner.plan_approval,
            working: self.working(),
            fence: None,
            lanes: None,
        }
    }

    async fn process(
        &self,
        agent: &Arc<Agent>,
        id: RunId,
        model: Option<String>,
        plan: bool,
        as_agent: Option<String>,
    ) -> Result<(), RunError> {
        let run = self.inner.store.run(id).await?;
        if run.status.is_terminal() || run.status == RunStatus::Waiting {
            return Ok(());
        }
        let thread = self.inner.store.thread(run.thread_id).await?;
        // From here on this worker writes as the run's holder: a worker that
        // held it before (its lease ran out while it was paused or cut off)
        // has every write refused.
        let fence = self.inner.store.claim_run(id).await?;
        let run = if run.status == RunStatus::Running {
            tracing::info!(run = %id, "resuming a run from its last checkpoint");
            run
        } else {
            self.set_status_under(&run, StatusChanged::new(RunStatus::Running, None), Some(fence)).await?
        };
        let project = self.inner.store.project(thread.project_id).await?;
        let sandbox = match self.sandbox_for(agent, &run, &project).await {
            Ok(sandbox) => sandbox,
            // Passing (the sandbox hosts are unreachable or restarting): the
            // run is tried again (waited out in place, then through the queue).
            // Or every sandbox slot is busy: the same, until one frees up.
            Err(
                cairn_core::sandbox::SandboxError::Unavailable(why)
                | cairn_core::sandbox::SandboxError::CapReached(why),
            ) => {
                return Err(RunError::SandboxUnavailable(format!("no sandbox for the run yet: {why}")));
            }
            Err(why) => {
                let why = format!("no sandbox for the run: {}", why.detail());
                self.set_status_under(&run, StatusChanged::new(RunStatus::Failed, Some(why)), Some(fence)).await?;
                return Ok(());
            }
        };
        let cancel = Arc::new(AtomicBool::new(false));
        self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).insert(id, cancel.clone());
        let mut context = self.run_context(&run, &project, sandbox, plan);
        context.lanes = Some(Arc::new(super::lanes::QueuedLanes::new(self.clone())));
        context.fence = Some(fence);
        let events =
            StoreEvents { fence: Some(fence), stop: Some(cancel.clone()), ..self.events(run.thread_id, Some(id)) };
        let graph = agent.graph(context, Arc::new(events.clone()));
        let checkpoints = StoreCheckpointer { store: self.inner.store.clone(), fence: Some(fence) };
        // The run's own model, else the thread's, else the project's, else the default.
        let initial = AgentState {
            model: model.or(thread.model.clone()).or(project.model),
            planning: plan,
            agent: as_agent,
            ..AgentState::default()
        };
        let outcome = graph.run(&id.to_string(), &checkpoints, initial, None, cancel).await;
        self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        match outcome {
            Ok(Outcome::Finished(state)) => match (state.final_answer, state.failure) {
                (Some(answer), _) => {
                    // Posted once: a worker that died between posting the
                    // answer and marking the run finds it posted here.
                    let answered = NewMessage {
                        thread_id: run.thread_id,
                        role: MessageRole::Assistant,
                        author: None,
                        content: answer.clone(),
                        attachments: Vec::new(),
                        origin: None,
                    };
                    let (message, posted) = self.inner.store.append_answer(answered, id, Some(fence)).await?;
                    if posted || !self.announced(run.thread_id, message.id).await? {
                        self.working().changed(run.thread_id).await;
                        let created = MessageCreated {
                            id: message.id,
                            role: MessageRole::Assistant,
                            author: None,
                            content: answer.clone(),
                            attachments: Vec::new(),
                        };
                        events.emit(RunEvent::MessageCreated(created)).await;
                    }
                    let succeeded = StatusChanged {
                        answer: Some(answer),
                        usage: Some(state.usage),
                        cost_usd: Some(state.cost_usd),
                        steps: Some(state.turns),
                        ..StatusChanged::new(RunStatus::Succeeded, None)
                    };
                    self.set_status_under(&run, succeeded, Some(fence)).await?;
                }
                (None, failure) => {
                    let why = failure.unwrap_or_else(|| "the run ended without an answer".to_owned());
                    let failed =
                        StatusChanged { usage: Some(state.usage), ..StatusChanged::new(RunStatus::Failed, Some(why)) };
                    self.set_status_under(&run, failed, Some(fence)).await?;
                }
            },
            Ok(Outcome::Interrupted { question, .. }) => {
                let question = question.as_str().map_or_else(|| question.to_string(), str::to_owned);
                let waiting =
                    StatusChanged { question: Some(question), ..StatusChanged::new(RunStatus::Waiting, None) };
                self.set_status_under(&run, waiting, Some(fence)).await?;
            }
            Ok(Outcome::Cancelled(_)) => {
                match self.set_status_under(&run, StatusChanged::new(RunStatus::Cancelled, None), Some(fence)).await {
                    // Cancelled through another process, which already said so.
                    Ok(_) | Err(RunError::Store(cairn_core::Error::Conflict { .. })) => {}
                    Err(other) => return Err(other),
                }
            }
            // The store is out of reach: the job goes back to the queue and
            // the run goes on from its last checkpoint when it is taken again.
            // Or another worker has taken the run over: it is the other's now.
            Err(GraphError::Checkpoint(CheckpointError::Store(
                error @ (cairn_core::Error::Unavailable { .. } | cairn_core::Error::LeaseLost { .. }),
            ))) => {
                return Err(error.into());
            }
            Err(error) => {
                let failed = StatusChanged::new(RunStatus::Failed, Some(error.to_string()));
                self.set_status_under(&run, failed, Some(fence)).await?;
            }
        }
        Ok(())
    }
}
