// SPDX-License-Identifier: GPL-2.0

//! How long a first touch of the DPA region holds up the device's other users.
//!
//! The first access to device memory in an open scrubs it (zeroes it) before it is mapped. A
//! huge fault covers up to 1 GiB: the question is how much of that work one fault does while it
//! holds the locks that resets, power changes and every other access need. Measured in one run,
//! on a fresh open (nothing scrubbed yet), through a mapping aligned so that the kernel can use
//! its largest entries:
//!
//! - `first-touch alone`: one read at the start of the mapping (its faults scrub up to a whole
//!   huge block) and the faults the mm core counted for it, with nothing else running;
//! - `first-touch`: the same on a new open while another thread `pread`s an already scrubbed
//!   page every millisecond (it needs the same locks a fault takes): the longest `pread`;
//! - `reset`: the longest `VFIO_DEVICE_RESET` while another thread first-touches a fresh
//!   mapping, against the same reset on an idle device (a ratio from one run).
//!
//! Prints `bench: name value` lines and exits 0; measures, asserts nothing about time.
//!
//! The device is opened in the IOMMU mode `CXLVFIO_IOMMU` names (`noiommu`, `type1`,
//! `iommufd`; unset or `auto`: the no-IOMMU group if there is one, else type1), see
//! [`cxlvfio::iommu`].

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cxlvfio::cli;
use cxlvfio::mmap::{thread_faults, Mapping, PAGE_SIZE};
use cxlvfio::uapi::VFIO_REGION_SUBTYPE_CXL;
use cxlvfio::{open_device, AttachedDevice, Device, RegionInfo};

const USAGE: &str = "usage: cxlvfio-bench [--device <BDF>]\n\
\n\
Measures how long a first touch of the DPA region of cxl-vfio-pci on <BDF> (default:\n\
$CXL_BDF) holds up other users of the device (see the source for what is measured).";

/// Largest mapping entry on x86-64: mappings are aligned to it.
const GIB: usize = 1 << 30;
/// Pause between two probes of the probing thread.
const PROBE_PAUSE: Duration = Duration::from_millis(1);
/// Resets timed on the idle device, for the baseline.
const IDLE_RESETS: u32 = 20;

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

fn dpa_region(dev: &Device) -> Result<RegionInfo, String> {
    dev.cxl_region(VFIO_REGION_SUBTYPE_CXL)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no DPA region".into())
}

/// An open device, its DPA region, and a page of it already scrubbed (the last one) for probes.
struct Open {
    fds: AttachedDevice,
    dpa: RegionInfo,
    probe_page: u64,
}

impl Open {
    fn new(bdf: &str) -> Result<Self, String> {
        let fds = open_device(bdf).map_err(|e| format!("open {bdf}: {e}"))?;
        let dpa = dpa_region(&fds)?;
        let probe_page = dpa.size - PAGE_SIZE as u64;
        let open = Self {
            fds,
            dpa,
            probe_page,
        };
        // Scrubs the probe page's chunk now, so that later probes only wait for locks.
        open.probe()?;
        Ok(open)
    }

    fn dev(&self) -> &Device {
        &self.fds
    }

    /// One `pread` of the probe page; returns how long it took.
    fn probe(&self) -> Result<Duration, String> {
        let mut page = vec![0u8; PAGE_SIZE];
        let start = Instant::now();
        self.dev()
            .pread(&mut page, self.dpa.offset + self.probe_page)
            .map_err(|e| format!("pread of the probe page: {e}"))?;
        Ok(start.elapsed())
    }

    fn map(&self) -> Result<Mapping, String> {
        let len = usize::try_from(self.dpa.size).map_err(|_| "DPA region too large")?;
        Mapping::shared_aligned(self.dev().as_fd(), self.dpa.offset, len, GIB, 0)
            .map_err(|e| format!("mmap of the DPA region: {e}"))
    }

    fn close(self) -> Result<(), String> {
        self.fds.close().map_err(|e| format!("close: {e}"))
    }
}

/// Runs `op` every [`PROBE_PAUSE`] on another thread while `touch` runs; returns what `touch`
/// returned and the latencies of `op`.
fn while_probing<T>(
    op: impl Fn() -> Result<Duration, String> + Sync,
    touch: impl FnOnce() -> Result<T, String>,
) -> Result<(T, Samples), String> {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let prober = s.spawn(|| {
            let mut samples = Samples::default();
            while !stop.load(Ordering::Relaxed) {
                samples.0.push(op()?);
                thread::sleep(PROBE_PAUSE);
            }
            Ok::<_, String>(samples)
        });
        // Lets the prober start before the touch.
        thread::sleep(10 * PROBE_PAUSE);
        let touched = touch();
        stop.store(true, Ordering::Relaxed);
        let samples = prober.join().map_err(|_| "the probing thread panicked")??;
        Ok((touched?, samples))
    })
}

/// One read at the start of `map`: its duration and the faults counted for it.
fn first_touch(map: &Mapping) -> Result<(Duration, u64), String> {
    let before = thread_faults().map_err(|e| format!("getrusage: {e}"))?;
    let start = Instant::now();
    std::hint::black_box(map.read_u64(0));
    let took = start.elapsed();
    let faults = thread_faults().map_err(|e| format!("getrusage: {e}"))? - before;
    Ok((took, faults))
}

fn timed_reset(dev: &Device) -> Result<Duration, String> {
    let start = Instant::now();
    dev.reset().map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))?;
    Ok(start.elapsed())
}

fn run(bdf: &str) -> Result<(), String> {
    // First touch alone.
    let open = Open::new(bdf)?;
    println!("bench: dpa_size_mib {}", open.dpa.size >> 20);
    let map = open.map()?;
    let (took, faults) = first_touch(&map)?;
    println!("bench: first_touch_alone_ms {}", ms(took));
    println!("bench: first_touch_alone_faults {faults}");
    drop(map);
    open.close()?;

    // First touch, probed by preads.
    let open = Open::new(bdf)?;
    let map = open.map()?;
    let ((took, faults), probes) = while_probing(|| open.probe(), || first_touch(&map))?;
    println!("bench: first_touch_ms {}", ms(took));
    println!("bench: first_touch_faults {faults}");
    println!("bench: pread_during_touch_max_ms {}", ms(probes.max()));
    println!(
        "bench: pread_during_touch_median_ms {}",
        ms(probes.median())
    );
    println!("bench: pread_probes {}", probes.0.len());
    drop(map);
    open.close()?;

    // Resets: idle, then during a first touch of a fresh open.
    let open = Open::new(bdf)?;
    let mut idle = Samples::default();
    for _ in 0..IDLE_RESETS {
        idle.0.push(timed_reset(open.dev())?);
    }
    let map = open.map()?;
    let ((took, _), resets) = while_probing(|| timed_reset(open.dev()), || first_touch(&map))?;
    println!("bench: reset_idle_median_ms {}", ms(idle.median()));
    println!("bench: reset_during_touch_max_ms {}", ms(resets.max()));
    println!("bench: resets_during_touch {}", resets.0.len());
    println!("bench: first_touch_with_resets_ms {}", ms(took));
    let median = idle.median().as_secs_f64();
    if median > 0.0 {
        println!(
            "bench: reset_wait_ratio {:.1}",
            resets.max().as_secs_f64() / median
        );
    }
    drop(map);
    open.close()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The ids are not checked: any device the driver serves with a DPA region will do.
    let bdf = match cli::device_or_exit("cxlvfio-bench", USAGE, &args, |_| Ok(false)) {
        Ok(bdf) => bdf,
        Err(code) => return code,
    };
    match run(&bdf) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cxlvfio-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
