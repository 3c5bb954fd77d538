# Malformed genetlink requests (raw socket, tests/vm/nlfuzz.py) are refused
# with the contract's errno (ERANGE for the spec's limits, EINVAL otherwise)
# and an extack message, with the offending attribute's offset or the
# missing attribute where promised; the module stays healthy and unchanged.
# Then 3000 seeded random mutations of valid requests: each answered exactly
# once with an allowed errno, no oops, no hang.
. ./lib.sh
load_module
tlshubctl mapping load ../../examples/pod_node_mapping.conf >/dev/null
python3 nlfuzz.py
# The random mutations may legitimately have changed the table: reload it.
tlshubctl mapping load ../../examples/pod_node_mapping.conf >/dev/null
expect_eq "still healthy" "node-1" "$(tlshubctl mapping lookup web-pod-1)"
