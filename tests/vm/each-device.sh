#!/usr/bin/env bash
# In the test VM (scripts/vm-run.sh): runs one test program once per CXL test device, the
# type-3 ($CXL_BDF, 8086:0d93) and then, on the project's QEMU, the cxl-accel accelerator
# ($ACCEL_BDF, 1b36:00ca), and for each device once per way this VM offers to open it
# ($CXLVFIO_IOMMU_MODES: "type1 iommufd" behind the IOMMU, "noiommu" without), so that one
# boot tests both devices through every IOMMU path.
#
#   each-device.sh [--reload] [--only cxl|accel] -- PROGRAM [ARGS...]
#
# In ARGS, {bdf} becomes the device's address and {ids} its expected VVVV:DDDD.
# --reload: before every run but the first, unbind every CXL device from cxl-vfio-pci, unload
#   it, play firmware again (cxl-fwemu commits decoder 0, as at boot: a run with
#   disable_cxl=1 leaves the device to vfio-pci's resets, which clear the decoders), load the
#   driver with the boot's module arguments ($CXLVFIO_MODARGS) and bind the devices again: for
#   a program that unloads the driver (the smoke suite) or reloads it with other arguments
#   (the info parity test).
# --only: just the type-3 (cxl) or just the accelerator (accel), each IOMMU mode all the same.
# Prints each run's KTAP after a "# device BDF (ids), IOMMU mode" line; exits 0 only if every
# run did.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1

DRIVER=cxl-vfio-pci
reload=0 only=
while [ $# -gt 0 ]; do
	case "$1" in
	--reload) reload=1; shift ;;
	--only) only=$2; shift 2 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--reload] [--only cxl|accel] -- PROGRAM [ARGS...]" >&2; exit 2; }
case "$only" in "" | cxl | accel) ;; *) echo "$0: --only cxl or accel, not '$only'" >&2; exit 2 ;; esac

devices=() ids=()
[ -z "${CXL_BDF:-}" ] || [ "$only" = accel ] || { devices+=("$CXL_BDF"); ids+=(8086:0d93); }
[ -z "${ACCEL_BDF:-}" ] || [ "$only" = cxl ] || { devices+=("$ACCEL_BDF"); ids+=(1b36:00ca); }
if [ ${#devices[@]} = 0 ]; then
	echo "not ok 1 each_device # no device: CXL_BDF and ACCEL_BDF are unset (or --only names the absent one)"
	exit 1
fi

driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }

# Gives every device back to a freshly loaded cxl-vfio-pci; prints what failed.
reload_driver() {
	local bdf
	for bdf in "${devices[@]}"; do
		[ "$(driver_of "$bdf")" != "$DRIVER" ] ||
			echo "$bdf" >"/sys/bus/pci/drivers/$DRIVER/unbind" || return 1
	done
	if [ -d "/sys/module/${DRIVER//-/_}" ]; then
		rmmod "${DRIVER//-/_}" || return 1
	fi
	for bdf in "${devices[@]}"; do
		target/release/cxl-fwemu --device "$bdf" >/dev/null || return 1
	done
	# shellcheck disable=SC2086 # a list of module arguments
	modprobe "$DRIVER" ${CXLVFIO_MODARGS:-} || return 1
	for bdf in "${devices[@]}"; do
		echo "$DRIVER" >"/sys/bus/pci/devices/$bdf/driver_override" || return 1
		echo "$bdf" >/sys/bus/pci/drivers_probe || return 1
		[ "$(driver_of "$bdf")" = "$DRIVER" ] || { echo "$bdf did not bind to $DRIVER"; return 1; }
	done
}

read -r -a modes <<<"${CXLVFIO_IOMMU_MODES:-${CXLVFIO_IOMMU:-auto}}"
rc=0 runs=0
for i in "${!devices[@]}"; do
	bdf=${devices[$i]}
	for mode in "${modes[@]}"; do
		echo "# device $bdf (${ids[$i]}), IOMMU mode $mode"
		runs=$((runs + 1))
		if [ "$reload" = 1 ] && [ "$runs" != 1 ]; then
			if ! why=$(reload_driver 2>&1); then
				echo "not ok 1 reload_driver_for_${bdf}_$mode # $why"
				rc=1
				continue
			fi
		fi
		args=()
		for arg in "$@"; do
			arg=${arg//\{bdf\}/$bdf}
			args+=("${arg//\{ids\}/${ids[$i]}}")
		done
		CXLVFIO_IOMMU=$mode "${args[@]}" || rc=1
	done
done
exit "$rc"
