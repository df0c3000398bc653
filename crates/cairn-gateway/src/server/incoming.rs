//! Request bodies that reach their handler as they arrive: one longer than
//! `http1` reads whole, or sent in chunks (`Transfer-Encoding: chunked`).
//! The connection's loop reads and decodes the body while the handler runs
//! and hands it over piece by piece through a channel of one piece (so a
//! slow handler slows the client, not the server's memory); the handler
//! sees a body that ends only once its last byte came, and an error when
//! it was cut short or framed wrongly.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Room for a chunk's size line with its extensions.
const SIZE_LINE_LIMIT: usize = 4 * 1024;
/// Room for the trailer fields after the last chunk (they are read and
/// dropped: nothing in Cairn reads trailers).
const TRAILERS_LIMIT: usize = 8 * 1024;

/// A piece of a body handed to its handler: data, its end, or why it
/// failed.
pub(super) type Piece = Result<Option<Bytes>, io::Error>;

/// Reads a body's framing off the bytes received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decoder {
    /// This many bytes are still to come.
    Length(u64),
    Chunked(Chunked),
}

/// Where a chunked body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Before a chunk's size line.
    Size,
    /// Within a chunk, this many bytes of it still to come.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer fields, up to an empty line (the
    /// trailer bytes read so far).
    Trailers(usize),
    Done,
}

/// What decoding found next in the bytes received.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decoded {
    Data(Bytes),
    /// More bytes are needed.
    More,
    /// The body has ended; what follows belongs to the next request.
    End,
}

impl Decoder {
    pub(super) fn chunked() -> Self {
        Self::Chunked(Chunked::Size)
    }

    /// Whether the body has ended on the wire.
    pub(super) fn ended(&self) -> bool {
        matches!(self, Self::Length(0) | Self::Chunked(Chunked::Done))
    }

    /// The body's bytes still to come, when its length was given.
    pub(super) fn remaining(&self) -> Option<u64> {
        match self {
            Self::Length(remaining) => Some(*remaining),
            Self::Chunked(_) => None,
        }
    }

    /// Takes the next piece of the body off the front of `buf`.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Decoded> {
        loop {
            match self {
                Self::Length(0) | Self::Chunked(Chunked::Done) => return Ok(Decoded::End),
                Self::Length(remaining) | Self::Chunked(Chunked::Data(remaining)) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = (*remaining).min(buf.len() as u64);
                    *remaining -= n;
                    if let Self::Chunked(state @ Chunked::Data(0)) = self {
                        *state = Chunked::DataEnd;
                    }
                    return Ok(Decoded::Data(buf.split_to(n as usize).freeze()));
                }
                Self::Chunked(state) => {
                    let Some(line) = next_line(buf)? else {
                        let limit =
                            if matches!(state, Chunked::Trailers(_)) { TRAILERS_LIMIT } else { SIZE_LINE_LIMIT };
                        return if buf.len() > limit {
                            Err(malformed("a chunk's line is too long"))
                        } else {
                            Ok(Decoded::More)
                        };
                    };
                    *state = match *state {
                        Chunked::Size if line.len() > SIZE_LINE_LIMIT => {
                            return Err(malformed("a chunk's line is too long"));
                        }
                        Chunked::Size => match chunk_size(&line)? {
                            0 => Chunked::Trailers(0),
                            size => Chunked::Data(size),
                        },
                        Chunked::DataEnd if line.is_empty() => Chunked::Size,
                        Chunked::DataEnd => return Err(malformed("a chunk is longer than its size")),
                        Chunked::Trailers(_) if line.is_empty() => Chunked::Done,
                        Chunked::Trailers(read) if read + line.len() + 2 > TRAILERS_LIMIT => {
                            return Err(malformed("the trailers are too long"));
                        }
                        Chunked::Trailers(read) => Chunked::Trailers(read + line.len() + 2),
                        Chunked::Data(_) | Chunked::Done => unreachable!("handled above"),
                    };
                }
            }
        }
    }
}

/// The next CRLF-ended line at the front of `buf`, taken off it without
/// its CRLF; `None` until one has come. A bare LF is refused: a proxy in
/// front may split lines otherwise (request smuggling).
fn next_line(buf: &mut BytesMut) -> io::Result<Option<Bytes>> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else { return Ok(None) };
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(malformed("a line of the chunked framing does not end in CRLF"));
    }
    let line = buf.split_to(end + 1);
    Ok(Some(line.freeze().slice(..end - 1)))
}

/// A chunk's size: hex digits, then optionally extensions after `;`
/// (ignored), with spaces or tabs before them.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || digits > 16 || !(rest.is_empty() || rest[0] == b';') {
        return Err(malformed("a chunk's size is not hex digits"));
    }
    let digits = std::str::from_utf8(&line[..digits]).map_err(|_| malformed("a chunk's size is not hex digits"))?;
    u64::from_str_radix(digits, 16).map_err(|_| malformed("a chunk's size is too large"))
}

fn malformed(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// The handler's side: the request's body as the connection reads it.
pub(super) struct Receiving {
    pieces: mpsc::Receiver<Piece>,
    /// The bytes still to come, when the length was given.
    remaining: Option<u64>,
    ended: bool,
}

impl Receiving {
    /// A body fed through the returned sender.
    pub(super) fn new(remaining: Option<u64>) -> (mpsc::Sender<Piece>, Self) {
        let (sender, pieces) = mpsc::channel(1);
        (sender, Self { pieces, remaining, ended: false })
    }
}

impl Body for Receiving {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let piece = match std::task::ready!(self.pieces.poll_recv(cx)) {
            Some(Ok(Some(data))) => {
                if let Some(remaining) = &mut self.remaining {
                    *remaining = remaining.saturating_sub(data.len() as u64);
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Some(Ok(None)) => None,
            Some(Err(error)) => Some(Err(error)),
            // The connection stopped feeding before the end: never a
            // clean end, which would pass a cut-off body as whole.
            None => Some(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the request's body was cut short"))),
        };
        self.ended = true;
        Poll::Ready(piece)
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining.map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Decodes `wire` fed in pieces of `step` bytes; the body and what is
    /// left after it.
    fn decode(mut decoder: Decoder, wire: &[u8], step: usize) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::End => return Ok((body, buf.to_vec())),
                Decoded::More if fed < wire.len() => {
                    let end = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
                Decoded::More => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the wire ended")),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_pieces_they_come_in() {
        let wire = b"5\r\nhello\r\n7;name=value\r\n, world\r\n0\r\nx-sum: 1\r\n\r\nGET / HTTP/1.1\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (body, rest) = decode(Decoder::chunked(), wire, step).unwrap();
            assert_eq!(body, b"hello, world", "in pieces of {step}");
            // What came after the body is left for the next request.
            assert!(b"GET / HTTP/1.1\r\n".starts_with(&rest), "in pieces of {step}: {rest:?}");
        }
        let (body, rest) = decode(Decoder::chunked(), b"A \r\n0123456789\r\n0\r\n\r\nnext", 100).unwrap();
        assert_eq!((body.as_slice(), rest.as_slice()), (&b"0123456789"[..], &b"next"[..]));
    }

    #[test]
    fn length_bodies_end_at_their_length() {
        let (body, rest) = decode(Decoder::Length(5), b"helloGET", 2).unwrap();
        assert_eq!((body.as_slice(), &rest[..]), (&b"hello"[..], &b"G"[..]));
        assert!(Decoder::Length(0).ended());
    }

    /// Framing a proxy in front could read otherwise is refused, not
    /// guessed at.
    #[test]
    fn malformed_chunked_framing_is_refused() {
        for wire in [
            &b"5\nhello\r\n0\r\n\r\n"[..], // bare LF
            b"5\r\nhello!\r\n0\r\n\r\n",   // longer than its size
            b"+5\r\nhello\r\n0\r\n\r\n",   // a sign
            b"0x5\r\nhello\r\n0\r\n\r\n",  // a prefix
            b"\r\nhello\r\n0\r\n\r\n",     // no size
            b"fffffffffffffffff\r\n",      // more than 64 bits
            b"5 5\r\nhello\r\n0\r\n\r\n",  // junk after the size
        ] {
            let error = decode(Decoder::chunked(), wire, 3).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{}", String::from_utf8_lossy(wire));
        }
        let long = format!("5;{}\r\n", "e".repeat(SIZE_LINE_LIMIT + 10));
        assert_eq!(decode(Decoder::chunked(), long.as_bytes(), 512).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let trailers = format!("0\r\n{}\r\n", "x-t: 1\r\n".repeat(TRAILERS_LIMIT / 8 + 1));
        assert_eq!(
            decode(Decoder::chunked(), trailers.as_bytes(), 512).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[tokio::test]
    async fn a_body_fed_without_its_end_is_an_error_not_a_clean_end() {
        use http_body_util::BodyExt;
        let (sender, body) = Receiving::new(Some(10));
        assert_eq!(body.size_hint().exact(), Some(10));
        sender.send(Ok(Some(Bytes::from_static(b"hello")))).await.unwrap();
        let reading = tokio::spawn(body.collect());
        drop(sender);
        let error = reading.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);

        let (sender, body) = Receiving::new(None);
        let reading = tokio::spawn(body.collect());
        sender.send(Ok(Some(Bytes::from_static(b"whole")))).await.unwrap();
        sender.send(Ok(None)).await.unwrap();
        assert_eq!(reading.await.unwrap().unwrap().to_bytes(), Bytes::from_static(b"whole"));
    }
}
