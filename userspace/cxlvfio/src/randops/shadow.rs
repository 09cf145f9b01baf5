//! The shadow of one thread's slice of device memory (DPA): what every read of it must return.
//!
//! The rules, all documented behaviour of the driver:
//!
//! 1. Each thread owns a slice of whole 2 MiB chunks; only it writes there, so the shadow
//!    is exact without locking (other threads never touch the slice).
//! 2. A write that the kernel accepted (`pwrite` returning the count, or a store through a
//!    mapping) updates the shadow. A write that failed changes nothing.
//! 3. A read must return the shadow's bytes.
//! 4. Opening the device with `scrub_memory=1`: every chunk is zero for this open (the
//!    driver scrubs a chunk at the first touch in an open, before anything can see it).
//!    With `scrub_memory=0`, or for the first open of a run whose scrub setting is unknown,
//!    a chunk's content is unknown until the thread *adopts* it: reads the whole chunk once
//!    and takes what it got as the truth.
//! 5. Resets, power changes (low power, D3hot and back) and memory decode changes keep the
//!    data: nothing else changes the shadow.

/// Bytes per chunk: the driver's scrub granularity.
pub const CHUNK: usize = 2 << 20;

/// Where a read differed from the shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Offset in the slice of the first differing byte.
    pub at: usize,
    /// Bytes read there (up to 16).
    pub got: Vec<u8>,
    /// Bytes expected there (up to 16).
    pub want: Vec<u8>,
    /// How many bytes differed in the whole read.
    pub count: usize,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes differ, first at slice offset {:#x}: read {}, shadow {}",
            self.count,
            self.at,
            crate::pattern::hex(&self.got),
            crate::pattern::hex(&self.want)
        )
    }
}

/// The shadow of one slice.
#[derive(Debug, Clone)]
pub struct DpaShadow {
    data: Vec<u8>,
    known: Vec<bool>,
}

impl DpaShadow {
    /// A slice of `chunks` chunks whose content is not known yet.
    pub fn new(chunks: usize) -> Self {
        DpaShadow {
            data: vec![0; chunks * CHUNK],
            known: vec![false; chunks],
        }
    }

    /// Bytes in the slice.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Rule 4: a new open. `scrub` is the module's `scrub_memory` (`None`: unknown).
    /// Without scrubbing, what was known stays known (the memory kept it across the close).
    pub fn on_open(&mut self, scrub: Option<bool>) {
        match scrub {
            Some(true) => {
                self.data.fill(0);
                self.known.fill(true);
            }
            Some(false) => {}
            None => self.known.fill(false),
        }
    }

    /// The chunks of `[off, off + len)` whose content is unknown (rule 4), to adopt first.
    pub fn unknown_chunks(&self, off: usize, len: usize) -> Vec<usize> {
        chunk_span(off, len).filter(|&c| !self.known[c]).collect()
    }

    /// Takes `bytes` (a whole chunk just read) as chunk `chunk`'s content.
    pub fn adopt(&mut self, chunk: usize, bytes: &[u8]) {
        assert_eq!(bytes.len(), CHUNK, "adopt a whole chunk");
        self.data[chunk * CHUNK..(chunk + 1) * CHUNK].copy_from_slice(bytes);
        self.known[chunk] = true;
    }

    /// Rule 2: the kernel accepted a write of `bytes` at `off`.
    pub fn write(&mut self, off: usize, bytes: &[u8]) {
        self.assert_known(off, bytes.len());
        self.data[off..off + bytes.len()].copy_from_slice(bytes);
    }

    /// What a read of `len` bytes at `off` must return.
    pub fn expected(&self, off: usize, len: usize) -> &[u8] {
        self.assert_known(off, len);
        &self.data[off..off + len]
    }

    /// Rule 3: checks bytes read at `off`.
    pub fn check(&self, off: usize, got: &[u8]) -> Result<(), Mismatch> {
        let want = self.expected(off, got.len());
        let Some(first) = got.iter().zip(want).position(|(a, b)| a != b) else {
            return Ok(());
        };
        let count = got.iter().zip(want).filter(|(a, b)| a != b).count();
        let end = (first + 16).min(got.len());
        Err(Mismatch {
            at: off + first,
            got: got[first..end].to_vec(),
            want: want[first..end].to_vec(),
            count,
        })
    }

    fn assert_known(&self, off: usize, len: usize) {
        assert!(
            off.checked_add(len).is_some_and(|e| e <= self.data.len()),
            "{len:#x} bytes at {off:#x} outside a slice of {:#x}",
            self.data.len()
        );
        assert!(
            chunk_span(off, len).all(|c| self.known[c]),
            "shadow of an unadopted chunk at {off:#x}+{len:#x}"
        );
    }
}

/// The chunks `[off, off + len)` touches (none for `len` 0).
pub fn chunk_span(off: usize, len: usize) -> std::ops::Range<usize> {
    if len == 0 {
        return 0..0;
    }
    off / CHUNK..(off + len - 1) / CHUNK + 1
}

/// The DPA slice of thread `thread`: `chunks` chunks from chunk `thread * chunks`, as
/// `(offset in the region, length)`. The region's last chunk is nobody's: the edge tests
/// (accesses clamped at the end) use it. `None` when the region is too small for all of
/// `threads` slices and that chunk.
pub fn slice_of(
    region_size: u64,
    threads: usize,
    chunks: usize,
    thread: usize,
) -> Option<(u64, usize)> {
    let need = (threads * chunks + 1) as u64 * CHUNK as u64;
    if thread >= threads || chunks == 0 || region_size < need {
        return None;
    }
    Some(((thread * chunks * CHUNK) as u64, chunks * CHUNK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbed_open_reads_zero_then_last_write() {
        let mut s = DpaShadow::new(2);
        s.on_open(Some(true));
        assert!(s.unknown_chunks(0, s.len()).is_empty());
        assert!(s.check(100, &[0; 64]).is_ok());
        s.write(CHUNK - 2, &[1, 2, 3, 4]);
        assert_eq!(s.expected(CHUNK - 2, 4), &[1, 2, 3, 4]);
        assert!(s.check(CHUNK - 3, &[0, 1, 2, 3, 4, 0]).is_ok());
        let m = s.check(CHUNK - 2, &[1, 9, 3, 7]).unwrap_err();
        assert_eq!((m.at, m.count), (CHUNK - 1, 2));
        assert_eq!(
            (m.got.clone(), m.want.clone()),
            (vec![9, 3, 7], vec![2, 3, 4])
        );
        assert!(m.to_string().contains("2 bytes differ"), "{m}");
        // A reset or power change: no call at all, the data stays. A new scrubbed open: zero.
        s.on_open(Some(true));
        assert!(s.check(CHUNK - 2, &[0; 4]).is_ok());
    }

    #[test]
    fn unscrubbed_open_adopts_and_keeps() {
        let mut s = DpaShadow::new(2);
        s.on_open(Some(false));
        assert_eq!(s.unknown_chunks(0, s.len()), vec![0, 1]);
        assert_eq!(s.unknown_chunks(CHUNK + 5, 10), vec![1]);
        let old = vec![0xaa; CHUNK];
        s.adopt(1, &old);
        assert!(s.unknown_chunks(CHUNK, CHUNK).is_empty());
        assert!(s.check(CHUNK + 7, &[0xaa; 3]).is_ok());
        s.write(CHUNK, &[5]);
        // Reopen without scrub: memory keeps what the last open wrote.
        s.on_open(Some(false));
        assert!(s.check(CHUNK, &[5, 0xaa]).is_ok());
        // Unknown setting: adopt everything again.
        s.on_open(None);
        assert_eq!(s.unknown_chunks(0, 2 * CHUNK), vec![0, 1]);
    }

    #[test]
    #[should_panic(expected = "unadopted")]
    fn unknown_chunks_have_no_expectation() {
        let s = DpaShadow::new(1);
        let _ = s.expected(0, 1);
    }

    #[test]
    fn spans_and_slices() {
        assert_eq!(chunk_span(0, 0), 0..0);
        assert_eq!(chunk_span(0, 1), 0..1);
        assert_eq!(chunk_span(CHUNK - 1, 2), 0..2);
        assert_eq!(chunk_span(CHUNK, CHUNK), 1..2);
        let size = 256u64 << 20;
        assert_eq!(slice_of(size, 4, 2, 0), Some((0, 2 * CHUNK)));
        assert_eq!(slice_of(size, 4, 2, 3), Some((6 * CHUNK as u64, 2 * CHUNK)));
        assert_eq!(slice_of(size, 4, 2, 4), None);
        // 9 chunks needed for 4 x 2 plus the spare one.
        assert_eq!(
            slice_of(9 * CHUNK as u64, 4, 2, 3).map(|s| s.0),
            Some(6 * CHUNK as u64)
        );
        assert_eq!(slice_of(8 * CHUNK as u64, 4, 2, 0), None);
        assert_eq!(slice_of(size, 4, 0, 0), None);
    }
}
