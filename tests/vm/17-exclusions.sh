# Sockets that cannot carry kTLS are reset, never let through in plaintext:
# a TCP_REPAIR socket (its owner picks the sequence numbers, so keys could
# repeat) connecting to a pod on another node is failed at SYN_SENT and
# reset; its data never reaches the wire and the counter says why. A
# listener that existed before the module was loaded (never gated) gets
# secured children it cannot accept in plaintext: they can neither send
# nor receive (poison proto), the client sees a reset/close, no marker.
# A simultaneous open between two pods on different nodes is reset.
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $*"; }

load_tls
! mod_loaded || rmmod_tlshub
topo_setup
# A listener created before tlshub is loaded: never gated.
pod_bg b1 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7100)); s.listen(8)
while True:
    c, _ = s.accept()
    try:
        c.settimeout(10)
        d = c.recv(4096)
        c.sendall(b"reply:" + d)
        print("server got", d, flush=True)
    except OSError as e:
        print("server error", e, flush=True)
    c.close()
'
pod_wait_listen b1 7100
load_module
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
head -c 32 /dev/urandom > "$TOPO_DIR/psk"
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
app_echo_server b1 7000

pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
m=$(new_marker)
before=$(tlshubctl status | sed -n 's/^reset_unsupported: //p')
out=$(pod_exec_root a1 python3 - "$(pod_ip4 b1)" "$m-repair" <<'PY'
import errno, socket, sys
TCP_REPAIR = 19
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
s.connect((sys.argv[1], 7000))          # repair mode: no SYN, straight to ESTABLISHED
try:
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
    s.sendall(sys.argv[2].encode())
    print("sent")
except OSError as e:
    print("refused", errno.errorcode.get(e.errno, e.errno))
PY
)
echo "repair client: $out"
case $out in refused*) ;; *) fail "TCP_REPAIR socket was not refused: $out";; esac
after=$(tlshubctl status | sed -n 's/^reset_unsupported: //p')
[ "$after" -gt "$before" ] || fail "reset-unsupported did not rise ($before -> $after)"
ok "TCP_REPAIR connect to a remote pod: refused, counted ($before -> $after)"

out=$(printf '%s' "$m-old" | pod_exec a1 socat -t 5 -T 20 - "TCP4:$(pod_ip4 b1):7100" 2>&1 || true)
echo "client of the pre-existing listener: '$out'"
case $out in
    "reply:$m-old") ok "a listener from before load: its child was keyed before accept (encrypted exchange)";;
    *"$m-old"*) fail "unexpected reply from the never-gated listener: $out";;
    *) ok "a listener from before load: its poisoned child cannot talk (client got '${out:-nothing}')";;
esac
# Simultaneous open: a1 (port 7301) and b1 (port 7302) connect to each
# other. a1's SYN is swallowed on n1 (a blackhole route, no ICMP) while b1's
# SYN arrives at a1 in SYN_SENT: a1 goes SYN_SENT -> SYN_RECV, which kTLS
# keying does not support: the flow must be reset, never carry plaintext.
simo=$TOPO_DIR/simopen.py
cat > "$simo" <<'PY'
import errno, socket, sys, time
lport, host, rport, msg = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", lport))
s.settimeout(15)
try:
    s.connect((host, rport))
    s.sendall(msg.encode())
    time.sleep(1)
    d = s.recv(100)
    print("connected, got", d)
except OSError as e:
    print("failed", errno.errorcode.get(e.errno, e.errno))
PY
before=$(tlshubctl status | sed -n 's/^reset_unsupported: //p')
node_exec n1 ip route add blackhole "$(pod_ip4 b1)/32"
pod_bg a1 python3 "$simo" 7301 "$(pod_ip4 b1)" 7302 "$m-simA" > "$TOPO_DIR/simA.log" 2>&1
simA=$BG_PID
_in_state() { [ -n "$(ss -N "$1" -Htn state "$2" "( sport = :$3 )" 2>/dev/null)" ]; }
wait_for 30 _in_state a1 syn-sent 7301 || fail "a1 did not reach SYN_SENT: $(cat "$TOPO_DIR/simA.log")"
pod_bg b1 python3 "$simo" 7302 "$(pod_ip4 a1)" 7301 "$m-simB" > "$TOPO_DIR/simB.log" 2>&1
simB=$BG_PID
wait_for 30 _in_state b1 syn-sent 7302 || fail "b1 did not reach SYN_SENT: $(cat "$TOPO_DIR/simB.log")"
nap 0.5
node_exec n1 ip route del blackhole "$(pod_ip4 b1)/32"
wait "$simA" || true; wait "$simB" || true
echo "a1: $(cat "$TOPO_DIR/simA.log")"; echo "b1: $(cat "$TOPO_DIR/simB.log")"
after=$(tlshubctl status | sed -n 's/^reset_unsupported: //p')
[ "$after" -gt "$before" ] || fail "simultaneous open was not reset as unsupported ($before -> $after)"
! grep -q "got b'$m" "$TOPO_DIR/simA.log" "$TOPO_DIR/simB.log" || fail "a simultaneous-open end read the other's plaintext"
ok "simultaneous open a1:7301 <-> b1:7302: reset, counted ($before -> $after)"

capture_stop
! grep -q "$m" "$pcap" || fail "a marker reached the wire in plaintext"
ok "no marker on the wire"
topo_teardown
unload_module
