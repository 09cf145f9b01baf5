// SPDX-License-Identifier: GPL-2.0

//! cxl-vfio-pci: a vfio-pci variant driver for CXL.mem-capable PCI devices.
//!
//! The driver binds only through `driver_override` and registers a vfio-pci-core device that
//! behaves as vfio-pci does, plus, for a device with a CXL Device DVSEC and Mem_Capable:
//!
//! - the COMP_REGS region: an emulated copy of the HDM decoder registers, so that the VMM
//!   programs decoders without touching the host's (see [`model::comp_regs`]);
//! - CXL DVSEC virtualization in configuration space: the guest sees and writes a shadow, and
//!   only two action bits ever reach the hardware (see [`model::dvsec`]);
//! - the DPA region: the device memory, claimed exclusively, faulted into user mappings with
//!   the largest page size the alignment allows, revoked around every reset and power change,
//!   and scrubbed lazily for each new open (see [`dpa`]);
//! - `VFIO_DEVICE_FLAGS_CXL` and the `VFIO_DEVICE_INFO_CAP_CXL` capability in
//!   `VFIO_DEVICE_GET_INFO` (see [`model::info`]);
//! - the component register BAR: sparse mmap of what lies outside the component register
//!   block, and the block itself only ever emulated (see [`bar`]).
//!
//! With the module parameter `disable_cxl` set it never looks at CXL state at all. Any
//! detection failure leaves the device working as plain vfio-pci, with one warning.

mod bar;
mod detect;
mod dpa;
mod model;

use core::sync::atomic::{AtomicBool, Ordering};
use detect::{CxlDevice, DetectError};
use kernel::{
    c_str, dev_info, dev_warn,
    mm::virt::VmArea,
    new_condvar, new_mutex, pci,
    prelude::*,
    sync::{CondVar, Mutex},
    uaccess::{UserPtr, UserSlice},
    vfio::{
        pci::{
            self as vfio_pci, CloseDevice, CoreDevice, DeviceInfoReply, FaultResult, OpenDevice,
            RegionCaps, RegionFault, RegionInfoReply, RegionMap, Syscall,
        },
        uapi,
    },
};
use model::{
    comp_regs,
    config::Piece,
    dvsec::{DvsecShadow, HwWrite},
    info,
    regs::{
        CXL_DVSEC_CONTROL2_OFFSET, CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI,
        CXL_DVSEC_CTRL2_INITIATE_CXL_RESET, PCI_VENDOR_ID_CXL,
    },
};

module! {
    type: CxlVfioPciModule,
    name: "cxl_vfio_pci",
    author: "cxl-vfio-pci developers",
    description: "VFIO PCI variant driver for CXL.mem-capable devices",
    license: "GPL",
    params: {
        disable_cxl: bool {
            default: false,
            description: "Disable the CXL extensions: the driver then behaves as plain vfio-pci",
        },
        scrub_memory: bool {
            default: true,
            description: "Zero device memory before its first use in each open (turn off only for devices that clear their memory themselves)",
        },
    },
}

/// Reads `len` (1, 2 or 4) bytes of config space for the user, all ones on failure, as a
/// missing or blocked device reads.
fn user_cfg_read(pdev: &pci::Device, pos: u16, len: usize) -> u32 {
    pdev.user_read_config(pos, len).unwrap_or(!0)
}

/// The [`vfio_pci::Driver::region_rw`] id of the COMP_REGS region.
const COMP_REGS_REGION: usize = 1;
/// The [`vfio_pci::Driver::region_rw`] id of the DPA region.
const DPA_REGION: usize = 2;

// The pure model builds the CXL capabilities with its own copies of the UAPI values: they
// must be the header's.
const _: () = {
    assert!(info::VFIO_DEVICE_FLAGS_CXL == uapi::DEVICE_FLAGS_CXL);
    assert!(info::VFIO_DEVICE_INFO_CAP_CXL as u32 == uapi::DEVICE_INFO_CAP_CXL);
    assert!(info::VFIO_CXL_CAP_FIRMWARE_COMMITTED == uapi::CXL_CAP_FIRMWARE_COMMITTED);
    assert!(info::VFIO_CXL_CAP_CACHE_CAPABLE == uapi::CXL_CAP_CACHE_CAPABLE);
    assert!(info::VFIO_REGION_INFO_CAP_CXL_COMP_REGS as u32 == uapi::REGION_INFO_CAP_CXL_COMP_REGS);
    assert!(info::VFIO_REGION_INFO_CAP_SPARSE_MMAP as u32 == uapi::REGION_INFO_CAP_SPARSE_MMAP);
    assert!(info::VFIO_REGION_INFO_FLAG_MMAP == uapi::REGION_INFO_FLAG_MMAP);
};

/// Per-device state.
#[pin_data]
struct DeviceState {
    /// What probe found; `None` for plain vfio-pci behaviour.
    cxl: Option<CxlDevice>,
    /// The guest-visible register shadows of the current open.
    #[pin]
    open: Mutex<OpenState>,
    /// Set by a reset of the device: the shadows are rebuilt at the next access. (The reset
    /// path cannot take `open`: it may run while user config accesses are blocked, which an
    /// access holding `open` could be waiting for.)
    shadows_stale: AtomicBool,
    /// The DPA region's state. Taken after vfio-pci-core's `memory_lock` when both are held.
    #[pin]
    dpa: Mutex<dpa::DpaState>,
    /// Signalled, under `dpa`, whenever a reset or power change of the DPA region ends (or the
    /// region closes): accesses that found one under way wait for it.
    #[pin]
    dpa_settled: CondVar,
    /// Config-space byte ranges `(start, len)` whose writes may change the function's power
    /// state: vfio-pci-core revokes through `set_power_prepare` when they really do, and the
    /// driver restores after them.
    power_regs: [Option<(u16, u16)>; 1],
}

/// Shadows that live from one open (or reset) to the next.
struct OpenState {
    /// The COMP_REGS region's registers, from the capability array to the HDM block's end.
    comp_regs: KVec<u32>,
    /// The CXL Device DVSEC as the guest sees it.
    dvsec: Option<DvsecShadow>,
    /// Whether this open already logged an unsupported CXL Reset request (logged once per
    /// open so that a guest cannot flood the log).
    cxl_reset_logged: bool,
    /// Region index of COMP_REGS in this open.
    comp_regs_index: u32,
    /// Region index of the DPA region in this open, if the device has one.
    dpa_index: Option<u32>,
}

/// The variant driver.
struct CxlVfioPci;

/// The locked shadows.
type ShadowGuard<'a> =
    kernel::sync::lock::Guard<'a, OpenState, kernel::sync::lock::mutex::MutexBackend>;

impl OpenState {
    /// Resets both shadows from the hardware and the firmware configuration, at open and
    /// after a device reset: a new user never sees what the previous one programmed.
    fn reset(&mut self, pdev: &pci::Device, cxl: &CxlDevice) -> Result {
        let mut shadow = KVec::new();
        shadow.extend_with(cxl.layout.region_dwords(), 0, GFP_KERNEL)?;
        comp_regs::init_shadow(&mut shadow, &cxl.snapshot, &cxl.layout);
        self.comp_regs = shadow;
        let dvsec = DvsecShadow::new(cxl.dvsec, &mut |pos, len| user_cfg_read(pdev, pos, len));
        self.dvsec = Some(dvsec.map_err(|_| EIO)?);
        Ok(())
    }
}

impl CxlVfioPci {
    /// Locks the shadows, first rebuilding them if the device was reset since they were built.
    pub(crate) fn lock_shadows<'a>(
        dev: &'a CoreDevice<Self>,
        cxl: &CxlDevice,
    ) -> Result<ShadowGuard<'a>> {
        let mut open = dev.data().open.lock();
        if dev.data().shadows_stale.swap(false, Ordering::Acquire) {
            if let Err(e) = open.reset(dev.pci_dev(), cxl) {
                // Still stale: try again at the next access rather than serve a half rebuild.
                dev.data().shadows_stale.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(open)
    }

    /// Sets up the CXL state of an open: shadows, the DPA region (claiming its range) and the
    /// COMP_REGS region.
    fn open_cxl(dev: &OpenDevice<'_, Self>, cxl: &CxlDevice) -> Result {
        let region_type = u32::from(PCI_VENDOR_ID_CXL) | vfio_pci::REGION_TYPE_PCI_VENDOR_TYPE;
        let memory = match &cxl.firmware {
            Some(fw) => Some((dpa::claim(dev.pci_dev(), fw)?, fw.size)),
            None => None,
        };
        let dpa_index = match &memory {
            Some((_, size)) => Some(dev.register_region(
                region_type,
                uapi::REGION_SUBTYPE_CXL,
                usize::try_from(*size).map_err(|_| EINVAL)?,
                vfio_pci::REGION_FLAG_READ
                    | vfio_pci::REGION_FLAG_WRITE
                    | vfio_pci::REGION_FLAG_MMAP,
                DPA_REGION,
            )?),
            None => None,
        };
        let comp_regs_index = dev.register_region(
            region_type,
            uapi::REGION_SUBTYPE_CXL_COMP_REGS,
            cxl.layout.region_size(),
            vfio_pci::REGION_FLAG_READ | vfio_pci::REGION_FLAG_WRITE,
            COMP_REGS_REGION,
        )?;
        {
            let mut open = dev.data().open.lock();
            // vfio_pci_core_enable() may just have reset the device: start from now.
            dev.data().shadows_stale.store(false, Ordering::Relaxed);
            open.reset(dev.pci_dev(), cxl)?;
            open.cxl_reset_logged = false;
            open.comp_regs_index = comp_regs_index;
            open.dpa_index = dpa_index;
        }
        if let (Some((mem, _)), Some(index)) = (memory, dpa_index) {
            dpa::open(&dev.syscall(), mem, index)?;
        }
        Ok(())
    }

    /// `VFIO_DEVICE_INFO_CAP_CXL` of the current open.
    fn cxl_cap(dev: &CoreDevice<Self>, cxl: &CxlDevice) -> info::CxlCap {
        let (comp_regs_region_index, dpa_index) = {
            let open = dev.data().open.lock();
            (open.comp_regs_index, open.dpa_index)
        };
        let mut flags = 0;
        if cxl.firmware.is_some() {
            flags |= info::VFIO_CXL_CAP_FIRMWARE_COMMITTED;
        }
        if cxl.layout.cache_capable() {
            flags |= info::VFIO_CXL_CAP_CACHE_CAPABLE;
        }
        info::CxlCap {
            bar: cxl.comp_bar as u8,
            flags,
            hdm_regs_offset: cxl.cm_offset(),
            dpa_region_index: dpa_index.unwrap_or(info::NO_REGION),
            comp_regs_region_index,
        }
    }

    /// Decodes a read or write of `count` bytes at position `pos` of the device file, once:
    /// which region, which offset in it, and what of the driver's it touches.
    fn decode(
        dev: &CoreDevice<Self>,
        cxl: &CxlDevice,
        pos: i64,
        count: usize,
        write: bool,
    ) -> FileAccess {
        let pos = pos as u64;
        let (index, offset) = (
            vfio_pci::offset_to_index(pos),
            vfio_pci::offset_in_region(pos),
        );
        if index == vfio_pci::CONFIG_REGION_INDEX {
            let end = offset.saturating_add(count as u64);
            let dvsec = cxl.config_map().touches(offset, count as u64, write);
            let power = write
                && dev.data().power_regs.iter().flatten().any(|&(reg, len)| {
                    offset < u64::from(reg) + u64::from(len) && end > u64::from(reg)
                });
            if dvsec || power {
                return FileAccess::Config {
                    offset,
                    dvsec,
                    power,
                };
            }
        } else if index == cxl.comp_bar && bar::touches_block(dev, cxl, offset, count) {
            return FileAccess::Block { offset };
        }
        FileAccess::Core
    }

    /// A read or write of the config region that touches a CXL DVSEC: the Device DVSEC's bytes
    /// go through the shadow, writes to the other CXL DVSECs are dropped, and every other byte
    /// goes through vfio-pci-core's own config emulation (see [`model::config`]).
    fn config_rw(
        dev: &CoreDevice<Self>,
        cxl: &CxlDevice,
        buf: UserPtr,
        count: usize,
        start: u64,
        write: bool,
    ) -> Result<usize> {
        let region_start = vfio_pci::index_to_offset(vfio_pci::CONFIG_REGION_INDEX);
        // As vfio-pci-core: an access that does not fit the config space fails whole, before
        // any of it is done.
        if start.saturating_add(count as u64) > u64::from(dev.pci_dev().cfg_size()) {
            return Err(EFAULT);
        }
        let map = cxl.config_map();
        let mut done = 0usize;
        while done < count {
            let cur = start + done as u64;
            let (piece, len) = map.piece(cur, (count - done) as u64, write);
            let len = len as usize;
            let user = buf + done;
            let step = match piece {
                Piece::Shadow => Self::dvsec_rw(dev, cxl, user, cur as u16, len, write),
                // A host-owned CXL DVSEC: as a read-only register, the write changes nothing.
                Piece::Dropped => Ok(len),
                Piece::Core => {
                    let mut core_pos = (region_start + cur) as i64;
                    if write {
                        dev.core_write(user, len, &mut core_pos)
                    } else {
                        dev.core_read(user, len, &mut core_pos)
                    }
                }
            };
            let n = match step {
                Ok(n) => n,
                // What was done before stays done: report it as a short transfer.
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done += n;
            if n < len {
                break;
            }
        }
        Ok(done)
    }

    /// `len` (1 to 4, inside one dword) bytes of the DVSEC at config position `at`.
    ///
    /// User memory is copied outside the shadow lock: a fault on the user buffer never waits
    /// for it.
    fn dvsec_rw(
        dev: &CoreDevice<Self>,
        cxl: &CxlDevice,
        buf: UserPtr,
        at: u16,
        len: usize,
        write: bool,
    ) -> Result<usize> {
        let pdev = dev.pci_dev();
        // As vfio-pci-core around every region access: the function must be resumed, and
        // config accesses on behalf of the user wait while a reset blocks them.
        let _pm = pdev.runtime_pm_get().map_err(|_| EIO)?;
        let mut hw_read = |pos: u16, size: usize| user_cfg_read(pdev, pos, size);
        // The shadow takes 1-, 2- and 4-byte accesses: split a 3-byte one.
        let sizes: &[usize] = match len {
            3 => &[2, 1],
            _ => core::slice::from_ref(&len),
        };
        let mut bytes = [0u8; 4];
        if write {
            UserSlice::new(buf, len)
                .reader()
                .read_slice(&mut bytes[..len])?;
        }
        let mut cxl_reset_requested = false;
        {
            let mut open = Self::lock_shadows(dev, cxl)?;
            let state = &mut *open;
            let shadow = state.dvsec.as_mut().ok_or(EIO)?;
            let mut off = 0usize;
            for &size in sizes {
                let pos = at + off as u16;
                let mut value = [0u8; 4];
                if write {
                    value[..size].copy_from_slice(&bytes[off..off + size]);
                    let action = shadow
                        .write(pos, size, u32::from_le_bytes(value))
                        .map_err(|_| EINVAL)?;
                    for hw in action.hw_writes() {
                        Self::forward(pdev, shadow.base(), hw)?;
                    }
                    if action.cxl_reset_requested && !state.cxl_reset_logged {
                        state.cxl_reset_logged = true;
                        cxl_reset_requested = true;
                    }
                } else {
                    let v = shadow.read(pos, size, &mut hw_read).map_err(|_| EINVAL)?;
                    bytes[off..off + size].copy_from_slice(&v.to_le_bytes()[..size]);
                }
                off += size;
            }
        }
        if write {
            if cxl_reset_requested {
                dev_warn!(
                    pdev.as_dev(),
                    "guest asked for a CXL Reset: not supported, not forwarded\n"
                );
            }
        } else {
            UserSlice::new(buf, len)
                .writer()
                .write_slice(&bytes[..len])?;
        }
        Ok(len)
    }

    /// Carries out an action bit that the DVSEC shadow forwards to the device. Control2 is
    /// read-modify-written so that the host's own Control2 settings stay as they are; the
    /// Status2 bit is write-1-to-clear and is written alone.
    fn forward(pdev: &pci::Device, dvsec: u16, hw: HwWrite) -> Result {
        let value = if hw.pos == dvsec + CXL_DVSEC_CONTROL2_OFFSET {
            let actions = CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI | CXL_DVSEC_CTRL2_INITIATE_CXL_RESET;
            (pdev.user_read_config(hw.pos, 2)? as u16 & !actions) | hw.value
        } else {
            hw.value
        };
        pdev.user_write_config_u16(hw.pos, value)
    }
}

/// A read or write of the device file, decoded once from its position (see
/// [`CxlVfioPci::decode`]).
enum FileAccess {
    /// Config space at `offset`: through the CXL DVSEC emulation when `dvsec`, with the DPA
    /// region restored after it when `power` (a write to PM Control).
    Config {
        offset: u64,
        dvsec: bool,
        power: bool,
    },
    /// The component register BAR at `offset`, touching the component block.
    Block { offset: u64 },
    /// Nothing of the driver's: vfio-pci-core's alone.
    Core,
}

/// Advances the file position by what a transfer did.
fn advance(pos: &mut i64, done: Result<usize>) -> Result<usize> {
    let n = done?;
    *pos += n as i64;
    Ok(n)
}

#[vtable]
impl vfio_pci::Driver for CxlVfioPci {
    type Data = DeviceState;
    const NAME: &'static CStr = c_str!("cxl-vfio-pci");

    fn probe(pdev: &pci::Device) -> impl PinInit<DeviceState, Error> {
        let cxl = if *module_parameters::disable_cxl.value() {
            dev_info!(pdev.as_dev(), "CXL extensions disabled (disable_cxl=1)\n");
            None
        } else {
            match detect::detect(pdev) {
                Ok(cxl) => {
                    dev_info!(
                        pdev.as_dev(),
                        "CXL Device DVSEC at {:#x}; CXL.mem registers in BAR{} at {:#x}; {} HDM decoder(s){}\n",
                        cxl.dvsec,
                        cxl.comp_bar,
                        cxl.cm_offset(),
                        cxl.layout.decoder_count(),
                        match &cxl.firmware {
                            Some(_) => ", decoder 0 committed by firmware",
                            None => "",
                        }
                    );
                    Some(cxl)
                }
                Err(DetectError::NotCxl) => {
                    dev_info!(pdev.as_dev(), "no CXL Device DVSEC: plain vfio-pci\n");
                    None
                }
                Err(e) => {
                    dev_warn!(pdev.as_dev(), "CXL disabled: {}; plain vfio-pci\n", e);
                    None
                }
            }
        };
        // PM Control/Status: its writes may change the power state, with no PCI core callback
        // (vfio-pci-core's set_power hooks revoke). (An FLR requested through PCIe Device
        // Control or AF Control needs no such care: vfio-pci-core starts it with
        // `pci_try_reset_function` under `memory_lock`, so `reset_prepare` revokes.)
        let power_regs = [pdev.pm_cap().map(|cap| (cap + pci::PM_CTRL, 2))];
        try_pin_init!(DeviceState {
            cxl,
            open <- new_mutex!(OpenState {
                comp_regs: KVec::new(),
                dvsec: None,
                cxl_reset_logged: false,
                comp_regs_index: 0,
                dpa_index: None,
            }),
            shadows_stale: AtomicBool::new(false),
            dpa <- new_mutex!(dpa::DpaState::new()),
            dpa_settled <- new_condvar!("cxl_vfio_pci::dpa_settled"),
            power_regs,
        })
    }

    fn open_device(dev: &OpenDevice<'_, Self>) -> Result {
        dev.enable()?;
        if let Some(cxl) = &dev.data().cxl {
            if let Err(e) = Self::open_cxl(dev, cxl) {
                dev.disable();
                return Err(e);
            }
        }
        dev.finish_enable();
        Ok(())
    }

    fn close_device(dev: &CloseDevice<'_, Self>) {
        // Keeps the function (and the root port above it) powered from here to the restore:
        // vfio-pci-core drops its runtime PM reference at the end of its close, and a resume
        // after that would cost a D3hot exit of both, with the 100 ms wait for the link
        // (PCIe r6.0 6.6.1), on every close.
        let _pm = dev.pci_dev().runtime_pm_get();
        // No user mapping is left (each holds the device file); accesses stop here, before
        // vfio-pci-core disables and resets the device.
        dpa::shut(dev);
        dev.core_close_device();
        dpa::close(dev);
        // vfio-pci-core reset the function, which may have cleared decoder 0.
        dpa::restore_closed(dev);
    }

    fn reset_prepare(dev: &CoreDevice<Self>) {
        dpa::begin_change(dev);
    }

    fn reset_done(dev: &CoreDevice<Self>) {
        dev.data().shadows_stale.store(true, Ordering::Release);
        dpa::end_change(dev);
        dpa::restore_closed(dev);
    }

    fn error_detected(dev: &CoreDevice<Self>) {
        dpa::error_detected(dev);
    }

    fn suspend(dev: &CoreDevice<Self>) -> Result {
        // The function may lose power, which clears decoder 0 as a reset does.
        dpa::begin_change(dev);
        Ok(())
    }

    fn set_power_prepare(dev: &CoreDevice<Self>) {
        // Only for a real change: a write of the current state (clearing PME_Status) keeps the
        // mappings.
        dpa::begin_change(dev);
    }

    fn set_power_done(dev: &CoreDevice<Self>) {
        dpa::end_change(dev);
    }

    fn resume(dev: &CoreDevice<Self>) -> Result {
        // As after a reset: the region waits for a restore, which the next access does (a
        // resume must not wait for the media); a closed device is restored now.
        Self::reset_done(dev);
        Ok(())
    }

    fn error_resumed(dev: &CoreDevice<Self>) {
        dev.data().shadows_stale.store(true, Ordering::Release);
        dpa::error_resumed(dev);
    }

    fn ioctl(dev: &mut Syscall<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        let Some(cxl) = &dev.data().cxl else {
            return dev.core_ioctl(cmd, arg);
        };
        match cmd {
            // None may target the component register block.
            uapi::DEVICE_IOEVENTFD => bar::ioeventfd(dev, cxl, arg),
            // vfio-pci-core resets under its memory_lock held for write, and the PCI core
            // calls reset_prepare (revoke) and reset_done around the reset: restore now, so
            // that the user's next access need not.
            uapi::DEVICE_RESET | uapi::DEVICE_PCI_HOT_RESET => {
                let ret = dev.core_ioctl(cmd, arg);
                dpa::ensure_active(dev);
                ret
            }
            _ => dev.core_ioctl(cmd, arg),
        }
    }

    fn device_feature(
        dev: &mut Syscall<'_, Self>,
        flags: u32,
        arg: UserPtr,
        argsz: usize,
    ) -> Result {
        let power_change = dev.data().cxl.is_some()
            && flags & uapi::DEVICE_FEATURE_SET != 0
            && flags & uapi::DEVICE_FEATURE_PROBE == 0
            && matches!(
                flags & uapi::DEVICE_FEATURE_MASK,
                uapi::DEVICE_FEATURE_LOW_POWER_ENTRY
                    | uapi::DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP
                    | uapi::DEVICE_FEATURE_LOW_POWER_EXIT
            );
        if !power_change {
            return dev.core_device_feature(flags, arg, argsz);
        }
        dpa::begin_change_exclusive(dev);
        let ret = dev.core_device_feature(flags, arg, argsz);
        dpa::end_change(dev);
        dpa::ensure_active(dev);
        ret
    }

    fn read(
        dev: &mut Syscall<'_, Self>,
        buf: UserPtr,
        count: usize,
        pos: &mut i64,
    ) -> Result<usize> {
        let core = dev.device();
        let Some(cxl) = &core.data().cxl else {
            return dev.core_read(buf, count, pos);
        };
        match Self::decode(core, cxl, *pos, count, false) {
            FileAccess::Config {
                offset,
                dvsec: true,
                ..
            } => advance(pos, Self::config_rw(core, cxl, buf, count, offset, false)),
            FileAccess::Block { offset } => {
                advance(pos, bar::rw(core, cxl, buf, count, offset, false))
            }
            _ => dev.core_read(buf, count, pos),
        }
    }

    fn mmap(dev: &CoreDevice<Self>, vma: &VmArea) -> Result {
        match &dev.data().cxl {
            Some(cxl) if !bar::mmap_allowed(dev, cxl, vma) => Err(EINVAL),
            _ => dev.core_mmap(vma),
        }
    }

    fn write(
        dev: &mut Syscall<'_, Self>,
        buf: UserPtr,
        count: usize,
        pos: &mut i64,
    ) -> Result<usize> {
        let core = dev.device();
        let Some(cxl) = &core.data().cxl else {
            return dev.core_write(buf, count, pos);
        };
        let access = Self::decode(core, cxl, *pos, count, true);
        // A write to PM Control: vfio-pci-core calls set_power_prepare() and set_power_done()
        // around a real change of the power state (which revoke); restore after it.
        let power_write = matches!(access, FileAccess::Config { power: true, .. });
        let ret = match access {
            FileAccess::Config {
                offset,
                dvsec: true,
                ..
            } => advance(pos, Self::config_rw(core, cxl, buf, count, offset, true)),
            FileAccess::Block { offset } => {
                advance(pos, bar::rw(core, cxl, buf, count, offset, true))
            }
            _ => dev.core_write(buf, count, pos),
        };
        if power_write {
            dpa::ensure_active(dev);
        }
        ret
    }

    fn region_rw(
        dev: &mut Syscall<'_, Self>,
        id: usize,
        buf: UserPtr,
        count: usize,
        offset: u64,
        write: bool,
    ) -> Result<usize> {
        let cxl = dev.data().cxl.as_ref().ok_or(EINVAL)?;
        if id == DPA_REGION {
            return dpa::rw(dev, buf, count, offset, write);
        }
        if id != COMP_REGS_REGION {
            return Err(EINVAL);
        }
        // Single aligned dwords only; anything else changes nothing.
        let dword = cxl.layout.check_access(offset, count).map_err(|_| EINVAL)?;
        // User memory is copied outside the shadow lock.
        let user = UserSlice::new(buf, 4);
        if write {
            let value = user.reader().read::<u32>()?;
            let mut open = Self::lock_shadows(dev, cxl)?;
            comp_regs::write(&mut open.comp_regs, &cxl.layout, dword, value);
        } else {
            let value = comp_regs::read(&Self::lock_shadows(dev, cxl)?.comp_regs, dword);
            user.writer().write(&value)?;
        }
        Ok(4)
    }

    fn region_mmap(dev: &CoreDevice<Self>, id: usize, map: &RegionMap<'_>) -> Result {
        match id {
            DPA_REGION => dpa::mmap(dev, map),
            _ => Err(EINVAL),
        }
    }

    fn device_info(dev: &CoreDevice<Self>, reply: &mut DeviceInfoReply<'_>) -> Result {
        let Some(cxl) = &dev.data().cxl else {
            return Ok(());
        };
        reply.set_flags(reply.flags() | info::VFIO_DEVICE_FLAGS_CXL);
        reply.add_cap(&Self::cxl_cap(dev, cxl).to_bytes(0))
    }

    fn region_info(dev: &CoreDevice<Self>, reply: &mut RegionInfoReply<'_>) -> Result {
        match &dev.data().cxl {
            Some(cxl) if reply.index() == cxl.comp_bar => bar::region_info(dev, cxl, reply),
            _ => Ok(()),
        }
    }

    fn region_info_caps(dev: &CoreDevice<Self>, id: usize, caps: &mut RegionCaps<'_>) -> Result {
        match (&dev.data().cxl, id) {
            (Some(cxl), COMP_REGS_REGION) => caps.add(&bar::comp_regs_cap(cxl)),
            _ => Ok(()),
        }
    }

    fn region_fault(
        dev: &mut Syscall<'_, Self>,
        id: usize,
        fault: &RegionFault<'_>,
    ) -> FaultResult {
        match id {
            DPA_REGION => dpa::fault(dev, fault),
            _ => FaultResult::SIGBUS,
        }
    }
}

struct CxlVfioPciModule {
    _driver: vfio_pci::Registration<CxlVfioPci>,
}

impl kernel::Module for CxlVfioPciModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _driver: vfio_pci::Registration::new(module, c_str!("cxl_vfio_pci"))?,
        })
    }
}
