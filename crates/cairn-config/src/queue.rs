//! `[queue]`: the durable work queue's leases and retries.

use serde::{Deserialize, Serialize};

use crate::{Result, refuse_zero};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Seconds a worker may hold a job without a heartbeat before another takes it.
    pub lease_secs: u64,
    /// Deliveries after which a failing job is set aside as a dead letter.
    pub max_deliveries: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { lease_secs: 30, max_deliveries: 5 }
    }
}

impl QueueConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        refuse_zero([
            ("queue.lease_secs", self.lease_secs, "at least 1 second"),
            ("queue.max_deliveries", self.max_deliveries.into(), "at least 1"),
        ])
    }
}
