#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Test vectors of tlshub's per-flow key schedule (spec/key-schedule.md).

An independent implementation of the schedule, written from the spec with the
Python standard library only (hmac + hashlib for HMAC-SHA256, ipaddress for
the canonical address form), so that the kernel's Rust code
(kmod/keys/schedule.rs) is checked against vectors it did not produce.

    spec/key-schedule-vectors.py          print the vectors (Markdown)
    spec/key-schedule-vectors.py --check  exit 1 unless spec/key-schedule.md
                                          holds exactly these vectors

The vectors section of the spec is this script's output, verbatim, between
the `<!-- vectors:begin -->` and `<!-- vectors:end -->` markers; the Rust
host tests (helper/tests/keys.rs) parse it from there.
"""
import hashlib
import hmac
import ipaddress
import pathlib
import struct
import sys

SALT = b"tlshub v1"
FLOW_LABEL = b"tlshub v1 flow"
LABEL_PREFIX = b"tlshub v1 "
HASH_LEN = 32
IDENTITY_MAX_LEN = 317

# name -> (id, key length)
CIPHERS = {
    "aes-128-gcm": (1, 16),
    "aes-256-gcm": (2, 32),
    "chacha20-poly1305": (3, 32),
}


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length):
    assert length <= 255 * HASH_LEN
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def hkdf_label(label, context, length):
    full = LABEL_PREFIX + label
    assert len(full) <= 255 and len(context) <= 255
    return struct.pack(">H", length) + bytes([len(full)]) + full + bytes([len(context)]) + context


def expand_label(secret, label, context, length):
    return hkdf_expand(secret, hkdf_label(label, context, length), length)


def encode_ip(text):
    ip = ipaddress.ip_address(text)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (b"\x04" if ip.version == 4 else b"\x06") + ip.packed


def encode_identity(name):
    b = name.encode("ascii")
    assert 1 <= len(b) <= IDENTITY_MAX_LEN
    return struct.pack(">H", len(b)) + b


def flow_info(v):
    cip, sip = encode_ip(v["client_ip"]), encode_ip(v["server_ip"])
    assert cip[0] == sip[0], "one address family per flow"
    return (FLOW_LABEL
            + bytes([CIPHERS[v["cipher"]][0]])
            + cip + struct.pack(">H", v["client_port"])
            + sip + struct.pack(">H", v["server_port"])
            + struct.pack(">II", v["client_isn"], v["server_isn"])
            + encode_identity(v["client_identity"])
            + encode_identity(v["server_identity"]))


def derive(v):
    key_len = CIPHERS[v["cipher"]][1]
    prk = hkdf_extract(SALT, bytes.fromhex(v["secret"]))
    info = flow_info(v)
    flow = hkdf_expand(prk, info, HASH_LEN)
    out = {"prk": prk, "info": info, "flow": flow}
    for d in ("c2s", "s2c"):
        out[f"{d}_key_label"] = hkdf_label(f"{d} key".encode(), b"", key_len)
        out[f"{d}_iv_label"] = hkdf_label(f"{d} iv".encode(), b"", 12)
        out[f"{d}_key"] = expand_label(flow, f"{d} key".encode(), b"", key_len)
        out[f"{d}_iv"] = expand_label(flow, f"{d} iv".encode(), b"", 12)
    return out


# The longest pod names there are: a 63-byte namespace, '/', a 253-byte name.
def longest_pod(ns_char, name_char):
    name = ".".join([name_char * 63] * 3 + [name_char * 61])
    return ns_char * 63 + "/" + name


VECTORS = [
    ("AES-128-GCM, IPv4", {
        "cipher": "aes-128-gcm",
        "secret": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "client_ip": "10.244.1.5", "client_port": 43512,
        "server_ip": "10.244.2.7", "server_port": 8080,
        "client_isn": 0x1A2B3C4D, "server_isn": 0x9E8D7C6B,
        "client_identity": "shop/frontend-7d9f8c6b5-x2k4p",
        "server_identity": "shop/cart-0",
    }),
    ("AES-256-GCM, IPv6", {
        "cipher": "aes-256-gcm",
        "secret": "c0ffee00" * 8,
        "client_ip": "fd00:10:244:1::5", "client_port": 50000,
        "server_ip": "fd00:10:244:2::7", "server_port": 443,
        "client_isn": 0x00000001, "server_isn": 0xFFFFFFFE,
        "client_identity": "billing/api-6c8d9f7b4-abcde",
        "server_identity": "billing/redis-0",
    }),
    ("ChaCha20-Poly1305, IPv4, a bare pod name", {
        "cipher": "chacha20-poly1305",
        "secret": "5a" * 32,
        "client_ip": "192.168.7.20", "client_port": 1024,
        "server_ip": "192.168.9.3", "server_port": 5432,
        "client_isn": 0xDEADBEEF, "server_isn": 0x01234567,
        "client_identity": "default/web",
        "server_identity": "legacy-db",
    }),
    ("AES-128-GCM, vector 1's flow seen by a dual-stack socket (IPv4-mapped IPv6)", {
        "cipher": "aes-128-gcm",
        "secret": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "client_ip": "::ffff:10.244.1.5", "client_port": 43512,
        "server_ip": "::ffff:10.244.2.7", "server_port": 8080,
        "client_isn": 0x1A2B3C4D, "server_isn": 0x9E8D7C6B,
        "client_identity": "shop/frontend-7d9f8c6b5-x2k4p",
        "server_identity": "shop/cart-0",
    }),
    ("ChaCha20-Poly1305, IPv6, longest identities, extreme ports and ISNs", {
        "cipher": "chacha20-poly1305",
        "secret": "ff" * 32,
        "client_ip": "2001:db8::1", "client_port": 65535,
        "server_ip": "2001:db8:ffff::2", "server_port": 1,
        "client_isn": 0x00000000, "server_isn": 0xFFFFFFFF,
        "client_identity": longest_pod("c", "x"),
        "server_identity": longest_pod("s", "y"),
    }),
]

INPUTS = ["cipher", "secret", "client_ip", "client_port", "server_ip", "server_port",
          "client_isn", "server_isn", "client_identity", "server_identity"]
OUTPUTS = ["prk", "info", "flow",
           "c2s_key_label", "c2s_key", "c2s_iv_label", "c2s_iv",
           "s2c_key_label", "s2c_key", "s2c_iv_label", "s2c_iv"]


def self_test():
    # RFC 5869 A.1, so a broken HKDF here cannot mint vectors.
    prk = hkdf_extract(bytes.fromhex("000102030405060708090a0b0c"), b"\x0b" * 22)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    okm = hkdf_expand(prk, bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), 42)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865")


def render():
    lines = []
    for n, (title, v) in enumerate(VECTORS, 1):
        out = derive(v)
        lines += [f"### Vector {n}: {title}", "", "```text"]
        for k in INPUTS:
            val = v[k]
            if k == "cipher":
                val = f"{val} ({CIPHERS[val][0]})"
            elif k.endswith("_isn"):
                val = f"0x{val:08x}"
            lines.append(f"{k:<16} = {val}")
        for k in OUTPUTS:
            lines.append(f"{k:<16} = {out[k].hex()}")
        lines += ["```", ""]
    # Vector 4 is vector 1 seen through a dual-stack socket: same keys.
    assert derive(VECTORS[3][1]) == derive(VECTORS[0][1])
    return "\n".join(lines).rstrip("\n") + "\n"


def main():
    self_test()
    text = render()
    if sys.argv[1:] == ["--check"]:
        spec = (pathlib.Path(__file__).resolve().parent / "key-schedule.md").read_text()
        try:
            body = spec.split("<!-- vectors:begin -->\n", 1)[1].split("<!-- vectors:end -->", 1)[0]
        except IndexError:
            sys.exit("spec/key-schedule.md: no vectors:begin/vectors:end markers")
        if body.strip("\n") != text.strip("\n"):
            sys.exit("spec/key-schedule.md: vectors differ from this script's output")
        print("spec/key-schedule.md: vectors match")
    elif sys.argv[1:]:
        sys.exit(__doc__)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
