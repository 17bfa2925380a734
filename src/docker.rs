//! Connections to Docker Engine hosts (bollard) with the guarantees the rest relies on:
//! every call has a deadline that covers reading the body, every call is timed and counted,
//! and every failure is classified into a small set of kinds operators can act on.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{
    ContainerInspectResponse, ContainerStatsResponse, ContainerSummary, EventMessage, SystemInfo,
};
use bollard::query_parameters::{
    EventsOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    RestartContainerOptions, StartContainerOptions, StatsOptions, StopContainerOptions,
};
use futures_util::{Stream, StreamExt};

use crate::config::Endpoint;
use crate::instruments::{ApiCall, HostInstruments};

mod transport;

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
            ErrorKind::Connection => "connection",
            ErrorKind::Other => "other",
        }
    }

    /// True when the host itself is unreachable, as opposed to one call failing.
    pub fn is_host_down(self) -> bool {
        !matches!(self, ErrorKind::ApiError | ErrorKind::Decode)
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

    /// Classifies a bollard error by its variant and, for transport errors, by the I/O or
    /// TLS error at the bottom of its source chain.
    pub fn classify(err: &bollard::errors::Error) -> DockerError {
        use bollard::errors::Error as B;
        let message = full_message(err);
        let kind = match err {
            B::SocketNotFoundError(_) => ErrorKind::SocketNotFound,
            B::RequestTimeoutError => ErrorKind::Timeout,
            B::DockerResponseServerError {
                status_code,
                message,
            } => {
                return DockerError {
                    kind: ErrorKind::ApiError,
                    status: Some(*status_code),
                    message: message.clone(),
                };
            }
            B::JsonDataError { .. } | B::JsonSerdeError { .. } | B::StrParseError { .. } => {
                ErrorKind::Decode
            }
            B::CertPathError { .. }
            | B::CertMultipleKeys { .. }
            | B::CertParseError { .. }
            | B::NoNativeCertsError { .. }
            | B::LoadNativeCertsErrors { .. } => ErrorKind::Tls,
            // `transparent` hides the io::Error itself from the source chain.
            B::IOError { err } => kind_from_chain(err),
            other => kind_from_chain(other),
        };
        DockerError::new(kind, message)
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
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && h.is_connect()
            && kind == ErrorKind::Other
        {
            kind = ErrorKind::Connection;
        }
        cur = next_cause(e);
    }
    if kind == ErrorKind::Other
        && err
            .downcast_ref::<bollard::errors::Error>()
            .is_some_and(is_transport)
    {
        ErrorKind::Connection
    } else {
        kind
    }
}

fn is_transport(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as B;
    matches!(
        e,
        B::HyperResponseError { .. } | B::HyperLegacyError { .. } | B::IOError { .. }
    )
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

/// A live connection to one host: a bollard client after version negotiation, plus the
/// host's instruments and deadline. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Connection {
    docker: Docker,
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
        let docker = match transport::connect(endpoint, timeout, bollard::API_DEFAULT_VERSION) {
            Ok(d) => d,
            Err(err) => {
                instruments.count_error(err.kind.as_str(), err.status);
                return Err(err);
            }
        };
        let mut conn = Connection {
            docker,
            timeout,
            one_shot: false,
            instruments,
            daemon: DaemonInfo {
                api_version: String::new(),
                server_version: String::new(),
                info: None,
            },
        };
        let docker = conn.docker.clone();
        conn.docker = conn
            .call(ApiCall::Version, docker.negotiate_version())
            .await?;
        let version = conn.call(ApiCall::Version, conn.docker.version()).await?;
        let api = conn.docker.client_version();
        conn.one_shot = (api.major_version, api.minor_version) >= (1, 41);
        conn.daemon.api_version = format!("{}.{}", api.major_version, api.minor_version);
        conn.daemon.server_version = version.version.unwrap_or_default();
        conn.daemon.info = match conn.call(ApiCall::Info, conn.docker.info()).await {
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
        F: Future<Output = Result<T, bollard::errors::Error>>,
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
        F: Future<Output = Result<T, bollard::errors::Error>>,
    {
        let _inflight = self.instruments.start();
        let started = Instant::now();
        let result = match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(DockerError::classify(&e)),
            Err(_) => Err(DockerError::new(
                ErrorKind::Timeout,
                format!("no complete answer within {deadline:?}"),
            )),
        };
        self.instruments.observe(what, started.elapsed());
        if let Err(e) = &result {
            self.instruments.count_error(e.kind.as_str(), e.status);
        }
        result
    }

    /// `GET /_ping`.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.call(ApiCall::Ping, self.docker.ping())
            .await
            .map(|_| ())
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<SystemInfo, DockerError> {
        self.call(ApiCall::Info, self.docker.info()).await
    }

    /// `GET /containers/json?all=…`.
    pub async fn list_containers(&self, all: bool) -> Result<Vec<ContainerSummary>, DockerError> {
        let opts = ListContainersOptions {
            all,
            ..Default::default()
        };
        self.call(
            ApiCall::ContainerList,
            self.docker.list_containers(Some(opts)),
        )
        .await
    }

    /// `GET /containers/{id}/json`.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, DockerError> {
        self.call(
            ApiCall::ContainerInspect,
            self.docker.inspect_container(id, None),
        )
        .await
    }

    /// One stats sample: `stream=false&one-shot=true` on API >= 1.41 (answers at once),
    /// `stream=false` before (the daemon waits ~1 s to fill `precpu_stats`). None when the
    /// daemon answers with an empty body, as it does for a container that just stopped.
    pub async fn stats(&self, id: &str) -> Result<Option<ContainerStatsResponse>, DockerError> {
        let opts = StatsOptions {
            stream: false,
            one_shot: self.one_shot,
        };
        let mut stream = Box::pin(self.docker.stats(id, Some(opts)));
        let first = async move { stream.next().await.transpose() };
        self.call(ApiCall::ContainerStats, first).await
    }

    /// `GET /events?since=…`: the live stream of daemon events. The stream itself has no
    /// deadline (it is quiet when nothing happens); the caller watches the host's health.
    /// Starts a container. Ok(false) when it was already running (Docker's 304).
    pub async fn start_container(&self, id: &str) -> Result<bool, DockerError> {
        let r = self
            .call(
                ApiCall::ContainerAction,
                self.docker
                    .start_container(id, None::<StartContainerOptions>),
            )
            .await;
        not_modified(r)
    }

    /// Stops a container, waiting up to `t` seconds (Docker's default when None) before
    /// SIGKILL. Ok(false) when it was not running.
    pub async fn stop_container(&self, id: &str, t: Option<u32>) -> Result<bool, DockerError> {
        let opts = StopContainerOptions {
            t: t.map(clamp_i32),
            signal: None,
        };
        let (docker, deadline) = self.waiting(t);
        let r = self
            .call_within(
                ApiCall::ContainerAction,
                deadline,
                docker.stop_container(id, Some(opts)),
            )
            .await;
        not_modified(r)
    }

    /// Restarts a container, waiting up to `t` seconds for it to stop.
    pub async fn restart_container(&self, id: &str, t: Option<u32>) -> Result<(), DockerError> {
        let opts = RestartContainerOptions {
            t: t.map(clamp_i32),
            signal: None,
        };
        let (docker, deadline) = self.waiting(t);
        self.call_within(
            ApiCall::ContainerAction,
            deadline,
            docker.restart_container(id, Some(opts)),
        )
        .await
    }

    /// Removes a container (`force` kills it first; `volumes` removes its anonymous volumes).
    pub async fn remove_container(
        &self,
        id: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), DockerError> {
        let opts = RemoveContainerOptions {
            v: volumes,
            force,
            link: false,
        };
        self.call(
            ApiCall::ContainerAction,
            self.docker.remove_container(id, Some(opts)),
        )
        .await
    }

    /// A container's log frames. The first frame (or the end) must come within the
    /// request deadline unless `follow`; after that a followed stream runs until dropped,
    /// and a finite one has the deadline for each frame.
    pub fn logs(
        &self,
        id: &str,
        opts: LogsOptions,
    ) -> impl Stream<Item = Result<LogOutput, DockerError>> + use<> {
        let follow = opts.follow;
        let timeout = self.timeout;
        let instruments = self.instruments.clone();
        let started = Instant::now();
        let inner = self.docker.logs(id, Some(opts));
        futures_util::stream::unfold(
            (Box::pin(inner), instruments, true),
            move |(mut inner, instruments, first)| async move {
                // A followed stream may be quiet for hours: no deadline on it.
                let next = if follow {
                    Ok(inner.next().await)
                } else {
                    tokio::time::timeout(timeout, inner.next()).await
                };
                if first {
                    instruments.observe(ApiCall::ContainerLogs, started.elapsed());
                }
                let item = match next {
                    Ok(None) => return None,
                    Ok(Some(Ok(frame))) => Ok(frame),
                    Ok(Some(Err(e))) => Err(DockerError::classify(&e)),
                    Err(_) => Err(DockerError::new(
                        ErrorKind::Timeout,
                        format!("no log data within {timeout:?}"),
                    )),
                };
                if let Err(e) = &item {
                    instruments.count_error(e.kind.as_str(), e.status);
                }
                Some((item, (inner, instruments, false)))
            },
        )
    }

    /// Pings and reads `/version`, timing the ping.
    pub async fn health(&self) -> Result<(Duration, String, String), DockerError> {
        let started = Instant::now();
        self.ping().await?;
        let latency = started.elapsed();
        let v = self.call(ApiCall::Version, self.docker.version()).await?;
        Ok((
            latency,
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default(),
        ))
    }

    /// A client and deadline for calls that wait `t` seconds on the daemon's side.
    fn waiting(&self, t: Option<u32>) -> (Docker, Duration) {
        // Docker waits up to t (10 s when unset) before killing, then answers.
        let wait = Duration::from_secs(u64::from(t.unwrap_or(10)));
        let deadline = self.timeout + wait;
        let docker = self
            .docker
            .clone()
            .with_timeout(deadline + Duration::from_secs(1));
        (docker, deadline)
    }

    pub fn events(
        &self,
        since: Option<String>,
    ) -> impl Stream<Item = Result<EventMessage, DockerError>> + use<> {
        let opts = EventsOptions {
            since,
            ..Default::default()
        };
        let instruments = self.instruments.clone();
        self.docker.events(Some(opts)).map(move |r| {
            r.map_err(|e| {
                let err = DockerError::classify(&e);
                instruments.count_error(err.kind.as_str(), err.status);
                err
            })
        })
    }
}

/// Docker answers 304 when a container already is in the state asked for: not a failure.
fn not_modified(r: Result<(), DockerError>) -> Result<bool, DockerError> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.status == Some(304) => Ok(false),
        Err(e) => Err(e),
    }
}

fn clamp_i32(t: u32) -> i32 {
    i32::try_from(t).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_io_errors_under_hyper() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = bollard::errors::Error::IOError { err: io };
        assert_eq!(DockerError::classify(&e).kind, ErrorKind::ConnectionRefused);

        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = bollard::errors::Error::IOError { err: io };
        assert_eq!(DockerError::classify(&e).kind, ErrorKind::PermissionDenied);

        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let e = bollard::errors::Error::IOError { err: tls };
        let c = DockerError::classify(&e);
        assert_eq!(c.kind, ErrorKind::Tls);
        assert!(c.message.contains("UnknownIssuer"), "{}", c.message);
    }

    #[test]
    fn classifies_bollard_variants() {
        let e = bollard::errors::Error::SocketNotFoundError("/nope.sock".into());
        assert_eq!(DockerError::classify(&e).kind, ErrorKind::SocketNotFound);
        let e = bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "No such container: x".into(),
        };
        let c = DockerError::classify(&e);
        assert_eq!((c.kind, c.status), (ErrorKind::ApiError, Some(404)));
        assert_eq!(c.to_string(), "api_error 404: No such container: x");
        assert_eq!(
            DockerError::classify(&bollard::errors::Error::RequestTimeoutError).kind,
            ErrorKind::Timeout
        );
    }
}
