//! A workspace's way between hosts: snapshots into the object store after a
//! change and on pause, and the restore of a sandbox placed again on another
//! host under the same id.

use cairn_core::sandbox::{SandboxError, SandboxResult};

use super::{Entry, LocalSandboxes};

impl LocalSandboxes {
    /// Snapshots the workspace into the object store if it changed since
    /// the last snapshot (a host without snapshots does nothing). A failed
    /// snapshot is logged; the next change tries again.
    pub(super) async fn snapshot(&self, entry: &Entry) {
        let Some(snapshots) = &self.inner.config.snapshots else { return };
        let workspace = entry.workspace();
        let Ok(now) = tokio::task::spawn_blocking(move || crate::snapshot::fingerprint(&workspace)).await else {
            return;
        };
        if entry.meta().snapshotted == Some(now) {
            return;
        }
        match snapshots.save(entry.id, &entry.workspace(), &entry.dir.join("snapshot.zip")).await {
            Ok(stats) => {
                entry.meta().snapshotted = Some(now);
                tracing::debug!(sandbox = %entry.id, files = stats.files, bytes = stats.bytes,
                    stored = stats.stored_bytes, seconds = stats.seconds, "workspace snapshotted");
                metrics::counter!("cairn_sandbox_snapshots_total", "outcome" => "ok").increment(1);
                metrics::histogram!("cairn_sandbox_snapshot_seconds").record(stats.seconds);
                metrics::counter!("cairn_sandbox_snapshot_bytes_total").increment(stats.stored_bytes);
            }
            Err(error) => {
                tracing::warn!(sandbox = %entry.id, %error, "cannot snapshot a workspace");
                metrics::counter!("cairn_sandbox_snapshots_total", "outcome" => "error").increment(1);
            }
        }
    }

    /// Fills a new sandbox's workspace from the snapshot of the sandbox of
    /// the same id on another host, and tells its first execution so.
    pub(super) async fn restore(&self, entry: &Entry) -> SandboxResult<()> {
        let Some(snapshots) = &self.inner.config.snapshots else {
            return Err(SandboxError::Unavailable("this host keeps no workspace snapshots to restore from".into()));
        };
        let restored = snapshots
            .restore(entry.id, &entry.workspace(), &entry.dir.join("restore.zip"))
            .await
            .map_err(|e| SandboxError::Internal(format!("cannot restore the workspace: {e}")))?;
        let notice = match restored {
            Some(stats) => {
                tracing::info!(sandbox = %entry.id, files = stats.files, bytes = stats.bytes,
                    seconds = stats.seconds, "workspace restored from its snapshot");
                "the sandbox moved to another machine (its host stopped) and its Python kernel restarted: \
                 variables and imports are gone; the workspace files were restored from the last snapshot"
            }
            None => {
                "the sandbox moved to another machine (its host stopped) and its Python kernel restarted: \
                 variables and imports are gone, and no snapshot of its files existed, so the workspace is empty"
            }
        };
        let fingerprint = {
            let workspace = entry.workspace();
            tokio::task::spawn_blocking(move || crate::snapshot::fingerprint(&workspace)).await.ok()
        };
        let mut meta = entry.meta();
        meta.notice = Some(notice.to_owned());
        meta.snapshotted = fingerprint;
        Ok(())
    }
}
