//! The wire types of the project library: files, listings, moves and download
//! links.

use cairn_core::model::FileRecord;
use cairn_core::{FileId, RunId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileResponse {
    pub id: FileId,
    /// The full path in the library, e.g. `reports/q1.pdf`.
    pub path: String,
    /// The last segment of the path.
    pub name: String,
    pub version: i32,
    pub size: i64,
    /// Judged from the content.
    pub content_type: String,
    pub sha256: String,
    /// Who uploaded it; empty for files the agent made.
    pub created_by: Option<UserId>,
    /// The run (and step) that made it, for agent artifacts.
    pub run_id: Option<RunId>,
    pub step: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<FileRecord> for FileResponse {
    fn from(r: FileRecord) -> Self {
        FileResponse {
            id: r.id,
            name: r.path.rsplit('/').next().unwrap_or(&r.path).to_owned(),
            path: r.path,
            version: r.version,
            size: r.size,
            content_type: r.content_type,
            sha256: r.sha256,
            created_by: r.created_by,
            run_id: r.run_id,
            step: r.step,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FolderQuery {
    /// A folder of the library; the root if absent.
    #[serde(default)]
    pub folder: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PathQuery {
    /// The file's path in the library.
    pub path: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListingResponse {
    pub folder: String,
    /// Names of the sub-folders.
    pub folders: Vec<String>,
    /// The newest version of each file in the folder.
    pub files: Vec<FileResponse>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeleteQuery {
    pub path: String,
    /// Delete the folder at `path` and everything in it.
    #[serde(default)]
    pub folder: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MoveRequest {
    pub from: String,
    pub to: String,
    /// Move the folder `from` (and everything in it) to `to`.
    #[serde(default)]
    pub folder: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MoveResponse {
    /// How many file versions moved.
    pub moved: u64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LinkRequest {
    /// Seconds the link works; 300 if absent, at most the configured maximum (3600).
    pub expires_in_secs: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkResponse {
    /// Downloads this version of the file without signing in. Relative to
    /// this server for local storage; the store's own URL otherwise.
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}
