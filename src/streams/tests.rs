use super::*;
use futures_util::StreamExt;

fn ev(action: &str, id: &str) -> Payload {
    Payload::Event {
        typ: "container".into(),
        action: action.into(),
        actor_id: id.into(),
        attributes: [("name".to_string(), format!("n-{id}"))].into(),
    }
}

#[tokio::test]
async fn replay_filter_lag_and_gap() {
    let m = StreamManager::new(4, 2, 10);
    for i in 0..6 {
        m.publish(
            Channel::ContainerEvents,
            "a",
            "c",
            0.0,
            ev("start", &format!("{i}")),
        );
    }
    // Ring holds ids 3..=6; resuming after 1 reports a gap, then 3,4,5,6.
    let mut s = m
        .subscribe(Channel::ContainerEvents, Filter::default(), Some(1))
        .expect("slot");
    let first = s.next().await.expect("gap");
    assert!(matches!(
        first.payload,
        Payload::Gap {
            requested: 1,
            resumed_from: 3
        }
    ));
    let ids: Vec<u64> = (0..4).map(|_| s.id_now()).collect();
    assert_eq!(ids, vec![3, 4, 5, 6]);

    // A filter on the container.
    let mut f = m
        .subscribe(
            Channel::ContainerEvents,
            Filter {
                container: Some("n-7".into()),
                ..Default::default()
            },
            None,
        )
        .expect("slot");
    m.publish(Channel::ContainerEvents, "a", "c", 0.0, ev("die", "6"));
    m.publish(Channel::ContainerEvents, "a", "c", 0.0, ev("die", "7"));
    let got = f.next().await.expect("msg");
    assert!(matches!(&got.payload, Payload::Event { actor_id, .. } if actor_id == "7"));

    // Queue of 2: publishing 5 more without reading makes `s` lag.
    for i in 10..15 {
        m.publish(
            Channel::ContainerEvents,
            "a",
            "c",
            0.0,
            ev("start", &format!("{i}")),
        );
    }
    let lag = s.next().await.expect("lagged");
    assert!(
        matches!(lag.payload, Payload::Lagged { missed } if missed > 0),
        "{lag:?}"
    );
}

/// A process started after another: its ids start above the old ones, and a resume
/// with an id of the old process, or one never handed out, gets a gap notice and then
/// every live message.
#[tokio::test]
async fn resume_across_a_restart_or_with_an_unknown_id_is_a_gap() {
    let m = StreamManager::with_first_id(8, 8, 10, 1_000);
    m.publish(Channel::HostEvents, "a", "c", 0.0, ev("x", "1"));
    // 0 asks for everything this process has: nothing was lost, no notice.
    let mut all = m
        .subscribe(Channel::HostEvents, Filter::default(), Some(0))
        .expect("slot");
    assert_eq!(all.id_now(), 1_000);
    drop(all);
    for asked in [17, 5_000] {
        let mut s = m
            .subscribe(Channel::HostEvents, Filter::default(), Some(asked))
            .expect("slot");
        let gap = s.next().await.expect("gap");
        assert!(
            matches!(gap.payload, Payload::Gap { requested, resumed_from: 1_000 } if requested == asked),
            "{gap:?}"
        );
        assert_eq!(s.id_now(), 1_000, "the ring after the notice");
        m.publish(Channel::HostEvents, "a", "c", 0.0, ev("y", "2"));
        let live = s.next().await.expect("live");
        assert!(live.id > 1_000, "live messages flow: {live:?}");
    }
}

#[test]
fn subscriber_cap() {
    let m = StreamManager::new(4, 2, 1);
    let a = m.subscribe(Channel::HostEvents, Filter::default(), None);
    assert!(a.is_ok());
    assert!(
        m.subscribe(Channel::HostEvents, Filter::default(), None)
            .is_err()
    );
    drop(a);
    assert!(
        m.subscribe(Channel::HostEvents, Filter::default(), None)
            .is_ok()
    );
}

impl Subscription {
    fn id_now(&mut self) -> u64 {
        futures_util::FutureExt::now_or_never(self.next())
            .flatten()
            .map(|m| m.id)
            .unwrap_or(0)
    }
}
