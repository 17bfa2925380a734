//! The admin API (`/api/v1`) on its own listener: clients, hosts, monitoring, container
//! actions and logs, status, the audit log, and the OpenAPI document generated from the
//! handlers. Every handler is a thin wrapper over [`DockerClient`].
//!
//! Layers, outside in: body size limit → [`auth::guard`] (token, role, deadline, audit) →
//! handler. Unknown paths and methods get JSON errors too.

pub mod auth;
pub mod error;
pub mod extract;
pub mod routes;
pub mod streams;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::sync::Semaphore;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Response as OaResponse, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::client::DockerClient;
use crate::config::{ValidToken, Validated};
use error::{ApiError, ErrorBody};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The library the handlers wrap.
    pub client: DockerClient,
    /// Configured tokens (hashes); empty means no authentication.
    pub tokens: Vec<ValidToken>,
    /// Deadline of one request until its answer starts.
    pub request_timeout: Duration,
    /// Slots for followed log streams.
    pub follows: Arc<Semaphore>,
    /// Slots for WebSocket sessions (`streams.max_subscribers`), taken before the upgrade
    /// and held for the session's life: an upgraded socket costs a file and a task even
    /// with no subscription in it.
    pub ws_sessions: Arc<Semaphore>,
}

impl AppState {
    /// From the validated configuration.
    pub fn new(client: DockerClient, cfg: &Validated) -> AppState {
        AppState {
            client,
            tokens: cfg.tokens.clone(),
            request_timeout: cfg.config.api.request_timeout,
            follows: Arc::new(Semaphore::new(cfg.config.api.max_log_follows.get())),
            ws_sessions: Arc::new(Semaphore::new(cfg.config.streams.max_subscribers)),
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "dockstat-exporter admin API",
        description = "Clients, hosts, monitoring, container actions and logs of the Docker \
                       hosts a dockstat-exporter watches. Errors are `{\"error\": {\"code\", \
                       \"message\"}}`. Authenticate with `Authorization: Bearer <token>`."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "clients", description = "Named groups of hosts"),
        (name = "hosts", description = "Docker Engine endpoints"),
        (name = "monitoring", description = "Start and stop collection"),
        (name = "containers", description = "List, inspect, act on, read logs of containers"),
        (name = "status", description = "Pool figures and the audit log"),
        (name = "streams", description = "Live channels: Server-Sent Events and WebSocket"),
    )
)]
struct ApiDoc;

/// Adds what every operation shares: bearer security and the error responses.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, api: &mut OpenApi) {
        sse_events(api);
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let errors: [(&str, &str); 10] = [
            (
                "400",
                "Bad input: malformed JSON, wrong type, unknown field, bad parameter",
            ),
            ("401", "Missing or unknown bearer token"),
            (
                "403",
                "The token's role may not do this, or the container refuses actions",
            ),
            ("404", "Unknown client, host or container"),
            (
                "409",
                "Conflict: name taken, read-only (from the file), ambiguous container",
            ),
            ("413", "Body larger than api.max_body_bytes"),
            ("415", "A body without `Content-Type: application/json`"),
            ("502", "The Docker host failed; `kind` says how"),
            ("503", "No answer within api.request_timeout"),
            ("504", "The Docker host timed out"),
        ];
        let error_ref = RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"));
        for item in api.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.put,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                // An optional parameter is left out to say "none": its value is never
                // `null` (a header or query string cannot carry one), so the schema says
                // so too.
                for p in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(p) = p {
                        not_null(p);
                    }
                }
                // OpenAPI requires a description on every response; utoipa leaves it out
                // when the `responses(...)` entry gives none.
                for (code, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(r) = response
                        && r.description.is_empty()
                    {
                        r.description = match code.as_str() {
                            "201" => "Created",
                            "204" => "No content",
                            _ => "Success",
                        }
                        .to_string();
                    }
                }
                op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                for (code, description) in errors {
                    let response: OaResponse = ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            utoipa::openapi::ContentBuilder::new()
                                .schema(Some(error_ref.clone()))
                                .build(),
                        )
                        .build();
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert(RefOr::T(response));
                }
            }
        }
    }
}

/// An SSE answer is a stream of events, and its schema describes one event (as OpenAPI
/// 3.2 and schemathesis read it): `event` is `message`, `lagged` or `gap`, `id` the message
/// id, `data` a JSON [`crate::streams::Message`].
fn sse_events(api: &mut OpenApi) {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let event = ObjectBuilder::new()
        .schema_type(Type::Object)
        .required("event")
        .required("data")
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["message", "lagged", "gap"])),
        )
        .property(
            "id",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]+$")),
        )
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .content_schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "Message",
                )))),
        )
        .build();
    let Some(item) = api.paths.paths.get_mut("/api/v1/streams/{channel}") else {
        return;
    };
    let Some(op) = item.get.as_mut() else { return };
    if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200")
        && let Some(RefOr::T(content)) = ok.content.get_mut("text/event-stream")
    {
        content.schema = Some(RefOr::T(event.into()));
    }
}

/// Drops `null` from an optional parameter's type (utoipa derives it from `Option`).
fn not_null(p: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    if let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut()
        && let SchemaType::Array(types) = &o.schema_type
    {
        let kept: Vec<Type> = types
            .iter()
            .filter(|t| **t != Type::Null)
            .cloned()
            .collect();
        if let [only] = kept.as_slice() {
            o.schema_type = SchemaType::Type(only.clone());
        }
    }
}

/// The router and the OpenAPI document, built from the same route list.
pub fn router_and_doc() -> (Router<Arc<AppState>>, OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::list_clients, routes::register_client))
        .routes(routes!(
            routes::get_client,
            routes::update_client,
            routes::remove_client
        ))
        .routes(routes!(routes::list_hosts, routes::add_host))
        .routes(routes!(routes::hosts_with_health))
        .routes(routes!(
            routes::get_host,
            routes::update_host,
            routes::remove_host
        ))
        .routes(routes!(routes::check_host))
        .routes(routes!(routes::is_monitoring))
        .routes(routes!(routes::start_monitoring))
        .routes(routes!(routes::stop_monitoring))
        .routes(routes!(routes::stop_all_monitoring))
        .routes(routes!(routes::list_containers))
        .routes(routes!(routes::inspect_container, routes::remove_container))
        .routes(routes!(routes::start_container))
        .routes(routes!(routes::stop_container))
        .routes(routes!(routes::restart_container))
        .routes(routes!(routes::container_logs))
        .routes(routes!(routes::status))
        .routes(routes!(routes::pool_stats))
        .routes(routes!(routes::audit))
        .routes(routes!(streams::sse))
        .routes(routes!(streams::ws))
        .split_for_parts();
    // The derive's modifiers run before the routes are merged in: apply the conventions to
    // the finished document.
    Conventions.modify(&mut doc);
    (router, doc)
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi() -> OpenApi {
    router_and_doc().1
}

/// The whole admin application.
pub fn app(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    let (router, doc) = router_and_doc();
    let doc = Arc::new(doc);
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
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
            state.clone(),
            auth::guard,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
