//! Short whole-answer GETs (stats, inspect, ping, version, info) on connections the caller
//! drives itself.
//!
//! Why not hyper-util's pooled client, which the streams, actions and `/system/df` keep:
//! the stats call runs for every container at every interval (2,000 a second at 10,000
//! containers), and per call that client builds a request and a response `HeaderMap`,
//! hands the request to the connection's own task and the answer back through channels,
//! checks the connection out of a keyed pool and back in from yet another task: about a
//! fifth of the collector's CPU, and most of its wake-ups (BENCHMARKS.md). Here the caller
//! writes the request head in one write, reads the answer into one buffer (never more than
//! a few KiB past the call's bound; the buffer grows by doubling, so it holds at most twice
//! the bound), reads its head with httparse (hyper's own parser) and its body by
//! `Content-Length` or by chunks, and keeps the connection for the next call when the
//! answer ended cleanly. Connections are opened by the same connectors as the pooled
//! client's (a unix socket; TCP with its connect timeout and `TCP_NODELAY`; hyper-rustls
//! for TLS).
//!
//! A kept connection that the daemon closed meanwhile shows itself when the next request
//! on it gets no answer at all; that request then goes again, once, on a new connection (a
//! GET may be repeated). A call that fails or is cancelled by its deadline drops its
//! connection, so a connection left mid-answer is never reused.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use http::{StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tower_service::Service;

use super::error::error_answer;
use super::{DockerError, ErrorKind, limits, read};

/// A connection of any kind, as the exchange reads and writes it.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Stream = Box<dyn Io>;

/// How a new connection is opened.
pub(super) enum Dial {
    /// A unix socket.
    Unix(Arc<Path>),
    /// Plain TCP to the URI's authority.
    Tcp(HttpConnector, Uri),
    /// Mutual TLS to the URI's authority.
    Tls(HttpsConnector<HttpConnector>, Uri),
}

impl fmt::Display for Dial {
    /// Where it connects: `unix:///run/docker.sock`, `http://host:port`, `https://host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dial::Unix(path) => write!(f, "unix://{}", path.display()),
            Dial::Tcp(_, uri) | Dial::Tls(_, uri) => {
                // The authority alone: `Uri`'s own form adds the path `/`.
                let scheme = uri.scheme_str().unwrap_or("http");
                let authority = uri.authority().map_or("", |a| a.as_str());
                write!(f, "{scheme}://{authority}")
            }
        }
    }
}

/// How much is read at a time at most: a stats answer (2–10 KB) in one or two reads.
const READ: usize = 8 * 1024;

/// An answer head larger than this is not Docker's (it sends a handful of short headers).
const HEAD_LIMIT: usize = 64 * 1024;

/// Headers read from one answer head; more fail the call.
const HEADERS: usize = 64;

/// Kept connections per host at most. A connection is only kept after a call on it, so
/// the calls in flight at once bound them in practice: `stats_concurrency` stats calls
/// (at most 256), as many background inspects, and a few others.
const KEEP: usize = 2 * crate::config::ranges::STATS_CONCURRENCY.1 + 16;

/// One host's connections for short GETs.
pub(super) struct Exchange {
    dial: Dial,
    /// The request head after the path: ` HTTP/1.1`, `Host` and `User-Agent`.
    tail: Box<str>,
    /// Connections whose last answer ended cleanly, with when it did; the newest last.
    idle: Mutex<Vec<(Stream, Instant)>>,
    /// How long a kept connection may stay unused.
    keep_for: Duration,
}

/// Why one exchange on a connection failed.
enum Failure {
    /// The connection was found closed before any byte of an answer: a kept one the daemon
    /// closed meanwhile. The request may go again elsewhere.
    Closed(io::Error),
    /// Anything else: the call fails.
    Call(DockerError),
}

impl From<DockerError> for Failure {
    fn from(e: DockerError) -> Failure {
        Failure::Call(e)
    }
}

/// How an answer's body ends.
enum Framing {
    /// After this many bytes.
    Length(usize),
    /// After the last chunk.
    Chunked,
    /// When the daemon closes the connection.
    Close,
    /// It has none (204, 304).
    Empty,
}

impl Exchange {
    /// `host` is the `Host` header's value; connections unused for `keep_for` are closed.
    pub(super) fn new(dial: Dial, host: &str, user_agent: &str, keep_for: Duration) -> Exchange {
        Exchange {
            dial,
            tail: format!(" HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n\r\n").into(),
            idle: Mutex::new(Vec::new()),
            keep_for,
        }
    }

    /// `GET path` (path and query, already encoded): the body of a 2xx answer, read up to
    /// `limit` bytes; any other status is an `api_error` with Docker's message.
    pub(super) async fn get(&self, path: &str, limit: usize) -> Result<Bytes, DockerError> {
        let mut request = Vec::with_capacity(4 + path.len() + self.tail.len());
        request.extend_from_slice(b"GET ");
        request.extend_from_slice(path.as_bytes());
        request.extend_from_slice(self.tail.as_bytes());
        // One kept connection at most: when it turns out closed, a new one. (A daemon that
        // restarted closed them all; the next calls find the others so, one each.)
        if let Some(stream) = self.kept() {
            match self.exchange(stream, &request, path, limit).await {
                Err(Failure::Closed(_)) => {}
                Err(Failure::Call(e)) => return Err(e),
                Ok(body) => return Ok(body),
            }
        }
        let stream = self.open().await?;
        match self.exchange(stream, &request, path, limit).await {
            Ok(body) => Ok(body),
            Err(Failure::Call(e)) => Err(e),
            Err(Failure::Closed(e)) => {
                let mut e = DockerError::classify(&e);
                e.message = format!("{path}: no answer: {}", e.message);
                Err(e)
            }
        }
    }

    /// How new connections are opened.
    pub(super) fn dial(&self) -> &Dial {
        &self.dial
    }

    /// The newest kept connection still within its time; older ones are closed.
    fn kept(&self) -> Option<Stream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        idle.retain(|(_, since)| now.duration_since(*since) < self.keep_for);
        idle.pop().map(|(s, _)| s)
    }

    fn keep(&self, stream: Stream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < KEEP {
            idle.push((stream, Instant::now()));
        }
    }

    async fn open(&self) -> Result<Stream, DockerError> {
        match &self.dial {
            Dial::Unix(path) => match tokio::net::UnixStream::connect(path).await {
                Ok(s) => Ok(Box::new(s)),
                Err(e) => Err(DockerError::classify(&e)),
            },
            Dial::Tcp(c, uri) => connect(c.clone(), uri.clone()).await,
            Dial::Tls(c, uri) => connect(c.clone(), uri.clone()).await,
        }
    }

    /// One request and its answer on `stream`, which is kept when the answer ended cleanly.
    async fn exchange(
        &self,
        mut stream: Stream,
        request: &[u8],
        path: &str,
        limit: usize,
    ) -> Result<Bytes, Failure> {
        let sent = async {
            stream.write_all(request).await?;
            stream.flush().await
        };
        if let Err(e) = sent.await {
            return Err(Failure::Closed(e));
        }
        let mut buf = Vec::with_capacity(READ);
        let head = read_head(&mut stream, &mut buf, path).await?;
        let bound = if head.status.is_success() {
            limit
        } else {
            limit.min(limits::ERROR_BODY)
        };
        let body = read_body(&mut stream, buf, &head, bound, path)
            .await
            .map(|(body, reusable)| {
                // Error answers too: a 404 for a container that just went is common.
                if reusable && head.keep_alive {
                    self.keep(stream);
                }
                body
            });
        if head.status.is_success() {
            Ok(body?)
        } else {
            Err(error_answer(head.status, head.docker, head.server.as_deref(), body, path).into())
        }
    }
}

/// Reads into `buf` until it starts with a whole answer head (informational ones skipped),
/// and returns it. No byte at all before the end or an error: [`Failure::Closed`].
async fn read_head(stream: &mut Stream, buf: &mut Vec<u8>, path: &str) -> Result<Head, Failure> {
    loop {
        if !buf.is_empty() {
            match Head::parse(buf, path)? {
                Some(head) if head.status.is_informational() => {
                    buf.drain(..head.len);
                    continue;
                }
                Some(head) => return Ok(head),
                None if buf.len() > HEAD_LIMIT => {
                    // As hyper says of it: not an answer this connection can go on with.
                    return Err(DockerError::new(
                        ErrorKind::Connection,
                        format!("{path}: answer head larger than {HEAD_LIMIT} bytes"),
                    )
                    .into());
                }
                None => {}
            }
        }
        match read_at_most(stream, buf, READ).await {
            Ok(0) if buf.is_empty() => {
                return Err(Failure::Closed(io::ErrorKind::UnexpectedEof.into()));
            }
            Err(e) if buf.is_empty() => return Err(Failure::Closed(e)),
            Ok(0) => return Err(cut(path, "in the answer's head").into()),
            Err(e) => return Err(DockerError::classify(&e).into()),
            Ok(_) => {}
        }
    }
}

/// What the exchange needs of an answer's head.
struct Head {
    /// Its length in the buffer.
    len: usize,
    status: StatusCode,
    framing: Framing,
    /// HTTP/1.1 without `Connection: close`.
    keep_alive: bool,
    /// It carried Docker's `Api-Version` header.
    docker: bool,
    /// Its `Server` header.
    server: Option<String>,
}

impl Head {
    /// The head at the start of `buf`; None while it is incomplete.
    fn parse(buf: &[u8], path: &str) -> Result<Option<Head>, DockerError> {
        let malformed = |what: String| {
            DockerError::new(
                ErrorKind::Connection,
                format!("{path}: malformed answer: {what}"),
            )
        };
        let mut headers = [httparse::EMPTY_HEADER; HEADERS];
        let mut answer = httparse::Response::new(&mut headers);
        let len = match answer.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(malformed(e.to_string())),
        };
        let code = answer.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| malformed(format!("status {code}")))?;
        let mut head = Head {
            len,
            status,
            framing: Framing::Close,
            keep_alive: answer.version == Some(1),
            docker: false,
            server: None,
        };
        let mut length = None;
        let mut chunked = false;
        for h in answer.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                let n = decimal(h.value.trim_ascii())
                    .ok_or_else(|| malformed("Content-Length".into()))?;
                if length.is_some_and(|l| l != n) {
                    return Err(malformed("two different Content-Length".into()));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // The last coding decides; Docker sends only `chunked`.
                chunked = h
                    .value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                if has_token(h.value, b"close") {
                    head.keep_alive = false;
                }
            } else if name.eq_ignore_ascii_case("api-version") {
                head.docker = true;
            } else if name.eq_ignore_ascii_case("server") {
                head.server = Some(String::from_utf8_lossy(h.value).into_owned());
            }
        }
        head.framing = if matches!(code, 204 | 304) || status.is_informational() {
            Framing::Empty
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::Close
        };
        Ok(Some(head))
    }
}

/// A number of decimal digits only (no sign, no spaces), as `Content-Length` must be.
fn decimal(v: &[u8]) -> Option<usize> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// `Connection: keep-alive, close`: whether `token` is one of the list.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The connection ended before the answer did.
fn cut(path: &str, where_: &str) -> DockerError {
    DockerError::new(
        ErrorKind::Connection,
        format!("{path}: connection closed {where_}"),
    )
}

/// Reads at most `n` (≥ 1) more bytes onto the end of `buf`. The limit matters: a read
/// fills all the room a `Vec` has, and its room doubles.
async fn read_at_most(stream: &mut Stream, buf: &mut Vec<u8>, n: usize) -> io::Result<usize> {
    let n = n.max(1);
    buf.reserve(n);
    stream.read_buf(&mut (&mut *buf).limit(n)).await
}

/// [`read_at_most`] `n`, its error classified; Ok(0) at the end of the connection.
async fn more(stream: &mut Stream, buf: &mut Vec<u8>, n: usize) -> Result<usize, DockerError> {
    read_at_most(stream, buf, n)
        .await
        .map_err(|e| DockerError::classify(&e))
}

/// The body after `head` (whose bytes start `buf`), at most `bound` bytes, and whether the
/// connection is left at the end of this answer and nothing else.
async fn read_body(
    stream: &mut Stream,
    mut buf: Vec<u8>,
    head: &Head,
    bound: usize,
    path: &str,
) -> Result<(Bytes, bool), DockerError> {
    let start = head.len;
    match head.framing {
        Framing::Empty => Ok((Bytes::new(), buf.len() == start)),
        Framing::Length(n) => {
            if n > bound {
                return Err(read::too_large(path, bound));
            }
            let end = start + n;
            buf.reserve(end.saturating_sub(buf.len()));
            while buf.len() < end {
                let left = end - buf.len();
                if more(stream, &mut buf, left).await? == 0 {
                    return Err(cut(path, "in the answer's body"));
                }
            }
            let clean = buf.len() == end;
            Ok((Bytes::from(buf).slice(start..end), clean))
        }
        Framing::Close => loop {
            if buf.len() - start > bound {
                return Err(read::too_large(path, bound));
            }
            // One byte past the bound tells it is over.
            let room = bound - (buf.len() - start) + 1;
            if more(stream, &mut buf, room.min(READ)).await? == 0 {
                return Ok((Bytes::from(buf).slice(start..), false));
            }
        },
        Framing::Chunked => {
            let (end, clean) = dechunk(stream, &mut buf, start, bound, path).await?;
            Ok((Bytes::from(buf).slice(start..end), clean))
        }
    }
}

/// Decodes a chunked body in place: the data of each chunk is moved down to follow the
/// previous one's, from `start`. Returns where the data ends and whether the connection is
/// left at the end of the answer. The buffer holds the data so far and at most one read
/// beyond it (in a capacity up to twice that).
async fn dechunk(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    start: usize,
    bound: usize,
    path: &str,
) -> Result<(usize, bool), DockerError> {
    let malformed = |what: &str| {
        DockerError::new(
            ErrorKind::Connection,
            format!("{path}: malformed chunked answer: {what}"),
        )
    };
    // Data so far ends at `out`; unread bytes start at `pos`.
    let (mut out, mut pos) = (start, start);
    // Reads more, first dropping what was read already.
    async fn refill(
        stream: &mut Stream,
        buf: &mut Vec<u8>,
        out: usize,
        pos: &mut usize,
        path: &str,
    ) -> Result<(), DockerError> {
        buf.drain(out..*pos);
        *pos = out;
        if more(stream, buf, READ).await? == 0 {
            return Err(cut(path, "in the answer's body"));
        }
        Ok(())
    }
    loop {
        let size = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete((used, size))) => {
                pos += used;
                size
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() - pos > 1024 {
                    return Err(malformed("chunk size line too long"));
                }
                refill(stream, buf, out, &mut pos, path).await?;
                continue;
            }
            Err(_) => return Err(malformed("bad chunk size")),
        };
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > bound - (out - start) {
            return Err(read::too_large(path, bound));
        }
        let mut left = size;
        while left > 0 {
            if pos == buf.len() {
                refill(stream, buf, out, &mut pos, path).await?;
            }
            let take = left.min(buf.len() - pos);
            buf.copy_within(pos..pos + take, out);
            (out, pos, left) = (out + take, pos + take, left - take);
        }
        while buf.len() - pos < 2 {
            refill(stream, buf, out, &mut pos, path).await?;
        }
        if &buf[pos..pos + 2] != b"\r\n" {
            return Err(malformed("chunk not followed by CRLF"));
        }
        pos += 2;
    }
    // Trailer lines, up to the empty one.
    loop {
        match buf[pos..].windows(2).position(|w| w == b"\r\n") {
            Some(0) => {
                pos += 2;
                break;
            }
            Some(i) => pos += i + 2,
            None => {
                if buf.len() - pos > HEAD_LIMIT {
                    return Err(malformed("trailers too long"));
                }
                refill(stream, buf, out, &mut pos, path).await?;
            }
        }
    }
    Ok((out, pos == buf.len()))
}

/// A new connection from one of hyper-util's connectors, as a tokio stream.
async fn connect<C>(mut connector: C, uri: Uri) -> Result<Stream, DockerError>
where
    C: Service<Uri>,
    C::Response: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let failed = |e: C::Error| {
        let e: Box<dyn std::error::Error + Send + Sync> = e.into();
        DockerError::classify(&*e)
    };
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(failed)?;
    let io = connector.call(uri).await.map_err(failed)?;
    Ok(Box::new(TokioIo::new(io)))
}

#[cfg(test)]
mod tests;
