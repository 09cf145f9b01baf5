// SPDX-License-Identifier: GPL-2.0

//! Device memory: host physical address ranges that a device decodes as memory (CXL.mem
//! HDM ranges, for instance), claimed for one owner and mapped write-back.
//!
//! Such a range is RAM, not registers: it is mapped with `memremap(MEMREMAP_WB)`, which also
//! records the write-back memory type, so that user mappings of it get the same type. Only a
//! range the platform itself describes as memory can be claimed ([`CxlWindowRange`]): mapping
//! registers or a hole write-back is a machine check waiting to happen.
//!
//! C headers: [`include/linux/ioport.h`](srctree/include/linux/ioport.h),
//! [`include/linux/io.h`](srctree/include/linux/io.h)

use crate::{
    acpi::{self, cedt},
    bindings,
    error::{
        code::{EBUSY, EINVAL, EIO, ENOMEM},
        from_err_ptr, Error, Result,
    },
    str::CString,
};
use core::ptr::NonNull;

/// A host physical range inside one CXL Fixed Memory Window that the platform describes in its
/// ACPI CEDT: addresses the platform routes to CXL devices as memory, never registers or holes,
/// so that a write-back mapping of them is sound.
///
/// # Invariants
///
/// `[start, start + len)` is not empty, page aligned, does not wrap, and lies inside a CFMWS of
/// the platform's CEDT.
///
/// # Examples
///
/// ```
/// use kernel::io::mem::CxlWindowRange;
///
/// // Page 0 is never inside a CXL window; an empty or unaligned range is never accepted.
/// assert!(CxlWindowRange::find(0, 4096).is_err());
/// assert!(CxlWindowRange::find(1 << 40, 0).is_err());
/// assert!(CxlWindowRange::find((1 << 40) + 1, 4096).is_err());
/// ```
#[derive(Debug)]
pub struct CxlWindowRange {
    start: u64,
    len: usize,
}

impl CxlWindowRange {
    /// `[start, start + len)`, if it lies wholly inside one CXL Fixed Memory Window of the
    /// platform. `ENODEV` when the platform has no CEDT; `EINVAL` when the range is empty,
    /// not page aligned, wraps, lies outside every window, or the CEDT cannot be parsed.
    pub fn find(start: u64, len: usize) -> Result<Self> {
        let page = bindings::PAGE_SIZE as u64;
        if len == 0
            || start % page != 0
            || len as u64 % page != 0
            || start.checked_add(len as u64).is_none()
        {
            return Err(EINVAL);
        }
        let table = acpi::copy_table(&cedt::SIGNATURE)?;
        let mut inside = false;
        cedt::for_each_window(&table, &mut |w| inside |= w.contains(start, len as u64))
            .map_err(|_| EINVAL)?;
        if !inside {
            return Err(EINVAL);
        }
        // INVARIANT: Checked above.
        Ok(Self { start, len })
    }

    /// First byte of the range.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Length of the range in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty (never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A claimed and write-back mapped range of host physical memory.
///
/// [`DeviceMemory::claim`] requests the range from the iomem resource tree under a name (so
/// that System RAM, a CXL region, another driver or a second claim conflict with it, and
/// `/proc/iomem` shows the owner), then maps it. Drop unmaps and releases it.
///
/// Accesses are bounds-checked byte copies. The memory may also be mapped into user space, so
/// its content can change at any time; no Rust reference to it is ever created.
///
/// # Invariants
///
/// - `[start, start + len)` is a busy iomem resource that `request_mem_region_within_desc`
///   created for this value, named by `name`, and released only in drop.
/// - `addr` is the start of a `memremap(MEMREMAP_WB)` mapping of the whole range, unmapped in
///   drop before the resource is released.
pub struct DeviceMemory {
    start: u64,
    len: usize,
    addr: NonNull<u8>,
    /// The resource's name: the resource points to it until it is released.
    _name: CString,
}

// SAFETY: The mapping and the resource are plain kernel objects usable from any thread; all
// accesses are raw copies that need no synchronisation for memory safety.
unsafe impl Send for DeviceMemory {}

// SAFETY: `&self` methods only copy bytes in or out of the mapping (see `Send`).
unsafe impl Sync for DeviceMemory {}

/// Room for the names of the resources that hold a range (see [`ResourceOwner`]).
const OWNER_LEN: usize = 96;

/// The resources that hold a range [`DeviceMemory::claim`] wanted, as `/proc/iomem` nests
/// them: the outermost first, then its descendants that overlap the range, joined by `" > "`
/// (`"region0 > dax0.0 > System RAM (kmem)"`; at most four names, cut at 95 bytes, which
/// keeps [`ClaimError`] small enough to return by value).
pub struct ResourceOwner {
    names: [u8; OWNER_LEN],
    len: usize,
}

impl ResourceOwner {
    /// The names, outermost first, joined by `" > "`.
    pub fn as_str(&self) -> &str {
        let names = self.names.get(..self.len).unwrap_or(&[]);
        core::str::from_utf8(names).unwrap_or("(a resource whose name is not UTF-8)")
    }
}

impl core::fmt::Display for ResourceOwner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`DeviceMemory::claim`] failed.
pub enum ClaimError {
    /// Someone else holds part of the range (`EBUSY`).
    Busy(ResourceOwner),
    /// The claim or the mapping failed with this error (`ENOMEM`, for instance).
    Failed(Error),
}

impl From<ClaimError> for Error {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Busy(_) => EBUSY,
            ClaimError::Failed(e) => e,
        }
    }
}

impl DeviceMemory {
    /// Claims `range` under `name` and maps it write-back.
    ///
    /// The claim nests only in the CXL window that contains the range
    /// (`request_mem_region_within_desc`): it fails with [`ClaimError::Busy`], naming the
    /// holders, when any part of the range already belongs to someone (System RAM, a CXL region
    /// the host assembled, another driver, an earlier claim), and with `ENOMEM` when it cannot
    /// be mapped; nothing is held after a failure.
    pub fn claim(range: &CxlWindowRange, name: CString) -> core::result::Result<Self, ClaimError> {
        // The range is memory, page aligned and does not wrap (`CxlWindowRange` invariant).
        let (start, len) = (range.start, range.len);
        let mut owner = [0u8; OWNER_LEN];
        // SAFETY: `name` outlives the resource (it is stored next to it and dropped after its
        // release); `owner` is writable for its whole length, which is passed with it.
        let res = unsafe {
            bindings::request_mem_region_within_desc(
                start,
                len as u64,
                name.as_char_ptr(),
                bindings::IORES_DESC_CXL as _,
                owner.as_mut_ptr().cast(),
                owner.len(),
            )
        };
        match from_err_ptr(res) {
            Ok(_) => {}
            Err(e) if e == EBUSY => {
                // The C side writes a NUL-terminated string that fits the buffer.
                let len = owner.iter().position(|&b| b == 0).unwrap_or(OWNER_LEN);
                return Err(ClaimError::Busy(ResourceOwner { names: owner, len }));
            }
            Err(e) => return Err(ClaimError::Failed(e)),
        }
        // SAFETY: The range is ours (just claimed), is not System RAM (that would have
        // conflicted) and is memory the platform describes as such (`CxlWindowRange`), so
        // `memremap` creates a new write-back mapping of it.
        let addr = unsafe { bindings::memremap(start, len, bindings::MEMREMAP_WB as _) };
        let Some(addr) = NonNull::new(addr.cast::<u8>()) else {
            // SAFETY: Releases the claim made above, which nothing else references.
            unsafe {
                bindings::__release_region(
                    core::ptr::addr_of_mut!(bindings::iomem_resource),
                    start,
                    len as u64,
                )
            };
            return Err(ClaimError::Failed(ENOMEM));
        };
        // INVARIANT: Both the claim and the mapping were just made.
        Ok(Self {
            start,
            len,
            addr,
            _name: name,
        })
    }

    /// Length of the range in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty (never: claims are at least a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The page frame number of byte `offset` of a `size`-byte piece that lies inside the
    /// range, for the kernel crate's own mapping code; `None` otherwise.
    pub(crate) fn pfn_of(&self, offset: u64, size: u64) -> Option<usize> {
        let end = offset.checked_add(size)?;
        if end > self.len as u64 {
            return None;
        }
        Some(((self.start + offset) >> bindings::PAGE_SHIFT) as usize)
    }

    fn check(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY: `offset` is inside the mapping (checked above).
                Ok(unsafe { self.addr.as_ptr().add(offset) })
            }
            _ => Err(EINVAL),
        }
    }

    /// Copies `buf.len()` bytes at `offset` of the range into `buf`.
    ///
    /// The copy is machine-check safe (`copy_mc_to_kernel`): device memory can hold poisoned
    /// lines, and reading one fails with `EIO` (the content of `buf` is then unspecified)
    /// instead of bringing the kernel down, where the architecture can recover.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        let src = self.check(offset, buf.len())?;
        // `copy_mc_to_kernel` takes an `unsigned int` length on some architectures.
        const PIECE: usize = 1 << 30;
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(PIECE);
            // SAFETY: `src + done` is valid for `n` bytes of the mapping (invariant and
            // `check`), which never overlaps a kernel buffer; `buf[done..done + n]` is valid
            // for writes.
            let left = unsafe {
                bindings::copy_mc_to_kernel_portable(
                    buf.as_mut_ptr().add(done).cast(),
                    src.add(done).cast(),
                    n,
                )
            };
            if left != 0 {
                return Err(EIO);
            }
            done += n;
        }
        Ok(())
    }

    /// Copies `buf` to `offset` of the range.
    pub fn write(&self, offset: usize, buf: &[u8]) -> Result {
        let dst = self.check(offset, buf.len())?;
        // SAFETY: As for `read`.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), dst, buf.len()) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` of the range to zero.
    pub fn zero(&self, offset: usize, len: usize) -> Result {
        let dst = self.check(offset, len)?;
        // SAFETY: `dst` is valid for `len` bytes of the mapping (invariant and `check`).
        unsafe { core::ptr::write_bytes(dst, 0, len) };
        Ok(())
    }
}

impl Drop for DeviceMemory {
    fn drop(&mut self) {
        // SAFETY: The mapping and the claim are ours (invariants); the mapping goes first.
        unsafe {
            bindings::memunmap(self.addr.as_ptr().cast());
            bindings::__release_region(
                core::ptr::addr_of_mut!(bindings::iomem_resource),
                self.start,
                self.len as u64,
            );
        }
    }
}
