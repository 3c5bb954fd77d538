# Every I/O path an app may use right after connect() is gated and then
# encrypted: write/read, splice (into and out of the socket: the path that
# bypasses sk_prot) and io_uring send/recv submitted together — each with
# the keys ready (the worker usually wins) and with the keys held back for
# two seconds (the call must wait, not leak, then complete). The echo is
# intact, the wire between the nodes carries TLS records only (no marker),
# and io_uring's poll-driven retry does not spin (the client's CPU time).
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $*"; }

load_module
topo_setup
bin=$TOPO_DIR/iopaths
gcc -O2 -Wall -o "$bin" iopaths.c || fail "build iopaths"
chmod 755 "$bin"
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
head -c 32 /dev/urandom > "$TOPO_DIR/psk"
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl timeout set 20000
app_echo_server b1 7000

pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
m=$(new_marker)
secured0=$(tlshubctl status | sed -n 's/^flows_secured: //p')
for mode in write splice uring; do
    for fam in 4 6; do
        host=$(pod_ip$fam b1)
        out=$(pod_exec a1 "$bin" "$mode" "$host" 7000 "$m-$mode-$fam") \
            || { tlshubctl status | grep -v ': 0$'; dmesg | tail -n 20; fail "$mode IPv$fam: $out"; }
        expect_eq "$mode IPv$fam echo" "$m-$mode-$fam" "$out"
    done
done
ok "keys ready: write, splice, io_uring over IPv4 and IPv6 echo intact"

# Keys held back: the client's first call must wait for them.
tlshubctl node del n2
tlshubctl node del n1
for mode in write splice uring; do
    ( sleep 2; tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null; tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null ) &
    setter=$!
    t0=$(date +%s%N)
    all=$(pod_exec a1 /usr/bin/time -f '|cpu %U %S' "$bin" "$mode" "$(pod_ip4 b1)" 7000 "$m-late-$mode" 2>&1) \
        || fail "$mode with late keys: $all"
    t1=$(date +%s%N)
    out=${all%%|cpu *} cpu=${all##*|cpu }
    wait "$setter"
    expect_eq "$mode late-keys echo" "$m-late-$mode" "$out"
    waited=$(( (t1 - t0) / 1000000 ))
    [ "$waited" -ge 1500 ] || fail "$mode: finished in $waited ms, before the keys existed"
    # A spin would burn the whole wait; start-up under TCG costs ~1 s.
    python3 -c "import sys; u, s, w = map(float, sys.argv[1:4]); sys.exit(0 if u + s < 0.25 * w / 1000 + 1 else 1)" $cpu "$waited" \
        || fail "$mode spun while waiting for keys: cpu $cpu s in $waited ms"
    tlshubctl node del n2 >/dev/null; tlshubctl node del n1 >/dev/null
    ok "$mode waited ${waited} ms for the keys (cpu $cpu s), then echoed intact"
done
capture_stop
secured=$(tlshubctl status | sed -n 's/^flows_secured: //p')
[ "$secured" -ge $((secured0 + 18)) ] || fail "flows-secured rose from $secured0 to $secured only (want 9 flows x 2 ends)"
out=$(tlswire "$pcap" --expect tls --port 7000 --min-conns 9 --marker "$m") || { echo "$out"; fail "not TLS on the wire"; }
ok "wire: 9 connections, TLS records only, no marker ($secured0 -> $secured secured ends)"
topo_teardown
unload_module
