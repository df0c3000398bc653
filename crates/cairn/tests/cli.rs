//! The `cairn` binary as a user runs it: subcommands, start-up failures with
//! their messages and exit codes, serving with embedded defaults and with
//! PostgreSQL and Redis, and a clean stop on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_testkit::{TempDir, TestPostgres};
use serde_json::{Value, json};

mod common;
use common::*;

#[test]
fn version_and_help_describe_the_commands() {
    let dir = TempDir::new("cli");
    let (output, _) = run(cairn(&dir.path).arg("version"));
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), format!("cairn {}", env!("CARGO_PKG_VERSION")));
    for (args, expect) in [
        (&["--help"][..], "serve"),
        (&["serve", "--help"][..], "sandbox-host"),
        (&["migrate", "--help"][..], "migrations"),
        (&["version", "--help"][..], "version"),
    ] {
        let (output, _) = run(cairn(&dir.path).args(args));
        assert!(output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains(expect), "{args:?} mentions {expect}");
    }
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let dir = TempDir::new("cli");
    let (output, stderr) = run(cairn(&dir.path).arg("serve").env("CAIRN__SERVER__BIND", "localhost"));
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`server.bind`") && stderr.contains("CAIRN__SERVER__BIND"), "{stderr}");

    std::fs::write(dir.path.join("cairn.toml"), "[database]\nurll = \"x\"\n").unwrap();
    let (output, stderr) = run(cairn(&dir.path).args(["--config", "cairn.toml", "serve"]));
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`database.urll`") && stderr.contains("unknown field"), "{stderr}");
    assert!(!dir.path.join("data").exists(), "nothing is created before the configuration is valid");
}

#[test]
fn unreachable_dependencies_stop_start_up_with_the_cause() {
    let dir = TempDir::new("cli");
    let dead = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let (output, stderr) =
        run(cairn(&dir.path).arg("serve").env("CAIRN__DATABASE__URL", format!("postgres://postgres@{dead}/cairn")));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to PostgreSQL") && stderr.contains("refused"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));

    let (output, stderr) = run(cairn(&dir.path).arg("serve").env("CAIRN__REDIS__URL", format!("redis://{dead}")));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to Redis"), "{stderr}");
    assert!(!dir.path.join("data").exists(), "a failed start leaves no half-made data folder");

    let (output, stderr) =
        run(cairn(&dir.path).args(["serve", "--role", "worker"]).env("CAIRN__REDIS__URL", format!("redis://{dead}")));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to Redis"), "a worker stops the same way: {stderr}");
}

#[test]
fn migrate_creates_the_schema_and_is_idempotent() {
    let dir = TempDir::new("cli");
    for _ in 0..2 {
        let (output, stderr) = run(cairn(&dir.path).arg("migrate"));
        assert!(output.status.success(), "{stderr}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("database is up to date (sqlite)"));
    }
    assert!(dir.path.join("data/cairn.db").exists());
}

#[tokio::test]
async fn serve_all_in_one_with_embedded_defaults_then_stop_on_sigterm() {
    let dir = TempDir::new("cli");
    let mut server = Running::start(&dir.path, &[], &[]);
    let ready = server.wait_ready().await;
    assert_eq!(ready["checks"]["database"]["backend"], "sqlite");
    assert_eq!(ready["checks"]["bus"]["backend"], "in-process");
    let page = reqwest::get(format!("{}/", server.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    let document: Value =
        reqwest::get(format!("{}/api/openapi.json", server.base)).await.unwrap().json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(dir.path.join("data/cairn.db").exists(), "the SQLite file lives in the data dir");
    let traced = reqwest::Client::new()
        .get(format!("{}/api/v1/version", server.base))
        .header("x-request-id", "cli-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(traced.headers()["x-request-id"], "cli-trace-42");
    let log = server.log.clone();
    server.terminate();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("cli-trace-42"), "the request id appears in the logs:\n{log}");
}

#[tokio::test]
async fn serve_the_gateway_role_on_postgres_and_redis() {
    let dir = TempDir::new("cli");
    let pg = TestPostgres::create().await;
    let envs = shared_envs(&pg);
    let mut server = Running::start(&dir.path, &["--role", "gateway"], &envs);
    let ready = server.wait_ready().await;
    assert_eq!(ready["checks"]["database"]["backend"], "postgres");
    assert_eq!(ready["checks"]["bus"]["backend"], "redis");
    let version: Value = reqwest::get(format!("{}/api/v1/version", server.base)).await.unwrap().json().await.unwrap();
    assert_eq!((&version["name"], &version["role"]), (&json!("cairn"), &json!("gateway")));
    server.terminate();
    assert!(!dir.path.join("data/cairn.db").exists(), "no SQLite file when PostgreSQL is configured");
    assert!(!dir.path.join("data/auth").exists(), "no generated signing key when keys are configured");
}

/// A gateway queues runs without working on them and runs no sandbox; a
/// worker process, on the same database and bus, takes them, and serves
/// nothing but probes and metrics.
#[tokio::test]
async fn a_gateway_queues_runs_that_a_worker_process_works() {
    use cairn_testkit::{Reply, ScriptedLlm};
    let (gateway_dir, worker_dir) = (TempDir::new("cli"), TempDir::new("cli"));
    let pg = TestPostgres::create().await;
    let llm = ScriptedLlm::start(vec![Reply::Text("```python\nfinal_answer('worked elsewhere')\n```".into())]).await;
    let envs = [
        shared_envs(&pg),
        vec![("CAIRN__LLM__PROVIDERS", scripted_provider(&llm.url, "")), ("CAIRN__SANDBOX__POOL_SIZE", "0".to_owned())],
    ]
    .concat();
    let mut gateway = Running::start(&gateway_dir.path, &["--role", "gateway"], &envs);
    gateway.wait_ready().await;
    let ada = Ada::signs_up(&gateway).await;
    let (project, thread) = ada.project_with_thread().await;
    let thread = thread.as_str();
    let posted = ada
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            json!({ "content": "Work.", "wait": true, "wait_secs": 2 }),
        )
        .await;
    assert_eq!(posted["run"]["status"], "queued", "the gateway does not work on runs: {posted}");
    assert!(llm.received().is_empty());
    let call = ada.client.post(format!("{}/api/v1/projects/{}/tools/run_python", gateway.base, &project));
    let refused =
        call.bearer_auth(&ada.token).json(&json!({ "arguments": { "code": "print(1)" } })).send().await.unwrap();
    assert_eq!(refused.status(), 503, "without a sandbox host, a gateway runs no code itself");
    assert!(!gateway_dir.path.join("data/sandboxes").exists(), "the gateway made no sandbox");

    let mut worker = Running::start(&worker_dir.path, &["--role", "worker"], &envs);
    let ready = worker.wait_ready().await;
    assert_eq!(ready["checks"]["database"]["backend"], "postgres");
    for (path, status) in [("/healthz", 200), ("/metrics", 200), ("/api/v1/version", 404), ("/", 404)] {
        let answer = reqwest::get(format!("{}{path}", worker.base)).await.unwrap();
        assert_eq!(answer.status(), status, "a worker serves probes and metrics only: {path}");
    }
    let run = posted["run"]["id"].as_str().unwrap();
    let status = ada.finished_run(run, Duration::from_secs(60)).await["status"].clone();
    assert_eq!(status, "succeeded", "the worker took the run");
    // The worker's metrics tell of the work it did.
    let metrics = reqwest::get(format!("{}/metrics", worker.base)).await.unwrap().text().await.unwrap();
    for line in [
        r#"cairn_model_calls_total{model="scripted/m",outcome="ok"} 1"#,
        r#"cairn_model_tokens_total{model="scripted/m",kind="output"}"#,
        r#"cairn_agent_step_seconds_count{node="think"} 1"#,
        r#"cairn_model_call_seconds_count{model="scripted/m"} 1"#,
        r#"cairn_queue_jobs{queue="runs",state="dead"} 0"#,
        r#"cairn_queue_jobs{queue="runs",state="ready"} 0"#,
        r#"cairn_runs{status="succeeded"} 1"#,
        r#"cairn_runs{status="running"} 0"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let messages = ada.get(&format!("/api/v1/threads/{thread}/messages")).await;
    assert_eq!(messages.as_array().unwrap().last().unwrap()["content"], "worked elsewhere");
    worker.terminate();
    gateway.terminate();
}

/// A run held by a worker hears a message posted mid-run through another
/// gateway at its next step, and is cancelled through a gateway: the
/// gateway says so at once and the worker stops calling the model at its
/// next step.
#[tokio::test]
async fn a_cancel_through_a_gateway_stops_the_run_a_worker_holds() {
    use cairn_testkit::{Reply, ScriptedLlm};
    let (gateway_dir, worker_dir, other_dir) = (TempDir::new("cli"), TempDir::new("cli"), TempDir::new("cli"));
    let pg = TestPostgres::create().await;
    let llm = ScriptedLlm::start(Vec::new()).await;
    // A run that would go on for its whole step budget: every reply is one
    // more step, each taking a little while to stream.
    let again = "Once more.\n```python\nprint('again')\n```";
    llm.set_default(Reply::Slow { text: again.into(), delay: Duration::from_millis(40) });
    let envs = [
        shared_envs(&pg),
        vec![
            ("CAIRN__LLM__PROVIDERS", scripted_provider(&llm.url, "")),
            ("CAIRN__SANDBOX__POOL_SIZE", "0".to_owned()),
            ("CAIRN__AGENT__MAX_STEPS", "200".to_owned()),
        ],
    ]
    .concat();
    let mut gateway = Running::start(&gateway_dir.path, &["--role", "gateway"], &envs);
    let mut other = Running::start(&other_dir.path, &["--role", "gateway"], &envs);
    let mut worker = Running::start(&worker_dir.path, &["--role", "worker"], &envs);
    gateway.wait_ready().await;
    other.wait_ready().await;
    worker.wait_ready().await;
    let ada = Ada::signs_up(&gateway).await;
    let (_, thread) = ada.project_with_thread().await;
    let thread = thread.as_str();
    let posted = ada.post(&format!("/api/v1/threads/{thread}/messages"), json!({ "content": "Loop." })).await;
    let run = posted["run"]["id"].as_str().unwrap();
    model_called(&llm, 2).await;
    assert_eq!(ada.get(&format!("/api/v1/runs/{run}")).await["status"], "running");

    // A message posted meanwhile through the other gateway reaches the
    // worker's next model call.
    let elsewhere = Ada { client: ada.client.clone(), base: other.base.clone(), token: ada.token.clone() };
    let note = "Also say the date, please.";
    let added =
        elsewhere.post(&format!("/api/v1/threads/{thread}/messages"), json!({ "content": note, "run": false })).await;
    assert!(added["run"].is_null(), "no second run: {added}");
    let heard = tokio::time::timeout(Duration::from_secs(20), async {
        while !llm.received().iter().any(|r| r.body["messages"].to_string().contains(note)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(heard.await.is_ok(), "the worker's next step saw the message posted through the other gateway");

    let cancelled = ada.post(&format!("/api/v1/runs/{run}/cancel"), json!({})).await;
    assert_eq!(cancelled["status"], "cancelled", "the gateway answers at once: {cancelled}");
    // The worker finishes the step it is in, then stops: the model is called
    // no more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = llm.received().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(llm.received().len(), calls, "the worker stopped calling the model");
    assert_eq!(ada.get(&format!("/api/v1/runs/{run}")).await["status"], "cancelled", "and the run stays cancelled");
    let events = ada.get(&format!("/api/v1/threads/{thread}/events")).await;
    let cancels = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run.status" && e["payload"]["status"] == "cancelled")
        .count();
    assert_eq!(cancels, 1, "one cancelled status, not one per process: {events}");
    worker.terminate();
    other.terminate();
    gateway.terminate();
}

/// A worker that stops (SIGTERM) hands the run it holds back to the queue at
/// once: another worker goes on from the last checkpoint without waiting
/// for the lease to run out, and the run finishes once.
#[tokio::test]
async fn a_stopping_worker_hands_its_run_to_another() {
    use cairn_testkit::{Reply, ScriptedLlm};
    let (gateway_dir, first_dir, second_dir) = (TempDir::new("cli"), TempDir::new("cli"), TempDir::new("cli"));
    let pg = TestPostgres::create().await;
    let again =
        || Reply::Slow { text: "Once more.\n```python\nprint('again')\n```".into(), delay: Duration::from_millis(60) };
    let llm = ScriptedLlm::start((0..8).map(|_| again()).collect()).await;
    llm.set_default(Reply::Text("```python\nfinal_answer('finished elsewhere')\n```".into()));
    let envs = [
        shared_envs(&pg),
        vec![
            ("CAIRN__LLM__PROVIDERS", scripted_provider(&llm.url, "")),
            ("CAIRN__SANDBOX__POOL_SIZE", "0".to_owned()),
            ("CAIRN__SERVER__SHUTDOWN_GRACE_SECS", "1".to_owned()),
        ],
    ]
    .concat();
    let mut gateway = Running::start(&gateway_dir.path, &["--role", "gateway"], &envs);
    let mut first = Running::start(&first_dir.path, &["--role", "worker"], &envs);
    gateway.wait_ready().await;
    first.wait_ready().await;
    let ada = Ada::signs_up(&gateway).await;
    let (_, thread) = ada.project_with_thread().await;
    let posted = ada.post(&format!("/api/v1/threads/{thread}/messages"), json!({ "content": "Go on." })).await;
    let run = posted["run"]["id"].as_str().unwrap().to_owned();
    model_called(&llm, 2).await;
    first.terminate();
    let stopped = Instant::now();
    let calls = llm.received().len();
    assert!(calls < 9, "the run was still going when the worker stopped ({calls} calls)");

    let mut second = Running::start(&second_dir.path, &["--role", "worker"], &envs);
    second.wait_ready().await;
    let status = ada.finished_run(&run, Duration::from_secs(60)).await["status"].clone();
    assert_eq!(status, "succeeded");
    // The lease is 30 s: the second worker had the run sooner because the
    // first gave it back.
    assert!(stopped.elapsed() < Duration::from_secs(20), "taken over after {:?}", stopped.elapsed());
    let messages = ada.get(&format!("/api/v1/threads/{thread}/messages")).await;
    let answers: Vec<&Value> = messages.as_array().unwrap().iter().filter(|m| m["role"] == "assistant").collect();
    assert_eq!(answers.len(), 1, "one answer: {messages}");
    assert_eq!(answers[0]["content"], "finished elsewhere");
    second.terminate();
    gateway.terminate();
}

/// A worker paused past its lease (SIGSTOP) loses the run to another, which
/// finishes it; when the first one wakes up, every write it tries is
/// refused: the thread keeps one answer and the log the second worker left.
#[tokio::test]
async fn a_worker_paused_past_its_lease_is_fenced_off() {
    use cairn_testkit::{Reply, ScriptedLlm};
    let dirs = [TempDir::new("cli"), TempDir::new("cli"), TempDir::new("cli")];
    let pg = TestPostgres::create().await;
    let llm = ScriptedLlm::start(vec![
        Reply::Text("```python\nprint('step one')\n```".into()),
        // The first worker is paused while this reply streams; when it wakes
        // up it would run this code and go on.
        Reply::Slow {
            text: format!("```python\n{}\n```", "print('from the paused worker') ".repeat(20)),
            delay: Duration::from_millis(100),
        },
        Reply::Text("```python\nprint('step two')\n```".into()),
    ])
    .await;
    llm.set_default(Reply::Text("```python\nfinal_answer('finished by the second worker')\n```".into()));
    let envs = [
        shared_envs(&pg),
        vec![
            ("CAIRN__LLM__PROVIDERS", scripted_provider(&llm.url, "")),
            ("CAIRN__SANDBOX__POOL_SIZE", "0".to_owned()),
            ("CAIRN__QUEUE__LEASE_SECS", "3".to_owned()),
        ],
    ]
    .concat();
    let mut gateway = Running::start(&dirs[0].path, &["--role", "gateway"], &envs);
    let mut first = Running::start(&dirs[1].path, &["--role", "worker"], &envs);
    gateway.wait_ready().await;
    first.wait_ready().await;
    let ada = Ada::signs_up(&gateway).await;
    let (_, thread) = ada.project_with_thread().await;
    let posted = ada.post(&format!("/api/v1/threads/{thread}/messages"), json!({ "content": "Go." })).await;
    let run = posted["run"]["id"].as_str().unwrap().to_owned();
    model_called(&llm, 2).await;
    let pid = first.child.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());

    let mut second = Running::start(&dirs[2].path, &["--role", "worker"], &envs);
    second.wait_ready().await;
    let finished = ada.finished_run(&run, Duration::from_secs(60)).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let events_path = format!("/api/v1/threads/{thread}/events?after=0");
    let log_when_finished = ada.get(&events_path).await;

    // The first worker wakes up and tries to go on.
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let refused = || std::fs::read_to_string(&first.log).unwrap_or_default().contains("took the run over");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !refused() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = ada.get(&events_path).await;
    assert_eq!(log, log_when_finished, "nothing of the paused worker reached the log");
    assert!(refused(), "the paused worker tried to write and was told another worker had the run");
    let seqs: Vec<i64> = log.as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no gap and no duplicate in the event log");
    assert!(!log.to_string().contains("from the paused worker"), "the paused worker's step never ran to the log");
    let messages = ada.get(&format!("/api/v1/threads/{thread}/messages")).await;
    let answers: Vec<&Value> = messages.as_array().unwrap().iter().filter(|m| m["role"] == "assistant").collect();
    assert_eq!(answers.len(), 1, "one answer: {messages}");
    assert_eq!(answers[0]["content"], "finished by the second worker");
    assert_eq!(ada.get(&format!("/api/v1/runs/{run}")).await["status"], "succeeded");
    first.terminate();
    second.terminate();
    gateway.terminate();
}

/// A thread's server-sent events as one member sees them.
struct Watching {
    response: reqwest::Response,
    buffer: String,
}

impl Watching {
    async fn open(who: &Ada, thread: &str) -> Watching {
        let url = format!("{}/api/v1/threads/{thread}/events", who.base);
        let response =
            who.client.get(url).bearer_auth(&who.token).header("accept", "text/event-stream").send().await.unwrap();
        assert_eq!(response.status(), 200);
        Watching { response, buffer: String::new() }
    }

    /// The next presence state that satisfies `wanted`.
    async fn presence_until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = block
                    .contains("event: presence")
                    .then(|| block.lines().find_map(|l| l.strip_prefix("data: ")))
                    .flatten()
                {
                    let state: Value = serde_json::from_str(data).unwrap();
                    if wanted(&state) {
                        return state;
                    }
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.response.chunk())
                .await
                .expect("a presence state in time")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn names(members: &Value) -> Vec<String> {
    members.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
}

/// Two gateways on one bus: members watching through either see everyone
/// who is here and who is typing, and who left.
#[tokio::test]
async fn presence_crosses_gateways() {
    let (a_dir, b_dir) = (TempDir::new("cli"), TempDir::new("cli"));
    let pg = TestPostgres::create().await;
    let envs = shared_envs(&pg);
    let mut a = Running::start(&a_dir.path, &["--role", "gateway"], &envs);
    let mut b = Running::start(&b_dir.path, &["--role", "gateway"], &envs);
    a.wait_ready().await;
    b.wait_ready().await;
    let ada = Ada::signs_up(&a).await;
    let ben = Ada::signs_up_as(&b, "ben@example.com", "Ben").await;
    let project = ada.post("/api/v1/projects", json!({ "name": "P" })).await;
    let project = project["id"].as_str().unwrap();
    let added = ada
        .post(&format!("/api/v1/projects/{project}/members"), json!({ "email": "ben@example.com", "role": "editor" }))
        .await;
    assert_eq!(added["role"], "editor", "{added}");
    let thread = ada.post(&format!("/api/v1/projects/{project}/threads"), json!({ "title": "T" })).await;
    let thread = thread["id"].as_str().unwrap();

    let mut adas = Watching::open(&ada, thread).await;
    let mut bens = Watching::open(&ben, thread).await;
    adas.presence_until(|s| names(&s["here"]) == ["Ada", "Ben"]).await;
    bens.presence_until(|s| names(&s["here"]) == ["Ada", "Ben"]).await;

    let typed = ben.client.post(format!("{}/api/v1/threads/{thread}/typing", ben.base)).bearer_auth(&ben.token).send();
    assert_eq!(typed.await.unwrap().status(), 204);
    adas.presence_until(|s| names(&s["typing"]) == ["Ben"]).await;

    drop(bens);
    let alone = adas.presence_until(|s| names(&s["here"]) == ["Ada"]).await;
    assert_eq!(names(&alone["typing"]), Vec::<String>::new(), "{alone}");
    // A gateway that stops closes the streams it holds: server-sent events
    // end, and a WebSocket is closed with "going away" (1001), so its client
    // reconnects elsewhere with its last event id.
    let mut socket = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/api/v1/threads/{thread}/events/ws?after=0", a.base.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {}", ada.token).parse().unwrap());
        tokio_tungstenite::connect_async(request).await.unwrap().0
    };
    a.terminate();
    let ended =
        tokio::time::timeout(Duration::from_secs(5), async { while let Ok(Some(_)) = adas.response.chunk().await {} });
    assert!(ended.await.is_ok(), "the stream was closed");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use futures::StreamExt;
        while let Some(Ok(message)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    });
    assert_eq!(closed.await.expect("the socket was closed in time"), Some(1001), "closed as going away");
    b.terminate();
}

#[tokio::test]
async fn user_create_makes_an_admin_who_can_sign_in() {
    use std::io::Write;
    let dir = TempDir::new("cli");
    let create = |password: &str, email: &str| {
        let mut child = cairn(&dir.path)
            .args(["user", "create", "--email", email, "--name", "Root", "--admin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let weak = create("password", "root@example.com");
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("common"), "{}", String::from_utf8_lossy(&weak.stderr));
    let made = create("an operator's passphrase", "root@example.com");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(String::from_utf8_lossy(&made.stdout).contains("created root@example.com (admin)"));
    let again = create("an operator's passphrase", "root@example.com");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let mut server = Running::start(&dir.path, &[], &[]);
    server.wait_ready().await;
    let client = reqwest::Client::new();
    let token: Value = client
        .post(format!("{}/api/v1/auth/token", server.base))
        .form(&[("grant_type", "password"), ("username", "root@example.com"), ("password", "an operator's passphrase")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().expect("signed in");
    let me: Value = client
        .get(format!("{}/api/v1/me", server.base))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert!(dir.path.join("data/auth/signing-keys.json").exists(), "the generated key is kept in the data dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path.join("data/auth/signing-keys.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner may read the key");
    }
    server.terminate();
}

#[tokio::test]
async fn serve_the_sandbox_host_role_behind_its_service_credential() {
    use cairn_core::sandbox::{Execution, NewSandbox, Output, Sandboxes};
    let dir = TempDir::new("cli");
    let (output, stderr) = run(cairn(&dir.path).args(["serve", "--role", "sandbox-host"]));
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sandbox.host_token"), "{stderr}");

    let token = "a-service-credential-of-enough-length-42".to_owned();
    let admin = format!("127.0.0.1:{}", free_port());
    let mut envs = vec![
        ("CAIRN__SANDBOX__HOST_TOKEN", token.clone()),
        ("CAIRN__SANDBOX__POOL_SIZE", "0".into()),
        ("CAIRN__SERVER__ADMIN_BIND", admin.clone()),
    ];
    if let Ok(python) = std::env::var("CAIRN_SANDBOX_PYTHON") {
        envs.push(("CAIRN__SANDBOX__PYTHON", python));
    }
    let mut server = Running::start(&dir.path, &["--role", "sandbox-host"], &envs);
    assert_eq!(server.wait_ready().await["status"], "ready");
    let remote = cairn_sandbox::RemoteSandboxes::new(&server.base, &token).unwrap();
    let owner = cairn_core::UserId::new();
    let info = remote.create(NewSandbox::for_owner(owner)).await.unwrap();
    let code = Execution::Python { code: "open('kept.txt', 'w').write('yes')\n6 * 7".into() };
    let outcome = remote.execute(info.id, code, &mut |_: &Output| {}).await.unwrap();
    assert_eq!(outcome.result_text(), Some("42"));
    // Its metrics, behind the same credential, count its sandboxes.
    let metrics = format!("{}/metrics", server.base);
    assert_eq!(reqwest::get(&metrics).await.unwrap().status(), 401);
    let scraped = reqwest::Client::new().get(&metrics).bearer_auth(&token).send().await.unwrap();
    let scraped = scraped.text().await.unwrap();
    for line in [r#"cairn_sandboxes{state="running"} 1"#, "cairn_sandboxes_busy 0", "cairn_sandbox_capacity 32"] {
        assert!(scraped.lines().any(|l| l == line), "{line} in:\n{scraped}");
    }
    // And without credentials on the admin listener.
    let open = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(open.contains(r#"cairn_sandboxes{state="running"} 1"#), "{open}");
    server.terminate();
    let record = dir.path.join("data/sandboxes/instances").join(info.id.to_string());
    assert!(record.join("sandbox.json").exists(), "the sandbox is recorded for the next start");
    assert_eq!(std::fs::read_to_string(record.join("workspace/kept.txt")).unwrap(), "yes");
}

#[tokio::test]
async fn a_run_survives_kill_9_of_the_server_and_completes_after_restart() {
    use cairn_testkit::{Reply, ScriptedLlm};
    let dir = TempDir::new("cli");
    let llm = ScriptedLlm::start(vec![
        Reply::Text("```python\nprint('step one')\n```".into()),
        // The server is killed while this reply streams.
        Reply::Slow {
            text: format!("```python\n{}\n```", "print('never') ".repeat(40)),
            delay: Duration::from_millis(200),
        },
        Reply::Text("```python\nfinal_answer('done after the restart')\n```".into()),
    ])
    .await;
    let envs = [
        ("CAIRN__LLM__PROVIDERS", scripted_provider(&llm.url, "")),
        ("CAIRN__QUEUE__LEASE_SECS", "3".to_owned()),
        ("CAIRN__SANDBOX__POOL_SIZE", "0".to_owned()),
    ];
    let mut server = Running::start(&dir.path, &[], &envs);
    server.wait_ready().await;
    let mut ada = Ada::signs_up(&server).await;
    let project = ada.post("/api/v1/projects", json!({ "name": "P" })).await;
    let thread = ada
        .post(&format!("/api/v1/projects/{}/threads", project["id"].as_str().unwrap()), json!({ "title": "T" }))
        .await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    let posted = ada.post(&format!("/api/v1/threads/{thread}/messages"), json!({ "content": "Do it in steps." })).await;
    let run = posted["run"]["id"].as_str().unwrap().to_owned();

    // Wait until the first step ran and the second reply is streaming, then kill -9.
    let events_path = format!("/api/v1/threads/{thread}/events?after=0");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = ada.get(&events_path).await.as_array().unwrap().clone();
        if seen.iter().filter(|e| e["kind"] == "token").count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the run did not get going: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let _ = server.child.wait();

    let mut restarted = Running::start(&dir.path, &[], &envs);
    restarted.wait_ready().await;
    ada.base = restarted.base.clone();
    let status = ada.finished_run(&run, Duration::from_secs(90)).await;
    assert_eq!(status["status"], "succeeded", "{status}");
    let log = ada.get(&events_path).await.as_array().unwrap().clone();
    let seqs: Vec<i64> = log.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no gap and no duplicate in the event log");
    let observations = log.iter().filter(|e| e["kind"] == "observation").count();
    assert_eq!(observations, 2, "the finished first step was not run again: {log:?}");
    let answer = log.iter().rev().find(|e| e["kind"] == "message.created").unwrap();
    assert_eq!(answer["payload"]["content"], "done after the restart");
    restarted.terminate();
}

/// A first run: no configuration but `OPENAI_API_KEY` and `OPENAI_BASE_URL`
/// (the scripted server standing in for OpenAI), and a message is answered.
#[tokio::test]
async fn a_first_run_with_only_openai_variables_answers_a_message() {
    use cairn_testkit::{Reply, ScriptedLlm};
    let dir = TempDir::new("cli");
    let llm =
        ScriptedLlm::start(vec![Reply::Text("```python\nfinal_answer('hello from the first run')\n```".into())]).await;
    let envs = [
        ("OPENAI_API_KEY", "sk-first-run".to_owned()),
        ("OPENAI_BASE_URL", format!("{}/v1", llm.url)),
        ("CAIRN__SANDBOX__POOL_SIZE", "0".to_owned()),
    ];
    let mut server = Running::start(&dir.path, &[], &envs);
    server.wait_ready().await;
    let ada = Ada::signs_up(&server).await;
    let models = ada.get("/api/v1/models").await;
    assert_eq!(models["default"], "openai/scripted-model", "{models}");
    assert!(!models.to_string().contains("sk-first-run"), "the key never leaves the server");
    let (_, thread) = ada.project_with_thread().await;
    let thread = thread.as_str();
    let answered =
        ada.post(&format!("/api/v1/threads/{thread}/messages"), json!({ "content": "Say hello.", "wait": true })).await;
    assert_eq!(answered["run"]["status"], "succeeded", "{answered}");
    let received = llm.received();
    assert_eq!(received[0].headers["authorization"], "Bearer sk-first-run");
    assert!(received[0].body.get("max_completion_tokens").is_some(), "OpenAI's API is spoken as OpenAI's");
    server.terminate();
}

/// Provider keys — from the configuration and from a connection made in the
/// app — never reach the server's log, even at debug level.
#[tokio::test]
async fn provider_keys_never_reach_the_log() {
    use cairn_testkit::{Reply, ScriptedLlm};
    let dir = TempDir::new("cli");
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(Reply::Text("OK".into()));
    let file_key = "sk-from-the-configuration-7f3a";
    let app_key = "sk-from-the-app-9c4e";
    let envs = [
        ("CAIRN__LLM__PROVIDERS", scripted_provider(&llm.url, &format!("api_key=\"{file_key}\","))),
        ("CAIRN__LOG__LEVEL", "debug".to_owned()),
        ("CAIRN__SANDBOX__POOL_SIZE", "0".to_owned()),
    ];
    let mut server = Running::start(&dir.path, &[], &envs);
    server.wait_ready().await;
    let ada = Ada::signs_up(&server).await;
    let request = json!({ "name": "lab", "kind": "openai-compatible", "base_url": format!("{}/v1", llm.url),
                          "api_key": app_key, "models": [{ "name": "m" }] });
    let created = ada.post("/api/v1/admin/connections", request).await;
    let id = created["id"].as_str().unwrap();
    let tested = ada.post(&format!("/api/v1/admin/connections/{id}/test"), Value::Null).await;
    assert_eq!(tested["ok"], true, "{tested}");
    let log_path = server.log.clone();
    server.terminate();
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("DEBUG"), "the server logged at debug level:\n{log}");
    for key in [file_key, app_key] {
        assert!(!log.contains(key), "a provider key reached the log:\n{log}");
    }
}
