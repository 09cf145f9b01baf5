// SPDX-License-Identifier: GPL-2.0

//! CXL register layout: offsets and bit fields of the component register block, its CXL.mem
//! capability array, the HDM decoder capability, and the CXL DVSECs in PCI config space.
//!
//! Names follow the Linux C macros (`drivers/cxl/cxl.h`, `drivers/cxl/cxlpci.h` and the seed's
//! `include/uapi/cxl/cxl_regs.h`) so that the two can be compared line by line. Section numbers
//! refer to CXL r3.1. Byte offsets into memory-mapped blocks are `usize`, config-space offsets
//! are `u16`, and masks have the width of the register they apply to.

/// Extracts the field selected by `mask` from `value`, shifted down to bit 0 (C `FIELD_GET`).
///
/// An empty mask yields 0.
pub(crate) const fn field_get(value: u32, mask: u32) -> u32 {
    if mask == 0 {
        0
    } else {
        (value & mask) >> mask.trailing_zeros()
    }
}

// ---------------------------------------------------------------------------------------------
// Component register block (8.2.3, 8.2.4)
// ---------------------------------------------------------------------------------------------

/// Size of a CXL component register block.
pub(crate) const CXL_COMPONENT_REG_BLOCK_SIZE: usize = 0x1_0000;
/// Offset of the CXL.cache and CXL.mem register area within the component register block.
pub(crate) const CXL_CM_OFFSET: usize = 0x1000;
/// Size of the CXL.cache and CXL.mem register area: every capability pointer stays inside it.
pub(crate) const CXL_CM_SIZE: usize = 0x1000;

/// Offset of the CXL Capability Header (the array header) within the CXL.mem area.
pub(crate) const CXL_CM_CAP_HDR_OFFSET: usize = 0x0;
/// Array header and capability entries: CXL_Capability_ID.
pub(crate) const CXL_CM_CAP_HDR_ID_MASK: u32 = 0x0000_ffff;
/// The capability id the array header must carry (Linux: `CM_CAP_HDR_CAP_ID`).
pub(crate) const CXL_CM_CAP_HDR_CAP_ID: u32 = 1;
/// Array header and capability entries: CXL_Capability_Version.
pub(crate) const CXL_CM_CAP_HDR_VERSION_MASK: u32 = 0x000f_0000;
/// Array header: CXL_Cache_Mem_Version.
pub(crate) const CXL_CM_CAP_HDR_CACHE_MEM_VERSION_MASK: u32 = 0x00f0_0000;
/// Array header: Array_Size, the number of capability entries that follow the header.
pub(crate) const CXL_CM_CAP_HDR_ARRAY_SIZE_MASK: u32 = 0xff00_0000;
/// Capability entry: pointer to the capability structure, a byte offset from the start of the
/// CXL.mem area.
pub(crate) const CXL_CM_CAP_PTR_MASK: u32 = 0xfff0_0000;
/// Size in bytes of the array header and of each capability entry.
pub(crate) const CXL_CM_CAP_ENTRY_SIZE: usize = 4;

/// Capability id of the CXL RAS capability.
pub(crate) const CXL_CM_CAP_CAP_ID_RAS: u32 = 0x2;
/// Capability id of the CXL Link capability.
pub(crate) const CXL_CM_CAP_CAP_ID_LINK: u32 = 0x4;
/// Capability id of the CXL HDM Decoder capability.
pub(crate) const CXL_CM_CAP_CAP_ID_HDM: u32 = 0x5;

// ---------------------------------------------------------------------------------------------
// HDM Decoder Capability Structure (8.2.4.20); offsets relative to its start
// ---------------------------------------------------------------------------------------------

/// Offset of the HDM Decoder Capability register.
pub(crate) const CXL_HDM_DECODER_CAP_OFFSET: usize = 0x0;
/// Capability: Decoder Count (encoded, see [`CXL_HDM_DECODER_MAX_COUNT`]).
pub(crate) const CXL_HDM_DECODER_COUNT_MASK: u32 = 0x0000_000f;
/// Capability: Target Count.
pub(crate) const CXL_HDM_DECODER_TARGET_COUNT_MASK: u32 = 0x0000_00f0;
/// Capability: A11to8 Interleave Capable.
pub(crate) const CXL_HDM_DECODER_INTERLEAVE_11_8: u32 = 1 << 8;
/// Capability: A14to12 Interleave Capable.
pub(crate) const CXL_HDM_DECODER_INTERLEAVE_14_12: u32 = 1 << 9;
/// Capability: Poison On Decode Error Capability.
pub(crate) const CXL_HDM_DECODER_POISON_ON_DECODE_ERR: u32 = 1 << 10;
/// Capability: 3, 6, 12 Way Interleave Capable.
pub(crate) const CXL_HDM_DECODER_INTERLEAVE_3_6_12_WAY: u32 = 1 << 11;
/// Capability: 16 Way Interleave Capable.
pub(crate) const CXL_HDM_DECODER_INTERLEAVE_16_WAY: u32 = 1 << 12;
/// Capability: UIO Capable.
pub(crate) const CXL_HDM_DECODER_UIO_CAPABLE: u32 = 1 << 13;
/// Capability: UIO Capable Decoder Count.
pub(crate) const CXL_HDM_DECODER_UIO_COUNT_MASK: u32 = 0x000f_0000;
/// Capability: MemData-NXM Capable.
pub(crate) const CXL_HDM_DECODER_MEMDATA_NXM: u32 = 1 << 20;
/// Capability: Supported Coherency Models.
pub(crate) const CXL_HDM_DECODER_COHERENCY_MODELS_MASK: u32 = 0x0060_0000;

/// Offset of the HDM Decoder Global Control register.
pub(crate) const CXL_HDM_DECODER_CTRL_OFFSET: usize = 0x4;
/// Global Control: Poison On Decode Error Enable.
pub(crate) const CXL_HDM_DECODER_GLOBAL_CTRL_POISON_EN_BIT: u32 = 1 << 0;
/// Global Control: HDM Decoder Enable.
pub(crate) const CXL_HDM_DECODER_ENABLE: u32 = 1 << 1;
/// Global Control: reserved bits 31:2.
pub(crate) const CXL_HDM_DECODER_GLOBAL_CTRL_RESERVED_MASK: u32 = 0xffff_fffc;

/// Offset of decoder 0's register set.
pub(crate) const CXL_HDM_DECODER_FIRST_BLOCK_OFFSET: usize = 0x10;
/// Distance between two decoders' register sets.
pub(crate) const CXL_HDM_DECODER_BLOCK_STRIDE: usize = 0x20;
/// Largest number of decoders a component can report.
pub(crate) const CXL_HDM_DECODER_MAX_COUNT: usize = 32;
/// Largest HDM decoder capability structure: header plus 32 decoders.
pub(crate) const CXL_HDM_MAX_SIZE: usize =
    CXL_HDM_DECODER_FIRST_BLOCK_OFFSET + CXL_HDM_DECODER_MAX_COUNT * CXL_HDM_DECODER_BLOCK_STRIDE;

/// Decoder n register: Base Low, relative to the decoder's register set.
pub(crate) const CXL_HDM_DECODER_N_BASE_LOW_OFFSET: usize = 0x0;
/// Decoder n register: Base High.
pub(crate) const CXL_HDM_DECODER_N_BASE_HIGH_OFFSET: usize = 0x4;
/// Decoder n register: Size Low.
pub(crate) const CXL_HDM_DECODER_N_SIZE_LOW_OFFSET: usize = 0x8;
/// Decoder n register: Size High.
pub(crate) const CXL_HDM_DECODER_N_SIZE_HIGH_OFFSET: usize = 0xc;
/// Decoder n register: Control.
pub(crate) const CXL_HDM_DECODER_N_CTRL_OFFSET: usize = 0x10;
/// Decoder n register: Target List Low (switches, host bridges) or DPA Skip Low (devices).
pub(crate) const CXL_HDM_DECODER_N_TARGET_LIST_LOW_OFFSET: usize = 0x14;
/// Decoder n register: Target List High or DPA Skip High.
pub(crate) const CXL_HDM_DECODER_N_TARGET_LIST_HIGH_OFFSET: usize = 0x18;
/// Decoder n register: reserved.
pub(crate) const CXL_HDM_DECODER_N_REV_OFFSET: usize = 0x1c;

/// Offset of register `reg` of decoder `i` within the HDM capability structure; saturates
/// instead of overflowing for an absurd `i`, so that a lookup with it just finds nothing.
const fn decoder_reg_offset(i: usize, reg: usize) -> usize {
    CXL_HDM_DECODER_BLOCK_STRIDE
        .saturating_mul(i)
        .saturating_add(CXL_HDM_DECODER_FIRST_BLOCK_OFFSET + reg)
}

/// Offset of decoder `i`'s Base Low register within the HDM capability structure.
pub(crate) const fn cxl_hdm_decoder0_base_low_offset(i: usize) -> usize {
    decoder_reg_offset(i, CXL_HDM_DECODER_N_BASE_LOW_OFFSET)
}

/// Offset of decoder `i`'s Base High register within the HDM capability structure.
pub(crate) const fn cxl_hdm_decoder0_base_high_offset(i: usize) -> usize {
    decoder_reg_offset(i, CXL_HDM_DECODER_N_BASE_HIGH_OFFSET)
}

/// Offset of decoder `i`'s Size Low register within the HDM capability structure.
pub(crate) const fn cxl_hdm_decoder0_size_low_offset(i: usize) -> usize {
    decoder_reg_offset(i, CXL_HDM_DECODER_N_SIZE_LOW_OFFSET)
}

/// Offset of decoder `i`'s Size High register within the HDM capability structure.
pub(crate) const fn cxl_hdm_decoder0_size_high_offset(i: usize) -> usize {
    decoder_reg_offset(i, CXL_HDM_DECODER_N_SIZE_HIGH_OFFSET)
}

/// Offset of decoder `i`'s Control register within the HDM capability structure.
pub(crate) const fn cxl_hdm_decoder0_ctrl_offset(i: usize) -> usize {
    decoder_reg_offset(i, CXL_HDM_DECODER_N_CTRL_OFFSET)
}

/// Decoder Base Low / Size Low: bits 27:0 are reserved (256 MiB granularity).
pub(crate) const CXL_HDM_DECODER_BASE_LO_RESERVED_MASK: u32 = 0x0fff_ffff;
/// Decoder Size Low: bits 27:0 are reserved.
pub(crate) const CXL_HDM_DECODER_SIZE_LO_RESERVED_MASK: u32 = 0x0fff_ffff;

/// Decoder Control: Interleave Granularity.
pub(crate) const CXL_HDM_DECODER0_CTRL_IG_MASK: u32 = 0x0000_000f;
/// Decoder Control: Interleave Ways.
pub(crate) const CXL_HDM_DECODER0_CTRL_IW_MASK: u32 = 0x0000_00f0;
/// Decoder Control: Lock On Commit.
pub(crate) const CXL_HDM_DECODER0_CTRL_LOCK: u32 = 1 << 8;
/// Decoder Control: Commit.
pub(crate) const CXL_HDM_DECODER0_CTRL_COMMIT: u32 = 1 << 9;
/// Decoder Control: Committed.
pub(crate) const CXL_HDM_DECODER0_CTRL_COMMITTED: u32 = 1 << 10;
/// Decoder Control: Error Not Committed.
pub(crate) const CXL_HDM_DECODER0_CTRL_COMMIT_ERROR: u32 = 1 << 11;
/// Decoder Control: Target Type (0: device coherent, 1: host-only coherent).
pub(crate) const CXL_HDM_DECODER0_CTRL_HOSTONLY: u32 = 1 << 12;
/// Decoder Control: BI (back-invalidate).
pub(crate) const CXL_HDM_DECODER0_CTRL_BI: u32 = 1 << 13;
/// Decoder Control: UIO.
pub(crate) const CXL_HDM_DECODER0_CTRL_UIO: u32 = 1 << 14;

/// Decoder Control emulation: bits the guest cannot change (Committed, Error Not Committed).
pub(crate) const CXL_HDM_DECODER_CTRL_RO_BITS_MASK: u32 =
    CXL_HDM_DECODER0_CTRL_COMMITTED | CXL_HDM_DECODER0_CTRL_COMMIT_ERROR;
/// Decoder Control emulation: always-reserved bits 15 and 31:28.
pub(crate) const CXL_HDM_DECODER_CTRL_RESERVED_MASK: u32 = (1 << 15) | 0xf000_0000;
/// Decoder Control emulation: Target Type is fixed for a device's decoders.
pub(crate) const CXL_HDM_DECODER_CTRL_DEVICE_BITS_RO: u32 = CXL_HDM_DECODER0_CTRL_HOSTONLY;
/// Decoder Control emulation: bits 19:16 and 23:20, reserved for a device.
pub(crate) const CXL_HDM_DECODER_CTRL_DEVICE_RESERVED: u32 = 0x000f_0000 | 0x00f0_0000;
/// Decoder Control emulation: UIO (bit 14) and bits 27:24, reserved without UIO capability.
pub(crate) const CXL_HDM_DECODER_CTRL_UIO_RESERVED: u32 = CXL_HDM_DECODER0_CTRL_UIO | 0x0f00_0000;
/// Decoder Control emulation: BI, reserved for a device without CXL.cache.
pub(crate) const CXL_HDM_DECODER_CTRL_BI_RESERVED: u32 = CXL_HDM_DECODER0_CTRL_BI;

// ---------------------------------------------------------------------------------------------
// PCIe DVSEC header (PCIe r6.0 7.9.6)
// ---------------------------------------------------------------------------------------------

/// Extended capability id of a Designated Vendor-Specific Extended Capability.
pub(crate) const PCI_EXT_CAP_ID_DVSEC: u16 = 0x23;
/// First byte of the extended configuration space, where every DVSEC lives.
pub(crate) const PCI_CFG_SPACE_SIZE: u16 = 0x100;
/// Size of the PCIe extended configuration space.
pub(crate) const PCI_CFG_SPACE_EXP_SIZE: u16 = 0x1000;
/// Offset of DVSEC Header 1 within the DVSEC.
pub(crate) const PCI_DVSEC_HEADER1: u16 = 0x4;
/// DVSEC Header 1: DVSEC Vendor ID.
pub(crate) const PCI_DVSEC_HEADER1_VID_MASK: u32 = 0x0000_ffff;
/// DVSEC Header 1: DVSEC Revision.
pub(crate) const PCI_DVSEC_HEADER1_REV_MASK: u32 = 0x000f_0000;
/// DVSEC Header 1: DVSEC Length, in bytes, header included.
pub(crate) const PCI_DVSEC_HEADER1_LEN_MASK: u32 = 0xfff0_0000;
/// Offset of DVSEC Header 2 within the DVSEC.
pub(crate) const PCI_DVSEC_HEADER2: u16 = 0x8;
/// DVSEC Header 2: DVSEC ID.
pub(crate) const PCI_DVSEC_HEADER2_ID_MASK: u32 = 0x0000_ffff;

/// The vendor id of every CXL DVSEC (the CXL consortium).
pub(crate) const PCI_VENDOR_ID_CXL: u16 = 0x1e98;
/// DVSEC id of the PCIe DVSEC for CXL Devices (8.1.3).
pub(crate) const CXL_DVSEC_PCIE_DEVICE: u16 = 0;
/// DVSEC id of the Register Locator DVSEC (8.1.9).
pub(crate) const CXL_DVSEC_REG_LOCATOR: u16 = 8;

// ---------------------------------------------------------------------------------------------
// Register Locator DVSEC (8.1.9)
// ---------------------------------------------------------------------------------------------

/// Offset of the first Register Block entry within the Register Locator DVSEC.
pub(crate) const CXL_DVSEC_REG_LOCATOR_BLOCK1_OFFSET: u16 = 0xc;
/// Size of one Register Block entry (Register Offset Low, Register Offset High).
pub(crate) const CXL_DVSEC_REG_LOCATOR_ENTRY_SIZE: u16 = 8;
/// Register Offset Low: Register BIR (the BAR holding the block).
pub(crate) const CXL_DVSEC_REG_LOCATOR_BIR_MASK: u32 = 0x0000_0007;
/// Register Offset Low: Register Block Identifier.
pub(crate) const CXL_DVSEC_REG_LOCATOR_BLOCK_ID_MASK: u32 = 0x0000_ff00;
/// Register Offset Low: bits 31:16 of the block's offset within the BAR.
pub(crate) const CXL_DVSEC_REG_LOCATOR_BLOCK_OFF_LOW_MASK: u32 = 0xffff_0000;
/// Largest valid Register BIR: BARs 0 to 5.
pub(crate) const CXL_DVSEC_REG_LOCATOR_BIR_MAX: u8 = 5;

/// Register Block Identifier: empty entry.
pub(crate) const CXL_REGLOC_RBI_EMPTY: u8 = 0;
/// Register Block Identifier: component registers.
pub(crate) const CXL_REGLOC_RBI_COMPONENT: u8 = 1;
/// Register Block Identifier: BAR virtualization ACL registers.
pub(crate) const CXL_REGLOC_RBI_VIRT: u8 = 2;
/// Register Block Identifier: CXL memory device registers.
pub(crate) const CXL_REGLOC_RBI_MEMDEV: u8 = 3;
/// Register Block Identifier: CXL performance monitoring unit registers.
pub(crate) const CXL_REGLOC_RBI_PMU: u8 = 4;

// ---------------------------------------------------------------------------------------------
// PCIe DVSEC for CXL Devices (8.1.3); offsets relative to the DVSEC start
// ---------------------------------------------------------------------------------------------

/// DVSEC length of a CXL 2.0 device (ends after Range 2 Base Low, no Capability3).
pub(crate) const CXL_DVSEC_PCIE_DEVICE_LEN_MIN: u16 = 0x38;

/// Offset of DVSEC CXL Capability.
pub(crate) const CXL_DVSEC_CAPABILITY_OFFSET: u16 = 0x0a;
/// Offset of DVSEC CXL Control.
pub(crate) const CXL_DVSEC_CONTROL_OFFSET: u16 = 0x0c;
/// Offset of DVSEC CXL Status.
pub(crate) const CXL_DVSEC_STATUS_OFFSET: u16 = 0x0e;
/// Offset of DVSEC CXL Control2.
pub(crate) const CXL_DVSEC_CONTROL2_OFFSET: u16 = 0x10;
/// Offset of DVSEC CXL Status2.
pub(crate) const CXL_DVSEC_STATUS2_OFFSET: u16 = 0x12;
/// Offset of DVSEC CXL Lock.
pub(crate) const CXL_DVSEC_LOCK_OFFSET: u16 = 0x14;
/// Offset of DVSEC CXL Capability2.
pub(crate) const CXL_DVSEC_CAPABILITY2_OFFSET: u16 = 0x16;
/// Offset of DVSEC CXL Range 1 Size High.
pub(crate) const CXL_DVSEC_RANGE1_SIZE_HIGH_OFFSET: u16 = 0x18;
/// Offset of DVSEC CXL Range 1 Size Low.
pub(crate) const CXL_DVSEC_RANGE1_SIZE_LOW_OFFSET: u16 = 0x1c;
/// Offset of DVSEC CXL Range 1 Base High.
pub(crate) const CXL_DVSEC_RANGE1_BASE_HIGH_OFFSET: u16 = 0x20;
/// Offset of DVSEC CXL Range 1 Base Low.
pub(crate) const CXL_DVSEC_RANGE1_BASE_LOW_OFFSET: u16 = 0x24;
/// Offset of DVSEC CXL Range 2 Size High.
pub(crate) const CXL_DVSEC_RANGE2_SIZE_HIGH_OFFSET: u16 = 0x28;
/// Offset of DVSEC CXL Range 2 Size Low.
pub(crate) const CXL_DVSEC_RANGE2_SIZE_LOW_OFFSET: u16 = 0x2c;
/// Offset of DVSEC CXL Range 2 Base High.
pub(crate) const CXL_DVSEC_RANGE2_BASE_HIGH_OFFSET: u16 = 0x30;
/// Offset of DVSEC CXL Range 2 Base Low.
pub(crate) const CXL_DVSEC_RANGE2_BASE_LOW_OFFSET: u16 = 0x34;
/// Offset of DVSEC CXL Capability3 (present when the DVSEC is at least 0x3a bytes long).
pub(crate) const CXL_DVSEC_CAPABILITY3_OFFSET: u16 = 0x38;

/// Range Base Low: bits 27:0 are reserved.
pub(crate) const CXL_DVSEC_RANGE_BASE_LOW_RSVD_MASK: u32 = 0x0fff_ffff;

/// Capability: Cache_Capable.
pub(crate) const CXL_DVSEC_CAP_CACHE_CAPABLE: u16 = 1 << 0;
/// Capability: IO_Capable.
pub(crate) const CXL_DVSEC_CAP_IO_CAPABLE: u16 = 1 << 1;
/// Capability: Mem_Capable.
pub(crate) const CXL_DVSEC_CAP_MEM_CAPABLE: u16 = 1 << 2;
/// Capability: Mem_HwInit_Mode.
pub(crate) const CXL_DVSEC_CAP_MEM_HW_INIT_MODE: u16 = 1 << 3;
/// Capability: HDM_Count.
pub(crate) const CXL_DVSEC_CAP_HDM_COUNT_MASK: u16 = 0x0030;
/// Capability: Cache Writeback and Invalidate Capable.
pub(crate) const CXL_DVSEC_CAP_CACHE_WBI_CAPABLE: u16 = 1 << 6;
/// Capability: CXL Reset Capable.
pub(crate) const CXL_DVSEC_CAP_CXL_RESET_CAPABLE: u16 = 1 << 7;
/// Capability: CXL Reset Timeout.
pub(crate) const CXL_DVSEC_CAP_CXL_RESET_TIMEOUT_MASK: u16 = 0x0700;
/// Capability: CXL Reset Mem Clr Capable.
pub(crate) const CXL_DVSEC_CAP_CXL_RESET_MEM_CLR_CAPABLE: u16 = 1 << 11;
/// Capability: TSP Capable.
pub(crate) const CXL_DVSEC_CAP_TSP_CAPABLE: u16 = 1 << 12;
/// Capability: Multiple Logical Device.
pub(crate) const CXL_DVSEC_CAP_MLD_CAPABLE: u16 = 1 << 13;
/// Capability: Viral_Capable.
pub(crate) const CXL_DVSEC_CAP_VIRAL_CAPABLE: u16 = 1 << 14;
/// Capability: PM Init Completion Reporting Capable.
pub(crate) const CXL_DVSEC_CAP_PM_INIT_REPORTING_CAPABLE: u16 = 1 << 15;

/// Control: Cache_Enable.
pub(crate) const CXL_DVSEC_CTRL_CACHE_ENABLE: u16 = 1 << 0;
/// Control: IO_Enable.
pub(crate) const CXL_DVSEC_CTRL_IO_ENABLE: u16 = 1 << 1;
/// Control: Mem_Enable.
pub(crate) const CXL_DVSEC_CTRL_MEM_ENABLE: u16 = 1 << 2;
/// Control: Cache_SF_Coverage.
pub(crate) const CXL_DVSEC_CTRL_CACHE_SF_COVERAGE_MASK: u16 = 0x00f8;
/// Control: Cache_SF_Granularity.
pub(crate) const CXL_DVSEC_CTRL_CACHE_SF_GRANULARITY_MASK: u16 = 0x0700;
/// Control: Cache_Clean_Eviction.
pub(crate) const CXL_DVSEC_CTRL_CACHE_CLEAN_EVICTION: u16 = 1 << 11;
/// Control: Direct P2P Mem Enable.
pub(crate) const CXL_DVSEC_CTRL_P2P_MEM_ENABLE: u16 = 1 << 12;
/// Control: Viral_Enable.
pub(crate) const CXL_DVSEC_CTRL_VIRAL_ENABLE: u16 = 1 << 14;

/// Status: Viral_Status (RW1CS).
pub(crate) const CXL_DVSEC_STATUS_VIRAL_STATUS: u16 = 1 << 14;

/// Control2: Disable Caching.
pub(crate) const CXL_DVSEC_CTRL2_DISABLE_CACHING: u16 = 1 << 0;
/// Control2: Initiate Cache Write Back and Invalidation.
pub(crate) const CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI: u16 = 1 << 1;
/// Control2: Initiate CXL Reset.
pub(crate) const CXL_DVSEC_CTRL2_INITIATE_CXL_RESET: u16 = 1 << 2;
/// Control2: CXL Reset Mem Clr Enable.
pub(crate) const CXL_DVSEC_CTRL2_CXL_RESET_MEM_CLR_ENABLE: u16 = 1 << 3;
/// Control2: Desired Volatile HDM State after Hot Reset.
pub(crate) const CXL_DVSEC_CTRL2_DESIRED_VOLATILE_HDM: u16 = 1 << 4;
/// Control2: Modified Completion Enable.
pub(crate) const CXL_DVSEC_CTRL2_MOD_COMPLETION_ENABLE: u16 = 1 << 5;

/// Status2: Cache Invalid.
pub(crate) const CXL_DVSEC_STATUS2_CACHE_INVALID: u16 = 1 << 0;
/// Status2: CXL Reset Complete.
pub(crate) const CXL_DVSEC_STATUS2_CXL_RESET_COMPLETE: u16 = 1 << 1;
/// Status2: CXL Reset Error.
pub(crate) const CXL_DVSEC_STATUS2_CXL_RESET_ERROR: u16 = 1 << 2;
/// Status2: Volatile HDM Preservation Error (RW1CS).
pub(crate) const CXL_DVSEC_STATUS2_VOLATILE_HDM_PRES_ERROR: u16 = 1 << 3;
/// Status2: Power Management Initialization Complete.
pub(crate) const CXL_DVSEC_STATUS2_PM_INIT_COMPLETION: u16 = 1 << 15;

/// Lock: CONFIG_LOCK.
pub(crate) const CXL_DVSEC_LOCK_CONFIG_LOCK: u16 = 1 << 0;

/// Capability2: Cache Size Unit.
pub(crate) const CXL_DVSEC_CAP2_CACHE_SIZE_UNIT_MASK: u16 = 0x000f;
/// Capability2: Fallback Capability.
pub(crate) const CXL_DVSEC_CAP2_FALLBACK_CAPABILITY_MASK: u16 = 0x0030;
/// Capability2: Modified Completion Capable.
pub(crate) const CXL_DVSEC_CAP2_MOD_COMPLETION_CAPABLE: u16 = 1 << 6;
/// Capability2: No Clean Writeback.
pub(crate) const CXL_DVSEC_CAP2_NO_CLEAN_WRITEBACK: u16 = 1 << 7;
/// Capability2: Cache Size.
pub(crate) const CXL_DVSEC_CAP2_CACHE_SIZE_MASK: u16 = 0xff00;

/// Capability3: Default Volatile HDM State after Cold Reset.
pub(crate) const CXL_DVSEC_CAP3_DEFAULT_VOLATILE_HDM_COLD_RESET: u16 = 1 << 0;
/// Capability3: Default Volatile HDM State after Warm Reset.
pub(crate) const CXL_DVSEC_CAP3_DEFAULT_VOLATILE_HDM_WARM_RESET: u16 = 1 << 1;
/// Capability3: Default Volatile HDM State after Hot Reset.
pub(crate) const CXL_DVSEC_CAP3_DEFAULT_VOLATILE_HDM_HOT_RESET: u16 = 1 << 2;
/// Capability3: Volatile HDM State Configurability.
pub(crate) const CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY: u16 = 1 << 3;
/// Capability3: Direct Peer-to-Peer access to HDM.
pub(crate) const CXL_DVSEC_CAP3_P2P_MEM_CAPABLE: u16 = 1 << 4;

/// Control emulation: bits 13 and 15 are RsvdP.
pub(crate) const CXL_CTRL_RESERVED_MASK: u16 = (1 << 13) | (1 << 15);
/// Control emulation: P2P Mem Enable is reserved without Capability3.P2P_Mem_Capable.
pub(crate) const CXL_CTRL_P2P_REV_MASK: u16 = CXL_DVSEC_CTRL_P2P_MEM_ENABLE;
/// Status emulation: bits 13:0 and 15 are RsvdZ.
pub(crate) const CXL_STATUS_RESERVED_MASK: u16 = 0x3fff | (1 << 15);
/// Control2 emulation: bits 15:6 are RsvdP.
pub(crate) const CXL_CTRL2_RESERVED_MASK: u16 = 0xffc0;
/// Control2 emulation: the action bits, which always read 0.
pub(crate) const CXL_CTRL2_HW_BITS_MASK: u16 =
    CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI | CXL_DVSEC_CTRL2_INITIATE_CXL_RESET;
/// Control2 emulation: bit 4 is reserved without Capability3.Volatile_HDM_Configurability.
pub(crate) const CXL_CTRL2_VOLATILE_HDM_REV_MASK: u16 = CXL_DVSEC_CTRL2_DESIRED_VOLATILE_HDM;
/// Control2 emulation: bit 5 is reserved without Capability2.Mod_Completion_Capable.
pub(crate) const CXL_CTRL2_MODIFIED_COMP_REV_MASK: u16 = CXL_DVSEC_CTRL2_MOD_COMPLETION_ENABLE;
/// Lock emulation: bits 15:1 are RsvdP.
pub(crate) const CXL_LOCK_RESERVED_MASK: u16 = 0xfffe;
/// Range Base Low emulation: bits 27:0 are reserved.
pub(crate) const CXL_BASE_LO_RESERVED_MASK: u32 = CXL_DVSEC_RANGE_BASE_LOW_RSVD_MASK;
