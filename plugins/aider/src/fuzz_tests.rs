//! Fuzzing the reader of aider's terminal output: the recorded outputs of the real aider-chat 0.86.2, mutated
//! and fed line by line; the reader always returns a run result and never panics.

use crate::fuzz::fuzz;
use crate::output::{OutputParser, ProcessEnd};

const SEEDS: &[&str] = &[
    include_str!("../../../tests/fixtures/aider/success.stdout.txt"),
    include_str!("../../../tests/fixtures/aider/bad-edit.stdout.txt"),
    include_str!("../../../tests/fixtures/aider/bad-request.stdout.txt"),
    include_str!("../../../tests/fixtures/aider/no-edit.stdout.txt"),
    include_str!("../../../tests/fixtures/aider/rate-limit-retries.stdout.txt"),
    include_str!("../../../tests/fixtures/aider/uncaught-exception.stdout.txt"),
];

#[test]
fn the_output_reader_never_panics_on_mutated_output() {
    let seeds: Vec<&[u8]> = SEEDS.iter().map(|s| s.as_bytes()).collect();
    fuzz("aider output", &seeds, |input| {
        let text = String::from_utf8_lossy(input);
        let mut parser = OutputParser::new();
        for line in text.lines() {
            let _ = parser.feed(line);
            let _ = parser.retries_of_current_error();
        }
        let end = ProcessEnd { exit_code: Some(0), duration_ms: 5, timeout_ms: 60_000, ..ProcessEnd::default() };
        let _ = parser.finish(&end);
    });
}
