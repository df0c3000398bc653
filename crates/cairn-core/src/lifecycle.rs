//! Deleting what a team no longer wants: a thread or a project is hidden at
//! once and removed by a background job ([`Deletion`]) that survives
//! restarts and reports its progress.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{DeletionId, ProjectId, UserId};

/// What a deletion removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeletionKind {
    /// A thread: its messages, events, runs, checkpoints, sandboxes and
    /// workspaces, and the memory its runs kept.
    Thread,
    /// A project: its threads as above, its library (every version, in the
    /// object store), memory, API keys, webhooks, schedules, MCP servers and
    /// service accounts.
    Project,
}

/// Where a deletion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeletionStatus {
    /// Queued: the target is hidden, nothing removed yet.
    Pending,
    /// A process is removing it (or was, and died: another takes it over
    /// when its lease runs out).
    Running,
    /// Everything is gone.
    Done,
}

macro_rules! text_form {
    ($name:ident, $kind:literal { $($variant:ident => $text:literal),+ }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::model::UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(crate::model::UnknownVariant { kind: $kind, value: other.to_owned() }),
                }
            }
        }
    };
}

text_form!(DeletionKind, "deletion kind" { Thread => "thread", Project => "project" });
text_form!(DeletionStatus, "deletion status" { Pending => "pending", Running => "running", Done => "done" });

/// A deletion job.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    pub id: DeletionId,
    pub kind: DeletionKind,
    /// The thread's or the project's id.
    pub target: Uuid,
    /// The project the target is (or was) in.
    pub project_id: ProjectId,
    pub requested_by: UserId,
    pub status: DeletionStatus,
    /// Steps done of `steps_total` (0 of 0 until a worker counted them).
    pub steps_done: i64,
    pub steps_total: i64,
    /// Times a worker took the job up; more than one after a crash.
    pub attempts: i64,
    /// What the last attempt failed on, if it failed (it is tried again).
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

/// What happens to an account's projects in which it is the only owner when
/// the account is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoleOwned {
    /// The project is deleted with everything in it.
    Delete,
    /// This member becomes an owner first.
    HandOver(UserId),
}
