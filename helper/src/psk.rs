//! Node-pair secrets (`peer` nest, `psk` attribute) and the files they come
//! from.
//!
//! A secret file holds either exactly [`PSK_LEN`] (32) raw bytes, or those
//! bytes in standard base64 with padding, as `wg genpsk` writes them: 44
//! characters, optionally followed by a newline or other trailing
//! whitespace. Nothing else is accepted, and the error says what the file
//! held instead (its size, the wrong character and where it is, ...), never
//! any of its bytes that could be key material. On the command line, `-`
//! reads standard input ([`Psk::from_arg`]); in `capture.conf` a path is
//! always a file ([`Psk::from_file`]).
//!
//! Secrets are wiped from memory when dropped (best effort: the bytes this
//! crate held; the kernel's copy is the kernel's business), and their
//! `Debug` form does not show them.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use crate::uapi;

/// Bytes in a node-pair secret.
pub const PSK_LEN: usize = uapi::PSK_LEN;

/// Characters of the base64 form of a secret (`wg genpsk`).
pub const PSK_BASE64_LEN: usize = PSK_LEN.div_ceil(3) * 4;

/// A secret file larger than this is not even read to the end.
const MAX_FILE_LEN: usize = 4096;

const EXPECTED: &str = "expected exactly 32 raw bytes, or 32 bytes in base64 as `wg genpsk` writes";

/// A node-pair secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk([u8; PSK_LEN]);

impl Psk {
    /// The secret from these bytes, exactly as a secret file would hold them.
    pub fn parse(content: &[u8]) -> Result<Psk, PskFormatError> {
        if content.is_empty() {
            return Err(PskFormatError::Empty);
        }
        if let Ok(raw) = <[u8; PSK_LEN]>::try_from(content) {
            return Ok(Psk(raw));
        }
        let text = content.trim_ascii_end();
        if text.is_empty() {
            return Err(PskFormatError::OnlyWhitespace);
        }
        let is_text = text
            .iter()
            .all(|c| c.is_ascii_graphic() || c.is_ascii_whitespace());
        if !is_text {
            return Err(PskFormatError::Binary { len: content.len() });
        }
        if text.len() != PSK_BASE64_LEN {
            return Err(PskFormatError::Base64Length { chars: text.len() });
        }
        let mut out = [0u8; PSK_LEN];
        let decoded = decode_base64(text, &mut out);
        let result = match decoded {
            Ok(PSK_LEN) => Ok(Psk(out)),
            Ok(len) => Err(PskFormatError::Base64Decoded { len }),
            Err(e) => Err(e),
        };
        crate::netlink::wipe(&mut out);
        result
    }

    /// Reads the secret file given on a command line: `-` reads standard
    /// input, anything else is [`Psk::from_file`].
    pub fn from_arg(path: &Path) -> Result<Psk, PskError> {
        if path.as_os_str() == "-" {
            return Psk::from_reader(io::stdin().lock(), "stdin");
        }
        Psk::from_file(path)
    }

    /// Reads the secret file at `path` (taken literally: `-` is a file).
    pub fn from_file(path: &Path) -> Result<Psk, PskError> {
        let name = path.display().to_string();
        match std::fs::File::open(path) {
            Ok(file) => Psk::from_reader(file, &name),
            Err(e) => Err(PskError {
                file: name,
                problem: PskProblem::Io(e),
            }),
        }
    }

    /// Reads a secret from `reader`; `name` names it in errors.
    pub fn from_reader(reader: impl Read, name: &str) -> Result<Psk, PskError> {
        let err = |problem| PskError {
            file: name.to_owned(),
            problem,
        };
        let mut content = Vec::with_capacity(MAX_FILE_LEN + 1);
        let read = reader
            .take(MAX_FILE_LEN as u64 + 1)
            .read_to_end(&mut content);
        let result = match read {
            Err(e) => Err(err(PskProblem::Io(e))),
            Ok(_) if content.len() > MAX_FILE_LEN => {
                Err(err(PskProblem::Format(PskFormatError::TooLarge)))
            }
            Ok(_) => Psk::parse(&content).map_err(|e| err(PskProblem::Format(e))),
        };
        // The capacity was reserved up front, so this is the only copy.
        crate::netlink::wipe(&mut content);
        result
    }

    /// The secret itself, for the `psk` attribute.
    pub fn as_bytes(&self) -> &[u8; PSK_LEN] {
        &self.0
    }
}

impl Drop for Psk {
    fn drop(&mut self) {
        crate::netlink::wipe(&mut self.0);
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<secret>)")
    }
}

/// What is wrong with the content of a secret file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PskFormatError {
    #[error("empty ({EXPECTED})")]
    Empty,
    #[error("only whitespace ({EXPECTED})")]
    OnlyWhitespace,
    #[error("more than {MAX_FILE_LEN} bytes ({EXPECTED})")]
    TooLarge,
    #[error("{len} bytes of binary data ({EXPECTED})")]
    Binary { len: usize },
    #[error("base64 text of {chars} characters, expected {PSK_BASE64_LEN} (32 bytes, as `wg genpsk` writes)")]
    Base64Length { chars: usize },
    #[error("invalid base64: character {} at position {position}", describe_char(*.byte))]
    Base64Char { byte: u8, position: usize },
    #[error("invalid base64: padding '=' at position {position} is not at the end")]
    Base64Padding { position: usize },
    #[error(
        "invalid base64: the last character has bits set beyond the decoded bytes (not canonical)"
    )]
    Base64Trailing,
    #[error("base64 decodes to {len} bytes, expected 32")]
    Base64Decoded { len: usize },
}

/// A secret file that could not be read or holds no valid secret.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct PskError {
    /// The file (`stdin` for `-`).
    pub file: String,
    pub problem: PskProblem,
}

/// Why a secret file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PskProblem {
    #[error("{0}")]
    Io(io::Error),
    #[error("{0}")]
    Format(PskFormatError),
}

fn describe_char(c: u8) -> String {
    match c {
        b' ' => "' ' (space)".to_owned(),
        c if c.is_ascii_graphic() => format!("'{}'", c as char),
        c => format!("{:?}", c as char),
    }
}

/// The 6-bit value of a standard base64 character.
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Strict standard base64 with padding (RFC 4648 §4): the length is a
/// multiple of 4, `=` only as the last one or two characters, no bits set
/// beyond the data. Writes into `out` and returns the number of bytes; `text`
/// must decode to at most `out.len()` bytes.
fn decode_base64(text: &[u8], out: &mut [u8]) -> Result<usize, PskFormatError> {
    let pad = text
        .iter()
        .rev()
        .take(2)
        .take_while(|&&c| c == b'=')
        .count();
    let data = &text[..text.len() - pad];
    if let Some(position) = data.iter().position(|&c| c == b'=') {
        return Err(PskFormatError::Base64Padding { position });
    }
    if !text.len().is_multiple_of(4) {
        return Err(PskFormatError::Base64Length { chars: text.len() });
    }
    let (mut acc, mut bits, mut len) = (0u32, 0u32, 0usize);
    for (position, &c) in data.iter().enumerate() {
        let v = sextet(c).ok_or(PskFormatError::Base64Char { byte: c, position })?;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            let byte = (acc >> bits) as u8;
            let slot = out
                .get_mut(len)
                .ok_or(PskFormatError::Base64Decoded { len: len + 1 })?;
            *slot = byte;
            len += 1;
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return Err(PskFormatError::Base64Trailing);
    }
    Ok(len)
}
