//! Access control of the metrics listener with the Prometheus exporter-toolkit's web
//! configuration file (`--web.config.file`), so operators reuse the file they have for
//! node_exporter:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.pem
//!   key_file: server-key.pem
//!   client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
//!   client_ca_file: clients-ca.pem
//! basic_auth_users:
//!   prometheus: $2y$10$...                          # bcrypt hash (htpasswd -nBC 10 "")
//! ```
//!
//! TLS covers the whole listener. Basic auth covers every path but `/healthz`, which stays
//! open for container healthchecks and load balancers (it tells nothing but "the process
//! serves"). Relative paths are taken from the file's directory, as exporter-toolkit does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::lock::MutexExt;

/// The file as exporter-toolkit writes it (the keys this exporter supports).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// TLS of the metrics listener, optionally with client certificates.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// User names and the bcrypt hashes of their passwords.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

/// `tls_server_config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// Certificate chain (PEM).
    pub cert_file: String,
    /// Private key (PEM).
    pub key_file: String,
    /// `NoClientCert` (default), `VerifyClientCertIfGiven` or `RequireAndVerifyClientCert`.
    #[serde(default)]
    pub client_auth_type: Option<String>,
    /// CAs client certificates are verified against.
    #[serde(default)]
    pub client_ca_file: Option<String>,
}

/// The web configuration, read and checked.
#[derive(Debug, Clone)]
pub struct LoadedWebConfig {
    /// TLS of the metrics listener, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Basic auth users; empty: no basic auth.
    pub users: Arc<BasicAuth>,
}

/// Basic auth users with a cache of verified credentials: bcrypt costs tens of
/// milliseconds per check by design, and Prometheus sends the same credentials each scrape.
#[derive(Debug, Default)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// SHA-256 of `user:password` pairs already verified.
    verified: Mutex<Vec<[u8; 32]>>,
}

impl BasicAuth {
    /// Whether any user is configured.
    pub fn is_on(&self) -> bool {
        !self.users.is_empty()
    }

    /// How many users are configured.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    fn check(&self, user: &str, password: &str) -> bool {
        use sha2::Digest;
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let key: [u8; 32] = sha2::Sha256::digest(format!("{user}:{password}").as_bytes()).into();
        if self.verified.locked().contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            let mut v = self.verified.locked();
            if v.len() < 64 {
                v.push(key);
            }
        }
        ok
    }
}

/// Reads and checks the file: every problem with the file's name in front.
pub fn load(path: &Path) -> Result<LoadedWebConfig, String> {
    let at = |e: String| format!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| at(format!("cannot read: {e}")))?;
    let cfg: WebConfig = if text.trim().is_empty() {
        WebConfig::default()
    } else {
        serde_yaml::from_str(&text).map_err(|e| {
            at(format!(
                "{e} (supported: tls_server_config {{cert_file, key_file, client_auth_type, \
                 client_ca_file}}, basic_auth_users)"
            ))
        })?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let file = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    for (user, hash) in &cfg.basic_auth_users {
        if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
            return Err(at(format!(
                "basic_auth_users.{user}: not a bcrypt hash (`$2y$…`; make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            )));
        }
    }
    let tls = match &cfg.tls_server_config {
        None => None,
        Some(t) => Some(Arc::new(server_tls(t, &file).map_err(at)?)),
    };
    Ok(LoadedWebConfig {
        tls,
        users: Arc::new(BasicAuth {
            users: cfg.basic_auth_users,
            verified: Mutex::new(Vec::new()),
        }),
    })
}

fn server_tls(
    t: &TlsServerConfig,
    file: &dyn Fn(&str) -> PathBuf,
) -> Result<rustls::ServerConfig, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = crate::tls::certificates(&file(&t.cert_file))
        .map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    let key = crate::tls::private_key(&file(&t.key_file))
        .map_err(|e| format!("tls_server_config.key_file: {e}"))?;
    let kind = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let roots = || -> Result<Arc<rustls::RootCertStore>, String> {
        let ca = t.client_ca_file.as_deref().ok_or_else(|| {
            format!("tls_server_config.client_auth_type {kind} needs client_ca_file")
        })?;
        crate::tls::roots(&file(ca))
            .map(|(r, _)| Arc::new(r))
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match kind {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots()?, provider);
            let verifier = if kind == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
            )
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type `{other}`: supported are NoClientCert, \
                 VerifyClientCertIfGiven and RequireAndVerifyClientCert (RequestClientCert and \
                 RequireAnyClientCert accept unverified certificates, which this exporter does not)"
            ));
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Basic auth on every path of the metrics listener but `/healthz`.
pub async fn basic_auth(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    if !auth.is_on() || req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let credentials = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| base64_decode(b.trim()))
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let ok = match credentials {
        None => false,
        Some((user, password)) => {
            let auth = auth.clone();
            tokio::task::spawn_blocking(move || auth.check(&user, &password))
                .await
                .unwrap_or(false)
        }
    };
    if ok {
        next.run(req).await
    } else {
        let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"dockstat-exporter\""),
        );
        r
    }
}

/// Standard base64 with padding; None when it is not.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { val(*c)? };
            n = n << 6 | v;
        }
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_credentials() {
        assert_eq!(
            base64_decode("dXNlcjpwYXNz").as_deref(),
            Some(&b"user:pass"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert!(base64_decode("YQ=").is_none());
        assert!(base64_decode("Y!==").is_none());
    }

    #[test]
    fn bcrypt_users_and_the_cache() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let auth = BasicAuth {
            users: [("prom".to_string(), hash)].into_iter().collect(),
            verified: Mutex::new(Vec::new()),
        };
        assert!(auth.check("prom", "s3cret"));
        assert!(auth.check("prom", "s3cret"));
        assert!(!auth.check("prom", "wrong"));
        assert!(!auth.check("other", "s3cret"));
    }
}
