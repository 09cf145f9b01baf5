#!/usr/bin/env bash
# In the test VM on the project's QEMU 10.0 (VM_QEMU_FLAVOR=project, vm-run --setup fw: the
# firmware emulation committed the decoders, cxl-vfio-pci is not loaded): the kernel's own CXL
# driver takes the type-3 memory device ($CXL_BDF), as on a real host; then the documented move
# to cxl-vfio-pci (unbind, driver_override, bind) works, the CXL memdev goes away and the
# device offers its DPA region through VFIO. Prints KTAP; exit 0 only if all pass.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1

PLAN=5
n=0
failed=0
result() { # result NAME WHY: passes when WHY is empty
	n=$((n + 1))
	if [ -z "$2" ]; then
		echo "ok $n $1"
	else
		failed=$((failed + 1))
		echo "not ok $n $1 # $2"
	fi
}
driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }
# Waits up to 10 s for FILE's driver to become DRIVER (probing is asynchronous).
await_driver() {
	local _
	for _ in $(seq 50); do
		[ "$(driver_of "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	return 1
}
memdevs() { ls -d /sys/bus/cxl/devices/mem* 2>/dev/null; }

echo "KTAP version 1"
echo "1..$PLAN"
bdf=${CXL_BDF:-}
[ -n "$bdf" ] || { echo "# no CXL_BDF"; exit 1; }
mark="cxl-stack test $$ $(date +%s%N)"
echo "$mark" >/dev/kmsg

why=
if ! out=$(modprobe cxl_pci 2>&1); then
	why="modprobe cxl_pci: $out"
elif ! await_driver "$bdf" cxl_pci; then
	why="$bdf is bound to '$(driver_of "$bdf")', not cxl_pci"
fi
result cxl_pci_binds_the_type3 "$why"

why=
[ -n "$(memdevs)" ] || why="no memdev under /sys/bus/cxl/devices"
echo "# memdevs: $(memdevs | xargs -r -n1 basename | xargs)"
result cxl_memdev_registered "$why"

why=
if ! echo "$bdf" >/sys/bus/pci/drivers/cxl_pci/unbind; then
	why="unbind from cxl_pci failed"
elif ! echo Y >/sys/module/vfio/parameters/enable_unsafe_noiommu_mode; then
	why="cannot enable VFIO no-IOMMU mode"
elif ! out=$(modprobe cxl-vfio-pci 2>&1); then
	why="modprobe cxl-vfio-pci: $out"
elif ! echo cxl-vfio-pci >"/sys/bus/pci/devices/$bdf/driver_override"; then
	why="cannot set driver_override"
elif ! echo "$bdf" >/sys/bus/pci/drivers_probe; then
	why="drivers_probe failed"
elif ! await_driver "$bdf" cxl-vfio-pci; then
	why="$bdf is bound to '$(driver_of "$bdf")', not cxl-vfio-pci"
elif [ -n "$(memdevs)" ]; then
	why="the memdev is still there: $(memdevs | xargs)"
fi
result moved_to_cxl_vfio_pci "$why"

why=
info=$(target/release/cxlvfio info "$bdf" 2>&1) || why="cxlvfio info failed: $(tail -n 3 <<<"$info")"
[ -n "$why" ] || grep -q 'type(0x80001e98,0x1)' <<<"$info" || why="no DPA region after the move"
result dpa_region_offered "$why"

why=
problems=$(dmesg | sed -n "/$mark/,\$p" | grep -E 'WARNING:|BUG:|Oops|general protection|possible circular|inconsistent lock state|UBSAN:|refcount_t:' || true)
[ -z "$problems" ] || why="kernel log: $(head -n 3 <<<"$problems" | tr '\n' ' ')"
result kernel_log_clean "$why"

echo "# Totals: pass:$((n - failed)) fail:$failed xfail:0 xpass:0 skip:0 error:0"
[ "$failed" = 0 ] && [ "$n" = "$PLAN" ]
