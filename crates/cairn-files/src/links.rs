//! Download links for locally stored files: the gateway signs them with an
//! HMAC key and serves them at `/api/v1/links/{token}`. A token names one
//! object (so one version of one file) and an expiry; it is only good for
//! reading. Cloud stores sign their own links instead.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{Error, Result};

#[derive(Clone)]
pub(crate) struct LinkKey(Hmac<Sha256>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(<redacted>)")
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct LinkClaims {
    /// The object key.
    pub k: String,
    /// Expiry, Unix seconds.
    pub e: i64,
}

impl LinkKey {
    pub(crate) fn new(secret: &[u8]) -> Result<LinkKey> {
        if secret.len() < 32 {
            return Err(Error::Storage("the link signing key must have at least 32 bytes".into()));
        }
        Hmac::new_from_slice(secret).map(LinkKey).map_err(|e| Error::Storage(e.to_string()))
    }

    pub(crate) fn sign(&self, claims: &LinkClaims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.0.clone();
        mac.update(payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The claims of a genuine, unexpired token.
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<LinkClaims> {
        let altered = Error::LinkInvalid("this download link is not valid");
        let (payload, signature) =
            token.split_once('.').ok_or(Error::LinkInvalid("this download link is not valid"))?;
        let signature =
            URL_SAFE_NO_PAD.decode(signature).map_err(|_| Error::LinkInvalid("this download link is not valid"))?;
        let mut mac = self.0.clone();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| Error::LinkInvalid("this download link is not valid"))?;
        let claims: LinkClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(altered)?;
        if now >= claims.e {
            return Err(Error::LinkInvalid("this download link has expired"));
        }
        Ok(claims)
    }
}

/// The link-signing secret from configuration (base64url), or one generated
/// on first start and kept (owner-only) at `path`.
pub fn link_secret(configured: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    let decode = |text: &str| {
        URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|e| Error::Storage(format!("files.link_signing_key is not base64url: {e}")))
    };
    if !configured.is_empty() {
        return decode(configured);
    }
    match std::fs::read_to_string(path) {
        Ok(text) => decode(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 32];
            getrandom_fill(&mut secret)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::Storage(e.to_string()))?;
            }
            cairn_auth::write_private(path, URL_SAFE_NO_PAD.encode(&secret).as_bytes())
                .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
            Ok(secret)
        }
        Err(e) => Err(Error::Storage(format!("{}: {e}", path.display()))),
    }
}

fn getrandom_fill(buffer: &mut [u8]) -> Result<()> {
    getrandom::fill(buffer).map_err(|e| Error::Storage(format!("no randomness for the link key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_refused_when_expired_altered_or_foreign() {
        let key = LinkKey::new(&[7; 32]).unwrap();
        let claims = LinkClaims { k: "p/objects/1".into(), e: 1000 };
        let token = key.sign(&claims);
        assert_eq!(key.verify(&token, 999).unwrap(), claims);
        assert!(matches!(key.verify(&token, 1000), Err(Error::LinkInvalid("this download link has expired"))));
        let (payload, signature) = token.split_once('.').unwrap();
        let other =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&LinkClaims { k: "p/objects/2".into(), e: 1000 }).unwrap());
        assert!(key.verify(&format!("{other}.{signature}"), 0).is_err(), "altered payload");
        let longer = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&LinkClaims { k: claims.k.clone(), e: 9999 }).unwrap());
        assert!(key.verify(&format!("{longer}.{signature}"), 0).is_err(), "extended expiry");
        let foreign = LinkKey::new(&[8; 32]).unwrap().sign(&claims);
        assert!(key.verify(&foreign, 0).is_err(), "another deployment's key");
        assert!(key.verify(payload, 0).is_err() && key.verify("", 0).is_err() && key.verify("a.b", 0).is_err());
    }
}
