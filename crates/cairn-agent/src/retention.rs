//! The retention job: removes the step details of runs that finished longer
//! ago than their project keeps them (`retention_days`, else the
//! deployment's `retention.step_details_days`), and audit entries older
//! than `retention.audit_days` when that is set. A run's answer, the
//! messages and the files saved are never removed; a run whose details went
//! says when (`details_removed_at`), and each pass that removed something is
//! in the audit log. Every process that works runs makes passes; they
//! share the work (a run is pruned once).

use std::sync::Arc;
use std::time::Duration;

use cairn_config::RetentionConfig;
use cairn_core::lifecycle::Pruned;
use cairn_core::model::NewAuditEntry;
use cairn_core::store::Store;
use serde_json::json;
use time::OffsetDateTime;

/// Runs pruned per transaction.
const BATCH: i64 = 200;

#[derive(Debug, Clone)]
pub struct Retention {
    store: Arc<dyn Store>,
    config: RetentionConfig,
    /// Where the runs' pictures are kept (they go with the details).
    files: Option<cairn_files::Files>,
}

/// What one pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub details: Pruned,
    pub audit_entries: u64,
}

impl Retention {
    pub fn new(store: Arc<dyn Store>, config: RetentionConfig) -> Retention {
        Retention { store, config, files: None }
    }

    /// Also removes the pictures (browser screenshots) of the runs pruned.
    pub fn with_files(mut self, files: cairn_files::Files) -> Retention {
        self.files = Some(files);
        self
    }

    /// Makes a pass every `retention.interval_secs` for as long as the
    /// process lives.
    pub fn start(self) {
        tokio::spawn(async move {
            loop {
                if let Err(error) = self.apply(OffsetDateTime::now_utc()).await {
                    tracing::warn!(%error, "a retention pass failed; the next one tries again");
                }
                tokio::time::sleep(Duration::from_secs(self.config.interval_secs)).await;
            }
        });
    }

    /// One pass, as if it were `now` (tests move the clock on).
    pub async fn apply(&self, now: OffsetDateTime) -> cairn_core::Result<Swept> {
        let mut swept = Swept::default();
        for (project, own) in self.store.retention_settings().await? {
            let days = own.unwrap_or(i32::try_from(self.config.step_details_days).unwrap_or(i32::MAX));
            if days <= 0 {
                continue;
            }
            let before = now - time::Duration::days(i64::from(days));
            let mut here = Pruned::default();
            loop {
                let pruned = self.store.prune_run_details(project, before, BATCH).await?;
                if let Some(files) = &self.files {
                    for (thread, run) in &pruned.pruned {
                        // A picture left behind goes with its thread later; the pass goes on.
                        if let Err(error) = files.delete_run_media(project, *thread, *run).await {
                            tracing::warn!(%error, %run, "a pruned run's pictures could not be removed");
                        }
                    }
                }
                here.runs += pruned.runs;
                here.events += pruned.events;
                here.checkpoints += pruned.checkpoints;
                if pruned.runs < BATCH as u64 {
                    break;
                }
            }
            if here.runs > 0 {
                tracing::info!(%project, runs = here.runs, events = here.events, "retention removed step details");
                let detail =
                    json!({ "days": days, "runs": here.runs, "events": here.events, "checkpoints": here.checkpoints });
                self.audit(Some(project), "retention.applied", detail).await;
                swept.details.runs += here.runs;
                swept.details.events += here.events;
                swept.details.checkpoints += here.checkpoints;
            }
        }
        if self.config.audit_days > 0 {
            let before = now - time::Duration::days(i64::from(self.config.audit_days));
            swept.audit_entries = self.store.prune_audit(before).await?;
            if swept.audit_entries > 0 {
                let detail = json!({ "days": self.config.audit_days, "entries": swept.audit_entries });
                self.audit(None, "retention.audit_pruned", detail).await;
            }
        }
        Ok(swept)
    }

    async fn audit(&self, project: Option<cairn_core::ProjectId>, action: &str, detail: serde_json::Value) {
        if let Err(error) = self.store.record_audit(NewAuditEntry::new(None, project, action, detail, None)).await {
            tracing::error!(%error, action, "cannot write the audit log");
        }
    }
}
