//! Capability array, HDM decoder count and Register Locator parsing.

use std::vec;
use std::vec::Vec;

use super::fixtures::*;
use crate::caparray::*;
use crate::regs::*;

#[test]
fn qemu_layout_decodes_header_entries_and_hdm() {
    let area = qemu_cm_area();
    assert_eq!(area[0], 0x0311_0001, "QEMU's array header");
    let array = CapArray::parse(&area).expect("QEMU's array is valid");
    assert_eq!(
        array.header(),
        CapArrayHeader {
            id: 1,
            version: 1,
            cache_mem_version: 1,
            array_size: 3
        }
    );
    let entries: Vec<_> = array
        .entries()
        .map(|e| (e.id, e.version, e.offset))
        .collect();
    assert_eq!(entries, [(2, 2, 0x80), (4, 2, 0xd8), (5, 1, 0x110)]);
    assert_eq!(
        find_hdm(&area),
        Ok(HdmInfo {
            offset: 0x110,
            decoder_count: 1,
            cap: QEMU_HDM_CAP
        })
    );
    assert_eq!(
        array.find(CXL_CM_CAP_CAP_ID_LINK).map(|e| e.offset),
        Some(0xd8)
    );
}

#[test]
fn header_must_carry_capability_id_1() {
    for id in [0u32, 2, 5, 0xffff] {
        let mut area = qemu_cm_area();
        area[0] = (area[0] & !0xffff) | id;
        assert_eq!(find_hdm(&area), Err(CapError::BadHeaderId(id as u16)));
    }
}

#[test]
fn empty_area_and_empty_array_are_rejected() {
    assert_eq!(find_hdm(&[]), Err(CapError::AreaEmpty));
    let mut area = qemu_cm_area();
    area[0] = cap_header(0);
    assert_eq!(find_hdm(&area), Err(CapError::EmptyArray));
}

#[test]
fn array_must_fit_in_the_block() {
    // Header plus 3 entries need 4 dwords: a 3-dword block is too small...
    let area = qemu_cm_area();
    assert_eq!(
        CapArray::parse(&area[..3]).err(),
        Some(CapError::ArrayTooLarge(3))
    );
    // ...and the largest array size cannot walk off a 4 KiB block either.
    let mut small = vec![cap_header(255)];
    small.extend(core::iter::repeat(cap_entry(2, 1, 0)).take(254));
    assert_eq!(
        CapArray::parse(&small).err(),
        Some(CapError::ArrayTooLarge(255))
    );
    small.push(cap_entry(2, 1, 0));
    assert!(
        CapArray::parse(&small).is_ok(),
        "255 entries in 256 dwords fit"
    );
}

#[test]
fn every_pointer_must_stay_inside_the_block() {
    // A 0x200-byte block: the RAS pointer is fine, a link pointer at 0x200 is not.
    let mut area = qemu_cm_area();
    area.truncate(0x200 / 4);
    area[2] = cap_entry(CXL_CM_CAP_CAP_ID_LINK, 2, 0x200);
    assert_eq!(find_hdm(&area), Err(CapError::PointerOutsideArea(0x200)));
    // The last dword of the block is a valid target.
    area[2] = cap_entry(CXL_CM_CAP_CAP_ID_LINK, 2, 0x1fc);
    assert!(CapArray::parse(&area).is_ok());
    // Even an entry that is not the HDM one is checked: the largest pointer, 0xffc, is outside
    // a 0x200-byte block.
    area[1] = cap_entry(CXL_CM_CAP_CAP_ID_RAS, 2, 0xffc);
    assert_eq!(
        CapArray::parse(&area).err(),
        Some(CapError::PointerOutsideArea(0xffc))
    );
}

#[test]
fn misaligned_pointer_is_rejected() {
    let mut area = qemu_cm_area();
    area[3] = cap_entry(CXL_CM_CAP_CAP_ID_HDM, 1, 0x112);
    assert_eq!(find_hdm(&area), Err(CapError::MisalignedPointer(0x112)));
}

#[test]
fn missing_hdm_capability_is_reported() {
    let mut area = qemu_cm_area();
    area[0] = cap_header(2); // RAS and link only
    assert_eq!(find_hdm(&area), Err(CapError::NoHdm));
}

#[test]
fn hdm_block_must_not_overlap_the_array() {
    let mut area = qemu_cm_area();
    area[3] = cap_entry(CXL_CM_CAP_CAP_ID_HDM, 1, 0xc); // the HDM entry itself
    assert_eq!(find_hdm(&area), Err(CapError::HdmOverlapsArray(0xc)));
    area[3] = cap_entry(CXL_CM_CAP_CAP_ID_HDM, 1, 0x10); // first dword after the array
    area[4] = QEMU_HDM_CAP;
    assert_eq!(find_hdm(&area).map(|h| h.offset), Ok(0x10));
}

#[test]
fn hdm_block_with_all_decoders_must_fit_in_the_block() {
    // One decoder is 0x30 bytes: at 0xfd0 it ends exactly at 0x1000.
    let area = cm_area_with_hdm(0xfd0, 0);
    assert_eq!(find_hdm(&area).map(|h| h.decoder_count), Ok(1));
    // Two decoders (0x50 bytes) run past the end.
    let area = cm_area_with_hdm(0xfd0, 1);
    assert_eq!(find_hdm(&area), Err(CapError::HdmOutsideArea(0xfd0)));
    // 32 decoders need 0x410 bytes.
    let area = cm_area_with_hdm(0x1000 - 0x410, 0xc);
    assert_eq!(find_hdm(&area).map(|h| h.decoder_count), Ok(32));
    let area = cm_area_with_hdm(0x1000 - 0x40c, 0xc);
    assert_eq!(
        find_hdm(&area),
        Err(CapError::HdmOutsideArea(0x1000 - 0x40c))
    );
    // A shorter snapshot is a smaller block.
    let area = cm_area_with_hdm(0x110, 0);
    assert_eq!(
        find_hdm(&area[..0x13c / 4]),
        Err(CapError::HdmOutsideArea(0x110))
    );
    assert!(find_hdm(&area[..0x140 / 4]).is_ok());
}

#[test]
fn decoder_count_encodings() {
    // CXL r3.1 8.2.4.20.1: 0 -> 1, 1..=8 -> 2n, 9..=0xc -> 20, 24, 28, 32, 0xd..=0xf reserved.
    let expected: [Option<usize>; 16] = [
        Some(1),
        Some(2),
        Some(4),
        Some(6),
        Some(8),
        Some(10),
        Some(12),
        Some(14),
        Some(16),
        Some(20),
        Some(24),
        Some(28),
        Some(32),
        None,
        None,
        None,
    ];
    for (encoding, want) in expected.iter().enumerate() {
        // Only bits 3:0 count: set every other bit too.
        let cap = 0xffff_fff0 | encoding as u32;
        assert_eq!(
            decoder_count(cap),
            want.ok_or(CapError::BadDecoderCount(encoding as u8)),
            "encoding {encoding:#x}"
        );
        // The parser applies the same rule to the capability it finds.
        let area = cm_area_with_hdm(0x100, cap);
        assert_eq!(
            find_hdm(&area).map(|h| h.decoder_count),
            want.ok_or(CapError::BadDecoderCount(encoding as u8))
        );
    }
    assert_eq!(hdm_block_size(1), 0x30);
    assert_eq!(hdm_block_size(32), CXL_HDM_MAX_SIZE);
    assert_eq!(CXL_HDM_MAX_SIZE, 0x410);
}

#[test]
fn dvsec_header_decodes() {
    // QEMU's Device DVSEC: vendor 0x1e98, revision 1, length 0x38; Header 2 carries id 0 and
    // the Capability register above it.
    let h = DvsecHeader::decode(0x0381_1e98, 0x001e_0000);
    assert_eq!(
        h,
        DvsecHeader {
            vendor: PCI_VENDOR_ID_CXL,
            revision: 1,
            length: 0x38,
            id: 0
        }
    );
    assert_eq!(DvsecHeader::decode(0xfff2_abcd, 0xffff_0008).length, 0xfff);
    assert_eq!(DvsecHeader::decode(0xfff2_abcd, 0xffff_0008).revision, 2);
    assert_eq!(DvsecHeader::decode(0xfff2_abcd, 0xffff_0008).id, 8);
}

/// Lays out a Register Locator DVSEC at `base` with `entries` (lo, hi) and `length`.
fn regloc(cfg: &mut Cfg, base: u16, length: u16, entries: &[(u32, u32)]) {
    cfg.dvsec_header(base, PCI_VENDOR_ID_CXL, length, CXL_DVSEC_REG_LOCATOR);
    for (i, (lo, hi)) in entries.iter().enumerate() {
        let pos = base + 0xc + 8 * i as u16;
        cfg.set(pos, 4, *lo);
        cfg.set(pos + 4, 4, *hi);
    }
}

/// Register Offset Low for BAR `bir`, block `id`, offset bits 31:16 from `offset`.
const fn reg_lo(bir: u32, id: u32, offset: u32) -> u32 {
    (offset & 0xffff_0000) | (id << 8) | bir
}

#[test]
fn register_locator_entry_decoding() {
    let b = RegBlock::decode(reg_lo(5, 1, 0x1234_0000) | 0xf8, 0x9);
    assert_eq!(
        b,
        RegBlock {
            bir: 5,
            block_id: 1,
            offset: 0x9_1234_0000
        }
    );
    assert_eq!(RegBlock::decode(0x0000_ff07, 0).block_id, 0xff);
    assert_eq!(RegBlock::decode(0x0000_ff07, 0).bir, 7);
}

#[test]
fn register_locator_entry_count() {
    assert_eq!(reg_locator_entry_count(0x24), 3);
    assert_eq!(
        reg_locator_entry_count(0x23),
        2,
        "a partial entry is not an entry"
    );
    assert_eq!(reg_locator_entry_count(0x14), 1);
    assert_eq!(reg_locator_entry_count(0x13), 0);
    assert_eq!(reg_locator_entry_count(0xc), 0);
    assert_eq!(reg_locator_entry_count(0), 0);
}

#[test]
fn finds_qemu_component_registers() {
    // QEMU: Register Locator at 0x138; component registers in BAR0 at 0, device registers in
    // BAR2 at 0.
    let mut cfg = Cfg::new(0);
    regloc(
        &mut cfg,
        0x138,
        0x1c,
        &[
            (reg_lo(0, CXL_REGLOC_RBI_COMPONENT.into(), 0), 0),
            (reg_lo(2, CXL_REGLOC_RBI_MEMDEV.into(), 0), 0),
        ],
    );
    let found = find_component_regs(0x138, &mut |p, s| cfg.read(p, s));
    assert_eq!(
        found,
        Ok(RegBlock {
            bir: 0,
            block_id: 1,
            offset: 0
        })
    );
    let memdev = find_reg_block(0x138, CXL_REGLOC_RBI_MEMDEV, &mut |p, s| cfg.read(p, s));
    assert_eq!(memdev.map(|b| b.bir), Ok(2));
}

#[test]
fn component_block_after_other_entries_and_high_offset() {
    let mut cfg = Cfg::new(0);
    regloc(
        &mut cfg,
        0x200,
        0x24,
        &[
            (reg_lo(2, CXL_REGLOC_RBI_MEMDEV.into(), 0), 0),
            (reg_lo(4, CXL_REGLOC_RBI_PMU.into(), 0x1_0000), 0),
            (reg_lo(4, CXL_REGLOC_RBI_COMPONENT.into(), 0x8_0000), 0x1),
        ],
    );
    assert_eq!(
        find_component_regs(0x200, &mut |p, s| cfg.read(p, s)),
        Ok(RegBlock {
            bir: 4,
            block_id: 1,
            offset: 0x1_0008_0000
        })
    );
}

#[test]
fn entries_past_the_dvsec_length_are_not_read() {
    let mut cfg = Cfg::new(0);
    // Length 0x14 holds one entry; the component entry is the second one.
    regloc(
        &mut cfg,
        0x200,
        0x14,
        &[
            (reg_lo(2, CXL_REGLOC_RBI_MEMDEV.into(), 0), 0),
            (reg_lo(0, CXL_REGLOC_RBI_COMPONENT.into(), 0), 0),
        ],
    );
    assert_eq!(
        find_component_regs(0x200, &mut |p, s| cfg.read(p, s)),
        Err(CapError::NoRegBlock(CXL_REGLOC_RBI_COMPONENT))
    );
    regloc(&mut cfg, 0x200, 0x13, &[]);
    assert_eq!(
        find_component_regs(0x200, &mut |p, s| cfg.read(p, s)),
        Err(CapError::RegLocatorTooShort(0x13))
    );
}

#[test]
fn reserved_bir_is_skipped() {
    let mut cfg = Cfg::new(0);
    regloc(
        &mut cfg,
        0x200,
        0x14,
        &[(reg_lo(6, CXL_REGLOC_RBI_COMPONENT.into(), 0), 0)],
    );
    assert_eq!(
        find_component_regs(0x200, &mut |p, s| cfg.read(p, s)),
        Err(CapError::BadBir(6))
    );
    regloc(
        &mut cfg,
        0x200,
        0x1c,
        &[
            (reg_lo(7, CXL_REGLOC_RBI_COMPONENT.into(), 0), 0),
            (reg_lo(3, CXL_REGLOC_RBI_COMPONENT.into(), 0x20_0000), 0),
        ],
    );
    assert_eq!(
        find_component_regs(0x200, &mut |p, s| cfg.read(p, s)).map(|b| (b.bir, b.offset)),
        Ok((3, 0x20_0000))
    );
}

#[test]
fn register_locator_header_is_checked() {
    let mut cfg = Cfg::new(0);
    regloc(
        &mut cfg,
        0x200,
        0x14,
        &[(reg_lo(0, CXL_REGLOC_RBI_COMPONENT.into(), 0), 0)],
    );
    // The Device DVSEC (id 0) is not a Register Locator.
    cfg.set(0x200 + PCI_DVSEC_HEADER2, 2, 0);
    assert_eq!(
        find_component_regs(0x200, &mut |p, s| cfg.read(p, s)),
        Err(CapError::WrongDvsec {
            vendor: PCI_VENDOR_ID_CXL,
            id: 0
        })
    );
    // Another vendor's DVSEC id 8 is not either.
    cfg.dvsec_header(0x200, 0x8086, 0x14, 8);
    assert_eq!(
        find_component_regs(0x200, &mut |p, s| cfg.read(p, s)),
        Err(CapError::WrongDvsec {
            vendor: 0x8086,
            id: 8
        })
    );
}

#[test]
fn register_locator_position_is_checked() {
    let mut cfg = Cfg::new(0);
    for base in [0x0, 0xfc, 0x202, 0x1000, 0xffff] {
        assert_eq!(
            find_component_regs(base, &mut |p, s| cfg.read(p, s)),
            Err(CapError::BadDvsecPosition(base)),
            "base {base:#x}"
        );
    }
    // A DVSEC whose length runs past the end of config space.
    regloc(&mut cfg, 0xff0, 0x24, &[]);
    assert_eq!(
        find_component_regs(0xff0, &mut |p, s| cfg.read(p, s)),
        Err(CapError::BadDvsecPosition(0xff0))
    );
    assert_eq!(cfg.reads, 2, "only the header was read");
}

#[test]
fn dvsec_header_must_fit_in_config_space() {
    // Found by the regloc fuzz target: a DVSEC said to start at 0xff8 or 0xffc had its header
    // dwords read at 0x1000 and 0x1004, past config space. The fixture's reads panic there.
    let mut cfg = Cfg::new(0);
    for base in [0xff8, 0xffc] {
        assert_eq!(
            find_component_regs(base, &mut |p, s| cfg.read(p, s)),
            Err(CapError::BadDvsecPosition(base)),
            "base {base:#x}"
        );
        assert_eq!(
            DvsecHeader::read(
                base,
                PCI_VENDOR_ID_CXL,
                CXL_DVSEC_REG_LOCATOR,
                &mut |p, s| cfg.read(p, s)
            ),
            Err(CapError::BadDvsecPosition(base))
        );
    }
    assert_eq!(cfg.reads, 0, "nothing read");
    // The last position whose header fits: a Register Locator with no entry.
    regloc(&mut cfg, 0xff4, 0xc, &[]);
    assert_eq!(
        find_component_regs(0xff4, &mut |p, s| cfg.read(p, s)),
        Err(CapError::RegLocatorTooShort(0xc))
    );
}

#[test]
fn hostile_capability_arrays_never_panic() {
    // Every single-dword corruption of the header, the entries and the HDM capability.
    let mut rng = Prng::new(7);
    for _ in 0..20_000 {
        let mut area = qemu_cm_area();
        let len = 1 + rng.below(area.len());
        let idx = [0, 1, 2, 3, QEMU_HDM_OFFSET / 4][rng.below(5)];
        area[idx] = rng.next_u32();
        let area = &area[..len];
        if let Ok(info) = find_hdm(area) {
            assert!(info.offset + hdm_block_size(info.decoder_count) <= area.len() * 4);
            assert!((1..=32).contains(&info.decoder_count));
        }
    }
}
