//! The wire types of administration: users, and the sandboxes and sandbox
//! hosts of the cluster.

use cairn_core::UserId;
use serde::{Deserialize, Serialize};

use crate::wire::accounts::GlobalRole;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UsersQuery {
    /// Continue after this user (the last id of the previous page).
    pub after: Option<UserId>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateUserRequest {
    /// Disable (tokens and keys stop working at once) or enable the account.
    pub disabled: Option<bool>,
    /// The global role.
    pub role: Option<GlobalRole>,
}

/// One sandbox, as the administration page lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SandboxSummary {
    pub id: cairn_core::SandboxId,
    pub owner: UserId,
    pub thread: Option<cairn_core::ThreadId>,
    /// Its kernel runs (not paused).
    pub running: bool,
    /// An execution runs now (as last known).
    pub busy: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub active_at: time::OffsetDateTime,
}

/// A sandbox host and its sandboxes; `local` for this process's own.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SandboxHostResponse {
    /// Its address (`local`: sandboxes of this process).
    pub host: String,
    /// Sandboxes it runs at most at once (absent for this process's own).
    pub capacity: Option<u32>,
    /// Its heartbeat is recent (a registered host), or it is this process.
    pub live: bool,
    pub draining: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub heartbeat_at: Option<time::OffsetDateTime>,
    pub sandboxes: Vec<SandboxSummary>,
}
