//! A client of MCP servers (streamable HTTP), for the tools a project adds
//! to its agent: each call opens a session (`initialize`, then
//! `notifications/initialized`, keeping the server's `Mcp-Session-Id`),
//! then lists or calls tools. Answers come as JSON or as server-sent
//! events; requests go through [`SafeHttp`], so MCP servers obey the web
//! tools' rule on private addresses. A server's own headers (its
//! credentials) go with every request.
//!
//! [`tools_of`] and [`tool_result`] read `tools/list` and `tools/call`
//! results, whichever transport brought them (stdio servers are spoken to
//! in the sandbox, and their results read here the same way).

use bytes::Bytes;
use serde_json::{Value, json};

use crate::{SafeHttp, ToolError};

/// The revision this client asks for.
const VERSION: &str = "2025-06-18";

/// A tool an MCP server offers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemoteTool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Its arguments, as a JSON Schema.
    #[serde(default)]
    pub input_schema: Value,
}

/// One session with a server.
struct Session<'a> {
    http: &'a SafeHttp,
    url: &'a str,
    headers: &'a [(String, String)],
    id: Option<String>,
    next: u64,
}

impl<'a> Session<'a> {
    async fn open(http: &'a SafeHttp, url: &'a str, headers: &'a [(String, String)]) -> Result<Session<'a>, ToolError> {
        let mut session = Session { http, url, headers, id: None, next: 1 };
        let params = json!({
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": { "name": "cairn", "version": env!("CARGO_PKG_VERSION") },
        });
        session.request("initialize", params).await?;
        session.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await?;
        Ok(session)
    }

    async fn send(&mut self, message: Value) -> Result<(u16, Option<String>, Bytes), ToolError> {
        let mut headers: Vec<(&str, String)> = self.headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        headers.push(("accept", "application/json, text/event-stream".to_owned()));
        if let Some(id) = &self.id {
            headers.push(("mcp-session-id", id.clone()));
            headers.push(("mcp-protocol-version", VERSION.to_owned()));
        }
        let (status, answer_headers, body) =
            self.http.post_read(self.url, &headers, Bytes::from(message.to_string())).await?;
        if let Some(id) = answer_headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            self.id = Some(id.to_owned());
        }
        if !(200..300).contains(&status) {
            let said = String::from_utf8_lossy(&body).chars().take(300).collect::<String>();
            return Err(ToolError::Failed(format!("the MCP server {} answered {status}: {said}", self.url)));
        }
        let kind = answer_headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok((status, kind, body))
    }

    /// A request's result, or the server's error in words.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, ToolError> {
        let id = self.next;
        self.next += 1;
        let (_, kind, body) =
            self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })).await?;
        let answer = answer_to(id, kind.as_deref(), &body)
            .ok_or_else(|| ToolError::Failed(format!("the MCP server {} did not answer {method}", self.url)))?;
        if let Some(error) = answer.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("an error");
            return Err(ToolError::Failed(format!("the MCP server {} refused {method}: {message}", self.url)));
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }
}

/// The JSON-RPC response with `id` in an answer: JSON, or server-sent
/// events of which one is the response (others are notifications).
fn answer_to(id: u64, content_type: Option<&str>, body: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(body);
    if content_type.is_some_and(|t| t.starts_with("text/event-stream")) {
        return text
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|message| message.get("id").and_then(Value::as_u64) == Some(id));
    }
    serde_json::from_str(&text).ok()
}

/// The tools a server offers.
pub async fn list_tools(
    http: &SafeHttp,
    url: &str,
    headers: &[(String, String)],
) -> Result<Vec<RemoteTool>, ToolError> {
    let mut session = Session::open(http, url, headers).await?;
    Ok(tools_of(&session.request("tools/list", json!({})).await?))
}

/// The tools in a `tools/list` result (entries without a name are left out).
pub fn tools_of(result: &Value) -> Vec<RemoteTool> {
    let tools = result.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
    tools
        .into_iter()
        .filter_map(|tool| {
            Some(RemoteTool {
                name: tool.get("name")?.as_str()?.to_owned(),
                description: tool.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
                input_schema: tool.get("inputSchema").cloned().unwrap_or_else(|| json!({ "type": "object" })),
            })
        })
        .collect()
}

/// Calls a tool; its result as [`tool_result`] reads it.
pub async fn call_tool(
    http: &SafeHttp,
    url: &str,
    headers: &[(String, String)],
    name: &str,
    arguments: Value,
) -> Result<Value, ToolError> {
    let mut session = Session::open(http, url, headers).await?;
    let result = session.request("tools/call", json!({ "name": name, "arguments": arguments })).await?;
    tool_result(name, &result)
}

/// A `tools/call` result: its structured content when it gives one, else
/// its text (read as JSON when it is a JSON object or array); a result
/// marked `isError` is the tool's failure, in its words.
pub fn tool_result(name: &str, result: &Value) -> Result<Value, ToolError> {
    let text: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|parts| parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        return Err(ToolError::Failed(format!("{name} failed: {}", text.join("\n"))));
    }
    let joined = text.join("\n");
    Ok(match result.get("structuredContent") {
        Some(structured) if !structured.is_null() => structured.clone(),
        // Text that is JSON (many servers send their results so) is read as JSON.
        _ => serde_json::from_str::<Value>(&joined)
            .ok()
            .filter(|v| v.is_object() || v.is_array())
            .unwrap_or(Value::String(joined)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_as_json_or_among_server_sent_events() {
        let json_answer = br#"{"jsonrpc":"2.0","id":3,"result":{"ok":true}}"#;
        assert_eq!(answer_to(3, Some("application/json"), json_answer).unwrap()["result"]["ok"], true);
        let events =
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n\
                       event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"n\":5}}\n\n";
        assert_eq!(answer_to(3, Some("text/event-stream"), events).unwrap()["result"]["n"], 5);
        assert!(answer_to(4, Some("text/event-stream"), events).is_none());
    }

    #[test]
    fn results_are_structured_content_json_text_or_text() {
        let structured = json!({ "content": [{ "type": "text", "text": "{}" }], "structuredContent": { "sum": 5 } });
        assert_eq!(tool_result("add", &structured).unwrap(), json!({ "sum": 5 }));
        let json_text = json!({ "content": [{ "type": "text", "text": "[1, 2]" }] });
        assert_eq!(tool_result("add", &json_text).unwrap(), json!([1, 2]));
        let text = json!({ "content": [{ "type": "text", "text": "5" }, { "type": "text", "text": "done" }] });
        assert_eq!(tool_result("add", &text).unwrap(), json!("5\ndone"));
        let failed = json!({ "content": [{ "type": "text", "text": "b is missing" }], "isError": true });
        assert_eq!(tool_result("add", &failed).unwrap_err().to_string(), "add failed: b is missing");
        let listed =
            json!({ "tools": [{ "name": "add", "inputSchema": { "type": "object" } }, { "title": "no name" }] });
        let tools = tools_of(&listed);
        assert_eq!(tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["add"]);
    }
}
