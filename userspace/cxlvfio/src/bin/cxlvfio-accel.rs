//! `cxlvfio-accel`: in-VM tests of `cxl-vfio-pci` on a CXL Type-2 accelerator, the
//! project's `cxl-accel` QEMU device (see [`cxlvfio::accel`]), reported as KTAP.
//!
//! Runs as root in the guest after the harness has loaded the module and bound the
//! accelerator (`VM_QEMU_FLAVOR=project`, `$ACCEL_BDF`). Like a VMM it drives the
//! device through the VFIO UAPI only: the component register BAR, whose CXL
//! component register block sits between accelerator register windows, must be
//! mappable outside the block (sparse mmap) and reach the accelerator's registers
//! there, while the block is never mapped and only ever emulated. The host's own
//! view (sysfs `config` and `resource<N>`) is the reference for what the device
//! really is and for what must not change.
//!
//! The device is opened in the IOMMU mode `CXLVFIO_IOMMU` names (`noiommu`, `type1`,
//! `iommufd`; unset or `auto`: the no-IOMMU group if there is one, else type1), see
//! [`cxlvfio::iommu`].
//!
//! ```text
//! cxlvfio-accel [--device <BDF>] [--expect-ids VVVV:DDDD] [--expect-decoders N]
//!               [--expect-comp-block start|middle|end]
//! ```

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use cxlvfio::accel::{self, CompBlock};
use cxlvfio::cli;
use cxlvfio::cxl::{
    comp_block_size, component_block, expected_global_ctrl, expected_sparse_areas, find_dvsec,
    hdm_block_size, hdm_decoder_count, pread_once, pwrite_once, try_mmap, CapArray, RealHdm,
    CTRL_COMMITTED, CXL_CM_CAP_CAP_ID_HDM, CXL_CM_OFFSET, DEC_CTRL, DVSEC_CAPABILITY,
    DVSEC_CAP_CACHE, DVSEC_ID_CXL_DEVICE, DVSEC_VENDOR_CXL, HDM_CAP, HDM_DECODER_FIRST,
    HDM_DECODER_STRIDE, HDM_GLOBAL_CTRL, VFIO_REGION_TYPE_CXL,
};
use cxlvfio::error::raw_os_error;
use cxlvfio::ioeventfd;
use cxlvfio::ktap::{Failure, Ktap, StepResult};
use cxlvfio::mmap::{Mapping, PAGE_SIZE};
use cxlvfio::uapi::{
    device_flags_str, region_flags_str, VfioDeviceInfoCapCxl, VFIO_CXL_CAP_CACHE_CAPABLE,
    VFIO_CXL_CAP_FIRMWARE_COMMITTED, VFIO_DEVICE_FLAGS_CXL, VFIO_DEVICE_INFO_CAP_CXL,
    VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_CAP_CXL_COMP_REGS, VFIO_REGION_INFO_CAP_SPARSE_MMAP,
    VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE, VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
};
use cxlvfio::{kmsg, open_device, pci, AttachedDevice, Device, DeviceInfo, RegionInfo};

/// At most this many kernel log lines are printed.
const MAX_LOG_LINES: usize = 40;
/// Doorbell writes of the 4-byte burst.
const DOORBELL_BURST: u32 = 16;
/// Scratch accesses per slot, `(offset in the slot, size)`: every access size, aligned,
/// from the first scratch register to the last bytes of the slot.
const SCRATCH_ACCESSES: &[(u64, usize)] = &[
    (accel::REG_SCRATCH, 4),
    (0x100, 8),
    (0x201, 1),
    (0x302, 2),
    (0x404, 4),
    (accel::SLOT_SIZE - 8, 8),
];

const USAGE: &str = "usage: cxlvfio-accel [--device <BDF>] [--expect-ids VVVV:DDDD] \
[--expect-decoders N] [--expect-comp-block start|middle|end]\n\
\n\
Tests cxl-vfio-pci on the cxl-accel CXL Type-2 test device <BDF> (default:\n\
$ACCEL_BDF) through VFIO and prints KTAP: the component BAR's sparse mmap around\n\
the component register block, the accelerator registers and doorbell through\n\
those mappings, the block refused to mmap and emulated for read and write, the\n\
CXL device capability (CACHE_CAPABLE) and the HDM decoders COMP_REGS shows.\n\
--expect-ids defaults to 1b36:00ca. --expect-decoders N (1, 2 or 4: the device's\n\
hdm-decoders, VM_ACCEL_DECODERS) defaults to what the hardware reports;\n\
--expect-comp-block (VM_ACCEL_COMP_BLOCK) to wherever the Register Locator puts\n\
the block. Exit status 0 if every test passed.";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    bdf: String,
    vendor: u16,
    device: u16,
    /// HDM decoders the device must have.
    decoders: Option<usize>,
    /// Where the component register block must be.
    comp_block: Option<CompBlock>,
}

/// `Ok(None)` means help was requested.
fn parse_args(args: &[String], env_bdf: Option<String>) -> Result<Option<Options>, String> {
    let mut decoders = None;
    let mut comp_block = None;
    let dev = cli::parse_device_args(args, env_bdf, accel::ACCEL_IDS, |opt| match opt.key {
        "--expect-decoders" => {
            let v = opt.value()?;
            decoders = Some(
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=32).contains(n))
                    .ok_or_else(|| format!("bad --expect-decoders {v:?}"))?,
            );
            Ok(true)
        }
        "--expect-comp-block" => {
            let v = opt.value()?;
            comp_block =
                Some(CompBlock::parse(&v).ok_or_else(|| {
                    format!("bad --expect-comp-block {v:?}: start, middle or end")
                })?);
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(dev.map(|dev| Options {
        bdf: dev.bdf,
        vendor: dev.vendor,
        device: dev.device,
        decoders,
        comp_block,
    }))
}

/// State shared by the steps.
struct Ctx {
    opts: Options,
    vfio: Option<AttachedDevice>,
    info: Option<DeviceInfo>,
    /// The host's config space (sysfs), read once at the start.
    cfg: Vec<u8>,
    /// The component register BAR and the block's offset in it (Register Locator).
    bar: u32,
    block: u64,
    /// The BAR size as sysfs reports it.
    bar_size: u64,
    /// The component BAR's region info.
    region: Option<RegionInfo>,
    /// The sparse mmap areas the region info lists, `(offset, size)`.
    areas: Vec<(u64, u64)>,
    /// One mapping per area, in the same order.
    maps: Vec<Mapping>,
    /// The COMP_REGS region.
    comp: Option<RegionInfo>,
}

impl Ctx {
    fn dev(&self) -> Result<&Device, String> {
        self.vfio
            .as_deref()
            .ok_or_else(|| "device is not open".to_string())
    }

    fn region(&self) -> Result<&RegionInfo, String> {
        self.region
            .as_ref()
            .ok_or_else(|| "no component BAR region info".to_string())
    }

    fn comp(&self) -> Result<&RegionInfo, String> {
        self.comp
            .as_ref()
            .ok_or_else(|| "no COMP_REGS region".to_string())
    }

    /// The accelerator register slots of the BAR.
    fn slots(&self) -> Vec<u64> {
        accel::register_slots(self.bar_size, self.block)
    }

    /// The mapping that holds `len` bytes at BAR offset `off`, and the offset in it.
    fn mapped(&self, off: u64, len: usize) -> Result<(&Mapping, usize), String> {
        let (i, rel) = accel::area_of(&self.areas, off, len as u64)
            .ok_or_else(|| format!("BAR{} +{off:#x} is in no sparse mmap area", self.bar))?;
        let map = self
            .maps
            .get(i)
            .ok_or_else(|| format!("area {i} is not mapped"))?;
        Ok((map, rel as usize))
    }

    /// One volatile 32-bit load at BAR offset `off` through the mapping.
    fn mmio_read32(&self, off: u64) -> Result<u32, String> {
        let (m, rel) = self.mapped(off, 4)?;
        Ok(m.read_u32(rel))
    }

    /// One volatile store of `data` (1, 2, 4 or 8 bytes, aligned) at BAR offset `off`.
    fn mmio_write(&self, off: u64, data: &[u8]) -> Result<(), String> {
        let (m, rel) = self.mapped(off, data.len())?;
        match *data {
            [b] => m.write_u8(rel, b),
            [a, b] => m.write_u16(rel, u16::from_le_bytes([a, b])),
            [a, b, c, d] => m.write_u32(rel, u32::from_le_bytes([a, b, c, d])),
            _ => m.write_u64(
                rel,
                u64::from_le_bytes(data.try_into().map_err(|_| "bad access size")?),
            ),
        }
        Ok(())
    }

    /// One volatile load of `len` (1, 2, 4 or 8) bytes at BAR offset `off`.
    fn mmio_read(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let (m, rel) = self.mapped(off, len)?;
        Ok(match len {
            1 => vec![m.read_u8(rel)],
            2 => m.read_u16(rel).to_le_bytes().to_vec(),
            4 => m.read_u32(rel).to_le_bytes().to_vec(),
            8 => m.read_u64(rel).to_le_bytes().to_vec(),
            _ => return Err(format!("no {len}-byte access")),
        })
    }

    /// One pread of `len` bytes at BAR offset `off` through the region (vfio-pci's
    /// read path); it must return all of them.
    fn bar_read(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let b = pread_once(self.dev()?, self.region()?.offset + off, len)
            .map_err(|e| format!("pread of {len:#x} bytes at BAR{} +{off:#x}: {e}", self.bar))?;
        if b.len() != len {
            return Err(format!(
                "pread of {len:#x} bytes at BAR{} +{off:#x} returned {:#x}",
                self.bar,
                b.len()
            ));
        }
        Ok(b)
    }

    fn bar_read32(&self, off: u64) -> Result<u32, String> {
        Ok(le32(&self.bar_read(off, 4)?))
    }

    /// One pwrite of `data` at BAR offset `off` through the region.
    fn bar_write(&self, off: u64, data: &[u8]) -> io::Result<usize> {
        let region = self.region().map_err(io::Error::other)?;
        pwrite_once(
            self.dev().map_err(io::Error::other)?,
            region.offset + off,
            data,
        )
    }

    /// COMP_REGS dword at `off`.
    fn comp_read(&self, off: usize) -> Result<u32, String> {
        let b = pread_once(self.dev()?, self.comp()?.offset + off as u64, 4)
            .map_err(|e| format!("read COMP_REGS +{off:#x}: {e}"))?;
        if b.len() != 4 {
            return Err(format!("read COMP_REGS +{off:#x}: {} bytes", b.len()));
        }
        Ok(le32(&b))
    }

    /// All of COMP_REGS, dword by dword.
    fn comp_dwords(&self) -> Result<Vec<u32>, String> {
        let n = self.comp()?.size as usize / 4;
        (0..n).map(|i| self.comp_read(4 * i)).collect()
    }

    /// The HDM block's offset in COMP_REGS (from its capability array) and its
    /// decoder count.
    fn comp_hdm(&self) -> Result<(usize, usize, u32), String> {
        let header = self.comp_read(0)?;
        let n = CapArray::array_size(header);
        let dwords: Vec<u32> = (0..=n)
            .map(|i| self.comp_read(4 * i))
            .collect::<Result<_, _>>()?;
        let array = CapArray::parse(&dwords)?;
        let hdm = array
            .find(CXL_CM_CAP_CAP_ID_HDM)
            .ok_or("no HDM capability in the COMP_REGS capability array")?
            .offset;
        let cap = self.comp_read(hdm + HDM_CAP)?;
        let count = hdm_decoder_count(cap)
            .ok_or_else(|| format!("HDM capability {cap:#010x}: reserved decoder count"))?;
        Ok((hdm, count, cap))
    }

    /// The doorbell count, read through the mapping of the first register slot.
    fn doorbell_count(&self) -> Result<u32, String> {
        let s = *self.slots().first().ok_or("no register slot")?;
        self.mmio_read32(s + accel::REG_DOORBELL_COUNT)
    }
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

/// The CXL device capability of the device info, if any.
fn cxl_device_cap(info: &DeviceInfo) -> Option<(u16, VfioDeviceInfoCapCxl)> {
    info.capabilities()
        .into_iter()
        .find(|c| c.id == VFIO_DEVICE_INFO_CAP_CXL)
        .and_then(|c| Some((c.version, c.cxl_device()?)))
}

/// Passes if `r` failed with EINVAL; otherwise describes what happened.
fn expect_einval<T: std::fmt::Debug>(r: io::Result<T>, what: &str) -> Result<(), String> {
    match r {
        Err(e) if raw_os_error(&e) == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(format!("{what}: {e}, expected EINVAL")),
        Ok(v) => Err(format!("{what}: succeeded ({v:?}), expected EINVAL")),
    }
}

/// Turns a list of problems into one failure (diagnostics get all of them).
fn all_ok(problems: Vec<String>, diag: &mut Vec<String>) -> StepResult {
    match problems.len() {
        0 => Ok(()),
        1 => Err(problems[0].clone().into()),
        n => {
            let first = problems[0].clone();
            diag.extend(problems);
            Err(format!("{first} (and {} more)", n - 1).into())
        }
    }
}

type StepFn = fn(&mut Ctx, &mut Vec<String>) -> StepResult;

/// One test: its KTAP name, the steps that must have passed, and the body.
struct Step {
    name: &'static str,
    deps: &'static [&'static str],
    run: StepFn,
}

const OPEN: &[&str] = &["vfio_open", "component_block_located"];
const MAPPED: &[&str] = &[
    "vfio_open",
    "component_block_located",
    "comp_bar_areas_mmap",
];
const COMP: &[&str] = &[
    "vfio_open",
    "component_block_located",
    "device_info_cxl_cap",
];

const STEPS: &[Step] = &[
    Step {
        name: "vfio_open",
        deps: &[],
        run: vfio_open,
    },
    Step {
        name: "component_block_located",
        deps: &[],
        run: component_block_located,
    },
    Step {
        name: "device_info_cxl_cap",
        deps: OPEN,
        run: device_info_cxl_cap,
    },
    Step {
        name: "comp_bar_sparse_mmap_cap",
        deps: OPEN,
        run: comp_bar_sparse_mmap_cap,
    },
    Step {
        name: "comp_bar_areas_mmap",
        deps: &["comp_bar_sparse_mmap_cap"],
        run: comp_bar_areas_mmap,
    },
    Step {
        name: "accel_id_regs_through_mmap",
        deps: MAPPED,
        run: accel_id_regs_through_mmap,
    },
    Step {
        name: "accel_scratch_through_mmap",
        deps: MAPPED,
        run: accel_scratch_through_mmap,
    },
    Step {
        name: "accel_doorbell_counts_mmap_writes",
        deps: MAPPED,
        run: accel_doorbell_counts_mmap_writes,
    },
    Step {
        name: "comp_block_mmap_refused",
        deps: OPEN,
        run: comp_block_mmap_refused,
    },
    Step {
        name: "comp_regs_decoders",
        deps: COMP,
        run: comp_regs_decoders,
    },
    Step {
        name: "comp_block_reads_emulated",
        deps: &["comp_regs_decoders"],
        run: comp_block_reads_emulated,
    },
    Step {
        name: "comp_block_writes_emulated",
        deps: &["comp_regs_decoders", "comp_bar_areas_mmap"],
        run: comp_block_writes_emulated,
    },
    Step {
        name: "ioeventfd_block_refused_doorbell_rings",
        deps: &["comp_regs_decoders", "comp_bar_areas_mmap"],
        run: ioeventfd_block_refused_doorbell_rings,
    },
    Step {
        name: "reset_clears_accel_keeps_mappings",
        deps: &["comp_regs_decoders", "comp_bar_areas_mmap"],
        run: reset_clears_accel_keeps_mappings,
    },
    Step {
        name: "kernel_log_clean",
        deps: &[],
        run: kernel_log_clean,
    },
];

// ---------------------------------------------------------------------------
// Opening the device, where things are
// ---------------------------------------------------------------------------

fn vfio_open(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let device = open_device(&ctx.opts.bdf).map_err(|e| e.to_string())?;
    diag.push(format!("opened {}", device.describe()));
    let info = device.info().map_err(|e| e.to_string());
    let ids = (device.config_read16(0), device.config_read16(2));
    let class = device.config_read32(8).map(|v| v >> 8);
    ctx.vfio = Some(device);
    let info = info?;
    diag.push(format!(
        "flags {:#x} [{}], num_regions {}, num_irqs {}",
        info.flags,
        device_flags_str(info.flags),
        info.num_regions,
        info.num_irqs
    ));
    let is_pci = info.is_pci();
    ctx.info = Some(info);
    let (vendor, device) = (
        ids.0.map_err(|e| e.to_string())?,
        ids.1.map_err(|e| e.to_string())?,
    );
    let class = class.map_err(|e| e.to_string())?;
    diag.push(format!(
        "config space through VFIO: {vendor:04x}:{device:04x} class {class:#08x}"
    ));
    let mut problems = Vec::new();
    if !is_pci {
        problems.push("VFIO_DEVICE_FLAGS_PCI not set".to_string());
    }
    let want = (ctx.opts.vendor, ctx.opts.device);
    if (vendor, device) != want {
        problems.push(format!(
            "ids {vendor:04x}:{device:04x}, expected {:04x}:{:04x}",
            want.0, want.1
        ));
    }
    // Not the CXL memory device class: the driver binds on the DVSEC, not the class.
    if want == accel::ACCEL_IDS && class != accel::ACCEL_CLASS {
        problems.push(format!(
            "class {class:#08x}, cxl-accel is {:#08x}",
            accel::ACCEL_CLASS
        ));
    }
    all_ok(problems, diag)
}

fn component_block_located(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let path = pci::device_dir(&ctx.opts.bdf).join("config");
    let cfg = fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    if cfg.len() < 0x1000 {
        return Err(format!("{}: {} bytes (not root?)", path.display(), cfg.len()).into());
    }
    let (bar, block) =
        component_block(&cfg).ok_or("no component register block in the Register Locator DVSEC")?;
    let bar_size = pci::resource(&ctx.opts.bdf, usize::from(bar))
        .map_err(|e| e.to_string())?
        .size();
    ctx.cfg = cfg;
    ctx.bar = u32::from(bar);
    ctx.block = block;
    ctx.bar_size = bar_size;
    let placed = CompBlock::from_offset(bar_size, block);
    diag.push(format!(
        "component register block at BAR{bar} +{block:#x} ({}) of a {bar_size:#x}-byte BAR; register slots {:x?}",
        placed.map_or("not a cxl-accel placement", CompBlock::name),
        ctx.slots()
    ));
    if block + accel::SLOT_SIZE > bar_size {
        return Err(format!("the block does not fit in BAR{bar}").into());
    }
    if let Some(want) = ctx.opts.comp_block {
        if placed != Some(want) {
            return Err(format!(
                "block at +{block:#x}, comp-block={} puts it at +{:#x}",
                want.name(),
                want.offset(bar_size)
            )
            .into());
        }
    }
    if ctx.slots().is_empty() {
        return Err("no accelerator register slot outside the block".into());
    }
    Ok(())
}

fn device_info_cxl_cap(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let info = ctx.info.clone().ok_or("no device info")?;
    let (dvsec, _) = find_dvsec(&ctx.cfg, DVSEC_VENDOR_CXL, DVSEC_ID_CXL_DEVICE)
        .ok_or("no CXL Device DVSEC in sysfs config")?;
    let dvsec_cap = u16::from_le_bytes([
        ctx.cfg[dvsec + DVSEC_CAPABILITY],
        ctx.cfg[dvsec + DVSEC_CAPABILITY + 1],
    ]);
    let cache_capable = dvsec_cap & DVSEC_CAP_CACHE != 0;
    let Some((version, cap)) = cxl_device_cap(&info) else {
        return Err(format!(
            "no VFIO_DEVICE_INFO_CAP_CXL (flags [{}])",
            device_flags_str(info.flags)
        )
        .into());
    };
    diag.push(format!(
        "CXL cap v{version}: BAR{} hdm_regs_offset {:#x} flags {:#x} dpa region {} comp_regs region {}; DVSEC capability {dvsec_cap:#06x}",
        cap.hdm_regs_bar_index,
        cap.hdm_regs_offset,
        cap.flags,
        cap.dpa_region_index,
        cap.comp_regs_region_index
    ));
    let mut problems = Vec::new();
    if info.flags & VFIO_DEVICE_FLAGS_CXL == 0 {
        problems.push("VFIO_DEVICE_FLAGS_CXL not set".to_string());
    }
    if version != 1 {
        problems.push(format!("capability version {version}, expected 1"));
    }
    if !cache_capable {
        problems.push(format!(
            "the device's DVSEC capability {dvsec_cap:#06x} is not Cache_Capable: not an accelerator"
        ));
    }
    if cap.flags & VFIO_CXL_CAP_CACHE_CAPABLE == 0 {
        problems.push(format!(
            "flags {:#x}: CACHE_CAPABLE is clear on a Cache_Capable device",
            cap.flags
        ));
    }
    if cap.flags & VFIO_CXL_CAP_FIRMWARE_COMMITTED == 0 {
        problems.push(format!(
            "flags {:#x}: FIRMWARE_COMMITTED is clear (firmware emulation committed decoder 0)",
            cap.flags
        ));
    }
    let known = VFIO_CXL_CAP_CACHE_CAPABLE | VFIO_CXL_CAP_FIRMWARE_COMMITTED;
    if cap.flags & !known != 0 {
        problems.push(format!("flags {:#x}: unknown bits set", cap.flags));
    }
    if u32::from(cap.hdm_regs_bar_index) != ctx.bar {
        problems.push(format!(
            "hdm_regs_bar_index {}, the Register Locator says BAR{}",
            cap.hdm_regs_bar_index, ctx.bar
        ));
    }
    if cap.hdm_regs_offset != ctx.block + CXL_CM_OFFSET {
        problems.push(format!(
            "hdm_regs_offset {:#x}, expected block {:#x} + {CXL_CM_OFFSET:#x}",
            cap.hdm_regs_offset, ctx.block
        ));
    }
    for (what, index) in [
        ("dpa", cap.dpa_region_index),
        ("comp_regs", cap.comp_regs_region_index),
    ] {
        if index < VFIO_PCI_NUM_REGIONS || index >= info.num_regions {
            problems.push(format!(
                "{what}_region_index {index} is not a device-specific region (num_regions {})",
                info.num_regions
            ));
        }
    }
    if problems.is_empty() {
        let comp = ctx
            .dev()?
            .region_info(cap.comp_regs_region_index)
            .map_err(|e| format!("COMP_REGS region {}: {e}", cap.comp_regs_region_index))?;
        let types: Vec<(u32, u32)> = comp
            .capabilities()
            .iter()
            .filter_map(|c| c.region_type())
            .collect();
        if types != [(VFIO_REGION_TYPE_CXL, VFIO_REGION_SUBTYPE_CXL_COMP_REGS)] {
            problems.push(format!(
                "region {} has types {types:x?}, not COMP_REGS",
                cap.comp_regs_region_index
            ));
        }
        ctx.comp = Some(comp);
    }
    all_ok(problems, diag)
}

// ---------------------------------------------------------------------------
// The component BAR: sparse mmap and the accelerator registers
// ---------------------------------------------------------------------------

fn comp_bar_sparse_mmap_cap(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let r = ctx
        .dev()?
        .region_info(ctx.bar)
        .map_err(|e| format!("BAR{} region info: {e}", ctx.bar))?;
    let want = expected_sparse_areas(ctx.bar_size, ctx.block, PAGE_SIZE as u64);
    let caps = r.capabilities();
    let sparse: Vec<_> = caps
        .iter()
        .filter(|c| c.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP)
        .collect();
    let got: Option<Vec<(u64, u64)>> = match sparse.as_slice() {
        [c] => c
            .sparse_mmap_areas()
            .map(|a| a.iter().map(|a| (a.offset, a.size)).collect()),
        _ => None,
    };
    diag.push(format!(
        "BAR{}: size {:#x} flags [{}] caps {:?}; sparse areas {got:x?}, expected {want:x?} ({})",
        ctx.bar,
        r.size,
        region_flags_str(r.flags),
        caps.iter().map(|c| (c.id, c.version)).collect::<Vec<_>>(),
        match want.len() {
            2 => "before and after the block",
            1 if ctx.block == 0 => "after the block",
            1 => "before the block",
            _ => "none",
        }
    ));
    let mut problems = Vec::new();
    if r.size != ctx.bar_size {
        problems.push(format!(
            "region size {:#x}, the BAR is {:#x} bytes",
            r.size, ctx.bar_size
        ));
    }
    let flags = VFIO_REGION_INFO_FLAG_READ
        | VFIO_REGION_INFO_FLAG_WRITE
        | VFIO_REGION_INFO_FLAG_MMAP
        | VFIO_REGION_INFO_FLAG_CAPS;
    if r.flags & flags != flags {
        problems.push(format!(
            "flags [{}], expected READ|WRITE|MMAP|CAPS",
            region_flags_str(r.flags)
        ));
    }
    match (sparse.len(), &got) {
        (1, Some(areas)) if *areas == want => {}
        (1, Some(areas)) => problems.push(format!("sparse areas {areas:x?}, expected {want:x?}")),
        (1, None) => problems.push("the sparse mmap capability is truncated".to_string()),
        (n, _) => problems.push(format!("{n} sparse mmap capabilities, expected 1")),
    }
    if let [c] = sparse.as_slice() {
        if c.version != 1 {
            problems.push(format!("sparse mmap capability version {}", c.version));
        }
    }
    ctx.areas = got.unwrap_or_default();
    ctx.region = Some(r);
    all_ok(problems, diag)
}

fn comp_bar_areas_mmap(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let region = ctx.region()?.clone();
    let dev = ctx.dev()?;
    let mut maps = Vec::new();
    for &(off, size) in &ctx.areas {
        let len = usize::try_from(size).map_err(|_| format!("area size {size:#x}"))?;
        let m = Mapping::shared(dev.as_fd(), region.offset + off, len).map_err(|e| {
            format!(
                "mmap of area BAR{} +{off:#x} ({size:#x} bytes): {e}",
                ctx.bar
            )
        })?;
        diag.push(format!(
            "area BAR{} +{off:#x} ({size:#x} bytes) mapped at {:#x}",
            ctx.bar,
            m.addr()
        ));
        maps.push(m);
    }
    ctx.maps = maps;
    Ok(())
}

fn accel_id_regs_through_mmap(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let mut problems = Vec::new();
    for s in ctx.slots() {
        let want = [
            ("ID", accel::REG_ID, accel::ACCEL_ID),
            ("COMP_OFFSET", accel::REG_COMP_OFFSET, ctx.block as u32),
            ("BAR_SIZE", accel::REG_BAR_SIZE, ctx.bar_size as u32),
            ("SLOT_OFFSET", accel::REG_SLOT_OFFSET, s as u32),
        ];
        let mut line = format!("slot +{s:#x}:");
        for (name, reg, value) in want {
            let mapped = ctx.mmio_read32(s + reg)?;
            let read = ctx.bar_read32(s + reg)?;
            line.push_str(&format!(" {name} {mapped:#x}"));
            if mapped != value {
                problems.push(format!(
                    "slot +{s:#x} {name} through the mapping: {mapped:#x}, expected {value:#x}"
                ));
            }
            if read != mapped {
                problems.push(format!(
                    "slot +{s:#x} {name}: pread {read:#x}, the mapping {mapped:#x}"
                ));
            }
        }
        diag.push(line);
    }
    all_ok(problems, diag)
}

fn accel_scratch_through_mmap(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let slots = ctx.slots();
    let mut problems = Vec::new();
    // Every slot gets its own data, so one slot's registers showing in another's fail.
    for &s in &slots {
        for &(rel, size) in SCRATCH_ACCESSES {
            ctx.mmio_write(s + rel, &accel::scratch_pattern(s + rel, 0, size))?;
        }
    }
    for &s in &slots {
        for &(rel, size) in SCRATCH_ACCESSES {
            let want = accel::scratch_pattern(s + rel, 0, size);
            let mapped = ctx.mmio_read(s + rel, size)?;
            let read = ctx.bar_read(s + rel, size)?;
            if mapped != want || read != want {
                problems.push(format!(
                    "{size}-byte scratch at BAR{} +{:#x}: wrote {want:02x?} through the mapping, the mapping reads {mapped:02x?}, pread {read:02x?}",
                    ctx.bar,
                    s + rel
                ));
            }
        }
    }
    // vfio-pci's write path lands where the mapping reads.
    for &s in &slots {
        for (rel, size) in [(0x500, 4usize), (accel::SLOT_SIZE - 16, 8)] {
            let want = accel::scratch_pattern(s + rel, 1, size);
            let n = ctx
                .bar_write(s + rel, &want)
                .map_err(|e| format!("pwrite at BAR{} +{:#x}: {e}", ctx.bar, s + rel))?;
            let mapped = ctx.mmio_read(s + rel, size)?;
            if n != size || mapped != want {
                problems.push(format!(
                    "pwrite of {want:02x?} at BAR{} +{:#x} ({n} bytes): the mapping reads {mapped:02x?}",
                    ctx.bar,
                    s + rel
                ));
            }
        }
    }
    // Read-only registers stay as they are.
    for &s in &slots {
        for reg in [accel::REG_ID, accel::REG_SLOT_OFFSET] {
            let before = ctx.mmio_read32(s + reg)?;
            ctx.mmio_write(s + reg, &0xffff_ffffu32.to_le_bytes())?;
            let after = ctx.mmio_read32(s + reg)?;
            if after != before {
                problems.push(format!(
                    "read-only register at slot +{s:#x} +{reg:#x} changed from {before:#x} to {after:#x}"
                ));
            }
        }
    }
    diag.push(format!(
        "{} scratch accesses through the mappings and {} through pwrite in {} slots",
        SCRATCH_ACCESSES.len() * slots.len(),
        2 * slots.len(),
        slots.len()
    ));
    all_ok(problems, diag)
}

fn accel_doorbell_counts_mmap_writes(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let slots = ctx.slots();
    let s0 = slots[0];
    let mut problems = Vec::new();
    let mut expect = ctx.doorbell_count()?;
    let start = expect;
    let check = |ctx: &Ctx, after: &str, expect: u32, problems: &mut Vec<String>| {
        for &s in &slots {
            match ctx.mmio_read32(s + accel::REG_DOORBELL_COUNT) {
                Ok(c) if c == expect => {}
                Ok(c) => problems.push(format!(
                    "after {after}: count {c} through slot +{s:#x}, expected {expect}"
                )),
                Err(e) => problems.push(e),
            }
        }
    };
    // Reads never ring it.
    for &s in &slots {
        for _ in 0..4 {
            ctx.mmio_read32(s + accel::REG_DOORBELL)?;
            ctx.mmio_read32(s + accel::REG_DOORBELL_COUNT)?;
        }
    }
    check(ctx, "reads of the doorbell", expect, &mut problems);
    // A burst of 4-byte writes through the mapping: one ring each.
    for i in 0..DOORBELL_BURST {
        ctx.mmio_write(s0 + accel::REG_DOORBELL, &(0xd00b_e100 + i).to_le_bytes())?;
    }
    expect += DOORBELL_BURST;
    check(
        ctx,
        "a burst of 4-byte doorbell writes",
        expect,
        &mut problems,
    );
    let last = ctx.mmio_read32(s0 + accel::REG_DOORBELL)?;
    if last != 0xd00b_e100 + DOORBELL_BURST - 1 {
        problems.push(format!(
            "the doorbell reads {last:#x}, the last write was {:#x}",
            0xd00b_e100 + DOORBELL_BURST - 1
        ));
    }
    // Every access size rings once, in every slot; an 8-byte write also covers the
    // read-only count, which it must not change.
    for &s in &slots {
        for data in [
            vec![0x5a],
            0xbeefu16.to_le_bytes().to_vec(),
            0x1122_3344_5566_7788u64.to_le_bytes().to_vec(),
        ] {
            ctx.mmio_write(s + accel::REG_DOORBELL, &data)?;
            expect += 1;
            check(
                ctx,
                &format!("a {}-byte doorbell write in slot +{s:#x}", data.len()),
                expect,
                &mut problems,
            );
        }
    }
    // Scratch writes do not ring it; a pwrite through vfio-pci rings it once.
    for &s in &slots {
        ctx.mmio_write(s + accel::REG_SCRATCH, &0x1234_5678u32.to_le_bytes())?;
    }
    check(ctx, "scratch writes", expect, &mut problems);
    let n = ctx
        .bar_write(s0 + accel::REG_DOORBELL, &0xfeed_u32.to_le_bytes())
        .map_err(|e| format!("pwrite to the doorbell: {e}"))?;
    if n != 4 {
        problems.push(format!("pwrite to the doorbell wrote {n} bytes"));
    }
    expect += 1;
    check(ctx, "a pwrite to the doorbell", expect, &mut problems);
    let read = ctx.bar_read32(s0 + accel::REG_DOORBELL_COUNT)?;
    if read != expect {
        problems.push(format!("pread of the count: {read}, expected {expect}"));
    }
    diag.push(format!(
        "doorbell count {start} -> {} ({} rings expected)",
        ctx.doorbell_count()?,
        expect - start
    ));
    all_ok(problems, diag)
}

// ---------------------------------------------------------------------------
// The component register block: never mapped, emulated for read and write
// ---------------------------------------------------------------------------

fn comp_block_mmap_refused(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let region = ctx
        .dev()?
        .region_info(ctx.bar)
        .map_err(|e| format!("BAR{} region info: {e}", ctx.bar))?;
    let page = PAGE_SIZE as u64;
    let size = comp_block_size(ctx.bar_size, ctx.block);
    let (first, last) = (ctx.block, ctx.block + size - page);
    let mut tries = vec![
        (first, page),
        (last, page),
        (first, size),
        (0, ctx.bar_size),
    ];
    if first > 0 {
        // The last page of the area before it and the block's first.
        tries.push((first - page, 2 * page));
    }
    if first + size < ctx.bar_size {
        tries.push((last, 2 * page));
    }
    let mut problems = Vec::new();
    for (off, len) in tries {
        let what = format!("mmap of {len:#x} bytes at BAR{} +{off:#x}", ctx.bar);
        diag.push(what.clone());
        if let Err(p) = expect_einval(
            try_mmap(ctx.dev()?, region.offset + off, len as usize),
            &what,
        ) {
            problems.push(p);
        }
    }
    all_ok(problems, diag)
}

fn comp_regs_decoders(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let comp = ctx.comp()?.clone();
    let (hdm, count, cap) = ctx.comp_hdm()?;
    let real = RealHdm::locate(&ctx.opts.bdf)?;
    let want = ctx.opts.decoders.unwrap_or(real.count);
    diag.push(format!(
        "COMP_REGS: size {:#x}, HDM block at +{hdm:#x}, capability {cap:#010x}: {count} decoder(s); hardware: {} decoder(s); expected {want}",
        comp.size, real.count
    ));
    let mut problems = Vec::new();
    if count != want {
        problems.push(format!(
            "COMP_REGS shows {count} decoder(s), expected {want}"
        ));
    }
    if real.count != want {
        problems.push(format!(
            "the hardware has {} decoder(s), expected {want}",
            real.count
        ));
    }
    let size = (hdm + hdm_block_size(count)) as u64;
    if comp.size != size {
        problems.push(format!(
            "COMP_REGS is {:#x} bytes, HDM +{hdm:#x} with {count} decoder(s) ends at {size:#x}",
            comp.size
        ));
    }
    for n in 0..count {
        let ctrl = ctx.comp_read(hdm + HDM_DECODER_FIRST + HDM_DECODER_STRIDE * n + DEC_CTRL)?;
        let committed = ctrl & CTRL_COMMITTED != 0;
        diag.push(format!("decoder {n}: CTRL {ctrl:#010x}"));
        if committed != (n == 0) {
            problems.push(format!(
                "decoder {n}: CTRL {ctrl:#010x}, COMMITTED {}: only the firmware's decoder 0 is committed",
                u8::from(committed)
            ));
        }
    }
    let caps = comp.capabilities();
    match caps.iter().find_map(|c| c.cxl_comp_regs()) {
        None => problems.push("no VFIO_REGION_INFO_CAP_CXL_COMP_REGS".to_string()),
        Some(c) => {
            let block_size = comp_block_size(ctx.bar_size, ctx.block);
            if (c.bar_index, c.block_offset, c.block_size) != (ctx.bar, ctx.block, block_size) {
                problems.push(format!(
                    "COMP_REGS capability: BAR{} block {:#x} size {:#x}, expected BAR{} block {:#x} size {block_size:#x}",
                    c.bar_index, c.block_offset, c.block_size, ctx.bar, ctx.block
                ));
            }
        }
    }
    if !caps
        .iter()
        .any(|c| c.id == VFIO_REGION_INFO_CAP_CXL_COMP_REGS)
    {
        diag.push("region capabilities: no COMP_REGS placement capability".to_string());
    }
    all_ok(problems, diag)
}

fn comp_block_reads_emulated(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let comp = ctx.comp_dwords()?;
    let cm = ctx.block + CXL_CM_OFFSET;
    let size = comp_block_size(ctx.bar_size, ctx.block);
    let block = ctx.bar_read(ctx.block, size as usize)?;
    let hw = pci::ResourceMap::open(&ctx.opts.bdf, ctx.bar as usize)
        .and_then(|m| m.read_dwords(ctx.block, size as usize / 4))
        .map_err(|e| format!("BAR{} through sysfs: {e}", ctx.bar))?;
    let mut problems = Vec::new();
    let mut outside = 0;
    for (i, &h) in hw.iter().enumerate() {
        let off = ctx.block + 4 * i as u64;
        let v = le32(&block[4 * i..]);
        let emulated = off >= cm && off < cm + 4 * comp.len() as u64;
        let want = if emulated {
            comp[((off - cm) / 4) as usize]
        } else {
            outside += 1;
            h
        };
        if v != want && problems.len() < 16 {
            problems.push(format!(
                "BAR{} +{off:#x}: reads {v:#010x}, expected {want:#010x} ({})",
                ctx.bar,
                if emulated {
                    "COMP_REGS"
                } else {
                    "the hardware"
                }
            ));
        }
    }
    // What the accelerator registers hold never shows in the block.
    let id = le32(&block);
    if id == accel::ACCEL_ID {
        problems.push(format!(
            "the block's first dword reads the accelerator ID {id:#x}"
        ));
    }
    diag.push(format!(
        "one {size:#x}-byte pread of the block: {} dwords compared with COMP_REGS, {outside} with the hardware",
        comp.len()
    ));
    all_ok(problems, diag)
}

fn comp_block_writes_emulated(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let (hdm, _, cap) = ctx.comp_hdm()?;
    let real = RealHdm::locate(&ctx.opts.bdf)?;
    let hw_before = real.dwords()?;
    let count_before = ctx.doorbell_count()?;
    let cm = ctx.block + CXL_CM_OFFSET;
    let gctl = hdm + HDM_GLOBAL_CTRL;
    let gctl_bar = cm + gctl as u64;
    let original = ctx.comp_read(gctl)?;
    let mut problems = Vec::new();

    // A whole dword in the CXL.mem area goes to the emulation, not the device.
    let value = original ^ 0x2; // HDM_Decoder_Enable flipped
    let want = expected_global_ctrl(cap, value);
    match ctx.bar_write(gctl_bar, &value.to_le_bytes()) {
        Ok(4) => {}
        r => problems.push(format!(
            "4-byte pwrite at BAR{} +{gctl_bar:#x} (HDM global control): {r:?}",
            ctx.bar
        )),
    }
    let comp_now = ctx.comp_read(gctl)?;
    let bar_now = ctx.bar_read32(gctl_bar)?;
    diag.push(format!(
        "HDM global control {original:#x}; wrote {value:#x} through BAR{}: COMP_REGS {comp_now:#x}, BAR {bar_now:#x}, expected {want:#x}",
        ctx.bar
    ));
    if comp_now != want || bar_now != want {
        problems.push(format!(
            "after writing {value:#x} to the HDM global control through the BAR: COMP_REGS {comp_now:#x}, BAR {bar_now:#x}, expected {want:#x}"
        ));
    }
    // Anything but an aligned dword is refused there.
    for (off, len) in [(gctl_bar, 2usize), (gctl_bar + 1, 4), (gctl_bar, 1)] {
        if let Err(p) = expect_einval(
            ctx.bar_write(off, &vec![0xa5; len]),
            &format!("{len}-byte pwrite at BAR{} +{off:#x}", ctx.bar),
        ) {
            problems.push(p);
        }
    }
    // Restore the emulated value.
    ctx.bar_write(gctl_bar, &original.to_le_bytes())
        .map_err(|e| format!("restoring the HDM global control: {e}"))?;
    // Outside the CXL.mem area the block is read-only: writes are dropped.
    for rel in [
        0u64,
        0x10,
        0x2000,
        comp_block_size(ctx.bar_size, ctx.block) - 4,
    ] {
        let off = ctx.block + rel;
        let before = ctx.bar_read32(off)?;
        match ctx.bar_write(off, &0xdead_beefu32.to_le_bytes()) {
            Ok(4) => {}
            r => problems.push(format!(
                "4-byte pwrite at BAR{} +{off:#x} (outside the CXL.mem area): {r:?}, expected to be dropped",
                ctx.bar
            )),
        }
        let after = ctx.bar_read32(off)?;
        if after != before {
            problems.push(format!(
                "BAR{} +{off:#x} read {before:#x} before a write of 0xdeadbeef and {after:#x} after",
                ctx.bar
            ));
        }
    }
    // Nothing reached the device: its decoders and its accelerator registers.
    let hw_after = real.dwords()?;
    if hw_after != hw_before {
        problems.push(format!(
            "the hardware HDM registers changed: {hw_before:08x?} -> {hw_after:08x?}"
        ));
    }
    let count_after = ctx.doorbell_count()?;
    if count_after != count_before {
        problems.push(format!(
            "the doorbell count changed from {count_before} to {count_after}"
        ));
    }
    if ctx.comp_read(gctl)? != original {
        problems.push("the HDM global control was not restored".to_string());
    }
    all_ok(problems, diag)
}

/// An ioeventfd makes the kernel write the BAR when its eventfd is signalled, past read and
/// write: on the block (decoder 0 Control) it must be refused; on the accelerator's doorbell,
/// outside the block, it is vfio-pci's and rings the doorbell once per signal.
fn ioeventfd_block_refused_doorbell_rings(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let (hdm, _, _) = ctx.comp_hdm()?;
    let region_offset = ctx.region()?.offset;
    let dev = ctx.dev()?;
    let eventfd = ioeventfd::eventfd().map_err(|e| format!("eventfd: {e}"))?;
    let efd = eventfd.as_raw_fd();
    let mut problems = Vec::new();
    let block_ctrl = ctx.block + CXL_CM_OFFSET + (hdm + HDM_DECODER_FIRST + DEC_CTRL) as u64;
    for off in [ctx.block, block_ctrl] {
        let r = ioeventfd::set(dev, region_offset + off, 0, efd);
        diag.push(format!(
            "ioeventfd on BAR{} +{off:#x} (in the block): {r:?}",
            ctx.bar
        ));
        match r {
            Err(e) if raw_os_error(&e) == Some(libc::EINVAL) => {}
            Ok(()) => {
                let _ = ioeventfd::set(dev, region_offset + off, 0, -1);
                problems.push(format!(
                    "an ioeventfd on the block at BAR{} +{off:#x} was accepted",
                    ctx.bar
                ));
            }
            Err(e) => problems.push(format!("ioeventfd on the block: {e}, expected EINVAL")),
        }
    }
    let bell = ctx.slots()[0] + accel::REG_DOORBELL;
    let data = 0x00e7_e47f_u64;
    ioeventfd::set(dev, region_offset + bell, data, efd).map_err(|e| {
        format!(
            "ioeventfd on the doorbell at BAR{} +{bell:#x}: {e}",
            ctx.bar
        )
    })?;
    let before = ctx.doorbell_count()?;
    let signals = 3;
    let mut count = before;
    for _ in 0..signals {
        ioeventfd::signal(eventfd.as_fd()).map_err(|e| format!("signal: {e}"))?;
        // The kernel writes from a worker: wait for this ring before the next signal, which
        // the eventfd would otherwise merge with it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while ctx.doorbell_count()? == count && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        count = ctx.doorbell_count()?;
    }
    let value = ctx.mmio_read32(bell)?;
    ioeventfd::set(dev, region_offset + bell, data, -1)
        .map_err(|e| format!("removing the doorbell ioeventfd: {e}"))?;
    diag.push(format!(
        "ioeventfd on the doorbell at BAR{} +{bell:#x}: {signals} signals, count {before} -> {count}, doorbell {value:#x}",
        ctx.bar
    ));
    if count != before + signals || u64::from(value) != data {
        problems.push(format!(
            "{signals} signals of the doorbell ioeventfd: count {before} -> {count}, doorbell {value:#x}, expected +{signals} and {data:#x}"
        ));
    }
    all_ok(problems, diag)
}

fn reset_clears_accel_keeps_mappings(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let s0 = ctx.slots()[0];
    let scratch = s0 + accel::REG_SCRATCH;
    ctx.mmio_write(scratch, &0x0bad_cafeu32.to_le_bytes())?;
    ctx.mmio_write(s0 + accel::REG_DOORBELL, &1u32.to_le_bytes())?;
    let before = ctx.doorbell_count()?;
    ctx.dev()?
        .reset()
        .map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))?;
    // The same mappings, faulted in again after the reset.
    let id = ctx.mmio_read32(s0 + accel::REG_ID)?;
    let count = ctx.doorbell_count()?;
    let bell = ctx.mmio_read32(s0 + accel::REG_DOORBELL)?;
    let scr = ctx.mmio_read32(scratch)?;
    let (hdm, _, _) = ctx.comp_hdm()?;
    let ctrl = ctx.comp_read(hdm + HDM_DECODER_FIRST + DEC_CTRL)?;
    let real = RealHdm::locate(&ctx.opts.bdf)?;
    let hw_ctrl = real.read(real.decoder_reg(0, DEC_CTRL))?;
    diag.push(format!(
        "after VFIO_DEVICE_RESET: ID {id:#x}, doorbell count {before} -> {count}, doorbell {bell:#x}, scratch {scr:#x}; decoder 0 CTRL: COMP_REGS {ctrl:#010x}, hardware {hw_ctrl:#010x}"
    ));
    let mut problems = Vec::new();
    if id != accel::ACCEL_ID {
        problems.push(format!("ID {id:#x} through the mapping after the reset"));
    }
    if (count, bell, scr) != (0, 0, 0) {
        problems.push(format!(
            "count {count}, doorbell {bell:#x}, scratch {scr:#x} after the reset: the device reset clears them"
        ));
    }
    if ctrl & CTRL_COMMITTED == 0 {
        problems.push(format!(
            "COMP_REGS decoder 0 CTRL {ctrl:#010x}: not committed after the reset"
        ));
    }
    if hw_ctrl & CTRL_COMMITTED == 0 {
        problems.push(format!(
            "hardware decoder 0 CTRL {hw_ctrl:#010x}: the driver did not restore it after the reset"
        ));
    }
    all_ok(problems, diag)
}

fn kernel_log_clean(_: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let problems = kmsg::kernel_log_problems()?;
    if problems.is_empty() {
        return Ok(());
    }
    for line in problems.iter().take(MAX_LOG_LINES) {
        diag.push(line.clone());
    }
    Err(format!("{} problem lines in the kernel log", problems.len()).into())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs every step in order and returns whether all passed.
fn run_suite(opts: Options) -> bool {
    let mut ktap = Ktap::stdout(STEPS.len());
    ktap.diag(&format!("cxlvfio-accel: device {}", opts.bdf));
    let mut ctx = Ctx {
        opts,
        vfio: None,
        info: None,
        cfg: Vec::new(),
        bar: 0,
        block: 0,
        bar_size: 0,
        region: None,
        areas: Vec::new(),
        maps: Vec::new(),
        comp: None,
    };
    let mut passed: HashSet<&str> = HashSet::new();
    for step in STEPS {
        if let Some(dep) = step.deps.iter().find(|d| !passed.contains(*d)) {
            ktap.not_ok(step.name, &format!("depends on {dep}"));
            continue;
        }
        let mut diag = Vec::new();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (step.run)(&mut ctx, &mut diag)));
        for d in &diag {
            ktap.diag(&format!("{}: {d}", step.name));
        }
        match outcome {
            Ok(Ok(())) => {
                passed.insert(step.name);
                ktap.ok(step.name);
            }
            Ok(Err(Failure::Fail(reason))) => ktap.not_ok(step.name, &reason),
            Ok(Err(Failure::Skip(reason))) => ktap.skip(step.name, &reason),
            Err(payload) => ktap.not_ok(
                step.name,
                &format!("panicked: {}", panic_message(payload.as_ref())),
            ),
        }
    }
    // Mappings first: they keep the device file open.
    ctx.maps.clear();
    ctx.vfio = None;
    let ok = ktap.all_passed();
    ktap.finish();
    ok
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args, std::env::var("ACCEL_BDF").ok()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cxlvfio-accel: error: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    if run_suite(opts) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn args_parsing() {
        let o = parse_args(&[], Some("15:00.0".into())).unwrap().unwrap();
        assert_eq!(
            o,
            Options {
                bdf: "0000:15:00.0".into(),
                vendor: 0x1b36,
                device: 0x00ca,
                decoders: None,
                comp_block: None,
            }
        );
        let o = parse_args(
            &s(&[
                "--device",
                "0000:16:00.0",
                "--expect-decoders=2",
                "--expect-comp-block",
                "end",
            ]),
            Some("15:00.0".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.bdf, "0000:16:00.0");
        assert_eq!(o.decoders, Some(2));
        assert_eq!(o.comp_block, Some(CompBlock::End));
        for bad in [
            &["--expect-decoders", "0"][..],
            &["--expect-decoders", "two"],
            &["--expect-comp-block", "centre"],
            &["--expect-decoders"],
            &["--frobnicate"],
        ] {
            assert!(
                parse_args(&s(bad), Some("15:00.0".into())).is_err(),
                "{bad:?}"
            );
        }
        assert!(parse_args(&[], None).is_err());
        assert_eq!(parse_args(&s(&["--help"]), None).unwrap(), None);
    }

    #[test]
    fn steps_depend_on_earlier_steps() {
        let mut names = HashSet::new();
        for step in STEPS {
            for dep in step.deps {
                assert!(names.contains(dep), "{} depends on {dep}", step.name);
            }
            assert!(names.insert(step.name), "{} twice", step.name);
        }
    }

    #[test]
    fn scratch_accesses_stay_in_the_scratch_space() {
        for &(rel, size) in SCRATCH_ACCESSES {
            assert!(rel >= accel::REG_SCRATCH);
            assert!(rel + size as u64 <= accel::SLOT_SIZE);
            assert_eq!(rel % size as u64, 0, "{rel:#x} is not {size}-aligned");
        }
    }
}
