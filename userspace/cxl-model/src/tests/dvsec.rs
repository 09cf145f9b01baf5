//! CXL Device DVSEC virtualization rules.

use std::vec::Vec;

use super::fixtures::*;
use crate::dvsec::*;
use crate::regs::*;

const BASE: u16 = 0x100;

/// A device and its shadow, accessed the way the kernel does.
struct Dev {
    hw: Cfg,
    shadow: DvsecShadow,
}

impl Dev {
    fn new(dvsec: DeviceDvsec) -> Self {
        let mut hw = Cfg::new(0xa5);
        dvsec.install(&mut hw, BASE);
        let shadow = DvsecShadow::new(BASE, &mut |p, s| hw.read(p, s)).expect("valid DVSEC");
        Self { hw, shadow }
    }

    /// Reads `len` bytes at DVSEC offset `off` (may be negative: before the DVSEC).
    fn rd(&mut self, off: i32, len: usize) -> u32 {
        let hw = &mut self.hw;
        self.shadow
            .read(pos(off), len, &mut |p, s| hw.read(p, s))
            .expect("valid read")
    }

    fn wr(&mut self, off: i32, len: usize, value: u32) -> DvsecWrite {
        let before = self.hw.bytes.clone();
        let result = self
            .shadow
            .write(pos(off), len, value)
            .expect("valid write");
        assert_eq!(
            self.hw.bytes, before,
            "the model itself never touches hardware"
        );
        result
    }

    fn reinit(&mut self) {
        let hw = &mut self.hw;
        self.shadow = DvsecShadow::new(BASE, &mut |p, s| hw.read(p, s)).expect("valid DVSEC");
    }
}

fn pos(off: i32) -> u16 {
    (i32::from(BASE) + off) as u16
}

const CONTROL: i32 = CXL_DVSEC_CONTROL_OFFSET as i32;
const STATUS: i32 = CXL_DVSEC_STATUS_OFFSET as i32;
const CONTROL2: i32 = CXL_DVSEC_CONTROL2_OFFSET as i32;
const STATUS2: i32 = CXL_DVSEC_STATUS2_OFFSET as i32;
const LOCK: i32 = CXL_DVSEC_LOCK_OFFSET as i32;
const R1_BASE_HI: i32 = CXL_DVSEC_RANGE1_BASE_HIGH_OFFSET as i32;
const R1_BASE_LO: i32 = CXL_DVSEC_RANGE1_BASE_LOW_OFFSET as i32;
const R2_BASE_HI: i32 = CXL_DVSEC_RANGE2_BASE_HIGH_OFFSET as i32;
const R2_BASE_LO: i32 = CXL_DVSEC_RANGE2_BASE_LOW_OFFSET as i32;

#[test]
fn initialises_from_the_qemu_device() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    assert_eq!(d.shadow.base(), BASE);
    assert_eq!(d.shadow.length(), 0x38);
    assert_eq!(d.shadow.capability(), 0x001e);
    assert!(d.shadow.mem_capable());
    assert!(!d.shadow.cache_capable());
    assert!(!d.shadow.config_locked());
    assert_eq!(d.rd(CONTROL, 2), 0x0002);
    // The header reads through: ext cap id 0x23, vendor 0x1e98, length 0x38.
    assert_eq!(d.rd(0, 2), 0x23);
    assert_eq!(d.rd(4, 4), 0x0381_1e98);
    assert_eq!(d.rd(8, 4), 0x001e_0000);
}

#[test]
fn rejects_what_is_not_a_device_dvsec() {
    let mut hw = Cfg::new(0);
    DeviceDvsec::qemu().install(&mut hw, BASE);
    hw.set(
        BASE + PCI_DVSEC_HEADER2,
        2,
        u32::from(CXL_DVSEC_REG_LOCATOR),
    );
    assert_eq!(
        DvsecShadow::new(BASE, &mut |p, s| hw.read(p, s)),
        Err(DvsecError::NotCxlDevice {
            vendor: PCI_VENDOR_ID_CXL,
            id: 8
        })
    );
    hw.dvsec_header(BASE, 0x8086, 0x38, 0);
    assert_eq!(
        DvsecShadow::new(BASE, &mut |p, s| hw.read(p, s)),
        Err(DvsecError::NotCxlDevice {
            vendor: 0x8086,
            id: 0
        })
    );
    hw.dvsec_header(BASE, PCI_VENDOR_ID_CXL, 0x34, 0);
    assert_eq!(
        DvsecShadow::new(BASE, &mut |p, s| hw.read(p, s)),
        Err(DvsecError::TooShort(0x34))
    );
    // 0xff8 and 0xffc: the header would be read past config space (found by the fuzz targets).
    for base in [0u16, 0xfc, 0x102, 0xff8, 0xffc, 0x1000, 0xffff] {
        assert_eq!(
            DvsecShadow::new(base, &mut |p, s| hw.read(p, s)),
            Err(DvsecError::BadPosition(base))
        );
    }
    hw.dvsec_header(0xfd0, PCI_VENDOR_ID_CXL, 0x38, 0);
    assert_eq!(
        DvsecShadow::new(0xfd0, &mut |p, s| hw.read(p, s)),
        Err(DvsecError::BadPosition(0xfd0)),
        "0xfd0 + 0x38 runs past config space"
    );
}

#[test]
fn control_forced_bits() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    d.wr(CONTROL, 2, 0xffff);
    // Bits 12 (no P2P capability), 13 and 15 stay 0.
    assert_eq!(d.rd(CONTROL, 2), 0x4fff);
    d.wr(CONTROL, 2, 0);
    assert_eq!(
        d.rd(CONTROL, 2),
        CXL_DVSEC_CTRL_IO_ENABLE.into(),
        "IO_Enable reads 1"
    );

    let mut d = Dev::new(DeviceDvsec::cxl3(CXL_DVSEC_CAP3_P2P_MEM_CAPABLE));
    d.wr(CONTROL, 2, 0xffff);
    assert_eq!(d.rd(CONTROL, 2), 0x5fff, "P2P Mem Enable allowed");
}

#[test]
fn control_starts_with_io_enable_and_without_forced_bits() {
    let mut d = Dev::new(DeviceDvsec {
        control: 0xb004,
        ..DeviceDvsec::qemu()
    });
    assert_eq!(d.rd(CONTROL, 2), 0x0006);
}

#[test]
fn control_and_lock_are_read_only_once_config_lock_is_set() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    d.wr(CONTROL, 2, 0x0006);
    d.wr(LOCK, 2, 0xffff);
    assert!(d.shadow.config_locked());
    assert_eq!(d.rd(LOCK, 2), 0x0001, "bits 15:1 forced to 0");
    d.wr(CONTROL, 2, 0x4003);
    d.wr(CONTROL + 1, 1, 0x40);
    assert_eq!(d.rd(CONTROL, 2), 0x0006);
    d.wr(LOCK, 2, 0);
    assert_eq!(d.rd(LOCK, 2), 0x0001, "one-shot until reset");
    // Re-initialisation after a reset reads the (unlocked) hardware again.
    d.reinit();
    assert_eq!(d.rd(LOCK, 2), 0);
    assert_eq!(d.rd(CONTROL, 2), 0x0002);
    d.wr(CONTROL, 2, 0x0006);
    assert_eq!(d.rd(CONTROL, 2), 0x0006);
}

#[test]
fn lock_reserved_bits_and_firmware_lock() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    d.wr(LOCK, 2, 0xfffe);
    assert_eq!(d.rd(LOCK, 2), 0, "reserved bits do not lock");
    assert!(!d.shadow.config_locked());
    // Firmware locked the hardware: the guest sees it locked from the start.
    let mut d = Dev::new(DeviceDvsec {
        lock: 0xff01,
        control: 0x0006,
        ..DeviceDvsec::qemu()
    });
    assert_eq!(d.rd(LOCK, 2), 0x0001);
    d.wr(CONTROL, 2, 0);
    assert_eq!(d.rd(CONTROL, 2), 0x0006);
}

#[test]
fn viral_status_is_write_one_to_clear() {
    let mut d = Dev::new(DeviceDvsec {
        status: 0x4001,
        ..DeviceDvsec::qemu()
    });
    assert_eq!(d.rd(STATUS, 2), 0x4001);
    d.wr(STATUS, 2, 0xbfff);
    assert_eq!(d.rd(STATUS, 2), 0x4001, "writing 0 to bit 14 keeps it");
    d.wr(STATUS, 2, 0xffff);
    assert_eq!(d.rd(STATUS, 2), 0x0001, "only bit 14 clears");
    d.wr(STATUS, 2, 0x4000);
    assert_eq!(d.rd(STATUS, 2), 0x0001, "and cannot be set");
}

#[test]
fn control2_forced_bits() {
    for (cap2, cap3, expected) in [
        (0, 0, 0x0009),
        (0, CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY, 0x0019),
        (CXL_DVSEC_CAP2_MOD_COMPLETION_CAPABLE, 0, 0x0029),
        (
            CXL_DVSEC_CAP2_MOD_COMPLETION_CAPABLE,
            CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY,
            0x0039,
        ),
    ] {
        let mut d = Dev::new(DeviceDvsec {
            cap2,
            ..DeviceDvsec::cxl3(cap3)
        });
        d.wr(CONTROL2, 2, 0xffff);
        assert_eq!(d.rd(CONTROL2, 2), expected, "cap2 {cap2:#x} cap3 {cap3:#x}");
    }
    // Bits 1 and 2 read 0 even when the hardware shows them.
    let mut d = Dev::new(DeviceDvsec {
        control2: 0x0007,
        ..DeviceDvsec::qemu()
    });
    assert_eq!(d.rd(CONTROL2, 2), 0x0001);
}

#[test]
fn cache_wbi_is_forwarded() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    let r = d.wr(CONTROL2, 2, 0x0003);
    let wbi = HwWrite {
        pos: BASE + CXL_DVSEC_CONTROL2_OFFSET,
        value: CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI,
    };
    assert_eq!(r.cache_wbi, Some(wbi));
    assert_eq!(r.hw_writes().collect::<Vec<_>>(), [wbi]);
    assert!(!r.cxl_reset_requested);
    assert_eq!(d.rd(CONTROL2, 2), 0x0001, "bit 1 reads 0, bit 0 stored");
    assert_eq!(
        d.wr(CONTROL2, 2, 0x0001),
        DvsecWrite::default(),
        "no WBI, no action"
    );
}

#[test]
fn cxl_reset_is_reported_not_forwarded() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    let r = d.wr(CONTROL2, 2, 0x0004);
    assert!(r.cxl_reset_requested);
    assert_eq!(r.hw_writes().count(), 0);
    assert_eq!(d.rd(CONTROL2, 2), 0);
    // A write to the high byte alone does not touch bit 2.
    assert!(!d.wr(CONTROL2 + 1, 1, 0xff).cxl_reset_requested);
}

#[test]
fn status2_write_one_to_clear_is_forwarded_only_when_capable() {
    let clear = HwWrite {
        pos: BASE + CXL_DVSEC_STATUS2_OFFSET,
        value: CXL_DVSEC_STATUS2_VOLATILE_HDM_PRES_ERROR,
    };
    let mut d = Dev::new(DeviceDvsec::cxl3(
        CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY,
    ));
    assert_eq!(
        d.wr(STATUS2, 2, 0x0008).clear_volatile_hdm_error,
        Some(clear)
    );
    assert_eq!(d.wr(STATUS2, 2, 0xfff7), DvsecWrite::default());

    let mut d = Dev::new(DeviceDvsec::cxl3(0));
    assert_eq!(d.wr(STATUS2, 2, 0xffff), DvsecWrite::default());

    // CXL 2.0 DVSEC (0x38 bytes): no Capability3, whatever the byte after the DVSEC holds.
    let mut d = Dev::new(DeviceDvsec::qemu());
    d.hw.set(BASE + 0x38, 2, 0xffff);
    d.reinit();
    assert_eq!(d.wr(STATUS2, 2, 0xffff), DvsecWrite::default());
}

#[test]
fn status2_reads_come_from_hardware() {
    let mut d = Dev::new(DeviceDvsec {
        status2: 0x8009,
        ..DeviceDvsec::cxl3(CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY)
    });
    assert_eq!(d.rd(STATUS2, 2), 0x8009);
    d.wr(STATUS2, 2, 0x0008);
    assert_eq!(
        d.rd(STATUS2, 2),
        0x8009,
        "the caller clears it on the device"
    );
    d.hw.set(BASE + CXL_DVSEC_STATUS2_OFFSET, 2, 0x8001);
    assert_eq!(d.rd(STATUS2, 2), 0x8001);
}

#[test]
fn range_bases_are_shadowed_and_start_at_zero() {
    // QEMU's firmware put range 1 at 0x2_9000_0000: the guest does not see it.
    let mut d = Dev::new(DeviceDvsec::qemu());
    assert_eq!(d.rd(R1_BASE_HI, 4), 0);
    assert_eq!(d.rd(R1_BASE_LO, 4), 0);
    for (hi, lo) in [(R1_BASE_HI, R1_BASE_LO), (R2_BASE_HI, R2_BASE_LO)] {
        d.wr(hi, 4, 0xdead_beef);
        d.wr(lo, 4, 0xffff_ffff);
        assert_eq!(d.rd(hi, 4), 0xdead_beef);
        assert_eq!(d.rd(lo, 4), 0xf000_0000, "bits 27:0 forced to 0");
        d.wr(lo + 3, 1, 0x20);
        assert_eq!(d.rd(lo, 4), 0x2000_0000);
    }
    assert_eq!(d.hw.get(BASE + 0x20, 4), 0x2, "hardware untouched");
}

#[test]
fn other_bytes_are_read_only_and_read_through() {
    let mut d = Dev::new(DeviceDvsec::cxl3(0x1f));
    let writable = |off: u16| (0xc..0x12).contains(&off) || (0x14..0x16).contains(&off);
    let shadowed =
        |off: u16| writable(off) || (0x20..0x28).contains(&off) || (0x30..0x38).contains(&off);
    for off in 0..0x3cu16 {
        if shadowed(off) {
            continue;
        }
        for value in [0xff, 0x00] {
            d.wr(i32::from(off), 1, value);
            assert_eq!(
                d.rd(i32::from(off), 1),
                d.hw.get(BASE + off, 1),
                "offset {off:#x}"
            );
        }
    }
    // Range sizes, capabilities and headers: reads follow the hardware.
    d.hw.set(BASE + 0x1c, 4, 0x2000_0003);
    assert_eq!(d.rd(0x1c, 4), 0x2000_0003);
}

#[test]
fn write_at_control_covering_status() {
    let mut d = Dev::new(DeviceDvsec {
        status: 0x4000,
        ..DeviceDvsec::qemu()
    });
    d.wr(CONTROL, 4, 0x4000_0004);
    assert_eq!(d.rd(CONTROL, 2), 0x0006, "Mem_Enable set, IO_Enable kept");
    assert_eq!(d.rd(STATUS, 2), 0, "viral status cleared by the same write");
}

#[test]
fn word_write_straddling_capability_and_control() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    d.wr(0xb, 2, 0x04ff);
    assert_eq!(d.rd(0xa, 2), 0x001e, "capability unchanged");
    assert_eq!(d.rd(CONTROL, 2), 0x0006, "control low byte written");
    d.wr(CONTROL + 1, 1, 0x40);
    assert_eq!(
        d.rd(CONTROL, 2),
        0x4006,
        "high byte merged with the low one"
    );
}

#[test]
fn dword_read_at_status2_covers_lock() {
    let mut d = Dev::new(DeviceDvsec {
        status2: 0x8001,
        cap2: 0x1234,
        ..DeviceDvsec::qemu()
    });
    d.wr(LOCK, 1, 1);
    assert_eq!(
        d.rd(STATUS2, 4),
        0x0001_8001,
        "status2 from hardware, lock from the shadow"
    );
    assert_eq!(
        d.rd(STATUS2 + 1, 4),
        0x3400_0180,
        "unaligned, over three registers"
    );
}

#[test]
fn dword_write_at_control2_covers_status2() {
    let mut d = Dev::new(DeviceDvsec::cxl3(
        CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY,
    ));
    let r = d.wr(CONTROL2, 4, 0x0008_0006);
    assert_eq!(r.hw_writes().count(), 2);
    assert!(r.cache_wbi.is_some());
    assert!(r.clear_volatile_hdm_error.is_some());
    assert!(r.cxl_reset_requested);
}

#[test]
fn word_write_straddling_status2_and_lock() {
    let mut d = Dev::new(DeviceDvsec::cxl3(
        CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY,
    ));
    let r = d.wr(STATUS2 + 1, 2, 0x01ff);
    assert_eq!(
        r,
        DvsecWrite::default(),
        "bit 3 is in the other byte of Status2"
    );
    assert!(d.shadow.config_locked());
}

#[test]
fn dword_write_straddling_range_base_registers() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    d.wr(R1_BASE_HI + 2, 4, 0xffff_abcd);
    assert_eq!(d.rd(R1_BASE_HI, 4), 0xabcd_0000);
    assert_eq!(d.rd(R1_BASE_LO, 4), 0x0000_0000, "bits 15:0 are reserved");
    d.wr(R1_BASE_LO - 1, 4, 0xf000_0000);
    assert_eq!(d.rd(R1_BASE_LO, 4), 0x0000_0000);
    d.wr(R1_BASE_LO + 1, 4, 0x0030_0000);
    assert_eq!(d.rd(R1_BASE_LO, 4), 0x3000_0000);
}

#[test]
fn bytes_outside_the_dvsec_are_handed_back() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    // Starts 2 bytes before the DVSEC: those go to the caller, the header bytes are dropped.
    let r = d.wr(-2, 4, 0x1234_5678);
    assert_eq!(
        r.outside,
        Some(PassThrough {
            pos: BASE - 2,
            len: 2,
            value: 0x5678
        })
    );
    assert_eq!(r.hw_writes().count(), 0);
    // Ends 3 bytes after it (the DVSEC is 0x38 bytes).
    let r = d.wr(0x35, 4, 0xaabb_ccdd);
    assert_eq!(
        r.outside,
        Some(PassThrough {
            pos: BASE + 0x38,
            len: 1,
            value: 0xaa
        })
    );
    assert_eq!(d.rd(R2_BASE_LO, 4), 0xb000_0000, "bytes 0x35..0x38 applied");
    // Reads outside come from the caller's config read, byte by byte.
    d.hw.set(BASE - 4, 4, 0x1122_3344);
    assert_eq!(d.rd(-2, 4), 0x0023_1122);
    // Entirely outside.
    let r = d.wr(0x40, 2, 0xbeef);
    assert_eq!(
        r.outside,
        Some(PassThrough {
            pos: BASE + 0x40,
            len: 2,
            value: 0xbeef
        })
    );
    assert!(!d.shadow.overlaps(BASE + 0x40, 2));
}

#[test]
fn overlap_test() {
    let d = Dev::new(DeviceDvsec::qemu());
    assert!(d.shadow.overlaps(BASE, 1));
    assert!(d.shadow.overlaps(BASE - 3, 4));
    assert!(!d.shadow.overlaps(BASE - 4, 4));
    assert!(d.shadow.overlaps(BASE + 0x37, 1));
    assert!(!d.shadow.overlaps(BASE + 0x38, 4));
    assert!(!d.shadow.overlaps(BASE, 0));
    assert!(d.shadow.overlaps(0, usize::MAX));
}

#[test]
fn bad_access_sizes_and_positions_are_refused() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    for len in [0, 3, 5, 8] {
        assert_eq!(d.shadow.write(BASE, len, 0), Err(DvsecError::BadSize(len)));
        let hw = &mut d.hw;
        assert_eq!(
            d.shadow.read(BASE, len, &mut |p, s| hw.read(p, s)),
            Err(DvsecError::BadSize(len))
        );
    }
    assert_eq!(
        d.shadow.write(0xffe, 4, 0),
        Err(DvsecError::OutOfRange(0xffe))
    );
    assert_eq!(
        d.shadow.write(0xffff, 1, 0),
        Err(DvsecError::OutOfRange(0xffff))
    );
    assert!(d.shadow.write(0xffc, 4, 0).is_ok());
}

#[test]
fn pass_through_registers_are_read_once_and_aligned() {
    let mut d = Dev::new(DeviceDvsec::qemu());
    d.hw.reads = 0;
    d.rd(0x19, 2);
    assert_eq!(
        d.hw.reads, 1,
        "one aligned dword read for Range 1 Size High"
    );
    d.hw.reads = 0;
    d.rd(CONTROL, 4);
    assert_eq!(d.hw.reads, 0, "Control and Status are shadowed");
}
