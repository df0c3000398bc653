//! The wire types of presence: who is viewing a thread and who is typing.

use cairn_core::UserId;
use serde::{Deserialize, Serialize};

/// A member in a presence state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresentMember {
    pub user: UserId,
    /// The member's display name.
    pub name: String,
}

/// A `presence` server-sent event of a thread's stream: the whole state,
/// sent when the stream opens and whenever it changes (at most four times a
/// second).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresenceSnapshot {
    /// Members with the thread open, by name.
    pub here: Vec<PresentMember>,
    /// Members writing a message now, by name.
    pub typing: Vec<PresentMember>,
}
