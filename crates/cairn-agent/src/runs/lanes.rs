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
use cairn_core::bus::Delivery;
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

/// A lane as queued. Version 1 was the same object without `version` (and
/// without the job's fence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct QueuedLane {
    #[serde(default = "QueuedLane::first_version")]
    version: u32,
    #[serde(flatten)]
    job: LaneJob,
    /// The W3C `traceparent` of the supervisor's step (traces on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace: Option<String>,
}

impl QueuedLane {
    const VERSION: u32 = 2;

    fn first_version() -> u32 {
        1
    }

    fn new(job: LaneJob, trace: Option<String>) -> QueuedLane {
        QueuedLane { version: QueuedLane::VERSION, job, trace }
    }

    fn encode(&self) -> Result<Vec<u8>, AgentError> {
        serde_json::to_vec(self).map_err(|e| AgentError::Failed(e.to_string()))
    }
}

/// What a worker makes of a queued lane.
#[derive(Debug, PartialEq)]
enum Taken {
    Lane(Box<QueuedLane>),
    /// Written by a newer version: left for a worker that reads it.
    Newer(u32),
    Unreadable,
}

impl Taken {
    fn of(payload: &[u8]) -> Taken {
        match serde_json::from_slice::<QueuedLane>(payload) {
            Ok(lane) if lane.version <= QueuedLane::VERSION => Taken::Lane(Box::new(lane)),
            Ok(lane) => Taken::Newer(lane.version),
            Err(_) => Taken::Unreadable,
        }
    }
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
            let payload = QueuedLane::new(job.clone(), cairn_core::trace::current()).encode()?;
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
            let QueuedLane { job, trace, .. } = match Taken::of(&delivery.payload) {
                Taken::Lane(lane) => *lane,
                // A rolling upgrade: a newer worker takes it (or, with none,
                // it ends among the dead letters after queue.max_deliveries).
                Taken::Newer(version) => {
                    tracing::warn!(version, "a queued task of a newer version; put back for a newer worker");
                    let why = format!("task version {version} is newer than this worker's");
                    let _ = self.inner.bus.queue.nack(&delivery, Duration::from_secs(5), &why).await;
                    continue;
                }
                Taken::Unreadable => {
                    tracing::warn!("a queued task could not be read; dropped");
                    let _ = self.inner.bus.queue.ack(&delivery).await;
                    continue;
                }
            };
            if delivery.exhausted {
                self.give_up_lane(&job, &delivery, &drain).await;
                continue;
            }
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

    /// A lane whose job came back exhausted (its workers died or stopped
    /// answering on every delivery): it ends failed, so the supervisor
    /// waiting for it goes on, rather than waiting for good.
    async fn give_up_lane(&self, job: &LaneJob, delivery: &Delivery, drain: &tokio::sync::watch::Receiver<Drain>) {
        let why = format!(
            "the task could not be worked: the worker holding it stopped answering on each of its {} deliveries",
            delivery.attempt.saturating_sub(1)
        );
        let lane = i64::try_from(job.lane).unwrap_or(i64::MAX);
        let reason = &why;
        let stored = self
            .set_aside(delivery, drain, &why, || async move {
                if self.inner.store.lane_result(job.run, job.step, lane).await?.is_some() {
                    return Ok(false); // worked already, its worker gone before saying so
                }
                let mut state = job.state.clone();
                state.task_failure = Some(reason.clone());
                self.store_lane(job, &state).await?;
                Ok(true)
            })
            .await;
        match stored {
            Ok(true) => {
                tracing::warn!(run = %job.run, lane = job.lane, "a task whose workers kept dying ended failed");
                metrics::counter!("cairn_lanes_total", "outcome" => "failed").increment(1);
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(run = %job.run, lane = job.lane, %error, "a task whose workers kept dying could not be marked failed");
            }
        }
    }

    async fn store_lane(&self, job: &LaneJob, state: &AgentState) -> Result<(), RunError> {
        let value = serde_json::to_value(state).map_err(|e| RunError::Conflict(e.to_string()))?;
        let lane = i64::try_from(job.lane).unwrap_or(i64::MAX);
        match self.inner.store.put_lane_result(job.run, job.step, lane, value, job.fence).await {
            // The run was taken over since the lane was queued: its new
            // holder queues the lane again, and this one is done with.
            Err(cairn_core::Error::LeaseLost { .. }) => {
                tracing::info!(run = %job.run, lane = job.lane, "the run was taken over; this task's result is dropped");
                Ok(())
            }
            other => Ok(other?),
        }
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
        let mut context = self.run_context(&run, &project, sandbox, true);
        context.fence = job.fence;
        // Fenced like the supervisor: once the run is taken over the lane's
        // next event is refused and the lane stops.
        let events =
            StoreEvents { fence: job.fence, stop: Some(cancel.clone()), ..self.events(run.thread_id, Some(run.id)) };
        let ctx = StepContext::new(run.id.to_string(), job.step, crate::codeact::Node::Dispatch.name(), cancel);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_tasks_of_this_and_the_first_version_read_and_newer_ones_wait() {
        let run = cairn_core::RunId::new();
        let fence = Some(cairn_core::model::Fence { run, generation: 3 });
        let job = LaneJob { run, step: 4, lane: 1, state: AgentState::default(), fence };
        let queued = QueuedLane::new(job.clone(), Some("00-trace-span-01".into()));
        let encoded = queued.encode().unwrap();
        assert_eq!(Taken::of(&encoded), Taken::Lane(Box::new(queued)));
        // Version 1 wrote the job and the trace without a version or a fence.
        let first = serde_json::json!({ "run": run, "step": 4, "lane": 1, "state": AgentState::default() });
        let read = Taken::of(first.to_string().as_bytes());
        let unfenced = LaneJob { fence: None, ..job };
        assert_eq!(read, Taken::Lane(Box::new(QueuedLane { version: 1, job: unfenced, trace: None })));
        let mut newer: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
        newer["version"] = serde_json::json!(QueuedLane::VERSION + 1);
        assert_eq!(Taken::of(newer.to_string().as_bytes()), Taken::Newer(QueuedLane::VERSION + 1));
        assert_eq!(Taken::of(b"{\"run\": \"not an id\"}"), Taken::Unreadable);
    }
}
