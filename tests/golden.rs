//! The golden files: the fixed fleet of `fixtures` rendered as `/metrics` (Prometheus text
//! and OpenMetrics) and as an OTLP request, compared byte for byte with `tests/fixtures/`.
//! The expositions must also pass `promtool check metrics`.
//!
//! Needs no Docker and no root: part of the quick tier (`scripts/test.sh --quick`). A change
//! to what the exporter writes shows here as a diff; when it is meant, regenerate the files
//! with `DOCKSTAT_BLESS=1 cargo test --test golden` and commit them with the change.
//!
//! promtool comes with Debian's `prometheus` package; without it these tests fail (they
//! never skip), saying so.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use dockstat_exporter::fixtures;
use dockstat_exporter::metrics::Format;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric::Data, number_data_point};
use prost::Message as _;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Compares `got` with the golden file `name`, or writes it when `DOCKSTAT_BLESS=1`.
fn check(name: &str, got: &str) {
    let path = golden_path(name);
    if std::env::var("DOCKSTAT_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, got).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with DOCKSTAT_BLESS=1 cargo test --test golden",
            path.display()
        )
    });
    if let Some((i, (w, g))) = want
        .lines()
        .zip(got.lines())
        .enumerate()
        .find(|(_, (w, g))| w != g)
    {
        panic!(
            "{name} differs at line {}:\nwant {w:?}\ngot  {g:?}\n\
             (if the change is meant: DOCKSTAT_BLESS=1 cargo test --test golden)",
            i + 1
        );
    }
    assert_eq!(
        want.lines().count(),
        got.lines().count(),
        "{name}: line counts differ (if meant: DOCKSTAT_BLESS=1 cargo test --test golden)"
    );
    assert_eq!(want, got, "{name}");
}

/// `promtool check metrics` on `text`: it must find nothing to say but the documented
/// cAdvisor-name exceptions (`families::promtool_exceptions`), each of which it does say.
fn promtool_clean(what: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool cannot run ({e}): the golden tests need it; install Debian's \
                 `prometheus` package (apt-get install prometheus) or put promtool on PATH"
            )
        });
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let unexpected = dockstat_exporter::families::promtool_unexpected(&said);
    assert!(
        unexpected.is_empty() && (out.status.success() || !said.trim().is_empty()),
        "promtool check metrics on {what}:\n{said}"
    );
    for exception in dockstat_exporter::families::promtool_exceptions() {
        assert!(
            said.contains(&exception),
            "{what}: promtool no longer says {exception:?}: drop the exception"
        );
    }
}

#[test]
fn prometheus_text_exposition() {
    let text = fixtures::exposition(Format::Text).expect("the golden fleet renders");
    check("metrics.prom", &text);
    promtool_clean("metrics.prom", &text);
}

/// promtool 2.42's `check metrics` reads the classic text format only (an OpenMetrics
/// counter family is named without `_total`, which it reads as series without help), so
/// the OpenMetrics golden is compared, not linted.
#[test]
fn openmetrics_exposition() {
    let text = fixtures::exposition(Format::OpenMetrics).expect("the golden fleet renders");
    check("metrics.om", &text);
}

/// The request as it goes on the wire, decoded again with the official OTLP protobuf types
/// and written out one line per resource, scope, metric and data point.
#[test]
fn otlp_request() {
    let request = fixtures::otlp_request().expect("the golden fleet builds");
    let wire = request.encode_to_vec();
    let decoded = ExportMetricsServiceRequest::decode(wire.as_slice()).expect("decodes");
    assert_eq!(decoded, request, "the request survives its encoding");
    check("otlp.txt", &otlp_text(&decoded));
}

fn attrs(list: &[KeyValue]) -> String {
    let one = |kv: &KeyValue| {
        let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => format!("{s:?}"),
            Some(any_value::Value::IntValue(i)) => i.to_string(),
            Some(any_value::Value::ArrayValue(a)) => {
                let items: Vec<String> = a
                    .values
                    .iter()
                    .map(|v| match &v.value {
                        Some(any_value::Value::StringValue(s)) => format!("{s:?}"),
                        other => format!("{other:?}"),
                    })
                    .collect();
                format!("[{}]", items.join(", "))
            }
            Some(other) => format!("{other:?}"),
            None => "-".to_string(),
        };
        format!("{}={v}", kv.key)
    };
    list.iter().map(one).collect::<Vec<_>>().join(" ")
}

/// One line per resource, scope, metric and data point; every field the exporter sets.
fn otlp_text(r: &ExportMetricsServiceRequest) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for rm in &r.resource_metrics {
        let resource = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let _ = writeln!(
            out,
            "resource {} schema={:?}",
            attrs(resource),
            rm.schema_url
        );
        for sm in &rm.scope_metrics {
            let (name, version) = sm
                .scope
                .as_ref()
                .map_or(("", ""), |s| (s.name.as_str(), s.version.as_str()));
            let _ = writeln!(out, "scope {name} {version} schema={:?}", sm.schema_url);
            for m in &sm.metrics {
                let kind = match &m.data {
                    Some(Data::Sum(s)) => format!(
                        "sum temporality={} monotonic={}",
                        s.aggregation_temporality, s.is_monotonic
                    ),
                    Some(Data::Gauge(_)) => "gauge".to_string(),
                    Some(Data::Histogram(h)) => {
                        format!("histogram temporality={}", h.aggregation_temporality)
                    }
                    other => format!("{other:?}"),
                };
                let _ = writeln!(
                    out,
                    "metric {} unit={:?} {kind} metadata={:?}\n  description {:?}",
                    m.name, m.unit, m.metadata, m.description
                );
                let number = |p: &NumberDataPoint| {
                    let v = match p.value {
                        Some(number_data_point::Value::AsDouble(v)) => format!("{v:?}"),
                        Some(number_data_point::Value::AsInt(i)) => format!("{i}i"),
                        None => "-".to_string(),
                    };
                    format!(
                        "  point start={} time={} flags={} exemplars={} value={v} {}",
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.flags,
                        p.exemplars.len(),
                        attrs(&p.attributes)
                    )
                };
                match &m.data {
                    Some(Data::Sum(s)) => s.data_points.iter().for_each(|p| {
                        let _ = writeln!(out, "{}", number(p));
                    }),
                    Some(Data::Gauge(g)) => g.data_points.iter().for_each(|p| {
                        let _ = writeln!(out, "{}", number(p));
                    }),
                    Some(Data::Histogram(h)) => h.data_points.iter().for_each(|p| {
                        let _ = writeln!(
                            out,
                            "  point start={} time={} flags={} count={} sum={:?} min={:?} max={:?} \
                             bounds={:?} counts={:?} {}",
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                            p.flags,
                            p.count,
                            p.sum,
                            p.min,
                            p.max,
                            p.explicit_bounds,
                            p.bucket_counts,
                            attrs(&p.attributes)
                        );
                    }),
                    _ => {}
                }
            }
        }
    }
    out
}

/// Every family of the table has a series in the golden fleet, so a new family cannot be
/// added without showing up in the golden files.
#[test]
fn the_golden_fleet_has_every_family() {
    let text = fixtures::exposition(Format::Text).expect("the golden fleet renders");
    for f in dockstat_exporter::families::FAMILIES {
        let name = f.exposed_name();
        let series = text.lines().filter(|l| !l.starts_with('#')).any(|l| {
            l.strip_prefix(&name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']) || rest.starts_with("_bucket{"))
        });
        assert!(series, "the golden fleet has no {name} series");
    }
}
