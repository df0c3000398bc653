//! MCP both ways. Cairn's MCP server over HTTP, message by message: the
//! handshake, the protocol's errors, and the tools' limits (the official MCP
//! Python SDK drives it end to end in `scripts/client_tests.py`). And the
//! MCP servers a project adds: a stdio server installed as a package and
//! run in the thread's sandbox with its secrets, and an HTTP server that
//! wants its credential.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_config::Config;
use cairn_testkit::{Package, Reply};
use reqwest::Method;
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

/// A stdio MCP server with the standard library only: one JSON-RPC message
/// a line (after a banner line that is not one); `add` adds the deployment's
/// `CALC_OFFSET` (a secret) too, logs a notification first, and fails
/// without `b`.
const CALC_SERVER: &str = r#"import json, os, sys

ADD = {
    "name": "add",
    "description": "Adds two whole numbers.",
    "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
}


def answer(message):
    method, params = message["method"], message.get("params") or {}
    if method == "initialize":
        return {"protocolVersion": params["protocolVersion"], "capabilities": {"tools": {}},
                "serverInfo": {"name": "calc", "version": "1.0"}}
    if method == "tools/list":
        return {"tools": [ADD]}
    if method == "tools/call":
        arguments = params["arguments"]
        if "b" not in arguments:
            return {"content": [{"type": "text", "text": "b is missing"}], "isError": True}
        total = arguments["a"] + arguments["b"] + int(os.environ.get("CALC_OFFSET", "0"))
        return {"content": [{"type": "text", "text": json.dumps({"sum": total})}], "structuredContent": {"sum": total}}
    raise LookupError(method)


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main():
    print("calc is ready", file=sys.stderr)
    # Not a message: MCP forbids it, some servers do it anyway.
    print("calc 1.0 starting")
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message:
            continue
        if message["method"] == "tools/call":
            send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "adding"}})
        try:
            send({"jsonrpc": "2.0", "id": message["id"], "result": answer(message)})
        except LookupError as error:
            send({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": f"no method {error}"}})
"#;

fn block(code: &str) -> Reply {
    Reply::Text(format!("```python\n{code}\n```"))
}

fn of_kind<'a>(events: &'a Value, kind: &str) -> Vec<&'a Value> {
    events.as_array().unwrap().iter().filter(|e| e["kind"] == kind).map(|e| &e["payload"]).collect()
}

/// A team whose project installs `calc-mcp` from a package index (kept
/// running as long as the team), after `configure`.
async fn calc_team(name: &str, configure: impl FnOnce(&mut Config)) -> (support::Team, cairn_testkit::PackageIndex) {
    let index = cairn_testkit::PackageIndex::start(&[Package::new("calc-mcp", "1.0", CALC_SERVER)]).await;
    let address = index.address;
    let configure = |config: &mut Config| {
        config.sandbox.egress_allow = vec![address];
        configure(config);
    };
    let team = support::Team::start_with_index(name, configure, Some(&index.url())).await;
    let settings = json!({ "packages": true, "requirements": "calc-mcp==1.0" });
    let project = format!("/projects/{}", team.project);
    assert_eq!(team.send(Method::PATCH, &team.owner, &project, Some(settings)).await.0, 200);
    (team, index)
}

/// A new thread of the team's project.
async fn thread(team: &support::Team) -> String {
    let path = format!("/projects/{}/threads", team.project);
    let (_, thread) = team.send(Method::POST, &team.owner, &path, Some(json!({}))).await;
    thread["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_stdio_server_installed_as_a_package_runs_in_the_sandbox_with_its_secrets() {
    let (team, _index) = calc_team("mcp-stdio", |_| {}).await;
    let project = format!("/projects/{}", team.project);

    let servers = format!("{project}/mcp-servers");
    let command = json!(["python", "-c", "import calc_mcp; calc_mcp.main()"]);
    let refusals = [
        (json!({ "name": "calc" }), "give either"),
        (json!({ "name": "calc", "url": "https://mcp.example.com/", "command": command }), "give either"),
        (json!({ "name": "calc", "command": [] }), "`command` is a program"),
        (json!({ "name": "calc", "command": command, "secrets": { "BAD-NAME": "x" } }), "environment variable"),
        (json!({ "name": "calc", "command": command, "secrets": { "TOKEN": "a\nb" } }), "line break"),
    ];
    for (body, said) in refusals {
        let (status, problem) = team.send(Method::POST, &team.owner, &servers, Some(body.clone())).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_mcp_server")), "{body}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains(said), "{body}: {problem}");
    }
    let body = json!({ "name": "calc", "command": command, "secrets": { "CALC_OFFSET": "7000" } });
    let (status, viewer) = team.send(Method::POST, &team.viewer, &servers, Some(body.clone())).await;
    assert_eq!(status, 403, "owners only: {viewer}");
    let (status, added) = team.send(Method::POST, &team.owner, &servers, Some(body)).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!((added["transport"].as_str(), &added["command"]), (Some("stdio"), &command));
    assert_eq!((&added["secrets"], &added["tools"], added.get("url")), (&json!(["CALC_OFFSET"]), &json!([]), None));
    let (_, listed) = team.send(Method::GET, &team.owner, &servers, None).await;
    assert_eq!(listed[0]["secrets"], json!(["CALC_OFFSET"]));
    // Ids and times are random or the clock's and may hold the digits by
    // chance: the secret is looked for in everything else.
    let shown = |value: &Value| {
        let mut servers = match value {
            Value::Array(all) => all.clone(),
            one => vec![one.clone()],
        };
        for server in servers.iter_mut().filter_map(Value::as_object_mut) {
            server.retain(|name, _| name != "id" && !name.ends_with("_id") && !name.ends_with("_at"));
        }
        Value::Array(servers).to_string()
    };
    assert!(!shown(&listed).contains("7000") && !shown(&added).contains("7000"), "a secret is never shown");

    // The run lists the server's tools in its sandbox, and its code calls
    // them: the server sees its secret, a failure is the tool's, in words.
    let thread = thread(&team).await;
    team.llm.push(block(
        "print(mcp_calc_add(a=2, b=3))\ntry:\n    mcp_calc_add(a=1)\nexcept RuntimeError as error:\n    print('refused:', error)",
    ));
    team.llm.push(block("final_answer(str(mcp_calc_add(a=2, b=3)['sum']))"));
    let message = json!({ "content": "Add 2 and 3", "wait": true });
    let (_, posted) = team.send(Method::POST, &team.owner, &format!("/threads/{thread}/messages"), Some(message)).await;
    assert_eq!(posted["answer"], "7005", "{posted}");
    let prompt = team.llm.received()[0].body.to_string();
    assert!(prompt.contains("mcp_calc_add(a, b)") && prompt.contains("Adds two whole numbers."), "{prompt}");
    assert!(
        team.llm.received().iter().all(|r| !r.body.to_string().contains("7000")),
        "the secret never reaches the model"
    );
    let observed = team.llm.received()[1].body.to_string();
    assert!(
        observed.contains("{'sum': 7005}")
            && observed.contains("refused: tool mcp:calc/add failed: add failed: b is missing"),
        "{observed}"
    );

    let (_, events) = team.send(Method::GET, &team.owner, &format!("/threads/{thread}/events?after=0"), None).await;
    let calls: Vec<&Value> = of_kind(&events, "tool").into_iter().filter(|t| t["name"] == "mcp:calc/add").collect();
    assert_eq!(calls.len(), 3, "each call is told once: {calls:?}");
    assert_eq!(
        (calls[0]["ok"].as_bool(), calls[0]["result"].as_str()),
        (Some(true), Some(r#"{"sum":7005}"#)),
        "{calls:?}"
    );
    assert_eq!(calls[0]["args"], r#"{"a":2,"b":3}"#);
    assert_eq!(
        (calls[1]["ok"].as_bool(), calls[1]["result"].as_str()),
        (Some(false), Some("add failed: b is missing"))
    );
}

/// An HTTP MCP server that answers only with its key in `x-api-key`.
async fn keyed_server() -> std::net::SocketAddr {
    use axum::http::{HeaderMap, StatusCode};
    async fn answer(headers: HeaderMap, axum::Json(message): axum::Json<Value>) -> (StatusCode, axum::Json<Value>) {
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("sesame") {
            return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "no key" })));
        }
        let result = match message["method"].as_str() {
            Some("initialize") => {
                json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": { "name": "vault" } })
            }
            Some("tools/list") => json!({ "tools": [{ "name": "peek", "description": "Says what the vault holds." }] }),
            Some("tools/call") => json!({ "content": [{ "type": "text", "text": "gold" }] }),
            _ => return (StatusCode::ACCEPTED, axum::Json(Value::Null)),
        };
        (StatusCode::OK, axum::Json(json!({ "jsonrpc": "2.0", "id": message["id"], "result": result })))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/mcp", axum::routing::post(answer));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn an_http_server_gets_its_credentials_with_every_request() {
    let vault = keyed_server().await;
    let team = support::Team::start("mcp-keyed", |config| config.tools.allow_private = vec![vault]).await;
    let servers = format!("/projects/{}/mcp-servers", team.project);
    let url = format!("http://{vault}/mcp");
    let (status, problem) =
        team.send(Method::POST, &team.owner, &servers, Some(json!({ "name": "vault", "url": url }))).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_mcp_server")), "without its key: {problem}");
    assert!(problem["detail"].as_str().unwrap().contains("401"), "{problem}");
    let reserved = json!({ "name": "vault", "url": url, "secrets": { "Mcp-Session-Id": "x" } });
    assert_eq!(team.send(Method::POST, &team.owner, &servers, Some(reserved)).await.0, 422, "the client's own headers");
    let body = json!({ "name": "vault", "url": url, "secrets": { "X-Api-Key": "sesame" } });
    let (status, added) = team.send(Method::POST, &team.owner, &servers, Some(body)).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!((added["transport"].as_str(), &added["secrets"]), (Some("http"), &json!(["X-Api-Key"])));
    assert_eq!(added["tools"][0]["name"], "peek");

    let thread = thread(&team).await;
    team.llm.push(block("final_answer(mcp_vault_peek())"));
    let message = json!({ "content": "What is in the vault?", "wait": true });
    let (_, posted) = team.send(Method::POST, &team.owner, &format!("/threads/{thread}/messages"), Some(message)).await;
    assert_eq!(posted["answer"], "gold", "{posted}");
    assert!(!team.llm.received()[0].body.to_string().contains("sesame"), "the key never reaches the model");
}

#[tokio::test]
async fn a_stdio_tool_waits_for_approval_like_any_tool() {
    let (team, _index) = calc_team("mcp-stdio-approval", |config| {
        config.agent.require_approval = vec!["mcp:calc/add".into()];
    })
    .await;
    let servers = format!("/projects/{}/mcp-servers", team.project);
    let command = json!(["python", "-c", "import calc_mcp; calc_mcp.main()"]);
    let (status, _) =
        team.send(Method::POST, &team.owner, &servers, Some(json!({ "name": "calc", "command": command }))).await;
    assert_eq!(status, 201);
    let thread = thread(&team).await;
    team.llm.set_default(block("final_answer(str(mcp_calc_add(a=2, b=3)['sum']))"));
    let message = json!({ "content": "Add 2 and 3", "wait": true });
    let (_, posted) = team.send(Method::POST, &team.owner, &format!("/threads/{thread}/messages"), Some(message)).await;
    assert_eq!(posted["run"]["status"], "waiting", "the call waits for a member: {posted}");
    let run = posted["run"]["id"].as_str().unwrap().to_owned();
    let (_, events) = team.send(Method::GET, &team.owner, &format!("/threads/{thread}/events?after=0"), None).await;
    let calls: Vec<&Value> = of_kind(&events, "tool").into_iter().filter(|t| t["name"] == "mcp:calc/add").collect();
    assert_eq!((calls.len(), calls[0]["ok"].as_bool()), (1, Some(false)), "not called yet: {calls:?}");

    let (status, _) =
        team.send(Method::POST, &team.owner, &format!("/runs/{run}/resume"), Some(json!({ "answer": "yes" }))).await;
    assert_eq!(status, 200);
    let mut finished = Value::Null;
    for _ in 0..300 {
        finished = team.send(Method::GET, &team.owner, &format!("/runs/{run}"), None).await.1;
        if finished["status"] == "succeeded" || finished["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let (_, messages) = team.send(Method::GET, &team.owner, &format!("/threads/{thread}/messages"), None).await;
    assert_eq!(messages.as_array().unwrap().last().unwrap()["content"], "5", "approved, it ran: {messages}");
}
