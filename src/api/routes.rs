//! The handlers of `/api/v1`. Each is a thin wrapper over a [`DockerClient`] call: parse
//! and check the input, call, shape the answer. The `#[utoipa::path]` on each is what the
//! OpenAPI document is generated from, so the document and the router cannot drift apart.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::AuditTarget;
use super::error::ApiError;
use super::extract::{Json, Path, Query};
use crate::client::{
    ActionOutcome, ContainerListing, ContainerQuery, ContainerRef, HostCheck, HostHealth,
    HostUpdate, LogLine, LogQuery, NewHost,
};
use crate::config::TlsConfig;
use crate::pool::PoolStatus;
use crate::store::{AuditRecord, ClientRecord, HostRecord};

type Shared = State<Arc<AppState>>;
type ApiResult<T> = Result<T, ApiError>;

fn with_target(r: impl IntoResponse, target: String) -> Response {
    let mut r = r.into_response();
    r.extensions_mut().insert(AuditTarget(target));
    r
}

// ---------------------------------------------------------------- clients

/// A client to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    /// Unique name; the `client` label of its hosts' series.
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    pub name: String,
}

/// Changes to a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientBody {
    /// New unique name.
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    pub name: String,
}

/// List clients (`getClients`).
#[utoipa::path(get, path = "/api/v1/clients", tag = "clients",
    responses((status = 200, body = Vec<ClientRecord>)))]
pub async fn list_clients(State(s): Shared) -> ApiResult<axum::Json<Vec<ClientRecord>>> {
    Ok(axum::Json(s.client.clients().await?))
}

/// Register a client (`registerClient`).
#[utoipa::path(post, path = "/api/v1/clients", tag = "clients", request_body = NewClientBody,
    responses((status = 201, body = ClientRecord)))]
pub async fn register_client(
    State(s): Shared,
    Json(body): Json<NewClientBody>,
) -> ApiResult<Response> {
    let c = s.client.register_client(&body.name).await?;
    let target = format!("client {}", c.id);
    Ok(with_target((StatusCode::CREATED, axum::Json(c)), target))
}

/// One client (`getClient`).
#[utoipa::path(get, path = "/api/v1/clients/{client}", tag = "clients",
    params(("client" = i64, Path, description = "Client id")),
    responses((status = 200, body = ClientRecord)))]
pub async fn get_client(
    State(s): Shared,
    Path(client): Path<i64>,
) -> ApiResult<axum::Json<ClientRecord>> {
    Ok(axum::Json(s.client.client(client).await?))
}

/// Rename a run-time client (`updateClient`); clients from the file are read-only (409).
#[utoipa::path(patch, path = "/api/v1/clients/{client}", tag = "clients",
    params(("client" = i64, Path, description = "Client id")),
    request_body = UpdateClientBody,
    responses((status = 200, body = ClientRecord)))]
pub async fn update_client(
    State(s): Shared,
    Path(client): Path<i64>,
    Json(body): Json<UpdateClientBody>,
) -> ApiResult<Response> {
    let c = s.client.rename_client(client, &body.name).await;
    let target = format!("client {client}");
    Ok(with_target(axum::Json(c?), target))
}

/// Remove a run-time client, its hosts and their collection (`removeClient`).
#[utoipa::path(delete, path = "/api/v1/clients/{client}", tag = "clients",
    params(("client" = i64, Path, description = "Client id")),
    responses((status = 204, description = "Removed")))]
pub async fn remove_client(State(s): Shared, Path(client): Path<i64>) -> ApiResult<Response> {
    let c = s.client.client(client).await?;
    s.client.remove_client(client).await?;
    Ok(with_target(
        StatusCode::NO_CONTENT,
        format!("client {client} ({})", c.name),
    ))
}

// ---------------------------------------------------------------- hosts

/// Mutual TLS files of a host (paths on the exporter's machine).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsBody {
    /// CA that signed the daemon's certificate.
    #[schema(min_length = 1, pattern = r"\S")]
    pub ca: String,
    /// Client certificate.
    #[schema(min_length = 1, pattern = r"\S")]
    pub cert: String,
    /// Client key.
    #[schema(min_length = 1, pattern = r"\S")]
    pub key: String,
}

impl From<TlsBody> for TlsConfig {
    fn from(t: TlsBody) -> TlsConfig {
        TlsConfig {
            ca: t.ca,
            cert: t.cert,
            key: t.key,
        }
    }
}

/// A host to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHostBody {
    /// Unique within the client; the `host` label.
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    pub name: String,
    /// `unix:///path`, `tcp://host:port` or `host:port`.
    #[schema(
        min_length = 1,
        pattern = r"^(unix:///[A-Za-z0-9._/-]+|/[A-Za-z0-9._/-]+|(tcp://)?[A-Za-z0-9][A-Za-z0-9.-]{0,62}:[1-9][0-9]{0,3})$"
    )]
    pub address: String,
    /// Mutual TLS for a TCP address (not with a unix socket). The files must exist on the
    /// exporter's machine and be regular files.
    #[serde(default)]
    pub tls: Option<TlsBody>,
    /// Collected when the client is monitored. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Changes to a host; absent fields keep their value, `"tls": null` removes TLS.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateHostBody {
    /// New name.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    pub name: Option<String>,
    /// New address.
    #[serde(default)]
    #[schema(
        min_length = 1,
        pattern = r"^(unix:///[A-Za-z0-9._/-]+|/[A-Za-z0-9._/-]+|(tcp://)?[A-Za-z0-9][A-Za-z0-9.-]{0,62}:[1-9][0-9]{0,3})$"
    )]
    pub address: Option<String>,
    /// New TLS files, or null to remove TLS.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable)]
    pub tls: Option<Option<TlsBody>>,
    /// Enable or disable collection.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Tells "absent" (None) from "null" (Some(None)).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Hosts of a client (`getHosts`).
#[utoipa::path(get, path = "/api/v1/clients/{client}/hosts", tag = "hosts",
    params(("client" = i64, Path, description = "Client id")),
    responses((status = 200, body = Vec<HostRecord>)))]
pub async fn list_hosts(
    State(s): Shared,
    Path(client): Path<i64>,
) -> ApiResult<axum::Json<Vec<HostRecord>>> {
    Ok(axum::Json(s.client.hosts(client).await?))
}

/// Add a host to a client; collected at once when the client is monitored (`addHost`).
#[utoipa::path(post, path = "/api/v1/clients/{client}/hosts", tag = "hosts",
    params(("client" = i64, Path, description = "Client id")),
    request_body = NewHostBody,
    responses((status = 201, body = HostRecord)))]
pub async fn add_host(
    State(s): Shared,
    Path(client): Path<i64>,
    Json(body): Json<NewHostBody>,
) -> ApiResult<Response> {
    let h = s
        .client
        .add_host(
            client,
            NewHost {
                name: body.name,
                address: body.address,
                tls: body.tls.map(Into::into),
                enabled: body.enabled.unwrap_or(true),
            },
        )
        .await?;
    let target = format!("host {} ({})", h.id, h.name);
    Ok(with_target((StatusCode::CREATED, axum::Json(h)), target))
}

/// Hosts of a client with their collectors' view: up, events stream, last error
/// (`getHostsWithHealth`). Calls no daemon.
#[utoipa::path(get, path = "/api/v1/clients/{client}/hosts/health", tag = "hosts",
    params(("client" = i64, Path, description = "Client id")),
    responses((status = 200, body = Vec<HostHealth>)))]
pub async fn hosts_with_health(
    State(s): Shared,
    Path(client): Path<i64>,
) -> ApiResult<axum::Json<Vec<HostHealth>>> {
    Ok(axum::Json(s.client.hosts_with_health(client).await?))
}

/// One host.
#[utoipa::path(get, path = "/api/v1/hosts/{host}", tag = "hosts",
    params(("host" = i64, Path, description = "Host id")),
    responses((status = 200, body = HostRecord)))]
pub async fn get_host(
    State(s): Shared,
    Path(host): Path<i64>,
) -> ApiResult<axum::Json<HostRecord>> {
    Ok(axum::Json(s.client.host(host).await?))
}

/// Change a run-time host (`updateHost`); hosts from the file are read-only (409).
#[utoipa::path(patch, path = "/api/v1/hosts/{host}", tag = "hosts",
    params(("host" = i64, Path, description = "Host id")),
    request_body = UpdateHostBody,
    responses((status = 200, body = HostRecord)))]
pub async fn update_host(
    State(s): Shared,
    Path(host): Path<i64>,
    Json(body): Json<UpdateHostBody>,
) -> ApiResult<Response> {
    let update = HostUpdate {
        name: body.name,
        address: body.address,
        tls: body.tls.map(|t| t.map(Into::into)),
        enabled: body.enabled,
    };
    let h = s.client.update_host(host, update).await;
    Ok(with_target(axum::Json(h?), format!("host {host}")))
}

/// Remove a run-time host and stop its collection (`removeHost`).
#[utoipa::path(delete, path = "/api/v1/hosts/{host}", tag = "hosts",
    params(("host" = i64, Path, description = "Host id")),
    responses((status = 204, description = "Removed")))]
pub async fn remove_host(State(s): Shared, Path(host): Path<i64>) -> ApiResult<Response> {
    // Named in the audit row too: the id alone says little once the host is gone.
    let h = s.client.host(host).await?;
    s.client.remove_host(host).await?;
    Ok(with_target(
        StatusCode::NO_CONTENT,
        format!("host {host} ({}/{})", h.client_name, h.name),
    ))
}

/// Check a host now: ping latency, versions, and the collector's last error
/// (`checkHostHealth`). An unreachable host is a 200 with `reachable: false`.
#[utoipa::path(get, path = "/api/v1/hosts/{host}/health", tag = "hosts",
    params(("host" = i64, Path, description = "Host id")),
    responses((status = 200, body = HostCheck)))]
pub async fn check_host(
    State(s): Shared,
    Path(host): Path<i64>,
) -> ApiResult<axum::Json<HostCheck>> {
    Ok(axum::Json(s.client.check_host_health(host).await?))
}

// ---------------------------------------------------------------- monitoring

/// Whether a client is monitored.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonitoringState {
    /// Its hosts are collected.
    pub monitoring: bool,
}

/// Whether a client's hosts are collected (`isMonitoring`).
#[utoipa::path(get, path = "/api/v1/clients/{client}/monitoring", tag = "monitoring",
    params(("client" = i64, Path, description = "Client id")),
    responses((status = 200, body = MonitoringState)))]
pub async fn is_monitoring(
    State(s): Shared,
    Path(client): Path<i64>,
) -> ApiResult<axum::Json<MonitoringState>> {
    let monitoring = s.client.is_monitoring(client).await?;
    Ok(axum::Json(MonitoringState { monitoring }))
}

/// Start collecting a client's enabled hosts (`startMonitoring`).
#[utoipa::path(post, path = "/api/v1/clients/{client}/monitoring/start", tag = "monitoring",
    params(("client" = i64, Path, description = "Client id")),
    responses((status = 200, body = MonitoringState)))]
pub async fn start_monitoring(State(s): Shared, Path(client): Path<i64>) -> ApiResult<Response> {
    s.client.start_monitoring(client).await?;
    Ok(with_target(
        axum::Json(MonitoringState { monitoring: true }),
        format!("client {client}"),
    ))
}

/// Stop collecting a client's hosts; their series leave `/metrics` (`stopMonitoring`).
#[utoipa::path(post, path = "/api/v1/clients/{client}/monitoring/stop", tag = "monitoring",
    params(("client" = i64, Path, description = "Client id")),
    responses((status = 200, body = MonitoringState)))]
pub async fn stop_monitoring(State(s): Shared, Path(client): Path<i64>) -> ApiResult<Response> {
    s.client.stop_monitoring(client).await?;
    Ok(with_target(
        axum::Json(MonitoringState { monitoring: false }),
        format!("client {client}"),
    ))
}

/// Stop collecting every client (`stopAllMonitoring`).
#[utoipa::path(post, path = "/api/v1/monitoring/stop-all", tag = "monitoring",
    responses((status = 200, body = MonitoringState)))]
pub async fn stop_all_monitoring(State(s): Shared) -> ApiResult<Response> {
    s.client.stop_all_monitoring().await?;
    Ok(with_target(
        axum::Json(MonitoringState { monitoring: false }),
        "all clients".to_string(),
    ))
}

// ---------------------------------------------------------------- containers

/// Which containers to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `all` (default) or `running`.
    #[param(pattern = r"^(all|running)$")]
    pub state: Option<String>,
    /// `key` or `key=value`: only containers carrying that Docker label.
    #[param(pattern = r"^[^=]+(=.*)?$")]
    pub label: Option<String>,
    /// Only this host (name or id).
    pub host: Option<String>,
}

/// Containers of a client with their latest stats (`getAllContainers`,
/// `getRunningContainers`, `getContainersByLabel`). Hosts that fail are listed in
/// `errors`; the others still answer.
#[utoipa::path(get, path = "/api/v1/clients/{client}/containers", tag = "containers",
    params(("client" = i64, Path, description = "Client id"), ListQuery),
    responses((status = 200, body = ContainerListing)))]
pub async fn list_containers(
    State(s): Shared,
    Path(client): Path<i64>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<ContainerListing>> {
    let running = match q.state.as_deref() {
        None | Some("all") => false,
        Some("running") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "state",
                format!("`{other}` is neither `all` nor `running`"),
            ));
        }
    };
    let label = match q.label.as_deref() {
        Some(l) => {
            let (key, value) = match l.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (l, None),
            };
            if key.is_empty() {
                return Err(ApiError::invalid("label", "must be `key` or `key=value`"));
            }
            Some((key, value))
        }
        None => None,
    };
    let query = ContainerQuery {
        running,
        label,
        host: q.host.as_deref(),
    };
    Ok(axum::Json(s.client.containers(client, query).await?))
}

/// Narrows the container search to one host.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HostQuery {
    /// Host name or id.
    pub host: Option<String>,
}

/// A container and Docker's inspect answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Inspected {
    /// Which container.
    pub container: ContainerRef,
    /// `GET /containers/{id}/json` as Docker answered.
    #[schema(value_type = Object)]
    pub inspect: bollard::models::ContainerInspectResponse,
}

/// Inspect a container (`inspectContainer`). `container` is a full id, a unique id
/// prefix or a name.
#[utoipa::path(get, path = "/api/v1/clients/{client}/containers/{container}", tag = "containers",
    params(("client" = i64, Path, description = "Client id"),
        ("container" = String, Path, description = "Container id, unique id prefix or name", pattern = r"^[a-zA-Z0-9_.-]{1,256}$"),
        HostQuery),
    responses((status = 200, body = Inspected)))]
pub async fn inspect_container(
    State(s): Shared,
    Path((client, container)): Path<(i64, String)>,
    Query(q): Query<HostQuery>,
) -> ApiResult<axum::Json<Inspected>> {
    let (container, inspect) = s
        .client
        .inspect_container(client, &container, q.host.as_deref())
        .await?;
    Ok(axum::Json(Inspected { container, inspect }))
}

fn action_response(
    client: i64,
    r: Result<ActionOutcome, crate::client::ClientError>,
    reference: &str,
) -> ApiResult<Response> {
    match r {
        Ok(o) => {
            let target = format!(
                "client {client}: {}/{} ({})",
                o.container.host, o.container.name, o.container.id
            );
            Ok(with_target(axum::Json(o), target))
        }
        Err(e) => {
            let mut r = ApiError::from(e).into_response();
            r.extensions_mut()
                .insert(AuditTarget(format!("client {client}: {reference}")));
            Ok(r)
        }
    }
}

/// Start a container (`startContainer`). `changed` is false when it was running already.
/// Refused (403) when the container is labelled `dockstat.actions=deny`.
#[utoipa::path(post, path = "/api/v1/clients/{client}/containers/{container}/start", tag = "containers",
    params(("client" = i64, Path, description = "Client id"),
        ("container" = String, Path, description = "Container id, unique id prefix or name", pattern = r"^[a-zA-Z0-9_.-]{1,256}$"),
        HostQuery),
    responses((status = 200, body = ActionOutcome)))]
pub async fn start_container(
    State(s): Shared,
    Path((client, container)): Path<(i64, String)>,
    Query(q): Query<HostQuery>,
) -> ApiResult<Response> {
    let r = s
        .client
        .start_container(client, &container, q.host.as_deref())
        .await;
    action_response(client, r, &container)
}

/// How long a stop or restart waits before SIGKILL.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StopQuery {
    /// Seconds to wait for the container to stop before killing it (Docker's default: 10).
    pub t: Option<u32>,
    /// Host name or id.
    pub host: Option<String>,
}

/// Stop a container (`stopContainer`). `changed` is false when it was not running.
#[utoipa::path(post, path = "/api/v1/clients/{client}/containers/{container}/stop", tag = "containers",
    params(("client" = i64, Path, description = "Client id"),
        ("container" = String, Path, description = "Container id, unique id prefix or name", pattern = r"^[a-zA-Z0-9_.-]{1,256}$"),
        StopQuery),
    responses((status = 200, body = ActionOutcome)))]
pub async fn stop_container(
    State(s): Shared,
    Path((client, container)): Path<(i64, String)>,
    Query(q): Query<StopQuery>,
) -> ApiResult<Response> {
    let r = s
        .client
        .stop_container(client, &container, q.host.as_deref(), q.t)
        .await;
    action_response(client, r, &container)
}

/// Restart a container (`restartContainer`).
#[utoipa::path(post, path = "/api/v1/clients/{client}/containers/{container}/restart", tag = "containers",
    params(("client" = i64, Path, description = "Client id"),
        ("container" = String, Path, description = "Container id, unique id prefix or name", pattern = r"^[a-zA-Z0-9_.-]{1,256}$"),
        StopQuery),
    responses((status = 200, body = ActionOutcome)))]
pub async fn restart_container(
    State(s): Shared,
    Path((client, container)): Path<(i64, String)>,
    Query(q): Query<StopQuery>,
) -> ApiResult<Response> {
    let r = s
        .client
        .restart_container(client, &container, q.host.as_deref(), q.t)
        .await;
    action_response(client, r, &container)
}

/// How to remove.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Kill a running container first. Default false (a running container is then 409).
    #[serde(default)]
    pub force: bool,
    /// Remove its anonymous volumes too. Default false.
    #[serde(default)]
    pub volumes: bool,
    /// Host name or id.
    pub host: Option<String>,
}

/// Remove a container (`removeContainer`).
#[utoipa::path(delete, path = "/api/v1/clients/{client}/containers/{container}", tag = "containers",
    params(("client" = i64, Path, description = "Client id"),
        ("container" = String, Path, description = "Container id, unique id prefix or name", pattern = r"^[a-zA-Z0-9_.-]{1,256}$"),
        RemoveQuery),
    responses((status = 200, body = ActionOutcome)))]
pub async fn remove_container(
    State(s): Shared,
    Path((client, container)): Path<(i64, String)>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<Response> {
    let r = s
        .client
        .remove_container(client, &container, q.host.as_deref(), q.force, q.volumes)
        .await;
    action_response(client, r, &container)
}

/// Which log lines to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// Last N lines (N ≥ 0) or `all` (default).
    #[param(pattern = r"^(all|[0-9]{1,18})$")]
    pub tail: Option<String>,
    /// Lines at or after this time: unix seconds or RFC 3339 (the pattern admits days up
    /// to the 28th, which every month has, and years from 1970, so no impossible date).
    #[param(
        pattern = r"^([0-9]{1,12}(\.[0-9]{1,9})?|(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$"
    )]
    pub since: Option<String>,
    /// Lines before this time: unix seconds or RFC 3339.
    #[param(
        pattern = r"^([0-9]{1,12}(\.[0-9]{1,9})?|(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$"
    )]
    pub until: Option<String>,
    /// Return Docker's timestamp of each line. Default false.
    #[serde(default)]
    pub timestamps: bool,
    /// Include stdout. Default: both streams when neither is set.
    pub stdout: Option<bool>,
    /// Include stderr.
    pub stderr: Option<bool>,
    /// Stream new lines as NDJSON until the caller goes away. Default false.
    #[serde(default)]
    pub follow: bool,
    /// Host name or id.
    pub host: Option<String>,
}

/// A container's log lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsResponse {
    /// Which container.
    pub container: ContainerRef,
    /// Lines in order, each with its stream.
    pub lines: Vec<LogLine>,
}

fn parse_when(field: &str, v: &str) -> ApiResult<i64> {
    let v = v.trim();
    if let Ok(n) = v.parse::<f64>() {
        if n.is_finite() && n >= 0.0 {
            return Ok(n as i64);
        }
        return Err(ApiError::invalid(field, "must be a non-negative unix time"));
    }
    rfc3339(v).map(|t| t as i64).ok_or_else(|| {
        ApiError::invalid(field, format!("`{v}` is neither unix seconds nor RFC 3339"))
    })
}

/// RFC 3339 with `Z` or a numeric offset (`+01:00`), as unix seconds.
fn rfc3339(v: &str) -> Option<f64> {
    let b = v.as_bytes();
    if b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':' {
        let (base, off) = v.split_at(v.len() - 6);
        let hours: f64 = off[1..3].parse().ok()?;
        let minutes: f64 = off[4..6].parse().ok()?;
        let sign = if off.starts_with('-') { -1.0 } else { 1.0 };
        let utc = crate::clock::parse_rfc3339(&format!("{base}Z"))?;
        return Some(utc - sign * (hours * 3600.0 + minutes * 60.0));
    }
    crate::clock::parse_rfc3339(v)
}

/// A container's logs, demultiplexed into lines with their stream (`getContainerLogs`).
/// Without `follow`: one JSON object. With `follow=true`: `application/x-ndjson`, one
/// line object per line, until the caller disconnects (at most `api.max_log_follows` at
/// once; beyond, 429).
#[utoipa::path(get, path = "/api/v1/clients/{client}/containers/{container}/logs", tag = "containers",
    params(("client" = i64, Path, description = "Client id"),
        ("container" = String, Path, description = "Container id, unique id prefix or name", pattern = r"^[a-zA-Z0-9_.-]{1,256}$"),
        LogsParams),
    responses((status = 200, body = LogsResponse,
        description = "JSON, or NDJSON of LogLine objects with follow=true")))]
pub async fn container_logs(
    State(s): Shared,
    Path((client, container)): Path<(i64, String)>,
    Query(q): Query<LogsParams>,
) -> ApiResult<Response> {
    let tail = match q.tail.as_deref().map(str::trim) {
        None | Some("all") => None,
        Some(t) => match t.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return Err(ApiError::invalid("tail", "must be a number ≥ 0 or `all`")),
        },
    };
    let since = q
        .since
        .as_deref()
        .map(|v| parse_when("since", v))
        .transpose()?;
    let until = q
        .until
        .as_deref()
        .map(|v| parse_when("until", v))
        .transpose()?;
    let query = LogQuery {
        tail,
        since,
        until,
        timestamps: q.timestamps,
        // Naming one stream false means the other one; naming neither means both.
        stdout: q.stdout.unwrap_or(q.stderr != Some(true)),
        stderr: q.stderr.unwrap_or(q.stdout != Some(true)),
        follow: q.follow,
    };
    if q.stdout == Some(false) && q.stderr == Some(false) {
        return Err(ApiError::invalid(
            "stdout",
            "at least one of stdout and stderr",
        ));
    }
    let permit = if q.follow {
        match s.follows.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "too many followed log streams open; close one or raise api.max_log_follows",
                ));
            }
        }
    } else {
        None
    };
    let (c, lines) = s
        .client
        .container_logs(client, &container, q.host.as_deref(), query)
        .await?;
    if let Some(permit) = permit {
        let body = lines.map(move |l| {
            // The permit lives as long as the stream: dropping the body frees the slot.
            let _held = &permit;
            let mut out = match l {
                Ok(line) => serde_json::to_vec(&line),
                Err(e) => serde_json::to_vec(&serde_json::json!({
                    "error": {"code": "docker_error", "kind": e.kind.as_str(), "message": e.to_string()}
                })),
            }
            .unwrap_or_default();
            out.push(b'\n');
            Ok::<_, std::convert::Infallible>(out)
        });
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .body(Body::from_stream(body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()));
    }
    let mut out = Vec::new();
    let mut lines = Box::pin(lines);
    while let Some(l) = lines.next().await {
        match l {
            Ok(line) => out.push(line),
            Err(error) => {
                return Err(ApiError::from(crate::client::ClientError::Docker {
                    host: c.host.clone(),
                    error,
                }));
            }
        }
    }
    Ok(axum::Json(LogsResponse {
        container: c,
        lines: out,
    })
    .into_response())
}

// ---------------------------------------------------------------- status, audit

/// Pool and worker figures (`getStatus`).
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = PoolStatus)))]
pub async fn status(State(s): Shared) -> axum::Json<PoolStatus> {
    axum::Json(s.client.status())
}

/// Pool figures (`getPoolStats`; the same figures as `/status`).
#[utoipa::path(get, path = "/api/v1/pool", tag = "status",
    responses((status = 200, body = PoolStatus)))]
pub async fn pool_stats(State(s): Shared) -> axum::Json<PoolStatus> {
    axum::Json(s.client.pool_stats())
}

/// Paging of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries per page, 1–1000. Default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only entries with an id below this (the previous page's `nextBefore`).
    pub before: Option<i64>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Entries.
    pub entries: Vec<AuditRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

/// The audit log of mutating calls, newest first (admin only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "status",
    params(AuditQuery),
    responses((status = 200, body = AuditPage)))]
pub async fn audit(
    State(s): Shared,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let entries = s
        .client
        .store()
        .audit(limit, q.before)
        .await
        .map_err(|e| ApiError::from(crate::client::ClientError::from(e)))?;
    let next_before = if entries.len() == limit as usize {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        entries,
        next_before,
    }))
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_with_offsets() {
        let z = rfc3339("2026-11-29T04:00:00Z").expect("Z");
        assert_eq!(rfc3339("2026-11-29T05:00:00+01:00"), Some(z));
        assert_eq!(rfc3339("2026-11-29T02:30:00-01:30"), Some(z));
        assert_eq!(rfc3339("2026-11-29T04:00:00.5Z"), Some(z + 0.5));
        assert_eq!(rfc3339("yesterday"), None);
    }
}
