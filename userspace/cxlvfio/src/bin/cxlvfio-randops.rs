// SPDX-License-Identifier: GPL-2.0

//! `cxlvfio-randops`: a seeded random-operation fuzzer for `cxl-vfio-pci`, run inside the
//! test VM (issue 14, item 3).
//!
//! Opens each device like a VMM and, from several threads, mixes every ioctl the project
//! uses (with valid and corrupted arguments), reads and writes of random sizes and offsets on
//! every region, mmaps, munmaps and faults, resets, config writes (PM, the CXL DVSECs, the
//! Command register), the low-power features and DMA mappings. The operation table and its
//! weights are in [`cxlvfio::randops::ops`]; `--list-ops` prints it.
//!
//! Invariants, checked as it goes (each op's own expectations, and a full check after every
//! `--check-every` ops of a thread, after a reopen and at the end), one KTAP test each:
//!
//! - every operation gets a documented answer: the success or errno the kernel documents, a
//!   clean errno for corrupted requests, never a crash or a hang;
//! - the real HDM decoders and the CXL Device DVSEC, read from the host side (sysfs
//!   `resource<N>` and `config`), equal their values before the run, except for the
//!   documented actions ([`cxlvfio::randops::invariants`]); also after the devices are closed;
//! - no host address (the DPA range's, the component BAR's and its register block's) in any
//!   info reply, COMP_REGS, the component block through the BAR, or the DVSEC
//!   ([`cxlvfio::randops::hostaddr`]);
//! - device memory reads back the last write, except where the scrub applies
//!   ([`cxlvfio::randops::shadow`] has the rules);
//! - SIGBUS only in the documented states (user low power, D3hot, memory decode off);
//! - no WARN, BUG, Oops, lockdep, KASAN or UBSAN line in the kernel log since the start.
//!
//! On the first failure every thread's last operations are printed (`--ring`). The seed is
//! printed first (`# seed N`), with the command line that replays the run.
//!
//! The device is opened in the IOMMU mode `CXLVFIO_IOMMU` names, see [`cxlvfio::iommu`].

#[path = "cxlvfio-randops/check.rs"]
mod check;
#[path = "cxlvfio-randops/ops.rs"]
mod ops;
#[path = "cxlvfio-randops/state.rs"]
mod state;
#[path = "cxlvfio-randops/windows.rs"]
mod windows;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use cxlvfio::iommu::requested_mode;
use cxlvfio::kmsg;
use cxlvfio::ktap::Ktap;
use cxlvfio::pci;
use cxlvfio::randops::cli::{self, Options, Parsed};
use cxlvfio::randops::hostaddr::{HostAddr, HostAddrs};
use cxlvfio::randops::ops::{describe_table, pick};
use cxlvfio::randops::ring::OpRing;
use cxlvfio::randops::rng::{seed_from_time, Rng};
use cxlvfio::sigbus;
use cxlvfio::{open_device_with, IommuMode};

use state::{
    errno_name, Core, DevInfo, DevShared, Failure, Family, Outcome, Shared, Start, Stats, ThreadDev,
};

/// Tests in the report: one per invariant family, then the op counts.
const PLAN: usize = Family::ALL.len() + 1;
const SCRUB_PARAM: &str = "/sys/module/cxl_vfio_pci/parameters/scrub_memory";

/// The module's `scrub_memory`, `None` if it cannot be read.
fn scrub_setting() -> Option<bool> {
    let v = std::fs::read_to_string(SCRUB_PARAM).ok()?;
    match v.trim() {
        "Y" | "y" | "1" => Some(true),
        "N" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Takes the host's view of `bdf` before the run, opens it and prepares every thread's state.
fn setup_device(
    bdf: &str,
    o: &Options,
    scrub: Option<bool>,
) -> Result<(DevShared, String), String> {
    let mode: IommuMode = requested_mode(bdf).map_err(|e| e.to_string())?;
    let (hdm, dvsec_hw, dpa_base, _) =
        check::hardware_view(bdf).map_err(|e| format!("the host view before the run: {e}"))?;
    let dev = open_device_with(bdf, mode).map_err(|e| format!("open: {e}"))?;
    // The reset at open puts the decoders the driver does not restore (all but decoder 0) in
    // their reset state, which need not be how the device came up (QEMU's type-3 sets the
    // Target Device Type bit at realize and clears it at reset): they are compared with their
    // state after the open, the global registers and decoder 0 with the state before it.
    let (hdm_opened, _, _, _) =
        check::hardware_view(bdf).map_err(|e| format!("the host view after the open: {e}"))?;
    let hdm = cxlvfio::randops::invariants::baseline_after_open(&hdm, &hdm_opened);
    let info = DevInfo::query(&dev)?;
    let bar = pci::resource(bdf, info.comp_bar.index as usize).map_err(|e| e.to_string())?;
    let addrs = HostAddrs::new(&[
        HostAddr {
            name: "DPA range base (decoder 0)".into(),
            addr: dpa_base,
        },
        HostAddr {
            name: format!("component BAR{}", info.comp_bar.index),
            addr: bar.start,
        },
        HostAddr {
            name: "component register block".into(),
            addr: bar.start + info.block_offset,
        },
    ]);
    let mut threads = Vec::new();
    for t in 0..o.threads {
        let slice = DevShared::slice(&info, o.threads, o.dpa_chunks, t)?;
        let mut td = ThreadDev::new(&info, slice, o.dpa_chunks);
        td.reset_for_open(&info, scrub);
        threads.push(Mutex::new(td));
    }
    let summary = format!(
        "{bdf}: {} via {}; DPA {:#x} bytes at host {dpa_base:#x} (region {}), COMP_REGS {:#x} \
         bytes (region {}), component block at BAR{} +{:#x} (host {:#x}), {} sparse areas, \
         CXL DVSEC at {:#x}, PM capability {}, reset {}",
        mode,
        dev.node().display(),
        info.dpa.size,
        info.dpa.index,
        info.comp.size,
        info.comp.index,
        info.comp_bar.index,
        info.block_offset,
        bar.start + info.block_offset,
        info.sparse.len(),
        info.dvsec.0,
        info.pm_cap.map_or("none".into(), |p| format!("at {p:#x}")),
        if info.has_reset { "yes" } else { "no" },
    );
    let mut summary = summary;
    if !addrs.skipped().is_empty() {
        summary.push_str(&format!(
            "; host addresses too common to look for: {}",
            addrs.skipped().join(", ")
        ));
    }
    Ok((
        DevShared {
            bdf: bdf.to_string(),
            mode,
            gate: RwLock::new(Core {
                dev: Some(dev),
                info,
                threads,
            }),
            start: Start { hdm, dvsec_hw },
            addrs,
            scrub,
        },
        summary,
    ))
}

/// Runs the full check on every device (each with its gate held for write).
fn check_all(shared: &Shared, thread: Option<usize>, when: &str) {
    for ds in &shared.devs {
        let mut core = ds.gate.write().unwrap_or_else(|e| e.into_inner());
        for f in check::check_device(shared, ds, &mut core, when) {
            shared.fail(f, thread);
        }
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Ok(s) if s.is_empty() => "ok".into(),
        Outcome::Ok(s) => format!("ok {s}"),
        Outcome::Errno(e) => errno_name(*e),
        Outcome::Skipped(s) => format!("skipped: {s}"),
    }
}

/// One thread: its share of each device's ops, in an order its own stream decides.
fn thread_main(shared: &Shared, o: &Options, t: usize) -> Stats {
    let mut rng = Rng::stream(o.seed, t as u64);
    let mut stats = Stats::default();
    let threads = o.threads as u64;
    let share = o.ops / threads + u64::from((t as u64) < o.ops % threads);
    let mut left = vec![share; shared.devs.len()];
    let total = share * shared.devs.len() as u64;
    let mut done = 0u64;
    while left.iter().any(|&n| n > 0) {
        if shared.aborted() {
            break;
        }
        if shared.deadline.is_some_and(|d| Instant::now() >= d) {
            shared.stopped_by_deadline.store(true, Ordering::SeqCst);
            break;
        }
        let candidates: Vec<usize> = (0..left.len()).filter(|&d| left[d] > 0).collect();
        let d = *rng.pick(&candidates);
        let ds = &shared.devs[d];
        let op = pick(&mut rng);
        left[d] -= 1;
        done += 1;
        // Time in the op itself, not waiting for its device's gate.
        let started;
        let result = if op.exclusive() {
            let mut core = ds.gate.write().unwrap_or_else(|e| e.into_inner());
            started = Instant::now();
            let mut x = windows::Xcx {
                shared,
                ds,
                core: &mut core,
                rng: &mut rng,
                t,
            };
            let r = windows::run(op, &mut x);
            if op == cxlvfio::randops::ops::Op::Reopen && r.is_ok() {
                for f in check::check_device(shared, ds, &mut core, "after a reopen") {
                    shared.fail(f, Some(t));
                }
            }
            r
        } else {
            let core = ds.gate.read().unwrap_or_else(|e| e.into_inner());
            started = Instant::now();
            let mut td = core.thread(t);
            let mut cx = ops::Cx {
                shared,
                ds,
                core: &core,
                td: &mut td,
                rng: &mut rng,
                t,
            };
            ops::run(op, &mut cx)
        };
        let count = &mut stats.ops[op.index()];
        count.time += started.elapsed();
        let note = match &result {
            Ok(out) => {
                match out {
                    Outcome::Ok(_) => count.ok += 1,
                    Outcome::Errno(e) => *count.errnos.entry(*e).or_default() += 1,
                    Outcome::Skipped(_) => count.skipped += 1,
                }
                describe(out)
            }
            Err(f) => {
                count.failed += 1;
                format!("FAILED: {}", f.msg)
            }
        };
        shared.rings[t]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .amend(&format!(" -> {note}"));
        if let Err(f) = result {
            shared.fail(f, Some(t));
        }
        if done.is_multiple_of(o.check_every) && !shared.aborted() {
            shared.rings[t]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("invariant check after {done} ops"));
            check_all(shared, Some(t), &format!("thread {t} after {done} ops"));
        }
        if t == 0 && total >= 10 && done.is_multiple_of(total.div_ceil(10)) {
            shared.diag(&format!("progress: thread 0 did {done} of {total} ops"));
        }
    }
    stats
}

/// Closes every device, then checks that each is left as firmware configured it.
fn close_all(shared: &Shared) {
    for ds in &shared.devs {
        let mut core = ds.gate.write().unwrap_or_else(|e| e.into_inner());
        for m in core.threads.iter_mut() {
            let td = m.get_mut().unwrap_or_else(|e| e.into_inner());
            td.maps.clear();
        }
        if let Some(dev) = core.dev.take() {
            if let Err(e) = dev.close() {
                shared.fail(
                    Failure::new(Family::Ops, format!("{}: close: {e}", ds.bdf)),
                    None,
                );
            }
        }
        if let Err(f) = check::check_hardware(ds, &format!("{} after the close", ds.bdf)) {
            shared.fail(f, None);
        }
    }
}

fn report(shared: &Shared, o: &Options, stats: &Stats, elapsed: Duration) -> bool {
    let mut failed = false;
    for fam in Family::ALL {
        let msgs = shared.failures_of(fam);
        let mut out = shared.out.lock().unwrap_or_else(|e| e.into_inner());
        if msgs.is_empty() {
            out.ok(fam.test_name());
        } else {
            failed = true;
            for m in &msgs[1..] {
                out.diag(m);
            }
            out.not_ok(fam.test_name(), &msgs[0]);
        }
    }
    let done = stats.total();
    let wanted = o.ops * shared.devs.len() as u64;
    let mut out = shared.out.lock().unwrap_or_else(|e| e.into_inner());
    for l in stats.lines() {
        out.diag(&l);
    }
    out.diag(&format!(
        "{done} ops on {} device(s) in {:.1} s, {} threads, seed {}",
        shared.devs.len(),
        elapsed.as_secs_f64(),
        o.threads,
        o.seed
    ));
    if done == wanted {
        out.ok("ops_completed");
    } else if shared.stopped_by_deadline.load(Ordering::SeqCst) && !shared.aborted() {
        out.diag(&format!(
            "stopped by --max-seconds {} after {done} of {wanted} ops",
            o.max_seconds
        ));
        out.ok("ops_completed");
    } else {
        failed = true;
        out.not_ok(
            "ops_completed",
            &format!("{done} of {wanted} ops: the run stopped at a failure"),
        );
    }
    !failed
}

fn run(o: Options) -> bool {
    let mut ktap = Ktap::stdout(PLAN);
    ktap.diag(&format!("seed {}", o.seed));
    ktap.diag(&format!("replay: {}", cli::replay_line(&o)));
    if o.threads > 1 {
        ktap.diag("threads interleave as the scheduler decides: replay with --threads 1 for an exact replay");
    }
    let fail_all = |mut ktap: Ktap<std::io::Stdout>, why: &str| {
        for fam in Family::ALL {
            ktap.not_ok(fam.test_name(), why);
        }
        ktap.not_ok("ops_completed", why);
        false
    };
    if let Err(e) = sigbus::install() {
        return fail_all(ktap, &format!("SIGBUS handler: {e}"));
    }
    let kmsg_mark = match kmsg::log_mark() {
        Ok(m) => Some(m),
        Err(e) => {
            ktap.diag(&format!("kernel log: {e}"));
            None
        }
    };
    let scrub = scrub_setting();
    ktap.diag(&format!(
        "scrub_memory: {}",
        scrub.map_or("unknown (chunks adopted on first touch)", |s| if s {
            "on"
        } else {
            "off"
        })
    ));
    let mut devs = Vec::new();
    for bdf in &o.devices {
        match setup_device(bdf, &o, scrub) {
            Ok((ds, summary)) => {
                ktap.diag(&summary);
                devs.push(ds);
            }
            Err(e) => return fail_all(ktap, &format!("setup of {bdf}: {e}")),
        }
    }
    let shared = Shared {
        devs,
        abort: AtomicBool::new(false),
        deadline: (o.max_seconds > 0).then(|| Instant::now() + Duration::from_secs(o.max_seconds)),
        stopped_by_deadline: AtomicBool::new(false),
        failures: Mutex::new(BTreeMap::new()),
        rings: (0..o.threads)
            .map(|_| Mutex::new(OpRing::new(o.ring)))
            .collect(),
        out: Mutex::new(ktap),
        rings_dumped: AtomicBool::new(false),
        kmsg_mark,
        threads: o.threads,
        chunks: o.dpa_chunks,
        forks: RwLock::new(()),
    };
    let started = Instant::now();
    check_all(&shared, None, "at the start");
    let mut stats = Stats::default();
    if !shared.aborted() {
        let per_thread: Vec<Stats> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..o.threads)
                .map(|t| {
                    let (shared, o) = (&shared, &o);
                    s.spawn(move || thread_main(shared, o, t))
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(t, h)| {
                    h.join().unwrap_or_else(|_| {
                        shared.fail(Failure::new(Family::Ops, "the thread panicked"), Some(t));
                        Stats::default()
                    })
                })
                .collect()
        });
        for s in &per_thread {
            stats.merge(s);
        }
        if !shared.aborted() {
            check_all(&shared, None, "at the end");
        }
    }
    let elapsed = started.elapsed();
    close_all(&shared);
    for f in check::check_process(&shared, "after the close") {
        shared.fail(f, None);
    }
    if shared.kmsg_mark.is_none() {
        shared.fail(
            Failure::new(
                Family::Kmsg,
                "the kernel log could not be read at the start",
            ),
            None,
        );
    }
    let ok = report(&shared, &o, &stats, elapsed);
    let ktap = shared.out.into_inner().unwrap_or_else(|e| e.into_inner());
    ktap.finish();
    ok
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match cli::parse(&args, std::env::var("CXL_BDF").ok(), seed_from_time()) {
        Ok(Parsed::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(o)) => o,
        Err(e) => {
            eprintln!("cxlvfio-randops: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if o.list_ops {
        print!("{}", describe_table());
        return ExitCode::SUCCESS;
    }
    if run(o) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
