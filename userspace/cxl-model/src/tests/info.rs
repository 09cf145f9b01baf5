//! Tests of the `VFIO_DEVICE_GET_INFO` reply.

use crate::info::*;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn cap() -> CxlCap {
    CxlCap {
        bar: 2,
        flags: VFIO_CXL_CAP_FIRMWARE_COMMITTED,
        hdm_regs_offset: 0x1_2345_1000,
        dpa_region_index: 9,
        comp_regs_region_index: 10,
    }
}

#[test]
fn capability_bytes_follow_the_uapi_layout() {
    let b = cap().to_bytes(0x40);
    assert_eq!(&b[0..2], &6u16.to_le_bytes(), "id");
    assert_eq!(&b[2..4], &1u16.to_le_bytes(), "version");
    assert_eq!(u32_at(&b, 4), 0x40, "next");
    assert_eq!(b[8], 2, "BAR");
    assert_eq!(&b[9..12], &[0, 0, 0], "reserved");
    assert_eq!(u32_at(&b, 12), 1, "flags");
    assert_eq!(&b[16..24], &0x1_2345_1000u64.to_le_bytes());
    assert_eq!(u32_at(&b, 24), 9);
    assert_eq!(u32_at(&b, 28), 10);
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// vfio-pci-core's flags for a mappable BAR.
const CORE_FLAGS: u32 =
    VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;

#[test]
fn a_bar_the_block_fills_is_not_mappable() {
    assert_eq!(
        comp_bar_flags(CORE_FLAGS, &[None, None]),
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
    );
    assert!(sparse_mmap_cap(&[None, None]).is_none());
    // A BAR vfio-pci-core does not map stays unmapped.
    let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    assert_eq!(comp_bar_flags(rw, &[Some((0, 0x1000)), None]), rw);
}

#[test]
fn the_areas_are_listed_in_a_sparse_capability() {
    let areas = [Some((0, 0x4_0000)), Some((0x5_0000, 0xb_0000))];
    assert_eq!(comp_bar_flags(CORE_FLAGS, &areas), CORE_FLAGS);
    let (c, len) = sparse_mmap_cap(&areas).unwrap();
    assert_eq!(len, 48);
    assert_eq!(&c[0..4], &[1, 0, 1, 0], "SPARSE_MMAP, version 1");
    assert_eq!(u32_at(&c, 4), 0, "next: filled in by vfio");
    assert_eq!(u32_at(&c, 8), 2, "nr_areas");
    assert_eq!((u64_at(&c, 16), u64_at(&c, 24)), (0, 0x4_0000));
    assert_eq!((u64_at(&c, 32), u64_at(&c, 40)), (0x5_0000, 0xb_0000));

    let one = [None, Some((0x1_0000, 0xf_0000))];
    let (c, len) = sparse_mmap_cap(&one).unwrap();
    assert_eq!(len, 32);
    assert_eq!(u32_at(&c, 8), 1);
    assert_eq!((u64_at(&c, 16), u64_at(&c, 24)), (0x1_0000, 0xf_0000));
}

#[test]
fn comp_regs_capability_names_bar_and_block() {
    let c = comp_regs_cap(2, 0x2_0000, 0x1_0000);
    assert_eq!(&c[0..4], &[6, 0, 1, 0]);
    assert_eq!(u32_at(&c, 4), 0);
    assert_eq!(u32_at(&c, 8), 2);
    assert_eq!(u32_at(&c, 12), 0, "pad");
    assert_eq!(u64_at(&c, 16), 0x2_0000);
    assert_eq!(u64_at(&c, 24), 0x1_0000);
}
