//! Pause and resume of a sandbox through the local backend: how long a
//! pause takes, and a resume until the first result of code reading the
//! workspace. Without a kernel checkpoint (CRIU cannot run on the hosts this
//! is measured on; see docs/backends.md) a pause stops the kernel and keeps
//! the workspace, and the resumed sandbox starts a fresh kernel on it. Run
//! by `bench/run.sh`; prints one JSON object.
//!
//! `pause_bench ROUNDS` runs bubblewrap kernels; `pause_bench ROUNDS
//! container SOCKET IMAGE` containers of that engine from that image.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use cairn_core::UserId;
use cairn_core::sandbox::{Execution, NewSandbox, Output, Sandboxes};
use cairn_sandbox::{ContainerConfig, LocalConfig, LocalSandboxes};

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn python(code: &str) -> Execution {
    Execution::Python { code: code.to_owned() }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(20);
    let root = std::env::temp_dir().join(format!("cairn-pause-bench-{}", std::process::id()));
    let mut config = LocalConfig::new(root.clone());
    config.pool_size = 0;
    if args.get(2).map(String::as_str) == Some("container") {
        config.container = Some(ContainerConfig {
            engine: args[3].clone(),
            image: args[4].clone(),
            python: "/usr/bin/python3".into(),
        });
    }
    let sandboxes = LocalSandboxes::start(config).await.expect("the sandbox backend");
    let id = sandboxes.create(NewSandbox::for_owner(UserId::new())).await.unwrap().id;
    let setup = "x = 1\nopen('data.txt', 'w').write('kept' * 1000)";
    sandboxes.execute(id, python(setup), &mut |_: &Output| {}).await.unwrap();
    let (mut pauses, mut resumes) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        sandboxes.pause(id).await.unwrap();
        pauses.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        sandboxes.resume(id).await.unwrap();
        let code = python("print(open('data.txt').read()[:4])");
        let read = sandboxes.execute(id, code, &mut |_: &Output| {}).await.unwrap();
        assert_eq!(read.stream("stdout"), "kept\n", "the workspace survives");
        resumes.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    sandboxes.destroy(id).await.unwrap();
    sandboxes.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "{{\"pause_p50_ms\": {:.1}, \"pause_p99_ms\": {:.1}, \"resume_to_result_p50_ms\": {:.1}, \"resume_to_result_p99_ms\": {:.1}}}",
        percentile(&mut pauses.clone(), 0.5),
        percentile(&mut pauses, 0.99),
        percentile(&mut resumes.clone(), 0.5),
        percentile(&mut resumes, 0.99),
    );
}
