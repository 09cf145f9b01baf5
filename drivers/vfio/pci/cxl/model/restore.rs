// SPDX-License-Identifier: GPL-2.0

//! Restoring HDM decoder 0 to its firmware configuration after a reset.
//!
//! A function reset or a secondary bus reset clears the endpoint's HDM decoders on real
//! hardware as on QEMU's device. The DPA region may only be used again once decoder 0 decodes
//! exactly the host physical range that firmware committed (and that the driver claimed): the
//! driver reads decoder 0 back, programs it from the probe-time snapshot when it differs, and
//! checks it again. Offsets here are byte offsets in the CXL.mem area (component block +
//! `0x1000`).

use super::comp_regs::{FirmwareDecoder, HdmLayout};
use super::regs::*;

/// Why decoder 0 does not decode the firmware range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecoderMismatch {
    /// The registers read all ones: the device does not respond.
    NotResponding,
    /// Decoder 0 is not committed.
    NotCommitted,
    /// The device reported a commit error.
    CommitError,
    /// Committed with another base address.
    Base,
    /// Committed with another size.
    Size,
    /// Committed and locked with another configuration: it cannot be reprogrammed.
    Locked,
    /// The HDM decoders are globally disabled.
    Disabled,
    /// The device memory did not become active again (DVSEC range 1 Memory_Active) in time.
    MemoryInactive,
}

impl core::fmt::Display for DecoderMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotResponding => "the component registers do not respond",
            Self::NotCommitted => "decoder 0 is not committed",
            Self::CommitError => "decoder 0 reports a commit error",
            Self::Base => "decoder 0 has another base address",
            Self::Size => "decoder 0 has another size",
            Self::Locked => "decoder 0 is locked with another configuration",
            Self::Disabled => "HDM decoding is disabled",
            Self::MemoryInactive => "the device memory is not active (DVSEC Memory_Active clear)",
        })
    }
}

/// Offset of the HDM Decoder Global Control register.
pub(crate) fn global_ctrl_offset(layout: &HdmLayout) -> usize {
    layout.hdm_offset() + CXL_HDM_DECODER_CTRL_OFFSET
}

/// Offset of decoder 0's Control register.
pub(crate) fn ctrl_offset(layout: &HdmLayout) -> usize {
    layout.hdm_offset() + cxl_hdm_decoder0_ctrl_offset(0)
}

/// Checks decoder 0 as `read` (a 32-bit register read at a CXL.mem area offset) returns it
/// against the firmware configuration.
pub(crate) fn check(
    read: &mut dyn FnMut(usize) -> u32,
    layout: &HdmLayout,
    firmware: &FirmwareDecoder,
) -> Result<(), DecoderMismatch> {
    let hdm = layout.hdm_offset();
    let ctrl = read(ctrl_offset(layout));
    if ctrl == !0 {
        return Err(DecoderMismatch::NotResponding);
    }
    if read(global_ctrl_offset(layout)) & CXL_HDM_DECODER_ENABLE == 0 {
        return Err(DecoderMismatch::Disabled);
    }
    if ctrl & CXL_HDM_DECODER0_CTRL_COMMIT_ERROR != 0 {
        return Err(DecoderMismatch::CommitError);
    }
    if ctrl & CXL_HDM_DECODER0_CTRL_COMMITTED == 0 {
        return Err(DecoderMismatch::NotCommitted);
    }
    let addr = |hi: u32, lo: u32| {
        (u64::from(hi) << 32) | u64::from(lo & !CXL_HDM_DECODER_BASE_LO_RESERVED_MASK)
    };
    let base = addr(
        read(hdm + cxl_hdm_decoder0_base_high_offset(0)),
        read(hdm + cxl_hdm_decoder0_base_low_offset(0)),
    );
    let size = addr(
        read(hdm + cxl_hdm_decoder0_size_high_offset(0)),
        read(hdm + cxl_hdm_decoder0_size_low_offset(0)),
    );
    let locked = ctrl & CXL_HDM_DECODER0_CTRL_LOCK != 0;
    match (base == firmware.base, size == firmware.size) {
        (true, true) => Ok(()),
        _ if locked => Err(DecoderMismatch::Locked),
        (false, _) => Err(DecoderMismatch::Base),
        (true, false) => Err(DecoderMismatch::Size),
    }
}

/// A register write: (offset in the CXL.mem area, value).
pub(crate) type RegWrite = (usize, u32);

/// The writes that program decoder 0 from `snapshot` (the CXL.mem area as read at probe, when
/// firmware had committed it) and commit it, in order: global enable first, then base and size,
/// then Control with COMMIT set. `current_ctrl` is decoder 0's Control register now: a decoder
/// that is committed with other values is first uncommitted. `None` when the snapshot does not
/// cover the registers or decoder 0 is locked (it cannot be changed).
pub(crate) fn program(
    snapshot: &[u32],
    layout: &HdmLayout,
    current_ctrl: u32,
) -> Option<[Option<RegWrite>; 7]> {
    let hdm = layout.hdm_offset();
    let snap = |offset: usize| snapshot.get(offset / 4).copied();
    if current_ctrl & CXL_HDM_DECODER0_CTRL_LOCK != 0 && current_ctrl != !0 {
        return None;
    }
    let fw_ctrl = snap(ctrl_offset(layout))?;
    let status = CXL_HDM_DECODER0_CTRL_COMMIT
        | CXL_HDM_DECODER0_CTRL_COMMITTED
        | CXL_HDM_DECODER0_CTRL_COMMIT_ERROR;
    let uncommit = (current_ctrl != !0 && current_ctrl & CXL_HDM_DECODER0_CTRL_COMMITTED != 0)
        .then_some((ctrl_offset(layout), current_ctrl & !status));
    let reg = |offset: usize| snap(offset).map(|v| (offset, v));
    Some([
        uncommit,
        Some((
            global_ctrl_offset(layout),
            snap(global_ctrl_offset(layout))? | CXL_HDM_DECODER_ENABLE,
        )),
        Some(reg(hdm + cxl_hdm_decoder0_base_low_offset(0))?),
        Some(reg(hdm + cxl_hdm_decoder0_base_high_offset(0))?),
        Some(reg(hdm + cxl_hdm_decoder0_size_low_offset(0))?),
        Some(reg(hdm + cxl_hdm_decoder0_size_high_offset(0))?),
        Some((
            ctrl_offset(layout),
            (fw_ctrl & !status) | CXL_HDM_DECODER0_CTRL_COMMIT,
        )),
    ])
}

/// Whether a Control value read while waiting for a commit shows its outcome.
pub(crate) fn commit_settled(ctrl: u32) -> bool {
    ctrl == !0 || ctrl & (CXL_HDM_DECODER0_CTRL_COMMITTED | CXL_HDM_DECODER0_CTRL_COMMIT_ERROR) != 0
}
