# accept() racing the install on a keyed child must still hand out a socket
# whose every read path decrypts (review 2026-12, M3; Part 1 §3: no byte
# the app reads may bypass decryption). If the accepted socket keeps TCP's
# proto_ops while its sk_prot is kTLS's, recvmsg decrypts but splice(2) and
# poll go to TCP: splice hands the app raw records (17 03 03 ...). One
# secret for n1 and n2, so keys are ready at once; b1 keeps a thread blocked
# in accept() so that each new child's install races accept()
# (acceptrace.py spliceserve). 200 connections from a1 over IPv4 and IPv6:
# the server waits for POLLIN (poll), splice()s the first 64 bytes into a
# pipe, which must be a1's plaintext message, and echoes it; a1 checks the
# echo.
. ./lib.sh
. ./pods.sh
fail() { dp_fail "$@"; }
app=acceptrace.py

dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
ok "module serves n1 and n2, one secret: keys ready at once"

m=$(new_marker)
s0=$(tlshubctl status --json)
pod_bg b1 python3 $app spliceserve 7700 200 --marker "$m" >"$TOPO_DIR/splice.log" 2>&1
srv=$BG_PID
wait_log "$TOPO_DIR/splice.log" "listening on" 60 || fail "splice server did not start"
pod_bg a1 python3 $app echoclients "$(pod_ip4 b1)" 7700 100 --marker "$m" >"$TOPO_DIR/clients4.log" 2>&1
c4=$BG_PID
pod_bg a1 python3 $app echoclients "$(pod_ip6 b1)" 7700 100 --marker "$m" >"$TOPO_DIR/clients6.log" 2>&1
c6=$BG_PID
rc=0
wait "$srv" || rc=$?
wait "$c4" || rc=$?
wait "$c6" || rc=$?
grep -h -v '^ok' "$TOPO_DIR/splice.log" "$TOPO_DIR/clients4.log" "$TOPO_DIR/clients6.log" | tail -n 20
s1=$(tlshubctl status --json)
for k in flows_secured install_failures reset_install; do
    echo "status $k: $(stat_of "$s0" $k) -> $(stat_of "$s1" $k)"
done
n=$(grep -c 'splice() read ciphertext' "$TOPO_DIR/splice.log" || true)
[ "$n" = 0 ] || fail "$n of 200 accepted connections handed ciphertext to splice()"
[ $rc = 0 ] || fail "a connection failed (see the logs above)"
grep -q "spliceserve: {'ok': 200," "$TOPO_DIR/splice.log" || fail "the server did not splice 200 plaintext messages"
ok "200 accepted children (accept() racing the install): POLLIN reported, splice() read plaintext, echo intact"

topo_teardown
unload_module
