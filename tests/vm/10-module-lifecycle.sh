# The module loads, logs its version, registers the "tlshub" genetlink
# family, unloads cleanly, and does so again; nothing leaks. While it is
# loaded, tls.ko cannot be removed under it (it uses tls.ko's symbols:
# review L5), and it cannot be loaded without tls.ko.
. ./lib.sh
for round in 1 2; do
    dmesg -C
    load_module
    mod_loaded || fail "round $round: not in /proc/modules"
    expect_contains "round $round: load message" "tlshub: version $(module_version) loaded" "$(dmesg)"
    family_registered || fail "round $round: genetlink family not registered"
    ! rmmod tls 2>/dev/null || fail "round $round: tls.ko was removed while tlshub is loaded"
    tls_loaded || fail "round $round: tls.ko gone"
    unload_module
    ! family_registered || fail "round $round: family still registered after rmmod"
    expect_contains "round $round: unload message" "tlshub: version $(module_version) unloading" "$(dmesg)"
done
# Without tls.ko, tlshub does not load (unknown symbol), and nothing is left.
rmmod tls || fail "rmmod tls with tlshub unloaded"
! insmod "$TLSHUB_KO" 2>/dev/null || fail "tlshub loaded without tls.ko"
! mod_loaded || fail "tlshub listed after a failed insmod"
load_tls
