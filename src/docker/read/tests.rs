use super::*;
use crate::fixtures::{stderr as err, stdout as out};

fn lines(sp: &mut LineSplitter) -> Result<Vec<String>, DockerError> {
    let mut out = Vec::new();
    while let Some(l) = sp.next_line()? {
        out.push(String::from_utf8_lossy(&l).into_owned());
    }
    Ok(out)
}

#[test]
fn lines_are_cut_across_chunks() {
    let mut sp = LineSplitter::new(16, "events");
    sp.push(b"{\"a\":1}\n{\"b\"");
    assert_eq!(lines(&mut sp).ok(), Some(vec!["{\"a\":1}".to_string()]));
    sp.push(b":2}");
    assert_eq!(lines(&mut sp).ok(), Some(vec![]));
    sp.push(b"\n\n{\"c\":3}\n");
    assert_eq!(
        lines(&mut sp).ok(),
        Some(vec!["{\"b\":2}".into(), String::new(), "{\"c\":3}".into()])
    );
    sp.push(b"tail");
    assert_eq!(lines(&mut sp).ok(), Some(vec![]));
    assert_eq!(sp.finish().as_deref(), Some(&b"tail"[..]));
    assert_eq!(sp.finish(), None);
}

#[test]
fn a_line_over_the_bound_is_too_large() {
    // Without a newline: fails once the bytes waiting exceed the bound.
    let mut sp = LineSplitter::new(8, "events");
    sp.push(b"12345678");
    assert_eq!(lines(&mut sp).ok(), Some(vec![]));
    sp.push(b"9");
    let e = lines(&mut sp).expect_err("too large");
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert!(e.message.contains("events"), "{}", e.message);

    // With its newline in the same piece: still too long.
    let mut sp = LineSplitter::new(8, "events");
    sp.push(b"ok\n123456789\n");
    assert_eq!(sp.next_line().ok().flatten().as_deref(), Some(&b"ok"[..]));
    assert_eq!(sp.next_line().map_err(|e| e.kind), Err(ErrorKind::TooLarge));

    // Exactly the bound is fine.
    let mut sp = LineSplitter::new(8, "events");
    sp.push(b"12345678\n");
    assert_eq!(lines(&mut sp).ok(), Some(vec!["12345678".to_string()]));
}

fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![stream, 0, 0, 0];
    f.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn frames(d: &mut LogDemux) -> Result<Vec<LogOutput>, DockerError> {
    let mut out = Vec::new();
    while let Some(f) = d.next_frame()? {
        out.push(f);
    }
    Ok(out)
}

#[test]
fn multiplexed_frames_split_anywhere() {
    let mut all = frame(1, b"hello\n");
    all.extend(frame(2, b"oops\n"));
    all.extend(frame(1, b""));
    all.extend(frame(1, b"bye"));
    // Every cut, headers included, gives the same frames.
    for framing in [Framing::Multiplexed, Framing::Sniff] {
        for cut in 0..all.len() {
            let mut d = LogDemux::new(framing, 1024);
            d.push(&all[..cut]);
            let mut got = frames(&mut d).expect("frames");
            d.push(&all[cut..]);
            got.extend(frames(&mut d).expect("frames"));
            assert_eq!(d.finish().ok(), Some(None), "cut {cut}");
            assert_eq!(
                got,
                vec![out("hello\n"), err("oops\n"), out(""), out("bye")],
                "{framing:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn a_frame_over_the_bound_is_too_large_before_its_payload() {
    let mut d = LogDemux::new(Framing::Multiplexed, 16);
    d.push(&frame(1, b"fine"));
    // Only the header of a 4 GiB frame: refused at once, nothing buffered for it.
    d.push(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(d.next_frame().ok().flatten(), Some(out("fine")));
    let e = d.next_frame().expect_err("too large");
    assert_eq!(e.kind, ErrorKind::TooLarge);

    let mut d = LogDemux::new(Framing::Multiplexed, 16);
    d.push(&frame(2, &[b'x'; 17]));
    assert_eq!(d.next_frame().map_err(|e| e.kind), Err(ErrorKind::TooLarge));
}

#[test]
fn raw_output_is_passed_on_in_bounded_pieces() {
    let mut d = LogDemux::new(Framing::Sniff, 4);
    d.push(b"hi");
    // Not a header ('h' > 2): raw at once, not waiting for 8 bytes.
    let console = |s: &str| LogOutput::Console {
        message: Bytes::from(s.to_string()),
    };
    assert_eq!(frames(&mut d).ok(), Some(vec![console("hi")]));
    d.push(b" there\n");
    assert_eq!(
        frames(&mut d).ok(),
        Some(vec![console(" the"), console("re\n")])
    );

    // A short raw answer that could start a header is raw at the end.
    let mut d = LogDemux::new(Framing::Sniff, 1024);
    d.push(&[1, 0]);
    assert_eq!(frames(&mut d).ok(), Some(vec![]));
    assert_eq!(
        d.finish().ok().flatten(),
        Some(LogOutput::Console {
            message: Bytes::from_static(&[1, 0])
        })
    );
}

#[test]
fn a_cut_frame_or_an_in_band_error_fails() {
    let mut d = LogDemux::new(Framing::Multiplexed, 1024);
    d.push(&frame(1, b"hello")[..9]);
    assert_eq!(frames(&mut d).ok(), Some(vec![]));
    assert_eq!(d.finish().map_err(|e| e.kind), Err(ErrorKind::Decode));

    let mut d = LogDemux::new(Framing::Multiplexed, 1024);
    d.push(&frame(3, b"error from daemon\n"));
    let e = d.next_frame().expect_err("in-band error");
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::ApiError, "error from daemon")
    );
}

#[tokio::test]
async fn whole_bodies_are_bounded() {
    use http_body_util::{Full, StreamBody};

    let body = Full::new(Bytes::from_static(b"{}"));
    assert_eq!(
        whole(body, 2, "info").await.ok().as_deref(),
        Some(&b"{}"[..])
    );
    // Announced too long: refused before reading.
    let body = Full::new(Bytes::from_static(b"{\"a\":1}"));
    let e = whole(body, 4, "info").await.expect_err("too large");
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert!(e.message.contains("4 bytes"), "{}", e.message);
    // Not announced: refused when it grows past the bound.
    let chunks = futures_util::stream::iter(
        std::iter::repeat_with(|| {
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from_static(&[b'a'; 1024])))
        })
        .take(2048),
    );
    let e = whole(StreamBody::new(chunks), 1024 * 1024, "containers list")
        .await
        .expect_err("too large");
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert_eq!(
        e.message,
        "containers list: answer larger than 1 MiB, the bound for this call"
    );
}

fn split_all(chunks: &[&[u8]], max_item: usize) -> Result<Vec<String>, DockerError> {
    let mut sp = ArraySplitter::new(max_item);
    let mut out = Vec::new();
    for c in chunks {
        sp.push(c, |item| {
            out.push(String::from_utf8_lossy(item).trim().to_string());
            Ok(())
        })?;
    }
    sp.finish()?;
    Ok(out)
}

#[test]
fn list_elements_are_cut_at_any_split() {
    let text = br#" [ {"Id":"a","Names":["/x"],"Labels":{"k":"v ] } , \" ["}} ,
        {"Id":"b","Ports":[{"PrivatePort":80}],"n":[1,[2]]}, 7, "s,]" ] "#;
    let want = vec![
        r#"{"Id":"a","Names":["/x"],"Labels":{"k":"v ] } , \" ["}}"#.to_string(),
        r#"{"Id":"b","Ports":[{"PrivatePort":80}],"n":[1,[2]]}"#.to_string(),
        "7".to_string(),
        r#""s,]""#.to_string(),
    ];
    assert_eq!(
        split_all(&[text], 1024).map_err(|e| e.message),
        Ok(want.clone())
    );
    for cut in 0..text.len() {
        let (a, b) = text.split_at(cut);
        assert_eq!(
            split_all(&[a, b], 1024).ok(),
            Some(want.clone()),
            "cut {cut}"
        );
    }
    assert_eq!(split_all(&[b"[]"], 8).ok(), Some(vec![]));
    assert_eq!(split_all(&[b" [ ", b" ] \n"], 8).ok(), Some(vec![]));
}

#[test]
fn a_list_element_over_the_bound_is_too_large() {
    let e = split_all(&[br#"[{"Id":"aaaa"#, b"aaaaaaaa"], 12).expect_err("too large");
    assert_eq!(e.kind, ErrorKind::TooLarge);
    // Exactly the bound is fine.
    assert_eq!(
        split_all(&[br#"[{"Id":"aa"}]"#], 11).ok(),
        Some(vec![r#"{"Id":"aa"}"#.to_string()])
    );
}

#[test]
fn what_is_not_one_list_does_not_decode() {
    for bad in [&b"{}"[..], b"[1] [2]", b"[{}}]", b"[{\"Id\":"] {
        assert_eq!(
            split_all(&[bad], 64).map_err(|e| e.kind),
            Err(ErrorKind::Decode),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn lists_are_decoded_element_by_element_within_their_bounds() {
    use http_body_util::{Full, StreamBody};

    let body = Full::new(Bytes::from_static(br#"[{"a":1},{"a":2}]"#));
    let got: Vec<serde_json::Value> = json_array(body, 64, 1024, "list").await.expect("list");
    assert_eq!(
        got,
        vec![serde_json::json!({"a":1}), serde_json::json!({"a":2})]
    );

    // `[{"Id":"aaa…` without end: refused once the element passes its bound, long before
    // the bound of the whole answer.
    let head = futures_util::stream::iter([Ok::<_, std::io::Error>(hyper::body::Frame::data(
        Bytes::from_static(br#"[{"Id":""#),
    ))]);
    let rest = futures_util::stream::iter(
        std::iter::repeat_with(|| {
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from_static(&[b'a'; 1024])))
        })
        .take(64),
    );
    let body = StreamBody::new(futures_util::StreamExt::chain(head, rest));
    let e =
        json_array::<_, serde_json::Value>(body, 16 * 1024, 1024 * 1024, "GET /containers/json")
            .await
            .expect_err("too large");
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert!(
        e.message.starts_with("GET /containers/json: one element"),
        "{}",
        e.message
    );

    // A list element that is not what the caller expects.
    let body = Full::new(Bytes::from_static(br#"[{"a":1},"x"]"#));
    let e = json_array::<_, std::collections::HashMap<String, i32>>(body, 64, 1024, "list")
        .await
        .expect_err("decode");
    assert_eq!(e.kind, ErrorKind::Decode);
}
