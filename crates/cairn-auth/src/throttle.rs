//! Fixed-window counters on the bus cache: in-process for one server, in
//! Redis for several, so a limit holds across every gateway.

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

/// Whose counter: a name (an address, an email) or an id.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Whose<'a> {
    Text(&'a str),
    Id(uuid::Uuid),
}

/// What a counter counts: `scope` names the kind of limit, the second part whose.
pub(crate) type Subject<'a> = (&'static str, Whose<'a>);

/// The counter's key for the current window (`limit:{scope}:{id}:{window}:{index}`)
/// and the time until the window ends. Rate limits build two keys on every
/// API request, so the key is joined from its parts rather than formatted.
fn window_key((scope, whose): Subject<'_>, limit: Limit) -> (String, Duration) {
    let window = limit.window.as_secs().max(1);
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0).unsigned_abs();
    let reset = Duration::from_secs(window - now % window);
    let mut uuid = uuid::Uuid::encode_buffer();
    let id = match whose {
        Whose::Text(text) => text,
        Whose::Id(id) => id.hyphenated().encode_lower(&mut uuid),
    };
    let (mut window_text, mut index_text) = (itoa::Buffer::new(), itoa::Buffer::new());
    let parts = ["limit:", scope, ":", id, ":", window_text.format(window), ":", index_text.format(now / window)];
    (parts.concat(), reset)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_scope_the_subject_and_the_window() {
        let id = uuid::Uuid::now_v7();
        let limit = Limit { max: 10, window: Duration::from_secs(60) };
        let before = time::OffsetDateTime::now_utc().unix_timestamp().unsigned_abs() / 60;
        let (key, reset) = window_key(("rate:user", Whose::Id(id)), limit);
        let after = time::OffsetDateTime::now_utc().unix_timestamp().unsigned_abs() / 60;
        // The same keys as before they were joined by hand, so counters in
        // Redis carry on across an upgrade.
        assert!([before, after].iter().any(|index| key == format!("limit:rate:user:{id}:60:{index}")), "{key}");
        assert!(reset > Duration::ZERO && reset <= Duration::from_secs(60));
        let (key, _) = window_key(("rate:addr", Whose::Text("203.0.113.7")), Limit { window: Duration::ZERO, ..limit });
        assert!(key.starts_with("limit:rate:addr:203.0.113.7:1:"), "{key}");
        assert!(key.rsplit(':').next().is_some_and(|index| index.parse::<u64>().is_ok()), "{key}");
    }
}
