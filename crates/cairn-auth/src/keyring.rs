//! Sealing the provider keys administrators give the app: AES-256-GCM (aws-lc-rs)
//! under a key ring from `llm.secret_keys`, or a key generated into the data
//! folder (owner-only) on first use. The first key seals; every key opens, so
//! a new key is added first and the old one kept until every secret has been
//! sealed again (`needs_reseal`, done at start).
//!
//! A sealed secret is `kid length (1 byte) ‖ kid ‖ nonce (12 bytes) ‖
//! ciphertext and tag`; the kid is bound to it as associated data.

use std::collections::HashMap;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_config::SigningKey;

use crate::keys::{invalid, load_or_generate_keys};

const KEY_FILE: &str = "llm/secret-keys.json";

/// The keys that seal and open stored secrets.
pub struct KeyRing {
    sealing: String,
    keys: HashMap<String, LessSafeKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("sealing", &self.sealing).finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes)
}

impl KeyRing {
    /// Keys from configuration (base64url, at least 32 bytes; the first 32
    /// are the AES-256 key); the first one seals.
    pub fn from_config(keys: &[SigningKey]) -> std::io::Result<KeyRing> {
        let first = keys.first().ok_or_else(|| invalid("no secret key".to_owned()))?;
        let mut ring = HashMap::new();
        for key in keys {
            if key.kid.is_empty() || key.kid.len() > 64 {
                return Err(invalid(format!("secret key id `{}` must have 1 to 64 characters", key.kid)));
            }
            let secret = URL_SAFE_NO_PAD
                .decode(key.secret.expose().trim_end_matches('='))
                .map_err(|e| invalid(format!("secret key `{}` is not base64url: {e}", key.kid)))?;
            if secret.len() < 32 {
                return Err(invalid(format!("secret key `{}` is shorter than 32 bytes", key.kid)));
            }
            let unbound = UnboundKey::new(&AES_256_GCM, &secret[..32]).map_err(|e| invalid(e.to_string()))?;
            ring.insert(key.kid.clone(), LessSafeKey::new(unbound));
        }
        Ok(KeyRing { sealing: first.kid.clone(), keys: ring })
    }

    /// The ring kept in `data_dir`, made (owner-only) on first use.
    pub fn load_or_generate(data_dir: &Path) -> std::io::Result<KeyRing> {
        Self::from_config(&load_or_generate_keys(&data_dir.join(KEY_FILE), "the key that seals provider keys")?)
    }

    /// `secret` sealed under the first key.
    pub fn seal(&self, secret: &[u8]) -> std::io::Result<Vec<u8>> {
        let key = &self.keys[&self.sealing];
        let nonce = random::<NONCE_LEN>()?;
        let mut sealed = secret.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(self.sealing.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| invalid("sealing failed".to_owned()))?;
        let mut out = Vec::with_capacity(1 + self.sealing.len() + NONCE_LEN + sealed.len());
        out.push(self.sealing.len() as u8);
        out.extend_from_slice(self.sealing.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn parts<'a>(&self, sealed: &'a [u8]) -> std::io::Result<(&'a str, [u8; NONCE_LEN], &'a [u8])> {
        let broken = || invalid("the sealed secret is damaged".to_owned());
        let (&kid_len, rest) = sealed.split_first().ok_or_else(broken)?;
        let kid_len = usize::from(kid_len);
        if rest.len() < kid_len + NONCE_LEN {
            return Err(broken());
        }
        let kid = std::str::from_utf8(&rest[..kid_len]).map_err(|_| broken())?;
        let nonce: [u8; NONCE_LEN] = rest[kid_len..kid_len + NONCE_LEN].try_into().map_err(|_| broken())?;
        Ok((kid, nonce, &rest[kid_len + NONCE_LEN..]))
    }

    /// The secret, if one of the ring's keys sealed it and it is intact.
    pub fn open(&self, sealed: &[u8]) -> std::io::Result<Vec<u8>> {
        let (kid, nonce, ciphertext) = self.parts(sealed)?;
        let key = self.keys.get(kid).ok_or_else(|| {
            invalid(format!("the secret was sealed with key `{kid}`, which is not in llm.secret_keys"))
        })?;
        let mut buffer = ciphertext.to_vec();
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut buffer)
            .map_err(|_| invalid("the sealed secret does not open: altered, or another key".to_owned()))?;
        Ok(plain.to_vec())
    }

    /// Whether a secret was sealed under another key than the first.
    pub fn needs_reseal(&self, sealed: &[u8]) -> bool {
        self.parts(sealed).is_ok_and(|(kid, ..)| kid != self.sealing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, fill: u8) -> SigningKey {
        SigningKey { kid: kid.into(), secret: URL_SAFE_NO_PAD.encode([fill; 32]).into() }
    }

    #[test]
    fn sealed_secrets_open_after_rotation_and_not_when_altered() {
        let old = KeyRing::from_config(&[key("old", 1)]).unwrap();
        let sealed = old.seal(b"sk-secret").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"sk-secret"), "the secret is not in the clear");
        assert_eq!(old.open(&sealed).unwrap(), b"sk-secret");
        // Rotation: the new key first, the old one still opens.
        let rotated = KeyRing::from_config(&[key("new", 2), key("old", 1)]).unwrap();
        assert!(rotated.needs_reseal(&sealed));
        let resealed = rotated.seal(&rotated.open(&sealed).unwrap()).unwrap();
        assert!(!rotated.needs_reseal(&resealed));
        assert_eq!(KeyRing::from_config(&[key("new", 2)]).unwrap().open(&resealed).unwrap(), b"sk-secret");
        // Without the old key, the old ciphertext does not open; altered bytes never do.
        assert!(KeyRing::from_config(&[key("new", 2)]).unwrap().open(&sealed).is_err());
        let mut altered = resealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(rotated.open(&altered).is_err());
        // A kid swapped in front does not move the secret to another key.
        let mut relabelled = sealed.clone();
        relabelled[1..4].copy_from_slice(b"new");
        assert!(rotated.open(&relabelled).is_err());
    }

    #[test]
    fn a_generated_key_file_reads_back_the_same_key() {
        let dir = cairn_testkit::TempDir::new("keyring");
        let sealed = KeyRing::load_or_generate(&dir.path).unwrap().seal(b"sk-secret").unwrap();
        let again = KeyRing::load_or_generate(&dir.path).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"sk-secret");
    }
}
