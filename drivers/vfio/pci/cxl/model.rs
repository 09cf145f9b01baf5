// SPDX-License-Identifier: GPL-2.0

//! The pure register model of the CXL extensions: register layout, the parsers that find the
//! HDM decoders, the emulation rules of the COMP_REGS region and of the CXL Device DVSEC, the
//! rules of the DPA region, the restore of decoder 0 after a reset, and the device info reply.
//!
//! Nothing here calls into the kernel or touches a device: the driver passes in snapshots,
//! shadows and config-read callbacks, and carries out the hardware writes the model returns.
//! The same files build into the host crate `userspace/cxl-model`, where they are tested.

// The driver uses part of the register layout and of this API; the host crate tests all of it,
// and unused items would otherwise fail `make check`, which allows no warning in our files.
#![allow(dead_code)]

/// The CEDT parser the window rules use: the kernel crate's (the host crate builds the same file).
pub(crate) use kernel::acpi::cedt;

pub(crate) mod caparray;
pub(crate) mod comp_regs;
pub(crate) mod config;
pub(crate) mod dpa;
pub(crate) mod dvsec;
pub(crate) mod info;
pub(crate) mod regs;
pub(crate) mod release;
pub(crate) mod restore;
pub(crate) mod sparse;
pub(crate) mod window;
