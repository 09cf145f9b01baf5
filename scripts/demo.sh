#!/usr/bin/env bash
# `make demo`: build what is missing, boot the CXL test VM, bind the device to
# cxl-vfio-pci and show it through VFIO. One line per step; the long outputs go
# to log files whose paths are printed.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"
logs=${DEMO_LOG_DIR:-$(mktemp -d /tmp/cxlvfio-demo.XXXXXX)}
mkdir -p "$logs"
step() { echo "demo: $*"; }
fail() { echo "demo: $1 failed; last lines of $2:" >&2; tail -n 30 "$2" >&2; exit 1; }

step "[1/5] host packages (scripts/setup.sh)"
scripts/setup.sh 2>&1 | sed 's/^/  /'
. "$REPO/scripts/env.sh" # the cache key names the kernel package setup installed
step "[2/5] test kernel (log: $logs/kbuild.log; a cold build takes about 6 minutes)"
scripts/kbuild.sh >"$logs/kbuild.log" 2>&1 || fail "the kernel build" "$logs/kbuild.log"
sed -n 's/^kbuild: built base kernel /  built /p' "$logs/kbuild.log"
step "[3/5] host tools (log: $logs/cargo.log)"
cargo build --release --workspace --quiet >"$logs/cargo.log" 2>&1 || fail "cargo build" "$logs/cargo.log"
step "[4/5] the project's QEMU 10.0 with the cxl-accel device (log: $logs/qemu-build.log; about 12 minutes cold, cached after)"
scripts/qemu-build.sh >"$logs/qemu-build.log" 2>&1 || fail "the QEMU build" "$logs/qemu-build.log"
echo "  $(tail -n 1 "$logs/qemu-build.log")"
step "[5/5] test VM: boot (q35 + intel-iommu + a cxl-type3 and a cxl-accel, TCG), firmware emulation, modprobe cxl-vfio-pci, bind through driver_override (console: $logs/vm.console)"
VM_LOG_PREFIX="$logs/vm" scripts/vm-run.sh -- bash -c \
	'for bdf in $CXL_BDF $ACCEL_BDF; do
		echo "  bound: $bdf -> $(basename "$(readlink "/sys/bus/pci/devices/$bdf/driver")")"
		target/release/cxlvfio info "$bdf"
	done'
