// SPDX-License-Identifier: GPL-2.0

//! `cxlvfio-lifecycle`: open/close cycles of a device through VFIO, timed, with a mapping of
//! the DPA region and a few faults in each, and the data checks that must hold across them.
//!
//! Each cycle opens the device (in the IOMMU mode `CXLVFIO_IOMMU` names), maps the DPA region
//! (if the device has one), touches one page in each of three 2 MiB chunks (a fault each),
//! checks what it reads there and writes a value tagged with the cycle, then unmaps and closes.
//! What a touched page must read:
//!
//! - with scrubbing on (the default): zero, whatever an earlier open wrote (each open's first
//!   touch of a chunk scrubs it);
//! - with `--expect-no-scrub` (the module loaded with `scrub_memory=0`): the value the previous
//!   cycle wrote there.
//!
//! Prints KTAP: the cycles (every data check), the kernel log, and `# lifecycle:` lines with
//! the median and longest open and close (times; never asserted).
//!
//! ```text
//! cxlvfio-lifecycle [--device <BDF>] [--cycles N] [--expect-no-scrub] [--label NAME]
//! ```

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cxlvfio::cli;
use cxlvfio::mmap::{thread_faults, Mapping};
use cxlvfio::uapi::VFIO_REGION_SUBTYPE_CXL;
use cxlvfio::{kmsg, ktap::Ktap, open_device};

const USAGE: &str =
    "usage: cxlvfio-lifecycle [--device <BDF>] [--cycles N] [--expect-no-scrub] [--label NAME]\n\
\n\
Opens and closes <BDF> (default: $CXL_BDF) N times (default 100) through VFIO; in each\n\
cycle maps the DPA region, if there is one, and touches three 2 MiB chunks of it. Checks\n\
what each touch reads (zero: every open scrubs; with --expect-no-scrub, the previous\n\
cycle's value) and the kernel log; prints the open and close times (median, longest)\n\
as '# lifecycle: NAME ...' lines (NAME: --label, default the BDF). Prints KTAP.";

/// Size of a scrub chunk and of a PMD mapping.
const CHUNK: usize = 2 << 20;
/// The chunks each cycle touches (indexes; clamped to the region).
const TOUCHED_CHUNKS: [usize; 3] = [0, 1, 7];
/// Offset of the touched page in its chunk: not the chunk's first page.
const PAGE_IN_CHUNK: usize = 0x3000;

struct Args {
    bdf: String,
    cycles: u32,
    expect_no_scrub: bool,
    label: Option<String>,
}

/// The arguments, or the exit code when there is nothing to run (help, a bad argument).
fn parse_args() -> Result<Args, ExitCode> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut cycles = 100u32;
    let mut expect_no_scrub = false;
    let mut label = None;
    let bdf = cli::device_or_exit("cxlvfio-lifecycle", USAGE, &argv, |opt| {
        match opt.key {
            "--cycles" => {
                let v = opt.value()?;
                cycles = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("bad --cycles {v:?}"))?;
            }
            "--expect-no-scrub" => expect_no_scrub = true,
            "--label" => label = Some(opt.value()?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Args {
        bdf,
        cycles,
        expect_no_scrub,
        label,
    })
}

/// The value cycle `cycle` writes at touched chunk `chunk`.
fn tag(cycle: u32, chunk: usize) -> u64 {
    0xc7c1_e000_0000_0000 | (u64::from(cycle) << 8) | chunk as u64
}

/// Latencies of one kind of operation.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }

    fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// What the cycles measured.
#[derive(Default)]
struct Totals {
    open: Samples,
    close: Samples,
    faults: u64,
    checks: u64,
    dpa_size: Option<u64>,
}

/// One cycle: open, map, touch, check, write, unmap, close.
fn cycle(args: &Args, n: u32, totals: &mut Totals) -> Result<(), String> {
    let start = Instant::now();
    let dev = open_device(&args.bdf).map_err(|e| format!("cycle {n}: open: {e}"))?;
    totals.open.0.push(start.elapsed());
    if let Some(dpa) = dev
        .cxl_region(VFIO_REGION_SUBTYPE_CXL)
        .map_err(|e| format!("cycle {n}: {e}"))?
    {
        totals.dpa_size = Some(dpa.size);
        let len = usize::try_from(dpa.size).map_err(|_| "DPA region too large")?;
        let map = Mapping::shared_aligned(dev.as_fd(), dpa.offset, len, CHUNK, 0)
            .map_err(|e| format!("cycle {n}: mmap of the DPA region: {e}"))?;
        let before = thread_faults().map_err(|e| format!("getrusage: {e}"))?;
        for (i, &chunk) in TOUCHED_CHUNKS.iter().enumerate() {
            let off = (chunk * CHUNK).min(len - CHUNK) + PAGE_IN_CHUNK;
            let got = map.read_u64(off);
            let want = if args.expect_no_scrub && n > 0 {
                tag(n - 1, i)
            } else {
                0
            };
            // Without scrubbing, the first cycle finds whatever an earlier program left.
            if (n > 0 || !args.expect_no_scrub) && got != want {
                return Err(format!(
                    "cycle {n}: DPA offset {off:#x} read {got:#x}, expected {want:#x}"
                ));
            }
            map.write_u64(off, tag(n, i));
            let back = map.read_u64(off);
            if back != tag(n, i) {
                return Err(format!(
                    "cycle {n}: DPA offset {off:#x} read back {back:#x} after writing {:#x}",
                    tag(n, i)
                ));
            }
            totals.checks += 2;
        }
        totals.faults += thread_faults().map_err(|e| format!("getrusage: {e}"))? - before;
        drop(map);
    }
    let start = Instant::now();
    dev.close().map_err(|e| format!("cycle {n}: close: {e}"))?;
    totals.close.0.push(start.elapsed());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let label = args.label.clone().unwrap_or_else(|| args.bdf.clone());
    let mut k = Ktap::stdout(2);
    let mark = kmsg::log_mark();

    let mut totals = Totals::default();
    let started = Instant::now();
    let result = (0..args.cycles).try_for_each(|n| cycle(&args, n, &mut totals));
    let elapsed = started.elapsed();
    let name = "open_close_cycles";
    match result {
        Ok(()) => {
            let dpa = totals
                .dpa_size
                .map_or("none".to_string(), |s| format!("{} MiB", s >> 20));
            k.diag(&format!(
                "lifecycle: {label} cycles {} in {:.1} s, DPA region {dpa}, faults {}, data checks {}",
                args.cycles,
                elapsed.as_secs_f64(),
                totals.faults,
                totals.checks
            ));
            k.diag(&format!(
                "lifecycle: {label} open_median_ms {} open_max_ms {} close_median_ms {} close_max_ms {}",
                ms(totals.open.median()),
                ms(totals.open.max()),
                ms(totals.close.median()),
                ms(totals.close.max())
            ));
            k.ok(name)
        }
        Err(e) => k.not_ok(name, &e),
    }

    k.kernel_log_clean(mark);
    let ok = k.all_passed();
    k.finish();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
