//! Fuzzing the reader of `codex exec --json` events: a recorded run of the real CLI 0.169.0 (a shell call, a
//! message, usage) and a failed turn, mutated and fed line by line, with and without earlier session totals;
//! the reader always returns a run result and never panics (nor overflows on hostile token counts).

use crate::events::{EventReader, ProcessEnd, Totals};
use crate::fuzz::fuzz;

const SUCCESS: &str = r#"{"type":"thread.started","thread_id":"01a202ef-ebe7-7dc0-93fa-a4311effadd6"}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc \"printf 'hello\\n' > hello.txt\"","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc \"printf 'hello\\n' > hello.txt\"","aggregated_output":"","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_3","type":"file_change","changes":[{"path":"/w/hello.txt","kind":"add"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"Created hello.txt."}}
{"type":"turn.completed","usage":{"input_tokens":250,"cached_input_tokens":50,"output_tokens":28,"reasoning_output_tokens":0}}"#;

const FAILED: &str = r#"{"type":"thread.started","thread_id":"t-1"}
{"type":"turn.started"}
{"type":"error","message":"stream disconnected before completion: 429 Too Many Requests"}
{"type":"turn.failed","error":{"message":"exceeded retry limit, last status: 429 Too Many Requests"}}"#;

#[test]
fn the_event_reader_never_panics_on_mutated_events() {
    fuzz("codex exec --json", &[SUCCESS.as_bytes(), FAILED.as_bytes()], |input| {
        let text = String::from_utf8_lossy(input);
        for previous in [None, Some(Totals { input: u64::MAX, cached: u64::MAX, output: 3 })] {
            let mut reader = EventReader::new();
            for line in text.lines() {
                let _ = reader.feed(line);
            }
            let end = ProcessEnd { exit_code: Some(1), duration_ms: 5, ..ProcessEnd::default() };
            let _ = reader.finish(&end, previous);
        }
    });
}
