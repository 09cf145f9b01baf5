//! The rules that decide whether decoder 0's range may be handed to a tenant, and the CEDT
//! parser they rely on.

use crate::cedt::*;
use crate::window::*;
use std::vec;
use std::vec::Vec;

/// The host bridge above the device in these tests (its ACPI `_UID`), and another one.
const HB: u32 = 12;
const OTHER_HB: u32 = 13;

/// A CEDT with one CHBS and the given CFMWS (base, size, eniw), each targeting [`HB`] first.
fn cedt(windows: &[(u64, u64, u8)]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"CEDT");
    t.extend_from_slice(&[0; 32]);
    // CHBS: type 0, length 32.
    let mut chbs = [0u8; 32];
    chbs[2] = 32;
    t.extend_from_slice(&chbs);
    for &(base, size, eniw) in windows {
        let mut w = [0u8; 40];
        w[0] = 1;
        w[2] = 40;
        w[8..16].copy_from_slice(&base.to_le_bytes());
        w[16..24].copy_from_slice(&size.to_le_bytes());
        w[24] = eniw;
        w[36..40].copy_from_slice(&HB.to_le_bytes());
        t.extend_from_slice(&w);
    }
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t
}

fn windows(table: &[u8]) -> Result<Vec<Window>, CedtError> {
    let mut out = Vec::new();
    for_each_window(table, &mut |w| out.push(w))?;
    Ok(out)
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

#[test]
fn cedt_windows_are_found_after_other_structures() {
    let t = cedt(&[(0x29_0000_0000, 4 * GIB, 0), (0x40_0000_0000, GIB, 1)]);
    assert_eq!(
        windows(&t),
        Ok(vec![
            Window {
                base: 0x29_0000_0000,
                size: 4 * GIB,
                eniw: 0,
                first_target: HB,
            },
            Window {
                base: 0x40_0000_0000,
                size: GIB,
                eniw: 1,
                first_target: HB,
            }
        ])
    );
}

#[test]
fn malformed_cedts_are_refused() {
    let good = cedt(&[(0x29_0000_0000, 4 * GIB, 0)]);
    let mut wrong_sig = good.clone();
    wrong_sig[0] = b'X';
    assert_eq!(windows(&wrong_sig), Err(CedtError::BadHeader));
    assert_eq!(windows(&good[..good.len() - 1]), Err(CedtError::BadHeader));
    let mut zero_len = good.clone();
    zero_len[36 + 2] = 0;
    assert_eq!(windows(&zero_len), Err(CedtError::BadStructure { at: 36 }));
    let mut short_cfmws = good.clone();
    short_cfmws[36 + 32 + 2] = 8;
    assert!(windows(&short_cfmws).is_err());
    // Every truncation and every single-byte corruption: an answer, never a panic.
    for n in 0..good.len() {
        let _ = windows(&good[..n]);
        for v in [0u8, 1, 0x24, 0xff] {
            let mut t = good.clone();
            t[n] = v;
            let _ = windows(&t);
        }
    }
}

const WINDOWS: &[Window] = &[Window {
    base: 0x29_0000_0000,
    size: 4 * GIB,
    eniw: 0,
    first_target: HB,
}];

fn dec(base: u64, size: u64, iw: u32) -> Committed {
    Committed { base, size, iw }
}

#[test]
fn a_plain_decoder_inside_a_window_is_accepted() {
    assert_eq!(
        check(
            dec(0x29_0000_0000, 256 * MIB, 0),
            WINDOWS,
            Some(HB),
            256 * MIB
        ),
        Ok(())
    );
    assert_eq!(
        check(
            dec(0x29_0000_0000 + 3 * GIB, GIB, 0),
            WINDOWS,
            Some(HB),
            2 * GIB
        ),
        Ok(())
    );
}

#[test]
fn each_rule_refuses_with_its_reason() {
    assert_eq!(
        check(
            dec(0x29_0000_0000, 256 * MIB, 1),
            WINDOWS,
            Some(HB),
            256 * MIB
        ),
        Err(Refusal::Interleaved { iw: 1 })
    );
    assert_eq!(
        check(dec(0x29_0000_0000, 256 * MIB, 0), &[], Some(HB), 256 * MIB),
        Err(Refusal::NoWindows)
    );
    // Below, straddling the end of, and past the window.
    for base in [
        0x28_0000_0000,
        0x29_0000_0000 + 4 * GIB - 128 * MIB,
        0x30_0000_0000,
    ] {
        assert_eq!(
            check(dec(base, 256 * MIB, 0), WINDOWS, Some(HB), 256 * MIB),
            Err(Refusal::OutsideWindows),
            "base {base:#x}"
        );
    }
    assert_eq!(
        check(
            dec(u64::MAX - MIB, 256 * MIB, 0),
            WINDOWS,
            Some(HB),
            256 * MIB
        ),
        Err(Refusal::OutsideWindows)
    );
    let interleaved = [Window {
        base: 0x29_0000_0000,
        size: 4 * GIB,
        eniw: 1,
        first_target: HB,
    }];
    assert_eq!(
        check(
            dec(0x29_0000_0000, 256 * MIB, 0),
            &interleaved,
            Some(HB),
            256 * MIB
        ),
        Err(Refusal::InterleavedWindow { eniw: 1 })
    );
    assert_eq!(
        check(
            dec(0x29_0000_0000, 512 * MIB, 0),
            WINDOWS,
            Some(HB),
            256 * MIB
        ),
        Err(Refusal::LargerThanCapacity {
            capacity: 256 * MIB
        })
    );
    let huge = [Window {
        base: 0,
        size: 1 << 42,
        eniw: 0,
        first_target: HB,
    }];
    assert_eq!(
        check(dec(0, 1 << 41, 0), &huge, Some(HB), 1 << 42),
        Err(Refusal::LargerThanRegion)
    );
    assert_eq!(check(dec(0, 1 << 40, 0), &huge, Some(HB), 1 << 42), Ok(()));
}

#[test]
fn a_window_of_another_host_bridge_is_refused() {
    // Two windows, one per host bridge: the device's decoder in the other one's window
    // decodes the other device's memory.
    let two = [
        WINDOWS[0],
        Window {
            base: 0x2a_0000_0000,
            size: 4 * GIB,
            eniw: 0,
            first_target: OTHER_HB,
        },
    ];
    assert_eq!(
        check(dec(0x29_0000_0000, 256 * MIB, 0), &two, Some(HB), 256 * MIB),
        Ok(())
    );
    assert_eq!(
        check(dec(0x2a_0000_0000, 256 * MIB, 0), &two, Some(HB), 256 * MIB),
        Err(Refusal::OtherHostBridge {
            target: OTHER_HB,
            ours: Some(HB)
        })
    );
    // A platform that does not name the device's host bridge proves nothing.
    assert_eq!(
        check(dec(0x29_0000_0000, 256 * MIB, 0), &two, None, 256 * MIB),
        Err(Refusal::OtherHostBridge {
            target: HB,
            ours: None
        })
    );
}
