#!/usr/bin/env bash
# The agents under a hostile pod network (issue 17, review-agent H1/M1/M3):
# scripts/two-node tests/two-node/hostile.sh runs this in both VMs. On each
# node an unprivileged pod (a1 on n1, b1 on n2; uid 65534) floods the other
# node's agent port and both worker ports with FLOOD connections each (a
# third silent, a third garbage, a third a TLS record trickled a byte every
# 2 s; each one the server closes is opened again, 5/s per port), for the
# whole test. Meanwhile, with a 12 s secret lifetime:
#   1. the agents renew the pair's secret twice;
#   2. both agents are restarted at once: a new session within 30 s, and
#      flows secured both ways after it (a1 -> b1 and b1 -> a1);
#   3. n1's certificate and key files are replaced while its agent runs
#      (atomically, as cert-manager does): first by an expired certificate,
#      which n2's agent then refuses (Expired), then by a valid one, after
#      which a session is made and a1 -> b1 is secured, with no restart;
#   4. through it all the agent's and each worker's threads and open files
#      stay within fixed bounds of their idle counts (the attacker's one
#      address may hold 8 of a worker's slots, none of the agent's); the
#      agent closes the pod's connections before TLS (not a node of the
#      mapping) and never starts a handshake with one; refusals (the
#      agent's, the workers' per-source limit, the workers' refused
#      handshakes) are logged at most once per 10 s each.
# Prints `ok ...` lines; exits non-zero on the first failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/agent-lib.sh"
ok() { echo "ok   [$TN_NODE] $* (t=$((SECONDS - T0))s)"; }
T0=$SECONDS
INSTALLED="secret installed, epoch"
FLOOD=${TN_FLOOD:-100}      # connections per port
AGENT_PORT=7443             # the mapping's default; workers listen on +1, +2
# Bounds over the idle counts (the attacker's one address may hold 8 of a
# worker's slots; the agent admits none of its connections).
AGENT_EXTRA=12 WORKER_EXTRA=32

ok "start, VM up for $(cut -d" " -f1 /proc/uptime)s"
tn_setup
trap 'touch "$TOPO_DIR/flood.stop" 2>/dev/null || true; ag_stop KILL; topo_teardown' EXIT
load_module
tn_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null || fail "mapping load"
tlshubctl node local "$TN_NODE" || fail "node local $TN_NODE"
tlshubctl timeout set 30000 || fail "timeout set"
AG_LOG=$TOPO_DIR/agent.log AG_PKI=$TLSHUB_SHARED/pki AG_RETRY=30 AG_LIFETIME=12
if [ "$TN_NODE" = n1 ]; then
    ag_pki "$AG_PKI"
    _ag_leaf "$AG_PKI/expired-n1" "$AG_PKI/ca" n1 -1
    chmod 644 "$AG_PKI"/*.key
    tn_put pki ready
else
    tn_get pki >/dev/null
fi
# The identity files the agent runs from; step 3 replaces them in place.
id=$TOPO_DIR/id
mkdir -p "$id"
cp "$AG_PKI/$TN_NODE.pem" "$id/node.pem"
cp "$AG_PKI/$TN_NODE.key" "$id/node.key"
replace_identity() {  # SRC (without .pem/.key): new files renamed over the old
    cp "$1.pem" "$id/.node.pem.new" && cp "$1.key" "$id/.node.key.new"
    mv "$id/.node.key.new" "$id/node.key" && mv "$id/.node.pem.new" "$id/node.pem"
}
app_echo_server "$TN_POD" 7000
tn_barrier ready

ag_start "$id/node.pem"
ag_wait "$INSTALLED" 1 240 || fail "no session with $TN_PEER"
tn_barrier started
ok "agents up (with both workers), one session"

# Idle counts of the agent and each worker (threads, open files), and the
# highest seen at the sample points; by role, so a restarted agent and its
# new workers are held to the same bounds.
pid_of() {
    case $1 in
        agent) echo "$AG_PID" ;;
        *) pgrep -f "tlshub-worker-$1" | head -n 1 ;;
    esac
}
threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
files() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
ROLES="agent openssl boring"
declare -A BASE_T BASE_F MAX_T MAX_F
for r in $ROLES; do
    p=$(pid_of $r)
    [ -n "$p" ] || fail "no $r process (the agent starts both workers)"
    BASE_T[$r]=$(threads "$p") BASE_F[$r]=$(files "$p") MAX_T[$r]=0 MAX_F[$r]=0
done
bounded() {  # WHEN: sample, and fail if a count went past its bound
    local r p t f extra
    for r in $ROLES; do
        p=$(pid_of $r)
        [ -n "$p" ] || fail "$1: no $r process"
        t=$(threads "$p") f=$(files "$p")
        [ "$t" -le "${MAX_T[$r]}" ] || MAX_T[$r]=$t
        [ "$f" -le "${MAX_F[$r]}" ] || MAX_F[$r]=$f
        extra=$WORKER_EXTRA
        [ $r != agent ] || extra=$AGENT_EXTRA
        [ "$t" -le $((BASE_T[$r] + extra)) ] || fail "$1: $r (pid $p) has $t threads, ${BASE_T[$r]} idle"
        [ "$f" -le $((BASE_F[$r] + extra)) ] || fail "$1: $r (pid $p) has $f open files, ${BASE_F[$r]} idle"
    done
}

AG_PID0=$AG_PID

# The flood: from this node's pod to the other node's address.
peer_addr=192.168.100.$((3 - TLSHUB_NODE))
ports=$AGENT_PORT,$((AGENT_PORT + 1)),$((AGENT_PORT + 2))
pod_bg "$TN_POD" python3 "$TN_DIR/flood.py" "$peer_addr" "$ports" "$FLOOD" 900 "$TOPO_DIR/flood.stop" \
    > "$TOPO_DIR/flood.out" 2> "$TOPO_DIR/flood.err"
FLOOD_PID=$BG_PID
sleep 5
kill -0 "$FLOOD_PID" 2>/dev/null || fail "the flood ended early: $(cat "$TOPO_DIR/flood.err")"
bounded "flood started"
ok "flood: pod $TN_POD (uid 65534) -> $peer_addr ports $ports, $FLOOD connections each"
tn_barrier flooding

secured_both_ways() {  # WHAT: a1 -> b1 from n1 and b1 -> a1 from n2, at once
    local m s0
    m=$(new_marker)
    s0=$(ag_stat flows_secured)
    expect_eq "$1: $TN_POD -> $TN_RPOD echo" "$m" "$(tn_echo "$TN_POD" "$(tn_ip4 "$TN_RPOD")" 7000 "$m")"
    tn_put "$1.$TN_NODE" done
    tn_get "$1.$TN_PEER" >/dev/null
    [ "$(ag_stat flows_secured)" -ge $((s0 + 2)) ] || fail "$1: not both ends of two flows secured here"
}

# 1. Renewals under the flood.
e0=$(ag_peer epoch)
renewed() { local e; e=$(ag_peer epoch); [ "$e" != - ] && [ "$e" -ge $((e0 + 2)) ]; }
wait_for 90 renewed || fail "the secret was not renewed twice under the flood (epoch $e0 -> $(ag_peer epoch))"
bounded "renewals"
ok "two renewals under the flood (epoch $e0 -> $(ag_peer epoch))"

# 2. Both agents restarted at once under the flood: a session within 30 s.
tn_barrier restart
bounded "before the restart"
n0=$(ag_count "$INSTALLED")
ag_stop
t0=$SECONDS
ag_start "$id/node.pem"
ag_wait "$INSTALLED" $((n0 + 1)) 30 || fail "no session within 30 s of the restart under the flood"
AG_PID0=$AG_PID
ok "agent restarted under the flood (both at once): a session $((SECONDS - t0))s after its start"
secured_both_ways restart
bounded "after the restart"
ok "after the restart: flows secured both ways"

# 3. n1's identity files replaced while it runs: an expired certificate
# (refused by n2), then a valid one (a session), no restart.
tn_barrier identity
if [ "$TN_NODE" = n1 ]; then
    r0=$(ag_count "identity re-read")
    replace_identity "$AG_PKI/expired-n1"
    ag_wait "identity re-read" $((r0 + 1)) 30 || fail "the replaced identity files were not re-read"
    tn_put expired-n1 installed
    tn_get n2-refused 120 >/dev/null
    ok "expired certificate picked up without a restart; n2's agent refuses it"
    n0=$(ag_count "$INSTALLED")
    replace_identity "$AG_PKI/n1"
    ag_wait "identity re-read" $((r0 + 2)) 30 || fail "the valid identity files were not re-read"
    t0=$SECONDS
    # A flow asks for the secret at once if it expired meanwhile; a renewal
    # retry makes the session otherwise.
    m=$(new_marker)
    expect_eq "a1 -> b1 after the valid identity" "$m" "$(tn_echo a1 "$(tn_ip4 b1)" 7000 "$m")"
    ag_wait "$INSTALLED" $((n0 + 1)) 60 || fail "no session after the valid identity was put back"
    ok "valid certificate put back in place: a session $((SECONDS - t0))s later, a1 -> b1 secured, same agent (pid $AG_PID)"
    [ "$AG_PID" = "$AG_PID0" ] || fail "the agent was restarted"
    tn_put identity-done yes
else
    tn_get expired-n1 >/dev/null
    x0=$(ag_count "Expired")
    # n2's renewals (or n1's) meet the expired certificate.
    ag_wait "Expired" $((x0 + 1)) 90 || fail "n2's agent did not refuse n1's expired certificate"
    grep "Expired" "$AG_LOG" | tail -n 1 | sed 's/^/    /'
    tn_put n2-refused yes
    tn_get identity-done 180 >/dev/null
fi
secured_both_ways identity
bounded "identity replaced"
ok "identity files replaced while running: expired refused by the peer, valid one used, no restart"

# 4. The flood's view, and the refusal log lines.
tn_barrier flood-end
touch "$TOPO_DIR/flood.stop"
wait "$FLOOD_PID" || fail "flood: $(cat "$TOPO_DIR/flood.err")"
sed 's/^/    /' "$TOPO_DIR/flood.out"
stat_of() { jq -r --argjson p "$1" "select(.port == \$p) | .$2" "$TOPO_DIR/flood.out"; }
for p in ${ports//,/ }; do
    [ "$(stat_of "$p" opened)" -ge "$FLOOD" ] || fail "flood: only $(stat_of "$p" opened) connections to port $p"
    [ "$(stat_of "$p" closed)" -gt 0 ] || fail "flood: port $p never closed a connection"
done
tn_put "flood-read.$TN_NODE" yes
tn_get "flood-read.$TN_PEER" >/dev/null
# This node's agent saw the peer's flood: it closed the pod's connections
# before TLS and never started a handshake with one; each kind of refusal
# line at most once per 10 s (+1 for the restart, +1 slack).
lines=$(ag_count "before TLS since the last such line")
[ "$lines" -ge 1 ] || fail "no refusal line in the agent log"
grep -q "before TLS since the last such line; this one from $(tn_ip4 "$TN_RPOD"): not a node of the mapping" "$AG_LOG" ||
    fail "the agent did not refuse $(tn_ip4 "$TN_RPOD") as no node of the mapping"
if grep -E "connection from $(tn_ip4 "$TN_RPOD")[^0-9]" "$AG_LOG" | head -n 3 | grep .; then
    fail "the agent started TLS with the pod's connections"
fi
limit=$(( (SECONDS - T0) / 10 + 2 ))
for what in "before TLS since the last such line" "openssl worker refused a handshake" "boringssl worker refused a handshake"; do
    n=$(ag_count "$what")
    [ "$n" -le "$limit" ] || fail "$n lines '$what' in $((SECONDS - T0)) s: not rate-limited"
done
grep -E "before TLS since the last such line|worker refused a handshake|over the connection limits" "$AG_LOG" | tail -n 3 | sed 's/^/    /'
bounded "the end"
for r in $ROLES; do
    echo "    $r: threads ${BASE_T[$r]} idle, ${MAX_T[$r]} at most; open files ${BASE_F[$r]} idle, ${MAX_F[$r]} at most"
done
ok "flood: the agent refused the pod before TLS, refusal lines rate-limited, threads and files bounded"
tn_barrier done
ag_stop
ok "agents stopped"
