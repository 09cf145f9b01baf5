#!/usr/bin/env bash
# In the test VM (vm-run's default setup: firmware decoders committed, the CXL devices bound to
# cxl-vfio-pci, intel-iommu): a nested guest (L2) in the project's QEMU, with one CXL device
# assigned through vfio-pci below a pxb-cxl host bridge and a cxl-rp root port, checks the device
# as a tenant's kernel sees it (tests/vm/nested/init). Before it starts, the test VM writes a word
# into the device memory through the DPA region; after QEMU exits it reads the device memory
# again. Prints KTAP: the test VM's checks and the nested guest's, numbered together.
#   tests/vm/nested.sh --type cxl|accel --iommu type1|iommufd [--initramfs CPIO]
#                      [--log-dir DIR] [--demo]
# --initramfs: scripts/l2-initramfs.sh's output (default: built now, in /tmp).
# --log-dir: where the nested guest's whole console and QEMU's stderr are kept (default /tmp).
# --demo: also print the guest's lspci -vv of the device and its cxl list (make demo-guest).
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1
. scripts/env.sh

type= iommu= cpio= logdir=/tmp demo=0
while [ $# -gt 0 ]; do
	case $1 in
	--type) type=$2; shift ;;
	--iommu) iommu=$2; shift ;;
	--initramfs) cpio=$2; shift ;;
	--log-dir) logdir=$2; shift ;;
	--demo) demo=1 ;;
	*) echo "nested.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
case $type in
cxl) bdf=${CXL_BDF:-} l2_checks=13 ;;
accel) bdf=${ACCEL_BDF:-} l2_checks=12 ;;
*) echo "nested.sh: --type cxl or accel" >&2; exit 2 ;;
esac
case $iommu in type1 | iommufd) ;; *) echo "nested.sh: --iommu type1 or iommufd" >&2; exit 2 ;; esac

# The test VM's own checks, before and after the nested guest.
L1_CHECKS=5
PLAN=$((L1_CHECKS + l2_checks))
. tests/vm/lib.sh
echo "KTAP version 1"
echo "1..$PLAN"
[ -n "$bdf" ] || { echo "# no device of type $type in this VM"; exit 1; }
tag="nested-$type-$iommu"
# The nested QEMU writes its files in the test VM's own tmpfs: /tmp is the host's, over 9p,
# where a serial console written a character at a time slows the nested boot tenfold. They
# are copied to the log directory when QEMU exits.
serial=/dev/shm/$tag.console
qemu_log=/dev/shm/$tag.qemu.log
echo "# $tag: device $bdf, the nested guest's console: $logdir/$tag.console, QEMU's stderr: $logdir/$tag.qemu.log"
mark="$tag $$ $(date +%s%N)"
echo "$mark" >/dev/kmsg
export CXLVFIO_IOMMU=$iommu
cli=target/release/cxlvfio

# 1. A word written by the test VM before the guest starts: the guest reads it, or 0 when the
#    driver scrubs device memory at every open (the default; scrub_memory=0 keeps it).
preload_off=0x3000 preload_val=0x11aa22bb
# The module's arguments, as guest-setup loaded it (its parameters are not in sysfs).
case " ${CXLVFIO_MODARGS:-} " in
*" scrub_memory=0 "* | *" scrub_memory=n "* | *" scrub_memory=N "*) scrub=0 ;;
*) scrub=1 ;;
esac
case $scrub in 1) expect_pre=0 ;; *) expect_pre=$preload_val ;; esac
echo "# scrub_memory=$scrub: the guest must read $expect_pre at DPA $preload_off"
why=
out=$("$cli" dpa-write "$bdf" $preload_off $preload_val 2>&1) || why="dpa-write: $out"
result l1_wrote_device_memory "$why"

# 2. The nested guest.
if [ -z "$cpio" ]; then
	cpio=/tmp/$tag.cpio
	scripts/l2-initramfs.sh "$cpio" || echo "# could not build the initramfs"
fi
qemu=$(scripts/qemu-build.sh --print-path) || qemu=
# The nested guest's own small kernel (scripts/l2-kbuild.sh, built on the host before the VM).
bz=$(scripts/l2-kbuild.sh --print-path) || echo "# the nested guest's kernel is not built (scripts/l2-kbuild.sh)"
case $iommu in
type1) vfio="-device vfio-pci,host=$bdf,bus=rp0,id=ep0" ;;
iommufd) vfio="-object iommufd,id=iommufd0 -device vfio-pci,host=$bdf,iommufd=iommufd0,bus=rp0,id=ep0" ;;
esac
start=$SECONDS
# Copied out every 10 s as well, so that a test VM that dies leaves the console so far.
(while sleep 10; do cp "$serial" "$logdir/" 2>/dev/null; done) &
copier=$!
# shellcheck disable=SC2086 # $vfio is a list of arguments
# TCG inside TCG runs the guest some 20 times slower than the test VM: its watchdogs (soft
# lockup, RCU stall, hung task) would report the emulation's speed, not a fault, so they are
# off. RDRAND (-cpu max) spares it a minute of collecting entropy before init. The kernel is a
# small one without debug options: the test kernel takes about 25 min to run the guest here.
timeout 1800 "$qemu" -M q35,cxl=on -accel tcg -cpu max -m 256M -smp 1 -nodefaults -nographic \
	-monitor none -serial "file:$serial" -net none -no-reboot \
	-kernel "$bz" -initrd "$cpio" \
	-append "console=ttyS0 printk.time=1 panic=-1 random.trust_cpu=on nowatchdog nosoftlockup rcupdate.rcu_cpu_stall_suppress=1 sysctl.kernel.hung_task_timeout_secs=0 l2_type=$type l2_preload_off=$preload_off l2_preload_val=$expect_pre" \
	-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1,hdm_for_passthrough=true \
	-device cxl-rp,port=0,bus=cxl.1,id=rp0,chassis=0,slot=2 \
	$vfio -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G >"$qemu_log" 2>&1
rc=$?
elapsed=$((SECONDS - start))
kill "$copier" 2>/dev/null
wait "$copier" 2>/dev/null
cp "$serial" "$qemu_log" "$logdir/" 2>/dev/null
echo "# the nested guest ran $elapsed s (QEMU exit $rc)"
sed 's/^/# qemu: /' "$qemu_log"
# QEMU may say one thing: through iommufd, Linux 6.12 cannot map BAR mmaps for DMA (EFAULT),
# as for any assigned device. A DMA map of the device memory (the guest's decoder range) or
# any other error or warning fails the test.
why=
[ "$rc" = 0 ] || why="QEMU exited $rc"
read -r dpa_base dpa_size < <(sed -n 's/^L2: # decoder 0: base \(0x[0-9a-f]*\) size \(0x[0-9a-f]*\).*/\1 \2/p' \
	"$serial" 2>/dev/null | head -n 1)
while IFS= read -r line; do
	case $line in
	*"IOMMU_IOAS_MAP failed: Bad address, PCI BAR?" | *"PCI peer-to-peer transactions on BARs are not supported.") ;;
	*"vfio_container_dma_map("*") = -14 (Bad address)")
		iova=$(sed 's/.*vfio_container_dma_map([^,]*, \(0x[0-9a-f]*\),.*/\1/' <<<"$line")
		if [ -n "${dpa_base:-}" ] && [ $((iova)) -ge $((dpa_base)) ] && [ $((iova)) -lt $((dpa_base + dpa_size)) ]; then
			why="QEMU tried to map the device memory for DMA: $line"
		fi
		;;
	*[Ee]rror* | *[Ww]arning*) why="QEMU: $line" ;;
	esac
done <"$qemu_log"
result qemu_ran_the_guest_cleanly "$why"
why=
grep -q '^=== L2 DONE' "$serial" 2>/dev/null || why="the guest did not finish (see $logdir/$tag.console)"
result guest_finished "$why"

# The guest's checks, numbered after ours; one missing counts as failed.
l2=0
while IFS= read -r line; do
	line=${line%$'\r'}
	case $line in
	"L2: ok "*) l2=$((l2 + 1)); result "l2_${line#L2: ok }" "" ;;
	"L2: not ok "*)
		l2=$((l2 + 1))
		rest=${line#L2: not ok }
		result "l2_${rest%% # *}" "${rest#* # }"
		;;
	"L2: # "*) echo "# l2: ${line#L2: # }" ;;
	esac
done < <(sed -n '/^=== L2 START/,/^=== L2 DONE/p' "$serial" 2>/dev/null)
while [ "$l2" -lt "$l2_checks" ]; do
	l2=$((l2 + 1))
	result "l2_check_$l2" "missing: the guest stopped before it"
done
if [ "$failed" != 0 ]; then
	echo "# the nested guest's whole console ($logdir/$tag.console):"
	sed 's/^/#   /' "$serial"
fi

# 3. After QEMU: the guest's data is in the device memory, or scrubbed at this new open.
#    The first word (chunk 0) is read here; the word in chunk 1 is left for the outer host,
#    which finds it in its backend file after the test VM exits.
why=
if got=$("$cli" dpa-read "$bdf" 0x0 2>&1); then
	case $scrub in 1) want=0x00000000 ;; *) want=0x4c324f4b ;; esac
	[ "$got" = "$want" ] || why="read $got at DPA 0 in a new open, expected $want"
	echo "# backend-word offset=0x0 value=$want"
else
	why="dpa-read: $got"
fi
echo "# backend-word offset=0x200000 value=0x600dcafe"
result l1_reads_device_memory_after "$why"

why=$(dmesg | sed -n "/$mark/,\$p" | grep -E 'WARNING:|BUG:|Oops|Call Trace|cxl_vfio_pci.*(error|failed)' | head -n 5 | tr '\n' ';')
result l1_kernel_log_clean "$why"

if [ "$demo" = 1 ]; then
	echo "# --- the guest's view (its console: $logdir/$tag.console) ---"
	sed -n '/^=== DEMO START/,/^=== DEMO DONE/p' "$serial" | sed 's/^/# /'
fi
[ "$failed" = 0 ]
