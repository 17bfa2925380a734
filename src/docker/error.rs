//! Every Docker failure as one [`DockerError`] of a small set of [`ErrorKind`]s operators
//! can act on: transport failures classified by the I/O, TLS or HTTP error beneath them,
//! error answers with Docker's own message.

use std::fmt;
use std::time::Duration;

use http::{Response, StatusCode};
use hyper::body::Incoming;

use super::{limits, read};

/// What went wrong talking to a host, in the terms an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The unix socket path does not exist.
    SocketNotFound,
    /// The socket exists but we may not open it.
    PermissionDenied,
    /// Nothing listens at the address.
    ConnectionRefused,
    /// No answer within the deadline.
    Timeout,
    /// TLS handshake or certificate failure.
    Tls,
    /// The daemon answered with an HTTP error status.
    ApiError,
    /// The answer could not be decoded.
    Decode,
    /// The answer was larger than the bound for its endpoint ([`limits`]): a broken or
    /// hostile daemon. The host answered; this one call failed.
    TooLarge,
    /// The connection broke (reset, closed, unreachable, DNS).
    Connection,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Label value and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::SocketNotFound => "socket_not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::ConnectionRefused => "connection_refused",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::ApiError => "api_error",
            ErrorKind::Decode => "decode",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Connection => "connection",
            ErrorKind::Other => "other",
        }
    }

    /// True when the host itself is unreachable, as opposed to one call failing.
    pub fn is_host_down(self) -> bool {
        !matches!(
            self,
            ErrorKind::ApiError | ErrorKind::Decode | ErrorKind::TooLarge
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified Docker failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{kind}{}: {message}", status.map(|s| format!(" {s}")).unwrap_or_default())]
pub struct DockerError {
    /// The class.
    pub kind: ErrorKind,
    /// HTTP status of an API error.
    pub status: Option<u16>,
    /// The underlying message.
    pub message: String,
}

impl DockerError {
    /// What a host that has not been tried yet reports.
    pub fn pending() -> DockerError {
        DockerError::new(ErrorKind::Other, "not collected yet")
    }

    pub(super) fn new(kind: ErrorKind, message: impl Into<String>) -> DockerError {
        DockerError {
            kind,
            status: None,
            message: message.into(),
        }
    }

    /// Classifies a transport failure (connecting, TLS, sending, reading a body) by the
    /// I/O, TLS or HTTP error in its source chain.
    pub fn classify(err: &(dyn std::error::Error + 'static)) -> DockerError {
        DockerError::new(kind_from_chain(err), full_message(err))
    }
}

/// The message of an error and of every error beneath it.
fn full_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut cur = next_cause(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
        cur = next_cause(e);
    }
    msg
}

/// `source()`, except that for an `io::Error` wrapping another error it returns that error:
/// io::Error's own `source()` skips its payload, and the payload is where rustls reports.
fn next_cause<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(io) = e.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        return Some(inner);
    }
    e.source()
}

fn kind_from_chain(err: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur = Some(err);
    let mut kind = ErrorKind::Other;
    // An HTTP-level failure without an I/O error beneath it (connection closed mid-answer,
    // malformed answer) still means the connection is unusable.
    let mut http = false;
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            kind = match io.kind() {
                K::NotFound => ErrorKind::SocketNotFound,
                K::PermissionDenied => ErrorKind::PermissionDenied,
                K::ConnectionRefused => ErrorKind::ConnectionRefused,
                K::TimedOut => ErrorKind::Timeout,
                K::InvalidData if io.get_ref().is_some() => kind, // look at the payload
                _ => ErrorKind::Connection,
            };
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            http = true;
            if h.is_timeout() && kind == ErrorKind::Other {
                kind = ErrorKind::Timeout;
            }
        }
        if e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some()
        {
            http = true;
        }
        cur = next_cause(e);
    }
    if kind == ErrorKind::Other && http {
        ErrorKind::Connection
    } else {
        kind
    }
}

/// An error answer as `api_error` with its status and Docker's message, read within
/// [`limits::ERROR_BODY`].
pub(super) async fn api_error(answer: Response<Incoming>, path: &str) -> DockerError {
    let status = answer.status();
    let docker = answer.headers().contains_key("api-version");
    let server = answer
        .headers()
        .get(http::header::SERVER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read::whole(answer.into_body(), limits::ERROR_BODY, path).await;
    error_answer(status, docker, server.as_deref(), body, path)
}

/// The `api_error` of an answer with `status`: `docker` when it carried Docker's
/// `Api-Version` header, `server` its `Server` header, `body` as far as it could be read.
pub(super) fn error_answer(
    status: StatusCode,
    docker: bool,
    server: Option<&str>,
    body: Result<bytes::Bytes, DockerError>,
    path: &str,
) -> DockerError {
    let body = match body {
        Ok(body) => body,
        Err(e) if e.kind == ErrorKind::TooLarge => {
            return DockerError {
                message: format!("{} (HTTP {})", e.message, status.as_u16()),
                ..e
            };
        }
        Err(e) => bytes::Bytes::from(format!("(error answer cut: {e})")),
    };
    // Every Docker Engine answer carries `Api-Version`; without it something else answered.
    let message = if docker {
        error_message(&body, status)
    } else {
        let text = error_message(&body, status);
        format!(
            "not a Docker Engine API: HTTP {} for {path} without Docker's Api-Version header{}: {}",
            status.as_u16(),
            server
                .map(|s| format!(" (Server: {s})"))
                .unwrap_or_default(),
            text.chars().take(200).collect::<String>()
        )
    };
    DockerError {
        kind: ErrorKind::ApiError,
        status: Some(status.as_u16()),
        message,
    }
}

/// Docker's `{"message": "…"}`, else the text of the answer, else the status' reason.
pub(super) fn error_message(body: &[u8], status: StatusCode) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    // One log line per error: Docker's messages may span lines (build and plugin errors).
    let one_line = |s: &str| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    if let Ok(m) = serde_json::from_slice::<Message>(body) {
        return one_line(&m.message);
    }
    let text = one_line(String::from_utf8_lossy(body).trim());
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        text
    }
}

pub(super) fn decode_error(path: &str, e: &serde_json::Error) -> DockerError {
    DockerError::new(ErrorKind::Decode, format!("{path}: {e}"))
}

pub(super) fn timed_out(deadline: Duration) -> DockerError {
    DockerError::new(ErrorKind::Timeout, format!("no answer within {deadline:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_docker_messages_become_one_line() {
        let body = br#"{"message":"failed to create shim task:\n  OCI runtime create failed:\n\n  exec: \"x\": not found"}"#;
        assert_eq!(
            error_message(body, StatusCode::INTERNAL_SERVER_ERROR),
            "failed to create shim task: / OCI runtime create failed: / exec: \"x\": not found"
        );
        assert_eq!(
            error_message(b"line one\r\nline two\n", StatusCode::BAD_GATEWAY),
            "line one / line two"
        );
        assert_eq!(error_message(b"", StatusCode::NOT_FOUND), "Not Found");
    }
}
