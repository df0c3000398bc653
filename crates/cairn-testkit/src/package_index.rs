//! A package index on 127.0.0.1 for package-install tests: PEP 503's
//! "simple" API (`/simple/<name>/`, an HTML page of links) serving wheels
//! this fixture builds itself, and a log of the paths asked for.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use sha2::Digest;

/// A pure-Python package: `name` (as pip spells it), `version`, and its
/// module's source (the module is `name` with `-` as `_`).
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub source: String,
}

impl Package {
    pub fn new(name: &str, version: &str, source: &str) -> Package {
        Package { name: name.to_owned(), version: version.to_owned(), source: source.to_owned() }
    }

    fn module(&self) -> String {
        self.name.replace('-', "_")
    }

    /// The wheel's file name (`name-version-py3-none-any.whl`).
    pub fn wheel_name(&self) -> String {
        format!("{}-{}-py3-none-any.whl", self.module(), self.version)
    }

    /// Builds the wheel: the module, and the `.dist-info` pip reads
    /// (`METADATA`, `WHEEL`, and `RECORD` with each file's hash).
    pub async fn wheel(&self) -> Vec<u8> {
        use async_zip::base::write::ZipFileWriter;
        use async_zip::{Compression, ZipEntryBuilder};
        let info = format!("{}-{}.dist-info", self.module(), self.version);
        let files = [
            (format!("{}/__init__.py", self.module()), self.source.clone()),
            (
                format!("{info}/METADATA"),
                format!("Metadata-Version: 2.1\nName: {}\nVersion: {}\n", self.name, self.version),
            ),
            (
                format!("{info}/WHEEL"),
                "Wheel-Version: 1.0\nGenerator: cairn-testkit\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_owned(),
            ),
        ];
        let mut record = String::new();
        let mut zip = ZipFileWriter::new(Vec::new());
        for (name, text) in &files {
            let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(text.as_bytes()));
            record.push_str(&format!("{name},sha256={digest},{}\n", text.len()));
            zip.write_entry_whole(ZipEntryBuilder::new(name.clone().into(), Compression::Deflate), text.as_bytes())
                .await
                .expect("a wheel entry");
        }
        record.push_str(&format!("{info}/RECORD,,\n"));
        zip.write_entry_whole(
            ZipEntryBuilder::new(format!("{info}/RECORD").into(), Compression::Deflate),
            record.as_bytes(),
        )
        .await
        .expect("the wheel's RECORD");
        zip.close().await.expect("a wheel")
    }
}

#[derive(Debug, Default)]
struct Served {
    /// Project name (normalised) → (wheel name, bytes).
    wheels: HashMap<String, Vec<(String, Vec<u8>)>>,
    asked: Vec<String>,
}

/// The running index; it stops when dropped.
#[derive(Debug)]
pub struct PackageIndex {
    pub address: SocketAddr,
    served: Arc<Mutex<Served>>,
    task: tokio::task::JoinHandle<()>,
}

impl PackageIndex {
    /// Builds the packages' wheels and serves them on a free port of
    /// 127.0.0.1.
    pub async fn start(packages: &[Package]) -> PackageIndex {
        let mut served = Served::default();
        for package in packages {
            let wheel = package.wheel().await;
            served.wheels.entry(normalise(&package.name)).or_default().push((package.wheel_name(), wheel));
        }
        let served = Arc::new(Mutex::new(served));
        let app = Router::new()
            .route("/simple/{project}/", get(project_page))
            .route("/files/{wheel}", get(file))
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port for the package index");
        let address = listener.local_addr().expect("the index's address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PackageIndex { address, served, task }
    }

    /// The index URL pip is given (`http://127.0.0.1:PORT/simple`).
    pub fn url(&self) -> String {
        format!("http://{}/simple", self.address)
    }

    /// The paths asked for so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.served.lock().unwrap_or_else(std::sync::PoisonError::into_inner).asked.clone()
    }
}

impl Drop for PackageIndex {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// PEP 503's normalised name.
fn normalise(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mut out = String::new();
    for c in lower.chars() {
        let c = if matches!(c, '-' | '_' | '.') { '-' } else { c };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

async fn project_page(State(served): State<Arc<Mutex<Served>>>, Path(project): Path<String>) -> Response {
    let mut served = served.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    served.asked.push(format!("/simple/{project}/"));
    let Some(wheels) = served.wheels.get(&normalise(&project)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let links: String = wheels
        .iter()
        .map(|(name, bytes)| {
            let digest: String = sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
            format!("<a href=\"../../files/{name}#sha256={digest}\">{name}</a><br>\n")
        })
        .collect();
    let page = format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n");
    ([(header::CONTENT_TYPE, "text/html")], page).into_response()
}

async fn file(State(served): State<Arc<Mutex<Served>>>, Path(wheel): Path<String>) -> Response {
    let mut served = served.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    served.asked.push(format!("/files/{wheel}"));
    let found = served.wheels.values().flatten().find(|(name, _)| *name == wheel).map(|(_, bytes)| bytes.clone());
    match found {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
