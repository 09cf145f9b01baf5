// SPDX-License-Identifier: GPL-2.0

//! PCI devices: identity, configuration space, capabilities and BAR resources.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use crate::{
    bindings, device,
    error::{code::*, to_result, Result},
    io::IoMem,
    str::CStr,
    types::{ARef, AlwaysRefCounted, Opaque},
};
use core::ptr::{self, NonNull};

/// `PCI_ANY_ID`: matches any vendor or device in a [`pci_device_id`](bindings::pci_device_id).
pub const ANY_ID: u32 = !0;

/// The extended capability ID of a Designated Vendor-Specific Extended Capability.
pub const EXT_CAP_ID_DVSEC: u16 = bindings::PCI_EXT_CAP_ID_DVSEC as u16;

/// Number of standard BARs of a type-0 function.
pub const NUM_STD_BARS: u32 = bindings::PCI_STD_NUM_BARS;
/// The Command register (`PCI_COMMAND`).
pub const COMMAND: u16 = bindings::PCI_COMMAND as u16;
/// Command: Memory Space Enable (`PCI_COMMAND_MEMORY`).
pub const COMMAND_MEMORY: u16 = bindings::PCI_COMMAND_MEMORY as u16;
/// PM Control/Status, from the Power Management capability (`PCI_PM_CTRL`).
pub const PM_CTRL: u16 = bindings::PCI_PM_CTRL as u16;

/// A PCI function (`struct pci_dev`).
///
/// # Invariants
///
/// The wrapped `struct pci_dev` is valid: a reference to a `Device` exists only while the C side
/// holds a reference to the function (the driver core during probe/remove or a callback, or an
/// [`ARef<Device>`] taken with `pci_dev_get`).
#[repr(transparent)]
pub struct Device(Opaque<bindings::pci_dev>);

impl Device {
    /// Borrows a `struct pci_dev` the caller holds.
    ///
    /// # Safety
    ///
    /// `ptr` is a valid `struct pci_dev` whose reference count cannot drop to zero for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::pci_dev) -> &'a Self {
        // SAFETY: `Device` is a transparent wrapper of `pci_dev`; validity and lifetime come from
        // the safety requirements.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw `struct pci_dev`.
    pub fn as_raw(&self) -> *mut bindings::pci_dev {
        self.0.get()
    }

    /// Returns the generic device embedded in the PCI function.
    pub fn as_dev(&self) -> &device::Device {
        // SAFETY: `dev` is embedded in a valid `pci_dev` (type invariant), so it lives as long as
        // `self`.
        unsafe { device::Device::as_ref(ptr::addr_of_mut!((*self.as_raw()).dev)) }
    }

    /// Returns the device name, `DDDD:BB:DD.F`.
    pub fn name(&self) -> &CStr {
        // SAFETY: `dev_name` of a registered device is a valid NUL-terminated string that lives
        // as long as the device.
        unsafe { CStr::from_char_ptr(bindings::dev_name(self.as_dev().as_raw())) }
    }

    /// Returns the vendor ID as enumerated.
    pub fn vendor_id(&self) -> u16 {
        // SAFETY: The field is set at enumeration and never changes (type invariant: valid).
        unsafe { (*self.as_raw()).vendor }
    }

    /// Returns the device ID as enumerated.
    pub fn device_id(&self) -> u16 {
        // SAFETY: As for `vendor_id`.
        unsafe { (*self.as_raw()).device }
    }

    /// Returns the 24-bit class code: base class, sub-class and programming interface.
    pub fn class(&self) -> u32 {
        // SAFETY: As for `vendor_id`.
        unsafe { (*self.as_raw()).class }
    }

    /// Returns the revision ID.
    pub fn revision(&self) -> u8 {
        // SAFETY: As for `vendor_id`.
        unsafe { (*self.as_raw()).revision }
    }

    /// Returns the size of the configuration space: 256, or 4096 with extended space.
    pub fn cfg_size(&self) -> u16 {
        // SAFETY: As for `vendor_id`.
        unsafe { (*self.as_raw()).cfg_size as u16 }
    }

    /// Checks that an access of `size` bytes at `offset` is aligned and inside the space.
    fn check_config_access(&self, offset: u16, size: u16) -> Result {
        if offset % size != 0 || u32::from(offset) + u32::from(size) > u32::from(self.cfg_size()) {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Reads a byte of configuration space.
    ///
    /// Fails with `EINVAL` outside the configuration space and with the error the bus reports
    /// otherwise (for example `ENODEV` for a function that went away).
    pub fn read_config_u8(&self, offset: u16) -> Result<u8> {
        self.check_config_access(offset, 1)?;
        let mut val = 0;
        // SAFETY: `self` is a valid function and `val` a valid destination.
        pcibios_result(unsafe {
            bindings::pci_read_config_byte(self.as_raw(), offset.into(), &mut val)
        })?;
        Ok(val)
    }

    /// Reads a 16-bit word of configuration space (`offset` 2-byte aligned).
    ///
    /// # Examples
    ///
    /// The vendor ID in configuration space is the one the PCI core enumerated:
    ///
    /// ```
    /// use kernel::pci;
    ///
    /// for pdev in pci::Device::iter() {
    ///     assert_eq!(pdev.read_config_u16(0)?, pdev.vendor_id());
    ///     assert_eq!(pdev.read_config_u16(2)?, pdev.device_id());
    ///     assert_eq!(pdev.read_config_u32(8)? >> 8, pdev.class());
    ///     // Misaligned and out-of-range accesses are refused, not performed.
    ///     assert_eq!(pdev.read_config_u16(1), Err(kernel::error::code::EINVAL));
    ///     assert_eq!(pdev.read_config_u32(pdev.cfg_size()), Err(kernel::error::code::EINVAL));
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn read_config_u16(&self, offset: u16) -> Result<u16> {
        self.check_config_access(offset, 2)?;
        let mut val = 0;
        // SAFETY: `self` is a valid function and `val` a valid destination.
        pcibios_result(unsafe {
            bindings::pci_read_config_word(self.as_raw(), offset.into(), &mut val)
        })?;
        Ok(val)
    }

    /// Reads a 32-bit dword of configuration space (`offset` 4-byte aligned).
    pub fn read_config_u32(&self, offset: u16) -> Result<u32> {
        self.check_config_access(offset, 4)?;
        let mut val = 0;
        // SAFETY: `self` is a valid function and `val` a valid destination.
        pcibios_result(unsafe {
            bindings::pci_read_config_dword(self.as_raw(), offset.into(), &mut val)
        })?;
        Ok(val)
    }

    /// Writes a byte of configuration space.
    pub fn write_config_u8(&self, offset: u16, val: u8) -> Result {
        self.check_config_access(offset, 1)?;
        // SAFETY: `self` is a valid function.
        pcibios_result(unsafe {
            bindings::pci_write_config_byte(self.as_raw(), offset.into(), val)
        })
    }

    /// Writes a 16-bit word of configuration space (`offset` 2-byte aligned).
    pub fn write_config_u16(&self, offset: u16, val: u16) -> Result {
        self.check_config_access(offset, 2)?;
        // SAFETY: `self` is a valid function.
        pcibios_result(unsafe {
            bindings::pci_write_config_word(self.as_raw(), offset.into(), val)
        })
    }

    /// Writes a 32-bit dword of configuration space (`offset` 4-byte aligned).
    pub fn write_config_u32(&self, offset: u16, val: u32) -> Result {
        self.check_config_access(offset, 4)?;
        // SAFETY: `self` is a valid function.
        pcibios_result(unsafe {
            bindings::pci_write_config_dword(self.as_raw(), offset.into(), val)
        })
    }

    /// Reads `len` (1, 2 or 4) bytes of configuration space on behalf of userspace
    /// (`pci_user_read_config_*`): waits while the PCI core blocks config accesses, as during
    /// a reset. `offset` must be naturally aligned and inside the configuration space.
    pub fn user_read_config(&self, offset: u16, len: usize) -> Result<u32> {
        let size = u16::try_from(len).map_err(|_| EINVAL)?;
        if !matches!(len, 1 | 2 | 4) {
            return Err(EINVAL);
        }
        self.check_config_access(offset, size)?;
        let dev = self.as_raw();
        let at = offset.into();
        // SAFETY: `self` is a valid function and each destination a valid local.
        let ret = unsafe {
            match len {
                1 => {
                    let mut v = 0u8;
                    let r = bindings::pci_user_read_config_byte(dev, at, &mut v);
                    (r, u32::from(v))
                }
                2 => {
                    let mut v = 0u16;
                    let r = bindings::pci_user_read_config_word(dev, at, &mut v);
                    (r, u32::from(v))
                }
                _ => {
                    let mut v = 0u32;
                    let r = bindings::pci_user_read_config_dword(dev, at, &mut v);
                    (r, v)
                }
            }
        };
        pcibios_result(ret.0)?;
        Ok(ret.1)
    }

    /// Writes a 16-bit word of configuration space on behalf of userspace
    /// (`pci_user_write_config_word`); see [`Device::user_read_config`].
    pub fn user_write_config_u16(&self, offset: u16, val: u16) -> Result {
        self.check_config_access(offset, 2)?;
        // SAFETY: `self` is a valid function.
        pcibios_result(unsafe {
            bindings::pci_user_write_config_word(self.as_raw(), offset.into(), val)
        })
    }

    /// Resumes the function from runtime suspend and keeps it resumed until the returned guard
    /// is dropped (`pm_runtime_resume_and_get` / `pm_runtime_put`).
    pub fn runtime_pm_get(&self) -> Result<RuntimePm<'_>> {
        // SAFETY: The embedded device is valid (type invariant).
        to_result(unsafe { bindings::pm_runtime_resume_and_get(self.as_dev().as_raw()) })?;
        Ok(RuntimePm(self))
    }

    /// Finds a (conventional) capability; returns its offset in configuration space.
    pub fn find_capability(&self, cap_id: u8) -> Option<u16> {
        // SAFETY: `self` is a valid function.
        let pos = unsafe { bindings::pci_find_capability(self.as_raw(), cap_id.into()) };
        (pos != 0).then_some(pos as u16)
    }

    /// The ACPI `_UID` of the host bridge above the function (for CXL, the number the ACPI CEDT
    /// names it by); `None` when the platform does not name it (no ACPI, no companion, no
    /// `_UID`).
    pub fn host_bridge_uid(&self) -> Option<u64> {
        #[cfg(CONFIG_ACPI)]
        {
            // SAFETY: `self` is a valid function, on a bus that lives as long as it.
            let bridge = unsafe { bindings::pci_find_host_bridge((*self.as_raw()).bus) };
            if bridge.is_null() {
                return None;
            }
            // SAFETY: The host bridge is an ancestor of the function: it outlives it.
            let handle = unsafe { bindings::device_acpi_handle(&mut (*bridge).dev) };
            if handle.is_null() {
                return None;
            }
            let mut uid: u64 = 0;
            // SAFETY: `handle` is a valid ACPI handle; the path is a NUL-terminated string ACPICA
            // only reads; `uid` is valid for the write.
            let status = unsafe {
                bindings::acpi_evaluate_integer(
                    handle,
                    c"_UID".as_ptr().cast_mut().cast(),
                    core::ptr::null_mut(),
                    &mut uid,
                )
            };
            (status == 0).then_some(uid)
        }
        #[cfg(not(CONFIG_ACPI))]
        None
    }

    /// Offset of the Power Management capability, found at enumeration.
    pub fn pm_cap(&self) -> Option<u16> {
        // SAFETY: `self` is a valid function; `pm_cap` is set at enumeration and never changes.
        let pos = unsafe { (*self.as_raw()).pm_cap };
        (pos != 0).then_some(pos.into())
    }

    /// Offset of the PCI Express capability, found at enumeration.
    pub fn pcie_cap(&self) -> Option<u16> {
        // SAFETY: As for `pm_cap`.
        let pos = unsafe { (*self.as_raw()).pcie_cap };
        (pos != 0).then_some(pos.into())
    }

    /// Finds an extended capability; returns its offset in configuration space.
    pub fn find_ext_capability(&self, cap_id: u16) -> Option<u16> {
        // SAFETY: `self` is a valid function.
        let pos = unsafe { bindings::pci_find_ext_capability(self.as_raw(), cap_id.into()) };
        (pos != 0).then_some(pos)
    }

    /// Finds the next extended capability `cap_id` after config offset `start` (0: the first
    /// one); returns its offset in configuration space.
    pub fn find_next_ext_capability(&self, start: u16, cap_id: u16) -> Option<u16> {
        // SAFETY: `self` is a valid function; the walk is bounded by the C function.
        let pos =
            unsafe { bindings::pci_find_next_ext_capability(self.as_raw(), start, cap_id.into()) };
        (pos != 0).then_some(pos)
    }

    /// Finds a Designated Vendor-Specific Extended Capability by its vendor and DVSEC ID.
    ///
    /// # Examples
    ///
    /// Every DVSEC found carries the requested vendor and ID in its headers:
    ///
    /// ```
    /// use kernel::pci;
    ///
    /// const CXL_VENDOR: u16 = 0x1e98;
    /// for pdev in pci::Device::iter() {
    ///     if let Some(pos) = pdev.find_dvsec(CXL_VENDOR, 0) {
    ///         let header = pdev.read_config_u32(pos)?;
    ///         assert_eq!(header & 0xffff, u32::from(pci::EXT_CAP_ID_DVSEC));
    ///         assert_eq!(pdev.read_config_u32(pos + 4)? & 0xffff, u32::from(CXL_VENDOR));
    ///         assert_eq!(pdev.read_config_u16(pos + 8)?, 0);
    ///     }
    ///     // No function carries a DVSEC of the reserved vendor 0xffff.
    ///     assert_eq!(pdev.find_dvsec(0xffff, 0), None);
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn find_dvsec(&self, vendor: u16, dvsec_id: u16) -> Option<u16> {
        // SAFETY: `self` is a valid function.
        let pos = unsafe { bindings::pci_find_dvsec_capability(self.as_raw(), vendor, dvsec_id) };
        (pos != 0).then_some(pos)
    }

    /// Returns the resource behind a standard BAR, `None` for an index past the last BAR or an
    /// unimplemented BAR.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::pci;
    ///
    /// for pdev in pci::Device::iter() {
    ///     assert!(pdev.bar(pci::NUM_STD_BARS).is_none());
    ///     for i in 0..pci::NUM_STD_BARS {
    ///         if let Some(bar) = pdev.bar(i) {
    ///             assert!(!bar.is_empty());
    ///             assert!(bar.is_mem() != bar.is_io());
    ///             // BARs are naturally aligned powers of two.
    ///             assert!(bar.len().is_power_of_two());
    ///         }
    ///     }
    /// }
    /// ```
    pub fn bar(&self, index: u32) -> Option<BarResource> {
        if index >= NUM_STD_BARS {
            return None;
        }
        // SAFETY: `index` is within `resource[]` (it has more entries than the standard BARs)
        // and the function is valid; the fields are read without holding a lock, as C's
        // `pci_resource_start()` does.
        let res = unsafe { &(*self.as_raw()).resource[index as usize] };
        if res.end == 0 || res.end < res.start {
            return None;
        }
        Some(BarResource {
            start: res.start,
            len: res.end - res.start + 1,
            flags: res.flags as u64,
        })
    }

    /// Maps `len` bytes at `offset` of memory BAR `index` (`pci_iomap_range`).
    ///
    /// Fails with `EINVAL` for an I/O or missing BAR, or a range outside the BAR, and `ENOMEM`
    /// when the mapping fails. The mapping is undone when the returned value is dropped.
    ///
    /// # Examples
    ///
    /// Ranges outside a BAR are refused before anything is mapped:
    ///
    /// ```
    /// use kernel::{error::code::EINVAL, pci};
    ///
    /// for pdev in pci::Device::iter() {
    ///     for i in 0..pci::NUM_STD_BARS {
    ///         let Some(bar) = pdev.bar(i) else {
    ///             assert!(pdev.iomap_range(i, 0, 4).is_err());
    ///             continue;
    ///         };
    ///         assert_eq!(pdev.iomap_range(i, bar.len(), 4).err(), Some(EINVAL));
    ///         assert_eq!(pdev.iomap_range(i, 0, 0).err(), Some(EINVAL));
    ///         assert_eq!(pdev.iomap_range(i, u64::MAX, 8).err(), Some(EINVAL));
    ///         if bar.is_io() {
    ///             assert_eq!(pdev.iomap_range(i, 0, 4).err(), Some(EINVAL));
    ///         } else if let Ok(map) = pdev.iomap_range(i, 0, 8) {
    ///             // Mapped but not touched: only the checks of the accessors run.
    ///             assert_eq!(map.len(), 8);
    ///             assert_eq!(map.read32(2), Err(EINVAL));
    ///             assert_eq!(map.read32(8), Err(EINVAL));
    ///             assert_eq!(map.write32(6, 0), Err(EINVAL));
    ///         }
    ///     }
    /// }
    /// ```
    pub fn iomap_range(&self, index: u32, offset: u64, len: usize) -> Result<IoMapping<'_>> {
        let bar = self.bar(index).ok_or(EINVAL)?;
        let end = offset.checked_add(len as u64).ok_or(EINVAL)?;
        if !bar.is_mem() || len == 0 || end > bar.len() {
            return Err(EINVAL);
        }
        // SAFETY: `self` is a valid function and the range lies inside memory BAR `index`.
        let addr =
            unsafe { bindings::pci_iomap_range(self.as_raw(), index as _, offset as _, len as _) };
        if addr.is_null() {
            return Err(ENOMEM);
        }
        Ok(IoMapping {
            // SAFETY: `addr` maps `len` bytes and stays mapped until `IoMapping::drop`, which
            // drops `io` first.
            io: unsafe { IoMem::from_raw(addr, len) },
            pdev: self,
        })
    }

    /// Enables the function's memory decoding (`pci_enable_device_mem`) until the returned
    /// guard is dropped (`pci_disable_device`). Enables nest, as in C.
    pub fn enable_mem(&self) -> Result<MemEnabled<'_>> {
        // SAFETY: `self` is a valid function.
        to_result(unsafe { bindings::pci_enable_device_mem(self.as_raw()) })?;
        Ok(MemEnabled(self))
    }

    /// Iterates over every PCI function in the system, in the order of `pci_get_device()`.
    pub fn iter() -> DeviceIter {
        DeviceIter { cur: None }
    }
}

/// Converts a `PCIBIOS_*` return value into a [`Result`].
fn pcibios_result(ret: crate::ffi::c_int) -> Result {
    // SAFETY: Pure conversion function.
    to_result(unsafe { bindings::pcibios_err_to_errno(ret) })
}

/// A BAR's resource: host physical address, length and `IORESOURCE_*` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarResource {
    start: u64,
    len: u64,
    flags: u64,
}

impl BarResource {
    /// Host physical address (or port) of the BAR. Never hand it to userspace.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the BAR is empty (never true for a resource [`Device::bar`] returns).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the BAR decodes memory space.
    pub fn is_mem(&self) -> bool {
        self.flags & u64::from(bindings::IORESOURCE_MEM) != 0
    }

    /// Whether the BAR decodes I/O port space.
    pub fn is_io(&self) -> bool {
        self.flags & u64::from(bindings::IORESOURCE_IO) != 0
    }

    /// Whether the BAR is a 64-bit memory BAR.
    pub fn is_64bit(&self) -> bool {
        self.flags & u64::from(bindings::IORESOURCE_MEM_64) != 0
    }

    /// Whether the BAR is prefetchable.
    pub fn is_prefetchable(&self) -> bool {
        self.flags & u64::from(bindings::IORESOURCE_PREFETCH) != 0
    }
}

/// A mapping of part of a memory BAR; see [`Device::iomap_range`]. Dereferences to [`IoMem`].
///
/// It borrows the device reference its creator was handed (in probe, say), so it cannot be
/// kept past that callback, when the BAR could be gone or given to another device.
pub struct IoMapping<'a> {
    io: IoMem,
    pdev: &'a Device,
}

impl core::ops::Deref for IoMapping<'_> {
    type Target = IoMem;

    fn deref(&self) -> &IoMem {
        &self.io
    }
}

impl Drop for IoMapping<'_> {
    fn drop(&mut self) {
        // SAFETY: The mapping was made by `pci_iomap_range` on this function and nothing can
        // use it after this (`io` is only reachable through `self`).
        unsafe { bindings::pci_iounmap(self.pdev.as_raw(), self.io.as_raw()) };
    }
}

/// A runtime PM reference taken by [`Device::runtime_pm_get`]; dropped with `pm_runtime_put`.
pub struct RuntimePm<'a>(&'a Device);

impl Drop for RuntimePm<'_> {
    fn drop(&mut self) {
        // SAFETY: Balances the successful `pm_runtime_resume_and_get` of `runtime_pm_get`.
        unsafe { bindings::pm_runtime_put(self.0.as_dev().as_raw()) };
    }
}

/// Memory decoding enabled by [`Device::enable_mem`]; disabled again on drop.
pub struct MemEnabled<'a>(&'a Device);

impl Drop for MemEnabled<'_> {
    fn drop(&mut self) {
        // SAFETY: Balances the successful `pci_enable_device_mem` of `enable_mem`.
        unsafe { bindings::pci_disable_device(self.0.as_raw()) };
    }
}

/// Iterator over all PCI functions; see [`Device::iter`].
pub struct DeviceIter {
    cur: Option<ARef<Device>>,
}

impl Iterator for DeviceIter {
    type Item = ARef<Device>;

    fn next(&mut self) -> Option<ARef<Device>> {
        let from = self
            .cur
            .take()
            .map_or(ptr::null_mut(), |d| ARef::into_raw(d).as_ptr().cast());
        // SAFETY: `from` is null or a function we hold a reference to; `pci_get_device` drops
        // that reference and returns the next function with a new one (or null).
        let next = unsafe { bindings::pci_get_device(ANY_ID, ANY_ID, from) };
        let next = NonNull::new(next.cast::<Device>())?;
        // SAFETY: `pci_get_device` returned a reference that we now own.
        let next = unsafe { ARef::from_raw(next) };
        self.cur = Some(next.clone());
        Some(next)
    }
}

// SAFETY: `pci_dev_get`/`pci_dev_put` manage the reference count of a valid `pci_dev`, and the
// release of a `pci_dev` may run on any thread.
unsafe impl AlwaysRefCounted for Device {
    fn inc_ref(&self) {
        // SAFETY: The existence of `&self` means the reference count is non-zero.
        unsafe { bindings::pci_dev_get(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference to give back.
        unsafe { bindings::pci_dev_put(obj.cast().as_ptr()) }
    }
}

// SAFETY: The C functions this type calls may be called from any thread.
unsafe impl Send for Device {}

// SAFETY: Every method takes `&self` and relies on the PCI core's own locking (config accessors
// take `pci_lock`), so sharing between threads is sound.
unsafe impl Sync for Device {}
