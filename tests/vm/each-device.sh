#!/usr/bin/env bash
# In the test VM (scripts/vm-run.sh): runs one test program once per CXL test device, the
# type-3 ($CXL_BDF, 8086:0d93) and then, on the project's QEMU, the cxl-accel accelerator
# ($ACCEL_BDF, 1b36:00ca), so that one boot tests both.
#
#   each-device.sh [--reload] -- PROGRAM [ARGS...]
#
# In ARGS, {bdf} becomes the device's address and {ids} its expected VVVV:DDDD.
# --reload: before every device but the first, unbind every CXL device from cxl-vfio-pci,
#   unload it, load it again with the boot's module arguments ($CXLVFIO_MODARGS) and bind them
#   again: for a program that unloads the driver (the smoke suite) or reloads it with other
#   arguments (the info parity test).
# Prints each run's KTAP after a "# device BDF" line; exits 0 only if every run did.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1

DRIVER=cxl-vfio-pci
reload=0
while [ $# -gt 0 ]; do
	case "$1" in
	--reload) reload=1; shift ;;
	--) shift; break ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--reload] -- PROGRAM [ARGS...]" >&2; exit 2; }

devices=() ids=()
[ -z "${CXL_BDF:-}" ] || { devices+=("$CXL_BDF"); ids+=(8086:0d93); }
[ -z "${ACCEL_BDF:-}" ] || { devices+=("$ACCEL_BDF"); ids+=(1b36:00ca); }
if [ ${#devices[@]} = 0 ]; then
	echo "not ok 1 each_device # neither CXL_BDF nor ACCEL_BDF is set"
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
	# shellcheck disable=SC2086 # a list of module arguments
	modprobe "$DRIVER" ${CXLVFIO_MODARGS:-} || return 1
	for bdf in "${devices[@]}"; do
		echo "$DRIVER" >"/sys/bus/pci/devices/$bdf/driver_override" || return 1
		echo "$bdf" >/sys/bus/pci/drivers_probe || return 1
		[ "$(driver_of "$bdf")" = "$DRIVER" ] || { echo "$bdf did not bind to $DRIVER"; return 1; }
	done
}

rc=0
for i in "${!devices[@]}"; do
	bdf=${devices[$i]}
	echo "# device $bdf (${ids[$i]})"
	if [ "$reload" = 1 ] && [ "$i" != 0 ]; then
		if ! why=$(reload_driver 2>&1); then
			echo "not ok 1 reload_driver_for_$bdf # $why"
			rc=1
			continue
		fi
	fi
	args=()
	for arg in "$@"; do
		arg=${arg//\{bdf\}/$bdf}
		args+=("${arg//\{ids\}/${ids[$i]}}")
	done
	"${args[@]}" || rc=1
done
exit "$rc"
