//! Which containers a host's collector follows: name globs and label selectors from the
//! `containers` section of a client and of a host, and the opt-out label every container can
//! carry (`dockstat.monitor=false`). A container left out is not inspected after its first
//! sight, never sampled (no stats call, no cgroup read) and has no series.

use std::collections::HashMap;

use super::schema::{ContainersConfig, Selector};

/// The label a container carries to be left out: `dockstat.monitor=false`.
pub const OPT_OUT_LABEL: &str = "dockstat.monitor";

/// One label selector: `key` (the label is there) or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelSelector {
    Key(String),
    KeyValue(String, String),
}

impl LabelSelector {
    fn parse(s: &str) -> LabelSelector {
        match s.split_once('=') {
            Some((k, v)) => LabelSelector::KeyValue(k.to_string(), v.to_string()),
            None => LabelSelector::Key(s.to_string()),
        }
    }

    fn matches<'a>(&self, label: &dyn Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            LabelSelector::Key(k) => label(k).is_some(),
            LabelSelector::KeyValue(k, v) => label(k) == Some(v.as_str()),
        }
    }
}

/// The compiled `include` or `exclude` half of a `containers` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Match {
    names: Vec<String>,
    labels: Vec<LabelSelector>,
}

impl Match {
    fn of(s: &Selector) -> Match {
        Match {
            names: s.names.clone(),
            labels: s.labels.iter().map(|l| LabelSelector::parse(l)).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty() && self.labels.is_empty()
    }
}

/// One `containers` section, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    include: Match,
    exclude: Match,
}

impl ContainerFilter {
    /// From the file's section.
    pub fn of(c: &ContainersConfig) -> ContainerFilter {
        ContainerFilter {
            include: Match::of(&c.include),
            exclude: Match::of(&c.exclude),
        }
    }

    /// Whether a container named `name` (without the leading slash) with the labels `label`
    /// answers is followed: it matches every non-empty `include` list (a name glob of
    /// `include.names`, a selector of `include.labels`) and nothing of `exclude`.
    pub fn admits<'a>(&self, name: &str, label: &dyn Fn(&str) -> Option<&'a str>) -> bool {
        let i = &self.include;
        let included = (i.names.is_empty() || i.names.iter().any(|g| glob(g, name)))
            && (i.labels.is_empty() || i.labels.iter().any(|s| s.matches(label)));
        let e = &self.exclude;
        let excluded = !e.is_empty()
            && (e.names.iter().any(|g| glob(g, name)) || e.labels.iter().any(|s| s.matches(label)));
        included && !excluded
    }
}

/// What a host's collector follows: its client's section, its own, and the opt-out label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFilter {
    /// The client's, then the host's: a container must pass both.
    pub sections: Vec<ContainerFilter>,
}

impl HostFilter {
    /// Whether the container is followed.
    pub fn admits<'a>(&self, name: &str, label: &dyn Fn(&str) -> Option<&'a str>) -> bool {
        let opted_out =
            label(OPT_OUT_LABEL).is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
        !opted_out && self.sections.iter().all(|f| f.admits(name, label))
    }
}

/// Every `containers` section of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// By client name.
    pub clients: HashMap<String, ContainerFilter>,
    /// By (client, host) name.
    pub hosts: HashMap<(String, String), ContainerFilter>,
}

impl Filters {
    /// The same sections after unnamed hosts got their daemons' names: `renames` holds
    /// (client, provisional name, final name).
    pub fn renamed(&self, renames: &[(String, String, String)]) -> Filters {
        let mut hosts = self.hosts.clone();
        for (client, old, new) in renames {
            if let Some(f) = hosts.remove(&(client.clone(), old.clone())) {
                hosts.insert((client.clone(), new.clone()), f);
            }
        }
        Filters {
            clients: self.clients.clone(),
            hosts,
        }
    }

    /// What a host's collector follows: its client's and its own sections (a client or host
    /// added through the API has none of its own), and the opt-out label.
    pub fn for_host(&self, client: &str, host: &str) -> HostFilter {
        let sections = [
            self.clients.get(client),
            self.hosts.get(&(client.to_string(), host.to_string())),
        ];
        HostFilter {
            sections: sections.into_iter().flatten().cloned().collect(),
        }
    }
}

/// Shell-style glob: `*` any run of characters, `?` one character, anything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point for the last `*`: linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("web-*", "web-1"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*-skip-*", "x-skip-y"));
        assert!(!glob("web-*", "api-1"));
        assert!(glob("*a*b*c", "xxaybbzc"));
        assert!(!glob("*a*b*c", "xxaybbz"));
    }

    #[test]
    fn include_exclude_and_opt_out() {
        let section = |yaml: &str| {
            let c: ContainersConfig = serde_yaml::from_str(yaml).expect("parses");
            ContainerFilter::of(&c)
        };
        let labels = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
        };
        let f = section(
            "include:\n  names: ['web-*']\n  labels: [tier=front, canary]\nexclude:\n  names: ['*-old']\n  labels: [skip]\n",
        );
        assert!(f.admits("web-1", &labels(&[("tier", "front")])));
        assert!(f.admits("web-2", &labels(&[("canary", "")])));
        assert!(
            !f.admits("web-3", &labels(&[("tier", "back")])),
            "label value differs"
        );
        assert!(
            !f.admits("api-1", &labels(&[("tier", "front")])),
            "name not included"
        );
        assert!(
            !f.admits("web-old", &labels(&[("tier", "front")])),
            "name excluded"
        );
        assert!(!f.admits("web-4", &labels(&[("tier", "front"), ("skip", "1")])));
        let all = HostFilter::default();
        assert!(all.admits("anything", &labels(&[])));
        assert!(!all.admits("x", &labels(&[("dockstat.monitor", "false")])));
        assert!(all.admits("x", &labels(&[("dockstat.monitor", "true")])));
        let both = HostFilter {
            sections: vec![
                section("exclude:\n  names: [db]\n"),
                section("include:\n  labels: [team]\n"),
            ],
        };
        assert!(both.admits("web", &labels(&[("team", "a")])));
        assert!(
            !both.admits("db", &labels(&[("team", "a")])),
            "client's exclude"
        );
        assert!(!both.admits("web", &labels(&[])), "host's include");
    }
}
