//! `spec/uapi.rs` must say exactly what `spec/tlshub.yaml` says: the kernel
//! module and tlshubctl both compile the former, the latter is the contract.

use std::collections::BTreeMap;

use serde_yaml::Value;
use tlshub::uapi;
use tlshub::Mode;

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/tlshub.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).expect("spec is valid YAML")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_sequence()
        .unwrap_or_else(|| panic!("'{key}' is not a list"))
}

fn name(v: &Value) -> &str {
    v["name"]
        .as_str()
        .or_else(|| v.as_str())
        .expect("entry has a name")
}

/// YNL numbering: from `start` in list order, except where `value:` resets it.
fn numbered(entries: &[Value], start: u64) -> BTreeMap<String, u64> {
    let mut next = start;
    let mut out = BTreeMap::new();
    for e in entries {
        let n = e["value"].as_u64().unwrap_or(next);
        assert!(
            out.insert(name(e).to_owned(), n).is_none(),
            "duplicate {}",
            name(e)
        );
        next = n + 1;
    }
    out
}

fn map<T: Into<u64> + Copy>(pairs: &[(&str, T)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .map(|&(n, v)| (n.to_owned(), v.into()))
        .collect()
}

fn definition<'a>(spec: &'a Value, wanted: &str) -> &'a Value {
    list(spec, "definitions")
        .iter()
        .find(|d| name(d) == wanted)
        .unwrap_or_else(|| panic!("no definition {wanted}"))
}

#[test]
fn family_and_constants() {
    let spec = spec();
    assert_eq!(spec["name"].as_str(), Some(uapi::FAMILY_NAME));
    assert_eq!(spec["protocol"].as_str(), Some("genetlink"));
    let max_len = definition(&spec, "name-max-len");
    assert_eq!(max_len["type"].as_str(), Some("const"));
    assert_eq!(max_len["value"].as_u64(), Some(uapi::NAME_MAX_LEN as u64));
    let ips = definition(&spec, "max-pod-ips");
    assert_eq!(ips["value"].as_u64(), Some(uapi::MAX_POD_IPS as u64));
    let port = definition(&spec, "default-agent-port");
    assert_eq!(port["value"].as_u64(), Some(u64::from(uapi::DEFAULT_AGENT_PORT)));
}

#[test]
fn mode_enum() {
    let spec = spec();
    let mode = definition(&spec, "mode");
    assert_eq!(mode["type"].as_str(), Some("enum"));
    let start = mode["value-start"].as_u64().unwrap_or(0);
    let entries = numbered(list(mode, "entries"), start);
    let expected = map(&[
        ("tlshub", uapi::mode::TLSHUB),
        ("openssl", uapi::mode::OPENSSL),
        ("boringssl", uapi::mode::BORINGSSL),
    ]);
    assert_eq!(entries, expected);
    assert_eq!(
        entries.values().max().copied(),
        Some(uapi::mode::MAX.into())
    );
    // The library's Mode uses the same names and values.
    for m in Mode::ALL {
        assert_eq!(
            entries.get(m.as_str()).copied(),
            Some(u64::from(m.to_wire())),
            "{m}"
        );
    }
}

#[test]
fn attribute_sets() {
    let spec = spec();
    let expected: BTreeMap<&str, (BTreeMap<String, u64>, u16)> = [
        (
            "pod",
            (
                map(&[
                    ("name", uapi::pod::NAME),
                    ("node", uapi::pod::NODE),
                    ("ipv4", uapi::pod::IPV4),
                    ("ipv6", uapi::pod::IPV6),
                ]),
                uapi::pod::MAX,
            ),
        ),
        (
            "node",
            (
                map(&[
                    ("name", uapi::node::NAME),
                    ("ipv4", uapi::node::IPV4),
                    ("ipv6", uapi::node::IPV6),
                    ("port", uapi::node::PORT),
                ]),
                uapi::node::MAX,
            ),
        ),
        (
            "stats",
            (
                map(&[
                    ("pad", uapi::stats::PAD),
                    ("lookups", uapi::stats::LOOKUPS),
                    ("lookup-misses", uapi::stats::LOOKUP_MISSES),
                    ("map-updates", uapi::stats::MAP_UPDATES),
                ]),
                uapi::stats::MAX,
            ),
        ),
        (
            "tlshub",
            (
                map(&[
                    ("mode", uapi::attr::MODE),
                    ("version", uapi::attr::VERSION),
                    ("pod", uapi::attr::POD),
                    ("node", uapi::attr::NODE),
                    ("pod-count", uapi::attr::POD_COUNT),
                    ("node-count", uapi::attr::NODE_COUNT),
                    ("generation", uapi::attr::GENERATION),
                    ("begin", uapi::attr::BEGIN),
                    ("pod-name", uapi::attr::POD_NAME),
                    ("node-name", uapi::attr::NODE_NAME),
                    ("ipv4", uapi::attr::IPV4),
                    ("ipv6", uapi::attr::IPV6),
                    ("stats", uapi::attr::STATS),
                ]),
                uapi::attr::MAX,
            ),
        ),
    ]
    .into_iter()
    .collect();

    let sets = list(&spec, "attribute-sets");
    let names: Vec<&str> = sets.iter().map(name).collect();
    assert_eq!(
        names
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        expected.keys().copied().collect(),
        "attribute sets"
    );
    for set in sets {
        let (attrs, max) = &expected[name(set)];
        let numbers = numbered(list(set, "attributes"), 1);
        assert_eq!(&numbers, attrs, "attribute set {}", name(set));
        assert_eq!(
            numbers.values().max().copied(),
            Some(u64::from(*max)),
            "{} MAX",
            name(set)
        );
    }
}

#[test]
fn commands() {
    let spec = spec();
    let ops = list(&spec["operations"], "list");
    let numbers = numbered(ops, 1);
    let expected = map(&[
        ("mode-get", uapi::cmd::MODE_GET),
        ("mode-set", uapi::cmd::MODE_SET),
        ("status-get", uapi::cmd::STATUS_GET),
        ("map-get", uapi::cmd::MAP_GET),
        ("map-add", uapi::cmd::MAP_ADD),
        ("map-del", uapi::cmd::MAP_DEL),
        ("map-stage", uapi::cmd::MAP_STAGE),
        ("map-commit", uapi::cmd::MAP_COMMIT),
    ]);
    assert_eq!(numbers, expected);
    assert_eq!(
        numbers.values().max().copied(),
        Some(u64::from(uapi::cmd::MAX))
    );
}

#[test]
fn checks_match_constants() {
    let spec = spec();
    let top = list(&spec, "attribute-sets")
        .iter()
        .find(|s| name(s) == "tlshub")
        .expect("tlshub set");
    let mode = list(top, "attributes")
        .iter()
        .find(|a| name(a) == "mode")
        .expect("mode");
    assert_eq!(
        mode["checks"]["max"].as_u64(),
        Some(u64::from(uapi::mode::MAX))
    );
    // Every string is bounded by name-max-len, as the CLI assumes.
    for set in list(&spec, "attribute-sets") {
        for a in list(set, "attributes") {
            if a["type"].as_str() == Some("string") && name(a) != "version" {
                assert_eq!(
                    a["checks"]["max-len"].as_str(),
                    Some("name-max-len"),
                    "{}.{}",
                    name(set),
                    name(a)
                );
            }
        }
    }
}
