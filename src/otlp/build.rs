//! The snapshot as an OTLP `ExportMetricsServiceRequest`, through the same family table and
//! walk as `/metrics`: each family's series become data points of the OTLP metric(s) its
//! table row names.

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
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
    resource: Resource,
    /// Start of counters not tied to a container run (the exporter's start).
    pub(crate) start: SystemTime,
    /// The instrumentation scope's version: this build's, fixed in the golden file.
    pub(crate) version: &'static str,
    /// Prometheus label name of an allowlisted Docker label -> `container.label.<key>`.
    label_attrs: HashMap<String, String>,
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
        }
    }

    /// One request holding every family's series in `reading`.
    pub fn request(&self, reading: &Reading) -> ExportMetricsServiceRequest {
        let rows = reading.containers();
        let bases: Vec<Vec<KeyValue>> = rows.iter().map(|row| self.container_attrs(row)).collect();
        let mut metrics: Vec<Metric> = Vec::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for f in FAMILIES.iter().filter(|f| reading.exports(f)) {
            for o in f.otlp {
                let i = *by_name.entry(o.name).or_insert_with(|| {
                    metrics.push(empty_metric(f, o));
                    metrics.len() - 1
                });
                let Some(metric) = metrics.get_mut(i) else {
                    continue;
                };
                if !metric.description.contains(f.help) {
                    // Several families feed this metric: say what each part is.
                    metric.description = format!("{} / {}", metric.description, f.help);
                }
                let mut sink = PointSink {
                    family: f,
                    otlp: o,
                    rows: &rows,
                    bases: &bases,
                    metric,
                    now: reading.now,
                    start: self.start,
                };
                // Building into a Vec cannot fail; the Result is the walk's for /metrics.
                let _ = walk(f, reading, &rows, &mut sink);
            }
        }
        metrics.retain(|m| match &m.data {
            Some(Data::Sum(s)) => !s.data_points.is_empty(),
            Some(Data::Gauge(g)) => !g.data_points.is_empty(),
            Some(Data::Histogram(h)) => !h.data_points.is_empty(),
            _ => false,
        });
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "dockstat-exporter".to_string(),
                        version: self.version.to_string(),
                        ..Default::default()
                    }),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn container_attrs(&self, (host, c): &ContainerRow) -> Vec<KeyValue> {
        let m = &c.meta;
        let mut attrs = vec![
            kv("container.id", &m.id),
            kv("container.name", &m.name),
            kv("container.image.name", &m.image),
        ];
        for (prom, value) in &m.labels {
            if let Some(key) = self.label_attrs.get(&**prom) {
                attrs.push(kv(key, value));
            }
        }
        attrs.push(kv("host.name", &host.name));
        attrs.push(kv("dockstat.client", &host.client));
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

/// Turns one family's series into data points of one OTLP metric.
struct PointSink<'a> {
    family: &'a Family,
    otlp: &'a Otlp,
    rows: &'a [ContainerRow<'a>],
    bases: &'a [Vec<KeyValue>],
    metric: &'a mut Metric,
    now: SystemTime,
    start: SystemTime,
}

impl PointSink<'_> {
    fn attributes(&self, subject: Subject<'_>, values: &[&str]) -> Vec<KeyValue> {
        let mut attrs = match subject {
            Subject::Container(i) => self.bases.get(i).cloned().unwrap_or_default(),
            Subject::Host { host, client } => {
                vec![kv("host.name", host), kv("dockstat.client", client)]
            }
            Subject::Process => Vec::new(),
        };
        attrs.extend(self.otlp.fixed.iter().map(|(k, v)| kv(k, v)));
        for (label, value) in self.family.labels.iter().zip(values) {
            // Prometheus treats an empty label as no label; so does the export.
            if value.is_empty() {
                continue;
            }
            attrs.push(kv(label.otlp, value));
        }
        attrs
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
        let Some((start, time)) = self.times(at) else {
            return Ok(());
        };
        let mut attributes = self.attributes(at, &[]);
        for l in labels.iter().filter(|l| !l.value.is_empty()) {
            attributes.push(kv(&format!("container.label.{}", l.key), &l.value));
        }
        let point = NumberDataPoint {
            attributes,
            start_time_unix_nano: 0,
            time_unix_nano: time,
            exemplars: Vec::new(),
            flags: 0,
            value: Some(number_data_point::Value::AsDouble(1.0)),
        };
        // A gauge: its points carry no start.
        let _ = start;
        if let Some(Data::Gauge(g)) = &mut self.metric.data {
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
        let attributes = self.attributes(at, values);
        let point = |start_time_unix_nano| NumberDataPoint {
            attributes,
            start_time_unix_nano,
            time_unix_nano: time,
            exemplars: Vec::new(),
            flags: 0,
            value: Some(number_data_point::Value::AsDouble(value)),
        };
        match &mut self.metric.data {
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
        let attributes = self.attributes(at, values);
        if let Some(Data::Histogram(hist)) = &mut self.metric.data {
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
/// resource and scope on each and the metrics in order (a metric whose points straddle a
/// boundary appears in both, with its points divided). Receivers limit message sizes (the
/// OpenTelemetry Collector takes 4 MiB by default), and ~35 points per container make one
/// request of 1,000 containers ~10 MB.
pub fn split(
    request: ExportMetricsServiceRequest,
    max_points: usize,
) -> Vec<ExportMetricsServiceRequest> {
    let max_points = max_points.max(1);
    let mut out = Vec::new();
    for rm in request.resource_metrics {
        for sm in rm.scope_metrics {
            let shell = |metrics: Vec<Metric>| ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: rm.resource.clone(),
                    scope_metrics: vec![ScopeMetrics {
                        scope: sm.scope.clone(),
                        metrics,
                        schema_url: sm.schema_url.clone(),
                    }],
                    schema_url: rm.schema_url.clone(),
                }],
            };
            let mut current: Vec<Metric> = Vec::new();
            let mut room = max_points;
            for mut metric in sm.metrics {
                loop {
                    let n = points(&metric);
                    if n <= room {
                        room -= n;
                        current.push(metric);
                        break;
                    }
                    // Fill this request with the first `room` points, carry on with the rest.
                    let rest = take_tail(&mut metric, room);
                    if points(&metric) > 0 {
                        current.push(metric);
                    }
                    out.push(shell(std::mem::take(&mut current)));
                    room = max_points;
                    metric = rest;
                }
            }
            if !current.is_empty() {
                out.push(shell(current));
            }
        }
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
