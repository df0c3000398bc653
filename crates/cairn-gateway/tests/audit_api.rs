//! The audit log through the API: what members, keys and the agent do is
//! recorded with actor, target and outcome — runs answered, tool calls
//! approved, denied or refused by policy, files deleted, moved and shared,
//! settings changed — filtered for administrators and a project's owners,
//! and exported as CSV or JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_testkit::Reply;
use reqwest::Method;
use serde_json::{Value, json};

type Api = support::Team;

async fn start() -> Api {
    support::Team::start("Audited", |config| config.agent.require_approval = vec!["remember".into()]).await
}

/// The audit entries an administrator reads with `query`.
async fn audit(api: &Api, query: &str) -> Vec<Value> {
    let (status, entries) = api.send(Method::GET, &api.owner, &format!("/admin/audit?{query}"), None).await;
    assert_eq!(status, 200, "{entries}");
    entries.as_array().unwrap().clone()
}

/// Waits until the run's status is `want`.
async fn run_status(api: &Api, run: &str, want: &str) {
    for _ in 0..300 {
        if api.send(Method::GET, &api.owner, &format!("/runs/{run}"), None).await.1["status"] == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("run {run} never became {want}");
}

fn block(code: &str) -> Reply {
    Reply::Text(format!("```python\n{code}\n```"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_audited_filtered_and_exported() {
    let api = start().await;
    let project = api.project.clone();
    let me = api.send(Method::GET, &api.owner, "/me", None).await.1["id"].as_str().unwrap().to_owned();

    // The agent: a fetch of a private address (refused by policy), then a
    // call that needs approval; the owner approves it.
    let (_, thread) = api
        .send(Method::POST, &api.owner, &format!("/projects/{project}/threads"), Some(json!({ "title": "T" })))
        .await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    api.llm.push(block(
        "try:\n    web_fetch(url='http://127.0.0.1:9/')\nexcept Exception as e:\n    print(e)\nremember(text='Launch in May')",
    ));
    api.llm.push(block("remember(text='Launch in May')"));
    api.llm.push(block("final_answer('Kept.')"));
    let (status, posted) = api
        .send(Method::POST, &api.owner, &format!("/threads/{thread}/messages"), Some(json!({ "content": "Keep this" })))
        .await;
    assert_eq!(status, 202, "{posted}");
    let run = posted["run"]["id"].as_str().unwrap().to_owned();
    run_status(&api, &run, "waiting").await;
    let (status, _) =
        api.send(Method::POST, &api.owner, &format!("/runs/{run}/resume"), Some(json!({ "answer": "yes" }))).await;
    assert_eq!(status, 200);
    run_status(&api, &run, "succeeded").await;

    // The library: a file moved, shared and deleted; a setting changed.
    let url = format!("{}/api/v1/projects/{project}/files/content?path=a.txt", api.base);
    let put: Value = api.client.put(url).bearer_auth(&api.owner).body("x").send().await.unwrap().json().await.unwrap();
    let moved = json!({ "from": "a.txt", "to": "b.txt" });
    let moved = api.send(Method::POST, &api.owner, &format!("/projects/{project}/files/move"), Some(moved)).await;
    assert_eq!(moved.0, 200, "{}", moved.1);
    let file = put["id"].as_str().unwrap();
    let shared =
        api.send(Method::POST, &api.owner, &format!("/projects/{project}/files/{file}/links"), Some(json!({}))).await;
    assert_eq!(shared.0, 201);
    let deleted = api.send(Method::DELETE, &api.owner, &format!("/projects/{project}/files?path=b.txt"), None).await;
    assert_eq!(deleted.0, 204);
    let budget = json!({ "budget_usd": 5.0 });
    assert_eq!(api.send(Method::PATCH, &api.owner, &format!("/projects/{project}"), Some(budget)).await.0, 200);

    let tools = audit(&api, "action=tool.").await;
    let actions: Vec<&str> = tools.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["tool.approved", "tool.refused"], "{tools:?}");
    let refused = &tools[1];
    assert_eq!((refused["outcome"].as_str(), refused["actor"].as_str()), (Some("refused"), Some(me.as_str())));
    assert_eq!(refused["target"], json!(format!("run:{run}")));
    assert_eq!(
        (refused["detail"]["tool"].as_str(), refused["project_id"].as_str()),
        (Some("web_fetch"), Some(project.as_str()))
    );
    assert_eq!(tools[0]["detail"]["tool"], "remember");
    let answered = audit(&api, "action=run.answered").await;
    assert_eq!((answered.len(), answered[0]["detail"]["answer"].as_str()), (1, Some("yes")));
    let files = audit(&api, "action=file.").await;
    let actions: Vec<&str> = files.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["file.deleted", "file.shared", "file.moved"]);
    assert_eq!(files[1]["target"], json!(format!("file:{file}")));
    assert!(files.iter().all(|e| e["client_addr"] == "127.0.0.1"), "{files:?}");
    assert_eq!(audit(&api, "action=project.updated").await[0]["detail"]["budget_usd"], 5.0);
    assert!(audit(&api, "outcome=refused").await.iter().all(|e| e["outcome"] == "refused"));
    assert_eq!(audit(&api, &format!("actor={me}&action=tool.refused")).await.len(), 1);

    // A project's owners read its log; its viewers do not.
    let (status, _) = api.send(Method::GET, &api.viewer, &format!("/projects/{project}/audit"), None).await;
    assert_eq!(status, 403);
    let (status, own) = api.send(Method::GET, &api.owner, &format!("/projects/{project}/audit?limit=500"), None).await;
    assert_eq!(status, 200);
    let own = own.as_array().unwrap();
    assert!(own.len() >= 10 && own.iter().all(|e| e["project_id"] == json!(project)), "{own:?}");

    // Exports: administrators only; every entry, in either format.
    let export = |format: &str, token: &str| {
        let request =
            api.client.get(format!("{}/api/v1/admin/audit/export?format={format}", api.base)).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(export("csv", &api.viewer).await.status(), 403);
    let all = audit(&api, "limit=500").await;
    let json_export = export("json", &api.owner).await;
    assert_eq!(json_export.headers()["content-type"], "application/json");
    let exported: Vec<Value> = json_export.json().await.unwrap();
    assert_eq!(exported, all, "every entry (read before the export's own was written)");
    let csv = export("csv", &api.owner).await;
    assert!(csv.headers()["content-disposition"].to_str().unwrap().contains("cairn-audit.csv"));
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,created_at,actor,project_id,action,target,outcome,client_addr,detail"));
    assert!(text.contains(",tool.refused,"), "{text}");
    assert_eq!(audit(&api, "action=audit.exported").await.len(), 2, "exports are audited");
}
