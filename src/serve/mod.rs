//! Runs an axum app on a bound listener, over plain HTTP or TLS (rustls), until a shutdown
//! token fires; then gives open connections (a followed log stream, say) a few seconds and
//! stops regardless.
//!
//! One accept loop serves either listener, plain or TLS. Each connection gets a task: the
//! TLS handshake (ALPN `h2` and `http/1.1`), then hyper's automatic HTTP/1.1 or HTTP/2
//! server over the app, with upgrades for the WebSocket. The listener's registry keeps
//! a slow or idle client from holding a socket for long, and a crowd of them from locking
//! anyone out:
//!
//! - a request head (TLS handshake included) must arrive within `listen.header_timeout`,
//!   counted from the accept or, on a kept-alive connection, from the first byte of the
//!   next request: slowloris clients are cut off;
//! - a connection with no request in flight for `listen.idle_timeout` after its last
//!   answer is closed (HTTP/1.1 keep-alive and HTTP/2 alike); streamed `/metrics` answers,
//!   SSE streams and WebSockets are in flight for as long as they last;
//! - at `listen.max_connections` (lowered to fit the open-file limit, see
//!   [`connection_cap`]) a new connection makes the longest-idle one close; when every
//!   connection is busy the new one is closed at once. Idle sockets can never lock a
//!   scraper out;
//! - when `accept` fails for want of files or memory, an idle connection is closed and the
//!   accept retried a few milliseconds later; such failures are logged once per
//!   [`LOG_EVERY`] at most.
//!
//! hyper's own header timer stays off: it runs from the end of one answer to the head of
//! the next, so it cannot tell a kept-alive connection waiting for its next scrape from a
//! slowloris client, and would cut keep-alive down to the header timeout.

mod nofile;
mod registry;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use nofile::{CAP_MIN, OpenFiles, RESERVE_MIN, connection_cap, raise_open_file_limit};
pub use registry::Timeouts;
use registry::{Admitted, Conn, Registry, SlotGuard, Tracked, Watched};

use crate::config::ListenConfig;

/// How long open connections may take to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(5);

/// Pause before accepting again after `accept` failed (no file, no memory): long enough
/// for an evicted connection to close, short enough that a scraper barely notices.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// Connections the kernel completes and queues before we accept them. Above the 128 of
/// `std::net::TcpListener::bind`: during a flood of connections a scraper's SYN finds room
/// instead of waiting a second for its retransmission.
const BACKLOG: u32 = 1024;

/// At most one log line per kind of listener trouble in this time.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The listeners' certificate and key, ready for rustls.
pub type TlsConfig = Arc<rustls::ServerConfig>;

/// Why a listener could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate chain file.
    #[error("TLS certificate {0}")]
    Certificate(String),
    /// The private key file.
    #[error("TLS key {0}")]
    Key(String),
    /// rustls refused the pair (a key that does not match, say).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// getrlimit failed.
    #[error("cannot read the open-file limit: {0}")]
    OpenFileLimit(#[source] io::Error),
}

/// Loads a listener certificate chain and key (PEM) for HTTP/2 and HTTP/1.1.
pub fn tls_config(cert: &Path, key: &Path) -> Result<TlsConfig, ServeError> {
    // bollard and the listeners share one rustls; pick its ring provider once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain = crate::tls::certificates(cert).map_err(ServeError::Certificate)?;
    let key = crate::tls::private_key(key).map_err(ServeError::Key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What one listener allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections before a new one evicts the longest-idle.
    pub max_connections: usize,
    /// Header and idle timeouts.
    pub timeouts: Timeouts,
}

impl Limits {
    /// From the `listen` settings, the cap lowered to fit `open_files` (see
    /// [`connection_cap`]).
    pub fn new(listen: &ListenConfig, open_files: u64) -> Limits {
        Limits {
            max_connections: connection_cap(listen.max_connections, open_files),
            timeouts: Timeouts {
                header: listen.header_timeout,
                idle: listen.idle_timeout,
            },
        }
    }
}

/// What every connection task of a listener shares.
struct Shared {
    app: Router,
    tls: Option<TlsAcceptor>,
    http: Builder<TokioExecutor>,
    timeouts: Timeouts,
    /// Fired by the shutdown signal: stop accepting, close connections gracefully.
    stop: CancellationToken,
    /// Fired after [`DRAIN`]: drop whatever is still open.
    drop_all: CancellationToken,
}

/// Rate limit of one kind of log line: says how many were left out.
#[derive(Debug)]
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    fn new() -> Throttled {
        Throttled {
            last: None,
            suppressed: 0,
        }
    }

    /// Some(number left out since the last line) when a line may be logged now.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// An accept error that concerns one connection only (it went away before we took it).
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Out of files or memory: closing an idle connection makes room.
fn exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Binds a listener (SO_REUSEADDR, as std does) with a backlog of 1024 pending connections.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `app` on `listener` until `stop` fires, then drains for at most 5 s.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsConfig>,
    limits: Limits,
    stop: CancellationToken,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let registry = Registry::new(limits.max_connections);
    let shared = Arc::new(Shared {
        app,
        tls: tls.map(TlsAcceptor::from),
        http: Builder::new(TokioExecutor::new()),
        timeouts: limits.timeouts,
        stop: stop.clone(),
        drop_all: CancellationToken::new(),
    });
    let tasks = TaskTracker::new();
    let (mut refused, mut failed) = (Throttled::new(), Throttled::new());
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            // Evicted connections close before more are taken: open files stay bounded
            // however fast a flood arrives (the rest wait in the kernel's backlog).
            r = async {
                registry.room().await;
                listener.accept().await
            } => r,
        };
        match accepted {
            Ok((tcp, peer)) => match registry.admit() {
                Some((slot, how)) => {
                    if how == Admitted::Evicted {
                        tracing::debug!(%addr, %peer, cap = registry.cap(),
                            "connection cap reached: the longest-idle connection makes room");
                    }
                    tasks.spawn(connection(tcp, slot, shared.clone()));
                }
                None => {
                    drop(tcp);
                    if let Some(suppressed) = refused.ready() {
                        tracing::warn!(%addr, cap = registry.cap(), suppressed,
                            "every connection is busy: new connections are closed \
                             (listen.max_connections)");
                    }
                }
            },
            Err(e) if per_connection(&e) => {}
            Err(e) => {
                let evicted = exhausted(&e) && registry.evict_idle();
                if let Some(suppressed) = failed.ready() {
                    tracing::warn!(%addr, error = %e, open = registry.open(), evicted, suppressed,
                        "cannot accept a connection; retrying");
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_RETRY) => {}
                }
            }
        }
    }
    drop(listener);
    tasks.close();
    if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
        tracing::debug!(%addr, open = registry.open(),
            "closing what is still open after the drain");
        shared.drop_all.cancel();
    }
    Ok(())
}

/// One connection, from the accept to the close.
async fn connection(tcp: TcpStream, slot: SlotGuard, shared: Arc<Shared>) {
    let conn = slot.conn().clone();
    let Some(acceptor) = &shared.tls else {
        return http(Watched::new(tcp, slot), &conn, &shared).await;
    };
    let Some(deadline) = conn.deadline(shared.timeouts) else {
        return;
    };
    let handshake = tokio::select! {
        r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => r,
        () = conn.evicted() => return,
        () = shared.stop.cancelled() => return,
    };
    match handshake {
        Ok(Ok(tls)) => http(Watched::new(tls, slot), &conn, &shared).await,
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out (listen.header_timeout)"),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Serves HTTP on an accepted (and, with TLS, handshaken) socket until it closes, times
/// out, is evicted or the drain ends.
async fn http<I>(io: Watched<I>, conn: &Arc<Conn>, shared: &Shared)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let served = shared.http.serve_connection_with_upgrades(
        TokioIo::new(io),
        Tracked::new(shared.app.clone(), conn.clone()),
    );
    tokio::pin!(served);
    let mut draining = false;
    loop {
        let deadline = conn.deadline(shared.timeouts);
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!(error = %e, "connection ended");
                }
                return;
            }
            () = conn.changed() => {}
            () = sleep_until(deadline) => {
                // Re-read: a request may have begun since the deadline was taken.
                if conn.deadline(shared.timeouts).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("closing a slow or idle connection \
                        (listen.header_timeout, listen.idle_timeout)");
                    return;
                }
            }
            // Dropping the connection closes its socket: no request is in flight, so nothing
            // is lost, and a client that never finishes its head cannot delay it. (No HTTP/2
            // GOAWAY: its round trip would let an unresponsive client hold the socket.)
            () = conn.evicted() => return,
            () = shared.stop.cancelled(), if !draining => {
                draining = true;
                served.as_mut().graceful_shutdown();
            }
            () = shared.drop_all.cancelled() => return,
        }
    }
}
