//! What the tests of the `cairn` binary share: starting it as a user does,
//! signing up, and the settings every process of a distributed test shares.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_testkit::{TestPostgres, redis_url, unique_prefix};
use serde_json::{Value, json};

pub fn cairn(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command.current_dir(dir).env("CAIRN__LOG__FORMAT", "pretty");
    // Only what a test sets: no deployment settings and no model keys of
    // the machine (a first run would connect them).
    for (name, _) in std::env::vars() {
        let model_key = ["OPENAI_", "ANTHROPIC_"].iter().any(|prefix| name.starts_with(prefix));
        if (name.starts_with("CAIRN__") && name != "CAIRN__LOG__FORMAT") || model_key {
            command.env_remove(name);
        }
    }
    command
}

pub fn run(command: &mut Command) -> (Output, String) {
    let output = command.output().expect("run cairn");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

/// Ada, the first account (an administrator), signed in on a running server.
pub struct Ada {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Ada {
    /// Registers Ada and signs her in.
    pub async fn signs_up(server: &Running) -> Ada {
        Ada::signs_up_as(server, "ada@example.com", "Ada").await
    }

    /// Registers someone else and signs them in.
    pub async fn signs_up_as(server: &Running, email: &str, name: &str) -> Ada {
        let (client, base) = (reqwest::Client::new(), server.base.clone());
        let body = json!({ "email": email, "password": "correct horse battery staple", "display_name": name });
        client.post(format!("{base}/api/v1/auth/register")).json(&body).send().await.unwrap();
        let form = [("grant_type", "password"), ("username", email), ("password", "correct horse battery staple")];
        let token: Value =
            client.post(format!("{base}/api/v1/auth/token")).form(&form).send().await.unwrap().json().await.unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        Ada { client, base, token }
    }

    /// A new project "P" of Ada's with a thread "T": their ids.
    pub async fn project_with_thread(&self) -> (String, String) {
        let project = self.post("/api/v1/projects", json!({ "name": "P" })).await;
        let project = project["id"].as_str().unwrap().to_owned();
        let thread = self.post(&format!("/api/v1/projects/{project}/threads"), json!({ "title": "T" })).await;
        (project, thread["id"].as_str().unwrap().to_owned())
    }

    /// POSTs JSON as Ada; the answer's body.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let request = self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body);
        request.send().await.unwrap().json().await.unwrap()
    }

    /// The run once it has ended (succeeded, failed or cancelled); panics
    /// after `within`.
    pub async fn finished_run(&self, run: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let got = self.get(&format!("/api/v1/runs/{run}")).await;
            if ["succeeded", "failed", "cancelled"].iter().any(|s| got["status"] == *s) {
                return got;
            }
            assert!(Instant::now() < deadline, "run {run} did not end within {within:?}: {got}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GETs as Ada; the answer's body.
    pub async fn get(&self, path: &str) -> Value {
        let request = self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.token);
        request.send().await.unwrap().json().await.unwrap()
    }
}

/// `llm.providers` with one OpenAI-compatible provider `scripted` (model `m`)
/// at the scripted server `url`, and `extra` TOML fields (`api_key="…"`).
pub fn scripted_provider(url: &str, extra: &str) -> String {
    format!("[{{name=\"scripted\",kind=\"openai-compatible\",base_url=\"{url}/v1\",{extra}models=[{{name=\"m\"}}]}}]")
}

/// Waits until the scripted model has been called `times` times (a run is
/// under way); panics after a minute.
pub async fn model_called(llm: &cairn_testkit::ScriptedLlm, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while llm.received().len() < times {
        assert!(Instant::now() < deadline, "the model was called {} times, not {times}", llm.received().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What every process of a distributed test shares: PostgreSQL, Redis (under
/// a prefix of the test's own) and the signing key.
pub fn shared_envs(pg: &TestPostgres) -> Vec<(&'static str, String)> {
    vec![
        ("CAIRN__DATABASE__URL", pg.url.clone()),
        ("CAIRN__REDIS__URL", redis_url()),
        ("CAIRN__REDIS__PREFIX", unique_prefix("cli")),
        ("CAIRN__AUTH__SIGNING_KEYS", format!("[{{kid=\"k1\",secret=\"{}\"}}]", "A".repeat(43))),
    ]
}

pub fn free_port() -> u16 {
    cairn_testkit::free_port()
}

pub struct Running {
    pub child: Child,
    pub base: String,
    pub log: std::path::PathBuf,
}

impl Running {
    pub fn start(dir: &Path, args: &[&str], envs: &[(&str, String)]) -> Running {
        let port = free_port();
        let mut command = cairn(dir);
        command.arg("serve").args(args).env("CAIRN__SERVER__BIND", format!("127.0.0.1:{port}"));
        for (name, value) in envs {
            command.env(name, value);
        }
        let log = dir.join("cairn.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let child = command.stdout(Stdio::null()).stderr(stderr).spawn().expect("start cairn");
        // The test's own address, when it chose one.
        let bind = envs.iter().find(|(name, _)| *name == "CAIRN__SERVER__BIND").map(|(_, value)| value.clone());
        let base = format!("http://{}", bind.unwrap_or_else(|| format!("127.0.0.1:{port}")));
        Running { child, base, log }
    }

    pub async fn wait_ready(&mut self) -> Value {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("cairn exited early with {status}:\n{log}");
            }
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await
                && response.status() == 200
            {
                return response.json().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        panic!("cairn did not become ready:\n{log}");
    }

    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "cairn stopped with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "cairn did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
