//! Cloud object stores on 127.0.0.1 for the file tests: Google Cloud
//! Storage's emulator (`gcp-storage-emulator`, from PyPI) and Azure Blob
//! Storage's (`azurite-blob`, from npm). The test command installs both and
//! names them in `CAIRN_TEST_GCS_EMULATOR` and `CAIRN_TEST_AZURITE`; each
//! test starts its own, with one empty bucket or container, stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use tokio::net::TcpStream;

use crate::TempDir;

/// The GCS emulator's executable.
pub const GCS_EMULATOR_ENV: &str = "CAIRN_TEST_GCS_EMULATOR";
/// Azurite's Blob Storage executable (`azurite-blob`).
pub const AZURITE_ENV: &str = "CAIRN_TEST_AZURITE";

/// Azurite's well-known development account and key (public, documented by
/// Microsoft for the emulator).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn cache_dir() -> PathBuf {
    std::env::var("CAIRN_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/cairn"))
}

/// The executable named by `variable`, else the first of `fallbacks` that
/// exists; panics naming the variable when there is none.
fn executable(variable: &str, fallbacks: &[PathBuf], what: &str) -> PathBuf {
    if let Ok(path) = std::env::var(variable) {
        return PathBuf::from(path);
    }
    fallbacks.iter().find(|p| p.exists()).cloned().unwrap_or_else(|| {
        panic!("{what} is needed and was not found: run ./scripts/test.sh once (it installs it) or set {variable}")
    })
}

async fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    for _ in 0..600 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited while starting ({status})");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not start on 127.0.0.1:{port} within 15 s");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("port").port()
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A GCS JSON API on 127.0.0.1 with one empty bucket (in memory).
#[derive(Debug)]
pub struct GcsServer {
    pub endpoint: String,
    pub bucket: String,
    child: Child,
}

impl GcsServer {
    pub async fn start() -> GcsServer {
        let venvs = std::fs::read_dir(cache_dir().join("venvs"))
            .map(|dir| {
                dir.filter_map(|e| e.ok().map(|e| e.path().join("bin/gcp-storage-emulator"))).collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let binary = executable(GCS_EMULATOR_ENV, &venvs, "the GCS emulator (gcp-storage-emulator)");
        let bucket = format!("b{}", uuid::Uuid::now_v7().simple());
        let port = free_port();
        let mut child = Command::new(&binary)
            .args(["start", "--host", "127.0.0.1", "--port", &port.to_string(), "--in-memory"])
            .args(["--default-bucket", &bucket])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}); set {GCS_EMULATOR_ENV}", binary.display()));
        wait_for_port(port, &mut child, "the GCS emulator").await;
        GcsServer { endpoint: format!("http://127.0.0.1:{port}"), bucket, child }
    }

    /// Points a file-service configuration at this server.
    pub fn configure(&self, files: &mut cairn_config::FilesConfig) {
        files.store_url = format!("gs://{}", self.bucket);
        files.gcs_endpoint = self.endpoint.clone();
        files.allow_http = true;
    }
}

impl Drop for GcsServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Azure Blob Storage (Azurite) on 127.0.0.1 with one empty container.
/// Azurite checks Shared Key signatures and SAS links (signature, expiry,
/// permissions).
#[derive(Debug)]
pub struct AzuriteServer {
    /// The account's endpoint, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub endpoint: String,
    pub container: String,
    child: Child,
    _root: TempDir,
}

impl AzuriteServer {
    pub async fn start() -> AzuriteServer {
        let fallback = cache_dir().join("tools/azurite/node_modules/.bin/azurite-blob");
        let binary = executable(AZURITE_ENV, &[fallback], "Azurite (azurite-blob)");
        let root = TempDir::new("azurite");
        let port = free_port();
        let mut child = Command::new(&binary)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--inMemoryPersistence"])
            .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"])
            // Its debug log and any other file it writes stay in the test's folder.
            .current_dir(&root.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}); set {AZURITE_ENV}", binary.display()));
        wait_for_port(port, &mut child, "Azurite").await;
        let endpoint = format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}");
        let container = format!("c{}", uuid::Uuid::now_v7().simple());
        let server = AzuriteServer { endpoint, container, child, _root: root };
        server.create_container().await;
        server
    }

    /// Creates the container with a Shared Key request (Create Container).
    async fn create_container(&self) {
        let version = "2021-08-06";
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let resource = format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{}\nrestype:container", self.container);
        let to_sign = format!("PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n{resource}");
        let key = STANDARD.decode(AZURITE_KEY).expect("the emulator's key is base64");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("an HMAC key");
        mac.update(to_sign.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let response = reqwest::Client::new()
            .put(format!("{}/{}?restype=container", self.endpoint, self.container))
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header("authorization", format!("SharedKey {AZURITE_ACCOUNT}:{signature}"))
            .header("content-length", "0")
            .send()
            .await
            .expect("Azurite answers");
        assert_eq!(response.status(), 201, "create the container: {}", response.text().await.unwrap_or_default());
    }

    /// Points a file-service configuration at this server.
    pub fn configure(&self, files: &mut cairn_config::FilesConfig) {
        files.store_url = format!("az://{}", self.container);
        files.azure_account = AZURITE_ACCOUNT.to_owned();
        files.azure_access_key = AZURITE_KEY.to_owned().into();
        files.azure_endpoint = self.endpoint.clone();
        files.allow_http = true;
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// One of the object store servers, kept running while it is held.
#[derive(Debug)]
pub enum ObjectServer {
    S3(crate::S3Server),
    Gcs(GcsServer),
    Azure(AzuriteServer),
}

impl ObjectServer {
    pub async fn s3() -> ObjectServer {
        ObjectServer::S3(crate::S3Server::start().await)
    }

    pub async fn gcs() -> ObjectServer {
        ObjectServer::Gcs(GcsServer::start().await)
    }

    pub async fn azure() -> ObjectServer {
        ObjectServer::Azure(AzuriteServer::start().await)
    }

    /// Points a file-service configuration at this server.
    pub fn configure(&self, files: &mut cairn_config::FilesConfig) {
        match self {
            ObjectServer::S3(server) => server.configure(files),
            ObjectServer::Gcs(server) => server.configure(files),
            ObjectServer::Azure(server) => server.configure(files),
        }
    }
}
