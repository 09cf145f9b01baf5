#!/usr/bin/env bash
# In the test VM (as root, the CXL device $1, default $CXL_BDF, bound to cxl-vfio-pci): play faulty
# platform firmware with cxl-fwemu --endpoint-fault, one fault per rule the driver checks on
# the firmware-committed endpoint decoder 0 at bind, and check that the driver then binds
# without a DPA region and logs exactly one line saying why. Then restore correct firmware
# and check that the DPA region is offered again. Prints KTAP; exit 0 only if all pass.
#
# For each fault: unbind, reset (QEMU clears the endpoint decoders; the host bridge decoder
# survives), cxl-fwemu --endpoint-fault FAULT, mark the kernel log, bind, then check
#   <name>_refused_logged  exactly one new "no DPA region: decoder 0" line, for this device,
#                          naming the range cxl-fwemu committed and the fault's reason
#   <name>_still_bound     the device is bound to cxl-vfio-pci
#   <name>_no_dpa_region   cxlvfio info works, lists the CXL device capability and the
#                          COMP_REGS region, and no DPA region
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1

DRIVER=cxl-vfio-pci
FWEMU=target/release/cxl-fwemu
CXLVFIO=target/release/cxlvfio
# How cxlvfio info names the two CXL regions (PCI_VENDOR_ID_CXL | VFIO_REGION_TYPE_PCI_VENDOR_TYPE,
# subtype 1 = DPA, 2 = COMP_REGS) and the CXL device capability (VFIO_DEVICE_INFO_CAP_CXL = 6).
DPA_TYPE='type(0x80001e98,0x1)'
COMP_REGS_TYPE='type(0x80001e98,0x2)'
CXL_CAP_RE='device cap: +id 6 '
LOG_KEY='no DPA region: decoder 0'

FAULTS=(interleave2 outside-window oversize)
declare -A NAME=(
	[interleave2]=decoder_interleaved
	[outside-window]=decoder_outside_window
	[oversize]=decoder_oversize
)
# The driver's reason text for each fault (drivers/vfio/pci/cxl/model/window.rs), as an
# extended regular expression. Past the end of its own window the decoder lies outside every
# window when the platform has one (QEMU 7.2's topology), or in another host bridge's window
# when it has one per host bridge (the project's QEMU: the accelerator's window is next).
declare -A REASON=(
	[interleave2]='is interleaved \(IW'
	[outside-window]="outside every CXL window|targets host bridge UID [0-9]+, not this device's"
	[oversize]="exceeds the device's memory"
)
PLAN=$((3 * ${#FAULTS[@]} + 1))

n=0
passed=0
failed=0
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n $1"; }
not_ok() { # not_ok NAME REASON [DIAGNOSTICS]
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n $1 # $2"
	[ -z "${3:-}" ] || printf '%s\n' "$3" | sed 's/^/# /'
}
# result NAME WHY DIAGNOSTICS: passes when WHY is empty.
result() {
	if [ -z "$2" ]; then ok "$1"; else not_ok "$1" "$2" "${3:-}"; fi
}
finish() {
	[ "$n" = "$PLAN" ] || echo "# planned $PLAN tests but reported $n"
	echo "# Totals: pass:$passed fail:$failed xfail:0 xpass:0 skip:0 error:0"
	[ "$failed" = 0 ] && [ "$n" = "$PLAN" ]
	exit $?
}

bdf=${1:-${CXL_BDF:-}}
dev_dir=/sys/bus/pci/devices/$bdf

driver_of() {
	local link
	link=$(readlink "$dev_dir/driver" 2>/dev/null) || return 0
	basename "$link"
}

# write_to FILE VALUE: writes VALUE and a newline to FILE (a sysfs attribute, /dev/kmsg);
# on failure prints the shell's error message and returns non-zero.
write_to() {
	local msg
	msg=$({ printf '%s\n' "$2" >"$1"; } 2>&1) && return 0
	printf '%s\n' "${msg:-write to $1 failed}"
	return 1
}

# Output of the last play_firmware: what cxl-fwemu printed, the kernel log marker written
# just before the bind, and what went wrong (empty if nothing did).
fw_out=
mark=
setup_err=
marks=0

# play_firmware [FAULT]: unbind, reset, program decoder 0 (faulty with FAULT), mark the kernel
# log, bind. Returns non-zero with $setup_err set when a step fails.
play_firmware() {
	local fault=${1:-} drv err args=(--device "$bdf")
	[ -z "$fault" ] || args+=(--endpoint-fault "$fault")
	fw_out=
	mark=
	setup_err=
	drv=$(driver_of)
	if [ -n "$drv" ]; then
		err=$(write_to "/sys/bus/pci/drivers/$drv/unbind" "$bdf") || {
			setup_err="cannot unbind $bdf from $drv: $err"
			return 1
		}
	fi
	err=$(write_to "$dev_dir/reset" 1) || {
		setup_err="cannot reset $bdf: $err"
		return 1
	}
	fw_out=$("$FWEMU" "${args[@]}" 2>&1) || {
		setup_err="$FWEMU ${args[*]} failed"
		return 1
	}
	marks=$((marks + 1))
	mark="decoder-rules[$$]: bind $marks of $bdf, firmware ${fault:-correct}"
	err=$(write_to /dev/kmsg "$mark") || {
		setup_err="cannot write to /dev/kmsg: $err"
		return 1
	}
	err=$(write_to /sys/bus/pci/drivers_probe "$bdf") || {
		setup_err="binding $bdf failed: $err"
		return 1
	}
	return 0
}

# The kernel log after the last marker; fails if the marker is not in the log.
new_log() {
	dmesg | awk -v m="$mark" '
		index($0, m) { found = 1; buf = ""; next }
		found { buf = buf $0 "\n" }
		END { printf "%s", buf; exit !found }'
}

# The range cxl-fwemu committed for a fault, as the driver prints it: "0xBASE-0xLAST".
committed_range() {
	local base end
	read -r base end < <(printf '%s\n' "$fw_out" |
		sed -n 's/^FAULT .*: committed .*: HPA \(0x[0-9a-f]*\)\.\.\(0x[0-9a-f]*\) IW=.*/\1 \2/p')
	[ -n "${base:-}" ] && [ -n "${end:-}" ] || return 1
	printf '%#x-%#x\n' "$((base))" "$((end - 1))"
}

echo "KTAP version 1"
echo "1..$PLAN"

pre=
[ -n "$bdf" ] || pre="no device: pass its BDF or set CXL_BDF"
[ -z "$pre" ] || [ -e "$dev_dir" ] || pre="no PCI device $bdf"
[ -z "$pre" ] || [ "$(id -u)" = 0 ] || pre="needs root"
for tool in "$FWEMU" "$CXLVFIO"; do
	[ -n "$pre" ] || [ -x "$tool" ] || pre="$REPO/$tool is not built"
done
[ -n "$pre" ] || [ -d "/sys/bus/pci/drivers/$DRIVER" ] || pre="driver $DRIVER is not loaded"
if [ -n "$pre" ]; then
	for fault in "${FAULTS[@]}"; do
		for check in refused_logged still_bound no_dpa_region; do
			not_ok "${NAME[$fault]}_$check" "$pre"
		done
	done
	not_ok decoder_correct_dpa_region_offered "$pre"
	finish
fi

for fault in "${FAULTS[@]}"; do
	name=${NAME[$fault]}
	reason=${REASON[$fault]}
	if ! play_firmware "$fault"; then
		diags=$(printf 'cxl-fwemu output:\n%s' "$fw_out")
		[ -z "$mark" ] || diags+=$(printf '\nkernel log since the bind:\n%s' "$(new_log)")
		for check in refused_logged still_bound no_dpa_region; do
			not_ok "${name}_$check" "setup: $setup_err" "$diags"
		done
		continue
	fi

	# (1) Exactly one refusal line, for this device and the range just committed, with the
	# fault's reason.
	why=
	log=$(new_log) || why="the kernel log marker '$mark' is not in dmesg"
	lines=$(printf '%s\n' "$log" | grep -F -- "$LOG_KEY")
	count=$(printf '%s\n' "$log" | grep -cF -- "$LOG_KEY")
	range=$(committed_range) || range=
	if [ -n "$why" ]; then
		:
	elif [ "$count" != 1 ]; then
		why="$count kernel log lines contain '$LOG_KEY', expected 1"
	elif [ -z "$range" ]; then
		why="cxl-fwemu did not print the committed range (no 'FAULT $fault: committed' line)"
	elif ! grep -qF -- "$DRIVER $bdf: $LOG_KEY [mem $range] refused: " <<<"$lines"; then
		why="the line is not '$DRIVER $bdf: $LOG_KEY [mem $range] refused: ...'"
	elif ! grep -qE -- "$reason" <<<"$lines"; then
		why="the line does not say '$reason'"
	fi
	result "${name}_refused_logged" "$why" "$(printf 'kernel log since the bind:\n%s\ncxl-fwemu output:\n%s' "$log" "$fw_out")"

	# (2) Still bound to the driver: the refusal only drops the DPA region.
	drv=$(driver_of)
	why=
	[ "$drv" = "$DRIVER" ] || why="$bdf is bound to '${drv:-nothing}', not $DRIVER"
	result "${name}_still_bound" "$why" "$(printf 'kernel log since the bind:\n%s' "$log")"

	# (3) Through VFIO: the CXL capability and COMP_REGS region, no DPA region.
	why=
	info=$("$CXLVFIO" info "$bdf" 2>&1) || why="cxlvfio info $bdf failed"
	if [ -n "$why" ]; then
		:
	elif grep -qF -- "$DPA_TYPE" <<<"$info"; then
		why="a DPA region ($DPA_TYPE) is offered"
	elif ! grep -qF -- "$COMP_REGS_TYPE" <<<"$info"; then
		why="no COMP_REGS region ($COMP_REGS_TYPE)"
	elif ! grep -qE -- "$CXL_CAP_RE" <<<"$info"; then
		why="no CXL device capability (id 6)"
	fi
	result "${name}_no_dpa_region" "$why" "$(printf 'cxlvfio info %s:\n%s' "$bdf" "$info")"
done

# Correct firmware again: the DPA region is back and nothing was refused.
why=
log=
info=
if ! play_firmware; then
	why="setup: $setup_err"
	[ -z "$mark" ] || log=$(new_log)
else
	log=$(new_log) || why="the kernel log marker '$mark' is not in dmesg"
	drv=$(driver_of)
	if [ -n "$why" ]; then
		:
	elif grep -qF -- "$LOG_KEY" <<<"$log"; then
		why="the driver logged '$LOG_KEY' for a correct decoder"
	elif [ "$drv" != "$DRIVER" ]; then
		why="$bdf is bound to '${drv:-nothing}', not $DRIVER"
	elif ! info=$("$CXLVFIO" info "$bdf" 2>&1); then
		why="cxlvfio info $bdf failed"
	elif ! grep -qF -- "$DPA_TYPE" <<<"$info"; then
		why="no DPA region ($DPA_TYPE) offered"
	elif ! grep -qF -- "$COMP_REGS_TYPE" <<<"$info"; then
		why="no COMP_REGS region ($COMP_REGS_TYPE)"
	fi
fi
result decoder_correct_dpa_region_offered "$why" \
	"$(printf 'cxl-fwemu output:\n%s\nkernel log since the bind:\n%s\ncxlvfio info %s:\n%s' \
		"$fw_out" "$log" "$bdf" "$info")"

finish
