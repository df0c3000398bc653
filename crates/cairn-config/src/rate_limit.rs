//! `[rate_limit]`: requests per minute and failed sign-ins.

use serde::{Deserialize, Serialize};

use crate::{Result, refuse_zero};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// API requests per minute for one signed-in user.
    pub per_user_per_minute: u64,
    /// API requests per minute for one API key.
    pub per_api_key_per_minute: u64,
    /// API requests per minute from one client address.
    pub per_address_per_minute: u64,
    /// Failed sign-ins per account before it is throttled.
    pub sign_in_failures_per_account: u64,
    /// Failed sign-ins from one client address before it is throttled.
    pub sign_in_failures_per_address: u64,
    /// The window of the failed sign-in limits, in seconds.
    pub sign_in_window_secs: u64,
    /// Take the client address from this header (set by a trusted reverse
    /// proxy, e.g. `x-forwarded-for`) instead of the connection.
    pub client_address_header: String,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_user_per_minute: 1200,
            per_api_key_per_minute: 1200,
            per_address_per_minute: 2400,
            sign_in_failures_per_account: 5,
            sign_in_failures_per_address: 20,
            sign_in_window_secs: 900,
            client_address_header: String::new(),
        }
    }
}

impl RateLimitConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        refuse_zero([
            ("rate_limit.per_user_per_minute", self.per_user_per_minute, "at least 1"),
            ("rate_limit.per_api_key_per_minute", self.per_api_key_per_minute, "at least 1"),
            ("rate_limit.per_address_per_minute", self.per_address_per_minute, "at least 1"),
            ("rate_limit.sign_in_failures_per_account", self.sign_in_failures_per_account, "at least 1"),
            ("rate_limit.sign_in_failures_per_address", self.sign_in_failures_per_address, "at least 1"),
            ("rate_limit.sign_in_window_secs", self.sign_in_window_secs, "at least 1 second"),
        ])
    }
}
