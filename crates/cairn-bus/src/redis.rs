//! The bus on Redis: pub/sub on one RESP3 connection that resubscribes by
//! itself after a reconnect, the work queue on Streams with a consumer group
//! (XCLAIM takes over work whose consumer died), and the cache on plain
//! keys. Every key starts with the configured prefix.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_core::bus::{Bus, BusHealth, Cache, DeadJob, Delivery, PubSub, QueueOptions, QueueStats, WorkQueue};
use cairn_core::{Dependency, Error};
use futures::stream::BoxStream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamClaimReply, StreamId, StreamInfoGroupsReply, StreamRangeReply, StreamReadReply};
use redis::{PushInfo, PushKind, RedisError, Script, Value};
use tokio::time::Instant;

use crate::topics::Topics;

/// The consumer group every Cairn worker joins.
const GROUP: &str = "cairn";
/// How often a waiting `take` polls for new work. Blocking reads would stall
/// the shared, multiplexed connection.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A command that gets no answer within this time fails as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

fn unavailable_or_internal(error: RedisError) -> Error {
    if error.is_io_error() || error.is_connection_refusal() || error.is_timeout() || error.is_connection_dropped() {
        Error::Unavailable { dependency: Dependency::Bus, reason: error.to_string() }
    } else {
        Error::Internal { dependency: Dependency::Bus, detail: error.to_string() }
    }
}

trait RedisResultExt<T> {
    fn bus(self) -> cairn_core::Result<T>;
}

impl<T> RedisResultExt<T> for Result<T, RedisError> {
    fn bus(self) -> cairn_core::Result<T> {
        self.map_err(unavailable_or_internal)
    }
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1))
}

/// Connects to Redis and builds the distributed bus. Fails when Redis does
/// not answer, so a misconfigured deployment stops at start-up.
pub async fn connect(url: &str, prefix: &str, options: QueueOptions) -> crate::Result<Bus> {
    let client = redis::Client::open(url).map_err(crate::Error::Url)?;
    let conn = ConnectionManager::new_with_config(client, manager_config()).await.map_err(crate::Error::Connect)?;
    let pubsub = RedisPubSub::connect(url, prefix, conn.clone()).await?;
    Ok(Bus {
        pubsub: Arc::new(pubsub),
        queue: Arc::new(RedisQueue::new(conn.clone(), prefix, options)),
        cache: Arc::new(RedisCache { conn: conn.clone(), prefix: prefix.to_owned() }),
        health: Arc::new(RedisHealth { conn }),
    })
}

/// Pub/sub: Redis channels `{prefix}:events:{topic}`, fanned out locally.
pub struct RedisPubSub {
    publisher: ConnectionManager,
    subscriber: ConnectionManager,
    topics: Arc<Topics>,
    channel_prefix: String,
    /// Reconnects the subscriber after a disconnection; stopped on drop.
    reconnector: tokio::task::AbortHandle,
}

impl Drop for RedisPubSub {
    fn drop(&mut self) {
        self.reconnector.abort();
    }
}

impl std::fmt::Debug for RedisPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPubSub").field("channel_prefix", &self.channel_prefix).finish_non_exhaustive()
    }
}

impl RedisPubSub {
    async fn connect(url: &str, prefix: &str, publisher: ConnectionManager) -> crate::Result<RedisPubSub> {
        // Push messages need RESP3; the manager then resubscribes after a reconnect.
        let resp3 = if url.contains('?') { format!("{url}&protocol=resp3") } else { format!("{url}?protocol=resp3") };
        let client = redis::Client::open(resp3).map_err(crate::Error::Url)?;
        let topics = Arc::new(Topics::default());
        let channel_prefix = format!("{prefix}:events:");
        let (sink_topics, sink_prefix) = (topics.clone(), channel_prefix.clone());
        let disconnected = Arc::new(tokio::sync::Notify::new());
        let sink_disconnected = disconnected.clone();
        let config = manager_config().set_automatic_resubscription().set_push_sender(move |push: PushInfo| {
            if push.kind == PushKind::Disconnection {
                sink_disconnected.notify_one();
            } else if push.kind == PushKind::Message
                && let [Value::BulkString(channel), Value::BulkString(payload), ..] = push.data.as_slice()
                && let Some(topic) = std::str::from_utf8(channel).ok().and_then(|c| c.strip_prefix(&sink_prefix))
            {
                sink_topics.deliver(topic, Bytes::copy_from_slice(payload));
            }
            Ok::<(), redis::aio::SendError>(())
        });
        let subscriber = ConnectionManager::new_with_config(client, config).await.map_err(crate::Error::Connect)?;
        // The manager reconnects (and resubscribes) only when a command is sent
        // on it, and a subscriber sends none: after a disconnection, ping until
        // the connection is back.
        let mut pinger = subscriber.clone();
        let reconnector = tokio::spawn(async move {
            loop {
                disconnected.notified().await;
                while redis::cmd("PING").query_async::<Value>(&mut pinger).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                tracing::info!("Redis subscriber connection restored");
            }
        })
        .abort_handle();
        Ok(RedisPubSub { publisher, subscriber, topics, channel_prefix, reconnector })
    }
}

#[async_trait]
impl PubSub for RedisPubSub {
    async fn publish(&self, topic: &str, payload: Bytes) -> cairn_core::Result<()> {
        let channel = format!("{}{topic}", self.channel_prefix);
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload.as_ref())
            .query_async::<i64>(&mut self.publisher.clone())
            .await
            .bus()?;
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> cairn_core::Result<BoxStream<'static, Bytes>> {
        let (stream, first) = self.topics.subscribe(topic);
        if first {
            // Returns once Redis confirmed the subscription.
            self.subscriber.clone().subscribe(format!("{}{topic}", self.channel_prefix)).await.bus()?;
        }
        Ok(stream)
    }
}

/// The work queue on a Redis stream per queue, `{prefix}:queue:{name}`.
#[derive(Clone)]
pub struct RedisQueue {
    conn: ConnectionManager,
    prefix: String,
    options: QueueOptions,
    /// Streams whose consumer group is known to exist.
    groups: Arc<Mutex<HashSet<String>>>,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue").field("prefix", &self.prefix).field("options", &self.options).finish()
    }
}

/// Lua scripts that check the caller still holds the delivery (owner and
/// delivery count, as XPENDING reports them) and act on it atomically.
/// KEYS: stream, errors hash, dead stream. ARGV: group, id, consumer, attempt, …
struct Scripts {
    ack: Script,
    retry: Script,
    bury: Script,
    extend: Script,
}

const HOLDS: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] or tonumber(p[1][4]) ~= tonumber(ARGV[4]) then return 0 end
";

impl Scripts {
    fn new() -> Scripts {
        let ack = "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) redis.call('XDEL', KEYS[1], ARGV[2]) \
                   redis.call('HDEL', KEYS[2], ARGV[2]) return 1";
        // ARGV[5]: idle time to set so the job is taken again after the delay; ARGV[6]: error.
        let retry = "redis.call('HSET', KEYS[2], ARGV[2], ARGV[6]) \
                     redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'IDLE', ARGV[5], 'JUSTID') return 1";
        // ARGV[5]: error, ARGV[6]: `replace` to record it, else only if none was recorded;
        // ARGV[7]: the attempts to record.
        let bury = "local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) \
                    local err = redis.call('HGET', KEYS[2], ARGV[2]) \
                    if ARGV[6] == 'replace' or not err then err = ARGV[5] end \
                    local payload = '' \
                    if #e > 0 then for i = 1, #e[1][2], 2 do \
                      if e[1][2][i] == 'payload' then payload = e[1][2][i + 1] end end end \
                    redis.call('XADD', KEYS[3], '*', 'job', ARGV[2], 'payload', payload, 'attempts', ARGV[7], 'error', err) \
                    redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) redis.call('XDEL', KEYS[1], ARGV[2]) \
                    redis.call('HDEL', KEYS[2], ARGV[2]) return 1";
        let extend = "redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID') return 1";
        let guarded = |body: &str| Script::new(&format!("{HOLDS}{body}"));
        Scripts { ack: guarded(ack), retry: guarded(retry), bury: guarded(bury), extend: guarded(extend) }
    }
}

struct Keys {
    stream: String,
    errors: String,
    dead: String,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl RedisQueue {
    pub fn new(conn: ConnectionManager, prefix: &str, options: QueueOptions) -> RedisQueue {
        RedisQueue {
            conn,
            prefix: prefix.to_owned(),
            options,
            groups: Arc::default(),
            scripts: Arc::new(Scripts::new()),
        }
    }

    fn keys(&self, queue: &str) -> Keys {
        let stream = format!("{}:queue:{queue}", self.prefix);
        Keys { errors: format!("{stream}:errors"), dead: format!("{stream}:dead"), stream }
    }

    async fn ensure_group(&self, stream: &str) -> cairn_core::Result<()> {
        if self.groups.lock().unwrap_or_else(PoisonError::into_inner).contains(stream) {
            return Ok(());
        }
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut self.conn.clone())
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(unavailable_or_internal(e)),
        }
        self.groups.lock().unwrap_or_else(PoisonError::into_inner).insert(stream.to_owned());
        Ok(())
    }

    async fn run(&self, script: &Script, keys: &Keys, delivery: &Delivery, extra: &[String]) -> cairn_core::Result<()> {
        let mut invocation = script.key(&keys.stream);
        invocation.key(&keys.errors).key(&keys.dead);
        invocation.arg(GROUP).arg(&delivery.id).arg(&delivery.consumer).arg(delivery.attempt);
        for arg in extra {
            invocation.arg(arg);
        }
        let held: i64 = invocation.invoke_async(&mut self.conn.clone()).await.bus()?;
        if held == 0 {
            return Err(Error::LeaseLost { job: delivery.id.clone() });
        }
        Ok(())
    }

    async fn bury(
        &self,
        keys: &Keys,
        delivery: &Delivery,
        error: &str,
        replace: bool,
        attempts: u32,
    ) -> cairn_core::Result<()> {
        let mode = if replace { "replace" } else { "fallback" };
        let extra = [error.to_owned(), mode.to_owned(), attempts.to_string()];
        self.run(&self.scripts.bury, keys, delivery, &extra).await
    }

    /// One look for work: first a job whose lease ran out, then a new one.
    /// The expired job is found among all the taken ones (XPENDING with an
    /// idle time), not among the first few only: XAUTOCLAIM looks at ten
    /// entries per job asked for, so behind ten jobs still worked an
    /// expired one would wait until they were done. XCLAIM with the lease
    /// as minimum idle time then takes it only if no one took it first.
    async fn try_take(&self, queue: &str, keys: &Keys, consumer: &str) -> cairn_core::Result<Option<Delivery>> {
        let mut conn = self.conn.clone();
        // Bounded: each round claims one job or sees another caller take it.
        for _ in 0..16 {
            let expired: Vec<(String, String, u64, u32)> = redis::cmd("XPENDING")
                .arg(&keys.stream)
                .arg(GROUP)
                .arg("IDLE")
                .arg(millis(self.options.lease))
                .arg("-")
                .arg("+")
                .arg(1)
                .query_async(&mut conn)
                .await
                .bus()?;
            let Some((id, ..)) = expired.into_iter().next() else { break };
            let claimed: StreamClaimReply = redis::cmd("XCLAIM")
                .arg(&keys.stream)
                .arg(GROUP)
                .arg(consumer)
                .arg(millis(self.options.lease))
                .arg(&id)
                .query_async(&mut conn)
                .await
                .bus()?;
            // Taken by another consumer first (or its entry is gone).
            let Some(entry) = claimed.ids.into_iter().next() else { continue };
            let attempt = self.delivery_count(&keys.stream, &entry.id).await?;
            let delivery = self.delivery(queue, consumer, &entry, attempt);
            // Its lease ran out on its last allowed delivery: handed out once
            // more, exhausted, for the consumer to record the failure; on
            // that one too: set aside.
            if attempt > self.options.max_deliveries.saturating_add(1) {
                let lost = "the consumer stopped answering (lease expired)";
                self.bury(keys, &delivery, lost, false, attempt - 1).await?;
                continue;
            }
            return Ok(Some(delivery));
        }
        let read: StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&keys.stream)
            .arg(">")
            .query_async(&mut conn)
            .await
            .bus()?;
        let entry = read.keys.into_iter().flat_map(|key| key.ids).next();
        Ok(entry.map(|entry| self.delivery(queue, consumer, &entry, 1)))
    }

    async fn delivery_count(&self, stream: &str, id: &str) -> cairn_core::Result<u32> {
        let pending: Vec<(String, String, u64, u32)> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(GROUP)
            .arg(id)
            .arg(id)
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await
            .bus()?;
        Ok(pending.first().map_or(1, |p| p.3))
    }

    fn delivery(&self, queue: &str, consumer: &str, entry: &StreamId, attempt: u32) -> Delivery {
        let payload: Vec<u8> = entry.get("payload").unwrap_or_default();
        Delivery {
            id: entry.id.clone(),
            queue: queue.to_owned(),
            consumer: consumer.to_owned(),
            payload: Bytes::from(payload),
            attempt,
            exhausted: attempt > self.options.max_deliveries,
        }
    }
}

#[async_trait]
impl WorkQueue for RedisQueue {
    async fn enqueue(&self, queue: &str, payload: Bytes) -> cairn_core::Result<String> {
        let keys = self.keys(queue);
        self.ensure_group(&keys.stream).await?;
        redis::cmd("XADD")
            .arg(&keys.stream)
            .arg("*")
            .arg("payload")
            .arg(payload.as_ref())
            .query_async(&mut self.conn.clone())
            .await
            .bus()
    }

    async fn take(&self, queue: &str, consumer: &str, wait: Duration) -> cairn_core::Result<Option<Delivery>> {
        let keys = self.keys(queue);
        self.ensure_group(&keys.stream).await?;
        let deadline = Instant::now() + wait;
        loop {
            if let Some(delivery) = self.try_take(queue, &keys, consumer).await? {
                return Ok(Some(delivery));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep((deadline - now).min(POLL_INTERVAL)).await;
        }
    }

    async fn ack(&self, delivery: &Delivery) -> cairn_core::Result<()> {
        self.run(&self.scripts.ack, &self.keys(&delivery.queue), delivery, &[]).await
    }

    async fn nack(&self, delivery: &Delivery, delay: Duration, error: &str) -> cairn_core::Result<()> {
        let keys = self.keys(&delivery.queue);
        if delivery.attempt >= self.options.max_deliveries {
            return self.bury(&keys, delivery, error, true, delivery.attempt).await;
        }
        // Pretend the job has been idle for (lease - delay): `take` then
        // claims it again once the delay has passed.
        let idle = self.options.lease.saturating_sub(delay.min(self.options.lease));
        self.run(&self.scripts.retry, &keys, delivery, &[millis(idle).to_string(), error.to_owned()]).await
    }

    async fn extend(&self, delivery: &Delivery) -> cairn_core::Result<()> {
        self.run(&self.scripts.extend, &self.keys(&delivery.queue), delivery, &[]).await
    }

    async fn stats(&self, queue: &str) -> cairn_core::Result<QueueStats> {
        let keys = self.keys(queue);
        self.ensure_group(&keys.stream).await?;
        let mut conn = self.conn.clone();
        let groups: StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(&keys.stream).query_async(&mut conn).await.bus()?;
        let group = groups.groups.into_iter().find(|g| g.name == GROUP).unwrap_or_default();
        let dead: u64 = redis::cmd("XLEN").arg(&keys.dead).query_async(&mut conn).await.bus()?;
        // The oldest entry not yet delivered: the first after the group's
        // last delivered id; its id starts with the millisecond it was added.
        let next: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&keys.stream)
            .arg(format!("({}", group.last_delivered_id))
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .bus()?;
        let oldest_ready_secs =
            next.ids.first().and_then(|entry| entry.id.split('-').next()?.parse::<u64>().ok()).map_or(0.0, |added| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                (u64::try_from(now.as_millis()).unwrap_or(u64::MAX).saturating_sub(added)) as f64 / 1000.0
            });
        Ok(QueueStats { ready: group.lag.unwrap_or(0) as u64, taken: group.pending as u64, dead, oldest_ready_secs })
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> cairn_core::Result<Vec<DeadJob>> {
        let keys = self.keys(queue);
        let range: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&keys.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await
            .bus()?;
        Ok(range
            .ids
            .iter()
            .map(|entry| DeadJob {
                id: entry.get("job").unwrap_or_default(),
                payload: Bytes::from(entry.get::<Vec<u8>>("payload").unwrap_or_default()),
                attempts: entry.get("attempts").unwrap_or_default(),
                last_error: entry.get("error"),
            })
            .collect())
    }
}

/// The cache on keys `{prefix}:cache:{key}`.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisCache {
    fn key(&self, key: &str) -> String {
        format!("{}:cache:{key}", self.prefix)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> cairn_core::Result<Option<Bytes>> {
        let value: Option<Vec<u8>> =
            redis::cmd("GET").arg(self.key(key)).query_async(&mut self.conn.clone()).await.bus()?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> cairn_core::Result<()> {
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value.as_ref())
            .arg("PX")
            .arg(millis(ttl).max(1))
            .query_async::<()>(&mut self.conn.clone())
            .await
            .bus()
    }

    async fn delete(&self, key: &str) -> cairn_core::Result<bool> {
        let removed: i64 = redis::cmd("DEL").arg(self.key(key)).query_async(&mut self.conn.clone()).await.bus()?;
        Ok(removed > 0)
    }

    async fn incr(&self, key: &str, ttl: Duration) -> cairn_core::Result<i64> {
        let script = Script::new(
            "local v = redis.call('INCR', KEYS[1]) \
             if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return v",
        );
        script.key(self.key(key)).arg(millis(ttl).max(1)).invoke_async(&mut self.conn.clone()).await.bus()
    }
}

/// Whether Redis answers PING.
#[derive(Clone)]
pub struct RedisHealth {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHealth").finish_non_exhaustive()
    }
}

#[async_trait]
impl BusHealth for RedisHealth {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> cairn_core::Result<()> {
        redis::cmd("PING").query_async::<String>(&mut self.conn.clone()).await.bus()?;
        Ok(())
    }
}
