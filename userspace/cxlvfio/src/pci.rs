//! PCI device attributes from sysfs (`/sys/bus/pci/devices/<BDF>/...`).
//!
//! These are the host's view of the device, used to cross-check what VFIO
//! reports and to find the device's IOMMU group and VFIO cdev.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::error::{other, ResultExt};
use crate::mmap::{Mapping, PAGE_SIZE};

/// Where the PCI core lists devices.
pub const SYSFS_PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// Validates a PCI address and returns it in sysfs form, `dddd:bb:dd.f` in
/// lower case. A missing domain (`bb:dd.f`) means domain 0.
///
/// Validation also keeps the string from escaping `/sys/bus/pci/devices`.
pub fn normalize_bdf(bdf: &str) -> io::Result<String> {
    let bad = || {
        other(
            io::ErrorKind::InvalidInput,
            format!("invalid PCI address {bdf:?} (expected dddd:bb:dd.f)"),
        )
    };
    let full = match bdf.matches(':').count() {
        1 => format!("0000:{bdf}"),
        2 => bdf.to_string(),
        _ => return Err(bad()),
    };
    let (dom_bus_dev, func) = full.rsplit_once('.').ok_or_else(bad)?;
    let parts: Vec<&str> = dom_bus_dev.split(':').collect();
    let widths = [4usize, 2, 2];
    if parts.len() != 3 || func.len() != 1 {
        return Err(bad());
    }
    for (part, width) in parts.iter().zip(widths) {
        if part.len() != width || !part.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
    }
    // Device is 5 bits, function 3 bits.
    let dev = u8::from_str_radix(parts[2], 16).map_err(|_| bad())?;
    let fnum = func.parse::<u8>().map_err(|_| bad())?;
    if dev > 0x1f || fnum > 7 {
        return Err(bad());
    }
    Ok(full.to_ascii_lowercase())
}

/// `/sys/bus/pci/devices/<bdf>`.
pub fn device_dir(bdf: &str) -> PathBuf {
    Path::new(SYSFS_PCI_DEVICES).join(bdf)
}

/// The last component of a symlink's target, or `None` if the link does not exist.
pub fn link_basename(link: &Path) -> io::Result<Option<String>> {
    match fs::read_link(link) {
        Ok(target) => target
            .file_name()
            .map(|n| Some(n.to_string_lossy().into_owned()))
            .ok_or_else(|| {
                other(
                    io::ErrorKind::InvalidData,
                    format!("{}: link target {target:?} has no name", link.display()),
                )
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("readlink {}", link.display())),
    }
}

/// Name of the driver bound to the device (`driver` link), `None` if unbound.
pub fn driver_name(bdf: &str) -> io::Result<Option<String>> {
    link_basename(&device_dir(bdf).join("driver"))
}

/// Fails with `NotFound` if there is no PCI device `bdf`.
pub fn check_exists(bdf: &str) -> io::Result<()> {
    let dir = device_dir(bdf);
    if dir.exists() {
        Ok(())
    } else {
        Err(other(
            io::ErrorKind::NotFound,
            format!("no PCI device {bdf} ({} does not exist)", dir.display()),
        ))
    }
}

/// Number of the device's IOMMU group, from the `iommu_group` link.
pub fn iommu_group(bdf: &str) -> io::Result<u32> {
    check_exists(bdf)?;
    let link = device_dir(bdf).join("iommu_group");
    let name = link_basename(&link)?.ok_or_else(|| {
        other(
            io::ErrorKind::NotFound,
            format!(
                "{}: no IOMMU group (is vfio noiommu mode enabled and the device bound to a VFIO driver?)",
                link.display()
            ),
        )
    })?;
    name.parse().map_err(|_| {
        other(
            io::ErrorKind::InvalidData,
            format!("{}: group name {name:?} is not a number", link.display()),
        )
    })
}

/// Where udev puts VFIO device cdevs: `/dev/vfio/devices/vfioN`.
pub const VFIO_CDEV_DIR: &str = "/dev/vfio/devices";

/// A device's VFIO cdev, as sysfs lists it under `<device>/vfio-dev/vfioN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfioCdev {
    /// `vfioN`.
    pub name: String,
    /// `/dev/vfio/devices/vfioN`.
    pub path: PathBuf,
    /// `(major, minor)` from sysfs `vfio-dev/vfioN/dev`, if it could be read.
    pub devnum: Option<(u32, u32)>,
}

/// The single `vfioN` name among the entries of a `vfio-dev` directory.
pub fn pick_vfio_cdev_name<I, S>(dir: &Path, entries: I) -> io::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let names: Vec<String> = entries
        .into_iter()
        .map(|n| n.as_ref().to_string())
        .filter(|n| {
            n.strip_prefix("vfio")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(other(
            io::ErrorKind::NotFound,
            format!("{}: no vfioN entry", dir.display()),
        )),
        many => Err(other(
            io::ErrorKind::InvalidData,
            format!("{}: several entries {many:?}", dir.display()),
        )),
    }
}

/// Parses a sysfs `dev` attribute, `MAJOR:MINOR`.
pub fn parse_devnum(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The device's VFIO cdev: the `vfioN` under `/sys/bus/pci/devices/<bdf>/vfio-dev/`.
///
/// The directory exists only while a VFIO driver is bound and the kernel has
/// `CONFIG_VFIO_DEVICE_CDEV`; the error says so when it is missing.
pub fn vfio_cdev(bdf: &str) -> io::Result<VfioCdev> {
    check_exists(bdf)?;
    let dir = device_dir(bdf).join("vfio-dev");
    let entries = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<Vec<String>>>()
            .context(|| format!("read {}", dir.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(other(
                io::ErrorKind::NotFound,
                format!(
                    "{} does not exist: no VFIO device cdev (kernel without \
                     CONFIG_VFIO_DEVICE_CDEV, or {bdf} not bound to a VFIO driver)",
                    dir.display()
                ),
            ))
        }
        Err(e) => return Err(e).context(|| format!("read {}", dir.display())),
    };
    let name = pick_vfio_cdev_name(&dir, &entries)?;
    let devnum = fs::read_to_string(dir.join(&name).join("dev"))
        .ok()
        .and_then(|t| parse_devnum(&t));
    Ok(VfioCdev {
        path: Path::new(VFIO_CDEV_DIR).join(&name),
        name,
        devnum,
    })
}

/// Parses a sysfs hex attribute such as `0x8086\n`.
pub fn parse_hex(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Reads a hex attribute of the device (`vendor`, `device`, `class`, ...).
pub fn read_hex_attr(bdf: &str, attr: &str) -> io::Result<u64> {
    let path = device_dir(bdf).join(attr);
    let text = fs::read_to_string(&path).context(|| format!("read {}", path.display()))?;
    parse_hex(&text).ok_or_else(|| {
        other(
            io::ErrorKind::InvalidData,
            format!("{}: not a hex number: {:?}", path.display(), text.trim()),
        )
    })
}

/// One line of the sysfs `resource` file: `start end flags`, all hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// First address.
    pub start: u64,
    /// Last address (inclusive).
    pub end: u64,
    /// `IORESOURCE_*` flags.
    pub flags: u64,
}

impl Resource {
    /// Size in bytes (`end - start + 1`), 0 for an unassigned/unimplemented resource.
    pub fn size(&self) -> u64 {
        if self.start == 0 && self.end == 0 {
            0
        } else {
            self.end.wrapping_sub(self.start).wrapping_add(1)
        }
    }
}

/// Parses the sysfs `resource` file; line N is BAR N (6 is the ROM).
pub fn parse_resources(text: &str) -> io::Result<Vec<Resource>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<u64> = line.split_whitespace().filter_map(parse_hex).collect();
            match fields[..] {
                [start, end, flags] => Ok(Resource { start, end, flags }),
                _ => Err(other(
                    io::ErrorKind::InvalidData,
                    format!("resource line {i} malformed: {line:?}"),
                )),
            }
        })
        .collect()
}

/// Resource `index` of the device as sysfs reports it.
pub fn resource(bdf: &str, index: usize) -> io::Result<Resource> {
    let path = device_dir(bdf).join("resource");
    let text = fs::read_to_string(&path).context(|| format!("read {}", path.display()))?;
    let res = parse_resources(&text).context(|| path.display().to_string())?;
    res.get(index).copied().ok_or_else(|| {
        other(
            io::ErrorKind::InvalidData,
            format!("{}: no line {index}", path.display()),
        )
    })
}

/// A read-only shared mapping of memory BAR `bar` through sysfs `resource<bar>`:
/// the host's view of the device's registers, past any VFIO emulation (root only).
///
/// Registers are read with single aligned 32-bit volatile loads: devices (and
/// QEMU's device models) may drop or split wider or narrower accesses. The
/// mapping is `PROT_READ` of a file opened read-only, so nothing done through
/// it can change the hardware.
#[derive(Debug)]
pub struct ResourceMap {
    map: Mapping,
    size: u64,
}

impl ResourceMap {
    /// Maps all of BAR `bar` of `bdf` (its size from the sysfs `resource` file).
    pub fn open(bdf: &str, bar: usize) -> io::Result<Self> {
        let size = resource(bdf, bar)?.size();
        let path = device_dir(bdf).join(format!("resource{bar}"));
        let len = usize::try_from(size)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| {
                other(
                    io::ErrorKind::InvalidInput,
                    format!("{}: BAR size {size:#x} cannot be mapped", path.display()),
                )
            })?
            .next_multiple_of(PAGE_SIZE);
        let file = fs::File::open(&path).context(|| format!("open {}", path.display()))?;
        let map = Mapping::map(file.as_fd(), 0, len, libc::PROT_READ, libc::MAP_SHARED)
            .context(|| format!("mmap {len:#x} bytes of {}", path.display()))?;
        Ok(ResourceMap { map, size })
    }

    /// The BAR size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// One volatile 32-bit load at `off` of the BAR (a multiple of 4, inside it).
    pub fn read_u32(&self, off: u64) -> io::Result<u32> {
        if !off.is_multiple_of(4) || off.checked_add(4).is_none_or(|end| end > self.size) {
            return Err(other(
                io::ErrorKind::InvalidInput,
                format!(
                    "32-bit read at {off:#x} of a BAR of {:#x} bytes: misaligned or outside",
                    self.size
                ),
            ));
        }
        let p = (self.map.addr() + off as usize) as *const u32;
        // SAFETY: `p` is 4-aligned (the mapping is page aligned, `off` a
        // multiple of 4) and its 4 bytes lie inside the mapping (checked
        // above against the BAR size, which the mapping covers), which lives
        // as long as `self`. Device memory is only read, volatile, through a
        // raw pointer: no Rust reference to it exists.
        Ok(unsafe { p.read_volatile() })
    }

    /// `n` consecutive dwords from `off`, one 32-bit load each.
    pub fn read_dwords(&self, off: u64, n: usize) -> io::Result<Vec<u32>> {
        (0..n as u64).map(|i| self.read_u32(off + 4 * i)).collect()
    }
}

/// Content of the `reset_method` attribute (e.g. `flr bus`), `None` if the
/// attribute does not exist (the PCI core hides it when no method works).
pub fn reset_method(bdf: &str) -> io::Result<Option<String>> {
    let path = device_dir(bdf).join("reset_method");
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("read {}", path.display())),
    }
}

/// Unbinds the device from its driver by writing the address to `driver/unbind`.
pub fn unbind(bdf: &str) -> io::Result<()> {
    let path = device_dir(bdf).join("driver/unbind");
    fs::write(&path, bdf).context(|| format!("write {bdf} to {}", path.display()))
}

/// Asks the PCI core to bind the device to a driver (`drivers_probe`): the one
/// its `driver_override` names, if set.
pub fn probe(bdf: &str) -> io::Result<()> {
    let path = Path::new("/sys/bus/pci/drivers_probe");
    fs::write(path, bdf).context(|| format!("write {bdf} to {}", path.display()))
}

/// Keeps a function in D0 while it lives: writes `on` to its `power/control` (the PCI core
/// resumes it and runtime PM leaves it powered), and puts back what was there when dropped.
/// For reading a device's registers past its driver while nobody has it open.
#[derive(Debug)]
pub struct RuntimePmOn {
    path: PathBuf,
    before: String,
}

impl RuntimePmOn {
    /// Sets `power/control` of `bdf` to `on`.
    pub fn new(bdf: &str) -> io::Result<Self> {
        let path = device_dir(bdf).join("power/control");
        let before = fs::read_to_string(&path)
            .context(|| format!("read {}", path.display()))?
            .trim()
            .to_string();
        fs::write(&path, "on").context(|| format!("write on to {}", path.display()))?;
        Ok(Self { path, before })
    }
}

impl Drop for RuntimePmOn {
    fn drop(&mut self) {
        let _ = fs::write(&self.path, &self.before);
    }
}

/// Parses a `VVVV:DDDD` vendor:device pair (hex, optional `0x`).
pub fn parse_ids(s: &str) -> Option<(u16, u16)> {
    let (v, d) = s.split_once(':')?;
    let hex = |t: &str| {
        let t = t.strip_prefix("0x").unwrap_or(t);
        (!t.is_empty() && t.len() <= 4)
            .then(|| u16::from_str_radix(t, 16).ok())
            .flatten()
    };
    Some((hex(v)?, hex(d)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vfio_cdev_names() {
        let dir = Path::new("/sys/bus/pci/devices/0000:0d:00.0/vfio-dev");
        assert_eq!(pick_vfio_cdev_name(dir, ["vfio0"]).unwrap(), "vfio0");
        assert_eq!(
            pick_vfio_cdev_name(dir, ["uevent", "vfio12", "power"]).unwrap(),
            "vfio12"
        );
        let e = pick_vfio_cdev_name(dir, ["vfio", "vfiox", "power"]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("vfio-dev: no vfioN entry"), "{e}");
        let e = pick_vfio_cdev_name(dir, ["vfio0", "vfio1"]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(parse_devnum("238:0\n"), Some((238, 0)));
        assert_eq!(parse_devnum("238"), None);
        assert_eq!(parse_devnum("a:1"), None);
    }

    #[test]
    fn vfio_cdev_of_a_missing_device() {
        let e = vfio_cdev("0000:ff:1f.7").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn bdf_normalization() {
        assert_eq!(normalize_bdf("0000:0d:00.0").unwrap(), "0000:0d:00.0");
        assert_eq!(normalize_bdf("0D:1f.7").unwrap(), "0000:0d:1f.7");
        assert_eq!(normalize_bdf("0001:AB:03.1").unwrap(), "0001:ab:03.1");
        for bad in [
            "",
            "0d:00",
            "0000:0d:00.8",
            "0000:0d:20.0",
            "000:0d:00.0",
            "0000:0d:00.0/../../x",
            "../0d:00.0",
            "0000:0g:00.0",
            "0:0:0:0.0",
        ] {
            assert!(normalize_bdf(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("0x8086\n"), Some(0x8086));
        assert_eq!(parse_hex("0x0d93"), Some(0xd93));
        assert_eq!(parse_hex("050210"), Some(0x050210));
        assert_eq!(parse_hex("0x"), None);
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn resource_parsing() {
        let text = "0x00000000fe800000 0x00000000fe80ffff 0x0000000000140204\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x000000000000c000 0x000000000000c03f 0x0000000000040101\n";
        let res = parse_resources(text).unwrap();
        assert_eq!(res.len(), 3);
        assert_eq!(res[0].size(), 0x10000);
        assert_eq!(res[0].flags, 0x140204);
        assert_eq!(res[1].size(), 0);
        assert_eq!(res[2].size(), 0x40);
        assert!(parse_resources("0x1 0x2\n").is_err());
    }

    #[test]
    fn resource_map_refuses_bad_devices() {
        // No such device: the sysfs `resource` file does not exist.
        assert!(ResourceMap::open("0000:ff:1f.7", 0).is_err());
    }

    #[test]
    fn link_basename_reads_target_name() {
        let dir = std::env::temp_dir().join(format!("cxlvfio-pci-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let link = dir.join("driver");
        std::os::unix::fs::symlink("../../../bus/pci/drivers/cxl-vfio-pci", &link).unwrap();
        assert_eq!(
            link_basename(&link).unwrap().as_deref(),
            Some("cxl-vfio-pci")
        );
        assert_eq!(link_basename(&dir.join("iommu_group")).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
