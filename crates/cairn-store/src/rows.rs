//! Row shapes as both backends return them, and their conversion into domain
//! types. Enums are stored as their text form; an unknown value is corrupt data.

use std::str::FromStr;

use cairn_core::model::{
    ApiKey, AuditEntry, Checkpoint, Event, FileRecord, Membership, Message, Project, Role, Run, Thread, User,
};
use cairn_core::{ApiKeyId, AuditId, Dependency, FileId, MessageId, ProjectId, RunId, ThreadId, UserId};
use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) fn parse<T: FromStr>(text: &str) -> cairn_core::Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| cairn_core::Error::Internal { dependency: Dependency::Database, detail: e.to_string() })
}

/// The current time as stored: UTC, whole microseconds (PostgreSQL's
/// precision), so a value reads back exactly as it was written on both backends.
///
/// SQLite keeps a time as text with the fewest fraction digits
/// (`…:05.12Z`), and compares the text: `…:05.12Z` sorts after
/// `…:05.123Z`, a later time of the same second. With all six digits
/// written, text order is time order, so a last digit of 0 is made 1 (a
/// microsecond later).
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    let mut micros = t.nanosecond() / 1_000;
    if micros.is_multiple_of(10) {
        micros += 1;
    }
    t.replace_nanosecond(micros * 1_000).unwrap_or(t)
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    email: String,
    display_name: String,
    password_hash: String,
    is_admin: bool,
    disabled: bool,
    token_version: i64,
    created_at: OffsetDateTime,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId(r.id),
            email: r.email,
            display_name: r.display_name,
            password_hash: r.password_hash,
            is_admin: r.is_admin,
            disabled: r.disabled,
            token_version: r.token_version,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
    id: Uuid,
    name: String,
    created_by: Uuid,
    created_at: OffsetDateTime,
    model: Option<String>,
    budget_usd: Option<f64>,
    retention_days: Option<i32>,
    packages: bool,
    requirements: String,
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            id: ProjectId(r.id),
            name: r.name,
            created_by: UserId(r.created_by),
            created_at: r.created_at,
            model: r.model,
            budget_usd: r.budget_usd,
            retention_days: r.retention_days,
            packages: r.packages,
            requirements: r.requirements,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRoleRow {
    #[sqlx(flatten)]
    project: ProjectRow,
    role: String,
}

impl ProjectRoleRow {
    pub(crate) fn into_domain(self) -> cairn_core::Result<(Project, Role)> {
        Ok((self.project.into(), parse(&self.role)?))
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MembershipRow {
    project_id: Uuid,
    user_id: Uuid,
    role: String,
    created_at: OffsetDateTime,
}

impl MembershipRow {
    pub(crate) fn into_domain(self) -> cairn_core::Result<Membership> {
        Ok(Membership {
            project_id: ProjectId(self.project_id),
            user_id: UserId(self.user_id),
            role: parse(&self.role)?,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ThreadRow {
    id: Uuid,
    project_id: Uuid,
    title: String,
    created_by: Uuid,
    created_at: OffsetDateTime,
    last_event_seq: i64,
    model: Option<String>,
}

/// A thread a search found, with its first matching message.
#[derive(sqlx::FromRow)]
pub(crate) struct ThreadMatchRow {
    #[sqlx(flatten)]
    pub(crate) thread: ThreadRow,
    pub(crate) snippet: Option<String>,
}

impl From<ThreadRow> for Thread {
    fn from(r: ThreadRow) -> Self {
        Thread {
            id: ThreadId(r.id),
            project_id: ProjectId(r.project_id),
            title: r.title,
            created_by: UserId(r.created_by),
            created_at: r.created_at,
            last_event_seq: r.last_event_seq,
            model: r.model,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: Uuid,
    thread_id: Uuid,
    role: String,
    author_id: Option<Uuid>,
    content: String,
    /// A JSON array of paths.
    attachments: String,
    created_at: OffsetDateTime,
}

impl MessageRow {
    pub(crate) fn into_domain(self) -> cairn_core::Result<Message> {
        Ok(Message {
            id: MessageId(self.id),
            thread_id: ThreadId(self.thread_id),
            role: parse(&self.role)?,
            author: self.author_id.map(UserId),
            content: self.content,
            attachments: serde_json::from_str(&self.attachments).map_err(|e| cairn_core::Error::Internal {
                dependency: Dependency::Database,
                detail: format!("a message's attachments are not a JSON list: {e}"),
            })?,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: Uuid,
    thread_id: Uuid,
    status: String,
    created_by: Uuid,
    error: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    trace_parent: Option<String>,
    details_removed_at: Option<OffsetDateTime>,
}

impl RunRow {
    pub(crate) fn into_domain(self) -> cairn_core::Result<Run> {
        Ok(Run {
            id: RunId(self.id),
            thread_id: ThreadId(self.thread_id),
            status: parse(&self.status)?,
            created_by: UserId(self.created_by),
            error: self.error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            trace_parent: self.trace_parent,
            details_removed_at: self.details_removed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    thread_id: Uuid,
    seq: i64,
    run_id: Option<Uuid>,
    kind: String,
    payload: Json<Value>,
    schema_version: i32,
    created_at: OffsetDateTime,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Event {
            thread_id: ThreadId(r.thread_id),
            seq: r.seq,
            run_id: r.run_id.map(RunId),
            kind: r.kind,
            payload: r.payload.0,
            schema_version: r.schema_version,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CheckpointRow {
    run_id: Uuid,
    step: i64,
    state: Json<Value>,
    created_at: OffsetDateTime,
}

impl From<CheckpointRow> for Checkpoint {
    fn from(r: CheckpointRow) -> Self {
        Checkpoint { run_id: RunId(r.run_id), step: r.step, state: r.state.0, created_at: r.created_at }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: Uuid,
    actor_id: Option<Uuid>,
    project_id: Option<Uuid>,
    action: String,
    target: Option<String>,
    outcome: String,
    detail: Json<Value>,
    client_addr: Option<String>,
    created_at: OffsetDateTime,
}

impl AuditRow {
    pub(crate) fn into_domain(self) -> cairn_core::Result<AuditEntry> {
        Ok(AuditEntry {
            id: AuditId(self.id),
            actor: self.actor_id.map(UserId),
            project_id: self.project_id.map(ProjectId),
            action: self.action,
            target: self.target,
            outcome: parse(&self.outcome)?,
            detail: self.detail.0,
            client_addr: self.client_addr,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: Uuid,
    owner_id: Uuid,
    project_id: Uuid,
    role: String,
    name: String,
    pub(crate) secret_hash: Vec<u8>,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

impl ApiKeyRow {
    pub(crate) fn into_domain(self) -> cairn_core::Result<ApiKey> {
        Ok(ApiKey {
            id: ApiKeyId(self.id),
            owner: UserId(self.owner_id),
            project_id: ProjectId(self.project_id),
            role: parse(&self.role)?,
            name: self.name,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct FileRow {
    id: Uuid,
    project_id: Uuid,
    path: String,
    version: i32,
    size: i64,
    content_type: String,
    sha256: String,
    object_key: String,
    created_by: Option<Uuid>,
    run_id: Option<Uuid>,
    step: Option<i64>,
    created_at: OffsetDateTime,
}

impl From<FileRow> for FileRecord {
    fn from(r: FileRow) -> Self {
        FileRecord {
            id: FileId(r.id),
            project_id: ProjectId(r.project_id),
            path: r.path,
            version: r.version,
            size: r.size,
            content_type: r.content_type,
            sha256: r.sha256,
            object_key: r.object_key,
            created_by: r.created_by.map(UserId),
            run_id: r.run_id.map(RunId),
            step: r.step,
            created_at: r.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_times_have_six_fraction_digits_so_text_order_is_time_order() {
        for _ in 0..1000 {
            let t = super::now();
            assert_eq!(t.nanosecond() % 1_000, 0, "whole microseconds");
            assert!(!(t.nanosecond() / 1_000).is_multiple_of(10), "no trailing zero to drop");
        }
    }
}
