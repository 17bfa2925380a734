//! `/metrics`: renders the current snapshot and the live self-instrumentation through a
//! prometheus-client [`Collector`], in the Prometheus text format or OpenMetrics.
//!
//! Rendering only reads: it loads the snapshot (one atomic load) and never calls Docker.

mod families;

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelEncoder, LabelSetEncoder,
    MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit as PromUnit};

pub use families::{FAMILIES, Family, Kind, PoolFigures, Source, Unit, markdown_table};

use crate::instruments::Instruments;
use crate::snapshot::{
    ContainerMeta, ContainerSnapshot, ContainerState, HostSnapshot, Snapshot, SnapshotStore,
};

/// Exposition format, chosen from the scrape's `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the client asks for it, else the classic text format.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Something that reports pool figures at scrape time.
pub trait PoolSource: Send + Sync + fmt::Debug + 'static {
    /// Current figures.
    fn figures(&self) -> PoolFigures;
}

/// The collector `/metrics` renders: snapshot plus self-instrumentation.
#[derive(Debug)]
pub struct SnapshotCollector {
    snapshots: Arc<SnapshotStore>,
    instruments: Arc<Instruments>,
    pool: Arc<dyn PoolSource>,
}

/// A registry holding the snapshot collector, ready to render.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// Builds the registry once; each scrape only encodes.
    pub fn new(
        snapshots: Arc<SnapshotStore>,
        instruments: Arc<Instruments>,
        pool: Arc<dyn PoolSource>,
    ) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector {
            snapshots,
            instruments,
            pool,
        }));
        Exposition { registry }
    }

    /// Renders everything into `out`.
    pub fn render(&self, format: Format, out: &mut impl fmt::Write) -> fmt::Result {
        match format {
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(out, &self.registry),
        }
    }
}

/// A container's base labels (`host`, `client`, `id`, `name`, `image`, allowlisted Docker
/// labels), escaped and joined once per scrape.
///
/// Why: a running container renders ~35 series, and encoding its base labels pair by pair
/// through prometheus-client's label encoders was over half of the render time. The block is
/// handed to the encoder as one label whose key part is everything up to the last key name
/// and whose value is the last label's (unescaped) value, so prometheus-client still writes
/// the separators, the quotes and the escaping of that last value. The unit test
/// `label_block_renders_like_pairwise_labels` pins this against the pair-by-pair encoding.
struct LabelBlock<'a> {
    /// `k1="v1",…,kN` with every value escaped.
    head: String,
    /// The value of `kN`, escaped by the encoder.
    last: &'a str,
}

impl<'a> LabelBlock<'a> {
    fn new(host: &'a HostSnapshot, meta: &'a ContainerMeta) -> Self {
        let mut pairs: Vec<(&str, &'a str)> = Vec::with_capacity(5 + meta.labels.len());
        pairs.extend([
            ("host", &*host.name),
            ("client", &*host.client),
            ("id", meta.id.as_str()),
            ("name", meta.name.as_str()),
            ("image", meta.image.as_str()),
        ]);
        pairs.extend(meta.labels.iter().map(|(k, v)| (&**k, v.as_str())));
        let (last_key, last) = pairs.pop().unwrap_or(("image", ""));
        let mut head = String::with_capacity(256);
        for (k, v) in pairs {
            head.push_str(k);
            head.push_str("=\"");
            push_escaped(&mut head, v);
            head.push_str("\",");
        }
        head.push_str(last_key);
        LabelBlock { head, last }
    }
}

/// Escapes a label value as the text formats require (`\\`, `\"`, `\n`).
fn push_escaped(out: &mut String, v: &str) {
    let mut rest = v;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

impl EncodeLabel for &LabelBlock<'_> {
    fn encode(&self, mut enc: LabelEncoder) -> fmt::Result {
        let mut key = enc.encode_label_key()?;
        key.write_str(&self.head)?;
        let mut value = key.encode_label_value()?;
        value.write_str(self.last)?;
        value.finish()
    }
}

/// One container of the snapshot, with its label block.
struct Row<'a> {
    container: &'a ContainerSnapshot,
    block: LabelBlock<'a>,
}

/// Base labels of container series plus up to three family-specific ones.
struct ContainerLabels<'a> {
    block: &'a LabelBlock<'a>,
    extra: [Option<(&'static str, &'a str)>; 3],
}

impl<'a> ContainerLabels<'a> {
    fn new(row: &'a Row<'a>) -> Self {
        ContainerLabels {
            block: &row.block,
            extra: [None, None, None],
        }
    }

    fn with(mut self, key: &'static str, value: &'a str) -> Self {
        if let Some(slot) = self.extra.iter_mut().find(|s| s.is_none()) {
            *slot = Some((key, value));
        }
        self
    }
}

impl EncodeLabelSet for ContainerLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        self.block.encode(enc.encode_label())?;
        for (k, v) in self.extra.iter().flatten() {
            (*k, *v).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

/// `host`, `client` and extra labels for host series.
struct HostLabels<'a> {
    host: &'a str,
    client: &'a str,
    extra: &'a [(&'static str, &'a str)],
}

impl<'a> HostLabels<'a> {
    /// Labels of one host's series.
    fn of(h: &'a HostSnapshot, extra: &'a [(&'static str, &'a str)]) -> Self {
        HostLabels {
            host: &h.name,
            client: &h.client,
            extra,
        }
    }
}

impl EncodeLabelSet for HostLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        ("host", self.host).encode(enc.encode_label())?;
        ("client", self.client).encode(enc.encode_label())?;
        for (k, v) in self.extra {
            (*k, *v).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

/// Largest magnitude written as an integer: every whole f64 below 2^53 is exact.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

fn write_value(enc: &mut MetricEncoder, kind: Kind, v: f64) -> fmt::Result {
    // Most values are whole numbers (bytes, packets, counts, states): written as integers
    // they are shorter and far cheaper to format than floats.
    let whole = v.fract() == 0.0 && v.abs() < EXACT_INT;
    match kind {
        Kind::Counter if whole && v >= 0.0 => {
            enc.encode_counter::<NoLabelSet, u64, u64>(&(v as u64), None)
        }
        Kind::Counter => enc.encode_counter::<NoLabelSet, f64, f64>(&v, None),
        _ if whole => enc.encode_gauge(&(v as i64)),
        _ => enc.encode_gauge(&v),
    }
}

fn series(me: &mut MetricEncoder, labels: &impl EncodeLabelSet, kind: Kind, v: f64) -> fmt::Result {
    write_value(&mut me.encode_family(labels)?, kind, v)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let snap = self.snapshots.load();
        let now = SystemTime::now();
        let pool = self.pool.figures();
        let process = crate::process::read();
        let instruments = self.instruments.all();
        let rows: Vec<Row> = snap
            .hosts
            .iter()
            .flat_map(|h| {
                h.containers.iter().map(move |c| Row {
                    container: c,
                    block: LabelBlock::new(h, &c.meta),
                })
            })
            .collect();
        for f in FAMILIES {
            let unit = f.unit.map(|u| match u {
                Unit::Seconds => PromUnit::Seconds,
                Unit::Bytes => PromUnit::Bytes,
            });
            let metric_type = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut me = encoder.encode_descriptor(f.base, f.help, unit.as_ref(), metric_type)?;
            let scrape = Scrape {
                snap: &snap,
                rows: &rows,
                now,
                pool: &pool,
                process: process.as_ref(),
                instruments: &instruments,
            };
            encode_family(&mut me, f, &scrape)?;
        }
        Ok(())
    }
}

/// Everything one scrape reads, gathered once.
struct Scrape<'a> {
    snap: &'a Snapshot,
    rows: &'a [Row<'a>],
    now: SystemTime,
    pool: &'a PoolFigures,
    process: Option<&'a crate::process::ProcessStats>,
    instruments: &'a [Arc<crate::instruments::HostInstruments>],
}

fn encode_family(me: &mut MetricEncoder, f: &Family, scrape: &Scrape) -> fmt::Result {
    let Scrape {
        snap,
        rows,
        now,
        pool,
        process,
        instruments,
    } = *scrape;
    let kind = f.kind;
    let containers = || rows.iter().map(|r| (r, r.container));
    match f.source {
        Source::Stat(get) => {
            for (r, c) in containers() {
                if let Some(v) = c.stats.as_deref().and_then(get) {
                    series(me, &ContainerLabels::new(r), kind, v)?;
                }
            }
        }
        Source::Meta(get) => {
            for (r, c) in containers() {
                if let Some(v) = get(&c.meta) {
                    series(me, &ContainerLabels::new(r), kind, v)?;
                }
            }
        }
        Source::Network(get) => {
            for (r, c) in containers() {
                for (iface, n) in c.stats.iter().flat_map(|s| s.networks.iter()) {
                    let l = ContainerLabels::new(r).with("interface", iface);
                    series(me, &l, kind, get(n) as f64)?;
                }
            }
        }
        Source::Blkio(get) => {
            for (r, c) in containers() {
                for (dev, b) in c.stats.iter().flat_map(|s| s.blkio.iter()) {
                    let l = ContainerLabels::new(r).with("device", dev);
                    series(me, &l, kind, get(b) as f64)?;
                }
            }
        }
        Source::ContainerInfo => {
            for (r, c) in containers() {
                let m = &c.meta;
                let l = ContainerLabels::new(r)
                    .with("image_id", &m.image_id)
                    .with(
                        "compose_project",
                        m.compose_project.as_deref().unwrap_or(""),
                    )
                    .with(
                        "compose_service",
                        m.compose_service.as_deref().unwrap_or(""),
                    );
                series(me, &l, kind, 1.0)?;
            }
        }
        Source::ContainerState => {
            for (r, c) in containers() {
                series(
                    me,
                    &ContainerLabels::new(r).with("state", c.meta.state.as_str()),
                    kind,
                    1.0,
                )?;
            }
        }
        Source::ContainerExits => {
            for (r, c) in containers() {
                for (code, n) in c.lifecycle.iter().flat_map(|l| l.exits.iter()) {
                    let code = code.to_string();
                    series(
                        me,
                        &ContainerLabels::new(r).with("exit_code", &code),
                        kind,
                        *n as f64,
                    )?;
                }
            }
        }
        Source::ContainerOom => {
            for (r, c) in containers() {
                let n = c.lifecycle.as_ref().map_or(0, |l| l.oom_events);
                series(me, &ContainerLabels::new(r), kind, n as f64)?;
            }
        }
        Source::ContainerLastExit => {
            for (r, c) in containers() {
                let code = if c.meta.state == ContainerState::Running {
                    None
                } else {
                    c.meta.exit_code
                }
                .or_else(|| c.lifecycle.as_ref().and_then(|l| l.last_exit_code));
                if let Some(code) = code {
                    series(me, &ContainerLabels::new(r), kind, code as f64)?;
                }
            }
        }
        Source::HostEvents => {
            for h in &snap.hosts {
                for ((typ, action), n) in h.events.iter() {
                    let extra = [("type", typ.as_str()), ("action", action.as_str())];
                    series(me, &HostLabels::of(h, &extra), kind, *n as f64)?;
                }
            }
        }
        Source::ContainerHealth => {
            for (r, c) in containers() {
                series(
                    me,
                    &ContainerLabels::new(r).with("status", c.meta.health.as_str()),
                    kind,
                    1.0,
                )?;
            }
        }
        Source::Machine(get) => {
            for h in &snap.hosts {
                if let Some(v) = h.info.as_deref().and_then(get) {
                    series(me, &HostLabels::of(h, &[]), kind, v as f64)?;
                }
            }
        }
        Source::HostUp
        | Source::CollectionDuration
        | Source::CollectionSuccess
        | Source::SnapshotAge => {
            for h in &snap.hosts {
                let v = match f.source {
                    Source::HostUp => f64::from(u8::from(h.up)),
                    Source::CollectionDuration => h.collection_duration.as_secs_f64(),
                    Source::CollectionSuccess => f64::from(u8::from(h.collection_success)),
                    _ => now
                        .duration_since(h.built_at)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0),
                };
                series(me, &HostLabels::of(h, &[]), kind, v)?;
            }
        }
        Source::HostInfo => {
            for h in &snap.hosts {
                let Some(i) = h.info.as_deref() else { continue };
                let extra = [
                    ("server_version", i.server_version.as_str()),
                    ("api_version", i.api_version.as_str()),
                    ("os", i.operating_system.as_str()),
                    ("os_type", i.os_type.as_str()),
                    ("arch", i.architecture.as_str()),
                    ("kernel", i.kernel_version.as_str()),
                    ("cgroup_version", i.cgroup_version.as_str()),
                    ("cgroup_driver", i.cgroup_driver.as_str()),
                ];
                series(me, &HostLabels::of(h, &extra), kind, 1.0)?;
            }
        }
        Source::HostContainers => {
            for h in snap.hosts.iter().filter(|h| h.up) {
                for state in ContainerState::ALL {
                    let n = h.container_counts.get(&state).copied().unwrap_or(0);
                    let extra = [("state", state.as_str())];
                    series(me, &HostLabels::of(h, &extra), kind, n as f64)?;
                }
            }
        }
        Source::RequestDuration => {
            for inst in instruments {
                for (call, hist) in inst.durations() {
                    let extra = [("endpoint", call.as_str())];
                    let l = HostLabels {
                        host: &inst.host,
                        client: &inst.client,
                        extra: &extra,
                    };
                    hist.encode(me.encode_family(&l)?)?;
                }
            }
        }
        Source::DockerErrors => {
            for inst in instruments {
                for ((kind_label, status), n) in inst.errors() {
                    let status = status.map(|s| s.to_string());
                    let mut extra = vec![("kind", kind_label)];
                    if let Some(s) = &status {
                        extra.push(("status", s.as_str()));
                    }
                    let l = HostLabels {
                        host: &inst.host,
                        client: &inst.client,
                        extra: &extra,
                    };
                    series(me, &l, kind, n as f64)?;
                }
            }
        }
        Source::Pool(get) => write_value(me, kind, get(pool))?,
        Source::BuildInfo => {
            let l = [("version", env!("CARGO_PKG_VERSION"))];
            series(me, &l, kind, 1.0)?;
        }
        Source::Process(get) => {
            if let Some(p) = process {
                write_value(me, kind, get(p))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
