//! Generates the `tlshub` family's schema table (`netlink::schema`) from the
//! YNL spec, `spec/tlshub.yaml`: definitions, attribute sets, operations
//! and multicast groups, numbered as YNL numbers them. A spec this script
//! does not understand fails the build, naming the place.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

const SPEC: &str = "../spec/tlshub.yaml";

fn main() {
    println!("cargo:rerun-if-changed={SPEC}");
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(SPEC).unwrap_or_else(|e| fail("", &e.to_string()));
    let spec: Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| fail("", &format!("not YAML: {e}")));
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    for (file, code) in [("schema.rs", generate(&spec)), ("stats.rs", stats(&spec))] {
        let path = Path::new(&out).join(file);
        if let Err(e) = std::fs::write(&path, code) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// `netlink::Stats`: a field per counter of the `stats` set (u64 each; the
/// pad skipped), `counters()` and the field of each attribute id.
fn stats(spec: &Value) -> String {
    let set = list(spec, "attribute-sets", "attribute-sets")
        .iter()
        .find(|s| s["name"].as_str() == Some("stats"))
        .unwrap_or_else(|| fail("attribute-sets", "no 'stats' set"));
    let attrs = list(set, "attributes", "attribute-sets[stats]");
    let numbers = numbered(attrs, 1, "attribute-sets[stats].attributes");
    let (mut fields, mut counters, mut slots) = (String::new(), Vec::new(), String::new());
    for (a, (n, id)) in attrs.iter().zip(numbers) {
        match a["type"].as_str() {
            Some("pad") => continue,
            Some("u64") => {}
            _ => fail(
                &format!("attribute-sets[stats].attributes[{n}]"),
                "not a u64",
            ),
        }
        let field = n.replace('-', "_");
        if let Some(doc) = a["doc"].as_str() {
            writeln!(fields, "    #[doc = {doc:?}]").unwrap();
        }
        writeln!(fields, "    pub {field}: u64,").unwrap();
        counters.push(format!("({n:?}, self.{field})"));
        writeln!(slots, "            {id} => &mut self.{field},").unwrap();
    }
    format!(
        "/// Counters since the module was loaded (`stats` nest). Counters the\n\
         /// module does not send read 0.\n\
         #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]\n\
         pub struct Stats {{\n{fields}}}\n\n\
         impl Stats {{\n\
         \x20   /// Every counter with its attribute name in the spec, in spec order.\n\
         \x20   pub fn counters(&self) -> [(&'static str, u64); {}] {{\n        [{}]\n    }}\n\n\
         \x20   /// The counter of `stats` attribute `id`.\n\
         \x20   fn slot(&mut self, id: u16) -> Option<&mut u64> {{\n        Some(match id {{\n{slots}\
         \x20           _ => return None,\n        }})\n    }}\n}}\n",
        counters.len(),
        counters.join(", ")
    )
}

/// Stops the build: `spec/tlshub.yaml: attribute-sets[pod].attributes[ipv4]: ...`.
fn fail(place: &str, what: &str) -> ! {
    let place = if place.is_empty() {
        String::new()
    } else {
        format!(" {place}:")
    };
    eprintln!("error: spec/tlshub.yaml:{place} {what}");
    std::process::exit(1)
}

/// `mode-get` → `MODE_GET`.
fn ident(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

fn map<'a>(v: &'a Value, place: &str) -> &'a Mapping {
    v.as_mapping()
        .unwrap_or_else(|| fail(place, "expected a mapping"))
}

/// Refuses keys the generator does not know: they could change the wire
/// format unnoticed.
fn known(v: &Value, place: &str, keys: &[&str]) {
    for k in map(v, place).keys() {
        let k = k.as_str().unwrap_or_else(|| fail(place, "non-string key"));
        if !keys.contains(&k) {
            fail(place, &format!("unknown key '{k}' (teach helper/build.rs)"));
        }
    }
}

fn list<'a>(v: &'a Value, key: &str, place: &str) -> &'a [Value] {
    match &v[key] {
        Value::Null => &[],
        Value::Sequence(s) => s,
        _ => fail(place, &format!("'{key}' is not a list")),
    }
}

fn string<'a>(v: &'a Value, key: &str, place: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| fail(place, &format!("'{key}' missing or not a string")))
}

/// A list entry's name: `name:` of a mapping, or the entry itself.
fn name<'a>(v: &'a Value, place: &str) -> &'a str {
    v.as_str()
        .or_else(|| v["name"].as_str())
        .unwrap_or_else(|| fail(place, "entry without a name"))
}

fn flag(v: &Value, key: &str, place: &str) -> bool {
    match &v[key] {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => fail(place, &format!("'{key}' is not a boolean")),
    }
}

/// YNL numbering: from `start` in list order, `value:` resetting it.
fn numbered<'a>(entries: &'a [Value], start: u64, place: &str) -> Vec<(&'a str, u64)> {
    let mut next = start;
    let mut out: Vec<(&str, u64)> = Vec::new();
    for e in entries {
        let n = name(e, place);
        let v = match &e["value"] {
            Value::Null => next,
            v => v
                .as_u64()
                .unwrap_or_else(|| fail(&format!("{place}[{n}]"), "'value' is not a number")),
        };
        if out.iter().any(|&(m, w)| m == n || w == v) {
            fail(&format!("{place}[{n}]"), "duplicate name or value");
        }
        out.push((n, v));
        next = v + 1;
    }
    out
}

struct Spec<'a> {
    consts: BTreeMap<&'a str, u64>,
    enums: BTreeMap<&'a str, Vec<(&'a str, u64)>>,
    /// Attribute set name → (attribute name, id).
    sets: BTreeMap<&'a str, Vec<(&'a str, u64)>>,
}

fn generate(spec: &Value) -> String {
    known(
        spec,
        "top level",
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
    if spec["protocol"].as_str() != Some("genetlink") {
        fail("protocol", "only genetlink is supported");
    }
    let mut s = Spec {
        consts: BTreeMap::new(),
        enums: BTreeMap::new(),
        sets: BTreeMap::new(),
    };
    let mut out = String::from("// Generated by helper/build.rs from spec/tlshub.yaml.\n\n");
    let w = &mut out;

    // Definitions: consts and enums.
    let mut enum_names = Vec::new();
    for d in list(spec, "definitions", "definitions") {
        let n = name(d, "definitions");
        let place = format!("definitions[{n}]");
        known(
            d,
            &place,
            &["type", "name", "doc", "value", "value-start", "entries"],
        );
        match d["type"].as_str() {
            Some("const") => {
                let v = d["value"]
                    .as_u64()
                    .unwrap_or_else(|| fail(&place, "const without a numeric value"));
                s.consts.insert(n, v);
            }
            Some("enum") => {
                let start = d["value-start"].as_u64().unwrap_or(0);
                let entries = list(d, "entries", &place);
                for e in entries.iter().filter(|e| e.is_mapping()) {
                    known(
                        e,
                        &format!("{place}.entries[{}]", name(e, &place)),
                        &["name", "doc", "value"],
                    );
                }
                let entries = numbered(entries, start, &format!("{place}.entries"));
                let items: Vec<String> = entries
                    .iter()
                    .map(|(e, v)| format!("({e:?}, {v})"))
                    .collect();
                writeln!(
                    w,
                    "pub static {}_ENUM: Enum = Enum {{ name: {n:?}, entries: &[{}] }};",
                    ident(n),
                    items.join(", ")
                )
                .unwrap();
                s.enums.insert(n, entries);
                enum_names.push(n);
            }
            t => fail(&place, &format!("definition type {t:?} not supported")),
        }
    }
    let consts: Vec<String> = list(spec, "definitions", "definitions")
        .iter()
        .filter(|d| d["type"].as_str() == Some("const"))
        .map(|d| {
            let n = name(d, "definitions");
            format!("({n:?}, {})", s.consts[n])
        })
        .collect();
    writeln!(
        w,
        "/// Every `const` definition of the spec, by name.\npub static CONSTS: [(&str, u64); {}] = [{}];",
        consts.len(),
        consts.join(", ")
    )
    .unwrap();
    let enums: Vec<String> = enum_names
        .iter()
        .map(|n| format!("&{}_ENUM", ident(n)))
        .collect();
    writeln!(
        w,
        "/// Every enum definition of the spec.\npub static ENUMS: [&Enum; {}] = [{}];",
        enums.len(),
        enums.join(", ")
    )
    .unwrap();

    // Attribute sets: numbered first, so that nests may refer to any set.
    let sets = list(spec, "attribute-sets", "attribute-sets");
    for set in sets {
        let n = name(set, "attribute-sets");
        let place = format!("attribute-sets[{n}]");
        known(set, &place, &["name", "doc", "attributes"]);
        let attrs = list(set, "attributes", &place);
        s.sets
            .insert(n, numbered(attrs, 1, &format!("{place}.attributes")));
    }
    for set in sets {
        let n = name(set, "attribute-sets");
        let mut items = Vec::new();
        for (a, &(attr_name, id)) in list(set, "attributes", "").iter().zip(&s.sets[n]) {
            items.push(attribute(
                &s,
                a,
                id,
                &format!("attribute-sets[{n}].attributes[{attr_name}]"),
            ));
        }
        writeln!(
            w,
            "pub static {}: AttrSet = AttrSet {{ name: {n:?}, attrs: &[\n{}] }};",
            ident(n),
            items.join("")
        )
        .unwrap();
    }
    let set_refs: Vec<String> = sets
        .iter()
        .map(|set| format!("&{}", ident(name(set, ""))))
        .collect();
    writeln!(
        w,
        "/// Every attribute set of the spec.\npub static SETS: [&AttrSet; {}] = [{}];",
        set_refs.len(),
        set_refs.join(", ")
    )
    .unwrap();

    // Multicast groups.
    let mcast = &spec["mcast-groups"];
    known(mcast, "mcast-groups", &["list"]);
    let mut groups = Vec::new();
    for g in list(mcast, "list", "mcast-groups") {
        let n = name(g, "mcast-groups");
        let place = format!("mcast-groups[{n}]");
        known(g, &place, &["name", "doc", "flags"]);
        // `admin-perm` (CAP_NET_ADMIN to join) is the kernel's business.
        for f in list(g, "flags", &place) {
            if f.as_str() != Some("admin-perm") {
                fail(&place, &format!("flag {f:?} not supported"));
            }
        }
        groups.push(n);
    }
    writeln!(
        w,
        "/// Multicast groups (`mcast-groups`), in spec order.\npub static MCAST_GROUPS: [&str; {}] = {groups:?};",
        groups.len()
    )
    .unwrap();

    // Operations.
    let ops = &spec["operations"];
    known(ops, "operations", &["list"]);
    let ops = list(ops, "list", "operations");
    let numbers = numbered(ops, 1, "operations");
    for (op, &(n, cmd)) in ops.iter().zip(&numbers) {
        let place = format!("operations[{n}]");
        known(
            op,
            &place,
            &[
                "name",
                "doc",
                "attribute-set",
                "flags",
                "do",
                "dump",
                "event",
                "mcgrp",
                "value",
            ],
        );
        let set = string(op, "attribute-set", &place);
        let attrs = s
            .sets
            .get(set)
            .unwrap_or_else(|| fail(&place, &format!("no attribute set '{set}'")));
        let mut admin = false;
        for f in list(op, "flags", &place) {
            match f.as_str() {
                Some("admin-perm") => admin = true,
                _ => fail(&place, &format!("flag {f:?} not supported")),
            }
        }
        // The ids of the attributes listed under `v.attributes`.
        let ids = |v: &Value, what: &str| -> String {
            let place = format!("{place}.{what}");
            known(v, &place, &["attributes"]);
            let ids: Vec<String> = list(v, "attributes", &place)
                .iter()
                .map(|a| {
                    let a = name(a, &place);
                    let id = attrs
                        .iter()
                        .find(|(n, _)| *n == a)
                        .unwrap_or_else(|| fail(&place, &format!("no attribute '{a}' in {set}")))
                        .1;
                    id.to_string()
                })
                .collect();
            format!("Some(&[{}])", ids.join(", "))
        };
        let mut modes = BTreeMap::new();
        for mode in ["do", "dump"] {
            let m = &op[mode];
            let (request, reply) = if m.is_null() {
                ("None".to_owned(), "None".to_owned())
            } else {
                known(m, &format!("{place}.{mode}"), &["request", "reply"]);
                // A mode without a `request` takes none: an empty list.
                let request = match &m["request"] {
                    Value::Null => "Some(&[])".to_owned(),
                    r => ids(r, &format!("{mode}.request")),
                };
                let reply = match &m["reply"] {
                    Value::Null => "None".to_owned(),
                    r => ids(r, &format!("{mode}.reply")),
                };
                (request, reply)
            };
            modes.insert(mode, (request, reply));
        }
        let event = match &op["event"] {
            Value::Null => "None".to_owned(),
            e => ids(e, "event"),
        };
        let mcgrp = match &op["mcgrp"] {
            Value::Null => None,
            g => Some(
                g.as_str()
                    .unwrap_or_else(|| fail(&place, "mcgrp is not a string")),
            ),
        };
        if let Some(g) = mcgrp {
            if !groups.contains(&g) {
                fail(&place, &format!("no multicast group '{g}'"));
            }
        }
        if (event != "None") != mcgrp.is_some() {
            fail(&place, "an event needs an mcgrp, and an mcgrp an event");
        }
        if cmd > u64::from(u8::MAX) {
            fail(&place, "command number above 255");
        }
        writeln!(
            w,
            "pub static {}: Op = Op {{ name: {n:?}, cmd: {cmd}, set: &{}, admin: {admin}, \
             do_request: {}, do_reply: {}, dump_request: {}, dump_reply: {}, event: {event}, mcgrp: {mcgrp:?} }};",
            ident(n),
            ident(set),
            modes["do"].0,
            modes["do"].1,
            modes["dump"].0,
            modes["dump"].1,
        )
        .unwrap();
    }
    let op_refs: Vec<String> = numbers
        .iter()
        .map(|(n, _)| format!("&{}", ident(n)))
        .collect();
    writeln!(
        w,
        "/// Every operation, in spec order.\npub static OPS: [&Op; {}] = [{}];",
        op_refs.len(),
        op_refs.join(", ")
    )
    .unwrap();
    out
}

/// One `Attr { .. },` of a set.
fn attribute(s: &Spec<'_>, a: &Value, id: u64, place: &str) -> String {
    known(
        a,
        place,
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
    let id = u16::try_from(id)
        .ok()
        .filter(|&id| id & 0xc000 == 0)
        .unwrap_or_else(|| fail(place, "attribute number out of range"));
    let ty = match string(a, "type", place) {
        t @ ("flag" | "u8" | "u16" | "u32" | "u64" | "string" | "binary" | "pad") => {
            let mut t = t.to_owned();
            t[..1].make_ascii_uppercase();
            format!("Type::{t}")
        }
        "nest" => {
            let set = string(a, "nested-attributes", place);
            if !s.sets.contains_key(set) {
                fail(place, &format!("no attribute set '{set}'"));
            }
            format!("Type::Nest(&{})", ident(set))
        }
        t => fail(place, &format!("type '{t}' not supported")),
    };
    if !ty.starts_with("Type::Nest") && !a["nested-attributes"].is_null() {
        fail(
            place,
            "nested-attributes on an attribute that is not a nest",
        );
    }
    let big_endian = match a["byte-order"].as_str() {
        None => false,
        Some("big-endian") => true,
        Some(o) => fail(place, &format!("byte order '{o}' not supported")),
    };
    if big_endian && !matches!(ty.as_str(), "Type::U16" | "Type::U32") {
        fail(place, "big-endian is supported for u16 and u32 only");
    }
    let hint = match a["display-hint"].as_str() {
        None => "None",
        Some("ipv4") => "Ipv4",
        Some("ipv6") => "Ipv6",
        Some(h) => fail(place, &format!("display hint '{h}' not supported")),
    };
    let checks = &a["checks"];
    if !checks.is_null() {
        known(
            checks,
            &format!("{place}.checks"),
            &["max-len", "exact-len", "min", "max"],
        );
    }
    // A bound: a number, or the name of a const definition.
    let bound = |key: &str| -> String {
        match &checks[key] {
            Value::Null => "None".to_owned(),
            Value::Number(n) => format!(
                "Some({})",
                n.as_u64()
                    .unwrap_or_else(|| fail(place, &format!("{key} is not a natural number")))
            ),
            Value::String(c) => format!(
                "Some({})",
                s.consts
                    .get(c.as_str())
                    .unwrap_or_else(|| fail(place, &format!("{key}: no const '{c}'")))
            ),
            _ => fail(place, &format!("{key} is neither a number nor a const")),
        }
    };
    let enumeration = match a["enum"].as_str() {
        None => "None".to_owned(),
        Some(e) => {
            if !s.enums.contains_key(e) {
                fail(place, &format!("no enum '{e}'"));
            }
            if ty != "Type::U32" {
                fail(place, "an enum attribute must be a u32");
            }
            format!("Some(&{}_ENUM)", ident(e))
        }
    };
    format!(
        "    Attr {{ name: {:?}, id: {id}, ty: {ty}, multi: {}, big_endian: {big_endian}, hint: Hint::{hint}, \
         checks: Checks {{ max_len: {}, exact_len: {}, min: {}, max: {} }}, enumeration: {enumeration} }},\n",
        name(a, place),
        flag(a, "multi-attr", place),
        bound("max-len"),
        bound("exact-len"),
        bound("min"),
        bound("max"),
    )
}
