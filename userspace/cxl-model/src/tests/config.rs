//! The config-space map: which bytes the shadow, the host DVSEC rule and vfio-pci-core serve.

use crate::config::{ConfigMap, Piece};
use std::vec::Vec;

/// The QEMU cxl-type3 layout: Device DVSEC at 0x100 (0x38 bytes), Register Locator at 0x138,
/// GPF at 0x154, Flex Bus at 0x164.
const HOST: &[(u16, u16)] = &[(0x138, 0x1c), (0x154, 0x10), (0x164, 0x20)];
const MAP: ConfigMap<'static> = ConfigMap {
    device: (0x100, 0x38),
    host: HOST,
};

/// Splits an access into its pieces.
fn split(map: &ConfigMap<'_>, start: u64, count: u64, write: bool) -> Vec<(u64, u64, Piece)> {
    let mut out = Vec::new();
    let mut done = 0;
    while done < count {
        let (who, len) = map.piece(start + done, count - done, write);
        assert!(len >= 1 && len <= count - done, "piece of {len} bytes");
        out.push((start + done, len, who));
        done += len;
    }
    out
}

#[test]
fn reads_leave_the_device_dvsec_header_and_host_dvsecs_to_the_core() {
    assert!(!MAP.touches(0x100, 4, false));
    assert!(MAP.touches(0x100, 5, false));
    assert!(!MAP.touches(0x138, 0x30, false));
    assert_eq!(
        split(&MAP, 0xfe, 10, false),
        [(0xfe, 6, Piece::Core), (0x104, 4, Piece::Shadow)]
    );
    assert_eq!(split(&MAP, 0x140, 8, false), [(0x140, 8, Piece::Core)]);
}

#[test]
fn writes_to_host_dvsecs_are_dropped_whole() {
    assert!(MAP.touches(0x100, 1, true));
    assert!(MAP.touches(0x150, 8, true));
    assert!(!MAP.touches(0x184, 4, true));
    assert!(!MAP.touches(0xfc, 4, true));
    assert_eq!(
        split(&MAP, 0x136, 0x1e, true),
        [(0x136, 2, Piece::Shadow), (0x138, 0x1c, Piece::Dropped)]
    );
    assert_eq!(
        split(&MAP, 0x160, 0x30, true),
        [
            (0x160, 4, Piece::Dropped),
            (0x164, 0x20, Piece::Dropped),
            (0x184, 0xc, Piece::Core)
        ]
    );
}

#[test]
fn every_byte_is_served_once_by_the_right_party() {
    for write in [false, true] {
        for start in 0xf0u64..0x190 {
            for count in 1..=12u64 {
                let mut at = start;
                for (s, len, who) in split(&MAP, start, count, write) {
                    assert_eq!(s, at);
                    for b in s..s + len {
                        let in_device = (0x100..0x138).contains(&b) && (write || b >= 0x104);
                        let in_host = HOST
                            .iter()
                            .any(|&(p, l)| (u64::from(p)..u64::from(p + l)).contains(&b));
                        let want = if in_device {
                            Piece::Shadow
                        } else if write && in_host {
                            Piece::Dropped
                        } else {
                            Piece::Core
                        };
                        assert_eq!(who, want, "byte {b:#x} of {start:#x}+{count} write={write}");
                    }
                    if who == Piece::Shadow {
                        assert_eq!(s / 4, (s + len - 1) / 4, "shadow piece crosses a dword");
                    }
                    at += len;
                }
                assert_eq!(at, start + count);
            }
        }
    }
}

#[test]
fn no_host_dvsecs_means_only_the_device_dvsec() {
    let map = ConfigMap {
        device: (0x200, 0x3c),
        host: &[],
    };
    assert!(!map.touches(0x100, 0x100, true));
    assert!(map.touches(0x23c - 1, 1, true));
    assert!(!map.touches(0x23c, 4, true));
}
