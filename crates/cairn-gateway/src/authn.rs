//! Authentication and rate limiting for the API. One middleware in front of
//! `/api/v1`: it finds the client address, counts the request against the
//! address's limit, authenticates a bearer credential if one is sent (an
//! access token or an API key; a bad one is a 401 whatever the route),
//! counts the request against the user's or key's limit, and adds the
//! `RateLimit-*` headers to the answer. Handlers take [`Authenticated`] to
//! require a caller.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_auth::{Credential, Principal, RateLimitStatus};
use cairn_core::ProjectId;

use crate::{ApiError, AppState};

/// The client's address, as the rate limits and the audit log see it.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

/// The authenticated caller. Extracting it answers 401 when the request
/// carried no credentials.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().map(Authenticated).ok_or_else(|| ApiError::Unauthenticated {
            code: "unauthenticated",
            detail: "sign in first: send `Authorization: Bearer <access token or API key>`".to_owned(),
        })
    }
}

/// `Option<Authenticated>`: the caller if the request carried credentials.
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Authenticated {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned().map(Authenticated))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientAddr>().cloned().unwrap_or(ClientAddr(String::new())))
    }
}

/// The project a caller's API key belongs to, for the faces that take only
/// keys (`what` names the face in the refusal): a person's session names no
/// project.
pub(crate) fn key_project(principal: &Principal, what: &str) -> Result<ProjectId, ApiError> {
    match principal.credential {
        Credential::ApiKey { project, .. } => Ok(project),
        Credential::Session(_) => Err(ApiError::Forbidden {
            detail: format!(
                "{what} takes a project's API key, which names the project: create one in the app or with \
                 POST /api/v1/api-keys"
            ),
        }),
    }
}

fn client_addr(request: &Request, header_name: &str) -> String {
    if !header_name.is_empty()
        && let Some(value) = request.headers().get(header_name).and_then(|v| v.to_str().ok())
        && let Some(first) = value.split(',').next().map(str::trim).filter(|v| !v.is_empty())
    {
        // A proxy appends the address it saw; the first is the original client.
        return first.to_owned();
    }
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| ip_text(c.0.ip())).unwrap_or_default()
}

/// An address as text, as `Display` writes it; an IPv4 address (every
/// request's, on most deployments) is joined from its four numbers.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut text = String::with_capacity(15);
    for (index, octet) in v4.octets().into_iter().enumerate() {
        if index > 0 {
            text.push('.');
        }
        text.push_str(itoa::Buffer::new().format(octet));
    }
    text
}

/// The bearer credential, if the request carries one. Other schemes are not
/// Cairn's credentials (a token request may carry OAuth2 client
/// authentication as `Basic`) and are left alone; routes that need a caller
/// then answer 401.
fn bearer(headers: &HeaderMap) -> Option<Result<&str, ApiError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    Some(if token.is_empty() {
        Err(ApiError::Unauthenticated { code: "invalid_token", detail: "the bearer token is empty".to_owned() })
    } else {
        Ok(token)
    })
}

pub(crate) async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // Probes and metrics are merged into the same router but are not the API.
    let path = request.uri().path();
    if !path.starts_with("/api/v1/") && !crate::openai::is_openai_path(path) && path != "/mcp" {
        return next.run(request).await;
    }
    let addr = client_addr(&request, &state.config.rate_limit.client_address_header);
    let mut statuses = Vec::with_capacity(2);
    match state.auth.rate_limit_address(&addr).await {
        Ok(status) => statuses.push(status),
        Err(error) => return ApiError::from(error).into_response(),
    }
    request.extensions_mut().insert(ClientAddr(addr));
    if let Some(credential) = bearer(request.headers()) {
        let principal = match credential {
            Ok(token) => state.auth.authenticate(token).await,
            Err(error) => return error.into_response(),
        };
        match principal {
            Ok(principal) => {
                match state.auth.rate_limit_principal(&principal).await {
                    Ok(status) => statuses.push(status),
                    Err(error) => return ApiError::from(error).into_response(),
                }
                request.extensions_mut().insert(principal);
            }
            Err(error) => return ApiError::from(error).into_response(),
        }
    }
    // The tightest limit is the one to report.
    let Some(tightest) = statuses.iter().min_by_key(|s| (s.allowed, s.remaining)).copied() else {
        return next.run(request).await;
    };
    let mut response = if tightest.allowed {
        next.run(request).await
    } else {
        ApiError::RateLimited { retry_after: tightest.reset.as_secs().max(1) }.into_response()
    };
    rate_limit_headers(response.headers_mut(), tightest);
    response
}

/// The `RateLimit-Limit`, `-Remaining` and `-Reset` headers (IETF httpapi
/// rate-limit headers draft).
fn rate_limit_headers(headers: &mut HeaderMap, status: RateLimitStatus) {
    const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
    let reset = status.reset.as_secs().max(1);
    for (name, value) in [(LIMIT, status.limit), (REMAINING, status.remaining), (RESET, reset)] {
        headers.insert(name, HeaderValue::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_display_writes_them() {
        for ip in ["0.0.0.0", "127.0.0.1", "203.0.113.255", "10.20.3.40", "::1", "2001:db8::7", "::ffff:192.0.2.1"] {
            let parsed: IpAddr = ip.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            assert_eq!(ip_text(parsed), parsed.to_string());
            assert_eq!(ip_text(parsed), ip);
        }
    }
}
