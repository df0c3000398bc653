//! The OpenAI-compatible API over HTTP: Cairn's agents as models, with the
//! agent on real parts (sandbox, store, queue) and the scripted LLM server.
//! The official `openai` Python SDK drives the same API in the test command
//! (`scripts/client_tests.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_testkit::Reply;
use serde_json::{Value, json};

type Api = support::KeyedAgent;

async fn start() -> Api {
    support::KeyedAgent::start("openai-api", &["m", "n"]).await
}

impl Api {
    async fn completion(&self, token: &str, body: Value, thread: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/v1/chat/completions", self.base)).bearer_auth(token).json(&body);
        if let Some(thread) = thread {
            request = request.header("x-cairn-thread-id", thread);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self.client.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or_default())
    }
}

fn answer_block(code: &str) -> Reply {
    Reply::Text(format!("Let me work it out.\n```python\n{code}\n```"))
}

/// The `data:` payloads of a server-sent event stream.
fn sse_data(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")))
        .map(str::to_owned)
        .collect()
}

/// An error answer: its status and OpenAI's error object.
async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/json", "errors under /v1 are plain JSON");
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    (status, error)
}

#[tokio::test]
async fn agents_are_models_and_a_conversation_is_a_thread() {
    let api = start().await;
    let (status, models) = api.get(&api.key, "/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "cairn",
            "cairn-plan",
            "cairn:scripted/m",
            "cairn:scripted/n",
            "agent:analyst",
            "agent:researcher",
            "agent:writer"
        ]
    );
    // A model id holds a `/`: clients percent-encode it in the path, as OpenAI's SDKs do.
    assert_eq!(api.get(&api.key, "/v1/models/cairn:scripted%2Fn").await.1["owned_by"], "cairn");

    // A new conversation: a new thread, the run's answer as the reply.
    api.llm.push(answer_block("print(6 * 7)\nfinal_answer('It is 42.')"));
    let body = json!({
        "model": "cairn:scripted/n",
        "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "What is 6 times 7?" },
        ],
        "temperature": 0.2,
    });
    let response = api.completion(&api.key, body, None).await;
    assert_eq!(response.status(), 200);
    let thread = response.headers()["x-cairn-thread-id"].to_str().unwrap().to_owned();
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "cairn:scripted/n");
    assert_eq!(completion["choices"][0]["message"], json!({ "role": "assistant", "content": "It is 42." }));
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert!(completion["usage"]["total_tokens"].as_u64().unwrap() > 0, "{completion}");
    assert_eq!(completion["cairn"]["thread_id"], thread.as_str());
    let run_id = completion["cairn"]["run_id"].as_str().unwrap();
    assert_eq!(completion["id"], format!("chatcmpl-{run_id}"));
    // The run used the model the id named.
    let (_, run) = api.get(&api.owner, &format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "succeeded");
    let (_, events) = api.get(&api.owner, &format!("/api/v1/threads/{thread}/events")).await;
    let usage = events.as_array().unwrap().iter().find(|e| e["kind"] == "usage").unwrap();
    assert_eq!(usage["payload"]["model"], "scripted/n");
    let (_, messages) = api.get(&api.owner, &format!("/api/v1/threads/{thread}/messages")).await;
    let said: Vec<&str> = messages.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(said, ["Instructions from the client:\nBe brief.\n\nWhat is 6 times 7?", "It is 42."]);
    let (_, audit) = api.get(&api.owner, "/api/v1/admin/audit").await;
    let started = audit.as_array().unwrap().iter().find(|e| e["action"] == "run.started").unwrap();
    assert_eq!((started["detail"]["run"].as_str(), started["detail"]["via"].as_str()), (Some(run_id), Some("openai")));

    // Going on in the thread: only the new message is posted; streamed,
    // with the steps as reasoning and the usage at the end.
    api.llm.push(answer_block("print(42 * 2)\nfinal_answer('84.')"));
    let body = json!({
        "model": "cairn",
        "messages": [
            { "role": "user", "content": "What is 6 times 7?" },
            { "role": "assistant", "content": "It is 42." },
            { "role": "user", "content": "And twice that?" },
        ],
        "stream": true,
        "stream_options": { "include_usage": true },
        "reasoning_effort": "low",
    });
    let response = api.completion(&api.key, body, Some(&thread)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert_eq!(response.headers()["x-cairn-thread-id"], thread.as_str());
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let delta = |field: &str| -> String {
        chunks.iter().filter_map(|c| c["choices"][0]["delta"][field].as_str()).collect::<Vec<_>>().concat()
    };
    let reasoning = delta("reasoning_content");
    assert!(reasoning.contains("print(42 * 2)"), "the model's step: {reasoning}");
    assert!(reasoning.contains("84\n"), "the code's output: {reasoning}");
    assert_eq!(delta("content"), "84.");
    let finish: Vec<&Value> = chunks.iter().filter(|c| c["choices"][0]["finish_reason"] == "stop").collect();
    assert_eq!(finish.len(), 1);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let (_, messages) = api.get(&api.owner, &format!("/api/v1/threads/{thread}/messages")).await;
    let said: Vec<&str> = messages.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(said[2..], ["And twice that?", "84."]);
}

#[tokio::test]
async fn a_sub_agent_is_a_model_too() {
    let api = start().await;
    api.llm.push(answer_block("final_answer('Drafted.')"));
    let body = json!({ "model": "agent:writer", "messages": [{ "role": "user", "content": "Draft a memo." }] });
    let response = api.completion(&api.key, body, None).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Drafted.");
    // The run was the writer throughout: its role leads the system prompt.
    let asked = api.llm.received().last().unwrap().body.clone();
    let system = asked["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(system.starts_with("You are a writer"), "{system}");
    assert!(system.contains("Of the tools, you may call only: read_file, write_file"), "{system}");
    let (status, error) = error_of(
        api.completion(
            &api.key,
            json!({ "model": "agent:nobody", "messages": [{ "role": "user", "content": "x" }] }),
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, error["code"].as_str()), (404, Some("model_not_found")));
    // The REST API takes the same choice by name.
    let thread = completion["cairn"]["thread_id"].as_str().unwrap();
    let url = format!("{}/api/v1/threads/{thread}/messages", api.base);
    let (status, problem) = support::send_json(
        &api.client,
        reqwest::Method::POST,
        &url,
        &api.owner,
        Some(json!({ "content": "x", "agent": "nobody" })),
    )
    .await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("unknown_agent")));
    api.llm.push(answer_block("final_answer('Analysed.')"));
    let body = json!({ "content": "Analyse.", "agent": "analyst", "wait": true });
    let (status, posted) = support::send_json(&api.client, reqwest::Method::POST, &url, &api.owner, Some(body)).await;
    assert_eq!((status, posted["answer"].as_str()), (200, Some("Analysed.")));
    let system = api.llm.received().last().unwrap().body["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(system.starts_with("You are a data analyst"), "{system}");
}

#[tokio::test]
async fn errors_come_in_openais_shape() {
    let api = start().await;
    let task = json!({ "model": "cairn", "messages": [{ "role": "user", "content": "Hi" }] });
    let url = format!("{}/v1/chat/completions", api.base);

    let response = api.client.post(&url).json(&task).send().await.unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["type"].as_str(), error["code"].as_str()),
        (401, Some("authentication_error"), Some("unauthenticated"))
    );
    let (status, error) = error_of(api.completion("cairn_k_not-a-key", task.clone(), None).await).await;
    assert_eq!((status, error["type"].as_str()), (401, Some("authentication_error")));
    // A person's token names no project; a viewer's key may not run the agent.
    let (status, error) = error_of(api.completion(&api.owner, task.clone(), None).await).await;
    assert_eq!((status, error["type"].as_str()), (403, Some("permission_error")));
    assert!(error["message"].as_str().unwrap().contains("API key"));
    let (status, _) = error_of(api.completion(&api.viewer_key, task.clone(), None).await).await;
    assert_eq!(status, 403);

    let response = api
        .client
        .post(&url)
        .bearer_auth(&api.key)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["type"].as_str(), error["code"].as_str()),
        (400, Some("invalid_request_error"), Some("malformed_json"))
    );
    let (status, error) =
        error_of(api.completion(&api.key, json!({ "model": "gpt-4o", "messages": task["messages"] }), None).await)
            .await;
    assert_eq!(
        (status, error["type"].as_str(), error["code"].as_str()),
        (404, Some("not_found_error"), Some("model_not_found"))
    );
    let (status, error) = error_of(
        api.completion(&api.key, json!({ "model": "cairn:scripted/none", "messages": task["messages"] }), None).await,
    )
    .await;
    assert_eq!((status, error["code"].as_str()), (404, Some("model_not_found")));
    let ended_with_the_agent = json!({ "model": "cairn", "messages": [{ "role": "assistant", "content": "Hi" }] });
    let (status, error) = error_of(api.completion(&api.key, ended_with_the_agent, None).await).await;
    assert_eq!((status, error["code"].as_str()), (422, Some("invalid_request")));
    let with_tools = json!({ "model": "cairn", "messages": task["messages"], "tools": [{ "type": "function" }] });
    let (status, error) = error_of(api.completion(&api.key, with_tools, None).await).await;
    assert_eq!(status, 422);
    assert!(error["message"].as_str().unwrap().contains("tools"));
    // A thread that is not the key's project's does not exist for it.
    let (status, _) =
        error_of(api.completion(&api.key, task.clone(), Some(&cairn_core::ThreadId::new().to_string())).await).await;
    assert_eq!(status, 404);
    let (status, error) = error_of(api.completion(&api.key, task.clone(), Some("thread-1")).await).await;
    assert_eq!((status, error["code"].as_str()), (422, Some("invalid_request")));
    let response = api.client.get(format!("{}/v1/embeddings", api.base)).bearer_auth(&api.key).send().await.unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("route_not_found")));

    // A run that fails is an error the SDKs do not retry (a retry would run again).
    api.llm.push(Reply::Status { status: 400, retry_after: None });
    let response = api.completion(&api.key, task.clone(), None).await;
    assert_eq!(response.headers()["x-should-retry"], "false");
    assert!(response.headers().contains_key("x-cairn-thread-id"));
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["type"].as_str(), error["code"].as_str()),
        (500, Some("server_error"), Some("run_failed"))
    );
    // Streamed, it is an error object in the stream, as OpenAI's streams say it.
    api.llm.push(Reply::Status { status: 400, retry_after: None });
    let streamed = json!({ "model": "cairn", "messages": task["messages"], "stream": true });
    let response = api.completion(&api.key, streamed, None).await;
    assert_eq!(response.status(), 200);
    let data = sse_data(&response.text().await.unwrap());
    let error: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "run_failed");
    assert!(!data.iter().any(|d| d == "[DONE]"));
}
