// SPDX-License-Identifier: GPL-2.0

//! What the driver adds to vfio-pci-core's info replies: `VFIO_DEVICE_FLAGS_CXL` and the
//! `VFIO_DEVICE_INFO_CAP_CXL` capability in `VFIO_DEVICE_GET_INFO`; the sparse mmap capability
//! of the component BAR and the COMP_REGS region's capability in `VFIO_DEVICE_GET_REGION_INFO`.
//!
//! vfio-pci-core builds each reply (flags, sizes, its own capabilities, the `argsz` protocol)
//! and calls the driver's hook before copying it out; this module builds the driver's bytes.

/// `sizeof(struct vfio_device_info)`: argsz, flags, num_regions, num_irqs, cap_offset, pad.
pub(crate) const DEVICE_INFO_SIZE: usize = 24;
/// `offsetofend(struct vfio_device_info, num_irqs)`: the smallest valid `argsz`.
pub(crate) const DEVICE_INFO_MINSZ: usize = 16;
/// `sizeof(struct vfio_device_info_cap_cxl)`.
pub(crate) const CAP_CXL_SIZE: usize = 32;

/// `VFIO_DEVICE_FLAGS_RESET`.
pub(crate) const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub(crate) const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// `VFIO_DEVICE_FLAGS_CAPS`.
pub(crate) const VFIO_DEVICE_FLAGS_CAPS: u32 = 1 << 7;
/// `VFIO_DEVICE_FLAGS_CXL`.
pub(crate) const VFIO_DEVICE_FLAGS_CXL: u32 = 1 << 9;
/// `VFIO_DEVICE_INFO_CAP_CXL`.
pub(crate) const VFIO_DEVICE_INFO_CAP_CXL: u16 = 6;
/// Version of the capability this driver fills in.
pub(crate) const VFIO_DEVICE_INFO_CAP_CXL_VERSION: u16 = 1;
/// `VFIO_CXL_CAP_FIRMWARE_COMMITTED`.
pub(crate) const VFIO_CXL_CAP_FIRMWARE_COMMITTED: u32 = 1 << 0;
/// `VFIO_CXL_CAP_CACHE_CAPABLE`.
pub(crate) const VFIO_CXL_CAP_CACHE_CAPABLE: u32 = 1 << 1;
/// `VFIO_PCI_NUM_IRQS`: INTx, MSI, MSI-X, ERR, REQ.
pub(crate) const VFIO_PCI_NUM_IRQS: u32 = 5;
/// The region index reported for a region the device does not have (no committed decoder
/// means no DPA region).
pub(crate) const NO_REGION: u32 = u32::MAX;

/// The content of `VFIO_DEVICE_INFO_CAP_CXL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CxlCap {
    /// BAR holding the component registers.
    pub(crate) bar: u8,
    /// `VFIO_CXL_CAP_*` flags.
    pub(crate) flags: u32,
    /// Offset in the BAR of the CXL.mem area (component block + 0x1000).
    pub(crate) hdm_regs_offset: u64,
    /// Absolute index of the DPA region, or [`NO_REGION`].
    pub(crate) dpa_region_index: u32,
    /// Absolute index of the COMP_REGS region.
    pub(crate) comp_regs_region_index: u32,
}

impl CxlCap {
    /// The capability's bytes, chained to `next` (0: last), as `struct vfio_device_info_cap_cxl`.
    pub(crate) fn to_bytes(self, next: u32) -> [u8; CAP_CXL_SIZE] {
        let mut b = [0u8; CAP_CXL_SIZE];
        put(&mut b, 0, &VFIO_DEVICE_INFO_CAP_CXL.to_le_bytes());
        put(&mut b, 2, &VFIO_DEVICE_INFO_CAP_CXL_VERSION.to_le_bytes());
        put(&mut b, 4, &next.to_le_bytes());
        put(&mut b, 8, &[self.bar]);
        put(&mut b, 12, &self.flags.to_le_bytes());
        put(&mut b, 16, &self.hdm_regs_offset.to_le_bytes());
        put(&mut b, 24, &self.dpa_region_index.to_le_bytes());
        put(&mut b, 28, &self.comp_regs_region_index.to_le_bytes());
        b
    }
}

/// Copies `bytes` to `buf[at..]` (the offsets are constants that fit).
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// `offsetofend(struct vfio_region_info, offset)` = `sizeof(struct vfio_region_info)`.
pub(crate) const REGION_INFO_SIZE: usize = 32;
/// `VFIO_REGION_INFO_FLAG_READ`.
pub(crate) const VFIO_REGION_INFO_FLAG_READ: u32 = 1 << 0;
/// `VFIO_REGION_INFO_FLAG_WRITE`.
pub(crate) const VFIO_REGION_INFO_FLAG_WRITE: u32 = 1 << 1;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub(crate) const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
/// `VFIO_REGION_INFO_FLAG_CAPS`.
pub(crate) const VFIO_REGION_INFO_FLAG_CAPS: u32 = 1 << 3;
/// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`.
pub(crate) const VFIO_REGION_INFO_CAP_SPARSE_MMAP: u16 = 1;
/// `VFIO_REGION_INFO_CAP_CXL_COMP_REGS`.
pub(crate) const VFIO_REGION_INFO_CAP_CXL_COMP_REGS: u16 = 6;
/// `sizeof(struct vfio_region_info_cap_cxl_comp_regs)`.
pub(crate) const CAP_COMP_REGS_SIZE: usize = 32;
/// Largest sparse mmap capability this driver builds: header, count, two areas.
pub(crate) const CAP_SPARSE_MAX: usize = 16 + 2 * 16;

/// The flags of the component BAR's region info, from vfio-pci-core's: without `MMAP` when no
/// part of the BAR outside the component register block can be mapped (`areas` empty).
pub(crate) fn comp_bar_flags(core_flags: u32, areas: &[Option<(u64, u64)>]) -> u32 {
    if areas.iter().flatten().next().is_some() {
        core_flags
    } else {
        core_flags & !VFIO_REGION_INFO_FLAG_MMAP
    }
}

/// `VFIO_REGION_INFO_CAP_SPARSE_MMAP` listing `areas` (offset, size each; at most two): its
/// bytes and length, `None` when there is no area.
pub(crate) fn sparse_mmap_cap(
    areas: &[Option<(u64, u64)>],
) -> Option<([u8; CAP_SPARSE_MAX], usize)> {
    let mut cap = [0u8; CAP_SPARSE_MAX];
    let mut nr_areas = 0u32;
    for &(area_offset, area_size) in areas.iter().flatten().take(2) {
        let at = 16 + 16 * nr_areas as usize;
        put(&mut cap, at, &area_offset.to_le_bytes());
        put(&mut cap, at + 8, &area_size.to_le_bytes());
        nr_areas += 1;
    }
    if nr_areas == 0 {
        return None;
    }
    put(&mut cap, 0, &VFIO_REGION_INFO_CAP_SPARSE_MMAP.to_le_bytes());
    put(&mut cap, 2, &1u16.to_le_bytes());
    put(&mut cap, 8, &nr_areas.to_le_bytes());
    Some((cap, 16 + 16 * nr_areas as usize))
}

/// The COMP_REGS region's `VFIO_REGION_INFO_CAP_CXL_COMP_REGS` capability, version 1: the
/// component register block is `[block_offset, block_offset + block_size)` of BAR `bar`.
pub(crate) fn comp_regs_cap(
    bar: u32,
    block_offset: u64,
    block_size: u64,
) -> [u8; CAP_COMP_REGS_SIZE] {
    let mut b = [0u8; CAP_COMP_REGS_SIZE];
    put(&mut b, 0, &VFIO_REGION_INFO_CAP_CXL_COMP_REGS.to_le_bytes());
    put(&mut b, 2, &1u16.to_le_bytes());
    put(&mut b, 8, &bar.to_le_bytes());
    put(&mut b, 16, &block_offset.to_le_bytes());
    put(&mut b, 24, &block_size.to_le_bytes());
    b
}
