//! What the benchmarks share: printing a latency distribution or a single value, for people (one line of text)
//! and for the performance record (`cargo run -p obra-testkit --release --example perf-record` reads the lines that
//! start with [`RECORD_PREFIX`] and rewrites docs/PERFORMANCE.md from them).

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

/// Write a tree of `files` small Rust files, 100 per directory (`d000/f0.rs`, ...), the benchmarks' large tree.
pub fn make_tree(root: &Path, files: usize) {
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("f{i}.rs")), format!("// file {i}\npub fn f{i}() {{}}\n")).unwrap();
    }
}

/// The prefix of the machine-readable line each measurement also prints.
pub const RECORD_PREFIX: &str = "OBRA-BENCH ";

/// Print `name: n=.. median=.. p95=.. min=..` for the samples, in milliseconds with `decimals` places, and its
/// record line.
pub fn report(name: &str, samples: &mut [Duration], decimals: usize) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: n={} median={:.decimals$} ms p95={:.decimals$} ms min={:.decimals$} ms",
        samples.len(),
        ms(pick(0.5)),
        ms(pick(0.95)),
        ms(samples[0]),
    );
    record(name, "ms", ms(pick(0.5)), Some(ms(pick(0.95))), samples.len());
}

/// Print one measured value (a memory size, a rate) and its record line.
pub fn value(name: &str, unit: &str, value: f64) {
    println!("{name}: {value:.1} {unit}");
    record(name, unit, value, None, 1);
}

/// The machine-readable line of one measurement: `OBRA-BENCH {"name":..,"unit":..,"median":..,"p95":..,"n":..}`.
pub fn record(name: &str, unit: &str, median: f64, p95: Option<f64>, n: usize) {
    let line = serde_json::json!({ "name": name, "unit": unit, "median": median, "p95": p95, "n": n });
    println!("{RECORD_PREFIX}{line}");
}
