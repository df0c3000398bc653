//! The E2B backend over loopback, against the stand-in that follows E2B's
//! API (`cairn_testkit::E2bStandIn`, which runs a plain Python process per
//! sandbox): create to the first `print(1)` result, execute round trips of
//! trivial code, and pause, then resume to a result. What it measures is
//! Cairn's client and E2B's protocol (HTTP calls, newline-delimited JSON),
//! not E2B's cloud, whose own start-up and network come on top. Run by
//! `bench/run.sh`; prints one JSON object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use cairn_core::UserId;
use cairn_core::sandbox::{EffectiveLimits, Execution, NewSandbox, Output, Sandboxes};
use cairn_sandbox::{E2bConfig, E2bSandboxes};

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn python(code: &str) -> Execution {
    Execution::Python { code: code.to_owned() }
}

fn millis(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let starts: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(20);
    let executions: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let stand_in = cairn_testkit::E2bStandIn::start().await;
    let sandboxes = E2bSandboxes::new(E2bConfig {
        api_url: stand_in.url.clone(),
        sandbox_url: stand_in.url.clone(),
        domain: "e2b.app".into(),
        api_key: stand_in.api_key.clone(),
        template: "code-interpreter-v1".into(),
        timeout_secs: 300,
        limits: EffectiveLimits {
            network: false,
            memory_bytes: 1 << 30,
            processes: 256,
            wall_time_secs: 120,
            disk_bytes: 1 << 30,
            output_bytes: 1 << 20,
            open_files: 1024,
        },
    })
    .unwrap();

    let mut cold = Vec::new();
    for _ in 0..starts {
        let started = Instant::now();
        let id = sandboxes.create(NewSandbox::for_owner(UserId::new())).await.unwrap().id;
        let first = sandboxes.execute(id, python("print(1)"), &mut |_: &Output| {}).await.unwrap();
        assert_eq!(first.stream("stdout"), "1\n");
        cold.push(millis(started));
        sandboxes.destroy(id).await.unwrap();
    }

    let id = sandboxes.create(NewSandbox::for_owner(UserId::new())).await.unwrap().id;
    for _ in 0..100 {
        sandboxes.execute(id, python("1"), &mut |_: &Output| {}).await.unwrap();
    }
    let mut round_trips = Vec::with_capacity(executions);
    for _ in 0..executions {
        let started = Instant::now();
        sandboxes.execute(id, python("x = 1"), &mut |_: &Output| {}).await.unwrap();
        round_trips.push(millis(started));
    }
    let (mut pauses, mut resumes) = (Vec::new(), Vec::new());
    for _ in 0..starts {
        let started = Instant::now();
        sandboxes.pause(id).await.unwrap();
        pauses.push(millis(started));
        let started = Instant::now();
        let back = sandboxes.execute(id, python("x"), &mut |_: &Output| {}).await.unwrap();
        assert_eq!(back.result_text(), Some("1"), "the kernel's memory survives");
        resumes.push(millis(started));
    }
    sandboxes.destroy(id).await.unwrap();
    println!(
        "{{\"cold_p50_ms\": {:.1}, \"cold_p99_ms\": {:.1}, \"exec_p50_ms\": {:.3}, \"exec_p99_ms\": {:.3}, \"pause_p50_ms\": {:.2}, \"resume_to_result_p50_ms\": {:.2}, \"resume_to_result_p99_ms\": {:.2}}}",
        percentile(&mut cold.clone(), 0.5),
        percentile(&mut cold, 0.99),
        percentile(&mut round_trips.clone(), 0.5),
        percentile(&mut round_trips, 0.99),
        percentile(&mut pauses, 0.5),
        percentile(&mut resumes.clone(), 0.5),
        percentile(&mut resumes, 0.99),
    );
}
