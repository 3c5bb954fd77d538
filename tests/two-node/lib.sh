# Helpers for scripts run by scripts/two-node (sourced): one VM is one node,
# the VM's initial network namespace is the node (as on a real Kubernetes
# node), pods are network namespaces behind veths, routed like
# tests/vm/pods.sh does (Calico-style, no bridge):
#
#   VM 1: node n1  eth0 192.168.100.1  fd00:100::1    VM 2: node n2  eth0 192.168.100.2  fd00:100::2
#     a1  10.1.0.11  fd00:1::11  (mapped)               b1  10.2.0.21  fd00:2::21  (mapped)
#     x1  10.1.0.99  fd00:1::99  (unmapped)             y1  10.2.0.99  fd00:2::99  (unmapped)
#   eth0 <====================== the wire (QEMU dgram link) =====================> eth0
#
# Each node routes the other's pod CIDRs (10.N.0.0/16, fd00:N::/64) via the
# other's link address. The node's netns is also reachable as the named
# netns "node" (for nsenter-based helpers such as capture_start).
#
# Sources tests/vm/lib.sh and tests/vm/pods.sh, and uses only pods.sh's
# documented helpers on top of its own topology: pod_exec, pod_bg,
# capture_start/capture_stop, app_echo_server, app_echo, app_nginx,
# new_marker, wait_for, wait_log, tlswire, topo_teardown (which deletes the
# pod namespaces registered in TOPO_NETNS and removes TOPO_DIR).
#
#   tn_setup                 the topology of this VM (EXIT trap: teardown)
#   tn_pod_add POD IP4 IP6   one more pod behind this VM's node netns
#   tn_third_node MAP        node n3 with pod c1 on VM 1, which serves n1 and n3
#   tn_mapping FILE          the mapping both nodes load: n1, n2, a1, b1
#   tn_secure                load tls.ko + tlshub.ko, load the mapping,
#                            `node local nN`, `node set nPEER psk $TLSHUB_SHARED/psk`
#   tn_ip4 POD / tn_ip6 POD  a pod's addresses (any pod of either node)
#   tn_barrier NAME [SECS]   wait until both nodes reached NAME (fails if
#                            the other node failed or SECS, default 240, pass)
#   tn_put KEY VALUE         publish a value in the share
#   tn_get KEY [SECS]        wait for the other node's value and print it
#   tn_say TEXT...           a line prefixed with this node's name
#   tn_trace_on              ftrace for diagnosis: TCP state changes and the
#                            return values of tcp_set_ulp and kTLS's
#                            setsockopt; fail dumps the trace's tail
#   tn_echo POD HOST PORT LINE   one connection from POD (unprivileged bash,
#                            /dev/tcp): send LINE, print the line echoed,
#                            then close. Unlike app_echo (socat), it does not
#                            half-close before the echo is back (see
#                            fin-before-accept.sh for why that matters).
# TN_NODE (n1|n2), TN_PEER, TN_POD (the local mapped pod: a1|b1), TN_PLAIN
# (the local unmapped pod: x1|y1), TN_RPOD / TN_RPLAIN (the other node's).

TN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$TN_DIR/../vm/lib.sh"
. "$TN_DIR/../vm/pods.sh"

[ -n "${TLSHUB_NODE:-}" ] && [ -d "${TLSHUB_SHARED:-}" ] || fail "run me with scripts/two-node"
TN_NODE=n$TLSHUB_NODE TN_PEER=n$((3 - TLSHUB_NODE))
declare -gA TN_IP4=([a1]=10.1.0.11 [x1]=10.1.0.99 [b1]=10.2.0.21 [y1]=10.2.0.99)
declare -gA TN_IP6=([a1]=fd00:1::11 [x1]=fd00:1::99 [b1]=fd00:2::21 [y1]=fd00:2::99)
if [ "$TLSHUB_NODE" = 1 ]; then
    TN_POD=a1 TN_PLAIN=x1 TN_RPOD=b1 TN_RPLAIN=y1
else
    TN_POD=b1 TN_PLAIN=y1 TN_RPOD=a1 TN_RPLAIN=x1
fi

tn_ip4() { echo "${TN_IP4[$1]}"; }
tn_ip6() { echo "${TN_IP6[$1]}"; }
tn_say() { echo "[$TN_NODE] $*"; }
tn_echo() {
    local host=${2#[}; host=${host%]}
    pod_exec "$1" bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1; printf "%s\n" "$3" >&3
        IFS= read -r -t 60 line <&3 || exit 1; printf "%s" "$line"' _ "$host" "$3" "$4"
}

tn_setup() {
    topo_teardown
    trap topo_teardown EXIT
    TOPO_DIR=$(mktemp -d /tmp/topo.XXXXXX); chmod 755 "$TOPO_DIR"
    local n=$TLSHUB_NODE p=$((3 - TLSHUB_NODE)) pod root=() cmds
    [ -e /run/netns/node ] || ip netns attach node 1 || fail "ip netns attach node 1"
    sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 || fail "forwarding"
    root+=("route add 10.$p.0.0/16 via 192.168.100.$p dev eth0")
    root+=("route add fd00:$p::/64 via fd00:100::$p dev eth0")
    for pod in "$TN_POD" "$TN_PLAIN"; do
        root+=("netns add $pod")
        root+=("link add v-$pod type veth peer name eth0 netns $pod")
        root+=("link set v-$pod addrgenmode none")
        root+=("addr add 10.$n.0.1/32 dev v-$pod")
        root+=("addr add fe80::1/64 dev v-$pod nodad")
        root+=("link set v-$pod up")
        root+=("route add ${TN_IP4[$pod]}/32 dev v-$pod")
        root+=("route add ${TN_IP6[$pod]}/128 dev v-$pod")
        TOPO_NETNS+=("$pod")
    done
    printf '%s\n' "${root[@]}" | ip -batch - || fail "ip -batch (node $TN_NODE)"
    for pod in "$TN_POD" "$TN_PLAIN"; do
        cmds="link set lo up
link set eth0 addrgenmode none
addr add ${TN_IP4[$pod]}/32 dev eth0
addr add ${TN_IP6[$pod]}/128 dev eth0 nodad
link set eth0 up
route add 10.$n.0.1 dev eth0 scope link
route add default via 10.$n.0.1 dev eth0
route add ::/0 via fe80::1 dev eth0"
        ip -n "$pod" -batch - <<<"$cmds" || fail "ip -n $pod -batch"
    done
}

# tn_pod_add POD IP4 IP6: one more pod on this VM's node netns (as tn_setup's).
tn_pod_add() {
    local pod=$1 n=$TLSHUB_NODE
    TN_IP4[$pod]=$2 TN_IP6[$pod]=$3
    ip -batch - <<EOF || fail "ip -batch ($pod)"
netns add $pod
link add v-$pod type veth peer name eth0 netns $pod
link set v-$pod addrgenmode none
addr add 10.$n.0.1/32 dev v-$pod
addr add fe80::1/64 dev v-$pod nodad
link set v-$pod up
route add $2/32 dev v-$pod
route add $3/128 dev v-$pod
EOF
    TOPO_NETNS+=("$pod")
    ip -n "$pod" -batch - <<EOF || fail "ip -n $pod -batch"
link set lo up
link set eth0 addrgenmode none
addr add $2/32 dev eth0
addr add $3/128 dev eth0 nodad
link set eth0 up
route add 10.$n.0.1 dev eth0 scope link
route add default via 10.$n.0.1 dev eth0
route add ::/0 via fe80::1 dev eth0
EOF
}

# tn_third_node MAP: tn_mapping's mapping plus node n3 (its agent at
# 192.168.100.1:7446) and its pod c1 on VM 1, written to MAP and loaded;
# VM 1 adds the pod (with an echo server on 7000) and serves n1 and n3.
tn_third_node() {
    tn_mapping "$1"
    printf '%s\n' "node n3 192.168.100.1:7446" "default/c1 n3 10.1.0.33 fd00:1::33" >> "$1"
    tlshubctl mapping load "$1" >/dev/null || fail "mapping load (n3)"
    TN_IP4[c1]=10.1.0.33 TN_IP6[c1]=fd00:1::33
    if [ "$TN_NODE" = n1 ]; then
        tn_pod_add c1 10.1.0.33 fd00:1::33
        tlshubctl node local n1 n3 || fail "node local n1 n3"
        app_echo_server c1 7000
    fi
}

tn_mapping() {
    cat > "$1" <<EOF
# tests/two-node topology: one VM per node
node n1 192.168.100.1
node n2 192.168.100.2
default/a1 n1 10.1.0.11 fd00:1::11
default/b1 n2 10.2.0.21 fd00:2::21
EOF
}

tn_secure() {
    load_module
    tn_mapping "$TOPO_DIR/mapping.conf"
    tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null || fail "mapping load"
    tlshubctl node set "$TN_PEER" psk "$TLSHUB_SHARED/psk" || fail "node set $TN_PEER psk"
    tlshubctl node local "$TN_NODE" || fail "node local $TN_NODE"
}

_tn_other_failed() {
    local f
    for f in "$TLSHUB_SHARED"/failed.*; do
        [ -e "$f" ] || continue
        [ "$f" != "$TLSHUB_SHARED/failed.$TLSHUB_NODE" ] && return 0
    done
    return 1
}
_tn_ready() { _tn_other_failed && return 0; [ -e "$1" ]; }

tn_barrier() {
    : > "$TLSHUB_SHARED/barrier.$1.$TN_NODE"
    wait_for "${2:-240}" _tn_ready "$TLSHUB_SHARED/barrier.$1.$TN_PEER" \
        || fail "barrier $1: $TN_PEER did not arrive in ${2:-240}s"
    ! _tn_other_failed || fail "barrier $1: the other node failed"
}

tn_put() { printf '%s\n' "$2" > "$TLSHUB_SHARED/val.$1.tmp.$TN_NODE" && mv "$TLSHUB_SHARED/val.$1.tmp.$TN_NODE" "$TLSHUB_SHARED/val.$1"; }
tn_get() {
    wait_for "${2:-240}" _tn_ready "$TLSHUB_SHARED/val.$1" || fail "value $1 never published"
    ! _tn_other_failed || [ -e "$TLSHUB_SHARED/val.$1" ] || fail "value $1: the other node failed"
    cat "$TLSHUB_SHARED/val.$1"
}

TN_TRACE=
tn_trace_on() {
    local t=/sys/kernel/tracing
    [ -e $t/trace ] || mount -t tracefs tracefs $t || return 0
    {
        echo 'r:tn_ulp tcp_set_ulp ret=$retval'
        ! tls_loaded || echo 'r:tn_tlsopt tls:tls_setsockopt ret=$retval'
    } >> $t/kprobe_events 2>/dev/null || true
    echo 1 > $t/events/kprobes/enable 2>/dev/null || true
    echo 1 > $t/events/sock/inet_sock_set_state/enable && TN_TRACE=$t
}

# fail (tests/vm/lib.sh), plus what this node's module says about it.
fail() {
    echo "FAIL: [$TN_NODE] $*" >&2
    if mod_loaded; then
        echo "--- [$TN_NODE] tlshubctl status / flows / node show" >&2
        tlshubctl status >&2 || true; tlshubctl flows >&2 || true; tlshubctl node show >&2 || true
    fi
    if [ -n "$TN_TRACE" ]; then
        echo "--- [$TN_NODE] trace (last 40 events)" >&2
        grep -v '^#' "$TN_TRACE/trace" | tail -n 40 >&2
    fi
    echo "--- [$TN_NODE] kernel log (last 30 lines)" >&2
    dmesg | tail -n 30 >&2
    echo "failed: $*" > "$TLSHUB_SHARED/failed.$TLSHUB_NODE"
    exit 1
}
