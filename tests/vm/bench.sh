#!/usr/bin/env bash
# In the test VM, for scripts/bench.sh: cxlvfio-ratios on the type-3 ($CXL_BDF) in three
# phases, reloading the driver between them (one boot, so the pairs share everything else):
#   cxl:   scrub_memory=0 (faults without scrubbing): open/close, reset, preads, faults per GiB
#          and fault latency through PUD-, PMD- and PTE-sized mappings;
#   scrub: scrubbing on: the first touch of a 2 MiB chunk (a scrubbing fault) and a later one;
#   plain: disable_cxl=1 (the driver is vfio-pci): open/close, reset, config preads.
# Prints the 'bench: PHASE.KEY VALUE' lines; exits non-zero if a phase failed.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1
DRIVER=cxl-vfio-pci
bdf=${CXL_BDF:?no CXL_BDF}
driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }
reload() { # reload [MODULE ARGS]: firmware commits decoder 0 again, as at boot
	if [ -d /sys/module/cxl_vfio_pci ]; then rmmod cxl_vfio_pci || return 1; fi
	target/release/cxl-fwemu --device "$bdf" >/dev/null || return 1
	modprobe "$DRIVER" "$@" || return 1
	echo "$bdf" >/sys/bus/pci/drivers_probe 2>/dev/null
	[ "$(driver_of "$bdf")" = "$DRIVER" ] || { echo "$bdf did not bind" >&2; return 1; }
}
rc=0
reload scrub_memory=0 && target/release/cxlvfio-ratios --device "$bdf" --phase cxl --faults || rc=1
reload && target/release/cxlvfio-ratios --device "$bdf" --phase scrub --scrub || rc=1
reload disable_cxl=1 && target/release/cxlvfio-ratios --device "$bdf" --phase plain || rc=1
reload || rc=1
exit "$rc"
