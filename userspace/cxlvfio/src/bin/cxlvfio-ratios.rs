// SPDX-License-Identifier: GPL-2.0

//! `cxlvfio-ratios`: the measurements `make bench` sets side by side, taken on one device
//! through VFIO and printed as `bench: PHASE.KEY VALUE` lines (`scripts/bench.sh` pairs the
//! phases into ratios). Measures; asserts nothing about time.
//!
//! Every phase times, on a fresh open each time:
//!
//! - `open_ms` / `close_ms`: median of [`OPEN_CYCLES`] opens and closes;
//! - `reset_ms`: median `VFIO_DEVICE_RESET` round trip ([`RESETS`] of them);
//! - `config_pread_us`: median 4-byte `pread` of config space (the vendor ID);
//! - `comp_regs_pread_us`: median 4-byte `pread` of the COMP_REGS region (decoder 0 Control),
//!   when the device has one.
//!
//! With `--faults` (the device's DPA region mapped; the module loaded with `scrub_memory=0`,
//! so that faults are measured without scrubbing), for mappings whose address allows PUD,
//! only PMD, and only PTE entries (aligned to 1 GiB, skewed by 2 MiB, skewed by 4 KiB):
//! `faults_per_gib_{pud,pmd,pte}` (one read per 4 KiB page over [`FAULT_SPAN`] or the whole
//! region, scaled to a GiB) and the median and longest latency of a faulting read,
//! `fault_{median,max}_us_{pud,pmd,pte}`.
//!
//! With `--scrub` (scrubbing on): `scrub_chunk_ms`, the median first touch of a 2 MiB chunk
//! in a fresh open (a fault that scrubs it) over [`SCRUB_CHUNKS`] chunks, against
//! `touch_chunk_ms`, the median touch of the same chunks once scrubbed.

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cxlvfio::cli;
use cxlvfio::mmap::{thread_faults, Mapping, PAGE_SIZE};
use cxlvfio::uapi::{
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_REGION_SUBTYPE_CXL, VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
};
use cxlvfio::{open_device, AttachedDevice, Device, RegionInfo};

const USAGE: &str = "usage: cxlvfio-ratios [--device <BDF>] --phase NAME [--faults] [--scrub]\n\
\n\
Times open, close, VFIO_DEVICE_RESET, config-space and COMP_REGS preads of <BDF> (default:\n\
$CXL_BDF) through VFIO; --faults: faults per GiB and fault latency through PUD-, PMD- and\n\
PTE-sized mappings of the DPA region (load the module with scrub_memory=0); --scrub: the\n\
cost of a first touch that scrubs a 2 MiB chunk. Prints 'bench: PHASE.KEY VALUE' lines.";

const GIB: usize = 1 << 30;
const CHUNK: usize = 2 << 20;
const OPEN_CYCLES: usize = 20;
const RESETS: usize = 20;
const PREADS: usize = 2000;
/// Bytes touched page by page through a PTE-only mapping (each page is a fault).
const FAULT_SPAN: usize = 64 << 20;
const SCRUB_CHUNKS: usize = 8;
/// Offset of decoder 0 Control in the COMP_REGS region's HDM block (CXL 3.1 8.2.4.20).
const DECODER0_CTRL: u64 = 0x20;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Median of `n` timed runs of `op`.
fn timed(n: usize, mut op: impl FnMut() -> Result<(), String>) -> Result<Duration, String> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        op()?;
        v.push(start.elapsed());
    }
    Ok(median(&mut v))
}

struct Out<'a> {
    phase: &'a str,
}

impl Out<'_> {
    fn put(&self, key: &str, value: impl std::fmt::Display) {
        println!("bench: {}.{key} {value}", self.phase);
    }
}

fn open_close(bdf: &str, out: &Out<'_>) -> Result<(), String> {
    let (mut opens, mut closes) = (Vec::new(), Vec::new());
    for _ in 0..OPEN_CYCLES {
        let start = Instant::now();
        let dev = open_device(bdf).map_err(|e| format!("open: {e}"))?;
        opens.push(start.elapsed());
        let start = Instant::now();
        dev.close().map_err(|e| format!("close: {e}"))?;
        closes.push(start.elapsed());
    }
    out.put("open_ms", ms(median(&mut opens)));
    out.put("close_ms", ms(median(&mut closes)));
    Ok(())
}

fn registers(dev: &AttachedDevice, out: &Out<'_>) -> Result<(), String> {
    out.put(
        "reset_ms",
        ms(timed(RESETS, || {
            dev.reset().map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))
        })?),
    );
    let config = dev
        .region_info(VFIO_PCI_CONFIG_REGION_INDEX)
        .map_err(|e| format!("config region: {e}"))?;
    let mut word = [0u8; 4];
    let mut pread_at = |pos: u64| {
        timed(PREADS, || {
            dev.pread(&mut word, pos)
                .map(|_| ())
                .map_err(|e| format!("pread at {pos:#x}: {e}"))
        })
    };
    out.put("config_pread_us", us(pread_at(config.offset)?));
    if let Some(comp) = dev
        .cxl_region(VFIO_REGION_SUBTYPE_CXL_COMP_REGS)
        .map_err(|e| e.to_string())?
    {
        out.put(
            "comp_regs_pread_us",
            us(pread_at(
                comp.offset + comp_regs_hdm(dev, &comp)? + DECODER0_CTRL,
            )?),
        );
    }
    Ok(())
}

/// Offset of the HDM decoder block in the COMP_REGS region: the capability array's HDM entry.
fn comp_regs_hdm(dev: &Device, comp: &RegionInfo) -> Result<u64, String> {
    let mut head = [0u8; 4];
    dev.pread(&mut head, comp.offset)
        .map_err(|e| format!("COMP_REGS pread: {e}"))?;
    let entries = (u32::from_le_bytes(head) >> 24) as u64;
    for i in 1..=entries {
        let mut e = [0u8; 4];
        dev.pread(&mut e, comp.offset + 4 * i)
            .map_err(|e| format!("COMP_REGS pread: {e}"))?;
        let e = u32::from_le_bytes(e);
        // Capability ID 5: HDM Decoder Capability; the pointer is bits 31:20.
        if e & 0xffff == 5 {
            return Ok(u64::from(e >> 20));
        }
    }
    Err("no HDM decoder capability in COMP_REGS".into())
}

/// Faults and faulting-read latencies through a mapping of the DPA region from its start at
/// an address `skew` bytes past a GiB: with no skew the physical and virtual addresses agree
/// modulo 1 GiB (PUD entries possible), with 2 MiB only modulo 2 MiB (PMD), with 4 KiB never
/// beyond a page (PTE).
fn faults(
    dev: &Device,
    dpa: &RegionInfo,
    kind: &str,
    skew: usize,
    out: &Out<'_>,
) -> Result<(), String> {
    let size = usize::try_from(dpa.size).map_err(|_| "DPA region too large")?;
    let span = if skew == PAGE_SIZE {
        FAULT_SPAN.min(size)
    } else {
        size
    };
    let map = Mapping::shared_aligned(dev.as_fd(), dpa.offset, span, GIB, skew)
        .map_err(|e| format!("mmap ({kind}): {e}"))?;
    let mut latencies = Vec::new();
    let before = thread_faults().map_err(|e| format!("getrusage: {e}"))?;
    for off in (0..span).step_by(PAGE_SIZE) {
        let f0 = thread_faults().map_err(|e| format!("getrusage: {e}"))?;
        let start = Instant::now();
        std::hint::black_box(map.read_u64(off));
        let took = start.elapsed();
        if thread_faults().map_err(|e| format!("getrusage: {e}"))? != f0 {
            latencies.push(took);
        }
    }
    let n = thread_faults().map_err(|e| format!("getrusage: {e}"))? - before;
    out.put(
        &format!("faults_per_gib_{kind}"),
        format!("{:.0}", n as f64 * GIB as f64 / span as f64),
    );
    out.put(
        &format!("fault_median_us_{kind}"),
        us(median(&mut latencies)),
    );
    out.put(
        &format!("fault_max_us_{kind}"),
        us(latencies.iter().copied().max().unwrap_or_default()),
    );
    Ok(())
}

fn scrub(dev: &Device, dpa: &RegionInfo, out: &Out<'_>) -> Result<(), String> {
    let size = usize::try_from(dpa.size).map_err(|_| "DPA region too large")?;
    let map = Mapping::shared_aligned(dev.as_fd(), dpa.offset, size, CHUNK, 0)
        .map_err(|e| format!("mmap: {e}"))?;
    let chunks: Vec<usize> = (0..SCRUB_CHUNKS)
        .map(|i| i * CHUNK)
        .filter(|&o| o < size)
        .collect();
    let touch = |off: usize| {
        let start = Instant::now();
        std::hint::black_box(map.read_u64(off));
        start.elapsed()
    };
    let mut first: Vec<Duration> = chunks.iter().map(|&o| touch(o)).collect();
    // Again, through a new mapping: faults again, scrubs nothing.
    drop(map);
    let map = Mapping::shared_aligned(dev.as_fd(), dpa.offset, size, CHUNK, 0)
        .map_err(|e| format!("mmap: {e}"))?;
    let mut again: Vec<Duration> = chunks
        .iter()
        .map(|&o| {
            let start = Instant::now();
            std::hint::black_box(map.read_u64(o));
            start.elapsed()
        })
        .collect();
    out.put("scrub_chunk_ms", ms(median(&mut first)));
    out.put("touch_chunk_ms", ms(median(&mut again)));
    Ok(())
}

fn run(bdf: &str, phase: &str, with_faults: bool, with_scrub: bool) -> Result<(), String> {
    let out = Out { phase };
    open_close(bdf, &out)?;
    let dev = open_device(bdf).map_err(|e| format!("open: {e}"))?;
    registers(&dev, &out)?;
    let dpa = dev
        .cxl_region(VFIO_REGION_SUBTYPE_CXL)
        .map_err(|e| e.to_string())?;
    out.put("dpa_mib", dpa.as_ref().map_or(0, |r| r.size >> 20));
    if with_faults || with_scrub {
        let dpa = dpa.ok_or("no DPA region")?;
        if with_faults {
            for (kind, skew) in [("pud", 0), ("pmd", CHUNK), ("pte", PAGE_SIZE)] {
                faults(&dev, &dpa, kind, skew, &out)?;
            }
        }
        if with_scrub {
            scrub(&dev, &dpa, &out)?;
        }
    }
    dev.close().map_err(|e| format!("close: {e}"))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (mut phase, mut with_faults, mut with_scrub) = (None, false, false);
    let bdf = match cli::device_or_exit("cxlvfio-ratios", USAGE, &argv, |opt| {
        match opt.key {
            "--phase" => phase = Some(opt.value()?),
            "--faults" => with_faults = true,
            "--scrub" => with_scrub = true,
            _ => return Ok(false),
        }
        Ok(true)
    }) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let Some(phase) = phase else {
        eprintln!("cxlvfio-ratios: --phase is required\n{USAGE}");
        return ExitCode::from(2);
    };
    match run(&bdf, &phase, with_faults, with_scrub) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cxlvfio-ratios: error: {e}");
            ExitCode::FAILURE
        }
    }
}
