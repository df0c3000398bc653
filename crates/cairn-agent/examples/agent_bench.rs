//! Agent benchmarks (run by `bench/run.sh`; prints one JSON object):
//!
//! - graph step overhead: a two-node loop whose nodes do nothing, with a
//!   checkpoint in the store after every step — on SQLite and on
//!   PostgreSQL (`bench/graph_reference.py` runs the same graph on
//!   LangGraph with its SQLite and Postgres checkpointers);
//! - time to the first streamed token through Cairn's provider layer minus
//!   the same read straight from the scripted server;
//! - concurrent runs: N agent runs at once, each one model call (the
//!   scripted server answers after 200 ms) and one sandbox execution.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cairn_agent::graph::{Edge, Graph, Step, StoreCheckpointer};
use cairn_core::model::{NewProject, NewRun, NewThread, RunStatus};
use cairn_core::store::Store;
use cairn_llm::{ChatRequest, Message};
use cairn_testkit::{Reply, ScriptedLlm, seed};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

// The allocator of the `cairn` binary, so the steps are measured as Cairn
// runs them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Loop {
    n: u64,
    messages: Vec<String>,
}

/// An e-mail no earlier call gave: benchmarks share one store.
fn unique_email() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos:x}@bench.example")
}

/// Per-step times (ms) of a think/act loop whose nodes do nothing but note
/// the time: the gap between two nodes is one step's overhead — the
/// checkpoint write and the edge.
async fn graph_steps(store: Arc<dyn Store>, steps: u64) -> Vec<f64> {
    let seeded = seed::owner_with_thread(&*store, &unique_email()).await;
    let run = store
        .create_run(NewRun { thread_id: seeded.thread.id, created_by: seeded.user.id, trace_parent: None })
        .await
        .unwrap();
    let marks = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let (think_marks, act_marks) = (marks.clone(), marks.clone());
    let graph = Graph::new("think")
        .node("think", move |mut s: Loop, _| {
            let marks = think_marks.clone();
            async move {
                marks.lock().unwrap().push(Instant::now());
                s.messages.push("reply".into());
                Ok(Step::next(s))
            }
        })
        .node("act", move |mut s: Loop, _| {
            let marks = act_marks.clone();
            async move {
                marks.lock().unwrap().push(Instant::now());
                s.n += 1;
                Ok(Step::next(s))
            }
        })
        .edge("think", Edge::To("act".into()))
        .edge("act", Edge::Branch(Arc::new(move |s: &Loop| (s.n < steps / 2).then(|| "think".to_owned()))))
        .max_steps(1_000_000);
    let checkpoints = StoreCheckpointer { store: store.clone(), fence: Some(store.claim_run(run.id).await.unwrap()) };
    graph
        .run(&run.id.to_string(), &checkpoints, Loop::default(), None, Arc::new(AtomicBool::new(false)))
        .await
        .unwrap();
    let marks = marks.lock().unwrap();
    marks.windows(2).skip(20).map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0).collect()
}

/// Per agent step times (ms): think (a model call answered at once by the
/// scripted server, the conversation growing) then act (an observation
/// added), with a checkpoint after each; measured between two thinks.
async fn agent_steps(store: Arc<dyn Store>, model: Arc<dyn cairn_llm::ChatModel>, steps: u64) -> Vec<f64> {
    let seeded = seed::owner_with_thread(&*store, &unique_email()).await;
    let run = store
        .create_run(NewRun { thread_id: seeded.thread.id, created_by: seeded.user.id, trace_parent: None })
        .await
        .unwrap();
    let marks = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let think_marks = marks.clone();
    let graph = Graph::new("think")
        .node("think", move |mut s: Loop, _| {
            let (marks, model) = (think_marks.clone(), model.clone());
            async move {
                marks.lock().unwrap().push(Instant::now());
                let mut messages = vec![Message::user("Count to a thousand, one step at a time.")];
                for (i, text) in s.messages.iter().enumerate() {
                    messages.push(if i % 2 == 0 {
                        Message::assistant(text.clone())
                    } else {
                        Message::user(text.clone())
                    });
                }
                let request = ChatRequest {
                    model: "m".into(),
                    system: None,
                    messages,
                    max_tokens: 100,
                    temperature: None,
                    stop: Vec::new(),
                    ..cairn_llm::ChatRequest::default()
                };
                let reply = model.complete(&request).await.map_err(|e| e.to_string())?;
                s.messages.push(reply.text);
                Ok(Step::next(s))
            }
        })
        .node("act", |mut s: Loop, _| async move {
            s.n += 1;
            s.messages.push(format!("Observation: step {} done", s.n));
            Ok(Step::next(s))
        })
        .edge("think", Edge::To("act".into()))
        .edge("act", Edge::Branch(Arc::new(move |s: &Loop| (s.n < steps).then(|| "think".to_owned()))))
        .max_steps(1_000_000);
    let checkpoints = StoreCheckpointer { store: store.clone(), fence: Some(store.claim_run(run.id).await.unwrap()) };
    graph
        .run(&run.id.to_string(), &checkpoints, Loop::default(), None, Arc::new(AtomicBool::new(false)))
        .await
        .unwrap();
    let marks = marks.lock().unwrap();
    marks.windows(2).skip(10).map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let concurrent: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(32);
    let root = std::env::temp_dir().join(format!("cairn-agent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();

    // Graph steps, SQLite and PostgreSQL.
    let sqlite = cairn_store::Database::open(&format!("sqlite://{}/bench.db", root.display()), &Default::default())
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let mut on_sqlite = graph_steps(sqlite.store(), 1000).await;
    let pg = cairn_testkit::TestPostgres::create().await;
    let postgres = cairn_store::Database::open(&pg.url, &Default::default()).await.unwrap();
    postgres.migrate().await.unwrap();
    let mut on_postgres = graph_steps(postgres.store(), 1000).await;

    // First token: through Cairn's provider layer, and straight.
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(Reply::Text("```python\nx = 1\n```".into()));
    let config = cairn_config::LlmConfig {
        providers: vec![cairn_config::LlmProvider {
            name: "s".into(),
            kind: "openai-compatible".into(),
            base_url: format!("{}/v1", llm.url),
            api_key: Default::default(),
            api_version: String::new(),
            models: vec![cairn_config::LlmModel {
                name: "m".into(),
                input_usd_per_mtok: Some(0.0),
                output_usd_per_mtok: Some(0.0),
                context_tokens: 128_000,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    let models = cairn_llm::Models::from_config(&config).unwrap();
    let (model, _) = models.get(None).unwrap();
    let request = ChatRequest {
        model: "m".into(),
        system: None,
        messages: vec![Message::user("hi")],
        max_tokens: 10,
        temperature: None,
        stop: Vec::new(),
        ..cairn_llm::ChatRequest::default()
    };
    let raw = reqwest::Client::new();
    let body = serde_json::json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "stream": true });
    let mut through = Vec::new();
    let mut straight = Vec::new();
    for i in 0..600 {
        let t = Instant::now();
        let mut stream = model.stream(&request).await.unwrap();
        let _first = stream.next().await.unwrap().unwrap();
        let via_cairn = t.elapsed().as_secs_f64() * 1000.0;
        while stream.next().await.is_some() {}
        let t = Instant::now();
        let response = raw.post(format!("{}/v1/chat/completions", llm.url)).json(&body).send().await.unwrap();
        let mut bytes = response.bytes_stream();
        // The first chunk with content (the role chunk comes first).
        let mut seen = String::new();
        while !seen.contains("\"content\":\"```python") {
            seen.push_str(&String::from_utf8_lossy(&bytes.next().await.unwrap().unwrap()));
        }
        let direct = t.elapsed().as_secs_f64() * 1000.0;
        while bytes.next().await.is_some() {}
        if i >= 100 {
            through.push(via_cairn);
            straight.push(direct);
        }
    }
    let mut overhead: Vec<f64> = through.iter().zip(&straight).map(|(a, b)| a - b).collect();

    // Whole agent steps (model call + checkpoints), on SQLite and PostgreSQL.
    let mut agent_sqlite = agent_steps(sqlite.store(), model.clone(), 200).await;
    let mut agent_postgres = agent_steps(postgres.store(), model.clone(), 200).await;

    // Concurrent runs.
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(Reply::Slow {
        text: "```python\nfinal_answer('ok')\n```".into(),
        delay: Duration::from_millis(200),
    });
    let store = sqlite.store();
    let bus = cairn_bus::in_process(sqlite.queue(Default::default()));
    let registry = Arc::new(cairn_tools::Registry::builtin());
    let mut local = cairn_sandbox::LocalConfig::new(root.join("sandboxes"));
    local.pool_size = 4;
    local.max_running = concurrent + 8;
    local.max_running_per_user = concurrent + 8;
    local.prelude = Some(registry.python_prelude());
    let sandboxes = cairn_sandbox::LocalSandboxes::start(local).await.unwrap();
    let services =
        cairn_tools::Services::from_config(&Default::default(), Arc::new(sandboxes.clone()), None).await.unwrap();
    let config = cairn_config::LlmConfig {
        providers: vec![cairn_config::LlmProvider {
            base_url: format!("{}/v1", llm.url),
            ..config.providers[0].clone()
        }],
        ..Default::default()
    };
    let agent = cairn_agent::Agent {
        models: Arc::new(cairn_llm::Models::from_config(&config).unwrap()),
        registry,
        services,
        store: store.clone(),
        keys: None,
    };
    let runs = cairn_agent::Runs::new(store.clone(), bus, Arc::new(agent), Default::default(), Duration::from_secs(60));
    runs.start_workers("bench", concurrent);
    let user = seed::user(&*store, &unique_email()).await.id;
    let project = store.create_project(NewProject { name: "C".into(), owner: user }).await.unwrap().id;
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..concurrent {
        let thread = store
            .create_thread(NewThread { project_id: project, title: "C".into(), created_by: user, model: None })
            .await
            .unwrap()
            .id;
        ids.push(runs.post(thread, user, "go".into(), true).await.unwrap().1.unwrap().id);
    }
    let mut succeeded = 0;
    for id in &ids {
        if runs.settle(*id, Duration::from_secs(300)).await.unwrap().status == RunStatus::Succeeded {
            succeeded += 1;
        }
    }
    let all_done = started.elapsed().as_secs_f64();
    sandboxes.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "{{\"agent_step_sqlite_p50_ms\": {:.3}, \"agent_step_sqlite_p99_ms\": {:.3}, \"agent_step_postgres_p50_ms\": {:.3}, \"agent_step_postgres_p99_ms\": {:.3}, \"step_sqlite_p50_ms\": {:.3}, \"step_sqlite_p99_ms\": {:.3}, \"step_postgres_p50_ms\": {:.3}, \"step_postgres_p99_ms\": {:.3}, \"first_token_overhead_p50_ms\": {:.3}, \"first_token_overhead_p99_ms\": {:.3}, \"first_token_direct_p50_ms\": {:.3}, \"concurrent_runs\": {concurrent}, \"succeeded\": {succeeded}, \"seconds_for_all\": {all_done:.2}}}",
        percentile(&mut agent_sqlite.clone(), 0.5),
        percentile(&mut agent_sqlite, 0.99),
        percentile(&mut agent_postgres.clone(), 0.5),
        percentile(&mut agent_postgres, 0.99),
        percentile(&mut on_sqlite.clone(), 0.5),
        percentile(&mut on_sqlite, 0.99),
        percentile(&mut on_postgres.clone(), 0.5),
        percentile(&mut on_postgres, 0.99),
        percentile(&mut overhead.clone(), 0.5),
        percentile(&mut overhead, 0.99),
        percentile(&mut straight, 0.5),
    );
}
