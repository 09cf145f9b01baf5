#!/usr/bin/env python3
"""Host-only checks of the vfio-pci CXL patches against the LD_PRELOAD mock."""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qt import VM, run_fail

D0 = '/tmp/vfio-cxl-mock/dev0'
D1 = '/tmp/vfio-cxl-mock/dev1'
WIN = 0x110000000              # first window base with -m 512M
MIB = 1 << 20
BAR = 0xc0000000               # where the test puts BAR 0 of a device
CM = 0x20000 + 0x1000          # CXL.mem registers in BAR 0 (mock)
HDM = 0x100                    # HDM capability in COMP_REGS (mock)
D0_BASE_LO, D0_BASE_HI, D0_SIZE_LO, D0_SIZE_HI, D0_CTRL = (
    HDM + 0x10, HDM + 0x14, HDM + 0x18, HDM + 0x1c, HDM + 0x20)
LOCK, COMMIT, COMMITTED = 1 << 8, 1 << 9, 1 << 10
HB_HDM = 0x100000000 + 0x1000 + 0x128   # CHBS cache_mem + HDM registers
fails = 0


def check(what, ok):
    global fails
    print(('ok   ' if ok else 'FAIL ') + what)
    fails += not ok


def topo(devs, pxb_opts='', fmw='cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G',
         extra=()):
    a = ['-M', 'q35,cxl=on',
         '-device', f'pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1{pxb_opts}']
    for i, (d, opts) in enumerate(devs):
        a += ['-device', f'cxl-rp,port={i},bus=cxl.1,id=rp{i},chassis=0,'
              f'slot={2 + i}',
              '-device', f'vfio-pci,sysfsdev={d},bus=rp{i},id=acc{i}{opts}']
    if fmw:
        a += ['-M', fmw]
    return a + list(extra)


def setup_bar(vm, rp=0, bar=BAR):
    """Firmware's job: bus numbers, the root port window, BAR 0."""
    sec = 13 + rp
    vm.cfgw(12, rp, 0, 0x18, 12 | sec << 8 | sec << 16)
    vm.cfgw(12, rp, 0, 0x20, (bar >> 16) | ((bar + 0xfffff) >> 16) << 16)
    vm.cfgw(12, rp, 0, 0x04, 0x6, 2)
    vm.cfgw(sec, 0, 0, 0x10, bar)
    vm.cfgw(sec, 0, 0, 0x14, 0)
    vm.cfgw(sec, 0, 0, 0x04, 0x6, 2)
    return bar + CM


def decoder(vm, cm):
    base = vm.readl(cm + D0_BASE_HI) << 32 | vm.readl(cm + D0_BASE_LO)
    size = vm.readl(cm + D0_SIZE_HI) << 32 | vm.readl(cm + D0_SIZE_LO)
    return base, size, vm.readl(cm + D0_CTRL)


def dpa_maps(vm):
    return [l.strip() for l in vm.hmp('info mtree').splitlines()
            if 'vfio-cxl-dpa' in l and 'address-space' not in l][:4]


def test_firmware_committed():
    print('== firmware-committed device: machine commits, guest moves it')
    vm = VM(topo([(D0, '')], extra=['-d', 'guest_errors']), tag='fw')
    cm = setup_bar(vm)
    base, size, ctrl = decoder(vm, cm)
    check(f'decoder 0 at boot: base 0x{base:x} size 0x{size:x} ctrl 0x{ctrl:x}',
          base == WIN and size == 256 * MIB and ctrl & COMMITTED and
          ctrl & LOCK)
    check('HDM decoder enable set', vm.readl(cm + HDM + 4) & 2)
    check('DPA mapped at the window base',
          any('0000000110000000-000000011fffffff' in l for l in dpa_maps(vm)))
    vm.writel(WIN, 0xcafef00d)
    check('store/load through the window', vm.readl(WIN) == 0xcafef00d)
    # guest: unlock, uncommit
    vm.writel(cm + D0_CTRL, ctrl & ~LOCK)
    vm.writel(cm + D0_CTRL, ctrl & ~(LOCK | COMMIT))
    check('uncommit unmaps', dpa_maps(vm) == [])
    # guest: move it to window + 512 MiB and commit
    vm.writel(cm + D0_BASE_LO, (WIN + 512 * MIB) & 0xffffffff)
    vm.writel(cm + D0_BASE_HI, (WIN + 512 * MIB) >> 32)
    vm.writel(cm + D0_CTRL, COMMIT)
    check('commit at a new base maps there: ' + str(dpa_maps(vm)),
          any('0000000130000000-000000013fffffff' in l for l in dpa_maps(vm)))
    check('same data at the new base',
          vm.readl(WIN + 512 * MIB) == 0xcafef00d)
    # a 64-bit access is split into two 32-bit ones
    q = vm.qt(f'readq 0x{cm + D0_BASE_LO:x}')
    check(f'readq of base = 0x{q:x}', q == WIN + 512 * MIB)
    # outside any window: unmapped
    vm.writel(cm + D0_CTRL, 0)
    vm.writel(cm + D0_BASE_HI, 0)
    vm.writel(cm + D0_BASE_LO, 0x10000000)
    vm.writel(cm + D0_CTRL, COMMIT)
    check('commit outside the windows maps nothing', dpa_maps(vm) == [])
    # interleaved: unmapped
    vm.writel(cm + D0_CTRL, 0)
    vm.writel(cm + D0_BASE_HI, WIN >> 32)
    vm.writel(cm + D0_BASE_LO, WIN & 0xffffffff)
    vm.writel(cm + D0_CTRL, COMMIT | 1 << 4)
    check('interleaved commit maps nothing', dpa_maps(vm) == [])
    vm.writel(cm + D0_CTRL, 0)
    # system reset: firmware state again
    vm.qmp('system_reset')
    cm = setup_bar(vm)
    base, size, ctrl = decoder(vm, cm)
    check(f'after system_reset: base 0x{base:x} ctrl 0x{ctrl:x}',
          base == WIN and ctrl & COMMITTED and ctrl & LOCK)
    check('after system_reset: mapped at the window base',
          any('0000000110000000-000000011fffffff' in l for l in dpa_maps(vm)))
    # device reset through a bus reset of the root port (guest SBR)
    vm.writel(cm + D0_CTRL, ctrl & ~LOCK)
    vm.writel(cm + D0_CTRL, 0)
    check('uncommitted before the bus reset', dpa_maps(vm) == [])
    bc = vm.cfgr(12, 0, 0, 0x3c) >> 16
    vm.cfgw(12, 0, 0, 0x3e, bc | 0x40, 2)
    vm.cfgw(12, 0, 0, 0x3e, bc & ~0x40, 2)
    cm = setup_bar(vm)
    base, size, ctrl = decoder(vm, cm)
    check(f'after a secondary bus reset: base 0x{base:x} ctrl 0x{ctrl:x}',
          base == WIN and ctrl & COMMITTED and dpa_maps(vm) != [])
    out = vm.quit()
    check('the data is in the device memory: ' +
          [l for l in out.splitlines() if 'DPA[0]' in l][0],
          'DPA[0] = 0xcafef00d' in out)
    check('guest errors logged for the bad commits',
          'is not inside a CXL fixed memory window' in out and
          'HDM decoder 0 interleaves' in out)
    check('type1: the DPA never mapped for DMA (patch 0009)',
          not any('MAP_DMA' in l and 'DPA' in l for l in out.splitlines()))
    return out


def test_host_bridge_decoders():
    print('== host bridge with HDM decoders (hdm_for_passthrough=on)')
    vm = VM(topo([(D0, '')], pxb_opts=',hdm_for_passthrough=on'), tag='hb')
    for when in ('boot', 'system_reset'):
        if when != 'boot':
            vm.qmp('system_reset')
        b = vm.readl(HB_HDM + 0x14) << 32 | vm.readl(HB_HDM + 0x10)
        s = vm.readl(HB_HDM + 0x1c) << 32 | vm.readl(HB_HDM + 0x18)
        c = vm.readl(HB_HDM + 0x20)
        t = vm.readl(HB_HDM + 0x24)
        check(f'{when}: HB decoder 0 base 0x{b:x} size 0x{s:x} ctrl 0x{c:x} '
              f'targets 0x{t:x}',
              b == WIN and s == 256 * MIB and c & COMMITTED and t & 0xff == 0)
    vm.quit()


def test_two_devices():
    print('== two firmware-committed devices below one host bridge')
    vm = VM(topo([(D0, ''), (D1, '')]), tag='two')
    cm0 = setup_bar(vm, 0, 0xc0000000)
    cm1 = setup_bar(vm, 1, 0xc0100000)
    b0 = decoder(vm, cm0)[0]
    b1 = decoder(vm, cm1)[0]
    check(f'placed one after the other: 0x{b0:x}, 0x{b1:x}',
          b0 == WIN and b1 == WIN + 256 * MIB)
    for i in range(2):
        b = vm.readl(HB_HDM + 0x20 * i + 0x10) | \
            vm.readl(HB_HDM + 0x20 * i + 0x14) << 32
        c = vm.readl(HB_HDM + 0x20 * i + 0x20)
        t = vm.readl(HB_HDM + 0x20 * i + 0x24) & 0xff
        check(f'HB decoder {i}: base 0x{b:x} ctrl 0x{c:x} port {t}',
              b == WIN + i * 256 * MIB and c & COMMITTED and t == i)
    vm.writel(WIN, 0x11111111)
    vm.writel(WIN + 256 * MIB, 0x22222222)
    out = vm.quit()
    check('each window range reaches its own device',
          'device 0: 1 resets, DPA[0] = 0x11111111' in out and
          'device 1: 1 resets, DPA[0] = 0x22222222' in out)


def test_not_firmware_committed():
    print('== device without FIRMWARE_COMMITTED: the guest commits')
    vm = VM(topo([(D0, '')]), env={'MOCK_FW': '0'}, tag='nofw')
    cm = setup_bar(vm)
    base, size, ctrl = decoder(vm, cm)
    check(f'boot: decoder 0 left as the host shows it (base 0x{base:x}), '
          'nothing mapped', base == 0 and dpa_maps(vm) == [])
    vm.writel(cm + D0_CTRL, 0)
    vm.writel(cm + D0_BASE_LO, (WIN + 3 * 256 * MIB) & 0xffffffff)
    vm.writel(cm + D0_BASE_HI, WIN >> 32)
    vm.writel(cm + D0_CTRL, COMMIT)
    check('guest commit maps: ' + str(dpa_maps(vm)),
          any('0000000140000000-000000014fffffff' in l for l in dpa_maps(vm)))
    vm.quit()


def test_errors():
    print('== errors')
    cases = [
        ('on a non-CXL bus', ['-M', 'q35,cxl=on', '-device',
                              f'vfio-pci,sysfsdev={D0},bus=pcie.0'], {},
         'must sit directly below a CXL root port'),
        ('below a non-CXL root port',
         ['-M', 'q35', '-device', 'pcie-root-port,id=rp0,bus=pcie.0',
          '-device', f'vfio-pci,sysfsdev={D0},bus=rp0'], {},
         'must sit directly below a CXL root port'),
        ('no window', topo([(D0, '')], fmw=None), {},
         'no CXL fixed memory window targets host bridge cxl.1'),
        ('window interleaving two host bridges',
         topo([(D0, '')], fmw='cxl-fmw.0.targets.0=cxl.1,'
              'cxl-fmw.0.targets.1=cxl.2,cxl-fmw.0.size=4G',
              extra=['-device', 'pxb-cxl,bus_nr=20,bus=pcie.0,id=cxl.2',
                     '-device', 'cxl-rp,port=0,bus=cxl.2,id=rpx,chassis=0,'
                     'slot=9']), {},
         'no CXL fixed memory window targets host bridge cxl.1'),
        ('window too small',
         topo([(D0, '')], fmw='cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=256M'),
         {'MOCK_DPA_MB': '512'}, 'too small for the 512 MiB'),
        ('no room for a second device',
         topo([(D0, ''), (D1, '')],
              fmw='cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=256M'), {},
         'no room left for the 256 MiB'),
        ('no DPA region', topo([(D0, '')]), {'MOCK_NO_DPA': '1'},
         'the CXL device has no DPA region'),
        ('x-cxl=on, not CXL', topo([(D0, ',x-cxl=on')]), {'MOCK_CXL': '0'},
         'x-cxl=on, but the host does not report a CXL device'),
    ]
    for what, args, env, want in cases:
        rc, out = run_fail(args, env)
        msg = [l for l in out.splitlines() if not l.startswith('mock:')]
        check(f'{what}: rc {rc}:\n    ' + '\n    '.join(msg),
              rc != 0 and want in out)
        if rc == 0 or want not in out:
            print(out)
    for what, args, env in [
            ('x-cxl=off on a non-CXL bus',
             ['-M', 'q35', '-device',
              f'vfio-pci,sysfsdev={D0},bus=pcie.0,x-cxl=off'], {}),
            ('not CXL on a non-CXL bus',
             ['-M', 'q35', '-device', f'vfio-pci,sysfsdev={D0},bus=pcie.0'],
             {'MOCK_CXL': '0'})]:
        vm = VM(args, env=env, tag='plain')
        ok = vm.q is not None and dpa_maps(vm) == []
        out = vm.quit()
        check(f'{what}: starts as a PCI device', ok and 'Error' not in out)
    vm = VM(topo([], extra=['-device', 'cxl-rp,port=0,bus=cxl.1,id=rp0,'
                            'chassis=0,slot=2']), tag='hotplug')
    r = vm.qmp('device_add', driver='vfio-pci', sysfsdev=D0, bus='rp0')
    vm.quit()
    msg = r.get('error', {}).get('desc', '')
    check(f'hot-plug refused: {msg}', 'cannot be hot-plugged' in msg)


def find_cap(vm, bus, dev, cap_id):
    p = vm.cfgr(bus, dev, 0, 0x34) & 0xff
    while p:
        h = vm.cfgr(bus, dev, 0, p)
        if h & 0xff == cap_id:
            return p
        p = (h >> 8) & 0xff
    return None


def test_unplug():
    print('== hot-unplug of a cold-plugged device (native PCIe hotplug)')
    vm = VM(topo([(D0, '')], extra=[
        '-global', 'ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off']),
        tag='unplug')
    setup_bar(vm)
    check('mapped before unplug', dpa_maps(vm) != [])
    r = vm.qmp('device_del', id='acc0')
    exp = find_cap(vm, 12, 0, 0x10)
    sltctl = vm.cfgr(12, 0, 0, exp + 0x18) & 0xffff
    # guest: power the slot off, indicators off
    vm.cfgw(12, 0, 0, exp + 0x18, (sltctl & ~0x3c0) | 0x400 | 0x300 | 0xc0, 2)
    import time
    for _ in range(50):
        if 'acc0' not in vm.hmp('info pci') and dpa_maps(vm) == []:
            break
        time.sleep(0.1)
    ok = dpa_maps(vm) == []
    out = vm.quit()
    check(f'device_del {r}: the DPA is unmapped and QEMU survives',
          ok and 'Assertion' not in out and 'mock: device 0' in out)
    print(out)


def test_iommufd():
    print('== iommufd backend (device cdev passed as fd=100)')
    a = ['-M', 'q35,cxl=on', '-object', 'iommufd,id=iommufd0',
         '-device', 'pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1',
         '-device', 'cxl-rp,port=0,bus=cxl.1,id=rp0,chassis=0,slot=2',
         '-device', 'vfio-pci,fd=100,iommufd=iommufd0,bus=rp0,id=acc0',
         '-M', 'cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G']
    vm = VM(a, env={'MOCK_CDEV_FD': '100'}, tag='iommufd')
    ok = vm.q is not None
    if ok:
        cm = setup_bar(vm)
        base, size, ctrl = decoder(vm, cm)
        check(f'decoder 0 at boot: base 0x{base:x} ctrl 0x{ctrl:x}',
              base == WIN and ctrl & COMMITTED)
        check('DPA mapped at the window base',
              any('0000000110000000-000000011fffffff' in l
                  for l in dpa_maps(vm)))
        vm.writel(WIN, 0x5a5a5a5a)
        check('store/load through the window', vm.readl(WIN) == 0x5a5a5a5a)
    out = vm.quit()
    check('iommufd: the DPA never mapped for DMA (patch 0009), no warning',
          ok and 'DPA of device 0' not in out and
          'warning: vfio_container_dma_map' not in out)
    print('\n'.join(l for l in out.splitlines() if not l.startswith('[')))


if __name__ == '__main__':
    only = sys.argv[1:]
    for t in [test_firmware_committed, test_host_bridge_decoders,
              test_two_devices, test_not_firmware_committed, test_errors,
              test_unplug, test_iommufd]:
        if not only or t.__name__ in only:
            t()
    print('FAILURES:', fails)
    sys.exit(1 if fails else 0)
