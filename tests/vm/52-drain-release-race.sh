# Issue 14, unload (M2): `tlshubctl drain` takes our ops off every gated
# socket (gate::gate_off: check they are ours, swap in the family's, drop
# the socket's module reference) while the sockets' owners may be closing
# them. If a socket's last fput came between the check and the swap,
# `__sock_release` would load our ops, block in tcp_close on the socket
# lock drain holds, and then drop the module reference that drain dropped
# too: the count underflows (module_put WARNs) and `rmmod` may pass while
# a socket still runs our code. gate_off pins the file from the check to
# the swap, so that last fput waits until our ops are off.
#
# The window is a few instructions; this test widens it with the test
# build's knob (kmod/sys/knobs.rs: gate_off_delay_ms = 100, a busy-wait
# after the check) and kills the listeners' owner while drain walks them:
# 30 gated listeners (bound to a1's pod address) in one process, killed
# about 1 s into a 3 s drain. Twice. Then the module's reference count is
# back to 0, `rmmod` passes, and the kernel log has no WARNING. Without
# the pin, module_put WARNs in the first round.
. ./lib.sh
. ./pods.sh

knob=/sys/module/tlshub/parameters/gate_off_delay_ms
refcnt() { cat /sys/module/tlshub/refcnt; }
warns() { dmesg | grep -c 'WARNING:' || true; }
w0=$(warns)
for round in 1 2; do
    dp_setup
    [ -w "$knob" ] || fail "no $knob: kmod/tlshub.ko is not a test build (TLSHUB_TEST_KNOBS=y)"
    r0=$(refcnt)
    log=$TOPO_DIR/listen.log
    pod_bg a1 python3 -c '
import socket, sys, time
ls = []
for port in range(7500, 7530):
    s = socket.socket(); s.bind((sys.argv[1], port)); s.listen(8); ls.append(s)
print("listening", len(ls), flush=True)
time.sleep(600)' "$(pod_ip4 a1)" >"$log" 2>&1
    owner=$BG_PID
    wait_log "$log" "listening 30" 60 || fail "listeners: $(cat "$log")"
    [ "$(refcnt)" -ge $((r0 + 30)) ] || fail "the 30 listeners are not gated: refcnt $(refcnt), was $r0"
    echo 100 > "$knob"
    tlshubctl drain & drainer=$!
    if [ $round = 1 ]; then nap 0.9; else nap 1.7; fi
    # The owner and its files go while drain holds one listener's lock in
    # the widened window (the other listeners close in between).
    pkill -KILL -f 'range\(7500, 7530\)' || true
    kill -KILL "$owner" 2>/dev/null || true
    wait "$drainer" || fail "drain failed (round $round)"
    echo 0 > "$knob"
    gone() { [ "$(refcnt)" = 0 ]; }
    wait_for 30 gone || fail "round $round: module reference count $(refcnt) after drain and the owner's exit (want 0)"
    [ "$(warns)" = "$w0" ] || fail "round $round: the kernel WARNed: $(dmesg | grep -A8 'WARNING:' | tail -n 20)"
    topo_teardown
    rmmod tlshub || fail "round $round: rmmod after drain"
    ok "round $round: drain against the owner's exit, the window widened to 100 ms: count 0, no WARNING, rmmod passes"
done
