#!/usr/bin/env bash
# In the test VM (scripts/vm-run.sh, the driver bound to every CXL device): the driver's
# lifecycle, looped, on the type-3 ($CXL_BDF) and the accelerator ($ACCEL_BDF), opened the
# way $CXLVFIO_IOMMU says:
#   1. open/close cycles (cxlvfio-lifecycle: a mapping of the DPA region and three faults in
#      each), with scrub_memory=0 so that each cycle checks the previous cycle's data
#      (faults do not scrub 2 MiB each, which costs about 0.7 s under TCG); then a few cycles
#      with scrubbing on, each checking that an open never sees an earlier open's data;
#   2. unbind/bind cycles of both devices, with an open/close (and faults) after each bind;
#   3. rmmod/modprobe cycles, with an open/close of both devices after each load;
#   4. the same open/close cycles on both devices with disable_cxl=1 (the driver is plain
#      vfio-pci then): the open and close times of each device, as ratios (never asserted);
#   5. a clean kernel log throughout.
#
#   lifecycle.sh [--long]   (default: 200 open/close cycles, 20 binds, 20 loads;
#                            --long: 1000, 100 and 100, plus 500 mixed resets under
#                            faulting and reading threads)
# Prints KTAP; exits 0 only if all pass. The programs' own KTAP is indented as subtests.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1

DRIVER=cxl-vfio-pci
cycles=200 binds=20 loads=20 resets=0
[ "${1:-}" = --long ] && { cycles=1000 binds=100 loads=100 resets=500; }
lifecycle=target/release/cxlvfio-lifecycle

devices=()
[ -z "${CXL_BDF:-}" ] || devices+=("$CXL_BDF")
[ -z "${ACCEL_BDF:-}" ] || devices+=("$ACCEL_BDF")
PLAN=$((${#devices[@]} + 5))
[ "$resets" = 0 ] || PLAN=$((PLAN + 1))
. tests/vm/lib.sh
# Runs a program whose KTAP is a subtest: indented on the suite's output (fd 3), its
# '# lifecycle:' lines also kept in $diag; prints why when it fails (nothing otherwise).
exec 3>&1
sub() {
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	sed 's/^/    /' <<<"$out" >&3
	grep -o '# lifecycle: .*' <<<"$out" >>"$diag"
	[ "$rc" = 0 ] || { grep -m1 '^not ok' <<<"$out" || echo "exit $rc"; }
}
reload_devices=("${devices[@]}")
# The number after KEY in the '# lifecycle: LABEL ...' line of LABEL.
stat() { sed -n "s/^# lifecycle: $1 .*$2 \([0-9.]*\).*/\1/p" "$diag" | tail -n 1; }

echo "KTAP version 1"
echo "1..$PLAN"
[ ${#devices[@]} -gt 0 ] || { echo "# no CXL_BDF / ACCEL_BDF"; exit 1; }
diag=$(mktemp)
mark="lifecycle test $$ $(date +%s%N)"
echo "$mark" >/dev/kmsg
start=$SECONDS

# 1. Open/close cycles, data kept across them (no scrubbing), then a few with scrubbing.
why=$(reload_driver scrub_memory=0 2>&1) || why="reload with scrub_memory=0: $why"
for bdf in "${devices[@]}"; do
	w=$why
	[ -n "$w" ] || w=$(sub "$lifecycle" --device "$bdf" --cycles "$cycles" --expect-no-scrub --label "cxl-$bdf")
	[ -n "$w" ] || w=$(reload_driver 2>&1) || w="reload: $w"
	[ -n "$w" ] || w=$(sub "$lifecycle" --device "$bdf" --cycles 3 --label "scrub-$bdf")
	result "open_close_${cycles}_cycles_$bdf" "$w"
	reload_driver scrub_memory=0 >/dev/null 2>&1
done

# 2. Unbind/bind cycles, an open/close with faults after each bind.
why=
for i in $(seq "$binds"); do
	for bdf in "${devices[@]}"; do
		echo "$bdf" >"/sys/bus/pci/drivers/$DRIVER/unbind" || { why="cycle $i: unbind $bdf failed"; break 2; }
		echo "$bdf" >/sys/bus/pci/drivers_probe 2>/dev/null
		[ "$(driver_of "$bdf")" = "$DRIVER" ] || { why="cycle $i: $bdf bound to '$(driver_of "$bdf")'"; break 2; }
		why=$(sub "$lifecycle" --device "$bdf" --cycles 2 --expect-no-scrub --label "bind-$bdf" 3>/dev/null)
		[ -z "$why" ] || { why="cycle $i: $why"; break 2; }
	done
done
echo "# $binds unbind/bind cycles of ${#devices[@]} devices"
result "unbind_bind_${binds}_cycles" "$why"

# 3. rmmod/modprobe cycles, an open/close of every device after each load.
why=
for i in $(seq "$loads"); do
	why=$(reload_driver scrub_memory=0 2>&1) || { why="cycle $i: reload: $why"; break; }
	for bdf in "${devices[@]}"; do
		why=$(sub "$lifecycle" --device "$bdf" --cycles 2 --expect-no-scrub --label "load-$bdf" 3>/dev/null)
		[ -z "$why" ] || { why="cycle $i: $why"; break 2; }
	done
done
echo "# $loads rmmod/modprobe cycles"
result "rmmod_modprobe_${loads}_cycles" "$why"

# 4. Resets of every kind, mixed, under faulting and reading threads (long runs).
if [ "$resets" != 0 ]; then
	why=$(reload_driver 2>&1) || why="reload: $why"
	[ -n "$why" ] || why=$(sub target/release/cxlvfio-dpa --device "${devices[0]}" \
		--expect-ids "$(pci_ids "${devices[0]}")" --only dpa_stress_resets --resets "$resets")
	result "stress_${resets}_resets" "$why"
fi

# 5. The same open/close cycles with disable_cxl=1, for the ratios.
why=$(reload_driver disable_cxl=1 2>&1) || why="reload with disable_cxl=1: $why"
for bdf in "${devices[@]}"; do
	[ -n "$why" ] || why=$(sub "$lifecycle" --device "$bdf" --cycles "$cycles" --label "plain-$bdf")
done
result "open_close_${cycles}_cycles_disable_cxl" "$why"
w=$(reload_driver 2>&1) || why="${why:+$why; }reload: $w"
result driver_reloaded "$w"

for bdf in "${devices[@]}"; do
	for what in open close; do
		c=$(stat "cxl-$bdf" "${what}_median_ms") p=$(stat "plain-$bdf" "${what}_median_ms")
		[ -n "$c" ] && [ -n "$p" ] &&
			echo "# ratio: $bdf $what median with CXL ${c} ms / disable_cxl=1 ${p} ms = $(awk -v c="$c" -v p="$p" 'BEGIN { printf "%.2f", (p > 0 ? c / p : 0) }')"
	done
done
echo "# lifecycle.sh took $((SECONDS - start)) s"

why=
problems=$(dmesg | sed -n "/$mark/,\$p" | grep -E 'WARNING:|BUG:|Oops|general protection|possible circular|inconsistent lock state|UBSAN:|refcount_t:|kmemleak' || true)
[ -z "$problems" ] || why="kernel log: $(head -n 3 <<<"$problems" | tr '\n' ' ')"
result kernel_log_clean "$why"
rm -f "$diag"

echo "# Totals: pass:$((n - failed)) fail:$failed xfail:0 xpass:0 skip:0 error:0"
[ "$failed" = 0 ] && [ "$n" = "$PLAN" ]
