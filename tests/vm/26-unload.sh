# Unload under load never leaves a socket pointing into freed module memory,
# never hangs, and never lets plaintext out (review M2). The module holds a
# reference for every socket carrying its ops (`owner` of the gate tables),
# so the kernel's own reference counting protects every call. With tlshub
# loaded and secured flows up:
# - a secured transfer is running (dpapp.py stream a1 -> b1: deterministic
#   data, sha256 compared at the end);
# - an idle secured flow whose reader entered through the gate: a1's client
#   blocked in recv() to b1:7403 while the secrets were withheld, then both
#   ends were keyed; the server stays silent (the reader sleeps in kTLS);
# - a connection waits for keys (secrets deleted again, key timeout long):
#   its client is blocked in send();
# - a python server in a1 is blocked in accept() on a1's pod IP (a gated
#   listener).
# Then:
# - `rmmod tlshub` fails at once ("in use"): gated sockets hold the module;
# - `tlshubctl drain`: the waiting connection is reset (send fails with
#   ECONNABORTED or ECONNRESET, no payload on the wire), the blocked
#   accept() returns ECONNABORTED; a new pod-to-pod connection (a2 -> b1)
#   fails closed, its marker never on the wire;
# - `rmmod tlshub` then succeeds promptly: the idle reader holds nothing
#   (its recv() was restarted into kTLS's ops, no module text on its stack);
# - after the unload the idle flow still works (the server speaks; the
#   reader gets the plaintext), the server in a1 serves a (plain)
#   connection, and the transfer goes on (kTLS belongs to tls.ko) and
#   completes with the right sha256; its wire stays TLS-only.
# vm-run fails the run on any oops, KASAN, lockdep or hung-task report;
# kmemleak must be clean (run-all's check after the suite). The module then loads and unloads again.
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

dp_setup
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

cat > "$TOPO_DIR/idle.py" <<'PY'
import os, socket, sys, time
if sys.argv[1] == "server":
    port, speak, msg = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port))
    s.listen(4)
    print("listening on", port, flush=True)
    c, _ = s.accept()
    print("accepted", flush=True)
    while not os.path.exists(speak):
        time.sleep(0.1)
    c.sendall(msg.encode())
    c.close()
    print("spoke", flush=True)
else:
    c = socket.create_connection((sys.argv[2], int(sys.argv[3])))
    print("CONNECTED", flush=True)
    d = b""
    while True:
        x = c.recv(4096)
        if not x:
            break
        d += x
    print("GOT", d.decode(errors="replace"), flush=True)
PY
chmod 644 "$TOPO_DIR/idle.py"
tlshubctl node del n1
tlshubctl node del n2
pod_bg b1 python3 "$TOPO_DIR/idle.py" server 7403 "$TOPO_DIR/speak" "$m-idle" >"$TOPO_DIR/idle-server.log" 2>&1
wait_has 60 "$TOPO_DIR/idle-server.log" "listening on" || fail "idle server did not start"
pod_bg a1 python3 "$TOPO_DIR/idle.py" client "$v4" 7403 >"$TOPO_DIR/idle-client.log" 2>&1
idle=$BG_PID
wait_has 60 "$TOPO_DIR/idle-client.log" "CONNECTED" || fail "idle client did not connect"
ikw() { [ "$(tlshubctl flows --json | jq '[.[] | select(.state == "key-wait" and .remote_port == 7403)] | length')" = 1 ]; }
wait_for 30 ikw || fail "the idle client's flow does not wait for keys: $(tlshubctl flows)"
sleep 1   # the reader is in recv(), parked in the gate
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
isec() { [ "$(tlshubctl flows --json | jq '[.[] | select(.state == "secured" and (.remote_port == 7403 or .local_port == 7403))] | length')" = 2 ]; }
wait_for 30 isec || fail "the idle flow's ends are not secured: $(tlshubctl flows)"
sleep 1
ok "idle secured flow a1 -> b1:7403: its reader entered recv() through the gate and now sleeps in kTLS"

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
echo "$st" | grep -E 'flows_tracked|key_waits|secured'
ok "secrets deleted; a second connection (a1 -> b1:7401) waits for keys, its client blocked in send(); a1's server blocked in accept() on $a4:7402"

t0=$SECONDS
if out=$(timeout 30 rmmod tlshub 2>&1); then fail "rmmod succeeded with gated sockets"; fi
mod_loaded || fail "tlshub gone after a refused rmmod"
[ $((SECONDS - t0)) -lt 25 ] || fail "the refused rmmod took $((SECONDS - t0)) s"
ok "rmmod with gated sockets refused at once: $out"

tlshubctl drain || fail "tlshubctl drain"
pod_exec a2 python3 dpapp.py probe "$v4" 7401 --expect fail --marker "$m-drained" --timeout 30 \
    >"$TOPO_DIR/drained.log" 2>&1 || fail "a new connection after drain did not fail closed: $(cat "$TOPO_DIR/drained.log")"
ok "drained: a new a2 -> b1 connection fails closed ($(grep RESULT "$TOPO_DIR/drained.log"))"

p0=$(last_progress "$TOPO_DIR/hash.log")
t0=$SECONDS
timeout 60 rmmod tlshub || fail "rmmod tlshub after drain failed or hung (rc $?)"
! mod_loaded || fail "tlshub still loaded after rmmod"
ok "rmmod tlshub after drain returned after $((SECONDS - t0)) s (transfer at $p0 bytes; the idle reader still in recv())"
kill -0 "$idle" 2>/dev/null || fail "the idle reader died: $(cat "$TOPO_DIR/idle-client.log")"
touch "$TOPO_DIR/speak"; chmod 644 "$TOPO_DIR/speak"
wait "$idle" || fail "idle client: $(cat "$TOPO_DIR/idle-client.log")"
expect_eq "the idle reader after the unload" "GOT $m-idle" "$(grep '^GOT' "$TOPO_DIR/idle-client.log")"
ok "the idle secured flow works after the unload (the reader got the server's plaintext)"

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
out=$(tlswire "$pcap" --expect tls --port 7400 --min-conns 1 --marker "$m-wait" --marker "$m-greet" \
    --marker "$m-drained" --marker "$m-idle") \
    || { echo "$out"; fail "the transfer's wire is not TLS-only"; }
echo "$out" | tail -n 1
tlswire "$pcap" --json --marker "$m-wait" > "$TOPO_DIR/wire.json" || fail "tlswire --json"
jq -e --arg a "$a4" '[.connections[] | select(.server_port == 7401 and .client_ip == $a)] as $c | ($c | length == 1)
       and ($c | all([.directions[].bytes] | all(. == 0))) and ($c | all([.directions[].rst] | any))' \
    "$TOPO_DIR/wire.json" >/dev/null \
    || fail "the waiting connection: expected no payload and a reset: $(jq -c '[.connections[] | select(.server_port == 7401)]' "$TOPO_DIR/wire.json")"
jq -e --arg a "$(pod_ip4 a2)" '[.connections[] | select(.server_port == 7401 and .client_ip == $a)] as $c | ($c | length == 1)
       and ($c | all([.directions[].bytes] | all(. == 0)))' "$TOPO_DIR/wire.json" >/dev/null \
    || fail "the connection made while drained: expected no payload: $(jq -c '[.connections[] | select(.server_port == 7401)]' "$TOPO_DIR/wire.json")"
ok "wire (link1): the transfer TLS-only throughout, the waiting connection no payload and a reset, the one made while drained no payload, no marker"

topo_teardown
load_module
unload_module
