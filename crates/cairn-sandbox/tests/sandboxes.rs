//! The local backend of the `Sandboxes` interface: lifecycle, workspace
//! files (and the links planted in them), the tool bridge, caps, idle
//! timers, restarts and policy-granted egress — with kernels under
//! bubblewrap and in containers (Podman's Docker-compatible engine here),
//! the same tests for both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use async_trait::async_trait;
use cairn_core::sandbox::{
    EntryKind, ExecHandler, Execution, NewSandbox, Output, SandboxError, SandboxPolicy, SandboxState, Sandboxes,
};
use cairn_core::{SandboxId, UserId};
use cairn_sandbox::{ContainerConfig, Egress, EgressRules, LocalConfig, LocalSandboxes};
use cairn_testkit::TempDir;
use serde_json::{Value, json};

mod common;

use common::{BUBBLEWRAP, Backend, CONTAINER, IMAGE_PYTHON, sandbox_python};

cairn_testkit::on_backends!(on_bubblewrap: BUBBLEWRAP, on_container: CONTAINER;
    a_sandbox_lives_pauses_resumes_and_is_destroyed,
    workspace_files_can_be_written_listed_read_and_deleted,
    links_planted_in_the_workspace_never_lead_the_host_outside,
    uploads_respect_the_disk_limit_and_leave_nothing_when_refused,
    sandboxed_code_calls_host_tools_through_the_bridge,
    running_code_can_be_interrupted_and_the_sandbox_destroyed_mid_run,
    caps_pause_the_least_recently_used_sandbox_or_refuse,
    a_pause_if_idle_leaves_a_busy_sandbox_running,
    idle_sandboxes_are_paused_then_reclaimed,
    sandboxes_survive_a_restart_of_the_host_process_paused,
    policies_are_checked_against_the_host,
    network_policy_gives_proxied_egress_but_never_the_host,
    a_paused_sandbox_tells_its_next_execution_that_variables_are_gone,
    workspaces_move_between_hosts_through_their_snapshots,
);

async fn service(backend: Backend, dir: &TempDir, tweak: impl FnOnce(&mut LocalConfig)) -> LocalSandboxes {
    let mut config = LocalConfig::new(dir.path.join("sandboxes"));
    config.pool_size = 1;
    if backend == Backend::Container {
        let (engine, image) = cairn_testkit::container_engine();
        config.python = Some(sandbox_python());
        config.container = Some(ContainerConfig { engine, image, python: IMAGE_PYTHON.into() });
    }
    tweak(&mut config);
    LocalSandboxes::start(config).await.expect("the sandboxes start (bubblewrap and python3, or the container engine)")
}

fn new(owner: UserId) -> NewSandbox {
    NewSandbox::for_owner(owner)
}

fn python(code: &str) -> Execution {
    Execution::Python { code: code.to_owned() }
}

fn shell(command: &str) -> Execution {
    Execution::Shell { command: command.to_owned() }
}

async fn run(sandboxes: &LocalSandboxes, id: SandboxId, execution: Execution) -> cairn_core::sandbox::ExecOutcome {
    sandboxes.execute(id, execution, &mut |_: &Output| {}).await.unwrap()
}

async fn a_sandbox_lives_pauses_resumes_and_is_destroyed(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |_| {}).await;
    let owner = UserId::new();
    let info = sandboxes.create(new(owner)).await.unwrap();
    assert_eq!((info.state, info.owner, info.busy, info.executions), (SandboxState::Running, owner, false, 0));

    let mut seen = Vec::new();
    let first = sandboxes
        .execute(info.id, python("x = 20\nprint('hi')\nx + 1"), &mut |o: &Output| seen.push(o.clone()))
        .await
        .unwrap();
    assert_eq!(first.result_text(), Some("21"));
    assert_eq!(seen.len(), first.outputs.len(), "each output reached the handler as it came");
    run(&sandboxes, info.id, shell("echo data > notes.txt")).await;

    let running = sandboxes.inspect(info.id).await.unwrap();
    assert_eq!(running.executions, 2);
    assert!(running.disk_bytes > 0, "the workspace holds a file: {running:?}");
    if !matches!(sandboxes.cgroups(), cairn_sandbox::CgroupSupport::None(_)) {
        assert!(running.memory_bytes.unwrap() > 1 << 20, "{running:?}");
        assert!(running.processes.unwrap() >= 1, "{running:?}");
    }

    let paused = sandboxes.pause(info.id).await.unwrap();
    assert_eq!((paused.state, paused.memory_bytes), (SandboxState::Paused, None));
    assert_eq!(sandboxes.read_file(info.id, "notes.txt", 1024).await.unwrap(), b"data\n", "files stay while paused");

    // The next execution resumes it: files are there, variables are not.
    let after = run(&sandboxes, info.id, python("import os\n(os.path.exists('notes.txt'), 'x' in globals())")).await;
    assert_eq!(after.result_text(), Some("(True, False)"));
    assert_eq!(sandboxes.inspect(info.id).await.unwrap().state, SandboxState::Running);

    assert_eq!(sandboxes.list(Some(owner)).await.unwrap().len(), 1);
    assert!(sandboxes.list(Some(UserId::new())).await.unwrap().is_empty());

    sandboxes.destroy(info.id).await.unwrap();
    assert_eq!(sandboxes.inspect(info.id).await.unwrap_err(), SandboxError::NotFound);
    assert_eq!(
        sandboxes.execute(info.id, python("1"), &mut |_: &Output| {}).await.unwrap_err(),
        SandboxError::NotFound
    );
    assert!(!cairn_sandbox::workspace_dir(&dir.path.join("sandboxes"), info.id).exists(), "the workspace is gone");
}

async fn workspace_files_can_be_written_listed_read_and_deleted(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |c| c.pool_size = 0).await;
    let id = sandboxes.create(new(UserId::new())).await.unwrap().id;

    let written = sandboxes.write_file(id, "/workspace/reports/q1/summary.md", b"# Q1\n".to_vec()).await.unwrap();
    assert_eq!((written.path.as_str(), written.kind, written.size), ("reports/q1/summary.md", EntryKind::File, 5));
    let seen = run(&sandboxes, id, python("open('reports/q1/summary.md').read()")).await;
    assert_eq!(seen.result_text(), Some("'# Q1\\n'"), "the code sees what the host wrote");
    run(&sandboxes, id, python("open('reports/q1/summary.md', 'a').write('more\\n')")).await;
    assert_eq!(sandboxes.read_file(id, "reports/q1/summary.md", 1024).await.unwrap(), b"# Q1\nmore\n");

    let top = sandboxes.list_files(id, "", false).await.unwrap();
    assert_eq!(top.iter().map(|e| (e.path.as_str(), e.kind)).collect::<Vec<_>>(), [("reports", EntryKind::Directory)]);
    let all = sandboxes.list_files(id, "reports", true).await.unwrap();
    let paths: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["reports/q1", "reports/q1/summary.md"]);

    assert!(matches!(sandboxes.read_file(id, "reports/q1/summary.md", 4).await, Err(SandboxError::TooLarge(_))));
    assert!(matches!(sandboxes.read_file(id, "missing.txt", 10).await, Err(SandboxError::NoSuchPath(_))));
    assert!(matches!(sandboxes.read_file(id, "reports", 10).await, Err(SandboxError::InvalidPath(_))));
    for bad in ["../escape", "/etc/passwd", "a/../../b"] {
        assert!(
            matches!(sandboxes.write_file(id, bad, b"x".to_vec()).await, Err(SandboxError::InvalidPath(_))),
            "{bad}"
        );
    }

    sandboxes.delete_path(id, "reports").await.unwrap();
    assert!(sandboxes.list_files(id, "", true).await.unwrap().is_empty());
    assert!(matches!(sandboxes.delete_path(id, "reports").await, Err(SandboxError::NoSuchPath(_))));
}

async fn links_planted_in_the_workspace_never_lead_the_host_outside(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |c| c.pool_size = 0).await;
    let id = sandboxes.create(new(UserId::new())).await.unwrap().id;
    let outside = dir.path.join("host-secret.txt");
    std::fs::write(&outside, "host only").unwrap();
    let host_dir = dir.path.join("host-dir");
    std::fs::create_dir(&host_dir).unwrap();
    // Inside the sandbox these point nowhere useful; on the host they would
    // point at the host's files if the host followed them.
    let plant = format!(
        "ln -s {} leak && ln -s {} hostdir && ln -s /proc/self/root proc-root && mkfifo pipe && echo planted",
        outside.display(),
        host_dir.display()
    );
    assert_eq!(run(&sandboxes, id, shell(&plant)).await.stream("stdout"), "planted\n");

    for path in ["leak", "hostdir/anything", "proc-root/etc/passwd"] {
        let read = sandboxes.read_file(id, path, 1 << 20).await;
        assert!(matches!(read, Err(SandboxError::InvalidPath(_))), "{path}: {read:?}");
    }
    let write = sandboxes.write_file(id, "hostdir/planted.txt", b"x".to_vec()).await;
    assert!(matches!(write, Err(SandboxError::InvalidPath(_))), "{write:?}");
    assert!(!host_dir.join("planted.txt").exists(), "nothing was written through the link");
    let listing = sandboxes.list_files(id, "hostdir", true).await;
    assert!(matches!(listing, Err(SandboxError::InvalidPath(_))), "{listing:?}");
    let fifo = tokio::time::timeout(Duration::from_secs(5), sandboxes.read_file(id, "pipe", 10)).await;
    assert!(matches!(fifo, Ok(Err(SandboxError::InvalidPath(_)))), "a FIFO is refused, not waited on: {fifo:?}");

    // Writing over a link replaces the link; the file it pointed to is untouched.
    let replaced = sandboxes.write_file(id, "leak", b"mine".to_vec()).await.unwrap();
    assert_eq!(replaced.kind, EntryKind::File);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "host only");
    // Deleting a link to a folder removes the link only.
    sandboxes.delete_path(id, "hostdir").await.unwrap();
    assert!(host_dir.exists());
    let all = sandboxes.list_files(id, "", true).await.unwrap();
    let kinds: Vec<(&str, EntryKind)> = all.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        [("leak", EntryKind::File), ("pipe", EntryKind::Other), ("proc-root", EntryKind::Symlink)],
        "links are listed, never followed"
    );
}

async fn uploads_respect_the_disk_limit_and_leave_nothing_when_refused(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |c| {
        c.pool_size = 0;
        c.defaults.disk_bytes = 1 << 20;
    })
    .await;
    let id = sandboxes.create(new(UserId::new())).await.unwrap().id;
    sandboxes.write_file(id, "small.bin", vec![7; 300 << 10]).await.unwrap();
    let big = sandboxes.write_file(id, "big.bin", vec![7; 900 << 10]).await;
    assert!(matches!(&big, Err(SandboxError::WorkspaceFull(m)) if m.contains("1 MiB")), "{big:?}");
    let names: Vec<String> = sandboxes.list_files(id, "", true).await.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(names, ["small.bin"], "no partial or temporary file is left");
    // Replacing a file counts only the difference.
    sandboxes.write_file(id, "small.bin", vec![8; 700 << 10]).await.unwrap();

    // A broken upload leaves the old file as it was.
    let broken = futures::stream::iter([Ok(bytes::Bytes::from_static(b"partial")), Err(std::io::Error::other("cut"))]);
    assert!(sandboxes.upload(id, "small.bin", Box::pin(broken)).await.is_err());
    assert_eq!(sandboxes.read_file(id, "small.bin", 1 << 20).await.unwrap().len(), 700 << 10);
}

/// A host with two tools: `add` and `fail`.
struct Tools {
    calls: Vec<String>,
}

#[async_trait]
impl ExecHandler for Tools {
    fn output(&mut self, _: &Output) {}

    async fn tool_call(&mut self, name: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        self.calls.push(name.to_owned());
        match name {
            "add" => {
                Ok(json!(args[0].as_i64().unwrap() + args[1].as_i64().unwrap() + kwargs["extra"].as_i64().unwrap_or(0)))
            }
            "slow" => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Ok(json!("done"))
            }
            _ => Err(format!("the tool {name} broke")),
        }
    }
}

async fn sandboxed_code_calls_host_tools_through_the_bridge(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |c| {
        c.pool_size = 0;
        c.defaults.wall_time = Duration::from_secs(1);
    })
    .await;
    let id = sandboxes.create(new(UserId::new())).await.unwrap().id;
    let mut tools = Tools { calls: Vec::new() };
    let added = sandboxes.execute(id, python("call_tool('add', 2, 3, extra=10) * 2"), &mut tools).await.unwrap();
    assert_eq!(added.result_text(), Some("30"));
    let failed = sandboxes.execute(id, python("call_tool('fail')"), &mut tools).await.unwrap();
    assert_eq!(failed.error(), Some(("RuntimeError", "tool fail failed: the tool fail broke")));
    // Time in a host tool does not count against the code's wall time.
    let slow = sandboxes.execute(id, python("call_tool('slow')"), &mut tools).await.unwrap();
    assert_eq!((slow.result_text(), slow.limit.as_deref()), (Some("'done'"), None));
    assert_eq!(tools.calls, ["add", "fail", "slow"]);

    let none = run(&sandboxes, id, python("call_tool('add', 1, 2)")).await;
    assert_eq!(none.error().map(|e| e.0), Some("RuntimeError"), "a handler without tools refuses: {none:?}");
}

async fn running_code_can_be_interrupted_and_the_sandbox_destroyed_mid_run(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |c| c.pool_size = 0).await;
    let id = sandboxes.create(new(UserId::new())).await.unwrap().id;
    run(&sandboxes, id, python("kept = 1")).await;
    let running = {
        let sandboxes = sandboxes.clone();
        tokio::spawn(async move { run(&sandboxes, id, python("import time\ntime.sleep(60)")).await })
    };
    while !sandboxes.inspect(id).await.unwrap().busy {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    sandboxes.interrupt(id).await.unwrap();
    let interrupted = tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap();
    assert_eq!(interrupted.error().map(|e| e.0), Some("KeyboardInterrupt"));
    assert_eq!(run(&sandboxes, id, python("kept")).await.result_text(), Some("1"), "state survives an interrupt");

    let running = {
        let sandboxes = sandboxes.clone();
        tokio::spawn(async move { run(&sandboxes, id, shell("sleep 60")).await })
    };
    while !sandboxes.inspect(id).await.unwrap().busy {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sandboxes.destroy(id).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap();
    assert_eq!(ended.limit.as_deref(), Some("the sandbox was stopped while the code ran"));
}

async fn caps_pause_the_least_recently_used_sandbox_or_refuse(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |c| {
        c.pool_size = 0;
        c.max_running_per_user = 2;
        c.max_running = 3;
    })
    .await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let a1 = sandboxes.create(new(alice)).await.unwrap().id;
    let a2 = sandboxes.create(new(alice)).await.unwrap().id;
    run(&sandboxes, a1, python("1")).await; // a2 is now the least recently used
    let a3 = sandboxes.create(new(alice)).await.unwrap().id;
    let state = |id| {
        let sandboxes = sandboxes.clone();
        async move { sandboxes.inspect(id).await.unwrap().state }
    };
    assert_eq!(
        (state(a1).await, state(a2).await, state(a3).await),
        (SandboxState::Running, SandboxState::Paused, SandboxState::Running)
    );

    // The host cap: Bob's sandbox takes the room of Alice's least recent one.
    let b1 = sandboxes.create(new(bob)).await.unwrap().id;
    run(&sandboxes, b1, python("1")).await;
    let b2 = sandboxes.create(new(bob)).await.unwrap().id;
    let running: Vec<SandboxId> = sandboxes
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.state == SandboxState::Running)
        .map(|s| s.id)
        .collect();
    assert_eq!(running.len(), 3, "never more than the host cap");
    assert!(running.contains(&b1) && running.contains(&b2));

    // When everything in scope is busy, creating is refused with a reason.
    let busy: Vec<_> = [b1, b2]
        .into_iter()
        .map(|id| {
            let sandboxes = sandboxes.clone();
            tokio::spawn(async move { run(&sandboxes, id, python("import time\ntime.sleep(3)")).await })
        })
        .collect();
    while !(sandboxes.inspect(b1).await.unwrap().busy && sandboxes.inspect(b2).await.unwrap().busy) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = sandboxes.create(new(bob)).await.unwrap_err();
    assert!(matches!(&refused, SandboxError::CapReached(m) if m.contains("2 sandboxes running")), "{refused:?}");
    assert_eq!(refused.code(), "sandbox_cap_reached");
    for task in busy {
        task.await.unwrap();
    }
    assert_eq!(sandboxes.list(Some(bob)).await.unwrap().len(), 2, "the refused sandbox left nothing behind");
}

/// Pausing to make room never cuts an execution short: a busy sandbox is
/// left running, an idle one pauses, and an execution that arrives after
/// the pause wakes it with its files.
async fn a_pause_if_idle_leaves_a_busy_sandbox_running(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |c| c.pool_size = 0).await;
    let id = sandboxes.create(new(UserId::new())).await.unwrap().id;
    let working = {
        let sandboxes = sandboxes.clone();
        tokio::spawn(async move {
            run(&sandboxes, id, python("import time\ntime.sleep(1)\nopen('done', 'w').write('y')\n'finished'")).await
        })
    };
    while !sandboxes.inspect(id).await.unwrap().busy {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sandboxes.pause_if_idle(id).await.unwrap(), None, "busy: left running");
    let done = working.await.unwrap();
    assert_eq!(done.result_text(), Some("'finished'"), "the execution ran to its end: {done:?}");
    let paused = sandboxes.pause_if_idle(id).await.unwrap().expect("idle now: paused");
    assert_eq!(paused.state, SandboxState::Paused);
    let woke = run(&sandboxes, id, python("open('done').read()")).await;
    assert_eq!(woke.result_text(), Some("'y'"));
    assert!(matches!(sandboxes.pause_if_idle(SandboxId::new()).await, Err(SandboxError::NotFound)));
}

async fn idle_sandboxes_are_paused_then_reclaimed(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |c| {
        c.pool_size = 0;
        c.idle_pause = Duration::from_millis(300);
        c.idle_reclaim = Duration::from_millis(1500);
    })
    .await;
    let id = sandboxes.create(new(UserId::new())).await.unwrap().id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sandboxes.inspect(id).await.unwrap().state == SandboxState::Running {
        assert!(tokio::time::Instant::now() < deadline, "an idle sandbox is paused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while sandboxes.inspect(id).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "a long-paused sandbox is reclaimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!dir.path.join("sandboxes/instances").join(id.to_string()).exists());
}

async fn sandboxes_survive_a_restart_of_the_host_process_paused(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let owner = UserId::new();
    let id = {
        let sandboxes = service(backend, &dir, |c| c.pool_size = 0).await;
        let id = sandboxes.create(new(owner)).await.unwrap().id;
        run(&sandboxes, id, python("open('result.csv', 'w').write('a,b\\n')")).await;
        sandboxes.shutdown().await;
        id
    };
    let sandboxes = service(backend, &dir, |c| c.pool_size = 0).await;
    let info = sandboxes.inspect(id).await.unwrap();
    assert_eq!((info.state, info.owner, info.executions), (SandboxState::Paused, owner, 1));
    let seen = run(&sandboxes, id, python("open('result.csv').read()")).await;
    assert_eq!(seen.result_text(), Some("'a,b\\n'"));
}

async fn policies_are_checked_against_the_host(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |c| c.pool_size = 0).await;
    let mut request = new(UserId::new());
    request.policy.memory_bytes = Some(64 << 30);
    let too_much = sandboxes.create(request.clone()).await.unwrap_err();
    assert!(matches!(&too_much, SandboxError::InvalidPolicy(m) if m.contains("maximum")), "{too_much:?}");
    request.policy = SandboxPolicy { network: true, ..SandboxPolicy::default() };
    let no_network = sandboxes.create(request.clone()).await.unwrap_err();
    assert!(matches!(no_network, SandboxError::InvalidPolicy(_)), "this host gives no network");
    request.policy =
        SandboxPolicy { memory_bytes: Some(128 << 20), wall_time_secs: Some(1), ..SandboxPolicy::default() };
    let info = sandboxes.create(request).await.unwrap();
    assert_eq!((info.limits.memory_bytes, info.limits.wall_time_secs), (128 << 20, 1));
    let slept = run(&sandboxes, info.id, python("import time\ntime.sleep(5)")).await;
    assert_eq!(slept.limit.as_deref(), Some("wall time limit of 1 s exceeded; the execution was interrupted"));
    assert!(sandboxes.list(None).await.unwrap().len() == 1, "refused policies created nothing");
}

/// A tiny HTTP server on the host's loopback: what egress must not reach,
/// unless an operator allowed exactly it.
async fn http_server(body: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buffer = vec![0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let reply =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    address
}

async fn network_policy_gives_proxied_egress_but_never_the_host(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let allowed = http_server("mirror says hi").await;
    let forbidden = http_server("host secret").await;
    let rules = EgressRules { allow: vec![allowed], ..EgressRules::default() };
    let egress = Egress::start(&dir.path.join("egress"), rules).unwrap();
    let sandboxes = service(backend, &dir, |c| {
        c.pool_size = 0;
        c.egress = Some(egress);
    })
    .await;
    let mut request = new(UserId::new());
    request.policy.network = true;
    let id = sandboxes.create(request).await.unwrap().id;

    // urllib (standard library) follows HTTP_PROXY like requests and pip do.
    let get = |url: String| {
        let sandboxes = sandboxes.clone();
        async move {
            let code = format!(
                "import urllib.request, urllib.error\ntry:\n    r = urllib.request.urlopen({url:?}, timeout=10)\n    \
                 out = (r.status, r.read().decode())\nexcept urllib.error.HTTPError as e:\n    out = (e.code, e.read().decode().strip())\n\
                 except Exception as e:\n    out = ('failed', type(e).__name__)\nout"
            );
            run(&sandboxes, id, python(&code)).await.result_text().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(get(format!("http://{allowed}/")).await, "(200, 'mirror says hi')", "an allowed destination answers");
    let refused = get(format!("http://{forbidden}/")).await;
    assert!(refused.starts_with("(403, 'cairn egress:"), "the host's loopback stays unreachable: {refused}");
    let private = get("http://10.0.0.1/".into()).await;
    assert!(private.contains("not a public address"), "{private}");
    let metadata = get("http://169.254.169.254/latest/meta-data/".into()).await;
    assert!(metadata.contains("not a public address"), "{metadata}");
    let port = get("http://1.1.1.1:5432/".into()).await;
    assert!(port.contains("port 5432 is not allowed"), "{port}");

    // HTTPS goes through CONNECT tunnels, vetted the same way.
    let tunnel = |target: std::net::SocketAddr| {
        format!(
            "import socket\ns = socket.create_connection(('127.0.0.1', 3128), timeout=10)\n\
             s.sendall(b'CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n')\n\
             head = s.recv(4096)\nif head.startswith(b'HTTP/1.1 200'):\n    s.sendall(b'GET / HTTP/1.1\\r\\n\\r\\n')\n    \
             import time; time.sleep(0.3); head += s.recv(4096)\nhead.decode()"
        )
    };
    let through = run(&sandboxes, id, python(&tunnel(allowed))).await;
    assert!(through.result_text().unwrap().contains("mirror says hi"), "{through:?}");
    let blocked = run(&sandboxes, id, python(&tunnel(forbidden))).await;
    let blocked = blocked.result_text().unwrap();
    assert!(blocked.starts_with("'HTTP/1.1 403") && !blocked.contains("host secret"), "{blocked}");

    // Bypassing the proxy finds no network at all.
    let direct = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {}), timeout=3)\n    out = 'connected'\n\
         except OSError as e:\n    out = type(e).__name__\nout",
        forbidden.port()
    );
    assert_eq!(run(&sandboxes, id, python(&direct)).await.result_text(), Some("'ConnectionRefusedError'"));

    // A sandbox without the network policy has no proxy to use.
    let offline = sandboxes.create(new(UserId::new())).await.unwrap().id;
    let code = format!(
        "import urllib.request\ntry:\n    urllib.request.urlopen('http://{allowed}/', timeout=3)\n    out = 'reached'\nexcept Exception as e:\n    out = 'failed'\nout"
    );
    assert_eq!(run(&sandboxes, offline, python(&code)).await.result_text(), Some("'failed'"));
}

async fn a_paused_sandbox_tells_its_next_execution_that_variables_are_gone(backend: Backend) {
    let dir = TempDir::new("sandboxes");
    let sandboxes = service(backend, &dir, |_| {}).await;
    let info = sandboxes.create(new(UserId::new())).await.unwrap();
    assert_eq!(run(&sandboxes, info.id, python("x = 1")).await.notice, None);
    sandboxes.pause(info.id).await.unwrap();
    let after = run(&sandboxes, info.id, python("'x' in globals()")).await;
    assert_eq!(after.result_text(), Some("False"));
    assert!(after.notice.as_deref().unwrap_or_default().contains("variables and imports are gone"), "{after:?}");
    assert_eq!(run(&sandboxes, info.id, python("1")).await.notice, None, "said once");
}

/// Two hosts sharing an object store: a workspace snapshotted on one (when
/// its sandbox pauses) is restored into the sandbox of the same id on the
/// other, folders and all; a snapshot holding a path that climbs out of the
/// workspace is refused whole.
async fn workspaces_move_between_hosts_through_their_snapshots(backend: Backend) {
    use std::sync::Arc;
    let (objects, one_dir, two_dir) = (TempDir::new("objects"), TempDir::new("host-a"), TempDir::new("host-b"));
    let store: Arc<dyn object_store::ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&objects.path).unwrap());
    let snapshots = cairn_sandbox::Snapshots::new(store.clone(), "sandbox-snapshots");
    let one = service(backend, &one_dir, |c| c.snapshots = Some(snapshots.clone())).await;
    let two = service(backend, &two_dir, |c| c.snapshots = Some(snapshots.clone())).await;
    let owner = UserId::new();
    let info = one.create(new(owner)).await.unwrap();
    let work = "import os\nos.makedirs('out/figs', exist_ok=True)\nos.makedirs('empty', exist_ok=True)\n\
                open('out/table.csv', 'w').write('a,b\\n' * 1000)\nopen('out/figs/raw.bin', 'wb').write(bytes(range(256)))";
    run(&one, info.id, python(work)).await;
    one.pause(info.id).await.unwrap();

    let moved = two.create(NewSandbox { id: Some(info.id), restore: true, ..new(owner) }).await.unwrap();
    assert_eq!(moved.id, info.id, "the sandbox keeps its id on the new host");
    let check = "import os\nprint(len(open('out/table.csv').read()), len(open('out/figs/raw.bin','rb').read()), \
                 os.path.isdir('empty'))";
    let outcome = run(&two, info.id, python(check)).await;
    assert_eq!(outcome.stream("stdout"), "4000 256 True\n", "{outcome:?}");
    assert!(outcome.notice.as_deref().unwrap_or_default().contains("restored from the last snapshot"), "{outcome:?}");
    // Asking again for the same id answers the sandbox made.
    assert_eq!(two.create(NewSandbox { id: Some(info.id), restore: true, ..new(owner) }).await.unwrap().id, info.id);

    // A hostile snapshot: one entry climbs out of the workspace.
    let hostile = SandboxId::new();
    let mut zip = async_zip::tokio::write::ZipFileWriter::with_tokio(Vec::new());
    for name in ["fine.txt", "../outside.txt"] {
        let entry = async_zip::ZipEntryBuilder::new(name.to_owned().into(), async_zip::Compression::Stored);
        zip.write_entry_whole(entry, b"x").await.unwrap();
    }
    let bytes = zip.close().await.unwrap().into_inner();
    let key = object_store::path::Path::from(format!("sandbox-snapshots/{hostile}.zip"));
    object_store::ObjectStoreExt::put(&*store, &key, bytes.into()).await.unwrap();
    let refused = two.create(NewSandbox { id: Some(hostile), restore: true, ..new(owner) }).await;
    assert!(
        matches!(refused, Err(SandboxError::Internal(ref why)) if why.contains("outside the workspace")),
        "{refused:?}"
    );
    assert!(matches!(two.inspect(hostile).await, Err(SandboxError::NotFound)), "nothing is left of it");

    // Destroying the sandbox forgets its snapshot.
    two.destroy(info.id).await.unwrap();
    let key = object_store::path::Path::from(format!("sandbox-snapshots/{}.zip", info.id));
    assert!(object_store::ObjectStoreExt::head(&*store, &key).await.is_err());
}
