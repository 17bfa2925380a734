//! The metrics listener: `/metrics`, `/metrics?target=<client>/<host>` (one host's series,
//! the multi-target exporter pattern), `/sd` (Prometheus HTTP service discovery: one
//! target per host of this replica), `/healthz`, `/readyz`. It serves no container actions,
//! so it can face Prometheus on any interface.
//!
//! `/metrics?target=exporter` serves the exporter's own series only (process, pool, shard,
//! build, OTLP figures), for a scrape job of their own next to the per-host targets.
//!
//! A target names a host as `<client>/<host>`; a `%` or `/` within either name is written
//! `%25` or `%2F` (inside the parameter's value, so `%252F` on the wire), which keeps the
//! one unescaped `/` the separator whatever the names hold. `/sd` writes targets that way.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;

use crate::DockerClient;
use crate::families::Reading;
use crate::metrics::{Exposition, Format};

/// What the metrics listener's handlers share.
struct AppState {
    docker: DockerClient,
    exposition: Arc<Exposition>,
    /// This replica's address as Prometheus reaches it, for `/sd`.
    advertise: String,
}

/// Chunks rendered ahead of the socket: bounds what a scrape holds (4 × 256 KiB).
const CHUNKS_AHEAD: usize = 4;

/// How long the renderer waits for a scraper to take the next chunk before giving up on it.
const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// The router of the metrics listener; `gzip` compresses `/metrics` for scrapers that
/// accept it (`metrics.gzip`); `/sd` hands out `advertise` (`host:port`) as every
/// target's address.
pub fn router(docker: DockerClient, gzip: bool, advertise: String) -> Router {
    let state = Arc::new(AppState {
        exposition: Arc::new(docker.exposition()),
        docker,
        advertise,
    });
    let scrape = if gzip {
        // Fastest level: most of the size gain (the text is very repetitive) for the least
        // CPU; chunks are compressed as they stream.
        get(metrics).layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
    } else {
        get(metrics)
    };
    Router::new()
        .route("/", get(index))
        .route("/metrics", scrape)
        .route("/sd", get(sd))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><head><title>dockstat-exporter</title></head><body><h1>dockstat-exporter</h1>\
         <p><a href=\"/metrics\">/metrics</a> · <a href=\"/sd\">/sd</a> · \
         <a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a></p></body></html>",
    )
}

/// `/metrics`' query: `target` picks one host.
#[derive(Debug, serde::Deserialize)]
struct MetricsQuery {
    target: Option<String>,
}

async fn metrics(
    State(state): State<Arc<AppState>>,
    Query(query): Query<MetricsQuery>,
    headers: HeaderMap,
) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let what = match query.target.as_deref() {
        None => What::Everything(state.exposition.clone()),
        Some(EXPORTER_TARGET) => What::Exporter(state.exposition.clone()),
        Some(t) => {
            let Some((client, host)) = parse_target(t) else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "target `{}` is not <client>/<host> (a `/` or `%` in a name is written %2F or %25)",
                        t.escape_debug()
                    ),
                );
            };
            match state.exposition.read_host(&client, &host) {
                Some(reading) => What::Host(Arc::new(reading)),
                None => {
                    let shard = state.docker.shard();
                    let whose = if shard.total > 1 {
                        format!(" (shard {} of {})", shard.index, shard.total)
                    } else {
                        String::new()
                    };
                    return refuse(
                        StatusCode::NOT_FOUND,
                        format!(
                            "no host `{}` of client `{}` on this replica{whose}",
                            host.escape_debug(),
                            client.escape_debug()
                        ),
                    );
                }
            }
        }
    };
    let (body, _rendering) = stream(what, format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// The target of the exporter's own series (no `/`, so no host's).
pub const EXPORTER_TARGET: &str = "exporter";

/// A one-line plain-text refusal.
fn refuse(status: StatusCode, reason: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{reason}\n"),
    )
        .into_response()
}

/// `<client>/<host>` with `%` and `/` in the names escaped: what `/sd` hands out as
/// `__param_target`.
pub fn target_of(client: &str, host: &str) -> String {
    let esc = |s: &str| s.replace('%', "%25").replace('/', "%2F");
    format!("{}/{}", esc(client), esc(host))
}

/// The client and host of a target written by [`target_of`]; None unless there is exactly
/// one unescaped `/` between two names.
pub fn parse_target(target: &str) -> Option<(String, String)> {
    let (client, host) = target.split_once('/')?;
    if host.contains('/') || client.is_empty() || host.is_empty() {
        return None;
    }
    let unescape = |s: &str| -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let code = rest.get(i + 1..i + 3);
            match code {
                Some(c) if c.eq_ignore_ascii_case("2f") => out.push('/'),
                Some("25") => out.push('%'),
                _ => {
                    out.push('%');
                    rest = &rest[i + 1..];
                    continue;
                }
            }
            rest = &rest[i + 3..];
        }
        out.push_str(rest);
        out
    };
    Some((unescape(client), unescape(host)))
}

/// `GET /sd`: Prometheus HTTP service discovery, one target group per host of this
/// replica (its shard), each pointing at `/metrics?target=<client>/<host>` here. The client
/// and host go in `__meta_` labels, for relabeling: plain `client`/`host` target labels
/// would collide with the series' own. `instance` is the target, not this replica's
/// address: every host target's `up` and `scrape_*` series stay apart, and a host's series
/// keep their identity when it moves to another replica.
async fn sd(State(state): State<Arc<AppState>>) -> Response {
    let snap = state.docker.snapshot();
    let groups: Vec<serde_json::Value> = snap
        .hosts
        .iter()
        .map(|h| {
            let target = target_of(&h.client, &h.name);
            json!({
                "targets": [state.advertise],
                "labels": {
                    "instance": target,
                    "__metrics_path__": "/metrics",
                    "__param_target": target,
                    "__meta_dockstat_client": &*h.client,
                    "__meta_dockstat_host": &*h.name,
                },
            })
        })
        .collect();
    axum::Json(groups).into_response()
}

/// What a scrape renders.
enum What {
    /// The plain `/metrics`: read when the rendering starts.
    Everything(Arc<Exposition>),
    /// The exporter's own series only (`?target=exporter`).
    Exporter(Arc<Exposition>),
    /// One host's reading.
    Host(Arc<Reading>),
}

/// Streams the exposition as it is rendered: the first bytes leave at once and at most
/// [`CHUNKS_AHEAD`] chunks are held, whatever the number of containers. Rendering is CPU
/// work, so it runs on a blocking thread (the returned task: true when it rendered
/// everything) and hands chunks over a bounded channel; a scraper that goes away, or stops
/// reading for [`SEND_DEADLINE`], ends it. A rendering abandoned half-way ends the body with
/// an error (the connection is reset) rather than looking complete.
fn stream(what: What, format: Format) -> (Body, JoinHandle<bool>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_AHEAD);
    let runtime = tokio::runtime::Handle::current();
    let rendering = tokio::task::spawn_blocking(move || {
        let send = |chunk: String| {
            let sent = runtime.block_on(async {
                tokio::time::timeout(SEND_DEADLINE, tx.send(Ok(Bytes::from(chunk)))).await
            });
            matches!(sent, Ok(Ok(())))
        };
        let rendered = match &what {
            What::Everything(exposition) => exposition.render_chunked(format, send),
            What::Exporter(exposition) => exposition.render_exporter_chunked(format, send),
            What::Host(reading) => crate::metrics::render_host_chunked(reading, format, send),
        };
        if rendered.is_err() {
            tracing::debug!("/metrics: the scraper stopped reading; rendering abandoned");
            let _ = tx.try_send(Err(std::io::Error::other("rendering abandoned")));
            return false;
        }
        true
    });
    (Body::from_stream(ReceiverStream::new(rx)), rendering)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready once every collected host has been collected at least once or has a recorded error.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let pending = state.docker.pending_hosts();
    if pending.is_empty() {
        axum::Json(json!({"ready": true})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "ready": false,
                "reason": format!("{} host(s) not collected yet", pending.len()),
                "pending": pending,
            })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;
    use crate::families::{PoolFigures, PoolSource};
    use crate::fixtures::{publish_fleet, recorded_sample};
    use crate::instruments::Instruments;
    use crate::metrics::CHUNK;
    use crate::snapshot::SnapshotStore;

    #[derive(Debug)]
    struct NoPool;

    impl PoolSource for NoPool {
        fn figures(&self) -> PoolFigures {
            PoolFigures::default()
        }
    }

    /// 1,000 containers: an exposition of several chunks.
    fn exposition() -> Arc<Exposition> {
        let store = Arc::new(SnapshotStore::default());
        publish_fleet(&store, 4, 250, &recorded_sample().expect("fixture"));
        Arc::new(Exposition::new(
            store,
            Arc::new(Instruments::default()),
            Arc::new(NoPool),
        ))
    }

    #[tokio::test]
    async fn streams_the_whole_exposition_in_chunks() {
        let exposition = exposition();
        let (body, rendering) = stream(What::Everything(exposition.clone()), Format::OpenMetrics);
        let mut body = body.into_data_stream();
        let (mut text, mut chunks) = (Vec::new(), 0);
        while let Some(chunk) = body.frame().await {
            let chunk = chunk.expect("chunk").into_data().expect("data");
            assert!(
                chunk.len() <= CHUNK + 1024,
                "a chunk of {} bytes",
                chunk.len()
            );
            text.extend_from_slice(&chunk);
            chunks += 1;
        }
        assert!(rendering.await.expect("joined"), "rendered to the end");
        let text = String::from_utf8(text).expect("utf-8");
        let mut whole = String::new();
        exposition
            .render(Format::OpenMetrics, &mut whole)
            .expect("render");
        assert!(chunks >= 4, "{chunks} chunks for {} bytes", text.len());
        assert!(text.ends_with("# EOF\n"));
        let series = |t: &str| {
            t.lines()
                .filter(|l| l.starts_with("container_cpu_usage_seconds_total{"))
                .count()
        };
        assert_eq!(series(&text), 1000);
        // The same as rendered whole, but for what depends on the moment of reading: the
        // exporter's own figures and the snapshot's age.
        let own = |l: &&str| {
            [
                "dockstat_process",
                "process_",
                "dockstat_snapshot_age",
                "dockstat_disk_usage_age",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        };
        let lines = |t: &str| {
            t.lines()
                .filter(|l| !own(l))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let (streamed, whole) = (lines(&text), lines(&whole));
        let differ: Vec<_> = streamed
            .iter()
            .zip(&whole)
            .filter(|(a, b)| a != b)
            .take(3)
            .collect();
        assert!(differ.is_empty(), "{differ:?}");
        assert_eq!(streamed.len(), whole.len());
    }

    #[tokio::test]
    async fn a_scraper_that_leaves_ends_the_rendering() {
        let (body, rendering) = stream(What::Everything(exposition()), Format::Text);
        let mut body = body.into_data_stream();
        let first = body.frame().await.expect("a first chunk").expect("chunk");
        assert!(!first.into_data().expect("data").is_empty());
        drop(body);
        let finished = tokio::time::timeout(Duration::from_secs(5), rendering)
            .await
            .expect("the rendering stops soon after the scraper left")
            .expect("joined");
        assert!(!finished, "abandoned, not rendered to the end");
    }

    #[test]
    fn targets_survive_names_with_slashes_and_percents() {
        for (c, h) in [
            ("bench", "host-001"),
            ("team/a", "eu/west/1"),
            ("50%", "%2F"),
            ("a%2", "b%"),
        ] {
            let t = target_of(c, h);
            assert_eq!(t.matches('/').count(), 1, "{t}");
            assert_eq!(
                parse_target(&t),
                Some((c.to_string(), h.to_string())),
                "{t}"
            );
        }
        assert_eq!(parse_target("no-slash"), None);
        assert_eq!(parse_target("a/b/c"), None);
        assert_eq!(parse_target("/b"), None);
        assert_eq!(parse_target("a/"), None);
    }

    /// Renders one host's target whole.
    fn host_text(exposition: &Exposition, client: &str, host: &str, format: Format) -> String {
        let reading = Arc::new(exposition.read_host(client, host).expect("a known host"));
        let mut text = String::new();
        crate::metrics::render_host_chunked(&reading, format, |chunk| {
            text.push_str(&chunk);
            true
        })
        .expect("render");
        text
    }

    #[test]
    fn a_host_target_holds_that_host_only_and_none_of_the_exporters_own() {
        let exposition = exposition();
        assert!(exposition.read_host("bench", "host-404").is_none());
        assert!(exposition.read_host("other", "host-001").is_none());
        let mut whole = String::new();
        exposition.render(Format::Text, &mut whole).expect("render");
        let series = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect()
        };
        let mut union = Vec::new();
        for format in [Format::Text, Format::OpenMetrics] {
            for h in 0..4 {
                let host = format!("host-{h:03}");
                let text = host_text(&exposition, "bench", &host, format);
                let lines = series(&text);
                let cpu = lines
                    .iter()
                    .filter(|l| l.starts_with("container_cpu_usage_seconds_total{"))
                    .count();
                assert_eq!(cpu, 250, "{host}");
                for l in &lines {
                    assert!(
                        l.contains(&format!("host=\"{host}\",client=\"bench\"")),
                        "{host}: a series of another subject: {l}"
                    );
                }
                for own in [
                    "dockstat_build_info",
                    "process_",
                    "dockstat_pool_",
                    "dockstat_shard_",
                ] {
                    assert!(!text.contains(own), "{host}: {own} on a host target");
                }
                assert!(text.contains("dockstat_host_up{"), "{host}");
                if format == Format::OpenMetrics {
                    assert!(text.ends_with("# EOF\n"), "{host}");
                } else {
                    union.extend(lines);
                }
            }
        }
        // Together, the host targets hold every host series of the plain /metrics, apart
        // from what depends on the moment of reading.
        let moment = |l: &String| {
            l.starts_with("dockstat_snapshot_age") || l.starts_with("dockstat_disk_usage_age")
        };
        let mut plain: Vec<String> = series(&whole)
            .into_iter()
            .filter(|l| l.contains("host=\""))
            .filter(|l| !moment(l))
            .collect();
        union.retain(|l| !moment(l));
        plain.sort();
        union.sort();
        assert_eq!(plain.len(), union.len());
        let only_plain: Vec<&String> = plain.iter().filter(|l| !union.contains(l)).collect();
        let only_targets: Vec<&String> = union.iter().filter(|l| !plain.contains(l)).collect();
        assert!(
            plain == union,
            "the host targets differ from /metrics: only in /metrics {only_plain:?}, only in the targets {only_targets:?}"
        );

        // The exporter's target: what the host targets leave out, and nothing else.
        let mut own = String::new();
        exposition
            .render_exporter_chunked(Format::Text, |chunk| {
                own.push_str(&chunk);
                true
            })
            .expect("render");
        let own = series(&own);
        assert!(own.iter().any(|l| l.starts_with("dockstat_build_info")));
        assert!(own.iter().any(|l| l.starts_with("dockstat_shard_hosts 4")));
        assert!(own.iter().all(|l| !l.contains("host=\"")), "{own:?}");
        let hosts_and_own = plain.len() + own.len();
        let everything = series(&whole).into_iter().filter(|l| !moment(l)).count();
        assert_eq!(
            hosts_and_own, everything,
            "host targets + exporter = /metrics"
        );
    }
}
