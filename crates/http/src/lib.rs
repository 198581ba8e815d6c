//! `sluice-http`: the HTTP edge every Sluice server runs on.
//!
//! actix-web's `HttpServer` accepts plain `TcpStream`s and offers no hook for what happens on
//! the wire below the application. [`serve`] builds the same actix-http service over a
//! [`conn::Conn`] instead, which bounds what one client can hold:
//!
//! - open connections: `max_connections` in all, split evenly among the worker threads; past it
//!   the server stops accepting and new connections wait in the kernel's listen backlog;
//! - the kernel send buffer of each socket (`send_buffer_bytes`) and actix's own write buffer
//!   (`write_buffer_bytes`);
//! - a write stall: a connection whose socket accepts nothing for `write_timeout` is closed
//!   and counted in [`EdgeStats`];
//! - a peer that hangs up: end of stream or a reset on the reading side ends the connection at
//!   once, and drops the request still running on it (a `Prefer: wait` that would otherwise
//!   hold its socket, its waiter and its body to the end of the wait);
//! - request heads: 5 s to arrive, 128 KiB at most (actix-http's own limits), answered with the
//!   JSON error body ([`malformed`]) and logged as one rate-limited summary line, never one
//!   line per request;
//! - with TLS ([`tls`]), the handshake: 5 s to complete, failures counted and logged as one
//!   rate-limited summary line with the last reason.
//!
//! Modules: [`conn`] (the stream wrapper), [`malformed`] (parser-error answers), [`observe`]
//! (HTTP metrics and `GET /metrics`), [`tls`] (HTTPS and certificate reloading).

pub mod conn;
pub mod health;
pub mod malformed;
pub mod observe;
pub mod tls;

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_http::{HttpServiceBuilder, KeepAlive, Request, Response, body::MessageBody};
use actix_service::{
    IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, fn_service, map_config,
};
use actix_web::dev::AppConfig;
use sluice_core::CancellationToken;
use tokio::net::TcpStream;

pub use crate::conn::Hangup;
use crate::conn::{Conn, Io};
use crate::tls::ServerTls;

/// Longest wait for a request head, for a keep-alive connection's next request, and for a TLS
/// handshake.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How often, at most, the edge logs its summary of malformed requests.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How the edge treats connections.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Names the server in logs and in actix's thread names.
    pub name: &'static str,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Open connections in all, split evenly among the workers.
    pub max_connections: usize,
    /// A socket that accepts nothing for this long is closed.
    pub write_timeout: Duration,
    /// `SO_SNDBUF` of each accepted socket; 0 keeps the kernel's default (autotuned).
    pub send_buffer_bytes: usize,
    /// actix's per-connection write buffer.
    pub write_buffer_bytes: usize,
    /// How long a graceful stop waits for open connections.
    pub shutdown_grace: Duration,
    /// Fired on SIGINT/SIGTERM: idle keep-alive connections close at once.
    pub shutdown: CancellationToken,
    /// The largest body each path reads, to answer `Expect: 100-continue`.
    pub body_limits: BodyLimits,
    /// HTTPS: the certificate every connection is served, `None` for plain HTTP.
    pub tls: Option<Arc<ServerTls>>,
}

/// The largest request body each path reads. A request with `Expect: 100-continue` whose
/// `Content-Length` is over its path's limit is answered 413 at once, before the client sends
/// the body, instead of `100 Continue` (actix's default answers every such request with it).
#[derive(Debug, Clone, Default)]
pub struct BodyLimits {
    default: usize,
    paths: Vec<(String, usize)>,
}

impl BodyLimits {
    /// Every path reads at most `default` bytes (0: no body at all).
    pub fn new(default: usize) -> Self {
        Self {
            default,
            paths: Vec::new(),
        }
    }

    /// `path` reads at most `limit` bytes.
    pub fn path(mut self, path: &str, limit: usize) -> Self {
        self.paths.push((path.to_owned(), limit));
        self
    }

    /// The limit of `path`.
    pub fn of(&self, path: &str) -> usize {
        self.paths
            .iter()
            .find(|(p, _)| p == path)
            .map_or(self.default, |(_, limit)| *limit)
    }

    /// The 413 for a request that declares a body over its path's limit, if it does.
    fn refuse(&self, req: &Request) -> Option<Response<actix_http::body::BoxBody>> {
        let declared = actix_http::HttpMessage::headers(req)
            .get(actix_http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()?;
        let limit = self.of(req.path());
        if declared <= limit as u64 {
            return None;
        }
        let message = format!("request body is larger than the limit of {limit} bytes");
        let body = serde_json::to_string(&sluice_proto::error::ErrorBody::new(
            "payload_too_large",
            message,
        ))
        .unwrap_or_default();
        let mut response = Response::with_body(actix_http::StatusCode::PAYLOAD_TOO_LARGE, body);
        response.headers_mut().insert(
            actix_http::header::CONTENT_TYPE,
            actix_http::header::HeaderValue::from_static("application/json"),
        );
        // The client may send the body anyway; it is not read.
        response
            .head_mut()
            .set_connection_type(actix_http::ConnectionType::Close);
        Some(response.map_into_boxed_body())
    }
}

/// The credential of `Authorization: Bearer <credential>`, if the request has one.
pub fn bearer(req: &actix_web::HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Binds `addr` for a server; an error names the address, the setting that chose it (`setting`, a
/// dotted key) and its variable.
pub fn bind(addr: std::net::SocketAddr, setting: &str) -> io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind(addr).map_err(|e| {
        let var = sluice_core::settings::env_name(setting);
        let hint = match e.kind() {
            io::ErrorKind::AddrInUse => "another process holds it: stop that one, or set",
            _ => "set",
        };
        let message = format!("cannot listen on {addr} ({setting}): {e}; {hint} {var}");
        io::Error::new(e.kind(), message)
    })?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Stops `server` gracefully (in-flight requests finish) once `shutdown` fires.
pub fn stop_on(server: &actix_server::Server, shutdown: CancellationToken) {
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
}

impl EdgeConfig {
    /// Worker threads to start.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// What the edge counted, shared by every worker thread.
#[derive(Debug, Default)]
pub struct EdgeStats {
    write_timeouts: AtomicU64,
    malformed: Summary,
    handshakes_failed: Summary,
}

/// A count that is logged as one summary line per [`LOG_EVERY`] at most.
#[derive(Debug, Default)]
struct Summary {
    total: AtomicU64,
    /// When the last summary line was logged, and the total it reported.
    logged: Mutex<Option<(Instant, u64)>>,
}

impl Summary {
    /// Counts one, and calls `log` with the count since the last line and the total when a
    /// line is due.
    fn note(&self, log: impl FnOnce(u64, u64)) {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        // Another thread holding the lock is logging this very summary.
        let Ok(mut logged) = self.logged.try_lock() else {
            return;
        };
        let last = match *logged {
            Some((at, _)) if at.elapsed() < LOG_EVERY => return,
            Some((_, last)) => last,
            None => 0,
        };
        *logged = Some((Instant::now(), total));
        log(total - last, total);
    }
}

impl EdgeStats {
    /// Connections closed because their socket accepted nothing for the write timeout.
    pub fn write_timeouts(&self) -> u64 {
        self.write_timeouts.load(Ordering::Relaxed)
    }

    /// Requests actix-http could not parse, answered 400/408/431.
    pub fn malformed(&self) -> u64 {
        self.malformed.total.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed or timed out (a plain-HTTP client, an untrusted certificate,
    /// a missing client certificate).
    pub fn handshakes_failed(&self) -> u64 {
        self.handshakes_failed.total.load(Ordering::Relaxed)
    }

    pub(crate) fn note_write_timeout(&self) {
        let n = self.write_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(total = n, "closed a connection whose peer stopped reading");
    }

    /// Counts a malformed request and logs a summary at most once per [`LOG_EVERY`].
    pub(crate) fn note_malformed(&self) {
        self.malformed.note(|since, total| {
            tracing::warn!(
                malformed = since,
                total,
                "answered malformed HTTP requests with 400/408/431 (one summary line per {} s at most)",
                LOG_EVERY.as_secs()
            );
        });
    }

    /// Counts a failed TLS handshake and logs a summary, with this one's reason, at most once
    /// per [`LOG_EVERY`].
    fn note_handshake_failed(&self, peer: Option<std::net::SocketAddr>, reason: &str) {
        self.handshakes_failed.note(|since, total| {
            tracing::warn!(
                failed = since,
                total,
                last_peer = ?peer,
                last_reason = reason,
                "TLS handshakes failed: clients that speak plain HTTP, do not trust this \
                 certificate or present none that the client CA signed (one summary line per {} s at most)",
                LOG_EVERY.as_secs()
            );
        });
    }
}

/// Serves the app that `factory` builds (once per worker thread) on `listener`, through the
/// bounded edge described in the crate docs. Like `HttpServer::run`, the returned server runs
/// once awaited or polled by the runtime.
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    config: EdgeConfig,
    stats: Arc<EdgeStats>,
    factory: F,
) -> io::Result<actix_server::Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let workers = config.worker_count();
    let per_worker = config.max_connections.div_ceil(workers).max(1);
    let grace = config.shutdown_grace.as_secs().max(1);
    let server = actix_server::Server::build()
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .disable_signals()
        .shutdown_timeout(grace)
        .listen(config.name, listener, move || {
            let app = factory()
                .into_factory()
                .map_err(|err| err.into().error_response());
            let shutdown = config.shutdown.clone();
            let h1 = HttpServiceBuilder::<Conn, _>::default()
                .keep_alive(KeepAlive::Timeout(HEAD_TIMEOUT))
                .client_request_timeout(HEAD_TIMEOUT)
                .client_disconnect_timeout(Duration::from_secs(1))
                // A peer that closes its side (end of stream or reset) is gone: the connection
                // ends at once and the request still running on it is dropped, with what it
                // held (a `Prefer: wait` waiter, a body's budget). actix's default keeps such a
                // request running to its end, and its socket in CLOSE-WAIT.
                .h1_allow_half_closed(false)
                .h1_write_buffer_size(config.write_buffer_bytes)
                .local_addr(local)
                .expect(expect_service(config.body_limits.clone()))
                .on_connect_ext(|conn: &Conn, data| {
                    data.insert(conn.hangup());
                })
                // What `HttpServer` itself uses to close idle keep-alive connections at once
                // on a graceful stop.
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.cancelled().await }
                })
                .h1(map_config(app, |_| AppConfig::default()));
            let config = config.clone();
            let stats = Arc::clone(&stats);
            fn_service(move |io: TcpStream| accept(io, config.clone(), Arc::clone(&stats)))
                .and_then(h1)
        })?
        .run();
    Ok(server)
}

/// The `Expect: 100-continue` check: a request declaring a body over its path's limit is
/// answered 413 (its `Err`), any other goes on to `100 Continue` and the handler.
fn expect_service(
    limits: BodyLimits,
) -> impl ServiceFactory<
    Request,
    Config = (),
    Response = Request,
    Error = Response<actix_http::body::BoxBody>,
    InitError = (),
> + Clone {
    fn_service(move |req: Request| {
        let refused = limits.refuse(&req);
        async move {
            match refused {
                Some(response) => Err(response),
                None => Ok(req),
            }
        }
    })
}

/// Sets the socket options, does the TLS handshake when the listener has TLS, and wraps the
/// stream.
async fn accept(
    io: TcpStream,
    config: EdgeConfig,
    stats: Arc<EdgeStats>,
) -> Result<(Conn, Option<std::net::SocketAddr>), actix_http::error::DispatchError> {
    let peer = io.peer_addr().ok();
    let _ = io.set_nodelay(true);
    if config.send_buffer_bytes > 0 {
        let socket = socket2::SockRef::from(&io);
        if let Err(e) = socket.set_send_buffer_size(config.send_buffer_bytes) {
            tracing::debug!(error = %e, "could not set SO_SNDBUF");
        }
    }
    let io = match &config.tls {
        None => Io::Plain(io),
        Some(tls) => {
            let handshake = tokio::time::timeout(HEAD_TIMEOUT, async {
                tls::refuse_plain_http(&io).await?;
                tls.acceptor().accept(io).await
            })
            .await;
            match handshake {
                Ok(Ok(io)) => Io::Tls(Box::new(io)),
                Ok(Err(e)) => {
                    // A peer that closes before a handshake is a TCP probe (a load balancer,
                    // a tcpSocket check), not a client that failed one.
                    if e.kind() != io::ErrorKind::UnexpectedEof {
                        stats.note_handshake_failed(peer, &tls::handshake_error(&e));
                    }
                    return Err(e.into());
                }
                Err(_) => {
                    let reason = format!("no handshake within {} s", HEAD_TIMEOUT.as_secs());
                    stats.note_handshake_failed(peer, &reason);
                    return Err(io::Error::new(io::ErrorKind::TimedOut, reason).into());
                }
            }
        }
    };
    Ok((Conn::new(io, config.write_timeout, stats), peer))
}
