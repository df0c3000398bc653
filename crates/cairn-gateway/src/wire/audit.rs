//! The wire types of the audit log: its entries, filters and exports.

use cairn_core::model::{AuditEntry, AuditFilter, AuditOutcome};
use cairn_core::{AuditId, ProjectId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Continue with entries older than this one.
    pub before: Option<AuditId>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<i64>,
    /// Done by this account (a person or a service account).
    pub actor: Option<UserId>,
    /// In this project (administrators; a project's own log is always its own).
    pub project_id: Option<ProjectId>,
    /// One action (`run.started`), or a family ending in a dot (`run.`).
    pub action: Option<String>,
    pub outcome: Option<AuditOutcome>,
    /// From this time on (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<OffsetDateTime>,
    /// Before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<OffsetDateTime>,
}

impl AuditQuery {
    pub fn filter(&self) -> AuditFilter {
        AuditFilter {
            before: self.before,
            actor: self.actor,
            project: self.project_id,
            action: self.action.clone(),
            outcome: self.outcome,
            since: self.since,
            until: self.until,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One row per entry, the detail as JSON in the last column.
    #[default]
    Csv,
    /// One JSON array of entries.
    Json,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `csv` (default) or `json`.
    #[serde(default)]
    #[param(inline)]
    pub format: ExportFormat,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntryResponse {
    pub id: AuditId,
    pub actor: Option<UserId>,
    pub project_id: Option<ProjectId>,
    /// A dotted verb such as `auth.sign_in_failed` or `member.added`.
    pub action: String,
    /// What it was done to, as `kind:id` (`thread:…`, `user:…`); `null` when
    /// it is the project itself, or nothing in particular.
    pub target: Option<String>,
    pub outcome: cairn_core::model::AuditOutcome,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub client_addr: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(entry: AuditEntry) -> Self {
        AuditEntryResponse {
            id: entry.id,
            actor: entry.actor,
            project_id: entry.project_id,
            action: entry.action,
            target: entry.target,
            outcome: entry.outcome,
            detail: entry.detail,
            client_addr: entry.client_addr,
            created_at: entry.created_at,
        }
    }
}
