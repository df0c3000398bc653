//! Project events integrations subscribe to (webhooks): what happened, in
//! which project, told by the component where it happened to whatever
//! delivers them.

use std::fmt;

use serde_json::Value;
use time::OffsetDateTime;

use crate::{DeliveryId, McpServerId, ProjectId, UserId, WebhookId};

/// The event types a webhook may subscribe to.
pub const EVENT_TYPES: [&str; 5] = ["run.succeeded", "run.failed", "run.waiting", "artifact.saved", "member.added"];

/// A project event written with the change that made it happen: the store
/// queues its webhook deliveries in the change's own transaction, so a
/// process that dies after the change cannot lose them.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// One of [`EVENT_TYPES`].
    pub kind: &'static str,
    /// What the payload's `data` holds.
    pub data: Value,
}

impl Notice {
    /// The payload a webhook receives: `type`, `timestamp` (now) and `data`.
    pub fn payload(&self) -> Value {
        let timestamp =
            OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        serde_json::json!({ "type": self.kind, "timestamp": timestamp, "data": self.data })
    }
}

/// Where project events go: their webhook deliveries are queued by the
/// writes that make them ([`Notice`]); the hooks are told, to send them now.
pub trait Hooks: Send + Sync + fmt::Debug {
    /// Deliveries were queued by a write of this process: send them now
    /// rather than at the next poll.
    fn queued(&self);
}

/// A project's webhook endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: WebhookId,
    pub project_id: ProjectId,
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// The signing secret, sealed (the auth crate's key ring).
    pub secret_sealed: Vec<u8>,
    /// The secret before the last rotation, sealed, and until when it
    /// still signs beside the new one.
    pub previous_sealed: Option<Vec<u8>>,
    pub previous_until: Option<OffsetDateTime>,
    pub enabled: bool,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub project_id: ProjectId,
    pub url: String,
    pub events: Vec<String>,
    pub secret_sealed: Vec<u8>,
    pub created_by: UserId,
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

crate::model::string_enum!(
    /// Where a message to an endpoint stands.
    DeliveryStatus, "delivery status" {
        /// Not yet delivered; tried again at `next_attempt_at`.
        Pending => "pending",
        /// The endpoint answered 2xx.
        Delivered => "delivered",
        /// Every attempt failed; it is not tried again unless redelivered.
        Failed => "failed",
    }
);

/// One message to an endpoint and how its attempts went.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Also its `webhook-id`: the same for every attempt, so receivers
    /// can drop repeats.
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_type: String,
    /// The whole body sent (`type`, `timestamp`, `data`).
    pub payload: Value,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// The last attempt's HTTP status, if the endpoint answered.
    pub response_code: Option<i32>,
    /// The last attempt's time, in milliseconds.
    pub duration_ms: Option<i64>,
    /// Why the last attempt failed, in words.
    pub last_error: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub response_code: Option<i32>,
    pub duration_ms: i64,
    /// `None`: delivered.
    pub error: Option<String>,
    /// When to try again; `None` with an error: give up.
    pub retry_at: Option<OffsetDateTime>,
}

impl Attempt {
    /// Where the delivery stands after it.
    pub fn status(&self) -> DeliveryStatus {
        match (&self.error, self.retry_at) {
            (None, _) => DeliveryStatus::Delivered,
            (Some(_), Some(_)) => DeliveryStatus::Pending,
            (Some(_), None) => DeliveryStatus::Failed,
        }
    }
}

/// An MCP server whose tools a project's agent may call: a streamable-HTTP
/// endpoint the agent's process calls, or a command started over stdio in
/// the thread's sandbox.
#[derive(Clone, PartialEq)]
pub struct McpServer {
    pub id: McpServerId,
    pub project_id: ProjectId,
    /// A short identifier: its tools are `mcp_<name>_<tool>` in the kernel.
    pub name: String,
    pub transport: McpTransport,
    /// The names of its secrets (HTTP headers, or environment variables of
    /// a stdio server), shown to owners; their values are sealed.
    pub secret_names: Vec<String>,
    /// The secrets (a JSON object of name → value), sealed by the key ring.
    pub secrets_sealed: Option<Vec<u8>>,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("name", &self.name)
            .field("transport", &self.transport)
            .field("secret_names", &self.secret_names)
            .finish_non_exhaustive()
    }
}

/// How an MCP server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum McpTransport {
    /// A streamable-HTTP endpoint.
    Http { url: String },
    /// A command (program and arguments) the sandbox runs, speaking MCP on
    /// its standard input and output.
    Stdio { command: Vec<String> },
}

/// An MCP server to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMcpServer {
    pub project: ProjectId,
    pub name: String,
    pub transport: McpTransport,
    pub secret_names: Vec<String>,
    pub secrets_sealed: Option<Vec<u8>>,
    pub created_by: UserId,
}
