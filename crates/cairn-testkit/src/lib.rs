//! Test support shared by Cairn's test suites: a fresh PostgreSQL database per
//! test, the Redis to use, a TCP proxy that can cut a connection to a real
//! server to show what Cairn does when a dependency goes away, and the users,
//! projects and threads most tests start from (`seed`).
//!
//! Architecture invariant: only dev-dependencies use this crate. It never
//! fakes a server Cairn owns; it finds the real one or fails loudly, naming
//! the environment variable that points at it.

// Test support: a set-up step that fails must stop the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod e2b;
mod emulators;
pub mod leftovers;
mod otlp;
mod package_index;
mod scripted_llm;
pub mod seed;

pub use e2b::E2bStandIn;
pub use emulators::{
    AZURITE_ACCOUNT, AZURITE_ENV, AZURITE_KEY, AzuriteServer, GCS_EMULATOR_ENV, GcsServer, ObjectServer,
};
pub use otlp::{CollectedSpan, OtlpCollector};
pub use package_index::{Package, PackageIndex};
pub use scripted_llm::{EMBEDDING_DIMS, Received, Reply, ScriptedLlm, scripted_embedding};

use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// PostgreSQL server (any database on it) the tests may create databases on.
pub const POSTGRES_ENV: &str = "CAIRN_TEST_POSTGRES_URL";
/// Redis server the tests use, each under its own key prefix.
pub const REDIS_ENV: &str = "CAIRN_TEST_REDIS_URL";

/// A PostgreSQL server with the `vector` extension (pgvector), for memory
/// tests; the test command starts one (from the `pgserver` package).
pub const PGVECTOR_ENV: &str = "CAIRN_TEST_PGVECTOR_URL";

fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis URL for tests.
pub fn redis_url() -> String {
    std::env::var(REDIS_ENV).unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test run uses.
pub fn unique_prefix(label: &str) -> String {
    format!("cairn-test-{label}-{}", uuid::Uuid::now_v7().simple())
}

/// A database created for one test and dropped when this value is.
#[derive(Debug)]
pub struct TestPostgres {
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestPostgres {
    /// Creates an empty database. Panics, naming the server and the variable
    /// to set, when PostgreSQL cannot be reached: a test never skips silently.
    pub async fn create() -> TestPostgres {
        TestPostgres::create_on(postgres_admin_url(), POSTGRES_ENV).await
    }

    /// Creates an empty database on the PostgreSQL that has pgvector
    /// (`CAIRN_TEST_PGVECTOR_URL`). Panics when it is not set or cannot be
    /// reached: a test never skips silently.
    pub async fn create_with_vector() -> TestPostgres {
        let url = std::env::var(PGVECTOR_ENV).unwrap_or_else(|_| {
            panic!(
                "a PostgreSQL with pgvector is needed for this test: set {PGVECTOR_ENV} (scripts/test.sh starts one)"
            )
        });
        TestPostgres::create_on(url, PGVECTOR_ENV).await
    }

    async fn create_on(admin_url: String, variable: &str) -> TestPostgres {
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is needed for this test: cannot connect to {admin_url} ({e}); start it or set {variable}"
            )
        });
        let name = format!("cairn_test_{}", uuid::Uuid::now_v7().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        TestPostgres { url: format!("{base}/{name}"), name, admin_url }
    }

    /// The URL of this database reached through `addr` (a proxy) instead.
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let after_scheme = self.url.split_once("://").map_or("", |(_, rest)| rest);
        let (userinfo, rest) = after_scheme.split_once('@').unwrap_or(("", after_scheme));
        let path = rest.split_once('/').map_or("", |(_, path)| path);
        let user = if userinfo.is_empty() { String::new() } else { format!("{userinfo}@") };
        format!("postgres://{user}{addr}/{path}")
    }

    /// The host:port of the server.
    pub fn server_addr(&self) -> String {
        let after_scheme = self.url.split_once("://").map_or("", |(_, rest)| rest);
        let rest = after_scheme.split_once('@').map_or(after_scheme, |(_, rest)| rest);
        rest.split_once('/').map_or(rest, |(host, _)| host).to_owned()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside any runtime guarantee, so use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}

/// A port on 127.0.0.1 that was free a moment ago, for a server process a
/// test starts (which binds it itself). Taken below the system's ephemeral
/// range, so no outgoing connection of another process grabs it meanwhile
/// (or after the server dies, before it is started again on it).
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low > 12_000 {
        for _ in 0..200 {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let salt = u32::from(COUNTER.fetch_add(1, Ordering::Relaxed)).wrapping_mul(7919);
            let port = 10_000 + u16::try_from((nanos ^ salt) % u32::from(low - 10_000)).unwrap_or(0);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

static COUNTER: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

/// A TCP proxy on 127.0.0.1 in front of a real server. `cut` makes the server
/// look gone (live connections are dropped, new ones closed at once);
/// `restore` brings it back on the same address.
#[derive(Debug)]
pub struct TcpProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let target = target.to_owned();
        let (task_up, task_generation) = (up.clone(), generation.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                // Subscribed before the check: a cut between the two is
                // either seen by the check or signalled to the connection.
                let mut cut = task_generation.subscribe();
                if !task_up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else { return };
                    // A cut wins over bytes waiting to be copied.
                    tokio::select! {
                        biased;
                        _ = cut.changed() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        TcpProxy { addr, up, generation, task }
    }

    /// The server "goes away": every open connection is dropped and new ones
    /// are closed as soon as they arrive.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// The server is back.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// A folder under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique_prefix(label));
        std::fs::create_dir_all(&path).expect("create temporary folder");
        TempDir { path }
    }

    /// A SQLite URL for a database file in this folder.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.path.join("cairn.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A minimal SMTP server on 127.0.0.1 that accepts every message and keeps
/// it, so mail sending is tested over a real SMTP conversation.
#[derive(Debug)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    messages: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP sink");
        let addr = listener.local_addr().expect("SMTP sink address");
        let messages = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = messages.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 cairn-test ESMTP\r\n").await;
                    let mut data: Option<String> = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(body) = data.as_mut() {
                            if line == "." {
                                store.lock().expect("messages").push(std::mem::take(body));
                                data = None;
                                let _ = write.write_all(b"250 queued\r\n").await;
                            } else {
                                body.push_str(line.strip_prefix('.').unwrap_or(&line));
                                body.push('\n');
                            }
                            continue;
                        }
                        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-cairn-test\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 go on\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        SmtpSink { addr, messages, task }
    }

    /// The messages received so far, as sent (headers and body).
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("messages").clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the S3 test server binary is: `CAIRN_TEST_S3S_FS`, else the
/// test command's tool folder, else `s3s-fs` on the PATH.
pub const S3S_FS_ENV: &str = "CAIRN_TEST_S3S_FS";

/// A real S3 endpoint on 127.0.0.1 (`s3s-fs`, which checks SigV4 signatures
/// and presigned-URL expiry), with one empty bucket. Stopped on drop.
#[derive(Debug)]
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    child: std::process::Child,
    _root: TempDir,
}

impl S3Server {
    pub async fn start() -> S3Server {
        let binary = std::env::var(S3S_FS_ENV).ok().map(std::path::PathBuf::from).unwrap_or_else(|| {
            let cache = std::env::var("CAIRN_CACHE_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| {
                std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/cairn")
            });
            let cached = cache.join("tools/bin/s3s-fs");
            if cached.exists() { cached } else { std::path::PathBuf::from("s3s-fs") }
        });
        let root = TempDir::new("s3");
        let bucket = format!("b{}", uuid::Uuid::now_v7().simple());
        std::fs::create_dir_all(root.path.join(&bucket)).expect("create the bucket folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("port").port();
        let (access_key, secret_key) = ("cairn-test".to_owned(), "cairn-test-secret-key".to_owned());
        let child = std::process::Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", &access_key])
            .args(["--secret-key", &secret_key])
            .arg(&root.path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the S3 test server is needed: cannot run {} ({e}); install it with \
                     `cargo install s3s-fs@0.14.1 --features binary` or set {S3S_FS_ENV}",
                    binary.display()
                )
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let server = S3Server { endpoint, bucket, access_key, secret_key, child, _root: root };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let endpoint = server.endpoint.clone();
        drop(server);
        panic!("the S3 test server did not start on {endpoint}");
    }
}

impl S3Server {
    /// Points a file-service configuration at this server.
    pub fn configure(&self, files: &mut cairn_config::FilesConfig) {
        files.store_url = format!("s3://{}", self.bucket);
        files.s3_endpoint = self.endpoint.clone();
        files.s3_access_key_id = self.access_key.clone().into();
        files.s3_secret_access_key = self.secret_key.clone().into();
        files.s3_path_style = true;
        files.allow_http = true;
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Something that starts a test subject `T` on one backend, given a tweak of
/// its configuration `C` — so one test body runs against every backend.
pub trait Starter<C, T>: Fn(fn(&mut C)) -> Self::Fut {
    type Fut: std::future::Future<Output = T>;
}

impl<C, T, F, Fut> Starter<C, T> for F
where
    F: Fn(fn(&mut C)) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    type Fut = Fut;
}

/// Runs every named test body on each backend: in module `$module` each
/// test calls `$name(super::$start)`.
#[macro_export]
macro_rules! on_backends {
    ($($module:ident: $start:ident),+ ; $($name:ident),+ $(,)?) => {
        $crate::on_backends!(@each [$($name),+] $($module: $start),+);
    };
    (@each [$($name:ident),+] $module:ident: $start:ident $(, $rest:ident: $rest_start:ident)*) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::$start).await; })+
        }
        $crate::on_backends!(@each [$($name),+] $($rest: $rest_start),*);
    };
    (@each [$($name:ident),+]) => {};
}

/// The container engine's socket (Docker's, or `podman system service`'s)
/// the container sandbox tests run on; the test command starts a Podman one.
pub const CONTAINER_ENGINE_ENV: &str = "CAIRN_TEST_CONTAINER_ENGINE";
/// The sandbox image in that engine (the test command builds one with
/// debootstrap and imports it).
pub const CONTAINER_IMAGE_ENV: &str = "CAIRN_TEST_CONTAINER_IMAGE";

/// The container engine's socket and the sandbox image to test with, or a
/// loud failure naming the variables.
pub fn container_engine() -> (String, String) {
    match (std::env::var(CONTAINER_ENGINE_ENV), std::env::var(CONTAINER_IMAGE_ENV)) {
        (Ok(socket), Ok(image)) if !socket.is_empty() && !image.is_empty() => (socket, image),
        _ => panic!(
            "the container sandbox tests need a container engine: set {CONTAINER_ENGINE_ENV} (its socket) and \
             {CONTAINER_IMAGE_ENV} (the sandbox image), or run ./scripts/test.sh, which starts Podman's and builds the image"
        ),
    }
}
