//! Who is calling and what they may do: bearer tokens checked in constant time against
//! their SHA-256, roles from one policy table, and the audit record of every mutating call.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{ApiError, AuditError};
use crate::config::{Role, ValidToken, token_hash};
use crate::store::AuditEntry;

/// The authenticated caller, put in the request's extensions.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Token name, or `anonymous` when no tokens are configured.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// What the handler acted on, attached to its response for the audit log.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// The role a route needs. One table, read top to bottom; anything not listed needs
/// `admin`, so a new route is closed until it is placed here.
///
/// | route | role |
/// |---|---|
/// | `GET /api/v1/audit` | admin |
/// | any other `GET` | viewer |
/// | `POST`/`DELETE` under `…/containers/…` | operator |
/// | `POST …/monitoring/…`, `POST /api/v1/monitoring/stop-all` | operator |
/// | everything else (clients, hosts) | admin |
pub fn required_role(method: &Method, route: &str) -> Role {
    if route == "/api/v1/audit" {
        Role::Admin
    } else if method == Method::GET || method == Method::HEAD {
        Role::Viewer
    } else if route.contains("/containers/") || route.contains("/monitoring") {
        Role::Operator
    } else {
        Role::Admin
    }
}

/// Finds the token among the configured ones. Every candidate is compared, in constant
/// time, so timing tells nothing about which (or whether a) token matched.
fn identify(tokens: &[ValidToken], presented: &str) -> Option<Identity> {
    let hash = token_hash(presented);
    let mut found = None;
    for t in tokens {
        if bool::from(t.sha256.ct_eq(&hash)) {
            found = Some(Identity {
                name: t.name.clone(),
                role: t.role,
            });
        }
    }
    found
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dockstat\""),
    );
    r
}

/// Authenticates the caller and enforces [`required_role`]; then, for mutating calls,
/// writes the audit entry once the answer is known.
pub async fn guard(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let audited = method != Method::GET && method != Method::HEAD && route.is_some();

    let identity = if state.tokens.is_empty() {
        Ok(Identity {
            name: "anonymous".into(),
            role: Role::Admin,
        })
    } else {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match header.map(|h| h.split_once(' ')) {
            None => Err(unauthorized(
                "missing bearer token (Authorization: Bearer …)",
            )),
            Some(Some((scheme, token))) if scheme.eq_ignore_ascii_case("bearer") => {
                identify(&state.tokens, token.trim()).ok_or_else(|| unauthorized("unknown token"))
            }
            Some(_) => Err(unauthorized("Authorization must be `Bearer <token>`")),
        }
    };

    let response = match identity {
        Err(r) => r,
        Ok(id) => {
            // Unmatched paths (404/405 fallbacks) need no role.
            let needed = route
                .as_deref()
                .map(|r| required_role(&method, r))
                .unwrap_or(Role::Viewer);
            if id.role < needed {
                let mut r = ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "token `{}` has role {}; {method} {} needs {}",
                        id.name,
                        id.role.as_str(),
                        route.as_deref().unwrap_or(&path),
                        needed.as_str()
                    ),
                )
                .into_response();
                r.extensions_mut().insert(id);
                r
            } else {
                req.extensions_mut().insert(id);
                let id = req.extensions().get::<Identity>().cloned();
                let mut r = run_with_deadline(&state, req, next).await;
                if let Some(id) = id {
                    r.extensions_mut().insert(id);
                }
                r
            }
        }
    };

    if audited {
        let entry = audit_entry(&method, route.as_deref().unwrap_or(&path), &path, &response);
        write_audit(&state, entry).await;
    }
    response
}

/// Runs the handler under the API deadline. A stop or restart waits up to `t` seconds on
/// the daemon, so its deadline grows by `t`. The deadline covers the time to the answer's
/// head: a followed log stream then runs on.
async fn run_with_deadline(state: &AppState, req: Request, next: Next) -> Response {
    let extra = req
        .uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("t="))
                .and_then(|t| t.parse::<u32>().ok())
        })
        .map_or(Duration::ZERO, |t| Duration::from_secs(u64::from(t)));
    let deadline = state.request_timeout + extra;
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("no answer within {deadline:?}"),
        )
        .into_response(),
    }
}

fn audit_entry(method: &Method, route: &str, path: &str, r: &Response) -> AuditEntry {
    let id = r.extensions().get::<Identity>();
    let status = r.status();
    let outcome = if status.is_success() {
        "ok"
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "denied"
    } else {
        "failed"
    };
    AuditEntry {
        at: crate::clock::unix_now(),
        token: id.map_or_else(|| "-".to_string(), |i| i.name.clone()),
        role: id.map_or_else(|| "-".to_string(), |i| i.role.as_str().to_string()),
        method: method.to_string(),
        route: route.to_string(),
        path: path.to_string(),
        target: r.extensions().get::<AuditTarget>().map(|t| t.0.clone()),
        status: status.as_u16(),
        outcome: outcome.to_string(),
        error: r.extensions().get::<AuditError>().map(|e| e.0.clone()),
    }
}

async fn write_audit(state: &AppState, entry: AuditEntry) {
    tracing::info!(token = %entry.token, method = %entry.method, path = %entry.path,
        status = entry.status, outcome = %entry.outcome, "admin API call");
    if let Err(e) = state.client.store().insert_audit(entry.clone()).await {
        // The answer is already decided; the entry must not vanish silently.
        tracing::error!(error = %e, ?entry, "could not write the audit entry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        let cases = [
            (Method::GET, "/api/v1/clients", Role::Viewer),
            (Method::HEAD, "/api/v1/status", Role::Viewer),
            (Method::GET, "/api/v1/audit", Role::Admin),
            (Method::POST, "/api/v1/clients", Role::Admin),
            (Method::DELETE, "/api/v1/hosts/{host}", Role::Admin),
            (
                Method::POST,
                "/api/v1/clients/{client}/containers/{container}/stop",
                Role::Operator,
            ),
            (
                Method::DELETE,
                "/api/v1/clients/{client}/containers/{container}",
                Role::Operator,
            ),
            (
                Method::POST,
                "/api/v1/clients/{client}/monitoring/start",
                Role::Operator,
            ),
            (Method::POST, "/api/v1/monitoring/stop-all", Role::Operator),
        ];
        for (m, r, want) in cases {
            assert_eq!(required_role(&m, r), want, "{m} {r}");
        }
    }

    #[test]
    fn tokens_match_by_hash_only() {
        let tokens = vec![ValidToken {
            name: "ci".into(),
            role: Role::Operator,
            sha256: token_hash("s3cret-token-0123456789"),
        }];
        assert_eq!(
            identify(&tokens, "s3cret-token-0123456789").map(|i| i.role),
            Some(Role::Operator)
        );
        assert!(identify(&tokens, "s3cret-token-012345678").is_none());
        assert!(identify(&tokens, "").is_none());
    }
}
