//! The authentication service: what the gateway calls for every account,
//! session, key, project-membership and administration request.

use std::sync::Arc;
use std::time::Duration;

use cairn_config::Config;
use cairn_core::bus::{Bus, Cache, PubSub};
use cairn_core::model::{
    ApiKey, Membership, NewApiKey, NewAuditEntry, NewProject, NewRefreshToken, NewUser, Project, ProjectUpdate,
    RefreshOutcome, Role, User,
};
use cairn_core::store::Store;
use cairn_core::{ApiKeyId, ProjectId, SessionId, UserId};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::access::{Access, Credential, Principal, ProjectGrant, weaker};
use crate::mail::{Email, Mailer};
use crate::throttle::{self, Limit, RateLimitStatus};
use crate::tokens::{self, AccessClaims};
use crate::users::{self, UserCache};
use crate::{Error, Result, SigningKeys, password};

mod audit;
mod lifecycle;
mod service_accounts;

pub use lifecycle::AccountDeleted;

pub use service_accounts::ServiceAccount;

/// Prefix of every API key, so leaked keys are easy to find in code and logs.
const API_KEY_PREFIX: &str = "cairn_k_";

/// Tokens issued by a sign-in, a refresh or a password change.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    /// Seconds the access token stays valid.
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: User,
}

/// A new API key: the secret is in `token`, shown this once.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub token: String,
}

#[derive(Debug)]
pub(crate) struct Inner {
    store: Arc<dyn Store>,
    pub(crate) cache: Arc<dyn Cache>,
    pubsub: Arc<dyn PubSub>,
    users: UserCache,
    /// Access tokens whose signature was already checked.
    verified: tokens::VerifiedTokens,
    mailer: Arc<dyn Mailer>,
    keys: SigningKeys,
    pub(crate) config: cairn_config::AuthConfig,
    limits: cairn_config::RateLimitConfig,
}

/// Cheap to clone: every handle inside is shared.
#[derive(Debug, Clone)]
pub struct Auth {
    pub(crate) inner: Arc<Inner>,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn valid_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.contains(char::is_whitespace)
        && email.matches('@').count() == 1;
    if ok { Ok(email) } else { Err(Error::InvalidEmail(email)) }
}

fn bounded(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(Error::InvalidInput(format!("`{field}` must have 1 to {max} characters")));
    }
    Ok(value.to_owned())
}

impl Auth {
    /// Builds the service and starts listening for accounts changed by other
    /// gateways (needs a Tokio runtime).
    pub fn new(config: &Config, store: Arc<dyn Store>, bus: &Bus, mailer: Arc<dyn Mailer>, keys: SigningKeys) -> Auth {
        let inner = Arc::new(Inner {
            store,
            cache: bus.cache.clone(),
            pubsub: bus.pubsub.clone(),
            users: UserCache::default(),
            verified: tokens::VerifiedTokens::default(),
            mailer,
            keys,
            config: config.auth.clone(),
            limits: config.rate_limit.clone(),
        });
        tokio::spawn(listen_for_changed_users(Arc::downgrade(&inner)));
        Auth { inner }
    }

    /// The account, from memory if it was read in the last moments.
    pub(crate) async fn cached_user(&self, id: UserId) -> cairn_core::Result<Arc<User>> {
        if let Some(user) = self.inner.users.get(id) {
            return Ok(user);
        }
        let epoch = self.inner.users.epoch();
        let user = Arc::new(self.store().user(id).await?);
        self.inner.users.put(epoch, user.clone());
        Ok(user)
    }

    /// Makes a change to an account count at once, here and on every gateway.
    async fn user_changed(&self, id: UserId) {
        self.inner.users.evict(id);
        let payload = bytes::Bytes::from(id.to_string());
        if let Err(error) = self.inner.pubsub.publish(users::TOPIC, payload).await {
            tracing::warn!(%error, "cannot announce an account change to other gateways");
        }
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    async fn audit(&self, actor: Option<UserId>, project: Option<ProjectId>, action: &str, detail: Value, addr: &str) {
        let entry = NewAuditEntry::new(actor, project, action, detail, (!addr.is_empty()).then(|| addr.to_owned()));
        // The action happened; a failed audit write must not undo it, but it is logged.
        if let Err(error) = self.store().record_audit(entry).await {
            tracing::error!(%error, action, "cannot write the audit log");
        }
    }

    // ----- accounts and sessions -------------------------------------------------

    /// Creates an account. The first account of a deployment is its admin.
    pub async fn register(&self, email: &str, password: &str, display_name: &str, addr: &str) -> Result<User> {
        let email = valid_email(email)?;
        let display_name = bounded("display_name", display_name, 100)?;
        password::check(password, &email)?;
        let password_hash = password::hash(password.to_owned()).await?;
        let new = NewUser { email, display_name, password_hash, is_admin: false };
        let user = self.store().create_first_user_admin(new).await.map_err(|e| match e {
            cairn_core::Error::Conflict { .. } => Error::EmailTaken,
            other => Error::Backend(other),
        })?;
        self.audit(Some(user.id), None, "user.registered", json!({ "admin": user.is_admin }), addr).await;
        Ok(user)
    }

    /// Creates an account from the command line (`cairn user create`).
    pub async fn create_user(&self, email: &str, password: &str, display_name: &str, admin: bool) -> Result<User> {
        let email = valid_email(email)?;
        password::check(password, &email)?;
        let password_hash = password::hash(password.to_owned()).await?;
        let new = NewUser {
            email,
            display_name: bounded("display_name", display_name, 100)?,
            password_hash,
            is_admin: admin,
        };
        let user = self.store().create_user(new).await.map_err(|e| match e {
            cairn_core::Error::Conflict { .. } => Error::EmailTaken,
            other => Error::Backend(other),
        })?;
        self.audit(None, None, "user.created", json!({ "user": user.id, "admin": admin, "via": "cli" }), "").await;
        Ok(user)
    }

    fn sign_in_limits(&self) -> (Limit, Limit) {
        let window = Duration::from_secs(self.inner.limits.sign_in_window_secs);
        (
            Limit { max: self.inner.limits.sign_in_failures_per_account, window },
            Limit { max: self.inner.limits.sign_in_failures_per_address, window },
        )
    }

    /// The OAuth2 password grant. Failed attempts are counted per account and
    /// per client address; past either limit the answer is 429 until the
    /// window ends, even for the right password.
    pub async fn sign_in(&self, email: &str, password: &str, addr: &str) -> Result<Session> {
        let email = email.trim().to_lowercase();
        let (per_account, per_address) = self.sign_in_limits();
        let account_key: throttle::Subject<'_> = ("signin-fail:account", throttle::Whose::Text(&email));
        let address_key: throttle::Subject<'_> = ("signin-fail:address", throttle::Whose::Text(addr));
        let cache = self.inner.cache.as_ref();
        for (key, limit) in [(account_key, per_account), (address_key, per_address)] {
            let status = throttle::check(cache, key, limit).await?;
            if !status.allowed {
                self.audit(None, None, "auth.sign_in_throttled", json!({ "email": email }), addr).await;
                return Err(Error::Throttled { retry_after: status.reset });
            }
        }
        let user = match self.store().user_by_email(&email).await {
            Ok(user) => Some(user),
            Err(cairn_core::Error::NotFound { .. }) => None,
            Err(other) => return Err(other.into()),
        };
        let verified = password::verify(password.to_owned(), user.as_ref().map(|u| u.password_hash.clone())).await?;
        match user {
            Some(user) if verified && !user.disabled => {
                self.audit(Some(user.id), None, "auth.sign_in", json!({}), addr).await;
                self.start_session(user, SessionId::new()).await
            }
            user => {
                throttle::hit(cache, account_key, per_account).await?;
                throttle::hit(cache, address_key, per_address).await?;
                let reason = match &user {
                    None => "unknown account",
                    Some(u) if u.disabled => "account disabled",
                    Some(_) => "wrong password",
                };
                self.audit(
                    user.map(|u| u.id),
                    None,
                    "auth.sign_in_failed",
                    json!({ "email": email, "reason": reason }),
                    addr,
                )
                .await;
                Err(Error::InvalidCredentials)
            }
        }
    }

    async fn start_session(&self, user: User, session: SessionId) -> Result<Session> {
        let refresh_token = tokens::random_token(32);
        let expires_at = now() + Duration::from_secs(self.inner.config.refresh_token_ttl_secs);
        let token =
            NewRefreshToken { user_id: user.id, session, token_hash: tokens::digest(&refresh_token), expires_at };
        self.store().insert_refresh_token(token).await?;
        let (access_token, expires_in) = self.issue_access(&user, session);
        Ok(Session { access_token, expires_in, refresh_token, user })
    }

    fn issue_access(&self, user: &User, session: SessionId) -> (String, u64) {
        let issued = now().unix_timestamp();
        let ttl = self.inner.config.access_token_ttl_secs;
        let claims = AccessClaims {
            iss: self.inner.config.issuer.clone(),
            aud: self.inner.config.audience.clone(),
            sub: user.id,
            sid: session,
            ver: user.token_version,
            iat: issued,
            nbf: issued,
            exp: issued + i64::try_from(ttl).unwrap_or(900),
            typ: "access".to_owned(),
        };
        (tokens::sign(&self.inner.keys, &claims), ttl)
    }

    /// Trades a refresh token for new tokens. A token used twice means it was
    /// stolen: its whole session is revoked and both holders must sign in again.
    pub async fn refresh(&self, refresh_token: &str, addr: &str) -> Result<Session> {
        match self.store().use_refresh_token(&tokens::digest(refresh_token), now()).await? {
            RefreshOutcome::Rotated { user_id, session } => {
                let user = self.store().user(user_id).await?;
                if user.disabled {
                    self.store().revoke_session(session).await?;
                    return Err(Error::InvalidGrant("the account is disabled"));
                }
                self.start_session(user, session).await
            }
            RefreshOutcome::Reused { user_id, session } => {
                self.audit(Some(user_id), None, "auth.refresh_reused", json!({ "session": session }), addr).await;
                Err(Error::InvalidGrant("this refresh token was already used; the session has been ended"))
            }
            RefreshOutcome::Invalid => Err(Error::InvalidGrant("the refresh token is unknown, expired or revoked")),
        }
    }

    /// Ends the caller's session: its refresh token stops working.
    pub async fn logout(&self, principal: &Principal, addr: &str) -> Result<()> {
        let session = principal.require_session()?;
        self.store().revoke_session(session).await?;
        self.audit(Some(principal.user.id), None, "auth.logout", json!({}), addr).await;
        Ok(())
    }

    /// Changes the password. Every session and access token of the account
    /// ends; the caller gets a fresh session.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &str,
        new: &str,
        addr: &str,
    ) -> Result<Session> {
        principal.require_session()?;
        let user = &principal.user;
        if !password::verify(current.to_owned(), Some(user.password_hash.clone())).await? {
            self.audit(Some(user.id), None, "auth.password_change_failed", json!({}), addr).await;
            return Err(Error::Forbidden("the current password is wrong"));
        }
        self.replace_password(user.id, &user.email, new).await?;
        self.audit(Some(user.id), None, "auth.password_changed", json!({}), addr).await;
        let user = self.store().user(user.id).await?;
        self.start_session(user, SessionId::new()).await
    }

    async fn replace_password(&self, user: UserId, email: &str, new: &str) -> Result<()> {
        password::check(new, email)?;
        let hash = password::hash(new.to_owned()).await?;
        self.store().set_password(user, hash).await?;
        self.user_changed(user).await;
        self.store().revoke_sessions_of(user).await?;
        Ok(())
    }

    /// Starts password recovery. Answers at once and the same way whether or
    /// not the account exists; the work (and the e-mail) happens afterwards.
    pub fn forgot_password(&self, email: &str, addr: &str) {
        let (auth, email, addr) = (self.clone(), email.trim().to_lowercase(), addr.to_owned());
        tokio::spawn(async move {
            if let Err(error) = auth.send_recovery(&email, &addr).await {
                tracing::warn!(%error, "password recovery e-mail not sent");
            }
        });
    }

    async fn send_recovery(&self, email: &str, addr: &str) -> Result<()> {
        let user = match self.store().user_by_email(email).await {
            Ok(user) if !user.disabled => user,
            Ok(_) | Err(cairn_core::Error::NotFound { .. }) => {
                self.audit(None, None, "auth.recovery_requested", json!({ "email": email, "known": false }), addr)
                    .await;
                return Ok(());
            }
            Err(other) => return Err(other.into()),
        };
        let token = tokens::random_token(32);
        let ttl = Duration::from_secs(self.inner.config.reset_token_ttl_secs);
        self.store().insert_password_reset(user.id, tokens::digest(&token), now() + ttl).await?;
        self.audit(Some(user.id), None, "auth.recovery_requested", json!({ "email": email, "known": true }), addr)
            .await;
        let link = format!("{}/reset-password#token={token}", self.inner.config.public_url.trim_end_matches('/'));
        let minutes = ttl.as_secs().div_ceil(60);
        let body = format!(
            "Hello {name},\n\nsomeone (hopefully you) asked to reset the password of your Cairn account.\n\
             Open this link within {minutes} minutes to choose a new one:\n\n{link}\n\n\
             If you did not ask for this, ignore this message: your password stays as it is.\n",
            name = user.display_name
        );
        self.inner.mailer.send(Email { to: user.email, subject: "Reset your Cairn password".to_owned(), body }).await
    }

    /// Sets a new password with a recovery token (single use, 15 minutes).
    pub async fn reset_password(&self, token: &str, new: &str, addr: &str) -> Result<()> {
        // Check the policy before spending the token, so a weak choice can be retried.
        let user = match self.store().use_password_reset(&tokens::digest(token), now()).await? {
            Some(user) => self.store().user(user).await?,
            None => return Err(Error::InvalidGrant("the recovery link is unknown, expired or already used")),
        };
        self.replace_password(user.id, &user.email, new).await?;
        self.audit(Some(user.id), None, "auth.password_reset", json!({}), addr).await;
        Ok(())
    }

    // ----- authenticating requests ----------------------------------------------

    /// Who presents this bearer credential: an access token or an API key.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal> {
        if let Some(rest) = bearer.strip_prefix(API_KEY_PREFIX) {
            return self.authenticate_key(rest).await;
        }
        let claims = self
            .inner
            .verified
            .verify(
                &self.inner.keys,
                bearer,
                &self.inner.config.issuer,
                &self.inner.config.audience,
                now().unix_timestamp(),
            )
            .map_err(Error::InvalidToken)?;
        let user = self.account_of_credential(claims.sub, claims.ver).await?;
        Ok(Principal { user, credential: Credential::Session(claims.sid) })
    }

    /// The account a credential was issued to, if it still stands: it
    /// exists, is enabled, and its password has not changed since (`ver`).
    pub(crate) async fn account_of_credential(&self, id: UserId, ver: i64) -> Result<Arc<User>> {
        let user = match self.cached_user(id).await {
            Ok(user) => user,
            Err(cairn_core::Error::NotFound { .. }) => return Err(Error::InvalidToken("the account no longer exists")),
            Err(other) => return Err(other.into()),
        };
        if user.disabled {
            return Err(Error::InvalidToken("the account is disabled"));
        }
        if user.token_version != ver {
            return Err(Error::InvalidToken("the password changed since this was issued; sign in again"));
        }
        Ok(user)
    }

    async fn authenticate_key(&self, rest: &str) -> Result<Principal> {
        let invalid = || Error::InvalidToken("the API key is not valid");
        let (id, secret) = rest.split_once('_').ok_or_else(invalid)?;
        let id: ApiKeyId = uuid::Uuid::try_parse(id).map(ApiKeyId).map_err(|_| invalid())?;
        let (key, hash) = match self.store().api_key(id).await {
            Ok(found) => found,
            Err(cairn_core::Error::NotFound { .. }) => return Err(invalid()),
            Err(other) => return Err(other.into()),
        };
        if !constant_time_eq(&tokens::digest(secret), &hash) {
            return Err(invalid());
        }
        if key.revoked_at.is_some() {
            return Err(Error::InvalidToken("the API key was revoked"));
        }
        if key.expires_at.is_some_and(|at| at <= now()) {
            return Err(Error::InvalidToken("the API key has expired"));
        }
        let user = self.cached_user(key.owner).await?;
        if user.disabled {
            return Err(Error::InvalidToken("the API key's owner is disabled"));
        }
        Ok(Principal { user, credential: Credential::ApiKey { key: key.id, project: key.project_id, role: key.role } })
    }

    /// Counts a request against the caller's limit (per user or per key).
    pub async fn rate_limit_principal(&self, principal: &Principal) -> Result<RateLimitStatus> {
        let cache = self.inner.cache.as_ref();
        let window = Duration::from_secs(60);
        match &principal.credential {
            Credential::Session(_) => {
                let limit = Limit { max: self.inner.limits.per_user_per_minute, window };
                throttle::hit(cache, ("rate:user", throttle::Whose::Id(principal.user.id.0)), limit).await
            }
            Credential::ApiKey { key, .. } => {
                let limit = Limit { max: self.inner.limits.per_api_key_per_minute, window };
                throttle::hit(cache, ("rate:key", throttle::Whose::Id(key.0)), limit).await
            }
        }
    }

    /// Counts a request against its client address's limit.
    pub async fn rate_limit_address(&self, addr: &str) -> Result<RateLimitStatus> {
        let limit = Limit { max: self.inner.limits.per_address_per_minute, window: Duration::from_secs(60) };
        throttle::hit(self.inner.cache.as_ref(), ("rate:addr", throttle::Whose::Text(addr)), limit).await
    }

    /// The one check in front of every project-scoped action. A caller who is
    /// not a member (or whose key belongs to another project) is told the
    /// project does not exist; a member whose role is too weak is refused.
    pub async fn authorize(&self, principal: &Principal, project: ProjectId, access: Access) -> Result<ProjectGrant> {
        let member = self.store().member_role(project, principal.user.id).await?;
        let role = match &principal.credential {
            Credential::Session(_) => member,
            Credential::ApiKey { project: scope, role, .. } if *scope == project => member.map(|m| weaker(m, *role)),
            Credential::ApiKey { .. } => None,
        };
        let Some(role) = role else {
            return Err(Error::Backend(cairn_core::Error::NotFound { entity: "project" }));
        };
        if !access.allowed_for(role) {
            return Err(Error::Forbidden(match access {
                Access::Read => "this needs a member of the project",
                Access::Write => "this needs the editor or owner role in the project",
                Access::Manage => "this needs the owner role in the project",
            }));
        }
        Ok(ProjectGrant { project_id: project, role })
    }

    // ----- projects and members ---------------------------------------------------

    pub async fn create_project(&self, principal: &Principal, name: &str, addr: &str) -> Result<Project> {
        principal.require_session()?;
        let name = bounded("name", name, 200)?;
        let project = self.store().create_project(NewProject { name, owner: principal.user.id }).await?;
        self.audit(Some(principal.user.id), Some(project.id), "project.created", json!({ "name": project.name }), addr)
            .await;
        Ok(project)
    }

    /// Renames the project or changes its default model or budget (owners).
    /// The model is checked by the caller, which knows the configured ones.
    pub async fn update_project(
        &self,
        principal: &Principal,
        id: ProjectId,
        mut update: ProjectUpdate,
        addr: &str,
    ) -> Result<(Project, Role)> {
        let grant = self.authorize(principal, id, Access::Manage).await?;
        if let Some(name) = &update.name {
            update.name = Some(bounded("name", name, 200)?);
        }
        if let Some(Some(budget)) = update.budget_usd
            && !(budget.is_finite() && (0.0..=1_000_000_000.0).contains(&budget))
        {
            return Err(Error::InvalidInput("`budget_usd` must be a number of dollars from 0 to 1000000000".into()));
        }
        if let Some(Some(days)) = update.retention_days
            && !(0..=36_500).contains(&days)
        {
            return Err(Error::InvalidInput("`retention_days` must be a number of days from 0 to 36500".into()));
        }
        if let Some(requirements) = &update.requirements {
            if requirements.len() > 20_000 {
                return Err(Error::InvalidInput("`requirements` is at most 20000 characters".into()));
            }
            cairn_core::sandbox::PackagePolicy::parse(requirements)
                .map_err(|why| Error::InvalidInput(format!("`requirements`: {why}")))?;
        }
        let project = self.store().update_project(id, update.clone()).await?;
        let changes = json!({ "name": update.name, "model": update.model, "budget_usd": update.budget_usd,
            "retention_days": update.retention_days, "packages": update.packages,
            "requirements": update.requirements });
        self.audit(Some(principal.user.id), Some(id), "project.updated", changes, addr).await;
        Ok((project, grant.role))
    }

    /// The projects the caller can see, with their role in each.
    pub async fn projects(&self, principal: &Principal) -> Result<Vec<(Project, Role)>> {
        let all = self.store().projects_for_user(principal.user.id).await?;
        Ok(match &principal.credential {
            Credential::Session(_) => all,
            Credential::ApiKey { project, role, .. } => all
                .into_iter()
                .filter(|(p, _)| p.id == *project)
                .map(|(p, member)| (p, weaker(member, *role)))
                .collect(),
        })
    }

    pub async fn project(&self, principal: &Principal, id: ProjectId) -> Result<(Project, Role)> {
        let grant = self.authorize(principal, id, Access::Read).await?;
        Ok((self.store().project(id).await?, grant.role))
    }

    pub async fn members(&self, principal: &Principal, project: ProjectId) -> Result<Vec<(Membership, User)>> {
        self.authorize(principal, project, Access::Read).await?;
        let mut out = Vec::new();
        for membership in self.store().members(project).await? {
            let user = self.store().user(membership.user_id).await?;
            out.push((membership, user));
        }
        Ok(out)
    }

    /// Adds a member by e-mail (they must have an account) or changes the
    /// role of a member (by e-mail, or by id: then `NotFound` for non-members).
    pub async fn set_member(
        &self,
        principal: &Principal,
        project: ProjectId,
        target: MemberRef<'_>,
        role: Role,
        addr: &str,
    ) -> Result<(Membership, User)> {
        self.authorize(principal, project, Access::Manage).await?;
        let user = match target {
            MemberRef::Email(email) => match self.store().user_by_email(&email.trim().to_lowercase()).await {
                Ok(user) => user,
                Err(cairn_core::Error::NotFound { .. }) => {
                    return Err(Error::InvalidInput(format!(
                        "no account uses the e-mail `{email}`; ask them to sign up"
                    )));
                }
                Err(other) => return Err(other.into()),
            },
            // Changing a role is only for members; adding goes by e-mail.
            MemberRef::User(id) => match self.store().member_role(project, id).await? {
                Some(_) => self.store().user(id).await?,
                None => return Err(cairn_core::Error::NotFound { entity: "member" }.into()),
            },
        };
        let before = self.store().member_role(project, user.id).await?;
        if before == Some(Role::Owner) && role != Role::Owner {
            self.keep_an_owner(project, user.id).await?;
        }
        // A member added is a project event: its webhook deliveries are
        // queued with the membership.
        let notice = before.is_none().then(|| cairn_core::hooks::Notice {
            kind: "member.added",
            data: json!({
                "user": user.id,
                "display_name": user.display_name,
                "role": role,
                "added_by": principal.user.id,
            }),
        });
        let membership = self.store().set_member_noticed(project, user.id, role, notice).await?;
        let action = if before.is_some() { "member.role_changed" } else { "member.added" };
        let detail = json!({ "user": user.id, "role": role, "previous": before });
        self.audit(Some(principal.user.id), Some(project), action, detail, addr).await;
        Ok((membership, user))
    }

    pub async fn remove_member(
        &self,
        principal: &Principal,
        project: ProjectId,
        user: UserId,
        addr: &str,
    ) -> Result<()> {
        // Anyone may leave a project; removing others needs the owner role.
        if user == principal.user.id {
            self.authorize(principal, project, Access::Read).await?;
        } else {
            self.authorize(principal, project, Access::Manage).await?;
        }
        if self.store().member_role(project, user).await? == Some(Role::Owner) {
            self.keep_an_owner(project, user).await?;
        }
        self.store().remove_member(project, user).await?;
        self.audit(Some(principal.user.id), Some(project), "member.removed", json!({ "user": user }), addr).await;
        Ok(())
    }

    /// A project always keeps at least one owner.
    async fn keep_an_owner(&self, project: ProjectId, leaving: UserId) -> Result<()> {
        let owners = self
            .store()
            .members(project)
            .await?
            .iter()
            .filter(|m| m.role == Role::Owner && m.user_id != leaving)
            .count();
        if owners == 0 {
            return Err(Error::InvalidInput(
                "a project needs at least one owner; make someone else owner first".into(),
            ));
        }
        Ok(())
    }

    // ----- API keys ---------------------------------------------------------------

    /// Makes a key for a project the caller belongs to, with at most the
    /// caller's own role there.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        project: ProjectId,
        role: Role,
        name: &str,
        expires_at: Option<OffsetDateTime>,
        addr: &str,
    ) -> Result<IssuedKey> {
        principal.require_session()?;
        let grant = self.authorize(principal, project, Access::Read).await?;
        if weaker(grant.role, role) != role {
            return Err(Error::Forbidden("a key cannot have a stronger role than its creator"));
        }
        let issued = self.issue_key(principal.user.id, project, role, name, expires_at).await?;
        let detail =
            json!({ "key": issued.key.id, "role": role, "expires_at": expires_at.map(|t| t.unix_timestamp()) });
        self.audit(Some(principal.user.id), Some(project), "api_key.created", detail, addr).await;
        Ok(issued)
    }

    /// Stores a new key of `owner`'s (a person or a service account) and
    /// makes its secret, shown this once.
    async fn issue_key(
        &self,
        owner: UserId,
        project: ProjectId,
        role: Role,
        name: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedKey> {
        if expires_at.is_some_and(|at| at <= now()) {
            return Err(Error::InvalidInput("`expires_at` must be in the future".into()));
        }
        let name = bounded("name", name, 100)?;
        let secret = tokens::random_token(32);
        let new =
            NewApiKey { owner, project_id: project, role, name, secret_hash: tokens::digest(&secret), expires_at };
        let key = self.store().create_api_key(new).await?;
        let token = format!("{API_KEY_PREFIX}{}_{secret}", key.id.0.simple());
        Ok(IssuedKey { key, token })
    }

    pub async fn api_keys(&self, principal: &Principal) -> Result<Vec<ApiKey>> {
        principal.require_session()?;
        Ok(self.store().api_keys_of(principal.user.id).await?)
    }

    pub async fn revoke_api_key(&self, principal: &Principal, id: ApiKeyId, addr: &str) -> Result<ApiKey> {
        principal.require_session()?;
        let key = self.store().revoke_api_key(id, principal.user.id).await?;
        self.audit(Some(principal.user.id), Some(key.project_id), "api_key.revoked", json!({ "key": id }), addr).await;
        Ok(key)
    }

    // ----- administration ---------------------------------------------------------

    pub async fn users(&self, principal: &Principal, after: Option<UserId>, limit: i64) -> Result<Vec<User>> {
        principal.require_admin()?;
        Ok(self.store().users(after, limit.clamp(1, 500)).await?)
    }

    /// Disables or enables an account. A disabled account's tokens and keys
    /// stop working at once: every request loads the account.
    pub async fn set_disabled(&self, principal: &Principal, user: UserId, disabled: bool, addr: &str) -> Result<User> {
        principal.require_admin()?;
        if user == principal.user.id && disabled {
            return Err(Error::InvalidInput("you cannot disable your own account".into()));
        }
        let updated = self.store().set_disabled(user, disabled).await?;
        self.user_changed(user).await;
        if disabled {
            self.store().revoke_sessions_of(user).await?;
        }
        let action = if disabled { "user.disabled" } else { "user.enabled" };
        self.audit(Some(principal.user.id), None, action, json!({ "user": user }), addr).await;
        Ok(updated)
    }

    /// Grants or takes away the admin role.
    pub async fn set_admin(&self, principal: &Principal, user: UserId, admin: bool, addr: &str) -> Result<User> {
        principal.require_admin()?;
        if user == principal.user.id && !admin {
            return Err(Error::InvalidInput("you cannot take away your own admin role".into()));
        }
        let updated = self.store().set_admin(user, admin).await?;
        self.user_changed(user).await;
        let detail = json!({ "user": user, "role": if admin { "admin" } else { "member" } });
        self.audit(Some(principal.user.id), None, "user.role_changed", detail, addr).await;
        Ok(updated)
    }

    pub async fn user(&self, principal: &Principal, user: UserId) -> Result<User> {
        principal.require_admin()?;
        Ok(self.store().user(user).await?)
    }
}

/// Evicts accounts that other gateways announce as changed. Ends when the
/// service is dropped.
async fn listen_for_changed_users(inner: std::sync::Weak<Inner>) {
    use futures::StreamExt;
    let subscription = match inner.upgrade() {
        Some(inner) => inner.pubsub.subscribe(users::TOPIC).await,
        None => return,
    };
    let mut changes = match subscription {
        Ok(changes) => changes,
        Err(error) => {
            tracing::warn!(%error, "cannot follow account changes of other gateways; cached accounts expire by themselves");
            return;
        }
    };
    while let Some(payload) = changes.next().await {
        let Some(inner) = inner.upgrade() else { return };
        if let Some(id) = std::str::from_utf8(&payload).ok().and_then(|s| s.parse::<UserId>().ok()) {
            inner.users.evict(id);
        }
    }
}

/// Whom a membership change is about.
#[derive(Debug, Clone, Copy)]
pub enum MemberRef<'a> {
    Email(&'a str),
    User(UserId),
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
