//! Security of the admin API, from the outside: the role matrix over every operation of the
//! served OpenAPI document (and that document against a hard-coded API surface), the
//! document's validity (`openapi-spec-validator`), bad input answered with JSON errors,
//! configurations the binary refuses to start with, the `token` subcommand, TLS listeners,
//! the metrics port serving no `/api/v1`, the cap on followed log streams, and tokens never
//! reaching the log.
//!
//! The expected role of each route is written down here, independently of
//! `required_role` in src/api/auth.rs, so a policy change shows up as a failure.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::request::Resp;
use common::*;
use serde_json::{Value, json};

const VIEWER: &str = "viewer-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
/// Well-formed but configured nowhere.
const WRONG: &str = "wrong-token-0123456789abcdef";

/// The `api:` section with the three tokens, plus `extra` (lines indented by two spaces).
fn api_yaml(extra: &str) -> String {
    format!(
        "api:\n  tokens:\n    - {{name: v, role: viewer, token: {VIEWER}}}\n    \
         - {{name: o, role: operator, token: {OPERATOR}}}\n    \
         - {{name: a, role: admin, token: {ADMIN}}}\n{extra}"
    )
}

/// Fast collection, the three tokens and one client `lab` with daemon A as host `a`.
fn lab_config(api_extra: &str) -> String {
    format!(
        "monitoring:\n  interval: 1s\n  retry_delay: 500ms\n  retry_max_delay: 2s\n{}\
         clients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n",
        api_yaml(api_extra),
        env().a_socket
    )
}

/// Secrets that must never appear in the exporter's log.
fn assert_no_secrets(log: &str, extra: &[&str]) {
    for secret in [VIEWER, OPERATOR, ADMIN, WRONG].iter().chain(extra) {
        assert!(
            !log.contains(secret),
            "the exporter's log contains the token `{secret}`:\n{log}"
        );
    }
}

// ---------------------------------------------------------------- raw HTTP

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// The whole `Authorization` header value.
    Header(&'a str),
}

// The API's error shape, on the harness's answers.
impl Resp {
    /// Asserts the API's error shape with `status` and `code`; returns the error object.
    fn error(&self, what: &str, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status, status,
            "{what}: want {status} {code}, got:\n{}\n\n{}",
            self.head, self.body
        );
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "{what}: error content type `{ct}`"
        );
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: an error has a message: {v}"
        );
        assert_eq!(
            v.as_object().map(|o| o.len()),
            Some(1),
            "{what}: only `error` at the top: {v}"
        );
        v["error"].clone()
    }
}

/// A request with its authentication. `content_type` None sends no Content-Type at all;
/// a body is sent with its Content-Length.
fn request(
    method: &str,
    path: &str,
    auth: Auth,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Request {
    let mut r = Request::new(method, path);
    match auth {
        Auth::None => {}
        Auth::Bearer(t) => r = r.bearer(Some(t)),
        Auth::Header(h) => r = r.header("Authorization", h),
    }
    if let Some(ct) = content_type {
        r = r.header("Content-Type", ct);
    }
    if let Some(b) = body {
        r = r.body(b);
    }
    r
}

/// One request with a JSON body (when given); panics on transport failure.
fn call(port: u16, method: &str, path: &str, auth: Auth, body: Option<&Value>) -> Resp {
    let body = body.map(|b| b.to_string());
    let ct = body.as_ref().map(|_| "application/json");
    request(method, path, auth, ct, body.as_deref().map(str::as_bytes))
        .send(port)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// An admin call that must answer `want`; returns the JSON body (Null when empty).
fn admin(port: u16, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
    let r = call(port, method, path, Auth::Bearer(ADMIN), body.as_ref());
    assert_eq!(
        r.status, want,
        "{method} {path} answered:\n{}\n\n{}",
        r.head, r.body
    );
    if r.body.trim().is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

// ---------------------------------------------------------------- the API surface

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Viewer,
    Operator,
    Admin,
}

const ROLES: [(Role, &str); 3] = [
    (Role::Viewer, VIEWER),
    (Role::Operator, OPERATOR),
    (Role::Admin, ADMIN),
];

/// Every operation the admin API must document, with the least role that may call it.
const SURFACE: &[(&str, &str, Role)] = &[
    ("GET", "/api/v1/audit", Role::Admin),
    ("GET", "/api/v1/clients", Role::Viewer),
    ("POST", "/api/v1/clients", Role::Admin),
    ("GET", "/api/v1/clients/{client}", Role::Viewer),
    ("PATCH", "/api/v1/clients/{client}", Role::Admin),
    ("DELETE", "/api/v1/clients/{client}", Role::Admin),
    ("GET", "/api/v1/clients/{client}/containers", Role::Viewer),
    (
        "GET",
        "/api/v1/clients/{client}/containers/{container}",
        Role::Viewer,
    ),
    (
        "DELETE",
        "/api/v1/clients/{client}/containers/{container}",
        Role::Operator,
    ),
    (
        "GET",
        "/api/v1/clients/{client}/containers/{container}/logs",
        Role::Viewer,
    ),
    (
        "POST",
        "/api/v1/clients/{client}/containers/{container}/restart",
        Role::Operator,
    ),
    (
        "POST",
        "/api/v1/clients/{client}/containers/{container}/start",
        Role::Operator,
    ),
    (
        "POST",
        "/api/v1/clients/{client}/containers/{container}/stop",
        Role::Operator,
    ),
    ("GET", "/api/v1/clients/{client}/hosts", Role::Viewer),
    ("POST", "/api/v1/clients/{client}/hosts", Role::Admin),
    ("GET", "/api/v1/clients/{client}/hosts/health", Role::Viewer),
    ("GET", "/api/v1/clients/{client}/monitoring", Role::Viewer),
    (
        "POST",
        "/api/v1/clients/{client}/monitoring/start",
        Role::Operator,
    ),
    (
        "POST",
        "/api/v1/clients/{client}/monitoring/stop",
        Role::Operator,
    ),
    ("GET", "/api/v1/hosts/{host}", Role::Viewer),
    ("PATCH", "/api/v1/hosts/{host}", Role::Admin),
    ("DELETE", "/api/v1/hosts/{host}", Role::Admin),
    ("GET", "/api/v1/hosts/{host}/health", Role::Viewer),
    ("POST", "/api/v1/monitoring/stop-all", Role::Operator),
    ("GET", "/api/v1/pool", Role::Viewer),
    ("GET", "/api/v1/status", Role::Viewer),
    ("GET", "/api/v1/streams/{channel}", Role::Viewer),
    ("GET", "/api/v1/ws", Role::Viewer),
];

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `(METHOD, path)` of every operation of an OpenAPI document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths object");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for (k, _) in item.as_object().expect("path item") {
            if HTTP_METHODS.contains(&k.as_str()) {
                out.insert((k.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn fetch_openapi(port: u16) -> Value {
    let r = call(
        port,
        "GET",
        "/api/v1/openapi.json",
        Auth::Bearer(VIEWER),
        None,
    );
    assert_eq!(r.status, 200, "openapi.json: {}\n{}", r.head, r.body);
    r.json()
}

// ---------------------------------------------------------------- 1. role matrix

/// What the matrix works on.
struct Fixture {
    port: u16,
    docker: Docker,
    /// Client `lab` from the file, monitored, host `a` on daemon A.
    lab: i64,
    /// Its host (read-only, from the file).
    lab_host: i64,
    /// A running container on daemon A.
    running: Container,
    started_at: String,
    /// A run-time client and host the refused calls aim at; they must survive.
    victim: i64,
    victim_name: String,
    victim_host: i64,
    victim_host_name: String,
}

/// A concrete call for one operation, and what keeps its throwaway target alive.
struct Target {
    path: String,
    body: Option<Value>,
    _container: Option<Container>,
}

impl Fixture {
    fn new_client(&self) -> (i64, String) {
        let name = unique("sec-client");
        let v = admin(
            self.port,
            "POST",
            "/api/v1/clients",
            Some(json!({ "name": name })),
            201,
        );
        (v["id"].as_i64().expect("client id"), name)
    }

    fn new_host(&self, client: i64) -> (i64, String) {
        let name = unique("sec-host");
        let v = admin(
            self.port,
            "POST",
            &format!("/api/v1/clients/{client}/hosts"),
            Some(host_body(&name)),
            201,
        );
        (v["id"].as_i64().expect("host id"), name)
    }

    /// A created (not started) container, removed when the target is dropped.
    fn throwaway_container(&self) -> Container {
        let name = unique("sec-throwaway");
        let image = env().image;
        let id = self.docker.run(&[
            "create",
            "--name",
            &name,
            "--label",
            "dockstat.test=1",
            &image,
            "sh",
            "-c",
            "sleep 300",
        ]);
        Container {
            docker: self.docker.clone(),
            name,
            id,
        }
    }

    /// The call for `method tpl`. Allowed calls that would destroy something act on a
    /// throwaway; refused calls act on the real thing (which must survive).
    fn target(&self, method: &str, tpl: &str, allowed: bool) -> Target {
        let mut client = self.lab;
        let mut host = self.lab_host;
        let mut container = self.running.name.clone();
        let mut body = None;
        let mut query = "";
        let mut keep = None;
        // Names given by refused calls must never show up.
        let prefix = if allowed { "sec-made" } else { "sec-refused" };
        match (method, tpl) {
            ("GET", t) if t.ends_with("/logs") => query = "?tail=3",
            ("GET", _) => {}
            ("POST", "/api/v1/clients") => body = Some(json!({ "name": unique(prefix) })),
            ("PATCH", "/api/v1/clients/{client}") => {
                client = if allowed {
                    self.new_client().0
                } else {
                    self.victim
                };
                body = Some(json!({ "name": unique(prefix) }));
            }
            ("DELETE", "/api/v1/clients/{client}") => {
                client = if allowed {
                    self.new_client().0
                } else {
                    self.victim
                };
            }
            ("POST", "/api/v1/clients/{client}/hosts") => {
                client = self.victim;
                body = Some(host_body(&unique(prefix)));
            }
            ("PATCH", "/api/v1/hosts/{host}") => {
                host = if allowed {
                    self.new_host(self.victim).0
                } else {
                    self.victim_host
                };
                body = Some(json!({ "name": unique(prefix) }));
            }
            ("DELETE", "/api/v1/hosts/{host}") => {
                host = if allowed {
                    self.new_host(self.victim).0
                } else {
                    self.victim_host
                };
            }
            // Allowed: the run-time client without enabled hosts; refused: `lab`, which
            // must stay monitored.
            ("POST", t) if t.contains("/monitoring/") && t.contains("{client}") => {
                if allowed {
                    client = self.victim;
                }
            }
            ("POST", "/api/v1/monitoring/stop-all") => {}
            ("POST", t) if t.ends_with("/start") => {} // a no-op on the running container
            ("POST", t) if t.ends_with("/stop") || t.ends_with("/restart") => {
                query = "?t=0";
                if allowed {
                    let c = self.throwaway_container();
                    container = c.name.clone();
                    keep = Some(c);
                }
            }
            ("DELETE", "/api/v1/clients/{client}/containers/{container}") => {
                query = "?force=true";
                if allowed {
                    let c = self.throwaway_container();
                    container = c.name.clone();
                    keep = Some(c);
                }
            }
            other => panic!("no target for {other:?}: add it to the test"),
        }
        let path = tpl
            .replace("{client}", &client.to_string())
            .replace("{host}", &host.to_string())
            .replace("{container}", &container)
            // A stream would never end: an unknown channel is answered (400) at once.
            .replace("{channel}", "no_such_channel");
        assert!(!path.contains('{'), "unfilled parameter in {path}");
        Target {
            path: format!("{path}{query}"),
            body,
            _container: keep,
        }
    }

    /// What the refused calls must have left alone.
    fn assert_intact(&self) {
        let p = self.port;
        assert_eq!(
            self.running
                .inspect("{{.State.Running}} {{.State.StartedAt}}"),
            format!("true {}", self.started_at),
            "the running container was stopped, restarted or removed by a refused call"
        );
        let v = admin(
            p,
            "GET",
            &format!("/api/v1/clients/{}", self.victim),
            None,
            200,
        );
        assert_eq!(v["name"], self.victim_name.as_str(), "{v}");
        let v = admin(
            p,
            "GET",
            &format!("/api/v1/hosts/{}", self.victim_host),
            None,
            200,
        );
        assert_eq!(v["name"], self.victim_host_name.as_str(), "{v}");
        let v = admin(
            p,
            "GET",
            &format!("/api/v1/clients/{}/monitoring", self.lab),
            None,
            200,
        );
        assert_eq!(v["monitoring"], true, "lab is still monitored: {v}");
        let v = admin(
            p,
            "GET",
            &format!("/api/v1/clients/{}/hosts", self.victim),
            None,
            200,
        );
        let names: Vec<&str> = v
            .as_array()
            .expect("hosts")
            .iter()
            .filter_map(|h| h["name"].as_str())
            .collect();
        assert!(
            !names.iter().any(|n| n.contains("sec-refused")),
            "a refused POST hosts or PATCH host left a host: {names:?}"
        );
        let v = admin(p, "GET", "/api/v1/clients", None, 200);
        let names: Vec<&str> = v
            .as_array()
            .expect("clients")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(
            !names.iter().any(|n| n.contains("sec-refused")),
            "a refused POST clients or PATCH client left a client: {names:?}"
        );
    }
}

fn host_body(name: &str) -> Value {
    // A socket that does not exist: the host is never reachable, and it is disabled anyway.
    json!({
        "name": name,
        "address": format!("unix:///run/dockstat-test/{name}.sock"),
        "enabled": false,
    })
}

/// Runs one operation with no, a wrong and a Basic credential, then with each role.
fn check_operation(fx: &Fixture, method: &str, tpl: &str, needed: Role) {
    let what = format!("{method} {tpl}");
    let refused = fx.target(method, tpl, false);
    for auth in [
        Auth::None,
        Auth::Bearer(WRONG),
        Auth::Header("Basic dmlld2VyOnZpZXdlci10b2tlbi0wMTIzNDU2Nzg5"),
        Auth::Header(VIEWER), // the token without a scheme
    ] {
        let r = call(fx.port, method, &refused.path, auth, refused.body.as_ref());
        r.error(&format!("{what} with {auth:?}"), 401, "unauthorized");
        let challenge = r.header("www-authenticate").unwrap_or("");
        assert!(
            challenge.starts_with("Bearer"),
            "{what} with {auth:?}: WWW-Authenticate `{challenge}`"
        );
    }
    let mut seen = Vec::new();
    for (role, token) in ROLES {
        let who = format!("{what} as {role:?}");
        if role >= needed {
            let t = fx.target(method, tpl, true);
            let r = call(
                fx.port,
                method,
                &t.path,
                Auth::Bearer(token),
                t.body.as_ref(),
            );
            assert!(
                r.status != 401 && r.status != 403,
                "{who} ({}) is allowed but answered:\n{}\n\n{}",
                t.path,
                r.head,
                r.body
            );
            // Real values: the call does what it is for (a throwaway may already be gone).
            // Streams answer 400 here: an unknown channel, or a plain GET without the
            // WebSocket upgrade headers (a live stream would never end).
            let streaming = tpl.contains("/streams/") || tpl.ends_with("/ws");
            assert!(
                (200..300).contains(&r.status)
                    || r.status == 404
                    || r.status == 409
                    || (streaming && r.status == 400),
                "{who} ({}) answered:\n{}\n\n{}",
                t.path,
                r.head,
                r.body
            );
            seen.push(format!("{role:?} {}", r.status));
        } else {
            let r = call(
                fx.port,
                method,
                &refused.path,
                Auth::Bearer(token),
                refused.body.as_ref(),
            );
            let err = r.error(&format!("{who} ({})", refused.path), 403, "forbidden");
            let message = err["message"].as_str().unwrap_or_default();
            assert!(
                !message.contains(token),
                "{who}: the 403 message repeats the token: {message}"
            );
            seen.push(format!("{role:?} 403"));
        }
    }
    eprintln!(
        "{what}: no/wrong/Basic/bare credentials 401; {}",
        seen.join(", ")
    );
}

#[test]
fn every_documented_operation_enforces_its_role() {
    let docker = Docker::a();
    let running = docker.start("sec-run", &[], "while true; do echo tick; sleep 1; done");
    let started_at = running.inspect("{{.State.StartedAt}}");
    let exp = Exporter::start("sec-roles", &lab_config(""));
    let port = exp.admin_port;

    let clients = admin(port, "GET", "/api/v1/clients", None, 200);
    let lab = clients
        .as_array()
        .expect("clients")
        .iter()
        .find(|c| c["name"] == "lab")
        .and_then(|c| c["id"].as_i64())
        .unwrap_or_else(|| panic!("no client lab in {clients}"));
    let hosts = admin(
        port,
        "GET",
        &format!("/api/v1/clients/{lab}/hosts"),
        None,
        200,
    );
    let lab_host = hosts[0]["id"].as_i64().expect("host id");
    // The container is visible through the API before the matrix starts.
    poll(
        "the running container in the listing",
        Duration::from_secs(15),
        || {
            let r = call(
                port,
                "GET",
                &format!("/api/v1/clients/{lab}/containers/{}", running.name),
                Auth::Bearer(VIEWER),
                None,
            );
            (r.status == 200).then_some(())
        },
    );

    let mut fx = Fixture {
        port,
        docker,
        lab,
        lab_host,
        running,
        started_at,
        victim: 0,
        victim_name: String::new(),
        victim_host: 0,
        victim_host_name: String::new(),
    };
    (fx.victim, fx.victim_name) = fx.new_client();
    (fx.victim_host, fx.victim_host_name) = fx.new_host(fx.victim);

    // The document lists exactly the expected surface.
    let doc = fetch_openapi(port);
    let documented = operations(&doc);
    let expected: BTreeSet<(String, String)> = SURFACE
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let unexpected: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "API surface changed: not documented {missing:?}; documented but not expected {unexpected:?}"
    );

    // stop-all last: its allowed calls stop `lab`.
    let mut ops: Vec<&(&str, &str, Role)> = SURFACE.iter().collect();
    ops.sort_by_key(|(_, p, _)| *p == "/api/v1/monitoring/stop-all");
    for (method, tpl, needed) in ops {
        if *tpl == "/api/v1/monitoring/stop-all" {
            fx.assert_intact();
        }
        check_operation(&fx, method, tpl, *needed);
    }

    // The document itself needs a token, and a viewer's is enough.
    let r = call(port, "GET", "/api/v1/openapi.json", Auth::None, None);
    r.error("openapi.json without a token", 401, "unauthorized");

    // No /api/v1 route is served on the metrics port, whatever the token.
    for (method, tpl, _) in SURFACE {
        let t = fx.target(method, tpl, false);
        let r = call(
            exp.port,
            method,
            &t.path,
            Auth::Bearer(ADMIN),
            t.body.as_ref(),
        );
        assert_eq!(
            r.status, 404,
            "{method} {} on the metrics port:\n{}\n\n{}",
            t.path, r.head, r.body
        );
    }
    let r = call(
        exp.port,
        "GET",
        "/api/v1/openapi.json",
        Auth::Bearer(ADMIN),
        None,
    );
    assert_eq!(r.status, 404, "openapi.json on the metrics port");
    assert_eq!(
        fx.running
            .inspect("{{.State.Running}} {{.State.StartedAt}}"),
        format!("true {}", fx.started_at),
        "the metrics port acted on the container"
    );

    assert_no_secrets(&exp.log_text(), &[]);
}

/// axum answers HEAD on every GET route, so HEAD must need no more than GET does: a
/// viewer may HEAD what it may GET, and a HEAD is not an action.
#[test]
fn head_requests_follow_the_get_policy() {
    let docker = Docker::a();
    let running = docker.start("sec-head", &[], "echo hello; sleep 600");
    let exp = Exporter::start("sec-head", &lab_config(""));
    let port = exp.admin_port;
    let lab = admin(port, "GET", "/api/v1/clients", None, 200)[0]["id"]
        .as_i64()
        .expect("client id");
    let hosts = admin(
        port,
        "GET",
        &format!("/api/v1/clients/{lab}/hosts"),
        None,
        200,
    );
    let host = hosts[0]["id"].as_i64().expect("host id");
    let mut wrong = Vec::new();
    // A WebSocket handshake is a GET by definition (HEAD there is 405 for everyone).
    for (method, tpl, needed) in SURFACE
        .iter()
        .filter(|(m, t, _)| *m == "GET" && !t.ends_with("/ws"))
    {
        let path = tpl
            .replace("{client}", &lab.to_string())
            .replace("{host}", &host.to_string())
            .replace("{container}", &running.name)
            .replace("{channel}", "no_such_channel");
        for (role, token) in ROLES {
            let get = call(port, method, &path, Auth::Bearer(token), None);
            let head = call(port, "HEAD", &path, Auth::Bearer(token), None);
            let want = if role >= *needed { get.status } else { 403 };
            if head.status != want {
                wrong.push(format!(
                    "HEAD {path} as {role:?}: {} (GET: {})",
                    head.status, get.status
                ));
            }
        }
        let r = call(port, "HEAD", &path, Auth::None, None);
        assert_eq!(r.status, 401, "HEAD {path} without a token");
    }
    assert!(
        wrong.is_empty(),
        "HEAD is not authorized like GET (src/api/auth.rs required_role treats HEAD as a \
         mutating method):\n{}",
        wrong.join("\n")
    );
    assert_eq!(running.inspect("{{.State.Running}}"), "true");
    assert_no_secrets(&exp.log_text(), &[]);
}

// ---------------------------------------------------------------- 2. OpenAPI validity

#[test]
fn the_openapi_document_is_valid_and_documents_auth_errors() {
    let exp = Exporter::start("sec-openapi", &lab_config(""));
    let doc = fetch_openapi(exp.admin_port);

    // Every problem is collected, so one run shows all of them.
    let mut problems = Vec::new();
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    let is_bearer = scheme["type"] == "http"
        && scheme["scheme"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer"));
    if !is_bearer {
        problems.push(format!(
            "components.securitySchemes.bearer is not an HTTP bearer scheme: {scheme}"
        ));
    }
    let ops = operations(&doc);
    assert!(!ops.is_empty(), "no operations in {doc}");
    for (method, path) in &ops {
        let op = &doc["paths"][path][method.to_lowercase()];
        for code in ["401", "403"] {
            if op["responses"].get(code).is_none() {
                problems.push(format!(
                    "{method} {path} does not document {code}: {}",
                    op["responses"]
                ));
            }
        }
        let security = op["security"].as_array().cloned().unwrap_or_default();
        if !security.iter().any(|s| s.get("bearer").is_some()) {
            problems.push(format!(
                "{method} {path} does not require the bearer scheme: {}",
                op["security"]
            ));
        }
    }

    let file = exp.dir.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator", "--validation-errors", "all"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); `scripts/test-env.sh up` installs the validator")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named"),
        "openapi-spec-validator is not installed for python3 (`scripts/test-env.sh up` installs it): {text}"
    );
    if !out.status.success() {
        let shown: String = text.chars().take(6000).collect();
        problems.push(format!(
            "python3 -m openapi_spec_validator {} failed ({}):\n{shown}",
            file.display(),
            out.status
        ));
    }
    assert!(
        problems.is_empty(),
        "the OpenAPI document has {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_no_secrets(&exp.log_text(), &[]);
}

// ---------------------------------------------------------------- 3. bad input

#[test]
fn bad_input_gets_json_errors_and_the_exporter_keeps_serving() {
    let exp = Exporter::start("sec-input", &lab_config(""));
    let port = exp.admin_port;
    let lab = admin(port, "GET", "/api/v1/clients", None, 200)[0]["id"]
        .as_i64()
        .expect("client id");
    let clients_before = admin(port, "GET", "/api/v1/clients", None, 200);

    // Bodies of POST /api/v1/clients.
    let post = |ct: Option<&str>, body: &[u8]| {
        request(
            "POST",
            "/api/v1/clients",
            Auth::Bearer(ADMIN),
            ct,
            Some(body),
        )
        .send(port)
        .expect("POST /api/v1/clients")
    };
    let json_ct = Some("application/json");
    let e = post(json_ct, b"{\"name\": ").error("malformed JSON", 400, "invalid");
    assert_eq!(e["field"], "body", "{e}");
    post(json_ct, b"{name: 'x'}").error("not JSON", 400, "invalid");
    post(json_ct, b"").error("empty body", 400, "invalid");
    let e = post(json_ct, br#"{"name": 5}"#).error("wrong type", 400, "invalid");
    assert!(
        e["message"].as_str().unwrap_or_default().contains("name"),
        "{e}"
    );
    let e = post(json_ct, br#"{"name": "x", "extra": 1}"#).error("unknown field", 400, "invalid");
    assert!(
        e["message"].as_str().unwrap_or_default().contains("extra"),
        "{e}"
    );
    post(json_ct, br#"{}"#).error("missing field", 400, "invalid");
    post(None, br#"{"name": "no-content-type"}"#).error(
        "no Content-Type",
        415,
        "unsupported_media_type",
    );
    post(Some("text/plain"), br#"{"name": "text-plain"}"#).error(
        "Content-Type text/plain",
        415,
        "unsupported_media_type",
    );
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(200 * 1024));
    post(json_ct, big.as_bytes()).error("200 KB body", 413, "payload_too_large");
    // The limit holds on every route with a body, not only on POST /clients.
    let r = request(
        "PATCH",
        &format!("/api/v1/clients/{lab}"),
        Auth::Bearer(ADMIN),
        json_ct,
        Some(big.as_bytes()),
    )
    .send(port)
    .expect("PATCH with a big body");
    r.error("200 KB PATCH body", 413, "payload_too_large");

    // Path parameters: traversal, odd characters, lengths.
    let get = |path: &str| call(port, "GET", path, Auth::Bearer(ADMIN), None);
    let long = "a".repeat(5000);
    let cases: Vec<(String, u16, &str)> = vec![
        // A segment that is not a number is a name (clients and hosts are addressable by
        // name): no such client, 404.
        (
            "/api/v1/clients/..%2F..%2Fetc/hosts".into(),
            404,
            "not_found",
        ),
        (
            "/api/v1/clients/..%2F..%2Fetc%2Fpasswd".into(),
            404,
            "not_found",
        ),
        ("/api/v1/clients/abc".into(), 404, "not_found"),
        ("/api/v1/clients/%00".into(), 404, "not_found"),
        ("/api/v1/clients/1%00".into(), 404, "not_found"),
        ("/api/v1/clients/-1".into(), 404, "not_found"),
        (
            "/api/v1/clients/99999999999999999999999".into(),
            400,
            "invalid",
        ),
        ("/api/v1/hosts/1.5".into(), 404, "not_found"),
        (
            format!("/api/v1/clients/{lab}/containers/..%2Fx"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/..%2F..%2F..%2Fetc%2Fpasswd"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/a%00b"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/%00"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/{long}"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/%C3%A9t%C3%A9-%E2%98%83"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/%F0%9F%90%B3/logs"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/x%20y"),
            400,
            "invalid",
        ),
        // Not a valid path segment name but harmless: no such container.
        (
            format!(
                "/api/v1/clients/{lab}/containers/no-such-container-{}",
                std::process::id()
            ),
            404,
            "not_found",
        ),
        // Query parameters.
        (
            format!("/api/v1/clients/{lab}/containers/x/logs?tail=-1"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/x/logs?tail=abc"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/x/logs?since=yesterday"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/x/logs?until=-5"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers/x/logs?follow=maybe"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers?state=bogus"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers?bogus=1"),
            400,
            "invalid",
        ),
        (
            format!("/api/v1/clients/{lab}/containers?label="),
            400,
            "invalid",
        ),
        ("/api/v1/audit?limit=0".into(), 400, "invalid"),
        ("/api/v1/audit?limit=abc".into(), 400, "invalid"),
        // Routes.
        ("/api/v1/nope".into(), 404, "not_found"),
        ("/api/v2/clients".into(), 404, "not_found"),
        (
            "/api/v1/clients/1/../../../etc/passwd".into(),
            404,
            "not_found",
        ),
        ("/".into(), 404, "not_found"),
        ("/metrics".into(), 404, "not_found"),
    ];
    for (path, status, code) in &cases {
        let r = get(path);
        let shown: String = path.chars().take(120).collect();
        let e = r.error(&format!("GET {shown}"), *status, code);
        if *status == 400 {
            assert!(e["field"].is_string(), "GET {shown}: names the field: {e}");
        }
    }
    for (query, field) in [
        ("tail=-1", "tail"),
        ("tail=abc", "tail"),
        ("since=yesterday", "since"),
    ] {
        let e = get(&format!("/api/v1/clients/{lab}/containers/x/logs?{query}"))
            .error(query, 400, "invalid");
        assert_eq!(e["field"], field, "{query}: {e}");
    }
    let e = get(&format!("/api/v1/clients/{lab}/containers?state=bogus")).error(
        "state=bogus",
        400,
        "invalid",
    );
    assert_eq!(e["field"], "state", "{e}");
    let e = get(&format!("/api/v1/clients/{lab}/containers?bogus=1")).error(
        "unknown query parameter",
        400,
        "invalid",
    );
    assert_eq!(e["field"], "query", "{e}");

    // Methods a route does not take.
    for (method, path) in [
        ("PUT", "/api/v1/clients".to_string()),
        ("DELETE", "/api/v1/clients".to_string()),
        ("PUT", format!("/api/v1/clients/{lab}")),
        ("POST", "/api/v1/status".to_string()),
        ("GET", "/api/v1/monitoring/stop-all".to_string()),
        ("PATCH", format!("/api/v1/clients/{lab}/containers/x")),
    ] {
        call(port, method, &path, Auth::Bearer(ADMIN), None).error(
            &format!("{method} {path}"),
            405,
            "method_not_allowed",
        );
    }
    // Garbage that is not HTTP at all: the connection is dropped or answered 400.
    for junk in [
        &b"GARBAGE\r\n\r\n"[..],
        &b"GET /api/v1/status HTTP/9.9\r\n\r\n"[..],
        &b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"[..],
    ] {
        if let Ok(r) = request::send_bytes(port, junk, Duration::from_secs(30)) {
            assert!(
                r.status == 0 || (400..=505).contains(&r.status),
                "junk {junk:?} answered {}",
                r.head
            );
        }
    }

    // Still serving, and nothing was created by any of it.
    let (status, body) = exp.get("/healthz");
    assert_eq!(status, 200, "{body}");
    let clients_after = admin(port, "GET", "/api/v1/clients", None, 200);
    assert_eq!(clients_before, clients_after, "bad input created a client");
    admin(port, "GET", "/api/v1/status", None, 200);
    assert_no_secrets(&exp.log_text(), &[]);
}

/// Valid reads that find no line: a container that never wrote, `tail=0`, a window in
/// the future. Each is an empty list, not a dropped connection (a panicking handler).
#[test]
fn logs_without_lines_are_an_empty_list() {
    let docker = Docker::a();
    let silent = docker.start("sec-silent", &[], "sleep 600");
    let talking = docker.start("sec-talking", &[], "echo one; echo two; sleep 600");
    let exp = Exporter::start("sec-nolines", &lab_config(""));
    let port = exp.admin_port;
    let lab = admin(port, "GET", "/api/v1/clients", None, 200)[0]["id"]
        .as_i64()
        .expect("client id");
    let logs =
        |c: &Container, q: &str| format!("/api/v1/clients/{lab}/containers/{}/logs{q}", c.name);
    // The talking container has its lines first, so the rest is not about a slow start.
    poll(
        "the talking container's lines",
        Duration::from_secs(10),
        || {
            let r = call(port, "GET", &logs(&talking, ""), Auth::Bearer(VIEWER), None);
            (r.status == 200 && r.json()["lines"].as_array().is_some_and(|l| l.len() == 2))
                .then_some(())
        },
    );
    let future = (now() as i64) + 3600;
    for path in [
        logs(&silent, ""),
        logs(&silent, "?tail=all"),
        logs(&talking, "?tail=0"),
        logs(&talking, &format!("?since={future}")),
    ] {
        let r = call(port, "GET", &path, Auth::Bearer(VIEWER), None);
        assert_eq!(
            r.status,
            200,
            "GET {path}: want 200 with no lines, got `{}`{}",
            r.head,
            if r.status == 0 {
                " (the connection was closed without an answer: see the exporter log)"
            } else {
                ""
            }
        );
        let v = r.json();
        assert_eq!(v["lines"], json!([]), "GET {path}: {v}");
    }
    let (status, _) = exp.get("/healthz");
    assert_eq!(status, 200);
    assert_no_secrets(&exp.log_text(), &[]);
}

// ---------------------------------------------------------------- 4. startup refusals

fn run_bin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("DOCKSTAT_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write stdin");
        }
    }
    // `run` on a valid configuration would not return: kill it after a while.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// `check-config` and `run` both exit 2 and print `<file>:<expected>`.
fn assert_refused(tag: &str, text: &str, expected: &str) {
    let dir = temp_dir(tag);
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).expect("write");
    let p = path.display().to_string();
    for args in [vec!["check-config", "--config", &p], vec!["--config", &p]] {
        let out = run_bin(&args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let want = format!("{p}:{expected}");
        assert!(err.contains(&want), "{args:?}\nwant: {want}\ngot:  {err}");
    }
}

#[test]
fn unsafe_or_broken_security_configurations_are_refused() {
    let certs = env().certs;
    let listen = |admin: &str| {
        format!(
            "listen:\n  metrics: 127.0.0.1:{}\n  admin: {admin}\n",
            free_port()
        )
    };
    assert_refused(
        "sec-cfg-open",
        &format!(
            "{}database:\n  path: /tmp/dockstat-sec-unused.db\n",
            listen(&format!("0.0.0.0:{}", free_port()))
        ),
        "3:10: listen.admin: the admin API on non-loopback address 0.0.0.0:",
    );
    // With a token the same address is accepted by check-config.
    let dir = temp_dir("sec-cfg-open-ok");
    let ok = dir.join("config.yaml");
    std::fs::write(
        &ok,
        format!(
            "{}{}",
            listen(&format!("0.0.0.0:{}", free_port())),
            api_yaml("")
        ),
    )
    .expect("write");
    let out = run_bin(
        &["check-config", "--config", &ok.display().to_string()],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let token =
        |fields: &str| format!("api:\n  tokens:\n    - name: x\n      role: admin\n{fields}");
    assert_refused(
        "sec-cfg-both",
        &token(&format!(
            "      sha256: {}\n      token: abcdefghijklmnopqrstuvwxyz\n",
            "0".repeat(64)
        )),
        "6:14: api.tokens[0].token: give either sha256 or token, not both",
    );
    assert_refused(
        "sec-cfg-short-hash",
        &token("      sha256: abc123\n"),
        "5:15: api.tokens[0].sha256: must be 64 hex digits",
    );
    assert_refused(
        "sec-cfg-long-hash",
        &token(&format!("      sha256: {}\n", "a".repeat(65))),
        "5:15: api.tokens[0].sha256: must be 64 hex digits",
    );
    assert_refused(
        "sec-cfg-nonhex-hash",
        &token(&format!("      sha256: zz{}\n", "0".repeat(62))),
        "5:15: api.tokens[0].sha256: must be 64 hex digits",
    );
    assert_refused(
        "sec-cfg-no-secret",
        &token(""),
        "3:7: api.tokens[0]: needs sha256",
    );
    assert_refused(
        "sec-cfg-short-token",
        &token("      token: short\n"),
        "5:14: api.tokens[0].token: must be at least 16 characters",
    );
    assert_refused(
        "sec-cfg-dup",
        "api:\n  tokens:\n    - name: x\n      role: admin\n      token: abcdefghijklmnopqrstuvwxyz\n    - name: x\n      role: viewer\n      token: abcdefghijklmnopqrstuvwxyZ\n",
        "6:13: api.tokens[1].name: duplicate token `x`",
    );
    assert_refused(
        "sec-cfg-same-token",
        "api:\n  tokens:\n    - name: x\n      role: admin\n      token: abcdefghijklmnopqrstuvwxyz\n    - name: y\n      role: viewer\n      token: abcdefghijklmnopqrstuvwxyz\n",
        "8:14: api.tokens[1].token: the same token is given twice",
    );
    assert_refused(
        "sec-cfg-role",
        "api:\n  tokens:\n    - name: x\n      role: root\n      token: abcdefghijklmnopqrstuvwxyz\n",
        "4:13: api.tokens[0].role: unknown variant `root`",
    );
    assert_refused(
        "sec-cfg-tls",
        &format!(
            "listen:\n  metrics: 127.0.0.1:{}\n  admin: 127.0.0.1:{}\n  tls:\n    cert: /nonexistent/cert.pem\n    key: {}\n",
            free_port(),
            free_port(),
            certs.join("server-key.pem").display()
        ),
        "5:11: listen.tls.cert: file `/nonexistent/cert.pem` does not exist",
    );
    assert_refused(
        "sec-cfg-tls-key",
        &format!(
            "listen:\n  metrics: 127.0.0.1:{}\n  admin: 127.0.0.1:{}\n  tls:\n    cert: {}\n    key: /nonexistent/key.pem\n",
            free_port(),
            free_port(),
            certs.join("server-cert.pem").display()
        ),
        "6:10: listen.tls.key: file `/nonexistent/key.pem` does not exist",
    );
}

fn sha256sum(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string()
}

#[test]
fn the_token_subcommand_makes_tokens_whose_hash_authenticates() {
    let out = run_bin(&["token"], None);
    assert!(out.status.success(), "{:?}", out);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `token:` line in {stdout}"))
        .to_string();
    let hash = stdout
        .lines()
        .find_map(|l| l.split_once("sha256:").map(|(_, h)| h.trim()))
        .unwrap_or_else(|| panic!("no `sha256:` line in {stdout}"))
        .to_string();
    assert!(token.len() >= 32, "a long token: {token}");
    assert_eq!(hash.len(), 64, "{hash}");
    assert_eq!(hash, sha256sum(&token), "the printed hash is sha256(token)");
    // Two runs make two different tokens.
    let again = String::from_utf8_lossy(&run_bin(&["token"], None).stdout).to_string();
    assert!(!again.contains(&token), "the same token twice: {again}");
    // --hash reads one from stdin.
    let out = run_bin(&["token", "--hash"], Some(&format!("{token}\n")));
    assert!(out.status.success(), "{:?}", out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hash);
    let out = run_bin(&["token", "--hash"], Some("short\n"));
    assert_eq!(out.status.code(), Some(2), "a short token is refused");

    let exp = Exporter::start(
        "sec-token",
        &format!("api:\n  tokens:\n    - name: made\n      role: viewer\n      sha256: {hash}\n"),
    );
    let port = exp.admin_port;
    let r = call(port, "GET", "/api/v1/status", Auth::Bearer(&token), None);
    assert_eq!(r.status, 200, "{}\n{}", r.head, r.body);
    r.json();
    // A viewer: no audit log.
    call(port, "GET", "/api/v1/audit", Auth::Bearer(&token), None).error(
        "audit as the made viewer",
        403,
        "forbidden",
    );
    // The hash is not a credential, nor is a token one character off.
    call(port, "GET", "/api/v1/status", Auth::Bearer(&hash), None).error(
        "the hash as a token",
        401,
        "unauthorized",
    );
    let off = format!("{}x", &token[..token.len() - 1]);
    call(port, "GET", "/api/v1/status", Auth::Bearer(&off), None).error(
        "a token one character off",
        401,
        "unauthorized",
    );
    assert_no_secrets(&exp.log_text(), &[&token, &hash, &off]);
}

/// "64 hex digits" means exactly that: Rust's `from_str_radix` also takes a leading `+`,
/// which must not sneak through.
#[test]
fn a_sha256_with_sign_characters_is_refused() {
    let token = |hash: &str| {
        format!("api:\n  tokens:\n    - name: x\n      role: admin\n      sha256: {hash}\n")
    };
    assert_refused(
        "sec-cfg-plus-hash",
        &token(&"+0".repeat(32)),
        "5:15: api.tokens[0].sha256: must be 64 hex digits",
    );
    assert_refused(
        "sec-cfg-plus-hash2",
        &token(&format!("+f{}", "0".repeat(62))),
        "5:15: api.tokens[0].sha256: must be 64 hex digits",
    );
}

// ---------------------------------------------------------------- 5. TLS listeners

#[test]
fn tls_listeners_serve_https_only() {
    let certs = env().certs;
    let ca = certs.join("ca.pem");
    let cert = certs.join("server-cert.pem");
    let key = certs.join("server-key.pem");
    for f in [&ca, &cert, &key] {
        assert!(
            f.exists(),
            "{} missing: run `scripts/test-env.sh up`",
            f.display()
        );
    }
    let tls = format!(
        "  tls:\n    cert: {}\n    key: {}\n",
        cert.display(),
        key.display()
    );
    let launch = Launch {
        listen: &tls,
        tls_ca: Some(&ca),
        ..Launch::default()
    };
    let mut exp = Exporter::start_with("sec-tls", launch, &api_yaml(""));
    let (port, admin_port) = (exp.port, exp.admin_port);
    let ca_s = ca.display().to_string();
    let metrics_url = format!("https://127.0.0.1:{port}/metrics");
    let out = curl(&["--cacert", &ca_s, "-f", &metrics_url]);
    assert!(out.status.success(), "{:?}", out);
    let body = String::from_utf8_lossy(&out.stdout);
    Scrape::parse(&body);
    assert!(body.contains("dockstat_"), "metrics over https: {body}");

    let status_url = format!("https://127.0.0.1:{admin_port}/api/v1/status");
    let auth = format!("Authorization: Bearer {VIEWER}");
    let out = curl(&["--cacert", &ca_s, "-f", "-H", &auth, &status_url]);
    assert!(out.status.success(), "{:?}", out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert!(v.is_object(), "{v}");
    // Over TLS the token is still required.
    let out = curl(&[
        "--cacert",
        &ca_s,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &status_url,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    // The name in the certificate is checked: `localhost` is in it too, a CA that did not
    // sign it is refused.
    let out = curl(&[
        "--cacert",
        &ca_s,
        "-f",
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        &format!("https://localhost:{port}/healthz"),
    ]);
    assert!(out.status.success(), "{:?}", out);
    let wrong = certs.join("wrong-ca.pem").display().to_string();
    assert!(!curl(&["--cacert", &wrong, &metrics_url]).status.success());

    // Plain HTTP to either TLS port gets no HTTP answer.
    for p in [port, admin_port] {
        if let Ok((status, head, _)) = http_get(p, "/healthz", None) {
            assert!(
                !head.starts_with("HTTP/"),
                "plain HTTP to TLS port {p} answered {status}: {head}"
            );
        }
        let out = curl(&[&format!("http://127.0.0.1:{p}/healthz")]);
        assert!(!out.status.success(), "plain http to {p}: {:?}", out);
    }
    // /api/v1 is not on the metrics port over TLS either.
    let out = curl(&[
        "--cacert",
        &ca_s,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("Authorization: Bearer {ADMIN}"),
        "-X",
        "POST",
        &format!("https://127.0.0.1:{port}/api/v1/monitoring/stop-all"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    // Still up after the junk.
    assert!(
        curl(&["--cacert", &ca_s, "-f", &metrics_url])
            .status
            .success()
    );
    exp.kill();
    assert_no_secrets(&exp.log_text(), &[]);
}

// ---------------------------------------------------------------- 6. follow cap

/// A followed log stream whose head has been read; the body stays open.
struct Follow {
    stream: TcpStream,
    status: u16,
    rest: Vec<u8>,
}

impl Follow {
    fn open(port: u16, path: &str) -> Follow {
        let opened = request("GET", path, Auth::Bearer(VIEWER), None, None)
            .timeout(Duration::from_secs(20))
            .open(port)
            .expect("the head");
        Follow {
            stream: opened.stream,
            status: opened.status,
            rest: opened.rest,
        }
    }

    /// Reads until a complete line arrives.
    fn line(&mut self) -> String {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(i) = self.rest.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.rest.drain(..=i).collect();
                return String::from_utf8_lossy(&line).trim().to_string();
            }
            let n = self.stream.read(&mut chunk).expect("read a line");
            assert!(n > 0, "stream ended");
            self.rest.extend_from_slice(&chunk[..n]);
        }
    }

    /// The rest of a short answer (an error).
    fn finish(mut self) -> Value {
        let mut raw = std::mem::take(&mut self.rest);
        let _ = self.stream.read_to_end(&mut raw);
        serde_json::from_slice(&raw).unwrap_or_else(|e| {
            panic!("not a JSON answer ({e}): {}", String::from_utf8_lossy(&raw))
        })
    }

    fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[test]
fn followed_log_streams_are_capped() {
    let docker = Docker::a();
    let c = docker.start(
        "sec-follow",
        &[],
        "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done",
    );
    let exp = Exporter::start("sec-follow", &lab_config("  max_log_follows: 2\n"));
    let port = exp.admin_port;
    let lab = admin(port, "GET", "/api/v1/clients", None, 200)[0]["id"]
        .as_i64()
        .expect("client id");
    let path = format!(
        "/api/v1/clients/{lab}/containers/{}/logs?follow=true&tail=1",
        c.name
    );
    let open_ok = || {
        let mut f = Follow::open(port, &path);
        assert_eq!(
            f.status,
            200,
            "follow: {:?}",
            String::from_utf8_lossy(&f.rest)
        );
        let line: Value = serde_json::from_str(&f.line()).expect("NDJSON line");
        assert!(
            line["line"]
                .as_str()
                .is_some_and(|l| l.starts_with("tick-")),
            "{line}"
        );
        f
    };
    let mut first = open_ok();
    let mut second = open_ok();

    // The third is refused while both are open, with the API's JSON error.
    let third = Follow::open(port, &path);
    assert_eq!(third.status, 429);
    let v = third.finish();
    assert_eq!(v["error"]["code"], "too_many_requests", "{v}");
    // Non-followed reads are not capped.
    let r = call(
        port,
        "GET",
        &format!("/api/v1/clients/{lab}/containers/{}/logs?tail=2", c.name),
        Auth::Bearer(VIEWER),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Both open streams still deliver.
    first.line();
    second.line();

    // Closing one frees its slot: a new follow is accepted (once the server notices).
    first.close();
    let mut fourth = poll("a follow slot to be freed", Duration::from_secs(10), || {
        let f = Follow::open(port, &path);
        if f.status == 200 {
            Some(f)
        } else {
            assert_eq!(f.status, 429);
            None
        }
    });
    fourth.line();
    // And the cap holds again.
    let fifth = Follow::open(port, &path);
    assert_eq!(fifth.status, 429);
    fifth.finish();
    second.line();
    fourth.close();
    second.close();
    assert_no_secrets(&exp.log_text(), &[]);
}

/// A followed stream of a container that says nothing for longer than the Docker call
/// deadline stays open and delivers the next line (`docker logs -f` on a quiet service).
#[test]
fn a_followed_quiet_container_stays_open() {
    let docker = Docker::a();
    let c = docker.start("sec-quiet", &[], "sleep 600");
    let config = lab_config("").replace("monitoring:\n", "monitoring:\n  request_timeout: 1s\n");
    let exp = Exporter::start("sec-quiet", &config);
    let port = exp.admin_port;
    let lab = admin(port, "GET", "/api/v1/clients", None, 200)[0]["id"]
        .as_i64()
        .expect("client id");
    let path = format!(
        "/api/v1/clients/{lab}/containers/{}/logs?follow=true",
        c.name
    );
    let started = Instant::now();
    let mut f = Follow::open(port, &path);
    assert_eq!(
        f.status,
        200,
        "follow on a quiet container answered after {:?}: {}",
        started.elapsed(),
        String::from_utf8_lossy(&f.rest)
    );
    // Quiet for longer than monitoring.request_timeout, then one line.
    std::thread::sleep(Duration::from_millis(2500));
    docker.run(&["exec", &c.id, "sh", "-c", "echo late-line > /proc/1/fd/1"]);
    let line: Value = serde_json::from_str(&f.line()).expect("NDJSON line");
    assert_eq!(line["line"], "late-line", "{line}");
    f.close();
    assert_no_secrets(&exp.log_text(), &[]);
}
