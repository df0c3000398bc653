//! The wire types of scheduled runs.

use cairn_agent::schedules::When;
use cairn_core::schedule::{MissedTicks, Schedule};
use cairn_core::{ProjectId, RunId, ScheduleId, ThreadId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleResponse {
    pub id: ScheduleId,
    pub project_id: ProjectId,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub message: String,
    /// The thread it posts to; `null`: a new thread each time.
    pub thread_id: Option<ThreadId>,
    /// The service account it posts as.
    pub service_account_id: UserId,
    pub missed: MissedTicks,
    pub paused: bool,
    /// The next ticks (up to five; none while paused).
    #[schema(value_type = Vec<String>)]
    pub next_runs: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_run_at: Option<OffsetDateTime>,
    pub last_run_id: Option<RunId>,
    /// Why the last tick started no run, in words.
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<Schedule> for ScheduleResponse {
    fn from(s: Schedule) -> Self {
        let format = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let next_runs = if s.paused {
            Vec::new()
        } else {
            let later = When::parse(&s.cron, &s.timezone).map(|w| w.upcoming(s.next_run_at, 4)).unwrap_or_default();
            std::iter::once(s.next_run_at).chain(later).map(format).collect()
        };
        ScheduleResponse {
            id: s.id,
            project_id: s.project_id,
            name: s.name,
            cron: s.cron,
            timezone: s.timezone,
            message: s.message,
            thread_id: s.thread_id,
            service_account_id: s.run_as,
            missed: s.missed,
            paused: s.paused,
            next_runs,
            last_run_at: s.last_run_at,
            last_run_id: s.last_run_id,
            last_error: s.last_error,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduleRequest {
    /// 1 to 100 characters.
    pub name: String,
    /// Five fields (`minute hour day-of-month month day-of-week`, e.g.
    /// `0 9 * * MON-FRI`), or six with seconds first.
    pub cron: String,
    /// An IANA time zone; `UTC` when left out.
    #[serde(default = "utc")]
    pub timezone: String,
    /// What is posted at each tick (1 to 100000 characters).
    pub message: String,
    /// Post to this thread of the project; a new thread each time when left out.
    #[serde(default)]
    pub thread_id: Option<ThreadId>,
    /// The project's service account (an editor) it posts as.
    pub service_account_id: UserId,
    /// Ticks missed while no process ran: `skip` (default) or `run_once`.
    #[serde(default = "skip")]
    pub missed: MissedTicks,
}

fn utc() -> String {
    "UTC".to_owned()
}

fn skip() -> MissedTicks {
    MissedTicks::Skip
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateScheduleRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub missed: Option<MissedTicks>,
    /// Pause (`true`) or resume (`false`); a resumed schedule goes on from
    /// its next tick to come.
    #[serde(default)]
    pub paused: Option<bool>,
}
