//! `/api/v1/clients/{client}/monitoring` and `/api/v1/monitoring/stop-all`: whether a
//! client's hosts are collected (`startMonitoring`, `stopMonitoring`, `isMonitoring`, …).

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::At;
use super::{Change, ClientId, Read, Shared, audited};

/// Whether a client is monitored.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonitoringState {
    /// Its hosts are collected.
    pub monitoring: bool,
}

/// The answer of a start or stop, audited as acting on `target`.
fn now_monitoring(monitoring: bool, target: String) -> Change {
    Ok(audited(axum::Json(MonitoringState { monitoring }), target))
}

/// Whether a client's hosts are collected (`isMonitoring`).
#[utoipa::path(get, path = "/api/v1/clients/{client}/monitoring", tag = "monitoring",
    params(ClientId), responses((status = 200, body = MonitoringState)))]
pub async fn is_monitoring(At(s, p): At<ClientId>) -> Read<MonitoringState> {
    let monitoring = s.docker.is_monitoring(p.client).await?;
    Ok(axum::Json(MonitoringState { monitoring }))
}

/// Start collecting a client's enabled hosts (`startMonitoring`).
#[utoipa::path(post, path = "/api/v1/clients/{client}/monitoring/start", tag = "monitoring",
    params(ClientId), responses((status = 200, body = MonitoringState)))]
pub async fn start_monitoring(At(s, p): At<ClientId>) -> Change {
    s.docker.start_monitoring(p.client).await?;
    now_monitoring(true, format!("client {}", p.client))
}

/// Stop collecting a client's hosts; their series leave `/metrics` (`stopMonitoring`).
#[utoipa::path(post, path = "/api/v1/clients/{client}/monitoring/stop", tag = "monitoring",
    params(ClientId), responses((status = 200, body = MonitoringState)))]
pub async fn stop_monitoring(At(s, p): At<ClientId>) -> Change {
    s.docker.stop_monitoring(p.client).await?;
    now_monitoring(false, format!("client {}", p.client))
}

/// Stop collecting every client (`stopAllMonitoring`).
#[utoipa::path(post, path = "/api/v1/monitoring/stop-all", tag = "monitoring",
    responses((status = 200, body = MonitoringState)))]
pub async fn stop_all_monitoring(State(s): Shared) -> Change {
    s.docker.stop_all_monitoring().await?;
    now_monitoring(false, "all clients".to_string())
}
