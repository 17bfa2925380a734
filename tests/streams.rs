//! Live channels against the real daemon A: Server-Sent Events per channel with filters and
//! `Last-Event-ID` resume, the multi-channel WebSocket, and a stalled subscriber that only
//! ever hurts itself.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::*;

fn config_a(streams: &str) -> String {
    format!(
        "{streams}monitoring:\n  interval: 1s\nclients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n",
        env().a_socket
    )
}

fn exporter_a(tag: &str, streams: &str) -> Exporter {
    let exp = Exporter::start(tag, &config_a(streams));
    exp.wait_for(Duration::from_secs(15), "host a up", |s| {
        s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
    });
    exp
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    id: Option<u64>,
    data: Value,
}

impl SseEvent {
    fn str(&self, key: &str) -> &str {
        self.data[key].as_str().unwrap_or("")
    }
    fn action(&self) -> &str {
        self.str("action")
    }
    fn actor(&self) -> &str {
        self.str("actor_id")
    }
    fn attr(&self, key: &str) -> &str {
        self.data["attributes"][key].as_str().unwrap_or("")
    }
}

/// A text/event-stream read incrementally, over the harness's HTTP client.
struct Sse {
    stream: TcpStream,
    buf: Vec<u8>,
    /// How much of `buf` holds no event end.
    scanned: usize,
    status: u16,
    head: String,
    /// Bytes of body read so far.
    bytes: u64,
}

impl Sse {
    fn open(port: u16, path: &str, headers: &str) -> Sse {
        let opened = Request::get(path)
            .header("Accept", "text/event-stream")
            .raw_headers(headers)
            .timeout(Duration::from_secs(10))
            .open(port)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Sse {
            stream: opened.stream,
            bytes: opened.rest.len() as u64,
            buf: opened.rest,
            scanned: 0,
            status: opened.status,
            head: opened.head,
        }
    }

    /// Opens and checks the answer is a stream.
    fn subscribe(port: u16, path: &str, headers: &str) -> Sse {
        let s = Sse::open(port, path, headers);
        assert_eq!(s.status, 200, "GET {path}: {}", s.head);
        assert!(
            s.head.to_ascii_lowercase().contains("text/event-stream"),
            "{}",
            s.head
        );
        s
    }

    /// The rest of a non-stream answer.
    fn body(mut self) -> String {
        let mut rest = String::new();
        let _ = self.stream.read_to_string(&mut rest);
        format!("{}{rest}", String::from_utf8_lossy(&self.buf))
    }

    /// One complete event from the buffer: (event, id, data).
    fn parse_raw(&mut self) -> Option<(String, Option<u64>, String)> {
        loop {
            // Only look where a new "\n\n" can be: events can be large.
            let from = self.scanned.saturating_sub(1);
            let Some(at) = find(&self.buf[from..], b"\n\n") else {
                self.scanned = self.buf.len();
                return None;
            };
            let end = from + at;
            self.scanned = 0;
            let block = String::from_utf8_lossy(&self.buf[..end]).to_string();
            self.buf.drain(..end + 2);
            let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse().expect("numeric id"));
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if data.is_empty() {
                continue; // keep-alive comment
            }
            return Some((event, id, data));
        }
    }

    /// The next event within `timeout`, its data unparsed; None on timeout or end of stream.
    fn next_raw(&mut self, timeout: Duration) -> Option<(String, Option<u64>, String)> {
        let deadline = Instant::now() + timeout;
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            if let Some(e) = self.parse_raw() {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => {
                    self.bytes += n as u64;
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read stream: {e}"),
            }
        }
    }

    /// The next event within `timeout`; None on timeout or end of stream.
    fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let (event, id, data) = self.next_raw(timeout)?;
        let data = serde_json::from_str(&data).expect("data is JSON");
        Some(SseEvent { event, id, data })
    }

    /// Reads until `done` holds for what was read; panics with it all after `timeout`.
    fn until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&[SseEvent]) -> bool,
    ) -> Vec<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(e) => got.push(e),
                None => panic!("{what}: not within {timeout:?}; got {got:#?}"),
            }
        }
        got
    }

    /// Whatever arrives within `quiet`.
    fn drain(&mut self, quiet: Duration) -> Vec<SseEvent> {
        let mut got = Vec::new();
        while let Some(e) = self.next(quiet) {
            got.push(e);
        }
        got
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn has(events: &[SseEvent], actor: &str, action: &str) -> bool {
    events
        .iter()
        .any(|e| e.actor() == actor && e.action() == action)
}

fn actions_of<'a>(events: &'a [SseEvent], actor: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e.actor() == actor)
        .map(SseEvent::action)
        .collect()
}

fn ids(events: &[SseEvent]) -> Vec<u64> {
    events.iter().map(|e| e.id.expect("message id")).collect()
}

fn assert_contiguous(ids: &[u64], from: u64, what: &str) {
    let want: Vec<u64> = (from..from + ids.len() as u64).collect();
    assert_eq!(
        ids,
        want.as_slice(),
        "{what}: ids not contiguous from {from}"
    );
}

/// `a` ⊆ `b` in order.
fn in_order(seq: &[&str], wanted: &[&str]) -> bool {
    let mut it = seq.iter();
    wanted.iter().all(|w| it.any(|s| s == w))
}

#[test]
fn sse_channels_carry_their_events_in_order_and_filter() {
    let exp = exporter_a("sse", "");
    let a = Docker::a();
    let port = exp.admin_port;
    let name = unique("sse");
    let vol = unique("vol");
    let net = unique("net");
    let tag = format!("dockstat-test/{}:x", unique("tag"));

    let mut mine = Sse::subscribe(
        port,
        &format!("/api/v1/streams/container_events?container={name}"),
        "",
    );
    let mut starts = Sse::subscribe(port, "/api/v1/streams/container_events?action=start", "");
    let mut images = Sse::subscribe(port, "/api/v1/streams/image_events", "");
    let mut networks = Sse::subscribe(port, "/api/v1/streams/network_events", "");
    let mut volumes = Sse::subscribe(port, "/api/v1/streams/volume_events", "");

    let image = env().image;
    let id = a.run(&[
        "create",
        "--name",
        &name,
        "--label",
        "dockstat.test=1",
        &image,
        "sleep",
        "600",
    ]);
    let c = Container {
        docker: a.clone(),
        name: name.clone(),
        id: id.clone(),
    };
    a.run(&["start", &id]);
    a.run(&["stop", "-t", "1", &id]);
    a.run(&["rm", &id]);
    a.run(&["volume", "create", &vol]);
    a.run(&["volume", "rm", &vol]);
    let net_id = a.run(&["network", "create", &net]);
    a.run(&["network", "rm", &net]);
    let image_id = a.run(&["image", "inspect", "-f", "{{.Id}}", &image]);
    a.run(&["tag", &image, &tag]);
    a.run(&["rmi", &tag]);
    drop(c);

    let t = Duration::from_secs(15);
    let got = mine.until(t, "create..destroy of the container", |g| {
        has(g, &id, "destroy")
    });
    let seq = actions_of(&got, &id);
    eprintln!("container {name}: {seq:?}");
    assert!(
        in_order(&seq, &["create", "start", "die", "destroy"]),
        "{seq:?}"
    );
    for e in &got {
        assert_eq!(e.event, "message");
        assert_eq!(e.actor(), id, "the filter lets only {name} through: {e:?}");
        assert_eq!(e.attr("name"), name);
        assert_eq!(
            (e.str("channel"), e.str("kind"), e.str("type")),
            ("container_events", "event", "container")
        );
        assert_eq!((e.str("host"), e.str("client")), ("a", "lab"));
        assert!(e.data["time"].as_f64().is_some_and(|t| t > 1e9), "{e:?}");
    }
    let die = got.iter().find(|e| e.action() == "die").expect("die");
    assert_eq!(die.attr("exitCode"), "137", "stop -t 1 kills sleep (pid 1)");
    let msg_ids = ids(&got);
    assert!(msg_ids.windows(2).all(|w| w[0] < w[1]), "{msg_ids:?}");

    let mut got = starts.until(t, "the container's start", |g| has(g, &id, "start"));
    got.extend(starts.drain(Duration::from_millis(1500)));
    assert!(
        got.iter().all(|e| e.action() == "start"),
        "action=start lets only starts through: {:?}",
        got.iter()
            .map(|e| (e.action(), e.attr("name")))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        got.iter().filter(|e| e.actor() == id).count(),
        1,
        "one start of {name}"
    );

    let got = volumes.until(t, "volume create and destroy", |g| has(g, &vol, "destroy"));
    assert_eq!(actions_of(&got, &vol), vec!["create", "destroy"]);
    assert!(
        got.iter()
            .all(|e| e.str("type") == "volume" && e.str("channel") == "volume_events"),
        "{got:?}"
    );

    let got = networks.until(t, "network create and destroy", |g| {
        has(g, &net_id, "destroy")
    });
    assert_eq!(actions_of(&got, &net_id), vec!["create", "destroy"]);
    assert!(
        got.iter()
            .filter(|e| e.actor() == net_id)
            .all(|e| e.attr("name") == net),
        "{got:?}"
    );
    assert!(
        got.iter()
            .all(|e| e.str("type") == "network" && e.str("channel") == "network_events"),
        "{got:?}"
    );

    let got = images.until(t, "image tag and untag", |g| {
        let tagged = g
            .iter()
            .position(|e| e.action() == "tag" && e.attr("name") == tag);
        tagged.is_some_and(|i| has(&g[i..], &image_id, "untag"))
    });
    let tagged = got
        .iter()
        .find(|e| e.action() == "tag" && e.attr("name") == tag)
        .expect("tag");
    assert_eq!(tagged.actor(), image_id);
    assert!(
        got.iter()
            .all(|e| e.str("type") == "image" && e.str("channel") == "image_events"),
        "{got:?}"
    );
}

/// `docker create` of a container that is never started; removed when dropped.
fn created(a: &Docker, tag: &str) -> Container {
    let name = unique(tag);
    let image = env().image;
    let id = a.run(&[
        "create",
        "--name",
        &name,
        "--label",
        "dockstat.test=1",
        &image,
        "true",
    ]);
    Container {
        docker: a.clone(),
        name,
        id,
    }
}

#[test]
fn sse_resumes_after_last_event_id_without_loss_or_duplicates() {
    let exp = exporter_a("resume", "");
    let a = Docker::a();
    let port = exp.admin_port;
    let path = "/api/v1/streams/container_events";
    let mut control = Sse::subscribe(port, path, "");
    let mut sub = Sse::subscribe(port, path, "");

    let c = created(&a, "resume");
    let got = sub.until(Duration::from_secs(15), "create", |g| {
        has(g, &c.id, "create")
    });
    let last = got
        .iter()
        .find(|e| e.actor() == c.id)
        .and_then(|e| e.id)
        .expect("id of the create");
    drop(sub);

    // Three events while disconnected.
    let renamed = unique("renamed");
    a.run(&["rename", &c.id, &renamed]);
    a.run(&["update", "--cpu-shares", "512", &c.id]);
    a.run(&["rm", &c.id]);
    let seen = control.until(Duration::from_secs(15), "the destroy", |g| {
        has(g, &c.id, "destroy")
    });
    let missed: Vec<&SseEvent> = seen.iter().filter(|e| e.id > Some(last)).collect();

    for (how, path, header) in [
        (
            "Last-Event-ID header",
            path.to_string(),
            format!("Last-Event-ID: {last}\r\n"),
        ),
        (
            "last_event_id query",
            format!("{path}?last_event_id={last}"),
            String::new(),
        ),
    ] {
        let mut again = Sse::subscribe(port, &path, &header);
        let got = again.until(Duration::from_secs(10), how, |g| g.len() >= missed.len());
        let extra = again.drain(Duration::from_millis(500));
        let got_ids = ids(&got);
        assert_contiguous(&got_ids, last + 1, how);
        assert_eq!(
            got_ids,
            missed.iter().map(|e| e.id.unwrap_or(0)).collect::<Vec<_>>(),
            "{how}: exactly the messages after {last}"
        );
        assert_eq!(
            actions_of(&got, &c.id),
            vec!["rename", "update", "destroy"],
            "{how}"
        );
        for (g, m) in got.iter().zip(&missed) {
            assert_eq!(
                g.data, m.data,
                "{how}: same message as the live subscriber got"
            );
        }
        // Whatever follows is new, never a repeat.
        for e in &extra {
            assert!(e.id > got_ids.last().copied(), "{how}: repeated {e:?}");
        }
        eprintln!(
            "{how}: resumed after {last} with {} messages ({} of ours)",
            got.len(),
            actions_of(&got, &c.id).len()
        );
    }
}

#[test]
fn sse_resume_older_than_the_ring_starts_with_a_gap() {
    let exp = exporter_a("gap", "streams:\n  ring: 4\n");
    let a = Docker::a();
    let port = exp.admin_port;
    let path = "/api/v1/streams/container_events";
    let mut control = Sse::subscribe(port, path, "");
    let c = created(&a, "gap");
    let got = control.until(Duration::from_secs(15), "create", |g| {
        has(g, &c.id, "create")
    });
    let last = got
        .iter()
        .find(|e| e.actor() == c.id)
        .and_then(|e| e.id)
        .expect("id");
    a.run(&["rename", &c.id, &unique("gap-renamed")]);
    a.run(&["update", "--cpu-shares", "512", &c.id]);
    a.run(&["update", "--cpu-shares", "256", &c.id]);
    a.run(&["rm", &c.id]);
    let d = created(&a, "gap2");
    d.remove();
    let seen = control.until(Duration::from_secs(15), "the second destroy", |g| {
        has(g, &d.id, "destroy")
    });
    let newest = seen.last().and_then(|e| e.id).expect("id");
    assert!(newest >= last + 6);

    let mut again = Sse::subscribe(port, path, &format!("Last-Event-ID: {last}\r\n"));
    let gap = again.next(Duration::from_secs(5)).expect("a first event");
    assert_eq!(gap.event, "gap", "{gap:?}");
    assert_eq!(gap.id, None, "notices carry no id");
    assert_eq!(gap.str("kind"), "gap");
    assert_eq!(gap.data["requested"].as_u64(), Some(last));
    let from = gap.data["resumed_from"].as_u64().expect("resumed_from");
    assert!(from > last + 1, "{gap:?}");
    let got = again.until(Duration::from_secs(5), "the ring's messages", |g| {
        g.last().and_then(|e| e.id) >= Some(newest)
    });
    let got_ids = ids(&got);
    eprintln!("gap: asked after {last}, resumed from {from}: {got_ids:?}");
    assert_contiguous(&got_ids, from, "after the gap");
    assert!(
        got_ids.len() <= 4 || got_ids[4] > newest,
        "the ring holds 4: {got_ids:?}"
    );
    assert!(has(&got, &d.id, "destroy"));
}

mod ws {
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use serde_json::Value;
    use tungstenite::{Message, WebSocket};

    pub struct Ws(WebSocket<TcpStream>);

    impl Ws {
        pub fn connect(port: u16) -> Ws {
            let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let (ws, resp) =
                tungstenite::client(super::ws_request(port), stream).expect("websocket handshake");
            assert_eq!(resp.status().as_u16(), 101);
            Ws(ws)
        }

        pub fn send(&mut self, v: Value) {
            self.0
                .send(Message::text(v.to_string()))
                .expect("send message");
        }

        /// The next JSON text message within `timeout`.
        pub fn next(&mut self, timeout: Duration) -> Option<Value> {
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                self.0
                    .get_mut()
                    .set_read_timeout(Some(left))
                    .expect("timeout");
                match self.0.read() {
                    Ok(Message::Text(t)) => {
                        return Some(serde_json::from_str(t.as_str()).expect("JSON"));
                    }
                    Ok(Message::Close(_)) => return None,
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("websocket read: {e}"),
                }
            }
        }

        /// Reads until a message satisfies `pred`; returns everything read.
        pub fn until(
            &mut self,
            timeout: Duration,
            what: &str,
            pred: impl Fn(&Value) -> bool,
        ) -> Vec<Value> {
            let deadline = Instant::now() + timeout;
            let mut got = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.next(left) {
                    Some(v) => {
                        let done = pred(&v);
                        got.push(v);
                        if done {
                            return got;
                        }
                    }
                    None => panic!("{what}: not within {timeout:?}; got {got:#?}"),
                }
            }
        }
    }
}

#[test]
fn websocket_subscribes_to_two_channels_pings_and_unsubscribes() {
    let exp = exporter_a("ws", "");
    let a = Docker::a();
    let mut ws = ws::Ws::connect(exp.admin_port);
    let t = Duration::from_secs(10);
    let name = unique("ws");

    ws.send(
        json!({"op": "subscribe", "channel": "container_events", "filter": {"container": name}}),
    );
    ws.until(t, "subscribed to container_events", |v| {
        v["op"] == "subscribed" && v["channel"] == "container_events"
    });
    // Replay host events from the start: the collector's `connected`.
    ws.send(json!({"op": "subscribe", "channel": "host_events", "filter": {"host": "a"}, "lastEventId": 0}));
    let got = ws.until(t, "host a connected", |v| {
        v["op"] == "message" && v["channel"] == "host_events" && v["event"] == "connected"
    });
    assert!(
        got.iter()
            .any(|v| v["op"] == "subscribed" && v["channel"] == "host_events"),
        "{got:?}"
    );
    let connected = got.last().expect("message");
    assert_eq!(connected["kind"], "host");
    assert_eq!(connected["host"], "a");
    assert_eq!(connected["client"], "lab");
    assert!(connected["id"].as_u64().is_some_and(|id| id >= 1));

    ws.send(json!({"op": "ping"}));
    ws.until(t, "pong", |v| v["op"] == "pong");

    ws.send(json!({"op": "subscribe", "channel": "no_such_channel"}));
    ws.until(t, "error for an unknown channel", |v| {
        v["op"] == "error" && v["code"] == "invalid"
    });

    let mut control = Sse::subscribe(
        exp.admin_port,
        &format!("/api/v1/streams/container_events?container={name}"),
        "",
    );
    let image = env().image;
    let id = a.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "dockstat.test=1",
        &image,
        "sleep",
        "600",
    ]);
    let c = Container {
        docker: a.clone(),
        name: name.clone(),
        id: id.clone(),
    };
    let got = ws.until(t, "the container's start", |v| {
        v["op"] == "message" && v["actor_id"] == id.as_str() && v["action"] == "start"
    });
    let mine: Vec<&Value> = got.iter().filter(|v| v["op"] == "message").collect();
    assert_eq!(
        mine.iter()
            .map(|v| v["action"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        vec!["create", "start"],
        "{got:?}"
    );
    for v in &mine {
        assert_eq!(v["channel"], "container_events");
        assert_eq!(v["kind"], "event");
        assert_eq!(v["attributes"]["name"], name.as_str());
    }

    ws.send(json!({"op": "unsubscribe", "channel": "container_events"}));
    let got = ws.until(t, "unsubscribed", |v| v["op"] == "unsubscribed");
    assert_eq!(got.last().expect("reply")["was_subscribed"], true);
    a.run(&["stop", "-t", "1", &id]);
    a.run(&["rm", &id]);
    drop(c);
    // The SSE subscriber sees the die and destroy; the WebSocket no longer does.
    let seen = control.until(t, "the destroy on SSE", |g| has(g, &id, "destroy"));
    assert!(in_order(
        &actions_of(&seen, &id),
        &["create", "start", "die", "destroy"]
    ));
    let quiet = Instant::now() + Duration::from_secs(1);
    while let Some(v) = ws.next(quiet.saturating_duration_since(Instant::now())) {
        assert_ne!(v["channel"], "container_events", "after unsubscribe: {v}");
    }
    ws.send(json!({"op": "ping"}));
    ws.until(t, "pong after unsubscribing", |v| v["op"] == "pong");
}

/// Writes a label file: `n` labels of `size` bytes, so each event of a container carrying
/// them is large and a subscriber's socket buffers fill after a few dozen events.
fn label_file(dir: &std::path::Path, n: usize, size: usize) -> std::path::PathBuf {
    let path = dir.join("labels.txt");
    let text: String = (0..n)
        .map(|i| format!("dockstat.pad{i}={}\n", "p".repeat(size)))
        .collect();
    std::fs::write(&path, text).expect("label file");
    path
}

/// The fields of a message the backpressure reader counts.
#[derive(serde::Deserialize)]
struct Brief {
    #[serde(default)]
    action: String,
    #[serde(default)]
    attributes: BriefAttributes,
}

#[derive(serde::Deserialize, Default)]
struct BriefAttributes {
    #[serde(default)]
    name: String,
}

#[test]
fn a_stalled_subscriber_lags_alone_and_the_cap_answers_503() {
    let exp = exporter_a(
        "backpressure",
        "streams:\n  queue: 8\n  max_subscribers: 2\n",
    );
    let a = Docker::a();
    let port = exp.admin_port;
    let busy = a.start("bp-running", &[], "sleep 600");
    exp.wait_for(
        Duration::from_secs(15),
        "the running container sampled",
        |s| {
            s.value("container_last_seen", &[("name", &busy.name)])
                .is_some()
        },
    );

    let path = "/api/v1/streams/docker_events";
    // Never read until the end.
    let stalled = Sse::subscribe(port, path, "");
    let reader = Sse::subscribe(port, path, "");

    // Over the cap: 503 with a JSON error.
    let third = Sse::open(port, path, "");
    assert_eq!(third.status, 503, "{}", third.head);
    let body = third.body();
    let err: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(err["error"]["code"], "too_many_subscribers", "{err}");

    // The reader reads everything on its own thread.
    let stop = Arc::new(AtomicBool::new(false));
    let read_bytes = Arc::new(AtomicU64::new(0));
    let reading = {
        let (stop, read_bytes) = (stop.clone(), read_bytes.clone());
        let mut reader = reader;
        std::thread::spawn(move || {
            let mut got: Vec<(Option<u64>, String, String, String)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                // Only what is counted: skipping the large labels keeps up with the stream.
                if let Some((event, id, data)) = reader.next_raw(Duration::from_millis(200)) {
                    let b: Brief = serde_json::from_str(&data).expect("data is JSON");
                    got.push((id, event, b.action, b.attributes.name));
                }
                read_bytes.store(reader.bytes, Ordering::SeqCst);
            }
            got
        })
    };

    // Collection keeps its pace meanwhile: watched from another thread.
    let watching = {
        let (stop, port, name) = (stop.clone(), exp.port, busy.name.clone());
        std::thread::spawn(move || {
            let (mut worst_seen, mut worst_age, mut scrapes) = (0.0f64, 0.0f64, 0);
            let mut last_seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (status, _, body) = http_get(port, "/metrics", None).expect("scrape");
                assert_eq!(status, 200);
                let s = Scrape::parse(&body);
                let t = now();
                if let Some(seen) = s.value("container_last_seen", &[("name", &name)]) {
                    worst_seen = worst_seen.max(t - seen);
                    if last_seen.last() != Some(&seen) {
                        last_seen.push(seen);
                    }
                }
                if let Some(age) = s.value("dockstat_snapshot_age_seconds", &[("host", "a")]) {
                    worst_age = worst_age.max(age);
                }
                scrapes += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            (worst_seen, worst_age, scrapes, last_seen)
        })
    };

    // Large events until the reader has taken far more than socket buffers hold.
    let dir = temp_dir("bp-labels");
    let labels = label_file(&dir, 64, 2000);
    let labels = labels.to_str().expect("path");
    let image = env().image;
    let prefix = unique("bp");
    let started = Instant::now();
    let mut pairs = 0usize;
    while read_bytes.load(Ordering::SeqCst) < 24 << 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} bytes read after {pairs} pairs",
            read_bytes.load(Ordering::SeqCst)
        );
        let name = format!("{prefix}-{pairs}");
        let id = a.run(&[
            "create",
            "--name",
            &name,
            "--label-file",
            labels,
            "--label",
            "dockstat.test=1",
            &image,
            "true",
        ]);
        let c = Container {
            docker: a.clone(),
            name,
            id: id.clone(),
        };
        a.run(&["rm", &id]);
        drop(c);
        pairs += 1;
    }
    let burst = started.elapsed();
    // Let the reader catch up with the last ones.
    let last_name = format!("{prefix}-{}", pairs - 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let before = read_bytes.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(700));
        if read_bytes.load(Ordering::SeqCst) == before {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let got = reading.join().expect("reader");
    let (worst_seen, worst_age, scrapes, last_seen) = watching.join().expect("watcher");
    eprintln!(
        "{pairs} create/rm pairs in {burst:?}; reader got {} messages, {} MiB; \
         over {scrapes} scrapes the worst container_last_seen lag was {worst_seen:.2} s and \
         the worst snapshot age {worst_age:.2} s; samples at {:?}",
        got.len(),
        read_bytes.load(Ordering::SeqCst) >> 20,
        last_seen
            .windows(2)
            .map(|w| format!("{:.2}", w[1] - w[0]))
            .collect::<Vec<_>>()
    );

    // The reader got every message: no notice, contiguous ids, each of our events once.
    let notices: Vec<_> = got
        .iter()
        .enumerate()
        .filter(|(_, g)| g.1 != "message")
        .collect();
    assert!(
        notices.is_empty(),
        "the reader never lagged: notices (position, event) {notices:?} among {} messages",
        got.len()
    );
    let reader_ids: Vec<u64> = got.iter().map(|(id, ..)| id.expect("id")).collect();
    assert_contiguous(&reader_ids, reader_ids[0], "reader");
    for action in ["create", "destroy"] {
        let n = got
            .iter()
            .filter(|(_, _, a, n)| a == action && n.starts_with(&format!("{prefix}-")))
            .count();
        assert_eq!(n, pairs, "{action} events of our containers");
    }
    assert!(
        got.iter()
            .any(|(_, _, a, n)| a == "destroy" && *n == last_name),
        "the reader got the very last event"
    );

    // Collection kept its 1 s interval.
    assert!(
        worst_seen < 2.0,
        "container_last_seen fell {worst_seen:.2} s behind during the burst"
    );
    assert!(worst_age < 2.0, "snapshot age reached {worst_age:.2} s");
    assert!(
        last_seen.len() as f64 >= burst.as_secs_f64() * 0.6,
        "{last_seen:?}"
    );

    // The stalled subscriber now reads: what its socket held, then a `lagged` notice.
    let mut stalled = stalled;
    let mut events = Vec::new();
    while let Some(e) = stalled.next(Duration::from_secs(2)) {
        events.push(e);
    }
    let lagged: Vec<&SseEvent> = events.iter().filter(|e| e.event == "lagged").collect();
    eprintln!(
        "stalled subscriber: {} events, {} MiB, notices {:?}",
        events.len(),
        stalled.bytes >> 20,
        lagged.iter().map(|e| &e.data).collect::<Vec<_>>()
    );
    assert!(!lagged.is_empty(), "a lagged notice");
    let mut missed_total = 0;
    let mut prev: Option<u64> = None;
    let mut pending_missed = 0;
    for e in &events {
        match e.event.as_str() {
            "lagged" => {
                assert_eq!(e.id, None);
                assert_eq!(e.str("kind"), "lagged");
                let missed = e.data["missed"].as_u64().expect("missed");
                assert!(missed > 0);
                pending_missed += missed;
                missed_total += missed;
            }
            "message" => {
                let id = e.id.expect("id");
                if let Some(p) = prev {
                    assert_eq!(
                        id,
                        p + 1 + pending_missed,
                        "ids account for every missed message"
                    );
                }
                pending_missed = 0;
                prev = Some(id);
            }
            other => panic!("unexpected event {other}"),
        }
    }
    let first = events.iter().find_map(|e| e.id).expect("first id");
    let delivered = events.iter().filter(|e| e.id.is_some()).count() as u64;
    assert_eq!(
        delivered + missed_total,
        prev.expect("last") - first + 1,
        "delivered + missed = every message in between"
    );
    assert!(
        missed_total > 0 && delivered > 0,
        "{delivered} delivered, {missed_total} missed"
    );
}

/// Message ids stay meaningful across a restart of the exporter: a subscriber that comes
/// back with the last id it saw from the previous process (an EventSource does so by itself
/// after a deploy) is told of the gap and then gets every new message, over SSE and over the
/// WebSocket's `lastEventId`.
#[test]
fn resuming_after_an_exporter_restart_gets_a_gap_then_live_messages() {
    let a = Docker::a();
    let mut exp = exporter_a("restart-resume", "");
    let port = exp.admin_port;
    let path = "/api/v1/streams/container_events";
    let mut sub = Sse::subscribe(port, path, "");
    let c = created(&a, "restart-resume");
    let got = sub.until(Duration::from_secs(15), "create", |g| {
        has(g, &c.id, "create")
    });
    let last = got
        .iter()
        .find(|e| e.actor() == c.id)
        .and_then(|e| e.id)
        .expect("id of the create");
    drop(sub);
    let status = exp.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));

    let dir = exp.dir.clone();
    let exp = Exporter::start_in(dir, &config_a(""));
    exp.wait_for(Duration::from_secs(15), "host a up again", |s| {
        s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
    });
    let port = exp.admin_port;
    let mut again = Sse::subscribe(port, path, &format!("Last-Event-ID: {last}\r\n"));
    let mut ws = ws::Ws::connect(port);
    ws.send(json!({"op": "subscribe", "channel": "container_events", "lastEventId": last}));
    a.run(&["rename", &c.id, &unique("restart-renamed")]);

    let first = again.next(Duration::from_secs(10)).expect("a first event");
    assert_eq!(first.event, "gap", "{first:?}");
    assert_eq!(first.data["requested"].as_u64(), Some(last));
    let from = first.data["resumed_from"].as_u64().expect("resumed_from");
    assert!(from > last, "new ids start above the old ones: {first:?}");
    let got = again.until(Duration::from_secs(15), "the rename, live", |g| {
        has(g, &c.id, "rename")
    });
    assert!(ids(&got).iter().all(|id| *id >= from), "{:?}", ids(&got));

    let got = ws.until(
        Duration::from_secs(15),
        "the rename over the WebSocket",
        |v| v["op"] == "message" && v["action"] == "rename" && v["actor_id"] == c.id.as_str(),
    );
    assert!(
        got.iter()
            .any(|v| v["kind"] == "gap" && v["requested"] == last),
        "a gap notice first: {got:?}"
    );
}

/// Events reach subscribers as soon as Docker publishes them, whatever the work they
/// trigger costs: with a daemon that takes 2 s to answer each inspect (a proxy in front of
/// daemon B holds those requests), five containers created in a row are all delivered
/// within a second of Docker's event time. The collector used to inspect each one before
/// reading the next event, so the fifth came 8 s late.
#[test]
fn events_are_delivered_without_waiting_for_the_inspects_they_trigger() {
    let b = Docker::b();
    let proxy = proxy::Proxy::start(&env().b_tcp);
    let cfg = format!(
        "monitoring:\n  interval: 1s\n  request_timeout: 5s\nclients:\n  - name: lab\n    hosts:\n      - name: b\n        address: tcp://127.0.0.1:{}\n",
        proxy.port
    );
    let exp = Exporter::start("slow-inspect", &cfg);
    exp.wait_for(Duration::from_secs(15), "host b up", |s| {
        s.value("dockstat_host_up", &[("host", "b")]) == Some(1.0)
    });
    let mut sub = Sse::subscribe(
        exp.admin_port,
        "/api/v1/streams/container_events?action=create",
        "",
    );
    proxy.slow_inspects(Some(Duration::from_secs(2)));
    let made: Vec<Container> = (0..5).map(|_| created(&b, "slow-inspect")).collect();
    let mut late = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while late.len() < made.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = sub
            .next(left)
            .unwrap_or_else(|| panic!("only {} of 5 creates delivered: {late:?}", late.len()));
        if made.iter().any(|c| c.id == e.actor()) {
            let event_time = e.data["time"].as_f64().expect("time");
            late.push(now() - event_time);
        }
    }
    proxy.slow_inspects(None);
    eprintln!("delivery after Docker's event time, s: {late:?}");
    assert!(
        late.iter().all(|l| *l < 1.0),
        "events waited for inspects: {late:?}"
    );
}
