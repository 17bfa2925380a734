//! A TCP forwarder in front of a real daemon, for faults the daemon itself cannot be made to
//! show on demand: a cut link (connections refused and reset) and a hang (connections stay
//! open and nothing comes back).

#![allow(dead_code)] // each test binary uses a different part of it

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP forwarder to `upstream` that can be cut (listener closed, every forwarded
/// connection shut down) and restored on the same port, or frozen (everything accepted and
/// held, nothing forwarded either way) and thawed.
pub struct Proxy {
    pub port: u16,
    shared: Arc<ProxyShared>,
}

struct ProxyShared {
    cut: AtomicBool,
    frozen: AtomicBool,
    listening: AtomicBool,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
    /// Requests of a container inspect (`GET /…/containers/{id}/json`) are held this long
    /// before they are forwarded: a daemon slow to inspect, fast at everything else.
    slow_inspect: Mutex<Option<Duration>>,
    /// Request lines (`GET /v1.41/containers/…/stats?… HTTP/1.1`) forwarded so far.
    requests: Mutex<Vec<String>>,
    /// Client connections forwarded so far.
    accepted: AtomicUsize,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(ProxyShared {
            cut: AtomicBool::new(false),
            frozen: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            slow_inspect: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
        });
        let (sh, upstream) = (shared.clone(), upstream.to_string());
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            while !sh.stop.load(Ordering::SeqCst) {
                if sh.cut.load(Ordering::SeqCst) {
                    listener = None;
                    sh.listening.store(false, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                if listener.is_none() {
                    // Restored: listen on the same port again.
                    match TcpListener::bind(("127.0.0.1", port)) {
                        Ok(l) => listener = Some(l),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    }
                }
                let Some(l) = &listener else { continue };
                l.set_nonblocking(true).expect("nonblocking");
                sh.listening.store(true, Ordering::SeqCst);
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).expect("blocking");
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        let mut conns = sh.conns.lock().expect("lock");
                        if sh.cut.load(Ordering::SeqCst) {
                            continue; // dropped: closed
                        }
                        conns.push(client.try_clone().expect("clone"));
                        conns.push(server.try_clone().expect("clone"));
                        drop(conns);
                        sh.accepted.fetch_add(1, Ordering::SeqCst);
                        pump(
                            client.try_clone().expect("clone"),
                            server.try_clone().expect("clone"),
                            sh.clone(),
                            true,
                        );
                        pump(server, client, sh.clone(), false);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let p = Proxy { port, shared };
        p.wait_listening(true);
        p
    }

    fn wait_listening(&self, want: bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.shared.listening.load(Ordering::SeqCst) != want {
            assert!(Instant::now() < deadline, "proxy listening != {want}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Closes the listener (connections are refused) and every forwarded connection.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.wait_listening(false);
        let mut conns = self.shared.conns.lock().expect("lock");
        for c in conns.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
        self.wait_listening(true);
    }

    /// From now on nothing is forwarded, on open connections or new ones, which are still
    /// accepted: a daemon that hangs.
    pub fn freeze(&self) {
        self.shared.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again what was held and what comes next.
    pub fn thaw(&self) {
        self.shared.frozen.store(false, Ordering::SeqCst);
    }

    /// The request lines forwarded so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// How many client connections were forwarded so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Holds every container inspect request for `delay` (None: no more).
    pub fn slow_inspects(&self, delay: Option<Duration>) {
        *self.shared.slow_inspect.lock().expect("lock") = delay;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.thaw();
        self.cut();
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// Keeps the request lines a chunk from a client holds (a request head arrives whole in
/// one read in practice: they are a few hundred bytes).
fn record_requests(sh: &ProxyShared, chunk: &[u8]) {
    let text = String::from_utf8_lossy(chunk);
    let lines = text.split("\r\n").filter(|l| {
        ["GET ", "POST ", "HEAD ", "PUT ", "DELETE "]
            .iter()
            .any(|m| l.starts_with(m))
            && l.ends_with("HTTP/1.1")
    });
    let mut requests = sh.requests.lock().expect("lock");
    requests.extend(lines.map(str::to_string));
}

/// Whether a chunk read from a client starts a container inspect request.
fn is_inspect(chunk: &[u8]) -> bool {
    let line = chunk.split(|b| *b == b'\r').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let Some(path) = line.strip_prefix("GET ") else {
        return false;
    };
    let path = path.split(['?', ' ']).next().unwrap_or("");
    path.contains("/containers/") && path.ends_with("/json") && !path.ends_with("/containers/json")
}

/// Copies `from` to `to` on a thread, holding each read while frozen (and each inspect
/// request while inspects are slow, when `requests` is the client's side); shuts `to` down
/// for writing at the end.
fn pump(mut from: TcpStream, mut to: TcpStream, sh: Arc<ProxyShared>, requests: bool) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    while sh.frozen.load(Ordering::SeqCst) && !sh.stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    if requests {
                        record_requests(&sh, &buf[..n]);
                    }
                    let slow = *sh.slow_inspect.lock().expect("lock");
                    if let (true, Some(delay)) = (requests, slow)
                        && is_inspect(&buf[..n])
                    {
                        std::thread::sleep(delay);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
