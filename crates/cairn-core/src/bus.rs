//! The bus: events published to whoever listens, a durable work queue, and a
//! cache. In-process implementations serve the all-in-one shape; Redis ones
//! serve the distributed shape. A contract test suite holds both to the same
//! behaviour.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::Result;

/// Publish/subscribe of events by topic. Delivery is best-effort and live
/// only: a subscriber sees what is published after it subscribed, while it
/// stays connected. Whatever must not be lost is stored first (the thread's
/// event log) and published second.
#[async_trait]
pub trait PubSub: Send + Sync + fmt::Debug {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<()>;
    /// A stream of the payloads published to `topic` from now on. The
    /// subscription is active when this returns.
    async fn subscribe(&self, topic: &str) -> Result<BoxStream<'static, Bytes>>;
}

/// A job taken from a [`WorkQueue`]; hand it back with `ack` or `nack`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Opaque, backend-specific id of the job.
    pub id: String,
    pub queue: String,
    /// The consumer that holds it.
    pub consumer: String,
    pub payload: Bytes,
    /// 1 on the first delivery, 2 on the first redelivery, and so on.
    pub attempt: u32,
    /// Its lease ran out on its last allowed delivery (its consumers kept
    /// dying or stopped answering): it is handed out once more only so the
    /// consumer can record that the work could not be done, never to work
    /// it again; `nack` then sets it aside among the dead letters.
    pub exhausted: bool,
}

/// A job that was delivered too many times and set aside.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadJob {
    pub id: String,
    pub payload: Bytes,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// How a queue treats work. Set once, when the queue is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// A consumer that holds a job this long without `ack`, `nack` or
    /// `extend` is taken for dead and the job is delivered again.
    pub lease: Duration,
    /// After this many deliveries without `ack`, the job goes to the dead letters.
    pub max_deliveries: u32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions { lease: Duration::from_secs(30), max_deliveries: 5 }
    }
}

/// A durable work queue with acknowledgement: a job survives the crash of
/// the process that enqueued it and of the consumer that took it.
#[async_trait]
pub trait WorkQueue: Send + Sync + fmt::Debug {
    async fn enqueue(&self, queue: &str, payload: Bytes) -> Result<String>;
    /// Takes the next job: one whose lease ran out first, else the oldest
    /// waiting one. Waits up to `wait` for one to arrive; `None` if none did.
    /// A job whose lease ran out on its last allowed delivery comes back
    /// once more marked [`Delivery::exhausted`]; should that delivery's
    /// lease run out too, the job goes to the dead letters unannounced.
    async fn take(&self, queue: &str, consumer: &str, wait: Duration) -> Result<Option<Delivery>>;
    /// The job is done; it will not be delivered again.
    async fn ack(&self, delivery: &Delivery) -> Result<()>;
    /// The job failed; deliver it again after `delay` (at most the lease),
    /// or set it aside if it was delivered `max_deliveries` times.
    async fn nack(&self, delivery: &Delivery, delay: Duration, error: &str) -> Result<()>;
    /// Still working on it: restart the lease.
    async fn extend(&self, delivery: &Delivery) -> Result<()>;
    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadJob>>;
    /// Where the queue stands (for the metrics).
    async fn stats(&self, queue: &str) -> Result<QueueStats>;
}

/// Where a queue stands.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueStats {
    /// Jobs waiting to be taken (on the embedded queue, a retry waiting out
    /// its delay too).
    pub ready: u64,
    /// Jobs taken and not yet acknowledged (on Redis, a retry waiting out
    /// its delay too).
    pub taken: u64,
    /// Jobs set aside after too many deliveries.
    pub dead: u64,
    /// How long the oldest job waiting to be taken has waited, in seconds
    /// (0 with none).
    pub oldest_ready_secs: f64,
}

/// A key-value cache whose entries expire.
#[async_trait]
pub trait Cache: Send + Sync + fmt::Debug {
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()>;
    /// `true` if the key existed.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Adds one to a counter that expires `ttl` after its creation and returns
    /// the new value (fixed-window rate limits).
    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64>;
}

/// The three bus services together, as the rest of Cairn holds them.
#[derive(Debug, Clone)]
pub struct Bus {
    pub pubsub: Arc<dyn PubSub>,
    pub queue: Arc<dyn WorkQueue>,
    pub cache: Arc<dyn Cache>,
    /// Checks the bus answers.
    pub health: Arc<dyn BusHealth>,
}

/// Whether the bus backend is reachable.
#[async_trait]
pub trait BusHealth: Send + Sync + fmt::Debug {
    /// `in-process` or `redis`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;
}
