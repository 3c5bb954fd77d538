# Helpers for VM tests (sourced). Each test is a bash script run as root
# inside tlshub's kernel by tests/vm/run-all; it fails by exiting non-zero.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() { [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"; }

# expect_contains WHAT NEEDLE HAYSTACK
expect_contains() { case "$3" in *"$2"*) ;; *) fail "$1: '$2' not in: $3";; esac; }

mod_loaded() { grep -q '^tlshub ' /proc/modules; }

# kTLS is a module of the test kernel (CONFIG_TLS=m, as distributions
# ship it); the VM runs on the host's root fs, whose /lib/modules is not the
# test kernel's, so it is inserted from the kernel tree (tlshub asks for it
# with request_module on a real node).
tls_loaded() { grep -q '^tls ' /proc/modules; }
load_tls() { tls_loaded || insmod "$TLSHUB_KSRC/net/tls/tls.ko" || fail "insmod tls.ko"; }

# Whether the module's reference count is sane. Negative: a reference was
# dropped twice (our bug); `rmmod` would then hit the kernel's BUG_ON in
# try_release_module_ref and take the VM down, so nothing unloads it.
mod_refs_sane() { [ "$(cat /sys/module/tlshub/refcnt 2>/dev/null || echo 0)" -ge 0 ]; }

# rmmod_tlshub: the module holds a reference for every socket carrying its
# ops, so rmmod fails ("in use") while one does: `tlshubctl drain` lets go
# of them first; then rmmod, retried for a few seconds while calls that
# entered through the gate are still inside kTLS.
rmmod_tlshub() {
    local i
    tlshubctl drain >/dev/null 2>&1 || true
    mod_refs_sane || { echo "tlshub's module reference count is $(cat /sys/module/tlshub/refcnt): dropped twice; not unloading (rmmod would BUG)" >&2; return 1; }
    for i in $(seq 50); do rmmod tlshub 2>/dev/null && return 0; sleep 0.2; done
    rmmod tlshub
}

load_module() {
    mod_loaded && rmmod_tlshub
    load_tls
    insmod "$TLSHUB_KO" || fail "insmod $TLSHUB_KO"
}

# tls_stat NETNS COUNTER: a /proc/net/tls_stat counter in a pod's netns.
tls_stat() { nsenter --net="/run/netns/$1" awk -v c="$2" '$1 == c {print $2}' /proc/net/tls_stat; }

unload_module() {
    rmmod_tlshub || fail "rmmod tlshub"
    ! mod_loaded || fail "module still listed after rmmod"
}

family_registered() { genl ctrl get name tlshub >/dev/null 2>&1; }

# Fail if kmemleak finds unreferenced objects allocated by our module (it
# only reports objects older than 5 s, hence the wait and the second scan).
# Ours: a backtrace frame in tlshub or in kTLS (tls.ko: contexts we made it
# set up), or a bare address (a frame in a module that has been unloaded
# since). Other reports are shown but do not fail the check: they are the
# rest of the kernel's business (or false positives). tests/vm/run-all runs
# it once, after the whole suite.
kmemleak_check() {
    local f=/sys/kernel/debug/kmemleak
    [ -w $f ] || fail "kmemleak not available"
    echo scan > $f; sleep 6; echo scan > $f
    local leaks ours
    leaks=$(cat $f)
    [ -z "$leaks" ] && return 0
    ours=$(awk 'function mine(x) { return x ~ /tlshub/ || x ~ /\[tls\]/ || x ~ /\n +0x[0-9a-f]+\n/ }
                /^unreferenced object/ { if (mine(b)) print b; b = "" } { b = b $0 "\n" }
                END { if (mine(b)) print b }' <<<"$leaks")
    if [ -n "$ours" ]; then printf '%b' "$ours" | head -40 >&2; fail "kmemleak reports leaks from tlshub, kTLS or an unloaded module"; fi
    echo "kmemleak: reports outside tlshub (ignored):" >&2; echo "$leaks" | head -20 >&2
}

# The seed's print_pod_node_mapping() output for a mapping file, from the C
# reference (ref_print.c): comments, `node` lines and the legacy header out.
ref_table() {
    [ -x /tmp/ref_print ] || gcc -O1 -o /tmp/ref_print ref_print.c
    sed 's/#.*//' "$1" | grep -vE '^[[:space:]]*node[[:space:]]|^pod_name node_name[[:space:]]*$' | /tmp/ref_print
}

# A mapping file of N pods over 50 nodes, each pod with an IPv4 and an IPv6.
gen_mapping() {
    awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++)
        printf "pod-%d node-%d 10.%d.%d.%d fd00::%x:%x\n", i, i % 50, int(i / 65536) % 256, int(i / 256) % 256, i % 256, int(i / 65536), i % 65536 }'
}

# Run as an unprivileged user (no capabilities).
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$@"; }

# The module's version, as kmod/tlshub.rs declares it.
module_version() { sed -n 's/^pub(crate) const VERSION: &str = "\(.*\)";/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../../kmod/tlshub.rs"; }
