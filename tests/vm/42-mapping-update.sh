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
kmemleak_check
