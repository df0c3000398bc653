//! The application state as the binary builds it, with fixed keys and the
//! data (outbox, local objects) in a test folder.

#![allow(clippy::unwrap_used, dead_code)]

pub mod files_api;

use std::sync::Arc;

use cairn_config::Config;
use cairn_core::bus::Bus;
use cairn_gateway::{AppParts, AppState, ServerRole};
use cairn_store::Database;
use cairn_testkit::TempDir;

/// The state on a fresh SQLite database in `dir` (also the data dir) with
/// the in-process bus.
pub async fn sqlite_state(dir: &TempDir, mut config: Config) -> AppState {
    config.data_dir = dir.path.clone();
    let db = Database::open(&dir.sqlite_url(), &cairn_store::OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    let bus = cairn_bus::in_process(db.queue(cairn_core::bus::QueueOptions::default()));
    state(config, &db, bus, dir)
}

/// The key ring that seals stored secrets: the configured keys, or a test key.
pub fn key_ring(config: &Config) -> cairn_auth::KeyRing {
    if config.llm.secret_keys.is_empty() {
        let secret = cairn_config::SigningKey { kid: "test".into(), secret: "Q".repeat(43).into() };
        cairn_auth::KeyRing::from_config(std::slice::from_ref(&secret)).unwrap()
    } else {
        cairn_auth::KeyRing::from_config(&config.llm.secret_keys).unwrap()
    }
}

pub fn state(config: Config, db: &Database, bus: Bus, dir: &TempDir) -> AppState {
    let config_llm = config.llm.clone();
    let models = Arc::new(cairn_llm::Models::from_config(&config_llm).unwrap());
    let (secret_ring, hook_ring) = (key_ring(&config), key_ring(&config));
    let webhooks =
        cairn_webhooks::Webhooks::new(db.store(), hook_ring, &config.webhooks, config.tools.allow_private.clone())
            .unwrap();
    webhooks.start();
    let bus_for_connections = bus.clone();
    let keys = if config.auth.signing_keys.is_empty() {
        vec![cairn_config::SigningKey { kid: "test".into(), secret: "A".repeat(43).into() }]
    } else {
        config.auth.signing_keys.clone()
    };
    let keys = cairn_auth::SigningKeys::from_config(&keys).unwrap();
    let outbox = cairn_auth::mail::Outbox::new(dir.path.join("outbox"), &config.mail.from).unwrap();
    let auth = cairn_auth::Auth::new(&config, db.store(), &bus, Arc::new(outbox), keys);
    let objects = cairn_files::Objects::from_config(&config.files, &dir.path).unwrap();
    let files = cairn_files::Files::new(&config.files, db.store(), objects, auth.clone(), &[5; 32]).unwrap();
    AppState::from(AppParts {
        config: Arc::new(config),
        store: db.store(),
        bus,
        auth,
        files,
        role: ServerRole::All,
        registry: Arc::new(cairn_tools::Registry::builtin()),
        tools: None,
        models: models.clone(),
        runs: None,
        memory: cairn_memory::Memory::new(db.store(), cairn_llm::Embedder::from_config(&config_llm).unwrap()),
        connections: cairn_gateway::Connections::new(
            config_llm.clone(),
            db.store(),
            secret_ring,
            models,
            bus_for_connections,
        ),
        webhooks,
        presence: Default::default(),
        stopping: Default::default(),
    })
}

pub const PASSWORD: &str = "correct horse battery staple";

/// The scripted LLM server at `url` as a provider named `scripted`.
pub fn scripted_provider(url: &str, models: Vec<cairn_config::LlmModel>) -> cairn_config::LlmProvider {
    cairn_config::LlmProvider {
        name: "scripted".into(),
        kind: "openai-compatible".into(),
        base_url: format!("{url}/v1"),
        api_key: Default::default(),
        api_version: String::new(),
        models,
    }
}

/// A model that costs nothing.
pub fn free_model(name: &str) -> cairn_config::LlmModel {
    cairn_config::LlmModel {
        name: name.into(),
        input_usd_per_mtok: Some(0.0),
        output_usd_per_mtok: Some(0.0),
        ..Default::default()
    }
}

/// A request as `token`, with a JSON body when given; the status and the
/// JSON answer (null when none).
pub async fn send_json(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

/// A server with the agent on real parts and the scripted model, a project
/// with an owner and a viewer, and an editor's and a viewer's API key for
/// it: what the integration faces (OpenAI, MCP) are tested on.
pub struct KeyedAgent {
    pub base: String,
    pub client: reqwest::Client,
    pub owner: String,
    /// An editor's API key for the project, and a viewer's.
    pub key: String,
    pub viewer_key: String,
    pub llm: cairn_testkit::ScriptedLlm,
    pub dir: TempDir,
}

impl KeyedAgent {
    /// Served on `models` of the scripted provider (the first the default).
    pub async fn start(name: &str, models: &[&str]) -> KeyedAgent {
        let dir = TempDir::new(name);
        let llm = cairn_testkit::ScriptedLlm::start(Vec::new()).await;
        let mut config = Config::default();
        config.llm.providers = vec![scripted_provider(&llm.url, models.iter().map(|m| free_model(m)).collect())];
        config.llm.default_model = format!("scripted/{}", models[0]);
        let mut state = sqlite_state(&dir, config).await;
        with_sandboxes(&mut state, &dir, true).await;
        let base = serve(state).await;
        let client = reqwest::Client::new();
        let ([owner, viewer, _], project) = owner_viewer_stranger(&client, &base, name).await;
        let [key, viewer_key] = editor_and_viewer_keys(&client, &base, [&owner, &viewer], &project).await;
        KeyedAgent { base, client, owner, key, viewer_key, llm, dir }
    }
}

/// A server with the agent on real parts and the scripted model (`m`, free,
/// the default; embeddings for memory), and a project with an owner and a
/// viewer: what the data-lifecycle tests start from.
pub struct Team {
    pub base: String,
    pub client: reqwest::Client,
    pub owner: String,
    pub viewer: String,
    pub project: String,
    pub llm: cairn_testkit::ScriptedLlm,
    pub dir: TempDir,
}

impl Team {
    /// Served after `configure` changed the configuration.
    pub async fn start(name: &str, configure: impl FnOnce(&mut Config)) -> Team {
        Team::start_with_index(name, configure, None).await
    }

    /// [`Team::start`], the sandboxes installing packages from `index`.
    pub async fn start_with_index(name: &str, configure: impl FnOnce(&mut Config), index: Option<&str>) -> Team {
        let dir = TempDir::new(name);
        let llm = cairn_testkit::ScriptedLlm::start(Vec::new()).await;
        let mut config = Config::default();
        config.llm.providers = vec![scripted_provider(&llm.url, vec![free_model("m")])];
        config.llm.default_model = "scripted/m".into();
        config.llm.embedding_model = "scripted/embedder".into();
        configure(&mut config);
        let mut state = sqlite_state(&dir, config).await;
        with_sandboxes_and_index(&mut state, &dir, true, index).await;
        let base = serve(state).await;
        let client = reqwest::Client::new();
        let ([owner, viewer, _], project) = owner_viewer_stranger(&client, &base, name).await;
        Team { base, client, owner, viewer, project, llm, dir }
    }

    /// A request to `/api/v1{path}` as `token`; the status and the JSON answer.
    pub async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        send_json(&self.client, method, &format!("{}/api/v1{path}", self.base), token, body).await
    }
}

/// An editor's API key made by `owner` and a viewer's made by `viewer`,
/// both for `project`.
pub async fn editor_and_viewer_keys(
    client: &reqwest::Client,
    base: &str,
    [owner, viewer]: [&str; 2],
    project: &str,
) -> [String; 2] {
    let mut keys = Vec::new();
    for (token, role) in [(owner, "editor"), (viewer, "viewer")] {
        let body = serde_json::json!({ "project_id": project, "role": role, "name": format!("{role}'s key") });
        let created = post_json(client, &format!("{base}/api/v1/api-keys"), token, &body).await;
        keys.push(created["token"].as_str().unwrap().to_owned());
    }
    <[String; 2]>::try_from(keys).unwrap()
}

/// POSTs `body` as `token`; the JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    client.post(url).bearer_auth(token).json(body).send().await.unwrap().json().await.unwrap()
}

/// Registers an owner, a viewer and a stranger, and makes a project the
/// owner owns and the viewer views. Returns the three access tokens and the
/// project id.
pub async fn owner_viewer_stranger(client: &reqwest::Client, base: &str, project: &str) -> ([String; 3], String) {
    use serde_json::{Value, json};
    let mut tokens = Vec::new();
    for email in ["owner@example.com", "viewer@example.com", "stranger@example.com"] {
        let body = json!({ "email": email, "password": PASSWORD, "display_name": "X" });
        client.post(format!("{base}/api/v1/auth/register")).json(&body).send().await.unwrap();
        let form = [("grant_type", "password"), ("username", email), ("password", PASSWORD)];
        let token: Value =
            client.post(format!("{base}/api/v1/auth/token")).form(&form).send().await.unwrap().json().await.unwrap();
        tokens.push(token["access_token"].as_str().unwrap().to_owned());
    }
    let created = post_json(client, &format!("{base}/api/v1/projects"), &tokens[0], &json!({ "name": project })).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let member = json!({ "email": "viewer@example.com", "role": "viewer" });
    client
        .post(format!("{base}/api/v1/projects/{id}/members"))
        .bearer_auth(&tokens[0])
        .json(&member)
        .send()
        .await
        .unwrap();
    (<[String; 3]>::try_from(tokens).unwrap(), id)
}

/// Gives the state real sandboxes (on the host's Python, no warm pool) and
/// the tools; with `agent`, also agent runs with two workers.
pub async fn with_sandboxes(state: &mut AppState, dir: &TempDir, agent: bool) {
    with_sandboxes_and_index(state, dir, agent, None).await;
}

/// [`with_sandboxes`], the sandboxes installing packages from `index` (a
/// PEP 503 index URL on an allowlisted loopback address).
pub async fn with_sandboxes_and_index(state: &mut AppState, dir: &TempDir, agent: bool, index: Option<&str>) {
    let mut local = cairn_sandbox::LocalConfig::new(dir.path.join("sandboxes"));
    local.pool_size = 0;
    if let Some(url) = index {
        // pip comes with the sandbox venv (a host's python3 may lack it).
        let python = std::env::var("CAIRN_SANDBOX_PYTHON")
            .expect("CAIRN_SANDBOX_PYTHON names the sandbox venv's python (the test command builds it)");
        local.python = Some(python.into());
        let allow = state.config.sandbox.egress_allow.clone();
        let packages = cairn_sandbox::PackageIndex::start(&dir.path.join("egress-packages"), url, &[], allow);
        local.packages = Some(packages.expect("the package proxy starts"));
    }
    local.prelude = Some(state.registry.python_prelude());
    let sandboxes = cairn_sandbox::LocalSandboxes::start(local).await.expect("bubblewrap and python3");
    // The tools as configured (a test may allowlist a local site).
    let tools = state.config.tools.clone();
    let mut services =
        cairn_tools::Services::from_config(&tools, Arc::new(sandboxes), Some(state.files.clone())).await.unwrap();
    services.memory = Some(state.memory.clone());
    let registry = state.registry.clone();
    state.parts_mut().tools = Some(cairn_tools::ToolRunner::new(registry, services.clone()));
    if agent {
        let agent = cairn_agent::Agent {
            models: state.models.clone(),
            registry: state.registry.clone(),
            services,
            store: state.store.clone(),
            keys: Some(Arc::new(key_ring(&state.config))),
        };
        let lease = std::time::Duration::from_secs(30);
        let runs =
            cairn_agent::Runs::new(state.store.clone(), state.bus.clone(), Arc::new(agent), Default::default(), lease)
                .configured(&state.config.agent)
                .with_hooks(Arc::new(state.webhooks.clone()));
        runs.start_workers("api-test", 2);
        state.parts_mut().runs = Some(runs);
    }
}

/// Serves the application on a free port of 127.0.0.1; returns its base URL.
pub async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(cairn_gateway::serve(listener, cairn_gateway::app(state), std::future::pending()));
    base
}

/// Reads a response's head from a raw connection (lowercased) and what came
/// after it so far.
pub async fn response_head(socket: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut read = Vec::new();
    loop {
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(read[..end].to_vec()).unwrap().to_lowercase();
            return (head, read[end + 4..].to_vec());
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the connection closed before a whole head: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&buf[..n]);
    }
}
