#!/usr/bin/env python3
"""Malformed requests to the tlshub genetlink family, over a raw netlink
socket (no tlshubctl): each must be refused with the expected errno and an
extended-ack message (plus, where the contract says so, the offending
attribute's offset or the missing attribute), leaving the module healthy and
the mapping unchanged. Also the socket helpers the other python tests use."""
import errno
import os
import select
import socket
import struct
import sys

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 1, 2, 4, 0x300
NLM_F_DUMP_INTR = 0x10
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS, NLMSGERR_ATTR_MISS_TYPE, NLMSGERR_ATTR_MISS_NEST = 1, 2, 5, 6
NLA_F_NESTED = 0x8000
GENL_HDR = 16 + 4  # nlmsghdr + genlmsghdr: attribute offsets in extacks count from the nlmsghdr

# spec/uapi.rs
MODE_GET, MODE_SET, STATUS_GET, MAP_GET, MAP_ADD, MAP_DEL, MAP_STAGE, MAP_COMMIT = range(1, 9)
A_MODE, A_VERSION, A_POD, A_NODE, A_POD_COUNT, A_NODE_COUNT, A_GEN, A_BEGIN, \
    A_POD_NAME, A_NODE_NAME, A_IPV4, A_IPV6, A_STATS = range(1, 14)
P_NAME, P_NODE, P_IPV4, P_IPV6, P_HOST_NETWORK = range(1, 6)
N_NAME, N_IPV4, N_IPV6, N_PORT = range(1, 5)
S_PAD, S_LOOKUPS, S_LOOKUP_MISSES, S_MAP_UPDATES = range(0, 4)
NAME_MAX_LEN, POD_NAME_MAX_LEN = 253, 317


def attr(ty, payload, length=None):
    n = 4 + len(payload) if length is None else length
    raw = struct.pack("=HH", n, ty) + payload
    return raw + b"\0" * (-len(raw) % 4)


def u16(ty, v): return attr(ty, struct.pack("=H", v))
def u32(ty, v): return attr(ty, struct.pack("=I", v))
def s(ty, text): return attr(ty, text.encode() + b"\0")
def nest(ty, *parts): return attr(ty | NLA_F_NESTED, b"".join(parts))
# Addresses: ipv4 is a big-endian u32 (the spec's byte-order), ipv6 16 bytes.
def ip4(ty, addr): return attr(ty, socket.inet_pton(socket.AF_INET, addr))
def ip6(ty, addr): return attr(ty, socket.inet_pton(socket.AF_INET6, addr))
def v4(i): return socket.inet_ntop(socket.AF_INET, struct.pack(">I", i))


class NoReply(Exception):
    pass


class Sock:
    """One genetlink socket with extended acks. After each request:
    `ext` holds the extack TLVs of the final ack/error ({type: bytes}),
    `flags` the OR of the nlmsg flags of every message of the reply."""

    def __init__(self, timeout=10.0):
        self.sk = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sk.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sk.bind((0, 0))
        self.timeout = timeout
        self.seq = 0
        self.ext, self.flags = {}, 0
        self.fam = self.resolve("tlshub")

    def close(self):
        self.sk.close()

    def send_raw(self, msg_type, flags, body, nl_len=None):
        self.seq += 1
        n = 16 + len(body) if nl_len is None else nl_len
        self.sk.send(struct.pack("=IHHII", n, msg_type, flags, self.seq, 0) + body)

    def recv(self):
        """Messages of the reply to the last request, up to its ack, error
        or NLMSG_DONE: (errno, extack message, payloads). Raises NoReply if
        nothing final arrives within the timeout, AssertionError on a
        message that answers an earlier request (a second reply)."""
        payloads = []
        self.ext, self.flags = {}, 0
        while True:
            if not select.select([self.sk], [], [], self.timeout)[0]:
                raise NoReply(f"no answer to seq {self.seq} within {self.timeout}s")
            data = self.sk.recv(1 << 22)
            off = 0
            while off + 16 <= len(data):
                ln, ty, fl, seq, pid = struct.unpack_from("=IHHII", data, off)
                body = data[off + 16: off + ln]
                off += (ln + 3) & ~3
                if seq != self.seq:
                    raise AssertionError(f"message type {ty} for seq {seq} while waiting for {self.seq}")
                self.flags |= fl
                if ty == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    # Extended ack TLVs follow the echoed request header (and,
                    # without NETLINK_CAP_ACK, the request's payload).
                    olen = struct.unpack_from("=I", body, 4)[0]
                    tlv_off = 4 + (16 if fl & NLM_F_CAPPED or err == 0 else olen)
                    self.ext = dict(parse_attrs(body[tlv_off:])) if fl & NLM_F_ACK_TLVS else {}
                    msg = self.ext.get(NLMSGERR_ATTR_MSG)
                    return err, (msg.rstrip(b"\0").decode() if msg else None), payloads
                if ty == NLMSG_DONE:
                    err = -struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
                    return err, None, payloads
                payloads.append(body)

    def ext_u32(self, ty):
        v = self.ext.get(ty)
        return struct.unpack("=I", v[:4])[0] if v and len(v) >= 4 else None

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

    def dump(self, cmd, *attrs):
        return self.request(cmd, *attrs, flags=NLM_F_REQUEST | NLM_F_DUMP)


def messages(data):
    """The netlink messages in one datagram: (type, flags, seq, body)."""
    off = 0
    while off + 16 <= len(data):
        ln, ty, fl, seq, _ = struct.unpack_from("=IHHII", data, off)
        yield ty, fl, seq, data[off + 16: off + ln]
        off += (ln + 3) & ~3


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
    _, _, msgs = sk.dump(MAP_GET)
    _, _, st = sk.request(STATUS_GET)
    status = dict(parse_attrs(st[0][4:]))
    return msgs, status[A_MODE], status[A_GEN]


def status(sk):
    """status-get as a dict: mode, pods, nodes, generation and the counters."""
    err, msg, st = sk.request(STATUS_GET)
    assert err == 0, (err, msg)
    a = dict(parse_attrs(st[0][4:]))
    u = lambda v: struct.unpack("=I", v[:4])[0]
    out = dict(mode=u(a[A_MODE]), pods=u(a[A_POD_COUNT]), nodes=u(a[A_NODE_COUNT]), generation=u(a[A_GEN]))
    for ty, v in parse_attrs(a.get(A_STATS, b"")):
        if ty in (S_LOOKUPS, S_LOOKUP_MISSES, S_MAP_UPDATES):
            out[{S_LOOKUPS: "lookups", S_LOOKUP_MISSES: "lookup-misses", S_MAP_UPDATES: "map-updates"}[ty]] = \
                struct.unpack("=Q", v[:8])[0]
    return out


def hdr(cmd):
    return struct.pack("=BBH", cmd, 1, 0)


def at(*attrs):
    """Offset (from the nlmsghdr, as extacks count) of the attribute that
    follows `attrs` at the top level."""
    return GENL_HDR + sum(len(a) for a in attrs)


# Core's policy messages (lib/nlattr.c).
POLICY = "Attribute failed policy validation"
INT_RANGE = "integer out of range"
BIN_RANGE = "binary attribute size out of range"
BAD_LEN = "invalid attribute length"
# Unknown attribute: "Unsupported attribute" for a type the op's attribute
# set has but the op does not take (NLA_UNSPEC under strict validation),
# "Unknown attribute type" for one above the set's max.
UNSUPPORTED = ("Unsupported attribute", "Unknown attribute type")
DUP = "duplicate attribute"


def cases():
    """(name, request, expectation). Expectation: errno; msg (substring, or
    a tuple of alternatives) the extack message must contain; offs: the
    NLMSGERR_ATTR_OFFS it must carry; miss_type / miss_nest: the
    NLMSGERR_ATTR_MISS_TYPE / MISS_NEST it must carry; no_msg: the request
    is refused by the genetlink core before the family sees it, where no
    message is promised: an unknown command (core's EOPNOTSUPP carries none),
    a truncated genl header (none either), trailing bytes after the last
    attribute (core may or may not add "bytes leftover after parsing
    attributes"). Every other case must carry a message."""
    E, R, NS = errno.EINVAL, errno.ERANGE, errno.EOPNOTSUPP
    pod_ok = [s(P_NAME, "fuzz-pod"), s(P_NODE, "fuzz-node")]
    long_pod = "a" * 63 + "/" + ".".join(["b" * 63, "c" * 63, "d" * 63, "e" * 61])  # exactly 317
    long_node = ".".join(["n" * 63, "o" * 63, "p" * 63, "q" * 61])  # exactly 253
    assert len(long_pod) == POD_NAME_MAX_LEN and len(long_node) == NAME_MAX_LEN
    two_pods = [nest(A_POD, *pod_ok), nest(A_POD, s(P_NAME, "fuzz-pod-2"), s(P_NODE, "fuzz-node"))]
    two_modes = [u32(A_MODE, 1), u32(A_MODE, 2)]
    two_names = [s(A_POD_NAME, "web-pod-1"), s(A_POD_NAME, "web-pod-2")]
    name1 = s(P_NAME, "dup-pod")
    c = []

    def case(name, cmd=0, attrs=(), raw=None, dump=False, **want):
        c.append((name, dict(cmd=cmd, attrs=list(attrs), raw=raw, dump=dump), want))

    case("unknown command 99", 99, errno=NS, no_msg=True)
    case("unknown command 0", 0, errno=NS, no_msg=True)
    case("truncated genl header", raw=b"\x01\x01", errno=E, no_msg=True)
    case("trailing garbage after attributes", raw=hdr(MODE_SET) + u32(A_MODE, 1) + b"\x01\x02", errno=E, no_msg=True)
    case("attribute length below header", raw=hdr(MODE_SET) + struct.pack("=HH", 2, A_MODE) + b"\0" * 4, errno=E)
    case("attribute length past message end", raw=hdr(MODE_SET) + attr(A_MODE, struct.pack("=I", 1), length=64), errno=E)
    # Missing attributes: NLMSGERR_ATTR_MISS_TYPE (and MISS_NEST inside a nest).
    case("mode-set without mode", MODE_SET, errno=E, miss_type=A_MODE)
    case("map-add pod without name", MAP_ADD, [nest(A_POD, s(P_NODE, "n1"))], errno=E, miss_type=P_NAME, miss_nest=GENL_HDR)
    case("map-add pod without node", MAP_ADD, [nest(A_POD, s(P_NAME, "p1"))], errno=E, miss_type=P_NODE, miss_nest=GENL_HDR)
    case("map-add 2nd pod without node", MAP_ADD, [nest(A_NODE, s(N_NAME, "n1")), nest(A_POD, s(P_NAME, "p1"))],
         errno=E, miss_type=P_NODE, miss_nest=at(nest(A_NODE, s(N_NAME, "n1"))))
    # The spec's limits are the policy: ERANGE, core's message.
    case("mode-set mode 3 (> max 2)", MODE_SET, [u32(A_MODE, 3)], errno=R, msg=INT_RANGE, offs=GENL_HDR)
    case("mode-set mode huge", MODE_SET, [u32(A_MODE, 0xFFFFFFFF)], errno=R, msg=INT_RANGE)
    case("map-get pod-name of 318 bytes", MAP_GET, [s(A_POD_NAME, "a" * (POD_NAME_MAX_LEN + 1))], errno=R, msg=POLICY, offs=GENL_HDR)
    case("map-del pod-name of 318 bytes", MAP_DEL, [s(A_POD_NAME, "a" * (POD_NAME_MAX_LEN + 1))], errno=R, msg=POLICY)
    case("map-del node-name of 254 bytes", MAP_DEL, [s(A_NODE_NAME, "n" * (NAME_MAX_LEN + 1))], errno=R, msg=POLICY)
    case("map-add pod.name of 318 bytes", MAP_ADD, [nest(A_POD, s(P_NAME, "p" * (POD_NAME_MAX_LEN + 1)), s(P_NODE, "n1"))],
         errno=R, msg=POLICY, offs=GENL_HDR + 4)
    case("map-add pod.node of 254 bytes", MAP_ADD, [nest(A_POD, s(P_NAME, "p1"), s(P_NODE, "n" * (NAME_MAX_LEN + 1)))], errno=R, msg=POLICY)
    case("map-add node.name of 254 bytes", MAP_ADD, [nest(A_NODE, s(N_NAME, "n" * (NAME_MAX_LEN + 1)))], errno=R, msg=POLICY)
    case("map-get pod-name of 0 bytes", MAP_GET, [attr(A_POD_NAME, b"")], errno=R, msg=POLICY)
    case("map-add pod.name of 0 bytes", MAP_ADD, [nest(A_POD, attr(P_NAME, b""), s(P_NODE, "n1"))], errno=R, msg=POLICY)
    case("map-get ipv6 of 4 bytes", MAP_GET, [attr(A_IPV6, b"\x0a\x00\x00\x01")], errno=R, msg=BIN_RANGE)
    case("map-get ipv6 of 17 bytes", MAP_GET, [attr(A_IPV6, b"\x01" * 17)], errno=R, msg=BIN_RANGE)
    case("map-add pod with 15-byte ipv6", MAP_ADD, [nest(A_POD, *pod_ok, attr(P_IPV6, b"\x01" * 15))], errno=R, msg=BIN_RANGE)
    case("map-add node with 17-byte ipv6", MAP_ADD, [nest(A_NODE, s(N_NAME, "n1"), attr(N_IPV6, b"\x01" * 17))], errno=R, msg=BIN_RANGE)
    case("map-add pod nest of 3 bytes", MAP_ADD, [attr(A_POD | NLA_F_NESTED, b"abc")], errno=R, msg=POLICY)
    case("map-add node nest of 1 byte", MAP_ADD, [attr(A_NODE | NLA_F_NESTED, b"a")], errno=R, msg=POLICY)
    case("map-stage begin flag with payload", MAP_STAGE, [attr(A_BEGIN, b"\x01\0\0\0")], errno=R, msg=POLICY)
    case("map-add node port 0", MAP_ADD, [nest(A_NODE, s(N_NAME, "n1"), ip4(N_IPV4, "10.0.0.1"), u16(N_PORT, 0))], errno=R, msg=INT_RANGE)
    # Wrong-size integers: EINVAL, core's message.
    case("mode-set mode as u16", MODE_SET, [u16(A_MODE, 1)], errno=E, msg=BAD_LEN, offs=GENL_HDR)
    case("mode-set mode as u64", MODE_SET, [attr(A_MODE, struct.pack("=Q", 1))], errno=E, msg=BAD_LEN)
    case("map-get ipv4 of 3 bytes", MAP_GET, [attr(A_IPV4, b"\x0a\x00\x00")], errno=E, msg=BAD_LEN)
    case("map-add node port as u32", MAP_ADD, [nest(A_NODE, s(N_NAME, "n1"), ip4(N_IPV4, "10.0.0.1"), u32(N_PORT, 7443))], errno=E, msg=BAD_LEN)
    case("map-add pod ipv4 of 5 bytes", MAP_ADD, [nest(A_POD, *pod_ok, attr(P_IPV4, b"\x0a\0\0\x01\x02"))], errno=E, msg=BAD_LEN)
    # Attributes the command does not take.
    case("mode-set with another command's attribute", MODE_SET, [u32(A_MODE, 1), s(A_POD_NAME, "x")], errno=E, msg=UNSUPPORTED,
         offs=at(u32(A_MODE, 1)))
    case("mode-set unknown attribute type 200", MODE_SET, [u32(A_MODE, 1), u32(200, 1)], errno=E, msg=UNSUPPORTED)
    case("mode-set attribute type 0", MODE_SET, [u32(0, 1)], errno=E, msg=UNSUPPORTED)
    case("status-get with an attribute", STATUS_GET, [u32(A_MODE, 0)], errno=E, msg=UNSUPPORTED)
    case("map-add with begin", MAP_ADD, [attr(A_BEGIN, b""), nest(A_POD, *pod_ok)], errno=E, msg=UNSUPPORTED)
    case("map-add pod with unknown inner attribute", MAP_ADD, [nest(A_POD, *pod_ok, u32(9, 1))], errno=E, msg=UNSUPPORTED)
    case("map-add pod that is not a nest", MAP_ADD, [attr(A_POD, s(P_NAME, "p1") + s(P_NODE, "n1"))], errno=E)
    case("map-get dump with pod-name", MAP_GET, [s(A_POD_NAME, "web-pod-1")], dump=True, errno=E)
    case("map-get dump with ipv4", MAP_GET, [ip4(A_IPV4, "10.244.1.10")], dump=True, errno=E)
    # Duplicate singular attributes: EINVAL "duplicate attribute" at the second.
    case("map-add two pod nests", MAP_ADD, two_pods, errno=E, msg=DUP, offs=at(two_pods[0]))
    case("mode-set two modes", MODE_SET, two_modes, errno=E, msg=DUP, offs=at(two_modes[0]))
    case("map-get two pod-names", MAP_GET, two_names, errno=E, msg=DUP, offs=at(two_names[0]))
    case("map-add two names in one pod nest", MAP_ADD, [nest(A_POD, name1, s(P_NAME, "dup-pod-2"), s(P_NODE, "n1"))],
         errno=E, msg=DUP, offs=GENL_HDR + 4 + len(name1))
    # Well-formed but invalid names: EINVAL naming the attribute.
    case("map-add pod with uppercase name", MAP_ADD, [nest(A_POD, s(P_NAME, "Bad_Name"), s(P_NODE, "n1"))], errno=E, msg="pod name")
    case("map-add pod with bad namespace", MAP_ADD, [nest(A_POD, s(P_NAME, "Ns/x"), s(P_NODE, "n1"))], errno=E, msg="pod name")
    case("map-add pod with two slashes", MAP_ADD, [nest(A_POD, s(P_NAME, "ns/a/b"), s(P_NODE, "n1"))], errno=E, msg="pod name")
    case("map-add pod with empty DNS label", MAP_ADD, [nest(A_POD, s(P_NAME, "web..pod"), s(P_NODE, "n1"))], errno=E, msg="pod name")
    case("map-add pod with label ending in '-'", MAP_ADD, [nest(A_POD, s(P_NAME, "web-.pod"), s(P_NODE, "n1"))], errno=E, msg="pod name")
    case("map-add pod with empty name", MAP_ADD, [nest(A_POD, s(P_NAME, ""), s(P_NODE, "n1"))], errno=E, msg="pod name")
    case("map-add pod with uppercase node", MAP_ADD, [nest(A_POD, s(P_NAME, "p1"), s(P_NODE, "Node-1"))], errno=E, msg="pod node")
    case("map-add pod with namespaced node", MAP_ADD, [nest(A_POD, s(P_NAME, "p1"), s(P_NODE, "ns/n1"))], errno=E, msg="pod node")
    case("map-add node with uppercase name", MAP_ADD, [nest(A_NODE, s(N_NAME, "N1"))], errno=E, msg="node name")
    # The limits are exact: one byte less is not a policy error.
    case("map-get pod-name of exactly 317 bytes (valid, absent)", MAP_GET, [s(A_POD_NAME, long_pod)], errno=errno.ENOENT)
    case("map-del node-name of exactly 253 bytes (valid, absent)", MAP_DEL, [s(A_NODE_NAME, long_node)], errno=errno.ENOENT)
    # The module's own checks.
    case("map-get without selector", MAP_GET, errno=E)
    case("map-get with two selectors", MAP_GET, [s(A_POD_NAME, "web-pod-1"), ip4(A_IPV4, "10.0.0.1")], errno=E)
    case("map-get pod-name with embedded NUL", MAP_GET, [attr(A_POD_NAME, b"web\0pod\0")], errno=E)
    case("map-add without pod or node", MAP_ADD, errno=E)
    case("map-add pod with 9 addresses", MAP_ADD, [nest(A_POD, *pod_ok, *[ip4(P_IPV4, f"10.0.0.{240 + i}") for i in range(9)])], errno=E)
    case("map-add node with port but no address", MAP_ADD, [nest(A_NODE, s(N_NAME, "n1"), u16(N_PORT, 7443))], errno=E)
    case("map-add node with two addresses", MAP_ADD, [nest(A_NODE, s(N_NAME, "n1"), ip4(N_IPV4, "10.0.0.1"), attr(N_IPV6, b"\x01" * 16))], errno=E)
    case("map-del without selector", MAP_DEL, errno=E)
    case("map-del with pod and node", MAP_DEL, [s(A_POD_NAME, "a"), s(A_NODE_NAME, "b")], errno=E)
    case("map-stage without begin", MAP_STAGE, [nest(A_POD, *pod_ok)], errno=E)
    case("map-stage begin with a bad entry", MAP_STAGE, [attr(A_BEGIN, b""), nest(A_POD, s(P_NAME, "UPPER"), s(P_NODE, "n1"))], errno=E, msg="pod name")
    case("map-commit after the bad entry dropped staging", MAP_COMMIT, errno=E)
    case("map-commit with nothing staged", MAP_COMMIT, errno=E)
    return c


def check_case(sk, name, req, want):
    flags = NLM_F_REQUEST | (NLM_F_DUMP if req["dump"] else NLM_F_ACK)
    err, msg, _ = sk.request(req["cmd"], *req["attrs"], raw=req["raw"], flags=flags)
    why = []
    if err != want["errno"]:
        why.append(f"errno {errno.errorcode.get(err, err)}, want {errno.errorcode[want['errno']]}")
    if not msg and not want.get("no_msg"):
        why.append("no extack message")
    m = want.get("msg")
    if m and not any(x.lower() in (msg or "").lower() for x in (m if isinstance(m, tuple) else (m,))):
        why.append(f"message does not contain {m!r}")
    for key, ty in (("offs", NLMSGERR_ATTR_OFFS), ("miss_type", NLMSGERR_ATTR_MISS_TYPE), ("miss_nest", NLMSGERR_ATTR_MISS_NEST)):
        if key in want and sk.ext_u32(ty) != want[key]:
            why.append(f"{key} {sk.ext_u32(ty)}, want {want[key]}")
    extra = [f"{k}={sk.ext_u32(t)}" for k, t in (("offs", NLMSGERR_ATTR_OFFS), ("miss_type", NLMSGERR_ATTR_MISS_TYPE),
                                                 ("miss_nest", NLMSGERR_ATTR_MISS_NEST)) if t in sk.ext]
    print(f"{'FAIL' if why else 'ok  '} {name}: {errno.errorcode.get(err, err)} ({msg}) {' '.join(extra)}"
          + (f"  <- {'; '.join(why)}" if why else ""))
    return bool(why)


def main():
    sk = Sock()
    before = snapshot(sk)
    all_cases = cases()
    failures = sum(check_case(sk, *c) for c in all_cases)
    after = snapshot(sk)
    if after != before:
        print("FAIL mapping, mode or generation changed by rejected requests")
        failures += 1
    print(f"{len(all_cases)} malformed requests, {failures} failures")
    failures += mutate(sk)
    sys.exit(1 if failures else 0)


# Every answer a mutated request may legitimately get.
ALLOWED = {0, errno.EINVAL, errno.ERANGE, errno.EOPNOTSUPP, errno.ENOENT, errno.EEXIST, errno.EBUSY,
           errno.E2BIG, errno.EMSGSIZE}


def mutate(sk, rounds=3000, seed=20261125):
    """Random byte flips, truncations and extensions of valid requests
    (fixed seed, so a failure reproduces). Each must get exactly one final
    answer (an ack, or an error with an errno from ALLOWED) within the
    socket's timeout; a reply to an earlier request turning up later counts
    as a failure. Then the module must still answer, and the kernel log
    must stay clean (scripts/vm-run checks the log)."""
    import random
    rng = random.Random(seed)
    pod_ok = [s(P_NAME, "fuzz-pod"), s(P_NODE, "fuzz-node")]
    templates = [
        hdr(MAP_ADD) + nest(A_POD, *pod_ok, ip4(P_IPV4, "10.10.10.10"), attr(P_IPV6, b"\xfd" + b"\1" * 15)),
        hdr(MAP_ADD) + nest(A_POD, s(P_NAME, "ns-a/fuzz"), s(P_NODE, "fuzz-node"), ip4(P_IPV4, "10.10.10.11"), attr(P_HOST_NETWORK, b"")),
        hdr(MAP_ADD) + nest(A_NODE, s(N_NAME, "fuzz-node"), ip4(N_IPV4, "10.0.0.1"), u16(N_PORT, 7443)),
        hdr(MAP_STAGE) + attr(A_BEGIN, b"") + nest(A_POD, *pod_ok),
        hdr(MAP_GET) + s(A_POD_NAME, "web-pod-1"),
        hdr(MAP_DEL) + s(A_POD_NAME, "fuzz-pod"),
        hdr(MODE_SET) + u32(A_MODE, 1),
        hdr(MAP_COMMIT),
    ]
    answered, bad = 0, []
    for r in range(rounds):
        msg = bytearray(rng.choice(templates))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if op < 0.6 and msg:
                msg[rng.randrange(len(msg))] = rng.randrange(256)
            elif op < 0.8:
                del msg[rng.randrange(1, len(msg) + 1):]
            else:
                msg += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        try:
            err, _, _ = sk.request(0, raw=bytes(msg))
        except (NoReply, AssertionError) as e:
            bad.append(f"round {r}: {e}: {bytes(msg).hex()}")
            break  # the socket is out of step now
        if err not in ALLOWED:
            bad.append(f"round {r}: {errno.errorcode.get(err, err)}: {bytes(msg).hex()}")
            continue
        answered += 1
    try:
        err, _, _ = sk.request(MODE_GET)
    except (NoReply, AssertionError) as e:
        err = str(e)
    ok = err == 0 and answered == rounds and not bad
    for b in bad[:10]:
        print(f"     {b}")
    print(f"{'ok  ' if ok else 'FAIL'} {answered}/{rounds} random mutations answered once with an allowed errno; "
          f"module healthy afterwards: {err == 0}")
    return 0 if ok else 1


if __name__ == "__main__":
    main()
