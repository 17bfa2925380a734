//! The open connections of one listener: how many there are, which have a request in
//! flight, and since when the others are idle. It decides who gets in at the cap (the
//! longest-idle connection makes room, a busy one never does) and when an idle or slow
//! connection is closed.
//!
//! Three pieces report to it: [`Watched`], the socket itself (its slot lives exactly as
//! long as the socket, so the count is the listener's share of open files, upgraded
//! WebSockets included); [`Tracked`], the HTTP service (a request is in flight from the
//! moment its head is parsed until its response body is finished or dropped, which is how
//! long a streamed `/metrics` or an SSE stream keeps a connection busy); and the
//! connection's task, which asks [`Conn::deadline`] when to give up on it.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lock::MutexExt;

/// The timeouts a connection's deadline is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From accepting a connection (TLS handshake included), or from the first byte of a
    /// later request, until that request's head is read.
    pub header: Duration,
    /// A connection with no request in flight after its first one is closed after this.
    pub idle: Duration,
}

/// Evicted connections whose socket is not closed yet, beyond which no new connection is
/// accepted: they close as soon as their task runs, but a flood accepted faster than that
/// would otherwise pile them up past the open-file limit.
pub const CLOSING_SLACK: usize = 16;

/// The connections of one listener.
#[derive(Debug)]
pub struct Registry {
    /// Most open connections (busy ones included) before a new one has to evict.
    cap: usize,
    inner: Mutex<Inner>,
    /// A connection closed.
    freed: Notify,
}

/// The connections and their order of eviction, behind the registry's lock.
#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    slots: HashMap<u64, Slot>,
    /// Connections with no request in flight and not closing, longest idle first: the
    /// order of eviction.
    idle: BTreeSet<(Instant, u64)>,
    /// Evicted slots whose socket is not closed yet; they do not hold a place.
    closing: usize,
}

/// One accepted connection: what its deadlines are computed from.
#[derive(Debug)]
struct Slot {
    accepted: Instant,
    in_flight: usize,
    /// Meaningful while `in_flight` is 0.
    idle_since: Instant,
    /// First byte of the next HTTP/1.1 request while idle: starts its header deadline.
    first_byte: Option<Instant>,
    /// At least one response finished: the idle timeout applies from now on.
    served: bool,
    /// Switched protocols (WebSocket): busy until the socket closes.
    upgraded: bool,
    closing: bool,
    close: CancellationToken,
}

impl Slot {
    fn deadline(&self, t: Timeouts) -> Option<Instant> {
        if self.in_flight > 0 || self.upgraded {
            return None;
        }
        let mut d = self.idle_since + t.idle;
        if !self.served {
            d = d.min(self.accepted + t.header);
        }
        if let Some(b) = self.first_byte {
            d = d.min(b + t.header);
        }
        Some(d)
    }
}

/// How a new connection was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Below the cap.
    Free,
    /// At the cap: the longest-idle connection was told to close.
    Evicted,
}

impl Registry {
    /// A listener's registry holding at most `cap` connections.
    pub fn new(cap: usize) -> Arc<Registry> {
        Arc::new(Registry {
            cap: cap.max(1),
            inner: Mutex::new(Inner::default()),
            freed: Notify::new(),
        })
    }

    /// The most connections it holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The sections below never panic half-way; a poisoned lock still holds whole data.
        self.inner.locked()
    }

    /// Open connections, closing ones included.
    pub fn open(&self) -> usize {
        self.lock().slots.len()
    }

    /// A place for a connection just accepted: below the cap at once; at the cap by
    /// evicting the longest-idle connection; None when every connection is busy (the new
    /// one should be closed at once).
    pub fn admit(self: &Arc<Self>) -> Option<(SlotGuard, Admitted)> {
        let mut inner = self.lock();
        let how = if inner.slots.len() - inner.closing < self.cap {
            Admitted::Free
        } else if inner.evict_oldest() {
            Admitted::Evicted
        } else {
            return None;
        };
        let now = Instant::now();
        let id = inner.next_id;
        inner.next_id += 1;
        let close = CancellationToken::new();
        inner.slots.insert(
            id,
            Slot {
                accepted: now,
                in_flight: 0,
                idle_since: now,
                first_byte: None,
                served: false,
                upgraded: false,
                closing: false,
                close: close.clone(),
            },
        );
        inner.idle.insert((now, id));
        let conn = Arc::new(Conn {
            id,
            registry: self.clone(),
            awaiting_bytes: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            changed: Notify::new(),
            close,
        });
        Some((SlotGuard { conn }, how))
    }

    /// Resolves when a new connection may be accepted: fewer than [`CLOSING_SLACK`]
    /// evicted connections beyond the cap are still closing.
    pub async fn room(&self) {
        while self.open() >= self.cap + CLOSING_SLACK {
            self.freed.notified().await;
        }
    }

    /// Tells the longest-idle connection to close (when the process runs out of open
    /// files); false when every connection is busy.
    pub fn evict_idle(&self) -> bool {
        self.lock().evict_oldest()
    }
}

impl Inner {
    fn evict_oldest(&mut self) -> bool {
        let Some((_, id)) = self.idle.pop_first() else {
            return false;
        };
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.closing = true;
            slot.close.cancel();
            self.closing += 1;
        }
        true
    }
}

/// One connection's link to its registry, shared by its task, its socket and its service.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    registry: Arc<Registry>,
    /// True while an HTTP/1.1 connection waits for its next request and no byte of it has
    /// come: the socket's fast path, so busy connections never take the lock on a read.
    awaiting_bytes: AtomicBool,
    /// Serves HTTP/2 (known from its first request): closed with a GOAWAY, not dropped.
    http2: AtomicBool,
    /// Wakes the connection's task when its deadline may have moved.
    changed: Notify,
    /// Fired when the registry evicts this connection.
    close: CancellationToken,
}

impl Conn {
    /// When to close the connection unless something changes; None while a request is in
    /// flight.
    pub fn deadline(&self, t: Timeouts) -> Option<Instant> {
        self.registry
            .lock()
            .slots
            .get(&self.id)
            .and_then(|s| s.deadline(t))
    }

    /// Resolves when [`Conn::deadline`] may have moved.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Resolves when the registry evicted this connection.
    pub async fn evicted(&self) {
        self.close.cancelled().await;
    }

    /// Whether the connection serves HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// A request's head was read.
    fn begin(self: &Arc<Self>, version: Version) -> InFlight {
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.awaiting_bytes.store(false, Ordering::Relaxed);
        let mut inner = self.registry.lock();
        let inner = &mut *inner;
        if let Some(slot) = inner.slots.get_mut(&self.id) {
            if slot.in_flight == 0 {
                inner.idle.remove(&(slot.idle_since, self.id));
            }
            slot.in_flight += 1;
            slot.first_byte = None;
        }
        InFlight {
            conn: Some(self.clone()),
        }
    }

    fn end(&self) {
        let now = Instant::now();
        {
            let mut inner = self.registry.lock();
            let inner = &mut *inner;
            let Some(slot) = inner.slots.get_mut(&self.id) else {
                return;
            };
            slot.in_flight = slot.in_flight.saturating_sub(1);
            if slot.in_flight > 0 {
                return;
            }
            slot.served = true;
            slot.idle_since = now;
            slot.first_byte = None;
            if !slot.closing && !slot.upgraded {
                inner.idle.insert((now, self.id));
            }
        }
        if !self.is_http2() {
            self.awaiting_bytes.store(true, Ordering::Relaxed);
        }
        self.changed.notify_one();
    }

    fn upgraded(&self) {
        let mut inner = self.registry.lock();
        if let Some(slot) = inner.slots.get_mut(&self.id) {
            slot.upgraded = true;
        }
    }

    /// The socket read some bytes.
    fn read_some(&self) {
        if !self.awaiting_bytes.load(Ordering::Relaxed)
            || !self.awaiting_bytes.swap(false, Ordering::Relaxed)
        {
            return;
        }
        {
            let mut inner = self.registry.lock();
            match inner.slots.get_mut(&self.id) {
                Some(slot) if slot.in_flight == 0 && slot.first_byte.is_none() => {
                    slot.first_byte = Some(Instant::now());
                }
                _ => return,
            }
        }
        self.changed.notify_one();
    }
}

/// Holds a connection's place in its registry; gives it back when dropped (the socket
/// closed).
#[derive(Debug)]
pub struct SlotGuard {
    conn: Arc<Conn>,
}

impl SlotGuard {
    /// The connection this place is for.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        {
            let mut inner = self.conn.registry.lock();
            let inner = &mut *inner;
            if let Some(slot) = inner.slots.remove(&self.conn.id) {
                inner.idle.remove(&(slot.idle_since, self.conn.id));
                if slot.closing {
                    inner.closing -= 1;
                }
            }
        }
        self.conn.registry.freed.notify_one();
    }
}

/// One request in flight; ends when dropped.
#[derive(Debug)]
struct InFlight {
    conn: Option<Arc<Conn>>,
}

impl InFlight {
    /// The connection switched protocols: busy for the rest of its life.
    fn upgraded(mut self) {
        if let Some(conn) = self.conn.take() {
            conn.upgraded();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.end();
        }
    }
}

/// The socket of a connection, noting the first byte of each new request; it owns the
/// connection's place in the registry, so the place is given back when the socket closes,
/// however that happens (after an upgrade the WebSocket owns it).
#[derive(Debug)]
pub struct Watched<I> {
    io: I,
    slot: SlotGuard,
}

impl<I> Watched<I> {
    /// Wraps `io`, which holds `slot`'s connection.
    pub fn new(io: I, slot: SlotGuard) -> Watched<I> {
        Watched { io, slot }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.slot.conn.read_some();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The axum app as the connection's HTTP service, counting its requests in flight.
#[derive(Debug, Clone)]
pub struct Tracked {
    app: Router,
    conn: Arc<Conn>,
}

impl Tracked {
    /// `app` serving `conn`.
    pub fn new(app: Router, conn: Arc<Conn>) -> Tracked {
        Tracked { app, conn }
    }
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.conn.begin(req.version());
        let mut app = self.app.clone();
        Box::pin(async move {
            use tower_service::Service;
            // Always ready; asked anyway, as the tower contract wants.
            let ready =
                std::future::poll_fn(|cx| Service::<Request<Incoming>>::poll_ready(&mut app, cx))
                    .await;
            let response = match ready {
                Ok(()) => app.call(req).await,
                Err(never) => match never {},
            };
            let response = match response {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let in_flight = if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                in_flight.upgraded();
                None
            } else {
                Some(in_flight)
            };
            Ok(response.map(|inner| TrackedBody { inner, in_flight }))
        })
    }
}

/// A response body that keeps its request in flight until it is finished or dropped.
#[derive(Debug)]
pub struct TrackedBody {
    inner: Body,
    in_flight: Option<InFlight>,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
