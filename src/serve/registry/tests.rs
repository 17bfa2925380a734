use super::*;

const T: Timeouts = Timeouts {
    header: Duration::from_secs(10),
    idle: Duration::from_secs(60),
};

fn state(g: &SlotGuard) -> (usize, bool) {
    let inner = g.conn.registry.lock();
    let s = &inner.slots[&g.conn.id];
    (s.in_flight, s.closing)
}

#[tokio::test(start_paused = true)]
async fn at_the_cap_the_longest_idle_connection_makes_room() {
    let r = Registry::new(2);
    let (a, how) = r.admit().expect("a");
    assert_eq!(how, Admitted::Free);
    tokio::time::advance(Duration::from_millis(5)).await;
    let (b, _) = r.admit().expect("b");
    tokio::time::advance(Duration::from_millis(5)).await;
    let (c, how) = r.admit().expect("c");
    assert_eq!(how, Admitted::Evicted);
    assert!(a.conn.close.is_cancelled(), "a idled longest");
    assert!(!b.conn.close.is_cancelled());
    assert_eq!(state(&a), (0, true));
    assert_eq!(r.open(), 3, "a holds its file until its socket closes");
    drop(a);
    assert_eq!(r.open(), 2);
    // b busy, c idle: d evicts c.
    let _req = b.conn.begin(Version::HTTP_11);
    let (_d, how) = r.admit().expect("d");
    assert_eq!(how, Admitted::Evicted);
    assert!(c.conn.close.is_cancelled());
    assert!(
        !b.conn.close.is_cancelled(),
        "busy connections are never evicted"
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_connection_is_busy_a_new_one_is_refused() {
    let r = Registry::new(1);
    let (a, _) = r.admit().expect("a");
    let req = a.conn.begin(Version::HTTP_11);
    assert!(r.admit().is_none());
    assert!(!r.evict_idle());
    drop(req);
    assert!(r.admit().is_some(), "idle again: evictable");
}

#[tokio::test(start_paused = true)]
async fn deadlines_follow_header_and_idle_timeouts() {
    let r = Registry::new(4);
    let (a, _) = r.admit().expect("a");
    let start = Instant::now();
    assert_eq!(a.conn.deadline(T), Some(start + T.header), "fresh: header");
    let req = a.conn.begin(Version::HTTP_11);
    assert_eq!(a.conn.deadline(T), None, "in flight: none");
    tokio::time::advance(Duration::from_secs(1)).await;
    drop(req);
    let idle = Instant::now();
    assert_eq!(a.conn.deadline(T), Some(idle + T.idle), "kept alive: idle");
    tokio::time::advance(Duration::from_secs(3)).await;
    a.conn.read_some();
    let byte = Instant::now();
    assert_eq!(
        a.conn.deadline(T),
        Some(byte + T.header),
        "next head: header"
    );
    // Later bytes of the same head do not push it back.
    tokio::time::advance(Duration::from_secs(1)).await;
    a.conn.read_some();
    assert_eq!(a.conn.deadline(T), Some(byte + T.header));
    let req = a.conn.begin(Version::HTTP_11);
    req.upgraded();
    assert_eq!(a.conn.deadline(T), None, "upgraded: busy for good");
    assert!(!r.evict_idle());
}

#[tokio::test(start_paused = true)]
async fn http2_idles_by_the_idle_timeout_only() {
    let r = Registry::new(4);
    let (a, _) = r.admit().expect("a");
    drop(a.conn.begin(Version::HTTP_2));
    let idle = Instant::now();
    a.conn.read_some(); // a PING or WINDOW_UPDATE, not a request head
    assert_eq!(a.conn.deadline(T), Some(idle + T.idle));
    assert!(a.conn.is_http2());
}

#[tokio::test(start_paused = true)]
async fn evicted_connections_give_their_place_back_at_once_and_their_file_soon() {
    let r = Registry::new(1);
    let (a, _) = r.admit().expect("a");
    let (b, how) = r.admit().expect("b");
    assert_eq!(how, Admitted::Evicted);
    let (_c, how) = r.admit().expect("c");
    assert_eq!(
        how,
        Admitted::Evicted,
        "b made room for c; a is not counted"
    );
    assert!(b.conn.close.is_cancelled());
    assert_eq!(r.open(), 3);
    // Room for more while few evicted sockets are still open ...
    tokio::time::timeout(Duration::from_millis(1), r.room())
        .await
        .expect("room");
    let mut evicted = vec![a, b];
    while r.open() < r.cap() + CLOSING_SLACK {
        evicted.push(r.admit().expect("admitted by eviction").0);
    }
    // ... none when too many are: until one closes.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), r.room())
            .await
            .is_err()
    );
    let waiting = tokio::spawn({
        let r = r.clone();
        async move { r.room().await }
    });
    tokio::task::yield_now().await;
    drop(evicted.remove(0)); // an evicted socket closes
    tokio::time::timeout(Duration::from_millis(1), waiting)
        .await
        .expect("room once one closed")
        .expect("joined");
    let closing = r.lock().closing;
    assert_eq!(
        closing,
        r.open() - 1,
        "all but the last one admitted were evicted"
    );
}
