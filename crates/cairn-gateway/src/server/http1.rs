//! Cairn's own HTTP/1.1 keep-alive loop, for every request but upgrades:
//! a head of at most `HEAD_LIMIT` bytes, and a body read whole before the
//! request is handled when its length is given and at most `BODY_LIMIT`
//! bytes, else (an upload, a chunked body, `Expect: 100-continue`) handed
//! to the handler as it arrives (`incoming` decodes it, `upload` feeds it
//! and settles the connection after it).
//!
//! A connection stays here from request to request, so an event stream is
//! answered here whether it is a connection's first request or a later one
//! (a browser's, or a proxy's pooled upstream connection): an idle viewer
//! holds its stream and a socket, not hyper's 8 KiB read and write buffers
//! and the header map it keeps for reuse (`BENCHMARKS.md`, "The heap an idle
//! viewer holds"). Between requests a connection holds no buffer at all.
//!
//! What this loop does not take goes to hyper for the rest of the
//! connection, with the bytes read so far handed back first (`Primed`):
//! upgrades (WebSocket), `CONNECT`, a head longer than `HEAD_LIMIT`, a
//! transfer coding other than `chunked`, both a length and a coding, and
//! anything that does not parse (which hyper refuses with its 4xx).

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::STALLED_CLIENT;
use super::incoming::{Decoder, Receiving};

mod upload;

pub(super) use upload::Upload;

/// A request's head is looked for within this many bytes (hyper's first
/// read takes as many); a longer head is left to hyper.
const HEAD_LIMIT: usize = 8 * 1024;
/// A body up to this size is read here, whole, before the request is
/// handled; a larger one (an upload) reaches its handler as it comes.
const BODY_LIMIT: u64 = 64 * 1024;
/// What one read takes at most when `pending` has no room for it.
const READ_CHUNK: usize = 4 * 1024;
/// Header lines looked at; a request with more is left to hyper (which
/// refuses it with 431).
const MAX_HEADERS: usize = 64;

/// A connection served by this loop: its socket and the bytes read but not
/// yet taken (the rest of a head, or requests sent ahead — pipelined).
pub(super) struct Connection {
    tcp: TcpStream,
    remote: SocketAddr,
    pending: Vec<u8>,
}

/// What came next on a connection.
pub(super) enum Next {
    /// A request to handle here, and how to answer it.
    Request(Box<Request<Body>>, Answer),
    /// One whose body is read while it is handled (`Connection::receive`).
    Streamed(Box<Request<Body>>, Answer, Upload),
    /// One to leave to hyper, with the rest of the connection.
    Hyper,
    /// The client closed (or sent only part of a request before it did).
    Closed,
}

/// What a response needs to know of the request it answers.
#[derive(Clone, Copy)]
pub(super) struct Answer {
    /// Whether the client keeps the connection after this response.
    keep_alive: bool,
    http10: bool,
    /// A `HEAD` request: the response has no body.
    head: bool,
}

impl Connection {
    pub(super) fn new(tcp: TcpStream, remote: SocketAddr) -> Self {
        Self { tcp, remote, pending: Vec::new() }
    }

    pub(super) fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The connection as hyper reads it from here on: the bytes read so far
    /// first, then the socket.
    pub(super) fn into_hyper(self) -> Primed {
        Primed::new(Bytes::from(self.pending), self.tcp)
    }

    /// Reads the next request: its head and, if it has one, its body.
    pub(super) async fn next(&mut self) -> io::Result<Next> {
        loop {
            if !self.pending.is_empty() {
                match parse(&self.pending, self.remote) {
                    Parsed::Partial if self.pending.len() < HEAD_LIMIT => {}
                    Parsed::Partial | Parsed::Hyper => return Ok(Next::Hyper),
                    Parsed::Complete {
                        request,
                        answer,
                        head_length,
                        content: Content::Streamed { decoder, expect_continue },
                    } => {
                        let received = BytesMut::from(&self.pending[head_length..]);
                        self.pending = Vec::new();
                        let (sender, body) = Receiving::new(decoder.remaining());
                        let request = Box::new(request.map(|()| Body::new(body)));
                        let upload = Upload::new(decoder, received, sender, expect_continue);
                        return Ok(Next::Streamed(request, answer, upload));
                    }
                    Parsed::Complete { request, answer, head_length, content: Content::Whole(body_length) } => {
                        let end = head_length + body_length;
                        self.pending.reserve(end.saturating_sub(self.pending.len()));
                        while self.pending.len() < end {
                            if read_into(&mut self.tcp, &mut self.pending).await? == 0 {
                                return Ok(Next::Closed);
                            }
                        }
                        let body = Bytes::copy_from_slice(&self.pending[head_length..end]);
                        self.take(end);
                        let request =
                            Box::new(request.map(|()| if body.is_empty() { Body::empty() } else { Body::from(body) }));
                        return Ok(Next::Request(request, answer));
                    }
                }
            }
            if read_into(&mut self.tcp, &mut self.pending).await? == 0 {
                return Ok(Next::Closed);
            }
        }
    }

    /// Drops the first `n` pending bytes (and the buffer, once empty).
    fn take(&mut self, n: usize) {
        if n == self.pending.len() {
            self.pending = Vec::new();
        } else {
            self.pending.drain(..n);
        }
    }

    /// Writes `response`: its head, then its body as it comes — with its
    /// length when known, else chunked (HTTP/1.1) or up to the close
    /// (HTTP/1.0). A client that closes its side ends a stream at once (its
    /// presence goes with it); one that takes nothing for `STALLED_CLIENT`
    /// is dropped. Whether the connection takes another request after.
    pub(super) async fn respond(
        &mut self,
        answer: Answer,
        response: Response<Body>,
        stopping: bool,
    ) -> io::Result<bool> {
        let (parts, mut body) = response.into_parts();
        let status = parts.status;
        let bodiless = answer.head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let framing = if bodiless {
            Framing::None
        } else if let Some(length) = body.size_hint().exact().or_else(|| content_length(&parts.headers)) {
            Framing::Length(length)
        } else if answer.http10 {
            Framing::Close
        } else {
            Framing::Chunked
        };
        let mut keep_alive =
            answer.keep_alive && !stopping && !matches!(framing, Framing::Close) && !has_token(&parts.headers, "close");
        let head = head(&parts, framing, keep_alive, answer.http10);
        drop(parts);
        let (mut reader, mut writer) = self.tcp.split();
        // A known length waits for its first piece, to go in one write with
        // the head; a stream's head goes at once.
        let mut unsent = Some(head);
        if !matches!(framing, Framing::Length(_)) {
            let head = unsent.take().unwrap_or_default();
            if !send(&mut writer, &mut head.as_slice()).await? {
                return Ok(false);
            }
        }
        if matches!(framing, Framing::None) {
            return Ok(keep_alive);
        }
        let mut sent = 0u64;
        let mut watching = true;
        loop {
            tokio::select! {
                frame = body.frame() => match frame {
                    None => break,
                    Some(Err(error)) => {
                        // Cut short: no last chunk or a short body, so the
                        // client sees it was.
                        tracing::debug!(%error, "a response's body failed");
                        return Ok(false);
                    }
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else { continue }; // trailers: none are sent
                        if data.is_empty() {
                            continue;
                        }
                        sent += data.len() as u64;
                        if matches!(framing, Framing::Length(length) if sent > length) {
                            tracing::warn!("a response's body is longer than its length; closing the connection");
                            return Ok(false);
                        }
                        let head = unsent.take().unwrap_or_default();
                        let mut size = ChunkSize::new(if matches!(framing, Framing::Chunked) { Some(data.len()) } else { None });
                        let end: &[u8] = if matches!(framing, Framing::Chunked) { b"\r\n" } else { b"" };
                        let mut piece = head.as_slice().chain(size.as_slice()).chain(data).chain(end);
                        if !send(&mut writer, &mut piece).await? {
                            return Ok(false);
                        }
                    }
                },
                read = read_into(&mut reader, &mut self.pending), if watching => match read {
                    Ok(0) | Err(_) => {
                        // The client is gone, or sends no more: a stream
                        // ends, a response of known length is finished.
                        if !matches!(framing, Framing::Length(_)) {
                            return Ok(false);
                        }
                        (watching, keep_alive) = (false, false);
                    }
                    // Requests sent ahead, kept for after this response (up
                    // to a head's worth and its body).
                    Ok(_) => watching = self.pending.len() < HEAD_LIMIT + BODY_LIMIT as usize,
                },
            }
        }
        let mut tail: Vec<u8> = unsent.take().unwrap_or_default();
        match framing {
            Framing::Length(length) if sent != length => {
                tracing::warn!(sent, length, "a response's body is shorter than its length; closing the connection");
                keep_alive = false;
            }
            Framing::Chunked => tail.extend_from_slice(b"0\r\n\r\n"),
            _ => {}
        }
        if !tail.is_empty() && !send(&mut writer, &mut tail.as_slice()).await? {
            return Ok(false);
        }
        if !keep_alive {
            let _ = writer.shutdown().await;
        }
        Ok(keep_alive)
    }
}

/// How a response's body goes on the wire.
#[derive(Clone, Copy)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Up to the connection's close (HTTP/1.0, length unknown).
    Close,
}

/// Writes `buf` whole, or reports `false` once the client has taken none of
/// it for `STALLED_CLIENT`.
async fn send(writer: &mut (impl AsyncWrite + Unpin), buf: &mut impl Buf) -> io::Result<bool> {
    match tokio::time::timeout(STALLED_CLIENT, writer.write_all_buf(buf)).await {
        Ok(written) => written.map(|()| true),
        Err(_) => {
            tracing::debug!("a client took nothing for {STALLED_CLIENT:?}; its connection is dropped");
            Ok(false)
        }
    }
}

/// Waits until `socket` has bytes and appends them to `pending`. Zero:
/// closed. Into `pending`'s spare room if it has enough, else through the
/// thread's scratch buffer, so `pending` grows only by what came: readiness
/// can be stale, and a connection waiting on an idle client must not
/// reserve room before it knows bytes are there. The scratch buffer is
/// zeroed once per thread, not on every read (a zeroed array on the stack
/// cost more than the rest of the read). Reads go through `poll_read`,
/// which takes a short read as the socket drained, so the next request
/// waits for the socket instead of first trying a read that finds nothing.
async fn read_into(socket: &mut (impl AsyncRead + Unpin), pending: &mut Vec<u8>) -> io::Result<usize> {
    thread_local! {
        static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into());
    }
    if pending.capacity() - pending.len() >= READ_CHUNK {
        return tokio::io::AsyncReadExt::read_buf(socket, pending).await;
    }
    std::future::poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|chunk| {
            let mut buf = ReadBuf::new(chunk);
            std::task::ready!(Pin::new(&mut *socket).poll_read(cx, &mut buf))?;
            pending.extend_from_slice(buf.filled());
            Poll::Ready(Ok(buf.filled().len()))
        })
    })
    .await
}

/// How a request's body comes, as its head says.
enum Content {
    /// Read here, whole (this many bytes), before the request is handled.
    Whole(usize),
    /// Handed to the handler as it comes.
    Streamed { decoder: Decoder, expect_continue: bool },
}

/// A request's head, as far as it came.
enum Parsed {
    Partial,
    /// Not one for this loop (or not HTTP): hyper's.
    Hyper,
    Complete {
        request: Box<Request<()>>,
        answer: Answer,
        head_length: usize,
        content: Content,
    },
}

fn parse(bytes: &[u8], remote: SocketAddr) -> Parsed {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut lines);
    let head_length = match head.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Hyper,
    };
    match request(&head, remote) {
        Some((request, answer, content)) => {
            Parsed::Complete { request: Box::new(request), answer, head_length, content }
        }
        None => Parsed::Hyper,
    }
}

/// The request, if this loop can serve it; `None` leaves it to hyper.
fn request(head: &httparse::Request<'_, '_>, remote: SocketAddr) -> Option<(Request<()>, Answer, Content)> {
    let http10 = head.version? == 0;
    let method = Method::from_bytes(head.method?.as_bytes()).ok()?;
    if method == Method::CONNECT {
        return None;
    }
    let uri = Uri::try_from(head.path?).ok()?;
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    let mut body_length = None;
    let (mut close, mut keep_alive, mut chunked, mut expect_continue) = (false, false, false, false);
    for line in head.headers.iter() {
        let name = HeaderName::from_bytes(line.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(line.value).ok()?;
        if name == header::UPGRADE {
            return None;
        }
        if name == header::TRANSFER_ENCODING {
            // Plain `chunked`, once, in HTTP/1.1; any other coding, a list
            // of them, or one in HTTP/1.0 is hyper's to take or refuse.
            if http10 || chunked || !line.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return None;
            }
            chunked = true;
        }
        // HTTP/1.0 knows no 100 Continue; an expectation other than it is
        // passed over (as hyper does), which RFC 9110 allows.
        if name == header::EXPECT && !http10 && line.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
            expect_continue = true;
        }
        if name == header::CONTENT_LENGTH {
            // Digits only (`parse` would take a leading `+`, which a proxy
            // in front may read otherwise): anything else is hyper's to refuse.
            if line.value.is_empty() || !line.value.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let length: u64 = std::str::from_utf8(line.value).ok()?.parse().ok()?;
            if body_length.is_some() {
                return None;
            }
            body_length = Some(length);
        }
        if name == header::CONNECTION {
            for token in tokens(line.value) {
                if token.eq_ignore_ascii_case(b"upgrade") {
                    return None;
                }
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        headers.append(name, value);
    }
    let answer =
        Answer { keep_alive: if http10 { keep_alive && !close } else { !close }, http10, head: method == Method::HEAD };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if http10 { Version::HTTP_10 } else { Version::HTTP_11 };
    *request.headers_mut() = headers;
    request.extensions_mut().insert(ConnectInfo(remote));
    let content = match (chunked, body_length) {
        // Both a length and a coding: framed ambiguously (a proxy in front
        // may read it otherwise); hyper's to take or refuse.
        (true, Some(_)) => return None,
        (true, None) => Content::Streamed { decoder: Decoder::chunked(), expect_continue },
        (false, Some(length)) if length > BODY_LIMIT || (expect_continue && length > 0) => {
            Content::Streamed { decoder: Decoder::Length(length), expect_continue }
        }
        (false, length) => Content::Whole(length.unwrap_or(0) as usize),
    };
    Some((request, answer, content))
}

/// The response's status line and header block.
fn head(parts: &axum::http::response::Parts, framing: Framing, keep_alive: bool, http10: bool) -> Vec<u8> {
    // Room for Cairn's heads (its security headers alone take about 450
    // bytes): no regrowth while it is written.
    let mut head = Vec::with_capacity(1024);
    let status = parts.status;
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    // A bodiless answer to HEAD, or a 304, says the length the body would
    // have had, as the app gave it.
    let own_length = !matches!(framing, Framing::None);
    for (name, value) in &parts.headers {
        if name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || name == header::DATE
            || (name == header::CONTENT_LENGTH && (own_length || parts.status == StatusCode::NO_CONTENT))
        {
            continue;
        }
        line(&mut head, name.as_str().as_bytes(), value.as_bytes());
    }
    DATE.with_borrow_mut(|date| line(&mut head, b"date", date.now()));
    match framing {
        Framing::Length(length) => line(&mut head, b"content-length", length.to_string().as_bytes()),
        Framing::Chunked => line(&mut head, b"transfer-encoding", b"chunked"),
        Framing::None | Framing::Close => {}
    }
    if !keep_alive {
        line(&mut head, b"connection", b"close");
    } else if http10 {
        line(&mut head, b"connection", b"keep-alive");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn line(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    head.extend_from_slice(name);
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Whether a `Connection` header names `token`.
fn has_token(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|value| tokens(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(token.as_bytes())))
}

/// The comma-separated tokens of a `Connection` header's value.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// A chunk's size line (`1a2b\r\n`), or nothing outside chunked framing.
struct ChunkSize {
    bytes: [u8; 18],
    start: usize,
}

impl ChunkSize {
    fn new(size: Option<usize>) -> Self {
        let mut bytes = [0u8; 18];
        let Some(mut size) = size else { return Self { bytes, start: bytes.len() } };
        let mut start = bytes.len() - 2;
        bytes[start..].copy_from_slice(b"\r\n");
        loop {
            start -= 1;
            bytes[start] = b"0123456789abcdef"[size & 15];
            size >>= 4;
            if size == 0 {
                break;
            }
        }
        Self { bytes, start }
    }

    fn as_slice(&mut self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// The `date` header's value, formatted once a second per thread.
struct CachedDate {
    second: u64,
    text: [u8; 29],
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.text.copy_from_slice(httpdate::fmt_http_date(now).as_bytes());
        }
        &self.text
    }
}

thread_local! {
    static DATE: RefCell<CachedDate> = const { RefCell::new(CachedDate { second: 0, text: [0; 29] }) };
}

/// The connection as hyper reads it: the bytes read here come first, then
/// the socket.
pub(super) struct Primed {
    read: Option<Bytes>,
    tcp: TcpStream,
}

impl Primed {
    fn new(read: Bytes, tcp: TcpStream) -> Self {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A client's socket and the server's connection to it.
    async fn connected() -> (TcpStream, Connection) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (tcp, remote) = listener.accept().await.unwrap();
        (client, Connection::new(tcp, remote))
    }

    /// Answers a request with a stream that never ends (an idle thread's)
    /// and checks the connection holds no read buffer while it goes on.
    async fn an_idle_stream_holds_no_read_buffer(connection: &mut Connection, answer: Answer) {
        let never = Body::from_stream(futures::stream::pending::<Result<Bytes, io::Error>>());
        let streaming = connection.respond(answer, Response::new(never), false);
        assert!(tokio::time::timeout(Duration::from_millis(300), streaming).await.is_err(), "the stream goes on");
        assert_eq!(connection.pending.capacity(), 0, "no room is held for a read that finds nothing");
    }

    /// A connection streaming to a client that sends nothing more holds no
    /// read buffer, whether or not its socket still looks readable from the
    /// request it read.
    #[tokio::test]
    async fn a_stream_to_an_idle_client_holds_no_read_buffer() {
        let (mut client, mut connection) = connected().await;
        client.write_all(b"GET /events HTTP/1.1\r\nHost: cairn.test\r\n\r\n").await.unwrap();
        let Next::Request(request, answer) = connection.next().await.unwrap() else { panic!("a request") };
        assert_eq!(request.uri().path(), "/events");
        assert_eq!(connection.pending.capacity(), 0, "the request's bytes are gone once it is read");
        an_idle_stream_holds_no_read_buffer(&mut connection, answer).await;
    }

    /// An upload (a chunked body, then one larger than is read whole) stays
    /// on this loop, and an event stream after it on the same connection
    /// holds no read buffer either: nothing of the uploads is kept.
    #[tokio::test]
    async fn a_stream_after_uploads_on_its_connection_holds_no_read_buffer() {
        let (mut client, mut connection) = connected().await;
        let large = vec![b'x'; 300 * 1024];
        let client_side = tokio::spawn(async move {
            client
                .write_all(b"POST /files HTTP/1.1\r\nHost: cairn.test\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            for _ in 0..3 {
                client.write_all(format!("{:x}\r\n", large.len()).as_bytes()).await.unwrap();
                client.write_all(&large).await.unwrap();
                client.write_all(b"\r\n").await.unwrap();
            }
            client.write_all(b"0\r\n\r\n").await.unwrap();
            let head = format!("PUT /files HTTP/1.1\r\nHost: cairn.test\r\nContent-Length: {}\r\n\r\n", large.len());
            client.write_all(head.as_bytes()).await.unwrap();
            client.write_all(&large).await.unwrap();
            client.write_all(b"GET /events HTTP/1.1\r\nHost: cairn.test\r\n\r\n").await.unwrap();
            client // kept open: the stream's viewer
        });
        for expected in [900 * 1024, 300 * 1024] {
            let Next::Streamed(request, answer, mut upload) = connection.next().await.unwrap() else {
                panic!("an upload stays on this loop")
            };
            let body = connection.receive(&mut upload, request.into_body().collect()).await.unwrap().to_bytes();
            assert_eq!(body.len(), expected);
            let answer = connection.settle(&mut upload, answer);
            assert!(connection.respond(answer, Response::new(Body::from("saved")), false).await.unwrap());
            assert!(connection.drain(&mut upload).await, "the body was read whole");
        }
        let Next::Request(request, answer) = connection.next().await.unwrap() else { panic!("a request") };
        assert_eq!(request.uri().path(), "/events");
        an_idle_stream_holds_no_read_buffer(&mut connection, answer).await;
        drop(client_side.await.unwrap());
    }
}
