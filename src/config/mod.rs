//! Configuration: one YAML file, read once at start.
//!
//! Parsing happens in two steps. serde_yaml turns the text into the typed structs below and
//! reports syntax errors, unknown keys and wrong types with their line and column. Then
//! [`Config::validate`] checks what types cannot say (unique names, addresses, TLS files that
//! exist, `${ENV}` expansion) and reports each problem with the path of the offending key;
//! [`locate`] turns that path back into a line and column of the same file. So every
//! configuration error names file, line and column, and the process exits 2.
//!
//! The doc comments on the structs are the user documentation of each key;
//! `config.example.yaml` repeats them next to the default values.

mod locate;
mod otlp;
pub mod ranges;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use locate::{PathSeg, display_path as locate_display, locate};
pub use otlp::{Compression, OtlpConfig, OtlpTlsConfig, Protocol, ValidOtlp};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Addresses the exporter listens on.
    pub listen: ListenConfig,
    /// How hosts are watched: interval, timeouts, retries, worker pool size.
    pub monitoring: MonitoringConfig,
    /// The embedded SQLite database (clients and hosts added at run time).
    pub database: DatabaseConfig,
    /// What goes into the metric families.
    pub metrics: MetricsConfig,
    /// The admin API: who may call it and its limits.
    pub api: ApiConfig,
    /// Live channels (SSE and WebSocket on the admin listener).
    pub streams: StreamsConfig,
    /// OTLP push of the same metrics to an OpenTelemetry receiver.
    pub otlp: OtlpConfig,
    /// Named groups of Docker hosts. Hosts declared here are synced into the database at
    /// start with source `config`.
    pub clients: Vec<ClientConfig>,
}

/// Listener addresses, and what each listener allows its clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// `/metrics`, `/healthz` and `/readyz`. Default `0.0.0.0:9487`.
    pub metrics: SocketAddr,
    /// The admin API (`/api/v1`): container actions, clients, hosts. Default
    /// `127.0.0.1:9488`. A non-loopback address needs `api.tokens`.
    pub admin: SocketAddr,
    /// Serve both listeners over TLS (rustls) with this certificate chain and key (PEM).
    /// Relative paths are taken from the directory of the configuration file. `${ENV}`
    /// allowed. Default: plain HTTP.
    pub tls: Option<ServerTlsConfig>,
    /// Open connections per listener (1 to 65536). At the cap a new connection makes the
    /// longest-idle one close; when every connection is busy the new one is closed at
    /// once, so idle clients can never lock a scraper out. Lowered at start to fit the
    /// open-file limit (each listener gets at most half of what is left after a quarter of
    /// the limit is kept for Docker connections and the rest). Default 512.
    pub max_connections: usize,
    /// Time for a request's head to arrive (1s to 5m): from the accept (TLS handshake
    /// included) or, on a kept-alive connection, from the first byte of the next request.
    /// Slower clients are disconnected. Default `10s`.
    #[serde(deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// A connection with no request in flight this long after its last answer is closed
    /// (1s to 1h), HTTP/1.1 keep-alive and HTTP/2 alike. Streamed answers, SSE streams and
    /// WebSockets are in flight while they last. Default `60s`.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
}

/// Certificate and key of the listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// Certificate chain, leaf first (PEM).
    pub cert: String,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// Admin API settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer tokens and their roles. Empty (the default) means no authentication, which is
    /// only allowed while `listen.admin` is a loopback address; every caller is then `admin`.
    pub tokens: Vec<TokenConfig>,
    /// Largest request body accepted, bytes. Default 65536. Range: 1024 to 16777216.
    pub max_body_bytes: usize,
    /// Deadline of one API request until its response starts (a followed log stream then
    /// runs until the caller leaves). Default `30s`. Range: 1s to 1h.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Log streams with `follow=true` open at once; more get 429. Default 16. Range: 1 to 1024.
    pub max_log_follows: NonZeroUsize,
}

/// Live channel settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// Subscribers at once over all channels and transports; beyond it 503. Default 100. Range: 0 to 10000 (0: no live channels).
    pub max_subscribers: usize,
    /// Messages one subscriber may fall behind before it is told it lagged (and misses
    /// them). Default 256. Range: 1 to 65536.
    pub queue: NonZeroUsize,
    /// Messages kept per channel so a reconnecting subscriber can resume with
    /// `Last-Event-ID`. Default 1024. Range: 0 to 100000.
    pub ring: usize,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            max_subscribers: 100,
            queue: NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN),
            ring: 1024,
        }
    }
}

/// One bearer token. Give either `sha256` (the hex SHA-256 of the token, as printed by
/// `dockstat-exporter token`) or `token` (normally `${ENV_VAR}`); only the hash is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it; recorded in the audit log. Unique.
    pub name: String,
    /// `viewer` (read), `operator` (read, container actions, monitoring) or `admin`
    /// (everything, including clients, hosts and the audit log).
    pub role: Role,
    /// Hex SHA-256 of the token (64 hex digits).
    #[serde(default)]
    pub sha256: Option<String>,
    /// The token itself; `${ENV}` allowed. Hashed at load and then forgotten.
    #[serde(default)]
    pub token: Option<String>,
}

/// What a token may do; each role includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only: every GET except the audit log.
    Viewer,
    /// Viewer plus container actions and monitoring start/stop.
    Operator,
    /// Everything: clients, hosts, audit log.
    Admin,
}

impl Role {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            tokens: Vec::new(),
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            max_log_follows: NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// Collection settings shared by every host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// Time between two stats samples of a container. Default `5s`. Range: 500ms to 1h.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Most worker tasks; beyond it hosts share the least-loaded worker. Default 200. Range: 1 to 10000.
    pub max_workers: NonZeroUsize,
    /// Connection attempts at `retry_delay` before the slower retry. Default 3. Range: 0 to 1000.
    pub max_retries: u32,
    /// Delay between the first `max_retries` connection attempts. Default `1s`. Range: 10ms to 1h.
    #[serde(deserialize_with = "duration")]
    pub retry_delay: Duration,
    /// After `max_retries`, the delay doubles up to this cap and stays there. Default `30s`. Range: 10ms to 1day.
    #[serde(deserialize_with = "duration")]
    pub retry_max_delay: Duration,
    /// Deadline of one Docker API call, reading its body included. Default `10s`. Range: 250ms to 10m.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Full re-list of containers, the safety net behind the events stream. Default `60s`. Range: 1s to 1day.
    #[serde(deserialize_with = "duration")]
    pub relist_interval: Duration,
    /// Stats calls in flight at once per host. Default 8. Range: 1 to 256.
    pub stats_concurrency: NonZeroUsize,
    /// Where container figures come from: `api` (Docker's one-shot stats), `cgroup` (the
    /// kernel's cgroup and /proc files, the ones dockerd itself reads: no load on dockerd)
    /// or `auto` (default): `cgroup` for every container whose files are visible here, which
    /// is only the case on the machine the daemon runs on, `api` for the others. `cgroup`
    /// behaves like `auto` but warns about containers it has to read through the API.
    pub stats_source: StatsSource,
    /// Where the host's cgroup hierarchy is mounted. In a container, mount the host's
    /// `/sys/fs/cgroup` read-only and point here. Default `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// Where the host's /proc is (`--pid=host` keeps `/proc`). Default `/proc`.
    pub proc_root: PathBuf,
}

/// Stats source, see [`MonitoringConfig::stats_source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsSource {
    /// cgroup files where they are readable, else the API.
    #[default]
    Auto,
    /// Always the Docker API.
    Api,
    /// cgroup files, warning when a container has to be read through the API.
    Cgroup,
}

/// Embedded database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// SQLite file; created if missing, its directory must exist. Relative paths are taken
    /// from the directory of the configuration file. `${ENV}` allowed. Default `./dockstat.db`.
    pub path: String,
}

/// Metric output settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Docker label keys copied onto container series as `container_label_<key>` (key with
    /// every character outside `[a-zA-Z0-9_]` replaced by `_`). Empty by default: every label
    /// is a new series dimension, so cardinality is your choice. Range: 0 to 64 keys.
    pub label_allowlist: Vec<String>,
    /// Compress `/metrics` with gzip (fastest level) when the scraper accepts it, as
    /// Prometheus always does. Default true: the text shrinks about tenfold on the wire.
    /// Set false when Prometheus scrapes over loopback or a fast local link and the
    /// exporter's CPU matters more (gzip costs roughly as much as rendering).
    pub gzip: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            label_allowlist: Vec::new(),
            gzip: true,
        }
    }
}

/// A named group of hosts (the seed library's `registerClient`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Unique name; the `client` label of every series of its hosts.
    pub name: String,
    /// Start collecting this client's hosts at start. Default true.
    #[serde(default = "yes")]
    pub monitoring: bool,
    /// The Docker Engine endpoints of this client.
    #[serde(default)]
    pub hosts: Vec<HostConfig>,
}

/// One Docker Engine endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Name unique within the client; the `host` label of its series.
    pub name: String,
    /// `unix:///var/run/docker.sock` (or a bare absolute path), `tcp://host:port` or
    /// `host:port`. With `tls` the TCP connection uses mutual TLS. `${ENV}` allowed.
    pub address: String,
    /// Mutual TLS for a TCP address: CA that signed the daemon's certificate, and the
    /// client certificate and key the daemon trusts (PEM). Relative paths are taken from the
    /// directory of the configuration file. `${ENV}` allowed.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Set to false to keep the host declared but not collected. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// PEM files for mutual TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) that signed the daemon's certificate.
    pub ca: String,
    /// Client certificate.
    pub cert: String,
    /// Client private key (PKCS#8, PKCS#1 or SEC1 PEM).
    pub key: String,
}

fn yes() -> bool {
    true
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            metrics: SocketAddr::from(([0, 0, 0, 0], 9487)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9488)),
            tls: None,
            // Far above what Prometheus and a few API clients need, far below the 1024
            // files of a default systemd service (and lowered to fit it anyway).
            max_connections: 512,
            // nginx gives a head 60s; a scraper's head is one packet, and every second
            // allowed is a second a slowloris client holds a socket.
            header_timeout: Duration::from_secs(10),
            // Longer than the usual 15s-30s scrape interval, so Prometheus reuses its
            // connection (and a TLS session) from one scrape to the next.
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            interval: Duration::from_secs(5),
            max_workers: NonZeroUsize::new(200).unwrap_or(NonZeroUsize::MIN),
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            relist_interval: Duration::from_secs(60),
            stats_concurrency: NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN),
            stats_source: StatsSource::Auto,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: "./dockstat.db".to_string(),
        }
    }
}

/// Parses durations written the human way: `500ms`, `5s`, `1m 30s`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as 500ms, 5s or 1m")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
            let d = humantime::parse_duration(v)
                .map_err(|e| E::custom(format!("invalid duration `{v}`: {e}")))?;
            if d.is_zero() {
                return Err(E::custom("duration must be greater than zero"));
            }
            Ok(d)
        }
    }
    d.deserialize_str(Visitor)
}

/// Where a Docker Engine listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over TCP (plain or TLS, decided by the host's `tls`).
    Tcp {
        /// DNS name or IP literal (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl Address {
    /// Parses `unix:///path`, `/path`, `tcp://host:port` and `host:port`.
    pub fn parse(s: &str) -> Result<Address, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix://") {
            return unix_path(path);
        }
        if s.starts_with('/') {
            return unix_path(s);
        }
        let rest = s.strip_prefix("tcp://").unwrap_or(s);
        if rest.contains("://") {
            return Err(format!(
                "unsupported address `{s}`: use unix:///path, tcp://host:port or host:port"
            ));
        }
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("address `{s}` needs a port, as in tcp://host:2375"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("address `{s}` has no host name"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("address `{s}`: `{port}` is not a TCP port"))?;
        Ok(Address::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

fn unix_path(path: &str) -> Result<Address, String> {
    if !path.starts_with('/') {
        return Err(format!("unix socket path `{path}` must be absolute"));
    }
    Ok(Address::Unix(PathBuf::from(path)))
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// TLS files after `${ENV}` expansion and path resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TlsFiles {
    /// CA bundle that signed the daemon's certificate.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client private key.
    pub key: PathBuf,
}

/// A host endpoint ready to connect to: what the config, the store and the API agree on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Where the daemon listens.
    pub address: Address,
    /// Mutual TLS files; only with a TCP address.
    pub tls: Option<TlsFiles>,
}

/// One problem found by validation, before it is given a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending key, e.g. `clients[0].hosts[1].tls.ca`.
    pub path: Vec<PathSeg>,
    /// What is wrong, for a human.
    pub message: String,
}

impl Problem {
    fn new(path: Vec<PathSeg>, message: impl Into<String>) -> Problem {
        Problem {
            path,
            message: message.into(),
        }
    }
}

/// Builds a path from string keys and indexes: `path!["clients", 0, "name"]`.
macro_rules! path {
    ($($seg:expr),* $(,)?) => { vec![$(PathSeg::from($seg)),*] };
}

impl Endpoint {
    /// Validates an address and optional TLS files as given by a user (config file or API),
    /// expanding `${ENV}` and resolving relative TLS paths against `base`. Problems carry
    /// paths relative to the host object (`address`, `tls.ca`, …).
    pub fn from_user(
        address: &str,
        tls: Option<&TlsConfig>,
        base: &Path,
    ) -> Result<Endpoint, Vec<Problem>> {
        let mut problems = Vec::new();
        let address = match expand_env(address).and_then(|a| Address::parse(&a)) {
            Ok(a) => Some(a),
            Err(e) => {
                problems.push(Problem::new(path!["address"], e));
                None
            }
        };
        let tls = tls.map(|t| {
            let mut file = |key: &str, value: &str| -> PathBuf {
                match expand_env(value).and_then(|v| readable_file(&resolve(base, &v))) {
                    Ok(p) => p,
                    Err(e) => {
                        problems.push(Problem::new(path!["tls", key], e));
                        PathBuf::new()
                    }
                }
            };
            TlsFiles {
                ca: file("ca", &t.ca),
                cert: file("cert", &t.cert),
                key: file("key", &t.key),
            }
        });
        if let (Some(Address::Unix(_)), Some(_)) = (&address, &tls) {
            problems.push(Problem::new(
                path!["tls"],
                "tls applies to tcp addresses only, not to a unix socket",
            ));
        }
        match address {
            Some(address) if problems.is_empty() => Ok(Endpoint { address, tls }),
            _ => Err(problems),
        }
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Checks that `p` is a regular file we may open. It is looked at (stat) before it is
/// opened: opening a FIFO blocks until something writes to it, which froze `check-config`
/// and, through the admin API, the runtime thread that validated a host.
fn readable_file(p: &Path) -> Result<PathBuf, String> {
    let not_found = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("file `{}` does not exist", p.display())
        } else {
            format!("cannot read `{}`: {e}", p.display())
        }
    };
    let meta = std::fs::metadata(p).map_err(not_found)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(format!("`{}` is {what}", p.display()));
    }
    std::fs::File::open(p).map_err(not_found)?;
    Ok(p.to_path_buf())
}

/// Replaces `${NAME}` with the environment variable NAME; `$${` stays a literal `${`.
/// An unset variable is an error, so a missing secret never turns into an empty string.
pub fn expand_env(s: &str) -> Result<String, String> {
    // No path, address or token can hold one; the OS would refuse it later, less clearly.
    if s.contains('\0') {
        return Err("must not contain a NUL character".to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable name"));
            }
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set"))?;
            if value.contains('\0') {
                return Err(format!(
                    "environment variable `{name}` holds a NUL character"
                ));
            }
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Turns a Docker label key into the suffix of a Prometheus label name.
pub fn sanitize_label(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A validated configuration: the parsed file plus everything derived from it.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The file as parsed.
    pub config: Config,
    /// Where it was read from (for messages).
    pub source: PathBuf,
    /// Database file after `${ENV}` expansion and path resolution.
    pub database_path: PathBuf,
    /// Label allowlist: (Docker key, Prometheus label name).
    pub labels: Vec<(String, String)>,
    /// Clients and their hosts with validated endpoints.
    pub clients: Vec<ValidClient>,
    /// API tokens, hashed.
    pub tokens: Vec<ValidToken>,
    /// Certificate and key files of the listeners, when TLS is on.
    pub listen_tls: Option<ServerTlsFiles>,
    /// OTLP push settings merged with the environment; None when OTLP is off.
    pub otlp: Option<ValidOtlp>,
}

/// A token from the file: name, role and SHA-256 of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// Holder's name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
}

impl fmt::Debug for ValidToken {
    // Keeps even the hash out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Resolved listener TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// SHA-256 of a token, as stored and compared.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A client from the file with validated hosts.
#[derive(Debug, Clone)]
pub struct ValidClient {
    /// Client name.
    pub name: String,
    /// Collect at start.
    pub monitoring: bool,
    /// Hosts in file order.
    pub hosts: Vec<ValidHost>,
}

/// A host from the file with a validated endpoint.
#[derive(Debug, Clone)]
pub struct ValidHost {
    /// Host name.
    pub name: String,
    /// Where and how to connect.
    pub endpoint: Endpoint,
    /// Collected when its client is monitored.
    pub enabled: bool,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{path}: cannot read configuration: {source}")]
    Read {
        /// File given by the user.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// One or more problems, each with its position.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Located>),
}

/// A problem with the file, line and column it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// File name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, with the key path in front when known.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl Config {
    /// Reads, parses and validates a configuration file. Only a regular file of at most
    /// [`MAX_FILE_BYTES`] is read (a FIFO would block, `/dev/zero` would never end).
    pub fn load(path: &Path) -> Result<Validated, ConfigError> {
        use std::io::Read;
        let read = |source: std::io::Error| ConfigError::Read {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if !meta.is_file() {
            return Err(read(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(read)?;
        Config::parse_bytes(&bytes, path)
    }

    /// Like [`Config::parse`] for raw bytes: refuses more than [`MAX_FILE_BYTES`] and text
    /// that is not UTF-8, with the position of the first bad byte.
    pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Validated, ConfigError> {
        let file = path.display().to_string();
        let at = |line: usize, column: usize, message: String| {
            ConfigError::Invalid(vec![Located {
                file: file.clone(),
                line,
                column,
                message,
            }])
        };
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(at(
                1,
                1,
                format!(
                    "the file is larger than {} KiB; a configuration is a few KiB",
                    MAX_FILE_BYTES >> 10
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            at(
                line,
                column,
                format!(
                    "not UTF-8 text (invalid byte at offset {}); save the file as UTF-8",
                    e.valid_up_to()
                ),
            )
        })?;
        Config::parse(text, path)
    }

    /// Parses and validates configuration text; `path` names it in errors and is the base
    /// for relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Validated, ConfigError> {
        let file = path.display().to_string();
        if let Some((line, column)) = too_deep(text, MAX_DEPTH) {
            return Err(ConfigError::Invalid(vec![Located {
                file,
                line,
                column,
                message: format!(
                    "nested deeper than {MAX_DEPTH} levels; a configuration needs fewer than ten"
                ),
            }]));
        }
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                ConfigError::Invalid(vec![Located {
                    file: file.clone(),
                    line,
                    column,
                    message: strip_location(&e.to_string()),
                }])
            })?
        };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.validate(base, path).map_err(|problems| {
            ConfigError::Invalid(
                problems
                    .into_iter()
                    .map(|p| {
                        let (line, column) = locate(text, &p.path).unwrap_or((1, 1));
                        Located {
                            file: file.clone(),
                            line,
                            column,
                            message: format!("{}: {}", locate::display_path(&p.path), p.message),
                        }
                    })
                    .collect(),
            )
        })
    }

    /// Checks what the types cannot; returns every problem found.
    fn validate(self, base: &Path, source: &Path) -> Result<Validated, Vec<Problem>> {
        let mut problems = Vec::new();

        let database_path = match expand_env(&self.database.path) {
            Ok(p) if p.trim().is_empty() => {
                problems.push(Problem::new(
                    path!["database", "path"],
                    "must not be empty (default ./dockstat.db)",
                ));
                PathBuf::new()
            }
            Ok(p) => {
                let p = resolve(base, &p);
                match p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    _ if p.is_dir() => problems.push(Problem::new(
                        path!["database", "path"],
                        format!(
                            "`{}` is a directory; name the database file in it, e.g. {}",
                            p.display(),
                            p.join("dockstat.db").display()
                        ),
                    )),
                    Some(dir) if !dir.is_dir() => problems.push(Problem::new(
                        path!["database", "path"],
                        format!("directory `{}` does not exist", dir.display()),
                    )),
                    _ => {}
                }
                p
            }
            Err(e) => {
                problems.push(Problem::new(path!["database", "path"], e));
                PathBuf::new()
            }
        };

        ranges::check(&self, &mut problems);
        for (key, p) in [
            ("cgroup_root", &self.monitoring.cgroup_root),
            ("proc_root", &self.monitoring.proc_root),
        ] {
            if p.as_os_str().is_empty() || p.as_os_str().as_encoded_bytes().contains(&0) {
                problems.push(Problem::new(
                    path!["monitoring", key],
                    "must be a directory path without NUL characters",
                ));
            }
        }
        if self.monitoring.retry_max_delay < self.monitoring.retry_delay {
            problems.push(Problem::new(
                path!["monitoring", "retry_max_delay"],
                "must not be shorter than retry_delay",
            ));
        }

        let mut labels = Vec::new();
        let mut label_names: HashMap<String, &str> = HashMap::new();
        for (i, key) in self.metrics.label_allowlist.iter().enumerate() {
            let at = path!["metrics", "label_allowlist", i];
            if key.is_empty() {
                problems.push(Problem::new(at, "label key must not be empty"));
                continue;
            }
            let name = format!("container_label_{}", sanitize_label(key));
            if let Some(first) = label_names.get(&name) {
                problems.push(Problem::new(
                    at,
                    format!("`{key}` and `{first}` both become the label `{name}`"),
                ));
                continue;
            }
            label_names.insert(name.clone(), key);
            labels.push((key.clone(), name));
        }

        let mut clients = Vec::new();
        let mut client_names = BTreeSet::new();
        let mut addresses: HashMap<Endpoint, String> = HashMap::new();
        for (ci, client) in self.clients.iter().enumerate() {
            if client.name.trim().is_empty() {
                problems.push(Problem::new(
                    path!["clients", ci, "name"],
                    "must not be empty",
                ));
            } else if !client_names.insert(client.name.as_str()) {
                problems.push(Problem::new(
                    path!["clients", ci, "name"],
                    format!("duplicate client `{}`", client.name),
                ));
            }
            let mut hosts = Vec::new();
            let mut host_names = BTreeSet::new();
            for (hi, host) in client.hosts.iter().enumerate() {
                let at = |rest: Vec<PathSeg>| {
                    let mut p = path!["clients", ci, "hosts", hi];
                    p.extend(rest);
                    p
                };
                if host.name.trim().is_empty() {
                    problems.push(Problem::new(at(path!["name"]), "must not be empty"));
                } else if !host_names.insert(host.name.as_str()) {
                    problems.push(Problem::new(
                        at(path!["name"]),
                        format!("duplicate host `{}` in client `{}`", host.name, client.name),
                    ));
                }
                match Endpoint::from_user(&host.address, host.tls.as_ref(), base) {
                    Ok(endpoint) => {
                        let here = format!("{}/{}", client.name, host.name);
                        if let Some(first) = addresses.get(&endpoint) {
                            problems.push(Problem::new(
                                at(path!["address"]),
                                format!(
                                    "duplicate host: {} is already declared as `{first}`",
                                    endpoint.address
                                ),
                            ));
                        } else {
                            addresses.insert(endpoint.clone(), here);
                        }
                        hosts.push(ValidHost {
                            name: host.name.clone(),
                            endpoint,
                            enabled: host.enabled,
                        });
                    }
                    Err(found) => problems.extend(
                        found
                            .into_iter()
                            .map(|p| Problem::new(at(p.path), p.message)),
                    ),
                }
            }
            clients.push(ValidClient {
                name: client.name.clone(),
                monitoring: client.monitoring,
                hosts,
            });
        }

        let tokens = validate_tokens(&self.api.tokens, &mut problems);
        if tokens.is_empty() && !self.listen.admin.ip().is_loopback() {
            problems.push(Problem::new(
                path!["listen", "admin"],
                format!(
                    "the admin API on non-loopback address {} needs api.tokens: without \
                     tokens anyone who can reach it could stop and remove containers",
                    self.listen.admin
                ),
            ));
        }
        if self.listen.admin == self.listen.metrics {
            problems.push(Problem::new(
                path!["listen", "admin"],
                "must differ from listen.metrics: container actions are never served on the metrics port",
            ));
        }
        let listen_tls = self.listen.tls.as_ref().map(|t| {
            let mut file = |key: &str, value: &str| match expand_env(value)
                .and_then(|v| readable_file(&resolve(base, &v)))
            {
                Ok(p) => p,
                Err(e) => {
                    problems.push(Problem::new(path!["listen", "tls", key], e));
                    PathBuf::new()
                }
            };
            ServerTlsFiles {
                cert: file("cert", &t.cert),
                key: file("key", &t.key),
            }
        });

        let otlp = otlp::validate(&self.otlp, &|k| std::env::var(k).ok(), base, &mut problems);

        if problems.is_empty() {
            Ok(Validated {
                config: self,
                source: source.to_path_buf(),
                database_path,
                labels,
                clients,
                tokens,
                listen_tls,
                otlp,
            })
        } else {
            Err(problems)
        }
    }
}

/// Largest configuration file read: a configuration with a thousand hosts is ~100 KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Deepest nesting accepted before parsing: ours needs 6 (`clients[].hosts[].tls.ca`), and
/// libyaml's time grows steeply with depth (7 s at 40,000 levels).
pub const MAX_DEPTH: usize = 64;

/// Where the text first nests deeper than `max` levels, by a scan that costs nothing next
/// to parsing: block nesting by indentation (and `- ` items opening on the same line), flow
/// nesting by brackets outside quotes and comments. It over-counts at worst (a `- ` inside a
/// plain scalar), which only matters beyond `max`. None when it stays within.
fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        if flow == 0 {
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            let mut indent = line.len() - body.len();
            // Each `- ` opens a level at the column after it.
            let mut rest = body;
            while let Some(after) = rest
                .strip_prefix("- ")
                .or(rest.strip_prefix('-').filter(|r| r.is_empty()))
            {
                while indents.last().is_some_and(|top| *top > indent) {
                    indents.pop();
                }
                indents.push(indent + 1);
                let trimmed = after.trim_start_matches(' ');
                indent += 1 + (after.len() - trimmed.len()) + 1;
                rest = trimmed;
            }
            while indents.last().is_some_and(|top| *top > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
            if indents.len() > max {
                return Some((n + 1, indent + 1));
            }
        }
        let (mut single, mut double) = (false, false);
        for (col, c) in line.char_indices() {
            match c {
                '\'' if !double => single = !single,
                '"' if !single => double = !double,
                '#' if !single && !double => break,
                '[' | '{' if !single && !double => {
                    flow += 1;
                    if indents.len() + flow > max {
                        return Some((n + 1, col + 1));
                    }
                }
                ']' | '}' if !single && !double => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// serde_yaml puts " at line L column C" into its messages; we print the position in front,
/// so it is cut out wherever it appears.
fn strip_location(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n = digits(after);
        match after[n..].strip_prefix(" column ") {
            Some(col) if n > 0 && digits(col) > 0 => rest = &col[digits(col)..],
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;

/// Checks the token list: unique names, exactly one of `sha256`/`token`, well-formed hashes.
fn validate_tokens(list: &[TokenConfig], problems: &mut Vec<Problem>) -> Vec<ValidToken> {
    let mut tokens: Vec<ValidToken> = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let at = |key: &str| path!["api", "tokens", i, key];
        if t.name.trim().is_empty() {
            problems.push(Problem::new(at("name"), "must not be empty"));
        } else if tokens.iter().any(|v| v.name == t.name) {
            problems.push(Problem::new(
                at("name"),
                format!("duplicate token `{}`", t.name),
            ));
        }
        let hash = match (&t.sha256, &t.token) {
            (Some(h), None) => match parse_hex32(h) {
                Some(h) => Some(h),
                None => {
                    problems.push(Problem::new(at("sha256"), "must be 64 hex digits"));
                    None
                }
            },
            (None, Some(tok)) => match expand_env(tok) {
                Ok(tok) if tok.len() >= 16 => Some(token_hash(&tok)),
                Ok(_) => {
                    problems.push(Problem::new(
                        at("token"),
                        "must be at least 16 characters (`dockstat-exporter token` makes one)",
                    ));
                    None
                }
                Err(e) => {
                    problems.push(Problem::new(at("token"), e));
                    None
                }
            },
            (Some(_), Some(_)) => {
                problems.push(Problem::new(
                    at("token"),
                    "give either sha256 or token, not both",
                ));
                None
            }
            (None, None) => {
                problems.push(Problem::new(
                    path!["api", "tokens", i],
                    "needs sha256 (hex SHA-256 of the token) or token",
                ));
                None
            }
        };
        if let Some(sha256) = hash {
            if tokens.iter().any(|v| v.sha256 == sha256) {
                problems.push(Problem::new(
                    at(if t.token.is_some() { "token" } else { "sha256" }),
                    "the same token is given twice",
                ));
            }
            tokens.push(ValidToken {
                name: t.name.clone(),
                role: t.role,
                sha256,
            });
        }
    }
    tokens
}
