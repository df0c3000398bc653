//! The one error type at the edge: every failure becomes an RFC 9457
//! `application/problem+json` body with a stable, machine-readable `code`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_core::Dependency;
use serde::Serialize;
use serde_json::{Map, Value};

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` carries the machine-readable kind.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A short summary of the kind of problem.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this case, in words a person can act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable code, e.g. `malformed_json`, `dependency_unavailable`.
    pub code: &'static str,
    /// Members specific to the code (e.g. `checks` for readiness).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{entity} not found")]
    NotFound { entity: &'static str },
    /// 404 with a code of its own and words saying what to look for.
    #[error("{detail}")]
    Missing { code: &'static str, detail: String },
    #[error("no route for {path}")]
    RouteNotFound { path: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{detail}")]
    MalformedJson { detail: String },
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{entity} already exists")]
    Conflict { entity: &'static str },
    #[error("{dependency} unavailable")]
    Unavailable { dependency: Dependency },
    /// Details are logged where they happen, never sent.
    #[error("internal error")]
    Internal,
    /// A readiness check failed; `checks` says which.
    #[error("{detail}")]
    NotReady { detail: String, checks: Value },
    /// No credentials, or credentials that are not valid (401 with
    /// `WWW-Authenticate: Bearer`).
    #[error("{detail}")]
    Unauthenticated { code: &'static str, detail: String },
    /// Authenticated, but not allowed.
    #[error("{detail}")]
    Forbidden { detail: String },
    /// Too many requests; retry after the given seconds.
    #[error("too many requests; try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// Well-formed input that breaks a rule (422), with a code naming the rule.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    /// A one-time token (refresh, recovery) that is not valid (400).
    #[error("{detail}")]
    InvalidGrant { detail: String },
    #[error("an account with this e-mail exists")]
    EmailTaken,
    /// 409 with a code of its own: the request cannot be done as things stand.
    #[error("{detail}")]
    Refused { code: &'static str, detail: String },
    /// 413: the project's storage quota would be exceeded.
    #[error("{detail}")]
    QuotaExceeded { detail: String },
    /// 400: the request body stopped before its end.
    #[error("{detail}")]
    UploadInterrupted { detail: String },
    /// 403: a download link that is expired, altered or not ours.
    #[error("{detail}")]
    LinkInvalid { detail: String },
    /// 416, with `Content-Range: bytes */size`.
    #[error("the requested range is not satisfiable for a file of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// 503: the object store failed (details logged).
    #[error("file storage is unavailable")]
    StorageUnavailable,
    /// 503: tools cannot run here (no sandboxes, no browser, no search).
    #[error("{detail}")]
    ToolUnavailable { detail: String },
    /// 503: the agent cannot run here (no sandboxes, no model).
    #[error("{detail}")]
    AgentUnavailable { detail: String },
    /// 503: project memory cannot serve (no embedding model, no pgvector, the
    /// embedding provider failed).
    #[error("{detail}")]
    MemoryUnavailable { detail: String },
    /// A run a request waited on ended without an answer: `run_failed`
    /// (500, with `X-Should-Retry: false`: a retry would start it again),
    /// `run_cancelled` (409) or `server_stopping` (503).
    #[error("{detail}")]
    RunEnded { code: &'static str, detail: String },
    /// A sandbox operation failed; the error's own code goes out.
    #[error("{}", .0.detail())]
    Sandbox(cairn_core::sandbox::SandboxError),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            ApiError::Missing { code, .. } => (StatusCode::NOT_FOUND, code, "Not found"),
            ApiError::RunEnded { code: code @ "run_failed", .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, code, "The run failed")
            }
            ApiError::RunEnded { code: code @ "run_cancelled", .. } => (StatusCode::CONFLICT, code, "Conflict"),
            ApiError::RunEnded { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code, "Service unavailable"),
            ApiError::RouteNotFound { .. } => (StatusCode::NOT_FOUND, "route_not_found", "No such route"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed"),
            ApiError::MalformedJson { .. } => (StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type")
            }
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large")
            }
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::Unavailable { .. } | ApiError::NotReady { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable", "Service unavailable")
            }
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal error"),
            ApiError::Unauthenticated { code, .. } => (StatusCode::UNAUTHORIZED, code, "Unauthorized"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests"),
            ApiError::Invalid { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code, "Invalid input"),
            ApiError::InvalidGrant { .. } => (StatusCode::BAD_REQUEST, "invalid_grant", "Invalid grant"),
            ApiError::EmailTaken => (StatusCode::CONFLICT, "email_taken", "Conflict"),
            ApiError::Refused { code, .. } => (StatusCode::CONFLICT, code, "Conflict"),
            ApiError::QuotaExceeded { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded", "Quota exceeded"),
            ApiError::UploadInterrupted { .. } => (StatusCode::BAD_REQUEST, "upload_interrupted", "Upload interrupted"),
            ApiError::LinkInvalid { .. } => (StatusCode::FORBIDDEN, "link_invalid", "Forbidden"),
            ApiError::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable", "Range not satisfiable")
            }
            ApiError::StorageUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "Service unavailable")
            }
            ApiError::ToolUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "tool_unavailable", "Service unavailable")
            }
            ApiError::AgentUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable", "Service unavailable")
            }
            ApiError::MemoryUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "memory_unavailable", "Service unavailable")
            }
            ApiError::Sandbox(error) => {
                use cairn_core::sandbox::SandboxError as E;
                let (status, title) = match error {
                    E::NotFound | E::NoSuchPath(_) => (StatusCode::NOT_FOUND, "Not found"),
                    E::InvalidPath(_) | E::InvalidPolicy(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid input"),
                    E::CapReached(_) => (StatusCode::TOO_MANY_REQUESTS, "Too many sandboxes"),
                    E::TooLarge(_) | E::WorkspaceFull(_) => (StatusCode::PAYLOAD_TOO_LARGE, "Too large"),
                    E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
                    E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
                };
                (status, error.code(), title)
            }
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, code, title) = self.parts();
        let mut extensions = Map::new();
        if let ApiError::NotReady { checks, .. } = self {
            extensions.insert("checks".to_owned(), checks.clone());
        }
        Problem {
            kind: "about:blank",
            title,
            status: status.as_u16(),
            detail: Some(self.to_string()),
            code,
            extensions,
        }
    }
}

impl From<cairn_core::Error> for ApiError {
    fn from(error: cairn_core::Error) -> Self {
        match error {
            cairn_core::Error::NotFound { entity } => ApiError::NotFound { entity },
            cairn_core::Error::Conflict { entity } => ApiError::Conflict { entity },
            cairn_core::Error::Unavailable { dependency, reason } => {
                tracing::warn!(%dependency, %reason, "dependency unavailable");
                ApiError::Unavailable { dependency }
            }
            cairn_core::Error::LeaseLost { .. } | cairn_core::Error::Internal { .. } => {
                tracing::error!(error = %error, "internal error");
                ApiError::Internal
            }
        }
    }
}

impl From<cairn_auth::Error> for ApiError {
    fn from(error: cairn_auth::Error) -> Self {
        use cairn_auth::Error as E;
        match error {
            E::InvalidCredentials => ApiError::InvalidGrant { detail: error.to_string() },
            E::WeakPassword { reason } => ApiError::Invalid { code: "weak_password", detail: reason },
            E::EmailTaken => ApiError::EmailTaken,
            E::InvalidEmail(_) => ApiError::Invalid { code: "invalid_email", detail: error.to_string() },
            E::InvalidToken(detail) => ApiError::Unauthenticated { code: "invalid_token", detail: detail.to_owned() },
            E::InvalidGrant(detail) => ApiError::InvalidGrant { detail: detail.to_owned() },
            E::Forbidden(detail) => ApiError::Forbidden { detail: detail.to_owned() },
            E::Throttled { retry_after } => ApiError::RateLimited { retry_after: retry_after.as_secs().max(1) },
            E::InvalidInput(detail) => ApiError::Invalid { code: "invalid_input", detail },
            E::SoleOwner(detail) => ApiError::Refused { code: "sole_owner", detail },
            E::Backend(error) => error.into(),
            E::Mail(detail) => {
                tracing::error!(%detail, "mail failed");
                ApiError::Internal
            }
        }
    }
}

impl From<cairn_files::Error> for ApiError {
    fn from(error: cairn_files::Error) -> Self {
        use cairn_files::Error as E;
        match error {
            E::InvalidPath { .. } => ApiError::Invalid { code: "invalid_path", detail: error.to_string() },
            E::TooLarge { limit } => ApiError::PayloadTooLarge { limit: usize::try_from(limit).unwrap_or(usize::MAX) },
            E::QuotaExceeded { .. } => ApiError::QuotaExceeded { detail: error.to_string() },
            E::Interrupted(_) => ApiError::UploadInterrupted { detail: error.to_string() },
            E::LinkInvalid(detail) => ApiError::LinkInvalid { detail: detail.to_owned() },
            E::BadRange { size } => ApiError::RangeNotSatisfiable { size },
            E::Auth(error) => error.into(),
            E::Backend(error) => error.into(),
            E::Storage(detail) => {
                tracing::error!(%detail, "object store failed");
                ApiError::StorageUnavailable
            }
        }
    }
}

impl From<cairn_agent::RunError> for ApiError {
    fn from(error: cairn_agent::RunError) -> Self {
        use cairn_agent::RunError as E;
        match error {
            E::Store(error) => error.into(),
            E::Conflict(detail) => ApiError::Invalid { code: "run_state", detail },
            E::BudgetSpent(detail) => ApiError::Invalid { code: "budget_spent", detail },
            E::MemberBudgetSpent(detail) => ApiError::Invalid { code: "member_budget_spent", detail },
            E::SandboxUnavailable(detail) => ApiError::AgentUnavailable { detail },
        }
    }
}

/// Reports a lookup's `NotFound` as the thing the caller asked for: a thread
/// of a project the caller is not in, or a run of such a thread, does not
/// exist for them (a 404 naming the thread or the run, not the project).
pub(crate) trait NotFoundAs<T> {
    fn not_found_as(self, entity: &'static str) -> Result<T, ApiError>;
}

impl<T, E: Into<ApiError>> NotFoundAs<T> for Result<T, E> {
    fn not_found_as(self, entity: &'static str) -> Result<T, ApiError> {
        self.map_err(|error| match error.into() {
            ApiError::NotFound { .. } => ApiError::NotFound { entity },
            other => other,
        })
    }
}

impl From<cairn_memory::MemoryError> for ApiError {
    fn from(error: cairn_memory::MemoryError) -> ApiError {
        match error {
            cairn_memory::MemoryError::Invalid(detail) => ApiError::Invalid { code: "invalid_input", detail },
            cairn_memory::MemoryError::Unavailable(detail) => ApiError::MemoryUnavailable { detail },
            cairn_memory::MemoryError::Embedding(_) => ApiError::MemoryUnavailable { detail: error.to_string() },
            cairn_memory::MemoryError::Store(error) => error.into(),
        }
    }
}

impl From<cairn_core::sandbox::SandboxError> for ApiError {
    fn from(error: cairn_core::sandbox::SandboxError) -> Self {
        if let cairn_core::sandbox::SandboxError::Internal(detail) = &error {
            tracing::error!(%detail, "sandbox failed");
        }
        ApiError::Sandbox(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut response = problem_response(&problem);
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthenticated { code, .. } => {
                let challenge = format!("Bearer realm=\"cairn\", error=\"{code}\"");
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ApiError::RateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::RunEnded { .. } => {
                headers.insert("x-should-retry", HeaderValue::from_static("false"));
            }
            ApiError::RangeNotSatisfiable { size } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}

pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

pub(crate) fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

pub(crate) async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::RouteNotFound { path: uri.path().to_owned() }
}

/// `Json<T>` whose rejections are problems: malformed or mistyped JSON is a
/// 400 `malformed_json` naming what is wrong, a missing content type a 415,
/// and a body over the limit a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request.extensions().get::<crate::middleware::BodyLimit>().map_or(0, |l| l.0);
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge { limit })
            }
            Err(rejection) => Err(ApiError::MalformedJson { detail: rejection.body_text() }),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
