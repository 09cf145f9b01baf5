//! The component BAR's mappable areas (`sparse::sparse_areas`, `block_range`,
//! `touches_block`, `mmap_allowed`).
//!
//! Input ([`Input`]): a BAR size, the component block's offset in it, a page size (a power of
//! two) and a mapping request. The areas must be page aligned, non-empty, inside the BAR,
//! sorted and disjoint, and hold no page with a byte of the 64 KiB block; and they must be
//! every such page (computed here in 128-bit arithmetic, so that no saturation in the model
//! goes unnoticed). A mapping is allowed exactly when it lies inside one area.

use arbitrary::{Arbitrary, Unstructured};
use cxl_model::fuzz_api as m;

use crate::Enc;

/// Size of the CXL component register block.
const BLOCK: u128 = 0x1_0000;

/// A decoded input.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Input {
    /// BAR size in bytes.
    pub bar_size: u64,
    /// Offset of the component block in the BAR.
    pub block_offset: u64,
    /// The page size is `1 << (page_shift % 64)`.
    pub page_shift: u8,
    /// A mapping request: offset.
    pub offset: u64,
    /// A mapping request: length.
    pub len: u64,
}

impl Input {
    /// The bytes that decode to `self`.
    pub fn encode(&self) -> Vec<u8> {
        Enc::new()
            .u64(self.bar_size)
            .u64(self.block_offset)
            .u8(self.page_shift)
            .u64(self.offset)
            .u64(self.len)
            .finish()
    }
}

/// The reference: the block's bytes in the BAR, and the areas, `[start, end)` each.
struct Reference {
    block: (u128, u128),
    areas: Vec<(u128, u128)>,
}

impl Reference {
    fn new(bar: u64, block_offset: u64, page: u64) -> Self {
        let (bar, page) = (u128::from(bar), u128::from(page));
        let start = u128::from(block_offset).min(bar);
        let end = (u128::from(block_offset) + BLOCK).min(bar);
        let down = |x: u128| x / page * page;
        let up = |x: u128| x.div_ceil(page) * page;
        // Whole pages of the BAR (vfio maps no partial last page of a BAR of a page or more).
        let bar_end = down(bar);
        let mut areas = Vec::new();
        // Pages that end at or before the block's first byte; all of them when the block
        // lies outside the BAR (start == end == bar).
        let before = down(start).min(bar_end);
        if before > 0 {
            areas.push((0, before));
        }
        let after = up(end);
        if start < end && after < bar_end {
            areas.push((after, bar_end));
        }
        Self {
            block: (start, end),
            areas,
        }
    }

    /// Whether `[offset, offset + len)` holds a byte of the block.
    fn touches(&self, offset: u64, len: u64) -> bool {
        let (s, e) = self.block;
        let (o, end) = (u128::from(offset), u128::from(offset) + u128::from(len));
        len != 0 && s < e && o < e && end > s
    }

    /// Whether a mapping of `[offset, offset + len)` lies inside one area.
    fn allowed(&self, offset: u64, len: u64) -> bool {
        let (o, end) = (u128::from(offset), u128::from(offset) + u128::from(len));
        len != 0
            && end <= u128::from(u64::MAX)
            && self.areas.iter().any(|&(s, e)| s <= o && end <= e)
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let Input {
        bar_size: bar,
        block_offset,
        offset,
        len,
        ..
    } = input;
    let page = 1u64 << (input.page_shift % 64);
    let r = Reference::new(bar, block_offset, page);

    let (s, e) = m::block_range(bar, block_offset);
    assert_eq!((u128::from(s), u128::from(e)), r.block, "block range");
    assert!(s <= e && e <= bar);

    let slots = m::sparse_areas(bar, block_offset, page);
    let areas: Vec<(u64, u64)> = slots.iter().flatten().copied().collect();
    let p = u128::from(page);
    for (i, &(start, size)) in areas.iter().enumerate() {
        let (a, z) = (u128::from(start), u128::from(start) + u128::from(size));
        assert!(size > 0, "empty area {i}");
        assert_eq!(a % p, 0, "area {i} start not page aligned");
        assert_eq!(z % p, 0, "area {i} end not page aligned");
        assert!(z <= u128::from(bar), "area {i} past the BAR");
        assert!(z <= u128::from(u64::MAX), "area {i} wraps");
        assert!(
            !m::touches_block(bar, block_offset, start, size),
            "area {i} maps the block"
        );
        // No page of the area holds a block byte.
        let (bs, be) = r.block;
        if bs < be {
            assert!(
                z <= bs / p * p || a >= be.div_ceil(p) * p,
                "area {i} shares a page with the block"
            );
        }
    }
    if let [(a0, s0), (a1, _)] = areas[..] {
        assert!(
            u128::from(a0) + u128::from(s0) <= u128::from(a1),
            "areas unsorted or overlapping"
        );
    }
    // The slots: before the block in the first, after it in the second.
    if let Some((a, _)) = slots[0] {
        assert_eq!(a, 0);
    }
    let want: Vec<(u128, u128)> = areas
        .iter()
        .map(|&(a, s)| (u128::from(a), u128::from(a) + u128::from(s)))
        .collect();
    assert_eq!(
        want, r.areas,
        "areas of BAR {bar:#x}, block {block_offset:#x}, page {page:#x}"
    );

    // A mapping request.
    assert_eq!(
        m::touches_block(bar, block_offset, offset, len),
        r.touches(offset, len)
    );
    let allowed = m::mmap_allowed(bar, block_offset, page, offset, len);
    assert_eq!(allowed, r.allowed(offset, len), "mmap {offset:#x}+{len:#x}");
    if allowed {
        assert!(!r.touches(offset, len));
        assert!(u128::from(offset) + u128::from(len) <= u128::from(bar));
    }
    // Each area is allowed whole, and not one page more on either side.
    for &(a, size) in &areas {
        assert!(m::mmap_allowed(bar, block_offset, page, a, size));
        if a >= page {
            assert_eq!(
                m::mmap_allowed(bar, block_offset, page, a - page, size + page),
                r.allowed(a - page, size + page)
            );
        }
    }
}

/// The seed corpus.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    const K: u64 = 1024;
    let input = |bar, block_offset, offset, len| Input {
        bar_size: bar,
        block_offset,
        page_shift: 12,
        offset,
        len,
    };
    vec![
        // QEMU cxl-type3: BAR 0 is the 64 KiB block.
        ("qemu-type3-bar0", input(64 * K, 0, 0, 4 * K).encode()),
        // cxl-accel: a 256 KiB BAR 0, the block at the start, middle and end.
        (
            "cxl-accel-start",
            input(256 * K, 0, 64 * K, 192 * K).encode(),
        ),
        (
            "cxl-accel-middle",
            input(256 * K, 128 * K, 0, 128 * K).encode(),
        ),
        (
            "cxl-accel-end",
            input(256 * K, 192 * K, 188 * K, 8 * K).encode(),
        ),
        // A block that starts mid-page, 64 KiB pages.
        (
            "unaligned-block-64k-pages",
            Input {
                page_shift: 16,
                ..input(1 << 20, 0x1_0800, 0x2_0000, 0x1_0000)
            }
            .encode(),
        ),
        // Offsets near the top of the address space.
        (
            "top-of-address-space",
            input(u64::MAX, u64::MAX - 0x1_0800, u64::MAX - 0xfff, 0x1000).encode(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_as_built() {
        for (name, bytes) in seeds() {
            let input = Input::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
            assert_eq!(input.encode(), bytes, "{name}");
        }
        let middle = Input::arbitrary(&mut Unstructured::new(&seeds()[2].1)).unwrap();
        assert_eq!(
            m::sparse_areas(middle.bar_size, middle.block_offset, 4096),
            [Some((0, 128 * 1024)), Some((192 * 1024, 64 * 1024))]
        );
    }
}
