# Dumps while the mapping changes: a writer keeps deleting and re-adding
# pods of a 20k-pod table (in bursts, python, one socket) while the table is
# dumped over and over, raw (tests/vm/nlfuzz.py) and by `tlshubctl mapping
# show --json`. A dump the kernel did not flag NLM_F_DUMP_INTR, and every
# dump tlshubctl prints (it restarts interrupted ones itself), must be one
# consistent table: every pod once, at most the one being re-added missing,
# each with its own address, each pod's node listed. At least one raw dump
# must have been flagged interrupted, or the test did not test that.
. ./lib.sh
load_module
gen_mapping 20000 > /tmp/m.conf
tlshubctl mapping load /tmp/m.conf >/dev/null
rm -f /tmp/churn.stop /tmp/churn.out
python3 - >/tmp/churn.out 2>&1 <<'PY' &
import os, random, time
from nlfuzz import A_POD, A_POD_NAME, MAP_ADD, MAP_DEL, P_IPV4, P_IPV6, P_NAME, P_NODE, Sock, ip4, ip6, nest, s
sk, rng, ops = Sock(), random.Random(7), 0
while not os.path.exists("/tmp/churn.stop"):
    end = time.time() + rng.uniform(0.05, 0.5)          # a burst of changes...
    while time.time() < end:
        i = rng.randrange(20000)
        err, msg, _ = sk.request(MAP_DEL, s(A_POD_NAME, f"pod-{i}"))
        assert err == 0, ("del", i, err, msg)
        err, msg, _ = sk.request(MAP_ADD, nest(A_POD, s(P_NAME, f"pod-{i}"), s(P_NODE, f"node-{i % 50}"),
                                               ip4(P_IPV4, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"),
                                               ip6(P_IPV6, f"fd00::{i >> 16:x}:{i & 0xffff:x}")))
        assert err == 0, ("add", i, err, msg)
        ops += 2
    time.sleep(rng.uniform(0.3, 3.0))                     # ...then quiet
print(ops)
PY
churn=$!
cat > /tmp/check_dump.py <<'PY'
import json, sys
def check(pods, nodes):
    """pods: [(name, node, [ips])], nodes: [names]. Returns a problem or None."""
    names = [p[0] for p in pods]
    if len(set(names)) != len(names):
        return f"duplicate pods ({len(names) - len(set(names))})"
    if len(names) < 19999 or len(names) > 20000:
        return f"{len(names)} pods (20000, or 19999 mid re-add, expected)"
    known = set(nodes)
    for name, node, ips in pods:
        i = int(name[4:])
        if node != f"node-{i % 50}" or node not in known:
            return f"{name} on {node} (known: {node in known})"
        if f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" not in ips:
            return f"{name} has {ips}"
    return None
if __name__ == "__main__":
    d = json.load(open(sys.argv[1]))
    problem = check([(p["name"], p["node"], [str(x) for x in p["ips"]]) for p in d["pods"]], [n["name"] for n in d["nodes"]])
    if problem:
        sys.exit(f"tlshubctl dump inconsistent: {problem}")
PY
# Raw dumps for a while: count the interrupted ones, check the others.
python3 - <<'PY' || { kill $churn; fail "raw dumps"; }
import socket, struct, sys, time
sys.path.insert(0, "/tmp")
from check_dump import check
from nlfuzz import A_GEN, A_NODE, A_POD, MAP_GET, NLM_F_DUMP_INTR, N_NAME, P_IPV4, P_NAME, P_NODE, Sock, parse_attrs
sk = Sock(timeout=60)
intr = clean = 0
deadline = time.time() + 60
while time.time() < deadline and not (intr >= 3 and clean >= 3):
    err, msg, msgs = sk.dump(MAP_GET)
    assert err == 0, (err, msg)
    pods, nodes, gens = [], [], set()
    for m in msgs:
        for ty, v in parse_attrs(m[4:]):
            if ty == A_GEN:
                gens.add(struct.unpack("=I", v)[0])
            elif ty in (A_POD, A_NODE):
                a = parse_attrs(v)
                name = next(x for t, x in a if t == (P_NAME if ty == A_POD else N_NAME)).rstrip(b"\0").decode()
                if ty == A_NODE:
                    nodes.append(name)
                else:
                    node = next(x for t, x in a if t == P_NODE).rstrip(b"\0").decode()
                    pods.append((name, node, [socket.inet_ntoa(x) for t, x in a if t == P_IPV4]))
    if sk.flags & NLM_F_DUMP_INTR:
        intr += 1
        continue
    clean += 1
    problem = check(pods, nodes) or (len(gens) > 1 and f"generations {sorted(gens)} in one dump")
    if problem:
        sys.exit(f"raw dump not flagged interrupted, but inconsistent: {problem}")
print(f"bench: dump-vs-churn: {clean + intr} raw dumps of 20k pods, {intr} flagged NLM_F_DUMP_INTR, {clean} clean and consistent")
if intr == 0:
    sys.exit("no dump observed an interruption: the concurrent-modification path was not exercised")
if clean == 0:
    sys.exit("no dump completed uninterrupted within 60 s")
PY
# tlshubctl dumps: each either a consistent table or a clean give-up.
good=0 gaveup=0
for n in $(seq 6); do
    if tlshubctl mapping show --json > /tmp/dump.json 2>/tmp/dump.err; then
        python3 /tmp/check_dump.py /tmp/dump.json || { kill $churn; fail "tlshubctl dump $n"; }
        good=$((good + 1))
    else
        grep -q 'kept changing' /tmp/dump.err || { kill $churn; cat /tmp/dump.err >&2; fail "tlshubctl dump $n failed"; }
        gaveup=$((gaveup + 1))
    fi
done
touch /tmp/churn.stop; wait $churn || { cat /tmp/churn.out >&2; fail "the writer failed"; }
echo "bench: dump-vs-churn: tlshubctl $good consistent dumps, $gaveup gave up after restarts; writer $(cat /tmp/churn.out) changes"
[ $good -ge 1 ] || fail "no tlshubctl dump succeeded while the table changed"
tlshubctl mapping show --json > /tmp/dump.json
python3 /tmp/check_dump.py /tmp/dump.json || fail "final dump"
expect_eq "all pods back" 20000 "$(python3 -c 'import json; print(len(json.load(open("/tmp/dump.json"))["pods"]))')"
