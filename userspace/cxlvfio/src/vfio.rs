//! Safe wrappers over the VFIO container, group and device file descriptors.
//!
//! Two ways lead to a device fd. The legacy container/group flow: open the
//! container, open the device's group, attach the group to the container,
//! select the IOMMU backend, then ask the group for a device fd. The cdev flow:
//! open `/dev/vfio/devices/vfioN` directly, then bind it to an iommufd and
//! attach it to an IO address space ([`crate::iommufd`]). [`crate::iommu`]
//! strings either together; this module has the single steps. Every raw
//! syscall (`ioctl(2)`, `close(2)`, adopting a new fd) is in the small `sys`
//! helpers at the bottom of this file; each caller states why its arguments
//! are valid.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{other, ResultExt};
use crate::uapi::*;

/// The container device node.
pub const VFIO_CONTAINER_PATH: &str = "/dev/vfio/vfio";

/// A VFIO container (`/dev/vfio/vfio`): holds groups and the IOMMU context.
#[derive(Debug)]
pub struct Container {
    file: File,
}

impl Container {
    /// Opens `/dev/vfio/vfio`.
    pub fn open() -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(VFIO_CONTAINER_PATH)
            .context(|| format!("open {VFIO_CONTAINER_PATH}"))?;
        Ok(Container { file })
    }

    /// `VFIO_GET_API_VERSION`.
    pub fn api_version(&self) -> io::Result<i32> {
        // SAFETY: VFIO_GET_API_VERSION ignores its argument.
        unsafe { sys::ioctl_none(self.file.as_fd(), VFIO_GET_API_VERSION) }
            .context(|| "VFIO_GET_API_VERSION".to_string())
    }

    /// `VFIO_CHECK_EXTENSION`: whether `extension` (e.g. an IOMMU type) is supported.
    pub fn check_extension(&self, extension: u32) -> io::Result<bool> {
        // SAFETY: VFIO_CHECK_EXTENSION takes the extension number by value.
        unsafe {
            sys::ioctl_value(
                self.file.as_fd(),
                VFIO_CHECK_EXTENSION,
                libc::c_ulong::from(extension),
            )
        }
        .map(|r| r > 0)
        .context(|| format!("VFIO_CHECK_EXTENSION({extension})"))
    }

    /// `VFIO_SET_IOMMU`: selects the IOMMU backend. Needs at least one group attached.
    pub fn set_iommu(&self, iommu_type: u32) -> io::Result<()> {
        // SAFETY: VFIO_SET_IOMMU takes the IOMMU type by value.
        unsafe {
            sys::ioctl_value(
                self.file.as_fd(),
                VFIO_SET_IOMMU,
                libc::c_ulong::from(iommu_type),
            )
        }
        .map(drop)
        .context(|| format!("VFIO_SET_IOMMU({iommu_type})"))
    }

    /// `VFIO_IOMMU_MAP_DMA`: lets the device reach `size` bytes of this
    /// process's memory at `vaddr` through IO virtual address `iova`, with
    /// `flags` (`VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE` for a
    /// normal mapping; anything else is passed through as is, for tests of
    /// refusals). The type1 backend pins the pages, or follows a `VM_PFNMAP`
    /// mapping to its PFNs.
    ///
    /// Nothing here checks `vaddr`: the kernel does and fails with the errno
    /// (`EFAULT`, `EINVAL`, `EEXIST`, ...). While mapped, the device may write
    /// that memory at any time, so the caller keeps it mapped and treats its
    /// contents as shared with the device until [`Container::unmap_dma`].
    pub fn map_dma(&self, vaddr: u64, iova: u64, size: u64, flags: u32) -> io::Result<()> {
        let mut map = VfioIommuType1DmaMap {
            argsz: size_of::<VfioIommuType1DmaMap>() as u32,
            flags,
            vaddr,
            iova,
            size,
        };
        // SAFETY: VFIO_IOMMU_MAP_DMA reads `argsz` bytes of a `struct
        // vfio_iommu_type1_dma_map`, which is what `map` is (layout asserted in
        // `uapi`); `map` outlives the call. The kernel validates `vaddr` itself
        // and never writes through it from this call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), VFIO_IOMMU_MAP_DMA, &mut map) }
            .map(drop)
            .context(|| {
                format!(
                    "VFIO_IOMMU_MAP_DMA(vaddr {vaddr:#x} iova {iova:#x} size {size:#x} flags {flags:#x})"
                )
            })
    }

    /// `VFIO_IOMMU_UNMAP_DMA` of `[iova, iova + size)` with `flags` (0 normally;
    /// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP` needs a bitmap this call does not
    /// pass, so the kernel refuses it). Returns the bytes the kernel unmapped.
    pub fn unmap_dma(&self, iova: u64, size: u64, flags: u32) -> io::Result<u64> {
        let mut unmap = VfioIommuType1DmaUnmap {
            argsz: size_of::<VfioIommuType1DmaUnmap>() as u32,
            flags,
            iova,
            size,
        };
        // SAFETY: VFIO_IOMMU_UNMAP_DMA reads `argsz` bytes of a `struct
        // vfio_iommu_type1_dma_unmap` (without `data[]`, which `argsz` excludes)
        // and writes back its `size` field; `unmap` is that structure and
        // outlives the call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), VFIO_IOMMU_UNMAP_DMA, &mut unmap) }.context(
            || format!("VFIO_IOMMU_UNMAP_DMA(iova {iova:#x} size {size:#x} flags {flags:#x})"),
        )?;
        Ok(unmap.size)
    }

    /// Closes the container fd, reporting an error from `close(2)`.
    pub fn close(self) -> io::Result<()> {
        sys::close(self.file).context(|| format!("close {VFIO_CONTAINER_PATH}"))
    }
}

#[cfg(test)]
impl Container {
    /// A container over any file, for tests of the wrappers without VFIO.
    pub(crate) fn from_file(file: File) -> Self {
        Container { file }
    }
}

impl AsFd for Container {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Path of a group's device node: `/dev/vfio/noiommu-<n>` or `/dev/vfio/<n>`.
pub fn group_path(group: u32, noiommu: bool) -> PathBuf {
    if noiommu {
        PathBuf::from(format!("/dev/vfio/noiommu-{group}"))
    } else {
        PathBuf::from(format!("/dev/vfio/{group}"))
    }
}

/// A VFIO group (`/dev/vfio/<n>`), the unit of ownership of devices.
#[derive(Debug)]
pub struct Group {
    file: File,
    number: u32,
    noiommu: bool,
    path: PathBuf,
}

impl Group {
    /// Opens group `number`, the no-IOMMU node if `noiommu`.
    pub fn open(number: u32, noiommu: bool) -> io::Result<Self> {
        let path = group_path(number, noiommu);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .context(|| format!("open {}", path.display()))?;
        Ok(Group {
            file,
            number,
            noiommu,
            path,
        })
    }

    /// The group number.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Whether this is a no-IOMMU group.
    pub fn is_noiommu(&self) -> bool {
        self.noiommu
    }

    /// The device node that was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `VFIO_GROUP_GET_STATUS`: the `VFIO_GROUP_FLAGS_*` of the group.
    pub fn status(&self) -> io::Result<u32> {
        let mut st = VfioGroupStatus {
            argsz: size_of::<VfioGroupStatus>() as u32,
            flags: 0,
        };
        // SAFETY: VFIO_GROUP_GET_STATUS reads and writes at most `argsz` bytes of
        // a `struct vfio_group_status`, which is what `st` is (layout asserted in
        // `uapi`); `st` outlives the call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), VFIO_GROUP_GET_STATUS, &mut st) }
            .context(|| format!("VFIO_GROUP_GET_STATUS on {}", self.path.display()))?;
        Ok(st.flags)
    }

    /// Whether all devices of the group are bound to VFIO (or unbound).
    pub fn is_viable(&self) -> io::Result<bool> {
        Ok(self.status()? & VFIO_GROUP_FLAGS_VIABLE != 0)
    }

    /// `VFIO_GROUP_SET_CONTAINER`: attaches the group to `container`.
    pub fn set_container(&self, container: &Container) -> io::Result<()> {
        let mut fd: i32 = container.as_fd().as_raw_fd();
        // SAFETY: VFIO_GROUP_SET_CONTAINER reads one `__s32` (the container fd)
        // from the pointer; `fd` is a live i32 for the whole call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), VFIO_GROUP_SET_CONTAINER, &mut fd) }
            .map(drop)
            .context(|| format!("VFIO_GROUP_SET_CONTAINER on {}", self.path.display()))
    }

    /// `VFIO_GROUP_GET_DEVICE_FD`: opens device `name` (its PCI address) in the group.
    pub fn get_device_fd(&self, name: &str) -> io::Result<Device> {
        let cname = CString::new(name).map_err(|_| {
            other(
                io::ErrorKind::InvalidInput,
                format!("device name {name:?} contains NUL"),
            )
        })?;
        // SAFETY: VFIO_GROUP_GET_DEVICE_FD only reads a NUL-terminated string
        // from the pointer; `cname` is one and outlives the call. The kernel
        // does not write through it.
        let fd = unsafe {
            sys::ioctl_ptr(
                self.file.as_fd(),
                VFIO_GROUP_GET_DEVICE_FD,
                cname.as_ptr().cast_mut(),
            )
        }
        .context(|| {
            format!(
                "VFIO_GROUP_GET_DEVICE_FD({name}) on {}",
                self.path.display()
            )
        })?;
        let file = sys::adopt_new_fd(fd);
        Ok(Device {
            file,
            name: name.to_string(),
        })
    }

    /// Closes the group fd, reporting an error from `close(2)`.
    pub fn close(self) -> io::Result<()> {
        let path = self.path;
        sys::close(self.file).context(|| format!("close {}", path.display()))
    }
}

#[cfg(test)]
impl Group {
    /// A group over any file, for tests of the wrappers without VFIO.
    pub(crate) fn from_file(file: File, number: u32, noiommu: bool) -> Self {
        Group {
            file,
            number,
            noiommu,
            path: group_path(number, noiommu),
        }
    }
}

impl AsFd for Group {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// One capability from an info capability chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Capability id (meaning depends on the ioctl, e.g. `VFIO_REGION_INFO_CAP_*`).
    pub id: u16,
    /// Capability version.
    pub version: u16,
    /// Offset of the header within the info buffer.
    pub offset: usize,
    /// Bytes after the 8-byte header, up to the next capability or the buffer end.
    pub data: Vec<u8>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

impl Capability {
    /// Areas of a `VFIO_REGION_INFO_CAP_SPARSE_MMAP` capability, `None` if this
    /// is another capability or is truncated.
    pub fn sparse_mmap_areas(&self) -> Option<Vec<VfioRegionSparseMmapArea>> {
        if self.id != VFIO_REGION_INFO_CAP_SPARSE_MMAP {
            return None;
        }
        // struct { header; __u32 nr_areas; __u32 reserved; areas[] }
        let nr = u32_at(&self.data, 0)? as usize;
        (0..nr)
            .map(|i| {
                let base = 8 + i * size_of::<VfioRegionSparseMmapArea>();
                Some(VfioRegionSparseMmapArea {
                    offset: u64_at(&self.data, base)?,
                    size: u64_at(&self.data, base + 8)?,
                })
            })
            .collect()
    }

    /// The fields of a `VFIO_DEVICE_INFO_CAP_CXL` capability (header zeroed),
    /// `None` if this is another capability or is truncated.
    pub fn cxl_device(&self) -> Option<VfioDeviceInfoCapCxl> {
        if self.id != VFIO_DEVICE_INFO_CAP_CXL {
            return None;
        }
        // Offsets in `data` are those of the structure minus the 8-byte header.
        let d = &self.data;
        Some(VfioDeviceInfoCapCxl {
            header: VfioInfoCapHeader::default(),
            hdm_regs_bar_index: *d.first()?,
            reserved: d.get(1..4)?.try_into().ok()?,
            flags: u32_at(d, 4)?,
            hdm_regs_offset: u64_at(d, 8)?,
            dpa_region_index: u32_at(d, 16)?,
            comp_regs_region_index: u32_at(d, 20)?,
        })
    }

    /// The fields of a `VFIO_REGION_INFO_CAP_CXL_COMP_REGS` capability (header
    /// zeroed), `None` if this is another capability or is truncated.
    pub fn cxl_comp_regs(&self) -> Option<VfioRegionInfoCapCxlCompRegs> {
        if self.id != VFIO_REGION_INFO_CAP_CXL_COMP_REGS {
            return None;
        }
        // Offsets in `data` are those of the structure minus the 8-byte header.
        let d = &self.data;
        Some(VfioRegionInfoCapCxlCompRegs {
            header: VfioInfoCapHeader::default(),
            bar_index: u32_at(d, 0)?,
            pad: u32_at(d, 4)?,
            block_offset: u64_at(d, 8)?,
            block_size: u64_at(d, 16)?,
        })
    }

    /// `(type, subtype)` of a `VFIO_REGION_INFO_CAP_TYPE` capability.
    pub fn region_type(&self) -> Option<(u32, u32)> {
        if self.id != VFIO_REGION_INFO_CAP_TYPE {
            return None;
        }
        Some((u32_at(&self.data, 0)?, u32_at(&self.data, 4)?))
    }
}

/// Walks a capability chain in an info buffer starting at offset `first`.
///
/// Offsets are from the start of `buf` (the info structure). The walk stops at
/// `next == 0`, at a header that does not fit, or at a `next` that does not
/// move forward (the kernel lays capabilities out in increasing order), so a
/// corrupt chain cannot loop.
pub fn parse_cap_chain(buf: &[u8], first: u32) -> Vec<Capability> {
    let hdr = size_of::<VfioInfoCapHeader>();
    let mut caps = Vec::new();
    let mut off = first as usize;
    while off != 0 && off + hdr <= buf.len() {
        let id = u16::from_ne_bytes([buf[off], buf[off + 1]]);
        let version = u16::from_ne_bytes([buf[off + 2], buf[off + 3]]);
        let next =
            u32::from_ne_bytes([buf[off + 4], buf[off + 5], buf[off + 6], buf[off + 7]]) as usize;
        let end = if next > off {
            next.min(buf.len())
        } else {
            buf.len()
        };
        caps.push(Capability {
            id,
            version,
            offset: off,
            data: buf[off + hdr..end].to_vec(),
        });
        if next <= off {
            break;
        }
        off = next;
    }
    caps
}

/// Result of `VFIO_DEVICE_GET_INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Number of region indexes.
    pub num_regions: u32,
    /// Number of IRQ indexes.
    pub num_irqs: u32,
    /// Offset of the first capability in `raw` (0: none).
    pub cap_offset: u32,
    /// The whole info buffer as returned (structure plus capability chain).
    pub raw: Vec<u8>,
}

impl DeviceInfo {
    /// The device supports `VFIO_DEVICE_RESET`.
    pub fn supports_reset(&self) -> bool {
        self.flags & VFIO_DEVICE_FLAGS_RESET != 0
    }

    /// It is a vfio-pci device.
    pub fn is_pci(&self) -> bool {
        self.flags & VFIO_DEVICE_FLAGS_PCI != 0
    }

    /// The device capability chain.
    pub fn capabilities(&self) -> Vec<Capability> {
        parse_cap_chain(&self.raw, self.cap_offset)
    }
}

/// Result of `VFIO_DEVICE_GET_REGION_INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// Region index.
    pub index: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Size in bytes (0: not implemented).
    pub size: u64,
    /// Offset of the region in the device fd.
    pub offset: u64,
    /// Offset of the first capability in `raw` (0: none).
    pub cap_offset: u32,
    /// The whole info buffer as returned (structure plus capability chain).
    pub raw: Vec<u8>,
}

impl RegionInfo {
    /// Whether all bits of `flags` are set.
    pub fn has_flags(&self, flags: u32) -> bool {
        self.flags & flags == flags
    }

    /// The region capability chain (sparse mmap, type, MSI-X mappable, ...).
    pub fn capabilities(&self) -> Vec<Capability> {
        parse_cap_chain(&self.raw, self.cap_offset)
    }
}

/// Result of `VFIO_DEVICE_GET_IRQ_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqInfo {
    /// IRQ index.
    pub index: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// Number of vectors.
    pub count: u32,
}

/// Info structures that carry `argsz` first and may be followed by a
/// capability chain, paired with the ioctl that fills them.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]` plain-old-data mirrors of the kernel
/// structure that `REQUEST` reads and writes: first field `__u32 argsz`, only
/// integer fields, no padding bytes, valid for any bit pattern, alignment at
/// most 8. The kernel must not access more than `argsz` bytes for `REQUEST`.
unsafe trait InfoStruct: Copy {
    /// The ioctl that fills this structure.
    const REQUEST: u64;
    /// The `*_FLAG_CAPS` bit of this structure's flags.
    const CAPS_FLAG: u32;
    fn argsz(&self) -> u32;
    fn set_argsz(&mut self, argsz: u32);
    fn flags(&self) -> u32;
}

// SAFETY: `#[repr(C)]`, six u32 fields (24 bytes, no padding), `argsz` first;
// VFIO_DEVICE_GET_INFO honours `argsz`.
unsafe impl InfoStruct for VfioDeviceInfo {
    const REQUEST: u64 = VFIO_DEVICE_GET_INFO;
    const CAPS_FLAG: u32 = VFIO_DEVICE_FLAGS_CAPS;
    fn argsz(&self) -> u32 {
        self.argsz
    }
    fn set_argsz(&mut self, argsz: u32) {
        self.argsz = argsz;
    }
    fn flags(&self) -> u32 {
        self.flags
    }
}

// SAFETY: `#[repr(C)]`, four u32 then two u64 fields (32 bytes, no padding),
// `argsz` first; VFIO_DEVICE_GET_REGION_INFO honours `argsz`.
unsafe impl InfoStruct for VfioRegionInfo {
    const REQUEST: u64 = VFIO_DEVICE_GET_REGION_INFO;
    const CAPS_FLAG: u32 = VFIO_REGION_INFO_FLAG_CAPS;
    fn argsz(&self) -> u32 {
        self.argsz
    }
    fn set_argsz(&mut self, argsz: u32) {
        self.argsz = argsz;
    }
    fn flags(&self) -> u32 {
        self.flags
    }
}

/// Largest info buffer we accept from the kernel; capability chains are small,
/// so anything bigger means a broken reply.
const MAX_INFO_SIZE: u32 = 64 * 1024;

/// Issues an info ioctl, growing the buffer when the kernel asks for more
/// room for capabilities. Returns the structure and the whole buffer.
///
/// The kernel handles a too-small `argsz` by filling in the fixed part, setting
/// the CAPS flag and raising `argsz` to the size it needs, without copying the
/// chain; the caller retries with a buffer that large.
fn info_ioctl<T: InfoStruct>(fd: BorrowedFd<'_>, input: T) -> io::Result<(T, Vec<u8>)> {
    let base = size_of::<T>() as u32;
    let mut hdr = input;
    hdr.set_argsz(base);
    // SAFETY: `T::REQUEST` fills a `T` (trait contract) and `argsz` says
    // exactly `size_of::<T>()` bytes, so the kernel accesses at most `hdr`,
    // which lives across the call.
    unsafe { sys::ioctl_ptr(fd, T::REQUEST, &mut hdr) }?;
    let mut want = hdr.argsz();
    // A couple of retries cover a chain that grows between calls.
    for _ in 0..3 {
        if want <= base || hdr.flags() & T::CAPS_FLAG == 0 {
            break;
        }
        if want > MAX_INFO_SIZE {
            return Err(other(
                io::ErrorKind::InvalidData,
                format!("kernel asked for an info buffer of {want} bytes"),
            ));
        }
        // u64 words keep the buffer aligned for `T` (at most 8-byte aligned).
        let mut buf = vec![0u64; (want as usize).div_ceil(8)];
        let mut req = input;
        req.set_argsz(want);
        let out = sys::ioctl_info_buffer(fd, req, &mut buf)?;
        let got = out.argsz();
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        if got <= want {
            return Ok((out, bytes[..want as usize].to_vec()));
        }
        hdr = out;
        want = got;
    }
    let bytes = sys::struct_bytes(&hdr);
    Ok((hdr, bytes))
}

/// The first `VFIO_BASE + nr` that Linux 6.12 defines for no fd of a device:
/// the last one is `VFIO_MIG_GET_PRECOPY_INFO` (21), on a migration fd.
pub const UNKNOWN_VFIO_NR_MIN: u8 = 22;

/// An open VFIO device. Region accesses use `pread`/`pwrite` on its fd.
#[derive(Debug)]
pub struct Device {
    file: File,
    name: String,
}

impl Device {
    /// Opens a VFIO device cdev (`/dev/vfio/devices/vfioN`) for device `name`.
    ///
    /// The fd can do nothing but [`Device::bind_iommufd`] until it is bound;
    /// the driver's `open_device` runs at the bind, not here.
    pub fn open_cdev(path: &Path, name: &str) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .context(|| format!("open {} (VFIO cdev of {name})", path.display()))?;
        Ok(Device {
            file,
            name: name.to_string(),
        })
    }

    /// The device name (PCI address) it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD` (cdev fds only): binds the device to
    /// `iommufd` and returns its device id there. This is where the driver
    /// opens the device, so its refusals (e.g. `EBUSY`) come back here.
    pub fn bind_iommufd(&self, iommufd: BorrowedFd<'_>) -> io::Result<u32> {
        let mut bind = VfioDeviceBindIommufd {
            argsz: size_of::<VfioDeviceBindIommufd>() as u32,
            flags: 0,
            iommufd: iommufd.as_raw_fd(),
            out_devid: 0,
        };
        // SAFETY: VFIO_DEVICE_BIND_IOMMUFD reads the 16 bytes of a `struct
        // vfio_device_bind_iommufd` and writes its `out_devid`; `bind` is that
        // structure (layout asserted in `uapi`) and outlives the call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), VFIO_DEVICE_BIND_IOMMUFD, &mut bind) }
            .context(|| format!("VFIO_DEVICE_BIND_IOMMUFD on {}", self.name))?;
        Ok(bind.out_devid)
    }

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` (bound cdev fds only): attaches the
    /// device to the IOAS or HWPT `pt_id`; returns the id the kernel reports
    /// back (the IOAS, or the HWPT it attached for it).
    pub fn attach_iommufd_pt(&self, pt_id: u32) -> io::Result<u32> {
        let mut attach = VfioDeviceAttachIommufdPt {
            argsz: size_of::<VfioDeviceAttachIommufdPt>() as u32,
            flags: 0,
            pt_id,
        };
        // SAFETY: VFIO_DEVICE_ATTACH_IOMMUFD_PT reads `argsz` (12) bytes of a
        // `struct vfio_device_attach_iommufd_pt` and writes back `pt_id`;
        // `attach` is that structure and outlives the call.
        unsafe {
            sys::ioctl_ptr(
                self.file.as_fd(),
                VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                &mut attach,
            )
        }
        .context(|| format!("VFIO_DEVICE_ATTACH_IOMMUFD_PT({pt_id}) on {}", self.name))?;
        Ok(attach.pt_id)
    }

    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT` (bound cdev fds only): detaches the
    /// device from its IOAS or HWPT; DMA is blocked after it.
    pub fn detach_iommufd_pt(&self) -> io::Result<()> {
        let mut detach = VfioDeviceDetachIommufdPt {
            argsz: size_of::<VfioDeviceDetachIommufdPt>() as u32,
            flags: 0,
        };
        // SAFETY: VFIO_DEVICE_DETACH_IOMMUFD_PT reads the 8 bytes of a `struct
        // vfio_device_detach_iommufd_pt`, which `detach` is; it outlives the call.
        unsafe {
            sys::ioctl_ptr(
                self.file.as_fd(),
                VFIO_DEVICE_DETACH_IOMMUFD_PT,
                &mut detach,
            )
        }
        .map(drop)
        .context(|| format!("VFIO_DEVICE_DETACH_IOMMUFD_PT on {}", self.name))
    }

    /// `VFIO_DEVICE_GET_INFO`, including the capability chain if any.
    pub fn info(&self) -> io::Result<DeviceInfo> {
        let (info, raw) = info_ioctl(self.file.as_fd(), VfioDeviceInfo::default())
            .context(|| format!("VFIO_DEVICE_GET_INFO on {}", self.name))?;
        Ok(DeviceInfo {
            flags: info.flags,
            num_regions: info.num_regions,
            num_irqs: info.num_irqs,
            cap_offset: info.cap_offset,
            raw,
        })
    }

    /// The first device-specific region of type `VFIO_REGION_TYPE_CXL` and `subtype` (the DPA
    /// memory or COMP_REGS region), if the device has one.
    pub fn cxl_region(&self, subtype: u32) -> io::Result<Option<RegionInfo>> {
        let info = self.info()?;
        for index in VFIO_PCI_NUM_REGIONS..info.num_regions {
            let r = self.region_info(index)?;
            if r.capabilities()
                .iter()
                .filter_map(|c| c.region_type())
                .any(|t| t == (crate::cxl::VFIO_REGION_TYPE_CXL, subtype))
            {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for region `index`, including its capability chain.
    pub fn region_info(&self, index: u32) -> io::Result<RegionInfo> {
        let input = VfioRegionInfo {
            index,
            ..Default::default()
        };
        let (info, raw) = info_ioctl(self.file.as_fd(), input).context(|| {
            format!(
                "VFIO_DEVICE_GET_REGION_INFO({index} {}) on {}",
                region_name(index),
                self.name
            )
        })?;
        Ok(RegionInfo {
            index: info.index,
            flags: info.flags,
            size: info.size,
            offset: info.offset,
            cap_offset: info.cap_offset,
            raw,
        })
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` for IRQ `index`.
    pub fn irq_info(&self, index: u32) -> io::Result<IrqInfo> {
        let mut info = VfioIrqInfo {
            argsz: size_of::<VfioIrqInfo>() as u32,
            index,
            ..Default::default()
        };
        // SAFETY: VFIO_DEVICE_GET_IRQ_INFO reads and writes at most `argsz`
        // bytes of a `struct vfio_irq_info`, which `info` is; it outlives the call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), VFIO_DEVICE_GET_IRQ_INFO, &mut info) }
            .context(|| format!("VFIO_DEVICE_GET_IRQ_INFO({index}) on {}", self.name))?;
        Ok(IrqInfo {
            index: info.index,
            flags: info.flags,
            count: info.count,
        })
    }

    /// Checks that `[offset, offset + len)` lies in the region and returns its
    /// position in the device fd.
    fn region_pos(&self, index: u32, offset: u64, len: usize) -> io::Result<u64> {
        let region = self.region_info(index)?;
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|e| e > region.size) {
            return Err(other(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: access {offset:#x}+{len:#x} outside region {} ({}) of size {:#x}",
                    self.name,
                    index,
                    region_name(index),
                    region.size
                ),
            ));
        }
        region.offset.checked_add(offset).ok_or_else(|| {
            other(
                io::ErrorKind::InvalidInput,
                format!("{}: region offset overflow", self.name),
            )
        })
    }

    /// Reads `buf.len()` bytes at `offset` in region `index` (pread at region.offset + offset).
    pub fn read_region(&self, index: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let pos = self.region_pos(index, offset, buf.len())?;
        self.file.read_exact_at(buf, pos).context(|| {
            format!(
                "{}: read {} bytes at {offset:#x} of region {index} ({})",
                self.name,
                buf.len(),
                region_name(index)
            )
        })
    }

    /// Writes `buf` at `offset` in region `index` (pwrite at region.offset + offset).
    pub fn write_region(&self, index: u32, offset: u64, buf: &[u8]) -> io::Result<()> {
        let pos = self.region_pos(index, offset, buf.len())?;
        self.file.write_all_at(buf, pos).context(|| {
            format!(
                "{}: write {} bytes at {offset:#x} of region {index} ({})",
                self.name,
                buf.len(),
                region_name(index)
            )
        })
    }

    /// Exactly one `pread(2)` at `pos` of the device fd (no region bounds
    /// check): the count it returned, or its error with the errno.
    pub fn pread(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.file.read_at(buf, pos)
    }

    /// Exactly one `pwrite(2)` at `pos` of the device fd (no region bounds check).
    pub fn pwrite(&self, data: &[u8], pos: u64) -> io::Result<usize> {
        self.file.write_at(data, pos)
    }

    /// `VFIO_DEVICE_GET_INFO` on a caller-prepared buffer, for tests of the
    /// `argsz` protocol: the buffer's first 4 bytes (native endian) are the
    /// `argsz` passed in, and the kernel's answer is left in it. `buf` must
    /// be at least `max(argsz, size_of::<VfioDeviceInfo>())` bytes.
    pub fn get_info_raw(&self, buf: &mut [u8]) -> io::Result<()> {
        let base = size_of::<VfioDeviceInfo>();
        let argsz = match buf.get(..4) {
            Some(b) => u32::from_ne_bytes(b.try_into().expect("4 bytes")) as usize,
            None => 0,
        };
        if buf.len() < base || argsz > buf.len() {
            return Err(other(
                io::ErrorKind::InvalidInput,
                format!(
                    "info buffer of {} bytes for argsz {argsz}: needs at least {}",
                    buf.len(),
                    argsz.max(base)
                ),
            ));
        }
        // SAFETY: VFIO_DEVICE_GET_INFO reads the fixed part (at most
        // `size_of::<VfioDeviceInfo>()` bytes) and writes at most
        // `max(argsz, size_of::<VfioDeviceInfo>())` bytes, all inside `buf`
        // (checked above), which we own exclusively for the call. The kernel
        // does not rely on the buffer's alignment (it copies bytes).
        unsafe { sys::ioctl_ptr(self.file.as_fd(), VFIO_DEVICE_GET_INFO, buf.as_mut_ptr()) }
            .map(drop)
            .context(|| format!("VFIO_DEVICE_GET_INFO(argsz {argsz}) on {}", self.name))
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` on a caller-prepared buffer, for tests of
    /// the `argsz` protocol: the buffer starts with a `struct vfio_region_info`
    /// whose `argsz` (first 4 bytes) and `index` (bytes 8..12, native endian)
    /// the caller set, and the kernel's answer is left in it. `buf` must be at
    /// least `max(argsz, size_of::<VfioRegionInfo>())` bytes.
    pub fn get_region_info_raw(&self, buf: &mut [u8]) -> io::Result<()> {
        let base = size_of::<VfioRegionInfo>();
        let argsz = match buf.get(..4) {
            Some(b) => u32::from_ne_bytes(b.try_into().expect("4 bytes")) as usize,
            None => 0,
        };
        if buf.len() < base || argsz > buf.len() {
            return Err(other(
                io::ErrorKind::InvalidInput,
                format!(
                    "region info buffer of {} bytes for argsz {argsz}: needs at least {}",
                    buf.len(),
                    argsz.max(base)
                ),
            ));
        }
        let index = u32::from_ne_bytes(buf[8..12].try_into().expect("4 bytes"));
        // SAFETY: VFIO_DEVICE_GET_REGION_INFO reads the fixed part (at most
        // `size_of::<VfioRegionInfo>()` bytes) and writes at most
        // `max(argsz, size_of::<VfioRegionInfo>())` bytes, all inside `buf`
        // (checked above), which we own exclusively for the call. The kernel
        // does not rely on the buffer's alignment (it copies bytes).
        unsafe {
            sys::ioctl_ptr(
                self.file.as_fd(),
                VFIO_DEVICE_GET_REGION_INFO,
                buf.as_mut_ptr(),
            )
        }
        .map(drop)
        .context(|| {
            format!(
                "VFIO_DEVICE_GET_REGION_INFO({index} {}, argsz {argsz}) on {}",
                region_name(index),
                self.name
            )
        })
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` on a caller-prepared buffer, for tests of the
    /// `argsz` protocol: the buffer starts with a `struct vfio_irq_info` whose
    /// `argsz` (bytes 0..4) and `index` (bytes 8..12, native endian) the caller
    /// set, and the kernel's answer is left in it. `buf` must be at least
    /// `max(argsz, size_of::<VfioIrqInfo>())` bytes.
    pub fn get_irq_info_raw(&self, buf: &mut [u8]) -> io::Result<()> {
        let base = size_of::<VfioIrqInfo>();
        let argsz = match buf.get(..4) {
            Some(b) => u32::from_ne_bytes(b.try_into().expect("4 bytes")) as usize,
            None => 0,
        };
        if buf.len() < base || argsz > buf.len() {
            return Err(other(
                io::ErrorKind::InvalidInput,
                format!(
                    "IRQ info buffer of {} bytes for argsz {argsz}: needs at least {}",
                    buf.len(),
                    argsz.max(base)
                ),
            ));
        }
        let index = u32::from_ne_bytes(buf[8..12].try_into().expect("4 bytes"));
        // SAFETY: VFIO_DEVICE_GET_IRQ_INFO reads and writes the fixed part
        // (`size_of::<VfioIrqInfo>()` bytes) only, inside `buf` (checked above),
        // which we own exclusively for the call; the kernel copies bytes and
        // does not rely on the buffer's alignment.
        unsafe {
            sys::ioctl_ptr(
                self.file.as_fd(),
                VFIO_DEVICE_GET_IRQ_INFO,
                buf.as_mut_ptr(),
            )
        }
        .map(drop)
        .context(|| {
            format!(
                "VFIO_DEVICE_GET_IRQ_INFO({index}, argsz {argsz}) on {}",
                self.name
            )
        })
    }

    /// `VFIO_DEVICE_FEATURE` on a caller-prepared buffer: a `struct
    /// vfio_device_feature` (`argsz` in bytes 0..4, `flags` in 4..8, native
    /// endian) and its payload, for tests of corrupted requests. `buf` must be
    /// at least `max(argsz, size_of::<VfioDeviceFeature>())` bytes: the kernel
    /// reads or writes at most `argsz` bytes.
    pub fn feature_raw(&self, buf: &mut [u8]) -> io::Result<()> {
        let base = size_of::<VfioDeviceFeature>();
        let (argsz, flags) = match (buf.get(..4), buf.get(4..8)) {
            (Some(a), Some(f)) => (
                u32::from_ne_bytes(a.try_into().expect("4 bytes")) as usize,
                u32::from_ne_bytes(f.try_into().expect("4 bytes")),
            ),
            _ => (0, 0),
        };
        if buf.len() < base || argsz > buf.len() {
            return Err(other(
                io::ErrorKind::InvalidInput,
                format!(
                    "feature buffer of {} bytes for argsz {argsz}: needs at least {}",
                    buf.len(),
                    argsz.max(base)
                ),
            ));
        }
        // SAFETY: VFIO_DEVICE_FEATURE reads the 8-byte header, then reads or
        // writes a payload only within `argsz` bytes (it refuses an `argsz`
        // too small for the feature's payload); all of that is inside `buf`
        // (checked above), which we own exclusively for the call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), VFIO_DEVICE_FEATURE, buf.as_mut_ptr()) }
            .map(drop)
            .context(|| {
                format!(
                    "VFIO_DEVICE_FEATURE({flags:#x}, argsz {argsz}) on {}",
                    self.name
                )
            })
    }

    /// An ioctl of the VFIO type whose number, `VFIO_BASE + nr`, Linux 6.12
    /// does not define for device fds (`nr` from [`UNKNOWN_VFIO_NR_MIN`] on),
    /// with a NULL argument: the kernel must answer `ENOTTY` (or `EFAULT` were
    /// a future kernel to define it), never act.
    pub fn unknown_ioctl(&self, nr: u8) -> io::Result<()> {
        if !(UNKNOWN_VFIO_NR_MIN..=u8::MAX - VFIO_BASE).contains(&nr) {
            return Err(other(
                io::ErrorKind::InvalidInput,
                format!("VFIO_BASE + {nr} is not an unused ioctl number"),
            ));
        }
        // SAFETY: `VFIO_BASE + nr` is no request Linux 6.12 knows on a device fd
        // (checked above); whatever a kernel does with it, the argument is NULL,
        // so no user memory can be accessed through it.
        unsafe { sys::ioctl_none(self.file.as_fd(), vfio_io(nr)) }
            .map(drop)
            .context(|| format!("ioctl VFIO_BASE + {nr} on {}", self.name))
    }

    /// `VFIO_DEVICE_FEATURE` with `flags` (feature index and GET/SET/PROBE)
    /// and no payload, as the low power features take.
    pub fn feature(&self, flags: u32) -> io::Result<()> {
        let mut feature = VfioDeviceFeature {
            argsz: size_of::<VfioDeviceFeature>() as u32,
            flags,
        };
        // SAFETY: VFIO_DEVICE_FEATURE reads the 8-byte header and then at
        // most `argsz - 8` = 0 payload bytes; `feature` outlives the call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), VFIO_DEVICE_FEATURE, &mut feature) }
            .map(drop)
            .context(|| format!("VFIO_DEVICE_FEATURE({flags:#x}) on {}", self.name))
    }

    /// Allows runtime low power (`VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY`).
    pub fn low_power_entry(&self) -> io::Result<()> {
        self.feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY)
    }

    /// Leaves runtime low power (`VFIO_DEVICE_FEATURE_LOW_POWER_EXIT`).
    pub fn low_power_exit(&self) -> io::Result<()> {
        self.feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT)
    }

    /// Reads a 16-bit little-endian config-space register through the CONFIG region.
    pub fn config_read16(&self, offset: u64) -> io::Result<u16> {
        let mut b = [0u8; 2];
        self.read_region(VFIO_PCI_CONFIG_REGION_INDEX, offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Writes a 16-bit little-endian config-space register through the CONFIG region.
    pub fn config_write16(&self, offset: u64, value: u16) -> io::Result<()> {
        self.write_region(VFIO_PCI_CONFIG_REGION_INDEX, offset, &value.to_le_bytes())
    }

    /// Offset of the PCI Power Management capability in config space, as the user sees it
    /// through the CONFIG region; `None` when the device has none.
    pub fn pm_cap(&self) -> io::Result<Option<u64>> {
        const CAPABILITY_LIST: u64 = 0x34;
        const CAP_ID_PM: u16 = 0x01;
        let mut at = u64::from(self.config_read16(CAPABILITY_LIST)? & 0xfc);
        // 48 capabilities at most fit in the 192 bytes after the header.
        for _ in 0..48 {
            if at == 0 {
                break;
            }
            let header = self.config_read16(at)?;
            if header & 0xff == CAP_ID_PM {
                return Ok(Some(at));
            }
            at = u64::from(header >> 8) & 0xfc;
        }
        Ok(None)
    }

    /// Reads a 32-bit little-endian config-space register through the CONFIG region.
    pub fn config_read32(&self, offset: u64) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_region(VFIO_PCI_CONFIG_REGION_INDEX, offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// `VFIO_DEVICE_RESET`. vfio-pci fails it with `EINVAL` when the device has
    /// no working reset method (see [`crate::error::raw_os_error`]).
    pub fn reset(&self) -> io::Result<()> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        unsafe { sys::ioctl_none(self.file.as_fd(), VFIO_DEVICE_RESET) }
            .map(drop)
            .context(|| format!("VFIO_DEVICE_RESET on {}", self.name))
    }

    /// Closes the device fd, reporting an error from `close(2)`.
    pub fn close(self) -> io::Result<()> {
        let name = self.name;
        sys::close(self.file).context(|| format!("close device fd of {name}"))
    }
}

#[cfg(test)]
impl Device {
    /// A device over any file, for tests of the wrappers without VFIO.
    pub(crate) fn from_file(file: File, name: &str) -> Self {
        Device {
            file,
            name: name.to_string(),
        }
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// The ioctl and fd helpers every VFIO and iommufd wrapper goes through.
pub(crate) mod sys {
    use std::fs::File;
    use std::io;
    use std::mem::size_of;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd};

    use super::InfoStruct;

    fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// An ioctl with no argument (`VFIO_GET_API_VERSION`, `VFIO_DEVICE_RESET`).
    ///
    /// # Safety
    ///
    /// `request` must not use its argument as a pointer.
    pub(crate) unsafe fn ioctl_none(fd: BorrowedFd<'_>, request: u64) -> io::Result<libc::c_int> {
        // SAFETY: the argument is 0 and the caller guarantees `request` does not
        // dereference it, so the kernel touches no user memory; `fd` is open.
        check(unsafe { libc::ioctl(fd.as_raw_fd(), request as _, 0 as libc::c_ulong) })
    }

    /// An ioctl whose argument is an integer passed by value
    /// (`VFIO_CHECK_EXTENSION`, `VFIO_SET_IOMMU`).
    ///
    /// # Safety
    ///
    /// `request` must treat its argument as a number, not a pointer.
    pub(crate) unsafe fn ioctl_value(
        fd: BorrowedFd<'_>,
        request: u64,
        value: libc::c_ulong,
    ) -> io::Result<libc::c_int> {
        // SAFETY: the caller guarantees the kernel never dereferences `value`;
        // `fd` is open for the call.
        check(unsafe { libc::ioctl(fd.as_raw_fd(), request as _, value) })
    }

    /// An ioctl whose argument is a pointer to `T`.
    ///
    /// # Safety
    ///
    /// Every access `request` makes through `arg` must stay within memory that
    /// is valid (and, for writes, exclusively ours) for the duration of the
    /// call: for VFIO info structures that is `argsz` bytes, which must not
    /// exceed the object; for a string, up to its NUL. Whatever the kernel
    /// writes must be a valid `T` (true for integer-only structures).
    pub(crate) unsafe fn ioctl_ptr<T>(
        fd: BorrowedFd<'_>,
        request: u64,
        arg: *mut T,
    ) -> io::Result<libc::c_int> {
        // SAFETY: the caller guarantees the kernel stays within `*arg`; `fd` is
        // open for the call.
        check(unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) })
    }

    /// Issues `T::REQUEST` on a buffer of `buf.len() * 8` bytes that starts
    /// with `input` (room for the capability chain after it); returns the
    /// structure at the start of the buffer afterwards.
    pub(super) fn ioctl_info_buffer<T: InfoStruct>(
        fd: BorrowedFd<'_>,
        input: T,
        buf: &mut [u64],
    ) -> io::Result<T> {
        let bytes = buf.len() * 8;
        assert!(bytes >= size_of::<T>() && input.argsz() as usize <= bytes);
        assert!(std::mem::align_of::<T>() <= 8);
        let p = buf.as_mut_ptr().cast::<T>();
        // SAFETY: `buf` is at least `size_of::<T>()` bytes and 8-byte aligned,
        // enough for `T` (asserted above), and we own it exclusively.
        unsafe { p.write(input) };
        // SAFETY: `T::REQUEST` accesses at most `argsz` bytes (trait contract)
        // and `argsz` is within `buf` (asserted above); `buf` outlives the call.
        check(unsafe { libc::ioctl(fd.as_raw_fd(), T::REQUEST as _, p) })?;
        // SAFETY: the buffer still holds an initialized `T` (the kernel only
        // writes integers into it), aligned as above; `InfoStruct` types are
        // valid for any bit pattern.
        Ok(unsafe { p.read() })
    }

    /// The bytes of an info structure.
    pub(super) fn struct_bytes<T: InfoStruct>(value: &T) -> Vec<u8> {
        let p = (value as *const T).cast::<u8>();
        // SAFETY: `InfoStruct` types are `repr(C)` integer-only structures
        // without padding bytes (trait contract), so all `size_of::<T>()`
        // bytes are initialized and readable for the lifetime of `value`.
        unsafe { std::slice::from_raw_parts(p, size_of::<T>()) }.to_vec()
    }

    /// Takes ownership of an fd the kernel just returned.
    pub(super) fn adopt_new_fd(fd: libc::c_int) -> File {
        // SAFETY: `fd` was returned by a successful VFIO_GROUP_GET_DEVICE_FD: it
        // is a fresh, open descriptor that nothing else owns or will close.
        unsafe { File::from_raw_fd(fd) }
    }

    /// Closes a file, returning the `close(2)` error that `Drop` would ignore.
    pub(crate) fn close(file: File) -> io::Result<()> {
        let fd = file.into_raw_fd();
        // SAFETY: `into_raw_fd` gave us sole ownership of `fd`; it is closed
        // exactly once here and not used afterwards.
        let ret = unsafe { libc::close(fd) };
        check(ret).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(buf: &mut Vec<u8>, id: u16, version: u16, next: u32, payload: &[u8]) {
        buf.extend_from_slice(&id.to_ne_bytes());
        buf.extend_from_slice(&version.to_ne_bytes());
        buf.extend_from_slice(&next.to_ne_bytes());
        buf.extend_from_slice(payload);
    }

    /// A region info buffer with a sparse-mmap cap (2 areas) then a type cap.
    fn sample_region_buffer() -> Vec<u8> {
        let mut buf = vec![0u8; 32];
        let mut sparse = Vec::new();
        sparse.extend_from_slice(&2u32.to_ne_bytes());
        sparse.extend_from_slice(&0u32.to_ne_bytes());
        for (o, s) in [(0u64, 0x1000u64), (0x3000, 0xd000)] {
            sparse.extend_from_slice(&o.to_ne_bytes());
            sparse.extend_from_slice(&s.to_ne_bytes());
        }
        let second = 32 + 8 + sparse.len() as u32;
        cap(
            &mut buf,
            VFIO_REGION_INFO_CAP_SPARSE_MMAP,
            1,
            second,
            &sparse,
        );
        let mut ty = Vec::new();
        ty.extend_from_slice(&0x8086_0000u32.to_ne_bytes());
        ty.extend_from_slice(&3u32.to_ne_bytes());
        cap(&mut buf, VFIO_REGION_INFO_CAP_TYPE, 1, 0, &ty);
        buf
    }

    #[test]
    fn cap_chain_parsing() {
        let buf = sample_region_buffer();
        let caps = parse_cap_chain(&buf, 32);
        assert_eq!(caps.len(), 2);
        assert_eq!(caps[0].id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
        assert_eq!(caps[0].offset, 32);
        assert_eq!(caps[0].data.len(), 8 + 2 * 16);
        assert_eq!(
            caps[0].sparse_mmap_areas().unwrap(),
            vec![
                VfioRegionSparseMmapArea {
                    offset: 0,
                    size: 0x1000
                },
                VfioRegionSparseMmapArea {
                    offset: 0x3000,
                    size: 0xd000
                },
            ]
        );
        assert_eq!(caps[0].region_type(), None);
        assert_eq!(caps[1].id, VFIO_REGION_INFO_CAP_TYPE);
        assert_eq!(caps[1].region_type(), Some((0x8086_0000, 3)));
        assert_eq!(caps[1].sparse_mmap_areas(), None);
    }

    #[test]
    fn cap_chain_edge_cases() {
        let buf = sample_region_buffer();
        assert!(parse_cap_chain(&buf, 0).is_empty());
        // Offset past the end.
        assert!(parse_cap_chain(&buf, buf.len() as u32).is_empty());
        // A self-referencing chain stops after one entry.
        let mut looped = vec![0u8; 32];
        cap(&mut looped, 3, 1, 32, &[]);
        assert_eq!(parse_cap_chain(&looped, 32).len(), 1);
        // Truncated sparse-mmap payload: areas claimed but missing.
        let mut short = vec![0u8; 32];
        cap(
            &mut short,
            VFIO_REGION_INFO_CAP_SPARSE_MMAP,
            1,
            0,
            &[5, 0, 0, 0, 0, 0, 0, 0],
        );
        let caps = parse_cap_chain(&short, 32);
        assert_eq!(caps.len(), 1);
        assert_eq!(caps[0].sparse_mmap_areas(), None);
    }

    #[test]
    fn cxl_device_cap_parsing() {
        let mut buf = vec![0u8; 24];
        let mut payload = vec![0u8; 24];
        payload[0] = 2;
        payload[4..8].copy_from_slice(&3u32.to_ne_bytes());
        payload[8..16].copy_from_slice(&0x1000u64.to_ne_bytes());
        payload[16..20].copy_from_slice(&9u32.to_ne_bytes());
        payload[20..24].copy_from_slice(&10u32.to_ne_bytes());
        cap(&mut buf, VFIO_DEVICE_INFO_CAP_CXL, 1, 0, &payload);
        let caps = parse_cap_chain(&buf, 24);
        assert_eq!(caps.len(), 1);
        let c = caps[0].cxl_device().unwrap();
        assert_eq!(
            (
                c.hdm_regs_bar_index,
                c.reserved,
                c.flags,
                c.hdm_regs_offset,
                c.dpa_region_index,
                c.comp_regs_region_index
            ),
            (2, [0; 3], 3, 0x1000, 9, 10)
        );
        assert_eq!(caps[0].region_type(), None);
        // Truncated, or another id.
        let short = Capability {
            data: payload[..20].to_vec(),
            ..caps[0].clone()
        };
        assert_eq!(short.cxl_device(), None);
        let other = Capability {
            id: VFIO_REGION_INFO_CAP_TYPE,
            ..caps[0].clone()
        };
        assert_eq!(other.cxl_device(), None);
    }

    #[test]
    fn cxl_comp_regs_cap_parsing() {
        // After the region info (32 bytes) and a type capability (16 bytes).
        let mut buf = vec![0u8; 32];
        let mut ty = vec![0u8; 8];
        ty[..4].copy_from_slice(&0x8000_1e98u32.to_ne_bytes());
        ty[4..].copy_from_slice(&2u32.to_ne_bytes());
        cap(&mut buf, VFIO_REGION_INFO_CAP_TYPE, 1, 48, &ty);
        let mut payload = vec![0u8; 24];
        payload[..4].copy_from_slice(&2u32.to_ne_bytes());
        payload[8..16].copy_from_slice(&0x2_0000u64.to_ne_bytes());
        payload[16..24].copy_from_slice(&0x1_0000u64.to_ne_bytes());
        cap(&mut buf, VFIO_REGION_INFO_CAP_CXL_COMP_REGS, 1, 0, &payload);
        let caps = parse_cap_chain(&buf, 32);
        assert_eq!(caps.len(), 2);
        assert_eq!(caps[0].cxl_comp_regs(), None);
        let c = caps[1].cxl_comp_regs().unwrap();
        assert_eq!(
            (c.bar_index, c.pad, c.block_offset, c.block_size),
            (2, 0, 0x2_0000, 0x1_0000)
        );
        let short = Capability {
            data: payload[..20].to_vec(),
            ..caps[1].clone()
        };
        assert_eq!(short.cxl_comp_regs(), None);
    }

    #[test]
    fn raw_info_checks_buffer_size() {
        let f = File::open("/dev/null").unwrap();
        let d = Device {
            file: f,
            name: "null".into(),
        };
        let mut small = vec![0u8; 16];
        assert_eq!(
            d.get_info_raw(&mut small).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let mut buf = vec![0u8; 64];
        buf[..4].copy_from_slice(&65u32.to_ne_bytes());
        assert_eq!(
            d.get_info_raw(&mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        // A valid buffer reaches the ioctl, which /dev/null refuses.
        buf[..4].copy_from_slice(&24u32.to_ne_bytes());
        let e = d.get_info_raw(&mut buf).unwrap_err();
        assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
        let mut small = vec![0u8; 24];
        assert_eq!(
            d.get_region_info_raw(&mut small).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let mut buf = vec![0u8; 40];
        buf[..4].copy_from_slice(&41u32.to_ne_bytes());
        assert_eq!(
            d.get_region_info_raw(&mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        buf[..4].copy_from_slice(&32u32.to_ne_bytes());
        let e = d.get_region_info_raw(&mut buf).unwrap_err();
        assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
        let e = d.low_power_entry().unwrap_err();
        assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
    }

    #[test]
    fn raw_irq_feature_and_unknown_ioctls() {
        let d = Device::from_file(File::open("/dev/null").unwrap(), "null");
        // Buffers too small for their argsz never reach the kernel.
        let mut small = vec![0u8; 12];
        assert_eq!(
            d.get_irq_info_raw(&mut small).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let mut buf = vec![0u8; 16];
        buf[..4].copy_from_slice(&17u32.to_ne_bytes());
        assert_eq!(
            d.get_irq_info_raw(&mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        buf[..4].copy_from_slice(&3u32.to_ne_bytes());
        let e = d.get_irq_info_raw(&mut buf).unwrap_err();
        assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
        let mut f = vec![0u8; 8];
        f[..4].copy_from_slice(&9u32.to_ne_bytes());
        assert_eq!(
            d.feature_raw(&mut f).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        f[..4].copy_from_slice(&8u32.to_ne_bytes());
        let e = d.feature_raw(&mut f).unwrap_err();
        assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
        // Numbers the kernel defines are refused before the syscall.
        for nr in [0u8, 11, 17, UNKNOWN_VFIO_NR_MIN - 1, 156] {
            assert_eq!(
                d.unknown_ioctl(nr).unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{nr}"
            );
        }
        let e = d.unknown_ioctl(UNKNOWN_VFIO_NR_MIN).unwrap_err();
        assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
        assert!(e.to_string().contains("VFIO_BASE + 22"), "{e}");
    }

    #[test]
    fn info_struct_bytes() {
        let info = VfioRegionInfo {
            argsz: 32,
            flags: 3,
            index: 7,
            cap_offset: 0,
            size: 0x1000,
            offset: 7 << 40,
        };
        let b = sys::struct_bytes(&info);
        assert_eq!(b.len(), 32);
        assert_eq!(u32_at(&b, 8), Some(7));
        assert_eq!(u64_at(&b, 16), Some(0x1000));
        assert_eq!(u64_at(&b, 24), Some(7 << 40));
    }

    #[test]
    fn group_paths() {
        assert_eq!(group_path(3, false), PathBuf::from("/dev/vfio/3"));
        assert_eq!(group_path(0, true), PathBuf::from("/dev/vfio/noiommu-0"));
    }

    #[test]
    fn dma_and_cdev_ioctls_carry_errno() {
        // On a non-VFIO fd every ioctl fails with ENOTTY: the error names the
        // ioctl and its arguments, and keeps the errno.
        let null = || File::open("/dev/null").unwrap();
        let c = Container::from_file(null());
        let e = c
            .map_dma(
                0x1000,
                0x1_0000_0000,
                0x20_0000,
                VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            )
            .unwrap_err();
        assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
        assert!(
            e.to_string().starts_with(
                "VFIO_IOMMU_MAP_DMA(vaddr 0x1000 iova 0x100000000 size 0x200000 flags 0x3): "
            ),
            "{e}"
        );
        let e = c.unmap_dma(0x1_0000_0000, 0x20_0000, 0).unwrap_err();
        assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
        assert!(
            e.to_string()
                .starts_with("VFIO_IOMMU_UNMAP_DMA(iova 0x100000000 size 0x200000 flags 0x0): "),
            "{e}"
        );
        let d = Device::from_file(null(), "0000:0d:00.0");
        for (e, what) in [
            (
                d.bind_iommufd(c.as_fd()).map(drop),
                "VFIO_DEVICE_BIND_IOMMUFD on ",
            ),
            (
                d.attach_iommufd_pt(2).map(drop),
                "VFIO_DEVICE_ATTACH_IOMMUFD_PT(2) on ",
            ),
            (d.detach_iommufd_pt(), "VFIO_DEVICE_DETACH_IOMMUFD_PT on "),
        ] {
            let e = e.unwrap_err();
            assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
            assert!(
                e.to_string().starts_with(&format!("{what}0000:0d:00.0: ")),
                "{e}"
            );
        }
        d.close().unwrap();
        let g = Group::from_file(null(), 3, false);
        assert_eq!(g.path(), Path::new("/dev/vfio/3"));
        g.close().unwrap();
        c.close().unwrap();
        let e = Device::open_cdev(Path::new("/dev/vfio/devices/vfio-none"), "0000:0d:00.0")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string()
                .starts_with("open /dev/vfio/devices/vfio-none (VFIO cdev of 0000:0d:00.0): "),
            "{e}"
        );
    }

    #[test]
    fn ioctl_errors_carry_errno() {
        // A VFIO ioctl on a non-VFIO fd fails with ENOTTY, and the wrapper
        // reports it with context; exercises the real syscall path.
        let f = File::open("/dev/null").unwrap();
        let c = Container { file: f };
        let e = c.api_version().unwrap_err();
        assert_eq!(crate::error::raw_os_error(&e), Some(libc::ENOTTY));
        assert!(e.to_string().starts_with("VFIO_GET_API_VERSION: "), "{e}");
        c.close().unwrap();
    }
}
