# Unloading with a loaded table frees it: rmmod/insmod/rmmod, kmemleak clean.
. ./lib.sh
load_module
gen_mapping 20000 > /tmp/m.conf
tlshubctl mapping load /tmp/m.conf >/dev/null
tlshubctl mapping add extra-pod node-1 10.200.0.1 >/dev/null
unload_module
load_module
expect_eq "fresh table after reload" "Pod-Node Mapping Table (0 entries):" "$(tlshubctl mapping show | head -1)"
tlshubctl mapping load /tmp/m.conf >/dev/null
unload_module
kmemleak_check
