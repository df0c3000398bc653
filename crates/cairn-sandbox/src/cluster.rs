//! [`Sandboxes`] spread over the sandbox hosts of a deployment. Hosts
//! register in the database with their capacity and keep a heartbeat
//! ([`Heartbeat`]); a new sandbox goes to the live host with the most room,
//! and its placement is recorded, so every worker and gateway finds it.
//!
//! When a sandbox's host is gone (its heartbeat stopped, or it removed
//! itself when it drained), the next call for the sandbox places it again on
//! another live host under the same id, with its workspace restored from the
//! host's last snapshot in the object store; its next execution tells the
//! agent that the kernel restarted. Of several callers moving one sandbox at
//! once, the store lets one win.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::sandbox::{
    ByteStream, ExecHandler, ExecOutcome, Execution, HostReport, NewSandbox, PackagesChange, Placement, SandboxError,
    SandboxHost, SandboxInfo, SandboxResult, Sandboxes, WorkspaceEntry,
};
use cairn_core::store::Store;
use cairn_core::{SandboxId, UserId};
use time::OffsetDateTime;

use crate::{LocalSandboxes, RemoteSandboxes};

/// Sandboxes on the deployment's registered sandbox hosts.
#[derive(Debug, Clone)]
pub struct ClusterSandboxes {
    placements: Arc<dyn Store>,
    token: String,
    /// A host whose last heartbeat is older than this is taken for dead.
    stale_after: Duration,
    clients: Arc<Mutex<HashMap<String, RemoteSandboxes>>>,
    /// Sandboxes one member may have running over every host.
    per_user: Option<usize>,
}

fn store_down(error: cairn_core::Error) -> SandboxError {
    SandboxError::Unavailable(format!("cannot read where sandboxes run: {error}"))
}

impl ClusterSandboxes {
    /// Sandboxes on the hosts registered in `placements`, reached with the
    /// shared service credential.
    pub fn new(placements: Arc<dyn Store>, token: &str, stale_after: Duration) -> ClusterSandboxes {
        ClusterSandboxes {
            placements,
            token: token.to_owned(),
            stale_after,
            clients: Default::default(),
            per_user: None,
        }
    }

    /// Caps the sandboxes one member has running over all the hosts
    /// (`sandbox.max_running_per_user`; each host caps only its own): at the
    /// cap, the member's least recently used idle one is paused, wherever it
    /// runs, to make room; when all are busy, the new one is refused.
    pub fn with_per_user_cap(mut self, cap: usize) -> ClusterSandboxes {
        self.per_user = Some(cap.max(1));
        self
    }

    /// Room for one more of `owner`'s sandboxes to run (`starting`, a paused
    /// one about to run again, or a new one). The states are the hosts'
    /// last reports and what callers did since; a sandbox reported idle is
    /// paused only if its host finds it idle (no execution is cut short).
    /// A start asks again once its sandbox is placed, a wake asks once its
    /// sandbox is marked running, so two starts at the same moment cannot
    /// both take the last place.
    async fn make_room(&self, owner: UserId, starting: Option<SandboxId>) -> SandboxResult<()> {
        let Some(cap) = self.per_user else { return Ok(()) };
        let placed = self.placements.placements(Some(owner)).await.map_err(store_down)?;
        let running: Vec<Placement> = placed.into_iter().filter(|p| p.running && Some(p.sandbox) != starting).collect();
        if running.len() < cap {
            return Ok(());
        }
        let mut idle: Vec<&Placement> = running.iter().filter(|p| !p.busy).collect();
        idle.sort_by_key(|p| p.active_at);
        let mut over = running.len() + 1 - cap;
        for victim in idle {
            if over == 0 {
                break;
            }
            let id = victim.sandbox;
            match self.pause_if_idle(id).await {
                Ok(Some(_)) => {}
                Err(SandboxError::NotFound) => self.placements.mark_placement(id, false).await.map_err(store_down)?,
                // Busy since its host's last report: left running.
                Ok(None) => continue,
                Err(other) => return Err(other),
            }
            tracing::info!(sandbox = %id, owner = %owner, "paused a member's idle sandbox: at most {cap} run at once");
            over -= 1;
        }
        if over > 0 {
            return Err(SandboxError::CapReached(format!(
                "{} of your sandboxes are running and busy; at most {cap} may run at once",
                running.len()
            )));
        }
        Ok(())
    }

    fn client(&self, url: &str) -> SandboxResult<RemoteSandboxes> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(url) {
            return Ok(client.clone());
        }
        let client = RemoteSandboxes::new(url, &self.token)?;
        clients.insert(url.to_owned(), client.clone());
        Ok(client)
    }

    fn fresh(&self, host: &SandboxHost) -> bool {
        let age = OffsetDateTime::now_utc() - host.heartbeat_at;
        age < self.stale_after
    }

    /// A paused sandbox of `owner`'s about to run again: counted as running
    /// from now, then room is made for it (so a start or wake of the same
    /// moment elsewhere counts it), or it stays paused.
    async fn wake(&self, owner: UserId, id: SandboxId) -> SandboxResult<()> {
        self.placements.mark_placement(id, true).await.map_err(store_down)?;
        if let Err(error) = self.make_room(owner, Some(id)).await {
            let _ = self.placements.mark_placement(id, false).await;
            return Err(error);
        }
        Ok(())
    }

    /// Live hosts taking new sandboxes, the one with the most room first.
    async fn candidates(&self) -> SandboxResult<Vec<SandboxHost>> {
        let mut hosts: Vec<SandboxHost> = self
            .placements
            .sandbox_hosts()
            .await
            .map_err(store_down)?
            .into_iter()
            .filter(|h| self.fresh(h) && !h.draining && h.capacity > 0)
            .collect();
        let load = |h: &SandboxHost| (f64::from(h.placed) / f64::from(h.capacity), h.running);
        hosts.sort_by(|a, b| load(a).partial_cmp(&load(b)).unwrap_or(std::cmp::Ordering::Equal));
        Ok(hosts)
    }

    /// Whether the host is registered with a recent heartbeat.
    async fn alive(&self, url: &str) -> SandboxResult<bool> {
        let hosts = self.placements.sandbox_hosts().await.map_err(store_down)?;
        Ok(hosts.iter().any(|h| h.url == url && self.fresh(h)))
    }

    async fn placement(&self, id: SandboxId) -> SandboxResult<Placement> {
        self.placements.placement(id).await.map_err(store_down)?.ok_or(SandboxError::NotFound)
    }

    /// The host of a sandbox, moving the sandbox first if its host is gone:
    /// its heartbeat stopped and it does not answer either (a host whose
    /// reports could not reach the database for a while is still alive).
    async fn host_of(&self, id: SandboxId) -> SandboxResult<(Placement, RemoteSandboxes)> {
        let placement = self.placement(id).await?;
        let client = self.client(&placement.host)?;
        if self.alive(&placement.host).await? || client.inspect(id).await.is_ok() {
            return Ok((placement, client));
        }
        self.relocate(placement).await
    }

    /// Places a sandbox whose host is gone on another live host, its
    /// workspace restored from the last snapshot.
    async fn relocate(&self, placement: Placement) -> SandboxResult<(Placement, RemoteSandboxes)> {
        let mut last = SandboxError::Unavailable("no live sandbox host to move the sandbox to".into());
        for host in self.candidates().await? {
            if host.url == placement.host {
                continue;
            }
            let client = self.client(&host.url)?;
            let request = NewSandbox {
                owner: placement.owner,
                project: None,
                thread: placement.thread,
                policy: Default::default(),
                id: Some(placement.sandbox),
                restore: true,
            };
            match client.create(request).await {
                Ok(_) => {}
                Err(error @ (SandboxError::CapReached(_) | SandboxError::Unavailable(_))) => {
                    last = error;
                    continue;
                }
                Err(other) => return Err(other),
            }
            let moved = self
                .placements
                .move_sandbox(placement.sandbox, &placement.host, &host.url)
                .await
                .map_err(store_down)?;
            if moved {
                tracing::info!(sandbox = %placement.sandbox, from = %placement.host, to = %host.url,
                    "moved a sandbox whose host is gone");
                let placement = Placement { host: host.url.clone(), ..placement };
                return Ok((placement, client));
            }
            // Another caller moved it first: use theirs (the copy made here is
            // left to the host's idle timers, its snapshot untouched).
            let theirs = self.placement(placement.sandbox).await?;
            let client = self.client(&theirs.host)?;
            return Ok((theirs, client));
        }
        Err(last)
    }

    /// Runs `call` against the sandbox's host; when the host cannot be
    /// reached, waits for it to answer again or to be taken for dead (then
    /// moves the sandbox and tries once more).
    async fn on_host<T, F, Fut>(&self, id: SandboxId, call: F) -> SandboxResult<T>
    where
        F: Fn(RemoteSandboxes) -> Fut,
        Fut: std::future::Future<Output = SandboxResult<T>>,
    {
        let (placement, client) = self.host_of(id).await?;
        match call(client).await {
            Err(SandboxError::Unavailable(why)) => {
                let client = self.after_outage(placement, why).await?;
                call(client).await
            }
            other => other,
        }
    }

    /// The host did not answer: waits until its heartbeat says whether it
    /// is alive, then gives the client to use next (the same host, or a new
    /// one the sandbox moved to).
    async fn after_outage(&self, placement: Placement, why: String) -> SandboxResult<RemoteSandboxes> {
        let deadline = tokio::time::Instant::now() + self.stale_after + Duration::from_secs(1);
        loop {
            let client = self.client(&placement.host)?;
            if client.inspect(placement.sandbox).await.is_ok() {
                return Ok(client);
            }
            if !self.alive(&placement.host).await? {
                return Ok(self.relocate(placement).await?.1);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SandboxError::Unavailable(why));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[async_trait]
impl Sandboxes for ClusterSandboxes {
    async fn create(&self, request: NewSandbox) -> SandboxResult<SandboxInfo> {
        let hosts = self.candidates().await?;
        if hosts.is_empty() {
            return Err(SandboxError::Unavailable("no sandbox host is registered and alive".into()));
        }
        self.make_room(request.owner, None).await?;
        let id = request.id.unwrap_or_default();
        let mut last = None;
        for host in hosts {
            let client = self.client(&host.url)?;
            let info = match client.create(NewSandbox { id: Some(id), ..request.clone() }).await {
                Ok(info) => info,
                // Full or unreachable: the next host may have room.
                Err(error @ (SandboxError::CapReached(_) | SandboxError::Unavailable(_))) => {
                    last = Some(error);
                    continue;
                }
                Err(other) => return Err(other),
            };
            let now = OffsetDateTime::now_utc();
            let placement = Placement {
                sandbox: id,
                host: host.url.clone(),
                owner: request.owner,
                thread: request.thread,
                created_at: now,
                running: true,
                busy: false,
                active_at: now,
            };
            if let Err(error) = self.placements.place_sandbox(placement).await {
                let _ = client.destroy(id).await;
                return Err(store_down(error));
            }
            // Counted again with this one placed: another start of the
            // member's at the same moment may have made room for one too.
            // The room is made now (another idle one paused), or this one
            // gives way.
            if let Err(error) = self.make_room(request.owner, Some(id)).await {
                let _ = client.destroy(id).await;
                let _ = self.placements.remove_placement(id).await;
                return Err(error);
            }
            return Ok(info);
        }
        Err(last.unwrap_or_else(|| SandboxError::Unavailable("no sandbox host could take the sandbox".into())))
    }

    async fn execute(
        &self,
        id: SandboxId,
        execution: Execution,
        handler: &mut dyn ExecHandler,
    ) -> SandboxResult<ExecOutcome> {
        let (placement, client) = self.host_of(id).await?;
        // A paused sandbox runs again for this execution.
        let waking = !placement.running;
        if waking {
            self.wake(placement.owner, id).await?;
        }
        let done = match client.execute(id, execution.clone(), handler).await {
            Err(SandboxError::Unavailable(why)) => {
                let client = self.after_outage(placement, why).await?;
                client.execute(id, execution, handler).await
            }
            other => other,
        };
        if waking && done.is_ok() {
            self.placements.mark_placement(id, true).await.map_err(store_down)?;
        }
        done
    }

    async fn interrupt(&self, id: SandboxId) -> SandboxResult<()> {
        self.on_host(id, |c| async move { c.interrupt(id).await }).await
    }

    async fn pause(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        let info = self.on_host(id, |c| async move { c.pause(id).await }).await?;
        self.placements.mark_placement(id, false).await.map_err(store_down)?;
        Ok(info)
    }

    async fn pause_if_idle(&self, id: SandboxId) -> SandboxResult<Option<SandboxInfo>> {
        let paused = self.on_host(id, |c| async move { c.pause_if_idle(id).await }).await?;
        if paused.is_some() {
            self.placements.mark_placement(id, false).await.map_err(store_down)?;
        }
        Ok(paused)
    }

    async fn set_packages(&self, id: SandboxId, change: PackagesChange) -> SandboxResult<()> {
        self.on_host(id, |c| {
            let change = change.clone();
            async move { c.set_packages(id, change).await }
        })
        .await
    }

    async fn resume(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        let placement = self.placement(id).await?;
        self.wake(placement.owner, id).await?;
        match self.on_host(id, |c| async move { c.resume(id).await }).await {
            Ok(info) => Ok(info),
            Err(error) => {
                let _ = self.placements.mark_placement(id, false).await;
                Err(error)
            }
        }
    }

    async fn destroy(&self, id: SandboxId) -> SandboxResult<()> {
        let placement = self.placement(id).await?;
        if self.alive(&placement.host).await? {
            match self.client(&placement.host)?.destroy(id).await {
                Ok(()) | Err(SandboxError::NotFound) => {}
                Err(other) => return Err(other),
            }
        }
        self.placements.remove_placement(id).await.map_err(store_down)
    }

    async fn inspect(&self, id: SandboxId) -> SandboxResult<SandboxInfo> {
        self.on_host(id, |c| async move { c.inspect(id).await }).await
    }

    async fn list(&self, owner: Option<UserId>) -> SandboxResult<Vec<SandboxInfo>> {
        let mut found = Vec::new();
        for placement in self.placements.placements(owner).await.map_err(store_down)? {
            match self.inspect(placement.sandbox).await {
                Ok(info) => found.push(info),
                Err(SandboxError::NotFound) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(found)
    }

    async fn list_files(&self, id: SandboxId, dir: &str, recursive: bool) -> SandboxResult<Vec<WorkspaceEntry>> {
        self.on_host(id, |c| async move { c.list_files(id, dir, recursive).await }).await
    }

    async fn upload(&self, id: SandboxId, path: &str, body: ByteStream) -> SandboxResult<WorkspaceEntry> {
        // A body can be sent once: no second try on another host.
        let (_, client) = self.host_of(id).await?;
        client.upload(id, path, body).await
    }

    async fn download(&self, id: SandboxId, path: &str) -> SandboxResult<ByteStream> {
        self.on_host(id, |c| async move { c.download(id, path).await }).await
    }

    async fn delete_path(&self, id: SandboxId, path: &str) -> SandboxResult<()> {
        self.on_host(id, |c| async move { c.delete_path(id, path).await }).await
    }
}

/// A sandbox host's side: reports it is alive, with its capacity and load,
/// every `every`, until stopped; on stopping, says it is draining, and
/// finally removes itself so its sandboxes are moved at once.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    placements: Arc<dyn Store>,
    url: String,
    capacity: u32,
}

impl Heartbeat {
    pub fn new(placements: Arc<dyn Store>, url: &str, capacity: u32) -> Heartbeat {
        Heartbeat { placements, url: url.to_owned(), capacity }
    }

    /// One report of the host's sandboxes; then the copies the registry
    /// says are not this host's (their sandboxes moved elsewhere while it
    /// was taken for dead, or were never placed) are deleted.
    pub async fn beat(&self, sandboxes: &LocalSandboxes) -> cairn_core::Result<()> {
        let hosted = sandboxes.hosted();
        let running = u32::try_from(hosted.iter().filter(|s| s.running).count()).unwrap_or(u32::MAX);
        let report = HostReport {
            url: self.url.clone(),
            capacity: self.capacity,
            running,
            draining: false,
            sandboxes: Some(hosted),
        };
        for stale in self.placements.heartbeat_sandbox_host(report).await? {
            tracing::info!(sandbox = %stale, "deleting this host's copy of a sandbox placed elsewhere");
            match sandboxes.destroy(stale).await {
                Ok(()) | Err(SandboxError::NotFound) => {}
                Err(error) => tracing::warn!(sandbox = %stale, error = %error.detail(), "cannot delete a stale copy"),
            }
        }
        Ok(())
    }

    /// Reports every `every` until the task is dropped.
    pub async fn run(&self, every: Duration, sandboxes: LocalSandboxes) {
        loop {
            if let Err(error) = self.beat(&sandboxes).await {
                tracing::warn!(%error, "cannot report this sandbox host as alive; retrying");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The host is going away: nothing new is placed here, and once its
    /// sandboxes are paused and snapshotted, `leave` removes it.
    pub async fn drain(&self) {
        let report =
            HostReport { url: self.url.clone(), capacity: self.capacity, running: 0, draining: true, sandboxes: None };
        if let Err(error) = self.placements.heartbeat_sandbox_host(report).await.map(drop) {
            tracing::warn!(%error, "cannot mark this sandbox host as draining");
        }
    }

    pub async fn leave(&self) {
        if let Err(error) = self.placements.forget_sandbox_host(&self.url).await {
            tracing::warn!(%error, "cannot remove this sandbox host from the registry");
        }
    }
}
