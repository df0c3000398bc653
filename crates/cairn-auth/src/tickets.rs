//! Tickets: short-lived, single-use credentials for the one request a
//! browser cannot put a header on — the WebSocket upgrade. A signed-in
//! client asks for a ticket with its bearer credential, then opens the
//! socket with `?ticket=…`. The ticket names what it opens (its scope), lives
//! a few seconds and works once, so one that leaks into a log is spent.
//! Tickets live in the bus's cache (Redis in the distributed shape), so any
//! gateway can redeem a ticket another issued.

use std::time::Duration;

use bytes::Bytes;
use cairn_core::{ApiKeyId, SessionId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::access::{Credential, Principal};
use crate::{Auth, Error, Result, tokens};

/// What the cache keeps for a ticket: who asked, with which credential.
#[derive(Debug, Serialize, Deserialize)]
struct Ticket {
    scope: String,
    user: UserId,
    /// The account's token version when the ticket was issued: a password
    /// change in between spends it.
    ver: i64,
    session: Option<SessionId>,
    key: Option<ApiKeyId>,
}

fn cache_key(ticket: &str) -> String {
    let digest: String = tokens::digest(ticket).iter().map(|b| format!("{b:02x}")).collect();
    format!("auth:ticket:{digest}")
}

impl Auth {
    /// How long a ticket may wait to be used (`auth.ticket_ttl_secs`).
    pub fn ticket_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.config.ticket_ttl_secs)
    }

    /// A ticket for `scope` (e.g. `thread:<id>:events`) on the caller's behalf.
    pub async fn issue_ticket(&self, principal: &Principal, scope: &str) -> Result<String> {
        let (session, key) = match &principal.credential {
            Credential::Session(session) => (Some(*session), None),
            Credential::ApiKey { key, .. } => (None, Some(*key)),
        };
        let ticket = tokens::random_token(32);
        let stored = Ticket {
            scope: scope.to_owned(),
            user: principal.user.id,
            ver: principal.user.token_version,
            session,
            key,
        };
        let value = serde_json::to_vec(&stored).map_err(|e| Error::InvalidInput(e.to_string()))?;
        self.inner.cache.set(&cache_key(&ticket), Bytes::from(value), self.ticket_ttl()).await?;
        Ok(ticket)
    }

    /// The caller a ticket was issued to, if it is for `scope`, unexpired and
    /// unused; it is spent either way. The account and, for an API key, the
    /// key are checked again as for any request.
    pub async fn redeem_ticket(&self, ticket: &str, scope: &str) -> Result<Principal> {
        let invalid = || Error::InvalidToken("the ticket is unknown, expired or already used");
        let key = cache_key(ticket);
        let value = self.inner.cache.get(&key).await?.ok_or_else(invalid)?;
        // Whoever deletes it first owns it: two uses at once get one answer.
        if !self.inner.cache.delete(&key).await? {
            return Err(invalid());
        }
        let stored: Ticket = serde_json::from_slice(&value).map_err(|_| invalid())?;
        if stored.scope != scope {
            return Err(Error::InvalidToken("the ticket was issued for something else"));
        }
        let user = self.account_of_credential(stored.user, stored.ver).await?;
        let credential = match (stored.session, stored.key) {
            (Some(session), _) => Credential::Session(session),
            (None, Some(id)) => {
                let (key, _) = self.store().api_key(id).await?;
                let now = OffsetDateTime::now_utc();
                if key.revoked_at.is_some() || key.expires_at.is_some_and(|at| at <= now) {
                    return Err(Error::InvalidToken("the API key was revoked or has expired"));
                }
                Credential::ApiKey { key: key.id, project: key.project_id, role: key.role }
            }
            (None, None) => return Err(invalid()),
        };
        Ok(Principal { user, credential })
    }
}
