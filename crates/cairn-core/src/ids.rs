use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUID v7), so ids sort by creation.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A person (or service account) who signs in.
    UserId
);
id_type!(
    /// A project: the unit of sharing and authorisation.
    ProjectId
);
id_type!(
    /// A conversation with the agent inside a project.
    ThreadId
);
id_type!(
    /// One message in a thread.
    MessageId
);
id_type!(
    /// A piece of a project's memory.
    MemoryId
);
id_type!(
    /// One agent run started from a thread.
    RunId
);
id_type!(
    /// One audit-log entry.
    AuditId
);
id_type!(
    /// A project-scoped API key.
    ApiKeyId
);
id_type!(
    /// A chain of refresh tokens issued from one sign-in.
    SessionId
);
id_type!(
    /// One version of a file in a project's library.
    FileId
);
id_type!(
    /// A sandbox: a private workspace and a persistent kernel.
    SandboxId
);
id_type!(
    /// A model connection an administrator made in the app.
    ConnectionId
);
id_type!(
    /// A project's webhook endpoint.
    WebhookId
);
id_type!(
    /// A read-only link to one run.
    ShareId
);
id_type!(
    /// One message to a webhook endpoint (its `webhook-id`), tried until delivered.
    DeliveryId
);
id_type!(
    /// A project's scheduled run.
    ScheduleId
);
id_type!(
    /// An MCP server a project's agent may use.
    McpServerId
);
id_type!(
    /// A deletion of a thread or a project, worked in the background.
    DeletionId
);
