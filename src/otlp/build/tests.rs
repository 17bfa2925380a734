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
            shard: Default::default(),
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
    // Every resource's part of each metric, merged: the values are compared per family.
    let mut metrics: Vec<Metric> = Vec::new();
    for m in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        match metrics.iter_mut().find(|x| x.name == m.name) {
            None => metrics.push(m.clone()),
            Some(x) => match (&mut x.data, &m.data) {
                (Some(Data::Sum(a)), Some(Data::Sum(b))) => {
                    a.data_points.extend(b.data_points.iter().cloned())
                }
                (Some(Data::Gauge(a)), Some(Data::Gauge(b))) => {
                    a.data_points.extend(b.data_points.iter().cloned())
                }
                (Some(Data::Histogram(a)), Some(Data::Histogram(b))) => {
                    a.data_points.extend(b.data_points.iter().cloned())
                }
                _ => panic!("{} changes kind between resources", m.name),
            },
        }
    }

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
    // Every point with its resource and metric, in order.
    let flat = |reqs: &[ExportMetricsServiceRequest]| -> Vec<(Vec<u8>, String, Vec<u8>)> {
        reqs.iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|rm| {
                let resource = rm
                    .resource
                    .as_ref()
                    .map(|r| r.encode_to_vec())
                    .unwrap_or_default();
                rm.scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .map(move |m| (resource.clone(), m))
            })
            .flat_map(|(resource, m)| {
                let encoded: Vec<Vec<u8>> = match &m.data {
                    Some(Data::Sum(s)) => s.data_points.iter().map(|p| p.encode_to_vec()).collect(),
                    Some(Data::Gauge(g)) => {
                        g.data_points.iter().map(|p| p.encode_to_vec()).collect()
                    }
                    Some(Data::Histogram(h)) => {
                        h.data_points.iter().map(|p| p.encode_to_vec()).collect()
                    }
                    _ => Vec::new(),
                };
                encoded
                    .into_iter()
                    .map(move |e| (resource.clone(), m.name.clone(), e))
            })
            .collect()
    };
    use prost::Message as _;
    let whole = flat(std::slice::from_ref(&request));
    for max in [1, 7, 100, whole.len(), whole.len() + 1] {
        let parts = split(request.clone(), max);
        assert_eq!(parts.len(), whole.len().div_ceil(max), "max {max}");
        for p in &parts {
            let n: usize = p
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(points)
                .sum();
            assert!(n <= max && n > 0, "{n} points in a part of max {max}");
            for rm in &p.resource_metrics {
                assert!(
                    request
                        .resource_metrics
                        .iter()
                        .any(|r| r.resource == rm.resource),
                    "a part's resource is one of the request's"
                );
            }
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
    let attrs = |rm: &ResourceMetrics| -> BTreeMap<String, String> {
        rm.resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .map(|a| (a.key.clone(), format!("{:?}", a.value)))
            .collect()
    };
    // The exporter's own resource comes first.
    let service = attrs(&request.resource_metrics[0]);
    for key in [
        "service.name",
        "service.version",
        "service.instance.id",
        "deployment.environment.name",
    ] {
        assert!(
            service.contains_key(key),
            "resource lacks {key}: {service:?}"
        );
    }
    let (_, c) = reading.containers()[0];
    let containers: Vec<&ResourceMetrics> = request
        .resource_metrics
        .iter()
        .filter(|rm| attrs(rm).contains_key("container.id"))
        .collect();
    assert_eq!(containers.len(), 1, "one resource per container");
    let rm = containers[0];
    let resource = attrs(rm);
    for k in [
        "container.id",
        "container.name",
        "container.image.name",
        "container.image.tags",
        "container.runtime.name",
        "host.name",
        "dockstat.client",
        "dockstat.host",
    ] {
        assert!(resource.contains_key(k), "{k} missing from {resource:?}");
    }
    assert!(!resource.contains_key("service.name"), "{resource:?}");
    assert!(
        resource["container.image.name"].contains("registry.example.org/team/service\""),
        "{resource:?}"
    );
    assert!(
        resource["container.image.tags"].contains("1.2.3"),
        "{resource:?}"
    );
    assert!(
        resource["host.name"].contains("docker-host"),
        "{resource:?}"
    );
    let cpu = rm.scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == "container.cpu.time")
        .expect("container.cpu.time");
    let Some(Data::Sum(sum)) = &cpu.data else {
        panic!("a sum")
    };
    for p in &sum.data_points {
        let keys: Vec<&str> = p.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["cpu.mode"], "identity is on the resource");
        let started = c.meta.started_at.expect("started");
        assert_eq!(p.start_time_unix_nano, seconds_to_nanos(started));
        let seen = c.stats.as_ref().expect("sampled").seen_at;
        assert_eq!(p.time_unix_nano, seconds_to_nanos(seen));
    }
    assert_eq!(sum.data_points.len(), 2, "user and system");
}

#[test]
fn image_references_split_into_name_and_tag() {
    for (image, name, tag) in [
        ("nginx", "nginx", Some("latest")),
        ("nginx:1.25", "nginx", Some("1.25")),
        (
            "localhost:5000/team/app",
            "localhost:5000/team/app",
            Some("latest"),
        ),
        (
            "localhost:5000/team/app:v2",
            "localhost:5000/team/app",
            Some("v2"),
        ),
        ("app@sha256:abcd", "app", None),
        ("app:v1@sha256:abcd", "app", Some("v1")),
        ("sha256:0123abcd", "sha256:0123abcd", None),
    ] {
        assert_eq!(split_image(image), (name, tag), "{image}");
    }
}
