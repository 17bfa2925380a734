//! What the configuration is checked for once parsed (names, addresses, files, ranges,
//! listeners, tokens), and the [`Validated`] configuration the rest of the exporter is
//! given. Every problem is collected with the path of its key, none stops the others.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::address::{readable_file, resolve};
use super::filter::{ContainerFilter, Filters};
use super::schema::ContainersConfig;
use super::tokens::validate_tokens;
use super::{
    ClientConfig, Config, DatabaseConfig, Endpoint, ListenConfig, MonitoringConfig, PathSeg,
    Problem, ValidOtlp, ValidToken, expand_env, otlp, ranges,
};
use crate::shard::Shard;

/// A validated configuration: the parsed file plus everything derived from it.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The file as parsed.
    pub config: Config,
    /// Where it was read from (for messages).
    pub source: PathBuf,
    /// Database file after `${ENV}` expansion and path resolution.
    pub database_path: PathBuf,
    /// The data directory: the database's; the generated admin token goes there too.
    pub data_dir: PathBuf,
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
    /// The `containers` sections of clients and hosts.
    pub containers: Filters,
    /// `otlp` keys set both in the file and by an `OTEL_*` variable (the file won).
    pub otlp_overlaps: Vec<otlp::OtlpOverlap>,
    /// What `/sd` hands out as this replica's address (`listen.advertise`, expanded, or
    /// `listen.metrics`).
    pub advertise: String,
    /// This replica's shard: `shard.index`, else the host name's ordinal when
    /// `shard.total` is above 1, else 0 (see `shard_index_known`).
    pub shard: Shard,
    /// Whether `shard.index` came from the file or the host name rather than the default
    /// 0: with more than one shard the command line must then give it (`--shard`).
    pub shard_index_known: bool,
}

impl Validated {
    /// Applies `--shard`, `--total-shards` and `--advertise-address` over the file; says
    /// what is wrong when the result is not a usable shard.
    pub fn apply_flags(
        &mut self,
        index: Option<usize>,
        total: Option<usize>,
        advertise: Option<String>,
    ) -> Result<(), String> {
        if let Some(a) = advertise {
            if !is_host_port(&a) {
                return Err(format!("--advertise-address `{a}` is not host:port"));
            }
            self.advertise = a;
        }
        if let Some(t) = total {
            let (min, max) = ranges::SHARD_TOTAL;
            if !(min..=max).contains(&t) {
                return Err(format!(
                    "--total-shards {t} is out of range: allowed {min} to {max}"
                ));
            }
            self.shard.total = t;
            if !self.shard_index_known {
                (self.shard.index, self.shard_index_known) = shard_index(None, t);
            }
        }
        if let Some(i) = index {
            self.shard.index = i;
            self.shard_index_known = true;
        }
        let Shard { index, total } = self.shard;
        if total > 1 && !self.shard_index_known {
            return Err(format!(
                "{total} shards but no shard index: set shard.index, pass --shard, or run \
                 with a host name ending in -<ordinal> (a StatefulSet pod)"
            ));
        }
        if index >= total {
            return Err(format!(
                "shard index {index} is not below the number of shards {total}"
            ));
        }
        Ok(())
    }
}

/// The shard index from the file, else from the host name's ordinal when there are
/// several shards; whether it is known.
fn shard_index(from_file: Option<usize>, total: usize) -> (usize, bool) {
    match from_file {
        Some(i) => (i, true),
        None if total > 1 => match crate::shard::hostname()
            .as_deref()
            .and_then(crate::shard::ordinal)
        {
            Some(i) => (i, true),
            None => (0, false),
        },
        None => (0, true),
    }
}

/// Whether `v` looks like `host:port` (a name or an IP, `[v6]` included, and a port
/// above 0), with nothing of a URL around it.
fn is_host_port(v: &str) -> bool {
    let port_ok = v
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    port_ok && !v.contains(['/', ' ', '?', '#', '@'])
}

/// `listen.advertise` expanded, or `listen.metrics` with an unspecified IP replaced by
/// the host name.
fn advertise(listen: &ListenConfig, problems: &mut Vec<Problem>) -> String {
    let Some(a) = &listen.advertise else {
        let addr = listen.metrics;
        if addr.ip().is_unspecified()
            && let Some(host) = crate::shard::hostname()
        {
            return format!("{host}:{}", addr.port());
        }
        return addr.to_string();
    };
    match expand_env(a) {
        Ok(v) => {
            let v = v.trim().to_string();
            if !is_host_port(&v) {
                problems.push(Problem::new(
                    path!["listen", "advertise"],
                    format!("`{v}` is not host:port"),
                ));
            }
            v
        }
        Err(e) => {
            problems.push(Problem::new(path!["listen", "advertise"], e));
            String::new()
        }
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
    /// Host name. When the file gives none, a provisional name from the address (`local`
    /// for a unix socket, the host part of a TCP address) until
    /// [`crate::DockerClient::start`] asks the daemon for its own.
    pub name: String,
    /// The file gave no name: the daemon's `/info` `Name` is used.
    pub name_from_daemon: bool,
    /// Where and how to connect.
    pub endpoint: Endpoint,
    /// Collected when its client is monitored.
    pub enabled: bool,
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

impl Config {
    /// Checks what the types cannot; returns every problem found, in the order of the file's
    /// sections.
    pub(super) fn validate(self, base: &Path, source: &Path) -> Result<Validated, Vec<Problem>> {
        let mut problems = Vec::new();
        let database_path = database_path(&self.database, base, &mut problems);
        ranges::check(&self, &mut problems);
        check_monitoring(&self.monitoring, &mut problems);
        let labels = label_allowlist(&self.metrics.label_allowlist, &mut problems);
        let clients = clients(&self.clients, base, &mut problems);
        let tokens = validate_tokens(&self.api.tokens, &mut problems);
        check_listeners(&self.listen, &tokens, &mut problems);
        let listen_tls = listen_tls(&self.listen, base, &mut problems);
        let env = |k: &str| std::env::var(k).ok();
        let otlp = otlp::validate(&self.otlp, &env, base, &mut problems);
        let otlp_overlaps = otlp::overlaps(&self.otlp, &env);
        check_disable(&self.metrics.disable, &mut problems);
        let (client_containers, host_containers) =
            container_filters(&self.clients, &clients, &mut problems);
        let advertise = advertise(&self.listen, &mut problems);
        let (index, shard_index_known) = shard_index(self.shard.index, self.shard.total);
        let shard = Shard {
            index,
            total: self.shard.total,
        };
        if shard_index_known && index >= shard.total && shard.total > 0 {
            let at = if self.shard.index.is_some() {
                path!["shard", "index"]
            } else {
                path!["shard", "total"]
            };
            problems.push(Problem::new(
                at,
                format!(
                    "shard index {index} is not below shard.total {}",
                    shard.total
                ),
            ));
        }
        if problems.is_empty() {
            let data_dir = database_path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            Ok(Validated {
                config: self,
                source: source.to_path_buf(),
                database_path,
                data_dir,
                labels,
                clients,
                tokens,
                listen_tls,
                otlp,
                containers: Filters {
                    clients: client_containers,
                    hosts: host_containers,
                },
                otlp_overlaps,
                advertise,
                shard,
                shard_index_known,
            })
        } else {
            Err(problems)
        }
    }
}

/// The database file, expanded and resolved; its directory must exist.
fn database_path(db: &DatabaseConfig, base: &Path, problems: &mut Vec<Problem>) -> PathBuf {
    match expand_env(&db.path) {
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
                dir => {
                    // SQLite writes its journal beside the file: the directory must be
                    // writable, and the OS says why it is not.
                    let dir = dir.unwrap_or(Path::new("."));
                    if let Err(e) = writable_dir(dir) {
                        problems.push(Problem::new(
                            path!["database", "path"],
                            format!(
                                "directory `{}` is not writable ({e}); the database and its \
                                 journal are written there",
                                dir.display()
                            ),
                        ));
                    }
                }
            }
            p
        }
        Err(e) => {
            problems.push(Problem::new(path!["database", "path"], e));
            PathBuf::new()
        }
    }
}

/// access(2) with W_OK: Ok when this process may create files in `dir`, else the OS's
/// reason (`Read-only file system`, `Permission denied`).
pub(super) fn writable_dir(dir: &Path) -> Result<(), std::io::Error> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What `ranges` does not check of `monitoring`: the roots of the cgroup reader, the retry
/// delays against each other.
fn check_monitoring(m: &MonitoringConfig, problems: &mut Vec<Problem>) {
    for (key, p) in [("cgroup_root", &m.cgroup_root), ("proc_root", &m.proc_root)] {
        if p.as_os_str().is_empty() || p.as_os_str().as_encoded_bytes().contains(&0) {
            problems.push(Problem::new(
                path!["monitoring", key],
                "must be a directory path without NUL characters",
            ));
        }
    }
    if m.retry_max_delay < m.retry_delay {
        problems.push(Problem::new(
            path!["monitoring", "retry_max_delay"],
            "must not be shorter than retry_delay",
        ));
    }
}

/// The label allowlist as (Docker key, Prometheus label name); two keys must not become the
/// same name.
fn label_allowlist(keys: &[String], problems: &mut Vec<Problem>) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut label_names: HashMap<String, &str> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
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
    labels
}

/// `metrics.disable`: names only; which exist is the family table's to say (checked where the
/// configuration meets it, `families::Selection`).
fn check_disable(names: &[String], problems: &mut Vec<Problem>) {
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() {
            problems.push(Problem::new(
                path!["metrics", "disable", i],
                "must not be empty: a group (cpu, memory, network, diskIO, disk, process, pressure) or a family name",
            ));
        }
    }
}

/// The `containers` sections of clients and hosts, compiled; empty names and selectors are
/// problems.
#[allow(clippy::type_complexity)]
fn container_filters(
    list: &[ClientConfig],
    valid: &[ValidClient],
    problems: &mut Vec<Problem>,
) -> (
    HashMap<String, ContainerFilter>,
    HashMap<(String, String), ContainerFilter>,
) {
    let mut check = |c: &ContainersConfig, at: Vec<PathSeg>| {
        for (half, sel) in [("include", &c.include), ("exclude", &c.exclude)] {
            for (key, entries) in [("names", &sel.names), ("labels", &sel.labels)] {
                for (i, e) in entries.iter().enumerate() {
                    if e.trim().is_empty() || e.starts_with('=') {
                        let mut p = at.clone();
                        p.extend([half.into(), key.into(), i.into()]);
                        problems.push(Problem::new(
                            p,
                            "must not be empty (a name glob, or a label `key` or `key=value`)",
                        ));
                    }
                }
            }
        }
        ContainerFilter::of(c)
    };
    let mut clients = HashMap::new();
    let mut hosts = HashMap::new();
    for (ci, client) in list.iter().enumerate() {
        let f = check(&client.containers, path!["clients", ci, "containers"]);
        if f != ContainerFilter::default() {
            clients.insert(client.name.clone(), f);
        }
        for (hi, host) in client.hosts.iter().enumerate() {
            let f = check(
                &host.containers,
                path!["clients", ci, "hosts", hi, "containers"],
            );
            // An unnamed host is keyed by its provisional name until its daemon names it
            // (`Filters::renamed`).
            let name = host.name.clone().or_else(|| {
                valid
                    .get(ci)
                    .and_then(|c| c.hosts.get(hi))
                    .map(|h| h.name.clone())
            });
            if let (Some(name), true) = (name, f != ContainerFilter::default()) {
                hosts.insert((client.name.clone(), name), f);
            }
        }
    }
    (clients, hosts)
}

/// Clients and their hosts: unique names, valid endpoints, no endpoint declared twice.
fn clients(list: &[ClientConfig], base: &Path, problems: &mut Vec<Problem>) -> Vec<ValidClient> {
    let mut clients = Vec::new();
    let mut client_names = BTreeSet::new();
    let mut addresses: HashMap<Endpoint, String> = HashMap::new();
    for (ci, client) in list.iter().enumerate() {
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
            match host.name.as_deref() {
                Some(name) if name.trim().is_empty() => problems.push(Problem::new(
                    at(path!["name"]),
                    "must not be empty (leave `name` out to use the daemon's own name)",
                )),
                Some(name) if !host_names.insert(name) => problems.push(Problem::new(
                    at(path!["name"]),
                    format!("duplicate host `{name}` in client `{}`", client.name),
                )),
                _ => {}
            }
            match Endpoint::from_user(&host.address, host.tls.as_ref(), base) {
                Ok(endpoint) => {
                    let name = host
                        .name
                        .clone()
                        .unwrap_or_else(|| provisional_name(&endpoint));
                    let here = format!("{}/{name}", client.name);
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
                        name,
                        name_from_daemon: host.name.is_none(),
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
    clients
}

/// The name of a host the file does not name, until its daemon says its own: `local` for
/// a unix socket, the host part of a TCP address.
pub fn provisional_name(endpoint: &Endpoint) -> String {
    match &endpoint.address {
        super::Address::Unix(_) => "local".to_string(),
        super::Address::Tcp { host, .. } => host.clone(),
    }
}

/// The admin listener: never anonymous beyond loopback, never the metrics port.
fn check_listeners(listen: &ListenConfig, tokens: &[ValidToken], problems: &mut Vec<Problem>) {
    if tokens.is_empty() && !listen.admin.ip().is_loopback() {
        problems.push(Problem::new(
            path!["listen", "admin"],
            format!(
                "the admin API on non-loopback address {} needs api.tokens: without \
                 tokens anyone who can reach it could stop and remove containers",
                listen.admin
            ),
        ));
    }
    if listen.admin == listen.metrics {
        problems.push(Problem::new(
            path!["listen", "admin"],
            "must differ from listen.metrics: container actions are never served on the metrics port",
        ));
    }
}

/// The listeners' certificate and key files, when TLS is on.
fn listen_tls(
    listen: &ListenConfig,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Option<ServerTlsFiles> {
    listen.tls.as_ref().map(|t| {
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
    })
}
