//! Password policy and hashing. Hashes are argon2id with OWASP's recommended
//! parameters (19 MiB of memory, 2 passes, 1 lane), as PHC strings, so the
//! parameters can be raised later and old hashes still verify.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::{Error, Result};

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 256;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt").lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
});

fn hasher() -> Argon2<'static> {
    // These are argon2's defaults too; spelled out so a change of defaults
    // upstream cannot silently weaken or slow down hashing.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password: 8 to 256 characters, not one of the most common
/// passwords, and not the e-mail address (or its name part).
pub(crate) fn check(password: &str, email: &str) -> Result<()> {
    let chars = password.chars().count();
    let weak = |reason: String| Err(Error::WeakPassword { reason });
    if chars < MIN_PASSWORD_LEN {
        return weak(format!("the password must have at least {MIN_PASSWORD_LEN} characters"));
    }
    if chars > MAX_PASSWORD_LEN {
        return weak(format!("the password must have at most {MAX_PASSWORD_LEN} characters"));
    }
    let lower = password.to_lowercase();
    if COMMON.contains(lower.as_str()) {
        return weak("this password is one of the most common ones; choose another".to_owned());
    }
    let email = email.to_lowercase();
    let name = email.split('@').next().unwrap_or_default();
    if lower == email || (name.len() >= 4 && lower.contains(name)) {
        return weak("the password must not contain your e-mail address".to_owned());
    }
    if password.chars().all(|c| c == password.chars().next().unwrap_or(c)) {
        return weak("the password must not repeat one character".to_owned());
    }
    Ok(())
}

/// Hashes off the async executor: argon2 takes tens of milliseconds of CPU.
pub(crate) async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        hasher().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| internal(e.to_string()))
    })
    .await
    .map_err(|e| internal(e.to_string()))?
}

/// Verifies off the async executor. With `None` it checks against a fixed
/// hash, so an unknown account takes as long as a known one.
pub(crate) async fn verify(password: String, hash: Option<String>) -> Result<bool> {
    static DECOY: LazyLock<String> = LazyLock::new(|| {
        hasher().hash_password(b"decoy password for unknown accounts").map(|h| h.to_string()).unwrap_or_default()
    });
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DECOY.clone());
        let ok = hasher().verify_password(password.as_bytes(), hash.as_str()).is_ok();
        ok && known
    })
    .await
    .map_err(|e| internal(e.to_string()))
}

fn internal(detail: String) -> Error {
    Error::Backend(cairn_core::Error::Internal { dependency: cairn_core::Dependency::Database, detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all(cases: &[(&str, bool)]) {
        for (password, ok) in cases {
            assert_eq!(check(password, "ada.lovelace@example.com").is_ok(), *ok, "{password:?}");
        }
    }

    #[test]
    fn the_policy_refuses_short_long_common_and_personal_passwords() {
        check_all(&[
            ("short1!", false),
            ("exactly8", true),
            (&"x1".repeat(128), true),
            (&"x1".repeat(129), false),
            ("Password123", false),
            ("QWERTYUIOP", false),
            ("ada.lovelace@example.com", false),
            ("my-ada.lovelace-pass", false),
            ("aaaaaaaaaaaa", false),
            ("correct horse battery staple", true),
            ("Ünïcødé pässwörd", true),
        ]);
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hash = hash("correct horse".to_owned()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify("correct horse".to_owned(), Some(hash.clone())).await.unwrap());
        assert!(!verify("wrong horse".to_owned(), Some(hash)).await.unwrap());
        assert!(!verify("decoy password for unknown accounts".to_owned(), None).await.unwrap());
    }
}
