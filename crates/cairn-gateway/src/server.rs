//! The HTTP/1.1 server loop: accepts connections and serves each with
//! Cairn's own keep-alive loop (`http1`) — the API's requests, uploads and
//! event streams — handing a connection to hyper's HTTP/1 connection for
//! the rest of its life at the first request that loop leaves to it (an
//! upgrade to a WebSocket, anything that does not parse).
//!
//! Not `axum::serve`: it sniffs every connection for an HTTP/2 preface
//! first, reading its first 24 bytes apart, and hands them to hyper as a
//! short first read — which makes hyper grow its 8 KiB read buffer to 16 KiB
//! for the life of the connection. An idle event-stream viewer is an open
//! connection for hours, so that doubled buffer was a quarter of what each
//! held (`BENCHMARKS.md`, "The heap an idle viewer holds"). Cairn speaks
//! HTTP/1.1 (browsers reach it so, or through a proxy); HTTP/2 is the
//! proxy's to terminate.

mod http1;
mod incoming;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use http1::{Answer, Connection, Next, Primed, Upload};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// How long a client may take to send a request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a live stream waits for a client that takes none of what it
/// sends (its socket full, the connection open) before dropping it, its
/// stream and presence with it; the client resumes with its last event id.
pub(crate) const STALLED_CLIENT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting
/// connections, asks each open one to close once its response in flight is
/// done, and waits for them.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Dropped when shutdown begins: each connection watches for it.
    let (stop_tx, stop_rx) = watch::channel(());
    // Held by each connection's task: closed once the last one ended.
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Streamed responses (execution events, downloads) are written in
        // pieces; without NODELAY a piece can wait for the client's delayed
        // ACK (~40 ms).
        let _ = tcp.set_nodelay(true);
        let (app, stop, done) = (app.clone(), stop_rx.clone(), done_rx.clone());
        tokio::spawn(async move {
            serve_connection(tcp, remote, app, stop).await;
            drop(done);
        });
    }
    drop((stop_tx, stop_rx, done_rx, listener));
    done_tx.closed().await;
    Ok(())
}

/// One connection: its requests served by `http1`'s loop until one is
/// hyper's, which then serves the rest of the connection.
async fn serve_connection(tcp: TcpStream, remote: SocketAddr, app: Router, mut stop: watch::Receiver<()>) {
    let mut connection = Connection::new(tcp, remote);
    loop {
        // A client gets this long to send a request's head, the first or a
        // later one (no connection is held open by one that never does); an
        // idle connection is closed once shutdown begins.
        let next = tokio::select! {
            next = tokio::time::timeout(HEAD_TIMEOUT, connection.next()) => next,
            _ = stop.changed() => return,
        };
        let (request, answer) = match next {
            Ok(Ok(Next::Request(request, answer))) => (request, answer),
            // Boxed: only an upload's task holds its state.
            Ok(Ok(Next::Streamed(request, answer, upload))) => {
                if Box::pin(serve_upload(&mut connection, *request, answer, upload, &app, &stop)).await {
                    continue;
                }
                return;
            }
            Ok(Ok(Next::Closed)) => return,
            // Boxed: a connection's task is not the size of hyper's.
            Ok(Ok(Next::Hyper)) => return Box::pin(serve_with_hyper(connection.into_hyper(), remote, app, stop)).await,
            Ok(Err(error)) => return tracing::trace!(%error, %remote, "reading a request failed"),
            Err(_) => return tracing::debug!(%remote, "no request within {HEAD_TIMEOUT:?}; closing the connection"),
        };
        // Boxed, and gone before the body streams: a viewer's task holds
        // neither the router's future nor the response's header map while
        // it waits for events.
        let Ok(response) = Box::pin(app.clone().oneshot(*request)).await;
        let stopping = stop.has_changed().is_err();
        match connection.respond(answer, response, stopping).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => return tracing::trace!(%error, %remote, "writing a response failed"),
        }
    }
}

/// A request whose body comes while it is handled (an upload, a chunked
/// body): the handler runs while the body is read into it, the response is
/// written, and what the handler left unread of the body is read past — or
/// the connection closes. Whether the connection takes another request.
async fn serve_upload(
    connection: &mut Connection,
    request: Request<Body>,
    answer: Answer,
    mut upload: Upload,
    app: &Router,
    stop: &watch::Receiver<()>,
) -> bool {
    let remote = connection.remote();
    let Ok(response) = connection.receive(&mut upload, app.clone().oneshot(request)).await;
    let answer = connection.settle(&mut upload, answer);
    let stopping = stop.has_changed().is_err();
    match connection.respond(answer, response, stopping).await {
        Ok(true) => connection.drain(&mut upload).await,
        Ok(false) => {
            if !upload.ended() {
                connection.linger().await;
            }
            false
        }
        Err(error) => {
            tracing::trace!(%error, %remote, "writing a response failed");
            false
        }
    }
}

/// Hyper's HTTP/1 connection, upgrades included, until it closes — or, once
/// `stop` changes, until its response in flight is done.
async fn serve_with_hyper(io: Primed, remote: SocketAddr, app: Router, mut stop: watch::Receiver<()>) {
    let service = TowerToHyperService::new(app.map_request(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request.map(axum::body::Body::new)
    }));
    // The same time for every later request's head (a connection idle
    // between requests is closed after it too).
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::trace!(%error, %remote, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// An accept that failed: the client's own trouble (it reset or gave up)
/// is passed over; anything else (out of file descriptors, of memory) is
/// logged and the loop pauses a second instead of spinning on it.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(error.kind(), ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused)
    {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
