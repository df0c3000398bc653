//! Scheduled runs: a project's cron expression, in a time zone, that posts
//! a message as one of its service accounts.

use time::OffsetDateTime;

use crate::{ProjectId, RunId, ScheduleId, ThreadId, UserId};

crate::model::string_enum!(
    /// What to do with ticks that passed while no process could run them.
    MissedTicks, "missed-tick policy" {
        /// Leave them: the next run is the next tick to come.
        Skip => "skip",
        /// Run once now for all of them, then go on with the next tick.
        RunOnce => "run_once",
    }
);

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: ScheduleId,
    pub project_id: ProjectId,
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week), or six
    /// with seconds first.
    pub cron: String,
    /// An IANA time zone, e.g. `Europe/Paris`.
    pub timezone: String,
    /// What is posted at each tick.
    pub message: String,
    /// The thread it posts to; `None`: a new thread each time.
    pub thread_id: Option<ThreadId>,
    /// The service account it posts as.
    pub run_as: UserId,
    pub missed: MissedTicks,
    pub paused: bool,
    /// The next tick.
    pub next_run_at: OffsetDateTime,
    pub last_run_at: Option<OffsetDateTime>,
    pub last_run_id: Option<RunId>,
    /// Why the last tick did not start a run, in words.
    pub last_error: Option<String>,
    /// A tick taken whose outcome is not recorded yet, and since when.
    pub pending_tick: Option<OffsetDateTime>,
    pub pending_since: Option<OffsetDateTime>,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub project_id: ProjectId,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub message: String,
    pub thread_id: Option<ThreadId>,
    pub run_as: UserId,
    pub missed: MissedTicks,
    pub next_run_at: OffsetDateTime,
    pub created_by: UserId,
}

/// A change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ScheduleUpdate {
    pub name: Option<String>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub message: Option<String>,
    pub missed: Option<MissedTicks>,
    pub paused: Option<bool>,
    /// Set when the expression, the zone or pausing changed it.
    pub next_run_at: Option<OffsetDateTime>,
}
