//! [`Secret`]: a key, token or password from configuration, which shows
//! itself only through [`Secret::expose`].

use serde::{Deserialize, Serialize};

/// What `Debug`, `Display` and serialization show in place of a secret.
pub const REDACTED: &str = "[redacted]";

/// A secret read from configuration (an API key, a token, a signing key).
///
/// `Debug` and `Display` print [`REDACTED`], and so does serialization: the
/// value leaves only through [`Secret::expose`], which a reviewer can grep
/// for. An unset (empty) secret shows as empty, since there is nothing to
/// hide and "not configured" is worth seeing. It deserializes from a plain
/// string.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (a header, a key
    /// derivation). Never log it or send it to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is unset.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Its length in bytes, for checks and messages that say how long it is.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn shown(&self) -> &'static str {
        if self.0.is_empty() { "" } else { REDACTED }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.shown())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_shown_only_when_exposed() {
        let secret = Secret::from("sk-live-0123456789");
        assert_eq!(format!("{secret:?}"), "\"[redacted]\"");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(figment::value::Value::serialize(&secret).unwrap().into_string().unwrap(), "[redacted]");
        assert_eq!(secret.expose(), "sk-live-0123456789");
        assert_eq!(secret.len(), 18);
    }

    #[test]
    fn an_unset_secret_shows_as_empty() {
        let secret = Secret::default();
        assert_eq!(format!("{secret:?}"), "\"\"");
        assert_eq!(secret.to_string(), "");
        assert!(secret.is_empty());
    }

    #[test]
    fn a_secret_deserializes_from_a_plain_string() {
        let value = figment::value::Value::from("token-from-the-file");
        assert_eq!(value.deserialize::<Secret>().unwrap().expose(), "token-from-the-file");
    }
}
