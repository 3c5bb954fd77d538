# The module loads, logs its version, registers the "tlshub" genetlink
# family, unloads cleanly, and does so again; nothing leaks.
. ./lib.sh
for round in 1 2; do
    dmesg -C
    load_module
    mod_loaded || fail "round $round: not in /proc/modules"
    expect_contains "round $round: load message" "tlshub: version $(module_version) loaded" "$(dmesg)"
    family_registered || fail "round $round: genetlink family not registered"
    unload_module
    ! family_registered || fail "round $round: family still registered after rmmod"
    expect_contains "round $round: unload message" "tlshub: version $(module_version) unloading" "$(dmesg)"
done
kmemleak_check
