// SPDX-License-Identifier: GPL-2.0

//! Memory-mapped I/O.
//!
//! C header: [`include/asm-generic/io.h`](srctree/include/asm-generic/io.h)

pub mod mem;

use crate::{
    bindings,
    error::{code::EINVAL, Result},
    ffi::c_void,
};

/// A mapping of device registers, accessed with 32-bit `readl`/`writel` only.
///
/// Every access is bounds- and alignment-checked: a bad offset is an error, never an access
/// outside the mapping.
///
/// # Invariants
///
/// `addr` is the start of a valid `__iomem` mapping of `len` bytes for as long as the value
/// exists (its owner, such as [`crate::pci::IoMapping`], unmaps it only after dropping this).
pub struct IoMem {
    addr: *mut c_void,
    len: usize,
}

impl IoMem {
    /// Wraps an existing mapping.
    ///
    /// # Safety
    ///
    /// `addr` is a valid `__iomem` mapping of `len` bytes that outlives the returned value.
    pub unsafe fn from_raw(addr: *mut c_void, len: usize) -> Self {
        // INVARIANT: By the safety requirements.
        Self { addr, len }
    }

    /// The `__iomem` address of the mapping, for its owner to unmap.
    pub(crate) fn as_raw(&self) -> *mut c_void {
        self.addr
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check32(&self, offset: usize) -> Result<*mut c_void> {
        match offset.checked_add(4) {
            Some(end) if offset % 4 == 0 && end <= self.len => {}
            _ => return Err(EINVAL),
        }
        // SAFETY: `offset + 4 <= len`, so the result stays inside the mapping (invariant).
        Ok(unsafe { self.addr.byte_add(offset) })
    }

    /// Reads the 32-bit register at `offset` (4-byte aligned, inside the mapping).
    pub fn read32(&self, offset: usize) -> Result<u32> {
        let addr = self.check32(offset)?;
        // SAFETY: `addr` is an aligned address inside the mapping.
        Ok(unsafe { bindings::readl(addr) })
    }

    /// Writes the 32-bit register at `offset` (4-byte aligned, inside the mapping).
    pub fn write32(&self, offset: usize, value: u32) -> Result {
        let addr = self.check32(offset)?;
        // SAFETY: `addr` is an aligned address inside the mapping.
        unsafe { bindings::writel(value, addr) };
        Ok(())
    }
}

// SAFETY: MMIO accessors may be used from any thread; the device serialises register accesses.
unsafe impl Send for IoMem {}
// SAFETY: As for `Send`: `read32`/`write32` take `&self` and are single MMIO instructions.
unsafe impl Sync for IoMem {}
