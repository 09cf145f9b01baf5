// SPDX-License-Identifier: GPL-2.0

//! Virtualization of the PCIe DVSEC for CXL Devices (8.1.3) in PCI config space.
//!
//! The host owns the device's CXL configuration, so guest writes land in a shadow
//! ([`DvsecShadow`]) and never reach the hardware, with two exceptions that the caller carries
//! out: Control2.Initiate Cache Write Back and Invalidate, and the write-1-to-clear of
//! Status2.Volatile HDM Preservation Error. Reads of the shadowed registers (Control, Status,
//! Control2, Lock, the Range Base registers) come from the shadow; every other byte passes
//! through to the caller's config read.
//!
//! Positions are absolute config-space offsets. An access of 1, 2 or 4 bytes may start anywhere,
//! straddle registers and begin before or end after the DVSEC: it is split per register, and
//! the bytes outside the DVSEC are handed back to the caller's ordinary config path.

use super::caparray::{dvsec_base_valid, dvsec_fits, DvsecHeader};
use super::regs::*;

/// Why the DVSEC could not be set up or an access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DvsecError {
    /// The DVSEC at this position is not dword-aligned in extended config space or its length
    /// runs past the end of config space.
    BadPosition(u16),
    /// The DVSEC header does not name the CXL Device DVSEC.
    NotCxlDevice {
        /// The DVSEC Vendor ID found.
        vendor: u16,
        /// The DVSEC ID found.
        id: u16,
    },
    /// The DVSEC, of this length, is shorter than a CXL 2.0 Device DVSEC.
    TooShort(u16),
    /// The access size is not 1, 2 or 4 bytes.
    BadSize(usize),
    /// The access at this position runs past the end of config space.
    OutOfRange(u16),
}

/// A 16-bit config write the caller must issue to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HwWrite {
    /// Absolute config-space position (2-byte aligned).
    pub(crate) pos: u16,
    /// The value to write.
    pub(crate) value: u16,
}

/// Bytes of an access that lie outside the DVSEC: the caller's ordinary config path handles
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PassThrough {
    /// Absolute config-space position of the first byte.
    pub(crate) pos: u16,
    /// Number of bytes, 1 to 4.
    pub(crate) len: usize,
    /// The bytes, little-endian, first byte in bits 7:0.
    pub(crate) value: u32,
}

/// What the caller must do after a config write overlapping the DVSEC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DvsecWrite {
    /// Write Control2 with only Initiate Cache Write Back and Invalidate set.
    pub(crate) cache_wbi: Option<HwWrite>,
    /// Write Status2 with only Volatile HDM Preservation Error set (write-1-to-clear).
    pub(crate) clear_volatile_hdm_error: Option<HwWrite>,
    /// The guest set Initiate CXL Reset, which is not supported and not forwarded: log it.
    pub(crate) cxl_reset_requested: bool,
    /// The bytes of the access outside the DVSEC, for the caller's ordinary config write.
    pub(crate) outside: Option<PassThrough>,
}

impl DvsecWrite {
    /// The hardware writes to issue, in order: never anything but the two forwarded actions.
    pub(crate) fn hw_writes(&self) -> impl Iterator<Item = HwWrite> {
        self.cache_wbi
            .into_iter()
            .chain(self.clear_volatile_hdm_error)
    }
}

/// The bytes of one access that fall into one DVSEC register.
#[derive(Clone, Copy, Debug)]
struct Piece {
    /// Offset of the register in the DVSEC.
    start: u16,
    /// The written bytes at their place in the register.
    value: u32,
    /// Which bytes of the register the access writes.
    mask: u32,
}

/// The emulated CXL Device DVSEC of one device, from one open or reset to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DvsecShadow {
    /// Config-space position of the DVSEC.
    base: u16,
    /// DVSEC Length (at least [`CXL_DVSEC_PCIE_DEVICE_LEN_MIN`]).
    length: u16,
    /// Capability, as read at initialisation.
    cap: u16,
    /// Capability2, as read at initialisation.
    cap2: u16,
    /// Capability3 as read at initialisation, or 0 when the DVSEC is too short to hold it.
    cap3: u16,
    /// Control.
    control: u16,
    /// Status.
    status: u16,
    /// Control2, action bits clear.
    control2: u16,
    /// Lock.
    lock: u16,
    /// Range 1 Base High.
    range1_base_high: u32,
    /// Range 1 Base Low.
    range1_base_low: u32,
    /// Range 2 Base High.
    range2_base_high: u32,
    /// Range 2 Base Low.
    range2_base_low: u32,
}

/// Merges the bytes of `value` selected by `mask` into `current`.
const fn merge(current: u32, value: u32, mask: u32) -> u32 {
    (current & !mask) | (value & mask)
}

/// The span (offset, size) of the DVSEC register holding byte `rel`; bytes past the defined
/// registers are grouped in naturally aligned dwords.
const fn reg_span(rel: u16) -> (u16, usize) {
    match rel {
        // Extended capability header and DVSEC Header 1.
        0x00..=0x07 => (rel & !3, 4),
        // Header 2, Capability, Control, Status, Control2, Status2, Lock, Capability2.
        0x08..=0x17 => (rel & !1, 2),
        // Range 1 and Range 2 Size and Base registers.
        0x18..=0x37 => (rel & !3, 4),
        // Capability3 and the reserved word after it.
        0x38..=0x3b => (rel & !1, 2),
        _ => (rel & !3, 4),
    }
}

/// Mask of the low `size` bytes of a u32.
const fn size_mask(size: usize) -> u32 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    }
}

/// Checks an access and returns its end position (exclusive).
fn check_access(pos: u16, len: usize) -> Result<u32, DvsecError> {
    if !matches!(len, 1 | 2 | 4) {
        return Err(DvsecError::BadSize(len));
    }
    // len is at most 4, so neither the cast nor the sum can overflow a u32.
    let end = u32::from(pos) + len as u32;
    if end > u32::from(PCI_CFG_SPACE_EXP_SIZE) {
        return Err(DvsecError::OutOfRange(pos));
    }
    Ok(end)
}

impl DvsecShadow {
    /// Builds the shadow of the CXL Device DVSEC at config-space position `base` from the
    /// hardware: at open and after every reset.
    ///
    /// `cfg_read(pos, size)` returns the `size`-byte (1, 2 or 4) config register at absolute
    /// position `pos`, always naturally aligned. Control starts with IO_Enable set and its
    /// forced-zero bits clear, Control2 with its action and forced-zero bits clear, and the
    /// Range Base registers at 0 (they hold host physical addresses on the device).
    pub(crate) fn new(
        base: u16,
        cfg_read: &mut dyn FnMut(u16, usize) -> u32,
    ) -> Result<Self, DvsecError> {
        if !dvsec_base_valid(base) {
            return Err(DvsecError::BadPosition(base));
        }
        // base < 0x1000: the sums below stay far from u16::MAX.
        let header2 = cfg_read(base + PCI_DVSEC_HEADER2, 4);
        let header = DvsecHeader::decode(cfg_read(base + PCI_DVSEC_HEADER1, 4), header2);
        if header.vendor != PCI_VENDOR_ID_CXL || header.id != CXL_DVSEC_PCIE_DEVICE {
            return Err(DvsecError::NotCxlDevice {
                vendor: header.vendor,
                id: header.id,
            });
        }
        if header.length < CXL_DVSEC_PCIE_DEVICE_LEN_MIN {
            return Err(DvsecError::TooShort(header.length));
        }
        if !dvsec_fits(base, header.length) {
            return Err(DvsecError::BadPosition(base));
        }
        // Registers come in pairs of 16-bit halves of one dword.
        let low = |dword: u32| (dword & 0xffff) as u16;
        let high = |dword: u32| (dword >> 16) as u16;
        let control_status = cfg_read(base + CXL_DVSEC_CONTROL_OFFSET, 4);
        let control2 = cfg_read(base + CXL_DVSEC_CONTROL2_OFFSET, 4);
        let lock_cap2 = cfg_read(base + CXL_DVSEC_LOCK_OFFSET, 4);
        let cap3 = if header.length >= CXL_DVSEC_CAPABILITY3_OFFSET + 2 {
            low(cfg_read(base + CXL_DVSEC_CAPABILITY3_OFFSET, 2))
        } else {
            0
        };
        let mut shadow = Self {
            base,
            length: header.length,
            cap: high(header2),
            cap2: high(lock_cap2),
            cap3,
            control: 0,
            status: high(control_status),
            control2: 0,
            lock: low(lock_cap2) & !CXL_LOCK_RESERVED_MASK,
            range1_base_high: 0,
            range1_base_low: 0,
            range2_base_high: 0,
            range2_base_low: 0,
        };
        shadow.control = shadow.control_value(low(control_status));
        shadow.control2 = shadow.control2_value(low(control2));
        Ok(shadow)
    }

    /// Config-space position of the DVSEC.
    pub(crate) const fn base(&self) -> u16 {
        self.base
    }

    /// DVSEC Length in bytes.
    pub(crate) const fn length(&self) -> u16 {
        self.length
    }

    /// The DVSEC CXL Capability register.
    pub(crate) const fn capability(&self) -> u16 {
        self.cap
    }

    /// Whether the device is CXL.cache capable.
    pub(crate) const fn cache_capable(&self) -> bool {
        self.cap & CXL_DVSEC_CAP_CACHE_CAPABLE != 0
    }

    /// Whether the device is CXL.mem capable.
    pub(crate) const fn mem_capable(&self) -> bool {
        self.cap & CXL_DVSEC_CAP_MEM_CAPABLE != 0
    }

    /// Whether the guest set CONFIG_LOCK since initialisation (or firmware had set it).
    pub(crate) const fn config_locked(&self) -> bool {
        self.lock & CXL_DVSEC_LOCK_CONFIG_LOCK != 0
    }

    /// Whether an access of `len` bytes at `pos` touches the DVSEC: then it must go through
    /// [`Self::read`] or [`Self::write`].
    pub(crate) fn overlaps(&self, pos: u16, len: usize) -> bool {
        // Config space is 4 KiB: clamping keeps the sums in range without changing the answer.
        let start = u32::from(pos);
        let end = start + len.min(0x1_0000) as u32;
        let base = u32::from(self.base);
        len != 0 && start < base + u32::from(self.length) && base < end
    }

    /// Offset in the DVSEC of config-space byte `pos`, if the DVSEC holds it.
    fn rel(&self, pos: u16) -> Option<u16> {
        let rel = pos.checked_sub(self.base)?;
        (rel < self.length).then_some(rel)
    }

    /// Control as it reads after the guest writes `value` to it.
    fn control_value(&self, value: u16) -> u16 {
        let mut forced_zero = CXL_CTRL_RESERVED_MASK;
        if self.cap3 & CXL_DVSEC_CAP3_P2P_MEM_CAPABLE == 0 {
            forced_zero |= CXL_CTRL_P2P_REV_MASK;
        }
        // CXL.io is always enabled on a device that is passed through at all.
        (value & !forced_zero) | CXL_DVSEC_CTRL_IO_ENABLE
    }

    /// Control2 as it reads after the guest writes `value` to it.
    fn control2_value(&self, value: u16) -> u16 {
        let mut forced_zero = CXL_CTRL2_RESERVED_MASK | CXL_CTRL2_HW_BITS_MASK;
        if self.cap3 & CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY == 0 {
            forced_zero |= CXL_CTRL2_VOLATILE_HDM_REV_MASK;
        }
        if self.cap2 & CXL_DVSEC_CAP2_MOD_COMPLETION_CAPABLE == 0 {
            forced_zero |= CXL_CTRL2_MODIFIED_COMP_REV_MASK;
        }
        value & !forced_zero
    }

    /// The shadowed value of the register at DVSEC offset `start`, or `None` when the register
    /// passes through to the device.
    fn shadowed(&self, start: u16) -> Option<u32> {
        Some(match start {
            CXL_DVSEC_CONTROL_OFFSET => u32::from(self.control),
            CXL_DVSEC_STATUS_OFFSET => u32::from(self.status),
            CXL_DVSEC_CONTROL2_OFFSET => u32::from(self.control2),
            CXL_DVSEC_LOCK_OFFSET => u32::from(self.lock),
            CXL_DVSEC_RANGE1_BASE_HIGH_OFFSET => self.range1_base_high,
            CXL_DVSEC_RANGE1_BASE_LOW_OFFSET => self.range1_base_low,
            CXL_DVSEC_RANGE2_BASE_HIGH_OFFSET => self.range2_base_high,
            CXL_DVSEC_RANGE2_BASE_LOW_OFFSET => self.range2_base_low,
            _ => return None,
        })
    }

    /// Reads `len` (1, 2 or 4) bytes at config-space position `pos` as the guest sees them,
    /// little-endian in the low bytes of the result.
    ///
    /// `cfg_read` is as for [`Self::new`]; it supplies the bytes that pass through, including
    /// those outside the DVSEC (read one byte at a time).
    pub(crate) fn read(
        &self,
        pos: u16,
        len: usize,
        cfg_read: &mut dyn FnMut(u16, usize) -> u32,
    ) -> Result<u32, DvsecError> {
        check_access(pos, len)?;
        let mut result = 0;
        // The register last read, so a register is read once per access.
        let mut cached: Option<(u16, u32)> = None;
        for (i, p) in (pos..).take(len).enumerate() {
            let byte = match self.rel(p) {
                None => cfg_read(p, 1) & 0xff,
                Some(rel) => {
                    let (start, size) = reg_span(rel);
                    let value = match cached {
                        Some((cached_start, value)) if cached_start == start => value,
                        _ => {
                            let value = match self.shadowed(start) {
                                Some(value) => value,
                                None => cfg_read(self.base + start, size) & size_mask(size),
                            };
                            cached = Some((start, value));
                            value
                        }
                    };
                    (value >> (8 * (rel - start))) & 0xff
                }
            };
            result |= byte << (8 * i);
        }
        Ok(result)
    }

    /// Applies a guest write of the low `len` (1, 2 or 4) bytes of `value` at config-space
    /// position `pos` and returns what the caller must do next: the forwarded hardware writes,
    /// the CXL reset report, and the bytes outside the DVSEC.
    pub(crate) fn write(
        &mut self,
        pos: u16,
        len: usize,
        value: u32,
    ) -> Result<DvsecWrite, DvsecError> {
        check_access(pos, len)?;
        let mut result = DvsecWrite::default();
        let mut piece: Option<Piece> = None;
        for (i, p) in (pos..).take(len).enumerate() {
            let byte = (value >> (8 * i)) & 0xff;
            let Some(rel) = self.rel(p) else {
                // The DVSEC is longer than an access, so outside bytes are contiguous.
                let outside = result.outside.get_or_insert(PassThrough {
                    pos: p,
                    len: 0,
                    value: 0,
                });
                outside.value |= byte << (8 * outside.len);
                outside.len += 1;
                continue;
            };
            let (start, _) = reg_span(rel);
            let shift = 8 * u32::from(rel - start);
            match &mut piece {
                Some(current) if current.start == start => {
                    current.value |= byte << shift;
                    current.mask |= 0xff << shift;
                }
                _ => {
                    if let Some(done) = piece {
                        self.apply(done, &mut result);
                    }
                    piece = Some(Piece {
                        start,
                        value: byte << shift,
                        mask: 0xff << shift,
                    });
                }
            }
        }
        if let Some(done) = piece {
            self.apply(done, &mut result);
        }
        Ok(result)
    }

    /// Applies the written bytes of one register.
    fn apply(&mut self, piece: Piece, result: &mut DvsecWrite) {
        let Piece { start, value, mask } = piece;
        let written = value & mask;
        // The 16-bit registers only ever get masks within their low half.
        let written16 = (written & 0xffff) as u16;
        let merge16 = |current: u16| (merge(u32::from(current), value, mask) & 0xffff) as u16;
        match start {
            CXL_DVSEC_CONTROL_OFFSET => {
                if !self.config_locked() {
                    self.control = self.control_value(merge16(self.control));
                }
            }
            CXL_DVSEC_STATUS_OFFSET => {
                self.status &= !(written16 & CXL_DVSEC_STATUS_VIRAL_STATUS);
            }
            CXL_DVSEC_CONTROL2_OFFSET => {
                if written16 & CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI != 0 {
                    result.cache_wbi = Some(HwWrite {
                        pos: self.base + CXL_DVSEC_CONTROL2_OFFSET,
                        value: CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI,
                    });
                }
                if written16 & CXL_DVSEC_CTRL2_INITIATE_CXL_RESET != 0 {
                    result.cxl_reset_requested = true;
                }
                self.control2 = self.control2_value(merge16(self.control2));
            }
            CXL_DVSEC_STATUS2_OFFSET => {
                if written16 & CXL_DVSEC_STATUS2_VOLATILE_HDM_PRES_ERROR != 0
                    && self.cap3 & CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY != 0
                {
                    result.clear_volatile_hdm_error = Some(HwWrite {
                        pos: self.base + CXL_DVSEC_STATUS2_OFFSET,
                        value: CXL_DVSEC_STATUS2_VOLATILE_HDM_PRES_ERROR,
                    });
                }
            }
            CXL_DVSEC_LOCK_OFFSET => {
                if !self.config_locked() {
                    self.lock = merge16(self.lock) & !CXL_LOCK_RESERVED_MASK;
                }
            }
            CXL_DVSEC_RANGE1_BASE_HIGH_OFFSET => {
                self.range1_base_high = merge(self.range1_base_high, value, mask);
            }
            CXL_DVSEC_RANGE1_BASE_LOW_OFFSET => {
                self.range1_base_low =
                    merge(self.range1_base_low, value, mask) & !CXL_BASE_LO_RESERVED_MASK;
            }
            CXL_DVSEC_RANGE2_BASE_HIGH_OFFSET => {
                self.range2_base_high = merge(self.range2_base_high, value, mask);
            }
            CXL_DVSEC_RANGE2_BASE_LOW_OFFSET => {
                self.range2_base_low =
                    merge(self.range2_base_low, value, mask) & !CXL_BASE_LO_RESERVED_MASK;
            }
            // Headers, capabilities, range sizes and everything else are read-only.
            _ => {}
        }
    }
}
