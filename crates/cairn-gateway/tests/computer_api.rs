//! The agent's computer through the API, on real parts (bubblewrap sandbox,
//! Chromium, SQLite, local files): a run's tool calls, what its code changed
//! in the workspace and what its browser saw arrive as typed events; the
//! workspace is listed, read and saved into the library; the screenshots
//! are served to members; a run is shared as a read-only link that opens
//! without signing in until it is revoked; threads are found by search.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::Team;

use cairn_testkit::Reply;

fn block(code: &str) -> Reply {
    Reply::Text(format!("```python\n{code}\n```"))
}

/// A public-looking page on 127.0.0.1, allowlisted for the tools.
async fn site() -> std::net::SocketAddr {
    let page = "<!doctype html><title>Granite quarry</title><h1>Blocks for sale</h1>";
    let router = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(page) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn of_kind<'a>(events: &'a Value, kind: &str) -> Vec<&'a Value> {
    events.as_array().unwrap().iter().filter(|e| e["kind"] == kind).map(|e| &e["payload"]).collect()
}

async fn stranger_token(team: &Team) -> String {
    let form = [("grant_type", "password"), ("username", "stranger@example.com"), ("password", support::PASSWORD)];
    let url = format!("{}/api/v1/auth/token", team.base);
    let token: Value = team.client.post(url).form(&form).send().await.unwrap().json().await.unwrap();
    token["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_tools_files_and_browser_are_told_served_and_shared() {
    let site = site().await;
    let team = Team::start("computer", |config| config.tools.allow_private = vec![site]).await;
    let stranger = stranger_token(&team).await;
    let project = team.project.clone();
    let (_, thread) =
        team.send(Method::POST, &team.owner, &format!("/projects/{project}/threads"), Some(json!({}))).await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    assert_eq!(team.send(Method::GET, &team.owner, &format!("/threads/{thread}/workspace"), None).await.0, 404);

    team.llm.push(block(&format!(
        "import os\nos.makedirs('notes', exist_ok=True)\nopen('notes/a.txt', 'w').write('granite')\n\
         open('old.txt', 'w').write('x')\npage = browser_open('http://{site}/')\nprint(page['title'])"
    )));
    team.llm.push(block(
        "import os\nos.remove('old.txt')\nopen('notes/a.txt', 'a').write(' blocks')\nfinal_answer('Done.')",
    ));
    let message = json!({ "content": "Visit the quarry's page", "wait": true });
    let (_, posted) = team.send(Method::POST, &team.owner, &format!("/threads/{thread}/messages"), Some(message)).await;
    assert_eq!(posted["answer"], "Done.", "{posted}");
    let run = posted["run"]["id"].as_str().unwrap().to_owned();
    let (_, events) = team.send(Method::GET, &team.owner, &format!("/threads/{thread}/events?after=0"), None).await;

    // The tool call, with its arguments and result, cut short.
    let tools = of_kind(&events, "tool");
    let open = tools.iter().find(|t| t["name"] == "browser_open").expect("the browser_open call is told");
    assert_eq!(open["ok"], true, "{open}");
    assert!(open["args"].as_str().unwrap().contains(&site.to_string()), "{open}");
    assert!(open["result"].as_str().unwrap().contains("Granite quarry"), "{open}");
    // What the browser saw, with a screenshot kept for the thread.
    let seen = of_kind(&events, "browser");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0]["action"].as_str(), seen[0]["title"].as_str()), (Some("browser_open"), Some("Granite quarry")));
    assert_eq!(seen[0]["url"], format!("http://{site}/"));
    let shot = seen[0]["screenshot"].as_str().expect("a screenshot").to_owned();
    assert!(shot.starts_with(&format!("{run}-")), "{shot}");
    let picture = |token: &str, path: String| {
        let mut request = team.client.get(format!("{}/api/v1{path}", team.base));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            (status, kind, response.bytes().await.unwrap())
        }
    };
    let (status, kind, bytes) = picture(&team.viewer, format!("/threads/{thread}/pictures/{shot}")).await;
    assert_eq!((status, kind.as_deref()), (200, Some("image/jpeg")));
    assert!(bytes.starts_with(&[0xFF, 0xD8]) && bytes.len() > 1000, "a real JPEG ({} bytes)", bytes.len());
    assert_eq!(picture(&stranger, format!("/threads/{thread}/pictures/{shot}")).await.0, 404, "not a member");
    assert_eq!(picture(&team.owner, format!("/threads/{thread}/pictures/..%2Fx")).await.0, 404);

    // What each step changed in the workspace.
    let changes: Vec<Vec<(String, String)>> = of_kind(&events, "workspace")
        .iter()
        .map(|w| {
            let list = w["changes"].as_array().unwrap();
            list.iter()
                .map(|c| (c["path"].as_str().unwrap().to_owned(), c["change"].as_str().unwrap().to_owned()))
                .collect()
        })
        .collect();
    let pair = |p: &str, c: &str| (p.to_owned(), c.to_owned());
    assert_eq!(
        changes,
        vec![
            vec![pair("notes/a.txt", "added"), pair("old.txt", "added")],
            vec![pair("notes/a.txt", "modified"), pair("old.txt", "removed")]
        ],
        "one event a step, by path"
    );

    // The workspace: listed, read, saved into the library (not by a viewer).
    let (status, listed) = team.send(Method::GET, &team.viewer, &format!("/threads/{thread}/workspace"), None).await;
    assert_eq!(status, 200, "{listed}");
    let paths: Vec<&str> = listed.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"notes/a.txt") && !paths.contains(&"old.txt"), "{paths:?}");
    let read = team
        .client
        .get(format!("{}/api/v1/threads/{thread}/workspace/content?path=notes/a.txt", team.base))
        .bearer_auth(&team.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(read.headers()["content-disposition"], "attachment; filename=\"a.txt\"");
    assert_eq!(read.headers()["x-content-type-options"], "nosniff");
    assert_eq!(read.text().await.unwrap(), "granite blocks");
    let content = |path: &str| format!("/threads/{thread}/workspace/content?path={path}");
    assert_eq!(team.send(Method::GET, &team.owner, &content("nothing.txt"), None).await.0, 404);
    assert_eq!(team.send(Method::GET, &team.owner, &content("../../etc/passwd"), None).await.0, 422);
    assert_eq!(team.send(Method::GET, &stranger, &content("notes/a.txt"), None).await.0, 404);
    let save = json!({ "path": "notes/a.txt", "to": "reports/quarry.txt" });
    let save_url = format!("/threads/{thread}/workspace/save");
    assert_eq!(team.send(Method::POST, &team.viewer, &save_url, Some(save.clone())).await.0, 403);
    let (status, saved) = team.send(Method::POST, &team.owner, &save_url, Some(save)).await;
    assert_eq!((status, saved["path"].as_str(), saved["size"].as_i64()), (201, Some("reports/quarry.txt"), Some(14)));

    // A read-only link to the run: made by an owner, opened by anyone.
    let shares = format!("/runs/{run}/shares");
    assert_eq!(team.send(Method::POST, &team.viewer, &shares, Some(json!({}))).await.0, 403);
    let too_long = json!({ "expires_in_hours": 24 * 91 });
    assert_eq!(team.send(Method::POST, &team.owner, &shares, Some(too_long)).await.0, 422);
    let (status, share) = team.send(Method::POST, &team.owner, &shares, Some(json!({ "expires_in_hours": 2 }))).await;
    assert_eq!(status, 201, "{share}");
    let token = share["token"].as_str().unwrap().to_owned();
    assert_eq!(share["path"], format!("/#/shared/{token}"));
    let anonymous = |path: String| {
        let request = team.client.get(format!("{}/api/v1{path}", team.base));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap_or_default())
        }
    };
    let (status, shared) = anonymous(format!("/shared/{token}")).await;
    assert_eq!(status, 200, "{shared}");
    assert_eq!(
        (shared["run"]["id"].as_str(), shared["run"]["status"].as_str()),
        (Some(run.as_str()), Some("succeeded"))
    );
    let messages: Vec<&str> =
        of_kind(&shared["events"], "message.created").iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(messages, ["Visit the quarry's page", "Done."], "the message that started it and the answer");
    assert!(!of_kind(&shared["events"], "code").is_empty() && !of_kind(&shared["events"], "browser").is_empty());
    let (_, me) = team.send(Method::GET, &team.owner, "/me", None).await;
    let owner_id = me["id"].as_str().unwrap();
    assert!(!shared.to_string().contains(owner_id), "a link names no member: {shared}");
    let (status, kind, _) = picture("", format!("/shared/{token}/pictures/{shot}")).await;
    assert_eq!((status, kind.as_deref()), (200, Some("image/jpeg")), "its screenshots open through the link");
    assert_eq!(anonymous(format!("/shared/{token}/pictures/{}-1-1.jpg", uuid_like())).await.0, 404, "no other run's");
    let (status, listed) = team.send(Method::GET, &team.owner, &shares, None).await;
    assert_eq!((status, listed[0]["open"].as_bool()), (200, Some(true)));
    assert!(listed[0].get("token").is_none(), "the token is shown once: {listed}");

    // Revoked: the link opens nothing more; an unknown token is told apart.
    let share_id = share["id"].as_str().unwrap();
    let (status, revoked) = team.send(Method::DELETE, &team.owner, &format!("{shares}/{share_id}"), None).await;
    assert_eq!((status, revoked["open"].as_bool()), (200, Some(false)));
    let (status, closed) = anonymous(format!("/shared/{token}")).await;
    assert_eq!((status, closed["code"].as_str()), (404, Some("share_closed")), "{closed}");
    assert_eq!(anonymous(format!("/shared/{token}/pictures/{shot}")).await.0, 404);
    let (status, unknown) = anonymous("/shared/not-a-token".into()).await;
    assert_eq!((status, unknown["code"].as_str()), (404, Some("share_not_found")));
    let (_, audit) = team.send(Method::GET, &team.owner, "/admin/audit?action=run.", None).await;
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"run.shared") && actions.contains(&"run.share_revoked"), "{actions:?}");

    // The administration's view of the sandboxes: this process's own, the thread's among them.
    let (status, hosts) = team.send(Method::GET, &team.owner, "/admin/sandboxes", None).await;
    assert_eq!(
        (status, hosts[0]["host"].as_str(), hosts[0]["live"].as_bool()),
        (200, Some("local"), Some(true)),
        "{hosts}"
    );
    let threads: Vec<&str> =
        hosts[0]["sandboxes"].as_array().unwrap().iter().filter_map(|s| s["thread"].as_str()).collect();
    assert!(threads.contains(&thread.as_str()), "{hosts}");
    assert_eq!(team.send(Method::GET, &team.viewer, "/admin/sandboxes", None).await.0, 403, "administrators only");

    // Search: by message text across the caller's projects, not others'.
    let (status, found) = team.send(Method::GET, &team.viewer, "/search?q=QUARRY", None).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found[0]["thread"]["id"], json!(thread));
    assert_eq!(found[0]["snippet"], "Visit the quarry's page");
    assert_eq!(team.send(Method::GET, &stranger, "/search?q=quarry", None).await.1, json!([]));
    assert_eq!(team.send(Method::GET, &team.owner, "/search?q=%20", None).await.0, 422);
}

/// A run id that is not the shared run's.
fn uuid_like() -> String {
    "0190a4c2-0000-7000-8000-000000000000".into()
}

/// Waits for the run to finish; its final state.
async fn finished(team: &Team, run: &str) -> Value {
    for _ in 0..600 {
        let (_, seen) = team.send(Method::GET, &team.owner, &format!("/runs/{run}"), None).await;
        if ["succeeded", "failed", "cancelled"].contains(&seen["status"].as_str().unwrap_or_default()) {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the run {run} did not finish");
}

async fn messages(team: &Team, thread: &str) -> Vec<String> {
    let (_, listed) = team.send(Method::GET, &team.owner, &format!("/threads/{thread}/messages"), None).await;
    listed.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_message_branches_and_a_failed_run_is_tried_again() {
    let team = Team::start("branches", |_| {}).await;
    let project = team.project.clone();
    let (_, thread) = team
        .send(Method::POST, &team.owner, &format!("/projects/{project}/threads"), Some(json!({ "title": "Q" })))
        .await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    team.llm.push(block("final_answer('one')"));
    let ask = json!({ "content": "First ask", "wait": true });
    let (_, posted) = team.send(Method::POST, &team.owner, &format!("/threads/{thread}/messages"), Some(ask)).await;
    let first = posted["run"]["id"].as_str().unwrap().to_owned();

    // Edited: a new thread with the edit in the message's place, shown as a branch.
    let fork = format!("/runs/{first}/fork");
    let bad = [json!({ "step": 0, "content": "  " }), json!({ "step": 2, "content": "x" })];
    for body in bad {
        assert_eq!(team.send(Method::POST, &team.owner, &fork, Some(body)).await.0, 422);
    }
    assert_eq!(team.send(Method::POST, &team.viewer, &fork, Some(json!({ "step": 0 }))).await.0, 403);
    team.llm.push(block("final_answer('two')"));
    let (status, branched) =
        team.send(Method::POST, &team.owner, &fork, Some(json!({ "step": 0, "content": "Edited ask" }))).await;
    assert_eq!(status, 201, "{branched}");
    let branch = branched["thread"]["id"].as_str().unwrap().to_owned();
    assert_eq!(branched["thread"]["title"], "Q (edited)");
    assert_eq!(finished(&team, branched["run"]["id"].as_str().unwrap()).await["status"], "succeeded");
    assert_eq!(messages(&team, &branch).await, ["Edited ask", "two"]);
    assert_eq!(messages(&team, &thread).await, ["First ask", "one"], "the original thread is untouched");
    let (_, events) = team.send(Method::GET, &team.owner, &format!("/threads/{branch}/events?after=0"), None).await;
    let queued = of_kind(&events, "run.status").into_iter().find(|s| s["status"] == "queued").unwrap().clone();
    assert_eq!(queued["forked_from"], json!({ "run": first, "step": 0 }));

    // Failed, then tried again in place: the same messages, a new run.
    team.llm.push(Reply::Status { status: 400, retry_after: None });
    let ask = json!({ "content": "Second ask", "wait": true });
    let (_, posted) = team.send(Method::POST, &team.owner, &format!("/threads/{thread}/messages"), Some(ask)).await;
    let failed = posted["run"]["id"].as_str().unwrap().to_owned();
    assert_eq!(finished(&team, &failed).await["status"], "failed");
    let retry = |run: &str| format!("/runs/{run}/retry");
    let (status, refused) = team.send(Method::POST, &team.owner, &retry(&first), Some(json!({}))).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("run_state")), "a succeeded run is not retried");
    assert_eq!(team.send(Method::POST, &team.viewer, &retry(&failed), Some(json!({}))).await.0, 403);
    team.llm.push(block("final_answer('three')"));
    let (status, again) = team.send(Method::POST, &team.owner, &retry(&failed), Some(json!({}))).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(finished(&team, again["id"].as_str().unwrap()).await["status"], "succeeded");
    assert_eq!(messages(&team, &thread).await, ["First ask", "one", "Second ask", "three"]);
    let (_, events) = team.send(Method::GET, &team.owner, &format!("/threads/{thread}/events?after=0"), None).await;
    let retried = of_kind(&events, "run.status").into_iter().filter(|s| s["retry_of"] == json!(failed)).count();
    assert_eq!(retried, 1);
}
