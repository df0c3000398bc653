//! The HTTP/1.1 server loop: accepts connections and serves each with
//! hyper's HTTP/1 connection, upgrades (WebSocket) included — except a
//! connection whose first request asks for an event stream, which is
//! answered without hyper (`first_request`).
//!
//! Not `axum::serve`: it sniffs every connection for an HTTP/2 preface
//! first, reading its first 24 bytes apart, and hands them to hyper as a
//! short first read — which makes hyper grow its 8 KiB read buffer to 16 KiB
//! for the life of the connection. An idle event-stream viewer is an open
//! connection for hours, so that doubled buffer was a quarter of what each
//! held (`BENCHMARKS.md`, "The heap an idle viewer holds"). Cairn speaks
//! HTTP/1.1 (browsers reach it so, or through a proxy); HTTP/2 is the
//! proxy's to terminate.

mod first_request;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use first_request::{First, Primed};
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

/// One connection: its first request sorted (`first_request`), then either
/// answered there (an event stream) or served by hyper.
async fn serve_connection(mut tcp: TcpStream, remote: SocketAddr, app: Router, mut stop: watch::Receiver<()>) {
    // A client gets this long to send its first request's head (no
    // connection held open by one that never does); one still silent when
    // shutdown begins is closed.
    let first = tokio::select! {
        first = tokio::time::timeout(HEAD_TIMEOUT, first_request::read(&mut tcp, remote)) => first,
        _ = stop.changed() => return,
    };
    let first = match first {
        Ok(Ok(first)) => first,
        Ok(Err(error)) => {
            tracing::trace!(%error, %remote, "reading the first request failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "no request within {HEAD_TIMEOUT:?}; closing the connection");
            return;
        }
    };
    match first {
        First::Closed => {}
        First::EventStream(request) => {
            if let Err(error) = first_request::answer(tcp, *request, app).await {
                tracing::trace!(%error, %remote, "an event stream ended with an error");
            }
        }
        // Boxed: an event stream's task is not the size of hyper's connection.
        First::Other(read) => Box::pin(serve_with_hyper(Primed::new(read, tcp), remote, app, stop)).await,
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
