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

# Where the built kernel for the current inputs lives (see scripts/kernel-build).
kernel_key() {
    local pkgver
    pkgver=$(dpkg-query -W -f='${Version}' "$KERNEL_SRC_PKG" 2>/dev/null) || pkgver=none
    {
        echo "pkg $KERNEL_SRC_PKG $pkgver"
        for p in "$TLSHUB_ROOT"/kernel/patches/*.patch; do
            [ -e "$p" ] && { echo "patch $(basename "$p")"; cat "$p"; }
        done
        echo "fragment"; cat "$TLSHUB_ROOT/kernel/tlshub.config"
        echo "build-script"; cat "$TLSHUB_ROOT/scripts/kernel-build"
        rustc --version; clang$LLVM_SUFFIX --version | head -1
        "$TOOLS_PREFIX/bin/bindgen" --version 2>/dev/null
    } | sha256sum | cut -c1-16
}
kernel_dir() { echo "$TLSHUB_CACHE/kernel-$(kernel_key)"; }
