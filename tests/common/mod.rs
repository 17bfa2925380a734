//! Shared test harness: the real Docker daemons started by `scripts/test-env.sh`, the
//! exporter binary run as a child process, and a small Prometheus text parser.
//!
//! Nothing here skips: a missing daemon fails the test with a message saying how to start
//! the test environment.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod request;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

#[allow(unused_imports)] // each test binary uses a different part
pub use request::{Request, auth_line, ws_request};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process: `dst-<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    format!(
        "dst-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Where the test daemons listen (see scripts/test-env.sh).
pub struct TestEnv {
    pub a_socket: String,
    pub b_socket: String,
    pub b_tcp: String,
    pub c_socket: String,
    pub c_tls: String,
    pub certs: PathBuf,
    pub image: String,
}

pub fn env() -> TestEnv {
    TestEnv {
        a_socket: var("DOCKSTAT_TEST_A_SOCKET", "/var/run/docker.sock"),
        b_socket: var("DOCKSTAT_TEST_B_SOCKET", "/run/dockstat-test/b/docker.sock"),
        b_tcp: var("DOCKSTAT_TEST_B_TCP", "127.0.0.1:23750"),
        c_socket: var("DOCKSTAT_TEST_C_SOCKET", "/run/dockstat-test/c/docker.sock"),
        c_tls: var("DOCKSTAT_TEST_C_TLS", "127.0.0.1:23760"),
        certs: PathBuf::from(var("DOCKSTAT_TEST_CERTS", "/run/dockstat-test/certs")),
        image: var("DOCKSTAT_TEST_IMAGE", "dockstat-test/busybox:latest"),
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The docker CLI pointed at one daemon.
#[derive(Clone)]
pub struct Docker {
    host_args: Vec<String>,
}

impl Docker {
    pub fn a() -> Docker {
        Docker::unix(&env().a_socket)
    }

    pub fn b() -> Docker {
        Docker::unix(&env().b_socket)
    }

    pub fn c() -> Docker {
        Docker::unix(&env().c_socket)
    }

    fn unix(path: &str) -> Docker {
        let d = Docker {
            host_args: vec!["-H".into(), format!("unix://{path}")],
        };
        let out = d.try_run(&["version", "--format", "{{.Server.APIVersion}}"]);
        assert!(
            out.is_ok(),
            "test Docker daemon at {path} is not reachable ({:?}); start the test environment with `scripts/test-env.sh up` (as root)",
            out.err()
        );
        d
    }

    fn command(&self) -> Command {
        let bin = if Path::new("/usr/bin/docker").exists() {
            "/usr/bin/docker"
        } else {
            "docker"
        };
        let mut c = Command::new(bin);
        c.args(&self.host_args);
        c.env_remove("DOCKER_HOST");
        c
    }

    pub fn try_run(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command()
            .args(args)
            .output()
            .map_err(|e| format!("cannot run docker: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "docker {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        self.try_run(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The docker CLI started with `args` and its stdout piped, for commands that stream
    /// (`docker events`); the caller reads and kills it. Its complaints reach the test's
    /// stderr.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command()
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
    }

    /// `docker pause`, tried again while runc answers "unable to freeze": runc gives up
    /// when the freezer does not settle within its short window, which a CPU-throttled or
    /// starved task (both cores loaded) can cause; it thaws again, so a retry is clean.
    /// Any other refusal fails at once.
    pub fn pause(&self, container: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.try_run(&["pause", container]) {
                Ok(_) => return,
                Err(e) if e.contains("unable to freeze") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// `docker run -d` with the test label and a unique name; removed when dropped.
    pub fn start(&self, tag: &str, opts: &[&str], cmd: &str) -> Container {
        let name = unique(tag);
        let image = env().image;
        let mut args = vec!["run", "-d", "--name", &name, "--label", "dockstat.test=1"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[&image, "sh", "-c", cmd]);
        let id = self.run(&args);
        Container {
            docker: self.clone(),
            name,
            id,
        }
    }

    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.run(&["inspect", "-f", format, name])
    }
}

/// A test container; `docker rm -f` on drop.
pub struct Container {
    pub docker: Docker,
    pub name: String,
    pub id: String,
}

impl Container {
    pub fn inspect(&self, format: &str) -> String {
        self.docker.inspect(&self.id, format)
    }

    pub fn ip(&self) -> String {
        self.inspect("{{.NetworkSettings.IPAddress}}")
    }

    pub fn pid(&self) -> u32 {
        self.inspect("{{.State.Pid}}").parse().expect("pid")
    }

    pub fn remove(&self) {
        let _ = self.docker.try_run(&["rm", "-f", &self.id]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The exporter binary running with a generated configuration.
pub struct Exporter {
    child: Option<Child>,
    pub port: u16,
    /// Port of the admin API listener.
    pub admin_port: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

/// What [`Exporter::start_with`] adds to a plain start.
#[derive(Debug, Default, Clone, Copy)]
pub struct Launch<'a> {
    /// Lines under `listen:`, indented by two spaces: `"  header_timeout: 2s\n"`.
    pub listen: &'a str,
    /// A command that runs the exporter: `&["prlimit", "--nofile=1024:1024", "--"]`.
    pub wrapper: &'a [&'a str],
    /// Environment variables for the exporter only (setting the test's own is unsafe with
    /// threads).
    pub env: &'a [(&'a str, &'a str)],
    /// The listeners serve TLS (`listen.tls` among `listen`): readiness is asked over HTTPS,
    /// trusting this CA.
    pub tls_ca: Option<&'a Path>,
}

/// A port free now and never handed out before in this process: the kernel may give the
/// same ephemeral port to two quick binds in a row (it once gave one exporter the same
/// metrics and admin port).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dockstat-exporter")
}

impl Exporter {
    /// Writes `listen` and `database` around `rest` (monitoring, clients, …) and starts the
    /// exporter; returns once `/healthz` answers.
    pub fn start(tag: &str, rest: &str) -> Exporter {
        let dir = temp_dir(tag);
        Exporter::start_in(dir, rest)
    }

    /// Like [`Exporter::start`] in an existing directory (to reuse its database).
    pub fn start_in(dir: PathBuf, rest: &str) -> Exporter {
        Exporter::start_in_with(dir, Launch::default(), rest)
    }

    /// Like [`Exporter::start`], with more under `listen:` or a wrapper command.
    pub fn start_with(tag: &str, launch: Launch, rest: &str) -> Exporter {
        Exporter::start_in_with(temp_dir(tag), launch, rest)
    }

    fn start_in_with(dir: PathBuf, launch: Launch, rest: &str) -> Exporter {
        let port = free_port();
        let admin_port = free_port();
        let config = dir.join("config.yaml");
        let text = format!(
            "listen:\n  metrics: 127.0.0.1:{port}\n  admin: 127.0.0.1:{admin_port}\n{}database:\n  path: {}\n{rest}",
            launch.listen,
            dir.join("dockstat.db").display()
        );
        std::fs::write(&config, text).expect("write config");
        let log = dir.join("exporter.log");
        let mut command = match launch.wrapper.split_first() {
            None => Command::new(bin()),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
        };
        let child = command
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info,dockstat_exporter=debug")
            .envs(launch.env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn exporter");
        let mut e = Exporter {
            child: Some(child),
            port,
            admin_port,
            dir,
            config,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let ready = || match launch.tls_ca {
            None => matches!(http_get(port, "/healthz", None), Ok((200, _, _))),
            Some(ca) => {
                let ca = ca.display().to_string();
                let url = format!("https://127.0.0.1:{port}/healthz");
                curl(&["--cacert", &ca, "-f", &url]).status.success()
            }
        };
        loop {
            if ready() {
                // Without api.tokens the exporter made an admin token beside its database:
                // the harness calls its admin API with it, as an operator would.
                if let Ok(t) = std::fs::read_to_string(e.dir.join("admin.token")) {
                    request::set_generated_token(e.admin_port, t.trim());
                }
                return e;
            }
            if let Some(Ok(Some(status))) = e.child.as_mut().map(|c| c.try_wait()) {
                panic!("exporter exited with {status}: {}", e.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "exporter did not start: {}",
                e.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` (lines are written by a thread of their own, a
    /// moment after what they tell); returns the log then, panics with it after `timeout`.
    pub fn wait_for_log(&self, timeout: Duration, needle: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in the log within {timeout:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until one line of the log holds every one of `needles`; returns that line,
    /// panics with the log after `timeout`.
    pub fn wait_for_log_line(&self, timeout: Duration, needles: &[&str]) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log_text();
            if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no line with all of {needles:?} in the log within {timeout:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Process id while it runs (a wrapper command execs the exporter under its own).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn scrape(&self) -> Scrape {
        let (status, _, body) = http_get(self.port, "/metrics", None).expect("scrape");
        assert_eq!(status, 200, "{body}");
        Scrape::parse(&body)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = http_get(self.port, path, None).expect("GET");
        (status, body)
    }

    /// Scrapes until `pred` holds; panics with `what` and the last scrape after `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.scrape();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n--- last scrape (dockstat_host*/errors) ---\n{}\n--- log ---\n{}",
                    s.text
                        .lines()
                        .filter(|l| l.starts_with("dockstat_host")
                            || l.starts_with("dockstat_docker_errors"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL, then waits.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits; returns the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("exporter did not stop within {within:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.kill();
    }
}

/// curl with a 10 s deadline and no proxy, for what the harness's client does not speak
/// (HTTPS).
pub fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

/// A GET with a 10 s deadline: (status, head, body).
pub fn http_get(
    port: u16,
    path: &str,
    accept: Option<&str>,
) -> std::io::Result<(u16, String, String)> {
    let mut r = Request::get(path).timeout(Duration::from_secs(10));
    if let Some(a) = accept {
        r = r.header("Accept", a);
    }
    let answer = r.send(port)?;
    Ok((answer.status, answer.head, answer.body))
}

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
    pub at: SystemTime,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            samples.push(
                parse_line(line).unwrap_or_else(|| panic!("cannot parse sample line: {line}")),
            );
        }
        Scrape {
            text: text.to_string(),
            samples,
            at: SystemTime::now(),
        }
    }

    /// Samples of `name` whose labels include every pair of `filter`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The one sample of `name` matching `filter`, if any.
    pub fn value(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.find(name, filter).collect();
        assert!(
            found.len() <= 1,
            "{name} {filter:?} matches {} series: {found:?}",
            found.len()
        );
        found.first().map(|s| s.value)
    }

    /// Whether any series carries `name="<container>"`.
    pub fn has_container(&self, container: &str) -> bool {
        self.samples
            .iter()
            .any(|s| s.labels.get("name").map(String::as_str) == Some(container))
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name_labels, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let mut labels = BTreeMap::new();
    let name = match name_labels.split_once('{') {
        None => name_labels.to_string(),
        Some((name, rest)) => {
            let mut rest = rest.strip_suffix('}')?;
            while !rest.is_empty() {
                let (k, after) = rest.split_once("=\"")?;
                let mut value = String::new();
                let mut chars = after.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next()?.1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                labels.insert(k.to_string(), value);
                rest = &after[end? + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
            name.to_string()
        }
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The cgroup directory of a process for a v1 controller (or the v2 unified one).
pub fn cgroup_dir(pid: u32, controller: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/pid/cgroup");
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if ctrls.split(',').any(|c| c == controller) {
            return PathBuf::from(format!("/sys/fs/cgroup/{ctrls}{path}"));
        }
    }
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            return PathBuf::from(format!("/sys/fs/cgroup{path}"));
        }
    }
    panic!("no cgroup for {controller} in {text}");
}

/// A container's cgroup CPU counter in seconds (v1 cpuacct.usage, v2 cpu.stat usage_usec).
pub fn cgroup_cpu_seconds(pid: u32) -> f64 {
    let dir = cgroup_dir(pid, "cpuacct");
    if let Ok(ns) = std::fs::read_to_string(dir.join("cpuacct.usage")) {
        return ns.trim().parse::<f64>().expect("cpuacct.usage") / 1e9;
    }
    let stat = std::fs::read_to_string(dir.join("cpu.stat")).expect("cpu.stat");
    let usec = stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .expect("usage_usec");
    usec.trim().parse::<f64>().expect("usage_usec") / 1e6
}

/// The whole-disk block device under a directory, as `(major:minor, /dev path)`.
pub fn block_device_of(dir: &Path) -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).expect("stat").dev();
    // glibc's encoding of dev_t.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let mut sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}"))
        .expect("sysfs block device");
    if sys.join("partition").exists() {
        sys.pop(); // blk-throttle rules take the whole disk
    }
    let uevent = std::fs::read_to_string(sys.join("uevent")).expect("uevent");
    let field = |k: &str| {
        uevent
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::to_string)
            .expect("uevent field")
    };
    (
        format!("{}:{}", field("MAJOR="), field("MINOR=")),
        format!("/dev/{}", field("DEVNAME=")),
    )
}

/// Seconds since the epoch of a Docker timestamp (RFC 3339 with nanoseconds).
pub fn docker_time(s: &str) -> f64 {
    dockstat_exporter::clock::parse_rfc3339(s).unwrap_or_else(|| panic!("bad time {s}"))
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Brings daemon B back even when the test that stopped it fails half-way: hold one while
/// B is stopped.
pub struct RestartB;

impl Drop for RestartB {
    fn drop(&mut self) {
        test_env("start-b");
    }
}

/// Runs `scripts/test-env.sh <cmd>`.
pub fn test_env(cmd: &str) {
    let status = Command::new("bash")
        .arg(repo().join("scripts/test-env.sh"))
        .arg(cmd)
        .status()
        .expect("run test-env.sh");
    assert!(status.success(), "scripts/test-env.sh {cmd} failed");
}

// ---- admin API helpers (tests/api.rs)

/// One admin API call: (status, JSON body; `Null` when the body is empty). A GET without a
/// body sends no content headers; anything else sends its body (maybe empty) as JSON.
/// Panics on a transport failure or a body that is not JSON.
pub fn api(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut r = Request::new(method, path).bearer(token);
    let body = body.unwrap_or("");
    if !(body.is_empty() && method == "GET") {
        r = r.json(body);
    }
    let answer = r
        .send(port)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let value = if answer.body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&answer.body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: answer is not JSON ({e}): {}\r\n\r\n{}",
                answer.head, answer.body
            )
        })
    };
    (answer.status, value)
}

/// A streamed (NDJSON) answer, read line by line.
pub struct LineStream {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Status of the answer.
    pub status: u16,
    /// Response head (status line and headers).
    pub head: String,
    /// The body ended (the server closed the connection).
    pub ended: bool,
}

impl LineStream {
    /// The next complete line (without its newline), or None if none arrives within
    /// `timeout` or the body ended.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.ended {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("set timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.ended = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the stream: {e}"),
            }
        }
    }

    /// The next line parsed as JSON.
    pub fn next_json(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        self.next_line(timeout).map(|l| {
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
        })
    }

    /// Everything until the server closes the connection (or `timeout`).
    pub fn rest(&mut self, timeout: Duration) -> String {
        let mut out = String::new();
        while let Some(l) = self.next_line(timeout) {
            out.push_str(&l);
            out.push('\n');
        }
        out.push_str(&String::from_utf8_lossy(&self.buf));
        self.buf.clear();
        out
    }

    /// Closes the connection (the client going away).
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Sends a GET and returns once the response head is read; the body is then read
/// incrementally (for `follow=true` log streams).
pub fn api_stream(port: u16, path: &str, token: Option<&str>) -> LineStream {
    let opened = Request::get(path)
        .bearer(token)
        .open(port)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    LineStream {
        stream: opened.stream,
        buf: opened.rest,
        status: opened.status,
        head: opened.head,
        ended: false,
    }
}

// ---- end of admin API helpers (tests/api.rs)

/// A real Prometheus server (Debian's `prometheus` package) scraping one exporter every
/// second, with optional rule files; killed on drop.
pub struct Prometheus {
    child: Child,
    pub port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts it in `dir` (config, TSDB and `prometheus.log` go there), scraping
    /// `127.0.0.1:<scrape_port>` and evaluating `rules` every second; returns once ready.
    pub fn start(dir: &Path, scrape_port: u16, rules: Option<&Path>) -> Prometheus {
        let rule_files = rules
            .map(|r| format!("rule_files:\n  - {}\n", r.display()))
            .unwrap_or_default();
        Prometheus::start_config(
            dir,
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}\
                 scrape_configs:\n  - job_name: dockstat\n    static_configs:\n      - targets: ['127.0.0.1:{scrape_port}']\n"
            ),
        )
    }

    /// Starts it in `dir` with the whole `prometheus.yml` given; returns once ready.
    pub fn start_config(dir: &Path, yaml: &str) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, yaml).expect("write prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
            .spawn()
            .expect("prometheus (Debian's prometheus package) must be installed");
        let p = Prometheus { child, port };
        poll("Prometheus to be ready", Duration::from_secs(30), || {
            matches!(http_get(port, "/-/ready", None), Ok((200, _, _))).then_some(())
        });
        p
    }

    /// `GET /api/v1/<path>`, the `data` of a successful answer.
    pub fn api(&self, path: &str) -> serde_json::Value {
        match self.try_api(path) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// `GET /api/v1/<path>`: the `data` of a successful answer, else what went wrong.
    pub fn try_api(&self, path: &str) -> Result<serde_json::Value, String> {
        let (status, _, body) = http_get(self.port, &format!("/api/v1/{path}"), None)
            .map_err(|e| format!("GET /api/v1/{path}: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("/api/v1/{path}: {e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("/api/v1/{path}: {status} {body}"));
        }
        Ok(v["data"].clone())
    }

    /// An instant query (`/api/v1/query`): the result vector, or Prometheus's error.
    pub fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let data = self.try_api(&format!("query?query={}", url_encode(expr)))?;
        match data["result"].as_array() {
            Some(r) => Ok(r.clone()),
            None => Err(format!("{expr}: no result vector: {data}")),
        }
    }
}

/// Percent-encodes everything but unreserved characters (for query strings).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Calls `f` every 100 ms until it returns Some, failing the test after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
