#!/usr/bin/env bash
# Cross-build check for arm64: the kernel (Image) and the driver's modules from the test
# kernel's source tree (scripts/kbuild.sh's $KSRC: Debian's 6.12 with the patch series and the
# overlay), with ARCH=arm64 LLVM=1, configured from configs/arm64.config on top of allnoconfig
# with tinyconfig's fragments. Build only: nothing boots it.
#
#   $CXLVFIO_CACHE/arm64-linux-DEBVERSION-HASH/build              the build tree
#   $CXLVFIO_CACHE/arm64-linux-DEBVERSION-HASH/stamp              the source state it was built from
#   $CXLVFIO_CACHE/arm64-linux-DEBVERSION-HASH/arm64-build.log    output of the last build
#
# HASH covers the fragment and this script's recipe. The stamp records the patch series and the
# overlay of $KSRC (scripts/kbuild.sh's state): the driver and rust/ come from the overlay, so a
# change there rebuilds incrementally in place. The last line on stdout is the module's path.
#
#   scripts/arm64-build.sh               build if needed (after scripts/kbuild.sh), print the path
#   scripts/arm64-build.sh --print-path  print the path if built and current, else exit 1
#
# Environment: ARM64_JOBS (make -j, default nproc), ARM64_NICE (default 10), ARM64_LOCK (the
# lock shared with the other big builds, default /tmp/cxlvfio-bigbuild.lock).
set -euo pipefail
. "$(dirname "$0")/env.sh"

FRAGMENT=$REPO/configs/arm64.config
LOCK=${ARM64_LOCK:-/tmp/cxlvfio-bigbuild.lock}
JOBS=${ARM64_JOBS:-$(nproc)}
NICE=${ARM64_NICE:-10}
RECIPE="ARCH=arm64 LLVM=1; allnoconfig KCONFIG_ALLCONFIG=tiny*.config+fragment; olddefconfig; Image modules"

print_path=0
case "${1:-}" in
"") ;;
--print-path) print_path=1 ;;
*)
	echo "usage: $0 [--print-path]" >&2
	exit 2
	;;
esac

step() { echo "arm64-build: $*"; }
die() {
	echo "arm64-build: error: $*" >&2
	exit 1
}

key=$({ echo "$RECIPE"; cat "$FRAGMENT"; } | sha256sum | cut -c1-12)
AROOT=$CXLVFIO_CACHE/arm64-linux-$(base_tag)-$key
ABUILD=$AROOT/build
IMAGE=$ABUILD/arch/arm64/boot/Image
MODULE=$ABUILD/drivers/vfio/pci/cxl/cxl-vfio-pci.ko
LOG=$AROOT/arm64-build.log
# The source state: the patch series and the overlay scripts/kbuild.sh put into $KSRC.
source_state() {
	{
		cat "$KTREE_ROOT/state/series.sha" 2>/dev/null || echo none
		if [ -f "$KTREE_ROOT/state/overlay-files" ]; then
			(cd "$KSRC" && xargs -r sha256sum <"$KTREE_ROOT/state/overlay-files")
		fi
	} | sha256sum | cut -d' ' -f1
}

if [ "$print_path" = 1 ]; then
	[ -f "$AROOT/stamp" ] && [ -f "$MODULE" ] && [ "$(cat "$AROOT/stamp")" = "$(source_state)" ] || exit 1
	echo "$MODULE"
	exit 0
fi

if [ ! -f "$KTREE_ROOT/state/unpacked" ] || [ ! -f "$KTREE_ROOT/state/series.sha" ]; then
	die "no source tree in $KSRC: run scripts/kbuild.sh first"
fi
want=$(source_state)
if [ -f "$AROOT/stamp" ] && [ -f "$MODULE" ] && [ -f "$IMAGE" ] && [ "$(cat "$AROOT/stamp")" = "$want" ]; then
	step "up to date: $AROOT"
	echo "$MODULE"
	exit 0
fi

mkdir -p "$ABUILD"
rm -f "$AROOT/stamp"
: >"$LOG"
step "log: $LOG"
# The test kernel's toolchain: clang cross-compiles with --target (no CROSS_COMPILE needed), and
# rustc builds core for aarch64-unknown-none-softfloat from Debian's rust-web-src.
AMAKE=(nice -n "$NICE" make -C "$KSRC" O="$ABUILD" ARCH=arm64 LLVM=1 RUSTC="$KRUSTC"
	RUSTDOC=/usr/bin/rustdoc RUSTFMT=/usr/bin/rustfmt CLIPPY_DRIVER=/usr/bin/clippy-driver
	BINDGEN="$KBINDGEN" -j"$JOBS")

touch "$LOCK" 2>/dev/null || true
(
	exec 9>>"$LOCK"
	if ! flock -n 9; then
		step "waiting for $LOCK (another big build is running)"
		flock 9
	fi
	start=$(date +%s)
	if [ "$(cat "$AROOT/config.sha" 2>/dev/null)" != "$key" ] || [ ! -f "$ABUILD/.config" ]; then
		step "configuring: allnoconfig with tinyconfig's fragments and $(basename "$FRAGMENT")"
		all=$AROOT/allno.config
		syms=$(sed -n 's/^\(# \)\{0,1\}\(CONFIG_[A-Za-z0-9_]*\)[= ].*/\2/p' "$FRAGMENT" | sort -u)
		for f in kernel/configs/tiny-base.config kernel/configs/tiny.config; do
			grep -vwF -f <(echo "$syms") "$KSRC/$f" || true
		done >"$all"
		cat "$FRAGMENT" >>"$all"
		KCONFIG_ALLCONFIG=$all "${AMAKE[@]}" allnoconfig >>"$LOG" 2>&1 || die "allnoconfig failed, see $LOG"
		"${AMAKE[@]}" olddefconfig >>"$LOG" 2>&1 || die "olddefconfig failed, see $LOG"
		"${AMAKE[@]}" rustavailable >>"$LOG" 2>&1 ||
			die "Rust is not available for ARCH=arm64 LLVM=1, see $LOG (tail: $(tail -n 3 "$LOG" | tr '\n' ' '))"
		# Every symbol the fragment asks for must have landed.
		bad=0
		while read -r line; do
			case "$line" in
			CONFIG_*=*)
				grep -qxF "$line" "$ABUILD/.config" || {
					echo "arm64-build: config: wanted $line, got: $(grep "^${line%%=*}=\|^# ${line%%=*} " "$ABUILD/.config" || echo unset)" >&2
					bad=1
				}
				;;
			"# CONFIG_"*" is not set")
				s=${line#\# }
				s=${s%% *}
				grep -q "^$s=" "$ABUILD/.config" && { echo "arm64-build: config: wanted $s unset" >&2; bad=1; }
				;;
			esac
		done <"$FRAGMENT"
		[ "$bad" = 0 ] || exit 1
		echo "$key" >"$AROOT/config.sha"
	fi
	step "make -j$JOBS Image modules (nice $NICE; long when cold)"
	"${AMAKE[@]}" Image modules >>"$LOG" 2>&1 ||
		die "build failed, see $LOG (tail: $(tail -n 3 "$LOG" | tr '\n' ' '))"
	step "built in $(($(date +%s) - start)) s"
	# Only what was rebuilt shows up: a cold build of this tree had none.
	w=$(grep -c 'warning:' "$LOG" || true)
	[ "$w" = 0 ] || step "$w warnings, see $LOG: $(grep -m 3 'warning:' "$LOG" | tr '\n' ' ')"
)
[ -f "$IMAGE" ] || die "no $IMAGE after the build, see $LOG"
[ -f "$MODULE" ] || die "no $MODULE after the build, see $LOG"
echo "$want" >"$AROOT/stamp"
for f in "$ABUILD/vmlinux" "$MODULE" "$ABUILD/drivers/vfio/pci/cxl/cxl_vfio_claim_test.ko"; do
	[ -f "$f" ] && step "$(file -b "$f" | cut -d, -f1-2): $f"
done

# Keep this tree and the one built before it.
n=0
while read -r old; do
	n=$((n + 1))
	[ "$old" = "$AROOT" ] && continue
	if [ "$n" -gt 2 ]; then
		step "removing old tree $old"
		rm -rf "$old"
	fi
done < <(find "$CXLVFIO_CACHE" -mindepth 1 -maxdepth 1 -type d -name 'arm64-linux-*' -printf '%T@ %p\n' |
	sort -rn | cut -d' ' -f2-)
step "done: $AROOT"
echo "$MODULE"
