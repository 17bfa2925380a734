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
        for f in FAMILIES {
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
    fn point(&mut self, subject: Subject<'_>, values: &[&str], v: f64) -> fmt::Result {
        let value = match self.otlp.value {
            OtlpValue::Same => v,
            OtlpValue::Scale(k) => v * k,
            OtlpValue::Uptime => {
                let running = match subject {
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
        let Some((start, time)) = self.times(subject) else {
            return Ok(());
        };
        let attributes = self.attributes(subject, values);
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

    fn histogram(
        &mut self,
        subject: Subject<'_>,
        values: &[&str],
        h: &HistogramFigures,
    ) -> fmt::Result {
        let Some((start, time)) = self.times(subject) else {
            return Ok(());
        };
        let attributes = self.attributes(subject, values);
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
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::AtomicI64;
    use std::time::Duration;

    use super::*;
    use crate::families::{PoolFigures, PoolSource, Series};
    use crate::instruments::{ApiCall, HostInstruments, Instruments};
    use crate::metrics::{Exposition, Format};
    use crate::snapshot::ContainerState;
    use crate::snapshot::SnapshotStore;

    #[derive(Debug)]
    struct Pool;

    impl PoolSource for Pool {
        fn figures(&self) -> PoolFigures {
            PoolFigures {
                workers: 2,
                hosts: 3,
                active_streams: 1,
                inflight: 0,
                tasks: 7,
            }
        }
    }

    fn sample() -> crate::stats::Sample {
        crate::fixtures::recorded_sample().expect("recorded stats fixture")
    }

    fn number(p: &NumberDataPoint) -> f64 {
        match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => f64::NAN,
        }
    }

    /// Every Prometheus series has exactly one OTLP point with the same value (after the
    /// table's transformation), family by family: the two outputs cannot drift apart.
    #[test]
    fn every_series_becomes_one_point_with_the_same_value() {
        let store = Arc::new(SnapshotStore::default());
        crate::fixtures::publish_fleet(&store, 2, 3, &sample());
        // Lifecycle figures on one container, and one stopped container.
        let mut h = (*store.load().hosts[0]).clone();
        h.containers[0].lifecycle = Some(Arc::new(crate::snapshot::Lifecycle {
            exits: BTreeMap::from([(3, 2), (137, 1)]),
            oom_events: 1,
            last_exit_code: Some(3),
        }));
        let mut meta = (*h.containers[1].meta).clone();
        meta.state = ContainerState::Exited;
        meta.exit_code = Some(1);
        h.containers[1].meta = Arc::new(meta);
        h.containers[1].stats = None;
        h.events = Arc::new(BTreeMap::from([
            (("container".to_string(), "die".to_string()), 3),
            (("network".to_string(), "connect".to_string()), 1),
        ]));
        store.publish(h);
        let instruments = Arc::new(Instruments::default());
        let host = Arc::new(HostInstruments::new(
            "h0".into(),
            "c0".into(),
            Arc::new(AtomicI64::new(0)),
        ));
        host.observe(ApiCall::ContainerStats, Duration::from_millis(20));
        host.observe(ApiCall::ContainerStats, Duration::from_secs(30));
        host.count_error("api_error", Some(500));
        host.count_error("timeout", None);
        instruments.insert(1, host);
        instruments.otlp.failed("timeout", "slow".into());
        instruments
            .otlp
            .delivered(crate::instruments::ExportOutcome::Success);

        let mut text = String::new();
        Exposition::new(store.clone(), instruments.clone(), Arc::new(Pool))
            .render(Format::Text, &mut text)
            .expect("render");
        let reading = Reading::take(&store, &instruments, &Pool);
        let request = RequestBuilder::new(&[], &[]).request(&reading);
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;

        // OTLP values per (metric name, family), told apart by the points' attributes.
        let mut checked = 0;
        for f in FAMILIES {
            let name = f.exposed_name();
            let prom: Vec<f64> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| {
                    let series = if f.kind == Kind::Histogram {
                        format!("{name}_count")
                    } else {
                        name.clone()
                    };
                    l.strip_prefix(&series)
                        .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
                .collect();
            assert!(!prom.is_empty(), "the fixture has no {name} series");
            for o in f.otlp {
                let m = metrics
                    .iter()
                    .find(|m| m.name == o.name)
                    .unwrap_or_else(|| panic!("no OTLP metric {} for {name}", o.name));
                assert_eq!(m.unit, o.unit);
                // The points this family contributed carry its fixed attributes.
                let mine = |attrs: &[KeyValue]| {
                    o.fixed.iter().all(|(k, v)| {
                        attrs.iter().any(|a| {
                            a.key == *k
                                && a.value.as_ref().and_then(|x| x.value.as_ref())
                                    == Some(&any_value::Value::StringValue(v.to_string()))
                        })
                    })
                };
                let mut otlp: Vec<f64> = match (&m.data, f.kind) {
                    (Some(Data::Sum(s)), Kind::Counter) => {
                        assert_eq!(s.aggregation_temporality, 2, "{} cumulative", o.name);
                        assert!(s.is_monotonic, "{} monotonic", o.name);
                        s.data_points
                            .iter()
                            .filter(|p| mine(&p.attributes))
                            .map(number)
                            .collect()
                    }
                    (Some(Data::Gauge(g)), Kind::Gauge) => g
                        .data_points
                        .iter()
                        .filter(|p| mine(&p.attributes))
                        .map(number)
                        .collect(),
                    (Some(Data::Histogram(h)), Kind::Histogram) => {
                        h.data_points.iter().map(|p| p.count as f64).collect()
                    }
                    (d, k) => panic!("{} is {d:?} for a {k:?}", o.name),
                };
                let mut expected: Vec<f64> = match o.value {
                    OtlpValue::Same => prom.clone(),
                    OtlpValue::Scale(k) => prom.iter().map(|v| v * k).collect(),
                    // Running and paused containers only.
                    OtlpValue::Uptime => {
                        let now = nanos(reading.now) as f64 / 1e9;
                        reading
                            .containers()
                            .iter()
                            .filter(|(_, c)| c.meta.state.is_live())
                            .filter_map(|(_, c)| c.meta.started_at)
                            .map(|v| now - v)
                            .collect()
                    }
                };
                assert_eq!(
                    otlp.len(),
                    expected.len(),
                    "{name} -> {}: point count",
                    o.name
                );
                let time_dependent = matches!(
                    f.series,
                    Series::Process(_) | Series::SnapshotAge | Series::OtlpLastSuccess
                );
                if !time_dependent {
                    otlp.sort_by(f64::total_cmp);
                    expected.sort_by(f64::total_cmp);
                    for (a, b) in otlp.iter().zip(&expected) {
                        assert!(
                            (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                            "{name} -> {}: {a} vs {b}",
                            o.name
                        );
                    }
                }
                checked += 1;
            }
        }
        let mapped: usize = FAMILIES.iter().map(|f| f.otlp.len()).sum();
        assert_eq!(checked, mapped);
    }

    #[test]
    fn split_requests_keep_every_point_once_and_in_order() {
        let store = Arc::new(SnapshotStore::default());
        crate::fixtures::publish_fleet(&store, 2, 5, &sample());
        let reading = Reading::take(&store, &Instruments::default(), &Pool);
        let request = RequestBuilder::new(&[], &[]).request(&reading);
        let flat = |reqs: &[ExportMetricsServiceRequest]| -> Vec<(String, Vec<u8>)> {
            reqs.iter()
                .flat_map(|r| &r.resource_metrics[0].scope_metrics[0].metrics)
                .flat_map(|m| {
                    let encoded: Vec<Vec<u8>> = match &m.data {
                        Some(Data::Sum(s)) => {
                            s.data_points.iter().map(|p| p.encode_to_vec()).collect()
                        }
                        Some(Data::Gauge(g)) => {
                            g.data_points.iter().map(|p| p.encode_to_vec()).collect()
                        }
                        Some(Data::Histogram(h)) => {
                            h.data_points.iter().map(|p| p.encode_to_vec()).collect()
                        }
                        _ => Vec::new(),
                    };
                    encoded.into_iter().map(|e| (m.name.clone(), e))
                })
                .collect()
        };
        use prost::Message as _;
        let whole = flat(std::slice::from_ref(&request));
        for max in [1, 7, 100, whole.len(), whole.len() + 1] {
            let parts = split(request.clone(), max);
            assert_eq!(parts.len(), whole.len().div_ceil(max), "max {max}");
            for p in &parts {
                let n: usize = p.resource_metrics[0].scope_metrics[0]
                    .metrics
                    .iter()
                    .map(points)
                    .sum();
                assert!(n <= max && n > 0, "{n} points in a part of max {max}");
                assert_eq!(
                    p.resource_metrics[0].resource,
                    request.resource_metrics[0].resource
                );
            }
            assert_eq!(flat(&parts), whole, "max {max}");
        }
    }

    #[test]
    fn container_points_carry_identity_and_per_run_start_times() {
        let store = Arc::new(SnapshotStore::default());
        crate::fixtures::publish_fleet(&store, 1, 1, &sample());
        let instruments = Instruments::default();
        let reading = Reading::take(&store, &instruments, &Pool);
        let request = RequestBuilder::new(
            &[("deployment.environment.name".into(), "test".into())],
            &[],
        )
        .request(&reading);
        let rm = &request.resource_metrics[0];
        let resource: BTreeMap<&str, String> = rm
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .map(|a| (a.key.as_str(), format!("{:?}", a.value)))
            .collect();
        for key in [
            "service.name",
            "service.version",
            "service.instance.id",
            "deployment.environment.name",
        ] {
            assert!(
                resource.contains_key(key),
                "resource lacks {key}: {resource:?}"
            );
        }
        let cpu = rm.scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == "container.cpu.time")
            .expect("container.cpu.time");
        let Some(Data::Sum(sum)) = &cpu.data else {
            panic!("a sum")
        };
        let (_, c) = reading.containers()[0];
        for p in &sum.data_points {
            let keys: Vec<&str> = p.attributes.iter().map(|a| a.key.as_str()).collect();
            for k in [
                "container.id",
                "container.name",
                "container.image.name",
                "host.name",
                "dockstat.client",
                "cpu.mode",
            ] {
                assert!(keys.contains(&k), "{k} missing from {keys:?}");
            }
            let started = c.meta.started_at.expect("started");
            assert_eq!(p.start_time_unix_nano, seconds_to_nanos(started));
            let seen = c.stats.as_ref().expect("sampled").seen_at;
            assert_eq!(p.time_unix_nano, seconds_to_nanos(seen));
        }
        assert_eq!(sum.data_points.len(), 2, "user and system");
    }
}
