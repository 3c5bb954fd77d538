#!/usr/bin/env python3
"""acceptrace: listener-side apps for tests/vm/32-listener-close.sh and
33-accept-ops.sh (review 2026-12, H2 and M3): keyed children that sit on an
accept queue, listeners closed under them, accept() racing the install.
Python 3 standard library; run unprivileged in a pod. `ok`/`info` lines
for what held, `FAIL:` lines for violations (exit 1).

  hold PORT --close-file F
      Listen (backlog 1024), never accept; once F exists close the listener
      ("closed"), then stay (the test kills it).
  clients HOST PORT N
      Open N connections, print "connected N", hold them until each sees EOF
      or an error (the listener's close resets them), 120 s in all.
  churn PORT SECS [--period MS] [--accept-some]
      For SECS: open a listener (backlog 1024), wait --period, close it;
      with --accept-some every other listener first accepts what is queued
      (non-blocking, up to 4) and closes those at once.
  connloop HOST PORT SECS THREADS
      THREADS threads connect again and again for SECS; a connection that
      gets in is held until the peer resets or closes it, or 300 ms.
  serve PORT N --marker M
      Accept N connections (blocking, one thread); read one 64-byte message
      (the client's), then the child must have kTLS RX (getsockopt(SOL_TLS,
      TLS_RX)); echo the message.
  spliceserve PORT N --marker M
      A thread stays blocked in accept() (so accept() races the install on
      each new child); per connection, a handler waits for POLLIN (poll),
      then splice()s the first 64 bytes into a pipe: they must be the
      client's plaintext message, never a TLS record (17 03 03); then it
      echoes them. Exits after N connections with a summary ("no-tls-rx":
      children without kTLS RX at accept() time, for information: accept()
      may also win against the key derivation).
  echoclients HOST PORT N --marker M
      N connections one after the other: connect, send one 64-byte message,
      read the echo.
"""

import argparse
import os
import re
import select
import socket
import struct
import sys
import threading
import time

MSG_LEN = 64
SOL_TLS = 282
TLS_RX = 2
_lock = threading.Lock()
_failed = [0]


def say(*a):
    with _lock:
        print(*a, flush=True)


def fail(msg):
    with _lock:
        _failed[0] += 1
        print("FAIL:", msg, flush=True)


def fam_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listener(port, backlog=1024):
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind(("::", port))
    ls.listen(backlog)
    return ls


def timeouts(s, secs):
    tv = struct.pack("ll", int(secs), 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)


def msg(marker, n):
    m = f"{marker}:{n:05d}:".encode()
    return m + b"." * (MSG_LEN - 1 - len(m)) + b"\n"


def recv_full(s, n):
    d = b""
    while len(d) < n:
        x = s.recv(n - len(d))
        if not x:
            break
        d += x
    return d


def tls_rx(c):
    """kTLS RX of c as (version, cipher) (asking for just the 4-byte
    tls_crypto_info header: no key material), or the errno."""
    try:
        info = c.getsockopt(SOL_TLS, TLS_RX, 4)
        return struct.unpack("HH", info)
    except OSError as e:
        return e.errno


def cmd_hold(a):
    ls = listener(a.port)
    say(f"listening on {a.port}")
    while not os.path.exists(a.close_file):
        time.sleep(0.05)
    ls.close()
    say("closed")
    while True:
        time.sleep(60)


def cmd_clients(a):
    fam = fam_of(a.host)
    socks = []
    for _ in range(a.n):
        s = socket.socket(fam, socket.SOCK_STREAM)
        timeouts(s, 120)
        s.connect((a.host, a.port))
        socks.append(s)
    say(f"connected {len(socks)}")
    ends = {}
    end = time.monotonic() + 120
    while socks and time.monotonic() < end:
        r, _, _ = select.select(socks, [], [], max(0, end - time.monotonic()))
        for s in r:
            try:
                d = s.recv(4096)
                k = "eof" if not d else "data"
            except OSError as e:
                k = os.strerror(e.errno) if e.errno else str(e)
            ends[k] = ends.get(k, 0) + 1
            socks.remove(s)
            s.close()
    if socks:
        ends["still open after 120 s"] = len(socks)
    say("ends", ends)


def cmd_churn(a):
    end = time.monotonic() + a.secs
    cycles = accepted = 0
    while time.monotonic() < end:
        try:
            ls = listener(a.port)
        except OSError as e:
            say("info listen:", e)
            time.sleep(0.01)
            continue
        cycles += 1
        time.sleep(a.period / 1000)
        if a.accept_some and cycles % 2:
            ls.setblocking(False)
            for _ in range(4):
                try:
                    c, _ = ls.accept()
                except OSError:
                    break
                accepted += 1
                c.close()
        ls.close()
    say(f"churn: {cycles} listeners, {accepted} accepted")


def cmd_connloop(a):
    fam = fam_of(a.host)
    end = time.monotonic() + a.secs
    counts = {"in": 0, "refused": 0, "other": 0}

    def loop():
        while time.monotonic() < end:
            s = socket.socket(fam, socket.SOCK_STREAM)
            timeouts(s, 2)
            try:
                s.connect((a.host, a.port))
            except OSError as e:
                k = "refused" if e.errno == 111 else "other"
                with _lock:
                    counts[k] += 1
                s.close()
                time.sleep(0.005)
                continue
            with _lock:
                counts["in"] += 1
            try:
                select.select([s], [], [], 0.3)
            except OSError:
                pass
            s.close()

    ts = [threading.Thread(target=loop) for _ in range(a.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    say("connloop:", counts)


def cmd_serve(a):
    ls = listener(a.port)
    say(f"listening on {a.port}")
    for i in range(a.n):
        c, peer = ls.accept()
        timeouts(c, 60)
        d = recv_full(c, MSG_LEN)
        # Once a read got through, kTLS RX is on (also if accept() won
        # the race with the key derivation and the child left gated).
        rx = tls_rx(c)
        if not isinstance(rx, tuple):
            fail(f"conn {i} from {peer[0]}: accepted child has no kTLS RX after a read (getsockopt(SOL_TLS, TLS_RX): {os.strerror(rx)})")
        if not re.fullmatch(re.escape(a.marker.encode()) + rb":\d{5}:\.+\n", d):
            fail(f"conn {i}: read {d[:16].hex()}..., not the client's message")
        c.sendall(d)
        c.close()
    say(f"served {a.n}")
    sys.exit(1 if _failed[0] else 0)


def cmd_spliceserve(a):
    ls = listener(a.port)
    say(f"listening on {a.port}")
    want = re.compile(re.escape(a.marker.encode()) + rb":\d{5}:\.+\n")
    stats = {"ok": 0, "ciphertext": 0, "bad": 0, "not-ready": 0, "error": 0, "no-tls-rx": 0}
    done = threading.Semaphore(0)

    def handle(c, i):
        k = "error"
        try:
            timeouts(c, 60)
            rx = tls_rx(c)
            if not isinstance(rx, tuple):
                stats_add("no-tls-rx")
            p = select.poll()
            p.register(c, select.POLLIN)
            if not p.poll(60000):
                k = "not-ready"
                fail(f"conn {i}: no POLLIN in 60 s")
                return
            r, w = os.pipe()
            try:
                d = b""
                while len(d) < MSG_LEN:
                    n = os.splice(c.fileno(), w, MSG_LEN - len(d))
                    if n == 0:
                        break
                    d += os.read(r, n)
            finally:
                os.close(r)
                os.close(w)
            if d[:3] == b"\x17\x03\x03":
                k = "ciphertext"
                fail(f"conn {i}: splice() read ciphertext: {d[:16].hex()}... (TLS_RX: {rx})")
                return
            if not want.fullmatch(d):
                k = "bad"
                fail(f"conn {i}: splice() read {d[:16].hex()}..., not the client's message")
                return
            c.sendall(d)
            k = "ok"
        except OSError as e:
            fail(f"conn {i}: {e}")
        finally:
            stats_add(k)
            c.close()
            done.release()

    def stats_add(k):
        with _lock:
            stats[k] += 1

    def acceptor():
        for i in range(a.n):
            c, _ = ls.accept()
            threading.Thread(target=handle, args=(c, i), daemon=True).start()

    threading.Thread(target=acceptor, daemon=True).start()
    for _ in range(a.n):
        done.acquire()
    say("spliceserve:", stats)
    sys.exit(1 if _failed[0] else 0)


def cmd_echoclients(a):
    fam = fam_of(a.host)
    ok = 0
    for i in range(a.n):
        s = socket.socket(fam, socket.SOCK_STREAM)
        timeouts(s, 60)
        m = msg(a.marker, i)
        try:
            s.connect((a.host, a.port))
            s.sendall(m)
            d = recv_full(s, MSG_LEN)
            if d == m:
                ok += 1
            else:
                fail(f"conn {i}: echo {d[:16].hex()}...")
        except OSError as e:
            fail(f"conn {i}: {e}")
        s.close()
    say(f"echoclients: {ok}/{a.n} echoed")
    sys.exit(1 if _failed[0] else 0)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("hold")
    p.add_argument("port", type=int)
    p.add_argument("--close-file", required=True)
    p = sub.add_parser("clients")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p = sub.add_parser("churn")
    p.add_argument("port", type=int)
    p.add_argument("secs", type=float)
    p.add_argument("--period", type=float, default=50)
    p.add_argument("--accept-some", action="store_true")
    p = sub.add_parser("connloop")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("secs", type=float)
    p.add_argument("threads", type=int)
    for name in ("serve", "spliceserve"):
        p = sub.add_parser(name)
        p.add_argument("port", type=int)
        p.add_argument("n", type=int)
        p.add_argument("--marker", required=True)
    p = sub.add_parser("echoclients")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--marker", required=True)
    a = ap.parse_args()
    globals()["cmd_" + a.cmd](a)


if __name__ == "__main__":
    main()
