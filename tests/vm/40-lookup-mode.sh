# Lookups by pod name, IPv4 and IPv6; single-entry add/delete; mode round
# trip; status, with its counters moving exactly as the requests say.
. ./lib.sh
# counters: "lookups lookup-misses map-updates generation" from status --json.
counters() {
    tlshubctl status --json | python3 -c 'import json, sys
d = json.load(sys.stdin); s = d["stats"]
g = lambda k: s[k] if k in s else s[k.replace("_", "-")]
print(g("lookups"), g("lookup_misses"), g("map_updates"), d["generation"])'
}
# expect_moved WHAT DLOOKUPS DMISSES DUPDATES DGEN: counters moved by exactly that since the last call.
last=""
expect_moved() {
    local now want
    now=$(counters)
    want=$(awk -v a="$last" -v d="$2 $3 $4 $5" 'BEGIN { split(a, x); split(d, y); print x[1]+y[1], x[2]+y[2], x[3]+y[3], x[4]+y[4] }')
    expect_eq "counters (lookups misses updates generation) after $1" "$want" "$now"
    last=$now
}
load_module
last=$(counters)
expect_eq "fresh counters" "0 0 0" "${last% *}"
tlshubctl mapping load ../../examples/pod_node_mapping.conf >/dev/null
expect_moved "load" 0 0 1 1
expect_eq "by name" "node-1" "$(tlshubctl mapping lookup web-pod-2)"
expect_eq "by IPv4" "node-2" "$(tlshubctl mapping lookup 10.244.2.11)"
expect_eq "by IPv6" "node-1" "$(tlshubctl mapping lookup fd00:1::10)"
if out=$(tlshubctl mapping lookup no-such-pod 2>&1); then fail "missing pod found"; fi
expect_contains "missing pod" "pod not found" "$out"
tlshubctl mapping lookup 10.9.9.9 >/dev/null 2>&1 && fail "missing IP found"
expect_moved "3 hits, 2 misses" 5 2 0 0
tlshubctl mapping show >/dev/null; tlshubctl mode get >/dev/null
expect_moved "a dump and a mode get" 0 0 0 0

tlshubctl mapping add new-pod node-9 10.9.9.9 fd00:9::9
expect_eq "added by IPv4" "node-9" "$(tlshubctl mapping lookup 10.9.9.9)"
expect_eq "added by IPv6" "node-9" "$(tlshubctl mapping lookup fd00:9::9)"
tlshubctl mapping add-node node-9 192.0.2.9:9443
expect_moved "add, 2 hits, add-node" 2 0 2 2
if out=$(tlshubctl mapping add other-pod node-9 10.9.9.9 2>&1); then fail "duplicate IP accepted"; fi
expect_contains "kernel extack shown" "IP address already belongs to a pod" "$out"
if out=$(tlshubctl mapping del-node node-9 2>&1); then fail "deleted a node that has pods"; fi
expect_contains "kernel extack shown" "node still has pods" "$out"
tlshubctl mapping del new-pod
tlshubctl mapping lookup new-pod >/dev/null 2>&1 && fail "deleted pod still found"
tlshubctl mapping del-node node-9
tlshubctl mapping del new-pod >/dev/null 2>&1 && fail "deleting a missing pod succeeded"
expect_moved "2 refused changes, del, 1 miss, del-node, refused del" 1 1 2 2
expect_eq "count after add/del" "Pod-Node Mapping Table (6 entries):" "$(tlshubctl mapping show | head -1)"

expect_eq "default mode" "tlshub" "$(tlshubctl mode get)"
# The seed's debugging switch makes tlshubctl verbose (on stderr).
quiet=$(tlshubctl mode get 2>&1); loud=$(CAPTURE_DEBUG=1 tlshubctl mode get 2>&1)
[ "${#loud}" -gt "${#quiet}" ] || fail "CAPTURE_DEBUG=1 adds no output"
noseq() { sed -E 's/seq [0-9]+//'; }
expect_eq "-v same as CAPTURE_DEBUG" "$(noseq <<<"$loud")" "$(tlshubctl -v mode get 2>&1 | noseq)"
for m in openssl boringssl tlshub; do
    tlshubctl mode set $m
    expect_eq "mode $m" "$m" "$(tlshubctl mode get)"
done
tlshubctl mode set nonsense >/dev/null 2>&1 && fail "bad mode accepted"
expect_moved "mode changes (not mapping updates)" 0 0 0 0
st=$(tlshubctl status)
expect_contains "status version" "version: $(module_version)" "$st"
expect_contains "status mode" "tlshub" "$st"
tlshubctl status --json | python3 -c 'import json,sys; json.load(sys.stdin)' || fail "status --json"

# capture.conf applies mode and mapping together.
printf 'mode = boringssl\npod_node_config = %s\n' "$PWD/../data/seed-example.conf" > /tmp/capture.conf
tlshubctl apply --config /tmp/capture.conf
expect_eq "apply mode" "boringssl" "$(tlshubctl mode get)"
expect_eq "apply mapping" "Pod-Node Mapping Table (2 entries):" "$(tlshubctl mapping show | head -1)"
