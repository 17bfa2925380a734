//! The HTTP clients to Docker hosts, with connection reuse.
//!
//! Why our own rather than bollard's: bollard reads every body without limit (a whole answer
//! before decoding it, a stream until a newline, an error answer whole), and its custom
//! transports must hand back hyper's own body type, so no bound can be put beneath it. Its
//! own constructors also switch connection reuse off (`pool_max_idle_per_host(0)`), so every
//! call opens a new connection: on a unix socket that is ~15 % of the collector's CPU at
//! scale, and on a TLS host a full mutual-TLS handshake per stats call, for the exporter and
//! for dockerd alike. Here each host has two clients, both keeping idle connections for
//! [`IDLE`]: a pooled hyper client for the streams (events, logs, the container list), the
//! actions and the one large whole answer (`/system/df`), and [`Exchange`] for the short
//! whole answers that run per container (stats, inspect) or per connect (version, info,
//! ping). A call that times out
//! or stops reading drops its connection rather than returning it, so a hung connection is
//! never reused.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, Uri, header};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;

use super::exchange::{Dial, Exchange};
use super::{DockerError, ErrorKind, limits, read};
use crate::config::{Address, Endpoint, TlsFiles};

/// Our requests carry no body.
type RequestBody = Empty<Bytes>;

/// How long an idle connection is kept: longer than the usual collection interval, so each
/// cycle finds the previous cycle's connections.
const IDLE: Duration = Duration::from_secs(90);

/// Each connection's read buffer, fixed: a stats answer (2–10 KB) fits in one read, and a
/// kept connection holds no more than this. hyper's adaptive buffer grows towards 400 KB
/// on the connection that carried a long list and keeps it while the connection is pooled
/// (at 20 hosts × 8 connections, ~6 MB of the heap).
const READ_BUF: usize = 16 * 1024;

/// Sent with every request, so daemon logs and proxies can tell who asks.
const USER_AGENT: &str = concat!("dockstat-exporter/", env!("CARGO_PKG_VERSION"));

/// One host's HTTP clients: the pooled hyper client for streams, actions and large
/// answers, and [`Exchange`] for short whole answers. Cheap to clone (both are shared).
#[derive(Clone)]
pub(super) struct Transport {
    pooled: Pooled,
    /// What the pooled client's URIs start with: `unix://<hex of the path>:0` (the form
    /// hyperlocal's connector reads the socket path back from), `http://host:port` or
    /// `https://host:port`.
    base: Arc<str>,
    short: Arc<Exchange>,
}

/// The pooled hyper client, by kind of address.
#[derive(Clone)]
enum Pooled {
    /// A unix socket (hyperlocal).
    Unix(Client<UnixConnector, RequestBody>),
    /// Plain TCP.
    Tcp(Client<HttpConnector, RequestBody>),
    /// Mutual TLS (hyper-rustls).
    Tls(Client<HttpsConnector<HttpConnector>, RequestBody>),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.short.dial(), f)
    }
}

/// Answers bounded above this (`/system/df`, up to 64 MiB) are read through the pooled
/// client, whose body comes in pieces joined once at the end; the exchange's one buffer
/// grows by doubling and could hold up to twice the bound.
const SHORT: usize = limits::INFO;

impl Transport {
    /// A client for `endpoint`; `timeout` bounds connecting (the caller's deadline on every
    /// call covers the rest). Nothing is sent yet.
    pub(super) fn connect(
        endpoint: &Endpoint,
        timeout: Duration,
    ) -> Result<Transport, DockerError> {
        let (pooled, base, dial, host) = match (&endpoint.address, &endpoint.tls) {
            (Address::Unix(path), _) => {
                // A clear "no such socket" rather than a connect error on the first call.
                if !path.exists() {
                    return Err(DockerError::new(
                        ErrorKind::SocketNotFound,
                        format!("socket not found: {}", path.display()),
                    ));
                }
                (
                    Pooled::Unix(pooled(UnixConnector)),
                    unix_base(path),
                    Dial::Unix(Arc::from(path.as_path())),
                    // Docker ignores the host of a unix socket request; the CLI sends this.
                    "api.moby.localhost".to_string(),
                )
            }
            (Address::Tcp { host, port }, tls) => {
                let mut http = HttpConnector::new();
                http.set_connect_timeout(Some(timeout));
                http.set_nodelay(true);
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                let authority = format!("{host}:{port}");
                match tls {
                    None => {
                        let base = format!("http://{authority}");
                        let dial = Dial::Tcp(http.clone(), base_uri(&base)?);
                        (Pooled::Tcp(pooled(http)), base, dial, authority)
                    }
                    Some(files) => {
                        http.enforce_http(false);
                        let connector = hyper_rustls::HttpsConnectorBuilder::new()
                            .with_tls_config(tls_config(files)?)
                            .https_only()
                            .enable_http1()
                            .wrap_connector(http);
                        let base = format!("https://{authority}");
                        let dial = Dial::Tls(connector.clone(), base_uri(&base)?);
                        (Pooled::Tls(pooled(connector)), base, dial, authority)
                    }
                }
            }
        };
        Ok(Transport {
            pooled,
            base: Arc::from(base),
            short: Arc::new(Exchange::new(dial, &host, USER_AGENT, IDLE)),
        })
    }

    /// `GET path`: the body of a 2xx answer of at most `limit` bytes (`api_error` for any
    /// other status), through [`Exchange`] unless the bound is above [`SHORT`].
    pub(super) async fn get(&self, path: &str, limit: usize) -> Result<Bytes, DockerError> {
        if limit <= SHORT {
            return self.short.get(path, limit).await;
        }
        let answer = super::request(self, Method::GET, path).await?;
        read::whole(answer.into_body(), limit, path).await
    }

    /// Sends one request for `path` (path and query, already encoded) through the pooled
    /// client and returns the answer's head; the body is the caller's to read, within its
    /// bound.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
    ) -> Result<Response<Incoming>, DockerError> {
        // One buffer, moved into the URI.
        let mut uri = String::with_capacity(self.base.len() + path.len());
        uri.push_str(&self.base);
        uri.push_str(path);
        let uri = http::Uri::try_from(uri)
            .map_err(|e| DockerError::new(ErrorKind::Other, format!("request for {path}: {e}")))?;
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::USER_AGENT, USER_AGENT)
            .body(Empty::new())
            .map_err(|e| DockerError::new(ErrorKind::Other, format!("request for {path}: {e}")))?;
        let sent = match &self.pooled {
            Pooled::Unix(http) => http.request(req).await,
            Pooled::Tcp(http) => http.request(req).await,
            Pooled::Tls(http) => http.request(req).await,
        };
        sent.map_err(|e| DockerError::classify(&e))
    }
}

/// `base` (`http(s)://host:port`) as the URI the connectors connect to.
fn base_uri(base: &str) -> Result<Uri, DockerError> {
    Uri::try_from(base)
        .map_err(|e| DockerError::new(ErrorKind::Other, format!("address {base}: {e}")))
}

/// `unix://<hex of path>:0`: hyperlocal's URI form for the socket, without a path; built
/// once per host rather than per request.
fn unix_base(path: &Path) -> String {
    let root: http::Uri = hyperlocal::Uri::new(path, "/").into();
    let mut base = root.to_string();
    base.pop(); // the "/" of the path
    base
}

/// A hyper client keeping idle connections for [`IDLE`].
fn pooled<C: Connect + Clone>(connector: C) -> Client<C, RequestBody> {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE)
        .http1_read_buf_exact_size(READ_BUF)
        .build(connector)
}

/// The client side of mutual TLS: the CA that signed the daemon's certificate, and our
/// certificate and key. Read at each connect, so renewed files are picked up on reconnect.
fn tls_config(files: &TlsFiles) -> Result<rustls::ClientConfig, DockerError> {
    let tls = |message: String| DockerError::new(ErrorKind::Tls, message);
    // Certificates of the bundle that cannot be used are skipped.
    let (roots, _unusable) = crate::tls::roots(&files.ca).map_err(tls)?;
    let builder = crate::tls::client_builder()
        .map_err(|e| tls(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots);
    match (&files.cert, &files.key) {
        (Some(cert), Some(key_file)) => {
            let chain = crate::tls::certificates(cert).map_err(tls)?;
            let key = crate::tls::private_key(key_file).map_err(tls)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls(format!("client key {}: {e}", key_file.display())))
        }
        // Server-verified TLS: the daemon's certificate is checked, none of ours is sent.
        _ => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_base_is_hyperlocals_form() {
        for path in [
            "/run/docker.sock",
            "/tmp/dir with space/h0.sock",
            "rel.sock",
        ] {
            let ours: http::Uri = format!("{}/v1.41/_ping", unix_base(Path::new(path)))
                .parse()
                .expect("a URI");
            let theirs: http::Uri = hyperlocal::Uri::new(path, "/v1.41/_ping").into();
            assert_eq!(ours, theirs, "{path}");
        }
    }
}
