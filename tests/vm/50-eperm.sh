# Changing commands need CAP_NET_ADMIN: an unprivileged user gets EPERM on
# every one of them and changes nothing. So does reading the mapping (it
# names every workload): map-get lookups and dumps. Status and mode stay open.
. ./lib.sh
load_module
tlshubctl mapping load ../data/seed-example.conf >/dev/null
before=$(tlshubctl mapping show; tlshubctl mode get)
cp ../data/seed-example.conf /tmp/m.conf; chmod 644 /tmp/m.conf
printf 'mode = openssl\npod_node_config = /tmp/m.conf\n' > /tmp/c.conf; chmod 644 /tmp/c.conf
for cmd in "mode set openssl" "mapping load /tmp/m.conf" "mapping add x-pod node-1 10.1.1.1" \
           "mapping add-node node-1 10.0.0.1" "mapping del web-pod-1" "mapping del-node node-2" \
           "apply --config /tmp/c.conf"; do
    if out=$(as_nobody tlshubctl $cmd 2>&1); then fail "unprivileged '$cmd' succeeded"; fi
    expect_contains "unprivileged '$cmd'" "Operation not permitted" "$out"
done
as_nobody tlshubctl mode get >/dev/null || fail "unprivileged mode get"
as_nobody tlshubctl status >/dev/null || fail "unprivileged status"
for cmd in "mapping show" "mapping show --json" "mapping lookup web-pod-1" "mapping lookup 10.244.1.10"; do
    if out=$(as_nobody tlshubctl $cmd 2>&1); then fail "unprivileged '$cmd' succeeded: $out"; fi
    expect_contains "unprivileged '$cmd'" "Operation not permitted" "$out"
done
# The same over a raw socket: the kernel refuses (not just tlshubctl).
as_nobody python3 - <<'PY' || fail "raw unprivileged map-get"
import errno
from nlfuzz import A_POD_NAME, MAP_GET, MODE_GET, STATUS_GET, Sock, s
sk = Sock()
for what, (err, msg, _) in (("map-get do", sk.request(MAP_GET, s(A_POD_NAME, "web-pod-1"))), ("map-get dump", sk.dump(MAP_GET))):
    assert err == errno.EPERM, f"{what}: {errno.errorcode.get(err, err)} ({msg})"
for what, (err, msg, replies) in (("status-get", sk.request(STATUS_GET)), ("mode-get", sk.request(MODE_GET))):
    assert err == 0 and replies, f"{what}: {errno.errorcode.get(err, err)} ({msg})"
PY
expect_eq "nothing changed" "$before" "$(tlshubctl mapping show; tlshubctl mode get)"
