#!/usr/bin/env python3
"""A hostile pod's connection flood on a node's agent and worker ports.

Run unprivileged inside a pod: holds N connections per port open, in three
kinds (a third each): silent (connect, say nothing), garbage (random bytes
at once, then nothing) and slow (a TLS record header, then one byte every
2 s: a handshake that never ends). A connection the server closes is opened
again, paced (at most 5 new connections per port per second), so the
pressure lasts as long as the flood. Until SECONDS pass or the file STOP
exists; then prints one JSON line of statistics per port:

  port, held (open at the end), opened, refused (connect failed),
  closed (by the server), closed_fast (of those, within 1 s of connect),
  max_held (the most held at once)

Usage: flood.py HOST PORT[,PORT...] N SECONDS STOP
"""
import json
import os
import random
import selectors
import socket
import sys
import time

KINDS = ("silent", "garbage", "slow")
RATE = 5  # new connections per port per second, at most
SLOW_EVERY = 2.0


class Conn:
    def __init__(self, port, kind):
        self.port, self.kind = port, kind
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.born = time.monotonic()
        self.next_byte = self.born + SLOW_EVERY
        self.connected = False


def main():
    host, ports, n, seconds, stop = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], \
        int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    sel = selectors.DefaultSelector()
    stats = {p: dict(port=p, held=0, opened=0, refused=0, closed=0, closed_fast=0, max_held=0)
             for p in ports}
    conns = {p: [] for p in ports}
    budget = {p: 0.0 for p in ports}
    end = time.monotonic() + seconds
    last = time.monotonic()
    kind_i = 0

    def drop(c, refused):
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        conns[c.port].remove(c)
        s = stats[c.port]
        if refused:
            s["refused"] += 1
        else:
            s["closed"] += 1
            if time.monotonic() - c.born < 1.0:
                s["closed_fast"] += 1

    while time.monotonic() < end and not os.path.exists(stop):
        now = time.monotonic()
        for p in ports:
            budget[p] = min(RATE, budget[p] + (now - last) * RATE)
            while len(conns[p]) < n and budget[p] >= 1:
                budget[p] -= 1
                c = Conn(p, KINDS[kind_i % 3])
                kind_i += 1
                try:
                    c.sock.connect_ex((host, p))
                except OSError:
                    c.sock.close()
                    stats[p]["refused"] += 1
                    continue
                conns[p].append(c)
                stats[p]["opened"] += 1
                sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        last = now
        for key, events in sel.select(timeout=0.2):
            c = key.data
            if not c.connected and events & selectors.EVENT_WRITE:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    drop(c, refused=True)
                    continue
                c.connected = True
                sel.modify(c.sock, selectors.EVENT_READ, c)
                try:
                    if c.kind == "garbage":
                        c.sock.send(random.randbytes(512))
                    elif c.kind == "slow":
                        c.sock.send(b"\x16\x03\x01\x02\x00")  # a ClientHello of 512 bytes, announced
                except OSError:
                    drop(c, refused=False)
                continue
            if events & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    drop(c, refused=False)
        now = time.monotonic()
        for p in ports:
            for c in list(conns[p]):
                if c.connected and c.kind == "slow" and now >= c.next_byte:
                    c.next_byte = now + SLOW_EVERY
                    try:
                        c.sock.send(b"\x01")
                    except OSError:
                        drop(c, refused=False)
            held = sum(1 for c in conns[p] if c.connected)
            stats[p]["max_held"] = max(stats[p]["max_held"], held)
    for p in ports:
        stats[p]["held"] = sum(1 for c in conns[p] if c.connected)
        print(json.dumps(stats[p]), flush=True)


if __name__ == "__main__":
    main()
