//! A thread's messages, kept in the cache (Redis in the
//! distributed shape, in process by default) so an agent's every step does
//! not read them from the database. The store stays the truth: a missing or
//! unreadable entry is rebuilt from it. Entries are keyed by the thread's
//! generation, a counter every new message bumps (after it is stored), so a
//! reader never gets a list older than the last message posted: a list
//! cached under an old generation is simply never asked for again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::ThreadId;
use cairn_core::bus::Cache;
use cairn_core::model::Message;
use cairn_core::store::Store;

/// How long a cached list stays (a thread's generation lives far longer).
const TTL: Duration = Duration::from_secs(600);
const GENERATION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct ThreadCache {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
}

fn generation_key(thread: ThreadId) -> String {
    format!("thread:{thread}:generation")
}

impl ThreadCache {
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn Cache>) -> ThreadCache {
        ThreadCache { store, cache }
    }

    /// The thread's messages in order: from the cache, else from the store
    /// (and then cached).
    pub async fn messages(&self, thread: ThreadId) -> cairn_core::Result<Vec<Message>> {
        let generation = match self.cache.get(&generation_key(thread)).await {
            Ok(found) => found.map(|g| String::from_utf8_lossy(&g).into_owned()).unwrap_or_else(|| "0".into()),
            // No cache to trust: the store answers.
            Err(_) => return self.store.messages(thread).await,
        };
        let key = format!("thread:{thread}:messages:{generation}");
        if let Ok(Some(cached)) = self.cache.get(&key).await
            && let Ok(messages) = serde_json::from_slice::<Vec<Message>>(&cached)
        {
            return Ok(messages);
        }
        let messages = self.store.messages(thread).await?;
        if let Ok(json) = serde_json::to_vec(&messages)
            && let Err(error) = self.cache.set(&key, Bytes::from(json), TTL).await
        {
            tracing::debug!(%error, "a thread's messages were not cached");
        }
        Ok(messages)
    }

    /// The thread was deleted: its cached lists, of every generation, and
    /// its generation go now.
    pub async fn forget(&self, thread: ThreadId) {
        let generation = match self.cache.get(&generation_key(thread)).await {
            Ok(found) => found.and_then(|g| String::from_utf8_lossy(&g).parse::<u64>().ok()).unwrap_or(0),
            Err(error) => {
                tracing::warn!(%error, "a deleted thread's cached messages could not be removed; they expire soon");
                return;
            }
        };
        let lists = (0..=generation).map(|g| format!("thread:{thread}:messages:{g}"));
        for key in lists.chain(std::iter::once(generation_key(thread))) {
            if let Err(error) = self.cache.delete(&key).await {
                tracing::warn!(%error, "a deleted thread's cached messages could not be removed; they expire soon");
                return;
            }
        }
    }

    /// A message was stored in the thread: lists cached before are not read
    /// again.
    pub async fn changed(&self, thread: ThreadId) {
        if let Err(error) = self.cache.incr(&generation_key(thread), GENERATION_TTL).await {
            tracing::warn!(%error, "a thread's generation could not be bumped; its cached messages expire soon");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_core::model::{MessageRole, NewMessage, NewProject, NewThread, NewUser};

    use super::*;

    #[tokio::test]
    async fn the_cache_serves_messages_never_older_than_the_last_post() {
        let dir = cairn_testkit::TempDir::new("working-memory");
        let db = cairn_store::Database::open(&dir.sqlite_url(), &Default::default()).await.unwrap();
        db.migrate().await.unwrap();
        let store = db.store();
        let bus = cairn_bus::in_process(db.queue(Default::default()));
        let user = store
            .create_user(NewUser {
                email: "a@example.com".into(),
                display_name: "A".into(),
                password_hash: "x".into(),
                is_admin: false,
            })
            .await
            .unwrap();
        let project = store.create_project(NewProject { name: "P".into(), owner: user.id }).await.unwrap();
        let thread = store
            .create_thread(NewThread { project_id: project.id, title: "T".into(), created_by: user.id, model: None })
            .await
            .unwrap()
            .id;
        let memory = ThreadCache::new(store.clone(), bus.cache.clone());
        let post = |text: &str| NewMessage {
            thread_id: thread,
            role: MessageRole::User,
            author: Some(user.id),
            content: text.into(),
            attachments: Vec::new(),
            origin: None,
        };

        store.append_message(post("first"), None).await.unwrap();
        memory.changed(thread).await;
        assert_eq!(memory.messages(thread).await.unwrap().len(), 1);
        // A message stored behind the cache's back is not seen until the
        // generation moves: the list really comes from the cache.
        store.append_message(post("unannounced"), None).await.unwrap();
        assert_eq!(memory.messages(thread).await.unwrap().len(), 1, "served from the cache");
        memory.changed(thread).await;
        let contents: Vec<String> = memory.messages(thread).await.unwrap().into_iter().map(|m| m.content).collect();
        assert_eq!(contents, ["first", "unannounced"], "after a post, the list is rebuilt from the store");
        // A lost cache entry is rebuilt from the store.
        bus.cache.delete(&format!("thread:{thread}:messages:2")).await.unwrap();
        assert_eq!(memory.messages(thread).await.unwrap().len(), 2);
        let _keep: Arc<dyn Store> = store;
    }
}
