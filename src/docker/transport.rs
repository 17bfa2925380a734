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

/// A bollard client for `endpoint` over a pooled connection. `timeout` bounds connecting;
/// `secs` is bollard's own deadline for a response head.
pub fn connect(
    endpoint: &Endpoint,
    timeout: Duration,
    secs: u64,
    version: &ClientVersion,
) -> Result<Docker, DockerError> {
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
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let tls = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        DockerError::new(ErrorKind::Tls, format!("{what} {}: {e}", path.display()))
    };
    let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, DockerError> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| tls("cannot read certificates from", path, &e))?;
        if certs.is_empty() {
            return Err(tls("no certificate in", path, &"empty"));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    let (_, unusable) = roots.add_parsable_certificates(certs(&files.ca)?);
    if roots.is_empty() {
        return Err(tls("no usable CA certificate in", &files.ca, &unusable));
    }
    let chain = certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls("cannot read the private key from", &files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("TLS set-up for", &files.ca, &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls("client certificate", &files.cert, &e))
}
