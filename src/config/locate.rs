//! Finds the line and column of a key path in YAML text.
//!
//! serde_yaml keeps no spans, but it does stamp every error with the position of the node
//! being read when the error happened. So to find `clients[0].hosts[1].tls.ca` we walk the
//! document with a deserializer that skips everything off the path and fails on purpose at
//! the target node; the position of that error is the answer.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// A sequence index, from 0.
    Index(usize),
}

impl From<&str> for PathSeg {
    fn from(k: &str) -> Self {
        PathSeg::Key(k.to_string())
    }
}

impl From<usize> for PathSeg {
    fn from(i: usize) -> Self {
        PathSeg::Index(i)
    }
}

/// `clients[0].hosts[1].tls.ca`
pub fn display_path(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

const MARKER: &str = "dockstat-locate-target";

/// Line and column (1-based) of the node at `path`, or None when the path is not in `text`.
pub fn locate(text: &str, path: &[PathSeg]) -> Option<(usize, usize)> {
    let de = serde_yaml::Deserializer::from_str(text);
    match Seek(path).deserialize(de) {
        Ok(()) => None,
        Err(e) if e.to_string().contains(MARKER) => e.location().map(|l| (l.line(), l.column())),
        Err(_) => None,
    }
}

/// Follows the remaining path through the document, noting where each key begins.
struct Seek<'p>(&'p [PathSeg]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0.split_first() {
            None => d.deserialize_any(Target),
            Some((PathSeg::Key(k), rest)) => d.deserialize_any(InMap { key: k, rest }),
            Some((PathSeg::Index(i), rest)) => d.deserialize_any(InSeq { index: *i, rest }),
        }
    }
}

/// Fails on whatever it is given: serde's default visit methods all return an error that
/// quotes `expecting`, which carries the marker.
struct Target;

impl Visitor<'_> for Target {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(MARKER)
    }
}

/// In a mapping: looks for `key`, then seeks `rest` in its value.
struct InMap<'p> {
    key: &'p str,
    rest: &'p [PathSeg],
}

impl<'de> Visitor<'de> for InMap<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            if key.as_str() == Some(self.key) {
                return map.next_value_seed(Seek(self.rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// In a sequence: skips to item `index`, then seeks `rest` in it.
struct InSeq<'p> {
    index: usize,
    rest: &'p [PathSeg],
}

impl<'de> Visitor<'de> for InSeq<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Seek(self.rest)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
clients:
  - name: a
    hosts:
      - name: x
        address: tcp://h:1
      - name: y
        address: /run/d.sock
        tls:
          ca: ca.pem
";

    fn p(segs: &[PathSeg]) -> Option<(usize, usize)> {
        locate(DOC, segs)
    }

    #[test]
    fn finds_scalars_maps_and_list_items() {
        use PathSeg::*;
        let host1 = [
            Key("clients".into()),
            Index(0),
            Key("hosts".into()),
            Index(1),
        ];
        assert_eq!(p(&host1), Some((6, 9)));
        let name = [&host1[..], &[Key("name".into())]].concat();
        assert_eq!(p(&name), Some((6, 15)));
        let ca = [&host1[..], &[Key("tls".into()), Key("ca".into())]].concat();
        assert_eq!(p(&ca), Some((9, 15)));
        assert_eq!(p(&[Key("nope".into())]), None);
        assert_eq!(p(&[Key("clients".into()), Index(7)]), None);
        assert_eq!(display_path(&ca), "clients[0].hosts[1].tls.ca");
    }
}
