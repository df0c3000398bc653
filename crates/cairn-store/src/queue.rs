//! The embedded durable work queue: jobs are rows, a delivery is a lease on a
//! row. It serves the all-in-one shape, where no Redis runs, with the same
//! contract as the Redis Streams queue: at-least-once delivery, redelivery of
//! work whose consumer died, dead letters after too many deliveries.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_core::bus::{DeadJob, Delivery, QueueOptions, QueueStats, WorkQueue};
use sqlx::{PgPool, SqlitePool};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::DbResult;

/// How often a waiting `take` looks for work that no local `enqueue`
/// announced (work enqueued by another process, leases that ran out).
const POLL_INTERVAL: Duration = Duration::from_millis(200);

fn epoch_millis(delay: Duration) -> i64 {
    let now = time::OffsetDateTime::now_utc() + delay;
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn lease_lost(delivery: &Delivery) -> cairn_core::Error {
    cairn_core::Error::LeaseLost { job: delivery.id.clone() }
}

fn job_id(delivery: &Delivery) -> cairn_core::Result<i64> {
    delivery.id.parse().map_err(|_| cairn_core::Error::NotFound { entity: "job" })
}

#[derive(sqlx::FromRow)]
struct TakenRow {
    id: i64,
    payload: Vec<u8>,
    attempts: i32,
    state: String,
}

#[derive(sqlx::FromRow)]
struct DeadRow {
    id: i64,
    payload: Vec<u8>,
    attempts: i32,
    last_error: Option<String>,
}

macro_rules! sql_queue {
    ($(#[$meta:meta])* $name:ident, $pool:ty, $lock:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
            options: QueueOptions,
            /// Wakes local `take`s when a local `enqueue` adds work.
            wakeup: Arc<Notify>,
        }

        impl $name {
            pub fn new(pool: $pool, options: QueueOptions) -> Self {
                Self { pool, options, wakeup: Arc::new(Notify::new()) }
            }

            async fn try_take(&self, queue: &str, consumer: &str) -> cairn_core::Result<Option<Delivery>> {
                // One statement picks and leases the job, so two consumers never
                // get the same delivery. A job whose lease ran out on its last
                // allowed delivery is handed out once more, exhausted (for the
                // consumer to record its failure); one whose lease ran out on
                // that one too goes to the dead letters instead.
                let sql = concat!(
                    "UPDATE jobs SET ",
                    "state = CASE WHEN attempts > $3 THEN 'dead' ELSE 'leased' END, ",
                    "attempts = CASE WHEN attempts > $3 THEN attempts ELSE attempts + 1 END, ",
                    "lease_owner = CASE WHEN attempts > $3 THEN NULL ELSE $4 END, ",
                    "lease_expires_at = CASE WHEN attempts > $3 THEN NULL ELSE $5 END, ",
                    "last_error = CASE WHEN attempts > $3 ",
                    "THEN COALESCE(last_error, 'the consumer stopped answering (lease expired)') ELSE last_error END ",
                    "WHERE id = (SELECT id FROM jobs WHERE queue = $1 AND ",
                    "((state = 'ready' AND available_at <= $2) OR (state = 'leased' AND lease_expires_at <= $2)) ",
                    "ORDER BY CASE WHEN state = 'leased' THEN 0 ELSE 1 END, id LIMIT 1",
                    $lock,
                    ") RETURNING id, payload, attempts, state"
                );
                let max = i32::try_from(self.options.max_deliveries).unwrap_or(i32::MAX);
                loop {
                    let taken: Option<TakenRow> = sqlx::query_as(sql)
                        .bind(queue)
                        .bind(epoch_millis(Duration::ZERO))
                        .bind(max)
                        .bind(consumer)
                        .bind(epoch_millis(self.options.lease))
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                    match taken {
                        None => return Ok(None),
                        Some(row) if row.state == "dead" => continue,
                        Some(row) => {
                            return Ok(Some(Delivery {
                                id: row.id.to_string(),
                                queue: queue.to_owned(),
                                consumer: consumer.to_owned(),
                                payload: Bytes::from(row.payload),
                                attempt: u32::try_from(row.attempts).unwrap_or(0),
                                exhausted: row.attempts > max,
                            }));
                        }
                    }
                }
            }
        }

        #[async_trait]
        impl WorkQueue for $name {
            async fn enqueue(&self, queue: &str, payload: Bytes) -> cairn_core::Result<String> {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO jobs (queue, payload, state, attempts, available_at, created_at) \
                     VALUES ($1, $2, 'ready', 0, $3, $4) RETURNING id",
                )
                .bind(queue)
                .bind(payload.as_ref())
                .bind(epoch_millis(Duration::ZERO))
                .bind(crate::rows::now())
                .fetch_one(&self.pool)
                .await
                .db()?;
                self.wakeup.notify_waiters();
                Ok(id.to_string())
            }

            async fn take(&self, queue: &str, consumer: &str, wait: Duration) -> cairn_core::Result<Option<Delivery>> {
                let deadline = Instant::now() + wait;
                loop {
                    // Listen before looking, so an enqueue between the two still wakes us.
                    let notified = self.wakeup.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if let Some(delivery) = self.try_take(queue, consumer).await? {
                        return Ok(Some(delivery));
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    let nap = (deadline - now).min(POLL_INTERVAL);
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep(nap) => {}
                    }
                }
            }

            async fn ack(&self, delivery: &Delivery) -> cairn_core::Result<()> {
                let done = sqlx::query("DELETE FROM jobs WHERE id = $1 AND state = 'leased' AND attempts = $2")
                    .bind(job_id(delivery)?)
                    .bind(i32::try_from(delivery.attempt).unwrap_or(i32::MAX))
                    .execute(&self.pool)
                    .await
                    .db()?;
                if done.rows_affected() == 0 {
                    return Err(lease_lost(delivery));
                }
                Ok(())
            }

            async fn nack(&self, delivery: &Delivery, delay: Duration, error: &str) -> cairn_core::Result<()> {
                let delay = delay.min(self.options.lease);
                let done = sqlx::query(
                    "UPDATE jobs SET state = CASE WHEN attempts >= $3 THEN 'dead' ELSE 'ready' END, \
                     available_at = $4, lease_owner = NULL, lease_expires_at = NULL, last_error = $5 \
                     WHERE id = $1 AND state = 'leased' AND attempts = $2",
                )
                .bind(job_id(delivery)?)
                .bind(i32::try_from(delivery.attempt).unwrap_or(i32::MAX))
                .bind(i32::try_from(self.options.max_deliveries).unwrap_or(i32::MAX))
                .bind(epoch_millis(delay))
                .bind(error)
                .execute(&self.pool)
                .await
                .db()?;
                if done.rows_affected() == 0 {
                    return Err(lease_lost(delivery));
                }
                self.wakeup.notify_waiters();
                Ok(())
            }

            async fn extend(&self, delivery: &Delivery) -> cairn_core::Result<()> {
                let done = sqlx::query(
                    "UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND state = 'leased' AND attempts = $2",
                )
                .bind(job_id(delivery)?)
                .bind(i32::try_from(delivery.attempt).unwrap_or(i32::MAX))
                .bind(epoch_millis(self.options.lease))
                .execute(&self.pool)
                .await
                .db()?;
                if done.rows_affected() == 0 {
                    return Err(lease_lost(delivery));
                }
                Ok(())
            }

            async fn stats(&self, queue: &str) -> cairn_core::Result<QueueStats> {
                let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT state, COUNT(*), MIN(available_at) FROM jobs WHERE queue = $1 GROUP BY state",
                )
                .bind(queue)
                .fetch_all(&self.pool)
                .await
                .db()?;
                let mut stats = QueueStats::default();
                let now = epoch_millis(Duration::ZERO);
                for (state, count, oldest) in rows {
                    let count = u64::try_from(count).unwrap_or(0);
                    match state.as_str() {
                        "ready" => {
                            stats.ready = count;
                            let waited = oldest.map_or(0, |since| now.saturating_sub(since).max(0));
                            stats.oldest_ready_secs = waited as f64 / 1000.0;
                        }
                        "leased" => stats.taken = count,
                        _ => stats.dead = count,
                    }
                }
                Ok(stats)
            }

            async fn dead_letters(&self, queue: &str, limit: usize) -> cairn_core::Result<Vec<DeadJob>> {
                let rows: Vec<DeadRow> = sqlx::query_as(
                    "SELECT id, payload, attempts, last_error FROM jobs \
                     WHERE queue = $1 AND state = 'dead' ORDER BY id LIMIT $2",
                )
                .bind(queue)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .db()?;
                Ok(rows
                    .into_iter()
                    .map(|r| DeadJob {
                        id: r.id.to_string(),
                        payload: Bytes::from(r.payload),
                        attempts: u32::try_from(r.attempts).unwrap_or(0),
                        last_error: r.last_error,
                    })
                    .collect())
            }
        }
    };
}

sql_queue!(
    /// The work queue in SQLite; SQLite runs one writer at a time, so the
    /// leasing statement needs no row locks.
    SqliteQueue, SqlitePool, ""
);
sql_queue!(
    /// The work queue in PostgreSQL; concurrent consumers skip the rows others
    /// are leasing instead of waiting for them.
    PostgresQueue, PgPool, " FOR UPDATE SKIP LOCKED"
);
