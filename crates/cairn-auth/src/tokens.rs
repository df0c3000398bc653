//! Access tokens: JWTs signed with HMAC-SHA256 (the one algorithm accepted),
//! carrying the key id so keys can rotate. Refresh, recovery and API-key
//! secrets are opaque random strings; only their SHA-256 is stored.
//!
//! The JWT is parsed strictly, by hand, over RustCrypto's HMAC: the header
//! must say exactly `HS256` (so `none` in any casing, and every other
//! algorithm, is refused before any key is touched), name a known `kid`, and
//! the signature is compared in constant time before the payload is read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_core::{SessionId, UserId};
use hmac::Mac as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::SigningKeys;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: UserId,
    /// The sign-in session the token belongs to.
    pub sid: SessionId,
    /// The user's token version when it was issued.
    pub ver: i64,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Always `access`.
    pub typ: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<serde_json::Value>,
}

/// How far a `nbf` in the future is tolerated (clocks of several gateways drift).
const CLOCK_SKEW_SECS: i64 = 5;

pub(crate) fn sign(keys: &SigningKeys, claims: &AccessClaims) -> String {
    let (kid, mac) = keys.signing();
    let header = Header { alg: "HS256".to_owned(), typ: Some("JWT".to_owned()), kid: Some(kid.to_owned()), crit: None };
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut mac = mac.clone();
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Checks signature and claims; the error says why the token is refused.
pub(crate) fn verify(
    keys: &SigningKeys,
    token: &str,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<AccessClaims, &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not a JWT");
    };
    let header: Header = decode_json(header).ok_or("the token header is malformed")?;
    if header.alg != "HS256" {
        return Err("the token's algorithm is not accepted");
    }
    if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) || header.crit.is_some() {
        return Err("the token header is not accepted");
    }
    let mac = header.kid.as_deref().and_then(|kid| keys.verifying(kid)).ok_or("the token's signing key is unknown")?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "the token signature is malformed")?;
    let mut mac = mac.clone();
    mac.update(&token.as_bytes()[..header_and_payload_len(token)]);
    mac.verify_slice(&signature).map_err(|_| "the token signature is wrong")?;
    let claims: AccessClaims = decode_json(payload).ok_or("the token claims are malformed")?;
    if claims.typ != "access" {
        return Err("not an access token");
    }
    if claims.iss != issuer {
        return Err("the token was issued by someone else");
    }
    if claims.aud != audience {
        return Err("the token is meant for someone else");
    }
    Checked::from(&claims).current(now)?;
    Ok(claims)
}

/// What an access token says once its signature and fixed claims passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Checked {
    pub sub: UserId,
    pub sid: SessionId,
    pub ver: i64,
    nbf: i64,
    exp: i64,
}

impl From<&AccessClaims> for Checked {
    fn from(claims: &AccessClaims) -> Checked {
        Checked { sub: claims.sub, sid: claims.sid, ver: claims.ver, nbf: claims.nbf, exp: claims.exp }
    }
}

impl Checked {
    /// The checks that depend on the time, made on every use.
    fn current(self, now: i64) -> Result<Checked, &'static str> {
        if now >= self.exp {
            return Err("the token has expired");
        }
        if now + CLOCK_SKEW_SECS < self.nbf {
            return Err("the token is not valid yet");
        }
        Ok(self)
    }
}

/// Past this many remembered tokens, expired ones are swept out (and, if
/// that is not enough, all are forgotten).
const REMEMBERED_TOKENS: usize = 10_000;

/// Access tokens already verified. A client sends the same token with every
/// request until it expires: its signature, algorithm, key, issuer, audience
/// and type are checked once (they cannot change for the same string, and
/// the signing keys are fixed while the process runs); expiry and
/// not-before on every use. Only tokens that passed are remembered, so
/// garbage cannot fill it. Entries are found by the signature (hashing a
/// few dozen bytes, not the whole token on every request) and the whole
/// token is compared before an entry counts.
#[derive(Debug, Default)]
pub(crate) struct VerifiedTokens {
    entries: std::sync::RwLock<std::collections::HashMap<Box<str>, Remembered>>,
}

/// A remembered token, whole, and what it says.
type Remembered = (Box<str>, Checked);

impl VerifiedTokens {
    pub(crate) fn verify(
        &self,
        keys: &SigningKeys,
        token: &str,
        issuer: &str,
        audience: &str,
        now: i64,
    ) -> Result<Checked, &'static str> {
        let signature = &token[header_and_payload_len(token)..];
        let known = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(signature)
            .filter(|(whole, _)| **whole == *token)
            .map(|(_, checked)| *checked);
        if let Some(checked) = known {
            return checked.current(now);
        }
        let checked = Checked::from(&verify(keys, token, issuer, audience, now)?);
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= REMEMBERED_TOKENS {
            entries.retain(|_, (_, checked)| checked.exp > now);
            if entries.len() >= REMEMBERED_TOKENS {
                entries.clear();
            }
        }
        entries.insert(signature.into(), (token.into(), checked));
        Ok(checked)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `bytes` random bytes from the operating system, base64url-encoded.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // The OS random source does not fail on the platforms Cairn runs on; if it
    // ever did, refusing to issue credentials is the only safe answer.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buffer).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(buffer)
}

/// A new secret for a link anyone holding it may open (a shared run), and
/// the digest to store in its place.
pub fn link_secret() -> (String, Vec<u8>) {
    let token = random_token(32);
    let stored = digest(&token);
    (token, stored)
}

/// The stored digest of a link's secret, to look it up by.
pub fn link_digest(token: &str) -> Vec<u8> {
    digest(token)
}

/// SHA-256 of a secret, as stored. High-entropy secrets need no slow hash.
pub(crate) fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use cairn_config::SigningKey;

    use super::*;

    fn keys(kid: &str, secret_byte: u8) -> SigningKeys {
        let secret = URL_SAFE_NO_PAD.encode([secret_byte; 32]);
        SigningKeys::from_config(&[SigningKey { kid: kid.to_owned(), secret: secret.into() }]).unwrap()
    }

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "cairn".into(),
            aud: "cairn-api".into(),
            sub: UserId::new(),
            sid: SessionId::new(),
            ver: 0,
            iat: now,
            nbf: now,
            exp: now + 900,
            typ: "access".into(),
        }
    }

    fn forge(header: &str, claims: &AccessClaims, signature: &[u8]) -> String {
        let header = URL_SAFE_NO_PAD.encode(header);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    const NOW: i64 = 1_800_000_000;

    fn check(keys: &SigningKeys, token: &str) -> Result<AccessClaims, &'static str> {
        verify(keys, token, "cairn", "cairn-api", NOW)
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips() {
        let keys = keys("k1", 7);
        let claims = claims(NOW);
        assert_eq!(check(&keys, &sign(&keys, &claims)), Ok(claims));
    }

    #[test]
    fn the_none_algorithm_is_refused_in_any_casing() {
        let keys = keys("k1", 7);
        for alg in ["none", "None", "NONE", "nOnE"] {
            let token = forge(&format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#), &claims(NOW), b"");
            assert_eq!(check(&keys, &token), Err("the token's algorithm is not accepted"), "{alg}");
            let unsigned = token.trim_end_matches('.').to_owned() + ".";
            assert!(check(&keys, &unsigned).is_err());
        }
    }

    #[test]
    fn other_algorithms_and_keys_are_refused() {
        let keys = keys("k1", 7);
        let signed = sign(&keys, &claims(NOW));
        let (_, rest) = signed.split_once('.').unwrap();
        for alg in ["HS512", "RS256", "hs256", "ES256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#));
            assert!(check(&keys, &format!("{header}.{rest}")).is_err(), "{alg}");
        }
        let other = keys_with_same_kid();
        assert_eq!(check(&keys, &sign(&other, &claims(NOW))), Err("the token signature is wrong"));
        let unknown = super::tests::keys("k2", 7);
        assert_eq!(check(&keys, &sign(&unknown, &claims(NOW))), Err("the token's signing key is unknown"));
    }

    fn keys_with_same_kid() -> SigningKeys {
        keys("k1", 8)
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let keys = keys("k1", 7);
        let token = sign(&keys, &claims(NOW));
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut raised = claims(NOW);
        raised.sub = UserId::new();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&raised).unwrap());
        parts[1] = &payload;
        assert_eq!(check(&keys, &parts.join(".")), Err("the token signature is wrong"));
    }

    #[test]
    fn time_issuer_audience_and_type_are_checked() {
        let keys = keys("k1", 7);
        type Change = fn(&mut AccessClaims);
        let cases: Vec<(Change, &str)> = vec![
            (|c| c.exp = NOW - 1, "the token has expired"),
            (|c| c.exp = NOW, "the token has expired"),
            (|c| c.nbf = NOW + 60, "the token is not valid yet"),
            (|c| c.iss = "someone-else".into(), "the token was issued by someone else"),
            (|c| c.aud = "other-api".into(), "the token is meant for someone else"),
            (|c| c.typ = "refresh".into(), "not an access token"),
        ];
        for (change, expected) in cases {
            let mut c = claims(NOW);
            change(&mut c);
            assert_eq!(check(&keys, &sign(&keys, &c)), Err(expected));
        }
        let mut skewed = claims(NOW);
        skewed.nbf = NOW + 3;
        assert!(check(&keys, &sign(&keys, &skewed)).is_ok(), "small clock skew is tolerated");
    }

    #[test]
    fn a_remembered_token_is_still_refused_once_it_expires_and_forgeries_are_never_remembered() {
        let keys = keys("k1", 7);
        let remembered = VerifiedTokens::default();
        let claims = claims(NOW);
        let token = sign(&keys, &claims);
        let first = remembered.verify(&keys, &token, "cairn", "cairn-api", NOW).unwrap();
        assert_eq!((first.sub, first.sid, first.ver), (claims.sub, claims.sid, claims.ver));
        assert_eq!(remembered.verify(&keys, &token, "cairn", "cairn-api", NOW + 10), Ok(first));
        assert_eq!(
            remembered.verify(&keys, &token, "cairn", "cairn-api", claims.exp),
            Err("the token has expired"),
            "expiry is checked on every use"
        );
        assert_eq!(remembered.len(), 1);
        // A changed character anywhere is another string: checked in full, refused, not kept.
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(remembered.verify(&keys, &tampered, "cairn", "cairn-api", NOW).is_err());
        let other = keys_with_same_kid();
        let forged = sign(&other, &claims);
        assert_eq!(remembered.verify(&keys, &forged, "cairn", "cairn-api", NOW), Err("the token signature is wrong"));
        assert_eq!(remembered.len(), 1, "only verified tokens are remembered");
        // Other claims under the remembered signature: found by the signature, refused as a whole.
        let mut other_claims = self::claims(NOW);
        other_claims.iat = NOW - 1;
        let other_token = sign(&keys, &other_claims);
        let (signed_part, _) = other_token.rsplit_once('.').unwrap();
        let (_, signature) = token.rsplit_once('.').unwrap();
        let spliced = format!("{signed_part}.{signature}");
        assert_eq!(remembered.verify(&keys, &spliced, "cairn", "cairn-api", NOW), Err("the token signature is wrong"));
        assert_eq!(remembered.len(), 1);
        // Not valid yet: refused, and so not remembered until it is.
        let mut later = self::claims(NOW);
        later.nbf = NOW + 60;
        let early = sign(&keys, &later);
        assert_eq!(remembered.verify(&keys, &early, "cairn", "cairn-api", NOW), Err("the token is not valid yet"));
        assert!(remembered.verify(&keys, &early, "cairn", "cairn-api", NOW + 60).is_ok());
        assert_eq!(remembered.len(), 2);
    }

    #[test]
    fn the_remembered_tokens_stay_bounded() {
        let keys = keys("k1", 7);
        let remembered = VerifiedTokens::default();
        for i in 0..(REMEMBERED_TOKENS + 5) {
            let mut c = claims(NOW);
            c.iat = NOW - i as i64;
            remembered.verify(&keys, &sign(&keys, &c), "cairn", "cairn-api", NOW).unwrap();
        }
        assert!(remembered.len() <= REMEMBERED_TOKENS, "{}", remembered.len());
    }

    #[test]
    fn garbage_is_refused() {
        let keys = keys("k1", 7);
        for token in ["", "a", "a.b", "a.b.c", "a.b.c.d", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", &random_token(32)] {
            assert!(check(&keys, token).is_err(), "{token:?}");
        }
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let (a, b) = (random_token(32), random_token(32));
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(digest(&a).len(), 32);
    }
}
