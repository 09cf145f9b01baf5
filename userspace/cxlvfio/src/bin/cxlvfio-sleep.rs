// SPDX-License-Identifier: GPL-2.0

//! System sleep and the DPA region: the driver's suspend callback revokes the user mappings of
//! the device memory, as before a reset, and its resume callback lets the next access restore
//! decoder 0 and map them again; a closed device is left as firmware configured it.
//!
//! The sleep is a suspend to RAM stopped after the devices' suspend callbacks
//! (`/sys/power/pm_test` = `devices`): every driver's `suspend` and `resume` run, the machine
//! does not power down. Prints KTAP; exit status 0 if every test passed.
//!
//! In the test VM (`--vm-console`): a virtme-ng guest's root file system is 9p over virtio,
//! whose driver cannot resume (virtio resets the device, 9p has no restore), so nothing may
//! touch a file system after the sleep. The program then locks itself in memory, writes its
//! KTAP lines to the kernel log as `VMRESULT: ` records (the console carries them to the host,
//! where `scripts/vm-run.sh` collects them), ends with `VMRESULT-EXIT: <status>`, and powers
//! the VM off.
//!
//! The device is opened in the IOMMU mode `CXLVFIO_IOMMU` names (`noiommu`, `type1`,
//! `iommufd`; unset or `auto`: the no-IOMMU group if there is one, else type1), see
//! [`cxlvfio::iommu`].

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use cxlvfio::cli;
use cxlvfio::cxl::{RealHdm, VFIO_REGION_TYPE_CXL};
use cxlvfio::kmsg::{self, KmsgLines};
use cxlvfio::ktap::Ktap;
use cxlvfio::mmap::{thread_faults, Mapping, PAGE_SIZE};
use cxlvfio::pattern;
use cxlvfio::pci;
use cxlvfio::sigbus;
use cxlvfio::uapi::{VFIO_PCI_NUM_REGIONS, VFIO_REGION_SUBTYPE_CXL};
use cxlvfio::{open_device, AttachedDevice, Device, RegionInfo};

const USAGE: &str = "usage: cxlvfio-sleep [--device <BDF>] [--also <BDF>]... [--vm-console]\n\
\n\
Tests cxl-vfio-pci's system sleep callbacks on <BDF> (default: $CXL_BDF) with a suspend\n\
to RAM that /sys/power/pm_test stops after the devices' callbacks. Prints KTAP.\n\
--also: one more device, open and mapped through the same sleep (the suspend runs once).\n\
--vm-console: for the test VM: results go to the kernel log, then the VM powers off.";

/// Bytes of the DPA region the tests write and touch.
const TOUCH_LEN: usize = 8 << 20;
/// Pattern seed.
const SEED: u64 = 0x5eed_51ee;
/// Longest a touch after the resume may take before the test says the region stayed revoked.
const TOUCH_TIMEOUT: Duration = Duration::from_secs(60);
const PM_TEST: &str = "/sys/power/pm_test";
const PM_STATE: &str = "/sys/power/state";
/// Seconds pm_test waits with the devices suspended (default 5).
const PM_TEST_DELAY: &str = "/sys/module/suspend/parameters/pm_test_delay";

fn dpa_region(dev: &Device) -> Result<RegionInfo, String> {
    let info = dev
        .info()
        .map_err(|e| format!("VFIO_DEVICE_GET_INFO: {e}"))?;
    (VFIO_PCI_NUM_REGIONS..info.num_regions)
        .filter_map(|index| dev.region_info(index).ok())
        .find(|r| {
            r.capabilities()
                .iter()
                .filter_map(|c| c.region_type())
                .any(|t| t == (VFIO_REGION_TYPE_CXL, VFIO_REGION_SUBTYPE_CXL))
        })
        .ok_or_else(|| "no DPA region".into())
}

/// Suspends to RAM as far as the devices' callbacks, then resumes.
fn pm_test_suspend() -> Result<(), String> {
    let write = |path: &str, value: &str| {
        fs::write(path, value).map_err(|e| format!("echo {value} > {path}: {e}"))
    };
    let states = fs::read_to_string(PM_STATE).map_err(|e| format!("{PM_STATE}: {e}"))?;
    if !states.split_whitespace().any(|s| s == "mem") {
        return Err(format!("{PM_STATE} offers no 'mem' ({})", states.trim()));
    }
    // Not fatal: an older kernel waits its default 5 s.
    let _ = write(PM_TEST_DELAY, "1");
    write(PM_TEST, "devices")?;
    let slept = write(PM_STATE, "mem");
    write(PM_TEST, "none")?;
    slept
}

/// Reads the first [`TOUCH_LEN`] bytes of `map` on another thread (a region that stays revoked
/// would block it); returns the faults taken and the bytes.
fn touch(map: &Mapping) -> Result<(u64, Vec<u8>), String> {
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(move || {
            let touched = thread_faults().and_then(|before| {
                let mut acc = 0u64;
                for page in (0..TOUCH_LEN).step_by(PAGE_SIZE) {
                    acc ^= map.read_u64(page);
                }
                std::hint::black_box(acc);
                // Counted before the copy: its buffer's own page faults are not the mapping's.
                let faults = thread_faults()? - before;
                Ok((faults, map.read_vec(0, TOUCH_LEN)))
            });
            let _ = tx.send(touched.map_err(|e| format!("getrusage: {e}")));
        });
        match rx.recv_timeout(TOUCH_TIMEOUT) {
            Ok(touched) => touched,
            Err(_) => {
                // The thread stays blocked: nothing after this can pass.
                eprintln!("cxlvfio-sleep: the mapping stayed unusable; giving up");
                std::process::exit(1);
            }
        }
    })
}

/// Decoder 0 as the hardware holds it: committed with `base` and `size`.
fn firmware_decoder_committed(bdf: &str, base: u64, size: u64) -> Result<(), String> {
    RealHdm::locate(bdf)?.check_firmware_decoder(base, size, "decoder 0")
}

/// What the tests share: the open device, its mapping and decoder 0 as firmware left it.
struct Session {
    bdf: String,
    fds: Option<AttachedDevice>,
    map: Option<Mapping>,
    base: u64,
    size: u64,
}

impl Session {
    fn new(bdf: &str) -> Result<Self, String> {
        let (base, size, _) = RealHdm::locate(bdf)?.decoder(0)?;
        let mut s = Self {
            bdf: bdf.to_string(),
            fds: None,
            map: None,
            base,
            size,
        };
        s.open()?;
        Ok(s)
    }

    fn open(&mut self) -> Result<(), String> {
        let fds = open_device(&self.bdf).map_err(|e| format!("open {}: {e}", self.bdf))?;
        let dpa = dpa_region(&fds)?;
        if (dpa.size as usize) < TOUCH_LEN {
            return Err(format!("the DPA region has {:#x} bytes", dpa.size));
        }
        let map = Mapping::shared(fds.as_fd(), dpa.offset, TOUCH_LEN)
            .map_err(|e| format!("mmap of the DPA region: {e}"))?;
        self.map = Some(map);
        self.fds = Some(fds);
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        self.map = None;
        if let Some(fds) = self.fds.take() {
            fds.close().map_err(|e| format!("close: {e}"))?;
        }
        Ok(())
    }

    fn map(&self) -> Result<&Mapping, String> {
        self.map
            .as_ref()
            .ok_or_else(|| "the device is not open".into())
    }
}

/// Writes the pattern through the mapping; then a second touch takes no fault (it stays
/// mapped), so that a fault after the sleep can only come from a revoke.
fn mapped_before_sleep(s: &mut Session) -> Result<String, String> {
    let map = s.map()?;
    map.write_bytes(0, &pattern::bytes(SEED, 0, TOUCH_LEN));
    let (first, _) = touch(map)?;
    let (again, bytes) = touch(map)?;
    if again != 0 {
        return Err(format!(
            "{again} faults touching mapped memory a second time"
        ));
    }
    if let Some(at) = pattern::first_difference(&bytes, &pattern::bytes(SEED, 0, TOUCH_LEN)) {
        return Err(format!("pattern differs at {at:#x} right after writing it"));
    }
    Ok(format!(
        "{first} faults on the first touch, 0 on the second"
    ))
}

/// After the one suspend of the run: the suspend callback revoked the mapping (the touch
/// faults) and the resume callback let it be mapped again (the touch completes), with no
/// SIGBUS and the data intact.
fn sleep_revokes_and_restores(s: &mut Session) -> Result<String, String> {
    let sigbus_before = sigbus::unexpected();
    let (faults, bytes) = touch(s.map()?)?;
    if faults == 0 {
        return Err("no fault after the sleep: the suspend callback did not revoke".into());
    }
    let sigbus = sigbus::unexpected() - sigbus_before;
    if sigbus != 0 {
        return Err(format!(
            "{sigbus} SIGBUS touching the mapping after the sleep"
        ));
    }
    if let Some(at) = pattern::first_difference(&bytes, &pattern::bytes(SEED, 0, TOUCH_LEN)) {
        return Err(format!("pattern differs at {at:#x} after the sleep"));
    }
    firmware_decoder_committed(&s.bdf, s.base, s.size)?;
    Ok(format!("{faults} faults after the sleep, data intact"))
}

/// After the sleep the device closes and opens as before: decoder 0 is as firmware committed
/// it once closed, and the next open offers the DPA region, scrubbed. (One sleep per boot: the
/// test VM's file systems do not survive a second; see the module's documentation.)
fn reopen_after_sleep(s: &mut Session) -> Result<String, String> {
    s.close()?;
    firmware_decoder_committed(&s.bdf, s.base, s.size)?;
    s.open()?;
    let (faults, bytes) = touch(s.map()?)?;
    if let Some(at) = bytes.iter().position(|&b| b != 0) {
        return Err(format!("byte {at:#x} not scrubbed after the reopen"));
    }
    Ok(format!(
        "reopened; {faults} faults on the first touch, scrubbed"
    ))
}

type Test = fn(&mut Session) -> Result<String, String>;

/// Runs `test` on every session still in the run, as `name (BDF)`; a session whose test fails
/// skips the tests after it.
fn each_session<W: Write>(
    ktap: &mut Ktap<W>,
    sessions: &mut [(String, Option<Session>)],
    name: &str,
    test: Test,
) {
    for (bdf, session) in sessions.iter_mut() {
        let name = format!("{name} ({bdf})");
        match session.as_mut() {
            None => ktap.not_ok(&name, "no session or an earlier test failed"),
            Some(s) => match test(s) {
                Ok(what) => {
                    ktap.diag(&what);
                    ktap.ok(&name);
                }
                Err(e) => {
                    ktap.not_ok(&name, &e);
                    if let Some(mut s) = session.take() {
                        let _ = s.close();
                    }
                }
            },
        }
    }
}

fn run<W: Write>(bdfs: &[String], mut ktap: Ktap<W>) -> bool {
    if let Err(e) = sigbus::install() {
        ktap.diag(&format!("cannot install the SIGBUS handler: {e}"));
        return false;
    }
    let mark = kmsg::log_mark().ok();
    let mut sessions: Vec<(String, Option<Session>)> = bdfs
        .iter()
        .map(|bdf| {
            let session = Session::new(bdf)
                .map_err(|e| ktap.diag(&format!("setup of {bdf}: {e}")))
                .ok();
            (bdf.clone(), session)
        })
        .collect();
    each_session(
        &mut ktap,
        &mut sessions,
        "mapped_before_sleep",
        mapped_before_sleep,
    );
    // One sleep for every device: the test VM's file systems do not survive a second.
    match pm_test_suspend() {
        Ok(()) => ktap.ok("pm_test_suspend"),
        Err(e) => {
            ktap.not_ok("pm_test_suspend", &e);
            sessions.iter_mut().for_each(|(_, s)| *s = None);
        }
    }
    each_session(
        &mut ktap,
        &mut sessions,
        "sleep_revokes_and_restores",
        sleep_revokes_and_restores,
    );
    each_session(
        &mut ktap,
        &mut sessions,
        "reopen_after_sleep",
        reopen_after_sleep,
    );
    for (_, session) in sessions.iter_mut() {
        if let Some(mut s) = session.take() {
            if let Err(e) = s.close() {
                ktap.diag(&e);
            }
        }
    }
    match mark.map(kmsg::problems_since) {
        Some(Ok(problems)) if problems.is_empty() => ktap.ok("kernel_log_clean"),
        Some(Ok(problems)) => ktap.not_ok("kernel_log_clean", &problems.join("; ")),
        Some(Err(e)) => ktap.not_ok("kernel_log_clean", &format!("kernel log: {e}")),
        None => ktap.not_ok("kernel_log_clean", "no kernel log"),
    }
    let ok = ktap.all_passed();
    ktap.finish();
    ok
}

/// Tests in a run on `devices` devices: three each, the suspend and the kernel log.
fn plan(devices: usize) -> usize {
    3 * devices + 2
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut vm_console = false;
    let mut also = Vec::new();
    let parsed = cli::device_or_exit("cxlvfio-sleep", USAGE, &args, |opt| match opt.key {
        "--vm-console" if opt.inline.is_none() => {
            vm_console = true;
            Ok(true)
        }
        "--also" => {
            also.push(pci::normalize_bdf(&opt.value()?).map_err(|e| e.to_string())?);
            Ok(true)
        }
        _ => Ok(false),
    });
    let mut bdfs = match parsed {
        Ok(bdf) => vec![bdf],
        Err(code) => return code,
    };
    bdfs.extend(also);
    if !vm_console {
        return if run(&bdfs, Ktap::stdout(plan(bdfs.len()))) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    // Everything this program will execute is read in now: after the sleep, the file system
    // it came from no longer answers.
    // SAFETY: mlockall only changes how this process's pages are kept in memory.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        eprintln!(
            "cxlvfio-sleep: mlockall: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    let (results, mut status) = match (KmsgLines::open("VMRESULT: "), KmsgLines::open("")) {
        (Ok(results), Ok(status)) => (results, status),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cxlvfio-sleep: /dev/kmsg: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rc = if run(&bdfs, Ktap::new(results, plan(bdfs.len()))) {
        0
    } else {
        1
    };
    let _ = writeln!(status, "VMRESULT-EXIT: {rc}");
    // Powers off at once (no sync: there is nothing to write, and the root would not answer).
    let _ = fs::write("/proc/sysrq-trigger", "o");
    std::thread::sleep(Duration::from_secs(60));
    ExitCode::FAILURE
}
