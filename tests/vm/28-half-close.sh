# A peer that half-closes before this end is keyed: kTLS goes on a socket
# that is already in CLOSE_WAIT, and the app still gets every byte, then
# EOF (no reset). Deterministic through the key provider: both ends share
# this kernel, the client (a1 on n1) keys with the secret for peer n2 and
# the server (b1 on n2) with the one for peer n1, so withholding one of the
# two secrets holds back exactly one end.
# (passive) The server's end waits for its secret while the client (socat,
#     which half-closes at stdin EOF, like `printf | socat`, `nc -N`,
#     HTTP/1.0 clients) sends its request and FIN: the child is in
#     CLOSE_WAIT before it is keyed and before accept(). Then the secret
#     arrives: the server reads the request and EOF and answers; socat
#     prints the answer.
# (active) The client's end waits for its secret while the server accepts,
#     sends a greeting and closes: the client's socket is in CLOSE_WAIT
#     before it is keyed. Then the secret arrives: the client reads the
#     greeting, then EOF.
# Both IPv4 and IPv6; the wire carries TLS records only, no marker;
# install-failures stays 0.
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $* [${SECONDS}s]"; }

stat_of() { jq -r --arg k "$2" '.stats[$k]' <<<"$1"; }
diag() {
    local f
    for f in "$TOPO_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    tlshubctl status | grep -v ': 0$'; tlshubctl node show; tlshubctl flows; dmesg | tail -n 20
}
fail() { trap - EXIT; diag >&2 || true; echo "FAIL: $*" >&2; topo_teardown; exit 1; }
_in_state() { [ -n "$(ss -N "$1" -Htn state "$2" "$3" 2>/dev/null)" ]; }

load_module
topo_setup
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
tlshubctl timeout set 60000 >/dev/null
head -c 32 /dev/urandom > "$TOPO_DIR/psk"
m=$(new_marker)
before=$(tlshubctl status --json)

# Servers on b1: 7400 reads to EOF and answers; 7401 greets and closes.
cat > "$TOPO_DIR/srv.py" <<'PY'
import socket, sys, threading
def reader(c):
    d = b""
    while True:
        x = c.recv(4096)
        if not x:
            break
        d += x
    c.sendall(b"answer:" + d)
    c.close()
    print("7400 served", len(d), flush=True)
def greeter(c):
    c.sendall(sys.argv[1].encode())
    c.close()
    print("7401 greeted", flush=True)
def serve(port, fn):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(8)
    print("listening on", port, flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(7400, reader), daemon=True).start()
serve(7401, greeter)
PY
pod_bg b1 python3 "$TOPO_DIR/srv.py" "$m-greet" >"$TOPO_DIR/srv.log" 2>&1
pod_wait_listen b1 7400 60
pod_wait_listen b1 7401 60
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"

# (passive): only the client's secret (peer n2) is in. Both ends hold the
# secret under one epoch (spec §3: the client's ISN names it): each
# (re)install below takes the next, on both sides.
ep=1
for fam in 4 6; do
    tlshubctl node set n2 psk "$TOPO_DIR/psk" --epoch $ep >/dev/null
    host=$(pod_ip$fam b1)
    [ $fam = 4 ] && addr="TCP4:$host:7400" || addr="TCP6:[$host]:7400"
    printf '%s' "$m-req$fam" | pod_exec a1 socat -t 120 -T 120 - "$addr" >"$TOPO_DIR/passive$fam.log" 2>&1 &
    cpid=$!
    wait_for 60 _in_state b1 close-wait "( sport = :7400 )" \
        || fail "IPv$fam: the server's child did not reach CLOSE_WAIT unkeyed: $(ss -N b1 -tan)"
    ok "IPv$fam passive: request and FIN arrived, the server's end is unkeyed and in CLOSE_WAIT"
    tlshubctl node set n1 psk "$TOPO_DIR/psk" --epoch $ep >/dev/null
    wait "$cpid" || fail "IPv$fam: socat failed: $(cat "$TOPO_DIR/passive$fam.log")"
    got=$(cat "$TOPO_DIR/passive$fam.log")
    expect_eq "IPv$fam passive answer" "answer:$m-req$fam" "$got"
    ok "IPv$fam passive: keyed in CLOSE_WAIT, the server read the request and EOF, socat got the answer"
    tlshubctl node del n1 >/dev/null
    ep=$((ep + 1))
done

# (active): only the server's secret (peer n1) is in; the client announces
# n2's next epoch, which comes.
tlshubctl node del n2 >/dev/null
for fam in 4 6; do
    tlshubctl node set n1 psk "$TOPO_DIR/psk" --epoch $ep >/dev/null
    host=$(pod_ip$fam b1)
    pod_exec a1 python3 -c '
import socket, sys
fam = socket.AF_INET if sys.argv[2] == "4" else socket.AF_INET6
c = socket.socket(fam)
c.settimeout(120)
c.connect((sys.argv[1], 7401))
d = b""
while True:
    x = c.recv(4096)
    if not x:
        break
    d += x
print(d.decode(), end="")
' "$host" "$fam" >"$TOPO_DIR/active$fam.log" 2>&1 &
    cpid=$!
    wait_for 60 _in_state a1 close-wait "( dport = :7401 )" \
        || fail "IPv$fam: the client did not reach CLOSE_WAIT unkeyed: $(ss -N a1 -tan)"
    ok "IPv$fam active: greeting and FIN arrived, the client's end is unkeyed and in CLOSE_WAIT"
    tlshubctl node set n2 psk "$TOPO_DIR/psk" --epoch $ep >/dev/null
    wait "$cpid" || fail "IPv$fam: client failed: $(cat "$TOPO_DIR/active$fam.log")"
    expect_eq "IPv$fam active greeting" "$m-greet" "$(cat "$TOPO_DIR/active$fam.log")"
    ok "IPv$fam active: keyed in CLOSE_WAIT, the client read the greeting, then EOF"
    tlshubctl node del n2 >/dev/null
    ep=$((ep + 1))
done

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets"
tlswire "$pcap" --expect tls --port 7400 --port 7401 --min-conns 4 --marker "$m" >"$TOPO_DIR/wire.txt" \
    || { cat "$TOPO_DIR/wire.txt"; fail "the wire is not TLS-only"; }
tail -n 2 "$TOPO_DIR/wire.txt"
ok "wire (link1): 4 connections, TLS record chains only, no marker"
after=$(tlshubctl status --json)
expect_eq "install-failures" "$(stat_of "$before" install_failures)" "$(stat_of "$after" install_failures)"
expect_eq "flows-secured rise" 8 "$(( $(stat_of "$after" flows_secured) - $(stat_of "$before" flows_secured) ))"
ok "counters: 8 ends secured, no install failure"

topo_teardown
unload_module
