//! The one error shape of the admin API: `{"error": {"code", "message", …}}` with the
//! status that says what went wrong, and the mapping from library errors to it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::client::{ClientError, ContainerRef, FieldError};
use crate::docker::{DockerError, ErrorKind};

/// An API failure, rendered as JSON.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Body (boxed: errors travel in `Result`s and should stay small).
    pub body: Box<ErrorDetail>,
}

/// `{"error": …}` of every failed call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What failed.
    pub error: ErrorDetail,
}

/// What failed, for programs (`code`) and people (`message`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Stable machine-readable code: `invalid`, `unauthorized`, `forbidden`,
    /// `actions_denied`, `actions_disabled`, `not_found`, `conflict`, `read_only`, `ambiguous`,
    /// `method_not_allowed`, `payload_too_large`, `too_many_requests`, `docker_error`,
    /// `docker_timeout`, `request_timeout`, `internal`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The offending input field, for `invalid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every offending field, for `invalid`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorView>)]
    pub fields: Vec<FieldError>,
    /// Classified Docker failure kind, for `docker_error` and `docker_timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Docker host that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Status Docker answered, for its API errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_status: Option<u16>,
    /// Containers an ambiguous name matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<ContainerRef>,
}

/// One bad input field.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FieldErrorView {
    /// Field path, e.g. `tls.ca` or `tail`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ApiError {
    /// An error with a code and message only.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: Box::new(ErrorDetail {
                code,
                message: message.into(),
                field: None,
                fields: Vec::new(),
                kind: None,
                host: None,
                docker_status: None,
                candidates: Vec::new(),
            }),
        }
    }

    /// 400 for one bad field.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("{field}: {message}"),
        );
        e.body.field = Some(field.to_string());
        e.body.fields = vec![FieldError {
            field: field.to_string(),
            message,
        }];
        e
    }

    fn docker(host: String, error: DockerError) -> ApiError {
        let (status, code) = match (error.kind, error.status) {
            (ErrorKind::Timeout, _) => (StatusCode::GATEWAY_TIMEOUT, "docker_timeout"),
            // Docker refusing what was asked (e.g. removing a running container without
            // force) is a conflict with the container's state, not a gateway failure.
            (ErrorKind::ApiError, Some(409)) => (StatusCode::CONFLICT, "conflict"),
            _ => (StatusCode::BAD_GATEWAY, "docker_error"),
        };
        let mut e = ApiError::new(status, code, format!("host `{host}`: {error}"));
        e.body.kind = Some(error.kind.as_str());
        e.body.docker_status = error.status;
        e.body.host = Some(host);
        e
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        let message = e.to_string();
        match e {
            ClientError::NotFound { .. }
            | ClientError::ContainerNotFound(_)
            | ClientError::HostNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            ClientError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            ClientError::ReadOnly(_) => ApiError::new(StatusCode::CONFLICT, "read_only", message),
            ClientError::Ambiguous { candidates, .. } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "ambiguous", message);
                e.body.candidates = candidates;
                e
            }
            ClientError::Invalid(fields) => {
                let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid", message);
                e.body.field = fields.first().map(|f| f.field.clone());
                e.body.fields = fields;
                e
            }
            ClientError::Denied(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "actions_denied", message)
            }
            ClientError::Docker { host, error } => ApiError::docker(host, error),
            ClientError::Store(_) => {
                tracing::error!(error = %message, "database failure in the admin API");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "database failure; see the exporter's log",
                )
            }
        }
    }
}

/// The error text kept for the audit log, attached to the response.
#[derive(Debug, Clone)]
pub struct AuditError(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let audit = AuditError(self.body.message.clone());
        let mut r = (self.status, axum::Json(ErrorBody { error: *self.body })).into_response();
        r.extensions_mut().insert(audit);
        r
    }
}
