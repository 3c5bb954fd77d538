# Shared settings for tlshub's scripts. Source it; do not run it.
# Every script puts the Debian toolchain first: rustup's rustc has no rust-src
# for the kernel's own `core` build and cannot fetch one here.

TLSHUB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TLSHUB_CACHE=${TLSHUB_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/tlshub}
TOOLS_PREFIX=$TLSHUB_CACHE/tools
export PATH="/usr/bin:$TOOLS_PREFIX/bin:$PATH"
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
LLVM_SUFFIX=-19
BINDGEN_VERSION=0.69.5
KERNEL_SRC_PKG=linux-source-6.12

log() { printf '[tlshub] %s\n' "$*" >&2; }
die() { printf '[tlshub] error: %s\n' "$*" >&2; exit 1; }

# Which kernel: `test` (default; kernel/tlshub.config, with KASAN, lockdep,
# kmemleak, strict RCU: every test runs on it) or `bench` (the same source
# and patches, with kernel/bench.config on top: configured as a distribution
# ships it, for `make bench` only). Each has its own cache trees.
TLSHUB_KERNEL=${TLSHUB_KERNEL:-test}
case $TLSHUB_KERNEL in
test) KERNEL_TREE=kernel ;;
bench) KERNEL_TREE=bench-kernel ;;
*) printf '[tlshub] error: TLSHUB_KERNEL=%s: expected test or bench\n' "$TLSHUB_KERNEL" >&2; exit 1 ;;
esac

# Config fragments of this kernel, in merge order (a later one overrides).
kernel_fragments() {
    echo "$TLSHUB_ROOT/kernel/tlshub.config"
    [ "$TLSHUB_KERNEL" = bench ] && echo "$TLSHUB_ROOT/kernel/bench.config"
    return 0
}

# The module for this kernel (scripts/kmod-build): the test kernel's is built
# in place (kmod/tlshub.ko); the benchmark kernel's from a copy of kmod/ and
# spec/ inside that kernel's cache tree, $1 (KDIR).
kmod_ko() {
    if [ "$TLSHUB_KERNEL" = test ]; then echo "$TLSHUB_ROOT/kmod/tlshub.ko"
    else echo "$1/tlshub-kmod/kmod/tlshub.ko"; fi
}

# kmod_copy DEST: the module's sources (kmod/, and the spec/ file it
# includes) copied to DEST, for a build outside kmod/ (clippy, another kernel).
kmod_copy() {
    (cd "$TLSHUB_ROOT" && find kmod spec -type f \( -name '*.rs' -o -name Kbuild -o -name Makefile -o -name '*.[ch]' \) \
        | cpio -pdm --quiet "$1")
}

# Where the built kernel for the current inputs lives (see scripts/kernel-build).
kernel_key() {
    local pkgver
    pkgver=$(dpkg-query -W -f='${Version}' "$KERNEL_SRC_PKG" 2>/dev/null) || pkgver=none
    {
        echo "pkg $KERNEL_SRC_PKG $pkgver"
        for p in "$TLSHUB_ROOT"/kernel/patches/*.patch; do
            [ -e "$p" ] && { echo "patch $(basename "$p")"; cat "$p"; }
        done
        for f in $(kernel_fragments); do echo "fragment $(basename "$f")"; cat "$f"; done
        echo "build-script"; cat "$TLSHUB_ROOT/scripts/kernel-build"
        rustc --version; clang$LLVM_SUFFIX --version | head -1
        "$TOOLS_PREFIX/bin/bindgen" --version 2>/dev/null
    } | sha256sum | cut -c1-16
}
kernel_dir() { echo "$TLSHUB_CACHE/$KERNEL_TREE-$(kernel_key)"; }

# Hold a shared lock on the kernel tree $1 for the rest of this process, so
# that no concurrent build's housekeeping deletes it (see scripts/kernel-build).
kernel_tree_lock() {
    exec 7>>"$1.lock"
    flock -s 7
}

# kernel_use: make sure the kernel tree for the current inputs is built
# (scripts/kernel-build), then hold it (kernel_tree_lock) for the rest of
# this process; sets KDIR. Never call kernel-build for an unbuilt tree while
# holding that tree's shared lock: its exclusive lock would wait for us
# forever. So the lock is taken only after kernel-build returned, and if
# the tree vanished in between (pruned by a concurrent run), we let go and
# build again.
kernel_use() {
    local try dir
    for try in 1 2 3; do
        dir=$("$TLSHUB_ROOT/scripts/kernel-build") || return 1
        kernel_tree_lock "$dir"
        if [ -e "$dir/.built" ]; then KDIR=$dir; return 0; fi
        exec 7>&-
    done
    die "kernel tree $dir keeps disappearing"
}

# kernel_cache_prune KEEP_DIR: scripts/kernel-build's housekeeping, the same
# loop (scripts/test checks they stay identical, and tests the protocol with
# it): keep KEEP_DIR and the most recent other tree, delete the rest, but
# only trees nobody holds (no shared lock from kernel_tree_lock, no build's
# exclusive lock).
kernel_cache_prune() {
    local dir=$1 old
    # --- copy of scripts/kernel-build's loop, begin
for old in $(ls -dt "$TLSHUB_CACHE/$KERNEL_TREE"-*/ 2>/dev/null | sed 's#/$##' | grep -vxF "$dir" | tail -n +2); do
    (exec 8>>"$old.lock"; flock -n -x 8 && rm -rf "$old") || true
done
    # --- copy of scripts/kernel-build's loop, end
}
