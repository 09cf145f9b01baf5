//! Deterministic test data and small hashes for device-memory tests.
//!
//! Every pattern byte depends on a seed and on its position (the region offset
//! it is written to), so data read back from the wrong place, from a previous
//! run or from an inactive region cannot match by accident.

/// SplitMix64's finalizer: a well-mixed 64-bit value from `x`.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern word at `off & !7` for `seed`; its little-endian bytes are the
/// pattern bytes at `off & !7 .. (off & !7) + 8`.
pub fn word_at(seed: u64, off: u64) -> u64 {
    mix64(seed ^ mix64(off >> 3))
}

/// The pattern byte at position `off`.
pub fn byte_at(seed: u64, off: u64) -> u8 {
    word_at(seed, off).to_le_bytes()[(off & 7) as usize]
}

/// Fills `buf` with the pattern bytes of positions `off .. off + buf.len()`.
pub fn fill(seed: u64, off: u64, buf: &mut [u8]) {
    let mut word = word_at(seed, off).to_le_bytes();
    for (pos, b) in (off..).zip(buf.iter_mut()) {
        if pos & 7 == 0 {
            word = word_at(seed, pos).to_le_bytes();
        }
        *b = word[(pos & 7) as usize];
    }
}

/// The pattern bytes of positions `off .. off + len`.
pub fn bytes(seed: u64, off: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(seed, off, &mut v);
    v
}

/// Index of the first byte where `a` and `b` differ (or where the shorter ends).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// 64-bit FNV-1a hash of `data`.
pub fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `data` as lower-case hex, two digits per byte.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex (an even number of digits) into bytes.
pub fn parse_hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A small, fast pseudo-random generator (xorshift64*) for choosing test positions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Rng(mix64(seed) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_bytes_agree() {
        let seed = 0x1234;
        for off in [0u64, 8, 4096, 0x1000_0008] {
            let b = bytes(seed, off, 8);
            assert_eq!(
                u64::from_le_bytes(b.try_into().unwrap()),
                word_at(seed, off)
            );
        }
        // Unaligned starts give the same bytes as an aligned fill.
        let whole = bytes(seed, 0x2000, 64);
        for start in 0..16 {
            let part = bytes(seed, 0x2000 + start as u64, 24);
            assert_eq!(part[..], whole[start..start + 24]);
            assert_eq!(byte_at(seed, 0x2000 + start as u64), whole[start]);
        }
    }

    #[test]
    fn pattern_depends_on_seed_and_position() {
        assert_ne!(bytes(1, 0, 32), bytes(2, 0, 32));
        assert_ne!(bytes(1, 0, 32), bytes(1, 4096, 32));
        assert_ne!(word_at(7, 0), word_at(7, 8));
        // Never a run of zeros that could pass for scrubbed memory.
        assert!(bytes(0, 0, 4096).chunks(8).all(|w| w != [0; 8]));
    }

    #[test]
    fn differences() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
        assert_eq!(first_difference(b"", b""), None);
    }

    #[test]
    fn fnv_known_values() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(parse_hex_bytes("00ab7F"), Some(vec![0x00, 0xab, 0x7f]));
        assert_eq!(parse_hex_bytes(""), Some(vec![]));
        assert_eq!(parse_hex_bytes("abc"), None);
        assert_eq!(parse_hex_bytes("zz"), None);
        assert_eq!(parse_hex_bytes("é1"), None);
    }

    #[test]
    fn rng_range_and_spread() {
        let mut r = Rng::new(0);
        let mut seen = [false; 16];
        for _ in 0..1000 {
            let v = r.below(16);
            assert!(v < 16);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
