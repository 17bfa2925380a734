//! Who is calling and what they may do: bearer tokens checked in constant time against
//! their SHA-256, the role each route declares ([`Policy`]), the request's deadline, and
//! the audit record of every mutating call (written through the library).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use utoipa_axum::router::UtoipaMethodRouter;

use super::AppState;
use super::deadline::Deadline;
use super::error::{ApiError, AuditError};
use crate::config::{Role, ValidToken, token_hash};
use crate::store::AuditRecord;

/// The authenticated caller, put in the request's extensions.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Token name (`generated-admin` for the data directory's generated token).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// What the handler acted on, attached to its response for the audit log.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// The role each operation needs: `router_and_doc` declares it beside each route
/// ([`Policy::allow`]) and the guard looks it up. Anything not declared needs `admin`, so a
/// new route is closed until it is given a role; a `HEAD` needs what its `GET` needs, and an
/// undeclared `GET` (answered 405) no more than `viewer`.
#[derive(Debug, Default)]
pub struct Policy {
    roles: Vec<(Method, String, Role)>,
    /// Operations that act on containers or read their logs: off in read-only mode.
    actions: Vec<(Method, String)>,
}

impl Policy {
    /// Declares that the operations of `routes` need `role`; hands them on unchanged.
    pub fn allow<S>(&mut self, role: Role, routes: UtoipaMethodRouter<S>) -> UtoipaMethodRouter<S> {
        for (path, item) in routes.1.paths.iter() {
            let ops = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ];
            for (method, declared) in ops {
                if declared {
                    self.roles.push((method, path.clone(), role));
                }
            }
        }
        routes
    }

    /// Like [`Policy::allow`], for an operation that acts on containers or reads their
    /// logs: refused (403) in read-only mode (`api.actions: false`).
    pub fn allow_action<S>(
        &mut self,
        role: Role,
        routes: UtoipaMethodRouter<S>,
    ) -> UtoipaMethodRouter<S> {
        let before = self.roles.len();
        let routes = self.allow(role, routes);
        let added: Vec<(Method, String)> = self.roles[before..]
            .iter()
            .map(|(m, r, _)| (m.clone(), r.clone()))
            .collect();
        self.actions.extend(added);
        routes
    }

    /// Whether `method` on `route` acts on containers or reads their logs.
    pub fn is_action(&self, method: &Method, route: &str) -> bool {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.actions.iter().any(|(m, r)| m == method && r == route)
    }

    /// The role `method` on `route` (a route template, as matched) needs.
    pub fn required(&self, method: &Method, route: &str) -> Role {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let declared = self
            .roles
            .iter()
            .find(|(m, r, _)| m == method && r == route)
            .map(|(_, _, role)| *role);
        match declared {
            Some(role) => role,
            None if method == Method::GET => Role::Viewer,
            None => Role::Admin,
        }
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

/// Authenticates the caller and enforces the [`Policy`]; runs the handler under its
/// [`Deadline`]; then, for mutating calls, writes the audit record once the answer is known.
pub async fn guard(
    State((state, policy)): State<(Arc<AppState>, Arc<Policy>)>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let audited = method != Method::GET && method != Method::HEAD && route.is_some();

    // Never anonymous: without tokens (a library user's AppState) nobody gets in.
    let identity = if state.tokens.is_empty() {
        Err(unauthorized(
            "no tokens are configured: the admin API answers nobody",
        ))
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
                .map(|r| policy.required(&method, r))
                .unwrap_or(Role::Viewer);
            let action = route
                .as_deref()
                .is_some_and(|r| policy.is_action(&method, r));
            if action && !state.actions {
                let mut r = ApiError::new(
                    StatusCode::FORBIDDEN,
                    "actions_disabled",
                    "read-only mode (api.actions: false): container actions and logs are off",
                )
                .into_response();
                r.extensions_mut().insert(id);
                r
            } else if id.role < needed {
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
                req.extensions_mut().insert(id.clone());
                let deadline = Deadline::new(state.request_timeout);
                req.extensions_mut().insert(deadline.clone());
                let mut r = deadline.run(next.run(req)).await;
                r.extensions_mut().insert(id);
                r
            }
        }
    };

    if audited {
        let record = audit_record(&method, route.as_deref().unwrap_or(&path), &path, &response);
        write_audit(&state, record).await;
    }
    response
}

fn audit_record(method: &Method, route: &str, path: &str, r: &Response) -> AuditRecord {
    let id = r.extensions().get::<Identity>();
    let status = r.status();
    let outcome = if status.is_success() {
        "ok"
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "denied"
    } else {
        "failed"
    };
    AuditRecord {
        id: 0,
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

async fn write_audit(state: &AppState, entry: AuditRecord) {
    tracing::info!(token = %entry.token, method = %entry.method, path = %entry.path,
        status = entry.status, outcome = %entry.outcome, "admin API call");
    if let Err(e) = state.docker.record_audit(entry.clone()).await {
        // The answer is already decided; the entry must not vanish silently.
        tracing::error!(error = %e, token = %entry.token, method = %entry.method, path = %entry.path,
            status = entry.status, outcome = %entry.outcome, "could not write the audit entry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        let policy = crate::api::router_and_doc().2;
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
            assert_eq!(policy.required(&m, r), want, "{m} {r}");
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
