//! `/api/v1/clients`: named groups of hosts (`registerClient`, `getClients`, …).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{At, Json};
use super::{Change, ClientId, Read, Shared, audited, read};
use crate::store::ClientRecord;

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
pub async fn list_clients(State(s): Shared) -> Read<Vec<ClientRecord>> {
    read(s.docker.clients()).await
}

/// Register a client (`registerClient`).
#[utoipa::path(post, path = "/api/v1/clients", tag = "clients", request_body = NewClientBody,
    responses((status = 201, body = ClientRecord)))]
pub async fn register_client(State(s): Shared, Json(body): Json<NewClientBody>) -> Change {
    let c = s.docker.register_client(&body.name).await?;
    let target = format!("client {}", c.id);
    Ok(audited((StatusCode::CREATED, axum::Json(c)), target))
}

reads! {
    /// One client (`getClient`).
    get_client: "/api/v1/clients/{client}", "clients", ClientId -> (ClientRecord) = |d, p| d.client(p.client);
}

/// Rename a run-time client (`updateClient`); clients from the file are read-only (409).
#[utoipa::path(patch, path = "/api/v1/clients/{client}", tag = "clients", params(ClientId),
    request_body = UpdateClientBody, responses((status = 200, body = ClientRecord)))]
pub async fn update_client(At(s, p): At<ClientId>, Json(body): Json<UpdateClientBody>) -> Change {
    let c = s.docker.rename_client(p.client, &body.name).await?;
    Ok(audited(axum::Json(c), format!("client {}", p.client)))
}

/// Remove a run-time client, its hosts and their collection (`removeClient`).
#[utoipa::path(delete, path = "/api/v1/clients/{client}", tag = "clients", params(ClientId),
    responses((status = 204, description = "Removed")))]
pub async fn remove_client(At(s, p): At<ClientId>) -> Change {
    let c = s.docker.remove_client(p.client).await?;
    // Named in the audit row too: the id alone says little once the client is gone.
    let target = format!("client {} ({})", c.id, c.name);
    Ok(audited(StatusCode::NO_CONTENT, target))
}
