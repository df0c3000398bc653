//! Domain types. Wire shapes (`*Request`/`*Response`) live in the gateway and
//! are converted from these explicitly.

use serde_json::Value;
use time::OffsetDateTime;

use crate::{ApiKeyId, AuditId, FileId, MessageId, ProjectId, RunId, SessionId, ShareId, ThreadId, UserId};

/// Parse error for the string forms of the enums below (as stored in the
/// database): an unknown value means corrupt data or a newer schema.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The stable text form, as stored and sent on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::model::UnknownVariant { kind: $kind, value: other.to_owned() }),
                }
            }
        }
    };
}

pub(crate) use string_enum;

string_enum!(
    /// A member's role in a project. Viewers read; editors also write and run
    /// the agent; owners also manage members and the project itself.
    Role, "role" {
        Owner => "owner",
        Editor => "editor",
        Viewer => "viewer",
    }
);

impl Role {
    /// Whether this role may change project data (files, threads, runs).
    pub fn can_write(self) -> bool {
        match self {
            Role::Owner | Role::Editor => true,
            Role::Viewer => false,
        }
    }

    /// Whether this role may manage members and delete the project.
    pub fn can_manage(self) -> bool {
        match self {
            Role::Owner => true,
            Role::Editor | Role::Viewer => false,
        }
    }
}

string_enum!(
    /// Who wrote a message.
    MessageRole, "message role" {
        User => "user",
        Assistant => "assistant",
        System => "system",
    }
);

string_enum!(
    /// The life cycle of an agent run.
    RunStatus, "run status" {
        Queued => "queued",
        Running => "running",
        /// Interrupted, waiting for a person to answer.
        Waiting => "waiting",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl RunStatus {
    /// Every status, in the order of a run's life.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// A finished run never changes status again.
    pub fn is_terminal(self) -> bool {
        match self {
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled => true,
            RunStatus::Queued | RunStatus::Running | RunStatus::Waiting => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    /// Stored lower-cased; unique.
    pub email: String,
    pub display_name: String,
    /// PHC string of the password hash; never leaves the server.
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled: bool,
    /// Goes up when the password changes; access tokens carry the version
    /// they were issued under and are refused once it moved on.
    pub token_version: i64,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub is_admin: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
    /// The model its threads' runs use by default (`provider/model`).
    pub model: Option<String>,
    /// The most its agent runs may spend on models in all (US dollars);
    /// `None`: no limit beyond each run's own.
    pub budget_usd: Option<f64>,
    /// Days a finished run's step details are kept; `None`: the
    /// deployment's `retention.step_details_days`; 0: for ever.
    pub retention_days: Option<i32>,
    /// Its sandboxes may install Python packages from the deployment's
    /// package index (`sandbox.package_index`) into the project's own
    /// environment.
    pub packages: bool,
    /// What that environment starts from: a `requirements.txt` (checked by
    /// [`crate::sandbox::PackagePolicy::parse`]).
    pub requirements: String,
}

impl Project {
    /// The package installs its sandboxes are granted (`None`: none).
    pub fn package_policy(&self) -> Option<crate::sandbox::PackagePolicy> {
        // Checked when set; a list that no longer reads grants none.
        self.packages.then(|| crate::sandbox::PackagePolicy::parse(&self.requirements).unwrap_or_default())
    }
}

/// Changes to a project's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectUpdate {
    pub name: Option<String>,
    pub model: Option<Option<String>>,
    pub budget_usd: Option<Option<f64>>,
    pub retention_days: Option<Option<i32>>,
    pub packages: Option<bool>,
    pub requirements: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewProject {
    pub name: String,
    /// Becomes the project's first owner.
    pub owner: UserId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub role: Role,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub id: ThreadId,
    pub project_id: ProjectId,
    pub title: String,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
    /// Sequence number of the newest event in the thread's log (0 if none).
    pub last_event_seq: i64,
    /// The model its runs use (`provider/model`); `None`: the deployment's default.
    pub model: Option<String>,
}

/// A thread found by a search, with the first of its messages that matched
/// (none when only its title did).
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadMatch {
    pub thread: Thread,
    pub snippet: Option<String>,
}

/// A read-only link to one run. Its token is shown once; only its SHA-256
/// is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunShare {
    pub id: ShareId,
    pub run_id: RunId,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl RunShare {
    /// Whether the link still opens its run at `now`.
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

#[derive(Debug, Clone)]
pub struct NewThread {
    pub project_id: ProjectId,
    pub title: String,
    pub created_by: UserId,
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub role: MessageRole,
    /// The person who wrote it; `None` for the agent and the system.
    pub author: Option<UserId>,
    pub content: String,
    /// Library files attached to it: paths in the thread's project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub thread_id: ThreadId,
    pub role: MessageRole,
    pub author: Option<UserId>,
    pub content: String,
    /// Library paths in the thread's project (checked by the caller).
    pub attachments: Vec<String>,
    /// What posted it, when that must happen once (a schedule's tick): a
    /// second message of the same origin is refused (`Conflict`).
    pub origin: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub thread_id: ThreadId,
    pub status: RunStatus,
    pub created_by: UserId,
    /// Why the run failed, in words a user can read.
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The W3C `traceparent` the run's work continues from (traces on).
    pub trace_parent: Option<String>,
    /// When retention removed its step details (its answer, files and
    /// status stay).
    pub details_removed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub thread_id: ThreadId,
    pub created_by: UserId,
    pub trace_parent: Option<String>,
}

/// One entry of a thread's append-only event log. `seq` numbers are
/// consecutive per thread and assigned in the transaction that stores the
/// event, so a client that has seen `seq = n` resumes with "after n".
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub thread_id: ThreadId,
    pub seq: i64,
    pub run_id: Option<RunId>,
    /// A dotted name such as `run.status` or `message.created`.
    pub kind: String,
    pub payload: Value,
    /// The version of the event protocol the payload was written in.
    pub schema_version: i32,
    pub created_at: OffsetDateTime,
}

/// A stored event as it is published on its thread's topic: all of it, so
/// a live stream that has every event before it sends it on without reading
/// the log again (one with a gap reads the log).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    pub seq: i64,
    pub run_id: Option<RunId>,
    pub kind: String,
    pub payload: Value,
    #[serde(default)]
    pub schema_version: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Published {
    pub fn of(event: Event) -> Published {
        Published {
            seq: event.seq,
            run_id: event.run_id,
            kind: event.kind,
            payload: event.payload,
            schema_version: event.schema_version,
            created_at: event.created_at,
        }
    }

    pub fn into_event(self, thread: ThreadId) -> Event {
        Event {
            thread_id: thread,
            seq: self.seq,
            run_id: self.run_id,
            kind: self.kind,
            payload: self.payload,
            schema_version: self.schema_version,
            created_at: self.created_at,
        }
    }
}

/// Model calls added up: how many, their tokens and what they cost.
// The API's usage answers send it as `UsageTotals`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = UsageTotals)]
pub struct ModelUsage {
    pub model_calls: u64,
    /// Prompt tokens neither read from nor written to a provider's cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens read from a provider's cache (at its lower price).
    pub cache_read_tokens: u64,
    /// Prompt tokens written to a provider's cache.
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
    /// What the same calls would have cost without prompt caching, less
    /// what they cost.
    pub saved_usd: f64,
}

impl std::ops::Add for ModelUsage {
    type Output = ModelUsage;

    fn add(self, other: ModelUsage) -> ModelUsage {
        ModelUsage {
            model_calls: self.model_calls + other.model_calls,
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            cache_read_tokens: self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens + other.cache_write_tokens,
            cost_usd: self.cost_usd + other.cost_usd,
            saved_usd: self.saved_usd + other.saved_usd,
        }
    }
}

impl std::iter::Sum for ModelUsage {
    fn sum<I: Iterator<Item = ModelUsage>>(iter: I) -> ModelUsage {
        iter.fold(ModelUsage::default(), |total, usage| total + usage)
    }
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub run_id: Option<RunId>,
    pub kind: String,
    pub payload: Value,
    pub schema_version: i32,
}

/// The saved state of a run after one step of its graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub run_id: RunId,
    /// Steps count from 1; each step writes exactly one checkpoint.
    pub step: i64,
    /// The graph state, position and pending work, as the agent runtime encodes them.
    pub state: Value,
    pub created_at: OffsetDateTime,
}

/// A worker's claim on a run: the run's lease generation when the worker
/// took it. Writes made under a fence are refused (`Error::LeaseLost`) once
/// another worker has claimed the run since, so a worker that was paused or
/// cut off past its lease cannot write over the one that took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fence {
    pub run: RunId,
    pub generation: i64,
}

#[derive(Debug, Clone)]
pub struct NewCheckpoint {
    pub run_id: RunId,
    pub step: i64,
    pub state: Value,
}

/// One version of a file in a project's library. The bytes live in the
/// object store under `object_key`; renaming or moving a file changes only
/// `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub id: FileId,
    pub project_id: ProjectId,
    /// Slash-separated, relative, normalised (see the file service's rules).
    pub path: String,
    /// 1 for the first upload to a path, then 2, 3…
    pub version: i32,
    pub size: i64,
    /// Sniffed from the content, not taken from the client.
    pub content_type: String,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    pub object_key: String,
    /// The person who uploaded it; `None` for files the agent made.
    pub created_by: Option<UserId>,
    /// Lineage of agent-made files: the run and the step that saved it.
    pub run_id: Option<RunId>,
    pub step: Option<i64>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewFile {
    /// Chosen before the upload so the object can be named after it.
    pub id: FileId,
    pub project_id: ProjectId,
    pub path: String,
    pub size: i64,
    pub content_type: String,
    pub sha256: String,
    pub object_key: String,
    pub created_by: Option<UserId>,
    pub run_id: Option<RunId>,
    pub step: Option<i64>,
    /// Saved by a worker's run: refused (`LeaseLost`) once another worker
    /// claimed the run.
    pub fence: Option<Fence>,
}

/// A stored refresh token (only its hash is kept). Tokens of one sign-in form
/// a session: each use replaces the token with a new one in the same session.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub user_id: UserId,
    pub session: SessionId,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    pub expires_at: OffsetDateTime,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// The token was valid and is now spent; issue its successor in `session`.
    Rotated { user_id: UserId, session: SessionId },
    /// The token had been spent already: someone replayed it. Its whole
    /// session has been revoked.
    Reused { user_id: UserId, session: SessionId },
    /// Unknown, expired or revoked.
    Invalid,
}

/// A project-scoped API key. The secret is shown once at creation and only
/// its hash is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub owner: UserId,
    pub project_id: ProjectId,
    /// The most the key may do in its project (never more than its owner).
    pub role: Role,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub owner: UserId,
    pub project_id: ProjectId,
    pub role: Role,
    pub name: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    pub expires_at: Option<OffsetDateTime>,
}

string_enum!(
    /// How an audited action ended.
    AuditOutcome, "audit outcome" {
        Succeeded => "succeeded",
        /// Refused by a rule: a wrong password, a policy, a limit.
        Refused => "refused",
        Failed => "failed",
    }
);

impl AuditOutcome {
    /// The outcome an action's name says: `…_failed` failed; `…refused`,
    /// `…denied`, `…_throttled` and `…_reused` were refused; the rest
    /// succeeded.
    pub fn of_action(action: &str) -> AuditOutcome {
        if action.ends_with("_failed") {
            AuditOutcome::Failed
        } else if ["refused", "denied", "_throttled", "_reused"].iter().any(|end| action.ends_with(end)) {
            AuditOutcome::Refused
        } else {
            AuditOutcome::Succeeded
        }
    }
}

/// The detail fields that name what an action was done to, in the order
/// they are looked for: the first one present is the entry's target.
const TARGET_KEYS: &[&str] = &[
    "thread",
    "run",
    "file",
    "path",
    "user",
    "account",
    "key",
    "webhook",
    "schedule",
    "server",
    "connection",
    "deletion",
    "session",
    "tool",
];

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: AuditId,
    pub actor: Option<UserId>,
    pub project_id: Option<ProjectId>,
    /// A dotted verb such as `user.disabled` or `member.added`.
    pub action: String,
    /// What it was done to, as `kind:id` (`thread:…`, `user:…`); `None`
    /// when it is the project itself, or nothing in particular.
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: Value,
    /// The client address the action came from, when it came over the network.
    pub client_addr: Option<String>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub actor: Option<UserId>,
    pub project_id: Option<ProjectId>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: Value,
    pub client_addr: Option<String>,
}

impl NewAuditEntry {
    /// An entry whose target is the first of the usual fields its detail
    /// has (`thread`, `run`, `file`, `user`…) and whose outcome its action's
    /// name says ([`AuditOutcome::of_action`]).
    pub fn new(
        actor: Option<UserId>,
        project_id: Option<ProjectId>,
        action: &str,
        detail: Value,
        client_addr: Option<String>,
    ) -> NewAuditEntry {
        let target = TARGET_KEYS.iter().find_map(|key| {
            let value = detail.get(key)?;
            let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
            (!value.is_null()).then(|| format!("{key}:{text}"))
        });
        NewAuditEntry {
            actor,
            project_id,
            action: action.to_owned(),
            target,
            outcome: AuditOutcome::of_action(action),
            detail,
            client_addr,
        }
    }
}

/// Which audit entries to read, newest first; every field set narrows it.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Entries older than this one (paging backwards).
    pub before: Option<AuditId>,
    pub actor: Option<UserId>,
    pub project: Option<ProjectId>,
    /// An action (`run.started`), or a family of them ending in a dot (`run.`).
    pub action: Option<String>,
    pub outcome: Option<AuditOutcome>,
    /// From this time on (inclusive).
    pub since: Option<OffsetDateTime>,
    /// Before this time.
    pub until: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_event_is_the_stored_one_whole() {
        let created_at =
            OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let stored = Event {
            thread_id: ThreadId::new(),
            seq: 7,
            run_id: Some(RunId::new()),
            kind: "output".into(),
            payload: serde_json::json!({ "output": { "type": "stream", "name": "stdout", "text": "hi" } }),
            schema_version: 2,
            created_at,
        };
        let wire = serde_json::to_vec(&Published::of(stored.clone())).unwrap_or_default();
        let read: Published = serde_json::from_slice(&wire).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.into_event(stored.thread_id), stored, "to the microsecond");
    }

    #[test]
    fn enums_round_trip_through_their_text_form() {
        for role in [Role::Owner, Role::Editor, Role::Viewer] {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>().ok(), Some(status));
        }
        let err = "admin".parse::<Role>().unwrap_err();
        assert_eq!(err.to_string(), "unknown role `admin`");
    }

    #[test]
    fn only_owners_manage_and_viewers_cannot_write() {
        assert!(Role::Owner.can_manage() && Role::Owner.can_write());
        assert!(!Role::Editor.can_manage() && Role::Editor.can_write());
        assert!(!Role::Viewer.can_manage() && !Role::Viewer.can_write());
    }
}

/// A piece of a project's long-term memory: a note the agent or a member
/// asked to remember, or a chunk of a library file's text.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryChunk {
    pub id: crate::MemoryId,
    pub project_id: ProjectId,
    /// `note`, or `file:<path>` for a chunk of a library file.
    pub source: String,
    pub text: String,
    pub created_by: Option<UserId>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewMemoryChunk {
    pub project_id: ProjectId,
    pub source: String,
    pub text: String,
    /// The text's embedding; every chunk of a project has the same length.
    pub embedding: Vec<f32>,
    pub created_by: Option<UserId>,
}

/// A model provider an administrator connected in the app. Its key is kept
/// only encrypted (`key_ciphertext`, sealed by the auth crate's key ring);
/// `key_hint` is its last four characters, for people to recognise it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConnection {
    pub id: crate::ConnectionId,
    /// The first part of its model ids (`openai` in `openai/gpt-5-mini`).
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub api_version: String,
    pub key_ciphertext: Option<Vec<u8>>,
    pub key_hint: Option<String>,
    /// The models, as the configuration spells them (`[{"name": …}]`).
    pub models: Value,
    pub enabled: bool,
    pub created_by: Option<UserId>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewModelConnection {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub api_version: String,
    pub key_ciphertext: Option<Vec<u8>>,
    pub key_hint: Option<String>,
    pub models: Value,
    pub enabled: bool,
    pub created_by: UserId,
}

/// What changes; `None` keeps a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ModelConnectionUpdate {
    pub base_url: Option<String>,
    pub api_version: Option<String>,
    /// `Some(None)` removes the key.
    pub key: Option<Option<(Vec<u8>, String)>>,
    pub models: Option<Value>,
    pub enabled: Option<bool>,
}
