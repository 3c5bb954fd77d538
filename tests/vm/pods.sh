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
# per pod, eth0 in the pod (its addresses as /32 and /128), v-POD in the node
# (10.1.0.1/32 or 10.2.0.1/32: the pod's IPv4 gateway; fe80::1: its IPv6
# gateway) and host routes to the pod. Nodes forward, and route the other
# node's pods (10.2.0.0/16, fd00:2::/64 and back) over the veth pair
# link1/link2: the wire, where tests capture. Same-node traffic goes through
# the node, never over the wire. No DAD: every address is added nodad and no
# link-local address is generated (addrgenmode none; fixed ones instead:
# fe80::1 node side and fe80::2 pod side of a pod's veth, fe80::100:1 and
# fe80::100:2 on link1/link2), so all are usable at once. Pods' apps run unprivileged (pod_exec), as in a cluster.
#
# Under TCG every exec costs about half a second, so this file runs as few
# programs as it can: one `ip -batch` per namespace, bash builtins for
# waiting (no sleep, no grep), readiness from the apps' own logs.
#
#   topo_setup                      the topology above (tears down leftovers;
#                                   sets an EXIT trap that calls topo_teardown)
#   pod_add POD NODE IPV4 IPV6      one more pod (either address may be "-")
#   pod_exec POD CMD...             run CMD in POD as nobody:nogroup, no caps
#   pod_exec_root POD CMD...        run CMD in POD as root
#   node_exec NODE CMD...           run CMD in a node's netns as root
#   pod_bg POD CMD... / pod_bg_root POD CMD...   in the background; sets
#                                   BG_PID (call directly, not in $(...));
#                                   killed by topo_teardown
#   pod_ip4 POD / pod_ip6 POD / pod_node POD     a pod's addresses and node
#   pod_addr POD 4|6                its address for URLs and socat ([...] for IPv6)
#   pod_wait_listen POD PORT [SECS] until something listens on TCP PORT (ss)
#   wait_for SECS CMD...            poll CMD every 50 ms; 1 on timeout
#   wait_log FILE STRING [SECS]     until a line of FILE contains STRING (builtins only)
#   nap [SECS]                      sleep without running a program
#   topo_mapping FILE               the tlshub mapping file: nodes n1 and n2,
#                                   pods $TOPO_K8S_NS/{a1,a2,b1}; x1 absent
#   capture_start NETNS IFACE FILE [FILTER...]  tcpdump -s 0 -w FILE; returns
#                                   once a frame sent after the call is in FILE
#   capture_stop                    returns once every frame sent before the
#                                   call is in FILE and FILE is closed; sets
#                                   CAPTURE_PACKETS and CAPTURE_DROPPED (by the
#                                   kernel: the capture is incomplete if not 0)
#   new_marker                      a fresh random marker string
#   app_echo_server POD PORT        socat echo (fork, dual-stack), unprivileged
#   app_echo POD HOST PORT DATA     send DATA, half-close, print the echo
#   app_nginx POD PORT              nginx (root master, nobody worker) serving
#                                   $TOPO_DIR/www-POD (put files there)
#   app_iperf3_server POD PORT      iperf3 -s, unprivileged
#                                   (servers log to $TOPO_DIR/*-POD-PORT.log)
#   tlswire ARGS...                 tests/vm/tlswire.py
#   topo_teardown                   kill what we started and everything in
#                                   our namespaces, delete them
#   dp_setup                        the module loaded, the topology, its
#                                   mapping loaded, n1 and n2 served, a random
#                                   secret in $TOPO_DIR/psk (not set)
#   ok MSG / dp_fail MSG            a test's step passed / failed (dp_fail
#                                   shows dp_diag, tears down, exits 1)
#   dp_diag                         the test's logs, the module's status and
#                                   flows, the kernel log's tail
#   stat_of JSON KEY                a counter of `tlshubctl status --json`
#   tls_curr POD                    "TX RX": kTLS contexts open in POD's netns
#
# TOPO_DIR is a scratch directory (mode 755) removed by topo_teardown.

TOPO_K8S_NS=${TOPO_K8S_NS:-default}   # the pods' Kubernetes namespace in the mapping
TOPO_UNMAPPED=${TOPO_UNMAPPED:-x1}    # pods topo_mapping leaves out
TOPO_NETNS=() TOPO_PODS=() TOPO_PIDS=()
TOPO_DIR= TOPO_NAPFD=
CAPTURE_PID= CAPTURE_FILE= CAPTURE_NETNS= CAPTURE_IFACE= CAPTURE_TXTFD=
CAPTURE_PACKETS= CAPTURE_DROPPED= CAPTURE_SYNC_N=0
declare -gA POD_IP4=() POD_IP6=() POD_NODE=() NODE_IP4=() NODE_IP6=() NODE_GW4=() SYNC_FD=()
# ip -batch lines waiting for _topo_apply: for the initial netns, per netns.
TOPO_ROOT_CMDS=() TOPO_NS_ORDER=() TOPO_SYSCTL_NODES=()
declare -gA TOPO_NS_CMDS=()

TOPO_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# nap [SECS]: sleep (default 50 ms) with a builtin: read on a FIFO we hold
# both ends of, so it only ever times out. (No <(...): the VM has no /dev/fd.)
nap() {
    if [ -z "$TOPO_NAPFD" ]; then
        local fifo=/tmp/topo-nap.$$.$SRANDOM
        mkfifo -m 600 "$fifo" && exec {TOPO_NAPFD}<>"$fifo" && rm -f "$fifo" || fail "nap: no FIFO"
    fi
    read -r -t "${1:-0.05}" -u "$TOPO_NAPFD" _ || true
}

# wait_for SECS CMD...: poll CMD until it succeeds; 1 on timeout.
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -lt $end ] || return 1
        nap
    done
}

_file_has() {
    local line
    [ -r "$1" ] || return 1
    while IFS= read -r line || [ -n "$line" ]; do
        [[ $line != *"$2"* ]] || return 0
    done < "$1"
    return 1
}
# wait_log FILE STRING [SECS]: until a line of FILE contains STRING.
wait_log() { wait_for "${3:-30}" _file_has "$1" "$2"; }

_ns_cmd() { [ -n "${TOPO_NS_CMDS[$1]+x}" ] || TOPO_NS_ORDER+=("$1"); TOPO_NS_CMDS[$1]+="$2"$'\n'; }

# Run what was queued: one ip -batch in the initial netns (namespaces,
# veths), one per namespace, then the nodes' forwarding switches.
_topo_apply() {
    local ns
    if [ ${#TOPO_ROOT_CMDS[@]} -gt 0 ]; then
        printf '%s\n' "${TOPO_ROOT_CMDS[@]}" | ip -batch - || fail "ip -batch: ${TOPO_ROOT_CMDS[*]}"
    fi
    for ns in "${TOPO_NS_ORDER[@]}"; do
        ip -n "$ns" -batch - <<<"${TOPO_NS_CMDS[$ns]}" || fail "ip -n $ns -batch: ${TOPO_NS_CMDS[$ns]}"
    done
    for ns in "${TOPO_SYSCTL_NODES[@]}"; do
        nsenter --net="/run/netns/$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
            || fail "forwarding on node $ns"
    done
    TOPO_ROOT_CMDS=() TOPO_NS_ORDER=() TOPO_SYSCTL_NODES=() TOPO_NS_CMDS=()
}

_netns_add() {
    [ ! -e "/run/netns/$1" ] || fail "netns $1 exists"
    TOPO_ROOT_CMDS+=("netns add $1")
    TOPO_NETNS+=("$1")
    _ns_cmd "$1" "link set lo up"
}

# _node_add NODE IPV4 IPV6 GW4: a node netns; GW4 is its pods' IPv4 gateway.
_node_add() {
    _netns_add "$1"
    TOPO_SYSCTL_NODES+=("$1")
    NODE_IP4[$1]=$2 NODE_IP6[$1]=$3 NODE_GW4[$1]=$4
}

# _veth NS1 IF1 NS2 IF2: a veth pair, each end in its netns, down, no link-local.
_veth() {
    TOPO_ROOT_CMDS+=("link add $2 netns $1 type veth peer name $4 netns $3")
    _ns_cmd "$1" "link set $2 addrgenmode none"
    _ns_cmd "$3" "link set $4 addrgenmode none"
}

_pod_queue() {
    local pod=$1 node=$2 v4=$3 v6=$4
    [ -n "${NODE_GW4[$node]:-}" ] || fail "pod_add $pod: no node $node"
    _netns_add "$pod"
    _veth "$node" "v-$pod" "$pod" eth0
    _ns_cmd "$pod" "link set eth0 up"
    if [ "$v4" != - ]; then
        _ns_cmd "$pod" "addr add $v4/32 dev eth0"
        _ns_cmd "$pod" "route add ${NODE_GW4[$node]} dev eth0 scope link"
        _ns_cmd "$pod" "route add default via ${NODE_GW4[$node]} dev eth0"
    fi
    if [ "$v6" != - ]; then
        _ns_cmd "$pod" "addr add fe80::2/64 dev eth0 nodad"
        _ns_cmd "$pod" "addr add $v6/128 dev eth0 nodad"
        _ns_cmd "$pod" "route add ::/0 via fe80::1 dev eth0"
    fi
    _ns_cmd "$node" "addr add ${NODE_GW4[$node]}/32 dev v-$pod"
    _ns_cmd "$node" "addr add fe80::1/64 dev v-$pod nodad"
    _ns_cmd "$node" "link set v-$pod up"
    [ "$v4" = - ] || _ns_cmd "$node" "route add $v4/32 dev v-$pod"
    [ "$v6" = - ] || _ns_cmd "$node" "route add $v6/128 dev v-$pod"
    POD_IP4[$pod]=$v4 POD_IP6[$pod]=$v6 POD_NODE[$pod]=$node
    TOPO_PODS+=("$pod")
}

# pod_add POD NODE IPV4 IPV6: a pod netns routed by NODE ("-": no such address).
pod_add() { _pod_queue "$@"; _topo_apply; }

pod_ip4() { echo "${POD_IP4[$1]}"; }
pod_ip6() { echo "${POD_IP6[$1]}"; }
pod_node() { echo "${POD_NODE[$1]}"; }
pod_addr() { if [ "$2" = 6 ]; then echo "[${POD_IP6[$1]}]"; else echo "${POD_IP4[$1]}"; fi; }

# nsenter switches uid and gid itself (and drops supplementary groups); a
# uid change from 0 clears the capabilities.
pod_exec() { local pod=$1; shift; nsenter --net="/run/netns/$pod" -S 65534 -G 65534 -- "$@"; }
pod_exec_root() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }
node_exec() { pod_exec_root "$@"; }

# Background: nsenter execs CMD, so BG_PID is CMD's pid.
pod_bg() {
    local pod=$1; shift
    nsenter --net="/run/netns/$pod" -S 65534 -G 65534 -- "$@" &
    BG_PID=$!; TOPO_PIDS+=("$BG_PID")
}
pod_bg_root() {
    local pod=$1; shift
    nsenter --net="/run/netns/$pod" -- "$@" &
    BG_PID=$!; TOPO_PIDS+=("$BG_PID")
}

_listening() { [ -n "$(ss -N "$1" -Hltn "sport = :$2" 2>/dev/null)" ]; }
pod_wait_listen() { wait_for "${3:-30}" _listening "$1" "$2" || fail "nothing listens on $1 port $2 after ${3:-30}s"; }

topo_setup() {
    topo_teardown
    trap topo_teardown EXIT
    TOPO_DIR=/tmp/topo.$$.$SRANDOM
    mkdir -m 755 "$TOPO_DIR" || fail "mkdir $TOPO_DIR"
    _node_add n1 192.168.100.1 fd00:100::1 10.1.0.1
    _node_add n2 192.168.100.2 fd00:100::2 10.2.0.1
    _veth n1 link1 n2 link2
    _ns_cmd n1 "addr add 192.168.100.1/24 dev link1"
    _ns_cmd n1 "addr add fd00:100::1/64 dev link1 nodad"
    _ns_cmd n1 "addr add fe80::100:1/64 dev link1 nodad"
    _ns_cmd n1 "link set link1 up"
    _ns_cmd n1 "route add 10.2.0.0/16 via 192.168.100.2"
    _ns_cmd n1 "route add fd00:2::/64 via fd00:100::2"
    _ns_cmd n2 "addr add 192.168.100.2/24 dev link2"
    _ns_cmd n2 "addr add fd00:100::2/64 dev link2 nodad"
    _ns_cmd n2 "addr add fe80::100:2/64 dev link2 nodad"
    _ns_cmd n2 "link set link2 up"
    _ns_cmd n2 "route add 10.1.0.0/16 via 192.168.100.1"
    _ns_cmd n2 "route add fd00:1::/64 via fd00:100::1"
    _pod_queue a1 n1 10.1.0.11 fd00:1::11
    _pod_queue a2 n1 10.1.0.12 fd00:1::12
    _pod_queue x1 n1 10.1.0.99 fd00:1::99
    _pod_queue b1 n2 10.2.0.21 fd00:2::21
    _topo_apply
}

# Kill what we started (and anything left in our namespaces), delete them.
topo_teardown() {
    local - pid ns fd pids=() cmds=()
    set +e
    if [ -n "$CAPTURE_PID" ]; then kill "$CAPTURE_PID" 2>/dev/null; wait "$CAPTURE_PID" 2>/dev/null; CAPTURE_PID=; fi
    [ -z "$CAPTURE_TXTFD" ] || exec {CAPTURE_TXTFD}<&-
    CAPTURE_TXTFD=
    for fd in "${SYNC_FD[@]}"; do exec {fd}>&-; done
    SYNC_FD=()
    for pid in "${TOPO_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${TOPO_PIDS[@]}"; do
        wait_for 5 eval "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for ns in n1 n2 a1 a2 x1 b1 "${TOPO_NETNS[@]}"; do
        [ ! -e "/run/netns/$ns" ] || cmds+=("$ns")
    done
    if [ ${#cmds[@]} -gt 0 ]; then
        # Servers' children, whatever a test left behind.
        read -r -d '' -a pids <<<"$(printf 'netns pids %s\n' "${cmds[@]}" | ip -batch - 2>/dev/null)"
        if [ ${#pids[@]} -gt 0 ]; then
            kill -9 "${pids[@]}" 2>/dev/null
            for pid in "${pids[@]}"; do wait_for 5 eval "! kill -0 $pid 2>/dev/null"; done
        fi
    fi
    [ ${#cmds[@]} = 0 ] || printf 'netns del %s\n' "${cmds[@]}" | ip -batch - 2>/dev/null
    TOPO_PIDS=() TOPO_NETNS=() TOPO_PODS=()
    POD_IP4=() POD_IP6=() POD_NODE=() NODE_IP4=() NODE_IP6=() NODE_GW4=()
    TOPO_ROOT_CMDS=() TOPO_NS_ORDER=() TOPO_SYSCTL_NODES=() TOPO_NS_CMDS=()
    [ -z "$TOPO_DIR" ] || rm -rf "$TOPO_DIR"
    TOPO_DIR=
    return 0
}

# topo_mapping FILE: tlshub's mapping for the topology (README "Config
# formats"): node lines with the node's address, every pod but the unmapped
# ones as NAMESPACE/NAME NODE IPs.
topo_mapping() {
    local pod node ips
    {
        echo "# tests/vm/pods.sh topology"
        for node in n1 n2; do echo "node $node ${NODE_IP4[$node]}"; done
        for pod in "${TOPO_PODS[@]}"; do
            case " $TOPO_UNMAPPED " in *" $pod "*) continue;; esac
            ips=
            [ "${POD_IP4[$pod]}" = - ] || ips+=" ${POD_IP4[$pod]}"
            [ "${POD_IP6[$pod]}" = - ] || ips+=" ${POD_IP6[$pod]}"
            echo "$TOPO_K8S_NS/$pod ${POD_NODE[$pod]}$ips"
        done
    } > "$1"
}

new_marker() { printf 'tlshub-marker-%08x%08x\n' "$SRANDOM" "$SRANDOM"; }

# _capture_sync: send a UDP datagram to ff02::1 out of the captured
# interface, from a shell kept in that netns (its /dev/udp: no program
# run), and wait until tcpdump printed it. tcpdump prints a packet after
# writing and flushing it (-U), so the pcap then holds everything the
# interface carried before.
_capture_sync() {
    local ns=$CAPTURE_NETNS port line end
    if [ -z "${SYNC_FD[$ns]:-}" ]; then
        local fifo=$TOPO_DIR/sync-$ns fd
        mkfifo "$fifo"
        nsenter --net="/run/netns/$ns" bash -c \
            'while read -r ifc p; do { echo sync > "/dev/udp/ff02::1%$ifc/$p"; } 2>/dev/null; done' < "$fifo" &
        TOPO_PIDS+=($!)
        exec {fd}>"$fifo"
        SYNC_FD[$ns]=$fd
    fi
    CAPTURE_SYNC_N=$((CAPTURE_SYNC_N + 1))
    port=$((40000 + (RANDOM % 1000) * 20 + CAPTURE_SYNC_N % 20))
    end=$((SECONDS + 60))
    while [ $SECONDS -lt $end ]; do
        echo "$CAPTURE_IFACE $port" >&"${SYNC_FD[$ns]}"
        local tries=10
        while [ $tries -gt 0 ]; do
            # grep, not a read loop: after connection churn the text holds
            # tens of thousands of lines, too many for bash under TCG.
            grep -qF -- "> ff02::1.$port: UDP" "$CAPTURE_FILE.txt" && return 0
            nap; tries=$((tries - 1))
        done
    done
    fail "capture on $ns:$CAPTURE_IFACE never saw its sync datagram: $(cat "$CAPTURE_FILE.log")"
}

# capture_start NETNS IFACE FILE [FILTER...]: capture every frame (-s 0) on
# IFACE in NETNS to FILE (pcap), written packet by packet (-U,
# --immediate-mode); tcpdump's stderr goes to FILE.log, its one line per
# packet to FILE.txt. One capture at a time. The ring is 64 MiB: in
# immediate mode each slot holds a full snap length (256 KiB), so 256 GSO
# packets; tcpdump starved of CPU (TCG, a busy host) can still fall behind
# a fast sender: capture_stop reports kernel drops, tests should fail on them.
# CAPTURE_SNAPLEN (default 0: whole frames) caps the bytes kept per frame:
# with many small packets (connection churn) a small one keeps up.
capture_start() {
    local ns=$1 iface=$2 file=$3; shift 3
    [ -z "$CAPTURE_PID" ] || fail "capture_start: a capture is running ($CAPTURE_FILE)"
    local filter=()
    [ $# = 0 ] || filter=("( $* ) or (udp and ip6 dst ff02::1)")
    : > "$file.txt"
    nsenter --net="/run/netns/$ns" tcpdump -i "$iface" -s "${CAPTURE_SNAPLEN:-0}" -U --immediate-mode -B 65536 -n -l -Z root \
        --print -w "$file" "${filter[@]}" >"$file.txt" 2>"$file.log" &
    CAPTURE_PID=$! CAPTURE_FILE=$file CAPTURE_NETNS=$ns CAPTURE_IFACE=$iface
    exec {CAPTURE_TXTFD}<"$file.txt"
    wait_log "$file.log" 'listening on' 30 || fail "tcpdump on $ns:$iface did not start: $(cat "$file.log")"
    _capture_sync
}

capture_stop() {
    [ -n "$CAPTURE_PID" ] || fail "capture_stop: no capture running"
    _capture_sync
    kill -TERM "$CAPTURE_PID"
    wait "$CAPTURE_PID" 2>/dev/null || true
    CAPTURE_PID=
    exec {CAPTURE_TXTFD}<&-
    CAPTURE_TXTFD=
    local line
    CAPTURE_PACKETS= CAPTURE_DROPPED=
    while IFS= read -r line; do
        [[ $line =~ ^([0-9]+)\ packets?\ captured$ ]] && CAPTURE_PACKETS=${BASH_REMATCH[1]}
        [[ $line =~ ^([0-9]+)\ packets?\ dropped\ by\ kernel$ ]] && CAPTURE_DROPPED=${BASH_REMATCH[1]}
    done < "$CAPTURE_FILE.log"
    [ -n "$CAPTURE_PACKETS" ] && [ -n "$CAPTURE_DROPPED" ] || fail "tcpdump did not end cleanly: $(cat "$CAPTURE_FILE.log")"
    echo "capture $CAPTURE_NETNS:$CAPTURE_IFACE: $CAPTURE_PACKETS packets, $CAPTURE_DROPPED dropped by the kernel"
    [ "$CAPTURE_DROPPED" = 0 ] || echo "capture: WARNING: the kernel dropped $CAPTURE_DROPPED packets" >&2
}

tlswire() { python3 "$TOPO_LIB_DIR/tlswire.py" "$@"; }

app_echo_server() {
    local log=$TOPO_DIR/echo-$1-$2.log
    # -t: after the client's EOF, wait for cat's echo (0.5 s by default; TCG is slow).
    # backlog: socat's default of 5 drops SYNs of a burst (two-node agent.sh
    # connects 100 at once), and their retries back off for a minute.
    pod_bg "$1" socat -d -d -t 60 "TCP6-LISTEN:$2,ipv6only=0,reuseaddr,fork,backlog=256" EXEC:cat >"$log" 2>&1
    wait_log "$log" "listening on" 30 || fail "socat on $1:$2 did not start: $(cat "$log")"
}

# app_echo POD HOST PORT DATA: prints what came back (HOST: IPv4, or IPv6 bare or bracketed).
app_echo() {
    # socat as users run it: it sends DATA and a newline, half-closes at
    # stdin EOF (often before the server is keyed or has accepted: the
    # datapath keys such sockets in CLOSE_WAIT), prints the echo.
    local host=${2#[}; host=${host%]}
    [[ $host != *:* ]] || host="[$host]"
    printf '%s\n' "$4" | pod_exec "$1" socat -t 60 -T 60 - "TCP:$host:$3"
}

app_nginx() {
    local pod=$1 port=$2 d=$TOPO_DIR/nginx-$1-$2
    mkdir -p "$d" "$TOPO_DIR/www-$pod"
    chmod 755 "$TOPO_DIR/www-$pod"
    cat > "$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid $d/nginx.pid;
error_log $d/error.log notice;
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
    # Listening sockets are open before the workers start.
    wait_log "$d/error.log" "start worker process" 30 || fail "nginx on $pod:$port did not start: $(cat "$d/error.log" "$d/stderr.log")"
}

app_iperf3_server() {
    local log=$TOPO_DIR/iperf3-$1-$2.log
    pod_bg "$1" iperf3 -s -p "$2" --forceflush >"$log" 2>&1
    wait_log "$log" "Server listening on $2" 30 || fail "iperf3 on $1:$2 did not start: $(cat "$log")"
}

# Shared by the datapath tests (see the list at the top).
ok() { echo "ok   $* [${SECONDS}s]"; }
stat_of() { jq -r --arg k "$2" '.stats[$k]' <<<"$1"; }
tls_curr() { echo "$(tls_stat "$1" TlsCurrTxSw) $(tls_stat "$1" TlsCurrRxSw)"; }
dp_diag() {
    local f
    for f in "$TOPO_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    if mod_loaded; then tlshubctl status | grep -v ': 0$'; tlshubctl flows | head -n 30; fi
    dmesg | tail -n 20
}
dp_fail() { trap - EXIT; dp_diag >&2 || true; echo "FAIL: $*" >&2; topo_teardown; exit 1; }
dp_setup() {
    load_module
    topo_setup
    topo_mapping "$TOPO_DIR/mapping.conf"
    tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
    tlshubctl node local n1 n2
    head -c 32 /dev/urandom > "$TOPO_DIR/psk"
}
