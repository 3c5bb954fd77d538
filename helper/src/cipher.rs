//! The kTLS cipher of secured flows, shared by `capture.conf`, the CLI and
//! the kernel.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::uapi;

/// Cipher of new secured flows (TLS 1.3 record format); the spec's `cipher`
/// enum, whose values are the key schedule's cipher ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Cipher {
    #[serde(rename = "aes-128-gcm")]
    Aes128Gcm,
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    #[serde(rename = "chacha20-poly1305")]
    Chacha20Poly1305,
}

impl Cipher {
    /// Every cipher, in wire order.
    pub const ALL: [Cipher; 3] = [
        Cipher::Aes128Gcm,
        Cipher::Aes256Gcm,
        Cipher::Chacha20Poly1305,
    ];

    /// The name used in config files, on the command line and in JSON (the
    /// spec's enum entry).
    pub fn as_str(self) -> &'static str {
        match self {
            Cipher::Aes128Gcm => "aes-128-gcm",
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::Chacha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// The value of a `cipher` netlink attribute.
    pub fn to_wire(self) -> u32 {
        match self {
            Cipher::Aes128Gcm => uapi::cipher::AES_128_GCM,
            Cipher::Aes256Gcm => uapi::cipher::AES_256_GCM,
            Cipher::Chacha20Poly1305 => uapi::cipher::CHACHA20_POLY1305,
        }
    }

    /// Decodes a `cipher` netlink attribute; `None` for values this build
    /// does not know.
    pub fn from_wire(value: u32) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.to_wire() == value)
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cipher name that is not one of [`Cipher::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cipher '{0}' (expected aes-128-gcm, aes-256-gcm or chacha20-poly1305)")]
pub struct UnknownCipher(pub String);

impl FromStr for Cipher {
    type Err = UnknownCipher;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cipher::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCipher(s.to_owned()))
    }
}
