# cxl-vfio-pci: build, try and test the driver.
#   make demo   build everything if needed, boot the CXL test VM, bind the device
#               and show it through VFIO
#   make demo-guest   the same VM starts the project's QEMU with the device assigned to a
#               nested guest, which shows lspci -vv, cxl list and a write and read of device
#               memory; then where the data landed
#   make test   run every test suite (host, VM smoke, in-kernel KUnit doctests)
#   make vm-run CMD='...'   run any host command inside the test VM
#   make repeat-dpa N=20    the DPA suite N times in a row, one VM each (flake hunt)
#   make bench              one VM: open/close, reset, preads, faults per GiB and fault latency
#                           (PUD, PMD, PTE), scrub cost, side by side with disable_cxl=1 (table + JSON)
#   make randops            the long random-operation fuzzer (100000 ops per device and IOMMU
#                           mode, 4 threads) in one VM; RANDOPS_ARGS='--seed N --threads 1' replays
#   make arm64              cross-build the kernel and the driver for arm64 (build only)
#   make lifecycle          the long lifecycle loops (1000 open/close, 100 binds, 100 loads,
#                           500 mixed resets) in one VM
#   make test-sanitize      every VM suite of make test on the sanitizer kernel (KASAN, kmemleak,
#                           UBSAN); KERNEL_FLAVOR=sanitize runs any target on it (make lifecycle);
#                           TEST_SUITES='vm-lifecycle vm-nested-*' runs only those VM suites
SHELL := /bin/bash
# cargo-installed tools (bindgen) and the rustup toolchain, whatever PATH the caller has.
export PATH := $(HOME)/.cargo/bin:$(PATH)
.PHONY: all setup kernel arm64 tools qemu demo demo-guest test test-sanitize vm-run repeat-dpa lifecycle randops bench check fmt clean-kernel

all: kernel tools

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/kbuild.sh

# ARCH=arm64 LLVM=1 from the same source tree (configs/arm64.config), cached; nothing boots it.
arm64: kernel
	@scripts/arm64-build.sh

# The project's QEMU (Debian's 10.0 source + qemu/patches, with the cxl-accel device), cached.
# The test VM runs it (Debian 12's QEMU 7.2 only as the fallback: see scripts/vm-run.sh).
qemu:
	@scripts/qemu-build.sh

tools: setup
	cargo build --release --workspace --quiet

demo:
	@scripts/demo.sh

demo-guest:
	@scripts/demo-guest.sh

# CMD is run by bash in the guest, unexpanded by make (so $$CXL_BDF stays for the guest).
vm-run: kernel tools
	@scripts/vm-run.sh $(VM_ARGS) -- bash -c '$(subst ','\'',$(value CMD))'

test:
	@scripts/run-tests.sh

# The sanitizer kernel (configs/cxl-vfio-sanitize.config, built in its own directory): every VM
# suite once; a KASAN, UBSAN, lockdep or RCU report, or a kmemleak suspect from our code, fails.
test-sanitize:
	@KERNEL_FLAVOR=sanitize scripts/run-tests.sh --vm-only

# The flake hunt: the whole DPA suite N times in a row, one VM boot each (about 2 min a run).
N ?= 20
repeat-dpa: kernel tools
	@scripts/repeat-vm-suite.sh $(N) -- target/release/cxlvfio-dpa

# The long runs keep the VM's console and guest kernel log (VM_LOG_PREFIX, default a new
# directory under /tmp that vm-run names when the run fails).
lifecycle: kernel tools qemu
	@VM_LOG_PREFIX=$${VM_LOG_PREFIX:-$$(mktemp -d /tmp/cxlvfio-lifecycle.XXXXXX)/vm} \
		VM_TIMEOUT=$${VM_TIMEOUT:-5400} scripts/vm-run.sh -- tests/vm/lifecycle.sh --long

randops: kernel tools qemu
	@VM_LOG_PREFIX=$${VM_LOG_PREFIX:-$$(mktemp -d /tmp/cxlvfio-randops.XXXXXX)/vm} \
		VM_TIMEOUT=$${VM_TIMEOUT:-28800} scripts/vm-run.sh -- tests/vm/randops.sh --long -- $(RANDOPS_ARGS)

bench: kernel tools qemu
	@scripts/bench.sh

check: kernel
	@scripts/check.sh

fmt:
	cargo fmt --all
	. scripts/env.sh && /usr/bin/rustfmt --edition 2021 --config-path "$$KSRC/.rustfmt.toml" \
		$$(git ls-files --cached --others --exclude-standard "rust/*.rs" "drivers/*.rs")

clean-kernel:
	. scripts/env.sh && rm -rf "$$KTREE_ROOT"
