#!/usr/bin/env python3
"""replay: the attacker of tests/vm/39-syncookie-replay.sh, and its app.
Python 3 standard library only.

  server PORT
      A TCP server (IPv4, any address). Per connection: read until EOF or
      an error, print "conn=N got=<bytes>" for every read and
      "conn=N end=<eof|errnoN>" (flushed lines), answer "ack\\n" once the
      first bytes came in.

  client HOST PORT MARKER
      Connect, send MARKER and a newline, read the server's "ack", close.
      Prints "ok ..." or "FAIL: ..." (exit 1).

  replay PCAP SRC DST PORT
      Send again, from a raw socket (IP_HDRINCL), every IPv4 TCP packet of
      PCAP (Ethernet frames, as tcpdump writes them) from SRC to DST:PORT,
      in order, 50 ms apart: the recorded SYN, ACK and records of a flow.
      TCP checksums are computed afresh (a capture of an offloading
      device holds partial ones). Prints what it sent.
"""
import argparse
import socket
import struct
import sys
import threading
import time

from dpapp import read_answer


def cmd_server(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", a.port))
    ls.listen(64)
    lock = threading.Lock()
    n = 0

    def log(line):
        with lock:
            print(line, flush=True)

    def handle(c, k):
        answered = False
        end = "eof"
        try:
            c.settimeout(30)
            while True:
                b = c.recv(4096)
                if not b:
                    break
                log(f"conn={k} got={b!r}")
                if not answered:
                    c.sendall(b"ack\n")
                    answered = True
        except OSError as e:
            end = type(e).__name__ if e.errno is None else f"errno{e.errno}"
        log(f"conn={k} end={end}")
        c.close()

    while True:
        try:
            c, _ = ls.accept()
        except OSError as e:
            log(f"accept error errno{e.errno}")
            continue
        n += 1
        log(f"conn={n} accepted")
        threading.Thread(target=handle, args=(c, n), daemon=True).start()


def cmd_client(a):
    try:
        s = socket.create_connection((a.host, a.port), timeout=20)
        s.sendall(a.marker.encode() + b"\n")
        got = read_answer(s, 20)
        s.close()
    except OSError as e:
        print(f"FAIL: client: {e}")
        return 1
    if got != b"ack\n":
        print(f"FAIL: client: the server answered {got!r}")
        return 1
    print("ok client: sent the marker, the server answered")
    return 0


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"FAIL: {path}: link type {linktype}, expected Ethernet (1)")
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) > 14 and frame[12:14] == b"\x08\x00":
            yield frame[14:]


FLAGS = "FSRPAUEC"


def cmd_replay(a):
    src, dst = socket.inet_aton(a.src), socket.inet_aton(a.dst)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = []
    for ip in packets(a.pcap):
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        ip = bytearray(ip[:total])
        if ip[9] != 6 or ip[12:16] != src or ip[16:20] != dst:
            continue
        tcp = ip[ihl:]
        if struct.unpack("!H", tcp[2:4])[0] != a.port:
            continue
        tcp[16:18] = b"\0\0"
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp[16:18] = struct.pack("!H", csum(bytes(pseudo + tcp)))
        ip[ihl:] = tcp
        raw.sendto(bytes(ip), (a.dst, 0))
        flags = "".join(c for i, c in enumerate(FLAGS) if tcp[13] >> i & 1)
        seq = struct.unpack("!I", tcp[4:8])[0]
        sent.append(f"{flags}:{seq}+{len(tcp) - (tcp[12] >> 4) * 4}")
        time.sleep(0.05)
    print(f"replayed {len(sent)} packets: {' '.join(sent)}")
    return 0 if sent else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("port", type=int)
    s = sub.add_parser("client")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("marker")
    s = sub.add_parser("replay")
    s.add_argument("pcap")
    s.add_argument("src")
    s.add_argument("dst")
    s.add_argument("port", type=int)
    a = p.parse_args()
    return {"server": cmd_server, "client": cmd_client, "replay": cmd_replay}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
