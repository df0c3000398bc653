//! `[webhooks]`: how project webhooks are delivered.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, refuse_zero};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Seconds between a failed attempt and the next, one per retry; after
    /// the last, the delivery fails (manual redelivery still works).
    pub retry_secs: Vec<u64>,
    /// How long one attempt may take, in seconds.
    pub timeout_secs: u64,
    /// Hours a rotated secret still signs, beside the new one.
    pub rotation_grace_hours: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        // Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
        // 10 h — a day and a few hours of retries.
        WebhooksConfig {
            retry_secs: vec![5, 300, 1_800, 7_200, 18_000, 36_000, 36_000],
            timeout_secs: 10,
            rotation_grace_hours: 24,
        }
    }
}

impl WebhooksConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        refuse_zero([
            ("webhooks.timeout_secs", self.timeout_secs, "at least 1 second"),
            ("webhooks.rotation_grace_hours", self.rotation_grace_hours, "at least 1 hour"),
        ])?;
        if self.retry_secs.len() > 20 || self.retry_secs.iter().any(|s| *s == 0 || *s > 7 * 86_400) {
            return Err(Error::Invalid {
                key: "webhooks.retry_secs",
                expected: "at most 20 delays, each from 1 second to 7 days",
                got: format!("{:?}", self.retry_secs),
            });
        }
        Ok(())
    }
}
