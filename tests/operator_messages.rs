//! What a new operator reads: which of the file and the OTEL_* variables won, the
//! effective OTLP settings, and error messages that say what to do.

mod common;

use std::process::{Command, Output};

use common::*;

fn check_config(file: &std::path::Path, env: &[(&str, &str)]) -> Output {
    let dir = file.parent().expect("dir").to_path_buf();
    Command::new(bin())
        .args(["check-config", "--config"])
        .arg(file)
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("DOCKSTAT_CONFIG")
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .envs(env.iter().copied())
        .output()
        .expect("run check-config")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_config_prints_the_effective_otlp_settings_and_which_source_won() {
    let dir = temp_dir("msg-otlp");
    let file = dir.join("c.yaml");
    std::fs::write(
        &file,
        "otlp:\n  enabled: true\n  endpoint: http://collector:4317\n  headers:\n    authorization: \"Bearer s3cret-value\"\n",
    )
    .expect("write");
    let out = check_config(
        &file,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4317"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(
            "otlp: on, endpoint=http://collector:4317/ protocol=grpc interval=15s timeout=5s"
        ),
        "{t}"
    );
    assert!(t.contains("headers=[authorization]"), "{t}");
    assert!(
        !t.contains("s3cret-value"),
        "a header value is printed: {t}"
    );
    assert!(
        t.contains(
            "otlp.endpoint: the file's value is used; OTEL_EXPORTER_OTLP_ENDPOINT is ignored"
        ),
        "{t}"
    );
    assert!(!t.contains("otlp.timeout"), "{t}");

    // The example file sets no otlp key: the variables apply to it.
    let out = check_config(
        &repo().join("config.example.yaml"),
        &[
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("otlp: on, endpoint=http://collector:4317/"),
        "{t}"
    );
    assert!(!t.contains("is ignored"), "{t}");
}

#[test]
fn the_run_logs_which_source_won() {
    let e = Exporter::start_with(
        "msg-otlp-run",
        Launch {
            env: &[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")],
            ..Launch::default()
        },
        "otlp:\n  enabled: false\n  compression: none\n",
    );
    let line = e.wait_for_log_line(
        std::time::Duration::from_secs(5),
        &[
            "otlp.compression",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "the file's value is used",
        ],
    );
    assert!(line.contains("WARN"), "{line}");
}

/// Runs the binary as `nobody` (no docker group, no write access to root's directories).
fn as_nobody(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin())
        .args(args)
        .env_remove("DOCKSTAT_CONFIG")
        .env_remove("DOCKER_HOST")
        .envs(env.iter().copied());
    c
}

#[test]
fn a_socket_without_permission_names_the_socket_and_its_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let socket = env().a_socket;
    let gid = std::fs::metadata(&socket).expect("socket").gid();
    let dir = temp_dir("msg-perm");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let data = dir.join("data").display().to_string();
    let log = dir.join("exporter.log");
    let (port, admin) = (free_port(), free_port());
    let mut child = as_nobody(
        &[
            "--data-dir",
            &data,
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
            "--api.listen-address",
            &format!("127.0.0.1:{admin}"),
        ],
        &[("DOCKER_HOST", &format!("unix://{socket}"))],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log).expect("log"))
    .spawn()
    .expect("spawn as nobody");
    let want = format!("permission denied on {socket}: run as root or as a member of its group");
    let found = poll(
        "the permission message",
        std::time::Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().find(|l| l.contains(&want)).map(str::to_string)
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found.contains(&format!("(gid {gid})")) && found.contains(&format!("--group-add {gid}")),
        "{found}"
    );
}

#[test]
fn a_database_directory_the_exporter_cannot_write_fails_check_config_with_the_reason() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("msg-rodb");
    let db_dir = dir.join("db");
    std::fs::create_dir_all(&db_dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        format!("database:\n  path: {}/dockstat.db\n", db_dir.display()),
    )
    .expect("write");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = as_nobody(
        &["check-config", "--config", &cfg.display().to_string()],
        &[],
    )
    .output()
    .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "database.path: directory `{}` is not writable (Permission denied (os error 13))",
            db_dir.display()
        )),
        "{err}"
    );
}

#[test]
fn a_host_that_is_not_docker_says_so() {
    // Another exporter's metrics listener: HTTP, but not the Docker Engine API.
    let other = Exporter::start("msg-notdocker-target", "");
    let e = Exporter::start(
        "msg-notdocker",
        &format!(
            "monitoring:\n  retry_delay: 200ms\nclients:\n  - name: x\n    hosts:\n      - name: web\n        address: tcp://127.0.0.1:{}\n",
            other.port
        ),
    );
    let line = e.wait_for_log_line(
        std::time::Duration::from_secs(20),
        &["not a Docker Engine API", "/version"],
    );
    assert!(line.contains("HTTP 404"), "{line}");
}

#[test]
fn an_invalid_rust_log_is_reported() {
    let out = Command::new(bin())
        .arg("metrics")
        .env("RUST_LOG", "info,dockstat_exporter=loud")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("RUST_LOG is not a valid filter")
            && err.contains("info,dockstat_exporter=loud"),
        "{err}"
    );
}
