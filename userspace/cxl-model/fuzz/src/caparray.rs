//! The CXL.mem capability array parser and the HDM layout built from it
//! (`caparray::CapArray`, `find_hdm`, `decoder_count`, `comp_regs::HdmLayout`).
//!
//! Input: `cache_capable: bool`, `probe_offset: u16`, `probe_cap: u32`, then the CXL.mem area
//! snapshot, little-endian dwords (at most 0x400, the area's size; a trailing partial dword is
//! dropped). The parse is compared with a reference parser written from CXL r3.1 8.2.4 and
//! 8.2.4.20.1; `HdmLayout::new(probe_offset, probe_cap)` with the rules it documents.

use arbitrary::Unstructured;
use cxl_model::fuzz_api::{self as m, CapError, HdmInfo, HdmLayout};

use crate::layouts::*;
use crate::Enc;

/// Size in bytes of the CXL.mem area.
const CM_SIZE: usize = 0x1000;

/// A decoded input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// DVSEC Capability.Cache_Capable, for the layout.
    pub cache_capable: bool,
    /// An HDM offset for `HdmLayout::new`.
    pub probe_offset: u16,
    /// An HDM capability register for `HdmLayout::new`.
    pub probe_cap: u32,
    /// The CXL.mem area.
    pub area: Vec<u32>,
}

impl Input {
    /// Decodes `data`.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let mut u = Unstructured::new(data);
        let cache_capable = u.arbitrary().ok()?;
        let probe_offset = u.arbitrary().ok()?;
        let probe_cap = u.arbitrary().ok()?;
        let rest = u.take_rest();
        let area = rest
            .chunks_exact(4)
            .take(CM_SIZE / 4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some(Self {
            cache_capable,
            probe_offset,
            probe_cap,
            area,
        })
    }

    /// The bytes that decode to `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.bool(self.cache_capable)
            .u16(self.probe_offset)
            .u32(self.probe_cap);
        for d in &self.area {
            e.u32(*d);
        }
        e.finish()
    }
}

/// Decoder count of an HDM Decoder Capability register (CXL r3.1 Table 8-115).
pub fn ref_decoder_count(cap: u32) -> Option<usize> {
    const COUNTS: [usize; 13] = [1, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32];
    COUNTS.get((cap & 0xf) as usize).copied()
}

/// The reference parse of a CXL.mem area: `Ok` as `find_hdm`, or every error the first fault
/// found may be reported as.
fn ref_find_hdm(area: &[u32]) -> Result<HdmInfo, Vec<CapError>> {
    let Some(&header) = area.first() else {
        return Err(vec![CapError::AreaEmpty]);
    };
    if header & 0xffff != 1 {
        return Err(vec![CapError::BadHeaderId(header as u16)]);
    }
    let size = (header >> 24) as usize;
    if size == 0 {
        return Err(vec![CapError::EmptyArray]);
    }
    if size + 1 > area.len() {
        return Err(vec![CapError::ArrayTooLarge(size)]);
    }
    for &entry in &area[1..=size] {
        let ptr = (entry >> 20) as usize;
        let mut faults = Vec::new();
        if !ptr.is_multiple_of(4) {
            faults.push(CapError::MisalignedPointer(ptr));
        }
        if ptr / 4 >= area.len() {
            faults.push(CapError::PointerOutsideArea(ptr));
        }
        if !faults.is_empty() {
            return Err(faults);
        }
    }
    let Some(&hdm) = area[1..=size].iter().find(|&&e| e & 0xffff == 5) else {
        return Err(vec![CapError::NoHdm]);
    };
    let offset = (hdm >> 20) as usize;
    if offset < 4 * (size + 1) {
        return Err(vec![CapError::HdmOverlapsArray(offset)]);
    }
    let cap = area[offset / 4];
    let Some(count) = ref_decoder_count(cap) else {
        return Err(vec![CapError::BadDecoderCount((cap & 0xf) as u8)]);
    };
    if offset + 0x10 + 0x20 * count > 4 * area.len() {
        return Err(vec![CapError::HdmOutsideArea(offset)]);
    }
    Ok(HdmInfo {
        offset,
        decoder_count: count,
        cap,
    })
}

/// What `HdmLayout::new(offset, cap)` may answer: `Ok(count)` or the errors that apply.
fn ref_layout(offset: usize, cap: u32) -> Result<usize, Vec<CapError>> {
    let mut faults = Vec::new();
    let count = ref_decoder_count(cap);
    if count.is_none() {
        faults.push(CapError::BadDecoderCount((cap & 0xf) as u8));
    }
    if !offset.is_multiple_of(4) {
        faults.push(CapError::MisalignedPointer(offset));
    }
    if offset < 8 {
        faults.push(CapError::HdmOverlapsArray(offset));
    }
    if let Some(n) = count {
        if offset + 0x10 + 0x20 * n > CM_SIZE {
            faults.push(CapError::HdmOutsideArea(offset));
        }
    }
    match count {
        Some(n) if faults.is_empty() => Ok(n),
        _ => Err(faults),
    }
}

/// Checks a layout against what it was built from.
fn check_layout(layout: &HdmLayout, offset: usize, cap: u32, count: usize, cache: bool) {
    assert_eq!(layout.hdm_offset(), offset);
    assert_eq!(layout.cap(), cap);
    assert_eq!(layout.decoder_count(), count);
    assert_eq!(layout.cache_capable(), cache);
    assert_eq!(layout.region_size(), offset + 0x10 + 0x20 * count);
    assert_eq!(layout.region_dwords() * 4, layout.region_size());
    assert!(
        layout.region_size() <= CM_SIZE,
        "region past the CXL.mem area"
    );
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some(input) = Input::decode(data) else {
        return;
    };
    let area = &input.area[..];
    let cache = input.cache_capable;

    // The array itself.
    match m::CapArray::parse(area) {
        Ok(array) => {
            let h = array.header();
            assert_eq!(u32::from(h.id), area[0] & 0xffff);
            assert_eq!(h.id, 1);
            assert_eq!(u32::from(h.version), (area[0] >> 16) & 0xf);
            assert_eq!(u32::from(h.cache_mem_version), (area[0] >> 20) & 0xf);
            assert_eq!(u32::from(h.array_size), area[0] >> 24);
            let size = usize::from(h.array_size);
            assert!(size >= 1 && size < area.len());
            let entries: Vec<m::CapEntry> = array.entries().collect();
            assert_eq!(entries.len(), size);
            for (e, &raw) in entries.iter().zip(&area[1..]) {
                assert_eq!(u32::from(e.id), raw & 0xffff);
                assert_eq!(u32::from(e.version), (raw >> 16) & 0xf);
                assert_eq!(e.offset, (raw >> 20) as usize);
                assert_eq!(e.offset % 4, 0, "misaligned entry accepted");
                assert!(e.offset / 4 < area.len(), "entry outside the area accepted");
            }
            for id in [2u32, 4, 5, u32::from(entries[0].id), 0xffff] {
                assert_eq!(
                    array.find(id),
                    entries.iter().find(|e| u32::from(e.id) == id).copied()
                );
            }
            assert_eq!(array.find_hdm(), m::find_hdm(area));
        }
        Err(e) => {
            let want = ref_find_hdm(area).expect_err("the reference accepts the array");
            assert!(want.contains(&e), "parse: {e:?}, want one of {want:?}");
        }
    }

    // The HDM capability.
    let got = m::find_hdm(area);
    match (&got, ref_find_hdm(area)) {
        (Ok(g), Ok(w)) => assert_eq!(*g, w),
        (Err(g), Err(w)) => assert!(w.contains(g), "find_hdm: {g:?}, want one of {w:?}"),
        (g, w) => panic!("find_hdm: {g:?}, reference {w:?}"),
    }
    if let Ok(info) = got {
        assert_eq!(m::decoder_count(info.cap), Ok(info.decoder_count));
        assert!(info.offset + 0x10 + 0x20 * info.decoder_count <= 4 * area.len());
    }

    // The layout from the area: the HDM capability, and its block inside the CXL.mem area.
    let layout = HdmLayout::from_cm_area(area, cache);
    match got {
        Ok(info) => match ref_layout(info.offset, info.cap) {
            Ok(count) => check_layout(
                &layout.expect("layout"),
                info.offset,
                info.cap,
                count,
                cache,
            ),
            Err(w) => {
                let e = layout.expect_err("layout past the CXL.mem area");
                assert!(w.contains(&e), "layout: {e:?}, want one of {w:?}");
            }
        },
        Err(e) => assert_eq!(layout, Err(e)),
    }

    // The layout from an offset and a capability register.
    let offset = usize::from(input.probe_offset);
    let layout = HdmLayout::new(offset, input.probe_cap, cache);
    match (layout, ref_layout(offset, input.probe_cap)) {
        (Ok(l), Ok(count)) => check_layout(&l, offset, input.probe_cap, count, cache),
        (Err(g), Err(w)) => assert!(w.contains(&g), "new: {g:?}, want one of {w:?}"),
        (g, w) => panic!(
            "HdmLayout::new({offset:#x}, {:#x}): {g:?}, reference {w:?}",
            input.probe_cap
        ),
    }
    match (
        m::decoder_count(input.probe_cap),
        ref_decoder_count(input.probe_cap),
    ) {
        (Ok(g), Some(w)) => assert_eq!(g, w),
        (Err(CapError::BadDecoderCount(enc)), None) => {
            assert_eq!(u32::from(enc), input.probe_cap & 0xf)
        }
        (g, w) => panic!(
            "decoder_count({:#x}): {g:?}, reference {w:?}",
            input.probe_cap
        ),
    }
}

/// The seed corpus.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let input = |cache, area: Vec<u32>| Input {
        cache_capable: cache,
        probe_offset: QEMU_HDM as u16,
        probe_cap: qemu_hdm_cap(0),
        area,
    };
    let qemu = qemu_cm_area(qemu_hdm_cap(0));
    // cxl-accel: the same array, 2 and 4 decoders, CXL.cache capable.
    let accel2 = qemu_cm_area(qemu_hdm_cap(1));
    let accel4 = qemu_cm_area(qemu_hdm_cap(2));
    // The largest block (32 decoders) placed as late as it fits.
    let mut max = vec![0u32; 0x400];
    max[0] = cap_header(1);
    let last = CM_SIZE - (0x10 + 0x20 * 32);
    max[1] = cap_entry(5, 1, last);
    max[last / 4] = 0xc;
    // A snapshot cut short just before the HDM block ends.
    let short = qemu[..(QEMU_HDM + 0x2c) / 4].to_vec();
    let mut probe = input(false, qemu.clone());
    probe.probe_offset = 0x18c;
    probe.probe_cap = 0xc;
    vec![
        ("qemu-type3", input(false, qemu).encode()),
        ("cxl-accel-2-decoders", input(true, accel2).encode()),
        ("cxl-accel-4-decoders", input(true, accel4).encode()),
        ("32-decoders-at-the-end", input(false, max).encode()),
        ("truncated-hdm-block", input(false, short).encode()),
        ("probe-32-decoders", probe.encode()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_as_built() {
        let qemu = Input::decode(&seeds()[0].1).unwrap();
        assert_eq!(qemu.area, qemu_cm_area(qemu_hdm_cap(0)));
        assert_eq!(
            m::find_hdm(&qemu.area),
            Ok(HdmInfo {
                offset: 0x110,
                decoder_count: 1,
                cap: 0x310
            })
        );
        for (_, bytes) in seeds() {
            let input = Input::decode(&bytes).unwrap();
            assert_eq!(input.encode(), bytes);
        }
    }
}
