//! Traces across processes: a gateway, a worker and a sandbox host, each
//! exporting spans to a collector over OTLP/HTTP, make one trace per run —
//! from the member's request through the queue to the worker's model calls,
//! its code executions (and the sandbox host's side of them) and the tools
//! the code called, and on after the run waited for an approval.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_testkit::{CollectedSpan, OtlpCollector, Reply, ScriptedLlm, TempDir, TestPostgres};
use serde_json::json;

mod common;
use common::*;

const TOKEN: &str = "a-service-credential-of-enough-length-42";
/// The trace the member's client is in when it posts.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// OTLP span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

/// The spans of one trace, and questions about them.
struct Trace(Vec<CollectedSpan>);

impl Trace {
    /// Spans by service and name; a server's spans by `METHOD /route`.
    fn named(&self, service: &str, name: &str) -> Vec<&CollectedSpan> {
        let route = |s: &CollectedSpan| s.attributes.get("http.route").map(|r| format!("{} {r}", s.name));
        self.0
            .iter()
            .filter(|s| s.service == service && (s.name == name || route(s).as_deref() == Some(name)))
            .collect()
    }

    fn by_id(&self, id: &str) -> Option<&CollectedSpan> {
        self.0.iter().find(|s| s.span_id == id)
    }

    /// The names of a span's ancestors, nearest first.
    fn ancestors(&self, span: &CollectedSpan) -> Vec<String> {
        let (mut names, mut at) = (Vec::new(), span);
        while let Some(parent) = self.by_id(&at.parent_span_id) {
            names.push(parent.name.clone());
            at = parent;
        }
        names
    }

    /// What the trace still lacks, if anything.
    fn missing(&self) -> Option<String> {
        let needs = [
            ("cairn-gateway", "POST /api/v1/threads/{thread_id}/messages", 1),
            ("cairn-gateway", "queue run", 1),
            ("cairn-worker", "process run", 2),
            ("cairn-worker", "chat m", 2),
            ("cairn-worker", "execute code", 2),
            ("cairn-worker", "execute_tool save_artifact", 1),
            ("cairn-sandbox-host", "POST /sandbox/v1/sandboxes/{id}/executions", 2),
        ];
        needs.iter().find_map(|(service, name, count)| {
            let found = self.named(service, name).len();
            (found < *count).then(|| format!("{found} of {count} `{name}` spans from {service}"))
        })
    }
}

#[tokio::test]
async fn a_run_is_one_trace_across_gateway_queue_worker_model_sandbox_and_tools() {
    let pg = TestPostgres::create().await;
    let collector = OtlpCollector::start().await;
    let (gateway_dir, worker_dir, host_dir, objects) =
        (TempDir::new("trace"), TempDir::new("trace"), TempDir::new("trace"), TempDir::new("trace"));
    // The code needs an approval for its tool: the run waits, a member says
    // yes, and a worker takes the run up again.
    let code = "```python\nopen('out.txt', 'w').write('hi')\nsave_artifact('out.txt')\nfinal_answer('traced')\n```";
    let llm = ScriptedLlm::start(vec![Reply::Text(code.into()), Reply::Text(code.into())]).await;
    let mut envs = [
        shared_envs(&pg),
        vec![
            ("CAIRN__LLM__PROVIDERS", scripted_provider(&llm.url, "")),
            ("CAIRN__LOG__OTLP_ENDPOINT", collector.url.clone()),
            ("CAIRN__FILES__STORE_URL", format!("file://{}", objects.path.display())),
            ("CAIRN__SANDBOX__HOST_TOKEN", TOKEN.to_owned()),
            ("CAIRN__SANDBOX__POOL_SIZE", "0".to_owned()),
            ("CAIRN__SANDBOX__HEARTBEAT_SECS", "1".to_owned()),
            ("CAIRN__AGENT__REQUIRE_APPROVAL", "[\"save_artifact\"]".to_owned()),
            // Spans leave every 100 ms rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ],
    ]
    .concat();
    if let Ok(python) = std::env::var("CAIRN_SANDBOX_PYTHON") {
        envs.push(("CAIRN__SANDBOX__PYTHON", python));
    }
    let host_port = free_port();
    let host_envs = [
        envs.clone(),
        vec![
            ("CAIRN__SERVER__BIND", format!("127.0.0.1:{host_port}")),
            ("CAIRN__SANDBOX__ADVERTISE_URL", format!("http://127.0.0.1:{host_port}")),
        ],
    ]
    .concat();
    let mut host = Running::start(&host_dir.path, &["--role", "sandbox-host"], &host_envs);
    host.wait_ready().await;
    let clustered = [envs.clone(), vec![("CAIRN__SANDBOX__CLUSTER", "true".to_owned())]].concat();
    let mut gateway = Running::start(&gateway_dir.path, &["--role", "gateway"], &clustered);
    let mut worker = Running::start(&worker_dir.path, &["--role", "worker"], &clustered);
    gateway.wait_ready().await;
    worker.wait_ready().await;

    let ada = Ada::signs_up(&gateway).await;
    let (_, thread) = ada.project_with_thread().await;
    let posted: serde_json::Value = ada
        .client
        .post(format!("{}/api/v1/threads/{thread}/messages", ada.base))
        .bearer_auth(&ada.token)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&json!({ "content": "Write it down." }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = posted["run"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ada.get(&format!("/api/v1/runs/{run}")).await["status"] != "waiting" {
        assert!(Instant::now() < deadline, "the run did not wait for the approval");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answered = ada.post(&format!("/api/v1/runs/{run}/resume"), json!({ "answer": "yes" })).await;
    assert_eq!(answered["status"], "queued", "{answered}");
    let finished = ada.finished_run(&run, Duration::from_secs(60)).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");

    // Every span of the run's trace reaches the collector.
    let deadline = Instant::now() + Duration::from_secs(30);
    let trace = loop {
        let trace = Trace(collector.spans().into_iter().filter(|s| s.trace_id == CLIENT_TRACE).collect());
        match trace.missing() {
            None => break trace,
            Some(missing) => {
                let route = |s: &CollectedSpan| s.attributes.get("http.route").cloned().unwrap_or_default();
                let names: Vec<_> = collector
                    .spans()
                    .iter()
                    .map(|s| format!("{}:{} {} in {}", s.service, s.name, route(s), &s.trace_id[..8]))
                    .collect();
                assert!(Instant::now() < deadline, "the trace lacks {missing}; spans received: {names:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    // The member's request continues the client's trace; the run is queued
    // inside it.
    let request = trace.named("cairn-gateway", "POST /api/v1/threads/{thread_id}/messages")[0];
    assert_eq!((request.parent_span_id.as_str(), request.kind), (CLIENT_SPAN, SERVER));
    let queued = trace.named("cairn-gateway", "queue run")[0];
    assert_eq!((queued.parent_span_id.as_str(), queued.kind), (request.span_id.as_str(), PRODUCER));
    assert_eq!(queued.attributes["cairn.run.id"], run);
    // The worker took it up twice (before and after the approval), each time
    // from where it was queued, though the approval came in another request.
    let processed = trace.named("cairn-worker", "process run");
    assert_eq!(processed.len(), 2, "{processed:?}");
    for process in &processed {
        assert_eq!((process.parent_span_id.as_str(), process.kind), (queued.span_id.as_str(), CONSUMER));
        assert_eq!(process.attributes["cairn.run.id"], run);
    }
    // Every span of the trace hangs from one of it: nothing is cut off.
    for span in &trace.0 {
        if span.parent_span_id != CLIENT_SPAN {
            assert!(trace.by_id(&span.parent_span_id).is_some(), "{} has no parent in the trace", span.name);
        }
    }
    // Model calls, with what they used.
    for chat in trace.named("cairn-worker", "chat m") {
        assert_eq!(chat.kind, CLIENT);
        assert!(trace.ancestors(chat).contains(&"process run".to_owned()), "{chat:?}");
        assert_eq!(chat.attributes["gen_ai.request.model"], "m");
        assert!(chat.attributes["gen_ai.usage.output_tokens"].parse::<u64>().unwrap() > 0, "{chat:?}");
    }
    // Each execution reaches the sandbox host inside the worker's span of it.
    let executions: HashMap<&str, &CollectedSpan> =
        trace.named("cairn-worker", "execute code").into_iter().map(|s| (s.span_id.as_str(), s)).collect();
    for hosted in trace.named("cairn-sandbox-host", "POST /sandbox/v1/sandboxes/{id}/executions") {
        assert!(executions.contains_key(hosted.parent_span_id.as_str()), "{hosted:?}");
        assert_eq!(hosted.kind, SERVER);
    }
    // The tool the code called (once approved) runs inside its execution.
    let tool = trace.named("cairn-worker", "execute_tool save_artifact");
    let approved = tool.iter().find(|t| !t.error).expect("the approved call");
    assert!(executions.contains_key(approved.parent_span_id.as_str()), "{approved:?}");
    assert_eq!(approved.attributes["gen_ai.tool.name"], "save_artifact");
    // Probes are not traced.
    let probes = |s: &CollectedSpan| s.attributes.get("http.route").is_some_and(|r| r == "/readyz");
    assert!(!collector.spans().iter().any(probes), "probes stay out of the traces");

    worker.terminate();
    gateway.terminate();
    host.terminate();
}
