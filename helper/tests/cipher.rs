//! Cipher names, as the CLI, capture.conf and JSON output spell them.

use tlshub::{uapi, Cipher, UnknownCipher};

#[test]
fn names_and_wire_values() {
    for (name, cipher, wire) in [
        ("aes-128-gcm", Cipher::Aes128Gcm, uapi::cipher::AES_128_GCM),
        ("aes-256-gcm", Cipher::Aes256Gcm, uapi::cipher::AES_256_GCM),
        (
            "chacha20-poly1305",
            Cipher::Chacha20Poly1305,
            uapi::cipher::CHACHA20_POLY1305,
        ),
    ] {
        assert_eq!(name.parse::<Cipher>(), Ok(cipher));
        assert_eq!(cipher.to_string(), name);
        assert_eq!(cipher.to_wire(), wire);
        assert_eq!(Cipher::from_wire(wire), Some(cipher));
        assert_eq!(
            serde_json::to_string(&cipher).unwrap(),
            format!("\"{name}\"")
        );
    }
    assert_eq!(Cipher::from_wire(0), None);
    assert_eq!(Cipher::from_wire(uapi::cipher::MAX + 1), None);
}

#[test]
fn unknown_names() {
    for bad in [
        "",
        "aes",
        "AES-128-GCM",
        "aes128gcm",
        "aes-128-gcm ",
        "chacha20",
        "1",
    ] {
        assert_eq!(
            bad.parse::<Cipher>(),
            Err(UnknownCipher(bad.to_owned())),
            "{bad:?}"
        );
    }
    assert_eq!(
        "aes".parse::<Cipher>().unwrap_err().to_string(),
        "invalid cipher 'aes' (expected aes-128-gcm, aes-256-gcm or chacha20-poly1305)"
    );
}
