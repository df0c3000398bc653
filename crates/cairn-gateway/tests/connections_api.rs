//! Model connections through the API, over real HTTP against the scripted
//! LLM server: administrators add, test, edit, disable and remove them; the
//! models follow at once; keys are sealed at rest, never returned, and
//! survive a rotation of the secret key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_config::{Config, SigningKey};
use cairn_testkit::{Reply, ScriptedLlm, TempDir};
use reqwest::StatusCode;
use serde_json::{Value, json};

const KEY: &str = "sk-connection-secret-9876";

struct Api {
    base: String,
    client: reqwest::Client,
    admin: String,
    member: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut request = self.client.request(method, format!("{}/api/v1{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, text) = self.call(method, path, &self.admin, body).await;
        assert!(!text.contains(KEY), "the key never leaves the server: {text}");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn model_ids(&self) -> Vec<String> {
        let (_, listed) = self.json(reqwest::Method::GET, "/models", None).await;
        listed["models"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
    }
}

fn ring(keys: &[(&str, char)]) -> Vec<SigningKey> {
    keys.iter()
        .map(|(kid, fill)| SigningKey { kid: (*kid).into(), secret: fill.to_string().repeat(43).into() })
        .collect()
}

async fn serve(
    dir: &TempDir,
    secret_keys: Vec<SigningKey>,
    configured: bool,
    llm: &ScriptedLlm,
) -> (Api, AppStateParts) {
    serve_on(&dir.sqlite_url(), dir, secret_keys, configured, llm).await
}

async fn serve_on(
    url: &str,
    dir: &TempDir,
    secret_keys: Vec<SigningKey>,
    configured: bool,
    llm: &ScriptedLlm,
) -> (Api, AppStateParts) {
    let mut config = Config { data_dir: dir.path.clone(), ..Config::default() };
    config.llm.secret_keys = secret_keys;
    if configured {
        config.llm.providers = vec![cairn_config::LlmProvider {
            name: "file".into(),
            kind: "openai-compatible".into(),
            base_url: format!("{}/v1", llm.url),
            api_key: "sk-from-the-file-0000".into(),
            models: vec![cairn_config::LlmModel { name: "f".into(), ..Default::default() }],
            ..Default::default()
        }];
    }
    let db = cairn_store::Database::open(url, &cairn_store::OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    let bus = cairn_bus::in_process(db.queue(cairn_core::bus::QueueOptions::default()));
    let state = support::state(config, &db, bus, dir);
    let connections = state.connections.clone();
    connections.reseal().await.unwrap();
    connections.reload().await.unwrap();
    let base = support::serve(state).await;
    let client = reqwest::Client::new();
    let mut tokens = Vec::new();
    for email in ["admin@example.com", "member@example.com"] {
        let body = json!({ "email": email, "password": support::PASSWORD, "display_name": "X" });
        client.post(format!("{base}/api/v1/auth/register")).json(&body).send().await.unwrap();
        let form = [("grant_type", "password"), ("username", email), ("password", support::PASSWORD)];
        let token: Value =
            client.post(format!("{base}/api/v1/auth/token")).form(&form).send().await.unwrap().json().await.unwrap();
        tokens.push(token["access_token"].as_str().unwrap().to_owned());
    }
    let api = Api { base, client, admin: tokens[0].clone(), member: tokens[1].clone() };
    (api, AppStateParts { connections, _db: db })
}

struct AppStateParts {
    connections: cairn_gateway::Connections,
    _db: cairn_store::Database,
}

#[tokio::test]
async fn administrators_connect_test_edit_disable_and_remove_models() {
    use reqwest::Method;
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(Reply::Text("OK".into()));
    let dir = TempDir::new("connections");
    let (api, _parts) = serve(&dir, ring(&[("k1", 'A')]), true, &llm).await;
    assert_eq!(api.model_ids().await, ["file/f"]);

    let request = json!({ "name": "scripted", "kind": "openai-compatible", "base_url": format!("{}/v1/", llm.url),
                          "api_key": KEY, "models": [{ "name": "m", "input_usd_per_mtok": 1.5 }] });
    let (status, text) = api.call(Method::POST, "/admin/connections", &api.member, Some(request.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members do not connect models: {text}");
    let (status, created) = api.json(Method::POST, "/admin/connections", Some(request.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!((created["key_hint"].as_str(), created["source"].as_str()), (Some("…9876"), Some("app")));
    assert_eq!(created["base_url"], format!("{}/v1", llm.url), "a trailing slash is dropped");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(api.model_ids().await, ["file/f", "scripted/m"], "usable at once");

    // The key travels to the provider and nowhere else.
    let (status, tested) = api.json(Method::POST, &format!("/admin/connections/{id}/test"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((tested["ok"].as_bool(), tested["model"].as_str()), (Some(true), Some("scripted/m")));
    assert!(tested["detail"].as_str().unwrap().starts_with("The model answered in "), "{tested}");
    assert_eq!(llm.received().last().unwrap().headers["authorization"], format!("Bearer {KEY}"));
    let sqlite = std::fs::read(dir.path.join("cairn.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path.join("cairn.db-wal")).unwrap_or_default();
    for bytes in [&sqlite, &wal] {
        assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "the key is sealed at rest");
    }

    // The listing: the configuration's provider read-only, the app's with its hint.
    let (_, listed) = api.json(Method::GET, "/admin/connections", None).await;
    let sources: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["source"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("file", "configuration"), ("scripted", "app")]);
    assert_eq!(listed[0]["key_hint"], "…0000");
    assert!(listed[0]["id"].is_null());

    // Bad input, clearly refused.
    for (body, status) in [
        (json!({ "name": "scripted", "kind": "openai", "models": [{ "name": "x" }] }), StatusCode::CONFLICT),
        (json!({ "name": "file", "kind": "openai", "models": [{ "name": "x" }] }), StatusCode::CONFLICT),
        (
            json!({ "name": "Bad/Name", "kind": "openai", "models": [{ "name": "x" }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "name": "x", "kind": "telepathy", "models": [{ "name": "x" }] }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "name": "x", "kind": "azure-openai", "models": [{ "name": "x" }] }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "name": "x", "kind": "openai", "models": [] }), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "name": "x", "kind": "openai", "base_url": "file:///etc", "models": [{ "name": "x" }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, problem) = api.json(Method::POST, "/admin/connections", Some(body.clone())).await;
        assert_eq!(got, status, "{body} → {problem}");
    }

    // Edit: more models; disable hides them at once; enable brings them back.
    let path = format!("/admin/connections/{id}");
    let (status, edited) =
        api.json(Method::PATCH, &path, Some(json!({ "models": [{ "name": "m" }, { "name": "n" }] }))).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["key_hint"], "…9876", "the key is kept when not sent");
    assert_eq!(api.model_ids().await, ["file/f", "scripted/m", "scripted/n"]);
    api.json(Method::PATCH, &path, Some(json!({ "enabled": false }))).await;
    assert_eq!(api.model_ids().await, ["file/f"]);
    api.json(Method::PATCH, &path, Some(json!({ "enabled": true, "api_key": "" }))).await;
    let (_, listed) = api.json(Method::GET, "/admin/connections", None).await;
    assert!(listed[1]["key_hint"].is_null(), "the key was removed");

    // A refused key says so in words (Azure insists on its api-key).
    let azure = json!({ "name": "azure", "kind": "azure-openai", "base_url": llm.url, "models": [{ "name": "dep" }] });
    let (_, azure) = api.json(Method::POST, "/admin/connections", Some(azure)).await;
    let (_, tested) =
        api.json(Method::POST, &format!("/admin/connections/{}/test", azure["id"].as_str().unwrap()), None).await;
    assert_eq!(tested["ok"], false);
    assert!(tested["detail"].as_str().unwrap().starts_with("the provider refused the key: Access denied"), "{tested}");

    // Remove.
    let (status, _) = api.call(Method::DELETE, &path, &api.admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!api.model_ids().await.contains(&"scripted/m".to_owned()));
    let (status, _) = api.call(Method::DELETE, &path, &api.admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Every change is in the audit log, without the key.
    let (_, audit) = api.json(Method::GET, "/admin/audit", None).await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("model_connection."))
        .collect();
    for action in ["created", "tested", "updated", "removed"] {
        assert!(actions.contains(&format!("model_connection.{action}").as_str()), "{actions:?}");
    }
}

#[tokio::test]
async fn sealed_keys_survive_a_rotation_of_the_secret_key() {
    use reqwest::Method;
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(Reply::Text("OK".into()));
    let dir = TempDir::new("rotation");
    let id = {
        let (api, _parts) = serve(&dir, ring(&[("old", 'A')]), false, &llm).await;
        let request = json!({ "name": "scripted", "kind": "openai-compatible", "base_url": format!("{}/v1", llm.url),
                              "api_key": KEY, "models": [{ "name": "m" }] });
        let (_, created) = api.json(Method::POST, "/admin/connections", Some(request)).await;
        created["id"].as_str().unwrap().to_owned()
    };
    // The new key first, the old one kept: the stored key is sealed again at start.
    let (_, parts) = serve(&dir, ring(&[("new", 'Q'), ("old", 'A')]), false, &llm).await;
    assert_eq!(parts.connections.reseal().await.unwrap(), 0, "already resealed at start");
    // Now the old key can go.
    let (api, _parts) = serve(&dir, ring(&[("new", 'Q')]), false, &llm).await;
    assert_eq!(api.model_ids().await, ["scripted/m"]);
    let (_, tested) = api.json(Method::POST, &format!("/admin/connections/{id}/test"), None).await;
    assert_eq!(tested["ok"], true, "{tested}");
    assert_eq!(llm.received().last().unwrap().headers["authorization"], format!("Bearer {KEY}"));
}

/// The same store operations on PostgreSQL.
#[tokio::test]
async fn connections_are_kept_on_postgres_too() {
    use reqwest::Method;
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(Reply::Text("OK".into()));
    let pg = cairn_testkit::TestPostgres::create().await;
    let dir = TempDir::new("connections-pg");
    let (api, _parts) = serve_on(&pg.url, &dir, ring(&[("k1", 'A')]), false, &llm).await;
    let request = json!({ "name": "scripted", "kind": "openai-compatible", "base_url": format!("{}/v1", llm.url),
                          "api_key": KEY, "models": [{ "name": "m", "output_usd_per_mtok": 2.0 }] });
    let (status, created) = api.json(Method::POST, "/admin/connections", Some(request.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _) = api.json(Method::POST, "/admin/connections", Some(request)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let id = created["id"].as_str().unwrap();
    let (_, edited) =
        api.json(Method::PATCH, &format!("/admin/connections/{id}"), Some(json!({ "enabled": false }))).await;
    assert_eq!(
        (edited["enabled"].as_bool(), edited["models"][0]["output_usd_per_mtok"].as_f64()),
        (Some(false), Some(2.0))
    );
    let (_, tested) = api.json(Method::POST, &format!("/admin/connections/{id}/test"), None).await;
    assert_eq!(tested["ok"], true, "a disabled connection can still be tried: {tested}");
    let (status, _) = api.call(Method::DELETE, &format!("/admin/connections/{id}"), &api.admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    drop(pg);
}

/// A compatible server configured without models offers the ones it lists.
#[tokio::test]
async fn a_compatible_server_without_listed_models_offers_its_own() {
    let llm = ScriptedLlm::start(Vec::new()).await;
    let dir = TempDir::new("listed");
    let mut config = Config { data_dir: dir.path.clone(), ..Config::default() };
    config.llm.providers = vec![cairn_config::LlmProvider {
        name: "local".into(),
        kind: "openai-compatible".into(),
        base_url: format!("{}/v1", llm.url),
        ..Default::default()
    }];
    config.validate().unwrap();
    let state = support::sqlite_state(&dir, config).await;
    state.connections.reload().await.unwrap();
    let ids: Vec<String> = state.models.list().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["local/scripted-embedder", "local/scripted-model"]);
}
