//! Kernel benchmark: sandbox start to the first `print(1)` result (cold),
//! execute round trips of trivial code, and idle memory. Run by
//! `bench/run.sh`; prints one JSON object.
//!
//! `kernel_bench STARTS EXECUTIONS` runs bubblewrap kernels;
//! `kernel_bench STARTS EXECUTIONS container SOCKET IMAGE` runs them in
//! containers of that engine (Docker or Podman) from that image.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use std::sync::Arc;

use cairn_sandbox::{ContainerEngine, Kernel, KernelOptions};

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let starts: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(20);
    let executions: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let root = std::env::temp_dir().join(format!("cairn-kernel-bench-{}", std::process::id()));
    // Finding the interpreter is done once, as a server does at start-up.
    let mut base = KernelOptions::with_host_python(root.join("ws"), root.join("runtime")).expect("python3");
    let args: Vec<String> = std::env::args().collect();
    if args.get(3).map(String::as_str) == Some("container") {
        let (socket, image) = (&args[4], &args[5]);
        let python = std::path::Path::new("/usr/bin/python3");
        let engine = ContainerEngine::connect(socket, image, python, &root.join("runtime")).await.expect("the engine");
        base = base.in_container(Arc::new(engine));
    }
    let options = |n: usize| KernelOptions { workspace: root.join(format!("ws{n}")), ..base.clone() };

    let mut cold = Vec::new();
    for n in 0..starts {
        let started = Instant::now();
        let mut kernel = Kernel::start(&options(n)).await.expect("a kernel");
        let ready = started.elapsed();
        let first = kernel.execute("print(1)", |_| {}).await.unwrap();
        if std::env::var("KERNEL_BENCH_VERBOSE").is_ok() {
            eprintln!("ready after {ready:?}, first result after {:?}", started.elapsed());
        }
        assert_eq!(first.stream("stdout"), "1\n");
        cold.push(started.elapsed().as_secs_f64() * 1000.0);
        kernel.shutdown().await;
    }

    // Warm: taken from a pool kept full in the background.
    let pool = cairn_sandbox::KernelPool::new(base.clone(), root.join("staging"), 4);
    pool.fill().await.unwrap();
    let mut warm = Vec::new();
    for n in 0..starts {
        let started = Instant::now();
        let mut kernel = pool.take(&root.join(format!("warm{n}"))).await.unwrap();
        let first = kernel.execute("print(1)", |_| {}).await.unwrap();
        assert_eq!(first.stream("stdout"), "1\n");
        warm.push(started.elapsed().as_secs_f64() * 1000.0);
        kernel.shutdown().await;
        // Let the pool refill before the next take, as between real threads.
        while pool.len() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    let mut kernel = Kernel::start(&options(starts)).await.unwrap();
    for _ in 0..100 {
        kernel.execute("1", |_| {}).await.unwrap();
    }
    let mut round_trips = Vec::with_capacity(executions);
    for _ in 0..executions {
        let started = Instant::now();
        kernel.execute("x = 1", |_| {}).await.unwrap();
        round_trips.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = kernel.resident_bytes().map(|b| b as f64 / (1024.0 * 1024.0));

    let burst = 10;
    let started = Instant::now();
    let mut kernels = Vec::new();
    for n in 0..burst {
        kernels.push(Kernel::start(&options(starts + 1 + n)).await.unwrap());
    }
    let per_second = burst as f64 / started.elapsed().as_secs_f64();
    for k in kernels {
        k.shutdown().await;
    }
    kernel.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "{{\"cold_p50_ms\": {:.1}, \"cold_p99_ms\": {:.1}, \"warm_p50_ms\": {:.2}, \"warm_p99_ms\": {:.2}, \"exec_p50_ms\": {:.3}, \"exec_p99_ms\": {:.3}, \"idle_mib\": {}, \"starts_per_second\": {:.1}}}",
        percentile(&mut cold.clone(), 0.5),
        percentile(&mut cold, 0.99),
        percentile(&mut warm.clone(), 0.5),
        percentile(&mut warm, 0.99),
        percentile(&mut round_trips.clone(), 0.5),
        percentile(&mut round_trips, 0.99),
        idle.map_or("null".to_owned(), |m| format!("{m:.1}")),
        per_second
    );
}
