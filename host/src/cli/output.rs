//! Printing the loop's steps as they happen, and small text-formatting helpers.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::contract::{ChangeKind, Verdict};
use crate::engine::events::RunUsage;
use crate::engine::{LoopObserver, Step};
use crate::state::{Action, UsageTotals};

/// Prints each step of the loop as one or more plain lines, to stdout or (with `--json`) stderr. On a
/// terminal, a spinner with the elapsed time and the agent's latest action stays under the lines while the
/// agent and the checks run; elsewhere (a pipe, a file, CI) there are only the plain lines.
pub struct StepPrinter {
    out: Mutex<Box<dyn Write + Send>>,
    color: bool,
    terminal: bool,
    to_stderr: bool,
    spinner: Mutex<Option<ProgressBar>>,
    /// What the agent runs it printed used, summed: the run's total.
    used: Mutex<UsageTotals>,
}

impl StepPrinter {
    /// A printer to stdout, or to stderr when stdout is reserved for JSON.
    pub fn new(to_stderr: bool) -> Self {
        let (out, color): (Box<dyn Write + Send>, bool) = if to_stderr {
            (Box::new(std::io::stderr()), std::io::stderr().is_terminal())
        } else {
            (Box::new(std::io::stdout()), std::io::stdout().is_terminal())
        };
        let terminal = color;
        let color = color && std::env::var_os("NO_COLOR").is_none();
        Self {
            out: Mutex::new(out),
            color,
            terminal,
            to_stderr,
            spinner: Mutex::new(None),
            used: Mutex::new(UsageTotals::default()),
        }
    }

    /// The tokens and cost of every agent run printed so far, as the agents reported them.
    pub fn usage(&self) -> UsageTotals {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Show a spinner with `message` under the printed lines (terminals only), replacing any other.
    fn spin(&self, message: &str) {
        if !self.terminal {
            return;
        }
        let target = if self.to_stderr { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::stdout() };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template("  {spinner} {elapsed:>4} {wide_msg}") {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Some(old) = self.spinner.lock().unwrap_or_else(|e| e.into_inner()).replace(bar) {
            old.finish_and_clear();
        }
    }

    /// Remove the spinner, if one is shown.
    fn stop_spinner(&self) {
        if let Some(bar) = self.spinner.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn line(&self, text: &str) {
        let tagged;
        let text = match TASK_TAG.with(|t| t.borrow().clone()) {
            Some(tag) => {
                tagged = text.lines().map(|l| format!("{tag}{l}")).collect::<Vec<_>>().join("\n");
                tagged.as_str()
            }
            None => text,
        };
        if let Some(bar) = self.spinner.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            // Printed above the spinner, which stays at the bottom.
            bar.println(text);
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

thread_local! {
    /// The tag of the task whose step this thread is printing (parallel runs), e.g. `[3] `.
    static TASK_TAG: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

impl LoopObserver for StepPrinter {
    fn step(&self, step: &Step) {
        match step {
            Step::ForTask { task_id, step } => {
                TASK_TAG.with(|t| *t.borrow_mut() = Some(format!("[{task_id}] ")));
                self.step(step);
                TASK_TAG.with(|t| *t.borrow_mut() = None);
            }
            Step::TaskPicked { task_id, title, ready, pending } => self.line(&format!(
                "{} task {task_id}: {} ({ready} ready, {pending} pending)",
                self.paint("1;35", "###"),
                one_line(title, 120)
            )),
            Step::IterationStarted { task_id, iteration, max_iterations, prompt_chars } => {
                self.line(&format!(
                    "{} task {task_id}, iteration {iteration}/{max_iterations}: prompt of {prompt_chars} characters sent to the agent",
                    self.paint("1;36", "==>")
                ));
                self.spin(&format!("task {task_id}: the agent is working"));
            }
            Step::CheckpointTaken { id, files, completed: false } => self.line(&format!(
                "  checkpoint {id} ({files} files); undo this iteration with: obra checkpoint rollback {id}"
            )),
            Step::CheckpointTaken { id, files, completed: true } => self.line(&format!(
                "  checkpoint {id} ({files} files) holds the finished work; see it with: obra checkpoint show {id}"
            )),
            Step::Committed { commit, subject, tasks: _, files } => self.line(&format!(
                "  {} {} {} ({files} file(s))",
                self.paint("32", "committed"),
                &commit[..commit.len().min(10)],
                one_line(subject, 100)
            )),
            Step::Progress(message) => {
                self.line(&format!("    {}", one_line(message, 160)));
                if let Some(bar) = self.spinner.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    bar.set_message(one_line(message, 100));
                }
            }
            Step::Retrying { what, attempt, delay, reason } => self.line(&format!(
                "    {} {what} attempt {attempt} failed ({}); retrying in {:.1}s",
                self.paint("33", "retry"),
                one_line(reason, 160),
                delay.as_secs_f64()
            )),
            Step::AgentFinished { result, changes, usage } => {
                self.stop_spinner();
                match result {
                    Ok(r) => self.line(&format!(
                        "  agent: {} after {} turn(s), {:.1}s: {}",
                        r.outcome,
                        r.turns,
                        r.duration_ms as f64 / 1000.0,
                        one_line(&r.summary, 200)
                    )),
                    Err(e) => {
                        self.line(&format!("  agent: {} {}", self.paint("31", "could not run:"), one_line(e, 300)))
                    }
                }
                // An agent that could not run says nothing of usage unless an earlier attempt reported some.
                if result.is_ok() || usage.run.is_reported() {
                    self.line(&format!("  usage: {}", run_usage_text(usage)));
                }
                self.used.lock().unwrap_or_else(|e| e.into_inner()).add_totals(&usage.run);
                if changes.is_empty() {
                    self.line("  changes: none");
                } else {
                    let list: Vec<String> = changes
                        .iter()
                        .take(10)
                        .map(|c| {
                            let sign = match c.kind {
                                ChangeKind::Created => "+",
                                ChangeKind::Modified => "~",
                                ChangeKind::Deleted => "-",
                            };
                            format!("{sign}{}", c.path)
                        })
                        .collect();
                    let more = changes.len().saturating_sub(10);
                    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                    self.line(&format!("  changes: {}{more}", list.join(" ")));
                }
                self.spin("checking the work: gates, LLM opinion, rules");
            }
            Step::GateFinished(g) => {
                let mark = if g.passed { self.paint("32", "pass") } else { self.paint("31", "FAIL") };
                self.line(&format!("  gate {}: {mark} (score {:.2}) {}", g.gate, g.score, one_line(&g.summary, 200)));
                // What failed, not only how much: the failed gate's findings, bounded.
                if !g.passed {
                    for line in finding_lines(&g.findings) {
                        self.line(&format!("      {line}"));
                    }
                }
            }
            Step::LlmOpinion { confidence: Some(c), note } => {
                let mut lines = first_lines(note, MAX_FINDING_LINES + 2).into_iter();
                self.line(&format!("  llm opinion: {c:.2} {}", lines.next().unwrap_or_default()));
                for line in lines {
                    self.line(&format!("      {line}"));
                }
            }
            Step::LlmOpinion { confidence: None, note } => {
                self.line(&format!("  llm opinion: none ({})", one_line(note, 200)))
            }
            Step::RuleFired { rule, verdict } => {
                let text = match verdict {
                    Verdict::Proceed => "proceed".to_string(),
                    Verdict::Pause(r) => format!("pause: {r}"),
                    Verdict::Abort(r) => format!("abort: {r}"),
                };
                self.line(&format!("  rule {rule}: {}", one_line(&text, 200)));
            }
            Step::Decided { action, confidence, explanation } => {
                self.stop_spinner();
                let name = action.as_str().to_uppercase();
                let painted = match action {
                    Action::Proceed => self.paint("1;32", &name),
                    Action::Escalate => self.paint("1;31", &name),
                    _ => self.paint("1;33", &name),
                };
                self.line(&format!("  decision: {painted} (confidence {confidence:.2})"));
                self.line(&format!("    {}", explanation));
            }
            Step::BreakpointOpened { id, rule, reason } => self.line(&format!(
                "{} breakpoint {id} ({rule}): {}\n    resolve with: {}",
                self.paint("1;31", "!!"),
                one_line(reason, 300),
                super::resolve_hint(*id, rule)
            )),
            Step::ConfigReloaded { applied, needs_restart } => {
                if !applied.is_empty() {
                    self.line(&format!("  {} reloaded ({})", self.paint("36", "config"), applied.join(", ")));
                }
                if !needs_restart.is_empty() {
                    self.line(&format!(
                        "  {} changed but needs a restart, not applied ({})",
                        self.paint("33", "config"),
                        needs_restart.join(", ")
                    ));
                }
            }
            Step::ConfigRejected { error } => self.line(&format!(
                "  {} config edit rejected, the previous configuration stays in force: {}",
                self.paint("33", "warning:"),
                one_line(error, 300)
            )),
            Step::PolicyRefused { paths, errors, .. } => {
                self.stop_spinner();
                self.line(&format!(
                    "  {} the agent changed the policy this execution runs under: {}; refused, {}",
                    self.paint("1;31", "integrity:"),
                    paths.join(", "),
                    if errors.is_empty() {
                        "restored byte for byte".to_string()
                    } else {
                        format!("NOT restored: {}", errors.join("; "))
                    }
                ))
            }
            Step::RateLimited { task_id, reason, .. } => self.line(&format!(
                "  {} task {task_id} {}; it resumes the same agent session after the reset",
                self.paint("33", "paused:"),
                one_line(reason, 300)
            )),
            Step::TaskFinished { task_id, status } => {
                self.stop_spinner();
                self.line(&format!("{} task {task_id} is {}", self.paint("1;36", "==>"), status.as_str()))
            }
        }
    }
}

/// Tokens and cost for people: `2400 tokens (2000 in, 400 out), $0.0120`; `cost not reported` when no run
/// reported a cost, `tokens not reported` when none reported tokens. The one wording of `obra status`, the step
/// output of `obra run` and `obra task execute`, and the run's total.
pub fn usage_text(usage: &UsageTotals) -> String {
    let cost = match usage.cost() {
        Some(c) => format!("${c:.4}"),
        None => "cost not reported".to_string(),
    };
    if usage.tokens() == 0 && usage.cost_reported {
        return format!("tokens not reported, {cost}");
    }
    format!("{} tokens ({} in, {} out), {cost}", usage.tokens(), usage.input_tokens, usage.output_tokens)
}

/// An agent run's usage line: the run's tokens and cost (or that the agent reported none), and the task's
/// total so far when it has one.
fn run_usage_text(usage: &RunUsage) -> String {
    let run = if usage.run.is_reported() { usage_text(&usage.run) } else { "not reported by the agent".to_string() };
    if usage.task.is_reported() { format!("{run}; task so far: {}", usage_text(&usage.task)) } else { run }
}

/// At most this many findings of one gate are shown; the rest are counted.
pub const MAX_FINDINGS_SHOWN: usize = 5;
/// At most this many lines of one finding's message are shown.
pub const MAX_FINDING_LINES: usize = 4;
/// A shown line is cut to this many characters.
const MAX_FINDING_WIDTH: usize = 200;

/// A gate's findings for people, bounded: up to [`MAX_FINDINGS_SHOWN`] findings, each as `[severity]
/// path:line: message` with the message's first [`MAX_FINDING_LINES`] non-empty lines (the rest marked), and a
/// last line counting the findings left out. Each returned line is to be indented by the caller.
pub fn finding_lines(findings: &[crate::contract::Finding]) -> Vec<String> {
    let mut out = Vec::new();
    for f in findings.iter().take(MAX_FINDINGS_SHOWN) {
        let place = match (&f.path, f.line) {
            (Some(p), Some(l)) => format!("{p}:{l}: "),
            (Some(p), None) => format!("{p}: "),
            _ => String::new(),
        };
        let severity = serde_json::to_value(f.severity).ok().and_then(|v| v.as_str().map(str::to_string));
        let lines: Vec<&str> = f.message.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
        for (i, line) in lines.iter().take(MAX_FINDING_LINES).enumerate() {
            let cut = cut(line, MAX_FINDING_WIDTH);
            if i == 0 {
                out.push(format!("[{}] {place}{cut}", severity.as_deref().unwrap_or("?")));
            } else {
                out.push(format!("    {cut}"));
            }
        }
        if lines.is_empty() {
            out.push(format!("[{}] {place}(no message)", severity.as_deref().unwrap_or("?")));
        }
        if lines.len() > MAX_FINDING_LINES {
            out.push(format!("    [... {} more line(s)]", lines.len() - MAX_FINDING_LINES));
        }
    }
    if findings.len() > MAX_FINDINGS_SHOWN {
        out.push(format!("... and {} more finding(s)", findings.len() - MAX_FINDINGS_SHOWN));
    }
    out
}

/// The first `max` lines of `text` that are not empty, each cut to [`MAX_FINDING_WIDTH`] characters, and a
/// marker when there were more: for the LLM's reasons.
pub fn first_lines(text: &str, max: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    let mut out: Vec<String> = lines.iter().take(max).map(|l| cut(l, MAX_FINDING_WIDTH)).collect();
    if lines.len() > max {
        out.push(format!("[... {} more line(s)]", lines.len() - max));
    }
    out
}

fn cut(line: &str, max: usize) -> String {
    if line.chars().count() > max {
        format!("{}...", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

pub use crate::text::one_line;

/// Tasks as JSON objects, each with a `waiting` field: why it cannot run now (see
/// [`Wait`](crate::engine::scheduler::Wait)), or null.
pub fn tasks_with_waits(
    tasks: &[crate::state::Task],
    waits: &std::collections::BTreeMap<i64, crate::engine::scheduler::Wait>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    tasks
        .iter()
        .map(|t| {
            let mut value = serde_json::to_value(t)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("waiting".into(), serde_json::to_value(waits.get(&t.id))?);
            }
            Ok(value)
        })
        .collect()
}

/// Print a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    // Buffered: stdout is line-buffered, and pretty JSON of a long list is many thousands of lines.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_reads_as_tokens_and_cost_and_says_what_was_not_reported() {
        let mut run = UsageTotals::default();
        run.add(&crate::contract::Usage {
            input_tokens: 2000,
            output_tokens: 400,
            cost_usd: Some(0.012),
            ..Default::default()
        });
        assert_eq!(usage_text(&run), "2400 tokens (2000 in, 400 out), $0.0120");
        let task = UsageTotals { input_tokens: 4000, output_tokens: 800, cost_usd: 0.024, cost_reported: true };
        assert_eq!(
            run_usage_text(&RunUsage { run, task }),
            "2400 tokens (2000 in, 400 out), $0.0120; task so far: 4800 tokens (4000 in, 800 out), $0.0240"
        );
        let tokens_only = UsageTotals { input_tokens: 7, output_tokens: 3, ..Default::default() };
        assert_eq!(usage_text(&tokens_only), "10 tokens (7 in, 3 out), cost not reported");
        let cost_only = UsageTotals { cost_usd: 0.5, cost_reported: true, ..Default::default() };
        assert_eq!(usage_text(&cost_only), "tokens not reported, $0.5000");
        assert_eq!(run_usage_text(&RunUsage::default()), "not reported by the agent");
        assert_eq!(
            run_usage_text(&RunUsage { run: UsageTotals::default(), task: tokens_only }),
            "not reported by the agent; task so far: 10 tokens (7 in, 3 out), cost not reported"
        );
    }

    #[test]
    fn one_line_cuts_and_marks_more() {
        assert_eq!(one_line("abc", 10), "abc");
        assert_eq!(one_line("abcdef", 3), "abc...");
        assert_eq!(one_line("a\nb", 10), "a [...]");
    }

    #[test]
    fn findings_are_shown_bounded_with_what_was_left_out() {
        use crate::contract::{Finding, Severity};
        let long = (1..=9).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n");
        let mut findings =
            vec![Finding { severity: Severity::Error, message: long, path: Some("a.py".into()), line: Some(3) }];
        for i in 0..6 {
            findings.push(Finding { severity: Severity::Warning, message: format!("w{i}"), path: None, line: None });
        }
        let lines = finding_lines(&findings);
        assert_eq!(lines[0], "[error] a.py:3: line 1");
        assert_eq!(lines[3], "    line 4");
        assert_eq!(lines[4], "    [... 5 more line(s)]");
        assert_eq!(lines[5], "[warning] w0");
        assert_eq!(lines.last().unwrap(), "... and 2 more finding(s)");
        assert_eq!(lines.len(), 5 + 4 + 1);
    }
}
