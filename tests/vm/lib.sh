# shellcheck shell=bash
# Helpers the test VM's shell suites share (sourced): KTAP results, the driver of a PCI
# function, and reloading cxl-vfio-pci as the boot loaded it.

# The repository (the VM sees the host's tree at the same path).
VM_LIB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# result NAME WHY: the next KTAP result; it passes when WHY is empty. $n counts the
# results, $failed the failures (a suite exits with it).
n=0
failed=0
result() {
	n=$((n + 1))
	if [ -z "$2" ]; then
		echo "ok $n $1"
	else
		failed=$((failed + 1))
		echo "not ok $n $1 # $2"
	fi
}

# driver_of BDF: the name of the driver bound to the function, or nothing.
driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }

# pci_ids BDF: the function's vendor and device IDs as VVVV:DDDD (the test programs' --expect-ids).
pci_ids() {
	local d=/sys/bus/pci/devices/$1
	printf '%04x:%04x' "$(($(cat "$d/vendor")))" "$(($(cat "$d/device")))"
}

# await_driver BDF DRIVER: waits up to 10 s for the function's driver to be DRIVER (probing
# is asynchronous); fails if it is not.
await_driver() {
	local _
	for _ in $(seq 50); do
		[ "$(driver_of "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	return 1
}

# reload_driver [MODULE ARGS]: unloads cxl-vfio-pci and loads it with the boot's module
# arguments (CXLVFIO_MODARGS) plus ARGS; the functions in the array reload_devices are bound
# to it again. Decoder 0 of each is committed first, as firmware does at boot (disable_cxl=1
# leaves the decoders to vfio-pci's resets). Prints why it failed.
reload_devices=()
reload_driver() {
	local bdf
	if [ -d /sys/module/cxl_vfio_pci ]; then rmmod cxl_vfio_pci || return 1; fi
	for bdf in "${reload_devices[@]}"; do
		"$VM_LIB_REPO/target/release/cxl-fwemu" --device "$bdf" >/dev/null || return 1
	done
	# shellcheck disable=SC2086 # a list of module arguments
	modprobe cxl-vfio-pci ${CXLVFIO_MODARGS:-} "$@" || return 1
	for bdf in "${reload_devices[@]}"; do
		echo cxl-vfio-pci >"/sys/bus/pci/devices/$bdf/driver_override" || return 1
		echo "$bdf" >/sys/bus/pci/drivers_probe 2>/dev/null
		[ "$(driver_of "$bdf")" = cxl-vfio-pci ] || { echo "$bdf did not bind"; return 1; }
	done
}
