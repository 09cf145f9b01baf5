#!/usr/bin/env bash
# Run every test suite and end with one line: "N passed, N failed".
#   1. host: cargo test of every host crate (register model, CEDT parser, UAPI lib)
#   1b. fuzz: the register model's cargo fuzz targets, 15 s each (FUZZ_SECONDS)
#   2. abi: the UAPI headers as `make headers_install` exports them, compiled as C
#   3. static: rustfmt, clippy, no `unsafe`/`bindings::` in the driver, SAFETY comments
#   4. the project's QEMU (built once, cached)
#   5. VM: every suite (KTAP) through VFIO exactly as a VMM would, on the type-3 and the
#      Type-2 accelerator
#   6. in-kernel: the KUnit doctests of our abstractions, run at boot of the test kernel
# --vm-only: the kernel, the host tools and the project's QEMU as the VM needs them, then
# steps 5 and 6 alone, on the kernel KERNEL_FLAVOR names (`make test-sanitize`: every VM suite
# on the sanitizer kernel, see scripts/vm-run.sh).
# TEST_SUITES='vm-lifecycle vm-nested-*': run only the VM suites (step 5) whose names match one
# of these shell patterns, with the checks that read their output (backend files, KUnit from
# vm-smoke); the others are skipped and not counted. For a long run in parts
# (`TEST_SUITES=... make test-sanitize`) or one suite again after a fix.
set -uo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"
vm_only=0
case "${1:-}" in
"") ;;
--vm-only) vm_only=1 ;;
*) echo "usage: $0 [--vm-only]" >&2; exit 2 ;;
esac
logs=${TEST_LOG_DIR:-$(mktemp -d /tmp/cxlvfio-tests.XXXXXX)}
mkdir -p "$logs"
passed=0 failed=0
count() { # count SUITE PASSED FAILED
	echo "== $1: $2 passed, $3 failed"
	passed=$((passed + $2)) failed=$((failed + $3))
}
die_setup() { echo "run-tests: $*" >&2; count setup 0 1; echo "$passed passed, $failed failed"; exit 1; }

if [ "$vm_only" = 0 ]; then
	# 0. The README's commands on a machine without the packages (a fake one: no network, no root
	#    changes), before the real setup below makes this machine have them.
	echo "== setup on a fresh machine (tests/setup/fresh-machine.sh)"
	tests/setup/fresh-machine.sh >"$logs/fresh-machine.ktap" 2>&1
	cat "$logs/fresh-machine.ktap"
	fp=$(grep -cE '^ok [0-9]+ ' "$logs/fresh-machine.ktap")
	ff=$(grep -cE '^not ok [0-9]+ ' "$logs/fresh-machine.ktap")
	[ "$fp" != 0 ] || ff=$((ff + 1))
	count fresh-machine "$fp" "$ff"
fi

scripts/setup.sh || die_setup "setup failed"
. "$REPO/scripts/env.sh" # again: the cache key names the kernel package setup installed
echo "== building the test kernel, flavour $KERNEL_FLAVOR (log: $logs/kbuild.log)"
scripts/kbuild.sh >"$logs/kbuild.log" 2>&1 || { tail -n 40 "$logs/kbuild.log"; die_setup "kernel build failed"; }
grep '^kbuild: built base kernel' "$logs/kbuild.log"
cargo build --release --workspace --quiet || die_setup "host tools do not build"

if [ "$vm_only" = 0 ]; then
	# 1. Host crates.
	cargo test --workspace --quiet 2>&1 | tee "$logs/cargo-test.log"
	cargo_rc=${PIPESTATUS[0]}
	hp=$(sed -n 's/^test result: .* \([0-9]\+\) passed; \([0-9]\+\) failed.*/\1/p' "$logs/cargo-test.log" | paste -sd+ | bc)
	hf=$(sed -n 's/^test result: .* \([0-9]\+\) passed; \([0-9]\+\) failed.*/\2/p' "$logs/cargo-test.log" | paste -sd+ | bc)
	# A crate that fails to build fails the suite (its tests report nothing).
	[ "$cargo_rc" = 0 ] || [ "${hf:-0}" != 0 ] || hf=1
	count host "${hp:-0}" "${hf:-0}"

	# 1b. The register model fuzzed (cargo fuzz, userspace/cxl-model/fuzz): every target for a
	#     bounded time from its checked-in seeds; a crash, leak, OOM or hang fails it.
	echo "== fuzzing the register model (scripts/fuzz-model.sh ${FUZZ_SECONDS:-15})"
	FUZZ_LOG_DIR="$logs/fuzz" scripts/fuzz-model.sh "${FUZZ_SECONDS:-15}" >"$logs/fuzz.ktap" 2>&1
	cat "$logs/fuzz.ktap"
	zp=$(grep -cE '^ok [0-9]+ ' "$logs/fuzz.ktap")
	zf=$(grep -cE '^not ok [0-9]+ ' "$logs/fuzz.ktap")
	[ "$zp" != 0 ] || [ "$zf" != 0 ] || zf=1
	count fuzz "$zp" "$zf"

	# 2. The ABI as userspace C sees it, from the headers `make headers_install` exports.
	echo "== ABI of the installed UAPI headers"
	hdr="$logs/headers"
	if "${KMAKE[@]}" -s headers_install INSTALL_HDR_PATH="$hdr" >"$logs/headers.log" 2>&1 &&
		gcc -std=c11 -Wall -Wextra -Werror -I"$hdr/include" tests/abi/cxl_uapi_abi.c -o "$logs/cxl_uapi_abi" \
			>>"$logs/headers.log" 2>&1; then
		"$logs/cxl_uapi_abi" >"$logs/abi.ktap"
	else
		cat "$logs/headers.log"
		echo "not ok 1 the UAPI headers do not install or compile" >"$logs/abi.ktap"
	fi
	grep '^not ok' "$logs/abi.ktap"
	count abi "$(grep -cE '^ok [0-9]+ ' "$logs/abi.ktap")" "$(grep -cE '^not ok [0-9]+ ' "$logs/abi.ktap")"

	# 3. Static checks.
	sp=0 sf=0
	check() { if "$@" >"$logs/static.tmp" 2>&1; then sp=$((sp + 1)); echo "ok - $desc"; else sf=$((sf + 1)); echo "not ok - $desc"; sed 's/^/#   /' "$logs/static.tmp" | head -n 20; fi; }
	desc="no unsafe and no bindings:: in drivers/"
	check bash -c '! grep -rnE "\bunsafe\b|bindings::" drivers --include="*.rs"'
	desc="every unsafe block in rust/ has a SAFETY comment"
	check scripts/safety-check.sh
	desc="rustfmt: kernel-side Rust is formatted"
	check /usr/bin/rustfmt --check --edition 2021 --config-path "$KSRC/.rustfmt.toml" $(git ls-files --cached --others --exclude-standard 'rust/*.rs' 'drivers/*.rs')
	desc="rustfmt: host crates are formatted"
	check cargo fmt --all -- --check
	desc="clippy: host crates (-D warnings)"
	check cargo clippy --workspace --all-targets --quiet -- -D warnings
	desc="clippy: kernel-side Rust (make LLVM=1 CLIPPY=1)"
	check scripts/check.sh
	count static "$sp" "$sf"

	# 3b. arm64, build only: the same source tree (series and overlay) cross-built with
	#     ARCH=arm64 LLVM=1 (scripts/arm64-build.sh, cached; incremental after a driver change).
	echo "== arm64 cross-build (scripts/arm64-build.sh, log: $logs/arm64-build.log)"
	ap=0 af=0
	arm64_check() { # arm64_check DESC CMD...: one counted check
		local desc=$1
		shift
		if "$@" >"$logs/arm64.tmp" 2>&1; then
			ap=$((ap + 1))
			echo "ok - arm64: $desc"
		else
			af=$((af + 1))
			echo "not ok - arm64: $desc"
			sed 's/^/#   /' "$logs/arm64.tmp" | head -n 20
		fi
	}
	arm64_start=$SECONDS
	if amod=$(scripts/arm64-build.sh 2>&1 | tee "$logs/arm64-build.log" | tail -n 1) && [ -f "$amod" ]; then
		echo "run-tests: arm64 build ready in $((SECONDS - arm64_start)) s"
		abuild=${amod%/drivers/*}
		arm64_check "the kernel Image is an arm64 boot image" \
			bash -c 'file -b "$1" | grep -q "Linux kernel ARM64 boot executable Image"' _ "$abuild/arch/arm64/boot/Image"
		for ko in "$amod" "$abuild/drivers/vfio/pci/cxl/cxl_vfio_claim_test.ko"; do
			arm64_check "$(basename "$ko") is an aarch64 module" \
				bash -c 'file -b "$1" | grep -q "ELF 64-bit LSB relocatable, ARM aarch64"' _ "$ko"
		done
		# The module would load into that kernel: same vermagic, and its parameter is there.
		arm64_check "cxl-vfio-pci.ko's vermagic is the arm64 kernel's" \
			bash -c 'v=$(modinfo -F vermagic "$1") && [ "${v##* }" = aarch64 ] && strings -a "$2" | grep -qxF "$v"' \
			_ "$amod" "$abuild/vmlinux"
		# The page sizes the README gives arm64: PMD PFN mappings, no PUD ones.
		arm64_check "the kernel inserts PMD and not PUD PFN mappings" \
			bash -c 'grep -q " vmf_insert_pfn_pmd$" "$1" && ! grep -q " vmf_insert_pfn_pud$" "$1"' _ "$abuild/System.map"
		arm64_check "cxl-vfio-pci.ko has the disable_cxl parameter" \
			bash -c 'modinfo -F parm "$1" | grep -q "^disable_cxl:"' _ "$amod"
	else
		tail -n 20 "$logs/arm64-build.log"
		af=1
	fi
	count arm64-build "$ap" "$af"
fi

# 4. The project's QEMU 10.0 (Debian's source + qemu/patches, built once and cached): the test
#    VM gets a type-3 on one CXL host bridge and the cxl-accel Type-2 accelerator on another,
#    each with its own window. Without it the VM suites fall back to Debian's QEMU 7.2 (the
#    type-3 alone), and the accelerator's tests fail.
echo "== the project's QEMU (scripts/qemu-build.sh, log: $logs/qemu-build.log)"
if ! qemu=$(scripts/qemu-build.sh --print-path 2>/dev/null); then
	qemu_start=$SECONDS
	qemu=$(scripts/qemu-build.sh 2>"$logs/qemu-build.log" | tail -n 1) || qemu=
	echo "run-tests: QEMU built in $((SECONDS - qemu_start)) s"
fi
if [ -x "$qemu" ]; then
	echo "run-tests: $qemu"
	count qemu-build 1 0
fi
if [ -x "$qemu" ] && [ "$vm_only" = 0 ]; then
	# The series' vfio-pci CXL code on the host, against an LD_PRELOAD mock of the driver's
	# UAPI (qtest and QMP, no guest): placement, errors, resets, unplug, no DMA map of the DPA.
	echo "== qemu-mock (log: $logs/qemu-mock.log)"
	qemu/tests/mock/run.sh "$qemu" >"$logs/qemu-mock.log" 2>&1
	rc=$?
	grep -E '^(ok |FAIL )' "$logs/qemu-mock.log"
	mp=$(grep -c '^ok ' "$logs/qemu-mock.log") mf=$(grep -c '^FAIL ' "$logs/qemu-mock.log")
	[ "$rc" = 0 ] || [ "$mf" != 0 ] || { mf=1; tail -n 20 "$logs/qemu-mock.log"; }
	[ "$mp" != 0 ] || mf=$((mf + 1))
	count qemu-mock "$mp" "$mf"
elif [ ! -x "$qemu" ]; then
	echo "run-tests: the project's QEMU could not be built; see $logs/qemu-build.log"
	tail -n 20 "$logs/qemu-build.log" 2>/dev/null
	count qemu-build 0 1
fi

# 5. VM boots: KTAP suites through VFIO, as a VMM would, each on both CXL devices and through
#    both IOMMU paths (tests/vm/each-device.sh: the type-3, then the accelerator, each opened
#    through the type1 container and through iommufd; the VM has QEMU's intel-iommu), then
#    the no-IOMMU variant.
suites_run=0
selected() { # selected SUITE: TEST_SUITES is unset or one of its patterns matches SUITE
	local pattern patterns
	[ -n "${TEST_SUITES:-}" ] || return 0
	read -ra patterns <<<"$TEST_SUITES" # read, not a bare $TEST_SUITES: no file-name globbing
	for pattern in "${patterns[@]}"; do
		# shellcheck disable=SC2053 # the pattern is a glob on purpose
		[[ $1 == $pattern ]] && return 0
	done
	return 1
}
vm_suite() { # vm_suite SUITE [vm-run args] -- PROGRAM [args]
	local suite=$1 vm_args=() rc p f t0=$SECONDS
	shift
	if ! selected "$suite"; then
		echo "== $suite: skipped (TEST_SUITES='$TEST_SUITES')"
		return 0
	fi
	suites_run=$((suites_run + 1))
	while [ "$1" != -- ]; do vm_args+=("$1"); shift; done
	shift
	echo "== $suite (console and guest kernel log: $logs/$suite.console, $logs/$suite.dmesg)"
	VM_LOG_PREFIX="$logs/$suite" scripts/vm-run.sh "${vm_args[@]}" -- "$@" >"$logs/$suite.ktap" 2>&1
	rc=$?
	cat "$logs/$suite.ktap"
	echo "run-tests: $suite took $((SECONDS - t0)) s (kernel flavour $KERNEL_FLAVOR)"
	p=$(grep -cE '^ok [0-9]+ ' "$logs/$suite.ktap")
	f=$(grep -cE '^not ok [0-9]+ ' "$logs/$suite.ktap")
	if [ "$p" = 0 ] && [ "$f" = 0 ]; then f=1; echo "run-tests: $suite did not run (exit $rc)"; fi
	[ "$rc" = 0 ] || [ "$f" != 0 ] || { f=1; echo "run-tests: $suite exited $rc"; }
	count "$suite" "$p" "$f"
}
each=tests/vm/each-device.sh
# The smoke suite ends with unbind and rmmod: the driver is reloaded between the devices. The
# first boot also keeps the guest kernel log for the KUnit results.
VM_DMESG="$logs/dmesg" VM_CONSOLE="$logs/console" vm_suite vm-smoke -- \
	$each --reload -- target/release/cxlvfio-smoke --device {bdf} --expect-ids {ids}
# The sanitizer kernel's positive control: a leak of ours (the claim-test module's leak_bytes)
# is reported by kmemleak and fails `cxlvfio sanitizer-check`, which judges every other boot.
[ "$KERNEL_FLAVOR" != sanitize ] || vm_suite vm-kmemleak-control -- tests/vm/kmemleak-control.sh
vm_suite vm-smoke-disable-cxl --disable-cxl -- \
	$each --reload -- target/release/cxlvfio-smoke --device {bdf} --expect-ids {ids} --expect-disable-cxl Y
# COMP_REGS and DVSEC emulation, every rule through the UAPI; then plain vfio-pci without CXL.
vm_suite vm-cxl -- $each -- target/release/cxlvfio-cxl --device {bdf} --expect-ids {ids}
vm_suite vm-cxl-disabled --disable-cxl -- $each -- target/release/cxlvfio-cxl --device {bdf} --expect-ids {ids} --expect-no-cxl
# A device without a CXL DVSEC (QEMU's pci-testdev) bound to cxl-vfio-pci is plain vfio-pci.
vm_suite vm-no-dvsec -- tests/vm/no-dvsec.sh
# VFIO_DEVICE_GET_INFO and GET_REGION_INFO: vfio-pci's replies plus exactly the CXL additions.
vm_suite vm-info-parity -- $each --reload -- tests/vm/info-parity.sh {bdf}
# Decoder 0 is validated before anything is mapped: faulty firmware (interleaved, outside every
# CXL window, in the other host bridge's window, larger than the device) gets no DPA region.
vm_suite vm-decoder-rules -- $each -- tests/vm/decoder-rules.sh {bdf}
# The DPA region (device memory) and the component BAR, through the UAPI; then the data the
# guest left in device memory must be in QEMU's memory backend file. On the accelerator with
# the stress test's 50 transitions, of which a third are bus resets through sysfs. A VMM that
# maps the DPA mapping for DMA: 6.12's type1 follows the PFN map and maps it, iommufd pins
# pages and refuses it (EFAULT).
dpa_dma=type1=ok,iommufd=EFAULT
rm -f "$logs/cxl-mem.raw" "$logs/accel-mem.raw"
VM_MEM_OUT="$logs/cxl-mem.raw" vm_suite vm-dpa -- $each --only cxl -- \
	target/release/cxlvfio-dpa --device {bdf} --expect-ids {ids} --expect-dpa-dma $dpa_dma
VM_ACCEL_MEM_OUT="$logs/accel-mem.raw" vm_suite vm-dpa-accel -- $each --only accel -- \
	target/release/cxlvfio-dpa --device {bdf} --expect-ids {ids} --expect-dpa-dma $dpa_dma --resets 50
# scrub_memory=0: the parameter really turns scrubbing off (data survives a reopen).
vm_suite vm-dpa-no-scrub --modargs scrub_memory=0 -- \
	$each -- target/release/cxlvfio-dpa --device {bdf} --expect-ids {ids} --expect-no-scrub --only dpa_tenant_isolation
# 1 GiB (PUD) mappings: the type-3 with 1 GiB at a 1 GiB-aligned base, scrubbing off (a
# scrubbing fault maps at most 2 MiB): one fault per GiB, 512 when skewed by 2 MiB, the data
# through the entry, and a reset revokes it.
VM_CXL_MEM_SIZE=1G vm_suite vm-pud --modargs scrub_memory=0 -- \
	$each --only cxl -- target/release/cxlvfio-pud --device {bdf}
# System sleep: the driver's suspend and resume callbacks revoke and restore like a reset (one
# sleep, both devices open and mapped through it).
vm_suite vm-sleep -- bash -c 'target/release/cxlvfio-sleep --vm-console --also "$ACCEL_BDF"'
# The same through iommufd and the device cdevs (the suite powers the VM off: a boot of its own).
vm_suite vm-sleep-iommufd -- bash -c 'CXLVFIO_IOMMU=iommufd target/release/cxlvfio-sleep --vm-console --also "$ACCEL_BDF"'
backend_check() { # backend_check SUITE BACKEND_FILE DPA_KTAP
	echo "== $1 (device memory as QEMU stored it, checked on the host)"
	target/release/cxlvfio backend-check "$2" "$3" >"$logs/$1.ktap" 2>&1
	local rc=$? p f
	cat "$logs/$1.ktap"
	p=$(grep -cE '^ok [0-9]+ ' "$logs/$1.ktap")
	f=$(grep -cE '^not ok [0-9]+ ' "$logs/$1.ktap")
	[ "$rc" = 0 ] && [ "$p" != 0 ] || f=$((f + 1))
	count "$1" "$p" "$f"
	rm -f "$2"
}
selected vm-dpa && backend_check backend "$logs/cxl-mem.raw" "$logs/vm-dpa.ktap"
selected vm-dpa-accel && backend_check backend-accel "$logs/accel-mem.raw" "$logs/vm-dpa-accel.ktap"
# The accelerator's own tests: its component BAR's two sparse areas, the doorbell through the
# mapping, CACHE_CAPABLE, the decoders in COMP_REGS, the block refused; with the block in the
# middle, at the start and at the end of the BAR, and with 1, 2 and 4 decoders.
vm_suite vm-accel -- target/release/cxlvfio-accel --expect-decoders 1 --expect-comp-block middle
VM_ACCEL_DECODERS=2 VM_ACCEL_COMP_BLOCK=start vm_suite vm-accel-2dec-start -- \
	target/release/cxlvfio-accel --expect-decoders 2 --expect-comp-block start
VM_ACCEL_DECODERS=4 VM_ACCEL_COMP_BLOCK=end vm_suite vm-accel-4dec-end -- bash -c \
	'target/release/cxlvfio-accel --expect-decoders 4 --expect-comp-block end &&
	target/release/cxlvfio-cxl --device "$ACCEL_BDF" --expect-ids 1b36:00ca --expect-decoders 4'
# The lifecycle looped: open/close cycles with faults and data checks, unbind/bind and
# rmmod/modprobe cycles, the open and close times against disable_cxl=1 (ratios, printed).
# `make lifecycle` runs the long version (1000 / 100 / 100, plus 500 mixed resets).
vm_suite vm-lifecycle -- tests/vm/lifecycle.sh
# The random-operation fuzzer (cxlvfio-randops): both devices in one process per IOMMU mode,
# 4 threads, every ioctl with valid and corrupted arguments, region accesses, mmaps, faults,
# resets, config and low-power windows; invariants checked as it goes; seed printed and
# replayable. 70 s of operations per mode here; `make randops` runs 100000 per device and mode.
vm_suite vm-randops -- tests/vm/randops.sh
# The kernel's CXL stack takes the type-3 first, as on a real host; the move to cxl-vfio-pci
# (unbind, driver_override, bind) works, every reset path is clean with the stack loaded, and
# the move back gives the host its memdev again.
vm_suite vm-cxl-stack --setup fw -- tests/vm/cxl-stack.sh
# A region the CXL core assembled on the firmware's decoders (host bridges with HDM decoders)
# and kept after the move: the open fails with EBUSY and a log line with the commands that
# release the range; after them the open succeeds.
VM_CXL_HB_DECODERS=1 vm_suite vm-cxl-region --setup fw -- tests/vm/cxl-region.sh
# A nested guest in the project's QEMU, with a device assigned through cxl-vfio-pci, uses its
# memory (tests/vm/nested.sh; 7 to 9 min a boot): the accelerator through type1 with
# scrub_memory=0 (the guest reads what the test VM wrote before it started), the type-3
# through iommufd with scrubbing (it reads zero there). The outer host then finds the words
# the guest left in the device's memory backend file.
nested_logs=$logs
case $nested_logs in /tmp/*) ;; *) nested_logs=/tmp ;; esac # the VM writes only below /tmp
# The nested guest's small kernel (scripts/l2-kbuild.sh, cached; about 15 min cold) and initramfs.
if ! selected vm-nested-accel && ! selected vm-nested-cxl; then
	echo "== vm-nested-*: skipped (TEST_SUITES='$TEST_SUITES')"
elif scripts/l2-kbuild.sh >"$logs/l2-kbuild.log" 2>&1 &&
	scripts/l2-initramfs.sh "$logs/l2-initramfs.cpio" >"$logs/l2-initramfs.log" 2>&1; then
	VM_ACCEL_MEM_OUT="$logs/nested-accel-mem.raw" vm_suite vm-nested-accel --modargs scrub_memory=0 -- \
		tests/vm/nested.sh --type accel --iommu type1 --initramfs "$logs/l2-initramfs.cpio" --log-dir "$nested_logs"
	VM_MEM_OUT="$logs/nested-cxl-mem.raw" vm_suite vm-nested-cxl -- \
		tests/vm/nested.sh --type cxl --iommu iommufd --initramfs "$logs/l2-initramfs.cpio" --log-dir "$nested_logs"
	for dev in accel cxl; do
		selected "vm-nested-$dev" || continue
		bp=0 bf=0
		while read -r off want; do
			got=$(od -A n -t x4 -j "$((off))" -N 4 "$logs/nested-$dev-mem.raw" 2>/dev/null | tr -d ' ')
			if [ -n "$got" ] && [ "$((0x$got))" = "$((want))" ]; then
				bp=$((bp + 1)); echo "ok - backend file offset $off holds $want"
			else
				bf=$((bf + 1)); echo "not ok - backend file offset $off holds 0x${got:-nothing}, expected $want"
			fi
		done < <(sed -n 's/^# backend-word offset=\(0x[0-9a-f]*\) value=\(0x[0-9a-f]*\)$/\1 \2/p' "$logs/vm-nested-$dev.ktap")
		[ $((bp + bf)) -gt 0 ] || { bf=1; echo "not ok - no backend words from vm-nested-$dev"; }
		count "nested-$dev-backend" "$bp" "$bf"
	done
else
	tail -n 40 "$logs/l2-kbuild.log" "$logs/l2-initramfs.log" 2>/dev/null
	count vm-nested 0 1
fi
# The fallback: Debian's QEMU 7.2, its one host bridge with an HDM decoder, the type-3 alone.
VM_QEMU_FLAVOR=debian vm_suite vm-cxl-qemu72 -- target/release/cxlvfio-cxl
# No IOMMU (VFIO's no-IOMMU mode, no isolation): the CXL and smoke suites on both devices.
VM_IOMMU=none vm_suite vm-noiommu -- bash -c "$each -- target/release/cxlvfio-cxl --device {bdf} --expect-ids {ids}; \
	cxl=\$?; $each --reload -- target/release/cxlvfio-smoke --device {bdf} --expect-ids {ids} && exit \$cxl"

# 6. In-kernel: KUnit doctests, run at boot of the first VM.
echo "== KUnit doctests (from the guest kernel log)"
kp=0 kf=0
if ! selected vm-smoke; then
	echo "run-tests: skipped with vm-smoke, whose boot runs them"
elif [ -s "$logs/dmesg" ]; then
	sed -n 's/^\[[ 0-9.]*\] *//; /rust_doctest/p' "$logs/dmesg" >"$logs/kunit.ktap"
	kp=$(grep -cE '^\s*ok [0-9]+ rust_doctest_kernel_' "$logs/kunit.ktap")
	kf=$(grep -cE '^\s*not ok [0-9]+ rust_doctest_kernel_' "$logs/kunit.ktap")
	# Our abstractions' doctests: every one built into the kernel must have passed.
	ours_re='rust_doctest_kernel_(acpi|pci|vfio|vfio_pci|module_param|dev_printk|mm_virt|delay|io)_rs_[0-9]+'
	ours_built=$(grep -oE "# $ours_re\.location" "$KBUILD/rust/doctests_kernel_generated.rs" | sort -u | wc -l)
	ours=$(grep -cE "^\s*ok [0-9]+ $ours_re\$" "$logs/kunit.ktap")
	grep -E 'rust_doctests_kernel: pass:' "$logs/kunit.ktap" | sed 's/^/# /'
	echo "# ours (acpi, pci, vfio, module_param, dev_printk, mm, delay, io): $ours of $ours_built passed"
	grep -E '^\s*not ok' "$logs/kunit.ktap" | sed 's/^/# /'
	[ "$ours_built" -gt 0 ] && [ "$ours" = "$ours_built" ] || { kf=$((kf + 1)); echo "run-tests: not all of our doctests passed"; }
	grep -q 'rust_doctests_kernel: pass:' "$logs/kunit.ktap" || { kf=$((kf + 1)); echo "run-tests: the doctest suite did not finish"; }
else
	kf=1
	echo "run-tests: no guest kernel log"
fi
selected vm-smoke && count kunit "$kp" "$kf"
if [ "$suites_run" = 0 ]; then
	echo "run-tests: no VM suite matches TEST_SUITES='${TEST_SUITES:-}'"
	failed=$((failed + 1))
fi

echo "logs: $logs"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
