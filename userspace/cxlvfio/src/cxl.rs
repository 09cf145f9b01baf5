//! CXL register layouts and the guest-visible rules of `cxl-vfio-pci`, for tests.
//!
//! Two reference models written from the driver's ABI, not from its code:
//!
//! - [`CompRegsModel`]: the COMP_REGS region (CXL Capability Array followed by the
//!   HDM Decoder Capability structure), what each 4-byte write leaves behind;
//! - [`DvsecModel`]: the CXL Device DVSEC as the VFIO config region shows it, what
//!   each 1-, 2- or 4-byte write (possibly straddling registers) leaves behind.
//!
//! A test applies every write it issues to the model too and compares what the
//! device reads back with the model's prediction. Plus the parsers (capability
//! array, HDM decoder count) and a few raw-I/O helpers that report exactly what
//! one `pread`/`pwrite`/`mmap` returned, which [`Device::read_region`] hides.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;

use crate::uapi::{PCI_VENDOR_ID_CXL, VFIO_REGION_TYPE_PCI_VENDOR_TYPE};

// ---------------------------------------------------------------------------
// COMP_REGS region: capability array and HDM decoder registers (CXL 3.1 8.2.4)
// ---------------------------------------------------------------------------

/// The region type of the CXL regions: vendor type with the CXL consortium's ID.
pub const VFIO_REGION_TYPE_CXL: u32 = VFIO_REGION_TYPE_PCI_VENDOR_TYPE | PCI_VENDOR_ID_CXL;

/// Capability ID in bits 15:0 of the capability array header (`CXL_CM_CAP_HDR_CAP_ID`).
pub const CXL_CM_CAP_HDR_CAP_ID: u16 = 1;
/// Capability ID of the CXL RAS capability.
pub const CXL_CM_CAP_CAP_ID_RAS: u16 = 2;
/// Capability ID of the CXL Link capability.
pub const CXL_CM_CAP_CAP_ID_LINK: u16 = 4;
/// Capability ID of the CXL HDM Decoder capability.
pub const CXL_CM_CAP_CAP_ID_HDM: u16 = 5;

/// HDM block: HDM Decoder Capability register.
pub const HDM_CAP: usize = 0x0;
/// HDM block: HDM Decoder Global Control register.
pub const HDM_GLOBAL_CTRL: usize = 0x4;
/// HDM block: first reserved dword after Global Control.
pub const HDM_RSVD_8: usize = 0x8;
/// HDM block: second reserved dword after Global Control.
pub const HDM_RSVD_C: usize = 0xc;
/// HDM block: decoder 0 starts here.
pub const HDM_DECODER_FIRST: usize = 0x10;
/// HDM block: distance between decoders.
pub const HDM_DECODER_STRIDE: usize = 0x20;

/// Decoder register: Base Low.
pub const DEC_BASE_LO: usize = 0x0;
/// Decoder register: Base High.
pub const DEC_BASE_HI: usize = 0x4;
/// Decoder register: Size Low.
pub const DEC_SIZE_LO: usize = 0x8;
/// Decoder register: Size High.
pub const DEC_SIZE_HI: usize = 0xc;
/// Decoder register: Control.
pub const DEC_CTRL: usize = 0x10;
/// Decoder register: Target List Low / DPA Skip Low.
pub const DEC_TL_LO: usize = 0x14;
/// Decoder register: Target List High / DPA Skip High.
pub const DEC_TL_HI: usize = 0x18;
/// Decoder register: reserved.
pub const DEC_RSVD: usize = 0x1c;

/// HDM Decoder Capability: Poison On Decode Error capable.
pub const HDM_CAP_POISON_ON_ERR: u32 = 1 << 10;
/// HDM Decoder Capability: UIO capable.
pub const HDM_CAP_UIO: u32 = 1 << 13;
/// Global Control: Poison On Decode Error Enable.
pub const HDM_GLOBAL_POISON_EN: u32 = 1 << 0;
/// Global Control: HDM Decoder Enable.
pub const HDM_GLOBAL_ENABLE: u32 = 1 << 1;

/// Decoder Control: Lock On Commit.
pub const CTRL_LOCK: u32 = 1 << 8;
/// Decoder Control: Commit.
pub const CTRL_COMMIT: u32 = 1 << 9;
/// Decoder Control: Committed.
pub const CTRL_COMMITTED: u32 = 1 << 10;
/// Decoder Control: Error Not Committed.
pub const CTRL_ERR_NOT_COMMITTED: u32 = 1 << 11;
/// Decoder Control: Target Device Type.
pub const CTRL_TARGET_TYPE: u32 = 1 << 12;
/// Decoder Control: BI.
pub const CTRL_BI: u32 = 1 << 13;
/// Decoder Control: UIO.
pub const CTRL_UIO: u32 = 1 << 14;
/// Decoder Control: always-zero bits 15, 19:16, 23:20 and 31:28.
pub const CTRL_RESERVED: u32 = (1 << 15) | 0x000f_0000 | 0x00f0_0000 | 0xf000_0000;
/// Decoder Control: UIO Interleave Ways, bits 27:24 (zero unless UIO capable).
pub const CTRL_UIG_UIW: u32 = 0x0f00_0000;
/// Base Low / Size Low: only bits 31:28 hold address bits.
pub const LOW_ADDR_MASK: u32 = 0xf000_0000;

/// One entry of a CXL Capability Array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapEntry {
    /// Capability ID (bits 15:0).
    pub id: u16,
    /// Capability version (bits 19:16).
    pub version: u8,
    /// Byte offset of the capability from the start of the array (bits 31:20).
    pub offset: usize,
}

/// A parsed CXL Capability Array (CXL.cache/mem area, CXL 3.1 8.2.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapArray {
    /// The header dword.
    pub header: u32,
    /// The entries, in array order.
    pub entries: Vec<CapEntry>,
}

impl CapArray {
    /// Array size from the header: number of entries after it (bits 31:24).
    pub fn array_size(header: u32) -> usize {
        (header >> 24) as usize
    }

    /// Parses `dwords`, which start with the header and must hold all its entries.
    pub fn parse(dwords: &[u32]) -> Result<CapArray, String> {
        let header = *dwords.first().ok_or("empty capability array")?;
        let id = (header & 0xffff) as u16;
        if id != CXL_CM_CAP_HDR_CAP_ID {
            return Err(format!(
                "header {header:#010x}: capability id {id:#x}, expected {CXL_CM_CAP_HDR_CAP_ID:#x}"
            ));
        }
        let n = Self::array_size(header);
        if n == 0 {
            return Err(format!("header {header:#010x}: array size 0"));
        }
        if dwords.len() < n + 1 {
            return Err(format!(
                "header {header:#010x} announces {n} entries, only {} dwords given",
                dwords.len() - 1
            ));
        }
        let entries = dwords[1..=n]
            .iter()
            .map(|&e| CapEntry {
                id: (e & 0xffff) as u16,
                version: ((e >> 16) & 0xf) as u8,
                offset: (e >> 20) as usize,
            })
            .collect();
        Ok(CapArray { header, entries })
    }

    /// The first entry with capability `id`.
    pub fn find(&self, id: u16) -> Option<&CapEntry> {
        self.entries.iter().find(|e| e.id == id)
    }
}

/// Decoder count encoded in HDM Decoder Capability bits 3:0 (0 means 1, n
/// means 2n up to 8, then 20, 24, 28, 32); `None` for a reserved encoding.
pub fn hdm_decoder_count(cap: u32) -> Option<usize> {
    match (cap & 0xf) as usize {
        0 => Some(1),
        n @ 1..=8 => Some(2 * n),
        n @ 9..=12 => Some(4 * (n - 4)),
        _ => None,
    }
}

/// Size of an HDM decoder block with `count` decoders.
pub const fn hdm_block_size(count: usize) -> usize {
    HDM_DECODER_FIRST + HDM_DECODER_STRIDE * count
}

/// Where the HDM block sits in the COMP_REGS region and what the device supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HdmLayout {
    /// Byte offset of the HDM block from region offset 0.
    pub hdm_offset: usize,
    /// Number of decoders.
    pub count: usize,
    /// HDM Decoder Capability register.
    pub cap: u32,
    /// CXL.cache capable (DVSEC Capability bit 0).
    pub cache_capable: bool,
}

impl HdmLayout {
    /// Region size the ABI requires: the HDM block's offset plus the block.
    pub fn region_size(&self) -> usize {
        self.hdm_offset + hdm_block_size(self.count)
    }

    /// Byte offset in the region of HDM block register `reg`.
    pub fn hdm_reg(&self, reg: usize) -> usize {
        self.hdm_offset + reg
    }

    /// Byte offset in the region of register `reg` (`DEC_*`) of decoder `n`.
    pub fn dec_reg(&self, n: usize, reg: usize) -> usize {
        self.hdm_offset + HDM_DECODER_FIRST + HDM_DECODER_STRIDE * n + reg
    }

    /// A readable name for the register at byte `offset` of the region.
    pub fn reg_name(&self, offset: usize) -> String {
        let Some(rel) = offset.checked_sub(self.hdm_offset) else {
            return format!("cap array +{offset:#x}");
        };
        match rel {
            HDM_CAP => "HDM capability".to_string(),
            HDM_GLOBAL_CTRL => "HDM global control".to_string(),
            HDM_RSVD_8 | HDM_RSVD_C => format!("HDM reserved +{rel:#x}"),
            _ => {
                let d = rel - HDM_DECODER_FIRST;
                let name = match d % HDM_DECODER_STRIDE {
                    DEC_BASE_LO => "BASE_LO",
                    DEC_BASE_HI => "BASE_HI",
                    DEC_SIZE_LO => "SIZE_LO",
                    DEC_SIZE_HI => "SIZE_HI",
                    DEC_CTRL => "CTRL",
                    DEC_TL_LO => "TARGET_LIST_LO/DPA_SKIP_LO",
                    DEC_TL_HI => "TARGET_LIST_HI/DPA_SKIP_HI",
                    _ => "reserved",
                };
                format!("decoder {} {name}", d / HDM_DECODER_STRIDE)
            }
        }
    }
}

/// Global Control after a write of `value`, per the ABI.
pub fn expected_global_ctrl(cap: u32, value: u32) -> u32 {
    let mut keep = HDM_GLOBAL_POISON_EN | HDM_GLOBAL_ENABLE;
    if cap & HDM_CAP_POISON_ON_ERR == 0 {
        keep &= !HDM_GLOBAL_POISON_EN;
    }
    value & keep
}

/// Decoder Control after a write of `value` over `current`, per the ABI.
pub fn expected_decoder_ctrl(layout: &HdmLayout, current: u32, value: u32) -> u32 {
    if current & CTRL_LOCK != 0 {
        return if value & CTRL_LOCK != 0 {
            current
        } else {
            current & !CTRL_LOCK
        };
    }
    let mut forced_zero = CTRL_RESERVED;
    if layout.cap & HDM_CAP_UIO == 0 {
        forced_zero |= CTRL_UIO | CTRL_UIG_UIW;
    }
    if !layout.cache_capable {
        forced_zero |= CTRL_BI;
    }
    let keep = CTRL_COMMITTED | CTRL_ERR_NOT_COMMITTED | CTRL_TARGET_TYPE;
    let new = (value & !forced_zero & !keep) | (current & keep);
    if new & CTRL_COMMIT != 0 {
        new | CTRL_COMMITTED
    } else {
        new & !CTRL_COMMITTED
    }
}

/// The expected contents of the COMP_REGS region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompRegsModel {
    /// The layout the rules depend on.
    pub layout: HdmLayout,
    /// One value per dword of the region.
    pub regs: Vec<u32>,
}

impl CompRegsModel {
    /// A model starting from `regs`, the region as read (one dword each).
    pub fn new(layout: HdmLayout, regs: Vec<u32>) -> Self {
        CompRegsModel { layout, regs }
    }

    /// The dword at byte `offset`.
    pub fn get(&self, offset: usize) -> u32 {
        self.regs[offset / 4]
    }

    /// Applies a 4-byte write of `value` at byte `offset` (4-aligned, in the region).
    pub fn write(&mut self, offset: usize, value: u32) {
        let l = self.layout;
        let Some(rel) = offset.checked_sub(l.hdm_offset) else {
            return; // The capability array and anything before the HDM block.
        };
        let new = match rel {
            HDM_GLOBAL_CTRL => expected_global_ctrl(l.cap, value),
            r if r < HDM_DECODER_FIRST => return, // Capability, reserved.
            r => {
                let n = (r - HDM_DECODER_FIRST) / HDM_DECODER_STRIDE;
                if n >= l.count {
                    return;
                }
                let ctrl = self.get(l.dec_reg(n, DEC_CTRL));
                let locked = ctrl & CTRL_LOCK != 0;
                match (r - HDM_DECODER_FIRST) % HDM_DECODER_STRIDE {
                    DEC_BASE_LO | DEC_SIZE_LO if !locked => value & LOW_ADDR_MASK,
                    DEC_BASE_HI | DEC_SIZE_HI if !locked => value,
                    DEC_CTRL => expected_decoder_ctrl(&l, ctrl, value),
                    _ => return,
                }
            }
        };
        self.regs[offset / 4] = new;
    }

    /// Differences between `actual` (the region as read) and the model, one line each.
    pub fn diff(&self, actual: &[u32]) -> Vec<String> {
        let mut out = Vec::new();
        if actual.len() != self.regs.len() {
            out.push(format!(
                "read {} dwords, model has {}",
                actual.len(),
                self.regs.len()
            ));
        }
        for (i, (a, m)) in actual.iter().zip(&self.regs).enumerate() {
            if a != m {
                out.push(format!(
                    "+{:#05x} ({}): read {a:#010x}, expected {m:#010x}",
                    i * 4,
                    self.layout.reg_name(i * 4)
                ));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// CXL Device DVSEC (CXL 3.1 8.1.3)
// ---------------------------------------------------------------------------

/// DVSEC Vendor ID of CXL DVSECs.
pub const DVSEC_VENDOR_CXL: u16 = 0x1e98;
/// DVSEC ID of the PCIe DVSEC for CXL Devices.
pub const DVSEC_ID_CXL_DEVICE: u16 = 0;
/// PCI Express extended capability ID of a DVSEC.
pub const PCI_EXT_CAP_ID_DVSEC: u16 = 0x23;

/// DVSEC register: CXL Capability.
pub const DVSEC_CAPABILITY: usize = 0xa;
/// DVSEC register: CXL Control.
pub const DVSEC_CONTROL: usize = 0xc;
/// DVSEC register: CXL Status.
pub const DVSEC_STATUS: usize = 0xe;
/// DVSEC register: CXL Control2.
pub const DVSEC_CONTROL2: usize = 0x10;
/// DVSEC register: CXL Status2.
pub const DVSEC_STATUS2: usize = 0x12;
/// DVSEC register: CXL Lock.
pub const DVSEC_LOCK: usize = 0x14;
/// DVSEC register: CXL Capability2.
pub const DVSEC_CAPABILITY2: usize = 0x16;
/// DVSEC register: Range 1 Size High.
pub const DVSEC_RANGE1_SIZE_HI: usize = 0x18;
/// DVSEC register: Range 1 Size Low.
pub const DVSEC_RANGE1_SIZE_LO: usize = 0x1c;
/// DVSEC register: Range 1 Base High.
pub const DVSEC_RANGE1_BASE_HI: usize = 0x20;
/// DVSEC register: Range 1 Base Low.
pub const DVSEC_RANGE1_BASE_LO: usize = 0x24;
/// DVSEC register: Range 2 Size High.
pub const DVSEC_RANGE2_SIZE_HI: usize = 0x28;
/// DVSEC register: Range 2 Size Low.
pub const DVSEC_RANGE2_SIZE_LO: usize = 0x2c;
/// DVSEC register: Range 2 Base High.
pub const DVSEC_RANGE2_BASE_HI: usize = 0x30;
/// DVSEC register: Range 2 Base Low.
pub const DVSEC_RANGE2_BASE_LO: usize = 0x34;
/// DVSEC register: CXL Capability3 (only in DVSECs at least 0x3A long).
pub const DVSEC_CAPABILITY3: usize = 0x38;

/// Capability: Cache_Capable.
pub const DVSEC_CAP_CACHE: u16 = 1 << 0;
/// Control: IO_Enable, always reads 1.
pub const DVSEC_CTRL_IO_ENABLE: u16 = 1 << 1;
/// Control: Direct P2P Mem Enable (reserved unless Capability3 bit 4).
pub const DVSEC_CTRL_P2P_MEM: u16 = 1 << 12;
/// Control: reserved bits 13 and 15.
pub const DVSEC_CTRL_RESERVED: u16 = (1 << 13) | (1 << 15);
/// Status: Viral_Status (write 1 to clear).
pub const DVSEC_STATUS_VIRAL: u16 = 1 << 14;
/// Control2: Initiate Cache Write Back and Invalidate (reads 0).
pub const DVSEC_CTRL2_CACHE_WBI: u16 = 1 << 1;
/// Control2: Initiate CXL Reset (reads 0, not forwarded).
pub const DVSEC_CTRL2_CXL_RESET: u16 = 1 << 2;
/// Control2: Desired Volatile HDM State after Hot Reset (Capability3 bit 3).
pub const DVSEC_CTRL2_VOLATILE_HDM: u16 = 1 << 4;
/// Control2: Modified Completion Enable (Capability2 bit 6).
pub const DVSEC_CTRL2_MOD_COMPLETION: u16 = 1 << 5;
/// Control2: reserved bits 15:6.
pub const DVSEC_CTRL2_RESERVED: u16 = 0xffc0;
/// Status2: Volatile HDM Preservation Error (the only forwardable Status2 bit).
pub const DVSEC_STATUS2_VOLATILE_HDM_ERR: u16 = 1 << 3;
/// Lock: CONFIG_LOCK.
pub const DVSEC_LOCK_CONFIG: u16 = 1 << 0;
/// Capability2: Modified Completion Capable.
pub const DVSEC_CAP2_MOD_COMPLETION: u16 = 1 << 6;
/// Capability3: Volatile HDM State after Hot Reset - Configurability.
pub const DVSEC_CAP3_VOLATILE_HDM: u16 = 1 << 3;
/// Capability3: Direct P2P Mem Capable.
pub const DVSEC_CAP3_P2P_MEM: u16 = 1 << 4;
/// Range Base Low: bits 27:0 read 0.
pub const RANGE_BASE_LO_MASK: u32 = 0xf000_0000;

/// The virtualized DVSEC registers, as `(offset, size)`.
pub const DVSEC_SHADOWED: &[(usize, usize)] = &[
    (DVSEC_CONTROL, 2),
    (DVSEC_STATUS, 2),
    (DVSEC_CONTROL2, 2),
    (DVSEC_LOCK, 2),
    (DVSEC_RANGE1_BASE_HI, 4),
    (DVSEC_RANGE1_BASE_LO, 4),
    (DVSEC_RANGE2_BASE_HI, 4),
    (DVSEC_RANGE2_BASE_LO, 4),
];

/// Whether DVSEC byte `rel` belongs to a virtualized register.
pub fn dvsec_byte_shadowed(rel: usize) -> bool {
    DVSEC_SHADOWED
        .iter()
        .any(|&(o, s)| (o..o + s).contains(&rel))
}

/// The DVSEC's registers at their natural size, as `(offset, size)`, covering
/// `len` bytes: the headers and the 32-bit Range registers as dwords, the 16-bit
/// registers (Header 2 to Capability2, Capability3 onwards) as words.
pub fn dvsec_registers(len: usize) -> Vec<(usize, usize)> {
    let mut regs = Vec::new();
    let mut off = 0;
    while off < len {
        let natural = if off < 0x8 || (DVSEC_RANGE1_SIZE_HI..DVSEC_CAPABILITY3).contains(&off) {
            4
        } else {
            2
        };
        let size = natural.min(len - off);
        regs.push((off, size));
        off += size;
    }
    regs
}

/// Name of the DVSEC register holding byte `rel`.
pub fn dvsec_reg_name(rel: usize) -> &'static str {
    match rel {
        0x0..=0x3 => "ext cap header",
        0x4..=0x7 => "DVSEC header 1",
        0x8..=0x9 => "DVSEC header 2",
        0xa..=0xb => "Capability",
        0xc..=0xd => "Control",
        0xe..=0xf => "Status",
        0x10..=0x11 => "Control2",
        0x12..=0x13 => "Status2",
        0x14..=0x15 => "Lock",
        0x16..=0x17 => "Capability2",
        0x18..=0x1b => "Range 1 Size High",
        0x1c..=0x1f => "Range 1 Size Low",
        0x20..=0x23 => "Range 1 Base High",
        0x24..=0x27 => "Range 1 Base Low",
        0x28..=0x2b => "Range 2 Size High",
        0x2c..=0x2f => "Range 2 Size Low",
        0x30..=0x33 => "Range 2 Base High",
        0x34..=0x37 => "Range 2 Base Low",
        0x38..=0x39 => "Capability3",
        _ => "beyond Capability3",
    }
}

/// Control after a write of `value` (all 16 bits, merged), per the ABI.
pub fn expected_dvsec_control(cap3: u16, value: u16) -> u16 {
    let mut forced_zero = DVSEC_CTRL_RESERVED;
    if cap3 & DVSEC_CAP3_P2P_MEM == 0 {
        forced_zero |= DVSEC_CTRL_P2P_MEM;
    }
    (value & !forced_zero) | DVSEC_CTRL_IO_ENABLE
}

/// Control2 after a write of `value` (all 16 bits, merged), per the ABI.
pub fn expected_dvsec_control2(cap2: u16, cap3: u16, value: u16) -> u16 {
    let mut forced_zero = DVSEC_CTRL2_RESERVED | DVSEC_CTRL2_CACHE_WBI | DVSEC_CTRL2_CXL_RESET;
    if cap3 & DVSEC_CAP3_VOLATILE_HDM == 0 {
        forced_zero |= DVSEC_CTRL2_VOLATILE_HDM;
    }
    if cap2 & DVSEC_CAP2_MOD_COMPLETION == 0 {
        forced_zero |= DVSEC_CTRL2_MOD_COMPLETION;
    }
    value & !forced_zero
}

/// The guest view of the CXL Device DVSEC: the virtualized registers, over
/// hardware bytes for everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DvsecModel {
    /// DVSEC length in bytes.
    pub length: usize,
    /// Capability2 (read-only, from the hardware).
    pub cap2: u16,
    /// Capability3, 0 when the DVSEC is too short to have it.
    pub cap3: u16,
    /// Control.
    pub control: u16,
    /// Status.
    pub status: u16,
    /// Control2.
    pub control2: u16,
    /// Lock.
    pub lock: u16,
    /// Range 1 Base High, Range 1 Base Low, Range 2 Base High, Range 2 Base Low.
    pub range_base: [u32; 4],
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

impl DvsecModel {
    /// A model from the guest view `view` (the DVSEC's bytes as VFIO shows them at
    /// open) and the hardware bytes `hw` (for the capabilities).
    pub fn new(view: &[u8], hw: &[u8]) -> Self {
        let length = view.len();
        let cap3 = if hw.len() >= DVSEC_CAPABILITY3 + 2 {
            le16(hw, DVSEC_CAPABILITY3)
        } else {
            0
        };
        DvsecModel {
            length,
            cap2: le16(hw, DVSEC_CAPABILITY2),
            cap3,
            control: le16(view, DVSEC_CONTROL),
            status: le16(view, DVSEC_STATUS),
            control2: le16(view, DVSEC_CONTROL2),
            lock: le16(view, DVSEC_LOCK),
            range_base: [
                le32(view, DVSEC_RANGE1_BASE_HI),
                le32(view, DVSEC_RANGE1_BASE_LO),
                le32(view, DVSEC_RANGE2_BASE_HI),
                le32(view, DVSEC_RANGE2_BASE_LO),
            ],
        }
    }

    /// Whether CONFIG_LOCK is set.
    pub fn locked(&self) -> bool {
        self.lock & DVSEC_LOCK_CONFIG != 0
    }

    /// Applies a write of `bytes` starting at DVSEC offset `rel` (bytes past the
    /// DVSEC are ignored: they are not the model's). Returns whether it wrote
    /// Initiate CXL Reset.
    pub fn write(&mut self, rel: usize, bytes: &[u8]) -> bool {
        // Group the written bytes by register: (register offset, size, value, mask).
        let mut pieces: Vec<(usize, usize, u32, u32)> = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            let p = rel + i;
            if p >= self.length {
                continue;
            }
            let (start, size) = match DVSEC_SHADOWED
                .iter()
                .find(|&&(o, s)| (o..o + s).contains(&p))
            {
                Some(&r) => r,
                None => continue, // Read-only byte.
            };
            let shift = 8 * (p - start);
            match pieces.last_mut() {
                Some(last) if last.0 == start => {
                    last.2 |= u32::from(b) << shift;
                    last.3 |= 0xff << shift;
                }
                _ => pieces.push((start, size, u32::from(b) << shift, 0xff << shift)),
            }
        }
        let mut cxl_reset = false;
        for (start, _, value, mask) in pieces {
            let merge16 = |cur: u16| ((u32::from(cur) & !mask) | (value & mask)) as u16;
            let written16 = (value & mask) as u16;
            match start {
                DVSEC_CONTROL => {
                    if !self.locked() {
                        self.control = expected_dvsec_control(self.cap3, merge16(self.control));
                    }
                }
                DVSEC_STATUS => self.status &= !(written16 & DVSEC_STATUS_VIRAL),
                DVSEC_CONTROL2 => {
                    cxl_reset |= written16 & DVSEC_CTRL2_CXL_RESET != 0;
                    self.control2 =
                        expected_dvsec_control2(self.cap2, self.cap3, merge16(self.control2));
                }
                DVSEC_LOCK => {
                    if !self.locked() {
                        self.lock = merge16(self.lock) & DVSEC_LOCK_CONFIG;
                    }
                }
                _ => {
                    let i = match start {
                        DVSEC_RANGE1_BASE_HI => 0,
                        DVSEC_RANGE1_BASE_LO => 1,
                        DVSEC_RANGE2_BASE_HI => 2,
                        _ => 3,
                    };
                    let mut v = (self.range_base[i] & !mask) | (value & mask);
                    if i % 2 == 1 {
                        v &= RANGE_BASE_LO_MASK;
                    }
                    self.range_base[i] = v;
                }
            }
        }
        cxl_reset
    }

    /// The DVSEC as the guest should read it: `hw` (the hardware DVSEC, at least
    /// `length` bytes) with the virtualized registers laid over it.
    pub fn expected_view(&self, hw: &[u8]) -> Vec<u8> {
        let mut v = hw[..self.length].to_vec();
        let mut put = |off: usize, bytes: &[u8]| {
            if off + bytes.len() <= v.len() {
                v[off..off + bytes.len()].copy_from_slice(bytes);
            }
        };
        put(DVSEC_CONTROL, &self.control.to_le_bytes());
        put(DVSEC_STATUS, &self.status.to_le_bytes());
        put(DVSEC_CONTROL2, &self.control2.to_le_bytes());
        put(DVSEC_LOCK, &self.lock.to_le_bytes());
        put(DVSEC_RANGE1_BASE_HI, &self.range_base[0].to_le_bytes());
        put(DVSEC_RANGE1_BASE_LO, &self.range_base[1].to_le_bytes());
        put(DVSEC_RANGE2_BASE_HI, &self.range_base[2].to_le_bytes());
        put(DVSEC_RANGE2_BASE_LO, &self.range_base[3].to_le_bytes());
        v
    }
}

/// Byte differences between `actual` and `expected` DVSEC images, grouped per
/// register: `Control (+0xc..+0xd): read 0002, expected 0006`.
pub fn dvsec_diff(actual: &[u8], expected: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if actual.len() != expected.len() {
        out.push(format!(
            "read {} bytes, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    let n = actual.len().min(expected.len());
    let mut i = 0;
    while i < n {
        let name = dvsec_reg_name(i);
        let mut j = i;
        while j < n && dvsec_reg_name(j) == name {
            j += 1;
        }
        if actual[i..j] != expected[i..j] {
            let hex = |b: &[u8]| {
                b.iter()
                    .rev()
                    .map(|x| format!("{x:02x}"))
                    .collect::<String>()
            };
            out.push(format!(
                "{name} (+{i:#x}..+{:#x}): read {}, expected {}",
                j - 1,
                hex(&actual[i..j]),
                hex(&expected[i..j])
            ));
        }
        i = j;
    }
    out
}

/// Every DVSEC of `vendor` in a config space image: offset, DVSEC ID and length
/// each, in list order.
pub fn dvsecs_of(cfg: &[u8], vendor: u16) -> Vec<(usize, u16, usize)> {
    let mut out = Vec::new();
    let mut pos = 0x100usize;
    for _ in 0..(4096 / 8) {
        if pos < 0x100 || pos + 10 > cfg.len() {
            break;
        }
        let hdr = le32(cfg, pos);
        if hdr & 0xffff == u32::from(PCI_EXT_CAP_ID_DVSEC) {
            let h1 = le32(cfg, pos + 4);
            if (h1 & 0xffff) as u16 == vendor {
                out.push((pos, le16(cfg, pos + 8), (h1 >> 20) as usize));
            }
        }
        pos = ((hdr >> 20) & 0xffc) as usize;
        if pos == 0 {
            break;
        }
    }
    out
}

/// Finds the first DVSEC with `vendor` and `id` in a config space image;
/// returns its offset and length.
pub fn find_dvsec(cfg: &[u8], vendor: u16, id: u16) -> Option<(usize, usize)> {
    let mut pos = 0x100usize;
    for _ in 0..(4096 / 8) {
        if pos < 0x100 || pos + 10 > cfg.len() {
            return None;
        }
        let hdr = le32(cfg, pos);
        if hdr & 0xffff == u32::from(PCI_EXT_CAP_ID_DVSEC) {
            let h1 = le32(cfg, pos + 4);
            let h2 = le16(cfg, pos + 8);
            if (h1 & 0xffff) as u16 == vendor && h2 == id {
                return Some((pos, (h1 >> 20) as usize));
            }
        }
        pos = ((hdr >> 20) & 0xffc) as usize;
        if pos == 0 {
            return None;
        }
    }
    None
}

/// DVSEC ID of the Register Locator DVSEC.
pub const DVSEC_ID_REGISTER_LOCATOR: u16 = 8;
/// Register Block Identifier of the CXL component registers.
pub const REG_BLOCK_COMPONENT: u8 = 1;
/// Offset of the CXL.cache/mem area in the component register block.
pub const CXL_CM_OFFSET: u64 = 0x1000;

/// The BAR and offset of the component register block, from the Register
/// Locator DVSEC of a config space image.
pub fn component_block(cfg: &[u8]) -> Option<(u8, u64)> {
    let (pos, len) = find_dvsec(cfg, DVSEC_VENDOR_CXL, DVSEC_ID_REGISTER_LOCATOR)?;
    let mut e = pos + 0xc;
    while e + 8 <= pos + len && e + 8 <= cfg.len() {
        let lo = le32(cfg, e);
        let hi = le32(cfg, e + 4);
        if ((lo >> 8) & 0xff) as u8 == REG_BLOCK_COMPONENT {
            return Some((
                (lo & 7) as u8,
                (u64::from(hi) << 32) | u64::from(lo & 0xffff_0000),
            ));
        }
        e += 8;
    }
    None
}

/// Size of a CXL component register block.
pub const COMP_BLOCK_SIZE: u64 = 0x10000;

/// The size of a component register block at `block` in a BAR of `bar_size`
/// bytes: 64 KiB, or what is left of the BAR.
pub fn comp_block_size(bar_size: u64, block: u64) -> u64 {
    COMP_BLOCK_SIZE.min(bar_size.saturating_sub(block))
}

/// Reference for the sparse mmap areas of the component BAR: the parts of
/// `[0, bar_size)` outside the pages the block `[block, block + 64 KiB)`
/// touches, as `(offset, size)`, never an empty one.
pub fn expected_sparse_areas(bar_size: u64, block: u64, page: u64) -> Vec<(u64, u64)> {
    let end = block + comp_block_size(bar_size, block);
    let lo = block / page * page;
    let hi = end.div_ceil(page).saturating_mul(page).min(bar_size);
    let mut areas = Vec::new();
    if lo > 0 {
        areas.push((0, lo));
    }
    if hi < bar_size {
        areas.push((hi, bar_size - hi));
    }
    areas
}

// ---------------------------------------------------------------------------
// Raw I/O on a device fd
// ---------------------------------------------------------------------------

/// Exactly one `pread(2)` of `len` bytes at `pos` of the device fd: a short
/// count comes back as a shorter vector, an error with its errno.
pub fn pread_once(dev: &impl AsFd, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    // A duplicate shares the open file; it is closed again before returning,
    // so it never keeps the device open after the caller closes it.
    let f = File::from(dev.as_fd().try_clone_to_owned()?);
    let mut buf = vec![0u8; len];
    let n = f.read_at(&mut buf, pos)?;
    buf.truncate(n);
    Ok(buf)
}

/// Exactly one `pwrite(2)` of `data` at `pos` of the device fd; returns the count.
pub fn pwrite_once(dev: &impl AsFd, pos: u64, data: &[u8]) -> io::Result<usize> {
    let f = File::from(dev.as_fd().try_clone_to_owned()?);
    f.write_at(data, pos)
}

/// `mmap(2)`s `len` bytes at `pos` of the device fd (shared, read/write) and
/// unmaps at once: `Ok` if the kernel allowed the mapping.
pub fn try_mmap(dev: &impl AsFd, pos: u64, len: usize) -> io::Result<()> {
    let off = libc::off_t::try_from(pos)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mmap offset overflow"))?;
    // SAFETY: a NULL hint without MAP_FIXED makes the kernel pick an unused
    // address range, so no existing mapping (and no Rust object) is replaced;
    // the fd is open for the call. The mapping is never dereferenced.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            dev.as_fd().as_raw_fd(),
            off,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `p`/`len` is exactly the mapping created above, which nothing
    // else refers to.
    unsafe { libc::munmap(p, len) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_bar_reference() {
        let page = 0x1000;
        assert_eq!(comp_block_size(0x10000, 0), 0x10000);
        assert_eq!(comp_block_size(0x18000, 0x10000), 0x8000);
        assert_eq!(comp_block_size(0x100000, 0x20000), 0x10000);
        // The block fills the BAR (the QEMU device): nothing to map.
        assert_eq!(expected_sparse_areas(0x10000, 0, page), []);
        // At the start, at the end, in the middle.
        assert_eq!(
            expected_sparse_areas(0x20000, 0, page),
            [(0x10000, 0x10000)]
        );
        assert_eq!(
            expected_sparse_areas(0x20000, 0x10000, page),
            [(0, 0x10000)]
        );
        assert_eq!(
            expected_sparse_areas(0x40000, 0x10000, page),
            [(0, 0x10000), (0x20000, 0x20000)]
        );
        // A block that is not page aligned takes whole pages.
        assert_eq!(
            expected_sparse_areas(0x40000, 0x10800, page),
            [(0, 0x10000), (0x21000, 0x1f000)]
        );
        // Cut short by the end of the BAR.
        assert_eq!(
            expected_sparse_areas(0x18000, 0x10000, page),
            [(0, 0x10000)]
        );
        assert_eq!(
            expected_sparse_areas(0x18000, 0x10800, 0x10000),
            [(0, 0x10000)]
        );
    }

    /// The QEMU cxl-type3 CXL.mem area: RAS, link, HDM at 0x110, one decoder.
    fn qemu_array() -> Vec<u32> {
        vec![
            0x0300_0001 | (1 << 16) | (1 << 20),
            (0x100 << 20) | (2 << 16) | u32::from(CXL_CM_CAP_CAP_ID_RAS),
            (0x108 << 20) | (2 << 16) | u32::from(CXL_CM_CAP_CAP_ID_LINK),
            (0x110 << 20) | (1 << 16) | u32::from(CXL_CM_CAP_CAP_ID_HDM),
        ]
    }

    fn layout() -> HdmLayout {
        HdmLayout {
            hdm_offset: 0x110,
            count: 1,
            cap: 0,
            cache_capable: false,
        }
    }

    #[test]
    fn cap_array_parsing() {
        let a = CapArray::parse(&qemu_array()).unwrap();
        assert_eq!(CapArray::array_size(a.header), 3);
        assert_eq!(a.entries.len(), 3);
        assert_eq!(
            a.find(CXL_CM_CAP_CAP_ID_HDM),
            Some(&CapEntry {
                id: 5,
                version: 1,
                offset: 0x110
            })
        );
        assert_eq!(a.find(CXL_CM_CAP_CAP_ID_RAS).unwrap().offset, 0x100);
        assert_eq!(a.find(CXL_CM_CAP_CAP_ID_LINK).unwrap().version, 2);
        assert_eq!(a.find(3), None);
        // Trailing dwords past the array are ignored.
        let mut longer = qemu_array();
        longer.extend([0xdead_beef; 4]);
        assert_eq!(CapArray::parse(&longer).unwrap().entries.len(), 3);
    }

    #[test]
    fn cap_array_errors() {
        assert!(CapArray::parse(&[]).is_err());
        assert!(CapArray::parse(&[0x0300_0002])
            .unwrap_err()
            .contains("id 0x2"));
        assert!(CapArray::parse(&[0x0000_0001])
            .unwrap_err()
            .contains("size 0"));
        let mut short = qemu_array();
        short.pop();
        assert!(CapArray::parse(&short).unwrap_err().contains("3 entries"));
    }

    #[test]
    fn decoder_counts() {
        assert_eq!(hdm_decoder_count(0), Some(1));
        assert_eq!(hdm_decoder_count(0x0000_0401), Some(2));
        assert_eq!(hdm_decoder_count(8), Some(16));
        assert_eq!(hdm_decoder_count(9), Some(20));
        assert_eq!(hdm_decoder_count(0xc), Some(32));
        assert_eq!(hdm_decoder_count(0xd), None);
        assert_eq!(hdm_block_size(1), 0x30);
        assert_eq!(layout().region_size(), 0x140);
        assert_eq!(layout().dec_reg(0, DEC_CTRL), 0x130);
        assert_eq!(layout().reg_name(0x130), "decoder 0 CTRL");
        assert_eq!(layout().reg_name(0x114), "HDM global control");
        assert_eq!(layout().reg_name(0x8), "cap array +0x8");
        assert_eq!(layout().reg_name(0x13c), "decoder 0 reserved");
    }

    #[test]
    fn global_ctrl_rule() {
        assert_eq!(expected_global_ctrl(0, 0xffff_ffff), HDM_GLOBAL_ENABLE);
        assert_eq!(expected_global_ctrl(HDM_CAP_POISON_ON_ERR, 0xffff_ffff), 3);
        assert_eq!(expected_global_ctrl(HDM_CAP_POISON_ON_ERR, 1), 1);
        assert_eq!(expected_global_ctrl(0, 0xffff_fffc), 0);
    }

    #[test]
    fn decoder_ctrl_rule() {
        let l = layout();
        // Unlocked, everything but LOCK written over a committed decoder with target type.
        let cur = CTRL_COMMITTED | CTRL_TARGET_TYPE;
        let v = expected_decoder_ctrl(&l, cur, 0xffff_feff);
        // IG/IW, COMMIT, kept COMMITTED and TARGET_TYPE, no BI/UIO/reserved, no ERR.
        assert_eq!(v, 0xff | CTRL_COMMIT | CTRL_COMMITTED | CTRL_TARGET_TYPE);
        // COMMITTED mirrors COMMIT; bits 10..12 cannot be written.
        assert_eq!(expected_decoder_ctrl(&l, cur, 0x1c00), CTRL_TARGET_TYPE);
        assert_eq!(expected_decoder_ctrl(&l, 0, CTRL_COMMIT), 0x600);
        // UIO capable and cache capable keep those bits.
        let l2 = HdmLayout {
            cap: HDM_CAP_UIO,
            cache_capable: true,
            ..l
        };
        assert_eq!(
            expected_decoder_ctrl(&l2, 0, 0xffff_feff) & (CTRL_UIO | CTRL_BI | CTRL_UIG_UIW),
            CTRL_UIO | CTRL_BI | CTRL_UIG_UIW
        );
        // Locked: LOCK=1 ignored, LOCK=0 clears only LOCK.
        let locked = CTRL_LOCK | CTRL_COMMIT | CTRL_COMMITTED | 0x12;
        assert_eq!(expected_decoder_ctrl(&l, locked, CTRL_LOCK), locked);
        assert_eq!(expected_decoder_ctrl(&l, locked, 0), locked & !CTRL_LOCK);
        // Setting LOCK together with COMMIT.
        assert_eq!(
            expected_decoder_ctrl(&l, 0, CTRL_LOCK | CTRL_COMMIT),
            CTRL_LOCK | CTRL_COMMIT | CTRL_COMMITTED
        );
    }

    #[test]
    fn comp_regs_model_rules() {
        let l = layout();
        let mut regs = vec![0u32; l.region_size() / 4];
        regs[..4].copy_from_slice(&qemu_array());
        regs[l.dec_reg(0, DEC_SIZE_LO) / 4] = 0x1000_0000;
        regs[l.dec_reg(0, DEC_CTRL) / 4] = CTRL_COMMIT | CTRL_COMMITTED;
        let mut m = CompRegsModel::new(l, regs.clone());
        // Capability array, HDM capability and reserved dwords: discarded.
        for off in [0, 4, 0x100, 0x10c, 0x110, 0x118, 0x11c] {
            m.write(off, 0xffff_ffff);
        }
        assert_eq!(m.regs, regs);
        m.write(l.hdm_reg(HDM_GLOBAL_CTRL), 0xffff_ffff);
        assert_eq!(m.get(0x114), HDM_GLOBAL_ENABLE);
        m.write(l.dec_reg(0, DEC_BASE_LO), 0x1234_5678);
        m.write(l.dec_reg(0, DEC_BASE_HI), 0x1234_5678);
        assert_eq!(m.get(0x120), 0x1000_0000);
        assert_eq!(m.get(0x124), 0x1234_5678);
        for r in [DEC_TL_LO, DEC_TL_HI, DEC_RSVD] {
            m.write(l.dec_reg(0, r), 0xffff_ffff);
            assert_eq!(m.get(l.dec_reg(0, r)), 0);
        }
        // Lock: base/size frozen, LOCK=0 unlocks.
        m.write(l.dec_reg(0, DEC_CTRL), CTRL_LOCK | CTRL_COMMIT);
        let before = m.clone();
        for r in [DEC_BASE_LO, DEC_BASE_HI, DEC_SIZE_LO, DEC_SIZE_HI] {
            m.write(l.dec_reg(0, r), 0xffff_ffff);
        }
        m.write(l.dec_reg(0, DEC_CTRL), CTRL_LOCK);
        assert_eq!(m, before);
        m.write(l.dec_reg(0, DEC_CTRL), 0);
        assert_eq!(m.get(0x130), CTRL_COMMIT | CTRL_COMMITTED);
        m.write(l.dec_reg(0, DEC_SIZE_HI), 7);
        assert_eq!(m.get(0x12c), 7);
        let mut actual = m.regs.clone();
        actual[0x130 / 4] = 0;
        assert_eq!(
            m.diff(&actual),
            vec!["+0x130 (decoder 0 CTRL): read 0x00000000, expected 0x00000600"]
        );
        assert!(m.diff(&m.regs).is_empty());
    }

    /// The QEMU cxl-type3 CXL Device DVSEC (0x38 long, no Capability3).
    fn qemu_dvsec() -> Vec<u8> {
        let mut d = vec![0u8; 0x38];
        d[0..4].copy_from_slice(&0x1380_0023u32.to_le_bytes());
        d[4..8].copy_from_slice(&0x0381_1e98u32.to_le_bytes());
        d[0xa..0xc].copy_from_slice(&0x001eu16.to_le_bytes());
        d[0xc..0xe].copy_from_slice(&0x0002u16.to_le_bytes());
        d[0x1c..0x20].copy_from_slice(&0x1000_0003u32.to_le_bytes());
        d
    }

    #[test]
    fn dvsec_location() {
        let mut cfg = vec![0u8; 4096];
        cfg[0x100..0x138].copy_from_slice(&qemu_dvsec());
        // Register Locator DVSEC at 0x138, last in the list.
        cfg[0x138..0x13c].copy_from_slice(&0x0000_0023u32.to_le_bytes());
        cfg[0x13c..0x140].copy_from_slice(&0x0241_1e98u32.to_le_bytes());
        cfg[0x140] = 8;
        assert_eq!(component_block(&cfg), None);
        // Entries: BAR2 device registers at 0x20000, then BAR0 component registers at 0.
        cfg[0x144..0x148].copy_from_slice(&0x0002_0302u32.to_le_bytes());
        cfg[0x14c..0x150].copy_from_slice(&0x0001_0100u32.to_le_bytes());
        cfg[0x150..0x154].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(component_block(&cfg), Some((0, 0x1_0001_0000)));
        assert_eq!(
            find_dvsec(&cfg, DVSEC_VENDOR_CXL, DVSEC_ID_CXL_DEVICE),
            Some((0x100, 0x38))
        );
        assert_eq!(find_dvsec(&cfg, DVSEC_VENDOR_CXL, 8), Some((0x138, 0x24)));
        assert_eq!(find_dvsec(&cfg, DVSEC_VENDOR_CXL, 9), None);
        assert_eq!(find_dvsec(&cfg[..0x100], DVSEC_VENDOR_CXL, 0), None);
    }

    #[test]
    fn dvsec_rules() {
        let hw = qemu_dvsec();
        let mut m = DvsecModel::new(&hw, &hw);
        assert_eq!((m.cap2, m.cap3, m.control), (0, 0, 2));
        assert!(!m.write(DVSEC_CONTROL, &[0xff, 0xff]));
        assert_eq!(m.control, 0x4fff);
        m.write(DVSEC_CONTROL, &[0]);
        assert_eq!(m.control, 0x4f02);
        assert!(m.write(DVSEC_CONTROL2, &[0xff, 0xff]));
        assert_eq!(m.control2, 0x0009);
        m.write(DVSEC_RANGE1_BASE_LO, &[0xff; 4]);
        assert_eq!(m.range_base[1], 0xf000_0000);
        // Straddling Range 1 Base High/Low with a 4-byte write at +0x22.
        m.write(0x22, &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(m.range_base, [0x2211_0000, 0xf000_0000, 0, 0]);
        // Read-only bytes: headers, capability, sizes.
        let before = m.clone();
        m.write(0, &[0xff; 4]);
        m.write(DVSEC_CAPABILITY, &[0, 0]);
        m.write(DVSEC_RANGE1_SIZE_LO, &[0xff; 4]);
        m.write(DVSEC_STATUS2, &[0xff, 0xff]);
        assert_eq!(m, before);
        // Writes past the end of the DVSEC are not the model's.
        m.write(0x36, &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(m.range_base[3], 0xf000_0000);
        // Lock freezes Control and Lock, nothing else.
        m.write(DVSEC_LOCK, &[0xff, 0xff]);
        assert_eq!(m.lock, 1);
        m.write(DVSEC_CONTROL, &[0, 0]);
        m.write(DVSEC_LOCK, &[0, 0]);
        assert_eq!((m.control, m.lock), (0x4f02, 1));
        m.write(DVSEC_CONTROL2, &[0x08]);
        assert_eq!(m.control2, 0x0008);
        // Status W1C of Viral_Status only.
        m.status = 0x4000;
        m.write(DVSEC_STATUS, &[0xff]);
        assert_eq!(m.status, 0x4000);
        m.write(0xf, &[0x40]);
        assert_eq!(m.status, 0);
        let view = m.expected_view(&hw);
        assert_eq!(&view[0..0xc], &hw[0..0xc]);
        assert_eq!(le16(&view, DVSEC_CONTROL), 0x4f02);
        assert_eq!(le32(&view, DVSEC_RANGE2_BASE_LO), 0xf000_0000);
        assert_eq!(le32(&view, DVSEC_RANGE1_SIZE_LO), 0x1000_0003);
    }

    #[test]
    fn dvsec_control_rules() {
        assert_eq!(expected_dvsec_control(0, 0), 0x0002);
        assert_eq!(expected_dvsec_control(DVSEC_CAP3_P2P_MEM, 0xffff), 0x5fff);
        assert_eq!(
            expected_dvsec_control2(DVSEC_CAP2_MOD_COMPLETION, DVSEC_CAP3_VOLATILE_HDM, 0xffff),
            0x0039
        );
        assert_eq!(expected_dvsec_control2(0, 0, 0x0006), 0);
    }

    #[test]
    fn dvsec_diffs() {
        let hw = qemu_dvsec();
        let mut other = hw.clone();
        other[0xc] = 6;
        other[0x25] = 1;
        assert_eq!(
            dvsec_diff(&other, &hw),
            vec![
                "Control (+0xc..+0xd): read 0006, expected 0002",
                "Range 1 Base Low (+0x24..+0x27): read 00000100, expected 00000000",
            ]
        );
        assert!(dvsec_diff(&hw, &hw).is_empty());
        assert!(dvsec_byte_shadowed(0x15));
        assert!(!dvsec_byte_shadowed(0x16));
        assert!(!dvsec_byte_shadowed(0x12));
        assert_eq!(dvsec_reg_name(0x3a), "beyond Capability3");
        let regs = dvsec_registers(0x38);
        assert_eq!(regs.len(), 2 + 8 + 8);
        assert_eq!(&regs[..3], &[(0, 4), (4, 4), (8, 2)]);
        assert_eq!(regs[9], (0x16, 2));
        assert_eq!(regs[10], (0x18, 4));
        assert_eq!(regs[17], (0x34, 4));
        assert_eq!(dvsec_registers(0x3c)[18..], [(0x38, 2), (0x3a, 2)]);
        assert_eq!(dvsec_registers(0x39).last(), Some(&(0x38, 1)));
    }

    #[test]
    fn raw_io_helpers() {
        // /dev/zero: reads return zeros, writes are accepted, shared mappings work.
        let f = File::options()
            .read(true)
            .write(true)
            .open("/dev/zero")
            .unwrap();
        assert_eq!(pread_once(&f, 0, 8).unwrap(), vec![0u8; 8]);
        assert_eq!(pwrite_once(&f, 0, &[1, 2, 3]).unwrap(), 3);
        try_mmap(&f, 0, 4096).unwrap();
        // /dev/null: a read returns nothing (short), and mmap is refused.
        let n = File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .unwrap();
        assert_eq!(pread_once(&n, 0, 4).unwrap(), Vec::<u8>::new());
        let e = try_mmap(&n, 0, 4096).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
    }
}

// ---------------------------------------------------------------------------
// The real HDM decoders, past VFIO
// ---------------------------------------------------------------------------

/// The device's real HDM decoder registers as the host maps them (sysfs
/// `resource<N>`, read only), past the driver's emulation: what firmware
/// programmed and what a test must find unchanged.
#[derive(Debug)]
pub struct RealHdm {
    /// The component register BAR.
    pub bar: u32,
    /// Offset of the HDM Decoder Capability structure in that BAR.
    pub hdm_bar_offset: u64,
    /// Number of decoders.
    pub count: usize,
    map: crate::pci::ResourceMap,
    /// The registers read as the hardware holds them only in D0: a closed device with a PCI
    /// PM capability is runtime suspended to D3hot by vfio-pci, where its BAR reads as 0.
    _awake: crate::pci::RuntimePmOn,
}

impl RealHdm {
    /// Finds the HDM decoders of `bdf`: the Register Locator DVSEC in sysfs
    /// config, then the capability array of the CXL.mem area.
    pub fn locate(bdf: &str) -> Result<Self, String> {
        let awake = crate::pci::RuntimePmOn::new(bdf).map_err(|e| format!("power/control: {e}"))?;
        let path = crate::pci::device_dir(bdf).join("config");
        let cfg = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let (bar, block) =
            component_block(&cfg).ok_or("no component register block in the Register Locator")?;
        let map = crate::pci::ResourceMap::open(bdf, usize::from(bar))
            .map_err(|e| format!("BAR{bar}: {e}"))?;
        let cm = block + CXL_CM_OFFSET;
        let header = map.read_u32(cm).map_err(|e| e.to_string())?;
        let dwords = map
            .read_dwords(cm, CapArray::array_size(header) + 1)
            .map_err(|e| e.to_string())?;
        let hdm = *CapArray::parse(&dwords)?
            .find(CXL_CM_CAP_CAP_ID_HDM)
            .ok_or("no HDM decoder capability in the capability array")?;
        let hdm_bar_offset = cm + hdm.offset as u64;
        let cap = map.read_u32(hdm_bar_offset).map_err(|e| e.to_string())?;
        let count = hdm_decoder_count(cap)
            .ok_or_else(|| format!("HDM capability {cap:#010x}: reserved decoder count"))?;
        Ok(Self {
            bar: u32::from(bar),
            hdm_bar_offset,
            count,
            map,
            _awake: awake,
        })
    }

    /// Offset in the BAR of register `reg` (`DEC_*`) of decoder `n`.
    pub fn decoder_reg(&self, n: usize, reg: usize) -> u64 {
        self.hdm_bar_offset + (HDM_DECODER_FIRST + n * HDM_DECODER_STRIDE + reg) as u64
    }

    /// Every register of the HDM Decoder Capability structure, as the hardware holds it now.
    pub fn dwords(&self) -> Result<Vec<u32>, String> {
        self.map
            .read_dwords(self.hdm_bar_offset, hdm_block_size(self.count) / 4)
            .map_err(|e| e.to_string())
    }

    /// One register at `off` of the BAR.
    pub fn read(&self, off: u64) -> Result<u32, String> {
        self.map.read_u32(off).map_err(|e| e.to_string())
    }

    /// Decoder `n`'s base, size and Control register as the hardware holds them.
    pub fn decoder(&self, n: usize) -> Result<(u64, u64, u32), String> {
        let reg = |r: usize| self.read(self.decoder_reg(n, r));
        let base =
            u64::from(reg(DEC_BASE_HI)?) << 32 | u64::from(reg(DEC_BASE_LO)? & LOW_ADDR_MASK);
        let size =
            u64::from(reg(DEC_SIZE_HI)?) << 32 | u64::from(reg(DEC_SIZE_LO)? & LOW_ADDR_MASK);
        Ok((base, size, reg(DEC_CTRL)?))
    }

    /// Checks that decoder 0 is committed with `base` and `size`, as firmware left it; the
    /// error says what it holds instead, prefixed with `when`.
    pub fn check_firmware_decoder(&self, base: u64, size: u64, when: &str) -> Result<(), String> {
        let (real_base, real_size, ctrl) = self.decoder(0)?;
        if real_base != base || real_size != size || ctrl & CTRL_COMMITTED == 0 {
            return Err(format!(
                "{when}: decoder 0 base {real_base:#x} size {real_size:#x} control {ctrl:#010x}, \
                 firmware committed base {base:#x} size {size:#x}"
            ));
        }
        Ok(())
    }
}
