#!/bin/bash
# The host-only checks of the QEMU series (0004-0009) against the LD_PRELOAD
# mock of the driver's UAPI: builds the mock, runs test.py with the QEMU given
# (default: the project's build), prints its output, exits nonzero on a failure.
# usage: qemu/tests/mock/run.sh [QEMU] [TEST...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
QEMU=${1:-$("$here/../../../scripts/qemu-build.sh" --print-path)}
shift || true
build=$(mktemp -d /tmp/vfio-cxl-mock-build.XXXXXX)
trap 'rm -rf "$build"' EXIT
# The UAPI headers of the QEMU tree (the host's may predate iommufd).
headers=$(cd "$(dirname "$QEMU")/../src/linux-headers" && pwd)
gcc -O2 -I"$headers" -Wall -Werror -shared -fPIC -o "$build/vfio-cxl-mock.so" "$here/vfio-cxl-mock.c" -ldl
# The fake sysfs devices test.py names: DIR/devN/iommu_group -> .../groups/(100 + N).
rm -rf /tmp/vfio-cxl-mock
for n in 0 1; do
	mkdir -p "/tmp/vfio-cxl-mock/dev$n"
	ln -s "/tmp/vfio-cxl-mock/groups/10$n" "/tmp/vfio-cxl-mock/dev$n/iommu_group"
done
QEMU=$QEMU VFIO_CXL_MOCK=$build/vfio-cxl-mock.so python3 "$here/test.py" "$@"
