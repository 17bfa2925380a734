//! Starting like other exporters: no configuration file, the Docker host from DOCKER_HOST,
//! DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (as the docker CLI reads them), listeners from
//! `--web.listen-address`/`--api.listen-address` (`:port` accepted), the database in the
//! data directory, and the host named after its daemon.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The exporter started without `--config`.
struct Bare {
    child: Child,
    port: u16,
    admin_port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl Bare {
    /// Starts with `env` (and only the variables this test sets about Docker), the data
    /// directory given by STATE_DIRECTORY; returns once /healthz answers.
    fn start(tag: &str, env: &[(&str, &str)], extra: &[&str]) -> Bare {
        let dir = temp_dir(tag);
        let (port, admin_port) = (free_port(), free_port());
        let log = dir.join("exporter.log");
        let state = dir.join("state");
        let child = Command::new(bin())
            .args(["--web.listen-address", &format!(":{port}")])
            .args(["--api.listen-address", &format!("127.0.0.1:{admin_port}")])
            .args(extra)
            .env_remove("DOCKSTAT_CONFIG")
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_TLS")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKSTAT_DATA_DIR")
            .env("STATE_DIRECTORY", &state)
            .env("RUST_LOG", "info,dockstat_exporter=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn exporter");
        let mut b = Bare {
            child,
            port,
            admin_port,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if matches!(http_get(port, "/healthz", None), Ok((200, _, _))) {
                return b;
            }
            if let Ok(Some(status)) = b.child.try_wait() {
                panic!("exporter exited with {status}: {}", b.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "exporter did not start: {}",
                b.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Scrapes until the host is up; returns that scrape's `dockstat_host_up` labels.
    fn wait_up(&self) -> Scrape {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _, body)) = http_get(self.port, "/metrics", None) {
                let s = Scrape::parse(&body);
                if s.value("dockstat_host_up", &[]) == Some(1.0) {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "host not up within 30s: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `docker info`'s Name of a daemon, asked with the docker CLI.
fn daemon_name(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .args(["info", "--format", "{{.Name}}"])
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?} info: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn host_label(s: &Scrape) -> (String, String) {
    let mut up = s.find("dockstat_host_up", &[]);
    let sample = up.next().expect("dockstat_host_up");
    (
        sample.labels.get("host").cloned().unwrap_or_default(),
        sample.labels.get("client").cloned().unwrap_or_default(),
    )
}

#[test]
fn no_config_watches_docker_host_over_tcp() {
    let env = env();
    let docker_host = format!("tcp://{}", env.b_tcp);
    let want = daemon_name(&["-H", &docker_host]);
    let e = Bare::start("zc-tcp", &[("DOCKER_HOST", &docker_host)], &[]);
    let s = e.wait_up();
    assert_eq!(host_label(&s), (want.clone(), "default".to_string()));
    // A Docker daemon is told apart from Podman (tests/podman.rs) on the host's info,
    // published with the host's first success.
    let info = s
        .find("dockstat_host_info", &[])
        .next()
        .expect("dockstat_host_info with dockstat_host_up 1");
    assert_eq!(
        info.labels.get("runtime").map(String::as_str),
        Some("docker")
    );
    // The database went to the data directory (STATE_DIRECTORY), made 0700.
    let state = e.dir.join("state");
    assert!(state.join("dockstat.db").is_file(), "{}", e.log_text());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&state).expect("state dir").permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    // Both listeners took the command line's addresses (`:port` is every interface).
    let log = e.log_text();
    assert!(
        log.contains(&format!("metrics=0.0.0.0:{}", e.port))
            && log.contains(&format!("admin=127.0.0.1:{}", e.admin_port)),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "host named after its daemon client=default address={docker_host} host={want}"
        )),
        "{log}"
    );
}

/// A certificate directory as `docker --tlsverify` reads it: ca.pem, cert.pem, key.pem.
fn cert_dir(tag: &str, with_client: bool) -> PathBuf {
    let certs = env().certs;
    let dir = temp_dir(tag);
    let copy = |from: &str, to: &str| {
        std::fs::copy(certs.join(from), dir.join(to))
            .unwrap_or_else(|e| panic!("copy {from}: {e}"));
    };
    copy("ca.pem", "ca.pem");
    if with_client {
        copy("cert.pem", "cert.pem");
        copy("key.pem", "key.pem");
    }
    dir
}

#[test]
fn no_config_watches_docker_host_over_tls_from_the_cert_path() {
    let env = env();
    let certs = cert_dir("zc-certs", true);
    let c = certs.display().to_string();
    let docker_host = format!("tcp://{}", env.c_tls);
    let tls_env = [
        ("DOCKER_HOST", docker_host.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", c.as_str()),
    ];
    // The docker CLI itself, with the same environment, says the name to expect.
    let out = Command::new("docker")
        .args(["info", "--format", "{{.Name}}"])
        .envs(tls_env.iter().copied())
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let e = Bare::start("zc-tls", &tls_env, &[]);
    let s = e.wait_up();
    assert_eq!(host_label(&s).0, want);
    // Collected over TLS: the containers of C are listed.
    assert!(
        s.value("dockstat_host_containers", &[("state", "running")])
            .is_some(),
        "{}",
        s.text
    );
}

fn run_bare(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env_remove("DOCKSTAT_CONFIG")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .envs(env.iter().copied())
        .output()
        .expect("run binary")
}

#[test]
fn what_the_docker_cli_accepts_and_we_do_not_is_refused_with_the_reason() {
    let dir = temp_dir("zc-refused");
    let d = dir.display().to_string();
    let out = run_bare(
        &["check-config", "--data-dir", &d],
        &[("DOCKER_HOST", "ssh://me@box")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("DOCKER_HOST `ssh://me@box`") && err.contains("ssh -L"),
        "{err}"
    );
    // TLS without a CA in the cert path.
    let empty = temp_dir("zc-nocerts");
    let e = empty.display().to_string();
    let out = run_bare(
        &["check-config", "--data-dir", &d],
        &[
            ("DOCKER_HOST", "tcp://127.0.0.1:1"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", &e),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{e}/ca.pem does not exist")), "{err}");
    // A listen address the exporter conventions do not allow says what is.
    let out = run_bare(&["check-config", "--web.listen-address", "9487"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`:9487` for every interface"), "{err}");
}

#[test]
fn check_config_without_a_file_names_the_data_directory_and_host() {
    let dir = temp_dir("zc-check");
    let d = dir.join("data");
    let dd = d.display().to_string();
    let env = env();
    let host = format!("tcp://{}", env.b_tcp);
    let out = run_bare(
        &["check-config", "--data-dir", &dd],
        &[("DOCKER_HOST", &host)],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 client(s), 1 host(s)"), "{text}");
    assert!(Path::new(&d).is_dir(), "data directory made: {text}");
}

#[test]
fn tls_with_only_a_ca_is_accepted_and_half_a_client_certificate_is_not() {
    let dir = temp_dir("zc-ca-only");
    let certs = env().certs;
    let ca = certs.join("ca.pem").display().to_string();
    let cert = certs.join("cert.pem").display().to_string();
    let check = |tls: &str| {
        let path = dir.join("config.yaml");
        std::fs::write(
            &path,
            format!(
                "database:\n  path: {}/dockstat.db\nclients:\n  - name: c\n    hosts:\n      - name: h\n        address: tcp://127.0.0.1:23760\n        tls: {tls}\n",
                dir.display()
            ),
        )
        .expect("write");
        run_bare(
            &["check-config", "--config", &path.display().to_string()],
            &[],
        )
    };
    let out = check(&format!("{{ ca: {ca} }}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check(&format!("{{ ca: {ca}, cert: {cert} }}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("tls.key: a client certificate needs its key"),
        "{err}"
    );
}
