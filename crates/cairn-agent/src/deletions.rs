//! The deletion worker: takes the deletions of threads and projects from the
//! store (one worker at a time each, under a lease it extends as it goes)
//! and removes what they name, outside the database too: it stops the
//! thread's runs, destroys its sandboxes (and with them their workspaces),
//! forgets its cached messages, and for a project deletes every object of
//! its library. Each step is idempotent, so a worker that dies mid-way
//! leaves the job to the next, which starts again from the top and finds
//! less to do. Every process that works runs polls, as for webhooks.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::lifecycle::{Deletion, DeletionKind};
use cairn_core::model::RunStatus;
use cairn_core::sandbox::Sandboxes;
use cairn_core::store::Store;
use cairn_core::{ProjectId, ThreadId};
use cairn_memory::ThreadCache;

use crate::Runs;

/// What a deletion step failed on.
#[derive(Debug, thiserror::Error)]
pub enum DeletionError {
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
    #[error("cannot stop the thread's run {run}: {reason}")]
    Cancel { run: cairn_core::RunId, reason: crate::RunError },
    #[error("cannot list the sandboxes to destroy: {0}")]
    Sandboxes(cairn_core::sandbox::SandboxError),
    #[error("cannot destroy the sandbox {sandbox}: {error}")]
    Sandbox { sandbox: cairn_core::SandboxId, error: cairn_core::sandbox::SandboxError },
    #[error("cannot delete the project's files: {0}")]
    Files(#[from] cairn_files::Error),
}

#[derive(Debug, Clone)]
pub struct Deleter {
    store: Arc<dyn Store>,
    /// Cancels runs through the bus, so the process working one stops.
    runs: Option<Runs>,
    /// Where the threads' sandboxes live; `None` in a process without
    /// sandboxes (their hosts reclaim them when idle).
    sandboxes: Option<Arc<dyn Sandboxes>>,
    files: cairn_files::Files,
    cache: ThreadCache,
    poll: Duration,
    /// How long a worker holds a deletion between two steps before another
    /// may take it over (`queue.lease_secs`, as for runs).
    lease: Duration,
}

impl Deleter {
    pub fn new(
        store: Arc<dyn Store>,
        runs: Option<Runs>,
        sandboxes: Option<Arc<dyn Sandboxes>>,
        files: cairn_files::Files,
        cache: Arc<dyn cairn_core::bus::Cache>,
        poll: Duration,
        lease: Duration,
    ) -> Deleter {
        let cache = ThreadCache::new(store.clone(), cache);
        Deleter { store, runs, sandboxes, files, cache, poll, lease }
    }

    /// Polls for deletions for as long as the process lives.
    pub fn start(self) {
        tokio::spawn(async move {
            loop {
                while self.work_one().await.is_some() {}
                tokio::time::sleep(self.poll).await;
            }
        });
    }

    /// Claims one due deletion and works it to the end (or to a failure,
    /// after which it is due again later); the job as it ended, `None` when
    /// none was due.
    pub async fn work_one(&self) -> Option<Deletion> {
        let deletion = match self.store.claim_deletion(self.lease).await {
            Ok(Some(deletion)) => deletion,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%error, "cannot read the deletions to do; trying again shortly");
                return None;
            }
        };
        let id = deletion.id;
        match self.work(&deletion).await {
            Ok(()) => match self.store.finish_deletion(id).await {
                Ok(done) => {
                    tracing::info!(deletion = %id, kind = done.kind.as_str(), target = %done.target, "deleted");
                    metrics::counter!("cairn_deletions_total", "kind" => done.kind.as_str(), "outcome" => "done")
                        .increment(1);
                    Some(done)
                }
                Err(error) => {
                    tracing::warn!(%error, deletion = %id, "a deletion finished but could not be marked done");
                    Some(deletion)
                }
            },
            Err(error) => {
                // Backs off up to an hour; the job is never given up.
                let retry = Duration::from_secs(2u64.saturating_pow(deletion.attempts.clamp(1, 12) as u32).min(3600));
                tracing::warn!(%error, deletion = %id, attempt = deletion.attempts, retry_secs = retry.as_secs(),
                    "a deletion step failed; it will be tried again");
                metrics::counter!("cairn_deletions_total", "kind" => deletion.kind.as_str(), "outcome" => "retried")
                    .increment(1);
                if let Err(error) = self.store.deletion_failed(id, error.to_string(), retry).await {
                    tracing::warn!(%error, deletion = %id, "cannot record a deletion's failure; its lease runs out instead");
                }
                self.store.deletion(id).await.ok()
            }
        }
    }

    async fn work(&self, deletion: &Deletion) -> Result<(), DeletionError> {
        match deletion.kind {
            DeletionKind::Thread => {
                let thread = ThreadId(deletion.target);
                self.progress(deletion, 0, 1).await?;
                self.delete_thread(thread, true).await?;
                // The pictures its runs showed (a project's deletion takes
                // every object of the project instead).
                let pictures = self.files.delete_thread_media(deletion.project_id, thread).await?;
                tracing::debug!(%thread, pictures, "deleted the thread's pictures");
                Ok(())
            }
            DeletionKind::Project => {
                let project = ProjectId(deletion.target);
                let threads = self.store.project_thread_ids(project).await?;
                // The threads, then the project's sandboxes (its threads'
                // among them: listed once, not once a thread), its files,
                // and its rows: one step each. A job taken over after a crash
                // finds fewer threads: it goes on counting from where the
                // first attempt got, so progress never runs backwards.
                let remaining = threads.len() as i64 + 3;
                let total = deletion.steps_total.max(remaining);
                for (n, thread) in threads.into_iter().enumerate() {
                    self.progress(deletion, total - remaining + n as i64, total).await?;
                    self.delete_thread(thread, false).await?;
                }
                self.progress(deletion, total - 3, total).await?;
                self.destroy_sandboxes(|s| s.project == Some(project)).await?;
                self.progress(deletion, total - 2, total).await?;
                let objects = self.files.delete_project_objects(project).await?;
                tracing::debug!(%project, objects, "deleted the project's objects");
                self.progress(deletion, total - 1, total).await?;
                Ok(self.store.purge_project(project).await?)
            }
        }
    }

    /// Stops the thread's runs, destroys its sandboxes (unless the caller
    /// destroys the whole project's), and removes its rows, memory and
    /// cached messages.
    async fn delete_thread(&self, thread: ThreadId, sandboxes: bool) -> Result<(), DeletionError> {
        for run in self.store.runs(thread).await? {
            if run.status.is_terminal() {
                continue;
            }
            let cancelled = match &self.runs {
                Some(runs) => runs.cancel(run.id).await.map(drop),
                None => self
                    .store
                    .set_run_status(run.id, RunStatus::Cancelled, None, None)
                    .await
                    .map(drop)
                    .map_err(Into::into),
            };
            // A run that ended meanwhile is fine; anything else is tried again.
            if let Err(reason) = cancelled
                && !self.store.run(run.id).await.is_ok_and(|r| r.status.is_terminal())
            {
                return Err(DeletionError::Cancel { run: run.id, reason });
            }
        }
        if sandboxes {
            self.destroy_sandboxes(|s| s.thread == Some(thread)).await?;
        }
        self.store.purge_thread(thread).await?;
        self.cache.forget(thread).await;
        Ok(())
    }

    async fn destroy_sandboxes(
        &self,
        chosen: impl Fn(&cairn_core::sandbox::SandboxInfo) -> bool,
    ) -> Result<(), DeletionError> {
        let Some(sandboxes) = &self.sandboxes else { return Ok(()) };
        let listed = sandboxes.list(None).await.map_err(DeletionError::Sandboxes)?;
        for sandbox in listed.iter().filter(|s| chosen(s)) {
            match sandboxes.destroy(sandbox.id).await {
                Ok(()) | Err(cairn_core::sandbox::SandboxError::NotFound) => {}
                Err(error) => return Err(DeletionError::Sandbox { sandbox: sandbox.id, error }),
            }
        }
        Ok(())
    }

    async fn progress(&self, deletion: &Deletion, done: i64, total: i64) -> Result<(), DeletionError> {
        Ok(self.store.deletion_progress(deletion.id, done, total, self.lease).await?)
    }
}
