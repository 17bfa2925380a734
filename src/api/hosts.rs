//! `/api/v1/clients/{client}/hosts` and `/api/v1/hosts`: Docker Engine endpoints
//! (`addHost`, `getHosts`, `getHostsWithHealth`, `checkHostHealth`, …).

use axum::http::StatusCode;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::extract::{At, Json};
use super::{Change, ClientId, HostId, audited};
use crate::client::{HostCheck, HostHealth, HostUpdate, NewHost};
use crate::config::TlsConfig;
use crate::store::HostRecord;

/// TLS files of a host (paths on the exporter's machine): the CA alone for server-verified
/// TLS, or with a client certificate and key for mutual TLS.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsBody {
    /// CA that signed the daemon's certificate.
    #[schema(min_length = 1, pattern = r"\S")]
    pub ca: String,
    /// Client certificate; with `key`, or neither.
    #[serde(default)]
    #[schema(min_length = 1, pattern = r"\S")]
    pub cert: Option<String>,
    /// Client key; with `cert`, or neither.
    #[serde(default)]
    #[schema(min_length = 1, pattern = r"\S")]
    pub key: Option<String>,
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

impl From<NewHostBody> for NewHost {
    fn from(b: NewHostBody) -> NewHost {
        NewHost {
            name: b.name,
            address: b.address,
            tls: b.tls.map(Into::into),
            enabled: b.enabled.unwrap_or(true),
        }
    }
}

impl From<UpdateHostBody> for HostUpdate {
    fn from(b: UpdateHostBody) -> HostUpdate {
        HostUpdate {
            name: b.name,
            address: b.address,
            tls: b.tls.map(|t| t.map(Into::into)),
            enabled: b.enabled,
        }
    }
}

/// Tells "absent" (None) from "null" (Some(None)).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Add a host to a client; collected at once when the client is monitored (`addHost`).
#[utoipa::path(post, path = "/api/v1/clients/{client}/hosts", tag = "hosts", params(ClientId),
    request_body = NewHostBody, responses((status = 201, body = HostRecord)))]
pub async fn add_host(At(s, p): At<ClientId>, Json(body): Json<NewHostBody>) -> Change {
    let h = s.docker.add_host(p.client, body.into()).await?;
    let target = format!("host {} ({})", h.id, h.name);
    Ok(audited((StatusCode::CREATED, axum::Json(h)), target))
}

/// Change a run-time host (`updateHost`); hosts from the file are read-only (409).
#[utoipa::path(patch, path = "/api/v1/hosts/{host}", tag = "hosts", params(HostId),
    request_body = UpdateHostBody, responses((status = 200, body = HostRecord)))]
pub async fn update_host(At(s, p): At<HostId>, Json(body): Json<UpdateHostBody>) -> Change {
    let h = s.docker.update_host(p.host, body.into()).await?;
    Ok(audited(axum::Json(h), format!("host {}", p.host)))
}

/// Remove a run-time host and stop its collection (`removeHost`).
#[utoipa::path(delete, path = "/api/v1/hosts/{host}", tag = "hosts", params(HostId),
    responses((status = 204, description = "Removed")))]
pub async fn remove_host(At(s, p): At<HostId>) -> Change {
    let h = s.docker.remove_host(p.host).await?;
    // Named in the audit row too: the id alone says little once the host is gone.
    let target = format!("host {} ({}/{})", h.id, h.client_name, h.name);
    Ok(audited(StatusCode::NO_CONTENT, target))
}

reads! {
    /// Hosts of a client (`getHosts`).
    list_hosts: "/api/v1/clients/{client}/hosts", "hosts", ClientId -> (Vec<HostRecord>) = |d, p| d.hosts(p.client);
    /// Hosts of a client with their collectors' view: up, events stream, last error
    /// (`getHostsWithHealth`). Calls no daemon.
    hosts_with_health: "/api/v1/clients/{client}/hosts/health", "hosts", ClientId -> (Vec<HostHealth>) = |d, p| d.hosts_with_health(p.client);
    /// One host.
    get_host: "/api/v1/hosts/{host}", "hosts", HostId -> (HostRecord) = |d, p| d.host(p.host);
    /// Check a host now: ping latency, versions, and the collector's last error
    /// (`checkHostHealth`). An unreachable host is a 200 with `reachable: false`.
    check_host: "/api/v1/hosts/{host}/health", "hosts", HostId -> (HostCheck) = |d, p| d.check_host_health(p.host);
}
