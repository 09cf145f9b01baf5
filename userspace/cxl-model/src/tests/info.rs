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
        VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_CAPS | VFIO_DEVICE_FLAGS_CXL
    );
    assert_eq!(u32_at(&r.header, 8), 11);
    assert_eq!(u32_at(&r.header, 12), 5);
    assert_eq!(u32_at(&r.header, 16), 24, "cap_offset right after the structure");
    assert_eq!(r.caps, Some(cap().to_bytes(0)), "last capability: next 0");
}

#[test]
fn small_argsz_raises_it_and_copies_no_capability() {
    for argsz in [16u32, 20, 24, 55] {
        let r = device_info(argsz, INFO, Some(cap())).unwrap();
        assert_eq!(u32_at(&r.header, 0), 56, "argsz {argsz}: raised to what is needed");
        assert_ne!(u32_at(&r.header, 4) & VFIO_DEVICE_FLAGS_CAPS, 0);
        assert_eq!(u32_at(&r.header, 16), 0, "no cap_offset");
        assert!(r.caps.is_none());
        assert_eq!(r.header_len, (argsz as usize).min(24), "never write past argsz");
    }
    assert!(device_info(56, INFO, Some(cap())).unwrap().caps.is_some());
}

#[test]
fn argsz_below_the_first_fields_is_invalid() {
    for argsz in [0u32, 4, 15] {
        assert_eq!(device_info(argsz, INFO, Some(cap())).err(), Some(ArgszTooSmall));
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
