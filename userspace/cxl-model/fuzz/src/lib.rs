//! Fuzz targets for the cxl-vfio-pci register model, one module each; `fuzz_targets/*.rs` only
//! hand libFuzzer's input to [`caparray::run`] and the others.
//!
//! Each target checks what the model promises, not only that it does not panic: a reference
//! written from the rules (the v2 seed series and CXL r3.1, as the model's docs cite them) where
//! the result is fully determined, and invariants that hold whatever the input. Each module
//! also builds its seed corpus ([`seeds`]) from real register layouts: QEMU's cxl-type3 and the
//! project's cxl-accel.
//!
//! Inputs are decoded with `arbitrary`; [`Enc`] writes the bytes that decode to a given input,
//! so that the seeds are exactly the layouts they are named after (the tests check the round
//! trip).

use arbitrary::{Arbitrary, Unstructured};

pub mod caparray;
pub mod comp_regs;
pub mod dvsec;
pub mod info;
pub mod regloc;
pub mod sparse;

/// The fuzz targets, in the order the run script runs them.
pub const TARGETS: [&str; 6] = ["caparray", "regloc", "comp_regs", "dvsec", "sparse", "info"];

/// Longest operation sequence a target applies: keeps every input fast.
pub const MAX_OPS: usize = 256;

/// The seed corpus of target `name`: (file name, bytes) each.
pub fn seeds(name: &str) -> Vec<(&'static str, Vec<u8>)> {
    match name {
        "caparray" => caparray::seeds(),
        "regloc" => regloc::seeds(),
        "comp_regs" => comp_regs::seeds(),
        "dvsec" => dvsec::seeds(),
        "sparse" => sparse::seeds(),
        "info" => info::seeds(),
        _ => Vec::new(),
    }
}

/// Decodes operations from what is left of `u`, at most [`MAX_OPS`].
pub fn ops<'a, T: Arbitrary<'a>>(u: &mut Unstructured<'a>) -> Vec<T> {
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match T::arbitrary(u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// Writes the bytes that `arbitrary` 1.x decodes back into the given values: integers
/// little-endian, `bool` as one byte, an enum variant as the `u32` that selects it.
#[derive(Clone, Debug, Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    /// An empty encoding.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// A `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// An `i8`.
    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bool`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// Variant `index` of an enum of `count` variants (derived `Arbitrary`: the variant is
    /// `(u32 * count) >> 32`).
    pub fn variant(&mut self, index: u32, count: u32) -> &mut Self {
        let v = (u64::from(index) << 32).div_ceil(u64::from(count));
        self.u32(u32::try_from(v).unwrap_or(u32::MAX))
    }

    /// The bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.0)
    }
}

/// Size of PCIe configuration space.
pub const CFG_SIZE: usize = 0x1000;

/// A device's PCI configuration space, as the model's `cfg_read` callbacks see it: it fails
/// the run on any read that is not 1, 2 or 4 bytes, naturally aligned and inside config space,
/// and it records the reads.
pub struct Cfg {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Every read, `(pos, size)`.
    pub reads: Vec<(u16, usize)>,
}

impl Cfg {
    /// A config space of `fill` bytes.
    pub fn new(fill: u8) -> Self {
        Self {
            bytes: vec![fill; CFG_SIZE],
            reads: Vec::new(),
        }
    }

    /// Stores the low `size` bytes of `value` at `pos`, as far as config space reaches.
    pub fn set(&mut self, pos: usize, size: usize, value: u32) {
        for i in 0..size {
            if let Some(b) = self.bytes.get_mut(pos + i) {
                *b = (value >> (8 * i)) as u8;
            }
        }
    }

    /// The byte at `pos`.
    pub fn byte(&self, pos: usize) -> u8 {
        self.bytes[pos]
    }

    /// The model's config read.
    pub fn read(&mut self, pos: u16, size: usize) -> u32 {
        assert!(matches!(size, 1 | 2 | 4), "config read of {size} bytes");
        assert_eq!(
            usize::from(pos) % size,
            0,
            "unaligned config read of {size} bytes at {pos:#x}"
        );
        assert!(
            usize::from(pos) + size <= CFG_SIZE,
            "config read of {size} bytes at {pos:#x}, past config space"
        );
        self.reads.push((pos, size));
        (0..size).fold(0u32, |v, i| {
            v | u32::from(self.bytes[usize::from(pos) + i]) << (8 * i)
        })
    }
}

/// The seed layouts the targets share: the CXL.mem area (component block + 0x1000) of QEMU's
/// cxl-type3 and of the project's cxl-accel, as `hw/cxl/cxl-component-utils.c` lays it out.
pub mod layouts {
    /// Capability array header: id 1, version 1, cache-mem version 1, `size` entries.
    pub const fn cap_header(size: u32) -> u32 {
        (size << 24) | (1 << 20) | (1 << 16) | 1
    }

    /// Capability array entry: id, version, pointer.
    pub const fn cap_entry(id: u32, version: u32, ptr: usize) -> u32 {
        ((ptr as u32) << 20) | (version << 16) | id
    }

    /// Where QEMU puts the RAS, Link and HDM capabilities in the CXL.mem area.
    pub const QEMU_RAS: usize = 0x80;
    /// See [`QEMU_RAS`].
    pub const QEMU_LINK: usize = 0xd8;
    /// See [`QEMU_RAS`].
    pub const QEMU_HDM: usize = 0x110;

    /// QEMU's HDM Decoder Capability register for `count_enc` (0: 1 decoder, 1: 2, 2: 4):
    /// target count 1, A11to8 and A14to12 interleave capable.
    pub const fn qemu_hdm_cap(count_enc: u32) -> u32 {
        0x300 | 0x10 | count_enc
    }

    /// QEMU's CXL.mem area (4 KiB) with the HDM capability `cap`: RAS, Link, HDM.
    pub fn qemu_cm_area(cap: u32) -> Vec<u32> {
        let mut area = vec![0u32; 0x400];
        area[0] = cap_header(3);
        area[1] = cap_entry(2, 2, QEMU_RAS);
        area[2] = cap_entry(4, 2, QEMU_LINK);
        area[3] = cap_entry(5, 1, QEMU_HDM);
        area[QEMU_HDM / 4] = cap;
        area
    }

    /// Firmware-committed decoder registers as the host's CXL driver leaves them: base `hpa`,
    /// `size`, Control with Lock On Commit, Commit and Committed, interleave 1 way 256 B.
    pub fn committed_decoder(hpa: u64, size: u64, lock: bool) -> [u32; 8] {
        let ctrl = (1 << 9) | (1 << 10) | if lock { 1 << 8 } else { 0 };
        [
            (hpa as u32) & 0xf000_0000,
            (hpa >> 32) as u32,
            (size as u32) & 0xf000_0000,
            (size >> 32) as u32,
            ctrl,
            0,
            0,
            0,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Arbitrary, Debug, PartialEq)]
    enum Three {
        A,
        B(u8),
        C { x: u16 },
    }

    #[test]
    fn enc_variant_round_trips() {
        for (i, want) in [Three::A, Three::B(7), Three::C { x: 0x1234 }]
            .into_iter()
            .enumerate()
        {
            let mut e = Enc::new();
            e.variant(i as u32, 3);
            match &want {
                Three::B(v) => {
                    e.u8(*v);
                }
                Three::C { x } => {
                    e.u16(*x);
                }
                Three::A => {}
            }
            let bytes = e.finish();
            let got = Three::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn every_target_has_seeds_that_pass() {
        for t in TARGETS {
            let seeds = seeds(t);
            assert!(seeds.len() >= 3, "{t}: {} seeds", seeds.len());
            for (name, bytes) in seeds {
                assert!(bytes.len() <= 8192, "{t}/{name} is {} bytes", bytes.len());
                match t {
                    "caparray" => caparray::run(&bytes),
                    "regloc" => regloc::run(&bytes),
                    "comp_regs" => comp_regs::run(&bytes),
                    "dvsec" => dvsec::run(&bytes),
                    "sparse" => sparse::run(&bytes),
                    "info" => info::run(&bytes),
                    _ => unreachable!(),
                }
            }
        }
    }
}
