//! The OpenAPI document's frame: title, tags, and the conventions every operation shares
//! (bearer security, the error responses, descriptions utoipa leaves out). The operations
//! themselves come from the handlers' `#[utoipa::path]`.

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Response as OaResponse, ResponseBuilder};

use super::error::ErrorBody;

// The document's frame: info and tags (a plain comment: a doc comment here could reach the
// document). The operations are merged in from the routes by `router_and_doc`.
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
pub(super) struct ApiDoc;

/// Adds what every operation shares: bearer security and the error responses.
pub(super) struct Conventions;

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
