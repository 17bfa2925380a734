//! What callers give [`DockerClient`](super::DockerClient) and get back from it: hosts to
//! add or change, container listings, host health. The API serves the same types, so they
//! carry its serialization (camelCase) and OpenAPI schemas.

use bollard::models::ContainerSummary;
use serde::Serialize;

use crate::config::TlsConfig;
use crate::docker::DockerError;
use crate::stats::ContainerStats;
use crate::store::HostRecord;

/// A host to add at run time.
#[derive(Debug, Clone)]
pub struct NewHost {
    /// Unique within the client.
    pub name: String,
    /// `unix:///path`, `tcp://host:port` or `host:port`.
    pub address: String,
    /// Mutual TLS files for a TCP address.
    pub tls: Option<TlsConfig>,
    /// Collected when the client is monitored (default true).
    pub enabled: bool,
}

/// Changes to a run-time host; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct HostUpdate {
    /// New name.
    pub name: Option<String>,
    /// New address.
    pub address: Option<String>,
    /// `Some(None)` removes TLS, `Some(Some(_))` sets it.
    pub tls: Option<Option<TlsConfig>>,
    /// Enable or disable collection.
    pub enabled: Option<bool>,
}

/// A container as Docker lists it, with its host and latest stats.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    /// Host name.
    pub host: String,
    /// Host id.
    pub host_id: i64,
    /// Docker's list entry (`Id`, `Names`, `Image`, `State`, `Status`, `Labels`, …).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub summary: ContainerSummary,
    /// Latest sample; None when not running or not collected.
    pub stats: Option<ContainerStats>,
}

/// A host with what its collector knows (`getHostsWithHealth`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostHealth {
    /// The stored host.
    #[serde(flatten)]
    pub host: HostRecord,
    /// A collector runs for it (enabled and its client monitored).
    pub collecting: bool,
    /// The last collection reached the daemon.
    pub up: bool,
    /// The events stream is open.
    pub events_stream_open: bool,
    /// Containers in the last snapshot.
    pub containers: Option<usize>,
    /// When the last snapshot was built, unix seconds.
    pub last_collected_at: Option<f64>,
    /// Engine version.
    pub server_version: Option<String>,
    /// Negotiated API version.
    pub api_version: Option<String>,
    /// The last failure, if any.
    #[schema(value_type = Option<DockerErrorView>)]
    pub last_error: Option<DockerError>,
}

/// The answer of a health check made now (`checkHostHealth`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostCheck {
    /// Host id.
    pub host_id: i64,
    /// Host name.
    pub name: String,
    /// Ping and version answered.
    pub reachable: bool,
    /// Ping round trip (or time to fail), milliseconds.
    pub latency_ms: Option<f64>,
    /// Engine version.
    pub server_version: Option<String>,
    /// API version the daemon offers.
    pub api_version: Option<String>,
    /// Why the check failed.
    #[schema(value_type = Option<DockerErrorView>)]
    pub error: Option<DockerError>,
    /// The collector's last failure, if any.
    #[schema(value_type = Option<DockerErrorView>)]
    pub last_error: Option<DockerError>,
}

/// A classified Docker failure as shown by the API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DockerErrorView {
    /// `socket_not_found`, `permission_denied`, `connection_refused`, `timeout`, `tls`,
    /// `api_error`, `decode`, `too_large` (an answer over its bound), `connection` or
    /// `other`.
    pub kind: String,
    /// HTTP status of an `api_error`.
    pub status: Option<u16>,
    /// Details.
    pub message: String,
}

/// A host that could not be listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostFailure {
    /// Host name.
    pub host: String,
    /// Host id.
    pub host_id: i64,
    /// Why.
    #[schema(value_type = DockerErrorView)]
    pub error: DockerError,
}

/// Containers of a client: what every reachable host answered, and which hosts failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerListing {
    /// Containers, by host then name.
    pub containers: Vec<ContainerView>,
    /// Hosts that did not answer.
    pub errors: Vec<HostFailure>,
}

/// Which containers [`DockerClient::containers`](super::DockerClient::containers) lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerQuery<'a> {
    /// Running ones only (else all).
    pub running: bool,
    /// Only those carrying label `key` (with `value`, when given).
    pub label: Option<(&'a str, Option<&'a str>)>,
    /// Only this host of the client (name or id); else every enabled host.
    pub host: Option<&'a str>,
}
