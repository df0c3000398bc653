//! Moving a gigabyte through the library keeps the server's memory flat. In
//! a test binary of its own: memory is measured for the whole process, so
//! nothing else may run beside it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use cairn_config::Config;
use cairn_testkit::Starter;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::files_api::{Api, local, s3};

cairn_testkit::on_backends!(on_local: local, on_s3: s3;
    a_gigabyte_goes_up_and_down_in_bounded_memory,
);

fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

/// 1 GiB up and down through the real server, generated and checked on the
/// fly: the process's memory must not grow with the file.
async fn a_gigabyte_goes_up_and_down_in_bounded_memory(start: impl Starter<Config, Api>) {
    const SIZE: usize = 1 << 30;
    const CHUNK: usize = 1 << 20;
    // Memory is measured for the whole test process: one gigabyte at a time.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let api = start(|c| c.files.max_upload_bytes = 2 << 30).await;
    let before = resident_mib();
    let pattern: Bytes = (0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let mut expected = Sha256::new();
    for _ in 0..SIZE / CHUNK {
        expected.update(&pattern);
    }
    let expected: String = expected.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let chunks = {
        let pattern = pattern.clone();
        futures::stream::iter((0..SIZE / CHUNK).map(move |_| Ok::<_, std::io::Error>(pattern.clone())))
    };
    let uploaded = api
        .client
        .put(api.url("/files/content?path=big/gigabyte.bin"))
        .bearer_auth(&api.owner)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let file: Value = uploaded.json().await.unwrap();
    assert_eq!(file["size"], SIZE);
    assert_eq!(file["sha256"], expected.as_str());
    let peak_up = resident_mib();

    let download = api
        .client
        .get(api.url(&format!("/files/{}/content", file["id"].as_str().unwrap())))
        .bearer_auth(&api.owner)
        .send()
        .await
        .unwrap();
    let mut stream = download.bytes_stream();
    let mut hasher = Sha256::new();
    let mut received = 0usize;
    let mut peak_down: f64 = 0.0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        received += chunk.len();
        hasher.update(&chunk);
        if received % (64 * CHUNK) < chunk.len() {
            peak_down = peak_down.max(resident_mib());
        }
    }
    assert_eq!(received, SIZE);
    let got: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, expected);
    let growth = peak_up.max(peak_down) - before;
    println!("1 GiB up and down: resident memory grew by {growth:.0} MiB (before {before:.0} MiB)");
    assert!(growth < 200.0, "memory grew by {growth:.0} MiB moving 1 GiB");
}
