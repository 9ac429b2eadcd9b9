//! Fuzzing the reader of `claude -p --output-format stream-json` output: the recorded streams of the real CLI,
//! mutated byte-wise and structurally, fed line by line; whatever the input, the reader returns a run result
//! (an unparseable or failed outcome is fine) and never panics.

use crate::fuzz::fuzz;
use crate::stream::{ProcessEnd, StreamParser};

/// Every recorded stream of the real CLI (tests/fixtures/claude).
const SEEDS: &[&str] = &[
    include_str!("../../../tests/fixtures/claude/success_write.stdout.jsonl"),
    include_str!("../../../tests/fixtures/claude/edit_after_read.stdout.jsonl"),
    include_str!("../../../tests/fixtures/claude/api_429.stdout.jsonl"),
    include_str!("../../../tests/fixtures/claude/api_500.stdout.jsonl"),
    include_str!("../../../tests/fixtures/claude/error_max_turns.stdout.jsonl"),
    include_str!("../../../tests/fixtures/claude/permission_denied.stdout.jsonl"),
    include_str!("../../../tests/fixtures/claude/stream_error_recovered.stdout.jsonl"),
    include_str!("../../../tests/fixtures/claude/bypass_permissions_bash.stdout.jsonl"),
];

#[test]
fn the_stream_reader_never_panics_on_mutated_streams() {
    let seeds: Vec<&[u8]> = SEEDS.iter().map(|s| s.as_bytes()).collect();
    fuzz("claude stream-json", &seeds, |input| {
        let text = String::from_utf8_lossy(input);
        for end in [
            ProcessEnd { exit_code: Some(0), duration_ms: 10, timeout_ms: 60_000, ..ProcessEnd::default() },
            ProcessEnd { signal: Some(9), timed_out: true, timeout_ms: 60_000, ..ProcessEnd::default() },
        ] {
            let mut parser = StreamParser::new("/work/project");
            for line in text.lines() {
                let _ = parser.feed(line);
            }
            let _ = parser.finish(&end);
        }
    });
}
