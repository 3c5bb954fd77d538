//! What the two text formats (mapping file, `capture.conf`) share: reading a
//! file as UTF-8, comments, and errors that say `FILE:LINE: message`.

use std::io;
use std::path::{Path, PathBuf};

/// A file could not be read, or line `line` of it is invalid.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be read at all.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Line `line` (1-based) of `file` is invalid.
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
}

/// The text of `path`, which must be UTF-8; `-` is standard input.
pub(crate) fn read_text(path: &Path) -> Result<String, SourceError> {
    let read = match is_stdin(path) {
        true => {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut io::stdin().lock(), &mut bytes).map(|_| bytes)
        }
        false => std::fs::read(path),
    };
    let bytes = read.map_err(|source| SourceError::Io {
        path: PathBuf::from(name_of(path)),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| SourceError::Syntax {
        file: name_of(path),
        line: line_of_offset(e.as_bytes(), e.utf8_error().valid_up_to()),
        message: "not valid UTF-8".to_owned(),
    })
}

/// Whether `path` names standard input (`-`).
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How errors name `path`: `stdin` for `-`, else the path.
pub fn name_of(path: &Path) -> String {
    match is_stdin(path) {
        true => "stdin".to_owned(),
        false => path.display().to_string(),
    }
}

/// The lines of `text` (without a UTF-8 byte-order mark and CRs), numbered
/// from 1.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

/// The text of `line` before its comment: a `#` at the start of the line or
/// after a blank (so a `#` inside a token survives).
pub(crate) fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let start = bytes
        .iter()
        .enumerate()
        .find(|&(i, &c)| c == b'#' && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t')))
        .map_or(line.len(), |(i, _)| i);
    &line[..start]
}

/// 1-based line number of byte `offset`.
fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&c| c == b'\n')
        .count()
}
