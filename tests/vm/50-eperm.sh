# Changing commands need CAP_NET_ADMIN: an unprivileged user gets EPERM on
# every one of them and changes nothing; reads stay open.
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
as_nobody tlshubctl mapping show >/dev/null || fail "unprivileged mapping show"
expect_eq "nothing changed" "$before" "$(tlshubctl mapping show; tlshubctl mode get)"
