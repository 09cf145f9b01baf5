//! Test fixtures: a deterministic PRNG, CXL.mem areas laid out as QEMU 7.2's type-3 device
//! lays them out, and a mock PCI config space.

use std::vec;
use std::vec::Vec;

use crate::regs::*;

/// xorshift64* (Vigna): deterministic, dependency-free randomness for the property tests.
pub(crate) struct Prng(u64);

impl Prng {
    pub(crate) fn new(seed: u64) -> Self {
        // The state must never be 0.
        Self(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (n > 0; the bias is irrelevant here).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub(crate) fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// A register value biased towards the interesting ones: all ones, zero, single bits.
    pub(crate) fn reg_value(&mut self) -> u32 {
        match self.below(8) {
            0 => u32::MAX,
            1 => 0,
            2 => 1 << self.below(32),
            3 => !(1 << self.below(32)),
            _ => self.next_u32(),
        }
    }
}

/// Capability array entry: id, version, pointer.
pub(crate) const fn cap_entry(id: u32, version: u32, ptr: usize) -> u32 {
    ((ptr as u32) << 20) | (version << 16) | id
}

/// Capability array header: id 1, version 1, cache-mem version 1, `size` entries.
pub(crate) const fn cap_header(size: u32) -> u32 {
    (size << 24) | (1 << 20) | (1 << 16) | 1
}

/// QEMU 7.2's HDM capability of a type-3 device: 1 decoder (encoding 0), target count 1,
/// 256 B and 4 KiB interleave granularity (bits 8, 9).
pub(crate) const QEMU_HDM_CAP: u32 = 0x0000_0310;
/// Where QEMU 7.2 puts the HDM capability in the CXL.mem area.
pub(crate) const QEMU_HDM_OFFSET: usize = 0x110;

/// QEMU 7.2's CXL.mem area of a type-3 device (hw/cxl/cxl-component-utils.c): RAS at 0x80,
/// link at 0xd8, HDM at 0x110 with one decoder; [`CXL_CM_SIZE`] bytes.
pub(crate) fn qemu_cm_area() -> Vec<u32> {
    let mut area = vec![0u32; CXL_CM_SIZE / 4];
    area[0] = cap_header(3);
    area[1] = cap_entry(CXL_CM_CAP_CAP_ID_RAS, 2, 0x80);
    area[2] = cap_entry(CXL_CM_CAP_CAP_ID_LINK, 2, 0xd8);
    area[3] = cap_entry(CXL_CM_CAP_CAP_ID_HDM, 1, QEMU_HDM_OFFSET);
    area[QEMU_HDM_OFFSET / 4] = QEMU_HDM_CAP;
    area
}

/// A CXL.mem area whose HDM capability sits at `hdm_offset` and reads `cap`.
pub(crate) fn cm_area_with_hdm(hdm_offset: usize, cap: u32) -> Vec<u32> {
    let mut area = vec![0u32; CXL_CM_SIZE / 4];
    area[0] = cap_header(2);
    area[1] = cap_entry(CXL_CM_CAP_CAP_ID_RAS, 2, 0x80);
    area[2] = cap_entry(CXL_CM_CAP_CAP_ID_HDM, 1, hdm_offset);
    area[hdm_offset / 4] = cap;
    area
}

/// Sets the HDM register at byte `reg` of the HDM block in a CXL.mem area.
pub(crate) fn set_hdm(area: &mut [u32], hdm_offset: usize, reg: usize, value: u32) {
    area[(hdm_offset + reg) / 4] = value;
}

/// A PCI config space (4 KiB) that checks that every read is naturally aligned.
pub(crate) struct Cfg {
    pub(crate) bytes: Vec<u8>,
    pub(crate) reads: usize,
}

impl Cfg {
    /// A config space of `fill` bytes.
    pub(crate) fn new(fill: u8) -> Self {
        Self {
            bytes: vec![fill; PCI_CFG_SPACE_EXP_SIZE as usize],
            reads: 0,
        }
    }

    pub(crate) fn read(&mut self, pos: u16, size: usize) -> u32 {
        assert!(matches!(size, 1 | 2 | 4), "config read of {size} bytes");
        assert_eq!(pos as usize % size, 0, "unaligned config read at {pos:#x}");
        self.reads += 1;
        let mut value = 0u32;
        for i in 0..size {
            value |= u32::from(self.bytes[pos as usize + i]) << (8 * i);
        }
        value
    }

    pub(crate) fn set(&mut self, pos: u16, size: usize, value: u32) {
        for i in 0..size {
            self.bytes[pos as usize + i] = (value >> (8 * i)) as u8;
        }
    }

    pub(crate) fn get(&self, pos: u16, size: usize) -> u32 {
        let mut value = 0u32;
        for i in 0..size {
            value |= u32::from(self.bytes[pos as usize + i]) << (8 * i);
        }
        value
    }

    /// Writes a DVSEC header: extended capability header (next = 0), Header 1 and Header 2.
    pub(crate) fn dvsec_header(&mut self, base: u16, vendor: u16, length: u16, id: u16) {
        self.set(base, 4, (1 << 16) | u32::from(PCI_EXT_CAP_ID_DVSEC));
        self.set(
            base + PCI_DVSEC_HEADER1,
            4,
            (u32::from(length) << 20) | (1 << 16) | u32::from(vendor),
        );
        self.set(base + PCI_DVSEC_HEADER2, 2, u32::from(id));
    }
}

/// Registers of a CXL Device DVSEC to lay out in a [`Cfg`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceDvsec {
    pub(crate) length: u16,
    pub(crate) cap: u16,
    pub(crate) control: u16,
    pub(crate) status: u16,
    pub(crate) control2: u16,
    pub(crate) status2: u16,
    pub(crate) lock: u16,
    pub(crate) cap2: u16,
    pub(crate) range1_size: u64,
    pub(crate) range1_base: u64,
    pub(crate) range2_size: u64,
    pub(crate) range2_base: u64,
    pub(crate) cap3: u16,
}

impl DeviceDvsec {
    /// QEMU 7.2's type-3 device (CXL 2.0: length 0x38, no Capability3): Capability 0x001e,
    /// Control 0x0002, a 256 MiB range 1 that firmware placed at 0x2_9000_0000.
    pub(crate) fn qemu() -> Self {
        Self {
            length: 0x38,
            cap: 0x001e,
            control: 0x0002,
            status: 0,
            control2: 0,
            status2: 0,
            lock: 0,
            cap2: 0,
            range1_size: 0x1000_0000 | 0x3, // Memory_Info_Valid, Memory_Active
            range1_base: 0x2_9000_0000,
            range2_size: 0,
            range2_base: 0,
            cap3: 0,
        }
    }

    /// A CXL 3 device (length 0x3c) with Capability3 `cap3`.
    pub(crate) fn cxl3(cap3: u16) -> Self {
        Self {
            length: 0x3c,
            cap3,
            ..Self::qemu()
        }
    }

    /// Lays the DVSEC out at `base`; the bytes it does not define keep their value.
    pub(crate) fn install(&self, cfg: &mut Cfg, base: u16) {
        cfg.dvsec_header(base, PCI_VENDOR_ID_CXL, self.length, CXL_DVSEC_PCIE_DEVICE);
        cfg.set(base + CXL_DVSEC_CAPABILITY_OFFSET, 2, self.cap.into());
        cfg.set(base + CXL_DVSEC_CONTROL_OFFSET, 2, self.control.into());
        cfg.set(base + CXL_DVSEC_STATUS_OFFSET, 2, self.status.into());
        cfg.set(base + CXL_DVSEC_CONTROL2_OFFSET, 2, self.control2.into());
        cfg.set(base + CXL_DVSEC_STATUS2_OFFSET, 2, self.status2.into());
        cfg.set(base + CXL_DVSEC_LOCK_OFFSET, 2, self.lock.into());
        cfg.set(base + CXL_DVSEC_CAPABILITY2_OFFSET, 2, self.cap2.into());
        for (off, value) in [
            (CXL_DVSEC_RANGE1_SIZE_HIGH_OFFSET, self.range1_size >> 32),
            (CXL_DVSEC_RANGE1_SIZE_LOW_OFFSET, self.range1_size),
            (CXL_DVSEC_RANGE1_BASE_HIGH_OFFSET, self.range1_base >> 32),
            (CXL_DVSEC_RANGE1_BASE_LOW_OFFSET, self.range1_base),
            (CXL_DVSEC_RANGE2_SIZE_HIGH_OFFSET, self.range2_size >> 32),
            (CXL_DVSEC_RANGE2_SIZE_LOW_OFFSET, self.range2_size),
            (CXL_DVSEC_RANGE2_BASE_HIGH_OFFSET, self.range2_base >> 32),
            (CXL_DVSEC_RANGE2_BASE_LOW_OFFSET, self.range2_base),
        ] {
            cfg.set(base + off, 4, value as u32);
        }
        if self.length >= CXL_DVSEC_CAPABILITY3_OFFSET + 2 {
            cfg.set(base + CXL_DVSEC_CAPABILITY3_OFFSET, 2, self.cap3.into());
        }
    }
}
