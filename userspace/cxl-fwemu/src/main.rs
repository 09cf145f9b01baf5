//! `cxl-fwemu`: plays platform firmware for a QEMU CXL guest.
//!
//! QEMU ships no firmware that programs CXL HDM decoders, so nothing routes
//! the CXL fixed memory window to the device. Run as root inside the guest
//! before the driver binds, this tool reads the ACPI CEDT, finds the CXL
//! memory device, its root port and its host bridge in sysfs, and programs
//! and commits HDM decoder 0 of the host bridge and of the endpoint. All
//! addresses, sizes and port numbers come from the CEDT, config space and
//! registers.
//!
//! Several endpoints, host bridges and windows: each endpoint uses the CHBS
//! of its own host bridge (by ACPI `_UID`) and a window that targets it. A
//! host bridge with a single root port and no HDM decoder capability (QEMU
//! 10's `pxb-cxl`) passes CXL.mem through: only the endpoint is committed.
//!
//! For tests only, `--endpoint-fault` plays faulty firmware instead: the
//! endpoint decoder is committed interleaved, outside the window or larger
//! than the device, so that a driver's checks of it can be exercised.

use cxl_fwemu::cedt::{self, Cedt, Chbs};
use cxl_fwemu::dvsec::{self, DeviceDvsec, RegisterBlock};
use cxl_fwemu::hdm::{
    self, DecoderOutcome, DecoderPlan, EndpointFault, Hdm, HdmError, HostBridgeRouting, Outcome,
    Regs32, Role,
};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const SYSFS_PCI: &str = "/sys/bus/pci/devices";
const DEFAULT_CEDT: &str = "/sys/firmware/acpi/tables/CEDT";
const DEV_MEM: &str = "/dev/mem";
/// Size of a CXL component register block (CXL 3.1 8.2.3).
const COMPONENT_BLOCK_LEN: u64 = 0x10000;
/// The CXL.mem range ends here; a block must be mapped at least this far.
const COMPONENT_MIN_LEN: u64 = 0x2000;
/// Commit polling: 100 x 10 ms = 1 s, far above the 10 ms the spec allows.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
const MAX_POLLS: u32 = 100;
/// PCI Command register bit 1: Memory Space Enable.
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;

const USAGE: &str = "\
usage: cxl-fwemu [find [--all]|show] [--device BDF] [--cedt PATH] [--chbs-uid UID]
                 [--endpoint-fault interleave2|outside-window|oversize]

Programs and commits HDM decoder 0 of the CXL host bridge and of the CXL
memory device so that the CEDT fixed memory window routes to the device
(what platform firmware does; QEMU has none). A host bridge with one root
port and no HDM decoder capability passes CXL.mem through (QEMU 10): then
only the endpoint decoder is committed. Run as root.

commands:
  (none)   program both decoders; the last line printed is endpoint=<BDF>
  find     print the BDF of the CXL memory device and exit
           (--all: every CXL.mem device, one per line, in BDF order)
  show     print the CEDT, the host bridges' and the endpoints' decoders
           (every endpoint, or --device's); changes nothing

options:
  --device BDF     use this endpoint instead of the first CXL.mem device;
                   its host bridge (by ACPI _UID) picks the CHBS and the window
  --cedt PATH      read the CEDT from PATH (default /sys/firmware/acpi/tables/CEDT)
  --chbs-uid UID   host bridge to use instead of the endpoint's own
  --endpoint-fault FAULT
                   FOR TESTS ONLY: play faulty firmware and commit a wrong
                   endpoint decoder 0 (the host bridge decoder stays correct):
                     interleave2     IW=1 (2 ways) in its Control register
                     outside-window  based at the first 256 MiB boundary at
                                     or past the end of the CXL window
                     oversize        twice the size of the device memory
                   The endpoint decoder must not be committed yet (QEMU
                   cannot uncommit one: reset the device first).
  -h, --help       this text";

type Result<T> = std::result::Result<T, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Program,
    Find,
    Show,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    command: Command,
    device: Option<String>,
    cedt: PathBuf,
    chbs_uid: Option<u32>,
    /// Faulty firmware to play on the endpoint decoder (tests only).
    endpoint_fault: Option<EndpointFault>,
    /// `find --all`: list every CXL.mem device.
    all: bool,
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cxl-fwemu: error: {e} (see --help)");
            return ExitCode::FAILURE;
        }
    };
    let res = match opts.command {
        Command::Program => program(&opts),
        Command::Find => find(&opts),
        Command::Show => show(&opts),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cxl-fwemu: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line; `Ok(None)` means help was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>> {
    let mut command = None;
    let mut device = None;
    let mut cedt = PathBuf::from(DEFAULT_CEDT);
    let mut chbs_uid = None;
    let mut endpoint_fault = None;
    let mut all = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        // Accept both `--opt value` and `--opt=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--device" => device = Some(normalize_bdf(&value("--device")?)?),
            "--cedt" => cedt = PathBuf::from(value("--cedt")?),
            "--chbs-uid" => chbs_uid = Some(parse_u32(&value("--chbs-uid")?)?),
            "--endpoint-fault" => endpoint_fault = Some(value("--endpoint-fault")?.parse()?),
            "--all" if inline.is_none() => all = true,
            "find" | "show" if command.is_none() => {
                command = Some(if name == "find" {
                    Command::Find
                } else {
                    Command::Show
                })
            }
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    let command = command.unwrap_or(Command::Program);
    if endpoint_fault.is_some() && command != Command::Program {
        return Err("--endpoint-fault only applies when programming the decoders".to_string());
    }
    if all && command != Command::Find {
        return Err("--all only applies to find".to_string());
    }
    if all && device.is_some() {
        return Err("find --all lists every device; --device names one".to_string());
    }
    Ok(Some(Options {
        command,
        device,
        cedt,
        chbs_uid,
        endpoint_fault,
        all,
    }))
}

fn parse_u32(s: &str) -> Result<u32> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a number"))
}

/// Turns `0d:00.0` or `0000:0D:00.0` into sysfs' `0000:0d:00.0`.
fn normalize_bdf(s: &str) -> Result<String> {
    let bad = || format!("'{s}' is not a PCI address like 0000:0d:00.0");
    let full = if s.matches(':').count() == 1 {
        format!("0000:{s}")
    } else {
        s.to_string()
    };
    let (dom_bus_dev, func) = full.rsplit_once('.').ok_or_else(bad)?;
    let parts: Vec<&str> = dom_bus_dev.split(':').collect();
    let hex_ok = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    if parts.len() != 3
        || !hex_ok(parts[0], 4)
        || !hex_ok(parts[1], 2)
        || !hex_ok(parts[2], 2)
        || !matches!(func, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7")
        || u8::from_str_radix(parts[2], 16).map_or(true, |d| d > 0x1f)
    {
        return Err(bad());
    }
    Ok(full.to_ascii_lowercase())
}

fn pci_dir(bdf: &str) -> PathBuf {
    Path::new(SYSFS_PCI).join(bdf)
}

fn read_cedt(path: &Path) -> Result<Cedt> {
    let data = fs::read(path).map_err(|e| format!("cannot read CEDT {}: {e}", path.display()))?;
    let cedt = cedt::parse(&data).map_err(|e| format!("{}: {e}", path.display()))?;
    if !cedt.checksum_ok {
        eprintln!(
            "cxl-fwemu: warning: {} has a bad ACPI checksum",
            path.display()
        );
    }
    Ok(cedt)
}

/// What the tool learnt about the endpoint from sysfs and config space.
struct Endpoint {
    bdf: String,
    cfg: Vec<u8>,
    dvsec: DeviceDvsec,
    component: RegisterBlock,
}

/// The root port above the endpoint.
struct RootPort {
    bdf: String,
    port_number: u8,
    /// ACPI `_UID` of the host bridge above it, when sysfs shows it.
    host_bridge_uid: Option<u32>,
    /// The host bridge's sysfs directory, e.g. `/sys/devices/pci0000:0c`.
    host_bridge_dir: PathBuf,
}

/// Returns the CXL Device DVSEC of a config image if it is CXL.mem capable.
fn mem_capable_dvsec(cfg: &[u8]) -> std::result::Result<Option<DeviceDvsec>, dvsec::ConfigError> {
    let Some(d) = dvsec::find_dvsec(cfg, dvsec::CXL_VENDOR_ID, dvsec::DVSEC_CXL_DEVICE)? else {
        return Ok(None);
    };
    let dev = dvsec::device_dvsec(cfg, &d)?;
    Ok(dev.mem_capable().then_some(dev))
}

/// Every device with a CXL.mem capable CXL Device DVSEC, in BDF order.
fn find_endpoints() -> Result<Vec<String>> {
    let entries = fs::read_dir(SYSFS_PCI).map_err(|e| format!("cannot list {SYSFS_PCI}: {e}"))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let found: Vec<String> = names
        .into_iter()
        .filter(|name| {
            // A device with a broken capability chain is simply not a match.
            fs::read(pci_dir(name).join("config"))
                .is_ok_and(|cfg| matches!(mem_capable_dvsec(&cfg), Ok(Some(_))))
        })
        .collect();
    if found.is_empty() {
        return Err(
            "no CXL memory device found (no PCI device has a CXL Device DVSEC with \
             Mem_Capable; extended config space is only readable by root)"
                .to_string(),
        );
    }
    Ok(found)
}

/// First device (in BDF order) with a CXL.mem capable CXL Device DVSEC.
fn find_endpoint() -> Result<String> {
    Ok(find_endpoints()?.remove(0))
}

fn resolve_endpoint(opts: &Options) -> Result<String> {
    match &opts.device {
        Some(bdf) => Ok(bdf.clone()),
        None => find_endpoint(),
    }
}

fn inspect_endpoint(bdf: &str) -> Result<Endpoint> {
    let path = pci_dir(bdf).join("config");
    let cfg = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if cfg.len() < dvsec::CONFIG_SPACE_LEN {
        return Err(format!(
            "{} gave only {} bytes; extended config space needs root",
            path.display(),
            cfg.len()
        ));
    }
    let dvsec = mem_capable_dvsec(&cfg)
        .map_err(|e| format!("{bdf}: {e}"))?
        .ok_or_else(|| {
            format!("{bdf} is not a CXL.mem capable device (no CXL Device DVSEC with Mem_Capable)")
        })?;
    let loc = dvsec::find_dvsec(&cfg, dvsec::CXL_VENDOR_ID, dvsec::DVSEC_REGISTER_LOCATOR)
        .map_err(|e| format!("{bdf}: {e}"))?
        .ok_or_else(|| format!("{bdf} has no CXL Register Locator DVSEC"))?;
    let component = dvsec::register_locator(&cfg, &loc)
        .map_err(|e| format!("{bdf}: {e}"))?
        .into_iter()
        .find(|b| b.block_id == dvsec::REG_BLOCK_COMPONENT)
        .ok_or_else(|| format!("{bdf}: the Register Locator lists no component registers"))?;
    Ok(Endpoint {
        bdf: bdf.to_string(),
        cfg,
        dvsec,
        component,
    })
}

/// Device memory size from DVSEC Range 1, which must be valid and non-zero.
fn device_size(ep: &Endpoint) -> Result<u64> {
    if !ep.dvsec.range1_info_valid() {
        return Err(format!(
            "{}: DVSEC Range 1 Memory_Info_Valid is not set; the size is unknown",
            ep.bdf
        ));
    }
    let size = ep.dvsec.range1_size();
    if size == 0 {
        return Err(format!("{}: DVSEC Range 1 size is 0", ep.bdf));
    }
    Ok(size)
}

/// The PCI bridge that is the endpoint's parent in sysfs; it must be a
/// root port, since switches would need decoders of their own.
fn root_port(bdf: &str) -> Result<RootPort> {
    let real = fs::canonicalize(pci_dir(bdf))
        .map_err(|e| format!("cannot resolve {}: {e}", pci_dir(bdf).display()))?;
    let parent = real
        .parent()
        .ok_or_else(|| format!("{} has no parent", real.display()))?;
    let rp_bdf = parent
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cfg_path = parent.join("config");
    if normalize_bdf(&rp_bdf).is_err() || !cfg_path.exists() {
        return Err(format!(
            "{bdf} is not below a PCI bridge (parent {}); RCiEP / CXL 1.1 hosts are not supported",
            parent.display()
        ));
    }
    let cfg =
        fs::read(&cfg_path).map_err(|e| format!("cannot read {}: {e}", cfg_path.display()))?;
    let cap = dvsec::pcie_cap(&cfg)
        .map_err(|e| format!("{rp_bdf}: {e}"))?
        .ok_or_else(|| format!("{rp_bdf} (above {bdf}) has no PCI Express capability"))?;
    if cap.port_type != dvsec::PCIE_TYPE_ROOT_PORT {
        return Err(format!(
            "{rp_bdf} (above {bdf}) is PCIe port type {}, not a root port; \
             CXL switches are not supported",
            cap.port_type
        ));
    }
    // e.g. /sys/devices/pci0000:0c/firmware_node/uid: picks the CHBS.
    let host_bridge_dir = parent
        .parent()
        .ok_or_else(|| format!("{rp_bdf} has no host bridge above it in sysfs"))?
        .to_path_buf();
    Ok(RootPort {
        bdf: rp_bdf,
        port_number: cap.port_number,
        host_bridge_uid: host_bridge_uid(&host_bridge_dir),
        host_bridge_dir,
    })
}

/// ACPI `_UID` of a host bridge (sysfs `pci0000:BB` directory), if shown.
fn host_bridge_uid(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join("firmware_node/uid"))
        .ok()
        .and_then(|s| parse_u32(s.trim()).ok())
}

/// The sysfs directory of the host bridge with ACPI `_UID` `uid`.
fn host_bridge_dir_by_uid(uid: u32) -> Option<PathBuf> {
    fs::read_dir("/sys/devices")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("pci"))
        })
        .find(|p| host_bridge_uid(p) == Some(uid))
}

/// Number of PCIe root ports directly below a host bridge's sysfs directory.
fn count_root_ports(hb_dir: &Path) -> Result<usize> {
    let entries =
        fs::read_dir(hb_dir).map_err(|e| format!("cannot list {}: {e}", hb_dir.display()))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .filter(|e| normalize_bdf(&e.file_name().to_string_lossy()).is_ok())
        .filter_map(|e| fs::read(e.path().join("config")).ok())
        .filter(|cfg| {
            matches!(dvsec::pcie_cap(cfg), Ok(Some(c)) if c.port_type == dvsec::PCIE_TYPE_ROOT_PORT)
        })
        .count())
}

/// How the host bridge with component registers `regs` routes CXL.mem; a
/// pass-through one (no HDM decoders) needs exactly one root port below it.
fn routing(regs: &Mmio, who: &str, hb_dir: Option<&Path>) -> Result<HostBridgeRouting> {
    let root_ports = match hb_dir {
        Some(dir) => count_root_ports(dir)?,
        // Unknown in sysfs: only a bridge with decoders can be used.
        None => 0,
    };
    hdm::host_bridge_routing(regs, regs.len, root_ports).map_err(|e| match (e, hb_dir) {
        (e @ HdmError::NoHdmCapabilityMultiPort { .. }, None) => {
            format!("{who}: {e} (its sysfs directory, where root ports are counted, was not found)")
        }
        (e, _) => format!("{who}: {e}"),
    })
}

/// Picks the host bridge, falling back on the endpoint's ACPI uid to say
/// which one to pass when the choice is ambiguous.
fn choose_host_bridge<'a>(cedt: &'a Cedt, opts: &Options, rp: &RootPort) -> Result<&'a Chbs> {
    let chbs = cedt
        .host_bridge_for(opts.chbs_uid, rp.host_bridge_uid)
        .map_err(|e| match (e, rp.host_bridge_uid) {
            (e @ cedt::SelectError::Ambiguous { .. }, Some(uid)) => {
                format!("{e} (the endpoint's host bridge has ACPI _UID {uid})")
            }
            (e, _) => e.to_string(),
        })?;
    if chbs.cxl_version < cedt::CHBS_VERSION_CXL20 {
        return Err(format!(
            "CHBS uid {} is a CXL 1.1 restricted host (RCRB at {:#x}); not supported",
            chbs.uid, chbs.base
        ));
    }
    if let Some(uid) = rp.host_bridge_uid.filter(|u| *u != chbs.uid) {
        eprintln!(
            "cxl-fwemu: warning: using CHBS uid {} but {} sits below host bridge _UID {uid}",
            chbs.uid, rp.bdf
        );
    }
    Ok(chbs)
}

/// A shared, uncached mapping of device registers, accessed 32 bits at a
/// time with volatile loads and stores.
struct Mmio {
    map: *mut libc::c_void,
    map_len: usize,
    regs: *mut u8,
    len: usize,
}

impl Mmio {
    /// Maps `len` bytes at byte `offset` of `path` (`/dev/mem` or a sysfs
    /// `resource<N>` file) read-write.
    fn map(path: &Path, offset: u64, len: usize) -> Result<Mmio> {
        let what = format!("{} at {offset:#x} (+{len:#x})", path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_SYNC)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: sysconf only reads a system constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096);
        let delta = (offset % page) as usize;
        let map_off = libc::off_t::try_from(offset - delta as u64)
            .map_err(|_| format!("cannot map {what}: offset too large"))?;
        let map_len = len + delta;
        // SAFETY: a new mapping at an address of the kernel's choosing
        // (NULL hint, no MAP_FIXED), so no existing Rust memory is touched;
        // the fd is valid for the call and the result is checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                map_off,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(format!(
                "cannot mmap {what}: {}",
                io::Error::last_os_error()
            ));
        }
        // SAFETY: delta < page <= map_len, so the result stays inside the
        // mapping just created.
        let regs = unsafe { map.cast::<u8>().add(delta) };
        // The mapping outlives `file`; closing the fd does not unmap it.
        Ok(Mmio {
            map,
            map_len,
            regs,
            len,
        })
    }

    fn reg_ptr(&self, off: usize) -> *mut u32 {
        // Offsets come from hdm code that bounds-checks against `len`; a
        // failure here is a bug, and must not become a wild access.
        assert!(
            off.is_multiple_of(4) && off + 4 <= self.len,
            "register offset {off:#x} outside {:#x}-byte mapping",
            self.len
        );
        // SAFETY: off + 4 <= len and `regs` points at `len` mapped bytes,
        // so the result is in bounds; page-aligned base + off % 4 == 0 keeps
        // it 4-byte aligned.
        unsafe { self.regs.add(off).cast::<u32>() }
    }
}

impl Regs32 for Mmio {
    fn read32(&self, off: usize) -> u32 {
        let p = self.reg_ptr(off);
        // SAFETY: `p` is in bounds and aligned (reg_ptr); volatile because
        // this is device memory whose reads must happen exactly once, at
        // 32-bit width (QEMU ignores 64-bit component register accesses).
        unsafe { p.read_volatile() }
    }

    fn write32(&mut self, off: usize, v: u32) {
        let p = self.reg_ptr(off);
        // SAFETY: as in read32; writes to device registers must not be
        // merged, elided or widened.
        unsafe { p.write_volatile(v) }
    }
}

impl Drop for Mmio {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` are exactly what mmap returned, and no
        // pointer into the mapping outlives `self`.
        unsafe {
            libc::munmap(self.map, self.map_len);
        }
    }
}

/// Maps the host bridge component registers through `/dev/mem`.
fn map_host_bridge(chbs: &Chbs) -> Result<Mmio> {
    // The component block is 64 KiB; a length of 0 means "unspecified".
    let len = match chbs.length {
        0 => COMPONENT_BLOCK_LEN,
        l => l.min(COMPONENT_BLOCK_LEN),
    };
    Mmio::map(Path::new(DEV_MEM), chbs.base, len as usize)
        .map_err(|e| format!("host bridge uid {} registers: {e}", chbs.uid))
}

fn command(ep: &Endpoint) -> u16 {
    u16::from_le_bytes([ep.cfg[4], ep.cfg[5]])
}

/// Whether the endpoint's Command register has Memory Space Enable set.
fn memory_decoding(ep: &Endpoint) -> bool {
    command(ep) & PCI_COMMAND_MEMORY != 0
}

/// Whether the endpoint is in D3hot, where its BARs do not decode.
fn in_d3hot(ep: &Endpoint) -> bool {
    matches!(dvsec::power_state(&ep.cfg), Ok(Some(dvsec::PM_STATE_D3HOT)))
}

/// Maps the endpoint component registers through sysfs `resource<BIR>`.
/// With `enable`, turns on Memory Space decoding first when it is off (a
/// device without a driver may have it off, and firmware would enable it).
fn map_endpoint(ep: &Endpoint, enable: bool) -> Result<Mmio> {
    if in_d3hot(ep) {
        return Err(format!(
            "{} is in D3hot: its BARs do not decode (a bound driver such as vfio-pci \
             suspends it while unused; unbind it or open it first)",
            ep.bdf
        ));
    }
    if !memory_decoding(ep) {
        let cmd = command(ep);
        if !enable {
            return Err(format!(
                "{}: memory decoding is disabled (Command {cmd:#06x}); registers not read",
                ep.bdf
            ));
        }
        let path = pci_dir(&ep.bdf).join("config");
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.write_all_at(&(cmd | PCI_COMMAND_MEMORY).to_le_bytes(), PCI_COMMAND))
            .map_err(|e| format!("cannot enable memory decoding via {}: {e}", path.display()))?;
        println!("{}: enabled memory space decoding", ep.bdf);
    }
    let res = pci_dir(&ep.bdf).join(format!("resource{}", ep.component.bir));
    let bar_len = fs::metadata(&res)
        .map_err(|e| {
            format!(
                "{}: BAR{} is not available ({}: {e})",
                ep.bdf,
                ep.component.bir,
                res.display()
            )
        })?
        .len();
    let off = ep.component.offset;
    if off.saturating_add(COMPONENT_MIN_LEN) > bar_len {
        return Err(format!(
            "{}: component registers at BAR{} + {off:#x} do not fit in the {bar_len:#x}-byte BAR",
            ep.bdf, ep.component.bir
        ));
    }
    let len = (bar_len - off).min(COMPONENT_BLOCK_LEN);
    Mmio::map(&res, off, len as usize).map_err(|e| format!("{} registers: {e}", ep.bdf))
}

fn locate(regs: &Mmio, who: &str) -> Result<Hdm> {
    Hdm::locate(regs, regs.len).map_err(|e| format!("{who}: {e}"))
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes:#x} bytes")
    }
}

fn describe(out: &Outcome) -> &'static str {
    match (out.decoder, out.enabled_globally) {
        (DecoderOutcome::AlreadyCommitted, false) => {
            "already committed with these settings, left as is"
        }
        (DecoderOutcome::AlreadyCommitted, true) => {
            "already committed with these settings; enabled HDM decoding"
        }
        (DecoderOutcome::Committed { .. }, _) => "programmed and committed",
    }
}

fn program(opts: &Options) -> Result<()> {
    let cedt = read_cedt(&opts.cedt)?;
    let bdf = resolve_endpoint(opts)?;
    let ep = inspect_endpoint(&bdf)?;
    let size = device_size(&ep)?;
    if !ep.dvsec.range1_active() {
        eprintln!("cxl-fwemu: warning: {bdf}: DVSEC Range 1 Memory_Active is not set");
    }
    let rp = root_port(&bdf)?;
    let chbs = choose_host_bridge(&cedt, opts, &rp)?;
    let window = cedt.window_for(chbs.uid, size).map_err(|e| e.to_string())?;

    println!(
        "CEDT: host bridge uid {} registers {:#x}; window {:#x} ({}) targets {:?}",
        chbs.uid,
        chbs.base,
        window.base_hpa,
        mib(window.window_size),
        window.targets
    );
    println!(
        "endpoint {bdf}: {} of CXL memory, component registers BAR{} + {:#x}, \
         root port {} (port {})",
        mib(size),
        ep.component.bir,
        ep.component.offset,
        rp.bdf,
        rp.port_number
    );

    // Both decoders decode the device's range, placed as firmware places it.
    let base = hdm::natural_base(window.base_hpa, window.window_size, size);
    let window_left = window.window_size - (base - window.base_hpa);
    let hb_plan = DecoderPlan {
        base,
        size,
        iw: 0,
        role: Role::HostBridge {
            target_port: rp.port_number,
        },
    };
    let fault = opts.endpoint_fault;
    let ep_plan = hdm::endpoint_plan(base, window_left, size, fault)
        .map_err(|e| format!("endpoint {bdf}: {e}"))?;
    if let Some(f) = fault {
        println!(
            "FAULT {f}: playing faulty firmware (tests only): {}; endpoint decoder 0 will be \
             base={:#x} size={:#x} IW={}",
            f.description(),
            ep_plan.base,
            ep_plan.size,
            ep_plan.iw
        );
    }
    let hb_name = format!("host bridge uid {}", chbs.uid);
    let ep_name = format!("endpoint {bdf}");
    let mut hb = map_host_bridge(chbs)?;
    let hb_hdm = match routing(&hb, &hb_name, Some(&rp.host_bridge_dir))? {
        HostBridgeRouting::Decoders(h) => Some(h),
        HostBridgeRouting::PassThrough => None,
    };
    let mut epr = map_endpoint(&ep, true)?;
    let ep_hdm = locate(&epr, &ep_name)?;

    // Check both before writing either, so a conflict on the endpoint does
    // not leave a half-built route behind.
    if let Some(hb_hdm) = &hb_hdm {
        hb_hdm
            .check(&hb, 0, &hb_plan)
            .map_err(|e| format!("{hb_name}: {e}"))?;
    }
    ep_hdm.check(&epr, 0, &ep_plan).map_err(|e| match e {
        HdmError::Conflict { .. } if fault.is_some() => format!(
            "{ep_name}: {e} (QEMU cannot uncommit a decoder: reset the device first, \
             echo 1 > {}/reset)",
            pci_dir(&bdf).display()
        ),
        e => format!("{ep_name}: {e}"),
    })?;

    let mut sleep = || std::thread::sleep(POLL_INTERVAL);
    match &hb_hdm {
        Some(hb_hdm) => {
            let out = hb_hdm
                .program(&mut hb, 0, &hb_plan, MAX_POLLS, &mut sleep)
                .map_err(|e| format!("{hb_name}: {e}"))?;
            println!(
                "{hb_name} HDM decoder 0: {}: {}",
                describe(&out),
                hb_hdm.decoder(&hb, 0).map_err(|e| e.to_string())?
            );
        }
        None => println!(
            "{hb_name}: no HDM decoder capability and one root port ({}): a pass-through \
             host bridge, nothing to program; committing only the endpoint decoder",
            rp.bdf
        ),
    }
    let hb_route = if hb_hdm.is_some() {
        ""
    } else {
        " (pass-through)"
    };
    let out = ep_hdm
        .program(&mut epr, 0, &ep_plan, MAX_POLLS, &mut sleep)
        .map_err(|e| format!("{ep_name}: {e}"))?;
    println!(
        "{ep_name} HDM decoder 0: {}: {}",
        describe(&out),
        ep_hdm.decoder(&epr, 0).map_err(|e| e.to_string())?
    );
    match fault {
        None => println!(
            "route: HPA {:#x}..{:#x} -> host bridge uid {}{hb_route} -> port {} -> {bdf} DPA 0",
            base,
            base + size,
            chbs.uid,
            rp.port_number
        ),
        Some(f) => println!(
            "FAULT {f}: committed a faulty endpoint decoder 0 on {bdf} ({}): \
             HPA {:#x}..{:#x} IW={}; host bridge uid {}{} is correct \
             (HPA {:#x}..{:#x} -> port {})",
            f.description(),
            ep_plan.base,
            ep_plan.base + ep_plan.size,
            ep_plan.iw,
            chbs.uid,
            if hb_hdm.is_some() {
                " decoder 0"
            } else {
                " (pass-through)"
            },
            base,
            base + size,
            rp.port_number
        ),
    }
    println!("endpoint={bdf}");
    Ok(())
}

fn find(opts: &Options) -> Result<()> {
    if opts.all {
        for bdf in find_endpoints()? {
            println!("{bdf}");
        }
        return Ok(());
    }
    let bdf = resolve_endpoint(opts)?;
    // With --device, still make sure it is what the name says.
    inspect_endpoint(&bdf)?;
    println!("{bdf}");
    Ok(())
}

fn print_hdm(regs: &Mmio, who: &str) -> Result<()> {
    let hdm = locate(regs, who)?;
    let global = hdm.global_control(regs);
    println!(
        "  HDM capability at +{:#x}: {:#010x} ({} decoder(s), target count {}), \
         global control {global:#010x} (HDM_Decoder_Enable={})",
        hdm.offset,
        hdm.capability,
        hdm.decoder_count,
        hdm.target_count(),
        u8::from(global & cxl_fwemu::hdm::GLOBAL_CTRL_HDM_ENABLE != 0)
    );
    let d = hdm.decoder(regs, 0).map_err(|e| format!("{who}: {e}"))?;
    println!("  decoder 0: {d}");
    Ok(())
}

fn show(opts: &Options) -> Result<()> {
    let mut failures = Vec::new();
    let mut fail = |e: String| {
        eprintln!("cxl-fwemu: error: {e}");
        failures.push(e);
    };

    let cedt = read_cedt(&opts.cedt)?;
    println!(
        "CEDT {}: revision {}, checksum {}",
        opts.cedt.display(),
        cedt.revision,
        if cedt.checksum_ok { "ok" } else { "BAD" }
    );
    for c in &cedt.chbs {
        println!(
            "  CHBS uid={} cxl_version={} ({}) base={:#x} length={:#x}",
            c.uid,
            c.cxl_version,
            if c.cxl_version >= cedt::CHBS_VERSION_CXL20 {
                "CXL 2.0+ host bridge"
            } else {
                "CXL 1.1 RCH"
            },
            c.base,
            c.length
        );
    }
    for w in &cedt.cfmws {
        println!(
            "  CFMWS base={:#x} size={:#x} ways={} (eniw {}) arithmetic={} hbig={} \
             restrictions={:#06x} qtg={} targets={:?}",
            w.base_hpa,
            w.window_size,
            w.ways(),
            w.eniw,
            w.interleave_arithmetic,
            w.hbig,
            w.window_restrictions,
            w.qtg_id,
            w.targets
        );
    }
    if !cedt.skipped.is_empty() {
        println!("  other structures (skipped), types: {:?}", cedt.skipped);
    }

    for c in &cedt.chbs {
        if opts.chbs_uid.is_some_and(|u| u != c.uid) || c.cxl_version < cedt::CHBS_VERSION_CXL20 {
            continue;
        }
        let who = format!("host bridge uid {}", c.uid);
        println!("{who} component registers at {:#x}:", c.base);
        let dir = host_bridge_dir_by_uid(c.uid);
        let shown = map_host_bridge(c).and_then(|m| match routing(&m, &who, dir.as_deref())? {
            HostBridgeRouting::Decoders(_) => print_hdm(&m, &who),
            HostBridgeRouting::PassThrough => {
                println!("  no HDM decoder capability, one root port: a pass-through host bridge");
                Ok(())
            }
        });
        if let Err(e) = shown {
            fail(e);
        }
    }

    let endpoints = match &opts.device {
        Some(bdf) => Ok(vec![bdf.clone()]),
        None => find_endpoints(),
    };
    let endpoints = endpoints.unwrap_or_else(|e| {
        fail(e);
        Vec::new()
    });
    for ep in endpoints.iter().map(|bdf| inspect_endpoint(bdf)) {
        match ep {
            Err(e) => fail(e),
            Ok(ep) => {
                let d = &ep.dvsec;
                println!(
                    "endpoint {}: DVSEC capability={:#06x} (HDM_Count={}) control={:#06x} \
                     (Mem_Enable={}) range 1 size={:#x} valid={} active={}",
                    ep.bdf,
                    d.capability,
                    d.hdm_count(),
                    d.control,
                    u8::from(d.mem_enabled()),
                    d.range1_size(),
                    u8::from(d.range1_info_valid()),
                    u8::from(d.range1_active())
                );
                println!(
                    "  component registers: BAR{} + {:#x}",
                    ep.component.bir, ep.component.offset
                );
                match root_port(&ep.bdf) {
                    Ok(rp) => println!(
                        "  root port {} port number {} (host bridge _UID {})",
                        rp.bdf,
                        rp.port_number,
                        rp.host_bridge_uid
                            .map_or_else(|| "unknown".to_string(), |u| u.to_string())
                    ),
                    Err(e) => fail(e),
                }
                let who = format!("endpoint {}", ep.bdf);
                if !memory_decoding(&ep) {
                    // Normal before any driver or this tool enabled the device.
                    println!("  registers not read: memory space decoding is disabled");
                } else if in_d3hot(&ep) {
                    // vfio-pci runtime-suspends a bound device nobody has open.
                    println!(
                        "  registers not read: the device is in D3hot, its BARs do not decode"
                    );
                } else if let Err(e) = map_endpoint(&ep, false).and_then(|m| print_hdm(&m, &who)) {
                    fail(e);
                }
            }
        }
    }

    match failures.len() {
        0 => Ok(()),
        n => Err(format!("show: {n} part(s) could not be read (see above)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_commands_and_options() {
        let o = parse_args(args("")).unwrap().unwrap();
        assert_eq!(o.command, Command::Program);
        assert_eq!(o.device, None);
        assert_eq!(o.cedt, PathBuf::from(DEFAULT_CEDT));

        let o = parse_args(args("show --cedt /tmp/t --chbs-uid 0xc --device 0D:00.0"))
            .unwrap()
            .unwrap();
        assert_eq!(o.command, Command::Show);
        assert_eq!(o.cedt, PathBuf::from("/tmp/t"));
        assert_eq!(o.chbs_uid, Some(12));
        assert_eq!(o.device.as_deref(), Some("0000:0d:00.0"));

        let o = parse_args(args("--device=0000:0d:00.0 find"))
            .unwrap()
            .unwrap();
        assert_eq!(o.command, Command::Find);
        assert_eq!(o.device.as_deref(), Some("0000:0d:00.0"));

        assert_eq!(parse_args(args("--help")).unwrap(), None);
    }

    #[test]
    fn parses_endpoint_fault() {
        let o = parse_args(args("")).unwrap().unwrap();
        assert_eq!(o.endpoint_fault, None);
        for (text, fault) in [
            ("interleave2", EndpointFault::Interleave2),
            ("outside-window", EndpointFault::OutsideWindow),
            ("oversize", EndpointFault::Oversize),
        ] {
            let o = parse_args(args(&format!("--device 0d:00.0 --endpoint-fault {text}")))
                .unwrap()
                .unwrap();
            assert_eq!(o.command, Command::Program);
            assert_eq!(o.endpoint_fault, Some(fault));
            assert_eq!(o.device.as_deref(), Some("0000:0d:00.0"));
            let o = parse_args(args(&format!("--endpoint-fault={text}")))
                .unwrap()
                .unwrap();
            assert_eq!(o.endpoint_fault, Some(fault));
        }
    }

    #[test]
    fn rejects_bad_endpoint_faults() {
        let err = parse_args(args("--endpoint-fault interleave4")).unwrap_err();
        assert!(
            err.contains("unknown endpoint fault 'interleave4'"),
            "{err}"
        );
        assert!(parse_args(args("--endpoint-fault")).is_err());
        assert!(parse_args(args("--endpoint-fault=")).is_err());
        // Only the programming command plays firmware.
        assert!(parse_args(args("show --endpoint-fault oversize")).is_err());
        assert!(parse_args(args("--endpoint-fault oversize find")).is_err());
    }

    #[test]
    fn parses_find_all() {
        let o = parse_args(args("find --all")).unwrap().unwrap();
        assert_eq!(o.command, Command::Find);
        assert!(o.all);
        let o = parse_args(args("--all find")).unwrap().unwrap();
        assert!(o.all);
        assert!(!parse_args(args("find")).unwrap().unwrap().all);
        // Only find lists, and it lists all or names one.
        assert!(parse_args(args("--all")).is_err());
        assert!(parse_args(args("show --all")).is_err());
        assert!(parse_args(args("find --all --device 0d:00.0")).is_err());
        assert!(parse_args(args("find --all=yes")).is_err());
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse_args(args("frobnicate")).is_err());
        assert!(parse_args(args("find show")).is_err());
        assert!(parse_args(args("--device")).is_err());
        assert!(parse_args(args("--chbs-uid twelve")).is_err());
        assert!(parse_args(args("--device 0000:0d:00")).is_err());
    }

    #[test]
    fn normalizes_bdfs() {
        assert_eq!(normalize_bdf("0d:00.0").unwrap(), "0000:0d:00.0");
        assert_eq!(normalize_bdf("0001:AB:1f.7").unwrap(), "0001:ab:1f.7");
        for bad in [
            "0d:00",
            "0000:0d:20.0",
            "0000:0d:00.8",
            "x:0d:00.0",
            "pci0000:0c",
        ] {
            assert!(normalize_bdf(bad).is_err(), "{bad}");
        }
    }
}
