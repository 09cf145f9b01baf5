// SPDX-License-Identifier: GPL-2.0

//! The component register BAR: which parts of it the user may map directly.
//!
//! The BAR that holds the CXL component register block often holds the accelerator's own
//! register windows too. Those may be mapped; the block (`[offset, offset + 64 KiB)`, clamped to
//! the BAR) never is: its HDM decoders are the host's, and the user reaches them only through
//! the emulated COMP_REGS region. Mappings are made of whole pages, so an area never includes a
//! page that holds any byte of the block.

use super::regs::CXL_COMPONENT_REG_BLOCK_SIZE;

/// A mappable part of the BAR: `(offset, size)` in bytes, page aligned, never empty.
pub(crate) type Area = (u64, u64);

/// The bytes of the block inside a BAR of `bar_size` bytes: `[start, end)`, empty when the
/// block starts beyond the BAR.
pub(crate) fn block_range(bar_size: u64, block_offset: u64) -> (u64, u64) {
    let start = block_offset.min(bar_size);
    let end = block_offset
        .saturating_add(CXL_COMPONENT_REG_BLOCK_SIZE as u64)
        .min(bar_size);
    (start, end)
}

/// The mappable areas of a BAR of `bar_size` bytes whose component register block starts at
/// `block_offset`, for pages of `page` bytes (a power of two): the page-aligned parts before
/// and after the block. Zero, one or two areas.
pub(crate) fn sparse_areas(bar_size: u64, block_offset: u64, page: u64) -> [Option<Area>; 2] {
    let (start, end) = block_range(bar_size, block_offset);
    let mask = page - 1;
    // Before the block: whole pages that end at or before its first byte.
    let before_end = start & !mask;
    // After it: whole pages that start at or after its last byte + 1, up to the BAR's end
    // rounded down (vfio maps the BAR's last partial page only when the BAR is smaller than a
    // page, which then holds the block anyway).
    let after_start = end.saturating_add(mask) & !mask;
    let bar_end = bar_size & !mask;
    let before = (before_end > 0).then_some((0, before_end));
    let after = (bar_end > after_start).then(|| (after_start, bar_end - after_start));
    [before, after]
}

/// Whether a `len`-byte piece at `offset` of the BAR touches the block.
pub(crate) fn touches_block(bar_size: u64, block_offset: u64, offset: u64, len: u64) -> bool {
    let (start, end) = block_range(bar_size, block_offset);
    len != 0 && start < end && offset < end && offset.saturating_add(len) > start
}

/// Whether a mapping of `len` bytes at `offset` of the BAR lies wholly inside one of the
/// areas (`sparse_areas`).
pub(crate) fn mmap_allowed(
    bar_size: u64,
    block_offset: u64,
    page: u64,
    offset: u64,
    len: u64,
) -> bool {
    let Some(end) = offset.checked_add(len) else {
        return false;
    };
    len != 0
        && sparse_areas(bar_size, block_offset, page)
            .iter()
            .flatten()
            .any(|&(start, size)| offset >= start && end <= start + size)
}
