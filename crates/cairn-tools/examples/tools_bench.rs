//! Tool benchmark: the round trip of a tool call bridged from sandboxed
//! Python to the host and back, beside the same call made the usual other
//! way (an HTTP request from Python to a local tool server); and loading a
//! fixture page in the browser tool, beside fetching it with `web_fetch`.
//! Run by `bench/run.sh`; prints one JSON object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use cairn_core::UserId;
use cairn_core::sandbox::{Execution, NewSandbox, Sandboxes};
use cairn_sandbox::{LocalConfig, LocalSandboxes};
use cairn_tools::{Registry, Services, ToolBridge, ToolContext};
use serde_json::json;

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

const PAGE: &str = "<html><head><title>Fixture</title></head><body><article><h1>Fixture page</h1>\
    <p>Some text of the fixture site, long enough to count as an article for the reader view.</p>\
    <p><a href='/next'>next</a></p></article></body></html>";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let loads: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(50);
    let root = std::env::temp_dir().join(format!("cairn-tools-bench-{}", std::process::id()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = listener.local_addr().unwrap();
    let router =
        Router::new().route("/", get(|| async { Html(PAGE) })).route("/tool", get(|| async { axum::Json(json!([])) }));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let registry = Registry::builtin();
    let mut local = LocalConfig::new(root.clone());
    local.pool_size = 0;
    local.prelude = Some(registry.python_prelude());
    let sandboxes = LocalSandboxes::start(local).await.expect("bubblewrap and python3");
    let config = cairn_config::ToolsConfig { allow_private: vec![site], ..Default::default() };
    let services = Services::from_config(&config, Arc::new(sandboxes.clone()), None).await.unwrap();
    let user = UserId::new();
    let sandbox = sandboxes.create(NewSandbox::for_owner(user));
    let sandbox = sandbox.await.unwrap().id;
    let ctx = ToolContext { services, sandbox, user, project: None, thread: None, run: None, fence: None };

    // Bridged: Python in the sandbox times each call of a cheap tool.
    let code = format!(
        "import time\nsamples = []\nfor _ in range({calls}):\n    t = time.perf_counter()\n    list_files()\n    \
         samples.append((time.perf_counter() - t) * 1000)\nsamples"
    );
    let mut bridge = ToolBridge { registry: &registry, context: ctx.clone(), on_output: Box::new(|_| {}) };
    let outcome = sandboxes.execute(sandbox, Execution::Python { code }, &mut bridge).await.unwrap();
    let text = outcome.result_text().unwrap().trim_matches(['[', ']']).to_owned();
    let mut bridged: Vec<f64> = text.split(", ").map(|v| v.parse().unwrap()).skip(100).collect();

    // Reference: the same call as an HTTP request from Python (urllib, the
    // host's interpreter) to a local tool server answering the same JSON.
    let reference = format!(
        "import time, urllib.request\nsamples = []\nfor i in range({calls}):\n    t = time.perf_counter()\n    \
         urllib.request.urlopen('http://{site}/tool').read()\n    samples.append((time.perf_counter() - t) * 1000)\n\
         print(' '.join(str(s) for s in samples[100:]))"
    );
    let output = tokio::process::Command::new("python3").args(["-c", &reference]).output().await.unwrap();
    let mut http: Vec<f64> =
        String::from_utf8_lossy(&output.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect();

    // The browser: open the fixture page (after one warm-up that starts Chromium).
    let url = format!("http://{site}/");
    registry.call(&ctx, "browser_open", json!([url]), json!({})).await.unwrap();
    let mut browser = Vec::new();
    for _ in 0..loads {
        let started = Instant::now();
        registry.call(&ctx, "browser_open", json!([url]), json!({})).await.unwrap();
        browser.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut fetch = Vec::new();
    for _ in 0..loads {
        let started = Instant::now();
        registry.call(&ctx, "web_fetch", json!([url]), json!({})).await.unwrap();
        fetch.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    sandboxes.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "{{\"bridged_p50_ms\": {:.3}, \"bridged_p99_ms\": {:.3}, \"http_reference_p50_ms\": {:.3}, \"http_reference_p99_ms\": {:.3}, \"browser_open_p50_ms\": {:.1}, \"browser_open_p99_ms\": {:.1}, \"web_fetch_p50_ms\": {:.2}, \"web_fetch_p99_ms\": {:.2}}}",
        percentile(&mut bridged.clone(), 0.5),
        percentile(&mut bridged, 0.99),
        percentile(&mut http.clone(), 0.5),
        percentile(&mut http, 0.99),
        percentile(&mut browser.clone(), 0.5),
        percentile(&mut browser, 0.99),
        percentile(&mut fetch.clone(), 0.5),
        percentile(&mut fetch, 0.99),
    );
}
