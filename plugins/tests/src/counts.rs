//! Reading pass/fail counts from the summaries test runners print (pure, unit-tested natively).
//!
//! Understood: `cargo test` (`test result: FAILED. 3 passed; 1 failed; ...`, summed over test binaries), node's
//! test runner (`# pass 5` / `# fail 1`, or `ℹ pass 5` / `ℹ fail 1`), `go test -v` (`--- PASS:` / `--- FAIL:`
//! lines), and any line with `N passed` / `N failed` / `N error(s)` such as pytest's
//! `==== 1 failed, 4 passed in 0.12s ====` or the plain `4 passed, 0 failed` (the last such line counts).

/// Passed and failed test counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed (or errored).
    pub failed: u64,
}

impl Counts {
    /// passed / (passed + failed), or `None` when no test ran.
    pub fn ratio(&self) -> Option<f32> {
        let total = self.passed + self.failed;
        (total > 0).then(|| self.passed as f32 / total as f32)
    }
}

/// The counts in a test run's output, if it has a summary this module understands.
pub fn parse(output: &str) -> Option<Counts> {
    let mut cargo: Option<Counts> = None;
    let mut node = (None::<u64>, None::<u64>);
    let mut go: Option<Counts> = None;
    let mut generic: Option<Counts> = None;
    for line in output.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("test result:") {
            if let Some(c) = words(rest) {
                let acc = cargo.get_or_insert_with(Counts::default);
                acc.passed += c.passed;
                acc.failed += c.failed;
            }
            continue;
        }
        let node_line = t.strip_prefix("# ").or_else(|| t.strip_prefix("ℹ "));
        if let Some(rest) = node_line {
            if let Some(n) = rest.strip_prefix("pass ").and_then(|n| n.trim().parse().ok()) {
                node.0 = Some(n);
                continue;
            }
            if let Some(n) = rest.strip_prefix("fail ").and_then(|n| n.trim().parse().ok()) {
                node.1 = Some(n);
                continue;
            }
        }
        if t.starts_with("--- PASS:") || t.starts_with("--- FAIL:") {
            let acc = go.get_or_insert_with(Counts::default);
            if t.starts_with("--- PASS:") {
                acc.passed += 1;
            } else {
                acc.failed += 1;
            }
            continue;
        }
        if let Some(c) = words(t) {
            generic = Some(c);
        }
    }
    if cargo.is_some() {
        return cargo;
    }
    if node.0.is_some() || node.1.is_some() {
        return Some(Counts { passed: node.0.unwrap_or(0), failed: node.1.unwrap_or(0) });
    }
    go.or(generic)
}

/// `N passed`, `N failed`, `N error`/`N errors` in one line, if it has at least one of them.
fn words(line: &str) -> Option<Counts> {
    let tokens: Vec<&str> = line.split(|c: char| !c.is_ascii_alphanumeric()).filter(|s| !s.is_empty()).collect();
    let mut found = false;
    let mut c = Counts::default();
    for pair in tokens.windows(2) {
        let Ok(n) = pair[0].parse::<u64>() else {
            continue;
        };
        match pair[1].to_ascii_lowercase().as_str() {
            "passed" => {
                c.passed += n;
                found = true;
            }
            "failed" | "error" | "errors" => {
                c.failed += n;
                found = true;
            }
            _ => {}
        }
    }
    found.then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(passed: u64, failed: u64) -> Option<Counts> {
        Some(Counts { passed, failed })
    }

    #[test]
    fn cargo_test_sums_every_binary() {
        let out = "running 3 tests\ntest a ... ok\ntest b ... FAILED\n\ntest result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n   Doc-tests x\n\ntest result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.3s\n";
        assert_eq!(parse(out), c(6, 1));
    }

    #[test]
    fn pytest_summary_lines() {
        assert_eq!(parse("..F.\n=========== 1 failed, 3 passed, 2 skipped in 0.12s ===========\n"), c(3, 1));
        assert_eq!(parse("==== 5 passed in 0.01s ====\n"), c(5, 0));
        assert_eq!(parse("==== 1 passed, 2 errors in 0.30s ====\n"), c(1, 2));
    }

    #[test]
    fn node_test_runner_tap_and_spec() {
        let tap =
            "TAP version 13\nok 1 - a\nnot ok 2 - b\n1..2\n# tests 2\n# suites 0\n# pass 1\n# fail 1\n# cancelled 0\n";
        assert_eq!(parse(tap), c(1, 1));
        let spec = "✔ a (0.5ms)\nℹ tests 3\nℹ pass 3\nℹ fail 0\nℹ duration_ms 40\n";
        assert_eq!(parse(spec), c(3, 0));
    }

    #[test]
    fn go_test_verbose() {
        let out = "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    b_test.go:9: boom\n--- FAIL: TestB (0.00s)\nFAIL\nFAIL\texample.com/x\t0.01s\n";
        assert_eq!(parse(out), c(1, 1));
    }

    #[test]
    fn plain_closing_line_and_the_last_one_wins() {
        let out = "FAIL mul 4 5: expected 20, got '9'\n2 passed, 2 failed\n";
        assert_eq!(parse(out), c(2, 2));
        assert_eq!(parse("1 passed, 0 failed\nthen: 4 passed, 0 failed\n"), c(4, 0));
        assert_eq!(parse("all good\n"), None);
        assert_eq!(parse(""), None);
        assert_eq!(c(2, 2).unwrap().ratio(), Some(0.5));
        assert_eq!(Counts::default().ratio(), None);
    }
}
