//! Accounts as authentication sees them, kept briefly in memory so that a
//! busy client does not cost a database read per request.
//!
//! Every change that matters to authentication (disabled, admin role,
//! password) evicts the account here and, through the bus, on every other
//! gateway, so it takes effect at once. The short lifetime bounds how stale
//! an entry can be should an eviction message be lost (pub/sub is
//! best-effort). A load that raced with an eviction is not cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cairn_core::UserId;
use cairn_core::model::User;

/// The bus topic on which gateways announce changed accounts.
pub(crate) const TOPIC: &str = "auth.user-changed";

/// How long an account may be served from memory.
const TTL: Duration = Duration::from_secs(2);

/// Past this many entries, expired ones are swept out.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct UserCache {
    entries: Mutex<HashMap<UserId, (Arc<User>, Instant)>>,
    /// Goes up on every eviction; a load that began before it moved is stale.
    epoch: AtomicU64,
}

impl UserCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, (Arc<User>, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh entry, if there is one.
    pub(crate) fn get(&self, id: UserId) -> Option<Arc<User>> {
        let entries = self.lock();
        entries.get(&id).filter(|(_, at)| at.elapsed() < TTL).map(|(user, _)| Arc::clone(user))
    }

    /// Call before loading; pass the result to `put`.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Keeps a loaded account, unless an eviction happened since `epoch`.
    pub(crate) fn put(&self, epoch: u64, user: Arc<User>) {
        let mut entries = self.lock();
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        entries.insert(user.id, (user, Instant::now()));
    }

    pub(crate) fn evict(&self, id: UserId) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: UserId::new(),
            email: "a@example.com".into(),
            display_name: "A".into(),
            password_hash: String::new(),
            is_admin: false,
            disabled: false,
            token_version: 0,
            created_at: time::OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn an_eviction_removes_the_entry_and_voids_loads_in_flight() {
        let cache = UserCache::default();
        let u = user();
        let before = cache.epoch();
        let u = Arc::new(u);
        cache.put(before, u.clone());
        assert_eq!(cache.get(u.id), Some(u.clone()));
        let loading = cache.epoch();
        cache.evict(u.id);
        assert_eq!(cache.get(u.id), None);
        cache.put(loading, u.clone());
        assert_eq!(cache.get(u.id), None, "a load that raced with the eviction is not kept");
        cache.put(cache.epoch(), u.clone());
        assert_eq!(cache.get(u.id), Some(u));
    }
}
