//! The graph runtime: edges of every kind, a checkpoint per step, resuming
//! after a failure without repeating finished steps, interrupts, cancel,
//! forks, a store outage — and checkpoints in the real store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cairn_agent::graph::{
    CheckpointError, Checkpointer, Control, Edge, Graph, GraphError, MemoryCheckpointer, Outcome, Position, Step,
    StoreCheckpointer, fork,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Counter {
    n: i64,
    trail: Vec<String>,
    answer: Option<String>,
}

fn visit(state: &mut Counter, name: &str) {
    state.trail.push(name.to_owned());
}

/// start → add (loops while n < 3) → finish
fn looping() -> Graph<Counter> {
    Graph::new("start")
        .node("start", |mut s: Counter, _| async move {
            visit(&mut s, "start");
            Ok(Step::next(s))
        })
        .node("add", |mut s: Counter, _| async move {
            s.n += 1;
            visit(&mut s, "add");
            Ok(Step::next(s))
        })
        .node("finish", |mut s: Counter, _| async move {
            visit(&mut s, "finish");
            Ok(Step::next(s))
        })
        .edge("start", Edge::To("add".into()))
        .edge("add", Edge::Branch(Arc::new(|s: &Counter| Some(if s.n < 3 { "add" } else { "finish" }.to_owned()))))
        .edge("finish", Edge::End)
}

fn never() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[tokio::test]
async fn a_run_follows_its_edges_and_checkpoints_every_step() {
    let checkpoints = MemoryCheckpointer::default();
    let outcome = looping().run("r1", &checkpoints, Counter::default(), None, never()).await.unwrap();
    let Outcome::Finished(state) = outcome else { panic!("{outcome:?}") };
    assert_eq!(state.trail, ["start", "add", "add", "add", "finish"]);
    let saved = checkpoints.all("r1").await;
    assert_eq!(saved.iter().map(|(step, _)| *step).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    let (after_two, position) = Graph::<Counter>::decode(&saved[1].1).unwrap();
    assert_eq!((after_two.n, position.next.as_deref()), (1, Some("add")));
    assert_eq!(Graph::<Counter>::decode(&saved[4].1).unwrap().1.next, None, "the last checkpoint says the run is done");
}

#[tokio::test]
async fn a_failed_run_resumes_from_its_last_checkpoint_without_repeating_steps() {
    let calls = Arc::new(AtomicUsize::new(0));
    let fail_once = Arc::new(AtomicBool::new(true));
    let (counted, failing) = (calls.clone(), fail_once.clone());
    let graph = looping().node("add", move |mut s: Counter, ctx| {
        let (counted, failing) = (counted.clone(), failing.clone());
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            if s.n == 2 && failing.swap(false, Ordering::SeqCst) {
                return Err(format!("the process died in step {}", ctx.step).into());
            }
            s.n += 1;
            visit(&mut s, "add");
            Ok(Step::next(s))
        }
    });
    let checkpoints = MemoryCheckpointer::default();
    let failed = graph.run("r2", &checkpoints, Counter::default(), None, never()).await.unwrap_err();
    assert_eq!(failed.to_string(), "node `add` failed: the process died in step 4");
    let resumed = graph.run("r2", &checkpoints, Counter::default(), None, never()).await.unwrap();
    let Outcome::Finished(state) = resumed else { panic!() };
    assert_eq!(state.trail, ["start", "add", "add", "add", "finish"], "the same result as an unbroken run");
    assert_eq!(calls.load(Ordering::SeqCst), 4, "three adds and the one retried; none repeated");
}

#[tokio::test]
async fn an_interrupt_waits_for_a_person_and_resumes_with_the_answer() {
    let graph = Graph::new("ask")
        .node("ask", |s: Counter, _| async move {
            Ok(Step {
                state: s,
                control: Control::Interrupt { question: json!("Which colour?"), resume_at: "use".into() },
            })
        })
        .node("use", |mut s: Counter, _| async move {
            let painted = format!("painted {}", s.answer.clone().unwrap_or_default());
            visit(&mut s, &painted);
            Ok(Step::next(s))
        });
    let checkpoints = MemoryCheckpointer::default();
    let outcome = graph.run("r4", &checkpoints, Counter::default(), None, never()).await.unwrap();
    assert_eq!(outcome, Outcome::Interrupted { state: Counter::default(), question: json!("Which colour?") });
    let latest = checkpoints.latest("r4").await.unwrap().unwrap();
    let (mut state, position) = Graph::<Counter>::decode(&latest).unwrap();
    assert_eq!(position, Position { next: Some("use".into()), step: 1, interrupt: Some(json!("Which colour?")) });
    state.answer = Some("red".into());
    let Outcome::Finished(done) =
        graph.run("r4", &checkpoints, Counter::default(), Some((state, position)), never()).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(done.trail, ["painted red"]);
}

#[tokio::test]
async fn a_cancelled_run_stops_between_steps_and_a_fork_goes_its_own_way() {
    let cancel = Arc::new(AtomicBool::new(false));
    let stop = cancel.clone();
    let graph = looping().node("add", move |mut s: Counter, _| {
        let stop = stop.clone();
        async move {
            s.n += 1;
            visit(&mut s, "add");
            if s.n == 2 {
                stop.store(true, Ordering::SeqCst); // someone presses cancel
            }
            Ok(Step::next(s))
        }
    });
    let checkpoints = MemoryCheckpointer::default();
    let Outcome::Cancelled(state) =
        graph.run("r5", &checkpoints, Counter::default(), None, cancel.clone()).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(state.n, 2);

    // Fork after step 2 (one add) into a new run, which completes on its own.
    fork(&checkpoints, "r5", 2, "r5-fork").await.unwrap();
    let Outcome::Finished(forked) =
        looping().run("r5-fork", &checkpoints, Counter::default(), None, never()).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(forked.trail, ["start", "add", "add", "add", "finish"]);
    let missing = fork(&checkpoints, "r5", 99, "x").await.unwrap_err();
    assert!(matches!(missing, GraphError::Checkpoint(CheckpointError::Missing { step: 99, .. })), "{missing:?}");
}

/// A checkpointer whose store is out of reach for one write.
struct Outage {
    inner: MemoryCheckpointer,
    fail_at_step: i64,
    failed: AtomicBool,
}

#[async_trait::async_trait]
impl Checkpointer for Outage {
    async fn save(&self, run: &str, step: i64, checkpoint: serde_json::Value) -> Result<(), CheckpointError> {
        if step == self.fail_at_step && !self.failed.swap(true, Ordering::SeqCst) {
            let reason = "connection refused".to_owned();
            return Err(cairn_core::Error::Unavailable { dependency: cairn_core::Dependency::Database, reason }.into());
        }
        self.inner.save(run, step, checkpoint).await
    }

    async fn latest(&self, run: &str) -> Result<Option<serde_json::Value>, CheckpointError> {
        self.inner.latest(run).await
    }

    async fn at(&self, run: &str, step: i64) -> Result<Option<serde_json::Value>, CheckpointError> {
        self.inner.at(run, step).await
    }
}

#[tokio::test]
async fn a_nodes_own_error_reaches_the_caller_whole() {
    let graph = looping().node("add", |_: Counter, _| async move {
        let outage = cairn_core::Error::Unavailable {
            dependency: cairn_core::Dependency::Database,
            reason: "connection refused".into(),
        };
        Err::<Step<Counter>, _>(outage.into())
    });
    let checkpoints = MemoryCheckpointer::default();
    let error = graph.run("r7", &checkpoints, Counter::default(), None, never()).await.unwrap_err();
    // The caller can tell what went wrong, not only read it.
    let GraphError::Node { node, source } = &error else { panic!("{error:?}") };
    assert_eq!(node, "add");
    assert!(matches!(source.downcast_ref::<cairn_core::Error>(), Some(cairn_core::Error::Unavailable { .. })));
    assert!(error.to_string().starts_with("node `add` failed: "), "{error}");
}

#[tokio::test]
async fn a_store_outage_is_a_typed_error_and_the_run_goes_on_from_its_last_checkpoint() {
    let checkpoints = Outage { inner: MemoryCheckpointer::default(), fail_at_step: 3, failed: AtomicBool::new(false) };
    let error = looping().run("r6", &checkpoints, Counter::default(), None, never()).await.unwrap_err();
    // The run service tells this apart from a broken run: it retries the job
    // later instead of failing the run.
    assert!(
        matches!(error, GraphError::Checkpoint(CheckpointError::Store(cairn_core::Error::Unavailable { .. }))),
        "{error:?}"
    );
    assert_eq!(checkpoints.inner.all("r6").await.len(), 2, "steps 1 and 2 were saved before the outage");
    let Outcome::Finished(state) = looping().run("r6", &checkpoints, Counter::default(), None, never()).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(state.trail, ["start", "add", "add", "add", "finish"], "the same result as an unbroken run");
}

#[tokio::test]
async fn a_store_checkpointer_refuses_a_name_that_is_not_a_run_id() {
    let dir = cairn_testkit::TempDir::new("graph-name");
    let db = cairn_store::Database::open(&dir.sqlite_url(), &Default::default()).await.unwrap();
    db.migrate().await.unwrap();
    let checkpoints = StoreCheckpointer { store: db.store(), fence: None };
    let error = looping().run("not-a-run", &checkpoints, Counter::default(), None, never()).await.unwrap_err();
    assert!(matches!(error, GraphError::Checkpoint(CheckpointError::NotARun(ref name)) if name == "not-a-run"));
}

#[tokio::test]
async fn checkpoints_live_in_the_store() {
    use cairn_core::model::NewRun;
    let dir = cairn_testkit::TempDir::new("graph");
    let db = cairn_store::Database::open(&dir.sqlite_url(), &Default::default()).await.unwrap();
    db.migrate().await.unwrap();
    let store = db.store();
    let seeded = cairn_testkit::seed::owner_with_thread(&*store, "a@example.com").await;
    let run = store
        .create_run(NewRun { thread_id: seeded.thread.id, created_by: seeded.user.id, trace_parent: None })
        .await
        .unwrap();
    let fence = store.claim_run(run.id).await.unwrap();
    let checkpoints = StoreCheckpointer { store: store.clone(), fence: Some(fence) };
    let Outcome::Finished(state) =
        looping().run(&run.id.to_string(), &checkpoints, Counter::default(), None, never()).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(state.n, 3);
    assert_eq!(store.checkpoints(run.id).await.unwrap().len(), 5);
    assert!(checkpoints.at(&run.id.to_string(), 3).await.unwrap().is_some());

    // A worker whose claim was superseded by another's: its first save is
    // refused and the run stops there, leaving no checkpoint behind.
    let taken = store
        .create_run(NewRun { thread_id: seeded.thread.id, created_by: seeded.user.id, trace_parent: None })
        .await
        .unwrap();
    let stale = store.claim_run(taken.id).await.unwrap();
    store.claim_run(taken.id).await.unwrap();
    let checkpoints = StoreCheckpointer { store: store.clone(), fence: Some(stale) };
    let error =
        looping().run(&taken.id.to_string(), &checkpoints, Counter::default(), None, never()).await.unwrap_err();
    assert!(
        matches!(error, GraphError::Checkpoint(CheckpointError::Store(cairn_core::Error::LeaseLost { .. }))),
        "{error:?}"
    );
    assert!(store.checkpoints(taken.id).await.unwrap().is_empty());
}
