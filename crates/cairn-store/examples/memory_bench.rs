//! Similarity search over a project's memory: N stored chunks of D
//! dimensions (random unit vectors), then the top 10 for Q queries, on
//! SQLite (sqlite-vec) and on PostgreSQL with pgvector. Prints one JSON
//! line per backend.
//!
//!     cargo run --release -p cairn-store --example memory_bench -- 100000 384 50 [postgres-with-pgvector-url]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use cairn_core::model::{NewMemoryChunk, NewProject};
use cairn_store::{Database, OpenOptions};

/// A small, seeded generator (xorshift): the same vectors on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    fn unit(&mut self, dims: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dims).map(|_| self.next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(backend: &str, url: &str, n: usize, dims: usize, queries: usize) {
    let db = Database::open(url, &OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    let store = db.store();
    let user = cairn_testkit::seed::user(&*store, &format!("bench-{}@example.com", uuid_like())).await;
    let project = store.create_project(NewProject { name: "Bench".into(), owner: user.id }).await.unwrap().id;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    for batch in 0..n.div_ceil(1000) {
        let chunks = (0..1000.min(n - batch * 1000))
            .map(|i| NewMemoryChunk {
                project_id: project,
                source: "note".into(),
                text: format!("chunk {}", batch * 1000 + i),
                embedding: rng.unit(dims),
                created_by: None,
            })
            .collect();
        store.add_memory(chunks).await.unwrap();
    }
    let insert_s = started.elapsed().as_secs_f64();
    let mut times = Vec::with_capacity(queries);
    for q in 0..queries + 3 {
        let query = rng.unit(dims);
        let started = Instant::now();
        let found = store.search_memory(project, &query, 10).await.unwrap();
        if q >= 3 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        assert_eq!(found.len(), 10);
        assert!(found.windows(2).all(|w| w[0].1 >= w[1].1), "best first");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"backend\": \"{backend}\", \"chunks\": {n}, \"dims\": {dims}, \"insert_s\": {insert_s:.1}, \
         \"top10_p50_ms\": {:.1}, \"top10_p99_ms\": {:.1}}}",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dims: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(384);
    let queries: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(50);
    let dir = std::env::temp_dir().join(format!("cairn-memory-bench-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    run("sqlite+sqlite-vec", &format!("sqlite://{}/bench.db", dir.display()), n, dims, queries).await;
    std::fs::remove_dir_all(&dir).unwrap();
    if let Some(url) = args.get(4) {
        run("postgres+pgvector", url, n, dims, queries).await;
    }
}
