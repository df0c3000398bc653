//! `GET /api/v1/models`: what the deployment is configured with.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_config::{Config, LlmModel, LlmProvider};
use cairn_testkit::TempDir;
use serde_json::{Value, json};

#[tokio::test]
async fn the_configured_models_are_listed_with_prices_and_the_default() {
    let dir = TempDir::new("models-api");
    let mut config = Config::default();
    config.llm.providers = vec![LlmProvider {
        name: "ollama".into(),
        kind: "openai-compatible".into(),
        base_url: "http://127.0.0.1:11434/v1".into(),
        api_key: "secret-key".into(),
        api_version: String::new(),
        models: vec![LlmModel {
            name: "qwen3".into(),
            input_usd_per_mtok: Some(0.0),
            output_usd_per_mtok: Some(0.0),
            context_tokens: 128_000,
            ..Default::default()
        }],
    }];
    let base = support::serve(support::sqlite_state(&dir, config).await).await;
    let client = reqwest::Client::new();
    let ([owner, _, _], _) = support::owner_viewer_stranger(&client, &base, "Models").await;
    assert_eq!(client.get(format!("{base}/api/v1/models")).send().await.unwrap().status(), 401);
    let response = client.get(format!("{base}/api/v1/models")).bearer_auth(&owner).send().await.unwrap();
    let text = response.text().await.unwrap();
    assert!(!text.contains("secret-key"), "keys never leave the server");
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed["default"], "ollama/qwen3");
    assert_eq!(
        listed["models"],
        json!([{ "id": "ollama/qwen3", "provider": "ollama", "model": "qwen3", "kind": "openai-compatible",
                 "input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0, "context_tokens": 128_000,
                 "capabilities": { "api": "chat_completions", "token_limit": "max_tokens", "temperature": true, "images": false,
                                   "reasoning": false, "reasoning_effort": null, "thinking_tokens": 0, "context_tokens": 128_000,
                                   "input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0,
                                   "cache_read_usd_per_mtok": 0.0, "cache_write_usd_per_mtok": 0.0 } }])
    );
}
