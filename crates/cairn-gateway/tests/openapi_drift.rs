//! The committed OpenAPI documents (`docs/openapi.json`, what integrators and
//! the web app's types are generated from, and `docs/sandbox-host.openapi.json`
//! for the sandbox host role) must match what the servers publish. After an intended API change, regenerate it with
//! `CAIRN_UPDATE_OPENAPI=1 cargo test -p cairn-gateway --test openapi_drift`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn check(file: &str, document: utoipa::openapi::OpenApi) {
    let json: serde_json::Value = serde_json::from_str(&document.to_json().unwrap()).unwrap();
    let mut ids: Vec<&str> = json["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "operation ids in {file} must be unique (name the handler or set operation_id)");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(file);
    let generated = document.to_pretty_json().unwrap() + "\n";
    if std::env::var("CAIRN_UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/{file} is out of date; regenerate it with \
         CAIRN_UPDATE_OPENAPI=1 cargo test -p cairn-gateway --test openapi_drift \
         (and the web app's types with `npm run gen:api` in web/)"
    );
}

#[test]
fn committed_openapi_document_matches_the_code() {
    check("openapi.json", cairn_gateway::openapi_document());
}

#[test]
fn committed_sandbox_host_document_matches_the_code() {
    check("sandbox-host.openapi.json", cairn_gateway::sandbox_host_openapi_document());
}
