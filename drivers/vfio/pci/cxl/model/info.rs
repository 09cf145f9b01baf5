// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_GET_INFO` for a CXL device: vfio-pci's answer plus `VFIO_DEVICE_FLAGS_CXL` and the
//! `VFIO_DEVICE_INFO_CAP_CXL` capability, with vfio's `argsz` protocol.
//!
//! vfio-pci-core does not export its handler, so the driver answers the ioctl itself; this
//! module builds the bytes, the driver copies them.

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

/// What the device reports, besides the capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceInfo {
    /// Whether vfio-pci-core found a working reset.
    pub(crate) reset_works: bool,
    /// Fixed plus device-specific regions.
    pub(crate) num_regions: u32,
}

/// The reply to `VFIO_DEVICE_GET_INFO`: `header[..header_len]` goes to the start of the user's
/// structure and, when `caps` is set, those bytes go right after the structure.
pub(crate) struct Reply {
    /// The `struct vfio_device_info` to copy back.
    pub(crate) header: [u8; DEVICE_INFO_SIZE],
    /// How much of it to copy: `min(argsz, sizeof(struct vfio_device_info))`.
    pub(crate) header_len: usize,
    /// The capability chain, when the user's buffer holds it.
    pub(crate) caps: Option<[u8; CAP_CXL_SIZE]>,
}

/// `argsz` is smaller than the first fields: `EINVAL`, as vfio-pci answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ArgszTooSmall;

/// Builds the reply for a user structure whose `argsz` field is `argsz`.
///
/// As vfio-pci: with a capability the flags gain `VFIO_DEVICE_FLAGS_CAPS`; when `argsz` cannot
/// hold the structure and the chain, `argsz` is raised to what is needed and no capability is
/// copied (`cap_offset` stays 0); otherwise the chain follows the structure at `cap_offset`.
pub(crate) fn device_info(
    argsz: u32,
    info: DeviceInfo,
    cap: Option<CxlCap>,
) -> Result<Reply, ArgszTooSmall> {
    let user_size = argsz as usize;
    if user_size < DEVICE_INFO_MINSZ {
        return Err(ArgszTooSmall);
    }
    let mut flags = VFIO_DEVICE_FLAGS_PCI;
    if info.reset_works {
        flags |= VFIO_DEVICE_FLAGS_RESET;
    }
    let mut reply_argsz = argsz;
    let mut cap_offset = 0u32;
    let mut caps = None;
    if let Some(cap) = cap {
        flags |= VFIO_DEVICE_FLAGS_CXL | VFIO_DEVICE_FLAGS_CAPS;
        let needed = DEVICE_INFO_SIZE + CAP_CXL_SIZE;
        if user_size < needed {
            reply_argsz = needed as u32;
        } else {
            cap_offset = DEVICE_INFO_SIZE as u32;
            caps = Some(cap.to_bytes(0));
        }
    }
    let mut header = [0u8; DEVICE_INFO_SIZE];
    put(&mut header, 0, &reply_argsz.to_le_bytes());
    put(&mut header, 4, &flags.to_le_bytes());
    put(&mut header, 8, &info.num_regions.to_le_bytes());
    put(&mut header, 12, &VFIO_PCI_NUM_IRQS.to_le_bytes());
    put(&mut header, 16, &cap_offset.to_le_bytes());
    Ok(Reply {
        header,
        header_len: user_size.min(DEVICE_INFO_SIZE),
        caps,
    })
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

/// The reply to `VFIO_DEVICE_GET_REGION_INFO` for the component BAR: `header` goes to the
/// start of the user's structure, `caps[..caps_len]` right after it.
pub(crate) struct RegionReply {
    /// The `struct vfio_region_info` to copy back.
    pub(crate) header: [u8; REGION_INFO_SIZE],
    /// The capability chain; empty when there is none or the user's buffer cannot hold it.
    pub(crate) caps: [u8; CAP_SPARSE_MAX],
    /// How many bytes of `caps` to copy.
    pub(crate) caps_len: usize,
}

/// Builds the region info of the component BAR (region `index`, `size` bytes, at device-file
/// offset `offset`) whose mappable parts are `areas`, for a user structure whose `argsz` is
/// `argsz`: read and write always; mmap and a sparse mmap capability listing the areas when
/// there is at least one. The `argsz` protocol is vfio-pci's, as for [`device_info`].
pub(crate) fn bar_region_info(
    argsz: u32,
    index: u32,
    size: u64,
    offset: u64,
    areas: &[Option<(u64, u64)>],
) -> Result<RegionReply, ArgszTooSmall> {
    if (argsz as usize) < REGION_INFO_SIZE {
        return Err(ArgszTooSmall);
    }
    let mut flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    let mut cap = [0u8; CAP_SPARSE_MAX];
    let mut nr_areas = 0u32;
    for &(area_offset, area_size) in areas.iter().flatten().take(2) {
        let at = 16 + 16 * nr_areas as usize;
        put(&mut cap, at, &area_offset.to_le_bytes());
        put(&mut cap, at + 8, &area_size.to_le_bytes());
        nr_areas += 1;
    }
    let mut reply_argsz = argsz;
    let mut cap_offset = 0u32;
    let mut caps_len = 0;
    if nr_areas > 0 {
        flags |= VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
        put(&mut cap, 0, &VFIO_REGION_INFO_CAP_SPARSE_MMAP.to_le_bytes());
        put(&mut cap, 2, &1u16.to_le_bytes());
        put(&mut cap, 8, &nr_areas.to_le_bytes());
        let len = 16 + 16 * nr_areas as usize;
        if (argsz as usize) < REGION_INFO_SIZE + len {
            reply_argsz = (REGION_INFO_SIZE + len) as u32;
        } else {
            cap_offset = REGION_INFO_SIZE as u32;
            caps_len = len;
        }
    }
    let mut header = [0u8; REGION_INFO_SIZE];
    put(&mut header, 0, &reply_argsz.to_le_bytes());
    put(&mut header, 4, &flags.to_le_bytes());
    put(&mut header, 8, &index.to_le_bytes());
    put(&mut header, 12, &cap_offset.to_le_bytes());
    put(&mut header, 16, &size.to_le_bytes());
    put(&mut header, 24, &offset.to_le_bytes());
    if caps_len == 0 {
        cap = [0u8; CAP_SPARSE_MAX];
    }
    Ok(RegionReply {
        header,
        caps: cap,
        caps_len,
    })
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
