//! Parser for the ACPI CXL Early Discovery Table (CEDT, CXL 2.0 9.14.1 /
//! CXL 3.1 9.18.1).
//!
//! Only the two structure types the tool needs are decoded (CHBS and CFMWS);
//! every other structure is skipped by its `record_length`, so newer tables
//! with CXIMS/RDPAS/CSDS records still parse.

use crate::{le16, le32, le64};
use std::fmt;

/// Size of the standard ACPI System Description Table header.
pub const ACPI_HEADER_LEN: usize = 36;
/// Structure type of a CXL Host Bridge Structure.
pub const TYPE_CHBS: u8 = 0;
/// Structure type of a CXL Fixed Memory Window Structure.
pub const TYPE_CFMWS: u8 = 1;
/// Length of a CHBS record as defined by the specification.
pub const CHBS_LEN: usize = 32;
/// Length of a CFMWS record without its interleave target list.
pub const CFMWS_FIXED_LEN: usize = 36;

/// CHBS `cxl_version` value for a CXL 2.0 (or later) host bridge, whose
/// `base` points at the host bridge component register block.
pub const CHBS_VERSION_CXL20: u32 = 1;

/// A CXL Host Bridge Structure (CEDT type 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chbs {
    /// ACPI `_UID` of the host bridge; CFMWS target lists refer to it.
    pub uid: u32,
    /// 0 = RCH (CXL 1.1, base is an RCRB), 1 = CXL 2.0+ (base is the
    /// host bridge component register block).
    pub cxl_version: u32,
    /// Physical base address of the register block.
    pub base: u64,
    /// Length of the register block in bytes.
    pub length: u64,
}

/// A CXL Fixed Memory Window Structure (CEDT type 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cfmws {
    /// Host physical base address of the window.
    pub base_hpa: u64,
    /// Size of the window in bytes.
    pub window_size: u64,
    /// Encoded number of interleave ways (ENIW).
    pub eniw: u8,
    /// Interleave arithmetic: 0 = modulo, 1 = modulo with XOR.
    pub interleave_arithmetic: u8,
    /// Host bridge interleave granularity (encoded).
    pub hbig: u32,
    /// Window restrictions bitmap (bit 0 device coherent, bit 1 host-only
    /// coherent, bit 2 volatile, bit 3 persistent, bit 4 fixed config).
    pub window_restrictions: u16,
    /// QoS throttling group.
    pub qtg_id: u16,
    /// Host bridge UIDs, one per interleave way.
    pub targets: Vec<u32>,
}

impl Cfmws {
    /// Number of interleave ways (decoded from [`Cfmws::eniw`]).
    pub fn ways(&self) -> u32 {
        // The parser rejected unknown encodings, so this cannot fail here.
        interleave_ways(self.eniw).unwrap_or(0)
    }
}

/// A parsed CEDT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cedt {
    /// ACPI table revision.
    pub revision: u8,
    /// Whether the ACPI checksum (all bytes summing to zero) holds.
    /// Not fatal: Linux only warns about bad checksums either.
    pub checksum_ok: bool,
    /// Host bridge structures, in table order.
    pub chbs: Vec<Chbs>,
    /// Fixed memory windows, in table order.
    pub cfmws: Vec<Cfmws>,
    /// Types of the structures that were skipped, in table order.
    pub skipped: Vec<u8>,
}

/// Why a CEDT could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CedtError {
    /// Fewer bytes than an ACPI header.
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// The signature is not `CEDT`.
    BadSignature([u8; 4]),
    /// The header's length field is smaller than the header itself.
    BadTableLength {
        /// Length from the header.
        declared: u32,
    },
    /// The header claims more bytes than were supplied.
    Truncated {
        /// Length from the header.
        declared: u32,
        /// Bytes available.
        actual: usize,
    },
    /// Fewer than 4 bytes left for a structure header.
    TruncatedRecordHeader {
        /// Offset of the structure in the table.
        offset: usize,
    },
    /// A structure with `record_length` 0 (would loop forever).
    ZeroRecordLength {
        /// Offset of the structure in the table.
        offset: usize,
    },
    /// A structure extends beyond the end of the table.
    RecordOverflow {
        /// Offset of the structure in the table.
        offset: usize,
        /// Its `record_length`.
        record_length: u16,
        /// Table length.
        table_len: usize,
    },
    /// A structure is shorter than its type requires.
    RecordTooShort {
        /// Offset of the structure in the table.
        offset: usize,
        /// Structure type.
        kind: u8,
        /// Its `record_length`.
        record_length: u16,
        /// Minimum length for this type.
        min: usize,
    },
    /// A CFMWS with an ENIW value the specification does not define.
    BadInterleaveWays {
        /// Offset of the structure in the table.
        offset: usize,
        /// The encoded value.
        eniw: u8,
    },
}

impl fmt::Display for CedtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CedtError::TooShort { len } => write!(
                f,
                "CEDT too short: {len} bytes, the ACPI header alone is {ACPI_HEADER_LEN}"
            ),
            CedtError::BadSignature(sig) => {
                write!(
                    f,
                    "bad table signature {:?}, expected \"CEDT\"",
                    String::from_utf8_lossy(sig)
                )
            }
            CedtError::BadTableLength { declared } => {
                write!(
                    f,
                    "CEDT header length {declared} is smaller than the header"
                )
            }
            CedtError::Truncated { declared, actual } => write!(
                f,
                "CEDT truncated: header says {declared} bytes, only {actual} available"
            ),
            CedtError::TruncatedRecordHeader { offset } => {
                write!(
                    f,
                    "CEDT structure header at offset {offset:#x} is truncated"
                )
            }
            CedtError::ZeroRecordLength { offset } => {
                write!(
                    f,
                    "CEDT structure at offset {offset:#x} has record_length 0"
                )
            }
            CedtError::RecordOverflow {
                offset,
                record_length,
                table_len,
            } => write!(
                f,
                "CEDT structure at offset {offset:#x} (record_length {record_length}) \
                 runs past the table end ({table_len} bytes)"
            ),
            CedtError::RecordTooShort {
                offset,
                kind,
                record_length,
                min,
            } => write!(
                f,
                "CEDT structure type {kind} at offset {offset:#x} has record_length \
                 {record_length}, needs at least {min}"
            ),
            CedtError::BadInterleaveWays { offset, eniw } => write!(
                f,
                "CFMWS at offset {offset:#x} has undefined interleave ways encoding {eniw}"
            ),
        }
    }
}

impl std::error::Error for CedtError {}

/// Why no CHBS or CFMWS fits the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// The CEDT lists no host bridge at all.
    NoHostBridge,
    /// `--chbs-uid` names a host bridge the CEDT does not list.
    UnknownUid {
        /// Requested uid.
        uid: u32,
        /// Uids in the table.
        available: Vec<u32>,
    },
    /// Several host bridges and nothing said which one to use.
    Ambiguous {
        /// Uids in the table.
        available: Vec<u32>,
    },
    /// No window lists the host bridge among its targets.
    NoWindow {
        /// Host bridge uid.
        uid: u32,
    },
    /// Windows target the host bridge but none can map the device alone.
    NoUsableWindow {
        /// Host bridge uid.
        uid: u32,
        /// Device size that must fit.
        size: u64,
        /// Windows skipped because they interleave across host bridges.
        interleaved: usize,
        /// Windows skipped because they are smaller than the device.
        too_small: usize,
    },
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::NoHostBridge => write!(f, "the CEDT lists no CXL host bridge (CHBS)"),
            SelectError::UnknownUid { uid, available } => write!(
                f,
                "the CEDT has no CHBS with uid {uid} (available: {available:?})"
            ),
            SelectError::Ambiguous { available } => write!(
                f,
                "the CEDT lists several CXL host bridges {available:?}; \
                 choose one with --chbs-uid"
            ),
            SelectError::NoWindow { uid } => {
                write!(f, "no CFMWS lists host bridge uid {uid} as a target")
            }
            SelectError::NoUsableWindow {
                uid,
                size,
                interleaved,
                too_small,
            } => write!(
                f,
                "no usable CFMWS for host bridge uid {uid} and a device of {size:#x} bytes \
                 ({interleaved} interleaved across host bridges, which is not supported; \
                 {too_small} smaller than the device)"
            ),
        }
    }
}

impl std::error::Error for SelectError {}

impl Cedt {
    /// Chooses the host bridge: the one with `uid` if given, otherwise the
    /// only one in the table.
    pub fn host_bridge(&self, uid: Option<u32>) -> Result<&Chbs, SelectError> {
        let available = || self.chbs.iter().map(|c| c.uid).collect::<Vec<_>>();
        match uid {
            Some(uid) => {
                self.chbs
                    .iter()
                    .find(|c| c.uid == uid)
                    .ok_or_else(|| SelectError::UnknownUid {
                        uid,
                        available: available(),
                    })
            }
            None => match self.chbs.as_slice() {
                [] => Err(SelectError::NoHostBridge),
                [only] => Ok(only),
                _ => Err(SelectError::Ambiguous {
                    available: available(),
                }),
            },
        }
    }

    /// Chooses the host bridge of an endpoint: the one with uid `requested`
    /// (`--chbs-uid`) if given; else the one whose uid is `endpoint_uid`, the
    /// ACPI `_UID` of the host bridge above the endpoint (from sysfs), so that
    /// each of several endpoints gets its own; else, as [`Cedt::host_bridge`],
    /// the only one in the table (the caller warns when `endpoint_uid` is
    /// known and differs).
    pub fn host_bridge_for(
        &self,
        requested: Option<u32>,
        endpoint_uid: Option<u32>,
    ) -> Result<&Chbs, SelectError> {
        if requested.is_some() {
            return self.host_bridge(requested);
        }
        match endpoint_uid {
            Some(uid) => match self.chbs.iter().find(|c| c.uid == uid) {
                Some(c) => Ok(c),
                // One CHBS under another uid: what a single-bridge
                // platform means; with several, naming a wrong one is worse.
                None if self.chbs.len() == 1 => Ok(&self.chbs[0]),
                None if self.chbs.is_empty() => Err(SelectError::NoHostBridge),
                None => Err(SelectError::UnknownUid {
                    uid,
                    available: self.chbs.iter().map(|c| c.uid).collect(),
                }),
            },
            None => self.host_bridge(None),
        }
    }

    /// Chooses the first window that targets host bridge `uid` without
    /// interleaving and is at least `size` bytes.
    pub fn window_for(&self, uid: u32, size: u64) -> Result<&Cfmws, SelectError> {
        let mut candidates = self
            .cfmws
            .iter()
            .filter(|w| w.targets.contains(&uid))
            .peekable();
        if candidates.peek().is_none() {
            return Err(SelectError::NoWindow { uid });
        }
        let (mut interleaved, mut too_small) = (0, 0);
        for w in candidates {
            if w.ways() != 1 {
                interleaved += 1;
            } else if w.window_size < size {
                too_small += 1;
            } else {
                return Ok(w);
            }
        }
        Err(SelectError::NoUsableWindow {
            uid,
            size,
            interleaved,
            too_small,
        })
    }
}

/// Decodes a CFMWS ENIW value into a number of interleave ways
/// (CXL 3.1 table 9-22: 0..=4 are powers of two, 8..=10 are 3/6/12 ways).
pub fn interleave_ways(eniw: u8) -> Option<u32> {
    match eniw {
        0..=4 => Some(1 << eniw),
        8 => Some(3),
        9 => Some(6),
        10 => Some(12),
        _ => None,
    }
}

/// Parses a complete CEDT (header included).
///
/// Bytes past the length declared in the header are ignored.
pub fn parse(data: &[u8]) -> Result<Cedt, CedtError> {
    if data.len() < ACPI_HEADER_LEN {
        return Err(CedtError::TooShort { len: data.len() });
    }
    let sig: [u8; 4] = [data[0], data[1], data[2], data[3]];
    if &sig != b"CEDT" {
        return Err(CedtError::BadSignature(sig));
    }
    let declared = le32(data, 4);
    if (declared as usize) < ACPI_HEADER_LEN {
        return Err(CedtError::BadTableLength { declared });
    }
    if declared as usize > data.len() {
        return Err(CedtError::Truncated {
            declared,
            actual: data.len(),
        });
    }
    let table = &data[..declared as usize];
    let checksum_ok = table.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0;

    let mut cedt = Cedt {
        revision: table[8],
        checksum_ok,
        chbs: Vec::new(),
        cfmws: Vec::new(),
        skipped: Vec::new(),
    };

    let mut off = ACPI_HEADER_LEN;
    while off < table.len() {
        if table.len() - off < 4 {
            return Err(CedtError::TruncatedRecordHeader { offset: off });
        }
        let kind = table[off];
        let record_length = le16(table, off + 2);
        let rl = usize::from(record_length);
        if rl == 0 {
            return Err(CedtError::ZeroRecordLength { offset: off });
        }
        if rl > table.len() - off {
            return Err(CedtError::RecordOverflow {
                offset: off,
                record_length,
                table_len: table.len(),
            });
        }
        let rec = &table[off..off + rl];
        let too_short = |min: usize| CedtError::RecordTooShort {
            offset: off,
            kind,
            record_length,
            min,
        };
        match kind {
            TYPE_CHBS => {
                if rl < CHBS_LEN {
                    return Err(too_short(CHBS_LEN));
                }
                cedt.chbs.push(Chbs {
                    uid: le32(rec, 4),
                    cxl_version: le32(rec, 8),
                    base: le64(rec, 16),
                    length: le64(rec, 24),
                });
            }
            TYPE_CFMWS => {
                if rl < CFMWS_FIXED_LEN {
                    return Err(too_short(CFMWS_FIXED_LEN));
                }
                let eniw = rec[24];
                let ways = interleave_ways(eniw)
                    .ok_or(CedtError::BadInterleaveWays { offset: off, eniw })?
                    as usize;
                let min = CFMWS_FIXED_LEN + 4 * ways;
                if rl < min {
                    return Err(too_short(min));
                }
                cedt.cfmws.push(Cfmws {
                    base_hpa: le64(rec, 8),
                    window_size: le64(rec, 16),
                    eniw,
                    interleave_arithmetic: rec[25],
                    hbig: le32(rec, 28),
                    window_restrictions: le16(rec, 32),
                    qtg_id: le16(rec, 34),
                    targets: (0..ways)
                        .map(|i| le32(rec, CFMWS_FIXED_LEN + 4 * i))
                        .collect(),
                });
            }
            // CXIMS, RDPAS, CSDS and anything newer: not needed here.
            _ => cedt.skipped.push(kind),
        }
        off += rl;
    }
    Ok(cedt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(total_len: u32) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(b"CEDT");
        t.extend_from_slice(&total_len.to_le_bytes());
        t.push(1); // revision
        t.push(0); // checksum, fixed up by `finish`
        t.extend_from_slice(b"BOCHS ");
        t.extend_from_slice(b"BXPC    ");
        t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
        t.extend_from_slice(b"BXPC");
        t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
        assert_eq!(t.len(), ACPI_HEADER_LEN);
        t
    }

    fn chbs(uid: u32, version: u32, base: u64, len: u64) -> Vec<u8> {
        let mut r = vec![TYPE_CHBS, 0];
        r.extend_from_slice(&32u16.to_le_bytes());
        r.extend_from_slice(&uid.to_le_bytes());
        r.extend_from_slice(&version.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&base.to_le_bytes());
        r.extend_from_slice(&len.to_le_bytes());
        assert_eq!(r.len(), 32);
        r
    }

    fn cfmws(base: u64, size: u64, eniw: u8, targets: &[u32]) -> Vec<u8> {
        let len = (36 + 4 * targets.len()) as u16;
        let mut r = vec![TYPE_CFMWS, 0];
        r.extend_from_slice(&len.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&base.to_le_bytes());
        r.extend_from_slice(&size.to_le_bytes());
        r.push(eniw);
        r.push(0); // modulo arithmetic
        r.extend_from_slice(&0u16.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes()); // hbig: 256 bytes
        r.extend_from_slice(&0x000fu16.to_le_bytes()); // restrictions
        r.extend_from_slice(&0u16.to_le_bytes()); // qtg
        for t in targets {
            r.extend_from_slice(&t.to_le_bytes());
        }
        r
    }

    /// An unknown structure (type 2, CXIMS-shaped) that must be skipped.
    fn unknown(kind: u8, len: u16) -> Vec<u8> {
        let mut r = vec![kind, 0];
        r.extend_from_slice(&len.to_le_bytes());
        r.resize(usize::from(len), 0xAB);
        r
    }

    fn finish(records: &[Vec<u8>]) -> Vec<u8> {
        let body: usize = records.iter().map(Vec::len).sum();
        let mut t = header((ACPI_HEADER_LEN + body) as u32);
        for r in records {
            t.extend_from_slice(r);
        }
        let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        t[9] = 0u8.wrapping_sub(sum);
        t
    }

    fn qemu_like() -> Vec<u8> {
        finish(&[
            chbs(12, 1, 0x2_8000_0000, 0x10000),
            unknown(2, 24),
            cfmws(0x2_9000_0000, 0x1_0000_0000, 0, &[12]),
        ])
    }

    #[test]
    fn parses_chbs_and_cfmws_and_skips_unknown() {
        let cedt = parse(&qemu_like()).unwrap();
        assert!(cedt.checksum_ok);
        assert_eq!(cedt.revision, 1);
        assert_eq!(
            cedt.chbs,
            vec![Chbs {
                uid: 12,
                cxl_version: 1,
                base: 0x2_8000_0000,
                length: 0x10000
            }]
        );
        assert_eq!(cedt.cfmws.len(), 1);
        let w = &cedt.cfmws[0];
        assert_eq!(w.base_hpa, 0x2_9000_0000);
        assert_eq!(w.window_size, 0x1_0000_0000);
        assert_eq!(w.eniw, 0);
        assert_eq!(w.ways(), 1);
        assert_eq!(w.hbig, 0);
        assert_eq!(w.window_restrictions, 0xf);
        assert_eq!(w.qtg_id, 0);
        assert_eq!(w.targets, vec![12]);
        assert_eq!(cedt.skipped, vec![2]);
    }

    #[test]
    fn multi_way_window_and_bad_checksum_is_not_fatal() {
        let mut t = finish(&[cfmws(0x1000_0000, 0x4000_0000, 1, &[3, 7])]);
        t[9] = t[9].wrapping_add(1);
        let cedt = parse(&t).unwrap();
        assert!(!cedt.checksum_ok);
        assert_eq!(cedt.cfmws[0].ways(), 2);
        assert_eq!(cedt.cfmws[0].targets, vec![3, 7]);
    }

    #[test]
    fn trailing_bytes_after_declared_length_are_ignored() {
        let mut t = qemu_like();
        t.extend_from_slice(&[0xff; 7]);
        assert_eq!(parse(&t).unwrap().chbs.len(), 1);
    }

    #[test]
    fn rejects_short_and_bad_signature() {
        assert_eq!(parse(&[0u8; 10]), Err(CedtError::TooShort { len: 10 }));
        let mut t = qemu_like();
        t[0..4].copy_from_slice(b"SRAT");
        assert_eq!(parse(&t), Err(CedtError::BadSignature(*b"SRAT")));
    }

    #[test]
    fn rejects_bad_declared_lengths() {
        let mut t = qemu_like();
        t[4..8].copy_from_slice(&20u32.to_le_bytes());
        assert_eq!(parse(&t), Err(CedtError::BadTableLength { declared: 20 }));

        let t = qemu_like();
        let cut = &t[..t.len() - 1];
        assert_eq!(
            parse(cut),
            Err(CedtError::Truncated {
                declared: t.len() as u32,
                actual: t.len() - 1
            })
        );
    }

    #[test]
    fn rejects_zero_record_length() {
        let mut rec = unknown(2, 8);
        rec[2] = 0;
        rec[3] = 0;
        let t = finish(&[chbs(1, 1, 0, 0x10000), rec]);
        assert_eq!(
            parse(&t),
            Err(CedtError::ZeroRecordLength {
                offset: ACPI_HEADER_LEN + 32
            })
        );
    }

    #[test]
    fn rejects_record_running_past_the_end() {
        let mut rec = chbs(1, 1, 0, 0x10000);
        rec[2..4].copy_from_slice(&40u16.to_le_bytes());
        let t = finish(&[rec]);
        assert_eq!(
            parse(&t),
            Err(CedtError::RecordOverflow {
                offset: ACPI_HEADER_LEN,
                record_length: 40,
                table_len: ACPI_HEADER_LEN + 32
            })
        );
    }

    #[test]
    fn rejects_truncated_record_header() {
        let t = finish(&[chbs(1, 1, 0, 0x10000), vec![0u8, 0]]);
        assert_eq!(
            parse(&t),
            Err(CedtError::TruncatedRecordHeader {
                offset: ACPI_HEADER_LEN + 32
            })
        );
    }

    #[test]
    fn rejects_short_chbs_and_short_cfmws_target_list() {
        let mut rec = chbs(1, 1, 0, 0x10000);
        rec.truncate(24);
        rec[2..4].copy_from_slice(&24u16.to_le_bytes());
        assert_eq!(
            parse(&finish(&[rec])),
            Err(CedtError::RecordTooShort {
                offset: ACPI_HEADER_LEN,
                kind: TYPE_CHBS,
                record_length: 24,
                min: CHBS_LEN
            })
        );

        // Two ways declared, but room for only one target.
        let mut rec = cfmws(0, 0x1000_0000, 1, &[5]);
        rec[24] = 1;
        assert_eq!(
            parse(&finish(&[rec])),
            Err(CedtError::RecordTooShort {
                offset: ACPI_HEADER_LEN,
                kind: TYPE_CFMWS,
                record_length: 40,
                min: 44
            })
        );
    }

    #[test]
    fn rejects_undefined_interleave_encoding() {
        let rec = cfmws(0, 0x1000_0000, 5, &[5]);
        assert_eq!(
            parse(&finish(&[rec])),
            Err(CedtError::BadInterleaveWays {
                offset: ACPI_HEADER_LEN,
                eniw: 5
            })
        );
    }

    #[test]
    fn interleave_encoding_table() {
        let got: Vec<_> = (0u8..=11).map(interleave_ways).collect();
        assert_eq!(
            got,
            vec![
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                None,
                None,
                None,
                Some(3),
                Some(6),
                Some(12),
                None
            ]
        );
    }

    #[test]
    fn header_only_table_is_empty() {
        let cedt = parse(&finish(&[])).unwrap();
        assert!(cedt.chbs.is_empty() && cedt.cfmws.is_empty() && cedt.skipped.is_empty());
    }

    #[test]
    fn selects_host_bridge() {
        let one = parse(&qemu_like()).unwrap();
        assert_eq!(one.host_bridge(None).unwrap().uid, 12);
        assert_eq!(one.host_bridge(Some(12)).unwrap().uid, 12);
        assert_eq!(
            one.host_bridge(Some(3)),
            Err(SelectError::UnknownUid {
                uid: 3,
                available: vec![12]
            })
        );
        let two = parse(&finish(&[
            chbs(12, 1, 0x2_8000_0000, 0x10000),
            chbs(13, 1, 0x2_8001_0000, 0x10000),
        ]))
        .unwrap();
        assert_eq!(
            two.host_bridge(None),
            Err(SelectError::Ambiguous {
                available: vec![12, 13]
            })
        );
        assert_eq!(two.host_bridge(Some(13)).unwrap().base, 0x2_8001_0000);
        let none = parse(&finish(&[])).unwrap();
        assert_eq!(none.host_bridge(None), Err(SelectError::NoHostBridge));
    }

    #[test]
    fn selects_window() {
        let cedt = parse(&finish(&[
            chbs(12, 1, 0x2_8000_0000, 0x10000),
            cfmws(0x1_0000_0000, 0x1000_0000, 0, &[7]),
            cfmws(0x2_0000_0000, 0x4000_0000, 1, &[7, 12]),
            cfmws(0x3_0000_0000, 0x1000_0000, 0, &[12]),
            cfmws(0x4_0000_0000, 0x4000_0000, 0, &[12]),
        ]))
        .unwrap();
        // The 256 MiB window is enough for 256 MiB.
        assert_eq!(
            cedt.window_for(12, 0x1000_0000).unwrap().base_hpa,
            0x3_0000_0000
        );
        // 512 MiB skips it for the 1 GiB one; the interleaved one never fits.
        assert_eq!(
            cedt.window_for(12, 0x2000_0000).unwrap().base_hpa,
            0x4_0000_0000
        );
        assert_eq!(
            cedt.window_for(12, 0x8000_0000),
            Err(SelectError::NoUsableWindow {
                uid: 12,
                size: 0x8000_0000,
                interleaved: 1,
                too_small: 2
            })
        );
        assert_eq!(
            cedt.window_for(99, 1),
            Err(SelectError::NoWindow { uid: 99 })
        );
    }

    #[test]
    fn selects_the_endpoints_host_bridge() {
        let two = parse(&finish(&[
            chbs(12, 1, 0x2_8000_0000, 0x10000),
            chbs(20, 1, 0x2_8001_0000, 0x10000),
            cfmws(0x3_0000_0000, 0x1_0000_0000, 0, &[12]),
            cfmws(0x4_0000_0000, 0x1_0000_0000, 0, &[20]),
        ]))
        .unwrap();
        // The endpoint's own host bridge, and its own window.
        let hb = two.host_bridge_for(None, Some(20)).unwrap();
        assert_eq!(hb.base, 0x2_8001_0000);
        assert_eq!(
            two.window_for(hb.uid, 0x1000_0000).unwrap().base_hpa,
            0x4_0000_0000
        );
        let hb = two.host_bridge_for(None, Some(12)).unwrap();
        assert_eq!(hb.base, 0x2_8000_0000);
        assert_eq!(
            two.window_for(hb.uid, 0x1000_0000).unwrap().base_hpa,
            0x3_0000_0000
        );
        // --chbs-uid wins over what sysfs says.
        assert_eq!(two.host_bridge_for(Some(12), Some(20)).unwrap().uid, 12);
        assert_eq!(
            two.host_bridge_for(Some(7), Some(20)),
            Err(SelectError::UnknownUid {
                uid: 7,
                available: vec![12, 20]
            })
        );
        // Several bridges, none the endpoint's, or the endpoint's unknown.
        assert_eq!(
            two.host_bridge_for(None, Some(99)),
            Err(SelectError::UnknownUid {
                uid: 99,
                available: vec![12, 20]
            })
        );
        assert_eq!(
            two.host_bridge_for(None, None),
            Err(SelectError::Ambiguous {
                available: vec![12, 20]
            })
        );
    }

    #[test]
    fn a_single_host_bridge_is_used_as_before() {
        let one = parse(&qemu_like()).unwrap();
        assert_eq!(one.host_bridge_for(None, None).unwrap().uid, 12);
        assert_eq!(one.host_bridge_for(None, Some(12)).unwrap().uid, 12);
        // sysfs names another uid: still the only one (the caller warns).
        assert_eq!(one.host_bridge_for(None, Some(3)).unwrap().uid, 12);
        assert_eq!(
            one.host_bridge_for(Some(3), None),
            Err(SelectError::UnknownUid {
                uid: 3,
                available: vec![12]
            })
        );
        let none = parse(&finish(&[])).unwrap();
        assert_eq!(
            none.host_bridge_for(None, Some(12)),
            Err(SelectError::NoHostBridge)
        );
    }
}
