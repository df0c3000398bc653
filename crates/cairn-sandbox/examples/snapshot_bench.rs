//! Workspace snapshots: how long saving and restoring one takes and how big
//! it is, for a workspace like an analysis leaves behind (a large CSV, a
//! binary file that does not compress, a hundred small files), and what
//! checking an unchanged workspace costs (every execution does that).
//!
//!     cargo run --release -p cairn-sandbox --example snapshot_bench [-- RUNS]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use cairn_core::SandboxId;
use cairn_sandbox::Snapshots;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn build_workspace(root: &std::path::Path) -> u64 {
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::create_dir_all(root.join("notes")).unwrap();
    let mut csv = String::from("date,region,product,units,price\n");
    let mut n = 0_u64;
    while csv.len() < 20 << 20 {
        n += 1;
        csv.push_str(&format!(
            "2026-{:02}-{:02},region-{},product-{},{},{}.{:02}\n",
            n % 12 + 1,
            n % 28 + 1,
            n % 7,
            n % 113,
            n % 1000,
            (n * 37) % 100,
            n % 100
        ));
    }
    std::fs::write(root.join("data/sales.csv"), &csv).unwrap();
    // 5 MiB that does not compress (a figure, a parquet file).
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..5 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(root.join("data/model.bin"), &noise).unwrap();
    for i in 0..100 {
        std::fs::write(root.join(format!("notes/step-{i}.txt")), format!("step {i}: {}\n", "ok ".repeat(200))).unwrap();
    }
    csv.len() as u64 + noise.len() as u64 + 100 * 610
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(5);
    let base = std::env::temp_dir().join(format!("cairn-snapshot-bench-{}", std::process::id()));
    let (workspace, objects, scratch) = (base.join("workspace"), base.join("objects"), base.join("scratch.zip"));
    std::fs::create_dir_all(&objects).unwrap();
    let raw = build_workspace(&workspace);
    let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&objects).unwrap());
    let snapshots = Snapshots::new(store, "sandbox-snapshots");
    let id = SandboxId::new();
    let (mut saves, mut restores, mut checks) = (Vec::new(), Vec::new(), Vec::new());
    let mut stored = 0;
    for run in 0..runs {
        let stats = snapshots.save(id, &workspace, &scratch).await.unwrap();
        saves.push(stats.seconds * 1000.0);
        stored = stats.stored_bytes;
        let target = base.join(format!("restored-{run}"));
        let restored = snapshots.restore(id, &target, &scratch).await.unwrap().unwrap();
        restores.push(restored.seconds * 1000.0);
        assert_eq!(restored.bytes, stats.bytes);
        std::fs::remove_dir_all(&target).unwrap();
        let started = Instant::now();
        let ws = workspace.clone();
        tokio::task::spawn_blocking(move || cairn_sandbox::snapshot_fingerprint(&ws)).await.unwrap();
        checks.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!("| workspace | snapshot size | save (p50) | restore (p50) | unchanged check (p50) |");
    println!("|---|---|---|---|---|");
    println!(
        "| {:.1} MiB in 102 files | {:.1} MiB ({:.0} %) | {:.0} ms | {:.0} ms | {:.2} ms |",
        raw as f64 / f64::from(1 << 20),
        stored as f64 / f64::from(1 << 20),
        100.0 * stored as f64 / raw as f64,
        median(saves),
        median(restores),
        median(checks)
    );
    std::fs::remove_dir_all(&base).unwrap();
}
