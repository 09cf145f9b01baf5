//! The project's `cxl-accel` QEMU test device (`qemu/patches/0003`), a CXL
//! Type-2 accelerator: what its BAR 0 holds, for the accelerator suite.
//!
//! BAR 0 (256 KiB) is cut into 64 KiB slots. One slot is the CXL component
//! register block (where the `comp-block` property puts it: `start`, `middle`
//! or `end`); every other slot starts with the accelerator registers below,
//! and the rest of the slot is read/write scratch space. A write access of
//! any size (1 to 8 bytes) that touches the doorbell rings it once; the
//! doorbell count is global to the device, not per slot. A reset (system or
//! secondary bus) clears the scratch registers, the doorbell and its count.

/// PCI vendor and device ID of `cxl-accel` (project-local, in QEMU's range).
pub const ACCEL_IDS: (u16, u16) = (0x1b36, 0x00ca);
/// Its class code: processing accelerator.
pub const ACCEL_CLASS: u32 = 0x12_0000;
/// The size of one register slot of BAR 0 (and of the component block).
pub const SLOT_SIZE: u64 = 0x10000;

/// ID register, read-only: [`ACCEL_ID`].
pub const REG_ID: u64 = 0x00;
/// Offset of the component register block in BAR 0, read-only.
pub const REG_COMP_OFFSET: u64 = 0x04;
/// Size of BAR 0, read-only.
pub const REG_BAR_SIZE: u64 = 0x08;
/// This slot's offset in BAR 0, read-only.
pub const REG_SLOT_OFFSET: u64 = 0x0c;
/// Doorbell: each write access rings it once; reads return the last value written.
pub const REG_DOORBELL: u64 = 0x10;
/// Doorbell writes since the last reset, read-only.
pub const REG_DOORBELL_COUNT: u64 = 0x14;
/// First scratch register; scratch space runs to the end of the slot.
pub const REG_SCRATCH: u64 = 0x40;
/// Value of [`REG_ID`]: "ACXL".
pub const ACCEL_ID: u32 = 0x4c58_4341;

/// Where the `comp-block` property puts the component register block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompBlock {
    /// Offset 0.
    Start,
    /// The middle of BAR 0 (QEMU's default).
    Middle,
    /// The last slot.
    End,
}

impl CompBlock {
    /// Every placement, in the order of the property's documentation.
    pub const ALL: [CompBlock; 3] = [CompBlock::Start, CompBlock::Middle, CompBlock::End];

    /// The property value.
    pub fn name(self) -> &'static str {
        match self {
            CompBlock::Start => "start",
            CompBlock::Middle => "middle",
            CompBlock::End => "end",
        }
    }

    /// Parses a property value.
    pub fn parse(s: &str) -> Option<CompBlock> {
        CompBlock::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The block's offset in a BAR of `bar_size` bytes.
    pub fn offset(self, bar_size: u64) -> u64 {
        match self {
            CompBlock::Start => 0,
            CompBlock::Middle => bar_size / 2,
            CompBlock::End => bar_size.saturating_sub(SLOT_SIZE),
        }
    }

    /// Which placement puts the block at `block` in a BAR of `bar_size` bytes.
    pub fn from_offset(bar_size: u64, block: u64) -> Option<CompBlock> {
        CompBlock::ALL
            .into_iter()
            .find(|c| c.offset(bar_size) == block)
    }
}

/// The BAR offsets of the accelerator register slots: every 64 KiB slot of a
/// BAR of `bar_size` bytes that holds no byte of the block at `block`.
pub fn register_slots(bar_size: u64, block: u64) -> Vec<u64> {
    let block_end = block.saturating_add(SLOT_SIZE);
    (0..bar_size / SLOT_SIZE)
        .map(|i| i * SLOT_SIZE)
        .filter(|&s| s + SLOT_SIZE <= block || s >= block_end)
        .collect()
}

/// The area (index in `areas`, as `(offset, size)`) that holds all `len`
/// bytes at BAR offset `off`, and the offset inside it.
pub fn area_of(areas: &[(u64, u64)], off: u64, len: u64) -> Option<(usize, u64)> {
    areas.iter().enumerate().find_map(|(i, &(start, size))| {
        let end = off.checked_add(len)?;
        (off >= start && end <= start + size).then(|| (i, off - start))
    })
}

/// Test data for a scratch register: a value for access number `n` at BAR
/// offset `off`, different for every offset and access, never 0, as `size`
/// little-endian bytes.
pub fn scratch_pattern(off: u64, n: u64, size: usize) -> Vec<u8> {
    let mut x = off
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(n.wrapping_mul(0xbf58_476d_1ce4_e5b9))
        ^ 0xa5a5_5a5a_c3c3_3c3c;
    x ^= x >> 31;
    let mut b = x.to_le_bytes()[..size].to_vec();
    if b.iter().all(|&v| v == 0) {
        b[0] = 1;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cxl::expected_sparse_areas;

    const BAR: u64 = 0x40000;

    #[test]
    fn placements() {
        assert_eq!(CompBlock::Start.offset(BAR), 0);
        assert_eq!(CompBlock::Middle.offset(BAR), 0x20000);
        assert_eq!(CompBlock::End.offset(BAR), 0x30000);
        for c in CompBlock::ALL {
            assert_eq!(CompBlock::parse(c.name()), Some(c));
            assert_eq!(CompBlock::from_offset(BAR, c.offset(BAR)), Some(c));
        }
        assert_eq!(CompBlock::parse("centre"), None);
        assert_eq!(CompBlock::from_offset(BAR, 0x10000), None);
    }

    #[test]
    fn slots_and_areas_of_each_placement() {
        let page = 0x1000;
        // Block at the start: one area after it, three slots in it.
        assert_eq!(register_slots(BAR, 0), [0x10000, 0x20000, 0x30000]);
        assert_eq!(expected_sparse_areas(BAR, 0, page), [(0x10000, 0x30000)]);
        // In the middle: two areas, before and after.
        assert_eq!(register_slots(BAR, 0x20000), [0, 0x10000, 0x30000]);
        assert_eq!(
            expected_sparse_areas(BAR, 0x20000, page),
            [(0, 0x20000), (0x30000, 0x10000)]
        );
        // At the end: one area before it.
        assert_eq!(register_slots(BAR, 0x30000), [0, 0x10000, 0x20000]);
        assert_eq!(expected_sparse_areas(BAR, 0x30000, page), [(0, 0x30000)]);
        // Every slot lies inside exactly one area.
        for c in CompBlock::ALL {
            let block = c.offset(BAR);
            let areas = expected_sparse_areas(BAR, block, page);
            for s in register_slots(BAR, block) {
                assert!(area_of(&areas, s, SLOT_SIZE).is_some(), "{c:?} slot {s:#x}");
            }
            assert_eq!(area_of(&areas, block, 4), None, "{c:?}");
        }
    }

    #[test]
    fn area_lookup() {
        let areas = [(0, 0x20000), (0x30000, 0x10000)];
        assert_eq!(area_of(&areas, 0x10, 4), Some((0, 0x10)));
        assert_eq!(area_of(&areas, 0x1fffc, 4), Some((0, 0x1fffc)));
        assert_eq!(area_of(&areas, 0x1fffe, 4), None);
        assert_eq!(area_of(&areas, 0x20000, 4), None);
        assert_eq!(area_of(&areas, 0x30014, 4), Some((1, 0x14)));
        assert_eq!(area_of(&areas, 0x3fff8, 8), Some((1, 0xfff8)));
        assert_eq!(area_of(&areas, 0x40000, 1), None);
        assert_eq!(area_of(&areas, u64::MAX, 2), None);
    }

    #[test]
    fn patterns_differ_and_are_never_zero() {
        let mut seen = std::collections::HashSet::new();
        for off in [0x40u64, 0x100, 0x10040, 0x3fff8] {
            for n in 0..4 {
                for size in [1, 2, 4, 8] {
                    let p = scratch_pattern(off, n, size);
                    assert_eq!(p.len(), size);
                    assert!(p.iter().any(|&b| b != 0));
                    if size == 8 {
                        assert!(seen.insert(p), "{off:#x} {n}");
                    }
                }
            }
        }
    }
}
