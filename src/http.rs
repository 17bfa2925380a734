//! The metrics listener: `/metrics`, `/healthz`, `/readyz`. It serves no container actions,
//! so it can face Prometheus on any interface.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
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
use crate::metrics::{Exposition, Format};

/// What the metrics listener's handlers share.
struct AppState {
    docker: DockerClient,
    exposition: Arc<Exposition>,
}

/// Chunks rendered ahead of the socket: bounds what a scrape holds (4 × 256 KiB).
const CHUNKS_AHEAD: usize = 4;

/// How long the renderer waits for a scraper to take the next chunk before giving up on it.
const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// The router of the metrics listener; `gzip` compresses `/metrics` for scrapers that
/// accept it (`metrics.gzip`).
pub fn router(docker: DockerClient, gzip: bool) -> Router {
    let state = Arc::new(AppState {
        exposition: Arc::new(docker.exposition()),
        docker,
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
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><head><title>dockstat-exporter</title></head><body><h1>dockstat-exporter</h1>\
         <p><a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a> · \
         <a href=\"/readyz\">/readyz</a></p></body></html>",
    )
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let (body, _rendering) = stream(state.exposition.clone(), format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Streams the exposition as it is rendered: the first bytes leave at once and at most
/// [`CHUNKS_AHEAD`] chunks are held, whatever the number of containers. Rendering is CPU
/// work, so it runs on a blocking thread (the returned task: true when it rendered
/// everything) and hands chunks over a bounded channel; a scraper that goes away, or stops
/// reading for [`SEND_DEADLINE`], ends it. A rendering abandoned half-way ends the body with
/// an error (the connection is reset) rather than looking complete.
fn stream(exposition: Arc<Exposition>, format: Format) -> (Body, JoinHandle<bool>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_AHEAD);
    let runtime = tokio::runtime::Handle::current();
    let rendering = tokio::task::spawn_blocking(move || {
        let send = |chunk: String| {
            let sent = runtime.block_on(async {
                tokio::time::timeout(SEND_DEADLINE, tx.send(Ok(Bytes::from(chunk)))).await
            });
            matches!(sent, Ok(Ok(())))
        };
        if exposition.render_chunked(format, send).is_err() {
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
        let (body, rendering) = stream(exposition.clone(), Format::OpenMetrics);
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
        let (body, rendering) = stream(exposition(), Format::Text);
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
}
