//! The CLI's side of the API: the saved credentials (a refresh token or an
//! API key, in the user's config folder, mode 0600) and requests made with
//! them, every failure turned into a message and an exit code.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a command failed: the words to print and the process's exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

/// The exit codes (clap answers 2 for usage errors).
pub mod exit {
    /// The run failed or was cancelled.
    pub const RUN_FAILED: i32 = 1;
    /// Not signed in, or the server refused the credentials or the role.
    pub const AUTH: i32 = 3;
    /// No such project, thread, run, file or key.
    pub const NOT_FOUND: i32 = 4;
    /// The server cannot be reached, or failed.
    pub const UNAVAILABLE: i32 = 5;
    /// The server refused the input.
    pub const INVALID: i32 = 6;
    /// The run waits for a person (its question is printed).
    pub const WAITING: i32 = 7;
    /// The run was still going when the wait ended.
    pub const TIMEOUT: i32 = 8;
}

pub fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

/// What `cairn login` saves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// `$XDG_CONFIG_HOME/cairn/credentials.json`, else `~/.config/cairn/credentials.json`.
pub fn credentials_path() -> Result<PathBuf, Failure> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| fail(exit::AUTH, "HOME is not set: cannot find the config folder"))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("cairn").join("credentials.json"))
}

pub fn save(credentials: &Credentials) -> Result<PathBuf, Failure> {
    let path = credentials_path()?;
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .map_err(|e| fail(exit::AUTH, format!("cannot make {}: {e}", folder.display())))?;
    }
    let bytes = serde_json::to_vec_pretty(credentials).map_err(|e| fail(exit::AUTH, e.to_string()))?;
    // Written whole beside it (readable by the user alone from the
    // start), then moved over the old one.
    let fresh = path.with_extension("json.new");
    let _ = std::fs::remove_file(&fresh);
    let written = cairn_auth::write_private(&fresh, &bytes).and_then(|()| std::fs::rename(&fresh, &path));
    written.map_err(|e| fail(exit::AUTH, format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

fn load() -> Result<Credentials, Failure> {
    let path = credentials_path()?;
    let text = std::fs::read_to_string(&path).map_err(|_| {
        fail(exit::AUTH, "not signed in: run `cairn login --server URL --email E` (or `--api-key`) first")
    })?;
    serde_json::from_str(&text)
        .map_err(|e| fail(exit::AUTH, format!("{} is not readable ({e}): run `cairn login` again", path.display())))
}

/// The server's words for a refusal, and the exit code it maps to.
pub fn refusal(status: StatusCode, body: &str) -> Failure {
    let parsed: Value = serde_json::from_str(body).unwrap_or_default();
    let detail = ["detail", "error_description", "title"]
        .iter()
        .find_map(|k| parsed.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the server answered {status}"));
    let code = match status.as_u16() {
        401 | 403 => exit::AUTH,
        404 => exit::NOT_FOUND,
        400 | 409 | 413 | 415 | 422 => exit::INVALID,
        _ => exit::UNAVAILABLE,
    };
    fail(code, detail)
}

fn unreachable(server: &str, error: &reqwest::Error) -> Failure {
    fail(exit::UNAVAILABLE, format!("cannot reach {server}: {error}"))
}

/// Sends a request to `server`: the answer's body, or why there is none
/// (the server unreachable, or its refusal).
pub async fn exchange(request: reqwest::RequestBuilder, server: &str) -> Result<String, Failure> {
    let response = request.send().await.map_err(|e| unreachable(server, &e))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| unreachable(server, &e))?;
    if !status.is_success() {
        return Err(refusal(status, &body));
    }
    Ok(body)
}

/// A signed-in connection to the server.
#[derive(Debug, Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub server: String,
    bearer: String,
}

impl Api {
    pub fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .user_agent(concat!("cairn-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    }

    /// Signs in with the saved credentials: an API key as it is; a refresh
    /// token traded for an access token (and its successor saved).
    pub async fn connect() -> Result<Api, Failure> {
        let mut credentials = load()?;
        let http = Api::http();
        let server = credentials.server.trim_end_matches('/').to_owned();
        if let Some(key) = &credentials.api_key {
            return Ok(Api { http, server, bearer: key.clone() });
        }
        let refresh =
            credentials.refresh_token.clone().ok_or_else(|| fail(exit::AUTH, "not signed in: run `cairn login`"))?;
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
        let request = http.post(format!("{server}/api/v1/auth/token")).form(&form);
        let body = exchange(request, &server).await.map_err(|refused| match refused.code {
            exit::UNAVAILABLE => refused,
            _ => fail(exit::AUTH, format!("the session ended ({}): run `cairn login` again", refused.message)),
        })?;
        let tokens: Value = serde_json::from_str(&body).unwrap_or_default();
        let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();
        credentials.refresh_token = tokens["refresh_token"].as_str().map(str::to_owned);
        save(&credentials)?;
        Ok(Api { http, server, bearer: access })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.bearer)
    }

    /// Sends a request; the answer's JSON (null for none), or the refusal.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let body = exchange(request, &self.server).await?;
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn json(&self, method: Method, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.request(method, path).json(body)).await
    }

    /// A project's id from its id or its name (any case).
    pub async fn project(&self, wanted: &str) -> Result<String, Failure> {
        let projects = self.get("/api/v1/projects").await?;
        let list = projects.as_array().cloned().unwrap_or_default();
        let found = list
            .iter()
            .find(|p| p["id"] == wanted)
            .or_else(|| list.iter().find(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(wanted))));
        found.and_then(|p| p["id"].as_str().map(str::to_owned)).ok_or_else(|| {
            fail(exit::NOT_FOUND, format!("no project `{wanted}` of yours: `cairn projects` lists them"))
        })
    }
}
