//! The seed's `capture.conf`: which key provider to use and where the
//! pod-node mapping lives, plus the datapath's settings: the nodes this
//! kernel serves, the cipher, the key timeout, the Service and pod CIDRs
//! and node-pair secrets.
//!
//! ```text
//! # capture.conf
//! mode = tlshub                     # tlshub | openssl | boringssl
//! pod_node_config = pod_node_mapping.conf
//! log_level = info                  # accepted and ignored
//! local_nodes = node-1, node-2      # nodes this kernel serves (node-local-set)
//! cipher = aes-256-gcm              # aes-128-gcm | aes-256-gcm | chacha20-poly1305
//! key_timeout_ms = 5000             # 100..600000
//! service_cidrs = 10.96.0.0/12, fd00:96::/108   # Service CIDRs (service-cidr-set)
//! pod_cidrs = 10.244.0.0/16, fd00:10:244::/56    # pod CIDRs (pod-cidr-set)
//! psk.node-3 = /etc/tlshub/psk/node-3   # secret shared with node-3 (peer-set)
//! psk.node-4 = psk/node-4           # any number of psk.NODE lines
//! agent_cert = /etc/tlshub/node.pem # the TLSHub agent (tlshubd): node certificate,
//! agent_key = /etc/tlshub/node.key  #   its key, the cluster CA, and the
//! agent_ca = /etc/tlshub/ca.pem     #   node-pair secret lifetime (seconds)
//! secret_lifetime = 3600
//! openssl_worker = /usr/libexec/tlshub/tlshub-worker-openssl  # tlshubd's handshake
//! boring_worker = /usr/libexec/tlshub/tlshub-worker-boring    #   workers (per-flow modes)
//! ```
//!
//! `key = value` per line, `#` comments (at the start of a line or after a
//! blank, so a `#` inside a path survives), blank lines, CRLF accepted. The
//! seed also wrote `log_level`, `verbose` and `netlink_protocol`; they meant
//! nothing to the new module, so they are accepted and ignored to keep old
//! files loadable. Anything else is an error rather than silently dropped,
//! because a misspelt `mode` would otherwise quietly select the default.
//! Every key may appear once (each `psk.NODE` once per node).
//!
//! - `mode`: the key provider, default `tlshub`.
//! - `pod_node_config`: the mapping file, default
//!   `/etc/tlshub/pod_node_mapping.conf`.
//! - `local_nodes`: node names separated by commas and/or blanks, at most
//!   16, each once. Optional: without it, `apply` leaves the kernel's set
//!   as it is.
//! - `cipher`: the kTLS cipher of new flows. Optional.
//! - `key_timeout_ms`: how long a flow may wait for its node-pair secret
//!   before it is reset, in milliseconds, 100 to 600000. Optional.
//! - `service_cidrs`: the cluster's Service CIDRs (IPv4 and/or IPv6, no
//!   host bits set) separated by commas and/or blanks, at most 16, each
//!   once. Optional: without it, `apply` leaves the kernel's set as it is.
//! - `pod_cidrs`: the cluster's pod CIDRs, written and checked as
//!   `service_cidrs` (at most 16). Optional: without it, `apply` leaves the
//!   kernel's set as it is.
//! - `psk.NODE`: a file holding the secret shared with peer node `NODE`:
//!   exactly 32 raw bytes, or their base64 as `wg genpsk` writes it (see
//!   [`crate::psk`]). Any number of them; the path is taken literally (no
//!   `-` for stdin).
//!
//! - `agent_cert`, `agent_key`, `agent_ca`, `secret_lifetime`: read by
//!   `tlshubd` only (PEM files; the lifetime in seconds, 5 to 4294967).
//! - `openssl_worker`, `boring_worker`: read by `tlshubd` only, the
//!   handshake worker programs of the openssl and boringssl modes (default:
//!   next to `tlshubd`). A value ending in `/` (a directory) is an error.
//!
//! Relative paths (`pod_node_config`, `psk.NODE`, `agent_*`, `*_worker`)
//! are relative to the directory of the config file. Parsing checks every
//! line; reading the secrets ([`CaptureConfig::read_psks`]) checks every
//! secret file, with errors naming the config file and the line of its
//! `psk.NODE`. `tlshubctl apply` does both, and reads the mapping, before it
//! sends anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::mapping::{check_node_name, DEFAULT_PATH};
use crate::netlink::schema::{KEY_TIMEOUT_MS_MAX, KEY_TIMEOUT_MS_MIN};
use crate::psk::Psk;
use crate::source::{self, SourceError};
use crate::{uapi, Cidr, Cipher, Mode};

/// Where the seed installed `capture.conf`.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tlshub/capture.conf";

/// Keys the seed wrote that no longer mean anything.
const IGNORED_KEYS: [&str; 3] = ["log_level", "verbose", "netlink_protocol"];

/// A parsed `capture.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Key provider (`mode`), default [`Mode::Tlshub`].
    pub mode: Mode,
    /// Mapping file (`pod_node_config`), already resolved against the
    /// directory of the config file if it was relative.
    pub pod_node_config: PathBuf,
    /// Nodes this kernel serves (`local_nodes`), if set.
    pub local_nodes: Option<Vec<String>>,
    /// Cipher of new flows (`cipher`), if set.
    pub cipher: Option<Cipher>,
    /// Key timeout in milliseconds (`key_timeout_ms`), if set.
    pub key_timeout_ms: Option<u32>,
    /// Service CIDRs (`service_cidrs`), if set.
    pub service_cidrs: Option<Vec<Cidr>>,
    /// Pod CIDRs (`pod_cidrs`), if set.
    pub pod_cidrs: Option<Vec<Cidr>>,
    /// Node-pair secret files (`psk.NODE`), in file order.
    pub psks: Vec<PskSource>,
    /// The agent's settings (`agent_*`, `secret_lifetime`, `*_worker`).
    pub agent: AgentSettings,
}

/// What `tlshubd` reads from `capture.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    /// Seconds.
    pub secret_lifetime: Option<u64>,
    /// The openssl mode's handshake worker (`openssl_worker`).
    pub openssl_worker: Option<PathBuf>,
    /// The boringssl mode's handshake worker (`boring_worker`).
    pub boring_worker: Option<PathBuf>,
}

/// A `psk.NODE = FILE` line: where the secret shared with `node` is, and
/// where the line itself is (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PskSource {
    pub node: String,
    /// Resolved against the config file's directory.
    pub path: PathBuf,
    /// The config file and line that named it.
    pub file: String,
    pub line: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            mode: Mode::default(),
            pod_node_config: PathBuf::from(DEFAULT_PATH),
            local_nodes: None,
            cipher: None,
            key_timeout_ms: None,
            service_cidrs: None,
            pod_cidrs: None,
            psks: Vec::new(),
            agent: AgentSettings::default(),
        }
    }
}

impl CaptureConfig {
    /// Reads and validates a `capture.conf`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref();
        Self::parse_str(&source::read_text(path)?, path)
    }

    /// Parses config text. `path` names the file in error messages, and a
    /// relative `pod_node_config` is resolved against its directory, the way
    /// users expect of a path written inside a file.
    pub fn parse_str(text: &str, path: &Path) -> Result<Self, SourceError> {
        let file = path.display().to_string();
        let mut config = CaptureConfig::default();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (lineno, line) in source::lines(text) {
            let err = |message: String| SourceError::Syntax {
                file: file.clone(),
                line: lineno,
                message,
            };
            let line = source::strip_comment(line).trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(format!("expected 'key = value', found '{line}'")));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(err("missing key before '='".to_owned()));
            }
            if value.is_empty() {
                return Err(err(format!("missing value for '{key}'")));
            }
            if let Some(first) = seen.insert(key, lineno) {
                return Err(err(format!(
                    "duplicate key '{key}' (first at line {first})"
                )));
            }
            match key {
                "mode" => config.mode = value.parse().map_err(|e| err(format!("{e}")))?,
                "pod_node_config" => config.pod_node_config = resolve(path, value),
                "local_nodes" => {
                    config.local_nodes = Some(
                        parse_local_nodes(value).map_err(|e| err(format!("local_nodes: {e}")))?,
                    )
                }
                "cipher" => config.cipher = Some(value.parse().map_err(|e| err(format!("{e}")))?),
                "key_timeout_ms" => {
                    config.key_timeout_ms = Some(parse_key_timeout(value).map_err(|e| err(e.0))?)
                }
                "service_cidrs" => {
                    config.service_cidrs = Some(
                        parse_service_cidrs(value)
                            .map_err(|e| err(format!("service_cidrs: {e}")))?,
                    )
                }
                "pod_cidrs" => {
                    config.pod_cidrs =
                        Some(parse_pod_cidrs(value).map_err(|e| err(format!("pod_cidrs: {e}")))?)
                }
                "agent_cert" => config.agent.cert = Some(resolve(path, value)),
                "agent_key" => config.agent.key = Some(resolve(path, value)),
                "agent_ca" => config.agent.ca = Some(resolve(path, value)),
                "secret_lifetime" => {
                    config.agent.secret_lifetime = Some(
                        value
                            .parse::<u64>()
                            .ok()
                            .filter(|s| (5..=u64::from(u32::MAX) / 1000).contains(s))
                            .ok_or_else(|| {
                                err(format!(
                                    "invalid secret_lifetime '{value}' (seconds, 5 to 4294967)"
                                ))
                            })?,
                    )
                }
                "openssl_worker" | "boring_worker" => {
                    if value.ends_with('/') {
                        return Err(err(format!(
                            "{key}: '{value}' names a directory, not a worker program"
                        )));
                    }
                    let path = Some(resolve(path, value));
                    match key {
                        "openssl_worker" => config.agent.openssl_worker = path,
                        _ => config.agent.boring_worker = path,
                    }
                }
                k if IGNORED_KEYS.contains(&k) => {}
                k if k.starts_with("psk.") => {
                    let node = &k["psk.".len()..];
                    check_node_name(node).map_err(|e| err(format!("{k}: {e}")))?;
                    config.psks.push(PskSource {
                        node: node.to_owned(),
                        path: resolve(path, value),
                        file: file.clone(),
                        line: lineno,
                    });
                }
                _ => return Err(err(format!("unknown key '{key}'"))),
            }
        }
        Ok(config)
    }

    /// Reads every `psk.NODE` file, in file order: the node and its secret.
    /// The first file that cannot be read or holds no valid secret is an
    /// error naming the config line and the file.
    pub fn read_psks(&self) -> Result<Vec<(String, Psk)>, SourceError> {
        self.psks
            .iter()
            .map(|source| {
                Psk::from_file(&source.path)
                    .map(|psk| (source.node.clone(), psk))
                    .map_err(|e| SourceError::Syntax {
                        file: source.file.clone(),
                        line: source.line,
                        message: format!("psk.{}: {e}", source.node),
                    })
            })
            .collect()
    }
}

/// A datapath setting given on the command line or in `capture.conf` that
/// is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

/// Parses a `local_nodes` value: node names separated by commas and/or
/// blanks, checked by [`check_local_nodes`].
pub fn parse_local_nodes(value: &str) -> Result<Vec<String>, InvalidSetting> {
    let mut nodes = Vec::new();
    for part in value.split(',') {
        let names: Vec<&str> = part.split_ascii_whitespace().collect();
        if names.is_empty() {
            return Err(InvalidSetting(format!("empty node name in '{value}'")));
        }
        nodes.extend(names.into_iter().map(str::to_owned));
    }
    check_local_nodes(&nodes)?;
    Ok(nodes)
}

/// Checks a set of local nodes: valid node names, each once, at most
/// [`uapi::MAX_LOCAL_NODES`].
pub fn check_local_nodes<S: AsRef<str>>(nodes: &[S]) -> Result<(), InvalidSetting> {
    if nodes.len() > uapi::MAX_LOCAL_NODES {
        return Err(InvalidSetting(format!(
            "{} local nodes, at most {} are allowed",
            nodes.len(),
            uapi::MAX_LOCAL_NODES
        )));
    }
    for (i, node) in nodes.iter().enumerate() {
        let node = node.as_ref();
        check_node_name(node).map_err(|e| InvalidSetting(e.to_string()))?;
        if nodes[..i].iter().any(|n| n.as_ref() == node) {
            return Err(InvalidSetting(format!("node '{node}' given twice")));
        }
    }
    Ok(())
}

/// Parses a `service_cidrs` value: CIDRs separated by commas and/or
/// blanks, checked by [`check_service_cidrs`].
pub fn parse_service_cidrs(value: &str) -> Result<Vec<Cidr>, InvalidSetting> {
    check_service_cidrs(&split_cidrs(value)?)
}

/// Parses a `pod_cidrs` value: CIDRs separated by commas and/or blanks,
/// checked by [`check_pod_cidrs`].
pub fn parse_pod_cidrs(value: &str) -> Result<Vec<Cidr>, InvalidSetting> {
    check_pod_cidrs(&split_cidrs(value)?)
}

/// The CIDR texts of a `service_cidrs` or `pod_cidrs` value, separated by
/// commas and/or blanks (nothing between two commas is an error).
fn split_cidrs(value: &str) -> Result<Vec<&str>, InvalidSetting> {
    let mut cidrs = Vec::new();
    for part in value.split(',') {
        let texts: Vec<&str> = part.split_ascii_whitespace().collect();
        if texts.is_empty() {
            return Err(InvalidSetting(format!("empty CIDR in '{value}'")));
        }
        cidrs.extend(texts);
    }
    Ok(cidrs)
}

/// Parses and checks a set of Service CIDRs (`10.96.0.0/12`,
/// `fd00:96::/108`): each a network without host bits set, each once (an
/// IPv4-mapped IPv6 network is its IPv4 network), at most
/// [`uapi::MAX_SERVICE_CIDRS`]. Errors name the CIDR as given.
pub fn check_service_cidrs<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Cidr>, InvalidSetting> {
    check_cidrs(texts, "Service CIDR", uapi::MAX_SERVICE_CIDRS)
}

/// Parses and checks a set of pod CIDRs (`10.244.0.0/16`,
/// `fd00:10:244::/56`) as [`check_service_cidrs`] does Service CIDRs: each
/// a network without host bits set, each once, at most
/// [`uapi::MAX_POD_CIDRS`]. Errors name the CIDR as given.
pub fn check_pod_cidrs<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Cidr>, InvalidSetting> {
    check_cidrs(texts, "pod CIDR", uapi::MAX_POD_CIDRS)
}

/// A set of at most `max` CIDRs, each once; `what` names one in errors.
fn check_cidrs<S: AsRef<str>>(
    texts: &[S],
    what: &str,
    max: usize,
) -> Result<Vec<Cidr>, InvalidSetting> {
    if texts.len() > max {
        return Err(InvalidSetting(format!(
            "{} {what}s, at most {max} are allowed",
            texts.len()
        )));
    }
    let mut cidrs: Vec<Cidr> = Vec::with_capacity(texts.len());
    for text in texts {
        let text = text.as_ref();
        let cidr: Cidr = text.parse().map_err(|e| InvalidSetting(format!("{e}")))?;
        if let Some(first) = cidrs.iter().position(|c| *c == cidr) {
            let first = texts[first].as_ref();
            let same = match first == text {
                true => String::new(),
                false => format!(" (same as '{first}')"),
            };
            return Err(InvalidSetting(format!("{what} '{text}' given twice{same}")));
        }
        cidrs.push(cidr);
    }
    Ok(cidrs)
}

/// Parses a key timeout in milliseconds, within the spec's bounds.
pub fn parse_key_timeout(value: &str) -> Result<u32, InvalidSetting> {
    value
        .parse::<u32>()
        .ok()
        .filter(|ms| (KEY_TIMEOUT_MS_MIN..=KEY_TIMEOUT_MS_MAX).contains(ms))
        .ok_or_else(|| {
            InvalidSetting(format!(
                "invalid key timeout '{value}' (expected milliseconds, \
                 {KEY_TIMEOUT_MS_MIN} to {KEY_TIMEOUT_MS_MAX})"
            ))
        })
}

/// `value` relative to the directory holding `config_path`.
fn resolve(config_path: &Path, value: &str) -> PathBuf {
    let value = Path::new(value);
    match config_path.parent() {
        Some(dir) if value.is_relative() => dir.join(value),
        _ => value.to_owned(),
    }
}
