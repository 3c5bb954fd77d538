#!/usr/bin/env python3
"""pskecho: a refused peer-set's error ack must not carry the secret back
(tests/vm/41-node-pairs.sh). The netlink core echoes a failed request in
its error message, and frees the request buffer unwiped: the module wipes
the PSK in the request once it is done with it.

Sets a random secret for node NODE under epoch 1, then a different one
under the same epoch (refused: EEXIST), and checks the echoed request:
the second secret's bytes must not be in it, and zeros must stand where
they were. Prints "ok ..." or "FAIL: ..." (exit 1)."""
import os
import struct
import sys

import nlfuzz
from nlfuzz import NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR, attr, messages, nest, s

PEER_SET, A_PEER, P_NAME, P_PSK, P_EPOCH = 11, 17, 2, 3, 4


def peer_set(sk, node, psk, epoch):
    body = struct.pack("=BBH", PEER_SET, 1, 0) + nest(
        A_PEER, s(P_NAME, node), attr(P_PSK, psk), attr(P_EPOCH, struct.pack("=Q", epoch)))
    sk.send_raw(sk.fam, NLM_F_REQUEST | NLM_F_ACK, body)
    while True:
        for ty, _, seq, msg in messages(sk.sk.recv(1 << 16)):
            if seq == sk.seq and ty == NLMSG_ERROR:
                return -struct.unpack_from("=i", msg)[0], msg[4:]


def main():
    node = sys.argv[1]
    sk = nlfuzz.Sock()
    first, second = os.urandom(32), os.urandom(32)
    err, _ = peer_set(sk, node, first, 1)
    if err:
        print(f"FAIL: the first peer-set was refused: {os.strerror(err)}")
        return 1
    err, echo = peer_set(sk, node, second, 1)
    if err != 17:  # EEXIST
        print(f"FAIL: a different secret under epoch 1 gave errno {err}, expected EEXIST")
        return 1
    if len(echo) < 16 + 4 + 32:
        print(f"FAIL: the error ack echoes {len(echo)} bytes, not the request")
        return 1
    if second in echo or first in echo:
        print("FAIL: the error ack echoes the secret")
        return 1
    if b"\0" * 32 not in echo:
        print("FAIL: no zeroed secret in the echoed request")
        return 1
    print(f"ok refused peer-set (EEXIST): the echoed request ({len(echo)} bytes) carries zeros, not the secret")
    return 0


if __name__ == "__main__":
    sys.exit(main())
