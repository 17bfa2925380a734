//! The HTTP client under bollard, with connection reuse.
//!
//! bollard's own constructors switch reuse off (`pool_max_idle_per_host(0)`), so every call
//! opens a new connection: on a unix socket that is ~15 % of the collector's CPU at scale,
//! and on a TLS host a full mutual-TLS handshake per stats call, for the exporter and for
//! dockerd alike. Here the same hyper client is built with its pool on and handed to bollard
//! as a custom transport; idle connections are kept for [`IDLE`]. A call that times out drops
//! its connection rather than returning it, so a hung connection is never reused.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bollard::{BollardRequest, ClientVersion, Docker};
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{Either, Full, StreamBody};
use hyper::body::Frame;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;

use super::{DockerError, ErrorKind};
use crate::config::{Address, Endpoint, TlsFiles};

/// bollard's request body (its `BodyType`, spelled out: bollard does not export the name).
type RequestBody = Either<
    Full<Bytes>,
    StreamBody<Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, io::Error>> + Send>>>,
>;

/// How long an idle connection is kept: longer than the usual collection interval, so each
/// cycle finds the previous cycle's connections.
const IDLE: Duration = Duration::from_secs(90);

/// A bollard client for `endpoint` over a pooled connection; `timeout` bounds connecting and
/// is the request deadline the caller enforces on every call.
pub fn connect(
    endpoint: &Endpoint,
    timeout: Duration,
    version: &ClientVersion,
) -> Result<Docker, DockerError> {
    // bollard's own deadline only covers the response head and is whole seconds; the
    // caller's (on every call) covers the body too, so bollard's is set just beyond it.
    let secs = timeout.as_secs() + 1;
    let built = match (&endpoint.address, &endpoint.tls) {
        (Address::Unix(path), _) => {
            // What bollard checks too: a clear "no such socket" rather than a connect error.
            if !path.exists() {
                return Err(DockerError::new(
                    ErrorKind::SocketNotFound,
                    format!("socket not found: {}", path.display()),
                ));
            }
            let client = pooled(UnixConnector);
            let socket: Arc<Path> = Arc::from(path.as_path());
            Docker::connect_with_custom_transport(
                move |req: BollardRequest| {
                    let (client, socket) = (client.clone(), socket.clone());
                    async move {
                        let (mut parts, body) = req.into_parts();
                        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                        parts.uri = hyperlocal::Uri::new(&*socket, path).into();
                        let req = BollardRequest::from_parts(parts, body);
                        client
                            .request(req)
                            .await
                            .map_err(bollard::errors::Error::from)
                    }
                },
                Some("http://localhost"),
                secs,
                version,
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
            match tls {
                None => transport(pooled(http), format!("http://{host}:{port}"), secs, version),
                Some(files) => {
                    http.enforce_http(false);
                    let connector = hyper_rustls::HttpsConnectorBuilder::new()
                        .with_tls_config(tls_config(files)?)
                        .https_only()
                        .enable_http1()
                        .wrap_connector(http);
                    let client: Client<HttpsConnector<HttpConnector>, RequestBody> =
                        pooled(connector);
                    transport(client, format!("https://{host}:{port}"), secs, version)
                }
            }
        }
    };
    built.map_err(|e| DockerError::classify(&e))
}

/// A hyper client keeping idle connections for [`IDLE`].
fn pooled<C: Connect + Clone>(connector: C) -> Client<C, RequestBody> {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE)
        .build(connector)
}

/// bollard over `client`, whose requests bollard addresses to `base`.
fn transport<C>(
    client: Client<C, RequestBody>,
    base: String,
    secs: u64,
    version: &ClientVersion,
) -> Result<Docker, bollard::errors::Error>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = client.clone();
            async move {
                client
                    .request(req)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some(base),
        secs,
        version,
    )
}

/// The client side of mutual TLS: the CA that signed the daemon's certificate, and our
/// certificate and key. Read at each connect, so renewed files are picked up on reconnect.
fn tls_config(files: &TlsFiles) -> Result<rustls::ClientConfig, DockerError> {
    let tls = |message: String| DockerError::new(ErrorKind::Tls, message);
    // Like bollard before: certificates of the bundle that cannot be used are skipped.
    let (roots, _unusable) = crate::tls::roots(&files.ca).map_err(tls)?;
    let chain = crate::tls::certificates(&files.cert).map_err(tls)?;
    let key = crate::tls::private_key(&files.key).map_err(tls)?;
    crate::tls::client_builder()
        .map_err(|e| tls(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls(format!("client key {}: {e}", files.key.display())))
}
