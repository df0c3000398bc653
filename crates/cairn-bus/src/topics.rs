//! Local fan-out of published payloads to the subscribers of a topic, shared
//! by the in-process and the Redis pub/sub.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

/// How many payloads a slow subscriber may fall behind before it skips ahead.
/// Subscribers that must not miss anything re-read the stored event log.
const SUBSCRIBER_BACKLOG: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Topics {
    senders: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
}

impl Topics {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<Bytes>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A stream of what `deliver` hands to `topic` from now on; `true` when
    /// this is the topic's first local subscriber.
    pub(crate) fn subscribe(&self, topic: &str) -> (BoxStream<'static, Bytes>, bool) {
        let mut senders = self.lock();
        let (receiver, first) = match senders.get(topic) {
            Some(sender) => (sender.subscribe(), false),
            None => {
                let (sender, receiver) = broadcast::channel(SUBSCRIBER_BACKLOG);
                senders.insert(topic.to_owned(), sender);
                (receiver, true)
            }
        };
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(payload) => return Some((payload, receiver)),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "a slow subscriber skipped payloads");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        (stream.boxed(), first)
    }

    /// Hands the payload to the topic's local subscribers. Returns `false`
    /// when the topic has none left (it is then forgotten).
    pub(crate) fn deliver(&self, topic: &str, payload: Bytes) -> bool {
        let mut senders = self.lock();
        let Some(sender) = senders.get(topic) else { return false };
        if sender.send(payload).is_err() {
            senders.remove(topic);
            return false;
        }
        true
    }

    /// Every topic with a local subscriber.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_topic_is_forgotten_when_its_last_subscriber_leaves() {
        let topics = Topics::default();
        let (mut stream, first) = topics.subscribe("t");
        assert!(first);
        assert!(!topics.subscribe("t").1, "the second subscriber is not the first");
        assert!(topics.deliver("t", Bytes::from_static(b"1")));
        assert_eq!(stream.next().await, Some(Bytes::from_static(b"1")));
        drop(stream);
        assert!(!topics.deliver("t", Bytes::from_static(b"2")));
        assert_eq!(topics.len(), 0);
    }
}
