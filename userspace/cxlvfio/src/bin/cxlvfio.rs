//! `cxlvfio`: inspect a PCI device through VFIO, as a VMM sees it; check the
//! data the in-VM DPA suite left in the device's memory backend file.
//!
//! ```text
//! cxlvfio info <BDF>
//! cxlvfio backend-check <BACKEND-FILE> [LOG...]
//! cxlvfio sanitizer-check <KMEMLEAK-REPORT|-> <KERNEL-LOG>...
//! cxlvfio dpa-write <BDF> <OFFSET> <U32>...
//! cxlvfio dpa-read <BDF> <OFFSET> [COUNT]
//! ```
//!
//! `info` and `info-dump` open the device in the IOMMU mode `CXLVFIO_IOMMU`
//! names (`noiommu`, `type1`, `iommufd`; unset or `auto`: the no-IOMMU group if
//! there is one, else type1), see [`cxlvfio::iommu`].

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::process::ExitCode;

use cxlvfio::backend::{self, MarkerLog};
use cxlvfio::iommu::{iommu_mode_from_env, IommuContext};
use cxlvfio::ktap::Ktap;
use cxlvfio::uapi::{
    cxl_cap_flags_str, cxl_region_kind, device_flags_str, irq_flags_str, irq_name,
    region_flags_str, region_name, VfioDeviceInfoCapCxl, VFIO_PCI_VGA_REGION_INDEX,
    VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
};
use cxlvfio::vfio::Capability;
use cxlvfio::{kmemleak, kmsg, open_device, parity, pci, AttachedDevice};

const USAGE: &str = "usage: cxlvfio info <BDF>\n\
       cxlvfio backend-check <BACKEND-FILE> [LOG...]\n\
       cxlvfio sanitizer-check <KMEMLEAK-REPORT|-> <KERNEL-LOG>...\n\
       cxlvfio info-dump <BDF>\n\
       cxlvfio info-compare <DUMP-CXL-ON> <DUMP-DISABLE-CXL>\n\
       cxlvfio dpa-write <BDF> <OFFSET> <U32>...\n\
       cxlvfio dpa-read <BDF> <OFFSET> [COUNT]\n\
\n\
info: opens the PCI device <BDF> (e.g. 0000:0d:00.0) through VFIO and prints the\n\
bound driver, the IOMMU mode and group or cdev, device flags and capabilities (the\n\
CXL one decoded), regions (the CXL ones named), IRQs and config-space IDs.\n\
The IOMMU mode comes from $CXLVFIO_IOMMU: noiommu, type1, iommufd, or auto\n\
(unset: the no-IOMMU group if there is one, else type1).\n\
\n\
backend-check: reads the output of cxlvfio-dpa from the LOG files ('-' or none:\n\
standard input), and checks that <BACKEND-FILE> (the QEMU memory backend of the\n\
device, DPA offset = file offset) holds the data each '# backend-check' line\n\
describes. Prints KTAP; exit status 0 if every marker matched and the count line\n\
agrees. Needs neither root nor the device.\n\
\n\
sanitizer-check: the sanitizer kernel's verdict on one VM boot (scripts/vm-run.sh\n\
with KERNEL_FLAVOR=sanitize), as KTAP: the guest's kernel logs hold no\n\
report (KASAN, UBSAN, lockdep, RCU, warnings, kmemleak giving up), and no object of\n\
the kmemleak report was allocated through our code (the driver's modules, the Rust\n\
abstractions this project adds); leaks from elsewhere are listed, not failed. A\n\
missing report file fails; '-' (no scan possible: the command powered the VM off)\n\
skips that result. Needs neither root nor the device.\n\
\n\
info-dump: every field and capability of the device's and each region's info.\n\
info-compare: KTAP: the dump with CXL on is the dump with disable_cxl=1 plus\n\
exactly the CXL additions.\n\
\n\
dpa-write, dpa-read: write the 32-bit little-endian words <U32>... (hex with 0x, or\n\
decimal) at byte <OFFSET> of the device's DPA region, or print COUNT (default 1)\n\
words from there, one per line as 0x%08x: one open, the region's read and write.\n\
A first touch of a 2 MiB chunk in an open is scrubbed first (scrub_memory=1), so a\n\
word written in one open reads 0 in the next unless the module has scrub_memory=0.";

/// Parses a number written in hex (`0x`) or decimal.
fn parse_number(text: &str) -> io::Result<u64> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("not a number: {text}")))
}

/// The device's DPA region: the open device and the region's index.
fn open_dpa(bdf: &str) -> io::Result<(AttachedDevice, u32)> {
    let dev = open_device(bdf)?;
    let region = dev
        .device()
        .cxl_region(cxlvfio::uapi::VFIO_REGION_SUBTYPE_CXL)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{bdf}: no DPA region")))?;
    Ok((dev, region.index))
}

/// `dpa-write`: the words, one write of all of them.
fn dpa_write(bdf: &str, offset: &str, words: &[&str]) -> io::Result<bool> {
    let offset = parse_number(offset)?;
    let mut bytes = Vec::with_capacity(4 * words.len());
    for w in words {
        let v = u32::try_from(parse_number(w)?).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("not 32 bits: {w}"))
        })?;
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let (dev, index) = open_dpa(bdf)?;
    dev.device().write_region(index, offset, &bytes)?;
    Ok(true)
}

/// `dpa-read`: `count` words, one per line.
fn dpa_read(bdf: &str, offset: &str, count: Option<&str>) -> io::Result<bool> {
    let offset = parse_number(offset)?;
    let count = count.map(parse_number).transpose()?.unwrap_or(1) as usize;
    let (dev, index) = open_dpa(bdf)?;
    let mut bytes = vec![0u8; 4 * count];
    dev.device().read_region(index, offset, &mut bytes)?;
    for w in bytes.chunks_exact(4) {
        println!("{:#010x}", u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
    Ok(true)
}

/// One region capability, compact.
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
    } else if let Some(c) = cap.cxl_comp_regs() {
        format!(
            "cxl-comp-regs(BAR{} block {:#x}+{:#x})",
            c.bar_index, c.block_offset, c.block_size
        )
    } else {
        format!("cap{}v{}", cap.id, cap.version)
    }
}

/// ` [CXL DPA memory]` or ` [CXL COMP_REGS]` for a region whose type
/// capability names a CXL region type, else nothing. The raw
/// `type(0x80001e98,0xN)` stays in the capability list: VM scripts grep it.
fn region_label(caps: &[Capability]) -> String {
    caps.iter()
        .filter_map(Capability::region_type)
        .find_map(|(ty, sub)| cxl_region_kind(ty, sub))
        .map(|kind| format!(" [CXL {kind}]"))
        .unwrap_or_default()
}

/// The CXL device capability, decoded: where the HDM registers are, the
/// flags by name and the two CXL regions.
fn describe_cxl_cap(c: &VfioDeviceInfoCapCxl) -> String {
    // The driver reports 0xffffffff for a region the device does not have (no DPA region
    // when firmware did not commit decoder 0, or committed one the driver refused).
    let region = |index: u32| match index {
        u32::MAX => "none".to_string(),
        i => format!("{i} ({})", region_name(i)),
    };
    format!(
        "CXL: HDM registers in BAR{} at {:#x}, flags {:#x} [{}], DPA region {}, COMP_REGS region {}",
        c.hdm_regs_bar_index,
        c.hdm_regs_offset,
        c.flags,
        cxl_cap_flags_str(c.flags),
        region(c.dpa_region_index),
        region(c.comp_regs_region_index)
    )
}

/// The lines about how the device was opened: the IOMMU mode (and whether
/// `CXLVFIO_IOMMU` chose it), then the group or the cdev.
fn describe_open(open: &AttachedDevice, chosen_by_env: bool) -> String {
    let how = if chosen_by_env {
        "from CXLVFIO_IOMMU"
    } else {
        "auto"
    };
    let mut out = format!("  iommu mode:  {} ({how})\n", open.mode());
    match open.context() {
        IommuContext::Container { group, .. } => {
            let _ = writeln!(
                out,
                "  iommu group: {} ({})",
                group.number(),
                group.path().display()
            );
        }
        IommuContext::Iommufd {
            ioas_id,
            devid,
            cdev,
            ..
        } => {
            let _ = writeln!(
                out,
                "  vfio cdev:   {} (devid {devid}, ioas {ioas_id})",
                cdev.display()
            );
        }
    }
    out
}

/// Builds the whole report before printing, so an error prints nothing partial.
fn info(bdf: &str) -> io::Result<String> {
    let bdf = pci::normalize_bdf(bdf)?;
    pci::check_exists(&bdf)?;
    let mut out = String::new();
    let driver = pci::driver_name(&bdf)?;
    let chosen_by_env = iommu_mode_from_env()?.is_some();
    let device = open_device(&bdf)?;

    // String formatting cannot fail; `let _` keeps the report code compact.
    let _ = writeln!(out, "device {bdf}");
    let _ = writeln!(
        out,
        "  driver:      {}",
        driver.as_deref().unwrap_or("(none)")
    );
    out.push_str(&describe_open(&device, chosen_by_env));

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
        let _ = write!(out, "  device cap:  id {} version {}", cap.id, cap.version);
        if let Some(c) = cap.cxl_device() {
            let _ = write!(out, " {}", describe_cxl_cap(&c));
        }
        out.push('\n');
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
                let parsed = r.capabilities();
                let caps: Vec<String> = parsed.iter().map(describe_cap).collect();
                let _ = writeln!(
                    out,
                    "    {index:<5} {name:<7} {:>#12x} {:>#18x}  {}{}{}{}",
                    r.size,
                    r.offset,
                    region_flags_str(r.flags),
                    if caps.is_empty() { "" } else { " " },
                    caps.join(" "),
                    region_label(&parsed)
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
    Ok(out)
}

/// The concatenated text of `logs` (`-` is standard input; none means standard input).
fn read_logs(logs: &[&str]) -> io::Result<String> {
    let mut text = String::new();
    let stdin_only = ["-"];
    let logs = if logs.is_empty() {
        &stdin_only[..]
    } else {
        logs
    };
    for &log in logs {
        let mut bytes = Vec::new();
        if log == "-" {
            io::stdin().read_to_end(&mut bytes)?;
        } else {
            File::open(log)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| io::Error::new(e.kind(), format!("{log}: {e}")))?;
        }
        // Console captures may hold stray non-UTF-8 bytes; marker lines are ASCII.
        text.push_str(&String::from_utf8_lossy(&bytes));
        text.push('\n');
    }
    Ok(text)
}

/// Checks every marker of `log` against `file`, printing KTAP to `ktap`.
/// Returns whether everything passed.
fn check_markers<W: io::Write>(file: &File, log: &MarkerLog, mut ktap: Ktap<W>) -> bool {
    for e in &log.errors {
        ktap.not_ok("backend-check line", &format!("malformed: {e}"));
    }
    for m in &log.markers {
        let name = format!("backend offset {:#x} len {}", m.offset, m.len);
        match backend::check_marker(file, m) {
            Ok(()) => ktap.ok(&name),
            Err(e) => ktap.not_ok(&name, &e),
        }
    }
    // The count line proves the marker lines were not cut short or mangled.
    match log.counts[..] {
        [n] if n == log.markers.len() => ktap.ok("backend-check count"),
        [n] => ktap.not_ok(
            "backend-check count",
            &format!(
                "the guest printed {n} markers, {} parsed",
                log.markers.len()
            ),
        ),
        [] => ktap.not_ok("backend-check count", "no count line"),
        ref many => ktap.not_ok(
            "backend-check count",
            &format!("{} count lines (several runs in one log?)", many.len()),
        ),
    }
    let ok = ktap.all_passed();
    ktap.finish();
    ok
}

fn backend_check(file: &str, logs: &[&str]) -> io::Result<bool> {
    let text = read_logs(logs)?;
    let log = backend::parse_log(&text);
    let f = File::open(file).map_err(|e| io::Error::new(e.kind(), format!("{file}: {e}")))?;
    if log.markers.is_empty() && log.errors.is_empty() && log.counts.is_empty() {
        let mut ktap = Ktap::stdout(1);
        ktap.not_ok("backend markers", "no '# backend-check' lines in the input");
        ktap.finish();
        return Ok(false);
    }
    let plan = log.errors.len() + log.markers.len() + 1;
    Ok(check_markers(&f, &log, Ktap::stdout(plan)))
}

/// `sanitizer-check`: the kernel log's reports and the kmemleak report's leaks from our
/// code, as two KTAP results. `report`: `Err(reason)` when there is no kmemleak report,
/// with `Ok(reason)` when that is expected (the result is then skipped).
fn sanitizer_verdict<W: io::Write>(
    log: &str,
    report: Result<&str, Result<&str, &str>>,
    mut ktap: Ktap<W>,
) -> bool {
    let problems = kmsg::find_problems(log.lines());
    for p in problems.iter().take(20) {
        ktap.diag(&format!("kernel log: {p}"));
    }
    if problems.is_empty() {
        ktap.ok("kernel_log_no_sanitizer_reports");
    } else {
        ktap.not_ok(
            "kernel_log_no_sanitizer_reports",
            &format!(
                "{} report lines, the first: {}",
                problems.len(),
                problems[0]
            ),
        );
    }
    let name = "kmemleak_nothing_from_our_code";
    match report {
        Err(Ok(why)) => ktap.skip(name, why),
        Err(Err(why)) => ktap.not_ok(name, why),
        Ok(text) => {
            let leaks = kmemleak::parse_report(text);
            let (ours, elsewhere): (Vec<_>, Vec<_>) = leaks.iter().partition(|l| l.is_ours());
            ktap.diag(&format!(
                "kmemleak: {} unreferenced objects: {} from our code, {} from elsewhere",
                leaks.len(),
                ours.len(),
                elsewhere.len()
            ));
            let mut sites: Vec<(&str, usize)> = Vec::new();
            for l in &elsewhere {
                match sites.iter_mut().find(|(s, _)| *s == l.allocation_site()) {
                    Some((_, n)) => *n += 1,
                    None => sites.push((l.allocation_site(), 1)),
                }
            }
            for (site, n) in &sites {
                ktap.diag(&format!("kmemleak: elsewhere: {n} x {site}"));
            }
            for l in &ours {
                ktap.diag(&format!(
                    "kmemleak: ours: {} {}",
                    l.header,
                    l.comm.as_deref().unwrap_or("")
                ));
                for f in &l.backtrace {
                    ktap.diag(&format!("kmemleak:     {f}"));
                }
            }
            match ours.first() {
                None => ktap.ok(name),
                Some(l) => ktap.not_ok(
                    name,
                    &format!(
                        "{} leaks, the first allocated at {}",
                        ours.len(),
                        l.allocation_site()
                    ),
                ),
            }
        }
    }
    let ok = ktap.all_passed();
    ktap.finish();
    ok
}

fn sanitizer_check(report: &str, logs: &[&str]) -> io::Result<bool> {
    let log = read_logs(logs)?;
    // The guest writes no report when kmemleak was not there to ask.
    let text = match std::fs::read(report) {
        _ if report == "-" => None,
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io::Error::new(e.kind(), format!("{report}: {e}"))),
    };
    let verdict = match (&text, report) {
        (Some(t), _) => Ok(t.as_str()),
        (None, "-") => Err(Ok("the command powered the VM off: no scan")),
        (None, _) => Err(Err("no kmemleak report: the scan did not run")),
    };
    Ok(sanitizer_verdict(&log, verdict, Ktap::stdout(2)))
}

/// `info-dump`: the device's info and every region's info, canonical (see [`parity::dump`]).
fn info_dump(bdf: &str) -> io::Result<String> {
    let bdf = pci::normalize_bdf(bdf)?;
    let device = open_device(&bdf)?;
    let text = parity::dump(&device)?;
    device.close()?;
    Ok(text)
}

/// `info-compare`: KTAP of [`parity::compare`] on two `info-dump` files.
fn info_compare(on: &str, off: &str) -> io::Result<bool> {
    let read = |p: &str| {
        std::fs::read_to_string(p).map_err(|e| io::Error::new(e.kind(), format!("{p}: {e}")))
    };
    let results = parity::compare(&read(on)?, &read(off)?);
    let mut ktap = Ktap::stdout(results.len());
    for (name, r) in &results {
        match r {
            Ok(()) => ktap.ok(name),
            Err(e) => ktap.not_ok(name, e),
        }
    }
    let ok = ktap.all_passed();
    ktap.finish();
    Ok(ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match argv[..] {
        ["-h"] | ["--help"] | ["help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        ["info", bdf] => info(bdf).map(|report| {
            print!("{report}");
            true
        }),
        ["backend-check", file, ref logs @ ..] => backend_check(file, logs),
        ["sanitizer-check", report, ref logs @ ..] if !logs.is_empty() => {
            sanitizer_check(report, logs)
        }
        ["info-dump", bdf] => info_dump(bdf).map(|text| {
            print!("{text}");
            true
        }),
        ["info-compare", on, off] => info_compare(on, off),
        ["dpa-write", bdf, offset, ref words @ ..] if !words.is_empty() => {
            dpa_write(bdf, offset, words)
        }
        ["dpa-read", bdf, offset] => dpa_read(bdf, offset, None),
        ["dpa-read", bdf, offset, count] => dpa_read(bdf, offset, Some(count)),
        _ => {
            eprintln!("cxlvfio: error: bad arguments\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cxlvfio: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxlvfio::backend::Marker;
    use cxlvfio::pattern;

    fn backend_file(name: &str, content: &[u8]) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("cxlvfio-cli-{name}-{}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        let f = File::open(&path).unwrap();
        (path, f)
    }

    fn run(file: &File, text: &str) -> (bool, String) {
        let log = backend::parse_log(text);
        let plan = log.errors.len() + log.markers.len() + 1;
        let mut out = Vec::new();
        let ok = check_markers(file, &log, Ktap::new(&mut out, plan));
        (ok, String::from_utf8(out).unwrap())
    }

    fn verdict(log: &str, report: Option<&str>) -> (bool, String) {
        let report = report.ok_or(Err("no kmemleak report"));
        let mut out = Vec::new();
        let ok = sanitizer_verdict(log, report, Ktap::new(&mut out, 2));
        (ok, String::from_utf8(out).unwrap())
    }

    const LEAK_ELSEWHERE: &str = "unreferenced object 0xffff888004a1c000 (size 64):\n  \
        comm \"swapper/0\", pid 1, jiffies 4294667296\n  backtrace (crc 0):\n    \
        [<ffffffff8133a6b5>] kmemleak_alloc+0x4b/0x80\n    \
        [<ffffffff81a0b1c2>] acpi_os_map_iomem+0x92/0x1f0\n";
    const LEAK_OURS: &str = "unreferenced object 0xffff888006b2d800 (size 128):\n  \
        comm \"modprobe\", pid 212, jiffies 4294670001\n  backtrace (crc 1):\n    \
        [<ffffffff8133a6b5>] kmemleak_alloc+0x4b/0x80\n    \
        [<ffffffffa0001234>] cxl_vfio_probe+0x34/0x100 [cxl_vfio_pci]\n";

    #[test]
    fn sanitizer_verdict_clean() {
        let (ok, out) = verdict(
            "[    0.1] kasan: KernelAddressSanitizer initialized\n",
            Some(""),
        );
        assert!(ok, "{out}");
        assert!(
            out.contains("ok 1 kernel_log_no_sanitizer_reports\n"),
            "{out}"
        );
        assert!(
            out.contains("ok 2 kmemleak_nothing_from_our_code\n"),
            "{out}"
        );
    }

    #[test]
    fn sanitizer_verdict_counts_leaks_from_elsewhere_without_failing() {
        let (ok, out) = verdict("", Some(LEAK_ELSEWHERE));
        assert!(ok, "{out}");
        assert!(
            out.contains("1 unreferenced objects: 0 from our code, 1 from elsewhere"),
            "{out}"
        );
        assert!(
            out.contains("# kmemleak: elsewhere: 1 x acpi_os_map_iomem+0x92/0x1f0"),
            "{out}"
        );
    }

    #[test]
    fn sanitizer_verdict_fails_on_our_leak_and_on_reports() {
        let report = format!("{LEAK_ELSEWHERE}{LEAK_OURS}");
        let (ok, out) = verdict("", Some(&report));
        assert!(!ok);
        assert!(out.contains("not ok 2 kmemleak_nothing_from_our_code # 1 leaks, the first allocated at cxl_vfio_probe+0x34/0x100 [cxl_vfio_pci]"), "{out}");
        assert!(
            out.contains("# kmemleak:     cxl_vfio_probe+0x34/0x100 [cxl_vfio_pci]"),
            "{out}"
        );
        let log =
            "[   12.5] BUG: KASAN: slab-use-after-free in vfio_pci_core_close_device+0x20/0x90\n";
        let (ok, out) = verdict(log, Some(""));
        assert!(!ok);
        assert!(
            out.contains("not ok 1 kernel_log_no_sanitizer_reports # 1 report lines"),
            "{out}"
        );
        let (ok, out) = verdict(
            "[ 3.0] UBSAN: shift-out-of-bounds in lib/x.c:1:2\n",
            Some(""),
        );
        assert!(!ok, "{out}");
        let (ok, out) = verdict("", None);
        assert!(!ok);
        assert!(
            out.contains("not ok 2 kmemleak_nothing_from_our_code # no kmemleak report"),
            "{out}"
        );
    }

    #[test]
    fn markers_checked_against_the_file() {
        let mut content = vec![0u8; 0x10000];
        let a = pattern::bytes(1, 0x1003, 4096);
        content[0x1003..0x2003].copy_from_slice(&a);
        let (path, f) = backend_file("check", &content);
        let good = Marker::describe(0x1003, &a);
        let missing = Marker::describe(0x8000, &a);
        let text = format!(
            "KTAP version 1\n# {}\n# {}\n# {}\nok 19 backend_markers\n",
            good.to_diag(),
            missing.to_diag(),
            backend::count_diag(2)
        );
        let (ok, out) = run(&f, &text);
        assert!(!ok);
        assert!(
            out.contains("ok 1 backend offset 0x1003 len 4096\n"),
            "{out}"
        );
        assert!(
            out.contains("not ok 2 backend offset 0x8000 len 4096 # "),
            "{out}"
        );
        assert!(out.contains("(all zeros)"), "{out}");
        assert!(out.contains("ok 3 backend-check count\n"), "{out}");

        let text = format!("# {}\n# {}\n", good.to_diag(), backend::count_diag(1));
        let (ok, out) = run(&f, &text);
        assert!(ok, "{out}");

        // A lost marker line, a missing count line, a malformed line.
        let (ok, out) = run(
            &f,
            &format!("# {}\n# {}\n", good.to_diag(), backend::count_diag(2)),
        );
        assert!(!ok && out.contains("2 markers, 1 parsed"), "{out}");
        let (ok, out) = run(&f, &format!("# {}\n", good.to_diag()));
        assert!(!ok && out.contains("no count line"), "{out}");
        let (ok, out) = run(&f, "# backend-check offset=0x10\n# backend-check count=0\n");
        assert!(!ok && out.contains("malformed"), "{out}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn cxl_capabilities_decoded() {
        let cap = |id, data: Vec<u8>| Capability {
            id,
            version: 1,
            offset: 32,
            data,
        };
        // The region types keep the raw form the VM scripts grep for; the
        // label names the CXL ones.
        let mut ty = 0x8000_1e98u32.to_ne_bytes().to_vec();
        ty.extend_from_slice(&1u32.to_ne_bytes());
        let dpa = cap(2, ty.clone());
        assert_eq!(describe_cap(&dpa), "type(0x80001e98,0x1)");
        assert_eq!(region_label(&[dpa]), " [CXL DPA memory]");
        ty[4] = 2;
        let comp = cap(2, ty.clone());
        assert_eq!(describe_cap(&comp), "type(0x80001e98,0x2)");
        assert_eq!(
            region_label(&[cap(1, vec![0; 8]), comp]),
            " [CXL COMP_REGS]"
        );
        ty[..4].copy_from_slice(&0x8000_8086u32.to_ne_bytes());
        let other = cap(2, ty);
        assert_eq!(describe_cap(&other), "type(0x80008086,0x2)");
        assert_eq!(region_label(&[other]), "");
        let mut comp = vec![0u8; 24];
        comp[..4].copy_from_slice(&2u32.to_ne_bytes());
        comp[8..16].copy_from_slice(&0x2_0000u64.to_ne_bytes());
        comp[16..24].copy_from_slice(&0x1_0000u64.to_ne_bytes());
        assert_eq!(
            describe_cap(&cap(6, comp)),
            "cxl-comp-regs(BAR2 block 0x20000+0x10000)"
        );
        assert_eq!(describe_cap(&cap(9, vec![])), "cap9v1");
        let c = VfioDeviceInfoCapCxl {
            hdm_regs_bar_index: 0,
            flags: 1,
            hdm_regs_offset: 0x1000,
            dpa_region_index: 9,
            comp_regs_region_index: 10,
            ..Default::default()
        };
        assert_eq!(
            describe_cxl_cap(&c),
            "CXL: HDM registers in BAR0 at 0x1000, flags 0x1 [FIRMWARE_COMMITTED], \
             DPA region 9 (DEV0), COMP_REGS region 10 (DEV1)"
        );
        let none = VfioDeviceInfoCapCxl {
            flags: 0,
            dpa_region_index: u32::MAX,
            comp_regs_region_index: 9,
            ..c
        };
        assert_eq!(
            describe_cxl_cap(&none),
            "CXL: HDM registers in BAR0 at 0x1000, flags 0x0 [-], \
             DPA region none, COMP_REGS region 9 (DEV0)"
        );
    }

    #[test]
    fn logs_are_concatenated() {
        let (p1, _) = backend_file("log1", b"# backend-check count=1");
        let (p2, _) = backend_file("log2", b"second\xff");
        let text = read_logs(&[p1.to_str().unwrap(), p2.to_str().unwrap()]).unwrap();
        assert_eq!(text, "# backend-check count=1\nsecond\u{fffd}\n");
        assert!(read_logs(&["/nonexistent/log"]).is_err());
        std::fs::remove_file(p1).unwrap();
        std::fs::remove_file(p2).unwrap();
    }
}
