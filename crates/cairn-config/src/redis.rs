//! `[redis]`: the distributed bus (empty: the in-process one).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://…` or `rediss://…`; empty for the in-process bus.
    pub url: String,
    /// Prefix of every key Cairn writes, so several deployments can share a server.
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig { url: String::new(), prefix: "cairn".to_owned() }
    }
}

impl RedisConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let url = &self.url;
        if !(url.is_empty() || url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(Error::Invalid {
                key: "redis.url",
                expected: "empty (in-process bus) or a redis:// or rediss:// URL",
                got: url.clone(),
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
