//! The Register Locator DVSEC parser (`caparray::find_reg_block`, `DvsecHeader::read`).
//!
//! Input: `base: u16` (where the DVSEC is said to be), `wanted: u8` (the block identifier
//! looked for), `fill: u8` (every other config byte), DVSEC Header 1 and Header 2 (`u32`
//! each), then the Register Block entries, (Offset Low, Offset High) dword pairs, laid out
//! from `base + 0xc` on. The answer is compared with a reference written from CXL r3.1 8.1.9,
//! and every config read is checked: naturally aligned, inside config space, the header's
//! dwords first, and nothing past the DVSEC's length.

use arbitrary::Unstructured;
use cxl_model::fuzz_api::{self as m, CapError, RegBlock};

use crate::{Cfg, Enc, CFG_SIZE};

/// PCI vendor id of the CXL consortium.
const CXL_VENDOR: u16 = 0x1e98;
/// DVSEC id of the Register Locator.
const REG_LOCATOR: u16 = 8;

/// A decoded input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Config-space position of the DVSEC.
    pub base: u16,
    /// Register Block Identifier looked for.
    pub wanted: u8,
    /// Every config byte the DVSEC does not define.
    pub fill: u8,
    /// DVSEC Header 1: vendor, revision, length.
    pub header1: u32,
    /// DVSEC Header 2: DVSEC id in bits 15:0.
    pub header2: u32,
    /// Register Block entries: (Offset Low, Offset High).
    pub entries: Vec<(u32, u32)>,
}

impl Input {
    /// Decodes `data`.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let mut u = Unstructured::new(data);
        let base = u.arbitrary().ok()?;
        let wanted = u.arbitrary().ok()?;
        let fill = u.arbitrary().ok()?;
        let header1 = u.arbitrary().ok()?;
        let header2 = u.arbitrary().ok()?;
        let entries = u
            .take_rest()
            .chunks_exact(8)
            .take(CFG_SIZE / 8)
            .map(|c| {
                (
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect();
        Some(Self {
            base,
            wanted,
            fill,
            header1,
            header2,
            entries,
        })
    }

    /// The bytes that decode to `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.u16(self.base)
            .u8(self.wanted)
            .u8(self.fill)
            .u32(self.header1)
            .u32(self.header2);
        for &(lo, hi) in &self.entries {
            e.u32(lo).u32(hi);
        }
        e.finish()
    }

    /// The config space it describes.
    pub fn cfg(&self) -> Cfg {
        let mut cfg = Cfg::new(self.fill);
        let base = usize::from(self.base);
        // Extended capability header: DVSEC, version 1, no next capability.
        cfg.set(base, 4, 0x0001_0023);
        cfg.set(base + 4, 4, self.header1);
        cfg.set(base + 8, 4, self.header2);
        for (i, &(lo, hi)) in self.entries.iter().enumerate() {
            cfg.set(base + 0xc + 8 * i, 4, lo);
            cfg.set(base + 0x10 + 8 * i, 4, hi);
        }
        cfg
    }
}

/// Whether a DVSEC may start at `base`: dword aligned, in extended config space, with room
/// for its header (the dwords at +0x4 and +0x8) before the end of config space.
pub fn base_valid(base: u16) -> bool {
    base.is_multiple_of(4) && (0x100..=0x1000 - 0xc).contains(&base)
}

/// The reference answer: `Ok` as `find_reg_block` must give it, or every error it may give.
fn reference(cfg: &Cfg, base: u16, wanted: u8) -> Result<RegBlock, Vec<CapError>> {
    if !base_valid(base) {
        return Err(vec![CapError::BadDvsecPosition(base)]);
    }
    let dword = |pos: usize| {
        (0..4).fold(0u32, |v, i| {
            v | u32::from(cfg.bytes.get(pos + i).copied().unwrap_or(0xff)) << (8 * i)
        })
    };
    let base_ = usize::from(base);
    let (h1, h2) = (dword(base_ + 4), dword(base_ + 8));
    let (vendor, id, length) = (h1 as u16, h2 as u16, (h1 >> 20) as usize);
    if vendor != CXL_VENDOR || id != REG_LOCATOR {
        return Err(vec![CapError::WrongDvsec { vendor, id }]);
    }
    if base_ + length > CFG_SIZE {
        return Err(vec![CapError::BadDvsecPosition(base)]);
    }
    let count = length.saturating_sub(0xc) / 8;
    if count == 0 {
        return Err(vec![CapError::RegLocatorTooShort(length as u16)]);
    }
    let mut bad = Vec::new();
    for i in 0..count {
        let (lo, hi) = (dword(base_ + 0xc + 8 * i), dword(base_ + 0x10 + 8 * i));
        let (bir, block_id) = ((lo & 7) as u8, (lo >> 8) as u8);
        if block_id != wanted {
            continue;
        }
        if bir > 5 {
            bad.push(CapError::BadBir(bir));
            continue;
        }
        return Ok(RegBlock {
            bir,
            block_id,
            offset: (u64::from(hi) << 32) | u64::from(lo & 0xffff_0000),
        });
    }
    if bad.is_empty() {
        bad.push(CapError::NoRegBlock(wanted));
    }
    Err(bad)
}

/// Checks the config reads one parse made.
fn check_reads(reads: &[(u16, usize)], base: u16, header_ok: Option<u16>) {
    if !base_valid(base) {
        assert!(reads.is_empty(), "reads at a bad position: {reads:?}");
        return;
    }
    for &(pos, size) in reads {
        assert!(
            pos >= base,
            "read at {pos:#x} before the DVSEC at {base:#x}"
        );
        let end = usize::from(pos) + size;
        match header_ok {
            // Only the header could be trusted: nothing past it.
            None => assert!(
                end <= usize::from(base) + 0xc,
                "read at {pos:#x} past a rejected header"
            ),
            Some(length) => assert!(
                end <= usize::from(base) + usize::from(length.max(0xc)),
                "read at {pos:#x} past the DVSEC ({length:#x} bytes at {base:#x})"
            ),
        }
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some(input) = Input::decode(data) else {
        return;
    };
    let mut cfg = input.cfg();
    let want = reference(&cfg, input.base, input.wanted);

    let got = m::find_reg_block(input.base, input.wanted, &mut |p, s| cfg.read(p, s));
    match (&got, &want) {
        (Ok(g), Ok(w)) => {
            assert_eq!(g, w);
            assert!(g.bir <= 5 && g.block_id == input.wanted);
            assert_eq!(g.offset & 0xffff, 0, "block offset not 64 KiB aligned");
        }
        (Err(g), Err(w)) => assert!(w.contains(g), "got {g:?}, want one of {w:?}"),
        (g, w) => panic!("got {g:?}, reference {w:?}"),
    }
    let reads = core::mem::take(&mut cfg.reads);

    // The header alone, as the driver reads it before the DVSEC's other users.
    let header = m::read_dvsec_header(input.base, CXL_VENDOR, REG_LOCATOR, &mut |p, s| {
        cfg.read(p, s)
    });
    match (&header, &want) {
        (Ok(h), _) => {
            assert_eq!((h.vendor, h.id), (CXL_VENDOR, REG_LOCATOR));
            assert_eq!(u32::from(h.length), input.header1 >> 20);
            assert_eq!(u32::from(h.revision), (input.header1 >> 16) & 0xf);
            assert!(usize::from(input.base) + usize::from(h.length) <= CFG_SIZE);
        }
        (Err(e), Err(w)) => assert!(w.contains(e), "header: {e:?}, want one of {w:?}"),
        (Err(e), Ok(_)) => panic!("header rejected ({e:?}) but the block was found"),
    }
    check_reads(&reads, input.base, header.ok().map(|h| h.length));
    check_reads(&cfg.reads, input.base, None);
}

/// Register Offset Low for BAR `bir`, block `id`, block offset `offset` (bits 31:16).
const fn reg_lo(bir: u32, id: u32, offset: u32) -> u32 {
    (offset & 0xffff_0000) | (id << 8) | bir
}

/// The seed corpus.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let header1 = |length: u32| (length << 20) | (1 << 16) | u32::from(CXL_VENDOR);
    let header2 = u32::from(REG_LOCATOR);
    // QEMU 7.2 cxl-type3: the Register Locator at 0x138 after the 0x38-byte Device DVSEC;
    // component registers in BAR 0 at 0, memory device registers in BAR 2 at 0.
    let qemu = Input {
        base: 0x138,
        wanted: 1,
        fill: 0,
        header1: header1(0x1c),
        header2,
        entries: vec![(reg_lo(0, 1, 0), 0), (reg_lo(2, 3, 0), 0)],
    };
    // cxl-accel: the Register Locator at 0x13c after the 0x3c-byte Device DVSEC, the component
    // block in BAR 0 at 128 KiB (comp-block=middle), three entries (length 0x24).
    let accel = Input {
        base: 0x13c,
        wanted: 1,
        fill: 0,
        header1: header1(0x24),
        header2,
        entries: vec![(reg_lo(0, 1, 0x2_0000), 0), (0, 0), (0, 0)],
    };
    // Component block after a PMU and a reserved-BIR entry, above 4 GiB.
    let far = Input {
        base: 0x200,
        wanted: 1,
        fill: 0xff,
        header1: header1(0x2c),
        header2,
        entries: vec![
            (reg_lo(2, 3, 0), 0),
            (reg_lo(4, 4, 0x1_0000), 0),
            (reg_lo(7, 1, 0), 0),
            (reg_lo(4, 1, 0x8_0000), 0x1),
        ],
    };
    // A DVSEC that ends right at the end of config space.
    let last = Input {
        base: 0xfe8,
        wanted: 3,
        fill: 0,
        header1: header1(0x18),
        header2,
        entries: vec![(reg_lo(2, 3, 0), 0)],
    };
    let memdev = Input {
        wanted: 3,
        ..qemu.clone()
    };
    vec![
        ("qemu-type3", qemu.encode()),
        ("qemu-type3-memdev", memdev.encode()),
        ("cxl-accel-middle", accel.encode()),
        ("reserved-bir-then-high-offset", far.encode()),
        ("end-of-config-space", last.encode()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_as_built() {
        for (name, bytes) in seeds() {
            let input = Input::decode(&bytes).unwrap();
            assert_eq!(input.encode(), bytes, "{name}");
            let mut cfg = input.cfg();
            let got = m::find_reg_block(input.base, input.wanted, &mut |p, s| cfg.read(p, s));
            assert!(got.is_ok(), "{name}: {got:?}");
        }
    }
}
