//! The repository traits. Implemented by `cairn-store` for SQLite and
//! PostgreSQL; every method behaves the same on both (a contract test suite
//! holds them to it).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::hooks::{Attempt, Delivery, McpServer, NewMcpServer, NewWebhook, Notice, Webhook, WebhookUpdate};
use crate::lifecycle::{Deletion, DeletionKind};
use crate::model::{
    ApiKey, AuditEntry, Checkpoint, Event, Fence, FileRecord, Membership, MemoryChunk, Message, ModelConnection,
    ModelConnectionUpdate, ModelUsage, NewApiKey, NewAuditEntry, NewCheckpoint, NewEvent, NewFile, NewMemoryChunk,
    NewMessage, NewModelConnection, NewProject, NewRefreshToken, NewRun, NewThread, NewUser, Project, ProjectUpdate,
    RefreshOutcome, Role, Run, RunShare, RunStatus, Thread, ThreadMatch, User,
};
use crate::sandbox::{HostReport, Placement, SandboxHost};
use crate::schedule::{NewSchedule, Schedule, ScheduleUpdate};
use crate::{
    ApiKeyId, ConnectionId, DeletionId, DeliveryId, FileId, McpServerId, ProjectId, Result, RunId, SandboxId,
    ScheduleId, SessionId, ShareId, ThreadId, UserId, WebhookId,
};

#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Fails with `Conflict` if the e-mail (compared case-insensitively) is taken.
    async fn create_user(&self, new: NewUser) -> Result<User>;
    async fn user(&self, id: UserId) -> Result<User>;
    async fn user_by_email(&self, email: &str) -> Result<User>;
    /// Like `create_user`, but the user is an admin exactly when no user
    /// existed before (the first to register runs the deployment).
    async fn create_first_user_admin(&self, new: NewUser) -> Result<User>;
    /// Users in order of creation, after `after` (paging).
    async fn users(&self, after: Option<UserId>, limit: i64) -> Result<Vec<User>>;
    /// Replaces the password hash and bumps the token version, so every
    /// access token issued so far is refused.
    async fn set_password(&self, user: UserId, password_hash: String) -> Result<()>;
    async fn set_disabled(&self, user: UserId, disabled: bool) -> Result<User>;
    async fn set_admin(&self, user: UserId, is_admin: bool) -> Result<User>;
}

/// Sign-in sessions, password recovery and API keys.
#[async_trait]
pub trait CredentialRepo: Send + Sync {
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> Result<()>;
    /// Spends the token with this hash, atomically: of two concurrent uses
    /// exactly one rotates, the other is a reuse that revokes the session.
    async fn use_refresh_token(&self, token_hash: &[u8], now: OffsetDateTime) -> Result<RefreshOutcome>;
    /// Ends one session (logout).
    async fn revoke_session(&self, session: SessionId) -> Result<()>;
    /// Ends every session of a user (password change, disabled account).
    async fn revoke_sessions_of(&self, user: UserId) -> Result<()>;
    async fn insert_password_reset(&self, user: UserId, token_hash: Vec<u8>, expires_at: OffsetDateTime) -> Result<()>;
    /// Spends a recovery token, atomically and once; `None` if unknown,
    /// expired or spent.
    async fn use_password_reset(&self, token_hash: &[u8], now: OffsetDateTime) -> Result<Option<UserId>>;
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey>;
    /// The key and its secret's hash.
    async fn api_key(&self, id: ApiKeyId) -> Result<(ApiKey, Vec<u8>)>;
    /// The keys a user made, newest first, revoked ones included.
    async fn api_keys_of(&self, owner: UserId) -> Result<Vec<ApiKey>>;
    /// Revokes a key its owner made; `NotFound` for anyone else's.
    async fn revoke_api_key(&self, id: ApiKeyId, owner: UserId) -> Result<ApiKey>;
}

#[async_trait]
pub trait ProjectRepo: Send + Sync {
    /// Creates the project and makes `new.owner` its owner, atomically.
    async fn create_project(&self, new: NewProject) -> Result<Project>;
    async fn project(&self, id: ProjectId) -> Result<Project>;
    /// Applies the changes that are set (name, default model, budget).
    async fn update_project(&self, id: ProjectId, update: ProjectUpdate) -> Result<Project>;
    /// What the project's agent runs have spent on models so far (US dollars).
    async fn project_cost(&self, id: ProjectId) -> Result<f64>;
    /// The projects a user belongs to, with their role, oldest first.
    async fn projects_for_user(&self, user: UserId) -> Result<Vec<(Project, Role)>>;
    /// Adds the user to the project or changes their role.
    async fn set_member(&self, project: ProjectId, user: UserId, role: Role) -> Result<Membership> {
        self.set_member_noticed(project, user, role, None).await
    }
    /// [`set_member`](ProjectRepo::set_member), and in the same transaction
    /// the notice's webhook deliveries are queued.
    async fn set_member_noticed(
        &self,
        project: ProjectId,
        user: UserId,
        role: Role,
        notice: Option<Notice>,
    ) -> Result<Membership>;
    /// Fails with `NotFound` if the user was not a member.
    async fn remove_member(&self, project: ProjectId, user: UserId) -> Result<()>;
    /// The user's role in the project, `None` for non-members. Every
    /// project-scoped access check goes through this.
    async fn member_role(&self, project: ProjectId, user: UserId) -> Result<Option<Role>>;
    async fn members(&self, project: ProjectId) -> Result<Vec<Membership>>;
    /// Makes a service account of the project, in one transaction: a user
    /// that cannot sign in (no password; its e-mail a made-up address
    /// under `.invalid`), a member with `role`, recorded as the project's.
    async fn create_service_account(
        &self,
        project: ProjectId,
        name: String,
        role: Role,
        created_by: UserId,
    ) -> Result<User>;
    /// The project's service accounts, oldest first (deleted ones too:
    /// they stay, disabled, so the audit log keeps their names).
    async fn service_accounts(&self, project: ProjectId) -> Result<Vec<UserId>>;
}

#[async_trait]
pub trait ThreadRepo: Send + Sync {
    async fn create_thread(&self, new: NewThread) -> Result<Thread>;
    async fn thread(&self, id: ThreadId) -> Result<Thread>;
    async fn rename_thread(&self, id: ThreadId, title: String) -> Result<Thread>;
    /// The project's threads, newest first.
    async fn threads(&self, project: ProjectId) -> Result<Vec<Thread>>;
    /// With a fence, refused (`LeaseLost`) when the run was claimed since.
    async fn append_message(&self, new: NewMessage, fence: Option<Fence>) -> Result<Message>;
    /// Posts a run's answer once: the message, and `true`; or, when the run's
    /// answer was posted before (by a worker that died before finishing the
    /// run), that message and `false`. Fenced like `append_message`.
    async fn append_answer(&self, new: NewMessage, run: RunId, fence: Option<Fence>) -> Result<(Message, bool)>;
    /// The thread's messages in the order they were written.
    async fn messages(&self, thread: ThreadId) -> Result<Vec<Message>>;
    /// The message of that origin ([`NewMessage::origin`]), if one was posted.
    async fn message_by_origin(&self, origin: &str) -> Result<Option<Message>>;
    /// The answer a run posted, if it posted one.
    async fn run_answer(&self, run: RunId) -> Result<Option<String>>;
    /// Stores the events at the end of the thread's log, numbered consecutively
    /// in one transaction, and returns them with their numbers. Concurrent
    /// appenders never get the same number and never leave a gap. With a
    /// fence, refused (`LeaseLost`) when the run was claimed since.
    async fn append_events(&self, thread: ThreadId, events: Vec<NewEvent>, fence: Option<Fence>) -> Result<Vec<Event>> {
        self.append_events_noticed(thread, events, fence, None).await
    }
    /// [`append_events`](ThreadRepo::append_events), and in the same
    /// transaction the notice's webhook deliveries are queued.
    async fn append_events_noticed(
        &self,
        thread: ThreadId,
        events: Vec<NewEvent>,
        fence: Option<Fence>,
        notice: Option<Notice>,
    ) -> Result<Vec<Event>>;
    /// Up to `limit` events with `seq > after`, in order.
    async fn events_after(&self, thread: ThreadId, after: i64, limit: i64) -> Result<Vec<Event>>;
    /// Threads of `projects` whose title or any message holds `text`
    /// (case-insensitive, taken literally), most recently active first, at
    /// most `limit`.
    async fn search_threads(&self, projects: &[ProjectId], text: &str, limit: i64) -> Result<Vec<ThreadMatch>>;
}

/// Read-only links to runs.
#[async_trait]
pub trait ShareRepo: Send + Sync {
    async fn create_share(
        &self,
        run: RunId,
        created_by: UserId,
        token_hash: Vec<u8>,
        expires_at: OffsetDateTime,
    ) -> Result<RunShare>;
    /// The run's links, newest first (revoked and expired ones too).
    async fn shares(&self, run: RunId) -> Result<Vec<RunShare>>;
    /// Revokes one of the run's links; `NotFound` if it has no such link.
    async fn revoke_share(&self, run: RunId, id: ShareId) -> Result<RunShare>;
    /// The link whose token hashes to `token_hash` (open or not);
    /// `NotFound` if none.
    async fn share_by_token(&self, token_hash: &[u8]) -> Result<RunShare>;
}

#[async_trait]
pub trait RunRepo: Send + Sync {
    async fn create_run(&self, new: NewRun) -> Result<Run>;
    async fn run(&self, id: RunId) -> Result<Run>;
    /// The thread's runs, oldest first.
    async fn runs(&self, thread: ThreadId) -> Result<Vec<Run>>;
    /// Moves the run to `status`. A run that already finished keeps its final
    /// status: the call fails with `Conflict`. With a fence, refused
    /// (`LeaseLost`) when the run was claimed since.
    async fn set_run_status(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<String>,
        fence: Option<Fence>,
    ) -> Result<Run>;
    /// [`RunRepo::set_run_status`] and, in the same transaction, the event
    /// that says so at the end of the run's thread's log: both or neither,
    /// so a crash or an outage between them cannot leave a finished run
    /// whose log never says it finished. A notice's webhook deliveries are
    /// queued in the same transaction too.
    async fn set_run_status_logged(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<String>,
        fence: Option<Fence>,
        event: Option<NewEvent>,
        notice: Option<Notice>,
    ) -> Result<(Run, Option<Event>)>;
    /// Claims the run for the caller: moves its lease generation on and
    /// returns the fence the caller's writes carry. Every earlier fence of
    /// the run is refused from then on.
    async fn claim_run(&self, id: RunId) -> Result<Fence>;
    /// Adds a model call's cost to what the run has spent.
    async fn add_run_cost(&self, id: RunId, cost_usd: f64) -> Result<()>;
    /// How many runs there are in each status, across the deployment
    /// (statuses without runs left out).
    async fn run_counts(&self) -> Result<Vec<(RunStatus, u64)>>;
    /// Saves the state after a step. Writing the same step twice (a re-run step)
    /// replaces it, so at-least-once execution leaves one checkpoint per step.
    /// Nothing is read back: a run writes one after every step. With a
    /// fence, refused (`LeaseLost`) when the run was claimed since.
    async fn put_checkpoint(&self, checkpoint: NewCheckpoint, fence: Option<Fence>) -> Result<()>;
    /// Replaces a step's checkpoint of a run that waits for a member (a plan
    /// edited before its approval), in one statement that holds the run's
    /// row; whether it was saved: not once the run no longer waits —
    /// approved, cancelled or taken up meanwhile — so an edit never lands
    /// under a run that went on.
    async fn put_checkpoint_while_waiting(&self, checkpoint: NewCheckpoint) -> Result<bool>;
    async fn latest_checkpoint(&self, run: RunId) -> Result<Option<Checkpoint>>;
    /// All checkpoints of a run, by step.
    async fn checkpoints(&self, run: RunId) -> Result<Vec<Checkpoint>>;
    /// Keeps what one lane of a batch of tasks (the run's step `step`) came
    /// to; the first result written stays (a lane worked twice after a crash
    /// changes nothing). Under the supervisor's `fence` (the claim it queued
    /// the lane under), refused with `LeaseLost` once another worker has
    /// taken the run over (its supervisor queues the lane again) — unless a
    /// result is already kept, which stays.
    async fn put_lane_result(
        &self,
        run: RunId,
        step: i64,
        lane: i64,
        state: serde_json::Value,
        fence: Option<Fence>,
    ) -> Result<()>;
    async fn lane_result(&self, run: RunId, step: i64, lane: i64) -> Result<Option<serde_json::Value>>;
}

/// File metadata of the project library.
#[async_trait]
pub trait FileRepo: Send + Sync {
    /// Stores a new version of `new.path`: version 1 for a new path, else one
    /// more than the newest.
    async fn insert_file(&self, new: NewFile) -> Result<FileRecord>;
    async fn file(&self, id: FileId) -> Result<FileRecord>;
    /// The newest version of every file whose path starts with `prefix`
    /// (taken literally), by path.
    async fn files(&self, project: ProjectId, prefix: &str) -> Result<Vec<FileRecord>>;
    /// Every version of one path, newest first.
    async fn file_versions(&self, project: ProjectId, path: &str) -> Result<Vec<FileRecord>>;
    /// Renames a file (all its versions) or, with `folder`, everything under
    /// the folder `from/` to `to/`. `Conflict` if a target path is taken,
    /// `NotFound` if nothing matched. Returns how many versions moved.
    async fn move_files(&self, project: ProjectId, from: &str, to: &str, folder: bool) -> Result<u64>;
    /// Removes a file (all versions) or, with `folder`, everything under it;
    /// returns what was removed so its objects can be deleted.
    async fn delete_files(&self, project: ProjectId, path: &str, folder: bool) -> Result<Vec<FileRecord>>;
    /// Bytes stored by the project, all versions counted.
    async fn project_usage(&self, project: ProjectId) -> Result<i64>;
}

#[async_trait]
pub trait AuditRepo: Send + Sync {
    async fn record_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry>;
    /// The entries the filter lets through, newest first; `filter.before`
    /// pages backwards through older entries. There is no way to change or
    /// remove an entry (the database refuses updates).
    async fn audit_log(&self, filter: &crate::model::AuditFilter, limit: i64) -> Result<Vec<AuditEntry>>;
}

/// Everything the rest of Cairn needs from the database.
/// Project memory: chunks of text with their embeddings, searched by
/// cosine similarity (sqlite-vec on SQLite, pgvector on PostgreSQL).
#[async_trait]
pub trait MemoryRepo: Send + Sync {
    /// Stores the chunks (one transaction).
    async fn add_memory(&self, chunks: Vec<NewMemoryChunk>) -> Result<Vec<MemoryChunk>>;
    /// The project's chunks most similar to `embedding`, best first, with
    /// their cosine similarity (1: same direction).
    async fn search_memory(&self, project: ProjectId, embedding: &[f32], limit: i64)
    -> Result<Vec<(MemoryChunk, f32)>>;
    /// Forgets the chunks of a source (a file being indexed again); how many.
    async fn forget_memory(&self, project: ProjectId, source: &str) -> Result<u64>;
    /// What was remembered in so many words (notes, and what runs kept),
    /// oldest first: every chunk but the library files' text.
    async fn memory_notes(&self, project: ProjectId) -> Result<Vec<MemoryChunk>>;
}

/// What the agent's model calls used, added up from the threads' logs: each
/// call is one event of kind `usage` (the agent's `RunEvent::Usage`), whose
/// payload names the `user` whose run made it, its `input_tokens`,
/// `output_tokens`, `cache_read_tokens`, `cache_write_tokens`, `cost_usd`
/// and `saved_usd`; a field the payload lacks (version 1 wrote no cache
/// fields) counts as 0. The log is the one record, so the totals cannot
/// drift from it, and events written by any version count.
#[async_trait]
pub trait UsageRepo: Send + Sync {
    /// The project's model calls by the user whose runs made them, in the
    /// order of the users' ids.
    async fn usage_by_user(&self, project: ProjectId) -> Result<Vec<(UserId, ModelUsage)>>;
    /// The user's model calls by project, for the projects they are a
    /// member of that have any, oldest project first.
    async fn usage_by_project(&self, user: UserId) -> Result<Vec<(ProjectId, ModelUsage)>>;
    /// The project's model calls since `since`, by UTC day (`YYYY-MM-DD`),
    /// user and model, oldest day first.
    async fn usage_by_day(
        &self,
        project: ProjectId,
        since: OffsetDateTime,
    ) -> Result<Vec<(String, UserId, String, ModelUsage)>>;
}

/// Model connections made in the app.
#[async_trait]
pub trait ConnectionRepo: Send + Sync {
    /// `Conflict` when the name is taken.
    async fn create_connection(&self, new: NewModelConnection) -> Result<ModelConnection>;
    async fn connections(&self) -> Result<Vec<ModelConnection>>;
    async fn connection(&self, id: ConnectionId) -> Result<ModelConnection>;
    async fn update_connection(&self, id: ConnectionId, update: ModelConnectionUpdate) -> Result<ModelConnection>;
    /// `NotFound` when there is none.
    async fn delete_connection(&self, id: ConnectionId) -> Result<()>;
    /// Replaces a key's ciphertext (the key ring re-sealing it under its newest key).
    async fn reseal_connection_key(&self, id: ConnectionId, ciphertext: Vec<u8>) -> Result<()>;
}

/// Where sandboxes run in the distributed shape: the sandbox hosts with
/// their heartbeats, and the host of each sandbox.
#[async_trait]
pub trait PlacementRepo: Send + Sync {
    /// A sandbox host says it is alive (registering it the first time).
    /// With the list of its sandboxes, their placements on it take the
    /// states it reports, its placements of sandboxes it no longer holds
    /// (placed more than a minute ago) are removed, and the answer names the
    /// sandboxes it holds that are not its own: placed on another host (it
    /// was taken for dead and they moved), or never placed and more than ten
    /// minutes old. The host deletes those copies.
    async fn heartbeat_sandbox_host(&self, host: HostReport) -> Result<Vec<SandboxId>>;
    /// Every registered host, with its last heartbeat and the sandboxes
    /// placed on it; callers judge liveness by the heartbeat's age.
    async fn sandbox_hosts(&self) -> Result<Vec<SandboxHost>>;
    /// Removes a host (it stopped, or it is dead); its placements stay, to be
    /// moved elsewhere.
    async fn forget_sandbox_host(&self, url: &str) -> Result<()>;
    /// Records a new sandbox's host.
    async fn place_sandbox(&self, placement: Placement) -> Result<()>;
    async fn placement(&self, sandbox: SandboxId) -> Result<Option<Placement>>;
    /// Every placement, or the owner's, oldest first.
    async fn placements(&self, owner: Option<UserId>) -> Result<Vec<Placement>>;
    /// Moves a sandbox from `from` to `to` if it is still on `from`: of two
    /// callers moving it at once, one does (`true`), the other finds it moved.
    async fn move_sandbox(&self, sandbox: SandboxId, from: &str, to: &str) -> Result<bool>;
    async fn remove_placement(&self, sandbox: SandboxId) -> Result<()>;
    /// A caller paused or resumed the sandbox: its placement says so until
    /// the host's next report.
    async fn mark_placement(&self, sandbox: SandboxId, running: bool) -> Result<()>;
}

/// Projects' webhook endpoints and their deliveries: a durable queue of
/// messages, each tried until delivered or given up, claimed by one
/// dispatcher at a time however many processes poll.
#[async_trait]
pub trait WebhookRepo: Send + Sync {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook>;
    async fn webhook(&self, id: WebhookId) -> Result<Webhook>;
    /// The project's endpoints, oldest first.
    async fn webhooks(&self, project: ProjectId) -> Result<Vec<Webhook>>;
    async fn update_webhook(&self, id: WebhookId, update: WebhookUpdate) -> Result<Webhook>;
    /// A new secret; the one it replaces still signs until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        id: WebhookId,
        secret_sealed: Vec<u8>,
        previous_until: OffsetDateTime,
    ) -> Result<Webhook>;
    /// Deletes the endpoint and its deliveries.
    async fn delete_webhook(&self, id: WebhookId) -> Result<()>;
    /// Queues one message of `event_type` to each of the project's enabled
    /// endpoints that subscribe to it, due now; the deliveries made.
    async fn queue_deliveries(
        &self,
        project: ProjectId,
        event_type: &str,
        payload: serde_json::Value,
    ) -> Result<Vec<Delivery>>;
    /// Takes the most overdue pending delivery for `lease` (no other caller
    /// gets it meanwhile), counting the attempt; `None` when none is due.
    async fn claim_delivery(&self, lease: std::time::Duration) -> Result<Option<Delivery>>;
    /// Records an attempt's outcome: delivered, due again, or failed.
    async fn finish_attempt(&self, id: DeliveryId, attempt: Attempt) -> Result<Delivery>;
    /// The endpoint's deliveries, newest first.
    async fn deliveries(&self, webhook: WebhookId, limit: i64) -> Result<Vec<Delivery>>;
    async fn delivery(&self, id: DeliveryId) -> Result<Delivery>;
    /// Queues a delivery again, due now, whatever it went through (its id,
    /// and so its `webhook-id`, stays).
    async fn redeliver(&self, id: DeliveryId) -> Result<Delivery>;
}

/// Scheduled runs. A tick is taken by moving `next_run_at` on from the
/// value read (compare and set): however many processes poll, one takes
/// each tick.
#[async_trait]
pub trait ScheduleRepo: Send + Sync {
    async fn create_schedule(&self, new: NewSchedule) -> Result<Schedule>;
    async fn schedule(&self, id: ScheduleId) -> Result<Schedule>;
    /// The project's schedules, oldest first.
    async fn schedules(&self, project: ProjectId) -> Result<Vec<Schedule>>;
    async fn update_schedule(&self, id: ScheduleId, update: ScheduleUpdate) -> Result<Schedule>;
    async fn delete_schedule(&self, id: ScheduleId) -> Result<()>;
    /// Schedules not paused whose tick is due at `now`, most overdue first.
    async fn due_schedules(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<Schedule>>;
    /// Takes the tick due at `due`: moves the schedule on to `next`, unless
    /// another caller took it (or it was paused or changed) since; whether
    /// this caller got it. The tick stays pending (`pending_tick`, since
    /// now) until [`record_tick`](ScheduleRepo::record_tick).
    async fn take_tick(&self, id: ScheduleId, due: OffsetDateTime, next: OffsetDateTime) -> Result<bool>;
    /// Records what a tick did: the run it started, or why it started none;
    /// the tick is no longer pending.
    async fn record_tick(&self, id: ScheduleId, run: Option<RunId>, error: Option<String>) -> Result<()>;
    /// Schedules whose tick has been pending since before `before` (the
    /// process that took it died, or lost the store), oldest first.
    async fn stale_ticks(&self, before: OffsetDateTime, limit: i64) -> Result<Vec<Schedule>>;
    /// Takes over a stale pending tick, unless another caller did since (it
    /// was pending since `since`); whether this caller got it.
    async fn retake_tick(&self, id: ScheduleId, since: OffsetDateTime) -> Result<bool>;
}

/// The MCP servers a project's agent may use.
#[async_trait]
pub trait McpServerRepo: Send + Sync {
    /// Adds one; `Conflict` when the project has one of that name.
    async fn add_mcp_server(&self, new: NewMcpServer) -> Result<McpServer>;
    /// The project's, oldest first.
    async fn mcp_servers(&self, project: ProjectId) -> Result<Vec<McpServer>>;
    async fn remove_mcp_server(&self, project: ProjectId, id: McpServerId) -> Result<()>;
}

/// Deleting threads, projects and accounts. A deletion hides its target at
/// once (every read of the repositories skips it) and queues a job that a
/// background worker claims with a lease, like a webhook delivery: a worker
/// that dies mid-way leaves the job to the next once the lease runs out.
/// Every purge is idempotent, so a job done twice in part is harmless.
#[async_trait]
pub trait LifecycleRepo: Send + Sync {
    /// Hides the thread or project `target` and queues its deletion, in one
    /// transaction. `NotFound` if it does not exist or is already deleted.
    async fn request_deletion(&self, kind: DeletionKind, target: uuid::Uuid, requested_by: UserId) -> Result<Deletion>;
    async fn deletion(&self, id: DeletionId) -> Result<Deletion>;
    /// Takes the oldest deletion that is pending, or running under a lease
    /// that ran out, for `lease`, counting the attempt.
    async fn claim_deletion(&self, lease: std::time::Duration) -> Result<Option<Deletion>>;
    /// Records progress and extends the lease by `lease` from now.
    async fn deletion_progress(&self, id: DeletionId, done: i64, total: i64, lease: std::time::Duration) -> Result<()>;
    /// Gives the job back after a failure: due again once `retry_in` passed.
    async fn deletion_failed(&self, id: DeletionId, error: String, retry_in: std::time::Duration) -> Result<()>;
    async fn finish_deletion(&self, id: DeletionId) -> Result<Deletion>;
    /// Every thread of the project, hidden ones included.
    async fn project_thread_ids(&self, project: ProjectId) -> Result<Vec<ThreadId>>;
    /// Removes the thread's rows: messages, events, runs, checkpoints, lanes,
    /// schedules posting to it, the memory its runs kept. What its runs
    /// spent is kept, by member and month, so budgets still count it. Files
    /// its runs saved stay in the library. Nothing to do: `Ok`.
    async fn purge_thread(&self, thread: ThreadId) -> Result<()>;
    /// Removes the project's rows (its threads must be purged first) and
    /// everything that hangs off it; its service accounts are deleted as
    /// accounts are. Nothing to do: `Ok`.
    async fn purge_project(&self, project: ProjectId) -> Result<()>;
    /// Deletes an account: its e-mail, name and password are erased (the row
    /// stays, as "Deleted user", so what it wrote keeps an author), it is
    /// disabled, and its memberships, sessions, recovery tokens and API keys
    /// are removed, in one transaction.
    async fn delete_account(&self, user: UserId) -> Result<User>;
    /// What members spent on models, by member, over every run of the
    /// project that is gone or still stored, in US dollars: deleted threads'
    /// spending included. With `since`, runs from then on only.
    async fn spent_by_member(&self, project: Option<ProjectId>, user: UserId, since: OffsetDateTime) -> Result<f64>;
    /// Sets (or, with `None`, removes) a member's monthly budget in a
    /// project, or across projects.
    async fn set_member_budget(
        &self,
        project: Option<ProjectId>,
        user: UserId,
        monthly_usd: Option<f64>,
        set_by: UserId,
    ) -> Result<()>;
    /// The member's budgets: across projects and per project.
    async fn member_budgets(&self, user: UserId) -> Result<Vec<crate::lifecycle::MemberBudget>>;
    /// Every project (not deleted) with its own retention setting.
    async fn retention_settings(&self) -> Result<Vec<(ProjectId, Option<i32>)>>;
    /// Removes the step details of up to `limit` of the project's runs that
    /// finished before `before` and still have them: their events but those
    /// in [`crate::lifecycle::KEPT_EVENT_KINDS`], their checkpoints and lane
    /// results. Each is marked (`details_removed_at`). What was removed.
    async fn prune_run_details(
        &self,
        project: ProjectId,
        before: OffsetDateTime,
        limit: i64,
    ) -> Result<crate::lifecycle::Pruned>;
    /// Removes audit entries older than `before` (only where the deployment
    /// configured an audit retention); how many.
    async fn prune_audit(&self, before: OffsetDateTime) -> Result<u64>;
    /// The budgets set for members of the project (per project only).
    async fn project_member_budgets(&self, project: ProjectId) -> Result<Vec<crate::lifecycle::MemberBudget>>;
    /// What the project's runs spent since `since`, by member and calendar
    /// month (UTC), deleted threads' spending included.
    async fn project_spending(
        &self,
        project: ProjectId,
        since: OffsetDateTime,
    ) -> Result<Vec<(UserId, OffsetDateTime, f64)>>;
}

#[async_trait]
pub trait Store:
    UserRepo
    + CredentialRepo
    + ProjectRepo
    + FileRepo
    + ThreadRepo
    + RunRepo
    + UsageRepo
    + AuditRepo
    + MemoryRepo
    + ConnectionRepo
    + PlacementRepo
    + WebhookRepo
    + ScheduleRepo
    + McpServerRepo
    + LifecycleRepo
    + ShareRepo
    + std::fmt::Debug
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Checks the database answers; `Unavailable` if not.
    async fn ping(&self) -> Result<()>;
}
