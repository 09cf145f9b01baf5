#!/usr/bin/env bash
# In the test VM on the project's QEMU 10.0 (vm-run --setup fw: the firmware emulation
# committed the decoders, cxl-vfio-pci is not loaded): the kernel's CXL stack (cxl_acpi,
# cxl_port, cxl_mem, cxl_pci) takes the type-3 memory device ($CXL_BDF), as on a real host;
# the documented move to cxl-vfio-pci (unbind, driver_override, bind) works, the CXL memdev
# goes away (`cxl list`) and the device offers its DPA region through VFIO; with the CXL stack
# still loaded, every reset path of the DPA suite's stress test keeps the kernel log clean;
# and the move back (unbind, clear driver_override, bind cxl_pci) gives the host its memdev
# again. Prints KTAP; exit 0 only if all pass.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1

PLAN=9
. tests/vm/lib.sh
memdevs() { ls -d /sys/bus/cxl/devices/mem* 2>/dev/null; }
# The memdevs `cxl list` (ndctl) shows for this device, one "memN" per line.
cxl_memdevs() { cxl list -M 2>/dev/null | tr -d ' \t\n' | grep -o "\"memdev\":\"mem[0-9]*\"[^}]*\"host\":\"$bdf\"" | grep -o 'mem[0-9]*' | head -n 1; }

echo "KTAP version 1"
echo "1..$PLAN"
bdf=${CXL_BDF:-}
[ -n "$bdf" ] || { echo "# no CXL_BDF"; exit 1; }
mark="cxl-stack test $$ $(date +%s%N)"
echo "$mark" >/dev/kmsg

why=
if ! out=$(modprobe -a cxl_acpi cxl_port cxl_mem cxl_pci 2>&1); then
	why="modprobe cxl_acpi cxl_port cxl_mem cxl_pci: $out"
elif ! await_driver "$bdf" cxl_pci; then
	why="$bdf is bound to '$(driver_of "$bdf")', not cxl_pci"
fi
result cxl_pci_binds_the_type3 "$why"

why=
[ -n "$(memdevs)" ] || why="no memdev under /sys/bus/cxl/devices"
echo "# memdevs: $(memdevs | xargs -r -n1 basename | xargs)"
result cxl_memdev_registered "$why"

why=
command -v cxl >/dev/null || why="no cxl tool (Debian's ndctl) in the VM"
[ -n "$why" ] || [ -n "$(cxl_memdevs)" ] || why="cxl list -M shows no memdev of $bdf: $(cxl list -M 2>&1 | head -c 300)"
result cxl_list_shows_memdev "$why"

# The move's first step: delete the host's regions on the device while it is still the
# host's. Behind QEMU's pass-through host bridges 6.12's assembly fails half-way and keeps
# region0 on the range (cxl-vfio-pci would refuse the open; deleting it after the move is a
# use-after-free in 6.12's CXL core). The endpoint port's probe assembles regions: wait for it.
why=
for _ in $(seq 50); do
	ls -d /sys/bus/cxl/devices/endpoint*/driver >/dev/null 2>&1 && break
	sleep 0.2
done
# `cxl list -Ri`: a region whose assembly failed is disabled, which `cxl list -R` leaves out.
regions=$(cxl list -Ri 2>/dev/null | tr -d ' \t\n' | grep -o '"region":"region[0-9]*"' | cut -d'"' -f4 | xargs)
echo "# host regions: ${regions:-none}"
for r in $regions; do
	cxl disable-region "$r" 2>&1 | sed 's/^/#   /'
	echo "$r" >"$(readlink -f "/sys/bus/cxl/devices/$r/..")/delete_region" || why="cannot delete $r"
done
[ -n "$why" ] || [ -z "$(ls -d /sys/bus/cxl/devices/region* 2>/dev/null)" ] || why="a region is left: $(ls -d /sys/bus/cxl/devices/region* | xargs)"
result host_regions_deleted "$why"

why=
if ! echo "$bdf" >/sys/bus/pci/drivers/cxl_pci/unbind; then
	why="unbind from cxl_pci failed"
elif [ "${CXLVFIO_IOMMU:-}" = noiommu ] && ! echo Y >/sys/module/vfio/parameters/enable_unsafe_noiommu_mode; then
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
[ -n "$why" ] || [ -z "$(cxl_memdevs)" ] || why="cxl list -M still shows $(cxl_memdevs) for $bdf"
result moved_to_cxl_vfio_pci "$why"

why=
info=$(target/release/cxlvfio info "$bdf" 2>&1) || why="cxlvfio info failed: $(tail -n 3 <<<"$info")"
[ -n "$why" ] || grep -q 'type(0x80001e98,0x1)' <<<"$info" || why="no DPA region after the move"
result dpa_region_offered "$why"

# Every reset path (VFIO_DEVICE_RESET, a sysfs reset, LOW_POWER_EXIT) with the CXL stack loaded.
why=
for m in cxl_acpi cxl_port cxl_mem cxl_pci; do
	[ -d "/sys/module/$m" ] || why="$why $m is not loaded;"
done
if [ -z "$why" ]; then
	out=$(target/release/cxlvfio-dpa --device "$bdf" --only dpa_stress_resets --resets 30 2>&1) ||
		why="the DPA stress test failed: $(grep -E '^not ok|^# (stress|dpa_stress)' <<<"$out" | head -n 3 | tr '\n' ' ')"
	grep -E '^# stress:' <<<"$out"
fi
result resets_with_cxl_stack_loaded "$why"

# The move back: the host gets its CXL memory device again.
why=
if ! echo "$bdf" >/sys/bus/pci/drivers/cxl-vfio-pci/unbind; then
	why="unbind from cxl-vfio-pci failed"
elif ! echo >"/sys/bus/pci/devices/$bdf/driver_override"; then
	why="cannot clear driver_override"
elif ! echo "$bdf" >/sys/bus/pci/drivers_probe; then
	why="drivers_probe failed"
elif ! await_driver "$bdf" cxl_pci; then
	why="$bdf is bound to '$(driver_of "$bdf")', not cxl_pci"
elif [ -z "$(memdevs)" ]; then
	why="no memdev under /sys/bus/cxl/devices after the move back"
elif [ -z "$(cxl_memdevs)" ]; then
	why="cxl list -M shows no memdev of $bdf after the move back"
fi
echo "# back with the host: $(cxl list -M 2>/dev/null | tr -d " \t\n" | head -c 300)"
result returned_to_cxl_pci "$why"

why=
problems=$(dmesg | sed -n "/$mark/,\$p" | grep -E 'WARNING:|BUG:|Oops|general protection|possible circular|inconsistent lock state|UBSAN:|refcount_t:' || true)
[ -z "$problems" ] || why="kernel log: $(head -n 3 <<<"$problems" | tr '\n' ' ')"
result kernel_log_clean "$why"

echo "# Totals: pass:$((n - failed)) fail:$failed xfail:0 xpass:0 skip:0 error:0"
[ "$failed" = 0 ] && [ "$n" = "$PLAN" ]
