# Sockets that cannot carry kTLS are reset, never let through in plaintext:
# a TCP_REPAIR socket (its owner picks the sequence numbers, so keys could
# repeat) connecting to a pod on another node is failed at SYN_SENT and
# reset; its data never reaches the wire and the counter says why. A
# listener that existed before the module was loaded (never gated) gets
# secured children it cannot accept in plaintext: they can neither send
# nor receive (poison proto), the client sees a reset/close, no marker.
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $*"; }

load_tls
! mod_loaded || rmmod tlshub
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
before=$(tlshubctl status | sed -n 's/^reset-unsupported: //p')
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
after=$(tlshubctl status | sed -n 's/^reset-unsupported: //p')
[ "$after" -gt "$before" ] || fail "reset-unsupported did not rise ($before -> $after)"
ok "TCP_REPAIR connect to a remote pod: refused, counted ($before -> $after)"

out=$(printf '%s' "$m-old" | pod_exec a1 socat -t 5 -T 20 - "TCP4:$(pod_ip4 b1):7100" 2>&1 || true)
echo "client of the pre-existing listener: '$out'"
case $out in
    "reply:$m-old") ok "a listener from before load: its child was keyed before accept (encrypted exchange)";;
    *"$m-old"*) fail "unexpected reply from the never-gated listener: $out";;
    *) ok "a listener from before load: its poisoned child cannot talk (client got '${out:-nothing}')";;
esac
capture_stop
! grep -q "$m" "$pcap" || fail "a marker reached the wire in plaintext"
ok "no marker on the wire"
topo_teardown
unload_module
kmemleak_check
