# The install window and the threads that race the gate (datapath design,
# "The install window is real"): no plaintext byte leaves whatever app
# threads do around connect(). dpapp.py race on a1 -> a counting server on
# b1 (it checks every 64-byte message it decrypts and answers how many):
# - after: 8 threads start send()ing a marker-bearing message in a loop the
#   moment connect() returns (IPv4 and IPv6): every connection must stay
#   clean (the server decrypted exactly what was sent);
# - before: 3 threads already loop on send() (EPIPE) on the socket when
#   another thread calls connect(): threads that got into the plain TCP
#   path before the gate went on must not send plaintext: the connection is
#   clean or reset;
# - fastopen: one thread connects with a blocking sendto(MSG_FASTOPEN) (a1
#   allows TFO without a cookie, so the SYN would carry the marker) while
#   others loop on send(): clean or reset, no SYN data;
# 48 connections in all. Then data plus FIN before accept(): the server
# accepts only once the clients sent and half-closed (the children sit in
# CLOSE_WAIT): the bytes decrypt correctly at the server, or the flow is
# reset. The capture on the wire (link1) shows no marker and every
# connection's streams are TLS record chains (cut only by a reset).
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $* [${SECONDS}s]"; }

_has() { local l; [ -r "$1" ] || return 1; while IFS= read -r l || [ -n "$l" ]; do [[ $l != *"$2"* ]] || return 0; done < "$1"; return 1; }
wait_has() { local end=$((SECONDS + $1)); until _has "$2" "$3"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }
stat_of() { jq -r --arg k "$2" '.stats[$k]' <<<"$1"; }

diag() {
    local f
    for f in "$TOPO_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    tlshubctl status | grep -v ': 0$'; tlshubctl flows; dmesg | tail -n 20
}
fail() { trap - EXIT; diag >&2 || true; echo "FAIL: $*" >&2; topo_teardown; exit 1; }

dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
# TFO client without a cookie: a MSG_FASTOPEN SYN carries data unless the
# datapath takes it out.
pod_exec_root a1 sysctl -qw net.ipv4.tcp_fastopen=5
ok "module serves n1 and n2, one secret; a1 sends TFO SYN data without cookies"

m=$(new_marker)
srv=$TOPO_DIR/count.log late=$TOPO_DIR/late.log
pod_bg b1 python3 dpapp.py server 7200 --mode count --marker "$m" >"$srv" 2>&1
pod_bg b1 python3 dpapp.py server 7201 --mode count --marker "$m" --accept-after "$TOPO_DIR/accept-now" >"$late" 2>&1
wait_has 60 "$srv" "listening on" || fail "count server did not start"
wait_has 60 "$late" "listening on" || fail "late-accept server did not start"
before=$(tlshubctl status --json)
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"

v4=$(pod_ip4 b1) v6=$(pod_ip6 b1)
out=$(pod_exec a1 python3 dpapp.py race 7200 --marker "$m" --msgs 20 \
    --run "after,$v4,16,8" --run "after,$v6,8,8" --run "before,$v4,10,3" --run "before,$v6,6,3" \
    --run "fastopen,$v4,8,3" 2>&1) || { printf '%s\n' "$out"; fail "race client"; }
printf '%s\n' "$out"
ok "48 racing connections: 'after' all clean, 'before' and 'fastopen' clean or reset, the server never read a bad message"

fin=$TOPO_DIR/finclient.log
pod_bg a1 python3 dpapp.py finclient "$v4,$v6" 7201 --conns 3 --msgs 8 --marker "$m" >"$fin" 2>&1
fpid=$BG_PID
wait_has 120 "$fin" "SENT:" || fail "finclient did not send: $(cat "$fin")"
# Every child got the data and the FIN before accept().
cw() { local n; n=$(ss -N b1 -Htn state close-wait "( sport = :7201 )" | wc -l); [ "$n" -ge 6 ]; }
wait_for 30 cw || fail "expected 6 children of b1:7201 in CLOSE_WAIT before accept(): $(ss -N b1 -tan)"
touch "$TOPO_DIR/accept-now"
wait "$fpid" || fail "finclient: $(cat "$fin")"
cat "$fin"
ok "data + FIN before accept() (6 children in CLOSE_WAIT at accept time): decrypted intact or reset, never plaintext"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets"
# At least the 24 'after' and 6 finclient connections carry payload; a
# reset 'before'/'fastopen' one may have none (the guard dropped it).
tlswire "$pcap" --expect tls --port 7200 --port 7201 --min-conns 30 --marker "$m" >"$TOPO_DIR/wire.txt" \
    || { cat "$TOPO_DIR/wire.txt"; fail "the wire is not TLS-only"; }
rst=0 fins=0
while IFS= read -r l; do
    [[ $l == *" c2s: "* ]] || continue
    [[ $l == *RST* ]] && rst=$((rst + 1))
    [[ $l == *FIN* ]] && fins=$((fins + 1))
done < "$TOPO_DIR/wire.txt"
tail -n 2 "$TOPO_DIR/wire.txt"
ok "wire (link1): every connection a TLS record chain (client side: $fins with FIN, $rst reset), no marker anywhere (SYN data included)"

after=$(tlshubctl status --json)
for k in flows_secured reset_stale_sender reset_guard guard_drops reset_install install_failures reset_unsupported reset_key_timeout; do
    echo "status $k: $(stat_of "$before" $k) -> $(stat_of "$after" $k)"
done
expect_eq "status reset-key-timeout" 0 "$(stat_of "$after" reset_key_timeout)"
ok "counters shown (reset-stale-sender may rise)"

topo_teardown
unload_module
