//! A connection's first request, read before hyper sees the connection.
//!
//! Most requests go on to hyper with the bytes read so far handed back
//! first (`Primed`), the whole head in its first read. A first request that
//! asks for an event stream (`GET` with `Accept: text/event-stream`, no
//! upgrade, no body) is answered here instead, as the connection's only
//! response: an idle viewer then holds its stream and a socket, not hyper's
//! 8 KiB read and write buffers and the header map it keeps for reuse
//! (`BENCHMARKS.md`, "The heap an idle viewer holds").

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, Version, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::STALLED_CLIENT;

/// The first request's head is looked for within this many bytes (hyper's
/// first read takes as many); a longer head is left to hyper.
const HEAD_LIMIT: usize = 8 * 1024;
/// What the first read may take before the head is known to be longer.
const FIRST_READ: usize = 2 * 1024;
/// Header lines looked at; a request with more is left to hyper (which
/// refuses it with 431).
const MAX_HEADERS: usize = 64;

/// What a connection's first bytes turned out to be.
pub(super) enum First {
    /// An event-stream request, to answer here.
    EventStream(Box<Request<Body>>),
    /// Anything else (including what does not parse): hyper's, with the
    /// bytes read so far.
    Other(Bytes),
    /// The client closed before sending a whole head.
    Closed,
}

/// Reads until the first request's head is complete (or `HEAD_LIMIT` bytes
/// came without it) and sorts the connection.
pub(super) async fn read(tcp: &mut TcpStream, remote: SocketAddr) -> io::Result<First> {
    let mut buf = Vec::with_capacity(FIRST_READ);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(HEAD_LIMIT - buf.len());
        }
        if tcp.read_buf(&mut buf).await? == 0 {
            return Ok(First::Closed);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Request::new(&mut headers);
        match head.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(match event_stream_request(&head, remote) {
                    Some(request) => First::EventStream(Box::new(request)),
                    None => First::Other(Bytes::from(buf)),
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < HEAD_LIMIT => {}
            _ => return Ok(First::Other(Bytes::from(buf))),
        }
    }
}

/// The request, if it asks for an event stream and is one this module can
/// answer in full; `None` leaves it to hyper.
fn event_stream_request(head: &httparse::Request<'_, '_>, remote: SocketAddr) -> Option<Request<Body>> {
    let version = match head.version? {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    if head.method? != "GET" {
        return None;
    }
    let mut wants_stream = false;
    let mut request = Request::builder().method(Method::GET).version(version).uri(head.path?);
    for line in head.headers.iter() {
        let name = HeaderName::from_bytes(line.name.as_bytes()).ok()?;
        if name == header::UPGRADE || name == header::TRANSFER_ENCODING || name == header::EXPECT {
            return None;
        }
        if name == header::CONTENT_LENGTH && line.value != b"0" {
            return None;
        }
        if name == header::ACCEPT && line.value.windows(17).any(|w| w.eq_ignore_ascii_case(b"text/event-stream")) {
            wants_stream = true;
        }
        request = request.header(name, HeaderValue::from_bytes(line.value).ok()?);
    }
    if !wants_stream {
        return None;
    }
    request.extension(ConnectInfo(remote)).body(Body::empty()).ok()
}

/// Answers `request` through `app` on `tcp` and closes the connection: the
/// head, then the body as it comes (chunked for HTTP/1.1, up to the close
/// for HTTP/1.0, or with its length when known). A client that closes its
/// side ends the response at once (its stream, and its presence, go); so
/// does one that takes nothing for `STALLED_CLIENT`.
pub(super) async fn answer(mut tcp: TcpStream, request: Request<Body>, app: Router) -> io::Result<()> {
    let http10 = request.version() == Version::HTTP_10;
    // Boxed, as the head below is dropped before the body streams: a
    // viewer's task holds neither the router's future nor the response's
    // header map while it waits for events.
    let Ok(response) = Box::pin(app.oneshot(request)).await;
    let (parts, mut body) = response.into_parts();
    let length = body.size_hint().exact();
    let chunked = length.is_none() && !http10;
    let head = head(&parts, length, chunked);
    drop(parts);
    tcp.write_all(&head).await?;
    drop(head);
    let (mut reader, mut writer) = tcp.split();
    let mut ignored = [0u8; 64];
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue }; // trailers: none are sent
                    if !data.is_empty() {
                        let piece = piece(data, chunked);
                        if tokio::time::timeout(STALLED_CLIENT, writer.write_all(&piece)).await.is_err() {
                            tracing::debug!("a client took nothing for {STALLED_CLIENT:?}; its stream is dropped");
                            return Ok(());
                        }
                    }
                }
                Some(Err(error)) => {
                    // Cut short: no last chunk, so the client sees it was.
                    tracing::debug!(%error, "an event stream's body failed");
                    return Ok(());
                }
                None => break,
            },
            read = reader.read(&mut ignored) => match read {
                Ok(0) | Err(_) => return Ok(()), // the client is gone
                Ok(_) => {} // a pipelined request: this connection closes after the response
            },
        }
    }
    if chunked {
        writer.write_all(b"0\r\n\r\n").await?;
    }
    writer.shutdown().await
}

/// The response's status line and header block.
fn head(parts: &axum::http::response::Parts, length: Option<u64>, chunked: bool) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    let status = parts.status;
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if [header::CONNECTION, header::TRANSFER_ENCODING, header::CONTENT_LENGTH, header::DATE].contains(name) {
            continue;
        }
        line(&mut head, name.as_str(), value.as_bytes());
    }
    line(&mut head, "date", httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    line(&mut head, "connection", b"close");
    if let Some(length) = length {
        line(&mut head, "content-length", length.to_string().as_bytes());
    } else if chunked {
        line(&mut head, "transfer-encoding", b"chunked");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn line(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// A piece of the body as it goes on the wire.
fn piece(data: Bytes, chunked: bool) -> Bytes {
    if !chunked {
        return data;
    }
    let size = format!("{:x}\r\n", data.len());
    let mut piece = Vec::with_capacity(size.len() + data.len() + 2);
    piece.extend_from_slice(size.as_bytes());
    piece.extend_from_slice(&data);
    piece.extend_from_slice(b"\r\n");
    Bytes::from(piece)
}

/// The connection as hyper reads it: the bytes read while sorting it come
/// first, then the socket.
pub(super) struct Primed {
    read: Option<Bytes>,
    tcp: TcpStream,
}

impl Primed {
    pub(super) fn new(read: Bytes, tcp: TcpStream) -> Self {
        Self { read: (!read.is_empty()).then_some(read), tcp }
    }
}

impl AsyncRead for Primed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(read) = self.read.as_mut() {
            let n = read.len().min(buf.remaining());
            buf.put_slice(&read.split_to(n));
            if read.is_empty() {
                self.read = None; // its allocation goes with it
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Primed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
