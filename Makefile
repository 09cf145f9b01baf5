# cxl-vfio-pci: build, try and test the driver.
#   make demo   build everything if needed, boot the CXL test VM, bind the device
#               and show it through VFIO
#   make test   run every test suite (host, VM smoke, in-kernel KUnit doctests)
#   make vm-run CMD='...'   run any host command inside the test VM
SHELL := /bin/bash
# cargo-installed tools (bindgen) and the rustup toolchain, whatever PATH the caller has.
export PATH := $(HOME)/.cargo/bin:$(PATH)
.PHONY: all setup kernel tools demo test vm-run check fmt clean-kernel

all: kernel tools

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/kbuild.sh

tools: setup
	cargo build --release --workspace --quiet

demo:
	@scripts/demo.sh

# CMD is run by bash in the guest, unexpanded by make (so $$CXL_BDF stays for the guest).
vm-run: kernel tools
	@scripts/vm-run.sh $(VM_ARGS) -- bash -c '$(subst ','\'',$(value CMD))'

test:
	@scripts/run-tests.sh

check: kernel
	@scripts/check.sh

fmt:
	cargo fmt --all
	. scripts/env.sh && /usr/bin/rustfmt --edition 2021 --config-path "$$KSRC/.rustfmt.toml" \
		$$(git ls-files --cached --others --exclude-standard "rust/*.rs" "drivers/*.rs")

clean-kernel:
	. scripts/env.sh && rm -rf "$$KTREE_ROOT"
