//! The application state as the binary builds it, with fixed keys and the
//! data (outbox, local objects) in a test folder.

#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;

use cairn_config::Config;
use cairn_core::bus::Bus;
use cairn_gateway::{AppState, ServerRole};
use cairn_store::Database;
use cairn_testkit::TempDir;

pub fn state(config: Config, db: &Database, bus: Bus, dir: &TempDir) -> AppState {
    let keys = if config.auth.signing_keys.is_empty() {
        vec![cairn_config::SigningKey { kid: "test".into(), secret: "A".repeat(43) }]
    } else {
        config.auth.signing_keys.clone()
    };
    let keys = cairn_auth::SigningKeys::from_config(&keys).unwrap();
    let outbox = cairn_auth::mail::Outbox::new(dir.path.join("outbox"), &config.mail.from).unwrap();
    let auth = cairn_auth::Auth::new(&config, db.store(), &bus, Arc::new(outbox), keys);
    let objects = cairn_files::Objects::from_config(&config.files, &dir.path).unwrap();
    let files = cairn_files::Files::new(&config.files, db.store(), objects, auth.clone(), &[5; 32]).unwrap();
    AppState {
        config: Arc::new(config),
        store: db.store(),
        bus,
        auth,
        files,
        role: ServerRole::All,
        registry: Arc::new(cairn_tools::Registry::builtin()),
        tools: None,
    }
}
