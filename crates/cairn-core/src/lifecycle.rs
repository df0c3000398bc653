//! Deleting what a team no longer wants: a thread or a project is hidden at
//! once and removed by a background job ([`Deletion`]) that survives
//! restarts and reports its progress.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{DeletionId, ProjectId, UserId};

crate::model::string_enum!(
    /// What a deletion removes.
    DeletionKind, "deletion kind" {
        /// A thread: its messages, events, runs, checkpoints, sandboxes and
        /// workspaces, and the memory its runs kept.
        Thread => "thread",
        /// A project: its threads as above, its library (every version, in
        /// the object store), memory, API keys, webhooks, schedules, MCP
        /// servers and service accounts.
        Project => "project",
    }
);

crate::model::string_enum!(
    /// Where a deletion stands.
    DeletionStatus, "deletion status" {
        /// Queued: the target is hidden, nothing removed yet.
        Pending => "pending",
        /// A process is removing it (or was, and died: another takes it
        /// over when its lease runs out).
        Running => "running",
        /// Everything is gone.
        Done => "done",
    }
);

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

/// A member's spending limit on models, per calendar month (UTC): in one
/// project, or across all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberBudget {
    /// `None`: across every project.
    pub project_id: Option<ProjectId>,
    pub user_id: UserId,
    pub monthly_usd: f64,
    pub set_by: UserId,
    pub updated_at: OffsetDateTime,
}

/// The first instant of the calendar month (UTC) `at` falls in: member
/// budgets count from there.
pub fn month_start(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.date().replace_day(1).unwrap_or(at.date()).midnight().assume_utc()
}

/// The events retention keeps of a run whose step details it removes: the
/// messages, the run's statuses (its answer among them), the files it
/// saved, what its model calls cost, its plan, the questions it asked and
/// the budget that stopped it. Code, outputs, observations, streamed tokens
/// and reasoning go.
pub const KEPT_EVENT_KINDS: &[&str] =
    &["message.created", "run.status", "artifact", "usage", "plan", "interrupt", "run.budget"];

/// What one pruning removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub events: u64,
    pub checkpoints: u64,
    /// The runs pruned, with their threads (their pictures go too).
    pub pruned: Vec<(crate::ThreadId, crate::RunId)>,
}
