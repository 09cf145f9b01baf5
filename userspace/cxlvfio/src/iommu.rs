//! Opening a device the ways a VMM does, with the IOMMU side it needs.
//!
//! | [`IommuMode`] | device fd from | IOMMU side |
//! | --- | --- | --- |
//! | `noiommu` | `/dev/vfio/noiommu-N` (`VFIO_GROUP_GET_DEVICE_FD`) | container with `VFIO_NOIOMMU_IOMMU`: no translation, no DMA mapping |
//! | `type1` | `/dev/vfio/N` (`VFIO_GROUP_GET_DEVICE_FD`) | container with `VFIO_TYPE1v2_IOMMU`: `VFIO_IOMMU_MAP_DMA` |
//! | `iommufd` | `/dev/vfio/devices/vfioN` (`VFIO_DEVICE_BIND_IOMMUFD`) | `/dev/iommu`, one IOAS the device is attached to: `IOMMU_IOAS_MAP` |
//!
//! [`open_device`] takes the mode from the environment variable
//! `CXLVFIO_IOMMU` ([`IOMMU_ENV`]): `noiommu`, `type1` or `iommufd`; unset,
//! empty or `auto` means the no-IOMMU group if `/dev/vfio/noiommu-N` exists,
//! else type1. [`open_device_with`] takes the mode as an argument. Both return
//! an [`AttachedDevice`], which dereferences to the [`Device`] and undoes the
//! whole open in order in [`AttachedDevice::close`].

use std::fmt;
use std::io;
use std::ops::Deref;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{other, with_context, ResultExt};
use crate::iommufd::Iommufd;
use crate::pci;
use crate::uapi::{
    IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, VFIO_API_VERSION,
    VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_NOIOMMU_IOMMU, VFIO_TYPE1V2_IOMMU,
};
use crate::vfio::{group_path, Container, Device, Group};

/// The environment variable [`open_device`] reads the mode from.
pub const IOMMU_ENV: &str = "CXLVFIO_IOMMU";

/// How the device is opened and what stands between it and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IommuMode {
    /// A no-IOMMU group and container (`enable_unsafe_noiommu_mode`): the
    /// device sees physical addresses; there is nothing to map.
    NoIommu,
    /// The legacy container and group with the type1 (v2) IOMMU backend.
    Type1,
    /// The VFIO device cdev bound to an iommufd and attached to an IOAS.
    Iommufd,
}

impl IommuMode {
    /// Every mode, in the order of the table in the module docs.
    pub const ALL: [IommuMode; 3] = [IommuMode::NoIommu, IommuMode::Type1, IommuMode::Iommufd];

    /// The name used by `CXLVFIO_IOMMU` and [`fmt::Display`].
    pub fn name(self) -> &'static str {
        match self {
            IommuMode::NoIommu => "noiommu",
            IommuMode::Type1 => "type1",
            IommuMode::Iommufd => "iommufd",
        }
    }

    /// The ioctl during which the driver's `open_device` runs, so the one
    /// that carries its refusals (e.g. `EBUSY`): with a group it is
    /// `VFIO_GROUP_GET_DEVICE_FD`, with a cdev `VFIO_DEVICE_BIND_IOMMUFD`.
    pub fn device_open_ioctl(self) -> &'static str {
        match self {
            IommuMode::NoIommu | IommuMode::Type1 => "VFIO_GROUP_GET_DEVICE_FD",
            IommuMode::Iommufd => "VFIO_DEVICE_BIND_IOMMUFD",
        }
    }

    /// Whether the mode has an IOMMU to map memory for the device into.
    pub fn maps_dma(self) -> bool {
        self != IommuMode::NoIommu
    }

    /// The `auto` choice for the device in IOMMU group `group`: its no-IOMMU
    /// group node if that exists, else type1.
    pub fn auto_for_group(group: u32) -> IommuMode {
        if group_path(group, true).exists() {
            IommuMode::NoIommu
        } else {
            IommuMode::Type1
        }
    }
}

impl fmt::Display for IommuMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IommuMode {
    type Err = io::Error;

    /// `noiommu`, `type1` or `iommufd`.
    fn from_str(s: &str) -> io::Result<Self> {
        IommuMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                other(
                    io::ErrorKind::InvalidInput,
                    format!("unknown IOMMU mode {s:?}: noiommu, type1 or iommufd"),
                )
            })
    }
}

/// Parses a `CXLVFIO_IOMMU` value: `Ok(None)` for auto (unset, empty or `auto`).
pub fn parse_iommu_setting(value: Option<&str>) -> io::Result<Option<IommuMode>> {
    match value.map(str::trim) {
        None | Some("") | Some("auto") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            other(
                io::ErrorKind::InvalidInput,
                format!("{IOMMU_ENV}={v:?}: expected noiommu, type1, iommufd or auto"),
            )
        }),
    }
}

/// The mode `CXLVFIO_IOMMU` asks for, `Ok(None)` for auto.
pub fn iommu_mode_from_env() -> io::Result<Option<IommuMode>> {
    match std::env::var(IOMMU_ENV) {
        Ok(v) => parse_iommu_setting(Some(&v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(other(
            io::ErrorKind::InvalidInput,
            format!("{IOMMU_ENV} is not valid UTF-8"),
        )),
    }
}

/// The mode [`open_device`] uses for `bdf`: `CXLVFIO_IOMMU`, or the auto choice.
pub fn requested_mode(bdf: &str) -> io::Result<IommuMode> {
    match iommu_mode_from_env()? {
        Some(mode) => Ok(mode),
        None => {
            let bdf = pci::normalize_bdf(bdf)?;
            Ok(IommuMode::auto_for_group(pci::iommu_group(&bdf)?))
        }
    }
}

/// The IOMMU side of an [`AttachedDevice`].
///
/// Fields drop in declaration order, which is also the order a close needs.
#[derive(Debug)]
pub enum IommuContext {
    /// The legacy flow (no-IOMMU or type1): the group, attached to the container.
    Container {
        /// The device's group (`/dev/vfio/N` or `/dev/vfio/noiommu-N`).
        group: Group,
        /// The container (`/dev/vfio/vfio`) with its IOMMU backend set.
        container: Container,
    },
    /// The cdev flow: the iommufd the device is bound to and its IOAS.
    Iommufd {
        /// `/dev/iommu`.
        iommufd: Iommufd,
        /// The IOAS the device is attached to.
        ioas_id: u32,
        /// The device's id in the iommufd (`VFIO_DEVICE_BIND_IOMMUFD`'s `out_devid`).
        devid: u32,
        /// The cdev the device fd was opened from (`/dev/vfio/devices/vfioN`).
        cdev: PathBuf,
    },
}

/// An open VFIO device together with the IOMMU context it is attached to:
/// what [`open_device`] returns. Dereferences to the [`Device`].
///
/// Dropping it closes everything too (device first), but only
/// [`AttachedDevice::close`] reports errors and detaches explicitly.
#[derive(Debug)]
pub struct AttachedDevice {
    // Declared first so that it drops first: the device goes before its IOMMU side.
    device: Device,
    mode: IommuMode,
    context: IommuContext,
}

impl AttachedDevice {
    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The mode it was opened with.
    pub fn mode(&self) -> IommuMode {
        self.mode
    }

    /// The IOMMU side.
    pub fn context(&self) -> &IommuContext {
        &self.context
    }

    /// The group, in the legacy modes.
    pub fn group(&self) -> Option<&Group> {
        match &self.context {
            IommuContext::Container { group, .. } => Some(group),
            IommuContext::Iommufd { .. } => None,
        }
    }

    /// The container, in the legacy modes.
    pub fn container(&self) -> Option<&Container> {
        match &self.context {
            IommuContext::Container { container, .. } => Some(container),
            IommuContext::Iommufd { .. } => None,
        }
    }

    /// The iommufd, in iommufd mode.
    pub fn iommufd(&self) -> Option<&Iommufd> {
        match &self.context {
            IommuContext::Iommufd { iommufd, .. } => Some(iommufd),
            IommuContext::Container { .. } => None,
        }
    }

    /// The IOAS id, in iommufd mode.
    pub fn ioas_id(&self) -> Option<u32> {
        match &self.context {
            IommuContext::Iommufd { ioas_id, .. } => Some(*ioas_id),
            IommuContext::Container { .. } => None,
        }
    }

    /// The device's id in the iommufd, in iommufd mode.
    pub fn devid(&self) -> Option<u32> {
        match &self.context {
            IommuContext::Iommufd { devid, .. } => Some(*devid),
            IommuContext::Container { .. } => None,
        }
    }

    /// The device node the device was reached through: the group node in the
    /// legacy modes, the cdev in iommufd mode.
    pub fn node(&self) -> &Path {
        match &self.context {
            IommuContext::Container { group, .. } => group.path(),
            IommuContext::Iommufd { cdev, .. } => cdev,
        }
    }

    /// One line for logs: mode, node and ids.
    pub fn describe(&self) -> String {
        match &self.context {
            IommuContext::Container { group, .. } => format!(
                "{} via {} (group {})",
                self.mode,
                group.path().display(),
                group.number()
            ),
            IommuContext::Iommufd {
                ioas_id,
                devid,
                cdev,
                ..
            } => format!(
                "{} via {} (devid {devid}, ioas {ioas_id})",
                self.mode,
                cdev.display()
            ),
        }
    }

    /// Maps `size` bytes of this process's memory at `vaddr` for the device's
    /// DMA at `iova`, readable and writable: `VFIO_IOMMU_MAP_DMA` on the
    /// container (type1) or `IOMMU_IOAS_MAP` with a fixed IOVA (iommufd).
    /// No-IOMMU mode has nothing to map into: an `Unsupported` error.
    ///
    /// The kernel checks the arguments and its errno comes back unchanged.
    /// While mapped, the device may write that memory at any time (see
    /// [`Container::map_dma`]).
    pub fn dma_map(&self, vaddr: u64, iova: u64, size: u64) -> io::Result<()> {
        match &self.context {
            IommuContext::Container { container, .. } if self.mode == IommuMode::Type1 => container
                .map_dma(
                    vaddr,
                    iova,
                    size,
                    VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                ),
            IommuContext::Iommufd {
                iommufd, ioas_id, ..
            } => iommufd
                .ioas_map(
                    *ioas_id,
                    vaddr,
                    iova,
                    size,
                    IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE,
                )
                .map(drop),
            IommuContext::Container { .. } => Err(self.no_dma("map")),
        }
    }

    /// Unmaps `[iova, iova + size)`: `VFIO_IOMMU_UNMAP_DMA` (type1) or
    /// `IOMMU_IOAS_UNMAP` (iommufd). Returns the bytes the kernel unmapped.
    /// No-IOMMU mode: an `Unsupported` error.
    pub fn dma_unmap(&self, iova: u64, size: u64) -> io::Result<u64> {
        match &self.context {
            IommuContext::Container { container, .. } if self.mode == IommuMode::Type1 => {
                container.unmap_dma(iova, size, 0)
            }
            IommuContext::Iommufd {
                iommufd, ioas_id, ..
            } => iommufd.ioas_unmap(*ioas_id, iova, size),
            IommuContext::Container { .. } => Err(self.no_dma("unmap")),
        }
    }

    fn no_dma(&self, what: &str) -> io::Error {
        other(
            io::ErrorKind::Unsupported,
            format!(
                "DMA {what} on {}: {} mode has no IOMMU to map into",
                self.device.name(),
                self.mode
            ),
        )
    }

    /// Undoes the open in order and reports the first error; later steps run
    /// even when an earlier one failed.
    ///
    /// iommufd: `VFIO_DEVICE_DETACH_IOMMUFD_PT`, close the device fd,
    /// `IOMMU_DESTROY` of the IOAS, close `/dev/iommu`. Legacy: close the
    /// device, the group, then the container fd.
    ///
    /// A mapping of the device (`mmap`) still holds the device file open, so
    /// the kernel releases the device only when the last one goes.
    pub fn close(self) -> io::Result<()> {
        let AttachedDevice {
            device, context, ..
        } = self;
        let results = match context {
            IommuContext::Container { group, container } => {
                vec![device.close(), group.close(), container.close()]
            }
            IommuContext::Iommufd {
                iommufd, ioas_id, ..
            } => {
                let detached = device.detach_iommufd_pt();
                let closed = device.close();
                vec![detached, closed, iommufd.destroy(ioas_id), iommufd.close()]
            }
        };
        results.into_iter().collect()
    }
}

impl Deref for AttachedDevice {
    type Target = Device;

    fn deref(&self) -> &Device {
        &self.device
    }
}

/// Opens a PCI device through VFIO the way a VMM does, in the mode
/// `CXLVFIO_IOMMU` asks for (see the module docs); auto picks the no-IOMMU
/// group if `/dev/vfio/noiommu-N` exists, else type1.
pub fn open_device(bdf: &str) -> io::Result<AttachedDevice> {
    let bdf = pci::normalize_bdf(bdf)?;
    let mode = requested_mode(&bdf)?;
    open_device_with(&bdf, mode)
}

/// Opens a PCI device through VFIO in `mode`.
///
/// Legacy modes: follow `/sys/bus/pci/devices/<bdf>/iommu_group` to the group
/// number, open `/dev/vfio/noiommu-N` (no-IOMMU) or `/dev/vfio/N` (type1),
/// check the API version, the IOMMU extension and the group's viability,
/// attach the group to a new container, set `VFIO_NOIOMMU_IOMMU` or
/// `VFIO_TYPE1v2_IOMMU` and get the device fd.
///
/// iommufd: find `vfioN` under `/sys/bus/pci/devices/<bdf>/vfio-dev/`, open
/// `/dev/vfio/devices/vfioN` and `/dev/iommu`, `VFIO_DEVICE_BIND_IOMMUFD`,
/// `IOMMU_IOAS_ALLOC` and `VFIO_DEVICE_ATTACH_IOMMUFD_PT`.
///
/// A mode the system does not offer fails with an error naming the missing
/// node, sysfs entry or ioctl.
pub fn open_device_with(bdf: &str, mode: IommuMode) -> io::Result<AttachedDevice> {
    let bdf = pci::normalize_bdf(bdf)?;
    match mode {
        IommuMode::NoIommu | IommuMode::Type1 => open_legacy(&bdf, mode),
        IommuMode::Iommufd => open_iommufd(&bdf),
    }
}

fn open_legacy(bdf: &str, mode: IommuMode) -> io::Result<AttachedDevice> {
    let noiommu = mode == IommuMode::NoIommu;
    let (iommu_type, type_name) = if noiommu {
        (VFIO_NOIOMMU_IOMMU, "VFIO_NOIOMMU_IOMMU")
    } else {
        (VFIO_TYPE1V2_IOMMU, "VFIO_TYPE1v2_IOMMU")
    };
    let number = pci::iommu_group(bdf)?;

    let container = Container::open()?;
    let version = container.api_version()?;
    if version != VFIO_API_VERSION {
        return Err(other(
            io::ErrorKind::Unsupported,
            format!("VFIO API version {version}, expected {VFIO_API_VERSION}"),
        ));
    }
    if !container.check_extension(iommu_type)? {
        return Err(other(
            io::ErrorKind::Unsupported,
            format!(
                "{mode}: the VFIO container does not support IOMMU type {iommu_type} ({type_name})"
            ),
        ));
    }

    let group = Group::open(number, noiommu).map_err(|e| {
        let other_node = group_path(number, !noiommu);
        let hint = match (e.kind(), other_node.exists()) {
            (io::ErrorKind::NotFound, true) if noiommu => {
                format!(" (the group is an IOMMU group, {})", other_node.display())
            }
            (io::ErrorKind::NotFound, true) => format!(
                " (the group is a no-IOMMU group, {}: {IOMMU_ENV}=noiommu)",
                other_node.display()
            ),
            (io::ErrorKind::NotFound, false) if noiommu => {
                " (is vfio's enable_unsafe_noiommu_mode set?)".to_string()
            }
            _ => String::new(),
        };
        with_context(e, format!("{mode} mode{hint}"))
    })?;
    if !group.is_viable()? {
        return Err(other(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not viable: some device in the group is bound to a non-VFIO driver",
                group.path().display()
            ),
        ));
    }
    group.set_container(&container)?;
    container.set_iommu(iommu_type)?;
    let device = group
        .get_device_fd(bdf)
        .map_err(|e| with_context(e, format!("open {bdf}")))?;
    Ok(AttachedDevice {
        device,
        mode,
        context: IommuContext::Container { group, container },
    })
}

fn open_iommufd(bdf: &str) -> io::Result<AttachedDevice> {
    let cdev = pci::vfio_cdev(bdf).context(|| "iommufd mode".to_string())?;
    let device = Device::open_cdev(&cdev.path, bdf)?;
    let iommufd = Iommufd::open()?;
    // Errors from here on drop what is open: closing the device fd unbinds
    // it, closing the iommufd destroys the IOAS.
    let devid = device
        .bind_iommufd(iommufd.as_fd())
        .map_err(|e| with_context(e, format!("open {bdf} via {}", cdev.path.display())))?;
    let ioas_id = iommufd.ioas_alloc()?;
    device.attach_iommufd_pt(ioas_id)?;
    Ok(AttachedDevice {
        device,
        mode: IommuMode::Iommufd,
        context: IommuContext::Iommufd {
            iommufd,
            ioas_id,
            devid,
            cdev: cdev.path,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_round_trip() {
        let names: Vec<String> = IommuMode::ALL.iter().map(|m| m.to_string()).collect();
        assert_eq!(names, ["noiommu", "type1", "iommufd"]);
        for m in IommuMode::ALL {
            assert_eq!(m.name().parse::<IommuMode>().unwrap(), m);
        }
        for bad in ["", "auto", "Type1", "type1v2", "iommu", "vfio"] {
            let e = bad.parse::<IommuMode>().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn env_setting_parsing() {
        assert_eq!(parse_iommu_setting(None).unwrap(), None);
        assert_eq!(parse_iommu_setting(Some("")).unwrap(), None);
        assert_eq!(parse_iommu_setting(Some("auto")).unwrap(), None);
        assert_eq!(
            parse_iommu_setting(Some("noiommu")).unwrap(),
            Some(IommuMode::NoIommu)
        );
        assert_eq!(
            parse_iommu_setting(Some("type1\n")).unwrap(),
            Some(IommuMode::Type1)
        );
        assert_eq!(
            parse_iommu_setting(Some("iommufd")).unwrap(),
            Some(IommuMode::Iommufd)
        );
        let e = parse_iommu_setting(Some("vfio")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .starts_with("CXLVFIO_IOMMU=\"vfio\": expected noiommu, type1, iommufd or auto"),
            "{e}"
        );
    }

    #[test]
    fn mode_properties() {
        assert!(!IommuMode::NoIommu.maps_dma());
        assert!(IommuMode::Type1.maps_dma());
        assert!(IommuMode::Iommufd.maps_dma());
        assert_eq!(
            IommuMode::Type1.device_open_ioctl(),
            "VFIO_GROUP_GET_DEVICE_FD"
        );
        assert_eq!(
            IommuMode::NoIommu.device_open_ioctl(),
            "VFIO_GROUP_GET_DEVICE_FD"
        );
        assert_eq!(
            IommuMode::Iommufd.device_open_ioctl(),
            "VFIO_DEVICE_BIND_IOMMUFD"
        );
        // No group 4000000000 exists anywhere: auto falls back to type1.
        assert_eq!(IommuMode::auto_for_group(4_000_000_000), IommuMode::Type1);
    }

    use crate::error::raw_os_error;
    use std::fs::File;

    fn null() -> File {
        File::open("/dev/null").unwrap()
    }

    /// An attached device whose fds are all /dev/null: every ioctl fails with ENOTTY,
    /// which shows which one the wrapper issued.
    fn fake(mode: IommuMode) -> AttachedDevice {
        let context = match mode {
            IommuMode::NoIommu | IommuMode::Type1 => IommuContext::Container {
                group: Group::from_file(null(), 3, mode == IommuMode::NoIommu),
                container: Container::from_file(null()),
            },
            IommuMode::Iommufd => IommuContext::Iommufd {
                iommufd: Iommufd::from_file(null()),
                ioas_id: 2,
                devid: 1,
                cdev: PathBuf::from("/dev/vfio/devices/vfio0"),
            },
        };
        AttachedDevice {
            device: Device::from_file(null(), "0000:0d:00.0"),
            mode,
            context,
        }
    }

    #[test]
    fn dma_helpers_dispatch_on_the_mode() {
        let d = fake(IommuMode::NoIommu);
        for e in [
            d.dma_map(0x1000, 0x1_0000_0000, 0x20_0000).unwrap_err(),
            d.dma_unmap(0x1_0000_0000, 0x20_0000).unwrap_err(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
            assert_eq!(raw_os_error(&e), None, "no syscall in no-IOMMU mode");
            assert!(e.to_string().contains("noiommu mode"), "{e}");
        }
        assert_eq!(d.describe(), "noiommu via /dev/vfio/noiommu-3 (group 3)");
        assert!(d.group().is_some() && d.iommufd().is_none() && d.devid().is_none());

        let d = fake(IommuMode::Type1);
        let e = d.dma_map(0x1000, 0x1_0000_0000, 0x20_0000).unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::ENOTTY));
        assert!(
            e.to_string().starts_with(
                "VFIO_IOMMU_MAP_DMA(vaddr 0x1000 iova 0x100000000 size 0x200000 flags 0x3): "
            ),
            "{e}"
        );
        let e = d.dma_unmap(0x1_0000_0000, 0x20_0000).unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::ENOTTY));
        assert!(
            e.to_string()
                .starts_with("VFIO_IOMMU_UNMAP_DMA(iova 0x100000000 size 0x200000 flags 0x0): "),
            "{e}"
        );
        assert_eq!(d.node(), Path::new("/dev/vfio/3"));

        let d = fake(IommuMode::Iommufd);
        let e = d.dma_map(0x1000, 0x1_0000_0000, 0x20_0000).unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::ENOTTY));
        assert!(
            e.to_string().starts_with(
                "IOMMU_IOAS_MAP(ioas 2 user_va 0x1000 iova 0x100000000 length 0x200000 flags 0x7): "
            ),
            "{e}"
        );
        let e = d.dma_unmap(0x1_0000_0000, 0x20_0000).unwrap_err();
        assert!(e.to_string().starts_with("IOMMU_IOAS_UNMAP(ioas 2 "), "{e}");
        assert_eq!(
            d.describe(),
            "iommufd via /dev/vfio/devices/vfio0 (devid 1, ioas 2)"
        );
        assert_eq!((d.devid(), d.ioas_id()), (Some(1), Some(2)));
        assert!(d.group().is_none() && d.container().is_none());
    }

    #[test]
    fn close_undoes_in_order_and_reports_the_first_error() {
        // iommufd: the detach is the first step; it fails on /dev/null, and the
        // fds are still closed after it.
        let e = fake(IommuMode::Iommufd).close().unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::ENOTTY));
        assert!(
            e.to_string()
                .starts_with("VFIO_DEVICE_DETACH_IOMMUFD_PT on 0000:0d:00.0: "),
            "{e}"
        );
        // Legacy: three closes, all fine.
        fake(IommuMode::Type1).close().unwrap();
        fake(IommuMode::NoIommu).close().unwrap();
    }

    #[test]
    fn open_rejects_bad_address_in_every_mode() {
        let e = open_device("not-a-bdf").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        for m in IommuMode::ALL {
            let e = open_device_with("not-a-bdf", m).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{m}");
        }
    }

    #[test]
    fn open_of_a_missing_device_names_the_mode_and_path() {
        // No such PCI device on any test host.
        let e = open_device_with("0000:ff:1f.7", IommuMode::Iommufd).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let msg = e.to_string();
        assert!(
            msg.starts_with("iommufd mode: no PCI device 0000:ff:1f.7"),
            "{msg}"
        );
        for m in [IommuMode::NoIommu, IommuMode::Type1] {
            let e = open_device_with("0000:ff:1f.7", m).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{m}");
        }
    }
}
