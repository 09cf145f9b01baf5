#!/usr/bin/env bash
# Runs inside the test VM (started by scripts/vm-run.sh): plays firmware, loads and
# binds the driver as asked, then runs the user's command with its output and
# exit status saved in the run directory that the host reads back.
#   guest-setup.sh none|fw|bind MODARGS RUN_DIR
set -u
setup=$1 modargs=$2 run_dir=$3
REPO=$(cd "$(dirname "$0")/.." && pwd)
out="$run_dir/out"
: >"$out"
# Stream the kernel log out of the guest as it is written: if the VM dies, the host
# still has it (the console shows only what passes loglevel).
# (cat writes each record as it reads it; dmesg -w would buffer its output in a file.)
cat /dev/kmsg >"$run_dir/kmsg" 2>/dev/null </dev/null &
fail() { echo "guest-setup: $*" >>"$out"; dmesg >>"$run_dir/dmesg"; echo 125 >"$run_dir/rc"; exit 0; }

if [ "$setup" != none ]; then
	"$REPO/target/release/cxl-fwemu" >"$run_dir/fwemu" 2>&1 || { cat "$run_dir/fwemu" >>"$out"; fail "firmware emulation failed"; }
	CXL_BDF=$(sed -n 's/^endpoint=//p' "$run_dir/fwemu" | tail -n 1)
	export CXL_BDF
	[ -n "$CXL_BDF" ] || fail "no CXL endpoint found"
fi
if [ "$setup" = bind ]; then
	echo Y >/sys/module/vfio/parameters/enable_unsafe_noiommu_mode || fail "cannot enable VFIO no-IOMMU mode"
	# shellcheck disable=SC2086 # MODARGS is a list of module arguments
	modprobe cxl-vfio-pci $modargs || fail "modprobe cxl-vfio-pci failed"
	echo cxl-vfio-pci >"/sys/bus/pci/devices/$CXL_BDF/driver_override" || fail "cannot set driver_override"
	echo "$CXL_BDF" >/sys/bus/pci/drivers_probe || fail "binding $CXL_BDF failed"
	[ "$(basename "$(readlink "/sys/bus/pci/devices/$CXL_BDF/driver")")" = cxl-vfio-pci ] || fail "$CXL_BDF is not bound to cxl-vfio-pci"
fi
cd "$REPO" || fail "no repo"
eval "$(cat "$run_dir/cmd")" >>"$out" 2>&1
echo $? >"$run_dir/rc.tmp"
dmesg >"$run_dir/dmesg"
mv "$run_dir/rc.tmp" "$run_dir/rc"
