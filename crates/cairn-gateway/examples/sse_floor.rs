//! The floor under an SSE viewer: a bare axum server whose every route is an
//! SSE stream that never sends (a keep-alive every 15 s, as Cairn's), with
//! no middleware, no authentication and no state. `bench/viewer_heap.py
//! --floor` counts the heap each idle connection to it holds, beside what a
//! viewer of Cairn's thread stream holds.
//!
//! Usage: sse_floor PORT

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
    axum::serve(listener, Router::new().fallback(get(stream))).await.unwrap();
}
