#!/usr/bin/env python3
"""Drive QEMU through qtest and QMP (host-only checks, no guest runs)."""
import json, os, socket, subprocess, sys, time

# The QEMU under test and the mock built from vfio-cxl-mock.c (run.sh sets both).
QEMU = os.environ['QEMU']
MOCK = os.environ['VFIO_CXL_MOCK']


class VM:
    def __init__(self, args, env=None, tag='vm'):
        self.dir = '/tmp/vfio-cxl-mock'
        self.qsock = f'{self.dir}/{tag}.qtest'
        self.msock = f'{self.dir}/{tag}.qmp'
        for p in (self.qsock, self.msock):
            if os.path.exists(p):
                os.unlink(p)
        ls = socket.socket(socket.AF_UNIX)
        ls.bind(self.qsock)
        ls.listen(1)
        e = dict(os.environ)
        e['LD_PRELOAD'] = MOCK
        e.update(env or {})
        self.log = open(f'{self.dir}/{tag}.log', 'w+')
        cmd = [QEMU, '-qtest', f'unix:{self.qsock}', '-accel', 'qtest',
               '-qmp', f'unix:{self.msock},server=on,wait=off',
               '-display', 'none', '-nodefaults', '-m', '512M',
               '-L', '/usr/share/seabios', '-L', '/usr/share/qemu'] + args
        self.p = subprocess.Popen(cmd, env=e, stdout=self.log,
                                  stderr=subprocess.STDOUT)
        ls.settimeout(20)
        try:
            self.q, _ = ls.accept()
        except socket.timeout:
            self.q = None
        ls.close()
        self.qf = self.q.makefile('rw') if self.q else None
        if self.q:
            for _ in range(100):
                if os.path.exists(self.msock):
                    break
                time.sleep(0.1)
            self.m = socket.socket(socket.AF_UNIX)
            self.m.connect(self.msock)
            self.mf = self.m.makefile('rw')
            self.mf.readline()
            self.qmp('qmp_capabilities')

    def qt(self, line):
        self.qf.write(line + '\n')
        self.qf.flush()
        while True:
            r = self.qf.readline().strip()
            if not r.startswith('IRQ'):
                break
        if not r.startswith('OK'):
            raise RuntimeError(f'{line}: {r}')
        parts = r.split()
        return int(parts[1], 16) if len(parts) > 1 else None

    def qmp(self, cmd, **args):
        self.mf.write(json.dumps({'execute': cmd, 'arguments': args}) + '\n')
        self.mf.flush()
        while True:
            r = json.loads(self.mf.readline())
            if 'return' in r or 'error' in r:
                return r

    def hmp(self, line):
        return self.qmp('human-monitor-command',
                        **{'command-line': line}).get('return', '')

    def readl(self, a):
        return self.qt(f'readl 0x{a:x}')

    def writel(self, a, v):
        self.qt(f'writel 0x{a:x} 0x{v:x}')

    def cfg_addr(self, bus, dev, fn, off):
        return 0x80000000 | bus << 16 | dev << 11 | fn << 8 | (off & 0xfc)

    def cfgw(self, bus, dev, fn, off, v, size=4):
        self.qt(f'outl 0xcf8 0x{self.cfg_addr(bus, dev, fn, off):x}')
        if size == 4:
            self.qt(f'outl 0xcfc 0x{v:x}')
        elif size == 2:
            self.qt(f'outw 0x{0xcfc + (off & 2):x} 0x{v:x}')
        else:
            self.qt(f'outb 0x{0xcfc + (off & 3):x} 0x{v:x}')

    def cfgr(self, bus, dev, fn, off):
        self.qt(f'outl 0xcf8 0x{self.cfg_addr(bus, dev, fn, off):x}')
        return self.qt('inl 0xcfc')

    def quit(self):
        if self.q:
            try:
                self.qmp('quit')
            except Exception:
                pass
        try:
            self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.log.seek(0)
        return self.log.read()


def run_fail(args, env=None, tag='fail'):
    e = dict(os.environ)
    e['LD_PRELOAD'] = MOCK
    e.update(env or {})
    cmd = [QEMU, '-accel', 'qtest', '-display', 'none', '-nodefaults',
           '-m', '512M', '-S', '-L', '/usr/share/seabios',
           '-L', '/usr/share/qemu'] + args
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=30,
                       input='')
    return r.returncode, (r.stdout + r.stderr).strip()
