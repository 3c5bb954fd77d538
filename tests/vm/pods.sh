# Two Kubernetes-like nodes in one kernel, for the datapath tests (sourced,
# after lib.sh). Every node and pod is a network namespace:
#
#   node n1  192.168.100.1  fd00:100::1        node n2  192.168.100.2  fd00:100::2
#     a1  10.1.0.11  fd00:1::11                  b1  10.2.0.21  fd00:2::21
#     a2  10.1.0.12  fd00:1::12
#     x1  10.1.0.99  fd00:1::99  (unmapped)
#   n1:link1 <================ the wire ================> link2:n2
#
# Pods are routed, as with Calico (the test kernel has no bridge): a veth
# per pod, eth0 in the pod (its address as /32 and /128), v-POD in the node
# (10.1.0.1/32 or 10.2.0.1/32, the pod's IPv4 gateway, and fe80::1, its IPv6
# gateway), and a host route to the pod. Nodes forward and route the other
# node's pods (10.2.0.0/16, fd00:2::/64 and back) over the veth pair
# link1/link2: the wire, where tests capture. Same-node traffic goes through
# the node, never over the wire. No DAD: every address is usable at once.
# Pods' apps run unprivileged (pod_exec), as in a cluster.
#
#   topo_setup                      the topology above (tears down leftovers;
#                                   sets an EXIT trap that calls topo_teardown)
#   pod_add POD NODE IPV4 IPV6      one more pod (either address may be "-")
#   pod_exec POD CMD...             run CMD in POD as nobody:nogroup, no caps
#   pod_exec_root POD CMD...        run CMD in POD as root
#   node_exec NODE CMD...           run CMD in a node's netns as root
#   pod_bg POD CMD... / pod_bg_root POD CMD...   in the background; BG_PID
#                                   (call directly, not in $(...)); killed by
#                                   topo_teardown
#   pod_ip4 POD / pod_ip6 POD / pod_node POD     addresses and node of a pod
#   pod_addr POD 4|6                IP as a URL/socat host ([...] for IPv6)
#   pod_wait_listen POD PORT [SECS] until something listens on TCP PORT
#   topo_mapping FILE               the tlshub mapping file: nodes n1 and n2,
#                                   pods $TOPO_K8S_NS/{a1,a2,b1}; x1 absent
#   capture_start NETNS IFACE FILE [FILTER...]  tcpdump -w FILE, returns once
#                                   it provably captures
#   capture_stop                    returns once every packet sent before it
#                                   is in FILE and FILE is closed; sets
#                                   CAPTURE_PACKETS and CAPTURE_DROPPED
#   new_marker                      prints a fresh random marker string
#   app_echo_server POD PORT        socat echo (fork, dual-stack), unprivileged
#   app_echo POD HOST PORT DATA     send DATA, half-close, print the echo
#   app_nginx POD PORT              nginx (root master, nobody worker) serving
#                                   $TOPO_DIR/www-POD (put files there)
#   app_iperf3_server POD PORT      iperf3 -s, unprivileged
#   (servers log to $TOPO_DIR/{echo,iperf3}-POD-PORT.log, nginx-POD/)
#   tlswire ARGS...                 tests/vm/tlswire.py
#   topo_teardown                   kill what we started, delete the netns
#
# TOPO_DIR is a scratch directory (mode 755) removed by topo_teardown.

TOPO_K8S_NS=${TOPO_K8S_NS:-default}   # the pods' Kubernetes namespace in the mapping
TOPO_UNMAPPED=${TOPO_UNMAPPED:-x1}    # pods topo_mapping leaves out
TOPO_NETNS=() TOPO_PODS=() TOPO_PIDS=()
TOPO_DIR=
CAPTURE_PID= CAPTURE_FILE= CAPTURE_NETNS= CAPTURE_IFACE=
CAPTURE_PACKETS= CAPTURE_DROPPED=
declare -gA POD_IP4=() POD_IP6=() POD_NODE=() NODE_IP4=() NODE_IP6=() NODE_GW4=()

TOPO_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# wait_for SECS CMD...: poll CMD (every 50 ms) until it succeeds; 1 on timeout.
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.05
    done
}

_netns_add() {
    ip netns add "$1" || fail "ip netns add $1"
    TOPO_NETNS+=("$1")
    # Before any interface exists, so every one of them gets these.
    nsenter --net="/run/netns/$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
        net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 "net.ipv4.ping_group_range=0 2147483647" \
        "${@:2}" || fail "sysctl in $1"
}

# _node_add NODE IPV4 IPV6 GW4: a node netns; GW4 is its pods' IPv4 gateway.
_node_add() {
    _netns_add "$1" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    NODE_IP4[$1]=$2 NODE_IP6[$1]=$3 NODE_GW4[$1]=$4
    ip -n "$1" link set lo up || fail "node $1"
}

# pod_add POD NODE IPV4 IPV6: a pod netns routed by NODE ("-": no such address).
pod_add() {
    local pod=$1 node=$2 v4=$3 v6=$4
    [ -n "${NODE_GW4[$node]:-}" ] || fail "pod_add $pod: no node $node"
    _netns_add "$pod"
    ip link add "v-$pod" netns "$node" type veth peer name eth0 netns "$pod" || fail "veth for $pod"
    {
        echo "link set lo up"
        echo "link set eth0 up"
        [ "$v4" = - ] || printf '%s\n' "addr add $v4/32 dev eth0" "route add ${NODE_GW4[$node]} dev eth0 scope link" \
            "route add default via ${NODE_GW4[$node]} dev eth0"
        [ "$v6" = - ] || printf '%s\n' "addr add $v6/128 dev eth0 nodad" "route add ::/0 via fe80::1 dev eth0"
    } | ip -n "$pod" -batch - || fail "pod $pod addresses"
    {
        echo "addr add ${NODE_GW4[$node]}/32 dev v-$pod"
        echo "addr add fe80::1/64 dev v-$pod nodad"
        echo "link set v-$pod up"
        [ "$v4" = - ] || echo "route add $v4/32 dev v-$pod"
        [ "$v6" = - ] || echo "route add $v6/128 dev v-$pod"
    } | ip -n "$node" -batch - || fail "pod $pod on node $node"
    POD_IP4[$pod]=$v4 POD_IP6[$pod]=$v6 POD_NODE[$pod]=$node
    TOPO_PODS+=("$pod")
}

pod_ip4() { echo "${POD_IP4[$1]}"; }
pod_ip6() { echo "${POD_IP6[$1]}"; }
pod_node() { echo "${POD_NODE[$1]}"; }
pod_addr() { if [ "$2" = 6 ]; then echo "[${POD_IP6[$1]}]"; else echo "${POD_IP4[$1]}"; fi; }

pod_exec() {
    local pod=$1; shift
    nsenter --net="/run/netns/$pod" -- setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all -- "$@"
}
pod_exec_root() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }
node_exec() { pod_exec_root "$@"; }

# Background: nsenter execs setpriv execs CMD, so BG_PID is CMD's pid.
pod_bg() {
    local pod=$1; shift
    nsenter --net="/run/netns/$pod" -- setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all -- "$@" &
    BG_PID=$!; TOPO_PIDS+=("$BG_PID")
}
pod_bg_root() {
    local pod=$1; shift
    nsenter --net="/run/netns/$pod" -- "$@" &
    BG_PID=$!; TOPO_PIDS+=("$BG_PID")
}

_listening() { [ -n "$(nsenter --net="/run/netns/$1" ss -Hltn "sport = :$2" 2>/dev/null)" ]; }
pod_wait_listen() { wait_for "${3:-30}" _listening "$1" "$2" || fail "nothing listens on $1 port $2 after ${3:-30}s"; }

_no_tentative() {
    local ns
    for ns in "${TOPO_NETNS[@]}"; do
        [ -z "$(ip -n "$ns" -6 addr show tentative 2>/dev/null)" ] || return 1
    done
}

topo_setup() {
    topo_teardown
    trap topo_teardown EXIT
    TOPO_DIR=$(mktemp -d /tmp/topo.XXXXXX); chmod 755 "$TOPO_DIR"
    _node_add n1 192.168.100.1 fd00:100::1 10.1.0.1
    _node_add n2 192.168.100.2 fd00:100::2 10.2.0.1
    ip link add link1 netns n1 type veth peer name link2 netns n2 || fail "veth link1/link2"
    ip -n n1 -batch - <<'EOF' || fail "n1 link"
addr add 192.168.100.1/24 dev link1
addr add fd00:100::1/64 dev link1 nodad
link set link1 up
route add 10.2.0.0/16 via 192.168.100.2
route add fd00:2::/64 via fd00:100::2
EOF
    ip -n n2 -batch - <<'EOF' || fail "n2 link"
addr add 192.168.100.2/24 dev link2
addr add fd00:100::2/64 dev link2 nodad
link set link2 up
route add 10.1.0.0/16 via 192.168.100.1
route add fd00:1::/64 via fd00:100::1
EOF
    pod_add a1 n1 10.1.0.11 fd00:1::11
    pod_add a2 n1 10.1.0.12 fd00:1::12
    pod_add x1 n1 10.1.0.99 fd00:1::99
    pod_add b1 n2 10.2.0.21 fd00:2::21
    # Link-local addresses too: no DAD, but be sure nothing is tentative.
    wait_for 10 _no_tentative || fail "IPv6 addresses still tentative after 10s"
}

# Kill what we started (and anything left in our namespaces), delete them.
topo_teardown() {
    local - pid ns pids
    set +e
    [ -z "$CAPTURE_PID" ] || { kill "$CAPTURE_PID" 2>/dev/null; wait "$CAPTURE_PID" 2>/dev/null; CAPTURE_PID=; }
    for pid in "${TOPO_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${TOPO_PIDS[@]}"; do
        wait_for 5 eval "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    TOPO_PIDS=()
    for ns in n1 n2 "${TOPO_NETNS[@]}"; do
        [ -e "/run/netns/$ns" ] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    for ns in a1 a2 x1 b1; do [ ! -e "/run/netns/$ns" ] || ip netns del "$ns" 2>/dev/null; done
    TOPO_NETNS=() TOPO_PODS=()
    [ -z "$TOPO_DIR" ] || rm -rf "$TOPO_DIR"
    TOPO_DIR=
    return 0
}

# topo_mapping FILE: tlshub's mapping for the topology (README "Config
# formats"): node lines with the node's address, every pod but the unmapped
# ones as NAMESPACE/NAME NODE IPs.
topo_mapping() {
    local pod node
    {
        echo "# tests/vm/pods.sh topology"
        for node in n1 n2; do echo "node $node ${NODE_IP4[$node]}"; done
        for pod in "${TOPO_PODS[@]}"; do
            case " $TOPO_UNMAPPED " in *" $pod "*) continue;; esac
            echo "$TOPO_K8S_NS/$pod ${POD_NODE[$pod]}$( [ "${POD_IP4[$pod]}" = - ] || echo " ${POD_IP4[$pod]}")$( [ "${POD_IP6[$pod]}" = - ] || echo " ${POD_IP6[$pod]}")"
        done
    } > "$1"
}

new_marker() { echo "tlshub-marker-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"; }

# _capture_sync NETNS IFACE FILE: send marked frames (ethertype 0x88b5, local
# experimental: the peer drops them) out of IFACE until one is in FILE. The
# capture has then seen, and written, everything sent before.
_capture_sync() {
    nsenter --net="/run/netns/$1" python3 - "$2" "$3" <<'PY' || fail "capture on $1:$2 never saw its sync frame (see $3.log: $(tr '\n' ' ' < "$3.log"))"
import os, socket, sys, time
iface, path = sys.argv[1], sys.argv[2]
token = b"tlshub-capture-sync-" + os.urandom(8).hex().encode()
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x00" + b"\x88\xb5" + token + b"\x00" * 20
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
deadline, pos, tail = time.monotonic() + 30, 0, b""
while time.monotonic() < deadline:
    s.send(frame)
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                new = f.read()
        except FileNotFoundError:
            new = b""
        pos += len(new)
        if token in tail + new:
            sys.exit(0)
        tail = (tail + new)[-len(token):]
        time.sleep(0.02)
sys.exit(1)
PY
}

# capture_start NETNS IFACE FILE [FILTER...]: capture every frame (-s 0) on
# IFACE in NETNS to FILE (pcap), written packet by packet (-U,
# --immediate-mode); tcpdump's stderr goes to FILE.log. One capture at a time.
capture_start() {
    local ns=$1 iface=$2 file=$3; shift 3
    [ -z "$CAPTURE_PID" ] || fail "capture_start: a capture is running ($CAPTURE_FILE)"
    local filter=()
    [ $# = 0 ] || filter=("( $* ) or ether proto 0x88b5")
    rm -f "$file" "$file.log"
    nsenter --net="/run/netns/$ns" tcpdump -i "$iface" -s 0 -U --immediate-mode -B 16384 -n -Z root \
        -w "$file" "${filter[@]}" 2>"$file.log" &
    CAPTURE_PID=$! CAPTURE_FILE=$file CAPTURE_NETNS=$ns CAPTURE_IFACE=$iface
    wait_for 30 grep -q 'listening on' "$file.log" \
        || fail "tcpdump on $ns:$iface did not start: $(cat "$file.log")"
    _capture_sync "$ns" "$iface" "$file"
}

capture_stop() {
    [ -n "$CAPTURE_PID" ] || fail "capture_stop: no capture running"
    _capture_sync "$CAPTURE_NETNS" "$CAPTURE_IFACE" "$CAPTURE_FILE"
    kill -TERM "$CAPTURE_PID"
    wait "$CAPTURE_PID" 2>/dev/null || true
    CAPTURE_PID=
    CAPTURE_PACKETS=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured$/\1/p' "$CAPTURE_FILE.log")
    CAPTURE_DROPPED=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel$/\1/p' "$CAPTURE_FILE.log")
    [ -n "$CAPTURE_PACKETS" ] && [ -n "$CAPTURE_DROPPED" ] || fail "tcpdump did not end cleanly: $(cat "$CAPTURE_FILE.log")"
    echo "capture $CAPTURE_NETNS:$CAPTURE_IFACE: $CAPTURE_PACKETS packets, $CAPTURE_DROPPED dropped by the kernel"
    [ "$CAPTURE_DROPPED" = 0 ] || echo "capture: WARNING: the kernel dropped $CAPTURE_DROPPED packets" >&2
}

# tlswire ARGS...: tests/vm/tlswire.py
tlswire() { python3 "$TOPO_LIB_DIR/tlswire.py" "$@"; }

app_echo_server() {
    pod_bg "$1" socat "TCP6-LISTEN:$2,ipv6only=0,reuseaddr,fork" EXEC:cat >"$TOPO_DIR/echo-$1-$2.log" 2>&1
    pod_wait_listen "$1" "$2"
}

# app_echo POD HOST PORT DATA: prints what came back (HOST: IPv4, or IPv6 bare or bracketed).
app_echo() {
    local host=${2#[}; host=${host%]}
    local addr="TCP4:$host:$3"
    case $host in *:*) addr="TCP6:[$host]:$3";; esac
    printf '%s' "$4" | pod_exec "$1" socat -t 20 -T 60 - "$addr"
}

app_nginx() {
    local pod=$1 port=$2 d=$TOPO_DIR/nginx-$1
    mkdir -p "$d" "$TOPO_DIR/www-$pod"
    chmod 755 "$TOPO_DIR/www-$pod"
    cat > "$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 64; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    server {
        listen $port;
        listen [::]:$port;
        root $TOPO_DIR/www-$pod;
    }
}
EOF
    pod_bg_root "$pod" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >"$d/stderr.log" 2>&1
    pod_wait_listen "$pod" "$port"
}

app_iperf3_server() {
    pod_bg "$1" iperf3 -s -p "$2" >"$TOPO_DIR/iperf3-$1-$2.log" 2>&1
    pod_wait_listen "$1" "$2"
}
