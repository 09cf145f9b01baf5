// SPDX-License-Identifier: GPL-2.0

//! VFIO: userspace drivers for devices.
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h)

pub mod pci;
