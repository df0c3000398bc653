//! The CLI client in the `cairn` binary against a real server (all-in-one,
//! with sandboxes and the scripted model): sign-in saved privately, projects,
//! files, a task run with its answer, a chat whose approval is answered
//! inline, keys, and an exit code for each kind of failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use cairn_testkit::{Reply, ScriptedLlm, TempDir};
use common::{Ada, Running, cairn, scripted_provider};
use serde_json::Value;

/// The client as a user runs it, with its own config folder.
fn client(dir: &Path, config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command: Command = cairn(dir);
    command
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run the client");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// Several threads: the client runs blocking while the scripted model,
// served from this test's runtime, answers the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_use_cairn_from_the_terminal() {
    let dir = TempDir::new("cli-client");
    let config = dir.path.join("config");
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(Reply::Text("```python\nprint(6 * 7)\nfinal_answer('It is 42.')\n```".into()));
    let mut envs = vec![
        ("CAIRN__LLM__PROVIDERS", scripted_provider(&llm.url, "")),
        ("CAIRN__SANDBOX__POOL_SIZE", "0".to_owned()),
        ("CAIRN__AGENT__REQUIRE_APPROVAL", "[\"save_artifact\"]".to_owned()),
    ];
    if let Ok(python) = std::env::var("CAIRN_SANDBOX_PYTHON") {
        envs.push(("CAIRN__SANDBOX__PYTHON", python));
    }
    let mut server = Running::start(&dir.path, &[], &envs);
    server.wait_ready().await;
    let ada = Ada::signs_up(&server).await;
    let (project, _) = ada.project_with_thread().await;
    let base = server.base.clone();
    let run = |args: &[&str], stdin: &str| client(&dir.path, &config, args, stdin);

    // Not signed in yet; a wrong password; then in, saved for the user alone.
    let out = run(&["projects"], "");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cairn login"));
    let out = run(&["login", "--server", &base, "--email", "ada@example.com"], "not her password\n");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = run(&["login", "--server", &base, "--email", "ada@example.com"], "correct horse battery staple\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let saved = config.join("cairn/credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
    let stored = std::fs::read_to_string(&saved).unwrap();
    assert!(stored.contains("refresh_token") && !stored.contains("correct horse"), "{stored}");

    let out = run(&["projects", "--json"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let projects: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(projects[0]["id"], project.as_str());
    assert!(text(&run(&["projects"], "").stdout).contains(" P"));

    // Files: up, listed, down; by the project's name.
    let local = dir.path.join("notes.txt");
    std::fs::write(&local, "from the terminal").unwrap();
    let out = run(&["files", "put", "p", local.to_str().unwrap(), "notes/today.txt"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&run(&["files", "ls", "P", "notes"], "").stdout).contains("notes/today.txt"));
    assert_eq!(text(&run(&["files", "get", "P", "notes/today.txt", "-"], "").stdout), "from the terminal");
    assert_eq!(run(&["files", "get", "P", "notes/none.txt", "-"], "").status.code(), Some(4));

    // A task, waited for: the answer, or the whole answer as JSON.
    let out = run(&["run", "P", "What is 6 times 7?", "--wait"], "");
    assert_eq!((out.status.code(), text(&out.stdout).trim()), (Some(0), "It is 42."), "{}", text(&out.stderr));
    let out = run(&["run", &project, "Again?", "--wait", "--json"], "");
    let answered: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (answered["answer"].as_str(), answered["run"]["status"].as_str()),
        (Some("It is 42."), Some("succeeded"))
    );
    llm.push(Reply::Status { status: 400, retry_after: None });
    let out = run(&["run", "P", "Break.", "--wait"], "");
    assert_eq!(out.status.code(), Some(1), "a failed run: {}", text(&out.stderr));
    assert_eq!(run(&["run", "Nowhere", "Hi", "--wait"], "").status.code(), Some(4));

    // A chat whose run asks for an approval: the next line answers it.
    llm.push(Reply::Text("```python\nopen('r.txt', 'w').write('r')\nsave_artifact('r.txt')\n```".into()));
    llm.push(Reply::Text(
        "```python\nopen('r.txt', 'w').write('r')\nsave_artifact('r.txt')\nfinal_answer('Saved.')\n```".into(),
    ));
    let out = run(&["chat", "P"], "Save a report.\nyes\n");
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}\n{}", text(&out.stderr));
    assert!(shown.contains("[the agent asks] May the agent run save_artifact"), "{shown}");
    assert!(shown.contains("[saved r.txt (version 1)]") && shown.contains("Saved."), "{shown}");

    // Keys: made (the secret printed once), used to sign in, revoked.
    let out = run(&["keys", "create", "P", "--name", "ci", "--role", "editor"], "");
    let key = text(&out.stdout).trim().to_owned();
    assert!(key.starts_with("cairn_k_"), "{key}");
    let listed: Value = serde_json::from_slice(&run(&["keys", "ls", "--json"], "").stdout).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let keyed = dir.path.join("keyed");
    let out = client(&dir.path, &keyed, &["login", "--server", &base, "--api-key"], &format!("{key}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = client(&dir.path, &keyed, &["run", "P", "With a key.", "--wait"], "");
    assert_eq!(text(&out.stdout).trim(), "It is 42.");
    assert_eq!(run(&["keys", "revoke", &id], "").status.code(), Some(0));
    let out = client(&dir.path, &keyed, &["projects"], "");
    assert_eq!(out.status.code(), Some(3), "a revoked key: {}", text(&out.stderr));

    // Signed out; a server that does not answer.
    assert_eq!(run(&["logout"], "").status.code(), Some(0));
    assert_eq!(run(&["projects"], "").status.code(), Some(3));
    let gone = format!("http://127.0.0.1:{}", common::free_port());
    let out = run(&["login", "--server", &gone, "--email", "ada@example.com"], "x\n");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    server.terminate();
}
