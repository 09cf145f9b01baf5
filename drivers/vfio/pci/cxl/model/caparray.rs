// SPDX-License-Identifier: GPL-2.0

//! Parsers for the structures that locate the HDM decoders: the DVSEC header, the Register
//! Locator DVSEC (8.1.9), the CXL.mem capability array (8.2.4) and the HDM Decoder Capability
//! register (8.2.4.20.1).
//!
//! Every input comes from a device the host does not trust, so every function returns an error
//! instead of trusting a count or a pointer: no input makes them index out of bounds or
//! overflow.

use super::regs::*;

/// Why a register structure could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CapError {
    /// The CXL.mem area snapshot holds no dword at all.
    AreaEmpty,
    /// The capability array header does not carry capability id 1.
    BadHeaderId(u16),
    /// The capability array header reports no capability entries.
    EmptyArray,
    /// The capability array (header plus this many entries) runs past the CXL.mem area.
    ArrayTooLarge(usize),
    /// A capability pointer (byte offset in the CXL.mem area) points past the area.
    PointerOutsideArea(usize),
    /// A capability pointer (byte offset in the CXL.mem area) is not dword-aligned.
    MisalignedPointer(usize),
    /// The capability array has no HDM Decoder capability.
    NoHdm,
    /// The HDM Decoder Capability register's Decoder Count field holds a reserved encoding.
    BadDecoderCount(u8),
    /// The HDM decoder block at this byte offset, with its decoders, runs past the area.
    HdmOutsideArea(usize),
    /// The HDM decoder block at this byte offset overlaps the capability array.
    HdmOverlapsArray(usize),
    /// The DVSEC at this config-space position is not dword-aligned in extended config space,
    /// or its length runs past the end of config space.
    BadDvsecPosition(u16),
    /// The DVSEC header names another vendor or DVSEC id than the one looked for.
    WrongDvsec {
        /// The DVSEC Vendor ID found.
        vendor: u16,
        /// The DVSEC ID found.
        id: u16,
    },
    /// The Register Locator DVSEC of this length holds no complete register block entry.
    RegLocatorTooShort(u16),
    /// No register block entry carries this block identifier.
    NoRegBlock(u8),
    /// The only entries with the wanted block identifier name this reserved BAR indicator.
    BadBir(u8),
}

// ---------------------------------------------------------------------------------------------
// DVSEC header and Register Locator
// ---------------------------------------------------------------------------------------------

/// The decoded DVSEC Header 1 and Header 2 registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DvsecHeader {
    /// DVSEC Vendor ID.
    pub(crate) vendor: u16,
    /// DVSEC Revision.
    pub(crate) revision: u8,
    /// DVSEC Length in bytes, from the extended capability header on.
    pub(crate) length: u16,
    /// DVSEC ID.
    pub(crate) id: u16,
}

impl DvsecHeader {
    /// Decodes DVSEC Header 1 (the dword at +0x4) and Header 2 (the dword at +0x8; only its low
    /// half belongs to the header).
    pub(crate) const fn decode(header1: u32, header2: u32) -> Self {
        // The fields are at most 16 bits wide, so the narrowing casts are exact.
        Self {
            vendor: field_get(header1, PCI_DVSEC_HEADER1_VID_MASK) as u16,
            revision: field_get(header1, PCI_DVSEC_HEADER1_REV_MASK) as u8,
            length: field_get(header1, PCI_DVSEC_HEADER1_LEN_MASK) as u16,
            id: field_get(header2, PCI_DVSEC_HEADER2_ID_MASK) as u16,
        }
    }

    /// Reads and decodes the header of the DVSEC at config-space position `base` and checks that
    /// it is the DVSEC `(vendor, id)` and that it lies inside extended config space.
    ///
    /// `cfg_read(pos, size)` returns the `size`-byte (1, 2 or 4) config register at absolute
    /// position `pos`; it is only called with naturally aligned positions.
    pub(crate) fn read(
        base: u16,
        vendor: u16,
        id: u16,
        cfg_read: &mut dyn FnMut(u16, usize) -> u32,
    ) -> Result<Self, CapError> {
        if !dvsec_base_valid(base) {
            return Err(CapError::BadDvsecPosition(base));
        }
        // base < 0x1000, so these additions cannot overflow a u16.
        let header = Self::decode(
            cfg_read(base + PCI_DVSEC_HEADER1, 4),
            cfg_read(base + PCI_DVSEC_HEADER2, 4),
        );
        if header.vendor != vendor || header.id != id {
            return Err(CapError::WrongDvsec {
                vendor: header.vendor,
                id: header.id,
            });
        }
        if !dvsec_fits(base, header.length) {
            return Err(CapError::BadDvsecPosition(base));
        }
        Ok(header)
    }
}

/// Whether a DVSEC may start at config-space position `base`: extended capabilities live at
/// dword-aligned positions in 0x100..0x1000, and the DVSEC header, up to the dword holding
/// Header 2, must end inside config space before it is read.
pub(crate) const fn dvsec_base_valid(base: u16) -> bool {
    base % 4 == 0
        && base >= PCI_CFG_SPACE_SIZE
        && base <= PCI_CFG_SPACE_EXP_SIZE - (PCI_DVSEC_HEADER2 + 4)
}

/// Whether a DVSEC of `length` bytes at `base` ends inside extended config space.
pub(crate) const fn dvsec_fits(base: u16, length: u16) -> bool {
    // Widened: base + length may exceed u16::MAX for a hostile length.
    base as u32 + length as u32 <= PCI_CFG_SPACE_EXP_SIZE as u32
}

/// One decoded Register Locator entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RegBlock {
    /// Register BIR: the index of the BAR holding the block.
    pub(crate) bir: u8,
    /// Register Block Identifier (`CXL_REGLOC_RBI_*`).
    pub(crate) block_id: u8,
    /// Offset of the block within the BAR (64 KiB aligned by construction).
    pub(crate) offset: u64,
}

impl RegBlock {
    /// Decodes a Register Offset Low / Register Offset High pair.
    pub(crate) const fn decode(lo: u32, hi: u32) -> Self {
        Self {
            bir: field_get(lo, CXL_DVSEC_REG_LOCATOR_BIR_MASK) as u8,
            block_id: field_get(lo, CXL_DVSEC_REG_LOCATOR_BLOCK_ID_MASK) as u8,
            offset: ((hi as u64) << 32) | (lo & CXL_DVSEC_REG_LOCATOR_BLOCK_OFF_LOW_MASK) as u64,
        }
    }
}

/// Number of complete register block entries in a Register Locator DVSEC of `length` bytes.
pub(crate) const fn reg_locator_entry_count(length: u16) -> usize {
    (length.saturating_sub(CXL_DVSEC_REG_LOCATOR_BLOCK1_OFFSET) / CXL_DVSEC_REG_LOCATOR_ENTRY_SIZE)
        as usize
}

/// Finds the first usable entry with identifier `block_id` in the Register Locator DVSEC at
/// config-space position `base`. Entries naming a reserved BIR (above 5) are skipped.
///
/// `cfg_read` is as for [`DvsecHeader::read`].
pub(crate) fn find_reg_block(
    base: u16,
    block_id: u8,
    cfg_read: &mut dyn FnMut(u16, usize) -> u32,
) -> Result<RegBlock, CapError> {
    let header = DvsecHeader::read(base, PCI_VENDOR_ID_CXL, CXL_DVSEC_REG_LOCATOR, cfg_read)?;
    let count = reg_locator_entry_count(header.length);
    if count == 0 {
        return Err(CapError::RegLocatorTooShort(header.length));
    }
    let mut bad_bir = None;
    let mut pos = base + CXL_DVSEC_REG_LOCATOR_BLOCK1_OFFSET;
    for _ in 0..count {
        // DvsecHeader::read checked that every entry ends below 0x1000: no overflow here.
        let block = RegBlock::decode(cfg_read(pos, 4), cfg_read(pos + 4, 4));
        pos += CXL_DVSEC_REG_LOCATOR_ENTRY_SIZE;
        if block.block_id != block_id {
            continue;
        }
        if block.bir > CXL_DVSEC_REG_LOCATOR_BIR_MAX {
            bad_bir = Some(block.bir);
            continue;
        }
        return Ok(block);
    }
    Err(match bad_bir {
        Some(bir) => CapError::BadBir(bir),
        None => CapError::NoRegBlock(block_id),
    })
}

/// Finds the component register block through the Register Locator DVSEC at `base`.
pub(crate) fn find_component_regs(
    base: u16,
    cfg_read: &mut dyn FnMut(u16, usize) -> u32,
) -> Result<RegBlock, CapError> {
    find_reg_block(base, CXL_REGLOC_RBI_COMPONENT, cfg_read)
}

// ---------------------------------------------------------------------------------------------
// CXL.mem capability array
// ---------------------------------------------------------------------------------------------

/// The decoded CXL Capability Header (the dword at +0 of the CXL.mem area).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CapArrayHeader {
    /// CXL_Capability_ID; 1 for a valid array.
    pub(crate) id: u16,
    /// CXL_Capability_Version.
    pub(crate) version: u8,
    /// CXL_Cache_Mem_Version.
    pub(crate) cache_mem_version: u8,
    /// Array_Size: the number of entries after the header.
    pub(crate) array_size: u8,
}

impl CapArrayHeader {
    /// Decodes the capability array header.
    pub(crate) const fn decode(header: u32) -> Self {
        Self {
            id: field_get(header, CXL_CM_CAP_HDR_ID_MASK) as u16,
            version: field_get(header, CXL_CM_CAP_HDR_VERSION_MASK) as u8,
            cache_mem_version: field_get(header, CXL_CM_CAP_HDR_CACHE_MEM_VERSION_MASK) as u8,
            array_size: field_get(header, CXL_CM_CAP_HDR_ARRAY_SIZE_MASK) as u8,
        }
    }
}

/// One decoded capability array entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CapEntry {
    /// Capability id (`CXL_CM_CAP_CAP_ID_*`).
    pub(crate) id: u16,
    /// Capability version.
    pub(crate) version: u8,
    /// Byte offset of the capability structure from the start of the CXL.mem area.
    pub(crate) offset: usize,
}

impl CapEntry {
    /// Decodes a capability array entry.
    pub(crate) const fn decode(entry: u32) -> Self {
        Self {
            id: field_get(entry, CXL_CM_CAP_HDR_ID_MASK) as u16,
            version: field_get(entry, CXL_CM_CAP_HDR_VERSION_MASK) as u8,
            offset: field_get(entry, CXL_CM_CAP_PTR_MASK) as usize,
        }
    }
}

/// A validated capability array over a snapshot of the CXL.mem area.
///
/// Invariant: the header has id 1, 1 to 255 entries, all inside `area`, and each entry points at
/// a dword-aligned offset whose first dword is inside `area`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CapArray<'a> {
    /// The CXL.mem area, dword by dword, starting at the array header.
    area: &'a [u32],
    /// The decoded header.
    header: CapArrayHeader,
}

impl<'a> CapArray<'a> {
    /// Validates the capability array at the start of `area`, a snapshot of the CXL.mem area
    /// (normally [`CXL_CM_SIZE`] bytes read from the component block at [`CXL_CM_OFFSET`]).
    pub(crate) fn parse(area: &'a [u32]) -> Result<Self, CapError> {
        let first = area.first().ok_or(CapError::AreaEmpty)?;
        let header = CapArrayHeader::decode(*first);
        if u32::from(header.id) != CXL_CM_CAP_HDR_CAP_ID {
            return Err(CapError::BadHeaderId(header.id));
        }
        let size = usize::from(header.array_size);
        if size == 0 {
            return Err(CapError::EmptyArray);
        }
        // The entries are dwords 1..=size.
        let entries = area.get(1..=size).ok_or(CapError::ArrayTooLarge(size))?;
        for entry in entries.iter().map(|e| CapEntry::decode(*e)) {
            if entry.offset % CXL_CM_CAP_ENTRY_SIZE != 0 {
                return Err(CapError::MisalignedPointer(entry.offset));
            }
            if area.get(entry.offset / 4).is_none() {
                return Err(CapError::PointerOutsideArea(entry.offset));
            }
        }
        Ok(Self { area, header })
    }

    /// The decoded array header.
    pub(crate) fn header(&self) -> CapArrayHeader {
        self.header
    }

    /// The capability entries, in array order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = CapEntry> + 'a {
        let area: &'a [u32] = self.area;
        area.iter()
            .skip(1)
            .take(usize::from(self.header.array_size))
            .map(|e| CapEntry::decode(*e))
    }

    /// The first entry with capability id `id`.
    pub(crate) fn find(&self, id: u32) -> Option<CapEntry> {
        self.entries().find(|e| u32::from(e.id) == id)
    }

    /// Locates and validates the HDM decoder capability.
    pub(crate) fn find_hdm(&self) -> Result<HdmInfo, CapError> {
        let entry = self.find(CXL_CM_CAP_CAP_ID_HDM).ok_or(CapError::NoHdm)?;
        // The header and its entries occupy dwords 0..=array_size.
        let array_end = (usize::from(self.header.array_size) + 1) * CXL_CM_CAP_ENTRY_SIZE;
        if entry.offset < array_end {
            return Err(CapError::HdmOverlapsArray(entry.offset));
        }
        // parse() checked that the pointed-to dword exists.
        let cap = self
            .area
            .get(entry.offset / 4)
            .copied()
            .ok_or(CapError::PointerOutsideArea(entry.offset))?;
        let decoder_count = decoder_count(cap)?;
        let area_bytes = self.area.len().saturating_mul(4);
        match entry.offset.checked_add(hdm_block_size(decoder_count)) {
            Some(end) if end <= area_bytes => Ok(HdmInfo {
                offset: entry.offset,
                decoder_count,
                cap,
            }),
            _ => Err(CapError::HdmOutsideArea(entry.offset)),
        }
    }
}

/// Where the HDM decoders are and how many there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HdmInfo {
    /// Byte offset of the HDM decoder capability structure from the start of the CXL.mem area.
    pub(crate) offset: usize,
    /// Number of decoders, 1 to 32.
    pub(crate) decoder_count: usize,
    /// The HDM Decoder Capability register.
    pub(crate) cap: u32,
}

/// Parses the capability array at the start of `area` (a CXL.mem area snapshot) and locates the
/// HDM decoder capability.
pub(crate) fn find_hdm(area: &[u32]) -> Result<HdmInfo, CapError> {
    CapArray::parse(area)?.find_hdm()
}

/// Decodes the Decoder Count field of an HDM Decoder Capability register (8.2.4.20.1).
///
/// 0 means 1 decoder and 1 to 8 mean twice the value; 9 to 0xC mean 20, 24, 28 and 32; 0xD to
/// 0xF are reserved and rejected.
pub(crate) const fn decoder_count(cap: u32) -> Result<usize, CapError> {
    let encoded = field_get(cap, CXL_HDM_DECODER_COUNT_MASK);
    match encoded {
        0 => Ok(1),
        1..=8 => Ok(encoded as usize * 2),
        // Above 16 decoders the encoding steps by 4, not 2 (CXL r3.0 on).
        9..=12 => Ok((encoded as usize - 4) * 4),
        _ => Err(CapError::BadDecoderCount(encoded as u8)),
    }
}

/// Size in bytes of an HDM decoder capability structure with `decoder_count` decoders.
pub(crate) const fn hdm_block_size(decoder_count: usize) -> usize {
    CXL_HDM_DECODER_BLOCK_STRIDE
        .saturating_mul(decoder_count)
        .saturating_add(CXL_HDM_DECODER_FIRST_BLOCK_OFFSET)
}
