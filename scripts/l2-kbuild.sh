#!/usr/bin/env bash
# Build the nested guest's (L2's) kernel: the same source tree as the test kernel
# (scripts/kbuild.sh's $KSRC: Debian's 6.12 with the patch series and the overlay), configured
# from configs/l2-guest.config on top of tinyconfig. A small kernel without debug options,
# because L2 boots under TCG inside TCG; its CXL modules go into scripts/l2-initramfs.sh.
#
#   $CXLVFIO_CACHE/l2-linux-DEBVERSION-HASH/build            the build tree
#   $CXLVFIO_CACHE/l2-linux-DEBVERSION-HASH/stamp            the source state it was built from
#   $CXLVFIO_CACHE/l2-linux-DEBVERSION-HASH/l2-kbuild.log    output of the last build
#
# HASH covers the fragment and this script's recipe; the stamp records the patch series of
# $KSRC (0010 changes kernel/resource.c), so a new series rebuilds incrementally in place.
# The last line on stdout is the path of the bzImage.
#
#   scripts/l2-kbuild.sh               build if needed (after scripts/kbuild.sh), print the path
#   scripts/l2-kbuild.sh --print-path  print the path if built and current, else exit 1
set -euo pipefail
. "$(dirname "$0")/env.sh"

FRAGMENT=$REPO/configs/l2-guest.config
LOCK=/tmp/cxlvfio-bigbuild.lock
RECIPE="allnoconfig KCONFIG_ALLCONFIG=tiny*.config+fragment; olddefconfig; LLVM=1; bzImage modules"

print_path=0
case "${1:-}" in
"") ;;
--print-path) print_path=1 ;;
*)
	echo "usage: $0 [--print-path]" >&2
	exit 2
	;;
esac

step() { echo "l2-kbuild: $*"; }
die() {
	echo "l2-kbuild: error: $*" >&2
	exit 1
}

key=$({ echo "$RECIPE"; cat "$FRAGMENT"; } | sha256sum | cut -c1-12)
L2ROOT=$CXLVFIO_CACHE/l2-linux-$(base_tag)-$key
L2BUILD=$L2ROOT/build
BZ=$L2BUILD/arch/x86/boot/bzImage
LOG=$L2ROOT/l2-kbuild.log
# The source state: the patch series scripts/kbuild.sh applied to $KSRC.
source_state() { cat "$KTREE_ROOT/state/series.sha" 2>/dev/null || echo none; }

if [ "$print_path" = 1 ]; then
	[ -f "$L2ROOT/stamp" ] && [ -f "$BZ" ] && [ "$(cat "$L2ROOT/stamp")" = "$(source_state)" ] || exit 1
	echo "$BZ"
	exit 0
fi

if [ ! -f "$KTREE_ROOT/state/unpacked" ] || [ ! -f "$KTREE_ROOT/state/series.sha" ]; then
	die "no source tree in $KSRC: run scripts/kbuild.sh first"
fi
want=$(source_state)
if [ -f "$L2ROOT/stamp" ] && [ -f "$BZ" ] && [ "$(cat "$L2ROOT/stamp")" = "$want" ]; then
	step "up to date: $L2ROOT"
	echo "$BZ"
	exit 0
fi

mkdir -p "$L2BUILD"
rm -f "$L2ROOT/stamp"
: >"$LOG"
step "log: $LOG"
# The test kernel's toolchain (clang, LLVM=1); RUSTC only so that Kconfig's probe is quiet.
L2MAKE=(nice -n 10 make -C "$KSRC" O="$L2BUILD" LLVM=1 RUSTC="$KRUSTC" -j2)

touch "$LOCK" 2>/dev/null || true
(
	exec 9>>"$LOCK"
	if ! flock -n 9; then
		step "waiting for $LOCK (another big build is running)"
		flock 9
	fi
	start=$(date +%s)
	if [ "$(cat "$L2ROOT/config.sha" 2>/dev/null)" != "$key" ] || [ ! -f "$L2BUILD/.config" ]; then
		# allnoconfig with tinyconfig's fragments and ours as KCONFIG_ALLCONFIG: every option
		# neither names is off. (tinyconfig followed by a merge and olddefconfig would give the
		# options below ACPI, TTY and PCI their defaults: VT, input, ACPI fan, cpufreq...)
		step "configuring: allnoconfig with tinyconfig's fragments and $(basename "$FRAGMENT")"
		all=$L2ROOT/allno.config
		syms=$(sed -n 's/^\(# \)\{0,1\}\(CONFIG_[A-Za-z0-9_]*\)[= ].*/\2/p' "$FRAGMENT" | sort -u)
		for f in kernel/configs/tiny-base.config kernel/configs/tiny.config arch/x86/configs/tiny.config; do
			grep -vwF -f <(echo "$syms") "$KSRC/$f" || true
		done >"$all"
		cat "$FRAGMENT" >>"$all"
		KCONFIG_ALLCONFIG=$all "${L2MAKE[@]}" allnoconfig >>"$LOG" 2>&1 || die "allnoconfig failed, see $LOG"
		"${L2MAKE[@]}" olddefconfig >>"$LOG" 2>&1 || die "olddefconfig failed, see $LOG"
		# Every symbol the fragment asks for must have landed.
		bad=0
		while read -r line; do
			case "$line" in
			CONFIG_*=*)
				grep -qxF "$line" "$L2BUILD/.config" || {
					echo "l2-kbuild: config: wanted $line, got: $(grep "^${line%%=*}=\|^# ${line%%=*} " "$L2BUILD/.config" || echo unset)" >&2
					bad=1
				}
				;;
			"# CONFIG_"*" is not set")
				s=${line#\# }
				s=${s%% *}
				grep -q "^$s=" "$L2BUILD/.config" && { echo "l2-kbuild: config: wanted $s unset" >&2; bad=1; }
				;;
			esac
		done <"$FRAGMENT"
		[ "$bad" = 0 ] || exit 1
		echo "$key" >"$L2ROOT/config.sha"
	fi
	step "make -j2 bzImage modules (nice 10; a few minutes when cold)"
	"${L2MAKE[@]}" bzImage modules >>"$LOG" 2>&1 ||
		die "build failed, see $LOG (tail: $(tail -n 3 "$LOG" | tr '\n' ' '))"
	step "built in $(($(date +%s) - start)) s"
)
[ -f "$BZ" ] || die "no $BZ after the build, see $LOG"
echo "$want" >"$L2ROOT/stamp"

# Keep this tree and the one built before it.
n=0
while read -r old; do
	n=$((n + 1))
	[ "$old" = "$L2ROOT" ] && continue
	if [ "$n" -gt 2 ]; then
		step "removing old tree $old"
		rm -rf "$old"
	fi
done < <(find "$CXLVFIO_CACHE" -mindepth 1 -maxdepth 1 -type d -name 'l2-linux-*' -printf '%T@ %p\n' |
	sort -rn | cut -d' ' -f2-)
step "done: $L2ROOT"
echo "$BZ"
