//! Cairn's domain core: the types every component shares and the traits behind
//! which the backends (store, bus) live.
//!
//! Architecture invariant: this crate does no IO. It knows nothing of HTTP, SQL,
//! Redis or the file system; it only names things and the operations on them.
//! Backends implement the traits in [`store`] and [`bus`] and are chosen once, at
//! start-up, from configuration.

pub mod bus;
mod error;
pub mod hash;
pub mod hooks;
mod ids;
pub mod lifecycle;
pub mod model;
pub mod net;
pub mod sandbox;
pub mod schedule;
pub mod store;
pub mod trace;

pub use error::{Dependency, Error, Result};
pub use ids::{
    ApiKeyId, AuditId, ConnectionId, DeletionId, DeliveryId, FileId, McpServerId, MemoryId, MessageId, ProjectId,
    RunId, SandboxId, ScheduleId, SessionId, ShareId, ThreadId, UserId, WebhookId,
};

/// The version of Cairn, shared by every crate and shown by `cairn version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
