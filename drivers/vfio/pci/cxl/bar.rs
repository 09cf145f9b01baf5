// SPDX-License-Identifier: GPL-2.0

//! The component register BAR: the accelerator's own register windows stay directly mappable,
//! the CXL component register block is never reachable.
//!
//! - `VFIO_DEVICE_GET_REGION_INFO` reports the BAR's real size and a sparse mmap capability
//!   listing the page-aligned parts outside the block (none, and no `MMAP` flag, when the block
//!   fills the BAR).
//! - `mmap` of any part that holds a byte of the block fails with `EINVAL`.
//! - `read`/`write` of the block through the BAR region are emulated: its CXL.mem area with the
//!   COMP_REGS rules and shadow, the rest from the probe-time snapshot, writes there dropped.
//!   Everything outside the block goes to vfio-pci-core, as with vfio-pci.

use crate::model::{
    comp_regs, info,
    regs::{CXL_CM_OFFSET, CXL_COMPONENT_REG_BLOCK_SIZE},
    sparse,
};
use crate::{detect::CxlDevice, CxlVfioPci};
use kernel::{
    mm::virt::VmArea,
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    uaccess::{UserPtr, UserSlice},
    vfio::pci::{self as vfio_pci, CoreDevice, IoeventfdRequest, RegionInfoReply},
};

/// Size of the component BAR, 0 if it is gone.
fn bar_size(dev: &CoreDevice<CxlVfioPci>, cxl: &CxlDevice) -> u64 {
    dev.pci_dev().bar(cxl.comp_bar).map_or(0, |bar| bar.len())
}

/// Size of the block as the BAR holds it.
fn block_len(cxl: &CxlDevice) -> u64 {
    (cxl.block_regs.len() * 4) as u64
}

/// The COMP_REGS region's capability: where the block is.
pub(crate) fn comp_regs_cap(cxl: &CxlDevice) -> [u8; info::CAP_COMP_REGS_SIZE] {
    info::comp_regs_cap(cxl.comp_bar, cxl.comp_offset, block_len(cxl))
}

/// Adds to vfio-pci-core's `VFIO_DEVICE_GET_REGION_INFO` reply for the component BAR: the
/// page-aligned parts outside the block in a sparse mmap capability, and no `MMAP` flag when
/// there are none.
pub(crate) fn region_info(
    dev: &CoreDevice<CxlVfioPci>,
    cxl: &CxlDevice,
    reply: &mut RegionInfoReply<'_>,
) -> Result {
    if reply.size() == 0 {
        return Ok(());
    }
    let areas = sparse::sparse_areas(bar_size(dev, cxl), cxl.comp_offset, PAGE_SIZE as u64);
    let mappable = reply.flags() & info::VFIO_REGION_INFO_FLAG_MMAP != 0;
    reply.set_flags(info::comp_bar_flags(reply.flags(), &areas));
    match info::sparse_mmap_cap(&areas) {
        Some((cap, len)) if mappable => reply.add_cap(&cap[..len]),
        _ => Ok(()),
    }
}

/// Whether a mapping of the device file may be made: never one of the component BAR that
/// holds a byte of the block.
pub(crate) fn mmap_allowed(dev: &CoreDevice<CxlVfioPci>, cxl: &CxlDevice, vma: &VmArea) -> bool {
    let pos = (vma.pgoff() as u64) << PAGE_SHIFT;
    if vfio_pci::offset_to_index(pos) != cxl.comp_bar {
        return true;
    }
    sparse::mmap_allowed(
        bar_size(dev, cxl),
        cxl.comp_offset,
        PAGE_SIZE as u64,
        vfio_pci::offset_in_region(pos),
        vma.len() as u64,
    )
}

/// `VFIO_DEVICE_IOEVENTFD`: an ioeventfd writes the BAR from the kernel when signalled,
/// bypassing read and write, so none may be added on the block. The request is copied once;
/// the check and vfio-pci-core see that one copy. Removals (`fd` -1) go through: none can
/// exist on the block.
pub(crate) fn ioeventfd(
    dev: &CoreDevice<CxlVfioPci>,
    cxl: &CxlDevice,
    arg: usize,
) -> Result<isize> {
    let req = IoeventfdRequest::from_user(arg)?;
    if !req.is_removal() {
        // A request naming no single size is refused by vfio-pci-core; check it as 8 bytes
        // so that no combination slips through here.
        let count = req.size().unwrap_or(8);
        let pos = req.offset();
        if vfio_pci::offset_to_index(pos) == cxl.comp_bar
            && touches_block(dev, cxl, vfio_pci::offset_in_region(pos), count)
        {
            return Err(EINVAL);
        }
    }
    dev.core_ioeventfd(&req)
}

/// Whether an access of `count` bytes at `offset` of the component BAR touches the block.
pub(crate) fn touches_block(
    dev: &CoreDevice<CxlVfioPci>,
    cxl: &CxlDevice,
    offset: u64,
    count: usize,
) -> bool {
    sparse::touches_block(bar_size(dev, cxl), cxl.comp_offset, offset, count as u64)
}

/// A read or write of `count` bytes at `start` of the component BAR that touches the block:
/// the block's bytes are emulated, the bytes around it go to vfio-pci-core. Returns the bytes
/// transferred.
pub(crate) fn rw(
    dev: &CoreDevice<CxlVfioPci>,
    cxl: &CxlDevice,
    buf: UserPtr,
    count: usize,
    start: u64,
    write: bool,
) -> Result<usize> {
    let region_start = vfio_pci::index_to_offset(cxl.comp_bar);
    let (block_start, block_end) = sparse::block_range(bar_size(dev, cxl), cxl.comp_offset);
    let mut done = 0usize;
    while done < count {
        let cur = start + done as u64;
        let remaining = (count - done) as u64;
        let in_block = cur >= block_start && cur < block_end;
        let len = if in_block {
            remaining.min(block_end - cur)
        } else if cur < block_start {
            remaining.min(block_start - cur)
        } else {
            remaining
        } as usize;
        let user = buf + done;
        let step = if in_block {
            block_rw(dev, cxl, user, cur - block_start, len, write)
        } else {
            let mut core_pos = (region_start + cur) as i64;
            if write {
                dev.core_write(user, len, &mut core_pos)
            } else {
                dev.core_read(user, len, &mut core_pos)
            }
        };
        match step {
            Ok(n) => {
                done += n;
                if n < len {
                    break;
                }
            }
            // Report what was done before the failure, as a short transfer.
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// `len` bytes at offset `rel` of the block. User memory is copied outside the shadow lock.
fn block_rw(
    dev: &CoreDevice<CxlVfioPci>,
    cxl: &CxlDevice,
    buf: UserPtr,
    rel: u64,
    len: usize,
    write: bool,
) -> Result<usize> {
    let rel = usize::try_from(rel).map_err(|_| EINVAL)?;
    let end = rel.checked_add(len).ok_or(EINVAL)?;
    if end > CXL_COMPONENT_REG_BLOCK_SIZE {
        return Err(EINVAL);
    }
    // The part of the block that COMP_REGS emulates.
    let cm_start = CXL_CM_OFFSET;
    let cm_end = CXL_CM_OFFSET + cxl.layout.region_size();
    let touches_cm = rel < cm_end && end > cm_start;
    let mut bytes = KVec::new();
    bytes.extend_with(len, 0u8, GFP_KERNEL)?;
    if write {
        // Writes reach the emulated registers as whole aligned dwords only, as COMP_REGS
        // takes them; anything else there changes nothing.
        if touches_cm && (rel % 4 != 0 || len % 4 != 0) {
            return Err(EINVAL);
        }
        UserSlice::new(buf, len).reader().read_slice(&mut bytes)?;
        if touches_cm {
            let mut open = CxlVfioPci::lock_shadows(dev, cxl)?;
            for (i, word) in bytes.chunks_exact(4).enumerate() {
                let at = rel + 4 * i;
                if (cm_start..cm_end).contains(&at) {
                    let value = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                    comp_regs::write(&mut open.comp_regs, &cxl.layout, (at - cm_start) / 4, value);
                }
            }
        }
    } else {
        let open = if touches_cm {
            Some(CxlVfioPci::lock_shadows(dev, cxl)?)
        } else {
            None
        };
        for (i, byte) in bytes.iter_mut().enumerate() {
            let at = rel + i;
            let word = match &open {
                Some(open) if (cm_start..cm_end).contains(&at) => {
                    comp_regs::read(&open.comp_regs, (at - cm_start) / 4)
                }
                _ => cxl.block_regs.get(at / 4).copied().unwrap_or(0),
            };
            *byte = word.to_le_bytes()[at % 4];
        }
        drop(open);
        UserSlice::new(buf, len).writer().write_slice(&bytes)?;
    }
    Ok(len)
}
