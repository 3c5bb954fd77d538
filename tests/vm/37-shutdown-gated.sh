# shutdown(SHUT_WR) while the keys are pending (review L9). A client that
# connects and half-closes at once (`nc -N` with nothing to send, an HTTP
# client that closes its side early) would queue a FIN in the plain stream
# before its end is keyed: kTLS could no longer go on (nothing may be
# queued at install) and the flow was reset. The gate now keys the socket
# first: shutdown() waits for the keys, then the FIN follows the install.
# b1's end is keyed at once; a1's secret comes 3 s late. The server reads
# to EOF and answers; the client gets the answer and EOF, no reset; its
# shutdown() returned only once the keys were in; the wire carries TLS
# records only (IPv4 and IPv6).
. ./lib.sh
. ./pods.sh
fail() { dp_fail "$@"; }

dp_setup
tlshubctl timeout set 30000 >/dev/null
m=$(new_marker)

cat > "$TOPO_DIR/app.py" <<'PY'
import socket, sys, threading, time
if sys.argv[1] == "server":
    def serve(c):
        d = b""
        while True:
            x = c.recv(4096)
            if not x:
                break
            d += x
        c.sendall(sys.argv[3].encode() + b" read " + str(len(d)).encode())
        c.close()
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", int(sys.argv[2])))
    s.listen(8)
    print("listening", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
else:
    host, port = sys.argv[2], int(sys.argv[3])
    c = socket.create_connection((host, port))
    print("CONNECTED", flush=True)
    t0 = time.monotonic()
    c.shutdown(socket.SHUT_WR)
    t1 = time.monotonic()
    d = b""
    while True:
        x = c.recv(4096)
        if not x:
            break
        d += x
    print(f"shutdown took {t1 - t0:.2f} s; got {d.decode()}", flush=True)
PY
chmod 644 "$TOPO_DIR/app.py"
pod_bg b1 python3 "$TOPO_DIR/app.py" server 7900 "$m" >"$TOPO_DIR/server.log" 2>&1
pod_wait_listen b1 7900
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap" tcp port 7900
before=$(tlshubctl status --json)

for fam in 4 6; do
    # b1's end (peer n1) is keyed at once; a1's (peer n2) waits.
    tlshubctl node del n2 >/dev/null 2>&1 || true
    tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
    pod_bg a1 python3 "$TOPO_DIR/app.py" client "$(pod_ip$fam b1)" 7900 >"$TOPO_DIR/client$fam.log" 2>&1
    client=$BG_PID
    wait_log "$TOPO_DIR/client$fam.log" CONNECTED 30 || fail "IPv$fam: the client did not connect"
    sleep 3
    tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
    wait "$client" || fail "IPv$fam client: $(cat "$TOPO_DIR/client$fam.log")"
    out=$(grep '^shutdown took' "$TOPO_DIR/client$fam.log")
    [[ $out =~ ^shutdown\ took\ ([0-9]+)\.[0-9]+\ s\;\ got\ $m\ read\ 0$ ]] \
        || fail "IPv$fam: expected the server's answer after EOF: $out"
    [ "${BASH_REMATCH[1]}" -ge 2 ] || fail "IPv$fam: shutdown() returned before the keys were in: $out"
    ok "IPv$fam: shutdown(SHUT_WR) waited for the keys; the server read EOF and answered ($out)"
done

after=$(tlshubctl status --json)
for k in install_failures reset_install reset_guard reset_key_timeout reset_stale_sender; do
    expect_eq "status $k" "$(stat_of "$before" $k)" "$(stat_of "$after" $k)"
done
capture_stop
out=$(tlswire "$pcap" --expect tls --port 7900 --min-conns 2 --marker "$m") || { echo "$out"; fail "the wire is not TLS-only"; }
echo "$out" | tail -n 1
ok "no reset, no install failure; wire (link1): TLS records only, no marker"

topo_teardown
unload_module
