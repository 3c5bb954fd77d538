//! Service and pod CIDRs, as the CLI, capture.conf and JSON output spell
//! them.

use std::net::IpAddr;

use tlshub::config::{check_pod_cidrs, check_service_cidrs, InvalidSetting};
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

/// One CIDR setting as its tests see it: its check, bound and name in
/// errors, and example networks.
struct Setting {
    check: fn(&[&str]) -> Result<Vec<Cidr>, InvalidSetting>,
    max: usize,
    /// One CIDR of the setting in errors.
    what: &'static str,
    /// An IPv4 network, the same with a host bit set, and the IPv4-mapped
    /// IPv6 spelling of the network.
    v4: [&'static str; 3],
    /// An IPv6 network and another spelling of it.
    v6: [&'static str; 2],
}

static SERVICE: Setting = Setting {
    check: |texts| check_service_cidrs(texts),
    max: uapi::MAX_SERVICE_CIDRS,
    what: "Service CIDR",
    v4: ["10.96.0.0/12", "10.96.0.1/12", "::ffff:10.96.0.0/108"],
    v6: ["fd00:96::/108", "fd00:96:0:0::/108"],
};

static POD: Setting = Setting {
    check: |texts| check_pod_cidrs(texts),
    max: uapi::MAX_POD_CIDRS,
    what: "pod CIDR",
    v4: ["10.244.0.0/16", "10.244.0.1/16", "::ffff:10.244.0.0/112"],
    v6: ["fd00:10:244::/56", "fd00:10:244:0::/56"],
};

#[test]
fn sets_of_service_cidrs() {
    sets_of_cidrs(&SERVICE);
}

#[test]
fn sets_of_pod_cidrs() {
    sets_of_cidrs(&POD);
}

fn sets_of_cidrs(s: &Setting) {
    let [v4, v4_host, v4_mapped] = s.v4;
    let [v6, v6_again] = s.v6;
    assert_eq!((s.check)(&[v4, v6]).unwrap(), [cidr(v4), cidr(v6)]);
    assert!((s.check)(&[]).unwrap().is_empty());
    // /0 is a network.
    assert_eq!(
        (s.check)(&["0.0.0.0/0", "::/0"]).unwrap(),
        [cidr("0.0.0.0/0"), cidr("::/0")]
    );
    let err = |texts: &[&str]| (s.check)(texts).unwrap_err().to_string();
    assert_eq!(
        err(&[v4, v4_host]),
        format!("invalid CIDR '{v4_host}': host bits set (the network is {v4})")
    );
    assert_eq!(
        err(&[v4, "fd00::/8", v4]),
        format!("{} '{v4}' given twice", s.what)
    );
    assert_eq!(
        err(&[v6, v6_again]),
        format!("{} '{v6_again}' given twice (same as '{v6}')", s.what)
    );
    assert_eq!(
        err(&[v4, v4_mapped]),
        format!("{} '{v4_mapped}' given twice (same as '{v4}')", s.what)
    );
    // Overlapping networks are different networks.
    assert!((s.check)(&["10.0.0.0/8", v4]).is_ok());
    let many: Vec<String> = (0..=s.max).map(|i| format!("10.{i}.0.0/16")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!((s.check)(&many[..s.max]).is_ok());
    assert_eq!(
        err(&many),
        format!("17 {}s, at most 16 are allowed", s.what)
    );
}
