//! The key-provider mode, shared by `capture.conf`, the CLI and the kernel.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::uapi;

/// Where TLS keys come from: the seed's `enum key_provider_mode`.
///
/// The discriminants are the wire values of the spec's `mode` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keys from the in-kernel TLSHub handshake (the default).
    #[default]
    Tlshub,
    /// Keys exported from an OpenSSL handshake.
    Openssl,
    /// Keys exported from a BoringSSL handshake.
    Boringssl,
}

impl Mode {
    /// Every mode, in wire order.
    pub const ALL: [Mode; 3] = [Mode::Tlshub, Mode::Openssl, Mode::Boringssl];

    /// The name used in config files, on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Tlshub => "tlshub",
            Mode::Openssl => "openssl",
            Mode::Boringssl => "boringssl",
        }
    }

    /// The value of the `mode` netlink attribute.
    pub fn to_wire(self) -> u32 {
        match self {
            Mode::Tlshub => uapi::mode::TLSHUB,
            Mode::Openssl => uapi::mode::OPENSSL,
            Mode::Boringssl => uapi::mode::BORINGSSL,
        }
    }

    /// Decodes the `mode` netlink attribute; `None` for values this build
    /// does not know (a newer kernel module).
    pub fn from_wire(value: u32) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.to_wire() == value)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not `tlshub`, `openssl` or `boringssl`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mode '{0}' (expected tlshub, openssl or boringssl)")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}
