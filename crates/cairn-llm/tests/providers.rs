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
        input_usd_per_mtok: Some(3.0),
        output_usd_per_mtok: Some(15.0),
        context_tokens: 128_000,
        ..Default::default()
    };
    LlmConfig {
        providers: vec![
            LlmProvider {
                name: "local".into(),
                kind: "openai-compatible".into(),
                base_url: format!("{}/v1", server.url),
                api_key: "sk-test".into(),
                api_version: String::new(),
                models: vec![model("small")],
            },
            LlmProvider {
                name: "claude".into(),
                kind: "anthropic".into(),
                base_url: server.url.clone(),
                api_key: "ant-test".into(),
                api_version: String::new(),
                models: vec![model("sonnet")],
            },
        ],
        default_model: "claude/sonnet".into(),
        max_retries,
        first_token_timeout_secs: 10,
        idle_timeout_secs,
        embedding_model: "local/embedder".into(),
        discover: false,
        secret_keys: Vec::new(),
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
        ..ChatRequest::default()
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
            Delta::Reasoning(thinking) => panic!("no reasoning was scripted: {thinking}"),
            Delta::Done { usage, stop_reason } => done = Some((usage, stop_reason)),
        }
    }
    assert_eq!(pieces, ["Hello", " team,", " all", " good."], "tokens arrive one by one");
    let (usage, stop) = done.unwrap();
    assert_eq!((usage, stop.as_str()), (Usage { input_tokens: 8, output_tokens: 4, ..Usage::default() }, "stop"));
    assert!((info.cost(usage) - (8.0 * 3.0 + 4.0 * 15.0) / 1e6).abs() < 1e-12);

    let (claude, _) = models.get(None).unwrap();
    let completion = claude.complete(&request("sonnet")).await.unwrap();
    assert_eq!((completion.text.as_str(), completion.stop_reason.as_str()), ("Hi there", "end_turn"));
    assert_eq!(completion.usage, Usage { input_tokens: 8, output_tokens: 2, ..Usage::default() });

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
    // Cache breakpoints on the system prompt and the last message.
    assert_eq!(
        second.body["system"],
        serde_json::json!([{ "type": "text", "text": "You are terse.", "cache_control": { "type": "ephemeral" } }])
    );
    assert_eq!(second.body["messages"][0]["content"][0]["cache_control"]["type"], "ephemeral");
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
                Ok(Delta::Reasoning(_)) => {}
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

/// A provider of `kind` at `base_url` with these models.
fn provider(name: &str, kind: &str, base_url: String, api_key: &str, models: Vec<LlmModel>) -> LlmProvider {
    LlmProvider {
        name: name.into(),
        kind: kind.into(),
        base_url,
        api_key: api_key.into(),
        models,
        ..Default::default()
    }
}

fn named(name: &str) -> LlmModel {
    LlmModel { name: name.into(), ..Default::default() }
}

fn llm(providers: Vec<LlmProvider>) -> LlmConfig {
    LlmConfig { providers, max_retries: 2, first_token_timeout_secs: 10, idle_timeout_secs: 10, ..Default::default() }
}

#[tokio::test]
async fn openai_models_are_called_as_their_family_requires() {
    let server = ScriptedLlm::start(Vec::new()).await;
    server.set_default(Reply::Text("ok".into()));
    let tuned = LlmModel { reasoning_effort: "low".into(), ..named("gpt-5-mini") };
    let config = llm(vec![
        provider("openai", "openai", format!("{}/v1", server.url), "sk-o", vec![tuned, named("gpt-4o-mini")]),
        provider("local", "openai-compatible", format!("{}/v1", server.url), "", vec![named("qwen3")]),
    ]);
    let models = Models::from_config_with_env(&config, &|_| None).unwrap();
    for (id, model) in
        [("openai/gpt-5-mini", "gpt-5-mini"), ("openai/gpt-4o-mini", "gpt-4o-mini"), ("local/qwen3", "qwen3")]
    {
        let (client, info) = models.get(Some(id)).unwrap();
        let completion = client.complete(&request(model)).await.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(completion.text, "ok", "{id}");
        assert_eq!(info.input_usd_per_mtok, info.capabilities.input_usd_per_mtok);
    }
    let bodies: Vec<serde_json::Value> = server.received().into_iter().map(|r| r.body).collect();
    // A reasoning model: max_completion_tokens, no temperature, its effort.
    assert_eq!(bodies[0]["max_completion_tokens"], 100);
    assert!(bodies[0].get("max_tokens").is_none() && bodies[0].get("temperature").is_none(), "{}", bodies[0]);
    assert_eq!(bodies[0]["reasoning_effort"], "low");
    // OpenAI's chat models: max_completion_tokens, the temperature kept.
    assert_eq!(
        (bodies[1]["max_completion_tokens"].as_u64(), bodies[1]["temperature"].as_f64()),
        (Some(100), Some(0.0))
    );
    // A compatible server keeps max_tokens.
    assert_eq!((bodies[2]["max_tokens"].as_u64(), bodies[2].get("max_completion_tokens")), (Some(100), None));
    // Prices by family when the configuration names none.
    let (_, info) = models.get(Some("openai/gpt-4o-mini")).unwrap();
    assert_eq!((info.input_usd_per_mtok, info.output_usd_per_mtok, info.context_tokens), (0.15, 0.60, 128_000));
}

#[tokio::test]
async fn refusals_are_reported_in_the_providers_words_and_not_retried() {
    let server = ScriptedLlm::start(Vec::new()).await;
    server.set_default(Reply::Text("ok".into()));
    // Configured against the family: the provider refuses, as OpenAI does.
    let wrong = LlmModel { token_limit: "max_tokens".into(), ..named("gpt-5") };
    let config = llm(vec![provider(
        "openai",
        "openai",
        format!("{}/v1", server.url),
        "sk-o",
        vec![wrong, named("no-such-model")],
    )]);
    let models = Models::from_config_with_env(&config, &|_| None).unwrap();
    let (model, _) = models.get(Some("openai/gpt-5")).unwrap();
    let refused = model.complete(&request("gpt-5")).await.unwrap_err();
    assert!(matches!(refused, LlmError::InvalidRequest(_)), "{refused:?}");
    assert_eq!(
        refused.to_string(),
        "the model refused the request: Unsupported parameter: 'max_tokens' is not supported with this model. \
         Use 'max_completion_tokens' instead."
    );
    assert_eq!(server.received().len(), 1, "a refused request is not retried");

    let (missing, _) = models.get(Some("openai/no-such-model")).unwrap();
    let error = missing.complete(&request("no-such-model")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the provider has no model `no-such-model`: The model `no-such-model` does not exist or you do not have \
         access to it."
    );
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn azure_deployments_and_sdk_base_url_variables_are_honoured() {
    let server = ScriptedLlm::start(Vec::new()).await;
    server.set_default(Reply::Text("from azure".into()));
    let config = llm(vec![
        provider("azure", "azure-openai", server.url.clone(), "az-key", vec![named("prod-gpt-4o")]),
        provider("keyless", "azure-openai", format!("{}/openai/", server.url), "", vec![named("prod-gpt-4o")]),
        // No base URL: OPENAI_BASE_URL, as OpenAI's SDKs read it.
        provider("openai", "openai", String::new(), "sk-o", vec![named("gpt-4o")]),
    ]);
    let env_base = format!("{}/v1", server.url);
    let models =
        Models::from_config_with_env(&config, &|name| (name == "OPENAI_BASE_URL").then(|| env_base.clone())).unwrap();
    let (azure, info) = models.get(Some("azure/prod-gpt-4o")).unwrap();
    assert_eq!(info.capabilities.token_limit, cairn_llm::TokenLimit::MaxCompletionTokens);
    assert_eq!(azure.complete(&request("prod-gpt-4o")).await.unwrap().text, "from azure");
    let received = server.received();
    assert_eq!(received[0].protocol, "azure");
    assert_eq!(received[0].headers["api-key"], "az-key");
    assert!(received[0].headers.get("authorization").is_none(), "Azure's key is not a bearer token");

    let (keyless, _) = models.get(Some("keyless/prod-gpt-4o")).unwrap();
    let refused = keyless.complete(&request("prod-gpt-4o")).await.unwrap_err();
    assert!(refused.to_string().starts_with("the provider refused the key: Access denied"), "{refused}");

    let (openai, _) = models.get(Some("openai/gpt-4o")).unwrap();
    assert_eq!(openai.complete(&request("gpt-4o")).await.unwrap().text, "from azure");
    assert_eq!(server.received().last().unwrap().protocol, "openai");
    assert_eq!(cairn_llm::official_base_url("anthropic", &|_| None), "https://api.anthropic.com");
}

#[tokio::test]
async fn a_first_run_connects_the_models_the_environment_offers() {
    use cairn_llm::discover::from_environment;
    let server = ScriptedLlm::start(Vec::new()).await;
    let closed = "http://127.0.0.1:9/v1"; // the discard port: nothing answers
    let scripted_base = format!("{}/v1", server.url);

    let nothing = from_environment(&|_| None, closed).await;
    assert!(nothing.providers.is_empty() && nothing.default_model.is_none());

    // OPENAI_API_KEY with the official API: the current defaults and memory.
    let official = from_environment(&|n| (n == "OPENAI_API_KEY").then(|| "sk-o".to_owned()), closed).await;
    assert_eq!(official.default_model.as_deref(), Some("openai/gpt-5-mini"));
    assert_eq!(official.embedding_model.as_deref(), Some("openai/text-embedding-3-small"));
    assert_eq!(official.sources, ["OPENAI_API_KEY"]);

    // With OPENAI_BASE_URL elsewhere, the server says which models it has.
    let env = |name: &str| match name {
        "OPENAI_API_KEY" => Some("sk-o".to_owned()),
        "OPENAI_BASE_URL" => Some(scripted_base.clone()),
        "ANTHROPIC_API_KEY" => Some("sk-ant".to_owned()),
        _ => None,
    };
    let found = from_environment(&env, &scripted_base).await;
    let names: Vec<(&str, Vec<&str>)> =
        found.providers.iter().map(|p| (p.name.as_str(), p.models.iter().map(|m| m.name.as_str()).collect())).collect();
    assert_eq!(
        names,
        [
            ("openai", vec!["scripted-model", "scripted-embedder"]),
            ("anthropic", vec!["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]),
            // The local server's own list (standing in for Ollama).
            ("ollama", vec!["scripted-model", "scripted-embedder"]),
        ]
    );
    assert_eq!(found.default_model.as_deref(), Some("openai/scripted-model"), "the first found answers by default");
    assert_eq!(found.embedding_model, None, "a server of unknown embeddings is not assumed to have OpenAI's");
    // And they work.
    let config = LlmConfig { providers: found.providers, discover: false, ..LlmConfig::default() };
    let models = Models::from_config_with_env(&config, &|_| None).unwrap();
    server.set_default(Reply::Text("hello".into()));
    let (model, _) = models.get(Some("openai/scripted-model")).unwrap();
    assert_eq!(model.complete(&request("scripted-model")).await.unwrap().text, "hello");
}

#[tokio::test]
async fn prompt_caches_are_asked_for_and_priced_at_their_own_rates() {
    let server = ScriptedLlm::start(Vec::new()).await;
    server.set_default(Reply::Text("noted".into()));
    let config = llm(vec![
        provider("anthropic", "anthropic", server.url.clone(), "sk-a", vec![named("claude-sonnet-4-5")]),
        provider("openai", "openai", format!("{}/v1", server.url), "sk-o", vec![named("gpt-4.1")]),
    ]);
    let models = Models::from_config_with_env(&config, &|_| None).unwrap();
    // A long, stable system prompt and a conversation that grows each step.
    let system = "Work carefully and explain nothing. ".repeat(300);
    let mut conversation = vec![Message::user("step one of the task")];
    let mut usages = Vec::new();
    for step in 0..3 {
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            system: Some(system.clone()),
            messages: conversation.clone(),
            max_tokens: 100,
            ..ChatRequest::default()
        };
        let (claude, info) = models.get(Some("anthropic/claude-sonnet-4-5")).unwrap();
        let completion = claude.complete(&request).await.unwrap();
        usages.push((completion.usage, info.cost(completion.usage), info.saved_by_cache(completion.usage)));
        conversation.push(Message::assistant(completion.text));
        conversation.push(Message::user(format!("now step {}", step + 2)));
    }
    let (first, _, first_saved) = usages[0];
    assert_eq!(first.cache_read_tokens, 0);
    assert!(first.cache_write_tokens >= 1024, "the first call writes the prefix: {first:?}");
    assert!(first_saved < 0.0, "writing costs a quarter more than plain input");
    for (usage, cost, saved) in &usages[1..] {
        assert!(usage.cache_read_tokens >= first.cache_write_tokens, "later calls read it back: {usage:?}");
        assert!(usage.input_tokens < 10, "only the breakpoint's own tail is uncached: {usage:?}");
        let plain = (usage.prompt_tokens() as f64 * 3.0 + usage.output_tokens as f64 * 15.0) / 1e6;
        assert!((plain - cost - saved).abs() < 1e-12 && *saved > 0.0, "{usage:?} cost {cost}, saved {saved}");
    }

    // OpenAI caches by itself; its cached_tokens are read at the cached price.
    let (openai, info) = models.get(Some("openai/gpt-4.1")).unwrap();
    let request = |messages: Vec<Message>| ChatRequest {
        model: "gpt-4.1".into(),
        system: Some(system.clone()),
        messages,
        max_tokens: 100,
        ..ChatRequest::default()
    };
    let cold = openai.complete(&request(vec![Message::user("first")])).await.unwrap().usage;
    assert_eq!(cold.cache_read_tokens, 0);
    let warm = openai.complete(&request(vec![Message::user("first"), Message::user("second")])).await.unwrap().usage;
    assert!(warm.cache_read_tokens >= 1024 && warm.cache_read_tokens % 128 == 0, "{warm:?}");
    assert_eq!(warm.prompt_tokens(), cold.prompt_tokens() + 1);
    assert!(info.saved_by_cache(warm) > 0.0);
}

#[tokio::test]
async fn reasoning_streams_apart_from_the_answer() {
    let server = ScriptedLlm::start(Vec::new()).await;
    server.set_default(Reply::Text("<think>The sum of 2 and 2 is 4.</think>It is 4.".into()));
    let thinker = LlmModel { thinking_tokens: Some(2048), ..named("claude-sonnet-4-5") };
    let config = llm(vec![
        provider("anthropic", "anthropic", server.url.clone(), "sk-a", vec![thinker, named("claude-3-5-haiku")]),
        provider("local", "openai-compatible", format!("{}/v1", server.url), "", vec![named("qwen3")]),
    ]);
    let models = Models::from_config_with_env(&config, &|_| None).unwrap();
    let collect = |id: &'static str, model: &'static str| {
        let models = &models;
        async move {
            let (client, _) = models.get(Some(id)).unwrap();
            let mut stream = client.stream(&request(model)).await.unwrap_or_else(|e| panic!("{id}: {e}"));
            let (mut answer, mut thought) = (String::new(), String::new());
            while let Some(delta) = stream.next().await {
                match delta.unwrap() {
                    Delta::Text(text) => answer.push_str(&text),
                    Delta::Reasoning(text) => thought.push_str(&text),
                    Delta::Done { .. } => {}
                }
            }
            (answer, thought)
        }
    };
    // Anthropic with extended thinking on: thinking blocks, apart.
    assert_eq!(
        collect("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5").await,
        ("It is 4.".to_owned(), "The sum of 2 and 2 is 4.".to_owned())
    );
    let body = server.received().last().unwrap().body.clone();
    assert_eq!(body["thinking"], serde_json::json!({ "type": "enabled", "budget_tokens": 2048 }));
    assert_eq!(body["max_tokens"], 2148, "the reply keeps its own room beside the thinking budget");
    assert!(body.get("temperature").is_none(), "Anthropic refuses a temperature with thinking on");
    // A model that does not think (thinking off): no thinking is asked for.
    let (answer, thought) = collect("anthropic/claude-3-5-haiku", "claude-3-5-haiku").await;
    assert_eq!((answer.as_str(), thought.as_str()), ("It is 4.", ""));
    assert!(server.received().last().unwrap().body.get("thinking").is_none());
    // A compatible server's reasoning_content.
    assert_eq!(collect("local/qwen3", "qwen3").await, ("It is 4.".to_owned(), "The sum of 2 and 2 is 4.".to_owned()));
}

#[tokio::test]
async fn images_reach_models_that_see_and_are_described_to_those_that_do_not() {
    use cairn_llm::Image;
    let server = ScriptedLlm::start(Vec::new()).await;
    server.set_default(Reply::Text("a rising line".into()));
    let config = llm(vec![
        provider("openai", "openai", format!("{}/v1", server.url), "sk-o", vec![named("gpt-4o")]),
        provider("anthropic", "anthropic", server.url.clone(), "sk-a", vec![named("claude-sonnet-4-5")]),
        provider("local", "openai-compatible", format!("{}/v1", server.url), "", vec![named("qwen3")]),
    ]);
    let models = Models::from_config_with_env(&config, &|_| None).unwrap();
    let png = Image { media_type: "image/png".into(), data: "iVBORw0KGgo=".into() };
    let ask = |model: &str| ChatRequest {
        model: model.into(),
        messages: vec![Message::user_with_images("What does the chart show?", vec![png.clone()])],
        max_tokens: 50,
        ..ChatRequest::default()
    };
    for (id, model) in
        [("openai/gpt-4o", "gpt-4o"), ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"), ("local/qwen3", "qwen3")]
    {
        let (client, _) = models.get(Some(id)).unwrap();
        assert_eq!(client.complete(&ask(model)).await.unwrap_or_else(|e| panic!("{id}: {e}")).text, "a rising line");
    }
    let bodies: Vec<serde_json::Value> = server.received().into_iter().map(|r| r.body).collect();
    // OpenAI: a data URL part after the text (the server checks the shape).
    assert_eq!(bodies[0]["messages"][0]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
    // Anthropic: a base64 image block before the text.
    let block = &bodies[1]["messages"][0]["content"][0];
    assert_eq!((block["type"].as_str(), block["source"]["media_type"].as_str()), (Some("image"), Some("image/png")));
    // A model that cannot see: words, no image.
    let told = bodies[2]["messages"][0]["content"].as_str().unwrap();
    assert!(told.contains("1 image here (image/png) that this model cannot see"), "{told}");
}

#[tokio::test]
async fn openai_reasoning_models_answer_through_responses_with_their_summary_apart() {
    let server = ScriptedLlm::start(Vec::new()).await;
    server.set_default(Reply::Text("<think>Two and two make four.</think>It is 4.".into()));
    let effortful = LlmModel { reasoning_effort: "high".into(), ..named("o4-mini") };
    let on_chat = LlmModel { api: "chat_completions".into(), ..named("gpt-5") };
    let config = llm(vec![provider(
        "openai",
        "openai",
        format!("{}/v1", server.url),
        "sk-o",
        vec![effortful, on_chat, named("gpt-4.1"), named("no-such-o3")],
    )]);
    let models = Models::from_config_with_env(&config, &|_| None).unwrap();
    let ask = |model: &str| ChatRequest {
        model: model.into(),
        system: Some("You are terse.".into()),
        messages: vec![Message::user("what is 2 + 2?")],
        max_tokens: 200,
        temperature: Some(0.0),
        ..ChatRequest::default()
    };
    let collect = |id: &'static str, model: &'static str| {
        let (models, ask) = (&models, &ask);
        async move {
            let (client, _) = models.get(Some(id)).unwrap();
            let mut stream = client.stream(&ask(model)).await?;
            let (mut answer, mut thought, mut used) = (String::new(), String::new(), Usage::default());
            while let Some(delta) = stream.next().await {
                match delta? {
                    Delta::Text(text) => answer.push_str(&text),
                    Delta::Reasoning(text) => thought.push_str(&text),
                    Delta::Done { usage, .. } => used = usage,
                }
            }
            Ok::<_, LlmError>((answer, thought, used))
        }
    };
    // A reasoning model on OpenAI's API: Responses, its summary apart.
    let (answer, thought, usage) = collect("openai/o4-mini", "o4-mini").await.unwrap();
    assert_eq!((answer.as_str(), thought.as_str()), ("It is 4.", "Two and two make four."));
    assert_eq!((usage.input_tokens, usage.output_tokens), (8, 8), "reasoning is billed as output");
    let received = server.received();
    let sent = received.last().unwrap();
    assert_eq!(sent.protocol, "responses");
    assert_eq!(sent.body["reasoning"], serde_json::json!({ "summary": "auto", "effort": "high" }));
    assert_eq!((sent.body["store"].as_bool(), sent.body["max_output_tokens"].as_u64()), (Some(false), Some(200)));
    assert!(sent.body.get("temperature").is_none(), "the temperature a reasoning model refuses is left out");
    assert_eq!(sent.headers["authorization"], "Bearer sk-o");
    // Configured onto Chat Completions: there, the reasoning stays hidden.
    let (answer, thought, _) = collect("openai/gpt-5", "gpt-5").await.unwrap();
    assert_eq!((answer.as_str(), thought.as_str()), ("It is 4.", ""));
    assert_eq!(server.received().last().unwrap().protocol, "openai");
    // A chat model stays on Chat Completions.
    collect("openai/gpt-4.1", "gpt-4.1").await.unwrap();
    assert_eq!(server.received().last().unwrap().protocol, "openai");
    // Refusals through Responses read as elsewhere, and are not retried.
    let before = server.received().len();
    let error = collect("openai/no-such-o3", "no-such-o3").await.unwrap_err();
    assert!(matches!(error, LlmError::NoSuchModel { .. }), "{error:?}");
    assert_eq!(server.received().len(), before + 1);
}

#[tokio::test]
async fn the_scripted_responses_api_refuses_what_openai_refuses() {
    // The fidelity the test above relies on: what a wrong client would send.
    let server = ScriptedLlm::start(Vec::new()).await;
    server.set_default(Reply::Text("ok".into()));
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        let http = http.clone();
        let url = format!("{}/v1/responses", server.url);
        async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let input = serde_json::json!([{ "role": "user", "content": [{ "type": "input_text", "text": "hi" }] }]);
    let cases = [
        (serde_json::json!({ "model": "gpt-5", "messages": [] }), "messages"),
        (serde_json::json!({ "model": "gpt-5", "input": input, "max_tokens": 5 }), "max_tokens"),
        (serde_json::json!({ "model": "o3", "input": input, "temperature": 0.2 }), "temperature"),
        (
            serde_json::json!({ "model": "gpt-4.1", "input": input, "reasoning": { "effort": "low" } }),
            "reasoning.effort",
        ),
        (
            serde_json::json!({ "model": "gpt-5", "input": [{ "role": "user", "content": [{ "type": "text", "text": "hi" }] }] }),
            "input[0].content[0].type",
        ),
    ];
    for (body, param) in cases {
        let (status, error) = post(body).await;
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some(param)), "{error}");
    }
    let (status, reply) = post(serde_json::json!({ "model": "gpt-5", "input": input })).await;
    assert_eq!((status, reply["output"][0]["content"][0]["text"].as_str()), (200, Some("ok")));
}
