//! Finding host physical addresses in bytes the kernel returned to userspace.
//!
//! The driver must never show a host address: not the DPA range's (the firmware
//! decoder's base, which COMP_REGS shows as 0), not the component BAR's. A
//! 64-bit address is split in two 32-bit registers in both layouts that could
//! carry it: low word first (HDM decoder Base Low / Base High, and any 64-bit
//! field of an info reply) or high word first (the DVSEC's Range Base High /
//! Range Base Low). The scanner looks for both at every 4-byte aligned offset (every
//! register and every info field is aligned so). An address below 4 GiB is looked for
//! as a single 32-bit word. A layout with fewer than two non-zero bytes (an address
//! like 0x8_0000_0000) is not looked for: such bytes are everywhere (a flags word of
//! 0x8 before a zero word), and finding them would prove nothing.
//!
//! Registers are read 4 bytes at a time, so no single read holds both halves:
//! [`Image`] keeps the last bytes read at each offset of a register space and the
//! scan runs over the image around each new read.

/// A named host address to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    /// What it is ("DPA base", "component BAR", ...).
    pub name: String,
    /// The address.
    pub addr: u64,
}

/// Where a host address showed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The address's name.
    pub name: String,
    /// The address.
    pub addr: u64,
    /// Offset of the match in the scanned bytes.
    pub at: usize,
    /// The layout that matched.
    pub layout: &'static str,
}

impl std::fmt::Display for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host address {:#x} ({}) at byte {:#x}, {}",
            self.addr, self.name, self.at, self.layout
        )
    }
}

/// The set of addresses to look for.
#[derive(Debug, Clone, Default)]
pub struct HostAddrs {
    addrs: Vec<u64>,
    needles: Vec<(String, u64, &'static str, Vec<u8>)>,
    skipped: Vec<String>,
}

impl HostAddrs {
    /// Looks for each of `addrs`; zero addresses are skipped (nothing to leak, and zero
    /// bytes are everywhere), and so are layouts too common to mean anything (see the
    /// module docs; [`HostAddrs::skipped`] lists them).
    pub fn new(addrs: &[HostAddr]) -> Self {
        let mut h = HostAddrs::default();
        for a in addrs.iter().filter(|a| a.addr != 0) {
            h.addrs.push(a.addr);
            let (lo, hi) = (a.addr as u32, (a.addr >> 32) as u32);
            let layouts: Vec<(&'static str, Vec<u8>)> = if hi == 0 {
                vec![("32-bit word", lo.to_le_bytes().to_vec())]
            } else {
                vec![
                    ("low word first", a.addr.to_le_bytes().to_vec()),
                    (
                        "high word first",
                        [hi.to_le_bytes(), lo.to_le_bytes()].concat(),
                    ),
                ]
            };
            for (layout, bytes) in layouts {
                if bytes.iter().filter(|&&b| b != 0).count() < 2 {
                    h.skipped.push(format!("{} {:#x} {layout}", a.name, a.addr));
                } else {
                    h.needles.push((a.name.clone(), a.addr, layout, bytes));
                }
            }
        }
        h
    }

    /// The layouts not looked for, as `name address layout`.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Whether there is anything to look for.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// The first host address in `buf` at a 4-byte aligned offset, if any.
    pub fn scan(&self, buf: &[u8]) -> Option<Hit> {
        self.scan_from(buf, 0)
    }

    /// Like [`HostAddrs::scan`] for `buf` taken from offset `origin` of a larger space:
    /// alignment counts from the space's start, and the hit's offset is in the space.
    pub fn scan_from(&self, buf: &[u8], origin: usize) -> Option<Hit> {
        for (name, addr, layout, bytes) in &self.needles {
            let first = (4 - origin % 4) % 4;
            let found = (first..buf.len())
                .step_by(4)
                .find(|&i| buf[i..].starts_with(bytes));
            if let Some(i) = found {
                return Some(Hit {
                    name: name.clone(),
                    addr: *addr,
                    at: origin + i,
                    layout,
                });
            }
        }
        None
    }

    /// Byte `b`, to be written at byte `pos % 4` of a 32-bit register, changed if needed so
    /// that no register the fuzzer writes can hold a 32-bit half of an address: a byte equal
    /// to a non-zero byte of a half at the same position is changed (for the low half of a
    /// 64-bit address, the top byte's bits 7:4 are compared, as Base Low registers keep only
    /// bits 31:28). Keeps the fuzzer from planting what the scan looks for, a byte at a time
    /// or a register at a time, whatever the register keeps of it.
    pub fn avoid_byte(&self, pos: usize, b: u8) -> u8 {
        let pos = pos % 4;
        let clashes = |b: u8| {
            self.addrs.iter().any(|&a| {
                let lo = (a as u32).to_le_bytes();
                let hi = ((a >> 32) as u32).to_le_bytes();
                let wide = hi != [0; 4];
                let lo_clash = if wide && pos == 3 {
                    lo[3] & 0xf0 != 0 && b & 0xf0 == lo[3] & 0xf0
                } else {
                    lo[pos] != 0 && b == lo[pos]
                };
                lo_clash || (wide && hi[pos] != 0 && b == hi[pos])
            })
        };
        // Each try flips another single bit of the original byte; the few addresses have at
        // most two bytes (or top nibbles) at one position, so one of these is free.
        for bit in [None, Some(4u8), Some(0), Some(5), Some(1), Some(6), Some(2)] {
            let v = bit.map_or(b, |bit| b ^ (1 << bit));
            if !clashes(v) {
                return v;
            }
        }
        b ^ 0x88
    }

    /// [`HostAddrs::avoid_byte`] for each byte of a 32-bit register value.
    pub fn avoid(&self, value: u32) -> u32 {
        let mut b = value.to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = self.avoid_byte(i, *x);
        }
        u32::from_le_bytes(b)
    }
}

/// The last bytes read at each offset of a register space (COMP_REGS, a DVSEC).
#[derive(Debug, Clone)]
pub struct Image {
    bytes: Vec<u8>,
}

impl Image {
    /// An image of `len` bytes, all zero.
    pub fn new(len: usize) -> Self {
        Image {
            bytes: vec![0; len],
        }
    }

    /// Records `data` read at `off` (the part inside the image) and scans the bytes around
    /// it: up to 7 bytes either side, enough for any 8-byte needle that overlaps the read.
    pub fn record_and_scan(&mut self, addrs: &HostAddrs, off: usize, data: &[u8]) -> Option<Hit> {
        if off >= self.bytes.len() || data.is_empty() {
            return None;
        }
        let end = (off + data.len()).min(self.bytes.len());
        self.bytes[off..end].copy_from_slice(&data[..end - off]);
        let from = off.saturating_sub(7);
        let to = (end + 7).min(self.bytes.len());
        addrs.scan_from(&self.bytes[from..to], from)
    }

    /// The whole image.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> HostAddrs {
        HostAddrs::new(&[
            HostAddr {
                name: "DPA base".into(),
                addr: 0x2_9000_0000,
            },
            HostAddr {
                name: "component BAR".into(),
                addr: 0xfe80_4000,
            },
            HostAddr {
                name: "unset".into(),
                addr: 0,
            },
        ])
    }

    #[test]
    fn finds_both_word_orders() {
        let a = addrs();
        assert!(!a.is_empty());
        assert!(HostAddrs::new(&[]).is_empty());
        let mut buf = vec![0u8; 64];
        assert_eq!(a.scan(&buf), None);
        // Decoder Base Low at 0x10, Base High at 0x14.
        buf[0x10..0x14].copy_from_slice(&0x9000_0000u32.to_le_bytes());
        buf[0x14..0x18].copy_from_slice(&2u32.to_le_bytes());
        let h = a.scan(&buf).unwrap();
        assert_eq!(
            (h.at, h.layout, h.name.as_str()),
            (0x10, "low word first", "DPA base")
        );
        assert!(h.to_string().contains("0x290000000"), "{h}");
        // DVSEC Range Base High at 0x20, Low at 0x24.
        let mut buf = vec![0u8; 64];
        buf[0x20..0x24].copy_from_slice(&2u32.to_le_bytes());
        buf[0x24..0x28].copy_from_slice(&0x9000_0000u32.to_le_bytes());
        let h = a.scan(&buf).unwrap();
        assert_eq!((h.at, h.layout), (0x20, "high word first"));
        // Alignment counts from the start of the space the bytes came from.
        assert_eq!(a.scan_from(&buf[0x1e..], 0x1e).map(|h| h.at), Some(0x20));
        assert_eq!(a.scan_from(&buf[0x1e..], 0x1f), None);
        // Not at a register boundary: no register holds it.
        let mut odd = vec![0u8; 64];
        odd[0x21..0x29].copy_from_slice(&buf[0x20..0x28]);
        assert_eq!(a.scan(&odd), None);
    }

    #[test]
    fn finds_32_bit_addresses_and_skips_common_layouts() {
        let a = HostAddrs::new(&[
            HostAddr {
                name: "component BAR".into(),
                addr: 0xfe80_4000,
            },
            HostAddr {
                name: "big BAR".into(),
                addr: 0x8_0000_0000,
            },
        ]);
        let mut buf = vec![0u8; 16];
        buf[4..8].copy_from_slice(&0xfe80_4000u32.to_le_bytes());
        let h = a.scan(&buf).unwrap();
        assert_eq!(
            (h.at, h.name.as_str(), h.layout),
            (4, "component BAR", "32-bit word")
        );
        // 0x8_0000_0000 has one non-zero byte in either layout: not looked for.
        assert_eq!(
            a.skipped(),
            &[
                "big BAR 0x800000000 low word first".to_string(),
                "big BAR 0x800000000 high word first".to_string()
            ]
        );
        let mut buf = vec![0u8; 16];
        buf[0] = 8;
        buf[12] = 8;
        assert_eq!(a.scan(&buf), None);
        // Halves alone, apart, or a neighbour value are no match.
        let d = addrs();
        let mut buf = vec![0u8; 32];
        buf[0..4].copy_from_slice(&0x9000_0000u32.to_le_bytes());
        buf[12..16].copy_from_slice(&2u32.to_le_bytes());
        buf[20..24].copy_from_slice(&0xfe80_4001u32.to_le_bytes());
        assert_eq!(d.scan(&buf), None);
        assert!(d.skipped().is_empty());
    }

    #[test]
    fn avoid_never_plants_a_half() {
        let a = addrs();
        let halves = [0x9000_0000u32, 2, 0xfe80_4000];
        for v in [
            0x9000_0000u32,
            2,
            0xfe80_4000,
            0x9abc_def0,
            0xffff_ffff,
            0x0000_4002,
        ] {
            let w = a.avoid(v);
            assert_eq!(a.avoid(w), w, "{v:#x}");
            for h in halves {
                assert_ne!(w, h, "{v:#x} became {w:#x}");
            }
            // What a Base Low register keeps cannot be the DPA base's low half either.
            assert_ne!(w & 0xf000_0000, 0x9000_0000, "{v:#x} became {w:#x}");
        }
        assert_eq!(a.avoid(0x1234_5678), 0x1234_5678);
        assert_eq!(a.avoid(0), 0);
        // Byte by byte: the one non-zero byte of the high half, 0x02 at position 0.
        assert_ne!(a.avoid_byte(0, 2), 2);
        assert_eq!(a.avoid_byte(1, 2), 2);
        assert_ne!(a.avoid_byte(3, 0x9f) & 0xf0, 0x90);
        assert_eq!(a.avoid_byte(3, 0x8f), 0x8f);
        // Every byte value at every position ends up clear of every address.
        for pos in 0..4 {
            for b in 0..=255u8 {
                let v = a.avoid_byte(pos, b);
                assert_eq!(a.avoid_byte(pos, v), v, "pos {pos} byte {b:#x}");
            }
        }
    }

    #[test]
    fn image_joins_separate_reads() {
        let a = addrs();
        let mut img = Image::new(0x40);
        assert_eq!(
            img.record_and_scan(&a, 0x10, &0x9000_0000u32.to_le_bytes()),
            None
        );
        let h = img
            .record_and_scan(&a, 0x14, &2u32.to_le_bytes())
            .expect("the second half completes the address");
        assert_eq!(h.at, 0x10);
        // Overwriting a half removes it.
        assert!(img.record_and_scan(&a, 0x10, &[0; 4]).is_none());
        // Reads past the end are ignored, and clipped at it.
        assert!(img.record_and_scan(&a, 0x40, &[1; 4]).is_none());
        assert!(img.record_and_scan(&a, 0x3e, &[1; 4]).is_none());
        assert_eq!(&img.bytes()[0x3e..], &[1, 1]);
    }
}
