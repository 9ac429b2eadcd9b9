//! Turning a program's output and exit into the normalised `run-result` (pure, unit-tested natively).

use obra_plugin_sdk::http::excerpt;
use obra_plugin_sdk::{Outcome, RunResult, Usage};
use serde_json::Value;

use crate::config::{Config, Format};

/// How many bytes of text output the summary keeps (its end).
const SUMMARY_BYTES: usize = 4000;

/// How the program ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct End {
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// Whether it was stopped at its time limit.
    pub timed_out: bool,
    /// Its error output (tail).
    pub stderr: String,
    /// How long it ran.
    pub duration_ms: u64,
}

/// Collects the program's standard output.
#[derive(Debug, Default)]
pub struct Collector {
    text: String,
    events: Vec<Value>,
    /// Lines that were not JSON objects (jsonl).
    pub bad_lines: usize,
    first_bad: Option<String>,
}

impl Collector {
    /// Nothing collected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one line of output; returns a progress message when the line is worth one.
    pub fn feed(&mut self, cfg: &Config, line: &str) -> Option<String> {
        match cfg.output.format {
            Format::Text => {
                self.text.push_str(line);
                self.text.push('\n');
                if self.text.len() > 4 * SUMMARY_BYTES {
                    let cut = self.text.len() - 2 * SUMMARY_BYTES;
                    let cut = (cut..self.text.len()).find(|&i| self.text.is_char_boundary(i)).unwrap_or(0);
                    self.text.drain(..cut);
                }
                None
            }
            Format::Jsonl => {
                if line.trim().is_empty() {
                    return None;
                }
                match serde_json::from_str::<Value>(line) {
                    Ok(v @ Value::Object(_)) => {
                        let kind = v.get("type").and_then(Value::as_str).map(str::to_string);
                        self.events.push(v);
                        if self.events.len() > 10_000 {
                            self.events.drain(..5_000);
                        }
                        kind.map(|k| format!("event {k}"))
                    }
                    _ => {
                        self.bad_lines += 1;
                        if self.first_bad.is_none() {
                            self.first_bad = Some(excerpt(line, 120));
                        }
                        None
                    }
                }
            }
        }
    }

    /// The final JSON event: the last matching `result_match`, else the last object.
    fn final_event<'a>(&'a self, cfg: &Config) -> Option<&'a Value> {
        match &cfg.output.result_match {
            Some(m) => self.events.iter().rev().find(|e| e.pointer(&m.path) == Some(&m.equals)),
            None => self.events.last(),
        }
    }

    /// The normalised result.
    pub fn finish(&self, cfg: &Config, end: &End) -> RunResult {
        let mut r = RunResult::new(Outcome::Success, String::new());
        r.exit_code = end.exit_code;
        r.duration_ms = end.duration_ms;
        let succeeded = end.exit_code.is_some_and(|c| cfg.success_exit_codes.contains(&c));
        let said = format!("{}\n{}", self.text, end.stderr).to_lowercase();
        let rate_limited = cfg.rate_limit_patterns.iter().any(|p| !p.is_empty() && said.contains(&p.to_lowercase()));
        let stderr_tail = || excerpt(obra_plugin_sdk::process::tail_str(&end.stderr, 600), 600);

        if end.timed_out {
            r.outcome = Outcome::Timeout;
            r.summary = format!("{} was stopped at its time limit", cfg.program);
            return r;
        }
        if let Some(sig) = end.signal {
            r.outcome = Outcome::Crashed;
            r.summary = format!("{} was killed by signal {sig}: {}", cfg.program, stderr_tail());
            return r;
        }
        match cfg.output.format {
            Format::Text => {
                let out = obra_plugin_sdk::process::tail_str(self.text.trim_end(), SUMMARY_BYTES).to_string();
                if succeeded {
                    r.summary = if out.is_empty() { format!("{} finished with no output", cfg.program) } else { out };
                } else if rate_limited {
                    r.outcome = Outcome::RateLimited;
                    r.summary =
                        format!("{} hit a rate limit: {}", cfg.program, excerpt(&format!("{out} {}", end.stderr), 400));
                } else {
                    r.outcome = Outcome::Crashed;
                    r.summary = format!(
                        "{} exited with {}: {}",
                        cfg.program,
                        end.exit_code.map_or("no code".into(), |c| format!("code {c}")),
                        if end.stderr.trim().is_empty() { excerpt(&out, 600) } else { stderr_tail() }
                    );
                }
                r
            }
            Format::Jsonl => {
                let Some(event) = self.final_event(cfg) else {
                    r.outcome = if succeeded {
                        Outcome::Unparseable
                    } else if rate_limited {
                        Outcome::RateLimited
                    } else {
                        Outcome::Crashed
                    };
                    let bad = match &self.first_bad {
                        Some(first) => format!("; {} line(s) were not JSON, the first: {first}", self.bad_lines),
                        None => String::new(),
                    };
                    r.summary = format!(
                        "{} printed no {} JSON event (exit {:?}){bad}{}",
                        cfg.program,
                        if cfg.output.result_match.is_some() { "matching" } else { "final" },
                        end.exit_code,
                        if end.stderr.trim().is_empty() { String::new() } else { format!(": {}", stderr_tail()) }
                    );
                    return r;
                };
                let o = &cfg.output;
                let at = |path: &Option<String>| path.as_deref().and_then(|p| event.pointer(p));
                let number = |path: &Option<String>| at(path).and_then(Value::as_u64).unwrap_or(0);
                r.summary = match at(&o.summary_path) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => excerpt(&event.to_string(), 1000),
                };
                r.session_id = at(&o.session_path).and_then(Value::as_str).map(str::to_string);
                r.turns = number(&o.turns_path) as u32;
                r.usage = Usage {
                    input_tokens: number(&o.input_tokens_path),
                    output_tokens: number(&o.output_tokens_path),
                    cost_usd: at(&o.cost_path).and_then(Value::as_f64),
                    ..Usage::default()
                };
                let flagged = match at(&o.error_path) {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(s)) => !s.is_empty(),
                    Some(Value::Null) | None => false,
                    Some(_) => true,
                };
                let error_text = match at(&o.error_path) {
                    Some(Value::String(s)) => s.to_lowercase(),
                    _ => String::new(),
                };
                let summary = r.summary.to_lowercase();
                let rate_limited = rate_limited
                    || cfg.rate_limit_patterns.iter().any(|p| {
                        let p = p.to_lowercase();
                        !p.is_empty() && (summary.contains(&p) || error_text.contains(&p))
                    });
                r.outcome = match (flagged || !succeeded, rate_limited) {
                    (false, _) => Outcome::Success,
                    (true, true) => Outcome::RateLimited,
                    (true, false) if flagged => Outcome::ApiError,
                    (true, false) => Outcome::Crashed,
                };
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Config {
        Config::parse(json).unwrap()
    }

    fn run(c: &Config, lines: &[&str], end: End) -> RunResult {
        let mut col = Collector::new();
        for l in lines {
            col.feed(c, l);
        }
        col.finish(c, &end)
    }

    fn exit(code: i32) -> End {
        End { exit_code: Some(code), duration_ms: 5, ..End::default() }
    }

    const CLAUDE_LIKE: &str = r#"{"program": "claude", "args": ["-p", "{prompt}"], "output": {"format": "jsonl",
        "result_match": {"path": "/type", "equals": "result"}, "summary_path": "/result", "session_path": "/session_id",
        "error_path": "/is_error", "input_tokens_path": "/usage/input_tokens", "output_tokens_path": "/usage/output_tokens",
        "cost_path": "/total_cost_usd", "turns_path": "/num_turns"}}"#;

    #[test]
    fn the_final_jsonl_event_gives_summary_session_and_usage() {
        let c = cfg(CLAUDE_LIKE);
        let r = run(
            &c,
            &[
                r#"{"type":"system","subtype":"init","session_id":"s1"}"#,
                "not json",
                r#"{"type":"result","subtype":"success","is_error":false,"result":"Done.","session_id":"s1",
                   "num_turns":2,"total_cost_usd":0.01,"usage":{"input_tokens":10,"output_tokens":5}}"#,
                r#"{"type":"trailer"}"#,
            ],
            exit(0),
        );
        assert_eq!(r.outcome, Outcome::Success);
        assert_eq!((r.summary.as_str(), r.session_id.as_deref(), r.turns), ("Done.", Some("s1"), 2));
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens, r.usage.cost_usd), (10, 5, Some(0.01)));
    }

    #[test]
    fn flags_exit_codes_signals_and_timeouts_map_to_outcomes() {
        let c = cfg(CLAUDE_LIKE);
        let err = r#"{"type":"result","is_error":true,"result":"API Error: 500"}"#;
        assert_eq!(run(&c, &[err], exit(1)).outcome, Outcome::ApiError);
        let limited = End { stderr: "429 Too Many Requests".into(), ..exit(1) };
        assert_eq!(run(&c, &[err], limited).outcome, Outcome::RateLimited);
        assert_eq!(run(&c, &["garbage", "more garbage"], exit(0)).outcome, Outcome::Unparseable);
        let none = run(&c, &["garbage"], exit(0));
        assert!(
            none.summary.contains("1 line(s) were not JSON") && none.summary.contains("garbage"),
            "{}",
            none.summary
        );
        assert_eq!(run(&c, &[], exit(2)).outcome, Outcome::Crashed);
        let killed = End { signal: Some(9), ..End::default() };
        assert_eq!(run(&c, &[err], killed).outcome, Outcome::Crashed);
        let late = End { timed_out: true, ..End::default() };
        assert_eq!(run(&c, &[], late).outcome, Outcome::Timeout);
    }

    #[test]
    fn text_output_is_summarised_by_its_tail_and_the_exit_code_decides() {
        let c = cfg(r#"{"program": "aider-like"}"#);
        let ok = run(&c, &["Applied edit to a.txt", "Done."], exit(0));
        assert_eq!((ok.outcome, ok.summary.as_str()), (Outcome::Success, "Applied edit to a.txt\nDone."));
        let bad = run(&c, &["working"], End { stderr: "Traceback: boom".into(), ..exit(1) });
        assert_eq!(bad.outcome, Outcome::Crashed);
        assert!(bad.summary.contains("code 1") && bad.summary.contains("boom"), "{}", bad.summary);
        let limited = run(&c, &["Rate limit reached, retry in 20s"], exit(1));
        assert_eq!(limited.outcome, Outcome::RateLimited);
        let long: Vec<String> = (0..5000).map(|i| format!("line {i}")).collect();
        let refs: Vec<&str> = long.iter().map(String::as_str).collect();
        let r = run(&c, &refs, exit(0));
        assert!(r.summary.ends_with("line 4999") && r.summary.len() <= 4000, "{}", r.summary.len());
    }
}
