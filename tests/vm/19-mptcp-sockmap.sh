# Sockets kTLS cannot be keyed on are reset, never let through in plaintext:
# - MPTCP: an MPTCP client in a1 (its first subflow is a TCP socket the
#   module would have to key) connecting to a pod on another node: the
#   subflow is reset (reset-unsupported rises), the app's send fails, no
#   marker on the wire. An MPTCP listener in b1 with a plain client in a1:
#   the child is not handed out in plaintext (the client's exchange fails or
#   is encrypted; no marker on the wire).
# - BPF sockmap: a secured socket put into a sockmap while it waits for its
#   keys (the peer's secret withheld) gets a psock that kTLS cannot share:
#   when the secret arrives the flow is reset (install-failures rises), the
#   app's send fails, no marker. A socket already on kTLS cannot be added to
#   a sockmap (the kernel refuses), and the flow keeps working.
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $* [${SECONDS}s]"; }
stat_of() { jq -r --arg k "$2" '.stats[$k]' <<<"$1"; }
diag() {
    local f
    for f in "$TOPO_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    tlshubctl status | grep -v ': 0$'; tlshubctl flows; dmesg | tail -n 20
}
fail() { trap - EXIT; diag >&2 || true; echo "FAIL: $*" >&2; topo_teardown; exit 1; }

load_module
topo_setup
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
tlshubctl timeout set 30000 >/dev/null
head -c 32 /dev/urandom > "$TOPO_DIR/psk"
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
app_echo_server b1 7000
m=$(new_marker)
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"

# --- MPTCP client ---
before=$(tlshubctl status --json)
out=$(pod_exec a1 python3 - "$(pod_ip4 b1)" "$m-mptcp" <<'PY'
import errno, socket, sys, time
IPPROTO_MPTCP = 262
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
s.settimeout(20)
try:
    s.connect((sys.argv[1], 7000))
    time.sleep(1)
    s.sendall((sys.argv[2] + "\n").encode())
    d = s.recv(100)
    print("exchanged", d)
except OSError as e:
    print("failed", errno.errorcode.get(e.errno, e.errno))
PY
)
echo "MPTCP client: $out"
case $out in failed*) ;; *) fail "the MPTCP client's exchange was not refused: $out";; esac
after=$(tlshubctl status --json)
[ "$(stat_of "$after" reset_unsupported)" -gt "$(stat_of "$before" reset_unsupported)" ] \
    || fail "reset-unsupported did not rise for the MPTCP subflow"
ok "MPTCP client a1 -> b1: the subflow is reset (reset-unsupported $(stat_of "$before" reset_unsupported) -> $(stat_of "$after" reset_unsupported))"

# --- MPTCP listener, plain client ---
pod_bg b1 python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7500)); s.listen(4); print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(10)
    try:
        d = c.recv(100)
        c.sendall(b"reply:" + d)
        print("server got", d, flush=True)
    except OSError as e:
        print("server error", e, flush=True)
    c.close()
' >"$TOPO_DIR/mptcp-server.log" 2>&1
pod_wait_listen b1 7500 60
out=$(printf '%s\n' "$m-mplisten" | pod_exec a1 socat -t 15 -T 15 - "TCP4:$(pod_ip4 b1):7500" 2>&1 || true)
echo "plain client of the MPTCP listener: '$out'"
case $out in
    "reply:$m-mplisten") ok "MPTCP listener: its child was keyed (encrypted exchange)";;
    *"$m-mplisten"*) fail "unexpected reply: $out";;
    *) ok "MPTCP listener: the child cannot talk in plaintext (client got '${out:-nothing}')";;
esac

# --- sockmap ---
cat > "$TOPO_DIR/sockmap.py" <<'PY'
# bpf(2) by hand: a one-slot BPF_MAP_TYPE_SOCKMAP, and an update with a socket.
import ctypes, errno, os, socket, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
SYS_bpf, BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM, BPF_MAP_TYPE_SOCKMAP = 321, 0, 2, 15
def bpf(cmd, attr):
    r = libc.syscall(SYS_bpf, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r
attr = (ctypes.c_uint32 * 32)()
attr[0], attr[1], attr[2], attr[3] = BPF_MAP_TYPE_SOCKMAP, 4, 4, 1
mfd = bpf(BPF_MAP_CREATE, attr)
def add(sock):
    key, val = ctypes.c_uint32(0), ctypes.c_uint32(sock.fileno())
    u = (ctypes.c_uint64 * 16)()
    u[0] = mfd
    u[1] = ctypes.addressof(key)
    u[2] = ctypes.addressof(val)
    bpf(BPF_MAP_UPDATE_ELEM, u)
host, when, msg, go = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket()
# Kernel timeouts on a blocking socket, not s.settimeout(): Python would
# connect non-blocking and poll for POLLOUT, which the gate masks until the
# keys are in (the 'before' case withholds them).
tv = struct.pack("ll", 30, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
s.connect((host, 7000))
if when == "after":
    time.sleep(2)  # kTLS is on by now
try:
    add(s)
    print("added", flush=True)
except OSError as e:
    print("add refused", errno.errorcode.get(e.errno, e.errno), flush=True)
open(go, "w").close()
try:
    s.sendall((msg + "\n").encode())
    print("exchanged", s.recv(100), flush=True)
except OSError as e:
    print("failed", errno.errorcode.get(e.errno, e.errno), flush=True)
PY
# Into a sockmap while waiting for keys: a1's flows key with the secret for
# peer n2; withhold it until the socket is in the map.
tlshubctl node del n2 >/dev/null
before=$(tlshubctl status --json)
pod_exec_root a1 python3 "$TOPO_DIR/sockmap.py" "$(pod_ip4 b1)" before "$m-map1" "$TOPO_DIR/go1" \
    >"$TOPO_DIR/map1.log" 2>&1 &
cpid=$!
wait_for 60 test -e "$TOPO_DIR/go1" || fail "sockmap client stuck: $(cat "$TOPO_DIR/map1.log")"
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
# Both ends of a pair hold a secret under one epoch (spec §3): n2's is now
# epoch 2, so n1's moves to 2 as well.
tlshubctl node set n1 psk "$TOPO_DIR/psk" --epoch 2 >/dev/null
wait "$cpid" || true
cat "$TOPO_DIR/map1.log"
grep -q "^added" "$TOPO_DIR/map1.log" || fail "the waiting socket could not be put into the sockmap"
grep -q "^failed" "$TOPO_DIR/map1.log" || fail "a socket in a sockmap exchanged data: $(cat "$TOPO_DIR/map1.log")"
after=$(tlshubctl status --json)
[ "$(stat_of "$after" install_failures)" -gt "$(stat_of "$before" install_failures)" ] \
    || fail "install-failures did not rise for the socket in a sockmap"
ok "a socket put into a sockmap while it waited for keys: reset at install (install-failures $(stat_of "$before" install_failures) -> $(stat_of "$after" install_failures))"
# On kTLS already: the map refuses it and the flow keeps working.
pod_exec_root a1 python3 "$TOPO_DIR/sockmap.py" "$(pod_ip4 b1)" after "$m-map2" "$TOPO_DIR/go2" \
    >"$TOPO_DIR/map2.log" 2>&1 || true
cat "$TOPO_DIR/map2.log"
grep -q "^add refused" "$TOPO_DIR/map2.log" || fail "a kTLS socket was accepted into a sockmap"
grep -q "^exchanged b'$m-map2" "$TOPO_DIR/map2.log" || fail "the secured flow stopped working"
ok "a socket already on kTLS: the sockmap refuses it, the secured exchange goes on"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets"
! grep -q "$m" "$pcap" || fail "a marker reached the wire in plaintext"
ok "no marker on the wire"
topo_teardown
unload_module
