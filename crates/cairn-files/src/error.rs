/// What a file-service call can fail with, and how the gateway answers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 422 `invalid_path`.
    #[error("`{path}` is not a valid path: {reason}")]
    InvalidPath { path: String, reason: String },
    /// 413 `payload_too_large`; nothing was stored.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// 413 `quota_exceeded`; nothing was stored.
    #[error("the project's storage quota of {quota} bytes would be exceeded ({used} bytes in use)")]
    QuotaExceeded { quota: u64, used: u64 },
    /// The upload stopped before its end (client gone, broken stream): 400
    /// `upload_interrupted`; nothing was stored.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// A download link that is expired, altered or not ours: 403 `link_invalid`.
    #[error("{0}")]
    LinkInvalid(&'static str),
    /// 416 `range_not_satisfiable`.
    #[error("the requested range is not satisfiable for a file of {size} bytes")]
    BadRange { size: u64 },
    /// Access or account problems, answered like every other auth error.
    #[error(transparent)]
    Auth(#[from] cairn_auth::Error),
    /// The database failed.
    #[error(transparent)]
    Backend(#[from] cairn_core::Error),
    /// The object store failed: 503 `storage_unavailable` (details logged).
    #[error("storage error: {0}")]
    Storage(String),
}

impl From<object_store::Error> for Error {
    fn from(error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { .. } => Error::Backend(cairn_core::Error::NotFound { entity: "file" }),
            other => Error::Storage(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
