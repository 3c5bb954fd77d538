#!/usr/bin/env python3
"""Whole-table replace over several messages is atomic: while a replacement
is being staged the old table stays in force for everyone, another socket
cannot commit or add to it, after map-commit only the new table exists, and
a socket closed before committing takes its staged table with it."""
import errno
import sys

from nlfuzz import (A_BEGIN, A_POD, A_POD_NAME, MAP_COMMIT, MAP_GET, MAP_STAGE, P_IPV4,
                    P_NAME, P_NODE, Sock, attr, ip4, nest, s, v4)

failures = 0


def check(what, cond):
    global failures
    print(f"{'ok  ' if cond else 'FAIL'} {what}")
    failures += not cond


def pod(name, node, ip):
    return nest(A_POD, s(P_NAME, name), s(P_NODE, node), ip4(P_IPV4, v4(ip)))


def lookup(sk, name):
    return sk.request(MAP_GET, s(A_POD_NAME, name))[0]


writer, other = Sock(), Sock()
check("old table in force", lookup(other, "web-pod-1") == 0)
err, _, _ = writer.request(MAP_STAGE, attr(A_BEGIN, b""), pod("new-pod-1", "node-7", 0x0A070001))
check("begin + first batch staged", err == 0)
err, _, _ = writer.request(MAP_STAGE, pod("new-pod-2", "node-7", 0x0A070002))
check("second batch staged", err == 0)
check("staged pods invisible before commit", lookup(other, "new-pod-1") == errno.ENOENT)
check("old pods still visible during staging", lookup(other, "web-pod-1") == 0)
err, msg, _ = other.request(MAP_STAGE, pod("intruder", "node-7", 0x0A070009))
check(f"another socket cannot add to the staging ({msg})", err == errno.EBUSY)
err, msg, _ = other.request(MAP_COMMIT)
check(f"another socket cannot commit it ({msg})", err == errno.EBUSY)
err, _, replies = writer.request(MAP_COMMIT)
check("commit", err == 0 and replies)
check("new pods visible after commit", lookup(other, "new-pod-2") == 0)
check("old pods gone after commit", lookup(other, "web-pod-1") == errno.ENOENT)
check("intruder never made it", lookup(other, "intruder") == errno.ENOENT)
err, _, _ = writer.request(MAP_COMMIT)
check("a second commit has nothing to commit", err == errno.EINVAL)

# A replacement belongs to its socket: closing the socket drops it.
quitter = Sock()
err, _, _ = quitter.request(MAP_STAGE, attr(A_BEGIN, b""), pod("left-behind", "node-8", 0x0A080001))
check("a third socket stages a replacement", err == 0)
err, _, _ = other.request(MAP_STAGE, pod("late", "node-8", 0x0A080002))
check("which others cannot touch", err == errno.EBUSY)
quitter.sk.close()
err, msg, _ = other.request(MAP_STAGE, pod("late", "node-8", 0x0A080002))
check(f"closing its socket dropped it ({msg})", err == errno.EINVAL)
check("and the live table is untouched", lookup(other, "new-pod-1") == 0)
sys.exit(1 if failures else 0)
