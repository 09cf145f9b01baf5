//! COMP_REGS region emulation rules.

use std::vec;
use std::vec::Vec;

use super::fixtures::*;
use crate::caparray::CapError;
use crate::comp_regs::*;
use crate::regs::*;

/// Byte offsets within a decoder's register set.
const BASE_LO: usize = CXL_HDM_DECODER_N_BASE_LOW_OFFSET;
const BASE_HI: usize = CXL_HDM_DECODER_N_BASE_HIGH_OFFSET;
const SIZE_LO: usize = CXL_HDM_DECODER_N_SIZE_LOW_OFFSET;
const SIZE_HI: usize = CXL_HDM_DECODER_N_SIZE_HIGH_OFFSET;
const CTRL: usize = CXL_HDM_DECODER_N_CTRL_OFFSET;
const LOCK: u32 = CXL_HDM_DECODER0_CTRL_LOCK;
const COMMIT: u32 = CXL_HDM_DECODER0_CTRL_COMMIT;
const COMMITTED: u32 = CXL_HDM_DECODER0_CTRL_COMMITTED;

/// A device's COMP_REGS region as the VMM sees it: the kernel's access path over the model.
struct Region {
    layout: HdmLayout,
    shadow: Vec<u32>,
}

impl Region {
    fn new(area: &[u32], cache_capable: bool) -> Self {
        let layout = HdmLayout::from_cm_area(area, cache_capable).expect("valid area");
        let mut shadow = vec![0; layout.region_dwords()];
        init_shadow(&mut shadow, area, &layout);
        Self { layout, shadow }
    }

    fn qemu() -> Self {
        Self::new(&qemu_cm_area(), false)
    }

    /// An access as the kernel performs it: check, then read or write one dword.
    fn rd(&self, offset: u64) -> u32 {
        let dword = self.layout.check_access(offset, 4).expect("valid read");
        read(&self.shadow, dword)
    }

    fn wr(&mut self, offset: u64, value: u32) {
        let dword = self.layout.check_access(offset, 4).expect("valid write");
        write(&mut self.shadow, &self.layout, dword, value);
    }

    /// Region offset of HDM block register `reg`.
    fn hdm(&self, reg: usize) -> u64 {
        (self.layout.hdm_offset() + reg) as u64
    }

    /// Region offset of decoder `n`'s register `reg`.
    fn dec(&self, n: usize, reg: usize) -> u64 {
        self.hdm(0x10 + 0x20 * n + reg)
    }
}

/// A 4-decoder area with HDM at 0x200 and capability bits `cap_bits`.
fn four_decoder_area(cap_bits: u32) -> Vec<u32> {
    cm_area_with_hdm(0x200, 0x2 | cap_bits)
}

#[test]
fn region_size_is_hdm_offset_plus_hdm_block() {
    let r = Region::qemu();
    assert_eq!(r.layout.hdm_offset(), 0x110);
    assert_eq!(r.layout.decoder_count(), 1);
    assert_eq!(r.layout.hdm_size(), 0x30);
    assert_eq!(r.layout.region_size(), 0x140);
    assert_eq!(r.layout.region_dwords(), 0x50);
    let layout = HdmLayout::from_cm_area(&cm_area_with_hdm(0x200, 0xc), false).unwrap();
    assert_eq!(layout.hdm_size(), 0x410);
    assert_eq!(layout.region_size(), 0x610);
}

#[test]
fn layout_constructor_validates() {
    assert!(HdmLayout::new(0x110, QEMU_HDM_CAP, false).is_ok());
    assert_eq!(
        HdmLayout::new(0x112, QEMU_HDM_CAP, false),
        Err(CapError::MisalignedPointer(0x112))
    );
    assert_eq!(
        HdmLayout::new(4, QEMU_HDM_CAP, false),
        Err(CapError::HdmOverlapsArray(4))
    );
    assert_eq!(
        HdmLayout::new(0xfd0, 0, false).map(|l| l.region_size()),
        Ok(0x1000)
    );
    assert_eq!(
        HdmLayout::new(0xfd4, 0, false),
        Err(CapError::HdmOutsideArea(0xfd4))
    );
    assert_eq!(
        HdmLayout::new(usize::MAX - 3, 0, false),
        Err(CapError::HdmOutsideArea(usize::MAX - 3))
    );
    assert_eq!(
        HdmLayout::new(0x100, 0xd, false),
        Err(CapError::BadDecoderCount(0xd))
    );
    let layout = HdmLayout::new(0x110, QEMU_HDM_CAP, true).unwrap();
    assert!(layout.cache_capable());
    assert_eq!(layout.cap(), QEMU_HDM_CAP);
}

#[test]
fn access_check_allows_only_aligned_dwords_inside_the_region() {
    let size = 0x140;
    assert_eq!(check_access(0, 4, size), Ok(0));
    assert_eq!(check_access(0x13c, 4, size), Ok(0x4f), "last dword");
    for len in [0, 1, 2, 3, 5, 8, 16, 4096] {
        assert_eq!(
            check_access(0, len, size),
            Err(AccessError::Size(len)),
            "len {len}"
        );
    }
    for offset in [1, 2, 3, 0x111, 0x13f] {
        assert_eq!(
            check_access(offset, 4, size),
            Err(AccessError::Misaligned(offset))
        );
    }
    assert_eq!(
        check_access(0x140, 4, size),
        Err(AccessError::OutOfRange(0x140)),
        "at end"
    );
    assert_eq!(
        check_access(0x144, 4, size),
        Err(AccessError::OutOfRange(0x144))
    );
    assert_eq!(
        check_access(u64::MAX, 4, size),
        Err(AccessError::Misaligned(u64::MAX))
    );
    let top = !3u64;
    assert_eq!(
        check_access(top, 4, size),
        Err(AccessError::OutOfRange(top))
    );
    assert_eq!(
        check_access(1 << 40, 4, size),
        Err(AccessError::OutOfRange(1 << 40))
    );
    // The size is checked first: an 8-byte access is refused even where 4 bytes would fit.
    assert_eq!(check_access(8, 8, size), Err(AccessError::Size(8)));
    assert_eq!(check_access(0, 4, 0), Err(AccessError::OutOfRange(0)));
}

#[test]
fn reads_return_the_shadow() {
    let r = Region::qemu();
    let area = qemu_cm_area();
    for offset in (0..0x140).step_by(4) {
        assert_eq!(
            r.rd(offset),
            area[offset as usize / 4],
            "offset {offset:#x}"
        );
    }
    assert_eq!(
        r.rd(0),
        0x0311_0001,
        "the array header is visible at offset 0"
    );
    assert_eq!(r.rd(0x110), QEMU_HDM_CAP);
    assert_eq!(read(&r.shadow, 0x50), 0, "past the shadow");
    assert_eq!(read(&r.shadow, usize::MAX), 0);
}

#[test]
fn writes_below_the_hdm_block_are_discarded() {
    let mut r = Region::qemu();
    let before = r.shadow.clone();
    for offset in (0..0x110).step_by(4) {
        r.wr(offset, 0xffff_ffff);
        r.wr(offset, 0);
    }
    assert_eq!(r.shadow, before);
}

#[test]
fn hdm_capability_and_reserved_dwords_are_read_only() {
    let mut area = qemu_cm_area();
    set_hdm(&mut area, 0x110, 0x8, 0x1234_5678);
    set_hdm(&mut area, 0x110, 0xc, 0x9abc_def0);
    let mut r = Region::new(&area, false);
    for reg in [0x0, 0x8, 0xc] {
        r.wr(r.hdm(reg), 0xffff_ffff);
        r.wr(r.hdm(reg), 0);
    }
    assert_eq!(r.rd(r.hdm(0)), QEMU_HDM_CAP);
    assert_eq!(r.rd(r.hdm(0x8)), 0x1234_5678);
    assert_eq!(r.rd(r.hdm(0xc)), 0x9abc_def0);
}

#[test]
fn global_control_forces_reserved_bits_and_unsupported_poison_to_zero() {
    let mut r = Region::qemu(); // no poison-on-decode-error capability
    r.wr(r.hdm(4), 0xffff_ffff);
    assert_eq!(r.rd(r.hdm(4)), CXL_HDM_DECODER_ENABLE);
    r.wr(r.hdm(4), 0);
    assert_eq!(r.rd(r.hdm(4)), 0);

    let mut r = Region::new(
        &four_decoder_area(CXL_HDM_DECODER_POISON_ON_DECODE_ERR),
        false,
    );
    r.wr(r.hdm(4), 0xffff_ffff);
    assert_eq!(
        r.rd(r.hdm(4)),
        CXL_HDM_DECODER_ENABLE | CXL_HDM_DECODER_GLOBAL_CTRL_POISON_EN_BIT
    );
    r.wr(r.hdm(4), 0x1);
    assert_eq!(r.rd(r.hdm(4)), 0x1, "poison enable alone");
}

#[test]
fn base_and_size_low_keep_bits_31_28_high_keep_all() {
    let mut r = Region::new(&four_decoder_area(0), false);
    for n in 0..4 {
        r.wr(r.dec(n, BASE_LO), 0xffff_ffff);
        r.wr(r.dec(n, SIZE_LO), 0x1234_5678);
        r.wr(r.dec(n, BASE_HI), 0xdead_beef);
        r.wr(r.dec(n, SIZE_HI), 0xffff_ffff);
        assert_eq!(r.rd(r.dec(n, BASE_LO)), 0xf000_0000);
        assert_eq!(r.rd(r.dec(n, SIZE_LO)), 0x1000_0000);
        assert_eq!(r.rd(r.dec(n, BASE_HI)), 0xdead_beef);
        assert_eq!(r.rd(r.dec(n, SIZE_HI)), 0xffff_ffff);
    }
}

#[test]
fn high_registers_are_frozen_while_locked() {
    let mut r = Region::new(&four_decoder_area(0), false);
    r.wr(r.dec(2, BASE_HI), 0x1);
    r.wr(r.dec(2, SIZE_HI), 0x2);
    r.wr(r.dec(2, CTRL), LOCK | COMMIT);
    r.wr(r.dec(2, BASE_HI), 0xaaaa_aaaa);
    r.wr(r.dec(2, SIZE_HI), 0xbbbb_bbbb);
    assert_eq!(r.rd(r.dec(2, BASE_HI)), 0x1);
    assert_eq!(r.rd(r.dec(2, SIZE_HI)), 0x2);
    // Other decoders are not affected by decoder 2's lock.
    r.wr(r.dec(1, BASE_HI), 0xcccc_cccc);
    assert_eq!(r.rd(r.dec(1, BASE_HI)), 0xcccc_cccc);
    // Unlocking makes them writable again.
    r.wr(r.dec(2, CTRL), 0);
    r.wr(r.dec(2, BASE_HI), 0xaaaa_aaaa);
    assert_eq!(r.rd(r.dec(2, BASE_HI)), 0xaaaa_aaaa);
}

#[test]
fn low_registers_are_frozen_while_locked_too() {
    // Base and Size are RWL in the CXL spec, Low words included (the seed checked only High).
    let mut r = Region::new(&four_decoder_area(0), false);
    r.wr(r.dec(0, BASE_LO), 0x1000_0000);
    r.wr(r.dec(0, SIZE_LO), 0x2000_0000);
    r.wr(r.dec(0, CTRL), LOCK);
    r.wr(r.dec(0, BASE_LO), 0x3fff_ffff);
    r.wr(r.dec(0, SIZE_LO), 0x5000_0001);
    assert_eq!(r.rd(r.dec(0, BASE_LO)), 0x1000_0000);
    assert_eq!(r.rd(r.dec(0, SIZE_LO)), 0x2000_0000);
    // Unlocked, they take bits 31:28 again.
    r.wr(r.dec(0, CTRL), 0);
    r.wr(r.dec(0, BASE_LO), 0x3fff_ffff);
    assert_eq!(r.rd(r.dec(0, BASE_LO)), 0x3000_0000);
}

#[test]
fn locked_control_accepts_only_unlocking() {
    let mut r = Region::new(&four_decoder_area(0), false);
    let locked = LOCK | COMMIT | 0x23; // IW 2, IG 3
    r.wr(r.dec(0, CTRL), locked);
    assert_eq!(r.rd(r.dec(0, CTRL)), locked | COMMITTED);
    // LOCK = 1: the whole write is ignored, even bits that would otherwise change.
    r.wr(r.dec(0, CTRL), LOCK);
    r.wr(r.dec(0, CTRL), 0xffff_ffff);
    assert_eq!(r.rd(r.dec(0, CTRL)), locked | COMMITTED);
    // LOCK = 0: LOCK clears and every other bit stays, whatever else the write says.
    r.wr(r.dec(0, CTRL), 0xffff_feff);
    assert_eq!(r.rd(r.dec(0, CTRL)), COMMIT | COMMITTED | 0x23);
    // Unlocked now: the next write applies normally.
    r.wr(r.dec(0, CTRL), 0);
    assert_eq!(r.rd(r.dec(0, CTRL)), 0);
}

#[test]
fn control_forced_zero_bits_depend_on_capabilities() {
    // All ones minus LOCK (so each write applies), for each capability combination.
    let all = !LOCK;
    // IG, IW, COMMIT and COMMITTED (mirrored) remain; 11 and 12 keep their 0.
    let base = 0x0000_02ff | COMMITTED;
    for (uio, cache, expected) in [
        (false, false, base),
        (true, false, base | (1 << 14) | 0x0f00_0000),
        (false, true, base | (1 << 13)),
        (true, true, base | (1 << 13) | (1 << 14) | 0x0f00_0000),
    ] {
        let cap = if uio { CXL_HDM_DECODER_UIO_CAPABLE } else { 0 };
        let mut r = Region::new(&four_decoder_area(cap), cache);
        r.wr(r.dec(3, CTRL), all);
        let got = r.rd(r.dec(3, CTRL));
        assert_eq!(got, expected, "uio {uio} cache {cache}: {got:#x}");
        // Bits 15, 19:16, 23:20 and 31:28 never come through.
        assert_eq!(got & 0xf0ff_8000, 0);
    }
}

#[test]
fn control_read_only_bits_keep_their_value() {
    let mut area = four_decoder_area(0);
    let err_and_type = CXL_HDM_DECODER0_CTRL_COMMIT_ERROR | CXL_HDM_DECODER0_CTRL_HOSTONLY;
    set_hdm(&mut area, 0x200, 0x10 + CTRL, err_and_type);
    let mut r = Region::new(&area, false);
    r.wr(r.dec(0, CTRL), 0);
    assert_eq!(r.rd(r.dec(0, CTRL)), err_and_type, "cannot be cleared");
    r.wr(r.dec(1, CTRL), err_and_type);
    assert_eq!(r.rd(r.dec(1, CTRL)), 0, "cannot be set");
}

#[test]
fn committed_mirrors_commit() {
    let mut r = Region::new(&four_decoder_area(0), false);
    r.wr(r.dec(1, CTRL), COMMIT);
    assert_eq!(r.rd(r.dec(1, CTRL)), COMMIT | COMMITTED);
    r.wr(r.dec(1, CTRL), 0);
    assert_eq!(r.rd(r.dec(1, CTRL)), 0, "uncommit");
    r.wr(r.dec(1, CTRL), COMMITTED);
    assert_eq!(r.rd(r.dec(1, CTRL)), 0, "COMMITTED alone is not a commit");
}

#[test]
fn target_list_skip_and_reserved_dwords_are_discarded() {
    let mut area = four_decoder_area(0);
    for (i, reg) in [0x14, 0x18, 0x1c].into_iter().enumerate() {
        set_hdm(&mut area, 0x200, 0x10 + 0x20 + reg, 0x100 + i as u32);
    }
    let mut r = Region::new(&area, false);
    for reg in [0x14, 0x18, 0x1c] {
        r.wr(r.dec(1, reg), 0xffff_ffff);
    }
    assert_eq!(r.rd(r.dec(1, 0x14)), 0x100);
    assert_eq!(r.rd(r.dec(1, 0x18)), 0x101);
    assert_eq!(r.rd(r.dec(1, 0x1c)), 0x102);
}

#[test]
fn registers_beyond_the_decoder_count_are_discarded() {
    // Two decoders, but a shadow with room for more (as if the block were larger).
    let area = cm_area_with_hdm(0x200, 0x1);
    let layout = HdmLayout::from_cm_area(&area, true).unwrap();
    assert_eq!(layout.decoder_count(), 2);
    let mut shadow = vec![0x5a5a_5a5a; layout.region_dwords() + 0x40];
    init_shadow(&mut shadow[..layout.region_dwords()], &area, &layout);
    let tail = shadow[layout.region_dwords()..].to_vec();
    for dword in layout.region_dwords()..shadow.len() + 8 {
        write(&mut shadow, &layout, dword, 0xffff_ffff);
        write(&mut shadow, &layout, dword, 0);
    }
    assert_eq!(&shadow[layout.region_dwords()..], &tail[..]);
    write(&mut shadow, &layout, usize::MAX, 0xffff_ffff);
    write(&mut shadow, &layout, usize::MAX / 4 + 1, 0xffff_ffff);
}

/// The QEMU area with decoder 0 committed by firmware at `hpa`, 256 MiB, with `ctrl`.
fn firmware_area(hpa: u64, ctrl: u32) -> Vec<u32> {
    let mut area = qemu_cm_area();
    set_hdm(&mut area, 0x110, 0x10 + BASE_LO, hpa as u32);
    set_hdm(&mut area, 0x110, 0x10 + BASE_HI, (hpa >> 32) as u32);
    set_hdm(&mut area, 0x110, 0x10 + SIZE_LO, 0x1000_0000);
    set_hdm(&mut area, 0x110, 0x10 + SIZE_HI, 0);
    set_hdm(&mut area, 0x110, 0x10 + CTRL, ctrl);
    area
}

#[test]
fn firmware_committed_decoder_shows_lock_clear_and_base_zero() {
    let hpa = 0x2_9000_0000;
    let area = firmware_area(hpa, COMMIT | COMMITTED | LOCK);
    let layout = HdmLayout::from_cm_area(&area, false).unwrap();
    assert_eq!(
        firmware_decoder(&area, &layout),
        Some(FirmwareDecoder {
            base: hpa,
            size: 0x1000_0000
        })
    );
    let mut r = Region::new(&area, false);
    assert_eq!(r.rd(r.dec(0, BASE_LO)), 0);
    assert_eq!(r.rd(r.dec(0, BASE_HI)), 0);
    assert_eq!(
        r.rd(r.dec(0, SIZE_LO)),
        0x1000_0000,
        "the size is not secret"
    );
    assert_eq!(r.rd(r.dec(0, CTRL)), COMMIT | COMMITTED, "LOCK reads clear");

    // QEMU's setup_locked_hdm(): clear LOCK, program the guest base, commit and lock.
    let gpa = 0x1_0000_0000u64;
    r.wr(r.dec(0, CTRL), COMMIT | COMMITTED);
    r.wr(r.dec(0, BASE_LO), gpa as u32);
    r.wr(r.dec(0, BASE_HI), (gpa >> 32) as u32);
    r.wr(r.dec(0, CTRL), COMMIT | LOCK);
    assert_eq!(r.rd(r.dec(0, CTRL)), COMMIT | COMMITTED | LOCK);
    assert_eq!(r.rd(r.dec(0, BASE_HI)), 1);
    r.wr(r.dec(0, BASE_HI), 0x7);
    assert_eq!(r.rd(r.dec(0, BASE_HI)), 1, "locked now");
    for offset in (0..0x140).step_by(4) {
        assert_ne!(r.rd(offset), 0x2, "HPA bits 63:32 leaked at {offset:#x}");
    }
}

#[test]
fn firmware_base_is_hidden_even_without_lock() {
    let area = firmware_area(0x7_3000_0000, COMMIT | COMMITTED);
    let r = Region::new(&area, false);
    assert_eq!(r.rd(r.dec(0, BASE_LO)), 0);
    assert_eq!(r.rd(r.dec(0, BASE_HI)), 0);
    assert_eq!(r.rd(r.dec(0, CTRL)), COMMIT | COMMITTED);
}

#[test]
fn uncommitted_decoder_keeps_lock_but_hides_base() {
    let area = firmware_area(0x7_3000_0000, LOCK);
    let r = Region::new(&area, false);
    assert_eq!(r.rd(r.dec(0, CTRL)), LOCK);
    assert_eq!(r.rd(r.dec(0, BASE_LO)), 0);
    assert_eq!(r.rd(r.dec(0, BASE_HI)), 0);
    let layout = HdmLayout::from_cm_area(&area, false).unwrap();
    assert_eq!(firmware_decoder(&area, &layout), None, "not committed");
}

#[test]
fn firmware_decoder_needs_a_size_and_ignores_reserved_bits() {
    let mut area = firmware_area(0x2_9000_0000, COMMITTED);
    let layout = HdmLayout::from_cm_area(&area, false).unwrap();
    set_hdm(&mut area, 0x110, 0x10 + SIZE_LO, 0x0fff_ffff);
    assert_eq!(
        firmware_decoder(&area, &layout),
        None,
        "size 0 once bits 27:0 go"
    );
    set_hdm(&mut area, 0x110, 0x10 + SIZE_LO, 0x0fff_ffff);
    set_hdm(&mut area, 0x110, 0x10 + SIZE_HI, 0x1);
    set_hdm(&mut area, 0x110, 0x10 + BASE_LO, 0x9fff_ffff);
    assert_eq!(
        firmware_decoder(&area, &layout),
        Some(FirmwareDecoder {
            base: 0x2_9000_0000,
            size: 0x1_0000_0000
        })
    );
    // A snapshot too short to hold decoder 0.
    assert_eq!(firmware_decoder(&area[..0x120 / 4], &layout), None);
}

#[test]
fn every_firmware_committed_decoder_is_hidden() {
    let mut area = cm_area_with_hdm(0x200, 0x2); // 4 decoders
    for n in 0..4 {
        let dec = 0x10 + 0x20 * n;
        set_hdm(&mut area, 0x200, dec + BASE_LO, 0x4000_0000);
        set_hdm(&mut area, 0x200, dec + BASE_HI, 0x40 + n as u32);
        set_hdm(&mut area, 0x200, dec + CTRL, COMMIT | COMMITTED | LOCK);
    }
    let r = Region::new(&area, false);
    for n in 0..4 {
        assert_eq!(r.rd(r.dec(n, BASE_LO)), 0);
        assert_eq!(r.rd(r.dec(n, BASE_HI)), 0);
        assert_eq!(r.rd(r.dec(n, CTRL)), COMMIT | COMMITTED);
    }
}

#[test]
fn init_shadow_takes_the_layout_capability_and_zero_fills() {
    let area = qemu_cm_area();
    let layout = HdmLayout::from_cm_area(&area, false).unwrap();
    let mut shadow = vec![0xffff_ffff; layout.region_dwords()];
    // A snapshot that stops before the HDM block, and whose cap dword would be garbage.
    init_shadow(&mut shadow, &area[..0x100 / 4], &layout);
    assert_eq!(&shadow[..0x100 / 4], &area[..0x100 / 4]);
    assert_eq!(shadow[0x110 / 4], QEMU_HDM_CAP);
    assert!(shadow[0x100 / 4..0x110 / 4].iter().all(|&w| w == 0));
    assert!(shadow[0x114 / 4..].iter().all(|&w| w == 0));
    // Re-initialisation (after a reset) discards what the guest wrote.
    let mut r = Region::qemu();
    r.wr(r.dec(0, BASE_HI), 0x1234);
    init_shadow(&mut r.shadow, &area, &r.layout);
    assert_eq!(r.rd(r.dec(0, BASE_HI)), 0);
}
