"""Host tests of tests/vm/tlswire.py (the wire proof) on captures built here,
byte by byte: pcap header, link layer, IPv4/IPv6, TCP."""
import contextlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TLSWIRE = os.path.join(HERE, "..", "vm", "tlswire.py")
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
import tlswire  # noqa: E402

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def ip6(s):
    import ipaddress
    return ipaddress.IPv6Address(s).packed


def tcp(sport, dport, seq, ack, flags, payload=b""):
    return struct.pack(">HHIIBBHHH", sport, dport, seq % 2**32, ack % 2**32, 5 << 4, flags, 65535, 0, 0) + payload


def ipv4(src, dst, l4, proto=6):
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, ip4(src), ip4(dst)) + l4


def ipv6(src, dst, l4, hop_by_hop=False):
    nh, ext = 6, b""
    if hop_by_hop:  # 8-byte hop-by-hop header (PadN) before TCP
        ext, nh = bytes([6, 0, 1, 4, 0, 0, 0, 0]), 0
    return struct.pack(">IHBB16s16s", 6 << 28, len(ext) + len(l4), nh, 64, ip6(src), ip6(dst)) + ext + l4


def eth(l3, et, pad=True):
    f = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack(">H", et) + l3
    return f + b"\x00" * (60 - len(f)) if pad and len(f) < 60 else f  # short frames are padded


def sll(l3, et):
    return struct.pack(">HHH8sH", 0, 1, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00", et) + l3


def sll2(l3, et):
    return struct.pack(">HHIHBB8s", et, 0, 2, 1, 0, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00") + l3


def pcap(frames, linktype=1, endian="<", nsec=False, snaplen=262144):
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, f in enumerate(frames):
        if isinstance(f, tuple):  # (frame, original length): cut by the snap length
            f, orig = f
        else:
            orig = len(f)
        out.append(struct.pack(endian + "IIII", 1700000000 + i, 0, len(f), orig) + f)
    return b"".join(out)


def record(n, fill=None):
    """A TLS 1.3 application_data record with n bytes of (random) body."""
    body = bytes(random.getrandbits(8) for _ in range(n)) if fill is None else fill * n
    return b"\x17\x03\x03" + struct.pack(">H", n) + body


class Flow:
    """One TCP connection, rendered to link-layer frames."""

    def __init__(self, c="10.1.0.11", s="10.2.0.21", cport=40000, sport=7000, v6=False,
                 isn_c=1000, isn_s=5000, link=1, hop_by_hop=False):
        self.c, self.s, self.cport, self.sport, self.v6 = c, s, cport, sport, v6
        self.seq = {"c": isn_c + 1, "s": isn_s + 1}
        self.isn = {"c": isn_c, "s": isn_s}
        self.link, self.hbh = link, hop_by_hop
        self.frames = []

    def frame(self, who, seq, ack, flags, payload=b""):
        src, dst = (self.c, self.s) if who == "c" else (self.s, self.c)
        sp, dp = (self.cport, self.sport) if who == "c" else (self.sport, self.cport)
        seg = tcp(sp, dp, seq, ack, flags, payload)
        if self.v6:
            l3, et = ipv6(src, dst, seg, self.hbh), 0x86DD
        else:
            l3, et = ipv4(src, dst, seg), 0x0800
        if self.link == 1:
            return eth(l3, et)
        if self.link == 113:
            return sll(l3, et)
        if self.link == 276:
            return sll2(l3, et)
        raise ValueError(self.link)

    def emit(self, who, seq, ack, flags, payload=b""):
        self.frames.append(self.frame(who, seq, ack, flags, payload))

    def handshake(self):
        self.emit("c", self.isn["c"], 0, SYN)
        self.emit("s", self.isn["s"], self.seq["c"], SYN | ACK)
        self.emit("c", self.seq["c"], self.seq["s"], ACK)
        return self

    def segments(self, who, data, sizes):
        # Splits data into segments of the given sizes (the last takes the
        # rest); returns [(seq, payload)] without emitting them.
        out, p = [], 0
        for n in list(sizes) + [len(data)]:
            if p >= len(data):
                break
            out.append((self.seq[who] + p, data[p:p + n]))
            p += n
        self.seq[who] += len(data)
        return out

    def send(self, who, data, sizes=(1400,)):
        other = "s" if who == "c" else "c"
        for seq, chunk in self.segments(who, data, sizes):
            self.emit(who, seq, self.seq[other], ACK | PSH, chunk)

    def fin(self, who):
        other = "s" if who == "c" else "c"
        self.emit(who, self.seq[who], self.seq[other], FIN | ACK)
        self.seq[who] += 1


class Tmp:
    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()

    def write(self, data, name="t.pcap"):
        p = os.path.join(self.dir.name, name)
        with open(p, "wb") as f:
            f.write(data)
        return p


def run(path, *args):
    """tlswire's main(): (exit code, JSON result)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = tlswire.main([path, "--json", *args])
    return rc, json.loads(out.getvalue()) if out.getvalue() else None


class TlsWire(unittest.TestCase):
    def setUp(self):
        random.seed(1)
        self.tmp = Tmp()

    def tearDown(self):
        self.tmp.dir.cleanup()

    def check(self, frames, *args, linktype=1, **kw):
        return run(self.tmp.write(pcap(frames, linktype=linktype, **kw)), *args)

    def test_tls_chain_split_retransmitted_out_of_order(self):
        # Records split mid-header across segments, one segment retransmitted,
        # two swapped, sequence numbers wrapping: one chain of 4 records.
        f = Flow(isn_c=2**32 - 700, isn_s=2**32 - 3).handshake()
        data = record(600) + record(17) + record(1000) + record(16384 + 256)
        segs = f.segments("c", data, (3, 400, 250, 1000, 7))
        f.emit("c", *segs[0][:1], f.seq["s"], ACK, segs[0][1])
        f.emit("c", segs[2][0], f.seq["s"], ACK, segs[2][1])  # out of order
        f.emit("c", segs[1][0], f.seq["s"], ACK, segs[1][1])
        f.emit("c", segs[1][0], f.seq["s"], ACK, segs[1][1])  # retransmission
        f.emit("c", segs[2][0] - 10, f.seq["s"], ACK, data[segs[2][0] - 10 - segs[0][0]:][:60])  # overlap
        for seq, chunk in segs[3:]:
            f.emit("c", seq, f.seq["s"], ACK, chunk)
        f.send("s", record(100) + record(200), (50,))
        f.fin("c")
        f.fin("s")
        rc, res = self.check(f.frames, "--expect", "tls", "--marker", "secret-marker")
        self.assertEqual(rc, 0, res["verdict"])
        (c,) = res["connections"]
        self.assertEqual((c["client"], c["server"], c["family"]), ("10.1.0.11:40000", "10.2.0.21:7000", 4))
        c2s, s2c = c["directions"]["c2s"], c["directions"]["s2c"]
        self.assertEqual(c2s["bytes"], len(data))
        self.assertEqual(c2s["tls"]["records"], 4)
        self.assertEqual(c2s["retransmitted_bytes"], 400 + 60)
        self.assertEqual((c2s["gaps"], c2s["conflicting_bytes"], c2s["fin"], c2s["cut"]), ([], 0, True, False))
        self.assertEqual((s2c["tls"]["records"], s2c["bytes"]), (2, 310))
        self.assertEqual(res["markers_in_raw_pcap"], {"secret-marker": False})

    def test_plaintext_marker(self):
        # The control: a marker split across two segments is found in the
        # stream (not in the raw bytes); expect plain passes, expect tls fails.
        f = Flow().handshake()
        f.send("c", b"GET / HTTP/1.1\r\nX-Marker: tlshub-marker-1234\r\n\r\n", (30,))
        f.send("s", b"HTTP/1.1 200 OK\r\n\r\nbody-marker")
        f.fin("c")
        f.fin("s")
        path = self.tmp.write(pcap(f.frames))
        rc, res = run(path, "--expect", "plain", "--marker", "tlshub-marker-1234", "--marker", "body-marker")
        self.assertEqual(rc, 0, res["verdict"])
        c2s = res["connections"][0]["directions"]["c2s"]
        self.assertEqual(c2s["markers"], {"tlshub-marker-1234": 26})
        self.assertEqual(res["markers_in_raw_pcap"], {"tlshub-marker-1234": False, "body-marker": True})
        self.assertEqual(c2s["tls"]["break"]["offset"], 0)
        self.assertIn("content type 0x47", c2s["tls"]["break"]["reason"])
        rc, res = run(path, "--expect", "tls", "--marker", "tlshub-marker-1234")
        self.assertEqual(rc, 1)
        self.assertTrue(any("marker 'tlshub-marker-1234' in plaintext" in x for x in res["verdict"]["failures"]))
        rc, res = run(path, "--expect", "plain", "--marker", "not-there")
        self.assertEqual(rc, 1)
        rc, res = run(path, "--expect", "plain", "--marker-hex", b"body-marker".hex())
        self.assertEqual(rc, 0)
        rc, res = run(path, "--expect", "plain")  # no marker: a non-TLS stream is enough
        self.assertEqual(rc, 0)

    def test_tls_then_plaintext(self):
        f = Flow().handshake()
        head = record(40) + record(50)
        f.send("c", head + b"plain text after the records", (45,))
        f.fin("c")
        rc, res = self.check(f.frames, "--expect", "tls")
        self.assertEqual(rc, 1)
        t = res["connections"][0]["directions"]["c2s"]["tls"]
        self.assertEqual((t["ok"], t["records"], t["break"]["offset"]), (False, 2, len(head)))
        self.assertEqual(t["break"]["bytes_text"], "plain text after")

    def test_ipv6_with_extension_header(self):
        f = Flow(c="fd00:1::11", s="fd00:2::21", v6=True, hop_by_hop=True).handshake()
        f.send("c", record(3000), (1000,))
        f.send("s", record(20))
        rc, res = self.check(f.frames, "--expect", "tls", "--host", "fd00:2::21")
        self.assertEqual(rc, 0, res["verdict"])
        c = res["connections"][0]
        self.assertEqual((c["client"], c["server"], c["family"]), ("[fd00:1::11]:40000", "[fd00:2::21]:7000", 6))
        self.assertEqual(c["directions"]["c2s"]["cut"], True)  # no FIN: capture ended while open

    def test_big_tcp_jumbogram(self):
        # IPv6 BIG TCP: payload length 0, the hop-by-hop jumbo option, a
        # segment over 64 KiB.
        f = Flow(c="fd00:1::11", s="fd00:2::21", v6=True).handshake()
        data = record(16640) * 5
        seg = tcp(40000, 7000, f.seq["c"], f.seq["s"], ACK, data)
        hbh = bytes([6, 0, 0xC2, 4]) + struct.pack(">I", 8 + len(seg))
        l3 = struct.pack(">IHBB16s16s", 6 << 28, 0, 0, 64, ip6("fd00:1::11"), ip6("fd00:2::21")) + hbh + seg
        f.frames.append(eth(l3, 0x86DD))
        rc, res = self.check(f.frames, "--expect", "tls")
        self.assertEqual(rc, 0, res["verdict"])
        self.assertEqual(res["connections"][0]["directions"]["c2s"]["tls"]["records"], 5)

    def test_linux_cooked_sll_and_sll2(self):
        for link in (113, 276):
            with self.subTest(link=link):
                f = Flow(link=link).handshake()
                f.send("c", record(500), (100,))
                f.fin("c")
                rc, res = self.check(f.frames, "--expect", "tls", linktype=link)
                self.assertEqual(rc, 0, res["verdict"])
                self.assertEqual(res["linktype"], link)
                self.assertEqual(res["connections"][0]["directions"]["c2s"]["tls"]["records"], 1)
                f6 = Flow(link=link, v6=True, c="fd00:1::11", s="fd00:2::21").handshake()
                f6.send("c", b"hello marker")
                rc, res = self.check(f6.frames, "--expect", "plain", "--marker", "marker", linktype=link)
                self.assertEqual(rc, 0, res["verdict"])

    def test_gap_fails(self):
        f = Flow().handshake()
        segs = f.segments("c", record(3000), (1000, 1000, 1000))
        for i, (seq, chunk) in enumerate(segs):
            if i != 1:
                f.emit("c", seq, f.seq["s"], ACK, chunk)
        rc, res = self.check(f.frames, "--expect", "tls")
        self.assertEqual(rc, 1)
        d = res["connections"][0]["directions"]["c2s"]
        self.assertEqual(d["gaps"], [[1000, 1000]])
        self.assertIn("gap", d["tls"]["break"]["reason"])

    def test_trailing_partial_record(self):
        # Cut off by the end of the capture: fine; before a FIN: not.
        for fin, want in ((False, 0), (True, 1)):
            with self.subTest(fin=fin):
                f = Flow().handshake()
                f.send("c", record(100) + record(200)[:50])
                if fin:
                    f.fin("c")
                rc, res = self.check(f.frames, "--expect", "tls")
                self.assertEqual(rc, want)
                t = res["connections"][0]["directions"]["c2s"]["tls"]
                self.assertEqual(t["trailing_partial"], {"offset": 105, "have": 50, "need": 205})

    def test_bad_record_headers(self):
        for head, why in ((b"\x16\x03\x03\x00\x20", "content type 0x16"), (b"\x17\x03\x01\x00\x20", "version 0301"),
                          (b"\x17\x03\x03\x41\x01", "length 16641"), (b"\x17\x03\x03\x00\x10", "length 16 <")):
            with self.subTest(why=why):
                f = Flow().handshake()
                f.send("c", record(30) + head + b"\x00" * 40)
                rc, res = self.check(f.frames, "--expect", "tls")
                self.assertEqual(rc, 1)
                self.assertIn(why, res["connections"][0]["directions"]["c2s"]["tls"]["break"]["reason"])

    def test_ethernet_padding_is_not_payload(self):
        f = Flow().handshake()
        f.send("c", b"x")  # one byte: the frame is padded to 60 bytes
        rc, res = self.check(f.frames)
        self.assertEqual(res["connections"][0]["directions"]["c2s"]["bytes"], 1)

    def test_reused_tuple_is_two_connections(self):
        f = Flow().handshake()
        f.send("c", record(30))
        f.fin("c")
        f.fin("s")
        g = Flow(isn_c=9_000_000, isn_s=123).handshake()
        g.send("c", b"second connection, plaintext")
        rc, res = self.check(f.frames + g.frames, "--json")
        self.assertEqual(len(res["connections"]), 2)
        self.assertEqual([c["tls_ok"] for c in res["connections"]], [True, False])

    def test_conflicting_retransmission(self):
        f = Flow().handshake()
        data = record(100)
        f.send("c", data)
        f.emit("c", f.seq["c"] - 50, f.seq["s"], ACK, b"Z" * 50)
        rc, res = self.check(f.frames, "--expect", "tls")
        self.assertEqual(rc, 1)
        self.assertEqual(res["connections"][0]["directions"]["c2s"]["conflicting_bytes"],
                         sum(1 for b in data[-50:] if b != ord("Z")))

    def test_missing_syn_and_selection(self):
        # A connection joined mid-stream cannot be proven; filters select.
        f = Flow(cport=40001)
        f.send("c", record(30))
        g = Flow(cport=40002, sport=8080).handshake()
        g.send("c", record(30))
        frames = f.frames + g.frames
        rc, res = self.check(frames, "--expect", "tls")
        self.assertEqual(rc, 1)
        self.assertTrue(any("SYN not captured" in x for x in res["verdict"]["failures"]))
        self.assertFalse(res["connections"][0]["client_from_syn"])
        rc, res = self.check(frames, "--expect", "tls", "--port", "8080")
        self.assertEqual(rc, 0, res["verdict"])
        self.assertEqual([c["selected"] for c in res["connections"]], [False, True])
        rc, res = self.check(frames, "--expect", "tls", "--port", "8080", "--host", "10.9.9.9")
        self.assertEqual(rc, 1)  # nothing selected: no vacuous pass
        self.assertIn("0 selected connection(s)", res["verdict"]["failures"][0])

    def test_marker_in_other_packets_fails_tls(self):
        # A marker anywhere in the capture (here a UDP datagram) fails expect tls.
        f = Flow().handshake()
        f.send("c", record(30))
        udp = struct.pack(">HHHH", 5353, 5353, 8 + 12, 0) + b"the-marker.."
        frames = f.frames + [eth(ipv4("10.1.0.11", "10.2.0.21", udp, proto=17), 0x0800)]
        rc, res = self.check(frames, "--expect", "tls", "--marker", "the-marker")
        self.assertEqual(rc, 1)
        self.assertEqual(res["verdict"]["failures"], ["marker 'the-marker' in the raw capture bytes"])

    def test_byte_orders_and_snapped_frames(self):
        f = Flow().handshake()
        f.send("c", record(100))
        for endian, nsec in ((">", False), ("<", True), (">", True)):
            with self.subTest(endian=endian, nsec=nsec):
                rc, res = self.check(f.frames, "--expect", "tls", endian=endian, nsec=nsec)
                self.assertEqual(rc, 0, res["verdict"])
        frames = list(f.frames)
        frames[-1] = (frames[-1][:80], len(frames[-1]))  # cut by the snap length
        rc, res = self.check(frames, "--expect", "tls")
        self.assertEqual(rc, 1)
        self.assertEqual(res["snapped_packets"], 1)
        self.assertEqual(res["connections"][0]["directions"]["c2s"]["gaps"], [[26, 79]])

    def test_cli(self):
        # The script itself: human summary, exit codes 0/1/2.
        f = Flow().handshake()
        f.send("c", b"hello tlshub-marker-cli")
        path = self.tmp.write(pcap(f.frames))
        p = subprocess.run([sys.executable, TLSWIRE, path, "--expect", "plain", "--marker", "tlshub-marker-cli"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("10.1.0.11:40000 -> 10.2.0.21:7000", p.stdout)
        self.assertIn("PASS: expect plain", p.stdout)
        p = subprocess.run([sys.executable, TLSWIRE, path, "--expect", "tls"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("FAIL (tls)", p.stdout)
        bad = self.tmp.write(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40, "x.pcapng")
        p = subprocess.run([sys.executable, TLSWIRE, bad], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("pcapng", p.stderr)


if __name__ == "__main__":
    unittest.main()
