//! A small durable graph runtime (LangGraph's ideas, Rust's types): a typed
//! state, nodes as async functions returning the next state, and edges that
//! are fixed or conditional. (Work that fans out — a plan's independent
//! tasks — runs inside one node, where the number of branches is known.)
//! After every step the state and the position
//! are written as a checkpoint, so a run can stop anywhere — a crash, an
//! interrupt waiting for a person, a cancel — and go on from its last
//! checkpoint, or be forked from any earlier one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::Instrument;

/// What a graph's state must be: cloneable and serializable (checkpoints).
pub trait GraphState: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> GraphState for T {}

/// What a node decided beyond its new state.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Follow the node's edge.
    Continue,
    /// Stop here and wait for a person: the run is suspended with this
    /// question, and resumes at `resume_at` with the answer.
    Interrupt { question: Value, resume_at: String },
    /// End the run now.
    End,
}

/// A node's result.
#[derive(Debug, Clone)]
pub struct Step<S> {
    pub state: S,
    pub control: Control,
}

impl<S> Step<S> {
    pub fn next(state: S) -> Step<S> {
        Step { state, control: Control::Continue }
    }
}

/// What a node sees besides the state.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The run's id (as text), for idempotency keys and events.
    pub run: String,
    /// This step's number (steps count from 1).
    pub step: i64,
    pub node: String,
    cancelled: Arc<AtomicBool>,
}

impl StepContext {
    /// The context of `step` of `run` at `node`, stopping when `cancelled`
    /// is raised (for work a step hands to another worker).
    pub fn new(run: String, step: i64, node: &str, cancelled: Arc<AtomicBool>) -> StepContext {
        StepContext { run, step, node: node.to_owned(), cancelled }
    }

    /// A key unique to this step of this run: a side effect done under it
    /// can be recognised, and not repeated, if the step runs again after a
    /// crash.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.run, self.step, self.node)
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// A node's step failed; `source` is the node's own error, kept whole so
    /// the caller can tell a store outage from a step that cannot be done.
    #[error("node `{node}` failed: {source}")]
    Node {
        node: String,
        #[source]
        source: NodeError,
    },
    #[error("the graph has no node `{0}`")]
    UnknownNode(String),
    #[error("the checkpoint could not be saved or read: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("the run took more than {0} steps")]
    TooManySteps(i64),
}

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store failed (out of reach, or the run is gone).
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
    /// The store keeps checkpoints by run id; this name is not one.
    #[error("`{0}` is not a run id")]
    NotARun(String),
    /// The checkpoint does not hold this graph's state.
    #[error("the checkpoint does not fit the graph's state: {0}")]
    Format(#[from] serde_json::Error),
    /// A fork from a step the run has no checkpoint of.
    #[error("run {run} has no checkpoint after step {step}")]
    Missing { run: String, step: i64 },
}

/// What a node's step failed with: the node's own error type, boxed.
pub type NodeError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub type NodeFn<S> = Arc<dyn Fn(S, StepContext) -> BoxFuture<'static, Result<Step<S>, NodeError>> + Send + Sync>;
pub type Router<S> = Arc<dyn Fn(&S) -> Option<String> + Send + Sync>;

/// Where a node leads.
#[derive(Clone)]
pub enum Edge<S> {
    To(String),
    /// The router picks the next node (`None`: the end).
    Branch(Router<S>),
    End,
}

impl<S> std::fmt::Debug for Edge<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Edge::To(next) => write!(f, "To({next})"),
            Edge::Branch(_) => f.write_str("Branch"),
            Edge::End => f.write_str("End"),
        }
    }
}

/// Where a run stands: the next node (`None`: finished) after `step` steps.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub next: Option<String>,
    pub step: i64,
    /// The question a suspended run waits on.
    #[serde(default)]
    pub interrupt: Option<Value>,
}

/// Saves and loads checkpoints (the store's run repository in Cairn; a map
/// in tests).
#[async_trait]
pub trait Checkpointer: Send + Sync {
    async fn save(&self, run: &str, step: i64, checkpoint: Value) -> Result<(), CheckpointError>;
    async fn latest(&self, run: &str) -> Result<Option<Value>, CheckpointError>;
    /// The checkpoint written after step `step`.
    async fn at(&self, run: &str, step: i64) -> Result<Option<Value>, CheckpointError>;
}

/// Starts run `to` from run `from`'s checkpoint after `step`: the new run
/// goes on from there on its own (a fork into a new thread).
pub async fn fork(checkpoints: &dyn Checkpointer, from: &str, step: i64, to: &str) -> Result<(), GraphError> {
    let checkpoint =
        checkpoints.at(from, step).await?.ok_or_else(|| CheckpointError::Missing { run: from.to_owned(), step })?;
    Ok(checkpoints.save(to, step, checkpoint).await?)
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<S> {
    Finished(S),
    Interrupted { state: S, question: Value },
    Cancelled(S),
}

/// A graph of nodes and edges over state `S`.
pub struct Graph<S> {
    nodes: HashMap<String, NodeFn<S>>,
    edges: HashMap<String, Edge<S>>,
    start: String,
    max_steps: i64,
}

impl<S> std::fmt::Debug for Graph<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut nodes: Vec<&String> = self.nodes.keys().collect();
        nodes.sort();
        f.debug_struct("Graph").field("start", &self.start).field("nodes", &nodes).finish()
    }
}

impl<S: GraphState> Graph<S> {
    pub fn new(start: &str) -> Graph<S> {
        Graph { nodes: HashMap::new(), edges: HashMap::new(), start: start.to_owned(), max_steps: 10_000 }
    }

    /// Adds a node.
    pub fn node<F, Fut>(mut self, name: &str, run: F) -> Self
    where
        F: Fn(S, StepContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Step<S>, NodeError>> + Send + 'static,
    {
        self.nodes.insert(name.to_owned(), Arc::new(move |state, ctx| Box::pin(run(state, ctx))));
        self
    }

    pub fn edge(mut self, from: &str, edge: Edge<S>) -> Self {
        self.edges.insert(from.to_owned(), edge);
        self
    }

    pub fn max_steps(mut self, steps: i64) -> Self {
        self.max_steps = steps;
        self
    }

    fn node_fn(&self, name: &str) -> Result<NodeFn<S>, GraphError> {
        self.nodes.get(name).cloned().ok_or_else(|| GraphError::UnknownNode(name.to_owned()))
    }

    /// The state and position a checkpoint holds.
    pub fn decode(checkpoint: &Value) -> Result<(S, Position), GraphError> {
        let state = serde_json::from_value(checkpoint["state"].clone()).map_err(CheckpointError::from)?;
        let position = serde_json::from_value(checkpoint["position"].clone()).map_err(CheckpointError::from)?;
        Ok((state, position))
    }

    fn encode(state: &S, position: &Position) -> Result<Value, GraphError> {
        let state = serde_json::to_value(state).map_err(CheckpointError::from)?;
        Ok(json!({ "state": state, "position": position }))
    }

    /// Runs from `from` (a position and state to start at) or, without it,
    /// from the run's latest checkpoint, or from the start with `initial`.
    /// Writes a checkpoint after every step.
    pub async fn run(
        &self,
        run: &str,
        checkpoints: &dyn Checkpointer,
        initial: S,
        from: Option<(S, Position)>,
        cancelled: Arc<AtomicBool>,
    ) -> Result<Outcome<S>, GraphError> {
        let (mut state, mut position) = match from {
            Some(start) => start,
            None => match checkpoints.latest(run).await? {
                Some(checkpoint) => Self::decode(&checkpoint)?,
                None => (initial, Position { next: Some(self.start.clone()), step: 0, interrupt: None }),
            },
        };
        position.interrupt = None;
        while let Some(node) = position.next.clone() {
            if cancelled.load(Ordering::SeqCst) {
                return Ok(Outcome::Cancelled(state));
            }
            if position.step >= self.max_steps {
                return Err(GraphError::TooManySteps(self.max_steps));
            }
            let ctx = StepContext {
                run: run.to_owned(),
                step: position.step + 1,
                node: node.clone(),
                cancelled: cancelled.clone(),
            };
            let started = std::time::Instant::now();
            let span = tracing::info_span!("agent.step", otel.name = %format!("step {node}"), cairn.step = ctx.step, cairn.node = %node);
            let step = self.node_fn(&node)?(state, ctx.clone())
                .instrument(span.clone())
                .await
                .map_err(|source| GraphError::Node { node: node.clone(), source })?;
            state = step.state;
            let mut question = None;
            let next = match step.control {
                Control::End => None,
                Control::Interrupt { question: asked, resume_at } => {
                    question = Some(asked);
                    Some(resume_at)
                }
                Control::Continue => match self.edges.get(&node).cloned().unwrap_or(Edge::End) {
                    Edge::To(next) => Some(next),
                    Edge::Branch(router) => router(&state),
                    Edge::End => None,
                },
            };
            position = Position { next, step: position.step + 1, interrupt: question.clone() };
            checkpoints.save(run, position.step, Self::encode(&state, &position)?).instrument(span).await?;
            // The node's work and its checkpoint.
            metrics::histogram!("cairn_agent_step_seconds", "node" => node.clone())
                .record(started.elapsed().as_secs_f64());
            if let Some(question) = question {
                return Ok(Outcome::Interrupted { state, question });
            }
        }
        Ok(Outcome::Finished(state))
    }
}

/// Checkpoints in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryCheckpointer {
    saved: tokio::sync::Mutex<HashMap<String, Vec<(i64, Value)>>>,
}

impl MemoryCheckpointer {
    /// Every checkpoint of a run, by step.
    pub async fn all(&self, run: &str) -> Vec<(i64, Value)> {
        self.saved.lock().await.get(run).cloned().unwrap_or_default()
    }
}

#[async_trait]
impl Checkpointer for MemoryCheckpointer {
    async fn save(&self, run: &str, step: i64, checkpoint: Value) -> Result<(), CheckpointError> {
        let mut saved = self.saved.lock().await;
        let list = saved.entry(run.to_owned()).or_default();
        list.retain(|(s, _)| *s != step);
        list.push((step, checkpoint));
        list.sort_by_key(|(s, _)| *s);
        Ok(())
    }

    async fn latest(&self, run: &str) -> Result<Option<Value>, CheckpointError> {
        Ok(self.saved.lock().await.get(run).and_then(|list| list.last().map(|(_, c)| c.clone())))
    }

    async fn at(&self, run: &str, step: i64) -> Result<Option<Value>, CheckpointError> {
        let saved = self.saved.lock().await;
        Ok(saved.get(run).and_then(|list| list.iter().find(|(s, _)| *s == step).map(|(_, c)| c.clone())))
    }
}

/// Checkpoints in Cairn's store (one per step of a run).
#[derive(Debug, Clone)]
pub struct StoreCheckpointer {
    pub store: Arc<dyn cairn_core::store::Store>,
    /// The worker's claim on the run: its saves are refused once another
    /// worker has taken the run over.
    pub fence: Option<cairn_core::model::Fence>,
}

#[async_trait]
impl Checkpointer for StoreCheckpointer {
    async fn save(&self, run: &str, step: i64, state: Value) -> Result<(), CheckpointError> {
        let run_id = run_id(run)?;
        self.store.put_checkpoint(cairn_core::model::NewCheckpoint { run_id, step, state }, self.fence).await?;
        Ok(())
    }

    async fn latest(&self, run: &str) -> Result<Option<Value>, CheckpointError> {
        Ok(self.store.latest_checkpoint(run_id(run)?).await?.map(|c| c.state))
    }

    async fn at(&self, run: &str, step: i64) -> Result<Option<Value>, CheckpointError> {
        let all = self.store.checkpoints(run_id(run)?).await?;
        Ok(all.into_iter().find(|c| c.step == step).map(|c| c.state))
    }
}

fn run_id(run: &str) -> Result<cairn_core::RunId, CheckpointError> {
    run.parse().map_err(|_| CheckpointError::NotARun(run.to_owned()))
}
