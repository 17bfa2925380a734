//! Keys of the `otlp` section set both in the file and by an `OTEL_*` variable: the file
//! wins, and the start and `check-config` say so.

use super::{OtlpConfig, otel_var};

/// A key of the `otlp` section the file sets while an `OTEL_*` variable sets it too: the
/// file's value is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpOverlap {
    /// The key under `otlp`, e.g. `endpoint`, `tls.ca`.
    pub key: &'static str,
    /// The environment variable whose value is not used.
    pub variable: String,
}

/// Every key both the file and the environment set (the file wins), in key order.
pub fn overlaps(cfg: &OtlpConfig, env: &dyn Fn(&str) -> Option<String>) -> Vec<OtlpOverlap> {
    let tls = cfg.tls.as_ref();
    let pairs: [(&'static str, bool, Option<String>); 11] = [
        (
            "enabled",
            cfg.enabled.is_some(),
            env("OTEL_METRICS_EXPORTER").map(|_| "OTEL_METRICS_EXPORTER".to_string()),
        ),
        (
            "endpoint",
            cfg.endpoint.is_some(),
            otel_var(env, "ENDPOINT").map(|v| v.0),
        ),
        (
            "protocol",
            cfg.protocol.is_some(),
            otel_var(env, "PROTOCOL").map(|v| v.0),
        ),
        (
            "interval",
            cfg.interval.is_some(),
            env("OTEL_METRIC_EXPORT_INTERVAL").map(|_| "OTEL_METRIC_EXPORT_INTERVAL".to_string()),
        ),
        (
            "timeout",
            cfg.timeout.is_some(),
            otel_var(env, "TIMEOUT").map(|v| v.0),
        ),
        (
            "headers",
            cfg.headers.is_some(),
            otel_var(env, "HEADERS").map(|v| v.0),
        ),
        (
            "compression",
            cfg.compression.is_some(),
            otel_var(env, "COMPRESSION").map(|v| v.0),
        ),
        (
            "insecure",
            cfg.insecure.is_some(),
            otel_var(env, "INSECURE").map(|v| v.0),
        ),
        (
            "tls.ca",
            tls.is_some_and(|t| t.ca.is_some()),
            otel_var(env, "CERTIFICATE").map(|v| v.0),
        ),
        (
            "tls.cert",
            tls.is_some_and(|t| t.cert.is_some()),
            otel_var(env, "CLIENT_CERTIFICATE").map(|v| v.0),
        ),
        (
            "tls.key",
            tls.is_some_and(|t| t.key.is_some()),
            otel_var(env, "CLIENT_KEY").map(|v| v.0),
        ),
    ];
    pairs
        .into_iter()
        .filter_map(|(key, in_file, var)| match (in_file, var) {
            (true, Some(variable)) => Some(OtlpOverlap { key, variable }),
            _ => None,
        })
        .collect()
}
