#!/usr/bin/env python3
"""holdconns: many TCP connections held open at once, for bench/scale.
Python 3 standard library only.

  server PORT [--ktls]
      Listen (dual-stack, backlog 4096); answer each connection's first byte
      with one byte, then hold it until the peer closes. Prints "listening",
      then "accepted N" every 1000.

  client HOST PORT N --hold FILE [--ktls]
      Open N connections one after another; on each, send a byte and read
      the answer (so a secured connection is keyed at both ends), and keep
      it. Prints "held N in S s (R conn/s)", waits until FILE exists, closes
      them all, prints "closed".

  --ktls: the app installs kTLS itself (TLS 1.3 AES-128-GCM, a fixed key per
  direction), the "kTLS ceiling" case: the same kTLS contexts as a secured
  connection, without tlshub.
"""
import os
import selectors
import socket
import struct
import sys
import time

SOL_TLS, TLS_TX, TLS_RX, TCP_ULP = 282, 1, 2, 31


def install_ktls(s, client):
    s.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
    for opt, c2s in ((TLS_TX, client), (TLS_RX, not client)):
        key = bytes(16) if c2s else bytes([0xFF] * 16)
        salt = b"c2s0" if c2s else b"s2c0"
        # struct tls12_crypto_info_aes_gcm_128: version, cipher 51, iv, key, salt, rec_seq
        info = struct.pack("<HH", 0x0304, 51) + bytes(8) + key + salt + bytes(8)
        s.setsockopt(SOL_TLS, opt, info)


def server(port, ktls):
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("::", port))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, "listen")
    print("listening", flush=True)
    n = 0
    while True:
        for key, _ in sel.select():
            if key.data == "listen":
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    continue
                if ktls:
                    install_ktls(c, False)
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ, "new")
                n += 1
                if n % 1000 == 0:
                    print(f"accepted {n}", flush=True)
                continue
            c = key.fileobj
            try:
                b = c.recv(16)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                b = b""
            if not b:
                sel.unregister(c)
                c.close()
            elif key.data == "new":
                c.send(b"k")
                sel.modify(c, selectors.EVENT_READ, "held")


def client(host, port, n, hold, ktls):
    held = []
    t0 = time.monotonic()
    for i in range(n):
        s = socket.create_connection((host, port), timeout=60)
        if ktls:
            install_ktls(s, True)
        s.sendall(b"x")
        if s.recv(1) != b"k":
            sys.exit(f"FAIL: connection {i}: no answer")
        held.append(s)
        if (i + 1) % 1000 == 0:
            print(f"opened {i + 1} ({time.monotonic() - t0:.1f} s)", flush=True)
    dt = time.monotonic() - t0
    print(f"held {n} in {dt:.1f} s ({n / dt:.1f} conn/s)", flush=True)
    while not os.path.exists(hold):
        time.sleep(0.2)
    for s in held:
        s.close()
    print("closed", flush=True)


def main():
    a = sys.argv[1:]
    ktls = "--ktls" in a
    a = [x for x in a if x != "--ktls"]
    if a[:1] == ["server"] and len(a) == 2:
        server(int(a[1]), ktls)
    elif a[:1] == ["client"] and len(a) == 6 and a[4] == "--hold":
        client(a[1], int(a[2]), int(a[3]), a[5], ktls)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
