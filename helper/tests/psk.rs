//! Node-pair secret files: 32 raw bytes, or base64 as `wg genpsk` writes.

use std::path::{Path, PathBuf};

use tlshub::psk::{PskFormatError, PSK_BASE64_LEN};
use tlshub::Psk;

/// Bytes 0..32 and their base64 (Python's `base64.b64encode`).
const B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn key() -> Vec<u8> {
    (0..32).collect()
}

fn parse(content: &[u8]) -> Result<Vec<u8>, String> {
    Psk::parse(content)
        .map(|p| p.as_bytes().to_vec())
        .map_err(|e| e.to_string())
}

const EXPECTED: &str = "expected exactly 32 raw bytes, or 32 bytes in base64 as `wg genpsk` writes";

#[test]
fn raw_32_bytes() {
    assert_eq!(parse(&key()), Ok(key()));
    // Any 32 bytes are raw, even printable ones or ones ending in a newline.
    assert_eq!(parse(&[b'a'; 32]), Ok(vec![b'a'; 32]));
    let mut nl = vec![7u8; 31];
    nl.push(b'\n');
    assert_eq!(parse(&nl), Ok(nl.clone()));
}

#[test]
fn base64_with_and_without_trailing_whitespace() {
    assert_eq!(PSK_BASE64_LEN, 44);
    for text in [
        B64.to_owned(),
        format!("{B64}\n"),
        format!("{B64}\r\n"),
        format!("{B64}  \t\n\n"),
    ] {
        assert_eq!(parse(text.as_bytes()), Ok(key()), "{text:?}");
    }
}

#[test]
fn wrong_lengths() {
    assert_eq!(parse(b""), Err(format!("empty ({EXPECTED})")));
    assert_eq!(
        parse(b"\n \n"),
        Err(format!("only whitespace ({EXPECTED})"))
    );
    assert_eq!(
        parse(&[0xff; 31]),
        Err(format!("31 bytes of binary data ({EXPECTED})"))
    );
    assert_eq!(
        parse(&[0; 33]),
        Err(format!("33 bytes of binary data ({EXPECTED})"))
    );
    assert_eq!(
        parse(&[0x80; 64]),
        Err(format!("64 bytes of binary data ({EXPECTED})"))
    );
    // Base64 of the wrong size: 31 and 33 bytes, and a truncated key.
    let len_err = |n: usize| {
        Err(format!(
            "base64 text of {n} characters, expected 44 (32 bytes, as `wg genpsk` writes)"
        ))
    };
    assert_eq!(
        parse(b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"),
        Err("base64 decodes to 33 bytes, expected 32".to_owned())
    );
    assert_eq!(
        parse(b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="),
        Err("base64 decodes to 31 bytes, expected 32".to_owned())
    );
    assert_eq!(parse(&B64.as_bytes()[..43]), len_err(43));
    assert_eq!(parse(format!("{B64}A\n").as_bytes()), len_err(45));
    assert_eq!(parse(b"aGVsbG8=\n"), len_err(8));
    // Two keys in one file.
    assert_eq!(parse(format!("{B64}\n{B64}\n").as_bytes()), len_err(89));
}

#[test]
fn bad_base64() {
    let with = |at: usize, c: u8| {
        let mut text = B64.as_bytes().to_vec();
        text[at] = c;
        text
    };
    assert_eq!(
        parse(&with(10, b'-')),
        Err("invalid base64: character '-' at position 10".to_owned())
    );
    assert_eq!(
        parse(&with(0, b' ')),
        Err("invalid base64: character ' ' (space) at position 0".to_owned())
    );
    assert_eq!(
        parse(&with(20, b'\t')),
        Err("invalid base64: character '\\t' at position 20".to_owned())
    );
    assert_eq!(
        parse(&with(5, b'=')),
        Err("invalid base64: padding '=' at position 5 is not at the end".to_owned())
    );
    // '9' instead of '8' before the padding sets a bit beyond the 32 bytes.
    assert_eq!(
        parse(&with(42, b'9')),
        Err(
            "invalid base64: the last character has bits set beyond the decoded bytes \
             (not canonical)"
                .to_owned()
        )
    );
    // URL-safe base64 is not what `wg genpsk` writes.
    assert_eq!(
        parse(&with(3, b'_')),
        Err("invalid base64: character '_' at position 3".to_owned())
    );
    assert!(matches!(
        Psk::parse(&with(3, b'_')),
        Err(PskFormatError::Base64Char {
            byte: b'_',
            position: 3
        })
    ));
}

#[test]
fn the_secret_is_never_shown() {
    let psk = Psk::parse(B64.as_bytes()).unwrap();
    assert_eq!(format!("{psk:?}"), "Psk(<secret>)");
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tlshub-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn files() {
    let dir = TempDir::new("psk-files");
    let read = |path: &Path| {
        Psk::from_file(path)
            .map(|p| p.as_bytes().to_vec())
            .map_err(|e| e.to_string())
    };
    assert_eq!(read(&dir.file("raw", &key())), Ok(key()));
    let genpsk = dir.file("genpsk", format!("{B64}\n").as_bytes());
    assert_eq!(read(&genpsk), Ok(key()));
    let short = dir.file("short", &[1; 16]);
    assert_eq!(
        read(&short),
        Err(format!(
            "{}: 16 bytes of binary data ({EXPECTED})",
            short.display()
        ))
    );
    let empty = dir.file("empty", b"");
    assert_eq!(
        read(&empty),
        Err(format!("{}: empty ({EXPECTED})", empty.display()))
    );
    let big = dir.file("big", &[b'A'; 5000]);
    assert_eq!(
        read(&big),
        Err(format!(
            "{}: more than 4096 bytes ({EXPECTED})",
            big.display()
        ))
    );
    let missing = dir.0.join("missing");
    let err = read(&missing).unwrap_err();
    assert!(
        err.starts_with(&format!("{}: No such file or directory", missing.display())),
        "{err}"
    );
    let err = read(&dir.0).unwrap_err();
    assert!(err.starts_with(&format!("{}: ", dir.0.display())), "{err}");
    // A file called `-` is a file; only a command line's `-` is stdin.
    let dash = dir.file("-", &key());
    assert_eq!(read(&dash), Ok(key()));
    assert_eq!(
        Psk::from_arg(&dash).map(|p| p.as_bytes().to_vec()).ok(),
        Some(key())
    );
}

#[test]
fn readers_are_named_in_errors() {
    let err = Psk::from_reader(&b"nope"[..], "stdin").unwrap_err();
    assert_eq!(
        err.to_string(),
        "stdin: base64 text of 4 characters, expected 44 (32 bytes, as `wg genpsk` writes)"
    );
    let psk = Psk::from_reader(B64.as_bytes(), "stdin").unwrap();
    assert_eq!(psk.as_bytes().to_vec(), key());
}
