#!/usr/bin/env bash
# Timing check (not in the suite; tests/vm/28-half-close.sh covers it
# deterministically): a client that sends its request and
# half-closes (FIN) before the server has called accept(). Run:
#   scripts/two-node tests/two-node/fin-before-accept.sh
# Node 2's pod b1 connects to node 1's a1, where a server accepts only 3 s
# after each connection arrives. Cases, each for IPv4 and IPv6:
#   late-send  connect, wait 5 s (accepted by then), send, half-close
#   early      send right after connect, keep the write side open
#   early-fin  send right after connect and half-close at once (what
#              `printf ... | socat - TCP:...`, `nc -N` and many HTTP/1.0
#              clients do)
# Plain TCP (x1/y1, unmapped) serves every case; so must a secured flow.
# Exits 1 if any case fails (prints the module's counters and an ftrace of
# port 7100's state changes with tcp_set_ulp / kTLS setsockopt returns).
# Timing-dependent: an early-fin connection's FIN is often processed before
# tlshub's worker installs kTLS on the child (it then is in CLOSE_WAIT, and
# the module keys it there), so early-fin runs 4 times per address family.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tn_setup
tn_secure
tn_trace_on
cat > "$TOPO_DIR/srv.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 7100)); s.listen(16); print("listening", flush=True)
while True:
    time.sleep(1.5)  # the connection's bytes (and FIN) arrive before accept()
    try:
        c, a = s.accept()
    except OSError as e:
        print("accept:", e, flush=True); continue
    d = b""
    try:
        while not d.endswith(b"\n"):
            x = c.recv(4096)
            if not x: break
            d += x
        c.sendall(d)
    except OSError as e:
        print("conn:", e, flush=True)
    c.close()
PY
cat > "$TOPO_DIR/cli.py" <<'PY'
import socket, sys, time
host, mode = sys.argv[1], sys.argv[2]
c = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET); c.settimeout(30)
try:
    c.connect((host, 7100))
    if mode == "late-send": time.sleep(3)
    c.sendall(b"hello-" + mode.encode() + b"\n")
    if mode != "early": c.shutdown(socket.SHUT_WR)
    d = b""
    while not d.endswith(b"\n"):
        x = c.recv(4096)
        if not x: break
        d += x
    print("ok" if d == b"hello-" + mode.encode() + b"\n" else f"got {d!r}")
except OSError as e:
    print(repr(e))
PY
chmod 644 "$TOPO_DIR"/*.py
if [ "$TN_NODE" = n1 ]; then
    for p in a1 x1; do
        pod_bg "$p" python3 -u "$TOPO_DIR/srv.py" > "$TOPO_DIR/srv-$p.log" 2>&1
        wait_log "$TOPO_DIR/srv-$p.log" listening
    done
fi
tn_barrier ready
bad=0
if [ "$TN_NODE" = n2 ]; then
    for pair in "y1 x1 plain" "b1 a1 secured"; do
        read -r from to what <<<"$pair"
        for v in 4 6; do
            for mode in late-send early early-fin early-fin early-fin early-fin; do
                [ $v = 4 ] && ip=$(tn_ip4 "$to") || ip=$(tn_ip6 "$to")
                r=$(pod_exec "$from" python3 "$TOPO_DIR/cli.py" "$ip" "$mode")
                printf '%-8s IPv%s %-10s %s\n' "$what" "$v" "$mode" "$r"
                [ "$r" = ok ] || [ "$what" = plain ] || bad=$((bad + 1))
                [ "$r" = ok ] || [ "$what" = secured ] || bad=$((bad + 1))
            done
        done
    done
    tn_put bad "$bad"
fi
tn_barrier done
if [ "$TN_NODE" = n1 ]; then
    echo "server a1 (secured):"; sed 's/^/  /' "$TOPO_DIR/srv-a1.log"
    tlshubctl status | grep -E '^(flows_secured|install_failures|reset_install):'
    echo "kernel log (tlshub):"; dmesg | grep tlshub | tail -n 20 | sed 's/^/  /'
    if [ -n "$TN_TRACE" ]; then
        echo "trace (port 7100 state changes, tcp_set_ulp / kTLS setsockopt returns):"
        grep -v '^#' "$TN_TRACE/trace" | grep -E 'sport=7100|dport=7100|tn_ulp|tn_tlsopt' \
            | sed -E 's/^ *//; s/ +/ /g' | tail -n 60
    fi
    bad=$(tn_get bad)
fi
[ "$bad" = 0 ] || { echo "$bad case(s) failed"; exit 1; }
