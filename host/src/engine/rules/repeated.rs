//! `repeated-failure`: pause when the same failure happened `times` iterations in a row within one execution
//! of a task — the agent is going round in circles, and another iteration would cost without helping.
//!
//! A failure's signature is the agent's outcome plus each failed gate's name and findings (severity, path,
//! line, message; the gate's summary when it has no findings), normalised: lower case, runs of digits as
//! `#` (timings, counts, addresses), whitespace collapsed. An iteration whose outcome is `success` and whose
//! gates all passed has no signature and breaks the streak.

use serde::Deserialize;

use super::how_to_resolve;
use crate::contract::{Finding, Severity, Verdict};
use crate::state::GateRecord;

/// The rule's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many identical failures in a row pause the task (at least 2).
    #[serde(default = "default_times")]
    pub times: u32,
}

fn default_times() -> u32 {
    2
}

impl Config {
    /// Check `times` is at least 2.
    pub(super) fn checked(self) -> Result<Self, String> {
        if self.times < 2 {
            return Err(format!("times: {} must be at least 2 (one failure is not a repetition)", self.times));
        }
        Ok(self)
    }

    /// Judge the signatures, newest (this iteration's) first.
    pub(super) fn evaluate(&self, failures: &[Option<String>], text: &str, key: &str) -> Verdict {
        let Some(Some(current)) = failures.first() else {
            return Verdict::Proceed;
        };
        let streak = failures.iter().take_while(|f| f.as_ref() == Some(current)).count();
        if streak < self.times as usize {
            return Verdict::Proceed;
        }
        Verdict::Pause(format!(
            "the same failure happened {streak} times in a row ({key}.times is {}): {text}. Another iteration is \
             unlikely to help. {}",
            self.times,
            how_to_resolve("")
        ))
    }
}

/// Lower case, digit runs as `#`, whitespace collapsed.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = ' ';
    for c in text.trim().chars() {
        let c = if c.is_ascii_digit() {
            '#'
        } else if c.is_whitespace() {
            ' '
        } else {
            c.to_ascii_lowercase()
        };
        if (c == '#' || c == ' ') && last == c {
            continue;
        }
        out.push(c);
        last = c;
    }
    out
}

/// The signature of an iteration's failure, or `None` when it did not fail. `gates` are (name, passed,
/// summary, findings).
pub fn failure_signature<'a>(
    outcome: &str,
    gates: impl IntoIterator<Item = (&'a str, bool, &'a str, &'a [Finding])>,
) -> Option<String> {
    let mut failed: Vec<String> = gates
        .into_iter()
        .filter(|(_, passed, _, _)| !passed)
        .map(|(name, _, summary, findings)| {
            let mut parts = vec![format!("gate {name}")];
            if findings.is_empty() {
                parts.push(normalise(summary));
            }
            for f in findings {
                let severity = match f.severity {
                    Severity::Info => "info",
                    Severity::Warning => "warning",
                    Severity::Error => "error",
                };
                parts.push(format!(
                    "{severity} {}:{} {}",
                    f.path.as_deref().unwrap_or(""),
                    f.line.map(|l| l.to_string()).unwrap_or_default(),
                    normalise(&f.message)
                ));
            }
            parts.join("\n")
        })
        .collect();
    if outcome == "success" && failed.is_empty() {
        return None;
    }
    failed.sort();
    Some(format!("outcome {outcome}\n{}", failed.join("\n")))
}

/// One line on this iteration's failure: the outcome, the failed gates and the first finding of each.
pub(super) fn describe(outcome: &str, gates: &[GateRecord]) -> String {
    let mut parts = Vec::new();
    if outcome != "success" {
        parts.push(format!("the agent's run ended with outcome {outcome}"));
    }
    for g in gates.iter().filter(|g| !g.passed) {
        let first = g.findings.first().map(|f| f.message.as_str()).unwrap_or(g.summary.as_str());
        let first: String = first.lines().next().unwrap_or_default().chars().take(200).collect();
        parts.push(format!("gate `{}` failed ({first})", g.gate));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(message: &str) -> Finding {
        Finding { severity: Severity::Error, message: message.into(), path: Some("t.sh".into()), line: Some(3) }
    }

    #[test]
    fn signatures_ignore_timings_and_order_but_not_what_failed() {
        let a = [finding("test add failed after 0.12s")];
        let b = [finding("test add   failed after 3.5s")];
        let c = [finding("test mul failed after 0.12s")];
        let sig = |f: &[Finding]| failure_signature("success", [("tests", false, "", f), ("lint", true, "", &[][..])]);
        assert_eq!(sig(&a), sig(&b));
        assert_ne!(sig(&a), sig(&c));
        assert!(sig(&a).unwrap().contains("gate tests"));
        assert_eq!(failure_signature("success", [("tests", true, "ok", &a[..])]), None);
        assert_eq!(failure_signature("crashed", []), Some("outcome crashed\n".into()));
        let ab = failure_signature("success", [("a", false, "x", &[][..]), ("b", false, "y", &[][..])]);
        let ba = failure_signature("success", [("b", false, "y", &[][..]), ("a", false, "x", &[][..])]);
        assert_eq!(ab, ba);
    }

    #[test]
    fn the_streak_must_reach_times() {
        let c = Config { times: 2 };
        let s = |x: &str| Some(x.to_string());
        assert_eq!(c.evaluate(&[s("x")], "t", "k"), Verdict::Proceed);
        assert_eq!(c.evaluate(&[s("x"), s("y")], "t", "k"), Verdict::Proceed);
        assert_eq!(c.evaluate(&[None, None], "t", "k"), Verdict::Proceed);
        let Verdict::Pause(reason) = c.evaluate(&[s("x"), s("x"), None], "gate `tests` failed", "rules[3].config")
        else {
            panic!("no pause")
        };
        assert!(reason.contains("2 times in a row (rules[3].config.times is 2): gate `tests` failed"), "{reason}");
        assert_eq!(Config { times: 3 }.evaluate(&[s("x"), s("x"), s("y")], "t", "k"), Verdict::Proceed);
        assert!(Config { times: 1 }.checked().is_err());
    }
}
