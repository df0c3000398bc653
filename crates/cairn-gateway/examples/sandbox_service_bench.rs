//! Sandbox service benchmark: what a worker sees. Creating a sandbox (from
//! the warm pool) until the first `print(1)` result, and execute round trips
//! of trivial code — through the local backend in-process, and through the
//! sandbox host's HTTP API with its client. Run by `bench/run.sh`; prints
//! one JSON object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::UserId;
use cairn_core::sandbox::{Execution, NewSandbox, Output, Sandboxes};
use cairn_sandbox::{LocalConfig, LocalSandboxes, RemoteSandboxes};

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn python(code: &str) -> Execution {
    Execution::Python { code: code.to_owned() }
}

/// Creates `count` sandboxes one after the other (letting the pool refill
/// between them, as between real threads) and runs `print(1)` in each.
async fn creates(sandboxes: &dyn Sandboxes, local: &LocalSandboxes, count: usize) -> Vec<f64> {
    let mut samples = Vec::new();
    for _ in 0..count {
        while local.warm() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let request = NewSandbox::for_owner(UserId::new());
        let info = sandboxes.create(request).await.unwrap();
        let first = sandboxes.execute(info.id, python("print(1)"), &mut |_: &Output| {}).await.unwrap();
        assert_eq!(first.stream("stdout"), "1\n");
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        sandboxes.destroy(info.id).await.unwrap();
    }
    samples
}

async fn round_trips(sandboxes: &dyn Sandboxes, count: usize) -> Vec<f64> {
    let request = NewSandbox::for_owner(UserId::new());
    let id = sandboxes.create(request).await.unwrap().id;
    for _ in 0..100 {
        sandboxes.execute(id, python("1"), &mut |_: &Output| {}).await.unwrap();
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        sandboxes.execute(id, python("x = 1"), &mut |_: &Output| {}).await.unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    sandboxes.destroy(id).await.unwrap();
    samples
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let starts: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(20);
    let executions: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let root = std::env::temp_dir().join(format!("cairn-sandbox-bench-{}", std::process::id()));
    let mut config = LocalConfig::new(root.clone());
    config.pool_size = 4;
    config.max_running_per_user = 64;
    let local = LocalSandboxes::start(config).await.expect("bubblewrap and python3");

    let mut http_config = cairn_config::Config::default();
    http_config.sandbox.host_token = "benchmark-service-credential-0123456789".into();
    let app = cairn_gateway::sandbox_host_app(&http_config, Arc::new(local.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(cairn_gateway::serve(listener, app, std::future::pending()));
    let remote = RemoteSandboxes::new(&base, http_config.sandbox.host_token.expose()).unwrap();

    let mut local_create = creates(&local, &local, starts).await;
    let mut local_exec = round_trips(&local, executions).await;
    let mut http_create = creates(&remote, &local, starts).await;
    let mut http_exec = round_trips(&remote, executions).await;
    local.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "{{\"local_create_p50_ms\": {:.2}, \"local_create_p99_ms\": {:.2}, \"local_exec_p50_ms\": {:.3}, \"local_exec_p99_ms\": {:.3}, \"http_create_p50_ms\": {:.2}, \"http_create_p99_ms\": {:.2}, \"http_exec_p50_ms\": {:.3}, \"http_exec_p99_ms\": {:.3}}}",
        percentile(&mut local_create.clone(), 0.5),
        percentile(&mut local_create, 0.99),
        percentile(&mut local_exec.clone(), 0.5),
        percentile(&mut local_exec, 0.99),
        percentile(&mut http_create.clone(), 0.5),
        percentile(&mut http_create, 0.99),
        percentile(&mut http_exec.clone(), 0.5),
        percentile(&mut http_exec, 0.99),
    );
}
