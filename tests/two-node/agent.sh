#!/usr/bin/env bash
# The TLSHub agent across two kernels: scripts/two-node tests/two-node/agent.sh
# runs this in both VMs (node n1 = VM 1, n2 = VM 2; see lib.sh). No
# pre-shared key: each node runs tlshubd with a certificate of a cluster CA
# made here with openssl (agent-lib.sh), and the agents make the node-pair
# secret by mutual TLS 1.3. Proves:
#   1. both agents started at once: exactly one session (one "secret
#      installed" line per node), both kernels at the same epoch;
#   2. the first connection a1 -> b1 is secured with no further handshake
#      and no key wait (the proactive session was enough);
#   3. cold peer (both kernels forget the secret): 100 concurrent connects
#      a1 -> b1 make exactly one more session and 100 secured flows (kTLS on
#      100 sockets, flows-secured +100); the wire of 2 and 3 on n1:eth0 is
#      TLS records only, no marker (tlswire);
#   4. n2's agent refuses to start with a certificate naming n3; then runs
#      with a certificate of another CA: the handshake is refused both ways
#      (UnknownIssuer in both logs), the connection a1 -> b1 fails closed
#      (reset-key-refused, the peer's state "failed" with the reason); then
#      an agent for n3 (right CA) listens at n2's address: n1 refuses it as
#      server (not valid for name n2) and as client (its SAN names no node
#      of n1's mapping), a1 -> b1 fails closed; then n2's agent runs with an
#      expired certificate (right CA and SAN): n1 refuses it (Expired in the
#      log and in `node show`), a1 -> b1 fails closed;
#   5. n2 back with its real certificate: a session; an established flow
#      survives kill -9 of n1's agent; a flow opened while it is dead waits
#      (on both kernels) and is served by the restarted agent, which found
#      it waiting (resync); new flows both ways work;
#   6. rotation under load: both agents restarted with an 8 s secret
#      lifetime; both nodes churn connections to each other's pod until the
#      epoch rose 20 times: no connection fails, no flow is reset, the secret
#      is never expired or failed, a flow established before keeps working,
#      the wire is TLS records only (issue 15);
#   7. one kernel serving two nodes: VM 1 also serves n3 with its own agent
#      (pair mode); n2's agent makes a session with each, and flows of both
#      pairs are secured both ways (issue 15).
# Prints `ok ...` lines; exits non-zero on the first failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/agent-lib.sh"
ok() { echo "ok   [$TN_NODE] $* (t=$((SECONDS - T0))s)"; }
T0=$SECONDS
INSTALLED="secret installed, epoch"
BURST=100   # concurrent connects to a cold peer
ROTATIONS=${TN_ROTATIONS:-20}

ok "start, VM up for $(cut -d" " -f1 /proc/uptime)s"
tn_setup
trap 'ag_stop KILL; topo_teardown' EXIT
load_module
tn_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null || fail "mapping load"
tlshubctl node local "$TN_NODE" || fail "node local $TN_NODE"
# Flows wait up to 30 s for a secret (a handshake under TCG on a busy host
# can take seconds); failures below are reported by the agents, not timed out.
tlshubctl timeout set 30000 || fail "timeout set"
AG_LOG=$TOPO_DIR/agent.log AG_PKI=$TLSHUB_SHARED/pki
# A peer agent that is (re)starting is retried this long: the two VMs start
# their agents at barriers, seconds apart on a busy host.
AG_RETRY=30
if [ "$TN_NODE" = n1 ]; then
    ag_pki "$AG_PKI"
    tn_put pki ready
else
    tn_get pki >/dev/null
fi
app_echo_server "$TN_POD" 7000
tn_barrier ready
ok "certificates made (openssl), echo server up, no secret anywhere"

# 1. Both agents at once: one session.
ag_start
ag_wait "$INSTALLED" 1 240 || fail "no session with $TN_PEER"
tn_barrier started
sleep 3   # a second session, if there were one, would have ended by now
expect_eq "sessions after start" 1 "$(ag_count "$INSTALLED")"
expect_eq "peer state" established "$(ag_peer state)"
epoch=$(ag_peer epoch)
tn_put "epoch.$TN_NODE" "$epoch"
expect_eq "epoch on both kernels" "$epoch" "$(tn_get "epoch.$TN_PEER")"
ok "both agents up: one session, epoch $epoch on both kernels"
tn_barrier one

# 2. + 3. with the wire captured on n1.
pcap=$TOPO_DIR/wire.pcap
if [ "$TN_NODE" = n1 ]; then
    capture_start node eth0 "$pcap" tcp
    kw0=$(ag_stat key_waits)
    m=$(new_marker)
    expect_eq "a1 -> b1 echo (first connection)" "$m-first" "$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m-first")"
    expect_eq "key waits for the first connection" "$kw0" "$(ag_stat key_waits)"
    expect_eq "sessions after the first connection" 1 "$(ag_count "$INSTALLED")"
    ok "first connection a1 -> b1 secured: no key wait, still one session"
fi
tn_barrier first

tlshubctl node del "$TN_PEER" || fail "node del $TN_PEER"
expect_eq "peer state after node del" - "$(ag_peer epoch)"
tn_barrier cold
if [ "$TN_NODE" = n1 ]; then
    s0=$(ag_stat flows_secured) tx0=$(tls_stat a1 TlsTxSw) kw0=$(ag_stat key_waits)
    # One process, a thread per connection, all connecting at once (a
    # process each cost about a second of this VM's one CPU apiece).
    pod_exec a1 python3 -c '
import socket, sys, threading
host, m, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
got = {}
def one(i):
    try:
        with socket.create_connection((host, 7000), timeout=120) as c:
            c.sendall(f"{m}-c{i}\n".encode())
            got[i] = c.makefile().readline().rstrip("\n")
    except OSError as e:
        got[i] = f"error: {e}"
ts = [threading.Thread(target=one, args=(i,)) for i in range(1, n + 1)]
for t in ts: t.start()
for t in ts: t.join()
for i in range(1, n + 1): print(i, got.get(i, "none"))
' "$(tn_ip4 b1)" "$m" "$BURST" > "$TOPO_DIR/burst.out" 2>&1 || fail "burst: $(tail -n 5 "$TOPO_DIR/burst.out")"
    for i in $(seq "$BURST"); do
        expect_eq "concurrent echo $i" "$i $m-c$i" "$(sed -n "${i}p" "$TOPO_DIR/burst.out")"
    done
    s=$(ag_stat flows_secured) tx=$(tls_stat a1 TlsTxSw)
    expect_eq "flows secured by the burst" "$BURST" $((s - s0))
    expect_eq "kTLS TX sockets in a1 from the burst" "$BURST" $((tx - tx0))
    [ "$(ag_stat key_waits)" -gt "$kw0" ] || fail "the burst never waited for a key: the peer was not cold"
    capture_stop
    out=$(tlswire "$pcap" --expect tls --host "$(tn_ip4 a1)" --min-conns $((BURST + 1)) --marker "$m-first" \
          $(for i in $(seq "$BURST"); do echo --marker "$m-c$i"; done)) \
        || { echo "$out"; fail "agent-keyed flows are not TLS-only on the wire"; }
    echo "$out" | sed 's/^/    /'
    ok "cold peer: $BURST concurrent connects secured, wire (n1:eth0) TLS records only, no marker"
fi
tn_barrier burst
sleep 2
expect_eq "sessions after the burst (exactly one more)" 2 "$(ag_count "$INSTALLED")"
grep -E "joined|busy|stale" "$AG_LOG" | tail -n 3 | sed 's/^/    /' || true
ok "cold peer: exactly one more session on $TN_NODE"
tn_barrier burst-checked

# 4. Wrong SAN, wrong CA.
if [ "$TN_NODE" = n2 ]; then
    ag_stop
    if out=$(timeout 20 tlshubd --node n2 --cert "$AG_PKI/evil-n2.pem" --key "$AG_PKI/evil-n2.key" \
            --ca "$AG_PKI/ca.pem" --mapping "$TOPO_DIR/mapping.conf" 2>&1); then
        fail "tlshubd started with a certificate naming n3: $out"
    fi
    expect_contains "tlshubd with a certificate for n3" "does not name this node" "$out"
    ok "tlshubd refuses a certificate whose SAN is not this node: $out"
    ag_start "$AG_PKI/rogue-n2.pem" "$AG_PKI/rogue-ca.pem"
fi
tlshubctl node del "$TN_PEER" || fail "node del $TN_PEER"
r0=$(ag_stat reset_key_refused)
tn_barrier rogue
if [ "$TN_NODE" = n1 ]; then
    f0=$(ag_count "FAILED")
    if out=$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m-rogue" 2>&1); then
        fail "a1 -> b1 worked with n2's agent from another CA: '$out'"
    fi
    # The flow may be reset from n2's end (its agent failed first) before
    # this agent's session has failed and said so: wait for the line.
    ag_wait "FAILED" $((f0 + 1)) 30 || fail "no FAILED session in the log"
    grep -q "session with n2 FAILED: .*UnknownIssuer" "$AG_LOG" || fail "the log does not say why (UnknownIssuer)"
    expect_eq "peer state" failed "$(ag_peer state)"
    grep "FAILED" "$AG_LOG" | tail -n 1 | sed 's/^/    /'
    tlshubctl node show | sed 's/^/    /'
    ok "n2 with another CA's certificate: handshake refused, a1 -> b1 failed closed (reset-key-refused)"
fi
tn_barrier rogue-client
# The flow's two ends wait on both kernels; whichever agent fails first
# resets its end (key-refused), the other end then sees the RST.
tn_put "refused.$TN_NODE" $(($(ag_stat reset_key_refused) - r0))
if [ "$TN_NODE" = n1 ]; then
    refused=$(($(tn_get refused.n1) + $(tn_get refused.n2)))
    [ "$refused" -ge 1 ] || fail "reset-key-refused rose on neither kernel"
    ok "reset-key-refused: +$(tn_get refused.n1) on n1, +$(tn_get refused.n2) on n2"
fi
if [ "$TN_NODE" = n2 ]; then
    wait_log "$AG_LOG" "UnknownIssuer" 120 || fail "n2's (rogue) agent log does not say why"
    grep "UnknownIssuer" "$AG_LOG" | tail -n 1 | sed 's/^/    /'
    ok "n2's agent (other CA) logs the refusal: UnknownIssuer"
    ag_stop
    # At n2's address, an agent whose certificate (of the right CA) names n3.
    printf 'node n1 192.168.100.1\nnode n3 192.168.100.2\n' > "$TOPO_DIR/evil.conf"
    AG_NODE=n3 AG_MAPPING=$TOPO_DIR/evil.conf AG_LISTEN=192.168.100.2:7443 \
        ag_start "$AG_PKI/evil-n2.pem" "$AG_PKI/ca.pem"
fi
tn_barrier evil
if [ "$TN_NODE" = n1 ]; then
    v0=$(ag_count "not valid for name")
    if out=$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m-evil" 2>&1); then
        fail "a1 -> b1 worked with an agent named n3 at n2's address: '$out'"
    fi
    ag_wait "not valid for name" $((v0 + 1)) 60 || fail "the log does not say the server is not n2"
    grep "not valid for name" "$AG_LOG" | tail -n 1 | sed 's/^/    /'
    ag_wait "SAN names no node of the mapping" 1 120 || fail "n1 did not refuse n3's client certificate"
    grep "SAN names no node of the mapping" "$AG_LOG" | tail -n 1 | sed 's/^/    /'
    expect_eq "peer state" failed "$(ag_peer state)"
    ok "wrong SAN: the server at n2's address is n3 (refused as client), n3's client certificate refused as server; a1 -> b1 failed closed"
fi
tn_barrier evil-checked
if [ "$TN_NODE" = n2 ]; then
    ag_stop
    ag_start "$AG_PKI/expired-n2.pem" "$AG_PKI/ca.pem"
fi
tn_barrier expired
if [ "$TN_NODE" = n1 ]; then
    x0=$(ag_count "Expired")
    if out=$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m-expired" 2>&1); then
        fail "a1 -> b1 worked with n2's agent on an expired certificate: '$out'"
    fi
    ag_wait "Expired" $((x0 + 1)) 60 || fail "the log does not say n2's certificate expired"
    grep "Expired" "$AG_LOG" | tail -n 1 | sed 's/^/    /'
    expect_eq "peer state" failed "$(ag_peer state)"
    expect_contains "node show names the reason" "Expired" "$(tlshubctl node show)"
    ok "expired certificate (right CA and SAN): n1 refuses the handshake, node show says Expired, a1 -> b1 failed closed"
fi
tn_barrier expired-checked
if [ "$TN_NODE" = n2 ]; then
    ag_stop
    ag_start
fi

# 5. n2 back; kill -9 n1's agent under an established flow; restart.
ag_wait "$INSTALLED" 3 240 || fail "no session after n2's agent came back"
tn_barrier healed
tlshubctl timeout set 60000 || fail "timeout set"
tn_barrier long-timeout
if [ "$TN_NODE" = n1 ]; then
    d=$TOPO_DIR/long; mkdir -m 777 "$d"
    pod_bg a1 bash -c 'exec 3<>"/dev/tcp/$1/7000" || exit 1
        printf "%s\n" "$2-l1" >&3; IFS= read -r -t 60 l <&3 || exit 1; printf "%s\n" "$l" > "$3/l1"
        while [ ! -e "$3/go" ]; do sleep 0.2; done
        printf "%s\n" "$2-l2" >&3; IFS= read -r -t 60 l <&3 || exit 1; printf "%s\n" "$l" > "$3/l2"' \
        _ "$(tn_ip4 b1)" "$m" "$d"
    wait_log "$d/l1" "$m-l1" 60 || fail "long-lived flow: no first echo"
    pid=$AG_PID
    ag_stop KILL
    ! kill -0 "$pid" 2>/dev/null || fail "tlshubd survived kill -9"
    : > "$d/go"
    wait_log "$d/l2" "$m-l2" 60 || fail "the established flow stopped working when the agent died"
    ok "agent killed (-9): the established flow keeps working"
    # A flow that waits (both kernels forget the secret) while no agent runs here.
    tlshubctl node del n2 || fail "node del n2"
    tn_put forgot yes
    tn_get forgot2 >/dev/null
    tn_echo a1 "$(tn_ip4 b1)" 7000 "$m-waiting" > "$d/waiting.out" 2>&1 & wpid=$!
    wait_for 30 eval '[ "$(ag_peer pending)" -ge 1 ]' || fail "the flow does not wait for a secret"
    ag_start
    wait "$wpid" || fail "the flow waiting across the restart failed: $(cat "$d/waiting.out")"
    expect_eq "flow waiting across the restart" "$m-waiting" "$(cat "$d/waiting.out")"
    grep -q "flow(s) waiting for peer n2" "$AG_LOG" || fail "the restarted agent did not see the waiting flow"
    grep "flow(s) waiting for peer n2" "$AG_LOG" | tail -n 1 | sed 's/^/    /'
    expect_eq "a1 -> b1 after restart" "$m-after" "$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m-after")"
    ok "agent restarted: it served the flow that waited, new flows work"
else
    tn_get forgot >/dev/null
    tlshubctl node del n1 || fail "node del n1"
    tn_put forgot2 yes
fi
tn_barrier restarted
if [ "$TN_NODE" = n2 ]; then
    m2=$(new_marker)
    expect_eq "b1 -> a1 after n1's restart" "$m2-back" "$(tn_echo b1 "$(tn_ip4 a1)" 7000 "$m2-back")"
    ok "b1 -> a1 works after n1's agent restart"
fi
tn_barrier back

# 6. Rotation under load (issue 15): an 8 s secret lifetime, so the leader
#    renews about every 5.3 s. Both nodes churn connections to the other's
#    pod at once (both directions) until the epoch rose by ROTATIONS; every
#    connection must succeed, no flow may be reset for its keys, the secret
#    is never expired or failed on the way, a flow established before keeps
#    working, and the wire is TLS records only.
ag_stop
AG_LIFETIME=8 ag_start
ag_wait "$INSTALLED" $(($(ag_count "$INSTALLED") + 1)) 240 || fail "no session with an 8 s lifetime"
pod_bg "$TN_POD" python3 "$TOPO_LIB_DIR/dpapp.py" server 7600 > "$TOPO_DIR/churn-server.log" 2>&1
pod_wait_listen "$TN_POD" 7600
# The wire of about one connection in 8 is captured, whole, through every
# rotation: those whose client port is 6 mod 16 (connect() takes even
# ports); the kernel's filter drops the rest, as tcpdump cannot keep up
# with all of the churn under TCG.
if [ "$TN_NODE" = n1 ]; then
    CAPTURE_SNAPLEN=1024 capture_start node eth0 "$TOPO_DIR/rotation.pcap" \
        "tcp port 7600 and ((tcp[0:2] & 15) = 6 or (tcp[2:2] & 15) = 6)"
fi
m=$(new_marker)
tn_put "marker-$TN_NODE" "$m"
tn_barrier rotation
d=$TOPO_DIR/renew; mkdir -m 777 "$d"
pod_bg "$TN_POD" bash -c 'exec 3<>"/dev/tcp/$1/7000" || exit 1
    printf "%s\n" "$2-r1" >&3; IFS= read -r -t 60 l <&3 || exit 1; printf "%s\n" "$l" > "$3/r1"
    while [ ! -e "$3/go" ]; do sleep 0.2; done
    printf "%s\n" "$2-r2" >&3; IFS= read -r -t 60 l <&3 || exit 1; printf "%s\n" "$l" > "$3/r2"' \
    _ "$(tn_ip4 "$TN_RPOD")" "$m-$TN_NODE" "$d"
wait_log "$d/r1" "$m-$TN_NODE-r1" 60 || fail "rotation: the held flow did not echo"
resets() { tlshubctl status --json | jq '[.stats | to_entries[] | select(.key | startswith("reset_")) | .value] | add'; }
r0=$(resets) e0=$(ag_peer epoch) end=$((SECONDS + 300)) states=
: > "$d/churning"
pod_bg "$TN_POD" python3 "$TOPO_LIB_DIR/dpapp.py" churn "$(tn_ip4 "$TN_RPOD")" 7600 --marker "$m-churn" \
    --while-file "$d/churning" --threads 4 > "$TOPO_DIR/churn.log" 2>&1
churn=$BG_PID
until [ "$(ag_peer epoch)" != - ] && [ "$(ag_peer epoch)" -ge $((e0 + ROTATIONS)) ]; do
    [ $SECONDS -lt $end ] || { rm -f "$d/churning"; fail "the epoch went from $e0 to $(ag_peer epoch) in 300 s (lifetime 8 s)"; }
    states+=" $(ag_peer state)"; sleep 0.5
done
rm -f "$d/churning"
wait "$churn" || fail "rotation: connections failed under rotation: $(cat "$TOPO_DIR/churn.log")"
tn_say "$(tail -n 1 "$TOPO_DIR/churn.log")"
[[ $states != *expired* && $states != *waiting* && $states != *failed* ]] \
    || fail "the secret was not always established while rotating:$states"
[ "$(resets)" = "$r0" ] || fail "rotation: flows were reset ($r0 -> $(resets)): $(tlshubctl status | grep reset)"
: > "$d/go"
wait_log "$d/r2" "$m-$TN_NODE-r2" 60 || fail "the flow established before the rotations stopped working"
tn_barrier rotated
if [ "$TN_NODE" = n1 ]; then
    capture_stop
    [ "$CAPTURE_DROPPED" = 0 ] || fail "rotation: the capture dropped $CAPTURE_DROPPED packets"
    out=$(tlswire "$TOPO_DIR/rotation.pcap" --expect tls --port 7600 --min-conns 30 --marker "$m" \
        --marker "$(tn_get marker-n2)") \
        || { echo "$out"; fail "rotation: the wire is not TLS-only"; }
fi
tlshubctl node show | sed 's/^/    /'
ok "$ROTATIONS rotations (epoch $e0 -> $(ag_peer epoch), 8 s lifetime) under churn both ways: $(tail -n 1 "$TOPO_DIR/churn.log" | sed 's/^CHURN //'), no reset, always established, the older flow works$([ "$TN_NODE" = n1 ] && echo ", wire (1 connection in 8) TLS-only")"
tn_barrier renewed

# 7. One kernel serving two nodes, an agent each (issue 15): VM 1 also
#    serves n3 (pod c1; its agent at 192.168.100.1:7446 with a certificate
#    for n3). Each agent on VM 1 keeps its own node's pair secrets (n1+n2,
#    n3+n2); n2's agent makes one session with each; both pairs carry
#    secured flows both ways.
ag_stop
map3=$TOPO_DIR/mapping3.conf
tn_third_node "$map3"
tn_barrier three-nodes
AG_MAPPING=$map3 ag_start
if [ "$TN_NODE" = n1 ]; then
    echo "=== tlshubd n3" > "$TOPO_DIR/agent-n3.log"
    tlshubd --node n3 --cert "$AG_PKI/evil-n2.pem" --key "$AG_PKI/evil-n2.key" --ca "$AG_PKI/ca.pem" \
        --mapping "$map3" --connect-retry 30 >> "$TOPO_DIR/agent-n3.log" 2>&1 &
    ag3=$!
    wait_log "$TOPO_DIR/agent-n3.log" "secrets per node pair" 180 \
        || fail "n3's agent did not start in pair mode: $(cat "$TOPO_DIR/agent-n3.log")"
fi
pair_up() {
    tlshubctl node show --json | jq -e --arg n "$1" --arg l "$2" \
        '[.[] | select(.state == "established" and ((.name == $n and (.local // "") == $l) or (.name == $l and .local == $n)))] | length > 0' >/dev/null
}
if [ "$TN_NODE" = n1 ]; then
    wait_for 120 pair_up n2 n1 && wait_for 120 pair_up n2 n3 \
        || fail "VM 1 lacks a pair secret: $(tlshubctl node show)"
else
    wait_for 120 pair_up n1 "" && wait_for 120 pair_up n3 "" \
        || fail "VM 2 lacks a peer secret: $(tlshubctl node show)"
fi
tn_barrier pairs
m7=$(new_marker)
if [ "$TN_NODE" = n1 ]; then
    expect_eq "a1 -> b1 (pair {n1, n2})" "$m7-a1" "$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m7-a1")"
    expect_eq "c1 -> b1 (pair {n3, n2})" "$m7-c1" "$(tn_echo c1 "$(tn_ip4 b1)" 7000 "$m7-c1")"
    [ "$(tls_stat c1 TlsTxSw)" -ge 1 ] || fail "c1's flow is not on kTLS"
else
    expect_eq "b1 -> c1 (pair {n3, n2})" "$m7-b1c1" "$(tn_echo b1 "$(tn_ip4 c1)" 7000 "$m7-b1c1")"
    expect_eq "b1 -> a1 (pair {n1, n2})" "$m7-b1a1" "$(tn_echo b1 "$(tn_ip4 a1)" 7000 "$m7-b1a1")"
fi
tlshubctl node show | sed 's/^/    /'
ok "one kernel serving n1 and n3, an agent each: pair secrets n1+n2 and n3+n2 made by sessions with n2's agent; both pairs secured both ways"
tn_barrier pairs-done
[ "$TN_NODE" != n1 ] || { kill "$ag3"; wait "$ag3" 2>/dev/null || true; }
tlshubctl status | sed 's/^/    /'
tlshubctl node show | sed 's/^/    /'
grep -c "$INSTALLED" "$AG_LOG" | sed 's/^/    sessions installed here: /'
ag_stop
topo_teardown
unload_module
kmemleak_check
ok "agent stopped, rmmod, no kmemleak report from tlshub"
