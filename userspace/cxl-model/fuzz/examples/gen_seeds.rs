//! Writes the seed corpus, `seeds/<target>/<name>`, from the layouts in each target's
//! `seeds()`; with `--check`, fails instead if the checked-in files differ.
//!
//!     cargo run --example gen_seeds [-- --check]

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut stale = 0;
    for target in cxl_model_fuzz::TARGETS {
        let dir = root.join(target);
        let seeds = cxl_model_fuzz::seeds(target);
        let mut names: Vec<String> = seeds.iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        on_disk.sort();
        if check {
            if on_disk != names {
                eprintln!("{target}: files {on_disk:?}, seeds {names:?}");
                stale += 1;
            }
            for (name, bytes) in &seeds {
                if std::fs::read(dir.join(name)).ok().as_ref() != Some(bytes) {
                    eprintln!("{target}/{name}: stale");
                    stale += 1;
                }
            }
            continue;
        }
        std::fs::create_dir_all(&dir).expect("seed directory");
        for old in on_disk.iter().filter(|n| !names.contains(n)) {
            std::fs::remove_file(dir.join(old)).expect("old seed");
        }
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).expect("seed file");
        }
        println!("{target}: {} seeds", seeds.len());
    }
    if stale == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("seed corpus out of date: cargo run --example gen_seeds");
        ExitCode::FAILURE
    }
}
