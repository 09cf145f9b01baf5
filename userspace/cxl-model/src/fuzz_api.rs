//! The model as the fuzz targets (`userspace/cxl-model/fuzz`) see it; only with the `fuzz`
//! feature.
//!
//! The model's items are `pub(crate)`, as the kernel driver wants them. These are thin `pub`
//! wrappers: newtypes that forward to the model, and mirrors of its plain data types and errors,
//! with no rule of their own, so that what the targets check is the model itself. The kernel
//! never compiles this file.

use crate::{caparray, comp_regs, dvsec, info, sparse};

// ---------------------------------------------------------------------------------------------
// caparray: capability array, HDM capability, DVSEC header, Register Locator
// ---------------------------------------------------------------------------------------------

/// Mirror of `caparray::CapError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CapError {
    AreaEmpty,
    BadHeaderId(u16),
    EmptyArray,
    ArrayTooLarge(usize),
    PointerOutsideArea(usize),
    MisalignedPointer(usize),
    NoHdm,
    BadDecoderCount(u8),
    HdmOutsideArea(usize),
    HdmOverlapsArray(usize),
    BadDvsecPosition(u16),
    WrongDvsec { vendor: u16, id: u16 },
    RegLocatorTooShort(u16),
    NoRegBlock(u8),
    BadBir(u8),
}

impl From<caparray::CapError> for CapError {
    fn from(e: caparray::CapError) -> Self {
        use caparray::CapError as E;
        match e {
            E::AreaEmpty => Self::AreaEmpty,
            E::BadHeaderId(v) => Self::BadHeaderId(v),
            E::EmptyArray => Self::EmptyArray,
            E::ArrayTooLarge(v) => Self::ArrayTooLarge(v),
            E::PointerOutsideArea(v) => Self::PointerOutsideArea(v),
            E::MisalignedPointer(v) => Self::MisalignedPointer(v),
            E::NoHdm => Self::NoHdm,
            E::BadDecoderCount(v) => Self::BadDecoderCount(v),
            E::HdmOutsideArea(v) => Self::HdmOutsideArea(v),
            E::HdmOverlapsArray(v) => Self::HdmOverlapsArray(v),
            E::BadDvsecPosition(v) => Self::BadDvsecPosition(v),
            E::WrongDvsec { vendor, id } => Self::WrongDvsec { vendor, id },
            E::RegLocatorTooShort(v) => Self::RegLocatorTooShort(v),
            E::NoRegBlock(v) => Self::NoRegBlock(v),
            E::BadBir(v) => Self::BadBir(v),
        }
    }
}

/// Mirror of `caparray::CapArrayHeader`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CapArrayHeader {
    pub id: u16,
    pub version: u8,
    pub cache_mem_version: u8,
    pub array_size: u8,
}

/// Mirror of `caparray::CapEntry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CapEntry {
    pub id: u16,
    pub version: u8,
    pub offset: usize,
}

impl From<caparray::CapEntry> for CapEntry {
    fn from(e: caparray::CapEntry) -> Self {
        Self {
            id: e.id,
            version: e.version,
            offset: e.offset,
        }
    }
}

/// Mirror of `caparray::HdmInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct HdmInfo {
    pub offset: usize,
    pub decoder_count: usize,
    pub cap: u32,
}

impl From<caparray::HdmInfo> for HdmInfo {
    fn from(i: caparray::HdmInfo) -> Self {
        Self {
            offset: i.offset,
            decoder_count: i.decoder_count,
            cap: i.cap,
        }
    }
}

/// `caparray::CapArray`.
#[derive(Clone, Copy, Debug)]
pub struct CapArray<'a>(caparray::CapArray<'a>);

impl<'a> CapArray<'a> {
    /// `CapArray::parse`.
    pub fn parse(area: &'a [u32]) -> Result<Self, CapError> {
        Ok(Self(caparray::CapArray::parse(area)?))
    }

    /// `CapArray::header`.
    pub fn header(&self) -> CapArrayHeader {
        let h = self.0.header();
        CapArrayHeader {
            id: h.id,
            version: h.version,
            cache_mem_version: h.cache_mem_version,
            array_size: h.array_size,
        }
    }

    /// `CapArray::entries`.
    pub fn entries(&self) -> impl Iterator<Item = CapEntry> + 'a {
        self.0.entries().map(CapEntry::from)
    }

    /// `CapArray::find`.
    pub fn find(&self, id: u32) -> Option<CapEntry> {
        self.0.find(id).map(CapEntry::from)
    }

    /// `CapArray::find_hdm`.
    pub fn find_hdm(&self) -> Result<HdmInfo, CapError> {
        Ok(self.0.find_hdm()?.into())
    }
}

/// `caparray::find_hdm`.
pub fn find_hdm(area: &[u32]) -> Result<HdmInfo, CapError> {
    Ok(caparray::find_hdm(area)?.into())
}

/// `caparray::decoder_count`.
pub fn decoder_count(cap: u32) -> Result<usize, CapError> {
    Ok(caparray::decoder_count(cap)?)
}

/// Mirror of `caparray::DvsecHeader`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct DvsecHeader {
    pub vendor: u16,
    pub revision: u8,
    pub length: u16,
    pub id: u16,
}

/// `caparray::DvsecHeader::read`.
pub fn read_dvsec_header(
    base: u16,
    vendor: u16,
    id: u16,
    cfg_read: &mut dyn FnMut(u16, usize) -> u32,
) -> Result<DvsecHeader, CapError> {
    let h = caparray::DvsecHeader::read(base, vendor, id, cfg_read)?;
    Ok(DvsecHeader {
        vendor: h.vendor,
        revision: h.revision,
        length: h.length,
        id: h.id,
    })
}

/// Mirror of `caparray::RegBlock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RegBlock {
    pub bir: u8,
    pub block_id: u8,
    pub offset: u64,
}

/// `caparray::find_reg_block`.
pub fn find_reg_block(
    base: u16,
    block_id: u8,
    cfg_read: &mut dyn FnMut(u16, usize) -> u32,
) -> Result<RegBlock, CapError> {
    let b = caparray::find_reg_block(base, block_id, cfg_read)?;
    Ok(RegBlock {
        bir: b.bir,
        block_id: b.block_id,
        offset: b.offset,
    })
}

// ---------------------------------------------------------------------------------------------
// comp_regs: the COMP_REGS region
// ---------------------------------------------------------------------------------------------

/// Mirror of `comp_regs::AccessError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AccessError {
    Size(usize),
    Misaligned(u64),
    OutOfRange(u64),
}

impl From<comp_regs::AccessError> for AccessError {
    fn from(e: comp_regs::AccessError) -> Self {
        match e {
            comp_regs::AccessError::Size(v) => Self::Size(v),
            comp_regs::AccessError::Misaligned(v) => Self::Misaligned(v),
            comp_regs::AccessError::OutOfRange(v) => Self::OutOfRange(v),
        }
    }
}

/// `comp_regs::check_access`.
pub fn check_access(offset: u64, len: usize, region_size: usize) -> Result<usize, AccessError> {
    Ok(comp_regs::check_access(offset, len, region_size)?)
}

/// `comp_regs::HdmLayout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HdmLayout(comp_regs::HdmLayout);

impl HdmLayout {
    /// `HdmLayout::new`.
    pub fn new(hdm_offset: usize, cap: u32, cache_capable: bool) -> Result<Self, CapError> {
        Ok(Self(comp_regs::HdmLayout::new(
            hdm_offset,
            cap,
            cache_capable,
        )?))
    }

    /// `HdmLayout::from_cm_area`.
    pub fn from_cm_area(area: &[u32], cache_capable: bool) -> Result<Self, CapError> {
        Ok(Self(comp_regs::HdmLayout::from_cm_area(
            area,
            cache_capable,
        )?))
    }

    /// `HdmLayout::hdm_offset`.
    pub fn hdm_offset(&self) -> usize {
        self.0.hdm_offset()
    }

    /// `HdmLayout::decoder_count`.
    pub fn decoder_count(&self) -> usize {
        self.0.decoder_count()
    }

    /// `HdmLayout::cap`.
    pub fn cap(&self) -> u32 {
        self.0.cap()
    }

    /// `HdmLayout::cache_capable`.
    pub fn cache_capable(&self) -> bool {
        self.0.cache_capable()
    }

    /// `HdmLayout::region_size`.
    pub fn region_size(&self) -> usize {
        self.0.region_size()
    }

    /// `HdmLayout::region_dwords`.
    pub fn region_dwords(&self) -> usize {
        self.0.region_dwords()
    }

    /// `HdmLayout::check_access`.
    pub fn check_access(&self, offset: u64, len: usize) -> Result<usize, AccessError> {
        Ok(self.0.check_access(offset, len)?)
    }
}

/// `comp_regs::read`.
pub fn comp_regs_read(shadow: &[u32], dword: usize) -> u32 {
    comp_regs::read(shadow, dword)
}

/// `comp_regs::write`.
pub fn comp_regs_write(shadow: &mut [u32], layout: &HdmLayout, dword: usize, value: u32) {
    comp_regs::write(shadow, &layout.0, dword, value)
}

/// `comp_regs::init_shadow`.
pub fn init_shadow(shadow: &mut [u32], snapshot: &[u32], layout: &HdmLayout) {
    comp_regs::init_shadow(shadow, snapshot, &layout.0)
}

/// `comp_regs::firmware_decoder`: `(base, size)`.
pub fn firmware_decoder(snapshot: &[u32], layout: &HdmLayout) -> Option<(u64, u64)> {
    comp_regs::firmware_decoder(snapshot, &layout.0).map(|d| (d.base, d.size))
}

// ---------------------------------------------------------------------------------------------
// dvsec: the CXL Device DVSEC shadow
// ---------------------------------------------------------------------------------------------

/// Mirror of `dvsec::DvsecError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum DvsecError {
    BadPosition(u16),
    NotCxlDevice { vendor: u16, id: u16 },
    TooShort(u16),
    BadSize(usize),
    OutOfRange(u16),
}

impl From<dvsec::DvsecError> for DvsecError {
    fn from(e: dvsec::DvsecError) -> Self {
        use dvsec::DvsecError as E;
        match e {
            E::BadPosition(v) => Self::BadPosition(v),
            E::NotCxlDevice { vendor, id } => Self::NotCxlDevice { vendor, id },
            E::TooShort(v) => Self::TooShort(v),
            E::BadSize(v) => Self::BadSize(v),
            E::OutOfRange(v) => Self::OutOfRange(v),
        }
    }
}

/// Mirror of `dvsec::HwWrite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct HwWrite {
    pub pos: u16,
    pub value: u16,
}

impl From<dvsec::HwWrite> for HwWrite {
    fn from(w: dvsec::HwWrite) -> Self {
        Self {
            pos: w.pos,
            value: w.value,
        }
    }
}

/// Mirror of `dvsec::PassThrough`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct PassThrough {
    pub pos: u16,
    pub len: usize,
    pub value: u32,
}

/// `dvsec::DvsecWrite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DvsecWrite(dvsec::DvsecWrite);

impl DvsecWrite {
    /// `DvsecWrite::cache_wbi`.
    pub fn cache_wbi(&self) -> Option<HwWrite> {
        self.0.cache_wbi.map(HwWrite::from)
    }

    /// `DvsecWrite::clear_volatile_hdm_error`.
    pub fn clear_volatile_hdm_error(&self) -> Option<HwWrite> {
        self.0.clear_volatile_hdm_error.map(HwWrite::from)
    }

    /// `DvsecWrite::cxl_reset_requested`.
    pub fn cxl_reset_requested(&self) -> bool {
        self.0.cxl_reset_requested
    }

    /// `DvsecWrite::outside`.
    pub fn outside(&self) -> Option<PassThrough> {
        self.0.outside.map(|o| PassThrough {
            pos: o.pos,
            len: o.len,
            value: o.value,
        })
    }

    /// `DvsecWrite::hw_writes`.
    pub fn hw_writes(&self) -> impl Iterator<Item = HwWrite> {
        self.0.hw_writes().map(HwWrite::from)
    }
}

/// `dvsec::DvsecShadow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DvsecShadow(dvsec::DvsecShadow);

impl DvsecShadow {
    /// `DvsecShadow::new`.
    pub fn new(base: u16, cfg_read: &mut dyn FnMut(u16, usize) -> u32) -> Result<Self, DvsecError> {
        Ok(Self(dvsec::DvsecShadow::new(base, cfg_read)?))
    }

    /// `DvsecShadow::base`.
    pub fn base(&self) -> u16 {
        self.0.base()
    }

    /// `DvsecShadow::length`.
    pub fn length(&self) -> u16 {
        self.0.length()
    }

    /// `DvsecShadow::capability`.
    pub fn capability(&self) -> u16 {
        self.0.capability()
    }

    /// `DvsecShadow::cache_capable`.
    pub fn cache_capable(&self) -> bool {
        self.0.cache_capable()
    }

    /// `DvsecShadow::mem_capable`.
    pub fn mem_capable(&self) -> bool {
        self.0.mem_capable()
    }

    /// `DvsecShadow::config_locked`.
    pub fn config_locked(&self) -> bool {
        self.0.config_locked()
    }

    /// `DvsecShadow::overlaps`.
    pub fn overlaps(&self, pos: u16, len: usize) -> bool {
        self.0.overlaps(pos, len)
    }

    /// `DvsecShadow::read`.
    pub fn read(
        &self,
        pos: u16,
        len: usize,
        cfg_read: &mut dyn FnMut(u16, usize) -> u32,
    ) -> Result<u32, DvsecError> {
        Ok(self.0.read(pos, len, cfg_read)?)
    }

    /// `DvsecShadow::write`.
    pub fn write(&mut self, pos: u16, len: usize, value: u32) -> Result<DvsecWrite, DvsecError> {
        Ok(DvsecWrite(self.0.write(pos, len, value)?))
    }
}

// ---------------------------------------------------------------------------------------------
// sparse: the component BAR's mappable areas
// ---------------------------------------------------------------------------------------------

/// `sparse::Area`: `(offset, size)`.
pub type Area = sparse::Area;

/// `sparse::block_range`.
pub fn block_range(bar_size: u64, block_offset: u64) -> (u64, u64) {
    sparse::block_range(bar_size, block_offset)
}

/// `sparse::sparse_areas`.
pub fn sparse_areas(bar_size: u64, block_offset: u64, page: u64) -> [Option<Area>; 2] {
    sparse::sparse_areas(bar_size, block_offset, page)
}

/// `sparse::touches_block`.
pub fn touches_block(bar_size: u64, block_offset: u64, offset: u64, len: u64) -> bool {
    sparse::touches_block(bar_size, block_offset, offset, len)
}

/// `sparse::mmap_allowed`.
pub fn mmap_allowed(bar_size: u64, block_offset: u64, page: u64, offset: u64, len: u64) -> bool {
    sparse::mmap_allowed(bar_size, block_offset, page, offset, len)
}

// ---------------------------------------------------------------------------------------------
// info: the driver's bytes in the info replies
// ---------------------------------------------------------------------------------------------

/// `info::CAP_CXL_SIZE`.
pub const CAP_CXL_SIZE: usize = info::CAP_CXL_SIZE;
/// `info::CAP_SPARSE_MAX`.
pub const CAP_SPARSE_MAX: usize = info::CAP_SPARSE_MAX;
/// `info::CAP_COMP_REGS_SIZE`.
pub const CAP_COMP_REGS_SIZE: usize = info::CAP_COMP_REGS_SIZE;

/// Mirror of `info::CxlCap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CxlCap {
    pub bar: u8,
    pub flags: u32,
    pub hdm_regs_offset: u64,
    pub dpa_region_index: u32,
    pub comp_regs_region_index: u32,
}

impl CxlCap {
    /// `CxlCap::to_bytes`.
    pub fn to_bytes(self, next: u32) -> [u8; CAP_CXL_SIZE] {
        info::CxlCap {
            bar: self.bar,
            flags: self.flags,
            hdm_regs_offset: self.hdm_regs_offset,
            dpa_region_index: self.dpa_region_index,
            comp_regs_region_index: self.comp_regs_region_index,
        }
        .to_bytes(next)
    }
}

/// `info::comp_bar_flags`.
pub fn comp_bar_flags(core_flags: u32, areas: &[Option<(u64, u64)>]) -> u32 {
    info::comp_bar_flags(core_flags, areas)
}

/// `info::sparse_mmap_cap`.
pub fn sparse_mmap_cap(areas: &[Option<(u64, u64)>]) -> Option<([u8; CAP_SPARSE_MAX], usize)> {
    info::sparse_mmap_cap(areas)
}

/// `info::comp_regs_cap`.
pub fn comp_regs_cap(bar: u32, block_offset: u64, block_size: u64) -> [u8; CAP_COMP_REGS_SIZE] {
    info::comp_regs_cap(bar, block_offset, block_size)
}
