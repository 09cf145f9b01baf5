//! A safe wrapper over an iommufd (`/dev/iommu`): IO address spaces (IOAS)
//! and their mappings, as a VMM that opens VFIO devices through their cdevs
//! uses them.
//!
//! Each wrapper issues exactly one ioctl and returns its errno unchanged (with
//! context), so tests can check refusals. The raw calls go through the same
//! `sys` helpers as [`crate::vfio`].

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, BorrowedFd};

use crate::error::{with_context, ResultExt};
use crate::uapi::*;
use crate::vfio::sys;

/// The iommufd device node.
pub const IOMMUFD_PATH: &str = "/dev/iommu";

/// An open `/dev/iommu`. Closing it destroys every object in it.
#[derive(Debug)]
pub struct Iommufd {
    file: File,
}

impl Iommufd {
    /// Opens `/dev/iommu`.
    pub fn open() -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(IOMMUFD_PATH)
            .map_err(|e| {
                let hint = if e.kind() == io::ErrorKind::NotFound {
                    " (kernel without CONFIG_IOMMUFD, or the iommufd module is not loaded)"
                } else {
                    ""
                };
                with_context(e, format!("open {IOMMUFD_PATH}{hint}"))
            })?;
        Ok(Iommufd { file })
    }

    /// `IOMMU_IOAS_ALLOC`: a new, empty IO address space; returns its id.
    pub fn ioas_alloc(&self) -> io::Result<u32> {
        let mut alloc = IommuIoasAlloc {
            size: size_of::<IommuIoasAlloc>() as u32,
            flags: 0,
            out_ioas_id: 0,
        };
        // SAFETY: IOMMU_IOAS_ALLOC reads `size` (12) bytes of a `struct
        // iommu_ioas_alloc` and writes its `out_ioas_id`; `alloc` is that
        // structure (layout asserted in `uapi`) and outlives the call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), IOMMU_IOAS_ALLOC, &mut alloc) }
            .context(|| "IOMMU_IOAS_ALLOC".to_string())?;
        Ok(alloc.out_ioas_id)
    }

    /// `IOMMU_DESTROY` of object `id` (an IOAS, a HWPT, ...). The kernel
    /// refuses (`EBUSY`) while something, e.g. an attached device, uses it.
    pub fn destroy(&self, id: u32) -> io::Result<()> {
        let mut destroy = IommuDestroy {
            size: size_of::<IommuDestroy>() as u32,
            id,
        };
        // SAFETY: IOMMU_DESTROY reads the 8 bytes of a `struct iommu_destroy`,
        // which `destroy` is; it outlives the call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), IOMMU_DESTROY, &mut destroy) }
            .map(drop)
            .context(|| format!("IOMMU_DESTROY({id})"))
    }

    /// `IOMMU_IOAS_MAP`: maps `length` bytes of this process's memory at
    /// `user_va` into IOAS `ioas_id`, with `flags` (`IOMMU_IOAS_MAP_*`; with
    /// `IOMMU_IOAS_MAP_FIXED_IOVA` at `iova`, else where the kernel chooses).
    /// Returns the IOVA of the mapping.
    ///
    /// iommufd pins the pages with `pin_user_pages`, so memory that has no
    /// `struct page` behind it (a `VM_PFNMAP` mapping such as a device BAR or
    /// the DPA region) is refused with the kernel's errno. While mapped, an
    /// attached device may write that memory at any time, so the caller keeps
    /// it mapped and treats its contents as shared with the device.
    pub fn ioas_map(
        &self,
        ioas_id: u32,
        user_va: u64,
        iova: u64,
        length: u64,
        flags: u32,
    ) -> io::Result<u64> {
        let mut map = IommuIoasMap {
            size: size_of::<IommuIoasMap>() as u32,
            flags,
            ioas_id,
            reserved: 0,
            user_va,
            length,
            iova,
        };
        // SAFETY: IOMMU_IOAS_MAP reads `size` (40) bytes of a `struct
        // iommu_ioas_map` and writes back its `iova`; `map` is that structure
        // and outlives the call. The kernel validates `user_va` itself and
        // never writes through it from this call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), IOMMU_IOAS_MAP, &mut map) }.context(|| {
            format!(
                "IOMMU_IOAS_MAP(ioas {ioas_id} user_va {user_va:#x} iova {iova:#x} length {length:#x} flags {flags:#x})"
            )
        })?;
        Ok(map.iova)
    }

    /// `IOMMU_IOAS_UNMAP` of `[iova, iova + length)` in IOAS `ioas_id`;
    /// returns the bytes the kernel unmapped.
    pub fn ioas_unmap(&self, ioas_id: u32, iova: u64, length: u64) -> io::Result<u64> {
        let mut unmap = IommuIoasUnmap {
            size: size_of::<IommuIoasUnmap>() as u32,
            ioas_id,
            iova,
            length,
        };
        // SAFETY: IOMMU_IOAS_UNMAP reads `size` (24) bytes of a `struct
        // iommu_ioas_unmap` and writes back its `length`; `unmap` is that
        // structure and outlives the call.
        unsafe { sys::ioctl_ptr(self.file.as_fd(), IOMMU_IOAS_UNMAP, &mut unmap) }.context(
            || format!("IOMMU_IOAS_UNMAP(ioas {ioas_id} iova {iova:#x} length {length:#x})"),
        )?;
        Ok(unmap.length)
    }

    /// Closes `/dev/iommu`, reporting an error from `close(2)`.
    pub fn close(self) -> io::Result<()> {
        sys::close(self.file).context(|| format!("close {IOMMUFD_PATH}"))
    }
}

#[cfg(test)]
impl Iommufd {
    /// An iommufd over any file, for tests of the wrappers without `/dev/iommu`.
    pub(crate) fn from_file(file: File) -> Self {
        Iommufd { file }
    }
}

impl AsFd for Iommufd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::raw_os_error;

    #[test]
    fn ioctls_reach_the_kernel_with_errno_and_context() {
        // Every iommufd ioctl on a non-iommufd fd fails with ENOTTY; the
        // error names the ioctl and its arguments.
        let f = Iommufd::from_file(File::open("/dev/null").unwrap());
        let e = f.ioas_alloc().unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::ENOTTY));
        assert!(e.to_string().starts_with("IOMMU_IOAS_ALLOC: "), "{e}");
        let e = f.destroy(7).unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::ENOTTY));
        assert!(e.to_string().starts_with("IOMMU_DESTROY(7): "), "{e}");
        let e = f
            .ioas_map(
                1,
                0x1000,
                0x1_0000_0000,
                0x20_0000,
                IOMMU_IOAS_MAP_FIXED_IOVA,
            )
            .unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::ENOTTY));
        assert!(
            e.to_string().starts_with(
                "IOMMU_IOAS_MAP(ioas 1 user_va 0x1000 iova 0x100000000 length 0x200000 flags 0x1): "
            ),
            "{e}"
        );
        let e = f.ioas_unmap(1, 0x1_0000_0000, 0x20_0000).unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::ENOTTY));
        assert!(e.to_string().starts_with("IOMMU_IOAS_UNMAP(ioas 1 "), "{e}");
        f.close().unwrap();
    }
}
