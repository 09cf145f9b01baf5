//! PCI configuration space walking on an in-memory config image: the PCIe
//! extended capability list (to find CXL DVSECs, CXL 3.1 8.1), the
//! Register Locator DVSEC entries, the CXL Device DVSEC memory range, and
//! the standard capability list (to read the PCIe port number).
//!
//! Config images come from sysfs, which is only as trustworthy as the
//! device, so every pointer is bounds-checked and capability chains are
//! checked for loops instead of trusting them.

use crate::{le16, le32};
use std::fmt;

/// Full size of a PCIe configuration space.
pub const CONFIG_SPACE_LEN: usize = 4096;
/// Offset of the first PCIe extended capability.
pub const EXT_CAP_START: usize = 0x100;
/// Extended capability id of a Designated Vendor-Specific Extended Capability.
pub const EXT_CAP_ID_DVSEC: u16 = 0x23;
/// DVSEC vendor id assigned to the CXL consortium.
pub const CXL_VENDOR_ID: u16 = 0x1E98;
/// DVSEC id of the PCIe DVSEC for CXL Devices.
pub const DVSEC_CXL_DEVICE: u16 = 0;
/// DVSEC id of the Register Locator DVSEC.
pub const DVSEC_REGISTER_LOCATOR: u16 = 8;
/// Register Block Identifier of the CXL component registers.
pub const REG_BLOCK_COMPONENT: u8 = 1;
/// Standard capability id of the PCI Express capability.
pub const PCI_CAP_ID_EXP: u8 = 0x10;
/// PCIe Device/Port Type value of a Root Port.
pub const PCIE_TYPE_ROOT_PORT: u8 = 4;

/// Offset of the first entry in a Register Locator DVSEC.
const LOCATOR_ENTRIES: usize = 0xC;
/// Minimum length of the CXL Device DVSEC that still covers Range 1 Size.
const DEVICE_DVSEC_MIN_LEN: usize = 0x20;

/// Why a config image could not be interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A capability `next` pointer leads somewhere invalid.
    BadPointer {
        /// Capability holding the pointer (0x34 for the list head).
        from: usize,
        /// The pointer value.
        to: usize,
    },
    /// A capability chain revisits an offset; walking it would never end.
    Loop {
        /// Offset that was reached a second time.
        offset: usize,
    },
    /// A DVSEC whose length is too small or runs past the config image.
    BadDvsecLength {
        /// DVSEC offset.
        offset: usize,
        /// DVSEC length from header 1.
        length: u16,
        /// Minimum length required for this use.
        min: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadPointer { from, to } => write!(
                f,
                "config space capability at {from:#x} points to invalid offset {to:#x}"
            ),
            ConfigError::Loop { offset } => write!(
                f,
                "config space capability list loops (offset {offset:#x} visited twice)"
            ),
            ConfigError::BadDvsecLength {
                offset,
                length,
                min,
            } => write!(
                f,
                "DVSEC at {offset:#x} has bad length {length:#x} (needs at least {min:#x} \
                 and must fit in config space)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// One PCIe extended capability header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtCap {
    /// Offset in config space.
    pub offset: usize,
    /// Extended capability id.
    pub id: u16,
    /// Capability version.
    pub version: u8,
}

/// Walks the extended capability list starting at 0x100.
///
/// An image shorter than 0x104 bytes (e.g. config read as non-root, or a
/// conventional PCI device) simply has no extended capabilities.
pub fn ext_caps(cfg: &[u8]) -> Result<Vec<ExtCap>, ConfigError> {
    let mut caps = Vec::new();
    if cfg.len() < EXT_CAP_START + 4 {
        return Ok(caps);
    }
    let mut visited = vec![false; cfg.len() / 4];
    let mut off = EXT_CAP_START;
    loop {
        if visited[off / 4] {
            return Err(ConfigError::Loop { offset: off });
        }
        visited[off / 4] = true;
        let hdr = le32(cfg, off);
        // All-zeros means "no capabilities"; all-ones means the device did
        // not answer. Either ends the list, as in Linux.
        if hdr == 0 || hdr == u32::MAX {
            break;
        }
        caps.push(ExtCap {
            offset: off,
            id: (hdr & 0xffff) as u16,
            version: ((hdr >> 16) & 0xf) as u8,
        });
        // The low two bits of the pointer are reserved.
        let next = ((hdr >> 20) & 0xffc) as usize;
        if next == 0 {
            break;
        }
        if next < EXT_CAP_START || next + 4 > cfg.len() {
            return Err(ConfigError::BadPointer {
                from: off,
                to: next,
            });
        }
        off = next;
    }
    Ok(caps)
}

/// A Designated Vendor-Specific Extended Capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dvsec {
    /// Offset in config space.
    pub offset: usize,
    /// DVSEC vendor id (0x1E98 for CXL).
    pub vendor: u16,
    /// DVSEC revision.
    pub revision: u8,
    /// DVSEC length in bytes, headers included.
    pub length: u16,
    /// DVSEC id.
    pub id: u16,
}

/// Lists every DVSEC in the extended capability list.
pub fn dvsecs(cfg: &[u8]) -> Result<Vec<Dvsec>, ConfigError> {
    let mut out = Vec::new();
    for cap in ext_caps(cfg)? {
        if cap.id != EXT_CAP_ID_DVSEC {
            continue;
        }
        // Header 2 ends at +0xA; ext_caps only guaranteed +4.
        if cap.offset + 0xA > cfg.len() {
            return Err(ConfigError::BadDvsecLength {
                offset: cap.offset,
                length: 0,
                min: 0xA,
            });
        }
        let h1 = le32(cfg, cap.offset + 4);
        let d = Dvsec {
            offset: cap.offset,
            vendor: (h1 & 0xffff) as u16,
            revision: ((h1 >> 16) & 0xf) as u8,
            length: (h1 >> 20) as u16,
            id: le16(cfg, cap.offset + 8),
        };
        check_dvsec_len(cfg, &d, 0xA)?;
        out.push(d);
    }
    Ok(out)
}

/// Finds the first DVSEC with the given vendor and id.
pub fn find_dvsec(cfg: &[u8], vendor: u16, id: u16) -> Result<Option<Dvsec>, ConfigError> {
    Ok(dvsecs(cfg)?
        .into_iter()
        .find(|d| d.vendor == vendor && d.id == id))
}

fn check_dvsec_len(cfg: &[u8], d: &Dvsec, min: usize) -> Result<(), ConfigError> {
    let len = usize::from(d.length);
    if len < min || d.offset + len > cfg.len() {
        return Err(ConfigError::BadDvsecLength {
            offset: d.offset,
            length: d.length,
            min,
        });
    }
    Ok(())
}

/// One Register Locator DVSEC entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterBlock {
    /// BAR Indicator: which BAR (`resource<N>` in sysfs) holds the block.
    pub bir: u8,
    /// Register Block Identifier (1 = component registers).
    pub block_id: u8,
    /// Offset of the block inside the BAR (64 KiB aligned).
    pub offset: u64,
}

/// Parses the entries of a Register Locator DVSEC.
pub fn register_locator(cfg: &[u8], d: &Dvsec) -> Result<Vec<RegisterBlock>, ConfigError> {
    check_dvsec_len(cfg, d, LOCATOR_ENTRIES)?;
    let len = usize::from(d.length);
    if !(len - LOCATOR_ENTRIES).is_multiple_of(8) {
        return Err(ConfigError::BadDvsecLength {
            offset: d.offset,
            length: d.length,
            min: LOCATOR_ENTRIES,
        });
    }
    Ok((0..(len - LOCATOR_ENTRIES) / 8)
        .map(|i| {
            let e = d.offset + LOCATOR_ENTRIES + 8 * i;
            let lo = le32(cfg, e);
            let hi = le32(cfg, e + 4);
            RegisterBlock {
                bir: (lo & 0x7) as u8,
                block_id: ((lo >> 8) & 0xff) as u8,
                offset: (u64::from(hi) << 32) | u64::from(lo & 0xffff_0000),
            }
        })
        .collect())
}

/// The fields of the PCIe DVSEC for CXL Devices that the tool uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceDvsec {
    /// DVSEC CXL Capability register (+0xA).
    pub capability: u16,
    /// DVSEC CXL Control register (+0xC).
    pub control: u16,
    /// DVSEC CXL Range 1 Size High (+0x18).
    pub range1_size_high: u32,
    /// DVSEC CXL Range 1 Size Low (+0x1C).
    pub range1_size_low: u32,
}

impl DeviceDvsec {
    /// Capability bit 2: the device supports CXL.mem.
    pub fn mem_capable(&self) -> bool {
        self.capability & (1 << 2) != 0
    }
    /// Capability bits 5:4: number of HDM ranges (0 means none).
    pub fn hdm_count(&self) -> u8 {
        ((self.capability >> 4) & 0x3) as u8
    }
    /// Control bit 2: CXL.mem enabled.
    pub fn mem_enabled(&self) -> bool {
        self.control & (1 << 2) != 0
    }
    /// Range 1 Size Low bit 0: the size field is valid.
    pub fn range1_info_valid(&self) -> bool {
        self.range1_size_low & 1 != 0
    }
    /// Range 1 Size Low bit 1: the media is active (ready for use).
    pub fn range1_active(&self) -> bool {
        self.range1_size_low & 2 != 0
    }
    /// Range 1 size in bytes (256 MiB granularity).
    pub fn range1_size(&self) -> u64 {
        (u64::from(self.range1_size_high) << 32) | u64::from(self.range1_size_low & 0xf000_0000)
    }
}

/// Reads the CXL Device DVSEC registers.
pub fn device_dvsec(cfg: &[u8], d: &Dvsec) -> Result<DeviceDvsec, ConfigError> {
    check_dvsec_len(cfg, d, DEVICE_DVSEC_MIN_LEN)?;
    Ok(DeviceDvsec {
        capability: le16(cfg, d.offset + 0xA),
        control: le16(cfg, d.offset + 0xC),
        range1_size_high: le32(cfg, d.offset + 0x18),
        range1_size_low: le32(cfg, d.offset + 0x1C),
    })
}

/// Finds a capability in the standard (non-extended) capability list.
pub fn find_cap(cfg: &[u8], id: u8) -> Result<Option<usize>, ConfigError> {
    // Status bit 4: the capability list exists at all.
    if cfg.len() < 0x40 || cfg[0x06] & 0x10 == 0 {
        return Ok(None);
    }
    let mut visited = [false; 64];
    let mut from = 0x34;
    let mut off = usize::from(cfg[0x34] & 0xfc);
    while off != 0 {
        if off < 0x40 || off + 2 > cfg.len() || off >= 0x100 {
            return Err(ConfigError::BadPointer { from, to: off });
        }
        if visited[off / 4] {
            return Err(ConfigError::Loop { offset: off });
        }
        visited[off / 4] = true;
        if cfg[off] == id {
            return Ok(Some(off));
        }
        from = off;
        off = usize::from(cfg[off + 1] & 0xfc);
    }
    Ok(None)
}

/// Standard capability id of the PCI Power Management capability.
pub const PCI_CAP_ID_PM: u8 = 0x01;
/// PowerState value (PMCSR bits 1:0) of D3hot.
pub const PM_STATE_D3HOT: u8 = 3;

/// The function's power state (PMCSR bits 1:0: 0 = D0 ... 3 = D3hot), `None` without a PM
/// capability (the function is then always in D0).
pub fn power_state(cfg: &[u8]) -> Result<Option<u8>, ConfigError> {
    let Some(off) = find_cap(cfg, PCI_CAP_ID_PM)? else {
        return Ok(None);
    };
    // PMCSR is at +4.
    if off + 6 > cfg.len() {
        return Err(ConfigError::BadPointer {
            from: 0x34,
            to: off,
        });
    }
    Ok(Some((le16(cfg, off + 4) & 0x3) as u8))
}

/// The PCI Express capability fields the tool uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcieCap {
    /// Offset of the capability.
    pub offset: usize,
    /// Device/Port Type (PCIe Capabilities register bits 7:4).
    pub port_type: u8,
    /// Port Number (Link Capabilities register bits 31:24); the CXL
    /// host bridge decoder target list refers to root ports by it.
    pub port_number: u8,
}

/// Reads the PCI Express capability, if present.
pub fn pcie_cap(cfg: &[u8]) -> Result<Option<PcieCap>, ConfigError> {
    let Some(off) = find_cap(cfg, PCI_CAP_ID_EXP)? else {
        return Ok(None);
    };
    // Link Capabilities ends at +0x10.
    if off + 0x10 > cfg.len() {
        return Err(ConfigError::BadPointer {
            from: 0x34,
            to: off,
        });
    }
    Ok(Some(PcieCap {
        offset: off,
        port_type: ((le16(cfg, off + 2) >> 4) & 0xf) as u8,
        port_number: (le32(cfg, off + 0xC) >> 24) as u8,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put32(cfg: &mut [u8], off: usize, v: u32) {
        cfg[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put16(cfg: &mut [u8], off: usize, v: u16) {
        cfg[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn reads_the_power_state() {
        let mut cfg = vec![0u8; CONFIG_SPACE_LEN];
        // No capability list: no PM capability, always D0.
        assert_eq!(power_state(&cfg), Ok(None));
        cfg[0x06] = 0x10;
        cfg[0x34] = 0x40;
        // PM at 0x40 (next 0x80), PCIe at 0x80: cxl-accel's layout.
        cfg[0x40] = PCI_CAP_ID_PM;
        cfg[0x41] = 0x80;
        cfg[0x80] = PCI_CAP_ID_EXP;
        put16(&mut cfg, 0x44, 0x0008); // No_Soft_Reset, D0
        assert_eq!(power_state(&cfg), Ok(Some(0)));
        put16(&mut cfg, 0x44, 0x0008 | 3);
        assert_eq!(power_state(&cfg), Ok(Some(PM_STATE_D3HOT)));
        // Only PCIe (cxl-type3): no PM capability.
        cfg[0x34] = 0x80;
        assert_eq!(power_state(&cfg), Ok(None));
    }

    fn ext_hdr(id: u16, version: u32, next: usize) -> u32 {
        u32::from(id) | (version << 16) | ((next as u32) << 20)
    }

    fn dvsec_at(cfg: &mut [u8], off: usize, next: usize, vendor: u16, len: u32, id: u16) {
        put32(cfg, off, ext_hdr(EXT_CAP_ID_DVSEC, 1, next));
        put32(cfg, off + 4, u32::from(vendor) | (1 << 16) | (len << 20));
        put16(cfg, off + 8, id);
    }

    /// The layout of QEMU's cxl-type3: Device DVSEC at 0x100 (len 0x38),
    /// Register Locator at 0x138, then an AER-like non-DVSEC capability
    /// and a foreign-vendor DVSEC that must both be passed over.
    fn type3_config() -> Vec<u8> {
        let mut c = vec![0u8; CONFIG_SPACE_LEN];
        put16(&mut c, 0, 0x8086);
        put16(&mut c, 2, 0x0d93);

        dvsec_at(&mut c, 0x100, 0x138, CXL_VENDOR_ID, 0x38, DVSEC_CXL_DEVICE);
        put16(&mut c, 0x10A, (1 << 2) | (1 << 4)); // Mem_Capable, HDM_Count 1
        put16(&mut c, 0x10C, 0);
        put32(&mut c, 0x118, 0); // Range 1 Size High
        put32(&mut c, 0x11C, 0x1000_0000 | 0x3); // 256 MiB, valid, active

        dvsec_at(
            &mut c,
            0x138,
            0x158,
            CXL_VENDOR_ID,
            0x1C,
            DVSEC_REGISTER_LOCATOR,
        );
        put32(&mut c, 0x138 + 0xC, u32::from(REG_BLOCK_COMPONENT) << 8); // BAR0 + 0
        put32(&mut c, 0x138 + 0x10, 0);
        put32(&mut c, 0x138 + 0x14, 0x0001_0000 | (3 << 8) | 2); // BAR2, block 3
        put32(&mut c, 0x138 + 0x18, 0x1);

        put32(&mut c, 0x158, ext_hdr(0x0001, 2, 0x1a0)); // AER
        dvsec_at(&mut c, 0x1a0, 0, 0x8086, 0x10, DVSEC_REGISTER_LOCATOR);
        c
    }

    #[test]
    fn walks_extended_capabilities() {
        let caps = ext_caps(&type3_config()).unwrap();
        let offs: Vec<_> = caps.iter().map(|c| (c.offset, c.id)).collect();
        assert_eq!(
            offs,
            vec![(0x100, 0x23), (0x138, 0x23), (0x158, 0x1), (0x1a0, 0x23)]
        );
        assert_eq!(caps[2].version, 2);
    }

    #[test]
    fn finds_dvsecs_by_vendor_and_id() {
        let c = type3_config();
        let dev = find_dvsec(&c, CXL_VENDOR_ID, DVSEC_CXL_DEVICE)
            .unwrap()
            .unwrap();
        assert_eq!(
            dev,
            Dvsec {
                offset: 0x100,
                vendor: CXL_VENDOR_ID,
                revision: 1,
                length: 0x38,
                id: 0
            }
        );
        let loc = find_dvsec(&c, CXL_VENDOR_ID, DVSEC_REGISTER_LOCATOR)
            .unwrap()
            .unwrap();
        // Same id 8 but another vendor lives at 0x1a0: must not be chosen.
        assert_eq!(loc.offset, 0x138);
        assert_eq!(find_dvsec(&c, CXL_VENDOR_ID, 5).unwrap(), None);
    }

    #[test]
    fn parses_register_locator_entries() {
        let c = type3_config();
        let loc = find_dvsec(&c, CXL_VENDOR_ID, DVSEC_REGISTER_LOCATOR)
            .unwrap()
            .unwrap();
        assert_eq!(
            register_locator(&c, &loc).unwrap(),
            vec![
                RegisterBlock {
                    bir: 0,
                    block_id: REG_BLOCK_COMPONENT,
                    offset: 0
                },
                RegisterBlock {
                    bir: 2,
                    block_id: 3,
                    offset: 0x1_0001_0000
                },
            ]
        );
    }

    #[test]
    fn register_locator_length_must_be_whole_entries() {
        let mut c = type3_config();
        put32(
            &mut c,
            0x13C,
            u32::from(CXL_VENDOR_ID) | (1 << 16) | (0x1A << 20),
        );
        let loc = find_dvsec(&c, CXL_VENDOR_ID, DVSEC_REGISTER_LOCATOR)
            .unwrap()
            .unwrap();
        assert!(matches!(
            register_locator(&c, &loc),
            Err(ConfigError::BadDvsecLength { offset: 0x138, .. })
        ));
    }

    #[test]
    fn reads_device_dvsec_range_size() {
        let c = type3_config();
        let d = find_dvsec(&c, CXL_VENDOR_ID, DVSEC_CXL_DEVICE)
            .unwrap()
            .unwrap();
        let dev = device_dvsec(&c, &d).unwrap();
        assert!(dev.mem_capable());
        assert_eq!(dev.hdm_count(), 1);
        assert!(!dev.mem_enabled());
        assert!(dev.range1_info_valid());
        assert!(dev.range1_active());
        assert_eq!(dev.range1_size(), 256 << 20);

        // High dword and the low flag bits: flags must not leak into the size.
        let mut c = type3_config();
        put32(&mut c, 0x118, 0x2);
        put32(&mut c, 0x11C, 0x3000_00ff);
        let dev = device_dvsec(&c, &d).unwrap();
        assert_eq!(dev.range1_size(), 0x2_3000_0000);
    }

    #[test]
    fn looping_next_chain_is_an_error_not_a_hang() {
        // Register Locator points back at the Device DVSEC.
        let mut c = type3_config();
        put32(&mut c, 0x138, ext_hdr(EXT_CAP_ID_DVSEC, 1, 0x100));
        assert_eq!(ext_caps(&c), Err(ConfigError::Loop { offset: 0x100 }));
        assert_eq!(
            find_dvsec(&c, CXL_VENDOR_ID, 5),
            Err(ConfigError::Loop { offset: 0x100 })
        );

        // A capability pointing at itself.
        let mut c = type3_config();
        put32(&mut c, 0x158, ext_hdr(0x0001, 2, 0x158));
        assert_eq!(ext_caps(&c), Err(ConfigError::Loop { offset: 0x158 }));
    }

    #[test]
    fn bad_pointers_and_short_images() {
        let mut c = type3_config();
        put32(&mut c, 0x158, ext_hdr(0x0001, 2, 0x80));
        assert_eq!(
            ext_caps(&c),
            Err(ConfigError::BadPointer {
                from: 0x158,
                to: 0x80
            })
        );
        // Non-root sysfs reads give only 64 or 256 bytes: no ext caps, no error.
        assert_eq!(ext_caps(&type3_config()[..256]), Ok(vec![]));
        // An image cut inside the (now last) locator DVSEC.
        let mut c = type3_config();
        put32(&mut c, 0x138, ext_hdr(EXT_CAP_ID_DVSEC, 1, 0));
        assert!(matches!(
            find_dvsec(&c[..0x150], CXL_VENDOR_ID, DVSEC_REGISTER_LOCATOR),
            Err(ConfigError::BadDvsecLength { offset: 0x138, .. })
        ));
        // All-ones (device gone) ends the list.
        let c = vec![0xffu8; CONFIG_SPACE_LEN];
        assert_eq!(ext_caps(&c), Ok(vec![]));
    }

    #[test]
    fn device_dvsec_too_short() {
        let mut c = type3_config();
        put32(
            &mut c,
            0x104,
            u32::from(CXL_VENDOR_ID) | (1 << 16) | (0x10 << 20),
        );
        let d = find_dvsec(&c, CXL_VENDOR_ID, DVSEC_CXL_DEVICE)
            .unwrap()
            .unwrap();
        assert_eq!(
            device_dvsec(&c, &d),
            Err(ConfigError::BadDvsecLength {
                offset: 0x100,
                length: 0x10,
                min: 0x20
            })
        );
    }

    fn root_port_config(port: u8) -> Vec<u8> {
        let mut c = vec![0u8; 256];
        c[0x06] = 0x10; // capability list present
        c[0x34] = 0x40;
        c[0x40] = 0x01; // power management
        c[0x41] = 0x60;
        c[0x60] = PCI_CAP_ID_EXP;
        c[0x61] = 0x00;
        put16(&mut c, 0x62, (u16::from(PCIE_TYPE_ROOT_PORT) << 4) | 2);
        put32(&mut c, 0x6C, (u32::from(port) << 24) | 0x0003_f412);
        c
    }

    #[test]
    fn reads_root_port_number() {
        let c = root_port_config(5);
        assert_eq!(
            pcie_cap(&c).unwrap(),
            Some(PcieCap {
                offset: 0x60,
                port_type: PCIE_TYPE_ROOT_PORT,
                port_number: 5
            })
        );
        let mut c = root_port_config(0);
        c[0x06] = 0; // no capability list
        assert_eq!(pcie_cap(&c).unwrap(), None);
    }

    #[test]
    fn standard_capability_loop_is_detected() {
        let mut c = root_port_config(0);
        c[0x60] = 0x05; // not PCIe, so the walk goes on
        c[0x61] = 0x40;
        assert_eq!(
            find_cap(&c, PCI_CAP_ID_EXP),
            Err(ConfigError::Loop { offset: 0x40 })
        );
        let mut c = root_port_config(0);
        c[0x41] = 0x20;
        assert_eq!(
            find_cap(&c, PCI_CAP_ID_EXP),
            Err(ConfigError::BadPointer {
                from: 0x40,
                to: 0x20
            })
        );
    }
}
