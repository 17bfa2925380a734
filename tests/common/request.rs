//! The tests' one HTTP client: HTTP/1.0 requests to 127.0.0.1 written by hand, so that a
//! test sends exactly the bytes it means (no `Content-Type`, a wrong one, a body over the
//! limit, junk), and reads the answer whole ([`Request::send`]) or as it streams
//! ([`Request::open`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// A request being built; nothing is sent until [`Request::send`] or [`Request::open`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    path: String,
    /// Header lines after `Host`, each ending in CRLF.
    headers: String,
    body: Option<Vec<u8>>,
    timeout: Duration,
    /// Sent without the port's generated admin token even when the request has no
    /// `Authorization` of its own.
    anonymous: bool,
}

/// Admin tokens the exporters generated (`admin.token` of their data directory), by the
/// admin port they serve: a request to that port without `Authorization` carries it, as
/// an operator's would. [`Request::anonymous`] leaves it out.
static GENERATED: std::sync::Mutex<Vec<(u16, String)>> = std::sync::Mutex::new(Vec::new());

/// Notes the generated admin token of the exporter whose admin API is on `port`.
pub fn set_generated_token(port: u16, token: &str) {
    let mut g = GENERATED.lock().unwrap_or_else(|p| p.into_inner());
    g.retain(|(p, _)| *p != port);
    g.push((port, token.to_string()));
}

/// `Authorization: Bearer <token>\r\n` with the generated admin token of `port`, or
/// nothing: for requests a test writes by hand.
pub fn auth_line(port: u16) -> String {
    generated_token(port)
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default()
}

/// A WebSocket handshake request to `/api/v1/ws` on `port` with its generated admin
/// token, for tungstenite.
pub fn ws_request(port: u16) -> tungstenite::handshake::client::Request {
    use tungstenite::client::IntoClientRequest;
    let mut r = format!("ws://127.0.0.1:{port}/api/v1/ws")
        .into_client_request()
        .expect("ws request");
    if let Some(t) = generated_token(port)
        && let Ok(v) = format!("Bearer {t}").parse()
    {
        r.headers_mut().insert("Authorization", v);
    }
    r
}

/// The generated admin token of the exporter on `port`, if it made one.
pub fn generated_token(port: u16) -> Option<String> {
    let g = GENERATED.lock().unwrap_or_else(|p| p.into_inner());
    g.iter().find(|(p, _)| *p == port).map(|(_, t)| t.clone())
}

impl Request {
    /// `method path`, with `Host: localhost` and a 30 s read timeout.
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            headers: String::new(),
            body: None,
            timeout: Duration::from_secs(30),
            anonymous: false,
        }
    }

    /// Never adds the port's generated admin token (see [`set_generated_token`]).
    pub fn anonymous(mut self) -> Request {
        self.anonymous = true;
        self
    }

    /// The request as sent to `port`: with the port's generated admin token unless it has
    /// an `Authorization` of its own or is [`Request::anonymous`].
    fn for_port(&self, port: u16) -> Vec<u8> {
        let has_auth = self
            .headers
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
        match generated_token(port) {
            Some(t) if !self.anonymous && !has_auth => self
                .clone()
                .header("Authorization", &format!("Bearer {t}"))
                .bytes(),
            _ => self.bytes(),
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push_str(&format!("{name}: {value}\r\n"));
        self
    }

    /// Adds `Authorization: Bearer <token>` when there is a token.
    pub fn bearer(self, token: Option<&str>) -> Request {
        match token {
            Some(t) => self.header("Authorization", &format!("Bearer {t}")),
            None => self,
        }
    }

    /// Adds raw header lines, each ending in CRLF (a test's own, possibly malformed).
    pub fn raw_headers(mut self, lines: &str) -> Request {
        self.headers.push_str(lines);
        self
    }

    /// Sends `body` with its `Content-Length` (and no `Content-Type` unless added).
    pub fn body(mut self, body: &[u8]) -> Request {
        self.headers
            .push_str(&format!("Content-Length: {}\r\n", body.len()));
        self.body = Some(body.to_vec());
        self
    }

    /// Sends `body` as JSON.
    pub fn json(self, body: &str) -> Request {
        self.header("Content-Type", "application/json")
            .body(body.as_bytes())
    }

    /// How long reading the answer may wait for more.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// The request as sent.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.0\r\nHost: localhost\r\n{}\r\n",
            self.method, self.path, self.headers
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_deref().unwrap_or_default());
        out
    }

    /// Sends it and reads the answer until the server closes.
    pub fn send(&self, port: u16) -> std::io::Result<Resp> {
        send_bytes(port, &self.for_port(port), self.timeout)
    }

    /// Sends it and reads the answer's head; the body is then read as it comes.
    pub fn open(&self, port: u16) -> std::io::Result<Opened> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.write_all(&self.for_port(port))?;
        stream.flush()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before the response head: {}",
                        String::from_utf8_lossy(&buf)
                    ),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        Ok(Opened {
            stream,
            status: status_of(&head),
            head,
            rest: buf[end + 4..].to_vec(),
        })
    }
}

/// Sends raw bytes and reads the answer until the server closes. A write that fails
/// because the server answered early (413) and closed is not an error: the answer is read.
pub fn send_bytes(port: u16, bytes: &[u8], timeout: Duration) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let written = s.write_all(bytes).and_then(|()| s.flush());
    // No half-close: hyper drops a connection whose read side ends before it answered.
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        // A reset after the answer arrived (the server did not read our whole body).
        Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(written.err().unwrap_or(e)),
    }
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Ok(Resp {
        status: status_of(head),
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// The status of a response head (0 when there is none).
pub fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A complete answer.
#[derive(Debug)]
pub struct Resp {
    /// HTTP status (0 when the answer was not HTTP).
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    /// The body as text.
    pub body: String,
}

impl Resp {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as JSON; panics with the answer when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}):\n{}\n\n{}", self.head, self.body))
    }
}

/// An answer whose head is read and whose body streams.
pub struct Opened {
    /// The connection, to read the rest of the body from.
    pub stream: TcpStream,
    /// HTTP status.
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    /// Body bytes that came with the head.
    pub rest: Vec<u8>,
}
