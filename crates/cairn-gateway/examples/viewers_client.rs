//! The viewers of `bench/viewers.py`, in Rust: N connections to one
//! thread's event stream (SSE over plain HTTP/1.0, or the WebSocket), each
//! noting how late every `output` event reaches it (its receipt time minus
//! the time the server logged it, on this machine's clock). Written in Rust
//! so that a thousand viewers sharing the machine with the servers cost
//! little of it: the Python viewers' own event loop was part of what they
//! measured.
//!
//! Usage: viewers_client PORTS TOKEN THREAD VIEWERS [reuse|upload]
//! (PORTS comma-separated; with two, viewers alternate between them and,
//! on each, between SSE and WebSocket; `reuse`: each SSE viewer first asks
//! for `/api/v1/me` in HTTP/1.1 and opens its stream on the same connection,
//! as a browser or a proxy reusing a connection does; `upload`: the same
//! after a chunked request body instead — 16 KiB of JSON in two chunks,
//! which the server reads whole and refuses with 400 (a project whose name
//! is a number), so nothing is stored). It connects the first tenth and
//! prints `first`; waits for a line on its input; connects the rest and
//! prints `connected`; then, when every viewer saw the run end, prints one
//! JSON line: `{"sse_lags_ms": [...], "ws_lags_ms": [...], "presence": N,
//! "complete": N}` (the lags of the SSE viewers and of the WebSocket ones).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::Deserialize;
use serde::de::IgnoredAny;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

const LINES: usize = 20;
/// The line that names an SSE block a presence state.
const PRESENCE: &[u8] = b"event: presence";

#[derive(Default)]
struct Seen {
    sse_lags_ms: Vec<f64>,
    ws_lags_ms: Vec<f64>,
    presence: u64,
    complete: u64,
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

/// What the client reads of an event: only the fields it measures by,
/// borrowed from the received text where no escape needs undoing (a
/// thousand viewers parse every event, on the machine they measure).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payload: Option<Payload<'a>>,
    /// Present on a presence state only.
    #[serde(default)]
    here: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
}

fn logged_ms(event: &Event) -> Option<f64> {
    let at = time::OffsetDateTime::parse(event.created_at.as_deref()?, &Rfc3339).ok()?;
    Some(at.unix_timestamp_nanos() as f64 / 1e6)
}

/// What one event says: an output's lag, or the end of the run.
enum Told {
    Lag(f64),
    End,
    Other,
}

fn told(event: &Event, received: f64) -> Told {
    match event.kind.as_deref() {
        Some("output") => logged_ms(event).map(|at| Told::Lag(received - at)).unwrap_or(Told::Other),
        Some("run.status") => {
            let status = event.payload.as_ref().and_then(|p| p.status.as_deref()).unwrap_or_default();
            if ["succeeded", "failed", "cancelled"].contains(&status) { Told::End } else { Told::Other }
        }
        _ => Told::Other,
    }
}

/// The `data:` of one SSE block, without copying when it is one line (as
/// Cairn writes it); lines that are not `data:` (the event's name and id,
/// chunk sizes in HTTP/1.1) are passed over.
fn sse_data<'a>(block: &'a [u8], joined: &'a mut Vec<u8>) -> &'a [u8] {
    let mut lines = block.split(|&b| b == b'\n').filter_map(|line| line.strip_prefix(b"data:"));
    let Some(first) = lines.next() else { return &[] };
    let Some(second) = lines.next() else { return first.trim_ascii() };
    joined.clear();
    for line in [first, second].into_iter().chain(lines) {
        joined.extend_from_slice(line.trim_ascii());
    }
    joined
}

/// What an SSE viewer's connection carries before its stream.
#[derive(Clone, Copy, PartialEq)]
enum Before {
    Nothing,
    /// `GET /api/v1/me`.
    Me,
    /// A chunked `POST /api/v1/projects` the server reads and refuses.
    Upload,
}

async fn sse(port: u16, token: &str, thread: &str, before: Before, ready: &Semaphore) -> (Vec<f64>, u64) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut buffer = Vec::<u8>::new();
    let version = match before {
        Before::Nothing => "1.0",
        Before::Me => {
            let me = format!("GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n");
            socket.write_all(me.as_bytes()).await.unwrap();
            buffer = answered(&mut socket, &mut chunk, "200").await;
            "1.1"
        }
        Before::Upload => {
            let (first, second) = (
                format!(r#"{{"description":"{}","#, "d".repeat(8 * 1024)),
                format!(r#""name":5,"x":"{}"}}"#, "x".repeat(8 * 1024)),
            );
            let upload = format!(
                "POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
                first.len(),
                second.len()
            );
            socket.write_all(upload.as_bytes()).await.unwrap();
            buffer = answered(&mut socket, &mut chunk, "400").await;
            "1.1"
        }
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
    let mut joined = Vec::new();
    // How far `buffer` is known to hold no block's end.
    let mut scanned = 0;
    loop {
        let read = socket.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            return (lags, presence);
        }
        let received = now_ms();
        buffer.extend_from_slice(&chunk[..read]);
        let mut start = 0;
        while let Some(end) = buffer[scanned.max(start)..].windows(2).position(|w| w == b"\n\n") {
            let end = scanned.max(start) + end + 2;
            let block = &buffer[start..end];
            start = end;
            if block.windows(PRESENCE.len()).any(|w| w == PRESENCE) {
                presence += 1;
                continue;
            }
            let Ok(event) = serde_json::from_slice::<Event>(sse_data(block, &mut joined)) else { continue };
            match told(&event, received) {
                Told::Lag(lag) => lags.push(lag),
                Told::End => return (lags, presence),
                Told::Other => {}
            }
        }
        buffer.drain(..start);
        // A block's end may straddle this read and the next.
        scanned = buffer.len().saturating_sub(1);
    }
}

/// Reads a sized response of `status` off `socket`; what came after it.
async fn answered(socket: &mut TcpStream, chunk: &mut [u8], status: &str) -> Vec<u8> {
    let mut read = Vec::new();
    loop {
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
            assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
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
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let url = format!("ws://127.0.0.1:{port}/api/v1/threads/{thread}/events/ws");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    // The library's default read buffer (128 KiB) is zeroed up to its size
    // on every read: a browser does nothing of the kind, and a thousand
    // viewers doing it took a seventh of the machine they measure.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true).await.unwrap();
    ready.add_permits(1);
    let (mut lags, mut presence) = (Vec::new(), 0);
    while let Some(Ok(message)) = socket.next().await {
        let received = now_ms();
        let Ok(text) = message.into_text() else { continue };
        let Ok(event) = serde_json::from_str::<Event>(&text) else { continue };
        if event.here.is_some() && event.kind.is_none() {
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
    let (before, args) = match args.split_last() {
        Some((last, rest)) if last == "reuse" => (Before::Me, rest),
        Some((last, rest)) if last == "upload" => (Before::Upload, rest),
        _ => (Before::Nothing, args.as_slice()),
    };
    let [_, ports, token, thread, viewers] = args else {
        eprintln!("usage: viewers_client PORTS TOKEN THREAD VIEWERS [reuse|upload]");
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
                false => sse(port, &token, &thread, before, &ready).await,
            };
            let mut seen = seen.lock().await;
            seen.complete += u64::from(lags.len() >= LINES);
            match over_websocket {
                true => seen.ws_lags_ms.extend(lags),
                false => seen.sse_lags_ms.extend(lags),
            }
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
    let result = serde_json::json!({
        "sse_lags_ms": seen.sse_lags_ms,
        "ws_lags_ms": seen.ws_lags_ms,
        "presence": seen.presence,
        "complete": seen.complete,
    });
    println!("{result}");
}
