//! The metrics listener: `/metrics`, `/healthz`, `/readyz`. It serves no container actions,
//! so it can face Prometheus on any interface.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::DockerClient;
use crate::metrics::{Exposition, Format};

struct AppState {
    client: DockerClient,
    exposition: Exposition,
    // Size of the last rendering: the next one allocates once, at the right size.
    last_len: AtomicUsize,
}

/// The router of the metrics listener.
pub fn router(client: DockerClient) -> Router {
    let state = Arc::new(AppState {
        exposition: client.exposition(),
        client,
        last_len: AtomicUsize::new(64 * 1024),
    });
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
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
    // Rendering thousands of containers is CPU work: keep it off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(state.last_len.load(Ordering::Relaxed) + 4096);
        let result = state.exposition.render(format, &mut out);
        state.last_len.store(out.len(), Ordering::Relaxed);
        result.map(|()| out)
    })
    .await;
    match rendered {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Ok(Err(_)) | Err(_) => {
            tracing::error!("rendering /metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response()
        }
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready once every collected host has been collected at least once or has a recorded error.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let pending = state.client.pending_hosts();
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
