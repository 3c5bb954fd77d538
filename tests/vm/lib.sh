# Helpers for VM tests (sourced). Each test is a bash script run as root
# inside tlshub's kernel by tests/vm/run-all; it fails by exiting non-zero.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() { [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"; }

# expect_contains WHAT NEEDLE HAYSTACK
expect_contains() { case "$3" in *"$2"*) ;; *) fail "$1: '$2' not in: $3";; esac; }

mod_loaded() { grep -q '^tlshub ' /proc/modules; }

load_module() {
    mod_loaded && rmmod tlshub
    insmod "$TLSHUB_KO" || fail "insmod $TLSHUB_KO"
}

unload_module() {
    rmmod tlshub || fail "rmmod tlshub"
    ! mod_loaded || fail "module still listed after rmmod"
}

family_registered() { genl ctrl get name tlshub >/dev/null 2>&1; }

# Fail if kmemleak finds unreferenced objects (it only reports objects older
# than 5 s, hence the wait and the second scan).
kmemleak_check() {
    local f=/sys/kernel/debug/kmemleak
    [ -w $f ] || fail "kmemleak not available"
    echo scan > $f; sleep 6; echo scan > $f
    local leaks; leaks=$(cat $f)
    [ -z "$leaks" ] || { echo "$leaks" | head -40 >&2; fail "kmemleak reports leaks"; }
}
