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
bdf=${CXL_BDF:?no CXL_BDF}
. tests/vm/lib.sh
reload_devices=("$bdf")
rc=0
reload_driver scrub_memory=0 >&2 && target/release/cxlvfio-ratios --device "$bdf" --phase cxl --faults || rc=1
reload_driver >&2 && target/release/cxlvfio-ratios --device "$bdf" --phase scrub --scrub || rc=1
reload_driver disable_cxl=1 >&2 && target/release/cxlvfio-ratios --device "$bdf" --phase plain || rc=1
reload_driver >&2 || rc=1
exit "$rc"
