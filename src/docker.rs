//! Connections to Docker Engine hosts with the guarantees the rest relies on: every call has
//! a deadline that covers reading the body, every answer is read within a bound for its
//! endpoint ([`limits`]), every call is timed and counted, and every failure is classified
//! into a small set of kinds operators can act on.
//!
//! The HTTP requests are our own, over kept connections per host (`transport`: a pooled
//! hyper client for the streams, actions and `/system/df`; `exchange` for the short answers
//! that run per container): bollard reads bodies without limit, so it only provides the
//! answer types (`bollard::models`) and the log frame type.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{ContainerInspectResponse, SystemInfo, SystemVersion};
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::config::Endpoint;
use crate::instruments::{ApiCall, HostInstruments};
use crate::stats::StatsAnswer;

mod df;
mod error;
mod events;
mod exchange;
pub mod limits;
mod logs;
mod read;
mod transport;

pub use df::{DfContainer, DfImage, DfVolume, DiskUsageAnswer};
pub use error::{DockerError, ErrorKind};
use error::{api_error, decode_error};
pub use events::base_action;
use transport::Transport;

/// What `/version` and `/info` told us about a daemon.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DaemonInfo {
    /// Negotiated API version, e.g. `1.41`.
    pub api_version: String,
    /// Engine version, e.g. `20.10.24`.
    pub server_version: String,
    /// Which engine answers the Docker API: `docker`, or `podman` when `/version` lists a
    /// "Podman Engine" component (Podman's compatible API says so; Docker's never does).
    pub runtime: &'static str,
    /// `/info` answer; None when it could not be decoded (the host still counts as up).
    #[serde(skip)]
    pub info: Option<SystemInfo>,
}

/// `podman` when `/version` names a Podman component, else `docker`.
fn runtime_of(v: &SystemVersion) -> &'static str {
    let podman = v
        .components
        .iter()
        .flatten()
        .any(|c| c.name.trim_start().starts_with("Podman"));
    if podman { "podman" } else { "docker" }
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

/// Says what to do about the first call's failure where the bare error would not: a
/// socket the process may not open names the socket's group to join; an answer that is
/// not JSON from `/version` means the address is not a Docker Engine API.
fn explain(e: DockerError, endpoint: &Endpoint) -> DockerError {
    use crate::config::Address;
    match (&e.kind, &endpoint.address) {
        (ErrorKind::PermissionDenied, Address::Unix(path)) => {
            use std::os::unix::fs::MetadataExt;
            let group = std::fs::metadata(path).ok().map(|m| m.gid());
            let advice = match group {
                Some(gid) => {
                    let name = group_name(gid).unwrap_or_else(|| gid.to_string());
                    format!(
                        "permission denied on {}: run as root or as a member of its group `{name}` \
                         (gid {gid}): `usermod -aG {name} <user>`, or `--group-add {gid}` in a container",
                        path.display()
                    )
                }
                None => format!("permission denied on {}", path.display()),
            };
            DockerError::new(
                ErrorKind::PermissionDenied,
                format!("{advice} ({})", e.message),
            )
        }
        (ErrorKind::Decode, _) => DockerError::new(
            ErrorKind::Decode,
            format!(
                "{} does not answer like a Docker Engine API ({})",
                endpoint.address, e.message
            ),
        ),
        _ => e,
    }
}

/// The name of group `gid` from /etc/group.
fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == gid).then(|| name.to_string())
    })
}

/// A live connection to one host: its HTTP clients after version negotiation, plus the
/// host's instruments and deadline. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Connection {
    transport: Transport,
    /// `/v1.41`: the negotiated version, in front of every path after `/version`.
    prefix: String,
    /// API >= 1.42: a log answer's Content-Type tells multiplexed from raw, and
    /// `/system/df` takes `type` to leave kinds out.
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
                runtime: "docker",
                info: None,
            },
        };
        // Unversioned: the daemon answers at its own newest version, and says which.
        let (api, server_version, runtime) = conn
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
                let runtime = runtime_of(&v);
                Ok((api, v.version.unwrap_or_default(), runtime))
            })
            .await
            .map_err(|e| explain(e, endpoint))?;
        let api = api.min(target_api());
        conn.prefix = format!("/v{}.{}", api.0, api.1);
        conn.one_shot = api >= (1, 41);
        conn.typed_logs = api >= (1, 42);
        conn.daemon.api_version = format!("{}.{}", api.0, api.1);
        conn.daemon.server_version = server_version;
        conn.daemon.runtime = runtime;
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
        let mut out = String::with_capacity(self.prefix.len() + path.len());
        out.push_str(&self.prefix);
        out.push_str(path);
        out
    }

    /// `GET path`, its body read up to `limit` bytes.
    async fn get(&self, path: &str, limit: usize) -> Result<bytes::Bytes, DockerError> {
        self.transport.get(&self.versioned(path), limit).await
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

    /// `GET /containers/json?all=…`, each entry decoded as `T`: bollard's whole
    /// `ContainerSummary` for the API, only what the collector reads for a re-list.
    pub async fn list_containers<T: DeserializeOwned>(
        &self,
        all: bool,
    ) -> Result<Vec<T>, DockerError> {
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
    pub async fn stats(&self, id: &str) -> Result<Option<StatsAnswer>, DockerError> {
        // Built without `format!`: the call runs for every container at every interval.
        let mut path = String::with_capacity(id.len() + 64);
        path.push_str("/containers/");
        encode_into(&mut path, id);
        path.push_str("/stats?stream=false");
        if self.one_shot {
            path.push_str("&one-shot=true");
        }
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

    /// `GET /system/df`, under its own `deadline` (Docker takes tens of seconds on big hosts,
    /// holding a lock that other calls wait for). `with_containers` false leaves the
    /// containers out where the daemon can (API >= 1.42: their sizes are what costs most);
    /// older daemons answer with everything.
    pub async fn system_df(
        &self,
        deadline: Duration,
        with_containers: bool,
    ) -> Result<DiskUsageAnswer, DockerError> {
        let path = if with_containers || !self.typed_logs {
            "/system/df?verbose=1".to_string()
        } else {
            "/system/df?verbose=1&type=image&type=volume&type=build-cache".to_string()
        };
        self.call_within(
            ApiCall::SystemDf,
            deadline,
            self.get_json(&path, limits::SYSTEM_DF),
        )
        .await
    }

    /// Whether [`Connection::system_df`] can leave the containers out.
    pub fn df_without_containers(&self) -> bool {
        self.typed_logs
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

/// Percent-encodes a path segment or query value: all but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s);
    out
}

/// [`encode`] onto the end of `out`.
fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests;
