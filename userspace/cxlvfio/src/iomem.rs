//! The kernel's physical address space map, `/proc/iomem`.
//!
//! Lines look like `  110000000-11fffffff : cxl-vfio-pci 0000:0d:00.0`: two
//! spaces of indentation per nesting level, an inclusive hex range, and the
//! name the claimant gave. Without `CAP_SYS_ADMIN` every address reads 0.

use std::fs;
use std::io;

use crate::error::ResultExt;

/// Where the kernel publishes the map.
pub const PROC_IOMEM: &str = "/proc/iomem";

/// One resource of `/proc/iomem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IomemEntry {
    /// First address.
    pub start: u64,
    /// Last address (inclusive).
    pub end: u64,
    /// Nesting level (0: top level).
    pub depth: usize,
    /// The resource's name.
    pub name: String,
}

impl IomemEntry {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.end.wrapping_sub(self.start).wrapping_add(1)
    }
}

/// Parses `/proc/iomem` text; malformed lines are skipped.
pub fn parse_iomem(text: &str) -> Vec<IomemEntry> {
    text.lines()
        .filter_map(|line| {
            let body = line.trim_start_matches(' ');
            let depth = (line.len() - body.len()) / 2;
            let (range, name) = body.split_once(" : ")?;
            let (start, end) = range.trim().split_once('-')?;
            Some(IomemEntry {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                depth,
                name: name.trim_end().to_string(),
            })
        })
        .collect()
}

/// Reads and parses `/proc/iomem`.
pub fn read_iomem() -> io::Result<Vec<IomemEntry>> {
    let text = fs::read_to_string(PROC_IOMEM).context(|| format!("read {PROC_IOMEM}"))?;
    Ok(parse_iomem(&text))
}

/// Whether the map hides its addresses (every range 0-0: the reader lacks `CAP_SYS_ADMIN`).
pub fn addresses_hidden(entries: &[IomemEntry]) -> bool {
    !entries.is_empty() && entries.iter().all(|e| e.start == 0 && e.end == 0)
}

/// The entries named exactly `name`.
pub fn find_by_name<'a>(entries: &'a [IomemEntry], name: &str) -> Vec<&'a IomemEntry> {
    entries.iter().filter(|e| e.name == name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000a0000-000bffff : PCI Bus 0000:00
fe800000-fe9fffff : PCI Bus 0000:0c
  fe800000-fe80ffff : 0000:0d:00.0
    fe800000-fe80ffff : cxl-vfio-pci
100000000-1ffffffff : CXL Window 0
  110000000-11fffffff : cxl-vfio-pci 0000:0d:00.0
not a line
  zz-11 : bad
";

    #[test]
    fn parses_ranges_depth_and_names() {
        let e = parse_iomem(SAMPLE);
        assert_eq!(e.len(), 8);
        assert_eq!(
            e[0],
            IomemEntry {
                start: 0,
                end: 0xfff,
                depth: 0,
                name: "Reserved".into()
            }
        );
        assert_eq!(e[0].size(), 0x1000);
        assert_eq!(e[4].depth, 1);
        assert_eq!(e[5].depth, 2);
        assert_eq!(e[5].name, "cxl-vfio-pci");
        let found = find_by_name(&e, "cxl-vfio-pci 0000:0d:00.0");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].start, 0x1_1000_0000);
        assert_eq!(found[0].size(), 256 << 20);
        assert_eq!(found[0].depth, 1);
        // Exact names only: the BAR claim of the same driver is not the DPA claim.
        assert!(find_by_name(&e, "cxl-vfio-pci 0000:0d:00").is_empty());
        assert!(!addresses_hidden(&e));
    }

    #[test]
    fn hidden_addresses() {
        let e = parse_iomem("00000000-00000000 : System RAM\n  00000000-00000000 : Kernel code\n");
        assert_eq!(e.len(), 2);
        assert!(addresses_hidden(&e));
        assert!(!addresses_hidden(&[]));
    }
}
