# Mapping skew (issue 16): a pod reaches one node's mapping before the
# other's. Before, the end that did not know the pod left the flow alone
# while the other secured it: one side's bytes crossed the wire in
# plaintext, then the connection broke. With the cluster's pod CIDRs
# configured (`tlshubctl pod-cidr set`), an address in them that the
# mapping does not name is a pod not mapped *yet*: a flow between it and a
# mapped pod (or another such address) is reset at this end, never left
# alone. Each end applies the rule to the same two addresses, so while one
# end has the pod and the other not, the first secures and the second
# resets: fail closed. This kernel holds both ends, so both rules show:
# (A) a1 -> b2 (b2 a running pod of n2, not in the mapping yet): reset at
#     both ends (reset-unmapped), nothing of it on the wire;
# (B) b2 -> a1: the same the other way;
# (C) x1 (unmapped, in a pod CIDR) -> b1: reset, where it was plain before;
# (D) b2 mapped (`mapping add`): a1 -> b2 secured (TLS-only wire);
# (E) addresses outside the pod CIDRs are as before: node n1 -> a1 (from its
#     gateway address 10.1.0.1) answered, plain; a1 -> a2 (same node) plain;
# (F) `pod-cidr get` lists the set; cleared, x1 -> b1 is plain again.
. ./lib.sh
. ./pods.sh

dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk"
tlshubctl node set n2 psk "$TOPO_DIR/psk"
pod_add b2 n2 10.2.0.22 fd00:2::22
# The pods' ranges (not the nodes' gateway addresses 10.1.0.1, 10.2.0.1,
# which host processes use towards pods: README, "Mapping skew").
tlshubctl pod-cidr set 10.1.0.8/29 10.1.0.96/29 10.2.0.16/29 fd00:1::/64 fd00:2::/64
expect_eq "(F) pod CIDRs" "10.1.0.8/29 10.1.0.96/29 10.2.0.16/29 fd00:1::/64 fd00:2::/64" \
    "$(tlshubctl pod-cidr get | tr '\n' ' ' | sed 's/ $//')"
for p in a1 a2 b1 b2 x1; do app_echo_server "$p" 7000; done
ok "b2 runs on n2 but is not in the mapping; pod CIDRs set"

pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
m=$(new_marker)
s0=$(tlshubctl status --json)
for v in 4 6; do
    out=$(printf '%s\n' "$m-a$v" | pod_exec a1 socat -t 10 -T 10 - "TCP:$(pod_addr b2 $v):7000" 2>&1) \
        && dp_fail "(A) a1 -> b2 (unmapped) was let through: $out"
    out=$(printf '%s\n' "$m-b$v" | pod_exec b2 socat -t 10 -T 10 - "TCP:$(pod_addr a1 $v):7000" 2>&1) \
        && dp_fail "(B) b2 (unmapped) -> a1 was let through: $out"
done
out=$(printf '%s\n' "$m-c" | pod_exec x1 socat -t 10 -T 10 - "TCP:$(pod_ip4 b1):7000" 2>&1) \
    && dp_fail "(C) x1 (unmapped) -> b1 was let through: $out"
s1=$(tlshubctl status --json)
d() { echo $(( $(stat_of "$s1" "$1") - $(stat_of "$s0" "$1") )); }
# Each of the 5 connections is reset at its client end, and at its server
# end if its SYN got there (the client end shuts its send side only).
[ "$(d reset_unmapped)" -ge 5 ] || dp_fail "reset-unmapped rose by $(d reset_unmapped), expected at least 5"
expect_eq "(A)-(C) nothing secured" 0 "$(d flows_secured)"
ok "(A)-(C) flows between mapped pods and unmapped pod-CIDR addresses reset at both ends ($(d reset_unmapped))"

tlshubctl mapping add default/b2 n2 10.2.0.22 fd00:2::22
expect_eq "(D) a1 -> b2 (now mapped), IPv4" "$m-d4" "$(app_echo a1 "$(pod_ip4 b2)" 7000 "$m-d4")"
expect_eq "(D) a1 -> b2 (now mapped), IPv6" "$m-d6" "$(app_echo a1 "$(pod_ip6 b2)" 7000 "$m-d6")"
expect_eq "(E) node n1 -> a1 (gateway address)" "$m-e1" \
    "$(printf '%s\n' "$m-e1" | node_exec n1 socat -t 30 -T 30 - "TCP:$(pod_ip4 a1):7000")"
expect_eq "(E) a1 -> a2 (same node)" "$m-e2" "$(app_echo a1 "$(pod_ip4 a2)" 7000 "$m-e2")"
tlshubctl pod-cidr set
expect_eq "(F) pod CIDRs cleared" "" "$(tlshubctl pod-cidr get)"
expect_eq "(F) x1 -> b1 plain again" "$m-f" "$(app_echo x1 "$(pod_ip4 b1)" 7000 "$m-f")"
capture_stop

for x in a4 a6 b4 b6 c d4 d6; do
    ! grep -q "$m-$x" "$pcap" || dp_fail "marker $m-$x in plaintext on the wire"
done
out=$(tlswire "$pcap" --expect tls --port 7000 --host "$(pod_ip4 b2)" --host "$(pod_ip6 b2)" --min-conns 2 \
    --marker "$m-d4" --marker "$m-d6") || { echo "$out"; dp_fail "(D) a1 -> b2 not TLS only on the wire"; }
out=$(tlswire "$pcap" --expect plain --marker "$m-f") || { echo "$out"; dp_fail "(F) x1 -> b1 not plain"; }
ok "wire: nothing of the reset flows, (D) TLS only, (F) plain"

topo_teardown
unload_module
