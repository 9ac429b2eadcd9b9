//! Fuzzing the reader of a command agent's output, as text and as JSON lines with every field taken by JSON
//! pointer: mutated outputs never panic the reader, whatever types the pointed-at values have.

use crate::config::Config;
use crate::fuzz::fuzz;
use crate::outcome::{Collector, End};

const JSONL: &str = r#"{"type":"start"}
a line that is not JSON
{"type":"result","text":"wrote hello.txt","session":"sess-42","usage":{"in":7,"out":3},"cost":0.01,"turns":2,"error":false}"#;

const TEXT: &str = "working...\nWrote hello.txt\nError: 429 rate limit exceeded, retry after 30s\n";

#[test]
fn the_output_reader_never_panics_on_mutated_output() {
    let configs = [
        Config::parse(r#"{"program": "a"}"#).unwrap(),
        Config::parse(
            r#"{"program": "a", "output": {"format": "jsonl", "result_match": {"path": "/type", "equals": "result"},
                "summary_path": "/text", "session_path": "/session", "input_tokens_path": "/usage/in",
                "output_tokens_path": "/usage/out", "cost_path": "/cost", "turns_path": "/turns",
                "error_path": "/error"}}"#,
        )
        .unwrap(),
    ];
    fuzz("command agent output", &[JSONL.as_bytes(), TEXT.as_bytes()], |input| {
        let text = String::from_utf8_lossy(input);
        for cfg in &configs {
            let mut collector = Collector::new();
            for line in text.lines() {
                let _ = collector.feed(cfg, line);
            }
            let end = End { exit_code: Some(0), duration_ms: 5, ..End::default() };
            let _ = collector.finish(cfg, &end);
        }
    });
}
