#!/usr/bin/env python3
import sys
sys.path.insert(0, __import__('os').path.dirname(__file__))
from qt import VM
args = ['-M', 'q35,cxl=on',
        '-device', 'pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1',
        '-device', 'cxl-rp,port=0,bus=cxl.1,id=rp0,chassis=0,slot=2',
        '-device', 'vfio-pci,sysfsdev=/tmp/vfio-cxl-mock/dev0,bus=rp0,id=acc0',
        '-M', 'cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G']
vm = VM(args, env={'MOCK_LOG': '0'})
if vm.q:
    print(vm.hmp('info mtree -f').count('vfio-cxl'))
    print([l for l in vm.hmp('info mtree').splitlines() if 'cxl' in l])
print(vm.quit())
