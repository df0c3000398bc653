//! The providers against the scripted LLM server, which speaks OpenAI's and
//! Anthropic's wire formats: streaming, usage, retries with Retry-After,
//! errors that are not retried, dropped and stalled streams.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cairn_config::{LlmConfig, LlmModel, LlmProvider};
use cairn_llm::{ChatRequest, Delta, Embedder, LlmError, Message, Models, Usage};
use cairn_testkit::{Reply, ScriptedLlm};
use futures::StreamExt;

fn config(server: &ScriptedLlm, max_retries: u32, idle_timeout_secs: u64) -> LlmConfig {
    let model = |name: &str| LlmModel {
        name: name.into(),
        input_usd_per_mtok: 3.0,
        output_usd_per_mtok: 15.0,
        context_tokens: 128_000,
    };
    LlmConfig {
        providers: vec![
            LlmProvider {
                name: "local".into(),
                kind: "openai-compatible".into(),
                base_url: format!("{}/v1", server.url),
                api_key: "sk-test".into(),
                models: vec![model("small")],
            },
            LlmProvider {
                name: "claude".into(),
                kind: "anthropic".into(),
                base_url: server.url.clone(),
                api_key: "ant-test".into(),
                models: vec![model("sonnet")],
            },
        ],
        default_model: "claude/sonnet".into(),
        max_retries,
        first_token_timeout_secs: 10,
        idle_timeout_secs,
        embedding_model: "local/embedder".into(),
    }
}

fn request(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        system: Some("You are terse.".into()),
        messages: vec![Message::user("say hello to the team")],
        max_tokens: 100,
        temperature: Some(0.0),
        stop: vec!["</code>".into()],
    }
}

#[tokio::test]
async fn both_protocols_stream_deltas_with_usage() {
    let server =
        ScriptedLlm::start(vec![Reply::Text("Hello team, all good.".into()), Reply::Text("Hi there".into())]).await;
    let models = Models::from_config(&config(&server, 0, 10)).unwrap();
    let ids: Vec<String> = models.list().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["claude/sonnet", "local/small"]);

    let (openai, info) = models.get(Some("local/small")).unwrap();
    let mut stream = openai.stream(&request("small")).await.unwrap();
    let mut pieces = Vec::new();
    let mut done = None;
    while let Some(delta) = stream.next().await {
        match delta.unwrap() {
            Delta::Text(text) => pieces.push(text),
            Delta::Done { usage, stop_reason } => done = Some((usage, stop_reason)),
        }
    }
    assert_eq!(pieces, ["Hello", " team,", " all", " good."], "tokens arrive one by one");
    let (usage, stop) = done.unwrap();
    assert_eq!((usage, stop.as_str()), (Usage { input_tokens: 8, output_tokens: 4 }, "stop"));
    assert!((info.cost(usage) - (8.0 * 3.0 + 4.0 * 15.0) / 1e6).abs() < 1e-12);

    let (claude, _) = models.get(None).unwrap();
    let completion = claude.complete(&request("sonnet")).await.unwrap();
    assert_eq!((completion.text.as_str(), completion.stop_reason.as_str()), ("Hi there", "end_turn"));
    assert_eq!(completion.usage, Usage { input_tokens: 8, output_tokens: 2 });

    let received = server.received();
    let (first, second) = (&received[0], &received[1]);
    assert_eq!(first.protocol, "openai");
    assert_eq!(first.headers["authorization"], "Bearer sk-test");
    assert_eq!(first.body["messages"][0], serde_json::json!({ "role": "system", "content": "You are terse." }));
    assert_eq!(first.body["stop"], serde_json::json!(["</code>"]));
    assert_eq!(second.protocol, "anthropic");
    assert_eq!(
        (second.headers["x-api-key"].to_str().unwrap(), second.headers["anthropic-version"].to_str().unwrap()),
        ("ant-test", "2023-06-01")
    );
    assert_eq!(second.body["system"], "You are terse.");
    assert_eq!(second.body["stop_sequences"], serde_json::json!(["</code>"]));
    assert!(matches!(models.get(Some("nope/x")), Err(LlmError::UnknownModel(_))));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let server = ScriptedLlm::start(vec![
        Reply::Status { status: 429, retry_after: Some(1) },
        Reply::Status { status: 503, retry_after: None },
        Reply::Drop { partial: String::new() },
        Reply::Text("finally".into()),
    ])
    .await;
    let models = Models::from_config(&config(&server, 3, 10)).unwrap();
    let (model, _) = models.get(Some("local/small")).unwrap();
    let started = Instant::now();
    let completion = model.complete(&request("small")).await.unwrap();
    assert_eq!(completion.text, "finally");
    assert_eq!(server.received().len(), 4, "three failures, then success");
    assert!(started.elapsed() >= Duration::from_secs(1), "the provider's Retry-After was honoured");

    // Out of retries: the last error comes back.
    for _ in 0..3 {
        server.push(Reply::Status { status: 500, retry_after: None });
    }
    let failed = model.complete(&request("small")).await.unwrap_err();
    assert!(matches!(failed, LlmError::Server { status: 500, .. }), "{failed:?}");

    // Credentials and bad requests are not retried.
    let before = server.received().len();
    server.push(Reply::Status { status: 401, retry_after: None });
    assert!(matches!(model.complete(&request("small")).await, Err(LlmError::Auth(_))));
    server.push(Reply::Status { status: 400, retry_after: None });
    let (claude, _) = models.get(Some("claude/sonnet")).unwrap();
    assert!(matches!(claude.complete(&request("sonnet")).await, Err(LlmError::InvalidRequest(_))));
    assert_eq!(server.received().len(), before + 2, "one request each");
}

#[tokio::test]
async fn broken_and_stalled_streams_end_in_clear_errors() {
    let server = ScriptedLlm::start(Vec::new()).await;
    let models = Models::from_config(&config(&server, 0, 1)).unwrap();
    for id in ["local/small", "claude/sonnet"] {
        let (model, info) = models.get(Some(id)).unwrap();
        server.push(Reply::Drop { partial: "The answer is".into() });
        let mut stream = model.stream(&request(&info.model)).await.unwrap();
        let mut text = String::new();
        let mut error = None;
        while let Some(delta) = stream.next().await {
            match delta {
                Ok(Delta::Text(piece)) => text.push_str(&piece),
                Ok(Delta::Done { .. }) => panic!("a dropped stream cannot finish"),
                Err(e) => error = Some(e),
            }
        }
        assert_eq!(text, "The answer is", "{id}: what arrived before the drop");
        assert!(matches!(error, Some(LlmError::Connection(_))), "{id}: {error:?}");
    }
    server.push(Reply::Slow { text: "too slow".into(), delay: Duration::from_secs(3) });
    let (model, _) = models.get(Some("local/small")).unwrap();
    let stalled = model.complete(&request("small")).await.unwrap_err();
    assert!(matches!(stalled, LlmError::Timeout(_)), "{stalled:?}");
}

#[tokio::test]
async fn embeddings_come_back_in_order_across_batches() {
    let server = ScriptedLlm::start(Vec::new()).await;
    let embedder = Embedder::from_config(&config(&server, 1, 10)).unwrap().expect("configured");
    assert_eq!(embedder.id, "local/embedder");
    let texts: Vec<String> = (0..70).map(|n| format!("note number {n} about topic{}", n % 7)).collect();
    let vectors = embedder.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), 70, "two requests (64 + 6), one vector per text");
    for (text, vector) in texts.iter().zip(&vectors) {
        assert_eq!(vector, &cairn_testkit::scripted_embedding(text), "in the order sent: {text}");
    }
    assert_eq!(server.embedded(), texts);

    let mut off = config(&server, 1, 10);
    off.embedding_model = String::new();
    assert!(Embedder::from_config(&off).unwrap().is_none(), "no model, no memory");
    let mut gone = config(&server, 1, 10);
    gone.providers[0].base_url = "http://127.0.0.1:9/v1".into();
    let error = Embedder::from_config(&gone).unwrap().unwrap().embed(&["x".into()]).await.unwrap_err();
    assert!(matches!(error, LlmError::Connection(_)), "{error}");
}
