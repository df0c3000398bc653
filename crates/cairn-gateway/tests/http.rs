//! The gateway over real HTTP: a server on 127.0.0.1 backed by a real store
//! and bus, and a real HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use cairn_config::Config;
use cairn_core::bus::QueueOptions;
use cairn_gateway::{ApiJson, AppState};
use cairn_store::{Database, OpenOptions};
use cairn_testkit::{TcpProxy, TempDir, TestPostgres, redis_url, unique_prefix};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: TempDir,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(Duration::from_secs(10), &mut self.task).await.unwrap().unwrap().unwrap();
    }
}

/// Test-only routes that exercise the middleware: a JSON endpoint and a slow one.
fn extra_routes() -> Router<AppState> {
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Echo {
        name: String,
        count: u32,
    }
    Router::new().route("/api/v1/test/echo", post(|ApiJson(body): ApiJson<Echo>| async move { ApiJson(body) })).route(
        "/api/v1/test/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            "done"
        }),
    )
}

async fn start_with(config: Config, db: Database, bus: Option<cairn_core::bus::Bus>) -> Server {
    let dir = TempDir::new("gateway");
    let bus = bus.unwrap_or_else(|| cairn_bus::in_process(db.queue(QueueOptions::default())));
    let state = support::state(config, &db, bus, &dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = cairn_gateway::app_with(state, extra_routes());
    let task = tokio::spawn(cairn_gateway::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    Server { addr, client: reqwest::Client::new(), stop: Some(stop), task, _dir: dir }
}

async fn start(config: Config) -> (Server, TempDir) {
    let dir = TempDir::new("gateway-db");
    let db = Database::open(&dir.sqlite_url(), &OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    (start_with(config, db, None).await, dir)
}

fn small_config() -> Config {
    let mut config = Config::default();
    config.server.body_limit_bytes = 1024;
    config
}

async fn problem(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(body["title"].is_string() && body["type"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn probes_and_version_answer() {
    let (server, _db) = start(small_config()).await;
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({ "status": "ok" }));

    let ready: Value = server.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"], json!({ "ok": true, "backend": "sqlite" }));
    assert_eq!(ready["checks"]["bus"], json!({ "ok": true, "backend": "in-process" }));

    let version: Value = server.get("/api/v1/version").await.json().await.unwrap();
    assert_eq!(version, json!({ "name": "cairn", "version": env!("CARGO_PKG_VERSION"), "role": "all" }));
    server.stop().await;
}

#[tokio::test]
async fn every_error_is_a_problem_with_a_stable_code() {
    let (server, _db) = start(small_config()).await;
    let unknown = server.get("/api/v1/no-such-thing").await;
    let body = problem(unknown, StatusCode::NOT_FOUND, "route_not_found").await;
    assert!(body["detail"].as_str().unwrap().contains("/api/v1/no-such-thing"));

    let wrong_method = server.client.delete(server.url("/api/v1/version")).send().await.unwrap();
    problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;

    let echo = server.url("/api/v1/test/echo");
    let malformed = server
        .client
        .post(&echo)
        .header("content-type", "application/json")
        .body("{\"name\": \"x\", ")
        .send()
        .await
        .unwrap();
    problem(malformed, StatusCode::BAD_REQUEST, "malformed_json").await;

    let mistyped = server.client.post(&echo).json(&json!({ "name": "x", "count": "three" })).send().await.unwrap();
    let body = problem(mistyped, StatusCode::BAD_REQUEST, "malformed_json").await;
    assert!(body["detail"].as_str().unwrap().contains("count"), "the detail names the field: {body}");

    let not_json = server.client.post(&echo).body("name=x").send().await.unwrap();
    problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;

    let huge = json!({ "name": "x".repeat(4096), "count": 1 });
    let too_large = server.client.post(&echo).json(&huge).send().await.unwrap();
    let body = problem(too_large, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert!(body["detail"].as_str().unwrap().contains("1024"), "{body}");

    let fine = server.client.post(&echo).json(&json!({ "name": "x", "count": 3 })).send().await.unwrap();
    assert_eq!(fine.json::<Value>().await.unwrap(), json!({ "name": "x", "count": 3 }));
    server.stop().await;
}

#[tokio::test]
async fn requests_carry_an_id() {
    let (server, _db) = start(small_config()).await;
    let fresh = server.get("/healthz").await;
    let id = fresh.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let given =
        server.client.get(server.url("/api/v1/nope")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42", "errors keep the caller's id too");
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let mut config = small_config();
    config.server.metrics_token = "m".repeat(32).into();
    let (server, _db) = start(config).await;
    for _ in 0..3 {
        server.get("/api/v1/version").await;
    }
    let metrics = server.client.get(server.url("/metrics")).bearer_auth("m".repeat(32)).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/api/v1/version\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request counter for the version route in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");
    assert!(text.contains("http_request_duration_seconds_bucket{"), "latency histogram missing");
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_and_swagger_ui_are_served_from_the_binary() {
    let (server, _db) = start(small_config()).await;
    let document: Value = server.get("/api/openapi.json").await.json().await.unwrap();
    assert_eq!(document, serde_json::to_value(cairn_gateway::openapi_document()).unwrap());
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
    assert_eq!(document["info"]["title"], "Cairn API");
    for path in ["/api/v1/version", "/healthz", "/readyz"] {
        assert!(document["paths"][path]["get"].is_object(), "{path} is documented");
    }
    assert!(document["components"]["schemas"]["Problem"].is_object());

    let ui = server.get("/api/docs/").await;
    assert_eq!(ui.status(), StatusCode::OK);
    let html = ui.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let initializer = server.get("/api/docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(initializer.contains("/api/openapi.json"), "the UI loads our document: {initializer}");
    let bundle = server.get("/api/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), StatusCode::OK, "the UI's script comes from the binary, not a CDN");
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    server.stop().await;
}

#[tokio::test]
async fn the_web_app_is_served_with_a_single_page_fallback() {
    let (server, _db) = start(small_config()).await;
    let root = server.get("/").await;
    assert_eq!(root.status(), StatusCode::OK);
    assert!(root.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let root_html = root.text().await.unwrap();
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist/index.html");
    match std::fs::read_to_string(&built) {
        Ok(index) => {
            assert_eq!(root_html, index, "the built web app is served at /");
            let script = index.split("src=\"").nth(1).and_then(|s| s.split('"').next()).expect("a script tag");
            let asset = server.get(script).await;
            assert_eq!(asset.status(), StatusCode::OK, "{script}");
            assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
        }
        Err(_) => assert!(root_html.contains("built without the web app"), "{root_html}"),
    }
    let deep = server.get("/projects/123/threads").await.text().await.unwrap();
    assert_eq!(deep, root_html, "app routes get the app");
    let missing = server.get("/assets/no-such-file.js").await;
    problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    server.stop().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let mut config = small_config();
    config.server.cors_origins = vec!["https://app.example.com".to_owned()];
    let (server, _db) = start(config).await;
    let preflight = |origin: &'static str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/api/v1/version"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    let refused = preflight("https://evil.example.net").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_then_refuses_new_ones() {
    let (mut server, _db) = start(small_config()).await;
    let client = server.client.clone();
    let slow_url = server.url("/api/v1/test/slow");
    let in_flight = tokio::spawn(async move { client.get(slow_url).send().await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = server.stop.take().map(|s| s.send(()));
    let response = in_flight.await.unwrap().expect("the request in flight is answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(5), &mut server.task).await.unwrap().unwrap().unwrap();
    let after = reqwest::Client::new().get(server.url("/healthz")).send().await;
    assert!(after.is_err(), "the server no longer accepts connections");
}

/// Reads one response from a raw connection: its head (lowercased) and its
/// body, of `content-length` bytes or chunked.
async fn read_response(socket: &mut tokio::net::TcpStream) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let (head, mut raw) = support::response_head(socket).await;
    let length: Option<usize> =
        head.lines().find_map(|l| l.strip_prefix("content-length: ")).map(|l| l.parse().unwrap());
    assert!(length.is_some() || head.contains("transfer-encoding: chunked"), "{head}");
    loop {
        let body = match length {
            Some(length) => (raw.len() >= length).then(|| raw[..length].to_vec()),
            None => dechunk(&raw),
        };
        if let Some(body) = body {
            return (head, String::from_utf8(body).unwrap());
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed mid-body: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A chunked body, once its last chunk has come.
fn dechunk(raw: &[u8]) -> Option<Vec<u8>> {
    let (mut body, mut at) = (Vec::new(), 0);
    loop {
        let line = raw[at..].windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[at..at + line]).unwrap(), 16).unwrap();
        let start = at + line + 2;
        if raw.len() < start + size + 2 {
            return None;
        }
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
    }
}

/// A raw `POST /api/v1/test/echo` with a JSON `body` framed by `framing`
/// (header lines, each ending in CRLF).
fn echo_request(framing: &str, body: &str) -> String {
    format!(
        "POST /api/v1/test/echo HTTP/1.1\r\nHost: cairn.test\r\nContent-Type: application/json\r\n{framing}\r\n{body}"
    )
}

/// The same, its body's length given.
fn sized_echo(body: &str) -> String {
    echo_request(&format!("Content-Length: {}\r\n", body.len()), body)
}

/// A head that arrives in pieces and one longer than Cairn's own loop reads
/// (left to hyper) are served, and so are further requests on the same
/// connection; what is not HTTP, or frames its body ambiguously, is
/// refused with 400.
#[tokio::test]
async fn requests_that_are_not_event_streams_keep_their_connection() {
    use tokio::io::AsyncWriteExt;
    let (server, _db) = start(small_config()).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let padding = "x".repeat(12 * 1024);
    let first = format!("GET /healthz HTTP/1.1\r\nHost: cairn.test\r\nX-Padding: {padding}\r\n\r\n");
    for piece in first.as_bytes().chunks(5000) {
        socket.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (head, body) = read_response(&mut socket).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n") && !head.contains("connection: close"), "{head}");
    assert!(body.contains("ok"), "{body}");
    // The same connection takes the next request, and a JSON body.
    socket.write_all(sized_echo(r#"{"name":"again","count":2}"#).as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut socket).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({ "name": "again", "count": 2 }));
    // Garbage is still hyper's to refuse, and so is a length that is not
    // plain digits (a proxy in front may read `+5` otherwise: smuggling).
    use tokio::io::AsyncReadExt;
    for junk in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"POST /api/v1/test/echo HTTP/1.1\r\nHost: cairn.test\r\nContent-Length: +5\r\n\r\n{\"a\"}",
    ] {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(junk).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut answer)).await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    server.stop().await;
}

/// A connection serves request after request: several sent at once
/// (pipelined) are answered in order, `HEAD` gets a head only, `Connection:
/// close` and HTTP/1.0 close after their answer unless HTTP/1.0 asks to
/// keep the connection.
#[tokio::test]
async fn one_connection_serves_many_requests_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _db) = start(small_config()).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let echo = |name: &str| sized_echo(&format!(r#"{{"name":"{name}","count":1}}"#));
    let pipelined = format!(
        "GET /healthz HTTP/1.1\r\nHost: cairn.test\r\n\r\n{}HEAD /healthz HTTP/1.1\r\nHost: cairn.test\r\n\r\n{}",
        echo("first"),
        echo("second")
    );
    socket.write_all(pipelined.as_bytes()).await.unwrap();
    // All four answers, read as they come (in any number of pieces).
    let mut raw = Vec::new();
    while !String::from_utf8_lossy(&raw).contains("second") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    let mut rest = raw.as_slice();
    let mut answers = Vec::new();
    for bodiless in [false, false, true, false] {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
        let head = String::from_utf8_lossy(&rest[..end]).to_lowercase();
        let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse().unwrap();
        let length = if bodiless { 0 } else { length };
        answers.push((head, String::from_utf8_lossy(&rest[end..end + length]).into_owned()));
        rest = &rest[end + length..];
    }
    assert!(rest.is_empty(), "nothing more: {}", String::from_utf8_lossy(rest));
    for ((head, body), expected) in answers.iter().zip(["ok", "first", "", "second"]) {
        assert!(head.starts_with("http/1.1 200 ok\r\n") && body.contains(expected), "{head}{body}");
        assert!(!head.contains("connection: close"), "{head}");
    }
    // HEAD: the length the body would have, and no body.
    assert_ne!(answers[2].0.lines().find_map(|l| l.strip_prefix("content-length: ")), Some("0"), "{}", answers[2].0);

    // `Connection: close`: answered, then closed.
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: cairn.test\r\nConnection: close\r\n\r\n").await.unwrap();
    let (head, _) = read_response(&mut socket).await;
    assert!(head.contains("connection: close"), "{head}");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty(), "nothing after the last response");

    // HTTP/1.0 closes unless it asks to keep the connection.
    let mut old = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    old.write_all(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await.unwrap();
    let (head, _) = read_response(&mut old).await;
    assert!(head.contains("connection: keep-alive"), "{head}");
    old.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await.unwrap();
    let (head, _) = read_response(&mut old).await;
    assert!(head.contains("connection: close"), "{head}");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), old.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty(), "closed after the HTTP/1.0 response");
    server.stop().await;
}

/// Reads from `socket` until `needle` has come; all that came.
async fn read_until(socket: &mut tokio::net::TcpStream, needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    while !String::from_utf8_lossy(&raw).contains(needle) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before {needle:?}: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(raw).unwrap()
}

/// Bodies the loop does not read whole before handling — chunked (with
/// extensions and trailers, in pieces), larger than 64 KiB, announced with
/// `Expect: 100-continue` — reach their handler as they come, on the same
/// connection as the requests before and after them, a request sent right
/// behind a body included.
#[tokio::test]
async fn streamed_bodies_are_served_on_the_same_connection() {
    use tokio::io::AsyncWriteExt;
    let (server, _db) = start(Config::default()).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: cairn.test\r\n\r\n").await.unwrap();
    let (head, _) = read_response(&mut socket).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    // Chunked.
    let body = r#"{"name":"chunked","count":3}"#;
    let chunked = echo_request("Transfer-Encoding: chunked\r\n", &format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()));
    socket.write_all(chunked.as_bytes()).await.unwrap();
    let (head, answer) = read_response(&mut socket).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert_eq!(serde_json::from_str::<Value>(&answer).unwrap(), json!({ "name": "chunked", "count": 3 }));
    // In three chunks (one with an extension), a trailer, sent in pieces,
    // and the next request right behind it.
    let (first, rest) = body.split_at(10);
    let (second, third) = rest.split_at(7);
    let framed = format!(
        "{:x}\r\n{first}\r\n{:x};note=1\r\n{second}\r\n{:x}\r\n{third}\r\n0\r\nX-Sum: 9\r\n\r\n",
        first.len(),
        second.len(),
        third.len()
    );
    let wire =
        echo_request("Transfer-Encoding: chunked\r\n", &framed) + "GET /healthz HTTP/1.1\r\nHost: cairn.test\r\n\r\n";
    for piece in wire.as_bytes().chunks(40) {
        socket.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let both = read_until(&mut socket, r#"{"status":"ok"}"#).await;
    assert!(both.contains(r#"{"name":"chunked","count":3}"#), "{both}");
    assert_eq!(both.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{both}");
    // Larger than 64 KiB, announced with `Expect: 100-continue`.
    let name = "n".repeat(100 * 1024);
    let body = format!(r#"{{"name":"{name}","count":4}}"#);
    let large = echo_request(&format!("Expect: 100-continue\r\nContent-Length: {}\r\n", body.len()), "");
    socket.write_all(large.as_bytes()).await.unwrap();
    let (head, rest) = support::response_head(&mut socket).await;
    assert!(head.starts_with("http/1.1 100 continue"), "{head}");
    assert!(rest.is_empty());
    socket.write_all(body.as_bytes()).await.unwrap();
    let (head, answer) = read_response(&mut socket).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["name"].as_str().map(str::len), Some(100 * 1024));
    // Larger than 64 KiB, in one write with its head.
    socket.write_all(sized_echo(&body).as_bytes()).await.unwrap();
    let (head, answer) = read_response(&mut socket).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n") && answer.len() > 100 * 1024, "{head}");
    // And the connection still serves.
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: cairn.test\r\n\r\n").await.unwrap();
    let (head, body) = read_response(&mut socket).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n") && body.contains("ok"), "{head}");
    server.stop().await;
}

/// A body its handler refuses before reading it all (over the limit) gets
/// its 413 and is read past, so the connection takes the next request; one
/// too long to read past gets its 413 and the connection closes. A body
/// framed wrongly, or cut short by its client, reaches the handler as an
/// error (400), never as a shorter body, and ends its connection.
#[tokio::test]
async fn refused_and_broken_bodies_end_cleanly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _db) = start(small_config()).await; // 1 KiB body limit
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let big = format!(r#"{{"name":"{}","count":1}}"#, "b".repeat(100 * 1024));
    let chunked_big = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    for refused in [sized_echo(&big), echo_request("Transfer-Encoding: chunked\r\n", &chunked_big)] {
        socket.write_all(refused.as_bytes()).await.unwrap();
        let (head, answer) = read_response(&mut socket).await;
        assert!(head.starts_with("http/1.1 413 ") && !head.contains("connection: close"), "{head}");
        assert_eq!(serde_json::from_str::<Value>(&answer).unwrap()["code"], "payload_too_large");
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: cairn.test\r\n\r\n").await.unwrap();
        let (head, body) = read_response(&mut socket).await;
        assert!(head.starts_with("http/1.1 200 ok\r\n") && body.contains("ok"), "the connection goes on: {head}");
    }
    // 4 MiB announced: refused at once, and the connection closes.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = echo_request(&format!("Content-Length: {}\r\n", 4 << 20), "");
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&vec![b' '; 256 * 1024]).await.unwrap();
    let (head, _) = read_response(&mut socket).await;
    assert!(head.starts_with("http/1.1 413 ") && head.contains("connection: close"), "{head}");

    let valid = r#"{"name":"x","count":1}"#;
    for broken in [
        format!("{:x}\n{valid}\r\n0\r\n\r\n", valid.len()),     // a bare LF
        format!("{:x}\r\n{valid}!!\r\n0\r\n\r\n", valid.len()), // longer than its size
        format!("zz\r\n{valid}\r\n0\r\n\r\n"),                  // no size
    ] {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(echo_request("Transfer-Encoding: chunked\r\n", &broken).as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut answer)).await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 ") && answer.contains("connection: close"), "{broken:?}: {answer}");
    }
    // Cut short: a chunk of half its size, then the client's side closes.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let chunk = format!("{:x}\r\n{valid}\r\n", valid.len() * 2);
    socket.write_all(echo_request("Transfer-Encoding: chunked\r\n", &chunk).as_bytes()).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 ") && answer.contains("connection: close"), "{answer}");
    server.stop().await;
}

/// A client that is slow to send a request's head (the first on its
/// connection, or a later one) is cut off after 30 s: no connection is held
/// open by one that never finishes a request.
#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _db) = start(small_config()).await;
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(b"GET /healthz HTTP/1.1\r\nHost: cairn.test\r\n\r\n").await.unwrap();
    let (head, _) = read_response(&mut stalled).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    stalled.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
    for socket in [&mut silent, &mut stalled] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(45), socket.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection is closed");
    }
    let waited = started.elapsed();
    assert!(waited > Duration::from_secs(25) && waited < Duration::from_secs(45), "closed after {waited:?}");
    server.stop().await;
}

/// A connection that has sent nothing does not hold shutdown up.
#[tokio::test]
async fn a_silent_connection_does_not_delay_shutdown() {
    use tokio::io::AsyncReadExt;
    let (server, _db) = start(small_config()).await;
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut rest)).await.unwrap();
    assert!(read.is_ok_and(|n| n == 0), "the silent connection is closed");
}

async fn wait_for_status(server: &Server, path: &str, status: StatusCode) -> Value {
    let mut last = None;
    for _ in 0..100 {
        let response = server.get(path).await;
        if response.status() == status {
            return response.json().await.unwrap();
        }
        last = Some(response.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered {status}; last {last:?}");
}

/// PostgreSQL and Redis going away while serving: readiness says which is
/// down with a 503 problem, and everything recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_outages_and_recovers_from_them() {
    let pg = TestPostgres::create().await;
    let pg_proxy = TcpProxy::start(&pg.server_addr()).await;
    let redis_target = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let redis_proxy = TcpProxy::start(&redis_target).await;

    let options = OpenOptions { max_connections: 4, acquire_timeout: Duration::from_secs(2) };
    let db = Database::open(&pg.url_via(pg_proxy.addr), &options).await.unwrap();
    db.migrate().await.unwrap();
    let bus = cairn_bus::redis::connect(
        &format!("redis://{}", redis_proxy.addr),
        &unique_prefix("gateway"),
        QueueOptions::default(),
    )
    .await
    .unwrap();
    let server = start_with(small_config(), db, Some(bus)).await;
    let ready = wait_for_status(&server, "/readyz", StatusCode::OK).await;
    assert_eq!(ready["checks"]["database"]["backend"], "postgres");
    assert_eq!(ready["checks"]["bus"]["backend"], "redis");

    pg_proxy.cut();
    let started = std::time::Instant::now();
    let down = server.get("/readyz").await;
    assert!(started.elapsed() < Duration::from_secs(5), "readiness took {:?}", started.elapsed());
    let body = problem(down, StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable").await;
    assert_eq!(body["detail"], "database unreachable");
    assert_eq!(body["checks"]["database"]["ok"], false);
    assert_eq!(body["checks"]["bus"]["ok"], true);
    assert_eq!(server.get("/healthz").await.status(), StatusCode::OK, "the process itself is still up");

    redis_proxy.cut();
    let both = problem(server.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable").await;
    assert_eq!(both["detail"], "database and bus unreachable");

    pg_proxy.restore();
    redis_proxy.restore();
    let back = wait_for_status(&server, "/readyz", StatusCode::OK).await;
    assert_eq!(back["status"], "ready");
    server.stop().await;
}
