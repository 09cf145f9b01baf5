//! The driver's bytes in the info replies (`info::CxlCap::to_bytes`, `comp_bar_flags`,
//! `sparse_mmap_cap`, `comp_regs_cap`), end to end: each capability is chained into a reply the
//! way vfio does it (`vfio_info_add_capability`, `vfio_info_cap_shift` and the `argsz`
//! protocol of vfio-pci-core), and the reply is read back with the project's userspace parser
//! (`cxlvfio::vfio::parse_cap_chain`).
//!
//! Checked: every capability has the UAPI size, id and version, its fields read back as given
//! and its reserved bytes are 0; the chain's offsets are 8-byte aligned, increasing, inside
//! the reply and end with 0; `argsz` covers the chain; the sparse capability lists exactly the
//! areas, in order; the BAR's flags only ever lose `MMAP`, and only when nothing is mappable.

use arbitrary::{Arbitrary, Unstructured};
use cxl_model::fuzz_api::{self as m, CxlCap};
use cxlvfio::vfio::parse_cap_chain;

use crate::Enc;

/// `sizeof(struct vfio_device_info)`.
const DEVICE_INFO_SIZE: usize = 24;
/// `sizeof(struct vfio_region_info)`.
const REGION_INFO_SIZE: usize = 32;
/// `sizeof(struct vfio_info_cap_header)`.
const CAP_HEADER: usize = 8;
/// `VFIO_DEVICE_INFO_CAP_CXL`.
const DEVICE_INFO_CAP_CXL: u16 = 6;
/// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`.
const CAP_SPARSE_MMAP: u16 = 1;
/// `VFIO_REGION_INFO_CAP_TYPE`.
const CAP_TYPE: u16 = 2;
/// `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`.
const CAP_MSIX_MAPPABLE: u16 = 3;
/// `VFIO_REGION_INFO_CAP_CXL_COMP_REGS`.
const CAP_COMP_REGS: u16 = 6;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
const FLAG_MMAP: u32 = 1 << 2;

/// A decoded input.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Input {
    /// `VFIO_DEVICE_INFO_CAP_CXL`: BAR.
    pub bar: u8,
    /// `VFIO_DEVICE_INFO_CAP_CXL`: flags.
    pub flags: u32,
    /// `VFIO_DEVICE_INFO_CAP_CXL`: CXL.mem area offset.
    pub hdm_regs_offset: u64,
    /// `VFIO_DEVICE_INFO_CAP_CXL`: DPA region index.
    pub dpa_region_index: u32,
    /// `VFIO_DEVICE_INFO_CAP_CXL`: COMP_REGS region index.
    pub comp_regs_region_index: u32,
    /// The `argsz` the user passes.
    pub argsz: u32,
    /// vfio-pci-core's flags of the component BAR.
    pub core_flags: u32,
    /// Areas: from `sparse_areas` of this BAR size, block offset and page shift...
    pub bar_size: u64,
    /// ... the block offset ...
    pub block_offset: u64,
    /// ... and page shift (`% 64`); or, with `raw`, these as given.
    pub page_shift: u8,
    /// Use `raw_areas` instead.
    pub raw: bool,
    /// Areas as given.
    pub raw_areas: [Option<(u64, u64)>; 2],
    /// Whether vfio-pci-core puts an MSI-X mappable capability first.
    pub msix_mappable: bool,
}

impl Input {
    /// The bytes that decode to `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.u8(self.bar)
            .u32(self.flags)
            .u64(self.hdm_regs_offset)
            .u32(self.dpa_region_index)
            .u32(self.comp_regs_region_index)
            .u32(self.argsz)
            .u32(self.core_flags)
            .u64(self.bar_size)
            .u64(self.block_offset)
            .u8(self.page_shift)
            .bool(self.raw);
        for a in self.raw_areas {
            e.bool(a.is_some());
            if let Some((o, s)) = a {
                e.u64(o).u64(s);
            }
        }
        e.bool(self.msix_mappable);
        e.finish()
    }
}

/// A reply being built, as `struct vfio_info_cap`: the capabilities, each 8-byte aligned,
/// chained by `next` offsets relative to the chain's start until shifted.
#[derive(Default)]
struct Caps {
    buf: Vec<u8>,
}

impl Caps {
    /// `vfio_info_add_capability`: a header with `cap`'s id and version, then `cap`'s body.
    fn add(&mut self, cap: &[u8]) {
        assert!(
            cap.len() >= CAP_HEADER,
            "capability shorter than its header"
        );
        let at = self.buf.len();
        self.buf.resize(at + cap.len().next_multiple_of(8), 0);
        self.buf[at..at + 4].copy_from_slice(&cap[..4]);
        self.buf[at + CAP_HEADER..at + cap.len()].copy_from_slice(&cap[CAP_HEADER..]);
        // Append to the chain.
        let mut tail = 0;
        loop {
            let next = u32_at(&self.buf, tail + 4) as usize;
            if next == 0 {
                break;
            }
            tail = next;
        }
        if at != 0 {
            self.buf[tail + 4..tail + 8].copy_from_slice(&(at as u32).to_le_bytes());
        }
    }

    /// The reply vfio-pci-core copies out for an info structure of `info_size` bytes and the
    /// user's `argsz`: `(argsz, cap_offset, bytes)`.
    fn reply(mut self, info_size: usize, argsz: u32) -> (u32, u32, Vec<u8>) {
        let mut out = vec![0u8; info_size];
        if self.buf.is_empty() {
            return (argsz, 0, out);
        }
        let need = info_size + self.buf.len();
        if (argsz as usize) < need {
            // Too small: the user learns the size, and no capability.
            return (need as u32, 0, out);
        }
        // vfio_info_cap_shift.
        let mut at = 0;
        loop {
            let next = u32_at(&self.buf, at + 4) as usize;
            if next == 0 {
                break;
            }
            let shifted = (next + info_size) as u32;
            self.buf[at + 4..at + 8].copy_from_slice(&shifted.to_le_bytes());
            at = next;
        }
        out.extend_from_slice(&self.buf);
        (argsz, info_size as u32, out)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Walks a reply's chain and checks its shape: returns `(id, version, offset)` each.
fn check_chain(reply: &[u8], cap_offset: u32, want_ids: &[u16]) -> Vec<cxlvfio::vfio::Capability> {
    let caps = parse_cap_chain(reply, cap_offset);
    let ids: Vec<u16> = caps.iter().map(|c| c.id).collect();
    assert_eq!(ids, want_ids, "chain ids");
    let mut prev = 0;
    for (i, c) in caps.iter().enumerate() {
        assert_eq!(c.offset % 8, 0, "capability {i} misaligned");
        assert!(
            c.offset >= prev + if i == 0 { 0 } else { CAP_HEADER },
            "chain goes back"
        );
        assert!(c.offset + CAP_HEADER <= reply.len());
        prev = c.offset;
        let next = u32_at(reply, c.offset + 4) as usize;
        if i + 1 == caps.len() {
            assert_eq!(next, 0, "last capability's next");
        } else {
            assert!(
                next > c.offset && next < reply.len(),
                "capability {i} next {next:#x}"
            );
        }
    }
    caps
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };

    // VFIO_DEVICE_GET_INFO: VFIO_DEVICE_INFO_CAP_CXL.
    let cap = CxlCap {
        bar: input.bar,
        flags: input.flags,
        hdm_regs_offset: input.hdm_regs_offset,
        dpa_region_index: input.dpa_region_index,
        comp_regs_region_index: input.comp_regs_region_index,
    };
    let b = cap.to_bytes(0);
    assert_eq!(b.len(), 32, "sizeof(struct vfio_device_info_cap_cxl)");
    assert_eq!(u16::from_le_bytes([b[0], b[1]]), DEVICE_INFO_CAP_CXL);
    assert_eq!(u16::from_le_bytes([b[2], b[3]]), 1, "version");
    assert_eq!(u32_at(&b, 4), 0, "next: vfio's");
    assert_eq!(cap.to_bytes(0x1234)[4..8], 0x1234u32.to_le_bytes());
    assert_eq!(cap.to_bytes(0x1234)[8..], b[8..], "next changed a field");
    let mut caps = Caps::default();
    caps.add(&b);
    let (argsz, cap_offset, reply) = caps.reply(DEVICE_INFO_SIZE, input.argsz);
    assert!(argsz as usize >= DEVICE_INFO_SIZE + 32);
    if cap_offset == 0 {
        assert_eq!(argsz as usize, DEVICE_INFO_SIZE + 32);
        assert!((input.argsz as usize) < DEVICE_INFO_SIZE + 32);
    } else {
        let chain = check_chain(&reply, cap_offset, &[DEVICE_INFO_CAP_CXL]);
        assert_eq!(reply.len(), DEVICE_INFO_SIZE + 32);
        let c = chain[0].cxl_device().expect("VFIO_DEVICE_INFO_CAP_CXL");
        assert_eq!(c.hdm_regs_bar_index, input.bar);
        assert_eq!(c.reserved, [0; 3], "reserved bytes");
        assert_eq!(c.flags, input.flags);
        assert_eq!(c.hdm_regs_offset, input.hdm_regs_offset);
        assert_eq!(c.dpa_region_index, input.dpa_region_index);
        assert_eq!(c.comp_regs_region_index, input.comp_regs_region_index);
    }

    // VFIO_DEVICE_GET_REGION_INFO of the component BAR: flags and the sparse capability, as
    // bar.rs builds them.
    let areas = if input.raw {
        input.raw_areas
    } else {
        m::sparse_areas(
            input.bar_size,
            input.block_offset,
            1 << (input.page_shift % 64),
        )
    };
    let listed: Vec<(u64, u64)> = areas.iter().flatten().copied().collect();
    let flags = m::comp_bar_flags(input.core_flags, &areas);
    assert_eq!(
        flags & !FLAG_MMAP,
        input.core_flags & !FLAG_MMAP,
        "flags beyond MMAP changed"
    );
    assert_eq!(
        flags & FLAG_MMAP != 0,
        input.core_flags & FLAG_MMAP != 0 && !listed.is_empty()
    );
    let sparse = m::sparse_mmap_cap(&areas);
    assert_eq!(sparse.is_some(), !listed.is_empty());
    let mut caps = Caps::default();
    let mut ids = Vec::new();
    if input.msix_mappable {
        caps.add(&[3, 0, 1, 0, 0, 0, 0, 0]);
        ids.push(CAP_MSIX_MAPPABLE);
    }
    if let Some((cap, len)) = sparse {
        assert_eq!(len, 16 + 16 * listed.len(), "sparse capability length");
        assert!(len <= m::CAP_SPARSE_MAX);
        assert_eq!(cap[..4], [1, 0, 1, 0], "SPARSE_MMAP, version 1");
        assert_eq!(u32_at(&cap, 4), 0, "next: vfio's");
        assert_eq!(u32_at(&cap, 12), 0, "reserved");
        assert!(
            cap[len..].iter().all(|&b| b == 0),
            "bytes past the capability"
        );
        if input.core_flags & FLAG_MMAP != 0 {
            caps.add(&cap[..len]);
            ids.push(CAP_SPARSE_MMAP);
        }
    }
    let (argsz, cap_offset, reply) = caps.reply(REGION_INFO_SIZE, input.argsz);
    if cap_offset != 0 {
        let chain = check_chain(&reply, cap_offset, &ids);
        if let Some(c) = chain.iter().find(|c| c.id == CAP_SPARSE_MMAP) {
            let got: Vec<(u64, u64)> = c
                .sparse_mmap_areas()
                .expect("sparse areas")
                .iter()
                .map(|a| (a.offset, a.size))
                .collect();
            assert_eq!(got, listed, "sparse areas");
        }
    } else if !ids.is_empty() {
        assert!(argsz > input.argsz);
    }

    // VFIO_DEVICE_GET_REGION_INFO of COMP_REGS: the type capability, then the driver's.
    let block_size = input.bar_size.min(0x1_0000);
    let c = m::comp_regs_cap(u32::from(input.bar), input.block_offset, block_size);
    assert_eq!(
        c.len(),
        32,
        "sizeof(struct vfio_region_info_cap_cxl_comp_regs)"
    );
    assert_eq!(c[..4], [6, 0, 1, 0], "COMP_REGS, version 1");
    assert_eq!(u32_at(&c, 4), 0, "next: vfio's");
    assert_eq!(u32_at(&c, 12), 0, "pad");
    let mut type_cap = vec![2, 0, 1, 0, 0, 0, 0, 0];
    type_cap.extend_from_slice(&(1u32 << 31).to_le_bytes());
    type_cap.extend_from_slice(&2u32.to_le_bytes());
    let mut caps = Caps::default();
    caps.add(&type_cap);
    caps.add(&c);
    let (_, cap_offset, reply) = caps.reply(REGION_INFO_SIZE, input.argsz);
    if cap_offset != 0 {
        let chain = check_chain(&reply, cap_offset, &[CAP_TYPE, CAP_COMP_REGS]);
        let r = chain[1].cxl_comp_regs().expect("COMP_REGS capability");
        assert_eq!(r.bar_index, u32::from(input.bar));
        assert_eq!(r.pad, 0);
        assert_eq!(r.block_offset, input.block_offset);
        assert_eq!(r.block_size, block_size);
        assert_eq!(u64_at(&c, 16), input.block_offset);
    }
}

/// The seed corpus.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    const K: u64 = 1024;
    // cxl-accel in the test VM: BAR 0, block at 128 KiB, DPA region 9, COMP_REGS 10.
    let accel = Input {
        bar: 0,
        flags: 1 | 2, // FIRMWARE_COMMITTED, CACHE_CAPABLE
        hdm_regs_offset: 128 * K + 0x1000,
        dpa_region_index: 9,
        comp_regs_region_index: 10,
        argsz: 4096,
        core_flags: 0x1 | 0x2 | 0x4 | 0x8,
        bar_size: 256 * K,
        block_offset: 128 * K,
        page_shift: 12,
        raw: false,
        raw_areas: [None, None],
        msix_mappable: false,
    };
    // QEMU cxl-type3: the block fills BAR 0; no committed decoder, no DPA region.
    let type3 = Input {
        flags: 0,
        hdm_regs_offset: 0x1000,
        dpa_region_index: u32::MAX,
        bar_size: 64 * K,
        block_offset: 0,
        ..accel
    };
    // The user's first call: argsz = sizeof(struct vfio_device_info).
    let small = Input {
        argsz: DEVICE_INFO_SIZE as u32,
        ..accel
    };
    let raw = Input {
        raw: true,
        raw_areas: [Some((0, 64 * K)), Some((192 * K, 64 * K))],
        msix_mappable: true,
        ..accel
    };
    vec![
        ("cxl-accel-middle", accel.encode()),
        ("qemu-type3", type3.encode()),
        ("argsz-too-small", small.encode()),
        ("raw-areas-msix", raw.encode()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_as_built() {
        for (name, bytes) in seeds() {
            let input = Input::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
            assert_eq!(input.encode(), bytes, "{name}");
        }
    }
}
