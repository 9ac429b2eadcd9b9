//! What the benchmarks share: printing a latency distribution.

use std::time::Duration;

/// Print `name: n=.. median=.. p95=.. min=..` for the samples, in milliseconds with `decimals` places.
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
}
