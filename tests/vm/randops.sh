#!/usr/bin/env bash
# In the test VM (scripts/vm-run.sh, the driver bound to every CXL device): the seeded
# random-operation fuzzer (cxlvfio-randops) on the type-3 ($CXL_BDF) and the accelerator
# ($ACCEL_BDF) together, in one process per IOMMU mode the VM offers
# ($CXLVFIO_IOMMU_MODES, else $CXLVFIO_IOMMU): every ioctl the project uses with valid and
# corrupted arguments, region accesses, mmaps and faults, resets, config writes, low power
# and DMA mappings from 4 threads, with the invariants checked as it goes (see the program's
# --help).
#
#   randops.sh [--long] [-- EXTRA-ARGS...]
#
# Default (make test): 1500 ops per device and mode, checks every 250 ops of a thread, and
# at most 70 s of operations per mode (the run passes when the limit cuts it short: the
# ops done are reported); with two modes about 2.5 min under TCG (DPA first touches scrub
# 2 MiB each, about 1-2 s under TCG: each thread owns one chunk per device).
# --long: 100000 ops per device and mode, checks every 2000 ops of a thread, no time limit.
# $RANDOPS_SEED fixes the seed (default: the program's, from the clock); every run prints
# its seed and the command line that replays it ('# replay: ...').
# EXTRA-ARGS go to every run (e.g. --threads 1 to replay exactly).
# Prints KTAP; exits 0 only if every run passed. The program's own KTAP is indented as a
# subtest.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1

ops=1500 check=250 limit=70
if [ "${1:-}" = --long ]; then
	ops=100000 check=2000 limit=0
	shift
fi
[ "${1:-}" != -- ] || shift
prog=target/release/cxlvfio-randops

devices=()
[ -z "${CXL_BDF:-}" ] || devices+=(--device "$CXL_BDF")
[ -z "${ACCEL_BDF:-}" ] || devices+=(--also "$ACCEL_BDF")
read -r -a modes <<<"${CXLVFIO_IOMMU_MODES:-${CXLVFIO_IOMMU:-auto}}"

echo "KTAP version 1"
echo "1..${#modes[@]}"
if [ ${#devices[@]} = 0 ]; then
	echo "# no CXL_BDF / ACCEL_BDF"
	exit 1
fi
seed=()
[ -z "${RANDOPS_SEED:-}" ] || seed=(--seed "$RANDOPS_SEED")

n=0 failed=0
for mode in "${modes[@]}"; do
	n=$((n + 1))
	echo "# IOMMU mode $mode: $prog ${devices[*]} --ops $ops --check-every $check --max-seconds $limit ${seed[*]} $*"
	start=$SECONDS
	out=$(CXLVFIO_IOMMU=$mode "$prog" "${devices[@]}" --ops "$ops" --threads 4 \
		--check-every "$check" --max-seconds "$limit" "${seed[@]}" "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/    /'
	echo "# IOMMU mode $mode: exit $rc after $((SECONDS - start)) s"
	if [ "$rc" = 0 ]; then
		echo "ok $n randops_$mode"
	else
		failed=$((failed + 1))
		why=$(grep -m1 '^not ok' <<<"$out" || echo "exit $rc")
		echo "not ok $n randops_$mode # $why"
	fi
done
[ "$failed" = 0 ]
