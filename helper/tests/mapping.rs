//! The pod-node mapping parser and the seed's print format.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use tlshub::mapping::{Node, Pod, PodNodeTable, SeedTable};
use tlshub::SourceError;

/// The seed's documented example, with its header and a comment.
const SEED_EXAMPLE: &str = "\
# pod-node mapping
pod_name node_name
web-pod-1 node-1
web-pod-2 node-1
api-pod-1 node-2
";

/// What the seed's `print_pod_node_mapping` printed for it, byte for byte
/// (`%-30s %-30s\n` keeps the trailing padding).
const SEED_PRINT: &str = "Pod-Node Mapping Table (3 entries):\n\
Pod Name                       Node Name                     \n\
------------------------------------------------------------\n\
web-pod-1                      node-1                        \n\
web-pod-2                      node-1                        \n\
api-pod-1                      node-2                        \n";

fn parse(text: &str) -> PodNodeTable {
    PodNodeTable::parse_str(text, "m.conf").unwrap_or_else(|e| panic!("{e}"))
}

/// The `FILE:LINE: message` of a file that must be rejected.
fn error(text: &str) -> String {
    match PodNodeTable::parse_str(text, "m.conf") {
        Ok(t) => panic!("accepted: {t:?}"),
        Err(e) => e.to_string(),
    }
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tlshub-test-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn seed_example_prints_like_the_seed() {
    let table = parse(SEED_EXAMPLE);
    assert_eq!(table.to_string(), SEED_PRINT);
    let mut out = Vec::new();
    table.print(&mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), SEED_PRINT);
}

#[test]
fn long_names_are_padded_never_truncated() {
    let table = parse("a-pod-name-that-is-longer-than-thirty-chars node-1\n");
    assert_eq!(
        table
            .to_string()
            .lines()
            .nth(3)
            .map(|l| format!("{l}\n"))
            .unwrap(),
        "a-pod-name-that-is-longer-than-thirty-chars node-1                        \n"
    );
}

#[test]
fn empty_table_prints_header_only() {
    let table = parse("# nothing\n\n");
    assert!(table.is_empty());
    assert_eq!(
        table.to_string(),
        "Pod-Node Mapping Table (0 entries):\n\
         Pod Name                       Node Name                     \n\
         ------------------------------------------------------------\n"
    );
    assert_eq!(SeedTable(&[]).to_string(), table.to_string());
}

#[test]
fn lookups() {
    let table = parse(SEED_EXAMPLE);
    assert_eq!(table.node_of("web-pod-2"), Some("node-1"));
    assert_eq!(table.node_of("api-pod-1"), Some("node-2"));
    assert_eq!(table.node_of("nope"), None);
    assert_eq!(table.len(), 3);
    let names: Vec<&str> = table.pods().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web-pod-1", "web-pod-2", "api-pod-1"], "file order");
}

#[test]
fn from_file_matches_parse_str() {
    let path = temp_file("seed.conf", SEED_EXAMPLE.as_bytes());
    let table = PodNodeTable::from_file(&path).unwrap();
    assert_eq!(table.to_string(), SEED_PRINT);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn crlf_and_tabs_are_accepted() {
    let table = parse(
        "# c\r\nweb-1\tnode-1\t10.0.0.1   # trailing\r\n\t \r\n  # indented\r\napi-1 \t node-2\r\n",
    );
    assert_eq!(table.len(), 2);
    assert_eq!(table.node_of("api-1"), Some("node-2"));
    assert_eq!(table.pods()[0].ips, ["10.0.0.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        table.pod_by_ip("10.0.0.1".parse().unwrap()).unwrap().name,
        "web-1"
    );
}

#[test]
fn utf8_bom_is_ignored() {
    assert_eq!(parse("\u{feff}web-1 node-1\n").len(), 1);
}

#[test]
fn hash_inside_a_token_is_not_a_comment() {
    assert_eq!(
        error("web-1 node-1#x\n"),
        "m.conf:1: invalid node name 'node-1#x': use lowercase letters, digits, '-' and '.', \
         starting and ending with a letter or digit"
    );
}

#[test]
fn legacy_header_is_skipped() {
    let table = parse("pod_name node_name\npod_name\tnode_name  # again\nweb-1 node-1\n");
    assert_eq!(table.len(), 1);
    assert!(table.node_of("pod_name").is_none());
}

#[test]
fn ipv6_and_multiple_ips() {
    let table = parse("web-1 node-1 10.0.0.1 fd00::1 2001:db8::7 192.168.0.1\n");
    let ips: Vec<String> = table.pods()[0]
        .ips
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(ips, ["10.0.0.1", "fd00::1", "2001:db8::7", "192.168.0.1"]);
    assert_eq!(
        table.pod_by_ip("fd00::1".parse().unwrap()).unwrap().name,
        "web-1"
    );
    let eight = (1..=8)
        .map(|i| format!("10.0.0.{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(parse(&format!("a b {eight}\n")).pods()[0].ips.len(), 8);
}

#[test]
fn node_lines() {
    let table = parse(
        "node node-1 10.0.0.1:7443\n\
         node node-2 [fd00::2]:8443\n\
         node node-3 10.0.0.3\n\
         node node-4 [fd00::4]\n\
         node node-5\n\
         web-1 node-1\n\
         web-9 node-9\n",
    );
    let agent = |n: &str| table.node(n).unwrap().agent;
    let sa = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
    assert_eq!(agent("node-1"), sa("10.0.0.1:7443"));
    assert_eq!(agent("node-2"), sa("[fd00::2]:8443"));
    assert_eq!(agent("node-3"), sa("10.0.0.3:7443"), "default port");
    assert_eq!(agent("node-4"), sa("[fd00::4]:7443"));
    assert_eq!(agent("node-5"), None);
    assert_eq!(table.nodes().len(), 5);
    assert_eq!(
        table.node_of("web-9"),
        Some("node-9"),
        "undeclared nodes are fine"
    );
    assert!(table.node("node-9").is_none());
    assert_eq!(table.len(), 2, "node lines are not pod entries");
}

#[test]
fn bad_ip() {
    assert_eq!(
        error("a b 10.0.0.1\nc d 10.0.0.300\n"),
        "m.conf:2: invalid IP address '10.0.0.300'"
    );
    assert_eq!(
        error("a b fd00::g\n"),
        "m.conf:1: invalid IP address 'fd00::g'"
    );
    assert_eq!(
        error("a b [fd00::1]\n"),
        "m.conf:1: invalid IP address '[fd00::1]'"
    );
    assert_eq!(
        error("a b 010.0.0.1\n"),
        "m.conf:1: invalid IP address '010.0.0.1'"
    );
    assert_eq!(
        error("a b 0.0.0.0\n"),
        "m.conf:1: 0.0.0.0 is not a unicast address"
    );
    assert_eq!(
        error("a b ff02::1\n"),
        "m.conf:1: ff02::1 is not a unicast address"
    );
}

#[test]
fn too_many_columns() {
    let nine = (1..=9)
        .map(|i| format!("10.0.0.{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        error(&format!("\n\na b {nine}\n")),
        "m.conf:3: too many columns (11): expected POD NODE and at most 8 IPs"
    );
    assert_eq!(
        error("node n 10.0.0.1 extra\n"),
        "m.conf:1: too many columns (4): expected 'node NAME [ADDR[:PORT]]'"
    );
}

#[test]
fn missing_node_column() {
    assert_eq!(
        error("web-1 node-1\nweb-2\n"),
        "m.conf:2: missing node column after pod 'web-2'"
    );
    assert_eq!(
        error("web-2   # comment\n"),
        "m.conf:1: missing node column after pod 'web-2'"
    );
    assert_eq!(error("node\n"), "m.conf:1: missing node name after 'node'");
}

#[test]
fn duplicate_pods() {
    assert_eq!(
        error("# x\nweb-1 node-1\nweb-2 node-1\nweb-1 node-2\n"),
        "m.conf:4: duplicate pod 'web-1' (first at line 2)"
    );
    assert_eq!(
        error("web-1 node-1 10.0.0.1\nweb-1 node-1 10.0.0.2\n"),
        "m.conf:2: duplicate pod 'web-1' (first at line 1)"
    );
    // An exact repeat is what the seed silently kept: accepted once.
    let table = parse("web-1 node-1 10.0.0.1\nweb-1\tnode-1 10.0.0.1 # again\nweb-2 node-1\n");
    assert_eq!(table.len(), 2);
}

#[test]
fn duplicate_ips() {
    assert_eq!(
        error("web-1 node-1 10.0.0.1\nweb-2 node-1 10.0.0.2\nweb-3 node-2 fd00::1 10.0.0.1\n"),
        "m.conf:3: duplicate IP 10.0.0.1 (already used by pod 'web-1' at line 1)"
    );
    assert_eq!(
        error("web-1 node-1 fd00::1 fd00:0::1\n"),
        "m.conf:1: IP fd00::1 listed twice for pod 'web-1'"
    );
}

#[test]
fn duplicate_node_lines() {
    assert_eq!(
        error("node n1 10.0.0.1\nweb-1 n1\nnode n1 10.0.0.1\n"),
        "m.conf:3: duplicate node 'n1' (first at line 1)"
    );
}

#[test]
fn names() {
    let max = "a".repeat(253);
    assert_eq!(parse(&format!("{max} {max}\n")).len(), 1);
    let long = "a".repeat(254);
    assert_eq!(
        error(&format!("web-1 n\n{long} n\n")),
        "m.conf:2: pod name too long (254 characters, at most 253)"
    );
    assert_eq!(
        error(&format!("node {long}\n")),
        "m.conf:1: node name too long (254 characters, at most 253)"
    );
    let invalid = |name: &str, kind: &str| {
        format!(
            "m.conf:1: invalid {kind} name '{name}': use lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit"
        )
    };
    for bad in [
        "Web-1", "-web", "web-", "web..1", "web.", ".web", "web.-1", "wéb",
    ] {
        assert_eq!(error(&format!("{bad} node-1\n")), invalid(bad, "pod"));
        assert_eq!(error(&format!("web-1 {bad}\n")), invalid(bad, "node"));
        assert_eq!(error(&format!("node {bad}\n")), invalid(bad, "node"));
    }
    assert_eq!(parse("0pod 1.node-x.y2\n").len(), 1);
}

#[test]
fn unknown_directives() {
    assert_eq!(
        error("web-1 n\nfoo = bar\n"),
        "m.conf:2: unknown directive 'foo'"
    );
    assert_eq!(error("mode=tlshub\n"), "m.conf:1: unknown directive 'mode'");
    assert_eq!(error("node = x\n"), "m.conf:1: unknown directive 'node'");
    assert_eq!(
        error("log_level debug\n"),
        "m.conf:1: unknown directive 'log_level' (pod names cannot contain '_')"
    );
}

#[test]
fn agent_addresses_and_ports() {
    assert_eq!(
        error("node n 10.0.0.1:0\n"),
        "m.conf:1: invalid port '0' (expected 1-65535)"
    );
    assert_eq!(
        error("node n 10.0.0.1:70000\n"),
        "m.conf:1: invalid port '70000' (expected 1-65535)"
    );
    assert_eq!(
        error("node n [fd00::1]:x\n"),
        "m.conf:1: invalid port 'x' (expected 1-65535)"
    );
    assert_eq!(
        error("node n 10.0.0.1:\n"),
        "m.conf:1: invalid port '' (expected 1-65535)"
    );
    assert_eq!(
        error("node n 10.0.0.1:+80\n"),
        "m.conf:1: invalid port '+80' (expected 1-65535)"
    );
    let agent = |a: &str| {
        format!("m.conf:1: invalid agent address '{a}' (expected IPV4[:PORT] or [IPV6][:PORT])")
    };
    for bad in [
        "fd00::2",
        "fd00::2:7443",
        "[fd00::2",
        "[fd00::2]7443",
        "host:7443",
        "[10.0.0.1]:1",
    ] {
        assert_eq!(error(&format!("node n {bad}\n")), agent(bad));
    }
}

#[test]
fn nothing_is_returned_on_error() {
    let text = "web-1 n 10.0.0.1\nweb-2 n 10.0.0.1\n";
    assert!(matches!(
        PodNodeTable::parse_str(text, "x"),
        Err(SourceError::Syntax { line: 2, .. })
    ));
}

#[test]
fn file_errors() {
    let missing = std::env::temp_dir().join("tlshub-test-does-not-exist.conf");
    let err = PodNodeTable::from_file(&missing).unwrap_err();
    assert!(matches!(err, SourceError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("{}: ", missing.display())),
        "{err}"
    );

    let path = temp_file("latin1.conf", b"web-1 node-1\nw\xe9b node-1\n");
    let err = PodNodeTable::from_file(&path).unwrap_err().to_string();
    assert_eq!(err, format!("{}:2: not valid UTF-8", path.display()));
    std::fs::remove_file(path).unwrap();

    let path = temp_file("bad.conf", b"web-1 node-1\n\nweb-1 node-2\n");
    let err = PodNodeTable::from_file(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:3: duplicate pod 'web-1' (first at line 1)",
            path.display()
        )
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn programmatic_inserts_validate_too() {
    let mut table = PodNodeTable::new();
    let pod = Pod::parse("web-1", "node-1", &["10.0.0.1"]).unwrap();
    table.insert_pod(pod.clone()).unwrap();
    table.insert_pod(pod.clone()).unwrap();
    assert_eq!(table.len(), 1);
    let mut other = pod.clone();
    other.name = "web-2".into();
    assert_eq!(
        table.insert_pod(other).unwrap_err().to_string(),
        "duplicate IP 10.0.0.1 (already used by pod 'web-1')"
    );
    let bad = Pod {
        name: "Bad".into(),
        node: "n".into(),
        ips: vec![],
        host_network: false,
        netns: None,
    };
    assert!(table.insert_pod(bad).is_err());
    table
        .insert_node(Node::parse("node-1", Some("[fd00::1]")).unwrap())
        .unwrap();
    assert!(table
        .insert_node(Node::parse("node-1", None).unwrap())
        .is_err());
    assert_eq!(
        Pod::parse("a", "b", &["1.1.1.1"; 9])
            .unwrap_err()
            .to_string(),
        "pod 'a' has 9 IP addresses, at most 8 are allowed"
    );
}

#[test]
fn hundred_thousand_entries() {
    let mut text = String::with_capacity(100_000 * 48);
    text.push_str("# generated\n");
    for n in 0..100u32 {
        text.push_str(&format!("node node-{n} 10.255.{n}.1\n"));
    }
    for i in 0..100_000u32 {
        let v4 = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        text.push_str(&format!(
            "pod-{i}.ns node-{} {v4} fd00::{:x}:{:x}\n",
            i % 100,
            i >> 16,
            i & 0xffff
        ));
    }
    let table = parse(&text);
    assert_eq!(table.len(), 100_000);
    assert_eq!(table.nodes().len(), 100);
    assert_eq!(table.node_of("pod-99999.ns"), Some("node-99"));
    assert_eq!(
        table
            .pod_by_ip("fd00::1:869f".parse().unwrap())
            .unwrap()
            .name,
        "pod-99999.ns"
    );
    let printed = table.to_string();
    assert_eq!(printed.lines().count(), 3 + 100_000);
    assert!(printed.starts_with("Pod-Node Mapping Table (100000 entries):\n"));
}

#[test]
fn namespaced_pods() {
    let table = parse(
        "shop/redis-0 node-1 10.0.0.1\n\
         billing/redis-0 node-2 10.0.0.2\n\
         redis-0 node-3\n",
    );
    assert_eq!(table.len(), 3, "same name in two namespaces is two pods");
    assert_eq!(table.node_of("shop/redis-0"), Some("node-1"));
    assert_eq!(table.node_of("billing/redis-0"), Some("node-2"));
    assert_eq!(table.node_of("redis-0"), Some("node-3"));
    assert_eq!(
        error("shop/redis-0 node-1\nshop/redis-0 node-2\n"),
        "m.conf:2: duplicate pod 'shop/redis-0' (first at line 1)"
    );
    let ns64 = "n".repeat(64);
    assert_eq!(
        error(&format!("{ns64}/web n\n")),
        "m.conf:1: namespace name too long (64 characters, at most 63)"
    );
    assert_eq!(
        error(&format!("ns/{} n\n", "a".repeat(254))),
        "m.conf:1: pod name too long (254 characters, at most 253)"
    );
    let longest = format!("{}/{}", "n".repeat(63), "a".repeat(253));
    assert_eq!(parse(&format!("{longest} n\n")).pods()[0].name.len(), 317);
    assert_eq!(
        error("kube.system/web n\n"),
        "m.conf:1: invalid pod namespace 'kube.system': use lowercase letters, digits and '-', \
         starting and ending with a letter or digit"
    );
    assert_eq!(error("/web n\n"), "m.conf:1: empty namespace name");
    assert_eq!(error("ns/ n\n"), "m.conf:1: empty pod name");
    assert_eq!(
        error("ns/a/b n\n"),
        "m.conf:1: invalid pod name 'a/b': use lowercase letters, digits, '-' and '.', \
         starting and ending with a letter or digit"
    );
    assert_eq!(
        error("web ns/node\n"),
        "m.conf:1: invalid node name 'ns/node': use lowercase letters, digits, '-' and '.', \
         starting and ending with a letter or digit"
    );
}

#[test]
fn host_network_pods() {
    let table = parse(
        "kube-system/kube-proxy-a node-1 192.168.0.1 fd00::1 hostNetwork\n\
         kube-system/calico-node-a node-1 192.168.0.1 hostNetwork # same node IPs\n\
         default/web node-1 192.168.0.1      # a pod may use it too\n\
         kube-system/etcd node-1 hostNetwork\n",
    );
    assert_eq!(table.len(), 4);
    let proxy = table.pod("kube-system/kube-proxy-a").unwrap();
    assert!(proxy.host_network);
    assert_eq!(proxy.ips.len(), 2);
    assert!(!table.pod("default/web").unwrap().host_network);
    // Lookups by IP never find a hostNetwork pod.
    assert_eq!(
        table
            .pod_by_ip("192.168.0.1".parse().unwrap())
            .unwrap()
            .name,
        "default/web"
    );
    assert!(table.pod_by_ip("fd00::1".parse().unwrap()).is_none());
    assert!(table.pod("kube-system/etcd").unwrap().ips.is_empty());
    // The token sits among the IPs; it counts as no IP.
    let nine: Vec<String> = (1..=8).map(|i| format!("10.0.0.{i}")).collect();
    assert_eq!(
        parse(&format!("a b {} hostNetwork\n", nine.join(" "))).pods()[0]
            .ips
            .len(),
        8
    );
    assert_eq!(
        error("a b 10.0.0.1 hostNetwork hostNetwork\n"),
        "m.conf:1: 'hostNetwork' given twice"
    );
    assert_eq!(
        error("a b hostnetwork\n"),
        "m.conf:1: invalid IP address 'hostnetwork'"
    );
    assert_eq!(
        error("a b 10.0.0.1 hostNetwork\na b 10.0.0.1\n"),
        "m.conf:2: duplicate pod 'a' (first at line 1)"
    );
    // Still one pod's own IPs must differ.
    assert_eq!(
        error("a b 10.0.0.1 10.0.0.1 hostNetwork\n"),
        "m.conf:1: IP 10.0.0.1 listed twice for pod 'a'"
    );
}

#[test]
fn host_network_in_the_table_print() {
    let table = parse("web-1 node-1\nkube-system/proxy node-1 10.0.0.1 hostNetwork\n");
    let printed = table.to_string();
    let rows: Vec<&str> = printed.lines().skip(3).collect();
    assert_eq!(
        rows,
        [
            "web-1                          node-1                        ",
            "kube-system/proxy              node-1                         hostNetwork",
        ]
    );
}

#[test]
fn v4_mapped_addresses_are_ipv4() {
    let table = parse("node n [::ffff:10.9.0.1]:8443\na n ::ffff:10.0.0.1 fd00::1\n");
    assert_eq!(
        table.pods()[0].ips,
        [
            "10.0.0.1".parse::<IpAddr>().unwrap(),
            "fd00::1".parse().unwrap()
        ]
    );
    assert_eq!(
        table.node("n").unwrap().agent,
        Some("10.9.0.1:8443".parse().unwrap())
    );
    assert_eq!(
        table
            .pod_by_ip("::ffff:10.0.0.1".parse().unwrap())
            .unwrap()
            .name,
        "a"
    );
    assert_eq!(
        error("a n 10.0.0.1\nb n ::ffff:10.0.0.1\n"),
        "m.conf:2: duplicate IP 10.0.0.1 (already used by pod 'a' at line 1)"
    );
    assert_eq!(
        error("a n 10.0.0.1 ::ffff:10.0.0.1\n"),
        "m.conf:1: IP 10.0.0.1 listed twice for pod 'a'"
    );
    assert_eq!(
        error("a n ::ffff:0.0.0.0\n"),
        "m.conf:1: 0.0.0.0 is not a unicast address"
    );
    // Pods built field by field are canonicalised on insert.
    let mut t = PodNodeTable::new();
    t.insert_pod(Pod {
        name: "x".into(),
        node: "n".into(),
        ips: vec!["::ffff:10.1.1.1".parse().unwrap()],
        host_network: false,
        netns: None,
    })
    .unwrap();
    assert_eq!(t.pods()[0].ips, ["10.1.1.1".parse::<IpAddr>().unwrap()]);
}

#[test]
fn write_conf_round_trips() {
    let text = "node node-1 10.0.0.1:7443\nnode node-2 [fd00::2]:9000\nnode node-3\n\
                ns/web-1 node-1 10.1.0.5 fd00:1::5\nweb-2 node-9\n\
                kube-system/proxy node-1 10.0.0.1 hostNetwork\n";
    let table = parse(text);
    let mut out = Vec::new();
    table.write_conf(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out, text);
    let again = parse(&out);
    assert_eq!(again.pods(), table.pods());
    assert_eq!(again.nodes(), table.nodes());
}

#[test]
fn cli_columns() {
    let pod = Pod::from_columns("ns/a", "n", &["10.0.0.1", "hostNetwork"]).unwrap();
    assert!(pod.host_network);
    assert_eq!(pod.to_string(), "ns/a n 10.0.0.1 hostNetwork");
    let pod = Pod::from_columns::<&str>("a", "n", &[]).unwrap();
    assert!(!pod.host_network);
}

#[test]
fn netns_tokens() {
    use tlshub::Netns;
    let table = parse(
        "ns/a n1 10.0.0.1 netns=/run/netns/a\n\
         ns/b n2 fd00::2 10.0.0.2 netns-cookie=4099\n\
         ns/c n1 netns=/proc/1/ns/net # no IPs\n\
         ns/d n1 10.0.0.4\n\
         ns/e n1 netns-cookie=18446744073709551615 10.0.0.5\n",
    );
    let netns = |name: &str| table.pod(name).unwrap().netns.clone();
    assert_eq!(netns("ns/a"), Some(Netns::Path("/run/netns/a".into())));
    assert_eq!(netns("ns/b"), Some(Netns::Cookie(4099)));
    assert_eq!(netns("ns/c"), Some(Netns::Path("/proc/1/ns/net".into())));
    assert_eq!(netns("ns/d"), None);
    assert_eq!(netns("ns/e"), Some(Netns::Cookie(u64::MAX)));
    assert_eq!(table.pod("ns/b").unwrap().ips.len(), 2);
    assert!(table.pod("ns/c").unwrap().ips.is_empty());
    // Printed last, and read back the same.
    assert_eq!(
        table.pod("ns/e").unwrap().to_string(),
        "ns/e n1 10.0.0.5 netns-cookie=18446744073709551615"
    );
    let mut out = Vec::new();
    table.write_conf(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("ns/a n1 10.0.0.1 netns=/run/netns/a\n"),
        "{out}"
    );
    assert_eq!(parse(&out).pods(), table.pods());
    // The seed-style table gets the token after the node.
    let printed = table.to_string();
    let rows: Vec<&str> = printed.lines().skip(3).take(2).collect();
    assert_eq!(
        rows,
        [
            "ns/a                           n1                             netns=/run/netns/a",
            "ns/b                           n2                             netns-cookie=4099",
        ]
    );
    // JSON: `netns` or `netns_cookie`, absent when unbound.
    let json = serde_json::to_value(table.pods()).unwrap();
    assert_eq!(json[0]["netns"], "/run/netns/a");
    assert_eq!(json[1]["netns_cookie"], 4099);
    assert!(json[3].get("netns").is_none() && json[3].get("netns_cookie").is_none());
    // It counts as no IP.
    let eight: Vec<String> = (1..=8).map(|i| format!("10.0.0.{i}")).collect();
    assert_eq!(
        parse(&format!("a b {} netns-cookie=7\n", eight.join(" "))).pods()[0]
            .ips
            .len(),
        8
    );
    // The command line takes the same tokens.
    let pod = Pod::from_columns("ns/a", "n", &["10.0.0.1", "netns=/run/netns/x"]).unwrap();
    assert_eq!(pod.to_string(), "ns/a n 10.0.0.1 netns=/run/netns/x");
}

#[test]
fn netns_errors() {
    assert_eq!(
        error("web n1\na n1 10.0.0.1 netns=/run/netns/a netns=/run/netns/b\n"),
        "m.conf:2: network namespace given twice ('netns=PATH' or 'netns-cookie=N', at most one)"
    );
    assert_eq!(
        error("a n1 netns-cookie=5 netns=/run/netns/a\n"),
        "m.conf:1: network namespace given twice ('netns=PATH' or 'netns-cookie=N', at most one)"
    );
    assert_eq!(
        error("a n1 netns-cookie=5 netns-cookie=5\n"),
        "m.conf:1: network namespace given twice ('netns=PATH' or 'netns-cookie=N', at most one)"
    );
    let host = "m.conf:1: a 'hostNetwork' pod has its node's network namespace: \
                'netns=' and 'netns-cookie=' are not allowed with it";
    assert_eq!(
        error("a n1 10.0.0.1 hostNetwork netns=/run/netns/a\n"),
        host
    );
    assert_eq!(error("a n1 netns-cookie=9 hostNetwork\n"), host);
    for bad in [
        "0",
        "00",
        "x",
        "+5",
        "-1",
        "",
        "1e3",
        "0x10",
        "18446744073709551616",
    ] {
        assert_eq!(
            error(&format!("a n1 10.0.0.1 netns-cookie={bad}\n")),
            format!(
                "m.conf:1: invalid network namespace cookie '{bad}' \
                 (expected a decimal number above 0)"
            ),
        );
    }
    for bad in ["", "run/netns/a", "./a"] {
        assert_eq!(
            error(&format!("a n1 netns={bad}\n")),
            format!(
                "m.conf:1: invalid network namespace path '{bad}' \
                 (expected an absolute path, such as /run/netns/NAME)"
            )
        );
    }
    // Only after a pod's node: elsewhere '=' still marks a setting.
    assert_eq!(
        error("netns=/run/netns/a n1\n"),
        "m.conf:1: unknown directive 'netns'"
    );
    assert_eq!(
        error("a netns=/run/netns/a\n"),
        "m.conf:1: unknown directive 'a netns'"
    );
    assert_eq!(
        error("a n1 netns=/run/netns/a foo=bar\n"),
        "m.conf:1: unknown directive 'a n1 netns'"
    );
    assert_eq!(
        error("node n1 10.0.0.1 netns=/run/netns/a\n"),
        "m.conf:1: too many columns (4): expected 'node NAME [ADDR[:PORT]]'"
    );
    // A repeated pod line must repeat the binding too.
    assert_eq!(
        error("a n1 10.0.0.1 netns-cookie=5\na n1 10.0.0.1\n"),
        "m.conf:2: duplicate pod 'a' (first at line 1)"
    );
    assert_eq!(
        parse("a n1 10.0.0.1 netns-cookie=5\na n1 10.0.0.1 netns-cookie=5\n").len(),
        1
    );
    // Pods built field by field are checked the same way.
    let mut t = PodNodeTable::new();
    let mut pod = Pod::parse("a", "n1", &["10.0.0.1"]).unwrap();
    pod.netns = Some(tlshub::Netns::Cookie(0));
    assert!(t.insert_pod(pod.clone()).is_err());
    pod.netns = Some(tlshub::Netns::Path("rel".into()));
    assert!(t.insert_pod(pod.clone()).is_err());
    pod.netns = Some(tlshub::Netns::Cookie(1));
    pod.host_network = true;
    assert!(t.insert_pod(pod).is_err());
}

/// `bind_netns`: paths of local pods become cookies, other nodes' pods are
/// unbound, and a path that cannot be resolved fails it all, naming the
/// file, line and path.
#[test]
fn netns_binding() {
    use std::io;
    use tlshub::Netns;
    let text = "ns/a n1 10.0.0.1 netns=/run/netns/a\n\
                ns/b n2 10.0.0.2 netns=/run/netns/b\n\
                # a comment\n\
                ns/c n1 10.0.0.3 netns-cookie=77\n\
                ns/d n2 10.0.0.4 netns-cookie=78\n\
                ns/e n1 10.0.0.5\n";
    let fake = |p: &std::path::Path| -> io::Result<u64> {
        match p.to_str() {
            Some("/run/netns/a") => Ok(1001),
            Some("/run/netns/b") => Ok(1002),
            _ => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    };
    let cookies = |t: &PodNodeTable| -> Vec<Option<Netns>> {
        t.pods().iter().map(|p| p.netns.clone()).collect()
    };
    let local = ["n1".to_owned()];
    let mut t = parse(text);
    assert_eq!(t.bind_netns_with(Some(&local), fake).unwrap(), 2);
    assert_eq!(
        cookies(&t),
        [
            Some(Netns::Cookie(1001)),
            None,
            Some(Netns::Cookie(77)),
            None,
            None
        ]
    );
    // Not knowing the local nodes: every pod is local.
    let mut t = parse(text);
    assert_eq!(t.bind_netns_with(None, fake).unwrap(), 4);
    assert_eq!(t.pods()[1].netns, Some(Netns::Cookie(1002)));
    assert_eq!(t.pods()[3].netns, Some(Netns::Cookie(78)));
    // No local node: nothing bound.
    let mut t = parse(text);
    assert_eq!(t.bind_netns_with(Some(&[]), fake).unwrap(), 0);
    // An unresolvable path of a local pod: an error, and the table unchanged.
    let text = format!("{text}ns/f n1 netns=/run/netns/gone\nns/g n2 netns=/run/netns/gone2\n");
    let mut t = parse(&text);
    let before = cookies(&t);
    let err = t
        .bind_netns_with(Some(&local), fake)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "m.conf:7: pod 'ns/f': netns=/run/netns/gone: cannot resolve the network namespace: \
         No such file or directory (os error 2)"
    );
    assert_eq!(cookies(&t), before);
    // Not local: never looked at.
    let mut t = parse("ns/g n2 netns=/run/netns/gone2\n");
    assert_eq!(t.bind_netns_with(Some(&local), fake).unwrap(), 0);
    // The real resolver, on a path that does not exist (no privilege needed).
    let mut t = parse("# c\nns/a n1 netns=/nonexistent/tlshub-netns\n");
    let err = t.bind_netns(Some(&local)).unwrap_err().to_string();
    assert_eq!(
        err,
        "m.conf:2: pod 'ns/a': netns=/nonexistent/tlshub-netns: cannot resolve the network \
         namespace: No such file or directory (os error 2)"
    );
}

fn is_root() -> bool {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `/proc/self/ns/net` resolves to the cookie of a socket in this network
/// namespace; a file of another kind of namespace, or no namespace at all,
/// is refused. Entering a namespace needs CAP_SYS_ADMIN.
#[test]
fn netns_cookie_of_this_namespace() {
    use tlshub::netns;
    let here = match netns::current_cookie() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("note: SO_NETNS_COOKIE unavailable ({e}); test skipped");
            return;
        }
    };
    assert_ne!(here, 0);
    assert_eq!(netns::current_cookie().unwrap(), here, "stable");
    if !is_root() {
        eprintln!("note: not root, setns needs CAP_SYS_ADMIN; netns path resolution not tested");
        return;
    }
    let path = std::path::Path::new("/proc/self/ns/net");
    assert_eq!(netns::cookie_of(path).unwrap(), here);
    // The thread that entered it is gone; this one is where it was.
    assert_eq!(netns::current_cookie().unwrap(), here);
    // Through the table, too.
    let mut t = parse("ns/a n1 10.0.0.1 netns=/proc/self/ns/net\n");
    assert_eq!(t.bind_netns(None).unwrap(), 1);
    assert_eq!(t.pods()[0].netns, Some(tlshub::Netns::Cookie(here)));
    // Another namespace: one a thread of this test creates and holds.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        // SAFETY: plain syscalls, this thread only.
        let (rc, tid) = unsafe { (libc::unshare(libc::CLONE_NEWNET), libc::gettid()) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        tx.send((tid, netns::current_cookie().unwrap())).unwrap();
        wait.recv().ok();
    });
    let (tid, theirs) = rx.recv().unwrap();
    assert_ne!(theirs, here);
    let path = format!("/proc/self/task/{tid}/ns/net");
    assert_eq!(
        netns::cookie_of(std::path::Path::new(&path)).unwrap(),
        theirs
    );
    let mut t = parse(&format!("ns/a n1 10.0.0.1 netns={path}\n"));
    assert_eq!(t.bind_netns(Some(&["n1".to_owned()])).unwrap(), 1);
    assert_eq!(t.pods()[0].netns, Some(tlshub::Netns::Cookie(theirs)));
    done.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(netns::current_cookie().unwrap(), here);
    let err = netns::cookie_of(std::path::Path::new("/proc/self/ns/uts"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a network namespace"), "{err}");
    let err = netns::cookie_of(std::path::Path::new("/proc/self/status"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a network namespace"), "{err}");
}
