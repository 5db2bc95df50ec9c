//! Replays every fuzz corpus input and every minimised crash through the
//! fuzz targets' bodies (fuzz/targets.rs): the fuzzers' findings stay
//! fixed, in the ordinary test run, in seconds. With `FUZZ_TRACE` set, each
//! input's file is printed before it runs (to find one that aborts).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::fs;
use std::path::Path;

#[path = "../../fuzz/targets.rs"]
mod targets;

#[test]
fn every_corpus_input_and_minimised_crash_runs_clean() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = Vec::new();
    for (name, target) in targets::ALL {
        let mut count = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(entries) = fs::read_dir(fuzz.join(kind).join(name)) else { continue };
            for entry in entries.filter_map(Result::ok) {
                let input = fs::read(entry.path()).unwrap();
                if std::env::var_os("FUZZ_TRACE").is_some() {
                    eprintln!("{}", entry.path().display());
                }
                target(&input);
                count += 1;
            }
        }
        assert!(count > 0, "no corpus for the fuzz target {name}");
        replayed.push(format!("{name}: {count}"));
    }
    eprintln!("replayed {}", replayed.join(", "));
}
