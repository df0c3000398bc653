//! Who is in a thread and who is typing. Presence follows the event stream:
//! a member whose browser holds the thread's server-sent events open is
//! "here". Signals travel on the bus (so every gateway of a deployment sees
//! them) and are never stored: a stream announces its member when it opens,
//! every [`HEARTBEAT`] while it stays open, and when it closes; when someone
//! joins, every open stream announces its own member at once, so a newcomer
//! sees who is already there without waiting for a heartbeat. Clients forget
//! a member not heard of for three heartbeats (a gateway that died says no
//! goodbye).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use cairn_auth::Access;
use cairn_core::ThreadId;
use cairn_core::bus::{Bus, PubSub};
use cairn_core::model::User;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::authn::Authenticated;
use crate::{ApiError, AppState, Problem};

/// How often an open stream says its member is still here.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    /// The member has the thread open (sent on joining and as a heartbeat).
    Here,
    /// One of the member's connections closed (another may remain: it
    /// answers with `here`).
    Left,
    /// The member is writing a message (lasts a few seconds).
    Typing,
}

/// A `presence` server-sent event of a thread's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresenceSignal {
    pub user: cairn_core::UserId,
    /// The member's display name.
    pub name: String,
    pub state: PresenceState,
    /// The stream that sent it (empty for typing).
    pub connection: String,
    /// `true` on the first `here` of a connection.
    pub joined: bool,
}

fn topic(thread: ThreadId) -> String {
    format!("thread.{thread}.presence")
}

async fn publish(pubsub: &dyn PubSub, topic: &str, signal: &PresenceSignal) {
    let payload = Bytes::from(serde_json::to_vec(signal).unwrap_or_default());
    if let Err(error) = pubsub.publish(topic, payload).await {
        tracing::debug!(%error, "a presence signal was not published");
    }
}

/// One open stream's member; says goodbye when dropped (the stream closed).
struct Member {
    pubsub: Arc<dyn PubSub>,
    topic: String,
    me: PresenceSignal,
}

impl Member {
    async fn announce(&self) {
        publish(&*self.pubsub, &self.topic, &PresenceSignal { joined: false, ..self.me.clone() }).await;
    }

    /// Whether `signal` from someone else asks this stream to announce itself:
    /// a newcomer, or another connection of the same member that closed.
    fn should_answer(&self, signal: &PresenceSignal) -> bool {
        signal.connection != self.me.connection
            && match signal.state {
                PresenceState::Here => signal.joined,
                PresenceState::Left => signal.user == self.me.user,
                PresenceState::Typing => false,
            }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let (pubsub, topic) = (self.pubsub.clone(), std::mem::take(&mut self.topic));
        let left = PresenceSignal { state: PresenceState::Left, joined: false, ..self.me.clone() };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { publish(&*pubsub, &topic, &left).await });
        }
    }
}

/// The presence signals of a thread for one open stream of `user`, who is
/// announced as here until the returned stream is dropped.
pub(crate) async fn signals(
    bus: &Bus,
    thread: ThreadId,
    user: &User,
) -> Result<BoxStream<'static, PresenceSignal>, ApiError> {
    let topic = topic(thread);
    let incoming = bus.pubsub.subscribe(&topic).await?;
    let me = PresenceSignal {
        user: user.id,
        name: user.display_name.clone(),
        state: PresenceState::Here,
        connection: uuid::Uuid::new_v4().simple().to_string(),
        joined: true,
    };
    publish(&*bus.pubsub, &topic, &me).await;
    let member = Member { pubsub: bus.pubsub.clone(), topic, me };
    let heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let stream =
        futures::stream::unfold((incoming, heartbeat, member), |(mut incoming, mut heartbeat, member)| async move {
            loop {
                tokio::select! {
                    _ = heartbeat.tick() => member.announce().await,
                    payload = incoming.next() => {
                        let Ok(signal) = serde_json::from_slice::<PresenceSignal>(&payload?) else { continue };
                        if member.should_answer(&signal) {
                            member.announce().await;
                        }
                        return Some((signal, (incoming, heartbeat, member)));
                    }
                }
            }
        });
    Ok(stream.boxed())
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
    let signal = PresenceSignal {
        user: principal.user.id,
        name: principal.user.display_name.clone(),
        state: PresenceState::Typing,
        connection: String::new(),
        joined: false,
    };
    publish(&*state.bus.pubsub, &topic(thread_id), &signal).await;
    Ok(StatusCode::NO_CONTENT)
}
