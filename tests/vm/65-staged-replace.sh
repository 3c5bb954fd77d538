# A replacement staged over several messages is invisible until committed,
# owned by its socket, and swapped in whole (tests/vm/stage.py).
. ./lib.sh
load_module
tlshubctl mapping load ../../examples/pod_node_mapping.conf >/dev/null
python3 stage.py
expect_eq "table after commit" "Pod-Node Mapping Table (2 entries):" "$(tlshubctl mapping show | head -1)"
