//! `/api/v1/clients/{client}/containers`: list a client's containers with their stats,
//! inspect one, and act on it (`getAllContainers`, `inspectContainer`, `startContainer`,
//! `stopContainer`, `restartContainer`, `removeContainer`). A container is named by full
//! id, unique id prefix or name; `host` narrows the search.

use axum::Extension;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::AuditTarget;
use super::deadline::Deadline;
use super::error::ApiError;
use super::extract::{At, Query};
use super::{AppState, Change, ClientId, Read, audited, read};
use crate::client::{Action, ActionOutcome, ContainerListing, ContainerQuery, ContainerRef};

/// `{client}` and `{container}` in a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ContainerPath {
    /// Client id
    pub client: i64,
    /// Container id, unique id prefix or name
    #[param(pattern = r"^[a-zA-Z0-9_.-]{1,256}$")]
    pub container: String,
}

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
#[utoipa::path(get, path = "/api/v1/clients/{client}/containers", tag = "containers", params(ClientId, ListQuery), responses((status = 200, body = ContainerListing)))]
pub async fn list_containers(
    At(s, p): At<ClientId>,
    Query(q): Query<ListQuery>,
) -> Read<ContainerListing> {
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
    read(s.docker.containers(p.client, query)).await
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
#[utoipa::path(get, path = "/api/v1/clients/{client}/containers/{container}", tag = "containers", params(ContainerPath, HostQuery), responses((status = 200, body = Inspected)))]
pub async fn inspect_container(
    At(s, at): At<ContainerPath>,
    Query(q): Query<HostQuery>,
) -> Read<Inspected> {
    let docker = &s.docker;
    let (container, inspect) = docker
        .inspect_container(at.client, &at.container, q.host.as_deref())
        .await?;
    Ok(axum::Json(Inspected { container, inspect }))
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

/// Does `action` to the container at `at`: what a stop or restart waits on the daemon
/// grows the request's deadline, and the container acted on (the reference asked for, when
/// that failed) is the audit target.
async fn act(
    s: &AppState,
    deadline: &Deadline,
    at: ContainerPath,
    host: Option<&str>,
    action: Action,
) -> Change {
    if let Some(t) = action.waits() {
        deadline.waits(t);
    }
    match s.docker.act(at.client, &at.container, host, action).await {
        Ok(o) => {
            let c = &o.container;
            let target = format!("client {}: {}/{} ({})", at.client, c.host, c.name, c.id);
            Ok(audited(axum::Json(o), target))
        }
        Err(e) => {
            let mut r = ApiError::from(e).into_response();
            let target = format!("client {}: {}", at.client, at.container);
            r.extensions_mut().insert(AuditTarget(target));
            Ok(r)
        }
    }
}

/// The four container actions, one operation each, all answered by [`act`]: a row gives
/// the handler's documentation (the operation's description), its name, method and path,
/// its query, and the [`Action`] it asks for. Why a macro: each operation needs a function
/// of its own for its OpenAPI entry, while what those functions do is the same.
macro_rules! actions {
    ($(
        $(#[doc = $doc:tt])*
        $name:ident: $method:ident $path:tt, $query:ident => |$q:ident| $action:expr;
    )*) => {$(
        $(#[doc = $doc])*
        #[utoipa::path($method, path = $path, tag = "containers", params(ContainerPath, $query),
            responses((status = 200, body = ActionOutcome)))]
        pub async fn $name(
            At(s, at): At<ContainerPath>,
            Extension(deadline): Extension<Deadline>,
            Query($q): Query<$query>,
        ) -> Change {
            let action = $action;
            act(&s, &deadline, at, $q.host.as_deref(), action).await
        }
    )*};
}

actions! {
    /// Start a container (`startContainer`). `changed` is false when it was running already.
    /// Refused (403) when the container is labelled `dockstat.actions=deny`.
    start_container: post "/api/v1/clients/{client}/containers/{container}/start", HostQuery => |q| Action::Start;
    /// Stop a container (`stopContainer`). `changed` is false when it was not running.
    stop_container: post "/api/v1/clients/{client}/containers/{container}/stop", StopQuery => |q| Action::Stop { t: q.t };
    /// Restart a container (`restartContainer`).
    restart_container: post "/api/v1/clients/{client}/containers/{container}/restart", StopQuery => |q| Action::Restart { t: q.t };
    /// Remove a container (`removeContainer`).
    remove_container: delete "/api/v1/clients/{client}/containers/{container}", RemoveQuery => |q| Action::Remove { force: q.force, volumes: q.volumes };
}
