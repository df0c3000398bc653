//! Scheduled runs: at each tick of a project's cron expression (in its time
//! zone), its message is posted — to its thread, or to a new thread each
//! time — as one of the project's service accounts, and a run answers it.
//!
//! Every process that can queue runs polls for due schedules; a tick is
//! taken by moving the schedule's next time on in the store from the value
//! read (compare and set), so one run starts per tick however many
//! processes poll. A tick more than [`GRACE`] late was missed (no process
//! ran when it fell due): the schedule's policy skips it or runs once.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::model::{Message, NewAuditEntry, NewThread};
use cairn_core::schedule::{MissedTicks, Schedule};
use cairn_core::store::Store;
use croner::Cron;
use croner::parser::CronParser;
use serde_json::json;
use time::OffsetDateTime;

use crate::{RunOptions, Runs};

/// How late a tick may start and still count as on time.
pub const GRACE: Duration = Duration::from_secs(60);

/// Why a tick posted nothing (recorded on the schedule, in words).
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The expression or the zone no longer reads, or never ticks again.
    #[error("{0}")]
    When(String),
    /// The schedule cannot post as it stands.
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
    #[error(transparent)]
    Run(#[from] crate::RunError),
}

/// A schedule's expression and zone, checked.
#[derive(Debug, Clone)]
pub struct When {
    cron: Cron,
    zone: jiff::tz::TimeZone,
}

impl When {
    /// Parses a cron expression (five fields, or six with seconds first)
    /// and an IANA time zone; the error says which is wrong, in words.
    pub fn parse(cron: &str, zone: &str) -> Result<When, String> {
        let parsed = CronParser::new().parse(cron).map_err(|e| format!("`{cron}` is not a cron expression: {e}"))?;
        let zone =
            jiff::tz::TimeZone::get(zone).map_err(|_| format!("`{zone}` is not a time zone (e.g. Europe/Paris)"))?;
        let when = When { cron: parsed, zone };
        // An expression that never matches (30 February) is refused now.
        when.next_after(OffsetDateTime::now_utc())?;
        Ok(when)
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Result<OffsetDateTime, String> {
        let start = jiff::Timestamp::from_second(after.unix_timestamp())
            .map_err(|e| e.to_string())?
            .to_zoned(self.zone.clone());
        let next = self.cron.find_next_occurrence(&start, false).map_err(|e| format!("no tick to come: {e}"))?;
        OffsetDateTime::from_unix_timestamp(next.timestamp().as_second()).map_err(|e| e.to_string())
    }

    /// The next `count` ticks after `after`.
    pub fn upcoming(&self, after: OffsetDateTime, count: usize) -> Vec<OffsetDateTime> {
        let mut ticks = Vec::with_capacity(count);
        let mut at = after;
        while ticks.len() < count {
            match self.next_after(at) {
                Ok(next) => {
                    ticks.push(next);
                    at = next;
                }
                Err(_) => break,
            }
        }
        ticks
    }
}

/// Posts the scheduled messages of every project as their ticks come.
#[derive(Debug, Clone)]
pub struct Scheduler {
    store: Arc<dyn Store>,
    runs: Runs,
    poll: Duration,
    /// How long a taken tick may stay pending before another process takes
    /// it over (its taker died, or lost the store).
    stale: Duration,
}

/// How long a taken tick may stay pending: posting takes milliseconds.
const STALE: Duration = Duration::from_secs(60);

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, runs: Runs, poll: Duration) -> Scheduler {
        Scheduler { store, runs, poll, stale: STALE }
    }

    /// With pending ticks taken over after `stale` (tests shorten it).
    pub fn with_stale_after(mut self, stale: Duration) -> Scheduler {
        self.stale = stale;
        self
    }

    /// Polls for due schedules for as long as the process lives.
    pub fn start(self) {
        tokio::spawn(async move {
            loop {
                self.tick().await;
                tokio::time::sleep(self.poll).await;
            }
        });
    }

    /// Runs every due schedule's tick this process takes, and every pending
    /// tick it takes over; how many runs it started.
    pub async fn tick(&self) -> usize {
        let now = OffsetDateTime::now_utc();
        let mut started = self.take_over(now).await;
        let due = match self.store.due_schedules(now, 100).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read the due schedules; trying again shortly");
                return started;
            }
        };
        for schedule in due {
            match self.fire(&schedule, now).await {
                Ok(true) => started += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, schedule = %schedule.id, "a schedule's tick failed"),
            }
        }
        started
    }

    /// Ticks whose taker died before recording what they did: each is taken
    /// over by one process, which posts it unless it was posted (the
    /// message's origin says so), and answers it if its run never started.
    async fn take_over(&self, now: OffsetDateTime) -> usize {
        let stale = time::Duration::try_from(self.stale).unwrap_or(time::Duration::MINUTE);
        let pending = match self.store.stale_ticks(now - stale, 100).await {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(%error, "cannot read the pending ticks; trying again shortly");
                return 0;
            }
        };
        let mut started = 0;
        for schedule in pending {
            let (Some(tick), Some(since)) = (schedule.pending_tick, schedule.pending_since) else { continue };
            match self.store.retake_tick(schedule.id, since).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%error, schedule = %schedule.id, "cannot take over a pending tick");
                    continue;
                }
            }
            tracing::info!(schedule = %schedule.id, %tick, "taking over a tick whose process did not finish it");
            match self.post(&schedule, tick).await {
                Ok(run) => {
                    self.record(&schedule, Some(run), None).await;
                    started += 1;
                }
                Err(error) => self.record(&schedule, None, Some(error.to_string())).await,
            }
        }
        started
    }

    /// Takes the schedule's due tick, if no other process did, and posts
    /// its message; whether a run started.
    async fn fire(&self, schedule: &Schedule, now: OffsetDateTime) -> Result<bool, TickError> {
        let when = When::parse(&schedule.cron, &schedule.timezone).map_err(TickError::When)?;
        // The tick after this one; ticks that fell while this one waited
        // are folded into it (one run, not a burst).
        let mut next = when.next_after(schedule.next_run_at).map_err(TickError::When)?;
        if next <= now {
            next = when.next_after(now).map_err(TickError::When)?;
        }
        if !self.store.take_tick(schedule.id, schedule.next_run_at, next).await? {
            return Ok(false);
        }
        let late = now - schedule.next_run_at;
        if late > GRACE && schedule.missed == MissedTicks::Skip {
            let note = format!(
                "the tick of {} was missed (no process was running) and skipped, as the schedule says",
                schedule.next_run_at
            );
            self.record(schedule, None, Some(note)).await;
            return Ok(false);
        }
        match self.post(schedule, schedule.next_run_at).await {
            Ok(run) => {
                self.record(schedule, Some(run), None).await;
                Ok(true)
            }
            Err(error) => {
                self.record(schedule, None, Some(error.to_string())).await;
                Err(error)
            }
        }
    }

    /// Posts the tick's message as the schedule's service account; the run.
    /// The message carries the tick as its origin: a tick posted already
    /// (by a process that died before recording it) is not posted again,
    /// and its run is started if it never was.
    async fn post(&self, schedule: &Schedule, tick: OffsetDateTime) -> Result<cairn_core::RunId, TickError> {
        let project = schedule.project_id;
        let member = self.store.member_role(project, schedule.run_as).await?;
        let account = self.store.user(schedule.run_as).await?;
        if member.is_none_or(|role| role == cairn_core::model::Role::Viewer) || account.disabled {
            return Err(TickError::Refused(
                "the schedule's service account was deleted or may not run the agent; choose another",
            ));
        }
        let origin = format!("schedule:{}:{}", schedule.id, tick.unix_timestamp());
        if let Some(posted) = self.store.message_by_origin(&origin).await? {
            return self.answered(schedule, &posted).await;
        }
        let thread = match schedule.thread_id {
            Some(thread) => thread,
            None => {
                let title = format!("{} · {}", schedule.name, OffsetDateTime::now_utc().date());
                let new = NewThread { project_id: project, title, created_by: schedule.run_as, model: None };
                self.store.create_thread(new).await?.id
            }
        };
        let options = RunOptions { origin: Some(origin.clone()), ..RunOptions::default() };
        let posted = self.runs.post_run(thread, schedule.run_as, schedule.message.clone(), true, options).await;
        let run = match posted {
            Ok((_, run)) => run.ok_or(TickError::Refused("no run was started"))?,
            // Posted meanwhile by a process thought dead.
            Err(crate::RunError::Conflict(_)) => {
                let posted = self.store.message_by_origin(&origin).await?;
                return self.answered(schedule, &posted.ok_or(TickError::Refused("the tick's message is gone"))?).await;
            }
            Err(error) => return Err(error.into()),
        };
        self.audit_started(schedule, run.id, thread).await;
        Ok(run.id)
    }

    /// The run answering a tick's message posted earlier: the run its
    /// account started after it, or one started now.
    async fn answered(&self, schedule: &Schedule, posted: &Message) -> Result<cairn_core::RunId, TickError> {
        let runs = self.store.runs(posted.thread_id).await?;
        if let Some(run) = runs.iter().find(|r| r.created_by == schedule.run_as && r.created_at >= posted.created_at) {
            return Ok(run.id);
        }
        let run = self.runs.answer(posted.thread_id, schedule.run_as).await?;
        self.audit_started(schedule, run.id, posted.thread_id).await;
        Ok(run.id)
    }

    /// Records in the audit log a run the schedule started, as its account.
    async fn audit_started(&self, schedule: &Schedule, run: cairn_core::RunId, thread: cairn_core::ThreadId) {
        let detail = json!({ "run": run, "thread": thread, "schedule": schedule.id });
        let entry = NewAuditEntry::new(Some(schedule.run_as), Some(schedule.project_id), "run.started", detail, None);
        if let Err(error) = self.store.record_audit(entry).await {
            tracing::error!(%error, "cannot write the audit log");
        }
    }

    async fn record(&self, schedule: &Schedule, run: Option<cairn_core::RunId>, error: Option<String>) {
        if let Err(failure) = self.store.record_tick(schedule.id, run, error).await {
            tracing::warn!(error = %failure, schedule = %schedule.id, "cannot record a schedule's tick");
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn ticks_follow_the_zone_across_a_daylight_saving_change() {
        // 09:00 on weekdays in Paris: UTC+1 in winter, UTC+2 from 29 March 2026.
        let when = When::parse("0 9 * * MON-FRI", "Europe/Paris").unwrap();
        let friday = datetime!(2026-03-27 12:00 UTC);
        let ticks = when.upcoming(friday, 2);
        assert_eq!(ticks, [datetime!(2026-03-30 07:00 UTC), datetime!(2026-03-31 07:00 UTC)]);
        let winter = when.next_after(datetime!(2026-03-26 00:00 UTC)).unwrap();
        assert_eq!(winter, datetime!(2026-03-26 08:00 UTC));
    }

    #[test]
    fn seconds_are_optional_and_bad_input_is_named() {
        let every_second = When::parse("* * * * * *", "UTC").unwrap();
        let at = datetime!(2026-11-30 06:00:00 UTC);
        assert_eq!(every_second.next_after(at).unwrap(), datetime!(2026-11-30 06:00:01 UTC));
        assert!(When::parse("61 * * * *", "UTC").unwrap_err().contains("not a cron expression"));
        assert!(When::parse("0 9 * * *", "Mars/Olympus").unwrap_err().contains("not a time zone"));
        assert!(When::parse("0 0 30 2 *", "UTC").is_err(), "30 February never comes");
    }
}
