//! `[auth]`: access tokens, refresh tokens, recovery links, tickets.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Secret, refuse_zero};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `iss` of the access tokens this deployment issues and accepts.
    pub issuer: String,
    /// `aud` of the access tokens.
    pub audience: String,
    /// Lifetime of an access token, in seconds (at most 900).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds; each use issues a fresh one.
    pub refresh_token_ttl_secs: u64,
    /// Lifetime of a password-recovery link, in seconds (at most 900).
    pub reset_token_ttl_secs: u64,
    /// Lifetime of a WebSocket ticket (single use), in seconds.
    pub ticket_ttl_secs: u64,
    /// HMAC keys for access tokens; the first signs, all verify (rotation).
    /// Empty: a key is generated on first start and kept in the data dir.
    pub signing_keys: Vec<SigningKey>,
    /// The address people reach the web app at, for links in e-mails.
    pub public_url: String,
}

/// One key of a key ring (`auth.signing_keys`, `llm.secret_keys`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    /// Key id, sent in each token's `kid` header.
    pub kid: String,
    /// At least 32 bytes, base64url-encoded (no padding).
    pub secret: Secret,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "cairn".to_owned(),
            audience: "cairn-api".to_owned(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            reset_token_ttl_secs: 900,
            ticket_ttl_secs: 30,
            signing_keys: Vec::new(),
            public_url: "http://127.0.0.1:8080".to_owned(),
        }
    }
}

impl AuthConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        refuse_zero([
            ("auth.access_token_ttl_secs", self.access_token_ttl_secs, "at least 1 second"),
            ("auth.refresh_token_ttl_secs", self.refresh_token_ttl_secs, "at least 1 second"),
            ("auth.reset_token_ttl_secs", self.reset_token_ttl_secs, "at least 1 second"),
            ("auth.ticket_ttl_secs", self.ticket_ttl_secs, "at least 1 second"),
        ])?;
        for (key, value) in [
            ("auth.access_token_ttl_secs", self.access_token_ttl_secs),
            ("auth.reset_token_ttl_secs", self.reset_token_ttl_secs),
            ("auth.ticket_ttl_secs", self.ticket_ttl_secs),
        ] {
            if value > 900 {
                return Err(Error::Invalid {
                    key,
                    expected: "at most 900 seconds (15 minutes)",
                    got: value.to_string(),
                });
            }
        }
        for signing_key in &self.signing_keys {
            let bytes = signing_key.secret.len() * 3 / 4;
            if signing_key.kid.is_empty() || bytes < 32 {
                return Err(Error::Invalid {
                    key: "auth.signing_keys",
                    expected: "keys with a non-empty `kid` and a base64url `secret` of at least 32 bytes",
                    got: format!("kid `{}` with a {bytes}-byte secret", signing_key.kid),
                });
            }
        }
        Ok(())
    }
}
