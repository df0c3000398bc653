//! The CLI client in the `cairn` binary: sign in to a Cairn server, list
//! projects, chat with the agent live in the terminal (approvals answered
//! inline), run a task and wait for its answer, move library files, manage
//! API keys. Every failure prints one line and exits with a code that says
//! what kind it was (see [`api::exit`]).

mod api;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use cairn_core::model::RunStatus;
use clap::Subcommand;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use api::{Api, Credentials, Failure, exit, fail};

/// The client's commands, beside the server's in `cairn --help`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Sign in to a Cairn server (the password, or with `--api-key` the
    /// key, is read from standard input); saved in the config folder, 0600.
    Login {
        /// The server's URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        server: String,
        /// Sign in as this person.
        #[arg(long, conflicts_with = "api_key")]
        email: Option<String>,
        /// Sign in with a project's API key.
        #[arg(long)]
        api_key: bool,
    },
    /// Forget the saved sign-in.
    Logout,
    /// Your projects.
    Projects {
        #[arg(long)]
        json: bool,
    },
    /// Chat with the agent in a project (a new thread, or THREAD): each
    /// line is a message; runs stream live; the agent's questions and
    /// approvals are answered by the next line.
    Chat { project: String, thread: Option<String> },
    /// Give the agent a task and, with `--wait`, print its answer.
    Run {
        project: String,
        task: String,
        /// Go on in this thread; a new one otherwise.
        #[arg(long)]
        thread: Option<String>,
        /// `provider/model`.
        #[arg(long)]
        model: Option<String>,
        /// Wait for the run to end and print its answer.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait (at most 3600).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A project's library.
    Files {
        #[command(subcommand)]
        command: FilesCommand,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Your API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[arg(long, global = true)]
        json: bool,
    },
}

/// Runs a client command (it talks to a server and needs no server
/// configuration): prints a failure as one line, and exits with its code.
pub fn main(command: ClientCommand) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cairn: cannot start the async runtime: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match command {
            ClientCommand::Login { server, email, api_key } => login(&server, email.as_deref(), api_key).await,
            ClientCommand::Logout => logout(),
            ClientCommand::Projects { json } => projects(json).await,
            ClientCommand::Chat { project, thread } => chat(&project, thread.as_deref()).await,
            ClientCommand::Run { project, task, thread, model, wait, timeout, json } => {
                run(&project, &task, thread.as_deref(), model.as_deref(), wait, timeout.min(3600), json).await
            }
            ClientCommand::Files { command, json } => files(command, json).await,
            ClientCommand::Keys { command, json } => keys(command, json).await,
        }
    });
    std::process::ExitCode::from(u8::try_from(report(result)).unwrap_or(1))
}

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// A folder's files and sub-folders.
    Ls {
        project: String,
        #[arg(default_value = "")]
        folder: String,
    },
    /// Uploads a local file (a new version if the path exists).
    Put {
        project: String,
        local: PathBuf,
        /// Its path in the library; the file's name when left out.
        remote: Option<String>,
    },
    /// Downloads the newest version of a library file.
    Get {
        project: String,
        remote: String,
        /// Where to write it; the file's name when left out, `-` for standard output.
        local: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Your API keys (without secrets).
    Ls,
    /// Makes a key; prints the secret once.
    Create {
        project: String,
        #[arg(long, default_value = "editor")]
        role: String,
        #[arg(long)]
        name: String,
    },
    /// Revokes a key.
    Revoke { key: String },
}

/// The first line of standard input (a password or key stays out of the
/// shell's history and the process list).
fn read_secret(what: &str) -> Result<String, Failure> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("{what}: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| fail(exit::INVALID, e.to_string()))?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        return Err(fail(exit::INVALID, format!("no {what} on standard input")));
    }
    Ok(line)
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// `cairn login`: checks the credentials with the server, then saves them.
pub async fn login(server: &str, email: Option<&str>, api_key: bool) -> Result<(), Failure> {
    let server = server.trim_end_matches('/').to_owned();
    let http = Api::http();
    let credentials = match (email, api_key) {
        (Some(email), false) => {
            let password = read_secret("Password")?;
            let form = [("grant_type", "password"), ("username", email), ("password", password.as_str())];
            let request = http.post(format!("{server}/api/v1/auth/token")).form(&form);
            // A wrong password is OAuth2's 400 `invalid_grant`: a refusal of the credentials.
            let body = api::exchange(request, &server).await.map_err(|refused| match refused.code {
                exit::INVALID => fail(exit::AUTH, refused.message),
                _ => refused,
            })?;
            let tokens: Value = serde_json::from_str(&body).unwrap_or_default();
            let refresh_token = tokens["refresh_token"].as_str().map(str::to_owned);
            Credentials { server: server.clone(), refresh_token, api_key: None }
        }
        (None, true) => {
            let key = read_secret("API key")?;
            api::exchange(http.get(format!("{server}/api/v1/projects")).bearer_auth(&key), &server).await?;
            Credentials { server: server.clone(), refresh_token: None, api_key: Some(key) }
        }
        _ => {
            return Err(fail(
                2,
                "give `--email EMAIL` (the password on standard input) or `--api-key` (the key on standard input)",
            ));
        }
    };
    let path = api::save(&credentials)?;
    eprintln!("Signed in to {server} (saved in {}).", path.display());
    Ok(())
}

pub fn logout() -> Result<(), Failure> {
    let path = api::credentials_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => eprintln!("Signed out."),
        Err(_) => eprintln!("Not signed in."),
    }
    Ok(())
}

pub async fn projects(as_json: bool) -> Result<(), Failure> {
    let api = Api::connect().await?;
    let projects = api.get("/api/v1/projects").await?;
    if as_json {
        print_json(&projects);
        return Ok(());
    }
    for project in projects.as_array().into_iter().flatten() {
        println!(
            "{}  {:<7}  {}",
            project["id"].as_str().unwrap_or(""),
            project["role"].as_str().unwrap_or(""),
            project["name"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `cairn run`: posts a task to a new thread (or `thread`) and, with
/// `wait`, prints the answer when the run ends.
pub async fn run(
    project: &str,
    task: &str,
    thread: Option<&str>,
    model: Option<&str>,
    wait: bool,
    timeout: u64,
    as_json: bool,
) -> Result<(), Failure> {
    let api = Api::connect().await?;
    let thread = match thread {
        Some(thread) => thread.to_owned(),
        None => {
            let project = api.project(project).await?;
            let title: String = task.lines().next().unwrap_or("Task").chars().take(80).collect();
            let made = api
                .json(Method::POST, &format!("/api/v1/projects/{project}/threads"), &json!({ "title": title }))
                .await?;
            made["id"].as_str().unwrap_or_default().to_owned()
        }
    };
    let mut body = json!({ "content": task, "wait": wait, "wait_secs": timeout });
    if let Some(model) = model {
        body["model"] = json!(model);
    }
    let posted = api.json(Method::POST, &format!("/api/v1/threads/{thread}/messages"), &body).await?;
    if as_json {
        print_json(&posted);
    }
    let run = &posted["run"];
    if !wait {
        if !as_json {
            println!("{}", run["id"].as_str().unwrap_or(""));
        }
        return Ok(());
    }
    match run["status"].as_str().unwrap_or("") {
        "succeeded" => {
            if !as_json {
                println!("{}", posted["answer"].as_str().unwrap_or(""));
            }
            Ok(())
        }
        "failed" => Err(fail(
            exit::RUN_FAILED,
            format!("the run failed: {}", run["error"].as_str().unwrap_or("no reason given")),
        )),
        "cancelled" => Err(fail(exit::RUN_FAILED, "the run was cancelled")),
        "waiting" => Err(fail(
            exit::WAITING,
            format!("the run waits for a person: answer it in the app, or with `cairn chat {project} {thread}`"),
        )),
        other => Err(fail(
            exit::TIMEOUT,
            format!("the run is still {other} after {timeout} s: its id is {}", run["id"].as_str().unwrap_or("")),
        )),
    }
}

/// One event of a thread's stream, as the terminal shows it: read as the
/// run protocol's typed event (a kind this version does not know is not
/// shown). The run's new status, when it is a status event.
fn show(event: &Value) -> Option<RunStatus> {
    use cairn_agent::events::{RunEvent, SCHEMA_VERSION};
    use cairn_core::model::MessageRole;
    use cairn_core::sandbox::Output;
    let kind = event["kind"].as_str().unwrap_or("");
    let event = RunEvent::decode(kind, event["payload"].clone(), SCHEMA_VERSION).ok()?;
    let status = match &event {
        RunEvent::Status(changed) => Some(changed.status),
        _ => None,
    };
    let mut out = std::io::stdout();
    let _ = match event {
        RunEvent::Token(piece) => write!(out, "{}", piece.text),
        RunEvent::Output(produced) => match produced.output {
            Output::Stream { text, .. } => write!(out, "{text}"),
            Output::Error { ename, evalue, .. } => writeln!(out, "{ename}: {evalue}"),
            Output::Display { .. } | Output::Result { .. } => Ok(()),
        },
        RunEvent::Artifact(saved) => writeln!(out, "\n[saved {} (version {})]", saved.path, saved.version),
        RunEvent::MessageCreated(message) if message.role == MessageRole::Assistant => {
            writeln!(out, "\n\n{}\n", message.content)
        }
        RunEvent::Status(changed) if changed.status == RunStatus::Failed => {
            writeln!(out, "\n[the run failed: {}]", changed.error.unwrap_or_default())
        }
        RunEvent::Interrupt(asked) => writeln!(out, "\n[the agent asks] {}", asked.question),
        _ => Ok(()),
    };
    let _ = out.flush();
    status
}

/// `cairn chat`: each line of standard input is a message; the run that
/// answers it streams into the terminal; when the agent asks (an approval,
/// a question), the next line is the answer. Ends at the end of input.
pub async fn chat(project: &str, thread: Option<&str>) -> Result<(), Failure> {
    let api = Api::connect().await?;
    let thread = match thread {
        Some(thread) => thread.to_owned(),
        None => {
            let project = api.project(project).await?;
            let made = api
                .json(Method::POST, &format!("/api/v1/projects/{project}/threads"), &json!({ "title": "Chat" }))
                .await?;
            made["id"].as_str().unwrap_or_default().to_owned()
        }
    };
    let last = api.get(&format!("/api/v1/threads/{thread}")).await?["last_event_seq"].as_i64().unwrap_or(0);
    let response = api
        .request(Method::GET, &format!("/api/v1/threads/{thread}/events?after={last}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| fail(exit::UNAVAILABLE, e.to_string()))?;
    if !response.status().is_success() {
        let status = response.status();
        return Err(api::refusal(status, &response.text().await.unwrap_or_default()));
    }
    eprintln!("Thread {thread}. Type a message and press Enter; end with Ctrl-D.");
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        let mut pending = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if let Some(data) = line.trim_end().strip_prefix("data:")
                    && let Ok(event) = serde_json::from_str::<Value>(data.trim_start())
                    && event.get("seq").is_some()
                    && events_tx.send(event).is_err()
                {
                    return;
                }
            }
        }
    });
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut failed = false;
    while let Some(line) = lines.recv().await {
        if line.trim().is_empty() {
            continue;
        }
        let posted =
            api.json(Method::POST, &format!("/api/v1/threads/{thread}/messages"), &json!({ "content": line })).await?;
        let mut run = posted["run"]["id"].as_str().unwrap_or_default().to_owned();
        // Follow the run until it ends; when it asks, the next line answers.
        loop {
            let event = match tokio::time::timeout(Duration::from_secs(3600), events.recv()).await {
                Ok(Some(event)) => event,
                _ => return Err(fail(exit::UNAVAILABLE, "the thread's event stream ended")),
            };
            if event["run_id"] != run.as_str() {
                continue;
            }
            match show(&event) {
                Some(RunStatus::Succeeded) => break,
                Some(RunStatus::Failed | RunStatus::Cancelled) => {
                    failed = true;
                    break;
                }
                Some(RunStatus::Waiting) => {
                    eprint!("answer> ");
                    let Some(answer) = lines.recv().await else {
                        return Err(fail(exit::WAITING, "the run waits for an answer"));
                    };
                    let resumed = api
                        .json(Method::POST, &format!("/api/v1/runs/{run}/resume"), &json!({ "answer": answer }))
                        .await?;
                    run = resumed["id"].as_str().unwrap_or(&run).to_owned();
                }
                _ => {}
            }
        }
    }
    if failed { Err(fail(exit::RUN_FAILED, "a run failed")) } else { Ok(()) }
}

pub async fn files(command: FilesCommand, as_json: bool) -> Result<(), Failure> {
    let api = Api::connect().await?;
    match command {
        FilesCommand::Ls { project, folder } => {
            let project = api.project(&project).await?;
            let listing = api
                .send(
                    api.request(Method::GET, &format!("/api/v1/projects/{project}/files"))
                        .query(&[("folder", folder.as_str())]),
                )
                .await?;
            if as_json {
                print_json(&listing);
                return Ok(());
            }
            for sub in listing["folders"].as_array().into_iter().flatten() {
                println!("{}/", sub.as_str().unwrap_or(""));
            }
            for file in listing["files"].as_array().into_iter().flatten() {
                println!("{}  {} bytes  v{}", file["path"].as_str().unwrap_or(""), file["size"], file["version"]);
            }
        }
        FilesCommand::Put { project, local, remote } => {
            let project = api.project(&project).await?;
            let bytes = std::fs::read(&local)
                .map_err(|e| fail(exit::INVALID, format!("cannot read {}: {e}", local.display())))?;
            let name = remote
                .unwrap_or_else(|| local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            let request = api
                .request(Method::PUT, &format!("/api/v1/projects/{project}/files/content"))
                .query(&[("path", name.as_str())])
                .header("content-type", "application/octet-stream")
                .body(bytes);
            let saved = api.send(request).await?;
            if as_json {
                print_json(&saved);
            } else {
                println!("{} v{}", saved["path"].as_str().unwrap_or(""), saved["version"]);
            }
        }
        FilesCommand::Get { project, remote, local } => {
            let project = api.project(&project).await?;
            let versions = api
                .send(
                    api.request(Method::GET, &format!("/api/v1/projects/{project}/files/versions"))
                        .query(&[("path", remote.as_str())]),
                )
                .await?;
            let id = versions[0]["id"].as_str().ok_or_else(|| fail(exit::NOT_FOUND, format!("no file `{remote}`")))?;
            let response = api
                .request(Method::GET, &format!("/api/v1/projects/{project}/files/{id}/content"))
                .send()
                .await
                .map_err(|e| fail(exit::UNAVAILABLE, e.to_string()))?;
            if !response.status().is_success() {
                let status = response.status();
                return Err(api::refusal(status, &response.text().await.unwrap_or_default()));
            }
            let bytes = response.bytes().await.map_err(|e| fail(exit::UNAVAILABLE, e.to_string()))?;
            let target = local.unwrap_or_else(|| PathBuf::from(remote.rsplit('/').next().unwrap_or("download")));
            if target.as_os_str() == "-" {
                std::io::stdout().write_all(&bytes).map_err(|e| fail(exit::INVALID, e.to_string()))?;
            } else {
                std::fs::write(&target, &bytes)
                    .map_err(|e| fail(exit::INVALID, format!("cannot write {}: {e}", target.display())))?;
                eprintln!("Wrote {} ({} bytes).", target.display(), bytes.len());
            }
        }
    }
    Ok(())
}

pub async fn keys(command: KeysCommand, as_json: bool) -> Result<(), Failure> {
    let api = Api::connect().await?;
    let shown = match command {
        KeysCommand::Ls => {
            let keys = api.get("/api/v1/api-keys").await?;
            if !as_json {
                for key in keys.as_array().into_iter().flatten() {
                    let state = if key["revoked_at"].is_string() { "revoked" } else { "active" };
                    println!(
                        "{}  {:<7}  {:<7}  {}",
                        key["id"].as_str().unwrap_or(""),
                        key["role"].as_str().unwrap_or(""),
                        state,
                        key["name"].as_str().unwrap_or("")
                    );
                }
                return Ok(());
            }
            keys
        }
        KeysCommand::Create { project, role, name } => {
            let project = api.project(&project).await?;
            let made = api
                .json(Method::POST, "/api/v1/api-keys", &json!({ "project_id": project, "role": role, "name": name }))
                .await?;
            if !as_json {
                println!("{}", made["token"].as_str().unwrap_or(""));
                eprintln!("Key {} made; the secret above is shown only now.", made["id"].as_str().unwrap_or(""));
                return Ok(());
            }
            made
        }
        KeysCommand::Revoke { key } => {
            let revoked = api.send(api.request(Method::DELETE, &format!("/api/v1/api-keys/{key}"))).await?;
            if !as_json {
                eprintln!("Revoked {key}.");
                return Ok(());
            }
            revoked
        }
    };
    print_json(&shown);
    Ok(())
}

/// Prints a failure and gives its exit code.
fn report(result: Result<(), Failure>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("cairn: {}", failure.message);
            failure.code
        }
    }
}
