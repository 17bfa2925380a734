//! The configuration file's structs, as serde reads them. Their doc comments are the user
//! documentation of each key; `config.example.yaml` repeats them next to the default
//! values.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::OtlpConfig;

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
    /// OTLP push of the same metrics to an OpenTelemetry receiver. An empty section (every
    /// key commented out) is the defaults.
    #[serde(deserialize_with = "null_as_default")]
    pub otlp: OtlpConfig,
    /// Several replicas sharing one host set, each collecting only its share of the hosts.
    pub shard: ShardConfig,
    /// Named groups of Docker hosts. Hosts declared here are synced into the database at
    /// start with source `config`.
    pub clients: Vec<ClientConfig>,
}

/// Listener addresses, and what each listener allows its clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// `/metrics`, `/healthz` and `/readyz`. Default `0.0.0.0:9487`. `:9487` (every
    /// interface, as Prometheus exporters write it) and `localhost:9487` are accepted too.
    /// The command line's `--web.listen-address` overrides it.
    #[serde(deserialize_with = "listen_address")]
    pub metrics: SocketAddr,
    /// The admin API (`/api/v1`): container actions, clients, hosts. Default
    /// `127.0.0.1:9488`. A non-loopback address needs `api.tokens`. The command line's
    /// `--api.listen-address` overrides it.
    #[serde(deserialize_with = "listen_address")]
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
    /// Where Prometheus reaches the metrics listener, `host:port`: the target `/sd` hands
    /// out. `${ENV}` allowed (`${POD_IP}:9487`). Default: `listen.metrics`, with an
    /// unspecified IP (`0.0.0.0`, `::`) replaced by this machine's host name. Also
    /// `--advertise-address`.
    pub advertise: Option<String>,
}

/// Shards, see README "Scaling out".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardConfig {
    /// Replicas sharing the host set; each collects the hosts that a rendezvous hash of
    /// client and host name gives to its shard. Default 1 (no sharding). Range: 1 to 1000.
    /// Also `--total-shards`.
    pub total: usize,
    /// This replica's shard, 0-based, below `total`. Default: the ordinal at the end of the
    /// host name (`dockstat-2` is 2, as a StatefulSet names its pods) when `total` is above
    /// 1, else 0. Also `--shard`.
    pub index: Option<usize>,
    /// With `total` above 1, how often the hosts are read again from the database, so that
    /// hosts added or removed through another replica's API (replicas sharing
    /// `database.path`) reach this one. Default `10s`. Range: 1s to 1h.
    #[serde(deserialize_with = "duration")]
    pub refresh: Duration,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            total: 1,
            index: None,
            refresh: Duration::from_secs(10),
        }
    }
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
    /// Bearer tokens and their roles. Empty (the default): the exporter makes one admin
    /// token at first start, in `admin.token` (mode 0600) in the data directory, logs the
    /// file's path (never the token) and answers 401 to any call without it; allowed only
    /// while `listen.admin` is a loopback address.
    pub tokens: Vec<TokenConfig>,
    /// Largest request body accepted, bytes. Default 65536. Range: 1024 to 16777216.
    pub max_body_bytes: usize,
    /// Deadline of one API request until its response starts (a followed log stream then
    /// runs until the caller leaves). Default `30s`. Range: 1s to 1h.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Log streams with `follow=true` open at once; more get 429. Default 16. Range: 1 to 1024.
    pub max_log_follows: NonZeroUsize,
    /// Container actions (start, stop, restart, remove) and log reading. Default true.
    /// `false` is the read-only mode, for Docker reached through a GET-only socket proxy:
    /// those routes answer 403 `actions_disabled` whatever the token's role; everything
    /// else (reads, clients, hosts, monitoring, streams) works as before.
    pub actions: bool,
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
            actions: true,
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
    /// Collect disk usage (containers' writable layers and root filesystems, volumes,
    /// images, build cache) off the scrape path, with Docker's `GET /system/df`, which is
    /// slow and holds a daemon lock on big hosts. Default true.
    pub disk_usage: bool,
    /// Time between two disk usage passes of a host (never two at once). Default `5m`.
    /// Range: 1s to 1day.
    #[serde(deserialize_with = "duration")]
    pub disk_usage_interval: Duration,
    /// Deadline of one disk usage pass, the `/system/df` call and the walks of writable
    /// layers included; longer than `request_timeout`, as Docker takes tens of seconds on
    /// big hosts. Default `2m`. Range: 1s to 1h.
    #[serde(deserialize_with = "duration")]
    pub disk_usage_timeout: Duration,
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
    /// Docker label keys, or globs of them (`com.example.*`, `*`), that
    /// `dockstat_container_labels` carries as `container_label_<key>`: one series per
    /// container instead of a label on every series; join it where a label is needed
    /// (README). Empty by default. Range: 0 to 256 keys.
    pub info_labels: Vec<String>,
    /// Families or groups of families not collected nor exported, like cAdvisor's
    /// `-disable_metrics`: a group (`cpu`, `memory`, `network`, `diskIO`, `disk`,
    /// `process`, `pressure`) or a family's name, as exposed (`container_fs_reads_total`) or
    /// without unit and `_total` (`container_fs_reads`: both such families). Disabling
    /// `process` also stops the `/proc` walk that only it needs, `pressure` the PSI reads.
    /// Empty by default. Range: 0 to 256 names.
    pub disable: Vec<String>,
    /// Compress `/metrics` with gzip (fastest level) when the scraper accepts it, as
    /// Prometheus always does. Default true: the text shrinks about tenfold on the wire.
    /// Set false when Prometheus scrapes over loopback or a fast local link and the
    /// exporter's CPU matters more (gzip costs roughly as much as rendering).
    pub gzip: bool,
}

impl MetricsConfig {
    /// Whether `metrics.disable` names the group `group` (case aside: `diskIO`, `diskio`).
    pub fn disables(&self, group: &str) -> bool {
        self.disable
            .iter()
            .any(|d| d.trim().eq_ignore_ascii_case(group))
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            label_allowlist: Vec::new(),
            disable: Vec::new(),
            info_labels: Vec::new(),
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
    /// Which containers of its hosts are collected (each host may narrow it further).
    #[serde(default)]
    pub containers: ContainersConfig,
}

/// Which containers are collected: those matching `include` (every list given) and nothing
/// of `exclude`. A container carrying the label `dockstat.monitor=false` is never collected.
/// Left-out containers cost no stats call and have no series.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    /// Only these, when given.
    pub include: Selector,
    /// Never these.
    pub exclude: Selector,
}

/// Containers by name and by label.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Selector {
    /// Name globs (`*` any run, `?` one character), the name without its leading slash.
    /// Range: 0 to 256 entries.
    pub names: Vec<String>,
    /// `key` (the label is there) or `key=value`. Range: 0 to 256 entries.
    pub labels: Vec<String>,
}

/// One Docker Engine endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Name unique within the client; the `host` label of its series. Optional: without
    /// it the host is named after the daemon's own name (`docker info`'s `Name`, the
    /// machine's host name), asked at start; see the README's "Host names".
    #[serde(default)]
    pub name: Option<String>,
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
    /// Which of its containers are collected, within its client's `containers`.
    #[serde(default)]
    pub containers: ContainersConfig,
}

/// PEM files for TLS to a daemon: the CA alone (the daemon's certificate is verified, no
/// client certificate is sent), or the CA with a client certificate and key (mutual TLS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) that signed the daemon's certificate.
    pub ca: String,
    /// Client certificate; give it with `key`, or neither.
    #[serde(default)]
    pub cert: Option<String>,
    /// Client private key (PKCS#8, PKCS#1 or SEC1 PEM); give it with `cert`, or neither.
    #[serde(default)]
    pub key: Option<String>,
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
            advertise: None,
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
            disk_usage: true,
            disk_usage_interval: Duration::from_secs(300),
            disk_usage_timeout: Duration::from_secs(120),
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

/// An empty section (`otlp:` with every key commented out) as the defaults.
fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// Reads a listener address, see [`super::address::parse_listen`].
pub(super) fn listen_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    super::address::parse_listen(&s).map_err(serde::de::Error::custom)
}

/// Parses durations written the human way: `500ms`, `5s`, `1m 30s`.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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
