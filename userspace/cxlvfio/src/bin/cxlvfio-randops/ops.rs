//! The concurrent operations: each runs with its device's gate held for read, on the
//! thread's own state, and says what the kernel must answer.

use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};

use cxlvfio::cxl::{pread_once, pwrite_once, try_mmap};
use cxlvfio::ioeventfd;
use cxlvfio::mmap::{Mapping, PAGE_SIZE};
use cxlvfio::randops::gen::{
    comp_regs_access_ok, corrupt_argsz, corrupt_feature_flags, corrupt_index, dma_bad, io_len,
    region_access, register_value, span, unknown_flags, DmaBad, Span,
};
use cxlvfio::randops::ops::Op;
use cxlvfio::randops::rng::Rng;
use cxlvfio::randops::shadow::{DpaShadow, CHUNK};
use cxlvfio::sigbus;
use cxlvfio::uapi::{
    VfioDeviceInfo, VfioIrqInfo, VfioRegionInfo, IOMMU_IOAS_MAP_FIXED_IOVA,
    IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
    VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
    VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET, VFIO_DMA_MAP_FLAG_READ,
    VFIO_DMA_MAP_FLAG_WRITE,
};
use cxlvfio::vfio::UNKNOWN_VFIO_NR_MIN;
use cxlvfio::IommuMode;

use crate::state::{
    errno_name, expect, names, Core, DevShared, Failure, Family, Map, MapKind, Outcome, Shared,
    ThreadDev, CLEAN, DMA_SLOT, DMA_SLOTS,
};

/// Mappings a thread keeps per device.
const MAX_MAPS: usize = 4;
/// Largest DPA transfer.
const MAX_DPA_IO: usize = 64 << 10;
/// Largest BAR or config transfer.
const MAX_REG_IO: usize = 4096;
/// Bytes one touch reads or writes at most.
const MAX_TOUCH: usize = 4096;
/// Where each thread's DMA slots start, and the space between threads.
const DMA_IOVA_BASE: u64 = 0x40_0000_0000;
const DMA_IOVA_STRIDE: u64 = 0x1_0000_0000;

/// What an operation works with.
pub struct Cx<'a> {
    pub shared: &'a Shared,
    pub ds: &'a DevShared,
    pub core: &'a Core,
    pub td: &'a mut ThreadDev,
    pub rng: &'a mut Rng,
    pub t: usize,
}

pub type OpResult = Result<Outcome, Failure>;

impl Cx<'_> {
    /// Logs what the op is about to do (before doing it: a hang then shows it).
    pub fn log(&self, what: String) {
        self.shared.rings[self.t]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{} {what}", self.ds.bdf));
    }

    fn scan(&self, what: &str, bytes: &[u8]) -> Result<(), Failure> {
        match self.ds.addrs.scan(bytes) {
            None => Ok(()),
            Some(hit) => Err(Failure::new(Family::HostAddr, format!("{what}: {hit}"))),
        }
    }
}

/// Runs one concurrent operation.
pub fn run(op: Op, cx: &mut Cx<'_>) -> OpResult {
    match op {
        Op::GetInfo => get_info(cx),
        Op::GetInfoBad => get_info_bad(cx),
        Op::RegionInfo => region_info(cx),
        Op::RegionInfoBad => region_info_bad(cx),
        Op::IrqInfo => irq_info(cx),
        Op::IrqInfoBad => irq_info_bad(cx),
        Op::ConfigRead => config_read(cx),
        Op::ConfigWriteDvsec => config_write_dvsec(cx),
        Op::ConfigWriteMisc => config_write_misc(cx),
        Op::BarRead => bar_read(cx),
        Op::BarWriteBlock => bar_write_block(cx),
        Op::CompRegsRead => comp_regs(cx, false),
        Op::CompRegsWrite => comp_regs(cx, true),
        Op::DpaRead => dpa_read(cx),
        Op::DpaWrite => dpa_write(cx),
        Op::DpaEdge => dpa_edge(cx),
        Op::Mmap => mmap(cx),
        Op::Munmap => munmap(cx),
        Op::MmapBad => mmap_bad(cx),
        Op::Touch => touch(cx),
        Op::Reset => reset(cx),
        Op::LowPowerExitD0 => low_power_exit_d0(cx),
        Op::FeatureProbe => feature_probe(cx),
        Op::FeatureBad => feature_bad(cx),
        Op::IoeventfdBad => ioeventfd_bad(cx),
        Op::DmaMap => dma_map(cx),
        Op::DmaUnmap => dma_unmap(cx),
        Op::DmaBad => dma_bad_op(cx),
        Op::UnknownIoctl => unknown_ioctl(cx),
        Op::LowPowerWindow | Op::PmD3Window | Op::DecodeOffWindow | Op::Reopen => {
            unreachable!("{} is exclusive", op.name())
        }
    }
}

fn ok(s: impl Into<String>) -> OpResult {
    Ok(Outcome::Ok(s.into()))
}

fn outcome<T>(r: Result<T, i32>, show: impl FnOnce(T) -> String) -> OpResult {
    match r {
        Ok(v) => Ok(Outcome::Ok(show(v))),
        Err(e) => Ok(Outcome::Errno(e)),
    }
}

/// A buffer for an info request with `argsz`, poisoned so that what the kernel wrote shows.
fn info_buffer(argsz: u32, minsz: usize, rng: &mut Rng) -> Vec<u8> {
    let mut buf = vec![0xa5u8; (argsz as usize).max(minsz)];
    buf[..4].copy_from_slice(&argsz.to_ne_bytes());
    // Input flags are ignored by the kernel: random ones must change nothing.
    buf[4..8].copy_from_slice(&rng.next_u32().to_ne_bytes());
    buf
}

// --- info ioctls --------------------------------------------------------------------------

fn get_info(cx: &mut Cx<'_>) -> OpResult {
    cx.log("VFIO_DEVICE_GET_INFO".into());
    let info = cx
        .core
        .dev()?
        .info()
        .map_err(|e| format!("VFIO_DEVICE_GET_INFO: {e}"))?;
    cx.scan("device info", &info.raw)?;
    ok(format!("{} bytes", info.raw.len()))
}

fn get_info_bad(cx: &mut Cx<'_>) -> OpResult {
    let size = size_of::<VfioDeviceInfo>();
    // vfio-pci-core's minimum is the end of num_irqs: cap_offset is optional.
    let minsz = std::mem::offset_of!(VfioDeviceInfo, cap_offset);
    let argsz = corrupt_argsz(cx.rng, minsz as u32);
    let mut buf = info_buffer(argsz, size, cx.rng);
    cx.log(format!("VFIO_DEVICE_GET_INFO argsz {argsz}"));
    let want: &[i32] = if (argsz as usize) < minsz {
        &[libc::EINVAL]
    } else {
        &[]
    };
    let r = expect(
        cx.core.dev()?.get_info_raw(&mut buf),
        want,
        &format!("GET_INFO argsz {argsz}"),
    )?;
    if r.is_ok() {
        if !want.is_empty() {
            return Err(format!("GET_INFO argsz {argsz} succeeded, expected EINVAL").into());
        }
        cx.scan("device info (raw)", &buf[..(argsz as usize).min(buf.len())])?;
    }
    outcome(r, |_| "ok".into())
}

fn region_info(cx: &mut Cx<'_>) -> OpResult {
    let valid: Vec<u32> = (0..cx.core.info.num_regions)
        .filter(|&i| cx.core.info.regions[i as usize].is_some())
        .collect();
    let index = *cx.rng.pick(&valid);
    cx.log(format!("VFIO_DEVICE_GET_REGION_INFO {index}"));
    let r = cx
        .core
        .dev()?
        .region_info(index)
        .map_err(|e| format!("GET_REGION_INFO {index}: {e}"))?;
    cx.scan(&format!("region {index} info"), &r.raw)?;
    let known = cx.core.info.regions[index as usize].expect("valid");
    if (r.offset, r.size) != (known.offset, known.size) {
        return Err(format!(
            "region {index}: offset {:#x} size {:#x}, {:#x} {:#x} at the open",
            r.offset, r.size, known.offset, known.size
        )
        .into());
    }
    ok(format!("size {:#x}", r.size))
}

fn region_info_bad(cx: &mut Cx<'_>) -> OpResult {
    let minsz = size_of::<VfioRegionInfo>();
    let argsz = corrupt_argsz(cx.rng, minsz as u32);
    let index = corrupt_index(cx.rng, cx.core.info.num_regions);
    let mut buf = info_buffer(argsz, minsz, cx.rng);
    buf[8..12].copy_from_slice(&index.to_ne_bytes());
    cx.log(format!("VFIO_DEVICE_GET_REGION_INFO {index} argsz {argsz}"));
    let valid = cx
        .core
        .info
        .regions
        .get(index as usize)
        .is_some_and(|r| r.is_some());
    let refused = (argsz as usize) < minsz || !valid;
    let want: &[i32] = if refused { &[libc::EINVAL] } else { &[] };
    let what = format!("GET_REGION_INFO {index} argsz {argsz}");
    let r = expect(cx.core.dev()?.get_region_info_raw(&mut buf), want, &what)?;
    if r.is_ok() {
        if refused {
            return Err(format!("{what} succeeded, expected EINVAL").into());
        }
        cx.scan(&what, &buf[..(argsz as usize).min(buf.len())])?;
    }
    outcome(r, |_| "ok".into())
}

fn irq_info(cx: &mut Cx<'_>) -> OpResult {
    let valid: Vec<u32> = (0..cx.core.info.num_irqs)
        .filter(|&i| cx.core.info.irqs[i as usize])
        .collect();
    if valid.is_empty() {
        return Ok(Outcome::Skipped("no IRQ index".into()));
    }
    let index = *cx.rng.pick(&valid);
    cx.log(format!("VFIO_DEVICE_GET_IRQ_INFO {index}"));
    let i = cx
        .core
        .dev()?
        .irq_info(index)
        .map_err(|e| format!("GET_IRQ_INFO {index}: {e}"))?;
    ok(format!("count {}", i.count))
}

fn irq_info_bad(cx: &mut Cx<'_>) -> OpResult {
    let minsz = size_of::<VfioIrqInfo>();
    let argsz = corrupt_argsz(cx.rng, minsz as u32);
    let index = corrupt_index(cx.rng, cx.core.info.num_irqs);
    let mut buf = info_buffer(argsz, minsz, cx.rng);
    buf[8..12].copy_from_slice(&index.to_ne_bytes());
    cx.log(format!("VFIO_DEVICE_GET_IRQ_INFO {index} argsz {argsz}"));
    let valid = cx
        .core
        .info
        .irqs
        .get(index as usize)
        .copied()
        .unwrap_or(false);
    let refused = (argsz as usize) < minsz || !valid;
    let want: &[i32] = if refused { &[libc::EINVAL] } else { &[] };
    let what = format!("GET_IRQ_INFO {index} argsz {argsz}");
    let r = expect(cx.core.dev()?.get_irq_info_raw(&mut buf), want, &what)?;
    if r.is_ok() {
        if refused {
            return Err(format!("{what} succeeded, expected EINVAL").into());
        }
        cx.scan(&what, &buf[..minsz])?;
    }
    outcome(r, |_| "ok".into())
}

// --- config space ---------------------------------------------------------------------------

/// Errnos of a config access that does not fit config space (vfio-pci's config code
/// answers `EFAULT` for some, the region dispatch `EINVAL` for others).
const CONFIG_OUTSIDE: &[i32] = &[libc::EINVAL, libc::EFAULT];

fn config_read(cx: &mut Cx<'_>) -> OpResult {
    let cfg = cx.core.info.config;
    let (off, len) = region_access(cx.rng, cfg.size, 64);
    cx.log(format!("config read {len} at {off:#x}"));
    let sp = span(cfg.size, off, len);
    let allowed: &[i32] = match sp {
        Span::Inside => &[],
        _ => CONFIG_OUTSIDE,
    };
    let what = format!("config read {len} at {off:#x}");
    let r = expect(
        pread_once(cx.core.dev()?.device(), cfg.pos(off), len),
        allowed,
        &what,
    )?;
    if let Ok(bytes) = &r {
        if bytes.is_empty() || bytes.len() > len || sp == Span::Beyond {
            return Err(format!("{what}: {} bytes", bytes.len()).into());
        }
        // The CXL Device DVSEC's part goes to its image and is scanned.
        let (pos, dlen) = cx.core.info.dvsec;
        let (start, end) = (
            off.max(pos),
            (off + bytes.len() as u64).min(pos + dlen as u64),
        );
        if start < end {
            let part = &bytes[(start - off) as usize..(end - off) as usize];
            if let Some(hit) =
                cx.td
                    .dvsec_img
                    .record_and_scan(&cx.ds.addrs, (start - pos) as usize, part)
            {
                return Err(Failure::new(Family::HostAddr, format!("DVSEC read: {hit}")));
            }
        }
    }
    outcome(r, |b| format!("{} bytes", b.len()))
}

fn config_write_dvsec(cx: &mut Cx<'_>) -> OpResult {
    let cfg = cx.core.info.config;
    let (pos, len) = if cx.core.info.other_dvsecs.is_empty() || cx.rng.chance(3, 4) {
        cx.core.info.dvsec
    } else {
        *cx.rng.pick(&cx.core.info.other_dvsecs)
    };
    // Inside, or up to 2 bytes across either edge.
    let off = (pos + cx.rng.below(len as u64 + 4)).saturating_sub(2);
    let size = *cx.rng.pick(&[1usize, 2, 4]);
    let value = register_value(cx.rng).to_le_bytes();
    let bytes: Vec<u8> = (0..size)
        .map(|i| cx.ds.addrs.avoid_byte((off as usize) + i, value[i]))
        .collect();
    cx.log(format!(
        "config write {} at {off:#x} (DVSEC at {pos:#x})",
        cxlvfio::pattern::hex(&bytes)
    ));
    let sp = span(cfg.size, off, size);
    let allowed: &[i32] = if sp == Span::Inside {
        &[]
    } else {
        CONFIG_OUTSIDE
    };
    let what = format!("config write {size} at {off:#x}");
    let r = expect(
        pwrite_once(cx.core.dev()?.device(), cfg.pos(off), &bytes),
        allowed,
        &what,
    )?;
    if let Ok(n) = r {
        if n != size {
            return Err(format!("{what}: {n} bytes written").into());
        }
    }
    outcome(r, |n| format!("{n} bytes"))
}

/// Config registers any write to which is harmless: Cache Line Size, Latency Timer,
/// Interrupt Line.
const HARMLESS_CONFIG: &[u64] = &[0x0c, 0x0d, 0x3c];

fn config_write_misc(cx: &mut Cx<'_>) -> OpResult {
    let cfg = cx.core.info.config;
    let (off, size) = if cx.rng.chance(1, 2) {
        (*cx.rng.pick(HARMLESS_CONFIG), 1usize)
    } else {
        (
            cfg.size + cx.rng.below(0x100),
            *cx.rng.pick(&[1usize, 2, 4]),
        )
    };
    let mut bytes = vec![0u8; size];
    cx.rng.fill(&mut bytes);
    cx.log(format!(
        "config write {} at {off:#x}",
        cxlvfio::pattern::hex(&bytes)
    ));
    let sp = span(cfg.size, off, size);
    let allowed: &[i32] = if sp == Span::Inside {
        &[]
    } else {
        CONFIG_OUTSIDE
    };
    let what = format!("config write {size} at {off:#x}");
    let r = expect(
        pwrite_once(cx.core.dev()?.device(), cfg.pos(off), &bytes),
        allowed,
        &what,
    )?;
    if r.is_ok() && sp != Span::Inside {
        return Err(format!("{what} past the end succeeded").into());
    }
    outcome(r, |n| format!("{n} bytes"))
}

// --- BARs and COMP_REGS -----------------------------------------------------------------------

fn bar_read(cx: &mut Cx<'_>) -> OpResult {
    let info = &cx.core.info;
    let mut indices = crate::state::DevInfo::fixed_non_config();
    indices.push(info.num_regions + cx.rng.below(3) as u32);
    let index = *cx.rng.pick(&indices);
    let region = info.regions.get(index as usize).copied().flatten();
    let dev = cx.core.dev()?;
    let Some(region) = region.filter(|r| r.size > 0) else {
        // Invalid, absent or empty: any clean refusal (the position is that of the index).
        let pos = u64::from(index) << 40;
        cx.log(format!("read of region {index} (none or empty)"));
        let r = expect(
            pread_once(dev.device(), pos, 4),
            CLEAN,
            &format!("read of region {index}"),
        )?;
        if let Ok(b) = &r {
            if !b.is_empty() {
                return Err(
                    format!("read of empty region {index} returned {} bytes", b.len()).into(),
                );
            }
        }
        return outcome(r, |b| format!("{} bytes", b.len()));
    };
    let (off, len) = region_access(cx.rng, region.size, MAX_REG_IO);
    cx.log(format!("BAR/region {index} read {len} at {off:#x}"));
    let sp = span(region.size, off, len);
    let what = format!("region {index} read {len} at {off:#x}");
    let allowed: &[i32] = match sp {
        Span::Inside => &[],
        Span::Straddle(_) => &[libc::EINVAL],
        Span::Beyond => &[libc::EINVAL],
    };
    let r = expect(
        pread_once(dev.device(), region.pos(off), len),
        allowed,
        &what,
    )?;
    if let Ok(b) = &r {
        let max = match sp {
            Span::Straddle(n) => n,
            Span::Beyond => 0,
            Span::Inside => len,
        };
        if b.is_empty() || b.len() > max {
            return Err(format!("{what}: {} bytes", b.len()).into());
        }
        if index == info.comp_bar.index {
            let (bo, bs) = (info.block_offset, info.block_size);
            let (start, end) = (off.max(bo), (off + b.len() as u64).min(bo + bs));
            if start < end {
                let part = &b[(start - off) as usize..(end - off) as usize];
                if let Some(hit) =
                    cx.td
                        .bar_img
                        .record_and_scan(&cx.ds.addrs, (start - bo) as usize, part)
                {
                    return Err(Failure::new(
                        Family::HostAddr,
                        format!("component block read: {hit}"),
                    ));
                }
            }
        }
    }
    outcome(r, |b| format!("{} bytes", b.len()))
}

fn bar_write_block(cx: &mut Cx<'_>) -> OpResult {
    let info = &cx.core.info;
    let bar = info.comp_bar;
    // Mostly the CXL.mem area that COMP_REGS emulates, else anywhere in the block.
    let cm = info.block_offset + cxlvfio::cxl::CXL_CM_OFFSET;
    let off = if cx.rng.chance(3, 4) && info.comp.size >= 4 {
        cm + 4 * cx.rng.below(info.comp.size / 4)
    } else {
        info.block_offset + 4 * cx.rng.below(info.block_size / 4)
    };
    let aligned = cx.rng.chance(7, 8);
    let (off, size) = if aligned {
        (off, 4usize)
    } else {
        (off + cx.rng.range(0, 3), *cx.rng.pick(&[1usize, 2, 8]))
    };
    let value = cx.ds.addrs.avoid(register_value(cx.rng)).to_le_bytes();
    let bytes: Vec<u8> = (0..size)
        .map(|i| cx.ds.addrs.avoid_byte(off as usize + i, value[i % 4]))
        .collect();
    cx.log(format!(
        "BAR{} write {} at {off:#x} (block)",
        bar.index,
        cxlvfio::pattern::hex(&bytes)
    ));
    let what = format!("BAR{} block write {size} at {off:#x}", bar.index);
    let allowed: &[i32] = if aligned { &[] } else { &[libc::EINVAL] };
    let r = expect(
        pwrite_once(cx.core.dev()?.device(), bar.pos(off), &bytes),
        allowed,
        &what,
    )?;
    if let Ok(n) = r {
        if n == 0 || n > size {
            return Err(format!("{what}: {n} bytes written").into());
        }
    }
    outcome(r, |n| format!("{n} bytes"))
}

fn comp_regs(cx: &mut Cx<'_>, write: bool) -> OpResult {
    let comp = cx.core.info.comp;
    let (off, len) = if cx.rng.chance(3, 4) {
        (4 * cx.rng.below(comp.size / 4), 4usize)
    } else {
        region_access(cx.rng, comp.size, 16)
    };
    let valid = comp_regs_access_ok(comp.size, off, len);
    let want: &[i32] = if valid { &[] } else { &[libc::EINVAL] };
    let dev = cx.core.dev()?;
    if write {
        let mut bytes = vec![0u8; len];
        for (i, b) in bytes.iter_mut().enumerate() {
            let v = register_value(cx.rng).to_le_bytes()[i % 4];
            *b = cx.ds.addrs.avoid_byte(off as usize + i, v);
        }
        cx.log(format!(
            "COMP_REGS write {} at {off:#x}",
            cxlvfio::pattern::hex(&bytes)
        ));
        let what = format!("COMP_REGS write {len} at {off:#x}");
        let r = expect(
            pwrite_once(dev.device(), comp.pos(off), &bytes),
            want,
            &what,
        )?;
        match r {
            Ok(n) if !valid || n != 4 => Err(format!("{what}: {n} bytes written").into()),
            r => outcome(r, |n| format!("{n} bytes")),
        }
    } else {
        cx.log(format!("COMP_REGS read {len} at {off:#x}"));
        let what = format!("COMP_REGS read {len} at {off:#x}");
        let r = expect(pread_once(dev.device(), comp.pos(off), len), want, &what)?;
        if let Ok(b) = &r {
            if !valid || b.len() != 4 {
                return Err(format!("{what}: {} bytes", b.len()).into());
            }
            if let Some(hit) = cx
                .td
                .comp_img
                .record_and_scan(&cx.ds.addrs, off as usize, b)
            {
                return Err(Failure::new(Family::HostAddr, format!("COMP_REGS: {hit}")));
            }
        }
        outcome(r, |b| {
            format!(
                "{:#010x}",
                u32::from_le_bytes(b[..4].try_into().expect("4"))
            )
        })
    }
}

// --- DPA ----------------------------------------------------------------------------------------

/// Reads `buf.len()` bytes at `pos` of the device, one pread after another until done.
pub fn read_full(cx_dev: &cxlvfio::Device, pos: u64, buf: &mut [u8]) -> Result<(), String> {
    let mut done = 0;
    while done < buf.len() {
        match cx_dev.pread(&mut buf[done..], pos + done as u64) {
            Ok(0) => return Err(format!("pread at {:#x}: 0 bytes", pos + done as u64)),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "pread of {:#x} bytes at {:#x}: {}",
                    buf.len() - done,
                    pos + done as u64,
                    errno_name(e.raw_os_error().unwrap_or(0))
                ))
            }
        }
    }
    Ok(())
}

/// Rule 4 of the shadow: adopts the unknown chunks of `[rel, rel + len)` of the slice.
pub fn ensure_known(
    dev: &cxlvfio::Device,
    dpa_off: u64,
    slice_off: u64,
    shadow: &mut DpaShadow,
    rel: usize,
    len: usize,
) -> Result<(), Failure> {
    for c in shadow.unknown_chunks(rel, len) {
        let mut buf = vec![0u8; CHUNK];
        read_full(dev, dpa_off + slice_off + (c * CHUNK) as u64, &mut buf)
            .map_err(|e| format!("adopting DPA chunk {c}: {e}"))?;
        shadow.adopt(c, &buf);
    }
    Ok(())
}

fn dpa_pick(rng: &mut Rng, slice_len: usize, max: usize) -> (usize, usize) {
    let rel = if rng.chance(1, 4) {
        // Near a chunk or page boundary: where splits and scrub edges are.
        let edge = if rng.chance(1, 2) { CHUNK } else { PAGE_SIZE };
        let b = edge * rng.below((slice_len / edge) as u64 + 1) as usize;
        b.saturating_sub(rng.below(64) as usize).min(slice_len - 1)
    } else {
        rng.below(slice_len as u64) as usize
    };
    let len = io_len(rng, max).min(slice_len - rel);
    (rel, len)
}

fn dpa_read(cx: &mut Cx<'_>) -> OpResult {
    let (rel, len) = dpa_pick(cx.rng, cx.td.shadow.len(), MAX_DPA_IO);
    let dpa = cx.core.info.dpa;
    let pos = dpa.pos(cx.td.slice_off + rel as u64);
    cx.log(format!("DPA pread {len:#x} at slice+{rel:#x}"));
    let dev = cx.core.dev()?;
    ensure_known(
        dev,
        dpa.offset,
        cx.td.slice_off,
        &mut cx.td.shadow,
        rel,
        len,
    )?;
    let mut buf = vec![0u8; len];
    let n = dev
        .pread(&mut buf, pos)
        .map_err(|e| format!("DPA pread {len:#x} at slice+{rel:#x}: {e}"))?;
    if n != len {
        return Err(format!("DPA pread {len:#x} at slice+{rel:#x}: {n} bytes").into());
    }
    cx.td.shadow.check(rel, &buf).map_err(|m| {
        Failure::new(
            Family::Dpa,
            format!("DPA pread {len:#x} at slice+{rel:#x}: {m}"),
        )
    })?;
    ok(format!("{n} bytes"))
}

fn dpa_write(cx: &mut Cx<'_>) -> OpResult {
    let (rel, len) = dpa_pick(cx.rng, cx.td.shadow.len(), MAX_DPA_IO);
    let dpa = cx.core.info.dpa;
    let pos = dpa.pos(cx.td.slice_off + rel as u64);
    let mut data = vec![0u8; len];
    cx.rng.fill(&mut data);
    cx.log(format!("DPA pwrite {len:#x} at slice+{rel:#x}"));
    let dev = cx.core.dev()?;
    ensure_known(
        dev,
        dpa.offset,
        cx.td.slice_off,
        &mut cx.td.shadow,
        rel,
        len,
    )?;
    let n = dev
        .pwrite(&data, pos)
        .map_err(|e| format!("DPA pwrite {len:#x} at slice+{rel:#x}: {e}"))?;
    if n != len {
        return Err(format!("DPA pwrite {len:#x} at slice+{rel:#x}: {n} bytes").into());
    }
    cx.td.shadow.write(rel, &data);
    ok(format!("{n} bytes"))
}

fn dpa_edge(cx: &mut Cx<'_>) -> OpResult {
    let dpa = cx.core.info.dpa;
    let dev = cx.core.dev()?;
    match cx.rng.below(3) {
        0 => {
            // Clamped at the end: the region's last chunk, nobody's, only ever read.
            let len = io_len(cx.rng, MAX_REG_IO).max(2);
            let inside = cx.rng.range(1, len as u64 - 1);
            let off = dpa.size - inside;
            cx.log(format!(
                "DPA pread {len:#x} at {off:#x} (clamped to {inside:#x})"
            ));
            let mut buf = vec![0u8; len];
            let n = dev
                .pread(&mut buf, dpa.pos(off))
                .map_err(|e| format!("DPA pread across the end at {off:#x}: {e}"))?;
            if n as u64 != inside {
                return Err(format!(
                    "DPA pread {len:#x} at {off:#x}: {n} bytes, expected {inside:#x}"
                )
                .into());
            }
            if cx.ds.scrub == Some(true) {
                if let Some(at) = buf[..n].iter().position(|&b| b != 0) {
                    return Err(Failure::new(
                        Family::Dpa,
                        format!(
                            "the spare last chunk, never written in this open, reads {:#04x} at {:#x}: not scrubbed",
                            buf[at],
                            off + at as u64
                        ),
                    ));
                }
            }
            ok(format!("{n} bytes"))
        }
        w => {
            let write = w == 2;
            let off = dpa.size + cx.rng.below(4 * PAGE_SIZE as u64);
            let len = io_len(cx.rng, 64);
            cx.log(format!(
                "DPA {} {len:#x} at {off:#x} (past the end)",
                if write { "pwrite" } else { "pread" }
            ));
            let mut buf = vec![0u8; len];
            let r = if write {
                dev.pwrite(&buf, dpa.pos(off))
            } else {
                dev.pread(&mut buf, dpa.pos(off))
            };
            let what = format!("DPA access past the end at {off:#x}");
            let r = expect(r, &[libc::EINVAL], &what)?;
            if let Ok(n) = r {
                return Err(format!("{what}: {n} bytes, expected EINVAL").into());
            }
            outcome(r, |_| String::new())
        }
    }
}

// --- mappings -----------------------------------------------------------------------------------

fn mmap(cx: &mut Cx<'_>) -> OpResult {
    if cx.td.maps.len() >= MAX_MAPS {
        let i = cx.rng.below(cx.td.maps.len() as u64) as usize;
        cx.td.maps.swap_remove(i);
    }
    let info = &cx.core.info;
    let fd = cx.core.dev()?.as_fd();
    let page = PAGE_SIZE as u64;
    let bar_areas: Vec<(u64, u64)> = info
        .sparse
        .iter()
        .copied()
        .filter(|&(o, s)| s >= page && o % page == 0)
        .collect();
    if bar_areas.is_empty() || cx.rng.chance(3, 4) {
        let pages = cx.td.shadow.len() / PAGE_SIZE;
        let first = cx.rng.below(pages as u64) as usize;
        let n = cx.rng.range(1, (pages - first) as u64) as usize;
        let (rel, len) = (first * PAGE_SIZE, n * PAGE_SIZE);
        cx.log(format!("mmap DPA slice+{rel:#x} len {len:#x}"));
        let map = Mapping::shared(fd, info.dpa.pos(cx.td.slice_off + rel as u64), len)
            .map_err(|e| format!("mmap of DPA slice+{rel:#x} len {len:#x}: {e}"))?;
        cx.td.maps.push(Map {
            kind: MapKind::Dpa { rel },
            map,
        });
        ok(format!(
            "at {:#x}",
            cx.td.maps.last().expect("pushed").map.addr()
        ))
    } else {
        let (ao, asz) = *cx.rng.pick(&bar_areas);
        let pages = asz / page;
        let first = cx.rng.below(pages);
        let n = cx.rng.range(1, (pages - first).min(16));
        let (off, len) = (ao + first * page, (n * page) as usize);
        cx.log(format!(
            "mmap BAR{} +{off:#x} len {len:#x}",
            info.comp_bar.index
        ));
        let map = Mapping::shared(fd, info.comp_bar.pos(off), len).map_err(|e| {
            format!(
                "mmap of BAR{} +{off:#x} len {len:#x}: {e}",
                info.comp_bar.index
            )
        })?;
        cx.td.maps.push(Map {
            kind: MapKind::Bar { off },
            map,
        });
        ok("BAR")
    }
}

fn munmap(cx: &mut Cx<'_>) -> OpResult {
    if cx.td.maps.is_empty() {
        cx.log("munmap (none)".into());
        return Ok(Outcome::Skipped("no mapping".into()));
    }
    let i = cx.rng.below(cx.td.maps.len() as u64) as usize;
    let m = cx.td.maps.swap_remove(i);
    cx.log(format!("munmap {:?} len {:#x}", m.kind, m.map.len()));
    drop(m);
    ok("")
}

fn mmap_bad(cx: &mut Cx<'_>) -> OpResult {
    let info = &cx.core.info;
    let dev = cx.core.dev()?;
    let page = PAGE_SIZE as u64;
    let block_page = (info.block_offset + cx.rng.below(info.block_size)) / page * page;
    let cases: [(&str, u64, usize, bool); 6] = [
        ("COMP_REGS", info.comp.pos(0), PAGE_SIZE, false),
        (
            "the component block",
            info.comp_bar.pos(block_page),
            PAGE_SIZE,
            false,
        ),
        (
            "DPA past the end",
            info.dpa.pos(info.dpa.size),
            PAGE_SIZE,
            false,
        ),
        (
            "DPA across the end",
            info.dpa.pos(info.dpa.size - page),
            2 * PAGE_SIZE,
            false,
        ),
        (
            "DPA MAP_PRIVATE",
            info.dpa.pos(cx.td.slice_off),
            PAGE_SIZE,
            true,
        ),
        ("config space", info.config.pos(0), PAGE_SIZE, false),
    ];
    let (what, pos, len, private) = *cx.rng.pick(&cases);
    cx.log(format!("mmap of {what} (must fail)"));
    let r = if private {
        Mapping::map(dev.as_fd(), pos, len, libc::PROT_READ, libc::MAP_PRIVATE).map(drop)
    } else {
        try_mmap(dev.device(), pos, len)
    };
    let r = expect(r, &[libc::EINVAL], &format!("mmap of {what}"))?;
    if r.is_ok() {
        return Err(format!("mmap of {what} succeeded").into());
    }
    outcome(r, |_| String::new())
}

fn touch(cx: &mut Cx<'_>) -> OpResult {
    if cx.td.maps.is_empty() {
        cx.log("touch (no mapping)".into());
        return Ok(Outcome::Skipped("no mapping".into()));
    }
    let i = cx.rng.below(cx.td.maps.len() as u64) as usize;
    let kind = cx.td.maps[i].kind;
    let mlen = cx.td.maps[i].map.len();
    let before = sigbus::unexpected();
    let result = match kind {
        MapKind::Dpa { rel: base } => {
            let off = cx.rng.below(mlen as u64) as usize;
            let len = io_len(cx.rng, MAX_TOUCH).min(mlen - off);
            let rel = base + off;
            let dpa = cx.core.info.dpa;
            ensure_known(
                cx.core.dev()?,
                dpa.offset,
                cx.td.slice_off,
                &mut cx.td.shadow,
                rel,
                len,
            )?;
            if cx.rng.chance(1, 3) {
                let mut data = vec![0u8; len];
                cx.rng.fill(&mut data);
                cx.log(format!(
                    "store {len:#x} through the mapping at slice+{rel:#x}"
                ));
                cx.td.maps[i].map.write_bytes(off, &data);
                cx.td.shadow.write(rel, &data);
                Ok(Outcome::Ok(format!("stored {len}")))
            } else {
                cx.log(format!(
                    "load {len:#x} through the mapping at slice+{rel:#x}"
                ));
                let got = cx.td.maps[i].map.read_vec(off, len);
                match cx.td.shadow.check(rel, &got) {
                    Ok(()) => Ok(Outcome::Ok(format!("loaded {len}"))),
                    Err(m) => Err(Failure::new(
                        Family::Dpa,
                        format!("load {len:#x} through a mapping at slice+{rel:#x}: {m}"),
                    )),
                }
            }
        }
        MapKind::Bar { off: base } => {
            let off = 4 * cx.rng.below(mlen as u64 / 4) as usize;
            cx.log(format!(
                "load 4 through the BAR mapping at +{:#x}",
                base + off as u64
            ));
            let v = cx.td.maps[i].map.read_u32(off);
            Ok(Outcome::Ok(format!("{v:#x}")))
        }
    };
    let faults = sigbus::unexpected() - before;
    if faults != 0 {
        return Err(Failure::new(
            Family::Faults,
            format!(
                "{faults} SIGBUS touching {kind:?} (last at {:#x}) with the device in D0, \
                 memory decode on, not in low power",
                sigbus::last_address()
            ),
        ));
    }
    result
}

// --- reset and features -------------------------------------------------------------------------

fn reset(cx: &mut Cx<'_>) -> OpResult {
    cx.log("VFIO_DEVICE_RESET".into());
    let want: &[i32] = if cx.core.info.has_reset {
        &[]
    } else {
        &[libc::EINVAL]
    };
    let r = expect(cx.core.dev()?.reset(), want, "VFIO_DEVICE_RESET")?;
    outcome(r, |_| "reset".into())
}

fn low_power_exit_d0(cx: &mut Cx<'_>) -> OpResult {
    cx.log("LOW_POWER_EXIT in D0".into());
    cx.core
        .dev()?
        .low_power_exit()
        .map_err(|e| format!("LOW_POWER_EXIT in D0: {e}"))?;
    ok("")
}

fn feature_probe(cx: &mut Cx<'_>) -> OpResult {
    let index = *cx.rng.pick(&[
        VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
        VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
        VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
    ]);
    let flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | index;
    cx.log(format!("VFIO_DEVICE_FEATURE {flags:#x} (probe)"));
    cx.core
        .dev()?
        .feature(flags)
        .map_err(|e| format!("probe of feature {index}: {e}"))?;
    ok("")
}

fn feature_bad(cx: &mut Cx<'_>) -> OpResult {
    let flags = corrupt_feature_flags(cx.rng);
    let argsz = corrupt_argsz(cx.rng, 8);
    let mut buf = vec![0u8; (argsz as usize).max(8)];
    cx.rng.fill(&mut buf);
    buf[..4].copy_from_slice(&argsz.to_ne_bytes());
    buf[4..8].copy_from_slice(&flags.to_ne_bytes());
    cx.log(format!("VFIO_DEVICE_FEATURE {flags:#x} argsz {argsz}"));
    let r = expect(
        cx.core.dev()?.feature_raw(&mut buf),
        &[
            libc::EINVAL,
            libc::ENOTTY,
            libc::EOPNOTSUPP,
            libc::EFAULT,
            libc::EBADF,
        ],
        &format!("FEATURE {flags:#x} argsz {argsz}"),
    )?;
    outcome(r, |_| "accepted".into())
}

/// One bad `VFIO_DEVICE_IOEVENTFD` request: what it aims at, argsz, flags, device-file
/// position, eventfd (-1: remove) and the errnos that refuse it.
#[derive(Clone, Copy)]
struct IoeCase(&'static str, u32, u32, u64, i32, &'static [i32]);

fn ioeventfd_bad(cx: &mut Cx<'_>) -> OpResult {
    let info = &cx.core.info;
    let dev = cx.core.dev()?;
    let efd = ioeventfd::eventfd().map_err(|e| format!("eventfd: {e}"))?;
    let fd = efd.as_raw_fd();
    const SIZE32: u32 = ioeventfd::SIZE_32;
    let full = 32u32;
    let block_dword = info.block_offset + 4 * cx.rng.below(info.block_size / 4);
    let cases: [IoeCase; 7] = [
        IoeCase(
            "COMP_REGS",
            full,
            SIZE32,
            info.comp.pos(4 * cx.rng.below(info.comp.size / 4)),
            fd,
            &[libc::EINVAL],
        ),
        IoeCase(
            "the component block",
            full,
            SIZE32,
            info.comp_bar.pos(block_dword),
            fd,
            &[libc::EINVAL],
        ),
        IoeCase(
            "DPA",
            full,
            SIZE32,
            info.dpa.pos(cx.td.slice_off),
            fd,
            &[libc::EINVAL],
        ),
        IoeCase(
            "config space",
            full,
            SIZE32,
            info.config.pos(0x10),
            fd,
            &[libc::EINVAL],
        ),
        IoeCase(
            "a short argsz",
            cx.rng.below(32) as u32,
            SIZE32,
            info.comp_bar.pos(block_dword),
            fd,
            &[libc::EINVAL],
        ),
        IoeCase(
            "bad size flags",
            full,
            *cx.rng.pick(&[0u32, 0x3, 0x5, 0xf, 0x10, 1 << 31]),
            info.comp_bar.pos(block_dword),
            fd,
            &[libc::EINVAL],
        ),
        IoeCase(
            "removing nothing in the block",
            full,
            SIZE32,
            info.comp_bar.pos(block_dword),
            -1,
            &[libc::EINVAL, libc::ENODEV],
        ),
    ];
    let IoeCase(what, argsz, flags, pos, fd, want) = *cx.rng.pick(&cases);
    let data = cx.rng.next_u64() & 0xffff_ffff;
    cx.log(format!(
        "VFIO_DEVICE_IOEVENTFD on {what} (argsz {argsz} flags {flags:#x} at {pos:#x})"
    ));
    let r = expect(
        ioeventfd::set_raw(dev, argsz, flags, pos, data, fd),
        want,
        &format!("IOEVENTFD on {what}"),
    )?;
    if r.is_ok() {
        // Never signalled; removed again so that nothing could ever fire it.
        let _ = ioeventfd::set_raw(dev, 32, flags, pos, data, -1);
        return Err(format!(
            "IOEVENTFD on {what} (at {pos:#x}) was accepted, expected {}",
            names(want)
        )
        .into());
    }
    outcome(r, |_| String::new())
}

// --- DMA ----------------------------------------------------------------------------------------

fn dma_iova(t: usize, slot: usize) -> u64 {
    DMA_IOVA_BASE + t as u64 * DMA_IOVA_STRIDE + (slot * DMA_SLOT) as u64
}

fn dma_buf(td: &mut ThreadDev) -> Result<u64, Failure> {
    if td.dma_buf.is_none() {
        let m = Mapping::anonymous(DMA_SLOTS * DMA_SLOT)
            .map_err(|e| format!("anonymous buffer: {e}"))?;
        // Touched once so that the pages exist; the kernel pins them on map anyway.
        m.write_bytes(0, &[1]);
        td.dma_buf = Some(m);
    }
    Ok(td.dma_buf.as_ref().expect("set above").addr() as u64)
}

fn dma_map(cx: &mut Cx<'_>) -> OpResult {
    let dev = cx.core.dev()?;
    if !dev.mode().maps_dma() {
        cx.log("DMA map (no IOMMU)".into());
        return Ok(Outcome::Skipped("no IOMMU".into()));
    }
    let base = dma_buf(cx.td)?;
    let slot = cx.rng.below(DMA_SLOTS as u64) as usize;
    let iova = dma_iova(cx.t, slot);
    let mapped = cx.td.dma_mapped[slot];
    cx.log(format!(
        "DMA map slot {slot} iova {iova:#x}{}",
        if mapped { " (mapped)" } else { "" }
    ));
    let want: &[i32] = if mapped {
        &[libc::EEXIST, libc::EBUSY]
    } else {
        &[]
    };
    let what = format!("DMA map of iova {iova:#x}");
    let r = expect(
        dev.dma_map(base + (slot * DMA_SLOT) as u64, iova, DMA_SLOT as u64),
        want,
        &what,
    )?;
    if r.is_ok() {
        if mapped {
            return Err(format!("{what}: mapped twice").into());
        }
        cx.td.dma_mapped[slot] = true;
    }
    outcome(r, |_| "mapped".into())
}

fn dma_unmap(cx: &mut Cx<'_>) -> OpResult {
    let dev = cx.core.dev()?;
    if !dev.mode().maps_dma() {
        cx.log("DMA unmap (no IOMMU)".into());
        return Ok(Outcome::Skipped("no IOMMU".into()));
    }
    let slot = cx.rng.below(DMA_SLOTS as u64) as usize;
    let iova = dma_iova(cx.t, slot);
    let mapped = cx.td.dma_mapped[slot];
    cx.log(format!(
        "DMA unmap slot {slot} iova {iova:#x}{}",
        if mapped { "" } else { " (not mapped)" }
    ));
    let want: &[i32] = if mapped { &[] } else { &[libc::ENOENT] };
    let what = format!("DMA unmap of iova {iova:#x}");
    let r = expect(dev.dma_unmap(iova, DMA_SLOT as u64), want, &what)?;
    if let Ok(n) = r {
        let expected = if mapped { DMA_SLOT as u64 } else { 0 };
        if n != expected {
            return Err(format!("{what}: {n:#x} bytes unmapped, expected {expected:#x}").into());
        }
        cx.td.dma_mapped[slot] = false;
    }
    outcome(r, |n| format!("{n:#x} bytes"))
}

fn dma_bad_op(cx: &mut Cx<'_>) -> OpResult {
    let dev = cx.core.dev()?;
    if !dev.mode().maps_dma() {
        cx.log("bad DMA map (no IOMMU)".into());
        return Ok(Outcome::Skipped("no IOMMU".into()));
    }
    let base = dma_buf(cx.td)?;
    // The last slot's IOVA range + 1 slot: never one of the tracked slots.
    let iova = dma_iova(cx.t, DMA_SLOTS);
    let kind = dma_bad(cx.rng);
    let (mut vaddr, mut io, mut size) = (base, iova, DMA_SLOT as u64);
    match kind {
        DmaBad::UnalignedIova => io += cx.rng.range(1, 0xfff),
        DmaBad::UnalignedSize => size -= cx.rng.range(1, 0xfff),
        DmaBad::ZeroSize => size = 0,
        DmaBad::UnalignedVaddr => vaddr += cx.rng.range(1, 0xfff),
        DmaBad::UnknownFlags => {}
    }
    cx.log(format!(
        "bad DMA map ({kind:?}) vaddr {vaddr:#x} iova {io:#x} size {size:#x}"
    ));
    let what = format!("DMA map {kind:?}");
    let r = match dev.mode() {
        IommuMode::Type1 => {
            let flags = if kind == DmaBad::UnknownFlags {
                unknown_flags(cx.rng, 3, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)
            } else {
                VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE
            };
            let c = dev.container().ok_or("type1 without a container")?;
            expect(c.map_dma(vaddr, io, size, flags), &[libc::EINVAL], &what)?
        }
        _ => {
            let valid =
                IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
            let flags = if kind == DmaBad::UnknownFlags {
                unknown_flags(cx.rng, 3, valid) | IOMMU_IOAS_MAP_FIXED_IOVA
            } else {
                valid
            };
            let fd = dev.iommufd().ok_or("iommufd mode without an iommufd")?;
            let ioas = dev.ioas_id().ok_or("iommufd mode without an IOAS")?;
            // iommufd takes byte-granular user addresses: an unaligned vaddr may be accepted.
            let r = fd.ioas_map(ioas, vaddr, io, size, flags).map(drop);
            let r = expect(r, &[libc::EINVAL, libc::EOPNOTSUPP], &what)?;
            if r.is_ok() && kind == DmaBad::UnalignedVaddr {
                let _ = dev.dma_unmap(io, size);
                return ok("unaligned user address accepted (iommufd)");
            }
            r
        }
    };
    if r.is_ok() {
        let _ = dev.dma_unmap(io, size);
        return Err(
            format!("{what} (vaddr {vaddr:#x} iova {io:#x} size {size:#x}) succeeded").into(),
        );
    }
    outcome(r, |_| String::new())
}

fn unknown_ioctl(cx: &mut Cx<'_>) -> OpResult {
    let nr = cx.rng.range(u64::from(UNKNOWN_VFIO_NR_MIN), 155) as u8;
    cx.log(format!("ioctl VFIO_BASE + {nr}"));
    let r = expect(
        cx.core.dev()?.unknown_ioctl(nr),
        &[libc::ENOTTY],
        &format!("ioctl VFIO_BASE + {nr}"),
    )?;
    if r.is_ok() {
        return Err(format!("unknown ioctl VFIO_BASE + {nr} succeeded").into());
    }
    outcome(r, |_| String::new())
}
