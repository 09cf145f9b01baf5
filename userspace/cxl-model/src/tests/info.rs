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

const INFO: DeviceInfo = DeviceInfo {
    reset_works: true,
    num_regions: 11,
};

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

#[test]
fn full_reply_carries_flags_counts_and_the_chain() {
    let r = device_info(64, INFO, Some(cap())).unwrap();
    assert_eq!(r.header_len, 24);
    assert_eq!(u32_at(&r.header, 0), 64, "argsz untouched when big enough");
    let flags = u32_at(&r.header, 4);
    assert_eq!(
        flags,
        VFIO_DEVICE_FLAGS_RESET
            | VFIO_DEVICE_FLAGS_PCI
            | VFIO_DEVICE_FLAGS_CAPS
            | VFIO_DEVICE_FLAGS_CXL
    );
    assert_eq!(u32_at(&r.header, 8), 11);
    assert_eq!(u32_at(&r.header, 12), 5);
    assert_eq!(
        u32_at(&r.header, 16),
        24,
        "cap_offset right after the structure"
    );
    assert_eq!(r.caps, Some(cap().to_bytes(0)), "last capability: next 0");
}

#[test]
fn small_argsz_raises_it_and_copies_no_capability() {
    for argsz in [16u32, 20, 24, 55] {
        let r = device_info(argsz, INFO, Some(cap())).unwrap();
        assert_eq!(
            u32_at(&r.header, 0),
            56,
            "argsz {argsz}: raised to what is needed"
        );
        assert_ne!(u32_at(&r.header, 4) & VFIO_DEVICE_FLAGS_CAPS, 0);
        assert_eq!(u32_at(&r.header, 16), 0, "no cap_offset");
        assert!(r.caps.is_none());
        assert_eq!(
            r.header_len,
            (argsz as usize).min(24),
            "never write past argsz"
        );
    }
    assert!(device_info(56, INFO, Some(cap())).unwrap().caps.is_some());
}

#[test]
fn argsz_below_the_first_fields_is_invalid() {
    for argsz in [0u32, 4, 15] {
        assert_eq!(
            device_info(argsz, INFO, Some(cap())).err(),
            Some(ArgszTooSmall)
        );
    }
}

#[test]
fn without_capability_the_reply_is_vfio_pci_s() {
    let info = DeviceInfo {
        reset_works: false,
        num_regions: 9,
    };
    let r = device_info(24, info, None).unwrap();
    assert_eq!(u32_at(&r.header, 4), VFIO_DEVICE_FLAGS_PCI);
    assert_eq!(u32_at(&r.header, 0), 24);
    assert_eq!(u32_at(&r.header, 16), 0);
    assert!(r.caps.is_none());
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn bar_region_info_without_areas_is_read_write_only() {
    let r = bar_region_info(32, 0, 0x1_0000, 0, &[None, None]).unwrap();
    assert_eq!(u32_at(&r.header, 0), 32);
    assert_eq!(
        u32_at(&r.header, 4),
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
    );
    assert_eq!(u32_at(&r.header, 8), 0);
    assert_eq!(u32_at(&r.header, 12), 0);
    assert_eq!(u64_at(&r.header, 16), 0x1_0000);
    assert_eq!(r.caps_len, 0);
    assert_eq!(
        bar_region_info(31, 0, 0x1_0000, 0, &[None, None]).err(),
        Some(ArgszTooSmall)
    );
}

#[test]
fn bar_region_info_lists_the_areas_in_a_sparse_capability() {
    let areas = [Some((0, 0x4_0000)), Some((0x5_0000, 0xb_0000))];
    let r = bar_region_info(128, 2, 0x10_0000, 2 << 40, &areas).unwrap();
    let flags = u32_at(&r.header, 4);
    assert_eq!(flags, 0xf, "read, write, mmap, caps");
    assert_eq!(u32_at(&r.header, 12), 32, "cap_offset");
    assert_eq!(u64_at(&r.header, 24), 2 << 40);
    assert_eq!(r.caps_len, 48);
    let c = &r.caps;
    assert_eq!(&c[0..4], &[1, 0, 1, 0], "SPARSE_MMAP, version 1");
    assert_eq!(u32_at(c, 4), 0, "last capability");
    assert_eq!(u32_at(c, 8), 2, "nr_areas");
    assert_eq!((u64_at(c, 16), u64_at(c, 24)), (0, 0x4_0000));
    assert_eq!((u64_at(c, 32), u64_at(c, 40)), (0x5_0000, 0xb_0000));

    // One area: the capability is shorter; a small argsz gets it raised and no chain.
    let one = [None, Some((0x1_0000, 0xf_0000))];
    let r = bar_region_info(32, 2, 0x10_0000, 0, &one).unwrap();
    assert_eq!(u32_at(&r.header, 0), 64);
    assert_eq!(u32_at(&r.header, 4), 0xf);
    assert_eq!(u32_at(&r.header, 12), 0);
    assert_eq!(r.caps_len, 0);
    let r = bar_region_info(64, 2, 0x10_0000, 0, &one).unwrap();
    assert_eq!(r.caps_len, 32);
    assert_eq!(u32_at(&r.caps, 8), 1);
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
