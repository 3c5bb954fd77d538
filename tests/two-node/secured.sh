#!/usr/bin/env bash
# The datapath across two kernels: scripts/two-node tests/two-node/secured.sh
# runs this in both VMs (node n1 = VM 1, n2 = VM 2; see lib.sh). Each kernel
# serves its own node and shares one secret with the other; nothing else
# connects them. Proves, with node 1 capturing its link (the real wire):
#   - echo (socat server, tn_echo client) a1 -> b1 and b1 -> a1, IPv4 and
#     IPv6, and curl (a1) -> nginx (b1): the apps (unprivileged, unmodified)
#     see their bytes;
#   - every one of those connections is TLS records only on the wire, from
#     the first byte, and no marker the apps sent is anywhere in the capture
#     (tests/vm/tlswire.py --expect tls);
#   - /proc/net/tls_stat rises in the pod netns on both kernels;
#   - a control (x1, unmapped, -> b1) is plaintext on the same capture;
#   - a Service (kube-proxy's nftables rules in both nodes: one ClusterIP,
#     an endpoint per node, numgen random) called 200 times from each
#     node's pod: every call answered; each decided by its backend (cross-
#     node ones secured: TLS-only wire, 1 connection in 8 captured;
#     same-node ones left alone); no
#     Service connect reset (issue 16);
#   - one kernel serving two nodes: VM 1 also serves n3 (pod c1) with a
#     secret for the pair {n3, n2} other than {n1, n2}'s, and flows of both
#     pairs, both ways, are secured (TLS-only wire; issue 15);
#   - both kernel logs stay clean (scripts/two-node) and nothing of tlshub's
#     leaks (kmemleak) after rmmod.
# Prints `ok ...` lines; exits non-zero on the first failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ok() { echo "ok   [$TN_NODE] $* (t=$((SECONDS - T0))s)"; }
T0=$SECONDS

ok "start, VM up for $(cut -d" " -f1 /proc/uptime)s"
tn_setup
tn_secure
tn_trace_on
ok "module serves $TN_NODE, secret for $TN_PEER set"

# Baselines, servers.
tx0=$(tls_stat "$TN_POD" TlsTxSw) rx0=$(tls_stat "$TN_POD" TlsRxSw)
app_echo_server "$TN_POD" 7000
if [ "$TN_NODE" = n2 ]; then
    m=$(new_marker)
    app_nginx b1 8080
    printf '%s\n' "$m-body" > "$TOPO_DIR/www-b1/page.txt"
    tn_put nginx "$m"
fi
pcap=$TOPO_DIR/wire.pcap
if [ "$TN_NODE" = n1 ]; then
    capture_start node eth0 "$pcap" tcp
fi
tn_barrier ready
ok "servers up, capture running on n1:eth0"

# Phase 1: node 1's pods connect; phase 2: node 2's.
if [ "$TN_NODE" = n1 ]; then
    m=$(new_marker)
    expect_eq "a1 -> b1 echo, IPv4" "$m-a4" "$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m-a4")"
    expect_eq "a1 -> b1 echo, IPv6" "$m-a6" "$(tn_echo a1 "$(tn_ip6 b1)" 7000 "$m-a6")"
    ng=$(tn_get nginx)
    got=$(pod_exec a1 curl -sS --max-time 60 "http://$(tn_ip4 b1):8080/page.txt?q=$m-req") || fail "curl a1 -> b1 nginx"
    expect_eq "a1 -> b1 curl" "$ng-body" "$got"
    expect_eq "x1 (unmapped) -> b1 echo (control)" "$m-plain" "$(app_echo x1 "$(tn_ip4 b1)" 7000 "$m-plain")"
    ok "a1 -> b1: echo IPv4 and IPv6, curl -> nginx; x1 -> b1 control"
fi
tn_barrier phase1
if [ "$TN_NODE" = n2 ]; then
    m2=$(new_marker)
    expect_eq "b1 -> a1 echo, IPv4" "$m2-b4" "$(tn_echo b1 "$(tn_ip4 a1)" 7000 "$m2-b4")"
    expect_eq "b1 -> a1 echo, IPv6" "$m2-b6" "$(tn_echo b1 "$(tn_ip6 a1)" 7000 "$m2-b6")"
    tn_put marker2 "$m2"
    ok "b1 -> a1: echo IPv4 and IPv6"
fi
tn_barrier phase2

# Counters on each kernel: 5 kTLS sockets in the mapped pod (a1: 3 clients,
# 2 accepted; b1: 3 accepted, 2 clients), none for the control.
tx=$(tls_stat "$TN_POD" TlsTxSw) rx=$(tls_stat "$TN_POD" TlsRxSw)
tlshubctl status | sed -n 's/^/    /p'
tlshubctl flows | sed 's/^/    /' || true
[ "$tx" -ge $((tx0 + 5)) ] && [ "$rx" -ge $((rx0 + 5)) ] \
    || fail "$TN_POD: TlsTxSw $tx0 -> $tx, TlsRxSw $rx0 -> $rx (expected +5 each)"
[ "$(tls_stat "$TN_PLAIN" TlsTxSw)" = 0 ] || fail "$TN_PLAIN (unmapped) has kTLS sockets"
ok "tls_stat in $TN_POD: TlsTxSw $tx0 -> $tx, TlsRxSw $rx0 -> $rx"

if [ "$TN_NODE" = n1 ]; then
    capture_stop
    m2=$(tn_get marker2)
    sel=(--host "$(tn_ip4 a1)" --host "$(tn_ip6 a1)")
    marks=(--marker "$m-a4" --marker "$m-a6" --marker "$m2-b4" --marker "$m2-b6"
           --marker "$m-req" --marker "$ng-body")
    out=$(tlswire "$pcap" --expect tls "${sel[@]}" --min-conns 5 "${marks[@]}") \
        || { echo "$out"; fail "secured flows are not TLS-only on the wire"; }
    echo "$out" | sed 's/^/    /'
    out=$(tlswire "$pcap" --expect plain --host "$(tn_ip4 x1)" --marker "$m-plain") \
        || { echo "$out"; fail "control (x1, unmapped) not plaintext on the wire"; }
    ok "wire (n1:eth0): 5 secured connections are TLS records only, no marker; the control is plain"
fi
tn_barrier checked

# Services (issue 16): kube-proxy's nftables rules on both nodes, one
# ClusterIP with an endpoint on each node (a1, b1), balanced at random; each
# node's pod calls it 200 times.
tlshubctl service-cidr set 10.96.0.0/16 || fail "service-cidr set"
nft -f - <<EOF || fail "nft (kube-proxy rules)"
table ip kube-proxy {
    map service-ips {
        type ipv4_addr . inet_proto . inet_service : verdict
        elements = { 10.96.0.30 . tcp . 80 : goto service-both }
    }
    chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }
    chain nat-output { type nat hook output priority -100; policy accept; jump services; }
    chain masquerading {
        type nat hook postrouting priority srcnat; policy accept;
        meta mark & 0x4000 == 0 return
        meta mark set meta mark ^ 0x4000
        masquerade fully-random
    }
    chain mark-for-masquerade { meta mark set meta mark | 0x4000; }
    chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }
    chain service-both {
        ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        numgen random mod 2 vmap { 0 : goto endpoint-a1, 1 : goto endpoint-b1 }
    }
    chain endpoint-a1 { ip saddr $(tn_ip4 a1) jump mark-for-masquerade; meta l4proto tcp dnat to $(tn_ip4 a1):7600; }
    chain endpoint-b1 { ip saddr $(tn_ip4 b1) jump mark-for-masquerade; meta l4proto tcp dnat to $(tn_ip4 b1):7600; }
}
EOF
pod_bg "$TN_POD" python3 "$TOPO_LIB_DIR/dpapp.py" server 7600 > "$TOPO_DIR/svc-server.log" 2>&1
pod_wait_listen "$TN_POD" 7600
# About one connection in 8 is captured, whole: those whose client port is
# 6 mod 16 (connect() takes even ports); tcpdump cannot keep up with all of
# the churn under TCG.
if [ "$TN_NODE" = n1 ]; then
    CAPTURE_SNAPLEN=1024 capture_start node eth0 "$pcap.svc" \
        "tcp port 7600 and ((tcp[0:2] & 15) = 6 or (tcp[2:2] & 15) = 6)"
fi
tn_barrier svc-ready
s0=$(tlshubctl status --json)
ms=$(new_marker)
pod_exec "$TN_POD" python3 "$TOPO_LIB_DIR/dpapp.py" churn 10.96.0.30 80 --marker "$ms" --count 200 --threads 2 \
    > "$TOPO_DIR/svc-churn.log" 2>&1 || { cat "$TOPO_DIR/svc-churn.log"; fail "Service calls failed"; }
sed 's/^/    /' "$TOPO_DIR/svc-churn.log"
s1=$(tlshubctl status --json)
d() { echo $(( $(stat_of "$s1" "$1") - $(stat_of "$s0" "$1") )); }
sec=$(d service_secured) byp=$(d bypass_service)
expect_eq "Service connects gated tentatively" 200 "$(d flows_service)"
expect_eq "Service connects decided (secured $sec + left alone $byp)" 200 "$((sec + byp))"
[ "$sec" -ge 20 ] && [ "$byp" -ge 20 ] || fail "an endpoint was (almost) never chosen: secured $sec, left alone $byp"
expect_eq "Service connects reset" 0 "$(( $(d reset_service) + $(d reset_key_epoch) + $(d reset_key_timeout) ))"
tn_put "svc-secured-$TN_NODE" "$sec"
tn_put "svc-marker-$TN_NODE" "$ms"
ok "200 calls to the ClusterIP: all answered, $sec secured (backend on the other node), $byp left alone (same node)"
tn_barrier svc-done
if [ "$TN_NODE" = n1 ]; then
    capture_stop
    [ "$CAPTURE_DROPPED" = 0 ] || fail "the Service capture dropped $CAPTURE_DROPPED frames"
    want=$(( $(tn_get svc-secured-n1) + $(tn_get svc-secured-n2) ))
    out=$(tlswire "$pcap.svc" --expect tls --port 7600 --min-conns 5 --marker "$ms" --marker "$(tn_get svc-marker-n2)") \
        || { echo "$out" | tail -n 20; fail "cross-node Service calls are not TLS-only on the wire"; }
    echo "$out" | tail -n 2 | sed 's/^/    /'
    ok "wire (n1:eth0): the sampled ones (1 in 8) of $want cross-node Service connections TLS records only, no marker"
fi
nft flush ruleset
tlshubctl service-cidr set || fail "service-cidr clear"
tn_barrier svc-checked

# One kernel serving two nodes (issue 15, review M8): VM 1 also serves n3
# (pod c1), with a secret for the pair {n3, n2} other than {n1, n2}'s; VM 2
# holds one secret per peer node (n1, n3). Both pairs carry secured flows.
tn_third_node "$TOPO_DIR/mapping3.conf"
if [ "$TN_NODE" = n1 ]; then
    head -c 32 /dev/urandom > "$TLSHUB_SHARED/psk-n1n2"
    head -c 32 /dev/urandom > "$TLSHUB_SHARED/psk-n3n2"
    tlshubctl node set n2 psk "$TLSHUB_SHARED/psk-n1n2" --local n1 --epoch 5 >/dev/null || fail "node set n2 --local n1"
    tlshubctl node set n2 psk "$TLSHUB_SHARED/psk-n3n2" --local n3 --epoch 5 >/dev/null || fail "node set n2 --local n3"
    tn_put pairs ready
else
    tn_get pairs >/dev/null
    tlshubctl node set n1 psk "$TLSHUB_SHARED/psk-n1n2" --epoch 5 >/dev/null || fail "node set n1"
    tlshubctl node set n3 psk "$TLSHUB_SHARED/psk-n3n2" --epoch 5 >/dev/null || fail "node set n3"
fi
if [ "$TN_NODE" = n1 ]; then capture_start node eth0 "$pcap.3" tcp; fi
tn_barrier pairs
m3=$(new_marker)
if [ "$TN_NODE" = n1 ]; then
    expect_eq "a1 -> b1 (pair {n1, n2})" "$m3-a1" "$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m3-a1")"
    expect_eq "c1 -> b1 (pair {n3, n2})" "$m3-c1" "$(tn_echo c1 "$(tn_ip4 b1)" 7000 "$m3-c1")"
else
    expect_eq "b1 -> c1 (pair {n3, n2})" "$m3-b1c1" "$(tn_echo b1 "$(tn_ip4 c1)" 7000 "$m3-b1c1")"
    expect_eq "b1 -> a1 (pair {n1, n2})" "$m3-b1a1" "$(tn_echo b1 "$(tn_ip4 a1)" 7000 "$m3-b1a1")"
    tn_put marker3b "$m3"
fi
tn_barrier pairs-done
if [ "$TN_NODE" = n1 ]; then
    capture_stop
    [ "$(tls_stat c1 TlsTxSw)" -ge 2 ] || fail "c1 has no kTLS sockets: $(tls_stat c1 TlsTxSw)"
    out=$(tlswire "$pcap.3" --expect tls --host "$(tn_ip4 a1)" --host "$(tn_ip4 c1)" --min-conns 4 \
        --marker "$m3" --marker "$(tn_get marker3b)") \
        || { echo "$out"; fail "the two pairs' flows are not TLS-only on the wire"; }
    tlshubctl node show | sed 's/^/    /'
    ok "one kernel serving n1 and n3: a1 <-> b1 keyed by {n1, n2}'s secret, c1 <-> b1 by {n3, n2}'s (another), TLS-only wire"
else
    ok "secrets per peer n1 and n3: b1 -> a1 and b1 -> c1 secured"
fi
tn_barrier pairs-checked
topo_teardown
unload_module
kmemleak_check
ok "rmmod, no kmemleak report from tlshub"
