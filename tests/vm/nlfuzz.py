#!/usr/bin/env python3
"""Malformed requests to the tlshub genetlink family, over a raw netlink
socket (no tlshubctl): each must be refused with the expected errno and an
extended-ack message, leaving the module healthy and the mapping unchanged."""
import errno
import os
import socket
import struct
import sys

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 1, 4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSGERR_ATTR_MSG = 1

# spec/uapi.rs
MODE_GET, MODE_SET, STATUS_GET, MAP_GET, MAP_ADD, MAP_DEL, MAP_STAGE, MAP_COMMIT = range(1, 9)
A_MODE, A_VERSION, A_POD, A_NODE, A_POD_COUNT, A_NODE_COUNT, A_GEN, A_BEGIN, \
    A_POD_NAME, A_NODE_NAME, A_IPV4, A_IPV6, A_STATS = range(1, 14)
P_NAME, P_NODE, P_IPV4, P_IPV6 = range(1, 5)
N_NAME, N_IPV4, N_IPV6, N_PORT = range(1, 5)


def attr(ty, payload, length=None):
    n = 4 + len(payload) if length is None else length
    raw = struct.pack("=HH", n, ty) + payload
    return raw + b"\0" * (-len(raw) % 4)


def u16(ty, v): return attr(ty, struct.pack("=H", v))
def u32(ty, v): return attr(ty, struct.pack("=I", v))
def s(ty, text): return attr(ty, text.encode() + b"\0")
def nest(ty, *parts): return attr(ty | 0x8000, b"".join(parts))


class Sock:
    def __init__(self):
        self.sk = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sk.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.sk.bind((0, 0))
        self.seq = 0
        self.fam = self.resolve("tlshub")

    def send_raw(self, msg_type, flags, body, nl_len=None):
        self.seq += 1
        n = 16 + len(body) if nl_len is None else nl_len
        self.sk.send(struct.pack("=IHHII", n, msg_type, flags, self.seq, 0) + body)

    def recv(self):
        """Messages of one reply up to the ack/error/done: (errno, extack, payloads)."""
        payloads = []
        while True:
            data = self.sk.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                ln, ty, fl, seq, pid = struct.unpack_from("=IHHII", data, off)
                body = data[off + 16: off + ln]
                off += (ln + 3) & ~3
                if ty == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    msg = None
                    # Extended ack TLVs follow the echoed request header (and,
                    # without NETLINK_CAP_ACK, the request's payload).
                    olen = struct.unpack_from("=I", body, 4)[0]
                    tlv_off = 4 + (olen if not (fl & 0x100) else 16)
                    for ty2, val in parse_attrs(body[tlv_off:]):
                        if ty2 == NLMSGERR_ATTR_MSG:
                            msg = val.rstrip(b"\0").decode()
                    return err, msg, payloads
                if ty == NLMSG_DONE:
                    return 0, None, payloads
                payloads.append(body)

    def resolve(self, name):
        body = struct.pack("=BBH", 3, 1, 0) + attr(2, name.encode() + b"\0")  # CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME
        self.send_raw(0x10, NLM_F_REQUEST | NLM_F_ACK, body)
        err, msg, payloads = self.recv()
        if err or not payloads:
            sys.exit(f"family {name} not found: {os.strerror(err)}")
        for ty, val in parse_attrs(payloads[0][4:]):
            if ty == 1:  # CTRL_ATTR_FAMILY_ID
                return struct.unpack("=H", val[:2])[0]
        sys.exit("no family id")

    def request(self, cmd, *attrs, flags=NLM_F_REQUEST | NLM_F_ACK, raw=None, nl_len=None):
        body = raw if raw is not None else struct.pack("=BBH", cmd, 1, 0) + b"".join(attrs)
        self.send_raw(self.fam, flags, body, nl_len)
        return self.recv()


def parse_attrs(buf):
    out, off = [], 0
    while off + 4 <= len(buf):
        ln, ty = struct.unpack_from("=HH", buf, off)
        if ln < 4:
            break
        out.append((ty & 0x3FFF, buf[off + 4: off + ln]))
        off += (ln + 3) & ~3
    return out


def snapshot(sk):
    _, _, msgs = sk.request(MAP_GET, flags=NLM_F_REQUEST | NLM_F_DUMP)
    _, _, st = sk.request(STATUS_GET)
    status = dict(parse_attrs(st[0][4:]))
    return msgs, status[A_MODE], status[A_GEN]


def main():
    sk = Sock()
    before = snapshot(sk)
    pod_ok = [s(P_NAME, "fuzz-pod"), s(P_NODE, "fuzz-node")]
    E, NS = errno.EINVAL, errno.EOPNOTSUPP
    cases = [
        ("unknown command 99", NS, dict(cmd=99)),
        ("unknown command 0", NS, dict(cmd=0)),
        ("mode-set without mode", E, dict(cmd=MODE_SET)),
        ("mode-set mode out of range", E, dict(cmd=MODE_SET, attrs=[u32(A_MODE, 3)])),
        ("mode-set mode huge", E, dict(cmd=MODE_SET, attrs=[u32(A_MODE, 0xFFFFFFFF)])),
        ("mode-set mode as u16", E, dict(cmd=MODE_SET, attrs=[u16(A_MODE, 1)])),
        ("mode-set mode as u64", E, dict(cmd=MODE_SET, attrs=[attr(A_MODE, struct.pack("=Q", 1))])),
        ("mode-set unknown attribute type", E, dict(cmd=MODE_SET, attrs=[u32(A_MODE, 1), u32(200, 1)])),
        ("mode-set attribute type 0", E, dict(cmd=MODE_SET, attrs=[u32(0, 1)])),
        ("mode-set with another command's attribute", E, dict(cmd=MODE_SET, attrs=[u32(A_MODE, 1), s(A_POD_NAME, "x")])),
        ("status-get with an attribute", E, dict(cmd=STATUS_GET, attrs=[u32(A_MODE, 0)])),
        ("truncated genl header", E, dict(raw=b"\x01\x01", core=True)),
        ("attribute length below header", E, dict(raw=struct.pack("=BBH", MODE_SET, 1, 0) + struct.pack("=HH", 2, A_MODE) + b"\0" * 4)),
        ("attribute length past message end", E, dict(raw=struct.pack("=BBH", MODE_SET, 1, 0) + attr(A_MODE, struct.pack("=I", 1), length=64))),
        ("trailing garbage after attributes", E, dict(raw=struct.pack("=BBH", MODE_SET, 1, 0) + u32(A_MODE, 1) + b"\x01\x02", core=True)),
        ("map-get without selector", E, dict(cmd=MAP_GET)),
        ("map-get with two selectors", E, dict(cmd=MAP_GET, attrs=[s(A_POD_NAME, "web-pod-1"), u32(A_IPV4, 1)])),
        ("map-get ipv4 of 3 bytes", E, dict(cmd=MAP_GET, attrs=[attr(A_IPV4, b"\x0a\x00\x00")])),
        ("map-get ipv6 of 4 bytes", E, dict(cmd=MAP_GET, attrs=[attr(A_IPV6, b"\x0a\x00\x00\x01")])),
        ("map-get ipv6 of 17 bytes", E, dict(cmd=MAP_GET, attrs=[attr(A_IPV6, b"\x01" * 17)])),
        ("map-get oversized pod-name", E, dict(cmd=MAP_GET, attrs=[s(A_POD_NAME, "a" * 300)])),
        ("map-get pod-name with embedded NUL", E, dict(cmd=MAP_GET, attrs=[attr(A_POD_NAME, b"web\0pod\0")])),
        ("map-add without pod or node", E, dict(cmd=MAP_ADD)),
        ("map-add pod without name", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, s(P_NODE, "n1"))])),
        ("map-add pod without node", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, s(P_NAME, "p1"))])),
        ("map-add pod with invalid name", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, s(P_NAME, "Bad_Name"), s(P_NODE, "n1"))])),
        ("map-add pod with empty DNS label", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, s(P_NAME, "web..pod"), s(P_NODE, "n1"))])),
        ("map-add pod with label ending in '-'", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, s(P_NAME, "web-.pod"), s(P_NODE, "n1"))])),
        ("map-add pod with empty name", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, s(P_NAME, ""), s(P_NODE, "n1"))])),
        ("map-add pod with 9 addresses", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, *pod_ok, *[u32(P_IPV4, 0x0a0000f0 + i) for i in range(9)])])),
        ("map-add pod that is not a nest", E, dict(cmd=MAP_ADD, attrs=[attr(A_POD, b"abc")])),
        ("map-add pod with unknown inner attribute", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, *pod_ok, u32(9, 1))])),
        ("map-add pod with short ipv6", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, *pod_ok, attr(P_IPV6, b"\x01" * 15))])),
        ("map-add pod with oversized node name", E, dict(cmd=MAP_ADD, attrs=[nest(A_POD, s(P_NAME, "p1"), s(P_NODE, "n" * 254))])),
        ("map-add node with port 0", E, dict(cmd=MAP_ADD, attrs=[nest(A_NODE, s(N_NAME, "n1"), u32(N_IPV4, 1), u16(N_PORT, 0))])),
        ("map-add node with port but no address", E, dict(cmd=MAP_ADD, attrs=[nest(A_NODE, s(N_NAME, "n1"), u16(N_PORT, 7443))])),
        ("map-add node with two addresses", E, dict(cmd=MAP_ADD, attrs=[nest(A_NODE, s(N_NAME, "n1"), u32(N_IPV4, 1), attr(N_IPV6, b"\x01" * 16))])),
        ("map-add node with port as u32", E, dict(cmd=MAP_ADD, attrs=[nest(A_NODE, s(N_NAME, "n1"), u32(N_IPV4, 1), u32(N_PORT, 7443))])),
        ("map-del without selector", E, dict(cmd=MAP_DEL)),
        ("map-del with pod and node", E, dict(cmd=MAP_DEL, attrs=[s(A_POD_NAME, "a"), s(A_NODE_NAME, "b")])),
        ("map-stage without begin", E, dict(cmd=MAP_STAGE, attrs=[nest(A_POD, *pod_ok)])),
        ("map-del oversized node-name", E, dict(cmd=MAP_DEL, attrs=[s(A_NODE_NAME, "n" * 254)])),
        ("map-add node with oversized name", E, dict(cmd=MAP_ADD, attrs=[nest(A_NODE, s(N_NAME, "n" * 300))])),
        ("map-stage flag with payload", E, dict(cmd=MAP_STAGE, attrs=[attr(A_BEGIN, b"\x01\0\0\0")])),
        ("map-stage begin with a bad entry", E, dict(cmd=MAP_STAGE, attrs=[attr(A_BEGIN, b""), nest(A_POD, s(P_NAME, "UPPER"), s(P_NODE, "n1"))])),
        ("map-commit after the bad entry dropped staging", E, dict(cmd=MAP_COMMIT)),
        ("map-commit with nothing staged", E, dict(cmd=MAP_COMMIT)),
    ]
    failures = 0
    for name, want, c in cases:
        err, msg, _ = sk.request(c.get("cmd", 0), *c.get("attrs", []), raw=c.get("raw"))
        # Every EINVAL names its cause in the extended ack, except the two
        # the genetlink core refuses before any policy runs (core=True).
        good = err == want and (msg or want != errno.EINVAL or c.get("core"))
        print(f"{'ok  ' if good else 'FAIL'} {name}: {errno.errorcode.get(err, err)} ({msg})")
        failures += not good
    after = snapshot(sk)
    if after != before:
        print("FAIL mapping, mode or generation changed by rejected requests")
        failures += 1
    print(f"{len(cases)} malformed requests, {failures} failures")
    failures += mutate(sk, pod_ok)
    sys.exit(1 if failures else 0)


def mutate(sk, pod_ok, rounds=3000, seed=20261125):
    """Random byte flips, truncations and extensions of valid requests
    (fixed seed, so a failure reproduces). Any answer is fine except none:
    the module must keep answering and the kernel log must stay clean
    (scripts/vm-run checks the log)."""
    import random
    rng = random.Random(seed)
    templates = [
        struct.pack("=BBH", MAP_ADD, 1, 0) + nest(A_POD, *pod_ok, u32(P_IPV4, 0x0A0A0A0A), attr(P_IPV6, b"\xfd" + b"\1" * 15)),
        struct.pack("=BBH", MAP_ADD, 1, 0) + nest(A_NODE, s(N_NAME, "fuzz-node"), u32(N_IPV4, 0x0A000001), u16(N_PORT, 7443)),
        struct.pack("=BBH", MAP_STAGE, 1, 0) + attr(A_BEGIN, b"") + nest(A_POD, *pod_ok),
        struct.pack("=BBH", MAP_GET, 1, 0) + s(A_POD_NAME, "web-pod-1"),
        struct.pack("=BBH", MAP_DEL, 1, 0) + s(A_POD_NAME, "fuzz-pod"),
        struct.pack("=BBH", MODE_SET, 1, 0) + u32(A_MODE, 1),
        struct.pack("=BBH", MAP_COMMIT, 1, 0),
    ]
    answered = 0
    for _ in range(rounds):
        msg = bytearray(rng.choice(templates))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if op < 0.6 and msg:
                msg[rng.randrange(len(msg))] = rng.randrange(256)
            elif op < 0.8:
                del msg[rng.randrange(1, len(msg) + 1):]
            else:
                msg += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        sk.request(0, raw=bytes(msg))
        answered += 1
    err, _, _ = sk.request(MODE_GET)
    ok = err == 0 and answered == rounds
    print(f"{'ok  ' if ok else 'FAIL'} {rounds} random mutations answered, module healthy")
    return 0 if ok else 1


if __name__ == "__main__":
    main()
