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

/// A URL from configuration that may carry credentials (a database, Redis,
/// an SMTP server, a package index): `postgres://cairn:PASSWORD@db/cairn`.
///
/// `Debug`, `Display` and serialization show it with its secrets replaced by
/// [`REDACTED`] (see [`SecretUrl::redacted`]), so logs, errors and dumps of
/// the configuration still name the host; the URL itself leaves only through
/// [`SecretUrl::expose`]. It deserializes from a plain string.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

/// Query parameters whose values are secrets: any name containing one of
/// these (`password`, `sslpassword`, `access_token`, `api_key`, …).
const SECRET_PARAMETERS: [&str; 4] = ["pass", "secret", "token", "key"];

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> SecretUrl {
        SecretUrl(value.into())
    }

    /// The URL with its credentials, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URL as it may be shown: the password of its user information
    /// redacted (the whole user information when it has no password, as a
    /// lone token is often the secret), and the values of query parameters
    /// that name a password, secret, token or key. Redacts too much rather
    /// than too little: the user information ends at the last `@` before
    /// the query, so a password with an unescaped `/` is hidden whole.
    pub fn redacted(&self) -> String {
        let url = self.0.as_str();
        let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
        let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
        let (before_query, tail) = rest.split_at(query_at);
        let mut shown = String::with_capacity(url.len());
        shown.push_str(scheme);
        shown.push_str("://");
        match before_query.rsplit_once('@') {
            Some((userinfo, host_and_path)) => {
                if let Some((user, _)) = userinfo.split_once(':') {
                    shown.push_str(user);
                    shown.push(':');
                }
                shown.push_str(REDACTED);
                shown.push('@');
                shown.push_str(host_and_path);
            }
            None => shown.push_str(before_query),
        }
        let (query, fragment) = match tail.split_once('#') {
            Some((query, fragment)) => (query, Some(fragment)),
            None => (tail, None),
        };
        if let Some(query) = query.strip_prefix('?') {
            shown.push('?');
            for (index, pair) in query.split('&').enumerate() {
                if index > 0 {
                    shown.push('&');
                }
                match pair.split_once('=') {
                    Some((name, _)) if is_secret_parameter(name) => {
                        shown.push_str(name);
                        shown.push('=');
                        shown.push_str(REDACTED);
                    }
                    _ => shown.push_str(pair),
                }
            }
        }
        if let Some(fragment) = fragment {
            shown.push('#');
            shown.push_str(fragment);
        }
        shown
    }
}

fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMETERS.iter().any(|secret| name.contains(secret))
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl From<String> for SecretUrl {
    fn from(value: String) -> SecretUrl {
        SecretUrl(value)
    }
}

impl From<&str> for SecretUrl {
    fn from(value: &str) -> SecretUrl {
        SecretUrl(value.to_owned())
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

    #[test]
    fn a_url_shows_its_host_but_not_its_credentials() {
        let cases = [
            ("postgres://cairn:hunter2@db:5432/cairn", "postgres://cairn:[redacted]@db:5432/cairn"),
            ("postgres://cairn@db/cairn", "postgres://[redacted]@db/cairn"),
            ("redis://:hunter2@cache:6379/0", "redis://:[redacted]@cache:6379/0"),
            ("smtps://mailer:p%40ss@smtp.example.com:465", "smtps://mailer:[redacted]@smtp.example.com:465"),
            ("https://TOKEN123@index.example.com/simple", "https://[redacted]@index.example.com/simple"),
            // An unescaped `/` or `@` in the password: hidden whole all the same.
            ("postgres://u:pa/ss@db/cairn", "postgres://u:[redacted]@db/cairn"),
            ("postgres://u:p@ss@db/cairn", "postgres://u:[redacted]@db/cairn"),
            (
                "postgres://db/cairn?sslmode=require&password=hunter2&API_KEY=k#frag",
                "postgres://db/cairn?sslmode=require&password=[redacted]&API_KEY=[redacted]#frag",
            ),
            ("https://pypi.org/simple", "https://pypi.org/simple"),
            ("sqlite://./data/cairn.db", "sqlite://./data/cairn.db"),
            ("sqlite:cairn.db", "sqlite:cairn.db"),
            ("", ""),
        ];
        for (url, shown) in cases {
            let secret = SecretUrl::from(url);
            assert_eq!(secret.redacted(), shown, "{url}");
            assert_eq!(secret.to_string(), shown);
            assert_eq!(format!("{secret:?}"), format!("{shown:?}"));
            assert_eq!(figment::value::Value::serialize(&secret).unwrap().into_string().unwrap(), shown);
            assert_eq!(secret.expose(), url);
        }
    }
}
