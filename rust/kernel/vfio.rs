// SPDX-License-Identifier: GPL-2.0

//! VFIO: userspace drivers for devices.
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h)

pub mod pci;

/// The VFIO UAPI values a variant driver dispatches on or reports, from
/// [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h).
///
/// The ioctl numbers are `_IO(VFIO_TYPE, VFIO_BASE + n)` macros, which bindgen does not expand:
/// they are built here once from the header's `VFIO_TYPE` and `VFIO_BASE`.
///
/// # Examples
///
/// ```
/// use kernel::vfio::uapi;
///
/// // The values every VMM has compiled in since these ioctls exist.
/// assert_eq!(uapi::DEVICE_RESET, 0x3b6f);
/// assert_eq!(uapi::DEVICE_PCI_HOT_RESET, 0x3b71);
/// assert_eq!(uapi::DEVICE_IOEVENTFD, 0x3b74);
/// ```
pub mod uapi {
    use crate::{bindings, ioctl::_IO};

    const fn vfio_io(nr: u32) -> u32 {
        _IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + nr)
    }

    /// `VFIO_DEVICE_RESET`.
    pub const DEVICE_RESET: u32 = vfio_io(11);
    /// `VFIO_DEVICE_PCI_HOT_RESET`.
    pub const DEVICE_PCI_HOT_RESET: u32 = vfio_io(13);
    /// `VFIO_DEVICE_IOEVENTFD`.
    pub const DEVICE_IOEVENTFD: u32 = vfio_io(16);
    /// `VFIO_DEVICE_FEATURE_MASK`: the feature index in `VFIO_DEVICE_FEATURE` flags.
    pub const DEVICE_FEATURE_MASK: u32 = bindings::VFIO_DEVICE_FEATURE_MASK;
    /// `VFIO_DEVICE_FEATURE_SET`.
    pub const DEVICE_FEATURE_SET: u32 = bindings::VFIO_DEVICE_FEATURE_SET;
    /// `VFIO_DEVICE_FEATURE_PROBE`.
    pub const DEVICE_FEATURE_PROBE: u32 = bindings::VFIO_DEVICE_FEATURE_PROBE;
    /// `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY`.
    pub const DEVICE_FEATURE_LOW_POWER_ENTRY: u32 = bindings::VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY;
    /// `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP`.
    pub const DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: u32 =
        bindings::VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP;
    /// `VFIO_DEVICE_FEATURE_LOW_POWER_EXIT`.
    pub const DEVICE_FEATURE_LOW_POWER_EXIT: u32 = bindings::VFIO_DEVICE_FEATURE_LOW_POWER_EXIT;
    /// `VFIO_DEVICE_FLAGS_CXL`.
    pub const DEVICE_FLAGS_CXL: u32 = bindings::VFIO_DEVICE_FLAGS_CXL;
    /// `VFIO_DEVICE_INFO_CAP_CXL`.
    pub const DEVICE_INFO_CAP_CXL: u32 = bindings::VFIO_DEVICE_INFO_CAP_CXL;
    /// `VFIO_CXL_CAP_FIRMWARE_COMMITTED`.
    pub const CXL_CAP_FIRMWARE_COMMITTED: u32 = bindings::VFIO_CXL_CAP_FIRMWARE_COMMITTED;
    /// `VFIO_CXL_CAP_CACHE_CAPABLE`.
    pub const CXL_CAP_CACHE_CAPABLE: u32 = bindings::VFIO_CXL_CAP_CACHE_CAPABLE;
    /// `VFIO_REGION_SUBTYPE_CXL`: the DPA region.
    pub const REGION_SUBTYPE_CXL: u32 = bindings::VFIO_REGION_SUBTYPE_CXL;
    /// `VFIO_REGION_SUBTYPE_CXL_COMP_REGS`.
    pub const REGION_SUBTYPE_CXL_COMP_REGS: u32 = bindings::VFIO_REGION_SUBTYPE_CXL_COMP_REGS;
    /// `VFIO_REGION_INFO_CAP_CXL_COMP_REGS`.
    pub const REGION_INFO_CAP_CXL_COMP_REGS: u32 = bindings::VFIO_REGION_INFO_CAP_CXL_COMP_REGS;
    /// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`.
    pub const REGION_INFO_CAP_SPARSE_MMAP: u32 = bindings::VFIO_REGION_INFO_CAP_SPARSE_MMAP;
    /// `VFIO_REGION_INFO_FLAG_MMAP`.
    pub const REGION_INFO_FLAG_MMAP: u32 = bindings::VFIO_REGION_INFO_FLAG_MMAP;
}
