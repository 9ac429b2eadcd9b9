//! `obra demo`: the whole loop on the embedded defaults, and the feedback of a failed iteration reaching the
//! next prompt.

mod common;

use common::{Project, text};

#[test]
fn demo_completes_after_a_retry_that_carries_the_failing_tests_into_the_next_prompt() {
    let scratch = Project::uninitialised();
    let dir = scratch.path().join("demo");
    let out = scratch.obra(&["demo", "--dir", dir.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).expect("demo --json prints the outcome");
    assert_eq!(outcome["status"], "completed", "{}", text(&out));
    assert_eq!(outcome["iterations"], 2);
    // Live progress went to stderr, step by step.
    let progress = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "iteration 1/3",
        "gate tests: FAIL",
        "decision: RETRY",
        "iteration 2/3",
        "gate tests: pass",
        "decision: PROCEED",
    ] {
        assert!(progress.contains(expected), "missing {expected:?} in:\n{progress}");
    }
    // The agent's (recorded) fix is in the workspace and the tests really pass there.
    let calc = std::fs::read_to_string(dir.join("calc.sh")).unwrap();
    assert!(calc.contains("a * b"), "{calc}");
    let test = std::process::Command::new("sh").arg("test.sh").current_dir(&dir).output().unwrap();
    assert!(test.status.success(), "{}", text(&test));

    // The store has both iterations; the second prompt carries the first one's failing test output.
    let show = scratch_obra_json(&scratch, &dir, &["task", "show", "1", "--json"]);
    let interactions = show["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 2);
    assert_eq!(interactions[0]["decision"]["action"], "retry");
    assert_eq!(interactions[1]["decision"]["action"], "proceed");
    let gates0 = interactions[0]["gates"].as_array().unwrap();
    assert!(gates0.iter().any(|g| g["gate"] == "tests" && g["passed"] == false));
    let second_prompt = interactions[1]["interaction"]["prompt"].as_str().unwrap();
    assert!(second_prompt.contains("Quality gate `tests` failed"), "{second_prompt}");
    assert!(second_prompt.contains("FAIL mul 4 5"), "the failing test output reaches the agent:\n{second_prompt}");
    let changes = interactions[0]["changes"].as_array().unwrap();
    assert!(changes.iter().any(|c| c["path"] == "calc.sh" && c["kind"] == "created"), "{changes:?}");
}

#[test]
fn demo_refuses_a_directory_that_is_not_empty() {
    let scratch = Project::uninitialised();
    std::fs::write(scratch.path().join("precious.txt"), "keep me").unwrap();
    let out = scratch.obra(&["demo", "--dir", scratch.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(scratch.path().join("precious.txt")).unwrap(), "keep me");
}

fn scratch_obra_json(scratch: &Project, dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["-C", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    scratch.obra_json(&full, 0)
}
