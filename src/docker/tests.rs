use super::error::error_message;
use super::*;

#[test]
fn classifies_io_errors() {
    let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert_eq!(
        DockerError::classify(&io).kind,
        ErrorKind::ConnectionRefused
    );

    let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    assert_eq!(DockerError::classify(&io).kind, ErrorKind::PermissionDenied);

    let io = std::io::Error::from(std::io::ErrorKind::NotFound);
    assert_eq!(DockerError::classify(&io).kind, ErrorKind::SocketNotFound);

    let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    assert_eq!(DockerError::classify(&io).kind, ErrorKind::Connection);

    let tls = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
    );
    let c = DockerError::classify(&tls);
    assert_eq!(c.kind, ErrorKind::Tls);
    assert!(c.message.contains("UnknownIssuer"), "{}", c.message);
}

#[test]
fn too_large_is_one_call_failing_not_the_host() {
    assert_eq!(ErrorKind::TooLarge.as_str(), "too_large");
    assert!(!ErrorKind::TooLarge.is_host_down());
    assert!(!ErrorKind::ApiError.is_host_down());
    assert!(ErrorKind::Timeout.is_host_down());
    let e = read::too_large("/v1.41/info", limits::INFO);
    assert_eq!(
        e.to_string(),
        "too_large: /v1.41/info: answer larger than 4 MiB, the bound for this call"
    );
}

#[test]
fn error_answers_give_dockers_message() {
    let e = DockerError {
        kind: ErrorKind::ApiError,
        status: Some(404),
        message: error_message(
            br#"{"message":"No such container: x"}"#,
            StatusCode::NOT_FOUND,
        ),
    };
    assert_eq!(e.to_string(), "api_error 404: No such container: x");
    assert_eq!(
        error_message(b"page not found\n", StatusCode::NOT_FOUND),
        "page not found"
    );
    assert_eq!(
        error_message(b"", StatusCode::INTERNAL_SERVER_ERROR),
        "Internal Server Error"
    );
}

#[test]
fn versions_and_paths() {
    assert_eq!(parse_api("1.41"), Some((1, 41)));
    assert_eq!(parse_api(" 1.9 "), Some((1, 9)));
    assert_eq!(parse_api("1"), None);
    assert_eq!(parse_api("one.two"), None);
    assert!((1, 41) < target_api());
    assert_eq!(encode("abc_DEF-1.2~"), "abc_DEF-1.2~");
    assert_eq!(encode("1700000000.5"), "1700000000.5");
    assert_eq!(encode("a b/c?d&e=f"), "a%20b%2Fc%3Fd%26e%3Df");
}
