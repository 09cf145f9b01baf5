// SPDX-License-Identifier: GPL-2.0

//! The DPA region: the device memory that firmware-committed HDM decoder 0 decodes, passed to the
//! user as a region that is read, written and mapped.
//!
//! Lifecycle:
//!
//! - **open**: claim the decoder's host physical range under the device's name and map it
//!   write-back ([`claim`]), register the region, then restore decoder 0 if the open-time reset
//!   cleared it ([`open`]). The region is active only once decoder 0 reads back committed with
//!   the firmware base and size.
//! - **fault** / **read** / **write**: under vfio-pci-core's `memory_lock` (read) and the
//!   device's `dpa` lock, check the function is powered and the region active, scrub the 2 MiB
//!   chunks the access touches for the first time in this open, then insert the largest mapping
//!   the alignment allows (PUD, PMD, page) or copy through the driver's own mapping.
//! - **bounded work**: what an access does with the locks held is bounded, because resets,
//!   power changes and every other access wait for them. A fault scrubs at most
//!   [`FAULT_SCRUB_CHUNKS`] chunks and then lets the access fault again (a first 1 GiB fault
//!   becomes a series of short ones); a restore never waits for the media with the locks held:
//!   the access drops them, waits, and tries once more.
//! - **reset** (any path), **power-state changes** and **error recovery**: before the hardware
//!   is touched the region becomes inactive, then every user mapping of it is zapped (a fault
//!   that raced in before that is removed by the zap, any later one sees the inactive region).
//!   Such changes may overlap (a user reset during an error recovery, the resets of a hot reset
//!   set): the region's [`Gate`] counts them and waits for a restore only once all are over;
//!   the restore is done at once after the driver's own ioctls, or lazily by the next access.
//! - **close**: revoke, let vfio-pci-core disable (and reset) the device, then unmap and release
//!   the range.
//!
//! Locking: `memory_lock` (vfio-pci-core's, held for read by accesses, for write around power
//! changes and resets that vfio-pci-core starts) is always taken before `dpa`. `dpa` serialises
//! the gate, the scrub map and restores; the reset and error callbacks take only `dpa`, because
//! they run both with and without `memory_lock` held.

use crate::model::{
    comp_regs::FirmwareDecoder,
    dpa::{self as rules, Gate, RestoreOutcome, ScrubMap},
    regs::{CXL_CM_SIZE, CXL_DVSEC_CONTROL_OFFSET, CXL_DVSEC_CTRL_MEM_ENABLE},
    release::ReleaseSteps,
    restore::{self, DecoderMismatch},
};
use crate::{
    detect::{self, CxlDevice, RangeWait},
    CxlVfioPci,
};
use kernel::{
    delay::{cond_resched, msleep},
    dev_dbg, dev_err, dev_warn, fmt,
    io::mem::{ClaimError, CxlWindowRange, DeviceMemory},
    pci,
    prelude::*,
    str::CString,
    uaccess::{UserPtr, UserSlice},
    vfio::pci::{
        CoreDevice, FaultResult, MemoryReadGuard, RegionFault, RegionMap, RegionMemory, Syscall,
    },
};

/// The locked DPA state.
type DpaGuard<'a> =
    kernel::sync::lock::Guard<'a, DpaState, kernel::sync::lock::mutex::MutexBackend>;

/// How long a commit may take (CXL r3.1 8.2.4.20.12: 10 ms), in 1 ms polls.
const COMMIT_TIMEOUT_MS: u32 = 10;
/// How long a fault, read or write whose restore found the device memory inactive waits for it,
/// holding neither `memory_lock` nor `dpa` (the driver's own ioctls wait up to
/// [`detect::MEMORY_ACTIVE_TIMEOUT_MS`], also without locks). An access that gives up fails,
/// and the next one tries again.
const ACCESS_MEMORY_ACTIVE_WAIT_MS: i64 = 1000;
/// Chunks one fault may scrub: one (2 MiB), as much as a PMD fault needs. A fault that needs
/// more scrubs one, drops its locks and lets the access fault again, so that a reset or another
/// access waits for about one chunk's zeroing, not for a whole 1 GiB block. (Measured under TCG
/// with 8 chunks a fault: other users still waited up to 3 s, because a waiter may lose the
/// `dpa` mutex to the returning fault once or twice before it is handed over.)
pub(crate) const FAULT_SCRUB_CHUNKS: u64 = 1;
/// How long a restore of a closed device waits for the device memory to be active.
const CLOSED_MEMORY_ACTIVE_WAIT_MS: i64 = 1000;
/// Largest piece a read or write copies at once through its bounce buffer (an order-3
/// allocation at most: larger ones are costly for the page allocator).
const TRANSFER_CHUNK: usize = 32 * 1024;

/// The DPA state of the device; the `dpa` lock of [`crate::DeviceState`] protects it.
pub(crate) struct DpaState {
    /// The claimed and mapped range while the device is open with a DPA region; dropping it
    /// removes every user mapping of the region.
    mem: Option<RegionMemory>,
    /// Whether the region may be used, and what keeps it from being used.
    gate: Gate,
    /// Region index of the DPA region in this open.
    index: u32,
    /// One bit per scrub chunk: scrubbed in this open.
    scrubbed: KVec<u64>,
    /// Whether this open already logged a failed restore (once per open: a guest resetting in
    /// a loop must not flood the log).
    failure_logged: bool,
    /// Whether this open already logged device memory that stayed inactive (once per open).
    memory_wait_logged: bool,
}

impl DpaState {
    /// The state of a closed device.
    pub(crate) fn new() -> Self {
        Self {
            mem: None,
            gate: Gate::new(),
            index: 0,
            scrubbed: KVec::new(),
            failure_logged: false,
            memory_wait_logged: false,
        }
    }
}

/// The firmware decoder of a device with a DPA region.
fn firmware(dev: &CoreDevice<CxlVfioPci>) -> Option<(&CxlDevice, &FirmwareDecoder)> {
    let cxl = dev.data().cxl.as_ref()?;
    Some((cxl, cxl.firmware.as_ref()?))
}

/// Claims and maps the range decoder 0 decodes, named after the device in `/proc/iomem`. The
/// range was checked at bind to lie in a CXL window; the kernel crate checks it again, since
/// only such a range may be mapped write-back.
pub(crate) fn claim(pdev: &pci::Device, fw: &FirmwareDecoder) -> Result<DeviceMemory> {
    let size = usize::try_from(fw.size).map_err(|_| EINVAL)?;
    let range = CxlWindowRange::find(fw.base, size).inspect_err(|e| {
        dev_err!(
            pdev.as_dev(),
            "DPA range [mem {:#x}-{:#x}] is not in a CXL window: {:?}\n",
            fw.base,
            fw.base + fw.size - 1,
            e
        )
    })?;
    let name = CString::try_from_fmt(fmt!("cxl-vfio-pci {}", pdev.name()))?;
    DeviceMemory::claim(&range, name).map_err(|e| {
        match &e {
            ClaimError::Busy(holders) => {
                let steps = ReleaseSteps::new(holders.as_str());
                let how = if steps.releasable() {
                    "release it with"
                } else {
                    "not opening"
                };
                dev_err!(
                    pdev.as_dev(),
                    "DPA range [mem {:#x}-{:#x}] is busy: held by {}; {}: {}\n",
                    fw.base,
                    fw.base + fw.size - 1,
                    holders,
                    how,
                    steps
                );
            }
            ClaimError::Failed(err) => {
                dev_err!(pdev.as_dev(), "cannot map the DPA range: {:?}\n", err)
            }
        }
        Error::from(e)
    })
}

/// Starts an open: `mem` backs region `index`; every chunk is to be scrubbed again. Then makes
/// the region active if decoder 0 can be restored (the open-time reset may have cleared it).
pub(crate) fn open(dev: &Syscall<'_, CxlVfioPci>, mem: DeviceMemory, index: u32) -> Result {
    let mut scrubbed = KVec::new();
    scrubbed.extend_with(rules::scrub_map_words(mem.len() as u64), 0, GFP_KERNEL)?;
    let mem = dev.region_memory(index, mem);
    {
        let mut st = dev.data().dpa.lock();
        st.mem = Some(mem);
        st.index = index;
        st.scrubbed = scrubbed;
        st.failure_logged = false;
        st.memory_wait_logged = false;
        st.gate.open();
    }
    ensure_active(dev);
    Ok(())
}

/// Applies `op` (one that revokes) to the region's gate, then removes every user mapping of
/// the region. The zap runs outside the `dpa` lock: a fault that inserted before the gate
/// changed is removed by it, and every later one sees the region inactive.
fn revoke_with(dev: &CoreDevice<CxlVfioPci>, op: impl FnOnce(&mut Gate)) {
    let target = {
        let mut st = dev.data().dpa.lock();
        op(&mut st.gate);
        st.mem.as_ref().map(|mem| (st.index, mem.len() as u64))
    };
    if let Some((index, size)) = target {
        dev.zap_region(index, size);
    }
}

/// First step of a close: the region becomes unusable and its mappings are removed (there are
/// none left: each holds the device file open), before vfio-pci-core disables the device.
pub(crate) fn shut(dev: &CoreDevice<CxlVfioPci>) {
    revoke_with(dev, Gate::close);
    dev.data().dpa_settled.notify_all();
}

/// Waits, holding no lock, while an access must wait for a reset or power change to end (see
/// [`Gate::must_wait`]). Returns `false` when a signal interrupted the wait.
fn wait_until_settled(dev: &CoreDevice<CxlVfioPci>) -> bool {
    let mut st = dev.data().dpa.lock();
    while st.gate.must_wait() {
        if dev.data().dpa_settled.wait_interruptible(&mut st) {
            return false;
        }
    }
    true
}

/// Why an access cannot use the region now.
enum Unavailable {
    /// The function is powered down (low power): accesses fail, as BAR accesses do.
    PoweredDown,
    /// A signal interrupted the wait for a reset or power change.
    Interrupted,
    /// The region cannot be made active (decoder 0 not restorable, media inactive).
    Inactive,
}

/// `memory_lock` (read) and the `dpa` lock, taken once no reset or power change is under way:
/// while one is, this waits for it without holding either (it needs them).
fn lock_settled<'a>(
    dev: &'a Syscall<'_, CxlVfioPci>,
) -> Result<(MemoryReadGuard<'a, CxlVfioPci>, DpaGuard<'a>), Unavailable> {
    loop {
        let memory = dev.memory_lock_read();
        if !memory.is_powered() {
            return Err(Unavailable::PoweredDown);
        }
        let st = dev.data().dpa.lock();
        if !st.gate.must_wait() {
            return Ok((memory, st));
        }
        drop(st);
        drop(memory);
        if !wait_until_settled(dev) {
            return Err(Unavailable::Interrupted);
        }
    }
}

/// [`lock_settled`], with the region active: restored first if it waits for a restore. A restore
/// that finds the device memory inactive drops the locks, waits for it, and tries once more.
fn lock_active<'a>(
    dev: &'a Syscall<'_, CxlVfioPci>,
    cxl: &CxlDevice,
    fw: &FirmwareDecoder,
) -> Result<(MemoryReadGuard<'a, CxlVfioPci>, DpaGuard<'a>), Unavailable> {
    let mut waited_for_media = false;
    loop {
        let (memory, mut st) = lock_settled(dev)?;
        match activate(dev.pci_dev(), cxl, fw, &mut st) {
            Activation::Active => return Ok((memory, st)),
            Activation::MediaNotReady if !waited_for_media => {
                drop(st);
                drop(memory);
                let _ = detect::await_memory_active(
                    dev.pci_dev(),
                    cxl.dvsec,
                    ACCESS_MEMORY_ACTIVE_WAIT_MS,
                );
                waited_for_media = true;
            }
            Activation::MediaNotReady | Activation::Unusable => return Err(Unavailable::Inactive),
        }
    }
}

/// Last step of a close: the memory is unmapped (with any user mapping left) and the range
/// released.
pub(crate) fn close(dev: &CoreDevice<CxlVfioPci>) {
    let mem = {
        let mut st = dev.data().dpa.lock();
        st.gate.close();
        st.scrubbed = KVec::new();
        st.mem.take()
    };
    drop(mem);
}

/// Leaves a closed device as firmware configured it: after the reset vfio-pci-core does at
/// close, and after any reset while the device is closed, decoder 0 is restored, so that the
/// host (the next bind, the host's own CXL drivers) finds the decoder firmware committed. Does
/// nothing while the device is open: the region's gate restores then.
pub(crate) fn restore_closed(dev: &CoreDevice<CxlVfioPci>) {
    let Some((cxl, fw)) = firmware(dev) else {
        return;
    };
    let pdev = dev.pci_dev();
    let st = dev.data().dpa.lock();
    if st.gate.is_open() {
        return;
    }
    match restore_decoder(pdev, cxl, fw, CLOSED_MEMORY_ACTIVE_WAIT_MS) {
        Ok(true) => dev_dbg!(pdev.as_dev(), "HDM decoder 0 restored for the host\n"),
        Ok(false) => {}
        // Not reachable now (memory decode off, powered down): the next open restores.
        Err(DecoderMismatch::NotResponding) => {}
        Err(why) => dev_warn!(
            pdev.as_dev(),
            "HDM decoder 0 not restored after a reset of the closed device: {}\n",
            why
        ),
    }
    drop(st);
}

/// Something that may reset the device or cut its power starts: the region becomes inactive
/// and every user mapping of it is removed. Ended by [`end_change`]. The caller holds
/// `memory_lock` for write when it can (vfio-pci-core does around the resets it starts).
pub(crate) fn begin_change(dev: &CoreDevice<CxlVfioPci>) {
    revoke_with(dev, Gate::begin_change);
}

/// [`begin_change`] with `memory_lock` held for write: before a power change the driver
/// forwards.
pub(crate) fn begin_change_exclusive(dev: &mut Syscall<'_, CxlVfioPci>) {
    let core = dev.device();
    let _memory = dev.memory_lock_write();
    begin_change(core);
}

/// A reset or power change is over: once nothing else is under way, the region waits for a
/// restore.
pub(crate) fn end_change(dev: &CoreDevice<CxlVfioPci>) {
    dev.data().dpa.lock().gate.end_change();
    dev.data().dpa_settled.notify_all();
}

/// An error was detected: revoked as for a reset, until the recovery resumes.
pub(crate) fn error_detected(dev: &CoreDevice<CxlVfioPci>) {
    revoke_with(dev, Gate::error_detected);
}

/// The error recovery is over: once nothing else is under way, the region waits for a
/// restore.
pub(crate) fn error_resumed(dev: &CoreDevice<CxlVfioPci>) {
    dev.data().dpa.lock().gate.error_resumed();
    dev.data().dpa_settled.notify_all();
}

/// Restores and reactivates the region now if it waits for it and the device is powered; the
/// driver calls it after the ioctls that reset the device or change its power state.
pub(crate) fn ensure_active(dev: &Syscall<'_, CxlVfioPci>) {
    let Some((cxl, fw)) = firmware(dev) else {
        return;
    };
    if !dev.data().dpa.lock().gate.needs_restore() {
        return;
    }
    // No wait for the media of a function that is powered down.
    if !dev.memory_lock_read().is_powered() {
        return;
    }
    // The long wait for the media happens without locks: faults, resets and error handlers
    // must not queue behind it. The restore below waits only briefly.
    let _ = detect::await_memory_active(dev.pci_dev(), cxl.dvsec, detect::MEMORY_ACTIVE_TIMEOUT_MS);
    let memory = dev.memory_lock_read();
    if memory.is_powered() {
        let mut st = dev.data().dpa.lock();
        activate(dev.pci_dev(), cxl, fw, &mut st);
    }
}

/// What [`activate`] found.
enum Activation {
    /// The region is active.
    Active,
    /// The region waits for a restore that needs the device memory active, and it is not yet.
    MediaNotReady,
    /// The region cannot be used now (closed, changing, or decoder 0 not restorable).
    Unusable,
}

/// Makes the region active if it waits for a restore: restores decoder 0 if the device memory
/// is active now (it never waits for the media: the caller holds the locks). The caller holds
/// `memory_lock` for read and has checked that the device is powered.
fn activate(
    pdev: &pci::Device,
    cxl: &CxlDevice,
    fw: &FirmwareDecoder,
    st: &mut DpaState,
) -> Activation {
    if st.gate.is_active() {
        return Activation::Active;
    }
    if !st.gate.needs_restore() || st.mem.is_none() {
        return Activation::Unusable;
    }
    let mut media_not_ready = false;
    let outcome = match restore_decoder(pdev, cxl, fw, 0) {
        Ok(programmed) => {
            if programmed {
                dev_dbg!(pdev.as_dev(), "HDM decoder 0 restored after a reset\n");
            }
            RestoreOutcome::Done
        }
        // Transient (memory decode off, the device still completing its reset): keep
        // waiting for a restore, so that the next access tries again.
        Err(DecoderMismatch::NotResponding) => RestoreOutcome::NotYet,
        // Media still initialising: the next access waits again. Said once: a device whose
        // memory never comes back keeps the region inactive.
        Err(why @ DecoderMismatch::MemoryInactive) => {
            media_not_ready = true;
            if !st.memory_wait_logged {
                st.memory_wait_logged = true;
                dev_warn!(pdev.as_dev(), "DPA region inactive for now: {}\n", why);
            }
            RestoreOutcome::NotYet
        }
        Err(why) => {
            if !st.failure_logged {
                st.failure_logged = true;
                dev_warn!(
                    pdev.as_dev(),
                    "DPA region inactive until the next reset: {}\n",
                    why
                );
            }
            RestoreOutcome::Impossible
        }
    };
    if st.gate.restored(outcome) {
        Activation::Active
    } else if media_not_ready {
        Activation::MediaNotReady
    } else {
        Activation::Unusable
    }
}

/// Makes decoder 0 decode the firmware range again: waits up to `wait_ms` for the device
/// memory to be active, sets Mem_Enable in the DVSEC, then programs decoder 0 from the
/// probe-time snapshot if it differs. Returns whether it had to be programmed.
fn restore_decoder(
    pdev: &pci::Device,
    cxl: &CxlDevice,
    fw: &FirmwareDecoder,
    wait_ms: i64,
) -> Result<bool, DecoderMismatch> {
    match detect::await_memory_active(pdev, cxl.dvsec, wait_ms) {
        RangeWait::Set => {}
        RangeWait::TimedOut => return Err(DecoderMismatch::MemoryInactive),
        RangeWait::NotResponding => return Err(DecoderMismatch::NotResponding),
    }
    // Memory decode off (a bus reset behind vfio-pci's back, the user's own choice): the
    // component registers are unreachable until the user enables the function again.
    let command = pdev
        .read_config_u16(pci::COMMAND)
        .map_err(|_| DecoderMismatch::NotResponding)?;
    if command == !0 || command & pci::COMMAND_MEMORY == 0 {
        return Err(DecoderMismatch::NotResponding);
    }
    let control = cxl.dvsec + CXL_DVSEC_CONTROL_OFFSET;
    if cxl.firmware_dvsec_control & CXL_DVSEC_CTRL_MEM_ENABLE != 0 {
        let now = pdev
            .read_config_u16(control)
            .map_err(|_| DecoderMismatch::NotResponding)?;
        if now & CXL_DVSEC_CTRL_MEM_ENABLE == 0 {
            pdev.write_config_u16(control, now | CXL_DVSEC_CTRL_MEM_ENABLE)
                .map_err(|_| DecoderMismatch::NotResponding)?;
        }
    }
    let cm = pdev
        .iomap_range(cxl.comp_bar, cxl.cm_offset(), CXL_CM_SIZE)
        .map_err(|_| DecoderMismatch::NotResponding)?;
    let mut read = |offset: usize| cm.read32(offset).unwrap_or(!0);
    match restore::check(&mut read, &cxl.layout, fw) {
        Ok(()) => return Ok(false),
        // Nothing decodes the registers (the BAR was reset behind vfio-pci's back, by an
        // error recovery's bus reset for instance): write nothing, try again later.
        Err(e @ (DecoderMismatch::Locked | DecoderMismatch::NotResponding)) => return Err(e),
        Err(_) => {}
    }
    let ctrl_offset = restore::ctrl_offset(&cxl.layout);
    let writes = restore::program(&cxl.snapshot, &cxl.layout, read(ctrl_offset))
        .ok_or(DecoderMismatch::Locked)?;
    for &(offset, value) in writes.iter().flatten() {
        cm.write32(offset, value)
            .map_err(|_| DecoderMismatch::NotResponding)?;
    }
    for _ in 0..COMMIT_TIMEOUT_MS {
        if restore::commit_settled(read(ctrl_offset)) {
            break;
        }
        msleep(1);
    }
    restore::check(&mut read, &cxl.layout, fw)?;
    Ok(true)
}

/// How far [`scrub`] got.
#[derive(PartialEq, Eq)]
enum Scrubbed {
    /// Every chunk of the range is scrubbed.
    All,
    /// The budget ran out first: chunks of the range are still to be scrubbed.
    Partly,
}

/// Zeroes the chunks of `[offset, offset + len)` that this open has not used yet, at most
/// `budget` of them.
fn scrub(st: &mut DpaState, offset: u64, len: u64, budget: u64) -> Result<Scrubbed> {
    let DpaState { mem, scrubbed, .. } = st;
    let mem = mem.as_ref().ok_or(EIO)?;
    let size = mem.len() as u64;
    let mut map = ScrubMap::new(scrubbed);
    let scrub_on = *crate::module_parameters::scrub_memory.value();
    let mut zeroed = 0u64;
    for chunk in rules::chunks_touched(offset, len) {
        if map.is_scrubbed(chunk) {
            continue;
        }
        if scrub_on {
            if zeroed == budget {
                return Ok(Scrubbed::Partly);
            }
            let bytes = rules::chunk_bytes(chunk, size);
            mem.zero(bytes.start as usize, (bytes.end - bytes.start) as usize)?;
            zeroed += 1;
            cond_resched();
        }
        map.mark(chunk);
    }
    Ok(Scrubbed::All)
}

/// Checks a new mapping of the region: it must lie inside it. Nothing is inserted now.
pub(crate) fn mmap(dev: &CoreDevice<CxlVfioPci>, map: &RegionMap<'_>) -> Result {
    let (_, fw) = firmware(dev).ok_or(EINVAL)?;
    rules::check_mmap(fw.size, map.offset(), map.len()).map_err(|_| EINVAL)
}

/// Serves a fault in a mapping of the region.
pub(crate) fn fault(dev: &Syscall<'_, CxlVfioPci>, fault: &RegionFault<'_>) -> FaultResult {
    let Some((cxl, fw)) = firmware(dev) else {
        return FaultResult::SIGBUS;
    };
    let (_memory, mut st) = match lock_active(dev, cxl, fw) {
        Ok(locked) => locked,
        // As vfio-pci-core's BAR faults: nothing is mapped while the function is powered down.
        Err(Unavailable::PoweredDown | Unavailable::Inactive) => return FaultResult::SIGBUS,
        Err(Unavailable::Interrupted) => return FaultResult::AGAIN,
    };
    let offset = fault.offset();
    match &st.mem {
        // A huge piece whose memory is not aligned for it: let the mm core retry smaller
        // before scrubbing anything.
        Some(mem) if !fault.can_insert(mem, offset) => return FaultResult::FALLBACK,
        Some(_) => {}
        None => return FaultResult::SIGBUS,
    }
    match scrub(&mut st, offset, fault.size().bytes(), FAULT_SCRUB_CHUNKS) {
        Ok(Scrubbed::All) => {}
        // The locks are dropped on return; the access faults again and scrubs on.
        Ok(Scrubbed::Partly) => return FaultResult::AGAIN,
        Err(_) => return FaultResult::SIGBUS,
    }
    match &st.mem {
        Some(mem) => fault.insert(mem, offset),
        None => FaultResult::SIGBUS,
    }
}

/// `read` (`write` false) or `write` of up to `count` bytes at `offset` of the region, clamped
/// to its end. User memory is copied outside the locks, through a bounce buffer, so that a
/// user buffer that is itself a mapping of the region cannot deadlock.
pub(crate) fn rw(
    dev: &Syscall<'_, CxlVfioPci>,
    buf: UserPtr,
    count: usize,
    offset: u64,
    write: bool,
) -> Result<usize> {
    let (cxl, fw) = firmware(dev).ok_or(EINVAL)?;
    let count = rules::clamp_transfer(fw.size, offset, count).map_err(|_| EINVAL)?;
    let mut bounce = KVec::new();
    bounce.extend_with(count.min(TRANSFER_CHUNK), 0u8, GFP_KERNEL)?;
    let mut done = 0usize;
    while done < count {
        let n = (count - done).min(TRANSFER_CHUNK);
        let piece = &mut bounce[..n];
        let user = UserSlice::new(buf + done, n);
        let at = offset + done as u64;
        let step = if write {
            user.reader().read_slice(piece).and_then(|()| {
                with_memory(dev, cxl, fw, at, n, |mem| mem.write(at as usize, piece))
            })
        } else {
            with_memory(dev, cxl, fw, at, n, |mem| mem.read(at as usize, piece))
                .and_then(|()| user.writer().write_slice(piece))
        };
        match step {
            Ok(()) => done += n,
            // What was done before stays done: report it as a short transfer.
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Runs `op` on the memory for an access to `[offset, offset + len)`, with the locks held,
/// once the device is powered, the region active and the touched chunks scrubbed. `EIO`
/// otherwise.
fn with_memory(
    dev: &Syscall<'_, CxlVfioPci>,
    cxl: &CxlDevice,
    fw: &FirmwareDecoder,
    offset: u64,
    len: usize,
    op: impl FnOnce(&DeviceMemory) -> Result,
) -> Result {
    let (_memory, mut st) = match lock_active(dev, cxl, fw) {
        Ok(locked) => locked,
        Err(Unavailable::PoweredDown | Unavailable::Inactive) => return Err(EIO),
        Err(Unavailable::Interrupted) => return Err(ERESTARTSYS),
    };
    // A piece touches at most two chunks: no budget needed.
    if scrub(&mut st, offset, len as u64, u64::MAX)? != Scrubbed::All {
        return Err(EIO);
    }
    op(st.mem.as_ref().ok_or(EIO)?)
}
