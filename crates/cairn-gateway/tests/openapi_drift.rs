//! The committed OpenAPI document (`docs/openapi.json`, what integrators and
//! the web app's types are generated from) must match what the server
//! publishes. After an intended API change, regenerate it with
//! `CAIRN_UPDATE_OPENAPI=1 cargo test -p cairn-gateway --test openapi_drift`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn committed_openapi_document_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = cairn_gateway::openapi_document().to_pretty_json().unwrap() + "\n";
    if std::env::var("CAIRN_UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date; regenerate it with \
         CAIRN_UPDATE_OPENAPI=1 cargo test -p cairn-gateway --test openapi_drift"
    );
}
