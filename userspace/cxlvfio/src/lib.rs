//! Userspace access to `cxl-vfio-pci` devices through the Linux VFIO UAPI.
//!
//! The crate opens a device exactly as a VMM would, in one of three IOMMU
//! modes (a no-IOMMU or type1 container and group, or the device's cdev bound
//! to an iommufd), plus what the in-VM test suites need around that: sysfs
//! and module helpers, KTAP output and a kernel log scanner.
//!
//! # Choosing the IOMMU mode
//!
//! [`open_device`], and so every test program, reads the environment variable
//! `CXLVFIO_IOMMU`:
//!
//! | value | opens the device through |
//! | --- | --- |
//! | `noiommu` | `/dev/vfio/noiommu-N` and a `VFIO_NOIOMMU_IOMMU` container |
//! | `type1` | `/dev/vfio/N` and a `VFIO_TYPE1v2_IOMMU` container |
//! | `iommufd` | `/dev/vfio/devices/vfioN` bound to `/dev/iommu`, attached to a new IOAS |
//! | unset, empty or `auto` | `noiommu` if `/dev/vfio/noiommu-N` exists, else `type1` |
//!
//! Any other value is an error. [`open_device_with`] takes the mode as an
//! argument instead. A mode the system lacks fails with an error naming the
//! missing node or ioctl.
//!
//! # Modules
//!
//! - [`uapi`]: hand-written `linux/vfio.h` and `linux/iommufd.h` structures and ioctl numbers.
//! - [`vfio`]: safe [`Container`], [`Group`] and [`Device`] wrappers (both the
//!   group and the cdev way to a device fd).
//! - [`iommufd`]: a safe [`Iommufd`] wrapper: IOAS allocation, mapping, destruction.
//! - [`iommu`]: [`IommuMode`], [`open_device`], [`open_device_with`] and the
//!   [`AttachedDevice`] they return (device plus IOMMU side, DMA map/unmap, close).
//! - [`pci`], [`kmod`]: sysfs views of the PCI device and kernel module.
//! - [`ktap`]: KTAP reporter and result parser.
//! - [`kmsg`]: kernel log problem matcher; [`kmemleak`]: which leaks of a kmemleak report are ours.
//! - [`cxl`]: CXL register layouts and reference models of the driver's CXL ABI.
//! - [`mmap`], [`sigbus`]: device-memory mappings, volatile access, fault
//!   counting, and a SIGBUS handler that turns faults into test results.
//! - [`ioeventfd`]: `VFIO_DEVICE_IOEVENTFD` requests and a race on their offset.
//! - [`parity`]: device and region info in a canonical form, compared with vfio-pci's.
//! - [`accel`]: the register layout of the project's `cxl-accel` QEMU test device.
//! - [`randops`]: the pure logic of the random-operation fuzzer (`cxlvfio-randops`).
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
pub mod iommu;
pub mod iommufd;
pub mod kmemleak;
pub mod kmod;
pub mod kmsg;
pub mod ktap;
pub mod mmap;
pub mod parity;
pub mod pattern;
pub mod pci;
pub mod randops;
pub mod sigbus;
pub mod uapi;
pub mod vfio;

pub use iommu::{open_device, open_device_with, AttachedDevice, IommuContext, IommuMode};
pub use iommufd::Iommufd;
pub use vfio::{Container, Device, DeviceInfo, Group, IrqInfo, RegionInfo};
