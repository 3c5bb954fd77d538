# Pod identity bound to its network namespace (issue 16; review M6). Pod
# a1 has NET_ADMIN in its own netns (root there): it takes a2's address
# (`ip addr add`), and node n1 routes that address to a1's veth (modelling
# an ARP/NDP spoof on a bridged CNI, or a stale mapping whose address went
# to another pod). Then:
# (A) mapping without namespaces (as before): a1's socket bound to a2's
#     address is keyed *as a2*: secured, b1 answers — the gap;
# (B) mapping with `netns=/run/netns/POD` on every pod: the same connect
#     fails closed (ECONNABORTED, `reset-identity`), nothing of it on the
#     wire; a1's own flows (as a1) are still secured;
# (C) a listener a1 opens on a2's address is not gated, and a flow b1 opens
#     to it (keyed by b1's end as to a2) is failed closed at a1's end: a1's
#     app cannot answer in plaintext as a2; counted;
# (D) `mapping show` lists the bindings (netns-cookie=N).
. ./lib.sh
. ./pods.sh

dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk"
tlshubctl node set n2 psk "$TOPO_DIR/psk"
app_echo_server b1 7000
a2=$(pod_ip4 a2)
pod_exec_root a1 ip addr add "$a2/32" dev eth0
node_exec n1 ip route replace "$a2/32" dev v-a1
ok "a1 holds a2's address, n1 routes it to a1"

m=$(new_marker)
s0=$(tlshubctl status --json)
got=$(printf '%s\n' "$m-a" | pod_exec a1 socat -t 30 -T 30 - "TCP:$(pod_ip4 b1):7000,bind=$a2" 2>&1)
expect_eq "(A) unbound mapping: a1 as a2 -> b1 is answered" "$m-a" "$got"
s1=$(tlshubctl status --json)
[ $(( $(stat_of "$s1" flows_secured) - $(stat_of "$s0" flows_secured) )) -ge 1 ] \
    || dp_fail "(A) a1's flow as a2 was not secured"
ok "(A) without namespaces in the mapping, a1 is keyed as a2 (the gap this closes)"

# Every pod bound to its netns.
{
    echo "node n1 192.168.100.1"
    echo "node n2 192.168.100.2"
    for p in a1 a2 b1; do
        echo "default/$p $(pod_node $p) $(pod_ip4 $p) $(pod_ip6 $p) netns=/run/netns/$p"
    done
} > "$TOPO_DIR/mapping-netns.conf"
tlshubctl mapping load "$TOPO_DIR/mapping-netns.conf" >/dev/null || dp_fail "mapping with netns= did not load"
tlshubctl mapping show > "$TOPO_DIR/shown.conf"
cat "$TOPO_DIR/shown.conf"
for p in a1 a2 b1; do
    grep -q "^default/$p .*netns-cookie=[1-9]" "$TOPO_DIR/shown.conf" || dp_fail "(D) $p shown without its netns"
done
ok "(D) mapping binds a1, a2, b1 to their netns; show prints netns-cookie=N"

pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
s0=$(tlshubctl status --json)
out=$(printf '%s\n' "$m-b" | pod_exec a1 socat -t 10 -T 10 - "TCP:$(pod_ip4 b1):7000,bind=$a2" 2>&1) \
    && dp_fail "(B) a1 as a2 was let through: $out"
expect_eq "(B) a1 as itself -> b1 still secured" "$m-own" \
    "$(printf '%s\n' "$m-own" | pod_exec a1 socat -t 30 -T 30 - "TCP:$(pod_ip4 b1):7000,bind=$(pod_ip4 a1)")"
# (C) a1 listens on a2's address; b1 connects to a2.
pod_bg a1 socat -T 10 "TCP-LISTEN:7300,bind=$a2,reuseaddr,fork" "SYSTEM:echo $m-c-reply"
pod_wait_listen a1 7300
out=$(printf '%s\n' "$m-c" | pod_exec b1 socat -t 10 -T 10 - "TCP:$a2:7300" 2>&1) || true
[[ $out != *"$m-c-reply"* ]] || dp_fail "(C) a1 answered b1 as a2: $out"
capture_stop
s1=$(tlshubctl status --json)
d() { echo $(( $(stat_of "$s1" "$1") - $(stat_of "$s0" "$1") )); }
expect_eq "(B)+(C) flows failed closed as impostors" 2 "$(d reset_identity)"
! grep -q "$m-b" "$pcap" || dp_fail "(B) the impostor's bytes are on the wire"
! grep -q "$m-c-reply" "$pcap" || dp_fail "(C) a1's answer as a2 is on the wire"
out=$(tlswire "$pcap" --expect tls --port 7000 --host "$(pod_ip4 a1)" --min-conns 1 --marker "$m-own") \
    || { echo "$out"; dp_fail "(B) a1's own flow is not TLS only"; }
ok "(B) a1 as a2 fails closed (reset-identity), nothing on the wire; a1 as itself secured; (C) a1's listener as a2 cannot answer"

topo_teardown
unload_module
