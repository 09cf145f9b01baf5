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
//!   CEDT (CFMWS), which is not itself interleaved across host bridges and targets the host
//!   bridge above this device: a base outside every window could be anything (an unclaimed
//!   BAR, a reserved range of the platform), and a window of another host bridge routes to
//!   another device's memory;
//! - its size is within the capacity the CXL Device DVSEC's ranges report, and fits a VFIO
//!   region (vfio-pci gives each region 2^40 bytes of the device file).

use super::cedt::Window;

/// The largest region vfio-pci's device-file layout has room for (`VFIO_PCI_OFFSET_SHIFT`).
pub(crate) const MAX_REGION_SIZE: u64 = 1 << 40;

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
    /// The range is inside a window of another host bridge.
    OtherHostBridge {
        /// The host bridge the window targets (its ACPI `_UID`).
        target: u32,
        /// The host bridge above the device, if the platform names it.
        ours: Option<u32>,
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
/// `host_bridge` the ACPI `_UID` of the host bridge above the device (`None`: the platform
/// does not name it, and no window can be proven to be the device's), `capacity` the sum of the
/// DVSEC range sizes.
pub(crate) fn check(
    dec: Committed,
    windows: &[Window],
    host_bridge: Option<u32>,
    capacity: u64,
) -> Result<(), Refusal> {
    if dec.iw != 0 {
        return Err(Refusal::Interleaved { iw: dec.iw });
    }
    if windows.is_empty() {
        return Err(Refusal::NoWindows);
    }
    let window = windows
        .iter()
        .find(|w| w.contains(dec.base, dec.size))
        .ok_or(Refusal::OutsideWindows)?;
    if window.eniw != 0 {
        return Err(Refusal::InterleavedWindow { eniw: window.eniw });
    }
    if host_bridge != Some(window.first_target) {
        return Err(Refusal::OtherHostBridge {
            target: window.first_target,
            ours: host_bridge,
        });
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
            Self::OtherHostBridge {
                target,
                ours: Some(ours),
            } => write!(
                f,
                "its CXL window targets host bridge UID {target}, not this device's (UID {ours}): the range is another device's"
            ),
            Self::OtherHostBridge { target, ours: None } => write!(
                f,
                "its CXL window targets host bridge UID {target}, and the platform does not name this device's host bridge"
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
