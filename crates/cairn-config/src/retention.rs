//! `[retention]`: how long finished runs keep their step details, and the
//! audit log its entries. Zero keeps them for ever (the default): nothing is
//! removed unless configured. A run's answer, the messages and the files it
//! saved are never removed by retention.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, refuse_zero};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days a finished run keeps its step details (code, outputs,
    /// observations, checkpoints); a project's own setting wins. 0: for ever.
    pub step_details_days: u32,
    /// Days the audit log keeps an entry. 0: for ever.
    pub audit_days: u32,
    /// Seconds between two passes of the retention job.
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { step_details_days: 0, audit_days: 0, interval_secs: 3600 }
    }
}

impl RetentionConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        refuse_zero([("retention.interval_secs", self.interval_secs, "at least 1 second")])?;
        for (key, days) in
            [("retention.step_details_days", self.step_details_days), ("retention.audit_days", self.audit_days)]
        {
            if days > 36_500 {
                return Err(Error::Invalid { key, expected: "0 (for ever) to 36500 days", got: days.to_string() });
            }
        }
        Ok(())
    }
}
