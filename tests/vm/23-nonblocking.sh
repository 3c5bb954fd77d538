# Non-blocking apps see plain TCP semantics on secured flows, with no busy
# loop while keys are pending. A python epoll server on b1 (dpapp.py
# server --epoll: non-blocking accept, then sends a greeting at once) and
# python clients on a1 (dpapp.py nbclient) that connect and send a
# marker-bearing message at once, level-triggered and edge-triggered epoll
# loops and a blocking client, IPv4 and IPv6:
# - with the node-pair secret set: everything goes through;
# - with no secret (`tlshubctl node del n1` / `n2`) until the test sets it
#   again 2 s after the clients said they wait: the non-blocking clients and
#   the server get EAGAIN and no readiness (no EPOLLOUT/EPOLLIN that turns
#   out to be EAGAIN, at most 4 epoll wakeups, thread CPU time while
#   waiting under 1 s of a wait of several: no spin), the blocking client's send blocks, and
#   all complete once the secret is set (the install wakes level- and
#   edge-triggered waiters). key-waits and key-requests rise and
#   `tlshubctl events` prints the key requests of both ends.
# The wire (link1) carries TLS records only, no marker.
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $* [${SECONDS}s]"; }

# wait_has SECS FILE STRING: until a line of FILE contains STRING (builtins only).
_has() { local l; [ -r "$1" ] || return 1; while IFS= read -r l || [ -n "$l" ]; do [[ $l != *"$2"* ]] || return 0; done < "$1"; return 1; }
wait_has() { local end=$((SECONDS + $1)); until _has "$2" "$3"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }
# count_has FILE STRING: how many lines of FILE contain STRING.
count_has() { local l n=0; while IFS= read -r l || [ -n "$l" ]; do [[ $l != *"$2"* ]] || n=$((n + 1)); done < "$1"; echo $n; }
stat_of() { jq -r --arg k "$2" '.stats[$k]' <<<"$1"; }

EV_PID=
diag() {
    local f
    for f in "$TOPO_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    tlshubctl status | grep -v ': 0$'; tlshubctl node show; tlshubctl flows; dmesg | tail -n 20
}
fail() {
    trap - EXIT; diag >&2 || true; echo "FAIL: $*" >&2
    [ -z "$EV_PID" ] || kill "$EV_PID" 2>/dev/null
    topo_teardown; exit 1
}

dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
# Far beyond the waits below (a reset is 25-fail-closed's subject).
tlshubctl timeout set 600000
ok "module serves n1 and n2, one secret for the pair, key timeout 600 s"

m=$(new_marker)
srv=$TOPO_DIR/server.log
pod_bg b1 python3 dpapp.py server 7100 --epoll --greet "$m-greet" >"$srv" 2>&1
wait_has 60 "$srv" "listening on" || fail "server did not start"
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
v4=$(pod_ip4 b1) v6=$(pod_ip6 b1)

# 1. Keys present.
out=$(pod_exec a1 python3 dpapp.py nbclient 7100 --marker "$m-k" --greet "$m-greet" \
    --conn "$v4,lt" --conn "$v6,lt" --conn "$v4,et" --conn "$v6,et" --conn "$v4,block" --conn "$v6,block" 2>&1) \
    || { echo "$out"; fail "clients with the secret set"; }
printf '%s\n' "$out"
wait_for 30 eval '[ "$(count_has "$srv" event=eof)" -ge 6 ]' || fail "server saw $(count_has "$srv" event=eof) of 6 connections end"
ok "secret set: epoll LT, epoll ET and blocking clients, IPv4 and IPv6, send at once and read greeting + echo"

# 2. No secret for a while.
before=$(tlshubctl status --json)
tlshubctl -v events >"$TOPO_DIR/events.log" 2>"$TOPO_DIR/events.err" &
EV_PID=$!
wait_has 60 "$TOPO_DIR/events.err" "<- family" || fail "tlshubctl events did not start: $(cat "$TOPO_DIR/events.err")"
sleep 1   # it subscribes right after resolving the family
tlshubctl node forget n1   # the verb; `del` is its alias
tlshubctl node del n2
show=$(tlshubctl node show --json)
[ "$(jq '[.[] | select(.epoch != null)] | length' <<<"$show")" = 0 ] || fail "secrets still there after node del: $show"
ok "secrets deleted (node del n1, node del n2); tlshubctl events listening"

cli=$TOPO_DIR/client-wait.log
pod_bg a1 python3 dpapp.py nbclient 7100 --concurrent --marker "$m-w" --greet "$m-greet" --expect-wait 1.0 --max-cpu 1.0 \
    --conn "$v4,lt" --conn "$v6,et" --conn "$v4,block" >"$cli" 2>&1
cpid=$BG_PID
wait_for 90 eval '[ "$(count_has "$cli" WAITING)" -ge 3 ]' || fail "clients did not start waiting: $(cat "$cli")"
sleep 2
waiting=$(tlshubctl flows --json)
tlshubctl node show
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
ok "clients waited 2 s (they said WAITING), then the secrets were set again"
wait "$cpid" || fail "clients during the key wait: $(cat "$cli")"
cat "$cli"
n=$(jq '[.[] | select(.state == "key-wait" and .remote_port == 7100 and .role == "client")] | length' <<<"$waiting")
[ "$n" = 3 ] || fail "flows while the secret was missing: expected 3 client flows in key-wait: $waiting"
n=$(jq '[.[] | select(.state == "key-wait" and .local_port == 7100 and .role == "server")] | length' <<<"$waiting")
[ "$n" = 3 ] || fail "flows while the secret was missing: expected 3 server flows in key-wait: $waiting"
ok "while waiting: 3 client and 3 server flows in key-wait; non-blocking clients saw no readiness and used no CPU, the blocking send blocked; all completed"

wait_for 30 eval '[ "$(count_has "$srv" event=eof)" -ge 9 ]' || fail "server saw $(count_has "$srv" event=eof) of 9 connections end"
# The server's greeting waited too: EAGAIN at least once, no readiness
# report that was not real, little CPU.
while IFS= read -r l; do
    [[ $l == *event=greeted* ]] || continue
    [[ $l =~ conn=([0-9]+).*eagain=([0-9]+).*secs=([0-9.]+).*cpu=([0-9.]+).*spurious=([0-9]+) ]] || fail "server log line: $l"
    c=${BASH_REMATCH[1]} e=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]} u=${BASH_REMATCH[4]} sp=${BASH_REMATCH[5]}
    [ "$sp" = 0 ] || fail "server: readiness that was not real on connection $c: $l"
    if [ "$c" -gt 6 ]; then
        [ "$e" -ge 1 ] || fail "server: the greeting on connection $c (keys pending) went out without EAGAIN: $l"
        [[ ${s%.*} -ge 1 ]] || fail "server: the greeting on connection $c went out after $s s only: $l"
        # A busy loop burns the whole wait; allow a fifth of it (TCG on a
        # loaded host charges interrupts and wakeups generously).
        awk -v u="$u" -v s="$s" 'BEGIN { exit !(u < 0.2 * s) }' \
            || fail "server: $u s CPU while waiting $s s to greet on connection $c: $l"
    fi
done < "$srv"
[[ $(<"$srv") != *spurious-* ]] || fail "server: readiness that was not real: $(grep spurious- "$srv")"
ok "server (epoll, greets at once after accept): EAGAIN while keys were pending, no false readiness, no spin"

ev=$(<"$TOPO_DIR/events.log")
expect_contains "tlshubctl events" "key-request node=n2 local=n1" "$ev"
expect_contains "tlshubctl events" "key-request node=n1 local=n2" "$ev"
kill "$EV_PID"; wait "$EV_PID" 2>/dev/null || true; EV_PID=
after=$(tlshubctl status --json)
key_waits=$(( $(stat_of "$after" key_waits) - $(stat_of "$before" key_waits) ))
key_requests=$(( $(stat_of "$after" key_requests) - $(stat_of "$before" key_requests) ))
[ "$key_waits" -ge 6 ] || fail "key-waits rose by $key_waits, expected 6 (3 clients, 3 server ends)"
[ "$key_requests" -ge 2 ] || fail "key-requests rose by $key_requests, expected 2 (peer n2 for a1's flows, n1 for b1's)"
for k in install_failures reset_key_timeout reset_install reset_stale_sender reset_unsupported; do
    expect_eq "status $k" 0 "$(stat_of "$after" $k)"
done
ok "key-waits +$key_waits, key-requests +$key_requests, events: key-request node=n2 local=n1 and node=n1 local=n2; no resets"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets"
out=$(tlswire "$pcap" --expect tls --port 7100 --min-conns 9 --marker "$m-k" --marker "$m-w" --marker "$m-greet") \
    || { echo "$out"; fail "the wire is not TLS-only"; }
echo "$out" | tail -1
ok "wire (link1): 9 connections, TLS records only, no marker"

topo_teardown
unload_module
