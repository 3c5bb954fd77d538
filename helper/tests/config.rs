//! The seed's `capture.conf`.

use std::path::{Path, PathBuf};

use tlshub::{CaptureConfig, Mode, SourceError};

fn parse(text: &str) -> CaptureConfig {
    CaptureConfig::parse_str(text, Path::new("/etc/tlshub/capture.conf"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    CaptureConfig::parse_str(text, Path::new("capture.conf"))
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn defaults() {
    let config = parse("# nothing set\n\n");
    assert_eq!(config, CaptureConfig::default());
    assert_eq!(config.mode, Mode::Tlshub);
    assert_eq!(
        config.pod_node_config,
        PathBuf::from("/etc/tlshub/pod_node_mapping.conf")
    );
}

#[test]
fn seed_style_file() {
    let config = parse(
        "# TLShub capture configuration\r\n\
         mode = openssl\r\n\
         pod_node_config = /srv/mapping.conf   # absolute\r\n\
         log_level = debug\r\n\
         verbose = 1\r\n\
         netlink_protocol = 31\r\n",
    );
    assert_eq!(config.mode, Mode::Openssl);
    assert_eq!(config.pod_node_config, PathBuf::from("/srv/mapping.conf"));
}

#[test]
fn every_mode() {
    for (text, mode) in [
        ("tlshub", Mode::Tlshub),
        ("openssl", Mode::Openssl),
        ("boringssl", Mode::Boringssl),
    ] {
        assert_eq!(parse(&format!("mode={text}")).mode, mode);
    }
}

#[test]
fn relative_mapping_path_is_next_to_the_config() {
    let config = parse("pod_node_config = maps/pods.conf\n");
    assert_eq!(
        config.pod_node_config,
        PathBuf::from("/etc/tlshub/maps/pods.conf")
    );
    let here =
        CaptureConfig::parse_str("pod_node_config = pods.conf", Path::new("capture.conf")).unwrap();
    assert_eq!(here.pod_node_config, PathBuf::from("pods.conf"));
}

#[test]
fn hash_inside_a_value_is_kept() {
    assert_eq!(
        parse("pod_node_config = /srv/a#b.conf # comment\n").pod_node_config,
        PathBuf::from("/srv/a#b.conf")
    );
}

#[test]
fn errors_name_the_line() {
    assert_eq!(
        error("# c\nmode = fast\n"),
        "capture.conf:2: invalid mode 'fast' (expected tlshub, openssl or boringssl)"
    );
    assert_eq!(
        error("mode = TLSHUB\n"),
        "capture.conf:1: invalid mode 'TLSHUB' (expected tlshub, openssl or boringssl)"
    );
    assert_eq!(
        error("\n\nmodus = tlshub\n"),
        "capture.conf:3: unknown key 'modus'"
    );
    assert_eq!(
        error("mode tlshub\n"),
        "capture.conf:1: expected 'key = value', found 'mode tlshub'"
    );
    assert_eq!(
        error("mode =\n"),
        "capture.conf:1: missing value for 'mode'"
    );
    assert_eq!(
        error("mode = # nothing\n"),
        "capture.conf:1: missing value for 'mode'"
    );
    assert_eq!(error(" = x\n"), "capture.conf:1: missing key before '='");
    assert_eq!(
        error("mode = tlshub\nlog_level = 1\nmode = openssl\n"),
        "capture.conf:3: duplicate key 'mode' (first at line 1)"
    );
}

#[test]
fn file_errors() {
    let dir = std::env::temp_dir().join(format!("tlshub-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("capture.conf");
    std::fs::write(&path, "mode = boringssl\npod_node_config = pods.conf\n").unwrap();
    let config = CaptureConfig::from_file(&path).unwrap();
    assert_eq!(config.mode, Mode::Boringssl);
    assert_eq!(config.pod_node_config, dir.join("pods.conf"));

    std::fs::write(&path, b"mode = tlshub\nverbose = \xff\n").unwrap();
    assert_eq!(
        CaptureConfig::from_file(&path).unwrap_err().to_string(),
        format!("{}:2: not valid UTF-8", path.display())
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let err = CaptureConfig::from_file(&path).unwrap_err();
    assert!(matches!(err, SourceError::Io { .. }));
}

// --- datapath keys ----------------------------------------------------------

use tlshub::config::{
    check_local_nodes, parse_key_timeout, parse_local_nodes, parse_pod_cidrs, parse_service_cidrs,
    InvalidSetting, PskSource,
};
use tlshub::{Cidr, Cipher};

const B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[test]
fn datapath_keys() {
    let config = parse(
        "mode = tlshub\n\
         local_nodes = node-1, node-2 node-3\n\
         cipher = chacha20-poly1305\n\
         key_timeout_ms = 2500   # 2.5 s\n\
         psk.node-4 = /srv/psk/node-4\n\
         psk.node-5 = psk/node-5\n\
         service_cidrs = 10.96.0.0/12, fd00:96::/108\n\
         pod_cidrs = 10.244.0.0/16 fd00:10:244::/56\n",
    );
    assert_eq!(
        config.local_nodes.as_deref(),
        Some(&["node-1", "node-2", "node-3"].map(String::from)[..])
    );
    assert_eq!(config.cipher, Some(Cipher::Chacha20Poly1305));
    assert_eq!(config.key_timeout_ms, Some(2500));
    assert_eq!(
        config.service_cidrs,
        Some(vec![
            "10.96.0.0/12".parse::<Cidr>().unwrap(),
            "fd00:96::/108".parse().unwrap()
        ])
    );
    assert_eq!(
        config.pod_cidrs,
        Some(vec![
            "10.244.0.0/16".parse::<Cidr>().unwrap(),
            "fd00:10:244::/56".parse().unwrap()
        ])
    );
    assert_eq!(
        config.psks,
        [
            PskSource {
                node: "node-4".into(),
                path: PathBuf::from("/srv/psk/node-4"),
                file: "/etc/tlshub/capture.conf".into(),
                line: 5,
            },
            PskSource {
                node: "node-5".into(),
                path: PathBuf::from("/etc/tlshub/psk/node-5"),
                file: "/etc/tlshub/capture.conf".into(),
                line: 6,
            },
        ]
    );
    // All optional: absent means "leave the kernel's setting alone".
    let config = parse("mode = tlshub\n");
    assert_eq!(config.local_nodes, None);
    assert_eq!(config.cipher, None);
    assert_eq!(config.key_timeout_ms, None);
    assert_eq!(config.service_cidrs, None);
    assert_eq!(config.pod_cidrs, None);
    assert!(config.psks.is_empty());
}

#[test]
fn every_cipher_and_timeout_bound() {
    for c in Cipher::ALL {
        assert_eq!(parse(&format!("cipher = {c}")).cipher, Some(c));
    }
    assert_eq!(parse("key_timeout_ms = 100").key_timeout_ms, Some(100));
    assert_eq!(
        parse("key_timeout_ms = 600000").key_timeout_ms,
        Some(600_000)
    );
    assert_eq!(
        parse("local_nodes = a").local_nodes,
        Some(vec!["a".to_owned()])
    );
}

#[test]
fn datapath_errors_name_the_line() {
    let timeout = |v: &str, line: usize| {
        format!(
            "capture.conf:{line}: invalid key timeout '{v}' (expected milliseconds, 100 to 600000)"
        )
    };
    assert_eq!(
        error("mode = tlshub\ncipher = aes-512-gcm\n"),
        "capture.conf:2: invalid cipher 'aes-512-gcm' \
         (expected aes-128-gcm, aes-256-gcm or chacha20-poly1305)"
    );
    assert_eq!(
        error("cipher = AES-128-GCM"),
        "capture.conf:1: invalid cipher 'AES-128-GCM' \
         (expected aes-128-gcm, aes-256-gcm or chacha20-poly1305)"
    );
    assert_eq!(error("\nkey_timeout_ms = 99\n"), timeout("99", 2));
    assert_eq!(error("key_timeout_ms = 600001"), timeout("600001", 1));
    assert_eq!(error("key_timeout_ms = 5s"), timeout("5s", 1));
    assert_eq!(error("key_timeout_ms = -100"), timeout("-100", 1));
    assert_eq!(
        error("local_nodes = node-1,,node-2\n"),
        "capture.conf:1: local_nodes: empty node name in 'node-1,,node-2'"
    );
    assert_eq!(
        error("local_nodes = node-1,\n"),
        "capture.conf:1: local_nodes: empty node name in 'node-1,'"
    );
    assert_eq!(
        error("local_nodes = node-1 Node-2\n"),
        "capture.conf:1: local_nodes: invalid node name 'Node-2': use lowercase letters, \
         digits, '-' and '.', starting and ending with a letter or digit"
    );
    assert_eq!(
        error("local_nodes = a b a\n"),
        "capture.conf:1: local_nodes: node 'a' given twice"
    );
    let many: Vec<String> = (0..17).map(|i| format!("n{i}")).collect();
    assert_eq!(
        error(&format!("local_nodes = {}\n", many.join(","))),
        "capture.conf:1: local_nodes: 17 local nodes, at most 16 are allowed"
    );
    assert_eq!(
        error("local_nodes =\n"),
        "capture.conf:1: missing value for 'local_nodes'"
    );
    assert_eq!(
        error("psk.node_1 = /x\n"),
        "capture.conf:1: psk.node_1: invalid node name 'node_1': use lowercase letters, \
         digits, '-' and '.', starting and ending with a letter or digit"
    );
    assert_eq!(
        error("psk. = /x\n"),
        "capture.conf:1: psk.: empty node name"
    );
    assert_eq!(
        error("psk.a = /x\n# c\npsk.a = /y\n"),
        "capture.conf:3: duplicate key 'psk.a' (first at line 1)"
    );
    assert_eq!(
        error("psk.a =\n"),
        "capture.conf:1: missing value for 'psk.a'"
    );
    assert_eq!(
        error("cipher = aes-128-gcm\ncipher = aes-256-gcm\n"),
        "capture.conf:2: duplicate key 'cipher' (first at line 1)"
    );
    assert_eq!(error("psk = /x\n"), "capture.conf:1: unknown key 'psk'");
    assert_eq!(
        error("psknode = /x\n"),
        "capture.conf:1: unknown key 'psknode'"
    );
}

/// One CIDR key of `capture.conf` as its tests see it: its name, where the
/// config keeps it, its parser, its name in errors, example networks.
struct CidrKey {
    key: &'static str,
    field: fn(CaptureConfig) -> Option<Vec<Cidr>>,
    parse: fn(&str) -> Result<Vec<Cidr>, InvalidSetting>,
    /// One CIDR of the setting in errors.
    what: &'static str,
    /// An IPv4 network and the same with a host bit set.
    v4: [&'static str; 2],
    /// An IPv6 network and another spelling of it.
    v6: [&'static str; 2],
}

static SERVICE_CIDRS: CidrKey = CidrKey {
    key: "service_cidrs",
    field: |c| c.service_cidrs,
    parse: parse_service_cidrs,
    what: "Service CIDR",
    v4: ["10.96.0.0/12", "10.96.0.1/12"],
    v6: ["fd00:96::/108", "fd00:96:0:0::/108"],
};

static POD_CIDRS: CidrKey = CidrKey {
    key: "pod_cidrs",
    field: |c| c.pod_cidrs,
    parse: parse_pod_cidrs,
    what: "pod CIDR",
    v4: ["10.244.0.0/16", "10.244.0.1/16"],
    v6: ["fd00:10:244::/56", "fd00:10:244:0::/56"],
};

#[test]
fn service_cidrs() {
    cidrs(&SERVICE_CIDRS);
}

#[test]
fn pod_cidrs() {
    cidrs(&POD_CIDRS);
}

fn cidrs(k: &CidrKey) {
    let key = k.key;
    let [v4, _] = k.v4;
    let [v6, _] = k.v6;
    let shown = |text: &str| {
        (k.field)(parse(text))
            .unwrap()
            .iter()
            .map(Cidr::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(shown(&format!("{key} = {v4}")), [v4]);
    assert_eq!(
        shown(&format!("{key} = {v4} {v6}  # both families\n")),
        [v4, v6]
    );
    assert_eq!(
        shown(&format!("{key} ={v4},{v6} ,\t192.0.2.0/24\r\n")),
        [v4, v6, "192.0.2.0/24"]
    );
    // /0 is a network.
    assert_eq!(
        shown(&format!("{key} = 0.0.0.0/0, ::/0")),
        ["0.0.0.0/0", "::/0"]
    );
    let many: Vec<String> = (0..16).map(|i| format!("10.{i}.0.0/16")).collect();
    assert_eq!(shown(&format!("{key} = {}", many.join(", "))).len(), 16);
    assert_eq!(
        (k.parse)(&format!(" {v4} ,{v6} ")).unwrap(),
        [v4.parse::<Cidr>().unwrap(), v6.parse().unwrap()]
    );
}

#[test]
fn service_and_pod_cidrs_are_independent() {
    // The same network may be in both sets.
    let config = parse("service_cidrs = 10.96.0.0/12\npod_cidrs = 10.96.0.0/12, 10.244.0.0/16\n");
    assert_eq!(config.service_cidrs.unwrap().len(), 1);
    assert_eq!(config.pod_cidrs.unwrap().len(), 2);
}

#[test]
fn service_cidr_errors_name_the_line() {
    cidr_errors_name_the_line(&SERVICE_CIDRS);
}

#[test]
fn pod_cidr_errors_name_the_line() {
    cidr_errors_name_the_line(&POD_CIDRS);
}

fn cidr_errors_name_the_line(k: &CidrKey) {
    let (key, what) = (k.key, k.what);
    let [v4, v4_host] = k.v4;
    let [v6, v6_again] = k.v6;
    let v4_addr = v4.split_once('/').unwrap().0;
    let v6_addr = v6.split_once('/').unwrap().0;
    assert_eq!(
        error(&format!("mode = tlshub\n{key} = {v4_host}\n")),
        format!(
            "capture.conf:2: {key}: invalid CIDR '{v4_host}': host bits set \
             (the network is {v4})"
        )
    );
    assert_eq!(
        error(&format!("{key} = {v4} {v4_addr}\n")),
        format!(
            "capture.conf:1: {key}: invalid CIDR '{v4_addr}': expected \
             ADDRESS/PREFIX-LENGTH, e.g. 10.96.0.0/12 or fd00:96::/108"
        )
    );
    assert_eq!(
        error(&format!("{key} = {v6_addr}/129\n")),
        format!(
            "capture.conf:1: {key}: invalid CIDR '{v6_addr}/129': prefix length '129' \
             is not 0 to 128"
        )
    );
    assert_eq!(
        error(&format!("{key} = {v4_addr}/33\n")),
        format!(
            "capture.conf:1: {key}: invalid CIDR '{v4_addr}/33': prefix length '33' \
             is not 0 to 32"
        )
    );
    assert_eq!(
        error(&format!("{key} = {v4}, {v6}, {v4}\n")),
        format!("capture.conf:1: {key}: {what} '{v4}' given twice")
    );
    assert_eq!(
        error(&format!("{key} = {v6} {v6_again}\n")),
        format!("capture.conf:1: {key}: {what} '{v6_again}' given twice (same as '{v6}')")
    );
    assert_eq!(
        error(&format!("{key} = {v4},,{v6}\n")),
        format!("capture.conf:1: {key}: empty CIDR in '{v4},,{v6}'")
    );
    assert_eq!(
        error(&format!("{key} = {v4},\n")),
        format!("capture.conf:1: {key}: empty CIDR in '{v4},'")
    );
    let many: Vec<String> = (0..17).map(|i| format!("10.{i}.0.0/16")).collect();
    assert_eq!(
        error(&format!("{key} = {}\n", many.join(" "))),
        format!("capture.conf:1: {key}: 17 {what}s, at most 16 are allowed")
    );
    assert_eq!(
        error(&format!("{key} =\n")),
        format!("capture.conf:1: missing value for '{key}'")
    );
    assert_eq!(
        error(&format!("{key} = {v4}\n{key} = {v6}\n")),
        format!("capture.conf:2: duplicate key '{key}' (first at line 1)")
    );
    let dashed = key.replace('_', "-");
    assert_eq!(
        error(&format!("{dashed} = {v4}\n")),
        format!("capture.conf:1: unknown key '{dashed}'")
    );
    let singular = key.strip_suffix('s').unwrap();
    assert_eq!(
        error(&format!("{singular} = {v4}\n")),
        format!("capture.conf:1: unknown key '{singular}'")
    );
}

#[test]
fn secret_files_are_read_with_the_config_line_in_errors() {
    let dir = std::env::temp_dir().join(format!("tlshub-config-psk-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("psk")).unwrap();
    let path = dir.join("capture.conf");
    std::fs::write(dir.join("psk/node-2"), format!("{B64}\n")).unwrap();
    std::fs::write(dir.join("psk/node-3"), (0..32).collect::<Vec<u8>>()).unwrap();
    std::fs::write(dir.join("psk/bad"), [7u8; 31]).unwrap();
    std::fs::write(
        &path,
        "mode = tlshub\npsk.node-2 = psk/node-2\npsk.node-3 = psk/node-3\n",
    )
    .unwrap();
    let config = CaptureConfig::from_file(&path).unwrap();
    let psks = config.read_psks().unwrap();
    let nodes: Vec<&str> = psks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes, ["node-2", "node-3"]);
    assert_eq!(psks[0].1.as_bytes(), psks[1].1.as_bytes());

    // The first bad file is named with the line of its psk.NODE.
    std::fs::write(
        &path,
        "psk.node-2 = psk/node-2\n\npsk.node-4 = psk/bad\npsk.node-5 = psk/missing\n",
    )
    .unwrap();
    let config = CaptureConfig::from_file(&path).unwrap();
    assert_eq!(
        config.read_psks().unwrap_err().to_string(),
        format!(
            "{}:3: psk.node-4: {}: 31 bytes of binary data (expected exactly 32 raw bytes, \
             or 32 bytes in base64 as `wg genpsk` writes)",
            path.display(),
            dir.join("psk/bad").display()
        )
    );
    std::fs::write(&path, "psk.node-5 = psk/missing\n").unwrap();
    let err = CaptureConfig::from_file(&path)
        .unwrap()
        .read_psks()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}:1: psk.node-5: {}: No such file or directory",
            path.display(),
            dir.join("psk/missing").display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_dash_is_a_file_not_stdin() {
    let config =
        CaptureConfig::parse_str("psk.a = -\n", Path::new("no-such-dir/capture.conf")).unwrap();
    let err = config.read_psks().unwrap_err().to_string();
    assert!(
        err.starts_with("no-such-dir/capture.conf:1: psk.a: no-such-dir/-: No such file"),
        "{err}"
    );
}

#[test]
fn shared_setting_checks() {
    assert_eq!(
        parse_local_nodes(" a ,b\tc ").unwrap(),
        ["a", "b", "c"].map(String::from)
    );
    assert!(check_local_nodes::<&str>(&[]).is_ok());
    assert_eq!(
        check_local_nodes(&["a", ""]).unwrap_err().to_string(),
        "empty node name"
    );
    assert_eq!(parse_key_timeout("30000").unwrap(), 30000);
    assert!(parse_key_timeout("").is_err());
    assert!(parse_key_timeout("4294967296").is_err());
}

#[test]
fn worker_paths_for_tlshubd() {
    let config = parse(
        "openssl_worker = /usr/libexec/tlshub/tlshub-worker-openssl\n\
         boring_worker = bin/tlshub-worker-boring   # next to the config\n",
    );
    assert_eq!(
        config.agent.openssl_worker,
        Some(PathBuf::from("/usr/libexec/tlshub/tlshub-worker-openssl"))
    );
    assert_eq!(
        config.agent.boring_worker,
        Some(PathBuf::from("/etc/tlshub/bin/tlshub-worker-boring"))
    );
    // Optional, and nothing else changes.
    let config = parse("agent_cert = n1.pem\n");
    assert_eq!(config.agent.openssl_worker, None);
    assert_eq!(config.agent.boring_worker, None);
    // Bad values name the file and line.
    assert_eq!(
        error("mode = openssl\nopenssl_worker =\n"),
        "capture.conf:2: missing value for 'openssl_worker'"
    );
    assert_eq!(
        error("\nboring_worker = /usr/libexec/tlshub/\n"),
        "capture.conf:2: boring_worker: '/usr/libexec/tlshub/' names a directory, \
         not a worker program"
    );
    assert_eq!(
        error("openssl_worker = a\nboring_worker = b\nopenssl_worker = c\n"),
        "capture.conf:3: duplicate key 'openssl_worker' (first at line 1)"
    );
    assert_eq!(
        error("openssl-worker = a\n"),
        "capture.conf:1: unknown key 'openssl-worker'"
    );
}
