//! Fixed-window counters on the bus cache: in-process for one server, in
//! Redis for several, so a limit holds across every gateway.

use std::fmt::Display;
use std::time::Duration;

use cairn_core::bus::Cache;

use crate::Result;

/// At most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u64,
    pub window: Duration,
}

/// Where a counter stands, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitStatus {
    pub limit: u64,
    pub remaining: u64,
    /// Until the window ends and the count starts again.
    pub reset: Duration,
    /// Whether this event was within the limit.
    pub allowed: bool,
}

/// What a counter counts: `scope` names the kind of limit, `id` whose.
pub(crate) type Subject<'a> = (&'static str, &'a (dyn Display + Sync));

fn window_key((scope, id): Subject<'_>, limit: Limit) -> (String, Duration) {
    let window = limit.window.as_secs().max(1);
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0).unsigned_abs();
    let reset = Duration::from_secs(window - now % window);
    (format!("limit:{scope}:{id}:{window}:{}", now / window), reset)
}

fn status(count: u64, limit: Limit, reset: Duration, allowed: bool) -> RateLimitStatus {
    RateLimitStatus { limit: limit.max, remaining: limit.max.saturating_sub(count), reset, allowed }
}

/// Counts one event and says whether it was within the limit.
pub(crate) async fn hit(cache: &dyn Cache, subject: Subject<'_>, limit: Limit) -> Result<RateLimitStatus> {
    let (key, reset) = window_key(subject, limit);
    let count = cache.incr(&key, reset + Duration::from_secs(1)).await?.max(0).unsigned_abs();
    Ok(status(count, limit, reset, count <= limit.max))
}

/// Whether one more event would still be within the limit, without counting it.
pub(crate) async fn check(cache: &dyn Cache, subject: Subject<'_>, limit: Limit) -> Result<RateLimitStatus> {
    let (key, reset) = window_key(subject, limit);
    let count = match cache.get(&key).await? {
        Some(value) => std::str::from_utf8(&value).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
        None => 0,
    };
    Ok(status(count, limit, reset, count < limit.max))
}
