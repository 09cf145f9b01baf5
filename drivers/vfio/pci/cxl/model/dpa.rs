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

/// Whether the region may be used, as far as the last restore attempt knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Decoder 0 decodes the claimed range: accesses go through.
    Active,
    /// Closed, or something that may reset the device or cut its power is under way: accesses
    /// fail until it is over.
    Revoked,
    /// Nothing is under way any more: the next access (or the driver's ioctl path) checks
    /// decoder 0 and restores it.
    NeedsRestore,
    /// Decoder 0 could not be restored: accesses fail until the next reset.
    Failed,
}

/// How a restore of decoder 0 ended, for [`Gate::restored`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RestoreOutcome {
    /// Decoder 0 decodes the firmware range.
    Done,
    /// The device does not respond yet (still completing a reset, memory decode off): try
    /// again at the next access.
    NotYet,
    /// Decoder 0 cannot decode the firmware range: give up until the next reset.
    Impossible,
}

/// Decides when the DPA region is usable.
///
/// Several things that invalidate the device memory can be under way at once and end in any
/// order: a reset the PCI core announces (`reset_prepare` .. `reset_done`, one per reset, also
/// those of a hot reset requested through another device), a power change the driver forwards,
/// and an error recovery (`error_detected` .. `resume`, whose secondary bus reset the PCI core
/// does not announce). The region may be restored only once all of them are over: the count of
/// changes and the error flag say so, so that, for instance, a user reset that ends during an
/// error recovery cannot reactivate the region before the recovery's own bus reset. A recovery
/// that fails never resumes: the region then stays revoked until the device is closed.
///
/// # Invariants
///
/// `status` is [`Status::Revoked`] while the region is closed or anything is under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gate {
    /// What accesses find.
    status: Status,
    /// Whether the device is open with a DPA region.
    open: bool,
    /// Resets and power changes started and not ended.
    changes: u32,
    /// An error recovery was announced and has not resumed.
    error_recovery: bool,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed region with nothing under way.
    pub(crate) const fn new() -> Self {
        Self {
            status: Status::Revoked,
            open: false,
            changes: 0,
            error_recovery: false,
        }
    }

    /// The current status.
    pub(crate) fn status(&self) -> Status {
        self.status
    }

    /// Whether accesses go through without a restore.
    pub(crate) fn is_active(&self) -> bool {
        self.status == Status::Active
    }

    /// Whether a restore should be attempted now.
    pub(crate) fn needs_restore(&self) -> bool {
        self.status == Status::NeedsRestore
    }

    /// Whether the device is open with a DPA region.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Whether an access must wait instead of failing: the region is open and a reset or power
    /// change is under way (our own transitions make accesses wait, as vfio-pci-core's BAR
    /// faults wait on its `memory_lock`). An error recovery, which may never end, does not
    /// make them wait.
    pub(crate) fn must_wait(&self) -> bool {
        self.open && self.changes > 0 && !self.error_recovery
    }

    /// Whether an error recovery started and has not resumed.
    pub(crate) fn in_error_recovery(&self) -> bool {
        self.error_recovery
    }

    /// Resets and power changes under way.
    pub(crate) fn changes_under_way(&self) -> u32 {
        self.changes
    }

    /// After something ended: wait for a restore if the region is open and nothing is left.
    fn settle(&mut self) {
        self.status = if self.open && self.changes == 0 && !self.error_recovery {
            Status::NeedsRestore
        } else {
            Status::Revoked
        };
    }

    /// The device is opened with a DPA region: it waits for its first restore, unless
    /// something is still under way.
    pub(crate) fn open(&mut self) {
        self.open = true;
        self.settle();
    }

    /// The device is closed: the region is unusable until the next open. An error recovery
    /// that never resumed (it failed) is forgotten here: recoveries run to their end in one
    /// go, and the open that follows resets the function before restoring the region.
    pub(crate) fn close(&mut self) {
        self.open = false;
        self.error_recovery = false;
        self.status = Status::Revoked;
    }

    /// A reset or power change starts. The caller zaps the user mappings afterwards.
    pub(crate) fn begin_change(&mut self) {
        self.changes = self.changes.saturating_add(1);
        self.status = Status::Revoked;
    }

    /// A reset or power change that [`Gate::begin_change`] announced is over.
    pub(crate) fn end_change(&mut self) {
        self.changes = self.changes.saturating_sub(1);
        self.settle();
    }

    /// An error was detected: the region stays revoked until the recovery resumes.
    pub(crate) fn error_detected(&mut self) {
        self.error_recovery = true;
        self.status = Status::Revoked;
    }

    /// The error recovery is over and the device works again.
    pub(crate) fn error_resumed(&mut self) {
        self.error_recovery = false;
        self.settle();
    }

    /// Records how a restore attempt (made while [`Gate::needs_restore`]) ended; returns
    /// whether the region is active now.
    pub(crate) fn restored(&mut self, outcome: RestoreOutcome) -> bool {
        if self.status == Status::NeedsRestore {
            self.status = match outcome {
                RestoreOutcome::Done => Status::Active,
                RestoreOutcome::NotYet => Status::NeedsRestore,
                RestoreOutcome::Impossible => Status::Failed,
            };
        }
        self.is_active()
    }
}
