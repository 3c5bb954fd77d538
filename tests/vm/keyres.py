#!/usr/bin/env python3
"""keyres: the apps and the memory scanner of tests/vm/51-key-residue.sh
(review L2: key bytes left behind in the kernel). Python 3 standard library.

  server PORT
      Accept one connection (dual-stack), echo until EOF, close. Prints
      "listening" once it listens.

  client HOST PORT
      Connect, send a line, read the echo, then read the socket's own kTLS
      keys back (getsockopt SOL_TLS TLS_TX / TLS_RX: kTLS hands its
      crypto_info to the socket's owner) and print "tx=HEX rx=HEX" (the
      key bytes only), then close. The raw bytes exist only in a ctypes
      buffer that is zeroed before the process goes on: this process must
      not itself leave a key in memory for the scan to find.

  scan NAME=HEX...
      Scan the kernel's memory for each HEX (at least 16 bytes), through
      /proc/kcore's segments that map RAM (those with a physical address):
      prints "NAME hits=N" and, per hit, its physical address. The scanner
      never holds a value whole: it searches for the first half and then
      compares the second, so its own heap is no hit.
"""
import ctypes
import ctypes.util
import os
import socket
import struct
import sys

from dpapp import read_answer

SOL_TLS = 282
TLS_TX, TLS_RX = 1, 2
# struct tls12_crypto_info_aes_gcm_128 / _256 / chacha20_poly1305:
# version u16, cipher u16, then (cipher-specific) iv, key, salt, rec_seq.
CIPHERS = {  # cipher_type: (size, key offset, key length)
    51: (40, 12, 16),   # TLS_CIPHER_AES_GCM_128: iv 8 @4, key 16 @12, salt 4 @28, seq 8 @32
    52: (56, 12, 32),   # TLS_CIPHER_AES_GCM_256: iv 8 @4, key 32 @12, salt 4 @44, seq 8 @48
    54: (56, 16, 32),   # TLS_CIPHER_CHACHA20_POLY1305: iv 12 @4, key 32 @16, salt 0, seq 8 @48
}


def server(port):
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("::", port))
    ls.listen(4)
    print("listening", flush=True)
    c, _ = ls.accept()
    c.settimeout(60)
    while True:
        b = c.recv(4096)
        if not b:
            break
        c.sendall(b)
    c.close()
    print("closed", flush=True)


def own_key_hex(libc, fd, opt):
    """The kTLS key of `fd`'s direction `opt`, as hex; the buffer zeroed."""
    buf = ctypes.create_string_buffer(64)

    def get(size):
        ln = ctypes.c_uint32(size)
        if libc.getsockopt(fd, SOL_TLS, opt, buf, ctypes.byref(ln)) != 0:
            sys.exit(f"FAIL: getsockopt(SOL_TLS, {opt}, {size}): errno {ctypes.get_errno()}")

    try:
        # The header first (version, cipher), then exactly that cipher's
        # struct, which is what kTLS accepts.
        get(4)
        cipher = buf[2][0] | (buf[3][0] << 8)
        if cipher not in CIPHERS:
            sys.exit(f"FAIL: unknown kTLS cipher {cipher}")
        size, off, klen = CIPHERS[cipher]
        get(size)
        # Byte by byte through ints: no bytes object holds the key.
        return "".join("%02x" % buf[off + i][0] for i in range(klen))
    finally:
        ctypes.memset(buf, 0, 64)


def client(host, port):
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    s = socket.create_connection((host, port), timeout=60)
    s.sendall(b"key residue\n")
    got = read_answer(s)
    if got != b"key residue\n":
        sys.exit(f"FAIL: echo {got!r}")
    tx = own_key_hex(libc, s.fileno(), TLS_TX)
    rx = own_key_hex(libc, s.fileno(), TLS_RX)
    s.shutdown(socket.SHUT_WR)
    s.recv(16)
    s.close()
    print(f"tx={tx} rx={rx}", flush=True)


def ram_segments(fd):
    """(file offset, physical address, size) of kcore's RAM-backed loads."""
    eh = os.pread(fd, 64, 0)
    if eh[:4] != b"\x7fELF" or eh[4] != 2:
        sys.exit("FAIL: /proc/kcore is not ELF64")
    phoff, = struct.unpack_from("<Q", eh, 32)
    phentsize, phnum = struct.unpack_from("<HH", eh, 54)
    segs = []
    for i in range(phnum):
        ph = os.pread(fd, phentsize, phoff + i * phentsize)
        ptype, _, off, _, paddr, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", ph)
        if ptype == 1 and paddr != 0xFFFFFFFFFFFFFFFF and filesz:
            segs.append((off, paddr, filesz))
    return segs


def scan(items):
    wanted = []
    for it in items:
        name, _, hx = it.partition("=")
        if len(hx) < 32 or len(hx) % 2:
            sys.exit(f"FAIL: {name}: need at least 16 bytes of hex")
        half = len(hx) // 2
        # Two separate objects: the value is never whole in this process.
        wanted.append((name, bytes.fromhex(hx[:half]), bytes.fromhex(hx[half:]), []))
    fd = os.open("/proc/kcore", os.O_RDONLY)
    chunk = 8 << 20
    longest = max(len(a) + len(b) for _, a, b, _ in wanted)
    total = 0
    for off, paddr, size in ram_segments(fd):
        pos = 0
        while pos < size:
            n = min(chunk + longest, size - pos)
            data = os.pread(fd, n, off + pos)
            if not data:
                break
            for _, lo, hi, hits in wanted:
                i = data.find(lo)
                while i != -1:
                    if i < chunk and data[i + len(lo):i + len(lo) + len(hi)] == hi:
                        hits.append(paddr + pos + i)
                    i = data.find(lo, i + 1)
            total += min(chunk, n)
            pos += chunk
    os.close(fd)
    print(f"scanned {total >> 20} MiB", flush=True)
    for name, _, _, hits in wanted:
        print(f"{name} hits={len(hits)}" + "".join(f" 0x{h:x}" for h in hits[:8]), flush=True)


def main():
    a = sys.argv[1:]
    if a[:1] == ["server"] and len(a) == 2:
        server(int(a[1]))
    elif a[:1] == ["client"] and len(a) == 3:
        client(a[1], int(a[2]))
    elif a[:1] == ["scan"] and len(a) >= 2:
        scan(a[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
