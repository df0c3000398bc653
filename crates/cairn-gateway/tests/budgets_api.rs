//! Per-member budgets: a member whose monthly budget is spent is stopped
//! before the next model call and cannot start runs, in the project whose
//! owners set it or, set by an administrator, in every project; owners see
//! who spent what, month by month.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_config::LlmModel;
use cairn_testkit::Reply;
use reqwest::Method;
use serde_json::{Value, json};

type Api = support::Team;

async fn id_of(api: &Api, token: &str) -> String {
    api.send(Method::GET, token, "/me", None).await.1["id"].as_str().unwrap().to_owned()
}

/// Posts as the owner, on the model that costs a dollar a token.
async fn post(api: &Api, thread: &str, content: &str) -> (u16, Value) {
    let body = json!({ "content": content, "model": "scripted/dear", "wait": true });
    api.send(Method::POST, &api.owner, &format!("/threads/{thread}/messages"), Some(body)).await
}

fn block(code: &str) -> Reply {
    Reply::Text(format!("```python\n{code}\n```"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_member_budget_stops_their_runs_here_or_everywhere() {
    // A dollar per token: one call spends the budgets below.
    let dear = LlmModel {
        name: "dear".into(),
        input_usd_per_mtok: Some(1e6),
        output_usd_per_mtok: Some(1e6),
        context_tokens: 128_000,
        ..Default::default()
    };
    let api = support::Team::start("Budgeted", |config| config.llm.providers[0].models.push(dear)).await;
    let project = api.project.clone();
    let owner_id = id_of(&api, &api.owner).await;

    // Owners set a member's budget in their project; viewers cannot; bad amounts are refused.
    let budget = |usd: Value| Some(json!({ "monthly_usd": usd }));
    let path = format!("/projects/{project}/members/{owner_id}/budget");
    assert_eq!(api.send(Method::PUT, &api.viewer, &path, budget(json!(1))).await.0, 403);
    assert_eq!(api.send(Method::PUT, &api.owner, &path, budget(json!(-1))).await.0, 422);
    let stranger = "01900000-0000-7000-8000-000000000000";
    let not_member = format!("/projects/{project}/members/{stranger}/budget");
    assert_eq!(api.send(Method::PUT, &api.owner, &not_member, budget(json!(1))).await.0, 404);
    assert_eq!(api.send(Method::PUT, &api.owner, &path, budget(json!(0.5))).await.0, 204);

    let (_, thread) = api
        .send(Method::POST, &api.owner, &format!("/projects/{project}/threads"), Some(json!({ "title": "T" })))
        .await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    // The first model call costs dollars: the run stops before a second one.
    api.llm.push(block("x = 1"));
    api.llm.push(block("final_answer('never')"));
    let (status, posted) = post(&api, &thread, "Go").await;
    assert_eq!((status, posted["run"]["status"].as_str()), (200, Some("failed")), "{posted}");
    let error = posted["run"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("your monthly budget of $0.50 in this project is spent"), "{posted}");
    assert_eq!(api.llm.received().len(), 1, "no model call after the budget was spent");
    let (status, problem) = post(&api, &thread, "Again").await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("member_budget_spent")), "{problem}");

    // Owners see who spent what, this month and month by month.
    let (status, _) = api.send(Method::GET, &api.viewer, &format!("/projects/{project}/spending"), None).await;
    assert_eq!(status, 403);
    let (_, spending) =
        api.send(Method::GET, &api.owner, &format!("/projects/{project}/spending?months=3"), None).await;
    let mine = spending.as_array().unwrap().iter().find(|m| m["user_id"] == json!(owner_id)).unwrap().clone();
    assert_eq!(mine["monthly_usd"], 0.5);
    assert!(mine["this_month_usd"].as_f64().unwrap() >= 0.5, "{mine}");
    assert_eq!(mine["months"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(spending.as_array().unwrap().len(), 2, "every member is listed: {spending}");

    // Lifted here, an administrator's limit across projects stops them in any project.
    assert_eq!(api.send(Method::PUT, &api.owner, &path, budget(Value::Null)).await.0, 204);
    let across = format!("/admin/users/{owner_id}/budget");
    assert_eq!(api.send(Method::PUT, &api.viewer, &across, budget(json!(0.25))).await.0, 403);
    assert_eq!(api.send(Method::PUT, &api.owner, &across, budget(json!(0.25))).await.0, 204);
    let (_, other) = api.send(Method::POST, &api.owner, "/projects", Some(json!({ "name": "Elsewhere" }))).await;
    let (_, elsewhere) = api
        .send(
            Method::POST,
            &api.owner,
            &format!("/projects/{}/threads", other["id"].as_str().unwrap()),
            Some(json!({})),
        )
        .await;
    let (status, problem) = post(&api, elsewhere["id"].as_str().unwrap(), "Go").await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("member_budget_spent")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("across projects"), "{problem}");
    assert_eq!(api.send(Method::PUT, &api.owner, &across, budget(Value::Null)).await.0, 204);
    let (status, posted) = post(&api, &thread, "Now it goes").await;
    assert_eq!((status, posted["answer"].as_str()), (200, Some("never")), "{posted}");
    let (_, audit) = api.send(Method::GET, &api.owner, "/admin/audit?action=user.budget_changed", None).await;
    assert_eq!(audit.as_array().unwrap().len(), 2);
}
