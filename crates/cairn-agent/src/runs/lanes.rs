//! Lanes of a planned run's batch of independent tasks, worked by any
//! worker. The supervisor keeps the first lane and queues the others on
//! `lanes`; a worker takes one, runs its sub-agent in a sandbox made for it
//! (placed over the sandbox hosts like any other), and stores what the lane
//! came to, which the supervisor reads. A lane whose worker dies is
//! delivered again; a batch run again after the supervisor's worker died
//! finds the lanes already done.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_core::sandbox::{NewSandbox, SandboxError};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::{Drain, RunError, Runs, StoreEvents};
use crate::codeact::{Agent, AgentError, AgentState, LaneJob, Lanes};
use crate::graph::StepContext;

/// The queue lanes travel on.
pub const LANE_QUEUE: &str = "lanes";

/// How often a waiting supervisor looks for its lanes' results.
const POLL: Duration = Duration::from_millis(100);

/// A lane as queued.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueuedLane {
    #[serde(flatten)]
    job: LaneJob,
    /// The W3C `traceparent` of the supervisor's step (traces on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace: Option<String>,
}

/// The supervisor's side: lanes through the queue, results from the store.
#[derive(Debug)]
pub(crate) struct QueuedLanes {
    runs: Runs,
}

impl QueuedLanes {
    pub(crate) fn new(runs: Runs) -> QueuedLanes {
        QueuedLanes { runs }
    }
}

#[async_trait]
impl Lanes for QueuedLanes {
    async fn work(&self, job: LaneJob, ctx: &StepContext) -> Result<AgentState, AgentError> {
        let store = &self.runs.inner.store;
        let lane = i64::try_from(job.lane).unwrap_or(i64::MAX);
        if store.lane_result(job.run, job.step, lane).await?.is_none() {
            let queued = QueuedLane { job: job.clone(), trace: cairn_core::trace::current() };
            let payload = serde_json::to_vec(&queued).map_err(|e| AgentError::Failed(e.to_string()))?;
            self.runs.inner.bus.queue.enqueue(LANE_QUEUE, Bytes::from(payload)).await?;
        }
        loop {
            if let Some(state) = store.lane_result(job.run, job.step, lane).await? {
                return serde_json::from_value(state)
                    .map_err(|e| AgentError::Failed(format!("a task's result cannot be read: {e}")));
            }
            if ctx.cancelled() {
                let mut state = job.state;
                state.task_failure = Some("the run was cancelled".into());
                return Ok(state);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Runs {
    /// A worker taking lanes from the queue until the process stops.
    pub(super) async fn work_lanes(&self, agent: &Arc<Agent>, consumer: &str) {
        let mut drain = self.inner.drain.subscribe();
        loop {
            let Some(delivery) = self.next_job(LANE_QUEUE, consumer, &mut drain).await else { return };
            let Ok(QueuedLane { job, trace }) = serde_json::from_slice::<QueuedLane>(&delivery.payload) else {
                tracing::warn!("a queued task could not be read; dropped");
                let _ = self.inner.bus.queue.ack(&delivery).await;
                continue;
            };
            // Keep the lease while the lane works; stop it if its run ends.
            let cancel = Arc::new(AtomicBool::new(false));
            let heartbeat = {
                let cancel = cancel.clone();
                self.keep_lease(
                    &delivery,
                    job.run,
                    |status| status.is_terminal(),
                    move || {
                        cancel.store(true, Ordering::SeqCst);
                    },
                )
            };
            let span = tracing::info_span!(
                "run.lane",
                otel.name = "process task",
                otel.kind = "consumer",
                messaging.destination.name = LANE_QUEUE,
                cairn.run.id = %job.run,
                cairn.lane = job.lane,
                cairn.worker = consumer,
            );
            cairn_core::trace::continue_from(&span, trace.as_deref());
            let result = tokio::select! {
                result = self.work_lane(agent, &job, cancel.clone()).instrument(span) => Some(result),
                () = async { let _ = drain.wait_for(|d| *d == Drain::Release).await; } => None,
            };
            heartbeat.abort();
            match result {
                // Shutting down: another worker takes the lane at once.
                None => {
                    let _ = self.inner.bus.queue.nack(&delivery, Duration::ZERO, "the worker shut down").await;
                    return;
                }
                Some(Ok(())) => {
                    metrics::counter!("cairn_lanes_total", "outcome" => "done").increment(1);
                    let _ = self.inner.bus.queue.ack(&delivery).await;
                }
                // The last delivery: the lane ends failed, so the supervisor
                // waiting for it goes on.
                Some(Err(error)) if delivery.attempt >= self.inner.max_deliveries => {
                    tracing::warn!(run = %job.run, lane = job.lane, %error, "a task failed on its last delivery");
                    let mut state = job.state.clone();
                    state.task_failure = Some(format!("the task could not be worked: {error}"));
                    let _ = self.store_lane(&job, &state).await;
                    metrics::counter!("cairn_lanes_total", "outcome" => "failed").increment(1);
                    let _ = self.inner.bus.queue.ack(&delivery).await;
                }
                Some(Err(error)) => {
                    tracing::warn!(run = %job.run, lane = job.lane, %error, "a task could not be worked; it will be tried again");
                    let _ = self.inner.bus.queue.nack(&delivery, Duration::from_secs(2), &error.to_string()).await;
                }
            }
        }
    }

    async fn store_lane(&self, job: &LaneJob, state: &AgentState) -> Result<(), RunError> {
        let value = serde_json::to_value(state).map_err(|e| RunError::Conflict(e.to_string()))?;
        let lane = i64::try_from(job.lane).unwrap_or(i64::MAX);
        self.inner.store.put_lane_result(job.run, job.step, lane, value).await?;
        Ok(())
    }

    /// One lane: its sub-agent in a sandbox of its own, and its result kept.
    async fn work_lane(&self, agent: &Arc<Agent>, job: &LaneJob, cancel: Arc<AtomicBool>) -> Result<(), RunError> {
        let store = &self.inner.store;
        let lane = i64::try_from(job.lane).unwrap_or(i64::MAX);
        if store.lane_result(job.run, job.step, lane).await?.is_some() {
            return Ok(()); // worked already (a batch run again)
        }
        let run = store.run(job.run).await?;
        if run.status.is_terminal() {
            return Ok(());
        }
        let thread = store.thread(run.thread_id).await?;
        let project = store.project(thread.project_id).await?;
        let mut request = NewSandbox { project: Some(project.id), ..NewSandbox::for_owner(run.created_by) };
        request.policy.packages = project.package_policy();
        let sandbox = match agent.services.sandboxes.create(request).await {
            Ok(info) => info.id,
            Err(SandboxError::Unavailable(why) | SandboxError::CapReached(why)) => {
                return Err(RunError::SandboxUnavailable(format!("no sandbox for the task yet: {why}")));
            }
            Err(other) => {
                let mut state = job.state.clone();
                state.task_failure = Some(format!("no sandbox for the task: {}", other.detail()));
                return self.store_lane(job, &state).await;
            }
        };
        let context = self.run_context(&run, &project, sandbox, true);
        let events =
            StoreEvents { fence: None, stop: Some(cancel.clone()), ..self.events(run.thread_id, Some(run.id)) };
        let ctx = StepContext::new(run.id.to_string(), job.step, "dispatch", cancel);
        let done = agent.work_lane(job.state.clone(), &context, &events, ctx).await;
        if let Err(error) = agent.services.sandboxes.destroy(sandbox).await {
            tracing::warn!(error = %error.detail(), "a task's sandbox could not be removed");
        }
        let state = match done {
            Ok(state) => state,
            // The database away: the lane is worked again.
            Err(AgentError::Store(error @ cairn_core::Error::Unavailable { .. })) => return Err(error.into()),
            Err(error) => {
                let mut state = job.state.clone();
                state.task_failure = Some(format!("the task failed: {error}"));
                state
            }
        };
        self.store_lane(job, &state).await
    }
}
