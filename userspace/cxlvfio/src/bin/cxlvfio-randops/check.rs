//! The invariant checks, run with a device's gate held for write (nothing else runs on it):
//! after every `--check-every` ops of a thread, after a reopen, and at the end.

use cxlvfio::cxl::{find_dvsec, pread_once, RealHdm, DVSEC_ID_CXL_DEVICE, DVSEC_VENDOR_CXL};
use cxlvfio::kmsg;
use cxlvfio::pci;
use cxlvfio::randops::hostaddr::Image;
use cxlvfio::randops::invariants::{dvsec_changes, hdm_changes};
use cxlvfio::sigbus;

use crate::ops::read_full;
use crate::state::{Core, DevShared, Failure, Family, Shared};

/// Bytes of DPA compared per pread.
const VERIFY_STEP: usize = 256 << 10;

/// The real HDM decoder block and CXL Device DVSEC, as the host sees them now.
pub fn hardware_view(bdf: &str) -> Result<(Vec<u32>, Vec<u8>, u64, u64), String> {
    let hdm = RealHdm::locate(bdf)?;
    let dwords = hdm.dwords()?;
    let (base, size, _) = hdm.decoder(0)?;
    drop(hdm);
    let path = pci::device_dir(bdf).join("config");
    let cfg = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let (pos, len) = find_dvsec(&cfg, DVSEC_VENDOR_CXL, DVSEC_ID_CXL_DEVICE)
        .ok_or("no CXL Device DVSEC in sysfs config")?;
    let dvsec = cfg
        .get(pos..pos + len)
        .ok_or("the DVSEC runs past sysfs config")?
        .to_vec();
    Ok((dwords, dvsec, base, size))
}

/// Compares the real registers with the start (invariant a).
pub fn check_hardware(ds: &DevShared, when: &str) -> Result<(), Failure> {
    let (hdm, dvsec, _, _) =
        hardware_view(&ds.bdf).map_err(|e| format!("{when}: the host view: {e}"))?;
    let mut changes = hdm_changes(&ds.start.hdm, &hdm);
    changes.extend(
        dvsec_changes(&ds.start.dvsec_hw, &dvsec)
            .into_iter()
            .map(|c| format!("DVSEC {c}")),
    );
    if changes.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            Family::Hardware,
            format!("{when}: {}", changes.join("; ")),
        ))
    }
}

/// Every check on an open device.
pub fn check_device(shared: &Shared, ds: &DevShared, core: &mut Core, when: &str) -> Vec<Failure> {
    let mut out = Vec::new();
    let Some(dev) = core.dev.as_ref() else {
        return vec![Failure::new(
            Family::Ops,
            format!("{when}: the device is closed"),
        )];
    };
    let info = &core.info;
    // (c) Every known byte of every slice reads back. First, since an access is what
    // restores decoder 0 after a power change the driver did not start itself.
    for (t, m) in core.threads.iter_mut().enumerate() {
        let td = m.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut rel = 0;
        while rel < td.shadow.len() {
            let n = VERIFY_STEP.min(td.shadow.len() - rel);
            if td.shadow.unknown_chunks(rel, n).is_empty() {
                let mut buf = vec![0u8; n];
                match read_full(dev, info.dpa.pos(td.slice_off + rel as u64), &mut buf) {
                    Ok(()) => {
                        if let Err(m) = td.shadow.check(rel, &buf) {
                            out.push(Failure::new(
                                Family::Dpa,
                                format!("{when}: thread {t}'s slice: {m}"),
                            ));
                            break;
                        }
                    }
                    Err(e) => {
                        out.push(Failure::new(
                            Family::Ops,
                            format!("{when}: DPA verify: {e}"),
                        ));
                        break;
                    }
                }
            }
            rel += n;
        }
    }
    // (a) The real decoders and DVSEC.
    if let Err(f) = check_hardware(ds, when) {
        out.push(f);
    }
    // (b) Whole COMP_REGS and DVSEC images, device and region info.
    let mut comp = Image::new(info.comp.size as usize);
    for off in (0..info.comp.size).step_by(4) {
        match pread_once(dev.device(), info.comp.pos(off), 4) {
            Ok(b) => {
                if let Some(hit) = comp.record_and_scan(&ds.addrs, off as usize, &b) {
                    out.push(Failure::new(
                        Family::HostAddr,
                        format!("{when}: COMP_REGS: {hit}"),
                    ));
                    break;
                }
            }
            Err(e) => {
                out.push(Failure::new(
                    Family::Ops,
                    format!("{when}: COMP_REGS read at {off:#x}: {e}"),
                ));
                break;
            }
        }
    }
    let (pos, len) = info.dvsec;
    match pread_once(dev.device(), info.config.pos(pos), len) {
        Ok(b) => {
            if let Some(hit) = ds.addrs.scan(&b) {
                out.push(Failure::new(
                    Family::HostAddr,
                    format!("{when}: DVSEC: {hit}"),
                ));
            }
        }
        Err(e) => out.push(Failure::new(
            Family::Ops,
            format!("{when}: DVSEC read: {e}"),
        )),
    }
    match dev.info() {
        Ok(i) => {
            if let Some(hit) = ds.addrs.scan(&i.raw) {
                out.push(Failure::new(
                    Family::HostAddr,
                    format!("{when}: device info: {hit}"),
                ));
            }
        }
        Err(e) => out.push(Failure::new(Family::Ops, format!("{when}: {e}"))),
    }
    for index in 0..info.num_regions {
        if let Ok(r) = dev.region_info(index) {
            if let Some(hit) = ds.addrs.scan(&r.raw) {
                out.push(Failure::new(
                    Family::HostAddr,
                    format!("{when}: region {index} info: {hit}"),
                ));
            }
        }
    }
    out.extend(check_process(shared, when));
    out
}

/// The checks that are not about one device: SIGBUS and the kernel log.
pub fn check_process(shared: &Shared, when: &str) -> Vec<Failure> {
    let mut out = Vec::new();
    let faults = sigbus::unexpected();
    if faults != 0 {
        out.push(Failure::new(
            Family::Faults,
            format!(
                "{when}: {faults} unexpected SIGBUS so far (last at {:#x})",
                sigbus::last_address()
            ),
        ));
    }
    if let Some(mark) = shared.kmsg_mark {
        // `dmesg` is forked when /dev/kmsg cannot be read.
        let _no_reopen = shared.forks.read().unwrap_or_else(|e| e.into_inner());
        match kmsg::problems_since(mark) {
            Ok(p) if p.is_empty() => {}
            Ok(p) => out.push(Failure::new(
                Family::Kmsg,
                format!("{when}: {}", p.join(" | ")),
            )),
            Err(e) => out.push(Failure::new(
                Family::Kmsg,
                format!("{when}: kernel log: {e}"),
            )),
        }
    }
    out
}
