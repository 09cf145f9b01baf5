// SPDX-License-Identifier: GPL-2.0

//! Host build of the cxl-vfio-pci register model.
//!
//! The kernel module compiles `drivers/vfio/pci/cxl/model/*.rs` as `crate::model::*`; this crate
//! compiles the very same files, each at the crate root so that their `super::regs` paths resolve
//! as they do in the kernel, and tests them with `cargo test`.
//!
//! The model modules are held to the kernel's lints (`-Wunreachable_pub`, documented items,
//! the MSRV of the kernel's `.clippy.toml`, as `rust-version`) and to lints that keep panics out of them.

#![no_std]
#![warn(unreachable_pub, rust_2018_idioms)]
// As in the kernel's rust_common_flags, which the model files are built with there.
#![allow(clippy::collapsible_if, clippy::collapsible_match)]
// The crate exists to test the model: items only the kernel driver uses are dead code here.
#![allow(dead_code)]

#[cfg(test)]
extern crate std;

#[path = "../../../drivers/vfio/pci/cxl/model/regs.rs"]
#[warn(clippy::missing_docs_in_private_items)]
pub(crate) mod regs;

#[path = "../../../drivers/vfio/pci/cxl/model/caparray.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod caparray;

#[path = "../../../drivers/vfio/pci/cxl/model/comp_regs.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod comp_regs;

#[path = "../../../drivers/vfio/pci/cxl/model/config.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod config;

// The kernel crate's CEDT parser (`kernel::acpi::cedt`), which the window rules use; in the
// driver, `model::cedt` re-exports it.
#[path = "../../../rust/kernel/acpi/cedt.rs"]
#[allow(unreachable_pub)]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod cedt;

#[path = "../../../drivers/vfio/pci/cxl/model/window.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod window;

#[path = "../../../drivers/vfio/pci/cxl/model/dvsec.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod dvsec;

#[path = "../../../drivers/vfio/pci/cxl/model/dpa.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod dpa;

#[path = "../../../drivers/vfio/pci/cxl/model/info.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod info;

#[path = "../../../drivers/vfio/pci/cxl/model/release.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod release;

#[path = "../../../drivers/vfio/pci/cxl/model/restore.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod restore;

#[path = "../../../drivers/vfio/pci/cxl/model/sparse.rs"]
#[warn(
    clippy::missing_docs_in_private_items,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::float_arithmetic
)]
pub(crate) mod sparse;

// The fuzz targets' view of the model (`fuzz/`): pub wrappers, only with the `fuzz` feature.
#[cfg(feature = "fuzz")]
pub mod fuzz_api;

#[cfg(test)]
mod tests;
