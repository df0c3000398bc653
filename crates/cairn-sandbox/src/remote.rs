//! [`Sandboxes`] on another machine: a client of the sandbox host's HTTP
//! API (`cairn serve --role sandbox-host`). Callers cannot tell it from the
//! local backend: errors come back as the same [`SandboxError`]s (by their
//! stable codes), outputs stream as they are produced, and tool calls from
//! the sandboxed code are answered by the caller's handler here.

use std::time::Duration;

use async_trait::async_trait;
use cairn_core::sandbox::{
    ByteStream, ExecEvent, ExecHandler, ExecOutcome, Execution, NewSandbox, PackagesChange, SandboxError, SandboxInfo,
    SandboxResult, Sandboxes, ToolResult, WorkspaceEntry,
};
use cairn_core::{SandboxId, UserId};
use futures::{StreamExt, TryStreamExt};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

/// A sandbox host, reached over HTTP.
#[derive(Debug, Clone)]
pub struct RemoteSandboxes {
    http: reqwest::Client,
    /// `http://host:port/sandbox/v1`
    base: String,
    token: String,
}

fn unreachable(error: reqwest::Error) -> SandboxError {
    SandboxError::Unavailable(format!("the sandbox host cannot be reached: {error}"))
}

impl RemoteSandboxes {
    /// A client of the sandbox host at `url` (`http://host:port`), using the
    /// shared service credential.
    pub fn new(url: &str, token: &str) -> SandboxResult<RemoteSandboxes> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        let base = format!("{}/sandbox/v1", url.trim_end_matches('/'));
        Ok(RemoteSandboxes { http, base, token: token.to_owned() })
    }

    /// A request to the host, carrying the caller's trace (if any): the
    /// host's span of it joins the run's trace.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        match cairn_core::trace::current() {
            Some(parent) => request.header(cairn_core::trace::TRACEPARENT, parent),
            None => request,
        }
    }

    /// Sends a request; a problem answer becomes its `SandboxError`.
    async fn send(&self, request: RequestBuilder) -> SandboxResult<Response> {
        let response = request.send().await.map_err(unreachable)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let problem: serde_json::Value = response.json().await.unwrap_or_default();
        let code = problem["code"].as_str().unwrap_or_default();
        let detail = problem["detail"].as_str().unwrap_or_default().to_owned();
        Err(match (status.as_u16(), code) {
            (401, _) => SandboxError::Unavailable(format!("the sandbox host refused the service credential: {detail}")),
            (_, "") => SandboxError::Internal(format!("the sandbox host answered {status}")),
            _ => SandboxError::from_code(code, detail),
        })
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> SandboxResult<T> {
        self.send(request)
            .await?
            .json()
            .await
            .map_err(|e| SandboxError::Internal(format!("the sandbox host's answer is not understood: {e}")))
    }
}

#[async_trait]
impl Sandboxes for RemoteSandboxes {
    async fn create(&self, request: NewSandbox) -> SandboxResult<SandboxInfo> {
        self.json(self.request(Method::POST, "/sandboxes").json(&request)).await
    }

    async fn execute(
        &self,
        id: SandboxId,
        execution: Execution,
        handler: &mut dyn ExecHandler,
    ) -> SandboxResult<ExecOutcome> {
        let response =
            self.send(self.request(Method::POST, &format!("/sandboxes/{id}/executions")).json(&execution)).await?;
        let mut body = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: ExecEvent = serde_json::from_slice(&line)
                    .map_err(|e| SandboxError::Internal(format!("a malformed execution event: {e}")))?;
                match event {
                    ExecEvent::Output { output } => handler.output(&output),
                    ExecEvent::ToolCall { call, name, args, kwargs } => {
                        let result = handler.tool_call(&name, args, kwargs).await;
                        let answer = match result {
                            Ok(value) => ToolResult { call, ok: true, value, error: None },
                            Err(error) => ToolResult { call, ok: false, value: Default::default(), error: Some(error) },
                        };
                        let path = format!("/sandboxes/{id}/tool-results");
                        self.send(self.request(Method::POST, &path).json(&answer)).await?;
                    }
                    ExecEvent::Done { outcome } => return Ok(outcome),
                    ExecEvent::Failed { code, detail } => return Err(SandboxError::from_code(&code, detail)),
                }
            }
            match body.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(error)) => return Err(unreachable(error)),
                None => {
                    return Err(SandboxError::Unavailable(
                        "the sandbox host went away before the execution ended".into(),
                    ));
                }
            }
        }
    }

    async fn interrupt(&self, id: SandboxId) -> SandboxResult<()> {
        self.send(self.request(Method::POST, &format!("/sandboxes/{id}/interrupt"))).await.map(drop)
    }

    async fn pause(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        self.json(self.request(Method::POST, &format!("/sandboxes/{id}/pause"))).await
    }

    async fn pause_if_idle(&self, id: SandboxId) -> SandboxResult<Option<SandboxInfo>> {
        let response = self.send(self.request(Method::POST, &format!("/sandboxes/{id}/pause-if-idle"))).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let info = response
            .json()
            .await
            .map_err(|e| SandboxError::Internal(format!("the sandbox host's answer is not understood: {e}")))?;
        Ok(Some(info))
    }

    async fn resume(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        self.json(self.request(Method::POST, &format!("/sandboxes/{id}/resume"))).await
    }

    async fn set_packages(&self, id: SandboxId, change: PackagesChange) -> SandboxResult<()> {
        self.send(self.request(Method::PUT, &format!("/sandboxes/{id}/packages")).json(&change)).await.map(drop)
    }

    async fn destroy(&self, id: SandboxId) -> SandboxResult<()> {
        self.send(self.request(Method::DELETE, &format!("/sandboxes/{id}"))).await.map(drop)
    }

    async fn inspect(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        self.json(self.request(Method::GET, &format!("/sandboxes/{id}"))).await
    }

    async fn list(&self, owner: Option<UserId>) -> SandboxResult<Vec<SandboxInfo>> {
        let mut request = self.request(Method::GET, "/sandboxes");
        if let Some(owner) = owner {
            request = request.query(&[("owner", owner.to_string())]);
        }
        self.json(request).await
    }

    async fn list_files(&self, id: SandboxId, dir: &str, recursive: bool) -> SandboxResult<Vec<WorkspaceEntry>> {
        let request = self
            .request(Method::GET, &format!("/sandboxes/{id}/files"))
            .query(&[("path", dir), ("recursive", if recursive { "true" } else { "false" })]);
        self.json(request).await
    }

    async fn upload(&self, id: SandboxId, path: &str, body: ByteStream) -> SandboxResult<WorkspaceEntry> {
        let request = self
            .request(Method::PUT, &format!("/sandboxes/{id}/files/content"))
            .query(&[("path", path)])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        self.json(request).await
    }

    async fn download(&self, id: SandboxId, path: &str) -> SandboxResult<ByteStream> {
        let request = self.request(Method::GET, &format!("/sandboxes/{id}/files/content")).query(&[("path", path)]);
        let response = self.send(request).await?;
        Ok(Box::pin(response.bytes_stream().map_err(std::io::Error::other)))
    }

    async fn delete_path(&self, id: SandboxId, path: &str) -> SandboxResult<()> {
        let request = self.request(Method::DELETE, &format!("/sandboxes/{id}/files")).query(&[("path", path)]);
        self.send(request).await.map(drop)
    }
}
