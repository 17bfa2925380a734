//! Read-only mode (`api.actions: false`) behind a real GET-only Docker socket proxy:
//! Debian's HAProxy configured like the common docker-socket-proxy images (only GET and
//! HEAD, only the endpoints an exporter reads), in front of daemon A's socket. Every metric
//! is still collected, with no Docker error; container actions and logs answer 403.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Our own HAProxy process, killed on drop.
struct Haproxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// A docker-socket-proxy: 127.0.0.1:<port> to `socket`, GET/HEAD only, only `/_ping`,
    /// `/version`, `/info`, `/events` and the container reads (list, inspect, stats) —
    /// no logs, exec, attach, images, networks, volumes, system.
    fn start(dir: &Path, socket: &str) -> Haproxy {
        Haproxy::start_with(dir, socket, None)
    }

    /// Like [`Haproxy::start`], serving TLS with `pem` (certificate and key in one file).
    fn start_with(dir: &Path, socket: &str, pem: Option<&Path>) -> Haproxy {
        let haproxy = which("haproxy").unwrap_or_else(|| {
            panic!("haproxy is not installed: apt-get install -y haproxy (scripts/test-env.sh up installs it)")
        });
        let port = free_port();
        let cfg = dir.join("haproxy.cfg");
        let ssl = pem
            .map(|p| format!(" ssl crt {}", p.display()))
            .unwrap_or_default();
        let log = dir.join("haproxy.log");
        std::fs::write(
            &cfg,
            format!(
                r#"global
    maxconn 200

defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    option httplog

frontend dockerfront
    bind 127.0.0.1:{port}{ssl}
    acl reads method GET HEAD
    acl ping path_reg ^(/v[0-9.]+)?/_ping$
    acl version path_reg ^(/v[0-9.]+)?/version$
    acl info path_reg ^(/v[0-9.]+)?/info$
    acl events path_reg ^(/v[0-9.]+)?/events$
    acl containers_list path_reg ^(/v[0-9.]+)?/containers/json$
    acl container_read path_reg ^(/v[0-9.]+)?/containers/[a-zA-Z0-9_.-]+/(json|stats)$
    http-request deny deny_status 403 unless reads
    http-request allow if ping or version or info or events or containers_list or container_read
    http-request deny deny_status 403
    default_backend dockerback

backend dockerback
    server dockerd {socket}
"#
            ),
        )
        .expect("write haproxy.cfg");
        let check = Command::new(&haproxy)
            .args(["-c", "-f"])
            .arg(&cfg)
            .output()
            .expect("haproxy -c");
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(&haproxy)
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn haproxy");
        let h = Haproxy { child, port, log };
        poll("haproxy to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        h
    }

    /// Status of `method path` sent through the proxy.
    fn status(&self, method: &str, path: &str) -> u16 {
        Request::new(method, path)
            .anonymous()
            .send(self.port)
            .map(|r| r.status)
            .unwrap_or_else(|e| panic!("{method} {path} through haproxy: {e}"))
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

#[test]
fn read_only_mode_behind_a_get_only_socket_proxy() {
    let env = env();
    let dir = temp_dir("ro-proxy");
    let proxy = Haproxy::start(&dir, &env.a_socket);
    // The proxy does what the images do: reads pass, writes and other endpoints do not.
    assert_eq!(proxy.status("GET", "/_ping"), 200);
    assert_eq!(proxy.status("GET", "/containers/json"), 200);
    assert_eq!(proxy.status("POST", "/containers/create"), 403);
    assert_eq!(proxy.status("GET", "/images/json"), 403);
    assert_eq!(proxy.status("GET", "/containers/x/logs"), 403);

    let a = Docker::a();
    let c = a.start("ro", &[], "sleep 3600");
    let name = c.name.clone();

    let both = format!(
        "monitoring:\n  interval: 1s\napi:\n  actions: false\nclients:\n  - name: ro\n    hosts:\n      - name: proxied\n        address: tcp://127.0.0.1:{}\n      - name: direct\n        address: unix://{}\n",
        proxy.port, env.a_socket
    );
    // Two hosts on the same daemon: through the proxy and straight to the socket. Both
    // ways give the same families for the container.
    let e = Exporter::start("ro-exp", &both);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (via_proxy, direct) = loop {
        let s = e.scrape();
        let of = |host: &str| -> BTreeSet<String> {
            s.samples
                .iter()
                .filter(|x| {
                    x.labels.get("name").map(String::as_str) == Some(name.as_str())
                        && x.labels.get("host").map(String::as_str) == Some(host)
                })
                .map(|x| x.name.clone())
                .collect()
        };
        let (p, d) = (of("proxied"), of("direct"));
        if !d.is_empty()
            && p == d
            && d.iter().any(|n| n == "container_cpu_usage_seconds_total")
            && d.iter()
                .any(|n| n == "container_network_receive_bytes_total")
        {
            break (p, d);
        }
        assert!(
            Instant::now() < deadline,
            "families through the proxy {p:?}\ndirect {d:?}\n{}\nhaproxy log:\n{}",
            e.log_text(),
            std::fs::read_to_string(&proxy.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(via_proxy, direct);
    let s = e.scrape();
    assert_eq!(
        s.value("dockstat_host_up", &[("host", "proxied")]),
        Some(1.0)
    );
    // Host families alike, and no Docker error through the proxy: the exporter only reads
    // what the proxy allows.
    let host_families = |host: &str| -> BTreeSet<String> {
        s.samples
            .iter()
            .filter(|x| x.labels.get("host").map(String::as_str) == Some(host))
            .filter(|x| !x.labels.contains_key("name"))
            .map(|x| x.name.clone())
            .collect()
    };
    assert_eq!(host_families("proxied"), host_families("direct"));
    let errors: Vec<_> = s
        .find("dockstat_docker_errors_total", &[("host", "proxied")])
        .filter(|x| x.value > 0.0)
        .collect();
    assert!(errors.is_empty(), "errors through the proxy: {errors:?}");

    // Actions and logs: 403 actions_disabled, even for the admin token; reads work.
    let (_, clients) = api(e.admin_port, "GET", "/api/v1/clients", None, None);
    let id = clients
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "ro"))
        .and_then(|c| c["id"].as_i64())
        .unwrap_or_else(|| panic!("client ro in {clients}"));
    let base = format!("/api/v1/clients/{id}/containers/{name}");
    for (method, path) in [
        ("POST", format!("{base}/stop?host=proxied")),
        ("POST", format!("{base}/restart?host=proxied")),
        ("POST", format!("{base}/start?host=proxied")),
        ("DELETE", format!("{base}?host=proxied&force=true")),
        ("GET", format!("{base}/logs?host=proxied&tail=5")),
    ] {
        let (status, body) = api(e.admin_port, method, &path, None, None);
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "actions_disabled", "{body}");
    }
    let (status, body) = api(
        e.admin_port,
        "GET",
        &format!("{base}?host=proxied"),
        None,
        None,
    );
    assert_eq!(status, 200, "inspect through the proxy: {body}");
    assert_eq!(
        a.inspect(&name, "{{.State.Running}}"),
        "true",
        "the container was left alone"
    );
}

/// TLS to a daemon with only a CA (the daemon's certificate verified, no client
/// certificate): HAProxy terminates TLS in front of daemon A, as a TLS socket proxy does.
#[test]
fn tls_with_only_a_ca_reaches_a_daemon_behind_a_tls_proxy() {
    let env = env();
    let dir = temp_dir("ca-only");
    let pem = dir.join("server.pem");
    let mut both = std::fs::read(env.certs.join("server-cert.pem")).expect("cert");
    both.extend(std::fs::read(env.certs.join("server-key.pem")).expect("key"));
    std::fs::write(&pem, both).expect("write pem");
    let proxy = Haproxy::start_with(&dir, &env.a_socket, Some(&pem));
    let e = Exporter::start(
        "ca-only-exp",
        &format!(
            "clients:\n  - name: tls\n    hosts:\n      - name: viaproxy\n        address: tcp://127.0.0.1:{}\n        tls: {{ ca: {} }}\n",
            proxy.port,
            env.certs.join("ca.pem").display()
        ),
    );
    e.wait_for(
        Duration::from_secs(30),
        "the host up over CA-only TLS",
        |s| s.value("dockstat_host_up", &[("host", "viaproxy")]) == Some(1.0),
    );
}

/// A host without `name` is named after its daemon; when the daemon is down at start, the
/// name of the last start is kept (HAProxy in front of daemon A stands in for a daemon
/// that goes away), and a daemon never seen is named from its address.
#[test]
fn unnamed_hosts_keep_their_daemon_name_when_it_is_down_at_start() {
    let env = env();
    let a_name = Docker::a()
        .run(&["info", "--format", "{{.Name}}"])
        .trim()
        .to_string();
    let dir = temp_dir("name-down");
    let mut proxy = Some(Haproxy::start(&dir, &env.a_socket));
    let port = proxy.as_ref().map(|p| p.port).unwrap_or_default();
    let rest = format!(
        "monitoring:\n  retry_delay: 200ms\n  retry_max_delay: 1s\nclients:\n  - name: n\n    hosts:\n      - address: tcp://127.0.0.1:{port}\n"
    );
    let exp_dir = temp_dir("name-down-exp");
    let mut e = Exporter::start_in(exp_dir.clone(), &rest);
    e.wait_for(
        Duration::from_secs(30),
        "the host named after its daemon",
        |s| s.value("dockstat_host_up", &[("host", &a_name), ("client", "n")]) == Some(1.0),
    );
    e.terminate(Duration::from_secs(15));
    drop(e);
    // The daemon (its proxy) goes away; the next start keeps the name.
    proxy.take();
    let e = Exporter::start_in(exp_dir, &rest);
    e.wait_for_log(Duration::from_secs(10), "named as at the last start");
    e.wait_for(
        Duration::from_secs(30),
        "the host down under its old name",
        |s| s.value("dockstat_host_up", &[("host", &a_name), ("client", "n")]) == Some(0.0),
    );
    drop(e);
    // Never seen: named from the address, with a warning.
    let fresh = Exporter::start("name-never", &rest);
    fresh.wait_for_log_line(
        Duration::from_secs(10),
        &["WARN", "never named before", "host=127.0.0.1"],
    );
    fresh.wait_for(Duration::from_secs(30), "the host under its address", |s| {
        s.value(
            "dockstat_host_up",
            &[("host", "127.0.0.1"), ("client", "n")],
        ) == Some(0.0)
    });
}
