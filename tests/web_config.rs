//! `--web.config.file` (the Prometheus exporter-toolkit format) on the metrics listener, with
//! a real Prometheus scraping through it: basic auth with a bcrypt hash, and client
//! certificates (`RequireAndVerifyClientCert`). `/healthz` stays open to basic auth.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The exporter with `--web.config.file` and a minimal configuration (host A).
fn exporter(dir: &Path, web: &str) -> (Child, u16, std::path::PathBuf) {
    let port = free_port();
    let admin = free_port();
    let web_file = dir.join("web.yml");
    std::fs::write(&web_file, web).expect("write web.yml");
    let cfg = dir.join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen:\n  metrics: 127.0.0.1:{port}\n  admin: 127.0.0.1:{admin}\ndatabase:\n  path: {}/dockstat.db\nclients:\n  - name: w\n    hosts:\n      - name: a\n        address: unix://{}\n",
            dir.display(),
            env().a_socket
        ),
    )
    .expect("write config");
    let log = dir.join("exporter.log");
    let child = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .arg("--web.config.file")
        .arg(&web_file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn exporter");
    poll("the metrics listener", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (child, port, log)
}

/// A real Prometheus (tests/common's) with `jobs` (YAML list items under scrape_configs),
/// its configuration checked by promtool first.
fn start_prometheus(dir: &Path, jobs: &str) -> Prometheus {
    let yaml = format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{jobs}");
    let config = dir.join("prometheus-checked.yml");
    std::fs::write(&config, &yaml).expect("write prometheus.yml");
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("promtool (Debian's prometheus package) must be installed");
    assert!(
        check.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    Prometheus::start_config(dir, &yaml)
}

/// Waits until `expr` gives exactly `want` for the job (`up{job=…}` and the like).
fn wait_value(prom: &Prometheus, expr: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = prom.query(expr);
        let got = last.as_ref().ok().and_then(|r| {
            r.first()?["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
        });
        if got == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{expr} did not become {want}: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The last scrape error of the job's target.
fn target_error(prom: &Prometheus, job: &str) -> String {
    let v = prom.try_api("targets").unwrap_or_default();
    v["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["labels"]["job"] == job)
        .map(|t| t["lastError"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn prometheus_scrapes_through_basic_auth_and_healthz_stays_open() {
    let dir = temp_dir("web-basic");
    let hash = bcrypt::hash_with_result("s3cret-scrape", 6)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    let (mut child, port, log) = exporter(&dir, &format!("basic_auth_users:\n  prom: {hash}\n"));
    // Without credentials: 401 with the Basic challenge; /healthz answers anyway.
    let (status, head, _) = http_get(port, "/metrics", None).expect("GET /metrics");
    assert_eq!(status, 401, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{head}"
    );
    let (status, _, _) = http_get(port, "/healthz", None).expect("GET /healthz");
    assert_eq!(status, 200);
    let prom_dir = dir.join("prom");
    std::fs::create_dir_all(&prom_dir).expect("mkdir");
    let target = format!("['127.0.0.1:{port}']");
    let prom = start_prometheus(
        &prom_dir,
        &format!(
            "  - job_name: right\n    basic_auth: {{username: prom, password: s3cret-scrape}}\n    static_configs: [{{targets: {target}}}]\n  - job_name: wrong\n    basic_auth: {{username: prom, password: not-it}}\n    static_configs: [{{targets: {target}}}]\n"
        ),
    );
    wait_value(&prom, "up{job=\"right\"}", 1.0);
    wait_value(
        &prom,
        "count(dockstat_host_up{job=\"right\",host=\"a\"})",
        1.0,
    );
    wait_value(&prom, "up{job=\"wrong\"}", 0.0);
    assert!(
        target_error(&prom, "wrong").contains("401"),
        "{}",
        target_error(&prom, "wrong")
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("s3cret-scrape"), "{text}");
}

#[test]
fn prometheus_scrapes_with_a_client_certificate_and_none_is_refused() {
    let certs = env().certs;
    let c = |f: &str| certs.join(f).display().to_string();
    let dir = temp_dir("web-mtls");
    let (mut child, port, _log) = exporter(
        &dir,
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            c("server-cert.pem"),
            c("server-key.pem"),
            c("ca.pem")
        ),
    );
    let prom_dir = dir.join("prom");
    std::fs::create_dir_all(&prom_dir).expect("mkdir");
    let target = format!("['127.0.0.1:{port}']");
    let prom = start_prometheus(
        &prom_dir,
        &format!(
            "  - job_name: mtls\n    scheme: https\n    tls_config: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}\n    static_configs: [{{targets: {target}}}]\n  - job_name: nocert\n    scheme: https\n    tls_config: {{ca_file: {ca}}}\n    static_configs: [{{targets: {target}}}]\n",
            ca = c("ca.pem"),
            cert = c("cert.pem"),
            key = c("key.pem"),
        ),
    );
    wait_value(&prom, "up{job=\"mtls\"}", 1.0);
    wait_value(
        &prom,
        "count(dockstat_host_up{job=\"mtls\",host=\"a\"})",
        1.0,
    );
    wait_value(&prom, "up{job=\"nocert\"}", 0.0);
    let err = target_error(&prom, "nocert");
    assert!(
        // The server ends the handshake of a client without a certificate; depending on
        // timing Prometheus sees the alert, an EOF, or its next write failing.
        [
            "certificate",
            "tls",
            "EOF",
            "broken pipe",
            "connection reset"
        ]
        .iter()
        .any(|w| err.contains(w)),
        "{err}"
    );
    // curl with the client certificate gets /healthz over TLS; without one the handshake fails.
    let url = format!("https://127.0.0.1:{port}/healthz");
    let ok = curl(&[
        "--cacert",
        &c("ca.pem"),
        "--cert",
        &c("cert.pem"),
        "--key",
        &c("key.pem"),
        "-f",
        &url,
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = curl(&["--cacert", &c("ca.pem"), "-f", &url]);
    assert!(!refused.status.success());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_bad_web_config_is_refused_with_the_reason() {
    let dir = temp_dir("web-bad");
    let file = dir.join("web.yml");
    for (text, want) in [
        (
            "basic_auth_users:\n  prom: plain-password\n",
            "not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: /nope.pem\n  key_file: /nope.pem\n",
            "tls_server_config.cert_file",
        ),
        (
            "http_server_config:\n  http2: false\n",
            "supported: tls_server_config",
        ),
    ] {
        std::fs::write(&file, text).expect("write");
        let out = Command::new(bin())
            .args(["check-config", "--web.config.file"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&dir)
            .env_remove("DOCKSTAT_CONFIG")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
    }
}
