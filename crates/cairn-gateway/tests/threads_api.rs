//! Threads, messages, runs and live events over HTTP, with the agent on
//! real parts (sandbox, store, queue) and the scripted LLM server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cairn_config::{Config, LlmModel};
use cairn_testkit::{Package, Reply, ScriptedLlm, TempDir};
use futures::StreamExt;
use serde_json::{Value, json};

struct Api {
    base: String,
    client: reqwest::Client,
    owner: String,
    viewer: String,
    stranger: String,
    project: String,
    llm: ScriptedLlm,
    store: std::sync::Arc<dyn cairn_core::store::Store>,
    _dir: TempDir,
}

async fn start(with_agent: bool) -> Api {
    start_with(with_agent, |_| {}).await
}

async fn start_with(with_agent: bool, configure: impl FnOnce(&mut Config)) -> Api {
    start_full(with_agent, configure, None).await
}

/// [`start_with`], the sandboxes installing packages from `index`.
async fn start_full(with_agent: bool, configure: impl FnOnce(&mut Config), index: Option<&str>) -> Api {
    let dir = TempDir::new("threads-api");
    let llm = ScriptedLlm::start(Vec::new()).await;
    let mut config = Config::default();
    config.llm.providers = vec![support::scripted_provider(
        &llm.url,
        vec![
            support::free_model("m"),
            support::free_model("n"),
            // A dollar per token: one call spends the budgets below.
            LlmModel {
                name: "dear".into(),
                input_usd_per_mtok: Some(1e6),
                output_usd_per_mtok: Some(1e6),
                context_tokens: 128_000,
                ..Default::default()
            },
        ],
    )];
    config.llm.default_model = "scripted/m".into();
    config.llm.embedding_model = "scripted/embedder".into();
    configure(&mut config);
    let mut state = support::sqlite_state(&dir, config).await;
    if with_agent {
        support::with_sandboxes_and_index(&mut state, &dir, true, index).await;
    }
    let store = state.store.clone();
    let base = support::serve(state).await;
    let client = reqwest::Client::new();
    let ([owner, viewer, stranger], project) = support::owner_viewer_stranger(&client, &base, "Agent").await;
    Api { base, client, owner, viewer, stranger, project, llm, store, _dir: dir }
}

impl Api {
    async fn get(&self, token: &str, path: &str) -> Value {
        self.client.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap().json().await.unwrap()
    }

    async fn thread(&self) -> String {
        let created: Value = self
            .client
            .post(format!("{}/api/v1/projects/{}/threads", self.base, self.project))
            .bearer_auth(&self.owner)
            .json(&json!({ "title": "Numbers" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    /// A JSON request as `token`; the status and the JSON answer (null when none).
    async fn send(&self, method: reqwest::Method, token: String, path: &str, body: Value) -> (u16, Value) {
        support::send_json(&self.client, method, &format!("{}{path}", self.base), &token, Some(body)).await
    }

    async fn patch(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, token.to_owned(), path, body).await
    }

    /// Opens the thread's event stream as `token`'s member.
    async fn stream(
        &self,
        token: &str,
        thread: &str,
    ) -> futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>> {
        let response = self
            .client
            .get(format!("{}/api/v1/threads/{thread}/events", self.base))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes_stream().boxed()
    }

    async fn post(&self, token: &str, thread: &str, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut request =
            self.client.post(format!("{}/api/v1/threads/{thread}/messages", self.base)).bearer_auth(token).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or_default())
    }
}

const METRICS_TOKEN: &str = "metrics-token-for-the-thread-tests-0123";

fn with_metrics(config: &mut Config) {
    config.server.metrics_token = METRICS_TOKEN.into();
}

/// How many live events went out over `transport` in this process, and
/// their total delivery time in seconds.
async fn delivered(api: &Api, transport: &str) -> (f64, f64) {
    let url = format!("{}/metrics", api.base);
    let text = api.client.get(url).bearer_auth(METRICS_TOKEN).send().await.unwrap().text().await.unwrap();
    let sample = |name: &str| {
        let name = format!("cairn_event_delivery_seconds_{name}{{transport=\"{transport}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&name)?.parse().ok()).unwrap_or(0.0)
    };
    (sample("count"), sample("sum"))
}

fn block(code: &str) -> Reply {
    Reply::Text(format!("```python\n{code}\n```"))
}

#[tokio::test]
async fn a_message_starts_a_run_whose_answer_and_events_are_served() {
    let api = start(true).await;
    let thread = api.thread().await;
    api.llm.push(block("x = 6 * 7\nprint(x)"));
    api.llm.push(block("final_answer(f'It is {x}.')"));
    let (status, posted) =
        api.post(&api.owner, &thread, json!({ "content": "What is 6 times 7?", "wait": true }), None).await;
    assert_eq!(status, 200, "{posted}");
    assert_eq!((posted["answer"].clone(), posted["run"]["status"].clone()), (json!("It is 42."), json!("succeeded")));

    let messages: Value = api.get(&api.viewer, &format!("/api/v1/threads/{thread}/messages")).await;
    let roles: Vec<&str> = messages.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"]);

    let events: Value = api.get(&api.viewer, &format!("/api/v1/threads/{thread}/events?after=0")).await;
    let seqs: Vec<i64> = events.as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "consecutive, no gap");
    let run_id = posted["run"]["id"].as_str().unwrap();
    let run: Value = api.get(&api.viewer, &format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "succeeded");

    let runs: Value = api.get(&api.viewer, &format!("/api/v1/threads/{thread}/runs")).await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["id"].as_str(), Some(run_id));
    let usage: Value = api.get(&api.viewer, &format!("/api/v1/projects/{}/usage", api.project)).await;
    assert_eq!(usage["total"]["model_calls"], 2, "{usage}");
    assert!(usage["total"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["by_user"].as_array().unwrap().len(), 1, "all calls were the owner's runs");
    let mine = api.get(&api.owner, "/api/v1/me/usage").await;
    assert_eq!(
        (mine["total"]["model_calls"].clone(), mine["by_project"][0]["model_calls"].clone()),
        (json!(2), json!(2))
    );
    let theirs = api.get(&api.viewer, "/api/v1/me/usage").await;
    assert_eq!(theirs["total"]["model_calls"], 0, "the viewer started no runs");

    api.llm.push(block("final_answer('another way')"));
    let forked = api
        .client
        .post(format!("{}/api/v1/runs/{run_id}/fork", api.base))
        .bearer_auth(&api.owner)
        .json(&json!({ "step": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(forked.status(), 201);
    let forked: Value = forked.json().await.unwrap();
    let new_thread = forked["thread"]["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let run = api.get(&api.owner, &format!("/api/v1/runs/{}", forked["run"]["id"].as_str().unwrap())).await;
        if run["status"] == "succeeded" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the fork finishes: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let forked_messages = api.get(&api.owner, &format!("/api/v1/threads/{new_thread}/messages")).await;
    assert_eq!(forked_messages.as_array().unwrap().last().unwrap()["content"], "another way");

    // Viewers read but do not post; strangers do not see the thread.
    assert_eq!(api.post(&api.viewer, &thread, json!({ "content": "hi" }), None).await.0, 403);
    assert_eq!(api.post(&api.stranger, &thread, json!({ "content": "hi" }), None).await.0, 404);
    let hidden =
        api.client.get(format!("{}/api/v1/runs/{run_id}", api.base)).bearer_auth(&api.stranger).send().await.unwrap();
    assert_eq!(hidden.status(), 404);
    assert_eq!(api.post(&api.owner, &thread, json!({ "content": "  " }), None).await.0, 422);
}

/// An event that reached the log while the bus could not tell of it (its
/// notice lost, as when Redis restarts) still reaches an open stream: the
/// stream reads the log again every few seconds.
#[tokio::test]
async fn a_live_stream_gets_events_whose_bus_notice_was_lost() {
    use cairn_core::model::NewEvent;
    let api = start(false).await;
    let thread = api.thread().await;
    let response = api
        .client
        .get(format!("{}/api/v1/threads/{thread}/events", api.base))
        .bearer_auth(&api.owner)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    // Written straight to the log: nothing is published on the bus.
    let quiet = NewEvent { run_id: None, kind: "token".into(), payload: json!({ "text": "quiet" }), schema_version: 2 };
    api.store.append_events(thread.parse().unwrap(), vec![quiet], None).await.unwrap();
    let mut text = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !text.contains("id: 1") {
        assert!(std::time::Instant::now() < deadline, "the unannounced event never arrived: {text}");
        if let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    }
}

#[tokio::test]
async fn events_stream_live_and_resume_after_the_last_event_id() {
    let api = start_with(true, with_metrics).await;
    let thread = api.thread().await;
    let open = |last: Option<i64>| {
        let mut request = api
            .client
            .get(format!("{}/api/v1/threads/{thread}/events", api.base))
            .bearer_auth(&api.owner)
            .header("accept", "text/event-stream");
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        request.send()
    };
    let response = open(None).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let (count_before, sum_before) = delivered(&api, "sse").await;

    api.llm.push(block("final_answer('done')"));
    api.post(&api.owner, &thread, json!({ "content": "Finish at once." }), None).await;
    let mut text = String::new();
    while !text.contains("\"succeeded\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let ids: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: ").or(l.strip_prefix("id:")))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>(), "every event once, in order: {text}");
    assert!(text.contains("event: run.status") && text.contains("event: code"));
    drop(stream);
    // Each event was timed on its way out, from its creation: a fraction of
    // a second here, not the age of the thread or a clock's epoch.
    let (count, sum) = delivered(&api, "sse").await;
    let live = count - count_before;
    assert!(live >= ids.len() as f64, "{live} live events timed, {} sent", ids.len());
    let mean = (sum - sum_before) / live;
    assert!(mean > 0.0 && mean < 5.0, "mean delivery {mean} s");

    // Reconnecting after event 3 replays exactly what followed.
    let mut resumed = open(Some(3)).await.unwrap().bytes_stream();
    let mut again = String::new();
    while again.lines().filter(|l| l.starts_with("id:")).count() < ids.len() - 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resumed.next()).await.unwrap().unwrap().unwrap();
        again.push_str(&String::from_utf8_lossy(&chunk));
    }
    let replayed: Vec<i64> =
        again.lines().filter_map(|l| l.strip_prefix("id:")).map(|v| v.trim().parse().unwrap()).collect();
    assert_eq!(replayed, (4..=ids.len() as i64).collect::<Vec<_>>());
    // A replay is old news, not delivery lag (this is the only test here
    // that streams a run's events over SSE).
    assert_eq!(delivered(&api, "sse").await.0, count, "the replayed events are not timed");
}

#[tokio::test]
async fn events_also_arrive_over_a_websocket() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let api = start_with(true, with_metrics).await;
    let (count_before, _) = delivered(&api, "ws").await;
    let thread = api.thread().await;
    let url = format!("{}/api/v1/threads/{thread}/events/ws?after=0", api.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {}", api.owner).parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    api.llm.push(block("final_answer('over the socket')"));
    api.post(&api.owner, &thread, json!({ "content": "Go." }), None).await;
    let mut seqs = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next()).await.unwrap().unwrap().unwrap();
        let event: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        seqs.push(event["seq"].as_i64().unwrap());
        if event["kind"] == "run.status" && event["payload"]["status"] == "succeeded" {
            break;
        }
    }
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "every event once, in order");
    let live = delivered(&api, "ws").await.0 - count_before;
    assert!(live >= seqs.len() as f64, "{live} live events timed, {} sent", seqs.len());
    let unauthenticated = format!("{}/api/v1/threads/{thread}/events/ws", api.base.replace("http://", "ws://"));
    assert!(tokio_tungstenite::connect_async(unauthenticated).await.is_err(), "no token, no socket");

    // A client that sends an outsized message is cut off, not buffered.
    use futures::SinkExt;
    let url = format!("{}/api/v1/threads/{thread}/events/ws?after=0", api.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {}", api.owner).parse().unwrap());
    let (mut hostile, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let huge = tokio_tungstenite::tungstenite::Message::Text("x".repeat(1 << 20).into());
    let _ = hostile.send(huge).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match hostile.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the server ends the socket");
    assert!(matches!(closed, None | Some(1009)), "closed as too big (1009) or dropped: {closed:?}");
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_posts_once() {
    let api = start(true).await;
    let thread = api.thread().await;
    api.llm.set_default(block("final_answer('ok')"));
    let (first_status, first) =
        api.post(&api.owner, &thread, json!({ "content": "Once only" }), Some("retry-42")).await;
    let (second_status, second) =
        api.post(&api.owner, &thread, json!({ "content": "Once only" }), Some("retry-42")).await;
    assert_eq!((first_status, second_status), (202, 202));
    assert_eq!(first["run"]["id"], second["run"]["id"], "the same run");
    let messages: Value = api.get(&api.owner, &format!("/api/v1/threads/{thread}/messages")).await;
    let users = messages.as_array().unwrap().iter().filter(|m| m["role"] == "user").count();
    assert_eq!(users, 1, "the message was posted once");
}

#[tokio::test]
async fn a_message_attaches_library_files_that_exist() {
    let api = start(true).await;
    let thread = api.thread().await;
    api.llm.set_default(block("final_answer('seen')"));
    let put = api
        .client
        .put(format!("{}/api/v1/projects/{}/files/content?path=uploads/notes.txt", api.base, api.project))
        .bearer_auth(&api.owner)
        .body("north 12, south 7")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let refusals = [
        (json!(["uploads/missing.png"]), "attachment_not_found"),
        (json!(["../etc/passwd"]), "invalid_input"),
        (json!(["a", "b", "c", "d", "e", "f", "g", "h", "i"]), "invalid_input"),
    ];
    for (attachments, code) in refusals {
        let body = json!({ "content": "Look", "attachments": attachments });
        let (status, problem) = api.post(&api.owner, &thread, body, None).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some(code)), "{attachments}: {problem}");
    }
    let messages: Value = api.get(&api.owner, &format!("/api/v1/threads/{thread}/messages")).await;
    assert_eq!(messages.as_array().unwrap().len(), 0, "a refused message is not posted");
    // A file named twice is attached once.
    let body = json!({ "content": "Look", "attachments": ["uploads/notes.txt", "uploads/notes.txt"] });
    let (status, posted) = api.post(&api.owner, &thread, body, None).await;
    assert_eq!(status, 202, "{posted}");
    assert_eq!(posted["message"]["attachments"], json!(["uploads/notes.txt"]));
    let messages: Value = api.get(&api.owner, &format!("/api/v1/threads/{thread}/messages")).await;
    assert_eq!(messages[0]["attachments"], json!(["uploads/notes.txt"]));
}

#[tokio::test]
async fn a_log_written_before_the_protocol_was_typed_still_reads() {
    use cairn_core::model::NewEvent;
    let api = start(false).await;
    let thread = api.thread().await;
    let me = api.get(&api.owner, "/api/v1/me").await["id"].as_str().unwrap().to_owned();
    // Every kind, as version 1 wrote it (loose JSON with its nulls and the
    // fields it had then), with real ids in place of the placeholders.
    let fixture = include_str!("fixtures/events-v1.json")
        .replace("$user", &me)
        .replace("$message", &cairn_core::MessageId::new().to_string())
        .replace("$file", &cairn_core::FileId::new().to_string())
        .replace("$run", &cairn_core::RunId::new().to_string());
    let written: Vec<(String, Value)> = serde_json::from_str(&fixture).unwrap();
    let events = written
        .iter()
        .map(|(kind, payload)| NewEvent {
            run_id: None,
            kind: kind.clone(),
            payload: payload.clone(),
            schema_version: 1,
        })
        .collect();
    api.store.append_events(thread.parse().unwrap(), events, None).await.unwrap();
    let read: Value = api.get(&api.owner, &format!("/api/v1/threads/{thread}/events")).await;
    let read = read.as_array().unwrap();
    assert_eq!(read.len(), written.len(), "every event reads: {read:#?}");
    for ((kind, _), event) in written.iter().zip(read) {
        assert_eq!(event["kind"], json!(kind));
    }
    // Fields version 1 left out read as their defaults; its nulls as absent.
    assert_eq!(read[13]["payload"]["cache_read_tokens"], 0);
    assert!(read[1]["payload"].get("model").is_none(), "{}", read[1]);
    assert_eq!(read[23]["payload"]["error"], "the provider failed");
    // Usage totals count the old events too.
    let usage = api.get(&api.owner, &format!("/api/v1/projects/{}/usage", api.project)).await;
    assert_eq!(
        (usage["total"]["model_calls"].as_u64(), usage["total"]["cache_read_tokens"].as_u64()),
        (Some(2), Some(100))
    );
}

#[tokio::test]
async fn a_run_can_name_its_model() {
    let api = start(true).await;
    let thread = api.thread().await;
    let (status, problem) = api.post(&api.owner, &thread, json!({ "content": "Hi", "model": "nope/x" }), None).await;
    assert_eq!((status, problem["code"].clone()), (422, json!("unknown_model")));
    api.llm.push(block("final_answer('chosen')"));
    let body = json!({ "content": "Hi", "model": "scripted/m", "wait": true });
    let (status, posted) = api.post(&api.owner, &thread, body, None).await;
    assert_eq!((status, posted["answer"].clone()), (200, json!("chosen")));
    assert_eq!(api.llm.received().last().unwrap().body["model"], "m", "the provider got its own model name");

    // A thread can name the model its runs use.
    let url = format!("{}/api/v1/projects/{}/threads", api.base, api.project);
    let bad = api
        .client
        .post(&url)
        .bearer_auth(&api.owner)
        .json(&json!({ "title": "x", "model": "nope/x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let created: Value = api
        .client
        .post(&url)
        .bearer_auth(&api.owner)
        .json(&json!({ "title": "y", "model": "scripted/n" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["model"], "scripted/n");
    api.llm.push(block("final_answer('thread model')"));
    let thread = created["id"].as_str().unwrap();
    let (_, posted) = api.post(&api.owner, thread, json!({ "content": "Hi", "wait": true }), None).await;
    assert_eq!(posted["answer"], "thread model");
    assert_eq!(api.llm.received().last().unwrap().body["model"], "n", "the thread's model, not the default");

    // A project's default model applies to threads that name none; only owners set it.
    let url = format!("{}/api/v1/projects/{}/model", api.base, api.project);
    let refused =
        api.client.put(&url).bearer_auth(&api.viewer).json(&json!({ "model": "scripted/n" })).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let set: Value = api
        .client
        .put(&url)
        .bearer_auth(&api.owner)
        .json(&json!({ "model": "scripted/n" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set["model"], "scripted/n");
    let plain = api.thread().await;
    api.llm.push(block("final_answer('project model')"));
    let (_, posted) = api.post(&api.owner, &plain, json!({ "content": "Hi", "wait": true }), None).await;
    assert_eq!(posted["answer"], "project model");
    assert_eq!(api.llm.received().last().unwrap().body["model"], "n", "the project's model");
}

#[tokio::test]
async fn without_the_agent_posting_a_run_says_why() {
    let api = start(false).await;
    let thread = api.thread().await;
    let (status, problem) = api.post(&api.owner, &thread, json!({ "content": "hello" }), None).await;
    assert_eq!((status, problem["code"].clone()), (503, json!("agent_unavailable")));
    assert!(problem["detail"].as_str().unwrap().contains("sandboxes are not available"), "{problem}");
}

#[tokio::test]
async fn without_a_model_an_administrator_learns_how_to_connect_one_and_a_member_whom_to_ask() {
    let api = start_with(true, |config| {
        config.llm.providers.clear();
        config.llm.default_model.clear();
        config.llm.embedding_model.clear();
    })
    .await;
    let thread = api.thread().await;
    // The owner registered first: the deployment's administrator.
    let (status, problem) = api.post(&api.owner, &thread, json!({ "content": "hello" }), None).await;
    assert_eq!(status, 503);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("OPENAI_API_KEY") && !detail.contains("start-up log"), "{detail}");
    // A member who is not an administrator (an editor of this project).
    let member = json!({ "email": "stranger@example.com", "role": "editor" });
    let added = api
        .client
        .post(format!("{}/api/v1/projects/{}/members", api.base, api.project))
        .bearer_auth(&api.owner)
        .json(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let (status, problem) = api.post(&api.stranger, &thread, json!({ "content": "hello" }), None).await;
    assert_eq!(status, 503);
    assert_eq!(problem["detail"], "no language model is connected yet: ask an administrator to connect a model");
}

#[tokio::test]
async fn owners_rename_a_project_and_set_its_model_and_budget() {
    let api = start(false).await;
    let path = format!("/api/v1/projects/{}", api.project);
    let (status, project) =
        api.patch(&api.owner, &path, json!({ "name": "  Renamed  ", "budget_usd": 12.5, "model": "scripted/n" })).await;
    assert_eq!(status, 200, "{project}");
    assert_eq!(
        (project["name"].clone(), project["budget_usd"].clone(), project["model"].clone(), project["role"].clone()),
        (json!("Renamed"), json!(12.5), json!("scripted/n"), json!("owner"))
    );
    // Fields left out stay; `null` clears.
    let (_, project) = api.patch(&api.owner, &path, json!({ "budget_usd": null })).await;
    assert_eq!((project["name"].clone(), project["budget_usd"].clone()), (json!("Renamed"), Value::Null));
    assert_eq!(project["model"], "scripted/n");
    assert_eq!(api.get(&api.viewer, &path).await["name"], "Renamed", "members see the new name");

    let refusals = [
        (&api.viewer, json!({ "name": "Mine" }), 403, "forbidden"),
        (&api.stranger, json!({ "name": "Mine" }), 404, "not_found"),
        (&api.owner, json!({ "name": "   " }), 422, "invalid_input"),
        (&api.owner, json!({ "budget_usd": -1 }), 422, "invalid_input"),
        (&api.owner, json!({ "model": "nope/x" }), 422, "unknown_model"),
        (&api.owner, json!({ "colour": "red" }), 400, "malformed_json"),
    ];
    for (token, body, status, code) in refusals {
        let (got, problem) = api.patch(token, &path, body.clone()).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{body}: {problem}");
    }
    assert_eq!(api.get(&api.owner, &path).await["name"], "Renamed", "a refused change changes nothing");
    let audit = api.get(&api.owner, "/api/v1/admin/audit").await;
    let updated = audit.as_array().unwrap().iter().filter(|e| e["action"] == "project.updated").count();
    assert_eq!(updated, 2, "each accepted change is audited: {audit}");
}

#[tokio::test]
async fn a_project_that_allows_packages_has_them_in_its_runs() {
    let index =
        cairn_testkit::PackageIndex::start(&[Package::new("cairn-demo", "1.0", "def answer():\n    return 42\n")])
            .await;
    let (url, address) = (index.url(), index.address);
    let configure = |config: &mut Config| config.sandbox.egress_allow = vec![address];
    let api = start_full(true, configure, Some(&url)).await;
    let path = format!("/api/v1/projects/{}", api.project);
    let project = api.get(&api.viewer, &path).await;
    assert_eq!((project["packages"].clone(), project["requirements"].clone()), (json!(false), json!("")));

    let refusals = [
        (&api.viewer, json!({ "packages": true }), 403, "forbidden"),
        (&api.owner, json!({ "requirements": "--index-url http://evil.example/simple" }), 422, "invalid_input"),
        (&api.owner, json!({ "requirements": "demo @ https://evil.example/demo.whl" }), 422, "invalid_input"),
        (&api.owner, json!({ "requirements": "x\n".repeat(201) }), 422, "invalid_input"),
        (&api.owner, json!({ "packages": "yes" }), 400, "malformed_json"),
    ];
    for (token, body, status, code) in refusals {
        let (got, problem) = api.patch(token, &path, body.clone()).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{body}: {problem}");
    }
    let settings = json!({ "packages": true, "requirements": "# what the analysis needs\ncairn-demo==1.0\n" });
    let (status, project) = api.patch(&api.owner, &path, settings).await;
    assert_eq!((status, project["packages"].clone()), (200, json!(true)), "{project}");
    assert_eq!(project["requirements"], "# what the analysis needs\ncairn-demo==1.0\n");

    // The run's sandbox starts with the requirements installed, and may
    // install more.
    let thread = api.thread().await;
    api.llm.push(block("import cairn_demo\nprint(cairn_demo.answer())"));
    api.llm.push(block("final_answer(f'The package says {cairn_demo.answer()}.')"));
    let (status, posted) =
        api.post(&api.owner, &thread, json!({ "content": "Use cairn-demo", "wait": true }), None).await;
    assert_eq!(status, 200, "{posted}");
    assert_eq!(posted["answer"], "The package says 42.", "{posted}");
    assert!(index.asked().iter().any(|p| p == "/files/cairn_demo-1.0-py3-none-any.whl"), "{:?}", index.asked());
    let told = api.llm.received()[0].body.to_string();
    assert!(told.contains("install what a task needs") && told.contains("Installed for this project: cairn-demo==1.0"));

    // Turned off, the thread's next run has the base stack only.
    let (status, _) = api.patch(&api.owner, &path, json!({ "packages": false })).await;
    assert_eq!(status, 200);
    api.llm
        .push(block("try:\n    import cairn_demo\n    found = 'still there'\nexcept ImportError:\n    found = 'gone'"));
    api.llm.push(block("final_answer(found)"));
    let (_, posted) = api.post(&api.owner, &thread, json!({ "content": "Again", "wait": true }), None).await;
    assert_eq!(posted["answer"], "gone", "{posted}");
    assert!(!api.llm.received().last().unwrap().body.to_string().contains("install what a task needs"));
}

#[tokio::test]
async fn a_deployment_without_a_package_index_refuses_package_installs() {
    let api = start_with(false, |config| config.sandbox.package_index = Default::default()).await;
    let path = format!("/api/v1/projects/{}", api.project);
    let (status, problem) = api.patch(&api.owner, &path, json!({ "packages": true })).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("packages_unavailable")), "{problem}");
    assert_eq!(api.get(&api.owner, &path).await["packages"], false);
}

#[tokio::test]
async fn editors_rename_threads_and_viewers_cannot() {
    let api = start(false).await;
    let thread = api.thread().await;
    let path = format!("/api/v1/threads/{thread}");
    let (status, renamed) = api.patch(&api.owner, &path, json!({ "title": " Q3 revenue " })).await;
    assert_eq!((status, renamed["title"].clone()), (200, json!("Q3 revenue")));
    assert_eq!(api.get(&api.viewer, &path).await["title"], "Q3 revenue");
    assert_eq!(api.patch(&api.viewer, &path, json!({ "title": "x" })).await.0, 403);
    assert_eq!(api.patch(&api.stranger, &path, json!({ "title": "x" })).await.0, 404);
    assert_eq!(api.patch(&api.owner, &path, json!({ "title": "" })).await.0, 422);
    assert_eq!(api.patch(&api.owner, &path, json!({ "title": "y".repeat(201) })).await.0, 422);
}

#[tokio::test]
async fn a_spent_project_budget_stops_the_run_and_refuses_new_ones() {
    let api = start(true).await;
    let thread = api.thread().await;
    let (status, _) =
        api.patch(&api.owner, &format!("/api/v1/projects/{}", api.project), json!({ "budget_usd": 0.5 })).await;
    assert_eq!(status, 200);
    // The first model call costs dollars: the run stops before a second one.
    api.llm.push(block("x = 1"));
    api.llm.push(block("final_answer('never')"));
    let body = json!({ "content": "Go", "model": "scripted/dear", "wait": true });
    let (status, posted) = api.post(&api.owner, &thread, body.clone(), None).await;
    assert_eq!((status, posted["run"]["status"].clone()), (200, json!("failed")), "{posted}");
    let error = posted["run"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("the project's budget of $0.50 is spent"), "{posted}");
    assert_eq!(api.llm.received().len(), 1, "no model call after the budget was spent");

    let (status, problem) = api.post(&api.owner, &thread, body, None).await;
    assert_eq!((status, problem["code"].clone()), (422, json!("budget_spent")), "{problem}");
    let messages = api.get(&api.owner, &format!("/api/v1/threads/{thread}/messages")).await;
    assert_eq!(messages.as_array().unwrap().len(), 1, "the refused message was not posted");
    // Raising the budget lets runs start again.
    api.patch(&api.owner, &format!("/api/v1/projects/{}", api.project), json!({ "budget_usd": 1000 })).await;
    // (The reply the stopped run never asked for is still queued.)
    let (status, posted) = api.post(&api.owner, &thread, json!({ "content": "Go", "wait": true }), None).await;
    assert_eq!((status, posted["answer"].clone()), (200, json!("never")), "{posted}");
}

/// Reads `presence` events from an SSE stream until one matches.
async fn presence_until(
    stream: &mut futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: &mut String,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if !block.contains("event: presence") {
                continue;
            }
            let data = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let signal: Value = serde_json::from_str(data).unwrap();
            if wanted(&signal) {
                return signal;
            }
        }
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("a presence event").unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
}

fn ids(members: &Value) -> Vec<Value> {
    members.as_array().unwrap().iter().map(|m| m["user"].clone()).collect()
}

#[tokio::test]
async fn members_see_who_is_in_a_thread_and_who_is_typing() {
    let api = start(false).await;
    let thread = api.thread().await;
    let me: Value = api.get(&api.viewer, "/api/v1/me").await;
    let owner: Value = api.get(&api.owner, "/api/v1/me").await;
    let mut owners = api.stream(&api.owner, &thread).await;
    let mut seen = String::new();
    // A stream opens with the whole state.
    let first = presence_until(&mut owners, &mut seen, |_| true).await;
    assert_eq!(ids(&first["here"]), [owner["id"].clone()], "{first}");

    // The viewer opens the thread: the owner sees them join, and the viewer
    // learns at once that the owner is already here.
    let mut viewers = api.stream(&api.viewer, &thread).await;
    let mut their = String::new();
    let both = presence_until(&mut owners, &mut seen, |s| ids(&s["here"]).len() == 2).await;
    assert!(ids(&both["here"]).contains(&me["id"]), "{both}");
    let named = both["here"].as_array().unwrap().iter().find(|m| m["user"] == me["id"]).unwrap();
    assert_eq!(named["name"], me["display_name"]);
    let theirs = presence_until(&mut viewers, &mut their, |_| true).await;
    assert_eq!(theirs["here"], both["here"], "the newcomer's first state already has everyone");

    // The owner types; the viewer sees it, then it ends by itself. Viewers
    // cannot send typing.
    let typing = |token: &str| {
        api.client.post(format!("{}/api/v1/threads/{thread}/typing", api.base)).bearer_auth(token.to_owned()).send()
    };
    assert_eq!(typing(&api.owner).await.unwrap().status(), 204);
    let typed = presence_until(&mut viewers, &mut their, |s| ids(&s["typing"]) == [owner["id"].clone()]).await;
    assert_eq!(typed["here"], both["here"]);
    presence_until(&mut viewers, &mut their, |s| ids(&s["typing"]).is_empty()).await;
    assert_eq!(typing(&api.viewer).await.unwrap().status(), 403);
    assert_eq!(typing(&api.stranger).await.unwrap().status(), 404);

    // The viewer leaves: the owner sees it.
    drop(viewers);
    let left = presence_until(&mut owners, &mut seen, |s| ids(&s["here"]).len() == 1).await;
    assert_eq!(ids(&left["here"]), [owner["id"].clone()]);
}

/// A connection to the API whose first request is `head`, sent in two
/// pieces a moment apart (as a slow client's would arrive).
async fn raw_request(api: &Api, head: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(api.base.trim_start_matches("http://")).await.unwrap();
    let (first, rest) = head.split_at(head.len() / 2);
    socket.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.write_all(rest.as_bytes()).await.unwrap();
    socket
}

/// Reads more of a response until `done` holds for the body (decoded from
/// chunks when `chunked`) or the server closes; returns the body and
/// whether the server closed.
async fn body_until(
    socket: &mut tokio::net::TcpStream,
    raw: &mut Vec<u8>,
    chunked: bool,
    done: impl Fn(&str) -> bool,
) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let decode = |raw: &[u8]| -> String {
        if !chunked {
            return String::from_utf8_lossy(raw).into_owned();
        }
        let (mut body, mut at) = (Vec::new(), 0);
        while let Some(line) = raw[at..].windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&raw[at..at + line]).unwrap(), 16).unwrap();
            let start = at + line + 2;
            if raw.len() < start + size + 2 {
                break;
            }
            assert_eq!(&raw[start + size..start + size + 2], b"\r\n", "a chunk ends with CRLF");
            body.extend_from_slice(&raw[start..start + size]);
            at = start + size + 2;
        }
        String::from_utf8_lossy(&body).into_owned()
    };
    loop {
        let body = decode(raw);
        if done(&body) {
            return (body, false);
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("more of the body")
            .unwrap();
        if n == 0 {
            return (decode(raw), true);
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Event streams are answered by Cairn's own HTTP/1.1 loop
/// (`server/http1.rs`), on a new connection or one that served other
/// requests first: the same headers as any response, chunked for HTTP/1.1
/// and up to the close for HTTP/1.0, live events as they come, and the
/// viewer gone as soon as its client is.
#[tokio::test]
async fn an_event_stream_is_served_in_full_on_a_new_or_a_reused_connection() {
    use cairn_core::model::NewEvent;
    use tokio::io::AsyncWriteExt;
    let api = start(false).await;
    let thread = api.thread().await;
    let path = format!("/api/v1/threads/{thread}/events");
    let mut owners = api.stream(&api.owner, &thread).await;
    let mut seen = String::new();
    presence_until(&mut owners, &mut seen, |s| ids(&s["here"]).len() == 1).await;

    let request = |version: &str, token: Option<&str>| {
        let credential = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        format!("GET {path} HTTP/{version}\r\nHost: cairn.test\r\n{credential}Accept: text/event-stream\r\n\r\n")
    };
    // A refused request is answered whole, with its length, and the
    // connection stays open for the next one.
    let mut viewer = raw_request(&api, &request("1.1", None)).await;
    let (head, rest) = support::response_head(&mut viewer).await;
    assert!(head.starts_with("http/1.1 401 unauthorized\r\n") && !head.contains("connection: close"), "{head}");
    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse().unwrap();
    let mut raw = rest;
    let (body, closed) = body_until(&mut viewer, &mut raw, false, |body| body.len() >= length).await;
    assert!(!closed && body.len() == length, "{body}");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], "unauthenticated", "{problem}");

    // The same connection opens the stream.
    viewer.write_all(request("1.1", Some(&api.viewer)).as_bytes()).await.unwrap();
    let (head, rest) = support::response_head(&mut viewer).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n") && !head.contains("connection: close"), "{head}");
    for line in ["content-type: text/event-stream", "transfer-encoding: chunked", "date: "] {
        assert!(head.contains(line), "{line} in {head}");
    }
    // What the middleware puts on every response (security headers, the
    // request id) is on this one too: compare with a JSON response.
    let json = api.client.get(format!("{}{path}", api.base)).bearer_auth(&api.viewer).send().await.unwrap();
    for name in json.headers().keys() {
        if !["content-length", "content-type", "date"].contains(&name.as_str()) {
            assert!(head.contains(&format!("\r\n{name}: ")), "{name} missing from {head}");
        }
    }
    // The viewer is present, and a live event reaches them as a chunk.
    presence_until(&mut owners, &mut seen, |s| ids(&s["here"]).len() == 2).await;
    let mut raw = rest;
    body_until(&mut viewer, &mut raw, true, |body| body.contains("event: presence")).await;
    let live = NewEvent { run_id: None, kind: "token".into(), payload: json!({ "text": "live" }), schema_version: 2 };
    api.store.append_events(thread.parse().unwrap(), vec![live], None).await.unwrap();
    let (body, closed) = body_until(&mut viewer, &mut raw, true, |body| body.contains("id: 1")).await;
    assert!(!closed && body.contains("event: token") && body.contains(r#""text":"live""#), "{body}");
    // The client goes: so does its presence, at once.
    drop(viewer);
    presence_until(&mut owners, &mut seen, |s| ids(&s["here"]).len() == 1).await;

    // HTTP/1.0 has no chunks: the body runs to the close.
    let mut old = raw_request(&api, &request("1.0", Some(&api.viewer))).await;
    let (head, rest) = support::response_head(&mut old).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n") && head.contains("connection: close"), "{head}");
    assert!(!head.contains("transfer-encoding") && !head.contains("content-length"), "{head}");
    let mut raw = rest;
    let (body, _) = body_until(&mut old, &mut raw, false, |body| body.contains("id: 1")).await;
    assert!(body.contains(r#""text":"live""#), "the backlog: {body}");
}

/// A connection to the API with a small receive window (a client that
/// stops reading fills it soon).
async fn small_window(api: &Api) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(api.base.trim_start_matches("http://").parse().unwrap()).await.unwrap()
}

/// More events than a connection's socket buffers hold: 12 MiB, written
/// straight to the thread's log.
async fn flood(api: &Api, thread: &str) {
    let text = "x".repeat(64 * 1024);
    let thread_id = thread.parse().unwrap();
    for _ in 0..12 {
        let event = || cairn_core::model::NewEvent {
            run_id: None,
            kind: "token".into(),
            payload: json!({ "text": text }),
            schema_version: 2,
        };
        api.store.append_events(thread_id, (0..16).map(|_| event()).collect(), None).await.unwrap();
    }
}

/// A viewer whose client stops reading (its socket full, the connection
/// still open) is dropped after 30 s, presence and all, rather than held:
/// it resumes with `Last-Event-ID` when it reads again.
#[tokio::test]
async fn a_viewer_that_reads_nothing_is_dropped() {
    use tokio::io::AsyncWriteExt;
    let api = start(false).await;
    let thread = api.thread().await;
    let mut owners = api.stream(&api.owner, &thread).await;
    let mut seen = String::new();
    presence_until(&mut owners, &mut seen, |s| ids(&s["here"]).len() == 1).await;
    // A client with a small receive window that never reads.
    let mut stalled = small_window(&api).await;
    let request = format!(
        "GET /api/v1/threads/{thread}/events HTTP/1.1\r\nHost: cairn.test\r\nAuthorization: Bearer {}\r\n\
         Accept: text/event-stream\r\n\r\n",
        api.viewer
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    presence_until(&mut owners, &mut seen, |s| ids(&s["here"]).len() == 2).await;
    flood(&api, &thread).await;
    let started = std::time::Instant::now();
    loop {
        let block = seen.clone();
        if block.contains("event: presence") {
            // Only the owner left: the stalled viewer is gone.
            let states: Vec<Value> = block
                .split("\n\n")
                .filter(|b| b.contains("event: presence"))
                .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")))
                .map(|d| serde_json::from_str(d).unwrap())
                .collect();
            if states.iter().any(|s| ids(&s["here"]).len() == 1) {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the stalled viewer was never dropped");
        if let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(1), owners.next()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    }
    assert!(started.elapsed() > Duration::from_secs(20), "dropped after {:?}", started.elapsed());
    drop(stalled);
}

/// The same on the event WebSocket: a client that reads nothing is
/// dropped after 30 s (its socket ends rather than staying open).
#[tokio::test]
async fn a_socket_client_that_reads_nothing_is_dropped() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let api = start(false).await;
    let thread = api.thread().await;
    let url = format!("{}/api/v1/threads/{thread}/events/ws?after=0", api.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {}", api.viewer).parse().unwrap());
    let (mut stalled, _) = tokio_tungstenite::client_async(request, small_window(&api).await).await.unwrap();
    flood(&api, &thread).await;
    tokio::time::sleep(Duration::from_secs(35)).await;
    // Reading now drains what the sockets held, then finds the end.
    let mut received = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stalled.next()).await {
            Ok(Some(Ok(message))) if message.is_text() => received += 1,
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) => break,
            Err(_) => panic!("the socket is still open after {received} events: the client was not dropped"),
        }
    }
    assert!(received < 192, "all {received} events arrived: the client was not dropped");
}

/// Many viewers of one thread: each gets a handful of compact states, not a
/// message per viewer per change (the old signals went out about N² times).
#[tokio::test]
async fn presence_stays_small_however_many_watch() {
    let api = start(false).await;
    let thread = api.thread().await;
    const VIEWERS: usize = 40;
    let mut streams = Vec::new();
    for _ in 0..VIEWERS {
        streams.push(api.stream(&api.viewer, &thread).await);
    }
    let mut owners = api.stream(&api.owner, &thread).await;
    let mut seen = String::new();
    presence_until(&mut owners, &mut seen, |s| ids(&s["here"]).len() == 2).await;
    // Let everything settle, then count what each viewer received.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut most = 0;
    for stream in &mut streams {
        let mut text = String::new();
        while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_millis(20), stream.next()).await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        let states = text.matches("event: presence").count();
        assert!(states >= 1, "every viewer has the state");
        let last = text.rsplit("event: presence").next().unwrap();
        let data = last.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let state: Value = serde_json::from_str(data).unwrap();
        assert_eq!(ids(&state["here"]).len(), 2, "the owner and the viewer, each once: {state}");
        most = most.max(states);
    }
    // 41 streams opened over a second or so: at most four states a second.
    assert!(most <= 12, "a viewer received {most} presence states");
}

#[tokio::test]
async fn a_planned_run_waits_for_its_plan_which_editors_may_change() {
    let api = start_with(true, |config| config.agent.plan_approval = cairn_config::PlanApproval::Always).await;
    let agents = api.get(&api.viewer, "/api/v1/agents").await;
    let names: Vec<&str> = agents.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["analyst", "researcher", "writer"], "the built-in sub-agents");

    let thread = api.thread().await;
    let plan = json!({ "tasks": [{ "id": "t1", "title": "Sum", "goal": "add 1 and 2", "done_when": "a number",
                                   "agent": "analyst" }] });
    api.llm.push(Reply::Text(plan.to_string()));
    let (status, posted) =
        api.post(&api.owner, &thread, json!({ "content": "Add.", "plan": true, "wait": true }), None).await;
    assert_eq!((status, posted["run"]["status"].clone()), (202, json!("waiting")), "{posted}");
    let run = posted["run"]["id"].as_str().unwrap();
    let path = format!("/api/v1/runs/{run}/plan");
    let put = |token: &str, body: Value| api.send(reqwest::Method::PUT, token.to_owned(), &path, body);
    let edited = json!({ "tasks": [{ "id": "t1", "title": "Sum", "goal": "add 40 and 2", "done_when": "a number",
                                     "agent": "analyst" }] });
    assert_eq!(put(&api.viewer, edited.clone()).await.0, 403, "viewers watch");
    assert_eq!(put(&api.stranger, edited.clone()).await.0, 404);
    let bad = json!({ "tasks": [{ "id": "t1", "title": "x", "goal": "x", "done_when": "x", "agent": "poet" }] });
    let (status, problem) = put(&api.owner, bad).await;
    assert_eq!(status, 422);
    assert!(problem["detail"].as_str().unwrap().contains("poet"), "{problem}");
    let (_, saved) = put(&api.owner, edited).await;
    assert_eq!(
        (saved["tasks"][0]["goal"].clone(), saved["tasks"][0]["status"].clone()),
        (json!("add 40 and 2"), json!("pending"))
    );

    api.llm.push(block("final_answer(str(40 + 2))"));
    api.llm.push(Reply::Text(json!({ "done": true, "why": "a number" }).to_string()));
    api.llm.push(Reply::Text("The sum is 42.".into()));
    let resumed = api
        .client
        .post(format!("{}/api/v1/runs/{run}/resume", api.base))
        .bearer_auth(&api.owner)
        .json(&json!({ "answer": "yes" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while api.get(&api.owner, &format!("/api/v1/runs/{run}")).await["status"] != "succeeded" {
        assert!(std::time::Instant::now() < deadline, "the run finishes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = api.get(&api.viewer, &format!("/api/v1/threads/{thread}/events?after=0")).await;
    let plans: Vec<&Value> = events.as_array().unwrap().iter().filter(|e| e["kind"] == "plan").collect();
    assert!(plans.len() >= 3, "the plan, the edit and each task's progress went out: {}", plans.len());
    assert_eq!(plans.last().unwrap()["payload"]["plan"]["tasks"][0]["status"], "done");
    let (late, _) = put(&api.owner, json!({ "tasks": [] })).await;
    assert_eq!(late, 422, "a finished run's plan cannot change");
}

#[tokio::test]
async fn the_agent_recalls_in_one_thread_what_it_remembered_in_another() {
    let api = start(true).await;
    let memory = format!("/api/v1/projects/{}/memory", api.project);
    let remember =
        |token: &str, text: &str| api.send(reqwest::Method::POST, token.to_owned(), &memory, json!({ "text": text }));
    assert_eq!(remember(&api.owner, "The Q3 revenue target is 4.2 million euros.").await.0, 201);
    assert_eq!(remember(&api.viewer, "x").await.0, 403, "viewers do not write memory");
    assert_eq!(remember(&api.stranger, "x").await.0, 404);
    assert_eq!(remember(&api.owner, "  ").await.0, 422);

    // The agent remembers something in one thread…
    let first = api.thread().await;
    api.llm.push(block("remember('Our biggest customer is Acme Corp in Lyon.')\nfinal_answer('noted')"));
    let (_, posted) =
        api.post(&api.owner, &first, json!({ "content": "Note our biggest customer.", "wait": true }), None).await;
    assert_eq!(posted["answer"], "noted", "{posted}");
    // …and recalls it in another.
    let second = api.thread().await;
    api.llm.push(block("hits = recall('who is the biggest customer', limit=1)\nfinal_answer(hits[0]['text'])"));
    let (_, posted) =
        api.post(&api.owner, &second, json!({ "content": "Who is our biggest customer?", "wait": true }), None).await;
    assert_eq!(posted["answer"], "Our biggest customer is Acme Corp in Lyon.", "{posted}");

    let found = api.get(&api.viewer, &format!("{memory}/search?q=revenue%20target%20Q3&limit=5")).await;
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 2);
    assert!(found[0]["text"].as_str().unwrap().contains("4.2 million"), "{found:?}");
    assert!(found[0]["score"].as_f64().unwrap() > found[1]["score"].as_f64().unwrap());
    let hidden = api
        .client
        .get(format!("{}{memory}/search?q=revenue", api.base))
        .bearer_auth(&api.stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404, "another project's memory stays hidden");
}

#[tokio::test]
async fn without_an_embedding_model_memory_says_it_is_off() {
    let api = start_with(false, |config| config.llm.embedding_model.clear()).await;
    let memory = format!("{}/api/v1/projects/{}/memory", api.base, api.project);
    let kept = api.client.post(&memory).bearer_auth(&api.owner).json(&json!({ "text": "x" })).send().await.unwrap();
    assert_eq!(kept.status(), 503);
    let problem: Value = kept.json().await.unwrap();
    assert_eq!(problem["code"], "memory_unavailable");
    assert!(problem["detail"].as_str().unwrap().contains("llm.embedding_model"), "{problem}");
    let search = api.client.get(format!("{memory}/search?q=x")).bearer_auth(&api.owner).send().await.unwrap();
    assert_eq!(search.status(), 503);
}

#[tokio::test]
async fn library_text_files_are_searchable_in_memory_until_deleted() {
    let api = start(false).await;
    let files = format!("{}/api/v1/projects/{}/files", api.base, api.project);
    let put = api
        .client
        .put(format!("{files}/content?path=notes/meeting.txt"))
        .bearer_auth(&api.owner)
        .body("Minutes. The product launch moved to March 14 because of the supplier delay.")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let binary = api
        .client
        .put(format!("{files}/content?path=pixel.png"))
        .bearer_auth(&api.owner)
        .body(vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 201);
    let search = format!("/api/v1/projects/{}/memory/search?q=when%20is%20the%20product%20launch", api.project);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let found = loop {
        let found = api.get(&api.viewer, &search).await;
        if found.as_array().is_some_and(|f| !f.is_empty()) {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "the file's text reaches memory (indexed in the background)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(found[0]["source"], "file:notes/meeting.txt");
    assert!(found[0]["text"].as_str().unwrap().contains("March 14"));
    assert_eq!(found.as_array().unwrap().len(), 1, "binary files are not indexed");

    let deleted =
        api.client.delete(format!("{files}?path=notes&folder=true")).bearer_auth(&api.owner).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(api.get(&api.viewer, &search).await, json!([]), "a deleted file's text leaves memory");
}
