#!/usr/bin/env bash
# `make demo-guest`: build what is missing, boot the CXL test VM, and in it start the project's
# QEMU with a CXL device assigned through cxl-vfio-pci to a nested guest; show the guest's view
# (lspci -vv with the DVSECs, cxl list, a write and read of device memory) and where the data
# landed: the test VM's device memory, then the outer QEMU's memory backend file.
#   DEMO_DEVICE=accel|cxl (default accel)  DEMO_IOMMU=type1|iommufd (default iommufd)
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"
logs=${DEMO_LOG_DIR:-$(mktemp -d /tmp/cxlvfio-demo-guest.XXXXXX)}
mkdir -p "$logs"
type=${DEMO_DEVICE:-accel} iommu=${DEMO_IOMMU:-iommufd}
step() { echo "demo-guest: $*"; }
fail() { echo "demo-guest: $1 failed; last lines of $2:" >&2; tail -n 30 "$2" >&2; exit 1; }

step "[1/6] host packages (scripts/setup.sh)"
scripts/setup.sh 2>&1 | sed 's/^/  /'
. "$REPO/scripts/env.sh" # the cache key names the kernel package setup installed
step "[2/6] test kernel (log: $logs/kbuild.log)"
scripts/kbuild.sh >"$logs/kbuild.log" 2>&1 || fail "the kernel build" "$logs/kbuild.log"
step "[3/6] host tools (log: $logs/cargo.log)"
cargo build --release --workspace --quiet >"$logs/cargo.log" 2>&1 || fail "cargo build" "$logs/cargo.log"
step "[4/6] the project's QEMU 10.0 (log: $logs/qemu-build.log; about 12 minutes cold, cached after)"
scripts/qemu-build.sh >"$logs/qemu-build.log" 2>&1 || fail "the QEMU build" "$logs/qemu-build.log"
step "[5/6] the nested guest's small kernel (log: $logs/l2-kbuild.log; about 15 minutes cold) and initramfs (busybox, cxl, lspci, the CXL modules)"
scripts/l2-kbuild.sh >"$logs/l2-kbuild.log" 2>&1 || fail "the nested guest's kernel" "$logs/l2-kbuild.log"
scripts/l2-initramfs.sh "$logs/l2-initramfs.cpio" >"$logs/l2-initramfs.log" 2>&1 ||
	fail "the initramfs" "$logs/l2-initramfs.log"
step "[6/6] test VM (cxl-vfio-pci with scrub_memory=0), then in it the nested guest with the $type through $iommu (8 to 10 min under TCG inside TCG; consoles in $logs)"
case $type in accel) memvar=VM_ACCEL_MEM_OUT ;; cxl) memvar=VM_MEM_OUT ;; *) echo "DEMO_DEVICE: accel or cxl" >&2; exit 2 ;; esac
rc=0
env "$memvar=$logs/device-mem.raw" VM_LOG_PREFIX="$logs/vm" scripts/vm-run.sh --modargs scrub_memory=0 -- \
	tests/vm/nested.sh --type "$type" --iommu "$iommu" --initramfs "$logs/l2-initramfs.cpio" \
	--log-dir "$logs" --demo >"$logs/nested.ktap" 2>&1 || rc=$?
sed -n '/^# --- the guest/,$ s/^# //p' "$logs/nested.ktap"
echo
echo "The test VM's side (tests/vm/nested.sh; full output: $logs/nested.ktap):"
grep -E '^(ok|not ok) ' "$logs/nested.ktap" | sed 's/^/  /'
grep -E '^# (the nested guest ran|l2: decoder 0|l2: CEDT)' "$logs/nested.ktap" | sed 's/^# /  /'
echo
echo "Where the data landed: the outer QEMU's memory backend file of the $type ($logs/device-mem.raw),"
echo "whose offset is the device memory (DPA) offset:"
for off in 0x0 0x1000 0x3000 0x200000; do
	printf '  DPA %-9s 0x%s\n' "$off" "$(od -A n -t x4 -j "$((off))" -N 4 "$logs/device-mem.raw" 2>/dev/null | tr -d ' ')"
done
echo "(0x4c324f4b, 0x5e7a5e7a and 0x600dcafe: written by the nested guest; 0x11aa22bb: by the test VM"
echo " before the guest started, and read by the guest.)"
[ "$rc" = 0 ] && echo "demo-guest: done" || { echo "demo-guest: a check failed (exit $rc); see $logs"; exit 1; }
