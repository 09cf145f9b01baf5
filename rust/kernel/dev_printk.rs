// SPDX-License-Identifier: GPL-2.0

//! Device-prefixed logging: [`dev_err!`], [`dev_warn!`], [`dev_info!`], [`dev_dbg!`].
//!
//! The messages carry the driver and device name, as C's `dev_*()` do.
//!
//! C header: [`include/linux/dev_printk.h`](srctree/include/linux/dev_printk.h)

use crate::device::Device;
use core::fmt;

/// Log levels of the `dev_*!` macros, as the `KERN_*` prefixes.
#[doc(hidden)]
pub mod level {
    pub const ERR: &[u8; 3] = b"\x013\0";
    pub const WARNING: &[u8; 3] = b"\x014\0";
    pub const NOTICE: &[u8; 3] = b"\x015\0";
    pub const INFO: &[u8; 3] = b"\x016\0";
    pub const DEBUG: &[u8; 3] = b"\x017\0";
}

/// Prints a message prefixed with the device's driver and name.
///
/// Use the `dev_*!` macros rather than this function.
#[doc(hidden)]
pub fn call_dev_printk(level: &[u8; 3], dev: &Device, args: fmt::Arguments<'_>) {
    // SAFETY: `level` is a NUL-terminated `KERN_*` prefix, `dev` a valid device, and the format
    // string "%pA" consumes exactly one argument, a `fmt::Arguments` that lives for the call.
    unsafe {
        crate::bindings::_dev_printk(
            level.as_ptr().cast(),
            dev.as_raw(),
            c"%pA".as_ptr().cast(),
            core::ptr::from_ref(&args).cast::<crate::ffi::c_void>(),
        )
    };
}

/// Logs an error about a device.
///
/// # Examples
///
/// ```
/// # use kernel::{dev_err, dev_info, dev_warn, pci};
/// if let Some(pdev) = pci::Device::iter().next() {
///     dev_info!(pdev.as_dev(), "doctest: vendor {:#06x}\n", pdev.vendor_id());
/// }
/// ```
#[macro_export]
macro_rules! dev_err {
    ($dev:expr, $($arg:tt)*) => {
        $crate::dev_printk::call_dev_printk(
            $crate::dev_printk::level::ERR, $dev, core::format_args!($($arg)*))
    };
}

/// Logs a warning about a device.
#[macro_export]
macro_rules! dev_warn {
    ($dev:expr, $($arg:tt)*) => {
        $crate::dev_printk::call_dev_printk(
            $crate::dev_printk::level::WARNING, $dev, core::format_args!($($arg)*))
    };
}

/// Logs a notice about a device.
#[macro_export]
macro_rules! dev_notice {
    ($dev:expr, $($arg:tt)*) => {
        $crate::dev_printk::call_dev_printk(
            $crate::dev_printk::level::NOTICE, $dev, core::format_args!($($arg)*))
    };
}

/// Logs information about a device.
#[macro_export]
macro_rules! dev_info {
    ($dev:expr, $($arg:tt)*) => {
        $crate::dev_printk::call_dev_printk(
            $crate::dev_printk::level::INFO, $dev, core::format_args!($($arg)*))
    };
}

/// Logs a debug message about a device (always compiled in; shown at loglevel 8).
#[macro_export]
macro_rules! dev_dbg {
    ($dev:expr, $($arg:tt)*) => {
        $crate::dev_printk::call_dev_printk(
            $crate::dev_printk::level::DEBUG, $dev, core::format_args!($($arg)*))
    };
}
