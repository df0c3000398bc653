//! A thread's event log: read as JSON, or followed live over server-sent
//! events (with presence) or a WebSocket. Both live streams subscribe to the
//! bus before reading the log, so every event arrives once, in the log's
//! order, whatever the bus delivers and when.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cairn_agent::RunEvent;
use cairn_auth::Access;
use cairn_core::ThreadId;
use cairn_core::model::Event;
use futures::StreamExt;
use futures::stream::BoxStream;
use time::OffsetDateTime;

use super::thread_for;
use crate::authn::Authenticated;
use crate::wire::threads::{EventResponse, EventsQuery, SocketQuery, TicketResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

/// What a ticket for a thread's event socket is good for.
fn socket_scope(thread_id: ThreadId) -> String {
    format!("thread:{thread_id}:events")
}

/// An event as its viewers get it: read once, and its server-sent and
/// WebSocket texts each made once, when first asked for, however many
/// viewers of the thread this process serves.
struct Rendered {
    event: EventResponse,
    /// Its kind and its data line.
    sse: OnceLock<(String, String)>,
    /// The event as one JSON text.
    text: OnceLock<Utf8Bytes>,
}

impl Rendered {
    fn new(event: EventResponse) -> Arc<Rendered> {
        Arc::new(Rendered { event, sse: OnceLock::new(), text: OnceLock::new() })
    }

    /// The stored event, typed and ready to render (`None`: unreadable, see
    /// [`EventResponse::read`]).
    fn read(event: Event) -> Option<Arc<Rendered>> {
        EventResponse::read(event).map(Rendered::new)
    }

    fn sse(&self) -> SseEvent {
        let (kind, data) = self.sse.get_or_init(|| {
            // The event's name is its serialized kind (one source: RunEvent's serde tags).
            let data = serde_json::to_value(&self.event).unwrap_or_default();
            (data["kind"].as_str().unwrap_or_default().to_owned(), data.to_string())
        });
        SseEvent::default().id(self.event.seq.to_string()).event(kind).data(data)
    }

    fn text(&self) -> Utf8Bytes {
        self.text.get_or_init(|| serde_json::to_string(&self.event).unwrap_or_default().into()).clone()
    }
}

/// An event of a live stream, and whether it is live: read once the
/// backlog the client asked for (after its last event id) was all sent.
pub(crate) struct Streamed {
    rendered: Arc<Rendered>,
    live: bool,
}

impl Streamed {
    pub(crate) fn event(&self) -> &EventResponse {
        &self.rendered.event
    }

    /// The run's event, taken out (copied when other viewers still hold it).
    pub(crate) fn into_run_event(self) -> RunEvent {
        match Arc::try_unwrap(self.rendered) {
            Ok(rendered) => rendered.event.event,
            Err(shared) => shared.event.event.clone(),
        }
    }

    /// Records how long a live event took from its creation (the worker's
    /// clock, in the log to the microsecond) to leaving for the client;
    /// the backlog's events are older and left out.
    fn delivered(&self, transport: Transport) {
        if self.live {
            let lag = (OffsetDateTime::now_utc() - self.event().created_at).as_seconds_f64().max(0.0);
            transport.lag().record(lag);
        }
    }
}

/// How a live event leaves for its client.
#[derive(Clone, Copy)]
enum Transport {
    Sse,
    Ws,
}

impl Transport {
    /// Its `cairn_event_delivery_seconds` histogram, looked up once: the
    /// macro looks a metric up by its name and labels on every call, which
    /// cost more than the rest of handing an event to a viewer.
    fn lag(self) -> &'static metrics::Histogram {
        static SSE: OnceLock<metrics::Histogram> = OnceLock::new();
        static WS: OnceLock<metrics::Histogram> = OnceLock::new();
        let (cell, label) = match self {
            Transport::Sse => (&SSE, "sse"),
            Transport::Ws => (&WS, "ws"),
        };
        cell.get_or_init(|| {
            // A handle taken before the recorder is installed would count nowhere.
            crate::metrics::install();
            metrics::histogram!("cairn_event_delivery_seconds", "transport" => label)
        })
    }
}

/// An event's number and the event (`None`: one this version cannot read).
type Numbered = (i64, Option<Arc<Rendered>>);

/// Where a live stream stands.
struct Follow {
    live: BoxStream<'static, Bytes>,
    /// The last event sent (or skipped as unreadable).
    last: i64,
    /// Events to send (unreadable ones skipped), each with whether the
    /// backlog was done when it was read.
    queue: VecDeque<(Numbered, bool)>,
    caught_up: bool,
    /// The log must be read before the next word from the bus.
    read_log: bool,
}

/// An event socket's read buffer, and the largest message a client may send
/// on it (it sends only pings and a close).
const SOCKET_READ_BUFFER: usize = 4 * 1024;
const SOCKET_MAX_MESSAGE: usize = 64 * 1024;

/// How long a live stream waits for the bus before reading the log anyway.
const LOG_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// The events this process heard on the bus lately, each read and rendered
/// once for all of its viewers: every viewer's subscription to a thread
/// receives the same payload, and a payload always reads as the same event
/// (whichever thread it came on), so it is found again by its bytes.
/// With many viewers of one thread, reading each event once per viewer was
/// most of what delivering it cost.
static HEARD: Lately = Lately::new();

/// What is kept of the payloads heard lately: the last `KEPT`, each with what
/// it read as.
struct Lately(Mutex<VecDeque<(Bytes, Numbered)>>);

impl Lately {
    const KEPT: usize = 64;

    const fn new() -> Lately {
        Lately(Mutex::new(VecDeque::new()))
    }

    /// A payload heard on the bus, read: its number and its event, or
    /// `None` when it does not read as a published event.
    fn read(&self, thread_id: ThreadId, payload: &Bytes) -> Option<Numbered> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, numbered)) = kept.iter().rev().find(|(bytes, _)| bytes == payload) {
            return Some(numbered.clone());
        }
        // Read under the lock, so a burst of viewers waiting for the same
        // event reads it once.
        let published = serde_json::from_slice::<cairn_core::model::Published>(payload).ok()?;
        let seq = published.seq;
        let rendered = Rendered::read(published.into_event(thread_id));
        if kept.len() == Self::KEPT {
            kept.pop_front();
        }
        kept.push_back((payload.clone(), (seq, rendered.clone())));
        Some((seq, rendered))
    }
}

/// The thread's events after `last`, then live ones, each exactly once and
/// in the log's order: subscribed before the backlog is read; a published
/// event that follows the last one sent goes out as it came (no read of the
/// log per viewer and event), and one after a gap makes the stream read the
/// log again from the last one sent.
pub(crate) async fn live_events(
    state: &AppState,
    thread_id: ThreadId,
    last: i64,
) -> Result<BoxStream<'static, Streamed>, ApiError> {
    let live = state.bus.pubsub.subscribe(&cairn_agent::runs::topic(thread_id)).await?;
    let store = state.store.clone();
    let start = Follow { live, last, queue: VecDeque::new(), caught_up: false, read_log: true };
    let stream = futures::stream::unfold(start, move |mut follow| {
        let store = store.clone();
        async move {
            loop {
                if let Some(((seq, rendered), live)) = follow.queue.pop_front() {
                    follow.last = seq;
                    match rendered {
                        Some(rendered) => return Some((Streamed { rendered, live }, follow)),
                        None => continue,
                    }
                }
                if follow.read_log {
                    match store.events_after(thread_id, follow.last, 500).await {
                        Ok(missed) if !missed.is_empty() => {
                            let caught_up = follow.caught_up;
                            follow.queue.extend(
                                missed.into_iter().map(|event| ((event.seq, Rendered::read(event)), caught_up)),
                            );
                            continue;
                        }
                        Ok(_) => (follow.caught_up, follow.read_log) = (true, false),
                        Err(_) => {} // read again at the next wake
                    }
                }
                // A word from the bus, or every few seconds the log anyway:
                // what was written while the bus was away (its notices are
                // lost, not queued) still arrives.
                let published = match tokio::time::timeout(LOG_RECHECK, follow.live.next()).await {
                    Ok(published) => published?,
                    Err(_) => {
                        follow.read_log = true;
                        continue;
                    }
                };
                match HEARD.read(thread_id, &published) {
                    Some((seq, _)) if seq <= follow.last => {} // sent already
                    Some((seq, rendered)) if seq == follow.last + 1 && follow.caught_up => {
                        follow.queue.push_back(((seq, rendered), true));
                    }
                    // A gap (events published out of order, or lost while
                    // the bus was away), or a word that does not parse: the
                    // log says what came.
                    _ => follow.read_log = true,
                }
            }
        }
    });
    Ok(stream.boxed())
}

/// The thread's events after `after`: as a JSON list, or — with `Accept:
/// text/event-stream` — as server-sent events that keep coming live. A
/// client that reconnects with `Last-Event-ID` gets exactly the events it
/// missed, once, in order. The stream also carries `presence` events (a
/// `PresenceSignal`, without an id): who has the thread open, who left, who
/// is typing; holding the stream open makes the caller present.
#[utoipa::path(get, path = "/threads/{thread_id}/events", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path), EventsQuery),
    responses((status = 200, description = "The events (JSON, or `text/event-stream`)", body = Vec<EventResponse>))
)]
pub(super) async fn events(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(query.after);
    let wants_stream =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if !wants_stream {
        let events = state.store.events_after(thread_id, last_seen, 1000).await?;
        return Ok(ApiJson(events.into_iter().filter_map(EventResponse::read).collect::<Vec<_>>()).into_response());
    }
    let events = live_events(&state, thread_id, last_seen).await?.map(|streamed| {
        streamed.delivered(Transport::Sse);
        streamed.rendered.sse()
    });
    let viewer = state.presence.join(&state.bus.pubsub, thread_id, &principal.user);
    let presence = crate::presence::updates(viewer).map(|snapshot| {
        SseEvent::default().event("presence").data(serde_json::to_string(&*snapshot).unwrap_or_default())
    });
    let stream = futures::stream::select(events, presence).take_until(state.stopping.wait()).map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// A single-use ticket, valid for a few seconds, that opens this thread's
/// event WebSocket (`/threads/{thread_id}/events/ws?ticket=…`) as the
/// caller. Browsers cannot put a credential on a WebSocket; the ticket keeps
/// the access token out of the URL.
#[utoipa::path(post, path = "/threads/{thread_id}/events/ticket", tag = "threads",
    security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path)),
    responses(
        (status = 200, description = "The ticket", body = TicketResponse),
        (status = 404, description = "No such thread (or not the caller's)", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub(super) async fn events_ticket(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(thread_id): Path<ThreadId>,
) -> Result<ApiJson<TicketResponse>, ApiError> {
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    let ticket = state.auth.issue_ticket(&principal, &socket_scope(thread_id)).await?;
    Ok(ApiJson(TicketResponse { ticket, expires_in: state.auth.ticket_ttl().as_secs() }))
}

/// The thread's events over a WebSocket: one JSON `EventResponse` per text
/// message, the backlog after `after` first, then live, each exactly once.
/// The client may close at any time and reconnect with the last `seq`.
/// Browsers authenticate with `?ticket=` and must open it from the web
/// app's own origin (or one of `server.cors_origins`); other clients may
/// send `Authorization: Bearer`.
#[utoipa::path(get, path = "/threads/{thread_id}/events/ws", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("thread_id" = ThreadId, Path), SocketQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "`unauthenticated`, or `invalid_token`: the ticket is unknown, expired or used",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: opened from a page of another origin", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub(super) async fn events_socket(
    State(state): State<AppState>,
    caller: Option<Authenticated>,
    Path(thread_id): Path<ThreadId>,
    Query(query): Query<SocketQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // A page of another site must not ride on a member's credentials.
    if headers.contains_key(header::ORIGIN) {
        crate::security::require_same_origin(&state.config, &headers)?;
    }
    let principal = match (caller, query.ticket) {
        (_, Some(ticket)) => state.auth.redeem_ticket(&ticket, &socket_scope(thread_id)).await?,
        (Some(Authenticated(principal)), None) => principal,
        (None, None) => {
            return Err(ApiError::Unauthenticated {
                code: "unauthenticated",
                detail: "open the socket with `?ticket=` (POST /threads/{id}/events/ticket) or a bearer credential"
                    .to_owned(),
            });
        }
    };
    thread_for(&state, &principal, thread_id, Access::Read).await?;
    let mut events = live_events(&state, thread_id, query.after).await?;
    let stopping = state.stopping.wait();
    // Events go out as they come and clients send next to nothing: small
    // buffers (the library's defaults, 128 KiB each way, are most of an idle
    // socket's memory) and a bound on what a client may send.
    let upgrade = upgrade
        .read_buffer_size(SOCKET_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(SOCKET_MAX_MESSAGE)
        .max_frame_size(SOCKET_MAX_MESSAGE);
    Ok(upgrade.on_upgrade(move |mut socket| async move {
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = &mut stopping => {
                    // Going away (1001): the client reconnects with its last `seq`.
                    let frame = axum::extract::ws::CloseFrame { code: 1001, reason: "the server is shutting down".into() };
                    let _ = socket.send(WsMessage::Close(Some(frame))).await;
                    return;
                }
                streamed = events.next() => {
                    let Some(streamed) = streamed else { return };
                    // A client that takes nothing for a while is dropped
                    // (it reconnects with its last `seq`).
                    let text = WsMessage::Text(streamed.rendered.text());
                    match tokio::time::timeout(crate::server::STALLED_CLIENT, socket.send(text)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) | Err(_) => return,
                    }
                    streamed.delivered(Transport::Ws);
                }
                incoming = socket.recv() => match incoming {
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                    _ => {} // pings are answered by the library; other messages are ignored
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use cairn_agent::events::Text;
    use cairn_core::model::Published;

    use super::*;

    fn payload(seq: i64, text: &str) -> Bytes {
        let (kind, payload) = RunEvent::Token(Text { text: text.into(), task: None }).into_parts();
        let published = Published {
            seq,
            run_id: None,
            kind,
            payload,
            schema_version: cairn_agent::events::SCHEMA_VERSION,
            created_at: OffsetDateTime::now_utc(),
        };
        Bytes::from(serde_json::to_vec(&published).unwrap())
    }

    #[test]
    fn a_payload_heard_by_many_viewers_is_read_once() {
        let (lately, thread) = (Lately::new(), ThreadId::new());
        let first = payload(7, "a line heard by every viewer");
        let (seq, once) = lately.read(thread, &first).unwrap();
        assert_eq!(seq, 7);
        let once = once.expect("a token event reads");
        assert_eq!(once.event.seq, 7);
        // Every viewer's subscription holds the same payload: the same read.
        let (_, again) = lately.read(thread, &first.clone()).unwrap();
        assert!(Arc::ptr_eq(&once, &again.unwrap()));
        // The same bytes delivered apart (another bus connection) read the same.
        let (_, copied) = lately.read(thread, &Bytes::copy_from_slice(&first)).unwrap();
        assert!(Arc::ptr_eq(&once, &copied.unwrap()));
        // Rendered once, the texts are what the event serializes to.
        assert_eq!(once.text().as_str(), serde_json::to_string(&once.event).unwrap());
        assert!(Arc::ptr_eq(&once, &lately.read(thread, &first).unwrap().1.unwrap()));

        let other = payload(8, "the next line");
        let (seq, next) = lately.read(thread, &other).unwrap();
        assert_eq!(seq, 8);
        assert!(!Arc::ptr_eq(&once, &next.unwrap()));
        assert!(lately.read(thread, &Bytes::from_static(b"not an event")).is_none());
    }

    #[test]
    fn what_is_kept_of_heard_payloads_is_bounded() {
        let (lately, thread) = (Lately::new(), ThreadId::new());
        let first = payload(0, "a line");
        let (_, kept) = lately.read(thread, &first).unwrap();
        for seq in 1..(Lately::KEPT as i64 * 3) {
            lately.read(thread, &payload(seq, "a line")).unwrap();
        }
        assert_eq!(lately.0.lock().unwrap().len(), Lately::KEPT);
        // The first was let go: heard again, it is read again.
        let (_, again) = lately.read(thread, &first).unwrap();
        assert!(!Arc::ptr_eq(&kept.unwrap(), &again.unwrap()));
    }
}
