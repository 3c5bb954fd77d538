//! Service and pod CIDRs, as the CLI, capture.conf and JSON output spell
//! them.

use std::net::IpAddr;

use tlshub::config::{check_pod_cidrs, check_service_cidrs};
use tlshub::{uapi, Cidr};

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn error(s: &str) -> String {
    s.parse::<Cidr>().expect_err(s).to_string()
}

#[test]
fn networks_of_both_families() {
    for (text, addr, len) in [
        ("10.96.0.0/12", "10.96.0.0", 12),
        ("192.0.2.7/32", "192.0.2.7", 32),
        ("0.0.0.0/0", "0.0.0.0", 0),
        ("fd00:96::/108", "fd00:96::", 108),
        ("fd00:96:0::/108", "fd00:96::", 108),
        ("FD00:96::/108", "fd00:96::", 108),
        ("2001:db8::1/128", "2001:db8::1", 128),
        ("::/0", "::", 0),
        // IPv4-mapped: the IPv4 network, as the mapping reads such addresses.
        ("::ffff:10.96.0.0/108", "10.96.0.0", 12),
        ("::ffff:0:0/96", "0.0.0.0", 0),
    ] {
        let c = cidr(text);
        assert_eq!(c.addr(), addr.parse::<IpAddr>().unwrap(), "{text}");
        assert_eq!(c.prefix_len(), len, "{text}");
        assert_eq!(Cidr::new(c.addr(), c.prefix_len()), Some(c), "{text}");
        // Its text reads back as itself.
        assert_eq!(cidr(&c.to_string()), c, "{text}");
    }
    assert_eq!(cidr("fd00:96:0::/108").to_string(), "fd00:96::/108");
    assert_eq!(
        serde_json::to_string(&[cidr("10.96.0.0/12"), cidr("fd00:96::/108")]).unwrap(),
        r#"["10.96.0.0/12","fd00:96::/108"]"#
    );
    assert_eq!(Cidr::new("10.96.0.1".parse().unwrap(), 12), None);
    assert_eq!(Cidr::new("10.96.0.0".parse().unwrap(), 33), None);
    assert_eq!(Cidr::new("fd00::".parse().unwrap(), 129), None);
}

#[test]
fn bad_cidrs_are_named() {
    assert_eq!(
        error("10.96.0.0"),
        "invalid CIDR '10.96.0.0': expected ADDRESS/PREFIX-LENGTH, \
         e.g. 10.96.0.0/12 or fd00:96::/108"
    );
    assert_eq!(
        error("10.96.0.1/12"),
        "invalid CIDR '10.96.0.1/12': host bits set (the network is 10.96.0.0/12)"
    );
    assert_eq!(
        error("fd00:96::1/108"),
        "invalid CIDR 'fd00:96::1/108': host bits set (the network is fd00:96::/108)"
    );
    assert_eq!(
        error("10.96.0.0/33"),
        "invalid CIDR '10.96.0.0/33': prefix length '33' is not 0 to 32"
    );
    assert_eq!(
        error("fd00::/129"),
        "invalid CIDR 'fd00::/129': prefix length '129' is not 0 to 128"
    );
    assert_eq!(
        error("10.96.0.0/abc"),
        "invalid CIDR '10.96.0.0/abc': prefix length 'abc' is not 0 to 32"
    );
    assert_eq!(
        error("10.96.0.0.0/12"),
        "invalid CIDR '10.96.0.0.0/12': '10.96.0.0.0' is not an IPv4 or IPv6 address"
    );
    for bad in [
        "",
        "/12",
        "10.96.0.0/",
        "10.96.0.0/+12",
        "10.96.0.0/-1",
        "10.96.0.0/ 12",
        "10.96.0.0/1 2",
        "10.96.0.0/0012",
        "10.96.0.0/12/12",
        "010.96.0.0/12",
        "10.96.0.0 /12",
        "fe80::%eth0/64",
        "[fd00::]/64",
        "::ffff:10.96.0.1/108",
        "node-1/12",
    ] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
    }
}

#[test]
fn sets_of_service_cidrs() {
    assert_eq!(
        check_service_cidrs(&["10.96.0.0/12", "fd00:96::/108"]).unwrap(),
        [cidr("10.96.0.0/12"), cidr("fd00:96::/108")]
    );
    assert!(check_service_cidrs::<&str>(&[]).unwrap().is_empty());
    let err = |texts: &[&str]| check_service_cidrs(texts).unwrap_err().to_string();
    assert_eq!(
        err(&["10.96.0.0/12", "10.96.0.1/12"]),
        "invalid CIDR '10.96.0.1/12': host bits set (the network is 10.96.0.0/12)"
    );
    assert_eq!(
        err(&["10.96.0.0/12", "fd00::/8", "10.96.0.0/12"]),
        "Service CIDR '10.96.0.0/12' given twice"
    );
    assert_eq!(
        err(&["fd00:96::/108", "fd00:96:0:0::/108"]),
        "Service CIDR 'fd00:96:0:0::/108' given twice (same as 'fd00:96::/108')"
    );
    assert_eq!(
        err(&["10.96.0.0/12", "::ffff:10.96.0.0/108"]),
        "Service CIDR '::ffff:10.96.0.0/108' given twice (same as '10.96.0.0/12')"
    );
    // Overlapping networks are different networks.
    assert!(check_service_cidrs(&["10.0.0.0/8", "10.96.0.0/12"]).is_ok());
    let many: Vec<String> = (0..=uapi::MAX_SERVICE_CIDRS)
        .map(|i| format!("10.{i}.0.0/16"))
        .collect();
    assert!(check_service_cidrs(&many[..uapi::MAX_SERVICE_CIDRS]).is_ok());
    assert_eq!(
        check_service_cidrs(&many).unwrap_err().to_string(),
        "17 Service CIDRs, at most 16 are allowed"
    );
}

#[test]
fn sets_of_pod_cidrs() {
    assert_eq!(
        check_pod_cidrs(&["10.244.0.0/16", "fd00:10:244::/56"]).unwrap(),
        [cidr("10.244.0.0/16"), cidr("fd00:10:244::/56")]
    );
    assert!(check_pod_cidrs::<&str>(&[]).unwrap().is_empty());
    // As for Service CIDRs, /0 is a network.
    assert_eq!(
        check_pod_cidrs(&["0.0.0.0/0", "::/0"]).unwrap(),
        [cidr("0.0.0.0/0"), cidr("::/0")]
    );
    let err = |texts: &[&str]| check_pod_cidrs(texts).unwrap_err().to_string();
    assert_eq!(
        err(&["10.244.0.0/16", "10.244.0.1/16"]),
        "invalid CIDR '10.244.0.1/16': host bits set (the network is 10.244.0.0/16)"
    );
    assert_eq!(
        err(&["10.244.0.0/16", "fd00::/8", "10.244.0.0/16"]),
        "pod CIDR '10.244.0.0/16' given twice"
    );
    assert_eq!(
        err(&["fd00:10:244::/56", "fd00:10:244:0::/56"]),
        "pod CIDR 'fd00:10:244:0::/56' given twice (same as 'fd00:10:244::/56')"
    );
    assert_eq!(
        err(&["10.244.0.0/16", "::ffff:10.244.0.0/112"]),
        "pod CIDR '::ffff:10.244.0.0/112' given twice (same as '10.244.0.0/16')"
    );
    // Overlapping networks are different networks.
    assert!(check_pod_cidrs(&["10.0.0.0/8", "10.244.0.0/16"]).is_ok());
    let many: Vec<String> = (0..=uapi::MAX_POD_CIDRS)
        .map(|i| format!("10.{i}.0.0/16"))
        .collect();
    assert!(check_pod_cidrs(&many[..uapi::MAX_POD_CIDRS]).is_ok());
    assert_eq!(
        check_pod_cidrs(&many).unwrap_err().to_string(),
        "17 pod CIDRs, at most 16 are allowed"
    );
}
