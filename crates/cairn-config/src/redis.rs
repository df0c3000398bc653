//! `[redis]`: the distributed bus (empty: the in-process one).

use serde::{Deserialize, Serialize};

use crate::{Error, Result, SecretUrl};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://…` or `rediss://…`; empty for the in-process bus.
    pub url: SecretUrl,
    /// Prefix of every key Cairn writes, so several deployments can share a server.
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig { url: SecretUrl::default(), prefix: "cairn".to_owned() }
    }
}

impl RedisConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let url = self.url.expose();
        if !(url.is_empty() || url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(Error::Invalid {
                key: "redis.url",
                expected: "empty (in-process bus) or a redis:// or rediss:// URL",
                got: self.url.redacted(),
            });
        }
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(Error::Invalid {
                key: "redis.prefix",
                expected: "a non-empty prefix without spaces",
                got: self.prefix.clone(),
            });
        }
        Ok(())
    }
}
