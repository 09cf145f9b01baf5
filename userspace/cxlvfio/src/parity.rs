//! The device and region info that `VFIO_DEVICE_GET_INFO` and `VFIO_DEVICE_GET_REGION_INFO`
//! report, in a canonical text form, and the check that cxl-vfio-pci's replies are vfio-pci's
//! (the same driver with `disable_cxl=1`) plus exactly the CXL additions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use crate::uapi::{
    VFIO_DEVICE_FLAGS_CAPS, VFIO_DEVICE_FLAGS_CXL, VFIO_DEVICE_INFO_CAP_CXL,
    VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP,
};
use crate::vfio::Capability;
use crate::Device;

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn caps_text(caps: &[Capability]) -> Vec<String> {
    caps.iter()
        .map(|c| format!("id={} version={} data={}", c.id, c.version, hex(&c.data)))
        .collect()
}

/// Every field and capability of the device's info and of each region's info, one per line.
pub fn dump(device: &Device) -> io::Result<String> {
    let info = device.info()?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "device flags={:#x} num_regions={} num_irqs={}",
        info.flags, info.num_regions, info.num_irqs
    );
    for cap in caps_text(&info.capabilities()) {
        let _ = writeln!(out, "device-cap {cap}");
    }
    for index in 0..info.num_regions {
        match device.region_info(index) {
            Ok(r) => {
                let _ = writeln!(
                    out,
                    "region {index} flags={:#x} size={:#x} offset={:#x}",
                    r.flags, r.size, r.offset
                );
                for cap in caps_text(&r.capabilities()) {
                    let _ = writeln!(out, "region-cap {index} {cap}");
                }
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "region {index} error={}",
                    crate::error::raw_os_error(&e).unwrap_or(-1)
                );
            }
        }
    }
    Ok(out)
}

/// A parsed dump.
#[derive(Debug, Default)]
struct Dump {
    flags: u32,
    num_regions: u32,
    num_irqs: u32,
    device_caps: Vec<String>,
    /// Region index -> (its line without the index, its capabilities).
    regions: BTreeMap<u32, (String, Vec<String>)>,
}

fn field(line: &str, name: &str) -> Option<u64> {
    let v = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))?;
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

fn parse(text: &str) -> Result<Dump, String> {
    let mut d = Dump::default();
    let mut seen_device = false;
    for line in text.lines() {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("device"), _, _) => {
                let get = |n| field(line, n).ok_or(format!("no {n} in {line:?}"));
                d.flags = get("flags")? as u32;
                d.num_regions = get("num_regions")? as u32;
                d.num_irqs = get("num_irqs")? as u32;
                seen_device = true;
            }
            (Some("device-cap"), Some(_), _) => {
                d.device_caps.push(line["device-cap ".len()..].to_string())
            }
            (Some("region"), Some(i), Some(rest)) => {
                let i = i.parse().map_err(|_| format!("bad line {line:?}"))?;
                d.regions.insert(i, (rest.to_string(), Vec::new()));
            }
            (Some("region-cap"), Some(i), Some(rest)) => {
                let i = i.parse().map_err(|_| format!("bad line {line:?}"))?;
                d.regions
                    .get_mut(&i)
                    .ok_or(format!("capability of an unknown region: {line:?}"))?
                    .1
                    .push(rest.to_string());
            }
            (None, _, _) | (Some(""), _, _) => {}
            _ => return Err(format!("bad line {line:?}")),
        }
    }
    if !seen_device {
        return Err("no device line".into());
    }
    Ok(d)
}

/// Compares the dump with CXL on against the dump with `disable_cxl=1`: one named result per
/// rule.
pub fn compare(on: &str, off: &str) -> Vec<(String, Result<(), String>)> {
    let (on, off) = match (parse(on), parse(off)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return vec![("info_dumps_parse".into(), Err(e))],
    };
    let mut results = Vec::new();
    let mut check = |name: &str, r: Result<(), String>| results.push((name.to_string(), r));

    let want_flags = off.flags | VFIO_DEVICE_FLAGS_CXL | VFIO_DEVICE_FLAGS_CAPS;
    check(
        "device_info_is_vfio_pci_plus_cxl",
        if on.flags == want_flags
            && on.num_regions == off.num_regions + 2
            && on.num_irqs == off.num_irqs
        {
            Ok(())
        } else {
            Err(format!(
                "CXL on: flags {:#x}, {} regions, {} irqs; disable_cxl=1: flags {:#x}, {} regions, {} irqs",
                on.flags, on.num_regions, on.num_irqs, off.flags, off.num_regions, off.num_irqs
            ))
        },
    );
    let cxl_cap = format!("id={VFIO_DEVICE_INFO_CAP_CXL} ");
    let (cxl_caps, core_caps): (Vec<&String>, Vec<&String>) =
        on.device_caps.iter().partition(|c| c.starts_with(&cxl_cap));
    check(
        "device_caps_are_vfio_pci_plus_cxl",
        if core_caps.iter().copied().eq(off.device_caps.iter()) && cxl_caps.len() == 1 {
            Ok(())
        } else {
            Err(format!(
                "CXL on: {:?}; disable_cxl=1: {:?}",
                on.device_caps, off.device_caps
            ))
        },
    );
    // The component BAR is the first byte of the CXL capability's data.
    let comp_bar = cxl_caps
        .first()
        .and_then(|c| c.split("data=").nth(1))
        .and_then(|d| u32::from_str_radix(d.get(..2)?, 16).ok());
    let mut mismatches = Vec::new();
    for (i, (line, caps)) in &off.regions {
        let Some((on_line, on_caps)) = on.regions.get(i) else {
            mismatches.push(format!("region {i} missing with CXL on"));
            continue;
        };
        if Some(*i) != comp_bar {
            if on_line != line || on_caps != caps {
                mismatches.push(format!(
                    "region {i}: {on_line} {on_caps:?}, disable_cxl=1: {line} {caps:?}"
                ));
            }
            continue;
        }
        // The component BAR: vfio-pci's reply, MMAP only if something outside the block
        // can be mapped, plus the sparse mmap capability listing it.
        let sparse = format!("id={VFIO_REGION_INFO_CAP_SPARSE_MMAP} ");
        let (added, kept): (Vec<&String>, Vec<&String>) =
            on_caps.iter().partition(|c| c.starts_with(&sparse));
        let flags = |l: &str| field(l, "flags").unwrap_or(u64::MAX) as u32;
        let same_place = field(on_line, "size") == field(line, "size")
            && field(on_line, "offset") == field(line, "offset");
        let caps_flag = if on_caps.is_empty() {
            0
        } else {
            VFIO_REGION_INFO_FLAG_CAPS
        };
        let core_flags = flags(line) & !VFIO_REGION_INFO_FLAG_CAPS;
        let on_flags = flags(on_line);
        let flags_ok = if added.is_empty() {
            on_flags == (core_flags & !VFIO_REGION_INFO_FLAG_MMAP) | caps_flag
        } else {
            on_flags == core_flags | caps_flag && core_flags & VFIO_REGION_INFO_FLAG_MMAP != 0
        };
        if !same_place || !flags_ok || !kept.iter().copied().eq(caps.iter()) || added.len() > 1 {
            mismatches.push(format!(
                "component BAR{i}: {on_line} {on_caps:?}, disable_cxl=1: {line} {caps:?}"
            ));
        }
    }
    check(
        "region_info_is_vfio_pci_plus_cxl",
        if comp_bar.is_none() {
            Err("no CXL capability naming the component BAR".into())
        } else if mismatches.is_empty() {
            Ok(())
        } else {
            Err(mismatches.join("; "))
        },
    );
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: &str = "device flags=0x3 num_regions=9 num_irqs=5
region 0 flags=0x7 size=0x10000 offset=0x0
region 1 flags=0x0 size=0x0 offset=0x10000000000
region 2 flags=0xf size=0x1000 offset=0x20000000000
region-cap 2 id=3 version=1 data=00
region 7 flags=0x3 size=0x1000 offset=0x70000000000
region 8 error=22
";
    const ON: &str = "device flags=0x283 num_regions=11 num_irqs=5
device-cap id=6 version=1 data=00000000
region 0 flags=0x3 size=0x10000 offset=0x0
region 1 flags=0x0 size=0x0 offset=0x10000000000
region 2 flags=0xf size=0x1000 offset=0x20000000000
region-cap 2 id=3 version=1 data=00
region 7 flags=0x3 size=0x1000 offset=0x70000000000
region 8 error=22
region 9 flags=0xf size=0x10000000 offset=0x90000000000
region-cap 9 id=2 version=1 data=981e008001000000
";

    fn failed(on: &str, off: &str) -> Vec<String> {
        compare(on, off)
            .into_iter()
            .filter(|(_, r)| r.is_err())
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn vfio_pci_plus_cxl_passes() {
        let r = compare(ON, OFF);
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    }

    #[test]
    fn dropped_core_capabilities_fail() {
        // vfio-pci reports an AtomicOps capability the CXL reply lost.
        let off = OFF.replacen("\n", "\ndevice-cap id=5 version=1 data=0100\n", 1);
        assert_eq!(failed(ON, &off), ["device_caps_are_vfio_pci_plus_cxl"]);
        // The MSI-X mappable capability of a BAR lost.
        let off = OFF.replace("region-cap 2 id=3", "region-cap 2 id=4");
        assert_eq!(failed(ON, &off), ["region_info_is_vfio_pci_plus_cxl"]);
        // A flag changed on a region that is not the component BAR.
        let on = ON.replace("region 7 flags=0x3", "region 7 flags=0x7");
        assert_eq!(failed(&on, OFF), ["region_info_is_vfio_pci_plus_cxl"]);
    }

    #[test]
    fn the_component_bar_may_only_lose_mmap_or_gain_a_sparse_capability() {
        // Keeping MMAP without listing what may be mapped is wrong.
        let on = ON.replace("region 0 flags=0x3", "region 0 flags=0x7");
        assert_eq!(failed(&on, OFF), ["region_info_is_vfio_pci_plus_cxl"]);
        // MMAP kept with a sparse capability is right.
        let on = ON.replace(
            "region 0 flags=0x3 size=0x10000 offset=0x0\n",
            "region 0 flags=0xf size=0x10000 offset=0x0\nregion-cap 0 id=1 version=1 data=01\n",
        );
        assert!(failed(&on, OFF).is_empty());
        let on = ON.replace("device flags=0x283", "device flags=0x83");
        assert_eq!(failed(&on, OFF), ["device_info_is_vfio_pci_plus_cxl"]);
        assert_eq!(failed("garbage", OFF), ["info_dumps_parse"]);
    }
}
