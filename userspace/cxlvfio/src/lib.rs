//! Userspace access to `cxl-vfio-pci` devices through the Linux VFIO UAPI.
//!
//! The crate opens a device exactly as a VMM would (container, group, device
//! fds and their ioctls), plus what the in-VM smoke suite needs around that:
//! sysfs and module helpers, KTAP output and a kernel log scanner.
//!
//! - [`uapi`]: hand-written `linux/vfio.h` and `linux/iommufd.h` structures and ioctl numbers.
//! - [`vfio`]: safe [`Container`], [`Group`] and [`Device`] wrappers and [`open_device`].
//! - [`iommufd`]: a safe [`Iommufd`] wrapper: IOAS allocation, mapping, destruction.
//! - [`pci`], [`kmod`]: sysfs views of the PCI device and kernel module.
//! - [`ktap`]: KTAP reporter and result parser.
//! - [`kmsg`]: kernel log problem matcher.
//! - [`cxl`]: CXL register layouts and reference models of the driver's CXL ABI.
//! - [`mmap`], [`sigbus`]: device-memory mappings, volatile access, fault
//!   counting, and a SIGBUS handler that turns faults into test results.
//! - [`ioeventfd`]: `VFIO_DEVICE_IOEVENTFD` requests and a race on their offset.
//! - [`parity`]: device and region info in a canonical form, compared with vfio-pci's.
//! - [`accel`]: the register layout of the project's `cxl-accel` QEMU test device.
//! - [`pattern`], [`iomem`], [`backend`]: test data, `/proc/iomem`, and the
//!   markers the DPA suite leaves for the host-side backend check.

#![warn(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod accel;
pub mod backend;
pub mod cli;
pub mod cxl;
pub mod error;
pub mod ioeventfd;
pub mod iomem;
pub mod iommufd;
pub mod kmod;
pub mod kmsg;
pub mod ktap;
pub mod mmap;
pub mod parity;
pub mod pattern;
pub mod pci;
pub mod sigbus;
pub mod uapi;
pub mod vfio;

pub use iommufd::Iommufd;
pub use vfio::{open_device, Container, Device, DeviceInfo, Group, IrqInfo, RegionInfo};
