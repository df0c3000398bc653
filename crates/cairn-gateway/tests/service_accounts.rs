//! Service accounts over HTTP: accounts of a project rather than a person,
//! made and managed by its owners, whose keys act under their name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_config::Config;
use cairn_testkit::{ScriptedLlm, TempDir};
use reqwest::Method;
use serde_json::{Value, json};

struct Api {
    base: String,
    client: reqwest::Client,
    owner: String,
    viewer: String,
    stranger: String,
    project: String,
    _llm: ScriptedLlm,
    _dir: TempDir,
}

async fn start() -> Api {
    let dir = TempDir::new("service-accounts");
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(cairn_testkit::Reply::Text("```python\nfinal_answer('ok')\n```".into()));
    let mut config = Config::default();
    config.llm.providers = vec![support::scripted_provider(&llm.url, vec![support::free_model("m")])];
    config.llm.default_model = "scripted/m".into();
    let mut state = support::sqlite_state(&dir, config).await;
    support::with_sandboxes(&mut state, &dir, true).await;
    let base = support::serve(state).await;
    let client = reqwest::Client::new();
    let ([owner, viewer, stranger], project) = support::owner_viewer_stranger(&client, &base, "Integrations").await;
    Api { base, client, owner, viewer, stranger, project, _llm: llm, _dir: dir }
}

impl Api {
    async fn call(&self, method: Method, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        support::send_json(&self.client, method, &format!("{}{path}", self.base), token, body).await
    }

    fn accounts(&self) -> String {
        format!("/api/v1/projects/{}/service-accounts", self.project)
    }
}

#[tokio::test]
async fn owners_make_service_accounts_whose_keys_act_under_their_name() {
    let api = start().await;
    let (status, account) = api
        .call(Method::POST, &api.owner, &api.accounts(), Some(json!({ "name": "CI pipeline", "role": "editor" })))
        .await;
    assert_eq!(status, 201, "{account}");
    assert_eq!((account["name"].as_str(), account["role"].as_str()), (Some("CI pipeline"), Some("editor")));
    let id = account["id"].as_str().unwrap().to_owned();
    let keys = format!("{}/{id}/keys", api.accounts());
    let (status, key) = api.call(Method::POST, &api.owner, &keys, Some(json!({ "name": "deploys" }))).await;
    assert_eq!(status, 201, "{key}");
    let token = key["token"].as_str().unwrap().to_owned();
    assert_eq!(key["role"], "editor");

    // The key works in its project, as the account: a thread it starts and
    // a run it posts are the account's, and the audit log says so.
    let (status, thread) = api
        .call(
            Method::POST,
            &token,
            &format!("/api/v1/projects/{}/threads", api.project),
            Some(json!({ "title": "Nightly" })),
        )
        .await;
    assert_eq!(status, 201, "{thread}");
    assert_eq!(thread["created_by"], id.as_str());
    let messages = format!("/api/v1/threads/{}/messages", thread["id"].as_str().unwrap());
    let (status, posted) =
        api.call(Method::POST, &token, &messages, Some(json!({ "content": "Go.", "wait": true }))).await;
    assert_eq!((status, posted["answer"].as_str()), (200, Some("ok")), "{posted}");
    let (_, members) =
        api.call(Method::GET, &api.owner, &format!("/api/v1/projects/{}/members", api.project), None).await;
    assert!(members.to_string().contains("CI pipeline"), "a member of its project: {members}");
    let (_, log) = api.call(Method::GET, &api.owner, "/api/v1/admin/audit", None).await;
    let entries = log.as_array().unwrap();
    let started = entries.iter().find(|e| e["action"] == "run.started").unwrap();
    assert_eq!(started["actor"], id.as_str(), "what the key did is under the account's name");
    assert_eq!(started["detail"]["key"], key["id"]);
    assert_eq!(started["detail"]["run"], posted["run"]["id"]);
    assert!(entries.iter().any(|e| e["action"] == "service_account.created" && e["detail"]["account"] == id.as_str()));
    assert!(entries.iter().any(|e| e["action"] == "api_key.created" && e["detail"]["service_account"] == id.as_str()));

    // Listed with its keys, without secrets; the account cannot sign in.
    let (_, listed) = api.call(Method::GET, &api.owner, &api.accounts(), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["keys"][0]["id"], key["id"]);
    assert!(!listed.to_string().contains(&token));
    let email = format!("service-{}@service.invalid", id.replace('-', ""));
    for password in ["", "correct horse battery staple"] {
        let form = [("grant_type", "password"), ("username", email.as_str()), ("password", password)];
        let response = api.client.post(format!("{}/api/v1/auth/token", api.base)).form(&form).send().await.unwrap();
        assert_eq!(response.status(), 400, "a service account has no password");
    }

    // Revoking the key stops it; deleting the account stops every key.
    let (_, second) = api.call(Method::POST, &api.owner, &keys, Some(json!({ "name": "spare" }))).await;
    let second = second["token"].as_str().unwrap().to_owned();
    let (status, revoked) =
        api.call(Method::DELETE, &api.owner, &format!("{keys}/{}", key["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string());
    let threads = format!("/api/v1/projects/{}/threads", api.project);
    assert_eq!(api.call(Method::GET, &token, &threads, None).await.0, 401);
    assert_eq!(api.call(Method::GET, &second, &threads, None).await.0, 200);
    let (status, _) = api.call(Method::DELETE, &api.owner, &format!("{}/{id}", api.accounts()), None).await;
    assert_eq!(status, 204);
    assert_eq!(api.call(Method::GET, &second, &threads, None).await.0, 401, "a deleted account's keys stop");
    let (_, listed) = api.call(Method::GET, &api.owner, &api.accounts(), None).await;
    assert_eq!(listed, json!([]));
    let (_, log) = api.call(Method::GET, &api.owner, "/api/v1/admin/audit", None).await;
    assert!(log.as_array().unwrap().iter().any(|e| e["action"] == "service_account.deleted"));
}

#[tokio::test]
async fn only_owners_manage_service_accounts() {
    let api = start().await;
    let body = json!({ "name": "Bot", "role": "editor" });
    let (status, _) = api.call(Method::POST, &api.viewer, &api.accounts(), Some(body.clone())).await;
    assert_eq!(status, 403);
    let (status, _) = api.call(Method::GET, &api.viewer, &api.accounts(), None).await;
    assert_eq!(status, 403);
    let (status, _) = api.call(Method::POST, &api.stranger, &api.accounts(), Some(body.clone())).await;
    assert_eq!(status, 404, "a project the caller is not in does not exist for them");
    let owner_role = json!({ "name": "Boss", "role": "owner" });
    let (status, refused) = api.call(Method::POST, &api.owner, &api.accounts(), Some(owner_role)).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("invalid_input")));

    let (_, account) = api.call(Method::POST, &api.owner, &api.accounts(), Some(body)).await;
    let keys = format!("{}/{}/keys", api.accounts(), account["id"].as_str().unwrap());
    let (status, _) = api.call(Method::POST, &api.viewer, &keys, Some(json!({ "name": "k" }))).await;
    assert_eq!(status, 403);
    // Keys cannot make keys, nor accounts: an owner signs in for that.
    let (_, key) = api.call(Method::POST, &api.owner, &keys, Some(json!({ "name": "k" }))).await;
    let token = key["token"].as_str().unwrap();
    let (status, _) = api.call(Method::POST, token, &keys, Some(json!({ "name": "more" }))).await;
    assert_eq!(status, 403);
    // A user who is not a service account of the project is no account here.
    let (_, me) = api.call(Method::GET, &api.viewer, "/api/v1/me", None).await;
    let viewer_keys = format!("{}/{}/keys", api.accounts(), me["id"].as_str().unwrap());
    let (status, missing) = api.call(Method::POST, &api.owner, &viewer_keys, Some(json!({ "name": "k" }))).await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("not_found")));
    // A viewer account's key reads but does not write.
    let (_, reader) =
        api.call(Method::POST, &api.owner, &api.accounts(), Some(json!({ "name": "Reader", "role": "viewer" }))).await;
    let reader_keys = format!("{}/{}/keys", api.accounts(), reader["id"].as_str().unwrap());
    let (_, key) = api.call(Method::POST, &api.owner, &reader_keys, Some(json!({ "name": "r" }))).await;
    let token = key["token"].as_str().unwrap();
    let threads = format!("/api/v1/projects/{}/threads", api.project);
    assert_eq!(api.call(Method::GET, token, &threads, None).await.0, 200);
    assert_eq!(api.call(Method::POST, token, &threads, Some(json!({ "title": "x" }))).await.0, 403);
}
