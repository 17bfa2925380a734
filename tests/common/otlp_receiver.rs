//! A real OTLP metrics receiver for the tests: gRPC (tonic) or HTTP/protobuf (axum), plain
//! or TLS (rustls, optionally requiring client certificates), built on the official
//! `opentelemetry-proto` definitions. It records every export it receives (decoded request,
//! protocol, compression, headers, arrival time) and can be stopped and started again on the
//! same port. How it answers is chosen by the test, also while it runs ([`Answer`]): accept,
//! accept in part (`partial_success`), or fail with an HTTP or gRPC status. It runs on its
//! own tokio runtime, so the tests stay plain `#[test]` functions.

#![allow(dead_code)] // not every test uses every helper

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    HistogramDataPoint, Metric, NumberDataPoint, metric, number_data_point,
};
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Wire protocol of a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`MetricsService/Export` over HTTP/2).
    Grpc,
    /// OTLP/HTTP with a binary protobuf body (`POST /v1/metrics`).
    Http,
}

/// Server TLS settings.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
}

impl Tls {
    /// `server-cert.pem`/`server-key.pem` from the test certificates directory, requiring
    /// client certificates signed by its `ca.pem` when `mutual`.
    pub fn test_certs(certs: &Path, mutual: bool) -> Tls {
        Tls {
            cert: certs.join("server-cert.pem"),
            key: certs.join("server-key.pem"),
            client_ca: mutual.then(|| certs.join("ca.pem")),
        }
    }
}

/// How the receiver answers the exports it records (every export is recorded, whatever the
/// answer). Set with [`Receiver::answer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Answer {
    /// Success: an empty `ExportMetricsServiceResponse` (HTTP 200 / gRPC OK).
    #[default]
    Accept,
    /// Success with `partial_success` saying `rejected` data points were refused because of
    /// `message`.
    Partial { rejected: i64, message: String },
    /// HTTP receivers only: this status, with a `Retry-After: <seconds>` header when set, and
    /// a short text body.
    HttpStatus {
        status: u16,
        retry_after: Option<u64>,
    },
    /// gRPC receivers only: this status code (with a short message).
    GrpcStatus(tonic::Code),
}

impl Answer {
    /// Whether the exporter should count this answer as a delivery (success or partial).
    pub fn delivers(&self) -> bool {
        matches!(self, Answer::Accept | Answer::Partial { .. })
    }

    fn response(&self) -> ExportMetricsServiceResponse {
        match self {
            Answer::Partial { rejected, message } => ExportMetricsServiceResponse {
                partial_success: Some(ExportMetricsPartialSuccess {
                    rejected_data_points: *rejected,
                    error_message: message.clone(),
                }),
            },
            _ => ExportMetricsServiceResponse::default(),
        }
    }
}

/// One export as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// The decoded request (empty when the body did not decode, see `decode_error`).
    pub request: ExportMetricsServiceRequest,
    /// Why the body did not decode, if it did not.
    pub decode_error: Option<String>,
    pub protocol: Protocol,
    /// Whether the payload arrived gzip-compressed (`grpc-encoding: gzip` for gRPC,
    /// `Content-Encoding: gzip` for HTTP).
    pub gzip: bool,
    /// Request path (`/opentelemetry.proto.collector.metrics.v1.MetricsService/Export` for
    /// gRPC; the POSTed path for HTTP).
    pub path: String,
    /// Request method (always POST for well-formed exports).
    pub method: String,
    /// All request headers, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Size of the body as it came over the wire (HTTP only; 0 for gRPC).
    pub wire_bytes: usize,
    /// Whether the client presented a TLS certificate (known for gRPC over TLS only).
    pub client_cert: Option<bool>,
    /// When the receiver got it.
    pub at: SystemTime,
    /// Same, as an `Instant` (for durations).
    pub instant: Instant,
    /// How the receiver answered it (an undecodable HTTP body always gets 400, whatever
    /// this says).
    pub answered: Answer,
}

impl Received {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every metric of every resource and scope.
    pub fn metrics(&self) -> impl Iterator<Item = &Metric> {
        self.metrics_in_resources().map(|(_, m)| m)
    }

    /// Every metric of every resource and scope, with its resource's attributes.
    pub fn metrics_in_resources(&self) -> impl Iterator<Item = (&[KeyValue], &Metric)> {
        self.request.resource_metrics.iter().flat_map(|r| {
            let attrs = r.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            r.scope_metrics
                .iter()
                .flat_map(|s| s.metrics.iter())
                .map(move |m| (attrs, m))
        })
    }

    /// The metric called `name` (its first part: a metric has one part per resource its
    /// points belong to); panics if the parts disagree on unit or kind.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        let found: Vec<&Metric> = self.metrics().filter(|m| m.name == name).collect();
        let kind = |m: &Metric| std::mem::discriminant(&m.data);
        for m in &found {
            assert!(
                m.unit == found[0].unit && kind(m) == kind(found[0]),
                "metric {name}: parts differ in unit or kind"
            );
        }
        found.first().copied()
    }

    /// Number points (Sum or Gauge) of metric `name` whose attributes, with their
    /// resource's, include every pair of `filter` (values compared as text, see
    /// [`attr_text`]). The points' attributes include their resource's.
    pub fn points(&self, name: &str, filter: &[(&str, &str)]) -> Vec<Point> {
        self.raw_points(name, filter)
            .into_iter()
            .map(|(res, p)| Point::in_resource(res, p))
            .collect()
    }

    /// Number points of `name` matching `filter` (see [`Received::points`]) as sent, with
    /// their resource's attributes.
    pub fn raw_points(
        &self,
        name: &str,
        filter: &[(&str, &str)],
    ) -> Vec<(&[KeyValue], &NumberDataPoint)> {
        self.metrics_in_resources()
            .filter(|(_, m)| m.name == name)
            .flat_map(|(res, m)| number_points(m).iter().map(move |p| (res, p)))
            .filter(|(res, p)| matches_in(res, &p.attributes, filter))
            .collect()
    }

    /// The one number point of `name` matching `filter`, if any; panics on several.
    pub fn point(&self, name: &str, filter: &[(&str, &str)]) -> Option<Point> {
        let found = self.points(name, filter);
        assert!(
            found.len() <= 1,
            "{name} {filter:?} matches {} points: {found:?}",
            found.len()
        );
        found.into_iter().next()
    }

    /// Histogram points of metric `name` matching `filter` (resource attributes included).
    pub fn histogram_points(
        &self,
        name: &str,
        filter: &[(&str, &str)],
    ) -> Vec<&HistogramDataPoint> {
        self.metrics_in_resources()
            .filter(|(_, m)| m.name == name)
            .flat_map(|(res, m)| match &m.data {
                Some(metric::Data::Histogram(h)) => {
                    h.data_points.iter().map(|p| (res, p)).collect()
                }
                _ => Vec::new(),
            })
            .filter(|(res, p)| matches_in(res, &p.attributes, filter))
            .map(|(_, p)| p)
            .collect()
    }

    /// Resource attribute `key` of the exporter's own resource (the one with
    /// `service.name`), as text.
    pub fn resource_attr(&self, key: &str) -> Option<String> {
        let r = self
            .request
            .resource_metrics
            .iter()
            .filter_map(|r| r.resource.as_ref())
            .find(|r| attr_text(&r.attributes, "service.name").is_some())?;
        attr_text(&r.attributes, key)
    }

    /// Names of all instrumentation scopes.
    pub fn scope_names(&self) -> Vec<String> {
        self.request
            .resource_metrics
            .iter()
            .flat_map(|r| r.scope_metrics.iter())
            .map(|s| s.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default())
            .collect()
    }
}

/// A number data point, flattened.
#[derive(Debug, Clone)]
pub struct Point {
    pub attributes: BTreeMap<String, String>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    /// The value (an int point converted to f64).
    pub value: f64,
    /// Whether the value was sent as an int.
    pub is_int: bool,
}

impl Point {
    /// The point with its resource's attributes merged into its own.
    pub fn in_resource(resource: &[KeyValue], p: &NumberDataPoint) -> Point {
        let mut point = Point::of(p);
        for (k, v) in attr_map(resource) {
            point.attributes.entry(k).or_insert(v);
        }
        point
    }

    pub fn of(p: &NumberDataPoint) -> Point {
        let (value, is_int) = match p.value {
            Some(number_data_point::Value::AsDouble(v)) => (v, false),
            Some(number_data_point::Value::AsInt(v)) => (v as f64, true),
            None => (f64::NAN, false),
        };
        Point {
            attributes: attr_map(&p.attributes),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            value,
            is_int,
        }
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// The number points of a Sum or Gauge metric (none for other kinds).
pub fn number_points(m: &Metric) -> &[NumberDataPoint] {
    match &m.data {
        Some(metric::Data::Sum(s)) => &s.data_points,
        Some(metric::Data::Gauge(g)) => &g.data_points,
        _ => &[],
    }
}

/// An attribute value as text: strings as they are, ints, doubles and bools formatted,
/// arrays as their items' text joined by commas.
pub fn any_text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::ArrayValue(a)) => {
            a.values.iter().map(any_text).collect::<Vec<_>>().join(",")
        }
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Attribute `key` as text.
pub fn attr_text(kvs: &[KeyValue], key: &str) -> Option<String> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(any_text)
}

/// Attribute `key` itself.
pub fn attr_value<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// All attributes as text.
pub fn attr_map(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(any_text).unwrap_or_default(),
            )
        })
        .collect()
}

fn matches_in(resource: &[KeyValue], kvs: &[KeyValue], filter: &[(&str, &str)]) -> bool {
    filter.iter().all(|(k, v)| {
        attr_text(kvs, k)
            .or_else(|| attr_text(resource, k))
            .as_deref()
            == Some(*v)
    })
}

/// What the receiver has recorded, and how it answers, shared with its server tasks.
#[derive(Default)]
struct Record {
    exports: Mutex<Vec<Received>>,
    changed: Condvar,
    answer: Mutex<Answer>,
}

impl Record {
    fn lock(&self) -> MutexGuard<'_, Vec<Received>> {
        self.exports.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answer(&self) -> Answer {
        self.answer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records `r` with the current answer; returns that answer.
    fn push(&self, mut r: Received) -> Answer {
        let answer = self.answer();
        r.answered = answer.clone();
        self.lock().push(r);
        self.changed.notify_all();
        answer
    }
}

/// A running (or stopped) receiver. Stops on drop.
pub struct Receiver {
    pub protocol: Protocol,
    pub port: u16,
    tls: Option<Tls>,
    record: Arc<Record>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1:port`.
    pub fn start(protocol: Protocol, port: u16, tls: Option<Tls>) -> Receiver {
        let mut r = Receiver {
            protocol,
            port,
            tls,
            record: Arc::new(Record::default()),
            runtime: None,
        };
        r.start_again();
        r
    }

    /// Plain gRPC on `port`.
    pub fn grpc(port: u16) -> Receiver {
        Receiver::start(Protocol::Grpc, port, None)
    }

    /// Plain HTTP/protobuf on `port`.
    pub fn http(port: u16) -> Receiver {
        Receiver::start(Protocol::Http, port, None)
    }

    /// The endpoint URL the exporter should be given (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.runtime.is_some()
    }

    /// Starts serving again on the same port, keeping what was recorded so far.
    pub fn start_again(&mut self) {
        assert!(self.runtime.is_none(), "receiver already running");
        install_crypto_provider();
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        // Binding may briefly fail right after a stop while the old socket goes away.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("receiver: bind {addr}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("receiver: cannot bind {addr}: {e}"),
            }
        };
        listener.set_nonblocking(true).expect("nonblocking");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("otlp-receiver")
            .enable_all()
            .build()
            .expect("receiver runtime");
        let tls = self.tls.as_ref().map(|t| server_config(t, self.protocol));
        let record = self.record.clone();
        match self.protocol {
            Protocol::Grpc => {
                let listener = {
                    let _guard = runtime.enter();
                    tokio::net::TcpListener::from_std(listener).expect("tokio listener")
                };
                runtime.spawn(serve_grpc(listener, tls, record));
            }
            Protocol::Http => {
                runtime.spawn(serve_http(listener, tls, record));
            }
        }
        self.runtime = Some(runtime);
    }

    /// Stops serving: closes the listener and every open connection (the port then
    /// refuses connections).
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }

    /// How to answer from now on (also while running; kept across stop and start). An
    /// HTTP status needs an HTTP receiver, a gRPC status a gRPC one.
    pub fn answer(&self, answer: Answer) {
        match (&answer, self.protocol) {
            (Answer::HttpStatus { .. }, Protocol::Grpc) => {
                panic!("{answer:?}: an HTTP status needs an HTTP receiver")
            }
            (Answer::GrpcStatus(_), Protocol::Http) => {
                panic!("{answer:?}: a gRPC status needs a gRPC receiver")
            }
            _ => {}
        }
        *self.record.answer.lock().unwrap_or_else(|p| p.into_inner()) = answer;
    }

    /// The current answer.
    pub fn answering(&self) -> Answer {
        self.record.answer()
    }

    /// Everything received so far.
    pub fn exports(&self) -> Vec<Received> {
        self.record.lock().clone()
    }

    /// How many exports arrived so far.
    pub fn count(&self) -> usize {
        self.record.lock().len()
    }

    /// Waits until at least `n` exports arrived; returns all of them. Panics after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_until(timeout, &format!("{n} exports"), |e| e.len() >= n)
    }

    /// Waits until `pred` holds for everything received; returns it. Panics with `what`
    /// after `timeout`.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        self.try_wait_until(timeout, &mut pred).unwrap_or_else(|| {
            panic!(
                "OTLP receiver ({:?}, port {}): timed out after {timeout:?} waiting for {what}; {} exports received",
                self.protocol,
                self.port,
                self.count()
            )
        })
    }

    /// Like [`Receiver::wait_until`], None after `timeout`.
    pub fn try_wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Received]) -> bool,
    ) -> Option<Vec<Received>> {
        let deadline = Instant::now() + timeout;
        let mut exports = self.record.lock();
        loop {
            if pred(&exports) {
                return Some(exports.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            exports = self
                .record
                .changed
                .wait_timeout(exports, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn install_crypto_provider() {
    // Fails when already installed (by us or anyone else in this process): fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn server_config(tls: &Tls, protocol: Protocol) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .unwrap_or_else(|e| panic!("{}: {e}", tls.cert.display()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", tls.cert.display()));
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .unwrap_or_else(|e| panic!("{}: {e}", tls.key.display()));
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap_or_else(|e| panic!("{e}")) {
                roots
                    .add(c.unwrap_or_else(|e| panic!("{}: {e}", ca.display())))
                    .expect("CA certificate");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .expect("server certificate and key");
    config.alpn_protocols = match protocol {
        Protocol::Grpc => vec![b"h2".to_vec()],
        Protocol::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Arc::new(config)
}

// ---- gRPC

struct GrpcService {
    record: Arc<Record>,
}

#[tonic::async_trait]
impl MetricsService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let client_cert = request
            .extensions()
            .get::<PeerInfo>()
            .map(|i| i.client_cert);
        let headers = header_list(&request.metadata().clone().into_headers());
        let gzip = headers
            .iter()
            .any(|(k, v)| k == "grpc-encoding" && v == "gzip");
        let answer = self.record.push(Received {
            request: request.into_inner(),
            decode_error: None,
            protocol: Protocol::Grpc,
            gzip,
            path: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export".into(),
            method: "POST".into(),
            headers,
            wire_bytes: 0,
            client_cert,
            at: SystemTime::now(),
            instant: Instant::now(),
            answered: Answer::Accept,
        });
        match answer {
            Answer::GrpcStatus(code) => Err(tonic::Status::new(
                code,
                format!("test receiver answers {code:?}"),
            )),
            // Refused by `Receiver::answer`; kept total for safety.
            Answer::HttpStatus { status, .. } => Err(tonic::Status::internal(format!(
                "test receiver: HTTP {status} asked of a gRPC receiver"
            ))),
            a => Ok(tonic::Response::new(a.response())),
        }
    }
}

fn header_list(h: &axum::http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Accepts connections (doing the TLS handshake when configured) and hands them to tonic.
async fn serve_grpc(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    record: Arc<Record>,
) {
    let service = MetricsServiceServer::new(GrpcService { record })
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(64 << 20);
    let router = tonic::transport::Server::builder().add_service(service);
    match tls {
        None => {
            let (tx, rx) = tokio::sync::mpsc::channel::<tokio::net::TcpStream>(16);
            tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    if tx.send(s).await.is_err() {
                        return;
                    }
                }
            });
            if let Err(e) = router.serve_with_incoming(incoming(rx)).await {
                eprintln!("receiver: gRPC server ended: {e}");
            }
        }
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let (tx, rx) = tokio::sync::mpsc::channel::<TlsConn>(16);
            tokio::spawn(async move {
                while let Ok((s, peer)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s))
                            .await
                        {
                            Ok(Ok(tls)) => {
                                let _ = tx.send(TlsConn(tls)).await;
                            }
                            Ok(Err(e)) => eprintln!("receiver: TLS handshake with {peer}: {e}"),
                            Err(_) => eprintln!("receiver: TLS handshake with {peer} timed out"),
                        }
                    });
                }
            });
            if let Err(e) = router.serve_with_incoming(incoming(rx)).await {
                eprintln!("receiver: gRPC server ended: {e}");
            }
        }
    }
}

/// What the gRPC service learns about a TLS connection.
#[derive(Debug, Clone)]
struct PeerInfo {
    client_cert: bool,
}

/// A server-side TLS connection that tells tonic whether the client sent a certificate
/// (tonic's own `TlsConnectInfo` is only public with its TLS features, which we leave off).
struct TlsConn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        PeerInfo {
            client_cert: self
                .0
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty()),
        }
    }
}

impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

fn incoming<IO>(
    mut rx: tokio::sync::mpsc::Receiver<IO>,
) -> impl futures_util::Stream<Item = Result<IO, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)))
}

// ---- HTTP/protobuf

async fn serve_http(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    record: Arc<Record>,
) {
    let app = axum::Router::new()
        .fallback(http_export)
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(record);
    let result = match tls {
        None => match axum_server::from_tcp(listener) {
            Ok(s) => s.serve(app.into_make_service()).await,
            Err(e) => Err(e),
        },
        Some(config) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
            match axum_server::tls_rustls::from_tcp_rustls(listener, config) {
                Ok(s) => s.serve(app.into_make_service()).await,
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        eprintln!("receiver: HTTP server ended: {e}");
    }
}

async fn http_export(
    axum::extract::State(record): axum::extract::State<Arc<Record>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let gzip = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let decoded = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map(|_| out)
            .map_err(|e| format!("gunzip: {e}"))
    } else {
        Ok(body.to_vec())
    };
    let (request, decode_error) = match decoded.and_then(|b| {
        ExportMetricsServiceRequest::decode(&b[..]).map_err(|e| format!("protobuf: {e}"))
    }) {
        Ok(r) => (r, None),
        Err(e) => (ExportMetricsServiceRequest::default(), Some(e)),
    };
    let failed = decode_error.is_some();
    let answer = record.push(Received {
        request,
        decode_error,
        protocol: Protocol::Http,
        gzip,
        path: uri.path().to_string(),
        method: method.to_string(),
        headers: header_list(&headers),
        wire_bytes: body.len(),
        client_cert: None,
        at: SystemTime::now(),
        instant: Instant::now(),
        answered: Answer::Accept,
    });
    if failed {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "cannot decode the export",
        )
            .into_response();
    }
    match answer {
        Answer::HttpStatus {
            status,
            retry_after,
        } => {
            let code = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = (code, format!("test receiver answers {status}")).into_response();
            if let Some(secs) = retry_after {
                resp.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(secs),
                );
            }
            resp
        }
        // Refused by `Receiver::answer`; kept total for safety.
        Answer::GrpcStatus(code) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("test receiver: gRPC {code:?} asked of an HTTP receiver"),
        )
            .into_response(),
        a => (
            [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
            a.response().encode_to_vec(),
        )
            .into_response(),
    }
}
