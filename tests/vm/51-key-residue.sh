# Review L2 (issue 14): once a secured flow is closed, its key bytes are
# gone from the kernel's memory. The module derives a flow's keys into the
# flow itself and fills kTLS's buffers in place (a key moved by value
# leaves a copy in the frame it left), wipes both, and overwrites the stack
# below the frames that derived and installed them (burn_stack); kTLS
# wipes its own copies when the socket goes (tls_ctx_free, the AEAD's
# kfree_sensitive).
#
# The client app reads its socket's two kTLS keys back (getsockopt
# SOL_TLS: TX = c2s, RX = s2c) and closes; once both ends' kTLS contexts
# are released, tests/vm/keyres.py scans all of RAM through /proc/kcore
# for either key. A control proves the scan finds what is there: 16 random
# bytes written to a tmpfs file (page cache) must be found.
. ./lib.sh
. ./pods.sh

dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk"
tlshubctl node set n2 psk "$TOPO_DIR/psk"
base_a=$(tls_curr a1) base_b=$(tls_curr b1)

# The control: in the page cache, as hex for the scanner.
head -c 16 /dev/urandom > "$TOPO_DIR/canary"
canary=$(od -An -tx1 -v "$TOPO_DIR/canary" | tr -d ' \n')

log=$TOPO_DIR/server.log
pod_bg b1 python3 keyres.py server 7300 >"$log" 2>&1
wait_log "$log" listening 30 || fail "server: $(cat "$log")"
out=$(pod_exec a1 python3 keyres.py client "$(pod_ip4 b1)" 7300) || fail "client: $out"
read -r tx rx <<<"$out"
tx=${tx#tx=} rx=${rx#rx=}
[[ $tx =~ ^[0-9a-f]{32,64}$ && $rx =~ ^[0-9a-f]{32,64}$ ]] || fail "client printed no keys: $out"
[ "$tx" != "$rx" ] || fail "the two directions share a key"
[[ $tx =~ [1-9a-f] && $rx =~ [1-9a-f] ]] || fail "a key is all zeroes: $out"
expect_contains "both ends secured" "flows_secured: 2" "$(tlshubctl status)"
ok "a1 -> b1 secured; the client read its kTLS keys (c2s, s2c)"

wait_log "$log" closed 30 || fail "server did not see the close: $(cat "$log")"
back() { [ "$(tls_curr a1)" = "$base_a" ] && [ "$(tls_curr b1)" = "$base_b" ] && [ "$(tlshubctl flows --json | jq length)" = 0 ]; }
wait_for 30 back || fail "kTLS contexts or flows not released: a1 $(tls_curr a1) (was $base_a), b1 $(tls_curr b1) (was $base_b); $(tlshubctl flows)"
# RCU callbacks (kfree_rcu of kTLS contexts) and deferred work.
sleep 3
ok "both ends closed, kTLS contexts released"

out=$(python3 keyres.py scan "canary=$canary" "c2s=$tx" "s2c=$rx") || fail "scan: $out"
echo "$out"
expect_contains "scan covered RAM" "scanned" "$out"
grep -qE '^canary hits=[1-9]' <<<"$out" || fail "the control was not found: the scan cannot see memory ($out)"
grep -qx 'c2s hits=0' <<<"$out" || fail "the c2s key is still in kernel memory after close: $(grep ^c2s <<<"$out")"
grep -qx 's2c hits=0' <<<"$out" || fail "the s2c key is still in kernel memory after close: $(grep ^s2c <<<"$out")"
ok "no byte sequence of either key is left in RAM; the control was found"
topo_teardown
unload_module
