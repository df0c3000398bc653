//! The wire types of long-term memory.

use cairn_core::model::MemoryChunk;
use cairn_core::{MemoryId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A piece of the project's memory.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemoryResponse {
    pub id: MemoryId,
    /// `note`, or `file:<path>` for a chunk of a library file.
    pub source: String,
    pub text: String,
    pub created_by: Option<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Cosine similarity to the query (1: the same meaning), in searches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

impl From<(MemoryChunk, Option<f32>)> for MemoryResponse {
    fn from((chunk, score): (MemoryChunk, Option<f32>)) -> Self {
        MemoryResponse {
            id: chunk.id,
            source: chunk.source,
            text: chunk.text,
            created_by: chunk.created_by,
            created_at: chunk.created_at,
            score,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RememberRequest {
    /// What to remember (up to 200,000 characters; long texts are kept in chunks).
    pub text: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// What to look for (1 to 2000 characters).
    pub q: String,
    /// How many results (1 to 50, default 10).
    pub limit: Option<i64>,
}
