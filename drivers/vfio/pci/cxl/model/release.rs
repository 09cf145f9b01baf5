// SPDX-License-Identifier: GPL-2.0

//! What an administrator runs to release a DPA range the host holds.
//!
//! When a device with a DPA region is opened, the driver claims the host physical range
//! decoder 0 decodes. If the host holds part of it, the kernel names the holders as
//! `/proc/iomem` nests them, outermost first (`"region0 > dax0.0 > System RAM (kmem)"`), and
//! the open fails with `EBUSY`. [`ReleaseSteps`] turns those names into the commands that give
//! the range back, in the order they must run:
//!
//! - `System RAM (kmem)` under a dax device: the memory was onlined through `dax_kmem`; it is
//!   taken offline first (`daxctl offline-memory daxX.Y`), since a CXL region with online
//!   memory cannot be disabled;
//! - `regionN`: a region the kernel's CXL core assembled (on the firmware's decoders, for
//!   instance) and kept after the device left `cxl_pci`; it is disabled (`cxl disable-region`)
//!   and then deleted through its root decoder's `delete_region` (ndctl's `destroy-region`
//!   cannot: it looks for the region's endpoint decoder, which went away with the memdev);
//! - anything else (System RAM the platform described, another driver's claim) cannot be
//!   released by a command: its owner is named.

use core::fmt;

/// Separator between the names of nested resources, as the kernel joins them.
const NESTED: &str = " > ";

/// The commands that release a range whose holders are `holders` (see the module doc).
/// `Display` writes them separated by `"; "`, or a sentence when no command applies.
pub(crate) struct ReleaseSteps<'a> {
    /// The holders' names, outermost first, joined by [`NESTED`].
    holders: &'a str,
}

impl<'a> ReleaseSteps<'a> {
    /// The steps for the holders the kernel named, outermost first, joined by `" > "`.
    pub(crate) fn new(holders: &'a str) -> Self {
        Self { holders }
    }

    /// The CXL region among the holders, if any.
    fn region(&self) -> Option<&'a str> {
        self.holders
            .split(NESTED)
            .find(|n| is_numbered(n, "region"))
    }

    /// The dax device whose memory is online as System RAM, if any.
    fn onlined_dax(&self) -> Option<&'a str> {
        let mut names = self.holders.split(NESTED).peekable();
        while let Some(name) = names.next() {
            if is_dax_device(name) && names.peek().is_some_and(|n| n.starts_with("System RAM")) {
                return Some(name);
            }
        }
        None
    }

    /// Whether a command can release the range.
    pub(crate) fn releasable(&self) -> bool {
        self.region().is_some()
    }
}

impl fmt::Display for ReleaseSteps<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(region) = self.region() else {
            let owner = self.holders.split(NESTED).next().unwrap_or("");
            return write!(f, "no command releases it: its owner is {owner:?}");
        };
        if let Some(dax) = self.onlined_dax() {
            write!(f, "daxctl offline-memory {dax}; ")?;
        }
        write!(
            f,
            "cxl disable-region {region}; \
             echo {region} > $(readlink -f /sys/bus/cxl/devices/{region}/..)/delete_region"
        )
    }
}

/// Whether `name` is `prefix` followed by a decimal number (`region0`).
fn is_numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `name` is a dax device (`dax0.0`).
fn is_dax_device(name: &str) -> bool {
    name.strip_prefix("dax")
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(region, id)| {
            [region, id]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}
