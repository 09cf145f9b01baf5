#!/usr/bin/env bash
# Run a host command inside the CXL test VM (QEMU q35 + TCG, booted by virtme-ng),
# with the host filesystem visible at the same paths (/tmp writable).
#
#   scripts/vm-run.sh [--setup none|fw|bind] [--disable-cxl] [--modargs ARGS] [--] CMD...
#
# VM_QEMU_FLAVOR picks the QEMU and the CXL topology:
#   project (default): the project's QEMU 10.0 with the cxl-accel device (scripts/qemu-build.sh
#     --print-path; when it is not built, vm-run says so and falls back to debian):
#       host bridge 1: pxb-cxl bus_nr=12 + cxl-rp + cxl-type3, volatile-memdev of
#         VM_CXL_MEM_SIZE (8086:0d93, the device at 0d:00.0 as with debian);
#       host bridge 2: pxb-cxl bus_nr=20 + cxl-rp + cxl-accel (1b36:00ca, at 15:00.0),
#         volatile-memdev of VM_ACCEL_MEM_SIZE (default 256M, 512M with 2 or 4 decoders),
#         hdm-decoders=VM_ACCEL_DECODERS (1, 2 or 4; default 1),
#         comp-block=VM_ACCEL_COMP_BLOCK (start, middle or end; default middle);
#       cxl-fmw.0 (4 GiB) -> host bridge 1, cxl-fmw.1 (4 GiB) -> host bridge 2.
#     Both host bridges have one root port and are pass-through (no HDM decoders), unless
#     VM_CXL_HB_DECODERS=1: the type-3's host bridge then has HDM decoders
#     (hdm_for_passthrough), which firmware emulation commits, as on hosts whose kernel CXL
#     core assembles a region from the firmware's decoders.
#   debian: Debian 12's QEMU 7.2 (qemu-system-x86_64 on PATH), the fallback: one pxb-cxl host
#     bridge (bus_nr=12) + cxl-rp + cxl-type3 (memdev + lsa, VM_CXL_MEM_SIZE), one 4 GiB
#     CXL fixed memory window; the host bridge has an HDM decoder.
#   VM_QEMU=PATH overrides the binary of either flavour (not the topology).
# VM_CXL_STACK=1 (default with the project flavour; 0 to leave it out): before the bind, the
#   guest loads the kernel's CXL stack (cxl_acpi, cxl_port, cxl_mem, cxl_pci), as a host does
#   at boot, and cxl_pci takes the type-3; the bind then moves it (unbind, driver_override).
#   QEMU 7.2's type-3 fails cxl_pci's probe, so the debian flavour does not load it.
# VM_IOMMU picks how VFIO reaches the devices, as on a host:
#   intel (default): QEMU's intel-iommu with interrupt remapping (the first device, so that
#     every PCI device is behind it), intel_iommu=on: each CXL device in its own IOMMU group,
#     opened through the VFIO type1 container or iommufd and the device cdev;
#   none: no IOMMU; VFIO's no-IOMMU mode (the variant without isolation).
# The VM also has a pci-testdev (1b36:0005): a device without CXL, for plain vfio-pci.
# Before CMD runs, the guest (see scripts/guest-setup.sh), for every CXL.mem device:
#   fw:   programs and commits the CXL host-bridge (unless it is pass-through) and
#         endpoint HDM decoder 0 from the ACPI CEDT, as platform firmware would
#         (userspace/cxl-fwemu);
#   bind: fw, then (with VM_IOMMU=none) enables VFIO no-IOMMU mode, loads cxl-vfio-pci with
#         modprobe and binds every CXL.mem device through driver_override (the default).
# CMD sees CXL_BDF (the first CXL.mem device that is not the accelerator: the type-3),
# with the project flavour ACCEL_BDF (the cxl-accel device), and CXLVFIO_MODARGS (the module
# arguments, for a command that reloads the driver) in its environment, and CXLVFIO_IOMMU
# (how the test programs open a device: type1, or noiommu with VM_IOMMU=none) and
# CXLVFIO_IOMMU_MODES (every way this VM offers: "type1 iommufd", or "noiommu"), which
# tests/vm/each-device.sh runs through. The exit
# status is CMD's (or, for a command that powers the VM off after reporting through the
# kernel log, the status in its "VMRESULT-EXIT: N" record; see below).
# VM_DMESG=FILE / VM_CONSOLE=FILE keep the guest's kernel log / the console;
# VM_LOG_PREFIX=P keeps both as P.console and P.dmesg (always, and says where when the VM
# or the command failed); the guest kernel log is streamed out of the guest as it is
# written, so it survives a VM that dies;
# VM_MEM_OUT=FILE keeps the CXL device's memory backend file (its DPA 0 is file offset 0);
# VM_ACCEL_MEM_OUT=FILE the same for the accelerator (project flavour).
# VM_CXL_MEM_SIZE=SIZE sets the CXL device's memory (QEMU size syntax, default 256M; firmware
# emulation aligns its base to its size, up to 1 GiB).
# KERNEL_FLAVOR=sanitize boots the sanitizer kernel (scripts/kbuild.sh builds it in its own
# directory; configs/cxl-vfio-sanitize.config): after the command the guest has kmemleak scan
# memory, and the host judges the boot (cxlvfio sanitizer-check): any report in the guest's
# kernel log (KASAN, UBSAN, lockdep, RCU, a warning) or a kmemleak suspect allocated through
# our code adds a failed KTAP result and fails the run; suspects from elsewhere are counted.
# Its logs are always kept (VM_LOG_PREFIX, else a new /tmp/cxlvm-sanitize.XXXXXX/vm), with the
# kmemleak report as P.kmemleak. The default VM_TIMEOUT is 2700 s on it (3 times the default
# kernel's). It runs with debug_pagealloc=on (freed pages unmapped from the direct map: a use
# after free through a page is a fault; measured: a boot and a suite took 156 s against 148 s
# without it), VM_DEBUG_PAGEALLOC=0 to leave it off, and with watchdog_thresh=30 (a soft lockup
# is reported after 60 s, not 20 s, as the hang timeout is 3 times the default kernel's).
set -euo pipefail
. "$(dirname "$0")/env.sh"

setup=bind
modargs=""
while [ $# -gt 0 ]; do
	case "$1" in
	--setup) setup=$2; shift 2 ;;
	--disable-cxl) modargs="$modargs disable_cxl=1"; shift ;;
	--modargs) modargs="$modargs $2"; shift 2 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--setup none|fw|bind] [--disable-cxl] [--modargs ARGS] [--] CMD..." >&2; exit 2; }
[ -f "$KBUILD/arch/x86/boot/bzImage" ] || { echo "vm-run: no kernel in $KBUILD: run 'make kernel'" >&2; exit 2; }
[ -x "$REPO/target/release/cxl-fwemu" ] || { echo "vm-run: build the host tools first ('make tools')" >&2; exit 2; }
sanitize=0 kernel_append=""
if [ "$KERNEL_FLAVOR" = sanitize ]; then
	sanitize=1
	[ -x "$REPO/target/release/cxlvfio" ] || { echo "vm-run: build the host tools first ('make tools')" >&2; exit 2; }
	VM_TIMEOUT=${VM_TIMEOUT:-2700}
	[ -n "${VM_LOG_PREFIX:-}" ] || VM_LOG_PREFIX=$(mktemp -d /tmp/cxlvm-sanitize.XXXXXX)/vm
	[ "${VM_DEBUG_PAGEALLOC:-1}" = 0 ] || kernel_append=" debug_pagealloc=on"
	# The soft-lockup detector scaled like the hang timeout (3 times): this kernel is slower,
	# and with PREEMPT_NONE a CPU interpreting AML (QEMU 7.2's _PRT at pcieport probe, 26 s
	# under TCG with KASAN on a loaded host) keeps the other CPU's clocksource-switch
	# stop_machine waiting; 60 s instead of 20 s still catches a real lockup.
	kernel_append="$kernel_append watchdog_thresh=30"
fi

flavor=${VM_QEMU_FLAVOR:-project}
case "$flavor" in
debian) qemu_default=$(command -v qemu-system-x86_64) ;;
project)
	if ! qemu_default=$("$REPO/scripts/qemu-build.sh" --print-path 2>/dev/null); then
		echo "vm-run: the project's QEMU is not built (scripts/qemu-build.sh, make qemu):" \
			"falling back to Debian's QEMU 7.2 and its one-device topology (no accelerator)" >&2
		flavor=debian qemu_default=$(command -v qemu-system-x86_64)
	fi
	;;
*) echo "vm-run: VM_QEMU_FLAVOR must be debian or project, not '$flavor'" >&2; exit 2 ;;
esac
iommu=${VM_IOMMU:-intel}
case "$iommu" in
intel)
	iommu_opts="-device intel-iommu,intremap=on"
	iommu_append="intel_iommu=on"
	;;
none) iommu_opts="" iommu_append="" ;;
*) echo "vm-run: VM_IOMMU must be intel or none, not '$iommu'" >&2; exit 2 ;;
esac
cxl_stack=${VM_CXL_STACK:-1}
[ "$flavor" = project ] || cxl_stack=0
accel_decoders=${VM_ACCEL_DECODERS:-1}
accel_comp_block=${VM_ACCEL_COMP_BLOCK:-middle}
case "$accel_decoders" in 1) accel_default_size=256M ;; 2 | 4) accel_default_size=512M ;;
*) echo "vm-run: VM_ACCEL_DECODERS must be 1, 2 or 4, not '$accel_decoders'" >&2; exit 2 ;;
esac
case "$accel_comp_block" in start | middle | end) ;;
*) echo "vm-run: VM_ACCEL_COMP_BLOCK must be start, middle or end, not '$accel_comp_block'" >&2; exit 2 ;;
esac
accel_mem_size=${VM_ACCEL_MEM_SIZE:-$accel_default_size}

run_dir=$(mktemp -d /tmp/cxlvm.XXXXXX)
# Killed from outside (a caller's timeout, ^C): the logs so far are kept all the same.
save_partial_logs() {
	[ -n "${VM_LOG_PREFIX:-}" ] && [ ! -f "$run_dir/logs-saved" ] || return 0
	cp "$run_dir/console" "$VM_LOG_PREFIX.console" 2>/dev/null
	cp "$run_dir/kmsg" "$VM_LOG_PREFIX.dmesg" 2>/dev/null
	echo "vm-run: stopped from outside; partial logs: $VM_LOG_PREFIX.console, $VM_LOG_PREFIX.dmesg" >&2
}
# QEMU still running (vm-run stopped from outside) is stopped too.
stop_qemu() {
	[ -f "$run_dir/qemu-exit" ] || kill "$(cat "$run_dir/qemu.pid" 2>/dev/null)" 2>/dev/null || true
}
trap 'save_partial_logs; stop_qemu; rm -rf "$run_dir"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# Sparse backing files for the devices' memory (and the type-3's label storage area on 7.2).
cxl_mem_size=${VM_CXL_MEM_SIZE:-256M}
truncate -s "$cxl_mem_size" "$run_dir/cxl-mem.raw"
printf '%q ' "$@" >"$run_dir/cmd"

# -nodefaults: no default CD-ROM. SeaBIOS 1.16.2 waits about 33 s for the empty drive on
# QEMU 10.0's AHCI under TCG ("Timeout at ahci_command") before it boots the kernel.
if [ "$flavor" = debian ]; then
	truncate -s 256M "$run_dir/cxl-lsa.raw"
	qemu_opts="-nodefaults -M q35,cxl=on \
-object memory-backend-file,id=cxl-mem1,share=on,mem-path=$run_dir/cxl-mem.raw,size=$cxl_mem_size \
-object memory-backend-file,id=cxl-lsa1,share=on,mem-path=$run_dir/cxl-lsa.raw,size=256M \
-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1 \
-device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2 \
-device cxl-type3,bus=root_port13,memdev=cxl-mem1,lsa=cxl-lsa1,id=cxl-pmem0 \
-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G \
-device pci-testdev,bus=pcie.0"
else
	truncate -s "$accel_mem_size" "$run_dir/accel-mem.raw"
	hb_decoders=
	[ "${VM_CXL_HB_DECODERS:-0}" = 1 ] && hb_decoders=,hdm_for_passthrough=true
	qemu_opts="-nodefaults -M q35,cxl=on \
-object memory-backend-file,id=cxl-mem1,share=on,mem-path=$run_dir/cxl-mem.raw,size=$cxl_mem_size \
-object memory-backend-file,id=accel-mem1,share=on,mem-path=$run_dir/accel-mem.raw,size=$accel_mem_size \
-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1$hb_decoders \
-device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2 \
-device cxl-type3,bus=root_port13,volatile-memdev=cxl-mem1,id=cxl-vmem0 \
-device pxb-cxl,bus_nr=20,bus=pcie.0,id=cxl.2 \
-device cxl-rp,port=0,bus=cxl.2,id=root_port21,chassis=0,slot=3 \
-device cxl-accel,bus=root_port21,volatile-memdev=accel-mem1,hdm-decoders=$accel_decoders,comp-block=$accel_comp_block,id=cxl-accel0 \
-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G,cxl-fmw.1.targets.0=cxl.2,cxl-fmw.1.size=4G \
-device pci-testdev,bus=pcie.0"
fi

# QEMU runs through a wrapper that records how it ended: virtme-ng reports any VM that ends
# without the command's status as 255, whether the guest panicked or QEMU died.
qemu_bin=${VM_QEMU:-$qemu_default}
# The IOMMU goes first: QEMU gives a PCI device the IOMMU's address space only when the IOMMU
# was created before it (virtme-ng adds its own devices before --qemu-opts).
# Both vCPUs run in one TCG thread (round-robin TCG; VM_TCG_THREADS=multi for a thread per
# vCPU). With a thread per vCPU, about one boot in ten on QEMU 10.0 ended with an idle vCPU
# that its timer never woke (RCU: "timer wakeup didn't happen ... Possible timer handling
# issue on cpu=1", the CPU in default_idle), and the guest hung. The suites run as fast either
# way here (the DPA scrub step: 97.5 s both).
tcg_opts=
[ "${VM_TCG_THREADS:-single}" = single ] && tcg_opts="-accel tcg,thread=single"
# A monitor socket, for the hang report (see below).
cat >"$run_dir/qemu-system-x86_64" <<EOF
#!/bin/bash
"$qemu_bin" $tcg_opts $iommu_opts -monitor unix:$run_dir/monitor.sock,server=on,wait=off "\$@" &
echo \$! >"$run_dir/qemu.pid"
wait \$!
rc=\$?
echo "\$rc" >"$run_dir/qemu-exit"
exit "\$rc"
EOF
chmod +x "$run_dir/qemu-system-x86_64"

# virtme-ng passes no root= for a 9p root; 6.12 needs the mount tag spelt out. Every kernel
# message goes to the console (loglevel=7): a VM that dies before the guest streams its log
# still leaves it there (measured: no slower than loglevel=4 under TCG).
# KVM does not boot guests on these machines: TCG is the default (VM_ACCEL=kvm to try).
accel=(--disable-kvm)
[ "${VM_ACCEL:-tcg}" = kvm ] && accel=()

# A VM that gives no result within VM_TIMEOUT seconds (default 900) is hung: vm-run injects
# an NMI through QEMU's monitor, on which the guest panics (unknown_nmi_panic) and prints
# every task's state and stack to the console (panic_print=1), keeps the vCPUs' registers
# (P.registers with VM_LOG_PREFIX=P) and then stops QEMU. Nothing else sends the guest NMIs.
hang_report() {
	echo "vm-run: no result after ${VM_TIMEOUT:-900} s: NMI through the monitor; the guest panics and prints every task" >>"$run_dir/console"
	python3 - "$run_dir/monitor.sock" >"$run_dir/registers" 2>&1 <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
def cmd(c):
    s.sendall(c.encode() + b"\n")
    out = b""
    end = time.time() + 10
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
        if out.endswith(b"(qemu) "):
            break
    return out.decode(errors="replace")
cmd("")
print(cmd("info cpus"))
print(cmd("info registers -a"))
print(cmd("nmi"))
PY
	# Serial output under TCG: the task dump takes a while.
	sleep "${VM_HANG_DUMP_WAIT:-30}"
	kill "$(cat "$run_dir/qemu.pid" 2>/dev/null)" 2>/dev/null
}
set +e
vng --run "$KBUILD" "${accel[@]}" --disable-microvm \
	--qemu "$run_dir/qemu-system-x86_64" \
	--cpus 2 --memory 2G --rwdir /tmp --verbose \
	--append "root=/dev/root $iommu_append unknown_nmi_panic panic_print=1 ${VM_APPEND:-loglevel=7}$kernel_append" \
	--qemu-opts="$qemu_opts" \
	--exec "bash $REPO/scripts/guest-setup.sh $setup '$modargs' $run_dir $iommu $cxl_stack $sanitize" \
	</dev/null >"$run_dir/console" 2>&1 &
vng_pid=$!
deadline=$((SECONDS + ${VM_TIMEOUT:-900}))
while kill -0 "$vng_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
	sleep 1
done
if kill -0 "$vng_pid" 2>/dev/null; then
	hang_report
	sleep 10
	kill "$vng_pid" 2>/dev/null
fi
wait "$vng_pid"
vng_rc=$?
set -e
# The guest kernel log: the one saved after the command, else what the guest streamed.
[ -s "$run_dir/dmesg" ] || cp "$run_dir/kmsg" "$run_dir/dmesg" 2>/dev/null || true
[ -n "${VM_DMESG:-}" ] && cp "$run_dir/dmesg" "$VM_DMESG" 2>/dev/null
[ -n "${VM_CONSOLE:-}" ] && cp "$run_dir/console" "$VM_CONSOLE"
if [ -n "${VM_LOG_PREFIX:-}" ]; then
	cp "$run_dir/console" "$VM_LOG_PREFIX.console"
	cp "$run_dir/dmesg" "$VM_LOG_PREFIX.dmesg" 2>/dev/null || : >"$VM_LOG_PREFIX.dmesg"
	[ ! -s "$run_dir/registers" ] || cp "$run_dir/registers" "$VM_LOG_PREFIX.registers"
	[ ! -f "$run_dir/kmemleak" ] || cp "$run_dir/kmemleak" "$VM_LOG_PREFIX.kmemleak"
	touch "$run_dir/logs-saved"
fi
[ -n "${VM_MEM_OUT:-}" ] && mv "$run_dir/cxl-mem.raw" "$VM_MEM_OUT"
[ -n "${VM_ACCEL_MEM_OUT:-}" ] && [ -f "$run_dir/accel-mem.raw" ] && mv "$run_dir/accel-mem.raw" "$VM_ACCEL_MEM_OUT"
where() {
	if [ -n "${VM_LOG_PREFIX:-}" ]; then
		echo "vm-run: console: $VM_LOG_PREFIX.console; guest kernel log: $VM_LOG_PREFIX.dmesg" >&2
	fi
}
# The sanitizer kernel's verdict on the boot (KTAP, after the command's): REPORT is the
# kmemleak report, or - when the command left the guest no way to give one; the kernel log is
# the first non-empty LOG (the guest's stream of /dev/kmsg has the whole boot even when the
# ring buffer wrapped).
sanitizer_check() { # sanitizer_check REPORT LOG...
	local log=/dev/null f
	for f in "${@:2}"; do [ -s "$f" ] && { log=$f; break; }; done
	echo "# sanitizer kernel: logs $VM_LOG_PREFIX.{console,dmesg}$([ "$1" = - ] || echo ", kmemleak report $VM_LOG_PREFIX.kmemleak")"
	"$REPO/target/release/cxlvfio" sanitizer-check "$1" "$log"
}
if [ -f "$run_dir/rc" ]; then
	cat "$run_dir/out"
	rc=$(cat "$run_dir/rc")
	if [ "$sanitize" = 1 ] && ! sanitizer_check "$run_dir/kmemleak" "$run_dir/kmsg" "$run_dir/dmesg"; then
		[ "$rc" != 0 ] || rc=1
	fi
	[ "$rc" = 0 ] || where
	exit "$rc"
fi
# A command that cannot use the guest's file systems to the end (a system sleep breaks the 9p
# root) reports through the kernel log instead: "VMRESULT: <line>" records, then
# "VMRESULT-EXIT: <status>", then it powers the VM off. The console has them.
vm_result=$(grep -a -o 'VMRESULT-EXIT: [0-9]*' "$run_dir/console" | tail -n 1 | sed 's/.* //')
if [ -n "$vm_result" ]; then
	grep -a 'VMRESULT: ' "$run_dir/console" | sed 's/.*VMRESULT: //'
	# The 9p root did not survive: the console is the kernel log (every message, loglevel=7).
	if [ "$sanitize" = 1 ] && ! sanitizer_check - "$run_dir/console"; then
		[ "$vm_result" != 0 ] || vm_result=1
	fi
	[ "$vm_result" = 0 ] || where
	exit "$vm_result"
fi
qemu_rc=$(cat "$run_dir/qemu-exit" 2>/dev/null || echo unknown)
case "$qemu_rc" in
unknown) how="QEMU's exit status is unknown" ;;
0) how="QEMU exited normally: the guest powered off or reset (a panic or a triple fault)" ;;
*) how="QEMU exited with status $qemu_rc$([ "$qemu_rc" -gt 128 ] 2>/dev/null && echo " (signal $((qemu_rc - 128)))")" ;;
esac
echo "vm-run: $how" >>"$run_dir/console"
[ -n "${VM_LOG_PREFIX:-}" ] && cp "$run_dir/console" "$VM_LOG_PREFIX.console"
# What the command printed before the VM died (its KTAP results so far).
[ ! -s "$run_dir/out" ] || cat "$run_dir/out"
# A sanitizer report may be what killed it.
[ "$sanitize" = 0 ] || sanitizer_check - "$run_dir/kmsg" "$run_dir/console" || true
echo "vm-run: the VM did not run the command (vng exit $vng_rc; $how); last lines of the console:" >&2
tail -n 60 "$run_dir/console" >&2
echo "vm-run: last lines of the guest kernel log:" >&2
tail -n 30 "$run_dir/dmesg" >&2 2>/dev/null
where
exit 125
