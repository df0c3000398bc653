//! Who is in a thread and who is typing, kept as one small state per thread.
//!
//! Presence follows the event stream: a member whose browser holds the
//! thread's server-sent events open is "here". Each process keeps a room per
//! thread with open streams: the members of its own streams, the member
//! lists other gateways announced on the bus (`thread.{id}.presence`), and
//! who is typing. A stream gets the room's whole state when it opens, then
//! the newest state whenever it changed, at most every [`MIN_INTERVAL`]: a
//! viewer that falls behind skips to the latest state, and a change costs
//! each viewer one message at most, however many viewers there are.
//!
//! On the bus a process speaks for all its streams of a thread at once: its
//! member list when it changed (at most every [`MIN_INTERVAL`]) and every
//! [`HEARTBEAT`]; a process that opens a room asks the others to announce
//! theirs, and one whose last stream closed says its list is empty. Nothing
//! is stored; a process not heard of for [`GONE_AFTER`] (it died without a
//! goodbye) is forgotten.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use cairn_auth::Access;
use cairn_core::bus::PubSub;
use cairn_core::model::User;
use cairn_core::{ThreadId, UserId};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::authn::Authenticated;
use crate::wire::presence::{PresenceSnapshot, PresentMember};
use crate::{ApiError, AppState, Problem};

/// How often a process re-announces who of a thread is on its streams.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);

/// At most one update per viewer, and one announcement per process and
/// thread, this often.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// How long "typing" lasts unless it is said again.
const TYPING_FOR: Duration = Duration::from_secs(5);

/// A process not heard of for this long has gone (three heartbeats).
const GONE_AFTER: Duration = Duration::from_secs(30);

/// How often expired typing and silent processes are swept out.
const SWEEP: Duration = Duration::from_secs(1);

/// What processes tell each other about a thread on the bus.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Signal {
    /// The members of a process's streams (empty: none left); with `ask`,
    /// the others answer with theirs.
    Members { process: String, members: Vec<PresentMember>, ask: bool },
    /// A member is typing.
    Typing { member: PresentMember },
}

fn topic(thread: ThreadId) -> String {
    format!("thread.{thread}.presence")
}

async fn publish(pubsub: &dyn PubSub, topic: &str, signal: &Signal) {
    let payload = Bytes::from(serde_json::to_vec(signal).unwrap_or_default());
    if let Err(error) = pubsub.publish(topic, payload).await {
        tracing::debug!(%error, "a presence signal was not published");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The presence rooms of this process: one per thread with open streams.
pub struct Presence {
    /// This process, as the others know it.
    process: String,
    /// Rooms opened so far: each speaks on the bus under a name of its own,
    /// so a closing room's goodbye never removes its successor's members.
    opened: AtomicU64,
    rooms: Mutex<HashMap<ThreadId, Weak<Room>>>,
}

impl Default for Presence {
    fn default() -> Self {
        Presence {
            process: uuid::Uuid::new_v4().simple().to_string(),
            opened: AtomicU64::new(0),
            rooms: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").field("process", &self.process).field("rooms", &lock(&self.rooms).len()).finish()
    }
}

impl Presence {
    /// Announces `user` as here in `thread` for as long as the returned
    /// viewer lives (a stream holds it while it is open).
    pub(crate) fn join(&self, pubsub: &Arc<dyn PubSub>, thread: ThreadId, user: &User) -> Viewer {
        let room = {
            let mut rooms = lock(&self.rooms);
            match rooms.get(&thread).and_then(Weak::upgrade) {
                Some(room) => room,
                None => {
                    rooms.retain(|_, room| room.strong_count() > 0);
                    let name = format!("{}.{}", self.process, self.opened.fetch_add(1, Ordering::Relaxed));
                    let room = Room::open(pubsub.clone(), thread, name);
                    rooms.insert(thread, Arc::downgrade(&room));
                    room
                }
            }
        };
        let connection = room.next_connection.fetch_add(1, Ordering::Relaxed);
        let member = PresentMember { user: user.id, name: user.display_name.clone() };
        lock(&room.state).local.insert(connection, member);
        room.local_changed();
        Viewer { room, connection }
    }
}

/// One thread's presence in this process.
struct Room {
    process: String,
    state: Mutex<RoomState>,
    /// Wakes the room's task when this process's own members changed (or
    /// the room closed).
    changed: Arc<Notify>,
    snapshot: watch::Sender<Arc<PresenceSnapshot>>,
    next_connection: AtomicU64,
}

#[derive(Default)]
struct RoomState {
    /// This process's streams and their members.
    local: HashMap<u64, PresentMember>,
    /// The other processes' members, and when each was last heard of.
    remote: HashMap<String, (Vec<PresentMember>, Instant)>,
    /// Who is typing, until when.
    typing: HashMap<UserId, (String, Instant)>,
}

/// Members in the order they are shown: by name, then by id.
fn by_name(members: &mut [PresentMember]) {
    members.sort_by(|a, b| (&a.name, a.user).cmp(&(&b.name, b.user)));
}

impl RoomState {
    /// This process's members, each once.
    fn own_members(&self) -> Vec<PresentMember> {
        let mut members: Vec<PresentMember> = self.local.values().cloned().collect();
        by_name(&mut members);
        members.dedup_by_key(|m| m.user);
        members
    }

    /// Forgets silent processes and finished typing; the state as it stands.
    fn snapshot(&mut self, now: Instant) -> PresenceSnapshot {
        self.remote.retain(|_, (_, heard)| now.duration_since(*heard) < GONE_AFTER);
        self.typing.retain(|_, (_, until)| *until > now);
        let mut here: HashMap<UserId, &str> = HashMap::new();
        let remote = self.remote.values().flat_map(|(members, _)| members);
        for member in self.local.values().chain(remote) {
            here.insert(member.user, &member.name);
        }
        // Only members still here are typing (one who left stopped).
        let mut typing: Vec<PresentMember> = self
            .typing
            .iter()
            .filter(|(user, _)| here.contains_key(user))
            .map(|(user, (name, _))| PresentMember { user: *user, name: name.clone() })
            .collect();
        by_name(&mut typing);
        let mut here: Vec<PresentMember> =
            here.into_iter().map(|(user, name)| PresentMember { user, name: name.to_owned() }).collect();
        by_name(&mut here);
        PresenceSnapshot { here, typing }
    }
}

impl Room {
    fn open(pubsub: Arc<dyn PubSub>, thread: ThreadId, process: String) -> Arc<Room> {
        let room = Arc::new(Room {
            process,
            state: Mutex::default(),
            changed: Arc::new(Notify::new()),
            snapshot: watch::Sender::new(Arc::new(PresenceSnapshot::default())),
            next_connection: AtomicU64::new(0),
        });
        tokio::spawn(announce(
            Arc::downgrade(&room),
            room.changed.clone(),
            pubsub,
            topic(thread),
            room.process.clone(),
        ));
        room
    }

    /// Recomputes the state; viewers hear of it only if it changed.
    fn refresh(&self) {
        let snapshot = lock(&self.state).snapshot(Instant::now());
        self.snapshot.send_if_modified(|current| {
            let changed = **current != snapshot;
            if changed {
                *current = Arc::new(snapshot);
            }
            changed
        });
    }

    fn local_changed(&self) {
        self.refresh();
        self.changed.notify_one();
    }

    /// Takes in another process's signal; whether it asks for this
    /// process's members.
    fn receive(&self, signal: Signal) -> bool {
        let now = Instant::now();
        let ask = {
            let mut state = lock(&self.state);
            match signal {
                Signal::Members { process, .. } if process == self.process => return false,
                Signal::Members { process, members, ask } => {
                    if members.is_empty() {
                        state.remote.remove(&process);
                    } else {
                        state.remote.insert(process, (members, now));
                    }
                    ask
                }
                Signal::Typing { member } => {
                    state.typing.insert(member.user, (member.name, now + TYPING_FOR));
                    false
                }
            }
        };
        self.refresh();
        ask
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        // The task says goodbye for this process and ends.
        self.changed.notify_one();
    }
}

/// The room's conversation with the other processes, for as long as the
/// room has viewers. Holds the room only between waits, so the room closes
/// when its last viewer leaves.
async fn announce(room: Weak<Room>, changed: Arc<Notify>, pubsub: Arc<dyn PubSub>, topic: String, process: String) {
    let mut incoming = match pubsub.subscribe(&topic).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, %topic, "presence cannot reach the other processes; this one's viewers still see each other");
            futures::stream::empty().boxed()
        }
    };
    let mut ask = true;
    let mut due = Some(Instant::now());
    let mut last_sent = Instant::now() - MIN_INTERVAL;
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut sweep = tokio::time::interval_at(Instant::now() + SWEEP, SWEEP);
    loop {
        let send = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            payload = incoming.next() => {
                let Some(payload) = payload else { break };
                let Some(room) = room.upgrade() else { break };
                let Ok(signal) = serde_json::from_slice::<Signal>(&payload) else { continue };
                if room.receive(signal) {
                    due = Some(due.map_or(last_sent + MIN_INTERVAL, |at| at.min(last_sent + MIN_INTERVAL)));
                }
            }
            () = changed.notified() => {
                if room.strong_count() == 0 {
                    break;
                }
                due.get_or_insert(last_sent + MIN_INTERVAL);
            }
            _ = heartbeat.tick() => {
                due.get_or_insert(Instant::now());
            }
            _ = sweep.tick() => {
                let Some(room) = room.upgrade() else { break };
                room.refresh();
            }
            () = send => {
                let Some(room) = room.upgrade() else { break };
                let members = lock(&room.state).own_members();
                drop(room);
                publish(&*pubsub, &topic, &Signal::Members { process: process.clone(), members, ask }).await;
                (ask, due, last_sent) = (false, None, Instant::now());
            }
        }
    }
    publish(&*pubsub, &topic, &Signal::Members { process, members: Vec::new(), ask: false }).await;
}

/// One open stream's member in a room; leaves when dropped.
pub(crate) struct Viewer {
    room: Arc<Room>,
    connection: u64,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        lock(&self.room.state).local.remove(&self.connection);
        self.room.local_changed();
    }
}

/// The presence states a stream sends: the room's state at once, then the
/// newest state after each change, at most every [`MIN_INTERVAL`]. The
/// member stays announced until the stream is dropped.
pub(crate) fn updates(viewer: Viewer) -> BoxStream<'static, Arc<PresenceSnapshot>> {
    let receiver = viewer.room.snapshot.subscribe();
    futures::stream::unfold(
        (viewer, receiver, None),
        |(viewer, mut receiver, sent): (_, _, Option<Instant>)| async move {
            if let Some(sent) = sent {
                receiver.changed().await.ok()?;
                tokio::time::sleep_until(sent + MIN_INTERVAL).await;
            }
            let snapshot = receiver.borrow_and_update().clone();
            Some((snapshot, (viewer, receiver, Some(Instant::now()))))
        },
    )
    .boxed()
}

/// Tells the thread's other members that the caller is typing (editors and
/// owners; send it every few seconds while typing, it lasts about five).
#[utoipa::path(post, path = "/threads/{thread_id}/typing", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses((status = 204, description = "Sent to the thread's open streams"),
        (status = 403, description = "A viewer", body = Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn typing(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<StatusCode, ApiError> {
    crate::threads::thread_for(&state, &principal, thread_id, Access::Write).await?;
    let member = PresentMember { user: principal.user.id, name: principal.user.display_name.clone() };
    publish(&*state.bus.pubsub, &topic(thread_id), &Signal::Typing { member }).await;
    Ok(StatusCode::NO_CONTENT)
}
