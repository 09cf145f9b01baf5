#!/usr/bin/env bash
# In the test VM on the sanitizer kernel (run-tests.sh, KERNEL_FLAVOR=sanitize): kmemleak's
# positive control. Every other suite passes when kmemleak finds nothing of ours; this shows
# that it would find something. The claim-test module leaks one allocation at load
# (leak_bytes); kmemleak must report it with the module in its allocation backtrace, and
# `cxlvfio sanitizer-check` must fail on that report and name the module. The report is then
# cleared, so that the boot's own check after this command judges the rest of the boot. KTAP.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tests/vm/lib.sh
cxlvfio=$PWD/target/release/cxlvfio
module=cxl_vfio_claim_test
leak_bytes=4096 # a kmalloc-4k object: kmemleak reports its cache's object size
k=/sys/kernel/debug/kmemleak
work=$(mktemp -d /tmp/kmemleak-control.XXXXXX)
echo "KTAP version 1"
echo "1..5"

[ -e "$k" ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
why=
[ -w "$k" ] || why="no writable $k: not the sanitizer kernel?"
result kmemleak_present "$why"
[ -z "$why" ] || { echo "# skipping the rest"; exit 1; }

# Start from an empty report: whatever the boot left is the boot check's business.
echo scan >"$k"
echo clear >"$k"
why=
out=$(modprobe "$module" leak_bytes=$leak_bytes 2>&1) || why="modprobe: ${out:-failed}"
result module_leaks_at_load "$why"

# kmemleak reports no object younger than 5 s, and only after two scans found it
# unreferenced. The module stays loaded: the report resolves its symbols only then.
sleep 6
echo scan >"$k"
sleep 1
echo scan >"$k"
cat "$k" >"$work/report"
# The report's objects, one a line, the ones whose backtrace has the module frame.
ours=$(awk -v mod="[$module]" -v size="(size $leak_bytes)" '
	/^unreferenced object/ { hit = index($0, size) > 0; found = 0; next }
	hit && index($0, mod) { found = 1 }
	hit && found && !done { print "leak"; done = 1 }' "$work/report")
why=
[ "$ours" = leak ] || why="no unreferenced object of size $leak_bytes through [$module] in $(grep -c '^unreferenced object' "$work/report") reported"
result kmemleak_reports_the_module_leak "$why"
[ -z "$why" ] || sed 's/^/# report: /' "$work/report" | head -n 40

# The verdict the boot check would give on this report must fail, and name the module.
dmesg >"$work/dmesg"
"$cxlvfio" sanitizer-check "$work/report" "$work/dmesg" >"$work/verdict" 2>&1
rc=$?
sed 's/^/# verdict: /' "$work/verdict"
why=
[ "$rc" != 0 ] || why="sanitizer-check passed (exit 0) on a report with a leak of ours"
grep -q '^not ok [0-9]* kmemleak_nothing_from_our_code' "$work/verdict" ||
	why="${why:+$why; }its kmemleak result did not fail"
grep -q "kmemleak:  *.*\[$module\]" "$work/verdict" || why="${why:+$why; }it did not name $module"
result sanitizer_check_fails_on_it "$why"

# Leave the rest of the boot to its own check: the control's leak is reported, not new.
echo clear >"$k"
why=
out=$(modprobe -r "$module" 2>&1) || why="modprobe -r: ${out:-failed}"
result module_unloads "$why"
rm -rf "$work"
[ "$failed" = 0 ]
