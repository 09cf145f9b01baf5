set -eu
DEV=${DEV:-$ACCEL_BDF}; MODE=${MODE:-type1}
Q=/root/.cache/cxl-vfio-pci/qemu/1_10.0.13pds-0pdeb13u1-6c3485be0b4a/build/qemu-system-x86_64
BZ=$(ls /root/.cache/cxl-vfio-pci/linux-*/build/arch/x86/boot/bzImage | head -n 1)
case $MODE in
type1) VF="-device vfio-pci,host=$DEV,bus=rp0,id=ep0" ;;
iommufd) VF="-object iommufd,id=iommufd0 -device vfio-pci,host=$DEV,iommufd=iommufd0,bus=rp0,id=ep0" ;;
esac
rm -f /dev/shm/l2.serial
timeout 1200 $Q -L /usr/share/seabios -L /usr/share/qemu \
  -M q35,cxl=on -accel tcg -m 512M -smp 1 -nodefaults -nographic -monitor none \
  -serial file:/dev/shm/l2.serial -net none -no-reboot \
  -kernel $BZ -initrd /tmp/l2/initramfs.gz -append "console=ttyS0 panic=-1 kunit.enable=0" \
  -device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1 \
  -device cxl-rp,port=0,bus=cxl.1,id=rp0,chassis=0,slot=2 \
  $VF -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G -trace 'vfio_cxl_*'
sed -n '/=== L2 START/,/=== L2 DONE/p' /dev/shm/l2.serial
