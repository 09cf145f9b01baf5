//! Markers for data the in-VM DPA suite leaves in device memory, and their
//! check against the QEMU memory backend file on the host.
//!
//! The guest writes known bytes at known DPA offsets, closes the device and
//! prints one KTAP diagnostic per marker, then the number of markers:
//!
//! ```text
//! # backend-check offset=0x4003039 len=4096 fnv1a64=85944171f73967e8 head=6f2c...
//! # backend-check count=2
//! ```
//!
//! (`fnv1a64` is the FNV-1a hash of the bytes in 16 hex digits; `head` is the
//! hex of the first up to 16 bytes, for a readable mismatch report.) After the VM exits,
//! `cxlvfio backend-check FILE` finds the same bytes at the same offsets of the
//! backend file, which proves the data reached the device memory itself: the
//! test device's decoder maps the whole backend from DPA 0, so DPA offset =
//! file offset.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::pattern::{fnv1a64, hex, parse_hex_bytes};

/// The first word of every marker line after `# `.
pub const MARKER_TAG: &str = "backend-check";
/// Bytes of the data repeated in the marker line.
pub const HEAD_LEN: usize = 16;
/// Largest `len` a marker may announce (the checker reads that much).
pub const MAX_MARKER_LEN: usize = 1 << 20;

/// Data written at `offset` of the device memory: its length, hash and first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// DPA offset (= backend file offset).
    pub offset: u64,
    /// Number of bytes.
    pub len: usize,
    /// FNV-1a 64 of the bytes.
    pub fnv1a64: u64,
    /// The first `min(len, HEAD_LEN)` bytes.
    pub head: Vec<u8>,
}

impl Marker {
    /// Describes `data`, written at `offset`.
    pub fn describe(offset: u64, data: &[u8]) -> Marker {
        Marker {
            offset,
            len: data.len(),
            fnv1a64: fnv1a64(data),
            head: data[..data.len().min(HEAD_LEN)].to_vec(),
        }
    }

    /// The diagnostic text (what follows `# `).
    pub fn to_diag(&self) -> String {
        format!(
            "{MARKER_TAG} offset={:#x} len={} fnv1a64={:016x} head={}",
            self.offset,
            self.len,
            self.fnv1a64,
            hex(&self.head)
        )
    }

    /// Whether `data` are the bytes this marker describes.
    pub fn matches(&self, data: &[u8]) -> bool {
        data.len() == self.len && fnv1a64(data) == self.fnv1a64 && data.starts_with(&self.head)
    }
}

/// The diagnostic text of the closing line that says how many markers were printed.
pub fn count_diag(count: usize) -> String {
    format!("{MARKER_TAG} count={count}")
}

/// A parsed `backend-check` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerLine {
    /// One marker.
    Marker(Marker),
    /// The closing count line.
    Count(usize),
}

/// Parses one output line: `None` if it is not a `# backend-check` line, an
/// error if it is one but malformed.
pub fn parse_line(line: &str) -> Option<Result<MarkerLine, String>> {
    let body = line
        .trim_end_matches(['\r', '\n'])
        .trim_start()
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix(MARKER_TAG)?;
    if !(body.is_empty() || body.starts_with(' ')) {
        return None; // "backend-checker ..." is some other line.
    }
    Some(parse_fields(body).map_err(|e| format!("{e}: {:?}", line.trim_end())))
}

fn parse_fields(body: &str) -> Result<MarkerLine, String> {
    let (mut offset, mut len, mut hash, mut head, mut count) = (None, None, None, None, None);
    for field in body.split_whitespace() {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("field {field:?} is not key=value"))?;
        let slot_taken = match key {
            "offset" => {
                let digits = value
                    .strip_prefix("0x")
                    .ok_or_else(|| format!("offset {value:?} lacks 0x"))?;
                let v =
                    u64::from_str_radix(digits, 16).map_err(|_| format!("bad offset {value:?}"))?;
                offset.replace(v).is_some()
            }
            "len" => {
                let v: usize = value.parse().map_err(|_| format!("bad len {value:?}"))?;
                len.replace(v).is_some()
            }
            "fnv1a64" => {
                if value.len() != 16 {
                    return Err(format!("fnv1a64 {value:?} is not 16 hex digits"));
                }
                let v =
                    u64::from_str_radix(value, 16).map_err(|_| format!("bad fnv1a64 {value:?}"))?;
                hash.replace(v).is_some()
            }
            "head" => {
                let v = parse_hex_bytes(value).ok_or_else(|| format!("bad head {value:?}"))?;
                head.replace(v).is_some()
            }
            "count" => {
                let v: usize = value.parse().map_err(|_| format!("bad count {value:?}"))?;
                count.replace(v).is_some()
            }
            _ => return Err(format!("unknown field {key:?}")),
        };
        if slot_taken {
            return Err(format!("field {key:?} given twice"));
        }
    }
    match (offset, len, hash, head, count) {
        (None, None, None, None, Some(n)) => Ok(MarkerLine::Count(n)),
        (Some(offset), Some(len), Some(fnv1a64), head, None) => {
            if len == 0 || len > MAX_MARKER_LEN {
                return Err(format!("len {len} not in 1..={MAX_MARKER_LEN}"));
            }
            let head = head.unwrap_or_default();
            if head.len() > len.min(HEAD_LEN) {
                return Err(format!("head has {} bytes for len {len}", head.len()));
            }
            Ok(MarkerLine::Marker(Marker {
                offset,
                len,
                fnv1a64,
                head,
            }))
        }
        _ => Err("expected offset, len and fnv1a64 (and optionally head), or count".to_string()),
    }
}

/// Everything `backend-check` lines in some output say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkerLog {
    /// The markers, in output order.
    pub markers: Vec<Marker>,
    /// Every count line's value.
    pub counts: Vec<usize>,
    /// One message per malformed `backend-check` line.
    pub errors: Vec<String>,
}

/// Collects the `backend-check` lines of `text`, ignoring every other line. In the output of
/// several runs on one device (one per IOMMU mode), only the last run's markers count: a
/// marker after a count line starts a new run, and the device memory holds what the last run
/// left (the next open scrubs what the previous one wrote).
pub fn parse_log(text: &str) -> MarkerLog {
    let mut log = MarkerLog::default();
    for line in text.lines() {
        match parse_line(line) {
            None => {}
            Some(Ok(MarkerLine::Marker(m))) => {
                if !log.counts.is_empty() {
                    log.markers.clear();
                    log.counts.clear();
                }
                log.markers.push(m)
            }
            Some(Ok(MarkerLine::Count(n))) => log.counts.push(n),
            Some(Err(e)) => log.errors.push(e),
        }
    }
    log
}

/// Checks that `file` holds the bytes `m` describes at `m.offset`.
pub fn check_marker(file: &File, m: &Marker) -> Result<(), String> {
    let mut buf = vec![0u8; m.len];
    file.read_exact_at(&mut buf, m.offset).map_err(|e| {
        let size = file.metadata().map(|md| md.len()).unwrap_or(0);
        format!(
            "cannot read {} bytes at {:#x} (file size {size:#x}): {e}",
            m.len, m.offset
        )
    })?;
    if m.matches(&buf) {
        return Ok(());
    }
    let shown = &buf[..m.len.min(HEAD_LEN)];
    let zeros = if buf.iter().all(|&b| b == 0) {
        " (all zeros)"
    } else {
        ""
    };
    Err(format!(
        "file fnv1a64 {:016x}, guest wrote {:016x}; file starts {}{zeros}, guest's data {}",
        fnv1a64(&buf),
        m.fnv1a64,
        hex(shown),
        hex(&m.head)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern;

    #[test]
    fn only_the_last_runs_markers_count() {
        let first = Marker::describe(0x1000, &pattern::bytes(1, 0x1000, 64));
        let second = Marker::describe(0x2000, &pattern::bytes(2, 0x2000, 64));
        let text = format!(
            "# {}\n# {}\nok 1 a\n# {}\n# {}\n",
            first.to_diag(),
            count_diag(1),
            second.to_diag(),
            count_diag(1)
        );
        let log = parse_log(&text);
        assert_eq!(log.markers, vec![second]);
        assert_eq!(log.counts, vec![1]);
        assert!(log.errors.is_empty());
    }

    #[test]
    fn marker_round_trip() {
        let data = pattern::bytes(42, 0x4003039, 4096);
        let m = Marker::describe(0x4003039, &data);
        assert_eq!(m.head.len(), HEAD_LEN);
        let line = format!("# {}", m.to_diag());
        assert!(line.starts_with("# backend-check offset=0x4003039 len=4096 fnv1a64="));
        assert_eq!(parse_line(&line), Some(Ok(MarkerLine::Marker(m.clone()))));
        // Console artefacts around it.
        assert_eq!(
            parse_line(&format!("  {line}\r")),
            Some(Ok(MarkerLine::Marker(m.clone())))
        );
        assert!(m.matches(&data));
        let mut other = data.clone();
        other[4000] ^= 1;
        assert!(!m.matches(&other));
        assert!(!m.matches(&data[..4095]));
        let short = Marker::describe(5, b"abc");
        assert_eq!(short.head, b"abc");
        let line = format!("# {}", short.to_diag());
        assert_eq!(parse_line(&line), Some(Ok(MarkerLine::Marker(short))));
        assert_eq!(
            parse_line(&format!("# {}", count_diag(2))),
            Some(Ok(MarkerLine::Count(2)))
        );
    }

    #[test]
    fn other_lines_are_ignored() {
        for line in [
            "",
            "ok 19 backend_markers",
            "# faults: aligned=32 misaligned=16384 ratio=512.0",
            "backend-check offset=0x0 len=1 fnv1a64=0000000000000000",
            "# backend-checker offset=0x0",
            "# backend_markers: wrote 4096 bytes",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        for line in [
            "# backend-check",
            "# backend-check offset=0x10 len=4",
            "# backend-check offset=10 len=4 fnv1a64=0000000000000000",
            "# backend-check offset=0x10 len=0 fnv1a64=0000000000000000",
            "# backend-check offset=0x10 len=4 fnv1a64=00",
            "# backend-check offset=0x10 len=4 fnv1a64=000000000000000g",
            "# backend-check offset=0x10 len=4 fnv1a64=0000000000000000 head=0011223344",
            "# backend-check offset=0x10 len=4 fnv1a64=0000000000000000 extra",
            "# backend-check offset=0x10 offset=0x20 len=4 fnv1a64=0000000000000000",
            "# backend-check count=x",
            "# backend-check count=1 offset=0x10",
            "# backend-check what=1",
        ] {
            assert!(
                matches!(parse_line(line), Some(Err(_))),
                "{line:?} gave {:?}",
                parse_line(line)
            );
        }
    }

    #[test]
    fn log_collection() {
        let a = Marker::describe(0x10, b"hello");
        let text = format!(
            "KTAP version 1\n1..2\n# {}\n[ 1.0] some kernel line\n# backend-check bad\n# {}\nok 1 x\n",
            a.to_diag(),
            count_diag(1)
        );
        let log = parse_log(&text);
        assert_eq!(log.markers, vec![a]);
        assert_eq!(log.counts, vec![1]);
        assert_eq!(log.errors.len(), 1);
        assert_eq!(parse_log("nothing here\n"), MarkerLog::default());
    }

    #[test]
    fn check_against_a_file() {
        let path = std::env::temp_dir().join(format!("cxlvfio-backend-{}", std::process::id()));
        let mut content = vec![0u8; 0x3000];
        let data = pattern::bytes(7, 0x1003, 0x800);
        content[0x1003..0x1803].copy_from_slice(&data);
        std::fs::write(&path, &content).unwrap();
        let f = File::open(&path).unwrap();
        assert_eq!(check_marker(&f, &Marker::describe(0x1003, &data)), Ok(()));
        // Wrong offset: different bytes.
        let e = check_marker(&f, &Marker::describe(0x1004, &data)).unwrap_err();
        assert!(e.contains("guest wrote"), "{e}");
        // Data never written: all zeros.
        let e = check_marker(&f, &Marker::describe(0x2000, &data)).unwrap_err();
        assert!(e.contains("(all zeros)"), "{e}");
        // Past the end of the file.
        let e = check_marker(&f, &Marker::describe(0x2f00, &data)).unwrap_err();
        assert!(e.contains("file size 0x3000"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
