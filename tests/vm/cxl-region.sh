#!/usr/bin/env bash
# In the test VM on the project's QEMU 10.0 with host-bridge HDM decoders (VM_CXL_HB_DECODERS=1,
# vm-run --setup fw: the firmware emulation committed the host bridge's and the type-3's
# decoders; cxl-vfio-pci is not loaded): the kernel's CXL stack assembles a region on the
# firmware's decoders, as on a host whose firmware committed them. Unbinding cxl_pci keeps
# the region (its range stays in /proc/iomem) and resets the decoders; a platform that locked
# them keeps them committed. QEMU ignores the lock, so the firmware emulation commits the
# endpoint decoder again, which is the state a locked decoder leaves. Then:
#   - opening the device through VFIO fails with EBUSY, the DPA range untouched, and the
#     driver's log line names the region and the exact commands that release it;
#   - after running those commands (taken from the log line), the open succeeds and the
#     device memory works;
#   - the kernel log stays clean.
# Prints KTAP; exit 0 only if all pass.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1

PLAN=8
. tests/vm/lib.sh
# "START NAME" of the CXL region resources nested in a CXL window in /proc/iomem.
iomem_regions() { sed -n 's/^  \([0-9a-f]*\)-[0-9a-f]* : \(region[0-9]*\)$/\1 \2/p' /proc/iomem; }
fwemu=target/release/cxl-fwemu

echo "KTAP version 1"
echo "1..$PLAN"
bdf=${CXL_BDF:-}
[ -n "$bdf" ] || { echo "# no CXL_BDF"; exit 1; }
mark="cxl-region test $$ $(date +%s%N)"
echo "$mark" >/dev/kmsg

# 1. The CXL core assembles a region on the firmware's decoders.
why=
region= start=
if ! out=$(modprobe -a cxl_acpi cxl_port cxl_mem cxl_pci 2>&1); then
	why="modprobe: $out"
elif ! await_driver "$bdf" cxl_pci; then
	why="$bdf is bound to '$(driver_of "$bdf")', not cxl_pci"
else
	for _ in $(seq 50); do
		read -r start region < <(iomem_regions | head -n 1)
		[ -n "$region" ] && break
		sleep 0.2
	done
	[ -n "$region" ] || why="no region in /proc/iomem: $(grep -i cxl /proc/iomem | tr '\n' ' ')"
fi
echo "# region: ${region:-none} at 0x${start:-?}; cxl list -R: $(cxl list -R 2>/dev/null | tr -d ' \t\n' | head -c 200)"
result cxl_core_assembles_region "$why"
[ -n "$region" ] || { echo "# Totals: pass:0 fail:$n xfail:0 xpass:0 skip:0 error:0"; exit 1; }

# 2. The move: cxl_pci lets go; the region's range stays claimed.
why=
if ! echo "$bdf" >/sys/bus/pci/drivers/cxl_pci/unbind; then
	why="unbind from cxl_pci failed"
elif ! iomem_regions | grep -q "^$start $region\$"; then
	why="$region left /proc/iomem with the memdev; the scenario needs it kept"
elif ! out=$("$fwemu" --device "$bdf" 2>&1); then
	why="the firmware emulation could not commit the decoder again: $(tail -n 2 <<<"$out")"
elif ! grep -q "base=0x$start " <<<"$out"; then
	why="decoder 0 committed elsewhere than the region: $(grep 'HDM decoder 0' <<<"$out")"
elif ! modprobe cxl-vfio-pci; then
	why="modprobe cxl-vfio-pci failed"
elif ! echo cxl-vfio-pci >"/sys/bus/pci/devices/$bdf/driver_override" ||
	! echo "$bdf" >/sys/bus/pci/drivers_probe || ! await_driver "$bdf" cxl-vfio-pci; then
	why="$bdf is bound to '$(driver_of "$bdf")', not cxl-vfio-pci"
fi
result moved_with_region_kept "$why"

# 3. The open is refused with EBUSY while the region holds the range.
why=
out=$(target/release/cxlvfio info "$bdf" 2>&1) && why="the open succeeded while $region holds the range"
[ -n "$why" ] || grep -qi 'busy' <<<"$out" || why="the open failed, but not with EBUSY: $(tail -n 1 <<<"$out")"
grep -q "cxl-vfio-pci $bdf" /proc/iomem && why="${why:+$why; }the range is still claimed after the refused open"
echo "# $(tail -n 1 <<<"$out")"
result open_refused_while_region_holds_range "$why"

# 4. The log line names the region and the commands.
why=
line=$(dmesg | sed -n "/$mark/,\$p" | grep -F "cxl-vfio-pci $bdf: DPA range [mem 0x$start-" | grep -F "busy: held by $region" | tail -n 1)
echo "# log: ${line#*] }"
if [ -z "$line" ]; then
	why="no log line naming $region: $(dmesg | grep -F "cxl-vfio-pci $bdf" | tail -n 2 | tr '\n' ' ')"
elif ! grep -qF "release it with: cxl disable-region $region; " <<<"$line"; then
	why="the log line does not say how to release $region"
fi
result log_names_region_and_commands "$why"

# 5. The refused open changed nothing: decoder 0 is still committed at the region's base.
why=
out=$("$fwemu" show --device "$bdf" 2>&1)
grep -A3 "endpoint $bdf" <<<"$out" | grep -q "base=0x$start .*commit=1 committed=1" ||
	grep -q "base=0x$start .*committed=1" <<<"$out" || why="decoder 0 changed: $(grep -i 'decoder 0' <<<"$out" | tail -n 1)"
result decoder_untouched "$why"

# 6. The commands from the log line, as an administrator pastes them.
why=
cmds=${line#*release it with: }
while [ -z "$why" ] && [ -n "$cmds" ]; do
	cmd=${cmds%%; *}
	[ "$cmd" = "$cmds" ] && cmds= || cmds=${cmds#*; }
	echo "# \$ $cmd"
	bash -c "$cmd" 2>&1 | sed 's/^/#   /'
	[ "${PIPESTATUS[0]}" = 0 ] || why="'$cmd' failed"
done
[ -n "$why" ] || ! iomem_regions | grep -q " $region\$" || why="$region is still in /proc/iomem"
[ -n "$why" ] || [ ! -e "/sys/bus/cxl/devices/$region" ] || why="$region is still on the CXL bus"
result logged_commands_release_range "$why"

# 7. Now the open succeeds and the device memory works.
why=
out=$(target/release/cxlvfio-dpa --device "$bdf" --only dpa_mmap_read_write 2>&1) ||
	why="the DPA test failed: $(grep -E '^not ok|error' <<<"$out" | head -n 2 | tr '\n' ' ')"
result open_succeeds_after_release "$why"

why=
problems=$(dmesg | sed -n "/$mark/,\$p" | grep -E 'WARNING:|BUG:|Oops|general protection|possible circular|inconsistent lock state|UBSAN:|refcount_t:' || true)
[ -z "$problems" ] || why="kernel log: $(head -n 3 <<<"$problems" | tr '\n' ' ')"
result kernel_log_clean "$why"

echo "# Totals: pass:$((n - failed)) fail:$failed xfail:0 xpass:0 skip:0 error:0"
[ "$failed" = 0 ] && [ "$n" = "$PLAN" ]
