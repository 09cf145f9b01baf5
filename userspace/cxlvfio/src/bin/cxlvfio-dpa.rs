//! `cxlvfio-dpa`: in-VM tests of the DPA region of `cxl-vfio-pci` (the device
//! memory), reported as KTAP.
//!
//! Runs as root in the guest after the harness has loaded the module, enabled
//! VFIO no-IOMMU mode (or given the guest an IOMMU) and bound the device. Like
//! a VMM it only uses the VFIO UAPI: device info and its CXL capability, the
//! DPA region's info, `mmap`, `pread`/`pwrite`, `VFIO_DEVICE_RESET`, the low
//! power device features and, with an IOMMU, DMA mappings. `/proc/iomem`, the
//! kernel log and a helper module that claims the DPA range are the outside view.
//!
//! The device is opened in the IOMMU mode `CXLVFIO_IOMMU` names (`noiommu`,
//! `type1`, `iommufd`; unset or `auto`: the no-IOMMU group if there is one,
//! else type1), see [`cxlvfio::iommu`].
//!
//! A SIGBUS handler turns an unexpected fault on device memory into a failed
//! test instead of the end of the run ([`cxlvfio::sigbus`]). The last test
//! leaves data in device memory and prints `# backend-check` lines for
//! `cxlvfio backend-check` to find in the QEMU backend file after the VM exits.
//!
//! ```text
//! cxlvfio-dpa [--device <BDF>] [--expect-ids VVVV:DDDD] [--resets N] [--only NAME]
//!             [--expect-no-scrub] [--expect-dpa-dma type1=ok|ERRNO,iommufd=ok|ERRNO]
//! ```

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cxlvfio::backend::{self, Marker};
use cxlvfio::cli;
use cxlvfio::cxl::{
    component_block, find_dvsec, CapArray, HdmLayout, RealHdm, COMP_BLOCK_SIZE,
    CXL_CM_CAP_CAP_ID_HDM, CXL_CM_OFFSET, DEC_BASE_LO, DEC_CTRL, DEC_SIZE_HI, DEC_SIZE_LO,
    DVSEC_CAPABILITY, DVSEC_CAP_CACHE, DVSEC_ID_CXL_DEVICE, DVSEC_VENDOR_CXL, LOW_ADDR_MASK,
    VFIO_REGION_TYPE_CXL,
};
use cxlvfio::error::raw_os_error;
use cxlvfio::ioeventfd;
use cxlvfio::iomem::{self, IomemEntry};
use cxlvfio::kmsg::{self, KmsgRecord, LOG_ERR};
use cxlvfio::ktap::{Failure, Ktap, StepResult};
use cxlvfio::mmap::{thread_faults, ChildExit, Mapping, PAGE_SIZE};
use cxlvfio::pattern::{self, Rng};
use cxlvfio::sigbus;
use cxlvfio::uapi::{
    device_flags_str, region_flags_str, VfioDeviceInfo, VfioDeviceInfoCapCxl,
    VFIO_CXL_CAP_CACHE_CAPABLE, VFIO_CXL_CAP_FIRMWARE_COMMITTED, VFIO_DEVICE_FLAGS_CAPS,
    VFIO_DEVICE_FLAGS_CXL, VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET,
    VFIO_DEVICE_INFO_CAP_CXL, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_NUM_IRQS,
    VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_FLAG_CAPS,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
    VFIO_REGION_SUBTYPE_CXL, VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
};
use cxlvfio::{
    kmod, open_device, open_device_with, pci, AttachedDevice, Device, DeviceInfo, IommuMode,
    RegionInfo,
};

/// QEMU `cxl-type3` PCI IDs.
const DEFAULT_IDS: (u16, u16) = (0x8086, 0x0d93);
/// The PCI driver's name: the prefix of its log lines and of its `/proc/iomem` claim.
const DRIVER: &str = "cxl-vfio-pci";
/// Device-specific regions the driver adds after the 9 of vfio-pci: DPA and COMP_REGS.
const DEVICE_SPECIFIC_REGIONS: u32 = 2;
/// `VFIO_PCI_OFFSET_SHIFT`: region `i` starts at offset `i << 40` of the device fd.
const REGION_OFFSET_SHIFT: u32 = 40;

/// Test module that claims an iomem range at load (`start=`, `size=`) and releases it at unload.
const CLAIM_TEST_MODULE: &str = "cxl_vfio_claim_test";
/// An open refused because the DPA range is claimed must log, at error level and
/// prefixed `cxl-vfio-pci <BDF>: `, a line containing every one of these.
const EBUSY_LOG_SUBSTRINGS: &[&str] = &["DPA range", "busy"];

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;
const PAGE: usize = PAGE_SIZE;

/// How much of the region the fault-count and scrub tests touch.
const TOUCH_LEN: usize = 64 * MIB;
/// Faults through a misaligned mapping per fault through an aligned one, at least
/// (4 KiB versus 2 MiB entries give 512).
const MIN_FAULT_RATIO: u64 = 256;
/// The stress test's patterned area, its readers and their minimum reads each.
const STRESS_LEN: usize = 16 * MIB;
const STRESS_READERS: u64 = 3;
const READS_PER_READER: u64 = 2000;
const DEFAULT_RESETS: u32 = 200;
/// Stress time limit: this much plus `PER_RESET_TIMEOUT` per reset.
const STRESS_TIMEOUT: Duration = Duration::from_secs(120);
const PER_RESET_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before retrying a pread that failed with EIO during a reset.
const EIO_RETRY_DELAY: Duration = Duration::from_micros(100);
/// How long a forked child may take to fault.
const CHILD_TIMEOUT: Duration = Duration::from_secs(10);
/// modprobe that blocks longer than this means a hung module.
const KERNEL_OP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of each backend marker.
const MARKER_LEN: usize = 4096;
/// At most this many kernel log lines are printed.
const MAX_LOG_LINES: usize = 40;

const USAGE: &str = "usage: cxlvfio-dpa [--device <BDF>] [--expect-ids VVVV:DDDD] \
[--resets N] [--only NAME] [--expect-no-scrub] \
[--expect-dpa-dma type1=ok|ERRNO,iommufd=ok|ERRNO]\n\
\n\
Tests the DPA region (device memory) of cxl-vfio-pci on <BDF> (default: $CXL_BDF)\n\
through VFIO and prints KTAP. --resets: VFIO_DEVICE_RESETs during the stress test\n\
(default 200). --only NAME: run test NAME and the tests it depends on.\n\
--expect-no-scrub: the module was loaded with scrub_memory=0: data must survive a reopen.\n\
--expect-dpa-dma: what a DMA map of an mmap of the DPA region must give in each IOMMU\n\
mode (ok, or an errno name such as EFAULT); without it the outcome is only reported.\n\
The IOMMU mode comes from $CXLVFIO_IOMMU: noiommu, type1, iommufd, or auto (unset:\n\
the no-IOMMU group if there is one, else type1).\n\
The backend_markers test prints '# backend-check' lines; after the VM exits,\n\
'cxlvfio backend-check <backend file>' checks them. Exit status 0 if every test passed.";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    bdf: String,
    vendor: u16,
    device: u16,
    resets: u32,
    only: Option<String>,
    /// The driver was loaded with `scrub_memory=0`.
    expect_no_scrub: bool,
    /// What a DMA map of the mmapped DPA region must give, per mode.
    expect_dpa_dma: DpaDmaExpect,
}

/// `Ok(None)` means help was requested.
fn parse_args(args: &[String], env_bdf: Option<String>) -> Result<Option<Options>, String> {
    let mut resets = DEFAULT_RESETS;
    let mut only = None;
    let mut expect_no_scrub = false;
    let mut expect_dpa_dma = DpaDmaExpect::default();
    let dev = cli::parse_device_args(args, env_bdf, DEFAULT_IDS, |opt| match opt.key {
        "--resets" => {
            let v = opt.value()?;
            resets = v.parse().map_err(|_| format!("bad --resets {v:?}"))?;
            Ok(true)
        }
        "--only" => {
            let v = opt.value()?;
            if !STEPS.iter().any(|s| s.name == v) {
                let names: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
                return Err(format!("no test {v:?}; tests: {}", names.join(", ")));
            }
            only = Some(v);
            Ok(true)
        }
        "--expect-no-scrub" => {
            expect_no_scrub = true;
            Ok(true)
        }
        "--expect-dpa-dma" => {
            expect_dpa_dma = DpaDmaExpect::parse(&opt.value()?)?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(dev.map(|dev| Options {
        bdf: dev.bdf,
        vendor: dev.vendor,
        device: dev.device,
        resets,
        only,
        expect_no_scrub,
        expect_dpa_dma,
    }))
}

/// How a DMA map came out: it worked, or the kernel refused it with an errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DmaOutcome {
    Ok,
    Errno(i32),
}

impl DmaOutcome {
    /// `ok`, an errno name from [`ERRNO_NAMES`] or a decimal errno.
    fn parse(s: &str) -> Option<Self> {
        if s == "ok" {
            return Some(DmaOutcome::Ok);
        }
        ERRNO_NAMES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(code, _)| *code)
            .or_else(|| s.parse().ok().filter(|&c: &i32| c > 0))
            .map(DmaOutcome::Errno)
    }
}

impl std::fmt::Display for DmaOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DmaOutcome::Ok => f.write_str("ok"),
            DmaOutcome::Errno(code) => f.write_str(&errno_name(*code)),
        }
    }
}

/// `--expect-dpa-dma type1=ok|ERRNO,iommufd=ok|ERRNO`: either part may be left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DpaDmaExpect {
    type1: Option<DmaOutcome>,
    iommufd: Option<DmaOutcome>,
}

impl DpaDmaExpect {
    fn parse(v: &str) -> Result<Self, String> {
        let bad = |why: String| format!("bad --expect-dpa-dma {v:?}: {why}");
        let mut out = DpaDmaExpect::default();
        for part in v.split(',') {
            let (mode, outcome) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not MODE=OUTCOME")))?;
            let outcome = DmaOutcome::parse(outcome)
                .ok_or_else(|| bad(format!("{outcome:?} is neither ok nor an errno name")))?;
            let slot = match mode {
                "type1" => &mut out.type1,
                "iommufd" => &mut out.iommufd,
                _ => return Err(bad(format!("mode {mode:?}: type1 or iommufd"))),
            };
            if slot.replace(outcome).is_some() {
                return Err(bad(format!("{mode} given twice")));
            }
        }
        Ok(out)
    }

    fn get(&self, mode: IommuMode) -> Option<DmaOutcome> {
        match mode {
            IommuMode::Type1 => self.type1,
            IommuMode::Iommufd => self.iommufd,
            IommuMode::NoIommu => None,
        }
    }
}

/// A device-specific region and the `(type, subtype)` pairs its capabilities name.
#[derive(Debug, Clone)]
struct ScannedRegion {
    info: RegionInfo,
    types: Vec<(u32, u32)>,
}

/// State shared by the steps.
struct Ctx {
    opts: Options,
    vfio: Option<AttachedDevice>,
    /// The IOMMU mode of the last open.
    mode: Option<IommuMode>,
    info: Option<DeviceInfo>,
    /// Every device-specific region of the current open.
    regions: Vec<ScannedRegion>,
    /// The DPA and COMP_REGS regions, if exactly one of each was found.
    dpa: Option<RegionInfo>,
    comp: Option<RegionInfo>,
    /// The driver's `/proc/iomem` claim of the DPA range.
    claimed: Option<IomemEntry>,
    /// Seed of this run's data patterns.
    seed: u64,
    /// Kernel log position at the start of the run.
    log_mark: Option<u64>,
    /// Diagnostics printed as they are, without the step's name (`# faults: ...`).
    report: Vec<String>,
}

impl Ctx {
    fn new(opts: Options) -> Self {
        Ctx {
            opts,
            vfio: None,
            mode: None,
            info: None,
            regions: Vec::new(),
            dpa: None,
            comp: None,
            claimed: None,
            seed: 0,
            log_mark: None,
            report: Vec::new(),
        }
    }

    fn dev(&self) -> Result<&Device, String> {
        self.vfio
            .as_deref()
            .ok_or_else(|| "device is not open".to_string())
    }

    fn attached(&self) -> Result<&AttachedDevice, String> {
        self.vfio
            .as_ref()
            .ok_or_else(|| "device is not open".to_string())
    }

    fn info(&self) -> Result<&DeviceInfo, String> {
        self.info
            .as_ref()
            .ok_or_else(|| "no device info".to_string())
    }

    fn dpa(&self) -> Result<&RegionInfo, String> {
        self.dpa.as_ref().ok_or_else(|| "no DPA region".to_string())
    }

    /// The DPA region's size, which must be at least `min` bytes for the test.
    fn dpa_len(&self, min: usize) -> Result<usize, String> {
        let size = usize::try_from(self.dpa()?.size).map_err(|_| "DPA region too large")?;
        if size < min {
            return Err(format!(
                "the DPA region has {size:#x} bytes, the test needs {min:#x}"
            ));
        }
        Ok(size)
    }

    /// Opens the device, reads its info and finds its device-specific regions.
    fn open(&mut self) -> Result<(), String> {
        if self.vfio.is_some() {
            self.close()?;
        }
        let fds = open_device(&self.opts.bdf).map_err(|e| e.to_string())?;
        let info = fds.info();
        self.mode = Some(fds.mode());
        self.vfio = Some(fds);
        let info = info.map_err(|e| e.to_string())?;
        let dev = self.dev()?;
        let mut regions = Vec::new();
        for index in VFIO_PCI_NUM_REGIONS..info.num_regions {
            let r = dev.region_info(index).map_err(|e| e.to_string())?;
            let types = r
                .capabilities()
                .iter()
                .filter_map(|c| c.region_type())
                .collect();
            regions.push(ScannedRegion { info: r, types });
        }
        let only = |subtype| {
            let found: Vec<&ScannedRegion> = regions
                .iter()
                .filter(|r| r.types.contains(&(VFIO_REGION_TYPE_CXL, subtype)))
                .collect();
            match found.as_slice() {
                [r] => Some(r.info.clone()),
                _ => None,
            }
        };
        self.dpa = only(VFIO_REGION_SUBTYPE_CXL);
        self.comp = only(VFIO_REGION_SUBTYPE_CXL_COMP_REGS);
        self.regions = regions;
        self.info = Some(info);
        Ok(())
    }

    /// Closes the device and its IOMMU side (group and container, or IOAS and iommufd).
    fn close(&mut self) -> Result<(), String> {
        self.info = None;
        self.dpa = None;
        self.comp = None;
        self.regions.clear();
        match self.vfio.take() {
            Some(fds) => fds.close().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn reopen(&mut self) -> Result<(), String> {
        self.close().map_err(|e| format!("close: {e}"))?;
        self.open().map_err(|e| format!("reopen: {e}"))
    }

    /// Opens the device again if an earlier step left it closed.
    fn ensure_open(&mut self) -> Result<(), String> {
        if self.vfio.is_none() {
            self.open().map_err(|e| format!("reopen: {e}"))?;
        }
        Ok(())
    }

    // --- DPA region access --------------------------------------------------

    fn dpa_pos(&self, off: usize) -> io::Result<u64> {
        let dpa = self.dpa().map_err(io::Error::other)?;
        Ok(dpa.offset + off as u64)
    }

    /// Exactly one pread of `len` bytes at `off` of the DPA region (no bounds check).
    fn pread_once(&self, off: usize, len: usize) -> io::Result<Vec<u8>> {
        let pos = self.dpa_pos(off)?;
        let mut buf = vec![0u8; len];
        let n = self.dev().map_err(io::Error::other)?.pread(&mut buf, pos)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Exactly one pwrite of `data` at `off` of the DPA region (no bounds check).
    fn pwrite_once(&self, off: usize, data: &[u8]) -> io::Result<usize> {
        let pos = self.dpa_pos(off)?;
        self.dev().map_err(io::Error::other)?.pwrite(data, pos)
    }

    /// Reads `len` bytes at `off`, in as many preads as it takes.
    fn read_full(&self, off: usize, len: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; len];
        let dev = self.dev()?;
        let mut done = 0;
        while done < len {
            let pos = self.dpa_pos(off + done).map_err(|e| e.to_string())?;
            let end = len.min(done + 8 * MIB);
            match dev.pread(&mut buf[done..end], pos) {
                Ok(0) => return Err(format!("pread at DPA {:#x} returned 0", off + done)),
                Ok(n) => done += n,
                Err(e) => {
                    return Err(format!(
                        "pread of {} bytes at DPA {:#x}: {}",
                        end - done,
                        off + done,
                        describe_err(&e)
                    ))
                }
            }
        }
        Ok(buf)
    }

    /// Writes `data` at `off`, in as many pwrites as it takes.
    fn write_full(&self, off: usize, data: &[u8]) -> Result<(), String> {
        let dev = self.dev()?;
        let mut done = 0;
        while done < data.len() {
            let pos = self.dpa_pos(off + done).map_err(|e| e.to_string())?;
            match dev.pwrite(&data[done..], pos) {
                Ok(0) => return Err(format!("pwrite at DPA {:#x} returned 0", off + done)),
                Ok(n) => done += n,
                Err(e) => {
                    return Err(format!(
                        "pwrite of {} bytes at DPA {:#x}: {}",
                        data.len() - done,
                        off + done,
                        describe_err(&e)
                    ))
                }
            }
        }
        Ok(())
    }

    /// A shared mapping of the whole DPA region where the kernel chooses.
    fn map_dpa(&self) -> Result<Mapping, String> {
        let dpa = self.dpa()?;
        Mapping::shared(self.dev()?.as_fd(), dpa.offset, dpa.size as usize)
            .map_err(|e| format!("mmap of the DPA region: {}", describe_err(&e)))
    }

    /// A shared mapping of the whole DPA region at `skew` bytes past a 1 GiB boundary.
    fn map_dpa_at(&self, skew: usize) -> Result<Mapping, String> {
        let dpa = self.dpa()?;
        Mapping::shared_aligned(
            self.dev()?.as_fd(),
            dpa.offset,
            dpa.size as usize,
            GIB,
            skew,
        )
        .map_err(|e| {
            format!(
                "mmap of the DPA region at 1 GiB + {skew:#x}: {}",
                describe_err(&e)
            )
        })
    }

    /// Decoder 0's size as the COMP_REGS region shows it.
    fn decoder0_size(&self) -> Result<(u64, u32), String> {
        let comp = self.comp.as_ref().ok_or("no COMP_REGS region")?;
        let dev = self.dev()?;
        let read = |off: usize| -> Result<u32, String> {
            let mut b = [0u8; 4];
            dev.read_region(comp.index, off as u64, &mut b)
                .map_err(|e| e.to_string())?;
            Ok(u32::from_le_bytes(b))
        };
        let n = CapArray::array_size(read(0)?);
        let dwords = (0..=n)
            .map(|i| read(i * 4))
            .collect::<Result<Vec<_>, _>>()?;
        let array = CapArray::parse(&dwords)?;
        let hdm = array
            .find(CXL_CM_CAP_CAP_ID_HDM)
            .ok_or("no HDM decoder capability in COMP_REGS")?;
        let l = HdmLayout {
            hdm_offset: hdm.offset,
            count: 1,
            cap: 0,
            cache_capable: false,
        };
        let lo = read(l.dec_reg(0, DEC_SIZE_LO))?;
        let hi = read(l.dec_reg(0, DEC_SIZE_HI))?;
        let ctrl = read(l.dec_reg(0, DEC_CTRL))?;
        Ok(((u64::from(hi) << 32) | u64::from(lo & LOW_ADDR_MASK), ctrl))
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The errnos the tests expect or commonly see, by name.
const ERRNO_NAMES: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EFAULT, "EFAULT"),
    (libc::EBUSY, "EBUSY"),
    (libc::EEXIST, "EEXIST"),
    (libc::ENODEV, "ENODEV"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::ENOTTY, "ENOTTY"),
    (libc::ERANGE, "ERANGE"),
    (libc::EOVERFLOW, "EOVERFLOW"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
];

/// The symbolic name of an errno the tests expect or commonly see.
fn errno_name(code: i32) -> String {
    ERRNO_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| format!("errno {code}"), |(_, name)| (*name).to_string())
}

/// `EINVAL (what failed: Invalid argument)`, or the message of an error without errno.
fn describe_err(e: &io::Error) -> String {
    match raw_os_error(e) {
        Some(code) => format!("{} ({e})", errno_name(code)),
        None => e.to_string(),
    }
}

/// Passes if `r` failed with one of `allowed`; otherwise describes what happened.
fn expect_errno<T: std::fmt::Debug>(
    r: io::Result<T>,
    allowed: &[i32],
    what: &str,
) -> Result<String, String> {
    let names: Vec<String> = allowed.iter().map(|&c| errno_name(c)).collect();
    let names = names.join(" or ");
    match r {
        Err(e) if raw_os_error(&e).is_some_and(|c| allowed.contains(&c)) => Ok(format!(
            "{what}: {}",
            errno_name(raw_os_error(&e).unwrap_or(0))
        )),
        Err(e) => Err(format!("{what}: {}, expected {names}", describe_err(&e))),
        Ok(v) => Err(format!("{what}: succeeded ({v:?}), expected {names}")),
    }
}

/// Compares bytes read at region offset `off` with the expected ones.
fn compare(what: &str, off: usize, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: {} bytes at {off:#x}, expected {}",
            got.len(),
            want.len()
        ));
    }
    match pattern::first_difference(got, want) {
        None => Ok(()),
        Some(i) => {
            let wrong = got.iter().zip(want).filter(|(a, b)| a != b).count();
            Err(format!(
                "{what}: {wrong} of {} bytes at {off:#x} differ, first at DPA {:#x}: {:#04x}, expected {:#04x}",
                want.len(),
                off + i,
                got[i],
                want[i]
            ))
        }
    }
}

/// Fails unless every byte read at `off` is zero.
fn expect_zeros(what: &str, off: usize, got: &[u8]) -> Result<(), String> {
    match got.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: {} of {} bytes at {off:#x} are not zero, first at DPA {:#x}: {:#04x}",
            got.iter().filter(|&&b| b != 0).count(),
            got.len(),
            off + i,
            got[i]
        )),
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

/// The device's config space from sysfs: the hardware, not VFIO's view.
fn sysfs_config(bdf: &str) -> Result<Vec<u8>, String> {
    let path = pci::device_dir(bdf).join("config");
    let b = fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    if b.len() < 0x1000 {
        return Err(format!(
            "{}: only {} bytes (not root?)",
            path.display(),
            b.len()
        ));
    }
    Ok(b)
}

/// 64 random bits, from /dev/urandom or else the clock.
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_ne_bytes(b);
    }
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    pattern::mix64(t ^ u64::from(std::process::id()))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// `a / b` with one decimal, `inf` for `b` = 0.
fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "inf".to_string()
    } else {
        format!("{:.1}", a / b)
    }
}

/// Runs `f` on a helper thread and gives up waiting after `timeout`, so a
/// command that hangs in the kernel fails the test instead of the whole run.
/// A thread stuck in the kernel is left behind.
fn with_timeout<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(timeout).ok()
}

/// Runs `program args...` with [`KERNEL_OP_TIMEOUT`].
fn run_command(program: &str, args: &[String]) -> Result<kmod::CommandOutput, String> {
    let what = format!("{program} {}", args.join(" "));
    let (p, a) = (program.to_string(), args.to_vec());
    with_timeout(KERNEL_OP_TIMEOUT, move || {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        kmod::run(&p, &a)
    })
    .ok_or_else(|| format!("{what} did not return within {KERNEL_OP_TIMEOUT:?}"))?
    .map_err(|e| format!("{what}: {e}"))
}

/// The name the driver claims the DPA range under in `/proc/iomem`.
fn claim_name(bdf: &str) -> String {
    format!("{DRIVER} {bdf}")
}

/// The driver's error line about an open refused because the DPA range is busy.
fn is_busy_line(r: &KmsgRecord, bdf: &str) -> bool {
    r.level <= LOG_ERR
        && r.text.contains(&format!("{DRIVER} {bdf}: "))
        && EBUSY_LOG_SUBSTRINGS.iter().all(|s| r.text.contains(s))
}

/// A `VFIO_DEVICE_GET_INFO` with `argsz` on a 4 KiB buffer pre-filled with `fill`.
fn info_call(dev: &Device, argsz: u32, fill: u8) -> (io::Result<()>, Vec<u8>) {
    let mut buf = vec![fill; 4096];
    buf[..4].copy_from_slice(&argsz.to_ne_bytes());
    let r = dev.get_info_raw(&mut buf);
    (r, buf)
}

fn u32_ne(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u16_ne(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

/// Index of the first byte at or after `from` that is no longer `fill`.
fn first_written(buf: &[u8], from: usize, fill: u8) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b != fill)
        .map(|i| from + i)
}

/// One capability of a device info chain: id, version, offset and the bytes
/// it spans (to the next capability, or to the end of the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChainEntry {
    id: u16,
    version: u16,
    offset: usize,
    span: usize,
}

/// Walks the capability chain of an info buffer of exactly `argsz` bytes from
/// offset `first`, rejecting offsets that leave the buffer or do not advance.
fn walk_chain(buf: &[u8], first: usize) -> Result<Vec<ChainEntry>, String> {
    let mut out = Vec::new();
    let mut off = first;
    loop {
        if off + 8 > buf.len() {
            return Err(format!(
                "capability header at {off:#x} does not fit in {:#x} bytes",
                buf.len()
            ));
        }
        let next = u32_ne(buf, off + 4) as usize;
        let end = if next == 0 { buf.len() } else { next };
        if next != 0 && (next <= off || next + 8 > buf.len()) {
            return Err(format!(
                "capability at {off:#x} points to {next:#x} (buffer {:#x} bytes)",
                buf.len()
            ));
        }
        out.push(ChainEntry {
            id: u16_ne(buf, off),
            version: u16_ne(buf, off + 2),
            offset: off,
            span: end - off,
        });
        if next == 0 {
            return Ok(out);
        }
        off = next;
    }
}

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

type StepFn = fn(&mut Ctx, &mut Vec<String>) -> StepResult;

/// One test: its KTAP name, the steps that must have passed, whether it needs
/// the device open (reopened if an earlier step left it closed), and the body.
struct Step {
    name: &'static str,
    deps: &'static [&'static str],
    open: bool,
    run: StepFn,
}

const OPEN: &[&str] = &["vfio_open"];
const DPA: &[&str] = &["dpa_region_info"];

const STEPS: &[Step] = &[
    Step {
        name: "vfio_open",
        deps: &[],
        open: false,
        run: vfio_open,
    },
    Step {
        name: "device_info_flags",
        deps: OPEN,
        open: true,
        run: device_info_flags,
    },
    Step {
        name: "device_info_argsz",
        deps: OPEN,
        open: true,
        run: device_info_argsz,
    },
    Step {
        name: "device_info_cxl_cap",
        deps: OPEN,
        open: true,
        run: device_info_cxl_cap,
    },
    Step {
        name: "dpa_region_info",
        deps: OPEN,
        open: true,
        run: dpa_region_info,
    },
    Step {
        name: "dpa_mmap_refused",
        deps: DPA,
        open: true,
        run: dpa_mmap_refused,
    },
    Step {
        name: "dpa_mmap_faults_on_demand",
        deps: DPA,
        open: true,
        run: dpa_mmap_faults_on_demand,
    },
    Step {
        name: "dpa_mmap_read_write",
        deps: DPA,
        open: true,
        run: dpa_mmap_read_write,
    },
    Step {
        name: "dpa_rw_any_size",
        deps: DPA,
        open: true,
        run: dpa_rw_any_size,
    },
    Step {
        name: "dpa_rw_region_end",
        deps: DPA,
        open: true,
        run: dpa_rw_region_end,
    },
    Step {
        name: "dpa_low_power",
        deps: DPA,
        open: true,
        run: dpa_low_power,
    },
    Step {
        name: "dpa_reset_keeps_mapping",
        deps: DPA,
        open: true,
        run: dpa_reset_keeps_mapping,
    },
    Step {
        name: "dpa_hot_reset_keeps_mapping",
        deps: DPA,
        open: true,
        run: dpa_hot_reset_keeps_mapping,
    },
    Step {
        name: "dpa_tenant_isolation",
        deps: DPA,
        open: true,
        run: dpa_tenant_isolation,
    },
    Step {
        name: "dpa_iomem_claimed",
        deps: DPA,
        open: true,
        run: dpa_iomem_claimed,
    },
    Step {
        name: "dpa_open_busy",
        deps: &["dpa_iomem_claimed"],
        open: true,
        run: dpa_open_busy,
    },
    Step {
        name: "dpa_huge_faults",
        deps: DPA,
        open: true,
        run: dpa_huge_faults,
    },
    Step {
        name: "dpa_scrub_cost",
        deps: DPA,
        open: true,
        run: dpa_scrub_cost,
    },
    Step {
        name: "dpa_pm_control",
        deps: DPA,
        open: true,
        run: dpa_pm_control,
    },
    Step {
        name: "dpa_stress_resets",
        deps: DPA,
        open: true,
        run: dpa_stress_resets,
    },
    Step {
        name: "ioeventfd_refused_on_block",
        deps: OPEN,
        open: true,
        run: ioeventfd_refused_on_block,
    },
    Step {
        name: "region_info_index_race",
        deps: OPEN,
        open: true,
        run: region_info_index_race,
    },
    Step {
        name: "ioeventfd_offset_race",
        deps: OPEN,
        open: true,
        run: ioeventfd_offset_race,
    },
    Step {
        name: "closed_device_keeps_firmware_decoder",
        deps: &["dpa_iomem_claimed"],
        open: true,
        run: closed_device_keeps_firmware_decoder,
    },
    Step {
        name: "dpa_iommu_map",
        deps: DPA,
        open: true,
        run: dpa_iommu_map,
    },
    Step {
        name: "backend_markers",
        deps: DPA,
        open: true,
        run: backend_markers,
    },
    Step {
        name: "kernel_log_clean",
        deps: &[],
        open: false,
        run: kernel_log_clean,
    },
];

// --- device info -----------------------------------------------------------

fn vfio_open(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    ctx.open()?;
    let dev = ctx.attached()?;
    diag.push(dev.describe());
    if !ctx.info()?.is_pci() {
        return Err("VFIO_DEVICE_FLAGS_PCI not set".into());
    }
    let vendor = dev.config_read16(0)?;
    let device = dev.config_read16(2)?;
    if (vendor, device) != (ctx.opts.vendor, ctx.opts.device) {
        return Err(format!(
            "ids {vendor:04x}:{device:04x}, expected {:04x}:{:04x}",
            ctx.opts.vendor, ctx.opts.device
        )
        .into());
    }
    Ok(())
}

fn device_info_flags(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let info = ctx.info()?;
    diag.push(format!(
        "flags {:#x} [{}], num_regions {}, num_irqs {}",
        info.flags,
        device_flags_str(info.flags),
        info.num_regions,
        info.num_irqs
    ));
    let method = pci::reset_method(&ctx.opts.bdf)?;
    diag.push(format!(
        "reset_method: {}",
        method.as_deref().unwrap_or("(attribute absent)")
    ));
    let mut problems = Vec::new();
    for (bit, name) in [
        (VFIO_DEVICE_FLAGS_PCI, "PCI"),
        (VFIO_DEVICE_FLAGS_CXL, "CXL"),
        (VFIO_DEVICE_FLAGS_CAPS, "CAPS"),
        (VFIO_DEVICE_FLAGS_RESET, "RESET"),
    ] {
        if info.flags & bit == 0 {
            problems.push(format!("VFIO_DEVICE_FLAGS_{name} is clear"));
        }
    }
    let regions = VFIO_PCI_NUM_REGIONS + DEVICE_SPECIFIC_REGIONS;
    if info.num_regions != regions {
        problems.push(format!(
            "num_regions {}, expected {VFIO_PCI_NUM_REGIONS} + {DEVICE_SPECIFIC_REGIONS}",
            info.num_regions
        ));
    }
    if info.num_irqs != VFIO_PCI_NUM_IRQS {
        problems.push(format!(
            "num_irqs {}, expected {VFIO_PCI_NUM_IRQS}",
            info.num_irqs
        ));
    }
    all_ok(problems, diag)
}

fn device_info_argsz(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    const FILL: u8 = 0xa5;
    const FILL2: u8 = 0x5a;
    /// `offsetofend(struct vfio_device_info, num_irqs)`: the smallest argsz accepted.
    const MINSZ: u32 = 16;
    let dev = ctx.dev()?;
    let base = size_of::<VfioDeviceInfo>();
    let mut problems = Vec::new();

    // Too small for the capabilities: fixed part only, argsz raised.
    let (r, b) = info_call(dev, base as u32, FILL);
    r.map_err(|e| format!("argsz {base}: {}", describe_err(&e)))?;
    let need = u32_ne(&b, 0) as usize;
    let (flags, nreg, nirq) = (u32_ne(&b, 4), u32_ne(&b, 8), u32_ne(&b, 12));
    diag.push(format!(
        "argsz {base}: argsz now {need}, flags {flags:#x}, cap_offset {}",
        u32_ne(&b, 16)
    ));
    if flags & VFIO_DEVICE_FLAGS_CAPS == 0 {
        problems.push(format!("argsz {base}: VFIO_DEVICE_FLAGS_CAPS clear"));
    }
    if u32_ne(&b, 16) != 0 {
        problems.push(format!(
            "argsz {base}: cap_offset {}, expected 0",
            u32_ne(&b, 16)
        ));
    }
    if let Some(i) = first_written(&b, base, FILL) {
        problems.push(format!(
            "argsz {base}: byte {i:#x} of the buffer was written"
        ));
    }
    if need <= base {
        problems.push(format!(
            "argsz {base}: argsz not raised ({need}): no room asked for capabilities"
        ));
        return all_ok(problems, diag);
    }
    if need > b.len() {
        problems.push(format!("argsz {base}: asks for {need} bytes"));
        return all_ok(problems, diag);
    }

    // Exactly large enough: the whole chain, nothing past it.
    let (r, b) = info_call(dev, need as u32, FILL2);
    r.map_err(|e| format!("argsz {need}: {}", describe_err(&e)))?;
    if u32_ne(&b, 0) as usize != need {
        problems.push(format!("argsz {need}: argsz changed to {}", u32_ne(&b, 0)));
    }
    if (u32_ne(&b, 4), u32_ne(&b, 8), u32_ne(&b, 12)) != (flags, nreg, nirq) {
        problems.push(format!(
            "argsz {need}: flags/num_regions/num_irqs {:#x}/{}/{} differ from {flags:#x}/{nreg}/{nirq}",
            u32_ne(&b, 4),
            u32_ne(&b, 8),
            u32_ne(&b, 12)
        ));
    }
    if let Some(i) = first_written(&b, need, FILL2) {
        problems.push(format!("argsz {need}: byte {i:#x} past argsz was written"));
    }
    let cap_offset = u32_ne(&b, 16) as usize;
    if cap_offset != base {
        problems.push(format!(
            "argsz {need}: cap_offset {cap_offset}, expected {base}"
        ));
    } else {
        match walk_chain(&b[..need], base) {
            Ok(chain) => {
                diag.push(format!("chain: {chain:?}"));
                let cxl: Vec<&ChainEntry> = chain
                    .iter()
                    .filter(|c| c.id == VFIO_DEVICE_INFO_CAP_CXL)
                    .collect();
                let want = size_of::<VfioDeviceInfoCapCxl>();
                match cxl.as_slice() {
                    [c] if c.span == want => {}
                    [c] => problems.push(format!(
                        "the CXL capability spans {} bytes, expected {want}",
                        c.span
                    )),
                    other => problems.push(format!("{} CXL capabilities", other.len())),
                }
            }
            Err(e) => problems.push(format!("argsz {need}: {e}")),
        }
    }

    // Below the fixed part's minimum: refused, nothing written.
    for argsz in [0, 8, MINSZ - 1] {
        let (r, b) = info_call(dev, argsz, FILL);
        match expect_errno(r, &[libc::EINVAL], &format!("argsz {argsz}")) {
            Ok(d) => diag.push(d),
            Err(p) => problems.push(p),
        }
        if let Some(i) = first_written(&b, 4, FILL) {
            problems.push(format!(
                "argsz {argsz}: byte {i:#x} of the buffer was written"
            ));
        }
    }

    // The minimum: the first 16 bytes only.
    let (r, b) = info_call(dev, MINSZ, FILL);
    match r {
        Err(e) => problems.push(format!("argsz {MINSZ}: {}", describe_err(&e))),
        Ok(()) => {
            if u32_ne(&b, 0) as usize != need || u32_ne(&b, 4) & VFIO_DEVICE_FLAGS_CAPS == 0 {
                problems.push(format!(
                    "argsz {MINSZ}: argsz {} flags {:#x}, expected argsz {need} with CAPS",
                    u32_ne(&b, 0),
                    u32_ne(&b, 4)
                ));
            }
            if let Some(i) = first_written(&b, MINSZ as usize, FILL) {
                problems.push(format!("argsz {MINSZ}: byte {i:#x} past argsz was written"));
            }
        }
    }

    // One byte short of the chain: still the fixed part only.
    let short = need - 1;
    if short > base {
        let (r, b) = info_call(dev, short as u32, FILL);
        match r {
            Err(e) => problems.push(format!("argsz {short}: {}", describe_err(&e))),
            Ok(()) => {
                if u32_ne(&b, 0) as usize != need || u32_ne(&b, 16) != 0 {
                    problems.push(format!(
                        "argsz {short}: argsz {} cap_offset {}, expected {need} and 0",
                        u32_ne(&b, 0),
                        u32_ne(&b, 16)
                    ));
                }
                if let Some(i) = first_written(&b, base, FILL) {
                    problems.push(format!("argsz {short}: byte {i:#x} was written"));
                }
            }
        }
    }
    all_ok(problems, diag)
}

fn device_info_cxl_cap(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let info = ctx.info()?.clone();
    let caps = info.capabilities();
    let cxl: Vec<_> = caps
        .iter()
        .filter(|c| c.id == VFIO_DEVICE_INFO_CAP_CXL)
        .collect();
    let cap = match cxl.as_slice() {
        [c] => *c,
        [] => {
            return Err(format!(
                "no capability {VFIO_DEVICE_INFO_CAP_CXL} in the chain (ids {:?})",
                caps.iter().map(|c| c.id).collect::<Vec<_>>()
            )
            .into())
        }
        many => return Err(format!("{} CXL capabilities", many.len()).into()),
    };
    let c = cap
        .cxl_device()
        .ok_or_else(|| format!("CXL capability truncated: {} bytes", cap.data.len() + 8))?;
    diag.push(format!(
        "version {}, BAR{} +{:#x}, flags {:#x}, reserved {:?}, dpa region {}, comp_regs region {}",
        cap.version,
        c.hdm_regs_bar_index,
        c.hdm_regs_offset,
        c.flags,
        c.reserved,
        c.dpa_region_index,
        c.comp_regs_region_index
    ));
    let mut problems = Vec::new();
    if cap.version != 1 {
        problems.push(format!("version {}, expected 1", cap.version));
    }
    let want_size = size_of::<VfioDeviceInfoCapCxl>();
    if cap.data.len() + 8 != want_size {
        problems.push(format!(
            "spans {} bytes, expected {want_size}",
            cap.data.len() + 8
        ));
    }
    if c.reserved != [0; 3] {
        problems.push(format!("reserved bytes {:?}", c.reserved));
    }
    let known = VFIO_CXL_CAP_FIRMWARE_COMMITTED | VFIO_CXL_CAP_CACHE_CAPABLE;
    if c.flags & VFIO_CXL_CAP_FIRMWARE_COMMITTED == 0 {
        problems.push(format!("flags {:#x}: FIRMWARE_COMMITTED clear", c.flags));
    }
    if c.flags & !known != 0 {
        problems.push(format!(
            "flags {:#x}: unknown bits {:#x}",
            c.flags,
            c.flags & !known
        ));
    }

    let cfg = sysfs_config(&ctx.opts.bdf)?;
    match component_block(&cfg) {
        Some((bar, off)) => {
            diag.push(format!(
                "Register Locator: component registers in BAR{bar} +{off:#x}"
            ));
            if (bar, off + CXL_CM_OFFSET) != (c.hdm_regs_bar_index, c.hdm_regs_offset) {
                problems.push(format!(
                    "the Register Locator puts the CXL.mem area at BAR{bar} +{:#x}",
                    off + CXL_CM_OFFSET
                ));
            }
        }
        None => diag.push("no component registers in the Register Locator".to_string()),
    }
    let (dvsec, _) = find_dvsec(&cfg, DVSEC_VENDOR_CXL, DVSEC_ID_CXL_DEVICE)
        .ok_or("no CXL Device DVSEC in config space")?;
    let capability = u16::from_le_bytes([
        cfg[dvsec + DVSEC_CAPABILITY],
        cfg[dvsec + DVSEC_CAPABILITY + 1],
    ]);
    let cache_capable = capability & DVSEC_CAP_CACHE != 0;
    diag.push(format!(
        "DVSEC at {dvsec:#x}: Capability {capability:#06x}, Cache_Capable {cache_capable}"
    ));
    if (c.flags & VFIO_CXL_CAP_CACHE_CAPABLE != 0) != cache_capable {
        problems.push(format!(
            "CACHE_CAPABLE is {}, the DVSEC says Cache_Capable {cache_capable}",
            c.flags & VFIO_CXL_CAP_CACHE_CAPABLE != 0
        ));
    }

    let dev = ctx.dev()?;
    for (what, index, subtype) in [
        (
            "dpa_region_index",
            c.dpa_region_index,
            VFIO_REGION_SUBTYPE_CXL,
        ),
        (
            "comp_regs_region_index",
            c.comp_regs_region_index,
            VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
        ),
    ] {
        if index < VFIO_PCI_NUM_REGIONS || index >= info.num_regions {
            problems.push(format!(
                "{what} {index} is not a device-specific region (9..{})",
                info.num_regions
            ));
            continue;
        }
        let r = dev.region_info(index)?;
        let types: Vec<(u32, u32)> = r
            .capabilities()
            .iter()
            .filter(|cap| cap.id == VFIO_REGION_INFO_CAP_TYPE)
            .filter_map(|cap| cap.region_type())
            .collect();
        if types != [(VFIO_REGION_TYPE_CXL, subtype)] {
            problems.push(format!(
                "{what} {index}: region types {types:x?}, expected [({VFIO_REGION_TYPE_CXL:#x}, {subtype})]"
            ));
        }
    }
    if c.dpa_region_index == c.comp_regs_region_index {
        problems.push("both region indices are the same".to_string());
    }
    all_ok(problems, diag)
}

// --- DPA region info and mmap ---------------------------------------------

fn dpa_region_info(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    for r in &ctx.regions {
        diag.push(format!(
            "region {}: size {:#x} offset {:#x} flags [{}] types {:x?}",
            r.info.index,
            r.info.size,
            r.info.offset,
            region_flags_str(r.info.flags),
            r.types
        ));
    }
    let dpa = match ctx.dpa.clone() {
        Some(d) => d,
        None => {
            let n = ctx
                .regions
                .iter()
                .filter(|r| {
                    r.types
                        .contains(&(VFIO_REGION_TYPE_CXL, VFIO_REGION_SUBTYPE_CXL))
                })
                .count();
            return Err(format!(
                "{n} regions of type {VFIO_REGION_TYPE_CXL:#x} subtype {VFIO_REGION_SUBTYPE_CXL}, expected 1"
            )
            .into());
        }
    };
    let mut problems = Vec::new();
    let rwm = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
    if !dpa.has_flags(rwm) {
        problems.push(format!(
            "flags [{}] lack READ|WRITE|MMAP",
            region_flags_str(dpa.flags)
        ));
    }
    if dpa.flags & !(rwm | VFIO_REGION_INFO_FLAG_CAPS) != 0 {
        problems.push(format!(
            "unexpected flags [{}]",
            region_flags_str(dpa.flags)
        ));
    }
    let want_offset = u64::from(dpa.index) << REGION_OFFSET_SHIFT;
    if dpa.offset != want_offset {
        problems.push(format!(
            "offset {:#x}, expected {want_offset:#x} (index << {REGION_OFFSET_SHIFT})",
            dpa.offset
        ));
    }
    if dpa.size == 0 || dpa.size % PAGE as u64 != 0 {
        problems.push(format!(
            "size {:#x} is not a whole number of pages",
            dpa.size
        ));
    }
    match ctx.decoder0_size() {
        Ok((decoder, ctrl)) => {
            diag.push(format!(
                "DPA region {}: size {:#x}; COMP_REGS decoder 0: size {decoder:#x}, ctrl {ctrl:#010x}",
                dpa.index, dpa.size
            ));
            if dpa.size != decoder {
                problems.push(format!("size {:#x}, decoder 0 size {decoder:#x}", dpa.size));
            }
            let (_, committed, _) = RealHdm::locate(&ctx.opts.bdf)?.decoder(0)?;
            if decoder != committed {
                problems.push(format!(
                    "decoder 0 size {decoder:#x}, the firmware committed {committed:#x}"
                ));
            }
        }
        Err(e) => problems.push(format!("decoder 0 size from COMP_REGS: {e}")),
    }
    all_ok(problems, diag)
}

/// An mmap the driver must refuse.
struct BadMap {
    what: &'static str,
    /// Offset in the region (may lie past it).
    offset: u64,
    len: usize,
    private: bool,
    /// The errnos that count as refusals.
    errnos: &'static [i32],
}

fn dpa_mmap_refused(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    const EINVAL: &[i32] = &[libc::EINVAL];
    // Lengths the mm core may refuse before the driver sees them.
    const TOO_BIG: &[i32] = &[libc::EINVAL, libc::ENOMEM];
    let dpa = ctx.dpa()?.clone();
    let size = ctx.dpa_len(2 * PAGE)?;
    let fd = ctx.dev()?.as_fd();
    // The valid case works, so the refusals below are not refusals of everything.
    drop(
        Mapping::shared(fd, dpa.offset, size)
            .map_err(|e| format!("MAP_SHARED of the whole region: {}", describe_err(&e)))?,
    );
    let end = size as u64;
    let page = PAGE as u64;
    let bad = |what, offset, len, private, errnos| BadMap {
        what,
        offset,
        len,
        private,
        errnos,
    };
    let cases = [
        bad("MAP_PRIVATE", 0, PAGE, true, EINVAL),
        bad("a page at the region end", end, PAGE, false, EINVAL),
        bad(
            "a page past the region end",
            end + page,
            PAGE,
            false,
            EINVAL,
        ),
        bad(
            "the last page of the region's offset window",
            (1 << REGION_OFFSET_SHIFT) - page,
            PAGE,
            false,
            EINVAL,
        ),
        bad(
            "two pages over the end",
            end - page,
            2 * PAGE,
            false,
            EINVAL,
        ),
        bad("the region plus a page", 0, size + PAGE, false, EINVAL),
        bad("64 TiB", 0, 1 << 46, false, TOO_BIG),
        bad(
            "a length that wraps offset + length past 2^64",
            end - page,
            size.wrapping_neg().wrapping_add(2 * PAGE),
            false,
            TOO_BIG,
        ),
        bad(
            "length 2^64 - 4 KiB",
            0,
            usize::MAX & !(PAGE - 1),
            false,
            TOO_BIG,
        ),
    ];
    let mut problems = Vec::new();
    for c in cases {
        let (flags, prots): (_, &[_]) = if c.private {
            (
                libc::MAP_PRIVATE,
                &[libc::PROT_READ | libc::PROT_WRITE, libc::PROT_READ],
            )
        } else {
            (libc::MAP_SHARED, &[libc::PROT_READ | libc::PROT_WRITE])
        };
        for &prot in prots {
            let what = format!(
                "{}{} (offset {:#x} length {:#x})",
                c.what,
                if prot == libc::PROT_READ {
                    " read-only"
                } else {
                    ""
                },
                c.offset,
                c.len
            );
            let r = Mapping::map(fd, dpa.offset + c.offset, c.len, prot, flags);
            match expect_errno(r, c.errnos, &what) {
                Ok(d) => diag.push(d),
                Err(p) => problems.push(p),
            }
        }
    }
    all_ok(problems, diag)
}

fn dpa_mmap_faults_on_demand(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let size = ctx.dpa_len(8 * MIB)?;
    let map = ctx.map_dpa()?;
    // One probe per 2 MiB block, so that a huge entry made by one probe does not serve another.
    let probes = [0, size / 4 + 3 * PAGE, size / 2 + 5 * PAGE, size - PAGE];
    thread_faults()?;
    let mut problems = Vec::new();
    let mut counts = Vec::new();
    for off in probes {
        let before = thread_faults()?;
        let _ = map.read_u64(off);
        let faults = thread_faults()? - before;
        counts.push(format!("+{off:#x}: {faults}"));
        if faults == 0 {
            problems.push(format!(
                "the first read at {off:#x} took no page fault: the page was mapped at mmap time"
            ));
        }
    }
    diag.push(format!("faults of the first read: {}", counts.join(", ")));
    all_ok(problems, diag)
}

fn dpa_mmap_read_write(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let size = ctx.dpa_len(8 * MIB)?;
    let map = ctx.map_dpa()?;
    let seed = ctx.seed ^ 0x11;
    let mut problems = Vec::new();
    // Aligned, straddling a 2 MiB boundary with unaligned ends, and the last page.
    for (off, len) in [(3 * MIB + 8, 4096), (2 * MIB - 13, 40), (size - PAGE, PAGE)] {
        let data = pattern::bytes(seed, off as u64, len);
        map.write_bytes(off, &data);
        if let Err(e) = compare(
            "the mapping after writing through it",
            off,
            &map.read_vec(off, len),
            &data,
        ) {
            problems.push(e);
        }
        match ctx.read_full(off, len) {
            Ok(got) => {
                if let Err(e) = compare("pread after writing through the mapping", off, &got, &data)
                {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(e),
        }
    }
    let (off, len) = (5 * MIB + 3, 1000);
    let data = pattern::bytes(seed, off as u64, len);
    ctx.write_full(off, &data)?;
    if let Err(e) = compare(
        "the mapping after pwrite",
        off,
        &map.read_vec(off, len),
        &data,
    ) {
        problems.push(e);
    }
    all_ok(problems, diag)
}

// --- pread / pwrite ----------------------------------------------------------

fn dpa_rw_any_size(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    const BACKGROUND: u8 = 0xee;
    const MARGIN: usize = 16;
    ctx.dpa_len(8 * MIB)?;
    let map = ctx.map_dpa()?;
    let seed = ctx.seed ^ 0x22;
    let cases = [
        (0x1001, 1),
        (0x2003, 3),
        (0x3005, 7),
        (0x4007, 13),
        (0x4ffd, 6),                    // across a page boundary
        (2 * MIB - 5, 11),              // across a 2 MiB boundary
        (6 * MIB - 512 * KIB + 1, MIB), // 1 MiB across a 2 MiB boundary
    ];
    let mut problems = Vec::new();
    for (off, len) in cases {
        let (outer, outer_len) = (off - MARGIN, len + 2 * MARGIN);
        ctx.write_full(outer, &vec![BACKGROUND; outer_len])?;
        let data = pattern::bytes(seed, off as u64, len);
        match ctx.pwrite_once(off, &data) {
            Ok(n) if n == len => {}
            Ok(n) => {
                problems.push(format!("pwrite of {len} bytes at {off:#x} wrote {n}"));
                continue;
            }
            Err(e) => {
                problems.push(format!(
                    "pwrite of {len} bytes at {off:#x}: {}",
                    describe_err(&e)
                ));
                continue;
            }
        }
        match ctx.pread_once(off, len) {
            Ok(got) => {
                if let Err(e) = compare(&format!("{len}-byte pread"), off, &got, &data) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(format!(
                "pread of {len} bytes at {off:#x}: {}",
                describe_err(&e)
            )),
        }
        let mut framed = vec![BACKGROUND; MARGIN];
        framed.extend_from_slice(&data);
        framed.extend_from_slice(&[BACKGROUND; MARGIN]);
        match ctx.pread_once(outer, outer_len) {
            Ok(got) => {
                if let Err(e) = compare(
                    &format!("{outer_len}-byte pread around a {len}-byte pwrite"),
                    outer,
                    &got,
                    &framed,
                ) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(format!(
                "pread of {outer_len} bytes at {outer:#x}: {}",
                describe_err(&e)
            )),
        }
        if let Err(e) = compare(
            &format!("the mapping after a {len}-byte pwrite"),
            off,
            &map.read_vec(off, len),
            &data,
        ) {
            problems.push(e);
        }
    }
    all_ok(problems, diag)
}

/// Checks that a transfer moved exactly `want` bytes (clamped at the region end).
fn expect_count(what: &str, r: &io::Result<usize>, want: usize) -> Result<(), String> {
    match r {
        Ok(n) if *n == want => Ok(()),
        Ok(n) => Err(format!(
            "{what}: {n} bytes, expected {want} (clamped at the end)"
        )),
        Err(e) => Err(format!(
            "{what}: {}, expected {want} bytes",
            describe_err(e)
        )),
    }
}

fn dpa_rw_region_end(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let size = ctx.dpa_len(2 * PAGE)?;
    let seed = ctx.seed ^ 0x33;
    let mut problems = Vec::new();

    // Crossing the end: clamped to the bytes up to it.
    let last = pattern::bytes(seed, (size - PAGE) as u64, PAGE);
    let mut over = last.clone();
    over.extend_from_slice(&[0xcc; PAGE]);
    let what = format!("pwrite of {} bytes at {:#x}", 2 * PAGE, size - PAGE);
    if let Err(e) = expect_count(&what, &ctx.pwrite_once(size - PAGE, &over), PAGE) {
        problems.push(e);
    }
    let what = format!("pread of {} bytes at {:#x}", 2 * PAGE, size - PAGE);
    let r = ctx.pread_once(size - PAGE, 2 * PAGE);
    match expect_count(&what, &r.as_ref().map(Vec::len).map_err(copy_err), PAGE) {
        Ok(()) => {
            if let Err(e) = compare(&what, size - PAGE, r.as_deref().unwrap_or(&[]), &last) {
                problems.push(e);
            }
        }
        Err(e) => problems.push(e),
    }
    let what = format!("pwrite of 8 bytes at {:#x}", size - 3);
    if let Err(e) = expect_count(&what, &ctx.pwrite_once(size - 3, b"xyz12345"), 3) {
        problems.push(e);
    }
    let what = format!("pread of 16 bytes at {:#x}", size - 8);
    let r = ctx.pread_once(size - 8, 16);
    match expect_count(&what, &r.as_ref().map(Vec::len).map_err(copy_err), 8) {
        Ok(()) => {
            let mut want = last[PAGE - 8..PAGE - 3].to_vec();
            want.extend_from_slice(b"xyz");
            if let Err(e) = compare(&what, size - 8, r.as_deref().unwrap_or(&[]), &want) {
                problems.push(e);
            }
        }
        Err(e) => problems.push(e),
    }

    // Starting at or past the end: refused.
    let window = 1usize << REGION_OFFSET_SHIFT;
    for off in [size, size + 1, size + PAGE, window - 1] {
        for r in [
            expect_errno(
                ctx.pread_once(off, 1),
                &[libc::EINVAL],
                &format!("pread at {off:#x}"),
            ),
            expect_errno(
                ctx.pwrite_once(off, &[0x5a]),
                &[libc::EINVAL],
                &format!("pwrite at {off:#x}"),
            ),
        ] {
            match r {
                Ok(d) => diag.push(d),
                Err(p) => problems.push(p),
            }
        }
    }
    all_ok(problems, diag)
}

/// An `io::Error` with the same errno (or kind and message) as `e`.
fn copy_err(e: &io::Error) -> io::Error {
    match raw_os_error(e) {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

// --- inactive region: low power and reset ------------------------------------

fn dpa_low_power(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let size = ctx.dpa_len(8 * MIB)?;
    let map = ctx.map_dpa()?;
    let seed = ctx.seed ^ 0x44;
    let (mapped, pwritten, untouched) = (5 * PAGE, 9 * PAGE, size / 2 + 7 * PAGE);
    let p = pattern::bytes(seed, mapped as u64, PAGE);
    let q = pattern::bytes(seed, pwritten as u64, PAGE);
    map.write_bytes(mapped, &p);
    ctx.write_full(pwritten, &q)?;
    compare(
        "setup: the mapping",
        mapped,
        &map.read_vec(mapped, PAGE),
        &p,
    )?;
    compare(
        "setup: the mapping",
        pwritten,
        &map.read_vec(pwritten, PAGE),
        &q,
    )?;

    let dev = ctx.dev()?;
    dev.low_power_entry().map_err(|e| {
        format!(
            "VFIO_DEVICE_FEATURE SET|LOW_POWER_ENTRY failed: {}",
            describe_err(&e)
        )
    })?;
    let mut problems = Vec::new();
    for (what, off) in [
        ("a page written through the mapping", mapped),
        (
            "a page written with pwrite and read through the mapping",
            pwritten,
        ),
        ("a page never touched", untouched),
    ] {
        match map.probe_in_child(off, CHILD_TIMEOUT) {
            Ok(ChildExit::Signaled(libc::SIGBUS)) => {
                diag.push(format!("low power: reading {what} (+{off:#x}): SIGBUS"))
            }
            Ok(ChildExit::Exited(0)) => problems.push(format!(
                "low power: reading {what} (+{off:#x}) through the existing mapping worked"
            )),
            Ok(ChildExit::TimedOut) => problems.push(format!(
                "low power: reading {what} (+{off:#x}) blocked for {CHILD_TIMEOUT:?} instead of raising SIGBUS"
            )),
            // The probe relies on fork keeping the mapping, as vfio-pci's do.
            Ok(ChildExit::Signaled(libc::SIGSEGV)) => problems.push(format!(
                "low power: reading {what} (+{off:#x}): SIGSEGV in the forked child, \
                 expected SIGBUS (is the mapping VM_DONTCOPY?)"
            )),
            Ok(other) => problems.push(format!(
                "low power: reading {what} (+{off:#x}): child ended with {other:?}, expected SIGBUS"
            )),
            Err(e) => problems.push(format!("fork: {e}")),
        }
    }
    for r in [
        expect_errno(ctx.pread_once(mapped, 8), &[libc::EIO], "low power: pread"),
        // The same bytes as are there: harmless if wrongly accepted.
        expect_errno(
            ctx.pwrite_once(pwritten, &q[..8]),
            &[libc::EIO],
            "low power: pwrite",
        ),
    ] {
        match r {
            Ok(d) => diag.push(d),
            Err(e) => problems.push(e),
        }
    }
    if let Err(e) = ctx.dev()?.low_power_exit() {
        problems.push(format!(
            "VFIO_DEVICE_FEATURE SET|LOW_POWER_EXIT failed: {}",
            describe_err(&e)
        ));
        return all_ok(problems, diag);
    }
    // The same mapping, no new mmap: the data is back.
    for (what, off, want) in [
        ("the mapping after LOW_POWER_EXIT", mapped, &p),
        ("the mapping after LOW_POWER_EXIT", pwritten, &q),
    ] {
        if let Err(e) = compare(what, off, &map.read_vec(off, PAGE), want) {
            problems.push(e);
        }
    }
    for (off, want) in [(mapped, &p), (pwritten, &q)] {
        match ctx.read_full(off, PAGE) {
            Ok(got) => {
                if let Err(e) = compare("pread after LOW_POWER_EXIT", off, &got, want) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(format!("after LOW_POWER_EXIT: {e}")),
        }
    }
    all_ok(problems, diag)
}

fn dpa_reset_keeps_mapping(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    reset_keeps_mapping(ctx, diag, "VFIO_DEVICE_RESET", |ctx| {
        ctx.dev()?.reset().map_err(|e| describe_err(&e))
    })
}

/// `VFIO_DEVICE_PCI_HOT_RESET`: `_IO(VFIO_TYPE, VFIO_BASE + 13)`.
const VFIO_DEVICE_PCI_HOT_RESET: libc::c_ulong = (b';' as libc::c_ulong) << 8 | (100 + 13);

/// A hot reset of the device's bus or slot (the test VM's device is alone below its root
/// port). Opened through a group, ownership is proven with the device's group fd; opened
/// through its cdev, with a zero-length fd array, and the kernel checks the iommufd instead
/// (a group fd there is refused with EINVAL).
fn hot_reset(ctx: &Ctx) -> Result<(), String> {
    let dev = ctx.attached()?;
    // struct vfio_pci_hot_reset { argsz, flags, count, group_fds[] }
    let req: [i32; 4] = match dev.group() {
        Some(group) => [16, 0, 1, group.as_fd().as_raw_fd()],
        None => [12, 0, 0, 0],
    };
    // SAFETY: `req` is a valid vfio_pci_hot_reset with one group fd, alive for the call.
    let ret = unsafe {
        libc::ioctl(
            dev.as_fd().as_raw_fd(),
            VFIO_DEVICE_PCI_HOT_RESET as _,
            req.as_ptr(),
        )
    };
    if ret != 0 {
        return Err(describe_err(&io::Error::last_os_error()));
    }
    Ok(())
}

fn dpa_hot_reset_keeps_mapping(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    reset_keeps_mapping(ctx, diag, "VFIO_DEVICE_PCI_HOT_RESET", hot_reset)
}

/// Writes data through a mapping and with pwrite, resets the device with `reset`, then checks
/// that the same mapping (no new mmap) and pread both return the data.
fn reset_keeps_mapping(
    ctx: &mut Ctx,
    diag: &mut Vec<String>,
    how: &str,
    reset: impl Fn(&Ctx) -> Result<(), String>,
) -> StepResult {
    let size = ctx.dpa_len(8 * MIB)?;
    let map = ctx.map_dpa()?;
    let seed = ctx.seed ^ 0x55;
    let via_map = [(7 * PAGE + 24, 2000), (size / 2 + 3 * PAGE, PAGE)];
    let via_pwrite = (11 * PAGE, PAGE);
    for (off, len) in via_map {
        map.write_bytes(off, &pattern::bytes(seed, off as u64, len));
    }
    ctx.write_full(
        via_pwrite.0,
        &pattern::bytes(seed, via_pwrite.0 as u64, via_pwrite.1),
    )?;
    let all = [via_map[0], via_map[1], via_pwrite];
    for (off, len) in all {
        compare(
            "setup: pread",
            off,
            &ctx.read_full(off, len)?,
            &pattern::bytes(seed, off as u64, len),
        )?;
    }
    reset(ctx).map_err(|e| format!("{how}: {e}"))?;
    diag.push(format!("{how}: ok"));
    let mut problems = Vec::new();
    for (off, len) in all {
        let want = pattern::bytes(seed, off as u64, len);
        if let Err(e) = compare(
            "the mapping after reset",
            off,
            &map.read_vec(off, len),
            &want,
        ) {
            problems.push(e);
        }
        match ctx.read_full(off, len) {
            Ok(got) => {
                if let Err(e) = compare("pread after reset", off, &got, &want) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(format!("after reset: {e}")),
        }
    }
    all_ok(problems, diag)
}

/// The value the ioeventfds of [`ioeventfd_refused_on_block`] would write.
const IOEVENTFD_DATA: u64 = 0x1234_5678;

/// An ioeventfd writes the BAR from the kernel when signalled, bypassing read and write: one
/// aimed at the component register block (the real HDM decoder 0 Base Low here) must be
/// refused, while one elsewhere (another BAR) is accepted.
fn ioeventfd_refused_on_block(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let hdm = RealHdm::locate(&ctx.opts.bdf)?;
    let harmless = harmless_ioeventfd_offset(ctx, &hdm)?;
    let dev = ctx.dev()?;
    let eventfd = ioeventfd::eventfd().map_err(|e| format!("eventfd: {e}"))?;
    let efd = eventfd.as_raw_fd();
    // Decoder 0 Base Low, in the component register block.
    let block_target = (u64::from(hdm.bar) << 40) + hdm.decoder_reg(0, DEC_BASE_LO);
    let refused = ioeventfd::set(dev, block_target, IOEVENTFD_DATA, efd);
    diag.push(format!(
        "ioeventfd on {}: {}",
        describe_offset(block_target),
        match &refused {
            Ok(()) => "accepted".to_string(),
            Err(e) => describe_err(e),
        }
    ));
    let mut problems = Vec::new();
    match refused {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        Ok(()) => {
            let _ = ioeventfd::set(dev, block_target, IOEVENTFD_DATA, -1);
            problems.push("an ioeventfd on the component register block was accepted".to_string());
        }
        Err(e) => problems.push(format!("expected EINVAL, got {}", describe_err(&e))),
    }
    // Control: a BAR offset outside the block takes an ioeventfd (vfio-pci's behaviour).
    let at = describe_offset(harmless);
    match ioeventfd::set(dev, harmless, IOEVENTFD_DATA, efd) {
        Ok(()) => {
            diag.push(format!("ioeventfd on {at}: accepted"));
            if let Err(e) = ioeventfd::set(dev, harmless, IOEVENTFD_DATA, -1) {
                problems.push(format!("unregistering on {at}: {}", describe_err(&e)));
            }
        }
        Err(e) => problems.push(format!("ioeventfd on {at}: {}", describe_err(&e))),
    }
    all_ok(problems, diag)
}

/// An offset that differs from `target` in one byte only and touches nothing of the block, if
/// there is one: in the component BAR outside the block (the third byte), else the same
/// offset in another BAR (the BAR index byte).
fn one_byte_away_outside_block(
    ctx: &Ctx,
    hdm: &RealHdm,
    target: u64,
) -> Result<Option<u64>, String> {
    let (_, block) = component_block(&sysfs_config(&ctx.opts.bdf)?)
        .ok_or("no component register block in the Register Locator")?;
    let bar_size = ctx
        .dev()?
        .region_info(hdm.bar)
        .map_err(|e| format!("region info of BAR{}: {e}", hdm.bar))?
        .size;
    let in_bar = target & ((1 << 40) - 1);
    if let Some(off) = (1..=0xffu64)
        .map(|k| in_bar ^ (k << 16))
        .find(|&off| off + 8 <= bar_size && (off + 8 <= block || off >= block + COMP_BLOCK_SIZE))
    {
        return Ok(Some((u64::from(hdm.bar) << 40) + off));
    }
    // The block fills the BAR around the target (a type-3's BAR0): the same offset in another
    // BAR large enough differs in the BAR index byte only.
    let dev = ctx.dev()?;
    Ok((0..6u32)
        .filter(|&i| i != hdm.bar)
        .find(|&i| dev.region_info(i).is_ok_and(|r| in_bar + 8 <= r.size))
        .map(|i| (u64::from(i) << 40) + in_bar))
}

/// `BARn +offset` for a device-file offset of a BAR.
fn describe_offset(pos: u64) -> String {
    format!("BAR{} +{:#x}", pos >> 40, pos & ((1 << 40) - 1))
}

/// A device-file offset where vfio-pci-core takes an ioeventfd and nothing of the CXL block
/// lies: another BAR, or, on a device with the block in its only BAR (an accelerator), the
/// component BAR outside the block.
fn harmless_ioeventfd_offset(ctx: &Ctx, hdm: &RealHdm) -> Result<u64, String> {
    let dev = ctx.dev()?;
    if let Some(bar) = (0..6u32)
        .filter(|&i| i != hdm.bar)
        .find(|&i| dev.region_info(i).is_ok_and(|r| r.size >= 4))
    {
        return Ok(u64::from(bar) << 40);
    }
    let (_, block) = component_block(&sysfs_config(&ctx.opts.bdf)?)
        .ok_or("no component register block in the Register Locator")?;
    let bar_size = dev
        .region_info(hdm.bar)
        .map_err(|e| format!("region info of BAR{}: {e}", hdm.bar))?
        .size;
    let outside = if block >= 8 {
        0
    } else if block + COMP_BLOCK_SIZE + 8 <= bar_size {
        block + COMP_BLOCK_SIZE
    } else {
        return Err("the component block fills the only BAR: no harmless offset".into());
    };
    Ok((u64::from(hdm.bar) << 40) + outside)
}

/// `VFIO_DEVICE_GET_REGION_INFO` with an `index` a second thread flips between another BAR and
/// the component BAR: every reply for the component BAR must be the driver's (the same flags
/// as an undisturbed request), never vfio-pci-core's own answer to a re-read request.
fn region_info_index_race(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let hdm = RealHdm::locate(&ctx.opts.bdf)?;
    let dev = ctx.dev()?;
    let reference = dev
        .region_info(hdm.bar)
        .map_err(|e| format!("region info of BAR{}: {e}", hdm.bar))?;
    // Another BAR, or the config region (index 7) on a device with one BAR.
    let other = (0..=VFIO_PCI_CONFIG_REGION_INDEX)
        .filter(|&i| i != hdm.bar)
        .find(|&i| dev.region_info(i).is_ok_and(|r| r.size > 0))
        .ok_or("no other region")?;
    let r = ioeventfd::race_region_info(dev, other, hdm.bar, reference.flags, 20_000)
        .map_err(|e| format!("race: {e}"))?;
    diag.push(format!(
        "index flipped between BAR{other} and BAR{}: {} requests, {} replies for BAR{}, {} inconsistent",
        hdm.bar, r.attempts, r.watched, hdm.bar, r.inconsistent
    ));
    if r.inconsistent > 0 {
        return Err(format!(
            "{} replies for BAR{} had flags {:#x} instead of {:#x}",
            r.inconsistent,
            hdm.bar,
            r.first_bad_flags.unwrap_or(0),
            reference.flags
        )
        .into());
    }
    if r.watched == 0 || r.watched == r.attempts {
        return Err("the race never reached both regions: nothing was tested".into());
    }
    Ok(())
}

/// Registrations tried by [`ioeventfd_offset_race`]: the unfixed driver lost the race within
/// a few tries here.
const IOEVENTFD_RACE_ATTEMPTS: usize = 20_000;

/// A second thread flips the offset of the request between a harmless BAR offset and the real
/// decoder 0 Control while the first registers ioeventfds with it: the check and the
/// registration must see the same copy. Afterwards the real decoder registers are unchanged
/// and no ioeventfd on the block exists (removing one there finds none).
fn ioeventfd_offset_race(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let hdm = RealHdm::locate(&ctx.opts.bdf)?;
    let dev = ctx.dev()?;
    let before = hdm.dwords()?;
    let ctrl_at = hdm.decoder_reg(0, DEC_CTRL);
    let target = (u64::from(hdm.bar) << 40) + ctrl_at;
    // A stray ioeventfd is signalled once: it would write decoder 0 Control with its
    // interleave granularity changed, which the real register would show.
    let data = u64::from(hdm.read(ctrl_at)? ^ 0xf);
    // The kernel may copy the request a byte at a time (TCG does), so a copy made while the
    // offset flips can mix the bytes of both values: the harmless offset differs from the
    // target in one byte where it can, so that every mix is one of the two; where it cannot,
    // a registration at a mix is found where it can be removed, and is a stray if that mix
    // touches the block.
    let harmless = match one_byte_away_outside_block(ctx, &hdm, target)? {
        Some(offset) => offset,
        None => harmless_ioeventfd_offset(ctx, &hdm)?,
    };
    let (_, block) = component_block(&sysfs_config(&ctx.opts.bdf)?)
        .ok_or("no component register block in the Register Locator")?;
    let comp_bar = u64::from(hdm.bar);
    let touches_block = |pos: u64| {
        let off = pos & ((1 << 40) - 1);
        pos >> 40 == comp_bar && off < block + COMP_BLOCK_SIZE && off + 8 > block
    };
    let report = ioeventfd::race_offset(
        dev,
        harmless,
        target,
        data,
        IOEVENTFD_RACE_ATTEMPTS,
        touches_block,
    )
    .map_err(|e| format!("race: {e}"))?;
    diag.push(format!(
        "offset flipped between {} and BAR{} +{ctrl_at:#x}: {} attempts, {} refused, {} registered at the harmless offset, {} at a harmless mix of both, {} stray",
        describe_offset(harmless), hdm.bar, report.attempts, report.refused, report.harmless, report.mixed, report.strays
    ));
    let mut problems = report.errors.clone();
    if report.strays > 0 {
        problems.push(format!(
            "{} ioeventfd(s) were registered on the component register block",
            report.strays
        ));
    }
    if report.refused == 0 || report.harmless == 0 {
        problems.push("the race never reached both offsets: nothing was tested".to_string());
    }
    match ioeventfd::set(dev, target, data, -1) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
        Ok(()) => problems.push("an ioeventfd on the block was still registered".to_string()),
        Err(e) => problems.push(format!(
            "removing an ioeventfd on the block: expected ENODEV (none there), got {}",
            describe_err(&e)
        )),
    }
    let after = hdm.dwords()?;
    let changed: Vec<String> = before
        .iter()
        .zip(&after)
        .enumerate()
        .filter(|(_, (b, a))| b != a)
        .map(|(i, (b, a))| format!("+{:#x}: {b:#010x} -> {a:#010x}", 4 * i))
        .collect();
    if !changed.is_empty() {
        problems.push(format!(
            "the real HDM decoder registers changed: {}",
            changed.join(", ")
        ));
    }
    all_ok(problems, diag)
}

// --- open and close ------------------------------------------------------------

fn dpa_tenant_isolation(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let size = ctx.dpa_len(8 * MIB)?;
    let seed = ctx.seed ^ 0x66;
    let via_map = [(3 * MIB + 100, PAGE), (size - 5000, 5000)];
    let via_pwrite = [(size / 4 * 3 + 7, PAGE), (17, 33)];
    {
        let map = ctx.map_dpa()?;
        for (off, len) in via_map {
            map.write_bytes(off, &pattern::bytes(seed, off as u64, len));
        }
        for (off, len) in via_pwrite {
            ctx.write_full(off, &pattern::bytes(seed, off as u64, len))?;
        }
        for (off, len) in via_map.iter().chain(&via_pwrite) {
            compare(
                "setup: pread",
                *off,
                &ctx.read_full(*off, *len)?,
                &pattern::bytes(seed, *off as u64, *len),
            )?;
        }
        // The mapping holds the device open: it goes before the close.
    }
    ctx.reopen()?;
    diag.push("closed the device and its IOMMU side; reopened".to_string());
    let param = "/sys/module/cxl_vfio_pci/parameters/scrub_memory";
    let scrub = fs::read_to_string(param).map_err(|e| format!("{param}: {e}"))?;
    let want = if ctx.opts.expect_no_scrub { "N" } else { "Y" };
    diag.push(format!("{param}: {}", scrub.trim()));
    if scrub.trim() != want {
        return Err(format!("{param} reads {:?}, expected {want}", scrub.trim()).into());
    }
    if ctx.opts.expect_no_scrub {
        // scrub_memory=0: the device is trusted to clear its memory itself; the driver does
        // not, so what the previous open wrote is still there (QEMU's device keeps it).
        let map = ctx.map_dpa()?;
        let mut problems = Vec::new();
        for &(off, len) in via_map.iter().chain(&via_pwrite) {
            let want = pattern::bytes(seed, off as u64, len);
            for (how, got) in [
                ("pread", ctx.read_full(off, len)),
                ("a new mapping", Ok(map.read_vec(off, len))),
            ] {
                match got.and_then(|got| {
                    compare(
                        &format!("{how} in the new open (no scrub)"),
                        off,
                        &got,
                        &want,
                    )
                }) {
                    Ok(()) => {}
                    Err(e) => problems.push(e),
                }
            }
        }
        return all_ok(problems, diag);
    }
    let mut problems = Vec::new();
    for (off, len) in via_map.iter().chain(&via_pwrite) {
        match ctx.read_full(*off, *len) {
            Ok(got) => {
                if let Err(e) = expect_zeros("pread in the new open", *off, &got) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(e),
        }
    }
    let map = ctx.map_dpa()?;
    for (off, len) in via_map.iter().chain(&via_pwrite) {
        if let Err(e) = expect_zeros("a new mapping", *off, &map.read_vec(*off, *len)) {
            problems.push(e);
        }
    }
    all_ok(problems, diag)
}

fn dpa_iomem_claimed(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let size = ctx.dpa()?.size;
    let name = claim_name(&ctx.opts.bdf);
    let entries = iomem::read_iomem()?;
    if iomem::addresses_hidden(&entries) {
        return Err(format!("{} shows no addresses (not root?)", iomem::PROC_IOMEM).into());
    }
    let found = iomem::find_by_name(&entries, &name);
    let claim = match found.as_slice() {
        [e] => (*e).clone(),
        [] => {
            for e in entries
                .iter()
                .filter(|e| e.name.contains(&ctx.opts.bdf) || e.name.contains(DRIVER))
            {
                diag.push(format!("{:x}-{:x} : {}", e.start, e.end, e.name));
            }
            return Err(format!("no {} entry named {name:?}", iomem::PROC_IOMEM).into());
        }
        many => return Err(format!("{} entries named {name:?}", many.len()).into()),
    };
    diag.push(format!(
        "{:x}-{:x} : {} (depth {})",
        claim.start, claim.end, claim.name, claim.depth
    ));
    if claim.size() != size {
        return Err(format!(
            "the claim spans {:#x} bytes, the DPA region {size:#x}",
            claim.size()
        )
        .into());
    }
    ctx.claimed = Some(claim);
    Ok(())
}

/// Opening the device in `mode` must fail with EBUSY, in the ioctl where the driver's
/// open runs, and the driver must say why.
fn open_must_be_busy(bdf: &str, mode: IommuMode, diag: &mut Vec<String>) -> Result<(), String> {
    let mark = kmsg::log_mark().map_err(|e| format!("kernel log: {e}"))?;
    match open_device_with(bdf, mode) {
        Ok(fds) => {
            let _ = fds.close();
            return Err("the device opened although another driver holds its DPA range".into());
        }
        Err(e) => {
            diag.push(format!("open while claimed: {e}"));
            if raw_os_error(&e) != Some(libc::EBUSY) {
                return Err(format!(
                    "open failed with {}, expected EBUSY",
                    describe_err(&e)
                ));
            }
            let ioctl = mode.device_open_ioctl();
            if !e.to_string().contains(ioctl) {
                return Err(format!("EBUSY before {ioctl}: {e}"));
            }
        }
    }
    let records = kmsg::records_since(mark).map_err(|e| format!("kernel log: {e}"))?;
    let prefix = format!("{DRIVER} {bdf}: ");
    for r in records.iter().filter(|r| r.text.contains(&prefix)) {
        diag.push(format!("log (level {}): {}", r.level, r.text));
    }
    if !records.iter().any(|r| is_busy_line(r, bdf)) {
        return Err(format!(
            "no error-level log line starting {prefix:?} and containing {EBUSY_LOG_SUBSTRINGS:?}"
        ));
    }
    Ok(())
}

fn dpa_open_busy(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let claim = ctx
        .claimed
        .clone()
        .ok_or("the DPA claim was not found in /proc/iomem")?;
    let bdf = ctx.opts.bdf.clone();
    let name = claim_name(&bdf);
    let mode = ctx
        .mode
        .ok_or("the IOMMU mode of the first open is unknown")?;
    ctx.close()?;
    if !iomem::find_by_name(&iomem::read_iomem()?, &name).is_empty() {
        return Err(format!("{name:?} is still in /proc/iomem after closing the device").into());
    }
    let args = vec![
        CLAIM_TEST_MODULE.to_string(),
        format!("start={:#x}", claim.start),
        format!("size={:#x}", claim.size()),
    ];
    diag.push(format!("modprobe {}", args.join(" ")));
    let out = run_command("modprobe", &args)?;
    if !out.success {
        return Err(format!(
            "modprobe {}: {}: {}",
            args.join(" "),
            out.status,
            out.stderr.trim()
        )
        .into());
    }
    let mut problems = Vec::new();
    if let Err(e) = open_must_be_busy(&bdf, mode, diag) {
        problems.push(e);
    }
    let unload = vec!["-r".to_string(), CLAIM_TEST_MODULE.to_string()];
    match run_command("modprobe", &unload) {
        Ok(o) if o.success => {}
        Ok(o) => problems.push(format!(
            "modprobe -r {CLAIM_TEST_MODULE}: {}: {}",
            o.status,
            o.stderr.trim()
        )),
        Err(e) => problems.push(e),
    }
    match ctx.open() {
        Ok(()) => {
            let back = iomem::find_by_name(&iomem::read_iomem()?, &name).len();
            if back != 1 {
                problems.push(format!(
                    "{back} entries named {name:?} after reopening, expected 1"
                ));
            }
        }
        Err(e) => problems.push(format!("open after unloading {CLAIM_TEST_MODULE}: {e}")),
    }
    all_ok(problems, diag)
}

/// Checks that the real decoder 0 decodes `[base, base + size)` and is committed, as firmware
/// left it.
/// A closed device is left as firmware configured it: vfio-pci-core's close-time reset clears
/// decoder 0 on this device, and the driver restores it; so after a close, an unbind and a
/// new bind the DPA region is offered again.
fn closed_device_keeps_firmware_decoder(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let claim = ctx
        .claimed
        .clone()
        .ok_or("the DPA claim was not found in /proc/iomem")?;
    let (base, size) = (claim.start, claim.size());
    let bdf = ctx.opts.bdf.clone();
    // (RealHdm keeps the closed device in D0 while it reads its registers past the driver.)
    ctx.close()?;
    let hdm = RealHdm::locate(&bdf)?;
    hdm.check_firmware_decoder(base, size, "after close")?;
    drop(hdm);
    pci::unbind(&bdf).map_err(|e| e.to_string())?;
    let hdm = RealHdm::locate(&bdf)?;
    let unbound = hdm.check_firmware_decoder(base, size, "after unbind");
    drop(hdm);
    pci::probe(&bdf).map_err(|e| format!("binding again: {e}"))?;
    unbound?;
    let driver = pci::driver_name(&bdf).map_err(|e| e.to_string())?;
    if driver.as_deref() != Some(DRIVER) {
        return Err(format!("bound to {driver:?} after drivers_probe, expected {DRIVER}").into());
    }
    diag.push(format!(
        "decoder 0 committed at {base:#x} + {size:#x} after close and unbind; bound again"
    ));
    ctx.open()?;
    if ctx.dpa.is_none() {
        return Err("no DPA region after binding again".into());
    }
    Ok(())
}

// --- PM Control --------------------------------------------------------------------

/// PM Control/Status (offset 4 of the PM capability): PowerState in bits 1:0, PME_Status
/// (bit 15) write-one-to-clear.
const PM_CTRL: u64 = 4;
const PM_CTRL_STATE_MASK: u16 = 0x3;
const PM_CTRL_PME_STATUS: u16 = 1 << 15;
const PM_STATE_D3HOT: u16 = 0x3;
/// What the PM Control step writes and reads through the mapping.
const PM_TOUCH_LEN: usize = 8 * MIB;

/// A user's PM Control writes: one of the current state (D0, clearing PME_Status, which
/// vfio-pci-core treats as no change) keeps the DPA mapping, not a single fault after it; D3hot
/// and back to D0 revokes it (it faults again) and the data is intact after.
fn dpa_pm_control(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    ctx.dpa_len(PM_TOUCH_LEN)?;
    let pm = ctx
        .dev()?
        .pm_cap()
        .map_err(|e| format!("capability list: {e}"))?
        .ok_or_else(|| Failure::Skip("the device has no PM capability".into()))?;
    let ctrl_at = pm + PM_CTRL;
    let map = ctx.map_dpa()?;
    let seed = ctx.seed ^ 0x9e;
    map.write_bytes(0, &pattern::bytes(seed, 0, PM_TOUCH_LEN));
    let dev = ctx.dev()?;
    let ctrl = dev
        .config_read16(ctrl_at)
        .map_err(|e| format!("PM Control: {e}"))?;
    if ctrl & PM_CTRL_STATE_MASK != 0 {
        return Err(format!("PM Control {ctrl:#06x}: the function is not in D0").into());
    }
    touch_pages(&map, PM_TOUCH_LEN)?;

    dev.config_write16(ctrl_at, ctrl | PM_CTRL_PME_STATUS)
        .map_err(|e| format!("PM Control write of D0: {e}"))?;
    let same_state = touch_pages(&map, PM_TOUCH_LEN)?;
    if same_state != 0 {
        return Err(format!(
            "{same_state} faults after a PM Control write of the current state (D0): the mapping was revoked"
        )
        .into());
    }

    dev.config_write16(ctrl_at, (ctrl & !PM_CTRL_STATE_MASK) | PM_STATE_D3HOT)
        .map_err(|e| format!("PM Control write of D3hot: {e}"))?;
    dev.config_write16(ctrl_at, ctrl & !PM_CTRL_STATE_MASK)
        .map_err(|e| format!("PM Control write of D0: {e}"))?;
    let after_d3 = touch_pages(&map, PM_TOUCH_LEN)?;
    if after_d3 == 0 {
        return Err("no fault after D3hot and back to D0: the mapping was not revoked".into());
    }
    compare(
        "after D3hot and back",
        0,
        &map.read_vec(0, PM_TOUCH_LEN),
        &pattern::bytes(seed, 0, PM_TOUCH_LEN),
    )?;
    diag.push(format!(
        "PM capability at {pm:#x}: 0 faults after a write of D0, {after_d3} after D3hot and back, data intact"
    ));
    Ok(())
}

// --- fault granularity and scrub cost -------------------------------------------

/// Reads one word per page of the first `len` bytes; returns the faults taken.
fn touch_pages(map: &Mapping, len: usize) -> Result<u64, String> {
    let before = thread_faults().map_err(|e| format!("getrusage: {e}"))?;
    let mut acc = 0u64;
    for page in 0..len / PAGE {
        acc ^= map.read_u64(page * PAGE);
    }
    std::hint::black_box(acc);
    Ok(thread_faults().map_err(|e| format!("getrusage: {e}"))? - before)
}

fn dpa_huge_faults(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    ctx.dpa_len(TOUCH_LEN)?;
    let aligned_map = ctx.map_dpa_at(0)?;
    diag.push(format!("aligned mapping at {:#x}", aligned_map.addr()));
    let aligned = touch_pages(&aligned_map, TOUCH_LEN)?;
    drop(aligned_map);
    let skewed_map = ctx.map_dpa_at(PAGE)?;
    diag.push(format!("misaligned mapping at {:#x}", skewed_map.addr()));
    let misaligned = touch_pages(&skewed_map, TOUCH_LEN)?;
    drop(skewed_map);
    ctx.report.push(format!(
        "faults: aligned={aligned} misaligned={misaligned} ratio={}",
        ratio(misaligned as f64, aligned as f64)
    ));
    if aligned == 0 {
        return Err(
            "no page faults through the aligned mapping: populated at mmap time, or not counted"
                .into(),
        );
    }
    if misaligned < MIN_FAULT_RATIO * aligned {
        return Err(format!(
            "{misaligned} faults misaligned vs {aligned} aligned, expected a ratio of at least {MIN_FAULT_RATIO}: no huge (PMD) entries"
        )
        .into());
    }
    Ok(())
}

/// Bytes the scrub-cost step reads with `pread` (twice).
const PREAD_LEN: usize = 16 * MIB;

fn dpa_scrub_cost(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    ctx.reopen()?;
    let size = ctx.dpa_len(2 * PAGE)?;
    let len = TOUCH_LEN.min(size / 2) / PAGE * PAGE;
    let map = ctx.map_dpa_at(0)?;
    let start = Instant::now();
    let mut nonzero = Vec::new();
    for page in 0..len / PAGE {
        let v = map.read_u64(page * PAGE);
        if v != 0 {
            nonzero.push((page * PAGE, v));
        }
    }
    let first_touch = start.elapsed();
    let start = Instant::now();
    touch_pages(&map, len)?;
    let second_touch = start.elapsed();
    drop(map);
    // Reads copy byte by byte under TCG: a smaller span keeps the suite short.
    let pread_len = PREAD_LEN.min(len);
    let start = Instant::now();
    let first = ctx.read_full(len, pread_len)?;
    let first_pread = start.elapsed();
    let pread_check = expect_zeros("the first pread in a fresh open", pread_len, &first);
    drop(first);
    let start = Instant::now();
    ctx.read_full(len, pread_len)?;
    let second_pread = start.elapsed();
    ctx.report.push(format!(
        "scrub: first-touch={} ms second-touch={} ms ratio={} ({} MiB) first-pread={} ms second-pread={} ms pread-ratio={} ({} MiB)",
        ms(first_touch),
        ms(second_touch),
        ratio(first_touch.as_secs_f64(), second_touch.as_secs_f64()),
        len / MIB,
        ms(first_pread),
        ms(second_pread),
        ratio(first_pread.as_secs_f64(), second_pread.as_secs_f64()),
        pread_len / MIB
    ));
    let mut problems = Vec::new();
    if let Some((off, v)) = nonzero.first() {
        problems.push(format!(
            "first touch in a fresh open: {} of {} pages read non-zero, first at {off:#x}: {v:#018x}",
            nonzero.len(),
            len / PAGE
        ));
    }
    if let Err(e) = pread_check {
        problems.push(e);
    }
    all_ok(problems, diag)
}

// --- stress ------------------------------------------------------------------------

/// What the stress threads share.
struct Stress {
    vfio: AttachedDevice,
    map: Mapping,
    dpa_offset: u64,
    seed: u64,
    abort: AtomicBool,
    resets_finished: AtomicBool,
    problems: Mutex<Vec<String>>,
}

impl Stress {
    fn dev(&self) -> &Device {
        &self.vfio
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    fn problem(&self, p: String) {
        let mut v = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < 20 {
            v.push(p);
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ReaderStats {
    mmap_reads: u64,
    pread_reads: u64,
    eio: u64,
    mismatches: u64,
}

/// Reads random pages of the pattern, alternately through the mapping and with
/// pread, until it has done its share and the resets are over.
fn stress_reader(st: &Stress, id: u64) -> ReaderStats {
    let mut rng = Rng::new(st.seed ^ (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut stats = ReaderStats::default();
    let mut buf = vec![0u8; PAGE];
    let pages = (STRESS_LEN / PAGE) as u64;
    'reads: loop {
        let reads = stats.mmap_reads + stats.pread_reads;
        if st.aborted() || (reads >= READS_PER_READER && st.resets_finished.load(Ordering::SeqCst))
        {
            break;
        }
        let page = rng.below(pages) as usize;
        let off = page * PAGE;
        let through_mapping = reads % 2 == 0;
        if through_mapping {
            for (w, chunk) in buf.chunks_exact_mut(8).enumerate() {
                chunk.copy_from_slice(&st.map.read_u64(off + w * 8).to_le_bytes());
            }
            stats.mmap_reads += 1;
        } else {
            loop {
                match st.dev().pread(&mut buf, st.dpa_offset + off as u64) {
                    Ok(n) if n == PAGE => break,
                    Ok(n) => {
                        st.problem(format!(
                            "reader {id}: pread of page {page} returned {n} bytes"
                        ));
                        break 'reads;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                        stats.eio += 1;
                        if st.aborted() {
                            break 'reads;
                        }
                        thread::sleep(EIO_RETRY_DELAY);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        st.problem(format!(
                            "reader {id}: pread of page {page}: {}",
                            describe_err(&e)
                        ));
                        break 'reads;
                    }
                }
            }
            stats.pread_reads += 1;
        }
        // After an abort the mapping may hold patched (zero) pages: not the driver's data.
        if st.aborted() {
            break;
        }
        for (w, chunk) in buf.chunks_exact(8).enumerate() {
            let got = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let want = pattern::word_at(st.seed, (off + w * 8) as u64);
            if got != want {
                stats.mismatches += 1;
                if stats.mismatches <= 3 {
                    st.problem(format!(
                        "reader {id}: {} of DPA {:#x}: {got:#018x}, pattern {want:#018x}",
                        if through_mapping {
                            "mapping read"
                        } else {
                            "pread"
                        },
                        off + w * 8
                    ));
                }
            }
        }
    }
    stats
}

/// Issues `n` resets; returns how many succeeded and the longest one.
/// Resets the device `n` times, alternating VFIO_DEVICE_RESET (vfio-pci-core holds its
/// memory_lock across it, so accesses wait) with a reset through sysfs when the device has one
/// (nothing holds memory_lock, so accesses meet the revoked region: SIGBUS or EIO, retried).
fn stress_resetter(st: &Stress, n: u32, sysfs_reset: Option<&std::path::Path>) -> (u32, Duration) {
    let mut done = 0;
    let mut longest = Duration::ZERO;
    for i in 0..n {
        if st.aborted() {
            break;
        }
        let start = Instant::now();
        // The driver's own transitions and a host reset, in turn: a low-power exit issued in
        // D0 changes nothing but runs the driver's power-change path.
        let (how, result) = match (i % 3, sysfs_reset) {
            (1, Some(path)) => ("sysfs reset", fs::write(path, "1")),
            (2, _) => (
                "VFIO_DEVICE_LOW_POWER_EXIT in D0",
                st.dev().low_power_exit(),
            ),
            _ => ("VFIO_DEVICE_RESET", st.dev().reset()),
        };
        match result {
            Ok(()) => {
                done += 1;
                longest = longest.max(start.elapsed());
            }
            Err(e) => {
                st.problem(format!("{how} #{}: {}", i + 1, describe_err(&e)));
                break;
            }
        }
    }
    st.resets_finished.store(true, Ordering::SeqCst);
    (done, longest)
}

/// Checks the first `len` bytes of the region against the stress pattern.
fn verify_pattern(ctx: &Ctx, seed: u64, len: usize, when: &str) -> Result<(), String> {
    let mut off = 0;
    while off < len {
        let n = MIB.min(len - off);
        let got = ctx.read_full(off, n)?;
        compare(when, off, &got, &pattern::bytes(seed, off as u64, n))?;
        off += n;
    }
    Ok(())
}

fn dpa_stress_resets(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    ctx.dpa_len(STRESS_LEN)?;
    let resets = ctx.opts.resets;
    let seed = ctx.seed ^ 0x77;
    let mut chunk = vec![0u8; MIB];
    for off in (0..STRESS_LEN).step_by(MIB) {
        pattern::fill(seed, off as u64, &mut chunk);
        ctx.write_full(off, &chunk)?;
    }
    verify_pattern(ctx, seed, STRESS_LEN, "pattern before the stress")?;
    let map = ctx.map_dpa()?;
    let dpa_offset = ctx.dpa()?.offset;
    let log_mark = kmsg::log_mark().map_err(|e| format!("kernel log: {e}"))?;
    let vfio = ctx.vfio.take().ok_or("device is not open")?;
    let st = Arc::new(Stress {
        vfio,
        map,
        dpa_offset,
        seed,
        abort: AtomicBool::new(false),
        resets_finished: AtomicBool::new(false),
        problems: Mutex::new(Vec::new()),
    });
    let retried_before = sigbus::retried();
    let retry = sigbus::RetryGuard::new();
    let start = Instant::now();
    let readers: Vec<_> = (0..STRESS_READERS)
        .map(|id| {
            let st = Arc::clone(&st);
            thread::spawn(move || stress_reader(&st, id))
        })
        .collect();
    let sysfs_reset = Some(pci::device_dir(&ctx.opts.bdf).join("reset")).filter(|p| p.exists());
    diag.push(match &sysfs_reset {
        Some(p) => format!(
            "transitions rotate VFIO_DEVICE_RESET, {} and VFIO_DEVICE_LOW_POWER_EXIT in D0",
            p.display()
        ),
        None => {
            "no sysfs reset: VFIO_DEVICE_RESET and VFIO_DEVICE_LOW_POWER_EXIT in D0".to_string()
        }
    });
    let resetter = {
        let st = Arc::clone(&st);
        thread::spawn(move || stress_resetter(&st, resets, sysfs_reset.as_deref()))
    };
    let deadline = start + STRESS_TIMEOUT + PER_RESET_TIMEOUT * resets;
    let mut timed_out = false;
    let mut grace_end = deadline;
    while !(readers.iter().all(|h| h.is_finished()) && resetter.is_finished()) {
        let now = Instant::now();
        if !timed_out && now > deadline {
            // Let stuck readers finish: their faults now complete on patched pages.
            timed_out = true;
            st.abort.store(true, Ordering::SeqCst);
            sigbus::give_up();
            grace_end = now + Duration::from_secs(10);
        }
        if timed_out && now > grace_end {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let elapsed = start.elapsed();
    let sigbus_retries = sigbus::retried() - retried_before;
    drop(retry);

    let mut total = ReaderStats::default();
    let mut stuck = 0;
    for h in readers {
        if !h.is_finished() {
            stuck += 1;
            continue;
        }
        match h.join() {
            Ok(s) => {
                total.mmap_reads += s.mmap_reads;
                total.pread_reads += s.pread_reads;
                total.eio += s.eio;
                total.mismatches += s.mismatches;
            }
            Err(_) => st.problem("a reader thread panicked".to_string()),
        }
    }
    let (done, longest) = if resetter.is_finished() {
        resetter.join().unwrap_or_else(|_| {
            st.problem("the reset thread panicked".to_string());
            (0, Duration::ZERO)
        })
    } else {
        stuck += 1;
        (0, Duration::ZERO)
    };
    ctx.report.push(format!(
        "stress: resets={done}/{resets} reads={} (mmap={} pread={}) sigbus={sigbus_retries} eio={} mismatches={} elapsed={:.1} s longest-reset={} ms",
        total.mmap_reads + total.pread_reads,
        total.mmap_reads,
        total.pread_reads,
        total.eio,
        total.mismatches,
        elapsed.as_secs_f64(),
        ms(longest)
    ));

    let mut problems: Vec<String> =
        std::mem::take(&mut *st.problems.lock().unwrap_or_else(|e| e.into_inner()));
    if timed_out {
        problems.insert(
            0,
            format!(
                "the stress did not finish within {:?}; {stuck} thread(s) still stuck",
                deadline - start
            ),
        );
    }
    if total.mismatches > 0 {
        problems.insert(
            0,
            format!("{} words read did not match the pattern", total.mismatches),
        );
    }
    if done != resets && !timed_out {
        problems.push(format!("{done} of {resets} resets done"));
    }
    // Resets and power changes make accesses wait, never fail: a VM would die of a SIGBUS.
    if sigbus_retries > 0 || total.eio > 0 {
        problems.push(format!(
            "accesses failed during the transitions: {sigbus_retries} SIGBUS, {} EIO (they must wait)",
            total.eio
        ));
    }
    // Give the device back to the context, unless a stuck thread still uses it.
    match Arc::try_unwrap(st) {
        Ok(st) => {
            drop(st.map);
            ctx.vfio = Some(st.vfio);
            if let Err(e) = verify_pattern(ctx, seed, STRESS_LEN, "pattern after the stress") {
                problems.push(e);
            }
        }
        Err(_) => problems.push("stuck threads hold the device; later tests reopen it".into()),
    }
    match kmsg::problems_since(log_mark) {
        Ok(lines) if lines.is_empty() => {}
        Ok(lines) => {
            diag.extend(lines.iter().take(MAX_LOG_LINES).cloned());
            problems.push(format!(
                "{} problem lines in the kernel log during the stress",
                lines.len()
            ));
        }
        Err(e) => problems.push(format!("kernel log: {e}")),
    }
    all_ok(problems, diag)
}

// --- DMA mappings through the IOMMU ---------------------------------------------

/// What the IOMMU step maps: 2 MiB, one huge page's worth.
const IOMMU_MAP_LEN: usize = 2 * MIB;
/// IOVA of the anonymous buffer (4 GiB: above the 32-bit MSI window).
const ANON_IOVA: u64 = 0x1_0000_0000;
/// IOVA of the DPA region's mapping, apart from the buffer's.
const DPA_IOVA: u64 = 0x2_0000_0000;

/// The outcome of a DMA map: `Ok`, or the errno. An error without an errno (the library's
/// own refusal) is a failure of the test.
fn dma_outcome(r: io::Result<()>) -> Result<DmaOutcome, String> {
    match r {
        Ok(()) => Ok(DmaOutcome::Ok),
        Err(e) => raw_os_error(&e)
            .map(DmaOutcome::Errno)
            .ok_or_else(|| format!("dma_map failed without an errno: {e}")),
    }
}

/// Maps memory for the device's DMA the way a VMM maps guest RAM, with the IOMMU the device
/// was opened with. An anonymous 2 MiB buffer must map and unmap. Then 2 MiB of an mmap of the
/// DPA region (faulted in first): whether that maps is what the IOMMU code does with a
/// `VM_PFNMAP` mapping (type1 may follow it to its PFNs; iommufd pins pages and probably
/// refuses with EFAULT). The outcome is reported; the harness pins it per mode with
/// `--expect-dpa-dma`, and without that the step passes on either outcome. The kernel log
/// must stay clean. No-IOMMU mode has nothing to map into: skipped.
fn dpa_iommu_map(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let dpa = ctx.dpa()?.clone();
    ctx.dpa_len(IOMMU_MAP_LEN)?;
    let dev = ctx.attached()?;
    let mode = dev.mode();
    if !mode.maps_dma() {
        // The library must refuse by itself, without a syscall.
        match dev.dma_map(0, ANON_IOVA, IOMMU_MAP_LEN as u64) {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
            other => {
                return Err(format!("{mode}: dma_map gave {other:?}, expected Unsupported").into())
            }
        }
        return Err(Failure::Skip(format!(
            "{mode} mode: no IOMMU to map DMA into"
        )));
    }
    let mark = kmsg::log_mark().map_err(|e| format!("kernel log: {e}"))?;
    let len = IOMMU_MAP_LEN as u64;

    // (a) Ordinary memory: maps, and unmaps whole.
    let buf = Mapping::anonymous(IOMMU_MAP_LEN)
        .map_err(|e| format!("anonymous mmap of {IOMMU_MAP_LEN:#x} bytes: {e}"))?;
    buf.write_bytes(0, &pattern::bytes(ctx.seed ^ 0xd3a, 0, IOMMU_MAP_LEN));
    dev.dma_map(buf.addr() as u64, ANON_IOVA, len)
        .map_err(|e| {
            format!(
                "{mode}: dma_map of an anonymous buffer at IOVA {ANON_IOVA:#x}: {}",
                describe_err(&e)
            )
        })?;
    let unmapped = match dev.dma_unmap(ANON_IOVA, len) {
        Ok(n) => n,
        Err(e) => {
            // Still mapped for the device: leave the pages to it rather than free them.
            std::mem::forget(buf);
            return Err(format!(
                "{mode}: dma_unmap of the anonymous buffer: {}",
                describe_err(&e)
            )
            .into());
        }
    };
    if unmapped != len {
        return Err(format!(
            "{mode}: dma_unmap of the anonymous buffer unmapped {unmapped:#x} bytes, expected {len:#x}"
        )
        .into());
    }
    diag.push(format!(
        "{mode}: anonymous buffer mapped at IOVA {ANON_IOVA:#x} and unmapped ({len:#x} bytes)"
    ));
    drop(buf);

    // (b) The DPA region's mapping, faulted in first so that its PFNs are there to follow.
    let map = Mapping::shared(dev.as_fd(), dpa.offset, IOMMU_MAP_LEN)
        .map_err(|e| format!("mmap of {IOMMU_MAP_LEN:#x} bytes of the DPA region: {e}"))?;
    touch_pages(&map, IOMMU_MAP_LEN)?;
    let result = dev.dma_map(map.addr() as u64, DPA_IOVA, len);
    let detail = match &result {
        Ok(()) => String::new(),
        Err(e) => format!(" ({e})"),
    };
    let outcome = dma_outcome(result)?;
    diag.push(format!(
        "dpa-dma mode={mode} outcome={outcome}: dma_map of an mmap of the DPA region at IOVA {DPA_IOVA:#x}{detail}"
    ));
    let mut problems = Vec::new();
    if outcome == DmaOutcome::Ok {
        match dev.dma_unmap(DPA_IOVA, len) {
            Ok(n) if n == len => {}
            Ok(n) => problems.push(format!(
                "dma_unmap of the DPA mapping unmapped {n:#x} bytes, expected {len:#x}"
            )),
            Err(e) => problems.push(format!(
                "dma_unmap of the DPA mapping: {}",
                describe_err(&e)
            )),
        }
    }
    drop(map);
    match ctx.opts.expect_dpa_dma.get(mode) {
        Some(want) if want != outcome => problems.push(format!(
            "{mode}: dma_map of the DPA mapping gave {outcome}, --expect-dpa-dma says {want}"
        )),
        Some(_) => {}
        None => diag.push(format!(
            "{mode}: outcome not pinned (the harness pins it with --expect-dpa-dma {mode}={outcome})"
        )),
    }
    match kmsg::problems_since(mark) {
        Ok(lines) if lines.is_empty() => {}
        Ok(lines) => {
            diag.extend(lines.iter().take(MAX_LOG_LINES).cloned());
            problems.push(format!(
                "{} problem lines in the kernel log during the DMA mappings",
                lines.len()
            ));
        }
        Err(e) => problems.push(format!("kernel log: {e}")),
    }
    all_ok(problems, diag)
}

// --- backend markers and the kernel log ----------------------------------------

fn backend_markers(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    ctx.reopen()?;
    let size = ctx.dpa_len(4 * MARKER_LEN)?;
    let nonce = random_u64();
    // Unaligned on purpose; inside the region whatever its size.
    let through_mapping = (64 * MIB + 12345).min(size / 4 + 12345);
    let with_pwrite = size / 2 + 54321;
    let mapped = pattern::bytes(nonce, through_mapping as u64, MARKER_LEN);
    let written = pattern::bytes(!nonce, with_pwrite as u64, MARKER_LEN);
    {
        let map = ctx.map_dpa()?;
        map.write_bytes(through_mapping, &mapped);
    }
    ctx.write_full(with_pwrite, &written)?;
    compare(
        "pread of the mapped marker",
        through_mapping,
        &ctx.read_full(through_mapping, MARKER_LEN)?,
        &mapped,
    )?;
    compare(
        "pread of the pwritten marker",
        with_pwrite,
        &ctx.read_full(with_pwrite, MARKER_LEN)?,
        &written,
    )?;
    let closed = ctx.close();
    diag.push(format!(
        "nonce {nonce:#018x}: {MARKER_LEN} bytes through the mapping at {through_mapping:#x}, with pwrite at {with_pwrite:#x}; device closed"
    ));
    let markers = [
        Marker::describe(through_mapping as u64, &mapped),
        Marker::describe(with_pwrite as u64, &written),
    ];
    for m in &markers {
        ctx.report.push(m.to_diag());
    }
    ctx.report.push(backend::count_diag(markers.len()));
    closed.map_err(|e| format!("close: {e}"))?;
    Ok(())
}

fn kernel_log_clean(ctx: &mut Ctx, diag: &mut Vec<String>) -> StepResult {
    let mark = ctx
        .log_mark
        .ok_or("the kernel log position at the start is unknown")?;
    let problems = kmsg::problems_since(mark)?;
    if problems.is_empty() {
        return Ok(());
    }
    diag.extend(problems.iter().take(MAX_LOG_LINES).cloned());
    Err(format!(
        "{} problem lines in the kernel log since the start",
        problems.len()
    )
    .into())
}

// ---------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------

/// The steps to run: all, or `only` and what it depends on, in table order.
fn select_steps(only: Option<&str>) -> Vec<&'static Step> {
    let Some(name) = only else {
        return STEPS.iter().collect();
    };
    let mut wanted: HashSet<&str> = HashSet::new();
    let mut todo = vec![name];
    while let Some(n) = todo.pop() {
        if wanted.insert(n) {
            if let Some(step) = STEPS.iter().find(|s| s.name == n) {
                todo.extend(step.deps.iter().copied());
            }
        }
    }
    STEPS.iter().filter(|s| wanted.contains(s.name)).collect()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs the selected steps in order and returns whether all passed.
fn run_suite(opts: Options) -> bool {
    let steps = select_steps(opts.only.as_deref());
    let mut ktap = Ktap::stdout(steps.len());
    ktap.diag(&format!(
        "cxlvfio-dpa: device {}, {} resets in the stress test{}",
        opts.bdf,
        opts.resets,
        opts.only
            .as_deref()
            .map(|o| format!(", only {o} and its dependencies"))
            .unwrap_or_default()
    ));
    let mut ctx = Ctx::new(opts);
    if let Err(e) = sigbus::install() {
        ktap.diag(&format!(
            "cannot install the SIGBUS handler ({e}): a fault on device memory ends the run"
        ));
    }
    ctx.seed = random_u64();
    ktap.diag(&format!("pattern seed {:#018x}", ctx.seed));
    match kmsg::log_mark() {
        Ok(m) => ctx.log_mark = Some(m),
        Err(e) => ktap.diag(&format!("kernel log: {e}")),
    }
    let mut passed: HashSet<&str> = HashSet::new();
    for step in steps {
        if let Some(dep) = step.deps.iter().find(|d| !passed.contains(*d)) {
            ktap.not_ok(step.name, &format!("depends on {dep}"));
            continue;
        }
        let mut diag = Vec::new();
        let faults_before = sigbus::unexpected();
        // A bug in one step must not stop the steps after it.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            if step.open {
                ctx.ensure_open()?;
            }
            (step.run)(&mut ctx, &mut diag)
        }));
        let faults = sigbus::unexpected() - faults_before;
        for d in &diag {
            ktap.diag(&format!("{}: {d}", step.name));
        }
        for line in ctx.report.drain(..) {
            ktap.diag(&line);
        }
        let outcome = match outcome {
            Ok(Ok(())) if faults > 0 => Ok(Err(Failure::Fail(format!(
                "{faults} unexpected SIGBUS on device memory, the last at {:#x}",
                sigbus::last_address()
            )))),
            other => other,
        };
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
    let _ = ctx.close();
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
            eprintln!("cxlvfio-dpa: error: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let ok = run_suite(opts);
    // Exit without joining a thread that may be stuck in the kernel.
    std::process::exit(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

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
                resets: DEFAULT_RESETS,
                only: None,
                expect_no_scrub: false,
                expect_dpa_dma: DpaDmaExpect::default(),
            }
        );
        let o = parse_args(
            &s(&["--expect-dpa-dma", "type1=ok,iommufd=EFAULT"]),
            Some("0d:00.0".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            o.expect_dpa_dma,
            DpaDmaExpect {
                type1: Some(DmaOutcome::Ok),
                iommufd: Some(DmaOutcome::Errno(libc::EFAULT)),
            }
        );
        for bad in [
            "",
            "type1",
            "type1=maybe",
            "noiommu=ok",
            "type1=ok,type1=EFAULT",
            "iommufd=-3",
        ] {
            assert!(
                parse_args(&s(&["--expect-dpa-dma", bad]), Some("0d:00.0".into())).is_err(),
                "{bad:?}"
            );
        }
        let o = parse_args(&s(&["--expect-no-scrub"]), Some("0d:00.0".into()))
            .unwrap()
            .unwrap();
        assert!(o.expect_no_scrub);
        let o = parse_args(
            &s(&["--resets=7", "--only", "dpa_low_power"]),
            Some("0000:0d:00.0".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!((o.resets, o.only.as_deref()), (7, Some("dpa_low_power")));
        assert!(parse_args(&s(&["--resets", "x"]), Some("0d:00.0".into())).is_err());
        assert!(parse_args(&s(&["--resets", "-1"]), Some("0d:00.0".into())).is_err());
        let e = parse_args(&s(&["--only", "nope"]), Some("0d:00.0".into())).unwrap_err();
        assert!(e.contains("dpa_low_power"), "{e}");
        assert_eq!(parse_args(&s(&["--help"]), None).unwrap(), None);
        assert!(parse_args(&[], None).is_err());
        assert!(parse_args(&s(&["extra"]), Some("0d:00.0".into())).is_err());
    }

    #[test]
    fn step_table_is_consistent() {
        let mut names = HashSet::new();
        for (i, step) in STEPS.iter().enumerate() {
            assert!(names.insert(step.name), "duplicate step {}", step.name);
            for dep in step.deps {
                let pos = STEPS.iter().position(|s| s.name == *dep);
                assert!(
                    pos.is_some_and(|p| p < i),
                    "{} depends on {dep}, which does not run before it",
                    step.name
                );
            }
        }
        // The backend markers are written after every other device test.
        let pos = |n: &str| STEPS.iter().position(|s| s.name == n).unwrap();
        assert_eq!(pos("dpa_iommu_map"), STEPS.len() - 3);
        assert_eq!(STEPS[pos("dpa_iommu_map")].deps, DPA);
        assert_eq!(pos("backend_markers"), STEPS.len() - 2);
        assert_eq!(STEPS.last().unwrap().name, "kernel_log_clean");
        assert!(STEPS.iter().all(|s| s.open || s.deps.is_empty()));
    }

    #[test]
    fn only_selects_dependencies() {
        let names = |v: Vec<&Step>| v.iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(select_steps(None).len(), STEPS.len());
        assert_eq!(
            names(select_steps(Some("dpa_open_busy"))),
            [
                "vfio_open",
                "dpa_region_info",
                "dpa_iomem_claimed",
                "dpa_open_busy"
            ]
        );
        assert_eq!(names(select_steps(Some("vfio_open"))), ["vfio_open"]);
        assert_eq!(
            names(select_steps(Some("kernel_log_clean"))),
            ["kernel_log_clean"]
        );
    }

    #[test]
    fn ebusy_log_matching() {
        let bdf = "0000:0d:00.0";
        let rec = |level, text: &str| KmsgRecord {
            level,
            seq: 1,
            text: text.to_string(),
        };
        assert_eq!(EBUSY_LOG_SUBSTRINGS, ["DPA range", "busy"]);
        let good = "cxl-vfio-pci 0000:0d:00.0: DPA range [mem 0x110000000-0x11fffffff] is busy: \
                    held by cxl_vfio_claim_test; not opening: no command releases it: \
                    its owner is \"cxl_vfio_claim_test\"";
        assert!(is_busy_line(&rec(LOG_ERR, good), bdf));
        assert!(is_busy_line(&rec(0, good), bdf));
        // Too mild, other device, other driver, missing words.
        assert!(!is_busy_line(&rec(4, good), bdf));
        assert!(!is_busy_line(
            &rec(3, &good.replace("0d:00.0", "0e:00.0")),
            bdf
        ));
        assert!(!is_busy_line(
            &rec(3, &good.replace("cxl-vfio-pci", "vfio-pci")),
            bdf
        ));
        assert!(!is_busy_line(
            &rec(3, "cxl-vfio-pci 0000:0d:00.0: DPA range is in use"),
            bdf
        ));
        assert_eq!(claim_name(bdf), "cxl-vfio-pci 0000:0d:00.0");
    }

    #[test]
    fn chain_walking() {
        let cap = |buf: &mut Vec<u8>, id: u16, next: u32, payload: usize| {
            buf.extend_from_slice(&id.to_ne_bytes());
            buf.extend_from_slice(&1u16.to_ne_bytes());
            buf.extend_from_slice(&next.to_ne_bytes());
            buf.extend(std::iter::repeat_n(0, payload));
        };
        let mut b = vec![0u8; 24];
        cap(&mut b, 5, 40, 8);
        cap(&mut b, VFIO_DEVICE_INFO_CAP_CXL, 0, 24);
        let chain = walk_chain(&b, 24).unwrap();
        assert_eq!(
            chain,
            [
                ChainEntry {
                    id: 5,
                    version: 1,
                    offset: 24,
                    span: 16
                },
                ChainEntry {
                    id: 6,
                    version: 1,
                    offset: 40,
                    span: 32
                }
            ]
        );
        // Backwards, self-referencing, out of the buffer, truncated.
        let mut bad = vec![0u8; 24];
        cap(&mut bad, 6, 24, 24);
        assert!(walk_chain(&bad, 24).is_err());
        let mut bad = vec![0u8; 24];
        cap(&mut bad, 6, 100, 24);
        assert!(walk_chain(&bad, 24).is_err());
        assert!(walk_chain(&b[..28], 24).is_err());
        assert!(walk_chain(&b, 80).is_err());
    }

    #[test]
    fn dpa_dma_expectations() {
        assert_eq!(DmaOutcome::parse("ok"), Some(DmaOutcome::Ok));
        assert_eq!(
            DmaOutcome::parse("EFAULT"),
            Some(DmaOutcome::Errno(libc::EFAULT))
        );
        assert_eq!(DmaOutcome::parse("14"), Some(DmaOutcome::Errno(14)));
        assert_eq!(DmaOutcome::parse("0"), None);
        assert_eq!(DmaOutcome::parse("efault"), None);
        assert_eq!(DmaOutcome::Errno(libc::EINVAL).to_string(), "EINVAL");
        assert_eq!(DmaOutcome::Ok.to_string(), "ok");
        let e = DpaDmaExpect::parse("iommufd=EFAULT").unwrap();
        assert_eq!(e.get(IommuMode::Type1), None);
        assert_eq!(
            e.get(IommuMode::Iommufd),
            Some(DmaOutcome::Errno(libc::EFAULT))
        );
        assert_eq!(e.get(IommuMode::NoIommu), None);
        assert!(DpaDmaExpect::parse("type1=ok,")
            .unwrap_err()
            .contains("is not MODE=OUTCOME"));
        // The outcome of a map comes from the errno; no errno is a failure.
        assert_eq!(dma_outcome(Ok(())), Ok(DmaOutcome::Ok));
        let efault = cxlvfio::error::with_context(
            io::Error::from_raw_os_error(libc::EFAULT),
            "IOMMU_IOAS_MAP",
        );
        assert_eq!(
            dma_outcome(Err(efault)),
            Ok(DmaOutcome::Errno(libc::EFAULT))
        );
        assert!(dma_outcome(Err(io::Error::other("no errno"))).is_err());
    }

    #[test]
    fn helpers() {
        let mut b = vec![0xa5u8; 32];
        assert_eq!(first_written(&b, 0, 0xa5), None);
        b[20] = 0;
        assert_eq!(first_written(&b, 16, 0xa5), Some(20));
        assert_eq!(first_written(&b, 21, 0xa5), None);
        assert_eq!(first_written(&b, 40, 0xa5), None);
        assert_eq!(errno_name(libc::EBUSY), "EBUSY");
        assert_eq!(errno_name(9999), "errno 9999");
        let einval = io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(
            expect_errno::<()>(Err(einval), &[libc::EINVAL, libc::ENOMEM], "x").unwrap(),
            "x: EINVAL"
        );
        let eio = io::Error::from_raw_os_error(libc::EIO);
        let e = expect_errno::<()>(Err(eio), &[libc::EINVAL, libc::ENOMEM], "x").unwrap_err();
        assert!(
            e.starts_with("x: EIO (") && e.ends_with("expected EINVAL or ENOMEM"),
            "{e}"
        );
        assert!(expect_errno(Ok(3usize), &[libc::EIO], "y")
            .unwrap_err()
            .contains("succeeded (3)"));
        assert!(compare("c", 0x10, b"abc", b"abc").is_ok());
        let e = compare("c", 0x10, b"abd", b"abc").unwrap_err();
        assert!(e.contains("first at DPA 0x12"), "{e}");
        assert!(compare("c", 0, b"ab", b"abc")
            .unwrap_err()
            .contains("2 bytes"));
        assert!(expect_zeros("z", 0, &[0, 0]).is_ok());
        assert!(expect_zeros("z", 8, &[0, 7])
            .unwrap_err()
            .contains("DPA 0x9"));
        assert_eq!(ratio(512.0, 1.0), "512.0");
        assert_eq!(ratio(1.0, 0.0), "inf");
        assert_eq!(ms(Duration::from_micros(1500)), "1.5");
    }
}
