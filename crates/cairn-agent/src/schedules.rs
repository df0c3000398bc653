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

use cairn_core::model::{NewAuditEntry, NewThread};
use cairn_core::schedule::{MissedTicks, Schedule};
use cairn_core::store::Store;
use croner::Cron;
use croner::parser::CronParser;
use serde_json::json;
use time::OffsetDateTime;

use crate::{RunOptions, Runs};

/// How late a tick may start and still count as on time.
pub const GRACE: Duration = Duration::from_secs(60);

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
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, runs: Runs, poll: Duration) -> Scheduler {
        Scheduler { store, runs, poll }
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

    /// Runs every due schedule's tick this process takes; how many runs it started.
    pub async fn tick(&self) -> usize {
        let now = OffsetDateTime::now_utc();
        let due = match self.store.due_schedules(now, 100).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read the due schedules; trying again shortly");
                return 0;
            }
        };
        let mut started = 0;
        for schedule in due {
            match self.fire(&schedule, now).await {
                Ok(true) => started += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, schedule = %schedule.id, "a schedule's tick failed"),
            }
        }
        started
    }

    /// Takes the schedule's due tick, if no other process did, and posts
    /// its message; whether a run started.
    async fn fire(&self, schedule: &Schedule, now: OffsetDateTime) -> Result<bool, String> {
        let when = When::parse(&schedule.cron, &schedule.timezone)?;
        // The tick after this one; ticks that fell while this one waited
        // are folded into it (one run, not a burst).
        let mut next = when.next_after(schedule.next_run_at)?;
        if next <= now {
            next = when.next_after(now)?;
        }
        if !self.store.take_tick(schedule.id, schedule.next_run_at, next).await.map_err(|e| e.to_string())? {
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
        match self.post(schedule).await {
            Ok(run) => {
                self.record(schedule, Some(run), None).await;
                Ok(true)
            }
            Err(error) => {
                self.record(schedule, None, Some(error.clone())).await;
                Err(error)
            }
        }
    }

    /// Posts the message as the schedule's service account; the run.
    async fn post(&self, schedule: &Schedule) -> Result<cairn_core::RunId, String> {
        let project = schedule.project_id;
        let member = self.store.member_role(project, schedule.run_as).await.map_err(|e| e.to_string())?;
        let account = self.store.user(schedule.run_as).await.map_err(|e| e.to_string())?;
        if member.is_none_or(|role| role == cairn_core::model::Role::Viewer) || account.disabled {
            return Err("the schedule's service account was deleted or may not run the agent; choose another".into());
        }
        let thread = match schedule.thread_id {
            Some(thread) => thread,
            None => {
                let title = format!("{} · {}", schedule.name, OffsetDateTime::now_utc().date());
                let new = NewThread { project_id: project, title, created_by: schedule.run_as, model: None };
                self.store.create_thread(new).await.map_err(|e| e.to_string())?.id
            }
        };
        let posted =
            self.runs.post_run(thread, schedule.run_as, schedule.message.clone(), true, RunOptions::default()).await;
        let run = posted.map_err(|e| e.to_string())?.1.ok_or("no run was started")?;
        let detail = json!({ "run": run.id, "thread": thread, "schedule": schedule.id });
        let entry = NewAuditEntry::new(Some(schedule.run_as), Some(project), "run.started", detail, None);
        if let Err(error) = self.store.record_audit(entry).await {
            tracing::error!(%error, "cannot write the audit log");
        }
        Ok(run.id)
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
