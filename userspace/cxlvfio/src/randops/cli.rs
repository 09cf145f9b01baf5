//! The fuzzer's command line, and the command line that replays a run.

use crate::pci;

/// Usage text of `cxlvfio-randops`.
pub const USAGE: &str = "\
usage: cxlvfio-randops [--device <BDF>]... [--also <BDF>]... [--seed N] [--ops N]
                       [--threads T] [--check-every K] [--dpa-chunks C] [--ring N]
                       [--max-seconds S] [--list-ops]

A seeded random-operation fuzzer for cxl-vfio-pci devices, run in the test VM as root with
the devices bound (default device: $CXL_BDF). Opens each device like a VMM (the IOMMU mode
$CXLVFIO_IOMMU names) and mixes, from several threads, every ioctl the project uses with
valid and corrupted arguments, region reads and writes of random sizes and offsets on every
region, mmaps, munmaps and faults, resets, config writes (PM, CXL DVSECs), the low-power
features and DMA mappings; checks invariants as it goes. Prints KTAP; exits 1 on a failure.

  --device, --also  a device to fuzz (repeatable; all run in one process)
  --seed N          the run's seed (default: from the clock); printed first as '# seed N'
  --ops N           operations per device (default 100000)
  --threads T       threads per run (default 4); each works on every device
  --check-every K   each thread checks the invariants after every K of its ops (default 2000)
  --dpa-chunks C    2 MiB DPA chunks each thread owns per device (default 1); the region
                    needs T*C+1 chunks
  --ring N          operations each thread remembers for a failure report (default 64)
  --max-seconds S   stop issuing operations after S seconds (the run still passes: the
                    ops done are reported); 0 = no limit (default)
  --list-ops        print the operation table and exit

Each thread draws from its own random stream, derived from (seed, thread index), so the
operations each thread issues depend only on the seed. With more than one thread the
interleaving of threads is the scheduler's, not the seed's: a failure may need several
tries to reproduce. --threads 1 replays a run exactly (the printed replay line keeps the
thread count; change it to 1 to chase a failure deterministically).";

/// The options of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Normalized addresses of the devices.
    pub devices: Vec<String>,
    /// The seed (from the clock when not given).
    pub seed: u64,
    /// Whether the seed came from the command line.
    pub seed_given: bool,
    /// Operations per device.
    pub ops: u64,
    /// Threads.
    pub threads: usize,
    /// Ops per thread between invariant checks.
    pub check_every: u64,
    /// DPA chunks each thread owns per device.
    pub dpa_chunks: usize,
    /// Ring entries per thread.
    pub ring: usize,
    /// Wall-clock limit in seconds (0: none).
    pub max_seconds: u64,
    /// Print the op table and exit.
    pub list_ops: bool,
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run with these options.
    Run(Options),
    /// Print the usage.
    Help,
}

fn number(key: &str, v: &str) -> Result<u64, String> {
    let t = v.trim();
    let parsed = match t.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("{key}: not a number: {v:?}"))
}

/// Parses the arguments (without the program name). `env_bdf` is `$CXL_BDF`, the device
/// when none is given; `clock_seed` the seed when `--seed` is absent.
pub fn parse(args: &[String], env_bdf: Option<String>, clock_seed: u64) -> Result<Parsed, String> {
    let mut o = Options {
        devices: Vec::new(),
        seed: clock_seed,
        seed_given: false,
        ops: 100_000,
        threads: 4,
        check_every: 2000,
        dpa_chunks: 1,
        ring: 64,
        max_seconds: 0,
        list_ops: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{key} needs a value")),
            }
        };
        match key {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--list-ops" => o.list_ops = true,
            "--device" | "--also" => {
                let v = value()?;
                let bdf = pci::normalize_bdf(&v).map_err(|e| format!("{key} {v}: {e}"))?;
                if !o.devices.contains(&bdf) {
                    o.devices.push(bdf);
                }
            }
            "--seed" => {
                o.seed = number(key, &value()?)?;
                o.seed_given = true;
            }
            "--ops" => o.ops = number(key, &value()?)?,
            "--threads" => o.threads = number(key, &value()?)? as usize,
            "--check-every" => o.check_every = number(key, &value()?)?,
            "--dpa-chunks" => o.dpa_chunks = number(key, &value()?)? as usize,
            "--ring" => o.ring = number(key, &value()?)? as usize,
            "--max-seconds" => o.max_seconds = number(key, &value()?)?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    if o.list_ops {
        return Ok(Parsed::Run(o));
    }
    if o.devices.is_empty() {
        let bdf = env_bdf
            .filter(|s| !s.is_empty())
            .ok_or("no device: pass --device <BDF> or set CXL_BDF")?;
        o.devices
            .push(pci::normalize_bdf(&bdf).map_err(|e| format!("CXL_BDF {bdf}: {e}"))?);
    }
    if !(1..=64).contains(&o.threads) {
        return Err(format!("--threads {}: 1 to 64", o.threads));
    }
    if o.check_every == 0 {
        return Err("--check-every 0: at least 1".into());
    }
    if o.dpa_chunks == 0 {
        return Err("--dpa-chunks 0: at least 1".into());
    }
    Ok(Parsed::Run(o))
}

/// The command line that replays `o` (same seed, same everything).
pub fn replay_line(o: &Options) -> String {
    let mut s = String::from("cxlvfio-randops");
    for (i, d) in o.devices.iter().enumerate() {
        s.push_str(if i == 0 { " --device " } else { " --also " });
        s.push_str(d);
    }
    s.push_str(&format!(
        " --seed {} --ops {} --threads {} --check-every {} --dpa-chunks {} --ring {}",
        o.seed, o.ops, o.threads, o.check_every, o.dpa_chunks, o.ring
    ));
    if o.max_seconds != 0 {
        s.push_str(&format!(" --max-seconds {}", o.max_seconds));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn run(a: &[&str]) -> Options {
        match parse(&args(a), Some("0d:00.0".into()), 77).unwrap() {
            Parsed::Run(o) => o,
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults() {
        let o = run(&[]);
        assert_eq!(o.devices, vec!["0000:0d:00.0"]);
        assert_eq!(
            (o.seed, o.seed_given, o.ops, o.threads),
            (77, false, 100_000, 4)
        );
        assert_eq!(
            (o.check_every, o.dpa_chunks, o.ring, o.max_seconds),
            (2000, 1, 64, 0)
        );
    }

    #[test]
    fn options_and_replay() {
        let o = run(&[
            "--device",
            "0000:0d:00.0",
            "--also=15:00.0",
            "--seed",
            "0x10",
            "--ops=500",
            "--threads",
            "2",
            "--check-every",
            "50",
            "--dpa-chunks",
            "3",
            "--ring",
            "8",
            "--max-seconds",
            "120",
        ]);
        assert_eq!(o.devices, vec!["0000:0d:00.0", "0000:15:00.0"]);
        assert_eq!((o.seed, o.seed_given, o.ops, o.threads), (16, true, 500, 2));
        let line = replay_line(&o);
        assert_eq!(
            line,
            "cxlvfio-randops --device 0000:0d:00.0 --also 0000:15:00.0 --seed 16 --ops 500 \
             --threads 2 --check-every 50 --dpa-chunks 3 --ring 8 --max-seconds 120"
        );
        // The replay line parses back to the same options (the seed now given).
        let again: Vec<String> = line.split_whitespace().skip(1).map(String::from).collect();
        match parse(&again, None, 1).unwrap() {
            Parsed::Run(p) => assert_eq!(p, o),
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn errors_and_help() {
        assert_eq!(parse(&args(&["-h"]), None, 0).unwrap(), Parsed::Help);
        let err = |a: &[&str]| parse(&args(a), None, 0).unwrap_err();
        assert!(err(&[]).contains("no device"));
        assert!(err(&["--device", "0d:00.0", "--threads", "0"]).contains("--threads"));
        assert!(err(&["--device", "0d:00.0", "--check-every", "0"]).contains("check-every"));
        assert!(err(&["--device", "0d:00.0", "--ops", "x"]).contains("not a number"));
        assert!(err(&["--device", "0d:00.0", "--bogus"]).contains("unknown"));
        assert!(err(&["--device"]).contains("needs a value"));
        // Duplicates collapse; --list-ops needs no device.
        let o = run(&["--device", "0d:00.0", "--also", "0000:0d:00.0"]);
        assert_eq!(o.devices.len(), 1);
        match parse(&args(&["--list-ops"]), None, 0).unwrap() {
            Parsed::Run(o) => assert!(o.list_ops),
            Parsed::Help => panic!("help"),
        }
        assert!(USAGE.contains("--threads 1"));
    }
}
