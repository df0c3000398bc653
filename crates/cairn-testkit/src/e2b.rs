//! A stand-in for E2B's cloud on 127.0.0.1, following E2B's published API as
//! its SDKs use it with `api_url` and `sandbox_url` pointed at one address:
//! the control plane (`X-API-Key`; create, get, kill, pause, connect, with
//! E2B's `{code, message}` errors), and each sandbox's services reached
//! through the same address with the routing headers E2B's proxy reads
//! (`E2b-Sandbox-Id`, `E2b-Sandbox-Port`, `X-Access-Token`): the code
//! interpreter's `POST /execute` (newline-delimited JSON), envd's `/files`
//! and its Connect-RPC `Filesystem.ListDir`, `Filesystem.Remove` and
//! `Process.Start` (enveloped JSON stream).
//!
//! A sandbox here is a folder (its `/home/user`) and a Python process
//! keeping the notebook's state, running on this machine: it stands in for
//! the service, it does not isolate anything. As on E2B, pausing keeps the
//! kernel's memory. `fail_next` makes the next control-plane call fail the
//! way E2B does (a rate limit, an outage).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::TempDir;

/// The code interpreter's port, and envd's.
const INTERPRETER_PORT: &str = "49999";
const ENVD_PORT: &str = "49983";
const HOME: &str = "/home/user";

/// The notebook: runs each cell like Jupyter (the last expression is the
/// result) and writes E2B's output lines.
const KERNEL: &str = r#"
import ast, io, json, signal, sys, traceback
# Interrupts raise KeyboardInterrupt even when this process was started with
# SIGINT ignored (as a background job's children are).
signal.signal(signal.SIGINT, signal.default_int_handler)
out = sys.stdout
def emit(item):
    out.write(json.dumps(item) + "\n"); out.flush()
class Stream(io.TextIOBase):
    def __init__(self, name): self.name = name
    def writable(self): return True
    def write(self, text):
        if text: emit({"type": self.name, "text": text, "timestamp": "2026-01-01T00:00:00Z"})
        return len(text)
scope = {"__name__": "__main__"}
count = 0
for line in sys.stdin:
    request = json.loads(line)
    count += 1
    emit({"type": "number_of_executions", "execution_count": count})
    sys.stdout, sys.stderr = Stream("stdout"), Stream("stderr")
    try:
        tree = ast.parse(request["code"], "<cell>", "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), scope)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), scope)
            if value is not None:
                emit({"type": "result", "text": repr(value), "is_main_result": True, "extra": {}})
    except BaseException as error:
        emit({"type": "error", "name": type(error).__name__, "value": str(error),
              "traceback": "".join(traceback.format_exception(error))})
    finally:
        sys.stdout, sys.stderr = out, sys.__stderr__
    emit({"type": "end_of_execution"})
"#;

struct Kernel {
    child: Child,
    input: ChildStdin,
    output: tokio::io::Lines<BufReader<ChildStdout>>,
}

struct Sandbox {
    token: String,
    dir: PathBuf,
    paused: bool,
    template: String,
    metadata: Value,
    kernel: Arc<tokio::sync::Mutex<Kernel>>,
}

struct Inner {
    api_key: String,
    root: PathBuf,
    sandboxes: Mutex<HashMap<String, Sandbox>>,
    /// The next control-plane call answers this status and message.
    fail_next: Mutex<Option<(u16, String)>>,
    /// Control-plane calls seen: method and path.
    calls: Mutex<Vec<String>>,
}

/// The stand-in; stopped on drop.
pub struct E2bStandIn {
    /// The one address for the API and the sandboxes (`api_url`, `sandbox_url`).
    pub url: String,
    pub api_key: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
    _root: TempDir,
}

impl std::fmt::Debug for E2bStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2bStandIn").field("url", &self.url).finish()
    }
}

impl Drop for E2bStandIn {
    fn drop(&mut self) {
        self.task.abort();
        for (_, sandbox) in self.inner.sandboxes.lock().unwrap().drain() {
            if let Ok(mut kernel) = sandbox.kernel.try_lock() {
                let _ = kernel.child.start_kill();
            }
        }
    }
}

fn error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(json!({ "code": status, "message": message }))).into_response()
}

impl E2bStandIn {
    pub async fn start() -> E2bStandIn {
        let root = TempDir::new("e2b");
        let api_key = format!("e2b_{}", uuid::Uuid::now_v7().simple());
        let inner = Arc::new(Inner {
            api_key: api_key.clone(),
            root: root.path.clone(),
            sandboxes: Mutex::new(HashMap::new()),
            fail_next: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/sandboxes", post(create))
            .route("/sandboxes/{id}", get(detail).merge(delete(kill)))
            .route("/sandboxes/{id}/pause", post(pause))
            .route("/sandboxes/{id}/connect", post(connect))
            .route("/execute", post(execute))
            .route("/files", get(download).merge(post(upload)))
            .route("/filesystem.Filesystem/ListDir", post(list_dir))
            .route("/filesystem.Filesystem/Remove", post(remove))
            .route("/filesystem.Filesystem/Stat", post(stat))
            .route("/process.Process/Start", post(process_start))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // Each output line goes out at once (no small-write delay).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        E2bStandIn { url, api_key, inner, task, _root: root }
    }

    /// The next control-plane call fails with this status and message.
    pub fn fail_next(&self, status: u16, message: &str) {
        *self.inner.fail_next.lock().unwrap() = Some((status, message.to_owned()));
    }

    /// Control-plane calls so far (`POST /sandboxes`, …).
    pub fn calls(&self) -> Vec<String> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// Sandboxes that exist now, and how many of them are paused.
    pub fn sandboxes(&self) -> (usize, usize) {
        let sandboxes = self.inner.sandboxes.lock().unwrap();
        (sandboxes.len(), sandboxes.values().filter(|s| s.paused).count())
    }
}

/// Checks the API key and records the call; an injected failure answers first.
/// A refusal: the status and E2B's message.
type Refusal = (u16, String);

fn control(inner: &Inner, headers: &HeaderMap, call: String) -> Result<(), Refusal> {
    inner.calls.lock().unwrap().push(call);
    if let Some(refusal) = inner.fail_next.lock().unwrap().take() {
        return Err(refusal);
    }
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if key != inner.api_key {
        return Err((401, "Invalid API key".into()));
    }
    Ok(())
}

async fn start_kernel(dir: &Path) -> Kernel {
    let mut child = Command::new("python3")
        .args(["-u", "-c", KERNEL])
        .current_dir(dir)
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the E2B stand-in runs python3");
    let input = child.stdin.take().unwrap();
    let output = BufReader::new(child.stdout.take().unwrap()).lines();
    Kernel { child, input, output }
}

fn sandbox_json(id: &str, sandbox: &Sandbox) -> Value {
    json!({
        "templateID": sandbox.template, "sandboxID": id, "clientID": "6532622b",
        "envdVersion": "0.6.4", "envdAccessToken": sandbox.token, "domain": null,
    })
}

async fn create(State(inner): State<Arc<Inner>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Err((status, message)) = control(&inner, &headers, "POST /sandboxes".into()) {
        return error(status, &message);
    }
    let Some(template) = body.get("templateID").and_then(Value::as_str) else {
        return error(400, "templateID is required");
    };
    let id: String = uuid::Uuid::now_v7().simple().to_string().chars().rev().take(20).collect();
    let dir = inner.root.join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = Arc::new(tokio::sync::Mutex::new(start_kernel(&dir).await));
    let sandbox = Sandbox {
        token: uuid::Uuid::now_v7().simple().to_string(),
        dir,
        paused: false,
        template: template.to_owned(),
        metadata: body.get("metadata").cloned().unwrap_or(json!({})),
        kernel,
    };
    let answer = sandbox_json(&id, &sandbox);
    inner.sandboxes.lock().unwrap().insert(id, sandbox);
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn detail(State(inner): State<Arc<Inner>>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Err((status, message)) = control(&inner, &headers, format!("GET /sandboxes/{id}")) {
        return error(status, &message);
    }
    let sandboxes = inner.sandboxes.lock().unwrap();
    let Some(sandbox) = sandboxes.get(&id) else { return error(404, &format!("sandbox \"{id}\" doesn't exist")) };
    let mut answer = sandbox_json(&id, sandbox);
    answer["state"] = json!(if sandbox.paused { "paused" } else { "running" });
    answer["metadata"] = sandbox.metadata.clone();
    answer["cpuCount"] = json!(2);
    answer["memoryMB"] = json!(512);
    answer["diskSizeMB"] = json!(1024);
    answer["startedAt"] = json!("2026-01-01T00:00:00Z");
    answer["endAt"] = json!("2026-01-01T01:00:00Z");
    Json(answer).into_response()
}

async fn kill(State(inner): State<Arc<Inner>>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Err((status, message)) = control(&inner, &headers, format!("DELETE /sandboxes/{id}")) {
        return error(status, &message);
    }
    let removed = inner.sandboxes.lock().unwrap().remove(&id);
    match removed {
        Some(sandbox) => {
            sandbox.kernel.lock().await.child.start_kill().ok();
            let _ = std::fs::remove_dir_all(&sandbox.dir);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(404, &format!("sandbox \"{id}\" not found")),
    }
}

async fn pause(State(inner): State<Arc<Inner>>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Err((status, message)) = control(&inner, &headers, format!("POST /sandboxes/{id}/pause")) {
        return error(status, &message);
    }
    let mut sandboxes = inner.sandboxes.lock().unwrap();
    match sandboxes.get_mut(&id) {
        None => error(404, &format!("sandbox \"{id}\" not found")),
        Some(sandbox) if sandbox.paused => error(409, &format!("sandbox \"{id}\" is already paused")),
        Some(sandbox) => {
            sandbox.paused = true;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

async fn connect(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Err((status, message)) = control(&inner, &headers, format!("POST /sandboxes/{id}/connect")) {
        return error(status, &message);
    }
    if body.get("timeout").and_then(Value::as_i64).is_none_or(|t| t < 0) {
        return error(400, "timeout is required");
    }
    let mut sandboxes = inner.sandboxes.lock().unwrap();
    let Some(sandbox) = sandboxes.get_mut(&id) else { return error(404, &format!("sandbox \"{id}\" not found")) };
    let status = if sandbox.paused { StatusCode::CREATED } else { StatusCode::OK };
    sandbox.paused = false;
    (status, Json(sandbox_json(&id, sandbox))).into_response()
}

/// The sandbox a sandbox-service request is routed to, as E2B's proxy does:
/// by its headers, checking the port and the access token.
fn routed(
    inner: &Inner,
    headers: &HeaderMap,
    port: &str,
) -> Result<(PathBuf, Arc<tokio::sync::Mutex<Kernel>>), Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(id), Some(asked)) = (header("e2b-sandbox-id"), header("e2b-sandbox-port")) else {
        return Err((400, "Missing header: E2b-Sandbox-Id or E2b-Sandbox-Port".into()));
    };
    if asked != port {
        return Err((502, format!("nothing listens on port {asked} of this service")));
    }
    let sandboxes = inner.sandboxes.lock().unwrap();
    let Some(sandbox) = sandboxes.get(&id) else {
        return Err((502, format!("The sandbox {id} was not found")));
    };
    if sandbox.paused {
        return Err((502, format!("The sandbox {id} is paused")));
    }
    if header("x-access-token").as_deref() != Some(sandbox.token.as_str()) {
        let message = "unauthorized access, please provide a valid access token or method signing if supported";
        return Err((401, message.into()));
    }
    Ok((sandbox.dir.clone(), sandbox.kernel.clone()))
}

async fn execute(State(inner): State<Arc<Inner>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let (_, kernel) = match routed(&inner, &headers, INTERPRETER_PORT) {
        Ok(found) => found,
        Err((status, message)) => return error(status, &message),
    };
    if body.get("context_id").is_some_and(|v| !v.is_null()) && body.get("language").is_some_and(|v| !v.is_null()) {
        return (StatusCode::BAD_REQUEST, "Only one of context_id or language can be provided").into_response();
    }
    let code = body.get("code").and_then(Value::as_str).unwrap_or_default().to_owned();
    let (lines, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut kernel = kernel.lock().await;
        let request = format!("{}\n", json!({ "code": code }));
        if kernel.input.write_all(request.as_bytes()).await.is_err() {
            return;
        }
        let mut interrupted = false;
        // E2B's server writes a keepalive line after a silence (every 5 s;
        // here 1 s), which is also how it notices a client gone.
        let mut keepalive = tokio::time::interval(std::time::Duration::from_secs(1));
        keepalive.tick().await;
        loop {
            let line = tokio::select! {
                line = kernel.output.next_line() => match line {
                    Ok(Some(line)) => line,
                    _ => break,
                },
                _ = keepalive.tick() => "{\"type\": \"keepalive\"}".to_owned(),
            };
            let end = line.contains("\"end_of_execution\"");
            // A client gone interrupts the kernel, as E2B's server does.
            if lines.send(Ok(Bytes::from(format!("{line}\n")))).await.is_err() && !interrupted {
                interrupted = true;
                if let Some(pid) = kernel.child.id() {
                    let _ = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status();
                }
            }
            if end {
                break;
            }
        }
    });
    Response::new(Body::from_stream(tokio_stream_of(receiver)))
}

fn tokio_stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// `/home/user/...` (or relative to it) inside the sandbox's folder.
fn inside(dir: &Path, path: &str) -> Option<PathBuf> {
    let relative = path.strip_prefix(HOME).unwrap_or(path).trim_start_matches('/');
    if relative.split('/').any(|part| part == "..") {
        return None;
    }
    Some(if relative.is_empty() { dir.to_owned() } else { dir.join(relative) })
}

async fn download(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (dir, _) = match routed(&inner, &headers, ENVD_PORT) {
        Ok(found) => found,
        Err((status, message)) => return error(status, &message),
    };
    let path = query.get("path").cloned().unwrap_or_default();
    let Some(file) = inside(&dir, &path) else { return error(400, &format!("invalid path '{path}'")) };
    if file.is_dir() {
        return error(400, &format!("path '{path}' is a directory"));
    }
    match tokio::fs::read(&file).await {
        Ok(bytes) => bytes.into_response(),
        Err(_) => error(404, &format!("path '{path}' does not exist")),
    }
}

async fn upload(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let (dir, _) = match routed(&inner, &headers, ENVD_PORT) {
        Ok(found) => found,
        Err((status, message)) => return error(status, &message),
    };
    let kind = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let path = query.get("path").cloned().unwrap_or_default();
    let Some(file) = inside(&dir, &path) else { return error(400, &format!("invalid path '{path}'")) };
    let bytes = if kind.starts_with("application/octet-stream") {
        body.to_vec()
    } else if kind.starts_with("multipart/form-data") {
        match multipart_file(&kind, &body) {
            Some(bytes) => bytes,
            None => return error(400, "no part named file"),
        }
    } else {
        return error(
            400,
            &format!("unsupported content type: {kind}, expected multipart/form-data or application/octet-stream"),
        );
    };
    if let Some(parent) = file.parent() {
        let _ = tokio::fs::create_dir_all(parent).await;
    }
    if tokio::fs::write(&file, bytes).await.is_err() {
        return error(500, "cannot write the file");
    }
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let full = format!("{HOME}/{}", file.strip_prefix(&dir).unwrap().display());
    Json(json!([{ "path": full, "name": name, "type": "file", "metadata": {} }])).into_response()
}

/// The bytes of the multipart part named `file`.
fn multipart_file(kind: &str, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = kind.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let mut start = 0;
    while let Some(offset) = find(&text[start..], delimiter.as_bytes()) {
        parts.push(start + offset);
        start += offset + delimiter.len();
    }
    for pair in parts.windows(2) {
        let part = &text[pair[0] + delimiter.len()..pair[1]];
        let header_end = find(part, b"\r\n\r\n")?;
        let headers = String::from_utf8_lossy(&part[..header_end]);
        if headers.contains("name=\"file\"") {
            let content = &part[header_end + 4..];
            return Some(content.strip_suffix(b"\r\n").unwrap_or(content).to_vec());
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn connect_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

fn entry_info(dir: &Path, path: &Path) -> Value {
    let meta = std::fs::symlink_metadata(path).ok();
    let kind = match &meta {
        Some(m) if m.file_type().is_symlink() => "FILE_TYPE_SYMLINK",
        Some(m) if m.is_dir() => "FILE_TYPE_DIRECTORY",
        _ => "FILE_TYPE_FILE",
    };
    let mut entry = json!({
        "name": path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        "type": kind,
        "path": format!("{HOME}/{}", path.strip_prefix(dir).unwrap_or(path).display()),
        "modifiedTime": "2026-01-01T00:00:00Z",
    });
    let size = meta.map(|m| m.len()).unwrap_or(0);
    if size != 0 {
        entry["size"] = json!(size.to_string());
    }
    entry
}

async fn list_dir(State(inner): State<Arc<Inner>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let (dir, _) = match routed(&inner, &headers, ENVD_PORT) {
        Ok(found) => found,
        Err((status, message)) => return error(status, &message),
    };
    let path = body.get("path").and_then(Value::as_str).unwrap_or_default();
    let depth = body.get("depth").and_then(Value::as_u64).unwrap_or(1).max(1);
    let Some(folder) = inside(&dir, path) else {
        return connect_error(StatusCode::BAD_REQUEST, "invalid_argument", "bad path");
    };
    if !folder.exists() {
        return connect_error(StatusCode::NOT_FOUND, "not_found", &format!("directory not found: {path}"));
    }
    if !folder.is_dir() {
        return connect_error(StatusCode::BAD_REQUEST, "invalid_argument", "path is not a directory");
    }
    let mut entries = Vec::new();
    let mut pending = vec![(folder, 1)];
    while let Some((current, level)) = pending.pop() {
        for item in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = item.path();
            entries.push(entry_info(&dir, &path));
            if level < depth && item.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push((path, level + 1));
            }
        }
    }
    if entries.is_empty() {
        Json(json!({})).into_response()
    } else {
        Json(json!({ "entries": entries })).into_response()
    }
}

async fn stat(State(inner): State<Arc<Inner>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let (dir, _) = match routed(&inner, &headers, ENVD_PORT) {
        Ok(found) => found,
        Err((status, message)) => return error(status, &message),
    };
    let path = body.get("path").and_then(Value::as_str).unwrap_or_default();
    match inside(&dir, path) {
        Some(target) if target.exists() => Json(json!({ "entry": entry_info(&dir, &target) })).into_response(),
        Some(_) => connect_error(StatusCode::NOT_FOUND, "not_found", &format!("file not found: {path}")),
        None => connect_error(StatusCode::BAD_REQUEST, "invalid_argument", "bad path"),
    }
}

async fn remove(State(inner): State<Arc<Inner>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let (dir, _) = match routed(&inner, &headers, ENVD_PORT) {
        Ok(found) => found,
        Err((status, message)) => return error(status, &message),
    };
    let path = body.get("path").and_then(Value::as_str).unwrap_or_default();
    let Some(target) = inside(&dir, path) else {
        return connect_error(StatusCode::BAD_REQUEST, "invalid_argument", "bad path");
    };
    if target.is_dir() {
        let _ = std::fs::remove_dir_all(&target);
    } else {
        let _ = std::fs::remove_file(&target);
    }
    Json(json!({})).into_response()
}

/// One Connect envelope: flags, a big-endian length, the JSON.
fn envelope(flags: u8, message: &Value) -> Bytes {
    let payload = serde_json::to_vec(message).unwrap();
    let mut frame = vec![flags];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    Bytes::from(frame)
}

async fn process_start(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let (dir, _) = match routed(&inner, &headers, ENVD_PORT) {
        Ok(found) => found,
        Err((status, message)) => return error(status, &message),
    };
    if body.len() < 5 || body[0] != 0 {
        return connect_error(StatusCode::BAD_REQUEST, "invalid_argument", "one enveloped message expected");
    }
    let request: Value = serde_json::from_slice(&body[5..]).unwrap_or_default();
    let process = &request["process"];
    let command = process["cmd"].as_str().unwrap_or("/bin/bash").to_owned();
    let args: Vec<String> = process["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let (frames, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let child = Command::new(&command)
            .args(&args)
            .current_dir(&dir)
            .env("HOME", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                let end = json!({ "error": { "code": "invalid_argument", "message": e.to_string() } });
                let _ = frames.send(Ok(envelope(2, &end))).await;
                return;
            }
        };
        let _ = frames.send(Ok(envelope(0, &json!({ "event": { "start": { "pid": child.id() } } })))).await;
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let (mut out_buffer, mut err_buffer) = ([0u8; 8192], [0u8; 8192]);
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            let (name, read) = tokio::select! {
                read = stdout.read(&mut out_buffer), if out_open => ("stdout", read.map(|n| out_buffer[..n].to_vec())),
                read = stderr.read(&mut err_buffer), if err_open => ("stderr", read.map(|n| err_buffer[..n].to_vec())),
            };
            match read {
                Ok(bytes) if !bytes.is_empty() => {
                    let event = json!({ "event": { "data": { name: STANDARD.encode(&bytes) } } });
                    let _ = frames.send(Ok(envelope(0, &event))).await;
                }
                _ if name == "stdout" => out_open = false,
                _ => err_open = false,
            }
        }
        let status = child.wait().await.ok();
        let code = status.and_then(|s| s.code()).unwrap_or(-1);
        let mut end = json!({ "exited": true, "status": status.map(|s| s.to_string()).unwrap_or_default() });
        if code != 0 {
            end["exitCode"] = json!(code);
        }
        let _ = frames.send(Ok(envelope(0, &json!({ "event": { "end": end } })))).await;
        let _ = frames.send(Ok(envelope(2, &json!({})))).await;
    });
    Response::builder()
        .header("content-type", "application/connect+json")
        .body(Body::from_stream(tokio_stream_of(receiver)))
        .unwrap()
}
