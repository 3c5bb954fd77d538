#!/usr/bin/env python3
"""tlswire: the wire proof. Reads a packet capture (pcap, as `tcpdump -w`
writes it) and tells, for every TCP connection in it, whether each direction's
byte stream, from ISN+1 on, is nothing but a chain of TLS records, and
whether a marker the application sent shows up anywhere.

    tlswire.py PCAP [--marker STR | --marker hex:HEX | --marker-hex HEX]...
               [--port P]... [--host IP]... [--expect tls|plain]
               [--min-conns N] [--json]

Pure Python 3 standard library. Link types: Ethernet (with VLAN tags),
Linux cooked (SLL and SLL2), raw IP, BSD loopback. IPv4 and IPv6 (extension
headers skipped; fragments counted, not reassembled). TCP connections are
grouped by 4-tuple, and a reused 4-tuple is split at a SYN with a new ISN.
Each direction's stream is reassembled from ISN+1 (retransmissions,
overlaps, out-of-order segments; gaps and retransmissions whose bytes differ
are reported).

A TLS chain: records back to back from the stream's first byte, each with
content type 0x17 (application_data; TLS 1.3 and kTLS put nothing else on
the wire), legacy version 03 03 and a length of 17 (the smallest AEAD
record) to 2^14 + 256. A record cut off at the end is fine only if the
capture ended while the direction was still open or it was reset (no FIN:
"cut" in the JSON); before a FIN it is a failure.

--expect tls: exit 1 unless at least --min-conns (default 1) selected
connections carry payload, every selected connection's directions were
captured from their SYN, without gaps, and are complete TLS chains, and no
marker appears anywhere (in any connection's stream or in the raw capture
bytes: give each flow you expect to be encrypted its own marker).
--expect plain (the control): exit 1 unless every marker appears in some
selected connection's stream (with no marker: unless --min-conns selected
connections carry payload that is not a TLS chain).
Exit 2: unreadable capture or bad arguments.
"""

import argparse
import ipaddress
import json
import struct
import sys

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW = 0, 1, 101
LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 108, 113, 276
LINKTYPE_IPV4, LINKTYPE_IPV6 = 228, 229
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)

TLS_APPLICATION_DATA = 0x17
TLS_LEGACY_VERSION = 0x0303
TLS_MAX_LEN = 2**14 + 256
TLS_MIN_LEN = 17  # inner content type + a 16-byte AEAD tag

SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
MOD32 = 1 << 32


class CaptureError(Exception):
    pass


def read_pcap(data):
    """(linktype, [(index, caplen, origlen, frame)], file ends mid-record)."""
    if len(data) < 24:
        raise CaptureError("not a pcap file (shorter than its 24-byte header)")
    magic = bytes(data[:4])
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    elif magic == b"\x0a\x0d\x0d\x0a":
        raise CaptureError("pcapng is not supported: capture with tcpdump -w (pcap)")
    else:
        raise CaptureError(f"not a pcap file (magic {magic.hex()})")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    rec = struct.Struct(endian + "IIII")
    frames, off, truncated = [], 24, False
    while off < len(data):
        if off + 16 > len(data):
            truncated = True
            break
        _, _, caplen, origlen = rec.unpack_from(data, off)
        off += 16
        if off + caplen > len(data):
            truncated = True
            break
        frames.append((len(frames), caplen, origlen, data[off:off + caplen]))
        off += caplen
    return linktype, frames, truncated


def l3_of(linktype, frame):
    """(ethertype, network-layer bytes) or (None, None) for anything else."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None, None
        et, off = struct.unpack_from(">H", frame, 12)[0], 14
        while et in VLAN_TPIDS and len(frame) >= off + 4:
            et, off = struct.unpack_from(">H", frame, off + 2)[0], off + 4
        return et, frame[off:]
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None, None
        return struct.unpack_from(">H", frame, 14)[0], frame[16:]
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None, None
        return struct.unpack_from(">H", frame, 0)[0], frame[20:]
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not frame:
            return None, None
        return {4: ETH_P_IP, 6: ETH_P_IPV6}.get(frame[0] >> 4), frame
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            return None, None
        fam = struct.unpack_from("<I" if linktype == LINKTYPE_NULL else ">I", frame, 0)[0]
        if fam > 0xFFFF:  # written on a host of the other byte order
            fam = struct.unpack_from(">I" if linktype == LINKTYPE_NULL else "<I", frame, 0)[0]
        et = ETH_P_IP if fam == 2 else ETH_P_IPV6 if fam in (10, 24, 28, 30) else None
        return et, frame[4:]
    raise CaptureError(f"unsupported link type {linktype}")


class Stats:
    def __init__(self):
        self.packets = 0
        self.non_ip = 0
        self.non_tcp = 0
        self.fragments = 0
        self.malformed = 0
        self.snapped = 0  # frames cut by the snap length


def tcp_of(et, pkt, stats):
    """(family, src, dst, tcp header+payload bytes, payload length per IP) or None."""
    if et == ETH_P_IP:
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            stats.malformed += 1
            return None
        ihl = (pkt[0] & 15) * 4
        total = struct.unpack_from(">H", pkt, 2)[0]
        frag = struct.unpack_from(">H", pkt, 6)[0]
        if total == 0 and len(pkt) > 65535:  # BIG TCP: the length is the frame's
            total = len(pkt)
        if ihl < 20 or total < ihl:
            stats.malformed += 1
            return None
        if frag & 0x3FFF:  # MF or a fragment offset
            stats.fragments += 1
            return None
        if pkt[9] != 6:
            stats.non_tcp += 1
            return None
        return 4, bytes(pkt[12:16]), bytes(pkt[16:20]), pkt[ihl:total], total - ihl
    if et == ETH_P_IPV6:
        if len(pkt) < 40 or pkt[0] >> 4 != 6:
            stats.malformed += 1
            return None
        plen = struct.unpack_from(">H", pkt, 4)[0]
        nh, off, end = pkt[6], 40, 40 + plen
        if plen == 0 and nh == 0:  # jumbogram (BIG TCP): the length is the frame's
            end = len(pkt)
        while nh in (0, 43, 60, 44, 51):
            if len(pkt) < off + 8:
                stats.malformed += 1
                return None
            if nh == 44:
                if struct.unpack_from(">H", pkt, off + 2)[0] & 0xFFF9:  # offset or M
                    stats.fragments += 1
                    return None
                hlen = 8
            elif nh == 51:
                hlen = (pkt[off + 1] + 2) * 4
            else:
                hlen = (pkt[off + 1] + 1) * 8
            nh, off = pkt[off], off + hlen
        if nh != 6:
            stats.non_tcp += 1
            return None
        if end < off:
            stats.malformed += 1
            return None
        return 6, bytes(pkt[8:24]), bytes(pkt[24:40]), pkt[off:end], end - off
    stats.non_ip += 1
    return None


def fmt_ep(ep):
    ip, port = ep
    a = ipaddress.ip_address(ip)
    return f"[{a}]:{port}" if a.version == 6 else f"{a}:{port}"


class Direction:
    def __init__(self):
        self.isn = None  # sequence number of the SYN
        self.raw = []  # (seq of first payload byte, claimed length, bytes, packet index)
        self.fin_seq = None
        self.rst = False
        self.packets = 0
        self.syn_data = 0


class Conn:
    def __init__(self, client, server, from_syn, first_packet):
        self.client, self.server = client, server
        self.client_from_syn = from_syn
        self.first_packet = first_packet
        self.dirs = {"c2s": Direction(), "s2c": Direction()}
        self.packets = 0

    def direction(self, src):
        return self.dirs["c2s" if src == self.client else "s2c"]


def track(linktype, frames, stats):
    """Groups TCP segments into connections, in order of first packet."""
    conns, current = [], {}
    for index, caplen, origlen, frame in frames:
        stats.packets += 1
        if caplen < origlen:
            stats.snapped += 1
        et, pkt = l3_of(linktype, frame)
        if et is None:
            stats.non_ip += 1
            continue
        t = tcp_of(et, pkt, stats)
        if t is None:
            continue
        fam, sip, dip, seg, seglen = t
        if len(seg) < 20:
            stats.malformed += 1
            continue
        sport, dport, seq, ack = struct.unpack_from(">HHII", seg, 0)
        doff, flags = (seg[12] >> 4) * 4, seg[13]
        if doff < 20 or seglen < doff:
            stats.malformed += 1
            continue
        src, dst = (sip, sport), (dip, dport)
        key = (src, dst) if src < dst else (dst, src)
        c = current.get(key)
        if flags & SYN and not flags & ACK:
            if c is None or c.dirs["c2s"].isn is None and c.packets or \
                    c.dirs["c2s"].isn is not None and (c.client != src or c.dirs["c2s"].isn != seq):
                c = Conn(src, dst, True, index)
                conns.append(c)
                current[key] = c
            c.dirs["c2s"].isn = seq
        elif flags & SYN:  # SYN-ACK
            if c is None:
                c = Conn(dst, src, True, index)
                c.dirs["c2s"].isn = (ack - 1) % MOD32
                conns.append(c)
                current[key] = c
            if c.server == src:
                c.direction(src).isn = seq
        elif c is None:
            # Joined mid-connection: call the higher port the client.
            client, server = (src, dst) if sport > dport or sport == dport and src > dst else (dst, src)
            c = Conn(client, server, False, index)
            conns.append(c)
            current[key] = c
        c.packets += 1
        d = c.direction(src)
        d.packets += 1
        first = (seq + (1 if flags & SYN else 0)) % MOD32
        claimed = seglen - doff
        data = seg[doff:seglen] if len(seg) >= seglen else seg[doff:]
        if claimed:
            d.raw.append((first, claimed, data, index))
            if flags & SYN:
                d.syn_data += claimed
        if flags & FIN:
            d.fin_seq = (first + claimed) % MOD32
        if flags & RST:
            d.rst = True
    return conns


def unwrap_all(d):
    """Absolute stream offsets (first byte after the SYN = 0) of the direction's
    segments, following 32-bit wraparound in arrival order. Without a SYN, the
    lowest offset seen becomes 0."""
    if not d.raw and d.fin_seq is None:
        return [], None
    base = (d.isn + 1) % MOD32 if d.isn is not None else (d.raw[0][0] if d.raw else d.fin_seq)
    hi, out = 0, []

    def unwrap(seq):
        nonlocal hi
        delta = (seq - base - hi) % MOD32
        if delta >= 1 << 31:
            delta -= MOD32
        return hi + delta

    for seq, claimed, data, index in d.raw:
        off = unwrap(seq)
        hi = max(hi, off + claimed)
        out.append((off, claimed, data, index))
    fin = unwrap(d.fin_seq) if d.fin_seq is not None else None
    if d.isn is None and out:
        low = min(o for o, _, _, _ in out)
        out = [(o - low, c, b, i) for o, c, b, i in out]
        fin = fin - low if fin is not None else None
    return out, fin


def reassemble(d):
    """Chunks of contiguous stream [(start, bytes)], gaps [(start, length)],
    conflicting (retransmitted, differing) bytes, retransmitted bytes."""
    segs, fin = unwrap_all(d)
    segs.sort(key=lambda s: (s[0], s[3]))
    chunks, gaps = [], []
    cur, cur_start, pos = bytearray(), 0, 0
    retrans = conflicts = 0
    wire_end = 0
    for off, claimed, data, _ in segs:
        wire_end = max(wire_end, off + claimed)
        if off < 0:  # before ISN+1: only with a bogus sequence number
            data, claimed, off = data[-off:], max(0, claimed + off), 0
        end = off + len(data)
        if end <= pos or off > pos:
            if off > pos:
                if cur:
                    chunks.append((cur_start, bytes(cur)))
                gaps.append((pos, off - pos))
                cur, cur_start, pos = bytearray(data), off, end
                continue
            lo = max(off, cur_start)
            if end > lo:
                retrans += end - lo
                if bytes(cur[lo - cur_start:end - cur_start]) != bytes(data[lo - off:]):
                    conflicts += sum(1 for a, b in zip(cur[lo - cur_start:end - cur_start], data[lo - off:]) if a != b)
            continue
        overlap = pos - off
        if overlap:
            lo = max(off, cur_start)
            retrans += pos - lo
            old = bytes(cur[lo - cur_start:pos - cur_start])
            if old != bytes(data[lo - off:overlap]):
                conflicts += sum(1 for a, b in zip(old, data[lo - off:overlap]) if a != b)
        cur += data[overlap:]
        pos = end
    if fin is not None:
        wire_end = max(wire_end, fin)
    if cur:
        chunks.append((cur_start, bytes(cur)))
    if wire_end > pos:
        gaps.append((pos, wire_end - pos))
    return chunks, gaps, conflicts, retrans, wire_end


def tls_chain(chunks, gaps, closed):
    """Walks TLS records from offset 0 of the stream."""
    res = {"ok": False, "records": 0, "record_bytes": 0, "break": None, "trailing_partial": None}
    if not chunks and not gaps:
        res["ok"] = True
        return res
    if not chunks or chunks[0][0] != 0:
        res["break"] = {"offset": 0, "reason": "stream start not captured"}
        return res
    data = chunks[0][1]
    p, n = 0, 0
    while p + 5 <= len(data):
        typ, ver, length = data[p], (data[p + 1] << 8) | data[p + 2], (data[p + 3] << 8) | data[p + 4]
        why = None
        if typ != TLS_APPLICATION_DATA:
            why = f"content type 0x{typ:02x}, not 0x17"
        elif ver != TLS_LEGACY_VERSION:
            why = f"version {ver:04x}, not 0303"
        elif length > TLS_MAX_LEN:
            why = f"length {length} > {TLS_MAX_LEN}"
        elif length < TLS_MIN_LEN:
            why = f"length {length} < {TLS_MIN_LEN}"
        if why:
            res["break"] = {"offset": p, "reason": why, "bytes_hex": data[p:p + 16].hex(),
                            "bytes_text": printable(data[p:p + 16])}
            break
        if p + 5 + length > len(data):
            break
        p += 5 + length
        n += 1
    res["records"], res["record_bytes"] = n, p
    if res["break"]:
        return res
    if p == len(data) and len(chunks) == 1 and not gaps:
        res["ok"] = True
        return res
    if len(chunks) > 1 or gaps:
        at = gaps[0][0] if gaps else chunks[1][0]
        res["break"] = {"offset": at, "reason": f"gap in the capture at offset {at}"}
        return res
    need = 5 if p + 5 > len(data) else 5 + ((data[p + 3] << 8) | data[p + 4])
    res["trailing_partial"] = {"offset": p, "have": len(data) - p, "need": need}
    if closed:
        res["break"] = {"offset": p, "reason": f"record cut off ({len(data) - p} of {need} bytes) before FIN"}
    else:
        res["ok"] = True  # the capture ended while the stream was open
    return res


def printable(b):
    return "".join(chr(c) if 32 <= c < 127 else "." for c in b)


def find_markers(chunks, markers):
    found = {}
    for m in markers:
        for start, data in chunks:
            i = data.find(m)
            if i >= 0:
                found[m] = start + i
                break
    return found


def parse_marker(s, is_hex=False):
    if s.startswith("hex:"):
        s, is_hex = s[4:], True
    if is_hex:
        try:
            b = bytes.fromhex(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad hex marker {s!r}")
    else:
        b = s.encode()
    if not b:
        raise argparse.ArgumentTypeError("empty marker")
    return b


def marker_name(m):
    try:
        t = m.decode("ascii")
        if t.isprintable():
            return t
    except UnicodeDecodeError:
        pass
    return "hex:" + m.hex()


def analyse(path, markers=(), ports=(), hosts=()):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CaptureError(f"{path}: {e.strerror}")
    linktype, frames, file_truncated = read_pcap(memoryview(data))
    stats = Stats()
    conns = track(linktype, frames, stats)
    hostset = {ipaddress.ip_address(h).packed for h in hosts}
    out = []
    for i, c in enumerate(conns):
        eps = (c.client, c.server)
        selected = (not ports or any(p in ports for _, p in eps)) and \
            (not hostset or any(ip in hostset for ip, _ in eps))
        conn = {
            "id": i,
            "client": fmt_ep(c.client), "server": fmt_ep(c.server),
            "client_ip": str(ipaddress.ip_address(c.client[0])), "client_port": c.client[1],
            "server_ip": str(ipaddress.ip_address(c.server[0])), "server_port": c.server[1],
            "family": 4 if len(c.client[0]) == 4 else 6,
            "client_from_syn": c.client_from_syn,
            "first_packet": c.first_packet,
            "packets": c.packets,
            "selected": selected,
            "directions": {},
        }
        for name, d in c.dirs.items():
            chunks, gaps, conflicts, retrans, wire_end = reassemble(d)
            closed = d.fin_seq is not None and not d.rst
            found = find_markers(chunks, markers)
            conn["directions"][name] = {
                "bytes": sum(len(b) for _, b in chunks),
                "stream_end": wire_end,
                "isn_known": d.isn is not None,
                "packets": d.packets,
                "syn_data": d.syn_data,
                "gaps": [list(g) for g in gaps],
                "retransmitted_bytes": retrans,
                "conflicting_bytes": conflicts,
                "fin": d.fin_seq is not None,
                "rst": d.rst,
                "cut": not closed,
                "tls": tls_chain(chunks, gaps, closed),
                "markers": {marker_name(m): off for m, off in found.items()},
                "head_hex": chunks[0][1][:16].hex() if chunks else "",
            }
        conn["payload"] = any(d["stream_end"] for d in conn["directions"].values())
        conn["tls_ok"] = all(d["tls"]["ok"] and (d["isn_known"] or not d["stream_end"])
                             for d in conn["directions"].values())
        out.append(conn)
    raw = bytes(data)
    return {
        "pcap": path,
        "linktype": linktype,
        "file_truncated": file_truncated,
        "packets": stats.packets,
        "non_ip_packets": stats.non_ip,
        "non_tcp_packets": stats.non_tcp,
        "ip_fragments": stats.fragments,
        "malformed_packets": stats.malformed,
        "snapped_packets": stats.snapped,
        "markers": [marker_name(m) for m in markers],
        "markers_in_raw_pcap": {marker_name(m): raw.find(m) >= 0 for m in markers},
        "connections": out,
    }


def verdict(res, expect, min_conns):
    failures = []
    sel = [c for c in res["connections"] if c["selected"] and c["payload"]]
    if len(sel) < min_conns:
        failures.append(f"{len(sel)} selected connection(s) with payload, expected at least {min_conns}")
    if expect == "tls":
        for c in sel:
            for name, d in c["directions"].items():
                if not d["stream_end"]:
                    continue
                where = f"#{c['id']} {c['client']} -> {c['server']} {name}"
                if not d["isn_known"]:
                    failures.append(f"{where}: SYN not captured, stream start unknown")
                if d["conflicting_bytes"]:
                    failures.append(f"{where}: {d['conflicting_bytes']} retransmitted bytes differ")
                if not d["tls"]["ok"]:
                    b = d["tls"]["break"]
                    failures.append(f"{where}: not a TLS record chain: {b['reason']} at offset {b['offset']}"
                                    + (f" ({b['bytes_hex']} '{b['bytes_text']}')" if "bytes_hex" in b else "")
                                    + f", after {d['tls']['records']} records")
        for c in res["connections"]:
            for name, d in c["directions"].items():
                for m, off in d["markers"].items():
                    failures.append(f"marker {m!r} in plaintext: #{c['id']} {c['client']} -> {c['server']} {name} at offset {off}")
        for m, hit in res["markers_in_raw_pcap"].items():
            if hit:
                failures.append(f"marker {m!r} in the raw capture bytes")
    elif expect == "plain":
        if res["markers"]:
            for m in res["markers"]:
                if not any(m in d["markers"] for c in sel for d in c["directions"].values()):
                    failures.append(f"marker {m!r} not seen in any selected connection's payload")
        else:
            plain = [c for c in sel if not c["tls_ok"]]
            if len(plain) < min_conns:
                failures.append(f"{len(plain)} selected connection(s) carry non-TLS payload, expected at least {min_conns}")
    return failures


def human(res, failures, expect, out):
    p = out.write
    p(f"tlswire: {res['pcap']}: {res['packets']} packets (link type {res['linktype']}), "
      f"{len(res['connections'])} TCP connections, {sum(c['selected'] for c in res['connections'])} selected\n")
    notes = [f"{res[k]} {k.replace('_', ' ')}" for k in ("ip_fragments", "malformed_packets", "snapped_packets") if res[k]]
    if res["file_truncated"]:
        notes.append("file ends mid-record")
    if notes:
        p("  note: " + ", ".join(notes) + "\n")
    for c in res["connections"]:
        p(f"  #{c['id']}{'' if c['selected'] else ' (not selected)'} {c['client']} -> {c['server']}"
          f"{'' if c['client_from_syn'] else ' (no SYN: roles guessed)'}, {c['packets']} packets\n")
        for name, d in c["directions"].items():
            t = d["tls"]
            if not d["stream_end"]:
                what = "no payload"
            elif t["ok"]:
                what = f"TLS chain, {t['records']} records"
                if t["trailing_partial"]:
                    tp = t["trailing_partial"]
                    what += f" + partial record at the end ({tp['have']} of {tp['need']} bytes; capture ended while open)"
            else:
                b = t["break"]
                what = f"NOT TLS: {b['reason']} at offset {b['offset']} after {t['records']} records"
                if "bytes_text" in b:
                    what += f" ('{b['bytes_text']}')"
            extra = []
            if d["stream_end"] and not d["isn_known"]:
                extra.append("SYN not captured")
            if d["gaps"]:
                extra.append(f"{len(d['gaps'])} gap(s), first at {d['gaps'][0][0]}")
            if d["retransmitted_bytes"]:
                extra.append(f"{d['retransmitted_bytes']} retransmitted bytes")
            if d["conflicting_bytes"]:
                extra.append(f"{d['conflicting_bytes']} CONFLICTING bytes")
            extra.append("FIN" if d["fin"] else "RST" if d["rst"] else "open")
            if d["rst"] and d["fin"]:
                extra.append("RST")
            for m, off in d["markers"].items():
                extra.append(f"MARKER {m!r} at {off}")
            p(f"      {name}: {d['bytes']} bytes, {what}; {', '.join(extra)}\n")
    for m, hit in res["markers_in_raw_pcap"].items():
        p(f"  marker {m!r} in raw capture bytes: {'YES' if hit else 'no'}\n")
    if expect:
        if failures:
            for f in failures:
                p(f"  FAIL ({expect}): {f}\n")
        else:
            p(f"  PASS: expect {expect}\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Is every TCP byte in a capture a TLS record?")
    ap.add_argument("pcap")
    ap.add_argument("--marker", action="append", default=[], type=parse_marker,
                    help="bytes the app sent in plaintext: a string, or hex:HEX")
    ap.add_argument("--marker-hex", action="append", default=[], type=lambda s: parse_marker(s, True))
    ap.add_argument("--port", action="append", default=[], type=int, help="select connections with this port (either end)")
    ap.add_argument("--host", action="append", default=[], help="select connections with this address (either end)")
    ap.add_argument("--expect", choices=("tls", "plain"))
    ap.add_argument("--min-conns", type=int, default=1)
    ap.add_argument("--json", "--flows-json", action="store_true", help="print the JSON summary instead")
    a = ap.parse_args(argv)
    for h in a.host:
        try:
            ipaddress.ip_address(h)
        except ValueError:
            ap.error(f"--host {h}: not an IP address")
    try:
        res = analyse(a.pcap, a.marker + a.marker_hex, set(a.port), a.host)
    except CaptureError as e:
        print(f"tlswire: {e}", file=sys.stderr)
        return 2
    failures = verdict(res, a.expect, a.min_conns) if a.expect else []
    if a.expect:
        res["verdict"] = {"expect": a.expect, "ok": not failures, "failures": failures}
    if a.json:
        json.dump(res, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        human(res, failures, a.expect, sys.stdout)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
