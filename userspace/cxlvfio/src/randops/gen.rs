//! Argument generators: where and how much to access, which `argsz` or flags to corrupt,
//! which values to write, and what the kernel must answer to each.

use super::rng::Rng;
use crate::uapi::{
    VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
    VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
    VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET,
};

/// The largest `argsz` a corrupted info request claims: the buffer passed is always at
/// least this large, so the kernel can never write past it.
pub const MAX_ARGSZ: u32 = 4096;

/// Where an access of a region lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Wholly inside the region.
    Inside,
    /// Starts inside, ends past the end: clamped to this many bytes.
    Straddle(usize),
    /// Starts at or past the end.
    Beyond,
}

/// Where `[off, off + len)` lies in a region of `size` bytes.
pub fn span(size: u64, off: u64, len: usize) -> Span {
    if off >= size {
        Span::Beyond
    } else if off.checked_add(len as u64).is_some_and(|e| e <= size) {
        Span::Inside
    } else {
        Span::Straddle((size - off) as usize)
    }
}

/// A transfer size up to `max` (at least 1): often a register width, often small, sometimes
/// anything up to `max`.
pub fn io_len(rng: &mut Rng, max: usize) -> usize {
    let max = max.max(1);
    let len = match rng.below(10) {
        0..=3 => *rng.pick(&[1usize, 2, 4, 8]),
        4..=6 => rng.range(1, 64) as usize,
        _ => rng.range(1, max as u64) as usize,
    };
    len.min(max)
}

/// An access of a region of `size` bytes: mostly inside, sometimes straddling the end,
/// sometimes past it (just past, or far: up to the 40-bit region index boundary).
pub fn region_access(rng: &mut Rng, size: u64, max_len: usize) -> (u64, usize) {
    let len = io_len(rng, max_len);
    let off = match rng.below(20) {
        _ if size == 0 => rng.below(0x1000),
        0 => size.saturating_sub(rng.range(1, len as u64)),
        1 => size + rng.below(0x100),
        2 => rng.range(size, (1 << 40) - 1),
        _ => rng.below(size.saturating_sub(len as u64).max(1)),
    };
    (off, len)
}

/// Whether COMP_REGS takes an access: one aligned 32-bit word inside the region.
pub fn comp_regs_access_ok(size: u64, off: u64, len: usize) -> bool {
    len == 4 && off.is_multiple_of(4) && span(size, off, len) == Span::Inside
}

/// An `argsz` for a request whose fixed part is `minsz` bytes: too small, exact, a little
/// or a lot larger, at most [`MAX_ARGSZ`].
pub fn corrupt_argsz(rng: &mut Rng, minsz: u32) -> u32 {
    match rng.below(6) {
        0 => 0,
        1 => rng.below(u64::from(minsz)) as u32,
        2 => minsz,
        3 => minsz + rng.range(1, 16) as u32,
        4 => rng.range(u64::from(minsz), u64::from(MAX_ARGSZ)) as u32,
        _ => MAX_ARGSZ,
    }
}

/// An index for an info request: valid, just past the valid ones, or anything.
pub fn corrupt_index(rng: &mut Rng, count: u32) -> u32 {
    match rng.below(4) {
        0 => rng.below(u64::from(count)) as u32,
        1 => count + rng.below(4) as u32,
        2 => u32::MAX - rng.below(4) as u32,
        _ => rng.next_u32(),
    }
}

/// Whether `flags` asks `VFIO_DEVICE_FEATURE` for an actual low-power change: SET (without
/// PROBE or GET or unknown bits) of `LOW_POWER_ENTRY`, `..._WITH_WAKEUP` or `LOW_POWER_EXIT`.
/// The concurrent corrupted-feature operation must never send one: it would change the
/// device's power state under the other threads.
pub fn is_power_request(flags: u32) -> bool {
    let known = VFIO_DEVICE_FEATURE_MASK
        | VFIO_DEVICE_FEATURE_GET
        | VFIO_DEVICE_FEATURE_SET
        | VFIO_DEVICE_FEATURE_PROBE;
    let index = flags & VFIO_DEVICE_FEATURE_MASK;
    flags & !known == 0
        && flags & (VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE)
            == VFIO_DEVICE_FEATURE_SET
        && [
            VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
            VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
            VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
        ]
        .contains(&index)
}

/// Flags for a corrupted `VFIO_DEVICE_FEATURE`: a random or unknown feature index, random
/// GET/SET/PROBE combinations, unknown bits; never [`is_power_request`] (PROBE is added).
pub fn corrupt_feature_flags(rng: &mut Rng) -> u32 {
    let index = match rng.below(4) {
        0 => *rng.pick(&[
            VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
            VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
            VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
        ]),
        1 => rng.below(16) as u32,
        2 => 0xffff - rng.below(4) as u32,
        _ => rng.next_u32() & VFIO_DEVICE_FEATURE_MASK,
    };
    let ops = [
        0,
        VFIO_DEVICE_FEATURE_GET,
        VFIO_DEVICE_FEATURE_SET,
        VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET,
        VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET,
        VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET,
        VFIO_DEVICE_FEATURE_PROBE,
    ];
    let mut flags = index | *rng.pick(&ops);
    if rng.chance(1, 4) {
        flags |= 1 << rng.range(19, 31);
    }
    if is_power_request(flags) {
        flags |= VFIO_DEVICE_FEATURE_PROBE;
    }
    flags
}

/// A 32-bit value to write to a register: random, or one of the values register logic
/// trips on (all ones, single bits, the COMMIT and LOCK bits, the high nibble alone).
pub fn register_value(rng: &mut Rng) -> u32 {
    match rng.below(8) {
        0 => 0,
        1 => u32::MAX,
        2 => 1 << rng.below(32),
        3 => *rng.pick(&[
            1 << 9,
            1 << 8,
            (1 << 9) | (1 << 8),
            0x0000_0300,
            0xf000_0000,
        ]),
        4 => !(1 << rng.below(32)),
        _ => rng.next_u32(),
    }
}

/// Bytes of a random DMA request that the kernel must refuse, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaBad {
    /// An IOVA not page aligned.
    UnalignedIova,
    /// A size not page aligned.
    UnalignedSize,
    /// Size 0.
    ZeroSize,
    /// A user address not page aligned.
    UnalignedVaddr,
    /// Flags with a bit the kernel does not define.
    UnknownFlags,
}

/// One of [`DmaBad`].
pub fn dma_bad(rng: &mut Rng) -> DmaBad {
    *rng.pick(&[
        DmaBad::UnalignedIova,
        DmaBad::UnalignedSize,
        DmaBad::ZeroSize,
        DmaBad::UnalignedVaddr,
        DmaBad::UnknownFlags,
    ])
}

/// A flags word with one bit above `known_bits` set (plus maybe some known ones): refused by
/// any kernel that checks for unknown bits.
pub fn unknown_flags(rng: &mut Rng, known_bits: u32, valid: u32) -> u32 {
    (1u32 << rng.range(u64::from(known_bits), 31)) | (valid & rng.next_u32())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(span(0x100, 0, 0x100), Span::Inside);
        assert_eq!(span(0x100, 0xfc, 4), Span::Inside);
        assert_eq!(span(0x100, 0xfe, 4), Span::Straddle(2));
        assert_eq!(span(0x100, 0x100, 1), Span::Beyond);
        assert_eq!(span(0x100, u64::MAX, 8), Span::Beyond);
        assert_eq!(span(0x100, 0xff, usize::MAX), Span::Straddle(1));
        assert_eq!(span(0, 0, 1), Span::Beyond);
    }

    #[test]
    fn accesses_cover_every_span() {
        let mut rng = Rng::new(3);
        let (mut inside, mut straddle, mut beyond) = (0, 0, 0);
        for _ in 0..5000 {
            let (off, len) = region_access(&mut rng, 0x10000, 256);
            assert!((1..=256).contains(&len));
            match span(0x10000, off, len) {
                Span::Inside => inside += 1,
                Span::Straddle(n) => {
                    assert!(n < len);
                    straddle += 1
                }
                Span::Beyond => {
                    assert!(off < 1 << 40);
                    beyond += 1
                }
            }
        }
        assert!(
            inside > 3000 && straddle > 50 && beyond > 300,
            "{inside} {straddle} {beyond}"
        );
        // A region of size 0: everything is beyond.
        let (off, len) = region_access(&mut rng, 0, 8);
        assert_eq!(span(0, off, len), Span::Beyond);
    }

    #[test]
    fn comp_regs_rules() {
        assert!(comp_regs_access_ok(0x60, 0, 4));
        assert!(comp_regs_access_ok(0x60, 0x5c, 4));
        assert!(!comp_regs_access_ok(0x60, 0x60, 4));
        assert!(!comp_regs_access_ok(0x60, 2, 4));
        assert!(!comp_regs_access_ok(0x60, 0, 8));
        assert!(!comp_regs_access_ok(0x60, 0, 2));
    }

    #[test]
    fn argsz_and_index_stay_bounded() {
        let mut rng = Rng::new(5);
        let mut small = false;
        for _ in 0..2000 {
            let a = corrupt_argsz(&mut rng, 32);
            assert!(a <= MAX_ARGSZ);
            small |= a < 32;
            let i = corrupt_index(&mut rng, 9);
            let _ = i;
        }
        assert!(small);
    }

    #[test]
    fn corrupted_features_never_change_power() {
        let mut rng = Rng::new(11);
        let mut low_power_index = 0;
        for _ in 0..20_000 {
            let f = corrupt_feature_flags(&mut rng);
            assert!(!is_power_request(f), "{f:#x}");
            if (3..=5).contains(&(f & VFIO_DEVICE_FEATURE_MASK)) {
                low_power_index += 1;
            }
        }
        assert!(low_power_index > 1000);
        assert!(is_power_request(
            VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY
        ));
        assert!(is_power_request(
            VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT
        ));
        assert!(!is_power_request(
            VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE | 3
        ));
        assert!(!is_power_request(VFIO_DEVICE_FEATURE_SET | (1 << 20) | 3));
        assert!(!is_power_request(VFIO_DEVICE_FEATURE_SET | 1));
    }

    #[test]
    fn values_and_flags() {
        let mut rng = Rng::new(2);
        let mut seen_all_ones = false;
        for _ in 0..1000 {
            seen_all_ones |= register_value(&mut rng) == u32::MAX;
            let f = unknown_flags(&mut rng, 3, 0x7);
            assert!(f & !0x7 != 0, "{f:#x}");
        }
        assert!(seen_all_ones);
        let _ = dma_bad(&mut rng);
        for _ in 0..100 {
            let l = io_len(&mut rng, 3);
            assert!((1..=3).contains(&l));
        }
        assert_eq!(io_len(&mut rng, 0), 1);
    }
}
