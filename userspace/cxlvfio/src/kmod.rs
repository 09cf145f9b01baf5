//! Kernel module helpers: sysfs state, `modinfo` output, `rmmod`.

use std::io;
use std::path::PathBuf;
use std::process::Command;

use crate::error::{other, ResultExt};

/// The name the kernel uses for a module in `/sys/module` (dashes become underscores).
pub fn sysfs_name(module: &str) -> String {
    module.replace('-', "_")
}

/// `/sys/module/<module>`.
pub fn module_dir(module: &str) -> PathBuf {
    PathBuf::from("/sys/module").join(sysfs_name(module))
}

/// Whether the module is loaded (or built in with parameters).
pub fn is_loaded(module: &str) -> bool {
    module_dir(module).exists()
}

/// `/sys/module/<module>/parameters/<param>`.
pub fn param_path(module: &str, param: &str) -> PathBuf {
    module_dir(module).join("parameters").join(param)
}

/// Names of the parameters listed in `modinfo` output (`parm:` lines, which
/// look like `parm:           disable_cxl:Disable the CXL ... (bool)`).
pub fn modinfo_params(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("parm:"))
        .filter_map(|rest| {
            let rest = rest.trim_start();
            let name = rest.split(':').next().unwrap_or("").trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// Output of a command, with its exit status turned into an error.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Exit status description (`exit status: 1`).
    pub status: String,
    /// Captured standard output.
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
}

/// Runs `program args...`, capturing its output. Fails only if it cannot be started.
pub fn run(program: &str, args: &[&str]) -> io::Result<CommandOutput> {
    let out = Command::new(program)
        .args(args)
        .output()
        .context(|| format!("run {program}"))?;
    Ok(CommandOutput {
        success: out.status.success(),
        status: out.status.to_string(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `modinfo <module>` and returns its output; an error if it exits non-zero.
pub fn modinfo(module: &str) -> io::Result<String> {
    let out = run("modinfo", &[module])?;
    if !out.success {
        return Err(other(
            io::ErrorKind::Other,
            format!("modinfo {module}: {}: {}", out.status, out.stderr.trim()),
        ));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(sysfs_name("cxl-vfio-pci"), "cxl_vfio_pci");
        assert_eq!(
            param_path("cxl-vfio-pci", "disable_cxl"),
            PathBuf::from("/sys/module/cxl_vfio_pci/parameters/disable_cxl")
        );
    }

    #[test]
    fn modinfo_parm_lines() {
        let text = "filename:       /lib/modules/6.12.0/extra/cxl_vfio_pci.ko\n\
                    description:    VFIO PCI variant driver for CXL devices (mentions disable_cxl)\n\
                    license:        GPL\n\
                    alias:          pci:v00008086d00000D93sv*sd*bc*sc*i*\n\
                    depends:        vfio-pci-core\n\
                    parm:           disable_cxl:Do not expose CXL (bool)\n\
                    parm:           other_param:int\n";
        assert_eq!(modinfo_params(text), vec!["disable_cxl", "other_param"]);
        // A name that only appears outside `parm:` lines does not count.
        let text = "description:    disable_cxl\nparm:           foo:bar\n";
        assert_eq!(modinfo_params(text), vec!["foo"]);
        assert!(modinfo_params("").is_empty());
    }
}
