// SPDX-License-Identifier: GPL-2.0

//! Which bytes of the config region the driver handles, and how.
//!
//! - The CXL Device DVSEC is virtualized: its bytes go to the per-open shadow (see
//!   [`super::dvsec`]), in pieces that do not cross a dword. Reads of its 4-byte extended
//!   capability header stay with vfio-pci-core, which virtualizes every header's next pointer;
//!   writes to the header are the shadow's to drop.
//! - Every other CXL DVSEC (GPF, Flex Bus Port, Register Locator, any later one) is the host's:
//!   the user reads it as vfio-pci shows it, and its writes are dropped, so that nothing a
//!   tenant writes there reaches the device or survives into the next tenant.
//! - Everything else goes to vfio-pci-core.

/// Who serves a piece of a config access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// The CXL Device DVSEC shadow.
    Shadow,
    /// A write to a host-owned CXL DVSEC: dropped, reported as done.
    Dropped,
    /// vfio-pci-core's config emulation.
    Core,
}

/// Size of an extended capability header.
const EXT_CAP_HEADER_SIZE: u64 = 4;

/// The CXL DVSECs of a function's config space.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConfigMap<'a> {
    /// The CXL Device DVSEC: offset and length.
    pub(crate) device: (u16, u16),
    /// Every other CXL DVSEC: offset and length each.
    pub(crate) host: &'a [(u16, u16)],
}

impl ConfigMap<'_> {
    /// The byte range `[start, end)` that is the shadow's for a read or a write.
    fn shadow_range(&self, write: bool) -> (u64, u64) {
        let (pos, len) = (u64::from(self.device.0), u64::from(self.device.1));
        let header = if write { 0 } else { EXT_CAP_HEADER_SIZE };
        (pos + header.min(len), pos + len)
    }

    /// The ranges of the access kind: the shadow's, and for writes the host-owned DVSECs.
    fn ranges(&self, write: bool) -> impl Iterator<Item = (u64, u64, Piece)> + '_ {
        let host = self.host.iter().filter(move |_| write).map(|&(pos, len)| {
            let pos = u64::from(pos);
            (pos, pos + u64::from(len), Piece::Dropped)
        });
        let (s, e) = self.shadow_range(write);
        core::iter::once((s, e, Piece::Shadow)).chain(host)
    }

    /// Whether an access of `count` bytes at config offset `start` touches a byte the driver
    /// handles itself.
    pub(crate) fn touches(&self, start: u64, count: u64, write: bool) -> bool {
        let end = start.saturating_add(count);
        self.ranges(write)
            .any(|(s, e, _)| s < e && start < e && end > s)
    }

    /// The first piece of what is left of an access: `remaining` (at least 1) bytes from config
    /// offset `cur`. Returns who serves it and its length (at least 1, at most `remaining`).
    pub(crate) fn piece(&self, cur: u64, remaining: u64, write: bool) -> (Piece, u64) {
        let mut next_start = u64::MAX;
        for (s, e, who) in self.ranges(write) {
            if s >= e {
                continue;
            }
            if cur >= s && cur < e {
                let len = match who {
                    // The shadow takes accesses inside one dword.
                    Piece::Shadow => (4 - cur % 4).min(e - cur),
                    _ => e - cur,
                };
                return (who, len.min(remaining));
            }
            if s > cur {
                next_start = next_start.min(s);
            }
        }
        (Piece::Core, (next_start - cur).min(remaining))
    }
}
