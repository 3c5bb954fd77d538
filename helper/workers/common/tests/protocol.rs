//! The worker line protocol, the flow context, hex and the command line.

use std::net::SocketAddr;

use tlshub_worker_common::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn context_v4_layout_and_roundtrip() {
    let c = encode_context(
        sa("10.0.0.1:40000"),
        sa("10.0.1.2:8080"),
        0x01020304,
        0xa0b0c0d0,
    );
    assert_eq!(c.len(), CONTEXT_LEN_V4);
    assert_eq!(hex_encode(&c), "0a0000019c400a0001021f9001020304a0b0c0d0");
    assert_eq!(
        decode_context(&c),
        Some((
            sa("10.0.0.1:40000"),
            sa("10.0.1.2:8080"),
            0x01020304,
            0xa0b0c0d0
        ))
    );
}

#[test]
fn context_v6_layout_and_roundtrip() {
    let (a, b) = (sa("[fd00::1]:1"), sa("[fd00::2]:65535"));
    let c = encode_context(a, b, 7, u32::MAX);
    assert_eq!(c.len(), CONTEXT_LEN_V6);
    assert_eq!(
        &c[..16],
        &"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(&c[16..18], &[0, 1]);
    assert_eq!(&c[34..36], &[0xff, 0xff]);
    assert_eq!(&c[36..40], &[0, 0, 0, 7]);
    assert_eq!(&c[40..44], &[0xff; 4]);
    assert_eq!(decode_context(&c), Some((a, b, 7, u32::MAX)));
}

#[test]
fn context_mixed_family_is_v4_mapped() {
    let c = encode_context(sa("10.0.0.1:1"), sa("[fd00::2]:2"), 1, 2);
    assert_eq!(c.len(), CONTEXT_LEN_V6);
    let (cl, _, _, _) = decode_context(&c).unwrap();
    assert_eq!(cl, sa("[::ffff:10.0.0.1]:1"));
}

#[test]
fn context_bad_lengths() {
    for n in [0, 19, 21, 43, 45, 64] {
        assert_eq!(decode_context(&vec![0; n]), None, "{n}");
    }
}

#[test]
fn hex() {
    assert_eq!(hex_encode(&[0, 0xab, 0xff]), "00abff");
    assert_eq!(hex_decode("00ABff"), Some(vec![0, 0xab, 0xff]));
    assert_eq!(hex_decode(""), Some(vec![]));
    assert_eq!(hex_decode("abc"), None);
    assert_eq!(hex_decode("zz"), None);
    assert_eq!(hex_decode("+1"), None);
}

#[test]
fn request_parse_and_format() {
    let ctx = encode_context(sa("10.0.0.1:40000"), sa("10.0.1.2:8080"), 1, 2);
    let line = format!("connect 42 node-b 10.0.1.2:7444 {}\n", hex_encode(&ctx));
    let r = parse_request(&line).unwrap();
    assert_eq!(
        r,
        Request::Connect {
            id: 42,
            peer_node: "node-b".into(),
            addr: "10.0.1.2:7444".into(),
            context: ctx.clone()
        }
    );
    assert_eq!(r.format(), line);
    let v6 = format!(
        "connect 18446744073709551615 n [::1]:7444 {}",
        hex_encode(&ctx)
    );
    match parse_request(&v6).unwrap() {
        Request::Connect { id, addr, .. } => {
            assert_eq!(id, u64::MAX);
            assert_eq!(addr, "[::1]:7444");
        }
    }
}

#[test]
fn request_errors() {
    let ctx = hex_encode(&[0; 20]);
    let e = |l: &str| parse_request(l).unwrap_err();
    assert_eq!(e("").id, None);
    assert_eq!(e("hello 1 2 3 4").id, None);
    assert_eq!(e("connect x n 1.2.3.4:5 00").id, None);
    assert_eq!(e("connect -1 n 1.2.3.4:5 00").id, None);
    let b = e("connect 7 node-b 1.2.3.4:5");
    assert_eq!(b.id, Some(7));
    assert!(b.text.contains("bad request"), "{}", b.text);
    assert_eq!(
        e(&format!("connect 7 node-b 1.2.3.4:5 {ctx} extra")).id,
        Some(7)
    );
    assert!(e(&format!("connect 7 node-b 1.2.3.4 {ctx}"))
        .text
        .contains("HOST:PORT"));
    assert!(e(&format!("connect 7 node-b :5 {ctx}"))
        .text
        .contains("HOST:PORT"));
    assert!(e(&format!("connect 7 node-b 1.2.3.4:99999 {ctx}"))
        .text
        .contains("HOST:PORT"));
    assert!(e("connect 7 node-b 1.2.3.4:5 0g").text.contains("hex"));
    assert!(e("connect 7 node-b 1.2.3.4:5 0000")
        .text
        .contains("2 bytes"));
    assert!(e(&format!("connect 7 node\u{7f}b 1.2.3.4:5 {ctx}"))
        .text
        .contains("PEER_NODE"));
}

#[test]
fn replies_format_and_parse() {
    let secret: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
    let sh = hex_encode(&secret);
    let cases: Vec<(Reply, String)> = vec![
        (
            Reply::Ready(sa("127.0.0.1:7444")),
            "ready 127.0.0.1:7444\n".into(),
        ),
        (Reply::Ready(sa("[::1]:7444")), "ready [::1]:7444\n".into()),
        (Reply::Secret { id: 9, secret }, format!("secret 9 {sh}\n")),
        (
            Reply::Error {
                id: 9,
                text: "handshake: certificate verify failed".into(),
            },
            "error 9 handshake: certificate verify failed\n".into(),
        ),
        (
            Reply::Accepted {
                peer_node: "node-a".into(),
                context: vec![1; 20],
                secret,
            },
            format!("accepted node-a {} {sh}\n", "01".repeat(20)),
        ),
        (
            Reply::Refused {
                text: "127.0.0.1:5: read: eof".into(),
            },
            "refused 127.0.0.1:5: read: eof\n".into(),
        ),
    ];
    for (r, line) in cases {
        assert_eq!(String::from_utf8(r.format()).unwrap(), line);
        assert_eq!(Reply::parse(&line), Some(r), "{line}");
    }
    // Text is kept on one line.
    let r = Reply::Error {
        id: 1,
        text: "a\nb\r\n".into(),
    };
    assert_eq!(String::from_utf8(r.format()).unwrap(), "error 1 a b\n");
    assert_eq!(Reply::parse("secret 1 abcd"), None);
    assert_eq!(Reply::parse("bogus 1"), None);
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn command_line() {
    let c = parse_args(args(
        "--node n1 --cert c.pem --key k.pem --ca ca.pem --listen 0.0.0.0:0",
    ))
    .unwrap();
    assert_eq!(c.node, "n1");
    assert_eq!(c.cert.to_str(), Some("c.pem"));
    assert_eq!(c.key.to_str(), Some("k.pem"));
    assert_eq!(c.ca.to_str(), Some("ca.pem"));
    assert_eq!(c.listen, sa("0.0.0.0:0"));
    let c = parse_args(args(
        "--listen=[::1]:7444 --node=n1 --cert=c --key=k --ca=a",
    ))
    .unwrap();
    assert_eq!(c.listen, sa("[::1]:7444"));
    let err = |s: &str| parse_args(args(s)).unwrap_err();
    assert!(err("--cert c --key k --ca a --listen 1.2.3.4:5").contains("--node"));
    assert!(err("--node n --key k --ca a --listen 1.2.3.4:5").contains("--cert"));
    assert!(err("--node n --cert c --ca a --listen 1.2.3.4:5").contains("--key"));
    assert!(err("--node n --cert c --key k --listen 1.2.3.4:5").contains("--ca"));
    assert!(err("--node n --cert c --key k --ca a").contains("--listen"));
    assert!(err("--node n --cert c --key k --ca a --listen localhost:5").contains("--listen"));
    assert!(
        err("--node n --cert c --key k --ca a --listen 1.2.3.4:5 --bogus 1").contains("--bogus")
    );
    assert!(err("--node n --cert c --key k --ca a --listen").contains("--listen"));
    assert!(err("--node n --node m --cert c --key k --ca a --listen 1.2.3.4:5").contains("--node"));
}

#[test]
fn wipe_zeroes() {
    let mut b = [0xaau8; 40];
    wipe(&mut b);
    assert_eq!(b, [0; 40]);
}
