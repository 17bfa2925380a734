//! `dockersim`: a Docker Engine API simulator for benchmarks. Not a test double for
//! correctness (the integration tests use real daemons); it exists so that one machine can
//! offer the exporter thousands of containers on dozens of "hosts" with none running.
//!
//! ```sh
//! cargo run --release --example dockersim -- --hosts 20 --containers 500 --dir /tmp/dockersim
//! #   host K serves on /tmp/dockersim/hK.sock (K = 0..19); point the exporter at
//! #   `address: unix:///tmp/dockersim/h0.sock` and so on.
//! cargo run --release --example dockersim -- --hosts 2 --tcp 127.0.0.1:12375   # :12375, :12376
//! cargo run --release --example dockersim -- --check    # decode every answer with bollard
//! ```
//!
//! Options (`--help` lists them): `--hosts H`, `--containers N` per host, `--dir DIR` (one
//! unix socket per host, `DIR/hK.sock`, replaced if present and removed on exit) and/or
//! `--tcp IP:PORT` (host K on PORT+K), `--latency-ms MS` added before every answer,
//! `--hang-host K` (repeatable: host K accepts connections and reads requests but never
//! answers; with `--hang-after S` it answers normally for the first S seconds), `--churn R`
//! container events per second per host with `--churn-mode restart` (a running container
//! dies, then a container the churn stopped starts again, alternately) or `recreate` (create
//! a container, start it, destroy the oldest one; a running one dies first),
//! `--exited-percent P` (containers that start out exited), `--threads T` (runtime workers,
//! default 1 so that the simulator leaves the CPU to the process being measured).
//!
//! What it answers, like Docker 20.10.24 (API 1.41, cgroup v1, cgroupfs), with or without a
//! `/vX.Y` prefix (the exporter negotiates on `/version`, then uses `/v1.41/...`):
//!
//! - `GET|HEAD /_ping`: `OK`, with the `Api-Version` header.
//! - `GET /version`: `ApiVersion` 1.41, `MinAPIVersion` 1.12, `Version` 20.10.24.
//! - `GET /info`: container counts, `NCPU` 8, `MemTotal` 32 GiB, `CgroupVersion` "1",
//!   `CgroupDriver` "cgroupfs", `SystemTime` now.
//! - `GET /containers/json[?all=1]`: summaries (`Status` "Up 3 hours (healthy)" and so on,
//!   consistent with what inspect says of health).
//! - `GET /containers/{id}/json`: the full inspect document (by id, unique id prefix or name).
//! - `GET /containers/{id}/stats?stream=false&one-shot=true`: one cgroup v1 sample with
//!   `precpu_stats` zeroed (as Docker answers one-shot); `stream=false` alone fills
//!   `precpu_stats` with the figures of one second earlier (Docker waits that second; the
//!   simulator computes it at once); `stream=true` (the default) sends one line per second.
//!   A container that is not running answers Docker's all-zero sample. CPU, network and
//!   block I/O counters grow with the container's run time (and restart from zero when it
//!   starts again), at per-container rates; memory and CPU rate wander slowly.
//! - `GET /events[?since=S.NS][&filters=...]`: a chunked stream of JSON lines, one per event,
//!   quiet without `--churn`. `since` replays the retained events (the last 10,000) from that
//!   time; `filters` honours `type`, `event` and `container` (list or map form). `until` is
//!   not supported.
//!
//! Anything else answers 404 `{"message":"page not found"}`, an unknown container 404
//! `{"message":"No such container: ..."}`. Everything is deterministic for given options
//! (ids, names, rates), apart from the clock.

// serde_json's json! recurses once per key: /info and inspect are big.
#![recursion_limit = "512"]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use clap::{Parser, ValueEnum};
use futures_util::{StreamExt, stream};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

const API_VERSION: &str = "1.41";
const ENGINE_VERSION: &str = "20.10.24";
const KERNEL: &str = "6.1.0-28-amd64";
const NCPU: u32 = 8;
const MEM_TOTAL: u64 = 32 << 30;
/// What Docker reports as the cgroup v1 limit of an unlimited container.
const UNLIMITED: u64 = 9_223_372_036_854_771_712;
const NEVER: &str = "0001-01-01T00:00:00Z";
const RING: usize = 10_000;

#[derive(Debug, Clone, Parser)]
#[command(about = "Docker Engine API simulator for benchmarks (see the top of the source)")]
struct Args {
    /// Simulated Docker hosts.
    #[arg(long, default_value_t = 1)]
    hosts: usize,
    /// Containers per host.
    #[arg(long, default_value_t = 10)]
    containers: usize,
    /// Serve host K on the unix socket DIR/hK.sock.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Serve host K on TCP port PORT+K of this address.
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Delay added before every answer, milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Host that accepts connections but never answers (repeatable).
    #[arg(long)]
    hang_host: Vec<usize>,
    /// Hung hosts answer normally for this many seconds first.
    #[arg(long, default_value_t = 0.0)]
    hang_after: f64,
    /// Container events per second per host (0: the events stream stays quiet).
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// What the churn does.
    #[arg(long, value_enum, default_value_t = ChurnMode::Restart)]
    churn_mode: ChurnMode,
    /// Percentage of containers that start out exited.
    #[arg(long, default_value_t = 0)]
    exited_percent: u8,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Decode one of every answer with bollard's models, check the fields, and exit.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ChurnMode {
    /// die, then start again, of existing containers.
    Restart,
    /// create + start of new containers, destroy of the oldest.
    Recreate,
}

// ---------------------------------------------------------------------------------------
// Deterministic randomness and time formatting.

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from a seed.
fn unit(seed: u64) -> f64 {
    (splitmix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

fn hex64(seed: u64) -> String {
    (0..4)
        .map(|i| format!("{:016x}", splitmix(seed.wrapping_mul(31).wrapping_add(i))))
        .collect()
}

fn unix_f(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn unix_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// RFC 3339 with nanoseconds in UTC, as Docker writes times.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Docker's `units.HumanDuration`, as in `Up 3 hours`.
fn human(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (m, h) = (s / 60, s / 3600);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ => format!("{} months", h / 24 / 30),
    }
}

// ---------------------------------------------------------------------------------------
// The simulated fleet.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Created,
    Running,
    Exited,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Exited => "exited",
        }
    }
}

const IMAGES: &[(&str, &str)] = &[
    ("nginx:1.25", "/docker-entrypoint.sh nginx -g 'daemon off;'"),
    ("redis:7.2", "docker-entrypoint.sh redis-server"),
    ("postgres:16", "docker-entrypoint.sh postgres"),
    ("busybox:1.36", "sleep infinity"),
    ("ghcr.io/example/api:2.3.1", "/app/api --listen :8080"),
    ("ghcr.io/example/worker:2.3.1", "/app/worker"),
    ("python:3.12-slim", "python -m app"),
    ("node:20-alpine", "docker-entrypoint.sh node server.js"),
];
const SERVICES: &[&str] = &["web", "api", "worker", "db", "cache", "cron", "proxy"];

/// One container: identity, spec, state, and the rates its counters grow at.
#[derive(Debug, Clone)]
struct Container {
    serial: u64,
    id: String,
    name: String,
    image: usize,
    project: String,
    service: &'static str,
    created: SystemTime,
    state: RunState,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    exit_code: i64,
    pid: i64,
    restart_count: i64,
    health: Option<&'static str>,
    memory: i64,
    memory_swap: i64,
    nano_cpus: i64,
    cpu_quota: i64,
    cpu_period: i64,
    cpu_shares: i64,
    /// Cores used on average.
    cpu_rate: f64,
    mem_base: f64,
    mem_amp: f64,
    rx_rate: f64,
    tx_rate: f64,
    read_rate: f64,
    write_rate: f64,
    pids: u64,
    phase: f64,
}

impl Container {
    fn new(host: usize, serial: u64, now: SystemTime, exited: bool) -> Container {
        let seed = ((host as u64) << 32) | serial;
        let r = |k: u64| unit(seed.wrapping_mul(1_000_003).wrapping_add(k));
        let project = serial % 37;
        let service = SERVICES[(serial % SERVICES.len() as u64) as usize];
        let age = 3600.0 + r(1) * 30.0 * 86_400.0; // created 1 h .. 30 days ago
        let created = now - Duration::from_secs_f64(age);
        let started = created + Duration::from_secs_f64(r(2) * (age - 60.0) + 1.0);
        let memory = match serial % 3 {
            0 => 0,
            k => (256_i64 << 20) * (1 + k as i64 + (serial % 4) as i64),
        };
        let (nano_cpus, cpu_quota, cpu_period) = match serial % 5 {
            0 => (500_000_000, 0, 0),
            1 => (0, 50_000, 100_000),
            _ => (0, 0, 0),
        };
        let mem_base = 20e6 + r(3) * 380e6;
        let mem_base = if memory > 0 {
            mem_base.min(memory as f64 * 0.7)
        } else {
            mem_base
        };
        Container {
            serial,
            id: hex64(seed),
            name: format!("p{project:02}-{service}-{serial}"),
            image: (serial as usize * 7 + host) % IMAGES.len(),
            project: format!("p{project:02}"),
            service,
            created,
            state: if exited {
                RunState::Exited
            } else {
                RunState::Running
            },
            started_at: Some(started),
            finished_at: exited.then(|| started + Duration::from_secs_f64(r(4) * 3600.0)),
            exit_code: if exited {
                [0, 1, 137][serial as usize % 3]
            } else {
                0
            },
            pid: if exited {
                0
            } else {
                1000 + (seed % 4_000_000) as i64
            },
            restart_count: serial.is_multiple_of(11) as i64 * (serial % 4) as i64,
            health: match serial % 40 {
                0 => Some("unhealthy"),
                k if k % 4 == 0 => Some("healthy"),
                _ => None,
            },
            memory,
            memory_swap: if memory > 0 { memory * 2 } else { 0 },
            nano_cpus,
            cpu_quota,
            cpu_period,
            cpu_shares: if serial.is_multiple_of(7) { 512 } else { 0 },
            cpu_rate: 0.002 + r(5) * r(5) * 0.4,
            mem_base,
            mem_amp: mem_base * 0.1 * r(6),
            rx_rate: 500.0 + r(7) * 200e3,
            tx_rate: 200.0 + r(8) * 100e3,
            read_rate: r(9) * 20e3,
            write_rate: r(10) * 60e3,
            pids: 1 + (r(11) * 40.0) as u64,
            phase: r(12) * 100.0,
        }
    }

    fn image_name(&self) -> &'static str {
        IMAGES[self.image].0
    }

    fn image_id(&self) -> String {
        format!("sha256:{}", hex64(0xdead_0000 + self.image as u64))
    }

    fn labels(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("com.docker.compose.project".into(), json!(self.project));
        m.insert("com.docker.compose.service".into(), json!(self.service));
        m.insert(
            "com.docker.compose.container-number".into(),
            json!((self.serial % 5 + 1).to_string()),
        );
        m.insert("com.docker.compose.oneoff".into(), json!("False"));
        m.insert("com.docker.compose.version".into(), json!("2.24.6"));
        m.insert(
            "com.example.team".into(),
            json!(["core", "data", "edge"][self.serial as usize % 3]),
        );
        m
    }

    fn ip(&self) -> String {
        format!(
            "172.18.{}.{}",
            self.serial / 250 % 250,
            self.serial % 250 + 2
        )
    }

    /// Seconds of the current run at `now` (0 when not running).
    fn run_secs(&self, now: SystemTime) -> f64 {
        match (self.state, self.started_at) {
            (RunState::Running, Some(s)) => now.duration_since(s).map_or(0.0, |d| d.as_secs_f64()),
            _ => 0.0,
        }
    }

    fn status(&self, now: SystemTime) -> String {
        match self.state {
            RunState::Created => "Created".into(),
            RunState::Running => {
                let health = match self.health {
                    Some(h) => format!(" ({h})"),
                    None => String::new(),
                };
                format!("Up {}{health}", human(self.run_secs(now)))
            }
            RunState::Exited => {
                let since = self
                    .finished_at
                    .and_then(|f| now.duration_since(f).ok())
                    .map_or(0.0, |d| d.as_secs_f64());
                format!("Exited ({}) {} ago", self.exit_code, human(since))
            }
        }
    }
}

/// An event as sent on `/events`, with what filters look at.
#[derive(Debug)]
struct Event {
    nanos: i64,
    action: &'static str,
    id: String,
    name: String,
    line: Bytes,
}

#[derive(Debug, Default)]
struct Fleet {
    containers: BTreeMap<u64, Container>,
    by_id: HashMap<String, u64>,
    by_name: HashMap<String, u64>,
    next_serial: u64,
    ring: VecDeque<Arc<Event>>,
    /// Containers the restart churn stopped, oldest first.
    stopped: VecDeque<u64>,
    /// Container the recreate churn created and will start.
    created: Option<u64>,
    ticks: u64,
}

impl Fleet {
    fn insert(&mut self, c: Container) {
        self.by_id.insert(c.id.clone(), c.serial);
        self.by_name.insert(c.name.clone(), c.serial);
        self.containers.insert(c.serial, c);
    }

    fn remove(&mut self, serial: u64) -> Option<Container> {
        let c = self.containers.remove(&serial)?;
        self.by_id.remove(&c.id);
        self.by_name.remove(&c.name);
        Some(c)
    }

    /// By full id, name (with or without `/`) or unique id prefix, as Docker resolves.
    fn find(&self, key: &str) -> Option<&Container> {
        let key = key.trim_start_matches('/');
        if let Some(s) = self.by_id.get(key).or_else(|| self.by_name.get(key)) {
            return self.containers.get(s);
        }
        if key.is_empty() {
            return None;
        }
        let mut found = self.by_id.iter().filter(|(id, _)| id.starts_with(key));
        match (found.next(), found.next()) {
            (Some((_, s)), None) => self.containers.get(s),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Host {
    index: usize,
    daemon_id: String,
    boot: SystemTime,
    latency: Duration,
    hang_at: Option<Instant>,
    fleet: Mutex<Fleet>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Host {
    fn new(index: usize, args: &Args, started: Instant) -> Host {
        let now = SystemTime::now();
        let mut fleet = Fleet::default();
        for serial in 0..args.containers as u64 {
            let exited = (serial * 100 / args.containers.max(1) as u64)
                < u64::from(args.exited_percent.min(100));
            fleet.insert(Container::new(index, serial, now, exited));
        }
        fleet.next_serial = args.containers as u64;
        let id = hex64(0xb007 + index as u64).to_uppercase();
        Host {
            index,
            daemon_id: (0..12)
                .map(|i| id[i * 4..i * 4 + 4].to_string())
                .collect::<Vec<_>>()
                .join(":"),
            boot: now - Duration::from_secs(40 * 86_400 + index as u64 * 977),
            latency: Duration::from_millis(args.latency_ms),
            hang_at: args
                .hang_host
                .contains(&index)
                .then(|| started + Duration::from_secs_f64(args.hang_after.max(0.0))),
            fleet: Mutex::new(fleet),
            events: broadcast::channel(4096).0,
        }
    }

    fn fleet(&self) -> MutexGuard<'_, Fleet> {
        self.fleet.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hung(&self) -> bool {
        self.hang_at.is_some_and(|t| Instant::now() >= t)
    }

    // ---- answers ------------------------------------------------------------------------

    fn version(&self) -> Value {
        json!({
            "Platform": {"Name": "Docker Engine - Community"},
            "Components": [
                {"Name": "Engine", "Version": ENGINE_VERSION, "Details": {
                    "ApiVersion": API_VERSION, "Arch": "amd64", "BuildTime": "2023-04-14T10:32:03.000000000+00:00",
                    "Experimental": "false", "GitCommit": "5d6db84", "GoVersion": "go1.19.9",
                    "KernelVersion": KERNEL, "MinAPIVersion": "1.12", "Os": "linux"}},
                {"Name": "containerd", "Version": "1.6.20", "Details": {"GitCommit": "2806fc1"}},
                {"Name": "runc", "Version": "1.1.5", "Details": {"GitCommit": "v1.1.5-0-gf19387a"}},
                {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": "de40ad0"}}
            ],
            "Version": ENGINE_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": "1.12",
            "GitCommit": "5d6db84",
            "GoVersion": "go1.19.9",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": KERNEL,
            "BuildTime": "2023-04-14T10:32:03.000000000+00:00"
        })
    }

    fn info(&self) -> Value {
        let (total, running, stopped) = {
            let f = self.fleet();
            let running = f
                .containers
                .values()
                .filter(|c| c.state == RunState::Running)
                .count();
            (f.containers.len(), running, f.containers.len() - running)
        };
        json!({
            "ID": self.daemon_id,
            "Containers": total,
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": stopped,
            "Images": IMAGES.len(),
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                             ["Native Overlay Diff", "true"], ["userxattr", "false"]],
            "DockerRootDir": "/var/lib/docker",
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"],
                        "Authorization": null, "Log": ["awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "logentries", "splunk", "syslog"]},
            "MemoryLimit": true,
            "SwapLimit": true,
            "KernelMemoryTCP": true,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "IPv4Forwarding": true,
            "BridgeNfIptables": true,
            "BridgeNfIp6tables": true,
            "Debug": false,
            "NFd": 30 + 4 * total,
            "OomKillDisable": true,
            "NGoroutines": 40 + 6 * running,
            "SystemTime": rfc3339(SystemTime::now()),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "1",
            "NEventsListener": self.events.receiver_count(),
            "KernelVersion": KERNEL,
            "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
            "OSVersion": "12",
            "OSType": "linux",
            "Architecture": "x86_64",
            "IndexServerAddress": "https://index.docker.io/v1/",
            "NCPU": NCPU,
            "MemTotal": MEM_TOTAL,
            "GenericResources": null,
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": format!("sim-h{}", self.index),
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": ENGINE_VERSION,
            "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "io.containerd.runtime.v1.linux": {"path": "runc"}, "runc": {"path": "runc"}},
            "DefaultRuntime": "runc",
            "LiveRestoreEnabled": false,
            "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": "2806fc1", "Expected": "2806fc1"},
            "RuncCommit": {"ID": "v1.1.5-0-gf19387a", "Expected": "v1.1.5-0-gf19387a"},
            "InitCommit": {"ID": "de40ad0", "Expected": "de40ad0"},
            "SecurityOptions": ["name=apparmor", "name=seccomp,profile=default"],
            "Warnings": null
        })
    }

    fn summary(c: &Container, now: SystemTime) -> Value {
        let net = format!("{}_default", c.project);
        json!({
            "Id": c.id,
            "Names": [format!("/{}", c.name)],
            "Image": c.image_name(),
            "ImageID": c.image_id(),
            "Command": IMAGES[c.image].1,
            "Created": unix_f(c.created) as i64,
            "Ports": [],
            "Labels": c.labels(),
            "State": c.state.as_str(),
            "Status": c.status(now),
            "HostConfig": {"NetworkMode": net},
            "NetworkSettings": {"Networks": {net.clone(): {
                "IPAMConfig": null, "Links": null, "Aliases": null,
                "NetworkID": hex64(0x4e7 + c.serial % 37),
                "EndpointID": if c.state == RunState::Running { hex64(0xe9d + c.serial) } else { String::new() },
                "Gateway": if c.state == RunState::Running { "172.18.0.1" } else { "" },
                "IPAddress": if c.state == RunState::Running { c.ip() } else { String::new() },
                "IPPrefixLen": if c.state == RunState::Running { 16 } else { 0 },
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "MacAddress": "", "DriverOpts": null}}},
            "Mounts": []
        })
    }

    fn inspect(&self, c: &Container, now: SystemTime) -> Value {
        let running = c.state == RunState::Running;
        let net = format!("{}_default", c.project);
        let cmd: Vec<&str> = IMAGES[c.image].1.split(' ').collect();
        let dir = format!("/var/lib/docker/containers/{}", c.id);
        let layer = hex64(0x1a7e + c.serial);
        let mut state = json!({
            "Status": c.state.as_str(),
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": c.pid,
            "ExitCode": c.exit_code,
            "Error": "",
            "StartedAt": match (c.state, c.started_at) {
                (RunState::Created, _) | (_, None) => NEVER.to_string(),
                (_, Some(t)) => rfc3339(t),
            },
            "FinishedAt": c.finished_at.map_or(NEVER.to_string(), rfc3339),
        });
        if let Some(h) = c.health {
            let (code, streak, output) = if h == "healthy" {
                (0, 0, "ok\n")
            } else {
                (1, 3, "curl: (7) Failed to connect to localhost port 8080\n")
            };
            let t = now - Duration::from_secs(7);
            state["Health"] = json!({
                "Status": if running { h } else { "unhealthy" },
                "FailingStreak": streak,
                "Log": [{"Start": rfc3339(t), "End": rfc3339(t + Duration::from_millis(42)),
                         "ExitCode": code, "Output": output}]
            });
        }
        let mut config = json!({
            "Hostname": &c.id[..12],
            "Domainname": "",
            "User": "",
            "AttachStdin": false,
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": false,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    format!("SERVICE={}", c.service)],
            "Cmd": cmd,
            "Image": c.image_name(),
            "Volumes": null,
            "WorkingDir": "",
            "Entrypoint": null,
            "OnBuild": null,
            "Labels": c.labels(),
        });
        if c.service == "web" || c.service == "proxy" {
            config["ExposedPorts"] = json!({"80/tcp": {}});
        }
        if c.health.is_some() {
            config["Healthcheck"] = json!({"Test": ["CMD-SHELL", "curl -fsS localhost:8080/health"],
                "Interval": 30_000_000_000_i64, "Timeout": 5_000_000_000_i64, "Retries": 3});
        }
        json!({
            "Id": c.id,
            "Created": rfc3339(c.created),
            "Path": cmd[0],
            "Args": &cmd[1..],
            "State": state,
            "Image": c.image_id(),
            "ResolvConfPath": format!("{dir}/resolv.conf"),
            "HostnamePath": format!("{dir}/hostname"),
            "HostsPath": format!("{dir}/hosts"),
            "LogPath": format!("{dir}/{}-json.log", c.id),
            "Name": format!("/{}", c.name),
            "RestartCount": c.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "docker-default",
            "ExecIDs": null,
            "HostConfig": {
                "Binds": null,
                "ContainerIDFile": "",
                "LogConfig": {"Type": "json-file", "Config": {}},
                "NetworkMode": net,
                "PortBindings": {},
                "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                "AutoRemove": false,
                "VolumeDriver": "",
                "VolumesFrom": null,
                "CapAdd": null,
                "CapDrop": null,
                "CgroupnsMode": "host",
                "Dns": [],
                "DnsOptions": [],
                "DnsSearch": [],
                "ExtraHosts": null,
                "GroupAdd": null,
                "IpcMode": "private",
                "Cgroup": "",
                "Links": null,
                "OomScoreAdj": 0,
                "PidMode": "",
                "Privileged": false,
                "PublishAllPorts": false,
                "ReadonlyRootfs": false,
                "SecurityOpt": null,
                "UTSMode": "",
                "UsernsMode": "",
                "ShmSize": 67_108_864,
                "Runtime": "runc",
                "ConsoleSize": [0, 0],
                "Isolation": "",
                "CpuShares": c.cpu_shares,
                "Memory": c.memory,
                "NanoCpus": c.nano_cpus,
                "CgroupParent": "",
                "BlkioWeight": 0,
                "BlkioWeightDevice": null,
                "BlkioDeviceReadBps": null,
                "BlkioDeviceWriteBps": null,
                "BlkioDeviceReadIOps": null,
                "BlkioDeviceWriteIOps": null,
                "CpuPeriod": c.cpu_period,
                "CpuQuota": c.cpu_quota,
                "CpuRealtimePeriod": 0,
                "CpuRealtimeRuntime": 0,
                "CpusetCpus": "",
                "CpusetMems": "",
                "Devices": null,
                "DeviceCgroupRules": null,
                "DeviceRequests": null,
                "KernelMemory": 0,
                "KernelMemoryTCP": 0,
                "MemoryReservation": 0,
                "MemorySwap": c.memory_swap,
                "MemorySwappiness": null,
                "OomKillDisable": false,
                "PidsLimit": null,
                "Ulimits": null,
                "CpuCount": 0,
                "CpuPercent": 0,
                "IOMaximumIOps": 0,
                "IOMaximumBandwidth": 0,
                "MaskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                    "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
                "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                    "/proc/sysrq-trigger"]
            },
            "GraphDriver": {"Name": "overlay2", "Data": {
                "LowerDir": format!("/var/lib/docker/overlay2/{layer}-init/diff"),
                "MergedDir": format!("/var/lib/docker/overlay2/{layer}/merged"),
                "UpperDir": format!("/var/lib/docker/overlay2/{layer}/diff"),
                "WorkDir": format!("/var/lib/docker/overlay2/{layer}/work")}},
            "Mounts": [],
            "Config": config,
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": if running { hex64(0x5a9d + c.serial) } else { String::new() },
                "HairpinMode": false,
                "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0,
                "Ports": {},
                "SandboxKey": if running { format!("/var/run/docker/netns/{}", &hex64(0x5a9d + c.serial)[..12]) } else { String::new() },
                "SecondaryIPAddresses": null,
                "SecondaryIPv6Addresses": null,
                "EndpointID": "",
                "Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "IPAddress": "",
                "IPPrefixLen": 0,
                "IPv6Gateway": "",
                "MacAddress": "",
                "Networks": {net.clone(): {
                    "IPAMConfig": null,
                    "Links": null,
                    "Aliases": [c.service, &c.id[..12]],
                    "NetworkID": hex64(0x4e7 + c.serial % 37),
                    "EndpointID": if running { hex64(0xe9d + c.serial) } else { String::new() },
                    "Gateway": if running { "172.18.0.1" } else { "" },
                    "IPAddress": if running { c.ip() } else { String::new() },
                    "IPPrefixLen": if running { 16 } else { 0 },
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "MacAddress": if running { format!("02:42:ac:12:{:02x}:{:02x}", c.serial / 250 % 250, c.serial % 250 + 2) } else { String::new() },
                    "DriverOpts": null
                }}
            }
        })
    }

    /// CPU counters of a run `e` seconds old: (container ns, user ns, kernel ns).
    fn cpu_at(c: &Container, e: f64) -> (u64, u64, u64) {
        // The rate wanders between 0.5 and 1.5 times the mean; its integral never decreases.
        let work = c.cpu_rate * (e + 30.0 * (1.0 - ((e + c.phase) / 60.0).cos()))
            - c.cpu_rate * 30.0 * (1.0 - (c.phase / 60.0).cos());
        let total = (work.max(0.0) * 1e9) as u64;
        // USER_HZ granularity, as the kernel counts them.
        let user = total * 8 / 10 / 10_000_000 * 10_000_000;
        let kernel = total * 15 / 100 / 10_000_000 * 10_000_000;
        (total, user, kernel)
    }

    fn cpu_stats(&self, c: &Container, at: SystemTime) -> Value {
        let e = c.run_secs(at);
        let (total, user, kernel) = Self::cpu_at(c, e);
        let weights: Vec<u64> = (0..u64::from(NCPU))
            .map(|i| 1 + splitmix(c.serial + i) % 8)
            .collect();
        let sum: u64 = weights.iter().sum();
        let mut percpu: Vec<u64> = weights
            .iter()
            .map(|w| (u128::from(total) * u128::from(*w) / u128::from(sum)) as u64)
            .collect();
        let rest = total - percpu.iter().sum::<u64>();
        percpu[0] += rest;
        let uptime = at
            .duration_since(self.boot)
            .map_or(0.0, |d| d.as_secs_f64());
        let system = (uptime * 1e9 * f64::from(NCPU)) as u64 / 10_000_000 * 10_000_000;
        let (periods, throttled, throttled_ns) = if c.cpu_quota > 0 || c.nano_cpus > 0 {
            let p = (e * 10.0) as u64;
            (p, p / 9, p / 9 * 4_000_000)
        } else {
            (0, 0, 0)
        };
        json!({
            "cpu_usage": {"total_usage": total, "percpu_usage": percpu,
                          "usage_in_kernelmode": kernel, "usage_in_usermode": user},
            "system_cpu_usage": system,
            "online_cpus": NCPU,
            "throttling_data": {"periods": periods, "throttled_periods": throttled,
                                "throttled_time": throttled_ns}
        })
    }

    /// One stats sample: `precpu` None gives the one-shot answer (zeroed precpu).
    fn stats(&self, c: &Container, now: SystemTime, precpu: bool) -> Value {
        let zero_cpu = json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
        });
        if c.state != RunState::Running {
            return json!({
                "read": NEVER, "preread": NEVER,
                "pids_stats": {},
                "blkio_stats": {"io_service_bytes_recursive": null, "io_serviced_recursive": null,
                    "io_queue_recursive": null, "io_service_time_recursive": null,
                    "io_wait_time_recursive": null, "io_merged_recursive": null,
                    "io_time_recursive": null, "sectors_recursive": null},
                "num_procs": 0, "storage_stats": {},
                "cpu_stats": zero_cpu, "precpu_stats": zero_cpu,
                "memory_stats": {},
                "name": format!("/{}", c.name), "id": c.id
            });
        }
        let e = c.run_secs(now);
        let t = unix_f(now);
        let usage = (c.mem_base + c.mem_amp * ((t / 90.0) + c.phase).sin()).max(1e6) as u64;
        let cache = usage * 3 / 10 / 4096 * 4096;
        let rss = usage * 6 / 10 / 4096 * 4096;
        let inactive_file = cache / 2 / 4096 * 4096;
        let active_file = cache - inactive_file;
        let limit = if c.memory > 0 {
            c.memory as u64
        } else {
            MEM_TOTAL
        };
        let hier = if c.memory > 0 {
            c.memory as u64
        } else {
            UNLIMITED
        };
        let hier_sw = if c.memory_swap > 0 {
            c.memory_swap as u64
        } else {
            UNLIMITED
        };
        let pgfault = (e * 3.0) as u64 + 1000;
        let pgpgin = (e * 2.0) as u64 + 800;
        let mut m = Map::new();
        for (k, v) in [
            ("active_anon", rss / 2 / 4096 * 4096),
            ("active_file", active_file),
            ("cache", cache),
            ("dirty", 0),
            ("hierarchical_memory_limit", hier),
            ("hierarchical_memsw_limit", hier_sw),
            ("inactive_anon", rss - rss / 2 / 4096 * 4096),
            ("inactive_file", inactive_file),
            ("mapped_file", cache / 8 / 4096 * 4096),
            ("pgfault", pgfault),
            ("pgmajfault", pgfault / 500),
            ("pgpgin", pgpgin),
            ("pgpgout", pgpgin - pgpgin / 20),
            ("rss", rss),
            ("rss_huge", 0),
            ("unevictable", 0),
            ("writeback", 0),
        ] {
            m.insert(k.into(), json!(v));
            if k != "hierarchical_memory_limit" && k != "hierarchical_memsw_limit" {
                m.insert(format!("total_{k}"), json!(v));
            }
        }
        let rx = (c.rx_rate * e) as u64;
        let tx = (c.tx_rate * e) as u64;
        let read = (c.read_rate * e) as u64 / 4096 * 4096;
        let write = (c.write_rate * e) as u64 / 4096 * 4096;
        let io = |r: u64, w: u64| {
            json!([
                {"major": 8, "minor": 0, "op": "Read", "value": r},
                {"major": 8, "minor": 0, "op": "Write", "value": w},
                {"major": 8, "minor": 0, "op": "Sync", "value": w / 3},
                {"major": 8, "minor": 0, "op": "Async", "value": r + w - w / 3},
                {"major": 8, "minor": 0, "op": "Discard", "value": 0},
                {"major": 8, "minor": 0, "op": "Total", "value": r + w}
            ])
        };
        let (pre_read, pre_cpu) = if precpu {
            let before = now - Duration::from_secs(1);
            (rfc3339(before), self.cpu_stats(c, before))
        } else {
            (NEVER.to_string(), zero_cpu)
        };
        json!({
            "read": rfc3339(now),
            "preread": pre_read,
            "pids_stats": {"current": c.pids},
            "blkio_stats": {
                "io_service_bytes_recursive": io(read, write),
                "io_serviced_recursive": io(read / 16384, write / 8192),
                "io_queue_recursive": [], "io_service_time_recursive": [],
                "io_wait_time_recursive": [], "io_merged_recursive": [],
                "io_time_recursive": [], "sectors_recursive": []
            },
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": self.cpu_stats(c, now),
            "precpu_stats": pre_cpu,
            "memory_stats": {
                "usage": usage,
                "max_usage": (c.mem_base + c.mem_amp) as u64 + 4096 * 64,
                "stats": m,
                "limit": limit
            },
            "name": format!("/{}", c.name),
            "id": c.id,
            "networks": {"eth0": {
                "rx_bytes": rx, "rx_packets": rx / 700, "rx_errors": 0, "rx_dropped": 0,
                "tx_bytes": tx, "tx_packets": tx / 400, "tx_errors": 0, "tx_dropped": 0
            }}
        })
    }

    fn event(c: &Container, action: &'static str, at: SystemTime) -> Event {
        let mut attrs = c.labels();
        attrs.insert("image".into(), json!(c.image_name()));
        attrs.insert("name".into(), json!(c.name));
        if action == "die" {
            attrs.insert("exitCode".into(), json!(c.exit_code.to_string()));
        }
        let nanos = unix_nanos(at);
        let mut line = serde_json::to_vec(&json!({
            "status": action,
            "id": c.id,
            "from": c.image_name(),
            "Type": "container",
            "Action": action,
            "Actor": {"ID": c.id, "Attributes": attrs},
            "scope": "local",
            "time": nanos / 1_000_000_000,
            "timeNano": nanos
        }))
        .unwrap_or_default();
        line.push(b'\n');
        Event {
            nanos,
            action,
            id: c.id.clone(),
            name: c.name.clone(),
            line: line.into(),
        }
    }

    /// Records and broadcasts an event; the caller holds the fleet lock, so a new
    /// `/events` reader sees every event exactly once (replayed or live).
    fn emit(&self, fleet: &mut Fleet, serial: u64, action: &'static str) {
        let Some(c) = fleet.containers.get(&serial) else {
            return;
        };
        let ev = Arc::new(Self::event(c, action, SystemTime::now()));
        if fleet.ring.len() == RING {
            fleet.ring.pop_front();
        }
        fleet.ring.push_back(ev.clone());
        let _ = self.events.send(ev);
    }

    /// One churn step.
    fn churn(&self, mode: ChurnMode) {
        let now = SystemTime::now();
        let mut guard = self.fleet();
        let f = &mut *guard;
        f.ticks += 1;
        let pick = splitmix(f.ticks ^ ((self.index as u64) << 40));
        match mode {
            ChurnMode::Restart => {
                if f.ticks.is_multiple_of(2)
                    && let Some(serial) = f.stopped.pop_front()
                {
                    if let Some(c) = f.containers.get_mut(&serial) {
                        start(c, now);
                        self.emit(f, serial, "start");
                    }
                    return;
                }
                let running: Vec<u64> = f
                    .containers
                    .values()
                    .filter(|c| c.state == RunState::Running)
                    .map(|c| c.serial)
                    .collect();
                if running.is_empty() {
                    return;
                }
                let serial = running[(pick % running.len() as u64) as usize];
                if let Some(c) = f.containers.get_mut(&serial) {
                    stop(c, now, [0, 1, 137, 143][(pick >> 8) as usize % 4]);
                }
                self.emit(f, serial, "die");
                f.stopped.push_back(serial);
            }
            ChurnMode::Recreate => match f.ticks % 3 {
                1 => {
                    let serial = f.next_serial;
                    f.next_serial += 1;
                    let mut c = Container::new(self.index, serial, now, false);
                    c.state = RunState::Created;
                    c.created = now;
                    c.started_at = None;
                    c.pid = 0;
                    f.insert(c);
                    f.created = Some(serial);
                    self.emit(f, serial, "create");
                }
                2 => {
                    if let Some(serial) = f.created.take()
                        && let Some(c) = f.containers.get_mut(&serial)
                    {
                        start(c, now);
                        self.emit(f, serial, "start");
                    }
                }
                _ => {
                    let Some(&serial) = f.containers.keys().next() else {
                        return;
                    };
                    if f.containers[&serial].state == RunState::Running {
                        if let Some(c) = f.containers.get_mut(&serial) {
                            stop(c, now, 137);
                        }
                        self.emit(f, serial, "die");
                    }
                    self.emit(f, serial, "destroy");
                    f.remove(serial);
                }
            },
        }
    }
}

fn start(c: &mut Container, now: SystemTime) {
    c.state = RunState::Running;
    c.started_at = Some(now);
    c.finished_at = None;
    c.exit_code = 0;
    c.pid = 1000 + (splitmix(c.serial ^ unix_nanos(now) as u64) % 4_000_000) as i64;
}

fn stop(c: &mut Container, now: SystemTime, code: i64) {
    c.state = RunState::Exited;
    c.finished_at = Some(now);
    c.exit_code = code;
    c.pid = 0;
}

// ---------------------------------------------------------------------------------------
// HTTP.

fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static("Docker/20.10.24 (linux)"),
    );
    r
}

fn json_ok(v: &Value) -> Response {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    respond(StatusCode::OK, "application/json", Body::from(body))
}

fn error(status: StatusCode, message: &str) -> Response {
    let mut body = serde_json::to_vec(&json!({ "message": message })).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", Body::from(body))
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &axum::http::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

/// Docker's boolean query values: 1/true/True (and anything else but 0/false/empty).
fn truthy(q: &HashMap<String, String>, key: &str, default: bool) -> bool {
    match q.get(key).map(|v| v.to_ascii_lowercase()) {
        None => default,
        Some(v) => !matches!(v.as_str(), "" | "0" | "false" | "no"),
    }
}

/// `/v1.41/containers/json` -> `/containers/json`.
fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let v = &rest[..end];
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return &rest[end..];
        }
    }
    path
}

/// `since` as Docker takes it: `SECONDS[.NANOS]`.
fn parse_since(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    Some(secs * 1_000_000_000 + nanos)
}

#[derive(Debug, Default, Clone)]
struct EventFilter {
    types: Vec<String>,
    events: Vec<String>,
    containers: Vec<String>,
}

impl EventFilter {
    fn parse(raw: Option<&String>) -> EventFilter {
        let Some(v) = raw.and_then(|r| serde_json::from_str::<Value>(r).ok()) else {
            return EventFilter::default();
        };
        // Either {"type":["container"]} or the older {"type":{"container":true}}.
        let list = |key: &str| -> Vec<String> {
            match v.get(key) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                Some(Value::Object(o)) => o.keys().cloned().collect(),
                _ => Vec::new(),
            }
        };
        EventFilter {
            types: list("type"),
            events: list("event"),
            containers: list("container"),
        }
    }

    fn matches(&self, e: &Event) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == "container"))
            && (self.events.is_empty() || self.events.iter().any(|a| a == e.action))
            && (self.containers.is_empty()
                || self
                    .containers
                    .iter()
                    .any(|c| e.id.starts_with(c.as_str()) || *c == e.name))
    }
}

async fn handle(State(host): State<Arc<Host>>, req: Request) -> Response {
    if host.hung() {
        // Accepted and read, never answered.
        std::future::pending::<()>().await;
    }
    if !host.latency.is_zero() {
        tokio::time::sleep(host.latency).await;
    }
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return error(StatusCode::NOT_FOUND, "page not found");
    }
    let q = query(req.uri());
    let path = strip_version(req.uri().path());
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let now = SystemTime::now();
    match parts.as_slice() {
        ["_ping"] => {
            let mut r = respond(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                Body::from("OK"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        ["version"] => json_ok(&host.version()),
        ["info"] => json_ok(&host.info()),
        ["containers", "json"] => {
            let all = truthy(&q, "all", false);
            let list: Vec<Value> = {
                let f = host.fleet();
                // Newest first, as Docker lists.
                f.containers
                    .values()
                    .rev()
                    .filter(|c| all || c.state == RunState::Running)
                    .map(|c| Host::summary(c, now))
                    .collect()
            };
            json_ok(&Value::Array(list))
        }
        ["containers", id, "json"] => {
            let c = host.fleet().find(id).cloned();
            match c {
                Some(c) => json_ok(&host.inspect(&c, now)),
                None => error(StatusCode::NOT_FOUND, &format!("No such container: {id}")),
            }
        }
        ["containers", id, "stats"] => {
            let Some(c) = host.fleet().find(id).cloned() else {
                return error(StatusCode::NOT_FOUND, &format!("No such container: {id}"));
            };
            if !truthy(&q, "stream", true) {
                let one_shot = truthy(&q, "one-shot", false);
                return json_ok(&host.stats(&c, now, !one_shot));
            }
            // Streamed: a line at once, then one a second while the container exists.
            let id = c.id.clone();
            let lines = stream::unfold((host, id, true), |(host, id, first)| async move {
                if !first {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let c = host.fleet().find(&id).cloned()?;
                let mut line = serde_json::to_vec(&host.stats(&c, SystemTime::now(), true)).ok()?;
                line.push(b'\n');
                Some((Ok::<_, Infallible>(Bytes::from(line)), (host, id, false)))
            });
            respond(StatusCode::OK, "application/json", Body::from_stream(lines))
        }
        ["events"] => {
            let filter = EventFilter::parse(q.get("filters"));
            let since = q.get("since").and_then(|s| parse_since(s));
            let (replay, rx) = {
                let f = host.fleet();
                let rx = host.events.subscribe();
                let replay: Vec<Bytes> = match since {
                    Some(since) => f
                        .ring
                        .iter()
                        .filter(|e| e.nanos >= since && filter.matches(e))
                        .map(|e| e.line.clone())
                        .collect(),
                    None => Vec::new(),
                };
                (replay, rx)
            };
            let live = stream::unfold((rx, filter), |(mut rx, filter)| async move {
                loop {
                    match rx.recv().await {
                        Ok(e) if filter.matches(&e) => {
                            return Some((e.line.clone(), (rx, filter)));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            let body = stream::iter(replay).chain(live).map(Ok::<_, Infallible>);
            respond(StatusCode::OK, "application/json", Body::from_stream(body))
        }
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    }
}

// ---------------------------------------------------------------------------------------
// Self-check: every answer decodes into bollard's models with the fields the exporter reads.

fn check() -> Result<(), String> {
    use bollard::models::{
        ContainerInspectResponse, ContainerStateStatusEnum, ContainerStatsResponse,
        ContainerSummary, ContainerSummaryStateEnum, EventMessage, EventMessageTypeEnum,
        HealthStatusEnum, SystemInfo, SystemInfoCgroupVersionEnum, SystemVersion,
    };
    fn decode<T: serde::de::DeserializeOwned>(what: &str, v: &Value) -> Result<T, String> {
        serde_json::from_value(v.clone()).map_err(|e| format!("{what}: {e}"))
    }
    fn ensure(ok: bool, what: &str) -> Result<(), String> {
        if ok { Ok(()) } else { Err(what.to_string()) }
    }
    let args = Args::parse_from(["dockersim", "--containers", "40", "--exited-percent", "10"]);
    let host = Host::new(0, &args, Instant::now());
    let now = SystemTime::now();

    let v: SystemVersion = decode("version", &host.version())?;
    ensure(
        v.api_version.as_deref() == Some(API_VERSION),
        "version ApiVersion",
    )?;
    let i: SystemInfo = decode("info", &host.info())?;
    ensure(
        i.cgroup_version == Some(SystemInfoCgroupVersionEnum::_1),
        "info CgroupVersion",
    )?;
    ensure(
        i.ncpu == Some(i64::from(NCPU)) && i.system_time.is_some(),
        "info NCPU/SystemTime",
    )?;
    ensure(i.containers == Some(40), "info Containers")?;

    let f = host.fleet();
    let mut seen_health = false;
    for c in f.containers.values() {
        let s: ContainerSummary = decode("summary", &Host::summary(c, now))?;
        ensure(s.id.as_deref() == Some(&c.id), "summary Id")?;
        ensure(
            s.names == Some(vec![format!("/{}", c.name)]),
            "summary Names",
        )?;
        let want = match c.state {
            RunState::Running => ContainerSummaryStateEnum::RUNNING,
            RunState::Exited => ContainerSummaryStateEnum::EXITED,
            RunState::Created => ContainerSummaryStateEnum::CREATED,
        };
        ensure(s.state == Some(want), "summary State")?;

        let d: ContainerInspectResponse = decode("inspect", &host.inspect(c, now))?;
        let st = d.state.as_ref().ok_or("inspect State")?;
        ensure(
            st.running == Some(c.state == RunState::Running)
                && st.started_at.is_some()
                && st.pid.is_some(),
            "inspect State fields",
        )?;
        if c.state == RunState::Running {
            ensure(
                st.status == Some(ContainerStateStatusEnum::RUNNING),
                "inspect Status",
            )?;
            if let Some(h) = c.health {
                seen_health = true;
                let hs = st.health.as_ref().and_then(|h| h.status);
                let want = if h == "healthy" {
                    HealthStatusEnum::HEALTHY
                } else {
                    HealthStatusEnum::UNHEALTHY
                };
                ensure(hs == Some(want), "inspect Health")?;
                ensure(
                    s.status
                        .as_deref()
                        .is_some_and(|t| t.contains(&format!("({h})"))),
                    "summary Status health marker",
                )?;
            }
        }
        let hc = d.host_config.as_ref().ok_or("inspect HostConfig")?;
        ensure(
            hc.memory == Some(c.memory)
                && hc.cpu_quota == Some(c.cpu_quota)
                && hc.nano_cpus == Some(c.nano_cpus),
            "inspect HostConfig fields",
        )?;
        let cfg = d.config.as_ref().ok_or("inspect Config")?;
        ensure(
            cfg.image.as_deref() == Some(c.image_name())
                && cfg
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("com.docker.compose.project")),
            "inspect Config",
        )?;
        ensure(
            d.name.as_deref() == Some(&format!("/{}", c.name)) && d.image.is_some(),
            "inspect Name/Image",
        )?;

        for precpu in [false, true] {
            let r: ContainerStatsResponse = decode("stats", &host.stats(c, now, precpu))?;
            let cpu = r.cpu_stats.as_ref().ok_or("stats cpu_stats")?;
            let total = cpu.cpu_usage.as_ref().and_then(|u| u.total_usage);
            if c.state == RunState::Running {
                ensure(
                    total.is_some_and(|t| t > 0)
                        && cpu.system_cpu_usage.is_some()
                        && cpu.online_cpus == Some(NCPU),
                    "stats cpu",
                )?;
                let pre = r
                    .precpu_stats
                    .as_ref()
                    .and_then(|p| p.cpu_usage.as_ref())
                    .and_then(|u| u.total_usage);
                ensure(
                    if precpu {
                        pre.is_some_and(|p| p <= total.unwrap_or(0))
                    } else {
                        pre == Some(0)
                    },
                    "stats precpu",
                )?;
                let m = r.memory_stats.as_ref().ok_or("stats memory")?;
                ensure(
                    m.usage.is_some()
                        && m.limit.is_some()
                        && m.stats
                            .as_ref()
                            .is_some_and(|s| s.contains_key("total_inactive_file")),
                    "stats memory fields",
                )?;
                ensure(
                    r.networks
                        .as_ref()
                        .and_then(|n| n.get("eth0"))
                        .is_some_and(|n| n.rx_bytes.is_some()),
                    "stats networks",
                )?;
                ensure(
                    r.blkio_stats
                        .as_ref()
                        .and_then(|b| b.io_service_bytes_recursive.as_ref())
                        .is_some_and(|e| e.iter().any(|e| e.op.as_deref() == Some("Read"))),
                    "stats blkio",
                )?;
                ensure(
                    r.pids_stats.as_ref().and_then(|p| p.current).is_some(),
                    "stats pids",
                )?;
            } else {
                ensure(total == Some(0), "stats of a stopped container")?;
            }
        }
        // Counters grow.
        if c.state == RunState::Running {
            let later = now + Duration::from_secs(5);
            let (a, _, _) = Host::cpu_at(c, c.run_secs(now));
            let (b, _, _) = Host::cpu_at(c, c.run_secs(later));
            ensure(b > a, "cpu counter grows")?;
        }
        for action in ["die", "start", "create", "destroy"] {
            let e = Host::event(c, action, now);
            let m: EventMessage =
                serde_json::from_slice(&e.line).map_err(|e| format!("event: {e}"))?;
            ensure(
                m.typ == Some(EventMessageTypeEnum::CONTAINER)
                    && m.action.as_deref() == Some(action)
                    && m.actor.as_ref().and_then(|a| a.id.as_deref()) == Some(&c.id)
                    && m.time_nano.is_some(),
                "event fields",
            )?;
        }
    }
    ensure(seen_health, "some container has a health check")?;
    ensure(
        strip_version("/v1.41/containers/json") == "/containers/json"
            && strip_version("/containers/json") == "/containers/json"
            && strip_version("/version") == "/version"
            && strip_version("/v1.52/version") == "/version",
        "version prefix",
    )?;
    ensure(
        parse_since("1700000000.5") == Some(1_700_000_000_500_000_000),
        "since",
    )?;
    ensure(
        rfc3339(UNIX_EPOCH + Duration::new(1_709_251_199, 7)) == "2024-02-29T23:59:59.000000007Z",
        "rfc3339",
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------

fn main() {
    simulate(Args::parse());
}

/// Runs the simulator with these command-line arguments (the program name first) until
/// the process ends: what tests that embed this file (`tests/shards.rs`) call in a child
/// process of their own.
pub fn main_with(args: &[String]) {
    simulate(Args::parse_from(args));
}

fn simulate(args: Args) {
    if args.check {
        match check() {
            Ok(()) => {
                println!("dockersim --check: every answer decodes with bollard's models");
                return;
            }
            Err(e) => {
                eprintln!("dockersim --check failed: {e}");
                std::process::exit(1);
            }
        }
    }
    if args.dir.is_none() && args.tcp.is_none() {
        eprintln!("dockersim: give --dir DIR and/or --tcp IP:PORT (see --help)");
        std::process::exit(2);
    }
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("dockersim: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let started = Instant::now();
    let hosts: Vec<Arc<Host>> = (0..args.hosts)
        .map(|k| Arc::new(Host::new(k, &args, started)))
        .collect();
    let mut sockets = Vec::new();
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir)?;
    }
    for host in &hosts {
        let app = Router::new().fallback(handle).with_state(host.clone());
        if let Some(dir) = &args.dir {
            let path = dir.join(format!("h{}.sock", host.index));
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path)?;
            sockets.push(path);
            tokio::spawn(axum::serve(listener, app.clone()).into_future());
        }
        if let Some(base) = args.tcp {
            let mut addr = base;
            addr.set_port(base.port() + host.index as u16);
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tokio::spawn(axum::serve(listener, app).into_future());
        }
        if args.churn > 0.0 {
            let host = host.clone();
            let mode = args.churn_mode;
            let period = Duration::from_secs_f64(1.0 / args.churn);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if !host.hung() {
                        host.churn(mode);
                    }
                }
            });
        }
    }
    let mut where_ = Vec::new();
    if let Some(dir) = &args.dir {
        where_.push(format!(
            "unix {}/h0.sock..h{}.sock",
            dir.display(),
            args.hosts.saturating_sub(1)
        ));
    }
    if let Some(base) = args.tcp {
        where_.push(format!(
            "tcp {}:{}..{}",
            base.ip(),
            base.port(),
            base.port() as usize + args.hosts.saturating_sub(1)
        ));
    }
    println!(
        "dockersim: {} hosts x {} containers on {}; latency {} ms, churn {}/s ({:?}), hung {:?} after {} s; ready",
        args.hosts,
        args.containers,
        where_.join(" and "),
        args.latency_ms,
        args.churn,
        args.churn_mode,
        args.hang_host,
        args.hang_after
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
    Ok(())
}
