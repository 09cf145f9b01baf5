#!/usr/bin/env bash
# Fuzzes the register model (drivers/vfio/pci/cxl/model) with the cargo-fuzz targets of
# userspace/cxl-model/fuzz, each for a bounded time:
#   scripts/fuzz-model.sh [SECONDS_PER_TARGET]        (default 20)
# Builds every target once (cargo-fuzz, installed with `cargo install --locked` if missing;
# the rustup nightly toolchain if there is one, else the default one with RUSTC_BOOTSTRAP=1),
# then runs each from its checked-in seed corpus (fuzz/seeds/TARGET) with libFuzzer's
# -max_total_time, a fixed -seed (FUZZ_SEED, default 1) and -rss_limit_mb (FUZZ_RSS_MB,
# default 2048). The targets are safe Rust, so they are built without a sanitizer (faster),
# but with overflow checks and debug assertions. Cargo runs under `nice -n 10`.
# Prints KTAP, one test per target ("not ok N TARGET - crash: ARTIFACT" on a crash), with
# execs/s and coverage as diagnostics; keeps each target's output, the corpus it grew and any
# crash artifact in the log directory (FUZZ_LOG_DIR, default a new /tmp directory). Exits
# non-zero if a target failed to build, crashed, leaked, ran out of memory or hung.
# Replay a crash:  userspace/cxl-model/fuzz/target/x86_64-unknown-linux-gnu/release/TARGET ARTIFACT
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"

secs=${1:-20}
case $secs in '' | *[!0-9]*)
	echo "usage: $0 [SECONDS_PER_TARGET]" >&2
	exit 2
	;;
esac
seed=${FUZZ_SEED:-1}
rss=${FUZZ_RSS_MB:-2048}
fuzz_dir=$REPO/userspace/cxl-model/fuzz
targets=(caparray regloc comp_regs dvsec sparse info)
logs=${FUZZ_LOG_DIR:-$(mktemp -d /tmp/cxl-model-fuzz.XXXXXX)}
mkdir -p "$logs"
start=$(date +%s)

# cargo-fuzz needs nightly features: the nightly toolchain, or stable told to allow them.
if command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
	toolchain=(+nightly)
	toolchain_name=nightly
else
	toolchain=()
	export RUSTC_BOOTSTRAP=1
	toolchain_name="$(rustc --version | cut -d' ' -f2) with RUSTC_BOOTSTRAP=1"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "# installing cargo-fuzz"
	nice -n 10 cargo install cargo-fuzz --locked >"$logs/cargo-install.log" 2>&1 || {
		tail -n 20 "$logs/cargo-install.log" >&2
		exit 1
	}
fi

echo "TAP version 13"
echo "1..${#targets[@]}"
echo "# fuzz-model: $secs s per target, -seed=$seed, -rss_limit_mb=$rss, toolchain $toolchain_name"
echo "# logs in $logs"
built=1
(cd "$fuzz_dir" && nice -n 10 cargo "${toolchain[@]}" fuzz build --sanitizer none) \
	>"$logs/build.log" 2>&1 || built=0
build_secs=$(($(date +%s) - start))
echo "# build: $build_secs s$([ "$built" = 1 ] || echo ", FAILED: see $logs/build.log")"

bin_dir=$fuzz_dir/target/x86_64-unknown-linux-gnu/release
failed=0
n=0
for t in "${targets[@]}"; do
	n=$((n + 1))
	if [ "$built" = 0 ]; then
		echo "not ok $n $t - build failed: $logs/build.log"
		failed=$((failed + 1))
		continue
	fi
	corpus=$logs/corpus/$t
	artifacts=$logs/artifacts/$t
	mkdir -p "$corpus" "$artifacts"
	# New inputs go to the first directory; the checked-in seeds are only read.
	args=("$corpus" "$fuzz_dir/seeds/$t" -max_total_time="$secs" -seed="$seed"
		-rss_limit_mb="$rss" -timeout=10 -artifact_prefix="$artifacts/" -print_final_stats=1)
	echo "$bin_dir/$t ${args[*]}" >"$logs/$t.log"
	rc=0
	"$bin_dir/$t" "${args[@]}" >>"$logs/$t.log" 2>&1 || rc=$?
	stats=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$logs/$t.log" | tail -n 1 || true)
	runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$logs/$t.log" | tail -n 1)
	cov=$(sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov: \1 ft: \2 corpus: \3/p' <<<"$stats")
	execs=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' <<<"$stats")
	artifact=$(find "$artifacts" -type f | head -n 1)
	if [ "$rc" = 0 ] && [ -z "$artifact" ]; then
		echo "ok $n $t"
	else
		failed=$((failed + 1))
		if [ -n "$artifact" ]; then
			echo "not ok $n $t - crash: $artifact"
		else
			echo "not ok $n $t - exit $rc: $logs/$t.log"
		fi
		grep -m1 -A1 -E "panicked at|ERROR: libFuzzer" "$logs/$t.log" | sed 's/^/# /' || true
		[ -z "$artifact" ] || echo "# replay: $bin_dir/$t $artifact"
	fi
	echo "# $t: ${runs:-?} runs, ${execs:-?} exec/s, ${cov:-no stats}"
done
echo "# total: $(($(date +%s) - start)) s (build $build_secs s); replay a run with the same" \
	"seed and -runs=N from an empty corpus directory"
echo "# fuzz-model: $((${#targets[@]} - failed)) passed, $failed failed"
[ "$failed" = 0 ]
