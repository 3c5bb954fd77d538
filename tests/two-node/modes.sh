#!/usr/bin/env bash
# The key-provider modes across two kernels: scripts/two-node
# tests/two-node/modes.sh runs this in both VMs (node n1 = VM 1, n2 = VM 2;
# see lib.sh). Both nodes run tlshubd with its handshake workers
# (tlshub-worker-openssl, tlshub-worker-boring, next to tlshubd in
# helper/target/release; certificates of a cluster CA made here with
# openssl, agent-lib.sh). Proves, with n1 capturing its link:
#   1. openssl mode (`mode set openssl` on both): curl a1 -> nginx b1 (a
#      file, sha256), iperf3 a1 -> b1 (5 s), an echo and a held socat flow
#      work; `flows --json` shows mode openssl for the iperf3 and held flows
#      (on both ends for the held one); every flow secured in this phase
#      had its own handshake: on n1 the agent logged one "keyed (openssl,
#      client" per secured flow, on n2 one "keyed (openssl, server" (the
#      worker's `accepted`) per secured flow;
#   2. `mode set boringssl`: the held openssl flow keeps working and stays
#      openssl; a new held flow is boringssl (both ends), curl works, and
#      each new flow had a boringssl handshake;
#   3. `mode set tlshub`: a new held flow is tlshub (both ends), curl works,
#      and no per-flow handshake happened on either node (the node-pair
#      secret the agents made at start keys them);
#   4. the wire (n1:eth0) of every pod flow above is TLS records only, no
#      marker (tlswire); rmmod, no kmemleak report.
# Prints `ok ...` lines; exits non-zero on the first failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/agent-lib.sh"
ok() { echo "ok   [$TN_NODE] $* (t=$((SECONDS - T0))s)"; }
T0=$SECONDS

ok "start, VM up for $(cut -d" " -f1 /proc/uptime)s"
for w in tlshub-worker-openssl tlshub-worker-boring; do
    command -v "$w" >/dev/null || fail "$w not built (cargo build --release --workspace in helper/)"
done
tn_setup
HELD_FDS=()
trap 'for fd in "${HELD_FDS[@]}"; do eval "exec $fd>&-"; done; ag_stop KILL; topo_teardown' EXIT
load_module
tn_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null || fail "mapping load"
tlshubctl node local "$TN_NODE" || fail "node local $TN_NODE"
# A per-flow handshake under TCG on a busy host can take seconds.
tlshubctl timeout set 30000 || fail "timeout set"
AG_LOG=$TOPO_DIR/agent.log AG_PKI=$TLSHUB_SHARED/pki AG_RETRY=30
if [ "$TN_NODE" = n1 ]; then
    ag_pki "$AG_PKI"
    tn_put pki ready
else
    tn_get pki >/dev/null
fi
# Echo servers: one port per phase, so each phase's held flow is found by
# its port in `flows --json`.
for port in 7000 7001 7002; do app_echo_server "$TN_POD" "$port"; done
if [ "$TN_NODE" = n2 ]; then
    m=$(new_marker)
    app_nginx b1 8080
    { printf '%s\n' "$m-body"; head -c 300000 /dev/urandom | base64; } > "$TOPO_DIR/www-b1/file.txt"
    tn_put nginx "$m"
    tn_put file-sha "$(sha256sum < "$TOPO_DIR/www-b1/file.txt" | cut -d" " -f1)"
    app_iperf3_server b1 5201
fi
tn_barrier ready

ag_start
ag_wait "openssl worker ready on" 1 180 || fail "the openssl worker did not start"
ag_wait "boringssl worker ready on" 1 180 || fail "the boringssl worker did not start"
ag_wait "secret installed, epoch" 1 240 || fail "no node-pair session with $TN_PEER"
grep -E "worker ready on" "$AG_LOG" | sed 's/^/    /'
tn_barrier agents
ok "agents up with both workers (ports 7444, 7445), node-pair secret made"

# keyed LIB ROLE: this node's agent's lines for flows keyed by a per-flow
# handshake of LIB (openssl|boringssl), as ROLE (client|server).
keyed() { ag_count "keyed ($1, $2"; }
# mode_of ROLE PORT: the mode of this node's flows a1 <-> b1 with PORT as the
# server's port (client: remote_port, server: local_port); one line each.
mode_of() {
    local key=remote_port
    [ "$1" = server ] && key=local_port
    tlshubctl flows --json | jq -r --arg r "$1" --arg k "$key" --argjson p "$2" \
        '.[] | select(.role == $r and .[$k] == $p) | .mode'
}
# held NAME PORT: a connection a1 -> b1:PORT kept open; lines written to
# fd HELD_NAME go out, echoes land in $TOPO_DIR/NAME.out.
held() {
    local fifo=$TOPO_DIR/$1.in fd
    mkfifo "$fifo"
    exec {fd}<>"$fifo"
    HELD_FDS+=("$fd")
    pod_bg a1 sh -c 'exec socat -t 60 -T 300 - "TCP:$0:$1" <&3' "$(tn_ip4 b1)" "$2" \
        3<"$fifo" >"$TOPO_DIR/$1.out" 2>"$TOPO_DIR/$1.log"
    eval "HELD_$1=$fd"
}
held_say() {
    local fd=HELD_$1
    printf '%s\n' "$2" >&"${!fd}"
    wait_log "$TOPO_DIR/$1.out" "$2" 60 || fail "held flow $1: no echo of '$2': $(cat "$TOPO_DIR/$1.log")"
}
# secured_vs_keyed LIB ROLE S0 K0: flows secured since S0 on this kernel
# equal the per-flow handshakes (keyed lines) since K0; prints the number.
_sv_equal() { [ $(( $(ag_stat flows_secured) - SV_S0 )) -eq $(( $(keyed "$SV_LIB" "$SV_ROLE") - SV_K0 )) ]; }
secured_vs_keyed() {
    local s k
    SV_LIB=$1 SV_ROLE=$2 SV_S0=$3 SV_K0=$4
    # The log line follows flow-key-set; give it a moment.
    wait_for 20 _sv_equal || true
    s=$(( $(ag_stat flows_secured) - $3 )) k=$(( $(keyed "$1" "$2") - $4 ))
    [ "$s" -ge 1 ] || fail "no flow secured in $1 mode"
    [ "$s" -eq "$k" ] || fail "$1 mode: $s flows secured but $k per-flow handshakes ($2) logged"
    echo "$s"
}
_iperf_flows() { IPF=$(mode_of client 5201 | sort -u | tr '\n' ' '); [ -n "$IPF" ]; }
curl_file() {
    local got
    got=$(pod_exec a1 curl -sS --max-time 120 "http://$(tn_ip4 b1):8080/file.txt?q=$1" | sha256sum | cut -d" " -f1) \
        || fail "curl a1 -> b1 ($1)"
    expect_eq "curl a1 -> b1 file sha256 ($1)" "$(tn_get file-sha)" "$got"
}

# 1. openssl.
tlshubctl mode set openssl || fail "mode set openssl"
tn_barrier openssl
s0=$(ag_stat flows_secured) ko0=$(keyed openssl client) kos0=$(keyed openssl server)
pcap=$TOPO_DIR/wire.pcap
if [ "$TN_NODE" = n1 ]; then
    capture_start node eth0 "$pcap" tcp
    m=$(new_marker)
    curl_file "$m-req1"
    expect_eq "a1 -> b1 echo (openssl)" "$m-echo1" "$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m-echo1")"
    log=$TOPO_DIR/iperf3.log
    pod_bg a1 iperf3 -c "$(tn_ip4 b1)" -p 5201 -t 5 -b 8M --forceflush --extra-data "$m-iperf" >"$log" 2>&1
    ipid=$BG_PID
    # While it runs (tlshubctl over 9p can take seconds under TCG).
    wait_for 30 _iperf_flows || fail "flows --json never listed the iperf3 flows: $(cat "$log")"
    expect_eq "flows --json: modes of the iperf3 flows (client)" "openssl " "$IPF"
    wait "$ipid" || fail "iperf3 a1 -> b1: $(cat "$log")"
    grep -E "sender|receiver" "$log" | sed 's/^/    /'
    held h1 7000
    held_say h1 "$m-held1"
    expect_eq "flows --json: the held flow (client)" openssl "$(mode_of client 7000)"
    ok "openssl mode: curl (sha256), echo, iperf3 5 s, held flow; flows --json: openssl"
fi
tn_barrier openssl-traffic
if [ "$TN_NODE" = n2 ]; then
    expect_eq "flows --json: the held flow (server)" openssl "$(mode_of server 7000)"
    n=$(secured_vs_keyed openssl server "$s0" "$kos0")
else
    n=$(secured_vs_keyed openssl client "$s0" "$ko0")
fi
tn_put "openssl.$TN_NODE" "$n"
expect_eq "openssl flows secured: n1 (client ends) and n2 (server ends)" "$(tn_get openssl.n1)" "$(tn_get openssl.n2)"
[ "$n" -ge 5 ] || fail "only $n openssl flows (curl, echo, iperf3 x2, held)"
grep -F "keyed (openssl" "$AG_LOG" | tail -n 2 | sed 's/^/    /'
ok "openssl mode: $n flows secured here, each after its own openssl handshake (agent log)"
tn_barrier openssl-checked

# 2. boringssl; the held openssl flow lives on.
tlshubctl mode set boringssl || fail "mode set boringssl"
tn_barrier boringssl
s0=$(ag_stat flows_secured) kb0=$(keyed boringssl client) kbs0=$(keyed boringssl server)
ko1=$(ag_count "keyed (openssl")
if [ "$TN_NODE" = n1 ]; then
    held_say h1 "$m-held1-again"
    expect_eq "flows --json: the held openssl flow after mode set boringssl" openssl "$(mode_of client 7000)"
    held h2 7001
    held_say h2 "$m-held2"
    expect_eq "flows --json: a new flow after mode set boringssl (client)" boringssl "$(mode_of client 7001)"
    curl_file "$m-req2"
    ok "boringssl mode: the held openssl flow still works (and is openssl); a new flow is boringssl; curl works"
fi
tn_barrier boringssl-traffic
if [ "$TN_NODE" = n2 ]; then
    expect_eq "flows --json: the held openssl flow (server)" openssl "$(mode_of server 7000)"
    expect_eq "flows --json: the boringssl flow (server)" boringssl "$(mode_of server 7001)"
    n=$(secured_vs_keyed boringssl server "$s0" "$kbs0")
else
    n=$(secured_vs_keyed boringssl client "$s0" "$kb0")
fi
expect_eq "openssl handshakes during the boringssl phase" "$ko1" "$(ag_count "keyed (openssl")"
ok "boringssl mode: $n new flows secured here, each after its own boringssl handshake; no openssl handshake"
tn_barrier boringssl-checked

# 3. tlshub: node-pair keys, no per-flow handshake.
tlshubctl mode set tlshub || fail "mode set tlshub"
tn_barrier tlshub
s0=$(ag_stat flows_secured) k0=$(ag_count "keyed (")
if [ "$TN_NODE" = n1 ]; then
    held h3 7002
    held_say h3 "$m-held3"
    expect_eq "flows --json: a new flow after mode set tlshub (client)" tlshub "$(mode_of client 7002)"
    curl_file "$m-req3"
    held_say h1 "$m-held1-last"
    held_say h2 "$m-held2-last"
    ok "tlshub mode: a new flow is tlshub, curl works; the held openssl and boringssl flows still work"
fi
tn_barrier tlshub-traffic
[ "$TN_NODE" = n1 ] || expect_eq "flows --json: the tlshub flow (server)" tlshub "$(mode_of server 7002)"
s=$(( $(ag_stat flows_secured) - s0 ))
[ "$s" -ge 2 ] || fail "tlshub mode: only $s flows secured here"
sleep 1
expect_eq "per-flow handshakes in tlshub mode" "$k0" "$(ag_count "keyed (")"
ok "tlshub mode: $s flows secured here, no per-flow handshake"
tn_barrier tlshub-checked

# 4. The wire.
if [ "$TN_NODE" = n1 ]; then
    # The held flows stay open (idle, every record complete): tlswire
    # accepts a direction still open at the end of the capture.
    capture_stop
    marks=()
    for x in req1 req2 req3 echo1 iperf held1 held1-again held2 held3 held1-last held2-last; do
        marks+=(--marker "$m-$x")
    done
    out=$(tlswire "$pcap" --expect tls --host "$(tn_ip4 a1)" --min-conns 9 \
          --marker "$(tn_get nginx)-body" "${marks[@]}") \
        || { echo "$out"; fail "pod flows are not TLS-only on the wire"; }
    echo "$out" | tail -n 3 | sed 's/^/    /'
    ok "wire (n1:eth0): every pod flow of the three modes is TLS records only, no marker"
fi
tn_barrier wire
tlshubctl status | grep -E 'flows|reset|install' | sed 's/^/    /'
ag_stop
topo_teardown
unload_module
kmemleak_check
ok "agents stopped, rmmod, no kmemleak report from tlshub"
