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
