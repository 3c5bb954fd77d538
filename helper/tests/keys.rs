//! The kernel module's per-flow key schedule (`kmod/keys/schedule.rs`,
//! compiled here verbatim) on the `sha2` crate's SHA-256: HMAC against
//! RFC 4231, HKDF against RFC 5869, the whole schedule against the vectors in
//! `spec/key-schedule.md` (parsed from the spec itself; an independent Python
//! script, `spec/key-schedule-vectors.py`, produced them), and the properties
//! the design relies on: every input field changes the keys, the directions
//! differ, an IPv4-mapped address is its IPv4 address, identities cannot be
//! shifted across their boundary, key material is wiped when dropped.

#[rustfmt::skip]
#[path = "../../kmod/keys/schedule.rs"]
mod schedule;

use std::collections::HashMap;
use std::net::IpAddr;

use schedule::{
    derive, derive_with_prk, expand_label, flow_info, hkdf_expand, hkdf_extract, hkdf_label, hmac,
    keys_from_info, keys_from_info_into, Cipher, DirKeys, FlowKeys, FlowSecret, Identities, Ip,
    Isns, KeyError, NodePairSecret, Prk, Tuple,
};
use sha2::Digest;

/// The reference SHA-256.
struct Sha(sha2::Sha256);

impl schedule::Sha256 for Sha {
    fn new() -> Self {
        Sha(sha2::Sha256::new())
    }
    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }
    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{s}: {e}")))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- RFCs

#[test]
fn rfc4231_hmac_sha256() {
    let long_key = [0xaa; 131];
    let cases: [(&[u8], &[u8], &str); 6] = [
        (
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            &[0xaa; 20],
            &[0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            &unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
            &[0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            &long_key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            &long_key,
            b"This is a test using a larger than block-size key and a larger than \
              block-size data. The key needs to be hashed before being used by the \
              HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ];
    for (n, (key, data, mac)) in cases.iter().enumerate() {
        assert_eq!(hex(&hmac::<Sha>(key, &[data])), *mac, "RFC 4231 case {n}");
        // The message may come in any number of parts.
        let (a, b) = data.split_at(data.len() / 3);
        assert_eq!(
            hex(&hmac::<Sha>(key, &[a, &[], b])),
            *mac,
            "RFC 4231 case {n}, split"
        );
    }
}

#[test]
fn rfc5869_hkdf_sha256() {
    let r = |a: u8, b: u8| (a..=b).collect::<Vec<u8>>();
    let cases = [
        (
            vec![0x0b; 22],
            r(0x00, 0x0c),
            r(0xf0, 0xf9),
            42,
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
             34007208d5b887185865",
        ),
        (
            r(0x00, 0x4f),
            r(0x60, 0xaf),
            r(0xb0, 0xff),
            82,
            "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c\
             59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71\
             cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            vec![0x0b; 22],
            vec![],
            vec![],
            42,
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d\
             9d201395faa4b61a96c8",
        ),
    ];
    for (n, (ikm, salt, info, len, prk, okm)) in cases.iter().enumerate() {
        let p = hkdf_extract::<Sha>(salt, ikm);
        assert_eq!(hex(&p), *prk, "RFC 5869 case {}", n + 1);
        let mut out = vec![0u8; *len];
        hkdf_expand::<Sha>(&p, info, &mut out).unwrap();
        assert_eq!(hex(&out), *okm, "RFC 5869 case {}", n + 1);
    }
}

#[test]
fn hkdf_expand_limits() {
    let prk = [7u8; 32];
    let mut long = vec![0u8; 255 * 32];
    hkdf_expand::<Sha>(&prk, b"x", &mut long).unwrap();
    // Output is a prefix-stable stream: a shorter request is a prefix.
    let mut short = [0u8; 45];
    hkdf_expand::<Sha>(&prk, b"x", &mut short).unwrap();
    assert_eq!(short[..], long[..45]);
    let mut too_long = vec![0u8; 255 * 32 + 1];
    assert_eq!(
        hkdf_expand::<Sha>(&prk, b"x", &mut too_long),
        Err(KeyError::OutputTooLong)
    );
    assert!(too_long.iter().all(|&b| b == 0), "nothing written on error");
    let mut empty = [0u8; 0];
    hkdf_expand::<Sha>(&prk, b"x", &mut empty).unwrap();
}

#[test]
fn hkdf_label_bytes() {
    // u16 length, u8 len("tlshub v1 c2s key") = 17, the label, empty context.
    let l = hkdf_label(b"c2s key", b"", 16).unwrap();
    assert_eq!(
        hex(l.as_bytes()),
        format!("0010{:02x}{}00", 17, hex(b"tlshub v1 c2s key"))
    );
    let l = hkdf_label(b"x", b"ctx", 300).unwrap();
    assert_eq!(
        hex(l.as_bytes()),
        format!("012c0b{}03{}", hex(b"tlshub v1 x"), hex(b"ctx"))
    );
    // The label fills its length byte exactly (10-byte prefix + 245).
    assert!(hkdf_label(&[b'a'; 245], &[b'c'; 255], 32).is_ok());
    assert_eq!(
        hkdf_label(&[b'a'; 246], b"", 32).err(),
        Some(KeyError::LabelTooLong)
    );
    assert_eq!(
        hkdf_label(b"a", &[b'c'; 256], 32).err(),
        Some(KeyError::LabelTooLong)
    );
    let mut out = [0u8; 12];
    assert_eq!(
        expand_label::<Sha>(&[1; 32], &[b'a'; 246], b"", &mut out),
        Err(KeyError::LabelTooLong)
    );
}

// ----------------------------------------------- vectors of the spec

const SPEC: &str = include_str!("../../spec/key-schedule.md");

/// The vectors of `spec/key-schedule.md`: `name = value` lines of the
/// fenced blocks under each `### Vector N` heading between the markers.
fn spec_vectors() -> Vec<HashMap<String, String>> {
    let body = SPEC
        .split_once("<!-- vectors:begin -->")
        .and_then(|(_, rest)| rest.split_once("<!-- vectors:end -->"))
        .map(|(body, _)| body)
        .expect("vectors markers in spec/key-schedule.md");
    let mut vectors = Vec::new();
    for section in body.split("### Vector ").skip(1) {
        let mut v = HashMap::new();
        let mut in_block = false;
        for line in section.lines() {
            if line.starts_with("```") {
                in_block = !in_block;
            } else if in_block {
                let (k, val) = line.split_once(" = ").expect("name = value");
                assert!(
                    v.insert(k.trim().to_string(), val.trim().to_string())
                        .is_none(),
                    "duplicate {k}"
                );
            }
        }
        vectors.push(v);
    }
    vectors
}

fn ip(s: &str) -> Ip {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => Ip::V4(a.octets()),
        IpAddr::V6(a) => Ip::V6(a.octets()),
    }
}

/// One flow's inputs.
#[derive(Clone)]
struct Input {
    secret: Vec<u8>,
    cipher: Cipher,
    tuple: Tuple,
    isns: Isns,
    client_id: Vec<u8>,
    server_id: Vec<u8>,
}

impl Input {
    fn from_vector(v: &HashMap<String, String>) -> Self {
        let f = |k: &str| v.get(k).unwrap_or_else(|| panic!("no {k}")).as_str();
        let (name, id) = f("cipher").split_once(' ').unwrap();
        let id: u8 = id.trim_matches(|c| c == '(' || c == ')').parse().unwrap();
        let cipher = Cipher::from_id(id).unwrap();
        let expect_name = match cipher {
            Cipher::Aes128Gcm => "aes-128-gcm",
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::Chacha20Poly1305 => "chacha20-poly1305",
        };
        assert_eq!(name, expect_name);
        let isn = |k: &str| u32::from_str_radix(f(k).strip_prefix("0x").unwrap(), 16).unwrap();
        Input {
            secret: unhex(f("secret")),
            cipher,
            tuple: Tuple {
                client_ip: ip(f("client_ip")),
                client_port: f("client_port").parse().unwrap(),
                server_ip: ip(f("server_ip")),
                server_port: f("server_port").parse().unwrap(),
            },
            isns: Isns {
                client: isn("client_isn"),
                server: isn("server_isn"),
            },
            client_id: f("client_identity").as_bytes().to_vec(),
            server_id: f("server_identity").as_bytes().to_vec(),
        }
    }

    fn ids(&self) -> Identities<'_> {
        Identities {
            client: &self.client_id,
            server: &self.server_id,
        }
    }

    fn secret(&self) -> NodePairSecret {
        NodePairSecret::from_slice(&self.secret, 1).expect("32-byte secret")
    }

    fn derive(&self) -> Result<FlowKeys, KeyError> {
        derive::<Sha>(
            &self.secret(),
            self.cipher,
            &self.tuple,
            &self.isns,
            &self.ids(),
        )
    }

    /// The four outputs, hex: c2s key, c2s iv, s2c key, s2c iv.
    fn outputs(&self) -> [String; 4] {
        let k = self.derive().unwrap();
        [
            hex(k.c2s.key()),
            hex(k.c2s.iv()),
            hex(k.s2c.key()),
            hex(k.s2c.iv()),
        ]
    }
}

fn check_ktls(d: &DirKeys) {
    let iv = d.iv();
    match d.cipher() {
        Cipher::Aes128Gcm | Cipher::Aes256Gcm => {
            assert_eq!(d.ktls_salt(), &iv[..4]);
            assert_eq!(d.ktls_iv(), &iv[4..]);
        }
        Cipher::Chacha20Poly1305 => {
            assert!(d.ktls_salt().is_empty());
            assert_eq!(d.ktls_iv(), &iv[..]);
        }
    }
    assert_eq!(d.ktls_rec_seq(), [0; 8]);
    assert_eq!(d.key().len(), d.cipher().key_len());
}

#[test]
fn spec_vectors_byte_exact() {
    let vectors = spec_vectors();
    assert!(vectors.len() >= 5, "{} vectors", vectors.len());
    let mut ciphers = Vec::new();
    for (n, v) in vectors.iter().enumerate() {
        let n = n + 1;
        let want = |k: &str| v.get(k).unwrap_or_else(|| panic!("vector {n}: no {k}"));
        let input = Input::from_vector(v);
        ciphers.push(input.cipher);

        let prk = Prk::extract::<Sha>(&input.secret());
        assert_eq!(prk.epoch(), 1);
        assert_eq!(&hex(prk.bytes()), want("prk"), "vector {n}: prk");
        let info = flow_info(input.cipher, &input.tuple, &input.isns, &input.ids()).unwrap();
        assert_eq!(&hex(info.as_bytes()), want("info"), "vector {n}: info");
        let flow = FlowSecret::expand::<Sha>(&prk, &info).unwrap();
        assert_eq!(&hex(flow.bytes()), want("flow"), "vector {n}: flow");
        let key_len = input.cipher.key_len();
        for (label, len, name) in [
            (schedule::C2S_KEY, key_len, "c2s_key_label"),
            (schedule::C2S_IV, 12, "c2s_iv_label"),
            (schedule::S2C_KEY, key_len, "s2c_key_label"),
            (schedule::S2C_IV, 12, "s2c_iv_label"),
        ] {
            let l = hkdf_label(label, b"", len).unwrap();
            assert_eq!(&hex(l.as_bytes()), want(name), "vector {n}: {name}");
        }

        let keys =
            derive_with_prk::<Sha>(&prk, input.cipher, &input.tuple, &input.isns, &input.ids())
                .unwrap();
        assert_eq!(&hex(keys.c2s.key()), want("c2s_key"), "vector {n}: c2s_key");
        assert_eq!(&hex(keys.c2s.iv()), want("c2s_iv"), "vector {n}: c2s_iv");
        assert_eq!(&hex(keys.s2c.key()), want("s2c_key"), "vector {n}: s2c_key");
        assert_eq!(&hex(keys.s2c.iv()), want("s2c_iv"), "vector {n}: s2c_iv");
        check_ktls(&keys.c2s);
        check_ktls(&keys.s2c);
        // derive (Extract included) agrees with the cached-PRK path.
        assert_eq!(
            input.outputs(),
            [
                want("c2s_key").clone(),
                want("c2s_iv").clone(),
                want("s2c_key").clone(),
                want("s2c_iv").clone()
            ]
        );
    }
    for c in [
        Cipher::Aes128Gcm,
        Cipher::Aes256Gcm,
        Cipher::Chacha20Poly1305,
    ] {
        assert!(ciphers.contains(&c), "no vector for {c:?}");
    }
}

#[test]
fn spec_vector_4_is_vector_1_through_a_dual_stack_socket() {
    let v = spec_vectors();
    let (v1, v4) = (&v[0], &v[3]);
    assert!(v4["client_ip"].starts_with("::ffff:"));
    assert!(!v1["client_ip"].contains(':'));
    for k in [
        "prk", "info", "flow", "c2s_key", "c2s_iv", "s2c_key", "s2c_iv",
    ] {
        assert_eq!(v1[k], v4[k], "{k}");
    }
}

#[test]
fn longest_info_fills_the_buffer() {
    assert_eq!(schedule::FLOW_INFO_MAX_LEN, 699);
    // Vector 5: IPv6 and two identities of the maximum length.
    let v = &spec_vectors()[4];
    assert_eq!(v["client_identity"].len(), schedule::IDENTITY_MAX_LEN);
    assert_eq!(v["server_identity"].len(), schedule::IDENTITY_MAX_LEN);
    assert_eq!(v["info"].len() / 2, schedule::FLOW_INFO_MAX_LEN);
}

// ------------------------------------------------------- properties

fn base() -> Input {
    Input::from_vector(&spec_vectors()[0])
}

#[test]
fn directions_never_share_key_or_iv() {
    for v in spec_vectors() {
        let [c2s_key, c2s_iv, s2c_key, s2c_iv] = Input::from_vector(&v).outputs();
        assert_ne!(c2s_key, s2c_key);
        assert_ne!(c2s_iv, s2c_iv);
    }
}

#[test]
fn every_input_field_changes_every_output() {
    let b = base();
    let want = b.outputs();
    let mut variants: Vec<(&str, Input)> = Vec::new();
    let mut m = |name, f: &dyn Fn(&mut Input)| {
        let mut i = b.clone();
        f(&mut i);
        variants.push((name, i));
    };
    m("secret", &|i| i.secret[31] ^= 1);
    m("cipher 128 -> 256", &|i| i.cipher = Cipher::Aes256Gcm);
    m("cipher 128 -> chacha", &|i| {
        i.cipher = Cipher::Chacha20Poly1305
    });
    m("client ip", &|i| i.tuple.client_ip = ip("10.244.1.6"));
    m("client port", &|i| i.tuple.client_port += 1);
    m("server ip", &|i| i.tuple.server_ip = ip("10.244.2.8"));
    m("server port", &|i| i.tuple.server_port += 1);
    m("client isn", &|i| i.isns.client ^= 0x8000_0000);
    m("server isn", &|i| i.isns.server += 1);
    m("client identity", &|i| {
        i.client_id = b"shop/frontend-other".to_vec()
    });
    m("server identity", &|i| {
        i.server_id = b"billing/cart-0".to_vec()
    });
    m("namespace only", &|i| {
        i.server_id = b"shop2/cart-0".to_vec()
    });
    m("roles swapped", &|i| {
        std::mem::swap(&mut i.tuple.client_ip, &mut i.tuple.server_ip);
        std::mem::swap(&mut i.tuple.client_port, &mut i.tuple.server_port);
        std::mem::swap(&mut i.isns.client, &mut i.isns.server);
        std::mem::swap(&mut i.client_id, &mut i.server_id);
    });
    m("isns swapped", &|i| {
        std::mem::swap(&mut i.isns.client, &mut i.isns.server)
    });
    m("ports swapped", &|i| {
        std::mem::swap(&mut i.tuple.client_port, &mut i.tuple.server_port)
    });
    m("ips swapped", &|i| {
        std::mem::swap(&mut i.tuple.client_ip, &mut i.tuple.server_ip)
    });
    m("ipv6", &|i| {
        i.tuple.client_ip = ip("::10.244.1.5");
        i.tuple.server_ip = ip("::10.244.2.7");
    });
    for (name, i) in &variants {
        let got = i.outputs();
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_ne!(g, w, "{name}: output {k} unchanged");
        }
    }
    // The epoch is not an input: the secret is (a new epoch has a new one).
    let e = NodePairSecret::from_slice(&b.secret, 2).unwrap();
    let k = derive::<Sha>(&e, b.cipher, &b.tuple, &b.isns, &b.ids()).unwrap();
    assert_eq!(hex(k.c2s.key()), want[0]);
}

#[test]
fn v4_mapped_is_v4() {
    let b = base();
    let mut m = b.clone();
    m.tuple.client_ip = ip("::ffff:10.244.1.5");
    m.tuple.server_ip = ip("::ffff:10.244.2.7");
    assert_eq!(m.outputs(), b.outputs());
    assert_eq!(ip("::ffff:1.2.3.4").canonical(), Ip::V4([1, 2, 3, 4]));
    // Only ::ffff:0:0/96 is IPv4: an IPv4-compatible or other address stays.
    for s in [
        "::1.2.3.4",
        "::fffe:1.2.3.4",
        "1::ffff:1.2.3.4",
        "::ffff:0:1.2.3.4",
    ] {
        assert_eq!(ip(s).canonical(), ip(s), "{s}");
    }
    // Agrees with the mapping's rule (kmod/state/ident.rs).
    for s in [
        "::ffff:10.0.0.1",
        "::ffff:0.0.0.0",
        "::ffff:255.255.255.255",
        "::1.2.3.4",
        "fd00::ffff:1.2.3.4",
        "::",
    ] {
        let IpAddr::V6(a) = s.parse::<IpAddr>().unwrap() else {
            unreachable!()
        };
        let want = match tlshub::ident::v4_mapped(&a.octets()) {
            Some(v4) => Ip::V4(v4),
            None => Ip::V6(a.octets()),
        };
        assert_eq!(Ip::V6(a.octets()).canonical(), want, "{s}");
    }
}

#[test]
fn identities_cannot_shift_across_their_boundary() {
    let mut a = base();
    a.client_id = b"ab".to_vec();
    a.server_id = b"c".to_vec();
    let mut b = base();
    b.client_id = b"a".to_vec();
    b.server_id = b"bc".to_vec();
    let ia = flow_info(a.cipher, &a.tuple, &a.isns, &a.ids()).unwrap();
    let ib = flow_info(b.cipher, &b.tuple, &b.isns, &b.ids()).unwrap();
    assert_ne!(ia.as_bytes(), ib.as_bytes());
    assert!(hex(ia.as_bytes()).ends_with("00026162000163"));
    assert!(hex(ib.as_bytes()).ends_with("00016100026263"));
    let (oa, ob) = (a.outputs(), b.outputs());
    for k in 0..4 {
        assert_ne!(oa[k], ob[k]);
    }
}

#[test]
fn bad_inputs_fail() {
    let b = base();
    let long = vec![b'a'; schedule::IDENTITY_MAX_LEN + 1];
    let max = vec![b'a'; schedule::IDENTITY_MAX_LEN];
    let try_ids = |c: &[u8], s: &[u8]| {
        derive::<Sha>(
            &b.secret(),
            b.cipher,
            &b.tuple,
            &b.isns,
            &Identities {
                client: c,
                server: s,
            },
        )
        .map(|_| ())
    };
    assert_eq!(try_ids(b"", b"x"), Err(KeyError::BadIdentity));
    assert_eq!(try_ids(b"x", b""), Err(KeyError::BadIdentity));
    assert_eq!(try_ids(&long, b"x"), Err(KeyError::BadIdentity));
    assert_eq!(try_ids(b"x", &long), Err(KeyError::BadIdentity));
    assert_eq!(try_ids(&max, &max), Ok(()));
    let mut mixed = b.clone();
    mixed.tuple.server_ip = ip("fd00::7");
    assert_eq!(mixed.derive().err(), Some(KeyError::MixedFamilies));
    // A v4-mapped client with an IPv4 server is one family once canonical.
    let mut m = b.clone();
    m.tuple.client_ip = ip("::ffff:10.244.1.5");
    assert_eq!(m.outputs(), b.outputs());
    assert!(NodePairSecret::from_slice(&[0; 31], 0).is_none());
    assert!(NodePairSecret::from_slice(&[0; 33], 0).is_none());
}

#[test]
fn limits_and_ids() {
    assert_eq!(schedule::IDENTITY_MAX_LEN, tlshub::ident::POD_NAME_MAX_LEN);
    assert_eq!(schedule::IDENTITY_MAX_LEN, tlshub::uapi::POD_NAME_MAX_LEN);
    for (c, id, key, salt) in [
        (Cipher::Aes128Gcm, 1, 16, 4),
        (Cipher::Aes256Gcm, 2, 32, 4),
        (Cipher::Chacha20Poly1305, 3, 32, 0),
    ] {
        assert_eq!(c.id(), id);
        assert_eq!(Cipher::from_id(id), Some(c));
        assert_eq!(c.key_len(), key);
        assert_eq!(c.salt_len(), salt);
    }
    assert_eq!(Cipher::from_id(0), None);
    assert_eq!(Cipher::from_id(4), None);
}

#[test]
fn tx_rx_by_role() {
    let k = base().derive().unwrap();
    let (tx, rx) = k.tx_rx(true);
    assert_eq!((tx.iv(), rx.iv()), (k.c2s.iv(), k.s2c.iv()));
    let (tx, rx) = k.tx_rx(false);
    assert_eq!((tx.iv(), rx.iv()), (k.s2c.iv(), k.c2s.iv()));
}

/// The bytes of `value` after it is dropped in place. Only for types
/// without padding (every byte initialised), which the size checks show.
fn bytes_after_drop<T>(value: T) -> Vec<u8> {
    let mut slot = std::mem::ManuallyDrop::new(value);
    // SAFETY: `slot` is never used as a `T` again; its storage stays valid.
    unsafe { std::mem::ManuallyDrop::drop(&mut slot) };
    let p = &slot as *const std::mem::ManuallyDrop<T> as *const u8;
    // SAFETY: the storage is live and, for the types below, has no padding.
    unsafe { std::slice::from_raw_parts(p, std::mem::size_of::<T>()) }.to_vec()
}

#[test]
fn key_material_is_wiped_on_drop() {
    // No padding: 32 + 8 bytes; 1 + 32 + 12 bytes.
    assert_eq!(std::mem::size_of::<Prk>(), 40);
    assert_eq!(std::mem::size_of::<NodePairSecret>(), 40);
    assert_eq!(std::mem::size_of::<FlowSecret>(), 32);
    assert_eq!(std::mem::size_of::<DirKeys>(), 45);
    let b = base();
    // Epoch 0, so every byte must be zero.
    let secret = NodePairSecret::from_slice(&[0xa5; 32], 0).unwrap();
    let prk = Prk::extract::<Sha>(&secret);
    assert!(prk.bytes().iter().any(|&x| x != 0));
    assert!(bytes_after_drop(secret).iter().all(|&x| x == 0));
    let info = flow_info(b.cipher, &b.tuple, &b.isns, &b.ids()).unwrap();
    let flow = FlowSecret::expand::<Sha>(&prk, &info).unwrap();
    assert!(bytes_after_drop(prk).iter().all(|&x| x == 0));
    assert!(bytes_after_drop(flow).iter().all(|&x| x == 0));
    let keys = b.derive().unwrap();
    // Only the cipher's discriminant may be left.
    let c2s = bytes_after_drop(keys.c2s);
    assert!(c2s.iter().filter(|&&x| x != 0).count() <= 1, "{c2s:?}");
    let s2c = bytes_after_drop(keys.s2c);
    assert!(s2c.iter().filter(|&&x| x != 0).count() <= 1, "{s2c:?}");
}

/// The module derives in place (`keys_from_info_into`, `Prk::copy_from`:
/// review L2): the same bytes as the by-value path, and nothing of an
/// earlier flow survives in a reused slot.
#[test]
fn in_place_derivation_matches() {
    let b = base();
    let prk = Prk::extract::<Sha>(&b.secret());
    let mut slot = Prk::zeroed();
    assert!(slot.bytes().iter().all(|&x| x == 0));
    slot.copy_from(&prk);
    assert_eq!(slot.bytes(), prk.bytes());
    assert_eq!(slot.epoch(), prk.epoch());
    for c in [
        Cipher::Aes128Gcm,
        Cipher::Aes256Gcm,
        Cipher::Chacha20Poly1305,
    ] {
        let info = flow_info(c, &b.tuple, &b.isns, &b.ids()).unwrap();
        let want = keys_from_info::<Sha>(&prk, c, &info).unwrap();
        // A slot that held another cipher's keys of another flow.
        let mut out = FlowKeys::zeroed(Cipher::Aes256Gcm);
        let other = flow_info(
            Cipher::Aes256Gcm,
            &b.tuple,
            &Isns {
                client: 1,
                server: 2,
            },
            &b.ids(),
        )
        .unwrap();
        keys_from_info_into::<Sha>(&prk, Cipher::Aes256Gcm, &other, &mut out).unwrap();
        keys_from_info_into::<Sha>(&slot, c, &info, &mut out).unwrap();
        for (got, want) in [(&out.c2s, &want.c2s), (&out.s2c, &want.s2c)] {
            assert_eq!(got.cipher(), c);
            assert_eq!(got.key(), want.key(), "{c:?}");
            assert_eq!(got.iv(), want.iv(), "{c:?}");
            assert_eq!(got.key().len(), c.key_len());
        }
    }
    schedule::burn_stack();
}

#[test]
fn ct_eq_compares_whole_slices() {
    assert!(schedule::ct_eq(b"", b""));
    assert!(schedule::ct_eq(&[7; 32], &[7; 32]));
    let mut b = [7u8; 32];
    for i in [0, 15, 31] {
        b[i] ^= 0x80;
        assert!(!schedule::ct_eq(&[7; 32], &b), "differs at {i}");
        b[i] ^= 0x80;
    }
    assert!(!schedule::ct_eq(&[7; 32], &[7; 31]));
}

#[test]
fn zeroize_clears() {
    let mut buf = [0xffu8; 70];
    schedule::zeroize(&mut buf);
    assert_eq!(buf, [0; 70]);
}
