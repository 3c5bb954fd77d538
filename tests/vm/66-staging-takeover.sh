# Staging takeover: a `begin` from another socket takes the replacement
# over; the older sender's next stage or commit gets EBUSY; the live table
# after the new owner's commit is exactly its staging (tests/vm/nlfuzz.py).
. ./lib.sh
load_module
tlshubctl mapping load ../../examples/pod_node_mapping.conf >/dev/null
python3 - <<'PY'
import errno, sys
from nlfuzz import A_BEGIN, A_POD, A_POD_NAME, MAP_COMMIT, MAP_GET, MAP_STAGE, P_IPV4, P_NAME, P_NODE, Sock, attr, ip4, nest, s, status

failures = 0
def check(what, cond):
    global failures
    print(f"{'ok  ' if cond else 'FAIL'} {what}")
    failures += not cond

def pod(name, ip):
    return nest(A_POD, s(P_NAME, name), s(P_NODE, "node-t"), ip4(P_IPV4, ip))

def lookup(sk, name):
    return sk.request(MAP_GET, s(A_POD_NAME, name))[0]

a, b, reader = Sock(), Sock(), Sock()
err, msg, _ = a.request(MAP_STAGE, attr(A_BEGIN, b""), pod("a-pod-1", "10.77.0.1"))
check(f"A begins and stages ({msg})", err == 0)
err, msg, _ = a.request(MAP_STAGE, pod("a-pod-2", "10.77.0.2"))
check(f"A stages more ({msg})", err == 0)
err, msg, _ = b.request(MAP_STAGE, attr(A_BEGIN, b""), pod("b-pod-1", "10.78.0.1"))
check(f"B's begin takes the staging over ({msg})", err == 0)
err, msg, _ = a.request(MAP_STAGE, pod("a-pod-3", "10.77.0.3"))
check(f"A's next stage: EBUSY, got {errno.errorcode.get(err, err)} ({msg})", err == errno.EBUSY and msg)
err, msg, _ = a.request(MAP_COMMIT)
check(f"A's commit: EBUSY, got {errno.errorcode.get(err, err)} ({msg})", err == errno.EBUSY and msg)
check("old table still live while B stages", lookup(reader, "web-pod-1") == 0 and lookup(reader, "b-pod-1") == errno.ENOENT)
err, msg, _ = b.request(MAP_STAGE, pod("b-pod-2", "10.78.0.2"))
check(f"B stages more ({msg})", err == 0)
gen = status(reader)["generation"]
err, msg, _ = b.request(MAP_COMMIT)
check(f"B commits ({msg})", err == 0)
st = status(reader)
check(f"live table is B's: 2 pods, 1 node (got {st['pods']}, {st['nodes']})", st["pods"] == 2 and st["nodes"] == 1)
check("B's pods live", lookup(reader, "b-pod-1") == 0 and lookup(reader, "b-pod-2") == 0)
check("none of A's pods, none of the old table", all(lookup(reader, p) == errno.ENOENT for p in ("a-pod-1", "a-pod-2", "a-pod-3", "web-pod-1")))
check(f"generation moved ({gen} -> {st['generation']})", st["generation"] != gen)
err, msg, _ = a.request(MAP_COMMIT)
check(f"A still has nothing to commit: {errno.errorcode.get(err, err)} ({msg})", err in (errno.EINVAL, errno.EBUSY))
# A can start over with its own begin, and B's later stage is then refused.
err, _, _ = a.request(MAP_STAGE, attr(A_BEGIN, b""), pod("a-pod-9", "10.77.0.9"))
check("A takes it back with begin", err == 0)
err, _, _ = b.request(MAP_STAGE, pod("b-pod-9", "10.78.0.9"))
check(f"B's stage now EBUSY (got {errno.errorcode.get(err, err)})", err == errno.EBUSY)
a.close()
check("A closed: live table still B's", lookup(reader, "b-pod-1") == 0 and lookup(reader, "a-pod-9") == errno.ENOENT)
sys.exit(1 if failures else 0)
PY
