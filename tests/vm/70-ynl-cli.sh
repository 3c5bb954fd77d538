# The kernel's own YNL CLI, driven only by spec/tlshub.yaml, talks to the
# module: proof that the spec matches the code.
. ./lib.sh
load_module
tlshubctl mapping load ../../examples/pod_node_mapping.conf >/dev/null
ynl() { python3 "$TLSHUB_KSRC/tools/net/ynl/cli.py" --spec ../../spec/tlshub.yaml \
        --schema "$TLSHUB_KSRC/Documentation/netlink/genetlink.yaml" "$@"; }
expect_contains "ynl mode-get" "'mode': 'tlshub'" "$(ynl --do mode-get)"
ynl --do mode-set --json '{"mode": "openssl"}' >/dev/null || fail "ynl mode-set"
expect_eq "mode via ynl" "openssl" "$(tlshubctl mode get)"
dump=$(ynl --dump map-get)
for p in web-pod-1 web-pod-2 api-pod-1 api-pod-2 db-pod-1 cache-pod-1; do
    expect_contains "ynl dump has $p" "'name': '$p'" "$dump"
done
expect_contains "ynl dump has node address" "'port': 7443" "$dump"
expect_contains "ynl lookup" "'node': 'node-2'" "$(ynl --do map-get --json '{"pod-name": "api-pod-2"}')"
expect_contains "ynl status" "'version': '$(module_version)'" "$(ynl --do status-get)"
