//! axum's `Json`, `Query` and `Path` with their rejections turned into the API's JSON
//! errors, so malformed input never gets a plain-text or HTML answer; and [`At`], the state
//! with the path parameters.

use std::sync::Arc;

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// A JSON body; bad JSON, wrong types, unknown fields (with `deny_unknown_fields`) and
/// oversized bodies are 400/413/415 JSON errors.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// Query parameters; a bad value is a 400 JSON error.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters; a bad value (a non-numeric id, say) is a 400 JSON error.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let status = r.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid",
        };
        // Unprocessable (valid JSON, wrong shape) is reported as 400 like every bad input.
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        let mut e = ApiError::new(status, code, r.body_text());
        if code == "invalid" {
            e.body.field = Some("body".into());
        }
        e
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid", r.body_text());
        e.body.field = Some("query".into());
        e
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid", r.body_text());
        e.body.field = Some("path".into());
        e
    }
}

/// The shared state and a handler's path parameters, taken together so that a handler's
/// signature says in one line what it works on; a path that does not parse is a 400 JSON
/// error, as with [`Path`].
#[derive(Debug)]
pub struct At<P>(pub Arc<AppState>, pub P);

impl<P: DeserializeOwned + Send> FromRequestParts<Arc<AppState>> for At<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Path(p) = Path::<P>::from_request_parts(parts, state).await?;
        Ok(At(state.clone(), p))
    }
}
