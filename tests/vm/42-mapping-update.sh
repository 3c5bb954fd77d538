# map-add updates: a pod added again with another node moves (its IPs
# follow, the old node keeps no claim on it), and a node added again with
# another address changes where its agent is.
. ./lib.sh
load_module
tlshubctl mapping load ../../examples/pod_node_mapping.conf >/dev/null
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
pod_json() { tlshubctl mapping show --json | json "json.dumps([p for p in d['pods'] if p['name'] == '$1'])"; }
node_json() { tlshubctl mapping show --json | json "json.dumps([n for n in d['nodes'] if n['name'] == '$1'])"; }
count() { tlshubctl mapping show --json | json "len(d['$1'])"; }
pods=$(count pods)

# Pod moves node (node-1 -> node-2), with new IPs.
expect_eq "before" node-1 "$(tlshubctl mapping lookup web-pod-1)"
tlshubctl mapping add web-pod-1 node-2 10.244.2.50 fd00:2::50 || fail "moving web-pod-1 to node-2"
expect_eq "moved, by name" node-2 "$(tlshubctl mapping lookup web-pod-1)"
expect_eq "moved, by new IPv4" node-2 "$(tlshubctl mapping lookup 10.244.2.50)"
expect_eq "moved, by new IPv6" node-2 "$(tlshubctl mapping lookup fd00:2::50)"
tlshubctl mapping lookup 10.244.1.10 >/dev/null 2>&1 && fail "the old IPv4 still finds the pod"
tlshubctl mapping lookup fd00:1::10 >/dev/null 2>&1 && fail "the old IPv6 still finds the pod"
expect_eq "still one entry per pod" "$pods" "$(count pods)"
expect_eq "one web-pod-1 in the dump" 1 "$(pod_json web-pod-1 | json 'len(d)')"
# Its old IP is free for another pod now.
tlshubctl mapping add new-pod node-1 10.244.1.10 || fail "reusing the moved pod's old IP"
expect_eq "old IP reused" new-pod "$(tlshubctl mapping lookup 10.244.1.10 --json | json 'd["pod"]["name"]')"
# Moving to a node that did not exist creates it; node-1 can then lose its pods.
tlshubctl mapping add web-pod-2 node-7 10.244.7.2 || fail "moving to a new node"
expect_eq "moved to a new node" node-7 "$(tlshubctl mapping lookup 10.244.7.2)"
expect_eq "node-7 listed" 1 "$(node_json node-7 | json 'len(d)')"
tlshubctl mapping del new-pod
tlshubctl mapping del-node node-1 || fail "node-1 has no pods left after the moves, but del-node refused"

# Node address change: node-2's agent moves from [fd00::2]:7443 to 192.0.2.2:9443.
expect_contains "node-2 before" "fd00::2" "$(node_json node-2)"
tlshubctl mapping add-node node-2 192.0.2.2:9443 || fail "changing node-2's address"
after=$(node_json node-2)
expect_contains "node-2 new address" "192.0.2.2:9443" "$after"
case "$after" in *fd00::2*) fail "node-2 kept its old address: $after";; esac
tlshubctl mapping add-node node-2 192.0.2.3 || fail "changing node-2's address again"
expect_contains "default port" "192.0.2.3:7443" "$(node_json node-2)"
# Its pods stay where they are.
expect_eq "pods keep their node" node-2 "$(tlshubctl mapping lookup web-pod-1)"
expect_eq "one node-2" 1 "$(node_json node-2 | json 'len(d)')"
# One map-add carrying a node and a pod is one change: a refused pod leaves
# the node as it was, whether it existed (address kept) or not (not created).
before=$(node_json node-2)
gen=$(tlshubctl status --json | json 'd["generation"]')
python3 - <<'PY' || fail "atomic map-add"
import errno
from nlfuzz import A_NODE, A_POD, MAP_ADD, N_IPV4, N_NAME, P_IPV4, P_NAME, P_NODE, Sock, ip4, nest, s
sk = Sock()
taken = "10.244.2.10"  # api-pod-1's
for node in ("node-2", "node-9"):
    err, msg, _ = sk.request(MAP_ADD, nest(A_NODE, s(N_NAME, node), ip4(N_IPV4, "198.51.100.9")),
                             nest(A_POD, s(P_NAME, "intruder"), s(P_NODE, node), ip4(P_IPV4, taken)))
    assert err == errno.EEXIST, f"map-add {node} + pod on a taken IP: {errno.errorcode.get(err, err)} ({msg})"
PY
expect_eq "existing node unchanged by a refused map-add" "$before" "$(node_json node-2)"
expect_eq "new node not created by a refused map-add" 0 "$(node_json node-9 | json 'len(d)')"
expect_eq "refused map-adds commit nothing" "$gen" "$(tlshubctl status --json | json 'd["generation"]')"
