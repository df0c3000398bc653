use std::fmt;

/// An external dependency of Cairn that can fail independently of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dependency {
    Database,
    Bus,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dependency::Database => "database",
            Dependency::Bus => "bus",
        })
    }
}

/// What a backend call can fail with. Each variant says how the caller reacts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The dependency cannot be reached (connection refused, pool timed out,
    /// connection dropped). Transient: fail the request fast with 503 and let the
    /// client retry; the backend reconnects by itself.
    #[error("{dependency} unavailable: {reason}")]
    Unavailable { dependency: Dependency, reason: String },

    /// The entity does not exist (or the caller may not know that it does).
    /// A user error: 404.
    #[error("{entity} not found")]
    NotFound { entity: &'static str },

    /// A uniqueness rule was violated, e.g. an e-mail already registered.
    /// A user error: 409.
    #[error("{entity} already exists")]
    Conflict { entity: &'static str },

    /// A queued delivery is no longer held by the caller (its lease expired
    /// and another consumer took the work). Drop the result; the other
    /// consumer owns the job now.
    #[error("the lease on job {job} was lost")]
    LeaseLost { job: String },

    /// The backend answered with something Cairn cannot make sense of: a bug or
    /// corrupt data. Log it; answer 500.
    #[error("{dependency} error: {detail}")]
    Internal { dependency: Dependency, detail: String },
}

/// Result of a backend call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
