//! The viewers of `bench/viewers.py`, in Rust: N connections to one
//! thread's event stream (SSE over plain HTTP/1.0, or the WebSocket), each
//! noting how late every `output` event reaches it (its receipt time minus
//! the time the server logged it, on this machine's clock). Written in Rust
//! so that a thousand viewers sharing the machine with the servers cost
//! little of it: the Python viewers' own event loop was part of what they
//! measured.
//!
//! Usage: viewers_client PORTS TOKEN THREAD VIEWERS [reuse]
//! (PORTS comma-separated; with two, viewers alternate between them and,
//! on each, between SSE and WebSocket; `reuse`: each SSE viewer first asks
//! for `/api/v1/me` in HTTP/1.1 and opens its stream on the same connection,
//! as a browser or a proxy reusing a connection does). It connects the first tenth and
//! prints `first`; waits for a line on its input; connects the rest and
//! prints `connected`; then, when every viewer saw the run end, prints one
//! JSON line: `{"lags_ms": [...], "presence": N, "complete": N}`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

const LINES: usize = 20;

#[derive(Default)]
struct Seen {
    lags_ms: Vec<f64>,
    presence: u64,
    complete: u64,
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

fn logged_ms(event: &Value) -> Option<f64> {
    let at = event.get("created_at")?.as_str()?;
    let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    Some(at.unix_timestamp_nanos() as f64 / 1e6)
}

/// What one event says: an output's lag, or the end of the run.
enum Told {
    Lag(f64),
    End,
    Other,
}

fn told(event: &Value, received: f64) -> Told {
    match event.get("kind").and_then(Value::as_str) {
        Some("output") => logged_ms(event).map(|at| Told::Lag(received - at)).unwrap_or(Told::Other),
        Some("run.status") => {
            let status = event["payload"]["status"].as_str().unwrap_or_default();
            if ["succeeded", "failed", "cancelled"].contains(&status) { Told::End } else { Told::Other }
        }
        _ => Told::Other,
    }
}

async fn sse(port: u16, token: &str, thread: &str, reuse: bool, ready: &Semaphore) -> (Vec<f64>, u64) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut buffer = Vec::<u8>::new();
    let version = if reuse {
        let me = format!("GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n");
        socket.write_all(me.as_bytes()).await.unwrap();
        buffer = answered(&mut socket, &mut chunk).await;
        "1.1"
    } else {
        "1.0"
    };
    let request = format!(
        "GET /api/v1/threads/{thread}/events HTTP/{version}\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    ready.add_permits(1);
    // Chunked (HTTP/1.1): the chunks' size lines fall between events and are
    // passed over with the rest that is not `data:`.
    let (mut lags, mut presence) = (Vec::new(), 0);
    loop {
        let read = socket.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            return (lags, presence);
        }
        let received = now_ms();
        buffer.extend_from_slice(&chunk[..read]);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            if text.contains("event: presence") {
                presence += 1;
                continue;
            }
            let data: String =
                text.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim).collect::<Vec<_>>().join("");
            let Ok(event) = serde_json::from_str::<Value>(&data) else { continue };
            match told(&event, received) {
                Told::Lag(lag) => lags.push(lag),
                Told::End => return (lags, presence),
                Told::Other => {}
            }
        }
    }
}

/// Reads a sized 200 response off `socket`; what came after it.
async fn answered(socket: &mut TcpStream, chunk: &mut [u8]) -> Vec<u8> {
    let mut read = Vec::new();
    loop {
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse().unwrap();
            if read.len() >= end + 4 + length {
                return read.split_off(end + 4 + length);
            }
        }
        let n = socket.read(chunk).await.unwrap();
        assert!(n > 0, "the connection closed after its first request");
        read.extend_from_slice(&chunk[..n]);
    }
}

async fn websocket(port: u16, token: &str, thread: &str, ready: &Semaphore) -> (Vec<f64>, u64) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://127.0.0.1:{port}/api/v1/threads/{thread}/events/ws");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ready.add_permits(1);
    let (mut lags, mut presence) = (Vec::new(), 0);
    while let Some(Ok(message)) = socket.next().await {
        let received = now_ms();
        let Ok(text) = message.into_text() else { continue };
        let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
        if event.get("here").is_some() && event.get("kind").is_none() {
            presence += 1;
            continue;
        }
        match told(&event, received) {
            Told::Lag(lag) => lags.push(lag),
            Told::End => break,
            Told::Other => {}
        }
    }
    (lags, presence)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (reuse, args) = match args.split_last() {
        Some((last, rest)) if last == "reuse" => (true, rest),
        _ => (false, args.as_slice()),
    };
    let [_, ports, token, thread, viewers] = args else {
        eprintln!("usage: viewers_client PORTS TOKEN THREAD VIEWERS [reuse]");
        std::process::exit(2);
    };
    let ports: Vec<u16> = ports.split(',').map(|p| p.parse().unwrap()).collect();
    let viewers: usize = viewers.parse().unwrap();
    let (token, thread) = (Arc::new(token.clone()), Arc::new(thread.clone()));
    let ready = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let first = (viewers / 10).max(1);
    let mut tasks = Vec::with_capacity(viewers);
    for n in 0..viewers {
        if n == first {
            ready.acquire_many(first as u32).await.unwrap().forget();
            println!("first");
            // The caller measures the servers' memory with the first tenth, then says go.
            tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await.unwrap().unwrap();
        }
        let port = ports[n % ports.len()];
        let over_websocket = ports.len() > 1 && (n / ports.len()) % 2 == 1;
        let (token, thread, ready, seen) = (token.clone(), thread.clone(), ready.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let (lags, presence) = match over_websocket {
                true => websocket(port, &token, &thread, &ready).await,
                false => sse(port, &token, &thread, reuse, &ready).await,
            };
            let mut seen = seen.lock().await;
            seen.complete += u64::from(lags.len() >= LINES);
            seen.lags_ms.extend(lags);
            seen.presence += presence;
        }));
    }
    ready.acquire_many((viewers - first.min(viewers)) as u32).await.unwrap().forget();
    println!("connected");
    let all = futures::future::join_all(tasks);
    if tokio::time::timeout(Duration::from_secs(300), all).await.is_err() {
        eprintln!("not every viewer saw the run end within 300 s");
    }
    let seen = seen.lock().await;
    let result = serde_json::json!({ "lags_ms": seen.lags_ms, "presence": seen.presence, "complete": seen.complete });
    println!("{result}");
}
