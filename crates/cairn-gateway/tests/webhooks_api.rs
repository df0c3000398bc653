//! Project webhooks over HTTP, with the agent on real parts and a receiver
//! on 127.0.0.1 (allowlisted, as a private address must be): signed
//! deliveries, retries on the schedule, the delivery log, redelivery,
//! secret rotation, and the destination rules. The Standard Webhooks
//! package verifies the same deliveries in `scripts/client_tests.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use cairn_config::Config;
use cairn_testkit::{Reply, ScriptedLlm, TempDir};
use reqwest::Method;
use serde_json::{Value, json};

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: i64,
    signatures: Vec<String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Whether one of its signatures is the secret's.
    fn signed_with(&self, secret: &str) -> bool {
        let expected = cairn_webhooks::sign(secret, &self.id, self.timestamp, &self.body).unwrap();
        self.signatures.contains(&expected)
    }
}

/// An endpoint on 127.0.0.1 that records what it gets and answers each
/// event type with the statuses queued for it, then 200.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let receiver = Receiver::default();
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    let received = Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp").parse().unwrap_or(0),
                        signatures: header("webhook-signature").split(' ').map(str::to_owned).collect(),
                        body: body.to_vec(),
                    };
                    let kind = received.json()["type"].as_str().unwrap_or("").to_owned();
                    state.got.lock().unwrap().push(received);
                    let status =
                        state.answers.lock().unwrap().get_mut(&kind).and_then(VecDeque::pop_front).unwrap_or(200);
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    fn answer(&self, kind: &str, statuses: &[u16]) {
        self.answers.lock().unwrap().entry(kind.to_owned()).or_default().extend(statuses);
    }

    /// The requests of `kind`, once `count` of them arrived.
    async fn wait_for(&self, kind: &str, count: usize) -> Vec<Received> {
        for _ in 0..400 {
            let got: Vec<Received> =
                self.got.lock().unwrap().iter().filter(|r| r.json()["type"] == kind).cloned().collect();
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("fewer than {count} `{kind}` deliveries arrived: {:?}", self.got.lock().unwrap());
    }
}

struct Api {
    base: String,
    client: reqwest::Client,
    owner: String,
    viewer: String,
    project: String,
    llm: ScriptedLlm,
    _dir: TempDir,
}

async fn start(allow: SocketAddr) -> Api {
    let dir = TempDir::new("webhooks-api");
    let llm = ScriptedLlm::start(Vec::new()).await;
    let mut config = Config::default();
    config.llm.providers = vec![support::scripted_provider(&llm.url, vec![support::free_model("m")])];
    config.llm.default_model = "scripted/m".into();
    config.tools.allow_private = vec![allow];
    config.webhooks.retry_secs = vec![1, 1];
    let mut state = support::sqlite_state(&dir, config).await;
    support::with_sandboxes(&mut state, &dir, true).await;
    let base = support::serve(state).await;
    let client = reqwest::Client::new();
    let ([owner, viewer, _], project) = support::owner_viewer_stranger(&client, &base, "Hooked").await;
    Api { base, client, owner, viewer, project, llm, _dir: dir }
}

impl Api {
    async fn call(&self, method: Method, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        support::send_json(&self.client, method, &format!("{}{path}", self.base), token, body).await
    }

    fn hooks(&self) -> String {
        format!("/api/v1/projects/{}/webhooks", self.project)
    }

    /// Posts a task whose run saves an artifact and answers; waits for it.
    async fn run(&self) -> Value {
        self.llm.push(Reply::Text(
            "```python\nopen('out.txt', 'w').write('hi')\nsave_artifact('out.txt')\nfinal_answer('done')\n```".into(),
        ));
        let (_, thread) = self
            .call(Method::POST, &self.owner, &format!("/api/v1/projects/{}/threads", self.project), Some(json!({})))
            .await;
        let path = format!("/api/v1/threads/{}/messages", thread["id"].as_str().unwrap());
        let (status, posted) =
            self.call(Method::POST, &self.owner, &path, Some(json!({ "content": "Go.", "wait": true }))).await;
        assert_eq!((status, posted["answer"].as_str()), (200, Some("done")), "{posted}");
        posted
    }
}

#[tokio::test]
async fn deliveries_are_signed_retried_logged_and_redelivered() {
    let (receiver, addr) = Receiver::start().await;
    let api = start(addr).await;
    let events = json!(["run.succeeded", "artifact.saved", "member.added"]);
    let (status, hook) = api
        .call(
            Method::POST,
            &api.owner,
            &api.hooks(),
            Some(json!({ "url": format!("http://{addr}/hook"), "events": events })),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = api.call(Method::GET, &api.owner, &api.hooks(), None).await;
    assert!(!listed.to_string().contains(&secret), "the secret is shown once");

    // The endpoint fails once: the delivery is tried again a second later,
    // with the same id, and both attempts are signed.
    receiver.answer("run.succeeded", &[500]);
    let posted = api.run().await;
    let attempts = receiver.wait_for("run.succeeded", 2).await;
    assert_eq!(attempts[0].id, attempts[1].id, "a retry keeps the webhook-id");
    assert!(attempts.iter().all(|a| a.signed_with(&secret)));
    let body = attempts[1].json();
    assert_eq!(body["data"]["run"], posted["run"]["id"]);
    assert_eq!(body["data"]["answer"], "done");
    let saved = receiver.wait_for("artifact.saved", 1).await;
    assert_eq!(saved[0].json()["data"]["path"], "out.txt");

    // The log: status, attempts, the last answer's code and time.
    let deliveries = format!("{}/{}/deliveries", api.hooks(), hook["id"].as_str().unwrap());
    let mut log = Value::Null;
    for _ in 0..100 {
        log = api.call(Method::GET, &api.owner, &deliveries, None).await.1;
        if log.as_array().unwrap().iter().any(|d| d["event_type"] == "run.succeeded" && d["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let succeeded = log.as_array().unwrap().iter().find(|d| d["event_type"] == "run.succeeded").unwrap().clone();
    assert_eq!((succeeded["status"].as_str(), succeeded["attempts"].as_i64()), (Some("delivered"), Some(2)), "{log}");
    assert_eq!(succeeded["response_code"], 200);
    assert!(succeeded["duration_ms"].as_i64().is_some());
    assert_eq!(succeeded["id"], attempts[0].id.as_str());

    // Redelivered by hand: the same id again.
    let again = format!("{deliveries}/{}/redeliver", attempts[0].id);
    let (status, queued) = api.call(Method::POST, &api.owner, &again, None).await;
    assert_eq!((status, queued["status"].as_str()), (202, Some("pending")));
    let attempts = receiver.wait_for("run.succeeded", 3).await;
    assert_eq!(attempts[2].id, attempts[0].id);

    // A rotated secret: the next delivery is signed with the new one and,
    // during the grace period, the old one too.
    let (status, rotated) = api
        .call(Method::POST, &api.owner, &format!("{}/{}/secret", api.hooks(), hook["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(status, 200);
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new_secret != secret && rotated["previous_secret_until"].is_string());
    let (status, _) = api
        .call(
            Method::POST,
            &api.owner,
            &format!("/api/v1/projects/{}/members", api.project),
            Some(json!({ "email": "stranger@example.com", "role": "editor" })),
        )
        .await;
    assert_eq!(status, 201);
    let added = receiver.wait_for("member.added", 1).await;
    assert!(added[0].signed_with(&new_secret) && added[0].signed_with(&secret), "{:?}", added[0].signatures);
    assert_eq!(added[0].json()["data"]["role"], "editor");
    // Every change to webhooks is in the audit log.
    let (_, audit) = api.call(Method::GET, &api.owner, "/api/v1/admin/audit", None).await;
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["webhook.created", "webhook.redelivered", "webhook.secret_rotated"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

#[tokio::test]
async fn a_failing_endpoint_is_given_up_after_its_schedule_and_a_disabled_one_gets_nothing() {
    let (receiver, addr) = Receiver::start().await;
    let api = start(addr).await;
    let body = json!({ "url": format!("http://{addr}/hook"), "events": ["run.succeeded"] });
    let (_, hook) = api.call(Method::POST, &api.owner, &api.hooks(), Some(body)).await;
    receiver.answer("run.succeeded", &[500, 502, 503]);
    api.run().await;
    // First attempt and two retries (`webhooks.retry_secs = [1, 1]`), then it fails.
    let attempts = receiver.wait_for("run.succeeded", 3).await;
    let deliveries = format!("{}/{}/deliveries", api.hooks(), hook["id"].as_str().unwrap());
    let mut log = Value::Null;
    for _ in 0..100 {
        log = api.call(Method::GET, &api.owner, &deliveries, None).await.1;
        if log[0]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((log[0]["status"].as_str(), log[0]["attempts"].as_i64()), (Some("failed"), Some(3)), "{log}");
    assert_eq!((log[0]["response_code"].as_i64(), log[0]["next_attempt_at"].is_null()), (Some(503), true));
    assert!(log[0]["last_error"].as_str().unwrap().contains("503"));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(receiver.wait_for("run.succeeded", 0).await.len(), attempts.len(), "no attempt after the last retry");

    // Disabled: events are no longer queued for it.
    let patch = json!({ "enabled": false });
    let (status, updated) = api
        .call(Method::PATCH, &api.owner, &format!("{}/{}", api.hooks(), hook["id"].as_str().unwrap()), Some(patch))
        .await;
    assert_eq!((status, updated["enabled"].as_bool()), (200, Some(false)));
    api.run().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.call(Method::GET, &api.owner, &deliveries, None).await.1.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn endpoints_obey_the_web_tools_rules_and_only_owners_manage_them() {
    let (_, addr) = Receiver::start().await;
    let api = start(addr).await;
    let make = |url: &str, events: Value| Some(json!({ "url": url, "events": events }));
    let run = json!(["run.succeeded"]);
    for refused in
        ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://[::1]:8080/", "http://10.0.0.1/"]
    {
        let (status, problem) = api.call(Method::POST, &api.owner, &api.hooks(), make(refused, run.clone())).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some("destination_refused")), "{refused}: {problem}");
    }
    let (status, problem) =
        api.call(Method::POST, &api.owner, &api.hooks(), make("ftp://example.com/", run.clone())).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_webhook")));
    let allowed = format!("http://{addr}/hook");
    let (status, problem) =
        api.call(Method::POST, &api.owner, &api.hooks(), make(&allowed, json!(["run.exploded"]))).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_webhook")));
    assert!(problem["detail"].as_str().unwrap().contains("run.succeeded"), "names the types: {problem}");
    let (status, _) = api.call(Method::POST, &api.owner, &api.hooks(), make(&allowed, json!([]))).await;
    assert_eq!(status, 422);
    let (status, _) = api.call(Method::POST, &api.viewer, &api.hooks(), make(&allowed, run.clone())).await;
    assert_eq!(status, 403);
    let (status, hook) = api.call(Method::POST, &api.owner, &api.hooks(), make(&allowed, run.clone())).await;
    assert_eq!(status, 201);
    // An update is held to the same rules.
    let path = format!("{}/{}", api.hooks(), hook["id"].as_str().unwrap());
    let (status, problem) =
        api.call(Method::PATCH, &api.owner, &path, Some(json!({ "url": "http://127.0.0.1:9/" }))).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("destination_refused")));
    // Another project's endpoint does not exist here.
    let (_, other) = api.call(Method::POST, &api.owner, "/api/v1/projects", Some(json!({ "name": "Other" }))).await;
    let elsewhere =
        format!("/api/v1/projects/{}/webhooks/{}", other["id"].as_str().unwrap(), hook["id"].as_str().unwrap());
    assert_eq!(api.call(Method::DELETE, &api.owner, &elsewhere, None).await.0, 404);
    assert_eq!(api.call(Method::DELETE, &api.viewer, &path, None).await.0, 403);
    assert_eq!(api.call(Method::DELETE, &api.owner, &path, None).await.0, 204);
    assert_eq!(api.call(Method::GET, &api.owner, &api.hooks(), None).await.1, json!([]));
}
