#!/bin/sh
# Boot a busybox guest on our QEMU with one CXL endpoint below a pxb-cxl root
# port and print what the guest sees (DVSECs, BAR 0, registers, CXL.mem
# through the CFMWS window, D3hot, reset). Not part of `make test`.
#
#   qemu/tests/accel-smoke/run.sh [VARIANT...]
#   VARIANT: accel (default), accel-start2, accel-end4, type3
#
# Needs the test kernel (scripts/kbuild.sh) and busybox-static; output in
# ${TMPDIR:-/tmp}/cxl-accel-smoke/VARIANT.serial.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${TMPDIR:-/tmp}/cxl-accel-smoke
cache=${CXLVFIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cxl-vfio-pci}
qemu=$("$repo/scripts/qemu-build.sh" --print-path) || {
	echo "run scripts/qemu-build.sh first" >&2
	exit 1
}
bz=$(ls "$cache"/linux-*/build/arch/x86/boot/bzImage 2>/dev/null | head -n1)
[ -n "$bz" ] || { echo "no test kernel in $cache" >&2; exit 1; }
[ -x /bin/busybox ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null

mkdir -p "$out"
root=$out/root
rm -rf "$root"
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev"
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -sf /bin/busybox "$root/bin/$a"
done
cp "$here/guest-init.sh" "$root/init"
cp "$here/pciparse.awk" "$here/cedt.awk" "$root/"
(cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$out/initramfs.gz"

[ $# -gt 0 ] || set -- accel
for v in "$@"; do
	case $v in
	accel) size=256M dev=cxl-accel,volatile-memdev=cxl-mem0 ;;
	accel-start2) size=512M dev=cxl-accel,volatile-memdev=cxl-mem0,comp-block=start,hdm-decoders=2 ;;
	accel-end4) size=512M dev=cxl-accel,volatile-memdev=cxl-mem0,comp-block=end,hdm-decoders=4 ;;
	type3) size=256M dev=cxl-type3,volatile-memdev=cxl-mem0 ;;
	*) echo "unknown variant $v" >&2; exit 2 ;;
	esac
	rm -f "$out/$v.mem" "$out/$v.serial"
	nice -n 10 timeout 300 "$qemu" -M q35,cxl=on -m 1G,maxmem=4G,slots=4 -smp 1 \
		-nographic -monitor none -serial "file:$out/$v.serial" -net none -no-reboot \
		-kernel "$bz" -initrd "$out/initramfs.gz" \
		-append "console=ttyS0 panic=-1 kunit.enable=0" \
		-object "memory-backend-file,id=cxl-mem0,share=on,mem-path=$out/$v.mem,size=$size" \
		-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1 \
		-device cxl-rp,port=0,bus=cxl.1,id=rp0,chassis=0,slot=2 \
		-device "$dev,bus=rp0,id=ep0" \
		-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G
	echo "##### $v ($out/$v.serial)"
	sed -n '/=== GUEST START/,/=== GUEST DONE/p' "$out/$v.serial"
	printf 'backend file at 0 and 0x1000 (written through the window): '
	od -A n -t x4 -j 0 -N 4 "$out/$v.mem" | tr -d '\n'
	od -A n -t x4 -j 4096 -N 4 "$out/$v.mem"
done
