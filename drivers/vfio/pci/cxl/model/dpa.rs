// SPDX-License-Identifier: GPL-2.0

//! Rules of the DPA region (the device memory): which mappings and transfers are valid, and the
//! bookkeeping of lazy scrubbing.
//!
//! Device memory is scrubbed (zeroed) before its first use in each open, in chunks of
//! [`SCRUB_CHUNK`] bytes: the first fault or transfer that touches a chunk zeroes it, so that the
//! cost follows what the tenant touches. A [`ScrubMap`] records the chunks done in this open;
//! resets keep it, so data written in an open survives that open's resets.

use core::ops::Range;

/// Scrubbing granularity: 2 MiB, the size of a PMD mapping on x86-64.
pub(crate) const SCRUB_CHUNK: u64 = 2 << 20;

/// Why an access to the DPA region is refused (the driver answers `EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeError {
    /// Zero length.
    Empty,
    /// Starts at or beyond the end of the region.
    Outside,
    /// The end does not fit the region (or overflows).
    TooLong,
}

/// Checks a mapping of `len` bytes at `offset` of a region of `size` bytes: it must lie wholly
/// inside the region.
pub(crate) fn check_mmap(size: u64, offset: u64, len: u64) -> Result<(), RangeError> {
    if len == 0 {
        return Err(RangeError::Empty);
    }
    if offset >= size {
        return Err(RangeError::Outside);
    }
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(RangeError::TooLong),
    }
}

/// The number of bytes a `count`-byte read or write at `offset` of a region of `size` bytes
/// transfers: clamped to the region's end. A transfer must start inside the region.
pub(crate) fn clamp_transfer(size: u64, offset: u64, count: usize) -> Result<usize, RangeError> {
    if offset >= size {
        return Err(RangeError::Outside);
    }
    let left = size - offset;
    Ok(if (count as u64) > left {
        left as usize
    } else {
        count
    })
}

/// The scrub chunks a piece of `len` bytes at `offset` touches (empty for `len == 0`).
pub(crate) fn chunks_touched(offset: u64, len: u64) -> Range<u64> {
    if len == 0 {
        return 0..0;
    }
    let first = offset / SCRUB_CHUNK;
    let last = offset.saturating_add(len - 1) / SCRUB_CHUNK;
    first..last.saturating_add(1)
}

/// Bytes `[start, end)` of chunk `chunk` in a region of `size` bytes (the last chunk may be
/// shorter than [`SCRUB_CHUNK`]).
pub(crate) fn chunk_bytes(chunk: u64, size: u64) -> Range<u64> {
    let start = chunk.saturating_mul(SCRUB_CHUNK).min(size);
    start..start.saturating_add(SCRUB_CHUNK).min(size)
}

/// Number of scrub chunks of a region of `size` bytes.
pub(crate) fn chunk_count(size: u64) -> u64 {
    size.div_ceil(SCRUB_CHUNK)
}

/// Number of 64-bit words a [`ScrubMap`] of a region of `size` bytes needs.
pub(crate) fn scrub_map_words(size: u64) -> usize {
    chunk_count(size).div_ceil(64) as usize
}

/// Which chunks of the region this open has scrubbed: one bit per chunk.
pub(crate) struct ScrubMap<'a> {
    /// Bit `n % 64` of word `n / 64` is chunk `n`.
    words: &'a mut [u64],
}

impl<'a> ScrubMap<'a> {
    /// Wraps the bit words (see [`scrub_map_words`]).
    pub(crate) fn new(words: &'a mut [u64]) -> Self {
        Self { words }
    }

    /// Forgets every chunk: the next use of each scrubs it again (a new open).
    pub(crate) fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    /// Whether `chunk` was scrubbed. Chunks beyond the map count as scrubbed: there is nothing
    /// there to scrub.
    pub(crate) fn is_scrubbed(&self, chunk: u64) -> bool {
        match self.words.get((chunk / 64) as usize) {
            Some(word) => word & (1 << (chunk % 64)) != 0,
            None => true,
        }
    }

    /// Records that `chunk` was scrubbed.
    pub(crate) fn mark(&mut self, chunk: u64) {
        if let Some(word) = self.words.get_mut((chunk / 64) as usize) {
            *word |= 1 << (chunk % 64);
        }
    }

    /// The chunks of `range` that still need scrubbing.
    pub(crate) fn pending(&self, range: Range<u64>) -> impl Iterator<Item = u64> + '_ {
        range.filter(move |&c| !self.is_scrubbed(c))
    }
}
