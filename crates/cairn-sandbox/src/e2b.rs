//! Sandboxes in E2B's cloud (`sandbox.backend = "e2b"`), behind the same
//! `Sandboxes` interface: created, paused, resumed (`connect`) and killed
//! through E2B's REST API; Python run through the code interpreter's
//! `POST /execute` with its outputs streamed (newline-delimited JSON); shell
//! commands through envd's `Process.Start` (a Connect stream); workspace
//! files through envd's `/files` and `Filesystem` calls. The workspace is
//! the sandbox user's home, `/home/user`.
//!
//! What E2B does differently from Cairn's own backends: pausing keeps the
//! kernel's memory (variables survive a resume); limits are E2B's (the wall
//! time of an execution is enforced here, by dropping the stream, which
//! interrupts the kernel); code cannot call Cairn's host tools (E2B has no
//! channel back to the caller), so a run's tools stay outside the sandbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cairn_core::sandbox::{
    ByteStream, EffectiveLimits, EntryKind, ExecHandler, ExecOutcome, Execution, NewSandbox, Output, SandboxError,
    SandboxInfo, SandboxResult, SandboxState, Sandboxes, WorkspaceEntry,
};
use cairn_core::{SandboxId, UserId};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::workspace;

const INTERPRETER_PORT: &str = "49999";
const ENVD_PORT: &str = "49983";
const HOME: &str = "/home/user";

/// How Cairn reaches E2B.
#[derive(Debug, Clone)]
pub struct E2bConfig {
    /// The control plane, `https://api.e2b.app`.
    pub api_url: String,
    /// One address for every sandbox's services, routed by headers (E2B's
    /// `sandbox_url`); empty: `https://{port}-{sandbox}.{domain}`.
    pub sandbox_url: String,
    pub domain: String,
    pub api_key: String,
    /// The template sandboxes start from (`code-interpreter-v1`).
    pub template: String,
    /// Seconds a sandbox lives without being resumed or used (E2B's TTL).
    pub timeout_secs: u64,
    /// The limits reported for sandboxes (E2B enforces its own; the wall
    /// time of one execution is enforced here).
    pub limits: EffectiveLimits,
}

#[derive(Debug, Clone)]
struct Remote {
    e2b_id: String,
    token: Option<String>,
    domain: Option<String>,
    info: SandboxInfo,
}

/// Sandboxes in E2B's cloud.
#[derive(Debug, Clone)]
pub struct E2bSandboxes {
    config: Arc<E2bConfig>,
    http: reqwest::Client,
    sandboxes: Arc<Mutex<HashMap<SandboxId, Remote>>>,
    /// Interrupt signals for running executions.
    running: Arc<Mutex<HashMap<SandboxId, Arc<tokio::sync::Notify>>>>,
    /// One execution at a time per sandbox, in the order they arrive.
    turns: Arc<Mutex<HashMap<SandboxId, Arc<tokio::sync::Mutex<()>>>>>,
}

fn unavailable(error: impl std::fmt::Display) -> SandboxError {
    SandboxError::Unavailable(format!("E2B: {error}"))
}

/// An E2B error answer as a sandbox error.
async fn refused(response: reqwest::Response) -> SandboxError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(body);
    match status {
        401 | 403 => SandboxError::Unavailable(format!("E2B refused the API key: {message}")),
        404 => SandboxError::NotFound,
        429 => SandboxError::CapReached(format!("E2B's limit is reached: {message}")),
        _ => SandboxError::Unavailable(format!("E2B answered {status}: {message}")),
    }
}

impl E2bSandboxes {
    pub fn new(config: E2bConfig) -> SandboxResult<E2bSandboxes> {
        if config.api_key.is_empty() {
            return Err(SandboxError::Unavailable("sandbox.e2b_api_key is needed for the E2B backend".into()));
        }
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build().map_err(unavailable)?;
        Ok(E2bSandboxes {
            config: Arc::new(config),
            http,
            sandboxes: Arc::new(Mutex::new(HashMap::new())),
            running: Arc::new(Mutex::new(HashMap::new())),
            turns: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn remote(&self, id: SandboxId) -> SandboxResult<Remote> {
        self.sandboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
            .ok_or(SandboxError::NotFound)
    }

    fn update(&self, id: SandboxId, change: impl FnOnce(&mut Remote)) -> SandboxResult<SandboxInfo> {
        let mut sandboxes = self.sandboxes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let remote = sandboxes.get_mut(&id).ok_or(SandboxError::NotFound)?;
        change(remote);
        Ok(remote.info.clone())
    }

    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.config.api_url.trim_end_matches('/'));
        self.http.request(method, url).header("x-api-key", &self.config.api_key)
    }

    /// A request to one of a sandbox's services, as E2B's SDKs make it.
    fn service(&self, remote: &Remote, port: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let base = if self.config.sandbox_url.is_empty() {
            let domain = remote.domain.as_deref().unwrap_or(&self.config.domain);
            format!("https://{port}-{}.{domain}", remote.e2b_id)
        } else {
            self.config.sandbox_url.trim_end_matches('/').to_owned()
        };
        let mut request = self
            .http
            .request(method, format!("{base}{path}"))
            .header("e2b-sandbox-id", &remote.e2b_id)
            .header("e2b-sandbox-port", port);
        if let Some(token) = &remote.token {
            request = request.header("x-access-token", token);
        }
        request
    }

    /// Answers a paused sandbox's execution by resuming it first.
    async fn awake(&self, id: SandboxId) -> SandboxResult<Remote> {
        if self.remote(id)?.info.state == SandboxState::Paused {
            self.resume(id).await?;
        }
        self.remote(id)
    }

    async fn run_python(
        &self,
        remote: &Remote,
        code: &str,
        handler: &mut dyn ExecHandler,
        stop: &tokio::sync::Notify,
    ) -> SandboxResult<ExecOutcome> {
        let body = json!({ "code": code, "context_id": null, "language": null, "env_vars": null });
        let request = self.service(remote, INTERPRETER_PORT, reqwest::Method::POST, "/execute").json(&body);
        let response = request.send().await.map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let mut lines = response.bytes_stream().map_err(std::io::Error::other);
        let limits = &remote.info.limits;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(limits.wall_time_secs);
        let (mut outputs, mut pending, mut ok, mut printed) = (Vec::new(), Vec::<u8>::new(), true, 0u64);
        loop {
            let chunk = tokio::select! {
                chunk = lines.next() => chunk,
                () = tokio::time::sleep_until(deadline) => {
                    // Dropping the stream interrupts the kernel on E2B's side.
                    let why = format!("wall time limit of {} s exceeded; the execution was interrupted", limits.wall_time_secs);
                    return Ok(stopped(outputs, why, handler));
                }
                () = stop.notified() => {
                    let why = "the execution was interrupted".to_owned();
                    return Ok(stopped(outputs, why, handler));
                }
            };
            let Some(chunk) = chunk else {
                let why = "E2B ended the execution's stream before its end".to_owned();
                return Err(SandboxError::Unavailable(why));
            };
            pending.extend_from_slice(&chunk.map_err(unavailable)?);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(item) = serde_json::from_slice::<Value>(&line) else { continue };
                let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                let output = match item.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "end_of_execution" => {
                        return Ok(ExecOutcome { ok, exit_code: None, outputs, limit: None, notice: None });
                    }
                    kind @ ("stdout" | "stderr") => {
                        printed += text("text").len() as u64;
                        if printed > limits.output_bytes {
                            let why = format!(
                                "output limit of {} bytes exceeded; the execution was interrupted",
                                limits.output_bytes
                            );
                            return Ok(stopped(outputs, why, handler));
                        }
                        Output::Stream { name: kind.to_owned(), text: text("text") }
                    }
                    "result" => {
                        let data = mime_bundle(&item);
                        if item.get("is_main_result").and_then(Value::as_bool).unwrap_or(false) {
                            Output::Result { data }
                        } else {
                            Output::Display { data }
                        }
                    }
                    "error" => {
                        ok = false;
                        Output::Error {
                            ename: text("name"),
                            evalue: text("value"),
                            traceback: text("traceback").lines().map(|l| format!("{l}\n")).collect(),
                        }
                    }
                    // number_of_executions, keepalive and types to come.
                    _ => continue,
                };
                handler.output(&output);
                outputs.push(output);
            }
        }
    }

    async fn run_shell(
        &self,
        remote: &Remote,
        command: &str,
        handler: &mut dyn ExecHandler,
        stop: &tokio::sync::Notify,
    ) -> SandboxResult<ExecOutcome> {
        let limits = &remote.info.limits;
        let message = json!({
            "process": { "cmd": "/bin/bash", "args": ["-l", "-c", command], "envs": {}, "cwd": HOME },
            "stdin": false,
        });
        let payload = serde_json::to_vec(&message).map_err(|e| SandboxError::Internal(e.to_string()))?;
        let mut frame = vec![0u8];
        frame.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_be_bytes());
        frame.extend_from_slice(&payload);
        let response = self
            .service(remote, ENVD_PORT, reqwest::Method::POST, "/process.Process/Start")
            .header("content-type", "application/connect+json")
            .header("connect-protocol-version", "1")
            .header("connect-timeout-ms", (limits.wall_time_secs * 1000).to_string())
            .body(frame)
            .send()
            .await
            .map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let mut stream = response.bytes_stream();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(limits.wall_time_secs);
        let (mut outputs, mut pending, mut exit_code) = (Vec::new(), Vec::<u8>::new(), None);
        loop {
            let chunk = tokio::select! {
                chunk = stream.next() => chunk,
                () = tokio::time::sleep_until(deadline) => {
                    let why = format!("wall time limit of {} s exceeded; the execution was interrupted", limits.wall_time_secs);
                    return Ok(stopped(outputs, why, handler));
                }
                () = stop.notified() => return Ok(stopped(outputs, "the execution was interrupted".into(), handler)),
            };
            let Some(chunk) = chunk else {
                return Err(SandboxError::Unavailable("E2B ended the command's stream before its end".into()));
            };
            pending.extend_from_slice(&chunk.map_err(unavailable)?);
            while pending.len() >= 5 {
                let length = u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
                if pending.len() < 5 + length {
                    break;
                }
                let flags = pending[0];
                let message: Value = serde_json::from_slice(&pending[5..5 + length]).unwrap_or_default();
                pending.drain(..5 + length);
                if flags & 2 != 0 {
                    if let Some(error) = message.get("error") {
                        let why = error.get("message").and_then(Value::as_str).unwrap_or("the command failed");
                        return Err(SandboxError::Unavailable(format!("E2B: {why}")));
                    }
                    let ok = exit_code == Some(0);
                    return Ok(ExecOutcome { ok, exit_code, outputs, limit: None, notice: None });
                }
                let event = &message["event"];
                if let Some(data) = event.get("data") {
                    for name in ["stdout", "stderr"] {
                        if let Some(encoded) = data.get(name).and_then(Value::as_str) {
                            let bytes = STANDARD.decode(encoded).unwrap_or_default();
                            let output = Output::Stream {
                                name: name.to_owned(),
                                text: String::from_utf8_lossy(&bytes).into_owned(),
                            };
                            handler.output(&output);
                            outputs.push(output);
                        }
                    }
                } else if let Some(end) = event.get("end") {
                    // Protobuf's JSON leaves a zero exit code out.
                    exit_code = Some(end.get("exitCode").and_then(Value::as_i64).map_or(0, |c| c as i32));
                }
            }
        }
    }

    async fn connect_rpc(&self, remote: &Remote, method: &str, body: Value) -> SandboxResult<Value> {
        let response = self
            .service(remote, ENVD_PORT, reqwest::Method::POST, &format!("/filesystem.Filesystem/{method}"))
            .header("connect-protocol-version", "1")
            .json(&body)
            .send()
            .await
            .map_err(unavailable)?;
        if response.status().is_success() {
            return response.json().await.map_err(unavailable);
        }
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        let message = answer.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
        Err(match answer.get("code").and_then(Value::as_str) {
            Some("not_found") => SandboxError::NoSuchPath(message),
            Some("invalid_argument") => SandboxError::InvalidPath(message),
            _ => SandboxError::Unavailable(format!("E2B answered {status}: {message}")),
        })
    }
}

/// An execution cut short: what came so far, and why.
fn stopped(mut outputs: Vec<Output>, why: String, handler: &mut dyn ExecHandler) -> ExecOutcome {
    let error = crate::kernel::limit_error(&why);
    handler.output(&error);
    outputs.push(error);
    ExecOutcome { ok: false, exit_code: None, outputs, limit: Some(why), notice: None }
}

/// An E2B result as a MIME bundle, as Cairn's kernels give one.
fn mime_bundle(item: &Value) -> Value {
    let mut data = serde_json::Map::new();
    for (key, mime) in [
        ("text", "text/plain"),
        ("html", "text/html"),
        ("markdown", "text/markdown"),
        ("svg", "image/svg+xml"),
        ("png", "image/png"),
        ("jpeg", "image/jpeg"),
        ("latex", "text/latex"),
        ("json", "application/json"),
    ] {
        if let Some(value) = item.get(key) {
            data.insert(mime.to_owned(), value.clone());
        }
    }
    if let Some(Value::Object(extra)) = item.get("extra") {
        for (mime, value) in extra {
            data.entry(mime.clone()).or_insert_with(|| value.clone());
        }
    }
    Value::Object(data)
}

/// `/home/user/<path>` for a checked workspace path.
fn in_home(path: &str) -> SandboxResult<String> {
    let clean = workspace::clean(path)?;
    Ok(if clean.is_empty() { HOME.to_owned() } else { format!("{HOME}/{clean}") })
}

fn entry(item: &Value) -> Option<WorkspaceEntry> {
    let path = item.get("path").and_then(Value::as_str)?;
    let relative = path.strip_prefix(HOME)?.trim_start_matches('/').to_owned();
    let kind = match item.get("type").and_then(Value::as_str) {
        Some("FILE_TYPE_FILE" | "file") => EntryKind::File,
        Some("FILE_TYPE_DIRECTORY" | "dir") => EntryKind::Directory,
        Some("FILE_TYPE_SYMLINK") => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    // Protobuf's JSON writes 64-bit numbers as strings, and leaves zero out.
    let size = match item.get("size") {
        Some(Value::String(text)) => text.parse().unwrap_or(0),
        Some(value) => value.as_u64().unwrap_or(0),
        None => 0,
    };
    let modified = item
        .get("modifiedTime")
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
    Some(WorkspaceEntry { path: relative, kind, size, modified })
}

#[async_trait]
impl Sandboxes for E2bSandboxes {
    async fn create(&self, request: NewSandbox) -> SandboxResult<SandboxInfo> {
        if let Some(id) = request.id
            && let Ok(remote) = self.remote(id)
        {
            return Ok(remote.info);
        }
        let id = request.id.unwrap_or_default();
        let mut metadata = json!({ "cairn_sandbox": id.to_string(), "cairn_owner": request.owner.to_string() });
        if let Some(thread) = request.thread {
            metadata["cairn_thread"] = json!(thread.to_string());
        }
        let body = json!({
            "templateID": self.config.template,
            "timeout": self.config.timeout_secs,
            "secure": true,
            "allow_internet_access": request.policy.network,
            "metadata": metadata,
            "envVars": {},
        });
        let response = self.api(reqwest::Method::POST, "/sandboxes").json(&body).send().await.map_err(unavailable)?;
        if response.status() != reqwest::StatusCode::CREATED {
            return Err(refused(response).await);
        }
        let created: Value = response.json().await.map_err(unavailable)?;
        let e2b_id = created.get("sandboxID").and_then(Value::as_str).ok_or_else(|| unavailable("no sandboxID"))?;
        let now = OffsetDateTime::now_utc();
        let info = SandboxInfo {
            id,
            owner: request.owner,
            project: request.project,
            thread: request.thread,
            state: SandboxState::Running,
            busy: false,
            limits: EffectiveLimits { network: request.policy.network, ..self.config.limits },
            created_at: now,
            last_active_at: now,
            executions: 0,
            memory_bytes: None,
            processes: None,
            disk_bytes: 0,
        };
        let remote = Remote {
            e2b_id: e2b_id.to_owned(),
            token: created.get("envdAccessToken").and_then(Value::as_str).map(str::to_owned),
            domain: created.get("domain").and_then(Value::as_str).map(str::to_owned),
            info: info.clone(),
        };
        self.sandboxes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, remote);
        Ok(info)
    }

    async fn execute(
        &self,
        id: SandboxId,
        execution: Execution,
        handler: &mut dyn ExecHandler,
    ) -> SandboxResult<ExecOutcome> {
        let turn = self.remote(id).map(|_| {
            let mut turns = self.turns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            turns.entry(id).or_default().clone()
        })?;
        let _turn = turn.lock().await;
        let remote = self.awake(id).await?;
        let stop = Arc::new(tokio::sync::Notify::new());
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, stop.clone());
        self.update(id, |r| r.info.busy = true)?;
        let outcome = match &execution {
            Execution::Python { code } => self.run_python(&remote, code, handler, &stop).await,
            Execution::Shell { command } => self.run_shell(&remote, command, handler, &stop).await,
        };
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        let _ = self.update(id, |r| {
            r.info.busy = false;
            r.info.executions += 1;
            r.info.last_active_at = OffsetDateTime::now_utc();
        });
        outcome
    }

    async fn interrupt(&self, id: SandboxId) -> SandboxResult<()> {
        self.remote(id)?;
        if let Some(stop) = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id) {
            stop.notify_one();
        }
        Ok(())
    }

    async fn pause(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        let remote = self.remote(id)?;
        let path = format!("/sandboxes/{}/pause", remote.e2b_id);
        let response = self.api(reqwest::Method::POST, &path).json(&json!({})).send().await.map_err(unavailable)?;
        // 409: it was paused already.
        if !(response.status().is_success() || response.status() == reqwest::StatusCode::CONFLICT) {
            return Err(refused(response).await);
        }
        self.update(id, |r| r.info.state = SandboxState::Paused)
    }

    async fn pause_if_idle(&self, id: SandboxId) -> SandboxResult<Option<SandboxInfo>> {
        if self.remote(id)?.info.busy {
            return Ok(None);
        }
        self.pause(id).await.map(Some)
    }

    /// E2B keeps a paused sandbox's memory: its variables are still there.
    async fn resume(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        let remote = self.remote(id)?;
        let path = format!("/sandboxes/{}/connect", remote.e2b_id);
        let body = json!({ "timeout": self.config.timeout_secs });
        let response = self.api(reqwest::Method::POST, &path).json(&body).send().await.map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let answer: Value = response.json().await.map_err(unavailable)?;
        let token = answer.get("envdAccessToken").and_then(Value::as_str).map(str::to_owned);
        self.update(id, |r| {
            r.info.state = SandboxState::Running;
            if token.is_some() {
                r.token = token;
            }
        })
    }

    async fn destroy(&self, id: SandboxId) -> SandboxResult<()> {
        let remote = self.remote(id)?;
        let path = format!("/sandboxes/{}", remote.e2b_id);
        let response = self.api(reqwest::Method::DELETE, &path).send().await.map_err(unavailable)?;
        if !(response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND) {
            return Err(refused(response).await);
        }
        self.sandboxes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        self.turns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        Ok(())
    }

    async fn inspect(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        Ok(self.remote(id)?.info)
    }

    async fn list(&self, owner: Option<UserId>) -> SandboxResult<Vec<SandboxInfo>> {
        let sandboxes = self.sandboxes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(sandboxes.values().map(|r| r.info.clone()).filter(|i| owner.is_none_or(|o| i.owner == o)).collect())
    }

    async fn list_files(&self, id: SandboxId, dir: &str, recursive: bool) -> SandboxResult<Vec<WorkspaceEntry>> {
        let remote = self.awake(id).await?;
        let depth = if recursive { 64 } else { 1 };
        let answer = self.connect_rpc(&remote, "ListDir", json!({ "path": in_home(dir)?, "depth": depth })).await?;
        let mut entries: Vec<WorkspaceEntry> =
            answer.get("entries").and_then(Value::as_array).into_iter().flatten().filter_map(entry).collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    async fn upload(&self, id: SandboxId, path: &str, body: ByteStream) -> SandboxResult<WorkspaceEntry> {
        let remote = self.awake(id).await?;
        let target = in_home(path)?;
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body)).file_name(target.clone());
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = self
            .service(&remote, ENVD_PORT, reqwest::Method::POST, "/files")
            .query(&[("path", target.as_str())])
            .multipart(form)
            .send()
            .await
            .map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(match response.status().as_u16() {
                400 => SandboxError::InvalidPath(path.to_owned()),
                507 => SandboxError::WorkspaceFull("E2B: not enough disk space".into()),
                _ => refused(response).await,
            });
        }
        let listed = self.connect_rpc(&remote, "Stat", json!({ "path": target })).await;
        match listed.ok().and_then(|answer| answer.get("entry").and_then(entry)) {
            Some(found) => Ok(found),
            None => {
                Ok(WorkspaceEntry { path: workspace::clean(path)?, kind: EntryKind::File, size: 0, modified: None })
            }
        }
    }

    async fn download(&self, id: SandboxId, path: &str) -> SandboxResult<ByteStream> {
        let remote = self.awake(id).await?;
        let target = in_home(path)?;
        let response = self
            .service(&remote, ENVD_PORT, reqwest::Method::GET, "/files")
            .query(&[("path", target.as_str())])
            .send()
            .await
            .map_err(unavailable)?;
        match response.status().as_u16() {
            200 => Ok(response.bytes_stream().map(|chunk| chunk.map_err(std::io::Error::other)).boxed()),
            404 => Err(SandboxError::NoSuchPath(path.to_owned())),
            400 => Err(SandboxError::InvalidPath(path.to_owned())),
            _ => Err(refused(response).await),
        }
    }

    async fn delete_path(&self, id: SandboxId, path: &str) -> SandboxResult<()> {
        let remote = self.awake(id).await?;
        let target = in_home(path)?;
        if target == HOME {
            return Err(SandboxError::InvalidPath("the workspace itself cannot be deleted".into()));
        }
        self.connect_rpc(&remote, "Remove", json!({ "path": target })).await.map(|_| ())
    }
}
