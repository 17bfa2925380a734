//! The binary's command line: configuration errors exit 2 naming file, line and column;
//! check-config, --version, --help; graceful shutdown; the README's metric list matches the
//! family table.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("DOCKSTAT_CONFIG")
        .output()
        .expect("run binary")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Writes `text` as a config file and runs `check-config` and `run` on it: both must exit 2
/// and print `expected` (with the file path in front).
fn assert_rejected(tag: &str, text: &str, expected: &str) {
    let dir = temp_dir(tag);
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).expect("write");
    let p = path.display().to_string();
    for args in [vec!["check-config", "--config", &p], vec!["--config", &p]] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        let want = format!("{p}:{expected}");
        assert!(err.contains(&want), "{args:?}\nwant: {want}\ngot:  {err}");
    }
}

#[test]
fn unknown_key_is_rejected_with_its_position() {
    assert_rejected(
        "cfg-unknown",
        "monitoring:\n  interval: 5s\n  intervall: 3s\n",
        "3:3: monitoring: unknown field `intervall`",
    );
}

#[test]
fn wrong_type_is_rejected_with_its_position() {
    assert_rejected(
        "cfg-type",
        "monitoring:\n  max_workers: lots\n",
        "2:16: monitoring.max_workers: invalid type: string \"lots\", expected a nonzero usize",
    );
}

#[test]
fn missing_tls_file_is_rejected_with_its_position() {
    assert_rejected(
        "cfg-tls",
        "clients:\n  - name: prod\n    hosts:\n      - name: web\n        address: tcp://web:2376\n        tls:\n          ca: /nonexistent/ca.pem\n          cert: /nonexistent/cert.pem\n          key: /nonexistent/key.pem\n",
        "7:15: clients[0].hosts[0].tls.ca: file `/nonexistent/ca.pem` does not exist",
    );
}

#[test]
fn bad_otlp_settings_are_rejected_with_their_position() {
    assert_rejected(
        "cfg-otlp-tls",
        "otlp:\n  enabled: true\n  endpoint: https://collector:4317\n  tls:\n    ca: /nonexistent/otlp-ca.pem\n",
        "5:9: otlp.tls.ca: file `/nonexistent/otlp-ca.pem` does not exist",
    );
    assert_rejected(
        "cfg-otlp-proto",
        "otlp:\n  enabled: true\n  protocol: http/json\n",
        "3:13: otlp.protocol: unknown variant `http/json`, expected one of `grpc`, `http`, `http/protobuf`",
    );
    assert_rejected(
        "cfg-otlp-header",
        "otlp:\n  enabled: true\n  headers:\n    \"bad name\": x\n",
        "4:17: otlp.headers.bad name: `bad name` is not a valid header name",
    );
    // A bad standard variable is named too, at the section it falls back for.
    let dir = temp_dir("cfg-otlp-env");
    let path = dir.join("config.yaml");
    std::fs::write(&path, "otlp:\n  enabled: true\n").expect("write");
    let out = Command::new(bin())
        .args(["check-config", "--config", &path.display().to_string()])
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{}:2:3: otlp: OTEL_EXPORTER_OTLP_TIMEOUT=`soon`: expected a number of milliseconds above 0",
            path.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn duplicate_host_is_rejected_with_its_position() {
    assert_rejected(
        "cfg-dup",
        "clients:\n  - name: prod\n    hosts:\n      - name: web\n        address: tcp://web:2375\n      - name: web\n        address: tcp://web2:2375\n",
        "6:15: clients[0].hosts[1].name: duplicate host `web` in client `prod`",
    );
    assert_rejected(
        "cfg-dup-addr",
        "clients:\n  - name: prod\n    hosts:\n      - name: web\n        address: tcp://web:2375\n  - name: dev\n    hosts:\n      - name: other\n        address: web:2375\n",
        "9:18: clients[1].hosts[0].address: duplicate host: tcp://web:2375 is already declared as `prod/web`",
    );
}

#[test]
fn syntax_errors_and_missing_files_exit_2() {
    assert_rejected(
        "cfg-syntax",
        "monitoring:\n  interval: 5s\n max_workers: 3\n",
        "3:2: did not find expected key",
    );
    let out = run(&["check-config", "--config", "/nonexistent/dockstat.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/dockstat.yaml: cannot read configuration"),
        "{}",
        stderr(&out)
    );
    // Without a file: the Docker host of the environment (tests/zero_config.rs); a
    // DOCKER_HOST the exporter cannot use is a configuration error.
    let data = temp_dir("cfg-nofile");
    let out = Command::new(bin())
        .args(["check-config", "--data-dir", &data.display().to_string()])
        .env_remove("DOCKSTAT_CONFIG")
        .env("DOCKER_HOST", "npipe:////./pipe/docker_engine")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("scheme `npipe` is not supported"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_example_config_checks_and_the_env_var_names_the_file() {
    let example = repo().join("config.example.yaml");
    let out = Command::new(bin())
        .arg("check-config")
        .env("DOCKSTAT_CONFIG", &example)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok (1 client(s), 1 host(s))"), "{stdout}");
}

#[test]
fn version_and_help() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("dockstat-exporter {}", env!("CARGO_PKG_VERSION"))
    );
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "run",
        "check-config",
        "--config",
        "--log-format",
        "DOCKSTAT_CONFIG",
    ] {
        assert!(help.contains(word), "--help mentions {word}: {help}");
    }
}

#[test]
fn sigterm_stops_the_exporter_cleanly_and_an_empty_fleet_is_ready() {
    let mut exp = Exporter::start("sigterm", "");
    let (status, body) = exp.get("/readyz");
    assert_eq!((status, body.as_str()), (200, "{\"ready\":true}"));
    let (status, body) = exp.get("/healthz");
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));
    let s = exp.scrape();
    assert_eq!(s.value("dockstat_pool_workers", &[]), Some(0.0));
    assert_eq!(
        s.value(
            "dockstat_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(
        s.value("process_resident_memory_bytes", &[])
            .is_some_and(|v| v > 0.0)
    );
    let status = exp.terminate(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", exp.log_text());
    assert!(exp.log_text().contains("SIGTERM: shutting down"));
}

#[test]
fn json_logs() {
    let dir = temp_dir("jsonlog");
    let cfg = dir.join("c.yaml");
    let port = free_port();
    std::fs::write(
        &cfg,
        format!(
            "listen:\n  metrics: 127.0.0.1:{port}\n  admin: 127.0.0.1:{}\ndatabase:\n  path: {}/db\n",
            free_port(),
            dir.display()
        ),
    )
    .expect("write");
    let child = Command::new(bin())
        .args(["--log-format", "json", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Running (its signal handlers set up with the listeners) before it is interrupted: on
    // a loaded machine the start takes what it takes.
    poll(
        "the exporter to answer /healthz",
        Duration::from_secs(15),
        || matches!(http_get(port, "/healthz", None), Ok((200, _, _))).then_some(()),
    );
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stderr);
    let first = text.lines().next().expect("a log line");
    let v: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(v["level"], "INFO");
    assert!(text.contains("SIGINT: shutting down"));
}

/// The README's metric list is the family table, so they cannot drift apart.
#[test]
fn readme_metric_list_matches_the_family_table() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let begin = "<!-- metrics:begin (generated by `dockstat-exporter metrics --markdown`) -->\n";
    let end = "<!-- metrics:end -->";
    let start = readme
        .find(begin)
        .expect("README has the metrics:begin marker")
        + begin.len();
    let stop = readme[start..].find(end).expect("metrics:end marker") + start;
    let out = run(&["metrics", "--markdown"]);
    assert!(out.status.success());
    assert_eq!(
        &readme[start..stop],
        String::from_utf8_lossy(&out.stdout),
        "README metric list is stale: regenerate it with `cargo run -- metrics --markdown`"
    );
    assert!(Path::new(&repo().join("config.example.yaml")).exists());
}

/// `healthcheck` (the container HEALTHCHECK) answers 0 while the exporter serves /healthz
/// and 1 when nothing listens.
#[test]
fn healthcheck_follows_the_running_exporter() {
    let dir = temp_dir("healthcheck");
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen:\n  metrics: 0.0.0.0:{}\n  admin: 127.0.0.1:{}\ndatabase:\n  path: {}/db\n",
            free_port(),
            free_port(),
            dir.display()
        ),
    )
    .expect("write");
    let cfg_s = cfg.to_string_lossy().to_string();
    let check = || run(&["--config", &cfg_s, "healthcheck", "--timeout", "2"]);
    let down = check();
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert!(String::from_utf8_lossy(&down.stderr).contains("/healthz"));

    let mut child = Command::new(bin())
        .args(["--config", &cfg_s])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let up = poll("healthcheck to pass", Duration::from_secs(15), || {
        let o = check();
        o.status.success().then_some(o)
    });
    assert_eq!(up.status.code(), Some(0));
    let _ = child.kill();
    let _ = child.wait();
}

/// `dockstat-exporter … 2>&1 | head -2`, then SIGTERM: the logger must neither panic nor
/// block on the closed pipe, and the process stops cleanly. The same for a full pipe that
/// nobody reads, and for `check-config` printing to a closed stdout.
#[test]
fn a_closed_or_stuck_stderr_does_not_stop_shutdown() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = temp_dir("closed-stderr");
    let (port, admin) = (free_port(), free_port());
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen:\n  metrics: 127.0.0.1:{port}\n  admin: 127.0.0.1:{admin}\ndatabase:\n  path: {}\n\
             monitoring:\n  interval: 1s\n  retry_delay: 100ms\n  retry_max_delay: 200ms\n\
             clients:\n  - name: gone\n    hosts:\n      - name: nosock\n        address: unix://{}\n",
            dir.join("dockstat.db").display(),
            dir.join("missing.sock").display()
        ),
    )
    .expect("config");
    for stuck in [false, true] {
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(&config)
            // Trace level: many lines per scrape and retry, so the process keeps logging
            // after the pipe closes, and fills it when nobody reads.
            .env("RUST_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr);
        let mut line = String::new();
        for _ in 0..2 {
            line.clear();
            lines.read_line(&mut line).expect("a log line");
        }
        // `head -2` exits: the read end closes. Or the reader stops reading, holding it open.
        let held = if stuck {
            Some(lines)
        } else {
            drop(lines);
            None
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while http_get(port, "/healthz", None).map(|r| r.0).ok() != Some(200) {
            assert!(std::time::Instant::now() < deadline, "not serving");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Keep it logging into the dead pipe for a while (retries every 100-200 ms), and
        // check it still serves meanwhile.
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < until {
            let (status, _, _) = http_get(port, "/metrics", None).expect("scrape");
            assert_eq!(status, 200);
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("stuck={stuck}: no exit within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "stuck={stuck}");
        drop(held);
    }

    // check-config into a closed stdout and stderr: exit 0 (valid), not a panic's 101.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} check-config --config {} >&- 2>&-; echo $?",
            bin(),
            config.display()
        ))
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

/// Runs the binary with a deadline: a hang is a failure, not a stuck suite.
fn run_within(args: &[&str], within: Duration) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("DOCKSTAT_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run binary");
    let deadline = std::time::Instant::now() + within;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Like [`assert_rejected`] for raw bytes, with a deadline on each run.
fn assert_rejected_bytes(tag: &str, bytes: &[u8], expected: &str) {
    let dir = temp_dir(tag);
    let path = dir.join("config.yaml");
    std::fs::write(&path, bytes).expect("write");
    let p = path.display().to_string();
    for args in [vec!["check-config", "--config", &p], vec!["--config", &p]] {
        let out = run_within(&args, Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let want = format!("{p}:{expected}");
        assert!(
            stderr(&out).contains(&want),
            "{args:?}\nwant: {want}\ngot:  {}",
            stderr(&out)
        );
    }
}

/// Values that pass the types but would crash or cripple the run are refused, each at its
/// key, by check-config and by the run alike.
#[test]
fn values_out_of_range_are_rejected_with_their_position() {
    assert_rejected(
        "cfg-queue",
        "streams:\n  queue: 9223372036854775807\n",
        "2:10: streams.queue: 9223372036854775807 is out of range: allowed 1 to 65536",
    );
    assert_rejected(
        "cfg-ring",
        "streams:\n  ring: 100000000\n",
        "2:9: streams.ring: 100000000 is out of range: allowed 0 to 100000",
    );
    assert_rejected(
        "cfg-interval",
        "monitoring:\n  interval: 1ns\n",
        "2:13: monitoring.interval: 1ns is out of range: allowed 500ms to 1h",
    );
    assert_rejected(
        "cfg-timeout",
        "monitoring:\n  request_timeout: 1ns\n",
        "2:20: monitoring.request_timeout: 1ns is out of range: allowed 250ms to 10m",
    );
    assert_rejected(
        "cfg-workers",
        "monitoring:\n  stats_concurrency: 100000\n",
        "2:22: monitoring.stats_concurrency: 100000 is out of range: allowed 1 to 256",
    );
    assert_rejected(
        "cfg-otlp-points",
        "otlp:\n  enabled: true\n  max_points_per_request: 1\n",
        "3:27: otlp.max_points_per_request: 1 is out of range: allowed 10 to 100000",
    );
    assert_rejected(
        "cfg-db-empty",
        "database:\n  path: \"\"\n",
        "2:9: database.path: must not be empty",
    );
    assert_rejected(
        "cfg-db-nul",
        "database:\n  path: \"/tmp/a\\0b.db\"\n",
        "2:9: database.path: must not contain a NUL character",
    );
    assert_rejected(
        "cfg-db-dir",
        "database:\n  path: /tmp\n",
        "2:9: database.path: `/tmp` is a directory",
    );
    // A standard variable out of range is named at the section it falls back for.
    let dir = temp_dir("cfg-otlp-env-range");
    let path = dir.join("config.yaml");
    std::fs::write(&path, "otlp:\n  enabled: true\n").expect("write");
    let out = Command::new(bin())
        .args(["check-config", "--config", &path.display().to_string()])
        .env("OTEL_METRIC_EXPORT_INTERVAL", "1")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2:3: otlp: OTEL_METRIC_EXPORT_INTERVAL: 1ms is out of range"),
        "{}",
        stderr(&out)
    );
}

/// Files that are not text, too big or too deep are refused before parsing, with a
/// position; a FIFO or directory where a file belongs is refused without opening it.
#[test]
fn unreadable_shapes_of_files_are_refused_quickly() {
    assert_rejected_bytes(
        "cfg-latin1",
        b"monitoring:\n  interval: 5s\n# caf\xe9\n",
        "3:6: not UTF-8 text (invalid byte at offset 32)",
    );
    let mut big = b"# padding\n".repeat(110_000);
    big.extend_from_slice(b"monitoring: {}\n");
    assert_rejected_bytes("cfg-big", &big, "1:1: the file is larger than 1024 KiB");
    let deep = format!("a: {}{}\n", "[".repeat(40_000), "]".repeat(40_000));
    assert_rejected_bytes(
        "cfg-deep-flow",
        deep.as_bytes(),
        "1:67: nested deeper than 64",
    );
    let block: String = (0..1_000)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    assert_rejected_bytes(
        "cfg-deep-block",
        block.as_bytes(),
        "65:65: nested deeper than 64",
    );

    // A FIFO as a TLS file: check-config used to block in open() forever.
    let dir = temp_dir("cfg-fifo");
    let fifo = dir.join("ca.pem");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let text = format!(
        "clients:\n  - name: prod\n    hosts:\n      - name: web\n        address: tcp://web:2376\n        tls:\n          ca: {f}\n          cert: {f}\n          key: {f}\n",
        f = fifo.display()
    );
    assert_rejected_bytes(
        "cfg-fifo-tls",
        text.as_bytes(),
        &format!(
            "7:15: clients[0].hosts[0].tls.ca: `{}` is not a regular file",
            fifo.display()
        ),
    );
    // And the configuration itself as a FIFO.
    let out = run_within(
        &["check-config", "--config", &fifo.display().to_string()],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn shard_flags_are_checked_and_override_the_file() {
    let dir = temp_dir("cli-shard");
    let path = dir.join("config.yaml");
    std::fs::write(&path, "shard:\n  total: 3\n  index: 1\n").expect("write");
    let p = path.display().to_string();
    let out = run(&["check-config", "--config", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("shard 1 of 3"));
    let out = run(&[
        "check-config",
        "--config",
        &p,
        "--shard",
        "2",
        "--total-shards",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("shard 2 of 4"));
    for (args, expected) in [
        (
            vec!["--shard", "3"],
            "shard index 3 is not below the number of shards 3",
        ),
        (
            vec!["--total-shards", "0"],
            "--total-shards 0 is out of range",
        ),
    ] {
        for command in [vec!["check-config", "--config", &p], vec!["--config", &p]] {
            let all: Vec<&str> = command.iter().chain(&args).copied().collect();
            let out = run(&all);
            assert_eq!(out.status.code(), Some(2), "{all:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(expected), "{all:?}: {}", stderr(&out));
        }
    }
}
