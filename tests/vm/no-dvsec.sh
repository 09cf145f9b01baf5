#!/usr/bin/env bash
# In the test VM: bind QEMU's pci-testdev (1b36:0005, no CXL DVSEC) to cxl-vfio-pci
# next to the CXL device, and check through VFIO that it is plain vfio-pci.
set -euo pipefail
dev=
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x1b36 ] && [ "$(cat "$d/device")" = 0x0005 ]; then
		dev=$(basename "$d")
		break
	fi
done
[ -n "$dev" ] || { echo "not ok 1 no pci-testdev in the VM"; exit 1; }
echo cxl-vfio-pci >"/sys/bus/pci/devices/$dev/driver_override"
echo "$dev" >/sys/bus/pci/drivers_probe
exec "$(dirname "$0")/../../target/release/cxlvfio-cxl" --device "$dev" --expect-ids 1b36:0005 --expect-no-cxl
