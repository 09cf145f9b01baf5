//! The fuzzer's pseudo-random numbers: a xoshiro256** generator seeded through
//! splitmix64, one independent stream per (seed, thread).
//!
//! Written here rather than taken from a crate so that a seed printed by one
//! build replays the same operations in any later build: the sequence is fixed
//! by this file alone.

/// One step of splitmix64: the next state and its output. Used to expand a
/// 64-bit seed into xoshiro's 256-bit state (as its authors recommend), so
/// that nearby seeds give unrelated streams.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman and Vigna): fast, 2^256 - 1 period, good enough for
/// choosing operations and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is four splitmix64 outputs from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for w in &mut s {
            *w = splitmix64(&mut sm);
        }
        // splitmix64 never yields four zeros in a row, but keep the invariant explicit:
        // xoshiro's all-zero state is a fixed point.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    /// The stream of thread `thread` in a run seeded with `seed`: independent of every other
    /// thread's, and the same in every run with that seed.
    pub fn stream(seed: u64, thread: u64) -> Self {
        let mut sm = seed ^ thread.wrapping_mul(0xd1b5_4a32_d192_ed03);
        // One splitmix step more so that thread 0's stream is not `Rng::new(seed)`'s.
        Rng::new(splitmix64(&mut sm) ^ thread)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A value in `0..n`; 0 when `n` is 0. Lemire's multiply-shift: no modulo bias worth
    /// caring about at these ranges, and one multiplication.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A value in `lo..=hi` (`lo` if `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        assert!(!items.is_empty(), "pick from an empty slice");
        &items[self.below(items.len() as u64) as usize]
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let w = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

/// A seed from the clock and the process id, for a run without `--seed`.
pub fn seed_from_time() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut s = nanos ^ u64::from(std::process::id()).rotate_left(32);
    splitmix64(&mut s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs of splitmix64 seeded with 0 (the reference implementation's).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut s), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(splitmix64(&mut s), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::stream(42, 3);
        let mut b = Rng::stream(42, 3);
        let va: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(va, vb);
    }

    #[test]
    fn streams_differ_by_thread_and_seed() {
        let first = |seed, t| Rng::stream(seed, t).next_u64();
        assert_ne!(first(1, 0), first(1, 1));
        assert_ne!(first(1, 0), first(2, 0));
        assert_ne!(Rng::stream(7, 0).next_u64(), Rng::new(7).next_u64());
    }

    #[test]
    fn bounded_helpers() {
        let mut r = Rng::new(9);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let v = r.below(10);
            assert!(v < 10);
            seen[v as usize] += 1;
            let x = r.range(5, 7);
            assert!((5..=7).contains(&x));
        }
        // Roughly uniform: each bucket within 20% of 1000.
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(r.below(0), 0);
        assert_eq!(r.range(3, 3), 3);
        assert_eq!(r.range(4, 1), 4);
        assert!(!r.chance(0, 5));
        assert!(r.chance(5, 5));
        let mut b = [0u8; 13];
        r.fill(&mut b);
        assert!(b.iter().any(|&x| x != 0));
    }
}
