//! Scans the kernel log for signs of kernel bugs (warnings, oopses, lockdep,
//! sanitizer reports) that a test run may have triggered without failing.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

use crate::error::{other, ResultExt};

/// Substrings (case-sensitive) that mark a kernel problem report.
pub const PROBLEM_PATTERNS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "Oops",
    "general protection fault",
    "Kernel panic",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "suspicious RCU usage",
    "lockdep",
    "UBSAN:",
    "KASAN:",
    "refcount_t:",
    "list_add corruption",
    "list_del corruption",
    "sleeping function called from invalid context",
    // kmemleak gave up (the sanitizer kernel): its leak report would be empty whatever leaked.
    "kmemleak: Memory pool empty",
    "kmemleak: Cannot allocate",
    "kmemleak: Kernel memory leak detector disabled",
];

/// Substrings of known harmless lines that would otherwise match a pattern.
pub const BENIGN_PATTERNS: &[&str] = &[
    // Boot banner of CONFIG_PROVE_RCU (enabled by PROVE_LOCKING in the test config).
    "RCU lockdep checking is enabled",
    // The command line may name debug options (e.g. panic_on_warn, lockdep knobs).
    "Kernel command line:",
];

/// Whether a kernel log line reports a problem.
pub fn is_problem_line(line: &str) -> bool {
    PROBLEM_PATTERNS.iter().any(|p| line.contains(p))
        && !BENIGN_PATTERNS.iter().any(|b| line.contains(b))
}

/// The problem lines among `lines`, in order.
pub fn find_problems<'a, I>(lines: I) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    lines
        .into_iter()
        .filter(|l| is_problem_line(l))
        .map(str::to_string)
        .collect()
}

/// The message text of one `/dev/kmsg` record (`prio,seq,usec,flags;text`
/// followed by ` KEY=value` continuation lines), or `None` if malformed.
pub fn parse_kmsg_record(record: &str) -> Option<&str> {
    let first = record.lines().next()?;
    let (prefix, text) = first.split_once(';')?;
    // The prefix is comma-separated fields; the first three are numbers.
    let mut fields = prefix.split(',');
    for _ in 0..3 {
        fields.next()?.parse::<u64>().ok()?;
    }
    Some(text)
}

/// `KERN_ERR`: the log level of `dev_err()` and `pr_err()` (lower is more severe).
pub const LOG_ERR: u8 = 3;

/// One record of `/dev/kmsg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Log level, 0 (emergency) to 7 (debug).
    pub level: u8,
    /// Sequence number: increases by one per record.
    pub seq: u64,
    /// The message text.
    pub text: String,
}

/// Level, sequence number and text of one `/dev/kmsg` record, or `None` if malformed.
pub fn parse_kmsg_full(record: &str) -> Option<KmsgRecord> {
    let first = record.lines().next()?;
    let (prefix, text) = first.split_once(';')?;
    let mut fields = prefix.split(',');
    // The first field is the syslog priority: facility * 8 + level.
    let prio = fields.next()?.parse::<u64>().ok()?;
    let seq = fields.next()?.parse::<u64>().ok()?;
    fields.next()?.parse::<u64>().ok()?;
    Some(KmsgRecord {
        level: (prio & 7) as u8,
        seq,
        text: text.to_string(),
    })
}

/// Reads every record currently in the kernel ring buffer through `/dev/kmsg`.
pub fn read_kmsg_records() -> io::Result<Vec<KmsgRecord>> {
    // Non-blocking: a read at the end of the buffer returns EAGAIN instead of
    // waiting for new messages.
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .context(|| "open /dev/kmsg".to_string())?;
    let mut records = Vec::new();
    // Each read returns exactly one record; records are at most ~8 KiB.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                if let Some(r) = parse_kmsg_full(&rec) {
                    records.push(r);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // EPIPE: records were overwritten while reading; the next read
            // continues at the oldest record still available.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context(|| "read /dev/kmsg".to_string()),
        }
    }
    Ok(records)
}

fn read_dev_kmsg() -> io::Result<Vec<String>> {
    Ok(read_kmsg_records()?.into_iter().map(|r| r.text).collect())
}

/// A position in the kernel log: every record logged after this call has a
/// sequence number at least this large.
pub fn log_mark() -> io::Result<u64> {
    Ok(read_kmsg_records()?.last().map_or(0, |r| r.seq + 1))
}

/// The records logged since `mark` (from [`log_mark`]).
pub fn records_since(mark: u64) -> io::Result<Vec<KmsgRecord>> {
    let mut records = read_kmsg_records()?;
    records.retain(|r| r.seq >= mark);
    Ok(records)
}

/// Problem lines logged since `mark` (from [`log_mark`]).
pub fn problems_since(mark: u64) -> io::Result<Vec<String>> {
    let records = records_since(mark)?;
    Ok(find_problems(records.iter().map(|r| r.text.as_str())))
}

/// Reads the kernel log with `dmesg`.
fn read_dmesg() -> io::Result<Vec<String>> {
    let out = Command::new("dmesg")
        .output()
        .context(|| "run dmesg".to_string())?;
    if !out.status.success() {
        return Err(other(
            io::ErrorKind::Other,
            format!(
                "dmesg: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The whole kernel log, one message per line: `/dev/kmsg`, or `dmesg` if
/// `/dev/kmsg` cannot be read.
pub fn read_kernel_log() -> io::Result<Vec<String>> {
    match read_dev_kmsg() {
        Ok(lines) => Ok(lines),
        Err(kmsg_err) => read_dmesg().map_err(|dmesg_err| {
            other(
                io::ErrorKind::Other,
                format!("cannot read the kernel log: {kmsg_err}; {dmesg_err}"),
            )
        }),
    }
}

/// Problem lines in the current kernel log.
pub fn kernel_log_problems() -> io::Result<Vec<String>> {
    let log = read_kernel_log()?;
    Ok(find_problems(log.iter().map(String::as_str)))
}

/// A writer that turns each line written to it into one kernel log record (info level,
/// `prefix` before the line): the way out for a test's results when the VM's file systems
/// cannot be trusted (a virtme-ng guest's 9p root does not survive a system sleep), since the
/// console carries every record to the host.
pub struct KmsgLines {
    file: std::fs::File,
    prefix: String,
    line: Vec<u8>,
}

impl KmsgLines {
    /// Opens `/dev/kmsg` for writing.
    pub fn open(prefix: &str) -> io::Result<Self> {
        let file = OpenOptions::new().write(true).open("/dev/kmsg")?;
        Ok(Self {
            file,
            prefix: prefix.to_string(),
            line: Vec::new(),
        })
    }

    fn emit(&mut self) -> io::Result<()> {
        use std::io::Write;
        let mut record = format!("<6>{}", self.prefix).into_bytes();
        record.extend_from_slice(&self.line);
        self.line.clear();
        self.file.write_all(&record)
    }
}

impl std::io::Write for KmsgLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            if b == b'\n' {
                self.emit()?;
            } else {
                self.line.push(b);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.line.is_empty() {
            Ok(())
        } else {
            self.emit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: &[&str] = &[
        "WARNING: CPU: 1 PID: 312 at drivers/vfio/pci/vfio_pci_core.c:2345 vfio_pci_core_unregister_device+0x4f/0x60",
        "BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP",
        "general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b6b",
        "Kernel panic - not syncing: Fatal exception",
        "WARNING: possible circular locking dependency detected",
        "WARNING: possible recursive locking detected",
        "WARNING: inconsistent lock state",
        "WARNING: suspicious RCU usage",
        "INFO: lockdep is turned off.",
        "UBSAN: array-index-out-of-bounds in drivers/cxl/core/regs.c:42:7",
        "KASAN: slab-use-after-free in cxl_vfio_remove+0x10/0x20",
        "refcount_t: underflow; use-after-free.",
        "list_add corruption. prev->next should be next (ffff888003a8c010), but was 0000000000000000.",
        "list_del corruption, ffff888003a8c010->next is LIST_POISON1 (dead000000000100)",
        "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:585",
        "sleeping function called from invalid context at mm/slab.h:123",
        "lockdep:check_noncircular bad path found in chain graph",
        // The sanitizer kernel's reports (configs/cxl-vfio-sanitize.config).
        "BUG: KASAN: slab-out-of-bounds in _RNvMs_NtCs1_12cxl_vfio_pci3bar+0x2c/0x60 [cxl_vfio_pci]",
        "BUG: KASAN: vmalloc-out-of-bounds in vfio_pci_core_read+0x1a/0x40",
        "UBSAN: shift-out-of-bounds in drivers/vfio/pci/vfio_pci_config.c:1234:20",
        "UBSAN: invalid-load in drivers/pci/pci.c:100:9",
        "kmemleak: Memory pool empty, consider increasing CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE",
        "kmemleak: Cannot allocate a kmemleak_object structure",
        "kmemleak: Kernel memory leak detector disabled",
        "BUG: unable to handle page fault for address: ffff888005a00000",
    ];

    const GOOD: &[&str] = &[
        "Linux version 6.12.57 (root@host) (clang version 19) #1 SMP PREEMPT_DYNAMIC",
        "Kernel command line: console=ttyS0 panic=-1 oops=panic panic_on_warn=0",
        "rcu: \tRCU lockdep checking is enabled.",
        "Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar",
        "... MAX_LOCKDEP_SUBCLASSES:  8",
        "VFIO - User Level meta-driver version: 0.3",
        "vfio-pci 0000:0d:00.0: vfio-noiommu device opened by user (cxlvfio-smoke:123)",
        "cxl_vfio_pci 0000:0d:00.0: Adding kernel taint for vfio-noiommu group on device",
        "pci 0000:0d:00.0: [8086:0d93] type 00 class 0x050210 PCIe Endpoint",
        "warning: something lower-case is not a kernel WARNING splat",
        "oops in lower case",
        // The sanitizer kernel's banners, and kmemleak's count of suspects: the suspects
        // themselves are judged from the report (see `kmemleak`), where their backtraces are.
        "kasan: KernelAddressSanitizer initialized",
        "kmemleak: Kernel memory leak detector initialized (mem pool available: 38511)",
        "kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
        "",
    ];

    #[test]
    fn problem_lines_match() {
        for line in BAD {
            assert!(is_problem_line(line), "not matched: {line}");
        }
    }

    #[test]
    fn normal_lines_do_not_match() {
        for line in GOOD {
            assert!(!is_problem_line(line), "matched: {line}");
        }
    }

    #[test]
    fn every_pattern_is_exercised() {
        for p in PROBLEM_PATTERNS {
            assert!(
                BAD.iter().any(|l| l.contains(p)),
                "no sample line for {p:?}"
            );
        }
    }

    #[test]
    fn find_problems_keeps_order_and_filters() {
        let log: Vec<&str> = GOOD.iter().chain(BAD.iter()).copied().collect();
        let found = find_problems(log.iter().copied());
        assert_eq!(found.len(), BAD.len());
        assert_eq!(found[0], BAD[0]);
        assert_eq!(found.last().unwrap(), BAD.last().unwrap());
        assert!(find_problems(GOOD.iter().copied()).is_empty());
    }

    #[test]
    fn kmsg_record_parsing() {
        assert_eq!(
            parse_kmsg_record("4,1234,5678901,-;WARNING: CPU: 0 PID: 1 at x\n"),
            Some("WARNING: CPU: 0 PID: 1 at x")
        );
        assert_eq!(
            parse_kmsg_record("6,339,5140900,-,caller=T1;pci 0000:0d:00.0: BAR 0\n SUBSYSTEM=pci\n DEVICE=+pci:0000:0d:00.0\n"),
            Some("pci 0000:0d:00.0: BAR 0")
        );
        // Semicolons in the message stay.
        assert_eq!(parse_kmsg_record("6,1,2,-;a;b"), Some("a;b"));
        assert_eq!(parse_kmsg_record("no prefix here"), None);
        assert_eq!(parse_kmsg_record("x,1,2,-;text"), None);
        assert_eq!(parse_kmsg_record(""), None);
    }

    #[test]
    fn kmsg_full_record_parsing() {
        assert_eq!(
            parse_kmsg_full("3,4711,5678901,-,caller=T9;cxl-vfio-pci 0000:0d:00.0: DPA range busy\n SUBSYSTEM=pci\n"),
            Some(KmsgRecord {
                level: LOG_ERR,
                seq: 4711,
                text: "cxl-vfio-pci 0000:0d:00.0: DPA range busy".to_string()
            })
        );
        // Facility bits (here 1, user) do not leak into the level.
        let r = parse_kmsg_full("14,1,2,-;hello").unwrap();
        assert_eq!((r.level, r.seq), (6, 1));
        assert_eq!(parse_kmsg_full("x,1,2,-;text"), None);
        assert_eq!(parse_kmsg_full("6,y,2,-;text"), None);
        assert_eq!(parse_kmsg_full("6,1;text"), None);
    }
}
