//! The tool registry over HTTP: the listing, calls in the caller's scratch
//! sandbox, `save_artifact` into the library, access rules and errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_config::Config;
use cairn_testkit::TempDir;
use serde_json::{Value, json};

struct Api {
    base: String,
    client: reqwest::Client,
    owner: String,
    viewer: String,
    stranger: String,
    project: String,
    _dir: TempDir,
}

async fn start(with_tools: bool) -> Api {
    let dir = TempDir::new("tools-api");
    let mut state = support::sqlite_state(&dir, Config::default()).await;
    if with_tools {
        support::with_sandboxes(&mut state, &dir, false).await;
    }
    let base = support::serve(state).await;
    let client = reqwest::Client::new();
    let ([owner, viewer, stranger], project) = support::owner_viewer_stranger(&client, &base, "Tools").await;
    Api { base, client, owner, viewer, stranger, project, _dir: dir }
}

impl Api {
    async fn call(&self, token: &str, tool: &str, arguments: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/api/v1/projects/{}/tools/{tool}", self.base, self.project))
            .bearer_auth(token)
            .json(&json!({ "arguments": arguments }))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or_default())
    }
}

#[tokio::test]
async fn tools_are_listed_and_called_in_a_scratch_sandbox() {
    let api = start(true).await;
    let listed: Value = api
        .client
        .get(format!("{}/api/v1/tools", api.base))
        .bearer_auth(&api.owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"web_fetch") && names.contains(&"browser_open") && names.contains(&"save_artifact"));
    assert_eq!(api.client.get(format!("{}/api/v1/tools", api.base)).send().await.unwrap().status(), 401);

    let (status, written) =
        api.call(&api.owner, "write_file", json!({ "path": "out/report.md", "content": "# Q3\n" })).await;
    assert_eq!(status, 200, "{written}");
    assert_eq!(written["result"]["path"], "out/report.md");
    let (_, read) = api.call(&api.owner, "read_file", json!({ "path": "out/report.md" })).await;
    assert_eq!(read["result"], "# Q3\n", "the same scratch sandbox serves the next call");
    let (_, shell) = api.call(&api.owner, "shell", json!({ "command": "wc -c < out/report.md" })).await;
    assert_eq!(shell["result"]["stdout"], "5\n");

    let (status, saved) =
        api.call(&api.owner, "save_artifact", json!({ "path": "out/report.md", "name": "reports/q3.md" })).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        (saved["result"]["path"].clone(), saved["result"]["version"].clone()),
        (json!("reports/q3.md"), json!(1))
    );
    let library: Value = api
        .client
        .get(format!("{}/api/v1/projects/{}/files?folder=reports", api.base, api.project))
        .bearer_auth(&api.owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(library["files"][0]["path"], "reports/q3.md", "the artifact is in the library: {library}");

    // A library file comes into the workspace with load_file.
    let put = api
        .client
        .put(format!("{}/api/v1/projects/{}/files/content?path=data/sales.csv", api.base, api.project))
        .bearer_auth(&api.owner)
        .body("month,sales\n1,100\n")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let (status, loaded) =
        api.call(&api.owner, "load_file", json!({ "path": "data/sales.csv", "save_as": "in.csv" })).await;
    assert_eq!((status, loaded["result"]["path"].clone()), (200, json!("in.csv")), "{loaded}");
    let (_, read) = api.call(&api.owner, "read_file", json!({ "path": "in.csv" })).await;
    assert_eq!(read["result"], "month,sales\n1,100\n");
    let (status, missing) = api.call(&api.owner, "load_file", json!({ "path": "nope.csv" })).await;
    assert_eq!((status, missing["code"].clone()), (422, json!("tool_failed")));

    // Errors keep their kind.
    let (status, problem) = api.call(&api.owner, "read_file", json!({})).await;
    assert_eq!((status, problem["code"].clone()), (422, json!("invalid_arguments")));
    let (status, problem) =
        api.call(&api.owner, "edit_file", json!({ "path": "out/report.md", "old": "zzz", "new": "y" })).await;
    assert_eq!((status, problem["code"].clone()), (422, json!("tool_failed")));
    let (status, problem) = api.call(&api.owner, "web_fetch", json!({ "url": "http://169.254.169.254/" })).await;
    assert_eq!((status, problem["code"].clone()), (422, json!("destination_refused")));
    let (status, problem) = api.call(&api.owner, "web_search", json!({ "query": "x" })).await;
    assert_eq!((status, problem["code"].clone()), (503, json!("tool_unavailable")));
    let (status, _) = api.call(&api.owner, "teleport", json!({})).await;
    assert_eq!(status, 404);

    // Viewers may not run tools (they write); strangers do not see the project.
    assert_eq!(api.call(&api.viewer, "list_files", json!({})).await.0, 403);
    assert_eq!(api.call(&api.stranger, "list_files", json!({})).await.0, 404);
}

#[tokio::test]
async fn without_sandboxes_tools_are_listed_but_calls_say_why_they_cannot_run() {
    let api = start(false).await;
    let listed = api.client.get(format!("{}/api/v1/tools", api.base)).bearer_auth(&api.owner).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let (status, problem) = api.call(&api.owner, "list_files", json!({})).await;
    assert_eq!((status, problem["code"].clone()), (503, json!("tool_unavailable")));
    assert!(problem["detail"].as_str().unwrap().contains("sandboxes"));
}
