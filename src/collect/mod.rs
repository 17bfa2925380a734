//! Collection from one host: connect (with backoff), follow `/events` to keep the container
//! inventory current, re-list now and then as a safety net, sample running containers with
//! one-shot stats at the interval, and publish a [`HostSnapshot`] after every change.
//!
//! A collector owns its inventory and its connection; nothing else touches them, so there
//! are no locks on the hot path. Sampling runs in its own task so that events are handled
//! while a slow stats call is still pending. Its log lines carry the host and client
//! through the `collector` span the pool runs it in.
//!
//! - this module: the [`Collector`] and its loop ([`Collector::run`]), what it is given
//!   ([`HostSpec`], [`Settings`]) and shows others ([`HostStatus`]), and publishing.
//! - `events`: the events stream's cursor (resume, dedupe), what each event counts and
//!   publishes, and what it changes in the inventory.
//! - `inventory`: the containers known: list, inspect, the host's `/info`.
//! - `sampling`: which containers to sample, one cycle of stats calls or cgroup reads
//!   (`call_each` bounds them), each answer reduced to a sample.
//! - `disk`: one disk usage pass (`/system/df`, and the writable layers' upper directories
//!   where the exporter sees them), run one at a time on its own interval and deadline.

mod disk;
mod events;
mod inventory;
mod sampling;
mod settings;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bollard::models::ContainerInspectResponse;
use futures_util::StreamExt;
use tokio::task::JoinSet;

use crate::cgroup::CpuTopology;
use crate::clock::{parse_rfc3339, unix_now};
use crate::config::filter::HostFilter;
use crate::docker::{Connection, DockerError};
use crate::instruments::HostInstruments;
use crate::snapshot::{
    ContainerSnapshot, DiskUsage, EventCounts, HostInfo, HostSnapshot, Lifecycle, SnapshotStore,
    StatsSources,
};
use crate::streams::{Channel, Payload};
use disk::{DiskPass, DiskTarget, disk_pass};
use events::EventCursor;
use inventory::{Entry, Inspecting, host_info, relist_job};
use sampling::{Cycle, sample_task};
use status::EventsOpen;
pub use status::HostStatus;

pub use settings::{DiskSettings, HostSpec, Settings};

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
    /// The last disk usage pass.
    disk: Option<Arc<DiskUsage>>,
    /// Bounds the background inspects of this host (`stats_concurrency`): a re-list that
    /// finds thousands of new containers does not open thousands of calls.
    permits: Arc<tokio::sync::Semaphore>,
    /// This machine's CPU topology, read once the host shows it runs here (a container read
    /// from its cgroup files); `Some(None)` when the files do not tell.
    topology: Option<Option<CpuTopology>>,
    /// Which containers are followed; the others are dropped from the inventory.
    filter: HostFilter,
}

/// Docker calls the collector started and whose answers the loop applies as they come.
enum Job {
    /// A full list, and `/info`, asked at `asked`.
    Relist {
        asked: Instant,
        list: Result<Vec<inventory::Listed>, DockerError>,
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
        let filter = settings.containers.for_host(&spec.client, &spec.name);
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
            disk: None,
            permits: Arc::new(tokio::sync::Semaphore::new(settings_concurrency)),
            topology: None,
            filter,
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
                    tracing::info!(api = %conn.daemon.api_version,
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
            tracing::warn!(kind = %err.kind, error = %err.message, retry_in = ?delay,
                "host unreachable");
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
        // Disk usage: one pass at a time, the first soon after connecting.
        let mut disk_passes: JoinSet<DiskPass> = JoinSet::new();
        let mut next_disk = self
            .settings
            .disk
            .map(|d| tokio::time::Instant::now() + d.interval.min(Duration::from_secs(10)));
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
                _ = sleep_until(next_disk), if next_disk.is_some() && disk_passes.is_empty() => {
                    if let Some(d) = self.settings.disk {
                        next_disk = Some(tokio::time::Instant::now() + d.interval);
                        disk_passes.spawn(disk_pass(
                            conn.clone(),
                            self.disk_targets(),
                            self.is_local(),
                            d.timeout,
                        ));
                    }
                }
                Some(done) = disk_passes.join_next(), if !disk_passes.is_empty() => {
                    match done {
                        // A failed pass (a slow df timing out, say) says nothing of the
                        // host's health: sampling and the events stream tell that.
                        Ok(pass) => {
                            self.disk = Some(disk::after(self.disk.as_ref(), pass));
                            self.publish(None);
                        }
                        Err(e) => tracing::error!(error = %e, "disk usage task failed"),
                    }
                }
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
        if stats_sources.cgroup > 0 {
            self.add_topology();
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
            disk: self.disk.clone(),
            monitored: true,
            attempted: true,
        });
    }

    /// What a disk usage pass needs of each container.
    fn disk_targets(&self) -> Vec<DiskTarget> {
        self.inventory
            .values()
            .map(|e| DiskTarget {
                id: e.meta.id.clone(),
                upper_dir: e.upper_dir.clone(),
                log_path: e.log_path.clone(),
                image_id: e.meta.image_id.clone(),
            })
            .collect()
    }

    /// Whether the exporter sees the daemon's file system: the host is a unix socket, or
    /// the cgroup stats source found a container's files here (the same machine). A pass
    /// then measures what it can here; each directory that cannot be read falls back to
    /// Docker's figure.
    fn is_local(&self) -> bool {
        matches!(self.spec.endpoint.address, crate::config::Address::Unix(_))
            || self.inventory.values().any(|e| e.cgroup.is_some())
    }
}

impl Collector {
    /// Adds this machine's CPU topology to the host's facts: `/info` tells logical CPUs only,
    /// and the local files are the host's own only when its containers are read from them.
    fn add_topology(&mut self) {
        let Some(reader) = &self.settings.cgroup else {
            return;
        };
        let topology = *self.topology.get_or_insert_with(|| reader.cpu_topology());
        let Some(t) = topology else { return };
        if let Some(info) = &self.info
            && info.cpu_sockets.is_none()
        {
            let mut with = HostInfo::clone(info);
            with.cpu_physical_cores = Some(t.physical_cores);
            with.cpu_sockets = Some(t.sockets);
            self.info = Some(Arc::new(with));
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
