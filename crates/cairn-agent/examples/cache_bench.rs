//! Prompt-cache benchmark (run by `bench/run.sh`; prints one JSON object):
//! a 10-step CodeAct run — the real agent, a real sandbox, the scripted LLM
//! server standing in for the provider — once on an Anthropic model and once
//! on an OpenAI model. It reports
//!
//! - the share of each request's prompt that is an unchanged prefix of the
//!   previous request's (what a provider's prompt cache can serve), and
//! - the run's cost at the family's list prices as billed (cache reads and
//!   writes at their own rates, as the scripted server reports them the way
//!   each provider does) and as it would be without caching.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cairn_core::model::RunStatus;
use cairn_testkit::{Reply, ScriptedLlm};
use serde_json::Value;

const STEPS: usize = 10;

/// The prompt of a request as one text, in order: what a cache compares.
fn prompt_text(body: &Value) -> String {
    let text = |content: &Value| match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    };
    let mut all = text(&body["system"]);
    for message in body["messages"].as_array().into_iter().flatten() {
        all.push_str(&format!("\n[{}]\n{}", message["role"].as_str().unwrap_or(""), text(&message["content"])));
    }
    all
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

struct Outcome {
    /// Per request after the first: unchanged prefix / whole prompt.
    shares: Vec<f64>,
    /// Requests that begin with the whole previous request (append-only).
    appended: usize,
    cost: f64,
    uncached_cost: f64,
}

async fn run(kind: &str, model: &str) -> Outcome {
    let root = std::env::temp_dir().join(format!("cairn-cache-bench-{}-{kind}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let db = cairn_store::Database::open(&format!("sqlite://{}/bench.db", root.display()), &Default::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let store = db.store();
    let llm = ScriptedLlm::start(Vec::new()).await;
    // Nine steps that look at data (each prints a table, as analyses do), then the answer.
    for step in 1..STEPS {
        llm.push(Reply::Text(format!(
            "Looking at part {step}.\n```python\nfor i in range(25):\n    print('row', i, 'value', i * {step}, 'ok')\n```"
        )));
    }
    llm.push(Reply::Text("```python\nfinal_answer('done')\n```".into()));
    let base_url = if kind == "anthropic" { llm.url.clone() } else { format!("{}/v1", llm.url) };
    let config = cairn_config::LlmConfig {
        providers: vec![cairn_config::LlmProvider {
            name: kind.into(),
            kind: kind.into(),
            base_url,
            api_key: "bench".into(),
            models: vec![cairn_config::LlmModel { name: model.into(), ..Default::default() }],
            ..Default::default()
        }],
        discover: false,
        ..Default::default()
    };
    let registry = Arc::new(cairn_tools::Registry::builtin());
    let mut local = cairn_sandbox::LocalConfig::new(root.join("sandboxes"));
    local.pool_size = 1;
    local.prelude = Some(registry.python_prelude());
    let sandboxes = cairn_sandbox::LocalSandboxes::start(local).await.unwrap();
    let services =
        cairn_tools::Services::from_config(&Default::default(), Arc::new(sandboxes.clone()), None).await.unwrap();
    let agent = cairn_agent::Agent {
        models: Arc::new(cairn_llm::Models::from_config(&config).unwrap()),
        registry,
        services,
        store: store.clone(),
        keys: None,
    };
    let bus = cairn_bus::in_process(db.queue(Default::default()));
    let runs = cairn_agent::Runs::new(store.clone(), bus, Arc::new(agent), Default::default(), Duration::from_secs(60));
    runs.start_workers("bench", 1);
    let seeded = cairn_testkit::seed::owner_with_thread(&*store, &format!("{kind}@bench.example")).await;
    let (user, thread) = (seeded.user.id, seeded.thread.id);
    let task = "Go through the ten parts of the data one by one and tell me when you are done.";
    let id = runs.post(thread, user, task.into(), true).await.unwrap().1.unwrap().id;
    let settled = runs.settle(id, Duration::from_secs(300)).await.unwrap();
    assert_eq!(settled.status, RunStatus::Succeeded, "{settled:?}");
    let events = store.events_after(thread, 0, 10_000).await.unwrap();
    let (mut cost, mut saved) = (0.0, 0.0);
    for event in events.iter().filter(|e| e.kind == "usage") {
        cost += event.payload["cost_usd"].as_f64().unwrap_or(0.0);
        saved += event.payload["saved_usd"].as_f64().unwrap_or(0.0);
    }
    let prompts: Vec<String> = llm.received().iter().map(|r| prompt_text(&r.body)).collect();
    let shares = prompts.windows(2).map(|w| common_prefix(&w[0], &w[1]) as f64 / w[1].len() as f64).collect();
    let appended = prompts.windows(2).filter(|w| w[1].starts_with(&w[0])).count();
    sandboxes.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    Outcome { shares, appended, cost, uncached_cost: cost + saved }
}

#[tokio::main]
async fn main() {
    let anthropic = run("anthropic", "claude-sonnet-4-5").await;
    let openai = run("openai", "gpt-4.1").await;
    let min = |shares: &[f64]| shares.iter().copied().fold(1.0, f64::min);
    let mean = |shares: &[f64]| shares.iter().sum::<f64>() / shares.len() as f64;
    println!(
        "{{\"steps\": {STEPS}, \"requests\": {}, \"append_only\": {}, \"prefix_share_mean\": {:.4}, \
         \"prefix_share_min\": {:.4}, \
         \"anthropic_cost_usd\": {:.6}, \"anthropic_uncached_cost_usd\": {:.6}, \
         \"openai_cost_usd\": {:.6}, \"openai_uncached_cost_usd\": {:.6}}}",
        anthropic.shares.len() + 1,
        anthropic.appended + openai.appended == anthropic.shares.len() + openai.shares.len(),
        mean(&anthropic.shares),
        min(&anthropic.shares).min(min(&openai.shares)),
        anthropic.cost,
        anthropic.uncached_cost,
        openai.cost,
        openai.uncached_cost,
    );
}
