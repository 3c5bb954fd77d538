# Identities from a real cluster: `mapping from-k8s` converts kubectl's JSON
# (helper/tests/data: 3 dual-stack nodes, 23 running or scheduled pods of
# which 13 hostNetwork, redis-0 in two namespaces, finished pods whose IPs
# were reused) and the kernel takes it. Namespaced pods, the same name in two
# namespaces, hostNetwork pods that are never pod endpoints, IPv4-mapped IPv6.
. ./lib.sh
load_module
data=../../helper/tests/data
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
name_of() { tlshubctl mapping lookup "$1" --json | json 'd["pod"]["name"]'; }
not_found() {  # KEY: lookup exits 3 (not found) with "pod not found"
    local rc=0 out
    out=$(tlshubctl mapping lookup "$1" 2>&1) || rc=$?
    expect_eq "lookup $1 exit" 3 "$rc"
    expect_eq "lookup $1" "tlshubctl: pod not found" "$out"
}

tlshubctl mapping from-k8s $data/k8s-pods.json --nodes $data/k8s-nodes.json > /tmp/k8s.conf
expect_eq "converted pods" 23 "$(grep -cvE '^(#|node )' /tmp/k8s.conf)"
expect_eq "load" "Loaded 23 pod-node mappings from /tmp/k8s.conf" "$(tlshubctl mapping load /tmp/k8s.conf)"
st=$(tlshubctl status --json)
expect_eq "status pods" 23 "$(json 'd["pods"]' <<<"$st")"
expect_eq "status nodes" 3 "$(json 'd["nodes"]' <<<"$st")"

# The kernel's copy is the file: same pods (names, nodes, IPs, hostNetwork)
# and nodes, in order.
tlshubctl mapping check /tmp/k8s.conf --json > /tmp/k8s-file.json
tlshubctl mapping show --json > /tmp/k8s-kernel.json
python3 - <<'EOF' || fail "kernel dump differs from the converted file"
import json
f, k = (json.load(open(p)) for p in ("/tmp/k8s-file.json", "/tmp/k8s-kernel.json"))
assert f["pods"] == k["pods"], (f["pods"], k["pods"])
assert f["nodes"] == k["nodes"], (f["nodes"], k["nodes"])
EOF

# A namespaced pod, by name and by each of its addresses.
expect_eq "by name" worker-1 "$(tlshubctl mapping lookup shop/redis-0)"
expect_eq "by IPv4" shop/redis-0 "$(name_of 10.244.1.21)"
expect_eq "by IPv6" shop/redis-0 "$(name_of fd00:10:244:1::21)"
# The same name in another namespace is another pod; the bare name is none.
expect_eq "other namespace" worker-2 "$(tlshubctl mapping lookup billing/redis-0)"
expect_eq "other namespace by IP" billing/redis-0 "$(name_of 10.244.2.21)"
expect_eq "two redis-0" 2 "$(tlshubctl mapping show --json | json 'sum(p["name"].endswith("/redis-0") for p in d["pods"])')"
not_found redis-0

# An IPv4-mapped IPv6 address is the IPv4 address.
expect_eq "reused IP" default/web-7f9c6d8b5-x2k4p "$(name_of 10.244.1.14)"
expect_eq "v4-mapped" default/web-7f9c6d8b5-x2k4p "$(name_of ::ffff:10.244.1.14)"
if out=$(tlshubctl mapping add default/dup worker-1 ::ffff:10.244.1.14 2>&1); then
    fail "a v4-mapped copy of a pod's IPv4 was accepted for another pod"
fi
expect_contains "v4-mapped duplicate" "(EEXIST)" "$out"

# hostNetwork pods: listed and flagged, found by name, never by their IPs
# (their node's).
expect_eq "hostNetwork by name" "worker-1 hostNetwork" "$(tlshubctl mapping lookup kube-system/kube-proxy-8vmtn)"
expect_eq "hostNetwork flag" True "$(tlshubctl mapping lookup kube-system/kube-proxy-8vmtn --json | json 'd["pod"]["host_network"]')"
expect_eq "hostNetwork pods" 13 "$(tlshubctl mapping show --json | json 'sum(p["host_network"] for p in d["pods"])')"
expect_eq "hostNetwork IPs kept" "['192.168.56.11', 'fd00:56::11']" \
    "$(tlshubctl mapping show --json | json '[p["ips"] for p in d["pods"] if p["name"] == "kube-system/kube-proxy-8vmtn"][0]')"
expect_contains "table marks hostNetwork" \
    "kube-system/kube-proxy-8vmtn   worker-1                       hostNetwork" "$(tlshubctl mapping show)"
for ip in 192.168.56.11 fd00:56::11 192.168.56.10 ::ffff:192.168.56.12; do not_found $ip; done

# Another hostNetwork pod may repeat a node IP, and a regular pod may take
# it (it is checked against pods only); then a lookup finds the regular pod.
tlshubctl mapping add kube-system/kube-proxy-extra worker-1 192.168.56.11 fd00:56::11 hostNetwork
not_found 192.168.56.11
tlshubctl mapping add default/on-node-ip worker-1 192.168.56.11
expect_eq "regular pod on a node IP" default/on-node-ip "$(name_of 192.168.56.11)"
tlshubctl mapping del default/on-node-ip
tlshubctl mapping del kube-system/kube-proxy-extra
not_found 192.168.56.11
expect_eq "pods after add/del" 23 "$(tlshubctl status --json | json 'd["pods"]')"
unload_module
