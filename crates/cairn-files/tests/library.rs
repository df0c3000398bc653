//! The project library through the same service on every object store: the
//! local backend, a real S3 server (s3s-fs, which checks signatures and
//! expiry), Google Cloud Storage's emulator and Azure's (Azurite, which
//! checks Shared Key and SAS signatures).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_auth::{Auth, Credential, Principal};
use cairn_config::{Config, FilesConfig};
use cairn_core::model::{NewProject, Role};
use cairn_core::store::Store;
use cairn_core::{ProjectId, SessionId};
use cairn_files::{ByteRange, Error, Files, Objects};
use cairn_store::{Database, OpenOptions};
use cairn_testkit::{ObjectServer, Starter, TempDir};
use futures::{StreamExt, TryStreamExt, stream};
use sha2::Digest;

struct Library {
    files: Files,
    store: Arc<dyn Store>,
    owner: Principal,
    viewer: Principal,
    stranger: Principal,
    project: ProjectId,
    other_project: ProjectId,
    _dir: TempDir,
    _server: Option<ObjectServer>,
}

async fn person(store: &Arc<dyn Store>, email: &str) -> Principal {
    let user = cairn_testkit::seed::user(store.as_ref(), email).await;
    Principal { user: Arc::new(user), credential: Credential::Session(SessionId::new()) }
}

async fn library(server: Option<ObjectServer>, tweak: fn(&mut FilesConfig)) -> Library {
    let dir = TempDir::new("files");
    let db = Database::open(&dir.sqlite_url(), &OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    let store = db.store();
    let bus = cairn_bus::in_process(db.queue(Default::default()));
    let mut config = Config { data_dir: dir.path.clone(), ..Config::default() };
    if let Some(server) = &server {
        server.configure(&mut config.files);
    }
    tweak(&mut config.files);
    let key = cairn_config::SigningKey { kid: "k".into(), secret: "A".repeat(43).into() };
    let keys = cairn_auth::SigningKeys::from_config(&[key]).unwrap();
    let outbox = cairn_auth::mail::Outbox::new(dir.path.join("outbox"), "Cairn <c@localhost>").unwrap();
    let auth = Auth::new(&config, store.clone(), &bus, Arc::new(outbox), keys);
    let objects = Objects::from_config(&config.files, &dir.path).unwrap();
    let files = Files::new(&config.files, store.clone(), objects, auth, &[9; 32]).unwrap();
    let owner = person(&store, "owner@example.com").await;
    let viewer = person(&store, "viewer@example.com").await;
    let stranger = person(&store, "stranger@example.com").await;
    let project = store.create_project(NewProject { name: "P".into(), owner: owner.user.id }).await.unwrap().id;
    let other_project =
        store.create_project(NewProject { name: "Q".into(), owner: stranger.user.id }).await.unwrap().id;
    store.set_member(project, viewer.user.id, Role::Viewer).await.unwrap();
    Library { files, store, owner, viewer, stranger, project, other_project, _dir: dir, _server: server }
}

async fn local(tweak: fn(&mut FilesConfig)) -> Library {
    library(None, tweak).await
}

async fn s3(tweak: fn(&mut FilesConfig)) -> Library {
    library(Some(ObjectServer::s3().await), tweak).await
}

async fn gcs(tweak: fn(&mut FilesConfig)) -> Library {
    library(Some(ObjectServer::gcs().await), tweak).await
}

async fn azure(tweak: fn(&mut FilesConfig)) -> Library {
    library(Some(ObjectServer::azure().await), tweak).await
}

fn body(chunks: &[&[u8]]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
    let chunks: Vec<Result<Bytes, std::io::Error>> = chunks.iter().map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(chunks)
}

async fn read_all(download: cairn_files::Download) -> Vec<u8> {
    download
        .body
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .unwrap()
}

/// Objects the store holds for the project (to prove failures leave none).
async fn objects_of(lib: &Library) -> usize {
    let prefix = object_store::path::Path::from(format!("projects/{}", lib.project));
    lib.files.objects().store().list(Some(&prefix)).collect::<Vec<_>>().await.len()
}

cairn_testkit::on_backends!(on_local: local, on_s3: s3, on_gcs: gcs, on_azure: azure;
    uploads_stream_in_and_come_back_intact,
    uploading_again_keeps_the_old_version,
    failed_uploads_leave_nothing_behind,
    folders_are_listed_renamed_moved_and_deleted,
    ranges_are_served,
    links_work_until_they_expire_and_refuse_tampering,
    links_signed_by_cairn_work_on_every_store,
    access_follows_project_roles,
    a_folder_downloads_as_a_zip,
    artifacts_carry_their_lineage,
);

async fn uploads_stream_in_and_come_back_intact(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|_| {}).await;
    let csv = b"year,value\n2024,1\n2025,2\n";
    let record =
        lib.files.upload(&lib.owner, lib.project, "data/trend.csv", body(&[&csv[..10], &csv[10..]])).await.unwrap();
    assert_eq!((record.path.as_str(), record.version, record.size), ("data/trend.csv", 1, csv.len() as i64));
    assert_eq!(record.content_type, "text/csv; charset=utf-8");
    let expected: String = sha2::Sha256::digest(csv).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(record.sha256, expected);
    assert_eq!(record.created_by, Some(lib.owner.user.id));
    let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
    let image = lib.files.upload(&lib.owner, lib.project, "chart.txt", body(&[&png])).await.unwrap();
    assert_eq!(image.content_type, "image/png", "sniffed, not taken from the name");
    let back = read_all(lib.files.download(&lib.owner, lib.project, record.id, None).await.unwrap()).await;
    assert_eq!(back, csv);
    let empty = lib.files.upload(&lib.owner, lib.project, "empty.txt", body(&[])).await.unwrap();
    assert_eq!(empty.size, 0);
    assert!(read_all(lib.files.download(&lib.owner, lib.project, empty.id, None).await.unwrap()).await.is_empty());

    // Large enough for several parts (a resumable upload on GCS), in
    // uneven chunks, of a size no part boundary divides.
    let large: Vec<u8> = (0..11_800_013u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let chunks: Vec<&[u8]> = large.chunks(777_777).collect();
    let record = lib.files.upload(&lib.owner, lib.project, "large.bin", body(&chunks)).await.unwrap();
    assert_eq!(record.size, large.len() as i64);
    let back = read_all(lib.files.download(&lib.owner, lib.project, record.id, None).await.unwrap()).await;
    assert!(back == large, "the large file came back intact ({} of {} bytes)", back.len(), large.len());
}

async fn uploading_again_keeps_the_old_version(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|_| {}).await;
    let first = lib.files.upload(&lib.owner, lib.project, "report.md", body(&[b"draft"])).await.unwrap();
    let second = lib.files.upload(&lib.owner, lib.project, "report.md", body(&[b"final version"])).await.unwrap();
    assert_eq!((first.version, second.version), (1, 2));
    let versions = lib.files.versions(&lib.viewer, lib.project, "report.md").await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 1]);
    let old = read_all(lib.files.download(&lib.viewer, lib.project, first.id, None).await.unwrap()).await;
    assert_eq!(old, b"draft");
    let listing = lib.files.list(&lib.viewer, lib.project, "").await.unwrap();
    assert_eq!(listing.files, vec![second]);
}

async fn failed_uploads_leave_nothing_behind(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|c| {
        c.max_upload_bytes = 10 * 1024 * 1024;
        c.project_quota_bytes = 12 * 1024 * 1024;
    })
    .await;
    let chunk = vec![b'x'; 1024 * 1024];
    let big: Vec<&[u8]> = (0..11).map(|_| chunk.as_slice()).collect();
    let too_large = lib.files.upload(&lib.owner, lib.project, "big.bin", body(&big)).await;
    assert!(matches!(too_large, Err(Error::TooLarge { limit }) if limit == 10 * 1024 * 1024), "{too_large:?}");

    let broken = stream::iter(vec![
        Ok(Bytes::from(vec![b'y'; 6 * 1024 * 1024])),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
    ]);
    let interrupted = lib.files.upload(&lib.owner, lib.project, "partial.bin", broken).await;
    assert!(matches!(interrupted, Err(Error::Interrupted(_))), "{interrupted:?}");

    let nine: Vec<&[u8]> = (0..9).map(|_| chunk.as_slice()).collect();
    lib.files.upload(&lib.owner, lib.project, "nine.bin", body(&nine)).await.unwrap();
    let four: Vec<&[u8]> = (0..4).map(|_| chunk.as_slice()).collect();
    let over_quota = lib.files.upload(&lib.owner, lib.project, "four.bin", body(&four)).await;
    assert!(matches!(over_quota, Err(Error::QuotaExceeded { .. })), "{over_quota:?}");

    let listed: Vec<String> =
        lib.files.list(&lib.owner, lib.project, "").await.unwrap().files.into_iter().map(|f| f.path).collect();
    assert_eq!(listed, vec!["nine.bin"], "no row for what failed");
    assert_eq!(objects_of(&lib).await, 1, "no object for what failed");
    let bad = lib.files.upload(&lib.owner, lib.project, "../escape.txt", body(&[b"x"])).await;
    assert!(matches!(bad, Err(Error::InvalidPath { .. })), "{bad:?}");
    assert_eq!(lib.store.project_usage(lib.project).await.unwrap(), 9 * 1024 * 1024);
}

async fn folders_are_listed_renamed_moved_and_deleted(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|_| {}).await;
    for path in ["a.txt", "reports/q1.md", "reports/q2.md", "reports/2026/jan.md", "raw/x.csv"] {
        lib.files.upload(&lib.owner, lib.project, path, body(&[path.as_bytes()])).await.unwrap();
    }
    let root = lib.files.list(&lib.viewer, lib.project, "").await.unwrap();
    assert_eq!(root.folders, vec!["raw", "reports"]);
    assert_eq!(root.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), vec!["a.txt"]);
    let reports = lib.files.list(&lib.viewer, lib.project, "reports").await.unwrap();
    assert_eq!(reports.folders, vec!["2026"]);
    assert_eq!(reports.files.len(), 2);

    lib.files.rename(&lib.owner, lib.project, "a.txt", "notes/a.txt", false).await.unwrap();
    assert_eq!(lib.files.rename(&lib.owner, lib.project, "reports", "archive/reports", true).await.unwrap(), 3);
    let into_itself = lib.files.rename(&lib.owner, lib.project, "archive", "archive/deeper", true).await;
    assert!(matches!(into_itself, Err(Error::InvalidPath { .. })), "{into_itself:?}");
    let moved = lib.files.list(&lib.owner, lib.project, "archive/reports/2026").await.unwrap();
    let content = read_all(lib.files.download(&lib.owner, lib.project, moved.files[0].id, None).await.unwrap()).await;
    assert_eq!(content, b"reports/2026/jan.md", "moving keeps the content");
    assert_eq!(lib.files.delete(&lib.owner, lib.project, "archive", true).await.unwrap(), 3);
    assert_eq!(lib.files.list(&lib.owner, lib.project, "").await.unwrap().folders, vec!["notes", "raw"]);
    assert_eq!(objects_of(&lib).await, 2, "deleting removes the objects too");
}

async fn ranges_are_served(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|_| {}).await;
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let record = lib.files.upload(&lib.owner, lib.project, "blob.bin", body(&[&data])).await.unwrap();
    let cases = [
        (ByteRange::Bounded { start: 10, end_inclusive: 19 }, 10..20),
        (ByteRange::From(99_990), 99_990..100_000),
        (ByteRange::Last(5), 99_995..100_000),
        (ByteRange::Bounded { start: 99_000, end_inclusive: 200_000 }, 99_000..100_000),
    ];
    for (range, expected) in cases {
        let download = lib.files.download(&lib.owner, lib.project, record.id, Some(range)).await.unwrap();
        assert_eq!(download.range, expected.start as u64..expected.end as u64, "{range:?}");
        assert_eq!(read_all(download).await, data[expected].to_vec(), "{range:?}");
    }
    let beyond = lib.files.download(&lib.owner, lib.project, record.id, Some(ByteRange::From(100_000))).await;
    assert!(matches!(beyond, Err(Error::BadRange { size: 100_000 })));
}

async fn links_work_until_they_expire_and_refuse_tampering(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|c| c.link_max_ttl_secs = 600).await;
    let record = lib.files.upload(&lib.owner, lib.project, "share.txt", body(&[b"shared content"])).await.unwrap();
    let link = lib.files.link(&lib.viewer, lib.project, record.id, None).await.unwrap();
    let lifetime = link.expires_at - time::OffsetDateTime::now_utc();
    assert!((290..=300).contains(&lifetime.whole_seconds()), "default 5 minutes: {lifetime}");
    let too_long = lib.files.link(&lib.viewer, lib.project, record.id, Some(Duration::from_secs(601))).await;
    assert!(too_long.is_err());
    let short = lib.files.link(&lib.viewer, lib.project, record.id, Some(Duration::from_secs(1))).await.unwrap();
    // Local files and the GCS emulator (which has no signing key): links
    // Cairn signs; S3 and Azure: the store's own presigned links.
    let signed_by_store = matches!(lib.files.objects().kind(), "s3" | "azure");
    assert_eq!(lib.files.objects().signs_links(), signed_by_store);
    if signed_by_store {
        cloud_links_are_checked_by_the_store(&link.url, &short.url).await;
    } else {
        gateway_links_are_checked_by_cairn(&lib, &link.url, &short.url).await;
    }
}

/// Links Cairn signs work the same whatever store holds the bytes.
async fn links_signed_by_cairn_work_on_every_store(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|c| c.links = cairn_config::LinkMode::Gateway).await;
    assert!(!lib.files.objects().signs_links());
    let record = lib.files.upload(&lib.owner, lib.project, "share.txt", body(&[b"shared content"])).await.unwrap();
    let link = lib.files.link(&lib.viewer, lib.project, record.id, None).await.unwrap();
    let short = lib.files.link(&lib.viewer, lib.project, record.id, Some(Duration::from_secs(1))).await.unwrap();
    gateway_links_are_checked_by_cairn(&lib, &link.url, &short.url).await;
}

async fn gateway_links_are_checked_by_cairn(lib: &Library, url: &str, short: &str) {
    let token = url.strip_prefix("/api/v1/links/").expect("a gateway link");
    let got = read_all(lib.files.open_link(token, None).await.unwrap()).await;
    assert_eq!(got, b"shared content");
    let mut altered = token.to_owned();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(matches!(lib.files.open_link(&altered, None).await, Err(Error::LinkInvalid(_))));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = lib.files.open_link(short.strip_prefix("/api/v1/links/").unwrap(), None).await;
    assert!(matches!(expired, Err(Error::LinkInvalid("this download link has expired"))));
}

/// `url` with its query parameter `name` set to `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    assert!(url.query_pairs().any(|(k, _)| k == name), "{name} in {url}");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| if k == name { (k.into_owned(), value.to_owned()) } else { (k.into_owned(), v.into_owned()) })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

async fn cloud_links_are_checked_by_the_store(url: &str, short: &str) {
    assert!(url.starts_with("http"), "a presigned link is absolute: {url}");
    let ok = reqwest::get(url).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().await.unwrap(), "shared content");
    // S3 signs a lifetime in seconds, Azure an end time.
    let (expiry, longer, signature, forged) = if url.contains("X-Amz-Signature=") {
        ("X-Amz-Expires", "3000".to_owned(), "X-Amz-Signature", "0".repeat(64))
    } else {
        ("se", "2099-01-01T00:00:00Z".to_owned(), "sig", format!("{}=", "A".repeat(43)))
    };
    let altered = with_param(url, expiry, &longer);
    assert_eq!(reqwest::get(&altered).await.unwrap().status(), 403, "an altered link is refused by the store");
    let forged = with_param(url, signature, &forged);
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 403, "a forged signature is refused");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(reqwest::get(short).await.unwrap().status(), 403, "an expired link is refused");
    // A well-formed write (Azure's Put Blob names the blob's type).
    let put =
        reqwest::Client::new().put(url).header("x-ms-blob-type", "BlockBlob").body("overwrite").send().await.unwrap();
    assert_eq!(put.status(), 403, "a GET link cannot write");
}

async fn access_follows_project_roles(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|_| {}).await;
    let record = lib.files.upload(&lib.owner, lib.project, "secret.txt", body(&[b"s"])).await.unwrap();
    let viewer_write = lib.files.upload(&lib.viewer, lib.project, "v.txt", body(&[b"v"])).await;
    assert!(matches!(viewer_write, Err(Error::Auth(cairn_auth::Error::Forbidden(_)))), "{viewer_write:?}");
    assert!(matches!(
        lib.files.delete(&lib.viewer, lib.project, "secret.txt", false).await,
        Err(Error::Auth(cairn_auth::Error::Forbidden(_)))
    ));
    let not_found = |r: &Result<_, Error>| {
        matches!(
            r,
            Err(Error::Auth(cairn_auth::Error::Backend(cairn_core::Error::NotFound { .. })))
                | Err(Error::Backend(cairn_core::Error::NotFound { .. }))
        )
    };
    assert!(not_found(&lib.files.list(&lib.stranger, lib.project, "").await.map(|_| ())));
    assert!(not_found(&lib.files.download(&lib.stranger, lib.project, record.id, None).await.map(|_| ())));
    assert!(not_found(&lib.files.link(&lib.stranger, lib.project, record.id, None).await.map(|_| ())));
    // Naming one's own project does not reach another project's file.
    assert!(not_found(&lib.files.download(&lib.stranger, lib.other_project, record.id, None).await.map(|_| ())));
}

async fn a_folder_downloads_as_a_zip(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|_| {}).await;
    for (path, content) in [("out/a.txt", "alpha"), ("out/sub/b.csv", "x,y\n1,2\n"), ("elsewhere.txt", "no")] {
        lib.files.upload(&lib.owner, lib.project, path, body(&[content.as_bytes()])).await.unwrap();
    }
    let zip: Vec<u8> = lib
        .files
        .zip(&lib.viewer, lib.project, "out")
        .await
        .unwrap()
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .unwrap();
    // async_zip 0.0.19 marks its readers deprecated in favour of a `read1`
    // module that it does not ship yet.
    #[allow(deprecated)]
    let reader = async_zip::base::read::mem::ZipFileReader::new(zip).await.expect("a valid zip");
    let mut entries = Vec::new();
    for index in 0..reader.file().entries().len() {
        let name = reader.file().entries()[index].filename().as_str().unwrap().to_owned();
        let mut content = String::new();
        let mut entry = reader.reader_with_entry(index).await.unwrap();
        entry.read_to_string_checked(&mut content).await.unwrap();
        entries.push((name, content));
    }
    assert_eq!(entries, vec![("a.txt".into(), "alpha".into()), ("sub/b.csv".into(), "x,y\n1,2\n".into())]);
    assert!(lib.files.zip(&lib.viewer, lib.project, "nothing-here").await.is_err());
}

async fn artifacts_carry_their_lineage(start: impl Starter<FilesConfig, Library>) {
    let lib = start(|_| {}).await;
    let thread = lib
        .store
        .create_thread(cairn_core::model::NewThread {
            project_id: lib.project,
            title: "t".into(),
            created_by: lib.owner.user.id,
            model: None,
        })
        .await
        .unwrap();
    let run = lib
        .store
        .create_run(cairn_core::model::NewRun {
            thread_id: thread.id,
            created_by: lib.owner.user.id,
            trace_parent: None,
        })
        .await
        .unwrap()
        .id;
    let unknown = lib.files.save_artifact(lib.project, "x.txt", body(&[b"x"]), cairn_core::RunId::new(), 1, None).await;
    assert!(unknown.is_err(), "lineage must name a real run");
    let artifact = lib
        .files
        .save_artifact(lib.project, "outputs/chart.png", body(&[b"\x89PNG\r\n\x1a\n...."]), run, 7, None)
        .await
        .unwrap();
    assert_eq!((artifact.run_id, artifact.step, artifact.created_by), (Some(run), Some(7), None));
    let listing = lib.files.list(&lib.viewer, lib.project, "outputs").await.unwrap();
    assert_eq!(listing.files, vec![artifact.clone()]);

    // The same step saving the same path again (a step re-run after a
    // crash) gets the first version back; another step makes a new one.
    let again =
        lib.files.save_artifact(lib.project, "outputs/chart.png", body(&[b"other"]), run, 7, None).await.unwrap();
    assert_eq!(again, artifact, "idempotent per run, step and path");
    let next = lib.files.save_artifact(lib.project, "outputs/chart.png", body(&[b"next"]), run, 8, None).await.unwrap();
    assert_eq!(next.version, 2);
    // Still once when the path has newer versions since (another run, or a
    // later step, saved it): the re-run step gets its own version back.
    let rerun =
        lib.files.save_artifact(lib.project, "outputs/chart.png", body(&[b"again"]), run, 7, None).await.unwrap();
    assert_eq!(rerun, artifact, "idempotent whatever was saved at that path since");
    assert_eq!(lib.files.versions(&lib.viewer, lib.project, "outputs/chart.png").await.unwrap().len(), 2);
}
