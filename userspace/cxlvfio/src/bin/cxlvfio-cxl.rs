//! `cxlvfio-cxl`: in-VM tests of the CXL ABI of `cxl-vfio-pci`, reported as KTAP.
//!
//! Runs as root in the guest after the harness has loaded the module and bound the
//! device. Like a VMM it only uses the VFIO UAPI: the emulated HDM decoder
//! registers in the COMP_REGS device-specific region, and the virtualized CXL
//! Device DVSEC in the config region. The device's sysfs `config` (the real
//! hardware DVSEC) and sysfs `resource<N>` of the component register BAR (the
//! real HDM decoders, mapped by the host, past the driver) serve as the
//! reference for what must pass through and what must never change. Through
//! VFIO the component register block in that BAR is emulated too: it is never
//! mapped, and its CXL.mem part reads and writes as COMP_REGS does.
//!
//! Every write is also applied to a reference model of the rules
//! ([`cxlvfio::cxl`]); after each one the whole register block is read back and
//! compared with the model, so side effects on other registers show up too.
//!
//! The device is opened in the IOMMU mode `CXLVFIO_IOMMU` names (`noiommu`, `type1`,
//! `iommufd`; unset or `auto`: the no-IOMMU group if there is one, else type1), see
//! [`cxlvfio::iommu`].
//!
//! ```text
//! cxlvfio-cxl [--device <BDF>] [--expect-ids VVVV:DDDD] [--expect-decoders N] [--expect-no-cxl]
//! ```

use std::collections::HashSet;
use std::fs;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use cxlvfio::cli;
use cxlvfio::cxl::*;
use cxlvfio::error::raw_os_error;
use cxlvfio::ktap::{Failure, Ktap, StepResult};
use cxlvfio::mmap::PAGE_SIZE;
use cxlvfio::uapi::{
    device_flags_str, region_flags_str, VfioDeviceInfoCapCxl, VFIO_DEVICE_FLAGS_CXL,
    VFIO_DEVICE_INFO_CAP_CXL, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_NUM_REGIONS,
    VFIO_REGION_INFO_CAP_CXL_COMP_REGS, VFIO_REGION_INFO_CAP_SPARSE_MMAP,
    VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE, VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
};
use cxlvfio::{kmsg, open_device, pci, AttachedDevice, Device, DeviceInfo};
use cxlvfio::{kmsg::read_kernel_log, RegionInfo};

/// QEMU `cxl-type3` PCI IDs.
const DEFAULT_IDS: (u16, u16) = (0x8086, 0x0d93);
/// At most this many kernel log lines are printed.
const MAX_LOG_LINES: usize = 40;

const USAGE: &str = "usage: cxlvfio-cxl [--device <BDF>] [--expect-ids VVVV:DDDD] \
[--expect-decoders N] [--expect-no-cxl]\n\
\n\
Tests the CXL ABI of cxl-vfio-pci (COMP_REGS region, CXL Device DVSEC\n\
virtualization) on <BDF> (default: $CXL_BDF) through VFIO and prints KTAP.\n\
COMP_REGS must show the capability array and the HDM decoders the hardware has\n\
(--expect-decoders N: and N decoders), and decoder 0 with the size firmware\n\
committed in the hardware.\n\
--expect-no-cxl: the module was loaded with disable_cxl=1; only check that the\n\
device has no COMP_REGS region and still opens and reads config space.\n\
Exit status 0 if every test passed.";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    bdf: String,
    vendor: u16,
    device: u16,
    no_cxl: bool,
    /// HDM decoders the device must have (default: whatever the hardware has).
    decoders: Option<usize>,
}

/// `Ok(None)` means help was requested.
fn parse_args(args: &[String], env_bdf: Option<String>) -> Result<Option<Options>, String> {
    let mut no_cxl = false;
    let mut decoders = None;
    let dev = cli::parse_device_args(args, env_bdf, DEFAULT_IDS, |opt| match opt.key {
        "--expect-no-cxl" if opt.inline.is_none() => {
            no_cxl = true;
            Ok(true)
        }
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
        _ => Ok(false),
    })?;
    Ok(dev.map(|dev| Options {
        bdf: dev.bdf,
        vendor: dev.vendor,
        device: dev.device,
        no_cxl,
        decoders,
    }))
}

/// Where the CXL Device DVSEC is in config space.
#[derive(Debug, Clone, Copy)]
struct DvsecLoc {
    base: usize,
    len: usize,
}

/// State shared by the steps.
struct Ctx {
    opts: Options,
    vfio: Option<AttachedDevice>,
    info: Option<DeviceInfo>,
    /// Offset of the config region in the device fd.
    config_offset: u64,
    /// The COMP_REGS region.
    comp: Option<RegionInfo>,
    layout: Option<HdmLayout>,
    /// The expected COMP_REGS contents.
    model: Option<CompRegsModel>,
    /// COMP_REGS as read at the first open, before any write.
    comp_first_view: Option<Vec<u32>>,
    /// The BAR holding the component registers (Register Locator DVSEC).
    comp_bar: u32,
    /// Offset in that BAR of the CXL.mem area.
    cm_bar_offset: u64,
    /// The real CXL.mem registers (sysfs) covering the COMP_REGS range, before any write.
    bar_before: Option<Vec<u32>>,
    dvsec: Option<DvsecLoc>,
    /// The expected DVSEC shadow.
    dvsec_model: Option<DvsecModel>,
    /// The hardware DVSEC (sysfs) before any DVSEC write.
    hw_dvsec_before: Option<Vec<u8>>,
    /// The DVSEC as VFIO showed it at the first open.
    dvsec_first_view: Option<Vec<u8>>,
    /// CXL Reset log lines already in the log when the current open started.
    reset_log_base: usize,
    /// CXL Reset log lines the first open produced (set at reopen).
    first_open_reset_lines: Option<usize>,
    /// CXL Reset log lines in the log just before VFIO_DEVICE_RESET.
    lines_at_device_reset: Option<usize>,
}

impl Ctx {
    fn new(opts: Options) -> Self {
        Ctx {
            opts,
            vfio: None,
            info: None,
            config_offset: 0,
            comp: None,
            layout: None,
            model: None,
            comp_first_view: None,
            comp_bar: 0,
            cm_bar_offset: CXL_CM_OFFSET,
            bar_before: None,
            dvsec: None,
            dvsec_model: None,
            hw_dvsec_before: None,
            dvsec_first_view: None,
            reset_log_base: 0,
            first_open_reset_lines: None,
            lines_at_device_reset: None,
        }
    }

    fn dev(&self) -> Result<&Device, String> {
        self.vfio
            .as_deref()
            .ok_or_else(|| "device is not open".to_string())
    }

    fn comp(&self) -> Result<&RegionInfo, String> {
        self.comp
            .as_ref()
            .ok_or_else(|| "no COMP_REGS region".to_string())
    }

    fn layout(&self) -> Result<HdmLayout, String> {
        self.layout.ok_or_else(|| "no HDM layout".to_string())
    }

    fn model(&self) -> Result<&CompRegsModel, String> {
        self.model
            .as_ref()
            .ok_or_else(|| "no COMP_REGS model".to_string())
    }

    // --- COMP_REGS ----------------------------------------------------------

    /// One pread of `len` bytes at `off` of COMP_REGS (no bounds check of our own).
    fn comp_pread(&self, off: u64, len: usize) -> io::Result<Vec<u8>> {
        let comp = self.comp().map_err(io::Error::other)?;
        pread_once(
            self.dev().map_err(io::Error::other)?,
            comp.offset + off,
            len,
        )
    }

    /// One pwrite of `data` at `off` of COMP_REGS.
    fn comp_pwrite(&self, off: u64, data: &[u8]) -> io::Result<usize> {
        let comp = self.comp().map_err(io::Error::other)?;
        pwrite_once(
            self.dev().map_err(io::Error::other)?,
            comp.offset + off,
            data,
        )
    }

    fn comp_read(&self, off: usize) -> Result<u32, String> {
        let b = self
            .comp_pread(off as u64, 4)
            .map_err(|e| format!("read COMP_REGS +{off:#x}: {e}"))?;
        let b: [u8; 4] = b
            .as_slice()
            .try_into()
            .map_err(|_| format!("read COMP_REGS +{off:#x}: {} bytes, expected 4", b.len()))?;
        Ok(u32::from_le_bytes(b))
    }

    /// Every dword the model covers.
    fn comp_read_all(&self) -> Result<Vec<u32>, String> {
        let n = self.model()?.regs.len();
        (0..n).map(|i| self.comp_read(i * 4)).collect()
    }

    /// Writes `value` at `off` (must be accepted as 4 bytes) and applies it to the model.
    fn comp_write(&mut self, off: usize, value: u32) -> Result<(), String> {
        let n = self
            .comp_pwrite(off as u64, &value.to_le_bytes())
            .map_err(|e| format!("write {value:#010x} at COMP_REGS +{off:#x}: {e}"))?;
        if n != 4 {
            return Err(format!(
                "write {value:#010x} at COMP_REGS +{off:#x}: {n} bytes written, expected 4"
            ));
        }
        self.model
            .as_mut()
            .ok_or("no COMP_REGS model")?
            .write(off, value);
        Ok(())
    }

    /// Reads the whole region back and compares it with the model.
    fn comp_check(&self, diag: &mut Vec<String>, after: &str) -> Result<(), String> {
        let actual = self.comp_read_all()?;
        let diffs = self.model()?.diff(&actual);
        if diffs.is_empty() {
            return Ok(());
        }
        diag.push(format!("after {after}:"));
        diag.extend(diffs.iter().map(|d| format!("  {d}")));
        Err(format!(
            "after {after}: {} register(s) differ from the rules",
            diffs.len()
        ))
    }

    /// Writes and checks the whole region.
    fn comp_step(&mut self, diag: &mut Vec<String>, off: usize, value: u32) -> Result<(), String> {
        let name = self.layout()?.reg_name(off);
        self.comp_write(off, value)?;
        self.comp_check(
            diag,
            &format!("writing {value:#010x} to {name} (+{off:#x})"),
        )
    }

    /// `n` real CXL.mem registers from `off` of the area: 32-bit loads from the
    /// host's mapping of the component BAR (sysfs `resource<N>`), not VFIO, which
    /// emulates the block.
    fn hw_cm_dwords(&self, off: usize, n: usize) -> Result<Vec<u32>, String> {
        hw_dwords(
            &self.opts.bdf,
            self.comp_bar,
            self.cm_bar_offset + off as u64,
            n,
        )
    }

    /// The real CXL.mem register at `off` of the area (see [`Ctx::hw_cm_dwords`]).
    fn hw_read(&self, off: usize) -> Result<u32, String> {
        Ok(self.hw_cm_dwords(off, 1)?[0])
    }

    // --- the component register BAR through VFIO ------------------------------

    /// Where the component register block is, its BAR's region, and that BAR's size.
    fn comp_bar(&self) -> Result<CompBar, String> {
        let cfg = self.sysfs_config()?;
        let (bar, block) = component_block(&cfg)
            .ok_or("no component register block in the Register Locator DVSEC")?;
        let bar = u32::from(bar);
        let bar_size = pci::resource(&self.opts.bdf, bar as usize)
            .map_err(|e| e.to_string())?
            .size();
        if block >= bar_size {
            return Err(format!(
                "component block at {block:#x} is outside BAR{bar} of {bar_size:#x} bytes"
            ));
        }
        let region = self.dev()?.region_info(bar).map_err(|e| e.to_string())?;
        Ok(CompBar {
            bar,
            block,
            block_size: comp_block_size(bar_size, block),
            bar_size,
            region,
        })
    }

    // --- config space / DVSEC -----------------------------------------------

    fn loc(&self) -> Result<DvsecLoc, String> {
        self.dvsec.ok_or_else(|| "DVSEC not located".to_string())
    }

    fn dmodel(&self) -> Result<&DvsecModel, String> {
        self.dvsec_model
            .as_ref()
            .ok_or_else(|| "no DVSEC model".to_string())
    }

    /// One pread of `len` bytes at config offset `pos`; must return all of them.
    fn cfg_read(&self, pos: usize, len: usize) -> Result<Vec<u8>, String> {
        let b = pread_once(self.dev()?, self.config_offset + pos as u64, len)
            .map_err(|e| format!("config read of {len} bytes at {pos:#x}: {e}"))?;
        if b.len() != len {
            return Err(format!(
                "config read of {len} bytes at {pos:#x} returned {}",
                b.len()
            ));
        }
        Ok(b)
    }

    /// One pwrite of `bytes` at config offset `pos`; the DVSEC part goes to the model.
    /// Returns whether it wrote Initiate CXL Reset.
    fn cfg_write(&mut self, pos: usize, bytes: &[u8]) -> Result<bool, String> {
        let n = pwrite_once(self.dev()?, self.config_offset + pos as u64, bytes)
            .map_err(|e| format!("config write of {bytes:02x?} at {pos:#x}: {e}"))?;
        if n != bytes.len() {
            return Err(format!(
                "config write of {bytes:02x?} at {pos:#x} wrote {n} bytes"
            ));
        }
        let loc = self.loc()?;
        let model = self.dvsec_model.as_mut().ok_or("no DVSEC model")?;
        // Only the bytes inside the DVSEC are the model's.
        let skip = loc.base.saturating_sub(pos).min(bytes.len());
        let rel = (pos + skip).saturating_sub(loc.base);
        Ok(model.write(rel, &bytes[skip..]))
    }

    /// The DVSEC through VFIO, read `chunk` bytes at a time.
    fn dvsec_view_by(&self, chunk: usize) -> Result<Vec<u8>, String> {
        let loc = self.loc()?;
        let mut v = Vec::with_capacity(loc.len);
        let mut off = 0;
        while off < loc.len {
            let n = chunk.min(loc.len - off);
            v.extend(self.cfg_read(loc.base + off, n)?);
            off += n;
        }
        Ok(v)
    }

    /// The DVSEC through VFIO, each register read at its natural size (the
    /// reference view the rule checks use; other access sizes are tested apart).
    fn dvsec_view(&self) -> Result<Vec<u8>, String> {
        let loc = self.loc()?;
        let mut v = Vec::with_capacity(loc.len);
        for (off, size) in dvsec_registers(loc.len) {
            v.extend(self.cfg_read(loc.base + off, size)?);
        }
        Ok(v)
    }

    /// Re-reads both shadows into the models, so that a step checks its own
    /// writes only and a driver bug does not spill into the steps after it.
    fn resync(&mut self) {
        if let (Some(m), Ok(regs)) = (self.model.as_ref(), self.comp_read_all()) {
            if regs.len() == m.regs.len() {
                if let Some(m) = self.model.as_mut() {
                    m.regs = regs;
                }
            }
        }
        if self.dvsec_model.is_some() {
            if let (Ok(view), Ok(hw)) = (self.dvsec_view(), self.hw_dvsec()) {
                self.dvsec_model = Some(DvsecModel::new(&view, &hw));
            }
        }
    }

    /// The whole config space from sysfs: the hardware, not VFIO's view.
    fn sysfs_config(&self) -> Result<Vec<u8>, String> {
        let b = self.sysfs_config_any()?;
        if b.len() < 0x1000 {
            let path = pci::device_dir(&self.opts.bdf).join("config");
            return Err(format!(
                "{}: only {} bytes (not root?)",
                path.display(),
                b.len()
            ));
        }
        Ok(b)
    }

    /// The device's configuration space as sysfs shows it: 256 bytes for a conventional PCI
    /// function, 4096 with extended space (as root).
    fn sysfs_config_any(&self) -> Result<Vec<u8>, String> {
        let path = pci::device_dir(&self.opts.bdf).join("config");
        fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))
    }

    /// The hardware DVSEC bytes.
    fn hw_dvsec(&self) -> Result<Vec<u8>, String> {
        let loc = self.loc()?;
        Ok(self.sysfs_config()?[loc.base..loc.base + loc.len].to_vec())
    }

    /// Reads the DVSEC back and compares it with the model over the current hardware.
    fn dvsec_check(&self, diag: &mut Vec<String>, after: &str) -> Result<(), String> {
        let view = self.dvsec_view()?;
        let want = self.dmodel()?.expected_view(&self.hw_dvsec()?);
        let diffs = dvsec_diff(&view, &want);
        if diffs.is_empty() {
            return Ok(());
        }
        diag.push(format!("after {after}:"));
        diag.extend(diffs.iter().map(|d| format!("  {d}")));
        Err(format!(
            "after {after}: {} DVSEC register(s) differ from the rules",
            diffs.len()
        ))
    }

    /// Writes `bytes` at DVSEC offset `rel` and checks the whole DVSEC.
    fn dvsec_step(
        &mut self,
        diag: &mut Vec<String>,
        rel: usize,
        bytes: &[u8],
    ) -> Result<(), String> {
        let base = self.loc()?.base;
        self.cfg_write(base + rel, bytes)?;
        self.dvsec_check(
            diag,
            &format!(
                "writing {} at DVSEC+{rel:#x} ({})",
                hex_le(bytes),
                dvsec_reg_name(rel)
            ),
        )
    }

    /// A 16-bit DVSEC register as VFIO shows it.
    fn dvsec_read16(&self, rel: usize) -> Result<u16, String> {
        let b = self.cfg_read(self.loc()?.base + rel, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
}

/// `bytes` as a little-endian hex number: `[0x34, 0x12]` is `0x1234`.
fn hex_le(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
    format!(
        "0x{digits} ({} byte{})",
        bytes.len(),
        if bytes.len() == 1 { "" } else { "s" }
    )
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

/// Kernel log lines that report an unsupported CXL Reset request for `bdf`.
fn cxl_reset_log_lines(bdf: &str) -> Result<Vec<String>, String> {
    let log = read_kernel_log().map_err(|e| format!("kernel log: {e}"))?;
    Ok(log
        .into_iter()
        .filter(|l| is_cxl_reset_line(l, bdf))
        .collect())
}

/// A log line of the driver saying a CXL Reset request is not supported.
fn is_cxl_reset_line(line: &str, bdf: &str) -> bool {
    let l = line.to_ascii_lowercase();
    line.contains(bdf)
        && l.contains("cxl reset")
        && (l.contains("not supported") || l.contains("unsupported"))
}

type StepFn = fn(&mut Ctx, &mut Vec<String>) -> StepResult;

/// One test: its KTAP name, the steps that must have passed, and the body.
struct Step {
    name: &'static str,
    deps: &'static [&'static str],
    run: StepFn,
}

const OPEN: &[&str] = &["vfio_open"];
const REGION: &[&str] = &["comp_regs_cap_array"];
const DVSEC: &[&str] = &["dvsec_located"];

const STEPS: &[Step] = &[
    Step {
        name: "vfio_open",
        deps: &[],
        run: vfio_open,
    },
    Step {
        name: "comp_regs_region_info",
        deps: OPEN,
        run: comp_regs_region_info,
    },
    Step {
        name: "comp_regs_region_flags",
        deps: &["comp_regs_region_info"],
        run: comp_regs_region_flags,
    },
    Step {
        name: "comp_regs_cap_array",
        deps: &["comp_regs_region_info"],
        run: comp_regs_cap_array,
    },
    Step {
        name: "comp_regs_region_size",
        deps: REGION,
        run: comp_regs_region_size,
    },
    Step {
        name: "comp_regs_region_cap",
        deps: &["comp_regs_region_info"],
        run: comp_regs_region_cap,
    },
    Step {
        name: "comp_regs_firmware_decoder_view",
        deps: REGION,
        run: comp_regs_firmware_decoder_view,
    },
    Step {
        name: "comp_regs_bad_access_size",
        deps: REGION,
        run: comp_regs_bad_access_size,
    },
    Step {
        name: "comp_regs_misaligned_access",
        deps: REGION,
        run: comp_regs_misaligned_access,
    },
    Step {
        name: "comp_regs_out_of_range_access",
        deps: REGION,
        run: comp_regs_out_of_range_access,
    },
    Step {
        name: "comp_regs_mmap_refused",
        deps: &["comp_regs_region_info"],
        run: comp_regs_mmap_refused,
    },
    Step {
        name: "comp_regs_cap_array_writes_discarded",
        deps: REGION,
        run: comp_regs_cap_array_writes_discarded,
    },
    Step {
        name: "comp_regs_hdm_cap_read_only",
        deps: REGION,
        run: comp_regs_hdm_cap_read_only,
    },
    Step {
        name: "comp_regs_global_ctrl_masks",
        deps: REGION,
        run: comp_regs_global_ctrl_masks,
    },
    Step {
        name: "comp_regs_hdm_reserved_discarded",
        deps: REGION,
        run: comp_regs_hdm_reserved_discarded,
    },
    Step {
        name: "comp_regs_decoder_base_size_masks",
        deps: REGION,
        run: comp_regs_decoder_base_size_masks,
    },
    Step {
        name: "comp_regs_decoder_ctrl_masks",
        deps: REGION,
        run: comp_regs_decoder_ctrl_masks,
    },
    Step {
        name: "comp_regs_decoder_commit_mirror",
        deps: REGION,
        run: comp_regs_decoder_commit_mirror,
    },
    Step {
        name: "comp_regs_decoder_other_discarded",
        deps: REGION,
        run: comp_regs_decoder_other_discarded,
    },
    Step {
        name: "comp_regs_locked_base_size_ignored",
        deps: REGION,
        run: comp_regs_locked_base_size_ignored,
    },
    Step {
        name: "comp_regs_locked_ctrl",
        deps: REGION,
        run: comp_regs_locked_ctrl,
    },
    Step {
        name: "comp_bar_region_info",
        deps: OPEN,
        run: comp_bar_region_info,
    },
    Step {
        name: "comp_bar_mmap_refused",
        deps: OPEN,
        run: comp_bar_mmap_refused,
    },
    Step {
        name: "comp_bar_reads_emulated",
        deps: REGION,
        run: comp_bar_reads_emulated,
    },
    Step {
        name: "comp_bar_writes_emulated",
        deps: REGION,
        run: comp_bar_writes_emulated,
    },
    Step {
        name: "comp_regs_hardware_untouched",
        deps: REGION,
        run: comp_regs_hardware_untouched,
    },
    Step {
        name: "dvsec_located",
        deps: OPEN,
        run: dvsec_located,
    },
    Step {
        name: "dvsec_passthrough_reads",
        deps: DVSEC,
        run: dvsec_passthrough_reads,
    },
    Step {
        name: "dvsec_read_sizes_agree",
        deps: DVSEC,
        run: dvsec_read_sizes_agree,
    },
    Step {
        name: "dvsec_read_only_writes_discarded",
        deps: DVSEC,
        run: dvsec_read_only_writes_discarded,
    },
    Step {
        name: "dvsec_control_masks",
        deps: DVSEC,
        run: dvsec_control_masks,
    },
    Step {
        name: "dvsec_control_io_enable",
        deps: DVSEC,
        run: dvsec_control_io_enable,
    },
    Step {
        name: "dvsec_status_viral_w1c",
        deps: DVSEC,
        run: dvsec_status_viral_w1c,
    },
    Step {
        name: "dvsec_control2_masks",
        deps: DVSEC,
        run: dvsec_control2_masks,
    },
    Step {
        name: "dvsec_control2_action_bits",
        deps: DVSEC,
        run: dvsec_control2_action_bits,
    },
    Step {
        name: "dvsec_status2_from_hardware",
        deps: DVSEC,
        run: dvsec_status2_from_hardware,
    },
    Step {
        name: "dvsec_range_base_shadow",
        deps: DVSEC,
        run: dvsec_range_base_shadow,
    },
    Step {
        name: "dvsec_straddling_writes",
        deps: DVSEC,
        run: dvsec_straddling_writes,
    },
    Step {
        name: "dvsec_straddling_reads",
        deps: DVSEC,
        run: dvsec_straddling_reads,
    },
    Step {
        name: "dvsec_lock_reserved_bits",
        deps: DVSEC,
        run: dvsec_lock_reserved_bits,
    },
    Step {
        name: "dvsec_lock_freezes_control",
        deps: DVSEC,
        run: dvsec_lock_freezes_control,
    },
    Step {
        name: "config_outside_dvsec",
        deps: DVSEC,
        run: config_outside_dvsec,
    },
    Step {
        name: "dvsec_hardware_unchanged",
        deps: DVSEC,
        run: dvsec_hardware_unchanged,
    },
    Step {
        name: "host_dvsecs_read_only",
        deps: DVSEC,
        run: host_dvsecs_read_only,
    },
    Step {
        name: "dvsec_lock_cleared_by_device_reset",
        deps: DVSEC,
        run: dvsec_lock_cleared_by_device_reset,
    },
    Step {
        name: "dvsec_lock_cleared_by_sysfs_reset",
        deps: DVSEC,
        run: dvsec_lock_cleared_by_sysfs_reset,
    },
    Step {
        name: "reopen",
        deps: &["comp_regs_cap_array", "dvsec_located"],
        run: reopen,
    },
    Step {
        name: "comp_regs_reset_on_reopen",
        deps: &["reopen"],
        run: comp_regs_reset_on_reopen,
    },
    Step {
        name: "dvsec_reset_on_reopen",
        deps: &["reopen"],
        run: dvsec_reset_on_reopen,
    },
    Step {
        name: "dvsec_cxl_reset_logged_once_per_open",
        deps: &["reopen"],
        run: dvsec_cxl_reset_logged_once_per_open,
    },
    Step {
        name: "kernel_log_clean",
        deps: &[],
        run: kernel_log_clean,
    },
];

const NO_CXL_STEPS: &[Step] = &[
    Step {
        name: "vfio_open",
        deps: &[],
        run: vfio_open,
    },
    Step {
        name: "no_comp_regs_region",
        deps: OPEN,
        run: no_comp_regs_region,
    },
    Step {
        name: "config_readable",
        deps: OPEN,
        run: config_readable,
    },
];

// ---------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------

/// Opens the device and reads its info and the config region's offset.
fn open_all(ctx: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let device = open_device(&ctx.opts.bdf).map_err(|e| e.to_string())?;
    diag.push(format!("opened {}", device.describe()));
    let info = device.info().map_err(|e| e.to_string());
    let config = device
        .region_info(VFIO_PCI_CONFIG_REGION_INDEX)
        .map_err(|e| e.to_string());
    ctx.vfio = Some(device);
    let info = info?;
    diag.push(format!(
        "flags {:#x} [{}], num_regions {}, num_irqs {}",
        info.flags,
        device_flags_str(info.flags),
        info.num_regions,
        info.num_irqs
    ));
    if let Some(cap) = cxl_device_cap(&info) {
        diag.push(format!(
            "CXL device cap: flags {:#x}, BAR{} +{:#x}, dpa region {}, comp_regs region {}",
            cap.flags,
            cap.hdm_regs_bar_index,
            cap.hdm_regs_offset,
            cap.dpa_region_index,
            cap.comp_regs_region_index
        ));
    }
    ctx.config_offset = config?.offset;
    ctx.info = Some(info);
    ctx.reset_log_base = cxl_reset_log_lines(&ctx.opts.bdf)?.len();
    Ok(())
}

/// The `VFIO_DEVICE_INFO_CAP_CXL` capability, if the device reports one.
fn cxl_device_cap(info: &DeviceInfo) -> Option<VfioDeviceInfoCapCxl> {
    let cap = info
        .capabilities()
        .into_iter()
        .find(|c| c.id == VFIO_DEVICE_INFO_CAP_CXL)?;
    let d = &cap.data;
    let u32_at = |o: usize| Some(u32::from_ne_bytes(d.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_ne_bytes(d.get(o..o + 8)?.try_into().ok()?));
    Some(VfioDeviceInfoCapCxl {
        header: Default::default(),
        hdm_regs_bar_index: *d.first()?,
        reserved: [0; 3],
        flags: u32_at(4)?,
        hdm_regs_offset: u64_at(8)?,
        dpa_region_index: u32_at(16)?,
        comp_regs_region_index: u32_at(20)?,
    })
}

/// Device-specific regions whose type capability is COMP_REGS.
fn find_comp_regs(
    dev: &Device,
    info: &DeviceInfo,
    diag: &mut Vec<String>,
) -> Result<Vec<RegionInfo>, String> {
    let mut found = Vec::new();
    for index in VFIO_PCI_NUM_REGIONS..info.num_regions {
        let r = dev.region_info(index).map_err(|e| e.to_string())?;
        let caps = r.capabilities();
        let types: Vec<String> = caps
            .iter()
            .filter(|c| c.id == VFIO_REGION_INFO_CAP_TYPE)
            .map(|c| match c.region_type() {
                Some((t, s)) => format!("type {t:#x}/{s} v{}", c.version),
                None => "truncated type cap".to_string(),
            })
            .collect();
        diag.push(format!(
            "region {index}: size {:#x} offset {:#x} flags [{}] caps {:?} {}",
            r.size,
            r.offset,
            region_flags_str(r.flags),
            caps.iter().map(|c| c.id).collect::<Vec<_>>(),
            types.join(", ")
        ));
        if caps.iter().any(|c| {
            c.region_type() == Some((VFIO_REGION_TYPE_CXL, VFIO_REGION_SUBTYPE_CXL_COMP_REGS))
        }) {
            found.push(r);
        }
    }
    Ok(found)
}

fn vfio_open(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    open_all(ctx, diag)?;
    let info = ctx.info.as_ref().ok_or("no device info")?;
    if !info.is_pci() {
        return Err("VFIO_DEVICE_FLAGS_PCI not set".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// COMP_REGS
// ---------------------------------------------------------------------------

fn comp_regs_region_info(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let info = ctx.info.clone().ok_or("no device info")?;
    let found = find_comp_regs(ctx.dev()?, &info, diag)?;
    let region = match found.as_slice() {
        [] => {
            return Err(format!(
                "no region of type {VFIO_REGION_TYPE_CXL:#x} subtype {VFIO_REGION_SUBTYPE_CXL_COMP_REGS} among {} regions",
                info.num_regions
            )
            .into())
        }
        [r] => r.clone(),
        many => {
            return Err(format!(
                "{} COMP_REGS regions: {:?}",
                many.len(),
                many.iter().map(|r| r.index).collect::<Vec<_>>()
            )
            .into())
        }
    };
    diag.push(format!(
        "COMP_REGS is region {}: size {:#x}",
        region.index, region.size
    ));
    let index = region.index;
    ctx.comp = Some(region);
    if let Some(cap) = cxl_device_cap(&info) {
        if cap.comp_regs_region_index != index {
            return Err(format!(
                "the CXL device capability names region {}, the type capability region {index}",
                cap.comp_regs_region_index
            )
            .into());
        }
    }
    if index < VFIO_PCI_NUM_REGIONS {
        return Err(format!("index {index} is not device-specific").into());
    }
    Ok(())
}

fn comp_regs_region_flags(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let r = ctx.comp()?;
    diag.push(format!(
        "flags {:#x} [{}]",
        r.flags,
        region_flags_str(r.flags)
    ));
    if !r.has_flags(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE) {
        return Err("READ|WRITE not both set".into());
    }
    if r.flags & VFIO_REGION_INFO_FLAG_MMAP != 0 {
        return Err("MMAP is set".into());
    }
    Ok(())
}

fn comp_regs_cap_array(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let size = ctx.comp()?.size as usize;
    let header = ctx.comp_read(0)?;
    let n = CapArray::array_size(header);
    diag.push(format!("header {header:#010x}: {n} entries"));
    if (n + 1) * 4 > size {
        return Err(format!("array of {n} entries does not fit the region ({size:#x})").into());
    }
    let dwords: Vec<u32> = (0..=n)
        .map(|i| ctx.comp_read(i * 4))
        .collect::<Result<_, _>>()?;
    let array = CapArray::parse(&dwords)?;
    for e in &array.entries {
        diag.push(format!(
            "  cap id {} v{} at +{:#x}",
            e.id, e.version, e.offset
        ));
    }
    // Where the real CXL.mem area is: from the Register Locator DVSEC.
    let cfg = ctx.sysfs_config()?;
    match component_block(&cfg) {
        Some((bar, off)) => {
            ctx.comp_bar = u32::from(bar);
            ctx.cm_bar_offset = off + CXL_CM_OFFSET;
        }
        None => diag.push(format!(
            "no component register block in the Register Locator: comparing with BAR0 +{CXL_CM_OFFSET:#x}"
        )),
    }
    let hdm = *array
        .find(CXL_CM_CAP_CAP_ID_HDM)
        .ok_or("no HDM decoder capability (id 5) in the array")?;
    let h = hdm.offset;
    if h % 4 != 0 || h < (n + 1) * 4 || h + HDM_DECODER_FIRST > size {
        return Err(format!(
            "HDM block at +{h:#x} is misaligned, inside the array or past the region"
        )
        .into());
    }
    let cap = ctx.comp_read(h + HDM_CAP)?;
    let count = hdm_decoder_count(cap)
        .ok_or_else(|| format!("HDM capability {cap:#010x}: reserved decoder count"))?;
    let cache_capable = match find_dvsec(&cfg, DVSEC_VENDOR_CXL, DVSEC_ID_CXL_DEVICE) {
        Some((pos, _)) => {
            u16::from_le_bytes([cfg[pos + DVSEC_CAPABILITY], cfg[pos + DVSEC_CAPABILITY + 1]])
                & DVSEC_CAP_CACHE
                != 0
        }
        None => return Err("no CXL Device DVSEC in sysfs config".into()),
    };
    let layout = HdmLayout {
        hdm_offset: h,
        count,
        cap,
        cache_capable,
    };
    diag.push(format!(
        "HDM block at +{h:#x}: capability {cap:#010x}, {count} decoder(s), cache capable {cache_capable}; CXL.mem area at BAR{} +{:#x}",
        ctx.comp_bar, ctx.cm_bar_offset
    ));
    ctx.layout = Some(layout);
    let n_dwords = layout.region_size().min(size) / 4;
    let regs: Vec<u32> = (0..n_dwords)
        .map(|i| ctx.comp_read(i * 4))
        .collect::<Result<_, _>>()?;
    ctx.comp_first_view = Some(regs.clone());
    ctx.model = Some(CompRegsModel::new(layout, regs));
    let bar = ctx.hw_cm_dwords(0, layout.region_size() / 4)?;
    ctx.bar_before = Some(bar.clone());

    let mut problems = Vec::new();
    if dwords[..] != bar[..=n] {
        problems.push(format!(
            "array {dwords:08x?} differs from the hardware's {:08x?}",
            &bar[..=n]
        ));
    }
    if cap != bar[h / 4] {
        problems.push(format!(
            "HDM capability {cap:#010x} differs from the hardware's {:#010x}",
            bar[h / 4]
        ));
    }
    for id in [CXL_CM_CAP_CAP_ID_RAS, CXL_CM_CAP_CAP_ID_LINK] {
        if array.find(id).is_none() {
            problems.push(format!(
                "capability id {id} missing (the QEMU device has RAS and link)"
            ));
        }
    }
    // Where the HDM block is and how many decoders it has are the hardware's (the array
    // and the capability were compared above); QEMU 7.2's type-3 has one at +0x110,
    // QEMU 10.0's four at +0x128, cxl-accel 1, 2 or 4 there.
    if let Some(want) = ctx.opts.decoders {
        if count != want {
            problems.push(format!(
                "HDM at +{h:#x} with {count} decoder(s), expected {want}"
            ));
        }
    }
    all_ok(problems, diag)
}

fn comp_regs_region_size(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let size = ctx.comp()?.size;
    let l = ctx.layout()?;
    let want = l.region_size() as u64;
    diag.push(format!(
        "size {size:#x}; HDM +{:#x} + 0x10 + 0x20 * {} = {want:#x}",
        l.hdm_offset, l.count
    ));
    if size != want {
        return Err(format!("size {size:#x}, expected {want:#x}").into());
    }
    Ok(())
}

fn comp_regs_firmware_decoder_view(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    let r = |reg| ctx.comp_read(l.dec_reg(0, reg));
    let (blo, bhi, slo, shi, ctrl) = (
        r(DEC_BASE_LO)?,
        r(DEC_BASE_HI)?,
        r(DEC_SIZE_LO)?,
        r(DEC_SIZE_HI)?,
        r(DEC_CTRL)?,
    );
    diag.push(format!(
        "COMP_REGS decoder 0: base {bhi:#010x}_{blo:08x} size {shi:#010x}_{slo:08x} ctrl {ctrl:#010x}"
    ));
    let hw = |reg| ctx.hw_read(l.dec_reg(0, reg));
    let mut problems = Vec::new();
    // The size firmware committed, as the hardware holds it.
    let mut firmware_size = None;
    match (
        hw(DEC_BASE_LO),
        hw(DEC_BASE_HI),
        hw(DEC_SIZE_LO),
        hw(DEC_SIZE_HI),
        hw(DEC_CTRL),
    ) {
        (Ok(hblo), Ok(hbhi), Ok(hslo), Ok(hshi), Ok(hctrl)) => {
            diag.push(format!(
                "hardware decoder 0 (sysfs resource{}): base {hbhi:#010x}_{hblo:08x} size {hshi:#010x}_{hslo:08x} ctrl {hctrl:#010x}",
                ctx.comp_bar
            ));
            firmware_size = Some((u64::from(hshi) << 32) | u64::from(hslo & LOW_ADDR_MASK));
        }
        (a, b, c, d, e) => problems.push(format!(
            "hardware decoder 0 unreadable: {:?}",
            [a, b, c, d, e].into_iter().find_map(Result::err)
        )),
    }
    if ctrl & CTRL_LOCK != 0 {
        problems.push(format!("CTRL {ctrl:#010x}: LOCK is set"));
    }
    if ctrl & CTRL_COMMITTED == 0 {
        problems.push(format!("CTRL {ctrl:#010x}: COMMITTED is clear"));
    }
    if blo != 0 || bhi != 0 {
        problems.push(format!(
            "BASE is {bhi:#x}_{blo:08x}: a host physical address is visible"
        ));
    }
    let size = (u64::from(shi) << 32) | u64::from(slo & LOW_ADDR_MASK);
    if let Some(want) = firmware_size {
        if size != want || slo & !LOW_ADDR_MASK != 0 {
            problems.push(format!(
                "SIZE is {shi:#x}_{slo:08x}, firmware committed {want:#x}"
            ));
        }
    }
    all_ok(problems, diag)
}

fn comp_regs_bad_access_size(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    let mut problems = Vec::new();
    let base_lo = l.dec_reg(0, DEC_BASE_LO) as u64;
    let size_lo = l.dec_reg(0, DEC_SIZE_LO) as u64;
    for len in [1usize, 2, 3, 8, 16] {
        for off in [0, l.hdm_offset as u64, base_lo] {
            if let Err(p) = expect_einval(
                ctx.comp_pread(off, len),
                &format!("{len}-byte read at +{off:#x}"),
            ) {
                problems.push(p);
            }
        }
        for off in [base_lo, size_lo] {
            let data = vec![0x5a; len];
            if let Err(p) = expect_einval(
                ctx.comp_pwrite(off, &data),
                &format!("{len}-byte write at +{off:#x}"),
            ) {
                problems.push(p);
            }
        }
    }
    if let Err(e) = ctx.comp_check(diag, "refused writes of 1, 2, 3, 8 and 16 bytes") {
        problems.push(e);
    }
    all_ok(problems, diag)
}

fn comp_regs_misaligned_access(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    let mut problems = Vec::new();
    let offs = [
        1,
        l.dec_reg(0, DEC_BASE_LO) + 1,
        l.dec_reg(0, DEC_BASE_LO) + 2,
        l.dec_reg(0, DEC_BASE_HI) + 3,
        l.dec_reg(0, DEC_SIZE_HI) + 2,
        l.dec_reg(0, DEC_CTRL) + 1,
    ];
    for off in offs {
        let off = off as u64;
        if let Err(p) = expect_einval(ctx.comp_pread(off, 4), &format!("4-byte read at +{off:#x}"))
        {
            problems.push(p);
        }
        if let Err(p) = expect_einval(
            ctx.comp_pwrite(off, &[0xff; 4]),
            &format!("4-byte write at +{off:#x}"),
        ) {
            problems.push(p);
        }
        // A 2-byte access at a 2-aligned offset is misaligned for a dword too.
        if let Err(p) = expect_einval(
            ctx.comp_pwrite(off & !1, &[0xff; 2]),
            &format!("2-byte write at +{:#x}", off & !1),
        ) {
            problems.push(p);
        }
    }
    if let Err(e) = ctx.comp_check(diag, "refused misaligned writes") {
        problems.push(e);
    }
    all_ok(problems, diag)
}

fn comp_regs_out_of_range_access(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let size = ctx.comp()?.size;
    let mut problems = Vec::new();
    for off in [size, size + 4, size + 0x100, 0x1000, 1 << 20] {
        if let Err(p) = expect_einval(ctx.comp_pread(off, 4), &format!("4-byte read at +{off:#x}"))
        {
            problems.push(p);
        }
        if let Err(p) = expect_einval(
            ctx.comp_pwrite(off, &[0xff; 4]),
            &format!("4-byte write at +{off:#x}"),
        ) {
            problems.push(p);
        }
    }
    // Straddling the end.
    let off = size - 2;
    if let Err(p) = expect_einval(ctx.comp_pread(off, 4), &format!("4-byte read at +{off:#x}")) {
        problems.push(p);
    }
    if let Err(p) = expect_einval(
        ctx.comp_pwrite(size - 4, &[0xff; 8]),
        &format!("8-byte write at +{:#x}", size - 4),
    ) {
        problems.push(p);
    }
    // The last dword itself is fine.
    match ctx.comp_pread(size - 4, 4) {
        Ok(b) if b.len() == 4 => {}
        other => problems.push(format!(
            "4-byte read of the last dword +{:#x}: {other:?}",
            size - 4
        )),
    }
    if let Err(e) = ctx.comp_check(diag, "refused out-of-range writes") {
        problems.push(e);
    }
    all_ok(problems, diag)
}

fn comp_regs_mmap_refused(ctx: &mut Ctx, _: &mut Vec<String>) -> StepResult {
    let off = ctx.comp()?.offset;
    expect_einval(
        try_mmap(ctx.dev()?, off, 4096),
        "mmap of 4096 bytes at the region",
    )?;
    Ok(())
}

fn comp_regs_cap_array_writes_discarded(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    for off in (0..l.hdm_offset).step_by(4) {
        let cur = ctx.model()?.get(off);
        ctx.comp_write(off, !cur)?;
        ctx.comp_write(off, 0)?;
    }
    ctx.comp_check(
        diag,
        &format!(
            "writing !value and 0 to every dword below +{:#x}",
            l.hdm_offset
        ),
    )?;
    Ok(())
}

fn comp_regs_hdm_cap_read_only(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    let off = l.hdm_reg(HDM_CAP);
    for v in [!l.cap, 0xffff_ffff, 0] {
        ctx.comp_step(diag, off, v)?;
    }
    Ok(())
}

fn comp_regs_global_ctrl_masks(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    let off = l.hdm_reg(HDM_GLOBAL_CTRL);
    diag.push(format!(
        "poison-on-decode-error capable: {}",
        l.cap & HDM_CAP_POISON_ON_ERR != 0
    ));
    for v in [
        0xffff_ffff,
        HDM_GLOBAL_POISON_EN,
        HDM_GLOBAL_ENABLE,
        0xffff_fffc,
        0,
    ] {
        ctx.comp_step(diag, off, v)?;
    }
    Ok(())
}

fn comp_regs_hdm_reserved_discarded(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    for reg in [HDM_RSVD_8, HDM_RSVD_C] {
        for v in [0xffff_ffff, 0x1234_5678] {
            ctx.comp_step(diag, l.hdm_reg(reg), v)?;
        }
    }
    Ok(())
}

/// Clears LOCK of decoder `n` if the model says it is set (a write with LOCK = 0).
fn unlock_decoder(ctx: &mut Ctx, n: usize) -> Result<(), String> {
    let l = ctx.layout()?;
    let ctrl = ctx.model()?.get(l.dec_reg(n, DEC_CTRL));
    if ctrl & CTRL_LOCK != 0 {
        ctx.comp_write(l.dec_reg(n, DEC_CTRL), ctrl & !CTRL_LOCK)?;
    }
    Ok(())
}

fn comp_regs_decoder_base_size_masks(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    for n in 0..l.count {
        unlock_decoder(ctx, n)?;
        for reg in [DEC_BASE_LO, DEC_SIZE_LO, DEC_BASE_HI, DEC_SIZE_HI] {
            for v in [0xffff_ffff, 0x1234_5678, 0xdead_beef] {
                ctx.comp_step(diag, l.dec_reg(n, reg), v)?;
            }
        }
    }
    Ok(())
}

fn comp_regs_decoder_ctrl_masks(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    diag.push(format!(
        "UIO capable: {}, cache capable: {}",
        l.cap & HDM_CAP_UIO != 0,
        l.cache_capable
    ));
    for n in 0..l.count {
        unlock_decoder(ctx, n)?;
        for v in [
            0xffff_feff,
            0,
            0x0000_1c00,
            0x0000_60ff,
            0xf0ff_82aa,
            0x0fff_7eff,
            0x0000_0200,
        ] {
            ctx.comp_step(diag, l.dec_reg(n, DEC_CTRL), v)?;
        }
    }
    Ok(())
}

fn comp_regs_decoder_commit_mirror(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    let off = l.dec_reg(0, DEC_CTRL);
    unlock_decoder(ctx, 0)?;
    for (v, committed) in [
        (CTRL_COMMIT, true),
        (0, false),
        (CTRL_COMMITTED, false),
        (CTRL_COMMIT | 0x11, true),
    ] {
        ctx.comp_step(diag, off, v)?;
        let got = ctx.comp_read(off)?;
        if (got & CTRL_COMMITTED != 0) != committed {
            return Err(format!(
                "CTRL write {v:#x} reads {got:#010x}: COMMITTED should be {committed}"
            )
            .into());
        }
    }
    Ok(())
}

fn comp_regs_decoder_other_discarded(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    for n in 0..l.count {
        for reg in [DEC_TL_LO, DEC_TL_HI, DEC_RSVD] {
            for v in [0xffff_ffff, 0x1234_5678] {
                ctx.comp_step(diag, l.dec_reg(n, reg), v)?;
            }
        }
    }
    Ok(())
}

fn comp_regs_locked_base_size_ignored(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    unlock_decoder(ctx, 0)?;
    let regs = [DEC_BASE_LO, DEC_BASE_HI, DEC_SIZE_LO, DEC_SIZE_HI];
    for (reg, v) in regs.into_iter().zip([0x2000_0000, 0x1, 0x1000_0000, 0]) {
        ctx.comp_step(diag, l.dec_reg(0, reg), v)?;
    }
    ctx.comp_step(diag, l.dec_reg(0, DEC_CTRL), CTRL_LOCK | CTRL_COMMIT)?;
    let before: Vec<u32> = regs
        .iter()
        .map(|&r| ctx.comp_read(l.dec_reg(0, r)))
        .collect::<Result<_, _>>()?;
    let mut changed = Vec::new();
    for (i, reg) in regs.into_iter().enumerate() {
        let off = l.dec_reg(0, reg);
        ctx.comp_write(off, 0xf000_0000 | 0x5a5a)?;
        let now = ctx.comp_read(off)?;
        if now != before[i] {
            changed.push(format!(
                "{} {:#010x} -> {now:#010x}",
                l.reg_name(off),
                before[i]
            ));
        }
    }
    if !changed.is_empty() {
        diag.extend(changed.iter().cloned());
        return Err(format!("writes to a locked decoder changed: {}", changed.join(", ")).into());
    }
    ctx.comp_check(diag, "writing BASE/SIZE of the locked decoder 0")?;
    Ok(())
}

fn comp_regs_locked_ctrl(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    let off = l.dec_reg(0, DEC_CTRL);
    unlock_decoder(ctx, 0)?;
    // Lock with IG/IW = 0x21 so that "every other bit kept" is visible.
    ctx.comp_step(diag, off, CTRL_LOCK | CTRL_COMMIT | 0x21)?;
    let locked = ctx.comp_read(off)?;
    if locked & CTRL_LOCK == 0 {
        return Err(format!("CTRL {locked:#010x} after setting LOCK").into());
    }
    // LOCK = 1: ignored whatever else it says.
    ctx.comp_step(diag, off, CTRL_LOCK | 0x7f)?;
    ctx.comp_step(diag, off, 0xffff_ffff)?;
    // LOCK = 0: clears LOCK and nothing else (COMMIT = 0 and IG/IW = 0 are ignored).
    ctx.comp_step(diag, off, 0)?;
    let now = ctx.comp_read(off)?;
    if now != locked & !CTRL_LOCK {
        return Err(format!(
            "unlocking {locked:#010x} left {now:#010x}, expected {:#010x}",
            locked & !CTRL_LOCK
        )
        .into());
    }
    // Unlocked again: an ordinary write takes effect.
    ctx.comp_step(diag, off, 0)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The component register BAR through VFIO
// ---------------------------------------------------------------------------

/// The component register BAR as the tests see it.
#[derive(Debug, Clone)]
struct CompBar {
    /// BAR index (from the Register Locator DVSEC).
    bar: u32,
    /// Offset of the component register block in the BAR.
    block: u64,
    /// Size of the block in the BAR: 64 KiB or what is left of the BAR.
    block_size: u64,
    /// The BAR size as sysfs reports it.
    bar_size: u64,
    /// The BAR's region info through VFIO.
    region: RegionInfo,
}

impl CompBar {
    /// BAR offset of the CXL.mem area (COMP_REGS offset 0).
    fn cm(&self) -> u64 {
        self.block + CXL_CM_OFFSET
    }

    /// One pread of `len` bytes at `off` of the BAR region.
    fn pread(&self, dev: &Device, off: u64, len: usize) -> io::Result<Vec<u8>> {
        pread_once(dev, self.region.offset + off, len)
    }

    /// One pwrite of `data` at `off` of the BAR region.
    fn pwrite(&self, dev: &Device, off: u64, data: &[u8]) -> io::Result<usize> {
        pwrite_once(dev, self.region.offset + off, data)
    }

    /// A pread that must return all `len` bytes.
    fn read_all(&self, dev: &Device, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let b = self
            .pread(dev, off, len)
            .map_err(|e| format!("BAR{} read of {len:#x} bytes at {off:#x}: {e}", self.bar))?;
        if b.len() != len {
            return Err(format!(
                "BAR{} read of {len:#x} bytes at {off:#x} returned {:#x}",
                self.bar,
                b.len()
            ));
        }
        Ok(b)
    }

    /// Whether BAR offset `off` is in the CXL.mem area COMP_REGS emulates
    /// (`comp_size` bytes from [`CompBar::cm`]).
    fn emulated(&self, off: u64, comp_size: u64) -> bool {
        off >= self.cm() && off < self.cm() + comp_size
    }
}

/// `n` dwords from `off` of BAR `bar` of `bdf` as the host sees them: 32-bit
/// loads from a read-only mapping of sysfs `resource<bar>`.
fn hw_dwords(bdf: &str, bar: u32, off: u64, n: usize) -> Result<Vec<u32>, String> {
    let map = pci::ResourceMap::open(bdf, bar as usize).map_err(|e| e.to_string())?;
    map.read_dwords(off, n).map_err(|e| e.to_string())
}

/// Little-endian bytes of dwords.
fn le_bytes(dwords: &[u32]) -> Vec<u8> {
    dwords.iter().flat_map(|d| d.to_le_bytes()).collect()
}

/// The fixed part of a raw region info buffer: argsz, flags, index, cap_offset, size, offset.
fn raw_region_info(b: &[u8]) -> (u32, u32, u32, u32, u64, u64) {
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    (
        u32_at(0),
        u32_at(4),
        u32_at(8),
        u32_at(12),
        u64_at(16),
        u64_at(24),
    )
}

fn comp_bar_region_info(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let cb = ctx.comp_bar()?;
    let r = &cb.region;
    let page = PAGE_SIZE as u64;
    let want_areas = expected_sparse_areas(cb.bar_size, cb.block, page);
    let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    let want_flags = if want_areas.is_empty() {
        rw
    } else {
        rw | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS
    };
    let caps = r.capabilities();
    diag.push(format!(
        "BAR{}: sysfs size {:#x}, block at {:#x} ({:#x} bytes); region size {:#x} offset {:#x} flags [{}] caps {:?}; expected areas {:x?}",
        cb.bar,
        cb.bar_size,
        cb.block,
        cb.block_size,
        r.size,
        r.offset,
        region_flags_str(r.flags),
        caps.iter().map(|c| (c.id, c.version)).collect::<Vec<_>>(),
        want_areas
    ));
    let mut problems = Vec::new();
    if r.size != cb.bar_size {
        problems.push(format!(
            "region size {:#x}, the BAR is {:#x} bytes",
            r.size, cb.bar_size
        ));
    }
    if r.flags != want_flags {
        problems.push(format!(
            "flags {:#x} [{}], expected {want_flags:#x} [{}]",
            r.flags,
            region_flags_str(r.flags),
            region_flags_str(want_flags)
        ));
    }
    let sparse: Vec<_> = caps
        .iter()
        .filter(|c| c.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP)
        .collect();
    if want_areas.is_empty() {
        if r.cap_offset != 0 || !caps.is_empty() {
            problems.push(format!(
                "cap_offset {:#x} and capabilities {:?}: expected none (the block fills the BAR)",
                r.cap_offset,
                caps.iter().map(|c| c.id).collect::<Vec<_>>()
            ));
        }
    } else {
        match sparse.as_slice() {
            [c] => {
                let got: Option<Vec<(u64, u64)>> = c
                    .sparse_mmap_areas()
                    .map(|a| a.iter().map(|a| (a.offset, a.size)).collect());
                if c.version != 1 {
                    problems.push(format!("sparse mmap capability version {}", c.version));
                }
                if got.as_ref() != Some(&want_areas) {
                    problems.push(format!(
                        "sparse mmap areas {got:x?}, expected {want_areas:x?}"
                    ));
                }
            }
            other => problems.push(format!(
                "{} sparse mmap capabilities, expected 1",
                other.len()
            )),
        }
    }
    // argsz exactly the fixed structure.
    let mut buf = vec![0u8; 32];
    buf[..4].copy_from_slice(&32u32.to_ne_bytes());
    buf[8..12].copy_from_slice(&cb.bar.to_ne_bytes());
    match ctx.dev()?.get_region_info_raw(&mut buf) {
        Err(e) => problems.push(format!("argsz 32: {e}")),
        Ok(()) => {
            let (argsz, flags, index, cap_offset, size, offset) = raw_region_info(&buf);
            diag.push(format!(
                "argsz 32: argsz {argsz} flags [{}] index {index} cap_offset {cap_offset:#x} size {size:#x} offset {offset:#x}",
                region_flags_str(flags)
            ));
            let want_argsz = if want_areas.is_empty() {
                32
            } else {
                r.raw.len() as u32
            };
            if (argsz, flags, index, cap_offset, size, offset)
                != (want_argsz, want_flags, cb.bar, 0, cb.bar_size, r.offset)
            {
                problems.push(format!(
                    "argsz 32 gives argsz {argsz} flags {flags:#x} index {index} cap_offset {cap_offset:#x} size {size:#x} offset {offset:#x}, expected {want_argsz} {want_flags:#x} {} 0 {:#x} {:#x}",
                    cb.bar, cb.bar_size, r.offset
                ));
            }
        }
    }
    all_ok(problems, diag)
}

fn comp_bar_mmap_refused(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let cb = ctx.comp_bar()?;
    let dev = ctx.dev()?;
    let page = PAGE_SIZE as u64;
    let first = cb.block / page * page;
    let last = (cb.block + cb.block_size - 1) / page * page;
    let whole = cb.bar_size.div_ceil(page) * page;
    let mut tries = vec![
        (first, page),
        (last, page),
        (first, cb.block_size.div_ceil(page) * page),
        (0, whole),
    ];
    tries.dedup();
    let mut problems = Vec::new();
    for (off, len) in tries {
        diag.push(format!("mmap of {len:#x} bytes at BAR{} +{off:#x}", cb.bar));
        if let Err(p) = expect_einval(
            try_mmap(dev, cb.region.offset + off, len as usize),
            &format!("mmap of {len:#x} bytes at BAR{} +{off:#x}", cb.bar),
        ) {
            problems.push(p);
        }
    }
    all_ok(problems, diag)
}

fn comp_bar_reads_emulated(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let cb = ctx.comp_bar()?;
    let l = ctx.layout()?;
    let size = ctx.comp()?.size;
    let cm = cb.cm();
    if cm + size > cb.block + cb.block_size {
        return Err(format!("COMP_REGS ({size:#x} bytes) does not fit the block").into());
    }
    let comp: Vec<u32> = (0..size as usize / 4)
        .map(|i| ctx.comp_read(i * 4))
        .collect::<Result<_, _>>()?;
    let comp_b = le_bytes(&comp);
    let dev = ctx.dev()?;
    let mut problems = Vec::new();
    // Dword by dword.
    for (i, &want) in comp.iter().enumerate() {
        let off = cm + 4 * i as u64;
        let got = cb.read_all(dev, off, 4)?;
        if got[..] != want.to_le_bytes() {
            problems.push(format!(
                "BAR{} +{off:#x} ({}): {:#010x}, COMP_REGS reads {want:#010x}",
                cb.bar,
                l.reg_name(4 * i),
                u32::from_le_bytes(got[..].try_into().expect("4 bytes"))
            ));
        }
    }
    // All at once.
    let all = cb.read_all(dev, cm, size as usize)?;
    if all != comp_b {
        problems.push(format!(
            "one {size:#x}-byte read at BAR{} +{cm:#x} differs from COMP_REGS",
            cb.bar
        ));
    }
    // Sub-dword and unaligned reads.
    let base_lo = l.dec_reg(0, DEC_BASE_LO);
    let ctrl = l.dec_reg(0, DEC_CTRL);
    let hdm = l.hdm_offset;
    for (rel, len) in [
        (0, 1),
        (1, 1),
        (2, 2),
        (1, 3),
        (hdm + 1, 2),
        (hdm + 3, 1),
        (base_lo + 1, 3),
        (base_lo + 2, 2),
        (base_lo + 3, 3),
        (ctrl + 1, 1),
        (ctrl + 1, 2),
        (ctrl + 2, 3),
    ] {
        let off = cm + rel as u64;
        let got = cb.read_all(dev, off, len)?;
        if got[..] != comp_b[rel..rel + len] {
            problems.push(format!(
                "{len}-byte read at BAR{} +{off:#x}: {got:02x?}, COMP_REGS bytes {:02x?}",
                cb.bar,
                &comp_b[rel..rel + len]
            ));
        }
    }
    // The rest of the block reads as the hardware.
    let vfio_block = cb.read_all(dev, cb.block, cb.block_size as usize)?;
    let hw = hw_dwords(&ctx.opts.bdf, cb.bar, cb.block, cb.block_size as usize / 4)?;
    let hw_b = le_bytes(&hw);
    let mut outside = Vec::new();
    let mut compared = 0;
    for (i, &h) in hw.iter().enumerate() {
        let off = cb.block + 4 * i as u64;
        if cb.emulated(off, size) {
            continue;
        }
        compared += 1;
        let v = u32::from_le_bytes(vfio_block[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        if v != h {
            outside.push(format!(
                "BAR{} +{off:#x}: VFIO {v:#010x}, hardware {h:#010x}",
                cb.bar
            ));
        }
    }
    diag.push(format!(
        "{compared} dwords of the block outside the CXL.mem emulation compared with sysfs resource{}; {} differ",
        cb.bar,
        outside.len()
    ));
    if vfio_block[(cm - cb.block) as usize..(cm - cb.block + size) as usize] != comp_b[..] {
        problems.push("the CXL.mem part of a whole-block read differs from COMP_REGS".to_string());
    }
    if !outside.is_empty() {
        problems.push(format!(
            "{} dword(s) of the block outside COMP_REGS differ from the hardware",
            outside.len()
        ));
        diag.extend(outside.into_iter().take(16));
    }
    // Reads straddling either edge of the emulated range.
    let rel = |off: u64| (off - cb.block) as usize;
    for off in [cm - 2, cm + size - 2] {
        let got = cb.read_all(dev, off, 4)?;
        let mut want = Vec::new();
        for o in off..off + 4 {
            want.push(if cb.emulated(o, size) {
                comp_b[(o - cm) as usize]
            } else {
                hw_b[rel(o)]
            });
        }
        if got != want {
            problems.push(format!(
                "4-byte read at BAR{} +{off:#x} across the edge of COMP_REGS: {got:02x?}, expected {want:02x?}",
                cb.bar
            ));
        }
    }
    all_ok(problems, diag)
}

fn comp_bar_writes_emulated(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let cb = ctx.comp_bar()?;
    let l = ctx.layout()?;
    let size = ctx.comp()?.size;
    let cm = cb.cm();
    let bdf = ctx.opts.bdf.clone();
    let n_block = cb.block_size as usize / 4;
    let hw_before = hw_dwords(&bdf, cb.bar, cb.block, n_block)?;
    let vfio_before = cb.read_all(ctx.dev()?, cb.block, cb.block_size as usize)?;
    let mut problems = Vec::new();

    // A whole dword through the BAR, applied to the model as a COMP_REGS write.
    let bar_write = |ctx: &mut Ctx, rel: usize, value: u32| -> Result<(), String> {
        let off = cm + rel as u64;
        let n = cb
            .pwrite(ctx.dev()?, off, &value.to_le_bytes())
            .map_err(|e| format!("write {value:#010x} at BAR{} +{off:#x}: {e}", cb.bar))?;
        if n != 4 {
            return Err(format!(
                "write {value:#010x} at BAR{} +{off:#x}: {n} bytes written, expected 4",
                cb.bar
            ));
        }
        ctx.model
            .as_mut()
            .ok_or("no COMP_REGS model")?
            .write(rel, value);
        Ok(())
    };

    let ctrl_off = l.dec_reg(0, DEC_CTRL);
    let ctrl = ctx.model()?.get(ctrl_off);
    if ctrl & CTRL_LOCK != 0 {
        bar_write(ctx, ctrl_off, ctrl & !CTRL_LOCK)?;
        ctx.comp_check(
            diag,
            &format!("clearing LOCK of decoder 0 through BAR{}", cb.bar),
        )?;
    }
    let off = l.dec_reg(0, DEC_BASE_LO);
    let cur = ctx.model()?.get(off);
    let value = if cur & LOW_ADDR_MASK == 0x3000_0000 {
        0x5000_0000
    } else {
        0x3000_0000
    };
    bar_write(ctx, off, value)?;
    let want = ctx.model()?.get(off);
    ctx.comp_check(
        diag,
        &format!(
            "writing {value:#010x} to decoder 0 BASE_LO through BAR{} +{:#x}",
            cb.bar,
            cm + off as u64
        ),
    )?;
    let got = ctx.comp_read(off)?;
    diag.push(format!(
        "decoder 0 BASE_LO: {cur:#010x} -> {got:#010x} (model {want:#010x})"
    ));
    if want == cur {
        problems.push(format!(
            "the model expects no change from writing {value:#010x} over {cur:#010x}"
        ));
    }
    let via_bar = cb.read_all(ctx.dev()?, cm + off as u64, 4)?;
    if via_bar[..] != got.to_le_bytes() {
        problems.push(format!(
            "BASE_LO reads {via_bar:02x?} through the BAR, {got:#010x} through COMP_REGS"
        ));
    }

    // Not whole aligned dwords where the emulation is: refused, nothing changes.
    let last = size as usize - 4;
    let refused: &[(u64, &[u8])] = &[
        (cm + off as u64, &[0x5a]),
        (cm + off as u64, &[0x5a; 2]),
        (cm + off as u64, &[0x5a; 3]),
        (cm + off as u64 + 1, &[0x5a; 4]),
        (cm + off as u64 + 2, &[0x5a; 2]),
        (cm + off as u64 + 3, &[0x5a]),
        (cm + ctrl_off as u64 + 1, &[0xff; 2]),
        (cm + last as u64 + 2, &[0xff; 4]),
        (cm - 2, &[0x00; 4]),
    ];
    for &(pos, data) in refused {
        if let Err(p) = expect_einval(
            cb.pwrite(ctx.dev()?, pos, data),
            &format!("{}-byte write at BAR{} +{pos:#x}", data.len(), cb.bar),
        ) {
            problems.push(p);
        }
    }
    if let Err(e) = ctx.comp_check(
        diag,
        "refused sub-dword and unaligned writes through the BAR",
    ) {
        problems.push(e);
    }

    // Elsewhere in the block: accepted and discarded.
    let mut discarded: Vec<(u64, Vec<u8>)> = vec![
        (cb.block + 0x10, vec![0xff; 4]),
        (cb.block + 0x11, vec![0xa5]),
        (cb.block + 0x22, vec![0x5a; 2]),
        (cm + size, vec![0xff; 4]),
        (cb.block + cb.block_size - 4, vec![0xff; 4]),
    ];
    if cb.block_size > 0x2000 {
        discarded.push((cb.block + 0x2000, vec![0xff; 4]));
    }
    for (pos, data) in &discarded {
        match cb.pwrite(ctx.dev()?, *pos, data) {
            Ok(n) if n == data.len() => {}
            other => problems.push(format!(
                "{}-byte write at BAR{} +{pos:#x}: {other:?}, expected {} (accepted, discarded)",
                data.len(),
                cb.bar,
                data.len()
            )),
        }
    }
    let vfio_after = cb.read_all(ctx.dev()?, cb.block, cb.block_size as usize)?;
    let mut changed = Vec::new();
    for (i, (a, b)) in vfio_after.iter().zip(&vfio_before).enumerate() {
        let pos = cb.block + i as u64;
        if a != b && !cb.emulated(pos, size) {
            changed.push(format!("BAR{} +{pos:#x}: {b:#04x} -> {a:#04x}", cb.bar));
        }
    }
    if !changed.is_empty() {
        problems.push(format!(
            "{} byte(s) of the block outside COMP_REGS changed through VFIO",
            changed.len()
        ));
        diag.extend(changed.into_iter().take(16));
    }
    if let Err(e) = ctx.comp_check(diag, "discarded writes elsewhere in the block") {
        problems.push(e);
    }

    // The hardware saw none of it.
    let hw_after = hw_dwords(&bdf, cb.bar, cb.block, n_block)?;
    let mut hw_changed = Vec::new();
    for (i, (a, b)) in hw_after.iter().zip(&hw_before).enumerate() {
        if a != b {
            hw_changed.push(format!(
                "hardware BAR{} +{:#x}: {b:#010x} -> {a:#010x}",
                cb.bar,
                cb.block + 4 * i as u64
            ));
        }
    }
    let hw_idx = ((cm - cb.block) as usize + off) / 4;
    diag.push(format!(
        "hardware decoder 0 BASE_LO: {:#010x} before, {:#010x} after",
        hw_before[hw_idx], hw_after[hw_idx]
    ));
    if !hw_changed.is_empty() {
        problems.push(format!(
            "{} real register(s) of the block changed",
            hw_changed.len()
        ));
        diag.extend(hw_changed.into_iter().take(16));
    }
    all_ok(problems, diag)
}

fn comp_regs_region_cap(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let comp = ctx.comp()?.clone();
    let cfg = ctx.sysfs_config()?;
    let (bar, block) =
        component_block(&cfg).ok_or("no component register block in the Register Locator DVSEC")?;
    let bar_size = pci::resource(&ctx.opts.bdf, bar as usize)
        .map_err(|e| e.to_string())?
        .size();
    let caps = comp.capabilities();
    diag.push(format!(
        "COMP_REGS flags [{}], caps {:?}; Register Locator: BAR{bar} +{block:#x}, BAR size {bar_size:#x}",
        region_flags_str(comp.flags),
        caps.iter().map(|c| (c.id, c.version)).collect::<Vec<_>>()
    ));
    let found: Vec<_> = caps
        .iter()
        .filter(|c| c.id == VFIO_REGION_INFO_CAP_CXL_COMP_REGS)
        .collect();
    let c = match found.as_slice() {
        [c] => *c,
        other => {
            return Err(format!(
                "{} capabilities with id {VFIO_REGION_INFO_CAP_CXL_COMP_REGS}, expected 1",
                other.len()
            )
            .into())
        }
    };
    let mut problems = Vec::new();
    if comp.flags & VFIO_REGION_INFO_FLAG_CAPS == 0 {
        problems.push("CAPS flag clear".to_string());
    }
    if c.version != 1 {
        problems.push(format!("version {}, expected 1", c.version));
    }
    let cap = c.cxl_comp_regs().ok_or(format!(
        "capability truncated: {} bytes after the header, expected 24",
        c.data.len()
    ))?;
    diag.push(format!(
        "cap: bar_index {} pad {:#x} block_offset {:#x} block_size {:#x}",
        cap.bar_index, cap.pad, cap.block_offset, cap.block_size
    ));
    let want = (u32::from(bar), block, comp_block_size(bar_size, block));
    let got = (cap.bar_index, cap.block_offset, cap.block_size);
    if got != want {
        problems.push(format!(
            "(bar_index, block_offset, block_size) = {got:#x?}, expected {want:#x?}"
        ));
    }
    if let Some(dc) = ctx.info.as_ref().and_then(cxl_device_cap) {
        if (u32::from(dc.hdm_regs_bar_index), dc.hdm_regs_offset)
            != (cap.bar_index, cap.block_offset + CXL_CM_OFFSET)
        {
            problems.push(format!(
                "the device capability puts the CXL.mem area at BAR{} +{:#x}, this one at BAR{} +{:#x}",
                dc.hdm_regs_bar_index,
                dc.hdm_regs_offset,
                cap.bar_index,
                cap.block_offset + CXL_CM_OFFSET
            ));
        }
    }
    all_ok(problems, diag)
}

fn comp_regs_hardware_untouched(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    let before = ctx.bar_before.clone().ok_or("no hardware snapshot")?;
    let now_all = ctx.hw_cm_dwords(0, before.len())?;
    let mut diffs = Vec::new();
    for (i, (b, &now)) in before.iter().zip(&now_all).enumerate() {
        if now != *b {
            diffs.push(format!(
                "+{:#x} ({}): {b:#010x} -> {now:#010x}",
                i * 4,
                l.reg_name(i * 4)
            ));
        }
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let n = diffs.len();
    diag.extend(diffs);
    Err(format!(
        "{n} real CXL.mem register(s) in BAR{} changed during the COMP_REGS and BAR tests",
        ctx.comp_bar
    )
    .into())
}

// ---------------------------------------------------------------------------
// DVSEC
// ---------------------------------------------------------------------------

fn dvsec_located(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let cfg = ctx.sysfs_config()?;
    let (base, len) = find_dvsec(&cfg, DVSEC_VENDOR_CXL, DVSEC_ID_CXL_DEVICE)
        .ok_or("no CXL Device DVSEC in the hardware config space")?;
    diag.push(format!("CXL Device DVSEC at {base:#x}, length {len:#x}"));
    if base % 4 != 0 || len < DVSEC_RANGE2_BASE_LO + 4 || base + len > cfg.len() {
        return Err(format!("unusable DVSEC at {base:#x} length {len:#x}").into());
    }
    let hw = cfg[base..base + len].to_vec();
    ctx.dvsec = Some(DvsecLoc { base, len });
    let view = ctx.dvsec_view()?;
    let model = DvsecModel::new(&view, &hw);
    diag.push(format!(
        "hardware: Capability {:#06x} Control {:#06x} Control2 {:#06x} Lock {:#06x} Capability2 {:#06x}; Capability3 {:#06x}",
        u16::from_le_bytes([hw[0xa], hw[0xb]]),
        u16::from_le_bytes([hw[0xc], hw[0xd]]),
        u16::from_le_bytes([hw[0x10], hw[0x11]]),
        u16::from_le_bytes([hw[0x14], hw[0x15]]),
        model.cap2,
        model.cap3
    ));
    diag.push(format!(
        "VFIO view: Control {:#06x} Status {:#06x} Control2 {:#06x} Lock {:#06x}",
        model.control, model.status, model.control2, model.lock
    ));
    ctx.hw_dvsec_before = Some(hw);
    ctx.dvsec_first_view = Some(view);
    ctx.dvsec_model = Some(model);
    Ok(())
}

fn dvsec_passthrough_reads(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let hw = ctx.hw_dvsec()?;
    let view = ctx.dvsec_view()?;
    let mut problems = Vec::new();
    // Every byte that is not virtualized reads as the hardware.
    let mut masked_view = view.clone();
    for (i, b) in masked_view.iter_mut().enumerate() {
        if dvsec_byte_shadowed(i) {
            *b = hw[i];
        }
    }
    for d in dvsec_diff(&masked_view, &hw) {
        problems.push(format!("pass-through byte differs from sysfs: {d}"));
    }
    let m = ctx.dmodel()?;
    if m.range_base != [0; 4] {
        problems.push(format!(
            "Range Base registers start at {:#010x?}, expected 0",
            m.range_base
        ));
    }
    if m.control & DVSEC_CTRL_IO_ENABLE == 0 {
        problems.push(format!("Control {:#06x}: IO_Enable reads 0", m.control));
    }
    all_ok(problems, diag)
}

/// 1-, 2- and 4-byte reads sweeping the DVSEC agree with register-sized reads.
fn dvsec_read_sizes_agree(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let view = ctx.dvsec_view()?;
    let mut problems = Vec::new();
    for chunk in [1usize, 2, 4] {
        let other = ctx.dvsec_view_by(chunk)?;
        let diffs = dvsec_diff(&other, &view);
        for d in &diffs {
            diag.push(format!("aligned {chunk}-byte reads vs register reads: {d}"));
        }
        if !diffs.is_empty() {
            problems.push(format!(
                "aligned {chunk}-byte reads differ from register-sized reads in {} register(s)",
                diffs.len()
            ));
        }
    }
    all_ok(problems, diag)
}

/// Reads straddling registers return the same bytes as register-sized reads.
fn dvsec_straddling_reads(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    // Give the shadowed registers distinctive values first.
    let writes: &[(usize, &[u8])] = &[
        (DVSEC_CONTROL, &[0x05, 0x40]),
        (DVSEC_CONTROL2, &[0x09, 0x00]),
        (DVSEC_RANGE1_BASE_HI, &[0x44, 0x33, 0x22, 0x11]),
        (DVSEC_RANGE1_BASE_LO, &[0x00, 0x00, 0x00, 0x70]),
        (DVSEC_RANGE2_BASE_HI, &[0x88, 0x77, 0x66, 0x55]),
        (DVSEC_RANGE2_BASE_LO, &[0x00, 0x00, 0x00, 0x90]),
    ];
    for &(rel, bytes) in writes {
        ctx.dvsec_step(diag, rel, bytes)?;
    }
    let loc = ctx.loc()?;
    let want = ctx.dvsec_view()?;
    let mut problems = Vec::new();
    let reads = [
        (0x6, 4),
        (0x9, 4),
        (0xa, 4),
        (0xb, 4),
        (0xd, 2),
        (0xe, 4),
        (0xf, 4),
        (0x11, 2),
        (0x13, 4),
        (0x15, 4),
        (0x16, 4),
        (0x1e, 4),
        (0x22, 4),
        (0x23, 2),
        (0x2e, 4),
        (0x33, 4),
    ];
    for (rel, len) in reads {
        let got = ctx.cfg_read(loc.base + rel, len)?;
        if got[..] != want[rel..rel + len] {
            problems.push(format!(
                "{len}-byte read at DVSEC+{rel:#x} ({} ..): {:02x?}, register reads give {:02x?}",
                dvsec_reg_name(rel),
                got,
                &want[rel..rel + len]
            ));
        }
    }
    all_ok(problems, diag)
}

fn dvsec_read_only_writes_discarded(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let hw_before = ctx.hw_dvsec()?;
    let writes: &[(usize, &[u8])] = &[
        (0x0, &[0xff; 4]),
        (0x4, &[0x00; 4]),
        (0x8, &[0xff, 0xff, 0x00, 0x00]),
        (DVSEC_CAPABILITY, &[0x00, 0x00]),
        (DVSEC_CAPABILITY + 1, &[0xff]),
        (0x2, &[0xaa, 0x55]),
        (DVSEC_CAPABILITY2, &[0xff, 0xff]),
        (DVSEC_RANGE1_SIZE_HI, &[0xff; 4]),
        (DVSEC_RANGE1_SIZE_LO, &[0x00; 4]),
        (DVSEC_RANGE1_SIZE_HI + 1, &[0x55, 0xaa]),
        (DVSEC_RANGE2_SIZE_HI, &[0xff; 4]),
        (DVSEC_RANGE2_SIZE_LO, &[0xff; 4]),
        (DVSEC_RANGE2_SIZE_LO + 3, &[0x00]),
    ];
    for &(rel, bytes) in writes {
        ctx.dvsec_step(diag, rel, bytes)?;
    }
    let hw_after = ctx.hw_dvsec()?;
    let view = ctx.dvsec_view()?;
    let mut problems = Vec::new();
    for &(rel, bytes) in writes {
        for i in rel..rel + bytes.len() {
            if view[i] != hw_before[i] {
                problems.push(format!(
                    "{} byte +{i:#x} reads {:#04x}, hardware had {:#04x}",
                    dvsec_reg_name(i),
                    view[i],
                    hw_before[i]
                ));
            }
        }
    }
    for d in dvsec_diff(&hw_after, &hw_before) {
        problems.push(format!("hardware changed: {d}"));
    }
    all_ok(problems, diag)
}

fn dvsec_control_masks(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let cap3 = ctx.dmodel()?.cap3;
    diag.push(format!(
        "Capability3 {cap3:#06x} (0 when the DVSEC is shorter than 0x3a)"
    ));
    let writes: &[(usize, &[u8])] = &[
        (DVSEC_CONTROL, &[0xff, 0xff]),
        (DVSEC_CONTROL, &[0x00, 0x00]),
        (DVSEC_CONTROL + 1, &[0xff]),
        (DVSEC_CONTROL, &[0x05]),
        (DVSEC_CONTROL + 1, &[0xb0]),
        (DVSEC_CONTROL, &[0x02, 0x00]),
    ];
    for &(rel, bytes) in writes {
        ctx.dvsec_step(diag, rel, bytes)?;
    }
    // The rule spelled out for the all-ones write, independently of the model.
    ctx.cfg_write(ctx.loc()?.base + DVSEC_CONTROL, &[0xff, 0xff])?;
    let got = ctx.dvsec_read16(DVSEC_CONTROL)?;
    let mut want = !DVSEC_CTRL_RESERVED; // 0xffff written
    if cap3 & DVSEC_CAP3_P2P_MEM == 0 {
        want &= !DVSEC_CTRL_P2P_MEM;
    }
    if got != want {
        return Err(
            format!("Control after writing 0xffff reads {got:#06x}, expected {want:#06x}").into(),
        );
    }
    ctx.dvsec_step(diag, DVSEC_CONTROL, &[0x02, 0x00])?;
    Ok(())
}

fn dvsec_control_io_enable(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let writes: &[(usize, &[u8])] = &[
        (DVSEC_CONTROL, &[0x00, 0x00]),
        (DVSEC_CONTROL, &[0xfd, 0xff]),
        (DVSEC_CONTROL, &[0x00]),
        (DVSEC_CONTROL - 2, &[0xff, 0xff, 0x00, 0x00]),
    ];
    for &(rel, bytes) in writes {
        ctx.cfg_write(ctx.loc()?.base + rel, bytes)?;
        let c = ctx.dvsec_read16(DVSEC_CONTROL)?;
        if c & DVSEC_CTRL_IO_ENABLE == 0 {
            return Err(format!(
                "Control reads {c:#06x} after writing {} at DVSEC+{rel:#x}: IO_Enable is 0",
                hex_le(bytes)
            )
            .into());
        }
    }
    ctx.dvsec_check(diag, "the IO_Enable writes")?;
    Ok(())
}

fn dvsec_status_viral_w1c(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let before = ctx.dmodel()?.status;
    diag.push(format!("Status at the start: {before:#06x}"));
    let writes: &[(usize, &[u8])] = &[
        (DVSEC_STATUS, &[0x00, 0x00]),
        (DVSEC_STATUS, &[0x00, 0x40]),
        (DVSEC_STATUS + 1, &[0x40]),
        (DVSEC_STATUS, &[0xff, 0xff]),
    ];
    for &(rel, bytes) in writes {
        ctx.dvsec_step(diag, rel, bytes)?;
    }
    let s = ctx.dvsec_read16(DVSEC_STATUS)?;
    if s & DVSEC_STATUS_VIRAL != 0 {
        return Err(
            format!("Status {s:#06x}: Viral_Status still set after writing 1 to it").into(),
        );
    }
    if s & !before != 0 {
        return Err(format!("Status {s:#06x}: writes set bits (was {before:#06x})").into());
    }
    Ok(())
}

fn dvsec_control2_masks(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let (cap2, cap3) = (ctx.dmodel()?.cap2, ctx.dmodel()?.cap3);
    diag.push(format!("Capability2 {cap2:#06x}, Capability3 {cap3:#06x}"));
    // Bits 1 and 2 (actions) are left to dvsec_control2_action_bits.
    let writes: &[(usize, &[u8])] = &[
        (DVSEC_CONTROL2, &[0xf9, 0xff]),
        (DVSEC_CONTROL2, &[0x00, 0x00]),
        (DVSEC_CONTROL2 + 1, &[0xff]),
        (DVSEC_CONTROL2, &[0x39]),
        (DVSEC_CONTROL2, &[0x00, 0x00]),
    ];
    for &(rel, bytes) in writes {
        ctx.dvsec_step(diag, rel, bytes)?;
    }
    ctx.cfg_write(ctx.loc()?.base + DVSEC_CONTROL2, &[0xf9, 0xff])?;
    let got = ctx.dvsec_read16(DVSEC_CONTROL2)?;
    let mut want = 0xfff9u16 & !DVSEC_CTRL2_RESERVED;
    if cap3 & DVSEC_CAP3_VOLATILE_HDM == 0 {
        want &= !DVSEC_CTRL2_VOLATILE_HDM;
    }
    if cap2 & DVSEC_CAP2_MOD_COMPLETION == 0 {
        want &= !DVSEC_CTRL2_MOD_COMPLETION;
    }
    if got != want {
        return Err(format!(
            "Control2 after writing 0xfff9 reads {got:#06x}, expected {want:#06x}"
        )
        .into());
    }
    ctx.dvsec_step(diag, DVSEC_CONTROL2, &[0x00, 0x00])?;
    Ok(())
}

fn dvsec_control2_action_bits(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let bdf = ctx.opts.bdf.clone();
    let hw_before = ctx.hw_dvsec()?;
    let lines_before = cxl_reset_log_lines(&bdf)?.len();
    let writes: &[(usize, &[u8])] = &[
        (DVSEC_CONTROL2, &[0x06, 0x00]),
        (DVSEC_CONTROL2, &[0x04]),
        (DVSEC_CONTROL2, &[0x02, 0x00]),
        (DVSEC_CONTROL2, &[0x0f, 0x00]),
    ];
    let mut problems = Vec::new();
    for &(rel, bytes) in writes {
        ctx.cfg_write(ctx.loc()?.base + rel, bytes)?;
        let c2 = ctx.dvsec_read16(DVSEC_CONTROL2)?;
        if c2 & (DVSEC_CTRL2_CACHE_WBI | DVSEC_CTRL2_CXL_RESET) != 0 {
            problems.push(format!(
                "Control2 reads {c2:#06x} after writing {}: bits 1/2 must read 0",
                hex_le(bytes)
            ));
        }
    }
    if let Err(e) = ctx.dvsec_check(diag, "the Control2 action writes") {
        problems.push(e);
    }
    let hw_after = ctx.hw_dvsec()?;
    let hw_c2 = |b: &[u8]| u16::from_le_bytes([b[DVSEC_CONTROL2], b[DVSEC_CONTROL2 + 1]]);
    diag.push(format!(
        "hardware Control2: {:#06x} before, {:#06x} after",
        hw_c2(&hw_before),
        hw_c2(&hw_after)
    ));
    if (hw_c2(&hw_after) ^ hw_c2(&hw_before)) & DVSEC_CTRL2_CXL_RESET != 0 {
        problems.push("Initiate CXL Reset reached the hardware Control2".to_string());
    }
    let lines = cxl_reset_log_lines(&bdf)?;
    let new = &lines[lines_before.min(lines.len())..];
    for l in new {
        diag.push(format!("log: {l}"));
    }
    if new.len() != 1 {
        problems.push(format!(
            "{} kernel log line(s) about the unsupported CXL Reset after 3 requests in one open, expected exactly 1",
            new.len()
        ));
    }
    all_ok(problems, diag)
}

fn dvsec_status2_from_hardware(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let hw_before = ctx.hw_dvsec()?;
    let hw16 = |b: &[u8]| u16::from_le_bytes([b[DVSEC_STATUS2], b[DVSEC_STATUS2 + 1]]);
    let mut problems = Vec::new();
    let v = ctx.dvsec_read16(DVSEC_STATUS2)?;
    diag.push(format!(
        "Status2: VFIO {v:#06x}, hardware {:#06x}",
        hw16(&hw_before)
    ));
    if v != hw16(&hw_before) {
        problems.push(format!(
            "Status2 reads {v:#06x}, hardware has {:#06x}",
            hw16(&hw_before)
        ));
    }
    ctx.dvsec_step(diag, DVSEC_STATUS2, &[0xff, 0xff])?;
    let hw_after = ctx.hw_dvsec()?;
    let v = ctx.dvsec_read16(DVSEC_STATUS2)?;
    if v != hw16(&hw_after) {
        problems.push(format!(
            "after writing 0xffff: Status2 reads {v:#06x}, hardware has {:#06x}",
            hw16(&hw_after)
        ));
    }
    // Only Volatile HDM Preservation Error is ever forwarded, and only with Capability3 bit 3.
    let changed = hw16(&hw_after) ^ hw16(&hw_before);
    let cap3 = ctx.dmodel()?.cap3;
    let allowed = if cap3 & DVSEC_CAP3_VOLATILE_HDM != 0 {
        DVSEC_STATUS2_VOLATILE_HDM_ERR
    } else {
        0
    };
    if changed & !allowed != 0 {
        problems.push(format!(
            "hardware Status2 went {:#06x} -> {:#06x}",
            hw16(&hw_before),
            hw16(&hw_after)
        ));
    }
    all_ok(problems, diag)
}

fn dvsec_range_base_shadow(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let writes: &[(usize, &[u8])] = &[
        (DVSEC_RANGE1_BASE_HI, &[0xff; 4]),
        (DVSEC_RANGE1_BASE_LO, &[0xff; 4]),
        (DVSEC_RANGE1_BASE_LO + 3, &[0x5a]),
        (DVSEC_RANGE1_BASE_HI + 1, &[0x34, 0x12]),
        (DVSEC_RANGE1_BASE_HI + 3, &[0x00]),
        (DVSEC_RANGE2_BASE_HI, &[0x78, 0x56, 0x34, 0x12]),
        (DVSEC_RANGE2_BASE_LO, &[0x78, 0x56, 0x34, 0x12]),
        (DVSEC_RANGE2_BASE_LO + 2, &[0xff, 0xff]),
        (DVSEC_RANGE2_BASE_LO, &[0xff, 0xff]),
        (DVSEC_RANGE2_BASE_HI, &[0x00; 4]),
    ];
    for &(rel, bytes) in writes {
        ctx.dvsec_step(diag, rel, bytes)?;
    }
    // Spelled out: all ones into Range 1 Base High/Low.
    let base = ctx.loc()?.base;
    ctx.cfg_write(base + DVSEC_RANGE1_BASE_HI, &[0xff; 4])?;
    ctx.cfg_write(base + DVSEC_RANGE1_BASE_LO, &[0xff; 4])?;
    let hi = ctx.cfg_read(base + DVSEC_RANGE1_BASE_HI, 4)?;
    let lo = ctx.cfg_read(base + DVSEC_RANGE1_BASE_LO, 4)?;
    let (hi, lo) = (
        u32::from_le_bytes(hi.try_into().unwrap()),
        u32::from_le_bytes(lo.try_into().unwrap()),
    );
    if (hi, lo) != (0xffff_ffff, RANGE_BASE_LO_MASK) {
        return Err(format!("Range 1 Base after writing all ones: high {hi:#010x} low {lo:#010x}, expected 0xffffffff 0xf0000000").into());
    }
    ctx.dvsec_check(diag, "the Range Base writes")?;
    Ok(())
}

fn dvsec_straddling_writes(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let writes: &[(usize, &[u8])] = &[
        // Capability + Control.
        (DVSEC_CAPABILITY, &[0x00, 0x00, 0x04, 0x00]),
        // Control high byte + Status low byte.
        (DVSEC_CONTROL + 1, &[0x40, 0xff]),
        // Status + Control2.
        (DVSEC_STATUS, &[0x00, 0x40, 0x01, 0x00]),
        // Status high byte + Control2 low byte.
        (DVSEC_STATUS + 1, &[0x40, 0x08]),
        // Control2 high byte + Status2 low byte.
        (DVSEC_CONTROL2 + 1, &[0xff, 0xff]),
        // Status2 high byte + Lock low byte (CONFIG_LOCK left clear).
        (DVSEC_STATUS2 + 1, &[0xff, 0xfe]),
        // Lock high byte + Capability2 + Range 1 Size High low byte.
        (DVSEC_LOCK + 1, &[0xff, 0x00, 0x00, 0xff]),
        // Range 1 Size Low high half + Range 1 Base High low half.
        (DVSEC_RANGE1_SIZE_LO + 2, &[0xff, 0xff, 0xcd, 0xab]),
        // Range 1 Base High high half + Range 1 Base Low low half.
        (DVSEC_RANGE1_BASE_HI + 2, &[0x11, 0x22, 0x33, 0x44]),
        // Range 1 Base Low high half + Range 2 Size High low half.
        (DVSEC_RANGE1_BASE_LO + 2, &[0xff, 0xff, 0xff, 0xff]),
        // Range 2 Base High high byte + Range 2 Base Low low bytes.
        (DVSEC_RANGE2_BASE_HI + 3, &[0x99, 0xff]),
    ];
    for &(rel, bytes) in writes {
        ctx.dvsec_step(diag, rel, bytes)?;
    }
    Ok(())
}

fn dvsec_lock_reserved_bits(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    if ctx.dmodel()?.locked() {
        return Err("CONFIG_LOCK is already set".into());
    }
    let writes: &[(usize, &[u8])] = &[
        (DVSEC_LOCK, &[0xfe, 0xff]),
        (DVSEC_LOCK + 1, &[0xff]),
        (DVSEC_LOCK, &[0xfe]),
    ];
    for &(rel, bytes) in writes {
        ctx.dvsec_step(diag, rel, bytes)?;
        let lock = ctx.dvsec_read16(DVSEC_LOCK)?;
        if lock != 0 {
            return Err(format!("Lock reads {lock:#06x} after writing {}", hex_le(bytes)).into());
        }
    }
    // Still unlocked: Control takes writes.
    ctx.dvsec_step(diag, DVSEC_CONTROL, &[0x04, 0x00])?;
    ctx.dvsec_step(diag, DVSEC_CONTROL, &[0x00, 0x00])?;
    Ok(())
}

fn dvsec_lock_freezes_control(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    ctx.dvsec_step(diag, DVSEC_CONTROL, &[0x04, 0x40])?;
    let control = ctx.dvsec_read16(DVSEC_CONTROL)?;
    ctx.dvsec_step(diag, DVSEC_LOCK, &[0xff, 0xff])?;
    let lock = ctx.dvsec_read16(DVSEC_LOCK)?;
    if lock != DVSEC_LOCK_CONFIG {
        return Err(format!("Lock reads {lock:#06x} after writing 0xffff, expected 0x0001").into());
    }
    let writes: &[(usize, &[u8])] = &[
        (DVSEC_CONTROL, &[0x00, 0x00]),
        (DVSEC_CONTROL + 1, &[0x00]),
        (DVSEC_CONTROL, &[0xff]),
        (DVSEC_CAPABILITY, &[0x00, 0x00, 0x00, 0x00]),
        (DVSEC_LOCK, &[0x00, 0x00]),
        (DVSEC_LOCK, &[0x00]),
        (DVSEC_STATUS2 + 1, &[0x00, 0x00]),
    ];
    for &(rel, bytes) in writes {
        ctx.dvsec_step(diag, rel, bytes)?;
        let (c, l) = (
            ctx.dvsec_read16(DVSEC_CONTROL)?,
            ctx.dvsec_read16(DVSEC_LOCK)?,
        );
        if (c, l) != (control, lock) {
            return Err(format!(
                "locked: writing {} at DVSEC+{rel:#x} changed Control/Lock {control:#06x}/{lock:#06x} to {c:#06x}/{l:#06x}",
                hex_le(bytes)
            )
            .into());
        }
    }
    Ok(())
}

/// Every CXL DVSEC but the Device DVSEC is the host's: writes through VFIO (every byte with
/// its value inverted, then every dword) succeed and change nothing in the device's config
/// space, and reads through VFIO show what the device holds.
fn host_dvsecs_read_only(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let before = ctx.sysfs_config()?;
    let dvsecs: Vec<_> = dvsecs_of(&before, DVSEC_VENDOR_CXL)
        .into_iter()
        .filter(|&(_, id, _)| id != DVSEC_ID_CXL_DEVICE)
        .collect();
    if dvsecs.is_empty() {
        return Err("no CXL DVSEC besides the Device DVSEC: nothing to test".into());
    }
    for &(pos, id, len) in &dvsecs {
        diag.push(format!("CXL DVSEC id {id} at {pos:#x}, {len:#x} bytes"));
        for off in 0..len {
            let value = [before[pos + off] ^ 0xff];
            let n = pwrite_once(ctx.dev()?, ctx.config_offset + (pos + off) as u64, &value)
                .map_err(|e| format!("1-byte write at {:#x}: {e}", pos + off))?;
            if n != 1 {
                return Err(format!("1-byte write at {:#x} wrote {n} bytes", pos + off).into());
            }
        }
        for off in (0..len & !3).step_by(4) {
            let value: Vec<u8> = before[pos + off..pos + off + 4]
                .iter()
                .map(|b| !b)
                .collect();
            let n = pwrite_once(ctx.dev()?, ctx.config_offset + (pos + off) as u64, &value)
                .map_err(|e| format!("4-byte write at {:#x}: {e}", pos + off))?;
            if n != 4 {
                return Err(format!("4-byte write at {:#x} wrote {n} bytes", pos + off).into());
            }
        }
    }
    let after = ctx.sysfs_config()?;
    let mut problems = Vec::new();
    for &(pos, id, len) in &dvsecs {
        let changed: Vec<String> = (pos..pos + len)
            .filter(|&b| before[b] != after[b])
            .map(|b| format!("{b:#x}: {:#04x} -> {:#04x}", before[b], after[b]))
            .collect();
        if !changed.is_empty() {
            problems.push(format!(
                "DVSEC id {id} at {pos:#x} changed on the device: {}",
                changed.join(", ")
            ));
        }
        // Past the header, whose next pointer vfio-pci virtualizes.
        let view = ctx.cfg_read(pos + 4, len - 4)?;
        if view[..] != after[pos + 4..pos + len] {
            problems.push(format!(
                "DVSEC id {id} at {pos:#x} reads {view:02x?} through VFIO, the device holds {:02x?}",
                &after[pos + 4..pos + len]
            ));
        }
    }
    all_ok(problems, diag)
}

fn config_outside_dvsec(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let loc = ctx.loc()?;
    let cfg = ctx.sysfs_config()?;
    let mut problems = Vec::new();
    // Straddling into the DVSEC from below.
    let before = loc.base - 2;
    let a = ctx.cfg_read(before, 4)?;
    let below = ctx.cfg_read(before, 2)?;
    let head = ctx.cfg_read(loc.base, 2)?;
    diag.push(format!(
        "4 bytes at {before:#x}: {a:02x?}; 2 at {before:#x}: {below:02x?}; 2 at {:#x}: {head:02x?}",
        loc.base
    ));
    if a[..2] != below[..] || a[2..] != head[..] {
        problems.push(format!(
            "4-byte read at {before:#x} gives {a:02x?}, separate reads {below:02x?} {head:02x?}"
        ));
    }
    if head[..] != cfg[loc.base..loc.base + 2] {
        problems.push(format!(
            "DVSEC header bytes {head:02x?} differ from sysfs {:02x?}",
            &cfg[loc.base..loc.base + 2]
        ));
    }
    let a8 = ctx.cfg_read(loc.base - 4, 8)?;
    let lo4 = ctx.cfg_read(loc.base - 4, 4)?;
    let hi4 = ctx.cfg_read(loc.base, 4)?;
    if a8[..4] != lo4[..] || a8[4..] != hi4[..] {
        problems.push(format!(
            "8-byte read at {:#x} gives {a8:02x?}, separate reads {lo4:02x?} {hi4:02x?}",
            loc.base - 4
        ));
    }
    // Straddling out of the DVSEC at its end.
    let end = loc.base + loc.len;
    let b = ctx.cfg_read(end - 2, 4)?;
    let want_in = &ctx.dmodel()?.expected_view(&ctx.hw_dvsec()?)[loc.len - 2..];
    let after = ctx.cfg_read(end, 2)?;
    diag.push(format!(
        "4 bytes at {:#x}: {b:02x?}; 2 at {end:#x}: {after:02x?}; sysfs {:02x?}",
        end - 2,
        &cfg[end..end + 2]
    ));
    if b[..2] != want_in[..] || b[2..] != after[..] {
        problems.push(format!(
            "4-byte read at {:#x} gives {b:02x?}, expected {want_in:02x?} then {after:02x?}",
            end - 2
        ));
    }
    // Vendor and device IDs.
    let ids = ctx.cfg_read(0, 4)?;
    let (v, d) = (
        u16::from_le_bytes([ids[0], ids[1]]),
        u16::from_le_bytes([ids[2], ids[3]]),
    );
    diag.push(format!("ids {v:04x}:{d:04x}"));
    if (v, d) != (ctx.opts.vendor, ctx.opts.device) {
        problems.push(format!(
            "ids {v:04x}:{d:04x}, expected {:04x}:{:04x}",
            ctx.opts.vendor, ctx.opts.device
        ));
    }
    all_ok(problems, diag)
}

fn dvsec_hardware_unchanged(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let before = ctx.hw_dvsec_before.clone().ok_or("no hardware snapshot")?;
    let mut now = ctx.hw_dvsec()?;
    let mut masked_before = before.clone();
    // The only forwarded bits: Control2 bits 1 and 2, Status2 bit 3.
    for b in [&mut now, &mut masked_before] {
        b[DVSEC_CONTROL2] &= !((DVSEC_CTRL2_CACHE_WBI | DVSEC_CTRL2_CXL_RESET) as u8);
        b[DVSEC_STATUS2] &= !(DVSEC_STATUS2_VOLATILE_HDM_ERR as u8);
    }
    let diffs = dvsec_diff(&now, &masked_before);
    if diffs.is_empty() {
        return Ok(());
    }
    let n = diffs.len();
    diag.extend(
        diffs
            .into_iter()
            .map(|d| format!("sysfs now vs before: {d}")),
    );
    Err(format!("{n} hardware DVSEC register(s) changed").into())
}

fn dvsec_lock_cleared_by_device_reset(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let supports = ctx.info.as_ref().is_some_and(DeviceInfo::supports_reset);
    if !supports {
        return Err(Failure::Skip(
            "VFIO_DEVICE_FLAGS_RESET is clear".to_string(),
        ));
    }
    if !ctx.dmodel()?.locked() {
        ctx.dvsec_step(diag, DVSEC_LOCK, &[0x01, 0x00])?;
    }
    ctx.lines_at_device_reset = Some(cxl_reset_log_lines(&ctx.opts.bdf)?.len());
    ctx.dev()?.reset().map_err(|e| e.to_string())?;
    let view = ctx.dvsec_view()?;
    let hw = ctx.hw_dvsec()?;
    let first = ctx.dvsec_first_view.clone().unwrap_or_default();
    for d in dvsec_diff(&view, &first) {
        diag.push(format!("after reset vs first open: {d}"));
    }
    let lock = u16::from_le_bytes([view[DVSEC_LOCK], view[DVSEC_LOCK + 1]]);
    if lock & DVSEC_LOCK_CONFIG != 0 {
        return Err(format!("Lock reads {lock:#06x} after VFIO_DEVICE_RESET").into());
    }
    ctx.dvsec_model = Some(DvsecModel::new(&view, &hw));
    ctx.dvsec_step(diag, DVSEC_CONTROL, &[0x04, 0x00])?;
    let c = ctx.dvsec_read16(DVSEC_CONTROL)?;
    if c & 0x4 == 0 {
        return Err(format!(
            "Control reads {c:#06x} after writing 0x0004 post-reset: still frozen"
        )
        .into());
    }
    Ok(())
}

/// A reset the user did not ask for (the host's sysfs `reset`, while the device
/// is open) also starts the guest's DVSEC view over: the driver learns of it
/// through the PCI core's `reset_done`.
fn dvsec_lock_cleared_by_sysfs_reset(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let reset = pci::device_dir(&ctx.opts.bdf).join("reset");
    if !reset.exists() {
        return Err(Failure::Skip("no sysfs reset for the device".to_string()));
    }
    if !ctx.dmodel()?.locked() {
        ctx.dvsec_step(diag, DVSEC_LOCK, &[0x01, 0x00])?;
    }
    let lock = ctx.dvsec_read16(DVSEC_LOCK)?;
    if lock & DVSEC_LOCK_CONFIG == 0 {
        return Err(format!("Lock reads {lock:#06x} after setting CONFIG_LOCK").into());
    }
    fs::write(&reset, "1").map_err(|e| format!("write {}: {e}", reset.display()))?;
    let view = ctx.dvsec_view()?;
    let lock = u16::from_le_bytes([view[DVSEC_LOCK], view[DVSEC_LOCK + 1]]);
    diag.push(format!("Lock after the sysfs reset: {lock:#06x}"));
    if lock & DVSEC_LOCK_CONFIG != 0 {
        return Err(format!("Lock reads {lock:#06x} after a sysfs reset: stale shadow").into());
    }
    let hw = ctx.hw_dvsec()?;
    ctx.dvsec_model = Some(DvsecModel::new(&view, &hw));
    Ok(())
}

/// Programs decoder 0 and the DVSEC away from their initial state, closes every
/// fd and opens the device again.
fn reopen(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    unlock_decoder(ctx, 0)?;
    for (reg, v) in [
        (DEC_BASE_LO, 0x4000_0000),
        (DEC_BASE_HI, 0x2),
        (DEC_SIZE_LO, 0x2000_0000),
        (DEC_SIZE_HI, 0),
        (DEC_CTRL, CTRL_LOCK | CTRL_COMMIT | 0x11),
    ] {
        ctx.comp_write(l.dec_reg(0, reg), v)?;
    }
    let programmed = ctx.comp_read_all()?;
    let base = ctx.loc()?.base;
    ctx.cfg_write(base + DVSEC_RANGE1_BASE_HI, &[0x34, 0x12, 0, 0])?;
    ctx.cfg_write(base + DVSEC_RANGE1_BASE_LO, &[0, 0, 0, 0x50])?;
    ctx.cfg_write(base + DVSEC_CONTROL, &[0x04, 0x00])?;
    ctx.cfg_write(base + DVSEC_LOCK, &[0x01, 0x00])?;
    ctx.cfg_write(base + DVSEC_CONTROL2, &[0x04, 0x00])?;
    let view = ctx.dvsec_view()?;
    diag.push(format!(
        "before close: decoder 0 ctrl {:#010x}, DVSEC Lock {:#06x}",
        programmed[l.dec_reg(0, DEC_CTRL) / 4],
        u16::from_le_bytes([view[DVSEC_LOCK], view[DVSEC_LOCK + 1]])
    ));
    let lines = cxl_reset_log_lines(&ctx.opts.bdf)?.len();
    ctx.first_open_reset_lines = Some(lines.saturating_sub(ctx.reset_log_base));
    if let Some(at_reset) = ctx.lines_at_device_reset {
        diag.push(format!(
            "first open: {} CXL Reset log line(s) before VFIO_DEVICE_RESET, {} after it (one request written after it)",
            at_reset.saturating_sub(ctx.reset_log_base),
            lines.saturating_sub(at_reset)
        ));
    }

    ctx.info = None;
    ctx.comp = None;
    let device = ctx.vfio.take().ok_or("device is not open")?;
    device.close().map_err(|e| e.to_string())?;
    open_all(ctx, diag)?;
    let info = ctx.info.clone().ok_or("no device info")?;
    let mut found = find_comp_regs(ctx.dev()?, &info, &mut Vec::new())?;
    if found.len() != 1 {
        return Err(format!("{} COMP_REGS regions after reopening", found.len()).into());
    }
    ctx.comp = found.pop();
    Ok(())
}

fn comp_regs_reset_on_reopen(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let l = ctx.layout()?;
    let first = ctx.comp_first_view.clone().ok_or("no first view")?;
    let now: Vec<u32> = (0..first.len())
        .map(|i| ctx.comp_read(i * 4))
        .collect::<Result<_, _>>()?;
    let mut diffs = Vec::new();
    for (i, (a, b)) in now.iter().zip(&first).enumerate() {
        if a != b {
            diffs.push(format!(
                "+{:#x} ({}): {a:#010x}, at first open {b:#010x}",
                i * 4,
                l.reg_name(i * 4)
            ));
        }
    }
    if let Some(m) = ctx.model.as_mut() {
        m.regs = now;
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let n = diffs.len();
    diag.extend(diffs);
    Err(format!("{n} register(s) differ from the view at the first open").into())
}

fn dvsec_reset_on_reopen(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let view = ctx.dvsec_view()?;
    let hw = ctx.hw_dvsec()?;
    let first = ctx.dvsec_first_view.clone().unwrap_or_default();
    for d in dvsec_diff(&view, &first) {
        diag.push(format!("reopened vs first open: {d}"));
    }
    ctx.dvsec_model = Some(DvsecModel::new(&view, &hw));
    let m = ctx.dmodel()?;
    let mut problems = Vec::new();
    if m.locked() {
        problems.push(format!("Lock reads {:#06x} in the new open", m.lock));
    }
    if m.range_base != [0; 4] {
        problems.push(format!(
            "Range Base registers read {:#010x?}, expected 0",
            m.range_base
        ));
    }
    if problems.is_empty() {
        ctx.dvsec_step(diag, DVSEC_CONTROL, &[0x04, 0x00])?;
        let c = ctx.dvsec_read16(DVSEC_CONTROL)?;
        if c & 0x4 == 0 {
            problems.push(format!(
                "Control reads {c:#06x} after writing 0x0004: still frozen"
            ));
        }
    }
    all_ok(problems, diag)
}

fn dvsec_cxl_reset_logged_once_per_open(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let bdf = ctx.opts.bdf.clone();
    let base = ctx.loc()?.base;
    ctx.cfg_write(base + DVSEC_CONTROL2, &[0x04, 0x00])?;
    ctx.cfg_write(base + DVSEC_CONTROL2, &[0x04])?;
    let lines = cxl_reset_log_lines(&bdf)?;
    let new = &lines[ctx.reset_log_base.min(lines.len())..];
    for l in new {
        diag.push(format!("log: {l}"));
    }
    let mut problems = Vec::new();
    let first = ctx.first_open_reset_lines.ok_or("first open not counted")?;
    diag.push(format!(
        "first open: {first} line(s); second open: {} line(s)",
        new.len()
    ));
    if first != 1 {
        problems.push(format!(
            "the first open logged the unsupported CXL Reset {first} times, expected once"
        ));
    }
    if new.len() != 1 {
        problems.push(format!(
            "the second open logged it {} times after 2 requests, expected once",
            new.len()
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

// ---------------------------------------------------------------------------
// disable_cxl=1
// ---------------------------------------------------------------------------

fn no_comp_regs_region(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let info = ctx.info.clone().ok_or("no device info")?;
    if info.flags & VFIO_DEVICE_FLAGS_CXL != 0 || cxl_device_cap(&info).is_some() {
        diag.push("note: the device info still advertises CXL".to_string());
    }
    let found = find_comp_regs(ctx.dev()?, &info, diag)?;
    if !found.is_empty() {
        return Err(format!("COMP_REGS region {} exists", found[0].index).into());
    }
    if info.num_regions != VFIO_PCI_NUM_REGIONS {
        return Err(format!(
            "num_regions {}, expected {VFIO_PCI_NUM_REGIONS}",
            info.num_regions
        )
        .into());
    }
    Ok(())
}

fn config_readable(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let ids = ctx.cfg_read(0, 4)?;
    let (v, d) = (
        u16::from_le_bytes([ids[0], ids[1]]),
        u16::from_le_bytes([ids[2], ids[3]]),
    );
    diag.push(format!("ids {v:04x}:{d:04x}"));
    if (v, d) != (ctx.opts.vendor, ctx.opts.device) {
        return Err(format!(
            "ids {v:04x}:{d:04x}, expected {:04x}:{:04x}",
            ctx.opts.vendor, ctx.opts.device
        )
        .into());
    }
    // A conventional PCI function has no extended space, hence no DVSEC to compare.
    let cfg = ctx.sysfs_config_any()?;
    if let Some((base, len)) = find_dvsec(&cfg, DVSEC_VENDOR_CXL, DVSEC_ID_CXL_DEVICE) {
        let mut view = Vec::new();
        for off in (0..len).step_by(4) {
            view.extend(ctx.cfg_read(base + off, 4.min(len - off))?);
        }
        let diffs = dvsec_diff(&view, &cfg[base..base + len]);
        diag.push(format!(
            "DVSEC at {base:#x} read through VFIO; {} register(s) differ from sysfs",
            diffs.len()
        ));
        diag.extend(diffs);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs every step in order and returns whether all passed.
fn run_suite(opts: Options) -> bool {
    let steps = if opts.no_cxl { NO_CXL_STEPS } else { STEPS };
    let mut ktap = Ktap::stdout(steps.len());
    ktap.diag(&format!(
        "cxlvfio-cxl: device {}{}",
        opts.bdf,
        if opts.no_cxl {
            " (expecting plain vfio-pci: disable_cxl=1 or no CXL DVSEC)"
        } else {
            ""
        }
    ));
    let mut ctx = Ctx::new(opts);
    let mut passed: HashSet<&str> = HashSet::new();
    for step in steps {
        if let Some(dep) = step.deps.iter().find(|d| !passed.contains(*d)) {
            ktap.not_ok(step.name, &format!("depends on {dep}"));
            continue;
        }
        let mut diag = Vec::new();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            ctx.resync();
            (step.run)(&mut ctx, &mut diag)
        }));
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
    ctx.vfio = None;
    let ok = ktap.all_passed();
    ktap.finish();
    ok
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args, std::env::var("CXL_BDF").ok()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cxlvfio-cxl: error: {e}\n{USAGE}");
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
    use cxlvfio::pci::parse_ids;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn args_parsing() {
        let o = parse_args(&s(&["--device", "0d:00.0"]), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            o,
            Options {
                bdf: "0000:0d:00.0".into(),
                vendor: 0x8086,
                device: 0x0d93,
                no_cxl: false,
                decoders: None,
            }
        );
        let o = parse_args(&s(&["--expect-decoders", "4"]), Some("0d:00.0".into()))
            .unwrap()
            .unwrap();
        assert_eq!(o.decoders, Some(4));
        for bad in ["0", "33", "four"] {
            assert!(
                parse_args(&s(&["--expect-decoders", bad]), Some("0d:00.0".into())).is_err(),
                "{bad}"
            );
        }
        let o = parse_args(&s(&["--expect-no-cxl"]), Some("0000:0d:00.0".into()))
            .unwrap()
            .unwrap();
        assert!(o.no_cxl);
        assert!(parse_args(&s(&["--expect-no-cxl=1"]), Some("0d:00.0".into())).is_err());
        let o = parse_args(&s(&["--expect-ids=1b36:0010", "--device=0e:00.0"]), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.vendor, o.device, o.bdf.as_str()),
            (0x1b36, 0x0010, "0000:0e:00.0")
        );
        assert_eq!(parse_args(&s(&["-h"]), None).unwrap(), None);
        assert!(parse_args(&[], None).is_err());
        assert!(parse_args(&s(&["--expect-ids", "zz"]), Some("0d:00.0".into())).is_err());
        assert!(parse_args(&s(&["extra"]), Some("0d:00.0".into())).is_err());
        assert_eq!(parse_ids("0x8086:0D93"), Some((0x8086, 0x0d93)));
        assert_eq!(parse_ids("8086"), None);
    }

    #[test]
    fn step_tables_are_consistent() {
        for steps in [STEPS, NO_CXL_STEPS] {
            let mut names = HashSet::new();
            for (i, step) in steps.iter().enumerate() {
                assert!(names.insert(step.name), "duplicate step {}", step.name);
                for dep in step.deps {
                    let pos = steps.iter().position(|s| s.name == *dep);
                    assert!(
                        pos.is_some_and(|p| p < i),
                        "{} depends on {dep}, which does not run before it",
                        step.name
                    );
                }
            }
        }
        assert_eq!(
            NO_CXL_STEPS.iter().map(|s| s.name).collect::<Vec<_>>(),
            ["vfio_open", "no_comp_regs_region", "config_readable"]
        );
    }

    #[test]
    fn raw_region_info_fields() {
        let raw: Vec<u8> = [32u32, 3, 0, 0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .chain(0x10000u64.to_ne_bytes())
            .chain(0x1234u64.to_ne_bytes())
            .collect();
        assert_eq!(raw_region_info(&raw), (32, 3, 0, 0, 0x10000, 0x1234));
        assert_eq!(
            le_bytes(&[0x0403_0201, 0x0807_0605]),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(hex_le(&[0x34, 0x12]), "0x1234 (2 bytes)");
        assert_eq!(hex_le(&[0x04]), "0x04 (1 byte)");
        let einval = io::Error::from_raw_os_error(libc::EINVAL);
        assert!(expect_einval::<()>(Err(einval), "x").is_ok());
        let eio = io::Error::from_raw_os_error(libc::EIO);
        assert!(expect_einval::<()>(Err(eio), "x").is_err());
        assert!(expect_einval(Ok(4usize), "x")
            .unwrap_err()
            .contains("succeeded (4)"));
        let mut diag = Vec::new();
        assert!(all_ok(vec![], &mut diag).is_ok());
        match all_ok(vec!["a".into(), "b".into()], &mut diag) {
            Err(Failure::Fail(m)) => assert_eq!(m, "a (and 1 more)"),
            other => panic!("{other:?}"),
        }
        assert_eq!(diag, ["a", "b"]);
        let bdf = "0000:0d:00.0";
        assert!(is_cxl_reset_line(
            "cxl-vfio-pci 0000:0d:00.0: guest asked for a CXL Reset: not supported, not forwarded",
            bdf
        ));
        assert!(is_cxl_reset_line(
            "cxl-vfio-pci 0000:0d:00.0: CXL reset unsupported",
            bdf
        ));
        assert!(!is_cxl_reset_line(
            "cxl-vfio-pci 0000:0e:00.0: CXL Reset not supported",
            bdf
        ));
        assert!(!is_cxl_reset_line(
            "cxl-vfio-pci 0000:0d:00.0: CXL Reset done",
            bdf
        ));
    }
}
