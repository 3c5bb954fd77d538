//! `kmod/state/ident.rs`, the identity rules the kernel module and tlshubctl
//! share (compiled into the library as `tlshub::ident`): which pod and node
//! names are valid, and the canonical form of an address.

use std::net::Ipv6Addr;

use tlshub::mapping::{check_node_name, check_pod_name};
use tlshub::{ident, uapi};

fn node(name: &str) -> bool {
    ident::valid_node_name(name.as_bytes())
}

fn pod(name: &str) -> bool {
    ident::valid_pod_name(name.as_bytes())
}

/// A subdomain of exactly `len` bytes: labels of `a`s joined by dots.
fn subdomain(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push(if s.len() % 60 == 59 && s.len() + 1 < len {
            '.'
        } else {
            'a'
        });
    }
    s
}

#[test]
fn limits_agree_everywhere() {
    assert_eq!(ident::LABEL_MAX_LEN, 63);
    assert_eq!(ident::SUBDOMAIN_MAX_LEN, 253);
    assert_eq!(ident::POD_NAME_MAX_LEN, 317);
    assert_eq!(uapi::POD_NAME_MAX_LEN, ident::POD_NAME_MAX_LEN);
    assert_eq!(uapi::NAME_MAX_LEN, ident::SUBDOMAIN_MAX_LEN);
    // And the YAML's pod-name-max-len (tests/spec.rs checks uapi against
    // the whole spec; this ties the const to ident directly).
    let yaml = include_str!("../../spec/tlshub.yaml");
    let at = yaml.find("name: pod-name-max-len").expect("const in spec");
    let value = yaml[at..]
        .lines()
        .find_map(|l| l.trim().strip_prefix("value: "))
        .expect("value");
    assert_eq!(value.parse::<usize>().unwrap(), ident::POD_NAME_MAX_LEN);
}

#[test]
fn node_names() {
    for ok in [
        "a",
        "0",
        "node-1",
        "worker.example.com",
        "1.2.3",
        "a-b--c",
        &subdomain(253),
        &"a".repeat(253),
    ] {
        assert!(node(ok), "{ok}");
    }
    for bad in [
        "",
        "A",
        "Node-1",
        "-a",
        "a-",
        "a..b",
        ".a",
        "a.",
        "a.-b",
        "a_b",
        "a b",
        "ns/name",
        "wéb",
        &subdomain(254),
        &"a".repeat(254),
    ] {
        assert!(!node(bad), "{bad}");
    }
}

#[test]
fn pod_names() {
    let ns63 = "n".repeat(63);
    let longest = format!("{ns63}/{}", subdomain(253));
    assert_eq!(longest.len(), 317);
    for ok in [
        "web-1",
        "default/web-1",
        "kube-system/coredns-5dd5756b68-x2k4p",
        "shop/redis-0",
        "a/b",
        "ns/a.b.c",
        "0/0",
        &format!("{ns63}/x"),
        &subdomain(253),
        &longest,
    ] {
        assert!(pod(ok), "{ok}");
    }
    for bad in [
        "",
        "/web",
        "ns/",
        "/",
        "ns/a/b",
        "a.b/web",
        "-ns/web",
        "ns-/web",
        "NS/web",
        "ns/Web",
        "ns/-web",
        "ns//web",
        "ns/web.",
        &format!("{}/x", "n".repeat(64)),
        &format!("ns/{}", subdomain(254)),
        &format!("{ns63}/{}", subdomain(254)),
        &subdomain(254),
    ] {
        assert!(!pod(bad), "{bad}");
    }
}

#[test]
fn v4_mapped() {
    let mapped = |s: &str| ident::v4_mapped(&s.parse::<Ipv6Addr>().unwrap().octets());
    assert_eq!(mapped("::ffff:10.0.0.1"), Some([10, 0, 0, 1]));
    assert_eq!(mapped("::ffff:0a00:0001"), Some([10, 0, 0, 1]));
    assert_eq!(mapped("::ffff:255.255.255.255"), Some([255; 4]));
    assert_eq!(mapped("::ffff:0.0.0.0"), Some([0; 4]));
    for not in [
        "::10.0.0.1",        // IPv4-compatible (deprecated), not mapped
        "::ffff:0:10.0.0.1", // SIIT IPv4-translated
        "64:ff9b::10.0.0.1", // NAT64
        "1::ffff:10.0.0.1",  // not all-zero in front
        "::fffe:10.0.0.1",
        "fd00::1",
        "::",
        "::1",
    ] {
        assert_eq!(mapped(not), None, "{not}");
    }
}

/// The helper's checks (which word the errors) accept exactly what the
/// shared rules accept: every string of up to 5 characters over an alphabet
/// that hits each rule.
#[test]
fn helper_checks_agree_with_ident() {
    const ALPHABET: &[u8] = b"a0-./A_";
    let mut names = vec![String::new()];
    for _ in 0..5 {
        let longer: Vec<String> = names
            .iter()
            .filter(|n| n.len() == names.last().map_or(0, String::len))
            .flat_map(|n| ALPHABET.iter().map(move |&c| format!("{n}{}", c as char)))
            .collect();
        names.extend(longer);
    }
    assert!(names.len() > 19_000);
    for n in &names {
        assert_eq!(check_pod_name(n).is_ok(), pod(n), "pod {n:?}");
        assert_eq!(check_node_name(n).is_ok(), node(n), "node {n:?}");
    }
    // And at the length limits.
    let ns63 = "n".repeat(63);
    for n in [
        format!("{ns63}/{}", subdomain(253)),
        format!("{ns63}n/a"),
        format!("{ns63}/{}", subdomain(254)),
        subdomain(253),
        subdomain(254),
    ] {
        assert_eq!(
            check_pod_name(&n).is_ok(),
            pod(&n),
            "pod of {} bytes",
            n.len()
        );
        assert_eq!(
            check_node_name(&n).is_ok(),
            node(&n),
            "node of {} bytes",
            n.len()
        );
    }
}
