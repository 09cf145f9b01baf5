#!/usr/bin/env bash
# Install every host dependency of the build, the VM and the tests.
# Idempotent: each step is skipped when what it installs is already there.
# Prints one progress line per step. Runs before anything else, on a machine that
# may have none of the packages: nothing here may assume one of them is present
# (tests/setup/fresh-machine.sh checks that, in `make test`).
set -euo pipefail
. "$(dirname "$0")/env.sh"

APT_PACKAGES=(linux-source-6.12 rustc-web rust-web-src rust-web-clippy rustfmt-web
	clang lld llvm libclang-dev bc flex bison libelf-dev libssl-dev cpio
	kmod xz-utils make patch gcc libc6-dev rsync qemu-system-x86 ndctl
	busybox-static pciutils pci.ids python3 file binutils)
missing=()
for p in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: [1/3] apt-get install ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	echo "setup: [1/3] Debian packages present"
fi

if ! bindgen --version 2>/dev/null | grep -q '0\.69\.5'; then
	echo "setup: [2/3] cargo install bindgen-cli 0.69.5"
	cargo install --locked bindgen-cli --version 0.69.5 -q
else
	echo "setup: [2/3] bindgen-cli 0.69.5 present"
fi

if ! command -v vng >/dev/null 2>&1; then
	echo "setup: [3/3] pip install virtme-ng"
	# Whichever python3 is first on PATH (pyenv's or Debian's); Debian's needs python3-pip.
	if ! python3 -m pip --version >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
	fi
	python3 -m pip install -q --root-user-action=ignore virtme-ng==1.42 2>/dev/null ||
		python3 -m pip install -q --root-user-action=ignore --break-system-packages virtme-ng==1.42
else
	echo "setup: [3/3] virtme-ng present"
fi
command -v vng >/dev/null 2>&1 || { echo "setup: vng is not on PATH after installing virtme-ng" >&2; exit 1; }
bindgen --version 2>/dev/null | grep -q '0\.69\.5' || { echo "setup: bindgen 0.69.5 is not on PATH after installing it" >&2; exit 1; }
echo "setup: host dependencies present"
