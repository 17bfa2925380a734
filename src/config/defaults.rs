//! Running without a configuration file, the way other exporters start: the Docker host
//! from the environment exactly as the `docker` CLI reads it ([`docker_host_from_env`]), the
//! database in a default data directory ([`default_data_dir`]), and the command line's
//! overrides ([`Overrides`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{ClientConfig, Config, HostConfig, TlsConfig};

/// The client of the host a run without a configuration file watches.
pub const DEFAULT_CLIENT: &str = "default";

/// Name of the data directory under `/var/lib` and `$XDG_STATE_HOME`.
const DATA_DIR_NAME: &str = "dockstat-exporter";

/// What the command line sets over the file (or over the defaults, without a file).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--web.listen-address`: the metrics listener.
    pub metrics: Option<SocketAddr>,
    /// `--api.listen-address`: the admin API listener.
    pub admin: Option<SocketAddr>,
    /// `--data-dir`: the database (and the generated admin token) go here.
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    /// Sets what was given on `config`.
    pub(super) fn apply(&self, config: &mut Config) {
        if let Some(a) = self.metrics {
            config.listen.metrics = a;
        }
        if let Some(a) = self.admin {
            config.listen.admin = a;
        }
        if let Some(d) = &self.data_dir {
            config.database.path = d.join(DATABASE_FILE).display().to_string();
        }
    }
}

/// The database's file name in the data directory.
pub const DATABASE_FILE: &str = "dockstat.db";

/// The configuration of a run without a file: one client, [`DEFAULT_CLIENT`], with one
/// host named after its daemon, found as the `docker` CLI finds it; the database in
/// `data_dir`.
pub fn environment_config(
    env: &dyn Fn(&str) -> Option<String>,
    data_dir: &Path,
) -> Result<Config, String> {
    let host = docker_host_from_env(env)?;
    let mut config = Config::default();
    config.database.path = data_dir.join(DATABASE_FILE).display().to_string();
    config.clients = vec![ClientConfig {
        name: DEFAULT_CLIENT.to_string(),
        monitoring: true,
        hosts: vec![host],
        containers: Default::default(),
    }];
    Ok(config)
}

/// The Docker host as the `docker` CLI reads its environment:
///
/// - `DOCKER_HOST`: `unix:///path`, `tcp://host[:port]`; unset or empty: the local socket
///   `unix:///var/run/docker.sock`. A TCP address without a port gets 2376 with TLS, 2375
///   without.
/// - `DOCKER_TLS_VERIFY`: any non-empty value turns on TLS with the daemon's certificate
///   verified against `ca.pem`.
/// - `DOCKER_CERT_PATH` (default `~/.docker`): `ca.pem`, and `cert.pem` with `key.pem`
///   when both exist (a client certificate); missing client files are left out, as the
///   CLI does.
///
/// What the CLI does and we do not is refused with the reason: `ssh://` and `npipe://`
/// hosts, `DOCKER_TLS` without `DOCKER_TLS_VERIFY` (TLS without verifying the daemon),
/// TLS without a `ca.pem` (the CLI would trust the system's CAs).
pub fn docker_host_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<HostConfig, String> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    let verify = set("DOCKER_TLS_VERIFY").is_some();
    let tls = verify || set("DOCKER_TLS").is_some();
    if tls && !verify {
        return Err(
            "DOCKER_TLS is set without DOCKER_TLS_VERIFY: that is TLS without \
             verifying the daemon's certificate, which dockstat-exporter does not do; set \
             DOCKER_TLS_VERIFY=1 and put the daemon's CA in $DOCKER_CERT_PATH/ca.pem"
                .to_string(),
        );
    }
    let raw = set("DOCKER_HOST").unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
    let address = docker_host_address(&raw, tls)?;
    let tls = if tls {
        if address.starts_with("unix://") {
            // The CLI ignores TLS settings for a unix socket, and so do we.
            None
        } else {
            Some(cert_path_files(env)?)
        }
    } else {
        None
    };
    Ok(HostConfig {
        name: None,
        address,
        tls,
        enabled: true,
        containers: Default::default(),
    })
}

/// `DOCKER_HOST` into an address of ours, with the CLI's default ports.
fn docker_host_address(raw: &str, tls: bool) -> Result<String, String> {
    let raw = raw.trim();
    if let Some(path) = raw.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!(
                "DOCKER_HOST `{raw}`: the socket path must be absolute"
            ));
        }
        return Ok(raw.to_string());
    }
    if let Some(rest) = raw.strip_prefix("tcp://") {
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 2376 } else { 2375 };
        // `tcp://host`, `tcp://host:port`, `tcp://[::1]:port`, `tcp://:port` (localhost).
        let (host, port) = if let Some(after) = rest.strip_prefix('[') {
            let Some((h, tail)) = after.split_once(']') else {
                return Err(format!("DOCKER_HOST `{raw}`: `[` without `]`"));
            };
            let port = tail.strip_prefix(':').filter(|p| !p.is_empty());
            (
                format!("[{h}]"),
                port.map_or(default_port.to_string(), str::to_string),
            )
        } else if rest.matches(':').count() > 1 {
            (format!("[{rest}]"), default_port.to_string())
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), p.to_string()),
                None => (rest.to_string(), default_port.to_string()),
            }
        };
        let host = if host.is_empty() {
            "127.0.0.1".to_string()
        } else {
            host
        };
        return Ok(format!("tcp://{host}:{port}"));
    }
    let scheme = raw.split_once("://").map_or(raw, |(s, _)| s);
    Err(format!(
        "DOCKER_HOST `{raw}`: scheme `{scheme}` is not supported; dockstat-exporter reaches \
         Docker over unix:///path or tcp://host:port (for ssh://, forward the remote socket \
         with `ssh -L /tmp/docker.sock:/var/run/docker.sock host` and point DOCKER_HOST at it)"
    ))
}

/// The TLS files in `DOCKER_CERT_PATH` (default `~/.docker`), as the CLI picks them.
fn cert_path_files(env: &dyn Fn(&str) -> Option<String>) -> Result<TlsConfig, String> {
    let dir = match env("DOCKER_CERT_PATH").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match env("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => match env("HOME").filter(|v| !v.is_empty()) {
                Some(h) => Path::new(&h).join(".docker"),
                None => {
                    return Err("DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor \
                         HOME is: cannot find ca.pem"
                        .to_string());
                }
            },
        },
    };
    let ca = dir.join("ca.pem");
    if !ca.exists() {
        return Err(format!(
            "DOCKER_TLS_VERIFY is set but {} does not exist: put the CA that signed the \
             daemon's certificate there (DOCKER_CERT_PATH names the directory)",
            ca.display()
        ));
    }
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let client = cert.exists() && key.exists();
    let text = |p: PathBuf| p.display().to_string();
    Ok(TlsConfig {
        ca: text(ca),
        cert: client.then(|| text(cert)),
        key: client.then(|| text(key)),
    })
}

/// Where the database and the generated admin token go without a configuration file:
///
/// 1. `$STATE_DIRECTORY` (systemd's `StateDirectory=`; the first when it lists several);
/// 2. `/var/lib/dockstat-exporter` when it is writable, or can be made in a writable
///    `/var/lib`;
/// 3. `$XDG_STATE_HOME/dockstat-exporter`, else `~/.local/state/dockstat-exporter`.
///
/// The directory is not created here (see [`ensure_data_dir`]).
pub fn default_data_dir(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    if let Some(dirs) = env("STATE_DIRECTORY").filter(|v| !v.is_empty())
        && let Some(first) = dirs.split(':').find(|d| !d.is_empty())
    {
        return Ok(PathBuf::from(first));
    }
    let system = Path::new("/var/lib").join(DATA_DIR_NAME);
    if writable(&system) || (!system.exists() && writable(Path::new("/var/lib"))) {
        return Ok(system);
    }
    if let Some(x) = env("XDG_STATE_HOME").filter(|v| v.starts_with('/')) {
        return Ok(Path::new(&x).join(DATA_DIR_NAME));
    }
    match env("HOME").filter(|v| v.starts_with('/')) {
        Some(h) => Ok(Path::new(&h).join(".local/state").join(DATA_DIR_NAME)),
        None => Err(
            "no data directory: set STATE_DIRECTORY, XDG_STATE_HOME or HOME, or pass --data-dir"
                .to_string(),
        ),
    }
}

/// Creates the data directory (mode 0700) when missing; the OS's reason when it cannot.
pub fn ensure_data_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))
}

fn writable(dir: &Path) -> bool {
    super::validate::writable_dir(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn docker_host_as_the_cli_reads_it() {
        let addr = |pairs: &[(&str, &str)]| docker_host_from_env(&env_of(pairs)).map(|h| h.address);
        assert_eq!(addr(&[]).as_deref(), Ok("unix:///var/run/docker.sock"));
        assert_eq!(
            addr(&[("DOCKER_HOST", "")]).as_deref(),
            Ok("unix:///var/run/docker.sock")
        );
        assert_eq!(
            addr(&[("DOCKER_HOST", "tcp://10.0.0.1")]).as_deref(),
            Ok("tcp://10.0.0.1:2375")
        );
        assert_eq!(
            addr(&[("DOCKER_HOST", "tcp://10.0.0.1:23750")]).as_deref(),
            Ok("tcp://10.0.0.1:23750")
        );
        assert_eq!(
            addr(&[("DOCKER_HOST", "tcp://:2375")]).as_deref(),
            Ok("tcp://127.0.0.1:2375")
        );
        assert_eq!(
            addr(&[("DOCKER_HOST", "tcp://[::1]:2375")]).as_deref(),
            Ok("tcp://[::1]:2375")
        );
        assert!(
            addr(&[("DOCKER_HOST", "ssh://me@box")])
                .unwrap_err()
                .contains("ssh")
        );
        assert!(
            addr(&[("DOCKER_HOST", "tcp://h"), ("DOCKER_TLS", "1")])
                .unwrap_err()
                .contains("DOCKER_TLS_VERIFY")
        );
    }

    #[test]
    fn tls_files_from_the_cert_path() {
        let dir = std::env::temp_dir().join(format!("dockstat-certpath-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let d = dir.display().to_string();
        let host = |pairs: &[(&str, &str)]| docker_host_from_env(&env_of(pairs));
        let base = [
            ("DOCKER_HOST", "tcp://10.0.0.1"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", d.as_str()),
        ];
        assert!(host(&base).unwrap_err().contains("ca.pem"));
        std::fs::write(dir.join("ca.pem"), "x").expect("write");
        let h = host(&base).expect("CA only");
        assert_eq!(h.address, "tcp://10.0.0.1:2376");
        let tls = h.tls.expect("tls");
        assert!(tls.cert.is_none() && tls.key.is_none());
        std::fs::write(dir.join("cert.pem"), "x").expect("write");
        std::fs::write(dir.join("key.pem"), "x").expect("write");
        let tls = host(&base).expect("mutual").tls.expect("tls");
        assert_eq!(tls.key, Some(dir.join("key.pem").display().to_string()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn state_directory_first() {
        assert_eq!(
            default_data_dir(&env_of(&[("STATE_DIRECTORY", "/run/a:/run/b")])),
            Ok(PathBuf::from("/run/a"))
        );
    }
}
