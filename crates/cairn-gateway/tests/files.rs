//! The library over HTTP, on the local backend, a real S3 server and the
//! GCS and Azure emulators.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use cairn_config::Config;
use cairn_testkit::Starter;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use support::files_api::{Api, azure, gcs, local, s3};

cairn_testkit::on_backends!(on_local: local, on_s3: s3, on_gcs: gcs, on_azure: azure;
    upload_list_version_move_delete,
    downloads_are_ranged_sandboxed_attachments,
    links_download_without_signing_in_until_they_expire,
    roles_decide_who_reads_and_writes,
    oversized_and_interrupted_uploads_leave_nothing,
    folders_download_as_zip,
);

async fn upload_list_version_move_delete(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("data.csv"))
        .part(
            "file",
            reqwest::multipart::Part::bytes(png.to_vec()).file_name("chart.html").mime_str("text/html").unwrap(),
        );
    let uploaded =
        api.client.post(api.url("/files?folder=reports")).bearer_auth(&api.owner).multipart(form).send().await.unwrap();
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let uploaded: Value = uploaded.json().await.unwrap();
    assert_eq!(uploaded[0]["path"], "reports/data.csv");
    assert_eq!(uploaded[1]["content_type"], "image/png", "the client's claim is not trusted");
    assert_eq!(uploaded[1]["name"], "chart.html");

    let first = api.put(&api.owner, "notes.md", b"v1").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second: Value = api.put(&api.owner, "notes.md", b"version two").await.json().await.unwrap();
    assert_eq!(second["version"], 2);
    let (_, versions) = api.json(Method::GET, &api.viewer, "/files/versions?path=notes.md", None).await;
    assert_eq!(versions.as_array().unwrap().len(), 2);

    let (status, root) = api.json(Method::GET, &api.viewer, "/files", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(root["folders"], json!(["reports"]));
    assert_eq!(root["files"][0]["path"], "notes.md");

    let (status, moved) = api
        .json(
            Method::POST,
            &api.owner,
            "/files/move",
            Some(json!({ "from": "reports", "to": "archive", "folder": true })),
        )
        .await;
    assert_eq!((status, &moved), (StatusCode::OK, &json!({ "moved": 2 })));
    let (status, _) = api
        .json(Method::POST, &api.owner, "/files/move", Some(json!({ "from": "notes.md", "to": "archive/data.csv" })))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let deleted =
        api.client.delete(api.url("/files?path=archive&folder=true")).bearer_auth(&api.owner).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (_, root) = api.json(Method::GET, &api.viewer, "/files", None).await;
    assert_eq!(root["folders"], json!([]));
    let traversal = api.put(&api.owner, "..%2Fescape.txt", b"x").await;
    assert_eq!(traversal.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = traversal.json().await.unwrap();
    assert_eq!(body["code"], "invalid_path");
}

async fn downloads_are_ranged_sandboxed_attachments(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let file: Value = api.put(&api.owner, "data/blob.bin", &data).await.json().await.unwrap();
    let content = api.url(&format!("/files/{}/content", file["id"].as_str().unwrap()));
    let whole = api.client.get(&content).bearer_auth(&api.viewer).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    let headers = whole.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"blob.bin\""));
    assert!(headers["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap(), data);
    let part = api.client.get(&content).bearer_auth(&api.viewer).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/70000");
    assert_eq!(part.bytes().await.unwrap(), data[100..200]);
    let beyond =
        api.client.get(&content).bearer_auth(&api.viewer).header("range", "bytes=70000-").send().await.unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.headers()["content-range"], "bytes */70000");
}

async fn links_download_without_signing_in_until_they_expire(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let file: Value = api.put(&api.owner, "share.txt", b"for the client").await.json().await.unwrap();
    let links = format!("/files/{}/links", file["id"].as_str().unwrap());
    let (status, link) = api.json(Method::POST, &api.viewer, &links, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let (status, _) = api.json(Method::POST, &api.viewer, &links, Some(json!({ "expires_in_secs": 7200 }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "at most an hour");
    let (_, short) = api.json(Method::POST, &api.viewer, &links, Some(json!({ "expires_in_secs": 1 }))).await;
    let absolute = |url: &str| if url.starts_with('/') { format!("{}{url}", api.base) } else { url.to_owned() };
    let url = absolute(link["url"].as_str().unwrap());
    let anonymous = reqwest::Client::new();
    let got = anonymous.get(&url).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap(), "for the client");
    let tampered = if let Some((start, signature)) = url.split_once("X-Amz-Signature=") {
        let rest = signature.split_once('&').map(|(_, rest)| format!("&{rest}")).unwrap_or_default();
        format!("{start}X-Amz-Signature={}{rest}", "0".repeat(64))
    } else if let Some((start, signature)) = url.split_once("&sig=") {
        // Azure's SAS signature (base64, URL-encoded).
        let rest = signature.split_once('&').map(|(_, rest)| format!("&{rest}")).unwrap_or_default();
        format!("{start}&sig={}%3D{rest}", "A".repeat(43))
    } else {
        format!("{}x", url)
    };
    assert_eq!(anonymous.get(&tampered).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = anonymous.get(absolute(short["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    if url.starts_with(&api.base) {
        let body: Value = expired.json().await.unwrap();
        assert_eq!(body["code"], "link_invalid");
        let write = anonymous.put(&url).body("x").send().await.unwrap();
        assert_eq!(write.status(), StatusCode::METHOD_NOT_ALLOWED, "a link only reads");
    }
}

async fn roles_decide_who_reads_and_writes(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let file: Value = api.put(&api.owner, "secret.txt", b"s").await.json().await.unwrap();
    let id = file["id"].as_str().unwrap();
    assert_eq!(api.put(&api.viewer, "v.txt", b"v").await.status(), StatusCode::FORBIDDEN);
    for path in ["/files".to_owned(), format!("/files/{id}"), format!("/files/{id}/content")] {
        let response = api.client.get(api.url(&path)).bearer_auth(&api.stranger).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(api.put(&api.stranger, "x.txt", b"x").await.status(), StatusCode::NOT_FOUND);
    let (status, _) = api.json(Method::POST, &api.stranger, &format!("/files/{id}/links"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unauthenticated = api.client.get(api.url("/files")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

async fn oversized_and_interrupted_uploads_leave_nothing(start: impl Starter<Config, Api>) {
    let api = start(|c| c.files.max_upload_bytes = 6 * 1024 * 1024).await;
    let too_big = vec![7u8; 7 * 1024 * 1024];
    let refused = api.put(&api.owner, "big.bin", &too_big).await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");

    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(vec![1u8; 2 * 1024 * 1024])),
        Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client vanished")),
    ];
    let broken = api
        .client
        .put(api.url("/files/content?path=partial.bin"))
        .bearer_auth(&api.owner)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    assert!(broken.is_err() || broken.unwrap().status().is_client_error());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, root) = api.json(Method::GET, &api.owner, "/files", None).await;
    assert_eq!(root["files"], json!([]), "nothing listed after failed uploads");
}

async fn folders_download_as_zip(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    api.put(&api.owner, "out/a.txt", b"alpha").await;
    api.put(&api.owner, "out/deep/b.txt", b"beta").await;
    let response = api.client.get(api.url("/files/zip?folder=out")).bearer_auth(&api.viewer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert_eq!(response.headers()["content-disposition"], "attachment; filename=\"out.zip\"");
    let zip = response.bytes().await.unwrap();
    assert_eq!(&zip[..4], b"PK\x03\x04", "a zip archive");
    let text = String::from_utf8_lossy(&zip);
    assert!(text.contains("a.txt") && text.contains("deep/b.txt"));
    let missing = api.client.get(api.url("/files/zip?folder=none")).bearer_auth(&api.viewer).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
