//! The floor under an SSE viewer: a bare axum router whose every route is an
//! SSE stream that never sends (a keep-alive every 15 s, as Cairn's), with
//! no middleware, no authentication and no state, served by Cairn's server
//! loop (`cairn_gateway::serve`) or, with `axum-serve`, by `axum::serve`.
//! `bench/viewer_heap.py --floor` counts the heap each idle connection to it
//! holds, beside what a viewer of Cairn's thread stream holds.
//!
//! Usage: sse_floor PORT [axum-serve]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;

async fn stream() -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    Sse::new(futures::stream::pending()).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).expect("usage: sse_floor PORT");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let app = Router::new().fallback(get(stream));
    match std::env::args().nth(2).as_deref() {
        Some("axum-serve") => axum::serve(listener, app).await.unwrap(),
        _ => cairn_gateway::serve(listener, app, std::future::pending()).await.unwrap(),
    }
}
