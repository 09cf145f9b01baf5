// SPDX-License-Identifier: GPL-2.0

//! Whether the range firmware-committed decoder 0 decodes is this device's memory alone, and
//! may therefore be handed to a tenant.
//!
//! The driver maps that host physical range write-back into the tenant. A decoder is trusted
//! only when:
//!
//! - it is not interleaved: an endpoint decoder's interleave ways are those of the whole
//!   interleave set (the endpoint drops the interleave bits to find its DPA), so 1 way proves
//!   that every line of the range is this device's;
//! - the range lies inside one CXL Fixed Memory Window that the platform describes in the ACPI
//!   CEDT (CFMWS), which is not itself interleaved across host bridges: a base outside every
//!   window could be anything (an unclaimed BAR, a reserved range of the platform);
//! - its size is within the capacity the CXL Device DVSEC's ranges report, and fits a VFIO
//!   region (vfio-pci gives each region 2^40 bytes of the device file).

/// `"CEDT"`.
pub(crate) const CEDT_SIGNATURE: [u8; 4] = *b"CEDT";
/// Size of an ACPI table header.
const ACPI_HEADER_SIZE: usize = 36;
/// CEDT structure type of a CXL Fixed Memory Window Structure.
const CEDT_TYPE_CFMWS: u8 = 1;
/// The largest region vfio-pci's device-file layout has room for (`VFIO_PCI_OFFSET_SHIFT`).
pub(crate) const MAX_REGION_SIZE: u64 = 1 << 40;
/// Bytes of a CFMWS before its interleave target list.
const CFMWS_FIXED_SIZE: usize = 36;

/// A CXL Fixed Memory Window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    /// First host physical address.
    pub(crate) base: u64,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Encoded number of interleave ways across host bridges (0: one host bridge).
    pub(crate) eniw: u8,
}

/// Why a CEDT could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CedtError {
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
pub(crate) fn for_each_window(
    table: &[u8],
    found: &mut dyn FnMut(Window),
) -> Result<(), CedtError> {
    if table.get(..4) != Some(&CEDT_SIGNATURE[..]) {
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
        if kind == CEDT_TYPE_CFMWS {
            if len < CFMWS_FIXED_SIZE {
                return Err(bad);
            }
            let base = le::<8>(table, at + 8).map(u64::from_le_bytes).ok_or(bad)?;
            let size = le::<8>(table, at + 16).map(u64::from_le_bytes).ok_or(bad)?;
            let eniw = *table.get(at + 24).ok_or(bad)?;
            found(Window { base, size, eniw });
        }
        at += len;
    }
    Ok(())
}

/// Why decoder 0's range may not be handed to a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The platform describes no CXL window at all (no CEDT, or no CFMWS in it).
    NoWindows,
    /// Decoder 0 interleaves `ways` devices.
    Interleaved {
        /// Encoded interleave ways (IW field of the decoder's Control register).
        iw: u32,
    },
    /// The range is not inside any CXL window.
    OutsideWindows,
    /// The range is inside a window that interleaves host bridges.
    InterleavedWindow {
        /// The window's encoded interleave ways.
        eniw: u8,
    },
    /// The range does not fit a VFIO region.
    LargerThanRegion,
    /// The range is larger than the device's memory.
    LargerThanCapacity {
        /// What the DVSEC ranges report, in bytes.
        capacity: u64,
    },
}

/// Decoder 0 as firmware committed it, with what the rules need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Committed {
    /// Host physical base.
    pub(crate) base: u64,
    /// Size in bytes.
    pub(crate) size: u64,
    /// The IW field of its Control register (0: 1 way).
    pub(crate) iw: u32,
}

/// Checks decoder 0 against the rules of this module. `windows` are the platform's CFMWS,
/// `capacity` the sum of the DVSEC range sizes.
pub(crate) fn check(dec: Committed, windows: &[Window], capacity: u64) -> Result<(), Refusal> {
    if dec.iw != 0 {
        return Err(Refusal::Interleaved { iw: dec.iw });
    }
    if windows.is_empty() {
        return Err(Refusal::NoWindows);
    }
    let end = dec
        .base
        .checked_add(dec.size)
        .ok_or(Refusal::OutsideWindows)?;
    let window = windows
        .iter()
        .find(|w| {
            w.base
                .checked_add(w.size)
                .is_some_and(|w_end| dec.base >= w.base && end <= w_end)
        })
        .ok_or(Refusal::OutsideWindows)?;
    if window.eniw != 0 {
        return Err(Refusal::InterleavedWindow { eniw: window.eniw });
    }
    if dec.size > capacity {
        return Err(Refusal::LargerThanCapacity { capacity });
    }
    if dec.size > MAX_REGION_SIZE {
        return Err(Refusal::LargerThanRegion);
    }
    Ok(())
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoWindows => write!(f, "the platform describes no CXL window (ACPI CEDT CFMWS)"),
            Self::Interleaved { iw } => {
                write!(f, "decoder 0 is interleaved (IW {iw}): the range is not this device's alone")
            }
            Self::OutsideWindows => write!(f, "its range is outside every CXL window of the platform"),
            Self::InterleavedWindow { eniw } => write!(
                f,
                "its CXL window interleaves host bridges (ENIW {eniw}): the range is not this device's alone"
            ),
            Self::LargerThanRegion => write!(
                f,
                "its size exceeds what a VFIO region can hold ({MAX_REGION_SIZE:#x} bytes)"
            ),
            Self::LargerThanCapacity { capacity } => write!(
                f,
                "its size exceeds the device's memory ({capacity:#x} bytes in the DVSEC ranges)"
            ),
        }
    }
}
