//! One [`Reading`] of everything a scrape or an export shows, and `walk`, which finds each
//! series of a family in it and hands it to a `Sink`. `/metrics` and the OTLP export are
//! the two sinks, so both carry the same series.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::instruments::{ExportOutcome, HistogramFigures, HostInstruments, Instruments};
use crate::process::ProcessStats;
use crate::snapshot::{
    ContainerSnapshot, ContainerState, HostSnapshot, InfoLabel, Snapshot, SnapshotStore,
};

use super::Selection;
use super::family::{Family, PoolFigures, Series};

/// Something that reports pool figures at scrape time. Why a trait: the pool sits above
/// the exports in the layers, so they ask through this rather than name it.
pub trait PoolSource: Send + Sync + fmt::Debug + 'static {
    /// Current figures.
    fn figures(&self) -> PoolFigures;
}

/// What a scrape or an export reads, each time anew: the snapshot, the live
/// self-instrumentation and the pool. `/metrics` and the OTLP export hold one each.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The snapshot.
    pub snapshots: Arc<SnapshotStore>,
    /// Self-instrumentation; OTLP export outcomes are counted here.
    pub instruments: Arc<Instruments>,
    /// Pool figures.
    pub pool: Arc<dyn PoolSource>,
    /// The families exported (`metrics.disable`).
    pub selection: Arc<Selection>,
}

impl Inputs {
    /// Reads them now.
    pub fn read(&self) -> Reading {
        Reading {
            selection: self.selection.clone(),
            ..Reading::take(&self.snapshots, &self.instruments, &*self.pool)
        }
    }

    /// Reads one host now (`/metrics?target=`): a reading whose snapshot holds that host
    /// only and whose instruments are its own; None when the snapshot has no such host.
    /// The exporter's own figures are left out (they are not the host's).
    pub fn read_host(&self, client: &str, host: &str) -> Option<Reading> {
        let snap = self.snapshots.load();
        let h = snap
            .hosts
            .iter()
            .find(|h| &*h.client == client && &*h.name == host)?;
        Some(Reading {
            snap: Arc::new(Snapshot {
                hosts: vec![h.clone()],
            }),
            now: SystemTime::now(),
            pool: PoolFigures::default(),
            process: None,
            instruments: self
                .instruments
                .all()
                .into_iter()
                .filter(|i| &*i.client == client && &*i.host == host)
                .collect(),
            otlp: self.instruments.otlp.outcomes(),
            otlp_last_error: None,
            otlp_last_success: None,
            version: env!("CARGO_PKG_VERSION"),
            selection: self.selection.clone(),
        })
    }
}

/// Everything one scrape or export reads, gathered once: the snapshot and the live figures.
pub struct Reading {
    /// The snapshot.
    pub snap: Arc<Snapshot>,
    /// When it was read.
    pub now: SystemTime,
    pub(crate) pool: PoolFigures,
    pub(crate) process: Option<ProcessStats>,
    pub(crate) instruments: Vec<Arc<HostInstruments>>,
    pub(crate) otlp: [(ExportOutcome, u64); 3],
    pub(crate) otlp_last_error: Option<&'static str>,
    pub(crate) otlp_last_success: Option<SystemTime>,
    /// `dockstat_build_info`'s `version`: this build's, fixed in the golden files.
    pub(crate) version: &'static str,
    /// The families exported.
    pub(crate) selection: Arc<Selection>,
}

/// One container of a reading and its host.
pub type ContainerRow<'a> = (&'a HostSnapshot, &'a ContainerSnapshot);

impl Reading {
    /// Reads the snapshot and the live figures.
    pub fn take(
        snapshots: &SnapshotStore,
        instruments: &Instruments,
        pool: &dyn PoolSource,
    ) -> Reading {
        Reading {
            snap: snapshots.load(),
            now: SystemTime::now(),
            pool: pool.figures(),
            process: crate::process::read(),
            instruments: instruments.all(),
            otlp: instruments.otlp.outcomes(),
            otlp_last_error: instruments.otlp.last_error().map(|(kind, _, _)| kind),
            otlp_last_success: instruments.otlp.last_success(),
            version: env!("CARGO_PKG_VERSION"),
            selection: Arc::default(),
        }
    }

    /// Whether the family is exported (not disabled by `metrics.disable`).
    pub fn exports(&self, f: &Family) -> bool {
        self.selection.enabled(f)
    }

    /// Every container of every host, in snapshot order; a container series' subject
    /// indexes it.
    pub fn containers(&self) -> Vec<ContainerRow<'_>> {
        self.snap
            .hosts
            .iter()
            .flat_map(|h| h.containers.iter().map(move |c| (&**h, c)))
            .collect()
    }
}

/// What one series describes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// A container: its index in [`Reading::containers`].
    Container(usize),
    /// A Docker host.
    Host {
        /// `host` label.
        host: &'a str,
        /// `client` label.
        client: &'a str,
    },
    /// The exporter itself.
    Process,
}

impl<'a> Subject<'a> {
    /// A host's series.
    fn of(h: &'a HostSnapshot) -> Self {
        Subject::Host {
            host: &h.name,
            client: &h.client,
        }
    }
}

/// Receives one family's series as [`walk`] finds them. `values` are the family's own
/// label values in the order of [`Family::labels`] (a series may carry fewer: the ones it
/// lacks are at the end), so a sink takes the names from the row.
pub(crate) trait Sink {
    /// One value.
    fn point(&mut self, at: Subject<'_>, values: &[&str], v: f64) -> fmt::Result;
    /// One histogram.
    fn histogram(&mut self, at: Subject<'_>, values: &[&str], h: &HistogramFigures) -> fmt::Result;
    /// `dockstat_container_labels`: 1, with `labels` as the series' own labels.
    fn info(&mut self, at: Subject<'_>, labels: &[InfoLabel]) -> fmt::Result {
        let _ = labels;
        self.point(at, &[], 1.0)
    }
}

/// Finds every series of `f` in the reading and hands it to `sink`.
pub(crate) fn walk(
    f: &Family,
    reading: &Reading,
    rows: &[ContainerRow],
    sink: &mut impl Sink,
) -> fmt::Result {
    let snap = &reading.snap;
    let containers = || {
        rows.iter()
            .enumerate()
            .map(|(i, (_, c))| (Subject::Container(i), *c))
    };
    match f.series {
        Series::Stat(get) => {
            for (at, c) in containers() {
                if let Some(v) = c.stats.as_deref().and_then(get) {
                    sink.point(at, &[], v)?;
                }
            }
        }
        Series::Meta(get) => {
            for (at, c) in containers() {
                if let Some(v) = get(&c.meta) {
                    sink.point(at, &[], v)?;
                }
            }
        }
        Series::Network(get) => {
            for (at, c) in containers() {
                for (iface, n) in c.stats.iter().flat_map(|s| s.networks.iter()) {
                    sink.point(at, &[iface], get(n) as f64)?;
                }
            }
        }
        Series::Blkio(get) => {
            for (at, c) in containers() {
                for (dev, b) in c.stats.iter().flat_map(|s| s.blkio.iter()) {
                    if let Some(v) = get(b) {
                        sink.point(at, &[dev], v as f64)?;
                    }
                }
            }
        }
        Series::MemoryFailures => {
            for (at, c) in containers() {
                let Some(f) = c.stats.as_ref().and_then(|s| s.memory?.faults) else {
                    continue;
                };
                sink.point(at, &["pgfault", "container"], f.pgfault as f64)?;
                sink.point(at, &["pgfault", "hierarchy"], f.hierarchy_pgfault as f64)?;
                sink.point(at, &["pgmajfault", "container"], f.pgmajfault as f64)?;
                sink.point(
                    at,
                    &["pgmajfault", "hierarchy"],
                    f.hierarchy_pgmajfault as f64,
                )?;
            }
        }
        Series::ContainerInfo => {
            for (at, c) in containers() {
                let m = &c.meta;
                let values = [
                    m.image_id.as_str(),
                    m.compose_project.as_deref().unwrap_or(""),
                    m.compose_service.as_deref().unwrap_or(""),
                ];
                sink.point(at, &values, 1.0)?;
            }
        }
        Series::ContainerLabels => {
            for (at, c) in containers() {
                if !c.meta.info_labels.is_empty() {
                    sink.info(at, &c.meta.info_labels)?;
                }
            }
        }
        Series::ContainerState => {
            for (at, c) in containers() {
                sink.point(at, &[c.meta.state.as_str()], 1.0)?;
            }
        }
        Series::ContainerExits => {
            for (at, c) in containers() {
                for (code, n) in c.lifecycle.iter().flat_map(|l| l.exits.iter()) {
                    sink.point(at, &[&code.to_string()], *n as f64)?;
                }
            }
        }
        Series::ContainerOom => {
            for (at, c) in containers() {
                let n = c.lifecycle.as_ref().map_or(0, |l| l.oom_events);
                sink.point(at, &[], n as f64)?;
            }
        }
        Series::ContainerLastExit => {
            for (at, c) in containers() {
                let code = if c.meta.state == ContainerState::Running {
                    None
                } else {
                    c.meta.exit_code
                }
                .or_else(|| c.lifecycle.as_ref().and_then(|l| l.last_exit_code));
                if let Some(code) = code {
                    sink.point(at, &[], code as f64)?;
                }
            }
        }
        Series::HostEvents => {
            for h in &snap.hosts {
                for ((typ, action), n) in h.events.iter() {
                    sink.point(Subject::of(h), &[typ, action], *n as f64)?;
                }
            }
        }
        Series::ContainerHealth => {
            for (at, c) in containers() {
                sink.point(at, &[c.meta.health.as_str()], 1.0)?;
            }
        }
        Series::Machine(get) => {
            for h in &snap.hosts {
                if let Some(v) = h.info.as_deref().and_then(get) {
                    sink.point(Subject::of(h), &[], v as f64)?;
                }
            }
        }
        Series::HostMonitoring => {
            for h in &snap.hosts {
                sink.point(Subject::of(h), &[], f64::from(u8::from(h.monitored)))?;
            }
        }
        Series::HostUp
        | Series::CollectionDuration
        | Series::CollectionSuccess
        | Series::SnapshotAge => {
            // A host that is not collected has no such figures: only its monitoring 0.
            for h in snap.hosts.iter().filter(|h| h.monitored) {
                let v = match f.series {
                    Series::HostUp => f64::from(u8::from(h.up)),
                    Series::CollectionDuration => h.collection_duration.as_secs_f64(),
                    Series::CollectionSuccess => f64::from(u8::from(h.collection_success)),
                    _ => reading
                        .now
                        .duration_since(h.built_at)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0),
                };
                sink.point(Subject::of(h), &[], v)?;
            }
        }
        Series::HostInfo => {
            for h in &snap.hosts {
                let Some(i) = h.info.as_deref() else { continue };
                let values = [
                    i.runtime.as_str(),
                    i.server_version.as_str(),
                    i.api_version.as_str(),
                    i.operating_system.as_str(),
                    i.os_type.as_str(),
                    i.architecture.as_str(),
                    i.kernel_version.as_str(),
                    i.cgroup_version.as_str(),
                    i.cgroup_driver.as_str(),
                ];
                sink.point(Subject::of(h), &values, 1.0)?;
            }
        }
        Series::StatsSources => {
            for h in snap.hosts.iter().filter(|h| h.up) {
                let s = h.stats_sources;
                sink.point(Subject::of(h), &["cgroup"], s.cgroup as f64)?;
                sink.point(Subject::of(h), &["api"], s.api as f64)?;
            }
        }
        Series::HostContainers => {
            for h in snap.hosts.iter().filter(|h| h.up) {
                for state in ContainerState::ALL {
                    let n = h.container_counts.get(&state).copied().unwrap_or(0);
                    sink.point(Subject::of(h), &[state.as_str()], n as f64)?;
                }
            }
        }
        Series::RequestDuration => {
            for inst in &reading.instruments {
                let at = Subject::Host {
                    host: &inst.host,
                    client: &inst.client,
                };
                for (call, hist) in inst.durations() {
                    sink.histogram(at, &[call.as_str()], &hist.figures())?;
                }
            }
        }
        Series::DockerErrors => {
            for inst in &reading.instruments {
                let at = Subject::Host {
                    host: &inst.host,
                    client: &inst.client,
                };
                for ((kind, status), n) in inst.errors() {
                    // `status` only for API errors: the series carries the first label only.
                    match status.map(|s| s.to_string()) {
                        Some(s) => sink.point(at, &[kind, &s], n as f64)?,
                        None => sink.point(at, &[kind], n as f64)?,
                    }
                }
            }
        }
        Series::ContainerDisk(get) => {
            for (i, (h, c)) in rows.iter().enumerate() {
                let Some(d) = h.disk.as_ref().and_then(|d| d.containers.get(&c.meta.id)) else {
                    continue;
                };
                let Some(v) = get(d) else { continue };
                match d.device.as_deref().filter(|_| !f.labels.is_empty()) {
                    Some(dev) => sink.point(Subject::Container(i), &[dev], v as f64)?,
                    None => sink.point(Subject::Container(i), &[], v as f64)?,
                }
            }
        }
        Series::Volume(get) => {
            for h in &snap.hosts {
                for v in h.disk.iter().flat_map(|d| d.volumes.iter()) {
                    if let Some(x) = get(v) {
                        sink.point(Subject::of(h), &[&v.name, &v.driver], x as f64)?;
                    }
                }
            }
        }
        Series::HostDisk(get) => {
            for h in &snap.hosts {
                if let Some(v) = h.disk.as_deref().and_then(get) {
                    sink.point(Subject::of(h), &[], v as f64)?;
                }
            }
        }
        Series::DiskUsageAge | Series::DiskUsageSuccess | Series::DiskUsageDuration => {
            for h in &snap.hosts {
                let Some(d) = h.disk.as_deref() else { continue };
                let v = match f.series {
                    Series::DiskUsageSuccess => f64::from(u8::from(d.success)),
                    Series::DiskUsageDuration => d.duration.as_secs_f64(),
                    // Absent before the first successful pass.
                    _ => match d.at {
                        Some(at) => reading
                            .now
                            .duration_since(at)
                            .map(|d| d.as_secs_f64())
                            .unwrap_or(0.0),
                        None => continue,
                    },
                };
                sink.point(Subject::of(h), &[], v)?;
            }
        }
        Series::Pool(get) => sink.point(Subject::Process, &[], get(&reading.pool))?,
        Series::ShardHosts => sink.point(Subject::Process, &[], snap.hosts.len() as f64)?,
        Series::BuildInfo => sink.point(Subject::Process, &[reading.version], 1.0)?,
        Series::Process(get) => {
            if let Some(p) = &reading.process {
                sink.point(Subject::Process, &[], get(p))?;
            }
        }
        Series::OtlpExports => {
            for (outcome, n) in reading.otlp {
                sink.point(Subject::Process, &[outcome.as_str()], n as f64)?;
            }
        }
        Series::OtlpLastError => {
            if let Some(kind) = reading.otlp_last_error {
                sink.point(Subject::Process, &[kind], 1.0)?;
            }
        }
        Series::OtlpLastSuccess => {
            if let Some(t) = reading.otlp_last_success {
                sink.point(Subject::Process, &[], crate::clock::unix_seconds(t))?;
            }
        }
    }
    Ok(())
}
