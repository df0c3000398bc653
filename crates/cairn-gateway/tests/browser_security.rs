//! What protects a browser session, over real HTTP: the refresh token in an
//! HttpOnly cookie that other sites cannot use, the security headers on
//! pages and API answers, WebSocket tickets (missing, expired, reused,
//! foreign origin, another thread's) and metrics that are not public.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cairn_config::Config;
use cairn_core::bus::QueueOptions;
use cairn_store::{Database, OpenOptions};
use cairn_testkit::{TempDir, TestPostgres, redis_url, unique_prefix};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use support::PASSWORD;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Api {
    base: String,
    client: reqwest::Client,
    _dir: TempDir,
}

async fn start(tweak: impl FnOnce(&mut Config)) -> Api {
    let dir = TempDir::new("browser-security");
    let mut config = Config::default();
    tweak(&mut config);
    let state = support::sqlite_state(&dir, config).await;
    let base = support::serve(state).await;
    Api { base, client: reqwest::Client::new(), _dir: dir }
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn origin(&self) -> &str {
        &self.base
    }

    async fn register(&self, email: &str) {
        let body = json!({ "email": email, "password": PASSWORD, "display_name": "X" });
        let reply = self.client.post(self.url("/api/v1/auth/register")).json(&body).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::CREATED);
    }

    /// Signs in as the web app does: the cookie flow, from the app's origin.
    async fn browser_sign_in(&self, email: &str) -> reqwest::Response {
        let form = [("grant_type", "password"), ("username", email), ("password", PASSWORD)];
        self.client
            .post(self.url("/api/v1/auth/token"))
            .header("cairn-session", "cookie")
            .header("origin", self.origin())
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    async fn refresh_with_cookie(&self, cookie: &str, origin: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/auth/refresh"))
            .header("cairn-session", "cookie")
            .header("cookie", format!("theme=dark; cairn_refresh={cookie}"))
            .json(&json!({}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.unwrap()
    }
}

/// The value of the `cairn_refresh` cookie a response sets, and the whole
/// `Set-Cookie` line.
fn set_cookie(headers: &HeaderMap) -> (String, String) {
    let line = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("cairn_refresh="))
        .expect("a cairn_refresh cookie");
    let value = line.trim_start_matches("cairn_refresh=").split(';').next().unwrap().to_owned();
    (value, line)
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

/// POSTs JSON with a bearer token; the answer's body.
async fn post(api: &Api, token: &str, path: &str, body: Value) -> Value {
    json(api.client.post(api.url(path)).bearer_auth(token).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn the_browser_session_lives_in_an_http_only_cookie_other_sites_cannot_use() {
    let api = start(|_| {}).await;
    api.register("ada@example.com").await;

    let signed_in = api.browser_sign_in("ada@example.com").await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let (cookie, line) = set_cookie(signed_in.headers());
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/v1/auth", "Max-Age=2592000"] {
        assert!(line.contains(attribute), "{line} lacks {attribute}");
    }
    assert!(!line.contains("Secure"), "plain-http deployments cannot keep a Secure cookie");
    let body = json(signed_in).await;
    assert!(body.get("refresh_token").is_none(), "script never sees the refresh token: {body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.client.get(api.url("/api/v1/me")).bearer_auth(&access).send().await.unwrap().status(),
        StatusCode::OK
    );

    // Another site's page cannot ask for the cookie flow at sign-in either.
    let foreign = api
        .client
        .post(api.url("/api/v1/auth/token"))
        .header("cairn-session", "cookie")
        .header("origin", "https://evil.example")
        .form(&[("grant_type", "password"), ("username", "ada@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);

    // Cross-site or origin-less refreshes with the cookie are refused, and
    // refusing them does not spend the token.
    for origin in [Some("https://evil.example"), Some("null"), None] {
        let refused = api.refresh_with_cookie(&cookie, origin).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "origin {origin:?}");
        assert_eq!(json(refused).await["code"], "forbidden");
    }

    // The app's own page refreshes by cookie: a new access token, a new cookie.
    let refreshed = api.refresh_with_cookie(&cookie, Some(api.origin())).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let (rotated, _) = set_cookie(refreshed.headers());
    assert_ne!(rotated, cookie, "each refresh rotates the token");
    let body = json(refreshed).await;
    assert!(body.get("refresh_token").is_none());
    let access = body["access_token"].as_str().unwrap().to_owned();

    // A page without a cookie (signed out) gets invalid_request and a cleared cookie.
    let none = api
        .client
        .post(api.url("/api/v1/auth/refresh"))
        .header("origin", api.origin())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookie(none.headers()).1.contains("Max-Age=0"));

    // Sign-out revokes the session and clears the cookie.
    let out = api.client.post(api.url("/api/v1/auth/logout")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let (cleared, line) = set_cookie(out.headers());
    assert!(cleared.is_empty() && line.contains("Max-Age=0"), "{line}");
    let after = api.refresh_with_cookie(&rotated, Some(api.origin())).await;
    assert_eq!(after.status(), StatusCode::BAD_REQUEST, "the signed-out session's cookie is dead");
    assert!(set_cookie(after.headers()).1.contains("Max-Age=0"), "a dead cookie is cleared");

    // Non-browser clients keep the JSON body flow.
    let form = [("grant_type", "password"), ("username", "ada@example.com"), ("password", PASSWORD)];
    let plain = api.client.post(api.url("/api/v1/auth/token")).form(&form).send().await.unwrap();
    assert!(plain.headers().get("set-cookie").is_none());
    let refresh = json(plain).await["refresh_token"].as_str().unwrap().to_owned();
    let traded = api
        .client
        .post(api.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(traded.status(), StatusCode::OK);
    assert!(json(traded).await["refresh_token"].is_string());
}

#[tokio::test]
async fn a_password_change_replaces_the_cookie_and_https_cookies_are_secure() {
    let api = start(|c| c.auth.public_url = "https://cairn.example.com".to_owned()).await;
    api.register("ada@example.com").await;
    // The public URL's origin counts as the app's own.
    let form = [("grant_type", "password"), ("username", "ada@example.com"), ("password", PASSWORD)];
    let signed_in = api
        .client
        .post(api.url("/api/v1/auth/token"))
        .header("cairn-session", "cookie")
        .header("origin", "https://cairn.example.com")
        .form(&form)
        .send()
        .await
        .unwrap();
    let (old, line) = set_cookie(signed_in.headers());
    assert!(line.contains("; Secure"), "{line}");
    assert!(signed_in.headers()["strict-transport-security"].to_str().unwrap().contains("max-age="));
    let access = json(signed_in).await["access_token"].as_str().unwrap().to_owned();

    let new_password = "another long passphrase here";
    let changed = api
        .client
        .post(api.url("/api/v1/me/password"))
        .bearer_auth(&access)
        .header("cairn-session", "cookie")
        .header("origin", "https://cairn.example.com")
        .json(&json!({ "current_password": PASSWORD, "new_password": new_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let (new, _) = set_cookie(changed.headers());
    assert_ne!(new, old);
    assert!(json(changed).await.get("refresh_token").is_none());
    let stale = api.refresh_with_cookie(&old, Some("https://cairn.example.com")).await;
    assert_eq!(stale.status(), StatusCode::BAD_REQUEST, "the old session ended with the password");
    let fresh = api.refresh_with_cookie(&new, Some("https://cairn.example.com")).await;
    assert_eq!(fresh.status(), StatusCode::OK);
}

#[tokio::test]
async fn pages_and_api_answers_carry_the_security_headers() {
    let api = start(|_| {}).await;
    for path in ["/", "/projects/x", "/api/v1/version", "/api/v1/nope", "/healthz", "/api/docs/", "/api/openapi.json"] {
        let response = api.client.get(api.url(path)).send().await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        let scripts =
            csp.split(';').find(|d| d.trim().starts_with("script-src") || d.trim().starts_with("default-src"));
        assert!(!scripts.unwrap_or("").contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cross-origin-opener-policy"], "same-origin", "{path}");
        assert!(headers["permissions-policy"].to_str().unwrap().contains("camera=()"), "{path}");
        assert!(headers.get("strict-transport-security").is_none(), "no HSTS over plain http ({path})");
    }
    let page = api.client.get(api.url("/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for directive in ["script-src 'self'", "object-src 'none'", "base-uri 'none'", "connect-src 'self'"] {
        assert!(csp.contains(directive), "the app's policy lacks {directive}: {csp}");
    }
    let api_answer = api.client.get(api.url("/api/v1/version")).send().await.unwrap();
    let csp = api_answer.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "an API answer opened as a page is inert: {csp}"
    );
}

/// Registers an owner and a stranger, makes a project and a thread; returns
/// (owner token, stranger token, thread id).
async fn owner_and_thread(api: &Api) -> (String, String, String) {
    let ([owner, _viewer, stranger], project) = support::owner_viewer_stranger(&api.client, &api.base, "P").await;
    let thread = post(api, &owner, &format!("/api/v1/projects/{project}/threads"), json!({ "title": "T" })).await;
    (owner, stranger, thread["id"].as_str().unwrap().to_owned())
}

async fn ticket(api: &Api, token: &str, thread: &str) -> reqwest::Response {
    api.client
        .post(api.url(&format!("/api/v1/threads/{thread}/events/ticket")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Opens the thread's event socket; `Ok` when the upgrade succeeded, else the
/// HTTP status it was refused with.
async fn open_socket(base: &str, thread: &str, query: &str, origin: Option<&str>) -> Result<(), u16> {
    let url = format!("{}/api/v1/threads/{thread}/events/ws{query}", base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("the socket failed otherwise: {other}"),
    }
}

#[tokio::test]
async fn websocket_tickets_work_once_briefly_for_their_thread_from_the_apps_origin() {
    let api = start(|c| c.auth.ticket_ttl_secs = 1).await;
    let (owner, stranger, thread) = owner_and_thread(&api).await;
    let origin = Some(api.origin());

    assert_eq!(open_socket(&api.base, &thread, "", origin).await, Err(401), "no credential, no socket");
    assert_eq!(open_socket(&api.base, &thread, "?ticket=made-up", origin).await, Err(401));

    let issued = ticket(&api, &owner, &thread).await;
    assert_eq!(issued.status(), StatusCode::OK);
    let issued = json(issued).await;
    assert_eq!(issued["expires_in"], 1);
    let one = issued["ticket"].as_str().unwrap().to_owned();
    assert_eq!(open_socket(&api.base, &thread, &format!("?ticket={one}&after=0"), origin).await, Ok(()));
    assert_eq!(open_socket(&api.base, &thread, &format!("?ticket={one}"), origin).await, Err(401), "used once");

    // A page of another site cannot open it, even with a good ticket — and
    // that attempt does not spend the ticket.
    let two = json(ticket(&api, &owner, &thread).await).await["ticket"].as_str().unwrap().to_owned();
    assert_eq!(
        open_socket(&api.base, &thread, &format!("?ticket={two}"), Some("https://evil.example")).await,
        Err(403)
    );
    assert_eq!(open_socket(&api.base, &thread, &format!("?ticket={two}"), origin).await, Ok(()));

    // Expired.
    let three = json(ticket(&api, &owner, &thread).await).await["ticket"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(open_socket(&api.base, &thread, &format!("?ticket={three}"), origin).await, Err(401), "expired");

    // A ticket is for its thread only, and only members get one.
    let other = post(&api, &stranger, "/api/v1/projects", json!({ "name": "Mine" })).await;
    let project = other["id"].as_str().unwrap();
    let theirs =
        post(&api, &stranger, &format!("/api/v1/projects/{project}/threads"), json!({ "title": "Theirs" })).await;
    let theirs = theirs["id"].as_str().unwrap();
    let for_theirs = json(ticket(&api, &stranger, theirs).await).await["ticket"].as_str().unwrap().to_owned();
    assert_eq!(open_socket(&api.base, &thread, &format!("?ticket={for_theirs}"), origin).await, Err(401));
    assert_eq!(ticket(&api, &stranger, &thread).await.status(), StatusCode::NOT_FOUND);

    // Non-browser clients may still send the bearer token (and no Origin).
    let url = format!("{}/api/v1/threads/{thread}/events/ws", api.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {owner}").parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

/// Tickets live in the shared cache: one gateway issues, another redeems,
/// and neither accepts it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_issued_by_one_gateway_opens_a_socket_on_another_once() {
    let pg = TestPostgres::create().await;
    let prefix = unique_prefix("tickets");
    let mut gateways = Vec::new();
    for _ in 0..2 {
        let dir = TempDir::new("tickets");
        let db = Database::open(&pg.url, &OpenOptions::default()).await.unwrap();
        db.migrate().await.unwrap();
        let bus = cairn_bus::redis::connect(&redis_url(), &prefix, QueueOptions::default()).await.unwrap();
        let mut config = Config::default();
        config.auth.signing_keys = vec![cairn_config::SigningKey { kid: "k".into(), secret: "A".repeat(43).into() }];
        let state = support::state(config, &db, bus, &dir);
        let base = support::serve(state).await;
        gateways.push(Api { base, client: reqwest::Client::new(), _dir: dir });
    }
    let (owner, _, thread) = owner_and_thread(&gateways[0]).await;
    let issued = json(ticket(&gateways[0], &owner, &thread).await).await["ticket"].as_str().unwrap().to_owned();
    let query = format!("?ticket={issued}");
    assert_eq!(open_socket(&gateways[1].base, &thread, &query, None).await, Ok(()));
    assert_eq!(open_socket(&gateways[0].base, &thread, &query, None).await, Err(401));
    drop(pg);
}

#[tokio::test]
async fn metrics_need_the_token_or_the_admin_listener() {
    let closed = start(|_| {}).await;
    let refused = closed.client.get(closed.url("/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "no token configured: never public");
    let guessed = closed.client.get(closed.url("/metrics")).bearer_auth("x".repeat(32)).send().await.unwrap();
    assert_eq!(guessed.status(), StatusCode::FORBIDDEN);

    let token = "t".repeat(40);
    let api = start(|c| c.server.metrics_token = "t".repeat(40).into()).await;
    let missing = api.client.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(missing).await["code"], "unauthenticated");
    let wrong = api.client.get(api.url("/metrics")).bearer_auth("t".repeat(39) + "u").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let scraped = api.client.get(api.url("/metrics")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(scraped.text().await.unwrap().contains("cairn_build_info"));

    // The admin listener serves metrics and probes without credentials, and nothing else.
    let dir = TempDir::new("admin-listener");
    let state = support::sqlite_state(&dir, Config::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(cairn_gateway::serve(listener, cairn_gateway::admin_app(state), std::future::pending()));
    let client = reqwest::Client::new();
    for (path, status) in [("/metrics", 200), ("/healthz", 200), ("/readyz", 200), ("/api/v1/version", 404), ("/", 404)]
    {
        let response = client.get(format!("{admin}{path}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
    }
}
