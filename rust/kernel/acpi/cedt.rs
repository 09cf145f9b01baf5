// SPDX-License-Identifier: GPL-2.0

//! The ACPI CXL Early Discovery Table (CEDT): the CXL Fixed Memory Windows (CFMWS) through
//! which the platform routes host physical addresses to CXL host bridges as memory.
//!
//! Pure parsing of a copied table (see [`super::copy_table`]): no kernel services, so that the
//! same file also builds and is tested as part of a host crate.
//!
//! Reference: CXL 3.1, 9.18.1 (CEDT), 9.18.1.3 (CFMWS).

/// The table's signature, `"CEDT"`.
pub const SIGNATURE: [u8; 4] = *b"CEDT";
/// Size of an ACPI table header.
const ACPI_HEADER_SIZE: usize = 36;
/// CEDT structure type of a CXL Fixed Memory Window Structure.
const TYPE_CFMWS: u8 = 1;
/// Bytes of a CFMWS before its interleave target list.
const CFMWS_FIXED_SIZE: usize = 36;
/// Bytes of a CFMWS with one interleave target.
const CFMWS_ONE_TARGET_SIZE: usize = CFMWS_FIXED_SIZE + 4;

/// A CXL Fixed Memory Window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First host physical address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// Encoded number of interleave ways across host bridges (0: one host bridge).
    pub eniw: u8,
    /// The first interleave target: the ACPI `_UID` of a host bridge (the only one when
    /// `eniw` is 0).
    pub first_target: u32,
}

impl Window {
    /// Whether `[start, start + len)` lies wholly inside the window (`false` if it wraps).
    pub fn contains(&self, start: u64, len: u64) -> bool {
        match (start.checked_add(len), self.base.checked_add(self.size)) {
            (Some(end), Some(window_end)) => start >= self.base && end <= window_end,
            _ => false,
        }
    }
}

/// Why a CEDT could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CedtError {
    /// Not a CEDT, or its length field disagrees with the bytes.
    BadHeader,
    /// A structure's length runs past the table or is too short for its type.
    BadStructure {
        /// Offset of the structure in the table.
        at: usize,
    },
}

/// `N` bytes at `at`, `None` past the end.
fn le<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes.get(at..at.checked_add(N)?)?);
    Some(out)
}

/// Calls `found` with every CFMWS of `table`, a whole CEDT (header included).
pub fn for_each_window(table: &[u8], found: &mut dyn FnMut(Window)) -> Result<(), CedtError> {
    if table.get(..4) != Some(&SIGNATURE[..]) {
        return Err(CedtError::BadHeader);
    }
    let length = le::<4>(table, 4)
        .map(u32::from_le_bytes)
        .ok_or(CedtError::BadHeader)? as usize;
    if length < ACPI_HEADER_SIZE || length > table.len() {
        return Err(CedtError::BadHeader);
    }
    let mut at = ACPI_HEADER_SIZE;
    while at < length {
        let bad = CedtError::BadStructure { at };
        let kind = *table.get(at).ok_or(bad)?;
        let len = le::<2>(table, at + 2).map(u16::from_le_bytes).ok_or(bad)? as usize;
        if len < 4 || at + len > length {
            return Err(bad);
        }
        if kind == TYPE_CFMWS {
            if len < CFMWS_ONE_TARGET_SIZE {
                return Err(bad);
            }
            let base = le::<8>(table, at + 8).map(u64::from_le_bytes).ok_or(bad)?;
            let size = le::<8>(table, at + 16).map(u64::from_le_bytes).ok_or(bad)?;
            let eniw = *table.get(at + 24).ok_or(bad)?;
            let first_target = le::<4>(table, at + CFMWS_FIXED_SIZE)
                .map(u32::from_le_bytes)
                .ok_or(bad)?;
            found(Window {
                base,
                size,
                eniw,
                first_target,
            });
        }
        at += len;
    }
    Ok(())
}
