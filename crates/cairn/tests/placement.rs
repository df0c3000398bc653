//! Sandboxes over several sandbox hosts, as real processes: placement by
//! room, a sandbox moving when its host dies, the dead host deleting its
//! stale copy when it comes back, a member's cap on running sandboxes
//! held over all the hosts, a planned run's tasks over two workers and two
//! hosts, and a tool called through a gateway run on a host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::sandbox::{Execution, NewSandbox, Output, SandboxState, Sandboxes};
use cairn_core::store::Store;
use cairn_testkit::{TempDir, TestPostgres};

mod common;
use common::*;

const TOKEN: &str = "a-service-credential-of-enough-length-42";

/// A registered sandbox host on `port`, keeping its sandboxes in `dir` and
/// its snapshots in `objects`.
fn start_host(dir: &TempDir, port: u16, pg: &TestPostgres, objects: &TempDir) -> Running {
    let mut envs = vec![
        ("CAIRN__SERVER__BIND", format!("127.0.0.1:{port}")),
        ("CAIRN__SANDBOX__ADVERTISE_URL", format!("http://127.0.0.1:{port}")),
        ("CAIRN__SANDBOX__HOST_TOKEN", TOKEN.to_owned()),
        ("CAIRN__SANDBOX__POOL_SIZE", "0".into()),
        ("CAIRN__SANDBOX__HEARTBEAT_SECS", "1".into()),
        ("CAIRN__DATABASE__URL", pg.url.clone()),
        ("CAIRN__FILES__STORE_URL", format!("file://{}", objects.path.display())),
    ];
    if let Ok(python) = std::env::var("CAIRN_SANDBOX_PYTHON") {
        envs.push(("CAIRN__SANDBOX__PYTHON", python));
    }
    Running::start(&dir.path, &["--role", "sandbox-host"], &envs)
}

/// Waits until `hosts` hosts are registered; the store to read them with.
async fn registered(pg: &TestPostgres, hosts: usize) -> Arc<dyn Store> {
    let db = cairn_store::Database::open(&pg.url, &Default::default()).await.unwrap();
    let store: Arc<dyn Store> = db.store();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.sandbox_hosts().await.unwrap().len() < hosts {
        assert!(Instant::now() < deadline, "the hosts did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store
}

fn python(code: &str) -> Execution {
    Execution::Python { code: code.into() }
}

/// Two sandbox hosts register in the database; sandboxes go to the one with
/// room and every caller finds them; when a host is killed, its sandbox moves
/// to the other with its files (the kernel's variables are gone, and the
/// execution says so); a host that stops cleanly (drained) leaves the
/// registry, and its sandbox comes back on another host with its files.
#[tokio::test]
async fn sandboxes_spread_over_registered_hosts_and_move_when_one_dies() {
    let pg = TestPostgres::create().await;
    let (objects, dirs) = (TempDir::new("cli"), [TempDir::new("cli"), TempDir::new("cli")]);
    let ports = [free_port(), free_port()];
    let mut hosts = [start_host(&dirs[0], ports[0], &pg, &objects), start_host(&dirs[1], ports[1], &pg, &objects)];
    for host in &mut hosts {
        host.wait_ready().await;
    }
    let store = registered(&pg, 2).await;
    // Two workers' views of the cluster.
    let (one, two) = (
        cairn_sandbox::ClusterSandboxes::new(store.clone(), TOKEN, Duration::from_secs(3)),
        cairn_sandbox::ClusterSandboxes::new(store.clone(), TOKEN, Duration::from_secs(3)),
    );
    let owner = cairn_core::UserId::new();
    let new = || NewSandbox::for_owner(owner);
    let (first, second) = (one.create(new()).await.unwrap(), one.create(new()).await.unwrap());
    let mut placed = Vec::new();
    for id in [first.id, second.id] {
        placed.push(store.placement(id).await.unwrap().unwrap().host);
    }
    assert_ne!(placed[0], placed[1], "the second sandbox went to the host with room: {placed:?}");

    let work = "open('data.csv', 'w').write('a,b\\n1,2\\n')\nx = 41\nx + 1";
    let made = one.execute(first.id, python(work), &mut |_: &Output| {}).await.unwrap();
    assert_eq!(made.result_text(), Some("42"));
    assert_eq!(made.notice, None);
    // The other worker finds the same sandbox, kernel and all.
    let seen = two.execute(first.id, python("x"), &mut |_: &Output| {}).await.unwrap();
    assert_eq!(seen.result_text(), Some("41"), "{seen:?}");
    assert_eq!(two.list(Some(owner)).await.unwrap().len(), 2);

    // The first sandbox's host dies.
    let victim = hosts.iter().position(|h| h.base == placed[0]).unwrap();
    let pid = hosts[victim].child.id().to_string();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let _ = hosts[victim].child.wait();
    let check = "print(open('data.csv').read(), end='')\nprint('x' in globals())";
    let moved = two.execute(first.id, python(check), &mut |_: &Output| {}).await.unwrap();
    assert_eq!(moved.stream("stdout"), "a,b\n1,2\nFalse\n", "files restored, variables gone: {moved:?}");
    let notice = moved.notice.clone().unwrap_or_default();
    assert!(notice.contains("another machine") && notice.contains("variables"), "{notice}");
    let now = store.placement(first.id).await.unwrap().unwrap().host;
    assert_eq!(now, placed[1], "the sandbox lives on the surviving host");
    // The next execution there is an ordinary one.
    let again = one.execute(first.id, python("y = 1\ny"), &mut |_: &Output| {}).await.unwrap();
    assert_eq!((again.result_text(), again.notice.clone()), (Some("1"), None));

    // The dead host comes back with its old copy of the sandbox on disk:
    // its first report learns the sandbox lives elsewhere, and it deletes
    // the copy (the sandbox itself is untouched).
    let copy = dirs[victim].path.join(format!("data/sandboxes/instances/{}", first.id));
    assert!(copy.exists(), "the dead host left its copy at {}", copy.display());
    let mut back = start_host(&dirs[victim], ports[victim], &pg, &objects);
    back.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while copy.exists() {
        assert!(Instant::now() < deadline, "the returning host kept its stale copy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let still = one.execute(first.id, python("y"), &mut |_: &Output| {}).await.unwrap();
    assert_eq!(still.result_text(), Some("1"), "the live sandbox is untouched: {still:?}");
    back.terminate();

    // The surviving host stops cleanly (drained): it pauses (snapshotting)
    // and leaves the registry.
    let late = "open('late.txt', 'w').write('before the drain')\nz = 3";
    one.execute(first.id, python(late), &mut |_: &Output| {}).await.unwrap();
    let survivor = hosts.into_iter().nth(1 - victim).unwrap();
    survivor.terminate();
    let left: Vec<String> = store.sandbox_hosts().await.unwrap().into_iter().map(|h| h.url).collect();
    assert!(!left.contains(&placed[1]), "a stopped host leaves the registry: {left:?}");
    // Its sandbox comes back on the next host there is, with its files.
    let mut fresh = start_host(&dirs[victim], ports[victim], &pg, &objects);
    fresh.wait_ready().await;
    registered(&pg, 1).await;
    let check = "print(open('late.txt').read())\nprint('z' in globals())";
    let restored = two.execute(first.id, python(check), &mut |_: &Output| {}).await.unwrap();
    assert_eq!(restored.stream("stdout"), "before the drain\nFalse\n", "files restored, variables gone: {restored:?}");
    assert!(restored.notice.clone().unwrap_or_default().contains("variables"), "{restored:?}");
    assert_eq!(store.placement(first.id).await.unwrap().unwrap().host, fresh.base);
    fresh.terminate();
}

/// A member may have `sandbox.max_running_per_user` sandboxes running over
/// all the hosts together (each host alone would allow that many): one more
/// pauses the least recently used idle one, on whichever host it runs, and
/// when all are busy the new one is refused. A paused one that runs again
/// makes room the same way.
#[tokio::test]
async fn a_members_running_sandboxes_are_capped_over_all_hosts() {
    let pg = TestPostgres::create().await;
    let (objects, dirs) = (TempDir::new("cli"), [TempDir::new("cli"), TempDir::new("cli")]);
    let mut hosts =
        [start_host(&dirs[0], free_port(), &pg, &objects), start_host(&dirs[1], free_port(), &pg, &objects)];
    for host in &mut hosts {
        host.wait_ready().await;
    }
    let store = registered(&pg, 2).await;
    let cluster =
        cairn_sandbox::ClusterSandboxes::new(store.clone(), TOKEN, Duration::from_secs(3)).with_per_user_cap(2);
    let (ada, bob) = (cairn_core::UserId::new(), cairn_core::UserId::new());
    let first = cluster.create(NewSandbox::for_owner(ada)).await.unwrap().id;
    let second = cluster.create(NewSandbox::for_owner(ada)).await.unwrap().id;
    let host = |id| {
        let store = store.clone();
        async move { store.placement(id).await.unwrap().unwrap().host }
    };
    assert_ne!(host(first).await, host(second).await, "one on each host: each alone is under its own cap");
    cluster.execute(first, python("a = 1"), &mut |_: &Output| {}).await.unwrap();
    cluster.execute(second, python("b = 2"), &mut |_: &Output| {}).await.unwrap();
    let state = |id| {
        let cluster = cluster.clone();
        async move { cluster.inspect(id).await.unwrap().state }
    };

    // A third of Ada's: the least recently used (the first) is paused.
    let third = cluster.create(NewSandbox::for_owner(ada)).await.unwrap().id;
    assert_eq!(state(first).await, SandboxState::Paused, "the least recently used one made room");
    assert_eq!((state(second).await, state(third).await), (SandboxState::Running, SandboxState::Running));
    // Bob's are his own.
    cluster.create(NewSandbox::for_owner(bob)).await.unwrap();
    assert_eq!(state(second).await, SandboxState::Running);

    // The first runs again (its files kept): the next least recent pauses.
    let woke = cluster.execute(first, python("print('a' in globals())"), &mut |_: &Output| {}).await.unwrap();
    assert_eq!(woke.stream("stdout"), "False\n", "a paused sandbox comes back with a fresh kernel: {woke:?}");
    assert_eq!(state(second).await, SandboxState::Paused);
    let running = [first, second, third];
    let mut count = 0;
    for id in running {
        count += usize::from(state(id).await == SandboxState::Running);
    }
    assert_eq!(count, 2, "two of Ada's run, over both hosts");

    // Both running ones busy: a new one is refused, saying why.
    let (busy_one, busy_two) = (cluster.clone(), cluster.clone());
    let sleeping = |c: cairn_sandbox::ClusterSandboxes, id| async move {
        c.execute(id, python("import time\ntime.sleep(3)"), &mut |_: &Output| {}).await
    };
    let (a, b) = (tokio::spawn(sleeping(busy_one, first)), tokio::spawn(sleeping(busy_two, third)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The hosts' reports carry the busy state within a heartbeat.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused = cluster.create(NewSandbox::for_owner(ada)).await;
    let why = format!("{refused:?}");
    assert!(matches!(refused, Err(cairn_core::sandbox::SandboxError::CapReached(_))), "{why}");
    assert!(why.contains("at most 2"), "{why}");
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();

    // Carol starts four sandboxes at the same moment through four workers'
    // views of the cluster: each start made room for itself before the
    // others were placed, so each counts again once placed; at most two of
    // hers run after, however the starts interleave.
    let carol = cairn_core::UserId::new();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let view =
                cairn_sandbox::ClusterSandboxes::new(store.clone(), TOKEN, Duration::from_secs(3)).with_per_user_cap(2);
            tokio::spawn(async move { view.create(NewSandbox::for_owner(carol)).await })
        })
        .collect();
    let mut made = Vec::new();
    for start in starts {
        match start.await.unwrap() {
            Ok(info) => made.push(info.id),
            Err(cairn_core::sandbox::SandboxError::CapReached(_)) => {}
            Err(other) => panic!("a start failed otherwise: {other:?}"),
        }
    }
    assert!(!made.is_empty(), "at least one of the four starts");
    let mut running = 0;
    for id in &made {
        running += usize::from(state(*id).await == SandboxState::Running);
    }
    assert!(running <= 2, "{running} of Carol's {} sandboxes run at once, over the cap of 2", made.len());
    for host in hosts {
        host.terminate();
    }
}

/// A planned run's independent tasks spread over both workers and both
/// sandbox hosts: the worker holding the run works the first lane, the
/// others go to the queue and each worker takes one; each lane's sandbox
/// is placed like any other, so the lanes run on both hosts.
#[tokio::test]
async fn a_planned_runs_tasks_spread_over_both_workers_and_both_hosts() {
    use cairn_testkit::{Reply, ScriptedLlm};
    let pg = TestPostgres::create().await;
    let (objects, host_dirs) = (TempDir::new("cli"), [TempDir::new("cli"), TempDir::new("cli")]);
    let mut hosts =
        [start_host(&host_dirs[0], free_port(), &pg, &objects), start_host(&host_dirs[1], free_port(), &pg, &objects)];
    for host in &mut hosts {
        host.wait_ready().await;
    }
    registered(&pg, 2).await;
    // Each lane answers with where its workspace lives on the host (the
    // bind mount's source, from the sandbox's mount table), after a second,
    // so no worker can take both queued lanes one after the other.
    let whereabouts = "import time\ntime.sleep(1)\n\
                       line = next(l for l in open('/proc/self/mountinfo') if ' /workspace ' in l)\n\
                       final_answer(line.split()[3])";
    let task = |id: &str| {
        serde_json::json!({ "id": id, "title": format!("Task {id}"), "goal": "say where", "done_when": "it said",
                            "depends_on": [], "agent": "analyst" })
    };
    let plan = serde_json::json!({ "tasks": [task("a"), task("b"), task("c")] });
    let mut script = vec![Reply::Text(format!("The plan.\n```json\n{plan}\n```"))];
    script.extend((0..3).map(|_| Reply::Text(format!("```python\n{whereabouts}\n```"))));
    script.extend((0..3).map(|_| Reply::Text(r#"{"done": true, "why": "it said"}"#.into())));
    script.push(Reply::Text("The tasks ran in several places.".into()));
    let llm = ScriptedLlm::start(script).await;
    let envs = [
        shared_envs(&pg),
        vec![
            ("CAIRN__LLM__PROVIDERS", scripted_provider(&llm.url, "")),
            ("CAIRN__SANDBOX__CLUSTER", "true".to_owned()),
            ("CAIRN__SANDBOX__HOST_TOKEN", TOKEN.to_owned()),
            ("CAIRN__SANDBOX__HEARTBEAT_SECS", "1".to_owned()),
            // One run and one task at a time per worker.
            ("CAIRN__AGENT__WORKERS", "1".to_owned()),
        ],
    ]
    .concat();
    let dirs = [TempDir::new("cli"), TempDir::new("cli"), TempDir::new("cli")];
    let mut gateway = Running::start(&dirs[0].path, &["--role", "gateway"], &envs);
    let mut workers = [
        Running::start(&dirs[1].path, &["--role", "worker"], &envs),
        Running::start(&dirs[2].path, &["--role", "worker"], &envs),
    ];
    gateway.wait_ready().await;
    for worker in &mut workers {
        worker.wait_ready().await;
    }
    let ada = Ada::signs_up(&gateway).await;
    let (project, thread) = ada.project_with_thread().await;
    let posted = ada
        .post(&format!("/api/v1/threads/{thread}/messages"), serde_json::json!({ "content": "Where?", "plan": true }))
        .await;
    let run = posted["run"]["id"].as_str().unwrap().to_owned();
    let finished = ada.finished_run(&run, Duration::from_secs(90)).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");

    // Every task done, on both hosts.
    let events = ada.get(&format!("/api/v1/threads/{thread}/events?after=0")).await;
    let plan =
        events.as_array().unwrap().iter().rev().find(|e| e["kind"] == "plan").unwrap()["payload"]["plan"].clone();
    let places: Vec<String> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["status"], "done", "{t}");
            t["result"].as_str().unwrap().to_owned()
        })
        .collect();
    let on = |dir: &TempDir| places.iter().filter(|p| p.contains(&*dir.path.to_string_lossy())).count();
    assert_eq!(on(&host_dirs[0]) + on(&host_dirs[1]), 3, "each lane ran on a host: {places:?}");
    assert!(on(&host_dirs[0]) > 0 && on(&host_dirs[1]) > 0, "the lanes ran on both hosts: {places:?}");
    // Both workers took a lane from the queue (the run's own worker worked
    // the first one besides).
    for worker in &workers {
        let metrics = reqwest::get(format!("{}/metrics", worker.base)).await.unwrap().text().await.unwrap();
        assert!(metrics.contains(r#"cairn_lanes_total{outcome="done"} 1"#), "each worker took one lane:\n{metrics}");
    }

    // A tool called through the gateway's API runs in a sandbox placed on a
    // host, never in the gateway: a library file copied into its workspace
    // lands in a host's folder.
    let upload = ada.client.put(format!("{}/api/v1/projects/{project}/files/content?path=notes.txt", gateway.base));
    let uploaded = upload.bearer_auth(&ada.token).body("from the library").send().await.unwrap();
    assert_eq!(uploaded.status(), 201);
    let called = ada
        .post(
            &format!("/api/v1/projects/{project}/tools/load_file"),
            serde_json::json!({ "arguments": { "path": "notes.txt" } }),
        )
        .await;
    assert_eq!(called["result"]["size"], 16, "{called}");
    let copies: Vec<std::path::PathBuf> =
        host_dirs.iter().flat_map(|dir| files_named(&dir.path, "notes.txt")).collect();
    assert_eq!(copies.len(), 1, "the copy is in one host's workspace: {copies:?}");
    assert_eq!(std::fs::read_to_string(&copies[0]).unwrap(), "from the library");
    assert!(files_named(&dirs[0].path, "notes.txt").is_empty(), "the gateway kept no workspace");
    for worker in workers {
        worker.terminate();
    }
    gateway.terminate();
    for host in hosts {
        host.terminate();
    }
}

/// Every file called `name` under `dir`.
fn files_named(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                folders.push(path);
            } else if entry.file_name() == name {
                found.push(path);
            }
        }
    }
    found
}
