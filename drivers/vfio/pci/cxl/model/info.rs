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
