// SPDX-License-Identifier: GPL-2.0

//! The COMP_REGS region: the VMM's emulated view of the CXL.mem register area.
//!
//! The region starts at the capability array header (+0x1000 of the component register block)
//! and ends with the last HDM decoder, so its size is the HDM block's offset in the CXL.mem area
//! plus `0x10 + 0x20 * decoder_count`. Every access hits a shadow (`&[u32]`, one element per
//! register dword) that the caller owns; the hardware is never written through this region.
//!
//! The shadow is seeded from a hardware snapshot by [`init_shadow`], which hides the host
//! physical address a firmware-committed decoder decodes: userspace only ever sees the
//! addresses it wrote itself.

use super::caparray::{self, CapError, HdmInfo};
use super::regs::*;

/// Why a COMP_REGS access was refused (the caller returns `EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AccessError {
    /// The access is not exactly 4 bytes long; the value is its length.
    Size(usize),
    /// The access does not start on a 4-byte boundary; the value is its offset.
    Misaligned(u64),
    /// The access does not lie inside the region; the value is its offset.
    OutOfRange(u64),
}

/// Checks one COMP_REGS access of `len` bytes at byte `offset` in a region of `region_size`
/// bytes and returns the index of the dword it addresses.
///
/// Only single, aligned dword accesses are allowed, as on the hardware.
pub(crate) fn check_access(
    offset: u64,
    len: usize,
    region_size: usize,
) -> Result<usize, AccessError> {
    if len != 4 {
        return Err(AccessError::Size(len));
    }
    if offset % 4 != 0 {
        return Err(AccessError::Misaligned(offset));
    }
    match offset.checked_add(4) {
        Some(end) if end <= region_size as u64 => {}
        _ => return Err(AccessError::OutOfRange(offset)),
    }
    usize::try_from(offset / 4).map_err(|_| AccessError::OutOfRange(offset))
}

/// Where the HDM decoder block sits in the COMP_REGS region and what the device supports.
///
/// Invariant: `hdm_offset` is dword-aligned and at least 8 (past a header and one entry),
/// `decoder_count` is the decoded count of `cap` (1 to 32), and the HDM block ends inside the
/// CXL.mem area ([`CXL_CM_SIZE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HdmLayout {
    /// Byte offset of the HDM decoder capability structure in the CXL.mem area (and the region).
    hdm_offset: usize,
    /// Number of decoders.
    decoder_count: usize,
    /// The HDM Decoder Capability register, as read from the hardware at probe.
    cap: u32,
    /// Whether the device is CXL.cache capable (DVSEC Capability bit 0).
    cache_capable: bool,
}

impl HdmLayout {
    /// Builds a layout for an HDM block at byte `hdm_offset` of the CXL.mem area whose HDM
    /// Decoder Capability register reads `cap`.
    pub(crate) fn new(hdm_offset: usize, cap: u32, cache_capable: bool) -> Result<Self, CapError> {
        let decoder_count = caparray::decoder_count(cap)?;
        if hdm_offset % 4 != 0 {
            return Err(CapError::MisalignedPointer(hdm_offset));
        }
        if hdm_offset < 2 * CXL_CM_CAP_ENTRY_SIZE {
            return Err(CapError::HdmOverlapsArray(hdm_offset));
        }
        match hdm_offset.checked_add(caparray::hdm_block_size(decoder_count)) {
            Some(end) if end <= CXL_CM_SIZE => Ok(Self {
                hdm_offset,
                decoder_count,
                cap,
                cache_capable,
            }),
            _ => Err(CapError::HdmOutsideArea(hdm_offset)),
        }
    }

    /// Builds a layout from a parsed HDM capability.
    pub(crate) fn from_info(info: &HdmInfo, cache_capable: bool) -> Result<Self, CapError> {
        Self::new(info.offset, info.cap, cache_capable)
    }

    /// Parses the capability array of a CXL.mem area snapshot and builds the layout.
    pub(crate) fn from_cm_area(area: &[u32], cache_capable: bool) -> Result<Self, CapError> {
        Self::from_info(&caparray::find_hdm(area)?, cache_capable)
    }

    /// Byte offset of the HDM block in the CXL.mem area and in the region.
    pub(crate) const fn hdm_offset(&self) -> usize {
        self.hdm_offset
    }

    /// Number of HDM decoders.
    pub(crate) const fn decoder_count(&self) -> usize {
        self.decoder_count
    }

    /// The HDM Decoder Capability register.
    pub(crate) const fn cap(&self) -> u32 {
        self.cap
    }

    /// Whether the device is CXL.cache capable.
    pub(crate) const fn cache_capable(&self) -> bool {
        self.cache_capable
    }

    /// Size in bytes of the HDM decoder block.
    pub(crate) const fn hdm_size(&self) -> usize {
        // Bounded by the invariant: at most CXL_HDM_MAX_SIZE.
        caparray::hdm_block_size(self.decoder_count)
    }

    /// Size in bytes of the COMP_REGS region: capability array up to the end of the HDM block.
    pub(crate) const fn region_size(&self) -> usize {
        // Bounded by the invariant: at most CXL_CM_SIZE.
        self.hdm_offset + self.hdm_size()
    }

    /// Number of dwords the shadow must hold.
    pub(crate) const fn region_dwords(&self) -> usize {
        self.region_size() / 4
    }

    /// [`check_access`] against this region.
    pub(crate) fn check_access(&self, offset: u64, len: usize) -> Result<usize, AccessError> {
        check_access(offset, len, self.region_size())
    }

    /// Dword index in the region of the HDM block register at byte `offset` in the block.
    pub(crate) const fn hdm_dword(&self, offset: usize) -> usize {
        (self.hdm_offset + offset) / 4
    }

    /// What a write to region dword `dword` does.
    fn classify(&self, dword: usize) -> Target {
        let Some(rel) = dword
            .checked_mul(4)
            .and_then(|off| off.checked_sub(self.hdm_offset))
        else {
            // The capability array and every other capability before the HDM block.
            return Target::Discard;
        };
        if rel == CXL_HDM_DECODER_CTRL_OFFSET {
            return Target::GlobalCtrl;
        }
        // The capability register and the reserved dwords at 0x8 and 0xc.
        let Some(dec_rel) = rel.checked_sub(CXL_HDM_DECODER_FIRST_BLOCK_OFFSET) else {
            return Target::Discard;
        };
        let n = dec_rel / CXL_HDM_DECODER_BLOCK_STRIDE;
        if n >= self.decoder_count {
            return Target::Discard;
        }
        let ctrl = self.hdm_dword(cxl_hdm_decoder0_ctrl_offset(n));
        match dec_rel % CXL_HDM_DECODER_BLOCK_STRIDE {
            CXL_HDM_DECODER_N_BASE_LOW_OFFSET | CXL_HDM_DECODER_N_SIZE_LOW_OFFSET => {
                Target::Low { ctrl }
            }
            CXL_HDM_DECODER_N_BASE_HIGH_OFFSET | CXL_HDM_DECODER_N_SIZE_HIGH_OFFSET => {
                Target::High { ctrl }
            }
            CXL_HDM_DECODER_N_CTRL_OFFSET => Target::Ctrl,
            // Target list / DPA skip and the reserved dword.
            _ => Target::Discard,
        }
    }
}

/// The emulation rule that applies to a written dword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Read-only or reserved: the write is dropped.
    Discard,
    /// HDM Decoder Global Control.
    GlobalCtrl,
    /// A decoder's Base Low or Size Low; `ctrl` is the dword index of its Control register.
    Low {
        /// Dword index of the decoder's Control register.
        ctrl: usize,
    },
    /// A decoder's Base High or Size High; `ctrl` is the dword index of its Control register.
    High {
        /// Dword index of the decoder's Control register.
        ctrl: usize,
    },
    /// A decoder's Control register.
    Ctrl,
}

/// Returns shadow dword `dword`, or 0 past the end of the shadow.
pub(crate) fn read(shadow: &[u32], dword: usize) -> u32 {
    match shadow.get(dword) {
        Some(value) => *value,
        None => 0,
    }
}

/// Stores `value` in shadow dword `dword`, if the shadow has it.
fn store(shadow: &mut [u32], dword: usize, value: u32) {
    if let Some(slot) = shadow.get_mut(dword) {
        *slot = value;
    }
}

/// Applies a guest write of `value` to region dword `dword` (see [`check_access`]).
///
/// `shadow` must hold [`HdmLayout::region_dwords`] dwords, seeded by [`init_shadow`]; dwords it
/// lacks read as 0 and ignore writes.
pub(crate) fn write(shadow: &mut [u32], layout: &HdmLayout, dword: usize, value: u32) {
    match layout.classify(dword) {
        Target::Discard => {}
        Target::GlobalCtrl => store(shadow, dword, global_ctrl_value(layout.cap, value)),
        // Base and Size are RWL (CXL 3.1 8.2.4.20.5-8): frozen while the decoder is locked,
        // Low words as well as High ones (the v2 seed forgot to check LOCK for the Low words).
        Target::Low { ctrl } => {
            if read(shadow, ctrl) & CXL_HDM_DECODER0_CTRL_LOCK == 0 {
                store(
                    shadow,
                    dword,
                    value & !CXL_HDM_DECODER_BASE_LO_RESERVED_MASK,
                );
            }
        }
        Target::High { ctrl } => {
            if read(shadow, ctrl) & CXL_HDM_DECODER0_CTRL_LOCK == 0 {
                store(shadow, dword, value);
            }
        }
        Target::Ctrl => {
            let current = read(shadow, dword);
            if let Some(new) = decoder_ctrl_value(layout, current, value) {
                store(shadow, dword, new);
            }
        }
    }
}

/// The Global Control value a guest write of `value` leaves, given the HDM capability `cap`.
fn global_ctrl_value(cap: u32, value: u32) -> u32 {
    let mut forced_zero = CXL_HDM_DECODER_GLOBAL_CTRL_RESERVED_MASK;
    if cap & CXL_HDM_DECODER_POISON_ON_DECODE_ERR == 0 {
        forced_zero |= CXL_HDM_DECODER_GLOBAL_CTRL_POISON_EN_BIT;
    }
    value & !forced_zero
}

/// The decoder Control value a guest write of `value` over `current` leaves, or `None` when the
/// write is ignored.
fn decoder_ctrl_value(layout: &HdmLayout, current: u32, value: u32) -> Option<u32> {
    if current & CXL_HDM_DECODER0_CTRL_LOCK != 0 {
        // A locked decoder only accepts unlocking, which leaves every other bit alone: the VMM
        // unlocks a firmware-committed decoder before it reprograms BASE with a guest address.
        if value & CXL_HDM_DECODER0_CTRL_LOCK != 0 {
            return None;
        }
        return Some(current & !CXL_HDM_DECODER0_CTRL_LOCK);
    }
    let mut forced_zero = CXL_HDM_DECODER_CTRL_RESERVED_MASK | CXL_HDM_DECODER_CTRL_DEVICE_RESERVED;
    if layout.cap & CXL_HDM_DECODER_UIO_CAPABLE == 0 {
        forced_zero |= CXL_HDM_DECODER_CTRL_UIO_RESERVED;
    }
    if !layout.cache_capable {
        forced_zero |= CXL_HDM_DECODER_CTRL_BI_RESERVED;
    }
    let keep = CXL_HDM_DECODER_CTRL_RO_BITS_MASK | CXL_HDM_DECODER_CTRL_DEVICE_BITS_RO;
    let new = (value & !forced_zero & !keep) | (current & keep);
    // Commit takes effect at once in the emulation, so the VMM sees COMMITTED follow COMMIT.
    Some(if new & CXL_HDM_DECODER0_CTRL_COMMIT != 0 {
        new | CXL_HDM_DECODER0_CTRL_COMMITTED
    } else {
        new & !CXL_HDM_DECODER0_CTRL_COMMITTED
    })
}

/// A decoder committed by platform firmware: the host physical range the device decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FirmwareDecoder {
    /// Host physical base address.
    pub(crate) base: u64,
    /// Size in bytes.
    pub(crate) size: u64,
}

/// Reads the committed decoder 0 from `snapshot`, a hardware snapshot of the CXL.mem area that
/// covers at least the layout's region. Returns `None` when decoder 0 is not committed or
/// decodes nothing.
pub(crate) fn firmware_decoder(snapshot: &[u32], layout: &HdmLayout) -> Option<FirmwareDecoder> {
    let reg = |offset: usize| snapshot.get(layout.hdm_dword(offset)).copied();
    let ctrl = reg(cxl_hdm_decoder0_ctrl_offset(0))?;
    if ctrl & CXL_HDM_DECODER0_CTRL_COMMITTED == 0 {
        return None;
    }
    let addr = |hi: u32, lo: u32| (u64::from(hi) << 32) | u64::from(lo & 0xf000_0000);
    let base = addr(
        reg(cxl_hdm_decoder0_base_high_offset(0))?,
        reg(cxl_hdm_decoder0_base_low_offset(0))?,
    );
    let size = addr(
        reg(cxl_hdm_decoder0_size_high_offset(0))?,
        reg(cxl_hdm_decoder0_size_low_offset(0))?,
    );
    if size == 0 {
        return None;
    }
    Some(FirmwareDecoder { base, size })
}

/// Seeds `shadow` (see [`write`]) from `snapshot`, a hardware snapshot of the CXL.mem area; at
/// open and after every reset.
///
/// The shadow is a copy of the snapshot (0 where the snapshot is shorter), with these changes:
/// - the HDM capability register is the layout's, which the write rules were validated against;
/// - every decoder's Base Low and Base High read 0, so no host physical address reaches
///   userspace;
/// - every committed decoder reads with LOCK clear, so the VMM can program a guest address.
pub(crate) fn init_shadow(shadow: &mut [u32], snapshot: &[u32], layout: &HdmLayout) {
    for (i, slot) in shadow.iter_mut().enumerate() {
        *slot = read(snapshot, i);
    }
    store(
        shadow,
        layout.hdm_dword(CXL_HDM_DECODER_CAP_OFFSET),
        layout.cap,
    );
    for n in 0..layout.decoder_count {
        store(
            shadow,
            layout.hdm_dword(cxl_hdm_decoder0_base_low_offset(n)),
            0,
        );
        store(
            shadow,
            layout.hdm_dword(cxl_hdm_decoder0_base_high_offset(n)),
            0,
        );
        let ctrl = layout.hdm_dword(cxl_hdm_decoder0_ctrl_offset(n));
        let value = read(shadow, ctrl);
        if value & CXL_HDM_DECODER0_CTRL_COMMITTED != 0 {
            store(shadow, ctrl, value & !CXL_HDM_DECODER0_CTRL_LOCK);
        }
    }
}
