//! The repository traits. Implemented by `cairn-store` for SQLite and
//! PostgreSQL; every method behaves the same on both (a contract test suite
//! holds them to it).

use async_trait::async_trait;

use crate::model::{
    AuditEntry, Checkpoint, Event, Membership, Message, NewAuditEntry, NewCheckpoint, NewEvent, NewMessage, NewProject,
    NewRun, NewThread, NewUser, Project, Role, Run, RunStatus, Thread, User,
};
use crate::{ProjectId, Result, RunId, ThreadId, UserId};

#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Fails with `Conflict` if the e-mail (compared case-insensitively) is taken.
    async fn create_user(&self, new: NewUser) -> Result<User>;
    async fn user(&self, id: UserId) -> Result<User>;
    async fn user_by_email(&self, email: &str) -> Result<User>;
}

#[async_trait]
pub trait ProjectRepo: Send + Sync {
    /// Creates the project and makes `new.owner` its owner, atomically.
    async fn create_project(&self, new: NewProject) -> Result<Project>;
    async fn project(&self, id: ProjectId) -> Result<Project>;
    /// The projects a user belongs to, with their role, oldest first.
    async fn projects_for_user(&self, user: UserId) -> Result<Vec<(Project, Role)>>;
    /// Adds the user to the project or changes their role.
    async fn set_member(&self, project: ProjectId, user: UserId, role: Role) -> Result<Membership>;
    /// Fails with `NotFound` if the user was not a member.
    async fn remove_member(&self, project: ProjectId, user: UserId) -> Result<()>;
    /// The user's role in the project, `None` for non-members. Every
    /// project-scoped access check goes through this.
    async fn member_role(&self, project: ProjectId, user: UserId) -> Result<Option<Role>>;
    async fn members(&self, project: ProjectId) -> Result<Vec<Membership>>;
}

#[async_trait]
pub trait ThreadRepo: Send + Sync {
    async fn create_thread(&self, new: NewThread) -> Result<Thread>;
    async fn thread(&self, id: ThreadId) -> Result<Thread>;
    /// The project's threads, newest first.
    async fn threads(&self, project: ProjectId) -> Result<Vec<Thread>>;
    async fn append_message(&self, new: NewMessage) -> Result<Message>;
    /// The thread's messages in the order they were written.
    async fn messages(&self, thread: ThreadId) -> Result<Vec<Message>>;
    /// Stores the events at the end of the thread's log, numbered consecutively
    /// in one transaction, and returns them with their numbers. Concurrent
    /// appenders never get the same number and never leave a gap.
    async fn append_events(&self, thread: ThreadId, events: Vec<NewEvent>) -> Result<Vec<Event>>;
    /// Up to `limit` events with `seq > after`, in order.
    async fn events_after(&self, thread: ThreadId, after: i64, limit: i64) -> Result<Vec<Event>>;
}

#[async_trait]
pub trait RunRepo: Send + Sync {
    async fn create_run(&self, new: NewRun) -> Result<Run>;
    async fn run(&self, id: RunId) -> Result<Run>;
    /// Moves the run to `status`. A run that already finished keeps its final
    /// status: the call fails with `Conflict`.
    async fn set_run_status(&self, id: RunId, status: RunStatus, error: Option<String>) -> Result<Run>;
    /// Saves the state after a step. Writing the same step twice (a re-run step)
    /// replaces it, so at-least-once execution leaves one checkpoint per step.
    async fn put_checkpoint(&self, checkpoint: NewCheckpoint) -> Result<Checkpoint>;
    async fn latest_checkpoint(&self, run: RunId) -> Result<Option<Checkpoint>>;
    /// All checkpoints of a run, by step.
    async fn checkpoints(&self, run: RunId) -> Result<Vec<Checkpoint>>;
}

#[async_trait]
pub trait AuditRepo: Send + Sync {
    async fn record_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry>;
    /// Newest first; `before` pages backwards through older entries.
    async fn audit_log(&self, before: Option<crate::AuditId>, limit: i64) -> Result<Vec<AuditEntry>>;
}

/// Everything the rest of Cairn needs from the database.
#[async_trait]
pub trait Store: UserRepo + ProjectRepo + ThreadRepo + RunRepo + AuditRepo + std::fmt::Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Checks the database answers; `Unavailable` if not.
    async fn ping(&self) -> Result<()>;
}
