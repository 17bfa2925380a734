//! The snapshot as an OTLP `ExportMetricsServiceRequest`, through the same family table and
//! walk as `/metrics`: each family's series become data points of the OTLP metric(s) its
//! table row names.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::SystemTime;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::families::{
    ContainerRow, FAMILIES, Family, Kind, Otlp, OtlpValue, Reading, Scope, Sink, Subject, walk,
};
use crate::instruments::{BUCKETS, HistogramFigures};
use crate::snapshot::InfoLabel;

/// Attributes whose values are integers in the semantic conventions.
const INT_ATTRIBUTES: [&str; 2] = ["process.exit.code", "http.response.status_code"];

/// Builds requests; holds what does not change between exports.
#[derive(Debug)]
pub struct RequestBuilder {
    /// The exporter's own resource (`service.*` and the user's attributes).
    resource: Resource,
    /// Start of counters not tied to a container run (the exporter's start).
    pub(crate) start: SystemTime,
    /// The instrumentation scope's version: this build's, fixed in the golden file.
    pub(crate) version: &'static str,
    /// Prometheus label name of an allowlisted Docker label -> `container.label.<key>`.
    label_attrs: HashMap<String, String>,
    /// Every OTLP metric the table names, in table order: an empty metric to fill (its
    /// description says what each family feeding it is).
    templates: Vec<Metric>,
    /// Metric name -> index in `templates`.
    index: HashMap<&'static str, usize>,
}

fn kv(key: &str, value: &str) -> KeyValue {
    let value = match INT_ATTRIBUTES.contains(&key).then(|| value.parse::<i64>()) {
        Some(Ok(i)) => any_value::Value::IntValue(i),
        _ => any_value::Value::StringValue(value.to_string()),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string-array attribute (`container.image.tags`).
fn kv_list(key: &str, values: &[&str]) -> KeyValue {
    let values = values
        .iter()
        .map(|v| AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        })
        .collect();
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
        }),
        ..Default::default()
    }
}

/// An image reference as the semantic conventions split it: the name without tag or
/// digest (`container.image.name`), and the tag (`container.image.tags`). No tag and no
/// digest means Docker's implied `latest`; an image given by id has neither.
pub(crate) fn split_image(image: &str) -> (&str, Option<&str>) {
    if image.starts_with("sha256:") {
        return (image, None);
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    // A colon after the last slash starts the tag; one before it is a registry's port.
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].rfind(':') {
        Some(i) => (&name[..last + i], Some(&name[last + i + 1..])),
        None if digest => (name, None),
        None => (name, Some("latest")),
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn seconds_to_nanos(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1e9) as u64
    } else {
        0
    }
}

/// The attributes of a Docker host's resource, also on each of its containers' resources:
/// `host.name` is the daemon's own host name (`/info` `Name`, absent until the host first
/// answered), `dockstat.client` and `dockstat.host` the configured names.
fn host_attrs(daemon: Option<&str>, client: &str, host: &str) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(3);
    if let Some(name) = daemon.filter(|n| !n.is_empty()) {
        attrs.push(kv("host.name", name));
    }
    attrs.push(kv("dockstat.client", client));
    attrs.push(kv("dockstat.host", host));
    attrs
}

/// One resource of a request being built and its metrics by template index.
struct Slot {
    attributes: Vec<KeyValue>,
    metrics: BTreeMap<usize, Metric>,
}

impl Slot {
    fn new(attributes: Vec<KeyValue>) -> Slot {
        Slot {
            attributes,
            metrics: BTreeMap::new(),
        }
    }
}

/// Where each subject's points go: slots in request order (the exporter, then each host
/// followed by its containers).
struct Resources {
    slots: Vec<Slot>,
    /// Row index -> slot.
    containers: Vec<usize>,
    /// (client, host) -> slot.
    hosts: HashMap<(String, String), usize>,
}

impl Resources {
    fn slot(&mut self, at: Subject<'_>) -> usize {
        match at {
            Subject::Process => 0,
            Subject::Container(i) => self.containers.get(i).copied().unwrap_or(0),
            Subject::Host { host, client } => {
                let key = (client.to_string(), host.to_string());
                if let Some(&i) = self.hosts.get(&key) {
                    return i;
                }
                // Instruments of a host the snapshot no longer holds: a resource of its own.
                self.slots.push(Slot::new(host_attrs(None, client, host)));
                let i = self.slots.len() - 1;
                self.hosts.insert(key, i);
                i
            }
        }
    }
}

impl RequestBuilder {
    /// `resource`: user attributes (file and `OTEL_RESOURCE_ATTRIBUTES`); `labels`: the
    /// allowlist as (Docker key, Prometheus label name).
    pub fn new(resource: &[(String, String)], labels: &[(String, String)]) -> RequestBuilder {
        let mut attrs: Vec<(String, String)> = resource.to_vec();
        let mut default = |k: &str, v: String| {
            if !attrs.iter().any(|(key, _)| key == k) {
                attrs.push((k.to_string(), v));
            }
        };
        default("service.name", "dockstat-exporter".to_string());
        default("service.version", env!("CARGO_PKG_VERSION").to_string());
        default("service.instance.id", host_name());
        let mut templates: Vec<Metric> = Vec::new();
        let mut index: HashMap<&'static str, usize> = HashMap::new();
        for f in FAMILIES {
            for o in f.otlp {
                let i = *index.entry(o.name).or_insert_with(|| {
                    templates.push(empty_metric(f, o));
                    templates.len() - 1
                });
                if let Some(m) = templates.get_mut(i)
                    && !m.description.contains(f.help)
                {
                    // Several families feed this metric: say what each part is.
                    m.description = format!("{} / {}", m.description, f.help);
                }
            }
        }
        RequestBuilder {
            resource: Resource {
                attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            },
            start: SystemTime::now(),
            version: env!("CARGO_PKG_VERSION"),
            label_attrs: labels
                .iter()
                .map(|(key, prom)| (prom.clone(), format!("container.label.{key}")))
                .collect(),
            templates,
            index,
        }
    }

    /// One request holding every family's series in `reading`: one `ResourceMetrics` for
    /// the exporter's own metrics, one per Docker host and one per container, as the
    /// semantic conventions and the Collector's docker_stats receiver have them.
    pub fn request(&self, reading: &Reading) -> ExportMetricsServiceRequest {
        let rows = reading.containers();
        let mut resources = Resources {
            slots: vec![Slot::new(self.resource.attributes.clone())],
            containers: Vec::with_capacity(rows.len()),
            hosts: HashMap::new(),
        };
        let mut next_row = rows.iter().peekable();
        for h in &reading.snap.hosts {
            let daemon = h.info.as_deref().map(|i| i.name.as_str());
            let base = host_attrs(daemon, &h.client, &h.name);
            resources.slots.push(Slot::new(base.clone()));
            resources.hosts.insert(
                (h.client.to_string(), h.name.to_string()),
                resources.slots.len() - 1,
            );
            while let Some(row) = next_row.next_if(|(rh, _)| std::ptr::eq(*rh, &**h)) {
                resources
                    .slots
                    .push(Slot::new(self.container_attrs(row, &base)));
                resources.containers.push(resources.slots.len() - 1);
            }
        }
        for f in FAMILIES.iter().filter(|f| reading.exports(f)) {
            for o in f.otlp {
                let Some(&template) = self.index.get(o.name) else {
                    continue;
                };
                let mut sink = PointSink {
                    family: f,
                    otlp: o,
                    rows: &rows,
                    resources: &mut resources,
                    template,
                    templates: &self.templates,
                    now: reading.now,
                    start: self.start,
                };
                // Building into a Vec cannot fail; the Result is the walk's for /metrics.
                let _ = walk(f, reading, &rows, &mut sink);
            }
        }
        let scope = InstrumentationScope {
            name: "dockstat-exporter".to_string(),
            version: self.version.to_string(),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: resources
                .slots
                .into_iter()
                .filter(|s| !s.metrics.is_empty())
                .map(|s| ResourceMetrics {
                    resource: Some(Resource {
                        attributes: s.attributes,
                        ..Default::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(scope.clone()),
                        metrics: s.metrics.into_values().collect(),
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        }
    }

    /// A container's resource: identity after the semantic conventions, its allowlisted
    /// labels, and its host's attributes.
    fn container_attrs(&self, (h, c): &ContainerRow, host: &[KeyValue]) -> Vec<KeyValue> {
        let m = &c.meta;
        let (image, tag) = split_image(&m.image);
        let mut attrs = vec![
            kv("container.id", &m.id),
            kv("container.name", &m.name),
            kv("container.image.name", image),
        ];
        if let Some(tag) = tag {
            attrs.push(kv_list("container.image.tags", &[tag]));
        }
        if !m.image_id.is_empty() {
            attrs.push(kv("container.image.id", &m.image_id));
        }
        let runtime = h.info.as_deref().map_or("docker", |i| i.runtime.as_str());
        attrs.push(kv("container.runtime.name", runtime));
        attrs.push(kv("container.runtime", runtime));
        for (prom, value) in &m.labels {
            if let Some(key) = self.label_attrs.get(&**prom) {
                attrs.push(kv(key, value));
            }
        }
        attrs.extend(host.iter().cloned());
        attrs
    }
}

fn empty_metric(f: &Family, o: &Otlp) -> Metric {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let data = match f.kind {
        Kind::Counter => Data::Sum(Sum {
            data_points: Vec::new(),
            aggregation_temporality: cumulative,
            is_monotonic: true,
        }),
        Kind::Gauge => Data::Gauge(Gauge {
            data_points: Vec::new(),
        }),
        Kind::Histogram => Data::Histogram(Histogram {
            data_points: Vec::new(),
            aggregation_temporality: cumulative,
        }),
    };
    Metric {
        name: o.name.to_string(),
        description: f.help.to_string(),
        unit: o.unit.to_string(),
        metadata: Vec::new(),
        data: Some(data),
    }
}

/// Turns one family's series into data points of one OTLP metric, each under its
/// subject's resource.
struct PointSink<'a> {
    family: &'a Family,
    otlp: &'a Otlp,
    rows: &'a [ContainerRow<'a>],
    resources: &'a mut Resources,
    template: usize,
    templates: &'a [Metric],
    now: SystemTime,
    start: SystemTime,
}

impl PointSink<'_> {
    /// The point's own attributes: the metric's fixed ones and the family's labels (the
    /// subject's identity is on its resource).
    fn attributes(&self, values: &[&str]) -> Vec<KeyValue> {
        let mut attrs: Vec<KeyValue> = self.otlp.fixed.iter().map(|(k, v)| kv(k, v)).collect();
        for (label, value) in self.family.labels.iter().zip(values) {
            // Prometheus treats an empty label as no label; so does the export.
            if value.is_empty() {
                continue;
            }
            attrs.push(kv(label.otlp, value));
        }
        attrs
    }

    /// The metric of this sink in the subject's resource, made on first use.
    fn metric(&mut self, at: Subject<'_>) -> Option<&mut Metric> {
        let slot = self.resources.slot(at);
        let template = self.templates.get(self.template)?;
        Some(
            self.resources
                .slots
                .get_mut(slot)?
                .metrics
                .entry(self.template)
                .or_insert_with(|| template.clone()),
        )
    }
    /// (start, time) of a point. Counters read from a container's cgroup start with the
    /// container's run, so a restart begins a new series instead of going backwards; the
    /// time is when the sample was taken. Everything else counts from the exporter's start
    /// and is stamped with the time of the reading.
    fn times(&self, subject: Subject<'_>) -> Option<(u64, u64)> {
        let per_run = self.family.scope() == Scope::LiveContainer;
        if let (true, Subject::Container(i)) = (per_run, subject) {
            let (_, c) = self.rows.get(i)?;
            let seen = c.stats.as_ref().map(|s| seconds_to_nanos(s.seen_at));
            let started = c.meta.started_at.map(seconds_to_nanos);
            return match (started, seen) {
                // A sample older than the run belongs to the previous run: not exported.
                (Some(start), Some(seen)) if seen < start => None,
                (Some(start), Some(seen)) => Some((start, seen)),
                (None, Some(seen)) => Some((nanos(self.start), seen)),
                (_, None) => Some((nanos(self.start), nanos(self.now))),
            };
        }
        Some((nanos(self.start), nanos(self.now)))
    }
}

impl Sink for PointSink<'_> {
    fn info(&mut self, at: Subject<'_>, labels: &[InfoLabel]) -> fmt::Result {
        let Some((_, time)) = self.times(at) else {
            return Ok(());
        };
        let mut attributes = self.attributes(&[]);
        for l in labels.iter().filter(|l| !l.value.is_empty()) {
            attributes.push(kv(&format!("container.label.{}", l.key), &l.value));
        }
        // A gauge: its points carry no start.
        let point = NumberDataPoint {
            attributes,
            start_time_unix_nano: 0,
            time_unix_nano: time,
            exemplars: Vec::new(),
            flags: 0,
            value: Some(number_data_point::Value::AsDouble(1.0)),
        };
        if let Some(Data::Gauge(g)) = self.metric(at).and_then(|m| m.data.as_mut()) {
            g.data_points.push(point);
        }
        Ok(())
    }

    fn point(&mut self, at: Subject<'_>, values: &[&str], v: f64) -> fmt::Result {
        let value = match self.otlp.value {
            OtlpValue::Same => v,
            OtlpValue::Scale(k) => v * k,
            OtlpValue::Uptime => {
                let running = match at {
                    Subject::Container(i) => self
                        .rows
                        .get(i)
                        .is_some_and(|(_, c)| c.meta.state.is_live()),
                    _ => false,
                };
                let now = nanos(self.now) as f64 / 1e9;
                if !running || v <= 0.0 || v > now {
                    return Ok(());
                }
                now - v
            }
        };
        let Some((start, time)) = self.times(at) else {
            return Ok(());
        };
        let attributes = self.attributes(values);
        let point = |start_time_unix_nano| NumberDataPoint {
            attributes,
            start_time_unix_nano,
            time_unix_nano: time,
            exemplars: Vec::new(),
            flags: 0,
            value: Some(number_data_point::Value::AsDouble(value)),
        };
        match self.metric(at).and_then(|m| m.data.as_mut()) {
            Some(Data::Sum(s)) => s.data_points.push(point(start)),
            Some(Data::Gauge(g)) => g.data_points.push(point(0)),
            _ => {}
        }
        Ok(())
    }

    fn histogram(&mut self, at: Subject<'_>, values: &[&str], h: &HistogramFigures) -> fmt::Result {
        let Some((start, time)) = self.times(at) else {
            return Ok(());
        };
        let attributes = self.attributes(values);
        if let Some(Data::Histogram(hist)) = self.metric(at).and_then(|m| m.data.as_mut()) {
            hist.data_points.push(HistogramDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                count: h.count(),
                sum: Some(h.sum),
                bucket_counts: h.counts.clone(),
                explicit_bounds: BUCKETS.to_vec(),
                exemplars: Vec::new(),
                flags: 0,
                min: None,
                max: None,
            });
        }
        Ok(())
    }
}

/// Splits a request into requests of at most `max_points` data points each, keeping the
/// resources, their scopes and metrics in order (a resource or metric whose points straddle
/// a boundary appears in both requests, with its points divided). Receivers limit message
/// sizes (the OpenTelemetry Collector takes 4 MiB by default), and ~35 points per container
/// make one request of 1,000 containers ~10 MB.
pub fn split(
    request: ExportMetricsServiceRequest,
    max_points: usize,
) -> Vec<ExportMetricsServiceRequest> {
    let max_points = max_points.max(1);
    let mut out = Vec::new();
    // The request being filled, and the room left in it.
    let mut current: Vec<ResourceMetrics> = Vec::new();
    let mut room = max_points;
    for rm in request.resource_metrics {
        for sm in rm.scope_metrics {
            let shell = |metrics: Vec<Metric>| ResourceMetrics {
                resource: rm.resource.clone(),
                scope_metrics: vec![ScopeMetrics {
                    scope: sm.scope.clone(),
                    metrics,
                    schema_url: sm.schema_url.clone(),
                }],
                schema_url: rm.schema_url.clone(),
            };
            let mut metrics: Vec<Metric> = Vec::new();
            for mut metric in sm.metrics {
                loop {
                    let n = points(&metric);
                    if n <= room {
                        room -= n;
                        metrics.push(metric);
                        break;
                    }
                    // Fill this request with the first `room` points, carry on with the rest.
                    let rest = take_tail(&mut metric, room);
                    if points(&metric) > 0 {
                        metrics.push(metric);
                    }
                    if !metrics.is_empty() {
                        current.push(shell(std::mem::take(&mut metrics)));
                    }
                    out.push(ExportMetricsServiceRequest {
                        resource_metrics: std::mem::take(&mut current),
                    });
                    room = max_points;
                    metric = rest;
                }
            }
            if !metrics.is_empty() {
                current.push(shell(metrics));
            }
        }
    }
    if !current.is_empty() {
        out.push(ExportMetricsServiceRequest {
            resource_metrics: current,
        });
    }
    out
}

fn points(m: &Metric) -> usize {
    match &m.data {
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        _ => 0,
    }
}

/// Keeps the first `keep` points in `m`, returns a copy of the metric with the others.
fn take_tail(m: &mut Metric, keep: usize) -> Metric {
    let data = match &mut m.data {
        Some(Data::Sum(s)) => Some(Data::Sum(Sum {
            data_points: s.data_points.split_off(keep.min(s.data_points.len())),
            aggregation_temporality: s.aggregation_temporality,
            is_monotonic: s.is_monotonic,
        })),
        Some(Data::Gauge(g)) => Some(Data::Gauge(Gauge {
            data_points: g.data_points.split_off(keep.min(g.data_points.len())),
        })),
        Some(Data::Histogram(h)) => Some(Data::Histogram(Histogram {
            data_points: h.data_points.split_off(keep.min(h.data_points.len())),
            aggregation_temporality: h.aggregation_temporality,
        })),
        _ => None,
    };
    Metric {
        name: m.name.clone(),
        description: m.description.clone(),
        unit: m.unit.clone(),
        metadata: m.metadata.clone(),
        data,
    }
}

/// The machine's host name, the default `service.instance.id`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests;
