# Unloading with a loaded table frees it: rmmod/insmod/rmmod, kmemleak clean,
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
# rmmod while a socket holds a staged replacement: the family's teardown
# releases it (and the socket outlives the module).
python3 - <<'PY' &
import time
from nlfuzz import A_BEGIN, A_POD, MAP_STAGE, P_IPV4, P_NAME, P_NODE, Sock, attr, nest, s, u32
sk = Sock()
pods = [nest(A_POD, s(P_NAME, f"staged-{i}"), s(P_NODE, "node-1"), u32(P_IPV4, 0x0B000000 + i)) for i in range(500)]
err, _, _ = sk.request(MAP_STAGE, attr(A_BEGIN, b""), *pods)
assert err == 0, err
open("/tmp/staged", "w").close()
time.sleep(8)
PY
for _ in $(seq 50); do [ -e /tmp/staged ] && break; sleep 0.2; done
[ -e /tmp/staged ] || fail "staging socket did not start"
unload_module
wait
kmemleak_check
