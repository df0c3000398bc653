//! The library API on a fresh server: an owner, a viewer and a stranger,
//! and a project, on local storage, a real S3 server or the GCS and Azure
//! emulators.

use cairn_config::Config;
use cairn_testkit::{ObjectServer, TempDir};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub owner: String,
    pub viewer: String,
    pub stranger: String,
    pub project: String,
    _stop: oneshot::Sender<()>,
    _dir: TempDir,
    _server: Option<ObjectServer>,
}

async fn start(server: Option<ObjectServer>, tweak: fn(&mut Config)) -> Api {
    let dir = TempDir::new("files-api");
    let mut config = Config::default();
    if let Some(server) = &server {
        server.configure(&mut config.files);
    }
    tweak(&mut config);
    let state = super::sqlite_state(&dir, config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(cairn_gateway::serve(listener, cairn_gateway::app(state), async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let ([owner, viewer, stranger], project) = super::owner_viewer_stranger(&client, &base, "Library").await;
    Api { base, client, owner, viewer, stranger, project, _stop: stop, _dir: dir, _server: server }
}

pub async fn local(tweak: fn(&mut Config)) -> Api {
    start(None, tweak).await
}

pub async fn s3(tweak: fn(&mut Config)) -> Api {
    start(Some(ObjectServer::s3().await), tweak).await
}

pub async fn gcs(tweak: fn(&mut Config)) -> Api {
    start(Some(ObjectServer::gcs().await), tweak).await
}

pub async fn azure(tweak: fn(&mut Config)) -> Api {
    start(Some(ObjectServer::azure().await), tweak).await
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1/projects/{}{path}", self.base, self.project)
    }

    pub async fn put(&self, token: &str, path: &str, bytes: &[u8]) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/files/content?path={path}")))
            .bearer_auth(token)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub async fn json(&self, method: Method, token: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
