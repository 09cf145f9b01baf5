//! Tests of the decoder 0 restore: checks against the firmware configuration and the writes
//! that reprogram it, run against a small model of a device's HDM registers.

use std::vec::Vec;

use super::fixtures::*;
use crate::comp_regs::{firmware_decoder, FirmwareDecoder, HdmLayout};
use crate::regs::*;
use crate::restore::*;

const HDM: usize = QEMU_HDM_OFFSET;
const CTRL: usize = HDM + 0x10 + 0x10;
const BASE_LO: usize = HDM + 0x10;
const BASE_HI: usize = HDM + 0x14;
const SIZE_LO: usize = HDM + 0x18;
const SIZE_HI: usize = HDM + 0x1c;
const GLOBAL: usize = HDM + 0x4;
const HPA: u64 = 0x1_1000_0000;

/// Firmware's view: decoder 0 committed at [`HPA`], 256 MiB, HDM decoding enabled.
fn firmware_snapshot(extra_ctrl: u32) -> Vec<u32> {
    let mut area = qemu_cm_area();
    area[GLOBAL / 4] = CXL_HDM_DECODER_ENABLE;
    area[BASE_LO / 4] = HPA as u32;
    area[BASE_HI / 4] = (HPA >> 32) as u32;
    area[SIZE_LO / 4] = 0x1000_0000;
    area[CTRL / 4] = CXL_HDM_DECODER0_CTRL_COMMITTED | extra_ctrl;
    area
}

/// An HDM block that commits as hardware does: COMMIT set latches COMMITTED, COMMIT clear
/// drops it; a locked decoder ignores writes.
struct Hw {
    regs: Vec<u32>,
    writes: usize,
}

impl Hw {
    fn after_reset() -> Self {
        Self {
            regs: qemu_cm_area(),
            writes: 0,
        }
    }

    fn read(&mut self, offset: usize) -> u32 {
        self.regs[offset / 4]
    }

    fn write(&mut self, offset: usize, value: u32) {
        self.writes += 1;
        let ctrl = self.regs[CTRL / 4];
        let decoder_reg = (BASE_LO..=CTRL).contains(&offset);
        if decoder_reg && ctrl & CXL_HDM_DECODER0_CTRL_LOCK != 0 {
            return;
        }
        if offset == CTRL {
            let committed = if value & CXL_HDM_DECODER0_CTRL_COMMIT != 0 {
                CXL_HDM_DECODER0_CTRL_COMMITTED
            } else {
                0
            };
            self.regs[CTRL / 4] = (value & !CXL_HDM_DECODER0_CTRL_COMMITTED) | committed;
        } else {
            self.regs[offset / 4] = value;
        }
    }
}

fn setup(extra_ctrl: u32) -> (Vec<u32>, HdmLayout, FirmwareDecoder) {
    let snapshot = firmware_snapshot(extra_ctrl);
    let layout = HdmLayout::from_cm_area(&snapshot, false).unwrap();
    let fw = firmware_decoder(&snapshot, &layout).unwrap();
    (snapshot, layout, fw)
}

fn restore(hw: &mut Hw, snapshot: &[u32], layout: &HdmLayout) -> bool {
    let ctrl = hw.read(ctrl_offset(layout));
    match program(snapshot, layout, ctrl) {
        Some(writes) => {
            for (offset, value) in writes.iter().flatten() {
                hw.write(*offset, *value);
            }
            true
        }
        None => false,
    }
}

#[test]
fn firmware_state_checks_clean_and_needs_no_write() {
    let (snapshot, layout, fw) = setup(0);
    let mut hw = Hw {
        regs: snapshot.clone(),
        writes: 0,
    };
    assert_eq!(check(&mut |o| hw.read(o), &layout, &fw), Ok(()));
}

#[test]
fn a_reset_decoder_is_reported_then_restored_exactly() {
    let (snapshot, layout, fw) = setup(0);
    let mut hw = Hw::after_reset();
    assert_eq!(
        check(&mut |o| hw.read(o), &layout, &fw),
        Err(DecoderMismatch::Disabled)
    );
    assert!(restore(&mut hw, &snapshot, &layout));
    assert!(commit_settled(hw.read(CTRL)));
    assert_eq!(check(&mut |o| hw.read(o), &layout, &fw), Ok(()));
    for reg in [BASE_LO, BASE_HI, SIZE_LO, SIZE_HI] {
        assert_eq!(hw.read(reg), snapshot[reg / 4], "register {reg:#x}");
    }
    assert_eq!(hw.writes, 6, "no uncommit needed after a reset");
}

#[test]
fn each_mismatch_is_named() {
    let (snapshot, layout, fw) = setup(0);
    let cases: [(usize, u32, DecoderMismatch); 5] = [
        (CTRL, 0, DecoderMismatch::NotCommitted),
        (
            CTRL,
            CXL_HDM_DECODER0_CTRL_COMMIT_ERROR,
            DecoderMismatch::CommitError,
        ),
        (BASE_LO, 0x2000_0000, DecoderMismatch::Base),
        (SIZE_LO, 0x2000_0000, DecoderMismatch::Size),
        (CTRL, u32::MAX, DecoderMismatch::NotResponding),
    ];
    for (reg, value, expected) in cases {
        let mut regs = snapshot.clone();
        regs[reg / 4] = value;
        assert_eq!(
            check(&mut |o| regs[o / 4], &layout, &fw),
            Err(expected),
            "register {reg:#x} = {value:#x}"
        );
    }
    // Reserved low bits of base and size do not matter.
    let mut regs = snapshot.clone();
    regs[BASE_LO / 4] |= 0x0fff_ffff;
    regs[SIZE_LO / 4] |= 0x0000_0fff;
    assert_eq!(check(&mut |o| regs[o / 4], &layout, &fw), Ok(()));
}

#[test]
fn a_decoder_committed_elsewhere_is_uncommitted_first() {
    let (snapshot, layout, fw) = setup(0);
    let mut hw = Hw {
        regs: snapshot.clone(),
        writes: 0,
    };
    hw.regs[BASE_LO / 4] = 0x2000_0000;
    let writes = program(&snapshot, &layout, hw.read(CTRL)).unwrap();
    let (offset, value) = writes[0].expect("uncommit comes first");
    assert_eq!(offset, CTRL);
    assert_eq!(value & CXL_HDM_DECODER0_CTRL_COMMIT, 0);
    assert!(restore(&mut hw, &snapshot, &layout));
    assert_eq!(check(&mut |o| hw.read(o), &layout, &fw), Ok(()));
}

#[test]
fn a_locked_decoder_with_other_values_cannot_be_restored() {
    let (snapshot, layout, fw) = setup(CXL_HDM_DECODER0_CTRL_LOCK);
    let mut regs = snapshot.clone();
    regs[BASE_HI / 4] = 0x7;
    assert_eq!(
        check(&mut |o| regs[o / 4], &layout, &fw),
        Err(DecoderMismatch::Locked)
    );
    assert!(program(&snapshot, &layout, regs[CTRL / 4]).is_none());
    // Locked with the firmware values is fine.
    assert_eq!(check(&mut |o| snapshot[o / 4], &layout, &fw), Ok(()));
}

#[test]
fn the_commit_write_keeps_firmware_attributes_and_drops_status_bits() {
    let (snapshot, layout, _) = setup(0x3 | CXL_HDM_DECODER0_CTRL_COMMIT_ERROR);
    let writes = program(&snapshot, &layout, 0).unwrap();
    let (offset, value) = writes[6].unwrap();
    assert_eq!(offset, CTRL);
    assert_eq!(value & 0xf, 0x3, "interleave granularity kept");
    assert_eq!(
        value & (CXL_HDM_DECODER0_CTRL_COMMITTED | CXL_HDM_DECODER0_CTRL_COMMIT_ERROR),
        0
    );
    assert_ne!(value & CXL_HDM_DECODER0_CTRL_COMMIT, 0);
    let (goffset, gvalue) = writes[1].unwrap();
    assert_eq!(goffset, GLOBAL);
    assert_ne!(gvalue & CXL_HDM_DECODER_ENABLE, 0);
    assert!(
        program(&snapshot[..4], &layout, 0).is_none(),
        "short snapshot"
    );
}
