//! The distributed shape end to end, as real processes on this machine: two
//! gateways, two workers and two sandbox hosts on their own PostgreSQL (with
//! pgvector) and Redis, and an S3 server (the first two behind proxies that
//! can cut every connection). Members post through one gateway and watch
//! through the other, over SSE and the WebSocket; a cancel crosses processes;
//! then faults strike while runs go, at random moments (the seed is printed;
//! `CAIRN_TEST_FAULT_SEED` replays it): workers, a sandbox host and a gateway
//! are killed with SIGKILL, Redis and PostgreSQL are restarted for real and
//! cut off for two seconds. Every run completes exactly once: one answer per
//! run, no doubled artifact, no gap or duplicate in any thread's log, and
//! every watcher sees every event once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_testkit::{Reply, S3Server, ScriptedLlm, TcpProxy, TempDir, unique_prefix};
use serde_json::{Value, json};

const TOKEN: &str = "a-sandbox-host-credential-of-enough-length";

/// The pauses before each fault, random (300–1,800 ms each) from a seed:
/// the clock's, or `CAIRN_TEST_FAULT_SEED` to replay a run that failed.
struct Faults {
    seed: u64,
    state: u64,
}

impl Faults {
    fn new() -> Faults {
        let clock = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let seed = std::env::var("CAIRN_TEST_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(clock);
        Faults { seed, state: seed | 1 }
    }

    /// The next pause (xorshift64).
    fn pause(&mut self) -> Duration {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        Duration::from_millis(300 + self.state % 1_500)
    }
}

/// One `cairn serve` process of the cluster.
struct Process {
    role: &'static str,
    dir: TempDir,
    port: u16,
    envs: Vec<(String, String)>,
    child: Option<Child>,
}

impl Process {
    fn new(role: &'static str, envs: Vec<(String, String)>) -> Process {
        let port = cairn_testkit::free_port();
        let mut process = Process { role, dir: TempDir::new("dist"), port, envs, child: None };
        process.envs.push(("CAIRN__SERVER__BIND".into(), format!("127.0.0.1:{port}")));
        if role == "sandbox-host" {
            process.envs.push(("CAIRN__SANDBOX__ADVERTISE_URL".into(), process.base()));
        }
        process.start();
        process
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (or starts again, on the same port and data folder).
    fn start(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
        command.current_dir(&self.dir.path).args(["serve", "--role", self.role]);
        for (name, _) in std::env::vars() {
            if name.starts_with("CAIRN__") || name.starts_with("OPENAI_") || name.starts_with("ANTHROPIC_") {
                command.env_remove(name);
            }
        }
        command.env("CAIRN__LOG__FORMAT", "pretty");
        for (name, value) in &self.envs {
            command.env(name, value);
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path.join("cairn.log")).unwrap();
        self.child = Some(command.stdout(Stdio::null()).stderr(log).spawn().expect("start cairn"));
    }

    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{} exited early with {status}:\n{}", self.role, self.log());
            }
            if let Ok(answer) = reqwest::get(format!("{}/readyz", self.base())).await
                && answer.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "{} did not become ready:\n{}", self.role, self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("cairn.log")).unwrap_or_default()
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            assert!(Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap().success());
            let _ = child.wait();
        }
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "{} did not stop on SIGTERM:\n{}", self.role, self.log());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A member signed in through one gateway; the token works on every one.
#[derive(Clone)]
struct Member {
    client: reqwest::Client,
    token: String,
}

impl Member {
    async fn signs_up(base: &str, email: &str) -> Member {
        let client = reqwest::Client::new();
        let body = json!({ "email": email, "password": "correct horse battery staple", "display_name": email });
        let registered = client.post(format!("{base}/api/v1/auth/register")).json(&body).send().await.unwrap();
        assert!(registered.status().is_success(), "{}", registered.text().await.unwrap());
        let form = [("grant_type", "password"), ("username", email), ("password", "correct horse battery staple")];
        let token: Value =
            client.post(format!("{base}/api/v1/auth/token")).form(&form).send().await.unwrap().json().await.unwrap();
        Member { client, token: token["access_token"].as_str().unwrap().to_owned() }
    }

    /// A request through `base`, retried while the cluster is mid-fault (a
    /// gateway answering 503 while its database is away, a refused
    /// connection): what a client does.
    async fn call(&self, method: reqwest::Method, base: &str, path: &str, body: Option<Value>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut request = self.client.request(method.clone(), format!("{base}{path}")).bearer_auth(&self.token);
            if let Some(body) = &body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(answer) if answer.status().is_success() => return answer.json().await.unwrap(),
                Ok(answer) if answer.status().is_server_error() => {}
                Ok(answer) => panic!("{method} {path}: {} {}", answer.status(), answer.text().await.unwrap()),
                Err(_) => {}
            }
            assert!(Instant::now() < deadline, "{method} {path} never succeeded");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn get(&self, base: &str, path: &str) -> Value {
        self.call(reqwest::Method::GET, base, path, None).await
    }

    async fn post(&self, base: &str, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, base, path, Some(body)).await
    }

    async fn run_ended(&self, base: &str, run: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let got = self.get(base, &format!("/api/v1/runs/{run}")).await;
            if ["succeeded", "failed", "cancelled"].iter().any(|s| got["status"] == *s) {
                return got;
            }
            assert!(Instant::now() < deadline, "run {run} did not end within {within:?}: {got}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A watcher of a thread's server-sent events: reconnects to the next
/// gateway with `Last-Event-ID` whenever its stream breaks, and records
/// every event number it receives, in order.
fn watch(member: Member, gateways: Vec<String>, thread: String, stop: tokio::sync::watch::Receiver<bool>) -> Watcher {
    watch_over(Transport::Sse, member, gateways, thread, stop)
}

/// How a watcher follows its thread.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    /// Server-sent events, resumed with `Last-Event-ID`.
    Sse,
    /// The WebSocket, resumed with `?after=`.
    WebSocket,
}

fn watch_over(
    transport: Transport,
    member: Member,
    gateways: Vec<String>,
    thread: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Watcher {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let recorded = seen.clone();
    let task = tokio::spawn(async move {
        let (mut reconnects, mut turn) = (0_u32, 0_usize);
        while !*stop.borrow() {
            let base = &gateways[turn % gateways.len()];
            let last = recorded.lock().unwrap().last().copied().unwrap_or(0);
            if transport == Transport::WebSocket {
                use futures::StreamExt;
                use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
                let url =
                    format!("{}/api/v1/threads/{thread}/events/ws?after={last}", base.replace("http://", "ws://"));
                let mut request = url.into_client_request().unwrap();
                request.headers_mut().insert("authorization", format!("Bearer {}", member.token).parse().unwrap());
                let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
                    turn += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                loop {
                    let mut stopping = stop.clone();
                    let message = tokio::select! {
                        message = socket.next() => message,
                        _ = stopping.changed() => break,
                    };
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            let event: Value = serde_json::from_str(text.as_str()).unwrap();
                            if let Some(seq) = event["seq"].as_i64() {
                                recorded.lock().unwrap().push(seq);
                            }
                        }
                        Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    }
                }
                reconnects += 1;
                turn += 1;
                continue;
            }
            let request = member
                .client
                .get(format!("{base}/api/v1/threads/{thread}/events"))
                .bearer_auth(&member.token)
                .header("accept", "text/event-stream")
                .header("last-event-id", last.to_string());
            let mut response = match request.send().await {
                Ok(response) if response.status() == 200 => response,
                _ => {
                    turn += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut buffer = String::new();
            loop {
                let mut stopping = stop.clone();
                let chunk = tokio::select! {
                    chunk = response.chunk() => chunk,
                    _ = stopping.changed() => break,
                };
                let Ok(Some(chunk)) = chunk else { break };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if let Some(seq) = block.lines().find_map(|l| l.strip_prefix("id: ")) {
                        recorded.lock().unwrap().push(seq.trim().parse().unwrap());
                    }
                }
            }
            reconnects += 1;
            turn += 1;
        }
        reconnects
    });
    Watcher { seen, task }
}

/// The cluster's own Redis server, as a deployment runs it: its data kept
/// on disk (`appendonly yes`, which the run queue needs), so it can be
/// restarted for real. The binary is `CAIRN_TEST_REDIS_SERVER` (the test
/// command sets it, installing Redis where it is missing), else
/// `redis-server` on the PATH.
struct OwnRedis {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let mut redis = OwnRedis { dir: TempDir::new("redis"), port: cairn_testkit::free_port(), child: None };
        redis.launch().await;
        redis
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) {
        let binary = std::env::var("CAIRN_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = self.port.to_string();
        let child = Command::new(&binary)
            .args(["--bind", "127.0.0.1", "--port", &port, "--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(&self.dir.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test runs its own Redis: cannot start {binary} ({e}); set CAIRN_TEST_REDIS_SERVER")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(self.addr()).await.is_err() {
            assert!(Instant::now() < deadline, "the test's Redis did not listen on {}", self.addr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it as an orchestrator does (SIGTERM: it writes what it holds
    /// and exits), then starts it again on the same port and data.
    async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
            let _ = child.wait();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.launch().await;
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The cluster's own PostgreSQL (with pgvector), so it can be restarted for
/// real: the server binaries of `CAIRN_TEST_PG_BINDIR` (the test command
/// names those it runs the pgvector tests on). Run as the `postgres` user
/// when the tests run as root, as the server refuses root.
struct OwnPostgres {
    dir: TempDir,
    port: u16,
    bindir: std::path::PathBuf,
    root: bool,
}

impl OwnPostgres {
    async fn start() -> OwnPostgres {
        let bindir = std::env::var("CAIRN_TEST_PG_BINDIR").unwrap_or_else(|_| {
            panic!(
                "this test runs its own PostgreSQL with pgvector, to restart it: set CAIRN_TEST_PG_BINDIR to the \
                 folder of its initdb, pg_ctl and postgres (scripts/test.sh does)"
            )
        });
        let id = Command::new("id").arg("-u").output().unwrap();
        let root = String::from_utf8_lossy(&id.stdout).trim() == "0";
        let pg = OwnPostgres { dir: TempDir::new("pg"), port: cairn_testkit::free_port(), bindir: bindir.into(), root };
        let data = pg.data();
        std::fs::create_dir(&data).unwrap();
        if root {
            let owned = Command::new("chown").args(["-R", "postgres:"]).arg(&pg.dir.path).status().unwrap();
            assert!(owned.success(), "cannot give the data folder to the postgres user");
        }
        let mut initdb = pg.command("initdb");
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"]);
        let made = initdb.output().unwrap();
        assert!(made.status.success(), "initdb failed: {}", String::from_utf8_lossy(&made.stderr));
        pg.pg_ctl_start();
        pg
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path.join("data")
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One of the server's programs, as the user that may run it.
    fn command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        if self.root {
            let mut command = Command::new("runuser");
            command.current_dir("/").args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.data().display()
        );
        let started = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.path.join("server.log"))
            .arg("start")
            .output()
            .unwrap();
        let log = std::fs::read_to_string(self.dir.path.join("server.log")).unwrap_or_default();
        assert!(started.status.success(), "PostgreSQL did not start: {log}");
    }

    fn pg_ctl_stop(&self, mode: &str) -> bool {
        let stop = self.command("pg_ctl").arg("-D").arg(self.data()).args(["-w", "-m", mode, "stop"]).output();
        stop.is_ok_and(|done| done.status.success())
    }

    /// Stops it as an orchestrator does (a fast shutdown: sessions end,
    /// what is committed stays) and starts it again on the same data.
    async fn restart(&self) {
        assert!(self.pg_ctl_stop("fast"), "PostgreSQL did not stop");
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.pg_ctl_start();
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.pg_ctl_stop("immediate");
    }
}

struct Watcher {
    seen: std::sync::Arc<std::sync::Mutex<Vec<i64>>>,
    task: tokio::task::JoinHandle<u32>,
}

impl Watcher {
    /// Waits (up to 30 s) until the watcher has seen event `last`.
    async fn caught_up(&self, last: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.seen.lock().unwrap().last().copied().unwrap_or(0) < last && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it (with the others, through `stop`): what it saw and how
    /// often it reconnected.
    async fn finish(self) -> (Vec<i64>, u32) {
        let reconnects = self.task.await.unwrap();
        let seen = self.seen.lock().unwrap().clone();
        (seen, reconnects)
    }
}

/// The one reply of the scripted model, whatever it is asked: a step that
/// counts itself in the workspace and answers on the third; the last step
/// saves an artifact. A step run again after a crash counts again, so the
/// answer's number may be higher; it is still one answer.
fn step_reply() -> Reply {
    let code = "import os\n\
                n = len(open('progress.txt').read().splitlines()) if os.path.exists('progress.txt') else 0\n\
                open('progress.txt', 'a').write('step\\n')\n\
                if n >= 2:\n    \
                    open('report.txt', 'w').write(f'report after {n + 1} steps')\n    \
                    save_artifact('report.txt')\n    \
                    final_answer(f'done after {n + 1} steps')\n\
                print('working', n)";
    Reply::Slow { text: format!("Next step.\n```python\n{code}\n```"), delay: Duration::from_millis(25) }
}

struct Cluster {
    gateways: Vec<Process>,
    workers: Vec<Process>,
    hosts: Vec<Process>,
    pg_proxy: TcpProxy,
    redis_proxy: TcpProxy,
    redis: OwnRedis,
    pg: OwnPostgres,
    _s3: S3Server,
    llm: ScriptedLlm,
    /// The processes' Redis prefix.
    prefix: String,
}

impl Cluster {
    /// The jobs set aside on the run and task queues (for a failure's report).
    async fn dead_letters(&self) -> String {
        let url = format!("redis://{}", self.redis.addr());
        let Ok(bus) = cairn_bus::redis::connect(&url, &self.prefix, Default::default()).await else {
            return "(Redis did not answer)".into();
        };
        let mut found = String::new();
        for queue in ["runs", "lanes"] {
            let dead = bus.queue.dead_letters(queue, 20).await;
            found.push_str(&format!("{queue}: {dead:?}\n"));
        }
        found
    }
}

async fn cluster() -> Cluster {
    // PostgreSQL with pgvector, as the distributed shape is deployed.
    let pg = OwnPostgres::start().await;
    let pg_proxy = TcpProxy::start(&pg.addr()).await;
    let redis = OwnRedis::start().await;
    let redis_proxy = TcpProxy::start(&redis.addr()).await;
    let s3 = S3Server::start().await;
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(step_reply());
    let prefix = unique_prefix("dist");
    let mut shared: Vec<(String, String)> = [
        ("CAIRN__DATABASE__URL", format!("postgres://postgres@{}/postgres", pg_proxy.addr)),
        ("CAIRN__DATABASE__ACQUIRE_TIMEOUT_SECS", "2".into()),
        ("CAIRN__REDIS__URL", format!("redis://{}", redis_proxy.addr)),
        ("CAIRN__REDIS__PREFIX", prefix.clone()),
        ("CAIRN__AUTH__SIGNING_KEYS", format!("[{{kid=\"k1\",secret=\"{}\"}}]", "A".repeat(43))),
        ("CAIRN__FILES__STORE_URL", format!("s3://{}", s3.bucket)),
        ("CAIRN__FILES__S3_ENDPOINT", s3.endpoint.clone()),
        ("CAIRN__FILES__S3_ACCESS_KEY_ID", s3.access_key.clone()),
        ("CAIRN__FILES__S3_SECRET_ACCESS_KEY", s3.secret_key.clone()),
        ("CAIRN__FILES__S3_PATH_STYLE", "true".into()),
        ("CAIRN__FILES__ALLOW_HTTP", "true".into()),
        ("CAIRN__SANDBOX__HOST_TOKEN", TOKEN.into()),
        ("CAIRN__SANDBOX__POOL_SIZE", "0".into()),
        ("CAIRN__SANDBOX__HEARTBEAT_SECS", "1".into()),
        ("CAIRN__QUEUE__LEASE_SECS", "3".into()),
        // The faults may strike one run six times or more (four worker kills,
        // and the Redis outages outlast the short lease above, so its job
        // goes to another worker); a run past the deliveries allowed ends
        // failed (the agent crate tests that), which is not what this test
        // is about.
        ("CAIRN__QUEUE__MAX_DELIVERIES", "12".into()),
        ("CAIRN__SERVER__SHUTDOWN_GRACE_SECS", "1".into()),
        (
            "CAIRN__LLM__PROVIDERS",
            format!(
                "[{{name=\"scripted\",kind=\"openai-compatible\",base_url=\"{}/v1\",models=[{{name=\"m\"}}]}}]",
                llm.url
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Ok(python) = std::env::var("CAIRN_SANDBOX_PYTHON") {
        shared.push(("CAIRN__SANDBOX__PYTHON".into(), python));
    }
    let clustered = || [shared.clone(), vec![("CAIRN__SANDBOX__CLUSTER".to_owned(), "true".to_owned())]].concat();
    let mut hosts = vec![Process::new("sandbox-host", shared.clone()), Process::new("sandbox-host", shared.clone())];
    for host in &mut hosts {
        host.ready().await;
    }
    let mut gateways = vec![Process::new("gateway", clustered()), Process::new("gateway", clustered())];
    let mut workers = vec![Process::new("worker", clustered()), Process::new("worker", clustered())];
    for process in gateways.iter_mut().chain(workers.iter_mut()) {
        process.ready().await;
    }
    Cluster { gateways, workers, hosts, pg_proxy, redis_proxy, redis, pg, _s3: s3, llm, prefix }
}

/// What must hold of a thread once its runs ended: contiguous numbers, one
/// final status per run, one answer per succeeded run, each artifact saved
/// once, and the watcher saw every event exactly once.
async fn check_thread(member: &Member, base: &str, thread: &str, watched: Option<(Vec<i64>, u32)>) -> usize {
    let log = member.get(base, &format!("/api/v1/threads/{thread}/events?after=0")).await;
    let log = log.as_array().unwrap();
    let seqs: Vec<i64> = log.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no gap and no duplicate in {thread}'s log");
    let mut finals: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in log.iter().filter(|e| e["kind"] == "run.status") {
        let status = event["payload"]["status"].as_str().unwrap().to_owned();
        if ["succeeded", "failed", "cancelled"].contains(&status.as_str()) {
            finals.entry(event["run_id"].as_str().unwrap().to_owned()).or_default().push(status);
        }
    }
    for (run, statuses) in &finals {
        assert_eq!(statuses.len(), 1, "run {run} ended once: {statuses:?}");
    }
    let succeeded = finals.values().filter(|s| s[0] == "succeeded").count();
    let messages = member.get(base, &format!("/api/v1/threads/{thread}/messages")).await;
    let answers = messages.as_array().unwrap().iter().filter(|m| m["role"] == "assistant").count();
    assert_eq!(answers, succeeded, "one answer per succeeded run in {thread}: {messages}");
    let answer_events = log.iter().filter(|e| e["kind"] == "message.created" && e["payload"]["role"] == "assistant");
    assert_eq!(answer_events.count(), succeeded, "one answer event per succeeded run in {thread}");
    if let Some((seen, _)) = watched {
        let unique: BTreeSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "the watcher of {thread} saw no event twice: {seen:?}");
        assert_eq!(seen, seqs, "the watcher of {thread} saw every event, in order");
    }
    succeeded
}

/// The highest delivery of a job the workers' logs name (`cairn.delivery`
/// of their spans), their colours taken out.
fn most_deliveries(logs: impl Iterator<Item = String>) -> u32 {
    let mut most = 0;
    for log in logs {
        let mut plain = String::with_capacity(log.len());
        let mut escaped = false;
        for c in log.chars() {
            match (escaped, c) {
                (false, '\u{1b}') => escaped = true,
                (true, 'm') => escaped = false,
                (false, c) => plain.push(c),
                (true, _) => {}
            }
        }
        for (at, _) in plain.match_indices("cairn.delivery=") {
            let digits: String =
                plain[at + "cairn.delivery=".len()..].chars().take_while(char::is_ascii_digit).collect();
            most = most.max(digits.parse().unwrap_or(0));
        }
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_role_doubled_survives_kills_and_outages_with_every_run_done_once() {
    let mut cluster = cluster().await;
    let (a, b) = (cluster.gateways[0].base(), cluster.gateways[1].base());
    let ada = Member::signs_up(&a, "ada@example.com").await;
    let project = ada.post(&a, "/api/v1/projects", json!({ "name": "P" })).await["id"].as_str().unwrap().to_owned();
    let new_thread = |title: String| {
        let (ada, a, project) = (ada.clone(), a.clone(), project.clone());
        async move {
            let thread = ada.post(&a, &format!("/api/v1/projects/{project}/threads"), json!({ "title": title })).await;
            thread["id"].as_str().unwrap().to_owned()
        }
    };
    let (stop, stopping) = tokio::sync::watch::channel(false);

    // 1. Posted through gateway A, watched through gateway B.
    let thread = new_thread("first".into()).await;
    let watcher = watch(ada.clone(), vec![b.clone(), a.clone()], thread.clone(), stopping.clone());
    let posted = ada.post(&a, &format!("/api/v1/threads/{thread}/messages"), json!({ "content": "Go." })).await;
    let run = posted["run"]["id"].as_str().unwrap().to_owned();
    let ended = ada.run_ended(&b, &run, Duration::from_secs(90)).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let files = ada.get(&b, &format!("/api/v1/projects/{project}/files?folder=")).await;
    assert!(files.to_string().contains("report.txt"), "the artifact reached the library on S3: {files}");

    // 2. A cancel through B of a run a worker holds: the run loops until told.
    let looping = new_thread("cancelled".into()).await;
    // (Those it leaves unused are steps that count nothing for later runs.)
    for _ in 0..8 {
        cluster.llm.push(Reply::Slow {
            text: "Again.\n```python\nprint('again')\n```".into(),
            delay: Duration::from_millis(40),
        });
    }
    let posted = ada.post(&a, &format!("/api/v1/threads/{looping}/messages"), json!({ "content": "Loop." })).await;
    let long = posted["run"]["id"].as_str().unwrap().to_owned();
    let calls = cluster.llm.received().len();
    while cluster.llm.received().len() < calls + 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancelled = ada.post(&b, &format!("/api/v1/runs/{long}/cancel"), json!({})).await;
    assert_eq!(cancelled["status"], "cancelled");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_cancel = cluster.llm.received().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.llm.received().len(), after_cancel, "the worker holding the run stopped calling the model");

    // 3. Faults while runs go: eight threads, each with a watcher that moves
    // between gateways; runs posted through both gateways.
    let mut threads = Vec::new();
    for n in 0..8 {
        let thread = new_thread(format!("fault {n}")).await;
        // Half the watchers over server-sent events, half over the WebSocket.
        let transport = if n % 2 == 0 { Transport::Sse } else { Transport::WebSocket };
        let watcher = watch_over(transport, ada.clone(), vec![a.clone(), b.clone()], thread.clone(), stopping.clone());
        let through = if n % 2 == 0 { &a } else { &b };
        let posted =
            ada.post(through, &format!("/api/v1/threads/{thread}/messages"), json!({ "content": "Go." })).await;
        threads.push((thread, posted["run"]["id"].as_str().unwrap().to_owned(), watcher));
    }
    let started = Instant::now();
    let mut faults = Faults::new();
    eprintln!("faults at random moments: CAIRN_TEST_FAULT_SEED={} replays them", faults.seed);
    // Worker kills: four, at random points of the runs, each worker killed
    // twice and started again (same data folder, as a restarted pod).
    // Between the second and the third, Redis is restarted: stopped, and
    // started again a second later with the queue it kept on disk.
    for round in 0..4 {
        tokio::time::sleep(faults.pause()).await;
        let worker = &mut cluster.workers[round % 2];
        worker.kill_9();
        worker.start();
        worker.ready().await;
        if round == 1 {
            tokio::time::sleep(faults.pause()).await;
            cluster.redis.restart().await;
        }
    }
    // A sandbox host dies; its sandboxes move to the other on their next use.
    tokio::time::sleep(faults.pause()).await;
    cluster.hosts[0].kill_9();
    // PostgreSQL is restarted (a fast shutdown, then started again).
    tokio::time::sleep(faults.pause()).await;
    cluster.pg.restart().await;
    // Gateway A dies with watchers on it; they resume on B.
    tokio::time::sleep(faults.pause()).await;
    cluster.gateways[0].kill_9();
    // Redis goes away and comes back (the network to it cut for 2 s).
    tokio::time::sleep(faults.pause()).await;
    cluster.redis_proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.redis_proxy.restore();
    // PostgreSQL goes away and comes back.
    tokio::time::sleep(faults.pause()).await;
    cluster.pg_proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.pg_proxy.restore();
    // The dead come back.
    cluster.hosts[0].start();
    cluster.gateways[0].start();
    cluster.hosts[0].ready().await;
    cluster.gateways[0].ready().await;
    let faults_over = started.elapsed();

    for (run_thread, run, _) in &threads {
        let deadline = Instant::now() + Duration::from_secs(120);
        let ended = loop {
            let got = ada.get(&b, &format!("/api/v1/runs/{run}")).await;
            if ["succeeded", "failed", "cancelled"].iter().any(|s| got["status"] == *s) {
                break got;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = cluster
                    .workers
                    .iter()
                    .chain(cluster.hosts.iter())
                    .map(|p| {
                        let log = p.log();
                        let wanted = |l: &&str| {
                            l.contains(run.as_str())
                                || l.contains("WARN")
                                || l.contains("ERROR")
                                || l.contains("took the run")
                        };
                        let lines: Vec<&str> = log.lines().filter(wanted).collect();
                        format!("== {} {}\n{}", p.role, p.port, lines.join("\n"))
                    })
                    .collect();
                let (calls, seed) = (cluster.llm.received().len(), faults.seed);
                let dead = cluster.dead_letters().await;
                // Where it stopped: the last events of its thread's log.
                let log = ada.get(&b, &format!("/api/v1/threads/{run_thread}/events?after=0")).await;
                let last: Vec<String> = log.as_array().map_or_else(Vec::new, |events| {
                    let from = events.len().saturating_sub(8);
                    events[from..].iter().map(|e| e.to_string().chars().take(300).collect()).collect()
                });
                panic!(
                    "run {run} did not end ({calls} model calls in all; CAIRN_TEST_FAULT_SEED={seed}): {got}\n\
                     its thread's last events:\n{}\ndead letters:\n{dead}{}",
                    last.join("\n"),
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(ended["status"], "succeeded", "{ended}");
    }
    let all_done = started.elapsed();
    // Every watcher gets the time to catch up with its thread's log.
    for (thread, watcher) in std::iter::once((&thread, &watcher)).chain(threads.iter().map(|(t, _, w)| (t, w))) {
        let log = ada.get(&b, &format!("/api/v1/threads/{thread}/events?after=0")).await;
        watcher.caught_up(log.as_array().unwrap().last().unwrap()["seq"].as_i64().unwrap()).await;
    }
    stop.send_replace(true);
    let first_watch = watcher.finish().await;
    assert_eq!(check_thread(&ada, &b, &thread, Some(first_watch)).await, 1);
    check_thread(&ada, &b, &looping, None).await;
    let mut reconnects = 0;
    for (thread, _, watcher) in threads {
        let watched = watcher.finish().await;
        reconnects += watched.1;
        assert_eq!(check_thread(&ada, &b, &thread, Some(watched)).await, 1);
    }
    // Each run saved its artifact once, whatever it went through: one
    // version of report.txt per run.
    let versions = ada.get(&b, &format!("/api/v1/projects/{project}/files/versions?path=report.txt")).await;
    let by_run: Vec<&str> = versions.as_array().unwrap().iter().map(|v| v["run_id"].as_str().unwrap()).collect();
    let distinct: BTreeSet<&str> = by_run.iter().copied().collect();
    assert_eq!((by_run.len(), distinct.len()), (9, 9), "one version per run: {versions}");
    // What the faults did, from the processes' own logs.
    let count = |what: &str| -> usize {
        let logs = cluster.workers.iter().chain(cluster.gateways.iter()).map(Process::log);
        logs.map(|log| log.matches(what).count()).sum()
    };
    let resumed = count("resuming a run from its last checkpoint");
    let moved = count("moved a sandbox whose host is gone");
    let most = most_deliveries(cluster.workers.iter().map(Process::log));
    eprintln!(
        "faults over after {faults_over:?}, every run done after {all_done:?}; {reconnects} watcher reconnections; \
         {resumed} runs resumed from a checkpoint by another worker; {moved} sandboxes moved off the killed host; \
         at most {most} deliveries of one run's job"
    );
    assert!(resumed >= 1, "the worker kills struck runs in progress");
    for process in cluster.gateways.iter_mut().chain(cluster.workers.iter_mut()).chain(cluster.hosts.iter_mut()) {
        process.terminate();
    }
}
