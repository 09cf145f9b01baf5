#!/usr/bin/env bash
# In the test VM (the CXL device $1, default $CXL_BDF, bound to cxl-vfio-pci with CXL on): the device
# and region info are vfio-pci's plus exactly the CXL additions. Dumps every field and
# capability of VFIO_DEVICE_GET_INFO and of each VFIO_DEVICE_GET_REGION_INFO, reloads the
# driver with disable_cxl=1 (plain vfio-pci behaviour), dumps again and compares (KTAP from
# cxlvfio info-compare). Both dumps follow as diagnostics.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bdf=${1:-${CXL_BDF:-}}
fail() {
	echo "KTAP version 1"
	echo "1..1"
	echo "not ok 1 info_parity_setup # $*"
	exit 1
}
target/release/cxlvfio info-dump "$bdf" >"$dir/on" 2>&1 || fail "info-dump with CXL on: $(cat "$dir/on")"
echo "$bdf" >/sys/bus/pci/drivers/cxl-vfio-pci/unbind || fail "unbind"
rmmod cxl_vfio_pci || fail "rmmod cxl_vfio_pci"
modprobe cxl-vfio-pci disable_cxl=1 || fail "modprobe cxl-vfio-pci disable_cxl=1"
echo "$bdf" >/sys/bus/pci/drivers_probe || fail "bind with disable_cxl=1"
target/release/cxlvfio info-dump "$bdf" >"$dir/off" 2>&1 || fail "info-dump with disable_cxl=1: $(cat "$dir/off")"
target/release/cxlvfio info-compare "$dir/on" "$dir/off"
rc=$?
sed 's/^/# CXL on: /' "$dir/on"
sed 's/^/# disable_cxl=1: /' "$dir/off"
exit "$rc"
