# rmmod under load never leaves a socket pointing into freed module memory
# and never lets plaintext out. With tlshub loaded and secured flows up:
# - a secured transfer is running (dpapp.py stream a1 -> b1: deterministic
#   data, sha256 compared at the end);
# - a second connection waits for keys (its secrets were deleted after the
#   transfer started, key timeout long): its client is blocked in send();
# - a python server in a1 is blocked in accept() on a1's pod IP (a gated
#   listener);
# then `rmmod tlshub`: it must return (within 120 s) and succeed; the
# waiting connection is reset (the client's send fails with ECONNABORTED or
# ECONNRESET, no payload on the wire); the blocked accept() returns an
# error (ECONNABORTED) and the server keeps working (a connection after the
# unload is served, plain: no module); the transfer keeps going after the
# unload (kTLS belongs to tls.ko: the server keeps receiving) and completes
# with the right sha256; its wire stays TLS-only from ISN+1 to the end.
# vm-run fails the run on any oops, KASAN, lockdep or hung-task report;
# kmemleak must be clean. The module then loads and unloads again.
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $* [${SECONDS}s]"; }

_has() { local l; [ -r "$1" ] || return 1; while IFS= read -r l || [ -n "$l" ]; do [[ $l != *"$2"* ]] || return 0; done < "$1"; return 1; }
wait_has() { local end=$((SECONDS + $1)); until _has "$2" "$3"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }
# last_progress FILE: the bytes of the last "progress ... bytes=N" line.
last_progress() { local l n=0; while IFS= read -r l; do [[ $l =~ ^progress.*bytes=([0-9]+) ]] && n=${BASH_REMATCH[1]}; done < "$1"; echo "$n"; }

diag() {
    local f
    for f in "$TOPO_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    if mod_loaded; then tlshubctl status | grep -v ': 0$'; tlshubctl flows; fi
    dmesg | tail -n 30
}
fail() { trap - EXIT; diag >&2 || true; echo "FAIL: $*" >&2; rm -f "$TOPO_DIR/go"; topo_teardown; exit 1; }

load_module
topo_setup
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
head -c 32 /dev/urandom > "$TOPO_DIR/psk"
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl timeout set 600000
m=$(new_marker)
v4=$(pod_ip4 b1) a4=$(pod_ip4 a1)
pod_bg b1 python3 dpapp.py server 7400 --mode hash >"$TOPO_DIR/hash.log" 2>&1
pod_bg b1 python3 dpapp.py server 7401 --greet "$m-greet" >"$TOPO_DIR/wait-server.log" 2>&1
pod_bg a1 python3 dpapp.py server 7402 --bind "$a4" >"$TOPO_DIR/accept.log" 2>&1
for f in hash wait-server accept; do wait_has 60 "$TOPO_DIR/$f.log" "listening on" || fail "server $f did not start"; done
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"

touch "$TOPO_DIR/go"; chmod 644 "$TOPO_DIR/go"
pod_bg a1 python3 dpapp.py stream "$v4" 7400 --go-file "$TOPO_DIR/go" --pause 0.05 >"$TOPO_DIR/stream.log" 2>&1
stream=$BG_PID
wait_has 60 "$TOPO_DIR/hash.log" "progress" || fail "the transfer does not run"
flows=$(tlshubctl flows --json)
[ "$(jq '[.[] | select(.state == "secured" and (.local_port == 7400 or .remote_port == 7400))] | length' <<<"$flows")" = 2 ] \
    || fail "the transfer's two ends are not secured: $flows"
ok "secured transfer a1 -> b1:7400 running"

tlshubctl node del n1
tlshubctl node del n2
pod_bg a1 python3 dpapp.py probe "$v4" 7401 --expect fail --greet "$m-greet" --marker "$m-wait" --timeout 300 \
    >"$TOPO_DIR/waiting.log" 2>&1
waiting=$BG_PID
wait_has 60 "$TOPO_DIR/waiting.log" "CONNECTED" || fail "the second connection did not connect: $(cat "$TOPO_DIR/waiting.log")"
kw() { [ "$(tlshubctl flows --json | jq '[.[] | select(.state == "key-wait" and .remote_port == 7401)] | length')" = 1 ]; }
wait_for 30 kw || fail "no client flow waiting for keys to b1:7401: $(tlshubctl flows)"
sleep 1
st=$(tlshubctl status)
echo "$st" | grep -E 'flows-tracked|key-waits|secured'
ok "secrets deleted; a second connection (a1 -> b1:7401) waits for keys, its client blocked in send(); a1's server blocked in accept() on $a4:7402"

p0=$(last_progress "$TOPO_DIR/hash.log")
t0=$SECONDS
timeout 120 rmmod tlshub || fail "rmmod tlshub failed or hung (rc $?)"
! mod_loaded || fail "tlshub still loaded after rmmod"
ok "rmmod tlshub returned after $((SECONDS - t0)) s (transfer at $p0 bytes)"

wait "$waiting" || fail "the waiting connection: $(cat "$TOPO_DIR/waiting.log")"
r=$(<"$TOPO_DIR/waiting.log")
[[ $r =~ RESULT\ step=send\ error=(ECONNABORTED|ECONNRESET) ]] || fail "the waiting client's send should fail with ECONNABORTED or ECONNRESET: $r"
ok "the waiting connection was reset: the client's send failed with ${BASH_REMATCH[1]}"

wait_has 30 "$TOPO_DIR/accept.log" "accept error=" || fail "the accept() blocked in a1's gated listener did not return: $(cat "$TOPO_DIR/accept.log")"
[[ $(<"$TOPO_DIR/accept.log") == *"accept error=ECONNABORTED"* ]] || fail "accept() after unload: $(cat "$TOPO_DIR/accept.log")"
expect_eq "a connection to a1:7402 after the unload" "$m-plain-after" "$(app_echo b1 "$a4" 7402 "$m-plain-after")"
ok "the blocked accept() returned ECONNABORTED; the server then served a (plain) connection"

wait_for 60 eval '[ "$(last_progress "$TOPO_DIR/hash.log")" -gt $((p0 + 200000)) ]' \
    || fail "the secured transfer did not go on after the unload: $p0 -> $(last_progress "$TOPO_DIR/hash.log") bytes"
rm -f "$TOPO_DIR/go"
wait "$stream" || fail "the transfer: $(cat "$TOPO_DIR/stream.log")"
tail -n 1 "$TOPO_DIR/stream.log"
ok "the secured transfer went on after the unload ($p0 -> $(last_progress "$TOPO_DIR/hash.log") bytes) and completed, sha256 equal"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets"
out=$(tlswire "$pcap" --expect tls --port 7400 --min-conns 1 --marker "$m-wait" --marker "$m-greet") \
    || { echo "$out"; fail "the transfer's wire is not TLS-only"; }
echo "$out" | tail -n 1
tlswire "$pcap" --json --marker "$m-wait" > "$TOPO_DIR/wire.json" || fail "tlswire --json"
jq -e '[.connections[] | select(.server_port == 7401)] as $c | ($c | length == 1)
       and ($c | all([.directions[].bytes] | all(. == 0))) and ($c | all([.directions[].rst] | any))' \
    "$TOPO_DIR/wire.json" >/dev/null \
    || fail "the waiting connection: expected no payload and a reset: $(jq -c '[.connections[] | select(.server_port == 7401)]' "$TOPO_DIR/wire.json")"
ok "wire (link1): the transfer TLS-only throughout, the waiting connection no payload and a reset, no marker"

topo_teardown
load_module
unload_module
kmemleak_check
