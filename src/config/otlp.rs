//! The `otlp:` section, and the standard `OTEL_*` environment variables it falls back to.
//!
//! Precedence, key by key: the file, then `OTEL_EXPORTER_OTLP_METRICS_*`, then
//! `OTEL_EXPORTER_OTLP_*`, then the defaults below. Everything is checked at load, TLS files
//! parsed included, so a bad setting stops the start (exit 2) instead of failing exports.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::address::{readable_file, resolve};
use super::{PathSeg, Problem, expand_env};

/// Push the snapshot over OTLP (OpenTelemetry Protocol) to a collector or vendor endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Push metrics. Default false; when not set, `OTEL_METRICS_EXPORTER=otlp` turns it on.
    pub enabled: Option<bool>,
    /// Receiver URL. gRPC: `http(s)://host:4317`. HTTP: `http(s)://host:4318`, and
    /// `/v1/metrics` is added when the URL has no path. `https://` means TLS. Without a
    /// scheme, TLS unless `insecure: true`. Default `http://localhost:4317` (gRPC) or
    /// `http://localhost:4318/v1/metrics` (HTTP). `${ENV}` allowed.
    pub endpoint: Option<String>,
    /// `grpc` (default) or `http/protobuf`.
    pub protocol: Option<Protocol>,
    /// Time between exports. Default `15s`. Range: 1s to 1day.
    #[serde(deserialize_with = "opt_duration")]
    pub interval: Option<Duration>,
    /// Deadline of one export, connecting included. Default `10s`. Range: 100ms to 10m.
    #[serde(deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Headers (gRPC metadata) sent with every export, e.g. `authorization`. Values may use
    /// `${ENV}`. Default none.
    pub headers: Option<BTreeMap<String, String>>,
    /// `gzip` or `none` (default).
    pub compression: Option<Compression>,
    /// Plain text for an endpoint written without a scheme. Default false.
    pub insecure: Option<bool>,
    /// TLS for `https://` endpoints: a CA to trust instead of the system's, and a client
    /// certificate for mutual TLS. PEM files; relative paths from the configuration file's
    /// directory; `${ENV}` allowed.
    pub tls: Option<OtlpTlsConfig>,
    /// Most data points in one request; a bigger export is sent as several requests, one
    /// after the other. Receivers cap message sizes (the OpenTelemetry Collector at 4 MiB by
    /// default); a point is ~300 bytes before compression. Default 5000. Range: 10 to 100000.
    pub max_points_per_request: Option<std::num::NonZeroUsize>,
    /// Extra resource attributes, e.g. `deployment.environment.name: prod`. They add to
    /// `OTEL_RESOURCE_ATTRIBUTES`, winning on equal keys. `service.name` defaults to
    /// `dockstat-exporter` (or `OTEL_SERVICE_NAME`), `service.instance.id` to the machine's
    /// host name.
    pub resource: BTreeMap<String, String>,
}

/// TLS files of the OTLP client.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpTlsConfig {
    /// CA certificate(s) to verify the receiver with. Default: the system's roots.
    #[serde(default)]
    pub ca: Option<String>,
    /// Client certificate chain for mutual TLS; needs `key`.
    #[serde(default)]
    pub cert: Option<String>,
    /// Client private key (PKCS#8, PKCS#1 or SEC1 PEM); needs `cert`.
    #[serde(default)]
    pub key: Option<String>,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// OTLP/gRPC.
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with a binary protobuf body.
    #[serde(rename = "http/protobuf", alias = "http")]
    HttpProtobuf,
}

/// Body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// None.
    None,
    /// gzip.
    Gzip,
}

/// The OTLP settings after merging file, environment and defaults, checked.
#[derive(Debug, Clone)]
pub struct ValidOtlp {
    /// Full URL: for HTTP including the path.
    pub endpoint: http::Uri,
    /// Transport.
    pub protocol: Protocol,
    /// Time between exports.
    pub interval: Duration,
    /// Deadline of one export.
    pub timeout: Duration,
    /// Header names (lowercase) and values.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// gzip on.
    pub gzip: bool,
    /// TLS client settings; used when the endpoint is `https://`.
    pub tls: Arc<rustls::ClientConfig>,
    /// Resource attributes given by the user (file and `OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Vec<(String, String)>,
    /// Most data points in one request.
    pub max_points: usize,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_POINTS: usize = 5000;

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    super::schema::duration(d).map(Some)
}

fn at(keys: &[&str]) -> Vec<PathSeg> {
    std::iter::once("otlp")
        .chain(keys.iter().copied())
        .map(PathSeg::from)
        .collect()
}

/// Reads one setting from `OTEL_EXPORTER_OTLP_METRICS_<NAME>`, else
/// `OTEL_EXPORTER_OTLP_<NAME>`; returns the variable's name with the value.
fn otel_var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<(String, String)> {
    [
        format!("OTEL_EXPORTER_OTLP_METRICS_{name}"),
        format!("OTEL_EXPORTER_OTLP_{name}"),
    ]
    .into_iter()
    .find_map(|var| env(&var).map(|v| (var, v)))
}

/// Decodes `%XX` escapes, as the OTEL_*_HEADERS and OTEL_RESOURCE_ATTRIBUTES lists use.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `k1=v1,k2=v2` (the OTEL list format).
fn key_values(var: &str, s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((percent_decode(k.trim()), percent_decode(v.trim())))
            }
            _ => Err(format!("{var}: `{pair}` is not key=value")),
        })
        .collect()
}

fn millis(var: &str, s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "{var}=`{s}`: expected a number of milliseconds above 0"
        )),
    }
}

/// Merges the section with the environment and checks it; `None` when OTLP is off.
/// Problems found in the environment are reported at the `otlp` key (or the file's start).
pub(super) fn validate(
    cfg: &OtlpConfig,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Option<ValidOtlp> {
    let env_problem = |problems: &mut Vec<Problem>, message: String| {
        problems.push(Problem::new(at(&[]), message));
    };
    let enabled = cfg.enabled.unwrap_or_else(|| {
        env("OTEL_METRICS_EXPORTER")
            .is_some_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("otlp")))
    });
    if !enabled {
        return None;
    }
    let before = problems.len();

    let protocol = match cfg.protocol {
        Some(p) => p,
        None => match otel_var(env, "PROTOCOL") {
            None => Protocol::Grpc,
            Some((_, v)) if v == "grpc" => Protocol::Grpc,
            Some((_, v)) if v == "http/protobuf" => Protocol::HttpProtobuf,
            Some((var, v)) => {
                env_problem(
                    problems,
                    format!("{var}=`{v}`: supported are grpc and http/protobuf"),
                );
                Protocol::Grpc
            }
        },
    };
    let insecure = match cfg.insecure {
        Some(b) => b,
        None => match otel_var(env, "INSECURE") {
            None => false,
            Some((_, v)) if v.eq_ignore_ascii_case("true") => true,
            Some((_, v)) if v.eq_ignore_ascii_case("false") => false,
            Some((var, v)) => {
                env_problem(problems, format!("{var}=`{v}`: expected true or false"));
                false
            }
        },
    };
    // (value, the variable it came from when not from the file)
    let interval = match cfg.interval {
        Some(d) => (d, None),
        None => match env("OTEL_METRIC_EXPORT_INTERVAL") {
            None => (DEFAULT_INTERVAL, None),
            Some(v) => match millis("OTEL_METRIC_EXPORT_INTERVAL", &v) {
                Ok(d) => (d, Some("OTEL_METRIC_EXPORT_INTERVAL".to_string())),
                Err(e) => {
                    env_problem(problems, e);
                    (DEFAULT_INTERVAL, None)
                }
            },
        },
    };
    let timeout = match cfg.timeout {
        Some(d) => (d, None),
        None => match otel_var(env, "TIMEOUT") {
            None => (DEFAULT_TIMEOUT, None),
            Some((var, v)) => match millis(&var, &v) {
                Ok(d) => (d, Some(var)),
                Err(e) => {
                    env_problem(problems, e);
                    (DEFAULT_TIMEOUT, None)
                }
            },
        },
    };
    let max_points = cfg
        .max_points_per_request
        .map_or(DEFAULT_MAX_POINTS, |n| n.get());
    super::ranges::check_otlp(
        problems,
        (interval.0, interval.1.as_deref()),
        (timeout.0, timeout.1.as_deref()),
        max_points,
    );
    let (interval, timeout) = (interval.0, timeout.0);
    let gzip = match cfg.compression {
        Some(c) => c == Compression::Gzip,
        None => match otel_var(env, "COMPRESSION") {
            None => false,
            Some((_, v)) if v == "gzip" => true,
            Some((_, v)) if v == "none" => false,
            Some((var, v)) => {
                env_problem(problems, format!("{var}=`{v}`: expected gzip or none"));
                false
            }
        },
    };

    let endpoint = endpoint(cfg, env, protocol, insecure, problems);

    // Headers: the file's map, else the environment's list.
    let mut headers = Vec::new();
    let raw: Vec<(Vec<PathSeg>, String, Result<String, String>)> = match &cfg.headers {
        Some(map) => map
            .iter()
            .map(|(k, v)| (at(&["headers", k]), k.clone(), expand_env(v)))
            .collect(),
        None => match otel_var(env, "HEADERS") {
            None => Vec::new(),
            Some((var, v)) => match key_values(&var, &v) {
                Ok(list) => list.into_iter().map(|(k, v)| (at(&[]), k, Ok(v))).collect(),
                Err(e) => {
                    env_problem(problems, e);
                    Vec::new()
                }
            },
        },
    };
    for (path, key, value) in raw {
        let name = match http::HeaderName::from_bytes(key.as_bytes()) {
            Ok(n) if !n.as_str().ends_with("-bin") => n,
            Ok(_) => {
                problems.push(Problem::new(
                    path,
                    format!("header `{key}`: binary (-bin) metadata is not supported"),
                ));
                continue;
            }
            Err(_) => {
                problems.push(Problem::new(
                    path,
                    format!("`{key}` is not a valid header name"),
                ));
                continue;
            }
        };
        match value.and_then(|v| {
            http::HeaderValue::from_str(&v).map_err(|_| {
                format!("the value of header `{key}` has characters a header cannot carry")
            })
        }) {
            Ok(v) => headers.push((name, v)),
            Err(e) => problems.push(Problem::new(path, e)),
        }
    }

    let tls = tls_config(cfg, env, base, problems);
    if let (Some(ep), Some(t)) = (&endpoint, &cfg.tls)
        && ep.scheme_str() != Some("https")
        && (t.ca.is_some() || t.cert.is_some())
    {
        problems.push(Problem::new(
            at(&["tls"]),
            "tls applies to https:// endpoints only",
        ));
    }

    let mut resource: BTreeMap<String, String> = BTreeMap::new();
    if let Some(v) = env("OTEL_RESOURCE_ATTRIBUTES") {
        match key_values("OTEL_RESOURCE_ATTRIBUTES", &v) {
            Ok(list) => resource.extend(list),
            Err(e) => env_problem(problems, e),
        }
    }
    if let Some(name) = env("OTEL_SERVICE_NAME").filter(|n| !n.is_empty()) {
        resource.insert("service.name".to_string(), name);
    }
    for (k, v) in &cfg.resource {
        match expand_env(v) {
            Ok(v) => {
                resource.insert(k.clone(), v);
            }
            Err(e) => problems.push(Problem::new(at(&["resource", k]), e)),
        }
    }

    match (endpoint, tls) {
        (Some(endpoint), Some(tls)) if problems.len() == before => Some(ValidOtlp {
            endpoint,
            protocol,
            interval,
            timeout,
            headers,
            gzip,
            tls: Arc::new(tls),
            resource: resource.into_iter().collect(),
            max_points,
        }),
        _ => None,
    }
}

/// The receiver URL from the file, the environment or the default.
fn endpoint(
    cfg: &OtlpConfig,
    env: &dyn Fn(&str) -> Option<String>,
    protocol: Protocol,
    insecure: bool,
    problems: &mut Vec<Problem>,
) -> Option<http::Uri> {
    // (text, where to report, add /v1/metrics to an HTTP URL without a path?)
    let (text, path, add_path) = match &cfg.endpoint {
        Some(e) => match expand_env(e) {
            Ok(e) => (e, at(&["endpoint"]), true),
            Err(e) => {
                problems.push(Problem::new(at(&["endpoint"]), e));
                return None;
            }
        },
        None => match (
            env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
            env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            // The signal-specific URL is used as it is (OTLP exporter specification).
            (Some(e), _) => (e, at(&[]), false),
            (None, Some(e)) => (e, at(&[]), true),
            (None, None) => match protocol {
                Protocol::Grpc => ("http://localhost:4317".to_string(), at(&[]), false),
                Protocol::HttpProtobuf => (
                    "http://localhost:4318/v1/metrics".to_string(),
                    at(&[]),
                    false,
                ),
            },
        },
    };
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else if insecure {
        format!("http://{text}")
    } else {
        format!("https://{text}")
    };
    let uri: http::Uri = match with_scheme.parse() {
        Ok(u) => u,
        Err(e) => {
            problems.push(Problem::new(path, format!("`{text}` is not a URL: {e}")));
            return None;
        }
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        problems.push(Problem::new(
            path,
            format!("`{text}`: expected http://host:port or https://host:port"),
        ));
        return None;
    }
    if protocol == Protocol::HttpProtobuf && add_path {
        let base = uri.path().trim_end_matches('/');
        let joined = if cfg.endpoint.is_some() && !base.is_empty() {
            // A path written in the file is the full URL.
            uri.path().to_string()
        } else {
            format!("{base}/v1/metrics")
        };
        let mut parts = uri.into_parts();
        parts.path_and_query = match joined.parse() {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(Problem::new(path, format!("`{text}`: {e}")));
                return None;
            }
        };
        return match http::Uri::from_parts(parts) {
            Ok(u) => Some(u),
            Err(e) => {
                problems.push(Problem::new(path, format!("`{text}`: {e}")));
                None
            }
        };
    }
    Some(uri)
}

/// Builds the rustls client configuration: the CA (or the system's roots) and the client
/// certificate, parsed now so that a bad file is a configuration error.
fn tls_config(
    cfg: &OtlpConfig,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Option<rustls::ClientConfig> {
    let file_tls = cfg.tls.clone().unwrap_or_default();
    // (value, where to report): the file's key, else the environment variable.
    let pick = |key: &str, file: &Option<String>, var: &str| -> Option<(String, Vec<PathSeg>)> {
        match file {
            Some(v) => Some((v.clone(), at(&["tls", key]))),
            None => otel_var(env, var).map(|(_, v)| (v, at(&[]))),
        }
    };
    let mut file =
        |(value, path): (String, Vec<PathSeg>)| -> Option<(std::path::PathBuf, Vec<PathSeg>)> {
            match expand_env(&value).and_then(|v| readable_file(&resolve(base, &v))) {
                Ok(p) => Some((p, path)),
                Err(e) => {
                    problems.push(Problem::new(path, e));
                    None
                }
            }
        };
    let ca = pick("ca", &file_tls.ca, "CERTIFICATE").map(&mut file);
    let cert = pick("cert", &file_tls.cert, "CLIENT_CERTIFICATE").map(&mut file);
    let key = pick("key", &file_tls.key, "CLIENT_KEY").map(&mut file);
    let mut ok = true;

    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(Some((p, path))) => match crate::tls::roots(&p) {
            Ok((found, 0)) => roots = found,
            Ok(_) => {
                problems.push(Problem::new(
                    path,
                    format!("`{}` holds no usable CA certificate", p.display()),
                ));
                ok = false;
            }
            Err(e) => {
                problems.push(Problem::new(path, e));
                ok = false;
            }
        },
        Some(None) => ok = false,
        None => {
            // The system's roots; unreadable ones are skipped, as every TLS client does.
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }

    let builder = match crate::tls::client_builder() {
        Ok(b) => b.with_root_certificates(roots),
        Err(e) => {
            problems.push(Problem::new(at(&["tls"]), format!("TLS set-up: {e}")));
            return None;
        }
    };
    let config = match (cert, key) {
        (None, None) => Some(builder.with_no_client_auth()),
        (Some(Some((cert, cpath))), Some(Some((key, kpath)))) => {
            match (
                crate::tls::certificates(&cert),
                crate::tls::private_key(&key),
            ) {
                (Ok(chain), Ok(k)) => match builder.with_client_auth_cert(chain, k) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        problems.push(Problem::new(kpath, format!("client key: {e}")));
                        None
                    }
                },
                (Err(e), _) => {
                    problems.push(Problem::new(cpath, e));
                    None
                }
                (_, Err(e)) => {
                    problems.push(Problem::new(kpath, e));
                    None
                }
            }
        }
        (Some(None), _) | (_, Some(None)) => None,
        (Some(_), None) | (None, Some(_)) => {
            problems.push(Problem::new(
                at(&["tls"]),
                "a client certificate needs both cert and key",
            ));
            None
        }
    };
    config.filter(|_| ok)
}

mod overlaps;

pub use overlaps::{OtlpOverlap, overlaps};

#[cfg(test)]
mod tests;

impl ValidOtlp {
    /// The effective settings on one line, header values left out (they carry secrets).
    pub fn describe(&self) -> String {
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        let resource: Vec<String> = self
            .resource
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "endpoint={} protocol={} interval={} timeout={} compression={} headers=[{}] resource=[{}] max_points_per_request={}",
            self.endpoint,
            match self.protocol {
                Protocol::Grpc => "grpc",
                Protocol::HttpProtobuf => "http/protobuf",
            },
            humantime::format_duration(self.interval),
            humantime::format_duration(self.timeout),
            if self.gzip { "gzip" } else { "none" },
            headers.join(","),
            resource.join(","),
            self.max_points,
        )
    }
}
