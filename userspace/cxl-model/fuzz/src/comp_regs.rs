//! The COMP_REGS region: the emulated HDM decoder registers (`comp_regs::init_shadow`,
//! `write`, `read`, `check_access`, `firmware_decoder`).
//!
//! Input: a hardware snapshot of the CXL.mem area ([`Snapshot`]), then a sequence of guest
//! accesses and resets ([`Op`]). After every operation the shadow must equal a reference
//! model written from the v2 seed's rules (patch 11, with the model's documented fixes), and
//! invariants that hold for any rule set must hold: only the written dword changes, read-only
//! and reserved registers never change, a locked decoder's Base and Size never change,
//! reserved and capability-gated bits read 0 after a guest write, COMMITTED follows COMMIT,
//! the firmware's host physical address never reaches the guest.

use arbitrary::{Arbitrary, Unstructured};
use cxl_model::fuzz_api::{self as m, AccessError, HdmLayout};

use crate::caparray::ref_decoder_count;
use crate::layouts::*;
use crate::{ops, Enc};

/// Dwords of the CXL.mem area.
const CM_DWORDS: usize = 0x400;
/// Canary dwords after the region in the shadow: the model must never touch them.
const TAIL: usize = 8;
/// The canary value.
const CANARY: u32 = 0x5a5a_a5a5;

// Decoder Control bits (CXL r3.1 8.2.4.20.7).
const LOCK: u32 = 1 << 8;
const COMMIT: u32 = 1 << 9;
const COMMITTED: u32 = 1 << 10;
const COMMIT_ERROR: u32 = 1 << 11;
const HOSTONLY: u32 = 1 << 12;
const BI: u32 = 1 << 13;
const UIO: u32 = 1 << 14;
/// Reserved always (bit 15, bits 31:28) and for a device (bits 23:16).
const CTRL_RESERVED: u32 = (1 << 15) | 0xf000_0000 | 0x00ff_0000;
/// Reserved without UIO capability: UIO and bits 27:24.
const CTRL_UIO_BITS: u32 = UIO | 0x0f00_0000;
/// HDM Decoder Capability: Poison On Decode Error Capability, UIO Capable.
const CAP_POISON: u32 = 1 << 10;
const CAP_UIO: u32 = 1 << 13;

/// The CXL.mem area a device presents.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Capability array size: `1 + entries % 8`.
    pub entries: u8,
    /// Which entry is the HDM capability: `hdm_slot % size`.
    pub hdm_slot: u8,
    /// Pointers of the other entries (RAS, Link, ...), bits 11:2.
    pub others: [u16; 7],
    /// HDM capability pointer (12 bits; unaligned ones are the parser's to reject).
    pub hdm_offset: u16,
    /// HDM Decoder Capability register.
    pub cap: u32,
    /// HDM Decoder Global Control register.
    pub global_ctrl: u32,
    /// Decoder `n`'s registers are `decoders[n % 4]`, unless `n` is 0 and `firmware` says so.
    pub decoders: [[u32; 8]; 4],
    /// Every other dword of the area.
    pub fill: u32,
    /// DVSEC Capability.Cache_Capable.
    pub cache_capable: bool,
}

/// One guest action.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A dword write at region dword `dword % (region dwords + TAIL)`, straight to the model
    /// (also past the region's end, which the model must ignore).
    Write {
        /// Dword index.
        dword: u16,
        /// Value.
        value: u32,
    },
    /// A write of `len` bytes at `offset`, checked by `check_access` as the driver does.
    Access {
        /// Byte offset in the region.
        offset: u64,
        /// Length in bytes.
        len: u8,
        /// Value.
        value: u32,
    },
    /// A read of `len` bytes at `offset`, checked by `check_access`.
    Read {
        /// Byte offset in the region.
        offset: u64,
        /// Length in bytes.
        len: u8,
    },
    /// A reset: the shadow is seeded from the snapshot again.
    Reset,
}

impl Snapshot {
    /// The area.
    pub fn area(&self) -> Vec<u32> {
        let mut area = vec![self.fill; CM_DWORDS];
        let size = 1 + usize::from(self.entries % 8);
        let hdm_index = 1 + usize::from(self.hdm_slot) % size;
        area[0] = cap_header(size as u32);
        let ids = [2, 4, 3, 6, 7, 8, 9];
        for (i, entry) in area.iter_mut().enumerate().take(size + 1).skip(1) {
            *entry = if i == hdm_index {
                cap_entry(5, 1, usize::from(self.hdm_offset & 0xfff))
            } else {
                let j = (i - 1) % 7;
                cap_entry(ids[j], 2, usize::from(self.others[j] & 0xffc))
            };
        }
        let h = usize::from(self.hdm_offset & 0xfff) / 4;
        let count = ref_decoder_count(self.cap).unwrap_or(0);
        let mut put = |i: usize, v: u32| {
            if let Some(slot) = area.get_mut(i) {
                *slot = v;
            }
        };
        put(h, self.cap);
        put(h + 1, self.global_ctrl);
        for n in 0..count {
            for (r, &v) in self.decoders[n % 4].iter().enumerate() {
                put(h + 4 + 8 * n + r, v);
            }
        }
        area
    }

    /// The bytes that decode to `self`.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.entries).u8(self.hdm_slot);
        for p in self.others {
            e.u16(p);
        }
        e.u16(self.hdm_offset).u32(self.cap).u32(self.global_ctrl);
        for d in &self.decoders {
            for &r in d {
                e.u32(r);
            }
        }
        e.u32(self.fill).bool(self.cache_capable);
    }
}

impl Op {
    /// The bytes that decode to `self`.
    pub fn encode(&self, e: &mut Enc) {
        match *self {
            Op::Write { dword, value } => {
                e.variant(0, 4).u16(dword).u32(value);
            }
            Op::Access { offset, len, value } => {
                e.variant(1, 4).u64(offset).u8(len).u32(value);
            }
            Op::Read { offset, len } => {
                e.variant(2, 4).u64(offset).u8(len);
            }
            Op::Reset => {
                e.variant(3, 4);
            }
        }
    }
}

/// Decodes an input.
pub fn decode(data: &[u8]) -> Option<(Snapshot, Vec<Op>)> {
    let mut u = Unstructured::new(data);
    let snapshot = Snapshot::arbitrary(&mut u).ok()?;
    Some((snapshot, ops(&mut u)))
}

/// Encodes an input.
pub fn encode(snapshot: &Snapshot, ops: &[Op]) -> Vec<u8> {
    let mut e = Enc::new();
    snapshot.encode(&mut e);
    for op in ops {
        op.encode(&mut e);
    }
    e.finish()
}

/// The reference model of the region: the shadow as the rules say it must read.
struct Reference {
    /// Byte offset of the HDM block.
    hdm: usize,
    /// Decoder count.
    count: usize,
    /// HDM Decoder Capability.
    cap: u32,
    /// CXL.cache capable.
    cache: bool,
    /// Region dwords, then the canaries.
    regs: Vec<u32>,
}

impl Reference {
    /// The shadow right after open or reset: the snapshot, with the layout's capability
    /// register, every Base register 0 (the host physical address is the host's) and LOCK
    /// clear on every committed decoder (the VMM reprograms it).
    fn new(layout: &HdmLayout, snapshot: &[u32]) -> Self {
        let region = layout.region_dwords();
        let mut regs: Vec<u32> = (0..region)
            .map(|i| snapshot.get(i).copied().unwrap_or(0))
            .collect();
        regs.extend([CANARY; TAIL]);
        let mut r = Self {
            hdm: layout.hdm_offset(),
            count: layout.decoder_count(),
            cap: layout.cap(),
            cache: layout.cache_capable(),
            regs,
        };
        let cap = r.hdm / 4;
        r.regs[cap] = r.cap;
        for n in 0..r.count {
            let (lo, hi) = (r.dec(n, 0x0), r.dec(n, 0x4));
            r.regs[lo] = 0;
            r.regs[hi] = 0;
            let c = r.dec(n, 0x10);
            if r.regs[c] & COMMITTED != 0 {
                r.regs[c] &= !LOCK;
            }
        }
        r
    }

    /// Dword index of decoder `n`'s register at `reg`.
    fn dec(&self, n: usize, reg: usize) -> usize {
        (self.hdm + 0x10 + 0x20 * n + reg) / 4
    }

    /// Decoder Control bits a guest write always leaves 0.
    fn ctrl_zero(&self) -> u32 {
        let mut zero = CTRL_RESERVED;
        if self.cap & CAP_UIO == 0 {
            zero |= CTRL_UIO_BITS;
        }
        if !self.cache {
            zero |= BI;
        }
        zero
    }

    /// A guest write of `value` to dword `dword`.
    fn write(&mut self, dword: usize, value: u32) {
        let Some(rel) = (dword * 4).checked_sub(self.hdm) else {
            return; // the capability array and the capabilities before HDM: read-only
        };
        match rel {
            0x0 | 0x8 | 0xc => {} // capability, reserved
            0x4 => {
                let mut keep = 0x3;
                if self.cap & CAP_POISON == 0 {
                    keep &= !1;
                }
                self.regs[dword] = value & keep;
            }
            _ => {
                let n = (rel - 0x10) / 0x20;
                if n >= self.count {
                    return;
                }
                let ctrl = self.regs[self.dec(n, 0x10)];
                match (rel - 0x10) % 0x20 {
                    // Base/Size Low: bits 27:0 reserved; RWL.
                    0x0 | 0x8 if ctrl & LOCK == 0 => self.regs[dword] = value & 0xf000_0000,
                    // Base/Size High: RWL.
                    0x4 | 0xc if ctrl & LOCK == 0 => self.regs[dword] = value,
                    0x10 => self.regs[dword] = self.ctrl_write(ctrl, value),
                    // Target list / DPA skip, reserved, or locked.
                    _ => {}
                }
            }
        }
    }

    /// Decoder Control after a guest write of `value` over `cur`.
    fn ctrl_write(&self, cur: u32, value: u32) -> u32 {
        if cur & LOCK != 0 {
            // Locked: only clearing LOCK is taken, and it changes nothing else.
            return if value & LOCK != 0 { cur } else { cur & !LOCK };
        }
        let ro = COMMITTED | COMMIT_ERROR | HOSTONLY;
        let mut new = (value & !self.ctrl_zero() & !ro) | (cur & ro);
        // The emulated commit completes at once.
        if new & COMMIT != 0 {
            new |= COMMITTED;
        } else {
            new &= !COMMITTED;
        }
        new
    }
}

/// Whether an access of `len` bytes at `offset` is one the region takes.
fn access_ok(offset: u64, len: usize, region_size: usize) -> bool {
    len == 4
        && offset.is_multiple_of(4)
        && offset
            .checked_add(4)
            .is_some_and(|e| e <= region_size as u64)
}

/// Checks `check_access` against [`access_ok`].
fn check_access(layout: &HdmLayout, offset: u64, len: usize) -> Option<usize> {
    let got = layout.check_access(offset, len);
    assert_eq!(got, m::check_access(offset, len, layout.region_size()));
    if access_ok(offset, len, layout.region_size()) {
        assert_eq!(
            got,
            Ok((offset / 4) as usize),
            "access {len} at {offset:#x}"
        );
        got.ok()
    } else {
        match got {
            Err(AccessError::Size(l)) => assert!(l == len && len != 4),
            Err(AccessError::Misaligned(o)) => assert!(o == offset && !offset.is_multiple_of(4)),
            Err(AccessError::OutOfRange(o)) => assert_eq!(o, offset),
            Ok(d) => panic!("access of {len} bytes at {offset:#x} taken as dword {d}"),
        }
        None
    }
}

/// The invariants of one write of `value` to `dword`, from `before` to `after`.
fn check_write(r: &Reference, initial: &[u32], before: &[u32], after: &[u32], dword: usize) {
    let hdm = r.hdm / 4;
    let region = after.len() - TAIL;
    for (i, (a, b)) in before.iter().zip(after).enumerate() {
        assert!(
            i == dword || a == b,
            "write to dword {dword:#x} changed {i:#x}"
        );
    }
    // Read-only: the array and what precedes HDM, the capability, the reserved dwords, the tail.
    assert_eq!(after[..=hdm], initial[..=hdm], "read-only dword changed");
    assert_eq!(after[hdm + 2..hdm + 4], initial[hdm + 2..hdm + 4]);
    assert_eq!(after[region..], [CANARY; TAIL], "write past the region");
    assert_eq!(after[hdm], r.cap);
    let gctl = after[hdm + 1];
    if dword == hdm + 1 {
        assert_eq!(gctl & !0x3, 0, "global control reserved bits");
        if r.cap & CAP_POISON == 0 {
            assert_eq!(gctl & 1, 0, "poison enable without the capability");
        }
    }
    for n in 0..r.count {
        let c = r.dec(n, 0x10);
        let (old, new) = (before[c], after[c]);
        for reg in [0x14, 0x18, 0x1c] {
            let i = r.dec(n, reg);
            assert_eq!(after[i], initial[i], "decoder {n} +{reg:#x} changed");
        }
        for reg in [0x0, 0x4, 0x8, 0xc] {
            let i = r.dec(n, reg);
            if old & LOCK != 0 {
                assert_eq!(after[i], before[i], "locked decoder {n} +{reg:#x} changed");
            }
            if i == dword && reg % 8 == 0 && old & LOCK == 0 {
                assert_eq!(
                    after[i] & 0x0fff_ffff,
                    0,
                    "decoder {n} +{reg:#x} reserved bits"
                );
            }
        }
        let ro = COMMIT_ERROR | HOSTONLY;
        assert_eq!(
            new & ro,
            initial[c] & ro,
            "decoder {n} read-only control bits"
        );
        if dword == c {
            if old & LOCK != 0 {
                assert_eq!(
                    new & !LOCK,
                    old & !LOCK,
                    "locked decoder {n} control changed"
                );
            } else {
                assert_eq!(new & r.ctrl_zero(), 0, "decoder {n} control {new:#x}");
                assert_eq!(
                    new & COMMIT != 0,
                    new & COMMITTED != 0,
                    "decoder {n} commit"
                );
            }
        }
    }
}

/// Checks a freshly seeded shadow.
fn check_seeded(r: &Reference, shadow: &[u32], snapshot: &[u32], layout: &HdmLayout) {
    assert_eq!(shadow, &r.regs[..], "seeded shadow");
    for n in 0..r.count {
        assert_eq!(
            shadow[r.dec(n, 0x0)],
            0,
            "decoder {n} shows a host base address"
        );
        assert_eq!(
            shadow[r.dec(n, 0x4)],
            0,
            "decoder {n} shows a host base address"
        );
    }
    // The firmware decoder: decoder 0 of the hardware, when committed with a size.
    let reg = |off: usize| snapshot[(r.hdm + 0x10 + off) / 4];
    let addr = |hi: u32, lo: u32| (u64::from(hi) << 32) | u64::from(lo & 0xf000_0000);
    let size = addr(reg(0xc), reg(0x8));
    let want = (reg(0x10) & COMMITTED != 0 && size != 0).then(|| (addr(reg(0x4), reg(0x0)), size));
    assert_eq!(m::firmware_decoder(snapshot, layout), want);
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some((snapshot, ops)) = decode(data) else {
        return;
    };
    let area = snapshot.area();
    let Ok(layout) = HdmLayout::from_cm_area(&area, snapshot.cache_capable) else {
        return; // the caparray target checks the parse
    };
    let region = layout.region_dwords();
    let mut shadow = vec![CANARY; region + TAIL];
    m::init_shadow(&mut shadow[..region], &area, &layout);
    let mut r = Reference::new(&layout, &area);
    check_seeded(&r, &shadow, &area, &layout);
    let mut initial = shadow.clone();

    for op in ops {
        let before = shadow.clone();
        match op {
            Op::Write { dword, value } => {
                let dword = usize::from(dword) % (region + TAIL);
                m::comp_regs_write(&mut shadow, &layout, dword, value);
                r.write(dword, value);
                check_write(&r, &initial, &before, &shadow, dword);
            }
            Op::Access { offset, len, value } => {
                if let Some(dword) = check_access(&layout, offset, usize::from(len)) {
                    m::comp_regs_write(&mut shadow[..region], &layout, dword, value);
                    r.write(dword, value);
                    check_write(&r, &initial, &before, &shadow, dword);
                }
            }
            Op::Read { offset, len } => {
                if let Some(dword) = check_access(&layout, offset, usize::from(len)) {
                    assert_eq!(m::comp_regs_read(&shadow[..region], dword), r.regs[dword]);
                }
                // Past the shadow, reads are 0.
                assert_eq!(
                    m::comp_regs_read(&shadow[..region], region + (offset as usize % 64)),
                    0
                );
            }
            Op::Reset => {
                m::init_shadow(&mut shadow[..region], &area, &layout);
                r = Reference::new(&layout, &area);
                check_seeded(&r, &shadow, &area, &layout);
                initial = shadow.clone();
            }
        }
        assert_eq!(shadow, r.regs, "after {op:?}");
    }
}

/// A snapshot with QEMU's array and `count_enc` decoders whose registers are `decoders`.
fn qemu(count_enc: u32, decoders: [[u32; 8]; 4], cache_capable: bool) -> Snapshot {
    Snapshot {
        entries: 2,
        hdm_slot: 2,
        others: [QEMU_RAS as u16, QEMU_LINK as u16, 0, 0, 0, 0, 0],
        hdm_offset: QEMU_HDM as u16,
        cap: qemu_hdm_cap(count_enc),
        global_ctrl: 0,
        decoders,
        fill: 0,
        cache_capable,
    }
}

/// The seed corpus.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let hdm = QEMU_HDM / 4;
    let dec = |n: usize, reg: usize| (QEMU_HDM + 0x10 + 0x20 * n + reg) / 4;
    let off = |n: usize, reg: usize| (4 * dec(n, reg)) as u64;
    let w = |dword: usize, value: u32| Op::Write {
        dword: dword as u16,
        value,
    };
    let acc = |offset: u64, value: u32| Op::Access {
        offset,
        len: 4,
        value,
    };
    let rd = |offset: u64| Op::Read { offset, len: 4 };
    let empty = [[0u32; 8]; 4];
    // Firmware committed and locked decoder 0 at 0x2_9000_0000, 256 MiB (QEMU's CFMW).
    let mut fw = empty;
    fw[0] = committed_decoder(0x2_9000_0000, 0x1000_0000, true);
    // A VMM programming decoder 0 with a guest address: base, size, then commit (QEMU's
    // cxl_type3 flow), with reads after each step.
    let program = [
        w(hdm + 1, 0x2),
        acc(off(0, 0x0), 0x1000_0000),
        rd(off(0, 0x0)),
        acc(off(0, 0x4), 0x1),
        acc(off(0, 0x8), 0x1000_0000),
        acc(off(0, 0xc), 0),
        acc(off(0, 0x10), COMMIT | LOCK),
        rd(off(0, 0x10)),
        // Locked now: these must change nothing.
        acc(off(0, 0x0), 0xf000_0000),
        acc(off(0, 0x4), 0xffff_ffff),
        acc(off(0, 0x10), LOCK),
        rd(off(0, 0x0)),
    ];
    // The firmware-committed device: unlock, reprogram, uncommit, reset.
    let reprogram = [
        rd(off(0, 0x10)),
        acc(off(0, 0x10), COMMIT | COMMITTED),
        acc(off(0, 0x0), 0x4000_0000),
        acc(off(0, 0x10), COMMIT | LOCK),
        acc(off(0, 0x0), 0),
        acc(off(0, 0x10), 0),
        acc(off(0, 0x10), 0),
        Op::Reset,
        rd(off(0, 0x0)),
    ];
    // Every register of a 4-decoder cxl-accel, all ones then zeros, with bad accesses.
    let mut sweep = Vec::new();
    for i in hdm..dec(3, 0x1c) + 2 {
        sweep.push(w(i, u32::MAX));
    }
    sweep.extend([
        Op::Access {
            offset: off(1, 0x0) + 2,
            len: 4,
            value: u32::MAX,
        },
        Op::Access {
            offset: off(1, 0x0),
            len: 2,
            value: u32::MAX,
        },
        Op::Access {
            offset: u64::MAX - 3,
            len: 4,
            value: u32::MAX,
        },
        Op::Read { offset: 0, len: 8 },
    ]);
    for i in hdm..dec(3, 0x1c) + 2 {
        sweep.push(w(i, 0));
    }
    // UIO capable, poison capable, 32 decoders.
    let mut big = qemu(0xc, empty, true);
    big.cap |= CAP_UIO | CAP_POISON | (0xf << 16);
    big.hdm_offset = 0x400;
    let uio = [
        w(0x400 / 4 + 1, 0x3),
        w((0x400 + 0x10 + 0x20 * 31 + 0x10) / 4, u32::MAX),
        rd(0x400 + 0x10 + 0x20 * 31 + 0x10),
    ];
    let mut accel = empty;
    accel[1] = committed_decoder(0x10_0000_0000, 0x800_0000 << 4, false);
    vec![
        (
            "qemu-type3-program",
            encode(&qemu(0, empty, false), &program),
        ),
        (
            "qemu-type3-firmware-committed",
            encode(&qemu(0, fw, false), &reprogram),
        ),
        (
            "cxl-accel-4-decoders-sweep",
            encode(&qemu(2, empty, true), &sweep),
        ),
        (
            "cxl-accel-2-decoders-committed",
            encode(&qemu(1, accel, true), &program),
        ),
        ("32-decoders-uio", encode(&big, &uio)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_as_built() {
        for (name, bytes) in seeds() {
            let (snapshot, ops) = decode(&bytes).unwrap();
            assert_eq!(encode(&snapshot, &ops), bytes, "{name}");
            assert!(!ops.is_empty(), "{name}");
            assert!(
                HdmLayout::from_cm_area(&snapshot.area(), snapshot.cache_capable).is_ok(),
                "{name}"
            );
        }
        let (s, _) = decode(&seeds()[0].1).unwrap();
        assert_eq!(s.area(), qemu_cm_area(qemu_hdm_cap(0)));
    }
}
