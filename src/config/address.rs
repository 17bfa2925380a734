//! Where a Docker host listens and the TLS files to reach it with, checked the same way
//! whether they come from the configuration file or the admin API
//! ([`Endpoint::from_user`]).

use std::fmt;
use std::path::{Path, PathBuf};

use super::{PathSeg, Problem, TlsConfig, expand_env};

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

/// Parses a listener address: `IP:port`, `[IPv6]:port`, `:port` (every interface, as
/// Prometheus exporters write it) or `localhost:port`.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::{Ipv4Addr, SocketAddr};
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .map_err(|_| format!("listen address `{s}`: `{p}` is not a TCP port (0 to 65535)"))
    };
    if let Some(p) = s.strip_prefix(':') {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port(p)?)));
    }
    if let Some(p) = s.strip_prefix("localhost:") {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port(p)?)));
    }
    Err(format!(
        "invalid listen address `{s}`: write IP:port (`0.0.0.0:9487`, `[::]:9487`), \
         `:9487` for every interface or `localhost:9487`"
    ))
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
    /// Client certificate; None for server-verified TLS without a client certificate.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Client private key; present exactly when `cert` is.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// A host endpoint ready to connect to: what the config, the store and the API agree on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Where the daemon listens.
    pub address: Address,
    /// Mutual TLS files; only with a TCP address.
    pub tls: Option<TlsFiles>,
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
            let ca = file("ca", &t.ca);
            let (cert, key) = match (&t.cert, &t.key) {
                (Some(c), Some(k)) => (Some(file("cert", c)), Some(file("key", k))),
                (None, None) => (None, None),
                (Some(_), None) => {
                    problems.push(Problem::new(
                        path!["tls", "key"],
                        "a client certificate needs its key: give both cert and key, or neither",
                    ));
                    (None, None)
                }
                (None, Some(_)) => {
                    problems.push(Problem::new(
                        path!["tls", "cert"],
                        "a client key needs its certificate: give both cert and key, or neither",
                    ));
                    (None, None)
                }
            };
            TlsFiles { ca, cert, key }
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

/// `p` relative to `base` unless absolute.
pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
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
pub(super) fn readable_file(p: &Path) -> Result<PathBuf, String> {
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
