//! The exclusive operations: each holds its device's gate for write, puts the device in a
//! documented state where accesses fail (user low power, D3hot, memory decode off) or
//! reopens it, checks that accesses fail as documented, and brings it back.
//!
//! Accesses through mappings in those states run in a forked child
//! ([`Mapping::probe_in_child`]): the SIGBUS they must get ends the child, not this process,
//! and the parent's mappings stay whole.

use std::os::fd::AsRawFd;
use std::time::Duration;

use cxlvfio::cxl::{pread_once, pwrite_once};
use cxlvfio::ioeventfd;
use cxlvfio::mmap::ChildExit;
use cxlvfio::randops::ops::Op;
use cxlvfio::randops::rng::Rng;
use cxlvfio::uapi::{VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, VFIO_DEVICE_FEATURE_SET};
use cxlvfio::{open_device_with, Device};

use crate::ops::{ensure_known, read_full};
use crate::state::{
    errno_name, expect, Core, DevInfo, DevShared, Failure, Family, MapKind, Outcome, Shared,
};

/// How long a probe of a revoked mapping may take before it counts as a hang.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;
/// PM Control/Status: PowerState in bits 1:0.
const PM_CTRL: u64 = 4;
const PM_STATE_MASK: u16 = 0x3;
const PM_D3HOT: u16 = 0x3;

/// What an exclusive op works with.
pub struct Xcx<'a> {
    pub shared: &'a Shared,
    pub ds: &'a DevShared,
    pub core: &'a mut Core,
    pub rng: &'a mut Rng,
    pub t: usize,
}

type XResult = Result<Outcome, Failure>;

impl Xcx<'_> {
    fn log(&self, what: String) {
        self.shared.rings[self.t]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{} {what}", self.ds.bdf));
    }

    fn dev(&self) -> Result<&Device, Failure> {
        Ok(self.core.dev()?)
    }

    /// The first DPA mapping of any thread, as (thread, mapping index, offset to probe).
    fn some_dpa_map(&mut self) -> Option<(usize, usize, usize)> {
        for (t, m) in self.core.threads.iter_mut().enumerate() {
            let td = m.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = td
                .maps
                .iter()
                .position(|m| matches!(m.kind, MapKind::Dpa { .. }))
            {
                let off = self.rng.below(td.maps[i].map.len() as u64) as usize;
                return Some((t, i, off));
            }
        }
        None
    }

    fn some_bar_map(&mut self) -> Option<(usize, usize, usize)> {
        for (t, m) in self.core.threads.iter_mut().enumerate() {
            let td = m.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = td
                .maps
                .iter()
                .position(|m| matches!(m.kind, MapKind::Bar { .. }))
            {
                let off = 4 * self.rng.below(td.maps[i].map.len() as u64 / 4) as usize;
                return Some((t, i, off));
            }
        }
        None
    }

    /// Reads through mapping (t, i) at `off` in a child; `Ok` if it got SIGBUS.
    fn probe_faults(
        &mut self,
        what: &str,
        (t, i, off): (usize, usize, usize),
    ) -> Result<String, Failure> {
        let td = self.core.threads[t]
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        let m = &td.maps[i];
        let _no_reopen = self.shared.forks.read().unwrap_or_else(|e| e.into_inner());
        match m.map.probe_in_child(off, PROBE_TIMEOUT) {
            Ok(ChildExit::Signaled(libc::SIGBUS)) => Ok(format!("{what}: SIGBUS")),
            Ok(other) => Err(Failure::new(
                Family::Faults,
                format!(
                    "{what}: a load through {:?} (+{off:#x}) in a child ended with {other:?}, \
                     expected SIGBUS",
                    m.kind
                ),
            )),
            Err(e) => Err(format!("fork: {e}").into()),
        }
    }

    /// Checks that 8 bytes at the start of this thread's slice still read back.
    fn dpa_reads_back(&mut self, when: &str) -> Result<(), Failure> {
        let dpa = self.core.info.dpa;
        let dev = self.core.dev.as_ref().ok_or("the device is closed")?;
        let td = self.core.threads[self.t]
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        ensure_known(dev, dpa.offset, td.slice_off, &mut td.shadow, 0, 8)?;
        let mut b = [0u8; 8];
        read_full(dev, dpa.pos(td.slice_off), &mut b).map_err(|e| format!("{when}: {e}"))?;
        td.shadow
            .check(0, &b)
            .map_err(|m| Failure::new(Family::Dpa, format!("{when}: {m}")))
    }

    /// A DPA pread and a pwrite (of the bytes already there: harmless if wrongly accepted)
    /// that must both fail with EIO.
    fn dpa_refused(&mut self, when: &str) -> Result<(), Failure> {
        let dpa = self.core.info.dpa;
        let dev = self.core.dev.as_ref().ok_or("the device is closed")?;
        let td = self.core.threads[self.t]
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        let rel = self.rng.below(td.shadow.len() as u64 - 8) as usize;
        let pos = dpa.pos(td.slice_off + rel as u64);
        let r = expect(
            pread_once(dev.device(), pos, 8),
            &[libc::EIO],
            &format!("{when}: DPA pread"),
        )?;
        if r.is_ok() {
            return Err(format!("{when}: a DPA pread worked, expected EIO").into());
        }
        if td.shadow.unknown_chunks(rel, 8).is_empty() {
            let same = td.shadow.expected(rel, 8).to_vec();
            let r = expect(
                pwrite_once(dev.device(), pos, &same),
                &[libc::EIO],
                &format!("{when}: DPA pwrite"),
            )?;
            if r.is_ok() {
                return Err(format!("{when}: a DPA pwrite worked, expected EIO").into());
            }
        }
        Ok(())
    }
}

impl Xcx<'_> {
    /// In low power with a wake-up eventfd: a DPA pread wakes the device and then reads the
    /// data (documented); EIO is tolerated and noted (the wake-up may race the access).
    fn dpa_wakes(&mut self, notes: &mut Vec<String>) -> Result<(), Failure> {
        let dpa = self.core.info.dpa;
        let dev = self.core.dev.as_ref().ok_or("the device is closed")?;
        let td = self.core.threads[self.t]
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        if !td.shadow.unknown_chunks(0, 8).is_empty() {
            return Ok(());
        }
        match pread_once(dev.device(), dpa.pos(td.slice_off), 8) {
            Ok(b) => {
                td.shadow.check(0, &b).map_err(|m| {
                    Failure::new(Family::Dpa, format!("a pread that woke the device: {m}"))
                })?;
                notes.push("a pread woke the device".into());
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => notes.push("pread: EIO".into()),
            Err(e) => return Err(format!("a DPA pread in low power with wake-up: {e}").into()),
        }
        Ok(())
    }
}

/// Runs one exclusive operation.
pub fn run(op: Op, x: &mut Xcx<'_>) -> XResult {
    match op {
        Op::LowPowerWindow => low_power_window(x),
        Op::PmD3Window => pm_d3_window(x),
        Op::DecodeOffWindow => decode_off_window(x),
        Op::Reopen => reopen(x),
        _ => unreachable!("{} is not exclusive", op.name()),
    }
}

/// `LOW_POWER_ENTRY`: mappings fault with SIGBUS, pread and pwrite fail with EIO until
/// `LOW_POWER_EXIT`. `LOW_POWER_ENTRY_WITH_WAKEUP`: the same for faults, but a region access
/// (which resumes the device) is a wake-up: vfio-pci-core signals the eventfd and leaves low
/// power, and the access then restores the DPA region and works.
fn low_power_window(x: &mut Xcx<'_>) -> XResult {
    let wakeup = x.rng.chance(1, 4);
    let efd = ioeventfd::eventfd().map_err(|e| format!("eventfd: {e}"))?;
    x.log(format!(
        "LOW_POWER_ENTRY{} window",
        if wakeup { "_WITH_WAKEUP" } else { "" }
    ));
    let entered = if wakeup {
        // struct vfio_device_feature + struct vfio_device_low_power_entry_with_wakeup.
        let mut buf = [0u8; 16];
        buf[..4].copy_from_slice(&16u32.to_ne_bytes());
        let flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP;
        buf[4..8].copy_from_slice(&flags.to_ne_bytes());
        buf[8..12].copy_from_slice(&efd.as_raw_fd().to_ne_bytes());
        x.dev()?.feature_raw(&mut buf)
    } else {
        x.dev()?.low_power_entry()
    };
    entered.map_err(|e| format!("LOW_POWER_ENTRY: {e}"))?;
    let mut notes = Vec::new();
    let mut result = Ok(());
    // Faults first: they never wake the device.
    if let Some(m) = x.some_dpa_map() {
        result = x
            .probe_faults("DPA mapping in low power", m)
            .map(|n| notes.push(n));
    }
    if result.is_ok() && !wakeup && x.rng.chance(1, 4) {
        // A second entry while in low power: refused, never a crash.
        match expect(
            x.dev()?.low_power_entry(),
            &[libc::EINVAL, libc::EBUSY],
            "a second LOW_POWER_ENTRY",
        ) {
            Ok(r) => notes.push(format!(
                "second entry: {}",
                r.map_or_else(errno_name, |_| "accepted".into())
            )),
            Err(e) => result = Err(e.into()),
        }
    }
    if result.is_ok() {
        result = if wakeup {
            x.dpa_wakes(&mut notes)
        } else {
            x.dpa_refused("in low power")
        };
    }
    // Always leave low power, whatever failed above (after a wake-up it changes nothing).
    let exit = x
        .dev()?
        .low_power_exit()
        .map_err(|e| format!("LOW_POWER_EXIT: {e}"));
    result?;
    exit?;
    x.dpa_reads_back("after LOW_POWER_EXIT")?;
    Ok(Outcome::Ok(notes.join("; ")))
}

fn pm_d3_window(x: &mut Xcx<'_>) -> XResult {
    let Some(pm) = x.core.info.pm_cap else {
        x.log("PM D3hot window (no PM capability)".into());
        return Ok(Outcome::Skipped("no PM capability".into()));
    };
    let at = pm + PM_CTRL;
    let ctrl = x
        .dev()?
        .config_read16(at)
        .map_err(|e| format!("PM Control: {e}"))?;
    if ctrl & PM_STATE_MASK != 0 {
        return Err(format!("PM Control {ctrl:#06x}: not in D0 before the window").into());
    }
    x.log(format!("PM Control {ctrl:#06x} -> D3hot window"));
    x.dev()?
        .config_write16(at, (ctrl & !PM_STATE_MASK) | PM_D3HOT)
        .map_err(|e| format!("PM Control write of D3hot: {e}"))?;
    let mut result = x.dpa_refused("in D3hot");
    if result.is_ok() {
        if let Some(m) = x.some_dpa_map() {
            result = x.probe_faults("DPA mapping in D3hot", m).map(drop);
        }
    }
    let back = x
        .dev()?
        .config_write16(at, ctrl & !PM_STATE_MASK)
        .map_err(|e| format!("PM Control write of D0: {e}"));
    result?;
    back?;
    x.dpa_reads_back("after D3hot and back to D0")?;
    Ok(Outcome::Ok("D3hot and back".into()))
}

fn decode_off_window(x: &mut Xcx<'_>) -> XResult {
    let cmd = x
        .dev()?
        .config_read16(PCI_COMMAND)
        .map_err(|e| format!("Command: {e}"))?;
    if cmd & PCI_COMMAND_MEMORY == 0 {
        return Err(format!("Command {cmd:#06x}: memory decode off before the window").into());
    }
    x.log(format!("Command {cmd:#06x} -> memory decode off window"));
    x.dev()?
        .config_write16(PCI_COMMAND, cmd & !PCI_COMMAND_MEMORY)
        .map_err(|e| format!("Command write: {e}"))?;
    let mut notes = Vec::new();
    let mut result: Result<(), Failure> = Ok(());
    // A memory BAR other than the component one must refuse reads with EIO; the component
    // BAR's emulated block may still answer.
    let bars: Vec<_> = (0..6u32)
        .filter_map(|i| x.core.info.regions.get(i as usize).copied().flatten())
        .filter(|r| r.size >= 4 && r.index != x.core.info.comp_bar.index)
        .collect();
    if let Some(&bar) = bars.first() {
        if is_mem_bar(&x.ds.bdf, bar.index) {
            let r = expect(
                pread_once(x.dev()?, bar.pos(0), 4),
                &[libc::EIO],
                "BAR read with memory decode off",
            );
            result = match r {
                Ok(Ok(_)) => {
                    Err(format!("BAR{} read worked with memory decode off", bar.index).into())
                }
                Ok(Err(_)) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
    }
    if result.is_ok() {
        if let Some(m) = x.some_bar_map() {
            result = x
                .probe_faults("BAR mapping with memory decode off", m)
                .map(|n| notes.push(n));
        }
    }
    if result.is_ok() {
        // Not documented either way for the DPA: it works with the data, or fails with EIO.
        let dpa = x.core.info.dpa;
        let dev = x.core.dev.as_ref().ok_or("the device is closed")?;
        let td = x.core.threads[x.t]
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        if td.shadow.unknown_chunks(0, 8).is_empty() {
            match pread_once(dev.device(), dpa.pos(td.slice_off), 8) {
                Ok(b) => {
                    if let Err(m) = td.shadow.check(0, &b) {
                        result = Err(Failure::new(
                            Family::Dpa,
                            format!("DPA with memory decode off: {m}"),
                        ));
                    }
                    notes.push("DPA readable".into());
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) => notes.push("DPA EIO".into()),
                Err(e) => result = Err(format!("DPA pread with memory decode off: {e}").into()),
            }
        }
    }
    let back = x
        .dev()?
        .config_write16(PCI_COMMAND, cmd)
        .map_err(|e| format!("Command write back: {e}"));
    result?;
    back?;
    x.dpa_reads_back("after memory decode back on")?;
    Ok(Outcome::Ok(notes.join("; ")))
}

/// Whether BAR `index` of `bdf` is a memory BAR (sysfs resource flags).
fn is_mem_bar(bdf: &str, index: u32) -> bool {
    const IORESOURCE_MEM: u64 = 0x200;
    cxlvfio::pci::resource(bdf, index as usize).is_ok_and(|r| r.flags & IORESOURCE_MEM != 0)
}

fn reopen(x: &mut Xcx<'_>) -> XResult {
    x.log("close and reopen".into());
    // No child of another thread may hold the old file while it is closed and opened again.
    let _no_forks = x.shared.forks.write().unwrap_or_else(|e| e.into_inner());
    if let Err(f) = reopen_core(x.ds, x.core, x.shared.threads, x.shared.chunks) {
        // Every later op on the device would fail for the same reason: stop here.
        x.shared
            .abort
            .store(true, std::sync::atomic::Ordering::SeqCst);
        return Err(f);
    }
    Ok(Outcome::Ok("reopened".into()))
}

/// Drops every mapping, closes the device and opens it again in the same mode; the shadows
/// follow rule 4 (scrubbed, or kept without scrubbing).
pub fn reopen_core(
    ds: &DevShared,
    core: &mut Core,
    threads: usize,
    chunks: usize,
) -> Result<(), Failure> {
    for m in core.threads.iter_mut() {
        m.get_mut().unwrap_or_else(|e| e.into_inner()).maps.clear();
    }
    if let Some(dev) = core.dev.take() {
        dev.close().map_err(|e| format!("close: {e}"))?;
    }
    let dev = open_device_with(&ds.bdf, ds.mode).map_err(|e| format!("reopen: {e}"))?;
    let info = DevInfo::query(&dev).map_err(|e| format!("after the reopen: {e}"))?;
    for (t, m) in core.threads.iter_mut().enumerate() {
        let td = m.get_mut().unwrap_or_else(|e| e.into_inner());
        td.slice_off = DevShared::slice(&info, threads, chunks, t)?;
        td.reset_for_open(&info, ds.scrub);
    }
    core.info = info;
    core.dev = Some(dev);
    Ok(())
}
