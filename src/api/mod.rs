//! The admin API (`/api/v1`) on its own listener: clients, hosts, monitoring, container
//! actions and logs, status, the audit log, and the OpenAPI document generated from the
//! handlers. Every handler is a thin wrapper over [`DockerClient`].
//!
//! Layers, outside in: body size limit → [`auth::guard`] (token, role, deadline, audit) →
//! handler. Unknown paths and methods get JSON errors too. The role each operation needs
//! is declared beside it in [`router_and_doc`].
//!
//! - handlers by resource: [`clients`], [`hosts`], [`monitoring`], [`containers`] (list,
//!   inspect, actions), [`logs`], [`status`] (status, pool, audit), [`streams`] (SSE and
//!   WebSocket).
//! - [`auth`]: tokens, the role policy, the audit record of each mutating call;
//!   [`deadline`]: how long a request may take to answer.
//! - [`error`], [`extract`]: the one error shape, and extractors that answer with it.
//! - `doc`: the OpenAPI document's frame and shared conventions.

// Defined before the modules: handlers of several of them are declared through it.
/// Declares read operations that answer one library call as JSON, one row each: the
/// operation's documentation (its OpenAPI description), the handler's name, its path and
/// tag, the path parameters it takes, what it answers, and the call, made with the
/// library `d` and the parameters `p`. Why a macro: each operation needs a function of its
/// own for its OpenAPI entry, while what those functions do is the same.
macro_rules! reads {
    ($(
        $(#[doc = $doc:tt])*
        $name:ident: $path:tt, $tag:tt, $params:ident -> ($($answer:tt)+) = |$d:ident, $p:ident| $call:expr;
    )*) => {$(
        $(#[doc = $doc])*
        #[utoipa::path(get, path = $path, tag = $tag, params($params),
            responses((status = 200, body = $($answer)+)))]
        pub async fn $name(
            $crate::api::extract::At(s, $p): $crate::api::extract::At<$params>,
        ) -> $crate::api::Read<$($answer)+> {
            let $d = &s.docker;
            $crate::api::read($call).await
        }
    )*};
}

pub mod auth;
pub mod clients;
pub mod containers;
pub mod deadline;
mod doc;
pub mod error;
pub mod extract;
pub mod hosts;
pub mod logs;
pub mod monitoring;
pub mod status;
pub mod streams;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::Semaphore;
use utoipa::openapi::OpenApi;
use utoipa::{IntoParams, Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::client::DockerClient;
use crate::config::{Role, ValidToken, Validated};
use auth::{AuditTarget, Policy};
use error::ApiError;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The library the handlers wrap.
    pub docker: DockerClient,
    /// Configured tokens (hashes), the generated admin token among them; empty means
    /// every call is refused (401).
    pub tokens: Vec<ValidToken>,
    /// Deadline of one request until its answer starts.
    pub request_timeout: Duration,
    /// Slots for followed log streams.
    pub follows: Arc<Semaphore>,
    /// `api.actions`: false is the read-only mode, where the routes declared with
    /// [`Policy::allow_action`] answer 403.
    pub actions: bool,
    /// Slots for WebSocket sessions (`streams.max_subscribers`), taken before the upgrade
    /// and held for the session's life: an upgraded socket costs a file and a task even
    /// with no subscription in it.
    pub ws_sessions: Arc<Semaphore>,
}

impl AppState {
    /// From the validated configuration.
    pub fn new(docker: DockerClient, cfg: &Validated) -> AppState {
        AppState {
            docker,
            tokens: cfg.tokens.clone(),
            request_timeout: cfg.config.api.request_timeout,
            follows: Arc::new(Semaphore::new(cfg.config.api.max_log_follows.get())),
            actions: cfg.config.api.actions,
            ws_sessions: Arc::new(Semaphore::new(cfg.config.streams.max_subscribers)),
        }
    }
}

/// The state every handler extracts.
type Shared = State<Arc<AppState>>;
/// What a handler answers.
type ApiResult<T> = Result<T, ApiError>;
/// A read's answer: the library's value as JSON.
type Read<T> = ApiResult<axum::Json<T>>;
/// A mutating call's answer, carrying its audit target.
type Change = ApiResult<Response>;

/// `{client}` in a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ClientId {
    /// Client id, or its name (looked up before routing, see [`names_to_ids`])
    #[param(value_type = String, example = "local")]
    pub client: i64,
}

/// `{host}` in a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HostId {
    /// Host id, or its name when no other client has a host of that name
    #[param(value_type = String, example = "web-01")]
    pub host: i64,
}

/// Lets a path name a client or host where its id goes: `/api/v1/clients/local/…` and
/// `/api/v1/hosts/web-01/…` are rewritten to the ids before routing, so every route takes
/// both. A name that matches nothing (or, for hosts, several) is left as it is and
/// answered 404 by the route.
async fn names_to_ids(
    State(state): State<Arc<AppState>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_string();
    let mut segments: Vec<String> = path.split('/').map(str::to_string).collect();
    // ["", "api", "v1", "clients"|"hosts", name, …]
    let named = segments.len() > 4
        && segments[1] == "api"
        && segments[2] == "v1"
        && (segments[3] == "clients" || segments[3] == "hosts")
        && !segments[4].is_empty()
        && !segments[4].bytes().all(|b| b.is_ascii_digit());
    if named {
        let name = percent_decode(&segments[4]);
        let id = if segments[3] == "clients" {
            state.docker.client_id_by_name(&name).await
        } else {
            state.docker.host_id_by_name(&name).await
        };
        if let Some(id) = id {
            segments[4] = id.to_string();
            let mut rewritten = segments.join("/");
            if let Some(q) = req.uri().query() {
                rewritten.push('?');
                rewritten.push_str(q);
            }
            if let Ok(uri) = rewritten.parse() {
                *req.uri_mut() = uri;
            }
        } else {
            let what = segments[3].trim_end_matches('s').to_string();
            segments[4] = "0".to_string();
            // Keep the answer a 404 from the route (after authentication), not a 400 for
            // a path parameter that is not a number.
            let mut rewritten = segments.join("/");
            if let Some(q) = req.uri().query() {
                rewritten.push('?');
                rewritten.push_str(q);
            }
            if let Ok(uri) = rewritten.parse() {
                *req.uri_mut() = uri;
            }
            let unknown = format!("no {what} named `{name}`");
            let r = next.run(req).await;
            if r.status() == StatusCode::NOT_FOUND {
                return ApiError::new(StatusCode::NOT_FOUND, "not_found", unknown).into_response();
            }
            return r;
        }
    }
    next.run(req).await
}

/// `%XX` escapes of a path segment decoded (a name with spaces or non-ASCII letters).
fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A read: the library call's value as JSON, its error as the API's.
async fn read<T>(call: impl Future<Output = Result<T, crate::client::ClientError>>) -> Read<T> {
    Ok(axum::Json(call.await?))
}

/// A mutating call's answer, with what it acted on for the audit log.
fn audited(r: impl IntoResponse, target: String) -> Response {
    let mut r = r.into_response();
    r.extensions_mut().insert(AuditTarget(target));
    r
}

/// The router, the OpenAPI document and the role policy, all from this one route list:
/// each operation is registered with the least role that may call it.
pub fn router_and_doc() -> (Router<Arc<AppState>>, OpenApi, Policy) {
    use Role::{Admin, Operator, Viewer};
    let mut p = Policy::default();
    let (router, mut doc) = OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(p.allow(Viewer, routes!(clients::list_clients)))
        .routes(p.allow(Admin, routes!(clients::register_client)))
        .routes(p.allow(Viewer, routes!(clients::get_client)))
        .routes(p.allow(Admin, routes!(clients::update_client)))
        .routes(p.allow(Admin, routes!(clients::remove_client)))
        .routes(p.allow(Viewer, routes!(hosts::list_hosts)))
        .routes(p.allow(Admin, routes!(hosts::add_host)))
        .routes(p.allow(Viewer, routes!(hosts::hosts_with_health)))
        .routes(p.allow(Viewer, routes!(hosts::get_host)))
        .routes(p.allow(Admin, routes!(hosts::update_host)))
        .routes(p.allow(Admin, routes!(hosts::remove_host)))
        .routes(p.allow(Viewer, routes!(hosts::check_host)))
        .routes(p.allow(Viewer, routes!(monitoring::is_monitoring)))
        .routes(p.allow(Operator, routes!(monitoring::start_monitoring)))
        .routes(p.allow(Operator, routes!(monitoring::stop_monitoring)))
        .routes(p.allow(Operator, routes!(monitoring::stop_all_monitoring)))
        .routes(p.allow(Viewer, routes!(containers::list_containers)))
        .routes(p.allow(Viewer, routes!(containers::inspect_container)))
        .routes(p.allow_action(Operator, routes!(containers::remove_container)))
        .routes(p.allow_action(Operator, routes!(containers::start_container)))
        .routes(p.allow_action(Operator, routes!(containers::stop_container)))
        .routes(p.allow_action(Operator, routes!(containers::restart_container)))
        .routes(p.allow_action(Viewer, routes!(logs::container_logs)))
        .routes(p.allow(Viewer, routes!(status::status)))
        .routes(p.allow(Viewer, routes!(status::pool_stats)))
        .routes(p.allow(Admin, routes!(status::audit)))
        .routes(p.allow(Viewer, routes!(streams::sse)))
        .routes(p.allow(Viewer, routes!(streams::ws)))
        .split_for_parts();
    // The derive's modifiers run before the routes are merged in: apply the conventions to
    // the finished document.
    doc::Conventions.modify(&mut doc);
    (router, doc, p)
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi() -> OpenApi {
    router_and_doc().1
}

/// The whole admin application.
pub fn app(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    let (router, doc, policy) = router_and_doc();
    // Kept as its JSON text (~0.1 MB), not as the document (~1.4 MB of small allocations).
    let doc: Result<bytes::Bytes, String> = serde_json::to_vec(&doc)
        .map(bytes::Bytes::from)
        .map_err(|e| e.to_string());
    let router: Router = router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move {
                    match doc {
                        Ok(body) => ([(http::header::CONTENT_TYPE, "application/json")], body)
                            .into_response(),
                        Err(e) => ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            format!("the OpenAPI document does not encode: {e}"),
                        )
                        .into_response(),
                    }
                }
            }),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
            .into_response()
        })
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), Arc::new(policy)),
            auth::guard,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state.clone());
    // Names become ids before the router matches the path.
    Router::new()
        .fallback_service(router)
        .layer(axum::middleware::from_fn_with_state(state, names_to_ids))
}
