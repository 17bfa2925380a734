//! The exchange against a scripted server on a real unix socket: every answer framing
//! Docker and proxies use, cut at every place, bounds, error answers and connection reuse.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::*;

/// What the server does after writing one answer.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// Waits for the next request on the same connection.
    Stay,
    /// Closes the connection (as a daemon closing an idle connection does).
    Close,
}

/// One scripted answer: written in these pieces, each flushed on its own.
#[derive(Clone)]
struct Script {
    pieces: Vec<Vec<u8>>,
    then: Then,
}

/// A server answering the n-th request it reads (on any connection) with `scripts[n]`.
struct Server {
    dir: std::path::PathBuf,
    socket: std::path::PathBuf,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SERVERS: AtomicUsize = AtomicUsize::new(0);

impl Server {
    fn start(scripts: Vec<Script>) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "dockstat-exchange-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("d.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let scripts = Arc::new(scripts);
        let (a, r) = (accepted.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let (r, next, scripts) = (r.clone(), next.clone(), scripts.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // One request head.
                        let head = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head: Vec<u8> = buf.drain(..i + 4).collect();
                                break String::from_utf8_lossy(&head).into_owned();
                            }
                            let mut chunk = [0u8; 1024];
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        r.lock().unwrap_or_else(|p| p.into_inner()).push(head);
                        let Some(script) = scripts.get(next.fetch_add(1, Ordering::SeqCst)) else {
                            return;
                        };
                        for piece in &script.pieces {
                            if conn.write_all(piece).await.is_err() {
                                return;
                            }
                            let _ = conn.flush().await;
                            tokio::task::yield_now().await;
                        }
                        if script.then == Then::Close {
                            return;
                        }
                    }
                });
            }
        });
        Server {
            dir,
            socket,
            accepted,
            requests,
            task,
        }
    }

    fn exchange(&self) -> Exchange {
        Exchange::new(
            Dial::Unix(Arc::from(self.socket.as_path())),
            "api.moby.localhost",
            "test/1",
            Duration::from_secs(60),
        )
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// `answer` in one piece, then `then`.
fn whole(answer: &[u8], then: Then) -> Script {
    Script {
        pieces: vec![answer.to_vec()],
        then,
    }
}

/// `answer` cut into pieces of `size` bytes.
fn cut_into(answer: &[u8], size: usize, then: Then) -> Script {
    Script {
        pieces: answer.chunks(size).map(<[u8]>::to_vec).collect(),
        then,
    }
}

/// An HTTP/1.1 answer with `status` (and any headers after it) and `body` by length.
fn with_length(status: &str, body: &[u8]) -> Vec<u8> {
    let mut a = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    a.extend_from_slice(body);
    a
}

const LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"read\":\"x\"}\n";

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{\"rea\r\n8\r\nd\":\"x\"}\n\r\n0\r\nX-Trailer: y\r\n\r\n";

const BODY: &[u8] = b"{\"read\":\"x\"}\n";

#[tokio::test]
async fn answers_by_length_and_by_chunks_are_read_whole_at_any_cut_on_one_connection() {
    let mut scripts = Vec::new();
    for answer in [LENGTH, CHUNKED] {
        for size in [1, 2, 3, 7, 64, 4096] {
            scripts.push(cut_into(answer, size, Then::Stay));
        }
    }
    let n = scripts.len();
    let server = Server::start(scripts);
    let ex = server.exchange();
    for i in 0..n {
        let body = ex.get("/v1.41/containers/a/stats", 1024).await;
        assert_eq!(body.as_deref().ok(), Some(BODY), "answer {i}: {body:?}");
    }
    assert_eq!(
        server.accepted(),
        1,
        "every answer ended cleanly: one connection"
    );
    let requests = server.requests.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(
        requests[0],
        "GET /v1.41/containers/a/stats HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: test/1\r\n\r\n"
    );
}

#[tokio::test]
async fn a_connection_the_daemon_closed_meanwhile_is_replaced_without_failing_the_call() {
    let server = Server::start(vec![
        whole(LENGTH, Then::Close),
        whole(CHUNKED, Then::Close),
        whole(LENGTH, Then::Stay),
    ]);
    let ex = server.exchange();
    for i in 0..3 {
        let body = ex.get("/v1.41/_ping", 1024).await;
        assert_eq!(body.as_deref().ok(), Some(BODY), "call {i}: {body:?}");
        assert_eq!(idle(&ex), 1, "call {i}: its connection kept");
    }
    // Each closed connection was kept, found closed by the next call, and replaced.
    assert_eq!(server.accepted(), 3);
}

/// Kept connections.
fn idle(ex: &Exchange) -> usize {
    ex.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// A connection whose reads return exactly the given pieces, one per read, then the end;
/// what is written to it is dropped. Unlike a socket, it never joins two pieces.
struct Pieces(std::collections::VecDeque<Vec<u8>>);

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if let Some(mut piece) = self.0.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                self.0.push_front(piece.split_off(n));
            }
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pieces {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// One exchange on a [`Pieces`] connection of `answer` cut every `size` bytes: the body or
/// the error, and whether the connection was kept.
async fn on_pieces(answer: &[u8], size: usize, limit: usize) -> (Result<Bytes, DockerError>, bool) {
    let ex = Exchange::new(
        Dial::Unix(Arc::from(Path::new("/nonexistent"))),
        "h",
        "t",
        Duration::from_secs(60),
    );
    let pieces = Pieces(answer.chunks(size).map(<[u8]>::to_vec).collect());
    let r = match ex
        .exchange(Box::new(pieces), b"GET / HTTP/1.1\r\n\r\n", "/p", limit)
        .await
    {
        Ok(body) => Ok(body),
        Err(Failure::Call(e)) => Err(e),
        Err(Failure::Closed(e)) => Err(DockerError::new(ErrorKind::Other, format!("closed: {e}"))),
    };
    let kept = idle(&ex) == 1;
    (r, kept)
}

#[tokio::test]
async fn every_cut_of_every_framing_reads_the_same_body() {
    let mut long_trailers = CHUNKED[..CHUNKED.len() - 2].to_vec();
    long_trailers.extend_from_slice(b"X-Second: zzzzzzzzzzzzzzzzzzzz\r\n\r\n");
    let mut informational = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    informational.extend_from_slice(CHUNKED);
    for answer in [LENGTH, CHUNKED, &long_trailers, &informational] {
        for size in 1..=answer.len() {
            let (body, kept) = on_pieces(answer, size, 1024).await;
            let text = String::from_utf8_lossy(answer);
            assert_eq!(body.as_deref().ok(), Some(BODY), "cut every {size}: {text}");
            assert!(kept, "cut every {size}: {text}");
        }
    }
}

#[tokio::test]
async fn only_answers_that_end_exactly_keep_their_connection() {
    let mut extra = LENGTH.to_vec();
    extra.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    let mut chunked_extra = CHUNKED.to_vec();
    chunked_extra.extend_from_slice(b"garbage");
    for (answer, body, keep) in [
        (&extra[..], BODY, false),
        (&chunked_extra[..], BODY, false),
        (
            &b"HTTP/1.1 204 No Content\r\nApi-Version: 1.41\r\n\r\n"[..],
            &b""[..],
            true,
        ),
        (
            &b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n"[..],
            &b""[..],
            false,
        ),
    ] {
        // Whole, so that the bytes after the answer arrive with it.
        let (got, kept) = on_pieces(answer, answer.len(), 1024).await;
        let text = String::from_utf8_lossy(answer);
        assert_eq!(got.as_deref().ok(), Some(body), "{text}");
        assert_eq!(kept, keep, "{text}");
    }
}

#[tokio::test]
async fn oversized_heads_and_framing_lines_fail_the_call() {
    let mut big_head = b"HTTP/1.1 200 OK\r\nX-Filler: ".to_vec();
    big_head.extend(std::iter::repeat_n(b'a', HEAD_LIMIT + 10));
    let mut long_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5".to_vec();
    long_size.extend(std::iter::repeat_n(b' ', 2000));
    let mut long_trailer =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ".to_vec();
    long_trailer.extend(std::iter::repeat_n(b'a', HEAD_LIMIT + 10));
    for (answer, kind, says) in [
        (&big_head, ErrorKind::Connection, "head larger than"),
        (
            &long_size,
            ErrorKind::Connection,
            "chunk size line too long",
        ),
        (&long_trailer, ErrorKind::Connection, "trailers too long"),
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: +13\r\n\r\n".to_vec(),
            ErrorKind::Connection,
            "Content-Length",
        ),
    ] {
        let (got, kept) = on_pieces(answer, 4096, 1024).await;
        let e = got.expect_err(says);
        assert_eq!(e.kind, kind, "{says}: {e}");
        assert!(e.message.contains(says), "{says}: {e}");
        assert!(!kept, "{says}");
    }
}

#[tokio::test]
async fn a_new_connection_closed_before_an_answer_is_a_connection_error() {
    let server = Server::start(vec![Script {
        pieces: vec![],
        then: Then::Close,
    }]);
    let e = server
        .exchange()
        .get("/v1.41/_ping", 64)
        .await
        .expect_err("closed");
    assert_eq!(e.kind, ErrorKind::Connection, "{e}");
    assert!(e.message.contains("/v1.41/_ping: no answer"), "{e}");
}

#[tokio::test]
async fn a_call_cut_off_by_its_deadline_leaves_no_connection_behind() {
    let server = Server::start(vec![
        // Accepted, read, never answered.
        Script {
            pieces: vec![],
            then: Then::Stay,
        },
        whole(LENGTH, Then::Stay),
    ]);
    let ex = server.exchange();
    let cut = tokio::time::timeout(Duration::from_millis(200), ex.get("/hang", 1024)).await;
    assert!(cut.is_err(), "the first call has no answer");
    assert_eq!(idle(&ex), 0);
    assert_eq!(ex.get("/x", 1024).await.as_deref().ok(), Some(BODY));
    assert_eq!(
        server.accepted(),
        2,
        "the second call did not reuse the first's connection"
    );
}

#[tokio::test]
async fn connection_close_and_answers_ended_by_closing_are_not_kept() {
    let server = Server::start(vec![
        whole(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            Then::Stay,
        ),
        whole(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", Then::Close),
        whole(
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
            Then::Stay,
        ),
        whole(LENGTH, Then::Stay),
    ]);
    let ex = server.exchange();
    assert_eq!(ex.get("/a", 64).await.as_deref().ok(), Some(&b"ok"[..]));
    assert_eq!(
        ex.get("/b", 64).await.as_deref().ok(),
        Some(&b"until the end"[..])
    );
    assert_eq!(ex.get("/c", 64).await.as_deref().ok(), Some(&b"ok"[..]));
    assert_eq!(ex.get("/d", 64).await.as_deref().ok(), Some(BODY));
    assert_eq!(server.accepted(), 4, "none of the first three was reused");
}

#[tokio::test]
async fn answers_over_the_bound_are_too_large_however_they_are_framed() {
    let big = vec![b'a'; 100];
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..10 {
        chunked.extend_from_slice(b"a\r\n");
        chunked.extend_from_slice(&big[..10]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut closing = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    closing.extend_from_slice(&big);
    let server = Server::start(vec![
        // Declared: fails before the body is read.
        whole(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
            Then::Stay,
        ),
        whole(&chunked, Then::Stay),
        whole(&closing, Then::Close),
    ]);
    let ex = server.exchange();
    for path in ["/length", "/chunked", "/closing"] {
        let e = ex.get(path, 64).await.expect_err("too large");
        assert_eq!(e.kind, ErrorKind::TooLarge, "{path}: {e}");
        assert!(e.message.contains(path), "{path}: {e}");
    }
    // Exactly the bound is fine.
    let server = Server::start(vec![whole(&chunked, Then::Stay)]);
    let body = server.exchange().get("/chunked", 100).await;
    assert_eq!(body.map(|b| b.len()).ok(), Some(100));
}

#[tokio::test]
async fn error_answers_carry_dockers_status_and_message_and_keep_the_connection() {
    let server = Server::start(vec![
        whole(
            &with_length(
                "404 Not Found\r\nApi-Version: 1.41",
                br#"{"message":"No such container: x"}"#,
            ),
            Then::Stay,
        ),
        whole(
            b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nContent-Length: 11\r\n\r\nbad gateway",
            Then::Stay,
        ),
        whole(LENGTH, Then::Stay),
    ]);
    let ex = server.exchange();
    let e = ex
        .get("/v1.41/containers/x/json", 1024)
        .await
        .expect_err("404");
    assert_eq!((e.kind, e.status), (ErrorKind::ApiError, Some(404)));
    assert_eq!(e.message, "No such container: x");
    let e = ex.get("/v1.41/_ping", 1024).await.expect_err("502");
    assert_eq!((e.kind, e.status), (ErrorKind::ApiError, Some(502)));
    assert!(
        e.message.contains("not a Docker Engine API") && e.message.contains("nginx"),
        "{}",
        e.message
    );
    assert_eq!(ex.get("/x", 1024).await.as_deref().ok(), Some(BODY));
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let mut answer = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    answer.extend_from_slice(LENGTH);
    let server = Server::start(vec![cut_into(&answer, 5, Then::Stay)]);
    let body = server.exchange().get("/x", 1024).await;
    assert_eq!(body.as_deref().ok(), Some(BODY));
}

#[tokio::test]
async fn cut_or_malformed_answers_fail_as_connection_errors_and_are_not_kept() {
    let server = Server::start(vec![
        whole(
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"cut",
            Then::Close,
        ),
        whole(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
            Then::Close,
        ),
        whole(b"HTTP/1.1 200 OK\r\nContent-Le", Then::Close),
        whole(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", Then::Stay),
        whole(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            Then::Stay,
        ),
        whole(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
            Then::Stay,
        ),
    ]);
    let ex = server.exchange();
    for (path, says) in [
        ("/length", "closed in the answer's body"),
        ("/chunks", "closed in the answer's body"),
        ("/head", "closed in the answer's head"),
        ("/ssh", "malformed answer"),
        ("/size", "bad chunk size"),
        ("/crlf", "chunk not followed by CRLF"),
    ] {
        let e = ex.get(path, 1024).await.expect_err(path);
        assert_eq!(e.kind, ErrorKind::Connection, "{path}: {e}");
        assert!(e.message.contains(says), "{path}: {e}");
    }
    assert_eq!(server.accepted(), 6, "no failed connection was reused");
}

#[tokio::test]
async fn connections_unused_past_their_time_are_closed_not_reused() {
    let server = Server::start(vec![whole(LENGTH, Then::Stay), whole(LENGTH, Then::Stay)]);
    let ex = Exchange::new(
        Dial::Unix(Arc::from(server.socket.as_path())),
        "h",
        "t",
        Duration::ZERO,
    );
    for _ in 0..2 {
        assert_eq!(ex.get("/x", 1024).await.as_deref().ok(), Some(BODY));
    }
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_missing_socket_is_socket_not_found() {
    let ex = Exchange::new(
        Dial::Unix(Arc::from(Path::new("/nonexistent/dockstat/d.sock"))),
        "h",
        "t",
        Duration::from_secs(1),
    );
    let e = ex.get("/_ping", 64).await.expect_err("no socket");
    assert_eq!(e.kind, ErrorKind::SocketNotFound, "{e}");
}
