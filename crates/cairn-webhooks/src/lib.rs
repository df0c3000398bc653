//! Project webhooks: project events (runs that succeeded, failed or wait
//! for a person, artifacts saved, members added) delivered to the
//! endpoints that subscribe to them, signed the Standard Webhooks way.
//!
//! A project event becomes one delivery per subscribed endpoint, stored
//! before anything is sent: the deliveries table is a durable queue. A
//! dispatcher in each worker (or all-in-one) process claims due deliveries
//! one at a time each (a lease in the store: however many processes poll,
//! one attempt runs at a time), POSTs them through the web tools' guarded
//! client (no private address unless allowlisted, checked again at
//! connection time), and records the outcome; a failure is tried again on
//! the configured schedule, then the delivery fails. At least once: a
//! process that dies mid-attempt leaves a lease that runs out, and the
//! delivery is tried again — with the same `webhook-id`, so receivers drop
//! what they already have.
//!
//! Architecture invariant: secrets are stored sealed (the auth crate's key
//! ring) and leave the server once, when made or rotated.

mod signature;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::hooks::{Attempt, Delivery, DeliveryStatus, EVENT_TYPES, Hooks, NewWebhook, Webhook, WebhookUpdate};
use cairn_core::store::Store;
use cairn_core::{ProjectId, UserId, WebhookId};
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};

pub use signature::{new_secret, sign};

/// How long a dispatcher holds a claimed delivery before another may take it.
const LEASE: Duration = Duration::from_secs(120);
/// How often an idle dispatcher looks for due deliveries (a local event
/// wakes it at once).
const POLL: Duration = Duration::from_secs(1);
/// Attempts one process makes at once.
const PARALLEL: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The request cannot make an endpoint (a bad URL, unknown events).
    #[error("{0}")]
    Invalid(String),
    /// The destination is one Cairn does not send to (private, loopback…).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
    /// Sealing or opening a secret failed (logged; details not sent).
    #[error("webhook secrets cannot be sealed or opened: {0}")]
    Secret(String),
}

/// The webhook service, shared by handlers, the run service (as
/// [`Hooks`]) and the dispatcher.
#[derive(Debug, Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    keys: cairn_auth::KeyRing,
    http: cairn_tools::SafeHttp,
    retry: Vec<Duration>,
    grace: time::Duration,
    wake: Notify,
}

impl Webhooks {
    /// The service as configured (`webhooks.*`); endpoints obey the web
    /// tools' rule on private addresses (`allow_private`, from
    /// `tools.allow_private`).
    pub fn new(
        store: Arc<dyn Store>,
        keys: cairn_auth::KeyRing,
        config: &cairn_config::WebhooksConfig,
        allow_private: Vec<SocketAddr>,
    ) -> Result<Webhooks, WebhookError> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let http = cairn_tools::SafeHttp::new(timeout, 64 * 1024, allow_private)
            .map_err(|e| WebhookError::Secret(e.to_string()))?;
        let grace = time::Duration::hours(i64::try_from(config.rotation_grace_hours).unwrap_or(24));
        let retry = config.retry_secs.iter().map(|s| Duration::from_secs(*s)).collect();
        Ok(Webhooks { inner: Arc::new(Inner { store, keys, http, retry, grace, wake: Notify::new() }) })
    }

    /// Checks an endpoint's URL and events: http(s), a destination Cairn
    /// sends to, and only known event types (at least one).
    async fn check(&self, url: &str, events: &[String]) -> Result<(), WebhookError> {
        let parsed =
            url::Url::parse(url).map_err(|e| WebhookError::Invalid(format!("`url` is not a valid URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") || url.len() > 2_000 {
            return Err(WebhookError::Invalid("`url` must be an http or https URL of at most 2000 characters".into()));
        }
        self.inner.http.vet(&parsed).await.map_err(|e| WebhookError::Refused(e.to_string()))?;
        if events.is_empty() {
            return Err(WebhookError::Invalid("`events` names no event type".into()));
        }
        if let Some(unknown) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
            return Err(WebhookError::Invalid(format!(
                "unknown event type `{unknown}`; the types are {}",
                EVENT_TYPES.join(", ")
            )));
        }
        Ok(())
    }

    /// Makes an endpoint; its secret (`whsec_…`) is in the answer, once.
    pub async fn create(
        &self,
        project: ProjectId,
        url: &str,
        mut events: Vec<String>,
        created_by: UserId,
    ) -> Result<(Webhook, String), WebhookError> {
        events.sort();
        events.dedup();
        self.check(url, &events).await?;
        let secret = new_secret().map_err(WebhookError::Secret)?;
        let secret_sealed = self.seal(&secret)?;
        let new = NewWebhook { project_id: project, url: url.to_owned(), events, secret_sealed, created_by };
        Ok((self.inner.store.create_webhook(new).await?, secret))
    }

    /// Changes an endpoint's URL, events or whether it is enabled.
    pub async fn update(&self, id: WebhookId, mut update: WebhookUpdate) -> Result<Webhook, WebhookError> {
        let current = self.inner.store.webhook(id).await?;
        if let Some(events) = &mut update.events {
            events.sort();
            events.dedup();
        }
        let url = update.url.as_deref().unwrap_or(&current.url);
        self.check(url, update.events.as_deref().unwrap_or(&current.events)).await?;
        Ok(self.inner.store.update_webhook(id, update).await?)
    }

    /// A new secret, in the answer once; the old one still signs, beside
    /// it, for `webhooks.rotation_grace_hours`.
    pub async fn rotate(&self, id: WebhookId) -> Result<(Webhook, String), WebhookError> {
        let secret = new_secret().map_err(WebhookError::Secret)?;
        let sealed = self.seal(&secret)?;
        let until = OffsetDateTime::now_utc() + self.inner.grace;
        Ok((self.inner.store.rotate_webhook_secret(id, sealed, until).await?, secret))
    }

    fn seal(&self, secret: &str) -> Result<Vec<u8>, WebhookError> {
        self.inner.keys.seal(secret.as_bytes()).map_err(|e| WebhookError::Secret(e.to_string()))
    }

    fn open(&self, sealed: &[u8]) -> Result<String, WebhookError> {
        let bytes = self.inner.keys.open(sealed).map_err(|e| WebhookError::Secret(e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| WebhookError::Secret(e.to_string()))
    }

    /// Queues a delivery again, due now (one more attempt, or the rest of
    /// its schedule if it had not failed yet).
    pub async fn redeliver(&self, delivery: cairn_core::DeliveryId) -> Result<Delivery, WebhookError> {
        let queued = self.inner.store.redeliver(delivery).await?;
        self.inner.wake.notify_one();
        Ok(queued)
    }

    /// Starts this process's dispatcher: it claims due deliveries and
    /// attempts them, at most [`PARALLEL`] at once, for as long as the
    /// process lives.
    pub fn start(&self) {
        let service = self.clone();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(PARALLEL));
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                match service.inner.store.claim_delivery(LEASE).await {
                    Ok(Some(delivery)) => {
                        let service = service.clone();
                        tokio::spawn(async move {
                            service.attempt(delivery).await;
                            drop(slot);
                        });
                    }
                    Ok(None) => {
                        drop(slot);
                        let _ = tokio::time::timeout(POLL, service.inner.wake.notified()).await;
                    }
                    Err(error) => {
                        drop(slot);
                        tracing::warn!(%error, "cannot take a webhook delivery; trying again shortly");
                        tokio::time::sleep(POLL).await;
                    }
                }
            }
        });
    }

    /// One attempt at a claimed delivery, and its outcome recorded.
    async fn attempt(&self, delivery: Delivery) {
        let started = Instant::now();
        let (response_code, error) = match self.send(&delivery).await {
            Ok(status) if (200..300).contains(&status) => (Some(i32::from(status)), None),
            Ok(status) => (Some(i32::from(status)), Some(format!("the endpoint answered {status}"))),
            Err(error) => (None, Some(error)),
        };
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        // `attempts` counts this one: the first retry follows the first attempt.
        let next = usize::try_from(delivery.attempts).ok().and_then(|n| self.inner.retry.get(n.saturating_sub(1)));
        let retry_at = match (&error, next) {
            (Some(_), Some(delay)) => Some(OffsetDateTime::now_utc() + *delay),
            _ => None,
        };
        let outcome = Attempt { response_code, duration_ms, error, retry_at };
        let counted = match outcome.status() {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "retrying",
            DeliveryStatus::Failed => "failed",
        };
        metrics::counter!("cairn_webhook_attempts_total", "outcome" => counted).increment(1);
        if let Err(failure) = self.inner.store.finish_attempt(delivery.id, outcome).await {
            // The lease runs out and the delivery is tried again.
            tracing::warn!(error = %failure, delivery = %delivery.id, "cannot record a webhook attempt");
        }
    }

    /// Sends a delivery: its endpoint's status code, or why it could not.
    async fn send(&self, delivery: &Delivery) -> Result<u16, String> {
        let webhook = match self.inner.store.webhook(delivery.webhook_id).await {
            Ok(webhook) => webhook,
            Err(error) => return Err(format!("the endpoint cannot be read: {error}")),
        };
        if !webhook.enabled {
            return Err("the endpoint is disabled".to_owned());
        }
        let body = serde_json::to_vec(&delivery.payload).map_err(|e| e.to_string())?;
        let mut secrets = vec![self.open(&webhook.secret_sealed).map_err(|e| e.to_string())?];
        if let (Some(previous), Some(until)) = (&webhook.previous_sealed, webhook.previous_until)
            && until > OffsetDateTime::now_utc()
        {
            secrets.push(self.open(previous).map_err(|e| e.to_string())?);
        }
        let id = delivery.id.to_string();
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signatures: Vec<String> =
            secrets.iter().map(|secret| sign(secret, &id, timestamp, &body)).collect::<Result<_, _>>()?;
        let headers = [
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signatures.join(" ")),
        ];
        self.inner.http.post_json(&webhook.url, &headers, Bytes::from(body)).await.map_err(|e| e.to_string())
    }
}

impl Hooks for Webhooks {
    /// Wakes this process's dispatcher.
    fn queued(&self) {
        self.inner.wake.notify_one();
    }
}
