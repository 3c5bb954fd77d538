# Unloading with a loaded table frees it: rmmod/insmod/rmmod, kmemleak clean (run-all),
# also with a replacement staged by a socket that outlives the module.
. ./lib.sh
load_module
gen_mapping 20000 > /tmp/m.conf
tlshubctl mapping load /tmp/m.conf >/dev/null
tlshubctl mapping add extra-pod node-1 10.200.0.1 >/dev/null
unload_module
load_module
expect_eq "fresh table after reload" "Pod-Node Mapping Table (0 entries):" "$(tlshubctl mapping show | head -1)"
tlshubctl mapping load /tmp/m.conf >/dev/null
# rmmod while a socket holds a staged replacement: the module's teardown
# releases it, and the socket outlives the module. The holder keeps its
# socket open until we write to the FIFO (no fixed sleep: however slow the
# VM, the socket is open during rmmod), then reports whether it was.
rm -f /tmp/release /tmp/staged /tmp/holder.out; mkfifo /tmp/release
python3 - >/tmp/holder.out 2>&1 <<'PY' &
import os, socket
from nlfuzz import A_BEGIN, A_POD, MAP_STAGE, P_IPV4, P_NAME, P_NODE, Sock, attr, ip4, nest, s, v4
sk = Sock()
pods = [nest(A_POD, s(P_NAME, f"staged-{i}"), s(P_NODE, "node-1"), ip4(P_IPV4, v4(0x0B000000 + i))) for i in range(500)]
err, _, _ = sk.request(MAP_STAGE, attr(A_BEGIN, b""), *pods)
assert err == 0, err
with open("/tmp/staged", "w") as f:
    f.write(f"{os.getpid()} {sk.sk.fileno()}\n")
open("/tmp/release").read()          # blocks until released
sk.sk.getsockname()                  # still a usable socket
sk.close()
print("released")
PY
holder=$!
for _ in $(seq 300); do [ -s /tmp/staged ] && break; kill -0 $holder 2>/dev/null || break; sleep 0.1; done
[ -s /tmp/staged ] || { cat /tmp/holder.out >&2; fail "staging socket did not start"; }
read -r pid fd < /tmp/staged
unload_module
kill -0 $holder 2>/dev/null || fail "the staging holder died during rmmod"
expect_contains "staging socket still open after rmmod" "socket:" "$(readlink /proc/$pid/fd/$fd)"
echo go > /tmp/release
wait $holder || { cat /tmp/holder.out >&2; fail "staging holder failed"; }
expect_eq "holder released its socket" "released" "$(cat /tmp/holder.out)"
# Loading again after all that works, with an empty table.
load_module
expect_eq "fresh table after reload" "Pod-Node Mapping Table (0 entries):" "$(tlshubctl mapping show | head -1)"
unload_module
