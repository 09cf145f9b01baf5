//! Reads a kmemleak report (`cat /sys/kernel/debug/kmemleak` on the sanitizer
//! kernel, saved by the test VM after its command) and tells the leaks whose
//! allocation backtrace passes through our code from the others.

/// Module names our code runs under (the `[module]` after a symbol in a backtrace).
pub const OUR_MODULES: &[&str] = &["cxl_vfio_pci", "cxl_vfio_claim_test"];

/// The modules of the Rust `kernel` crate that this project adds (`rust/kernel/`):
/// their symbols carry `6kernel<len><name>` (v0 and legacy mangling), their
/// doctests are `rust_doctest_kernel_<name>_rs_N`.
pub const OUR_KERNEL_CRATE_MODULES: &[&str] = &[
    "acpi",
    "delay",
    "dev_printk",
    "io",
    "mm",
    "module_param",
    "pci",
    "vfio",
];

/// One unreferenced object of a kmemleak report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// `unreferenced object 0x... (size N):`
    pub header: String,
    /// `comm "...", pid N, jiffies N`, if present.
    pub comm: Option<String>,
    /// The allocation backtrace, one frame a line (`[<addr>] symbol+off/len [module]`),
    /// without the address.
    pub backtrace: Vec<String>,
}

/// Whether one backtrace frame is in our code: the driver's modules, or the
/// Rust abstractions this project adds (and their doctests).
pub fn is_our_frame(frame: &str) -> bool {
    // A module's symbols are annotated `[module]`; its Rust symbols also carry its crate name.
    OUR_MODULES.iter().any(|m| frame.contains(m))
        || OUR_KERNEL_CRATE_MODULES.iter().any(|m| {
            frame.contains(&format!("6kernel{}{m}", m.len()))
                || frame.contains(&format!("rust_doctest_kernel_{m}_"))
        })
}

impl Leak {
    /// Whether the allocation passed through our code.
    pub fn is_ours(&self) -> bool {
        self.backtrace.iter().any(|f| is_our_frame(f))
    }

    /// The first frame that is not kmemleak's or the allocator's own: where the
    /// object was allocated, for a one-line summary.
    pub fn allocation_site(&self) -> &str {
        const ALLOCATOR: &[&str] = &[
            "kmemleak_",
            "kmalloc",
            "kzalloc",
            "kcalloc",
            "krealloc",
            "kmem_cache_alloc",
            "__kmem_cache",
            "slab_post_alloc_hook",
            "__alloc",
            "alloc_pages",
            "vmalloc",
            "__vmalloc",
            "kvmalloc",
            "kstrdup",
            "kmemdup",
            "pcpu_alloc",
            "__do_kmalloc",
            "_noprof",
        ];
        self.backtrace
            .iter()
            .map(String::as_str)
            .find(|f| !ALLOCATOR.iter().any(|a| f.contains(a)))
            .or_else(|| self.backtrace.first().map(String::as_str))
            .unwrap_or("(no backtrace)")
    }
}

/// Strips the `[<ffffffff81234567>] ` address of a backtrace frame.
fn frame_text(line: &str) -> &str {
    let t = line.trim();
    match t.strip_prefix("[<").and_then(|r| r.split_once(">]")) {
        Some((_, rest)) => rest.trim(),
        None => t,
    }
}

/// The unreferenced objects of a kmemleak report, in order.
pub fn parse_report(text: &str) -> Vec<Leak> {
    let mut leaks = Vec::new();
    let mut cur: Option<Leak> = None;
    let mut in_backtrace = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("unreferenced object ") {
            leaks.extend(cur.take());
            cur = Some(Leak {
                header: t.to_string(),
                comm: None,
                backtrace: Vec::new(),
            });
            in_backtrace = false;
            continue;
        }
        let Some(leak) = cur.as_mut() else { continue };
        if t.starts_with("comm ") {
            leak.comm = Some(t.to_string());
        } else if t.starts_with("backtrace") {
            in_backtrace = true;
        } else if t.starts_with("hex dump") {
            in_backtrace = false;
        } else if in_backtrace && !t.is_empty() {
            leak.backtrace.push(frame_text(t).to_string());
        }
    }
    leaks.extend(cur);
    leaks
}

#[cfg(test)]
mod tests {
    use super::*;

    // Frames as 6.12 prints them (`%pS`), and with the `[<address>]` older kernels add.
    const REPORT: &str = "\
unreferenced object 0xffff888004a1c000 (size 64):
  comm \"swapper/0\", pid 1, jiffies 4294667296
  hex dump (first 32 bytes):
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace (crc 0):
    [<ffffffff8133a6b5>] kmemleak_alloc+0x4b/0x80
    [<ffffffff81310d7a>] __kmalloc_cache_noprof+0x1aa/0x2c0
    [<ffffffff81a0b1c2>] acpi_os_map_iomem+0x92/0x1f0
    [<ffffffff81000abc>] do_one_initcall+0x5c/0x2a0
unreferenced object 0xffff888006b2d800 (size 128):
  comm \"modprobe\", pid 212, jiffies 4294670001
  hex dump (first 32 bytes):
    01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace (crc 9a1b2c3d):
    kmemleak_alloc+0x4b/0x80
    __kmalloc_noprof+0x1aa/0x2c0
    _RNvMNtCs1a2b3c_12cxl_vfio_pci3dpaNtB2_3Dpa3new+0x90/0x200 [cxl_vfio_pci]
    cxl_vfio_probe+0x34/0x100 [cxl_vfio_pci]
unreferenced object 0xffff888006b2e000 (size 32):
  comm \"cxlvfio-smoke\", pid 300, jiffies 4294680001
  backtrace (crc 1):
    [<ffffffff8133a6b5>] kmemleak_alloc+0x4b/0x80
    [<ffffffff81310d7a>] __kmalloc_noprof+0x1aa/0x2c0
    [<ffffffff81912345>] _RNvMs_NtCsk3rN3l_6kernel4vfioNtB4_6Device4open+0x55/0x120
    [<ffffffff81913000>] vfio_df_open+0x40/0x90
";

    #[test]
    fn report_parsed_into_objects() {
        let leaks = parse_report(REPORT);
        assert_eq!(leaks.len(), 3);
        assert_eq!(
            leaks[0].header,
            "unreferenced object 0xffff888004a1c000 (size 64):"
        );
        assert_eq!(
            leaks[0].comm.as_deref(),
            Some("comm \"swapper/0\", pid 1, jiffies 4294667296")
        );
        assert_eq!(leaks[0].backtrace.len(), 4);
        assert_eq!(leaks[0].backtrace[0], "kmemleak_alloc+0x4b/0x80");
        // The hex dump is not part of the backtrace.
        assert!(leaks
            .iter()
            .all(|l| l.backtrace.iter().all(|f| !f.contains("...."))));
        assert_eq!(leaks[2].backtrace.len(), 4);
    }

    #[test]
    fn ours_and_elsewhere() {
        let leaks = parse_report(REPORT);
        assert!(!leaks[0].is_ours());
        assert!(leaks[1].is_ours());
        assert!(leaks[2].is_ours(), "our kernel::vfio abstraction");
    }

    #[test]
    fn allocation_site_skips_the_allocator() {
        let leaks = parse_report(REPORT);
        assert_eq!(leaks[0].allocation_site(), "acpi_os_map_iomem+0x92/0x1f0");
        assert!(leaks[1].allocation_site().contains("12cxl_vfio_pci3dpa"));
    }

    #[test]
    fn our_frames() {
        for f in [
            "cxl_vfio_probe+0x34/0x100 [cxl_vfio_pci]",
            "init_module+0x10/0x20 [cxl_vfio_claim_test]",
            "_RNvNtCsabc_6kernel3pci11probe_callback+0x1/0x2",
            "_RNvNtNtCsabc_6kernel2mm4virt8vm_insert+0x1/0x2",
            "_RNvNtCsabc_6kernel12module_param3set+0x1/0x2",
            "_RNvNtCsabc_6kernel4acpi4cedt+0x1/0x2",
            "_RNvCsabc_25doctests_kernel_generated30rust_doctest_kernel_pci_rs_0+0x1/0x2",
            "_ZN6kernel2io3mem5IoMem3new17h0123456789abcdefE+0x1/0x2",
        ] {
            assert!(is_our_frame(f), "not ours: {f}");
        }
        for f in [
            "kmemleak_alloc+0x4b/0x80",
            "vfio_pci_core_register_device+0x40/0x90",
            "_RNvNtNtCsabc_6kernel5alloc4kbox3new+0x1/0x2",
            "_RNvNtCsabc_6kernel4sync4lock+0x1/0x2",
            "_RNvCsabc_25doctests_kernel_generated30rust_doctest_kernel_str_rs_3+0x1/0x2",
            "cxl_pci_probe+0x10/0x200 [cxl_pci]",
            "pcie_portdrv_probe+0x10/0x20",
        ] {
            assert!(!is_our_frame(f), "ours: {f}");
        }
    }

    #[test]
    fn empty_report() {
        assert!(parse_report("").is_empty());
        assert!(parse_report("\n\n").is_empty());
    }
}
