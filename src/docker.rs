//! Connections to Docker Engine hosts with the guarantees the rest relies on: every call has
//! a deadline that covers reading the body, every answer is read within a bound for its
//! endpoint ([`limits`]), every call is timed and counted, and every failure is classified
//! into a small set of kinds operators can act on.
//!
//! The HTTP requests are our own, over one pooled hyper client per host (`transport`):
//! bollard reads bodies without limit, so it only provides the answer types
//! (`bollard::models`) and the log frame type.

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::models::{
    ContainerInspectResponse, ContainerStatsResponse, ContainerSummary, EventMessage, SystemInfo,
    SystemVersion,
};
use bollard::query_parameters::LogsOptions;
use futures_util::Stream;
use http::{Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::config::Endpoint;
use crate::instruments::{ApiCall, HostInstruments};

pub mod limits;
mod read;
mod transport;

use read::{Framing, LineSplitter, LogDemux};
use transport::Transport;

/// What went wrong talking to a host, in the terms an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The unix socket path does not exist.
    SocketNotFound,
    /// The socket exists but we may not open it.
    PermissionDenied,
    /// Nothing listens at the address.
    ConnectionRefused,
    /// No answer within the deadline.
    Timeout,
    /// TLS handshake or certificate failure.
    Tls,
    /// The daemon answered with an HTTP error status.
    ApiError,
    /// The answer could not be decoded.
    Decode,
    /// The answer was larger than the bound for its endpoint ([`limits`]): a broken or
    /// hostile daemon. The host answered; this one call failed.
    TooLarge,
    /// The connection broke (reset, closed, unreachable, DNS).
    Connection,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Label value and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::SocketNotFound => "socket_not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::ConnectionRefused => "connection_refused",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::ApiError => "api_error",
            ErrorKind::Decode => "decode",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Connection => "connection",
            ErrorKind::Other => "other",
        }
    }

    /// True when the host itself is unreachable, as opposed to one call failing.
    pub fn is_host_down(self) -> bool {
        !matches!(
            self,
            ErrorKind::ApiError | ErrorKind::Decode | ErrorKind::TooLarge
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified Docker failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{kind}{}: {message}", status.map(|s| format!(" {s}")).unwrap_or_default())]
pub struct DockerError {
    /// The class.
    pub kind: ErrorKind,
    /// HTTP status of an API error.
    pub status: Option<u16>,
    /// The underlying message.
    pub message: String,
}

impl DockerError {
    /// What a host that has not been tried yet reports.
    pub fn pending() -> DockerError {
        DockerError::new(ErrorKind::Other, "not collected yet")
    }

    fn new(kind: ErrorKind, message: impl Into<String>) -> DockerError {
        DockerError {
            kind,
            status: None,
            message: message.into(),
        }
    }

    /// Classifies a transport failure (connecting, TLS, sending, reading a body) by the
    /// I/O, TLS or HTTP error in its source chain.
    pub fn classify(err: &(dyn std::error::Error + 'static)) -> DockerError {
        DockerError::new(kind_from_chain(err), full_message(err))
    }
}

/// The message of an error and of every error beneath it.
fn full_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut cur = next_cause(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
        cur = next_cause(e);
    }
    msg
}

/// `source()`, except that for an `io::Error` wrapping another error it returns that error:
/// io::Error's own `source()` skips its payload, and the payload is where rustls reports.
fn next_cause<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(io) = e.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        return Some(inner);
    }
    e.source()
}

fn kind_from_chain(err: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur = Some(err);
    let mut kind = ErrorKind::Other;
    // An HTTP-level failure without an I/O error beneath it (connection closed mid-answer,
    // malformed answer) still means the connection is unusable.
    let mut http = false;
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            kind = match io.kind() {
                K::NotFound => ErrorKind::SocketNotFound,
                K::PermissionDenied => ErrorKind::PermissionDenied,
                K::ConnectionRefused => ErrorKind::ConnectionRefused,
                K::TimedOut => ErrorKind::Timeout,
                K::InvalidData if io.get_ref().is_some() => kind, // look at the payload
                _ => ErrorKind::Connection,
            };
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            http = true;
            if h.is_timeout() && kind == ErrorKind::Other {
                kind = ErrorKind::Timeout;
            }
        }
        if e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some()
        {
            http = true;
        }
        cur = next_cause(e);
    }
    if kind == ErrorKind::Other && http {
        ErrorKind::Connection
    } else {
        kind
    }
}

/// What `/version` and `/info` told us about a daemon.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DaemonInfo {
    /// Negotiated API version, e.g. `1.41`.
    pub api_version: String,
    /// Engine version, e.g. `20.10.24`.
    pub server_version: String,
    /// `/info` answer; None when it could not be decoded (the host still counts as up).
    #[serde(skip)]
    pub info: Option<SystemInfo>,
}

/// The newest API version we speak: the one bollard's models are generated for.
fn target_api() -> (usize, usize) {
    (
        bollard::API_DEFAULT_VERSION.major_version,
        bollard::API_DEFAULT_VERSION.minor_version,
    )
}

/// `1.41` as (1, 41).
fn parse_api(v: &str) -> Option<(usize, usize)> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Docker's log answers are multiplexed when the container has no TTY; from API 1.42 the
/// Content-Type says so.
const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

/// A live connection to one host: a pooled HTTP client after version negotiation, plus the
/// host's instruments and deadline. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Connection {
    transport: Transport,
    /// `/v1.41`: the negotiated version, in front of every path after `/version`.
    prefix: String,
    /// API >= 1.42: a log answer's Content-Type tells multiplexed from raw.
    typed_logs: bool,
    timeout: Duration,
    one_shot: bool,
    instruments: Arc<HostInstruments>,
    /// What the daemon said about itself when we connected.
    pub daemon: DaemonInfo,
}

impl Connection {
    /// Connects, negotiates the API version once, and reads `/info`.
    pub async fn open(
        endpoint: &Endpoint,
        timeout: Duration,
        instruments: Arc<HostInstruments>,
    ) -> Result<Connection, DockerError> {
        // Looking at the socket path and reading TLS files touches the file system, which
        // can hang (a stale network mount): off the runtime, under the deadline.
        let target = endpoint.clone();
        let prepared = tokio::task::spawn_blocking(move || Transport::connect(&target, timeout));
        let transport = match tokio::time::timeout(timeout, prepared).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(DockerError::new(
                ErrorKind::Other,
                format!("connection set-up failed: {e}"),
            )),
            Err(_) => Err(DockerError::new(
                ErrorKind::Timeout,
                format!("the socket path or TLS files could not be read within {timeout:?}"),
            )),
        };
        let transport = match transport {
            Ok(t) => t,
            Err(err) => {
                instruments.count_error(err.kind.as_str(), err.status);
                return Err(err);
            }
        };
        let mut conn = Connection {
            transport,
            prefix: String::new(),
            typed_logs: false,
            timeout,
            one_shot: false,
            instruments,
            daemon: DaemonInfo {
                api_version: String::new(),
                server_version: String::new(),
                info: None,
            },
        };
        // Unversioned: the daemon answers at its own newest version, and says which.
        let (api, server_version) = conn
            .call(ApiCall::Version, async {
                let v: SystemVersion = conn.get_json("/version", limits::VERSION).await?;
                let api = v
                    .api_version
                    .as_deref()
                    .and_then(parse_api)
                    .ok_or_else(|| {
                        DockerError::new(
                            ErrorKind::Decode,
                            format!("/version: no usable ApiVersion ({:?})", v.api_version),
                        )
                    })?;
                Ok((api, v.version.unwrap_or_default()))
            })
            .await?;
        let api = api.min(target_api());
        conn.prefix = format!("/v{}.{}", api.0, api.1);
        conn.one_shot = api >= (1, 41);
        conn.typed_logs = api >= (1, 42);
        conn.daemon.api_version = format!("{}.{}", api.0, api.1);
        conn.daemon.server_version = server_version;
        conn.daemon.info = match conn.info().await {
            Ok(info) => Some(info),
            Err(e) if !e.kind.is_host_down() => {
                tracing::warn!(host = %conn.instruments.host, error = %e, "cannot read /info; host info omitted");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(conn)
    }

    /// The host's instruments.
    pub fn instruments(&self) -> &Arc<HostInstruments> {
        &self.instruments
    }

    /// The request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one call under the deadline, timing and counting it.
    async fn call<T, F>(&self, what: ApiCall, fut: F) -> Result<T, DockerError>
    where
        F: Future<Output = Result<T, DockerError>>,
    {
        self.call_within(what, self.timeout, fut).await
    }

    async fn call_within<T, F>(
        &self,
        what: ApiCall,
        deadline: Duration,
        fut: F,
    ) -> Result<T, DockerError>
    where
        F: Future<Output = Result<T, DockerError>>,
    {
        let _inflight = self.instruments.start();
        let started = Instant::now();
        let result = match tokio::time::timeout(deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(DockerError::new(
                ErrorKind::Timeout,
                format!("no complete answer within {deadline:?}"),
            )),
        };
        self.instruments.observe(what, started.elapsed());
        if let Err(e) = &result {
            failed(&self.instruments, what, e);
        }
        result
    }

    /// `path` with the negotiated version in front.
    fn versioned(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// `GET path`, its body read up to `limit` bytes.
    async fn get(&self, path: &str, limit: usize) -> Result<bytes::Bytes, DockerError> {
        let path = self.versioned(path);
        let answer = request(&self.transport, Method::GET, &path).await?;
        read::whole(answer.into_body(), limit, &path).await
    }

    /// `GET path` decoded from JSON.
    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        limit: usize,
    ) -> Result<T, DockerError> {
        let body = self.get(path, limit).await?;
        serde_json::from_slice(&body).map_err(|e| decode_error(path, &e))
    }

    /// A container action; Ok(false) for Docker's 304 (already in the state asked for).
    async fn action(&self, method: Method, path: &str) -> Result<bool, DockerError> {
        let path = self.versioned(path);
        let answer = self.transport.send(method, &path).await?;
        let status = answer.status();
        if status == StatusCode::NOT_MODIFIED {
            Ok(false)
        } else if status.is_success() {
            // Read to its end (normally empty) so the connection goes back to the pool.
            read::whole(answer.into_body(), limits::ACTION, &path).await?;
            Ok(true)
        } else {
            Err(api_error(answer, &path).await)
        }
    }

    /// `GET /_ping`.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.call(ApiCall::Ping, async {
            self.get("/_ping", limits::PING).await.map(|_| ())
        })
        .await
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<SystemInfo, DockerError> {
        self.call(ApiCall::Info, self.get_json("/info", limits::INFO))
            .await
    }

    /// `GET /containers/json?all=…`.
    pub async fn list_containers(&self, all: bool) -> Result<Vec<ContainerSummary>, DockerError> {
        let path = self.versioned(&format!("/containers/json?all={all}"));
        self.call(ApiCall::ContainerList, async {
            let answer = request(&self.transport, Method::GET, &path).await?;
            read::json_array(
                answer.into_body(),
                limits::CONTAINER_LIST_ENTRY,
                limits::CONTAINER_LIST,
                &path,
            )
            .await
        })
        .await
    }

    /// `GET /containers/{id}/json`.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, DockerError> {
        let path = format!("/containers/{}/json", encode(id));
        self.call(
            ApiCall::ContainerInspect,
            self.get_json(&path, limits::INSPECT),
        )
        .await
    }

    /// One stats sample: `stream=false&one-shot=true` on API >= 1.41 (answers at once),
    /// `stream=false` before (the daemon waits ~1 s to fill `precpu_stats`). None when the
    /// daemon answers with an empty body, as it does for a container that just stopped.
    pub async fn stats(&self, id: &str) -> Result<Option<ContainerStatsResponse>, DockerError> {
        let path = format!(
            "/containers/{}/stats?stream=false{}",
            encode(id),
            if self.one_shot { "&one-shot=true" } else { "" }
        );
        self.call(ApiCall::ContainerStats, async {
            let body = self.get(&path, limits::STATS).await?;
            // The first JSON value, if any: the answer is one object and a newline.
            serde_json::Deserializer::from_slice(&body)
                .into_iter()
                .next()
                .transpose()
                .map_err(|e| decode_error(&path, &e))
        })
        .await
    }

    /// Starts a container. Ok(false) when it was already running (Docker's 304).
    pub async fn start_container(&self, id: &str) -> Result<bool, DockerError> {
        let path = format!("/containers/{}/start", encode(id));
        self.call(ApiCall::ContainerAction, self.action(Method::POST, &path))
            .await
    }

    /// Stops a container, waiting up to `t` seconds (Docker's default when None) before
    /// SIGKILL. Ok(false) when it was not running.
    pub async fn stop_container(&self, id: &str, t: Option<u32>) -> Result<bool, DockerError> {
        let mut path = format!("/containers/{}/stop", encode(id));
        if let Some(t) = t {
            let _ = write!(path, "?t={t}");
        }
        self.call_within(
            ApiCall::ContainerAction,
            self.waiting(t),
            self.action(Method::POST, &path),
        )
        .await
    }

    /// Restarts a container, waiting up to `t` seconds for it to stop.
    pub async fn restart_container(&self, id: &str, t: Option<u32>) -> Result<(), DockerError> {
        let mut path = format!("/containers/{}/restart", encode(id));
        if let Some(t) = t {
            let _ = write!(path, "?t={t}");
        }
        self.call_within(
            ApiCall::ContainerAction,
            self.waiting(t),
            self.action(Method::POST, &path),
        )
        .await
        .map(|_| ())
    }

    /// Removes a container (`force` kills it first; `volumes` removes its anonymous volumes).
    pub async fn remove_container(
        &self,
        id: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), DockerError> {
        let path = format!("/containers/{}?v={volumes}&force={force}", encode(id));
        self.call(ApiCall::ContainerAction, self.action(Method::DELETE, &path))
            .await
            .map(|_| ())
    }

    /// A container's log frames. The first frame (or the end) must come within the
    /// request deadline unless `follow`; after that a followed stream runs until dropped,
    /// and a finite one has the deadline for each frame. Frames are bounded by
    /// [`limits::LOG_FRAME`], and a finite read as a whole by [`limits::LOG_TOTAL`].
    pub fn logs(
        &self,
        id: &str,
        opts: LogsOptions,
    ) -> impl Stream<Item = Result<LogOutput, DockerError>> + use<> {
        let mut path = format!(
            "/containers/{}/logs?follow={}&stdout={}&stderr={}&timestamps={}&tail={}",
            encode(id),
            opts.follow,
            opts.stdout,
            opts.stderr,
            opts.timestamps,
            encode(&opts.tail)
        );
        // 0 means "no bound" to us; Docker would read an explicit 0 as the epoch.
        if opts.since > 0 {
            let _ = write!(path, "&since={}", opts.since);
        }
        if opts.until > 0 {
            let _ = write!(path, "&until={}", opts.until);
        }
        let state = LogsState {
            transport: self.transport.clone(),
            path: self.versioned(&path),
            follow: opts.follow,
            timeout: self.timeout,
            typed: self.typed_logs,
            instruments: self.instruments.clone(),
            opened: false,
            body: None,
            demux: LogDemux::new(Framing::Sniff, limits::LOG_FRAME),
            total: 0,
        };
        let started = Instant::now();
        futures_util::stream::unfold(
            (state, true, false),
            move |(mut st, first, done)| async move {
                if done {
                    return None;
                }
                // A followed stream may be quiet for hours: no deadline on it.
                let next = if st.follow {
                    Ok(st.next().await)
                } else {
                    tokio::time::timeout(st.timeout, st.next()).await
                };
                if first {
                    st.instruments
                        .observe(ApiCall::ContainerLogs, started.elapsed());
                }
                let item = match next {
                    Ok(None) => return None,
                    Ok(Some(item)) => item,
                    Err(_) => Err(DockerError::new(
                        ErrorKind::Timeout,
                        format!("no log data within {:?}", st.timeout),
                    )),
                };
                let failed_now = item.is_err();
                if let Err(e) = &item {
                    failed(&st.instruments, ApiCall::ContainerLogs, e);
                }
                Some((item, (st, false, failed_now)))
            },
        )
    }

    /// Pings and reads `/version`, timing the ping.
    pub async fn health(&self) -> Result<(Duration, String, String), DockerError> {
        let started = Instant::now();
        self.ping().await?;
        let latency = started.elapsed();
        let v: SystemVersion = self
            .call(ApiCall::Version, self.get_json("/version", limits::VERSION))
            .await?;
        Ok((
            latency,
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default(),
        ))
    }

    /// The deadline of a call that waits `t` seconds on the daemon's side.
    fn waiting(&self, t: Option<u32>) -> Duration {
        // Docker waits up to t (10 s when unset) before killing, then answers.
        self.timeout + Duration::from_secs(u64::from(t.unwrap_or(10)))
    }

    /// `GET /events?since=…`: the live stream of daemon events. The answer's head must come
    /// within the request deadline; the stream itself has none (it is quiet when nothing
    /// happens), the caller watches the host's health. Each event is bounded by
    /// [`limits::EVENT_LINE`]; the stream ends after its first error.
    pub fn events(
        &self,
        since: Option<String>,
    ) -> impl Stream<Item = Result<EventMessage, DockerError>> + use<> {
        let path = match since {
            Some(s) => format!("/events?since={}", encode(&s)),
            None => "/events".to_string(),
        };
        let state = EventsState {
            transport: self.transport.clone(),
            path: self.versioned(&path),
            timeout: self.timeout,
            instruments: self.instruments.clone(),
            opened: false,
            body: None,
            lines: LineSplitter::new(limits::EVENT_LINE, "events"),
        };
        futures_util::stream::unfold((state, false), |(mut st, done)| async move {
            if done {
                return None;
            }
            let item = st.next().await?;
            let failed_now = item.is_err();
            if let Err(e) = &item {
                failed(&st.instruments, ApiCall::Events, e);
            }
            Some((item, (st, failed_now)))
        })
    }
}

/// Counts a failed call, and logs an oversized answer: that one is a broken or hostile
/// daemon, worth a line even where the caller treats the failure as routine.
fn failed(instruments: &HostInstruments, what: ApiCall, e: &DockerError) {
    instruments.count_error(e.kind.as_str(), e.status);
    if e.kind == ErrorKind::TooLarge {
        tracing::warn!(host = %instruments.host, endpoint = what.as_str(), kind = %e.kind,
            error = %e.message, "Docker answer over its bound; call failed");
    }
}

/// Sends a request; an answer other than 2xx is an error (`api_error` with Docker's
/// message, or `too_large`).
async fn request(
    transport: &Transport,
    method: Method,
    path: &str,
) -> Result<Response<Incoming>, DockerError> {
    let answer = transport.send(method, path).await?;
    if answer.status().is_success() {
        Ok(answer)
    } else {
        Err(api_error(answer, path).await)
    }
}

/// An error answer as `api_error` with its status and Docker's message, read within
/// [`limits::ERROR_BODY`].
async fn api_error(answer: Response<Incoming>, path: &str) -> DockerError {
    let status = answer.status();
    let body = match read::whole(answer.into_body(), limits::ERROR_BODY, path).await {
        Ok(body) => body,
        Err(e) if e.kind == ErrorKind::TooLarge => {
            return DockerError {
                message: format!("{} (HTTP {})", e.message, status.as_u16()),
                ..e
            };
        }
        Err(e) => bytes::Bytes::from(format!("(error answer cut: {e})")),
    };
    DockerError {
        kind: ErrorKind::ApiError,
        status: Some(status.as_u16()),
        message: error_message(&body, status),
    }
}

/// Docker's `{"message": "…"}`, else the text of the answer, else the status' reason.
fn error_message(body: &[u8], status: StatusCode) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    if let Ok(m) = serde_json::from_slice::<Message>(body) {
        return m.message;
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        text
    }
}

fn decode_error(path: &str, e: &serde_json::Error) -> DockerError {
    DockerError::new(ErrorKind::Decode, format!("{path}: {e}"))
}

fn timed_out(deadline: Duration) -> DockerError {
    DockerError::new(ErrorKind::Timeout, format!("no answer within {deadline:?}"))
}

/// Percent-encodes a path segment or query value: all but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One `/events` stream: opened at the first poll, then cut into lines and decoded.
struct EventsState {
    transport: Transport,
    path: String,
    timeout: Duration,
    instruments: Arc<HostInstruments>,
    opened: bool,
    /// None before opening and after the end.
    body: Option<Incoming>,
    lines: LineSplitter,
}

impl EventsState {
    async fn next(&mut self) -> Option<Result<EventMessage, DockerError>> {
        if !self.opened {
            self.opened = true;
            let started = Instant::now();
            let head = tokio::time::timeout(
                self.timeout,
                request(&self.transport, Method::GET, &self.path),
            )
            .await;
            self.instruments.observe(ApiCall::Events, started.elapsed());
            match head {
                Ok(Ok(answer)) => self.body = Some(answer.into_body()),
                Ok(Err(e)) => return Some(Err(e)),
                Err(_) => return Some(Err(timed_out(self.timeout))),
            }
        }
        loop {
            match self.lines.next_line() {
                Err(e) => return Some(Err(e)),
                Ok(Some(line)) if line.trim_ascii().is_empty() => continue,
                Ok(Some(line)) => return Some(decode_event(&line)),
                Ok(None) => {}
            }
            let Some(body) = self.body.as_mut() else {
                // Ended: a last event without its newline, then nothing.
                let last = self.lines.finish()?;
                return (!last.trim_ascii().is_empty()).then(|| decode_event(&last));
            };
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.lines.push(&data);
                    }
                }
                Some(Err(e)) => return Some(Err(DockerError::classify(&e))),
                None => self.body = None,
            }
        }
    }
}

fn decode_event(line: &[u8]) -> Result<EventMessage, DockerError> {
    serde_json::from_slice(line).map_err(|e| decode_error("/events", &e))
}

/// One log read: opened at the first poll, then cut into frames.
struct LogsState {
    transport: Transport,
    path: String,
    follow: bool,
    timeout: Duration,
    /// The answer's Content-Type tells multiplexed from raw (API >= 1.42).
    typed: bool,
    instruments: Arc<HostInstruments>,
    opened: bool,
    /// None before opening and after the end.
    body: Option<Incoming>,
    demux: LogDemux,
    /// Payload bytes so far, bounded by [`limits::LOG_TOTAL`] unless following.
    total: usize,
}

impl LogsState {
    async fn next(&mut self) -> Option<Result<LogOutput, DockerError>> {
        if !self.opened {
            self.opened = true;
            // The head comes at once, also when following: under the deadline.
            let head = tokio::time::timeout(
                self.timeout,
                request(&self.transport, Method::GET, &self.path),
            )
            .await;
            let answer = match head {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => return Some(Err(e)),
                Err(_) => return Some(Err(timed_out(self.timeout))),
            };
            let multiplexed = answer
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with(MULTIPLEXED));
            let framing = match (multiplexed, self.typed) {
                (true, _) => Framing::Multiplexed,
                (false, true) => Framing::Raw,
                // Older daemons label both kinds `raw-stream`.
                (false, false) => Framing::Sniff,
            };
            self.demux = LogDemux::new(framing, limits::LOG_FRAME);
            self.body = Some(answer.into_body());
        }
        loop {
            let frame = if self.body.is_some() {
                self.demux.next_frame()
            } else {
                self.demux.finish()
            };
            match frame {
                Err(e) => return Some(Err(e)),
                Ok(Some(frame)) => {
                    self.total = self.total.saturating_add(frame.as_ref().len());
                    if !self.follow && self.total > limits::LOG_TOTAL {
                        return Some(Err(read::too_large(
                            "log read without follow",
                            limits::LOG_TOTAL,
                        )));
                    }
                    return Some(Ok(frame));
                }
                Ok(None) => {}
            }
            let body = self.body.as_mut()?;
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.demux.push(&data);
                    }
                }
                Some(Err(e)) => return Some(Err(DockerError::classify(&e))),
                None => self.body = None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_io_errors() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            DockerError::classify(&io).kind,
            ErrorKind::ConnectionRefused
        );

        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(DockerError::classify(&io).kind, ErrorKind::PermissionDenied);

        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(DockerError::classify(&io).kind, ErrorKind::SocketNotFound);

        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(DockerError::classify(&io).kind, ErrorKind::Connection);

        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let c = DockerError::classify(&tls);
        assert_eq!(c.kind, ErrorKind::Tls);
        assert!(c.message.contains("UnknownIssuer"), "{}", c.message);
    }

    #[test]
    fn too_large_is_one_call_failing_not_the_host() {
        assert_eq!(ErrorKind::TooLarge.as_str(), "too_large");
        assert!(!ErrorKind::TooLarge.is_host_down());
        assert!(!ErrorKind::ApiError.is_host_down());
        assert!(ErrorKind::Timeout.is_host_down());
        let e = read::too_large("/v1.41/info", limits::INFO);
        assert_eq!(
            e.to_string(),
            "too_large: /v1.41/info: answer larger than 4 MiB, the bound for this call"
        );
    }

    #[test]
    fn error_answers_give_dockers_message() {
        let e = DockerError {
            kind: ErrorKind::ApiError,
            status: Some(404),
            message: error_message(
                br#"{"message":"No such container: x"}"#,
                StatusCode::NOT_FOUND,
            ),
        };
        assert_eq!(e.to_string(), "api_error 404: No such container: x");
        assert_eq!(
            error_message(b"page not found\n", StatusCode::NOT_FOUND),
            "page not found"
        );
        assert_eq!(
            error_message(b"", StatusCode::INTERNAL_SERVER_ERROR),
            "Internal Server Error"
        );
    }

    #[test]
    fn versions_and_paths() {
        assert_eq!(parse_api("1.41"), Some((1, 41)));
        assert_eq!(parse_api(" 1.9 "), Some((1, 9)));
        assert_eq!(parse_api("1"), None);
        assert_eq!(parse_api("one.two"), None);
        assert!((1, 41) < target_api());
        assert_eq!(encode("abc_DEF-1.2~"), "abc_DEF-1.2~");
        assert_eq!(encode("1700000000.5"), "1700000000.5");
        assert_eq!(encode("a b/c?d&e=f"), "a%20b%2Fc%3Fd%26e%3Df");
    }
}
