//! The MCP server over HTTP, message by message: the handshake, the
//! protocol's errors, and the tools' limits. The official MCP Python SDK
//! drives it end to end in `scripts/client_tests.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_testkit::Reply;
use serde_json::{Value, json};

type Api = support::KeyedAgent;

async fn start() -> Api {
    let api = support::KeyedAgent::start("mcp-api", &["m"]).await;
    api.llm.set_default(Reply::Text("```python\nprint('working')\nfinal_answer('42')\n```".into()));
    api
}

impl Api {
    /// One message as `token`: the status and the JSON answer (null when none).
    async fn send(&self, token: &str, message: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/mcp", self.base))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&message)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or_default())
    }

    async fn tool(&self, token: &str, name: &str, arguments: Value) -> Value {
        let (status, answer) = self
            .send(token, json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": { "name": name, "arguments": arguments } }))
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

#[tokio::test]
async fn the_handshake_and_the_protocols_errors() {
    let api = start().await;
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    let (status, answer) = api.send(&api.key, initialize.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["protocolVersion"], "2025-06-18", "the client's revision, which this server speaks");
    assert_eq!(answer["result"]["capabilities"]["tools"]["listChanged"], false);
    let mut newer = initialize.clone();
    newer["params"]["protocolVersion"] = json!("2099-01-01");
    assert_eq!(api.send(&api.key, newer).await.1["result"]["protocolVersion"], "2025-11-25", "else its newest");
    let (status, answer) = api.send(&api.key, json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;
    assert_eq!((status, answer), (202, Value::Null));
    // The newer era's probe is not known here: the client falls back to the handshake.
    let (_, answer) = api.send(&api.key, json!({ "jsonrpc": "2.0", "id": 2, "method": "server/discover" })).await;
    assert_eq!(answer["error"]["code"], -32601);
    let (_, answer) = api.send(&api.key, json!({ "jsonrpc": "2.0", "id": 3, "method": "ping" })).await;
    assert_eq!(answer["result"], json!({}));
    let (_, answer) = api.send(&api.key, json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/list" })).await;
    let tools = answer["result"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 6);
    assert!(tools.iter().all(|t| t["inputSchema"]["type"] == "object"));
    let (_, answer) = api
        .send(&api.key, json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": { "name": "rm_rf" } }))
        .await;
    assert_eq!(answer["error"]["code"], -32602);

    // Not JSON, not JSON-RPC, an unsupported revision: 400 with a JSON-RPC error.
    let response = api.client.post(format!("{}/mcp", api.base)).bearer_auth(&api.key).body("{").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], -32700);
    assert_eq!(api.send(&api.key, json!({ "hello": "there" })).await.0, 400);
    let response = api
        .client
        .post(format!("{}/mcp", api.base))
        .bearer_auth(&api.key)
        .header("mcp-protocol-version", "1999-01-01")
        .json(&json!({ "jsonrpc": "2.0", "id": 6, "method": "ping" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // No key, a bad one, a person's token; no stream on GET.
    let response = api.client.post(format!("{}/mcp", api.base)).json(&initialize).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(api.send("cairn_k_nope", initialize.clone()).await.0, 401);
    assert_eq!(api.send(&api.owner, initialize).await.0, 403);
    let response = api.client.get(format!("{}/mcp", api.base)).bearer_auth(&api.key).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn tools_work_in_the_keys_project_only() {
    let api = start().await;
    let ran = api.tool(&api.key, "run_task", json!({ "task": "What is 6 times 7?" })).await;
    assert_eq!(ran["result"]["isError"], false, "{ran}");
    assert_eq!(ran["result"]["content"][0]["text"], "42");
    let run = ran["result"]["structuredContent"]["run_id"].as_str().unwrap().to_owned();
    // With a progress token and a client that takes a stream: the run's
    // steps as progress notifications, then the response.
    let call = json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": { "name": "run_task", "arguments": { "task": "Again." }, "_meta": { "progressToken": "p1" } } });
    let response = api
        .client
        .post(format!("{}/mcp", api.base))
        .bearer_auth(&api.key)
        .header("accept", "application/json, text/event-stream")
        .json(&call)
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let body = response.text().await.unwrap();
    let messages: Vec<Value> =
        body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let (last, notes) = messages.split_last().unwrap();
    assert_eq!((last["id"].as_i64(), last["result"]["content"][0]["text"].as_str()), (Some(9), Some("42")));
    assert!(notes.iter().all(|n| n["method"] == "notifications/progress" && n["params"]["progressToken"] == "p1"));
    let told: String = notes.iter().map(|n| n["params"]["message"].as_str().unwrap()).collect();
    assert!(told.contains("print('working')") && told.contains("working\n"), "{told}");
    let queued = api.tool(&api.key, "run_task", json!({ "task": "Later.", "wait": false })).await;
    assert_eq!(queued["result"]["structuredContent"]["status"], "queued");
    // A viewer's key reads but does not run.
    let refused = api.tool(&api.viewer_key, "run_task", json!({ "task": "Go." })).await;
    assert_eq!(refused["result"]["isError"], true);
    assert!(refused["result"]["content"][0]["text"].as_str().unwrap().contains("editor"), "{refused}");
    let read = api.tool(&api.viewer_key, "get_run", json!({ "run_id": run })).await;
    assert_eq!(read["result"]["structuredContent"]["answer"], "42");
    let refused = api.tool(&api.viewer_key, "upload_file", json!({ "path": "a.txt", "content": "x" })).await;
    assert_eq!(refused["result"]["isError"], true);
    // Another project's run, a bad id, a path that climbs out: refused.
    let other = support::post_json(
        &api.client,
        &format!("{}/api/v1/projects", api.base),
        &api.owner,
        &json!({ "name": "Other" }),
    )
    .await;
    let body = json!({ "project_id": other["id"], "role": "editor", "name": "other" });
    let other_key = support::post_json(&api.client, &format!("{}/api/v1/api-keys", api.base), &api.owner, &body).await;
    let elsewhere = api.tool(other_key["token"].as_str().unwrap(), "get_run", json!({ "run_id": run })).await;
    assert_eq!(elsewhere["result"]["isError"], true, "{elsewhere}");
    let bad = api.tool(&api.key, "get_run", json!({ "run_id": "run-1" })).await;
    assert_eq!(bad["error"]["code"], -32602);
    let climbing = api.tool(&api.key, "upload_file", json!({ "path": "../../etc/passwd", "content": "x" })).await;
    assert_eq!(climbing["result"]["isError"], true);
    let files = api.tool(&api.key, "list_files", json!({})).await;
    assert_eq!(files["result"]["structuredContent"]["files"], json!([]));
}
