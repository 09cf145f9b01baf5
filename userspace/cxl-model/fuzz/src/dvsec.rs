//! The CXL Device DVSEC shadow (`dvsec::DvsecShadow`): set-up from a device's config space,
//! then guest reads and writes of 1, 2 or 4 bytes anywhere around it.
//!
//! Input: the device ([`Device`]: where the DVSEC is, its header and its registers), then a
//! sequence of accesses and resets ([`Op`]). A reference written from the v2 seed (patch 15)
//! and CXL r3.1 8.1.3, applied byte by byte, says what every byte must read after every
//! access and what each write must forward to the hardware or hand back; on top of it the
//! invariants: IO_Enable always reads 1, reserved bits read 0, Viral_Status only goes from 1 to
//! 0 (RW1C), CONFIG_LOCK once set stays set and freezes Control, the Range Base registers
//! start at 0 (no host address reaches the guest), read-only bytes never change, only the two
//! forwarded actions ever reach the hardware, and every config read is aligned and inside
//! config space.

use arbitrary::{Arbitrary, Unstructured};
use cxl_model::fuzz_api::{DvsecError, DvsecShadow, DvsecWrite, HwWrite, PassThrough};

use crate::{ops, Cfg, Enc, CFG_SIZE};

/// PCI vendor id of the CXL consortium.
const CXL_VENDOR: u16 = 0x1e98;

// Register offsets in the DVSEC (CXL r3.1 8.1.3).
const CONTROL: usize = 0xc;
const STATUS: usize = 0xe;
const CONTROL2: usize = 0x10;
const STATUS2: usize = 0x12;
const LOCK: usize = 0x14;
const CAP2: usize = 0x16;
const RANGE1_BASE_HIGH: usize = 0x20;
const RANGE1_BASE_LOW: usize = 0x24;
const RANGE2_BASE_HIGH: usize = 0x30;
const RANGE2_BASE_LOW: usize = 0x34;
const CAP3: usize = 0x38;

// Register bits.
const CTRL_IO_ENABLE: u16 = 1 << 1;
const CTRL_P2P_MEM_ENABLE: u16 = 1 << 12;
const CTRL_RESERVED: u16 = (1 << 13) | (1 << 15);
const STATUS_VIRAL: u16 = 1 << 14;
const CTRL2_CACHE_WBI: u16 = 1 << 1;
const CTRL2_CXL_RESET: u16 = 1 << 2;
const CTRL2_VOLATILE_HDM: u16 = 1 << 4;
const CTRL2_MOD_COMPLETION: u16 = 1 << 5;
const CTRL2_RESERVED: u16 = 0xffc0;
const STATUS2_VOLATILE_HDM_ERROR: u16 = 1 << 3;
const CAP2_MOD_COMPLETION: u16 = 1 << 6;
const CAP3_VOLATILE_HDM: u16 = 1 << 3;
const CAP3_P2P_MEM: u16 = 1 << 4;

/// Access sizes an op's `len` selects: mostly valid ones, and 3 and 0.
const LENS: [usize; 8] = [1, 2, 4, 4, 2, 1, 3, 0];

/// The device.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Config-space position of the DVSEC.
    pub base: u16,
    /// DVSEC Vendor ID.
    pub vendor: u16,
    /// DVSEC ID.
    pub id: u16,
    /// DVSEC Length (12 bits used).
    pub length: u16,
    /// DVSEC Revision (4 bits used).
    pub revision: u8,
    /// DVSEC CXL Capability.
    pub cap: u16,
    /// The bytes from +0xc (Control) to +0x40: Status, Control2, Status2, Lock, Capability2,
    /// the ranges, Capability3.
    pub regs: [u8; 0x34],
    /// Every other config byte.
    pub fill: u8,
}

/// One guest action.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A read of `LENS[len % 8]` bytes at `base + rel`.
    Read {
        /// Position relative to the DVSEC.
        rel: i8,
        /// Size selector.
        len: u8,
    },
    /// A write of `LENS[len % 8]` bytes of `value` at `base + rel`.
    Write {
        /// Position relative to the DVSEC.
        rel: i8,
        /// Size selector.
        len: u8,
        /// Value.
        value: u32,
    },
    /// An access of `len` bytes at absolute position `pos`.
    Far {
        /// Config-space position.
        pos: u16,
        /// Size in bytes.
        len: u8,
        /// Value.
        value: u32,
        /// Whether it is a write.
        write: bool,
    },
    /// A reset: the shadow is built from the device again.
    Reset,
}

impl Device {
    /// The device's config space.
    pub fn cfg(&self) -> Cfg {
        let mut cfg = Cfg::new(self.fill);
        let base = usize::from(self.base);
        let header1 = u32::from(self.vendor)
            | u32::from(self.revision & 0xf) << 16
            | u32::from(self.length & 0xfff) << 20;
        cfg.set(base, 4, 0x0001_0023);
        cfg.set(base + 4, 4, header1);
        cfg.set(base + 8, 4, u32::from(self.id) | u32::from(self.cap) << 16);
        for (i, &b) in self.regs.iter().enumerate() {
            cfg.set(base + CONTROL + i, 1, b.into());
        }
        cfg
    }

    /// The bytes that decode to `self`.
    pub fn encode(&self, e: &mut Enc) {
        e.u16(self.base)
            .u16(self.vendor)
            .u16(self.id)
            .u16(self.length)
            .u8(self.revision)
            .u16(self.cap);
        for &b in &self.regs {
            e.u8(b);
        }
        e.u8(self.fill);
    }

    /// Sets the 16-bit register at DVSEC offset `off` (at least 0xc) in `regs`.
    fn set16(&mut self, off: usize, v: u16) {
        self.regs[off - CONTROL..off - CONTROL + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets the 32-bit register at DVSEC offset `off` (at least 0xc) in `regs`.
    fn set32(&mut self, off: usize, v: u32) {
        self.regs[off - CONTROL..off - CONTROL + 4].copy_from_slice(&v.to_le_bytes());
    }
}

impl Op {
    /// The bytes that decode to `self`.
    pub fn encode(&self, e: &mut Enc) {
        match *self {
            Op::Read { rel, len } => {
                e.variant(0, 4).i8(rel).u8(len);
            }
            Op::Write { rel, len, value } => {
                e.variant(1, 4).i8(rel).u8(len).u32(value);
            }
            Op::Far {
                pos,
                len,
                value,
                write,
            } => {
                e.variant(2, 4).u16(pos).u8(len).u32(value).bool(write);
            }
            Op::Reset => {
                e.variant(3, 4);
            }
        }
    }
}

/// Decodes an input.
pub fn decode(data: &[u8]) -> Option<(Device, Vec<Op>)> {
    let mut u = Unstructured::new(data);
    let device = Device::arbitrary(&mut u).ok()?;
    Some((device, ops(&mut u)))
}

/// Encodes an input.
pub fn encode(device: &Device, ops: &[Op]) -> Vec<u8> {
    let mut e = Enc::new();
    device.encode(&mut e);
    for op in ops {
        op.encode(&mut e);
    }
    e.finish()
}

/// What a write must do, as the reference sees it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Effects {
    cache_wbi: Option<HwWrite>,
    clear_volatile_hdm_error: Option<HwWrite>,
    cxl_reset_requested: bool,
    outside: Option<PassThrough>,
}

impl Effects {
    fn of(w: &DvsecWrite) -> Self {
        Self {
            cache_wbi: w.cache_wbi(),
            clear_volatile_hdm_error: w.clear_volatile_hdm_error(),
            cxl_reset_requested: w.cxl_reset_requested(),
            outside: w.outside(),
        }
    }
}

/// The reference model of the shadow.
#[derive(Clone, Debug)]
struct Reference {
    base: usize,
    length: usize,
    cap2: u16,
    cap3: u16,
    control: u16,
    status: u16,
    control2: u16,
    lock: u16,
    range1_base_high: u32,
    range1_base_low: u32,
    range2_base_high: u32,
    range2_base_low: u32,
}

/// Replaces byte `k` of `reg` with `v`.
fn set_byte<T: Into<u32> + TryFrom<u32>>(reg: T, k: usize, v: u8) -> T {
    let r: u32 = reg.into();
    let r = (r & !(0xff << (8 * k))) | (u32::from(v) << (8 * k));
    T::try_from(r).unwrap_or_else(|_| unreachable!())
}

impl Reference {
    /// The shadow right after set-up, or `Err` with every error set-up may report.
    fn new(hw: &Cfg, base: u16) -> Result<Self, Vec<DvsecError>> {
        if !crate::regloc::base_valid(base) {
            return Err(vec![DvsecError::BadPosition(base)]);
        }
        let b = usize::from(base);
        let get = |off: usize, size: usize| {
            (0..size).fold(0u32, |v, i| {
                v | u32::from(hw.bytes.get(b + off + i).copied().unwrap_or(0xff)) << (8 * i)
            })
        };
        let (h1, h2) = (get(4, 4), get(8, 4));
        let (vendor, id, length) = (h1 as u16, h2 as u16, (h1 >> 20) as usize);
        if vendor != CXL_VENDOR || id != 0 {
            return Err(vec![DvsecError::NotCxlDevice { vendor, id }]);
        }
        let mut faults = Vec::new();
        if length < 0x38 {
            faults.push(DvsecError::TooShort(length as u16));
        }
        if b + length > CFG_SIZE {
            faults.push(DvsecError::BadPosition(base));
        }
        if !faults.is_empty() {
            return Err(faults);
        }
        let cap3 = if length >= CAP3 + 2 {
            get(CAP3, 2) as u16
        } else {
            0
        };
        let mut r = Self {
            base: b,
            length,
            cap2: get(CAP2, 2) as u16,
            cap3,
            control: 0,
            status: get(STATUS, 2) as u16,
            control2: 0,
            lock: get(LOCK, 2) as u16 & 1,
            range1_base_high: 0,
            range1_base_low: 0,
            range2_base_high: 0,
            range2_base_low: 0,
        };
        r.control = r.control_value(get(CONTROL, 2) as u16);
        r.control2 = r.control2_value(get(CONTROL2, 2) as u16);
        Ok(r)
    }

    fn locked(&self) -> bool {
        self.lock & 1 != 0
    }

    /// Control bits that always read 0.
    fn control_zero(&self) -> u16 {
        let mut zero = CTRL_RESERVED;
        if self.cap3 & CAP3_P2P_MEM == 0 {
            zero |= CTRL_P2P_MEM_ENABLE;
        }
        zero
    }

    fn control_value(&self, v: u16) -> u16 {
        (v & !self.control_zero()) | CTRL_IO_ENABLE
    }

    /// Control2 bits that always read 0.
    fn control2_zero(&self) -> u16 {
        let mut zero = CTRL2_RESERVED | CTRL2_CACHE_WBI | CTRL2_CXL_RESET;
        if self.cap3 & CAP3_VOLATILE_HDM == 0 {
            zero |= CTRL2_VOLATILE_HDM;
        }
        if self.cap2 & CAP2_MOD_COMPLETION == 0 {
            zero |= CTRL2_MOD_COMPLETION;
        }
        zero
    }

    fn control2_value(&self, v: u16) -> u16 {
        v & !self.control2_zero()
    }

    /// The byte the guest reads at DVSEC offset `rel`, when the shadow holds it.
    fn shadowed(&self, rel: usize) -> Option<u8> {
        let (reg, k) = match rel {
            0xc..=0xd => (u32::from(self.control), rel - CONTROL),
            0xe..=0xf => (u32::from(self.status), rel - STATUS),
            0x10..=0x11 => (u32::from(self.control2), rel - CONTROL2),
            0x14..=0x15 => (u32::from(self.lock), rel - LOCK),
            0x20..=0x23 => (self.range1_base_high, rel - RANGE1_BASE_HIGH),
            0x24..=0x27 => (self.range1_base_low, rel - RANGE1_BASE_LOW),
            0x30..=0x33 => (self.range2_base_high, rel - RANGE2_BASE_HIGH),
            0x34..=0x37 => (self.range2_base_low, rel - RANGE2_BASE_LOW),
            _ => return None,
        };
        Some((reg >> (8 * k)) as u8)
    }

    /// The DVSEC offset of config byte `pos`, if the DVSEC holds it.
    fn rel(&self, pos: usize) -> Option<usize> {
        pos.checked_sub(self.base).filter(|&r| r < self.length)
    }

    /// The byte the guest reads at config position `pos`.
    fn byte(&self, hw: &Cfg, pos: usize) -> u8 {
        self.rel(pos)
            .and_then(|rel| self.shadowed(rel))
            .unwrap_or_else(|| hw.byte(pos))
    }

    /// A guest write of byte `v` at DVSEC offset `rel`.
    fn write_byte(&mut self, rel: usize, v: u8, fx: &mut Effects) {
        match rel {
            0xc..=0xd if !self.locked() => {
                self.control = self.control_value(set_byte(self.control, rel - CONTROL, v));
            }
            0xe..=0xf => {
                let written = u16::from(v) << (8 * (rel - STATUS));
                self.status &= !(written & STATUS_VIRAL);
            }
            0x10..=0x11 => {
                let written = u16::from(v) << (8 * (rel - CONTROL2));
                if written & CTRL2_CACHE_WBI != 0 {
                    fx.cache_wbi = Some(HwWrite {
                        pos: (self.base + CONTROL2) as u16,
                        value: CTRL2_CACHE_WBI,
                    });
                }
                if written & CTRL2_CXL_RESET != 0 {
                    fx.cxl_reset_requested = true;
                }
                self.control2 = self.control2_value(set_byte(self.control2, rel - CONTROL2, v));
            }
            // Status2: Volatile HDM Preservation Error is RW1CS on the device, when configurable.
            0x12 if u16::from(v) & STATUS2_VOLATILE_HDM_ERROR != 0
                && self.cap3 & CAP3_VOLATILE_HDM != 0 =>
            {
                fx.clear_volatile_hdm_error = Some(HwWrite {
                    pos: (self.base + STATUS2) as u16,
                    value: STATUS2_VOLATILE_HDM_ERROR,
                });
            }
            0x14..=0x15 if !self.locked() => {
                self.lock = set_byte(self.lock, rel - LOCK, v) & 1;
            }
            0x20..=0x23 => {
                self.range1_base_high = set_byte(self.range1_base_high, rel - 0x20, v);
            }
            0x24..=0x27 => {
                self.range1_base_low = set_byte(self.range1_base_low, rel - 0x24, v) & 0xf000_0000;
            }
            0x30..=0x33 => {
                self.range2_base_high = set_byte(self.range2_base_high, rel - 0x30, v);
            }
            0x34..=0x37 => {
                self.range2_base_low = set_byte(self.range2_base_low, rel - 0x34, v) & 0xf000_0000;
            }
            _ => {}
        }
    }

    /// A guest write of the low `len` bytes of `value` at `pos` (a valid access).
    fn write(&mut self, pos: usize, len: usize, value: u32) -> Effects {
        let mut fx = Effects::default();
        for i in 0..len {
            let v = (value >> (8 * i)) as u8;
            match self.rel(pos + i) {
                Some(rel) => self.write_byte(rel, v, &mut fx),
                None => {
                    let o = fx.outside.get_or_insert(PassThrough {
                        pos: (pos + i) as u16,
                        len: 0,
                        value: 0,
                    });
                    o.value |= u32::from(v) << (8 * o.len);
                    o.len += 1;
                }
            }
        }
        fx
    }
}

/// Every error an access of `len` bytes at `pos` may be refused with; empty when valid.
fn access_faults(pos: u16, len: usize) -> Vec<DvsecError> {
    let mut faults = Vec::new();
    if !matches!(len, 1 | 2 | 4) {
        faults.push(DvsecError::BadSize(len));
    }
    if usize::from(pos) + len > CFG_SIZE {
        faults.push(DvsecError::OutOfRange(pos));
    }
    faults
}

/// Compares every byte the guest sees around the DVSEC with the reference.
fn check_view(shadow: &DvsecShadow, r: &Reference, hw: &mut Cfg) {
    let from = r.base.saturating_sub(4);
    let to = (r.base + r.length.min(0x40) + 4).min(CFG_SIZE);
    for pos in from..to {
        let got = shadow.read(pos as u16, 1, &mut |p, s| hw.read(p, s));
        assert_eq!(
            got,
            Ok(u32::from(r.byte(hw, pos))),
            "byte at +{:#x}",
            pos as isize - r.base as isize
        );
    }
}

/// The invariants between two states.
fn check_step(before: &Reference, after: &Reference, shadow: &DvsecShadow) {
    assert_ne!(after.control & CTRL_IO_ENABLE, 0, "IO_Enable cleared");
    assert_eq!(
        after.control & after.control_zero(),
        0,
        "Control forced-zero bits"
    );
    assert_eq!(
        after.control2 & after.control2_zero(),
        0,
        "Control2 forced-zero bits"
    );
    assert_eq!(after.lock & !1, 0, "Lock reserved bits");
    assert_eq!(after.range1_base_low & 0x0fff_ffff, 0);
    assert_eq!(after.range2_base_low & 0x0fff_ffff, 0);
    // Viral_Status is RW1C; Status has no other writable bit.
    assert_eq!(after.status & !STATUS_VIRAL, before.status & !STATUS_VIRAL);
    assert!(after.status & STATUS_VIRAL <= before.status & STATUS_VIRAL);
    // CONFIG_LOCK: stays, and freezes Control.
    if before.locked() {
        assert!(after.locked(), "CONFIG_LOCK cleared");
        assert_eq!(
            after.control, before.control,
            "Control changed under CONFIG_LOCK"
        );
    }
    assert_eq!(shadow.config_locked(), after.locked());
}

/// Checks one write's effects.
fn check_effects(got: &Effects, r: &Reference) {
    for w in [got.cache_wbi, got.clear_volatile_hdm_error]
        .into_iter()
        .flatten()
    {
        let wbi = w.pos as usize == r.base + CONTROL2 && w.value == CTRL2_CACHE_WBI;
        let status2 = w.pos as usize == r.base + STATUS2
            && w.value == STATUS2_VOLATILE_HDM_ERROR
            && r.cap3 & CAP3_VOLATILE_HDM != 0;
        assert!(wbi || status2, "hardware write {w:?}");
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some((device, ops)) = decode(data) else {
        return;
    };
    let mut hw = device.cfg();
    let hw_bytes = hw.bytes.clone();
    let new = |hw: &mut Cfg| DvsecShadow::new(device.base, &mut |p, s| hw.read(p, s));
    let (mut shadow, mut r) = match (new(&mut hw), Reference::new(&hw, device.base)) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(g), Err(w)) => {
            assert!(w.contains(&g), "set-up: {g:?}, want one of {w:?}");
            return;
        }
        (g, w) => panic!("set-up: {g:?}, reference {w:?}"),
    };
    assert_eq!(usize::from(shadow.base()), r.base);
    assert_eq!(usize::from(shadow.length()), r.length);
    assert_eq!(shadow.capability(), device.cap);
    assert_eq!(shadow.cache_capable(), device.cap & 1 != 0);
    assert_eq!(shadow.mem_capable(), device.cap & 4 != 0);
    for base in [
        r.range1_base_high,
        r.range1_base_low,
        r.range2_base_high,
        r.range2_base_low,
    ] {
        assert_eq!(base, 0);
    }
    check_view(&shadow, &r, &mut hw);

    for op in ops {
        let (pos, len, write, value) = match op {
            Op::Read { rel, len } => {
                let pos = (i32::from(device.base) + i32::from(rel)) as u16;
                (pos, LENS[usize::from(len % 8)], false, 0)
            }
            Op::Write { rel, len, value } => {
                let pos = (i32::from(device.base) + i32::from(rel)) as u16;
                (pos, LENS[usize::from(len % 8)], true, value)
            }
            Op::Far {
                pos,
                len,
                value,
                write,
            } => (pos, usize::from(len), write, value),
            Op::Reset => {
                shadow = new(&mut hw).expect("the device did not change");
                r = Reference::new(&hw, device.base).expect("the device did not change");
                check_view(&shadow, &r, &mut hw);
                continue;
            }
        };
        let faults = access_faults(pos, len);
        let end = u32::from(pos) + len as u32;
        let overlaps = len != 0 && (pos as usize) < r.base + r.length && r.base < end as usize;
        assert_eq!(
            shadow.overlaps(pos, len),
            overlaps,
            "overlaps({pos:#x}, {len})"
        );
        if !write {
            let got = shadow.read(pos, len, &mut |p, s| hw.read(p, s));
            if faults.is_empty() {
                let want = (0..len).fold(0u32, |v, i| {
                    v | u32::from(r.byte(&hw, usize::from(pos) + i)) << (8 * i)
                });
                assert_eq!(got, Ok(want), "read of {len} at {pos:#x}");
            } else {
                let e = got.expect_err("bad read taken");
                assert!(faults.contains(&e), "read: {e:?}, want one of {faults:?}");
            }
            continue;
        }
        let before = r.clone();
        let got = shadow.write(pos, len, value);
        if !faults.is_empty() {
            let e = got.expect_err("bad write taken");
            assert!(faults.contains(&e), "write: {e:?}, want one of {faults:?}");
            check_view(&shadow, &r, &mut hw);
            continue;
        }
        let got = Effects::of(&got.expect("write"));
        let want = r.write(usize::from(pos), len, value);
        assert_eq!(got, want, "write of {len} bytes {value:#x} at {pos:#x}");
        check_effects(&got, &r);
        check_step(&before, &r, &shadow);
        check_view(&shadow, &r, &mut hw);
        assert!(hw.bytes == hw_bytes, "the model wrote the hardware");
    }
}

/// QEMU's cxl-type3 Device DVSEC at 0x100: CXL 2.0 (length 0x38), Capability 0x001e,
/// IO_Enable, a 256 MiB range 1 the firmware placed at 0x2_9000_0000.
fn qemu_type3() -> Device {
    let mut d = Device {
        base: 0x100,
        vendor: CXL_VENDOR,
        id: 0,
        length: 0x38,
        revision: 1,
        cap: 0x001e,
        regs: [0; 0x34],
        fill: 0,
    };
    d.set16(CONTROL, 0x2);
    d.set32(0x18, 0); // Range 1 Size High
    d.set32(0x1c, 0x1000_0000 | 0x3); // Size Low: Memory_Info_Valid, Memory_Active
    d.set32(RANGE1_BASE_HIGH, 0x2);
    d.set32(RANGE1_BASE_LOW, 0x9000_0000);
    d
}

/// The project's cxl-accel (CXL r3.1 DVSEC, length 0x3c): Cache, IO, Mem capable, HwInit,
/// two ranges, Status2 CXL Reset Complete, Capability2 with a 1 MiB cache, and `cap3`.
fn cxl_accel(cap3: u16) -> Device {
    let mut d = Device {
        base: 0x100,
        vendor: CXL_VENDOR,
        id: 0,
        length: 0x3c,
        revision: 3,
        cap: 0x1 | 0x2 | 0x4 | 0x8 | (2 << 4),
        regs: [0; 0x34],
        fill: 0,
    };
    d.set16(CONTROL, 0x2);
    d.set16(STATUS2, 0x2);
    d.set16(CAP2, 0x1 | (16 << 8));
    d.set32(0x1c, 0x0800_0000 << 1 | 0x3);
    d.set32(0x2c, 0x0800_0000 << 1 | 0x3);
    d.set16(CAP3, cap3);
    d
}

/// The seed corpus.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let wr = |rel: isize, len: u8, value: u32| Op::Write {
        rel: rel as i8,
        len,
        value,
    };
    let rd = |rel: isize, len: u8| Op::Read {
        rel: rel as i8,
        len,
    };
    // LENS indices: 0 -> 1 byte, 1 -> 2 bytes, 2 -> 4 bytes, 6 -> 3 bytes.
    let linux_probe = [
        rd(CONTROL as isize, 1),
        wr(CONTROL as isize, 1, 0x0006), // Mem_Enable
        rd(CONTROL as isize, 1),
        wr(RANGE1_BASE_HIGH as isize, 2, 0x1),
        wr(RANGE1_BASE_LOW as isize, 2, 0x1234_5678),
        rd(RANGE1_BASE_LOW as isize, 2),
        wr(CONTROL2 as isize, 1, 0x2), // Cache WBI
        wr(LOCK as isize, 1, 0x1),     // CONFIG_LOCK
        wr(CONTROL as isize, 1, 0xffff),
        wr(LOCK as isize, 1, 0),
        rd(CONTROL as isize, 2),
    ];
    let rw1c = [
        wr(STATUS as isize, 1, u32::from(STATUS_VIRAL)),
        wr(STATUS2 as isize, 1, u32::from(STATUS2_VOLATILE_HDM_ERROR)),
        wr(CONTROL2 as isize, 1, 0xffff), // every action and reserved bit
        wr(CONTROL as isize, 2, 0xffff_ffff),
        Op::Reset,
        rd(STATUS as isize, 1),
    ];
    // Accesses straddling the DVSEC's edges and registers, and bad ones.
    let edges = [
        rd(-2, 2),
        wr(-2, 2, 0xffff_ffff), // rel -2: two bytes before, two of the header
        wr(0x3a, 2, 0xffff_ffff), // the last bytes and past the DVSEC
        wr(0x0b, 2, 0xffff_ffff), // Capability high byte, Control low byte
        wr(0x13, 1, 0xffff_ffff), // Status2 high byte, Lock low byte
        wr(0x22, 2, 0xffff_ffff), // Range 1 Base High and Low
        wr(0x10, 6, 0xffff_ffff), // a 3-byte access
        Op::Far {
            pos: 0xffe,
            len: 4,
            value: 0,
            write: true,
        },
        Op::Far {
            pos: 0x100,
            len: 8,
            value: 0,
            write: false,
        },
        rd(0x3a, 2),
    ];
    let mut locked = qemu_type3();
    locked.set16(LOCK, 0x1);
    locked.set16(STATUS, STATUS_VIRAL | 0x1);
    let mut last = cxl_accel(0x1f);
    last.base = 0xfc4; // ends at the end of config space
    vec![
        (
            "qemu-type3-linux-probe",
            encode(&qemu_type3(), &linux_probe),
        ),
        ("qemu-type3-firmware-locked", encode(&locked, &rw1c)),
        ("cxl-accel-rw1c", encode(&cxl_accel(0), &rw1c)),
        ("cxl-accel-cap3-all-edges", encode(&cxl_accel(0x1f), &edges)),
        ("cxl-accel-end-of-config-space", encode(&last, &edges)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_as_built() {
        for (name, bytes) in seeds() {
            let (device, ops) = decode(&bytes).unwrap();
            assert_eq!(encode(&device, &ops), bytes, "{name}");
            assert!(!ops.is_empty(), "{name}");
            let mut hw = device.cfg();
            assert!(
                DvsecShadow::new(device.base, &mut |p, s| hw.read(p, s)).is_ok(),
                "{name}"
            );
        }
    }
}
