// SPDX-License-Identifier: GPL-2.0

//! Virtual memory areas (`struct vm_area_struct`).
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)

use crate::{bindings, types::Opaque};

/// A virtual memory area of a user address space, as handed to an `mmap` callback.
///
/// # Invariants
///
/// The wrapped `vm_area_struct` is valid and its `mm`'s mmap lock is held for as long as a
/// reference to a `VmArea` exists (references are only created inside callbacks that hold it).
#[repr(transparent)]
pub struct VmArea(Opaque<bindings::vm_area_struct>);

impl VmArea {
    /// Borrows a VMA inside a callback that holds its mmap lock.
    ///
    /// # Safety
    ///
    /// `vma` is valid and its mmap lock is held for `'a`.
    pub unsafe fn from_raw<'a>(vma: *mut bindings::vm_area_struct) -> &'a Self {
        // SAFETY: Transparent wrapper; validity and locking come from the safety requirements.
        unsafe { &*vma.cast() }
    }

    /// Returns the raw `vm_area_struct`.
    pub fn as_raw(&self) -> *mut bindings::vm_area_struct {
        self.0.get()
    }

    /// First user address of the area.
    pub fn start(&self) -> usize {
        // SAFETY: The VMA is valid and its bounds are stable under the mmap lock (invariant).
        unsafe { (*self.as_raw()).__bindgen_anon_1.__bindgen_anon_1.vm_start }
    }

    /// One past the last user address of the area.
    pub fn end(&self) -> usize {
        // SAFETY: As for `start`.
        unsafe { (*self.as_raw()).__bindgen_anon_1.__bindgen_anon_1.vm_end }
    }

    /// Length of the area in bytes.
    pub fn len(&self) -> usize {
        self.end() - self.start()
    }

    /// Whether the area is empty (never true for a mapped area).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset of the area in its file, in pages.
    pub fn pgoff(&self) -> usize {
        // SAFETY: As for `start`.
        unsafe { (*self.as_raw()).vm_pgoff }
    }

    /// The `VM_*` flags of the area.
    pub fn flags(&self) -> usize {
        // SAFETY: As for `start`; the flags are read, not written.
        unsafe { (*self.as_raw()).__bindgen_anon_2.vm_flags }
    }
}
