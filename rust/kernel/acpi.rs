// SPDX-License-Identifier: GPL-2.0

//! ACPI tables.
//!
//! C header: [`include/linux/acpi.h`](srctree/include/linux/acpi.h)

pub mod cedt;

use crate::{
    alloc::{flags::GFP_KERNEL, KVec},
    error::{code::ENODEV, Result},
};

/// Copies the first ACPI table whose signature is `signature` (for example `*b"CEDT"`), header
/// included. `ENODEV` when the platform has no such table or no ACPI at all.
///
/// # Examples
///
/// ```
/// use kernel::{acpi, error::code::ENODEV};
///
/// // No table has a signature of NUL bytes.
/// assert_eq!(acpi::copy_table(&[0; 4]).err(), Some(ENODEV));
/// // A table that exists starts with its signature and is as long as its header says.
/// if let Ok(dsdt) = acpi::copy_table(b"DSDT") {
///     assert_eq!(&dsdt[..4], b"DSDT");
///     assert_eq!(u32::from_le_bytes([dsdt[4], dsdt[5], dsdt[6], dsdt[7]]) as usize, dsdt.len());
/// }
/// ```
pub fn copy_table(signature: &[u8; 4]) -> Result<KVec<u8>> {
    if signature.contains(&0) {
        return Err(ENODEV);
    }
    #[cfg(CONFIG_ACPI)]
    {
        use crate::bindings;
        let mut sig = [0u8; 5];
        sig[..4].copy_from_slice(signature);
        let mut table: *mut bindings::acpi_table_header = core::ptr::null_mut();
        // SAFETY: `sig` is a NUL-terminated signature that ACPICA only reads; on success
        // `table` points at the mapped table until `acpi_put_table` below.
        let status = unsafe { bindings::acpi_get_table(sig.as_mut_ptr().cast(), 0, &mut table) };
        if status != 0 || table.is_null() {
            return Err(ENODEV);
        }
        // SAFETY: `table` is a mapped table; its header says how many bytes it has, all mapped
        // until `acpi_put_table`.
        let bytes =
            unsafe { core::slice::from_raw_parts(table.cast::<u8>(), (*table).length as usize) };
        let mut copy = KVec::new();
        let copied = copy.extend_from_slice(bytes, GFP_KERNEL);
        // SAFETY: `table` came from `acpi_get_table` above; `bytes` is not used after this.
        unsafe { bindings::acpi_put_table(table) };
        copied?;
        Ok(copy)
    }
    #[cfg(not(CONFIG_ACPI))]
    Err(ENODEV)
}
