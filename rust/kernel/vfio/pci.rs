// SPDX-License-Identifier: GPL-2.0

//! vfio-pci variant drivers.
//!
//! A variant driver is a PCI driver, bound only through `driver_override`, whose devices are
//! vfio-pci-core devices: vfio-pci-core does the work, and the driver overrides the
//! `vfio_device_ops` it needs to. [`Driver`] is that ops table as a `#[vtable]` trait: every
//! operation a driver does not implement goes straight to the vfio-pci-core function, and the
//! default bodies (used when a driver calls them) delegate to vfio-pci-core too.
//!
//! C header: [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

use crate::{
    bindings,
    error::{code::EINVAL, from_result, to_result, Error, Result},
    ffi::{c_char, c_int, c_long, c_uint, c_ulong},
    init::PinInit,
    io::mem::DeviceMemory,
    mm::virt::VmArea,
    pci,
    str::CStr,
    types::Opaque,
    uaccess::{UserPtr, UserSlice},
    ThisModule,
};
use core::{marker::PhantomData, mem::MaybeUninit, ptr, ptr::NonNull};
use macros::vtable;

/// A vfio-pci variant driver: its per-device data and the `vfio_device_ops` it overrides.
///
/// # Examples
///
/// A driver that overrides nothing but `ioctl` gets vfio-pci-core's functions in every other
/// slot of its ops table:
///
/// ```
/// use kernel::{bindings, c_str, pci, prelude::*, vfio::pci::{self as vfio_pci, CoreDevice}};
///
/// struct Counting;
///
/// #[vtable]
/// impl vfio_pci::Driver for Counting {
///     type Data = u32;
///     const NAME: &'static CStr = c_str!("doctest-counting");
///
///     fn probe(_pdev: &pci::Device) -> impl PinInit<u32, Error> {
///         7u32
///     }
///
///     fn ioctl(dev: &mut vfio_pci::Syscall<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
///         dev.core_ioctl(cmd, arg)
///     }
/// }
///
/// // C functions have unique addresses: compare them as such.
/// macro_rules! is_core {
///     ($slot:expr, $core:path) => {
///         $slot.map(|f| f as *const ()) == Some($core as *const ())
///     };
/// }
/// let ops = vfio_pci::ops_table::<Counting>();
/// assert!(!is_core!(ops.ioctl, bindings::vfio_pci_core_ioctl));
/// assert!(ops.ioctl.is_some());
/// assert!(is_core!(ops.read, bindings::vfio_pci_core_read));
/// assert!(is_core!(ops.write, bindings::vfio_pci_core_write));
/// assert!(is_core!(ops.mmap, bindings::vfio_pci_core_mmap));
/// assert!(is_core!(ops.request, bindings::vfio_pci_core_request));
/// assert!(is_core!(ops.match_, bindings::vfio_pci_core_match));
/// assert!(is_core!(ops.close_device, bindings::vfio_pci_core_close_device));
/// assert!(is_core!(ops.device_feature, bindings::vfio_pci_core_ioctl_feature));
/// assert!(is_core!(ops.init, bindings::vfio_pci_core_init_dev));
/// // Open always goes through the driver: vfio-pci-core has no open of its own.
/// assert!(ops.open_device.is_some());
/// ```
#[vtable]
pub trait Driver: Sized + 'static {
    /// Per-device state, stored behind the vfio-pci-core device and dropped at its release.
    type Data: Send + Sync;

    /// Name of the PCI driver (and of the vfio device ops).
    const NAME: &'static CStr;

    /// Called when the driver binds a function, before the vfio device is registered.
    ///
    /// Returns the initialiser of the device's data; failing it fails the bind.
    fn probe(pdev: &pci::Device) -> impl PinInit<Self::Data, Error>;

    /// `open_device`: the first open of the device by a user.
    ///
    /// The default does what vfio-pci does: enable the device (this may reset it), then finish.
    fn open_device(dev: &OpenDevice<'_, Self>) -> Result {
        dev.enable()?;
        dev.finish_enable();
        Ok(())
    }

    /// `close_device`: the last close by a user. Defaults to vfio-pci-core's.
    fn close_device(dev: &CloseDevice<'_, Self>) {
        dev.core_close_device()
    }

    /// `ioctl` on the device file. Defaults to vfio-pci-core's.
    fn ioctl(dev: &mut Syscall<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        dev.core_ioctl(cmd, arg)
    }

    /// `VFIO_DEVICE_FEATURE`. Defaults to vfio-pci-core's.
    fn device_feature(
        dev: &mut Syscall<'_, Self>,
        flags: u32,
        arg: UserPtr,
        argsz: usize,
    ) -> Result {
        dev.core_device_feature(flags, arg, argsz)
    }

    /// `read` on the device file at `*pos`. Defaults to vfio-pci-core's.
    fn read(
        dev: &mut Syscall<'_, Self>,
        buf: UserPtr,
        count: usize,
        pos: &mut i64,
    ) -> Result<usize> {
        dev.core_read(buf, count, pos)
    }

    /// `write` on the device file at `*pos`. Defaults to vfio-pci-core's.
    fn write(
        dev: &mut Syscall<'_, Self>,
        buf: UserPtr,
        count: usize,
        pos: &mut i64,
    ) -> Result<usize> {
        dev.core_write(buf, count, pos)
    }

    /// `mmap` of the device file. Defaults to vfio-pci-core's.
    fn mmap(dev: &CoreDevice<Self>, vma: &VmArea) -> Result {
        dev.core_mmap(vma)
    }

    /// The kernel asks the user to release the device (`count`-th request). Defaults to
    /// vfio-pci-core's.
    fn request(dev: &CoreDevice<Self>, count: u32) {
        dev.core_request(count)
    }

    /// Whether `name` (from `VFIO_GROUP_GET_DEVICE_FD`) designates this device. Defaults to
    /// vfio-pci-core's.
    fn match_name(dev: &CoreDevice<Self>, name: &CStr) -> Result<bool> {
        dev.core_match(name)
    }

    /// Called after any reset of the function: `VFIO_DEVICE_RESET`, a hot reset of its bus or
    /// slot (also one requested through another device of the set), a reset through sysfs or
    /// the open-time reset; each call ends one [`Driver::reset_prepare`]. Runs with the device
    /// lock held, possibly while vfio-pci-core holds its `memory_lock` and the PCI core blocks
    /// user config accesses: it must not wait for anything a user access path holds while it
    /// touches the device. Record that state is stale and rebuild it on the next access.
    fn reset_done(dev: &CoreDevice<Self>) {
        let _ = dev;
    }

    /// Called before any reset of the function (the resets listed for
    /// [`Driver::reset_done`]), before the hardware is touched. The same constraints apply; in
    /// addition, vfio-pci-core may hold its `memory_lock` for write, so this must not take it.
    /// Revoke here what a reset invalidates (user mappings of device memory, above all: see
    /// [`CoreDevice::zap_region`]).
    fn reset_prepare(dev: &CoreDevice<Self>) {
        let _ = dev;
    }

    /// Called when the PCI core detects an error on the function (AER, DPC), before
    /// vfio-pci-core notifies the user. The recovery that follows may reset the function
    /// without [`Driver::reset_prepare`] or [`Driver::reset_done`] (a secondary bus reset of
    /// the port above it); it ends with [`Driver::error_resumed`] when it succeeds and never
    /// ends when it fails. The constraints of [`Driver::reset_prepare`] apply. Defaults to
    /// [`Driver::reset_prepare`].
    fn error_detected(dev: &CoreDevice<Self>) {
        Self::reset_prepare(dev)
    }

    /// Called when an error recovery that [`Driver::error_detected`] announced succeeded and
    /// the function works again. The constraints of [`Driver::reset_done`] apply. Defaults to
    /// [`Driver::reset_done`].
    fn error_resumed(dev: &CoreDevice<Self>) {
        Self::reset_done(dev)
    }

    /// The system is about to sleep (suspend to RAM, or hibernation's freeze or power off): the
    /// function may lose power, and with it what a reset clears. Revoke what depends on it, as
    /// [`Driver::reset_prepare`] does. Runs with user space frozen; an error fails the sleep.
    fn suspend(dev: &CoreDevice<Self>) -> Result {
        let _ = dev;
        Ok(())
    }

    /// The system woke up (or hibernation's image was written or restored): the function may
    /// have been reset. Ends one [`Driver::suspend`]. Must not wait long: every device resumes
    /// in turn; rebuild state on the next access, as after [`Driver::reset_done`].
    fn resume(dev: &CoreDevice<Self>) -> Result {
        let _ = dev;
        Ok(())
    }

    /// A user's write to the PM Control register is about to change the function's power state
    /// (never called for a write of the current state). vfio-pci-core holds its `memory_lock`
    /// for write; the constraints of [`Driver::reset_prepare`] apply. Revoke what the change may
    /// clear (a D3hot to D0 transition may reset the function).
    fn set_power_prepare(dev: &CoreDevice<Self>) {
        let _ = dev;
    }

    /// The change [`Driver::set_power_prepare`] announced is over. The constraints of
    /// [`Driver::reset_done`] apply.
    fn set_power_done(dev: &CoreDevice<Self>) {
        let _ = dev;
    }

    /// `mmap` of a device-specific region registered with [`REGION_FLAG_MMAP`]: vfio-pci-core
    /// has checked that the mapping is shared and that its offset names the region. Check the
    /// range; on success the VMA becomes a `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`
    /// mapping whose pages are inserted on demand by [`Driver::region_fault`]. Nothing is
    /// inserted at `mmap` time.
    fn region_mmap(dev: &CoreDevice<Self>, id: usize, map: &RegionMap<'_>) -> Result {
        let _ = (dev, id, map);
        Err(EINVAL)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` of a device-specific region: add the region's own
    /// capabilities (after the type capability vfio-pci-core adds) with [`RegionCaps::add`].
    fn region_info_caps(dev: &CoreDevice<Self>, id: usize, caps: &mut RegionCaps<'_>) -> Result {
        let _ = (dev, id, caps);
        Ok(())
    }

    /// `VFIO_DEVICE_GET_INFO`: called once vfio-pci-core has built its reply (flags, counts,
    /// its own capabilities), before the reply is copied to the user. Change flags and append
    /// capabilities with [`DeviceInfoReply`].
    fn device_info(dev: &CoreDevice<Self>, reply: &mut DeviceInfoReply<'_>) -> Result {
        let _ = (dev, reply);
        Ok(())
    }

    /// `VFIO_DEVICE_GET_REGION_INFO`: called for every region once vfio-pci-core has built its
    /// reply (and [`Driver::region_info_caps`] has run for a device-specific region), before
    /// the reply is copied to the user. Change flags and append capabilities with
    /// [`RegionInfoReply`].
    fn region_info(dev: &CoreDevice<Self>, reply: &mut RegionInfoReply<'_>) -> Result {
        let _ = (dev, reply);
        Ok(())
    }

    /// A page fault in a mapping that [`Driver::region_mmap`] accepted: map the piece
    /// described by `fault` (a page, or a PMD or PUD sized block) with
    /// [`RegionFault::insert`], or refuse it. Called with the mmap lock held for read.
    fn region_fault(
        dev: &mut Syscall<'_, Self>,
        id: usize,
        fault: &RegionFault<'_>,
    ) -> FaultResult {
        let _ = (dev, id, fault);
        FaultResult::SIGBUS
    }

    /// `read` (`write` false) or `write` of `count` bytes at `offset` of the device-specific
    /// region that [`OpenDevice::register_region`] registered with `id`. Returns the number of
    /// bytes transferred.
    fn region_rw(
        dev: &mut Syscall<'_, Self>,
        id: usize,
        buf: UserPtr,
        count: usize,
        offset: u64,
        write: bool,
    ) -> Result<usize> {
        let _ = (dev, id, buf, count, offset, write);
        Err(EINVAL)
    }
}

/// Region index of PCI configuration space in the device file.
pub const CONFIG_REGION_INDEX: u32 = bindings::VFIO_PCI_CONFIG_REGION_INDEX;
/// Number of fixed vfio-pci regions; device-specific regions follow.
pub const NUM_REGIONS: u32 = bindings::VFIO_PCI_NUM_REGIONS;
/// Region flag: readable.
pub const REGION_FLAG_READ: u32 = bindings::VFIO_REGION_INFO_FLAG_READ;
/// Region flag: writable.
pub const REGION_FLAG_WRITE: u32 = bindings::VFIO_REGION_INFO_FLAG_WRITE;
/// Region flag: mappable.
pub const REGION_FLAG_MMAP: u32 = bindings::VFIO_REGION_INFO_FLAG_MMAP;
/// Region type flag: the type is a PCI vendor ID.
pub const REGION_TYPE_PCI_VENDOR_TYPE: u32 = bindings::VFIO_REGION_TYPE_PCI_VENDOR_TYPE;

/// The region index a device-file offset addresses.
///
/// # Examples
///
/// ```
/// use kernel::vfio::pci::{index_to_offset, offset_in_region, offset_to_index, CONFIG_REGION_INDEX};
///
/// let pos = index_to_offset(CONFIG_REGION_INDEX) + 0x100;
/// assert_eq!(offset_to_index(pos), CONFIG_REGION_INDEX);
/// assert_eq!(offset_in_region(pos), 0x100);
/// assert_eq!(offset_to_index(u64::MAX), 0xff_ffff);
/// ```
pub fn offset_to_index(pos: u64) -> u32 {
    (pos >> bindings::VFIO_PCI_OFFSET_SHIFT) as u32
}

/// The offset inside its region of a device-file offset.
pub fn offset_in_region(pos: u64) -> u64 {
    pos & ((1u64 << bindings::VFIO_PCI_OFFSET_SHIFT) - 1)
}

/// The device-file offset of the start of region `index`.
pub fn index_to_offset(index: u32) -> u64 {
    u64::from(index) << bindings::VFIO_PCI_OFFSET_SHIFT
}

/// A `VFIO_DEVICE_IOEVENTFD` request, copied from user memory once.
///
/// The driver checks this copy and hands the same copy to vfio-pci-core
/// ([`CoreDevice::core_ioeventfd`]): a user thread that changes the request in its memory after
/// the copy changes nothing the kernel does.
pub struct IoeventfdRequest(bindings::vfio_device_ioeventfd);

impl IoeventfdRequest {
    /// The bytes vfio-pci-core reads of a request: up to and including `fd`.
    const MINSZ: usize = core::mem::offset_of!(bindings::vfio_device_ioeventfd, fd) + 4;

    /// Copies the request at user address `arg`.
    pub fn from_user(arg: usize) -> Result<Self> {
        let mut bytes = [0u8; Self::MINSZ];
        UserSlice::new(arg, bytes.len())
            .reader()
            .read_slice(&mut bytes)?;
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_ne_bytes(b)
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_ne_bytes(b)
        };
        Ok(Self(bindings::vfio_device_ioeventfd {
            argsz: u32_at(core::mem::offset_of!(
                bindings::vfio_device_ioeventfd,
                argsz
            )),
            flags: u32_at(core::mem::offset_of!(
                bindings::vfio_device_ioeventfd,
                flags
            )),
            offset: u64_at(core::mem::offset_of!(
                bindings::vfio_device_ioeventfd,
                offset
            )),
            data: u64_at(core::mem::offset_of!(bindings::vfio_device_ioeventfd, data)),
            fd: u32_at(core::mem::offset_of!(bindings::vfio_device_ioeventfd, fd)) as i32,
            // SAFETY: The rest of the C struct (padding, reserved) is plain integers, for
            // which all zeroes is valid.
            ..unsafe { core::mem::zeroed() }
        }))
    }

    /// The device-file offset the eventfd writes to.
    pub fn offset(&self) -> u64 {
        self.0.offset
    }

    /// The write size in bytes, if the flags name exactly one (vfio-pci-core refuses the
    /// request otherwise), else `None`.
    pub fn size(&self) -> Option<usize> {
        let sizes = self.0.flags & bindings::VFIO_DEVICE_IOEVENTFD_SIZE_MASK;
        (sizes.count_ones() == 1).then(|| 1usize << sizes.trailing_zeros())
    }

    /// Whether the request removes an ioeventfd (`fd` -1) rather than adding one.
    pub fn is_removal(&self) -> bool {
        self.0.fd == -1
    }
}

/// The allocation behind every device of driver `T`: vfio-pci-core's device, then `T`'s data.
#[repr(C)]
struct Container<T: Driver> {
    /// Must be first: vfio allocates the whole container with `vdev` at offset 0.
    core: bindings::vfio_pci_core_device,
    /// Whether `data` holds a value (it does from the end of probe until release).
    data_initialised: bool,
    data: MaybeUninit<T::Data>,
}

/// A vfio-pci-core device of variant driver `T`, as the driver's callbacks see it.
///
/// # Invariants
///
/// `self` is the `Container<T>` that [`Registration`]'s probe allocated with `T`'s ops table:
/// `core` was initialised by `vfio_pci_core_init_dev`, `data` is initialised, and the device is
/// not released while the reference exists (callbacks run on a registered or open device).
#[repr(transparent)]
pub struct CoreDevice<T: Driver>(Opaque<Container<T>>);

impl<T: Driver> CoreDevice<T> {
    /// Borrows the device a vfio callback was called for.
    ///
    /// # Safety
    ///
    /// `vdev` is the `vdev` of a `Container<T>` allocated by this module's probe with an
    /// initialised `data`, and is not released for `'a`.
    unsafe fn from_vdev<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: `vdev` is at offset 0 of `core`, itself at offset 0 of the `repr(C)`
        // container; validity and lifetime come from the safety requirements.
        unsafe { &*vdev.cast() }
    }

    fn container(&self) -> *mut Container<T> {
        self.0.get()
    }

    fn core_raw(&self) -> *mut bindings::vfio_pci_core_device {
        // SAFETY: The container is valid (type invariant); only the address is taken.
        unsafe { ptr::addr_of_mut!((*self.container()).core) }
    }

    fn vdev_raw(&self) -> *mut bindings::vfio_device {
        // SAFETY: As for `core_raw`.
        unsafe { ptr::addr_of_mut!((*self.core_raw()).vdev) }
    }

    /// The driver's data for this device. It was initialised in place and never moves until
    /// the device is released, so pinned fields (locks) can be used through it.
    pub fn data(&self) -> &T::Data {
        // SAFETY: `data` is initialised (type invariant) and lives as long as the device.
        unsafe { (*self.container()).data.assume_init_ref() }
    }

    /// The PCI function behind the device.
    pub fn pci_dev(&self) -> &pci::Device {
        // SAFETY: `vfio_pci_core_init_dev` set `pdev` to the bound function, which stays bound
        // (and referenced by the driver core) for as long as the vfio device exists.
        unsafe { pci::Device::from_raw((*self.core_raw()).pdev) }
    }

    /// Whether vfio-pci-core found a working function reset at open
    /// (`VFIO_DEVICE_FLAGS_RESET`).
    pub fn reset_works(&self) -> bool {
        // SAFETY: The device is valid (type invariant); the bit is set at open and only read.
        unsafe { (*self.core_raw()).reset_works() }
    }

    /// Number of regions the device file has: the fixed vfio-pci ones and the device-specific
    /// ones registered by the current open.
    pub fn num_regions(&self) -> u32 {
        // SAFETY: The device is valid (type invariant); the count changes only during open
        // and close, which vfio serialises with the callbacks that use it.
        NUM_REGIONS + unsafe { (*self.core_raw()).num_regions } as u32
    }

    /// Removes every user mapping of the first `len` bytes of region `index` from every
    /// address space (`unmap_mapping_range`). Later accesses fault again.
    pub fn zap_region(&self, index: u32, len: u64) {
        let page = bindings::PAGE_SIZE as u64;
        let len = len.saturating_add(page - 1) & !(page - 1);
        if len == 0 {
            return;
        }
        // SAFETY: The device is valid (type invariant); vfio gives every device an inode whose
        // mapping backs all its files' VMAs, for the device's lifetime.
        unsafe {
            let inode = (*self.vdev_raw()).inode;
            bindings::unmap_mapping_range(
                (*inode).i_mapping,
                index_to_offset(index) as bindings::loff_t,
                len as bindings::loff_t,
                1,
            );
        }
    }

    /// Makes `mem` the memory that backs user mappings of device-specific region `index`: the
    /// only memory [`RegionFault::insert`] maps, and which removes those mappings before it is
    /// released.
    pub fn region_memory(&self, index: u32, mem: DeviceMemory) -> RegionMemory {
        // SAFETY: The device is valid (type invariant); vfio gives every device an inode whose
        // mapping backs all its files' VMAs. The reference taken keeps it past the device's
        // own.
        let inode = unsafe {
            let inode = (*self.vdev_raw()).inode;
            bindings::ihold(inode);
            NonNull::new_unchecked(inode)
        };
        // INVARIANT: `inode` is the device's, with the reference just taken.
        RegionMemory { mem, inode, index }
    }

    /// vfio-pci-core's `VFIO_DEVICE_IOEVENTFD` for a request the driver already copied (and
    /// checked): what is registered is exactly what the driver saw.
    pub fn core_ioeventfd(&self, req: &IoeventfdRequest) -> Result<isize> {
        // SAFETY: The device is valid (type invariant); `req.0` is a complete request in
        // kernel memory that vfio-pci-core only reads during the call.
        to_result(unsafe { bindings::vfio_pci_core_ioeventfd(self.core_raw(), &req.0) })?;
        Ok(0)
    }

    /// vfio-pci-core's `ioctl`.
    pub fn core_ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        // SAFETY: The device is valid (type invariant); `arg` is the user's argument, checked
        // by vfio-pci-core.
        let ret = unsafe { bindings::vfio_pci_core_ioctl(self.vdev_raw(), cmd, arg as c_ulong) };
        long_result(ret)
    }

    /// vfio-pci-core's `device_feature`.
    pub fn core_device_feature(&self, flags: u32, arg: UserPtr, argsz: usize) -> Result {
        // SAFETY: The device is valid (type invariant); `arg` is a user pointer, checked by
        // vfio-pci-core.
        to_result(unsafe {
            bindings::vfio_pci_core_ioctl_feature(self.vdev_raw(), flags, arg as _, argsz)
        })
    }

    /// vfio-pci-core's `read`.
    pub fn core_read(&self, buf: UserPtr, count: usize, pos: &mut i64) -> Result<usize> {
        // SAFETY: The device is valid (type invariant); `buf` is a user pointer, checked by
        // vfio-pci-core; `pos` is a valid `loff_t`.
        let ret = unsafe { bindings::vfio_pci_core_read(self.vdev_raw(), buf as _, count, pos) };
        long_result(ret as c_long).map(|n| n as usize)
    }

    /// vfio-pci-core's `write`.
    pub fn core_write(&self, buf: UserPtr, count: usize, pos: &mut i64) -> Result<usize> {
        // SAFETY: As for `core_read`.
        let ret = unsafe { bindings::vfio_pci_core_write(self.vdev_raw(), buf as _, count, pos) };
        long_result(ret as c_long).map(|n| n as usize)
    }

    /// vfio-pci-core's `mmap`.
    pub fn core_mmap(&self, vma: &VmArea) -> Result {
        // SAFETY: The device is valid (type invariant) and `vma` is the VMA being set up.
        to_result(unsafe { bindings::vfio_pci_core_mmap(self.vdev_raw(), vma.as_raw()) })
    }

    /// vfio-pci-core's `request`.
    pub fn core_request(&self, count: u32) {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::vfio_pci_core_request(self.vdev_raw(), count) }
    }

    /// vfio-pci-core's `match`.
    pub fn core_match(&self, name: &CStr) -> Result<bool> {
        // SAFETY: The device is valid (type invariant); `name` is a NUL-terminated string that
        // vfio-pci-core only reads.
        let ret = unsafe {
            bindings::vfio_pci_core_match(self.vdev_raw(), name.as_char_ptr().cast_mut())
        };
        to_result(ret.min(0))?;
        Ok(ret > 0)
    }
}

/// A device as a user's system call or page fault on it sees it: vfio-pci-core holds none of
/// the device's locks during such a call, so its `memory_lock` may be taken. Dereferences to
/// [`CoreDevice`].
///
/// The lock cannot be taken where it would deadlock: the callbacks that may run with it held
/// (resets, error recovery, system sleep) get a plain [`CoreDevice`], which cannot take it, and
/// the write side needs the `Syscall` exclusively, so one call cannot ask for it while it holds
/// the lock for read.
///
/// # Invariants
///
/// Only exists during a system call or page fault of the device (or its `open_device`), where
/// the calling thread does not hold the device's `memory_lock`.
pub struct Syscall<'a, T: Driver>(&'a CoreDevice<T>);

impl<T: Driver> core::ops::Deref for Syscall<'_, T> {
    type Target = CoreDevice<T>;

    fn deref(&self) -> &CoreDevice<T> {
        self.0
    }
}

impl<'a, T: Driver> Syscall<'a, T> {
    /// The device, for the whole call (a borrow of it does not borrow the `Syscall`).
    pub fn device(&self) -> &'a CoreDevice<T> {
        self.0
    }

    /// Takes vfio-pci-core's `memory_lock` for read: the device's memory decode and power
    /// state do not change until the guard is dropped.
    pub fn memory_lock_read(&self) -> MemoryReadGuard<'_, T> {
        // SAFETY: The device is valid (type invariant of `CoreDevice`) and its lock
        // initialised; this thread does not hold it (type invariant).
        unsafe { bindings::down_read(ptr::addr_of_mut!((*self.0.core_raw()).memory_lock)) };
        MemoryReadGuard(self.0)
    }

    /// Takes vfio-pci-core's `memory_lock` for write: no user access to the device's memory
    /// runs until the guard is dropped.
    pub fn memory_lock_write(&mut self) -> MemoryWriteGuard<'_, T> {
        // SAFETY: As for `memory_lock_read`; no read guard of this call is alive (it would
        // borrow `self`).
        unsafe { bindings::down_write(ptr::addr_of_mut!((*self.0.core_raw()).memory_lock)) };
        MemoryWriteGuard(self.0)
    }
}

/// vfio-pci-core's `memory_lock`, held for read. See [`Syscall::memory_lock_read`].
pub struct MemoryReadGuard<'a, T: Driver>(&'a CoreDevice<T>);

impl<T: Driver> MemoryReadGuard<'_, T> {
    /// Whether the function is in D0 and not in a user-requested low-power state: its memory
    /// may be accessed. vfio-pci-core changes both only with the lock held for write.
    pub fn is_powered(&self) -> bool {
        let core = self.0.core_raw();
        // SAFETY: The device is valid (type invariant of `CoreDevice`); both fields are
        // protected by the lock this guard holds. `PCI_D0` is 0.
        unsafe { !(*core).pm_runtime_engaged && (*(*core).pdev).current_state == 0 }
    }
}

impl<T: Driver> Drop for MemoryReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The guard holds the lock for read.
        unsafe { bindings::up_read(ptr::addr_of_mut!((*self.0.core_raw()).memory_lock)) };
    }
}

/// vfio-pci-core's `memory_lock`, held for write. See [`Syscall::memory_lock_write`].
pub struct MemoryWriteGuard<'a, T: Driver>(&'a CoreDevice<T>);

impl<T: Driver> Drop for MemoryWriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The guard holds the lock for write.
        unsafe { bindings::up_write(ptr::addr_of_mut!((*self.0.core_raw()).memory_lock)) };
    }
}

/// A shared mapping of a device-specific region being set up, as [`Driver::region_mmap`]
/// sees it.
pub struct RegionMap<'a> {
    vma: &'a VmArea,
}

impl RegionMap<'_> {
    /// Offset in the region of the mapping's first byte.
    pub fn offset(&self) -> u64 {
        offset_in_region((self.vma.pgoff() as u64) << bindings::PAGE_SHIFT)
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> u64 {
        self.vma.len() as u64
    }

    /// Whether the mapping is empty (the mm core never creates one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The capability chain of an info reply being built (`struct vfio_info_cap`).
///
/// # Invariants
///
/// `caps` is the chain vfio-pci-core is building for the current `VFIO_DEVICE_GET_REGION_INFO`
/// or `VFIO_DEVICE_GET_INFO`.
pub struct RegionCaps<'a> {
    caps: *mut bindings::vfio_info_cap,
    _lifetime: PhantomData<&'a mut ()>,
}

impl RegionCaps<'_> {
    /// Appends a capability: `cap` starts with a `struct vfio_info_cap_header` whose `id` and
    /// `version` are used (its `next` is filled in by vfio). `EINVAL` when `cap` is shorter than
    /// the header.
    pub fn add(&mut self, cap: &[u8]) -> Result {
        if cap.len() < core::mem::size_of::<bindings::vfio_info_cap_header>() {
            return Err(EINVAL);
        }
        let mut copy = crate::alloc::KVec::new();
        copy.extend_from_slice(cap, crate::alloc::flags::GFP_KERNEL)?;
        // SAFETY: `caps` is the chain being built (invariant); `copy` holds a header followed by
        // the capability's body, `cap.len()` bytes in all, which vfio only reads and copies.
        // The copy is a kmalloc buffer, aligned for the header (a caller's slice may not be).
        to_result(unsafe {
            bindings::vfio_info_add_capability(
                self.caps,
                copy.as_mut_ptr().cast::<bindings::vfio_info_cap_header>(),
                cap.len(),
            )
        })
    }
}

/// vfio-pci-core's `VFIO_DEVICE_GET_INFO` reply, before it is copied to the user: the request
/// was copied from user memory once, by vfio-pci-core, and nothing here reads user memory.
///
/// # Invariants
///
/// `info` and `caps` are the reply and the capability chain vfio-pci-core is building for the
/// current request, valid and exclusively ours for `'a`.
pub struct DeviceInfoReply<'a> {
    info: *mut bindings::vfio_device_info,
    caps: RegionCaps<'a>,
}

impl DeviceInfoReply<'_> {
    /// The device flags (`VFIO_DEVICE_FLAGS_*`).
    pub fn flags(&self) -> u32 {
        // SAFETY: `info` is valid (type invariant).
        unsafe { (*self.info).flags }
    }

    /// Sets the device flags. `VFIO_DEVICE_FLAGS_CAPS` is vfio-pci-core's to set.
    pub fn set_flags(&mut self, flags: u32) {
        // SAFETY: `info` is valid and ours (type invariant).
        unsafe { (*self.info).flags = flags }
    }

    /// Number of regions reported.
    pub fn num_regions(&self) -> u32 {
        // SAFETY: `info` is valid (type invariant).
        unsafe { (*self.info).num_regions }
    }

    /// Appends a capability to the reply's chain (see [`RegionCaps::add`]).
    pub fn add_cap(&mut self, cap: &[u8]) -> Result {
        self.caps.add(cap)
    }
}

/// vfio-pci-core's `VFIO_DEVICE_GET_REGION_INFO` reply, before it is copied to the user: the
/// request was copied from user memory once, by vfio-pci-core.
///
/// # Invariants
///
/// `info` and `caps` are the reply and the capability chain vfio-pci-core is building for the
/// current request, valid and exclusively ours for `'a`.
pub struct RegionInfoReply<'a> {
    info: *mut bindings::vfio_region_info,
    caps: RegionCaps<'a>,
}

impl RegionInfoReply<'_> {
    /// The region index asked about.
    pub fn index(&self) -> u32 {
        // SAFETY: `info` is valid (type invariant).
        unsafe { (*self.info).index }
    }

    /// The region's size as vfio-pci-core reports it.
    pub fn size(&self) -> u64 {
        // SAFETY: `info` is valid (type invariant).
        unsafe { (*self.info).size }
    }

    /// The region flags (`VFIO_REGION_INFO_FLAG_*`).
    pub fn flags(&self) -> u32 {
        // SAFETY: `info` is valid (type invariant).
        unsafe { (*self.info).flags }
    }

    /// Sets the region flags. `VFIO_REGION_INFO_FLAG_CAPS` is vfio-pci-core's to set.
    pub fn set_flags(&mut self, flags: u32) {
        // SAFETY: `info` is valid and ours (type invariant).
        unsafe { (*self.info).flags = flags }
    }

    /// Appends a capability to the reply's chain (see [`RegionCaps::add`]).
    pub fn add_cap(&mut self, cap: &[u8]) -> Result {
        self.caps.add(cap)
    }
}

/// The outcome of a fault (`vm_fault_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultResult(bindings::vm_fault_t);

impl FaultResult {
    /// The access gets `SIGBUS`.
    pub const SIGBUS: Self = Self(bindings::vm_fault_reason_VM_FAULT_SIGBUS);
    /// A huge mapping is not possible here: the mm core retries with a smaller one.
    pub const FALLBACK: Self = Self(bindings::vm_fault_reason_VM_FAULT_FALLBACK);
    /// Out of memory (for page tables).
    pub const OOM: Self = Self(bindings::vm_fault_reason_VM_FAULT_OOM);
    /// Nothing was inserted: the access runs again (once a pending signal is handled) and
    /// faults anew. For a fault that waited for something and was interrupted.
    pub const AGAIN: Self = Self(bindings::vm_fault_reason_VM_FAULT_NOPAGE);

    /// Whether a mapping was inserted (or already there).
    pub fn is_mapped(self) -> bool {
        self.0 == bindings::vm_fault_reason_VM_FAULT_NOPAGE
    }
}

/// Sizes of the pieces a fault can map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultSize {
    /// One page.
    Page,
    /// One PMD block (2 MiB on x86-64).
    Pmd,
    /// One PUD block (1 GiB on x86-64).
    Pud,
}

impl FaultSize {
    /// The `order` the mm core passes to `huge_fault` for this size.
    fn order(self) -> u32 {
        match self {
            FaultSize::Page => 0,
            FaultSize::Pmd => bindings::PMD_ORDER,
            FaultSize::Pud => bindings::PUD_ORDER,
        }
    }

    /// Size in bytes.
    pub fn bytes(self) -> u64 {
        (bindings::PAGE_SIZE as u64) << self.order()
    }
}

/// A fault in a mapping of a device-specific region, as [`Driver::region_fault`] sees it: the
/// naturally aligned piece of `size()` bytes around the faulting address, which lies wholly
/// inside the VMA.
///
/// # Invariants
///
/// `vmf` is the fault being handled, its VMA a `VM_PFNMAP` mapping set up by
/// [`Driver::region_mmap`], and the piece `[addr, addr + size)` lies inside the VMA.
pub struct RegionFault<'a> {
    vmf: *mut bindings::vm_fault,
    size: FaultSize,
    addr: usize,
    /// The region the faulting mapping maps, and the offset in it.
    index: u32,
    offset: u64,
    /// The mapping (`struct address_space`) of the VMA's file.
    mapping: *mut bindings::address_space,
    _lifetime: PhantomData<&'a ()>,
}

impl RegionFault<'_> {
    /// Size of the piece to map.
    pub fn size(&self) -> FaultSize {
        self.size
    }

    /// Offset in the region of the piece's first byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether bytes `[mem_offset, mem_offset + size)` of `mem` can back the piece: they lie
    /// inside `mem` and their physical address is aligned to the piece's size. When they cannot,
    /// [`RegionFault::insert`] would not map them.
    pub fn can_insert(&self, mem: &DeviceMemory, mem_offset: u64) -> bool {
        let order = self.size.order();
        mem.pfn_of(mem_offset, self.size.bytes())
            .is_some_and(|pfn| pfn & ((1usize << order) - 1) == 0)
    }

    /// Maps the piece to bytes `[mem_offset, mem_offset + size)` of `mem`.
    ///
    /// Returns [`FaultResult::FALLBACK`] when a huge piece would map memory that is not
    /// aligned to its size (the mm core then retries smaller), [`FaultResult::SIGBUS`] when the
    /// bytes are not all inside `mem` or `mem` backs another region or device than the one
    /// faulting. Dropping `mem` removes the mapping.
    pub fn insert(&self, mem: &RegionMemory, mem_offset: u64) -> FaultResult {
        // Only where `mem`'s drop zaps: this device's files, at `mem`'s region.
        if mem.index != self.index || mem.mapping() != self.mapping {
            return FaultResult::SIGBUS;
        }
        let bytes = self.size.bytes();
        let Some(pfn) = mem.pfn_of(mem_offset, bytes) else {
            return FaultResult::SIGBUS;
        };
        let order = self.size.order();
        if pfn & ((1usize << order) - 1) != 0 {
            return FaultResult::FALLBACK;
        }
        // SAFETY: `vmf` is the fault being handled (invariant) in a `VM_PFNMAP` mapping; the
        // piece lies inside the VMA (invariant) and `pfn` starts `bytes` bytes of claimed device
        // memory, aligned for the piece's size.
        let ret = unsafe {
            match self.size {
                FaultSize::Page => {
                    bindings::vmf_insert_pfn((*self.vmf).__bindgen_anon_1.vma, self.addr, pfn)
                }
                #[cfg(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP)]
                FaultSize::Pmd => bindings::vmf_insert_pfn_pmd_dev(self.vmf, pfn, false),
                #[cfg(CONFIG_ARCH_SUPPORTS_PUD_PFNMAP)]
                FaultSize::Pud => bindings::vmf_insert_pfn_pud_dev(self.vmf, pfn, false),
                #[allow(unreachable_patterns)]
                _ => bindings::vm_fault_reason_VM_FAULT_FALLBACK,
            }
        };
        FaultResult(ret)
    }
}

/// Device memory that backs the user mappings of one device-specific region: made by
/// [`CoreDevice::region_memory`], mapped by [`RegionFault::insert`], and read and written
/// through [`DeviceMemory`] (it dereferences to it).
///
/// No page table entry can outlive the memory: [`RegionFault::insert`] maps it only into
/// mappings of this device's files at this region, and dropping it first removes every such
/// mapping (a fault that inserts borrows the value, so it cannot run during the drop).
///
/// # Invariants
///
/// `inode` is the vfio device's inode, whose mapping backs all its files' VMAs, with a
/// reference held until drop; `index` is the region the memory backs.
pub struct RegionMemory {
    mem: DeviceMemory,
    inode: NonNull<bindings::inode>,
    index: u32,
}

// SAFETY: `DeviceMemory` is `Send`; the inode is only used through its reference count and
// `unmap_mapping_range`, both safe from any thread.
unsafe impl Send for RegionMemory {}

// SAFETY: `&self` gives only `DeviceMemory`'s `Sync` methods and reads of immutable fields.
unsafe impl Sync for RegionMemory {}

impl RegionMemory {
    /// The region the memory backs.
    pub fn index(&self) -> u32 {
        self.index
    }

    fn mapping(&self) -> *mut bindings::address_space {
        // SAFETY: The inode is alive while we hold our reference (type invariant).
        unsafe { (*self.inode.as_ptr()).i_mapping }
    }
}

impl core::ops::Deref for RegionMemory {
    type Target = DeviceMemory;

    fn deref(&self) -> &DeviceMemory {
        &self.mem
    }
}

impl Drop for RegionMemory {
    fn drop(&mut self) {
        let page = bindings::PAGE_SIZE as u64;
        let len = (self.mem.len() as u64).saturating_add(page - 1) & !(page - 1);
        // SAFETY: The inode and its mapping are alive (type invariant); every user mapping of
        // the memory lies in this range of it (`RegionFault::insert`). Our reference is
        // dropped last; `self.mem` is released after this function, once nothing maps it.
        unsafe {
            bindings::unmap_mapping_range(
                self.mapping(),
                index_to_offset(self.index) as bindings::loff_t,
                len as bindings::loff_t,
                1,
            );
            bindings::iput(self.inode.as_ptr());
        }
    }
}

/// A device being opened, as [`Driver::open_device`] sees it: the operations that are only
/// valid while vfio serialises the open. Dereferences to [`CoreDevice`].
///
/// # Invariants
///
/// Only exists during `open_device` of the device it wraps.
pub struct OpenDevice<'a, T: Driver>(&'a CoreDevice<T>);

impl<T: Driver> core::ops::Deref for OpenDevice<'_, T> {
    type Target = CoreDevice<T>;

    fn deref(&self) -> &CoreDevice<T> {
        self.0
    }
}

impl<'a, T: Driver> OpenDevice<'a, T> {
    /// The device as the user's open sees it, where `memory_lock` may be taken.
    pub fn syscall(&self) -> Syscall<'a, T> {
        // INVARIANT: vfio-pci-core does not hold `memory_lock` across `open_device`.
        Syscall(self.0)
    }

    /// Enables the device for a user (`vfio_pci_core_enable`). This resets the device when a
    /// reset method works.
    pub fn enable(&self) -> Result {
        // SAFETY: The device is valid (type invariant); vfio serialises open and close.
        to_result(unsafe { bindings::vfio_pci_core_enable(self.0.core_raw()) })
    }

    /// Completes an open after [`OpenDevice::enable`] (`vfio_pci_core_finish_enable`).
    pub fn finish_enable(&self) {
        // SAFETY: As for `enable`.
        unsafe { bindings::vfio_pci_core_finish_enable(self.0.core_raw()) }
    }

    /// Disables the device (`vfio_pci_core_disable`), for an open that fails after
    /// [`OpenDevice::enable`].
    pub fn disable(&self) {
        // SAFETY: As for `enable`.
        unsafe { bindings::vfio_pci_core_disable(self.0.core_raw()) }
    }

    /// Registers a device-specific region for the current open: it gets the next index after
    /// the fixed regions and the regions registered before it, which is returned. Its accesses
    /// go to [`Driver::region_rw`] with `id`; `VFIO_DEVICE_GET_REGION_INFO` reports `size`,
    /// `flags` and the type capability. vfio-pci-core drops every such region at close.
    ///
    /// Call it from [`Driver::open_device`], after [`OpenDevice::enable`].
    pub fn register_region(
        &self,
        region_type: u32,
        subtype: u32,
        size: usize,
        flags: u32,
        id: usize,
    ) -> Result<u32> {
        // SAFETY: The device is valid (type invariant) and being opened: vfio serialises this
        // with every other change of the region table.
        let index = unsafe { (*self.0.core_raw()).num_regions } as u32 + NUM_REGIONS;
        // SAFETY: As above; the ops table is `'static` and `id` is an opaque cookie that
        // vfio-pci-core never dereferences (the release callback does nothing with it).
        to_result(unsafe {
            bindings::vfio_pci_core_register_dev_region(
                self.0.core_raw(),
                region_type,
                subtype,
                Adapter::<T>::regops(),
                size,
                flags,
                id as *mut crate::ffi::c_void,
            )
        })?;
        Ok(index)
    }
}

/// A device being closed, as [`Driver::close_device`] sees it. Dereferences to [`CoreDevice`].
///
/// # Invariants
///
/// Only exists during `close_device` of the device it wraps.
pub struct CloseDevice<'a, T: Driver>(&'a CoreDevice<T>);

impl<T: Driver> core::ops::Deref for CloseDevice<'_, T> {
    type Target = CoreDevice<T>;

    fn deref(&self) -> &CoreDevice<T> {
        self.0
    }
}

impl<T: Driver> CloseDevice<'_, T> {
    /// vfio-pci-core's `close_device`.
    pub fn core_close_device(&self) {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::vfio_pci_core_close_device(self.0.vdev_raw()) }
    }
}

fn long_result(ret: c_long) -> Result<isize> {
    if ret < 0 {
        Err(Error::from_errno(ret as c_int))
    } else {
        Ok(ret)
    }
}

/// The `vfio_device_ops` of driver `T`: vfio-pci-core's functions wherever `T` does not
/// override an operation.
pub fn ops_table<T: Driver>() -> &'static bindings::vfio_device_ops {
    Adapter::<T>::ops()
}

struct Adapter<T: Driver>(PhantomData<T>);

impl<T: Driver> Adapter<T> {
    const OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
        name: T::NAME.as_char_ptr().cast_mut(),
        init: Some(bindings::vfio_pci_core_init_dev),
        release: Some(Self::release_callback),
        #[cfg(CONFIG_IOMMUFD)]
        bind_iommufd: Some(bindings::vfio_iommufd_physical_bind),
        #[cfg(CONFIG_IOMMUFD)]
        unbind_iommufd: Some(bindings::vfio_iommufd_physical_unbind),
        #[cfg(CONFIG_IOMMUFD)]
        attach_ioas: Some(bindings::vfio_iommufd_physical_attach_ioas),
        #[cfg(CONFIG_IOMMUFD)]
        detach_ioas: Some(bindings::vfio_iommufd_physical_detach_ioas),
        #[cfg(not(CONFIG_IOMMUFD))]
        bind_iommufd: None,
        #[cfg(not(CONFIG_IOMMUFD))]
        unbind_iommufd: None,
        #[cfg(not(CONFIG_IOMMUFD))]
        attach_ioas: None,
        #[cfg(not(CONFIG_IOMMUFD))]
        detach_ioas: None,
        open_device: Some(Self::open_callback),
        close_device: if T::HAS_CLOSE_DEVICE {
            Some(Self::close_callback)
        } else {
            Some(bindings::vfio_pci_core_close_device)
        },
        read: if T::HAS_READ {
            Some(Self::read_callback)
        } else {
            Some(bindings::vfio_pci_core_read)
        },
        write: if T::HAS_WRITE {
            Some(Self::write_callback)
        } else {
            Some(bindings::vfio_pci_core_write)
        },
        ioctl: if T::HAS_IOCTL {
            Some(Self::ioctl_callback)
        } else {
            Some(bindings::vfio_pci_core_ioctl)
        },
        mmap: if T::HAS_MMAP {
            Some(Self::mmap_callback)
        } else {
            Some(bindings::vfio_pci_core_mmap)
        },
        request: if T::HAS_REQUEST {
            Some(Self::request_callback)
        } else {
            Some(bindings::vfio_pci_core_request)
        },
        match_: if T::HAS_MATCH_NAME {
            Some(Self::match_callback)
        } else {
            Some(bindings::vfio_pci_core_match)
        },
        dma_unmap: None,
        device_feature: if T::HAS_DEVICE_FEATURE {
            Some(Self::device_feature_callback)
        } else {
            Some(bindings::vfio_pci_core_ioctl_feature)
        },
    };

    const fn ops() -> &'static bindings::vfio_device_ops {
        &Self::OPS
    }

    /// vfio-pci-core's error handlers, plus the driver's reset and error hooks when it
    /// implements them (the error hooks default to the reset hooks).
    const ERR_HANDLERS: bindings::pci_error_handlers = bindings::pci_error_handlers {
        error_detected: if T::HAS_RESET_PREPARE || T::HAS_ERROR_DETECTED {
            Some(Self::error_detected_callback)
        } else {
            Some(bindings::vfio_pci_core_aer_err_detected)
        },
        mmio_enabled: None,
        slot_reset: None,
        reset_prepare: if T::HAS_RESET_PREPARE {
            Some(Self::reset_prepare_callback)
        } else {
            None
        },
        reset_done: if T::HAS_RESET_DONE {
            Some(Self::reset_done_callback)
        } else {
            None
        },
        resume: if T::HAS_RESET_DONE || T::HAS_ERROR_RESUMED {
            Some(Self::resume_callback)
        } else {
            None
        },
        cor_error_detected: None,
    };

    const fn err_handlers() -> &'static bindings::pci_error_handlers {
        &Self::ERR_HANDLERS
    }

    /// The device of a function bound to `T`, if probe got far enough to have one.
    ///
    /// # Safety
    ///
    /// Called from a PCI error handler, with the device lock held, for a function bound to `T`.
    unsafe fn from_pdev<'a>(pdev: *mut bindings::pci_dev) -> Option<&'a CoreDevice<T>> {
        // SAFETY: The function is bound to this driver (the PCI core found our handlers
        // through `pdev->driver`) and the device lock keeps remove away, so the driver data is
        // either null (not probed yet) or our container, alive with its data initialised.
        let container = unsafe { bindings::dev_get_drvdata(ptr::addr_of_mut!((*pdev).dev)) };
        if container.is_null() {
            return None;
        }
        // SAFETY: See above; `vdev` is at offset 0 of the container.
        Some(unsafe { CoreDevice::<T>::from_vdev(container.cast()) })
    }

    /// # Safety
    ///
    /// Called by the PCI core, with the device lock held, for a function bound to `T`.
    unsafe extern "C" fn reset_done_callback(pdev: *mut bindings::pci_dev) {
        // SAFETY: As the function's safety requirements say.
        if let Some(dev) = unsafe { Self::from_pdev(pdev) } {
            T::reset_done(dev);
        }
    }

    /// # Safety
    ///
    /// As for `reset_done_callback`.
    unsafe extern "C" fn reset_prepare_callback(pdev: *mut bindings::pci_dev) {
        // SAFETY: As the function's safety requirements say.
        if let Some(dev) = unsafe { Self::from_pdev(pdev) } {
            T::reset_prepare(dev);
        }
    }

    /// # Safety
    ///
    /// As for `reset_done_callback`.
    unsafe extern "C" fn resume_callback(pdev: *mut bindings::pci_dev) {
        // SAFETY: As the function's safety requirements say.
        if let Some(dev) = unsafe { Self::from_pdev(pdev) } {
            T::error_resumed(dev);
        }
    }

    /// The driver's `error_detected`, then vfio-pci-core's error notification.
    ///
    /// # Safety
    ///
    /// As for `reset_done_callback`.
    unsafe extern "C" fn error_detected_callback(
        pdev: *mut bindings::pci_dev,
        state: bindings::pci_channel_state_t,
    ) -> bindings::pci_ers_result_t {
        // SAFETY: As the function's safety requirements say.
        if let Some(dev) = unsafe { Self::from_pdev(pdev) } {
            T::error_detected(dev);
        }
        // SAFETY: Same arguments as the PCI core passed.
        unsafe { bindings::vfio_pci_core_aer_err_detected(pdev, state) }
    }

    const INFO_OPS: bindings::vfio_pci_info_ops = bindings::vfio_pci_info_ops {
        device_info: if T::HAS_DEVICE_INFO {
            Some(Self::device_info_callback)
        } else {
            None
        },
        region_info: if T::HAS_REGION_INFO {
            Some(Self::region_info_callback)
        } else {
            None
        },
    };

    /// # Safety
    ///
    /// Called by vfio-pci-core's `VFIO_DEVICE_GET_INFO` on a device of `T`, with the reply and
    /// the capability chain it is building.
    unsafe extern "C" fn device_info_callback(
        vdev: *mut bindings::vfio_pci_core_device,
        info: *mut bindings::vfio_device_info,
        caps: *mut bindings::vfio_info_cap,
    ) -> c_int {
        // SAFETY: As the function's safety requirements say.
        let dev = unsafe { CoreDevice::<T>::from_vdev(ptr::addr_of_mut!((*vdev).vdev)) };
        // INVARIANT: `info` and `caps` are the reply being built for this request.
        let mut reply = DeviceInfoReply {
            info,
            caps: RegionCaps {
                caps,
                _lifetime: PhantomData,
            },
        };
        from_result(|| T::device_info(dev, &mut reply).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by vfio-pci-core's `VFIO_DEVICE_GET_REGION_INFO` on a device of `T`, with the
    /// reply and the capability chain it is building.
    unsafe extern "C" fn region_info_callback(
        vdev: *mut bindings::vfio_pci_core_device,
        info: *mut bindings::vfio_region_info,
        caps: *mut bindings::vfio_info_cap,
    ) -> c_int {
        // SAFETY: As the function's safety requirements say.
        let dev = unsafe { CoreDevice::<T>::from_vdev(ptr::addr_of_mut!((*vdev).vdev)) };
        // INVARIANT: `info` and `caps` are the reply being built for this request.
        let mut reply = RegionInfoReply {
            info,
            caps: RegionCaps {
                caps,
                _lifetime: PhantomData,
            },
        };
        from_result(|| T::region_info(dev, &mut reply).map(|()| 0))
    }

    const PM_HOOKS: bindings::vfio_pci_pm_hooks = bindings::vfio_pci_pm_hooks {
        suspend: Some(Self::sleep_suspend_callback),
        resume: Some(Self::sleep_resume_callback),
        set_power_prepare: if T::HAS_SET_POWER_PREPARE {
            Some(Self::set_power_prepare_callback)
        } else {
            None
        },
        set_power_done: if T::HAS_SET_POWER_DONE {
            Some(Self::set_power_done_callback)
        } else {
            None
        },
    };

    /// # Safety
    ///
    /// Called by vfio-pci-core's PM Control write on a registered device of `T`, with its
    /// `memory_lock` held for write.
    unsafe extern "C" fn set_power_prepare_callback(
        vdev: *mut bindings::vfio_pci_core_device,
        _state: bindings::pci_power_t,
    ) {
        // SAFETY: As the function's safety requirements say.
        let dev = unsafe { CoreDevice::<T>::from_vdev(ptr::addr_of_mut!((*vdev).vdev)) };
        T::set_power_prepare(dev);
    }

    /// # Safety
    ///
    /// As for `set_power_prepare_callback`.
    unsafe extern "C" fn set_power_done_callback(vdev: *mut bindings::vfio_pci_core_device) {
        // SAFETY: As the function's safety requirements say.
        let dev = unsafe { CoreDevice::<T>::from_vdev(ptr::addr_of_mut!((*vdev).vdev)) };
        T::set_power_done(dev);
    }

    /// # Safety
    ///
    /// Called by vfio-pci-core's system sleep callbacks on a registered device of `T`.
    unsafe extern "C" fn sleep_suspend_callback(
        vdev: *mut bindings::vfio_pci_core_device,
    ) -> c_int {
        // SAFETY: As the function's safety requirements say.
        let dev = unsafe { CoreDevice::<T>::from_vdev(ptr::addr_of_mut!((*vdev).vdev)) };
        from_result(|| T::suspend(dev).map(|()| 0))
    }

    /// # Safety
    ///
    /// As for `sleep_suspend_callback`.
    unsafe extern "C" fn sleep_resume_callback(vdev: *mut bindings::vfio_pci_core_device) -> c_int {
        // SAFETY: As the function's safety requirements say.
        let dev = unsafe { CoreDevice::<T>::from_vdev(ptr::addr_of_mut!((*vdev).vdev)) };
        from_result(|| T::resume(dev).map(|()| 0))
    }

    const REGOPS: bindings::vfio_pci_regops = bindings::vfio_pci_regops {
        rw: Some(Self::region_rw_callback),
        release: Some(Self::region_release_callback),
        mmap: if T::HAS_REGION_MMAP {
            Some(Self::region_mmap_callback)
        } else {
            None
        },
        add_capability: if T::HAS_REGION_INFO_CAPS {
            Some(Self::region_caps_callback)
        } else {
            None
        },
    };

    /// # Safety
    ///
    /// Called by vfio-pci-core's `VFIO_DEVICE_GET_REGION_INFO` for a device-specific region of
    /// an open device of `T`, with the capability chain it is building.
    unsafe extern "C" fn region_caps_callback(
        vdev: *mut bindings::vfio_pci_core_device,
        region: *mut bindings::vfio_pci_region,
        caps: *mut bindings::vfio_info_cap,
    ) -> c_int {
        // SAFETY: As the function's safety requirements say; the region's data is the id
        // `register_region` stored.
        let (dev, id) = unsafe {
            (
                CoreDevice::<T>::from_vdev(ptr::addr_of_mut!((*vdev).vdev)),
                (*region).data as usize,
            )
        };
        // INVARIANT: `caps` is the chain being built for this request.
        let mut caps = RegionCaps {
            caps,
            _lifetime: PhantomData,
        };
        from_result(|| T::region_info_caps(dev, id, &mut caps).map(|()| 0))
    }

    const VM_OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        fault: Some(Self::fault_callback),
        #[cfg(CONFIG_ARCH_SUPPORTS_HUGE_PFNMAP)]
        huge_fault: Some(Self::huge_fault_callback),
        // SAFETY: All other operations are optional: null pointers mean "none".
        ..unsafe { core::mem::zeroed() }
    };

    /// The id the driver registered region `index` of `core` with, if it is a device-specific
    /// region of the current open.
    ///
    /// # Safety
    ///
    /// `core` is a device of `T` that is open (its region table is stable).
    unsafe fn region_id(core: *mut bindings::vfio_pci_core_device, index: u32) -> Option<usize> {
        let slot = index.checked_sub(NUM_REGIONS)? as usize;
        // SAFETY: The table has `num_regions` entries while the device is open.
        unsafe {
            if slot >= (*core).num_regions as usize {
                return None;
            }
            Some((*(*core).region.add(slot)).data as usize)
        }
    }

    /// # Safety
    ///
    /// Called by vfio-pci-core's `mmap` for a device-specific region of an open device of `T`,
    /// with the mmap lock held and the VMA not yet visible to faults.
    unsafe extern "C" fn region_mmap_callback(
        vdev: *mut bindings::vfio_pci_core_device,
        region: *mut bindings::vfio_pci_region,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: As the function's safety requirements say; the region's data is the id
        // `register_region` stored.
        let (dev, id, area) = unsafe {
            (
                CoreDevice::<T>::from_vdev(ptr::addr_of_mut!((*vdev).vdev)),
                (*region).data as usize,
                VmArea::from_raw(vma),
            )
        };
        from_result(|| {
            T::region_mmap(dev, id, &RegionMap { vma: area })?;
            // SAFETY: The VMA is being set up under the mmap lock. It holds a reference to the
            // device file, so the device stays open (and valid) while the VMA exists: the
            // fault callbacks can use the device through `vm_private_data`.
            unsafe {
                bindings::vm_flags_set(
                    vma,
                    (bindings::VM_IO
                        | bindings::VM_PFNMAP
                        | bindings::VM_DONTEXPAND
                        | bindings::VM_DONTDUMP) as _,
                );
                // Faults insert only `DeviceMemory`, which the kernel maps write-back: the
                // user's mapping gets the same memory type, and is decrypted.
                bindings::vma_set_device_memory_prot(vma);
                (*vma).vm_ops = &Self::VM_OPS;
                (*vma).vm_private_data = ptr::addr_of_mut!((*vdev).vdev).cast();
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the mm core for a fault in a VMA set up by `region_mmap_callback`.
    unsafe extern "C" fn fault_callback(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: As the function's safety requirements say.
        unsafe { Self::huge_fault_callback(vmf, 0) }
    }

    /// # Safety
    ///
    /// As for `fault_callback`.
    unsafe extern "C" fn huge_fault_callback(
        vmf: *mut bindings::vm_fault,
        order: c_uint,
    ) -> bindings::vm_fault_t {
        let size = match order {
            0 => FaultSize::Page,
            bindings::PMD_ORDER => FaultSize::Pmd,
            bindings::PUD_ORDER => FaultSize::Pud,
            _ => return FaultResult::FALLBACK.0,
        };
        // SAFETY: The fault and its VMA are valid during the call; `region_mmap_callback` set
        // `vm_private_data` to the device, open while the VMA exists.
        let (vma, address) =
            unsafe { ((*vmf).__bindgen_anon_1.vma, (*vmf).__bindgen_anon_1.address) };
        // SAFETY: See above; the VMA's bounds and offset are stable under the mmap lock.
        let (vdev, start, end, pgoff) = unsafe {
            (
                (*vma).vm_private_data.cast::<bindings::vfio_device>(),
                (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_start,
                (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_end,
                (*vma).vm_pgoff,
            )
        };
        let bytes = size.bytes() as usize;
        let addr = address & !(bytes - 1);
        if addr < start || addr.checked_add(bytes).map_or(true, |e| e > end) {
            return if size == FaultSize::Page {
                FaultResult::SIGBUS.0
            } else {
                FaultResult::FALLBACK.0
            };
        }
        let file_offset = ((pgoff as u64) << bindings::PAGE_SHIFT) + (addr - start) as u64;
        // SAFETY: See above.
        let dev = unsafe { CoreDevice::<T>::from_vdev(vdev) };
        // SAFETY: The device is open while the VMA exists.
        let Some(id) = (unsafe { Self::region_id(dev.core_raw(), offset_to_index(file_offset)) })
        else {
            return FaultResult::SIGBUS.0;
        };
        // SAFETY: A VMA of a device file has its file, alive while the VMA exists.
        let mapping = unsafe { (*(*vma).vm_file).f_mapping };
        // INVARIANT: `vmf` is the fault being handled in a VMA of `region_mmap_callback`, and
        // `[addr, addr + bytes)` was checked to lie inside it.
        let fault = RegionFault {
            vmf,
            size,
            addr,
            index: offset_to_index(file_offset),
            offset: offset_in_region(file_offset),
            mapping,
            _lifetime: PhantomData,
        };
        // INVARIANT: A page fault; vfio-pci-core holds none of the device's locks.
        let ret = T::region_fault(&mut Syscall(dev), id, &fault);
        // The mm core handles FALLBACK only from `huge_fault`: from `fault` it would go on
        // without a page. A page-sized piece that cannot be mapped is an error.
        if size == FaultSize::Page && ret == FaultResult::FALLBACK {
            return FaultResult::SIGBUS.0;
        }
        ret.0
    }

    const fn regops() -> &'static bindings::vfio_pci_regops {
        &Self::REGOPS
    }

    /// # Safety
    ///
    /// Called by vfio-pci-core for a device-specific region of a device of `T`'s ops table,
    /// whose index it checked against the region table; `ppos` is a valid `loff_t`.
    unsafe extern "C" fn region_rw_callback(
        vdev: *mut bindings::vfio_pci_core_device,
        buf: *mut c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
        iswrite: bool,
    ) -> isize {
        // SAFETY: As for `open_callback`; `ppos` is valid for the call.
        let (dev, pos) = unsafe {
            (
                CoreDevice::<T>::from_vdev(ptr::addr_of_mut!((*vdev).vdev)),
                *ppos as u64,
            )
        };
        let slot = (offset_to_index(pos) - NUM_REGIONS) as usize;
        // SAFETY: vfio-pci-core checked that the index is inside the region table, which
        // stays in place while the device is open.
        let id = unsafe { (*(*vdev).region.add(slot)).data } as usize;
        // INVARIANT: A read or write of the device file (vfio-pci-core's `rw` calls the region's
        // without taking the device's locks).
        match T::region_rw(
            &mut Syscall(dev),
            id,
            buf as UserPtr,
            count,
            offset_in_region(pos),
            iswrite,
        ) {
            Ok(n) => {
                // SAFETY: `ppos` is valid for the call (see above); advance it, as every
                // region's `rw` does.
                unsafe { *ppos += n as bindings::loff_t };
                n as isize
            }
            Err(e) => e.to_errno() as isize,
        }
    }

    /// Nothing to free: a region's data is the driver's `id`, not an allocation.
    ///
    /// # Safety
    ///
    /// Called by vfio-pci-core at close for a region registered by `register_region`.
    unsafe extern "C" fn region_release_callback(
        _vdev: *mut bindings::vfio_pci_core_device,
        _region: *mut bindings::vfio_pci_region,
    ) {
    }

    /// # Safety
    ///
    /// Called by vfio with a device of `T`'s ops table (hence a `Container<T>`).
    unsafe extern "C" fn open_callback(vdev: *mut bindings::vfio_device) -> c_int {
        // SAFETY: vfio opens only registered devices, whose data probe initialised.
        let dev = unsafe { CoreDevice::<T>::from_vdev(vdev) };
        // INVARIANT: This is the device's `open_device`.
        from_result(|| T::open_device(&OpenDevice(dev)).map(|()| 0))
    }

    /// # Safety
    ///
    /// As for `open_callback`.
    unsafe extern "C" fn close_callback(vdev: *mut bindings::vfio_device) {
        // SAFETY: As for `open_callback`.
        let dev = unsafe { CoreDevice::<T>::from_vdev(vdev) };
        // INVARIANT: This is the device's `close_device`.
        T::close_device(&CloseDevice(dev))
    }

    /// # Safety
    ///
    /// As for `open_callback`.
    unsafe extern "C" fn ioctl_callback(
        vdev: *mut bindings::vfio_device,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        // SAFETY: As for `open_callback`.
        let dev = unsafe { CoreDevice::<T>::from_vdev(vdev) };
        // INVARIANT: An ioctl of the device; vfio-pci-core holds none of its locks.
        match T::ioctl(&mut Syscall(dev), cmd, arg) {
            Ok(ret) => ret as c_long,
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// As for `open_callback`.
    unsafe extern "C" fn device_feature_callback(
        vdev: *mut bindings::vfio_device,
        flags: u32,
        arg: *mut crate::ffi::c_void,
        argsz: usize,
    ) -> c_int {
        // SAFETY: As for `open_callback`.
        let dev = unsafe { CoreDevice::<T>::from_vdev(vdev) };
        // INVARIANT: As for `ioctl_callback`.
        from_result(|| {
            T::device_feature(&mut Syscall(dev), flags, arg as UserPtr, argsz).map(|()| 0)
        })
    }

    /// # Safety
    ///
    /// As for `open_callback`; `pos` is a valid `loff_t`.
    unsafe extern "C" fn read_callback(
        vdev: *mut bindings::vfio_device,
        buf: *mut c_char,
        count: usize,
        pos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: As for `open_callback`; vfio passes the file position, used by nobody else
        // during the call.
        let (dev, pos) = unsafe { (CoreDevice::<T>::from_vdev(vdev), &mut *pos) };
        // INVARIANT: As for `ioctl_callback`.
        match T::read(&mut Syscall(dev), buf as UserPtr, count, pos) {
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// As for `read_callback`.
    unsafe extern "C" fn write_callback(
        vdev: *mut bindings::vfio_device,
        buf: *const c_char,
        count: usize,
        pos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: As for `read_callback`.
        let (dev, pos) = unsafe { (CoreDevice::<T>::from_vdev(vdev), &mut *pos) };
        // INVARIANT: As for `ioctl_callback`.
        match T::write(&mut Syscall(dev), buf as UserPtr, count, pos) {
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// As for `open_callback`; `vma` is the VMA being set up, its mmap lock held.
    unsafe extern "C" fn mmap_callback(
        vdev: *mut bindings::vfio_device,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: As for `open_callback`; the mm core holds the mmap lock during `mmap`.
        let (dev, vma) = unsafe { (CoreDevice::<T>::from_vdev(vdev), VmArea::from_raw(vma)) };
        from_result(|| T::mmap(dev, vma).map(|()| 0))
    }

    /// # Safety
    ///
    /// As for `open_callback`.
    unsafe extern "C" fn request_callback(vdev: *mut bindings::vfio_device, count: c_uint) {
        // SAFETY: As for `open_callback`.
        T::request(unsafe { CoreDevice::<T>::from_vdev(vdev) }, count)
    }

    /// # Safety
    ///
    /// As for `open_callback`; `buf` is a NUL-terminated string.
    unsafe extern "C" fn match_callback(
        vdev: *mut bindings::vfio_device,
        buf: *mut c_char,
    ) -> c_int {
        // SAFETY: As for `open_callback`; vfio passes the user's NUL-terminated device name.
        let (dev, name) = unsafe { (CoreDevice::<T>::from_vdev(vdev), CStr::from_char_ptr(buf)) };
        from_result(|| T::match_name(dev, name).map(c_int::from))
    }

    /// Drops the driver's data, then releases vfio-pci-core's state.
    ///
    /// # Safety
    ///
    /// Called by vfio once, when the last reference to a device of `T`'s ops table is gone.
    unsafe extern "C" fn release_callback(vdev: *mut bindings::vfio_device) {
        let container = vdev.cast::<Container<T>>();
        // SAFETY: `vdev` is at offset 0 of a `Container<T>` nobody else uses any more; `data`
        // holds a value exactly when `data_initialised` is set.
        unsafe {
            if (*container).data_initialised {
                (*container).data_initialised = false;
                (*container).data.assume_init_drop();
            }
            bindings::vfio_pci_core_release_dev(vdev);
        }
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid function, bound through `T`'s registration.
    unsafe extern "C" fn probe_callback(
        pdev: *mut bindings::pci_dev,
        _id: *const bindings::pci_device_id,
    ) -> c_int {
        from_result(|| {
            // SAFETY: The PCI core holds the function during probe.
            let pci_dev = unsafe { pci::Device::from_raw(pdev) };
            let init = T::probe(pci_dev);
            // vfio allocates with kvzalloc: the container must not need more alignment.
            crate::build_assert!(
                core::mem::align_of::<Container<T>>() <= bindings::ARCH_SLAB_MINALIGN
            );
            // SAFETY: `dev` is the bound function's device; the size covers the whole container
            // and the ops table is `'static`. vfio zeroes the allocation, so
            // `data_initialised` starts false, and calls `vfio_pci_core_init_dev` on it.
            let vdev = unsafe {
                bindings::_vfio_alloc_device(
                    core::mem::size_of::<Container<T>>(),
                    ptr::addr_of_mut!((*pdev).dev),
                    Self::ops(),
                )
            };
            let vdev = crate::error::from_err_ptr(vdev)?;
            let container = vdev.cast::<Container<T>>();
            // SAFETY: The container was just allocated and is not shared yet; `data` is its
            // final, never-moving place.
            let init_result =
                unsafe { init.__pinned_init(ptr::addr_of_mut!((*container).data).cast()) };
            if let Err(e) = init_result {
                // SAFETY: Drops the only reference; release sees `data_initialised == false`.
                unsafe { bindings::vfio_put_device(vdev) };
                return Err(e);
            }
            // SAFETY: As above, the container is not shared yet. The driver data pointer is how
            // remove finds the container again. The info and sleep hooks are `'static` tables.
            unsafe {
                if T::HAS_DEVICE_INFO || T::HAS_REGION_INFO {
                    (*container).core.info_ops = &Self::INFO_OPS;
                }
                if T::HAS_SUSPEND
                    || T::HAS_RESUME
                    || T::HAS_SET_POWER_PREPARE
                    || T::HAS_SET_POWER_DONE
                {
                    (*container).core.pm_hooks = &Self::PM_HOOKS;
                }
                (*container).data_initialised = true;
                bindings::dev_set_drvdata(ptr::addr_of_mut!((*pdev).dev), container.cast());
            }
            // SAFETY: `core` is initialised; registration publishes the device to users.
            let ret = unsafe {
                bindings::vfio_pci_core_register_device(ptr::addr_of_mut!((*container).core))
            };
            if ret != 0 {
                // SAFETY: Registration failed, so ours is the only reference.
                unsafe { bindings::vfio_put_device(vdev) };
                return Err(Error::from_errno(ret));
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core for a function whose probe succeeded.
    unsafe extern "C" fn remove_callback(pdev: *mut bindings::pci_dev) {
        // SAFETY: Probe stored the container as the driver data.
        unsafe {
            let container =
                bindings::dev_get_drvdata(ptr::addr_of_mut!((*pdev).dev)).cast::<Container<T>>();
            // Waits for users to go away, then drops the probe's reference.
            bindings::vfio_pci_core_unregister_device(ptr::addr_of_mut!((*container).core));
            bindings::vfio_put_device(ptr::addr_of_mut!((*container).core.vdev));
        }
    }
}

/// The registration of a variant driver with the PCI core: it binds a function only when the
/// function's `driver_override` names it (`PCI_DRIVER_OVERRIDE_DEVICE_VFIO(PCI_ANY_ID,
/// PCI_ANY_ID)`), leaves DMA setup to the driver (`driver_managed_dma`), and uses
/// vfio-pci-core's error handlers plus the driver's [`Driver::reset_done`]. Unregisters on drop.
pub struct Registration<T: Driver> {
    inner: crate::alloc::KBox<RegistrationInner>,
    _driver: PhantomData<T>,
}

/// The driver structure and its ID table, boxed so that their addresses never change while
/// registered.
struct RegistrationInner {
    driver: bindings::pci_driver,
    ids: [bindings::pci_device_id; 2],
}

impl<T: Driver> Registration<T> {
    /// Registers `T` as a PCI driver of `module`, whose `KBUILD_MODNAME` is `module_name`.
    pub fn new(module: &'static ThisModule, module_name: &'static CStr) -> Result<Self> {
        // SAFETY: Both structures are plain C data for which all-zeroes is valid (and means
        // "unset"); the ID table's second entry stays zero as its terminator.
        let mut inner = crate::alloc::KBox::new(
            unsafe {
                RegistrationInner {
                    driver: core::mem::zeroed(),
                    ids: core::mem::zeroed(),
                }
            },
            crate::alloc::flags::GFP_KERNEL,
        )?;
        inner.ids[0] = vfio_override_any_id();
        let ids = inner.ids.as_ptr();
        let driver = &mut inner.driver;
        driver.name = T::NAME.as_char_ptr();
        driver.id_table = ids;
        driver.probe = Some(Adapter::<T>::probe_callback);
        driver.remove = Some(Adapter::<T>::remove_callback);
        driver.err_handler = Adapter::<T>::err_handlers();
        driver.driver_managed_dma = true;
        // SAFETY: The driver structure is complete and lives in the box, which outlives the
        // registration (drop unregisters first).
        to_result(unsafe {
            bindings::__pci_register_driver(&mut inner.driver, module.0, module_name.as_char_ptr())
        })?;
        Ok(Self {
            inner,
            _driver: PhantomData,
        })
    }
}

/// The ID entry that matches any function, but only through `driver_override`.
///
/// # Examples
///
/// ```
/// use kernel::{bindings, pci, vfio::pci::vfio_override_any_id};
///
/// let id = vfio_override_any_id();
/// assert_eq!((id.vendor, id.device), (pci::ANY_ID, pci::ANY_ID));
/// assert_eq!((id.subvendor, id.subdevice), (pci::ANY_ID, pci::ANY_ID));
/// assert_eq!(id.override_only, bindings::PCI_ID_F_VFIO_DRIVER_OVERRIDE);
/// ```
pub fn vfio_override_any_id() -> bindings::pci_device_id {
    bindings::pci_device_id {
        vendor: pci::ANY_ID,
        device: pci::ANY_ID,
        subvendor: pci::ANY_ID,
        subdevice: pci::ANY_ID,
        class: 0,
        class_mask: 0,
        driver_data: 0,
        override_only: bindings::PCI_ID_F_VFIO_DRIVER_OVERRIDE,
    }
}

impl<T: Driver> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: The driver was registered by `new` and is unregistered once, here; this
        // unbinds every device (running remove) before it returns.
        unsafe { bindings::pci_unregister_driver(&mut self.inner.driver) };
    }
}

// SAFETY: The registration is only touched at creation and drop; the PCI core serialises its
// own use of the driver structure.
unsafe impl<T: Driver> Send for Registration<T> {}

// SAFETY: No method takes `&self`.
unsafe impl<T: Driver> Sync for Registration<T> {}
