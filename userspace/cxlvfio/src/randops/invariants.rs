//! Comparisons of the real device registers with their values at the start of a run.
//!
//! The tenant may never change a real HDM decoder or the CXL Device DVSEC, except through
//! the documented actions: the driver's own restore of decoder 0 after a reset or power
//! change (which puts back the firmware values, so the registers compare equal once it is
//! done), Initiate Cache Write Back and Invalidate (an action bit of Control2, passed to the
//! device), and clearing Volatile HDM Preservation Error in Status2. Those bits, and Status2
//! (device status the device itself may change), are left out of the DVSEC comparison.

use crate::cxl::{
    dvsec_reg_name, DVSEC_CONTROL2, DVSEC_CTRL2_CACHE_WBI, DVSEC_CTRL2_CXL_RESET, DVSEC_STATUS2,
};

/// Per byte of the CXL Device DVSEC, the bits the comparison ignores (see the module docs).
pub fn dvsec_ignored_bits(len: usize) -> Vec<u8> {
    let mut mask = vec![0u8; len];
    let mut set = |off: usize, bits: u16| {
        for (i, b) in bits.to_le_bytes().iter().enumerate() {
            if let Some(m) = mask.get_mut(off + i) {
                *m |= b;
            }
        }
    };
    set(
        DVSEC_CONTROL2,
        DVSEC_CTRL2_CACHE_WBI | DVSEC_CTRL2_CXL_RESET,
    );
    set(DVSEC_STATUS2, 0xffff);
    mask
}

/// The DVSEC bytes (host view, `now`) that differ from `start` outside the ignored bits, one
/// line per register.
pub fn dvsec_changes(start: &[u8], now: &[u8]) -> Vec<String> {
    if start.len() != now.len() {
        return vec![format!(
            "the DVSEC is {} bytes now, {} at the start",
            now.len(),
            start.len()
        )];
    }
    let ignored = dvsec_ignored_bits(start.len());
    let mut out: Vec<String> = Vec::new();
    for i in 0..start.len() {
        if (start[i] ^ now[i]) & !ignored[i] != 0 {
            let line = format!(
                "{} (+{i:#x}): {:#04x}, {:#04x} at the start",
                dvsec_reg_name(i),
                now[i],
                start[i]
            );
            out.push(line);
        }
    }
    out
}

/// Dwords of the HDM Decoder Capability before decoder 1: the capability and global
/// registers, and decoder 0's.
const HDM_DECODER1_DWORD: usize = 0x30 / 4;

/// The baseline of the real HDM registers for a run: the capability, global and decoder 0
/// registers as before the open (`before`), the other decoders as after it (`opened`).
pub fn baseline_after_open(before: &[u32], opened: &[u32]) -> Vec<u32> {
    if before.len() != opened.len() {
        return before.to_vec();
    }
    before
        .iter()
        .zip(opened)
        .enumerate()
        .map(|(i, (b, o))| if i < HDM_DECODER1_DWORD { *b } else { *o })
        .collect()
}

/// The HDM Decoder Capability dwords (host view) that differ from the start: `(index,
/// now, start)` as lines naming the register.
pub fn hdm_changes(start: &[u32], now: &[u32]) -> Vec<String> {
    if start.len() != now.len() {
        return vec![format!(
            "the HDM block has {} dwords now, {} at the start",
            now.len(),
            start.len()
        )];
    }
    start
        .iter()
        .zip(now)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| {
            format!(
                "{} (+{:#x}): {b:#010x}, {a:#010x} at the start",
                hdm_reg_name(i * 4),
                i * 4
            )
        })
        .collect()
}

/// The name of the register at byte `off` of the HDM Decoder Capability structure.
pub fn hdm_reg_name(off: usize) -> String {
    use crate::cxl::{HDM_DECODER_FIRST, HDM_DECODER_STRIDE};
    match off {
        0x0 => "HDM Decoder Capability".into(),
        0x4 => "Global Control".into(),
        o if o < HDM_DECODER_FIRST => format!("reserved {o:#x}"),
        o => {
            let n = (o - HDM_DECODER_FIRST) / HDM_DECODER_STRIDE;
            let reg = match (o - HDM_DECODER_FIRST) % HDM_DECODER_STRIDE {
                0x0 => "Base Low",
                0x4 => "Base High",
                0x8 => "Size Low",
                0xc => "Size High",
                0x10 => "Control",
                0x14 => "Target List Low",
                0x18 => "Target List High",
                _ => "reserved",
            };
            format!("decoder {n} {reg}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dvsec_ignores_actions_and_status2_only() {
        let start = vec![0u8; 0x3c];
        let mut now = start.clone();
        now[DVSEC_CONTROL2] = 0x06; // WBI and CXL Reset bits
        now[DVSEC_STATUS2] = 0xff;
        now[DVSEC_STATUS2 + 1] = 0x80;
        assert!(dvsec_changes(&start, &now).is_empty());
        now[DVSEC_CONTROL2] |= 0x01; // Cache SBR: not an action of ours
        now[0x24] = 0x10; // Range 1 Base Low
        let c = dvsec_changes(&start, &now);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].starts_with("Control2 (+0x10): 0x07"), "{c:?}");
        assert!(c[1].starts_with("Range 1 Base Low (+0x24)"), "{c:?}");
        assert_eq!(dvsec_changes(&start, &now[..4]).len(), 1);
        // Short DVSECs: the mask stops at their end.
        assert_eq!(dvsec_ignored_bits(0x11).len(), 0x11);
    }

    #[test]
    fn hdm_lines_name_registers() {
        let start = vec![
            0x1u32,
            0x2,
            0,
            0,
            0x9000_0000,
            0x2,
            0x1000_0000,
            0,
            0x400,
            0,
            0,
            0,
        ];
        let mut now = start.clone();
        assert!(hdm_changes(&start, &now).is_empty());
        now[8] = 0; // decoder 0 Control: COMMITTED gone
        let c = hdm_changes(&start, &now);
        assert_eq!(
            c,
            vec!["decoder 0 Control (+0x20): 0x00000000, 0x00000400 at the start"]
        );
        assert_eq!(hdm_changes(&start, &now[..3]).len(), 1);
        assert_eq!(hdm_reg_name(0x4), "Global Control");
        assert_eq!(hdm_reg_name(0x8), "reserved 0x8");
        assert_eq!(hdm_reg_name(0x34), "decoder 1 Base High");
        assert_eq!(hdm_reg_name(0x2c), "decoder 0 reserved");
    }

    #[test]
    fn baseline_keeps_decoder0_from_before_the_open() {
        let before: Vec<u32> = (0..20).map(|i| 0x100 + i).collect();
        let opened: Vec<u32> = (0..20).map(|i| 0x200 + i).collect();
        let b = baseline_after_open(&before, &opened);
        assert_eq!(&b[..12], &before[..12]);
        assert_eq!(&b[12..], &opened[12..]);
        assert_eq!(baseline_after_open(&before, &opened[..4]), before);
    }
}
