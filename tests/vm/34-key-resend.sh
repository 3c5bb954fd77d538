# A key request whose event was lost is sent again while flows wait
# (review M5). With no agent listening, the first key-request event for a
# peer goes nowhere (ESRCH); connections keep arriving faster than the key
# timeout, so the wait list never drains. Before the fix no request was
# ever sent again: every later connection waited out its timeout and was
# reset, even once an agent listened. Now:
# - a listener started after the first (lost) request sees key-request
#   events for both peers within a few seconds, while flows still wait;
# - the `key-resends` counter rises;
# - answering the resent request (setting the secrets, as an agent would)
#   secures the flows that were waiting: the connection that was open
#   when the answer came completes its echo, TLS-only on the wire.
. ./lib.sh
. ./pods.sh
EV_PID=
fail() { [ -z "$EV_PID" ] || kill "$EV_PID" 2>/dev/null || true; dp_fail "$@"; }

dp_setup
tlshubctl timeout set 9000 >/dev/null
m=$(new_marker)
v4=$(pod_ip4 b1)
pod_bg b1 python3 dpapp.py server 7500 >"$TOPO_DIR/server.log" 2>&1
pod_wait_listen b1 7500
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
before=$(tlshubctl status --json)

# Connections every 0.7 s, each waiting for keys (no agent, no secret).
# The first one's key requests are lost: nobody listens yet.
(for i in $(seq 1 30); do
    pod_exec a1 python3 dpapp.py probe "$v4" 7500 --expect fail --marker "$m-early" --timeout 20 \
        >>"$TOPO_DIR/early.log" 2>&1 &
    sleep 0.7
done; wait) &
loop=$!
kw() { [ "$(tlshubctl flows --json | jq '[.[] | select(.state == "key-wait")] | length')" -ge 2 ]; }
wait_for 90 kw || fail "no flows waiting for keys: $(tlshubctl flows)"
sleep 1.5
tlshubctl -v events >"$TOPO_DIR/events.log" 2>"$TOPO_DIR/events.err" &
EV_PID=$!
wait_has() { local end=$((SECONDS + $1)); until grep -q "$3" "$2" 2>/dev/null; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }
wait_has 60 "$TOPO_DIR/events.err" "<- family" || fail "tlshubctl events did not start: $(cat "$TOPO_DIR/events.err")"
ok "flows wait for keys; the first key requests went out with nobody listening; a listener joins"

wait_has 20 "$TOPO_DIR/events.log" "key-request node=n2 local=n1" || fail "no key-request for n2 within 20 s of the listener joining"
wait_has 20 "$TOPO_DIR/events.log" "key-request node=n1 local=n2" || fail "no key-request for n1 within 20 s of the listener joining"
resends() { echo $(( $(stat_of "$(tlshubctl status --json)" key_resends) - $(stat_of "$before" key_resends) )); }
rs2() { [ "$(resends)" -ge 2 ]; }
wait_for 20 rs2 || fail "key-resends rose by $(resends), expected >= 2 (unanswered requests sent again)"
resends=$(resends)
ok "the listener got key-request events for both peers while flows waited (key-resends +$resends)"

# Answer as an agent would: a connection waiting right now completes.
pod_bg a1 python3 dpapp.py probe "$v4" 7500 --expect ok --marker "$m-late" --timeout 30 >"$TOPO_DIR/late.log" 2>&1
late=$BG_PID
wait_has 30 "$TOPO_DIR/late.log" "CONNECTED" || fail "the late connection did not connect"
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
wait "$late" || fail "the connection waiting when the secrets came did not complete: $(cat "$TOPO_DIR/late.log")"
ok "answered: the waiting connection was secured and echoed"
kill "$EV_PID" 2>/dev/null || true; wait "$EV_PID" 2>/dev/null || true; EV_PID=
wait "$loop" 2>/dev/null || true

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets"
out=$(tlswire "$pcap" --expect tls --port 7500 --min-conns 1 --marker "$m-early" --marker "$m-late") \
    || { echo "$out"; fail "the wire is not TLS-only"; }
echo "$out" | tail -1
ok "wire (link1): TLS records only, no marker"

topo_teardown
unload_module
