//! `cxlvfio`: inspect a PCI device through VFIO, as a VMM sees it.
//!
//! ```text
//! cxlvfio info <BDF>
//! ```

use std::fmt::Write as _;
use std::io;
use std::process::ExitCode;

use cxlvfio::uapi::{
    device_flags_str, irq_flags_str, irq_name, region_flags_str, region_name,
    VFIO_PCI_VGA_REGION_INDEX, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
};
use cxlvfio::vfio::Capability;
use cxlvfio::{open_device, pci};

const USAGE: &str = "usage: cxlvfio info <BDF>\n\
\n\
Opens the PCI device <BDF> (e.g. 0000:0d:00.0) through VFIO and prints the\n\
bound driver, IOMMU group, device flags, regions, IRQs and config-space IDs.";

fn describe_cap(cap: &Capability) -> String {
    if let Some(areas) = cap.sparse_mmap_areas() {
        let list: Vec<String> = areas
            .iter()
            .map(|a| format!("{:#x}+{:#x}", a.offset, a.size))
            .collect();
        format!("sparse-mmap[{}]", list.join(","))
    } else if let Some((ty, sub)) = cap.region_type() {
        format!("type({ty:#x},{sub:#x})")
    } else if cap.id == VFIO_REGION_INFO_CAP_MSIX_MAPPABLE {
        "msix-mappable".to_string()
    } else {
        format!("cap{}v{}", cap.id, cap.version)
    }
}

/// Builds the whole report before printing, so an error prints nothing partial.
fn info(bdf: &str) -> io::Result<String> {
    let bdf = pci::normalize_bdf(bdf)?;
    pci::check_exists(&bdf)?;
    let mut out = String::new();
    let driver = pci::driver_name(&bdf)?;
    let (container, group, device) = open_device(&bdf)?;

    // String formatting cannot fail; `let _` keeps the report code compact.
    let _ = writeln!(out, "device {bdf}");
    let _ = writeln!(
        out,
        "  driver:      {}",
        driver.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(
        out,
        "  iommu group: {} ({}, {})",
        group.number(),
        if group.is_noiommu() {
            "noiommu"
        } else {
            "iommu"
        },
        group.path().display()
    );

    let dinfo = device.info()?;
    let _ = writeln!(
        out,
        "  flags:       {:#x} [{}]",
        dinfo.flags,
        device_flags_str(dinfo.flags)
    );
    let _ = writeln!(out, "  num_regions: {}", dinfo.num_regions);
    let _ = writeln!(out, "  num_irqs:    {}", dinfo.num_irqs);
    for cap in dinfo.capabilities() {
        let _ = writeln!(out, "  device cap:  id {} version {}", cap.id, cap.version);
    }

    let _ = writeln!(out, "  regions:");
    let _ = writeln!(
        out,
        "    {:<5} {:<7} {:>12} {:>18}  flags",
        "index", "name", "size", "offset"
    );
    for index in 0..dinfo.num_regions {
        let name = region_name(index);
        match device.region_info(index) {
            Ok(r) if r.size == 0 => {
                let _ = writeln!(out, "    {index:<5} {name:<7} {:>12}", "(none)");
            }
            Ok(r) => {
                let caps: Vec<String> = r.capabilities().iter().map(describe_cap).collect();
                let _ = writeln!(
                    out,
                    "    {index:<5} {name:<7} {:>#12x} {:>#18x}  {}{}{}",
                    r.size,
                    r.offset,
                    region_flags_str(r.flags),
                    if caps.is_empty() { "" } else { " " },
                    caps.join(" ")
                );
            }
            // vfio-pci answers EINVAL for the VGA region of a non-VGA device.
            Err(e)
                if index == VFIO_PCI_VGA_REGION_INDEX
                    && cxlvfio::error::raw_os_error(&e) == Some(libc::EINVAL) =>
            {
                let _ = writeln!(out, "    {index:<5} {name:<7} {:>12}", "(not VGA)");
            }
            // Anything else is listed rather than failing the whole command.
            Err(e) => {
                let _ = writeln!(out, "    {index:<5} {name:<7} {:>12}  ({e})", "-");
            }
        }
    }

    let _ = writeln!(out, "  irqs:");
    for index in 0..dinfo.num_irqs {
        match device.irq_info(index) {
            Ok(irq) => {
                let _ = writeln!(
                    out,
                    "    {index:<5} {:<7} count {:<4} {}",
                    irq_name(index),
                    irq.count,
                    irq_flags_str(irq.flags)
                );
            }
            Err(e) => {
                let _ = writeln!(out, "    {index:<5} {:<7} ({e})", irq_name(index));
            }
        }
    }

    let vendor = device.config_read16(0x00)?;
    let dev_id = device.config_read16(0x02)?;
    let class_rev = device.config_read32(0x08)?;
    let _ = writeln!(
        out,
        "  config:      vendor {vendor:#06x} device {dev_id:#06x} class {:#08x} revision {:#04x}",
        class_rev >> 8,
        class_rev & 0xff
    );

    device.close()?;
    group.close()?;
    container.close()?;
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match argv[..] {
        ["-h"] | ["--help"] | ["help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        ["info", bdf] => info(bdf),
        _ => {
            eprintln!("cxlvfio: error: bad arguments\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cxlvfio: error: {e}");
            ExitCode::FAILURE
        }
    }
}
