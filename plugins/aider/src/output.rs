//! Reading Aider's plain-text output into the normalised `run-result` (pure, unit-tested natively on output of
//! the real Aider 0.86.2). Aider prints no JSON and usually exits 0 even when the model API failed, so the
//! outcome comes from what it printed: `Applied edit to <file>` lines, the `Tokens: ... Cost: ...` line, and
//! litellm's error names (`litellm.RateLimitError`, `litellm.BadRequestError`, ...).

use obra_plugin_sdk::http::excerpt;
use obra_plugin_sdk::{Outcome, RunResult, Usage};

/// How the process ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct End {
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Killing signal.
    pub signal: Option<i32>,
    /// Stopped at its time limit.
    pub timed_out: bool,
    /// Error output.
    pub stderr: String,
    /// Run time.
    pub duration_ms: u64,
}

/// Lines of Aider's banner and bookkeeping, left out of the summary.
const NOISE: [&str; 9] = [
    "Aider v",
    "Model: ",
    "Git repo: ",
    "Repo-map: ",
    "Added ",
    "Tokens: ",
    "HTTPSConnectionPool",
    "Update git ",
    "https://aider.chat/",
];

/// What Aider printed.
#[derive(Debug, Default)]
pub struct Transcript {
    lines: Vec<String>,
    /// Files Aider applied edits to.
    pub applied: Vec<String>,
    input_tokens: u64,
    output_tokens: u64,
    cost: Option<f64>,
    error: Option<String>,
}

/// `1.2k` -> 1200, `735` -> 735.
fn count(text: &str) -> Option<u64> {
    let t = text.trim().trim_end_matches(',');
    if let Some(k) = t.strip_suffix('k') {
        return k.parse::<f64>().ok().map(|v| (v * 1000.0).round() as u64);
    }
    if let Some(m) = t.strip_suffix('M') {
        return m.parse::<f64>().ok().map(|v| (v * 1_000_000.0).round() as u64);
    }
    t.parse().ok()
}

impl Transcript {
    /// Nothing read.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read one line; returns a progress message when the line is worth one.
    pub fn feed(&mut self, line: &str) -> Option<String> {
        let line = line.trim_end();
        if let Some(file) = line.strip_prefix("Applied edit to ") {
            self.applied.push(file.trim().to_string());
            return Some(line.to_string());
        }
        if let Some(rest) = line.strip_prefix("Tokens: ") {
            // "Tokens: 682 sent, 12 received. Cost: $0.00011 message, $0.00011 session."
            let mut words = rest.split_whitespace();
            if let (Some(sent), Some(_), Some(received)) = (words.next(), words.next(), words.next()) {
                self.input_tokens += count(sent).unwrap_or(0);
                self.output_tokens += count(received).unwrap_or(0);
            }
            if let Some(cost) = rest.split("Cost: $").nth(1).and_then(|c| c.split_whitespace().next()) {
                self.cost = Some(self.cost.unwrap_or(0.0) + cost.trim_end_matches(',').parse::<f64>().unwrap_or(0.0));
            }
            return None;
        }
        if let Some(at) = line.find("litellm.")
            && line[at..].split(':').next().is_some_and(|name| name.ends_with("Error"))
        {
            self.error = Some(line[at..].to_string());
        }
        self.lines.push(line.to_string());
        None
    }

    /// The model's words: the output without Aider's banner and bookkeeping, its tail.
    fn summary(&self) -> String {
        let kept: Vec<&str> = self
            .lines
            .iter()
            .map(String::as_str)
            .filter(|l| !l.trim().is_empty() && !NOISE.iter().any(|n| l.starts_with(n)))
            .collect();
        let text = kept[kept.len().saturating_sub(30)..].join("\n");
        obra_plugin_sdk::process::tail_str(&text, 4000).to_string()
    }

    /// The normalised result.
    pub fn finish(self, end: &End) -> RunResult {
        let mut r = RunResult::new(Outcome::Success, self.summary());
        r.exit_code = end.exit_code;
        r.duration_ms = end.duration_ms;
        r.turns = u32::from(self.input_tokens > 0);
        r.usage = Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: self.cost,
            ..Usage::default()
        };
        let stderr = excerpt(obra_plugin_sdk::process::tail_str(&end.stderr, 600), 600);
        if end.timed_out {
            r.outcome = Outcome::Timeout;
            r.summary = "aider was stopped at its time limit".into();
        } else if let Some(sig) = end.signal {
            r.outcome = Outcome::Crashed;
            r.summary = format!("aider was killed by signal {sig}");
        } else if let Some(error) = &self.error {
            let lower = error.to_lowercase();
            (r.outcome, r.api_status) = if lower.contains("ratelimiterror") {
                (Outcome::RateLimited, Some(429))
            } else if lower.contains("authenticationerror") {
                (Outcome::ApiError, Some(401))
            } else if lower.contains("badrequesterror") {
                (Outcome::ApiError, Some(400))
            } else if lower.contains("notfounderror") {
                (Outcome::ApiError, Some(404))
            } else if lower.contains("internalservererror") || lower.contains("serviceunavailable") {
                (Outcome::ApiError, Some(500))
            } else {
                (Outcome::ApiError, None)
            };
            r.summary = format!("aider: {}", excerpt(error, 400));
        } else if end.exit_code != Some(0) {
            r.outcome = Outcome::Crashed;
            r.summary = format!("aider exited with {:?}: {stderr}", end.exit_code);
        } else if self.applied.is_empty() {
            // Aider exists to edit files; a reply it could not apply as an edit is not understood work.
            r.outcome = Outcome::Unparseable;
            r.summary = format!("aider applied no edit; the model said: {}", excerpt(&r.summary, 600));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &[&str], end: End) -> RunResult {
        let mut t = Transcript::new();
        for l in lines {
            t.feed(l);
        }
        t.finish(&end)
    }

    fn exit(code: i32) -> End {
        End { exit_code: Some(code), duration_ms: 3, ..End::default() }
    }

    /// Aider 0.86.2 against the test kit's fake chat-completions server.
    const APPLIED: &[&str] = &[
        "Aider v0.86.2",
        "Model: openai/gpt-4o-mini with whole edit format",
        "Git repo: .git with 0 files",
        "Repo-map: disabled",
        "",
        "hello.txt",
        "```",
        "hello from conformance",
        "```",
        "",
        "Tokens: 1.2k sent, 12 received. Cost: $0.00011 message, $0.00011 session.",
        "",
        "hello.txt",
        "Applied edit to hello.txt",
    ];

    #[test]
    fn an_applied_edit_is_a_success_with_usage_and_cost() {
        let r = read(APPLIED, exit(0));
        assert_eq!(r.outcome, Outcome::Success);
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens, r.usage.cost_usd), (1200, 12, Some(0.00011)));
        assert!(r.summary.contains("hello from conformance") && !r.summary.contains("Aider v"), "{}", r.summary);
    }

    #[test]
    fn litellm_errors_are_api_errors_or_rate_limits_even_with_exit_0() {
        let r = read(&["Aider v0.86.2", "litellm.BadRequestError: OpenAIException - conformance error 400"], exit(0));
        assert_eq!((r.outcome, r.api_status), (Outcome::ApiError, Some(400)));
        assert!(r.summary.contains("conformance error 400"), "{}", r.summary);
        let r = read(
            &["Retrying in 16.0 seconds...", "litellm.RateLimitError: RateLimitError: OpenAIException - slow down"],
            exit(0),
        );
        assert_eq!(r.outcome, Outcome::RateLimited);
    }

    #[test]
    fn no_edit_crashes_and_timeouts_are_told_apart() {
        let r = read(&["Aider v0.86.2", "Sorry, I cannot help with that.", "Tokens: 675 sent, 8 received."], exit(0));
        assert_eq!(r.outcome, Outcome::Unparseable);
        assert!(r.summary.contains("Sorry, I cannot help"), "{}", r.summary);
        let r = read(&[], End { stderr: "Traceback (most recent call last): ImportError".into(), ..exit(1) });
        assert!(r.outcome == Outcome::Crashed && r.summary.contains("ImportError"), "{}", r.summary);
        assert_eq!(read(&[], End { signal: Some(9), ..End::default() }).outcome, Outcome::Crashed);
        assert_eq!(read(&[], End { timed_out: true, ..End::default() }).outcome, Outcome::Timeout);
    }
}
