//! The listeners against idle, slow and crowding clients, on the real exporter binary: a
//! flood of idle connections under a 1,024 open-file limit, slowloris heads, idle
//! keep-alive connections, and the cap on WebSocket sessions.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An exporter with these lines under `listen:` and no hosts.
fn exporter(tag: &str, listen: &str, rest: &str) -> Exporter {
    Exporter::start_with(
        tag,
        Launch {
            listen,
            ..Launch::default()
        },
        rest,
    )
}

/// One GET on a fresh connection, answer read to its end, all within `within`: the status
/// and how long it took.
fn timed_get(port: u16, path: &str, within: Duration) -> Result<(u16, Duration), String> {
    let start = Instant::now();
    let left = || {
        within
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1))
    };
    let mut s = TcpStream::connect_timeout(&addr(port), within)
        .map_err(|e| format!("connect: {e} after {:?}", start.elapsed()))?;
    s.set_write_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\n{}\r\n",
        auth_line(port)
    )
    .map_err(|e| format!("send: {e} after {:?}", start.elapsed()))?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        s.set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) => {
                return Err(format!(
                    "read: {e} after {:?} ({} bytes)",
                    start.elapsed(),
                    raw.len()
                ));
            }
        }
        if start.elapsed() > within {
            return Err(format!("not done within {within:?}"));
        }
    }
    let head = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {head:?}"))?;
    Ok((status, start.elapsed()))
}

/// Waits up to `within` for the server to close `s`, calling `tick` (say, to trickle a
/// byte) every 200 ms; Some(time since `from`) once closed.
fn closed_within(
    s: &mut TcpStream,
    from: Instant,
    within: Duration,
    mut tick: impl FnMut(&mut TcpStream) -> std::io::Result<()>,
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    while from.elapsed() < within {
        if tick(s).is_err() {
            return Some(from.elapsed());
        }
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return Some(from.elapsed()),
            Ok(_) => {} // an answer; the close follows
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(from.elapsed()), // reset
        }
    }
    None
}

/// Reads one HTTP/1.1 answer with a Content-Length off a kept-alive connection: its status.
fn read_answer(s: &mut TcpStream) -> u16 {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read the answer head");
        assert!(
            n > 0,
            "closed before an answer: {}",
            String::from_utf8_lossy(&raw)
        );
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).expect("read the answer body");
    head.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Raises this test process's own open-file limit: it holds thousands of sockets.
fn raise_own_file_limit(want: u64) {
    let l = dockstat_exporter::serve::raise_open_file_limit().expect("getrlimit");
    if l.soft < want {
        // Root may raise the hard limit too.
        let _ = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={want}:{want}"))
            .status();
    }
    let l = dockstat_exporter::serve::raise_open_file_limit().expect("getrlimit");
    assert!(
        l.soft >= want,
        "this test needs {want} open files, the limit is {l:?}"
    );
}

fn open_files_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn idle_connections_under_a_1024_file_limit_do_not_stop_scrapes() {
    const IDLE: usize = 1100;
    raise_own_file_limit(4 * IDLE as u64);
    let mut exp = Exporter::start_with(
        "flood",
        Launch {
            wrapper: &["prlimit", "--nofile=1024:1024", "--"],
            ..Launch::default()
        },
        "",
    );
    let pid = exp.pid().expect("running");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(nofile, ["1024", "1024"], "{limits}");

    // 1,100 idle connections on each listener, as many as the kernel takes: a listener
    // that stops accepting fills its backlog, and then connections time out.
    let mut idle = Vec::new();
    let mut refused = 0;
    let started = Instant::now();
    for port in [exp.port, exp.admin_port] {
        let mut failed_in_a_row = 0;
        for _ in 0..IDLE {
            match TcpStream::connect_timeout(&addr(port), Duration::from_secs(1)) {
                Ok(s) => {
                    idle.push(s);
                    failed_in_a_row = 0;
                }
                Err(_) => {
                    refused += 1;
                    failed_in_a_row += 1;
                    if failed_in_a_row == 5 {
                        break;
                    }
                }
            }
        }
    }
    // The flood has reached the exporter: it holds (at least) both listeners' share of its
    // files (2 x 384 under this limit).
    poll(
        "the exporter to take the idle connections",
        Duration::from_secs(15),
        || (open_files_of(pid) >= 700).then_some(()),
    );
    eprintln!(
        "{} idle connections open ({refused} not) in {:?}; the exporter holds {} files",
        idle.len(),
        started.elapsed(),
        open_files_of(pid)
    );

    for i in 0..5 {
        let scrape = timed_get(exp.port, "/metrics", Duration::from_secs(3));
        let admin = timed_get(exp.admin_port, "/api/v1/status", Duration::from_secs(3));
        eprintln!("round {i}: /metrics {scrape:?}, /api/v1/status {admin:?}");
        assert!(
            matches!(scrape, Ok((200, _))),
            "scrape {i} with {} idle connections: {scrape:?}\n{}",
            idle.len(),
            exp.log_text()
        );
        assert!(
            matches!(admin, Ok((200, _))),
            "admin call {i}: {admin:?}\n{}",
            exp.log_text()
        );
    }
    assert!(exp.is_running(), "{}", exp.log_text());
    let files = open_files_of(pid);
    assert!(files < 1024, "the exporter holds {files} files of 1024");
    let log = exp.log_text();
    let emfile = log.matches("Too many open files").count();
    assert!(
        emfile <= 1,
        "{emfile} lines of `Too many open files`:\n{log}"
    );
    assert!(log.contains("open-file limit"), "{log}");
    drop(idle);
}

#[test]
fn slowloris_heads_and_silent_clients_are_cut_off_on_both_listeners() {
    let exp = exporter(
        "slowloris",
        "  header_timeout: 2s\n  idle_timeout: 30s\n",
        "",
    );
    let within = Duration::from_secs(6);
    let clients: Vec<_> = [exp.port, exp.admin_port]
        .into_iter()
        .flat_map(|port| {
            [true, false].map(|trickle| {
                std::thread::spawn(move || {
                    let start = Instant::now();
                    let mut s = TcpStream::connect(addr(port)).expect("connect");
                    let what = if trickle {
                        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                            .expect("send");
                        "a head trickled a byte every 200 ms"
                    } else {
                        "a connection that sends nothing"
                    };
                    let closed = closed_within(&mut s, start, within, |s| {
                        if trickle { s.write_all(b"a") } else { Ok(()) }
                    });
                    (port, what, closed)
                })
            })
        })
        .collect();
    for c in clients {
        let (port, what, closed) = c.join().expect("client thread");
        eprintln!("port {port}, {what}: closed after {closed:?}");
        let closed =
            closed.unwrap_or_else(|| panic!("port {port}: {what} still open after {within:?}"));
        assert!(
            closed >= Duration::from_millis(1500),
            "port {port}: {what} closed after {closed:?}, before header_timeout"
        );
    }
}

#[test]
fn idle_keep_alive_connections_close_after_the_idle_timeout() {
    let exp = exporter(
        "keepalive",
        "  header_timeout: 2s\n  idle_timeout: 4s\n",
        "",
    );
    let clients: Vec<_> = [(exp.port, "/healthz"), (exp.admin_port, "/api/v1/status")]
        .into_iter()
        .map(|(port, path)| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr(port)).expect("connect");
                let request = format!(
                    "GET {path} HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
                    auth_line(port)
                );
                s.write_all(request.as_bytes()).expect("send");
                assert_eq!(read_answer(&mut s), 200, "{port}{path}");
                // Idle past the header timeout: a kept-alive connection is still served.
                std::thread::sleep(Duration::from_millis(2500));
                s.write_all(request.as_bytes()).expect("send again");
                assert_eq!(read_answer(&mut s), 200, "{port}{path} kept alive");
                let idle = Instant::now();
                let closed = closed_within(&mut s, idle, Duration::from_secs(10), |_| Ok(()));
                (port, closed)
            })
        })
        .collect();
    for c in clients {
        let (port, closed) = c.join().expect("client thread");
        eprintln!("port {port}: kept-alive connection closed after {closed:?} idle");
        let closed = closed.unwrap_or_else(|| panic!("port {port}: still open after 10 s idle"));
        assert!(
            closed >= Duration::from_millis(3500) && closed <= Duration::from_secs(8),
            "port {port}: closed after {closed:?} idle, idle_timeout is 4s"
        );
    }
}

/// A WebSocket handshake by hand: the status, the body when refused, and the socket.
fn ws_handshake(port: u16) -> (u16, Option<Value>, TcpStream) {
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{}\r\n",
        auth_line(port)
    )
    .expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read the handshake answer");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if status == 101 {
        return (status, None, s);
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).expect("read the body");
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, Some(body), s)
}

#[test]
fn websocket_sessions_are_capped_before_the_upgrade() {
    let exp = exporter("wscap", "", "streams:\n  max_subscribers: 3\n");
    let port = exp.admin_port;
    let mut open: Vec<_> = (0..3)
        .map(|i| {
            let (ws, resp) = tungstenite::client(
                ws_request(port),
                TcpStream::connect(addr(port)).expect("connect"),
            )
            .unwrap_or_else(|e| panic!("session {i}: {e}"));
            assert_eq!(resp.status().as_u16(), 101);
            ws
        })
        .collect();

    let (status, body, _) = ws_handshake(port);
    assert_eq!(status, 503, "a 4th session with 3 open: {body:?}");
    let body = body.unwrap_or_default();
    assert_eq!(body["error"]["code"], "too_many_subscribers", "{body}");

    // One closes: its place is free again (once the server has seen it go).
    let mut first = open.remove(0);
    first
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    first.close(None).expect("close");
    while first.read().is_ok() {}
    let (status, _, _again) = poll(
        "a session place after one closed",
        Duration::from_secs(10),
        || {
            let (status, body, s) = ws_handshake(port);
            (status == 101).then_some((status, body, s))
        },
    );
    assert_eq!(status, 101);
    let (status, _, _) = ws_handshake(port);
    assert_eq!(status, 503, "3 open again");
}
