#!/usr/bin/env bash
# Runs inside the test VM (started by scripts/vm-run.sh): plays firmware, loads and
# binds the driver as asked, then runs the user's command with its output and
# exit status saved in the run directory that the host reads back.
#   guest-setup.sh none|fw|bind MODARGS RUN_DIR intel|none CXL_STACK [KMEMLEAK]
# fw and bind act on every CXL.mem device (cxl-fwemu find --all): one type-3 with Debian's
# QEMU, a type-3 and the cxl-accel accelerator with the project's. The command sees
# CXL_BDF (the first one that is not the accelerator) and ACCEL_BDF (the accelerator,
# 1b36:00ca; unset when there is none).
# KMEMLEAK=1 (the sanitizer kernel): after the command, kmemleak scans memory and its report
# of unreferenced objects is saved as RUN_DIR/kmemleak for the host to judge.
set -u
setup=$1 modargs=$2 run_dir=$3 iommu=${4:-none} cxl_stack=${5:-0} kmemleak=${6:-0}
REPO=$(cd "$(dirname "$0")/.." && pwd)
out="$run_dir/out"
: >"$out"
# Stream the kernel log out of the guest as it is written: if the VM dies, the host
# still has it (the console shows only what passes loglevel).
# (cat writes each record as it reads it; dmesg -w would buffer its output in a file.)
cat /dev/kmsg >"$run_dir/kmsg" 2>/dev/null </dev/null &
fail() { echo "guest-setup: $*" >>"$out"; dmesg >>"$run_dir/dmesg"; echo 125 >"$run_dir/rc"; exit 0; }

fwemu="$REPO/target/release/cxl-fwemu"
endpoints=()
if [ "$setup" != none ]; then
	: >"$run_dir/fwemu"
	list=$("$fwemu" find --all 2>>"$run_dir/fwemu") || { cat "$run_dir/fwemu" >>"$out"; fail "no CXL endpoint found"; }
	read -r -d '' -a endpoints <<<"$list"
	for bdf in "${endpoints[@]}"; do
		"$fwemu" --device "$bdf" >>"$run_dir/fwemu" 2>&1 || { cat "$run_dir/fwemu" >>"$out"; fail "firmware emulation failed for $bdf"; }
		id=$(cat "/sys/bus/pci/devices/$bdf/vendor"):$(cat "/sys/bus/pci/devices/$bdf/device")
		if [ "$id" = 0x1b36:0x00ca ]; then
			[ -n "${ACCEL_BDF:-}" ] || ACCEL_BDF=$bdf
		else
			[ -n "${CXL_BDF:-}" ] || CXL_BDF=$bdf
		fi
	done
	[ -n "${CXL_BDF:-}${ACCEL_BDF:-}" ] || fail "no CXL endpoint found"
	export CXL_BDF ACCEL_BDF
fi
# How the test programs open a device (cxlvfio's CXLVFIO_IOMMU), and every way this VM offers.
if [ "$iommu" = intel ]; then
	export CXLVFIO_IOMMU=type1 CXLVFIO_IOMMU_MODES="type1 iommufd"
else
	export CXLVFIO_IOMMU=noiommu CXLVFIO_IOMMU_MODES=noiommu
fi
if [ "$setup" = bind ]; then
	if [ "$iommu" = intel ]; then
		for bdf in "${endpoints[@]}"; do
			[ -e "/sys/bus/pci/devices/$bdf/iommu_group" ] || fail "$bdf is in no IOMMU group (is the IOMMU on? dmesg | grep DMAR)"
		done
	else
		echo Y >/sys/module/vfio/parameters/enable_unsafe_noiommu_mode || fail "cannot enable VFIO no-IOMMU mode"
	fi
	# As on a host at boot: the kernel's CXL stack loads and cxl_pci takes the memory device;
	# then the documented move of every CXL device to cxl-vfio-pci.
	if [ "$cxl_stack" = 1 ]; then
		modprobe -a cxl_acpi cxl_port cxl_mem cxl_pci || fail "cannot load the kernel's CXL stack"
		# The documented move's first step: no region of the host's on the devices. Probing
		# is asynchronous: the endpoint ports' probes (which assemble regions from committed
		# decoders) are over once each memdev's endpoint port has its driver.
		for _ in $(seq 50); do
			mems=$(ls -d /sys/bus/cxl/devices/mem* 2>/dev/null | wc -l)
			eps=$(ls -d /sys/bus/cxl/devices/endpoint*/driver 2>/dev/null | wc -l)
			[ "$mems" -gt 0 ] && [ "$eps" -ge "$mems" ] && break
			sleep 0.2
		done
		# 6.12 keeps a region whose assembly failed half-way (behind QEMU's pass-through host
		# bridges); deleting it after the move is a use-after-free in 6.12's CXL core.
		for r in /sys/bus/cxl/devices/region*; do
			[ -e "$r" ] || continue
			name=$(basename "$r")
			echo "# guest-setup: deleting $name ($(cat "$r/resource") +$(cat "$r/size")) before the move" >>"$out"
			cxl disable-region "$name" 2>&1 | sed 's/^/#   /' >>"$out"
			echo "$name" >"$(readlink -f "$r/..")/delete_region" || fail "cannot delete $name"
		done
	fi
	# shellcheck disable=SC2086 # MODARGS is a list of module arguments
	modprobe cxl-vfio-pci $modargs || fail "modprobe cxl-vfio-pci failed"
	for bdf in "${endpoints[@]}"; do
		drv=$(readlink "/sys/bus/pci/devices/$bdf/driver") && drv=$(basename "$drv")
		if [ -n "$drv" ]; then
			echo "$bdf" >"/sys/bus/pci/drivers/$drv/unbind" || fail "cannot unbind $bdf from $drv"
		fi
		echo cxl-vfio-pci >"/sys/bus/pci/devices/$bdf/driver_override" || fail "cannot set driver_override of $bdf"
		echo "$bdf" >/sys/bus/pci/drivers_probe || fail "binding $bdf failed"
		[ "$(basename "$(readlink "/sys/bus/pci/devices/$bdf/driver")")" = cxl-vfio-pci ] || fail "$bdf is not bound to cxl-vfio-pci"
	done
fi
# For a command that reloads the driver (tests/vm/each-device.sh --reload).
export CXLVFIO_MODARGS=$modargs
cd "$REPO" || fail "no repo"
eval "$(cat "$run_dir/cmd")" >>"$out" 2>&1
echo $? >"$run_dir/rc.tmp"
# kmemleak reports no object younger than 5 s, and an object only after two scans found it
# unreferenced (one scan can miss a pointer that is in flight): wait, then scan twice.
if [ "$kmemleak" = 1 ]; then
	k=/sys/kernel/debug/kmemleak
	[ -e "$k" ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	if [ -e "$k" ]; then
		t0=$(date +%s)
		sleep 6
		echo scan >"$k" && sleep 1 && echo scan >"$k" && cat "$k" >"$run_dir/kmemleak.tmp" &&
			mv "$run_dir/kmemleak.tmp" "$run_dir/kmemleak"
		echo "# guest-setup: kmemleak: two scans in $(($(date +%s) - t0)) s" >>"$out"
	else
		echo "# guest-setup: kmemleak: no $k" >>"$out"
	fi
fi
dmesg >"$run_dir/dmesg"
mv "$run_dir/rc.tmp" "$run_dir/rc"
