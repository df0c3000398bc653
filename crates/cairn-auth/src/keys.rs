//! The HMAC keys that sign access tokens. The first key signs; every key
//! verifies, so a new key can be put first while tokens signed with the old
//! one stay valid until they expire (rotation without logging anyone out).

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_config::SigningKey;
use hmac::{Hmac, KeyInit};
use sha2::Sha256;

pub(crate) type Mac = Hmac<Sha256>;

#[derive(Clone)]
pub struct SigningKeys {
    signing_kid: String,
    macs: HashMap<String, Mac>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<_> = self.macs.keys().collect();
        kids.sort();
        f.debug_struct("SigningKeys").field("signing_kid", &self.signing_kid).field("kids", &kids).finish()
    }
}

/// The file a generated key is kept in, inside the data dir.
const KEY_FILE: &str = "auth/signing-keys.json";

/// A key file, `{"keys": [{"kid": …, "secret": …}]}`. The file is where a
/// generated key lives (owner-only), so it holds the secret in clear, which
/// `SigningKey` never serializes.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    kid: String,
    secret: String,
}

impl SigningKeys {
    /// Keys from configuration; the first one signs.
    pub fn from_config(keys: &[SigningKey]) -> std::io::Result<SigningKeys> {
        let first = keys.first().ok_or_else(|| invalid("no signing key".to_owned()))?;
        let mut macs = HashMap::new();
        for key in keys {
            let secret = URL_SAFE_NO_PAD
                .decode(key.secret.expose().trim_end_matches('='))
                .map_err(|e| invalid(format!("signing key `{}` is not base64url: {e}", key.kid)))?;
            if secret.len() < 32 {
                return Err(invalid(format!("signing key `{}` is shorter than 32 bytes", key.kid)));
            }
            let mac = Mac::new_from_slice(&secret).map_err(|e| invalid(e.to_string()))?;
            macs.insert(key.kid.clone(), mac);
        }
        Ok(SigningKeys { signing_kid: first.kid.clone(), macs })
    }

    /// The keys kept in `data_dir`, made (with owner-only permissions) on first use.
    pub fn load_or_generate(data_dir: &Path) -> std::io::Result<SigningKeys> {
        Self::from_config(&load_or_generate_keys(&data_dir.join(KEY_FILE), "the access-token signing key")?)
    }

    pub(crate) fn signing(&self) -> (&str, &Mac) {
        // The signing kid is always one of the keys (see the constructors).
        (&self.signing_kid, &self.macs[&self.signing_kid])
    }

    pub(crate) fn verifying(&self, kid: &str) -> Option<&Mac> {
        self.macs.get(kid)
    }
}

/// The keys of a key file, or one key generated into it (owner-only) when
/// there is no file yet; `what` names the key in the log.
pub(crate) fn load_or_generate_keys(path: &Path, what: &str) -> std::io::Result<Vec<SigningKey>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("{} is not a key file: {e}", path.display())))?;
            Ok(file.keys.into_iter().map(|k| SigningKey { kid: k.kid, secret: k.secret.into() }).collect())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key =
                SigningKey { kid: crate::tokens::random_token(9), secret: crate::tokens::random_token(32).into() };
            let stored = StoredKey { kid: key.kid.clone(), secret: key.secret.expose().to_owned() };
            let json = serde_json::to_vec_pretty(&KeyFile { keys: vec![stored] }).map_err(std::io::Error::other)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_private(path, &json)?;
            tracing::info!(path = %path.display(), kid = %key.kid, "generated {what}");
            Ok(vec![key])
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Creates a file only its owner can read (a secret Cairn generated and
/// keeps); fails if it exists.
#[cfg(unix)]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
