//! What the fuzzer's threads share: each device's facts, its gate and the per-thread state
//! behind it, the failures found so far and the op counts.

use std::collections::BTreeMap;
use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use cxlvfio::cxl::{dvsecs_of, find_dvsec, DVSEC_ID_CXL_DEVICE, DVSEC_VENDOR_CXL};
use cxlvfio::error::raw_os_error;
use cxlvfio::ktap::Ktap;
use cxlvfio::mmap::Mapping;
use cxlvfio::randops::hostaddr::{HostAddrs, Image};
use cxlvfio::randops::ops::WEIGHTS;
use cxlvfio::randops::ring::OpRing;
use cxlvfio::randops::shadow::{slice_of, DpaShadow};
use cxlvfio::uapi::{
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_NUM_REGIONS, VFIO_REGION_SUBTYPE_CXL,
    VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
};
use cxlvfio::{AttachedDevice, Device, IommuMode};

/// One region as the fuzzer addresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub index: u32,
    pub offset: u64,
    pub size: u64,
    pub flags: u32,
}

impl Region {
    /// The device-file position of `off` in the region (no bounds check: the fuzzer also
    /// aims past the end on purpose).
    pub fn pos(&self, off: u64) -> u64 {
        self.offset.wrapping_add(off)
    }
}

/// What the fuzzer learns about a device at each open.
#[derive(Debug, Clone)]
pub struct DevInfo {
    pub num_regions: u32,
    pub num_irqs: u32,
    pub has_reset: bool,
    /// Every region index below `num_regions` that answers GET_REGION_INFO.
    pub regions: Vec<Option<Region>>,
    /// Every IRQ index below `num_irqs` that answers GET_IRQ_INFO.
    pub irqs: Vec<bool>,
    pub config: Region,
    pub dpa: Region,
    pub comp: Region,
    /// The component BAR's region, and the register block's offset and size in it.
    pub comp_bar: Region,
    pub block_offset: u64,
    pub block_size: u64,
    /// Mappable areas of the component BAR (offset, size).
    pub sparse: Vec<(u64, u64)>,
    /// The CXL Device DVSEC (config offset, length), then every other CXL DVSEC.
    pub dvsec: (u64, usize),
    pub other_dvsecs: Vec<(u64, usize)>,
    pub pm_cap: Option<u64>,
}

fn region(dev: &Device, index: u32) -> Option<Region> {
    dev.region_info(index).ok().map(|r| Region {
        index,
        offset: r.offset,
        size: r.size,
        flags: r.flags,
    })
}

impl DevInfo {
    /// Queries an open device.
    pub fn query(dev: &Device) -> Result<DevInfo, String> {
        let info = dev.info().map_err(|e| e.to_string())?;
        let regions: Vec<Option<Region>> = (0..info.num_regions).map(|i| region(dev, i)).collect();
        let irqs = (0..info.num_irqs)
            .map(|i| dev.irq_info(i).is_ok())
            .collect();
        let find = |subtype: u32, what: &str| -> Result<(Region, cxlvfio::RegionInfo), String> {
            let r = dev
                .cxl_region(subtype)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no {what} region"))?;
            Ok((
                Region {
                    index: r.index,
                    offset: r.offset,
                    size: r.size,
                    flags: r.flags,
                },
                r,
            ))
        };
        let (dpa, _) = find(VFIO_REGION_SUBTYPE_CXL, "DPA")?;
        let (comp, comp_info) = find(VFIO_REGION_SUBTYPE_CXL_COMP_REGS, "COMP_REGS")?;
        let cap = comp_info
            .capabilities()
            .iter()
            .find_map(|c| c.cxl_comp_regs())
            .ok_or("COMP_REGS has no COMP_REGS capability")?;
        let comp_bar = regions
            .get(cap.bar_index as usize)
            .copied()
            .flatten()
            .ok_or_else(|| format!("no region for component BAR {}", cap.bar_index))?;
        let sparse = dev
            .region_info(cap.bar_index)
            .map_err(|e| e.to_string())?
            .capabilities()
            .iter()
            .find_map(|c| c.sparse_mmap_areas())
            .unwrap_or_default()
            .iter()
            .map(|a| (a.offset, a.size))
            .collect();
        let config = regions
            .get(VFIO_PCI_CONFIG_REGION_INDEX as usize)
            .copied()
            .flatten()
            .ok_or("no config region")?;
        let mut cfg = vec![0u8; config.size.min(4096) as usize];
        dev.read_region(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut cfg)
            .map_err(|e| e.to_string())?;
        let (pos, len) = find_dvsec(&cfg, DVSEC_VENDOR_CXL, DVSEC_ID_CXL_DEVICE)
            .ok_or("no CXL Device DVSEC in the VFIO config space")?;
        let other_dvsecs = dvsecs_of(&cfg, DVSEC_VENDOR_CXL)
            .into_iter()
            .filter(|&(p, _, _)| p != pos)
            .map(|(p, _, l)| (p as u64, l))
            .collect();
        Ok(DevInfo {
            num_regions: info.num_regions,
            num_irqs: info.num_irqs,
            has_reset: info.supports_reset(),
            regions,
            irqs,
            config,
            dpa,
            comp,
            comp_bar,
            block_offset: cap.block_offset,
            block_size: cap.block_size,
            sparse,
            dvsec: (pos as u64, len),
            other_dvsecs,
            pm_cap: dev.pm_cap().map_err(|e| e.to_string())?,
        })
    }

    /// Indices of the fixed regions other than config (BARs, ROM, VGA), valid or not.
    pub fn fixed_non_config() -> Vec<u32> {
        (0..VFIO_PCI_NUM_REGIONS)
            .filter(|&i| i != VFIO_PCI_CONFIG_REGION_INDEX)
            .collect()
    }
}

/// A mapping a thread holds.
#[derive(Debug)]
pub struct Map {
    pub kind: MapKind,
    pub map: Mapping,
}

/// What a mapping maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// The thread's DPA slice, from this offset in the slice.
    Dpa { rel: usize },
    /// The component BAR, from this offset in the BAR.
    Bar { off: u64 },
}

/// One thread's state on one device.
#[derive(Debug)]
pub struct ThreadDev {
    pub shadow: DpaShadow,
    /// The slice's offset in the DPA region.
    pub slice_off: u64,
    pub maps: Vec<Map>,
    /// Guest-like memory for DMA mappings, and which of its slots are mapped.
    pub dma_buf: Option<Mapping>,
    pub dma_mapped: Vec<bool>,
    pub comp_img: Image,
    pub bar_img: Image,
    pub dvsec_img: Image,
}

/// DMA slots per thread and their size.
pub const DMA_SLOTS: usize = 4;
pub const DMA_SLOT: usize = 512 << 10;

impl ThreadDev {
    pub fn new(info: &DevInfo, slice_off: u64, chunks: usize) -> Self {
        ThreadDev {
            shadow: DpaShadow::new(chunks),
            slice_off,
            maps: Vec::new(),
            dma_buf: None,
            dma_mapped: vec![false; DMA_SLOTS],
            comp_img: Image::new(info.comp.size as usize),
            bar_img: Image::new(info.block_size as usize),
            dvsec_img: Image::new(info.dvsec.1),
        }
    }

    /// After a (re)open: new register images, no mappings, nothing DMA-mapped.
    pub fn reset_for_open(&mut self, info: &DevInfo, scrub: Option<bool>) {
        self.maps.clear();
        self.dma_mapped.fill(false);
        self.comp_img = Image::new(info.comp.size as usize);
        self.bar_img = Image::new(info.block_size as usize);
        self.dvsec_img = Image::new(info.dvsec.1);
        self.shadow.on_open(scrub);
    }
}

/// The open device and everything that lives only as long as the open; behind the gate.
pub struct Core {
    pub dev: Option<AttachedDevice>,
    pub info: DevInfo,
    pub threads: Vec<Mutex<ThreadDev>>,
}

impl Core {
    pub fn dev(&self) -> Result<&AttachedDevice, String> {
        self.dev
            .as_ref()
            .ok_or_else(|| "the device is closed".into())
    }

    pub fn thread(&self, t: usize) -> MutexGuard<'_, ThreadDev> {
        self.threads[t].lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the invariants compare with: the device as the host saw it before the run.
#[derive(Debug, Clone)]
pub struct Start {
    pub hdm: Vec<u32>,
    pub dvsec_hw: Vec<u8>,
}

/// One device of the run.
pub struct DevShared {
    pub bdf: String,
    pub mode: IommuMode,
    pub gate: RwLock<Core>,
    pub start: Start,
    pub addrs: HostAddrs,
    /// The module's scrub_memory, if readable.
    pub scrub: Option<bool>,
}

impl DevShared {
    /// The slice of thread `t`.
    pub fn slice(info: &DevInfo, threads: usize, chunks: usize, t: usize) -> Result<u64, String> {
        slice_of(info.dpa.size, threads, chunks, t)
            .map(|(off, _)| off)
            .ok_or_else(|| {
                format!(
                    "the DPA region ({:#x} bytes) is too small for {threads} threads of {chunks} \
                     2 MiB chunks and a spare one",
                    info.dpa.size
                )
            })
    }
}

/// The invariant families, one KTAP test each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Every operation got a documented answer (a clean errno, never a crash or a hang).
    Ops,
    /// The real HDM decoders and CXL Device DVSEC are as at the start.
    Hardware,
    /// No host address in anything returned.
    HostAddr,
    /// DPA data reads back.
    Dpa,
    /// SIGBUS only where documented.
    Faults,
    /// Clean kernel log.
    Kmsg,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Ops,
        Family::Hardware,
        Family::HostAddr,
        Family::Dpa,
        Family::Faults,
        Family::Kmsg,
    ];

    pub fn test_name(self) -> &'static str {
        match self {
            Family::Ops => "ops_answer_clean_errnos",
            Family::Hardware => "real_hdm_and_dvsec_unchanged",
            Family::HostAddr => "no_host_address_returned",
            Family::Dpa => "dpa_reads_back_last_write",
            Family::Faults => "sigbus_only_when_documented",
            Family::Kmsg => "kernel_log_clean",
        }
    }

    /// Whether a failure stops the run: everything but an odd errno, after which the
    /// state is still known.
    pub fn fatal(self) -> bool {
        self != Family::Ops
    }
}

/// A broken expectation.
#[derive(Debug, Clone)]
pub struct Failure {
    pub family: Family,
    pub msg: String,
}

impl Failure {
    pub fn new(family: Family, msg: impl Into<String>) -> Self {
        Failure {
            family,
            msg: msg.into(),
        }
    }
}

impl From<&str> for Failure {
    fn from(msg: &str) -> Self {
        Failure::new(Family::Ops, msg)
    }
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Failure::new(Family::Ops, msg)
    }
}

/// Counts of one operation's outcomes.
#[derive(Debug, Default, Clone)]
pub struct OpCount {
    pub ok: u64,
    pub skipped: u64,
    pub failed: u64,
    pub errnos: BTreeMap<i32, u64>,
    /// Time spent in the operation (not waiting for its device's gate).
    pub time: Duration,
}

/// Counts per operation.
#[derive(Debug, Clone)]
pub struct Stats {
    pub ops: Vec<OpCount>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            ops: vec![OpCount::default(); WEIGHTS.len()],
        }
    }
}

impl Stats {
    pub fn merge(&mut self, other: &Stats) {
        for (a, b) in self.ops.iter_mut().zip(&other.ops) {
            a.ok += b.ok;
            a.skipped += b.skipped;
            a.failed += b.failed;
            a.time += b.time;
            for (e, n) in &b.errnos {
                *a.errnos.entry(*e).or_default() += n;
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.ops
            .iter()
            .map(|c| c.ok + c.skipped + c.failed + c.errnos.values().sum::<u64>())
            .sum()
    }

    /// One line per operation that ran.
    pub fn lines(&self) -> Vec<String> {
        WEIGHTS
            .iter()
            .zip(&self.ops)
            .filter(|(_, c)| c.ok + c.skipped + c.failed + c.errnos.len() as u64 > 0)
            .map(|(&(op, _), c)| {
                let errnos: Vec<String> = c
                    .errnos
                    .iter()
                    .map(|(e, n)| format!("{}={n}", errno_name(*e)))
                    .collect();
                format!(
                    "{:<20} ok={} errno[{}] skipped={} failed={} time={:.1}s",
                    op.name(),
                    c.ok,
                    errnos.join(" "),
                    c.skipped,
                    c.failed,
                    c.time.as_secs_f64()
                )
            })
            .collect()
    }
}

/// What an operation ended with, for the counts and the op log.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ok(String),
    Errno(i32),
    Skipped(String),
}

/// Everything the threads share.
pub struct Shared {
    pub devs: Vec<DevShared>,
    pub abort: AtomicBool,
    pub deadline: Option<Instant>,
    pub stopped_by_deadline: AtomicBool,
    pub failures: Mutex<BTreeMap<Family, Vec<String>>>,
    pub rings: Vec<Mutex<OpRing>>,
    pub out: Mutex<Ktap<Stdout>>,
    pub rings_dumped: AtomicBool,
    pub kmsg_mark: Option<u64>,
    pub threads: usize,
    pub chunks: usize,
    /// Held for read around every fork and for write by a reopen. A forked child inherits
    /// every open device file and every mapping of this process; while it lives, the old
    /// file of a device being reopened is not released, and vfio's cdev refuses the new
    /// bind with `EINVAL` (one open per device).
    pub forks: RwLock<()>,
}

/// Failure messages kept per family.
const MAX_MESSAGES: usize = 20;

impl Shared {
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    pub fn diag(&self, msg: &str) {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).diag(msg);
    }

    /// Records a failure; a fatal one stops the run. The first failure of the run prints
    /// every thread's last operations.
    pub fn fail(&self, f: Failure, thread: Option<usize>) {
        let who = thread.map_or("main".to_string(), |t| format!("thread {t}"));
        let msg = format!("{who}: {}", f.msg);
        {
            let mut all = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let v = all.entry(f.family).or_default();
            if v.len() < MAX_MESSAGES {
                v.push(msg.clone());
            }
        }
        self.diag(&format!("FAILURE ({}): {msg}", f.family.test_name()));
        if f.family.fatal() {
            self.abort.store(true, Ordering::SeqCst);
        }
        if !self.rings_dumped.swap(true, Ordering::SeqCst) {
            self.dump_rings();
        }
    }

    /// Prints every thread's op ring.
    pub fn dump_rings(&self) {
        for (t, ring) in self.rings.iter().enumerate() {
            let lines = ring.lock().unwrap_or_else(|e| e.into_inner()).lines();
            self.diag(&format!("last {} ops of thread {t}:", lines.len()));
            for l in lines {
                self.diag(&format!("  {l}"));
            }
        }
    }

    pub fn failures_of(&self, family: Family) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&family)
            .cloned()
            .unwrap_or_default()
    }
}

const ERRNO_NAMES: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::EBADF, "EBADF"),
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
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::EOVERFLOW, "EOVERFLOW"),
];

pub fn errno_name(e: i32) -> String {
    ERRNO_NAMES
        .iter()
        .find(|(n, _)| *n == e)
        .map_or_else(|| format!("errno {e}"), |(_, s)| s.to_string())
}

/// The errno of an error, or `None` for one without (a library-side refusal).
pub fn errno(e: &io::Error) -> Option<i32> {
    raw_os_error(e)
}

/// Errnos that are a clean refusal of a bad request, for operations whose exact errno the
/// kernel does not document.
pub const CLEAN: &[i32] = &[
    libc::EINVAL,
    libc::EFAULT,
    libc::EIO,
    libc::ENOTTY,
    libc::ENOSPC,
    libc::EEXIST,
    libc::ENOENT,
    libc::EBUSY,
    libc::ENODEV,
    libc::EPERM,
    libc::EACCES,
    libc::EOPNOTSUPP,
    libc::E2BIG,
    libc::EOVERFLOW,
    libc::ENXIO,
    libc::ERANGE,
    libc::ENOMEM,
];

/// Checks a result against the errnos allowed: `Ok(Ok(v))`, `Ok(Err(errno))` when allowed,
/// else a message naming `what` and what happened.
pub fn expect<T>(r: io::Result<T>, allowed: &[i32], what: &str) -> Result<Result<T, i32>, String> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) => match errno(&e) {
            Some(n) if allowed.contains(&n) => Ok(Err(n)),
            Some(n) => Err(format!(
                "{what}: {} ({e}), expected {}",
                errno_name(n),
                names(allowed)
            )),
            None => Err(format!("{what}: {e}")),
        },
    }
}

/// `a|b|c`, or "success" for none.
pub fn names(errnos: &[i32]) -> String {
    if errnos.is_empty() {
        return "success".into();
    }
    errnos
        .iter()
        .map(|&e| errno_name(e))
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxlvfio::randops::ops::Op;

    #[test]
    fn expect_sorts_errnos() {
        let einval = || io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(expect(Ok(3), &[], "x").unwrap(), Ok(3));
        assert_eq!(
            expect::<()>(Err(einval()), &[libc::EINVAL], "x").unwrap(),
            Err(libc::EINVAL)
        );
        let e = expect::<()>(Err(einval()), &[libc::EIO, libc::EFAULT], "pread").unwrap_err();
        assert!(e.starts_with("pread: EINVAL"), "{e}");
        assert!(e.ends_with("expected EIO|EFAULT"), "{e}");
        let e = expect::<()>(Err(io::Error::other("no errno")), &[], "y").unwrap_err();
        assert_eq!(e, "y: no errno");
        assert_eq!(names(&[]), "success");
        assert_eq!(errno_name(9999), "errno 9999");
    }

    #[test]
    fn stats_merge_and_lines() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a.ops[Op::Reset.index()].ok = 2;
        b.ops[Op::Reset.index()].ok = 1;
        *b.ops[Op::DpaEdge.index()]
            .errnos
            .entry(libc::EINVAL)
            .or_default() += 4;
        b.ops[Op::Touch.index()].skipped = 1;
        a.merge(&b);
        assert_eq!(a.total(), 8);
        let lines = a.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("dpa_edge") && l.contains("EINVAL=4")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("reset") && l.contains("ok=3")));
    }

    #[test]
    fn families_and_failures() {
        assert_eq!(Family::ALL.len(), 6);
        assert!(!Family::Ops.fatal());
        assert!(Family::Dpa.fatal() && Family::HostAddr.fatal());
        let f: Failure = "x".into();
        assert_eq!(f.family, Family::Ops);
        let r = Region {
            index: 9,
            offset: 9 << 40,
            size: 0x1000,
            flags: 0,
        };
        assert_eq!(r.pos(0x10), (9 << 40) + 0x10);
    }
}
