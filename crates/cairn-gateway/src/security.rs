//! What keeps a browser session safe: the security headers on every
//! response, the same-origin check that cookie-authenticated requests and
//! WebSocket upgrades pass, and the refresh-token cookie.
//!
//! The web app shows what models, sandboxed code, web pages and other
//! members wrote; that content is made inert where it is rendered (see the
//! web app), and these headers are the second wall: no inline or foreign
//! script runs on the app's origin, nothing fetches from elsewhere, and no
//! API response (a library file, say) renders as a live page.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use cairn_config::Config;

use crate::ApiError;

/// The web app's policy: its own scripts only (Vite emits no inline
/// script); inline `style` attributes are allowed because React, KaTeX and
/// charts set them, and a style attribute cannot run script. Images from
/// the app, `data:` (figures the code drew) and `blob:` (previews); frames
/// only for `blob:` PDF previews; no plugins, no `<base>`, no framing.
const APP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; frame-src blob:; \
     worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Swagger UI: the same, but its bundle needs no frames and shows images
/// from `data:`.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Everything else (the API, probes, files downloaded from the library): a
/// response opened as a page is a sandboxed document that loads nothing.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

const PERMISSIONS_POLICY: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), \
     serial=(), bluetooth=(), hid=(), display-capture=(), interest-cohort=()";

/// The headers of [`headers`], computed once from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct SecurityHeaders {
    hsts: bool,
}

impl SecurityHeaders {
    pub(crate) fn new(config: &Config) -> SecurityHeaders {
        SecurityHeaders { hsts: config.auth.public_url.starts_with("https://") }
    }
}

fn policy_for(path: &str) -> &'static str {
    if path == "/api/docs" || path.starts_with("/api/docs/") {
        DOCS_CSP
    } else if path == "/api" || path.starts_with("/api/") || matches!(path, "/healthz" | "/readyz" | "/metrics") {
        API_CSP
    } else {
        APP_CSP
    }
}

/// Adds the security headers to every response. A handler that set its own
/// Content-Security-Policy keeps it.
pub(crate) async fn headers(State(security): State<SecurityHeaders>, request: Request, next: Next) -> Response {
    let policy = policy_for(request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    }
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (HeaderName::from_static("permissions-policy"), PERMISSIONS_POLICY),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if security.hsts {
        headers
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}

/// The origin (`scheme://host[:port]`) of a URL, lowercased, without a path.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{}://{}", scheme.to_ascii_lowercase(), host.to_ascii_lowercase()))
}

/// Whether a browser request comes from a page Cairn trusts: its `Origin`
/// is the server's own (the `Host` it was sent to, or the public URL) or one
/// of `server.cors_origins` (`*` does not count: it never carries
/// credentials). A request without `Origin` is not a browser's cross-site
/// request only if the browser says so (`Sec-Fetch-Site: same-origin`).
pub(crate) fn same_origin(config: &Config, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("same-origin");
    };
    let Some(origin) = origin_of(origin) else { return false };
    if origin_of(&config.auth.public_url).as_deref() == Some(origin.as_str()) {
        return true;
    }
    if config.server.cors_origins.iter().filter(|o| o.as_str() != "*").any(|o| origin_of(o).as_deref() == Some(&origin))
    {
        return true;
    }
    // The host the request was sent to: the page and the API share it.
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    host.is_some_and(|host| origin.split_once("://").is_some_and(|(_, origin_host)| origin_host == host))
}

/// Refuses a cookie-authenticated or WebSocket request from another site.
pub(crate) fn require_same_origin(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    if same_origin(config, headers) {
        Ok(())
    } else {
        Err(ApiError::Forbidden { detail: "this request must come from the Cairn web app's own origin".to_owned() })
    }
}

/// The refresh-token cookie's name and the paths it is sent to: only the
/// endpoints that trade or end it.
pub(crate) const REFRESH_COOKIE: &str = "cairn_refresh";
const REFRESH_COOKIE_PATH: &str = "/api/v1/auth";

/// The header a browser client sends to keep its refresh token in the
/// cookie instead of the response body.
pub(crate) const SESSION_HEADER: &str = "cairn-session";

/// Whether the client asked for the cookie flow (`Cairn-Session: cookie`).
/// Cross-site pages cannot send a custom header without a CORS preflight,
/// which Cairn answers only for configured origins.
pub(crate) fn wants_cookie(headers: &HeaderMap) -> bool {
    headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("cookie"))
}

/// `Set-Cookie` holding a refresh token (HttpOnly, SameSite=Strict, Secure
/// when the public URL is https), or clearing it when `token` is `None`.
pub(crate) fn refresh_cookie(config: &Config, token: Option<&str>) -> HeaderValue {
    let secure = if config.auth.public_url.starts_with("https://") { "; Secure" } else { "" };
    let (value, max_age) = match token {
        Some(token) => (token, config.auth.refresh_token_ttl_secs),
        None => ("", 0),
    };
    let cookie = format!(
        "{REFRESH_COOKIE}={value}; Path={REFRESH_COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    // Tokens are base64url; nothing here can make an invalid header value.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("cairn_refresh=; Max-Age=0"))
}

/// The refresh token from the request's cookie, if any.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == REFRESH_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("")));
        }
        map
    }

    #[test]
    fn same_origin_accepts_the_host_the_public_url_and_listed_origins_only() {
        let mut config = Config::default();
        config.auth.public_url = "https://cairn.example.com/".to_owned();
        config.server.cors_origins = vec!["https://app.example.com".to_owned(), "*".to_owned()];
        let check = |pairs: &[(&'static str, &str)]| same_origin(&config, &headers(pairs));
        assert!(check(&[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")]));
        assert!(check(&[("origin", "https://cairn.example.com"), ("host", "internal:8080")]));
        assert!(check(&[("origin", "https://APP.example.com"), ("host", "internal:8080")]));
        assert!(!check(&[("origin", "https://evil.example"), ("host", "127.0.0.1:8080")]));
        assert!(!check(&[("origin", "http://127.0.0.1:8081"), ("host", "127.0.0.1:8080")]));
        assert!(!check(&[("origin", "null"), ("host", "127.0.0.1:8080")]));
        assert!(!check(&[("host", "127.0.0.1:8080")]));
        assert!(!check(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")]));
        assert!(check(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "same-origin")]));
    }

    #[test]
    fn the_refresh_cookie_is_http_only_strict_scoped_and_secure_on_https() {
        let mut config = Config::default();
        let plain = refresh_cookie(&config, Some("abc"));
        assert_eq!(
            plain.to_str().unwrap_or(""),
            "cairn_refresh=abc; Path=/api/v1/auth; Max-Age=2592000; HttpOnly; SameSite=Strict"
        );
        config.auth.public_url = "https://cairn.example.com".to_owned();
        let cleared = refresh_cookie(&config, None);
        assert_eq!(
            cleared.to_str().unwrap_or(""),
            "cairn_refresh=; Path=/api/v1/auth; Max-Age=0; HttpOnly; SameSite=Strict; Secure"
        );
        let sent = headers(&[("cookie", "theme=dark; cairn_refresh=xyz; other=1")]);
        assert_eq!(cookie_token(&sent).as_deref(), Some("xyz"));
        assert_eq!(cookie_token(&headers(&[("cookie", "cairn_refresh=")])), None);
    }
}
