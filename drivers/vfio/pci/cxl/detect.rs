// SPDX-License-Identifier: GPL-2.0

//! CXL detection at bind: the CXL Device DVSEC, the component registers, the HDM decoder
//! capability, media readiness, and a snapshot of the CXL.mem register area.

use crate::model::{
    caparray::{self, CapError, DvsecHeader},
    comp_regs::{firmware_decoder, FirmwareDecoder, HdmLayout},
    config,
    dvsec::{DvsecError, DvsecShadow},
    regs::*,
    window,
};
use core::fmt;
use kernel::{
    acpi::{self, cedt},
    delay::msleep,
    dev_warn, pci,
    prelude::*,
    time::{ktime_ms_delta, Ktime},
};

/// Mem_Info_Valid must be set within this time (CXL 3.1 8.1.3.8.2).
const MEM_INFO_VALID_TIMEOUT_MS: i64 = 1000;
/// Mem_Active may take this long after Mem_Info_Valid (the CXL core's default media timeout).
const MEM_ACTIVE_TIMEOUT_MS: i64 = 60_000;
/// Poll period of the media wait.
const MEDIA_POLL_MS: u32 = 10;
/// DVSEC Range Size Low: Memory_Info_Valid.
const CXL_DVSEC_MEM_INFO_VALID: u32 = 1 << 0;
/// DVSEC Range Size Low: Memory_Active.
const CXL_DVSEC_MEM_ACTIVE: u32 = 1 << 1;

/// Why a device is driven as plain vfio-pci.
pub(crate) enum DetectError {
    /// No CXL Device DVSEC: not a CXL device at all (not worth a warning).
    NotCxl,
    /// The Device DVSEC does not advertise Mem_Capable.
    NotMemCapable,
    /// A register layout the driver cannot use.
    Layout(CapError),
    /// The Register Locator DVSEC is missing.
    NoRegisterLocator,
    /// The component registers could not be mapped or enabled.
    Map(Error),
    /// A DVSEC range did not report Mem_Info_Valid and Mem_Active in time.
    MediaNotReady { range: u16, info_valid: bool },
    /// Out of memory for the snapshot.
    NoMemory,
    /// The CXL Device DVSEC cannot be emulated (too short, say).
    Dvsec(DvsecError),
    /// Config reads return all ones: the function does not answer.
    NotResponding,
}

impl fmt::Display for DetectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotCxl => write!(f, "no CXL Device DVSEC"),
            Self::NotMemCapable => write!(f, "the CXL Device DVSEC does not set Mem_Capable"),
            Self::Layout(e) => write!(f, "unusable CXL register layout: {e:?}"),
            Self::NoRegisterLocator => write!(f, "no CXL Register Locator DVSEC"),
            Self::Map(e) => write!(f, "cannot map the component registers: {e:?}"),
            Self::MediaNotReady { range, info_valid } => write!(
                f,
                "DVSEC range {range}: {} not set in time",
                if *info_valid {
                    "Mem_Active"
                } else {
                    "Mem_Info_Valid"
                }
            ),
            Self::NoMemory => write!(f, "out of memory"),
            Self::Dvsec(e) => write!(f, "unusable CXL Device DVSEC: {e:?}"),
            Self::NotResponding => write!(f, "the device does not answer config reads"),
        }
    }
}

impl From<CapError> for DetectError {
    fn from(e: CapError) -> Self {
        Self::Layout(e)
    }
}

/// What probe found out about a CXL device. Never changes after probe.
pub(crate) struct CxlDevice {
    /// Configuration-space offset of the CXL Device DVSEC.
    pub(crate) dvsec: u16,
    /// Its length in bytes.
    pub(crate) dvsec_len: u16,
    /// BAR holding the component register block.
    pub(crate) comp_bar: u32,
    /// Offset of the component register block in that BAR.
    pub(crate) comp_offset: u64,
    /// Where the HDM decoders are and what the device supports.
    pub(crate) layout: HdmLayout,
    /// The CXL.mem area from the capability array to the end of the HDM block, as read at
    /// probe with 32-bit accesses.
    pub(crate) snapshot: KVec<u32>,
    /// Decoder 0 as platform firmware committed it, if it did.
    pub(crate) firmware: Option<FirmwareDecoder>,
    /// The whole component register block (64 KiB, or up to the BAR's end), as read at probe
    /// with 32-bit accesses.
    pub(crate) block_regs: KVec<u32>,
    /// The DVSEC Control register as firmware left it (its Mem_Enable is restored after a
    /// reset).
    pub(crate) firmware_dvsec_control: u16,
    /// Every other CXL DVSEC (offset, length): the host's, read-only to the user.
    pub(crate) host_dvsecs: KVec<(u16, u16)>,
}

impl CxlDevice {
    /// Offset in the component BAR of the CXL.mem area (what `hdm_regs_offset` reports).
    pub(crate) fn cm_offset(&self) -> u64 {
        self.comp_offset + CXL_CM_OFFSET as u64
    }

    /// The CXL DVSECs of the config space, as [`config::ConfigMap`] handles them.
    pub(crate) fn config_map(&self) -> config::ConfigMap<'_> {
        config::ConfigMap {
            device: (self.dvsec, self.dvsec_len),
            host: &self.host_dvsecs,
        }
    }
}

/// Reads `len` (1, 2 or 4) bytes of configuration space; all ones when the read fails, as a
/// missing device reads.
fn cfg_read(pdev: &pci::Device, pos: u16, len: usize) -> u32 {
    let value = match len {
        1 => pdev.read_config_u8(pos).map(u32::from),
        2 => pdev.read_config_u16(pos).map(u32::from),
        _ => pdev.read_config_u32(pos),
    };
    value.unwrap_or(!0)
}

/// Finds the CXL Device DVSEC and the component registers, waits for the media, and snapshots
/// the HDM decoder registers.
pub(crate) fn detect(pdev: &pci::Device) -> Result<CxlDevice, DetectError> {
    let dvsec = pdev
        .find_dvsec(PCI_VENDOR_ID_CXL, CXL_DVSEC_PCIE_DEVICE)
        .ok_or(DetectError::NotCxl)?;
    let mut read = |pos: u16, len: usize| cfg_read(pdev, pos, len);
    let header = DvsecHeader::read(dvsec, PCI_VENDOR_ID_CXL, CXL_DVSEC_PCIE_DEVICE, &mut read)?;
    let cap = read(dvsec + CXL_DVSEC_CAPABILITY_OFFSET, 2) as u16;
    if cap & CXL_DVSEC_CAP_MEM_CAPABLE == 0 {
        return Err(DetectError::NotMemCapable);
    }
    let cache_capable = cap & CXL_DVSEC_CAP_CACHE_CAPABLE != 0;
    let firmware_dvsec_control = read(dvsec + CXL_DVSEC_CONTROL_OFFSET, 2) as u16;
    // Every open builds this shadow: a DVSEC it cannot take must fail here, not at open.
    DvsecShadow::new(dvsec, &mut read).map_err(DetectError::Dvsec)?;

    let regloc = pdev
        .find_dvsec(PCI_VENDOR_ID_CXL, CXL_DVSEC_REG_LOCATOR)
        .ok_or(DetectError::NoRegisterLocator)?;
    let block = caparray::find_component_regs(regloc, &mut read)?;

    await_media(pdev, dvsec, cap)?;

    // The registers decode only with memory space enabled; vfio-pci-core enables the device
    // again at open, so only the snapshot needs it now.
    let _mem = pdev.enable_mem().map_err(DetectError::Map)?;
    // The whole block as the BAR holds it (up to 64 KiB): reads of it through the BAR region
    // are served from this snapshot, and its CXL.mem area is what COMP_REGS emulates.
    let bar_len = pdev
        .bar(block.bir.into())
        .map(|bar| bar.len())
        .ok_or(DetectError::Map(EINVAL))?;
    let block_len = bar_len
        .saturating_sub(block.offset)
        .min(CXL_COMPONENT_REG_BLOCK_SIZE as u64) as usize;
    if block_len < CXL_CM_OFFSET + CXL_CM_SIZE {
        return Err(DetectError::Map(EINVAL));
    }
    let regs = pdev
        .iomap_range(block.bir.into(), block.offset, block_len)
        .map_err(DetectError::Map)?;
    // 32-bit accesses only: some implementations (QEMU's among them) drop wider ones.
    let mut block_regs =
        KVec::with_capacity(block_len / 4, GFP_KERNEL).map_err(|_| DetectError::NoMemory)?;
    for dword in 0..block_len / 4 {
        let value = regs.read32(dword * 4).map_err(DetectError::Map)?;
        block_regs
            .push(value, GFP_KERNEL)
            .map_err(|_| DetectError::NoMemory)?;
    }
    let area = &block_regs[CXL_CM_OFFSET / 4..(CXL_CM_OFFSET + CXL_CM_SIZE) / 4];
    let layout = HdmLayout::from_cm_area(area, cache_capable)?;
    // Keep what the COMP_REGS region shows: the capability array up to the HDM block's end.
    let mut snapshot = KVec::new();
    snapshot
        .extend_from_slice(
            area.get(..layout.region_dwords())
                .ok_or(DetectError::NoMemory)?,
            GFP_KERNEL,
        )
        .map_err(|_| DetectError::NoMemory)?;
    let firmware = firmware_decoder(&snapshot, &layout).filter(|fw| {
        let ctrl = snapshot
            .get(layout.hdm_dword(cxl_hdm_decoder0_ctrl_offset(0)))
            .copied()
            .unwrap_or(!0);
        let committed = window::Committed {
            base: fw.base,
            size: fw.size,
            iw: (ctrl & CXL_HDM_DECODER0_CTRL_IW_MASK) >> 4,
        };
        let windows = cxl_windows(pdev);
        let capacity = dvsec_capacity(dvsec, cap, &mut read);
        let host_bridge = pdev
            .host_bridge_uid()
            .and_then(|uid| u32::try_from(uid).ok());
        match window::check(committed, &windows, host_bridge, capacity) {
            Ok(()) => true,
            Err(why) => {
                dev_warn!(
                    pdev.as_dev(),
                    "no DPA region: decoder 0 [mem {:#x}-{:#x}] refused: {}\n",
                    fw.base,
                    fw.base.saturating_add(fw.size).saturating_sub(1),
                    why
                );
                false
            }
        }
    });
    let host_dvsecs = host_dvsecs(pdev, dvsec)?;
    Ok(CxlDevice {
        dvsec,
        dvsec_len: header.length,
        comp_bar: block.bir.into(),
        comp_offset: block.offset,
        layout,
        snapshot,
        firmware,
        firmware_dvsec_control,
        block_regs,
        host_dvsecs,
    })
}

/// The CXL Fixed Memory Windows the platform describes (ACPI CEDT); none without a CEDT or
/// with one the driver cannot parse.
fn cxl_windows(pdev: &pci::Device) -> KVec<cedt::Window> {
    let mut windows = KVec::new();
    let Ok(table) = acpi::copy_table(&cedt::SIGNATURE) else {
        return windows;
    };
    let mut full = false;
    let parsed = cedt::for_each_window(&table, &mut |w| {
        full |= windows.push(w, GFP_KERNEL).is_err();
    });
    if parsed.is_err() || full {
        dev_warn!(pdev.as_dev(), "cannot read the ACPI CEDT: {:?}\n", parsed);
        return KVec::new();
    }
    windows
}

/// The device memory the CXL Device DVSEC's ranges report (HDM_Count of them, 1 or 2), in
/// bytes.
fn dvsec_capacity(dvsec: u16, cap: u16, read: &mut impl FnMut(u16, usize) -> u32) -> u64 {
    let ranges = match (cap & CXL_DVSEC_CAP_HDM_COUNT_MASK) >> 4 {
        2 => 2,
        _ => 1,
    };
    let offsets = [
        (
            CXL_DVSEC_RANGE1_SIZE_HIGH_OFFSET,
            CXL_DVSEC_RANGE1_SIZE_LOW_OFFSET,
        ),
        (
            CXL_DVSEC_RANGE2_SIZE_HIGH_OFFSET,
            CXL_DVSEC_RANGE2_SIZE_LOW_OFFSET,
        ),
    ];
    offsets
        .iter()
        .take(ranges)
        .map(|&(hi, lo)| {
            (u64::from(read(dvsec + hi, 4)) << 32) | u64::from(read(dvsec + lo, 4) & 0xf000_0000)
        })
        .fold(0u64, u64::saturating_add)
}

/// Every CXL DVSEC but the Device DVSEC at `device`: offset and length each.
fn host_dvsecs(pdev: &pci::Device, device: u16) -> Result<KVec<(u16, u16)>, DetectError> {
    let mut found = KVec::new();
    let mut pos = 0;
    while let Some(at) = pdev.find_next_ext_capability(pos, pci::EXT_CAP_ID_DVSEC) {
        pos = at;
        // DVSEC Header 1: vendor in bits 15:0, length in bits 31:20.
        let header1 = cfg_read(pdev, at + 4, 4);
        let len = (header1 >> 20) as u16;
        if header1 & 0xffff == u32::from(PCI_VENDOR_ID_CXL) && at != device && len != 0 {
            found
                .push((at, len), GFP_KERNEL)
                .map_err(|_| DetectError::NoMemory)?;
        }
    }
    Ok(found)
}

/// Waits until every DVSEC range reports valid memory information and active media, as the
/// CXL core's `cxl_await_range_active()` does.
fn await_media(pdev: &pci::Device, dvsec: u16, cap: u16) -> Result<(), DetectError> {
    // HDM_Count: how many DVSEC ranges the device implements (at least one).
    let ranges = ((cap & CXL_DVSEC_CAP_HDM_COUNT_MASK) >> 4).clamp(1, 2);
    for range in 0..ranges {
        for (bit, timeout, info_valid) in [
            (CXL_DVSEC_MEM_INFO_VALID, MEM_INFO_VALID_TIMEOUT_MS, false),
            (CXL_DVSEC_MEM_ACTIVE, MEM_ACTIVE_TIMEOUT_MS, true),
        ] {
            match await_range_bit(pdev, dvsec, range, bit, timeout) {
                RangeWait::Set => {}
                RangeWait::TimedOut => {
                    return Err(DetectError::MediaNotReady { range, info_valid })
                }
                RangeWait::NotResponding => return Err(DetectError::NotResponding),
            }
        }
    }
    Ok(())
}

/// How waiting for a bit of a DVSEC range's Size Low register ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeWait {
    /// The bit is set.
    Set,
    /// The bit stayed clear for the whole time.
    TimedOut,
    /// Config reads return all ones.
    NotResponding,
}

/// Waits up to `timeout_ms` for `bit` of DVSEC range `range`'s Size Low register, polling
/// every [`MEDIA_POLL_MS`].
fn await_range_bit(
    pdev: &pci::Device,
    dvsec: u16,
    range: u16,
    bit: u32,
    timeout_ms: i64,
) -> RangeWait {
    let size_lo = dvsec + CXL_DVSEC_RANGE1_SIZE_LOW_OFFSET + range * 0x10;
    let start = Ktime::ktime_get();
    loop {
        let value = cfg_read(pdev, size_lo, 4);
        if value == !0 {
            return RangeWait::NotResponding;
        }
        if value & bit != 0 {
            return RangeWait::Set;
        }
        // `>=`: a timeout of 0 checks once and never sleeps.
        if ktime_ms_delta(Ktime::ktime_get(), start) >= timeout_ms {
            return RangeWait::TimedOut;
        }
        msleep(MEDIA_POLL_MS);
    }
}

/// After a reset: waits up to `timeout_ms` until DVSEC range 1 (the one HDM decoder 0 serves)
/// reports its memory active again (a reset may re-initialise the media; CXL 3.1 8.1.3.8.2).
pub(crate) fn await_memory_active(pdev: &pci::Device, dvsec: u16, timeout_ms: i64) -> RangeWait {
    await_range_bit(pdev, dvsec, 0, CXL_DVSEC_MEM_ACTIVE, timeout_ms)
}

/// The longest [`await_memory_active`] should wait: as long as at bind.
pub(crate) const MEMORY_ACTIVE_TIMEOUT_MS: i64 = MEM_ACTIVE_TIMEOUT_MS;
