//! The bus contract: the in-process bus (with the store's queue on SQLite and
//! on PostgreSQL) and the Redis bus, held to the same behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::Error;
use cairn_core::bus::{Bus, QueueOptions};
use cairn_store::{Database, OpenOptions};
use cairn_testkit::{TcpProxy, TempDir, TestPostgres, redis_url, unique_prefix};
use futures::StreamExt;

const OPTIONS: QueueOptions = QueueOptions { lease: Duration::from_millis(600), max_deliveries: 2 };

/// Keeps what backs a bus alive for the test's duration.
#[allow(dead_code)]
enum Backing {
    Sqlite(TempDir, Database),
    Postgres(TestPostgres, Database),
    Redis,
}

async fn migrated(url: &str) -> Database {
    let db = Database::open(url, &OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    db
}

async fn in_process_sqlite() -> (Bus, Backing) {
    let dir = TempDir::new("bus");
    let db = migrated(&dir.sqlite_url()).await;
    (cairn_bus::in_process(db.queue(OPTIONS)), Backing::Sqlite(dir, db))
}

async fn in_process_postgres() -> (Bus, Backing) {
    let pg = TestPostgres::create().await;
    let db = migrated(&pg.url).await;
    (cairn_bus::in_process(db.queue(OPTIONS)), Backing::Postgres(pg, db))
}

async fn redis() -> (Bus, Backing) {
    let url = redis_url();
    let bus = cairn_bus::redis::connect(&url, &unique_prefix("bus"), OPTIONS).await.unwrap_or_else(|e| {
        panic!("Redis is needed for this test: {e} at {url}; start it or set CAIRN_TEST_REDIS_URL")
    });
    (bus, Backing::Redis)
}

macro_rules! contract {
    ($module:ident, $make:ident: $($name:ident),+ $(,)?) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (bus, _backing) = super::$make().await;
                super::$name(bus).await;
            })+
        }
    };
}

/// Every queue test, for one backend.
macro_rules! queue_contract {
    ($module:ident, $make:ident) => {
        contract!($module, $make:
            a_job_is_delivered_once_and_gone_after_ack,
            a_waiting_take_wakes_when_work_arrives,
            concurrent_consumers_share_the_work_without_overlap,
            work_of_a_dead_consumer_is_delivered_again,
            an_expired_job_behind_many_worked_ones_is_delivered_again,
            a_heartbeat_keeps_the_lease,
            a_failing_job_ends_in_the_dead_letters,
            a_job_whose_consumers_keep_dying_ends_in_the_dead_letters,
            the_queue_says_where_it_stands,
        );
    };
}

/// Every pub/sub and cache test, for one backend.
macro_rules! pubsub_and_cache_contract {
    ($module:ident, $make:ident) => {
        contract!($module, $make:
            subscribers_get_what_is_published_after_they_subscribe,
            cached_values_expire,
            counters_count_within_their_window,
        );
    };
}

queue_contract!(queue_on_sqlite, in_process_sqlite);
queue_contract!(queue_on_postgres, in_process_postgres);
queue_contract!(queue_on_redis, redis);
pubsub_and_cache_contract!(pubsub_and_cache_in_process, in_process_sqlite);
pubsub_and_cache_contract!(pubsub_and_cache_on_redis, redis);

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

const NO_WAIT: Duration = Duration::ZERO;

async fn a_job_is_delivered_once_and_gone_after_ack(bus: Bus) {
    bus.queue.enqueue("runs", bytes("first")).await.unwrap();
    bus.queue.enqueue("runs", bytes("second")).await.unwrap();
    bus.queue.enqueue("other", bytes("elsewhere")).await.unwrap();
    let first = bus.queue.take("runs", "w1", NO_WAIT).await.unwrap().expect("a job");
    assert_eq!((first.payload.clone(), first.attempt), (bytes("first"), 1));
    let second = bus.queue.take("runs", "w1", NO_WAIT).await.unwrap().expect("a job");
    assert_eq!(second.payload, bytes("second"));
    bus.queue.ack(&first).await.unwrap();
    bus.queue.ack(&second).await.unwrap();
    assert_eq!(bus.queue.take("runs", "w1", Duration::from_millis(300)).await.unwrap(), None);
    let acked_twice = bus.queue.ack(&first).await;
    assert!(matches!(acked_twice, Err(Error::LeaseLost { .. })), "{acked_twice:?}");
    assert!(bus.queue.take("other", "w1", NO_WAIT).await.unwrap().is_some());
}

async fn a_waiting_take_wakes_when_work_arrives(bus: Bus) {
    let queue = bus.queue.clone();
    let waiter = tokio::spawn(async move { queue.take("runs", "w1", Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    bus.queue.enqueue("runs", bytes("wake")).await.unwrap();
    let delivery = waiter.await.unwrap().unwrap().expect("the waiting take got the job");
    assert_eq!(delivery.payload, bytes("wake"));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

async fn concurrent_consumers_share_the_work_without_overlap(bus: Bus) {
    for i in 0..24 {
        bus.queue.enqueue("runs", bytes(&format!("job-{i}"))).await.unwrap();
    }
    let consumers: Vec<_> = (0..4)
        .map(|c| {
            let queue = bus.queue.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(d) = queue.take("runs", &format!("w{c}"), Duration::from_millis(200)).await.unwrap() {
                    queue.ack(&d).await.unwrap();
                    got.push(String::from_utf8(d.payload.to_vec()).unwrap());
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for consumer in consumers {
        all.extend(consumer.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 24, "every job delivered exactly once: {all:?}");
    assert_eq!(unique.len(), 24);
}

async fn work_of_a_dead_consumer_is_delivered_again(bus: Bus) {
    bus.queue.enqueue("runs", bytes("orphan")).await.unwrap();
    let lost = bus.queue.take("runs", "crashed", NO_WAIT).await.unwrap().expect("a job");
    assert_eq!(bus.queue.take("runs", "w2", NO_WAIT).await.unwrap(), None, "leased work is not shared");
    let again = bus.queue.take("runs", "w2", Duration::from_secs(5)).await.unwrap().expect("redelivered");
    assert_eq!((again.payload.clone(), again.attempt), (bytes("orphan"), 2));
    let late = bus.queue.ack(&lost).await;
    assert!(matches!(late, Err(Error::LeaseLost { .. })), "the crashed consumer's ack must not count: {late:?}");
    bus.queue.ack(&again).await.unwrap();
}

async fn an_expired_job_behind_many_worked_ones_is_delivered_again(bus: Bus) {
    for n in 0..12 {
        bus.queue.enqueue("runs", bytes(&format!("job {n}"))).await.unwrap();
    }
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(bus.queue.take("runs", "w1", Duration::from_secs(5)).await.unwrap().expect("a job"));
    }
    // The consumer of the newest dies; the eleven before it are still worked.
    let lost = held.pop().unwrap();
    let deadline = tokio::time::Instant::now() + OPTIONS.lease * 3;
    let again = loop {
        for job in &held {
            bus.queue.extend(job).await.unwrap();
        }
        if let Some(delivery) = bus.queue.take("runs", "w2", NO_WAIT).await.unwrap() {
            break delivery;
        }
        assert!(tokio::time::Instant::now() < deadline, "the expired job behind eleven worked ones was not delivered");
        tokio::time::sleep(OPTIONS.lease / 4).await;
    };
    assert_eq!((again.payload.clone(), again.attempt), (lost.payload.clone(), 2));
    for job in held.iter().chain([&again]) {
        bus.queue.ack(job).await.unwrap();
    }
}

async fn a_heartbeat_keeps_the_lease(bus: Bus) {
    bus.queue.enqueue("runs", bytes("long")).await.unwrap();
    let held = bus.queue.take("runs", "w1", NO_WAIT).await.unwrap().expect("a job");
    for _ in 0..4 {
        tokio::time::sleep(OPTIONS.lease / 3).await;
        bus.queue.extend(&held).await.unwrap();
    }
    assert_eq!(bus.queue.take("runs", "w2", NO_WAIT).await.unwrap(), None, "an extended lease is kept");
    bus.queue.ack(&held).await.unwrap();
}

async fn a_failing_job_ends_in_the_dead_letters(bus: Bus) {
    bus.queue.enqueue("runs", bytes("poison")).await.unwrap();
    let first = bus.queue.take("runs", "w1", NO_WAIT).await.unwrap().expect("a job");
    bus.queue.nack(&first, Duration::ZERO, "boom 1").await.unwrap();
    let second = bus.queue.take("runs", "w1", Duration::from_secs(5)).await.unwrap().expect("retried");
    assert_eq!(second.attempt, 2);
    bus.queue.nack(&second, Duration::ZERO, "boom 2").await.unwrap();
    assert_eq!(bus.queue.take("runs", "w1", Duration::from_millis(300)).await.unwrap(), None);
    let dead = bus.queue.dead_letters("runs", 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].payload.clone(), dead[0].attempts), (bytes("poison"), 2));
    assert_eq!(dead[0].last_error.as_deref(), Some("boom 2"));
}

async fn the_queue_says_where_it_stands(bus: Bus) {
    let empty = bus.queue.stats("runs").await.unwrap();
    assert_eq!((empty.ready, empty.taken, empty.dead, empty.oldest_ready_secs), (0, 0, 0, 0.0));
    for job in ["a", "b", "c"] {
        bus.queue.enqueue("runs", bytes(job)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken = bus.queue.take("runs", "w1", NO_WAIT).await.unwrap().expect("a job");
    let stats = bus.queue.stats("runs").await.unwrap();
    assert_eq!((stats.ready, stats.taken, stats.dead), (2, 1, 0), "{stats:?}");
    assert!(stats.oldest_ready_secs >= 0.2 && stats.oldest_ready_secs < 60.0, "{stats:?}");
    // Taken twice and failed twice: set aside.
    bus.queue.nack(&taken, Duration::ZERO, "boom").await.unwrap();
    let again = loop {
        let next = bus.queue.take("runs", "w1", Duration::from_secs(5)).await.unwrap().expect("a job");
        if next.payload == bytes("a") {
            break next;
        }
        bus.queue.ack(&next).await.unwrap();
    };
    bus.queue.nack(&again, Duration::ZERO, "boom").await.unwrap();
    let stats = bus.queue.stats("runs").await.unwrap();
    assert_eq!(stats.dead, 1, "{stats:?}");
    assert_eq!(bus.queue.stats("other").await.unwrap(), Default::default(), "queues are counted apart");
}

async fn a_job_whose_consumers_keep_dying_ends_in_the_dead_letters(bus: Bus) {
    bus.queue.enqueue("runs", bytes("cursed")).await.unwrap();
    let first = bus.queue.take("runs", "w1", NO_WAIT).await.unwrap().expect("a job");
    let second = bus.queue.take("runs", "w2", Duration::from_secs(5)).await.unwrap().expect("redelivered");
    assert_eq!((first.attempt, second.attempt), (1, 2));
    assert!(!first.exhausted && !second.exhausted, "{second:?}");
    // The lease of its last allowed delivery runs out too: it comes back
    // once more, marked, for the consumer to record the failure (not to
    // work it), and its `nack` sets it aside with the consumer's word.
    let last = bus.queue.take("runs", "w3", Duration::from_secs(5)).await.unwrap().expect("handed out once more");
    assert_eq!((last.payload.clone(), last.attempt, last.exhausted), (bytes("cursed"), 3, true));
    bus.queue.nack(&last, Duration::ZERO, "recorded as failed").await.unwrap();
    assert_eq!(bus.queue.take("runs", "w4", Duration::from_millis(300)).await.unwrap(), None);
    let dead = bus.queue.dead_letters("runs", 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].last_error.as_deref(), Some("recorded as failed"), "{dead:?}");

    // Should the consumer holding the marked delivery die as well, the job
    // is set aside without it.
    bus.queue.enqueue("runs", bytes("doomed")).await.unwrap();
    for attempt in 1..=3 {
        let taken = bus.queue.take("runs", "w5", Duration::from_secs(5)).await.unwrap().expect("delivered");
        assert_eq!((taken.attempt, taken.exhausted), (attempt, attempt == 3));
    }
    tokio::time::sleep(OPTIONS.lease + Duration::from_millis(100)).await;
    assert_eq!(bus.queue.take("runs", "w6", NO_WAIT).await.unwrap(), None);
    let dead = bus.queue.dead_letters("runs", 10).await.unwrap();
    let doomed = dead.iter().find(|d| d.payload == bytes("doomed")).expect("set aside");
    assert!(doomed.last_error.as_deref().unwrap_or_default().contains("lease expired"), "{dead:?}");
}

async fn subscribers_get_what_is_published_after_they_subscribe(bus: Bus) {
    bus.pubsub.publish("thread.1", bytes("before anyone listened")).await.unwrap();
    let mut a = bus.pubsub.subscribe("thread.1").await.unwrap();
    let mut b = bus.pubsub.subscribe("thread.1").await.unwrap();
    let mut other = bus.pubsub.subscribe("thread.2").await.unwrap();
    for i in 0..3 {
        bus.pubsub.publish("thread.1", bytes(&format!("e{i}"))).await.unwrap();
    }
    for stream in [&mut a, &mut b] {
        let got: Vec<Bytes> = tokio::time::timeout(Duration::from_secs(5), stream.by_ref().take(3).collect())
            .await
            .expect("payloads arrive");
        assert_eq!(got, vec![bytes("e0"), bytes("e1"), bytes("e2")]);
    }
    let nothing = tokio::time::timeout(Duration::from_millis(200), other.next()).await;
    assert!(nothing.is_err(), "another topic's subscriber got {nothing:?}");
}

async fn cached_values_expire(bus: Bus) {
    let cache = &bus.cache;
    assert_eq!(cache.get("k").await.unwrap(), None);
    cache.set("k", bytes("v"), Duration::from_millis(300)).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(bytes("v")));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(cache.get("k").await.unwrap(), None, "expired");
    cache.set("d", bytes("v"), Duration::from_secs(60)).await.unwrap();
    assert!(cache.delete("d").await.unwrap());
    assert!(!cache.delete("d").await.unwrap());
    assert_eq!(cache.get("d").await.unwrap(), None);
}

async fn counters_count_within_their_window(bus: Bus) {
    let window = Duration::from_millis(400);
    for expected in 1..=3 {
        assert_eq!(bus.cache.incr("hits", window).await.unwrap(), expected);
    }
    // A counter reads back as its decimal text (the sign-in throttle reads
    // counts this way), and a value set as text counts on from its number.
    assert_eq!(bus.cache.get("hits").await.unwrap(), Some(Bytes::from_static(b"3")));
    bus.cache.set("set-hits", Bytes::from_static(b"41"), Duration::from_secs(60)).await.unwrap();
    assert_eq!(bus.cache.incr("set-hits", window).await.unwrap(), 42);
    tokio::time::sleep(window + Duration::from_millis(150)).await;
    assert_eq!(bus.cache.incr("hits", window).await.unwrap(), 1, "a new window starts from one");
}

/// Two gateways on one Redis: what one publishes, the other's subscribers get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_carries_events_between_processes() {
    let prefix = unique_prefix("shared");
    let one = cairn_bus::redis::connect(&redis_url(), &prefix, OPTIONS).await.unwrap();
    let two = cairn_bus::redis::connect(&redis_url(), &prefix, OPTIONS).await.unwrap();
    let mut listening = two.pubsub.subscribe("thread.9").await.unwrap();
    one.pubsub.publish("thread.9", bytes("hello")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), listening.next()).await.unwrap();
    assert_eq!(got, Some(bytes("hello")));
    one.queue.enqueue("runs", bytes("job")).await.unwrap();
    assert!(two.queue.take("runs", "w", Duration::from_secs(2)).await.unwrap().is_some());
}

/// Redis going away: calls fail fast as unavailable, and the bus comes back
/// by itself, subscriptions included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_reported_and_recovered_from() {
    let target = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let proxy = TcpProxy::start(&target).await;
    let prefix = unique_prefix("outage");
    let bus = cairn_bus::redis::connect(&format!("redis://{}", proxy.addr), &prefix, OPTIONS).await.unwrap();
    let direct = cairn_bus::redis::connect(&redis_url(), &prefix, OPTIONS).await.unwrap();
    let mut events = bus.pubsub.subscribe("t").await.unwrap();
    bus.health.ping().await.unwrap();

    proxy.cut();
    let started = std::time::Instant::now();
    let down = bus.health.ping().await;
    assert!(matches!(down, Err(Error::Unavailable { dependency: cairn_core::Dependency::Bus, .. })), "{down:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "failing took {:?}", started.elapsed());
    assert!(matches!(bus.cache.get("k").await, Err(Error::Unavailable { .. })));

    proxy.restore();
    let mut healthy = false;
    for _ in 0..100 {
        if bus.health.ping().await.is_ok() {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the bus did not reconnect");
    // The subscription is restored with the connection.
    let mut delivered = None;
    for _ in 0..50 {
        direct.pubsub.publish("t", bytes("after")).await.unwrap();
        if let Ok(got) = tokio::time::timeout(Duration::from_millis(100), events.next()).await {
            delivered = got;
            break;
        }
    }
    assert_eq!(delivered, Some(bytes("after")));
}
