//! A small mutation fuzzer for parsers, on the stable toolchain (cargo-fuzz needs nightly, which these
//! machines cannot fetch): seeds are mutated byte-wise and structurally (flips, inserts, deletes, splices,
//! duplicated and truncated spans, interesting bytes), deterministically from a seed, and each input is given to
//! the target, which must return (an `Err` is fine) and never panic. The number of inputs per target is
//! `OBRA_FUZZ_ITERATIONS` (default 2000: a brief run in CI); `OBRA_FUZZ_SEED` replays a failing seed.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Inputs per target when `OBRA_FUZZ_ITERATIONS` is not set.
pub const DEFAULT_ITERATIONS: usize = 2000;

/// Bytes that often break parsers.
const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\xff\xfe",
    b"\xf0\x9f\x92\xa9",
    b"-1",
    b"1e309",
    b"NaN",
    b"null",
    b"true",
    b"'",
    b"#",
    b"&",
    b"*",
    b"!!binary",
    b"---",
    b"%",
    b"\t",
];

/// xorshift64*: deterministic and dependency-free.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced by a fixed odd number).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// One mutation of `input`, using `seeds` for splices.
pub fn mutate(rng: &mut Rng, input: &[u8], seeds: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(i..i, b.iter().copied());
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(32)) + 1;
                out.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(64)) + 1;
                let span: Vec<u8> = out[i..i + n].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, span);
            }
            4 if len > 0 => out.truncate(rng.below(len)),
            5 if !seeds.is_empty() => {
                let other = seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => {
                let i = rng.below(len);
                out[i] = (rng.next_u64() & 0xff) as u8;
            }
            _ => {
                let i = rng.below(len + 1);
                let digits = rng.next_u64().to_string();
                out.splice(i..i, digits.bytes());
            }
        }
    }
    out
}

/// Feed `iterations` mutated inputs (plus the seeds themselves) to `target`; panics, naming the seed and
/// the input, when the target panics.
pub fn fuzz(name: &str, seeds: &[&[u8]], mut target: impl FnMut(&[u8])) {
    let iterations =
        std::env::var("OBRA_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_ITERATIONS);
    let base = std::env::var("OBRA_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x0b4a_5eed_u64);
    for seed in seeds {
        run_one(name, base, seed, &mut target);
    }
    let mut rng = Rng::new(base);
    for _ in 0..iterations {
        let start = seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, start, seeds);
        run_one(name, base, &input, &mut target);
    }
}

fn run_one(name: &str, seed: u64, input: &[u8], target: &mut impl FnMut(&[u8])) {
    if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
        panic!("fuzz target {name} panicked (OBRA_FUZZ_SEED={seed}) on input {:?}", String::from_utf8_lossy(input));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_varied() {
        let seeds: &[&[u8]] = &[b"{\"a\": 1}", b"key: value\n"];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50).map(|_| mutate(&mut rng, seeds[0], seeds)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let distinct: std::collections::HashSet<Vec<u8>> = run(7).into_iter().collect();
        assert!(distinct.len() > 40, "{}", distinct.len());
    }

    #[test]
    #[should_panic(expected = "fuzz target boom panicked")]
    fn a_panicking_target_is_reported_with_its_seed() {
        fuzz("boom", &[b"x"], |input| assert!(input.len() < 1000 && !input.is_empty() && input[0] != b'x'));
    }
}
