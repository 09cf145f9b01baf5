#!/usr/bin/env bash
# Builds the nested guest's initramfs (tests/vm/nested.sh, make demo-guest): Debian's
# busybox-static, tests/vm/nested/init and the awk parsers it shares with
# qemu/tests/accel-smoke, the CXL modules of the nested guest's kernel (debug info
# stripped), and ndctl's `cxl` and pciutils' `lspci` with the shared libraries they load
# and the PCI ID list. An uncompressed cpio made by the kernel's
# gen_init_cpio.
# usage: scripts/l2-initramfs.sh OUTPUT [KERNEL_BUILD_DIR]
# KERNEL_BUILD_DIR (or $L2_KBUILD): the kernel build tree whose modules go in, which must be the
# tree of the kernel the guest boots. Default: scripts/l2-kbuild.sh's (the small L2 kernel);
# $KBUILD is the test kernel's.
set -euo pipefail
. "$(dirname "$0")/env.sh"
out=${1:?usage: scripts/l2-initramfs.sh OUTPUT [KERNEL_BUILD_DIR]}
kb=${2:-${L2_KBUILD:-}}
if [ -z "$kb" ]; then
	bz=$("$REPO/scripts/l2-kbuild.sh" --print-path) ||
		{ echo "l2-initramfs: the nested guest's kernel is not built: run scripts/l2-kbuild.sh" >&2; exit 1; }
	kb=${bz%/arch/x86/boot/bzImage}
fi
gen=$kb/usr/gen_init_cpio
[ -x "$gen" ] || { echo "l2-initramfs: no $gen: build that kernel first" >&2; exit 1; }
work=$(mktemp -d /tmp/l2-initramfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
list=$work/list
dirs=" "
dir() { # every parent of $1, once
	local d=$1 parts=()
	while [ "$d" != / ] && [ "$d" != . ]; do parts=("$d" "${parts[@]}"); d=$(dirname "$d"); done
	for d in "${parts[@]}"; do
		case "$dirs" in *" $d "*) ;; *) echo "dir $d 755 0 0" >>"$list"; dirs="$dirs$d ";; esac
	done
}
add() { # add DEST SOURCE MODE
	dir "$(dirname "$1")"
	echo "file $1 $(readlink -f "$2") $3 0 0" >>"$list"
}
# A dynamically linked program and every library it loads, at the paths the loader uses.
add_program() {
	local prog lib
	prog=$(command -v "$1") || { echo "l2-initramfs: $1 is not installed (scripts/setup.sh)" >&2; exit 1; }
	add "/bin/$1" "$prog" 755
	for lib in $(ldd "$prog" | grep -oE '/[^ ]+\.so[^ ]*'); do
		case "$added_libs" in *" $lib "*) continue ;; esac
		added_libs="$added_libs$lib "
		add "$lib" "$lib" 755
	done
}
added_libs=" "
for d in /proc /sys /dev /tmp; do dir "$d"; done
busybox=$(command -v busybox)
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	ldd "$busybox" 2>&1 | grep -q 'not a dynamic' ||
	{ echo "l2-initramfs: $busybox is not static: install busybox-static" >&2; exit 1; }
add /bin/busybox "$busybox" 755
for applet in $("$busybox" --list); do
	[ "$applet" = busybox ] || echo "slink /bin/$applet busybox 777 0 0" >>"$list"
done
echo "slink /sbin /bin 777 0 0" >>"$list"
add /init "$REPO/tests/vm/nested/init" 755
add /cedt.awk "$REPO/qemu/tests/accel-smoke/cedt.awk" 644
add /pciparse.awk "$REPO/qemu/tests/accel-smoke/pciparse.awk" 644
dir /lib/modules/cxl
for m in firmware_class cxl_core cxl_port cxl_acpi cxl_mem cxl_pci; do
	ko=$(find "$kb/drivers" -name "$m.ko" | head -n 1)
	[ -n "$ko" ] || { echo "l2-initramfs: no $m.ko in $kb" >&2; exit 1; }
	llvm-strip --strip-debug -o "$work/$m.ko" "$ko"
	add "/lib/modules/cxl/$m.ko" "$work/$m.ko" 644
done
add_program cxl
add_program lspci
add /usr/share/misc/pci.ids /usr/share/misc/pci.ids 644
"$gen" "$list" >"$out.tmp"
mv "$out.tmp" "$out"
