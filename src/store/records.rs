//! What is stored, as the library and the API see it ([`ClientRecord`], [`HostRecord`]),
//! and how rows are read back.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::{NotFound, StoreError};
use crate::config::{Address, Endpoint, TlsFiles};

// Called `Source` in the API (the field `source`, the schema's name); `Origin` here, where
// "source" names where stats come from. The doc comment below is the API's description.
/// Where a client or host was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Source)]
pub enum Origin {
    /// The configuration file; re-synced at every start.
    Config,
    /// Added at run time (library or HTTP API); kept until removed.
    Api,
}

impl Origin {
    pub(super) fn parse(s: &str) -> Result<Origin, StoreError> {
        match s {
            "config" => Ok(Origin::Config),
            "api" => Ok(Origin::Api),
            other => Err(StoreError::Corrupt(format!("unknown source `{other}`"))),
        }
    }
}

/// A stored client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientRecord {
    /// Database id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Who declared it.
    pub source: Origin,
    /// Whether its hosts are being collected.
    pub monitoring: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A stored host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostRecord {
    /// Database id.
    pub id: i64,
    /// Owning client's id.
    pub client_id: i64,
    /// Owning client's name (the `client` label).
    pub client_name: String,
    /// Name unique within the client (the `host` label).
    pub name: String,
    /// Where and how to connect.
    #[serde(serialize_with = "ser_endpoint")]
    #[schema(value_type = EndpointView)]
    pub endpoint: Endpoint,
    /// Collected when its client is monitored.
    pub enabled: bool,
    /// Who declared it.
    pub source: Origin,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// How a host's endpoint is shown: address and TLS file paths (never their contents).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    /// `unix:///path` or `tcp://host:port`.
    pub address: String,
    /// CA, certificate and key paths, when the host uses mutual TLS.
    pub tls: Option<TlsFilesView>,
}

/// TLS file paths of a host.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TlsFilesView {
    /// CA path.
    pub ca: String,
    /// Client certificate path.
    pub cert: String,
    /// Client key path.
    pub key: String,
}

fn ser_endpoint<S: serde::Serializer>(e: &Endpoint, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Endpoint", 2)?;
    st.serialize_field("address", &e.address.to_string())?;
    st.serialize_field("tls", &e.tls)?;
    st.end()
}

/// Changes to a host; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct HostPatch {
    /// New name.
    pub name: Option<String>,
    /// New endpoint.
    pub endpoint: Option<Endpoint>,
    /// Enable or disable collection.
    pub enabled: Option<bool>,
}

/// What [`Store::sync_config`](super::Store::sync_config) changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Hosts inserted or updated from the file.
    pub upserted: usize,
    /// Config hosts no longer in the file, deleted.
    pub removed: usize,
}

/// A host's endpoint as its table columns: address, CA, certificate, key.
pub(super) type Columns = (String, Option<String>, Option<String>, Option<String>);

pub(super) fn endpoint_columns(e: &Endpoint) -> Columns {
    let path = |p: &PathBuf| Some(p.display().to_string());
    match &e.tls {
        Some(t) => (
            e.address.to_string(),
            path(&t.ca),
            t.cert.as_ref().and_then(path),
            t.key.as_ref().and_then(path),
        ),
        None => (e.address.to_string(), None, None, None),
    }
}

pub(super) const HOST_SELECT: &str = "SELECT h.id, h.client_id, c.name, h.name, h.address, h.tls_ca, h.tls_cert,
    h.tls_key, h.enabled, h.source, h.created_at, h.updated_at FROM hosts h JOIN clients c ON c.id = h.client_id";

pub(super) fn get_host(conn: &Connection, id: i64) -> Result<HostRecord, StoreError> {
    conn.query_row(&format!("{HOST_SELECT} WHERE h.id = ?1"), [id], host_row)
        .optional()?
        .ok_or(StoreError::from(NotFound::host(id)))?
}

pub(super) fn get_client(conn: &Connection, id: i64) -> Result<ClientRecord, StoreError> {
    conn.query_row(
        "SELECT id, name, source, monitoring, created_at FROM clients WHERE id = ?1",
        [id],
        client_row,
    )
    .optional()?
    .ok_or(StoreError::from(NotFound::client(id)))?
}

/// Reads a row; the inner Result reports values SQLite accepted but we cannot use.
pub(super) fn client_row(r: &rusqlite::Row) -> rusqlite::Result<Result<ClientRecord, StoreError>> {
    let source: String = r.get(2)?;
    let (id, name, monitoring, created_at) = (r.get(0)?, r.get(1)?, r.get(3)?, r.get(4)?);
    Ok(Origin::parse(&source).map(|source| ClientRecord {
        id,
        name,
        source,
        monitoring,
        created_at,
    }))
}

pub(super) fn host_row(r: &rusqlite::Row) -> rusqlite::Result<Result<HostRecord, StoreError>> {
    let address: String = r.get(4)?;
    let tls: [Option<String>; 3] = [r.get(5)?, r.get(6)?, r.get(7)?];
    let source: String = r.get(9)?;
    let (id, client_id, client_name, name, enabled, created_at, updated_at) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(8)?,
        r.get(10)?,
        r.get(11)?,
    );
    Ok((|| {
        let address = Address::parse(&address).map_err(StoreError::Corrupt)?;
        let tls = match tls {
            [Some(ca), Some(cert), Some(key)] => Some(TlsFiles {
                ca: ca.into(),
                cert: Some(cert.into()),
                key: Some(key.into()),
            }),
            [Some(ca), None, None] => Some(TlsFiles {
                ca: ca.into(),
                cert: None,
                key: None,
            }),
            [None, None, None] => None,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "host {id} has partial TLS settings"
                )));
            }
        };
        Ok(HostRecord {
            id,
            client_id,
            client_name,
            name,
            endpoint: Endpoint { address, tls },
            enabled,
            source: Origin::parse(&source)?,
            created_at,
            updated_at,
        })
    })())
}
