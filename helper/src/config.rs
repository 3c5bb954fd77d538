//! The seed's `capture.conf`: which key provider to use and where the
//! pod-node mapping lives.
//!
//! ```text
//! # capture.conf
//! mode = tlshub                     # tlshub | openssl | boringssl
//! pod_node_config = pod_node_mapping.conf
//! log_level = info                  # accepted and ignored
//! ```
//!
//! `key = value` per line, `#` comments (at the start of a line or after a
//! blank, so a `#` inside a path survives), blank lines, CRLF accepted. The
//! seed also wrote `log_level`, `verbose` and `netlink_protocol`; they meant
//! nothing to the new module, so they are accepted and ignored to keep old
//! files loadable. Anything else is an error rather than silently dropped,
//! because a misspelt `mode` would otherwise quietly select the default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::mapping::DEFAULT_PATH;
use crate::source::{self, SourceError};
use crate::Mode;

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
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            mode: Mode::default(),
            pod_node_config: PathBuf::from(DEFAULT_PATH),
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
                k if IGNORED_KEYS.contains(&k) => {}
                _ => return Err(err(format!("unknown key '{key}'"))),
            }
        }
        Ok(config)
    }
}

/// `value` relative to the directory holding `config_path`.
fn resolve(config_path: &Path, value: &str) -> PathBuf {
    let value = Path::new(value);
    match config_path.parent() {
        Some(dir) if value.is_relative() => dir.join(value),
        _ => value.to_owned(),
    }
}
