//! A sandbox as the local backend keeps it: what `sandbox.json` records
//! (`Meta`), the entry that holds it with its kernel (`Entry`), and the mark
//! an execution holds while it runs (`Busy`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use cairn_core::sandbox::{EffectiveLimits, PackagePolicy, SandboxError, SandboxResult, SandboxState};
use cairn_core::{ProjectId, SandboxId, ThreadId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Kernel;
use crate::kernel::KernelHandle;

/// What `sandbox.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) owner: UserId,
    pub(super) project: Option<ProjectId>,
    pub(super) thread: Option<ThreadId>,
    pub(super) limits: EffectiveLimits,
    #[serde(with = "time::serde::rfc3339")]
    pub(super) created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub(super) last_active_at: OffsetDateTime,
    pub(super) executions: u64,
    #[serde(skip, default = "paused")]
    pub(super) state: SandboxState,
    #[serde(skip)]
    pub(super) busy: bool,
    /// Changed since `sandbox.json` was written.
    #[serde(skip)]
    pub(super) dirty: bool,
    /// The workspace's fingerprint when it was last snapshotted.
    #[serde(skip)]
    pub(super) snapshotted: Option<u64>,
    /// Package installs granted (its project's environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) packages: Option<PackagePolicy>,
    /// What the next execution's outcome tells the agent: its kernel is a
    /// new one (the sandbox was paused, or moved here from another host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) notice: Option<String>,
}

impl Meta {
    /// A new sandbox's record: paused, never run, made and active now.
    pub(super) fn new(
        owner: UserId,
        project: Option<ProjectId>,
        thread: Option<ThreadId>,
        limits: EffectiveLimits,
        packages: Option<PackagePolicy>,
    ) -> Meta {
        let now = OffsetDateTime::now_utc();
        Meta {
            owner,
            project,
            thread,
            limits,
            created_at: now,
            last_active_at: now,
            executions: 0,
            state: SandboxState::Paused,
            busy: false,
            dirty: false,
            snapshotted: None,
            packages,
            notice: None,
        }
    }
}

fn paused() -> SandboxState {
    SandboxState::Paused
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) id: SandboxId,
    pub(super) dir: PathBuf,
    pub(super) meta: Mutex<Meta>,
    /// The kernel while running; held for the whole of an execution, so
    /// executions of one sandbox run one at a time.
    pub(super) kernel: tokio::sync::Mutex<Option<Kernel>>,
    /// Reaches the kernel while an execution holds it.
    pub(super) handle: Mutex<Option<KernelHandle>>,
    pub(super) destroyed: AtomicBool,
    /// Held while `sandbox.json` is written: saves come from the idle timers
    /// as well as from the operation at hand, and two at once would rename
    /// one temporary file twice (the second finding it gone).
    saving: Mutex<()>,
}

impl Entry {
    pub(super) fn meta(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn handle(&self) -> Option<KernelHandle> {
        self.handle.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(super) fn set_handle(&self, handle: Option<KernelHandle>) {
        *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = handle;
    }

    pub(super) fn workspace(&self) -> PathBuf {
        self.dir.join("workspace")
    }

    pub(super) fn touch(&self) {
        self.meta().last_active_at = OffsetDateTime::now_utc();
    }

    /// Writes `sandbox.json` (through a temporary file, so it is whole), one
    /// save at a time, the newest state last.
    pub(super) fn save(&self) -> SandboxResult<()> {
        let _saving = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        let json = {
            let mut meta = self.meta();
            meta.dirty = false;
            serde_json::to_vec_pretty(&*meta).map_err(|e| SandboxError::Internal(e.to_string()))?
        };
        let temp = self.dir.join(".sandbox.json.tmp");
        std::fs::write(&temp, json).and_then(|()| std::fs::rename(&temp, self.dir.join("sandbox.json"))).map_err(|e| {
            // Destroyed meanwhile (its folder is gone): as for any other
            // operation on it, there is no such sandbox.
            if self.destroyed.load(Ordering::SeqCst) {
                SandboxError::NotFound
            } else {
                SandboxError::Internal(format!("cannot record the sandbox: {e}"))
            }
        })
    }

    pub(super) fn check_alive(&self) -> SandboxResult<()> {
        if self.destroyed.load(Ordering::SeqCst) { Err(SandboxError::NotFound) } else { Ok(()) }
    }
}

/// Clears an entry's `busy` mark however an execution ends.
pub(super) struct Busy<'a>(pub(super) &'a Entry);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut meta = self.0.meta();
        meta.busy = false;
        meta.dirty = true;
        meta.last_active_at = OffsetDateTime::now_utc();
    }
}

pub(super) fn new_entry(id: SandboxId, dir: PathBuf, meta: Meta) -> Entry {
    Entry {
        id,
        dir,
        meta: Mutex::new(meta),
        kernel: tokio::sync::Mutex::new(None),
        handle: Mutex::new(None),
        destroyed: AtomicBool::new(false),
        saving: Mutex::new(()),
    }
}

/// Stops an entry's kernel (if it has one) and marks it paused.
pub(super) async fn stop_kernel(entry: &Entry, slot: &mut Option<Kernel>) {
    if let Some(kernel) = slot.take() {
        kernel.shutdown().await;
    }
    entry.set_handle(None);
    entry.meta().state = SandboxState::Paused;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_in(dir: PathBuf) -> Entry {
        let limits = EffectiveLimits {
            network: false,
            memory_bytes: 1 << 30,
            processes: 64,
            wall_time_secs: 60,
            disk_bytes: 1 << 30,
            output_bytes: 1 << 20,
            open_files: 256,
        };
        new_entry(SandboxId::new(), dir, Meta::new(UserId::new(), None, None, limits, None))
    }

    #[test]
    fn saves_from_several_threads_at_once_all_succeed_and_leave_a_whole_record() {
        let dir = cairn_testkit::TempDir::new("sandbox-entry");
        let entry = entry_in(dir.path.clone());
        // The idle timers and an operation saving the same sandbox at the
        // same moment (before, one of two could find the temporary file
        // renamed away by the other: "cannot record the sandbox").
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        entry.meta().executions += 1;
                        entry.save().expect("every save succeeds");
                    }
                });
            }
        });
        let saved: Meta = serde_json::from_slice(&std::fs::read(dir.path.join("sandbox.json")).unwrap()).unwrap();
        assert_eq!(saved.executions, 800, "the last save wrote the newest state");
    }

    #[test]
    fn a_save_after_the_sandbox_was_destroyed_says_there_is_no_such_sandbox() {
        let dir = cairn_testkit::TempDir::new("sandbox-entry-gone");
        let entry = entry_in(dir.path.join("removed"));
        entry.destroyed.store(true, Ordering::SeqCst);
        assert!(matches!(entry.save(), Err(SandboxError::NotFound)));
    }
}
