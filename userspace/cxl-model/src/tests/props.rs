//! Property tests: long random write sequences over random layouts and capabilities, checking
//! the invariants the emulation promises after every single access.

use std::format;
use std::vec;
use std::vec::Vec;

use super::fixtures::*;
use crate::caparray::find_hdm;
use crate::comp_regs::*;
use crate::dvsec::*;
use crate::regs::*;

const LOCK: u32 = CXL_HDM_DECODER0_CTRL_LOCK;
const COMMIT: u32 = CXL_HDM_DECODER0_CTRL_COMMIT;
const COMMITTED: u32 = CXL_HDM_DECODER0_CTRL_COMMITTED;

/// A random, valid CXL.mem area: a capability array of 1 to 8 entries (one of them HDM) with
/// random contents around it, and random decoders, some committed by "firmware" at host
/// addresses whose bits 63:32 are `hpa_hi`.
struct RandomArea {
    area: Vec<u32>,
    cache_capable: bool,
    hpa_hi: u32,
}

/// Decoder Control bits that are never 1 once written (for any capabilities).
const CTRL_ALWAYS_ZERO: u32 =
    CXL_HDM_DECODER_CTRL_RESERVED_MASK | CXL_HDM_DECODER_CTRL_DEVICE_RESERVED;

fn random_area(rng: &mut Prng) -> RandomArea {
    let hpa_hi = loop {
        let v = rng.next_u32();
        if v != 0 && v != u32::MAX {
            break v;
        }
    };
    let entries = 1 + rng.below(8);
    let encoding = rng.below(13) as u32;
    let count = crate::caparray::decoder_count(encoding).unwrap();
    let hdm_size = 0x10 + 0x20 * count;
    let array_end = 4 * (entries + 1);
    let hdm_offset = loop {
        let off = 4 * rng.below(CXL_CM_SIZE / 4);
        if off >= array_end && off + hdm_size <= CXL_CM_SIZE {
            break off;
        }
    };
    // Random contents everywhere, but nothing that looks like the firmware HPA.
    let mut area: Vec<u32> = (0..CXL_CM_SIZE / 4)
        .map(|_| rng.next_u32())
        .map(|w| if w == hpa_hi { 0 } else { w })
        .collect();
    area[0] = cap_header(entries as u32);
    let hdm_index = 1 + rng.below(entries);
    for (i, entry) in area.iter_mut().enumerate().take(entries + 1).skip(1) {
        *entry = if i == hdm_index {
            cap_entry(CXL_CM_CAP_CAP_ID_HDM, 1, hdm_offset)
        } else {
            let id = [CXL_CM_CAP_CAP_ID_RAS, CXL_CM_CAP_CAP_ID_LINK, 3, 6][rng.below(4)];
            cap_entry(id, 2, 4 * rng.below(CXL_CM_SIZE / 4))
        };
    }
    let mut cap = rng.next_u32() & !CXL_HDM_DECODER_COUNT_MASK | encoding;
    if cap == hpa_hi {
        cap ^= 0x10;
    }
    area[hdm_offset / 4] = cap;
    // Hardware reads reserved bits as 0: global control and decoders start clean.
    let mut gctl = rng.next_u32() & 0x3;
    if cap & CXL_HDM_DECODER_POISON_ON_DECODE_ERR == 0 {
        gctl &= !1;
    }
    area[(hdm_offset + 4) / 4] = gctl;
    let cache_capable = rng.chance(1, 2);
    for n in 0..count {
        let reg = |r: usize| (hdm_offset + 0x10 + 0x20 * n + r) / 4;
        let mut ctrl =
            rng.next_u32() & !CTRL_ALWAYS_ZERO & !(1 << 13) & !CXL_HDM_DECODER_CTRL_UIO_RESERVED;
        if rng.chance(1, 2) {
            // Committed by firmware, usually locked, at a secret HPA.
            ctrl |= COMMIT | COMMITTED;
            if rng.chance(3, 4) {
                ctrl |= LOCK;
            }
            area[reg(0x0)] = rng.next_u32() & 0xf000_0000;
            area[reg(0x4)] = hpa_hi;
        } else {
            ctrl &= !COMMITTED;
            area[reg(0x0)] &= 0xf000_0000;
        }
        area[reg(0x8)] &= 0xf000_0000;
        area[reg(0x10)] = ctrl;
    }
    RandomArea {
        area,
        cache_capable,
        hpa_hi,
    }
}

/// Region dword index of decoder `n`'s register `reg`.
fn dec(layout: &HdmLayout, n: usize, reg: usize) -> usize {
    (layout.hdm_offset() + 0x10 + 0x20 * n + reg) / 4
}

#[test]
fn comp_regs_random_write_sequences_keep_every_invariant() {
    let mut rng = Prng::new(0xc0ffee);
    for case in 0..3000 {
        let RandomArea {
            area,
            cache_capable,
            hpa_hi,
        } = random_area(&mut rng);
        let info = find_hdm(&area).expect("generated areas are valid");
        let layout = HdmLayout::from_cm_area(&area, cache_capable).unwrap();
        assert_eq!(
            layout.region_size(),
            info.offset + 0x10 + 0x20 * info.decoder_count
        );
        let region = layout.region_dwords();
        // The shadow has a tail past the region that must never change.
        let mut shadow = vec![0x5a5a_5a5a; region + 16];
        init_shadow(&mut shadow[..region], &area, &layout);
        let initial = shadow.clone();
        let hdm = layout.hdm_offset() / 4;
        let count = layout.decoder_count();
        let cap = layout.cap();
        let uio = cap & CXL_HDM_DECODER_UIO_CAPABLE != 0;
        let mut ctrl_zero = CTRL_ALWAYS_ZERO;
        if !uio {
            ctrl_zero |= CXL_HDM_DECODER_CTRL_UIO_RESERVED;
        }
        if !cache_capable {
            ctrl_zero |= CXL_HDM_DECODER0_CTRL_BI;
        }
        // Per decoder: has a Control write been applied unlocked (then COMMITTED == COMMIT)?
        let mut mirrored = vec![false; count];

        for step in 0..200 {
            let dword = match rng.below(10) {
                0..=6 => hdm + rng.below(region - hdm),
                7 | 8 => rng.below(region),
                _ => region + rng.below(16),
            };
            let mut value = rng.reg_value();
            if rng.chance(1, 3) {
                // Lock/commit patterns are what the interesting transitions need.
                value = (value & !(LOCK | COMMIT)) | [0, LOCK, COMMIT, LOCK | COMMIT][rng.below(4)];
            }
            if value == hpa_hi {
                value = 0;
            }
            let before = shadow.clone();
            write(&mut shadow, &layout, dword, value);
            let ctx = || format!("case {case} step {step}: write {value:#x} to dword {dword:#x}");

            // Only the written dword may change.
            for (i, (a, b)) in before.iter().zip(&shadow).enumerate() {
                assert!(i == dword || a == b, "{}: dword {i:#x} changed", ctx());
            }
            // Read-only: everything before the HDM block, the capability, 0x8, 0xc, the tail.
            assert_eq!(&shadow[..hdm + 1], &initial[..hdm + 1], "{}", ctx());
            assert_eq!(
                &shadow[hdm + 2..hdm + 4],
                &initial[hdm + 2..hdm + 4],
                "{}",
                ctx()
            );
            assert_eq!(&shadow[region..], &initial[region..], "{}", ctx());
            assert_eq!(shadow[hdm], cap);
            // Global control.
            let gctl = shadow[hdm + 1];
            assert_eq!(
                gctl & CXL_HDM_DECODER_GLOBAL_CTRL_RESERVED_MASK,
                0,
                "{}",
                ctx()
            );
            if cap & CXL_HDM_DECODER_POISON_ON_DECODE_ERR == 0 {
                assert_eq!(gctl & 1, 0, "{}", ctx());
            }
            for n in 0..count {
                let ctrl_i = dec(&layout, n, 0x10);
                let (old, new) = (before[ctrl_i], shadow[ctrl_i]);
                // Target list / skip / reserved never change.
                for reg in [0x14, 0x18, 0x1c] {
                    let i = dec(&layout, n, reg);
                    assert_eq!(shadow[i], initial[i], "{}", ctx());
                }
                // Low registers keep only bits 31:28.
                for reg in [0x0, 0x8] {
                    assert_eq!(shadow[dec(&layout, n, reg)] & 0x0fff_ffff, 0, "{}", ctx());
                }
                // High registers are frozen while locked.
                for reg in [0x4, 0xc] {
                    let i = dec(&layout, n, reg);
                    if old & LOCK != 0 {
                        assert_eq!(shadow[i], before[i], "{}", ctx());
                    }
                }
                // Control.
                assert_eq!(new & ctrl_zero, 0, "{}: ctrl {new:#x}", ctx());
                let ro = CXL_HDM_DECODER0_CTRL_COMMIT_ERROR | CXL_HDM_DECODER0_CTRL_HOSTONLY;
                assert_eq!(new & ro, initial[ctrl_i] & ro, "{}", ctx());
                if dword == ctrl_i {
                    if old & LOCK != 0 {
                        let want = if value & LOCK != 0 { old } else { old & !LOCK };
                        assert_eq!(new, want, "{}", ctx());
                    } else {
                        mirrored[n] = true;
                    }
                }
                if mirrored[n] {
                    assert_eq!(new & COMMITTED != 0, new & COMMIT != 0, "{}", ctx());
                }
            }
            // The firmware HPA never shows, wherever the guest looks.
            for i in 0..region + 16 {
                assert_ne!(read(&shadow, i), hpa_hi, "{}: HPA at dword {i:#x}", ctx());
            }
        }
    }
}

#[test]
fn comp_regs_access_check_random_offsets() {
    let mut rng = Prng::new(42);
    for _ in 0..100_000 {
        let size = 4 * (1 + rng.below(0x410));
        let offset = match rng.below(3) {
            0 => rng.next_u64(),
            1 => rng.below(size + 16) as u64,
            _ => u64::MAX - rng.below(8) as u64,
        };
        let len = [1, 2, 3, 4, 4, 4, 8, 16][rng.below(8)];
        match check_access(offset, len, size) {
            Ok(dword) => {
                assert_eq!(len, 4);
                assert_eq!(dword as u64 * 4, offset);
                assert!(dword < size / 4);
            }
            Err(_) => {
                assert!(len != 4 || offset % 4 != 0 || offset.saturating_add(4) > size as u64)
            }
        }
    }
}

/// Offsets (relative to the DVSEC) whose bytes the guest may change.
fn dvsec_writable(rel: u16) -> bool {
    matches!(rel, 0x0c..=0x11 | 0x14 | 0x15 | 0x20..=0x27 | 0x30..=0x37)
}

/// The guest's view of the DVSEC and the bytes around it, read byte by byte.
fn view(shadow: &DvsecShadow, hw: &mut Cfg, from: u16, to: u16) -> Vec<u8> {
    (from..to)
        .map(|p| shadow.read(p, 1, &mut |q, s| hw.read(q, s)).unwrap() as u8)
        .collect()
}

#[test]
fn dvsec_random_access_sequences_keep_every_invariant() {
    let mut rng = Prng::new(0xd5ec);
    for case in 0..1500 {
        let mut hw = Cfg::new(0);
        for b in hw.bytes.iter_mut() {
            *b = rng.next_u32() as u8;
        }
        // Room for the longest DVSEC plus the bytes read around it.
        let base = 0x100 + 4 * rng.below(0x380) as u16;
        let length = [0x38, 0x3c, 0x3c, 0x40][rng.below(4)];
        let cap3 = rng.next_u32() as u16;
        let cap2 = rng.next_u32() as u16;
        let lock = if rng.chance(1, 4) {
            1
        } else {
            rng.next_u32() as u16 & !1
        };
        let dvsec = DeviceDvsec {
            length,
            cap: rng.next_u32() as u16,
            control: rng.next_u32() as u16,
            status: rng.next_u32() as u16,
            control2: rng.next_u32() as u16,
            status2: rng.next_u32() as u16,
            lock,
            cap2,
            range1_size: rng.next_u64(),
            range1_base: rng.next_u64(),
            range2_size: rng.next_u64(),
            range2_base: rng.next_u64(),
            cap3,
        };
        dvsec.install(&mut hw, base);
        let cap3 = if length >= 0x3a { cap3 } else { 0 };
        let mut shadow = DvsecShadow::new(base, &mut |p, s| hw.read(p, s)).unwrap();
        let hw_before = hw.bytes.clone();
        let (from, to) = (base - 8, base + length + 8);
        let initial = view(&shadow, &mut hw, from, to);
        let get16 = |v: &[u8], rel: u16| {
            let i = usize::from(rel + 8);
            u16::from(v[i]) | u16::from(v[i + 1]) << 8
        };
        let hw_status = get16(&initial, 0xe);
        let mut control_zero = CXL_CTRL_RESERVED_MASK;
        if cap3 & CXL_DVSEC_CAP3_P2P_MEM_CAPABLE == 0 {
            control_zero |= CXL_DVSEC_CTRL_P2P_MEM_ENABLE;
        }
        let mut control2_zero = CXL_CTRL2_RESERVED_MASK | CXL_CTRL2_HW_BITS_MASK;
        if cap3 & CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY == 0 {
            control2_zero |= CXL_DVSEC_CTRL2_DESIRED_VOLATILE_HDM;
        }
        if cap2 & CXL_DVSEC_CAP2_MOD_COMPLETION_CAPABLE == 0 {
            control2_zero |= CXL_DVSEC_CTRL2_MOD_COMPLETION_ENABLE;
        }
        let mut locked_view = (get16(&initial, 0x14) & 1 != 0).then(|| initial.clone());
        let mut prev = initial.clone();

        for step in 0..120 {
            let pos = base - 6 + rng.below(usize::from(length) + 12) as u16;
            let len = [1, 2, 4][rng.below(3)];
            let value = rng.reg_value();
            let ctx = || {
                format!(
                    "case {case} step {step}: {len} bytes {value:#x} at +{:#x}",
                    i32::from(pos) - i32::from(base)
                )
            };
            if rng.chance(1, 4) {
                // A read of any width equals the byte-wise view.
                let got = shadow.read(pos, len, &mut |q, s| hw.read(q, s)).unwrap();
                let bytes = view(&shadow, &mut hw, pos, pos + len as u16);
                let want = bytes
                    .iter()
                    .rev()
                    .fold(0u32, |acc, b| acc << 8 | u32::from(*b));
                assert_eq!(got, want, "{}", ctx());
                continue;
            }
            let result = shadow.write(pos, len, value).unwrap();
            assert_eq!(hw.bytes, hw_before, "{}", ctx());
            // The hardware is only ever asked for the two forwarded actions.
            for w in result.hw_writes() {
                let ok_wbi = w.pos == base + 0x10 && w.value == CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI;
                let ok_status2 = w.pos == base + 0x12
                    && w.value == CXL_DVSEC_STATUS2_VOLATILE_HDM_PRES_ERROR
                    && cap3 & CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY != 0;
                assert!(ok_wbi || ok_status2, "{}: {w:?}", ctx());
            }
            // A forwarded action is always one the access wrote a 1 to.
            let wrote = |p: u16, bit: u32| {
                (pos..pos + len as u16)
                    .position(|q| q == p)
                    .is_some_and(|i| value >> (8 * i) & bit != 0)
            };
            assert_eq!(
                result.cache_wbi.is_some(),
                wrote(base + 0x10, 0x2),
                "{}",
                ctx()
            );
            assert_eq!(
                result.cxl_reset_requested,
                wrote(base + 0x10, 0x4),
                "{}",
                ctx()
            );
            if result.clear_volatile_hdm_error.is_some() {
                assert!(wrote(base + 0x12, 0x8), "{}", ctx());
            }
            // Bytes outside the DVSEC are exactly handed back.
            let outside: Vec<(u16, u8)> = (0..len)
                .map(|i| (pos + i as u16, (value >> (8 * i)) as u8))
                .filter(|(p, _)| *p < base || *p >= base + length)
                .collect();
            match result.outside {
                None => assert!(outside.is_empty(), "{}", ctx()),
                Some(o) => {
                    let got: Vec<(u16, u8)> = (0..o.len)
                        .map(|i| (o.pos + i as u16, (o.value >> (8 * i)) as u8))
                        .collect();
                    assert_eq!(got, outside, "{}", ctx());
                }
            }

            let now = view(&shadow, &mut hw, from, to);
            for (i, (p, b)) in (from..to).zip(&now).enumerate() {
                let rel = p.wrapping_sub(base);
                // Read-only bytes (and bytes outside the DVSEC) never change.
                if p < base || p >= base + length || !dvsec_writable(rel) {
                    assert_eq!(*b, initial[i], "{}: byte +{rel:#x}", ctx());
                }
            }
            let control = get16(&now, 0xc);
            assert_eq!(control & control_zero, 0, "{}: control {control:#x}", ctx());
            assert_ne!(control & CXL_DVSEC_CTRL_IO_ENABLE, 0, "{}", ctx());
            let control2 = get16(&now, 0x10);
            assert_eq!(
                control2 & control2_zero,
                0,
                "{}: control2 {control2:#x}",
                ctx()
            );
            let lock_now = get16(&now, 0x14);
            assert_eq!(lock_now & CXL_LOCK_RESERVED_MASK, 0, "{}", ctx());
            for lo in [0x24u16, 0x34] {
                let b = &now[usize::from(lo + 8)..usize::from(lo + 12)];
                assert_eq!(b[0], 0, "{}", ctx());
                assert_eq!(b[1], 0, "{}", ctx());
                assert_eq!(b[2], 0, "{}", ctx());
                assert_eq!(b[3] & 0x0f, 0, "{}", ctx());
            }
            // Status: only Viral_Status may change, and only from 1 to 0.
            let status = get16(&now, 0xe);
            let old_status = get16(&prev, 0xe);
            let viral = CXL_DVSEC_STATUS_VIRAL_STATUS;
            assert_eq!(status & !viral, hw_status & !viral, "{}", ctx());
            assert!(status & viral <= old_status & viral, "{}", ctx());
            // Once CONFIG_LOCK is set, Lock and Control never change until re-initialisation.
            let control_lock = |v: &[u8]| [v[0xc + 8], v[0xd + 8], v[0x14 + 8], v[0x15 + 8]];
            match &locked_view {
                Some(locked) => assert_eq!(control_lock(&now), control_lock(locked), "{}", ctx()),
                None if lock_now & 1 != 0 => locked_view = Some(now.clone()),
                None => {}
            }
            prev = now;
        }
    }
}
