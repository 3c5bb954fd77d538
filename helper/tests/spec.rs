//! `spec/uapi.rs` must say exactly what `spec/tlshub.yaml` says: the kernel
//! module and tlshubctl both compile it, and the YAML is the contract. The
//! helper's encoding table (`netlink::schema`) is generated from the YAML at
//! build time (`helper/build.rs`); the tests below read the YAML on their
//! own and check the generator's reading of it field by field, and the
//! library's own enums (Cipher, Mode) against both.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;
use tlshub::netlink::schema::{self, Hint, Type};
use tlshub::{ident, uapi};
use tlshub::{Cipher, Mode};

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
    let psk = definition(&spec, "psk-len");
    assert_eq!(psk["value"].as_u64(), Some(uapi::PSK_LEN as u64));
    assert_eq!(tlshub::psk::PSK_LEN, uapi::PSK_LEN);
    let local = definition(&spec, "max-local-nodes");
    assert_eq!(local["value"].as_u64(), Some(uapi::MAX_LOCAL_NODES as u64));
    let cidrs = definition(&spec, "max-service-cidrs");
    assert_eq!(
        cidrs["value"].as_u64(),
        Some(uapi::MAX_SERVICE_CIDRS as u64)
    );
    let pod_cidrs = definition(&spec, "max-pod-cidrs");
    assert_eq!(
        pod_cidrs["value"].as_u64(),
        Some(uapi::MAX_POD_CIDRS as u64)
    );
    let error = definition(&spec, "error-max-len");
    assert_eq!(error["value"].as_u64(), Some(uapi::ERROR_MAX_LEN as u64));
}

/// The spec has no top-level section, definition or definition type the
/// helper does not know about.
#[test]
fn every_definition_is_known() {
    let spec = spec();
    subset(
        "spec",
        &spec,
        &[
            "name",
            "protocol",
            "doc",
            "definitions",
            "attribute-sets",
            "operations",
            "mcast-groups",
        ],
    );
    let defs = list(&spec, "definitions");
    let consts: BTreeMap<String, u64> = defs
        .iter()
        .filter(|d| d["type"].as_str() == Some("const"))
        .map(|d| {
            (
                name(d).to_owned(),
                d["value"].as_u64().expect("const value"),
            )
        })
        .collect();
    let table: BTreeMap<String, u64> = schema::CONSTS
        .iter()
        .map(|&(n, v)| (n.to_owned(), v))
        .collect();
    assert_eq!(consts, table, "const definitions");
    let enums: BTreeSet<&str> = defs
        .iter()
        .filter(|d| d["type"].as_str() == Some("enum"))
        .map(name)
        .collect();
    assert_eq!(
        enums,
        schema::ENUMS.iter().map(|e| e.name).collect(),
        "enum definitions"
    );
    for d in defs {
        let ty = d["type"].as_str();
        assert!(
            matches!(ty, Some("const" | "enum")),
            "{}: definition type {ty:?}",
            name(d)
        );
        subset(
            name(d),
            d,
            &["type", "name", "doc", "value", "value-start", "entries"],
        );
    }
}

/// Entries of enum definition `wanted`, numbered as YNL does.
fn enum_entries(spec: &Value, wanted: &str) -> BTreeMap<String, u64> {
    let e = definition(spec, wanted);
    assert_eq!(e["type"].as_str(), Some("enum"), "{wanted}");
    let start = e["value-start"].as_u64().unwrap_or(0);
    numbered(list(e, "entries"), start)
}

/// Every enum of the encoder table (built from `spec/uapi.rs`) against the
/// YAML, names and values.
#[test]
fn enums_match_the_table() {
    let spec = spec();
    for e in schema::ENUMS {
        let table: BTreeMap<String, u64> = e
            .entries
            .iter()
            .map(|&(n, v)| (n.to_owned(), u64::from(v)))
            .collect();
        assert_eq!(enum_entries(&spec, e.name), table, "enum {}", e.name);
        for &(n, v) in e.entries {
            assert_eq!(e.name_of(v), Some(n));
            assert_eq!(e.value_of(n), Some(v));
        }
    }
}

#[test]
fn cipher_flow_state_and_role_enums() {
    let spec = spec();
    assert_eq!(
        enum_entries(&spec, "cipher"),
        map(&[
            ("aes-128-gcm", uapi::cipher::AES_128_GCM),
            ("aes-256-gcm", uapi::cipher::AES_256_GCM),
            ("chacha20-poly1305", uapi::cipher::CHACHA20_POLY1305),
        ])
    );
    assert_eq!(
        enum_entries(&spec, "cipher").values().max().copied(),
        Some(u64::from(uapi::cipher::MAX))
    );
    assert_eq!(
        enum_entries(&spec, "flow-state"),
        map(&[
            ("key-wait", uapi::flow_state::KEY_WAIT),
            ("keyed", uapi::flow_state::KEYED),
            ("secured", uapi::flow_state::SECURED),
            ("failed", uapi::flow_state::FAILED),
        ])
    );
    assert_eq!(
        enum_entries(&spec, "role"),
        map(&[
            ("client", uapi::role::CLIENT),
            ("server", uapi::role::SERVER)
        ])
    );
    assert_eq!(
        enum_entries(&spec, "peer-state"),
        map(&[
            ("waiting", uapi::peer_state::WAITING),
            ("established", uapi::peer_state::ESTABLISHED),
            ("expired", uapi::peer_state::EXPIRED),
            ("failed", uapi::peer_state::FAILED),
            ("none", uapi::peer_state::NONE),
        ])
    );
    // The library's Cipher uses the same names and values, for all of them.
    let ciphers = enum_entries(&spec, "cipher");
    assert_eq!(Cipher::ALL.len(), ciphers.len());
    for c in Cipher::ALL {
        assert_eq!(
            ciphers.get(c.as_str()).copied(),
            Some(u64::from(c.to_wire())),
            "{c}"
        );
        assert_eq!(Cipher::from_wire(c.to_wire()), Some(c));
        assert_eq!(c.as_str().parse::<Cipher>(), Ok(c));
    }
}

#[test]
fn mode_enum() {
    let spec = spec();
    let mode = definition(&spec, "mode");
    assert_eq!(mode["type"].as_str(), Some("enum"));
    let start = mode["value-start"].as_u64().unwrap_or(0);
    let entries = numbered(list(mode, "entries"), start);
    assert_eq!(Mode::ALL.len(), entries.len());
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
                    ("netns-cookie", uapi::pod::NETNS_COOKIE),
                    ("pad", uapi::pod::PAD),
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
                    ("flows-seen", uapi::stats::FLOWS_SEEN),
                    ("flows-secured", uapi::stats::FLOWS_SECURED),
                    ("bypass-local-not-pod", uapi::stats::BYPASS_LOCAL_NOT_POD),
                    ("bypass-remote-not-pod", uapi::stats::BYPASS_REMOTE_NOT_POD),
                    ("bypass-same-node", uapi::stats::BYPASS_SAME_NODE),
                    ("key-waits", uapi::stats::KEY_WAITS),
                    ("key-requests", uapi::stats::KEY_REQUESTS),
                    ("install-failures", uapi::stats::INSTALL_FAILURES),
                    ("reset-key-timeout", uapi::stats::RESET_KEY_TIMEOUT),
                    ("reset-install", uapi::stats::RESET_INSTALL),
                    ("reset-stale-sender", uapi::stats::RESET_STALE_SENDER),
                    ("reset-unsupported", uapi::stats::RESET_UNSUPPORTED),
                    ("reset-unload", uapi::stats::RESET_UNLOAD),
                    ("flows-tracked", uapi::stats::FLOWS_TRACKED),
                    ("guard-drops", uapi::stats::GUARD_DROPS),
                    ("reset-guard", uapi::stats::RESET_GUARD),
                    ("reset-key-refused", uapi::stats::RESET_KEY_REFUSED),
                    ("key-resends", uapi::stats::KEY_RESENDS),
                    ("guard-holds", uapi::stats::GUARD_HOLDS),
                    ("reset-key-repeat", uapi::stats::RESET_KEY_REPEAT),
                    ("repeat-window-full", uapi::stats::REPEAT_WINDOW_FULL),
                    ("repeat-window", uapi::stats::REPEAT_WINDOW),
                    ("reset-key-epoch", uapi::stats::RESET_KEY_EPOCH),
                    ("flows-service", uapi::stats::FLOWS_SERVICE),
                    ("service-secured", uapi::stats::SERVICE_SECURED),
                    ("bypass-service", uapi::stats::BYPASS_SERVICE),
                    ("reset-service", uapi::stats::RESET_SERVICE),
                    ("service-records", uapi::stats::SERVICE_RECORDS),
                    ("reset-identity", uapi::stats::RESET_IDENTITY),
                    ("reset-unmapped", uapi::stats::RESET_UNMAPPED),
                    ("reset-fastopen", uapi::stats::RESET_FASTOPEN),
                ]),
                uapi::stats::MAX,
            ),
        ),
        (
            "peer",
            (
                map(&[
                    ("pad", uapi::peer::PAD),
                    ("name", uapi::peer::NAME),
                    ("psk", uapi::peer::PSK),
                    ("epoch", uapi::peer::EPOCH),
                    ("pending", uapi::peer::PENDING),
                    ("lifetime-ms", uapi::peer::LIFETIME_MS),
                    ("error", uapi::peer::ERROR),
                    ("state", uapi::peer::STATE),
                    ("age-ms", uapi::peer::AGE_MS),
                    ("expires-ms", uapi::peer::EXPIRES_MS),
                    ("error-age-ms", uapi::peer::ERROR_AGE_MS),
                    ("local", uapi::peer::LOCAL),
                    ("last-epoch", uapi::peer::LAST_EPOCH),
                ]),
                uapi::peer::MAX,
            ),
        ),
        (
            "flow",
            (
                map(&[
                    ("pad", uapi::flow::PAD),
                    ("role", uapi::flow::ROLE),
                    ("state", uapi::flow::STATE),
                    ("local-ipv4", uapi::flow::LOCAL_IPV4),
                    ("local-ipv6", uapi::flow::LOCAL_IPV6),
                    ("local-port", uapi::flow::LOCAL_PORT),
                    ("remote-ipv4", uapi::flow::REMOTE_IPV4),
                    ("remote-ipv6", uapi::flow::REMOTE_IPV6),
                    ("remote-port", uapi::flow::REMOTE_PORT),
                    ("local-pod", uapi::flow::LOCAL_POD),
                    ("remote-pod", uapi::flow::REMOTE_POD),
                    ("peer-node", uapi::flow::PEER_NODE),
                    ("cipher", uapi::flow::CIPHER),
                    ("age-ms", uapi::flow::AGE_MS),
                    ("mode", uapi::flow::MODE),
                    ("secret", uapi::flow::SECRET),
                    ("client-isn", uapi::flow::CLIENT_ISN),
                    ("server-isn", uapi::flow::SERVER_ISN),
                ]),
                uapi::flow::MAX,
            ),
        ),
        (
            "cidr",
            (
                map(&[
                    ("ipv4", uapi::cidr::IPV4),
                    ("ipv6", uapi::cidr::IPV6),
                    ("prefix-len", uapi::cidr::PREFIX_LEN),
                ]),
                uapi::cidr::MAX,
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
                    ("local-node", uapi::attr::LOCAL_NODE),
                    ("cipher", uapi::attr::CIPHER),
                    ("key-timeout-ms", uapi::attr::KEY_TIMEOUT_MS),
                    ("peer", uapi::attr::PEER),
                    ("flow", uapi::attr::FLOW),
                    ("local-set", uapi::attr::LOCAL_SET),
                    ("service-cidr", uapi::attr::SERVICE_CIDR),
                    ("service-set", uapi::attr::SERVICE_SET),
                    ("pod-cidr", uapi::attr::POD_CIDR),
                    ("pod-set", uapi::attr::POD_SET),
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
        ("node-local-set", uapi::cmd::NODE_LOCAL_SET),
        ("node-local-get", uapi::cmd::NODE_LOCAL_GET),
        ("peer-set", uapi::cmd::PEER_SET),
        ("peer-del", uapi::cmd::PEER_DEL),
        ("peer-get", uapi::cmd::PEER_GET),
        ("config-set", uapi::cmd::CONFIG_SET),
        ("config-get", uapi::cmd::CONFIG_GET),
        ("flows-get", uapi::cmd::FLOWS_GET),
        ("key-request", uapi::cmd::KEY_REQUEST),
        ("peer-fail", uapi::cmd::PEER_FAIL),
        ("flow-key-request", uapi::cmd::FLOW_KEY_REQUEST),
        ("flow-key-set", uapi::cmd::FLOW_KEY_SET),
        ("drain", uapi::cmd::DRAIN),
        ("service-cidr-set", uapi::cmd::SERVICE_CIDR_SET),
        ("service-cidr-get", uapi::cmd::SERVICE_CIDR_GET),
        ("pod-cidr-set", uapi::cmd::POD_CIDR_SET),
        ("pod-cidr-get", uapi::cmd::POD_CIDR_GET),
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
        "{what}: keys the helper does not know: {extra:?} (teach helper/build.rs)"
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
            let e = a["enum"].as_str();
            assert_eq!(t.enumeration.map(|e| e.name), e, "{what} enum");
            if let Some(e) = e {
                // An enum attribute is a u32 whose checks, if any, stay
                // within the enum's values.
                assert_eq!(t.ty, Type::U32, "{what}: enum of a {}", t.ty.name());
                let values = enum_entries(&spec, e);
                let (lo, hi) = (values.values().min(), values.values().max());
                assert!(t.checks.min.is_none_or(|m| Some(&m) == lo), "{what} min");
                assert!(t.checks.max.is_none_or(|m| Some(&m) == hi), "{what} max");
            }
        }
    }
}

/// Names of the attributes listed under `v["attributes"]`, if `v` exists.
fn attr_list(v: &Value) -> Option<Vec<&str>> {
    (!v.is_null()).then(|| {
        v["attributes"]
            .as_sequence()
            .map(|v| v.iter().map(name).collect::<Vec<_>>())
            .unwrap_or_default()
    })
}

/// Per operation: command number, attribute set, admin-perm, which
/// attributes a `do` / `dump` request may carry and its reply does carry,
/// and for the event its attributes and multicast group.
#[test]
fn operations_match_the_encoder_table() {
    let spec = spec();
    let ops = list(&spec["operations"], "list");
    let numbers = numbered(ops, 1);
    assert_eq!(ops.len(), schema::OPS.len());
    subset("operations", &spec["operations"], &["list"]);
    for op in ops {
        let what = name(op);
        subset(
            what,
            op,
            &[
                "name",
                "doc",
                "attribute-set",
                "flags",
                "do",
                "dump",
                "event",
                "mcgrp",
            ],
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
        let names = |ids: Option<&[u16]>| {
            ids.map(|ids| {
                ids.iter()
                    .map(|&id| t.set.get(id).expect("id in set").name)
                    .collect::<Vec<_>>()
            })
        };
        for (mode, request, reply) in [
            ("do", t.do_request, t.do_reply),
            ("dump", t.dump_request, t.dump_reply),
        ] {
            let m = &op[mode];
            if !m.is_null() {
                subset(&format!("{what} {mode}"), m, &["request", "reply"]);
            }
            // A mode without a `request` takes none: an empty list.
            let yaml_request = (!m.is_null()).then(|| attr_list(&m["request"]).unwrap_or_default());
            assert_eq!(
                names(request),
                yaml_request,
                "{what} {mode} request attributes"
            );
            assert_eq!(
                names(reply),
                attr_list(&m["reply"]),
                "{what} {mode} reply attributes"
            );
        }
        assert_eq!(names(t.event), attr_list(&op["event"]), "{what} event");
        if !op["event"].is_null() {
            subset(&format!("{what} event"), &op["event"], &["attributes"]);
        }
        assert_eq!(t.mcgrp, op["mcgrp"].as_str(), "{what} mcgrp");
        // An event goes to a group and is nothing else; a group has events.
        assert_eq!(t.event.is_some(), t.mcgrp.is_some(), "{what}");
        if t.event.is_some() {
            assert!(t.do_request.is_none() && t.dump_request.is_none(), "{what}");
        }
    }
}

#[test]
fn multicast_groups() {
    let spec = spec();
    subset("mcast-groups", &spec["mcast-groups"], &["list"]);
    let groups = list(&spec["mcast-groups"], "list");
    for g in groups {
        // `flags: [admin-perm]` (CAP_NET_ADMIN to join) is the kernel's
        // business; the helper only needs the name.
        subset(name(g), g, &["name", "doc", "flags"]);
        let flags = g["flags"].as_sequence().cloned().unwrap_or_default();
        assert!(
            flags.iter().all(|f| f.as_str() == Some("admin-perm")),
            "{}: flags {flags:?}",
            name(g)
        );
    }
    let names: Vec<&str> = groups.iter().map(name).collect();
    assert_eq!(names, schema::MCAST_GROUPS, "multicast groups, in order");
    assert_eq!(names, [uapi::MCGRP_KEYS]);
    for op in schema::OPS {
        if let Some(group) = op.mcgrp {
            assert!(names.contains(&group), "{}: group {group}", op.name);
        }
    }
    assert_eq!(schema::KEY_REQUEST.mcgrp, Some(uapi::MCGRP_KEYS));
}

/// `key-timeout-ms` and `cipher` bounds, as the CLI and capture.conf check
/// them before anything is sent.
#[test]
fn datapath_setting_bounds() {
    let spec = spec();
    let top = list(&spec, "attribute-sets")
        .iter()
        .find(|s| name(s) == "tlshub")
        .expect("tlshub set");
    let attr = |wanted: &str| {
        list(top, "attributes")
            .iter()
            .find(|a| name(a) == wanted)
            .unwrap_or_else(|| panic!("{wanted}"))
            .clone()
    };
    let timeout = attr("key-timeout-ms");
    assert_eq!(
        timeout["checks"]["min"].as_u64(),
        Some(u64::from(schema::KEY_TIMEOUT_MS_MIN))
    );
    assert_eq!(
        timeout["checks"]["max"].as_u64(),
        Some(u64::from(schema::KEY_TIMEOUT_MS_MAX))
    );
    let cipher = attr("cipher");
    assert_eq!(
        cipher["checks"]["min"].as_u64(),
        Some(u64::from(uapi::cipher::AES_128_GCM))
    );
    assert_eq!(
        cipher["checks"]["max"].as_u64(),
        Some(u64::from(uapi::cipher::MAX))
    );
    let psk = list(
        &list(&spec, "attribute-sets")
            .iter()
            .find(|s| name(s) == "peer")
            .expect("peer set")
            .clone(),
        "attributes",
    )
    .iter()
    .find(|a| name(a) == "psk")
    .expect("psk")
    .clone();
    assert_eq!(
        bound(&spec, &psk["checks"]["exact-len"]),
        uapi::PSK_LEN as u64
    );
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
