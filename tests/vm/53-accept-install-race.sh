# Issue 14, install path: a gated listener's accept() hands out a child
# still waiting for its keys with our stream gate on it, and that socket
# keeps the module reference do_accept took for it. From that moment a
# worker may install kTLS on it (the keys came) and take the gate off,
# dropping that reference. listen_accept used to decide whether to drop
# do_accept's reference by looking at the socket's ops afterwards: seeing
# kTLS's, it dropped the same reference a second time. The count then
# underflows silently, and `rmmod` hits the kernel's BUG_ON in
# try_release_module_ref (CI of stop 24: "drained; module references
# left: -1" in two-node agent.sh, then a hung VM).
#
# The window is a few instructions; the test build's knob accept_delay_ms
# (kmod/sys/knobs.rs) makes listen_accept sleep 3 s in it. Each round: b1
# blocks in accept(), a1 connects with no secret set (both ends wait for
# keys, a1 inside connect()), and while b1's accept() sleeps in the window the secrets are set,
# so the worker installs kTLS on the accepted socket. b1 checks that kTLS
# was on before accept() returned (the race was hit), echoes a1's marker
# and closes; then the module's reference count must be back where it was.
. ./lib.sh
. ./pods.sh
fail() { dp_fail "$@"; }

knob=/sys/module/tlshub/parameters/accept_delay_ms
refcnt() { cat /sys/module/tlshub/refcnt; }
dp_setup
[ -w "$knob" ] || fail "no $knob: kmod/tlshub.ko is not a test build (TLSHUB_TEST_KNOBS=y)"
rounds=3
slog=$TOPO_DIR/server.log
pod_bg b1 python3 -c '
import socket, sys
ls = socket.socket(); ls.bind((sys.argv[1], 7800)); ls.listen(8)
print("listening", flush=True)
i = 0
while True:
    c, _ = ls.accept()
    ulp = c.getsockopt(socket.SOL_TCP, 31, 16).split(b"\0")[0].decode()
    c.settimeout(20)
    m = c.recv(64)
    c.sendall(m)
    c.close()
    print("served", i, "ulp at accept return:", ulp or "none", flush=True)
    i += 1
' "$(pod_ip4 b1)" >"$slog" 2>&1
srv=$BG_PID
wait_log "$slog" listening 60 || fail "server did not start: $(cat "$slog")"
# The gated listener's reference, and the one do_accept took for the
# socket its blocked accept() will hand out.
r0=$(refcnt)
tlshubctl timeout set 9000 >/dev/null
echo 3000 > "$knob"
kw() { [ "$(tlshubctl flows --json | jq '[.[] | select(.state == "key-wait")] | length')" -ge 2 ]; }
s0=$(tlshubctl status --json)
for i in $(seq 0 $((rounds - 1))); do
    m=$(new_marker)
    clog=$TOPO_DIR/client$i.log
    pod_bg a1 python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], 7800), timeout=20)
print("connected", flush=True)
c.sendall(sys.argv[2].encode())
print("echo", c.recv(64).decode(), flush=True)
' "$(pod_ip4 b1)" "$m" >"$clog" 2>&1
    cli=$BG_PID
    # connect() returns once keyed: wait for both ends in key-wait. b1's
    # accept() took its end at once and now sleeps in the window.
    wait_for 30 kw || fail "round $i: no flows waiting for keys: $(tlshubctl flows); $(cat "$clog")"
    tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
    tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
    wait "$cli" || fail "round $i: client failed: $(cat "$clog")"
    expect_eq "round $i: echo" "echo $m" "$(grep '^echo' "$clog")"
    wait_log "$slog" "served $i " 30 || fail "round $i: server: $(cat "$slog")"
    grep -q "served $i ulp at accept return: tls" "$slog" \
        || fail "round $i: the keys came after accept() returned (the window was missed): $(grep "served $i" "$slog")"
    tlshubctl node del n1 >/dev/null
    tlshubctl node del n2 >/dev/null
    back() { [ "$(refcnt)" = "$r0" ]; }
    wait_for 20 back || fail "round $i: module reference count $(refcnt), was $r0: the listener's and the blocked accept's (an accepted socket's reference dropped twice?)"
    ok "round $i: kTLS installed on the accepted socket inside accept()'s widened window; echo secured; reference count back to $r0"
done
echo 0 > "$knob"
kill "$srv"; wait "$srv" 2>/dev/null || true
zero() { [ "$(refcnt)" = 0 ]; }
wait_for 20 zero || fail "module reference count $(refcnt) with the server gone (want 0)"
s1=$(tlshubctl status --json)
[ $(( $(stat_of "$s1" flows_secured) - $(stat_of "$s0" flows_secured) )) -ge $((2 * rounds)) ] \
    || fail "flows secured: $(stat_of "$s0" flows_secured) -> $(stat_of "$s1" flows_secured)"
topo_teardown
rmmod tlshub || fail "rmmod"
ok "accepted sockets keyed inside accept(): no reference dropped twice, rmmod passes"
