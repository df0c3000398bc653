//! Audit entries the gateway writes itself (the authentication service
//! writes its own): who did it — a person, or a key, whose owner may be a
//! project's service account — from where, to what.

use cairn_auth::{Credential, Principal};
use cairn_core::ProjectId;
use cairn_core::model::NewAuditEntry;
use serde_json::Value;

use crate::AppState;

/// Records `action` by `principal`; a key's id joins the detail. A failure
/// to write is logged, never the caller's error.
pub(crate) async fn record(
    state: &AppState,
    principal: &Principal,
    project: Option<ProjectId>,
    action: &str,
    mut detail: Value,
    addr: &str,
) {
    if let (Credential::ApiKey { key, .. }, Some(map)) = (&principal.credential, detail.as_object_mut()) {
        map.insert("key".to_owned(), Value::String(key.to_string()));
    }
    let entry = NewAuditEntry {
        actor: Some(principal.user.id),
        project_id: project,
        action: action.to_owned(),
        detail,
        client_addr: (!addr.is_empty()).then(|| addr.to_owned()),
    };
    if let Err(error) = state.store.record_audit(entry).await {
        tracing::error!(%error, action, "cannot write the audit log");
    }
}
