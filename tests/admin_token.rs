//! The admin API is never anonymous: without `api.tokens` the exporter makes an admin token
//! at first start in its data directory (mode 0600), logs the file's path but never the
//! token, and answers 401 without it, on loopback too; `token --rotate` replaces it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

#[test]
fn without_tokens_the_generated_token_is_required_even_on_loopback() {
    let e = Exporter::start("tok-gen", "");
    let file = e.dir.join("admin.token");
    let mode = std::fs::metadata(&file)
        .expect("admin.token made")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin.token mode {mode:o}");
    let token = std::fs::read_to_string(&file)
        .expect("read")
        .trim()
        .to_string();
    assert_eq!(token.len(), 64, "{token}");
    // The log names the file, never the token.
    let log = e.wait_for_log(Duration::from_secs(5), "made an admin token");
    assert!(log.contains(&file.display().to_string()), "{log}");
    assert!(!log.contains(&token), "the token is in the log:\n{log}");

    // Anonymous, over loopback: 401 with the JSON error and WWW-Authenticate.
    for path in ["/api/v1/status", "/api/v1/clients", "/api/v1/audit"] {
        let r = Request::get(path)
            .anonymous()
            .send(e.admin_port)
            .expect("GET");
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{}",
            r.head
        );
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON error");
        assert_eq!(v["error"]["code"], "unauthorized", "{v}");
    }
    let r = Request::new("POST", "/api/v1/monitoring/stop-all")
        .anonymous()
        .json("")
        .send(e.admin_port)
        .expect("POST");
    assert_eq!(r.status, 401, "{}", r.body);
    let wrong = "0".repeat(64);
    let (status, _) = api(e.admin_port, "GET", "/api/v1/status", Some(&wrong), None);
    assert_eq!(status, 401);

    // With the token: admin, and the audit log names it.
    let (status, body) = api(e.admin_port, "GET", "/api/v1/audit", Some(&token), None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        e.admin_port,
        "POST",
        "/api/v1/clients",
        Some(&token),
        Some(&format!(r#"{{"name":"{}"}}"#, unique("tok"))),
    );
    assert_eq!(status, 201, "{body}");
    let (_, audit) = api(
        e.admin_port,
        "GET",
        "/api/v1/audit?limit=1",
        Some(&token),
        None,
    );
    assert!(audit.to_string().contains("generated-admin"), "{audit}");
}

#[test]
fn the_token_survives_a_restart_and_rotates() {
    let mut e = Exporter::start("tok-rot", "");
    let dir = e.dir.clone();
    let file = dir.join("admin.token");
    let first = std::fs::read_to_string(&file)
        .expect("read")
        .trim()
        .to_string();
    e.terminate(Duration::from_secs(15));
    drop(e);
    // Restart: the same token.
    let mut e = Exporter::start_in(dir.clone(), "");
    let again = std::fs::read_to_string(&file)
        .expect("read")
        .trim()
        .to_string();
    assert_eq!(first, again);
    let (status, _) = api(e.admin_port, "GET", "/api/v1/status", Some(&first), None);
    assert_eq!(status, 200);
    e.terminate(Duration::from_secs(15));
    // Rotate with the subcommand, on the same configuration.
    let out = std::process::Command::new(bin())
        .args(["token", "--rotate", "--config"])
        .arg(&e.config)
        .output()
        .expect("run token --rotate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&file.display().to_string()), "{stdout}");
    let rotated = std::fs::read_to_string(&file)
        .expect("read")
        .trim()
        .to_string();
    assert_ne!(rotated, first);
    assert!(!stdout.contains(&rotated), "the token is printed: {stdout}");
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(e);
    let e = Exporter::start_in(dir, "");
    let (status, _) = api(e.admin_port, "GET", "/api/v1/status", Some(&first), None);
    assert_eq!(status, 401, "the old token still works");
    let (status, _) = api(e.admin_port, "GET", "/api/v1/status", Some(&rotated), None);
    assert_eq!(status, 200);
}

#[test]
fn configured_tokens_make_no_file_and_a_readable_file_is_refused() {
    let e = Exporter::start(
        "tok-cfg",
        "api:\n  tokens:\n    - { name: ops, role: admin, token: 0123456789abcdef0123 }\n",
    );
    assert!(!e.dir.join("admin.token").exists());
    let (status, _) = api(e.admin_port, "GET", "/api/v1/status", None, None);
    assert_eq!(status, 401);
    drop(e);
    // A token file others can read is no secret: refused at start, with the reason.
    let dir = temp_dir("tok-mode");
    let file = dir.join("admin.token");
    std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let db = dir.join("dockstat.db");
    let cfg = dir.join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen:\n  metrics: 127.0.0.1:{}\n  admin: 127.0.0.1:{}\ndatabase:\n  path: {}\n",
            free_port(),
            free_port(),
            db.display()
        ),
    )
    .expect("write");
    let out = std::process::Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is readable by others (mode 644)"), "{err}");
}
