//! Accounts, sessions, recovery, RBAC, API keys, administration and the
//! attacks against them, over real HTTP, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_config::Config;
use cairn_core::bus::{Bus, QueueOptions};
use cairn_store::{Database, OpenOptions};
use cairn_testkit::{Starter, TempDir, TestPostgres, redis_url, unique_prefix};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery staple";

/// Keeps the database alive as long as the server.
#[allow(dead_code)]
enum Backing {
    Sqlite(TempDir),
    Postgres(TestPostgres),
}

struct Api {
    base: String,
    client: reqwest::Client,
    dir: TempDir,
    _stop: oneshot::Sender<()>,
    _backing: Backing,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

fn key_config(kid: &str, fill: char) -> cairn_config::SigningKey {
    cairn_config::SigningKey { kid: kid.into(), secret: fill.to_string().repeat(43).into() }
}

async fn serve(config: Config, db: Database, bus: Option<Bus>, backing: Backing) -> Api {
    let dir = TempDir::new("auth-api");
    let bus = bus.unwrap_or_else(|| cairn_bus::in_process(db.queue(QueueOptions::default())));
    let state = support::state(config, &db, bus, &dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(cairn_gateway::serve(listener, cairn_gateway::app(state), async move {
        let _ = stopped.await;
    }));
    Api { base, client: reqwest::Client::new(), dir, _stop: stop, _backing: backing }
}

fn config(tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    config.auth.signing_keys = vec![key_config("k1", 'A')];
    tweak(&mut config);
    config
}

async fn sqlite(tweak: fn(&mut Config)) -> Api {
    let dir = TempDir::new("auth-db");
    let db = Database::open(&dir.sqlite_url(), &OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    serve(config(tweak), db, None, Backing::Sqlite(dir)).await
}

async fn postgres(tweak: fn(&mut Config)) -> Api {
    let pg = TestPostgres::create().await;
    let db = Database::open(&pg.url, &OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    serve(config(tweak), db, None, Backing::Postgres(pg)).await
}

impl Api {
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, headers, body }
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let response = self.client.post(format!("{}{path}", self.base)).form(fields).send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        Reply { status, headers, body: response.json().await.unwrap_or(Value::Null) }
    }

    async fn register(&self, email: &str) -> Value {
        let reply = self
            .post("/auth/register", None, json!({ "email": email, "password": PASSWORD, "display_name": "X" }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    async fn sign_in_with(&self, email: &str, password: &str) -> Reply {
        self.form("/auth/token", &[("grant_type", "password"), ("username", email), ("password", password)]).await
    }

    /// Registers (if needed) and signs in; returns (access, refresh).
    async fn user(&self, email: &str) -> (String, String) {
        let _ = self
            .post("/auth/register", None, json!({ "email": email, "password": PASSWORD, "display_name": "X" }))
            .await;
        let reply = self.sign_in_with(email, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        (
            reply.body["access_token"].as_str().unwrap().to_owned(),
            reply.body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn project(&self, token: &str, name: &str) -> String {
        let reply = self.post("/projects", Some(token), json!({ "name": name })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    fn outbox(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.path.join("outbox")) else { return Vec::new() };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        files.into_iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    }
}

fn code(reply: &Reply) -> &str {
    reply.body["code"].as_str().unwrap_or_default()
}

cairn_testkit::on_backends!(on_sqlite: sqlite, on_postgres: postgres;
    sign_up_sign_in_refresh_and_sign_out,
    a_replayed_refresh_token_ends_the_session,
    changing_the_password_ends_every_session,
    password_recovery_by_e_mail_without_revealing_accounts,
    forged_tampered_and_misused_tokens_are_refused,
    non_members_see_nothing_and_viewers_cannot_write,
    api_keys_are_scoped_shown_once_and_revocable,
    admins_disable_users_change_roles_and_read_the_audit_log,
    failed_sign_ins_are_throttled_per_account_and_per_address,
    api_requests_are_rate_limited_with_standard_headers,
    bad_input_gets_clear_errors,
);

async fn sign_up_sign_in_refresh_and_sign_out(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let first = api.register("ada@example.com").await;
    assert_eq!((first["role"].as_str(), first["email"].as_str()), (Some("admin"), Some("ada@example.com")));
    let second = api.register("bob@example.com").await;
    assert_eq!(second["role"], "member", "only the first account is an admin");

    // Swagger UI's password flow sends scope and client_id too.
    let signed_in = api
        .form(
            "/auth/token",
            &[
                ("grant_type", "password"),
                ("username", "Ada@Example.com"),
                ("password", PASSWORD),
                ("scope", ""),
                ("client_id", ""),
            ],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["token_type"], "Bearer");
    assert_eq!(signed_in.body["expires_in"], 900);
    assert_eq!(signed_in.headers["cache-control"], "no-store");
    let access = signed_in.body["access_token"].as_str().unwrap();
    let refresh = signed_in.body["refresh_token"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header, json!({ "alg": "HS256", "typ": "JWT", "kid": "k1" }));

    let me = api.get("/me", access).await;
    assert_eq!((me.status, me.body["email"].as_str()), (StatusCode::OK, Some("ada@example.com")));
    let unauthenticated = api.call(Method::GET, "/me", None, None).await;
    assert_eq!((unauthenticated.status, code(&unauthenticated)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    assert!(unauthenticated.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));

    let refreshed = api.post("/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let new_refresh = refreshed.body["refresh_token"].as_str().unwrap();
    assert_ne!(new_refresh, refresh, "refresh tokens rotate");
    let new_access = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(api.get("/me", new_access).await.status, StatusCode::OK);
    let via_token_endpoint =
        api.form("/auth/token", &[("grant_type", "refresh_token"), ("refresh_token", new_refresh)]).await;
    assert_eq!(via_token_endpoint.status, StatusCode::OK, "the standard refresh grant works too");
    let newest_refresh = via_token_endpoint.body["refresh_token"].as_str().unwrap().to_owned();

    let wrong = api.sign_in_with("ada@example.com", "wrong password!").await;
    assert_eq!((wrong.status, wrong.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let unknown = api.sign_in_with("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.body, wrong.body, "unknown accounts and wrong passwords look the same");
    let grant = api.form("/auth/token", &[("grant_type", "client_credentials")]).await;
    assert_eq!(grant.body["error"], "unsupported_grant_type");

    let logout = api.call(Method::POST, "/auth/logout", Some(new_access), None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let after = api.post("/auth/refresh", None, json!({ "refresh_token": newest_refresh })).await;
    assert_eq!((after.status, after.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

async fn a_replayed_refresh_token_ends_the_session(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let (_, stolen) = api.user("ada@example.com").await;
    let legit = api.post("/auth/refresh", None, json!({ "refresh_token": stolen })).await;
    assert_eq!(legit.status, StatusCode::OK);
    let current = legit.body["refresh_token"].as_str().unwrap().to_owned();
    let replay = api.post("/auth/refresh", None, json!({ "refresh_token": stolen })).await;
    assert_eq!((replay.status, replay.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert!(replay.body["error_description"].as_str().unwrap().contains("already used"));
    let victim = api.post("/auth/refresh", None, json!({ "refresh_token": current })).await;
    assert_eq!(victim.status, StatusCode::BAD_REQUEST, "the whole session was revoked on reuse");
    let (other_access, _) = api.user("ada@example.com").await;
    assert_eq!(api.get("/me", &other_access).await.status, StatusCode::OK, "signing in again works");
}

async fn changing_the_password_ends_every_session(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let (access, refresh) = api.user("ada@example.com").await;
    let (other_device, _) = api.user("ada@example.com").await;
    let wrong = api
        .post(
            "/me/password",
            Some(&access),
            json!({ "current_password": "not it at all", "new_password": "a new passphrase" }),
        )
        .await;
    assert_eq!((wrong.status, code(&wrong)), (StatusCode::FORBIDDEN, "forbidden"));
    let weak = api
        .post("/me/password", Some(&access), json!({ "current_password": PASSWORD, "new_password": "12345678" }))
        .await;
    assert_eq!((weak.status, code(&weak)), (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"));
    let changed = api
        .post(
            "/me/password",
            Some(&access),
            json!({ "current_password": PASSWORD, "new_password": "a new passphrase" }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let fresh = changed.body["access_token"].as_str().unwrap();
    assert_eq!(api.get("/me", fresh).await.status, StatusCode::OK);
    for old in [&access, &other_device] {
        let refused = api.get("/me", old).await;
        assert_eq!((refused.status, code(&refused)), (StatusCode::UNAUTHORIZED, "invalid_token"));
    }
    let old_refresh = api.post("/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    assert_eq!(old_refresh.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.sign_in_with("ada@example.com", PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.sign_in_with("ada@example.com", "a new passphrase").await.status, StatusCode::OK);
}

async fn wait_for_mail(api: &Api, count: usize) -> Vec<String> {
    for _ in 0..100 {
        let mail = api.outbox();
        if mail.len() >= count {
            return mail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {count} messages in the outbox, found {}", api.outbox().len());
}

fn reset_token(message: &str) -> String {
    // The body is quoted-printable: undo soft line breaks and the escaped `=`.
    let unfolded = message.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let start = unfolded.find("token=").expect("a recovery link") + "token=".len();
    unfolded[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

async fn password_recovery_by_e_mail_without_revealing_accounts(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    api.register("ada@example.com").await;
    let known = api.post("/auth/password/forgot", None, json!({ "email": "ada@example.com" })).await;
    let unknown = api.post("/auth/password/forgot", None, json!({ "email": "nobody@example.com" })).await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!((unknown.status, &unknown.body), (known.status, &known.body), "the same answer either way");
    let mail = wait_for_mail(&api, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(api.outbox().len(), 1, "no message for an unknown address");
    assert!(mail[0].contains("To: ada@example.com") && mail[0].contains("Subject: Reset your Cairn password"));
    let token = reset_token(&mail[0]);
    assert_eq!(token.len(), 43, "256 random bits: {token}");

    let weak = api.post("/auth/password/reset", None, json!({ "token": token, "new_password": "password" })).await;
    assert_eq!(code(&weak), "weak_password");
    // A weak choice spends the token: ask again.
    api.post("/auth/password/forgot", None, json!({ "email": "ada@example.com" })).await;
    let token = reset_token(&wait_for_mail(&api, 2).await[1]);
    let reset =
        api.post("/auth/password/reset", None, json!({ "token": token, "new_password": "recovered at last" })).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.body);
    let again =
        api.post("/auth/password/reset", None, json!({ "token": token, "new_password": "another new one" })).await;
    assert_eq!((again.status, code(&again)), (StatusCode::BAD_REQUEST, "invalid_grant"), "single use");
    assert_eq!(api.sign_in_with("ada@example.com", PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.sign_in_with("ada@example.com", "recovered at last").await.status, StatusCode::OK);
    let forged = api
        .post("/auth/password/reset", None, json!({ "token": "A".repeat(43), "new_password": "whatever it is" }))
        .await;
    assert_eq!(code(&forged), "invalid_grant");
}

fn with_payload(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    change(&mut payload);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

async fn forged_tampered_and_misused_tokens_are_refused(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let (access, refresh) = api.user("ada@example.com").await;
    let (bob, _) = api.user("bob@example.com").await;
    let bob_id = api.get("/me", &bob).await.body["id"].as_str().unwrap().to_owned();

    let unsigned = |alg: &str| {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#));
        let payload = access.split('.').nth(1).unwrap();
        format!("{header}.{payload}.")
    };
    let mut attempts: Vec<(String, String)> = ["none", "None", "NONE", "nOnE", "HS512", "RS256"]
        .into_iter()
        .map(|alg| (format!("alg {alg}"), unsigned(alg)))
        .collect();
    attempts.push(("payload changed to another user".into(), with_payload(&access, |p| p["sub"] = json!(bob_id))));
    attempts.push(("expiry pushed back".into(), with_payload(&access, |p| p["exp"] = json!(4_000_000_000i64))));
    attempts.push(("refresh token as access token".into(), refresh.clone()));
    attempts.push(("garbage".into(), "not.a.token".into()));
    for (what, token) in &attempts {
        let reply = api.get("/me", token).await;
        assert_eq!((reply.status, code(&reply)), (StatusCode::UNAUTHORIZED, "invalid_token"), "{what}: {}", reply.body);
    }

    // Tokens from another deployment: another key, issuer or audience.
    let others: [fn(&mut Config); 3] = [
        |c| c.auth.signing_keys = vec![key_config("k1", 'g')],
        |c| c.auth.issuer = "someone-else".into(),
        |c| c.auth.audience = "another-api".into(),
    ];
    for tweak in others {
        let other = sqlite(tweak).await;
        let (foreign, _) = other.user("ada@example.com").await;
        let reply = api.get("/me", &foreign).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }

    let as_refresh = api.post("/auth/refresh", None, json!({ "refresh_token": access })).await;
    assert_eq!(as_refresh.body["error"], "invalid_grant", "an access token is not a refresh token");

    // Expiry has one-second steps: three seconds leave at least two for the
    // first request on a busy machine.
    let short = start(|c| c.auth.access_token_ttl_secs = 3).await;
    let (expiring, _) = short.user("ada@example.com").await;
    assert_eq!(short.get("/me", &expiring).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let expired = short.get("/me", &expiring).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(expired.body["detail"].as_str().unwrap().contains("expired"), "{}", expired.body);
}

async fn non_members_see_nothing_and_viewers_cannot_write(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let (owner, _) = api.user("owner@example.com").await;
    let (viewer, _) = api.user("viewer@example.com").await;
    let (editor, _) = api.user("editor@example.com").await;
    let (stranger, _) = api.user("stranger@example.com").await;
    let project = api.project(&owner, "Research").await;
    for (email, role) in [("viewer@example.com", "viewer"), ("editor@example.com", "editor")] {
        let added = api
            .post(&format!("/projects/{project}/members"), Some(&owner), json!({ "email": email, "role": role }))
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    }
    let viewer_id = api.get("/me", &viewer).await.body["id"].as_str().unwrap().to_owned();
    let owner_id = api.get("/me", &owner).await.body["id"].as_str().unwrap().to_owned();
    let member_calls = |target: &str| -> Vec<(Method, String, Option<Value>)> {
        vec![
            (
                Method::POST,
                format!("/projects/{project}/members"),
                Some(json!({ "email": "stranger@example.com", "role": "owner" })),
            ),
            (Method::PATCH, format!("/projects/{project}/members/{target}"), Some(json!({ "role": "owner" }))),
            (Method::DELETE, format!("/projects/{project}/members/{target}"), None),
        ]
    };

    // A stranger cannot tell the project exists: every project route says 404.
    let missing = cairn_core::ProjectId::new().to_string();
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/projects/{project}"), None),
        (Method::GET, format!("/projects/{project}/members"), None),
        (
            Method::POST,
            format!("/projects/{project}/members"),
            Some(json!({ "email": "stranger@example.com", "role": "owner" })),
        ),
        (Method::PATCH, format!("/projects/{project}/members/{viewer_id}"), Some(json!({ "role": "owner" }))),
        (Method::DELETE, format!("/projects/{project}/members/{viewer_id}"), None),
    ];
    for (method, path, body) in &calls {
        let reply = api.call(method.clone(), path, Some(&stranger), body.clone()).await;
        assert_eq!((reply.status, code(&reply)), (StatusCode::NOT_FOUND, "not_found"), "{method} {path}");
        let nonexistent =
            api.call(method.clone(), &path.replace(&project, &missing), Some(&stranger), body.clone()).await;
        assert_eq!(nonexistent.body, reply.body, "a foreign project looks like a missing one");
    }
    let listed = api.get("/projects", &stranger).await;
    assert_eq!(listed.body, json!([]));

    // Viewers read, but only owners manage members.
    assert_eq!(api.get(&format!("/projects/{project}"), &viewer).await.body["role"], "viewer");
    for token in [&viewer, &editor] {
        for (method, path, body) in &member_calls(&owner_id) {
            let reply = api.call(method.clone(), path, Some(token), body.clone()).await;
            assert_eq!((reply.status, code(&reply)), (StatusCode::FORBIDDEN, "forbidden"), "{method} {path}");
        }
    }
    let promoted = api
        .call(
            Method::PATCH,
            &format!("/projects/{project}/members/{viewer_id}"),
            Some(&owner),
            Some(json!({ "role": "editor" })),
        )
        .await;
    assert_eq!(promoted.body["role"], "editor");

    // The last owner can neither leave nor step down.
    let leave = api.call(Method::DELETE, &format!("/projects/{project}/members/{owner_id}"), Some(&owner), None).await;
    assert_eq!((leave.status, code(&leave)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"));
    let step_down = api
        .call(
            Method::PATCH,
            &format!("/projects/{project}/members/{owner_id}"),
            Some(&owner),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(step_down.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Anyone may leave.
    let left = api.call(Method::DELETE, &format!("/projects/{project}/members/{viewer_id}"), Some(&viewer), None).await;
    assert_eq!(left.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&format!("/projects/{project}"), &viewer).await.status, StatusCode::NOT_FOUND);
    let unknown_email = api
        .post(
            &format!("/projects/{project}/members"),
            Some(&owner),
            json!({ "email": "ghost@example.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(unknown_email.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn api_keys_are_scoped_shown_once_and_revocable(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let (owner, _) = api.user("owner@example.com").await;
    let (viewer, _) = api.user("viewer@example.com").await;
    let project = api.project(&owner, "Integrations").await;
    let other_project = api.project(&owner, "Private").await;
    api.post(
        &format!("/projects/{project}/members"),
        Some(&owner),
        json!({ "email": "viewer@example.com", "role": "viewer" }),
    )
    .await;

    let too_strong =
        api.post("/api-keys", Some(&viewer), json!({ "project_id": project, "role": "editor", "name": "x" })).await;
    assert_eq!(too_strong.status, StatusCode::FORBIDDEN, "a key cannot exceed its creator");
    let created =
        api.post("/api-keys", Some(&owner), json!({ "project_id": project, "role": "viewer", "name": "CESAR" })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["token"].as_str().unwrap().to_owned();
    assert!(key.starts_with("cairn_k_"));
    let listed = api.get("/api-keys", &owner).await;
    assert_eq!(listed.body[0]["name"], "CESAR");
    assert!(
        listed.body[0].get("token").is_none() && !listed.body.to_string().contains(&key[20..]),
        "the secret is shown once"
    );

    assert_eq!(api.get(&format!("/projects/{project}"), &key).await.body["role"], "viewer");
    assert_eq!(api.get("/projects", &key).await.body.as_array().unwrap().len(), 1, "a key sees only its project");
    assert_eq!(api.get(&format!("/projects/{other_project}"), &key).await.status, StatusCode::NOT_FOUND);
    let write = api
        .post(
            &format!("/projects/{project}/members"),
            Some(&key),
            json!({ "email": "viewer@example.com", "role": "owner" }),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN, "a viewer key cannot manage");
    for (path, body) in [
        ("/projects", json!({ "name": "x" })),
        ("/api-keys", json!({ "project_id": project, "role": "viewer", "name": "y" })),
    ] {
        assert_eq!(api.post(path, Some(&key), body).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(api.get("/admin/users", &key).await.status, StatusCode::FORBIDDEN);

    let forged = format!("{}{}", &key[..key.len() - 4], "AAAA");
    assert_eq!(api.get("/me", &forged).await.status, StatusCode::UNAUTHORIZED);
    let expired = api
        .post(
            "/api-keys",
            Some(&owner),
            json!({ "project_id": project, "role": "viewer", "name": "old", "expires_at": "2020-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(expired.status, StatusCode::UNPROCESSABLE_ENTITY);

    let key_id = created.body["id"].as_str().unwrap();
    let not_mine = api.call(Method::DELETE, &format!("/api-keys/{key_id}"), Some(&viewer), None).await;
    assert_eq!(not_mine.status, StatusCode::NOT_FOUND);
    let revoked = api.call(Method::DELETE, &format!("/api-keys/{key_id}"), Some(&owner), None).await;
    assert!(revoked.body["revoked_at"].is_string());
    let after = api.get("/me", &key).await;
    assert_eq!(
        (after.status, after.body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("the API key was revoked"))
    );
}

async fn admins_disable_users_change_roles_and_read_the_audit_log(start: impl Starter<Config, Api>) {
    let api = start(|_| {}).await;
    let (admin, _) = api.user("admin@example.com").await;
    let (member, member_refresh) = api.user("member@example.com").await;
    let member_id = api.get("/me", &member).await.body["id"].as_str().unwrap().to_owned();
    let project = api.project(&member, "Mine").await;
    let key =
        api.post("/api-keys", Some(&member), json!({ "project_id": project, "role": "owner", "name": "k" })).await;
    let key = key.body["token"].as_str().unwrap().to_owned();

    let refused = api.get("/admin/users", &member).await;
    assert_eq!((refused.status, code(&refused)), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(api.get("/admin/audit", &member).await.status, StatusCode::FORBIDDEN);
    let users = api.get("/admin/users", &admin).await;
    assert_eq!(users.body.as_array().unwrap().len(), 2);

    let disabled = api
        .call(Method::PATCH, &format!("/admin/users/{member_id}"), Some(&admin), Some(json!({ "disabled": true })))
        .await;
    assert_eq!(disabled.body["disabled"], true, "{}", disabled.body);
    for token in [&member, &key] {
        assert_eq!(api.get("/me", token).await.status, StatusCode::UNAUTHORIZED, "disabled at once");
    }
    assert_eq!(
        api.post("/auth/refresh", None, json!({ "refresh_token": member_refresh })).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(api.sign_in_with("member@example.com", PASSWORD).await.status, StatusCode::BAD_REQUEST);
    api.call(Method::PATCH, &format!("/admin/users/{member_id}"), Some(&admin), Some(json!({ "disabled": false })))
        .await;
    assert_eq!(api.get("/me", &key).await.status, StatusCode::OK, "enabled again");

    let promoted = api
        .call(Method::PATCH, &format!("/admin/users/{member_id}"), Some(&admin), Some(json!({ "role": "admin" })))
        .await;
    assert_eq!(promoted.body["role"], "admin");
    let (member, _) = api.user("member@example.com").await;
    assert_eq!(api.get("/admin/users", &member).await.status, StatusCode::OK);

    api.sign_in_with("admin@example.com", "a wrong password").await;
    let audit = api.get("/admin/audit?limit=100", &admin).await;
    let actions: Vec<&str> = audit.body.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in [
        "auth.sign_in",
        "auth.sign_in_failed",
        "project.created",
        "api_key.created",
        "user.disabled",
        "user.enabled",
        "user.role_changed",
    ] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let failure = audit.body.as_array().unwrap().iter().find(|e| e["action"] == "auth.sign_in_failed").unwrap();
    assert_eq!(failure["client_addr"], "127.0.0.1");
    assert_eq!(failure["detail"]["reason"], "wrong password");
}

async fn failed_sign_ins_are_throttled_per_account_and_per_address(start: impl Starter<Config, Api>) {
    let api = start(|c| {
        c.rate_limit.sign_in_failures_per_account = 3;
        c.rate_limit.sign_in_failures_per_address = 6;
    })
    .await;
    api.register("ada@example.com").await;
    for _ in 0..3 {
        assert_eq!(api.sign_in_with("ada@example.com", "guess guess guess").await.status, StatusCode::BAD_REQUEST);
    }
    let blocked = api.sign_in_with("ada@example.com", PASSWORD).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits: {}", blocked.body);
    let retry: u64 = blocked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Guessing across accounts from one address hits the address limit.
    for n in 0..3 {
        api.sign_in_with(&format!("other{n}@example.com"), "guess guess guess").await;
    }
    let from_address = api.sign_in_with("fresh@example.com", "guess guess guess").await;
    assert_eq!(from_address.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn api_requests_are_rate_limited_with_standard_headers(start: impl Starter<Config, Api>) {
    let api = start(|c| c.rate_limit.per_user_per_minute = 5).await;
    let (token, _) = api.user("ada@example.com").await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let reply = api.get("/me", &token).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["ratelimit-limit"], "5");
        remaining.push(reply.headers["ratelimit-remaining"].to_str().unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(remaining, vec![4, 3, 2, 1, 0]);
    let limited = api.get("/me", &token).await;
    assert_eq!((limited.status, code(&limited)), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    assert!(limited.headers.contains_key("retry-after") && limited.headers.contains_key("ratelimit-reset"));
}

async fn bad_input_gets_clear_errors(start: impl Starter<Config, Api>) {
    let api = start(|c| c.server.body_limit_bytes = 4096).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "email": "not-an-address", "password": PASSWORD, "display_name": "X" }), "invalid_email"),
        (json!({ "email": "a@example.com", "password": "short", "display_name": "X" }), "weak_password"),
        (json!({ "email": "a@example.com", "password": "x".repeat(300), "display_name": "X" }), "weak_password"),
        (json!({ "email": "a@example.com", "password": "Password123", "display_name": "X" }), "weak_password"),
        (json!({ "email": "a@example.com", "password": PASSWORD, "display_name": "" }), "invalid_input"),
        (json!({ "email": "a@example.com", "password": PASSWORD }), "malformed_json"),
    ];
    for (body, expected) in cases {
        let reply = api.post("/auth/register", None, body.clone()).await;
        assert_eq!(code(&reply), expected, "{body}: {}", reply.body);
    }
    api.register("a@example.com").await;
    let taken = api
        .post("/auth/register", None, json!({ "email": "A@example.com", "password": PASSWORD, "display_name": "X" }))
        .await;
    assert_eq!((taken.status, code(&taken)), (StatusCode::CONFLICT, "email_taken"));
    let huge = api
        .post(
            "/auth/register",
            None,
            json!({ "email": "b@example.com", "password": PASSWORD, "display_name": "x".repeat(8000) }),
        )
        .await;
    assert_eq!((huge.status, code(&huge)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let bad_form = api.form("/auth/token", &[("username", "a@example.com")]).await;
    assert_eq!(bad_form.body["error"], "invalid_request");
    let bad_id = api.get(&format!("/projects/{}", "not-a-uuid"), &api.user("a@example.com").await.0).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    let scheme = api.client.get(format!("{}/me", api.base)).header("authorization", "Basic YTpi").send().await.unwrap();
    assert_eq!(scheme.status(), StatusCode::UNAUTHORIZED);
    // OAuth2 clients may authenticate themselves with Basic at the token endpoint.
    let with_client = api
        .client
        .post(format!("{}/auth/token", api.base))
        .header("authorization", "Basic c3dhZ2dlcjo=")
        .form(&[("grant_type", "password"), ("username", "a@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(with_client.status(), StatusCode::OK);
    let empty = api.client.get(format!("{}/me", api.base)).header("authorization", "Bearer ").send().await.unwrap();
    assert_eq!(empty.status(), StatusCode::UNAUTHORIZED);
}

/// Two gateways sharing PostgreSQL and Redis enforce one limit between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_gateways_sharing_redis() {
    let pg = TestPostgres::create().await;
    let prefix = unique_prefix("limits");
    let mut gateways = Vec::new();
    for _ in 0..2 {
        let db = Database::open(&pg.url, &OpenOptions::default()).await.unwrap();
        db.migrate().await.unwrap();
        let bus = cairn_bus::redis::connect(&redis_url(), &prefix, QueueOptions::default()).await.unwrap();
        let config = config(|c| c.rate_limit.sign_in_failures_per_account = 4);
        gateways.push(serve(config, db, Some(bus), Backing::Sqlite(TempDir::new("unused"))).await);
    }
    gateways[0].register("ada@example.com").await;
    // A token from one gateway works on the other: one database, one set of keys.
    let (token, _) = gateways[1].user("ada@example.com").await;
    assert_eq!(gateways[0].get("/me", &token).await.status, StatusCode::OK);

    // Disabling an account on one gateway stops it on the other at once, even
    // though that gateway had just served (and cached) it.
    let (bob, _) = gateways[0].user("bob@example.com").await;
    let bob_id = gateways[1].get("/me", &bob).await.body["id"].as_str().unwrap().to_owned();
    let disabled = gateways[0]
        .call(Method::PATCH, &format!("/admin/users/{bob_id}"), Some(&token), Some(json!({ "disabled": true })))
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let started = std::time::Instant::now();
    while gateways[1].get("/me", &bob).await.status == StatusCode::OK {
        assert!(started.elapsed() < Duration::from_millis(1000), "the other gateway still serves a disabled account");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for n in 0..4 {
        let reply = gateways[n % 2].sign_in_with("ada@example.com", "guess guess guess").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }
    for gateway in &gateways {
        assert_eq!(gateway.sign_in_with("ada@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    }
    drop(gateways);
}
