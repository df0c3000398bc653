//! The sandbox host's HTTP API with the client that other Cairn processes
//! use: the same `Sandboxes` interface over a real connection, the service
//! credential, errors by their codes, the tool bridge across the network,
//! and a caller that goes away mid-execution.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_config::Config;
use cairn_core::UserId;
use cairn_core::sandbox::{ExecHandler, Execution, NewSandbox, Output, SandboxError, SandboxState, Sandboxes};
use cairn_sandbox::{LocalConfig, LocalSandboxes, RemoteSandboxes};
use cairn_testkit::TempDir;
use futures::StreamExt;
use serde_json::{Value, json};

const TOKEN: &str = "sandbox-host-test-credential-0123456789";

struct Host {
    base: String,
    local: LocalSandboxes,
    _dir: TempDir,
}

async fn host() -> Host {
    host_with(&Config::default(), |_| {}).await
}

async fn host_with(config: &Config, configure: impl FnOnce(&mut LocalConfig)) -> Host {
    let dir = TempDir::new("sandbox-host");
    let mut local = LocalConfig::new(dir.path.join("sandboxes"));
    local.pool_size = 0;
    configure(&mut local);
    let local = LocalSandboxes::start(local).await.expect("bubblewrap and python3 are needed for the sandbox tests");
    let mut config = config.clone();
    config.sandbox.host_token = TOKEN.into();
    let app = cairn_gateway::sandbox_host_app(&config, Arc::new(local.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(cairn_gateway::serve(listener, app, std::future::pending()));
    Host { base, local, _dir: dir }
}

fn new(owner: UserId) -> NewSandbox {
    NewSandbox::for_owner(owner)
}

struct Calculator {
    outputs: Vec<Output>,
}

#[async_trait]
impl ExecHandler for Calculator {
    fn output(&mut self, output: &Output) {
        self.outputs.push(output.clone());
    }

    async fn tool_call(&mut self, name: &str, args: Value, _kwargs: Value) -> Result<Value, String> {
        match name {
            "square" => Ok(json!(args[0].as_i64().unwrap().pow(2))),
            other => Err(format!("no tool {other}")),
        }
    }
}

#[tokio::test]
async fn the_client_drives_a_remote_sandbox_like_a_local_one() {
    let host = host().await;
    let remote = RemoteSandboxes::new(&host.base, TOKEN).unwrap();
    let owner = UserId::new();
    let info = remote.create(new(owner)).await.unwrap();
    assert_eq!((info.owner, info.state), (owner, SandboxState::Running));

    let mut calculator = Calculator { outputs: Vec::new() };
    let code = "print('working')\nx = call_tool('square', 12)\nx + 1";
    let outcome = remote.execute(info.id, Execution::Python { code: code.into() }, &mut calculator).await.unwrap();
    assert_eq!(outcome.result_text(), Some("145"), "the tool ran on the caller's side: {outcome:?}");
    assert_eq!(calculator.outputs.len(), outcome.outputs.len(), "outputs streamed to the handler");
    assert_eq!(outcome.stream("stdout"), "working\n");
    let refused = remote.execute(info.id, Execution::Python { code: "call_tool('cube', 2)".into() }, &mut calculator);
    assert_eq!(refused.await.unwrap().error(), Some(("RuntimeError", "tool cube failed: no tool cube")));
    let shell = remote
        .execute(info.id, Execution::Shell { command: "echo out; exit 4".into() }, &mut |_: &Output| {})
        .await
        .unwrap();
    assert_eq!((shell.exit_code, shell.stream("stdout").as_str()), (Some(4), "out\n"));

    // Files both ways, streamed, and errors by their codes.
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let chunks = big.chunks(64 << 10).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect::<Vec<_>>();
    let entry = remote.upload(info.id, "data/big.bin", Box::pin(futures::stream::iter(chunks))).await.unwrap();
    assert_eq!((entry.path.as_str(), entry.size), ("data/big.bin", big.len() as u64));
    let mut downloaded = Vec::new();
    let mut stream = remote.download(info.id, "/workspace/data/big.bin").await.unwrap();
    while let Some(chunk) = stream.next().await {
        downloaded.extend_from_slice(&chunk.unwrap());
    }
    assert!(downloaded == big, "the bytes came back unchanged");
    let listed = remote.list_files(info.id, "", true).await.unwrap();
    assert_eq!(listed.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["data", "data/big.bin"]);
    assert!(matches!(remote.read_file(info.id, "nope.txt", 10).await, Err(SandboxError::NoSuchPath(_))));
    assert!(matches!(remote.write_file(info.id, "../x", vec![1]).await, Err(SandboxError::InvalidPath(_))));
    remote.delete_path(info.id, "data").await.unwrap();

    let mut greedy = new(owner);
    greedy.policy.memory_bytes = Some(1 << 40);
    assert!(matches!(remote.create(greedy).await, Err(SandboxError::InvalidPolicy(_))));
    // Package grants travel too: this host has no index, so one is refused
    // by its code; taking none away is accepted.
    let project = cairn_core::ProjectId::new();
    let grant = cairn_core::sandbox::PackagesChange { project, packages: Some(Default::default()) };
    let refused = remote.set_packages(info.id, grant).await.unwrap_err();
    assert!(matches!(&refused, SandboxError::InvalidPolicy(why) if why.contains("install packages")), "{refused:?}");
    let none = cairn_core::sandbox::PackagesChange { project, packages: None };
    remote.set_packages(info.id, none).await.unwrap();

    assert_eq!(remote.pause(info.id).await.unwrap().state, SandboxState::Paused);
    assert_eq!(remote.resume(info.id).await.unwrap().state, SandboxState::Running);
    // Pausing only if idle: a sleeping execution is left to finish.
    let sleeping = {
        let remote = remote.clone();
        tokio::spawn(async move {
            remote
                .execute(info.id, Execution::Python { code: "import time\ntime.sleep(1)".into() }, &mut |_: &Output| {})
                .await
        })
    };
    while !remote.inspect(info.id).await.unwrap().busy {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(remote.pause_if_idle(info.id).await.unwrap(), None, "busy: left running");
    sleeping.await.unwrap().unwrap();
    assert_eq!(remote.pause_if_idle(info.id).await.unwrap().unwrap().state, SandboxState::Paused);
    assert_eq!(remote.resume(info.id).await.unwrap().state, SandboxState::Running);
    assert_eq!(remote.list(Some(owner)).await.unwrap().len(), 1);
    assert_eq!(remote.inspect(info.id).await.unwrap().executions, 4);
    remote.destroy(info.id).await.unwrap();
    assert_eq!(remote.inspect(info.id).await.unwrap_err(), SandboxError::NotFound);
    assert_eq!(remote.destroy(info.id).await.unwrap_err(), SandboxError::NotFound);
}

#[tokio::test]
async fn the_service_credential_guards_every_sandbox_route() {
    let host = host().await;
    let client = reqwest::Client::new();
    let url = format!("{}/sandbox/v1/sandboxes", host.base);
    for token in [None, Some("wrong"), Some("sandbox-host-test-credential-0123456788")] {
        let mut request = client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{token:?}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_token");
    }
    let wrong = RemoteSandboxes::new(&host.base, "not-the-credential").unwrap();
    assert!(matches!(wrong.list(None).await, Err(SandboxError::Unavailable(m)) if m.contains("credential")));
    assert_eq!(client.get(format!("{}/healthz", host.base)).send().await.unwrap().status(), 200);
    let ready: Value = client.get(format!("{}/readyz", host.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");

    // Bad input gets problems with stable codes.
    let malformed = client.post(&url).bearer_auth(TOKEN).header("content-type", "application/json").body("{");
    let malformed = malformed.send().await.unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(malformed.json::<Value>().await.unwrap()["code"], "malformed_json");
    let unknown = json!({ "owner": UserId::new(), "policy": { "network": false, "root": true } });
    let unknown = client.post(&url).bearer_auth(TOKEN).json(&unknown).send().await.unwrap();
    assert_eq!(unknown.status(), 400, "unknown policy fields are refused, not ignored");
    let missing = client.get(format!("{url}/{}", UserId::new())).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], "sandbox_not_found");
    let answer = json!({ "call": "nobody-waits", "ok": true, "value": 1 });
    let stray = client.post(format!("{url}/{}/tool-results", UserId::new())).bearer_auth(TOKEN).json(&answer);
    assert_eq!(stray.send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_caller_that_goes_away_interrupts_its_execution() {
    let host = host().await;
    let remote = RemoteSandboxes::new(&host.base, TOKEN).unwrap();
    let id = remote.create(new(UserId::new())).await.unwrap().id;
    let client = reqwest::Client::new();
    let code = "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)";
    let response = client
        .post(format!("{}/sandbox/v1/sandboxes/{id}/executions", host.base))
        .bearer_auth(TOKEN)
        .json(&json!({ "kind": "python", "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let event: Value = serde_json::from_slice(first.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(event["event"], "output");
    assert!(host.local.inspect(id).await.unwrap().busy);
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while host.local.inspect(id).await.unwrap().busy {
        assert!(tokio::time::Instant::now() < deadline, "the abandoned execution was interrupted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = remote.execute(id, Execution::Python { code: "i".into() }, &mut |_: &Output| {}).await.unwrap();
    let reached: u32 = after.result_text().unwrap().parse().unwrap();
    assert!(reached < 100, "the loop stopped early (at {reached}), not after a minute");
}

/// One sample of a Prometheus text exposition, 0 when it is not there yet.
fn sample(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

/// The host's metrics: its sandboxes by state against its capacity, and its
/// workspace snapshots (taken after each execution that changed files) by
/// outcome, with their duration and the bytes stored. Behind the service
/// credential; without it on the admin listener, which serves nothing else.
#[tokio::test]
async fn the_host_reports_its_sandboxes_and_snapshots_at_metrics() {
    let objects_dir = TempDir::new("snapshots");
    let mut config = Config::default();
    config.sandbox.max_running = 7;
    let objects = cairn_files::Objects::from_config(&config.files, &objects_dir.path).unwrap();
    let snapshots = cairn_sandbox::Snapshots::new(objects.store().clone(), "sandbox-snapshots");
    let host = host_with(&config, |local| {
        local.max_running = 7;
        local.snapshots = Some(snapshots);
    })
    .await;
    let client = reqwest::Client::new();
    let scrape = || async {
        let response = client.get(format!("{}/metrics", host.base)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        response.text().await.unwrap()
    };
    let refused = client.get(format!("{}/metrics", host.base)).send().await.unwrap();
    assert_eq!(refused.status(), 401, "the metrics need the service credential");
    let (ok, failed) =
        (r#"cairn_sandbox_snapshots_total{outcome="ok"}"#, r#"cairn_sandbox_snapshots_total{outcome="error"}"#);
    let (took, stored) = ("cairn_sandbox_snapshot_seconds_count", "cairn_sandbox_snapshot_bytes_total");
    let before = scrape().await;

    let remote = RemoteSandboxes::new(&host.base, TOKEN).unwrap();
    let id = remote.create(new(UserId::new())).await.unwrap().id;
    let write = |name: &str| Execution::Python { code: format!("open('{name}', 'w').write('x' * 5000)") };
    remote.execute(id, write("a.txt"), &mut |_: &Output| {}).await.unwrap();
    let after = scrape().await;
    assert_eq!(sample(&after, r#"cairn_sandboxes{state="running"}"#), 1.0, "{after}");
    assert_eq!(sample(&after, r#"cairn_sandboxes{state="paused"}"#), 0.0, "{after}");
    assert_eq!(sample(&after, "cairn_sandboxes_busy"), 0.0, "{after}");
    assert_eq!(sample(&after, "cairn_sandbox_capacity"), 7.0, "{after}");
    let delta = |name: &str, from: &str, to: &str| sample(to, name) - sample(from, name);
    assert_eq!((delta(ok, &before, &after), delta(failed, &before, &after)), (1.0, 0.0), "{after}");
    assert_eq!(delta(took, &before, &after), 1.0, "{after}");
    let zip = objects_dir.path.join(format!("objects/sandbox-snapshots/{id}.zip"));
    let size = std::fs::metadata(&zip).unwrap().len() as f64;
    assert_eq!(delta(stored, &before, &after), size, "the bytes stored are the snapshot's");

    // An execution in progress makes its sandbox busy.
    let long = host.local.clone();
    let running = tokio::spawn(async move {
        let sleep = Execution::Python { code: "import time\ntime.sleep(3)".into() };
        long.execute(id, sleep, &mut |_: &Output| {}).await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !host.local.inspect(id).await.unwrap().busy {
        assert!(tokio::time::Instant::now() < deadline && !running.is_finished(), "the execution started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sample(&scrape().await, "cairn_sandboxes_busy"), 1.0);
    running.await.unwrap().unwrap();
    assert_eq!(sample(&scrape().await, "cairn_sandboxes_busy"), 0.0);

    // The object store refuses the next snapshot: a file where its folder was.
    let folder = zip.parent().unwrap();
    std::fs::remove_dir_all(folder).unwrap();
    std::fs::write(folder, b"in the way").unwrap();
    let before = scrape().await;
    remote.execute(id, write("b.txt"), &mut |_: &Output| {}).await.unwrap();
    let after = scrape().await;
    assert_eq!((delta(ok, &before, &after), delta(failed, &before, &after)), (0.0, 1.0), "{after}");
    assert_eq!(delta(stored, &before, &after), 0.0);

    remote.pause(id).await.unwrap();
    let paused = scrape().await;
    assert_eq!(sample(&paused, r#"cairn_sandboxes{state="running"}"#), 0.0, "{paused}");
    assert_eq!(sample(&paused, r#"cairn_sandboxes{state="paused"}"#), 1.0, "{paused}");

    // The admin listener: metrics and probes without credentials, no API.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    let app = cairn_gateway::sandbox_host_admin_app(&config, Arc::new(host.local.clone()));
    tokio::spawn(cairn_gateway::serve(listener, app, std::future::pending()));
    for (path, status) in [("/metrics", 200), ("/healthz", 200), ("/readyz", 200), ("/sandbox/v1/sandboxes", 404)] {
        assert_eq!(client.get(format!("{admin}{path}")).send().await.unwrap().status(), status, "{path}");
    }
    let open = client.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&open, r#"cairn_sandboxes{state="paused"}"#), 1.0, "{open}");
}
