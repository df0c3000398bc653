//! The wire types of deleting a project or an account.

use std::collections::HashMap;

use cairn_core::lifecycle::{Deletion, DeletionKind, DeletionStatus};
use cairn_core::{DeletionId, ProjectId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::wire::accounts::UserResponse;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletionResponse {
    pub id: DeletionId,
    pub kind: DeletionKind,
    /// The thread's or the project's id.
    #[schema(value_type = String, format = Uuid)]
    pub target: uuid::Uuid,
    pub project_id: ProjectId,
    pub status: DeletionStatus,
    /// Steps done of `steps_total` (a project counts one per thread, then
    /// its sandboxes, its files and its records); 0 of 0 until a worker
    /// took the job up.
    pub steps_done: i64,
    pub steps_total: i64,
    /// How many times a worker took the job up (more than one after a
    /// restart or a failure).
    pub attempts: i64,
    /// Why the last attempt failed; it is tried again.
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<Deletion> for DeletionResponse {
    fn from(d: Deletion) -> Self {
        DeletionResponse {
            id: d.id,
            kind: d.kind,
            target: d.target,
            project_id: d.project_id,
            status: d.status,
            steps_done: d.steps_done,
            steps_total: d.steps_total,
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: d.created_at,
            finished_at: d.finished_at,
        }
    }
}

/// What becomes of a project the account owns alone.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SoleOwnedChoice {
    /// Delete it with everything in it.
    Delete,
    /// Make this member its owner.
    HandOverTo(UserId),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's password (deleting one's own account).
    #[serde(default)]
    pub password: Option<String>,
    /// For each project the account owns alone: `"delete"`, or
    /// `{"hand_over_to": "<member's id>"}`. Every such project must be named.
    #[serde(default)]
    pub projects: HashMap<ProjectId, SoleOwnedChoice>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountDeletedResponse {
    /// The account as it now is: erased and disabled.
    pub user: UserResponse,
    /// The deletions of the projects that were to go.
    pub deletions: Vec<DeletionResponse>,
    /// Projects handed over: project id to new owner.
    pub handed_over: HashMap<ProjectId, UserId>,
}
