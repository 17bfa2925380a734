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
