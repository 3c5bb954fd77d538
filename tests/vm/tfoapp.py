#!/usr/bin/env python3
"""TCP Fast Open apps for tests/vm/44-fastopen-ungated.sh (run as nobody).

  tfoapp.py server PORT        dual-stack listener with a Fast Open queue
                               (TCP_FASTOPEN 16); per connection: read what
                               arrives within 5 s ("got DATA" or "recv
                               error NAME"), then answer "reply-DATA" ("sent"
                               or "send error NAME"). Logs "listening on".
  tfoapp.py client HOST PORT DATA [--plain]
                               DATA in the SYN (sendto MSG_FASTOPEN; with
                               --plain: connect, then send), then print the
                               answer ("reply ..."), "eof" or "error NAME".
"""
import errno
import socket
import sys
import time


def err(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


def server(port, delay):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
    s.bind(("::", port))
    s.listen(64)
    print(f"listening on {port}", flush=True)
    while True:
        # Accept only after the handshake completed (the ESTABLISHED probe
        # then sees a child nobody holds yet).
        time.sleep(float(delay))
        c, peer = s.accept()
        c.settimeout(5)
        data = b""
        try:
            data = c.recv(200)
            print(f"got {data.decode(errors='replace')} from {peer[0]}", flush=True)
        except OSError as e:
            print(f"recv error {err(e)} from {peer[0]}", flush=True)
        try:
            c.sendall(b"reply-" + data)
            print("sent", flush=True)
        except OSError as e:
            print(f"send error {err(e)}", flush=True)
        c.close()


def client(host, port, data, plain):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(15)
    try:
        if plain:
            s.connect((host, port))
            s.sendall(data.encode())
        else:
            s.sendto(data.encode(), socket.MSG_FASTOPEN, (host, port))
        got = s.recv(200)
        print(f"reply {got.decode(errors='replace')}" if got else "eof", flush=True)
    except OSError as e:
        print(f"error {err(e)}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "0")
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4], "--plain" in sys.argv[5:])
