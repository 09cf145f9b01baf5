//! The operations the fuzzer mixes and their weights, in one table.
//!
//! Most operations run concurrently on a device (its threads hold the device's
//! gate for read): the kernel must keep them apart, and they include resets and
//! the low-power exit in D0, which the driver handles without failing anyone's
//! access. The *exclusive* ones (the gate held for write) put the device in a
//! documented state where accesses fail (user low power, D3hot, memory decode
//! off) or reopen it: another thread's access then would fail by design, so
//! nothing else runs on that device meanwhile.

use super::rng::Rng;

/// One kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `VFIO_DEVICE_GET_INFO`, whole reply with its capability chain.
    GetInfo,
    /// `VFIO_DEVICE_GET_INFO` with a corrupted `argsz` or input flags.
    GetInfoBad,
    /// `VFIO_DEVICE_GET_REGION_INFO` of a valid index.
    RegionInfo,
    /// `VFIO_DEVICE_GET_REGION_INFO` with a corrupted `argsz`, index or flags.
    RegionInfoBad,
    /// `VFIO_DEVICE_GET_IRQ_INFO` of a valid index.
    IrqInfo,
    /// `VFIO_DEVICE_GET_IRQ_INFO` with a corrupted `argsz`, index or flags.
    IrqInfoBad,
    /// A read of config space, random offset and size (past the end too).
    ConfigRead,
    /// A write into (or across the edges of) a CXL DVSEC, any size of 1, 2 or 4.
    ConfigWriteDvsec,
    /// A write of a harmless config register, or past the end of config space.
    ConfigWriteMisc,
    /// A read of a BAR or other fixed region (size 0, past the end, invalid index too).
    BarRead,
    /// A write through the component BAR into the component register block (emulated).
    BarWriteBlock,
    /// A COMP_REGS read: aligned dwords, and bad sizes, alignments and offsets.
    CompRegsRead,
    /// A COMP_REGS write of a random or interesting value; bad accesses too.
    CompRegsWrite,
    /// A `pread` of the thread's own DPA slice, checked against the shadow.
    DpaRead,
    /// A `pwrite` of random data into the thread's own DPA slice.
    DpaWrite,
    /// DPA accesses at the region's end: clamped, or refused past it.
    DpaEdge,
    /// `mmap` of the thread's DPA slice or of a sparse area of the component BAR.
    Mmap,
    /// `munmap` of one of the thread's mappings.
    Munmap,
    /// An `mmap` the driver must refuse (COMP_REGS, the block, past the end, private).
    MmapBad,
    /// A load or store through one of the thread's mappings (page faults).
    Touch,
    /// `VFIO_DEVICE_RESET`, concurrent with everything else.
    Reset,
    /// `LOW_POWER_EXIT` in D0: the driver's power-change path, concurrent.
    LowPowerExitD0,
    /// `VFIO_DEVICE_FEATURE` PROBE of the low-power features.
    FeatureProbe,
    /// `VFIO_DEVICE_FEATURE` with corrupted argsz, flags or index; never an effective
    /// low-power request.
    FeatureBad,
    /// `VFIO_DEVICE_IOEVENTFD` with bad arguments (COMP_REGS, the block, DPA, argsz, flags).
    IoeventfdBad,
    /// DMA map of the thread's guest-like buffer.
    DmaMap,
    /// DMA unmap of one of the thread's mappings (or of nothing).
    DmaUnmap,
    /// DMA map/unmap with bad alignment, size or flags, or a double map.
    DmaBad,
    /// An ioctl number the kernel does not define.
    UnknownIoctl,
    /// Exclusive: `LOW_POWER_ENTRY` (or with wakeup), accesses fail, `LOW_POWER_EXIT`.
    LowPowerWindow,
    /// Exclusive: PM Control to D3hot, accesses fail, back to D0.
    PmD3Window,
    /// Exclusive: Command.Memory off, BAR accesses fail, back on.
    DecodeOffWindow,
    /// Exclusive: close the device (all mappings) and open it again.
    Reopen,
}

/// Every operation with its weight (relative frequency, out of [`total_weight`]).
/// The exclusive ones are rare: each stops the device's other threads, and a reopen
/// makes the next touch of every DPA chunk scrub again (about 1 s per 2 MiB under TCG).
pub const WEIGHTS: &[(Op, u32)] = &[
    (Op::GetInfo, 300),
    (Op::GetInfoBad, 250),
    (Op::RegionInfo, 300),
    (Op::RegionInfoBad, 250),
    (Op::IrqInfo, 150),
    (Op::IrqInfoBad, 150),
    (Op::ConfigRead, 600),
    (Op::ConfigWriteDvsec, 500),
    (Op::ConfigWriteMisc, 150),
    (Op::BarRead, 500),
    (Op::BarWriteBlock, 250),
    (Op::CompRegsRead, 500),
    (Op::CompRegsWrite, 450),
    (Op::DpaRead, 900),
    (Op::DpaWrite, 900),
    (Op::DpaEdge, 200),
    (Op::Mmap, 250),
    (Op::Munmap, 200),
    (Op::MmapBad, 150),
    (Op::Touch, 1200),
    (Op::Reset, 40),
    (Op::LowPowerExitD0, 40),
    (Op::FeatureProbe, 100),
    (Op::FeatureBad, 200),
    (Op::IoeventfdBad, 200),
    (Op::DmaMap, 150),
    (Op::DmaUnmap, 150),
    (Op::DmaBad, 120),
    (Op::UnknownIoctl, 60),
    (Op::LowPowerWindow, 12),
    (Op::PmD3Window, 10),
    (Op::DecodeOffWindow, 10),
    (Op::Reopen, 3),
];

/// The sum of [`WEIGHTS`].
pub fn total_weight() -> u64 {
    WEIGHTS.iter().map(|&(_, w)| u64::from(w)).sum()
}

/// The operation whose cumulative weight range holds `ticket` (`0..total_weight()`).
pub fn op_for_ticket(ticket: u64) -> Op {
    let mut acc = 0u64;
    for &(op, w) in WEIGHTS {
        acc += u64::from(w);
        if ticket < acc {
            return op;
        }
    }
    WEIGHTS.last().expect("a non-empty table").0
}

/// Draws the next operation.
pub fn pick(rng: &mut Rng) -> Op {
    op_for_ticket(rng.below(total_weight()))
}

impl Op {
    /// Its name in logs and counts.
    pub fn name(self) -> &'static str {
        match self {
            Op::GetInfo => "get_info",
            Op::GetInfoBad => "get_info_bad",
            Op::RegionInfo => "region_info",
            Op::RegionInfoBad => "region_info_bad",
            Op::IrqInfo => "irq_info",
            Op::IrqInfoBad => "irq_info_bad",
            Op::ConfigRead => "config_read",
            Op::ConfigWriteDvsec => "config_write_dvsec",
            Op::ConfigWriteMisc => "config_write_misc",
            Op::BarRead => "bar_read",
            Op::BarWriteBlock => "bar_write_block",
            Op::CompRegsRead => "comp_regs_read",
            Op::CompRegsWrite => "comp_regs_write",
            Op::DpaRead => "dpa_read",
            Op::DpaWrite => "dpa_write",
            Op::DpaEdge => "dpa_edge",
            Op::Mmap => "mmap",
            Op::Munmap => "munmap",
            Op::MmapBad => "mmap_bad",
            Op::Touch => "touch",
            Op::Reset => "reset",
            Op::LowPowerExitD0 => "low_power_exit_d0",
            Op::FeatureProbe => "feature_probe",
            Op::FeatureBad => "feature_bad",
            Op::IoeventfdBad => "ioeventfd_bad",
            Op::DmaMap => "dma_map",
            Op::DmaUnmap => "dma_unmap",
            Op::DmaBad => "dma_bad",
            Op::UnknownIoctl => "unknown_ioctl",
            Op::LowPowerWindow => "low_power_window",
            Op::PmD3Window => "pm_d3_window",
            Op::DecodeOffWindow => "decode_off_window",
            Op::Reopen => "reopen",
        }
    }

    /// Whether it needs the device to itself (see the module docs).
    pub fn exclusive(self) -> bool {
        matches!(
            self,
            Op::LowPowerWindow | Op::PmD3Window | Op::DecodeOffWindow | Op::Reopen
        )
    }

    /// Its index in [`WEIGHTS`], for per-op counters.
    pub fn index(self) -> usize {
        WEIGHTS
            .iter()
            .position(|&(op, _)| op == self)
            .expect("every op is in the table")
    }
}

/// The table as text, one `name weight per-mille exclusive` line per op, for `--list-ops`.
pub fn describe_table() -> String {
    let total = total_weight() as f64;
    WEIGHTS
        .iter()
        .map(|&(op, w)| {
            format!(
                "{:<20} {:>5} {:>6.2}%{}\n",
                op.name(),
                w,
                100.0 * f64::from(w) / total,
                if op.exclusive() { "  exclusive" } else { "" }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_is_complete_and_unique() {
        let ops: HashSet<Op> = WEIGHTS.iter().map(|&(op, _)| op).collect();
        assert_eq!(ops.len(), WEIGHTS.len(), "an op listed twice");
        assert!(WEIGHTS.iter().all(|&(_, w)| w > 0));
        let names: HashSet<&str> = WEIGHTS.iter().map(|&(op, _)| op.name()).collect();
        assert_eq!(names.len(), WEIGHTS.len(), "two ops share a name");
        for (i, &(op, _)) in WEIGHTS.iter().enumerate() {
            assert_eq!(op.index(), i);
        }
    }

    #[test]
    fn tickets_follow_the_weights() {
        let mut at = 0u64;
        for &(op, w) in WEIGHTS {
            assert_eq!(op_for_ticket(at), op);
            assert_eq!(op_for_ticket(at + u64::from(w) - 1), op);
            at += u64::from(w);
        }
        assert_eq!(at, total_weight());
    }

    #[test]
    fn picks_match_weights_roughly() {
        let mut rng = Rng::new(1);
        let n = 200_000u64;
        let mut counts = vec![0u64; WEIGHTS.len()];
        for _ in 0..n {
            counts[pick(&mut rng).index()] += 1;
        }
        let total = total_weight() as f64;
        for (i, &(op, w)) in WEIGHTS.iter().enumerate() {
            let want = n as f64 * f64::from(w) / total;
            let got = counts[i] as f64;
            // Generous: 5 standard deviations plus a little.
            assert!(
                (got - want).abs() <= 5.0 * want.sqrt() + 5.0,
                "{}: {got} picks, expected about {want}",
                op.name()
            );
        }
    }

    #[test]
    fn exclusive_ops_are_rare() {
        let excl: u64 = WEIGHTS
            .iter()
            .filter(|(op, _)| op.exclusive())
            .map(|&(_, w)| u64::from(w))
            .sum();
        // Under 1%: each one stops the device's other threads.
        assert!(excl * 100 < total_weight(), "{excl} of {}", total_weight());
        assert!(describe_table().contains("reopen"));
    }
}
