//! Cairn's bus: events published to whoever listens, the durable work queue,
//! and the cache — in-process for the all-in-one shape, on Redis for the
//! distributed one. Both sit behind the traits of `cairn_core::bus`.
//!
//! Architecture invariant: nothing that must survive a crash lives only here.
//! Events are stored in the thread's log before they are published; the
//! in-process shape keeps its queue in the database (`cairn-store`), the
//! distributed shape in Redis Streams.

mod memory;
pub mod redis;
mod topics;

use std::sync::Arc;

use cairn_core::bus::{Bus, WorkQueue};

pub use memory::{InProcessHealth, MemoryCache, MemoryPubSub};

/// Why the bus could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Redis URL does not parse: a configuration error.
    #[error("the Redis URL is not valid: {0}")]
    Url(::redis::RedisError),
    /// Redis did not answer. Check that it runs and the URL.
    #[error("cannot connect to Redis: {0}")]
    Connect(::redis::RedisError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The all-in-one bus: pub/sub and cache in memory, the queue from the store.
pub fn in_process(queue: Arc<dyn WorkQueue>) -> Bus {
    Bus {
        pubsub: Arc::new(MemoryPubSub::default()),
        queue,
        cache: Arc::new(MemoryCache::default()),
        health: Arc::new(InProcessHealth),
    }
}
