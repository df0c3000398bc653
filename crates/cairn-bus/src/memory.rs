//! The in-process bus: pub/sub and cache for one process.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_core::bus::{BusHealth, Cache, PubSub};
use futures::stream::BoxStream;
use tokio::time::Instant;

use crate::topics::Topics;

/// Pub/sub within one process.
#[derive(Debug, Default)]
pub struct MemoryPubSub {
    topics: Topics,
}

#[async_trait]
impl PubSub for MemoryPubSub {
    async fn publish(&self, topic: &str, payload: Bytes) -> cairn_core::Result<()> {
        self.topics.deliver(topic, payload);
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> cairn_core::Result<BoxStream<'static, Bytes>> {
        Ok(self.topics.subscribe(topic).0)
    }
}

/// A cache within one process. Expired entries are dropped when read, and
/// swept out whenever the cache has doubled since the last sweep.
#[derive(Debug, Default)]
pub struct MemoryCache {
    state: Mutex<CacheState>,
}

/// A value, or a counter kept as a number: rate limits bump counters on
/// every request, which then costs no parsing and no allocation.
#[derive(Debug)]
enum Entry {
    Bytes(Bytes),
    Count(i64),
}

impl Entry {
    fn bytes(&self) -> Bytes {
        match self {
            Entry::Bytes(value) => value.clone(),
            Entry::Count(count) => Bytes::from(count.to_string()),
        }
    }
}

#[derive(Debug, Default)]
struct CacheState {
    entries: HashMap<String, (Entry, Instant)>,
    swept_at_len: usize,
}

impl CacheState {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut (Entry, Instant)> {
        if self.entries.get(key).is_some_and(|(_, expires)| *expires <= now) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn insert(&mut self, key: &str, value: Entry, expires: Instant, now: Instant) {
        self.entries.insert(key.to_owned(), (value, expires));
        if self.entries.len() >= 2 * self.swept_at_len.max(512) {
            self.entries.retain(|_, (_, expires)| *expires > now);
            self.swept_at_len = self.entries.len();
        }
    }
}

impl MemoryCache {
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> cairn_core::Result<Option<Bytes>> {
        Ok(self.lock().live(key, Instant::now()).map(|(value, _)| value.bytes()))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> cairn_core::Result<()> {
        let now = Instant::now();
        self.lock().insert(key, Entry::Bytes(value), now + ttl, now);
        Ok(())
    }

    async fn delete(&self, key: &str) -> cairn_core::Result<bool> {
        let mut state = self.lock();
        let existed = state.live(key, Instant::now()).is_some();
        state.entries.remove(key);
        Ok(existed)
    }

    async fn incr(&self, key: &str, ttl: Duration) -> cairn_core::Result<i64> {
        let now = Instant::now();
        let mut state = self.lock();
        // A live counter is bumped in place (one lookup, no new key).
        if let Some((value, expires)) = state.entries.get_mut(key)
            && *expires > now
        {
            let next = match value {
                Entry::Count(count) => *count + 1,
                // Like Redis, a value set as text counts on from its number.
                Entry::Bytes(text) => {
                    std::str::from_utf8(text).ok().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) + 1
                }
            };
            *value = Entry::Count(next);
            return Ok(next);
        }
        state.insert(key, Entry::Count(1), now + ttl, now);
        Ok(1)
    }
}

/// The in-process bus is always reachable.
#[derive(Debug)]
pub struct InProcessHealth;

#[async_trait]
impl BusHealth for InProcessHealth {
    fn backend(&self) -> &'static str {
        "in-process"
    }

    async fn ping(&self) -> cairn_core::Result<()> {
        Ok(())
    }
}
