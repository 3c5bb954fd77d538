# Kubernetes Services through kube-proxy's NAT (issue 16; review M7). A pod
# that connects to a ClusterIP sees the virtual address while its server
# end sees the post-NAT tuple; before, the client left the flow alone and
# the server secured it: the client's first bytes crossed the wire in
# plaintext, then the connection broke. Node n1 gets kube-proxy's rules as
# its nftables mode writes them (service and endpoint chains, numgen random
# balancing, the masquerade mark, reject for no endpoints) and one service
# as its iptables mode does (iptables-nft: statistic, comment, DNAT); the
# module is told the Service CIDRs. Each case, IPv4 and IPv6, over the
# wire capture on link1:
# (A) ClusterIP whose backend is on the other node: secured, keyed with the
#     post-NAT tuple (TLS only on the wire, no marker);
# (B) backend on the same node: left alone on both ends;
# (C) two endpoints, one per node, balanced at random: every call answered,
#     each decided by its own backend (secured + left alone = calls);
# (D) masqueraded (the server sees node n1, not a pod): both ends leave it
#     alone (plain, answered);
# (E) a hostNetwork client (node n1's own netns, OUTPUT DNAT, masqueraded):
#     left alone on both ends;
# (F) no endpoints: the connect is refused, as without tlshub;
# (G) a Service-CIDR address reached without NAT (no record): the client
#     fails closed (reset-service), zero plaintext bytes on the wire;
# (H) the iptables-mode service: as (C), through iptables-nft;
# (J) a NodePort on n2 (DNAT in n2 to b1, no masquerade, as with
#     externalTrafficPolicy: Local) called by a1 and by x1 (unmapped, a
#     client from outside): a1 addressed a node and leaves the flow alone,
#     so b1's end, finding n2's NAT record, leaves it alone too (plain,
#     answered) — before, b1 secured it and a1's bytes went out in
#     plaintext, then the connection broke;
# (I) threads that send before and right after connect() returns, on
#     Service connects balanced over b1 and a2 (dpapp.py race): parked in
#     the gate while the flow is decided, they move to the flow it resolved
#     to (or go on, left alone): every connection clean or reset, the
#     server never reads a bad message, nothing plain on the wire.
. ./lib.sh
. ./pods.sh

dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk"
tlshubctl node set n2 psk "$TOPO_DIR/psk"
tlshubctl service-cidr set 10.96.0.0/16 fd00:96::/112
expect_eq "service CIDRs" "10.96.0.0/16 fd00:96::/112" "$(tlshubctl service-cidr get | tr '\n' ' ' | sed 's/ $//')"

# kube-proxy's nftables mode, per family: $1 ip|ip6, $2 address type, then
# VIPs: remote, local, mixed, masquerade, no endpoints; then the two
# endpoints (b1, a2) as DNAT targets and as addresses; the cluster CIDR.
kp_table() {
    local fam=$1 at=$2 r=$3 l=$4 mx=$5 q=$6 ne=$7 b1t=$8 a2t=$9 b1=${10} a2=${11} cl=${12}
    cat <<EOF
table $fam kube-proxy {
    map service-ips {
        type $at . inet_proto . inet_service : verdict
        elements = { $r . tcp . 80 : goto service-remote,
                     $l . tcp . 80 : goto service-local,
                     $mx . tcp . 80 : goto service-mixed,
                     $q . tcp . 80 : goto service-masq,
                     $mx . tcp . 81 : goto service-race }
    }
    map no-endpoint-services {
        type $at . inet_proto . inet_service : verdict
        elements = { $ne . tcp . 80 : goto reject-chain }
    }
    chain reject-chain { reject; }
    chain filter-prerouting-pre-dnat {
        type filter hook prerouting priority -110; policy accept;
        ct state new $fam daddr . meta l4proto . th dport vmap @no-endpoint-services
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
    chain services { $fam daddr . meta l4proto . th dport vmap @service-ips; }
    chain service-remote { $fam saddr != $cl jump mark-for-masquerade; goto endpoint-b1; }
    chain service-local { $fam saddr != $cl jump mark-for-masquerade; goto endpoint-a2; }
    chain service-mixed {
        $fam saddr != $cl jump mark-for-masquerade
        numgen random mod 2 vmap { 0 : goto endpoint-b1, 1 : goto endpoint-a2 }
    }
    chain service-masq { jump mark-for-masquerade; goto endpoint-b1; }
    chain service-race { numgen random mod 2 vmap { 0 : goto endpoint-b1-race, 1 : goto endpoint-a2-race }; }
    chain endpoint-b1-race { meta l4proto tcp dnat to ${b1t%:7000}:7100; }
    chain endpoint-a2-race { meta l4proto tcp dnat to ${a2t%:7000}:7100; }
    chain endpoint-b1 { $fam saddr $b1 jump mark-for-masquerade; meta l4proto tcp dnat to $b1t; }
    chain endpoint-a2 { $fam saddr $a2 jump mark-for-masquerade; meta l4proto tcp dnat to $a2t; }
}
EOF
}
b14=$(pod_ip4 b1) a24=$(pod_ip4 a2) b16=$(pod_ip6 b1) a26=$(pod_ip6 a2)
{
    kp_table ip ipv4_addr 10.96.0.10 10.96.0.11 10.96.0.12 10.96.0.13 10.96.0.14 \
        "$b14:7000" "$a24:7000" "$b14" "$a24" 10.0.0.0/8
    kp_table ip6 ipv6_addr fd00:96::10 fd00:96::11 fd00:96::12 fd00:96::13 fd00:96::14 \
        "[$b16]:7000" "[$a26]:7000" "$b16" "$a26" fd00::/24
} > "$TOPO_DIR/kube-proxy.nft"
node_exec n1 nft -f "$TOPO_DIR/kube-proxy.nft" || dp_fail "nft rules did not load"
# (H) iptables mode (iptables-nft), IPv4: KUBE-SERVICES -> KUBE-SVC (random
# balancing by statistic) -> KUBE-SEP (DNAT).
ipt() { node_exec n1 iptables-nft -w -t nat "$@" || dp_fail "iptables-nft $*"; }
ipt -N KUBE-SERVICES
ipt -N KUBE-SVC-MIXED
ipt -N KUBE-SEP-B1
ipt -N KUBE-SEP-A2
ipt -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
ipt -A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/mixed-ipt cluster IP" -m tcp --dport 80 -j KUBE-SVC-MIXED
ipt -A KUBE-SVC-MIXED -m comment --comment "default/mixed-ipt -> b1" -m statistic --mode random --probability 0.5 -j KUBE-SEP-B1
ipt -A KUBE-SVC-MIXED -m comment --comment "default/mixed-ipt -> a2" -j KUBE-SEP-A2
ipt -A KUBE-SEP-B1 -p tcp -m tcp -j DNAT --to-destination "$b14:7000"
ipt -A KUBE-SEP-A2 -p tcp -m tcp -j DNAT --to-destination "$a24:7000"
node_exec n2 nft -f - <<EOF || dp_fail "nft (NodePort rules on n2)"
table ip kube-proxy-nodeport {
    chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept;
        ip daddr 192.168.100.2 tcp dport 30080 dnat to $b14:7000; }
}
table ip6 kube-proxy-nodeport {
    chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept;
        ip6 daddr fd00:100::2 tcp dport 30080 dnat to [$b16]:7000; }
}
EOF
# Node n1's routes for the Service CIDRs, as a node's default route would
# be (a host process's connect needs one before OUTPUT's DNAT re-routes it).
node_exec n1 ip route add 10.96.0.0/16 via 192.168.100.2
node_exec n1 ip -6 route add fd00:96::/112 via fd00:100::2
# (G) a Service-CIDR address that is b1's own, routed without NAT.
node_exec n1 ip route add 10.96.0.99/32 via 192.168.100.2
node_exec n2 ip route add 10.96.0.99/32 dev v-b1
pod_exec_root b1 ip addr add 10.96.0.99/32 dev eth0
ok "kube-proxy rules on n1 (nftables and iptables-nft modes), Service CIDRs set"

app_echo_server b1 7000
app_echo_server a2 7000
mr=$(new_marker)
for p in b1 a2; do
    pod_bg "$p" python3 dpapp.py server 7100 --mode count --marker "$mr" >"$TOPO_DIR/race-$p.log" 2>&1
    pod_wait_listen "$p" 7100
done
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
m=$(new_marker)
s0=$(tlshubctl status --json)
for v in 4 6; do
    if [ $v = 4 ]; then p=10.96.0.; else p=fd00:96::; fi
    expect_eq "(A) a1 -> ClusterIP, backend b1 (IPv$v)" "$m-a$v" "$(app_echo a1 "$p"10 80 "$m-a$v")"
    expect_eq "(B) a1 -> ClusterIP, backend a2 (IPv$v)" "$m-b$v" "$(app_echo a1 "$p"11 80 "$m-b$v")"
    for i in $(seq 4); do
        expect_eq "(C) a1 -> ClusterIP, b1 or a2 (IPv$v) #$i" "$m-c$v-$i" "$(app_echo a1 "$p"12 80 "$m-c$v-$i")"
    done
    expect_eq "(D) a1 -> masqueraded ClusterIP (IPv$v)" "$m-d$v" "$(app_echo a1 "$p"13 80 "$m-d$v")"
    expect_eq "(E) hostNetwork (n1) -> ClusterIP (IPv$v)" "$m-e$v" \
        "$(printf '%s\n' "$m-e$v" | node_exec n1 socat -t 30 -T 30 - "TCP:$( [ $v = 4 ] && echo "${p}10" || echo "[${p}10]"):80")"
    if [ $v = 4 ]; then np=192.168.100.2; else np=fd00:100::2; fi
    expect_eq "(J) a1 -> NodePort on n2 (IPv$v)" "$m-j$v" "$(app_echo a1 "$np" 30080 "$m-j$v")"
    expect_eq "(J) x1 (outside) -> NodePort on n2 (IPv$v)" "$m-k$v" "$(app_echo x1 "$np" 30080 "$m-k$v")"
    out=$(printf 'x\n' | pod_exec a1 socat -t 10 -T 10 - "TCP:$( [ $v = 4 ] && echo "${p}14" || echo "[${p}14]"):80" 2>&1) \
        && dp_fail "(F) a connect to a Service without endpoints succeeded: $out"
    expect_contains "(F) no endpoints: refused (IPv$v)" "Connection refused" "$out"
done
for i in $(seq 4); do
    expect_eq "(H) a1 -> iptables-mode ClusterIP #$i" "$m-h-$i" "$(app_echo a1 10.96.0.20 80 "$m-h-$i")"
done
out=$(printf '%s\n' "$m-g" | pod_exec a1 socat -t 10 -T 10 - TCP:10.96.0.99:7000 2>&1) \
    && dp_fail "(G) a Service-CIDR connect without NAT record was let through: $out"
s1=$(tlshubctl status --json)
out=$(pod_exec a1 python3 dpapp.py race 81 --marker "$mr" --msgs 20 \
    --run "after,10.96.0.12,8,4" --run "before,10.96.0.12,6,3" \
    --run "after,fd00:96::12,4,4" --run "before,fd00:96::12,4,3" 2>&1) || { printf '%s\n' "$out"; dp_fail "(I) race client"; }
printf '%s\n' "$out" | tail -n 4
ok "(I) 22 racing Service connections: 'after' all clean, 'before' clean or reset, no bad message"
capture_stop
d() { echo $(( $(stat_of "$s1" "$1") - $(stat_of "$s0" "$1") )); }
echo "flows-service $(d flows_service) service-secured $(d service_secured) bypass-service $(d bypass_service) reset-service $(d reset_service)"
# 2 x (A + B + 4 C + D + F) + 4 H + G; F is refused before ESTABLISHED.
# Decided: 2 x (A + B + 4 C + D) + 4 H at the client end, 2 x 2 J at the
# server end.
expect_eq "Service connects gated tentatively" 21 "$(d flows_service)"
expect_eq "decided: secured + left alone" 22 "$(( $(d service_secured) + $(d bypass_service) ))"
[ "$(d service_secured)" -ge 3 ] || dp_fail "secured Service connects: $(d service_secured) (< A + some of C and H)"
[ "$(d bypass_service)" -ge 9 ] || dp_fail "left-alone Service connects: $(d bypass_service) (< B + D + J + some of C and H)"
expect_eq "(G) reset, no NAT record" 1 "$(d reset_service)"
expect_eq "nothing else reset" 0 "$(( $(d reset_key_timeout) + $(d reset_install) + $(d reset_guard) + $(d reset_key_epoch) ))"
expect_eq "NAT records left" 0 "$(stat_of "$s1" service_records)"
ok "every Service call answered; decided by backend; counters by reason"

for v in 4 6; do
    h=$(pod_ip$v a1)
    out=$(tlswire "$pcap" --expect tls --port 7000 --host "$h" --marker "$m-a$v") || { echo "$out"; dp_fail "(A) IPv$v: not TLS on the wire"; }
done
# Every a1 <-> b1 connection on the wire (A, the b1 half of C and H) is TLS.
out=$(tlswire "$pcap" --expect tls --port 7000 --host "$(pod_ip4 a1)" --min-conns 1) || { echo "$out"; dp_fail "a1 -> b1 Service traffic not TLS only"; }
out=$(tlswire "$pcap" --expect tls --port 7000 --host "$(pod_ip6 a1)" --min-conns 1) || { echo "$out"; dp_fail "a1 -> b1 Service traffic (IPv6) not TLS only"; }
out=$(tlswire "$pcap" --expect tls --port 7100 --min-conns 1 --marker "$mr") || { echo "$out"; dp_fail "(I) racing Service connections not TLS only on the wire"; }
for x in a4 a6 b4 b6 g; do
    ! grep -q "$m-$x" "$pcap" || dp_fail "marker $m-$x in plaintext on the wire"
done
for x in d4 d6 e4 e6 j4 j6 k4 k6; do
    out=$(tlswire "$pcap" --expect plain --marker "$m-$x") || { echo "$out"; dp_fail "($x) masqueraded flow is not plain (both ends leave it alone)"; }
done
ok "wire: secured Service flows TLS only, masqueraded and hostNetwork plain on both ends, nothing of the reset one"

node_exec n1 nft flush ruleset
topo_teardown
unload_module
