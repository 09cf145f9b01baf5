//! Tests of the component BAR's mappable areas, for every layout of the block in the BAR.

use crate::sparse::*;

const K: u64 = 1024;
const PAGE: u64 = 4 * K;
const BLOCK: u64 = 64 * K;

fn areas(bar: u64, offset: u64) -> std::vec::Vec<Area> {
    sparse_areas(bar, offset, PAGE)
        .iter()
        .flatten()
        .copied()
        .collect()
}

/// Checks what every layout must satisfy: areas are page aligned, non-empty, inside the BAR,
/// disjoint from every page holding a block byte, and cover every other whole page.
fn check_invariants(bar: u64, offset: u64) {
    let (start, end) = block_range(bar, offset);
    let list = areas(bar, offset);
    for &(a, size) in &list {
        assert!(size > 0, "empty area in {bar:#x}/{offset:#x}");
        assert_eq!(a % PAGE, 0);
        assert_eq!(size % PAGE, 0);
        assert!(a + size <= bar);
        assert!(
            !touches_block(bar, offset, a, size),
            "area overlaps the block"
        );
    }
    let mut page = 0;
    while page + PAGE <= bar {
        let holds_block = start < end && page < end && page + PAGE > start;
        let covered = list.iter().any(|&(a, s)| page >= a && page + PAGE <= a + s);
        assert_eq!(
            covered, !holds_block,
            "page {page:#x} of {bar:#x}/{offset:#x}"
        );
        page += PAGE;
    }
}

#[test]
fn block_filling_the_bar_leaves_nothing_to_map() {
    // The QEMU type-3 device: BAR0 is exactly the 64 KiB block.
    assert!(areas(BLOCK, 0).is_empty());
    assert!(!mmap_allowed(BLOCK, 0, PAGE, 0, PAGE));
    check_invariants(BLOCK, 0);
}

#[test]
fn block_at_the_start_leaves_one_area_after_it() {
    assert_eq!(areas(1 << 20, 0), [(BLOCK, (1 << 20) - BLOCK)]);
    assert!(mmap_allowed(1 << 20, 0, PAGE, BLOCK, PAGE));
    assert!(!mmap_allowed(1 << 20, 0, PAGE, BLOCK - PAGE, 2 * PAGE));
    check_invariants(1 << 20, 0);
}

#[test]
fn block_at_the_end_leaves_one_area_before_it() {
    let bar = 1 << 20;
    assert_eq!(areas(bar, bar - BLOCK), [(0, bar - BLOCK)]);
    assert!(mmap_allowed(bar, bar - BLOCK, PAGE, 0, bar - BLOCK));
    assert!(!mmap_allowed(bar, bar - BLOCK, PAGE, 0, bar));
    check_invariants(bar, bar - BLOCK);
}

#[test]
fn block_in_the_middle_leaves_two_areas() {
    let bar = 1 << 20;
    assert_eq!(
        areas(bar, 256 * K),
        [(0, 256 * K), (320 * K, bar - 320 * K)]
    );
    check_invariants(bar, 256 * K);
    // A mapping spanning both areas covers the block.
    assert!(!mmap_allowed(bar, 256 * K, PAGE, 0, bar));
}

#[test]
fn bar_smaller_than_the_block() {
    assert!(areas(16 * K, 0).is_empty());
    assert_eq!(block_range(16 * K, 0), (0, 16 * K));
    // A block said to start past the BAR's end covers nothing: the whole BAR is mappable.
    assert_eq!(areas(16 * K, 32 * K), [(0, 16 * K)]);
    check_invariants(16 * K, 0);
    check_invariants(16 * K, 32 * K);
}

#[test]
fn unaligned_block_offsets_round_areas_away_from_the_block() {
    let bar = 1 << 20;
    // The block starts mid-page: the page it starts in is not mappable.
    assert_eq!(
        areas(bar, 0x1_0800),
        [(0, 0x1_0000), (0x2_1000, bar - 0x2_1000)]
    );
    for offset in [1, 0x7ff, 0x1234, 0x3_0001, bar - BLOCK - 1, bar - 1] {
        check_invariants(bar, offset);
    }
}

#[test]
fn touches_block_and_mmap_checks_handle_overflow() {
    assert!(touches_block(BLOCK, 0, 0, 1));
    assert!(!touches_block(BLOCK, 0, 0, 0));
    assert!(touches_block(1 << 20, 0, BLOCK - 1, u64::MAX));
    assert!(!touches_block(1 << 20, 0, BLOCK, u64::MAX));
    assert!(!mmap_allowed(1 << 20, 0, PAGE, BLOCK, u64::MAX));
    assert!(!mmap_allowed(1 << 20, 0, PAGE, BLOCK, 0));
}
