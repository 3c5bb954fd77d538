#!/usr/bin/env python3
"""A stand-in for the agents' per-flow handshakes, to test the kernel's side
of the openssl/boringssl modes (spec/key-schedule.md §11) in one VM: it
joins the `keys` multicast group, and answers every `flow-key-request` with
`flow-key-set` for that end, over raw genetlink (no tlshubctl, so the test
also checks the wire format against spec/uapi.rs).

Both ends of a flow get the same 32 bytes, SHA-256 over a per-run salt and
the flow's context in the client's order (what the real workers export
from their handshake), unless told otherwise:
  --skip client|server   never answer that end (its flow must time out)
  --wrong server         give the server end other bytes (the two ends then
                         derive different keys)
Each event is logged as one JSON line (no secret) to --log.

`flowkeys.py checks` sends malformed and unmatched flow-key-set requests
and checks each errno and extack message."""
import argparse
import errno
import hashlib
import json
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nlfuzz import Sock, attr, nest, parse_attrs, u16, u32, SOL_NETLINK  # noqa: E402

# spec/uapi.rs
FLOW_KEY_REQUEST, FLOW_KEY_SET = 19, 20
A_FLOW = 18
(F_ROLE, F_STATE, F_LIP4, F_LIP6, F_LPORT, F_RIP4, F_RIP6, F_RPORT, F_LPOD, F_RPOD,
 F_PEER, F_CIPHER, F_AGE, F_MODE, F_SECRET, F_CISN, F_SISN) = range(2, 19)
ROLE_CLIENT, ROLE_SERVER = 1, 2
MODES = {0: "tlshub", 1: "openssl", 2: "boringssl"}
NETLINK_ADD_MEMBERSHIP = 1


def keys_group(sk):
    """The `keys` multicast group's id (nlctrl GETFAMILY)."""
    body = struct.pack("=BBH", 3, 1, 0) + attr(2, b"tlshub\0")
    sk.send_raw(0x10, 1 | 4, body)
    _, _, payloads = sk.recv()
    for ty, val in parse_attrs(payloads[0][4:]):
        if ty == 7:  # CTRL_ATTR_MCAST_GROUPS
            for _, grp in parse_attrs(val):
                g = dict(parse_attrs(grp))
                if g.get(1, b"").rstrip(b"\0") == b"keys":
                    return struct.unpack("=I", g[2][:4])[0]
    sys.exit("no keys group")


def ip_attr(ty4, ty6, addr):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return attr(ty6 if fam == socket.AF_INET6 else ty4, socket.inet_pton(fam, addr))


def parse_flow(nest_bytes):
    a = dict(parse_attrs(nest_bytes))
    u = lambda t: struct.unpack("=I", a[t][:4])[0]
    ip = lambda t4, t6: (socket.inet_ntop(socket.AF_INET, a[t4]) if t4 in a
                         else socket.inet_ntop(socket.AF_INET6, a[t6]))
    txt = lambda t: a[t].rstrip(b"\0").decode()
    return dict(role="client" if u(F_ROLE) == ROLE_CLIENT else "server",
                mode=MODES.get(u(F_MODE), str(u(F_MODE))),
                local=ip(F_LIP4, F_LIP6), lport=struct.unpack("=H", a[F_LPORT][:2])[0],
                remote=ip(F_RIP4, F_RIP6), rport=struct.unpack("=H", a[F_RPORT][:2])[0],
                local_pod=txt(F_LPOD), remote_pod=txt(F_RPOD), peer=txt(F_PEER),
                cisn=u(F_CISN), sisn=u(F_SISN), has_secret=F_SECRET in a)


def context(f):
    """The flow in the client's order (spec §11)."""
    if f["role"] == "client":
        c, cp, s, sp = f["local"], f["lport"], f["remote"], f["rport"]
    else:
        c, cp, s, sp = f["remote"], f["rport"], f["local"], f["lport"]
    fam = socket.AF_INET6 if ":" in c else socket.AF_INET
    return (socket.inet_pton(fam, c) + struct.pack(">H", cp) + socket.inet_pton(fam, s)
            + struct.pack(">H", sp) + struct.pack(">II", f["cisn"], f["sisn"]))


def key_set(sk, f, secret, isns=True):
    parts = [ip_attr(F_LIP4, F_LIP6, f["local"]), u16(F_LPORT, f["lport"]),
             ip_attr(F_RIP4, F_RIP6, f["remote"]), u16(F_RPORT, f["rport"]),
             attr(F_SECRET, secret)]
    if isns:
        parts += [u32(F_CISN, f["cisn"]), u32(F_SISN, f["sisn"])]
    return sk.request(FLOW_KEY_SET, nest(A_FLOW, *parts))


def serve(args):
    cmd = Sock()
    ev = Sock()
    grp = keys_group(ev)
    ev.sk.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, grp)
    salt = os.urandom(16)
    log = open(args.log, "a", buffering=1)
    print("ready", flush=True)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        if not select.select([ev.sk], [], [], 0.5)[0]:
            continue
        data = ev.sk.recv(1 << 20)
        off = 0
        while off + 16 <= len(data):
            ln, ty, _, _, _ = struct.unpack_from("=IHHII", data, off)
            body = data[off + 16: off + ln]
            off += (ln + 3) & ~3
            if ty != ev.fam or body[0] != FLOW_KEY_REQUEST:
                continue
            top = dict(parse_attrs(body[4:]))
            f = parse_flow(top[A_FLOW])
            secret = hashlib.sha256(salt + context(f)).digest()
            if args.wrong == f["role"]:
                secret = hashlib.sha256(b"other" + secret).digest()
            rec = dict(f)
            if args.skip == f["role"]:
                rec["answer"] = "skipped"
            else:
                # The server end's flow may not be waiting yet: retry ENOENT.
                for _ in range(200):
                    err, msg, _ = key_set(cmd, f, secret)
                    if err != errno.ENOENT:
                        break
                    time.sleep(0.01)
                rec["answer"] = "ok" if err == 0 else f"{errno.errorcode.get(err, err)}: {msg}"
            log.write(json.dumps(rec) + "\n")


def checks(_args):
    sk = Sock()
    ok = True
    sec = bytes(32)
    base = [ip_attr(F_LIP4, F_LIP6, "10.9.9.1"), u16(F_LPORT, 1000),
            ip_attr(F_RIP4, F_RIP6, "10.9.9.2"), u16(F_RPORT, 2000)]
    cases = [
        ("no flow nest", [], errno.EINVAL, "flow missing"),
        ("no secret", [nest(A_FLOW, *base)], errno.EINVAL, "secret missing"),
        ("short secret", [nest(A_FLOW, *base, attr(F_SECRET, bytes(31)))], errno.ERANGE,
         "binary attribute size out of range"),
        ("no remote port", [nest(A_FLOW, *base[:3], attr(F_SECRET, sec))], errno.EINVAL,
         "remote-port missing"),
        ("families differ", [nest(A_FLOW, base[0], base[1], ip_attr(F_RIP4, F_RIP6, "fd00::2"),
                                  base[3], attr(F_SECRET, sec))], errno.EINVAL, "families differ"),
        ("one isn", [nest(A_FLOW, *base, attr(F_SECRET, sec), u32(F_CISN, 5))], errno.EINVAL,
         "go together"),
        ("duplicate", [nest(A_FLOW, *base, base[1], attr(F_SECRET, sec))], errno.EINVAL,
         "duplicate"),
        ("port 0", [nest(A_FLOW, base[0], u16(F_LPORT, 0), *base[2:], attr(F_SECRET, sec))],
         errno.ERANGE, "integer out of range"),
        ("no such flow", [nest(A_FLOW, *base, attr(F_SECRET, sec))], errno.ENOENT,
         "waits for a key of its own"),
    ]
    for name, attrs, want, msg in cases:
        err, got, _ = sk.request(FLOW_KEY_SET, *attrs)
        good = err == want and (msg is None or (got or "").find(msg) >= 0)
        print(f"{'ok  ' if good else 'FAIL'} flow-key-set {name}: {errno.errorcode.get(err, err)} {got!r}")
        ok &= good
    sys.exit(0 if ok else 1)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--log", required=True)
    s.add_argument("--seconds", type=float, default=600)
    s.add_argument("--skip", choices=["client", "server"])
    s.add_argument("--wrong", choices=["client", "server"])
    sub.add_parser("checks")
    a = p.parse_args()
    (serve if a.cmd == "serve" else checks)(a)


if __name__ == "__main__":
    main()
