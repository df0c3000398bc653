//! Retries: a call that fails before its first token with a retryable
//! error (429, 5xx, a dropped connection, a timeout) is tried again after
//! an exponential backoff with jitter, or after the provider's
//! `Retry-After`. Once tokens flow, a failure is the caller's to handle.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::{ChatModel, ChatRequest, DeltaStream, LlmError};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first (0: no retries).
    pub max_retries: u32,
    /// The first wait; each next one doubles.
    pub base_delay: Duration,
    /// The longest wait, also for `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_retries: 3, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait before try `attempt + 1`: the provider's hint, or the
    /// backoff, plus up to half the base delay of jitter.
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let backoff = self.base_delay.saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX));
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        let jitter_ms = (self.base_delay.as_millis() as u64 / 2).max(1);
        let jitter = Duration::from_millis(u64::from_le_bytes(random) % jitter_ms);
        hint.unwrap_or(backoff).min(self.max_delay) + jitter
    }
}

/// A model with retries.
#[derive(Debug, Clone)]
pub(crate) struct Retrying {
    pub inner: Arc<dyn ChatModel>,
    pub policy: RetryPolicy,
}

#[async_trait]
impl ChatModel for Retrying {
    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let mut attempt = 0;
        loop {
            let started = async {
                let mut stream = self.inner.stream(request).await?;
                // A failure before the first piece is still retryable.
                let first = stream.next().await.unwrap_or_else(|| Err(LlmError::Protocol("an empty reply".into())))?;
                Ok::<DeltaStream, LlmError>(futures::stream::once(async move { Ok(first) }).chain(stream).boxed())
            }
            .await;
            match started {
                Ok(stream) => return Ok(stream),
                Err(error) if error.retryable() && attempt < self.policy.max_retries => {
                    let hint = match &error {
                        LlmError::RateLimited { retry_after } => *retry_after,
                        _ => None,
                    };
                    let wait = self.policy.delay(attempt, hint);
                    tracing::warn!(%error, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, "retrying a model call");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RetryPolicy;

    #[test]
    fn delays_grow_honour_hints_and_stay_capped() {
        let policy =
            RetryPolicy { max_retries: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        let within = |d: Duration, low: u64| d >= Duration::from_millis(low) && d < Duration::from_millis(low + 50);
        assert!(within(policy.delay(0, None), 100));
        assert!(within(policy.delay(2, None), 400));
        assert!(within(policy.delay(10, None), 1000), "capped");
        assert!(within(policy.delay(0, Some(Duration::from_millis(700))), 700), "Retry-After wins");
        assert!(within(policy.delay(0, Some(Duration::from_secs(60))), 1000), "even a hint is capped");
    }
}
