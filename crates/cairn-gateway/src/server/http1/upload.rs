//! A request whose body is read while it is handled (`Next::Streamed`):
//! the body handed to the handler as it arrives, the response's connection
//! settled after it, and what the handler left unread read past or the
//! connection closed.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::super::STALLED_CLIENT;
use super::super::incoming::{Decoded, Decoder, Piece};
use super::{Answer, Connection, send};

/// What the first read of a streamed body takes at most; each read that
/// fills its room doubles the next one's, up to `BODY_READ_MAX` (a large
/// upload moves in fewer, larger pieces; a small body reserves little).
const BODY_READ: usize = 64 * 1024;
const BODY_READ_MAX: usize = 512 * 1024;
/// What is read past of a body its handler left unread (it answered
/// before reading it all: a refusal), so the connection can take the next
/// request; with more left, or not within `DRAIN_TIME`, it is closed.
const DRAIN_LIMIT: u64 = 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);
/// Before a connection with part of an upload unread closes, what the
/// client still sends is read and dropped for this long (up to
/// `LINGER_LIMIT`): a close with bytes unread resets the connection, and a
/// reset can discard the response before the client has read it.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_LIMIT: usize = 16 * 1024 * 1024;

/// A request's body as it is read while the request is handled: where its
/// framing stands, the bytes received and not yet handed over (with what
/// came after the body), and the handler's end of it.
pub(in crate::server) struct Upload {
    decoder: Decoder,
    received: BytesMut,
    /// Gone once the body has ended, failed, or the handler dropped it.
    sender: Option<mpsc::Sender<Piece>>,
    /// `Expect: 100-continue`, not yet answered.
    continue_owed: bool,
    /// Cut short or framed wrongly: the connection cannot be read further.
    failed: bool,
    /// Room for the next read (`BODY_READ` to `BODY_READ_MAX`).
    read_size: usize,
}

impl Upload {
    /// A body framed by `decoder`, `received` holding what came of it with
    /// its head, fed to the handler through `sender`.
    pub(super) fn new(
        decoder: Decoder,
        received: BytesMut,
        sender: mpsc::Sender<Piece>,
        expect_continue: bool,
    ) -> Self {
        Self {
            decoder,
            received,
            sender: Some(sender),
            continue_owed: expect_continue,
            failed: false,
            read_size: BODY_READ,
        }
    }

    /// Whether the body has been read to its end.
    pub(in crate::server) fn ended(&self) -> bool {
        self.decoder.ended()
    }

    /// Hands `error` to the handler's body and stops reading it.
    fn fail(&mut self, error: io::Error) {
        self.failed = true;
        if let Some(sender) = self.sender.take() {
            // A full channel: dropping the sender ends the body with an
            // error all the same.
            let _ = sender.try_send(Err(error));
        }
    }
}

impl Connection {
    /// Runs `handling` while its request's body is read into it, after
    /// answering `Expect: 100-continue`; the handler's output.
    pub(in crate::server) async fn receive<T>(&mut self, upload: &mut Upload, handling: impl Future<Output = T>) -> T {
        if upload.continue_owed {
            match send(&mut self.tcp, &mut &b"HTTP/1.1 100 Continue\r\n\r\n"[..]).await {
                Ok(true) => upload.continue_owed = false,
                _ => upload.fail(io::Error::new(io::ErrorKind::BrokenPipe, "the client took no 100 Continue")),
            }
        }
        let mut handling = std::pin::pin!(handling);
        let mut reading = upload.sender.is_some();
        loop {
            tokio::select! {
                output = &mut handling => return output,
                () = self.read_body(upload), if reading => reading = false,
            }
        }
    }

    /// Reads the body and hands it over piece by piece, until it ends,
    /// fails (cut short, framed wrongly, or nothing for `STALLED_CLIENT`)
    /// or the handler drops it.
    async fn read_body(&mut self, upload: &mut Upload) {
        loop {
            let Some(sender) = &upload.sender else { return };
            let piece = match upload.decoder.decode(&mut upload.received) {
                Ok(Decoded::Data(data)) => Ok(Some(data)),
                Ok(Decoded::End) => Ok(None),
                Ok(Decoded::More) => match read_body_bytes(&mut self.tcp, &mut upload.received, upload.read_size).await
                {
                    Ok(read) => {
                        if read >= upload.read_size {
                            upload.read_size = (upload.read_size * 2).min(BODY_READ_MAX);
                        }
                        continue;
                    }
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
            let last = !matches!(piece, Ok(Some(_)));
            upload.failed |= piece.is_err();
            if sender.send(piece).await.is_err() || last {
                upload.sender = None;
                return;
            }
        }
    }

    /// Once the handler has answered: what came after the body is kept
    /// for the next request, and the answer says the connection closes
    /// when the rest of the body cannot be read past.
    pub(in crate::server) fn settle(&mut self, upload: &mut Upload, answer: Answer) -> Answer {
        // A body still held (by a task the handler left running) sees it
        // cut short, not ended.
        upload.sender = None;
        if upload.decoder.ended() {
            self.pending = std::mem::take(&mut upload.received).to_vec();
            return answer;
        }
        let too_long = upload.decoder.remaining().is_some_and(|left| left > DRAIN_LIMIT);
        if upload.failed || upload.continue_owed || too_long { Answer { keep_alive: false, ..answer } } else { answer }
    }

    /// After the response to a request whose handler left part of its body
    /// unread: reads past it (at most `DRAIN_LIMIT` bytes, within
    /// `DRAIN_TIME`) so the connection can take the next request. Whether
    /// it can; if not, the connection is closed (lingering).
    pub(in crate::server) async fn drain(&mut self, upload: &mut Upload) -> bool {
        if upload.decoder.ended() {
            return true;
        }
        // Bytes read while the response was written came after these.
        upload.received.extend_from_slice(&std::mem::take(&mut self.pending));
        let deadline = Instant::now() + DRAIN_TIME;
        let mut drained = 0u64;
        let whole = loop {
            match upload.decoder.decode(&mut upload.received) {
                Ok(Decoded::Data(data)) => drained += data.len() as u64,
                Ok(Decoded::End) => break true,
                Ok(Decoded::More) if drained <= DRAIN_LIMIT => {
                    let read = read_body_bytes(&mut self.tcp, &mut upload.received, BODY_READ);
                    if !matches!(tokio::time::timeout_at(deadline, read).await, Ok(Ok(_))) {
                        break false;
                    }
                }
                Ok(Decoded::More) | Err(_) => break false,
            }
        };
        if whole {
            self.pending = std::mem::take(&mut upload.received).to_vec();
            return true;
        }
        let _ = self.tcp.shutdown().await;
        self.linger().await;
        false
    }

    /// Reads and drops what the client still sends, for `LINGER_TIME` at
    /// most, before a connection with part of a body unread closes.
    pub(in crate::server) async fn linger(&mut self) {
        let deadline = Instant::now() + LINGER_TIME;
        let mut sink = vec![0u8; 16 * 1024];
        let mut read = 0;
        while read < LINGER_LIMIT {
            match tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(&mut self.tcp, &mut sink)).await {
                Ok(Ok(n)) if n > 0 => read += n,
                _ => return,
            }
        }
    }
}

/// Reads more of a streamed body into `received` (with room for `room`
/// bytes), how many came: an error when the
/// client closed before the body's end or sent nothing for
/// `STALLED_CLIENT`.
async fn read_body_bytes(
    socket: &mut (impl AsyncRead + Unpin),
    received: &mut BytesMut,
    room: usize,
) -> io::Result<usize> {
    received.reserve(room);
    match tokio::time::timeout(STALLED_CLIENT, tokio::io::AsyncReadExt::read_buf(socket, received)).await {
        Ok(Ok(0)) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the client closed before the body's end")),
        Ok(Ok(read)) => Ok(read),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the client sent none of the body for 30 s")),
    }
}
