//! Command-line parsing shared by the in-VM test binaries.

use crate::pci;

/// One command-line option, `--key value` or `--key=value`.
pub struct Opt<'a, 'b> {
    /// The option, without an inline value.
    pub key: &'a str,
    /// The value given inline with `=`, if any.
    pub inline: Option<&'a str>,
    rest: &'b mut std::slice::Iter<'a, String>,
}

impl Opt<'_, '_> {
    /// The option's value: the inline one, else the next argument.
    pub fn value(&mut self) -> Result<String, String> {
        match self.inline {
            Some(v) => Ok(v.to_string()),
            None => self
                .rest
                .next()
                .cloned()
                .ok_or_else(|| format!("{} needs a value", self.key)),
        }
    }
}

/// The device a test binary drives and the ids it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceArgs {
    /// Normalized `DDDD:BB:DD.F`.
    pub bdf: String,
    /// Expected vendor ID.
    pub vendor: u16,
    /// Expected device ID.
    pub device: u16,
}

/// Parses `--device <BDF>` (default `env_bdf`), `--expect-ids VVVV:DDDD` (default
/// `default_ids`) and `-h`/`--help`. Every other option goes to `extra`, which returns
/// `Ok(false)` for one it does not know either. `Ok(None)` means help was requested.
pub fn parse_device_args(
    args: &[String],
    env_bdf: Option<String>,
    default_ids: (u16, u16),
    mut extra: impl FnMut(&mut Opt<'_, '_>) -> Result<bool, String>,
) -> Result<Option<DeviceArgs>, String> {
    let mut bdf = env_bdf.filter(|s| !s.is_empty());
    let mut ids = default_ids;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v)),
            _ => (arg.as_str(), None),
        };
        let mut opt = Opt {
            key,
            inline,
            rest: &mut rest,
        };
        match key {
            "-h" | "--help" => return Ok(None),
            "--device" => bdf = Some(opt.value()?),
            "--expect-ids" => {
                let v = opt.value()?;
                ids = pci::parse_ids(&v).ok_or_else(|| format!("bad --expect-ids {v:?}"))?;
            }
            _ => {
                if !extra(&mut opt)? {
                    return Err(format!("unknown argument {arg:?}"));
                }
            }
        }
    }
    let bdf = bdf.ok_or("no device: pass --device <BDF> or set CXL_BDF")?;
    let bdf = pci::normalize_bdf(&bdf).map_err(|e| e.to_string())?;
    Ok(Some(DeviceArgs {
        bdf,
        vendor: ids.0,
        device: ids.1,
    }))
}

/// The device of a program that takes `--device <BDF>` (default `$CXL_BDF`) and the options
/// `extra` knows, without checking its ids. On `--help` prints `usage` and returns
/// `Err(SUCCESS)`; on a bad argument prints it (prefixed `prog`) with `usage` and returns
/// `Err(2)`: the caller exits with that.
pub fn device_or_exit(
    prog: &str,
    usage: &str,
    args: &[String],
    extra: impl FnMut(&mut Opt<'_, '_>) -> Result<bool, String>,
) -> Result<String, std::process::ExitCode> {
    match parse_device_args(args, std::env::var("CXL_BDF").ok(), (0, 0), extra) {
        Ok(Some(dev)) => Ok(dev.bdf),
        Ok(None) => {
            println!("{usage}");
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{prog}: {e}\n{usage}");
            Err(std::process::ExitCode::from(2))
        }
    }
}
