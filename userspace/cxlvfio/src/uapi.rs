//! Hand-written subset of the VFIO and iommufd UAPI (`include/uapi/linux/vfio.h`
//! and `include/uapi/linux/iommufd.h`, Linux 6.12).
//!
//! Only what a VMM needs to open a PCI device (through the legacy
//! container/group interface or through its VFIO cdev bound to an iommufd),
//! map memory for its DMA, query it, access its regions and reset it. Layouts
//! are checked at compile time against the sizes the C headers produce.

use std::mem::size_of;

// ---------------------------------------------------------------------------
// ioctl number encoding
// ---------------------------------------------------------------------------

// Most architectures use the asm-generic layout: nr in bits 0..8, type in 8..16,
// size in 16..30 and direction in 30..32, with _IOC_NONE == 0. A few keep an
// older layout with a 3-bit direction field where "none" is 1.
#[cfg(not(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
mod ioc {
    pub const NONE: u64 = 0;
    pub const DIRSHIFT: u64 = 30;
}
#[cfg(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
mod ioc {
    pub const NONE: u64 = 1;
    pub const DIRSHIFT: u64 = 29;
}

const IOC_NRSHIFT: u64 = 0;
const IOC_TYPESHIFT: u64 = 8;
const IOC_SIZESHIFT: u64 = 16;

/// `_IOC(dir, type, nr, size)` from `include/uapi/asm-generic/ioctl.h`.
pub const fn ioc(dir: u64, ty: u8, nr: u8, size: u64) -> u64 {
    (dir << ioc::DIRSHIFT)
        | ((ty as u64) << IOC_TYPESHIFT)
        | ((nr as u64) << IOC_NRSHIFT)
        | (size << IOC_SIZESHIFT)
}

/// `_IO(type, nr)`: an ioctl with no size or direction encoded. VFIO uses this
/// for every request and passes structures through `argsz` instead.
pub const fn io(ty: u8, nr: u8) -> u64 {
    ioc(ioc::NONE, ty, nr, 0)
}

/// The VFIO ioctl type character, `';'`.
pub const VFIO_TYPE: u8 = b';';
/// First VFIO ioctl number.
pub const VFIO_BASE: u8 = 100;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`.
pub const fn vfio_io(n: u8) -> u64 {
    io(VFIO_TYPE, VFIO_BASE + n)
}

/// The only API version the kernel has ever reported.
pub const VFIO_API_VERSION: i32 = 0;

// ---------------------------------------------------------------------------
// IOMMU types (VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU arguments)
// ---------------------------------------------------------------------------

/// Type1 IOMMU (x86 and most others).
pub const VFIO_TYPE1_IOMMU: u32 = 1;
/// sPAPR TCE IOMMU.
pub const VFIO_SPAPR_TCE_IOMMU: u32 = 2;
/// Type1 IOMMU, version 2 semantics (the one VMMs use).
pub const VFIO_TYPE1V2_IOMMU: u32 = 3;
/// No-IOMMU mode: no isolation or translation; needs `enable_unsafe_noiommu_mode`.
pub const VFIO_NOIOMMU_IOMMU: u32 = 8;

// ---------------------------------------------------------------------------
// ioctl numbers
// ---------------------------------------------------------------------------

/// Container: report the API version (returns it).
pub const VFIO_GET_API_VERSION: u64 = vfio_io(0);
/// Container: is an extension (IOMMU type) supported (returns > 0 if so).
pub const VFIO_CHECK_EXTENSION: u64 = vfio_io(1);
/// Container: select the IOMMU backend (argument by value).
pub const VFIO_SET_IOMMU: u64 = vfio_io(2);
/// Group: fill a [`VfioGroupStatus`].
pub const VFIO_GROUP_GET_STATUS: u64 = vfio_io(3);
/// Group: attach to a container (argument: pointer to the container fd).
pub const VFIO_GROUP_SET_CONTAINER: u64 = vfio_io(4);
/// Group: detach from its container.
pub const VFIO_GROUP_UNSET_CONTAINER: u64 = vfio_io(5);
/// Group: open a device by name (argument: NUL-terminated string), returns its fd.
pub const VFIO_GROUP_GET_DEVICE_FD: u64 = vfio_io(6);
/// Device: fill a [`VfioDeviceInfo`].
pub const VFIO_DEVICE_GET_INFO: u64 = vfio_io(7);
/// Device: fill a [`VfioRegionInfo`] (plus capability chain).
pub const VFIO_DEVICE_GET_REGION_INFO: u64 = vfio_io(8);
/// Device: fill a [`VfioIrqInfo`].
pub const VFIO_DEVICE_GET_IRQ_INFO: u64 = vfio_io(9);
/// Device: configure interrupt signalling (`struct vfio_irq_set`).
pub const VFIO_DEVICE_SET_IRQS: u64 = vfio_io(10);
/// Device: reset the device (no argument).
pub const VFIO_DEVICE_RESET: u64 = vfio_io(11);
/// `VFIO_DEVICE_IOEVENTFD`.
pub const VFIO_DEVICE_IOEVENTFD: u64 = vfio_io(16);
/// Device: list the devices a PCI hot reset would affect.
pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: u64 = vfio_io(12);
/// Device: perform a PCI hot (bus) reset.
pub const VFIO_DEVICE_PCI_HOT_RESET: u64 = vfio_io(13);
/// Device: get, set or probe a device feature ([`VfioDeviceFeature`] + payload).
pub const VFIO_DEVICE_FEATURE: u64 = vfio_io(17);
/// Device (cdev fd only): bind to an iommufd ([`VfioDeviceBindIommufd`]); the
/// driver's `open_device` runs here, so its errors (e.g. `EBUSY`) surface here.
pub const VFIO_DEVICE_BIND_IOMMUFD: u64 = vfio_io(18);
/// Device (cdev fd only): attach to an IOAS or HWPT ([`VfioDeviceAttachIommufdPt`]).
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u64 = vfio_io(19);
/// Device (cdev fd only): detach from its IOAS or HWPT ([`VfioDeviceDetachIommufdPt`]).
pub const VFIO_DEVICE_DETACH_IOMMUFD_PT: u64 = vfio_io(20);
/// Container (type1): map user memory for DMA ([`VfioIommuType1DmaMap`]). Same
/// number as [`VFIO_DEVICE_PCI_HOT_RESET`], on another kind of fd.
pub const VFIO_IOMMU_MAP_DMA: u64 = vfio_io(13);
/// Container (type1): unmap an IOVA range ([`VfioIommuType1DmaUnmap`]).
pub const VFIO_IOMMU_UNMAP_DMA: u64 = vfio_io(14);

// ---------------------------------------------------------------------------
// Structures
// ---------------------------------------------------------------------------

/// `struct vfio_group_status`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioGroupStatus {
    /// Size of the structure passed in (set by the caller).
    pub argsz: u32,
    /// `VFIO_GROUP_FLAGS_*`.
    pub flags: u32,
}

/// Every device in the group is bound to a VFIO driver (or none).
pub const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;
/// The group is attached to a container.
pub const VFIO_GROUP_FLAGS_CONTAINER_SET: u32 = 1 << 1;

/// `struct vfio_device_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioDeviceInfo {
    /// Size of the buffer passed in; the kernel raises it when capabilities need more.
    pub argsz: u32,
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Max region index + 1.
    pub num_regions: u32,
    /// Max IRQ index + 1.
    pub num_irqs: u32,
    /// Offset of the first capability within the buffer (0: none).
    pub cap_offset: u32,
    /// Padding, keeps the size a multiple of 8.
    pub pad: u32,
}

/// Device supports `VFIO_DEVICE_RESET`.
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// vfio-pci device.
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// vfio-platform device.
pub const VFIO_DEVICE_FLAGS_PLATFORM: u32 = 1 << 2;
/// vfio-amba device.
pub const VFIO_DEVICE_FLAGS_AMBA: u32 = 1 << 3;
/// vfio-ccw device.
pub const VFIO_DEVICE_FLAGS_CCW: u32 = 1 << 4;
/// vfio-ap device.
pub const VFIO_DEVICE_FLAGS_AP: u32 = 1 << 5;
/// vfio-fsl-mc device.
pub const VFIO_DEVICE_FLAGS_FSL_MC: u32 = 1 << 6;
/// The info carries a capability chain.
pub const VFIO_DEVICE_FLAGS_CAPS: u32 = 1 << 7;
/// vfio-cdx device.
pub const VFIO_DEVICE_FLAGS_CDX: u32 = 1 << 8;

/// `struct vfio_region_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioRegionInfo {
    /// Size of the buffer passed in; the kernel raises it when capabilities need more.
    pub argsz: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Region index (set by the caller).
    pub index: u32,
    /// Offset of the first capability within the buffer (0: none).
    pub cap_offset: u32,
    /// Region size in bytes (0: not implemented).
    pub size: u64,
    /// Offset of the region within the device fd, for pread/pwrite/mmap.
    pub offset: u64,
}

/// Region supports read.
pub const VFIO_REGION_INFO_FLAG_READ: u32 = 1 << 0;
/// Region supports write.
pub const VFIO_REGION_INFO_FLAG_WRITE: u32 = 1 << 1;
/// Region supports mmap.
pub const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
/// The info carries a capability chain.
pub const VFIO_REGION_INFO_FLAG_CAPS: u32 = 1 << 3;

/// Region capability: sparse mmap areas (`struct vfio_region_info_cap_sparse_mmap`).
pub const VFIO_REGION_INFO_CAP_SPARSE_MMAP: u16 = 1;
/// Region capability: device-specific region type (`struct vfio_region_info_cap_type`).
pub const VFIO_REGION_INFO_CAP_TYPE: u16 = 2;
/// Region capability: the MSI-X table may be mmapped.
pub const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: u16 = 3;

/// `struct vfio_info_cap_header`: starts every capability in a chain.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioInfoCapHeader {
    /// Capability id (namespace depends on the ioctl).
    pub id: u16,
    /// Capability version.
    pub version: u16,
    /// Offset of the next capability from the start of the info buffer (0: last).
    pub next: u32,
}

/// `struct vfio_region_sparse_mmap_area`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioRegionSparseMmapArea {
    /// Offset of the mmap-able area within the region.
    pub offset: u64,
    /// Size of the area.
    pub size: u64,
}

/// `struct vfio_device_feature`, without its variable-size `data[]` payload.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioDeviceFeature {
    /// Size of the structure plus payload passed in.
    pub argsz: u32,
    /// Feature index (bits 15:0) and `VFIO_DEVICE_FEATURE_{GET,SET,PROBE}`.
    pub flags: u32,
}

/// Feature index bits of [`VfioDeviceFeature::flags`].
pub const VFIO_DEVICE_FEATURE_MASK: u32 = 0xffff;
/// Get the feature into the payload.
pub const VFIO_DEVICE_FEATURE_GET: u32 = 1 << 16;
/// Set the feature from the payload.
pub const VFIO_DEVICE_FEATURE_SET: u32 = 1 << 17;
/// Only probe whether the feature (with GET/SET) is supported.
pub const VFIO_DEVICE_FEATURE_PROBE: u32 = 1 << 18;
/// Feature: allow runtime low power; mmap access faults until LOW_POWER_EXIT (no payload).
pub const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: u32 = 3;
/// Feature: like LOW_POWER_ENTRY, with an eventfd signalled on wakeup.
pub const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: u32 = 4;
/// Feature: leave runtime low power (no payload).
pub const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT: u32 = 5;

/// `struct vfio_irq_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioIrqInfo {
    /// Size of the structure passed in.
    pub argsz: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// IRQ index (set by the caller).
    pub index: u32,
    /// Number of vectors for this index.
    pub count: u32,
}

/// IRQ can be signalled through an eventfd.
pub const VFIO_IRQ_INFO_EVENTFD: u32 = 1 << 0;
/// IRQ can be masked.
pub const VFIO_IRQ_INFO_MASKABLE: u32 = 1 << 1;
/// IRQ is masked automatically after it fires.
pub const VFIO_IRQ_INFO_AUTOMASKED: u32 = 1 << 2;
/// The vector count cannot be changed once enabled.
pub const VFIO_IRQ_INFO_NORESIZE: u32 = 1 << 3;

// ---------------------------------------------------------------------------
// vfio-pci region and IRQ indexes
// ---------------------------------------------------------------------------

/// BAR 0.
pub const VFIO_PCI_BAR0_REGION_INDEX: u32 = 0;
/// BAR 1.
pub const VFIO_PCI_BAR1_REGION_INDEX: u32 = 1;
/// BAR 2.
pub const VFIO_PCI_BAR2_REGION_INDEX: u32 = 2;
/// BAR 3.
pub const VFIO_PCI_BAR3_REGION_INDEX: u32 = 3;
/// BAR 4.
pub const VFIO_PCI_BAR4_REGION_INDEX: u32 = 4;
/// BAR 5.
pub const VFIO_PCI_BAR5_REGION_INDEX: u32 = 5;
/// Expansion ROM.
pub const VFIO_PCI_ROM_REGION_INDEX: u32 = 6;
/// Configuration space (emulated/virtualized by vfio-pci).
pub const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;
/// Legacy VGA ranges (only on VGA devices).
pub const VFIO_PCI_VGA_REGION_INDEX: u32 = 8;
/// Number of fixed vfio-pci regions; device-specific regions follow.
pub const VFIO_PCI_NUM_REGIONS: u32 = 9;

/// Legacy INTx.
pub const VFIO_PCI_INTX_IRQ_INDEX: u32 = 0;
/// MSI.
pub const VFIO_PCI_MSI_IRQ_INDEX: u32 = 1;
/// MSI-X.
pub const VFIO_PCI_MSIX_IRQ_INDEX: u32 = 2;
/// AER error notification.
pub const VFIO_PCI_ERR_IRQ_INDEX: u32 = 3;
/// Device release request.
pub const VFIO_PCI_REQ_IRQ_INDEX: u32 = 4;
/// Number of vfio-pci IRQ indexes.
pub const VFIO_PCI_NUM_IRQS: u32 = 5;

// ---------------------------------------------------------------------------
// Type1 DMA mapping (container fd)
// ---------------------------------------------------------------------------

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioIommuType1DmaMap {
    /// Size of the structure passed in.
    pub argsz: u32,
    /// `VFIO_DMA_MAP_FLAG_*`: READ and/or WRITE are required.
    pub flags: u32,
    /// Process virtual address of the memory.
    pub vaddr: u64,
    /// IO virtual address the device uses.
    pub iova: u64,
    /// Length in bytes.
    pub size: u64,
}

/// The device may read the mapping.
pub const VFIO_DMA_MAP_FLAG_READ: u32 = 1 << 0;
/// The device may write the mapping.
pub const VFIO_DMA_MAP_FLAG_WRITE: u32 = 1 << 1;
/// Update the vaddr of an existing (vaddr-invalidated) mapping.
pub const VFIO_DMA_MAP_FLAG_VADDR: u32 = 1 << 2;

/// `struct vfio_iommu_type1_dma_unmap`, without its `data[]` (the dirty bitmap).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioIommuType1DmaUnmap {
    /// Size of the structure passed in.
    pub argsz: u32,
    /// `VFIO_DMA_UNMAP_FLAG_*`.
    pub flags: u32,
    /// IO virtual address of the range.
    pub iova: u64,
    /// Length in bytes; the kernel writes back how much it unmapped.
    pub size: u64,
}

/// Return the dirty bitmap in `data[]` (needs a `struct vfio_bitmap` there).
pub const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: u32 = 1 << 0;
/// Unmap everything (`iova` and `size` 0).
pub const VFIO_DMA_UNMAP_FLAG_ALL: u32 = 1 << 1;
/// Only invalidate the vaddr of the range.
pub const VFIO_DMA_UNMAP_FLAG_VADDR: u32 = 1 << 2;

// ---------------------------------------------------------------------------
// VFIO device cdev and iommufd (vfio.h)
// ---------------------------------------------------------------------------

/// `struct vfio_device_bind_iommufd` (6.12: no token fields yet).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioDeviceBindIommufd {
    /// Size of the structure passed in.
    pub argsz: u32,
    /// Must be 0.
    pub flags: u32,
    /// The iommufd (an open `/dev/iommu`) to bind to; negative for no-IOMMU.
    pub iommufd: i32,
    /// Output: the device's id within that iommufd.
    pub out_devid: u32,
}

/// `struct vfio_device_attach_iommufd_pt` (6.12: no `pasid` yet).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioDeviceAttachIommufdPt {
    /// Size of the structure passed in.
    pub argsz: u32,
    /// Must be 0.
    pub flags: u32,
    /// In: an IOAS or HWPT id; out: the IOAS id or the HWPT actually attached.
    pub pt_id: u32,
}

/// `struct vfio_device_detach_iommufd_pt`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioDeviceDetachIommufdPt {
    /// Size of the structure passed in.
    pub argsz: u32,
    /// Must be 0.
    pub flags: u32,
}

// ---------------------------------------------------------------------------
// iommufd (linux/iommufd.h): `/dev/iommu`
// ---------------------------------------------------------------------------

/// The iommufd ioctl type character, `';'` like VFIO's.
pub const IOMMUFD_TYPE: u8 = b';';
/// `IOMMUFD_CMD_DESTROY`.
pub const IOMMUFD_CMD_DESTROY: u8 = 0x80;
/// `IOMMUFD_CMD_IOAS_ALLOC`.
pub const IOMMUFD_CMD_IOAS_ALLOC: u8 = 0x81;
/// `IOMMUFD_CMD_IOAS_MAP`.
pub const IOMMUFD_CMD_IOAS_MAP: u8 = 0x85;
/// `IOMMUFD_CMD_IOAS_UNMAP`.
pub const IOMMUFD_CMD_IOAS_UNMAP: u8 = 0x86;

/// Destroy an iommufd object ([`IommuDestroy`]).
pub const IOMMU_DESTROY: u64 = io(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);
/// Allocate an IO address space ([`IommuIoasAlloc`]).
pub const IOMMU_IOAS_ALLOC: u64 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);
/// Map user memory into an IOAS ([`IommuIoasMap`]).
pub const IOMMU_IOAS_MAP: u64 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);
/// Unmap an IOVA range of an IOAS ([`IommuIoasUnmap`]).
pub const IOMMU_IOAS_UNMAP: u64 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);

/// `struct iommu_destroy`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IommuDestroy {
    /// `sizeof(struct iommu_destroy)`.
    pub size: u32,
    /// The object to destroy.
    pub id: u32,
}

/// `struct iommu_ioas_alloc`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IommuIoasAlloc {
    /// `sizeof(struct iommu_ioas_alloc)`.
    pub size: u32,
    /// Must be 0.
    pub flags: u32,
    /// Output: the new IOAS's id.
    pub out_ioas_id: u32,
}

/// `struct iommu_ioas_map`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IommuIoasMap {
    /// `sizeof(struct iommu_ioas_map)`.
    pub size: u32,
    /// `IOMMU_IOAS_MAP_*`.
    pub flags: u32,
    /// The IOAS to map into.
    pub ioas_id: u32,
    /// Must be 0.
    pub reserved: u32,
    /// Process virtual address of the memory.
    pub user_va: u64,
    /// Length in bytes.
    pub length: u64,
    /// In with `IOMMU_IOAS_MAP_FIXED_IOVA`, else out: the IOVA.
    pub iova: u64,
}

/// Map at the given `iova` instead of one the kernel picks.
pub const IOMMU_IOAS_MAP_FIXED_IOVA: u32 = 1 << 0;
/// The device may write the mapping.
pub const IOMMU_IOAS_MAP_WRITEABLE: u32 = 1 << 1;
/// The device may read the mapping.
pub const IOMMU_IOAS_MAP_READABLE: u32 = 1 << 2;

/// `struct iommu_ioas_unmap`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IommuIoasUnmap {
    /// `sizeof(struct iommu_ioas_unmap)`.
    pub size: u32,
    /// The IOAS to unmap from.
    pub ioas_id: u32,
    /// IOVA of the range.
    pub iova: u64,
    /// Length in bytes; the kernel writes back how much it unmapped.
    pub length: u64,
}

// Layouts must match the C header exactly: the kernel copies these byte for byte.
// ---------------------------------------------------------------------------
// CXL (the cxl-vfio-pci additions to linux/vfio.h)
// ---------------------------------------------------------------------------

/// The device is CXL.mem capable; the info chain holds [`VFIO_DEVICE_INFO_CAP_CXL`].
pub const VFIO_DEVICE_FLAGS_CXL: u32 = 1 << 9;
/// Device info capability: [`VfioDeviceInfoCapCxl`].
pub const VFIO_DEVICE_INFO_CAP_CXL: u16 = 6;
/// Firmware programmed and committed the HDM decoder before open.
pub const VFIO_CXL_CAP_FIRMWARE_COMMITTED: u32 = 1 << 0;
/// HDM-DB device (CXL.cache + CXL.mem).
pub const VFIO_CXL_CAP_CACHE_CAPABLE: u32 = 1 << 1;
/// Vendor ID of the CXL Consortium, the vendor of the CXL region types.
pub const PCI_VENDOR_ID_CXL: u32 = 0x1e98;
/// Region type flag: the type is a PCI vendor ID.
pub const VFIO_REGION_TYPE_PCI_VENDOR_TYPE: u32 = 1 << 31;
/// CXL region subtype: the device memory (DPA).
pub const VFIO_REGION_SUBTYPE_CXL: u32 = 1;
/// CXL region subtype: the emulated HDM decoder registers.
pub const VFIO_REGION_SUBTYPE_CXL_COMP_REGS: u32 = 2;

/// `struct vfio_device_info_cap_cxl`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioDeviceInfoCapCxl {
    /// `id` = [`VFIO_DEVICE_INFO_CAP_CXL`], version 1.
    pub header: VfioInfoCapHeader,
    /// BAR holding the component registers.
    pub hdm_regs_bar_index: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
    /// `VFIO_CXL_CAP_*`.
    pub flags: u32,
    /// Offset in that BAR of the CXL.mem area (component block + 0x1000).
    pub hdm_regs_offset: u64,
    /// Region index of the DPA region.
    pub dpa_region_index: u32,
    /// Region index of the COMP_REGS region.
    pub comp_regs_region_index: u32,
}

/// Region capability: where the COMP_REGS region sits in the component register
/// BAR ([`VfioRegionInfoCapCxlCompRegs`]).
pub const VFIO_REGION_INFO_CAP_CXL_COMP_REGS: u16 = 6;

/// `struct vfio_region_info_cap_cxl_comp_regs` (version 1), in the region info of
/// the COMP_REGS region.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VfioRegionInfoCapCxlCompRegs {
    /// `id` = [`VFIO_REGION_INFO_CAP_CXL_COMP_REGS`], version 1.
    pub header: VfioInfoCapHeader,
    /// BAR holding the component register block.
    pub bar_index: u32,
    /// Padding.
    pub pad: u32,
    /// Offset of the block in that BAR (COMP_REGS offset 0 is `block_offset + 0x1000`).
    pub block_offset: u64,
    /// Size of the block in the BAR (64 KiB or less).
    pub block_size: u64,
}

const _: () = assert!(size_of::<VfioGroupStatus>() == 8);
const _: () = assert!(size_of::<VfioRegionInfoCapCxlCompRegs>() == 32);
const _: () = assert!(size_of::<VfioDeviceInfoCapCxl>() == 32);
const _: () = assert!(size_of::<VfioDeviceInfo>() == 24);
const _: () = assert!(size_of::<VfioRegionInfo>() == 32);
const _: () = assert!(size_of::<VfioInfoCapHeader>() == 8);
const _: () = assert!(size_of::<VfioRegionSparseMmapArea>() == 16);
const _: () = assert!(size_of::<VfioIrqInfo>() == 16);
const _: () = assert!(size_of::<VfioDeviceFeature>() == 8);
const _: () = assert!(std::mem::align_of::<VfioRegionInfo>() == 8);
const _: () = assert!(size_of::<VfioIommuType1DmaMap>() == 32);
const _: () = assert!(size_of::<VfioIommuType1DmaUnmap>() == 24);
const _: () = assert!(size_of::<VfioDeviceBindIommufd>() == 16);
const _: () = assert!(size_of::<VfioDeviceAttachIommufdPt>() == 12);
const _: () = assert!(size_of::<VfioDeviceDetachIommufdPt>() == 8);
const _: () = assert!(size_of::<IommuDestroy>() == 8);
const _: () = assert!(size_of::<IommuIoasAlloc>() == 12);
const _: () = assert!(size_of::<IommuIoasMap>() == 40);
const _: () = assert!(size_of::<IommuIoasUnmap>() == 24);

// ---------------------------------------------------------------------------
// Names for printing
// ---------------------------------------------------------------------------

const DEVICE_FLAG_NAMES: &[(u32, &str)] = &[
    (VFIO_DEVICE_FLAGS_RESET, "RESET"),
    (VFIO_DEVICE_FLAGS_PCI, "PCI"),
    (VFIO_DEVICE_FLAGS_PLATFORM, "PLATFORM"),
    (VFIO_DEVICE_FLAGS_AMBA, "AMBA"),
    (VFIO_DEVICE_FLAGS_CCW, "CCW"),
    (VFIO_DEVICE_FLAGS_AP, "AP"),
    (VFIO_DEVICE_FLAGS_FSL_MC, "FSL_MC"),
    (VFIO_DEVICE_FLAGS_CAPS, "CAPS"),
    (VFIO_DEVICE_FLAGS_CDX, "CDX"),
    (VFIO_DEVICE_FLAGS_CXL, "CXL"),
];

const REGION_FLAG_NAMES: &[(u32, &str)] = &[
    (VFIO_REGION_INFO_FLAG_READ, "READ"),
    (VFIO_REGION_INFO_FLAG_WRITE, "WRITE"),
    (VFIO_REGION_INFO_FLAG_MMAP, "MMAP"),
    (VFIO_REGION_INFO_FLAG_CAPS, "CAPS"),
];

const IRQ_FLAG_NAMES: &[(u32, &str)] = &[
    (VFIO_IRQ_INFO_EVENTFD, "EVENTFD"),
    (VFIO_IRQ_INFO_MASKABLE, "MASKABLE"),
    (VFIO_IRQ_INFO_AUTOMASKED, "AUTOMASKED"),
    (VFIO_IRQ_INFO_NORESIZE, "NORESIZE"),
];

const CXL_CAP_FLAG_NAMES: &[(u32, &str)] = &[
    (VFIO_CXL_CAP_FIRMWARE_COMMITTED, "FIRMWARE_COMMITTED"),
    (VFIO_CXL_CAP_CACHE_CAPABLE, "CACHE_CAPABLE"),
];

fn decode(flags: u32, names: &[(u32, &str)]) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| (*name).to_string())
        .collect();
    let known = names.iter().fold(0, |acc, (bit, _)| acc | bit);
    if flags & !known != 0 {
        parts.push(format!("{:#x}", flags & !known));
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join("|")
    }
}

/// Decodes `VFIO_DEVICE_FLAGS_*` as `RESET|PCI|CAPS` (`-` for none; unknown bits in hex).
pub fn device_flags_str(flags: u32) -> String {
    decode(flags, DEVICE_FLAG_NAMES)
}

/// Decodes `VFIO_REGION_INFO_FLAG_*` as `READ|WRITE|MMAP|CAPS`.
pub fn region_flags_str(flags: u32) -> String {
    decode(flags, REGION_FLAG_NAMES)
}

/// Decodes `VFIO_IRQ_INFO_*` as `EVENTFD|MASKABLE|...`.
pub fn irq_flags_str(flags: u32) -> String {
    decode(flags, IRQ_FLAG_NAMES)
}

/// Decodes `VFIO_CXL_CAP_*` (the flags of [`VfioDeviceInfoCapCxl`]) as
/// `FIRMWARE_COMMITTED|CACHE_CAPABLE`.
pub fn cxl_cap_flags_str(flags: u32) -> String {
    decode(flags, CXL_CAP_FLAG_NAMES)
}

/// What a device-specific region of `(type, subtype)` is, for the CXL region
/// types: `DPA memory` or `COMP_REGS`; `None` for any other type.
pub fn cxl_region_kind(ty: u32, subtype: u32) -> Option<&'static str> {
    if ty != VFIO_REGION_TYPE_PCI_VENDOR_TYPE | PCI_VENDOR_ID_CXL {
        return None;
    }
    match subtype {
        VFIO_REGION_SUBTYPE_CXL => Some("DPA memory"),
        VFIO_REGION_SUBTYPE_CXL_COMP_REGS => Some("COMP_REGS"),
        _ => None,
    }
}

/// Name of a vfio-pci region index (`BAR0`..`BAR5`, `ROM`, `CONFIG`, `VGA`, `DEV<n>`).
pub fn region_name(index: u32) -> String {
    match index {
        0..=5 => format!("BAR{index}"),
        VFIO_PCI_ROM_REGION_INDEX => "ROM".to_string(),
        VFIO_PCI_CONFIG_REGION_INDEX => "CONFIG".to_string(),
        VFIO_PCI_VGA_REGION_INDEX => "VGA".to_string(),
        n => format!("DEV{}", n - VFIO_PCI_NUM_REGIONS),
    }
}

/// Name of a vfio-pci IRQ index (`INTX`, `MSI`, `MSIX`, `ERR`, `REQ`).
pub fn irq_name(index: u32) -> String {
    match index {
        VFIO_PCI_INTX_IRQ_INDEX => "INTX".to_string(),
        VFIO_PCI_MSI_IRQ_INDEX => "MSI".to_string(),
        VFIO_PCI_MSIX_IRQ_INDEX => "MSIX".to_string(),
        VFIO_PCI_ERR_IRQ_INDEX => "ERR".to_string(),
        VFIO_PCI_REQ_IRQ_INDEX => "REQ".to_string(),
        n => format!("IRQ{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    // The asm-generic encoding; the values are what `_IO(';', 100 + n)` gives in C.
    #[cfg(not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    #[test]
    fn ioctl_numbers_match_c_header() {
        assert_eq!(VFIO_TYPE, 0x3B);
        assert_eq!(VFIO_GET_API_VERSION, 0x3B64);
        assert_eq!(VFIO_CHECK_EXTENSION, 0x3B65);
        assert_eq!(VFIO_SET_IOMMU, 0x3B66);
        assert_eq!(VFIO_GROUP_GET_STATUS, 0x3B67);
        assert_eq!(VFIO_GROUP_SET_CONTAINER, 0x3B68);
        assert_eq!(VFIO_GROUP_UNSET_CONTAINER, 0x3B69);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3B6A);
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3B6B);
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3B6C);
        assert_eq!(VFIO_DEVICE_GET_IRQ_INFO, 0x3B6D);
        assert_eq!(VFIO_DEVICE_SET_IRQS, 0x3B6E);
        assert_eq!(VFIO_DEVICE_RESET, 0x3B6F);
        assert_eq!(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 0x3B70);
        assert_eq!(VFIO_DEVICE_PCI_HOT_RESET, 0x3B71);
        assert_eq!(VFIO_DEVICE_FEATURE, 0x3B75);
    }

    // The values are what the 6.12 headers' `_IO(VFIO_TYPE, VFIO_BASE + n)` and
    // `_IO(IOMMUFD_TYPE, IOMMUFD_CMD_*)` give in C on asm-generic architectures.
    #[cfg(not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    #[test]
    fn iommu_ioctl_numbers_match_c_headers() {
        // vfio.h: VFIO_BASE (100) + 18, 19, 20; type1 + 13, 14.
        assert_eq!(VFIO_DEVICE_BIND_IOMMUFD, 0x3B76);
        assert_eq!(VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0x3B77);
        assert_eq!(VFIO_DEVICE_DETACH_IOMMUFD_PT, 0x3B78);
        assert_eq!(VFIO_IOMMU_MAP_DMA, 0x3B71);
        assert_eq!(VFIO_IOMMU_UNMAP_DMA, 0x3B72);
        // iommufd.h: IOMMUFD_CMD_BASE 0x80 + 0, 1, 5, 6.
        assert_eq!(IOMMUFD_TYPE, 0x3B);
        assert_eq!(IOMMU_DESTROY, 0x3B80);
        assert_eq!(IOMMU_IOAS_ALLOC, 0x3B81);
        assert_eq!(IOMMU_IOAS_MAP, 0x3B85);
        assert_eq!(IOMMU_IOAS_UNMAP, 0x3B86);
    }

    #[test]
    fn iommu_struct_layouts() {
        assert_eq!(size_of::<VfioIommuType1DmaMap>(), 32);
        assert_eq!(offset_of!(VfioIommuType1DmaMap, vaddr), 8);
        assert_eq!(offset_of!(VfioIommuType1DmaMap, iova), 16);
        assert_eq!(offset_of!(VfioIommuType1DmaMap, size), 24);
        assert_eq!(size_of::<VfioIommuType1DmaUnmap>(), 24);
        assert_eq!(offset_of!(VfioIommuType1DmaUnmap, iova), 8);
        assert_eq!(offset_of!(VfioIommuType1DmaUnmap, size), 16);
        assert_eq!(size_of::<VfioDeviceBindIommufd>(), 16);
        assert_eq!(offset_of!(VfioDeviceBindIommufd, iommufd), 8);
        assert_eq!(offset_of!(VfioDeviceBindIommufd, out_devid), 12);
        assert_eq!(size_of::<VfioDeviceAttachIommufdPt>(), 12);
        assert_eq!(offset_of!(VfioDeviceAttachIommufdPt, pt_id), 8);
        assert_eq!(size_of::<VfioDeviceDetachIommufdPt>(), 8);
        assert_eq!(size_of::<IommuDestroy>(), 8);
        assert_eq!(offset_of!(IommuDestroy, id), 4);
        assert_eq!(size_of::<IommuIoasAlloc>(), 12);
        assert_eq!(offset_of!(IommuIoasAlloc, out_ioas_id), 8);
        assert_eq!(size_of::<IommuIoasMap>(), 40);
        assert_eq!(offset_of!(IommuIoasMap, ioas_id), 8);
        assert_eq!(offset_of!(IommuIoasMap, user_va), 16);
        assert_eq!(offset_of!(IommuIoasMap, length), 24);
        assert_eq!(offset_of!(IommuIoasMap, iova), 32);
        assert_eq!(size_of::<IommuIoasUnmap>(), 24);
        assert_eq!(offset_of!(IommuIoasUnmap, iova), 8);
        assert_eq!(offset_of!(IommuIoasUnmap, length), 16);
        assert_eq!(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, 0x3);
        assert_eq!(
            IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE,
            0x7
        );
    }

    #[test]
    fn device_feature_abi() {
        assert_eq!(size_of::<VfioDeviceFeature>(), 8);
        assert_eq!(offset_of!(VfioDeviceFeature, flags), 4);
        assert_eq!(VFIO_DEVICE_FEATURE_SET, 0x20000);
        assert_eq!(
            VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE,
            0x70000
        );
        assert_eq!(
            VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY & !VFIO_DEVICE_FEATURE_MASK,
            0
        );
        assert_eq!(
            (
                VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
                VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
                VFIO_DEVICE_FEATURE_LOW_POWER_EXIT
            ),
            (3, 4, 5)
        );
    }

    #[test]
    fn ioc_formula() {
        // _IO has no size and no direction: only type and nr are set.
        assert_eq!(io(b';', 100) & 0xffff, 0x3B64);
        assert_eq!((io(b';', 100) >> IOC_SIZESHIFT) & 0x3fff, 0);
        // A sized request puts the size in bits 16.. (e.g. _IOC(0, 'x', 1, 24)).
        assert_eq!(ioc(0, b'x', 1, 24), 0x0018_7801);
        for n in 0..=13u8 {
            assert_eq!(vfio_io(n), io(0x3B, 100 + n));
        }
    }

    #[test]
    fn struct_sizes_and_offsets() {
        assert_eq!(size_of::<VfioGroupStatus>(), 8);
        assert_eq!(size_of::<VfioDeviceInfo>(), 24);
        assert_eq!(size_of::<VfioRegionInfo>(), 32);
        assert_eq!(size_of::<VfioInfoCapHeader>(), 8);
        assert_eq!(size_of::<VfioIrqInfo>(), 16);
        assert_eq!(offset_of!(VfioDeviceInfo, num_regions), 8);
        assert_eq!(offset_of!(VfioDeviceInfo, cap_offset), 16);
        assert_eq!(offset_of!(VfioRegionInfo, index), 8);
        assert_eq!(offset_of!(VfioRegionInfo, cap_offset), 12);
        assert_eq!(offset_of!(VfioRegionInfo, size), 16);
        assert_eq!(offset_of!(VfioRegionInfo, offset), 24);
        assert_eq!(offset_of!(VfioInfoCapHeader, next), 4);
    }

    #[test]
    fn cxl_abi_matches_the_seed() {
        assert_eq!(offset_of!(VfioDeviceInfoCapCxl, header), 0);
        assert_eq!(offset_of!(VfioDeviceInfoCapCxl, hdm_regs_bar_index), 8);
        assert_eq!(offset_of!(VfioDeviceInfoCapCxl, reserved), 9);
        assert_eq!(offset_of!(VfioDeviceInfoCapCxl, flags), 12);
        assert_eq!(offset_of!(VfioDeviceInfoCapCxl, hdm_regs_offset), 16);
        assert_eq!(offset_of!(VfioDeviceInfoCapCxl, dpa_region_index), 24);
        assert_eq!(offset_of!(VfioDeviceInfoCapCxl, comp_regs_region_index), 28);
        assert_eq!(VFIO_DEVICE_FLAGS_CXL, 0x200);
        assert_eq!(VFIO_DEVICE_INFO_CAP_CXL, 6);
        assert_eq!(
            PCI_VENDOR_ID_CXL | VFIO_REGION_TYPE_PCI_VENDOR_TYPE,
            0x8000_1e98
        );
        assert_eq!(device_flags_str(0x283), "RESET|PCI|CAPS|CXL");
    }

    #[test]
    fn cxl_comp_regs_region_cap_abi() {
        assert_eq!(VFIO_REGION_INFO_CAP_CXL_COMP_REGS, 6);
        assert_eq!(size_of::<VfioRegionInfoCapCxlCompRegs>(), 32);
        assert_eq!(std::mem::align_of::<VfioRegionInfoCapCxlCompRegs>(), 8);
        assert_eq!(offset_of!(VfioRegionInfoCapCxlCompRegs, header), 0);
        assert_eq!(offset_of!(VfioRegionInfoCapCxlCompRegs, bar_index), 8);
        assert_eq!(offset_of!(VfioRegionInfoCapCxlCompRegs, pad), 12);
        assert_eq!(offset_of!(VfioRegionInfoCapCxlCompRegs, block_offset), 16);
        assert_eq!(offset_of!(VfioRegionInfoCapCxlCompRegs, block_size), 24);
    }

    #[test]
    fn constants() {
        assert_eq!(VFIO_API_VERSION, 0);
        assert_eq!(VFIO_NOIOMMU_IOMMU, 8);
        assert_eq!(VFIO_TYPE1V2_IOMMU, 3);
        assert_eq!(VFIO_PCI_CONFIG_REGION_INDEX, 7);
        assert_eq!(VFIO_PCI_NUM_REGIONS, 9);
        assert_eq!(VFIO_DEVICE_FLAGS_CAPS, 0x80);
        assert_eq!(VFIO_REGION_INFO_FLAG_CAPS, 8);
    }

    #[test]
    fn flag_decoding() {
        assert_eq!(device_flags_str(0x83), "RESET|PCI|CAPS");
        assert_eq!(device_flags_str(0x2), "PCI");
        assert_eq!(device_flags_str(0), "-");
        assert_eq!(device_flags_str(0x1002), "PCI|0x1000");
        assert_eq!(region_flags_str(7), "READ|WRITE|MMAP");
        assert_eq!(region_flags_str(0xb), "READ|WRITE|CAPS");
        assert_eq!(irq_flags_str(0x7), "EVENTFD|MASKABLE|AUTOMASKED");
    }

    #[test]
    fn cxl_names() {
        assert_eq!(cxl_cap_flags_str(0), "-");
        assert_eq!(cxl_cap_flags_str(1), "FIRMWARE_COMMITTED");
        assert_eq!(cxl_cap_flags_str(3), "FIRMWARE_COMMITTED|CACHE_CAPABLE");
        assert_eq!(cxl_cap_flags_str(6), "CACHE_CAPABLE|0x4");
        assert_eq!(cxl_region_kind(0x8000_1e98, 1), Some("DPA memory"));
        assert_eq!(cxl_region_kind(0x8000_1e98, 2), Some("COMP_REGS"));
        assert_eq!(cxl_region_kind(0x8000_1e98, 3), None);
        assert_eq!(cxl_region_kind(0x1e98, 1), None);
        assert_eq!(cxl_region_kind(0x8000_8086, 1), None);
    }

    #[test]
    fn names() {
        assert_eq!(region_name(0), "BAR0");
        assert_eq!(region_name(5), "BAR5");
        assert_eq!(region_name(6), "ROM");
        assert_eq!(region_name(7), "CONFIG");
        assert_eq!(region_name(8), "VGA");
        assert_eq!(region_name(9), "DEV0");
        assert_eq!(irq_name(2), "MSIX");
        assert_eq!(irq_name(7), "IRQ7");
    }
}
