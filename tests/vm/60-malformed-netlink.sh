# Malformed genetlink requests (raw socket, tests/vm/nlfuzz.py) are refused
# with EINVAL and an extack message; the module stays healthy and unchanged.
# Then 3000 seeded random mutations of valid requests: no oops, no hang.
. ./lib.sh
load_module
tlshubctl mapping load ../../examples/pod_node_mapping.conf >/dev/null
python3 nlfuzz.py
# The random mutations may legitimately have changed the table: reload it.
tlshubctl mapping load ../../examples/pod_node_mapping.conf >/dev/null
expect_eq "still healthy" "node-1" "$(tlshubctl mapping lookup web-pod-1)"
