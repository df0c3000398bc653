use std::time::Duration;

/// What an authentication call can fail with. Each variant says how the
/// gateway answers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong e-mail or password, or a disabled account: 400 `invalid_grant`
    /// (one answer for all, so nothing is revealed).
    #[error("the e-mail or password is wrong")]
    InvalidCredentials,
    /// The password breaks the policy: 422 `weak_password`, `reason` says why.
    #[error("{reason}")]
    WeakPassword { reason: String },
    /// The e-mail is registered already: 409 `email_taken`.
    #[error("an account with this e-mail exists")]
    EmailTaken,
    /// The e-mail is not an address: 422 `invalid_email`.
    #[error("`{0}` is not an e-mail address")]
    InvalidEmail(String),
    /// The access token or API key is missing, malformed, forged, expired or
    /// revoked, or its user is disabled: 401 `invalid_token`.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// A refresh or recovery token that is unknown, expired, revoked or spent:
    /// 400 `invalid_grant`.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// Authenticated, but the role does not allow it: 403 `forbidden`.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Too many attempts: 429 with `Retry-After`.
    #[error("too many attempts; try again in {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    /// A field is out of bounds (name length, expiry in the past…): 422 `invalid_input`.
    #[error("{0}")]
    InvalidInput(String),
    /// An account to delete owns projects alone and the request did not say
    /// what becomes of them: 409 `sole_owner`.
    #[error("{0}")]
    SoleOwner(String),
    /// The store or bus failed; the gateway maps it like any backend error.
    #[error(transparent)]
    Backend(#[from] cairn_core::Error),
    /// Sending mail failed: logged; the user-facing answer does not change.
    #[error("cannot send mail: {0}")]
    Mail(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
