//! `cxlvfio-smoke`: the in-VM smoke suite for `cxl-vfio-pci`, reported as KTAP.
//!
//! Runs as root in the guest after the harness has loaded the module, enabled
//! VFIO no-IOMMU mode (or given the guest an IOMMU) and bound the device through
//! `driver_override`. It drives the device only through the VFIO UAPI, opened in
//! the IOMMU mode `CXLVFIO_IOMMU` names (`noiommu`, `type1`, `iommufd`; unset or
//! `auto`: the no-IOMMU group if there is one, else type1), then unbinds it,
//! unloads the module and checks the kernel log for warnings.
//!
//! ```text
//! cxlvfio-smoke [--device <BDF>] [--expect-ids VVVV:DDDD] [--expect-bar0-size SIZE]
//! ```

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cxlvfio::cli;
use cxlvfio::error::raw_os_error;
use cxlvfio::iommu::{iommu_mode_from_env, IommuContext};
use cxlvfio::uapi::{
    device_flags_str, region_flags_str, VFIO_API_VERSION, VFIO_GROUP_FLAGS_CONTAINER_SET,
    VFIO_GROUP_FLAGS_VIABLE, VFIO_NOIOMMU_IOMMU, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_NUM_REGIONS,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE, VFIO_TYPE1V2_IOMMU,
};
use cxlvfio::vfio::group_path;
use cxlvfio::{
    kmod, kmsg, ktap::Ktap, open_device, pci, AttachedDevice, Container, Device, DeviceInfo, Group,
    IommuMode,
};

/// Module name as modprobe/modinfo know it.
const MODULE: &str = "cxl-vfio-pci";
/// Name of the PCI driver (the `driver` link target).
const DRIVER: &str = "cxl-vfio-pci";
/// The module parameter that must exist, read-only, default off.
const PARAM: &str = "disable_cxl";
/// BAR0 of QEMU's `cxl-type3` device: the 64 KiB component/device register block.
const EXPECTED_BAR0_SIZE: u64 = 0x10000;
/// QEMU `cxl-type3` PCI IDs.
const DEFAULT_IDS: (u16, u16) = (0x8086, 0x0d93);
/// The project's `cxl-accel` test device (qemu/patches): its PCI IDs and BAR0, the
/// component register block between accelerator register windows.
const ACCEL_IDS: (u16, u16) = (0x1b36, 0x00ca);
const ACCEL_BAR0_SIZE: u64 = 0x40000;

/// The BAR0 size of a test device known by its IDs, else the type-3's.
fn default_bar0_size(ids: (u16, u16)) -> u64 {
    if ids == ACCEL_IDS {
        ACCEL_BAR0_SIZE
    } else {
        EXPECTED_BAR0_SIZE
    }
}
/// At most this many kernel log problem lines are printed.
const MAX_LOG_LINES: usize = 40;
/// Sysfs writes and rmmod that block longer than this mean a hung driver.
const KERNEL_OP_TIMEOUT: Duration = Duration::from_secs(30);

const USAGE: &str = "usage: cxlvfio-smoke [--device <BDF>] [--expect-ids VVVV:DDDD] \
[--expect-disable-cxl Y|N] [--expect-bar0-size SIZE]\n\
\n\
Runs the cxl-vfio-pci smoke tests against <BDF> (default: $CXL_BDF) and prints\n\
KTAP. --expect-ids defaults to 8086:0d93, --expect-disable-cxl (the module\n\
parameter the harness loaded the driver with) to N, --expect-bar0-size to the\n\
BAR0 of the QEMU device with those ids (cxl-type3 0x10000, cxl-accel 1b36:00ca\n\
0x40000). Exit status 0 if every test passed.";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    bdf: String,
    vendor: u16,
    device: u16,
    /// The value of `disable_cxl` the module was loaded with.
    disable_cxl: bool,
    /// BAR0 size the device must have.
    bar0_size: u64,
}

/// `Ok(None)` means help was requested.
fn parse_args(args: &[String], env_bdf: Option<String>) -> Result<Option<Options>, String> {
    let mut disable_cxl = false;
    let mut bar0_size = None;
    let dev = cli::parse_device_args(args, env_bdf, DEFAULT_IDS, |opt| match opt.key {
        "--expect-bar0-size" => {
            let v = opt.value()?;
            bar0_size = Some(
                pci::parse_hex(&v)
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad --expect-bar0-size {v:?}: a hex size"))?,
            );
            Ok(true)
        }
        "--expect-disable-cxl" => {
            disable_cxl = match opt.value()?.as_str() {
                "Y" | "y" | "1" => true,
                "N" | "n" | "0" => false,
                v => return Err(format!("bad --expect-disable-cxl {v:?}: Y or N")),
            };
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(dev.map(|dev| Options {
        bar0_size: bar0_size.unwrap_or_else(|| default_bar0_size((dev.vendor, dev.device))),
        bdf: dev.bdf,
        vendor: dev.vendor,
        device: dev.device,
        disable_cxl,
    }))
}

/// State shared by the steps.
struct Ctx {
    opts: Options,
    vfio: Option<AttachedDevice>,
    info: Option<DeviceInfo>,
}

impl Ctx {
    fn device(&self) -> Result<&Device, String> {
        self.vfio
            .as_deref()
            .ok_or_else(|| "device is not open".to_string())
    }

    /// Closes every VFIO fd we hold. The kernel's unbind waits for all users
    /// of the device to go away, so this must run before unbinding.
    fn drop_vfio(&mut self) {
        self.vfio = None;
    }
}

type StepFn = fn(&mut Ctx, &mut Vec<String>) -> Result<(), String>;

/// One test: its KTAP name, the steps that must have passed, and the body.
/// Diagnostics pushed by the body are printed before the result line.
struct Step {
    name: &'static str,
    deps: &'static [&'static str],
    run: StepFn,
}

const STEPS: &[Step] = &[
    Step {
        name: "module_loaded",
        deps: &[],
        run: module_loaded,
    },
    Step {
        name: "modinfo_lists_disable_cxl",
        deps: &[],
        run: modinfo_lists_disable_cxl,
    },
    Step {
        name: "param_disable_cxl_readonly",
        deps: &["module_loaded"],
        run: param_disable_cxl_readonly,
    },
    Step {
        name: "probe_honours_disable_cxl",
        deps: &["module_loaded"],
        run: probe_honours_disable_cxl,
    },
    Step {
        name: "device_bound",
        deps: &[],
        run: device_bound,
    },
    Step {
        name: "vfio_open",
        deps: &["device_bound"],
        run: vfio_open,
    },
    Step {
        name: "device_info",
        deps: &["vfio_open"],
        run: device_info,
    },
    Step {
        name: "config_ids",
        deps: &["vfio_open"],
        run: config_ids,
    },
    Step {
        name: "bar0_size",
        deps: &["vfio_open"],
        run: bar0_size,
    },
    Step {
        name: "device_reset",
        deps: &["vfio_open", "device_info"],
        run: device_reset,
    },
    Step {
        name: "close",
        deps: &["vfio_open"],
        run: close,
    },
    Step {
        name: "unbind",
        deps: &["device_bound"],
        run: unbind,
    },
    Step {
        name: "rmmod",
        deps: &["module_loaded"],
        run: rmmod,
    },
    Step {
        name: "kernel_log_clean",
        deps: &[],
        run: kernel_log_clean,
    },
];

fn module_loaded(_: &mut Ctx, _: &mut Vec<String>) -> Result<(), String> {
    let dir = kmod::module_dir(MODULE);
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!("{} does not exist", dir.display()))
    }
}

fn modinfo_lists_disable_cxl(_: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let text = kmod::modinfo(MODULE).map_err(|e| e.to_string())?;
    let params = kmod::modinfo_params(&text);
    if params.iter().any(|p| p == PARAM) {
        Ok(())
    } else {
        diag.push(format!("modinfo {MODULE} parameters: {params:?}"));
        Err(format!("no parm: line names {PARAM}"))
    }
}

fn param_disable_cxl_readonly(ctx: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let path = kmod::param_path(MODULE, PARAM);
    let meta = fs::metadata(&path).map_err(|e| format!("stat {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    let value = fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    diag.push(format!(
        "{}: mode {mode:04o}, value {:?}",
        path.display(),
        value.trim()
    ));
    if mode != 0o444 {
        return Err(format!("mode is {mode:04o}, expected 0444"));
    }
    let want = if ctx.opts.disable_cxl { "Y" } else { "N" };
    if value.trim() != want {
        return Err(format!("value is {:?}, expected {want:?}", value.trim()));
    }
    Ok(())
}

/// The driver read the parameter at probe: with CXL enabled it found the CXL
/// Device DVSEC of the QEMU type-3 device (at 0x100); with `disable_cxl=1` it
/// never looked.
fn probe_honours_disable_cxl(ctx: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let log = kmsg::read_kernel_log().map_err(|e| format!("kernel log: {e}"))?;
    let prefix = format!("{DRIVER} {}: ", ctx.opts.bdf);
    let probe_lines: Vec<&String> = log.iter().filter(|l| l.contains(&prefix)).collect();
    for l in &probe_lines {
        diag.push(l.trim().to_string());
    }
    let found = |needle: &str| probe_lines.iter().any(|l| l.contains(needle));
    let (want, unwanted) = if ctx.opts.disable_cxl {
        ("CXL extensions disabled", "CXL Device DVSEC at")
    } else {
        ("CXL Device DVSEC at 0x100", "CXL extensions disabled")
    };
    if !found(want) {
        return Err(format!("no probe message {want:?}"));
    }
    if found(unwanted) {
        return Err(format!("unexpected probe message {unwanted:?}"));
    }
    Ok(())
}

fn device_bound(ctx: &mut Ctx, _: &mut Vec<String>) -> Result<(), String> {
    pci::check_exists(&ctx.opts.bdf).map_err(|e| e.to_string())?;
    match pci::driver_name(&ctx.opts.bdf).map_err(|e| e.to_string())? {
        Some(d) if d == DRIVER => Ok(()),
        Some(d) => Err(format!(
            "{} is bound to {d}, expected {DRIVER}",
            ctx.opts.bdf
        )),
        None => Err(format!("{} has no driver bound", ctx.opts.bdf)),
    }
}

fn vfio_open(ctx: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let requested = iommu_mode_from_env().map_err(|e| e.to_string())?;
    let open = open_device(&ctx.opts.bdf).map_err(|e| e.to_string())?;
    diag.push(format!(
        "{} ({})",
        open.describe(),
        match requested {
            Some(m) => format!("CXLVFIO_IOMMU={m}"),
            None => "auto".to_string(),
        }
    ));
    // Keep the fds even if a check below fails: later steps report on their own.
    let result = check_open(&ctx.opts.bdf, &open, requested, diag);
    ctx.vfio = Some(open);
    result
}

/// What must hold of a device opened in each mode: the mode asked for, and
/// the container, group or cdev and iommufd ids that mode implies.
fn check_open(
    bdf: &str,
    open: &AttachedDevice,
    requested: Option<IommuMode>,
    diag: &mut Vec<String>,
) -> Result<(), String> {
    let want = match requested {
        Some(mode) => mode,
        // Auto: the no-IOMMU group if its node exists, else type1.
        None => IommuMode::auto_for_group(pci::iommu_group(bdf).map_err(|e| e.to_string())?),
    };
    if open.mode() != want {
        return Err(format!(
            "opened in {} mode, expected {want} ({})",
            open.mode(),
            if requested.is_some() {
                "CXLVFIO_IOMMU"
            } else {
                "auto"
            }
        ));
    }
    match open.context() {
        IommuContext::Container { group, container } => {
            check_container(open.mode(), group, container, diag)
        }
        IommuContext::Iommufd {
            ioas_id,
            devid,
            cdev,
            ..
        } => check_cdev(bdf, open, *ioas_id, *devid, cdev, diag),
    }
}

/// A legacy open: the API version, the group node of the mode (`noiommu-N`
/// or `N`), the container's extension for the mode's IOMMU type, and a viable
/// group attached to the container.
fn check_container(
    mode: IommuMode,
    group: &Group,
    container: &Container,
    diag: &mut Vec<String>,
) -> Result<(), String> {
    let version = container.api_version().map_err(|e| e.to_string())?;
    if version != VFIO_API_VERSION {
        return Err(format!(
            "API version {version}, expected {VFIO_API_VERSION}"
        ));
    }
    let (want_noiommu, iommu_type, type_name) = match mode {
        IommuMode::NoIommu => (true, VFIO_NOIOMMU_IOMMU, "VFIO_NOIOMMU_IOMMU"),
        IommuMode::Type1 => (false, VFIO_TYPE1V2_IOMMU, "VFIO_TYPE1v2_IOMMU"),
        IommuMode::Iommufd => return Err("iommufd mode with a container and group".to_string()),
    };
    if group.is_noiommu() != want_noiommu
        || group.path() != group_path(group.number(), want_noiommu)
    {
        return Err(if want_noiommu {
            format!(
                "{} is not a no-IOMMU group (is enable_unsafe_noiommu_mode set?)",
                group.path().display()
            )
        } else {
            format!("{} is not an IOMMU group node", group.path().display())
        });
    }
    if !container
        .check_extension(iommu_type)
        .map_err(|e| e.to_string())?
    {
        return Err(format!("container lacks the {type_name} extension"));
    }
    let status = group.status().map_err(|e| e.to_string())?;
    diag.push(format!("group status flags {status:#x}"));
    if status & VFIO_GROUP_FLAGS_VIABLE == 0 {
        return Err("group is not viable".to_string());
    }
    if status & VFIO_GROUP_FLAGS_CONTAINER_SET == 0 {
        return Err("group status lacks CONTAINER_SET after VFIO_GROUP_SET_CONTAINER".to_string());
    }
    Ok(())
}

/// An iommufd open: the device fd is the cdev sysfs names for the device (same
/// path, same device number), and the bind and the IOAS gave two distinct,
/// nonzero object ids (iommufd numbers its objects from 1).
fn check_cdev(
    bdf: &str,
    open: &AttachedDevice,
    ioas_id: u32,
    devid: u32,
    cdev: &std::path::Path,
    diag: &mut Vec<String>,
) -> Result<(), String> {
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    let sysfs = pci::vfio_cdev(bdf).map_err(|e| e.to_string())?;
    if cdev != sysfs.path {
        return Err(format!(
            "opened {}, sysfs names {}",
            cdev.display(),
            sysfs.path.display()
        ));
    }
    let fd_link = format!("/proc/self/fd/{}", open.as_fd().as_raw_fd());
    let target = fs::read_link(&fd_link).map_err(|e| format!("readlink {fd_link}: {e}"))?;
    if target != cdev {
        return Err(format!(
            "the device fd is {}, expected {}",
            target.display(),
            cdev.display()
        ));
    }
    let meta = fs::metadata(cdev).map_err(|e| format!("stat {}: {e}", cdev.display()))?;
    let rdev = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    diag.push(format!(
        "{}: char device {}:{}, sysfs dev {:?}",
        cdev.display(),
        rdev.0,
        rdev.1,
        sysfs.devnum
    ));
    if !meta.file_type().is_char_device() {
        return Err(format!("{} is not a character device", cdev.display()));
    }
    if sysfs.devnum != Some(rdev) {
        return Err(format!(
            "{} is {}:{}, sysfs {}/dev says {:?}",
            cdev.display(),
            rdev.0,
            rdev.1,
            sysfs.name,
            sysfs.devnum
        ));
    }
    if devid == 0 {
        return Err("VFIO_DEVICE_BIND_IOMMUFD returned devid 0".to_string());
    }
    if ioas_id == 0 || ioas_id == devid {
        return Err(format!(
            "IOMMU_IOAS_ALLOC returned id {ioas_id} (devid {devid}): expected a distinct nonzero id"
        ));
    }
    Ok(())
}

fn device_info(ctx: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let info = ctx.device()?.info().map_err(|e| e.to_string())?;
    diag.push(format!(
        "flags {:#x} [{}], num_regions {}, num_irqs {}",
        info.flags,
        device_flags_str(info.flags),
        info.num_regions,
        info.num_irqs
    ));
    let result = if !info.is_pci() {
        Err("VFIO_DEVICE_FLAGS_PCI not set".to_string())
    } else if info.num_regions < VFIO_PCI_NUM_REGIONS {
        Err(format!(
            "num_regions {} < {VFIO_PCI_NUM_REGIONS}",
            info.num_regions
        ))
    } else {
        Ok(())
    };
    ctx.info = Some(info);
    result
}

fn config_ids(ctx: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let dev = ctx.device()?;
    let vendor = dev.config_read16(0).map_err(|e| e.to_string())?;
    let device = dev.config_read16(2).map_err(|e| e.to_string())?;
    let bdf = &ctx.opts.bdf;
    let s_vendor = pci::read_hex_attr(bdf, "vendor").map_err(|e| e.to_string())?;
    let s_device = pci::read_hex_attr(bdf, "device").map_err(|e| e.to_string())?;
    let (want_v, want_d) = (ctx.opts.vendor, ctx.opts.device);
    diag.push(format!(
        "vfio {vendor:04x}:{device:04x}, sysfs {s_vendor:04x}:{s_device:04x}, expected {want_v:04x}:{want_d:04x}"
    ));
    if u64::from(vendor) != s_vendor || u64::from(device) != s_device {
        return Err("VFIO config space and sysfs disagree".to_string());
    }
    if vendor != want_v || device != want_d {
        return Err(format!(
            "ids {vendor:04x}:{device:04x}, expected {want_v:04x}:{want_d:04x}"
        ));
    }
    Ok(())
}

fn bar0_size(ctx: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let region = ctx
        .device()?
        .region_info(VFIO_PCI_BAR0_REGION_INDEX)
        .map_err(|e| e.to_string())?;
    let res = pci::resource(&ctx.opts.bdf, 0).map_err(|e| e.to_string())?;
    diag.push(format!(
        "BAR0: vfio size {:#x} flags [{}], sysfs {:#x}-{:#x} size {:#x}",
        region.size,
        region_flags_str(region.flags),
        res.start,
        res.end,
        res.size()
    ));
    let want = ctx.opts.bar0_size;
    if region.size != want {
        return Err(format!("size {:#x}, expected {want:#x}", region.size));
    }
    if !region.has_flags(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE) {
        return Err(format!(
            "flags [{}] lack READ|WRITE",
            region_flags_str(region.flags)
        ));
    }
    if res.size() != region.size {
        return Err(format!(
            "sysfs resource size {:#x} != VFIO size {:#x}",
            res.size(),
            region.size
        ));
    }
    Ok(())
}

fn device_reset(ctx: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let supports = ctx
        .info
        .as_ref()
        .map(DeviceInfo::supports_reset)
        .ok_or("no device info")?;
    let method = pci::reset_method(&ctx.opts.bdf).map_err(|e| e.to_string())?;
    diag.push(format!(
        "reset_method: {}; VFIO_DEVICE_FLAGS_RESET: {}",
        method.as_deref().unwrap_or("(attribute absent)"),
        if supports { "set" } else { "clear" }
    ));
    let dev = ctx.device()?;
    let result = dev.reset();
    diag.push(match &result {
        Ok(()) => "VFIO_DEVICE_RESET: ok".to_string(),
        Err(e) => format!("VFIO_DEVICE_RESET: {e}"),
    });
    // Same contract as vfio-pci: the ioctl works iff the flag says so, and
    // otherwise fails with exactly EINVAL.
    match (supports, &result) {
        (true, Err(e)) => return Err(format!("reset advertised but failed: {e}")),
        (false, Ok(())) => return Err("reset not advertised but succeeded".to_string()),
        (false, Err(e)) if raw_os_error(e) != Some(libc::EINVAL) => {
            return Err(format!("reset not advertised, expected EINVAL, got: {e}"))
        }
        _ => {}
    }
    let vendor = dev.config_read16(0).map_err(|e| e.to_string())?;
    diag.push(format!("vendor after reset: {vendor:#06x}"));
    if vendor != ctx.opts.vendor {
        return Err(format!(
            "vendor {vendor:#06x} after reset, expected {:#06x}",
            ctx.opts.vendor
        ));
    }
    Ok(())
}

fn close(ctx: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    ctx.info = None;
    let fds = ctx.vfio.take().ok_or("device is not open")?;
    fds.close().map_err(|e| format!("first close: {e}"))?;
    // A second open shows the release path left the device usable.
    let again = open_device(&ctx.opts.bdf).map_err(|e| format!("second open: {e}"))?;
    let vendor = again.config_read16(0);
    let closed = again.close().map_err(|e| format!("second close: {e}"));
    let vendor = vendor.map_err(|e| format!("second open: {e}"))?;
    diag.push(format!("second open: vendor {vendor:#06x}"));
    closed?;
    if vendor != ctx.opts.vendor {
        return Err(format!("second open read vendor {vendor:#06x}"));
    }
    Ok(())
}

/// Runs `f` on a helper thread and gives up waiting after `timeout`, so a
/// driver that hangs in unbind or module removal fails the test instead of
/// the whole run. A thread stuck in the kernel is left behind.
fn with_timeout<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(timeout).ok()
}

/// Polls `cond` for up to two seconds: sysfs removal can lag a moment behind.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > Duration::from_secs(2) {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn unbind(ctx: &mut Ctx, _: &mut Vec<String>) -> Result<(), String> {
    ctx.drop_vfio();
    let bdf = ctx.opts.bdf.clone();
    let writer = bdf.clone();
    with_timeout(KERNEL_OP_TIMEOUT, move || pci::unbind(&writer))
        .ok_or_else(|| format!("unbind did not return within {KERNEL_OP_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let link = pci::device_dir(&bdf).join("driver");
    if eventually(|| matches!(pci::driver_name(&bdf), Ok(None))) {
        Ok(())
    } else {
        Err(format!("{} still exists after unbind", link.display()))
    }
}

fn rmmod(_: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let name = kmod::sysfs_name(MODULE);
    let arg = name.clone();
    let out = with_timeout(KERNEL_OP_TIMEOUT, move || kmod::run("rmmod", &[&arg]))
        .ok_or_else(|| format!("rmmod did not return within {KERNEL_OP_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        diag.push(format!("rmmod: {line}"));
    }
    if !out.success {
        return Err(format!("rmmod {name}: {}", out.status));
    }
    let dir = kmod::module_dir(MODULE);
    if eventually(|| !dir.exists()) {
        Ok(())
    } else {
        Err(format!("{} still exists after rmmod", dir.display()))
    }
}

fn kernel_log_clean(_: &mut Ctx, diag: &mut Vec<String>) -> Result<(), String> {
    let problems = kmsg::kernel_log_problems().map_err(|e| e.to_string())?;
    if problems.is_empty() {
        return Ok(());
    }
    for line in problems.iter().take(MAX_LOG_LINES) {
        diag.push(line.clone());
    }
    if problems.len() > MAX_LOG_LINES {
        diag.push(format!(
            "... {} more problem lines",
            problems.len() - MAX_LOG_LINES
        ));
    }
    Err(format!(
        "{} problem lines in the kernel log",
        problems.len()
    ))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs every step in order and returns whether all passed.
fn run_suite(opts: Options) -> bool {
    let mut ktap = Ktap::stdout(STEPS.len());
    ktap.diag(&format!("cxlvfio-smoke: device {}", opts.bdf));
    let mut ctx = Ctx {
        opts,
        vfio: None,
        info: None,
    };
    let mut passed: HashSet<&str> = HashSet::new();
    for step in STEPS {
        if let Some(dep) = step.deps.iter().find(|d| !passed.contains(*d)) {
            ktap.not_ok(step.name, &format!("depends on {dep}"));
            continue;
        }
        let mut diag = Vec::new();
        // A bug in one step must not stop the steps that clean up after it.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (step.run)(&mut ctx, &mut diag)));
        for d in &diag {
            ktap.diag(&format!("{}: {d}", step.name));
        }
        match outcome {
            Ok(Ok(())) => {
                passed.insert(step.name);
                ktap.ok(step.name);
            }
            Ok(Err(reason)) => ktap.not_ok(step.name, &reason),
            Err(payload) => ktap.not_ok(
                step.name,
                &format!("panicked: {}", panic_message(payload.as_ref())),
            ),
        }
    }
    ctx.drop_vfio();
    let ok = ktap.all_passed();
    ktap.finish();
    ok
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args, std::env::var("CXL_BDF").ok()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cxlvfio-smoke: error: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let ok = run_suite(opts);
    // Exit without joining a helper thread that may be stuck in the kernel.
    std::process::exit(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxlvfio::pci::parse_ids;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn ids_parsing() {
        assert_eq!(parse_ids("8086:0d93"), Some((0x8086, 0x0d93)));
        assert_eq!(parse_ids("0x1af4:0x1000"), Some((0x1af4, 0x1000)));
        assert_eq!(parse_ids("8086"), None);
        assert_eq!(parse_ids("18086:0d93"), None);
        assert_eq!(parse_ids(":0d93"), None);
        assert_eq!(parse_ids("8086:xyz"), None);
    }

    #[test]
    fn args_parsing() {
        let o = parse_args(&s(&["--device", "0d:00.0"]), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            o,
            Options {
                bdf: "0000:0d:00.0".into(),
                vendor: 0x8086,
                device: 0x0d93,
                disable_cxl: false,
                bar0_size: 0x10000,
            }
        );
        // The accelerator's BAR0 goes with its ids; an explicit size wins.
        let o = parse_args(&s(&["--expect-ids", "1b36:00ca"]), Some("15:00.0".into()))
            .unwrap()
            .unwrap();
        assert_eq!(o.bar0_size, 0x40000);
        let o = parse_args(
            &s(&["--expect-bar0-size=0x20000", "--expect-ids", "1b36:00ca"]),
            Some("15:00.0".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.bar0_size, 0x20000);
        for bad in ["0", "zero", ""] {
            assert!(
                parse_args(&s(&["--expect-bar0-size", bad]), Some("15:00.0".into())).is_err(),
                "{bad:?}"
            );
        }
        let o = parse_args(&s(&["--device=0d:00.0", "--expect-disable-cxl", "Y"]), None)
            .unwrap()
            .unwrap();
        assert!(o.disable_cxl);
        assert!(parse_args(
            &s(&["--device=0d:00.0", "--expect-disable-cxl=maybe"]),
            None
        )
        .is_err());
        let o = parse_args(&s(&["--expect-ids=1b36:0010"]), Some("0000:0e:00.0".into()))
            .unwrap()
            .unwrap();
        assert_eq!(o.bdf, "0000:0e:00.0");
        assert_eq!((o.vendor, o.device), (0x1b36, 0x0010));
        // --device overrides the environment.
        let o = parse_args(&s(&["--device=0000:0f:00.0"]), Some("0000:0e:00.0".into()))
            .unwrap()
            .unwrap();
        assert_eq!(o.bdf, "0000:0f:00.0");
        assert_eq!(parse_args(&s(&["--help"]), None).unwrap(), None);
        assert!(parse_args(&[], None).is_err());
        assert!(parse_args(&[], Some(String::new())).is_err());
        assert!(parse_args(&s(&["--device"]), None).is_err());
        assert!(parse_args(&s(&["--device", "junk"]), None).is_err());
        assert!(parse_args(&s(&["--expect-ids", "nope", "--device", "0d:00.0"]), None).is_err());
        assert!(parse_args(&s(&["extra"]), Some("0d:00.0".into())).is_err());
    }

    #[test]
    fn steps_are_the_specified_sequence() {
        let names: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            vec![
                "module_loaded",
                "modinfo_lists_disable_cxl",
                "param_disable_cxl_readonly",
                "probe_honours_disable_cxl",
                "device_bound",
                "vfio_open",
                "device_info",
                "config_ids",
                "bar0_size",
                "device_reset",
                "close",
                "unbind",
                "rmmod",
                "kernel_log_clean",
            ]
        );
    }

    #[test]
    fn deps_point_backwards() {
        for (i, step) in STEPS.iter().enumerate() {
            for dep in step.deps {
                let pos = STEPS.iter().position(|s| s.name == *dep);
                assert!(
                    pos.is_some_and(|p| p < i),
                    "{} depends on {dep}, which does not run before it",
                    step.name
                );
            }
        }
    }

    #[test]
    fn timeout_helper() {
        assert_eq!(with_timeout(Duration::from_secs(5), || 7), Some(7));
        assert_eq!(
            with_timeout(Duration::from_millis(20), || thread::sleep(
                Duration::from_secs(2)
            )),
            None
        );
    }

    #[test]
    fn panic_messages() {
        let p = panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "boom 1");
    }
}
