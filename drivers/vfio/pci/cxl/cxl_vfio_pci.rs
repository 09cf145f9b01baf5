// SPDX-License-Identifier: GPL-2.0

//! cxl-vfio-pci: a vfio-pci variant driver for CXL.mem-capable PCI devices.
//!
//! The driver binds only through `driver_override` and registers a vfio-pci-core device that
//! behaves as vfio-pci does, plus, for a device with a CXL Device DVSEC and Mem_Capable:
//!
//! - the COMP_REGS region: an emulated copy of the HDM decoder registers, so that the VMM
//!   programs decoders without touching the host's (see [`model::comp_regs`]);
//! - CXL DVSEC virtualization in configuration space: the guest sees and writes a shadow, and
//!   only two action bits ever reach the hardware (see [`model::dvsec`]).
//!
//! With the module parameter `disable_cxl` set it never looks at CXL state at all. Any
//! detection failure leaves the device working as plain vfio-pci, with one warning.

mod detect;
mod model;

use core::sync::atomic::{AtomicBool, Ordering};
use detect::{CxlDevice, DetectError};
use kernel::{
    c_str, dev_info, dev_warn, new_mutex, pci,
    prelude::*,
    sync::Mutex,
    uaccess::{UserPtr, UserSlice},
    vfio::pci::{self as vfio_pci, CoreDevice, OpenDevice},
};
use model::{
    comp_regs,
    dvsec::{DvsecShadow, HwWrite},
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
    },
}

/// Reads `len` (1, 2 or 4) bytes of config space for the user, all ones on failure, as a
/// missing or blocked device reads.
fn user_cfg_read(pdev: &pci::Device, pos: u16, len: usize) -> u32 {
    pdev.user_read_config(pos, len).unwrap_or(!0)
}

/// `VFIO_REGION_SUBTYPE_CXL_COMP_REGS` (`include/uapi/linux/vfio.h`).
const VFIO_REGION_SUBTYPE_CXL_COMP_REGS: u32 = 2;
/// The [`vfio_pci::Driver::region_rw`] id of the COMP_REGS region.
const COMP_REGS_REGION: usize = 1;
/// Size of an extended capability header.
const PCI_EXT_CAP_HEADER_SIZE: u64 = 4;

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
    fn lock_shadows<'a>(dev: &'a CoreDevice<Self>, cxl: &CxlDevice) -> Result<ShadowGuard<'a>> {
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

    /// Sets up the CXL state of an open: shadows and the COMP_REGS region.
    fn open_cxl(dev: &OpenDevice<'_, Self>, cxl: &CxlDevice) -> Result {
        {
            let mut open = dev.data().open.lock();
            // vfio_pci_core_enable() may just have reset the device: start from now.
            dev.data().shadows_stale.store(false, Ordering::Relaxed);
            open.reset(dev.pci_dev(), cxl)?;
            open.cxl_reset_logged = false;
        }
        dev.register_region(
            u32::from(PCI_VENDOR_ID_CXL) | vfio_pci::REGION_TYPE_PCI_VENDOR_TYPE,
            VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
            cxl.layout.region_size(),
            vfio_pci::REGION_FLAG_READ | vfio_pci::REGION_FLAG_WRITE,
            COMP_REGS_REGION,
        )?;
        Ok(())
    }

    /// A read or write of the config region that overlaps the CXL Device DVSEC: the DVSEC
    /// bytes go through the shadow, in pieces that do not cross a dword, and every other byte
    /// through vfio-pci-core's own config emulation.
    fn config_rw(
        dev: &CoreDevice<Self>,
        cxl: &CxlDevice,
        buf: UserPtr,
        count: usize,
        pos: &mut i64,
        write: bool,
    ) -> Result<usize> {
        let region_start = vfio_pci::index_to_offset(vfio_pci::CONFIG_REGION_INDEX);
        let start = vfio_pci::offset_in_region(*pos as u64);
        // As vfio-pci-core: an access that does not fit the config space fails whole, before
        // any of it is done.
        if start.saturating_add(count as u64) > u64::from(dev.pci_dev().cfg_size()) {
            return Err(EFAULT);
        }
        // vfio-pci-core virtualizes every extended capability header (its next pointer):
        // reads of the DVSEC's header go there. Writes to it are the shadow's to drop.
        let header = if write { 0 } else { PCI_EXT_CAP_HEADER_SIZE };
        let (dvsec_start, dvsec_end) = (
            u64::from(cxl.dvsec) + header,
            u64::from(cxl.dvsec) + u64::from(cxl.dvsec_len),
        );
        let mut done = 0usize;
        while done < count {
            let cur = start + done as u64;
            let remaining = (count - done) as u64;
            let in_dvsec = cur >= dvsec_start && cur < dvsec_end;
            let len = if in_dvsec {
                remaining.min(4 - cur % 4).min(dvsec_end - cur)
            } else if cur < dvsec_start {
                remaining.min(dvsec_start - cur)
            } else {
                remaining
            } as usize;
            let user = buf + done;
            let n = if in_dvsec {
                match Self::dvsec_rw(dev, cxl, user, cur as u16, len, write) {
                    Ok(n) => n,
                    // What was done before stays done: report it as a short transfer.
                    Err(e) if done == 0 => return Err(e),
                    Err(_) => break,
                }
            } else {
                let mut core_pos = (region_start + cur) as i64;
                let n = if write {
                    dev.core_write(user, len, &mut core_pos)
                } else {
                    dev.core_read(user, len, &mut core_pos)
                };
                match n {
                    Ok(n) => n,
                    // Report what was done before the failure, as a short transfer.
                    Err(e) if done == 0 => return Err(e),
                    Err(_) => break,
                }
            };
            done += n;
            if n < len {
                break;
            }
        }
        *pos += done as i64;
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

    /// Whether a device-file access at `pos` of `count` bytes touches the emulated DVSEC.
    fn touches_dvsec(cxl: &CxlDevice, pos: i64, count: usize) -> bool {
        let pos = pos as u64;
        if vfio_pci::offset_to_index(pos) != vfio_pci::CONFIG_REGION_INDEX {
            return false;
        }
        let start = vfio_pci::offset_in_region(pos);
        let end = start.saturating_add(count as u64);
        let dvsec = u64::from(cxl.dvsec);
        start < dvsec + u64::from(cxl.dvsec_len) && end > dvsec
    }
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
        try_pin_init!(DeviceState {
            cxl,
            open <- new_mutex!(OpenState {
                comp_regs: KVec::new(),
                dvsec: None,
                cxl_reset_logged: false,
            }),
            shadows_stale: AtomicBool::new(false),
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

    fn reset_done(dev: &CoreDevice<Self>) {
        dev.data().shadows_stale.store(true, Ordering::Release);
    }

    fn read(dev: &CoreDevice<Self>, buf: UserPtr, count: usize, pos: &mut i64) -> Result<usize> {
        match &dev.data().cxl {
            Some(cxl) if Self::touches_dvsec(cxl, *pos, count) => {
                Self::config_rw(dev, cxl, buf, count, pos, false)
            }
            _ => dev.core_read(buf, count, pos),
        }
    }

    fn write(dev: &CoreDevice<Self>, buf: UserPtr, count: usize, pos: &mut i64) -> Result<usize> {
        match &dev.data().cxl {
            Some(cxl) if Self::touches_dvsec(cxl, *pos, count) => {
                Self::config_rw(dev, cxl, buf, count, pos, true)
            }
            _ => dev.core_write(buf, count, pos),
        }
    }

    fn region_rw(
        dev: &CoreDevice<Self>,
        id: usize,
        buf: UserPtr,
        count: usize,
        offset: u64,
        write: bool,
    ) -> Result<usize> {
        let cxl = dev.data().cxl.as_ref().ok_or(EINVAL)?;
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
