# shellcheck shell=bash
# Common paths and toolchain for every harness script. Source it, don't run it.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REPO
# Everything big lives outside the repo, in a cache shared by every clone.
CXLVFIO_CACHE=${CXLVFIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cxl-vfio-pci}
KSRC_TARBALL=${KSRC_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
# cargo-installed bindgen, and pip-installed virtme-ng (vng) wherever pip puts scripts.
PATH="$HOME/.cargo/bin:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null):$PATH"
export PATH
# The kernel needs Debian's rustc-web (it ships rust-src); the rustup toolchain
# on PATH is for host crates only.
KRUSTC=${KRUSTC:-/usr/bin/rustc}
KBINDGEN=${KBINDGEN:-$(command -v bindgen || echo "$HOME/.cargo/bin/bindgen")}
base_tag() {
	# Debian package version of the base tree: the first part of the cache key.
	# Before scripts/setup.sh has installed the package there is none yet: callers
	# that need the tree source this file again after setup (never fail here, since
	# every script sources it under `set -euo pipefail`).
	local v
	v=$(dpkg-query -W -f '${Version}' linux-source-6.12 2>/dev/null) || v=""
	[ -n "$v" ] || v=not-installed
	printf '%s' "$v" | tr '~+:' '___'
}
# CXLVFIO_KTREE_ROOT: another prepared tree (src/ and state/ as scripts/kbuild.sh leaves them).
KTREE_ROOT="${CXLVFIO_KTREE_ROOT:-$CXLVFIO_CACHE/linux-$(base_tag)}"
KSRC="$KTREE_ROOT/src"
# KERNEL_FLAVOR picks the configuration and its build directory, from the same source tree:
#   default: configs/cxl-vfio-test.config, in build/;
#   sanitize: the same plus configs/cxl-vfio-sanitize.config (KASAN, kmemleak, UBSAN, ...),
#     in build-sanitize/ (`make test-sanitize`).
KERNEL_FLAVOR=${KERNEL_FLAVOR:-default}
case "$KERNEL_FLAVOR" in
default) KBUILD="$KTREE_ROOT/build" ;;
sanitize) KBUILD="$KTREE_ROOT/build-sanitize" ;;
*)
	echo "env.sh: KERNEL_FLAVOR must be default or sanitize, not '$KERNEL_FLAVOR'" >&2
	return 2
	;;
esac
KMAKE=(make -C "$KSRC" O="$KBUILD" LLVM=1 RUSTC="$KRUSTC" RUSTDOC=/usr/bin/rustdoc
	RUSTFMT=/usr/bin/rustfmt CLIPPY_DRIVER=/usr/bin/clippy-driver
	BINDGEN="$KBINDGEN" -j"$(nproc)")
