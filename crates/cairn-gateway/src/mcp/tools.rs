//! The MCP server's tools: what each takes (a JSON Schema) and what it does
//! in the caller's project. A tool that fails answers `isError` with the
//! reason in words, as MCP asks, so the calling model can act on it.

use std::time::Duration;

use bytes::Bytes;
use cairn_auth::{Access, Principal};
use cairn_core::model::RunStatus;
use cairn_core::{ProjectId, RunId, ThreadId};
use futures::StreamExt;
use serde_json::{Value, json};

use super::RpcError;
use crate::threads::follow::{Progress, run_progress};
use crate::threads::{start_run, thread_for};
use crate::{ApiError, AppState};

/// The largest file `read_file` returns, and `upload_file` takes.
const MAX_FILE_BYTES: usize = 1 << 20;

pub(super) fn list() -> Value {
    json!([
        {
            "name": "run_task",
            "title": "Run a task",
            "description": "Give the project's agent a task (it plans, writes and runs Python in a sandbox, and may \
                            save files to the library). Waits for its answer up to timeout_secs; a run still going \
                            then is reported by its id, to read with get_run.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "task": { "type": "string", "description": "What to do, in plain language" },
                    "thread_id": { "type": "string", "description": "Go on in this thread of the project; a new thread otherwise" },
                    "model": { "type": "string", "description": "provider/model; the project's default otherwise" },
                    "wait": { "type": "boolean", "description": "Wait for the answer (default true)" },
                    "timeout_secs": { "type": "integer", "minimum": 1, "maximum": 3600, "description": "How long to wait (default 300)" }
                },
                "required": ["task"]
            }
        },
        {
            "name": "get_run",
            "title": "Read a run",
            "description": "A run's status, and its answer once it succeeded (or why it failed, or what it asks).",
            "inputSchema": {
                "type": "object",
                "properties": { "run_id": { "type": "string" } },
                "required": ["run_id"]
            }
        },
        {
            "name": "list_files",
            "title": "List library files",
            "description": "The files in a folder of the project's library (the newest version of each) and its sub-folders.",
            "inputSchema": {
                "type": "object",
                "properties": { "folder": { "type": "string", "description": "A folder path; the top when left out" } }
            }
        },
        {
            "name": "read_file",
            "title": "Read a library file",
            "description": "The newest version of a text file in the project's library (up to 1 MiB).",
            "inputSchema": {
                "type": "object",
                "properties": { "path": { "type": "string" } },
                "required": ["path"]
            }
        },
        {
            "name": "upload_file",
            "title": "Upload a library file",
            "description": "Saves text as a file in the project's library (a new version when the path exists; up to 1 MiB).",
            "inputSchema": {
                "type": "object",
                "properties": { "path": { "type": "string" }, "content": { "type": "string" } },
                "required": ["path", "content"]
            }
        },
        {
            "name": "search_memory",
            "title": "Search project memory",
            "description": "The project's memories (notes and library text) most like the query, by meaning.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": { "type": "string" },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 50 }
                },
                "required": ["query"]
            }
        }
    ])
}

/// Where a call's progress goes, when the client asked for it (its
/// `progressToken`, and the stream of the POST's answer).
pub(super) type ProgressSink = Option<(Value, tokio::sync::mpsc::UnboundedSender<Value>)>;

/// Who calls, in which project, from where.
pub(super) struct Caller<'a> {
    pub state: &'a AppState,
    pub principal: &'a Principal,
    pub project: ProjectId,
    pub addr: &'a str,
}

/// A tool's result: text, and structured content when there is some.
fn done(text: String, structured: Value) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "structuredContent": structured, "isError": false })
}

fn failed(text: String) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": true })
}

fn text_arg<'v>(args: &'v Value, name: &str) -> Result<&'v str, RpcError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("`{name}` (text) is required")))
}

impl Caller<'_> {
    /// `tools/call`: an unknown tool or bad arguments are protocol errors;
    /// what goes wrong doing it is the tool's result.
    pub(super) async fn call(&self, params: &Value, progress: ProgressSink) -> Result<Value, RpcError> {
        let name =
            params.get("name").and_then(Value::as_str).ok_or_else(|| RpcError::invalid_params("`name` is required"))?;
        let empty = json!({});
        let args = params.get("arguments").unwrap_or(&empty);
        let outcome = match name {
            "run_task" => self.run_task(args, progress).await,
            "get_run" => self.get_run(args).await,
            "list_files" => self.list_files(args).await,
            "read_file" => self.read_file(args).await,
            "upload_file" => self.upload_file(args).await,
            "search_memory" => self.search_memory(args).await,
            other => return Err(RpcError::invalid_params(format!("unknown tool `{other}`"))),
        };
        match outcome {
            Ok(result) => Ok(result),
            Err(Failure::Protocol(error)) => Err(error),
            Err(Failure::Api(error)) => Ok(failed(error.to_string())),
        }
    }

    /// Starts a run and waits for its end; with a progress sink, the run's
    /// steps (the model's reply as it comes, what the code prints) go to it
    /// as progress notifications meanwhile.
    async fn run_task(&self, args: &Value, progress: ProgressSink) -> Result<Value, Failure> {
        let (state, principal) = (self.state, self.principal);
        let task = text_arg(args, "task")?.trim();
        if task.is_empty() || task.chars().count() > 100_000 {
            return Err(RpcError::invalid_params("`task` has 1 to 100000 characters").into());
        }
        state.auth.authorize(principal, self.project, Access::Write).await.map_err(ApiError::from)?;
        let model = args.get("model").and_then(Value::as_str).map(str::to_owned);
        crate::threads::check_model(state, model.as_deref())?;
        let thread = match args.get("thread_id").and_then(Value::as_str) {
            Some(id) => {
                let id: ThreadId =
                    id.parse().map_err(|_| RpcError::invalid_params("`thread_id` is not a thread id"))?;
                Some(thread_for(state, principal, id, Access::Write).await?)
            }
            None => None,
        };
        let options = cairn_agent::RunOptions { model, ..Default::default() };
        let (thread, run) =
            start_run(state, principal, self.project, thread, task, task.to_owned(), options, self.addr, "mcp").await?;
        let reference = json!({ "thread_id": thread.id, "run_id": run.id });
        if args.get("wait").and_then(Value::as_bool) == Some(false) {
            let mut structured = reference;
            structured["status"] = json!("queued");
            return Ok(done(format!("The run {} is queued; read it with get_run.", run.id), structured));
        }
        let timeout =
            Duration::from_secs(args.get("timeout_secs").and_then(Value::as_u64).unwrap_or(300).clamp(1, 3600));
        let mut events = run_progress(state, thread.id, thread.last_event_seq, run.id, progress.is_some()).await?;
        let ending = tokio::time::timeout(timeout, async {
            let mut told = 0u64;
            while let Some(next) = events.next().await {
                match (&next, &progress) {
                    (Progress::Step(text), Some((token, sink))) => {
                        told += 1;
                        let params = json!({ "progressToken": token, "progress": told, "message": text });
                        let _ = sink
                            .send(json!({ "jsonrpc": "2.0", "method": "notifications/progress", "params": params }));
                    }
                    _ if next.ends() => return Some(next),
                    _ => {}
                }
            }
            None
        })
        .await;
        let mut structured = reference;
        Ok(match ending {
            Ok(Some(Progress::Answer { text, .. })) => {
                structured["status"] = json!("succeeded");
                structured["answer"] = json!(text);
                done(text, structured)
            }
            Ok(Some(Progress::Waiting(question))) => {
                structured["status"] = json!("waiting");
                structured["question"] = json!(question);
                done(format!("The run waits for a person: {question}"), structured)
            }
            Ok(Some(Progress::Ended { message, .. })) => failed(message),
            Ok(Some(Progress::Step(_)) | None) => failed("the run's events ended before the run did".into()),
            Err(_) => {
                structured["status"] = json!("running");
                done(
                    format!("The run {} is still going after {} s; read it with get_run.", run.id, timeout.as_secs()),
                    structured,
                )
            }
        })
    }

    async fn get_run(&self, args: &Value) -> Result<Value, Failure> {
        let id: RunId =
            text_arg(args, "run_id")?.parse().map_err(|_| RpcError::invalid_params("`run_id` is not a run id"))?;
        let run = self.state.store.run(id).await.map_err(ApiError::from)?;
        let thread = thread_for(self.state, self.principal, run.thread_id, Access::Read).await?;
        if thread.project_id != self.project {
            return Err(ApiError::NotFound { entity: "run" }.into());
        }
        let mut structured = json!({ "run_id": run.id, "thread_id": run.thread_id, "status": run.status.as_str() });
        let text = match run.status {
            RunStatus::Succeeded => {
                let answer = self.state.store.run_answer(run.id).await.map_err(ApiError::from)?;
                structured["answer"] = json!(answer);
                answer.unwrap_or_default()
            }
            RunStatus::Failed => format!("The run failed: {}", run.error.clone().unwrap_or_default()),
            other => format!("The run is {}.", other.as_str()),
        };
        if let Some(error) = &run.error {
            structured["error"] = json!(error);
        }
        Ok(done(text, structured))
    }

    async fn list_files(&self, args: &Value) -> Result<Value, Failure> {
        let folder = args.get("folder").and_then(Value::as_str).unwrap_or("");
        let listing = self.state.files.list(self.principal, self.project, folder).await.map_err(ApiError::from)?;
        let files: Vec<Value> = listing
            .files
            .iter()
            .map(|f| json!({ "path": f.path, "version": f.version, "size": f.size, "content_type": f.content_type }))
            .collect();
        let mut lines: Vec<String> = listing.folders.iter().map(|f| format!("{f}/")).collect();
        lines.extend(listing.files.iter().map(|f| format!("{} ({} bytes, version {})", f.path, f.size, f.version)));
        let text = if lines.is_empty() { "The folder is empty.".to_owned() } else { lines.join("\n") };
        Ok(done(text, json!({ "folders": listing.folders, "files": files })))
    }

    async fn read_file(&self, args: &Value) -> Result<Value, Failure> {
        let path = text_arg(args, "path")?;
        self.state.auth.authorize(self.principal, self.project, Access::Read).await.map_err(ApiError::from)?;
        let download = self.state.files.read_latest(self.project, path).await.map_err(ApiError::from)?;
        if download.record.size > MAX_FILE_BYTES as i64 {
            return Err(ApiError::Invalid {
                code: "file_too_large",
                detail: format!("{path} is larger than 1 MiB: download it through the API"),
            }
            .into());
        }
        let mut bytes = Vec::new();
        let mut body = download.body;
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.map_err(|_| ApiError::StorageUnavailable)?);
        }
        let text = String::from_utf8(bytes).map_err(|_| ApiError::Invalid {
            code: "not_text",
            detail: format!("{path} is not text: download it through the API"),
        })?;
        Ok(done(text, json!({ "path": download.record.path, "version": download.record.version })))
    }

    async fn upload_file(&self, args: &Value) -> Result<Value, Failure> {
        let path = text_arg(args, "path")?;
        let content = text_arg(args, "content")?;
        if content.len() > MAX_FILE_BYTES {
            return Err(RpcError::invalid_params("`content` is larger than 1 MiB").into());
        }
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(content.to_owned()))]);
        let record = self.state.files.upload(self.principal, self.project, path, body).await.map_err(ApiError::from)?;
        self.state.memory.index_in_background(self.state.files.clone(), record.clone());
        let text = format!("Saved {} (version {}, {} bytes).", record.path, record.version, record.size);
        Ok(done(text, json!({ "path": record.path, "version": record.version, "size": record.size })))
    }

    async fn search_memory(&self, args: &Value) -> Result<Value, Failure> {
        let query = text_arg(args, "query")?;
        self.state.auth.authorize(self.principal, self.project, Access::Read).await.map_err(ApiError::from)?;
        let limit = args.get("limit").and_then(Value::as_i64).unwrap_or(5);
        let found = self.state.memory.recall(self.project, query, limit).await.map_err(ApiError::from)?;
        let results: Vec<Value> = found
            .iter()
            .map(|(chunk, score)| json!({ "source": chunk.source, "text": chunk.text, "score": score }))
            .collect();
        let text = if found.is_empty() {
            "Nothing in the project's memory is like that.".to_owned()
        } else {
            found.iter().map(|(c, s)| format!("[{} · {:.2}] {}", c.source, s, c.text)).collect::<Vec<_>>().join("\n\n")
        };
        Ok(done(text, json!({ "results": results })))
    }
}

/// Why a tool call did not give a result: a protocol error, or a failure
/// the result reports.
enum Failure {
    Protocol(RpcError),
    Api(ApiError),
}

impl From<RpcError> for Failure {
    fn from(error: RpcError) -> Self {
        Failure::Protocol(error)
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure::Api(error)
    }
}
