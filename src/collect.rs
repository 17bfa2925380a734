//! Collection from one host: connect (with backoff), follow `/events` to keep the container
//! inventory current, re-list now and then as a safety net, sample running containers with
//! one-shot stats at the interval, and publish a [`HostSnapshot`] after every change.
//!
//! A collector owns its inventory and its connection; nothing else touches them, so there
//! are no locks on the hot path. Sampling runs in its own task so that events are handled
//! while a slow stats call is still pending.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bollard::models::{
    ContainerInspectResponse, ContainerStatsResponse, ContainerSummary, EventMessage,
    EventMessageTypeEnum,
};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::task::JoinSet;

use crate::cgroup::{CgroupPaths, CgroupReader};
use crate::clock::{parse_rfc3339, unix_now};
use crate::config::{Endpoint, StatsSource, Validated};
use crate::docker::{Connection, DockerError, base_action};
use crate::instruments::HostInstruments;
use crate::lock::MutexExt;
use crate::snapshot::{
    ContainerMeta, ContainerSnapshot, ContainerState, EventCounts, Health, HostInfo, HostSnapshot,
    Lifecycle, SnapshotStore, Spec, StatsSources,
};
use crate::stats::{self, ContainerStats, CpuPoint, Sample};
use crate::store::Store;
use crate::streams::{Channel, Payload, StreamManager};

/// Which host to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Database id.
    pub id: i64,
    /// `host` label.
    pub name: Arc<str>,
    /// `client` label.
    pub client: Arc<str>,
    /// Where and how to connect.
    pub endpoint: Endpoint,
}

/// Collection settings shared by all hosts, taken from the `monitoring` and `metrics`
/// sections of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time between samples.
    pub interval: Duration,
    /// Time between full re-lists.
    pub relist_interval: Duration,
    /// Deadline of one Docker call.
    pub request_timeout: Duration,
    /// Stats (and inspect) calls in flight per host.
    pub concurrency: usize,
    /// Quick reconnect attempts.
    pub max_retries: u32,
    /// Delay between quick attempts.
    pub retry_delay: Duration,
    /// Cap of the slower retry.
    pub retry_max_delay: Duration,
    /// Label allowlist: (Docker key, Prometheus label name).
    pub labels: Arc<[(String, Arc<str>)]>,
    /// Where collectors publish events, host changes and stats for subscribers.
    pub streams: Arc<StreamManager>,
    /// Where each host's event cursor and lifecycle counts are kept across restarts.
    pub store: Option<Store>,
    /// Reads containers' cgroup files (`stats_source` auto or cgroup); None for api.
    pub cgroup: Option<Arc<CgroupReader>>,
    /// Warn about containers read through the API (`stats_source: cgroup`).
    pub warn_api_fallback: bool,
}

impl Settings {
    /// From a validated configuration, with the channels collectors publish on and the
    /// database that keeps their event cursors (None: nothing is kept).
    pub fn from_config(
        cfg: &Validated,
        streams: Arc<StreamManager>,
        store: Option<Store>,
    ) -> Settings {
        let m = &cfg.config.monitoring;
        Settings {
            interval: m.interval,
            relist_interval: m.relist_interval,
            request_timeout: m.request_timeout,
            concurrency: m.stats_concurrency.get(),
            max_retries: m.max_retries,
            retry_delay: m.retry_delay,
            retry_max_delay: m.retry_max_delay,
            labels: cfg
                .labels
                .iter()
                .map(|(k, n)| (k.clone(), Arc::from(n.as_str())))
                .collect(),
            streams,
            store,
            cgroup: (m.stats_source != StatsSource::Api)
                .then(|| Arc::new(CgroupReader::new(&m.cgroup_root, &m.proc_root))),
            warn_api_fallback: m.stats_source == StatsSource::Cgroup,
        }
    }

    /// Delay before reconnect attempt number `failures` (1 = after the first failure):
    /// `retry_delay` for the first `max_retries`, then doubling up to `retry_max_delay`.
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures <= self.max_retries {
            return self.retry_delay;
        }
        let doublings = (failures - self.max_retries).min(20);
        self.retry_delay
            .saturating_mul(1u32 << doublings)
            .min(self.retry_max_delay)
    }
}

/// Live state of a host's collector that others may read: its connection (for the
/// library's container operations) and whether its events stream is open.
#[derive(Debug, Default)]
pub struct HostStatus {
    conn: Mutex<Option<Arc<Connection>>>,
    events_open: AtomicBool,
    last_error: Mutex<Option<DockerError>>,
}

impl HostStatus {
    /// The current connection, when the host is up.
    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.conn.locked().clone()
    }

    /// Whether the events stream is open.
    pub fn events_open(&self) -> bool {
        self.events_open.load(Ordering::Relaxed)
    }

    /// The last failure, if the host is down or the last cycle failed.
    pub fn last_error(&self) -> Option<DockerError> {
        self.last_error.locked().clone()
    }

    fn set_connection(&self, c: Option<Arc<Connection>>) {
        *self.conn.locked() = c;
    }

    fn set_error(&self, e: Option<DockerError>) {
        *self.last_error.locked() = e;
    }
}

/// Marks the events stream open for as long as it lives.
struct EventsOpen(Arc<HostStatus>);

impl EventsOpen {
    fn new(s: &Arc<HostStatus>) -> Self {
        s.events_open.store(true, Ordering::Relaxed);
        EventsOpen(s.clone())
    }
}

impl Drop for EventsOpen {
    fn drop(&mut self) {
        self.0.events_open.store(false, Ordering::Relaxed);
    }
}

/// What decides whether a re-list must inspect a container again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListKey {
    state: ContainerState,
    health: Health,
    name: String,
    image_id: String,
}

impl ListKey {
    fn from_summary(s: &ContainerSummary) -> ListKey {
        let state = s
            .state
            .map(|st| ContainerState::parse(st.as_ref()))
            .unwrap_or(ContainerState::Unknown);
        // `Status` reads "Up 3 minutes (healthy)"; the marker is all the list says of health.
        let status = s.status.as_deref().unwrap_or("");
        let health = if state != ContainerState::Running {
            Health::None
        } else if status.contains("(healthy)") {
            Health::Healthy
        } else if status.contains("(unhealthy)") {
            Health::Unhealthy
        } else if status.contains("(health: starting)") {
            Health::Starting
        } else {
            Health::None
        };
        ListKey {
            state,
            health,
            name: s
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            image_id: s.image_id.clone().unwrap_or_default(),
        }
    }

    fn from_meta(m: &ContainerMeta) -> ListKey {
        ListKey {
            state: m.state,
            health: if m.state == ContainerState::Running {
                m.health
            } else {
                Health::None
            },
            name: m.name.clone(),
            image_id: m.image_id.clone(),
        }
    }
}

/// One container in the inventory.
#[derive(Debug)]
struct Entry {
    meta: Arc<ContainerMeta>,
    key: ListKey,
    /// `State.StartedAt` as Docker wrote it: a change means a new run.
    started_raw: String,
    prev: Option<CpuPoint>,
    stats: Option<Arc<Sample>>,
    /// Its cgroup files, when they can be read here (see [`crate::cgroup`]).
    cgroup: Option<Arc<CgroupPaths>>,
    /// The init pid `cgroup` was looked up for; a new run has a new pid.
    located_pid: i64,
    /// When an inspect answer last updated it: a re-list asked before keeps it.
    updated: Instant,
}

/// How late (in event time) an event may arrive after a newer one and still count. Docker
/// stamps an event's time before publishing it, so events logged concurrently can arrive a
/// little out of time order; a resume asks for this much before the newest event seen.
const EVENT_REORDER_NANOS: i64 = 2_000_000_000;

/// Position in the events stream, so a reconnect resumes where it stopped and an event
/// delivered twice is applied once.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct EventCursor {
    /// Newest event time seen (or the first contact's time).
    nanos: i64,
    /// First contact: nothing before it counts.
    #[serde(default)]
    start: i64,
    /// Events seen within [`EVENT_REORDER_NANOS`] of `nanos`: (time, actor id, action).
    #[serde(default)]
    recent: Vec<(i64, String, String)>,
}

/// What a host's collector keeps in SQLite: the event cursor and the counts built from the
/// events before it, saved together so that a restart resumes exactly where they stop.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct EventState {
    cursor: EventCursor,
    /// (type, action, count).
    events: Vec<(String, String, u64)>,
    /// Per container id.
    containers: BTreeMap<String, Arc<Lifecycle>>,
}

impl EventCursor {
    /// First contact at `nanos` (the daemon's clock): events from then on count.
    fn begin(&mut self, nanos: i64) {
        self.nanos = nanos;
        self.start = nanos;
        self.recent.clear();
    }

    /// Oldest event time still accepted (and asked for again on resume).
    fn floor(&self) -> i64 {
        self.start
            .max(self.nanos.saturating_sub(EVENT_REORDER_NANOS))
            .max(0)
    }

    fn accept(&mut self, ev: &EventMessage) -> bool {
        let nanos = ev
            .time_nano
            .or(ev.time.map(|t| t.saturating_mul(1_000_000_000)))
            .unwrap_or(0);
        let id = ev
            .actor
            .as_ref()
            .and_then(|a| a.id.clone())
            .unwrap_or_default();
        let action = ev.action.clone().unwrap_or_default();
        if nanos < self.floor()
            || self
                .recent
                .iter()
                .any(|(n, i, a)| *n == nanos && *i == id && *a == action)
        {
            return false;
        }
        self.recent.push((nanos, id, action));
        if nanos > self.nanos {
            self.nanos = nanos;
            let floor = self.floor();
            self.recent.retain(|(n, _, _)| *n >= floor);
        }
        true
    }

    /// `since` for `/events`: seconds.nanoseconds of [`EventCursor::floor`].
    fn since(&self) -> Option<String> {
        (self.nanos > 0).then(|| {
            let at = self.floor();
            format!("{}.{:09}", at / 1_000_000_000, at % 1_000_000_000)
        })
    }
}

/// A container to sample: its id, its cgroup files when they can be read here, and the CPU
/// point of its current run that the new answer is reduced against.
struct Target {
    id: String,
    cgroup: Option<Arc<CgroupPaths>>,
    prev: Option<CpuPoint>,
}

/// One container's stats answer, already reduced to a [`Sample`] where it arrived: the
/// decoded answer (~5 KB) is dropped at once instead of waiting for the host's whole cycle.
enum Answer {
    /// A sample, and the point the run's next sample is reduced against.
    Sample(Arc<Sample>, Option<CpuPoint>),
    /// An answer without figures: it stopped between list and stats.
    Empty,
    /// No answer (the stream ended) or 404: it is gone or going.
    Gone,
    /// The call failed.
    Failed(DockerError),
}

impl Answer {
    fn reduce(
        r: Result<Option<ContainerStatsResponse>, DockerError>,
        prev: Option<&CpuPoint>,
        seen_at: SystemTime,
    ) -> Answer {
        match r {
            Ok(Some(raw)) => {
                let (s, point) = stats::sample(&raw, prev, seen_at);
                if s.is_empty() {
                    Answer::Empty
                } else {
                    Answer::Sample(Arc::new(s), point)
                }
            }
            Ok(None) => Answer::Gone,
            Err(e) if e.status == Some(404) => Answer::Gone,
            Err(e) => Answer::Failed(e),
        }
    }

    fn host_down(&self) -> bool {
        matches!(self, Answer::Failed(e) if e.kind.is_host_down())
    }
}

/// One container's answer and the point it was reduced against.
struct Sampled {
    id: String,
    prev: Option<CpuPoint>,
    answer: Answer,
}

/// What one sampling task brings back.
#[derive(Default)]
struct Cycle {
    sampled: Vec<Sampled>,
    /// Set when calls kept failing and the ping that followed failed too: the host is down.
    down: Option<DockerError>,
}

/// Collects one host until dropped.
pub struct Collector {
    spec: HostSpec,
    settings: Settings,
    status: Arc<HostStatus>,
    snapshots: Arc<SnapshotStore>,
    instruments: Arc<HostInstruments>,
    inventory: BTreeMap<String, Entry>,
    info: Option<Arc<HostInfo>>,
    cursor: EventCursor,
    // Shared with the published snapshots; copied only when an event changes them.
    events: Arc<EventCounts>,
    lifecycle: BTreeMap<String, Arc<Lifecycle>>,
    /// Latest [`EventState`] (JSON) for the saver task; latest wins.
    saver: Option<tokio::sync::watch::Sender<String>>,
    /// Whether the last cycle succeeded, for `health_changed` host events.
    healthy: Option<bool>,
    /// How long the last full cycle took and whether it succeeded; publishes between
    /// cycles (events) repeat it. None until the first cycle on a connection.
    last_cycle: Option<(Duration, bool)>,
    /// Whether every call since the current cycle began succeeded (inspects and re-lists
    /// answer in the background, between samples).
    cycle_ok: bool,
    /// Containers with an inspect in flight.
    inspecting: HashMap<String, Inspecting>,
    /// Bounds the background inspects of this host (`stats_concurrency`): a re-list that
    /// finds thousands of new containers does not open thousands of calls.
    permits: Arc<tokio::sync::Semaphore>,
}

/// A container with an inspect in flight, and what happened since it was asked.
#[derive(Debug, Default)]
struct Inspecting {
    /// More events came: inspect once more when the answer is in.
    again: bool,
    /// Destroyed meanwhile: the answer is stale.
    gone: bool,
    /// Sample it as soon as it is running (it was just started).
    first_sample: bool,
}

/// Docker calls the collector started and whose answers the loop applies as they come.
enum Job {
    /// A full list, and `/info`, asked at `asked`.
    Relist {
        asked: Instant,
        list: Result<Vec<ContainerSummary>, DockerError>,
        info: Option<Box<bollard::models::SystemInfo>>,
    },
    /// One container's inspect; `down` when it failed as if the host were down and a ping
    /// failed too.
    Inspect {
        id: String,
        result: Result<Box<ContainerInspectResponse>, DockerError>,
        down: Option<DockerError>,
    },
    /// A ping.
    Ping {
        after: PingFor,
        result: Result<(), DockerError>,
    },
}

/// Why a ping was made.
#[derive(Debug, Clone, Copy)]
enum PingFor {
    /// The events stream ended: is the daemon still there?
    EventsEnded,
    /// A cycle with nothing to sample.
    EmptyCycle,
}

async fn relist_job(conn: Arc<Connection>) -> Job {
    let asked = Instant::now();
    let list = conn.list_containers(true).await;
    let info = match &list {
        Ok(_) => conn.info().await.ok().map(Box::new),
        Err(_) => None,
    };
    Job::Relist { asked, list, info }
}

async fn inspect_job(
    conn: Arc<Connection>,
    permits: Arc<tokio::sync::Semaphore>,
    id: String,
) -> Job {
    // The semaphore is never closed; without a permit the call just goes ahead.
    let _permit = permits.acquire_owned().await.ok();
    let result = conn.inspect(&id).await.map(Box::new);
    let down = match &result {
        Err(e) if e.kind.is_host_down() => conn.ping().await.err(),
        _ => None,
    };
    Job::Inspect { id, result, down }
}

async fn ping_job(conn: Arc<Connection>, after: PingFor) -> Job {
    Job::Ping {
        after,
        result: conn.ping().await,
    }
}

impl Collector {
    /// A collector for `spec`; nothing happens until [`Collector::run`].
    pub fn new(
        spec: HostSpec,
        settings: Settings,
        status: Arc<HostStatus>,
        snapshots: Arc<SnapshotStore>,
        instruments: Arc<HostInstruments>,
    ) -> Collector {
        let settings_concurrency = settings.concurrency.max(1);
        Collector {
            spec,
            settings,
            status,
            snapshots,
            instruments,
            inventory: BTreeMap::new(),
            info: None,
            cursor: EventCursor::default(),
            events: Arc::default(),
            lifecycle: BTreeMap::new(),
            saver: None,
            healthy: None,
            last_cycle: None,
            cycle_ok: true,
            inspecting: HashMap::new(),
            permits: Arc::new(tokio::sync::Semaphore::new(settings_concurrency)),
        }
    }

    /// Loads the saved cursor and counts and starts the task that saves them.
    async fn restore(&mut self) {
        let Some(store) = self.settings.store.clone() else {
            return;
        };
        match store.event_state(self.spec.id).await {
            Ok(Some(text)) => match serde_json::from_str::<EventState>(&text) {
                Ok(state) => {
                    self.cursor = state.cursor;
                    self.events = Arc::new(
                        state
                            .events
                            .into_iter()
                            .map(|(t, a, n)| ((t, a), n))
                            .collect(),
                    );
                    self.lifecycle = state.containers;
                    tracing::info!(host = %self.spec.name, since = ?self.cursor.since(),
                        "resuming Docker events from the saved cursor");
                }
                Err(e) => tracing::warn!(host = %self.spec.name, error = %e,
                    "saved event state unreadable; starting afresh"),
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(host = %self.spec.name, error = %e, "cannot read the saved event state")
            }
        }
        let (tx, mut rx) = tokio::sync::watch::channel(String::new());
        let host_id = self.spec.id;
        let host = self.spec.name.clone();
        tokio::spawn(async move {
            // Ends when the collector (and so the sender) is dropped.
            while rx.changed().await.is_ok() {
                let state = rx.borrow_and_update().clone();
                if let Err(e) = store.save_event_state(host_id, state).await {
                    tracing::warn!(host = %host, error = %e, "cannot save the event state");
                }
            }
        });
        self.saver = Some(tx);
    }

    fn save(&self) {
        let Some(tx) = &self.saver else { return };
        let state = EventState {
            cursor: self.cursor.clone(),
            events: self
                .events
                .iter()
                .map(|((t, a), n)| (t.clone(), a.clone(), *n))
                .collect(),
            containers: self.lifecycle.clone(),
        };
        match serde_json::to_string(&state) {
            Ok(text) => {
                let _ = tx.send(text);
            }
            Err(e) => {
                tracing::warn!(host = %self.spec.name, error = %e, "cannot encode the event state")
            }
        }
    }

    fn host_event(&self, event: &str, detail: Option<String>) {
        self.settings.streams.publish(
            Channel::HostEvents,
            &self.spec.name,
            &self.spec.client,
            unix_now(),
            Payload::Host {
                event: event.to_string(),
                detail,
            },
        );
    }

    /// Counts an accepted event, keeps per-container exits and OOM kills, and publishes it.
    fn record_event(&mut self, ev: &EventMessage) {
        let typ = ev.typ.map(|t| t.to_string()).unwrap_or_default();
        let raw_action = ev.action.clone().unwrap_or_default();
        let action = base_action(&raw_action).to_string();
        let actor_id = ev
            .actor
            .as_ref()
            .and_then(|a| a.id.clone())
            .unwrap_or_default();
        let attributes: BTreeMap<String, String> = ev
            .actor
            .as_ref()
            .and_then(|a| a.attributes.clone())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        *Arc::make_mut(&mut self.events)
            .entry((typ.clone(), action.clone()))
            .or_insert(0) += 1;
        if typ == "container" {
            match action.as_str() {
                "die" => {
                    let code = attributes
                        .get("exitCode")
                        .and_then(|c| c.parse::<i64>().ok())
                        .unwrap_or(-1);
                    let l = Arc::make_mut(self.lifecycle.entry(actor_id.clone()).or_default());
                    *l.exits.entry(code).or_insert(0) += 1;
                    l.last_exit_code = Some(code);
                }
                "oom" => {
                    Arc::make_mut(self.lifecycle.entry(actor_id.clone()).or_default()).oom_events +=
                        1
                }
                "destroy" => {
                    self.lifecycle.remove(&actor_id);
                }
                _ => {}
            }
        }
        let time = ev
            .time_nano
            .map(|n| n as f64 / 1e9)
            .or(ev.time.map(|t| t as f64))
            .unwrap_or_else(unix_now);
        let payload = Payload::Event {
            typ: typ.clone(),
            action: raw_action,
            actor_id,
            attributes,
        };
        let streams = &self.settings.streams;
        if let Some(channel) = Channel::for_event_type(&typ) {
            streams.publish(
                channel,
                &self.spec.name,
                &self.spec.client,
                time,
                payload.clone(),
            );
        }
        streams.publish(
            Channel::DockerEvents,
            &self.spec.name,
            &self.spec.client,
            time,
            payload,
        );
        self.save();
    }

    /// Connects and collects forever, reconnecting with backoff after failures.
    pub async fn run(mut self) {
        self.restore().await;
        let mut failures: u32 = 0;
        loop {
            let started = Instant::now();
            let err = match Connection::open(
                &self.spec.endpoint,
                self.settings.request_timeout,
                self.instruments.clone(),
            )
            .await
            {
                Ok(conn) => {
                    failures = 0;
                    let conn = Arc::new(conn);
                    tracing::info!(host = %self.spec.name, client = %self.spec.client, api = %conn.daemon.api_version,
                        version = %conn.daemon.server_version, "connected");
                    self.info = Some(Arc::new(host_info(&conn, conn.daemon.info.as_ref())));
                    if self.cursor.nanos == 0 {
                        // First contact: events from now on count (in the daemon's clock).
                        let at = conn
                            .daemon
                            .info
                            .as_ref()
                            .and_then(|i| i.system_time.as_deref())
                            .and_then(parse_rfc3339)
                            .map(|t| (t * 1e9) as i64)
                            .unwrap_or_else(|| (unix_now() * 1e9) as i64);
                        self.cursor.begin(at);
                        self.save();
                    }
                    self.status.set_connection(Some(conn.clone()));
                    self.host_event("connected", None);
                    let err = self.monitor(&conn).await;
                    self.status.set_connection(None);
                    self.host_event("disconnected", Some(err.to_string()));
                    err
                }
                Err(e) => {
                    self.host_event("error", Some(e.to_string()));
                    e
                }
            };
            self.healthy = None;
            self.last_cycle = None;
            // The connection's background calls ended with it.
            self.inspecting.clear();
            failures = failures.saturating_add(1);
            let delay = self.settings.backoff(failures);
            tracing::warn!(host = %self.spec.name, client = %self.spec.client, kind = %err.kind, error = %err.message,
                retry_in = ?delay, "host unreachable");
            self.inventory.clear();
            self.status.set_error(Some(err.clone()));
            self.snapshots.publish(HostSnapshot::down(
                self.spec.id,
                self.spec.name.clone(),
                self.spec.client.clone(),
                self.info.clone(),
                err,
                started.elapsed(),
                self.events.clone(),
            ));
            tokio::time::sleep(delay).await;
        }
    }

    /// Collects over one connection; returns the failure that ended it.
    ///
    /// The loop only ever waits for the next thing to happen: an event, a tick, or the
    /// answer of work it started (a sampling cycle, an inspect, a re-list, a ping). Docker
    /// calls run as tasks of their own, so an event is recorded and published the moment it
    /// arrives, whatever the calls it triggers take.
    async fn monitor(&mut self, conn: &Arc<Connection>) -> DockerError {
        // Subscribe before listing so that nothing happening in between is missed.
        let mut events = Box::pin(conn.events(self.cursor.since()));
        let mut events_open = Some(EventsOpen::new(&self.status));
        let mut events_retry: Option<tokio::time::Instant> = None;

        let cycle_start = Instant::now();
        self.cycle_ok = match self.relist(conn).await {
            Ok(ok) => ok,
            Err(e) if e.kind.is_host_down() => return e,
            // The daemon answers, the list failed (too large, say): events and the next
            // re-list carry on, the cycle counts as failed.
            Err(e) => {
                tracing::warn!(kind = %e.kind, error = %e.message, "container list failed");
                false
            }
        };
        let mut next_relist = Instant::now() + self.settings.relist_interval;
        let mut sampling: JoinSet<Cycle> = JoinSet::new();
        // First samples of containers just started (see `inspected`).
        let mut first_samples: JoinSet<Cycle> = JoinSet::new();
        let mut jobs: JoinSet<Job> = JoinSet::new();
        let mut relisting = false;
        let mut cycle_ping = false;
        sampling.spawn(sample_task(
            conn.clone(),
            self.running_targets(),
            self.settings.concurrency,
            self.settings.cgroup.clone(),
        ));
        let mut cycle_started = cycle_start;

        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.settings.interval,
            self.settings.interval,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            tokio::select! {
                _ = tick.tick(), if sampling.is_empty() && !cycle_ping => {
                    cycle_started = Instant::now();
                    self.cycle_ok = true;
                    if Instant::now() >= next_relist && !relisting {
                        next_relist = Instant::now() + self.settings.relist_interval;
                        relisting = true;
                        jobs.spawn(relist_job(conn.clone()));
                    }
                    let targets = self.running_targets();
                    if targets.is_empty() {
                        // Nothing to sample: make sure the host is still there.
                        cycle_ping = true;
                        jobs.spawn(ping_job(conn.clone(), PingFor::EmptyCycle));
                    } else {
                        sampling.spawn(sample_task(
                            conn.clone(),
                            targets,
                            self.settings.concurrency,
                            self.settings.cgroup.clone(),
                        ));
                    }
                }
                Some(done) = sampling.join_next(), if !sampling.is_empty() => {
                    let results = match done {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::error!(error = %e, "sampling task failed");
                            Cycle::default()
                        }
                    };
                    match self.apply_samples(conn, &mut jobs, results) {
                        Ok(samples_ok) => {
                            let ok = self.cycle_ok && samples_ok;
                            self.publish(Some((cycle_started.elapsed(), ok)));
                        }
                        Err(e) => return e,
                    }
                }
                Some(done) = first_samples.join_next(), if !first_samples.is_empty() => {
                    let Ok(results) = done else { continue };
                    match self.apply_samples(conn, &mut jobs, results) {
                        Ok(_) => self.publish(None),
                        Err(e) => return e,
                    }
                }
                Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                    let job = match done {
                        Ok(job) => job,
                        Err(e) => {
                            tracing::error!(error = %e, "collection task failed");
                            continue;
                        }
                    };
                    match job {
                        Job::Relist { asked, list, info } => {
                            relisting = false;
                            match self.relisted(conn, &mut jobs, asked, list, info) {
                                Ok(changed) => {
                                    if changed {
                                        self.publish(None);
                                    }
                                }
                                Err(e) => return e,
                            }
                        }
                        Job::Inspect { id, result, down } => {
                            if let Some(e) = down {
                                return e;
                            }
                            if let Some(first) = self.inspected(conn, &mut jobs, id, result) {
                                first_samples.spawn(first);
                            }
                            self.publish(None);
                        }
                        Job::Ping { after, result } => match (after, result) {
                            (_, Err(e)) => return e,
                            (PingFor::EmptyCycle, Ok(())) => {
                                cycle_ping = false;
                                let ok = self.cycle_ok;
                                self.publish(Some((cycle_started.elapsed(), ok)));
                            }
                            (PingFor::EventsEnded, Ok(())) => {
                                // The daemon is there but the stream ended: reopen it shortly.
                                events_retry = Some(
                                    tokio::time::Instant::now() + self.settings.retry_delay,
                                );
                            }
                        },
                    }
                }
                ev = events.next(), if events_open.is_some() => match ev {
                    Some(Ok(ev)) => {
                        if !self.cursor.accept(&ev) {
                            continue;
                        }
                        self.record_event(&ev);
                        if self.on_event(conn, &mut jobs, &ev) {
                            self.publish(None);
                        }
                    }
                    end => {
                        events_open = None;
                        if let Some(Err(e)) = &end {
                            tracing::warn!(error = %e, "events stream failed");
                        }
                        jobs.spawn(ping_job(conn.clone(), PingFor::EventsEnded));
                    }
                },
                _ = sleep_until(events_retry), if events_retry.is_some() => {
                    events_retry = None;
                    events = Box::pin(conn.events(self.cursor.since()));
                    events_open = Some(EventsOpen::new(&self.status));
                    // Catch up on whatever happened while the stream was closed.
                    next_relist = Instant::now();
                }
            }
        }
    }

    /// Running and paused containers with their cgroup files where readable.
    fn running_targets(&self) -> Vec<Target> {
        self.inventory
            .iter()
            .filter(|(_, e)| e.meta.state.is_live())
            .map(|(id, e)| Target {
                id: id.clone(),
                cgroup: e.cgroup.clone(),
                prev: e.prev,
            })
            .collect()
    }

    /// Full list: drops containers gone, inspects new and changed ones, refreshes /info.
    /// Ok(false) when some inspect failed.
    async fn relist(&mut self, conn: &Arc<Connection>) -> Result<bool, DockerError> {
        let list = conn.list_containers(true).await?;
        let mut seen = HashSet::with_capacity(list.len());
        let mut changed = Vec::new();
        for s in &list {
            let Some(id) = &s.id else { continue };
            seen.insert(id.as_str());
            let key = ListKey::from_summary(s);
            if self.inventory.get(id).is_none_or(|e| e.key != key) {
                changed.push(id.clone());
            }
        }
        self.inventory.retain(|id, _| seen.contains(id.as_str()));
        let ok = self.inspect_many(conn, changed).await?;
        match conn.info().await {
            Ok(info) => self.info = Some(Arc::new(host_info(conn, Some(&info)))),
            Err(e) if e.kind.is_host_down() => return Err(e),
            Err(_) => {}
        }
        Ok(ok)
    }

    /// Inspects containers with bounded concurrency and updates the inventory as each answer
    /// arrives. Ok(false) when some inspect failed; Err when the host is down.
    async fn inspect_many(
        &mut self,
        conn: &Arc<Connection>,
        ids: Vec<String>,
    ) -> Result<bool, DockerError> {
        let mut ok = true;
        let host = self.spec.name.clone();
        call_each(
            conn,
            ids,
            self.settings.concurrency,
            |id| {
                let conn = conn.clone();
                async move {
                    let r = conn.inspect(&id).await;
                    (id, r)
                }
            },
            |(_, r)| matches!(r, Err(e) if e.kind.is_host_down()),
            |(id, r)| match r {
                Ok(i) => self.upsert(&i),
                Err(e) if e.status == Some(404) => {
                    self.inventory.remove(&id);
                }
                Err(e) => {
                    tracing::debug!(host = %host, container = %id, error = %e, "inspect failed");
                    ok = false;
                }
            },
        )
        .await?;
        Ok(ok)
    }

    /// Applies an inspect answer; a new run (StartedAt changed) or a stop drops the previous
    /// sample so rates never span two runs.
    fn upsert(&mut self, i: &ContainerInspectResponse) {
        let Some((meta, started_raw)) = meta_from_inspect(i, &self.settings.labels) else {
            return;
        };
        let key = ListKey::from_meta(&meta);
        let id = meta.id.clone();
        let pid = if meta.state.is_live() {
            i.state.as_ref().and_then(|s| s.pid).unwrap_or(0)
        } else {
            0
        };
        let locate = |entry_pid: i64, current: &Option<Arc<CgroupPaths>>| {
            if pid == entry_pid {
                return current.clone();
            }
            let reader = self.settings.cgroup.as_ref()?;
            if pid <= 0 {
                return None;
            }
            let mode = i
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.as_deref())
                .unwrap_or("default");
            let found = reader.locate(&id, pid, mode).map(Arc::new);
            if found.is_none() && self.settings.warn_api_fallback {
                tracing::warn!(host = %self.spec.name, container = %meta.name, pid,
                    "stats_source cgroup: cannot read this container's cgroup files here; using the API");
            }
            found
        };
        match self.inventory.get_mut(&id) {
            Some(e) => {
                if e.started_raw != started_raw || !meta.state.is_live() {
                    e.prev = None;
                    e.stats = None;
                }
                e.cgroup = locate(e.located_pid, &e.cgroup);
                e.located_pid = pid;
                e.updated = Instant::now();
                e.started_raw = started_raw;
                e.key = key;
                if *e.meta != meta {
                    e.meta = Arc::new(meta);
                }
            }
            None => {
                let cgroup = locate(0, &None);
                self.inventory.insert(
                    id,
                    Entry {
                        meta: Arc::new(meta),
                        key,
                        started_raw,
                        prev: None,
                        stats: None,
                        cgroup,
                        located_pid: pid,
                        updated: Instant::now(),
                    },
                );
            }
        }
    }

    /// Applies one cycle's samples; containers whose answer says they stopped or went are
    /// inspected again (in the background). Ok(false) when some call failed; Err when the
    /// host turned out to be gone.
    fn apply_samples(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        cycle: Cycle,
    ) -> Result<bool, DockerError> {
        let mut ok = true;
        let mut recheck = Vec::new();
        let mut last_err = None;
        for Sampled { id, prev, answer } in cycle.sampled {
            let Some(entry) = self.inventory.get_mut(&id) else {
                continue;
            };
            if entry.prev != prev {
                // Reduced against a point this run no longer has (it restarted, or a first
                // sample landed meanwhile): its rate would span the wrong interval.
                continue;
            }
            match answer {
                Answer::Gone => recheck.push(id),
                Answer::Empty => {
                    // Stopped between list and stats: find out what it is now.
                    entry.prev = None;
                    entry.stats = None;
                    recheck.push(id);
                }
                Answer::Sample(s, point) => {
                    entry.prev = point;
                    let streams = &self.settings.streams;
                    if streams.wants(Channel::ContainerStats) {
                        streams.publish(
                            Channel::ContainerStats,
                            &self.spec.name,
                            &self.spec.client,
                            s.seen_at,
                            Payload::Stats {
                                container_id: entry.meta.id.clone(),
                                container_name: entry.meta.name.clone(),
                                stats: ContainerStats::of(&s),
                            },
                        );
                    }
                    entry.stats = Some(s);
                }
                Answer::Failed(e) => {
                    tracing::debug!(container = %id, error = %e, "stats failed");
                    ok = false;
                    last_err = Some(e);
                }
            }
        }
        if let Some(e) = cycle.down {
            return Err(e);
        }
        if let Some(e) = last_err {
            self.status.set_error(Some(e));
        }
        for id in recheck {
            self.request_inspect(conn, jobs, id, false);
        }
        Ok(ok)
    }

    /// Keeps the inventory current from one event, without waiting: a destroyed container
    /// leaves at once, others are inspected in the background. True when it changed now.
    fn on_event(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        ev: &EventMessage,
    ) -> bool {
        if ev.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return false;
        }
        let (Some(action), Some(id)) = (
            ev.action.as_deref(),
            ev.actor.as_ref().and_then(|a| a.id.as_deref()),
        ) else {
            return false;
        };
        let action = base_action(action);
        tracing::debug!(container = %id, action, "container event");
        match action {
            "destroy" => {
                // An inspect still running for it answers from before: drop that answer.
                if let Some(p) = self.inspecting.get_mut(id) {
                    p.gone = true;
                }
                self.inventory.remove(id).is_some()
            }
            "create" | "start" | "restart" | "die" | "pause" | "unpause" | "oom" | "update"
            | "rename" | "health_status" => {
                // Visible as running at once after a start, with a first sample right away
                // rather than at the next tick.
                let first = matches!(action, "start" | "restart" | "unpause");
                self.request_inspect(conn, jobs, id.to_string(), first);
                false
            }
            _ => false,
        }
    }

    /// Inspects a container in the background. While one inspect of it runs, more requests
    /// only mark it to be inspected once more when that one answers: each container has at
    /// most one call in flight, and the answer applied last always comes from a call made
    /// after the last event. `first_sample` asks for a sample as soon as it is running.
    fn request_inspect(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        id: String,
        first_sample: bool,
    ) {
        match self.inspecting.get_mut(&id) {
            Some(p) => {
                p.again = true;
                p.first_sample |= first_sample;
            }
            None => {
                self.inspecting.insert(
                    id.clone(),
                    Inspecting {
                        first_sample,
                        ..Inspecting::default()
                    },
                );
                jobs.spawn(inspect_job(conn.clone(), self.permits.clone(), id));
            }
        }
    }

    /// Applies a background inspect; returns a first-sample task to run when the container
    /// was just started and is running.
    fn inspected(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        id: String,
        result: Result<Box<ContainerInspectResponse>, DockerError>,
    ) -> Option<impl Future<Output = Cycle> + use<>> {
        let pending = self.inspecting.remove(&id).unwrap_or_default();
        if pending.gone {
            return None;
        }
        match result {
            Ok(i) => self.upsert(&i),
            Err(e) if e.status == Some(404) => {
                self.inventory.remove(&id);
            }
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "inspect failed");
                self.cycle_ok = false;
            }
        }
        if pending.again {
            self.request_inspect(conn, jobs, id.clone(), pending.first_sample);
            return None;
        }
        let entry = self.inventory.get(&id)?;
        (pending.first_sample && entry.meta.state == ContainerState::Running).then(|| {
            sample_task(
                conn.clone(),
                vec![Target {
                    id,
                    cgroup: entry.cgroup.clone(),
                    prev: entry.prev,
                }],
                1,
                self.settings.cgroup.clone(),
            )
        })
    }

    /// Applies a background re-list asked at `asked`: containers not listed leave (unless
    /// an answer newer than the list brought them), new and changed ones are inspected in
    /// the background. Ok(true) when the inventory changed now.
    fn relisted(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        asked: Instant,
        list: Result<Vec<ContainerSummary>, DockerError>,
        info: Option<Box<bollard::models::SystemInfo>>,
    ) -> Result<bool, DockerError> {
        let list = match list {
            Ok(l) => l,
            Err(e) if e.kind.is_host_down() => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "re-list failed");
                self.cycle_ok = false;
                return Ok(false);
            }
        };
        if let Some(info) = info {
            self.info = Some(Arc::new(host_info(conn, Some(&info))));
        }
        let mut seen = HashSet::with_capacity(list.len());
        for s in &list {
            let Some(id) = &s.id else { continue };
            seen.insert(id.as_str());
            let key = ListKey::from_summary(s);
            if self.inventory.get(id).is_none_or(|e| e.key != key) {
                self.request_inspect(conn, jobs, id.clone(), false);
            }
        }
        let before = self.inventory.len();
        self.inventory
            .retain(|id, e| seen.contains(id.as_str()) || e.updated >= asked);
        Ok(self.inventory.len() != before)
    }

    /// Publishes the inventory as the host's snapshot. `cycle` is a full cycle's duration
    /// and success; None (an event changed something between cycles) repeats the last
    /// cycle's.
    fn publish(&mut self, cycle: Option<(Duration, bool)>) {
        let Some((took, success)) = cycle.or(self.last_cycle) else {
            // Nothing sampled yet on this connection: the first cycle publishes.
            return;
        };
        let full_cycle = cycle.is_some();
        self.last_cycle = Some((took, success));
        if full_cycle && self.healthy.is_some_and(|h| h != success) {
            let detail = if success {
                "healthy".to_string()
            } else {
                format!(
                    "degraded: {}",
                    self.status
                        .last_error()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                )
            };
            self.host_event("health_changed", Some(detail));
        }
        if full_cycle {
            self.healthy = Some(success);
        }
        let mut containers: Vec<ContainerSnapshot> = self
            .inventory
            .values()
            .map(|e| ContainerSnapshot {
                meta: e.meta.clone(),
                stats: e.stats.clone(),
                lifecycle: self.lifecycle.get(&e.meta.id).cloned(),
            })
            .collect();
        containers.sort_by(|a, b| (&a.meta.name, &a.meta.id).cmp(&(&b.meta.name, &b.meta.id)));
        let mut counts = BTreeMap::new();
        for c in &containers {
            *counts.entry(c.meta.state).or_insert(0) += 1;
        }
        let mut stats_sources = StatsSources::default();
        for e in self.inventory.values() {
            if e.meta.state.is_live() {
                if e.cgroup.is_some() {
                    stats_sources.cgroup += 1;
                } else {
                    stats_sources.api += 1;
                }
            }
        }
        if full_cycle && success {
            self.status.set_error(None);
        }
        self.snapshots.publish(HostSnapshot {
            id: self.spec.id,
            name: self.spec.name.clone(),
            client: self.spec.client.clone(),
            up: true,
            info: self.info.clone(),
            error: if success {
                None
            } else {
                self.status.last_error()
            },
            containers,
            container_counts: counts,
            built_at: SystemTime::now(),
            collection_duration: took,
            collection_success: success,
            events: self.events.clone(),
            stats_sources,
            monitored: true,
            attempted: true,
        });
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One cycle's samples: cgroup files read in one blocking batch, then Docker's one-shot
/// stats, `concurrency` at a time, for the others and for any whose files vanished (it
/// stopped meanwhile: the API answer says so the usual way). Each answer is reduced to a
/// [`Sample`] as it arrives.
async fn sample_task(
    conn: Arc<Connection>,
    targets: Vec<Target>,
    concurrency: usize,
    reader: Option<Arc<CgroupReader>>,
) -> Cycle {
    let mut cycle = Cycle {
        sampled: Vec::with_capacity(targets.len()),
        down: None,
    };
    let (mut files, mut api) = (Vec::new(), Vec::new());
    for t in targets {
        match (&reader, t.cgroup.clone()) {
            (Some(_), Some(paths)) => files.push((paths, t)),
            _ => api.push(t),
        }
    }
    if let (Some(reader), false) = (reader, files.is_empty()) {
        let read = tokio::task::spawn_blocking(move || {
            let seen_at = SystemTime::now();
            reader.read_many(
                files,
                |(paths, _)| paths,
                |(_, t), r| match r {
                    Ok(raw) => Ok(Sampled {
                        answer: Answer::reduce(Ok(Some(raw)), t.prev.as_ref(), seen_at),
                        id: t.id,
                        prev: t.prev,
                    }),
                    Err(_) => Err(t),
                },
            )
        })
        .await;
        match read {
            Ok(read) => {
                for r in read {
                    match r {
                        Ok(s) => cycle.sampled.push(s),
                        Err(t) => api.push(t),
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cgroup read task failed"),
        }
    }
    // Every container read from files: no call has shown the daemon is still answering.
    let ping = api.is_empty();
    let down = call_each(
        &conn,
        api,
        concurrency,
        |t| {
            let conn = conn.clone();
            async move {
                let r = conn.stats(&t.id).await;
                Sampled {
                    answer: Answer::reduce(r, t.prev.as_ref(), SystemTime::now()),
                    id: t.id,
                    prev: t.prev,
                }
            }
        },
        |s| s.answer.host_down(),
        |s| cycle.sampled.push(s),
    )
    .await;
    cycle.down = match down {
        Ok(()) if ping => conn.ping().await.err(),
        r => r.err(),
    };
    cycle
}

/// Runs `call` on every item, at most `concurrency` at a time, and hands each result to
/// `each` as it arrives. After a call fails as if the host were down (timeout, refused
/// connection), no new call starts until one in flight succeeds; when none does, one ping
/// decides. A daemon that hangs mid-cycle is so found within one timeout plus a ping,
/// instead of a timeout per `concurrency` containers (minutes for a few hundred); a daemon
/// that answers the ping was only slow for those calls, and the rest go ahead. Err is the
/// failed ping: the host is down.
async fn call_each<I, O, Fut>(
    conn: &Connection,
    items: impl IntoIterator<Item = I>,
    concurrency: usize,
    call: impl Fn(I) -> Fut,
    host_down: impl Fn(&O) -> bool,
    mut each: impl FnMut(O),
) -> Result<(), DockerError>
where
    Fut: Future<Output = O>,
{
    let limit = concurrency.max(1);
    let mut items = items.into_iter();
    let mut running = FuturesUnordered::new();
    // Host-down failures since the last success.
    let mut failing = 0usize;
    loop {
        while failing == 0 && running.len() < limit {
            let Some(item) = items.next() else { break };
            running.push(call(item));
        }
        let Some(out) = running.next().await else {
            break;
        };
        if host_down(&out) {
            failing += 1;
        } else {
            failing = 0;
        }
        each(out);
        if failing > 0 && running.is_empty() {
            conn.ping().await?;
            failing = 0;
        }
    }
    Ok(())
}

fn host_info(conn: &Connection, info: Option<&bollard::models::SystemInfo>) -> HostInfo {
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    HostInfo {
        server_version: conn.daemon.server_version.clone(),
        api_version: conn.daemon.api_version.clone(),
        operating_system: text(info.and_then(|i| i.operating_system.as_ref())),
        os_type: text(info.and_then(|i| i.os_type.as_ref())),
        architecture: text(info.and_then(|i| i.architecture.as_ref())),
        kernel_version: text(info.and_then(|i| i.kernel_version.as_ref())),
        cgroup_version: info
            .and_then(|i| i.cgroup_version)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        cgroup_driver: info
            .and_then(|i| i.cgroup_driver)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        ncpu: info
            .and_then(|i| i.ncpu)
            .and_then(|n| u64::try_from(n).ok()),
        mem_total: info
            .and_then(|i| i.mem_total)
            .and_then(|n| u64::try_from(n).ok()),
    }
}

/// CFS period Docker uses when only `--cpus` is given.
const DEFAULT_CFS_PERIOD_US: u64 = 100_000;

/// Builds what we keep of a container from its inspect answer, with its raw StartedAt.
fn meta_from_inspect(
    i: &ContainerInspectResponse,
    allow: &[(String, Arc<str>)],
) -> Option<(ContainerMeta, String)> {
    let id = i.id.clone()?;
    let config = i.config.as_ref();
    let labels = config.and_then(|c| c.labels.as_ref());
    let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
    let state = i.state.as_ref();
    let status = state
        .and_then(|s| s.status)
        .map(|s| ContainerState::parse(s.as_ref()))
        .unwrap_or(ContainerState::Unknown);
    let started_raw = state.and_then(|s| s.started_at.clone()).unwrap_or_default();
    let hc = i.host_config.as_ref();
    let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
    let nano_cpus = positive(hc.and_then(|h| h.nano_cpus));
    let (cpu_quota, cpu_period) = match (nano_cpus, positive(hc.and_then(|h| h.cpu_quota))) {
        (Some(n), _) => (
            Some(n * DEFAULT_CFS_PERIOD_US / 1_000_000_000),
            Some(DEFAULT_CFS_PERIOD_US),
        ),
        (None, Some(q)) => (
            Some(q),
            Some(positive(hc.and_then(|h| h.cpu_period)).unwrap_or(DEFAULT_CFS_PERIOD_US)),
        ),
        (None, None) => (None, None),
    };
    let meta = ContainerMeta {
        name: i
            .name
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string(),
        image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
        image_id: i.image.clone().unwrap_or_default(),
        compose_project: label("com.docker.compose.project"),
        compose_service: label("com.docker.compose.service"),
        labels: allow
            .iter()
            .filter_map(|(key, name)| label(key).map(|v| (name.clone(), v)))
            .collect(),
        state: status,
        health: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .map(|h| Health::parse(h.as_ref()))
            .unwrap_or(Health::None),
        restart_count: i
            .restart_count
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        exit_code: match status {
            ContainerState::Exited | ContainerState::Dead => state.and_then(|s| s.exit_code),
            _ => None,
        },
        started_at: parse_rfc3339(&started_raw),
        spec: Spec {
            memory_limit: positive(hc.and_then(|h| h.memory)).unwrap_or(0),
            cpu_quota,
            cpu_period,
            cpu_shares: positive(hc.and_then(|h| h.cpu_shares)).unwrap_or(1024),
        },
        id,
    };
    Some((meta, started_raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            interval: Duration::from_secs(5),
            relist_interval: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            concurrency: 4,
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(30),
            labels: Arc::from(vec![(
                "com.example.team".to_string(),
                Arc::from("container_label_com_example_team"),
            )]),
            streams: Arc::default(),
            store: None,
            cgroup: None,
            warn_api_fallback: false,
        }
    }

    #[test]
    fn backoff_is_quick_then_doubles_to_the_cap() {
        let s = settings();
        let delays: Vec<u64> = (1..=9).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 1, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(s.backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn event_cursor_dedupes_and_resumes() {
        let ev = |nanos: i64, id: &str, action: &str| EventMessage {
            time_nano: Some(nanos),
            action: Some(action.into()),
            actor: Some(bollard::models::EventActor {
                id: Some(id.into()),
                attributes: None,
            }),
            ..Default::default()
        };
        let mut c = EventCursor::default();
        assert_eq!(c.since(), None);
        c.begin(4_500_000_000);
        assert!(
            !c.accept(&ev(4_000_000_000, "z", "start")),
            "before first contact"
        );
        assert!(c.accept(&ev(5_000_000_001, "a", "start")));
        assert!(
            c.accept(&ev(5_000_000_001, "b", "start")),
            "same instant, other container"
        );
        assert!(!c.accept(&ev(5_000_000_001, "a", "start")), "replayed");
        assert!(c.accept(&ev(6_000_000_000, "a", "die")));
        // Docker stamps events before publishing them: a slightly older one arriving after
        // a newer one still counts, once.
        assert!(c.accept(&ev(5_999_999_000, "c", "create")), "out of order");
        assert!(!c.accept(&ev(5_999_999_000, "c", "create")), "replayed");
        assert!(c.accept(&ev(9_000_000_000, "a", "start")));
        assert!(
            !c.accept(&ev(6_000_000_000, "a", "die")),
            "older than the reorder window"
        );
        assert_eq!(c.recent.len(), 1, "only the window is kept: {:?}", c.recent);
        // A resume asks again for the window before the newest event; what it replays is
        // known and skipped.
        assert_eq!(c.since().as_deref(), Some("7.000000000"));
        assert!(!c.accept(&ev(9_000_000_000, "a", "start")));
    }

    #[test]
    fn meta_from_a_real_inspect_answer() {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/inspect-running.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let i: ContainerInspectResponse = serde_json::from_str(&text).expect("decodes");
        let (m, raw) = meta_from_inspect(&i, &settings().labels).expect("meta");
        assert_eq!(m.state, ContainerState::Running);
        assert_eq!(m.name, "dockstat-fixture");
        assert_eq!(m.image, "dockstat-test/busybox:latest");
        assert!(m.image_id.starts_with("sha256:"));
        assert_eq!(m.spec.memory_limit, 64 * 1024 * 1024);
        assert_eq!(
            (m.spec.cpu_quota, m.spec.cpu_period),
            (Some(50_000), Some(100_000)),
            "--cpus 0.5"
        );
        assert_eq!(m.spec.cpu_shares, 1024);
        assert_eq!(
            m.labels,
            vec![(
                Arc::from("container_label_com_example_team"),
                "core".to_string()
            )]
        );
        assert_eq!(m.compose_project.as_deref(), Some("shop"));
        assert_eq!(m.exit_code, None);
        assert!(m.started_at.expect("started") > 1.7e9);
        assert!(raw.ends_with('Z'));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
    }
}
