//! [`Named`]: a container's few interfaces or block devices, by name.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Values by name, sorted by name, in one allocation of the size they need.
///
/// Why not a `BTreeMap`: its first node has room for 11 entries (~1 KB for network
/// counters) while a container has one or two interfaces and devices; kept for every
/// container of a 10,000-container snapshot, that was ~20 MB of the exporter's heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named<V>(Vec<(String, V)>);

impl<V> Default for Named<V> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<V> Named<V> {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    /// The value of `name`, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.find(name).ok().map(|i| &mut self.0[i].1)
    }

    /// Sets `name` to `value`, replacing what it had.
    pub fn insert(&mut self, name: String, value: V) {
        match self.find(&name) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// The value of `name`, inserted as the default when missing.
    pub fn entry_or_default(&mut self, name: &str) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(name) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (name.to_string(), V::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Names and values, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Values, by name.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// Whether `name` is there.
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes all.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Gives back room no longer needed (after the values were gathered).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl<V> std::ops::Index<&str> for Named<V> {
    type Output = V;
    /// Panics when `name` is missing, like a map's index (tests).
    fn index(&self, name: &str) -> &V {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no entry named {name:?}"),
        }
    }
}

impl<V> FromIterator<(String, V)> for Named<V> {
    /// Later values of a repeated name replace earlier ones, as in a map.
    fn from_iter<T: IntoIterator<Item = (String, V)>>(iter: T) -> Self {
        let mut v: Vec<(String, V)> = iter.into_iter().collect();
        // Stable: equal names keep their order, and the last one is kept below.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, V)> = Vec::with_capacity(v.len());
        for (k, x) in v {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = x,
                _ => out.push((k, x)),
            }
        }
        out.shrink_to_fit();
        Named(out)
    }
}

impl<V: Serialize> Serialize for Named<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Named<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = Named<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<V>, A::Error> {
                let mut v = Vec::with_capacity(map.size_hint().unwrap_or(0).min(16));
                while let Some(entry) = map.next_entry::<String, V>()? {
                    v.push(entry);
                }
                Ok(v.into_iter().collect())
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::Named;

    #[test]
    fn sorted_by_name_last_value_wins_and_lookups_work() {
        let mut n: Named<u32> = [("b".to_string(), 1), ("a".into(), 2), ("b".into(), 3)]
            .into_iter()
            .collect();
        assert_eq!(n.iter().collect::<Vec<_>>(), [("a", &2), ("b", &3)]);
        *n.entry_or_default("c") += 5;
        *n.entry_or_default("a") += 1;
        n.insert("0".into(), 9);
        assert_eq!(
            n.iter().collect::<Vec<_>>(),
            [("0", &9), ("a", &3), ("b", &3), ("c", &5)]
        );
        assert_eq!((n.get("c"), n.get("z"), n["b"]), (Some(&5), None, 3));
        let json = serde_json::to_string(&n).expect("encodes");
        assert_eq!(json, r#"{"0":9,"a":3,"b":3,"c":5}"#);
        let back: Named<u32> =
            serde_json::from_str(r#"{"c":5,"0":9,"b":3,"a":3}"#).expect("decodes");
        assert_eq!(back, n);
    }
}
