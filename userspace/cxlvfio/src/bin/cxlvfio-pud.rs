// SPDX-License-Identifier: GPL-2.0

//! `cxlvfio-pud`: the 1 GiB mappings of the DPA region, shown and checked.
//!
//! Needs a device whose DPA region spans at least 1 GiB at a 1 GiB-aligned host physical
//! address (the test VM with `VM_CXL_MEM_SIZE=1G`: firmware emulation aligns decoder 0's base
//! to the device's size) and the module loaded with `scrub_memory=0` (a scrubbing fault maps
//! at most the 2 MiB it scrubbed). Through a mapping whose address agrees with the physical
//! one modulo 1 GiB:
//!
//! - `pud_mapping_one_fault_per_gib`: reading every 4 KiB page of the first GiB costs one
//!   fault (a PUD entry);
//! - `pmd_mapping_512_faults_per_gib`: the same through a mapping skewed by 2 MiB costs 512
//!   (PMD entries), so the difference is the alignment and not the counting;
//! - `pud_mapping_maps_the_right_memory`: words stored through the PUD mapping across the GiB
//!   are what `pread` of the region returns at the same offsets, and words written with
//!   `pwrite` are what the mapping reads;
//! - `pud_entry_zapped_by_reset`: after `VFIO_DEVICE_RESET` the next touch faults again (the
//!   reset revoked the 1 GiB entry) and the data is still there;
//! - `kernel_log_clean`.
//!
//! ```text
//! cxlvfio-pud [--device <BDF>]
//! ```

use std::os::fd::AsFd;
use std::process::ExitCode;

use cxlvfio::mmap::{thread_faults, Mapping, PAGE_SIZE};
use cxlvfio::uapi::VFIO_REGION_SUBTYPE_CXL;
use cxlvfio::{cli, kmsg, ktap::Ktap, open_device, AttachedDevice, RegionInfo};

const USAGE: &str = "usage: cxlvfio-pud [--device <BDF>]\n\
\n\
Maps the first GiB of the DPA region of <BDF> (default: $CXL_BDF) through VFIO, 1 GiB-aligned\n\
and skewed by 2 MiB, and checks the faults each costs (1 and 512), the data through the\n\
1 GiB entry, and that a reset revokes it. Needs a DPA region of at least 1 GiB and the module\n\
loaded with scrub_memory=0. Prints KTAP.";

const GIB: usize = 1 << 30;
const PMD_SIZE: usize = 2 << 20;
/// Where the data check stores its words: one in each 64 MiB, not at a page start.
const DATA_STRIDE: usize = 64 << 20;
const DATA_IN_STRIDE: usize = 0x1238;

/// Faults taken by reading one word in every page of `map`.
fn touch_every_page(map: &Mapping) -> Result<u64, String> {
    let before = thread_faults().map_err(|e| format!("getrusage: {e}"))?;
    let mut acc = 0u64;
    for off in (0..map.len()).step_by(PAGE_SIZE) {
        acc ^= map.read_u64(off);
    }
    std::hint::black_box(acc);
    Ok(thread_faults().map_err(|e| format!("getrusage: {e}"))? - before)
}

fn tag(i: usize, salt: u64) -> u64 {
    0x9d1e_0000_0000_0000 ^ salt ^ ((i as u64) << 16 | 0x5a5a)
}

/// The device, its DPA region, and the first GiB mapped at `skew` past a GiB.
struct Gib<'a> {
    dev: &'a AttachedDevice,
    dpa: &'a RegionInfo,
}

impl Gib<'_> {
    fn map(&self, skew: usize) -> Result<Mapping, String> {
        Mapping::shared_aligned(self.dev.as_fd(), self.dpa.offset, GIB, GIB, skew)
            .map_err(|e| format!("mmap of the DPA region's first GiB (skew {skew:#x}): {e}"))
    }

    fn one_fault_per_gib(&self) -> Result<String, String> {
        let map = self.map(0)?;
        let faults = touch_every_page(&map)?;
        if faults != 1 {
            return Err(format!(
                "{faults} faults to read every page of a GiB through a mapping at {:#x}, \
                 expected 1 (a PUD entry)",
                map.addr()
            ));
        }
        Ok(format!("1 fault for {} pages", GIB / PAGE_SIZE))
    }

    fn pmd_faults_per_gib(&self) -> Result<String, String> {
        let map = self.map(PMD_SIZE)?;
        let faults = touch_every_page(&map)?;
        let want = (GIB / PMD_SIZE) as u64;
        if faults != want {
            return Err(format!(
                "{faults} faults through a mapping at {:#x} (2 MiB past a GiB), expected {want}",
                map.addr()
            ));
        }
        Ok(format!("{faults} faults"))
    }

    fn right_memory(&self) -> Result<String, String> {
        let map = self.map(0)?;
        let offsets: Vec<usize> = (0..GIB / DATA_STRIDE)
            .map(|i| i * DATA_STRIDE + DATA_IN_STRIDE)
            .collect();
        for (i, &off) in offsets.iter().enumerate() {
            map.write_u64(off, tag(i, 1));
        }
        for (i, &off) in offsets.iter().enumerate() {
            let mut b = [0u8; 8];
            self.dev
                .pread(&mut b, self.dpa.offset + off as u64)
                .map_err(|e| format!("pread at DPA {off:#x}: {e}"))?;
            let got = u64::from_ne_bytes(b);
            if got != tag(i, 1) {
                return Err(format!(
                    "DPA {off:#x}: pread returned {got:#x}, the mapping stored {:#x}",
                    tag(i, 1)
                ));
            }
            self.dev
                .pwrite(&tag(i, 2).to_ne_bytes(), self.dpa.offset + off as u64)
                .map_err(|e| format!("pwrite at DPA {off:#x}: {e}"))?;
        }
        for (i, &off) in offsets.iter().enumerate() {
            let got = map.read_u64(off);
            if got != tag(i, 2) {
                return Err(format!(
                    "DPA {off:#x}: the mapping read {got:#x}, pwrite wrote {:#x}",
                    tag(i, 2)
                ));
            }
        }
        Ok(format!("{} words each way", offsets.len()))
    }

    fn zapped_by_reset(&self) -> Result<String, String> {
        let map = self.map(0)?;
        let first = touch_every_page(&map)?;
        map.write_u64(DATA_IN_STRIDE, tag(0, 3));
        let again = touch_every_page(&map)?;
        if again != 0 {
            return Err(format!(
                "{again} faults on a second pass over a populated 1 GiB mapping"
            ));
        }
        self.dev
            .reset()
            .map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))?;
        let after = touch_every_page(&map)?;
        if after == 0 {
            return Err("no fault after VFIO_DEVICE_RESET: the 1 GiB entry outlived it".into());
        }
        if after != 1 {
            return Err(format!(
                "{after} faults after the reset, expected 1 (the PUD entry again)"
            ));
        }
        let got = map.read_u64(DATA_IN_STRIDE);
        if got != tag(0, 3) {
            return Err(format!(
                "after the reset DPA {DATA_IN_STRIDE:#x} read {got:#x}, expected {:#x}",
                tag(0, 3)
            ));
        }
        Ok(format!(
            "faults: {first} to populate, 0 again, {after} after the reset"
        ))
    }
}

fn report(k: &mut Ktap<std::io::Stdout>, name: &str, r: Result<String, String>) {
    match r {
        Ok(note) => {
            k.diag(&format!("{name}: {note}"));
            k.ok(name)
        }
        Err(e) => k.not_ok(name, &e),
    }
}

/// The preconditions: a DPA region of at least 1 GiB and scrubbing off.
fn preconditions(dev: &AttachedDevice) -> Result<RegionInfo, String> {
    let dpa = dev
        .cxl_region(VFIO_REGION_SUBTYPE_CXL)
        .map_err(|e| format!("the DPA region: {e}"))?
        .ok_or("no DPA region")?;
    if dpa.size < GIB as u64 {
        return Err(format!(
            "the DPA region has {} MiB, this test needs 1 GiB (VM_CXL_MEM_SIZE=1G)",
            dpa.size >> 20
        ));
    }
    let scrub = std::fs::read_to_string("/sys/module/cxl_vfio_pci/parameters/scrub_memory")
        .map_err(|e| format!("scrub_memory parameter: {e}"))?;
    if scrub.trim() != "N" {
        return Err("the module scrubs (load it with scrub_memory=0)".into());
    }
    Ok(dpa)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let bdf = match cli::device_or_exit("cxlvfio-pud", USAGE, &argv, |_| Ok(false)) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let names = [
        "pud_mapping_one_fault_per_gib",
        "pmd_mapping_512_faults_per_gib",
        "pud_mapping_maps_the_right_memory",
        "pud_entry_zapped_by_reset",
    ];
    let mut k = Ktap::stdout(names.len() + 1);
    let mark = kmsg::log_mark();
    match open_device(&bdf)
        .map_err(|e| format!("open {bdf}: {e}"))
        .and_then(|dev| preconditions(&dev).map(|dpa| (dev, dpa)))
    {
        Ok((dev, dpa)) => {
            let g = Gib {
                dev: &dev,
                dpa: &dpa,
            };
            report(&mut k, names[0], g.one_fault_per_gib());
            report(&mut k, names[1], g.pmd_faults_per_gib());
            report(&mut k, names[2], g.right_memory());
            report(&mut k, names[3], g.zapped_by_reset());
            if let Err(e) = dev.close() {
                k.diag(&format!("close: {e}"));
            }
        }
        Err(e) => {
            for name in names {
                k.not_ok(name, &e);
            }
        }
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
