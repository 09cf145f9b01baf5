#!/usr/bin/env bash
# Runs one in-VM suite N times in a row, each in its own VM boot, to find flakes:
#   scripts/repeat-vm-suite.sh N [vm-run args] -- PROGRAM [args]
# e.g. scripts/repeat-vm-suite.sh 20 -- target/release/cxlvfio-dpa
# One line per run (KTAP counts, VM exit, time); every run keeps its KTAP, console and guest
# kernel log in the log directory (REPEAT_LOG_DIR, default a new /tmp directory). Ends with
# "N runs: G green, R red" and exits non-zero if any run was red.
set -uo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"
n=${1:?usage: $0 N [vm-run args] -- PROGRAM [args]}
shift
logs=${REPEAT_LOG_DIR:-$(mktemp -d /tmp/cxlvfio-repeat.XXXXXX)}
mkdir -p "$logs"
echo "repeat: $n runs of: $*; logs in $logs"
green=0 red=0
for i in $(seq 1 "$n"); do
	start=$(date +%s)
	VM_LOG_PREFIX="$logs/run$i" scripts/vm-run.sh "$@" >"$logs/run$i.ktap" 2>&1
	rc=$?
	p=$(grep -cE '^ok [0-9]+ ' "$logs/run$i.ktap")
	f=$(grep -cE '^not ok [0-9]+ ' "$logs/run$i.ktap")
	if [ "$rc" = 0 ] && [ "$f" = 0 ] && [ "$p" != 0 ]; then
		green=$((green + 1))
		verdict=green
	else
		red=$((red + 1))
		verdict="RED (see $logs/run$i.*)"
	fi
	echo "repeat: run $i: $p passed, $f failed, exit $rc, $(($(date +%s) - start)) s: $verdict"
done
echo "$n runs: $green green, $red red"
[ "$red" = 0 ]
