//! `spec/uapi.rs` and the helper's encoding table (`netlink::schema`) must
//! say exactly what `spec/tlshub.yaml` says: the kernel module and tlshubctl
//! both compile the former, tlshubctl encodes every request by the latter,
//! and the YAML is the contract.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;
use tlshub::netlink::schema::{self, Hint, Type};
use tlshub::Mode;
use tlshub::{ident, uapi};

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/tlshub.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).expect("spec is valid YAML")
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
    let pod_max = definition(&spec, "pod-name-max-len");
    assert_eq!(
        pod_max["value"].as_u64(),
        Some(uapi::POD_NAME_MAX_LEN as u64)
    );
    // The shared identity rules use the same limits.
    assert_eq!(uapi::POD_NAME_MAX_LEN, ident::POD_NAME_MAX_LEN);
    assert_eq!(uapi::NAME_MAX_LEN, ident::SUBDOMAIN_MAX_LEN);
    let ips = definition(&spec, "max-pod-ips");
    assert_eq!(ips["value"].as_u64(), Some(uapi::MAX_POD_IPS as u64));
    let port = definition(&spec, "default-agent-port");
    assert_eq!(
        port["value"].as_u64(),
        Some(u64::from(uapi::DEFAULT_AGENT_PORT))
    );
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
                    ("host-network", uapi::pod::HOST_NETWORK),
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

/// A `checks` bound: a number, or the name of a `const` definition.
fn bound(spec: &Value, v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| {
        let name = v.as_str().expect("bound is a number or a const name");
        definition(spec, name)["value"]
            .as_u64()
            .expect("const value")
    })
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_mapping()
        .map(|m| m.keys().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn subset(what: &str, v: &Value, known: &[&str]) {
    let extra: Vec<&str> = keys(v).into_iter().filter(|k| !known.contains(k)).collect();
    assert!(
        extra.is_empty(),
        "{what}: keys the helper does not know: {extra:?} (teach netlink::schema)"
    );
}

/// Every attribute of every set: type, nesting, multi-attr, byte order,
/// display hint and checks, against the table the encoder uses.
#[test]
fn attribute_details_match_the_encoder_table() {
    let spec = spec();
    let sets = list(&spec, "attribute-sets");
    assert_eq!(
        sets.iter().map(name).collect::<BTreeSet<_>>(),
        schema::SETS.iter().map(|s| s.name).collect(),
        "attribute sets"
    );
    for set in sets {
        let table = schema::SETS
            .iter()
            .find(|s| s.name == name(set))
            .expect("set in table");
        let attrs = list(set, "attributes");
        let numbers = numbered(attrs, 1);
        assert_eq!(
            attrs.len(),
            table.attrs.len(),
            "{} attribute count",
            table.name
        );
        for a in attrs {
            let what = format!("{}.{}", table.name, name(a));
            subset(
                &what,
                a,
                &[
                    "name",
                    "doc",
                    "type",
                    "checks",
                    "multi-attr",
                    "byte-order",
                    "display-hint",
                    "nested-attributes",
                    "enum",
                    "value",
                ],
            );
            let t = table
                .by_name(name(a))
                .unwrap_or_else(|| panic!("{what} missing from the table"));
            assert_eq!(u64::from(t.id), numbers[name(a)], "{what} number");
            assert_eq!(Some(t.ty.name()), a["type"].as_str(), "{what} type");
            let nested = match t.ty {
                Type::Nest(set) => Some(set.name),
                _ => None,
            };
            assert_eq!(nested, a["nested-attributes"].as_str(), "{what} nest");
            assert_eq!(
                t.multi,
                a["multi-attr"].as_bool().unwrap_or(false),
                "{what} multi-attr"
            );
            let order = a["byte-order"].as_str();
            assert!(
                matches!(order, None | Some("big-endian")),
                "{what}: {order:?}"
            );
            assert_eq!(
                t.big_endian,
                order == Some("big-endian"),
                "{what} byte order"
            );
            let hint = match a["display-hint"].as_str() {
                None => Hint::None,
                Some("ipv4") => Hint::Ipv4,
                Some("ipv6") => Hint::Ipv6,
                Some(h) => panic!("{what}: unknown display hint {h}"),
            };
            assert_eq!(t.hint, hint, "{what} display hint");
            let checks = &a["checks"];
            subset(&what, checks, &["max-len", "exact-len", "min", "max"]);
            let get = |k: &str| (!checks[k].is_null()).then(|| bound(&spec, &checks[k]));
            assert_eq!(
                t.checks.max_len.map(|n| n as u64),
                get("max-len"),
                "{what} max-len"
            );
            assert_eq!(
                t.checks.exact_len.map(|n| n as u64),
                get("exact-len"),
                "{what} exact-len"
            );
            assert_eq!(t.checks.min, get("min"), "{what} min");
            assert_eq!(t.checks.max, get("max"), "{what} max");
        }
    }
}

/// Per operation: command number, attribute set, admin-perm, and which
/// attributes a `do` / `dump` request may carry.
#[test]
fn operations_match_the_encoder_table() {
    let spec = spec();
    let ops = list(&spec["operations"], "list");
    let numbers = numbered(ops, 1);
    assert_eq!(ops.len(), schema::OPS.len());
    for op in ops {
        let what = name(op);
        subset(
            what,
            op,
            &["name", "doc", "attribute-set", "flags", "do", "dump"],
        );
        let t = schema::OPS
            .iter()
            .find(|o| o.name == what)
            .unwrap_or_else(|| panic!("op {what} missing from the table"));
        assert_eq!(u64::from(t.cmd), numbers[what], "{what} cmd");
        assert_eq!(Some(t.set.name), op["attribute-set"].as_str(), "{what} set");
        let flags: Vec<&str> = op["flags"]
            .as_sequence()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            flags.iter().all(|f| *f == "admin-perm"),
            "{what}: {flags:?}"
        );
        assert_eq!(t.admin, flags.contains(&"admin-perm"), "{what} admin-perm");
        for (mode, table) in [("do", t.do_request), ("dump", t.dump_request)] {
            let m = &op[mode];
            let yaml = (!m.is_null()).then(|| {
                subset(&format!("{what} {mode}"), m, &["request", "reply"]);
                m["request"]["attributes"]
                    .as_sequence()
                    .map(|v| v.iter().map(name).collect::<Vec<_>>())
                    .unwrap_or_default()
            });
            let table = table.map(|ids| {
                ids.iter()
                    .map(|&id| t.set.get(id).expect("id in set").name)
                    .collect::<Vec<_>>()
            });
            assert_eq!(table, yaml, "{what} {mode} request attributes");
        }
    }
}

#[test]
fn mode_check_matches_enum() {
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
}
