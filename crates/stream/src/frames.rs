//! A guard in front of actix-ws's frame decoder that enforces `stream.max_frame_bytes` on what
//! frame headers *declare*, before any payload is buffered.
//!
//! actix-http's decoder waits for a whole frame before it compares the frame's length with its
//! limit, so a client that declares 2⁶³−1 bytes and keeps sending grows the gateway's buffer
//! without bound. [`Scanner`] follows the client's byte stream frame by frame, reading only the
//! headers (and the few bytes of a close frame's payload), and refuses:
//!
//! - a frame whose header declares more than the limit;
//! - a fragmented message whose frames, added up, declare more than the limit;
//! - a close frame whose status code may not be sent, or whose reason is not UTF-8 (actix
//!   reports both as "Bad opcode").
//!
//! [`guard`] wraps the request payload so the refusal reaches the session as a stream error
//! together with the [`Violation`] that says what was wrong.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

/// What a client's frames did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// One frame, or the frames of one fragmented message, declared more than the limit.
    TooLarge {
        /// Bytes declared.
        declared: u64,
        /// The limit.
        limit: usize,
    },
    /// A close frame carried a status code that may not be sent (RFC 6455 §7.4).
    CloseCode(u16),
    /// A close frame's payload was one byte, too short to hold a status code.
    CloseTooShort,
    /// A close frame's reason was not UTF-8.
    CloseReasonNotUtf8,
}

impl Violation {
    /// The close code and reason the session answers with (reasons stay under 123 bytes).
    pub fn close(&self) -> (actix_ws::CloseCode, String) {
        use actix_ws::CloseCode;
        match *self {
            Self::TooLarge { declared, limit } => (
                CloseCode::Size,
                format!("message of {declared} bytes declared; the limit is {limit}"),
            ),
            Self::CloseCode(code) => (
                CloseCode::Protocol,
                format!("close code {code} may not be sent; use 1000-1003, 1007-1014 or 3000-4999"),
            ),
            Self::CloseTooShort => (
                CloseCode::Protocol,
                "close payload of 1 byte; a status code takes 2".into(),
            ),
            Self::CloseReasonNotUtf8 => (
                CloseCode::Protocol,
                "close reason is not valid UTF-8".into(),
            ),
        }
    }
}

/// Longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;
/// Longest control-frame payload (RFC 6455 §5.5).
const MAX_CONTROL: u64 = 125;

/// Follows a client-to-server byte stream frame by frame.
#[derive(Debug)]
pub struct Scanner {
    limit: usize,
    header: [u8; MAX_HEADER],
    have: usize,
    /// Payload bytes of the current frame still to come; `None` while reading a header.
    remaining: Option<u64>,
    /// Bytes declared so far by the frames of the data message in progress.
    message: u64,
    /// The payload of a close frame being read, unmasked.
    close: Option<CloseCapture>,
}

#[derive(Debug)]
struct CloseCapture {
    mask: [u8; 4],
    bytes: Vec<u8>,
}

impl Scanner {
    /// A scanner enforcing `limit` bytes per message.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            header: [0; MAX_HEADER],
            have: 0,
            remaining: None,
            message: 0,
            close: None,
        }
    }

    /// Reads `chunk`. On a violation, returns how many bytes of `chunk` came before the
    /// offending frame (0 if it began in an earlier chunk), and the violation.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), (usize, Violation)> {
        let (mut at, mut frame_start) = (0, 0);
        while at < chunk.len() {
            if self.remaining.is_none() && self.have == 0 {
                frame_start = at;
            }
            at += match self.remaining {
                Some(remaining) => self.payload(&chunk[at..], remaining),
                None => self.header_bytes(&chunk[at..]),
            }
            .map_err(|v| (frame_start, v))?;
        }
        Ok(())
    }

    /// Takes header bytes from `input`; returns how many it used.
    fn header_bytes(&mut self, input: &[u8]) -> Result<usize, Violation> {
        let need = self.header_len();
        let take = (need - self.have).min(input.len());
        self.header[self.have..self.have + take].copy_from_slice(&input[..take]);
        self.have += take;
        if self.have >= 2 && self.have == self.header_len() {
            self.header_done()?;
        }
        Ok(take)
    }

    /// The full length of the header being read, as far as its first two bytes tell.
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let extended = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn header_done(&mut self) -> Result<(), Violation> {
        let (fin, opcode) = (self.header[0] & 0x80 != 0, self.header[0] & 0x0f);
        let (len, mask_at) = match self.header[1] & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                4,
            ),
            127 => {
                let mut be = [0; 8];
                be.copy_from_slice(&self.header[2..10]);
                (u64::from_be_bytes(be), 10)
            }
            n => (u64::from(n), 2),
        };
        self.have = 0;
        self.remaining = Some(len);
        let too_large = |declared| Violation::TooLarge {
            declared,
            limit: self.limit,
        };
        if len > self.limit as u64 {
            return Err(too_large(len));
        }
        if opcode < 8 {
            // Data: text and binary start a message, continuations add to it.
            self.message = if opcode == 0 { self.message + len } else { len };
            if self.message > self.limit as u64 {
                return Err(too_large(self.message));
            }
            if fin {
                self.message = 0;
            }
        } else if opcode == 8 && len <= MAX_CONTROL {
            let mut mask = [0; 4];
            if self.header[1] & 0x80 != 0 {
                mask.copy_from_slice(&self.header[mask_at..mask_at + 4]);
            }
            self.close = Some(CloseCapture {
                mask,
                bytes: Vec::with_capacity(len as usize),
            });
        }
        if len == 0 {
            self.frame_done()?;
        }
        Ok(())
    }

    /// Skips payload bytes (keeping a close frame's); returns how many it used.
    fn payload(&mut self, input: &[u8], remaining: u64) -> Result<usize, Violation> {
        let take = remaining.min(input.len() as u64) as usize;
        if let Some(close) = &mut self.close {
            for &byte in &input[..take] {
                let i = close.bytes.len();
                close.bytes.push(byte ^ close.mask[i % 4]);
            }
        }
        let left = remaining - take as u64;
        self.remaining = Some(left);
        if left == 0 {
            self.frame_done()?;
        }
        Ok(take)
    }

    fn frame_done(&mut self) -> Result<(), Violation> {
        self.remaining = None;
        match self.close.take() {
            Some(close) => check_close(&close.bytes),
            None => Ok(()),
        }
    }
}

/// The checks RFC 6455 §5.5.1, §7.4 and §8.1 make of a close frame's payload.
fn check_close(payload: &[u8]) -> Result<(), Violation> {
    match payload {
        [] => Ok(()),
        [_] => Err(Violation::CloseTooShort),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(Violation::CloseCode(code));
            }
            std::str::from_utf8(reason).map_err(|_| Violation::CloseReasonNotUtf8)?;
            Ok(())
        }
    }
}

/// Where the session learns what the guard refused.
pub type Report = Rc<Cell<Option<Violation>>>;

/// The request payload with the [`Scanner`] in front; a violation ends it with an error after
/// passing on the bytes that came before it.
struct Guarded {
    inner: Payload,
    scanner: Scanner,
    report: Report,
    failed: bool,
}

impl Stream for Guarded {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Some(Err(PayloadError::Overflow)));
        }
        let chunk = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => chunk,
            other => return other,
        };
        match this.scanner.feed(&chunk) {
            Ok(()) => Poll::Ready(Some(Ok(chunk))),
            Err((before, violation)) => {
                this.report.set(Some(violation));
                this.failed = true;
                if before == 0 {
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                } else {
                    Poll::Ready(Some(Ok(chunk.slice(..before))))
                }
            }
        }
    }
}

/// Puts a [`Scanner`] enforcing `limit` in front of `payload`.
pub fn guard(payload: Payload, limit: usize) -> (Payload, Report) {
    let report = Report::default();
    let guarded = Guarded {
        inner: payload,
        scanner: Scanner::new(limit),
        report: Rc::clone(&report),
        failed: false,
    };
    (
        Payload::from(Box::pin(guarded) as actix_http::BoxedPayloadStream),
        report,
    )
}

#[cfg(test)]
mod tests {
    use sluice_client::frames::client_frame as frame;

    use super::*;

    #[test]
    fn frames_within_the_limit_pass_even_split_byte_by_byte() {
        let mut bytes = frame(true, 1, br#"{"type":"ping"}"#);
        bytes.extend(frame(false, 1, &[b'a'; 60]));
        bytes.extend(frame(true, 9, b""));
        bytes.extend(frame(true, 0, &[b'b'; 60]));
        bytes.extend(frame(true, 8, &[0x03, 0xe8, b'o', b'k']));
        let mut scanner = Scanner::new(128);
        for byte in &bytes {
            scanner
                .feed(std::slice::from_ref(byte))
                .expect("within the limit");
        }
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_from_the_header_alone() {
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        let mut scanner = Scanner::new(65_536);
        assert_eq!(
            scanner.feed(&header),
            Err((
                0,
                Violation::TooLarge {
                    declared: i64::MAX as u64,
                    limit: 65_536
                }
            ))
        );
    }

    #[test]
    fn fragments_are_added_up_against_the_limit() {
        let first = frame(false, 1, &[b'a'; 100]);
        let mut bytes = first.clone();
        bytes.extend(frame(true, 0, &[b'a'; 100]));
        let mut scanner = Scanner::new(150);
        let (before, violation) = scanner.feed(&bytes).expect_err("200 > 150");
        assert_eq!(before, first.len());
        assert_eq!(
            violation,
            Violation::TooLarge {
                declared: 200,
                limit: 150
            }
        );
    }

    #[test]
    fn close_frames_with_codes_that_may_not_be_sent_are_named() {
        for (payload, expected) in [
            (vec![0x03, 0xed], Some(Violation::CloseCode(1005))),
            (vec![0x00, 0x01], Some(Violation::CloseCode(1))),
            (vec![0x03], Some(Violation::CloseTooShort)),
            (vec![0x03, 0xe8, 0xff], Some(Violation::CloseReasonNotUtf8)),
            (vec![0x0f, 0xa0], None),
            (vec![], None),
        ] {
            let result = Scanner::new(1_000).feed(&frame(true, 8, &payload)).err();
            assert_eq!(result.map(|(_, v)| v), expected, "{payload:?}");
        }
    }
}
