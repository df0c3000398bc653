//! The local backend of [`Sandboxes`]: sandboxes on this machine, each a
//! folder `<root>/instances/<id>/` holding its `workspace/` and a
//! `sandbox.json` describing it, plus (while running) a kernel.
//!
//! Life of a sandbox: created running (from the warm pool when its policy
//! allows) → paused when idle for `idle_pause` (processes stopped, workspace
//! kept; the next execution resumes it with a fresh kernel) → destroyed when
//! paused for `idle_reclaim`. Running sandboxes are capped per owner and per
//! host; at a cap, the least recently used idle sandbox in scope is paused
//! to make room. After a restart of the process every sandbox found on disk
//! is back, paused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_core::sandbox::{
    ByteStream, EffectiveLimits, ExecHandler, ExecOutcome, Execution, NewSandbox, PackagePolicy, PackagesChange,
    SandboxCounts, SandboxError, SandboxInfo, SandboxPolicy, SandboxResult, SandboxState, Sandboxes, WorkspaceEntry,
};
use cairn_core::{SandboxId, UserId};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;

use crate::limits::{self, CgroupSupport, Limits};
use crate::{ContainerEngine, Error, Kernel, KernelOptions, KernelPool, workspace};

mod config;
mod entry;
mod moves;

pub use config::{ContainerConfig, LocalConfig, from_config};
use entry::{Busy, Entry, Meta, new_entry, stop_kernel};

/// Sandboxes on this machine.
#[derive(Debug, Clone)]
pub struct LocalSandboxes {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: LocalConfig,
    template: KernelOptions,
    pool: Option<KernelPool>,
    sandboxes: Mutex<HashMap<SandboxId, Arc<Entry>>>,
    /// Held while deciding whether one more sandbox may run.
    admission: tokio::sync::Mutex<()>,
    /// Held while a sandbox is made under a given id.
    placing: tokio::sync::Mutex<()>,
    /// Projects' package environments, when this host has a package index.
    environments: Option<crate::packages::Environments>,
}

fn unavailable(error: Error) -> SandboxError {
    match error {
        Error::Unavailable(why) => SandboxError::Unavailable(why),
        other => SandboxError::Internal(other.to_string()),
    }
}

fn blocking_failed(error: tokio::task::JoinError) -> SandboxError {
    SandboxError::Internal(format!("a workspace operation failed: {error}"))
}

impl LocalSandboxes {
    /// Checks that sandboxes can run here (bubblewrap, Python), brings back
    /// the sandboxes a previous run left (paused), and starts the warm pool
    /// and the idle timers in the background.
    pub async fn start(config: LocalConfig) -> SandboxResult<LocalSandboxes> {
        let io = |e: std::io::Error| SandboxError::Unavailable(format!("{}: {e}", config.root.display()));
        std::fs::create_dir_all(config.root.join("instances")).map_err(io)?;
        // Staged workspaces of a previous run's pool are of no use now.
        let staging = config.root.join("pool");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io)?;
        if config.container.is_none() {
            let bwrap = tokio::process::Command::new("bwrap").arg("--version").output().await;
            if !bwrap.is_ok_and(|out| out.status.success()) {
                return Err(SandboxError::Unavailable(
                    "bubblewrap (`bwrap`) is not installed; install the `bubblewrap` package".into(),
                ));
            }
        }
        let runtime = config.root.join("runtime");
        let placeholder = config.root.join("unused");
        let mut template = match &config.python {
            Some(python) => KernelOptions::with_python(python, placeholder, runtime.clone()),
            None => KernelOptions::with_host_python(placeholder, runtime.clone()),
        }
        .map_err(unavailable)?;
        if let Some(container) = &config.container {
            let engine = ContainerEngine::connect(&container.engine, &container.image, &container.python, &runtime)
                .await
                .map_err(unavailable)?;
            template = template.in_container(Arc::new(engine));
        }
        template.limits = config.defaults;
        template.prelude = config.prelude.as_deref().map(Arc::from);
        if let CgroupSupport::None(why) = &template.cgroups {
            tracing::warn!(reason = %why, "sandbox memory and process limits are NOT enforced on this host");
        }
        let pool = (config.pool_size > 0).then(|| KernelPool::new(template.clone(), staging, config.pool_size));
        let environments = config
            .packages
            .clone()
            .map(|index| crate::packages::Environments::new(config.root.join("packages"), index));
        let inner = Arc::new(Inner {
            environments,
            config,
            template,
            pool,
            sandboxes: Mutex::new(HashMap::new()),
            admission: tokio::sync::Mutex::new(()),
            placing: tokio::sync::Mutex::new(()),
        });
        let service = LocalSandboxes { inner };
        service.load_existing();
        if let Some(pool) = service.inner.pool.clone() {
            tokio::spawn(async move {
                if let Err(error) = pool.fill().await {
                    tracing::warn!(%error, "cannot fill the sandbox warm pool");
                }
            });
        }
        tokio::spawn(reap(Arc::downgrade(&service.inner)));
        Ok(service)
    }

    /// How memory and process limits are enforced here.
    pub fn cgroups(&self) -> &CgroupSupport {
        &self.inner.template.cgroups
    }

    /// Every sandbox on this machine, for the host's report to the registry
    /// (from memory: nothing is measured).
    pub fn hosted(&self) -> Vec<cairn_core::sandbox::HostedSandbox> {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        entries
            .iter()
            .map(|entry| {
                let meta = entry.meta();
                cairn_core::sandbox::HostedSandbox {
                    id: entry.id,
                    running: meta.state == SandboxState::Running,
                    busy: meta.busy,
                    created_at: meta.created_at,
                    last_active_at: meta.last_active_at,
                }
            })
            .collect()
    }

    /// The sandboxes on this machine by state, from what it holds in memory
    /// (nothing is measured).
    pub fn tally(&self) -> SandboxCounts {
        let mut counts = SandboxCounts::default();
        for entry in self.lock().values() {
            let meta = entry.meta();
            counts.add(meta.state, meta.busy);
        }
        counts
    }

    /// Kernels ready in the warm pool now.
    pub fn warm(&self) -> usize {
        self.inner.pool.as_ref().map_or(0, KernelPool::len)
    }

    fn load_existing(&self) {
        let Ok(dirs) = std::fs::read_dir(self.inner.config.root.join("instances")) else { return };
        let mut sandboxes = self.lock();
        for dir in dirs.flatten() {
            let path = dir.path();
            let id = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<SandboxId>().ok());
            let meta = std::fs::read(path.join("sandbox.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Meta>(&bytes).ok());
            match (id, meta) {
                (Some(id), Some(mut meta)) => {
                    meta.last_active_at = OffsetDateTime::now_utc();
                    sandboxes.insert(id, Arc::new(new_entry(id, path, meta)));
                }
                // A sandbox whose creation did not finish.
                _ => {
                    tracing::warn!(path = %path.display(), "removing an incomplete sandbox folder");
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SandboxId, Arc<Entry>>> {
        self.inner.sandboxes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn entry(&self, id: SandboxId) -> SandboxResult<Arc<Entry>> {
        self.lock().get(&id).cloned().ok_or(SandboxError::NotFound)
    }

    /// The policy, met with the host's defaults and maximum.
    fn limits_for(&self, policy: &SandboxPolicy) -> SandboxResult<EffectiveLimits> {
        let (defaults, maximum) = (&self.inner.config.defaults, &self.inner.config.maximum);
        fn pick<T: PartialOrd + Copy + std::fmt::Display>(
            asked: Option<T>,
            default: T,
            max: T,
            what: &str,
            zero: T,
        ) -> SandboxResult<T> {
            match asked {
                Some(v) if v > max => {
                    Err(SandboxError::InvalidPolicy(format!("{what} of {v} is above this host's maximum of {max}")))
                }
                Some(v) if v <= zero => Err(SandboxError::InvalidPolicy(format!("{what} must be positive"))),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        }
        if policy.network && self.inner.config.egress.is_none() {
            return Err(SandboxError::InvalidPolicy("this host does not give sandboxes network access".into()));
        }
        if let Some(packages) = &policy.packages {
            self.check_packages(packages)?;
        }
        Ok(EffectiveLimits {
            network: policy.network,
            memory_bytes: pick(policy.memory_bytes, defaults.memory_bytes, maximum.memory_bytes, "memory_bytes", 0)?,
            processes: pick(policy.processes, defaults.processes, maximum.processes, "processes", 0)?,
            wall_time_secs: pick(
                policy.wall_time_secs,
                defaults.wall_time.as_secs(),
                maximum.wall_time.as_secs(),
                "wall_time_secs",
                0,
            )?,
            disk_bytes: pick(policy.disk_bytes, defaults.disk_bytes, maximum.disk_bytes, "disk_bytes", 0)?,
            output_bytes: defaults.output_bytes as u64,
            open_files: defaults.open_files,
        })
    }

    /// Whether this host can grant these package installs.
    fn check_packages(&self, packages: &PackagePolicy) -> SandboxResult<()> {
        if self.inner.environments.is_none() {
            return Err(SandboxError::InvalidPolicy(
                "this host does not let sandboxes install packages (sandbox.package_index is empty)".into(),
            ));
        }
        packages.check().map_err(SandboxError::InvalidPolicy)
    }

    fn kernel_options(&self, entry: &Entry) -> KernelOptions {
        let limits = entry.meta().limits;
        let mut options = KernelOptions { workspace: entry.workspace(), ..self.inner.template.clone() };
        options.limits = Limits {
            memory_bytes: limits.memory_bytes,
            processes: limits.processes,
            wall_time: Duration::from_secs(limits.wall_time_secs),
            disk_bytes: limits.disk_bytes,
            ..options.limits
        };
        if limits.network {
            options.egress = self.inner.config.egress.clone();
        }
        options
    }

    /// Reserves a running slot for `entry`, pausing the least recently used
    /// idle sandbox in scope when a cap is reached.
    async fn admit(&self, entry: &Entry) -> SandboxResult<()> {
        let _deciding = self.inner.admission.lock().await;
        let owner = entry.meta().owner;
        let (per_user, per_host) = (self.inner.config.max_running_per_user, self.inner.config.max_running);
        for _ in 0..16 {
            let running: Vec<Arc<Entry>> = self
                .lock()
                .values()
                .filter(|e| e.id != entry.id && e.meta().state == SandboxState::Running)
                .cloned()
                .collect();
            let mine = running.iter().filter(|e| e.meta().owner == owner).count();
            let scope: Vec<&Arc<Entry>> = if mine >= per_user {
                running.iter().filter(|e| e.meta().owner == owner).collect()
            } else if running.len() >= per_host {
                running.iter().collect()
            } else {
                entry.meta().state = SandboxState::Running;
                return Ok(());
            };
            let victim = scope.into_iter().filter(|e| !e.meta().busy).min_by_key(|e| e.meta().last_active_at).cloned();
            let Some(victim) = victim else {
                return Err(SandboxError::CapReached(if mine >= per_user {
                    format!("you already have {per_user} sandboxes running, all busy; try again when one finishes")
                } else {
                    format!("this host already runs {per_host} sandboxes, all busy; try again later")
                }));
            };
            // Busy again since it was picked: the next round picks another.
            if let Ok(mut slot) = victim.kernel.try_lock() {
                tracing::info!(sandbox = %victim.id, "pausing the least recently used sandbox to make room");
                stop_kernel(&victim, &mut slot).await;
            }
        }
        Err(SandboxError::CapReached("no room for another running sandbox; try again later".into()))
    }

    /// Starts the kernel of an entry that has none.
    async fn start_kernel(&self, entry: &Entry, slot: &mut Option<Kernel>, fresh: bool) -> SandboxResult<()> {
        let packages = entry.meta().packages.clone();
        let project_env = match (packages, &self.inner.environments) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(SandboxError::InvalidPolicy("this host does not let sandboxes install packages".into()));
            }
            (Some(policy), Some(environments)) => {
                let project = entry.meta().project.ok_or_else(|| {
                    SandboxError::InvalidPolicy("package installs are for sandboxes of a project".into())
                })?;
                Some((environments.prepare(project, &policy, &self.inner.template).await?, environments.egress()))
            }
        };
        self.admit(entry).await?;
        let mut options = self.kernel_options(entry);
        if let Some((env, egress)) = project_env {
            // Full network, when granted, reaches the index too.
            if options.egress.is_none() {
                options.egress = Some(egress.clone());
            }
            options.project_env = Some(env);
        }
        let from_pool = fresh
            && options.limits == self.inner.template.limits
            && options.egress.is_none()
            && options.project_env.is_none();
        let started = match (&self.inner.pool, from_pool) {
            (Some(pool), true) => pool.take(&options.workspace).await,
            _ => Kernel::start(&options).await,
        };
        match started {
            Ok(kernel) => {
                entry.set_handle(Some(kernel.handle()));
                *slot = Some(kernel);
                Ok(())
            }
            Err(error) => {
                entry.meta().state = SandboxState::Paused;
                Err(unavailable(error))
            }
        }
    }

    async fn info(&self, entry: &Entry) -> SandboxInfo {
        let disk_bytes = workspace::usage_of(&entry.workspace()).await;
        let (memory_bytes, processes) = entry.handle().map(|h| h.usage()).unwrap_or((None, None));
        let meta = entry.meta().clone();
        let running = meta.state == SandboxState::Running;
        SandboxInfo {
            id: entry.id,
            owner: meta.owner,
            project: meta.project,
            thread: meta.thread,
            state: meta.state,
            busy: meta.busy,
            limits: meta.limits,
            created_at: meta.created_at,
            last_active_at: meta.last_active_at,
            executions: meta.executions,
            memory_bytes: memory_bytes.filter(|_| running),
            processes: processes.filter(|_| running),
            disk_bytes,
        }
    }

    async fn pause_entry(&self, entry: &Entry) -> SandboxResult<()> {
        if entry.meta().busy
            && let Some(handle) = entry.handle()
        {
            handle.stop();
        }
        let mut slot = entry.kernel.lock().await;
        stop_kernel(entry, &mut slot).await;
        self.snapshot(entry).await;
        entry.save()
    }

    async fn destroy_entry(&self, entry: &Entry) {
        entry.destroyed.store(true, Ordering::SeqCst);
        if let Some(handle) = entry.handle() {
            handle.stop();
        }
        let mut slot = entry.kernel.lock().await;
        stop_kernel(entry, &mut slot).await;
        let dir = entry.dir.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }

    /// Stops every kernel and records every sandbox, for a clean stop of the
    /// process; the next start finds them all, paused.
    pub async fn shutdown(&self) {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        for entry in entries {
            // Stopped whether busy or not: nothing may start meanwhile.
            if let Some(handle) = entry.handle() {
                handle.stop();
            }
            if let Err(error) = self.pause_entry(&entry).await {
                tracing::warn!(sandbox = %entry.id, %error, "cannot record a sandbox at shutdown");
            }
        }
    }

    /// One pass of the idle timers: pauses sandboxes idle past `idle_pause`,
    /// destroys paused ones idle past `idle_reclaim`, and records what
    /// changed. Runs by itself in the background.
    async fn reap_idle(&self) {
        let now = OffsetDateTime::now_utc();
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        for entry in entries {
            if entry.meta().dirty {
                let _ = entry.save();
            }
            let (state, busy, idle) = {
                let meta = entry.meta();
                (meta.state, meta.busy, now - meta.last_active_at)
            };
            match state {
                SandboxState::Running if !busy && idle >= self.inner.config.idle_pause => {
                    if let Ok(mut slot) = entry.kernel.try_lock() {
                        tracing::info!(sandbox = %entry.id, "pausing an idle sandbox");
                        stop_kernel(&entry, &mut slot).await;
                        let _ = entry.save();
                    }
                }
                SandboxState::Paused if idle >= self.inner.config.idle_reclaim => {
                    tracing::info!(sandbox = %entry.id, "reclaiming a sandbox paused too long");
                    // Gone from the map only once its files are: whoever sees
                    // "no such sandbox" finds no workspace either.
                    self.destroy_entry(&entry).await;
                    self.lock().remove(&entry.id);
                }
                _ => {}
            }
        }
    }
}

/// Runs the idle timers until the service is dropped.
async fn reap(service: Weak<Inner>) {
    let every = match service.upgrade() {
        Some(inner) => {
            let shortest = inner.config.idle_pause.min(inner.config.idle_reclaim);
            (shortest / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
        }
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = service.upgrade() else { return };
        LocalSandboxes { inner }.reap_idle().await;
    }
}

#[async_trait]
impl Sandboxes for LocalSandboxes {
    async fn create(&self, request: NewSandbox) -> SandboxResult<SandboxInfo> {
        let limits = self.limits_for(&request.policy)?;
        if request.policy.packages.is_some() && request.project.is_none() {
            return Err(SandboxError::InvalidPolicy("package installs are for sandboxes of a project".into()));
        }
        let id = request.id.unwrap_or_default();
        // A sandbox asked for by id (placed again after its host went away)
        // is made once: two callers moving it at once wait for each other.
        let _one_at_a_time = match request.id {
            Some(_) => Some(self.inner.placing.lock().await),
            None => None,
        };
        // Asked again for the same id (a retried placement): the one made.
        if let Ok(existing) = self.entry(id) {
            return Ok(self.info(&existing).await);
        }
        let meta = Meta::new(request.owner, request.project, request.thread, limits, request.policy.packages);
        let dir = self.inner.config.root.join("instances").join(id.to_string());
        let entry = Arc::new(new_entry(id, dir, meta));
        std::fs::create_dir_all(&entry.dir).map_err(|e| SandboxError::Internal(e.to_string()))?;
        let started = {
            let mut slot = entry.kernel.lock().await;
            self.start_kernel(&entry, &mut slot, true).await
        };
        if let Err(error) = started.and_then(|()| entry.save()) {
            self.destroy_entry(&entry).await;
            return Err(error);
        }
        if request.restore
            && let Err(error) = self.restore(&entry).await
        {
            self.destroy_entry(&entry).await;
            return Err(error);
        }
        self.lock().insert(id, entry.clone());
        Ok(self.info(&entry).await)
    }

    async fn execute(
        &self,
        id: SandboxId,
        execution: Execution,
        handler: &mut dyn ExecHandler,
    ) -> SandboxResult<ExecOutcome> {
        let entry = self.entry(id)?;
        let mut slot = entry.kernel.lock().await;
        entry.check_alive()?;
        entry.meta().busy = true;
        let _busy = Busy(&entry);
        if slot.is_none() {
            self.start_kernel(&entry, &mut slot, false).await?;
            if entry.meta().executions > 0 && entry.meta().notice.is_none() {
                entry.meta().notice = Some(
                    "the sandbox was paused since the last execution and its Python kernel restarted: \
                     variables and imports are gone; the workspace files are kept"
                        .to_owned(),
                );
            }
            entry.save()?;
        }
        let Some(kernel) = slot.as_mut() else {
            return Err(SandboxError::Internal("the kernel vanished".into()));
        };
        let result = kernel.run_with(&execution, handler).await;
        entry.meta().executions += 1;
        let notice = entry.meta().notice.take();
        self.snapshot(&entry).await;
        match result {
            Ok(outcome) => Ok(ExecOutcome { notice, ..outcome }),
            Err(error) => {
                // The kernel cannot be trusted any more; the next execution
                // starts a fresh one.
                stop_kernel(&entry, &mut slot).await;
                Err(SandboxError::Internal(format!("the execution failed: {error}")))
            }
        }
    }

    async fn interrupt(&self, id: SandboxId) -> SandboxResult<()> {
        let entry = self.entry(id)?;
        if entry.meta().busy
            && let Some(handle) = entry.handle()
        {
            handle.interrupt().await.map_err(|e| SandboxError::Internal(e.to_string()))?;
        }
        Ok(())
    }

    async fn pause(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(id)?;
        self.pause_entry(&entry).await?;
        entry.touch();
        Ok(self.info(&entry).await)
    }

    async fn set_packages(&self, id: SandboxId, change: PackagesChange) -> SandboxResult<()> {
        let entry = self.entry(id)?;
        let PackagesChange { project, packages } = change;
        match entry.meta().project {
            Some(own) if own != project => {
                return Err(SandboxError::InvalidPolicy("the sandbox belongs to another project".into()));
            }
            _ => {}
        }
        if entry.meta().packages == packages && entry.meta().project.is_some() {
            return Ok(());
        }
        if let Some(policy) = &packages {
            self.check_packages(policy)?;
        }
        // Waits for a running execution; the next one starts a kernel with
        // the new environment.
        let mut slot = entry.kernel.lock().await;
        entry.check_alive()?;
        let running = slot.is_some();
        stop_kernel(&entry, &mut slot).await;
        {
            let mut meta = entry.meta();
            meta.project = Some(project);
            meta.packages = packages;
            if running || meta.executions > 0 {
                meta.notice = Some(
                    "the project's package settings changed, so the sandbox's Python kernel restarted: variables \
                     and imports are gone; the workspace files are kept"
                        .to_owned(),
                );
            }
        }
        drop(slot);
        entry.save()
    }

    async fn pause_if_idle(&self, id: SandboxId) -> SandboxResult<Option<SandboxInfo>> {
        let entry = self.entry(id)?;
        // The kernel's slot is held for the whole of an execution.
        let Ok(mut slot) = entry.kernel.try_lock() else { return Ok(None) };
        if entry.meta().busy {
            return Ok(None);
        }
        stop_kernel(&entry, &mut slot).await;
        drop(slot);
        self.snapshot(&entry).await;
        entry.save()?;
        Ok(Some(self.info(&entry).await))
    }

    async fn resume(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(id)?;
        {
            let mut slot = entry.kernel.lock().await;
            entry.check_alive()?;
            entry.touch();
            if slot.is_none() {
                self.start_kernel(&entry, &mut slot, false).await?;
                entry.save()?;
            }
        }
        Ok(self.info(&entry).await)
    }

    async fn destroy(&self, id: SandboxId) -> SandboxResult<()> {
        let entry = self.lock().remove(&id).ok_or(SandboxError::NotFound)?;
        self.destroy_entry(&entry).await;
        if let Some(snapshots) = &self.inner.config.snapshots {
            snapshots.delete(id).await;
        }
        Ok(())
    }

    async fn inspect(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(id)?;
        Ok(self.info(&entry).await)
    }

    async fn counts(&self) -> SandboxResult<SandboxCounts> {
        Ok(self.tally())
    }

    async fn list(&self, owner: Option<UserId>) -> SandboxResult<Vec<SandboxInfo>> {
        let mut entries: Vec<Arc<Entry>> =
            self.lock().values().filter(|e| owner.is_none_or(|o| e.meta().owner == o)).cloned().collect();
        entries.sort_by_key(|e| e.id);
        let mut infos = Vec::with_capacity(entries.len());
        for entry in entries {
            infos.push(self.info(&entry).await);
        }
        Ok(infos)
    }

    async fn list_files(&self, id: SandboxId, dir: &str, recursive: bool) -> SandboxResult<Vec<WorkspaceEntry>> {
        let entry = self.entry(id)?;
        entry.touch();
        let (root, dir) = (entry.workspace(), workspace::clean(dir)?);
        tokio::task::spawn_blocking(move || workspace::list(&root, &dir, recursive)).await.map_err(blocking_failed)?
    }

    async fn upload(&self, id: SandboxId, path: &str, mut body: ByteStream) -> SandboxResult<WorkspaceEntry> {
        let entry = self.entry(id)?;
        entry.touch();
        let (root, path) = (entry.workspace(), workspace::clean(path)?);
        let limit = entry.meta().limits.disk_bytes;
        let begin = {
            let (root, path) = (root.clone(), path.clone());
            tokio::task::spawn_blocking(move || workspace::Upload::begin(&root, &path))
                .await
                .map_err(blocking_failed)??
        };
        let (upload, file, replaced) = begin;
        let used = workspace::usage_of(&root).await.saturating_sub(replaced);
        let room = limit.saturating_sub(used);
        let full = || {
            SandboxError::WorkspaceFull(format!(
                "workspace disk limit of {} would be exceeded ({} used)",
                limits::size(limit),
                limits::size(used)
            ))
        };
        let mut file = tokio::fs::File::from_std(file);
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = chunk.map_err(|e| SandboxError::Internal(format!("the upload broke off: {e}")))?;
            written += chunk.len() as u64;
            if written > room {
                return Err(full());
            }
            file.write_all(&chunk).await.map_err(|e| SandboxError::Internal(e.to_string()))?;
        }
        file.flush().await.map_err(|e| SandboxError::Internal(e.to_string()))?;
        drop(file);
        upload.commit()?;
        tokio::task::spawn_blocking(move || workspace::stat(&root, &path)).await.map_err(blocking_failed)?
    }

    async fn download(&self, id: SandboxId, path: &str) -> SandboxResult<ByteStream> {
        let entry = self.entry(id)?;
        entry.touch();
        let (root, path) = (entry.workspace(), workspace::clean(path)?);
        let file = tokio::task::spawn_blocking(move || workspace::open_file(&root, &path))
            .await
            .map_err(blocking_failed)??;
        let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
        Ok(Box::pin(stream))
    }

    async fn delete_path(&self, id: SandboxId, path: &str) -> SandboxResult<()> {
        let entry = self.entry(id)?;
        entry.touch();
        let (root, path) = (entry.workspace(), workspace::clean(path)?);
        tokio::task::spawn_blocking(move || workspace::delete(&root, &path)).await.map_err(blocking_failed)?
    }
}

/// The workspace folder of a sandbox (for tests and tools that work on the
/// host side).
pub fn workspace_dir(root: &Path, id: SandboxId) -> PathBuf {
    root.join("instances").join(id.to_string()).join("workspace")
}
