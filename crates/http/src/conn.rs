//! [`Conn`]: the TCP stream (over TLS or not, [`Io`]) every Sluice HTTP server reads and
//! writes through.
//!
//! It adds two things actix-http does not do:
//!
//! - **A write-stall timeout.** A write that the socket accepts nothing of for
//!   `write_timeout` fails with `TimedOut`, and actix-http then drops the connection. This is
//!   the only way to end a response that is stuck behind a peer that stopped reading: actix
//!   keeps such a connection (and what it buffered for it) forever otherwise, whatever the
//!   response is, a WebSocket, an SSE stream or a plain JSON answer.
//! - **JSON bodies on parser errors.** actix-http answers requests it cannot parse (a bad
//!   `Content-Length`, a raw space in the path, a 100 KB URI, an oversized head) itself, with an
//!   empty body. [`crate::malformed`] recognises those answers on their way out and gives them
//!   the documented JSON error body.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::EdgeStats;
use crate::malformed;

/// How long a connection is still read from (and what arrives thrown away) after a handler
/// hung it up, so that a client still sending its body gets to read the answer instead of a
/// reset.
pub const LINGER: Duration = Duration::from_secs(2);

/// Lets a handler end a connection's reading side: [`LINGER`] after it is called the
/// connection reads end of stream, so actix-http stops draining a request body the handler
/// refused (it would otherwise read a chunked body to its end to keep the connection alive,
/// however slowly it comes). Handlers find it with `req.conn_data::<Hangup>()`.
#[derive(Debug, Clone, Default)]
pub struct Hangup(Arc<HangupState>);

#[derive(Debug, Default)]
struct HangupState {
    called: AtomicBool,
    reader: AtomicWaker,
}

impl Hangup {
    /// Ends the connection's reading side after [`LINGER`].
    pub fn now(&self) {
        self.0.called.store(true, Ordering::Release);
        self.0.reader.wake();
    }

    fn is_called(&self) -> bool {
        self.0.called.load(Ordering::Acquire)
    }
}

/// The head of the answer after which a connection speaks another protocol.
const SWITCHING_PROTOCOLS: &[u8] = b"HTTP/1.1 101 ";

/// An accepted connection: plain TCP, or TLS over it once the handshake is done. [`Conn`] sits
/// above it, so that it sees the HTTP bytes either way.
pub enum Io {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Io::Tls(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_flush(cx),
            Io::Tls(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Io::Tls(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// A connection with a write-stall timeout and JSON parser-error answers.
pub struct Conn {
    io: Io,
    hangup: Hangup,
    /// Armed when the hangup is called; reading ends when it fires.
    linger: Option<Pin<Box<Sleep>>>,
    write_timeout: Duration,
    /// Armed when a write returned `Pending`; disarmed by any progress.
    stall: Option<Pin<Box<Sleep>>>,
    /// A rewritten parser-error answer not yet written; drained before anything else.
    out: Bytes,
    /// Whether writes may still hold a parser-error answer: not after one was rewritten (parser
    /// errors end the connection), nor once the connection switched protocols (a WebSocket's
    /// frames are not HTTP, and scanning each of them cost 2.5 % of a gateway's CPU at 10,000
    /// dashboards).
    scanning: bool,
    stats: Arc<EdgeStats>,
}

impl Conn {
    /// Wraps an accepted stream.
    pub fn new(io: Io, write_timeout: Duration, stats: Arc<EdgeStats>) -> Self {
        Self {
            io,
            hangup: Hangup::default(),
            linger: None,
            write_timeout,
            stall: None,
            out: Bytes::new(),
            scanning: true,
            stats,
        }
    }

    /// The handle that ends this connection's reading side.
    pub fn hangup(&self) -> Hangup {
        self.hangup.clone()
    }

    /// Turns a write result into progress, or into `TimedOut` once the socket has accepted
    /// nothing for `write_timeout`.
    fn watch(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Pending => {
                let timeout = self.write_timeout;
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(stall.as_mut().poll(cx));
                self.stats.note_write_timeout();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the peer accepted no data for {} ms", timeout.as_millis()),
                )))
            }
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.stall = None;
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }

    /// Writes what is left of a rewritten answer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let result = Pin::new(&mut self.io).poll_write(cx, &self.out);
            match ready!(self.watch(cx, result))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.out.advance(n),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.hangup.0.reader.register(cx.waker());
        if this.hangup.is_called() {
            let linger = this
                .linger
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)));
            if linger.as_mut().poll(cx).is_ready() {
                // End of stream: nothing more is read from this client.
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if this.scanning && buf.starts_with(SWITCHING_PROTOCOLS) {
            this.scanning = false;
        }
        if this.scanning
            && let Some(answer) = malformed::rewrite(buf)
        {
            this.scanning = false;
            this.stats.note_malformed();
            this.out = answer.into();
            // The caller's bytes now live in `out`; flush and shutdown drain them.
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
